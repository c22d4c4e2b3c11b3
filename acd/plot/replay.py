"""The replay of a center's records drawn against the records: served within
the threshold and abandonment per interval, and the replay's error in points
(matplotlib, imported only when a drawing is made; see :mod:`acd.plot`).

Plain data in: one :class:`ReplayPoint` per interval with calls (the load
simulator's :class:`acd.loadsim.replay.Comparison` hands them over).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from acd.plot import require_matplotlib

__all__ = ["ReplayPoint", "plot_replay"]


class ReplayPoint(NamedTuple):
    """One interval: the records' figures and the replay's (percent; None: no call)."""

    start: datetime
    sl_pct: float | None
    sl_pct_replay: float | None
    abandon_pct: float | None
    abandon_pct_replay: float | None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def plot_replay(points: Sequence[ReplayPoint], path: str, threshold_s: float,
                title: str = "replay") -> None:
    """A PNG at ``path``: served within ``threshold_s`` and abandoned per
    interval, records against replay, and the replay's errors in points.
    Raises :class:`acd.plot.PlotUnavailable` without matplotlib."""
    require_matplotlib("the replay's plot")
    import matplotlib.pyplot as plt

    def nan(v: float | None) -> float:
        return float("nan") if v is None else v

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(13, 9), sharex=True)
    xs = [p.start for p in points]
    ax1.plot(xs, [nan(p.sl_pct) for p in points], color="black", lw=1, label="records")
    ax1.plot(xs, [nan(p.sl_pct_replay) for p in points], color="tab:blue", lw=1, alpha=0.8,
             label="replay")
    ax1.set_ylabel(f"served within {threshold_s:g} s (%)")
    ax1.legend(loc="lower left")
    ax2.plot(xs, [nan(p.abandon_pct) for p in points], color="black", lw=1, label="records")
    ax2.plot(xs, [nan(p.abandon_pct_replay) for p in points], color="tab:red", lw=1,
             alpha=0.8, label="replay")
    ax2.set_ylabel("abandoned (%)")
    ax2.legend(loc="upper left")
    ax3.plot(xs, [nan(_diff(p.sl_pct, p.sl_pct_replay)) for p in points], color="tab:blue",
             lw=1, label="served within")
    ax3.plot(xs, [nan(_diff(p.abandon_pct, p.abandon_pct_replay)) for p in points],
             color="tab:red", lw=1, label="abandoned")
    ax3.axhline(0, color="grey", lw=0.5)
    ax3.set_ylabel("replay - records (points)")
    ax3.legend(loc="lower left")
    ax1.set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
