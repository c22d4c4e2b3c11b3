"""The optional compiled build (mypyc): is it in use, and build one to try.

``ACD_COMPILE=1 pip install .`` compiles the routing core (``acd.core``
except ``stats``) and the virtual simulator's loop (``acd.loadsim.virtual``,
``acd.loadsim.draws``, ``acd.loadsim.figures``) to C extensions from the same
sources (``setup.py`` lists them).  Everything else, and every editable
install, stays pure Python.

:func:`build_site` makes a compiled copy of this checkout in a directory of
its own, for the benchmark and for the test that runs the core's tests
against the compiled modules, without touching the source tree (an
extension module next to its ``.py`` would shadow later edits).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def is_compiled(module: str = "acd.core.center") -> bool:
    """Is ``module`` (by default the router) a compiled extension here?"""
    origin = getattr(importlib.import_module(module), "__file__", "") or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def describe() -> str:
    """'compiled (mypyc)' or 'pure Python', for reports."""
    return "compiled (mypyc)" if is_compiled() else "pure Python"


def _sources_digest(root: Path) -> str:
    h = hashlib.sha256()
    for rel in ("setup.py", "pyproject.toml"):
        h.update((root / rel).read_bytes())
    for pkg in ("acd", "sim"):
        for path in sorted((root / pkg).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


class BuildError(Exception):
    """The compiled build failed (no C compiler, mypyc refused the code...)."""


def build_site(dest: Path | None = None, root: Path = ROOT) -> Path:
    """A directory holding this checkout's packages with the core compiled:
    put it first on ``PYTHONPATH`` to run them.  Built as ``pip install .``
    builds (``pip wheel`` in an isolated build environment, which fetches
    setuptools and mypy) with ``ACD_COMPILE=1`` (no silent fallback), then
    unpacked; reused while the sources are unchanged."""
    dest = dest or root / "build" / "compiled"
    site = dest / f"site-{_sources_digest(root)}"
    if (site / ".complete").exists():
        return site
    for stale in dest.glob("site-*"):  # builds of earlier sources
        shutil.rmtree(stale, ignore_errors=True)
    wheels = dest / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for old in wheels.glob("*.whl"):
        old.unlink()
    env = {**os.environ, "ACD_COMPILE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
         str(root)],
        env=env, capture_output=True, text=True, check=False)
    built = list(wheels.glob("*.whl"))
    if proc.returncode != 0 or not built:
        raise BuildError(f"compiled build failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    with zipfile.ZipFile(built[0]) as whl:
        whl.extractall(site)
    (site / ".complete").write_text(built[0].name + "\n")
    return site


def rerun_compiled(script: str, argv: list[str], root: Path = ROOT) -> int:
    """Run ``script argv`` again in a child Python with the compiled build
    first on the path (``ACD_SITE``; the benchmarks put it before the
    checkout).  Returns the child's exit status."""
    site = build_site(root=root)
    return subprocess.run([sys.executable, script, *argv],
                          env={**os.environ, "ACD_SITE": str(site)}, check=False).returncode

