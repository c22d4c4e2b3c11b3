"""Interval statistics: service level, ASA, abandons and agent occupancy.

Sans-I/O like the rest of :mod:`acd.core`: no clock reads, no I/O, no awaits.
Feed it every action the core returns::

    stats = Statistics({"vip": ServiceLevel(10, 0.9)}, default_sl=ServiceLevel(20, 0.8))
    for action in center.handle(event, now):
        stats.on_action(action, now)

It consumes :class:`WriteCallRecord` and :class:`AgentStateChanged` and ignores
everything else.  Figures come from the timestamps the actions carry, not from
``now``.

Intervals
    ``interval_s`` long (900 s by default), aligned on the driver's clock:
    interval start = ``floor(t / interval_s) * interval_s``.  A queued call
    counts in the interval of its ``queued_at`` (falling back to
    ``started_at`` if the record has none), whenever it is answered or ends.
    A call without a queue counts only in ``ivr_only``, in the interval of its
    ``started_at``, and never in the queue figures.

Call figures (per interval, queue and customer class)
    ``offered``            calls that entered the queue (every outcome)
    ``answered``           outcome answered
    ``abandoned``          outcome abandoned
    ``other``              any other outcome (a call that entered the queue and
                           ended otherwise, e.g. a future ``fallback``)
    ``answered_within_sl`` answered with ``wait <= threshold_s`` of the call's
                           class (unknown classes use ``default_sl``)
    ``service_level``      ``answered_within_sl / offered``, the planners'
                           Erlang definition: abandons and other outcomes
                           count against it
    ``sl_answered_only``   ``answered_within_sl / answered``
    ``sl_met``             ``service_level >= target``
    ``asa_s``              mean wait of answered calls
    ``abandon_rate``       ``abandoned / offered``
    ``longest_wait_s``     longest wait of any call of the interval, whatever
                           its outcome
    ``mean_talk_s``        mean talk time of answered calls
    A ratio with a zero denominator is ``None``, not 0.

Agent occupancy
    From consecutive :class:`AgentStateChanged` of an agent, the time spent in
    each state is split exactly at interval boundaries.  ``busy`` = reserved +
    on_call + wrap_up; ``available`` = logged-in time minus paused time
    (= ready + busy); occupancy = busy / available.  Logged-out time counts
    nowhere.  Over several agents or intervals occupancy is time-weighted
    (sum of busy over sum of available), not a mean of ratios.  Time before the
    first state change seen for an agent is unknown and not counted.

``now`` on the read side
    The agent read methods take a keyword ``now``.  Without it only closed
    spans (state changes already seen) count; with it, each agent's current
    state also counts from its last change up to ``now``.  A wallboard should
    always pass ``now``.  Reading never changes the state.  Call figures do not
    depend on ``now``: a call counts once its record is written.

Memory and speed
    Only aggregates are kept per (interval, queue, class) and per (interval,
    agent), never calls.  ``on_action`` is O(1) for a call record; for a state
    change it is O(1) plus one step per interval boundary the closed span
    crosses (amortised O(1): an agent's spans cover its time once).
    ``prune(before)`` drops every interval ending at or before ``before``.
    A call record that later arrives for a pruned interval is dropped and
    counted in ``dropped``; agent time in pruned intervals is clipped off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from acd.core.model import (
    Action,
    AgentState,
    AgentStateChanged,
    CallRecord,
    Outcome,
    WriteCallRecord,
)

__all__ = [
    "DEFAULT_SL",
    "AgentIntervalStats",
    "IntervalStats",
    "Row",
    "ServiceLevel",
    "Statistics",
]

#: a row of :meth:`Statistics.to_rows`
Row = dict[str, str | int | float | bool | None]


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """``target`` share of calls answered within ``threshold_s`` seconds (e.g. 80/20)."""

    threshold_s: float
    target: float

    def __post_init__(self) -> None:
        if not self.threshold_s >= 0:
            raise ValueError(f"service level threshold {self.threshold_s!r} must be >= 0")
        if not 0.0 <= self.target <= 1.0:
            raise ValueError(f"service level target {self.target!r} must be within 0..1")


#: 80 % within 20 s: the default for classes without a service level of their own
DEFAULT_SL = ServiceLevel(20.0, 0.8)


@dataclass(frozen=True, slots=True)
class IntervalStats:
    """Call figures of one (interval, queue, class), or a sum of several.

    In a sum, ``start``/``end`` span the summed intervals (None if there were
    none), ``queue``/``customer_class`` are None for "all", and
    ``threshold_s``/``target``/``sl_met`` are None when the summed classes
    do not share one service level.
    """

    start: float | None
    end: float | None
    queue: str | None
    customer_class: str | None
    offered: int
    answered: int
    abandoned: int
    other: int
    answered_within_sl: int
    threshold_s: float | None
    target: float | None
    service_level: float | None
    sl_answered_only: float | None
    sl_met: bool | None
    asa_s: float | None
    abandon_rate: float | None
    longest_wait_s: float | None
    mean_talk_s: float | None
    #: sum of the waits of answered calls (ASA numerator)
    answered_wait_sum_s: float
    #: sum of the talk times of answered calls
    talk_sum_s: float


@dataclass(frozen=True, slots=True)
class AgentIntervalStats:
    """State times of one agent in one interval, or a sum (agent_id None: all agents)."""

    start: float | None
    end: float | None
    agent_id: str | None
    ready_s: float
    reserved_s: float
    on_call_s: float
    wrap_up_s: float
    paused_s: float
    logged_in_s: float
    #: reserved + on_call + wrap_up
    busy_s: float
    #: logged in minus paused (= ready + busy)
    available_s: float
    #: busy / available; None when the agent was never available
    occupancy: float | None


# ----------------------------------------------------------------- aggregates


class _CallAgg:
    __slots__ = ("abandoned", "answered", "max_wait", "offered", "other", "talk_n",
                 "talk_sum", "wait_n", "wait_sum", "within")

    def __init__(self) -> None:
        self.offered = 0
        self.answered = 0
        self.abandoned = 0
        self.other = 0
        self.within = 0
        self.wait_sum = 0.0
        self.wait_n = 0
        self.talk_sum = 0.0
        self.talk_n = 0
        self.max_wait: float | None = None

    def add(self, o: _CallAgg) -> None:
        self.offered += o.offered
        self.answered += o.answered
        self.abandoned += o.abandoned
        self.other += o.other
        self.within += o.within
        self.wait_sum += o.wait_sum
        self.wait_n += o.wait_n
        self.talk_sum += o.talk_sum
        self.talk_n += o.talk_n
        if o.max_wait is not None and (self.max_wait is None or o.max_wait > self.max_wait):
            self.max_wait = o.max_wait


# seconds per state, indexed like this; LOGGED_OUT is never accumulated
_STATES = (AgentState.READY, AgentState.RESERVED, AgentState.ON_CALL,
           AgentState.WRAP_UP, AgentState.PAUSED)
_INDEX = {s: i for i, s in enumerate(_STATES)}
_READY, _RESERVED, _ON_CALL, _WRAP_UP, _PAUSED = range(5)


class _Cursor:
    """An agent's current state and since when."""

    __slots__ = ("since", "state")

    def __init__(self, state: AgentState, since: float) -> None:
        self.state = state
        self.since = since


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# ----------------------------------------------------------------- statistics


