"""Interval statistics: service level, ASA, AHT, abandons, transfers and agent
occupancy -- the live figures of the engine and those of ``acd report calls``
(which replays stored records and agent state changes into this class).
Every figure is defined once, in ``docs/reports.md``; this docstring is the
short form.

Sans-I/O like the rest of :mod:`acd.core`: no clock reads, no I/O, no awaits.
Feed it every action the core returns::

    stats = Statistics({"vip": ServiceLevel(10, 0.9)}, default_sl=ServiceLevel(20, 0.8))
    for action in center.handle(event, now):
        stats.on_action(action, now)

It consumes :class:`WriteCallRecord` and :class:`AgentStateChanged` and ignores
everything else.  Figures come from the timestamps the actions carry, not from
``now``.

Intervals
    ``interval_s`` long (900 s by default), aligned on local midnight: interval
    index = ``floor((t + utc_offset(t) - anchor) / interval_s)``; without
    ``utc_offset`` the offset is 0 (the driver's clock: UTC for the engine).
    ``interval_s`` = 604 800 (a week) is anchored on Monday 00:00 (anchor 4
    days: 1970-01-05 was a Monday), any other length on 1970-01-01 00:00 (so
    86 400 is a local day and 900/1800/3600 divide local days).  With a zone
    that has DST (``utc_offset`` varies), intervals follow local time: the
    local day of a DST change is 23 or 25 h long, and in the repeated hour of
    a fall-back both passes count in the same local interval.  ``start``/``end``
    of a row are the UTC instants of its local boundaries.  A queued call
    counts in the interval of its ``queued_at`` (falling back to
    ``started_at`` if the record has none), whenever it is answered or ends.
    A call without a queue counts only in ``ivr_only`` / :meth:`ivr_outcomes`,
    in the interval of its ``started_at``, and never in the queue figures.

Call figures (per interval, queue and customer class)
    ``offered``            calls that entered the queue (every outcome)
    ``answered``           outcome answered
    ``short_abandoned``    abandoned with ``wait < short_abandon_s`` (0: off)
    ``abandoned``          abandoned, short abandons excluded
    ``other``              any other outcome (fallback, ...)
    ``sl_offered``         ``offered - short_abandoned``
    ``answered_within_sl`` answered with ``wait <= threshold_s`` of the call's
                           class (unknown classes use ``default_sl``)
    ``service_level``      ``answered_within_sl / sl_offered``, the planners'
                           Erlang definition: abandons and other outcomes
                           count against it, short abandons do not
    ``sl_answered_only``   ``answered_within_sl / answered``
    ``sl_met``             ``service_level >= target``
    ``asa_s``              mean wait of the answered calls with a known
                           wait (every call of the engine has one)
    ``abandon_rate``       ``abandoned / sl_offered``
    ``longest_wait_s``     longest wait of any call of the interval, whatever
                           its outcome
    ``mean_talk_s``        mean talk time of the answered calls with a known
                           talk time (every call of the engine has one)
    ``wrap_sum_s``         wrap-up after those calls: the agent's
                           ``wrap_up`` span that followed the call (added when
                           it ends; a wrap-up still running counts nothing)
    ``aht_s``              ``(talk_sum_s + wrap_sum_s)`` over the same calls
                           as ``mean_talk_s``
    ``transferred``        calls that reached this queue from another one
                           (``first_queue`` set: overflow, re-queue)
    A ratio with a zero denominator is ``None``, not 0.

IVR outcomes (calls without a queue)
    per interval of ``started_at``, last IVR node and end reason (the
    record's ``ivr_end``, ``transfer:NUMBER`` shortened to ``transfer``):
    ``calls``, ``transferred`` (reason ``transfer``), ``ivr_sum_s``.

Agent figures
    From consecutive :class:`AgentStateChanged` of an agent, the time spent in
    each state is split exactly at interval boundaries.  ``busy`` = reserved +
    on_call + wrap_up; ``available`` = logged-in time minus paused time
    (= ready + busy); occupancy = busy / available; utilisation = busy /
    logged-in.  Logged-out time counts nowhere.  Over several agents or
    intervals the ratios are time-weighted (sum over sum), not a mean of
    ratios.  Time before the first state change seen for an agent is unknown
    and not counted.  ``answered``, ``talk_s``, ``wrap_s`` and ``aht_s`` of an
    agent are those of the calls it answered, counted in the call's interval
    (as the queue figures), so they add up to the queues' figures.

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
    :meth:`ended_totals` / :meth:`ivr_ended_total` count every call ever
    seen and are never pruned (counters).  Interval starts are cached per
    index; the reads that take ``since`` skip the older intervals without
    walking them (a sorted index), so "today" costs O(today).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator, Mapping
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
    "DAY_S",
    "DEFAULT_SL",
    "WEEK_S",
    "AgentIntervalStats",
    "IntervalStats",
    "IvrOutcomeStats",
    "Row",
    "ServiceLevel",
    "Statistics",
    "UtcOffset",
    "ivr_reason",
]

#: a row of :meth:`Statistics.to_rows`
Row = dict[str, str | int | float | bool | None]
#: seconds east of UTC at a UTC instant (a time zone's offset, DST included)
UtcOffset = Callable[[float], float]

DAY_S = 86400.0
WEEK_S = 7 * DAY_S
#: 1970-01-05 00:00, the first Monday of the epoch: weeks start there
_MONDAY = 4 * DAY_S


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
    #: abandoned with a wait below the short-abandon threshold (not in ``abandoned``)
    short_abandoned: int = 0
    #: offered minus short abandons: the denominator of service level and abandon rate
    sl_offered: int = 0
    #: calls that reached this queue from another one (``first_queue`` set)
    transferred: int = 0
    #: wrap-up after the answered calls (ended wrap-ups only)
    wrap_sum_s: float = 0.0
    #: (talk + wrap-up) / answered
    aht_s: float | None = None


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
    #: busy / logged in; None when the agent was never logged in
    utilisation: float | None = None
    #: calls answered (counted in the call's interval)
    answered: int = 0
    #: their talk time
    talk_s: float = 0.0
    #: the wrap-up after them
    wrap_s: float = 0.0
    #: (talk_s + wrap_s) / answered
    aht_s: float | None = None


@dataclass(frozen=True, slots=True)
class IvrOutcomeStats:
    """Calls that ended in the IVR, of one (interval, last node, end reason) or a sum."""

    start: float | None
    end: float | None
    #: the last IVR node of the calls (None in a sum over nodes)
    node: str | None
    #: how they ended (``IvrEnded.reason``, ``transfer:N`` as ``transfer``; None in a sum)
    reason: str | None
    calls: int
    #: transferred out of the IVR (reason ``transfer``)
    transferred: int
    #: time from start to end, summed
    ivr_sum_s: float
    #: ivr_sum_s / calls
    mean_ivr_s: float | None


def ivr_reason(reason: str) -> str:
    """An IVR end reason as the figures group it: ``transfer:1234`` is ``transfer``."""
    return "transfer" if reason.startswith("transfer:") else reason


# ----------------------------------------------------------------- aggregates


class _CallAgg:
    __slots__ = ("abandoned", "answered", "max_wait", "offered", "other", "short", "talk_n",
                 "talk_sum", "transferred", "wait_n", "wait_sum", "within", "wrap_sum")

    def __init__(self) -> None:
        self.offered = 0
        self.answered = 0
        self.abandoned = 0
        self.short = 0
        self.other = 0
        self.within = 0
        self.transferred = 0
        self.wait_sum = 0.0
        self.wait_n = 0
        self.talk_sum = 0.0
        self.talk_n = 0
        self.wrap_sum = 0.0
        self.max_wait: float | None = None

    def add(self, o: _CallAgg) -> None:
        self.offered += o.offered
        self.answered += o.answered
        self.abandoned += o.abandoned
        self.short += o.short
        self.other += o.other
        self.within += o.within
        self.transferred += o.transferred
        self.wait_sum += o.wait_sum
        self.wait_n += o.wait_n
        self.talk_sum += o.talk_sum
        self.talk_n += o.talk_n
        self.wrap_sum += o.wrap_sum
        if o.max_wait is not None and (self.max_wait is None or o.max_wait > self.max_wait):
            self.max_wait = o.max_wait


class _AgentCalls:
    """The calls an agent answered in one interval."""

    __slots__ = ("answered", "talk", "talk_n", "wrap")

    def __init__(self) -> None:
        self.answered = 0
        self.talk = 0.0
        self.talk_n = 0  # of them, with a known talk time (AHT's denominator)
        self.wrap = 0.0


class _IvrAgg:
    __slots__ = ("calls", "secs", "transferred")

    def __init__(self) -> None:
        self.calls = 0
        self.transferred = 0
        self.secs = 0.0


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
    """Aggregates call records and agent state changes into interval figures.

    ``short_abandon_s``: abandons with a shorter wait are counted apart
    (``short_abandoned``), out of service level and abandon rate (0: off).
    ``utc_offset``: the local time zone the intervals align on (see the
    module docstring; None: offset 0, the driver's clock).
    """

    def __init__(self, service_levels: Mapping[str, ServiceLevel] | None = None,
                 default_sl: ServiceLevel = DEFAULT_SL,
                 interval_s: float = 900.0, *, short_abandon_s: float = 0.0,
                 utc_offset: UtcOffset | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s {interval_s!r} must be > 0")
        if not short_abandon_s >= 0:
            raise ValueError(f"short_abandon_s {short_abandon_s!r} must be >= 0")
        self._sl: dict[str, ServiceLevel] = dict(service_levels or {})
        self._default_sl = default_sl
        self._interval_s = float(interval_s)
        self._anchor = _MONDAY if self._interval_s == WEEK_S else 0.0
        self._short_s = float(short_abandon_s)
        self._offset = utc_offset
        # interval index -> (queue, class) -> aggregate
        self._calls: dict[int, dict[tuple[str, str], _CallAgg]] = {}
        # the keys of _calls, sorted (reads since an instant skip the older ones)
        self._keys: list[int] = []
        # interval index -> its start (start_of is pure per index; zone look-ups are dear)
        self._starts: dict[int, float] = {}
        # queue -> calls ended: answered, abandoned (short ones included), other;
        # never pruned (monotonic, for counters)
        self._ended: dict[str, list[int]] = {}
        # calls ended without a queue, never pruned
        self._ivr_ended = 0
        # interval index -> ivr-only calls
        self._ivr: dict[int, int] = {}
        # interval index -> (last node, reason) -> ivr-only calls
        self._ivr_out: dict[int, dict[tuple[str, str], _IvrAgg]] = {}
        # interval index -> agent -> seconds per state (see _STATES)
        self._agents: dict[int, dict[str, list[float]]] = {}
        # interval index -> agent -> calls it answered
        self._agent_calls: dict[int, dict[str, _AgentCalls]] = {}
        self._cursors: dict[str, _Cursor] = {}
        # agent -> the aggregates its running wrap-up is added to (its last answered call)
        self._wrap_for: dict[str, tuple[_CallAgg, _AgentCalls]] = {}
        # intervals below this index were pruned
        self._min_k: int | None = None
        #: call records that arrived for already-pruned intervals
        self.dropped = 0

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @property
    def short_abandon_s(self) -> float:
        return self._short_s

    def service_level_for(self, customer_class: str) -> ServiceLevel:
        """The service level of a class (the default for unknown classes)."""
        return self._sl.get(customer_class, self._default_sl)

    # ------------------------------------------------------------ intervals

    def _index(self, t: float) -> int:
        size = self._interval_s
        x = t - self._anchor
        if self._offset is not None:
            x += self._offset(t)
        k = math.floor(x / size)
        # guard against rounding with non-integral interval lengths
        if (k + 1) * size <= x:
            k += 1
        elif k * size > x:
            k -= 1
        return k

    def start_of(self, k: int) -> float:
        """The instant (driver's clock, UTC) interval ``k`` starts: the
        first one whose local time is the interval's local start (for a
        local start that does not exist, in a DST gap, the gap's end)."""
        cached = self._starts.get(k)
        if cached is not None:
            return cached
        local = k * self._interval_s + self._anchor
        start = local if self._offset is None else self._first(self._index, k, local)
        self._starts[k] = start
        return start

    def _first(self, key: Callable[[float], int], k: int, local: float) -> float:
        """The first instant whose ``key`` (a local interval or day index) is
        ``k``, whose local start is ``local`` (seconds since the epoch, local)."""
        off = self._offset
        assert off is not None
        t = local - off(local)
        t = local - off(t)
        if key(t) >= k and key(t - 1e-6) < k:
            return t
        # near a DST change: search the first instant whose index is >= k
        lo, hi = t - 2 * DAY_S, t + 2 * DAY_S
        for _ in range(80):
            mid = (lo + hi) / 2
            if key(mid) >= k:
                hi = mid
            else:
                lo = mid
        # zone changes and local starts fall on whole seconds; the offset
        # function may round sub-second instants (datetime's microseconds)
        r = float(round(hi))
        return r if abs(r - hi) < 1e-3 and key(r) >= k else hi

    def index_of(self, t: float) -> int:
        """The interval an instant falls in."""
        return self._index(t)

    def day_start(self, t: float) -> float:
        """The start of the local day (the intervals' zone) that ``t`` falls in:
        what the wallboard, the control API and the metrics call "today"."""
        if self._offset is None:
            return math.floor(t / DAY_S) * DAY_S
        # as start_of: the first instant whose local date is t's (a midnight
        # in a DST gap: the gap's end; a fall-back over midnight: the first pass)
        day = self._local_day(t)
        return min(self._first(self._local_day, day, day * DAY_S), t)

    def _local_day(self, t: float) -> int:
        off = self._offset
        return math.floor((t + (off(t) if off is not None else 0.0)) / DAY_S)

    def _split(self, a: float, b: float) -> Iterator[tuple[int, float]]:
        """(interval index, seconds) of the span [a, b), clipped to the kept intervals."""
        size = self._interval_s
        off = self._offset
        if self._min_k is not None:
            a = max(a, self.start_of(self._min_k))
        if off is None:
            anchor = self._anchor
            if a >= b:
                return
            k = self._index(a)
            while a < b:
                end = (k + 1) * size + anchor
                seg_end = b if b < end else end
                yield k, seg_end - a
                a = seg_end
                k += 1
            return
        while a < b:
            k = self._index(a)
            o = off(a)
            end = (k + 1) * size + self._anchor - o  # the boundary if the offset holds
            seg_end = b if b < end else end
            if seg_end <= a:  # rounding at a boundary
                seg_end = min(b, a + 1e-6)
            if off(seg_end - 1e-6) != o and seg_end - 1e-6 > a:
                # the offset changes within: cut at the change (found by bisection)
                lo, hi = a, seg_end - 1e-6
                for _ in range(64):  # bounded: floats near 1.7e9 step by 2.4e-7
                    mid = (lo + hi) / 2
                    if hi - lo <= 1e-6 or mid <= lo or mid >= hi:
                        break
                    if off(mid) == o:
                        lo = mid
                    else:
                        hi = mid
                r = float(round(hi))
                seg_end = r if lo < r <= hi + 1e-6 and off(r) != o else hi
            yield k, seg_end - a
            a = seg_end

    # ------------------------------------------------------------ write side

    def on_action(self, action: Action, now: float) -> None:
        """Take one action of the core; all but call records and agent state
        changes are ignored.  ``now`` is not used: actions carry their times."""
        if isinstance(action, WriteCallRecord):
            self._record(action.record)
        elif isinstance(action, AgentStateChanged):
            self._state_changed(action)

    def _record(self, r: CallRecord) -> None:
        if r.queue is None:
            self._ivr_ended += 1
            k = self._index(r.started_at)
            if self._min_k is not None and k < self._min_k:
                self.dropped += 1
                return
            self._ivr[k] = self._ivr.get(k, 0) + 1
            slot_i = self._ivr_out.get(k)
            if slot_i is None:
                slot_i = self._ivr_out[k] = {}
            reason = ivr_reason(r.ivr_end)
            key_i = (r.ivr_path[-1] if r.ivr_path else "", reason)
            agg_i = slot_i.get(key_i)
            if agg_i is None:
                agg_i = slot_i[key_i] = _IvrAgg()
            agg_i.calls += 1
            if reason == "transfer":
                agg_i.transferred += 1
            agg_i.secs += max(0.0, r.ended_at - r.started_at)
            return
        ended = self._ended.get(r.queue)
        if ended is None:
            ended = self._ended[r.queue] = [0, 0, 0]
        ended[0 if r.outcome is Outcome.ANSWERED else
              1 if r.outcome is Outcome.ABANDONED else 2] += 1
        k = self._index(r.queued_at if r.queued_at is not None else r.started_at)
        if self._min_k is not None and k < self._min_k:
            self.dropped += 1
            return
        slot = self._calls.get(k)
        if slot is None:
            slot = self._calls[k] = {}
            insort(self._keys, k)
        key = (r.queue, r.customer_class)
        agg = slot.get(key)
        if agg is None:
            agg = slot[key] = _CallAgg()
        agg.offered += 1
        if r.first_queue is not None and r.first_queue != r.queue:
            agg.transferred += 1
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
            if r.agent_id is not None:
                per = self._agent_calls.get(k)
                if per is None:
                    per = self._agent_calls[k] = {}
                mine = per.get(r.agent_id)
                if mine is None:
                    mine = per[r.agent_id] = _AgentCalls()
                mine.answered += 1
                if r.talk_s is not None:
                    mine.talk += r.talk_s
                    mine.talk_n += 1
                    # the agent's wrap-up after this call goes to both (only
                    # after a call of known talk time: AHT counts those calls)
                    self._wrap_for[r.agent_id] = (agg, mine)
                else:
                    self._wrap_for.pop(r.agent_id, None)
        elif outcome is Outcome.ABANDONED:
            if self._short_s > 0 and wait is not None and wait < self._short_s:
                agg.short += 1
            else:
                agg.abandoned += 1
        else:
            agg.other += 1

    def _state_changed(self, ev: AgentStateChanged) -> None:
        cur = self._cursors.get(ev.agent_id)
        if cur is None:
            # first change seen: the time before it is unknown
            self._cursors[ev.agent_id] = _Cursor(ev.new, ev.at)
            return
        if cur.state is AgentState.WRAP_UP and ev.new is not AgentState.WRAP_UP:
            target = self._wrap_for.pop(ev.agent_id, None)
            if target is not None and ev.at > cur.since:
                target[0].wrap_sum += ev.at - cur.since
                target[1].wrap += ev.at - cur.since
        elif ev.new is AgentState.ON_CALL:
            self._wrap_for.pop(ev.agent_id, None)  # a wrap-up never seen to end
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

    def prune(self, before: float) -> None:
        """Drop every interval that ends at or before ``before``.

        Call records arriving later for these intervals are dropped (and
        counted in ``dropped``) and agent time falling in them is clipped off,
        rather than rebuilding partial intervals.
        """
        limit = self._index(before)
        if self._min_k is not None and limit <= self._min_k:
            return
        self._min_k = limit
        for table in (self._calls, self._ivr, self._ivr_out, self._agents, self._agent_calls,
                      self._starts):
            for k in [k for k in table if k < limit]:
                del table[k]
        del self._keys[:bisect_left(self._keys, limit)]

    # ------------------------------------------------------------- call side

    def _stats(self, agg: _CallAgg, start: float | None, end: float | None,
               queue: str | None, customer_class: str | None,
               sl: ServiceLevel | None) -> IntervalStats:
        sl_offered = agg.offered - agg.short
        service_level = _ratio(agg.within, sl_offered)
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
            abandon_rate=_ratio(agg.abandoned, sl_offered),
            longest_wait_s=agg.max_wait,
            mean_talk_s=_ratio(agg.talk_sum, agg.talk_n),
            answered_wait_sum_s=agg.wait_sum,
            talk_sum_s=agg.talk_sum,
            short_abandoned=agg.short, sl_offered=sl_offered,
            transferred=agg.transferred, wrap_sum_s=agg.wrap_sum,
            aht_s=_ratio(agg.talk_sum + agg.wrap_sum, agg.talk_n),
        )

    def _matching(self, queue: str | None, customer_class: str | None,
                  since: float | None = None) -> Iterator[tuple[int, str, str, _CallAgg]]:
        keys = self._keys if since is None else \
            self._keys[bisect_left(self._keys, self._index(since)):]
        for k in keys:
            for (q, c), agg in sorted(self._calls[k].items()):
                if (queue is None or q == queue) and (
                        customer_class is None or c == customer_class):
                    yield k, q, c, agg

    def _merged_sl(self, classes: set[str], customer_class: str | None) -> ServiceLevel | None:
        if customer_class is not None:
            return self.service_level_for(customer_class)
        sls = {self.service_level_for(c) for c in classes}
        return sls.pop() if len(sls) == 1 else None

    def service_level_of(self, classes: set[str], default_class: str) -> ServiceLevel | None:
        """The one service level of ``classes`` (the default class's when
        there are none); None when they differ (a queue serving classes of
        different targets has no one target)."""
        if not classes:
            return self.service_level_for(default_class)
        return self._merged_sl(classes, None)

    def intervals(self, queue: str | None = None, customer_class: str | None = None, *,
                  combine: bool = False, since: float | None = None) -> list[IntervalStats]:
        """Call figures per interval and (queue, class), oldest first.

        ``queue``/``customer_class`` filter (None: all).  With ``combine`` the
        matching (queue, class) pairs are summed into one row per interval.
        ``since``: only the intervals from the one that instant falls in
        (as :meth:`totals`; the older ones are not walked).
        """
        if not combine:
            return [self._stats(agg, self.start_of(k), self.start_of(k + 1), q, c,
                                self.service_level_for(c))
                    for k, q, c, agg in self._matching(queue, customer_class, since)]
        per_k: dict[int, tuple[_CallAgg, set[str]]] = {}
        for k, _q, c, agg in self._matching(queue, customer_class, since):
            if k not in per_k:
                per_k[k] = (_CallAgg(), set())
            total, classes = per_k[k]
            total.add(agg)
            classes.add(c)
        return [self._stats(total, self.start_of(k), self.start_of(k + 1), queue,
                            customer_class, self._merged_sl(classes, customer_class))
                for k, (total, classes) in per_k.items()]

    def totals(self, queue: str | None = None,
               customer_class: str | None = None, *, since: float | None = None
               ) -> IntervalStats:
        """Call figures summed over all kept intervals (filters as in
        :meth:`intervals`); ``since``: only the intervals from the one that
        instant falls in (``day_start(now)``: today; ``now``: this interval)."""
        total = _CallAgg()
        classes: set[str] = set()
        first: int | None = None
        last: int | None = None
        for k, _q, c, agg in self._matching(queue, customer_class, since):
            total.add(agg)
            classes.add(c)
            first = k if first is None else min(first, k)
            last = k if last is None else max(last, k)
        return self._stats(total, None if first is None else self.start_of(first),
                           None if last is None else self.start_of(last + 1),
                           queue, customer_class, self._merged_sl(classes, customer_class))

    def queues(self, *, since: float | None = None) -> list[str]:
        """The queues with figures (``since``: in the intervals from that instant's), sorted."""
        return sorted({q for _k, q, _c, _a in self._matching(None, None, since)})

    def classes(self, *, since: float | None = None) -> list[str]:
        """The customer classes with figures (``since`` as in :meth:`queues`), sorted."""
        return sorted({c for _k, _q, c, _a in self._matching(None, None, since)})

    def queue_classes(self, *, since: float | None = None) -> dict[str, set[str]]:
        """Queue -> the customer classes with figures in it (``since`` as in
        :meth:`queues`)."""
        out: dict[str, set[str]] = {}
        for _k, q, c, _agg in self._matching(None, None, since):
            out.setdefault(q, set()).add(c)
        return out

    def ended_totals(self) -> dict[str, tuple[int, int, int]]:
        """Queue -> (answered, abandoned, other) calls ended since these
        statistics began (short abandons among the abandoned, late records
        for pruned intervals included).  Never pruned: these only grow, as
        counters must (``/metrics``)."""
        return {q: (t[0], t[1], t[2]) for q, t in sorted(self._ended.items())}

    def ivr_ended_total(self) -> int:
        """Calls ended without a queue since these statistics began (never
        pruned, as :meth:`ended_totals`)."""
        return self._ivr_ended

    def ivr_only(self) -> dict[float, int]:
        """Calls that ended without reaching a queue, per interval start (oldest first)."""
        return {self.start_of(k): n for k, n in sorted(self._ivr.items())}

    def ivr_only_total(self) -> int:
        return sum(self._ivr.values())

    def ivr_outcomes(self, *, combine: bool = False) -> list[IvrOutcomeStats]:
        """IVR-only calls per interval, last node and end reason (oldest
        first); with ``combine`` one row per interval (node, reason None)."""
        out: list[IvrOutcomeStats] = []
        for k in sorted(self._ivr_out):
            start, end = self.start_of(k), self.start_of(k + 1)
            items = sorted(self._ivr_out[k].items())
            if combine:
                total = _IvrAgg()
                for _key, agg in items:
                    total.calls += agg.calls
                    total.transferred += agg.transferred
                    total.secs += agg.secs
                out.append(self._ivr_stats(total, start, end, None, None))
            else:
                out.extend(self._ivr_stats(agg, start, end, node, reason)
                           for (node, reason), agg in items)
        return out

    def ivr_outcome_totals(self) -> list[IvrOutcomeStats]:
        """IVR-only calls per (last node, end reason) over all kept intervals."""
        acc: dict[tuple[str, str], _IvrAgg] = {}
        ks = sorted(self._ivr_out)
        for k in ks:
            for key, agg in self._ivr_out[k].items():
                t = acc.get(key)
                if t is None:
                    t = acc[key] = _IvrAgg()
                t.calls += agg.calls
                t.transferred += agg.transferred
                t.secs += agg.secs
        start = self.start_of(ks[0]) if ks else None
        end = self.start_of(ks[-1] + 1) if ks else None
        return [self._ivr_stats(agg, start, end, node, reason)
                for (node, reason), agg in sorted(acc.items())]

    @staticmethod
    def _ivr_stats(agg: _IvrAgg, start: float | None, end: float | None, node: str | None,
                   reason: str | None) -> IvrOutcomeStats:
        return IvrOutcomeStats(start=start, end=end, node=node, reason=reason,
                               calls=agg.calls, transferred=agg.transferred,
                               ivr_sum_s=agg.secs, mean_ivr_s=_ratio(agg.secs, agg.calls))

    # ------------------------------------------------------------ agent side

    def _agent_times(self, agent_id: str | None, now: float | None
                     ) -> dict[tuple[int, str], list[float]]:
        """(interval, agent) -> seconds per state, then answered, talk, wrap, talk_n."""
        n = len(_STATES)
        out: dict[tuple[int, str], list[float]] = {}
        for k, slot in self._agents.items():
            for a, times in slot.items():
                if agent_id is None or a == agent_id:
                    out[k, a] = [*times, 0.0, 0.0, 0.0, 0.0]
        for k, per in self._agent_calls.items():
            for a, calls in per.items():
                if agent_id is None or a == agent_id:
                    t = out.get((k, a))
                    if t is None:
                        t = out[k, a] = [0.0] * (n + 4)
                    t[n] += calls.answered
                    t[n + 1] += calls.talk
                    t[n + 2] += calls.wrap
                    t[n + 3] += calls.talk_n
        if now is not None:
            for a, cur in self._cursors.items():
                if (agent_id is not None and a != agent_id) or cur.state is AgentState.LOGGED_OUT:
                    continue
                idx = _INDEX[cur.state]
                for k, secs in self._split(cur.since, now):
                    open_times = out.get((k, a))
                    if open_times is None:
                        open_times = out[k, a] = [0.0] * (n + 4)
                    open_times[idx] += secs
        return out

    @staticmethod
    def _agent_stats(t: list[float], start: float | None, end: float | None,
                     agent_id: str | None) -> AgentIntervalStats:
        busy = t[_RESERVED] + t[_ON_CALL] + t[_WRAP_UP]
        available = t[_READY] + busy
        logged_in = available + t[_PAUSED]
        n = len(_STATES)
        answered = int(t[n])
        return AgentIntervalStats(
            start=start, end=end, agent_id=agent_id,
            ready_s=t[_READY], reserved_s=t[_RESERVED], on_call_s=t[_ON_CALL],
            wrap_up_s=t[_WRAP_UP], paused_s=t[_PAUSED],
            logged_in_s=logged_in, busy_s=busy, available_s=available,
            occupancy=_ratio(busy, available), utilisation=_ratio(busy, logged_in),
            answered=answered, talk_s=t[n + 1], wrap_s=t[n + 2],
            aht_s=_ratio(t[n + 1] + t[n + 2], t[n + 3]),
        )

    def agent_intervals(self, agent_id: str | None = None, *, now: float | None = None,
                        combine: bool = False) -> list[AgentIntervalStats]:
        """State times, occupancy and answered calls per interval and agent,
        oldest first.

        ``agent_id`` filters (None: all agents).  With ``combine`` all matching
        agents are summed into one row per interval (``agent_id`` None, or the
        filter).  ``now``: see the module docstring.
        """
        times = self._agent_times(agent_id, now)
        if not combine:
            return [self._agent_stats(t, self.start_of(k), self.start_of(k + 1), a)
                    for (k, a), t in sorted(times.items())]
        per_k: dict[int, list[float]] = {}
        for (k, _a), t in times.items():
            acc = per_k.setdefault(k, [0.0] * (len(_STATES) + 4))
            for i, v in enumerate(t):
                acc[i] += v
        return [self._agent_stats(t, self.start_of(k), self.start_of(k + 1), agent_id)
                for k, t in sorted(per_k.items())]

    def agent_totals(self, agent_id: str | None = None, *,
                     now: float | None = None) -> AgentIntervalStats:
        """State times, occupancy and answered calls summed over all kept intervals."""
        acc = [0.0] * (len(_STATES) + 4)
        ks: list[int] = []
        for (k, _a), t in self._agent_times(agent_id, now).items():
            ks.append(k)
            for i, v in enumerate(t):
                acc[i] += v
        return self._agent_stats(acc, self.start_of(min(ks)) if ks else None,
                                 self.start_of(max(ks) + 1) if ks else None, agent_id)

    def agents(self, *, now: float | None = None) -> list[str]:
        """The agents with figures, sorted."""
        return sorted({a for _k, a in self._agent_times(None, now)})

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
            return [{"start": self.start_of(k), "end": self.start_of(k + 1), "ivr_only": n}
                    for k, n in sorted(self._ivr.items())]
        raise ValueError(f"unknown table {table!r}")
