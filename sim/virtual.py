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
    AgentLogin,
    AgentLogout,
    AgentState,
    AgentStateChanged,
    CallerHungUp,
    CallQueued,
    CallStarted,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    Outcome,
    RecordExplanation,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from sim.draws import DrawnCall, draw_calls, stream
from sim.scenario import Scenario, TraceCall, clock

__all__ = ["CallOutcome", "Row", "SimError", "VirtualResult", "plot", "run_virtual"]

# event kinds (ints: cheap to compare, never compared across heap entries
# because seq is unique)
_ARRIVE, _PATIENCE, _ANSWER, _RONA, _END, _TIMER, _LOGIN, _LOGOUT = range(8)

#: agent state -> 0 not available (logged out, paused), 1 idle (ready), 2 busy
_OCC = {AgentState.LOGGED_OUT: 0, AgentState.PAUSED: 0, AgentState.READY: 1,
        AgentState.RESERVED: 2, AgentState.ON_CALL: 2, AgentState.WRAP_UP: 2}
_OUTCOME_TEXT = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned",
                 Outcome.FALLBACK: "fallback", Outcome.IVR: "ivr"}
SAMPLE_S = 60.0
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
        # (scope, key, interval index or -1) -> [offered, answered, abandoned, other,
        #   within_sl, waited, wait_sum, answered_wait_sum, longest]
        agg: dict[tuple[str, str, int], list[float]] = {}
        thresholds: dict[tuple[str, str], set[float]] = {}
        queue_sl, class_sl, default_sl = self.queue_sl, self.class_sl, self.default_sl
        for c in self.calls:
            if not c.counted or c.queue is None:
                continue
            i = int(c.arrival_s // interval)
            wait = c.wait_s or 0.0
            answered = c.outcome == "answered"
            t_call = self._threshold(c)
            t_queue = queue_sl.get(c.queue, default_sl)
            t_class = class_sl.get(c.customer_class, default_sl)
            for scope, key, t_s in (("total", "", t_call), ("queue", c.queue, t_queue),
                                    ("class", c.customer_class, t_class)):
                thresholds.setdefault((scope, key), set()).add(t_s)
                within = answered and wait <= t_s
                for k in ((scope, key, i), (scope, key, -1)):
                    a = agg.get(k)
                    if a is None:
                        a = agg[k] = [0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
                    a[0] += 1
                    if answered:
                        a[1] += 1
                        a[7] += wait
                    elif c.outcome == "abandoned":
                        a[2] += 1
                    else:
                        a[3] += 1
                    if within:
                        a[4] += 1
                    if c.waited:
                        a[5] += 1
                    a[6] += wait
                    if wait > a[8]:
                        a[8] = wait
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
        return _run(scenario, seed, calls, trace, warmup_calls, progress)
    finally:
        if gc_was and not keep_gc:
            gc.enable()


def _run(sc: Scenario, seed: int, max_calls: int | None, trace: Sequence[TraceCall] | None,
         warmup_calls: int, progress: Callable[[int, int | None, float], None] | None
         ) -> VirtualResult:
    wall0 = time.perf_counter()
    policy = sc.policy
    trace = trace if trace is not None else sc.trace
    if max_calls is None:
        max_calls = sc.calls
    if trace is not None:
        max_calls = len(trace) if max_calls is None else min(max_calls, len(trace))
    horizon = sc.day_end_s
    if max_calls is None and horizon is None:
        raise SimError("the scenario has a constant rate and no end: give calls or hours")
    expected = max_calls if max_calls is not None else (
        round(sc.expected_calls() or 0) or None)

    cc = ContactCenter(CoreConfig(policy=policy, agents=tuple(a.profile for a in sc.agents),
                                  wrap_up_s=sc.wrap_up_s, rona_pause_s=sc.rona_pause_s,
                                  explain=False))
    handle = cc.handle
    queue_names = tuple(policy.queues)
    qindex = {q: i for i, q in enumerate(queue_names)}
    known_queue = set(queue_names)
    reroutes = bool(policy.routes)
    routed = {t_value for rule in policy.routes for t in rule.when.tests
              if t.attr == "ivr_queue" and not t.negate for t_value in t.values}

    # ---- random streams: the callers (sim.draws) and ring-no-answer
    calls_iter = draw_calls(sc, seed, max_calls, trace)
    interval = sc.interval_s
    rona_p = sc.ring_no_answer
    rona_draw = stream(seed, "rona").random
    ring_delay = sc.ring_delay_s

    # ---- event heap
    heap: list[tuple[float, int, int, Any, Any]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    for agent_spec in sc.agents:
        aid = agent_spec.profile.agent_id
        if not agent_spec.shifts:
            seq += 1
            heap.append((0.0, seq, _LOGIN, aid, None))
        for a, b in agent_spec.shifts:
            if b <= 0:
                continue
            seq += 1
            heap.append((max(a, 0.0), seq, _LOGIN, aid, None))
            seq += 1
            heap.append((b, seq, _LOGOUT, aid, None))
    heapq.heapify(heap)

    # ---- arrivals: pulled one ahead, so the next arrival is always on the heap
    upcoming = next(calls_iter, None)
    if upcoming is not None:
        seq += 1
        push(heap, (upcoming.arrival_s, seq, _ARRIVE, upcoming, None))

    # ---- state
    live: dict[str, _Live] = {}
    timers: dict[tuple[str, str], int] = {}
    outcomes: list[CallOutcome] = []
    waiting = [0] * len(queue_names)
    samples: list[tuple[int, ...]] = []
    next_sample = 0.0
    arrived = 0
    arrivals_done = False
    core_events = 0
    warmup_s = sc.warmup_s
    instant: list[tuple[str, int]] = []  # offers answered at once, in order
    wrap_keys: dict[str, TimerFired] = {}

    # occupancy: agent -> [since, occupancy code (_OCC), skill keys]; a span
    # is closed only when the code changes (reserved -> on call -> wrap-up
    # is one busy span)
    skill_keys: dict[str, tuple[str, ...]] = {
        s.profile.agent_id: ("", *sorted(s.profile.skills)) for s in sc.agents}
    ag_time: dict[str, list[Any]] = {aid: [0.0, 0, keys] for aid, keys in skill_keys.items()}
    agent_time: dict[int, dict[str, list[float]]] = {}
    occ_code = _OCC

    def add_span(a: float, b: float, busy: bool, keys: tuple[str, ...]) -> None:
        if a < warmup_s:
            a = warmup_s
        while a < b:
            i = int(a // interval)
            seg = min(b, (i + 1) * interval)
            per = agent_time.get(i)
            if per is None:
                per = agent_time[i] = {}
            d = seg - a
            for k in keys:
                ba = per.get(k)
                if ba is None:
                    ba = per[k] = [0.0, 0.0]
                ba[1] += d
                if busy:
                    ba[0] += d
            a = seg

    def apply(out: list[Any], t: float) -> None:
        """Carry out the core's actions."""
        nonlocal seq
        for act in out:
            tp = type(act)
            if tp is AgentStateChanged:
                aid = act.agent_id
                st = ag_time[aid]
                new = act.new
                code = occ_code[new]
                if code != st[1]:
                    if st[1] and t > st[0]:
                        add_span(st[0], t, st[1] == 2, st[2])
                    st[0] = t
                    st[1] = code
            elif tp is RecordExplanation:
                pass
            elif tp is ConnectCall:
                cid = act.call_id
                c = live[cid]
                c.offer = oid = act.offer_id
                if c.first_offer < 0:
                    c.first_offer = t
                if rona_p and rona_draw() < rona_p:
                    seq += 1
                    push(heap, (t + act.ring_timeout_s, seq, _RONA, cid, oid))
                elif ring_delay:
                    seq += 1
                    push(heap, (t + ring_delay, seq, _ANSWER, cid, oid))
                else:  # answered at once: right after these actions, before
                    instant.append((cid, oid))  # anything else at this time
            elif tp is StartTimer:
                seq += 1
                timers[act.key] = seq
                push(heap, (act.at, seq, _TIMER, act.key, seq))
            elif tp is WriteCallRecord:
                rec = act.record
                c = live.pop(rec.call_id)
                if c.qi >= 0:
                    waiting[c.qi] -= 1
                q_at = rec.queued_at
                outcomes.append(CallOutcome(
                    rec.call_id, rec.caller, rec.queue, rec.first_queue or rec.queue,
                    rec.customer_class, q_at if q_at is not None else rec.started_at,
                    rec.wait_s, _OUTCOME_TEXT[rec.outcome], rec.agent_id, rec.offers,
                    not (0 <= c.first_offer <= c.queued_at), c.counted, rec.answered_at,
                    rec.ended_at, rec.priority))
            elif tp is CancelTimer:
                timers.pop(act.key, None)

    def answer(cid: str, oid: int, t: float) -> None:
        nonlocal seq, core_events
        lc = live.get(cid)
        if lc is None or lc.offer != oid:
            return  # the caller left, or the offer is not current
        core_events += 1
        out = handle(OfferAnswered(cid, oid), t)
        lc.answered = True
        if lc.qi >= 0:
            waiting[lc.qi] -= 1
            lc.qi = -1
        seq += 1
        push(heap, (t + lc.handle, seq, _END, cid, None))
        apply(out, t)

    stop_after = horizon if horizon is not None else -math.inf
    last_t = last_arrival = 0.0
    while heap:
        t, _, kind, a, b = pop(heap)
        if arrivals_done and not live and t > stop_after:
            break
        last_t = t
        if t >= next_sample:
            while next_sample <= t:
                samples.append(tuple(waiting))
                next_sample += SAMPLE_S
        if kind == _ARRIVE:
            arrived += 1
            last_arrival = t
            cid = f"c{arrived}"
            counted = arrived > warmup_calls and t >= warmup_s
            d: DrawnCall = a
            number, attrs, queue = d.number, d.attributes, d.queue
            priority, path, hold, patience = d.priority, d.path, d.handle_s, d.patience_s
            upcoming = next(calls_iter, None)
            if upcoming is None:
                arrivals_done = True
            else:
                seq += 1
                push(heap, (upcoming.arrival_s, seq, _ARRIVE, upcoming, None))
            core_events += 2
            handle(CallStarted(cid, number), t)
            if queue is None:  # ended in the IVR
                live[cid] = _Live(0.0, t, counted)
                apply(handle(IvrEnded(cid, path, "ivr"), t), t)
            else:
                if queue not in known_queue and queue not in routed:
                    raise SimError(f"call {cid}: queue {queue!r} is not a queue of the "
                                   f"routing policy (queues: {', '.join(queue_names)})")
                c = live[cid] = _Live(hold, t, counted)
                out = handle(CallQueued(cid, queue, path, priority, attrs), t)
                if reroutes:  # the policy may put it in another queue
                    call = cc.call(cid)
                    if call is not None and call.queue is not None:
                        queue = call.queue
                c.qi = qi = qindex[queue]
                waiting[qi] += 1
                apply(out, t)
                if patience is not None and cid in live and (
                        c.first_offer < 0 or rona_p or ring_delay):
                    seq += 1
                    push(heap, (t + patience, seq, _PATIENCE, cid, None))
            if progress is not None and arrived % PROGRESS_EVERY == 0:
                progress(arrived, expected, t)
        elif kind == _ANSWER:
            answer(a, b, t)
        elif kind == _TIMER:
            if timers.get(a) != b:
                continue  # cancelled or restarted
            del timers[a]
            core_events += 1
            ev = wrap_keys.get(a[1]) if a[0] == "wrap_up" else None
            if ev is None:
                ev = TimerFired(a)
                if a[0] == "wrap_up":
                    wrap_keys[a[1]] = ev
            apply(handle(ev, t), t)
        elif kind == _END:
            core_events += 1
            apply(handle(ConversationEnded(a, "caller"), t), t)
        elif kind == _PATIENCE:
            lc = live.get(a)
            if lc is None or lc.answered:
                continue
            core_events += 1
            apply(handle(CallerHungUp(a), t), t)
        elif kind == _RONA:
            lc = live.get(a)
            if lc is None or lc.offer != b:
                continue
            core_events += 1
            apply(handle(OfferFailed(a, b, "NOANSWER"), t), t)
        elif kind == _LOGIN:
            ag = cc.agent(a)
            # logged out; or asked out at the end of its call (back-to-back shifts: stays)
            if ag.state is AgentState.LOGGED_OUT or ag.logout_after_call:
                core_events += 1
                apply(handle(AgentLogin(a), t), t)
        elif kind == _LOGOUT:
            if cc.agent(a).state is not AgentState.LOGGED_OUT:
                core_events += 1  # on a call: the core logs it out when the call ends
                apply(handle(AgentLogout(a), t), t)
        while instant:
            answer(*instant.pop(0), t)

    end_s = last_t if horizon is None else max(last_t, horizon)
    # calls nobody will ever take (no agent left, a caller who never hangs
    # up): recorded as "unfinished", waiting until the end
    for cid, lc in live.items():
        call = cc.call(cid)
        if call is None:
            continue
        queued = call.queued_at if call.queued_at is not None else call.started_at
        outcomes.append(CallOutcome(
            cid, call.caller, call.queue, call.first_queue, call.customer_class, queued,
            end_s - queued, "unfinished", None, call.offers, lc.first_offer < 0 or
            lc.first_offer > lc.queued_at, lc.counted, None, end_s, call.priority))
    for st in ag_time.values():
        if st[1] and end_s > st[0]:
            add_span(st[0], end_s, st[1] == 2, st[2])
    if progress is not None:
        progress(arrived, expected, last_t)

    classes = sorted({c.customer_class for c in outcomes if c.queue is not None})
    queue_skill = {q: qp.require.skill for q, qp in policy.queues.items()}
    return VirtualResult(
        scenario=sc.name, seed=seed, start_s=sc.start_s, interval_s=interval,
        queues=queue_names, classes=tuple(classes), calls=outcomes, waiting=samples,
        agent_time=agent_time, queue_skill=queue_skill,
        queue_sl={q: sc.queue_sl(q) for q in queue_names},
        class_sl={c: cl.sl_threshold_s for c, cl in policy.classes.items()},
        default_sl=sc.sl_seconds, warmup_s=warmup_s, end_s=end_s,
        wall_s=time.perf_counter() - wall0, core_events=core_events, arrivals=arrived,
        n_intervals=math.ceil((horizon if horizon is not None else last_arrival) / interval),
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
