"""The load simulator's picture: service level per interval and waiting
calls across the day, drawn with matplotlib (imported only here, and only
when a plot is asked for).
"""

from __future__ import annotations

from pathlib import Path

from acd.loadsim.figures import SAMPLE_S, VirtualResult

__all__ = ["plot"]


def plot(result: VirtualResult, path: str | Path, title: str | None = None) -> Path:
    """A PNG: service level per interval (total and per queue) and waiting
    calls across the day.  Uses matplotlib's Agg backend (no display); raises
    :class:`acd.plot.PlotUnavailable`, naming the plot extra, without it."""
    from acd.plot import require_matplotlib

    require_matplotlib("the simulator's plot")
    import matplotlib.pyplot as plt

    out = Path(path)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    hours = 3600.0
    t0 = result.start_s / hours

    def series(scope: str, key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for r in result.interval_rows(scope, key):
            if r["service_level"] is not None:
                xs.append(t0 + (r["interval_start"] + result.interval_s / 2) / hours)
                ys.append(100.0 * r["service_level"])
        return xs, ys

    xs, ys = series("total", "")
    ax1.step(xs, ys, where="mid", color="black", linewidth=2, label="all queues")
    for q in result.queues:
        qx, qy = series("queue", q)
        if qx:
            ax1.plot(qx, qy, marker=".", linewidth=1, label=q)
    ax1.set_ylabel("service level (%)")
    ax1.set_ylim(0, 105)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower left", fontsize="small", ncols=4)
    ax1.set_title(title or f"{result.scenario} (seed {result.seed})")

    if result.waiting:
        xw = [t0 + i * SAMPLE_S / hours for i in range(len(result.waiting))]
        stacks = [[s[k] for s in result.waiting] for k in range(len(result.queues))]
        ax2.stackplot(xw, *stacks, labels=list(result.queues), step="post", alpha=0.8)
        ax2.legend(loc="upper left", fontsize="small", ncols=4)
    ax2.set_ylabel("waiting calls")
    ax2.set_xlabel("time of day (h)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
