"""Staffing requirements per interval and queue (the Requirements CSV).

A :class:`Requirement` is the number of agents a queue (skill) needs in one
interval to meet the service target, with the figures it was computed from:
the forecast calls, the handle time (talk + wrap-up), and the service level
and abandonment expected with that many agents (by simulation, also the
confidence interval of the service level).

:func:`erlang_requirements` computes them from a forecast by Erlang A (with
a patience) or Erlang C (without): quick, a week of 30-minute intervals in
well under a second, because intervals with the same rate share one answer.
The simulator's (:func:`acd.loadsim.staffing.simulated_requirements`) runs
the routing policy instead.

Pure: no I/O.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from acd.planning.erlang import agents_needed, evaluate
from acd.planning.forecast import ForecastRow

__all__ = ["Requirement", "erlang_requirements", "interval_seconds"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """Agents needed in the interval starting at ``start`` (naive local) for ``queue``."""

    start: datetime
    queue: str
    required: int
    calls: float | None = None
    #: handle time the answer assumed: talk + wrap-up, seconds
    aht_s: float | None = None
    #: service level expected with ``required`` agents; by simulation with its
    #: two-sided confidence interval (sl_low, sl_high)
    sl: float | None = None
    sl_low: float | None = None
    sl_high: float | None = None
    #: share of callers expected to abandon
    abandon: float | None = None
    line: int = 0


def interval_seconds(rows: Iterable[ForecastRow], default_s: int = 1800,
                     file: str = "forecast") -> int:
    """The forecast's interval length: the commonest gap between two interval
    starts (``default_s`` with a single start).  Raises ValueError naming the
    row (``file:line``) when a start is off that grid: a 30-minute forecast
    with one row at 19:45 would otherwise be read as a 15-minute one, its
    counts as twice the rate."""
    rows = list(rows)
    starts = sorted({r.start for r in rows})
    gaps = Counter(int((b - a).total_seconds()) for a, b in itertools.pairwise(starts))
    if not gaps:
        return default_s
    step = max(gaps.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if step <= 0 or 86400 % step:
        raise ValueError(f"{file}: the intervals are {step} s apart, which does not divide "
                         "a day (15, 30 or 60 minutes)")
    for r in rows:
        since = r.start.hour * 3600 + r.start.minute * 60 + r.start.second
        if since % step or r.start.microsecond:
            raise ValueError(f"{file}:{r.line}: interval_start: {r.start:%Y-%m-%d %H:%M} is off "
                             f"the {step // 60}-minute grid of the other rows")
    return step


#: (calls per hour, aht, patience) -> (required, sl, abandon, sl_low, sl_high)
Answer = tuple[int, float | None, float | None, float | None, float | None]


def requirements_from(rows: Iterable[ForecastRow], interval_s: int, aht_s: float,
                      answer: Callable[[float], Answer]) -> list[Requirement]:
    """Requirements of ``rows`` with ``answer(calls per hour)``, asked once per
    distinct rate (intervals with the same rate share it); no calls: 0 agents."""
    cache: dict[float, Answer] = {}
    out: list[Requirement] = []
    for r in rows:
        if r.calls <= 0:
            out.append(Requirement(r.start, r.queue, 0, r.calls, aht_s, line=r.line))
            continue
        rate = r.calls * 3600.0 / interval_s
        got = cache.get(rate)
        if got is None:
            got = cache[rate] = answer(rate)
        need, sl, ab, lo, hi = got
        out.append(Requirement(r.start, r.queue, need, r.calls, aht_s, sl, lo, hi, ab,
                               r.line))
    return out


def erlang_requirements(rows: Iterable[ForecastRow], *, interval_s: int, aht_s: float,
                        target_sl: float, t_s: float, patience_s: float | None = None,
                        max_abandon: float | None = None) -> list[Requirement]:
    """Per forecast row: the smallest count meeting the target by Erlang A
    (``patience_s``) or Erlang C, and its SL and abandonment.  ``aht_s``:
    talk + wrap-up.  Raises ValueError for a bad target or time."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")

    def answer(rate: float) -> Answer:
        n = agents_needed(rate, aht_s, target_sl, t_s, patience_s=patience_s,
                          max_abandon=max_abandon)
        e = evaluate(rate, aht_s, n, t_s, patience_s)
        return n, e.sl, e.pab, None, None

    return requirements_from(rows, interval_s, aht_s, answer)
