"""Fit: the plan against the day, per interval (``acd report fit``; see
docs/planning.md, "Fit: plan against the day").

Per interval of a local wall-clock grid (15, 30 or 60 minutes, aligned on
the hour, named by its start):

``required``
    agents the requirements ask for (:func:`required_per_interval`);
``scheduled``
    agents on shift and not in an activity (the roster's
    ``Roster.scheduled``; given here as a series);
``available``
    agents logged in and not paused, time-averaged over the interval, from
    the engine's agent state changes (:func:`available_per_interval`):
    ``ready``, ``reserved``, ``on_call`` and ``wrap_up`` count as available
    for work, ``paused`` and ``logged_out`` do not;
``offered`` / ``answered`` / ``abandoned`` / ``service_level``
    the figures of :class:`acd.core.stats.IntervalStats` -- the caller
    replays the call records into the engine's own statistics (as
    ``acd report calls`` does) and hands the rows in; nothing is re-derived
    here.

Gaps: ``plan_gap`` = scheduled - required, ``adherence_gap`` = available -
scheduled, ``fit_gap`` = available - required.

Per day (:func:`fit_days`): the fit score ``100 * (1 - sum|available -
required| / sum required)`` over the day's intervals with both figures
known, floored at 0 (:func:`fit_score`); the share of the intervals that
need agents (required > 0) where available >= required (``covered``); the
same score with scheduled in place of available (``plan_score``).

Pure: no clock, no files.  Times are naive local datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Protocol

from acd.core.stats import IntervalStats
from acd.planning.intervals import NonDecreasing, grid, spread

__all__ = ["AVAILABLE_STATES", "INTERVAL_MINUTES", "STATES", "FitDay", "FitRow",
           "HasRequirement", "StateChange", "available_per_interval", "covered_share",
           "fit_days", "fit_rows", "fit_score", "grid", "required_per_interval",
           "requirement_step"]

#: interval lengths the planning files use
INTERVAL_MINUTES = (15, 30, 60)
#: agent states that count as available for work (logged in, not paused)
AVAILABLE_STATES = frozenset({"ready", "reserved", "on_call", "wrap_up"})
#: every state an agent can be in (acd.core.model.AgentState values)
STATES = AVAILABLE_STATES | {"paused", "logged_out"}

#: one agent state change: (at: naive local time, agent, new state, reason)
StateChange = tuple[datetime, str, str, str]


class HasRequirement(Protocol):
    """What fit reads of a requirement (acd.planning.requirements.Requirement)."""

    @property
    def start(self) -> datetime: ...
    @property
    def queue(self) -> str: ...
    @property
    def required(self) -> float: ...


def requirement_step(requirements: Iterable[HasRequirement], default_s: int) -> int:
    """How long one requirement holds, in seconds: the smallest gap between
    two distinct interval starts of the requirements (``default_s`` when
    there is only one start)."""
    starts = sorted({r.start for r in requirements})
    gaps = [(b - a).total_seconds() for a, b in pairwise(starts)]
    return int(min(gaps)) if gaps else default_s


def _overlap(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> float:
    return max(0.0, (min(a1, b1) - max(a0, b0)).total_seconds())


def required_per_interval(requirements: Sequence[HasRequirement], starts: Sequence[datetime],
                          interval_s: int, *, queue: str | None = None,
                          step_s: int | None = None) -> list[float | None]:
    """Agents required per grid interval: the requirements (of ``queue``;
    None: of every queue, summed) time-weighted over the interval.  A
    requirement holds from its start for ``step_s`` (None:
    :func:`requirement_step` of all the requirements, whatever ``queue``).
    An interval no requirement overlaps is unknown (None); within one a
    queue without a row counts 0."""
    mine = [r for r in requirements if queue is None or r.queue == queue]
    step = timedelta(seconds=step_s if step_s is not None
                     else requirement_step(requirements, interval_s))
    length = timedelta(seconds=interval_s)
    out: list[float | None] = []
    by_start = sorted(mine, key=lambda r: r.start)
    j = 0
    for s in starts:
        e = s + length
        while j < len(by_start) and by_start[j].start + step <= s:
            j += 1
        total = 0.0
        known = False
        k = j
        while k < len(by_start) and by_start[k].start < e:
            r = by_start[k]
            part = _overlap(s, e, r.start, r.start + step)
            if part > 0:
                known = True
                total += float(r.required) * part / interval_s
            k += 1
        out.append(total if known else None)
    return out


def available_per_interval(changes: Iterable[StateChange], starts: Sequence[datetime],
                           interval_s: int, *, agents: Iterable[str] | None = None,
                           until: datetime | None = None) -> list[float | None]:
    """Agents available per grid interval (logged in and not paused:
    :data:`AVAILABLE_STATES`), time-averaged: the seconds each agent spent
    available in the interval, summed, over the interval's length.

    ``changes`` are taken in the order given, which must be each agent's
    order of events (the database's UTC order; agents may interleave): a
    change whose local time goes back (the hour repeated when clocks go
    back) counts from the agent's previous change instead
    (:class:`~acd.planning.intervals.NonDecreasing`), so no change is
    reordered.  ``starts`` is a regular grid (:func:`grid`).  Changes before
    the first interval set the state the agents start in.  An agent's time
    before its first change is unknown and counts nothing (as in the
    engine's statistics).  ``agents``: count only these (None: all).
    ``until``: the end of what was observed
    (a day still running: now; None: the grid's end): an agent's last state
    lasts until then, an interval is averaged over its observed part, and
    one that starts at or after ``until`` is unknown (None).
    """
    if not starts:
        return []
    length = timedelta(seconds=interval_s)
    t_end = starts[-1] + length
    stop = min(until, t_end) if until is not None else t_end
    keep = set(agents) if agents is not None else None
    secs = [0.0] * len(starts)
    first = starts[0]

    def add(a: datetime, b: datetime) -> None:
        for i, part in spread(a, min(b, stop), first, interval_s, len(starts)):
            secs[i] += part

    current: dict[str, tuple[str, datetime]] = {}
    in_order = NonDecreasing()
    for at, agent, state, _reason in changes:
        at = in_order(agent, at)
        if state not in STATES:
            raise ValueError(f"agent {agent!r} at {at:%Y-%m-%d %H:%M:%S}: unknown state "
                             f"{state!r} (one of {', '.join(sorted(STATES))})")
        if keep is not None and agent not in keep:
            continue
        prev = current.get(agent)
        if prev is not None and prev[0] in AVAILABLE_STATES:
            add(prev[1], at)
        current[agent] = (state, at)
    for state, since in current.values():
        if state in AVAILABLE_STATES:
            add(since, stop)
    out: list[float | None] = []
    for s, v in zip(starts, secs, strict=True):
        seen = _overlap(s, s + length, s, stop)
        out.append(v / seen if seen > 0 else None)
    return out


# ------------------------------------------------------------------ rows


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass(frozen=True, slots=True)
class FitRow:
    """One interval: the plan (required, scheduled), the day (available and
    the calls' figures from the engine's statistics) and the gaps."""

    start: datetime
    end: datetime
    required: float | None
    scheduled: float | None
    available: float | None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    service_level: float | None = None
    target: float | None = None

    @property
    def plan_gap(self) -> float | None:
        """scheduled - required (negative: the plan was short)."""
        return _diff(self.scheduled, self.required)

    @property
    def adherence_gap(self) -> float | None:
        """available - scheduled (negative: fewer came than planned)."""
        return _diff(self.available, self.scheduled)

    @property
    def fit_gap(self) -> float | None:
        """available - required (negative: the day was short)."""
        return _diff(self.available, self.required)

    @property
    def idle(self) -> bool:
        """Nothing to show: no agent asked for, planned or present, no call."""
        return (not self.required and not self.scheduled and not self.available
                and self.offered == 0)


def fit_rows(starts: Sequence[datetime], interval_s: int, *,
             required: Sequence[float | None] | None = None,
             scheduled: Mapping[datetime, float] | None = None,
             available: Sequence[float | None] | None = None,
             service: Mapping[datetime, IntervalStats] | None = None) -> list[FitRow]:
    """One :class:`FitRow` per grid interval.  ``required``/``available``:
    one value per interval (None: not known); ``scheduled``: interval start
    -> agents scheduled (from ``Roster.scheduled``; None: no roster, a start
    missing from it: 0); ``service``: interval start -> the engine's
    statistics of that interval (missing: no call)."""
    length = timedelta(seconds=interval_s)
    for name, seq in (("required", required), ("available", available)):
        if seq is not None and len(seq) != len(starts):
            raise ValueError(f"{name}: {len(seq)} values for {len(starts)} intervals")
    out: list[FitRow] = []
    for i, s in enumerate(starts):
        st = service.get(s) if service is not None else None
        out.append(FitRow(
            start=s, end=s + length,
            required=required[i] if required is not None else None,
            scheduled=scheduled.get(s, 0.0) if scheduled is not None else None,
            available=available[i] if available is not None else None,
            offered=st.offered if st is not None else 0,
            answered=st.answered if st is not None else 0,
            abandoned=st.abandoned if st is not None else 0,
            service_level=st.service_level if st is not None else None,
            target=st.target if st is not None else None))
    return out


# ------------------------------------------------------------------ days


def fit_score(pairs: Iterable[tuple[float, float]]) -> float | None:
    """``100 * (1 - sum|have - need| / sum need)`` over ``(need, have)``
    pairs, floored at 0; None when nothing is needed (sum need = 0).
    Over- and under-staffing count alike."""
    need = gap = 0.0
    for n, h in pairs:
        need += n
        gap += abs(h - n)
    if need <= 0:
        return None
    return max(0.0, 100.0 * (1.0 - gap / need))


def covered_share(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Share of the ``(need, have)`` pairs with need > 0 where have >= need
    (None: no pair needs anything)."""
    n = ok = 0
    for need, have in pairs:
        if need > 0:
            n += 1
            ok += have >= need
    return ok / n if n else None


@dataclass(frozen=True, slots=True)
class FitDay:
    """A day's fit (see the module docstring)."""

    day: date
    intervals: int               # intervals with required and available known
    required_sum: float          # sum of required over them
    gap_sum: float               # sum of |available - required| over them
    score: float | None          # fit_score of (required, available)
    covered: float | None        # covered_share of (required, available)
    plan_score: float | None     # fit_score of (required, scheduled)
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    service_level: float | None = None
    target: float | None = None


def fit_days(rows: Sequence[FitRow],
             service: Mapping[date, IntervalStats] | None = None) -> list[FitDay]:
    """One :class:`FitDay` per day of ``rows`` (by the interval's start),
    in order.  ``service``: day -> the engine's statistics over that day
    (a day-long interval of the same replay)."""
    days: dict[date, list[FitRow]] = {}
    for r in rows:
        days.setdefault(r.start.date(), []).append(r)
    out: list[FitDay] = []
    for d, mine in days.items():
        known = [(r.required, r.available) for r in mine
                 if r.required is not None and r.available is not None]
        plan = [(r.required, r.scheduled) for r in mine
                if r.required is not None and r.scheduled is not None]
        st = service.get(d) if service is not None else None
        out.append(FitDay(
            day=d, intervals=len(known), required_sum=sum(n for n, _h in known),
            gap_sum=sum(abs(h - n) for n, h in known),
            score=fit_score(known), covered=covered_share(known),
            plan_score=fit_score(plan),
            offered=st.offered if st is not None else sum(r.offered for r in mine),
            answered=st.answered if st is not None else sum(r.answered for r in mine),
            abandoned=st.abandoned if st is not None else sum(r.abandoned for r in mine),
            service_level=st.service_level if st is not None else None,
            target=st.target if st is not None else None))
    return out