class Statistics:
    """Aggregates call records and agent state changes into interval figures."""

    def __init__(self, service_levels: Mapping[str, ServiceLevel] | None = None,
                 default_sl: ServiceLevel = DEFAULT_SL,
                 interval_s: float = 900.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s {interval_s!r} must be > 0")
        self._sl: dict[str, ServiceLevel] = dict(service_levels or {})
        self._default_sl = default_sl
        self._interval_s = float(interval_s)
        # interval index -> (queue, class) -> aggregate
        self._calls: dict[int, dict[tuple[str, str], _CallAgg]] = {}
        # interval index -> ivr-only calls
        self._ivr: dict[int, int] = {}
        # interval index -> agent -> seconds per state (see _STATES)
        self._agents: dict[int, dict[str, list[float]]] = {}
        self._cursors: dict[str, _Cursor] = {}
        # intervals below this index were pruned
        self._min_k: int | None = None
        #: call records that arrived for already-pruned intervals
        self.dropped = 0

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def service_level_for(self, customer_class: str) -> ServiceLevel:
        """The service level of a class (the default for unknown classes)."""
        return self._sl.get(customer_class, self._default_sl)

    # ------------------------------------------------------------ write side

    def on_action(self, action: Action, now: float) -> None:
        """Take one action of the core; all but call records and agent state
        changes are ignored.  ``now`` is not used: actions carry their times."""
        if isinstance(action, WriteCallRecord):
            self._record(action.record)
        elif isinstance(action, AgentStateChanged):
            self._state_changed(action)

    def _index(self, t: float) -> int:
        k = math.floor(t / self._interval_s)
        # guard against rounding with non-integral interval lengths
        if (k + 1) * self._interval_s <= t:
            k += 1
        elif k * self._interval_s > t:
            k -= 1
        return k

    def _record(self, r: CallRecord) -> None:
        if r.queue is None:
            k = self._index(r.started_at)
            if self._min_k is not None and k < self._min_k:
                self.dropped += 1
                return
            self._ivr[k] = self._ivr.get(k, 0) + 1
            return
        k = self._index(r.queued_at if r.queued_at is not None else r.started_at)
        if self._min_k is not None and k < self._min_k:
            self.dropped += 1
            return
        slot = self._calls.get(k)
        if slot is None:
            slot = self._calls[k] = {}
        key = (r.queue, r.customer_class)
        agg = slot.get(key)
        if agg is None:
            agg = slot[key] = _CallAgg()
        agg.offered += 1
        wait = r.wait_s
        if wait is None and r.queued_at is not None:
            wait = (r.answered_at if r.answered_at is not None else r.ended_at) - r.queued_at
        if wait is not None and (agg.max_wait is None or wait > agg.max_wait):
            agg.max_wait = wait
        outcome = r.outcome
        if outcome is Outcome.ANSWERED:
            agg.answered += 1
            if wait is not None:
                agg.wait_sum += wait
                agg.wait_n += 1
                if wait <= self._sl.get(r.customer_class, self._default_sl).threshold_s:
                    agg.within += 1
            if r.talk_s is not None:
                agg.talk_sum += r.talk_s
                agg.talk_n += 1
        elif outcome is Outcome.ABANDONED:
            agg.abandoned += 1
        else:
            agg.other += 1

    def _state_changed(self, ev: AgentStateChanged) -> None:
        cur = self._cursors.get(ev.agent_id)
        if cur is None:
            # first change seen: the time before it is unknown
            self._cursors[ev.agent_id] = _Cursor(ev.new, ev.at)
            return
        if ev.at > cur.since:
            if cur.state is not AgentState.LOGGED_OUT:
                idx = _INDEX[cur.state]
                for k, secs in self._split(cur.since, ev.at):
                    slot = self._agents.get(k)
                    if slot is None:
                        slot = self._agents[k] = {}
                    times = slot.get(ev.agent_id)
                    if times is None:
                        times = slot[ev.agent_id] = [0.0] * len(_STATES)
                    times[idx] += secs
            cur.since = ev.at
        # an older timestamp (clock stepped back) adds no time and keeps `since`
        cur.state = ev.new

    def _split(self, a: float, b: float) -> Iterator[tuple[int, float]]:
        """(interval index, seconds) of the span [a, b), clipped to the kept intervals."""
        size = self._interval_s
        if self._min_k is not None:
            a = max(a, self._min_k * size)
        if a >= b:
            return
        k = self._index(a)
        while a < b:
            end = (k + 1) * size
            seg_end = b if b < end else end
            yield k, seg_end - a
            a = seg_end
            k += 1

    def prune(self, before: float) -> None:
        """Drop every interval that ends at or before ``before``.

        Call records arriving later for these intervals are dropped (and
        counted in ``dropped``) and agent time falling in them is clipped off,
        rather than rebuilding partial intervals.
        """
        limit = math.floor(before / self._interval_s)
        if (limit + 1) * self._interval_s <= before:
            limit += 1
        if self._min_k is not None and limit <= self._min_k:
            return
        self._min_k = limit
        for table in (self._calls, self._ivr, self._agents):
            for k in [k for k in table if k < limit]:
                del table[k]

    # ------------------------------------------------------------- call side

    def _stats(self, agg: _CallAgg, start: float | None, end: float | None,
               queue: str | None, customer_class: str | None,
               sl: ServiceLevel | None) -> IntervalStats:
        service_level = _ratio(agg.within, agg.offered)
        sl_met = None
        if sl is not None and service_level is not None:
            sl_met = service_level >= sl.target
        return IntervalStats(
            start=start, end=end, queue=queue, customer_class=customer_class,
            offered=agg.offered, answered=agg.answered, abandoned=agg.abandoned,
            other=agg.other, answered_within_sl=agg.within,
            threshold_s=sl.threshold_s if sl is not None else None,
            target=sl.target if sl is not None else None,
            service_level=service_level,
            sl_answered_only=_ratio(agg.within, agg.answered),
            sl_met=sl_met,
            asa_s=_ratio(agg.wait_sum, agg.wait_n),
            abandon_rate=_ratio(agg.abandoned, agg.offered),
            longest_wait_s=agg.max_wait,
            mean_talk_s=_ratio(agg.talk_sum, agg.talk_n),
            answered_wait_sum_s=agg.wait_sum,
            talk_sum_s=agg.talk_sum,
        )

    def _matching(self, queue: str | None, customer_class: str | None
                  ) -> Iterator[tuple[int, str, str, _CallAgg]]:
        for k in sorted(self._calls):
            for (q, c), agg in sorted(self._calls[k].items()):
                if (queue is None or q == queue) and (
                        customer_class is None or c == customer_class):
                    yield k, q, c, agg

    def _merged_sl(self, classes: set[str], customer_class: str | None) -> ServiceLevel | None:
        if customer_class is not None:
            return self.service_level_for(customer_class)
        sls = {self.service_level_for(c) for c in classes}
        return sls.pop() if len(sls) == 1 else None

    def intervals(self, queue: str | None = None, customer_class: str | None = None, *,
                  combine: bool = False) -> list[IntervalStats]:
        """Call figures per interval and (queue, class), oldest first.

        ``queue``/``customer_class`` filter (None: all).  With ``combine`` the
        matching (queue, class) pairs are summed into one row per interval.
        """
        size = self._interval_s
        if not combine:
            return [self._stats(agg, k * size, (k + 1) * size, q, c, self.service_level_for(c))
                    for k, q, c, agg in self._matching(queue, customer_class)]
        per_k: dict[int, tuple[_CallAgg, set[str]]] = {}
        for k, _q, c, agg in self._matching(queue, customer_class):
            if k not in per_k:
                per_k[k] = (_CallAgg(), set())
            total, classes = per_k[k]
            total.add(agg)
            classes.add(c)
        return [self._stats(total, k * size, (k + 1) * size, queue, customer_class,
                            self._merged_sl(classes, customer_class))
                for k, (total, classes) in per_k.items()]

    def totals(self, queue: str | None = None,
               customer_class: str | None = None) -> IntervalStats:
        """Call figures summed over all kept intervals (filters as in :meth:`intervals`)."""
        total = _CallAgg()
        classes: set[str] = set()
        first: int | None = None
        last: int | None = None
        for k, _q, c, agg in self._matching(queue, customer_class):
            total.add(agg)
            classes.add(c)
            first = k if first is None else min(first, k)
            last = k if last is None else max(last, k)
        size = self._interval_s
        return self._stats(total, None if first is None else first * size,
                           None if last is None else (last + 1) * size,
                           queue, customer_class, self._merged_sl(classes, customer_class))

    def ivr_only(self) -> dict[float, int]:
        """Calls that ended without reaching a queue, per interval start (oldest first)."""
        size = self._interval_s
        return {k * size: n for k, n in sorted(self._ivr.items())}

    def ivr_only_total(self) -> int:
        return sum(self._ivr.values())

    # ------------------------------------------------------------ agent side

    def _agent_times(self, agent_id: str | None, now: float | None
                     ) -> dict[tuple[int, str], list[float]]:
        out: dict[tuple[int, str], list[float]] = {}
        for k, slot in self._agents.items():
            for a, times in slot.items():
                if agent_id is None or a == agent_id:
                    out[k, a] = list(times)
        if now is not None:
            for a, cur in self._cursors.items():
                if (agent_id is not None and a != agent_id) or cur.state is AgentState.LOGGED_OUT:
                    continue
                idx = _INDEX[cur.state]
                for k, secs in self._split(cur.since, now):
                    open_times = out.get((k, a))
                    if open_times is None:
                        open_times = out[k, a] = [0.0] * len(_STATES)
                    open_times[idx] += secs
        return out

    @staticmethod
    def _agent_stats(t: list[float], start: float | None, end: float | None,
                     agent_id: str | None) -> AgentIntervalStats:
        busy = t[_RESERVED] + t[_ON_CALL] + t[_WRAP_UP]
        available = t[_READY] + busy
        return AgentIntervalStats(
            start=start, end=end, agent_id=agent_id,
            ready_s=t[_READY], reserved_s=t[_RESERVED], on_call_s=t[_ON_CALL],
            wrap_up_s=t[_WRAP_UP], paused_s=t[_PAUSED],
            logged_in_s=available + t[_PAUSED], busy_s=busy, available_s=available,
            occupancy=_ratio(busy, available),
        )

    def agent_intervals(self, agent_id: str | None = None, *, now: float | None = None,
                        combine: bool = False) -> list[AgentIntervalStats]:
        """State times and occupancy per interval and agent, oldest first.

        ``agent_id`` filters (None: all agents).  With ``combine`` all matching
        agents are summed into one row per interval (``agent_id`` None, or the
        filter).  ``now``: see the module docstring.
        """
        size = self._interval_s
        times = self._agent_times(agent_id, now)
        if not combine:
            return [self._agent_stats(t, k * size, (k + 1) * size, a)
                    for (k, a), t in sorted(times.items())]
        per_k: dict[int, list[float]] = {}
        for (k, _a), t in times.items():
            acc = per_k.setdefault(k, [0.0] * len(_STATES))
            for i, v in enumerate(t):
                acc[i] += v
        return [self._agent_stats(t, k * size, (k + 1) * size, agent_id)
                for k, t in sorted(per_k.items())]

    def agent_totals(self, agent_id: str | None = None, *,
                     now: float | None = None) -> AgentIntervalStats:
        """State times and occupancy summed over all kept intervals."""
        acc = [0.0] * len(_STATES)
        ks: list[int] = []
        for (k, _a), t in self._agent_times(agent_id, now).items():
            ks.append(k)
            for i, v in enumerate(t):
                acc[i] += v
        size = self._interval_s
        return self._agent_stats(acc, min(ks) * size if ks else None,
                                 (max(ks) + 1) * size if ks else None, agent_id)

    def occupancy(self, agent_id: str | None = None, *,
                  now: float | None = None) -> float | None:
        """Occupancy over all kept intervals, of one agent or of all agents together."""
        return self.agent_totals(agent_id, now=now).occupancy

    # ------------------------------------------------------------------ rows

    def to_rows(self, table: Literal["queues", "agents", "ivr"] = "queues", *,
                now: float | None = None) -> list[Row]:
        """Plain dicts, one per row and all with the same keys (CSV, JSON, tables).

        ``queues``: :meth:`intervals` rows; ``agents``: :meth:`agent_intervals`
        rows (``now`` as there); ``ivr``: ``start``, ``end``, ``ivr_only``.
        """
        if table == "queues":
            return [asdict(s) for s in self.intervals()]
        if table == "agents":
            return [asdict(s) for s in self.agent_intervals(now=now)]
        if table == "ivr":
            size = self._interval_s
            return [{"start": start, "end": start + size, "ivr_only": n}
                    for start, n in self.ivr_only().items()]
        raise ValueError(f"unknown table {table!r}")
