"""Build hook: the routing core compiled with mypyc.

Metadata lives in pyproject.toml.  A wheel or a regular install (``pip
install .``) compiles the routing core (``acd.core``) and the virtual
simulator's loop (``acd.loadsim.virtual``, ``acd.loadsim.draws``,
``acd.loadsim.figures``) to C extensions with mypyc, from the same
type-checked sources; an editable install (``pip install -e``, for
development) never does: an extension module next to its ``.py`` would
shadow every later edit.  ``ACD_COMPILE``:

* ``auto`` (the default): compile; if that is impossible here (no C
  compiler, no mypy), say so and install pure Python;
* ``1``: compile, and fail if that is impossible;
* ``0``: pure Python.

See docs/decisions.md ("The router compiled with mypyc").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: compiled; everything else is always pure Python
COMPILED = [
    "acd/core/errors.py",
    "acd/core/fsm.py",
    "acd/core/profiles.py",
    "acd/core/policy.py",
    "acd/core/model.py",
    "acd/core/wait.py",
    "acd/core/center.py",
    "acd/loadsim/draws.py",
    "acd/loadsim/figures.py",
    "acd/loadsim/virtual.py",
]

MODE = os.environ.get("ACD_COMPILE", "auto").strip().lower() or "auto"
if MODE not in ("auto", "0", "1"):
    sys.exit(f"ACD_COMPILE={MODE!r}: expected auto, 1 or 0")
#: only a wheel (or install) build compiles; metadata and editable builds never do
BUILDING = any(cmd in sys.argv for cmd in ("bdist_wheel", "build", "build_ext", "install"))


def _say(message: str) -> None:
    print(f"acd setup: {message}", file=sys.stderr)


class BuildExt(build_ext):
    """``build_ext`` that falls back to pure Python in ``auto`` mode."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError, OSError) as exc:  # no/failing cc
            if MODE == "1":
                raise
            for ext in self.extensions:  # leave no half of the compiled modules
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            _say(f"could not compile the core ({exc}); installing pure Python "
                 "(ACD_COMPILE=1 makes this an error)")


def ext_modules() -> list[Any]:
    if MODE == "0" or not BUILDING:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        if MODE == "1":
            raise
        _say(f"mypyc is not installed ({exc}); installing pure Python")
        return []
    try:
        # a build environment has setuptools and mypy, not our dependencies:
        # what the compiled modules import from them is typed Any here (the
        # project's own mypy run, with everything installed, checks them)
        return list(mypycify(["--ignore-missing-imports", "--follow-imports=silent",
                              "--no-warn-unused-ignores", *COMPILED], opt_level="3"))
    except SystemExit as exc:  # mypycify reports type errors by exiting
        if MODE == "1":
            raise
        _say(f"mypyc refused the sources (exit {exc.code}, errors above); "
             "installing pure Python (ACD_COMPILE=1 makes this an error)")
        return []


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExt})
