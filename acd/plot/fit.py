"""The picture of ``acd report fit``: agents required, scheduled and
available per interval (steps), the service level reached on a second axis,
and each day's fit score in the title (docs/planning.md, "Fit: plan against
the day").  matplotlib is imported when a picture is drawn
(:func:`acd.plot.require_matplotlib`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from acd.planning.fit import FitDay, FitRow
from acd.plot import require_matplotlib

__all__ = ["draw_fit"]


def _score(v: float | None) -> str:
    return f"{v:.1f}" if v is not None else "-"


def _title(days: Sequence[FitDay], what: str) -> str:
    if len(days) == 1:
        d = days[0]
        plan = f", plan score {_score(d.plan_score)}" if d.plan_score is not None else ""
        return f"{what}, {d.day:%Y-%m-%d}: fit score {_score(d.score)}{plan}"
    parts = [f"{d.day:%m-%d} {_score(d.score)}" for d in days[:7]]
    more = f" (+{len(days) - 7} days)" if len(days) > 7 else ""
    return f"{what}: fit score {', '.join(parts)}{more}"


def _span(rows: Sequence[FitRow]) -> tuple[int, int]:
    """The intervals drawn: from the first to the last that is not idle,
    one more on each side (all of them when every one is idle)."""
    busy = [i for i, r in enumerate(rows) if not r.idle]
    if not busy:
        return 0, len(rows)
    return max(0, busy[0] - 1), min(len(rows), busy[-1] + 2)


def draw_fit(path: str | Path, rows: Sequence[FitRow], days: Sequence[FitDay], *,
             what: str = "all queues") -> None:
    """Draw the figure to ``path`` (PNG): the intervals from the first to
    the last with anything in them.  A series with no value in any interval
    (no requirements, no roster) is left out; an unknown value is a gap in
    its line."""
    require_matplotlib("acd report fit --plot")
    import matplotlib.pyplot as plt

    lo, hi = _span(rows)
    rows = rows[lo:hi]
    n = len(rows)
    width = min(24.0, max(8.0, n * 0.12))
    fig, ax = plt.subplots(figsize=(width, 4.8))
    xs = list(range(n + 1))  # step edges: interval i spans [i, i + 1)

    def steps(values: list[float | None]) -> list[float]:
        ys = [float("nan") if v is None else v for v in values]
        return [*ys, ys[-1]] if ys else []

    for name, values, style in (
            ("required", [r.required for r in rows], {"color": "grey", "linewidth": 4.0,
                                                       "alpha": 0.6}),
            ("scheduled", [r.scheduled for r in rows], {"color": "tab:blue",
                                                         "linestyle": "--"}),
            ("available", [r.available for r in rows], {"color": "tab:green",
                                                         "linewidth": 1.6})):
        if any(v is not None for v in values):
            ax.step(xs, steps(values), where="post", label=name, **style)
    ax.set_ylabel("agents")
    ax.set_ylim(bottom=0)
    sl = [r.service_level for r in rows]
    ax2 = ax.twinx()
    if any(v is not None for v in sl):
        mids = [i + 0.5 for i, v in enumerate(sl) if v is not None]
        ax2.plot(mids, [v for v in sl if v is not None], color="tab:orange", marker=".",
                 linestyle=":", label="service level")
        targets = {r.target for r in rows if r.target is not None}
        if len(targets) == 1:
            t = next(iter(targets))
            ax2.axhline(t, color="tab:orange", linewidth=0.8, alpha=0.6,
                        label=f"target {100 * t:.0f}%")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("service level")
    ax2.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="upper left",
              bbox_to_anchor=(1.07, 1.0))
    per_hour = max(1, round(3600 / (rows[0].end - rows[0].start).total_seconds())) if rows else 1
    every = max(1, -(-n // (per_hour * 24)))  # hours between two ticks: at most ~24 ticks
    ticks = [i for i, r in enumerate(rows) if r.start.minute == 0 and r.start.hour % every == 0]
    ax.set_xticks(ticks, [f"{rows[i].start:%m-%d %H:%M}" if k == 0 or rows[i].start.hour == 0
                          else f"{rows[i].start:%H:%M}" for k, i in enumerate(ticks)],
                  rotation=45, ha="right", fontsize="small")
    ax.set_xlim(0, max(1, n))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(_title(days, what))
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # the legend beside the axes too
    plt.close(fig)
