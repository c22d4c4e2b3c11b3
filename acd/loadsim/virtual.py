"""Virtual-time load simulation of the production router.

:func:`run_virtual` drives :class:`acd.core.center.ContactCenter` (the same
object the engine drives) with a discrete-event loop: a heap of
``(time, seq, kind, a, b)`` tuples, a seeded :class:`random.Random` per
stream (arrivals, callers, IVR, handle times, patience, ring-no-answer), no
sockets, no sleeping, no clock reads.  Same scenario and seed, same result.

How the loop carries out the core's actions (as the engine does):

``ConnectCall``
    with probability ``ring_no_answer`` the agent does not answer:
    ``OfferFailed`` after the offer's ring timeout; otherwise
    ``OfferAnswered`` after ``ring_delay_s`` (0 by default), then
    ``ConversationEnded`` after the call's handle time.
``StartTimer`` / ``CancelTimer``
    a timer table (key -> token) and heap entries; a heap entry whose token
    is no longer the key's is stale and dropped.  ``TimerFired(key)`` at the
    due time.
``WriteCallRecord``
    the call's final record: one :class:`CallOutcome` per call.
``AgentStateChanged``
    agent time (busy = reserved + on call + wrap-up; available = logged in
    minus paused), split at interval boundaries, for occupancy.
``FallbackCall``, ``RecordExplanation``
    nothing to do (the record follows).

A caller whose patience runs out before an agent answers hangs up
(``CallerHungUp``).  Events for a call that is gone, or for an offer that
is no longer the call's (the caller left; the offer failed), are dropped
before they reach the core.  Agents log in and out at their shift times; an
agent whose shift ends during a call is logged out when the call ends.

Figures (per queue, customer class and interval, and in total; a call
counts in the interval of its arrival and in the queue it ended in):
offered, answered, abandoned, other (fallback; or "unfinished": still waiting
when the run ran out of events), service level = share of
*all* arrivals answered within the threshold (``sl_answered_only``: of the
answered), P(wait > 0) = share not offered to an agent at once, mean wait
over all arrivals (abandoners' time to hang up included), ASA, abandon
rate, occupancy of the agents with the queue's skill, longest wait.
Calls arriving before the warm-up ends count nowhere.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from acd.core.center import ContactCenter
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentState,
    AgentStateChanged,
    CallerHungUp,
    CallQueued,
    CallRecord,
    CallStarted,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    Outcome,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.loadsim.draws import DrawnCall, draw_calls, stream
from acd.loadsim.scenario import Scenario, TraceCall, clock, routed_queues

__all__ = ["CallOutcome", "Occupancy", "Row", "SimError", "VirtualResult", "plot", "run_virtual"]

# event kinds (ints: cheap to compare, never compared across heap entries
# because seq is unique)
_ARRIVE, _PATIENCE, _ANSWER, _RONA, _END, _TIMER, _LOGIN, _LOGOUT = range(8)

#: agent state -> 0 not available (logged out, paused), 1 idle (ready), 2 busy
_OCC = {AgentState.LOGGED_OUT: 0, AgentState.PAUSED: 0, AgentState.READY: 1,
        AgentState.RESERVED: 2, AgentState.ON_CALL: 2, AgentState.WRAP_UP: 2}
_OUTCOME_TEXT = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned",
                 Outcome.FALLBACK: "fallback", Outcome.IVR: "ivr"}
SAMPLE_S = 60.0
_new_tuple = tuple.__new__
PROGRESS_EVERY = 10_000


class SimError(Exception):
    """The scenario cannot be simulated (e.g. the IVR names an unknown queue)."""


class CallOutcome(NamedTuple):
    """One call, from its final record."""

    call_id: str
    number: str
    queue: str | None  # the queue it ended in (None: ended in the IVR)
    first_queue: str | None  # the queue it was put in first
    customer_class: str
    arrival_s: float  # queued (or started, for an IVR-only call), seconds from the start
    wait_s: float | None  # queued until answered / hung up / fallback
    outcome: str  # answered | abandoned | fallback | ivr | unfinished (still waiting at the end)
    agent_id: str | None
    offers: int
    waited: bool  # not offered to an agent at once
    counted: bool  # arrived after the warm-up
    answered_at: float | None
    ended_at: float
    priority: int


@dataclass(frozen=True, slots=True)
class Row:
    """Figures of one (scope, key, interval) or of the whole run (interval None)."""

    scope: str  # total | queue | class
    key: str  # queue or class name ("" for total)
    interval_start: float | None  # seconds from the start; None = the whole run
    label: str  # HH:MM of the interval, or "all"
    t_s: float | None  # the service-level threshold (None: mixed)
    offered: int
    answered: int
    abandoned: int
    other: int
    answered_within_sl: int
    service_level: float | None
    sl_answered_only: float | None
    pwait: float | None
    mean_wait_s: float | None
    asa_s: float | None
    abandon_rate: float | None
    occupancy: float | None
    longest_wait_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(slots=True)
class VirtualResult:
    """What :func:`run_virtual` returns.  Figures are computed on first use."""

    scenario: str
    seed: int
    start_s: float
    interval_s: float
    queues: tuple[str, ...]
    classes: tuple[str, ...]
    calls: list[CallOutcome]
    #: waiting calls (queued, not yet answered) per queue, sampled every ``SAMPLE_S``
    #: from t = 0: one tuple per sample, in the order of ``queues``
    waiting: list[tuple[int, ...]]
    #: per interval: {skill ("" = all agents): (busy seconds, available seconds)}
    agent_time: dict[int, dict[str, list[float]]]
    queue_skill: dict[str, str]
    queue_sl: dict[str, float]
    class_sl: dict[str, float]
    default_sl: float
    warmup_s: float
    end_s: float
    wall_s: float
    core_events: int
    arrivals: int
    #: intervals of the arrivals (the day): 0 .. n_intervals - 1 from t = 0; every
    #: one of them has a row for the total and each queue
    n_intervals: int = 0
    _rows: list[Row] | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- figures

    def rows(self) -> list[Row]:
        """Every row: for total, each queue and each class, the whole run and
        each interval."""
        if self._rows is None:
            self._rows = self._aggregate()
        return self._rows

    def totals(self, scope: str = "total", key: str = "") -> Row:
        for row in self.rows():
            if row.scope == scope and row.key == key and row.interval_start is None:
                return row
        raise KeyError(f"no figures for {scope} {key!r}")

    def summary_rows(self) -> list[dict[str, Any]]:
        """The whole run: total, then each queue, then each class (dicts)."""
        return [r.as_dict() for r in self.rows() if r.interval_start is None]

    def interval_rows(self, scope: str = "total", key: str = "") -> list[dict[str, Any]]:
        """Per interval, for the total (default), a queue or a class."""
        return [r.as_dict() for r in self.rows()
                if r.interval_start is not None and r.scope == scope and r.key == key]

    def _threshold(self, c: CallOutcome) -> float:
        sl = self.class_sl.get(c.customer_class)
        if sl is not None:
            return sl
        return self.queue_sl.get(c.queue or "", self.default_sl)

    def _aggregate(self) -> list[Row]:
        interval = self.interval_s
        queue_sl, class_sl, default_sl = self.queue_sl, self.class_sl, self.default_sl
        # one pass over the calls, grouped by (interval, queue, class): [offered,
        #   answered, abandoned, other, within the call's / the queue's / the
        #   class's threshold, waited, wait_sum, answered_wait_sum, longest]
        groups: dict[tuple[int, str, str], list[float]] = {}
        limits: dict[tuple[str, str], tuple[float, float, float]] = {}
        for c in self.calls:
            queue = c.queue
            if not c.counted or queue is None:
                continue
            cls = c.customer_class
            lim = limits.get((queue, cls))
            if lim is None:
                lim = limits[(queue, cls)] = (
                    self._threshold(c), queue_sl.get(queue, default_sl),
                    class_sl.get(cls, default_sl))
            k = (int(c.arrival_s // interval), queue, cls)
            g = groups.get(k)
            if g is None:
                g = groups[k] = [0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
            wait = c.wait_s or 0.0
            g[0] += 1
            if c.outcome == "answered":
                g[1] += 1
                g[9] += wait
                if wait <= lim[0]:
                    g[4] += 1
                if wait <= lim[1]:
                    g[5] += 1
                if wait <= lim[2]:
                    g[6] += 1
            elif c.outcome == "abandoned":
                g[2] += 1
            else:
                g[3] += 1
            if c.waited:
                g[7] += 1
            g[8] += wait
            if wait > g[10]:
                g[10] = wait
        # (scope, key, interval index or -1) -> [offered, answered, abandoned, other,
        #   within_sl, waited, wait_sum, answered_wait_sum, longest]
        agg: dict[tuple[str, str, int], list[float]] = {}
        thresholds: dict[tuple[str, str], set[float]] = {}
        for (i, queue, cls), g in groups.items():
            lim = limits[(queue, cls)]
            for scope, key, t_s, w in (("total", "", lim[0], 4), ("queue", queue, lim[1], 5),
                                       ("class", cls, lim[2], 6)):
                thresholds.setdefault((scope, key), set()).add(t_s)
                for k2 in ((scope, key, i), (scope, key, -1)):
                    a = agg.get(k2)
                    if a is None:
                        a = agg[k2] = [0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
                    a[0] += g[0]
                    a[1] += g[1]
                    a[2] += g[2]
                    a[3] += g[3]
                    a[4] += g[w]
                    a[5] += g[7]
                    a[6] += g[8]
                    a[7] += g[9]
                    if g[10] > a[8]:
                        a[8] = g[10]
        # every interval of the run appears for the total and each queue
        # (zero rows where no call arrived)
        first = int(self.warmup_s // interval)
        for i in range(first, self.n_intervals):
            for scope, key in (("total", ""), *(("queue", q) for q in self.queues)):
                if (scope, key, i) not in agg:
                    agg[(scope, key, i)] = [0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
            thresholds.setdefault(("total", ""), set())
        for q in self.queues:
            thresholds.setdefault(("queue", q), {queue_sl.get(q, default_sl)})
        scope_rank = {"total": 0, "queue": 1, "class": 2}
        rows: list[Row] = []
        for (scope, key, i), a in sorted(agg.items(), key=lambda kv: (
                scope_rank[kv[0][0]], kv[0][1], kv[0][2])):
            ts = thresholds.get((scope, key), set())
            n_off, n_ans = int(a[0]), int(a[1])
            rows.append(Row(
                scope=scope, key=key, interval_start=None if i < 0 else i * interval,
                label="all" if i < 0 else clock(i * interval, self.start_s),
                t_s=next(iter(ts)) if len(ts) == 1 else None,
                offered=n_off, answered=n_ans, abandoned=int(a[2]), other=int(a[3]),
                answered_within_sl=int(a[4]), service_level=_ratio(a[4], n_off),
                sl_answered_only=_ratio(a[4], n_ans), pwait=_ratio(a[5], n_off),
                mean_wait_s=_ratio(a[6], n_off), asa_s=_ratio(a[7], n_ans),
                abandon_rate=_ratio(a[2], n_off),
                occupancy=self._occupancy(scope, key, None if i < 0 else i),
                longest_wait_s=a[8] if n_off else None,
            ))
        return rows

    def _occupancy(self, scope: str, key: str, i: int | None) -> float | None:
        if scope == "class":
            return None
        skill = "" if scope == "total" else self.queue_skill.get(key, key)
        busy = avail = 0.0
        spans = self.agent_time.values() if i is None else (self.agent_time.get(i, {}),)
        for per_skill in spans:
            ba = per_skill.get(skill)
            if ba is not None:
                busy += ba[0]
                avail += ba[1]
        return busy / avail if avail > 0 else None

    # ---------------------------------------------------------------- export

    def to_json(self, calls: bool = True, indent: int | None = None) -> str:
        """Everything as JSON: run facts, rows (totals and intervals), the
        waiting-calls series and (``calls=True``) one record per call."""
        doc: dict[str, Any] = {
            "scenario": self.scenario, "seed": self.seed, "start": clock(0, self.start_s),
            "start_s": self.start_s, "interval_s": self.interval_s, "warmup_s": self.warmup_s,
            "end_s": self.end_s, "arrivals": self.arrivals, "core_events": self.core_events,
            "wall_s": round(self.wall_s, 6), "queues": list(self.queues),
            "classes": list(self.classes), "ivr_only": self.ivr_only(),
            "totals": self.summary_rows(),
            "intervals": [r.as_dict() for r in self.rows() if r.interval_start is not None],
            "waiting": {"every_s": SAMPLE_S, "queues": list(self.queues),
                        "samples": [list(s) for s in self.waiting]},
        }
        if calls:
            doc["calls"] = [c._asdict() for c in self.calls]
        return json.dumps(doc, indent=indent, ensure_ascii=False)

    def ivr_only(self) -> int:
        """Calls (after the warm-up) that ended in the IVR, never queued."""
        return sum(1 for c in self.calls if c.counted and c.queue is None)

    def calls_per_second(self) -> float:
        return self.arrivals / self.wall_s if self.wall_s > 0 else math.inf


# ---------------------------------------------------------------- the run


class _Live:
    """A call in the simulation (the loop's side; the core has its own)."""

    __slots__ = ("answered", "counted", "first_offer", "handle", "offer", "qi", "queued_at")

    def __init__(self, handle: float, queued_at: float, counted: bool) -> None:
        self.handle = handle
        self.queued_at = queued_at
        self.counted = counted
        self.offer = 0
        self.first_offer = -1.0
        self.answered = False
        self.qi = -1  # index of the queue it is counted waiting in (-1: not waiting)


def run_virtual(scenario: Scenario, seed: int = 0, calls: int | None = None, *,
                trace: Sequence[TraceCall] | None = None, warmup_calls: int = 0,
                progress: Callable[[int, int | None, float], None] | None = None,
                keep_gc: bool = False) -> VirtualResult:
    """Simulate ``scenario`` in virtual time with the production router.

    ``calls``: stop after this many arrivals (default: the scenario's
    ``calls``, else the end of its arrivals).  ``trace``: replay these calls
    instead of random arrivals (default: the scenario's trace, if any).
    ``warmup_calls``: the first calls are not counted (besides the
    scenario's warm-up time).  ``progress(arrivals, expected or None,
    virtual time)`` is called every 10,000 arrivals and at the end.
    The cyclic garbage collector is paused during the run (the loop makes
    no reference cycles) unless ``keep_gc``.
    """
    gc_was = gc.isenabled()
    if not keep_gc:
        gc.disable()
    try:
        return _Loop(scenario, seed, calls, trace, warmup_calls, progress).run()
    finally:
        if gc_was and not keep_gc:
            gc.enable()


class _Span:
    """An agent's current occupancy span: since when, its code (_OCC), and
    the keys its time counts under ("" = all agents, then each skill)."""

    __slots__ = ("code", "keys", "since")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.since = 0.0
        self.code = 0
        self.keys = keys


class Occupancy:
    """Agent time for occupancy, from agent state changes (both modes):
    ``agent_time[interval][key] = [busy s, available s]``, key "" for all
    agents and each skill; busy = reserved + on a call + wrap-up, available =
    logged in minus paused; split at interval boundaries, nothing before
    ``warmup_s``.  A span is closed only when the agent's code changes
    (reserved -> on call -> wrap-up is one busy span)."""

    def __init__(self, skills: dict[str, tuple[str, ...]], warmup_s: float,
                 interval_s: float) -> None:
        self.spans = {aid: _Span(("", *sorted(sk))) for aid, sk in skills.items()}
        self.warmup_s = warmup_s
        self.interval_s = interval_s
        self.agent_time: dict[int, dict[str, list[float]]] = {}

    def change(self, agent_id: str, new: AgentState, t: float) -> None:
        span = self.spans.get(agent_id)
        if span is None:
            return
        code = _OCC[new]
        old = span.code
        if code != old:
            if old and t > span.since:
                self._add(span.since, t, old == 2, span.keys)
            span.since = t
            span.code = code

    def close(self, end_s: float) -> None:
        """Count every open span up to ``end_s`` (the end of the run)."""
        for span in self.spans.values():
            if span.code and end_s > span.since:
                self._add(span.since, end_s, span.code == 2, span.keys)
            span.since = end_s

    def _add(self, a: float, b: float, busy: bool, keys: tuple[str, ...]) -> None:
        if a < self.warmup_s:
            a = self.warmup_s
        interval = self.interval_s
        while a < b:
            i = int(a // interval)
            seg = min(b, (i + 1) * interval)
            per = self.agent_time.get(i)
            if per is None:
                per = self.agent_time[i] = {}
            d = seg - a
            for k in keys:
                ba = per.get(k)
                if ba is None:
                    ba = per[k] = [0.0, 0.0]
                ba[1] += d
                if busy:
                    ba[0] += d
            a = seg


#: a heap entry: (time, seq, kind, subject, number).  subject: the call or
#: agent id ("" for an arrival: the one pending arrival is ``_Loop.upcoming``);
#: number: the offer id (_ANSWER, _RONA), the timer's seq (_TIMER), else 0
_Entry = tuple[float, int, int, str, int]


class _Loop:
    """One run: the event heap, the core, and what the figures need.

    Plain typed attributes and methods, no closures: the same code runs as
    Python or compiled with mypyc (``ACD_COMPILE=1``, see docs/simulator.md)."""

    def __init__(self, sc: Scenario, seed: int, max_calls: int | None,
                 trace: Sequence[TraceCall] | None, warmup_calls: int,
                 progress: Callable[[int, int | None, float], None] | None) -> None:
        self.wall0 = time.perf_counter()
        self.sc = sc
        self.seed = seed
        self.progress = progress
        policy = sc.policy
        trace = trace if trace is not None else sc.trace
        if max_calls is None:
            max_calls = sc.calls
        if trace is not None:
            max_calls = len(trace) if max_calls is None else min(max_calls, len(trace))
        self.horizon = sc.day_end_s
        if max_calls is None and self.horizon is None:
            raise SimError("the scenario has a constant rate and no end: give calls or hours")
        self.expected = max_calls if max_calls is not None else (
            round(sc.expected_calls() or 0) or None)
        self.warmup_calls = warmup_calls
        self.cc = ContactCenter(CoreConfig(
            policy=policy, agents=tuple(a.profile for a in sc.agents), wrap_up_s=sc.wrap_up_s,
            rona_pause_s=sc.rona_pause_s, explain=False))
        self.queue_names = tuple(policy.queues)
        self.qindex = {q: i for i, q in enumerate(self.queue_names)}
        self.reroutes = bool(policy.routes)
        self.routed = routed_queues(policy)
        # random streams: the callers (acd.loadsim.draws) and ring-no-answer
        self.calls_iter = draw_calls(sc, seed, max_calls, trace)
        self.interval = sc.interval_s
        self.rona_p = sc.ring_no_answer
        self.rona_draw = stream(seed, "rona").random
        self.ring_delay = sc.ring_delay_s
        self.warmup_s = sc.warmup_s

        self.heap: list[_Entry] = []
        self.seq = 0
        self.upcoming: DrawnCall | None = None
        self.live: dict[str, _Live] = {}
        #: timer key -> seq of its live heap entry; seq -> key
        self.timers: dict[tuple[str, str], int] = {}
        self.timer_keys: dict[int, tuple[str, str]] = {}
        self.outcomes: list[CallOutcome] = []
        self.waiting = [0] * len(self.queue_names)
        self.instant: list[tuple[str, int]] = []  # offers answered at once, in order
        self.core_events = 0
        self.occupancy = Occupancy({s.profile.agent_id: tuple(s.profile.skills)
                                    for s in sc.agents}, sc.warmup_s, sc.interval_s)

    def push(self, at: float, kind: int, subject: str, number: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, subject, number))

    def apply(self, out: list[Action], t: float) -> None:
        """Carry out the core's actions."""
        for act in out:
            if isinstance(act, AgentStateChanged):
                self.occupancy.change(act.agent_id, act.new, t)
            elif isinstance(act, ConnectCall):
                cid = act.call_id
                c = self.live[cid]
                c.offer = oid = act.offer_id
                if c.first_offer < 0:
                    c.first_offer = t
                if self.rona_p and self.rona_draw() < self.rona_p:
                    self.push(t + act.ring_timeout_s, _RONA, cid, oid)
                elif self.ring_delay:
                    self.push(t + self.ring_delay, _ANSWER, cid, oid)
                else:  # answered at once: right after these actions, before
                    self.instant.append((cid, oid))  # anything else at this time
            elif isinstance(act, StartTimer):
                key = act.key
                old_seq = self.timers.get(key)
                if old_seq is not None:
                    del self.timer_keys[old_seq]
                self.seq += 1
                self.timers[key] = self.seq
                self.timer_keys[self.seq] = key
                heapq.heappush(self.heap, (act.at, self.seq, _TIMER, key[1], self.seq))
            elif isinstance(act, WriteCallRecord):
                self.record(act.record)
            elif isinstance(act, CancelTimer):
                gone = self.timers.pop(act.key, None)
                if gone is not None:
                    del self.timer_keys[gone]
            # FallbackCall, RecordExplanation: nothing to do (the record follows)

    def record(self, rec: CallRecord) -> None:
        c = self.live.pop(rec.call_id)
        if c.qi >= 0:
            self.waiting[c.qi] -= 1
        q_at = rec.queued_at
        # tuple.__new__: a CallOutcome without running the namedtuple's __new__
        self.outcomes.append(_new_tuple(CallOutcome, (
            rec.call_id, rec.caller, rec.queue, rec.first_queue or rec.queue,
            rec.customer_class, q_at if q_at is not None else rec.started_at,
            rec.wait_s, _OUTCOME_TEXT[rec.outcome], rec.agent_id, rec.offers,
            not (0 <= c.first_offer <= c.queued_at), c.counted, rec.answered_at,
            rec.ended_at, rec.priority)))

    def answer(self, cid: str, oid: int, t: float) -> None:
        lc = self.live.get(cid)
        if lc is None or lc.offer != oid:
            return  # the caller left, or the offer is not current
        self.core_events += 1
        out = self.cc.handle(OfferAnswered(cid, oid), t)
        lc.answered = True
        if lc.qi >= 0:
            self.waiting[lc.qi] -= 1
            lc.qi = -1
        self.push(t + lc.handle, _END, cid, 0)
        self.apply(out, t)

    def arrive(self, d: DrawnCall, t: float, arrived: int) -> None:
        cid = f"c{arrived}"
        counted = arrived > self.warmup_calls and t >= self.warmup_s
        queue = d.queue
        cc = self.cc
        self.core_events += 2
        cc.handle(CallStarted(cid, d.number), t)
        if queue is None:  # ended in the IVR
            self.live[cid] = _Live(0.0, t, counted)
            self.apply(cc.handle(IvrEnded(cid, d.path, "ivr"), t), t)
            return
        if queue not in self.qindex and queue not in self.routed:
            raise SimError(f"call {cid}: queue {queue!r} is not a queue of the "
                           f"routing policy (queues: {', '.join(self.queue_names)})")
        c = self.live[cid] = _Live(d.handle_s, t, counted)
        out = cc.handle(CallQueued(cid, queue, d.path, d.priority, d.attributes), t)
        if self.reroutes:  # the policy may put it in another queue
            call = cc.call(cid)
            if call is not None and call.queue is not None:
                queue = call.queue
        c.qi = qi = self.qindex[queue]
        self.waiting[qi] += 1
        self.apply(out, t)
        patience = d.patience_s
        if patience is not None and cid in self.live and (
                c.first_offer < 0 or self.rona_p or self.ring_delay):
            self.push(t + patience, _PATIENCE, cid, 0)

    def run(self) -> VirtualResult:
        sc = self.sc
        heap = self.heap
        pop = heapq.heappop
        for spec in sc.agents:
            aid = spec.profile.agent_id
            if not spec.shifts:
                self.seq += 1
                heap.append((0.0, self.seq, _LOGIN, aid, 0))
            for on_s, off_s in spec.shifts:
                if off_s <= 0:
                    continue
                self.seq += 1
                heap.append((max(on_s, 0.0), self.seq, _LOGIN, aid, 0))
                self.seq += 1
                heap.append((off_s, self.seq, _LOGOUT, aid, 0))
        heapq.heapify(heap)
        # arrivals: pulled one ahead, so the next arrival is always on the heap
        calls_iter = self.calls_iter
        self.upcoming = next(calls_iter, None)
        if self.upcoming is not None:
            self.push(self.upcoming.arrival_s, _ARRIVE, "", 0)

        cc = self.cc
        handle = cc.handle
        live = self.live
        waiting = self.waiting
        instant = self.instant
        samples: list[tuple[int, ...]] = []
        next_sample = 0.0
        arrived = 0
        arrivals_done = False
        horizon = self.horizon
        stop_after = horizon if horizon is not None else -math.inf
        progress = self.progress
        last_t = last_arrival = 0.0
        while heap:
            t, _, kind, subject, number = pop(heap)
            if arrivals_done and not live and t > stop_after:
                break
            last_t = t
            if t >= next_sample:
                while next_sample <= t:
                    samples.append(tuple(waiting))
                    next_sample += SAMPLE_S
            if kind == _ARRIVE:
                d = self.upcoming
                assert d is not None
                arrived += 1
                last_arrival = t
                self.upcoming = nxt = next(calls_iter, None)
                if nxt is None:
                    arrivals_done = True
                else:
                    self.push(nxt.arrival_s, _ARRIVE, "", 0)
                self.arrive(d, t, arrived)
                if progress is not None and arrived % PROGRESS_EVERY == 0:
                    progress(arrived, self.expected, t)
            elif kind == _END:
                self.core_events += 1
                self.apply(handle(ConversationEnded(subject, "caller"), t), t)
            elif kind == _PATIENCE:
                lc = live.get(subject)
                if lc is None or lc.answered:
                    continue
                self.core_events += 1
                self.apply(handle(CallerHungUp(subject), t), t)
            elif kind == _TIMER:
                key = self.timer_keys.pop(number, None)
                if key is None:
                    continue  # cancelled or restarted
                del self.timers[key]
                self.core_events += 1
                self.apply(handle(TimerFired(key), t), t)
            elif kind == _ANSWER:
                self.answer(subject, number, t)
            elif kind == _RONA:
                lc = live.get(subject)
                if lc is None or lc.offer != number:
                    continue
                self.core_events += 1
                self.apply(handle(OfferFailed(subject, number, "NOANSWER"), t), t)
            elif kind == _LOGIN:
                ag = cc.agent(subject)
                # logged out; or asked out at the end of its call (back-to-back shifts: stays)
                if ag.state is AgentState.LOGGED_OUT or ag.logout_after_call:
                    self.core_events += 1
                    self.apply(handle(AgentLogin(subject), t), t)
            elif kind == _LOGOUT:
                if cc.agent(subject).state is not AgentState.LOGGED_OUT:
                    self.core_events += 1  # on a call: the core logs it out when it ends
                    self.apply(handle(AgentLogout(subject), t), t)
            while instant:
                cid, oid = instant.pop(0)
                self.answer(cid, oid, t)
        return self.result(samples, arrived, last_t, last_arrival)

    def result(self, samples: list[tuple[int, ...]], arrived: int, last_t: float,
               last_arrival: float) -> VirtualResult:
        sc, cc, horizon = self.sc, self.cc, self.horizon
        end_s = last_t if horizon is None else max(last_t, horizon)
        outcomes = self.outcomes
        # calls nobody will ever take (no agent left, a caller who never hangs
        # up): recorded as "unfinished", waiting until the end
        for cid, lc in self.live.items():
            call = cc.call(cid)
            if call is None:
                continue
            queued = call.queued_at if call.queued_at is not None else call.started_at
            outcomes.append(CallOutcome(
                cid, call.caller, call.queue, call.first_queue, call.customer_class, queued,
                end_s - queued, "unfinished", None, call.offers, lc.first_offer < 0 or
                lc.first_offer > lc.queued_at, lc.counted, None, end_s, call.priority))
        self.occupancy.close(end_s)
        if self.progress is not None:
            self.progress(arrived, self.expected, last_t)

        return result_of(sc, self.seed, outcomes, samples, self.occupancy.agent_time, end_s,
                         time.perf_counter() - self.wall0, self.core_events, arrived,
                         last_arrival)


def result_of(sc: Scenario, seed: int, calls: list[CallOutcome],
              waiting: list[tuple[int, ...]], agent_time: dict[int, dict[str, list[float]]],
              end_s: float, wall_s: float, core_events: int, arrivals: int,
              last_arrival: float) -> VirtualResult:
    """A run's figures (virtual or live), with what they need from ``sc``."""
    policy = sc.policy
    queue_names = tuple(policy.queues)
    horizon = sc.day_end_s
    return VirtualResult(
        scenario=sc.name, seed=seed, start_s=sc.start_s, interval_s=sc.interval_s,
        queues=queue_names,
        classes=tuple(sorted({c.customer_class for c in calls if c.queue is not None})),
        calls=calls, waiting=waiting, agent_time=agent_time,
        queue_skill={q: qp.require.skill for q, qp in policy.queues.items()},
        queue_sl={q: sc.queue_sl(q) for q in queue_names},
        class_sl={c: cl.sl_threshold_s for c, cl in policy.classes.items()},
        default_sl=sc.sl_seconds, warmup_s=sc.warmup_s, end_s=end_s, wall_s=wall_s,
        core_events=core_events, arrivals=arrivals,
        n_intervals=math.ceil((horizon if horizon is not None else last_arrival)
                              / sc.interval_s),
    )


# ---------------------------------------------------------------- plots


def plot(result: VirtualResult, path: str | Path, title: str | None = None) -> Path:
    """A PNG: service level per interval (total and per queue) and waiting
    calls across the day.  Uses matplotlib's Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
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
