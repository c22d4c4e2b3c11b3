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

A repeat caller's last agent: the loop is the world here, so it keeps the
record of answered calls (number -> agent, the latest :data:`LAST_AGENT_MEMORY`
numbers) and hands it to the core as the call's ``last_agent`` attribute
at the queue, as the engine does from its call records (the core keeps no
memory of its own).  The drawn numbers are one form per caller, so they
are the key as they are.

A caller whose patience runs out before an agent answers hangs up
(``CallerGone``, the one caller hang-up event, as the engine sends it).
Events for a call that is gone, or for an offer that is no longer the
call's (the caller left; the offer failed), are dropped before they reach
the core.  Agents log in and out at their shift times; an agent whose
shift ends during a call is logged out when the call ends.

The figures are computed by :mod:`acd.loadsim.figures`.
"""

from __future__ import annotations

import gc
import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from acd.core.center import ContactCenter
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentState,
    AgentStateChanged,
    CallerGone,
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
from acd.loadsim.figures import (
    SAMPLE_S,
    CallOutcome,
    EstimateAt,
    Occupancy,
    VirtualResult,
    result_of,
)
from acd.loadsim.model import Scenario, SimError, TraceCall, routed_queues

__all__ = ["run_virtual"]


# event kinds (ints: cheap to compare, never compared across heap entries
# because seq is unique)
_ARRIVE, _PATIENCE, _ANSWER, _RONA, _END, _TIMER, _LOGIN, _LOGOUT, _ESTIMATE = range(9)
_OUTCOME_TEXT = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned",
                 Outcome.FALLBACK: "fallback", Outcome.IVR: "ivr"}
_new_tuple = tuple.__new__
PROGRESS_EVERY = 10_000
#: numbers whose last agent the loop remembers (the oldest are forgotten)
LAST_AGENT_MEMORY = 200_000


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
                keep_gc: bool = False, estimates: bool = False,
                estimate_every_s: float | None = None) -> VirtualResult:
    """Simulate ``scenario`` in virtual time with the production router.

    ``calls``: stop after this many arrivals (default: the scenario's
    ``calls``, else the end of its arrivals).  ``trace``: replay these calls
    instead of random arrivals (default: the scenario's trace, if any).
    ``warmup_calls``: the first calls are not counted (besides the
    scenario's warm-up time).  ``progress(arrivals, expected or None,
    virtual time)`` is called every 10,000 arrivals and at the end.
    The cyclic garbage collector is paused during the run (the loop makes
    no reference cycles) unless ``keep_gc``.  ``estimates``: record the
    expected wait the core gives each caller who has to wait, as it joins
    its queue, and (``estimate_every_s``) again every so many seconds while
    it waits, as the hold loop announces it (``VirtualResult.estimates``,
    ``.wait_error()``).
    """
    gc_was = gc.isenabled()
    if not keep_gc:
        gc.disable()
    try:
        return _Loop(scenario, seed, calls, trace, warmup_calls, progress, estimates,
                     estimate_every_s).run()
    finally:
        if gc_was and not keep_gc:
            gc.enable()


#: agent id ("" for an arrival: the one pending arrival is ``_Loop.upcoming``);
#: number: the offer id (_ANSWER, _RONA), the timer's seq (_TIMER), else 0
_Entry = tuple[float, int, int, str, int]


class _Loop:
    """One run: the event heap, the core, and what the figures need.

    Plain typed attributes and methods, no closures: the same code runs as
    Python or compiled with mypyc (``ACD_COMPILE=1``, see docs/simulator.md)."""

    def __init__(self, sc: Scenario, seed: int, max_calls: int | None,
                 trace: Sequence[TraceCall] | None, warmup_calls: int,
                 progress: Callable[[int, int | None, float], None] | None,
                 estimates: bool = False, estimate_every_s: float | None = None) -> None:
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
        #: caller number -> the agent of their latest answered call
        self.last_agent: OrderedDict[str, str] = OrderedDict()
        self.waiting = [0] * len(self.queue_names)
        self.instant: list[tuple[str, int]] = []  # offers answered at once, in order
        self.core_events = 0
        self.estimates: list[EstimateAt] | None = [] if estimates else None
        if estimate_every_s is not None and estimate_every_s <= 0:
            raise SimError(f"estimate_every_s must be positive, not {estimate_every_s:g}")
        self.estimate_every = estimate_every_s if estimates else None
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
        if rec.outcome is Outcome.ANSWERED and rec.agent_id is not None:
            mem = self.last_agent
            mem[rec.caller] = rec.agent_id
            mem.move_to_end(rec.caller)
            if len(mem) > LAST_AGENT_MEMORY:
                mem.popitem(last=False)
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
        attrs = d.attributes
        last = self.last_agent.get(d.number)
        if last is not None and all(k != "last_agent" for k, _ in attrs):
            attrs = (*attrs, ("last_agent", last))
        out = cc.handle(CallQueued(cid, queue, d.path, d.priority, attrs), t)
        if self.reroutes:  # the policy may put it in another queue
            call = cc.call(cid)
            if call is not None and call.queue is not None:
                queue = call.queue
        c.qi = qi = self.qindex[queue]
        self.waiting[qi] += 1
        self.apply(out, t)
        if self.estimates is not None and self.estimate(cid, t) \
                and self.estimate_every is not None:
            self.push(t + self.estimate_every, _ESTIMATE, cid, 0)
        patience = d.patience_s
        if patience is not None and cid in self.live and (
                c.first_offer < 0 or self.rona_p or self.ring_delay):
            self.push(t + patience, _PATIENCE, cid, 0)

    def estimate(self, cid: str, t: float) -> bool:
        """Record the expected wait of a waiting call (False: not waiting)."""
        assert self.estimates is not None
        cc = self.cc
        est = cc.estimate(cid, t)
        call = cc.call(cid)
        if est is None or call is None or call.queue is None or call.queued_at is None:
            return False
        self.estimates.append(EstimateAt(
            cid, t, t - call.queued_at, call.queue, est.position, est.wait_s,
            cc.staffed(cc.queue_policy(call.queue).require.skill), est.servers))
        return True

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
                self.apply(handle(CallerGone(subject), t), t)
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
            elif kind == _ESTIMATE:
                lc = live.get(subject)
                if lc is None or lc.answered or self.estimate_every is None:
                    continue
                self.estimate(subject, t)  # ringing an agent: asked again later
                self.push(t + self.estimate_every, _ESTIMATE, subject, 0)
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
                         last_arrival, self.estimates)
