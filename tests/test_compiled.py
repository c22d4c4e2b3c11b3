"""The compiled build (mypyc) behaves as the pure-Python sources.

``ACD_COMPILE=1`` compiles the routing core and the virtual simulator's loop
(setup.py).  This builds that wheel from the checkout (``acd.compiled``),
then runs the core's, the simulator's and the engine's tests again with the
compiled modules first on the path.  A development install must run the
sources themselves: a stale extension module next to a ``.py`` would
silently shadow every later edit.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acd.compiled import build_site, describe, is_compiled

REPO = Path(__file__).resolve().parent.parent

#: what runs again compiled: everything that drives acd.core or acd.loadsim.virtual
#: (with acd.loadsim.draws and acd.loadsim.figures)
COMPILED_SUITE = (
    "tests/test_compiled.py", "tests/test_core.py", "tests/test_routing.py",
    "tests/test_routing_properties.py", "tests/test_stats.py", "tests/test_sim_virtual.py",
    "tests/test_sim_staffing.py", "tests/test_sim_scenario.py", "tests/test_cli_sim.py",
    "tests/test_cli_staffing.py", "tests/test_engine_e2e.py",
    "tests/test_engine_routing_e2e.py", "tests/test_profiles_store.py", "tests/test_ewt.py",
)


def test_the_router_in_use_is_the_one_expected() -> None:
    if os.environ.get("ACD_EXPECT_COMPILED") == "1":
        assert is_compiled() and is_compiled("acd.loadsim.virtual")
        assert is_compiled("acd.loadsim.draws") and is_compiled("acd.loadsim.figures")
        assert is_compiled("acd.core.model")
        assert describe() == "compiled (mypyc)"
    else:  # the development install: the sources, never a leftover extension module
        assert not is_compiled() and not is_compiled("acd.loadsim.virtual")
        assert not is_compiled("acd.loadsim.figures")
        assert describe() == "pure Python"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ACD_EXPECT_COMPILED") == "1", reason="already compiled")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
@pytest.mark.skipif(importlib.util.find_spec("mypyc") is None, reason="mypyc is not installed")
def test_the_compiled_build_passes_the_core_and_simulator_tests() -> None:
    site = build_site(root=REPO)
    assert any(site.glob("acd/core/center.*.so")), "the router was not compiled"
    assert not any((REPO / "acd" / "core").glob("*.so")), "an extension module in the sources"
    env = {**os.environ, "ACD_EXPECT_COMPILED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "-o", f"pythonpath={site} {REPO}", *COMPILED_SUITE],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed is not None and int(passed.group(1)) >= 150, tail
    assert " failed" not in proc.stdout and " error" not in proc.stdout, tail


def test_build_site_is_reused_while_the_sources_are_unchanged(tmp_path: Path) -> None:
    # no compiler needed: a finished build is recognised by its marker
    from acd import compiled

    digest = compiled._sources_digest(REPO)
    done = tmp_path / f"site-{digest}"
    done.mkdir()
    (done / ".complete").write_text("x.whl\n")
    assert build_site(tmp_path, root=REPO) == done


def test_a_bad_acd_compile_value_is_refused_by_name() -> None:
    proc = subprocess.run([sys.executable, "setup.py", "--name"], cwd=REPO,
                          env={**os.environ, "ACD_COMPILE": "yes"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "ACD_COMPILE='yes': expected auto, 1 or 0" in proc.stderr

