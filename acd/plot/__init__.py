"""Drawings: flow pictures (SVG, PNG), and the one gate to matplotlib that the
load simulator's plot (:mod:`acd.loadsim.plots`) goes through too.

matplotlib comes with the ``plot`` extra (``pip install 'acd[plot]'``); the
engine, the demo and the flow tools run without it.  Nothing here imports it
when the package is imported: :func:`require_matplotlib` does, when a
drawing is made, and says which extra to install when it is missing.

* :mod:`acd.plot.layout` - the layered layout of a flow (pure Python);
* :mod:`acd.plot.draw` - the flow drawn from its layout, and :func:`render`
  for every picture format (the text ones come from :mod:`acd.ivr.graph`);
* :mod:`acd.plot.replay` - a replay of call records against the records, per interval;
* :mod:`acd.plot.fit` - required, scheduled and available agents and the service level.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA", "PlotUnavailable", "require_matplotlib"]

#: what to install for drawings
EXTRA = "pip install 'acd[plot]' (from a checkout: pip install -e '.[plot]')"


class PlotUnavailable(RuntimeError):
    """A drawing was asked for but matplotlib is not installed."""


def require_matplotlib(what: str = "this drawing") -> ModuleType:
    """matplotlib, with its Agg backend (no display) selected.

    Raises :class:`PlotUnavailable`, naming the extra, when it cannot be imported.
    """
    try:
        mpl = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise PlotUnavailable(f"{what} needs matplotlib, which comes with the plot extra: "
                              f"{EXTRA}") from exc
    mpl.use("Agg")
    return mpl
