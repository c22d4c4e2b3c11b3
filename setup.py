"""Build hook: the optional compiled core.

Metadata lives in pyproject.toml.  With ``ACD_COMPILE=1`` the routing core
(``acd.core``) and the virtual simulator's loop (``sim.virtual``,
``sim.draws``) are compiled to C extensions with mypyc, from the same
type-checked sources; without it (the default, and what an editable install
for development should be) everything stays pure Python.  See
docs/decisions.md ("A compiled core, optional").
"""

from __future__ import annotations

import os

from setuptools import setup

#: compiled with ACD_COMPILE=1; everything else is always pure Python
COMPILED = [
    "acd/core/fsm.py",
    "acd/core/profiles.py",
    "acd/core/policy.py",
    "acd/core/model.py",
    "acd/core/center.py",
    "sim/draws.py",
    "sim/virtual.py",
]


def ext_modules() -> list[object]:
    if os.environ.get("ACD_COMPILE", "") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=ext_modules())
