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

Breaks kept whole (the scenario's per-agent ``breaks``, a roster's
activities, random ``not_ready`` episodes, ``shrinkage``): at an activity's
start the loop sends ``AgentPause(agent, reason)``; the core pauses a ready
agent at once, and one ringing or on a call when the call ends (its pending
pause); an agent in wrap-up is paused when its wrap-up ends (the loop holds
the pause until the wrap-up timer fires).  When the agent's
``AgentStateChanged(new=PAUSED)`` arrives, the loop sends ``AgentReady`` the
activity's length later: a delayed break keeps its length.  An activity due
while another of the same agent runs or waits starts after it; one due
while the agent is logged out is skipped (counted); a shift's end cuts a
running one (the agent logs out).  Shrinkage: at each interval's start, each
logged-in agent is paused for the interval's share of it, at a random
offset inside the interval.

A caller whose patience runs out before an agent answers hangs up
(``CallerGone``, the one caller hang-up event, as the engine sends it).
Events for a call that is gone, or for an offer that is no longer the
call's (the caller left; the offer failed), are dropped before they reach
the core.  Agents log in and out at their shift times; an agent whose
shift ends during a call is logged out when the call ends.

The figures are computed by :mod:`acd.loadsim.figures`.
"""

from __future__ import annotations

import datetime as dt
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
    AgentPause,
    AgentReady,
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
from acd.loadsim.draws import DrawnCall, Sampler, draw_calls, sampler, stream
from acd.loadsim.figures import (
    SAMPLE_S,
    CallOutcome,
    EstimateAt,
    Occupancy,
    VirtualResult,
    result_of,
)
from acd.loadsim.model import DAY_S, Scenario, SimError, TraceCall, routed_queues

__all__ = ["run_virtual"]


# event kinds (ints: cheap to compare, never compared across heap entries
# because seq is unique)
(_ARRIVE, _PATIENCE, _ANSWER, _RONA, _END, _TIMER, _LOGIN, _LOGOUT, _ESTIMATE,
 _ACT, _NOT_READY, _SHRINK, _EPISODE, _UNPAUSE) = range(14)
#: an agent's activity: none, AgentPause sent (waiting for the core's PAUSED),
#: running (AgentReady due), waiting for its wrap-up to end
_IDLE, _PENDING, _RUNNING, _AFTER_WRAP = range(4)
_OUTCOME_TEXT = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned",
                 Outcome.FALLBACK: "fallback", Outcome.IVR: "ivr"}
_new_tuple = tuple.__new__
PROGRESS_EVERY = 10_000
#: numbers whose last agent the loop remembers (the oldest are forgotten)
LAST_AGENT_MEMORY = 200_000


# ---------------------------------------------------------------- the run


class _Live:
    """A call in the simulation (the loop's side; the core has its own)."""

    __slots__ = ("answered", "counted", "first_offer", "handle", "offer", "qi", "queued_at",
                 "wrap")

    def __init__(self, handle: float, queued_at: float, counted: bool,
                 wrap: float = -1.0) -> None:
        self.handle = handle
        self.wrap = wrap  # the agent's wrap-up after it (< 0: the scenario's fixed one)
        self.queued_at = queued_at
        self.counted = counted
        self.offer = 0
        self.first_offer = -1.0
        self.answered = False
        self.qi = -1  # index of the queue it is counted waiting in (-1: not waiting)


class _Away:
    """An agent's activities (breaks, not-ready episodes): the current one and
    those waiting behind it."""

    __slots__ = ("gen", "length", "queue", "reason", "state", "until")

    def __init__(self) -> None:
        self.state = _IDLE
        self.length = 0.0
        self.reason = ""
        self.until = 0.0
        self.gen = 0  # bumped at each logout: its pending AgentReady is void
        self.queue: list[tuple[float, str]] = []


def run_virtual(scenario: Scenario, seed: int = 0, calls: int | None = None, *,
                trace: Sequence[TraceCall] | None = None, warmup_calls: int = 0,
                progress: Callable[[int, int | None, float], None] | None = None,
                keep_gc: bool = False, estimates: bool = False,
                estimate_every_s: float | None = None,
                agent_log: bool = False) -> VirtualResult:
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
    ``.wait_error()``).  ``agent_log``: keep every agent state change as
    (t, agent, new state, reason) (``VirtualResult.agent_log``).
    """
    gc_was = gc.isenabled()
    if not keep_gc:
        gc.disable()
    try:
        return _Loop(scenario, seed, calls, trace, warmup_calls, progress, estimates,
                     estimate_every_s, agent_log).run()
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
                 estimates: bool = False, estimate_every_s: float | None = None,
                 agent_log: bool = False) -> None:
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
        self.agent_log: list[tuple[float, str, str, str]] | None = [] if agent_log else None
        # breaks kept whole, not-ready episodes, shrinkage (nothing when unused)
        self.away: dict[str, _Away] = {}
        self.acts: dict[str, tuple[tuple[float, float, str], ...]] = {
            s.profile.agent_id: s.activities for s in sc.agents if s.activities}
        self.not_ready = sc.not_ready
        self.nr_rate = tuple(n.per_hour / 3600.0 for n in sc.not_ready)
        rng_nr = stream(seed, "not_ready")
        self.nr_uniform = rng_nr.random
        self.nr_length: list[Sampler] = [sampler(n.length, rng_nr) for n in sc.not_ready]
        self.shrinkage = sc.shrinkage
        per_day = round(DAY_S / sc.interval_s)
        if len(sc.shrinkage) > 1 and len(sc.shrinkage) != per_day:
            raise SimError(f"shrinkage has {len(sc.shrinkage)} values: give one per interval "
                           f"of a day ({per_day}), or one value")
        self.shrink_uniform = stream(seed, "shrinkage").random
        self.episodes: list[tuple[float, str]] = []
        #: no not-ready episode or shrinkage starts from here on (the end of the
        #: arrivals: the scenario's end, or the last arrival of an open-ended run)
        self.away_end = math.inf
        self.uses_away = bool(self.acts) or bool(sc.not_ready) or bool(sc.shrinkage)
        self.wraps = sc.wraps()
        #: activities (planned breaks) skipped: due while the agent was logged out;
        #: cut short by the end of the shift; taken after a call (delayed)
        self.counts = {"planned": 0, "skipped": 0, "delayed": 0, "cut": 0, "not_ready": 0,
                       "shrinkage": 0}

    def push(self, at: float, kind: int, subject: str, number: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, subject, number))

    def apply(self, out: list[Action], t: float) -> None:
        """Carry out the core's actions."""
        for act in out:
            if isinstance(act, AgentStateChanged):
                self.occupancy.change(act.agent_id, act.new, t)
                if self.agent_log is not None:
                    self.agent_log.append((t, act.agent_id, act.new.value, act.reason))
                if self.uses_away and act.new is AgentState.PAUSED:
                    av = self.away.get(act.agent_id)
                    if av is not None and av.state == _PENDING and act.reason == av.reason:
                        self.running(act.agent_id, av, t)
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
        w = d.wrap_s
        c = self.live[cid] = _Live(d.handle_s, t, counted, w if w is not None else -1.0)
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

    # ------------------------------------------------------------ breaks kept whole

    def start_away(self, aid: str, length_s: float, reason: str, t: float) -> bool:
        """An activity of ``aid`` is due: start it (or queue it behind the one
        running).  False: the agent is logged out (or leaving), skipped."""
        ag = self.cc.agent(aid)
        if ag.state is AgentState.LOGGED_OUT or ag.logout_after_call:
            return False
        av = self.away.get(aid)
        if av is None:
            av = self.away[aid] = _Away()
        if av.state != _IDLE:
            av.queue.append((length_s, reason))
            return True
        self.begin(aid, av, length_s, reason, t)
        return True

    def begin(self, aid: str, av: _Away, length_s: float, reason: str, t: float) -> None:
        reason = reason or "paused"  # as the core names a pause without a reason
        av.length = length_s
        av.reason = reason
        state = self.cc.agent(aid).state
        if state is AgentState.WRAP_UP:  # paused when its wrap-up ends
            av.state = _AFTER_WRAP
            self.counts["delayed"] += 1
            return
        if state is AgentState.RESERVED or state is AgentState.ON_CALL:
            self.counts["delayed"] += 1
        av.state = _PENDING
        self.core_events += 1
        self.apply(self.cc.handle(AgentPause(aid, reason), t), t)
        if av.state == _PENDING and self.cc.agent(aid).state is AgentState.PAUSED:
            # paused already (a ring-no-answer pause): this one replaces it
            if self.agent_log is not None:
                self.agent_log.append((t, aid, AgentState.PAUSED.value, reason))
            self.running(aid, av, t)

    def running(self, aid: str, av: _Away, t: float) -> None:
        """The core paused the agent for its activity: ready again its length later."""
        av.state = _RUNNING
        av.until = t + av.length
        self.push(av.until, _UNPAUSE, aid, av.gen)

    def unpause(self, aid: str, gen: int, t: float) -> None:
        av = self.away.get(aid)
        if av is None or av.gen != gen or av.state != _RUNNING:
            return
        av.state = _IDLE
        if av.queue:  # the next one waited behind it: it starts now, paused still
            length_s, reason = av.queue.pop(0)
            self.begin(aid, av, length_s, reason, t)
        elif self.cc.agent(aid).state is AgentState.PAUSED:
            self.core_events += 1
            self.apply(self.cc.handle(AgentReady(aid), t), t)

    def after_wrap(self, aid: str, t: float) -> bool:
        """The agent's wrap-up ends: paused now if an activity waited for it."""
        av = self.away.get(aid)
        if av is None or av.state != _AFTER_WRAP:
            return False
        if self.cc.agent(aid).state is not AgentState.WRAP_UP:
            av.state = _IDLE
            return False
        av.state = _PENDING
        self.core_events += 1
        self.apply(self.cc.handle(AgentPause(aid, av.reason), t), t)
        return True

    def shift_ends(self, aid: str, t: float) -> None:
        """The agent's shift ends: its running activity is cut, the waiting ones dropped."""
        av = self.away.get(aid)
        if av is None:
            return
        if av.state == _PENDING or av.state == _AFTER_WRAP or (
                av.state == _RUNNING and av.until > t):
            self.counts["cut"] += 1
        self.counts["cut"] += len(av.queue)
        av.queue.clear()
        av.state = _IDLE
        av.gen += 1

    def not_ready_due(self, aid: str, ri: int, t: float) -> None:
        """A not-ready episode of reason ``ri`` starts (if the agent is logged
        in); the agent's next one is drawn."""
        if self.start_away(aid, self.nr_length[ri](), self.not_ready[ri].reason, t):
            self.counts["not_ready"] += 1
        nxt = t - math.log(1.0 - self.nr_uniform()) / self.nr_rate[ri]
        if nxt < self.away_end:
            self.push(nxt, _NOT_READY, aid, ri)

    def shrink(self, i: int, t: float) -> None:
        """Interval ``i`` starts: each logged-in agent is paused for the
        interval's shrinkage share of it, at a random offset."""
        if (i + 1) * self.interval < self.away_end:
            self.push((i + 1) * self.interval, _SHRINK, "", i + 1)
        k = i % round(DAY_S / self.interval)  # the shares repeat daily
        values = self.shrinkage
        share = values[k] if len(values) > 1 else values[0]  # one a day, or one for all
        if share <= 0:
            return
        length = share * self.interval
        u = self.shrink_uniform
        cc = self.cc
        for spec in self.sc.agents:
            aid = spec.profile.agent_id
            ag = cc.agent(aid)
            if ag.state is AgentState.LOGGED_OUT or ag.logout_after_call:
                continue
            self.counts["shrinkage"] += 1
            self.episodes.append((length, "shrinkage"))
            self.push(t + u() * (self.interval - length), _EPISODE, aid,
                      len(self.episodes) - 1)

    def schedule_away(self) -> None:
        """The planned activities, the first not-ready episodes, the shrinkage."""
        sc = self.sc
        end = self.horizon if self.horizon is not None else math.inf
        self.away_end = end
        for aid, acts in self.acts.items():
            for k, (start, length, _) in enumerate(acts):
                if start + length <= 0:
                    continue
                if start < 0:  # begun before the run: its rest
                    acts = (*acts[:k], (0.0, start + length, acts[k][2]), *acts[k + 1:])
                    self.acts[aid] = acts
                    start = 0.0
                self.push(start, _ACT, aid, k)
        for ri, rate in enumerate(self.nr_rate):
            if rate <= 0:
                continue
            for spec in sc.agents:
                self.push(-math.log(1.0 - self.nr_uniform()) / rate, _NOT_READY,
                          spec.profile.agent_id, ri)
        if sc.shrinkage:
            self.push(0.0, _SHRINK, "", 0)

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
        if self.uses_away:
            self.schedule_away()
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
                    if self.uses_away and horizon is None:  # open-ended: no more episodes
                        self.away_end = t
                else:
                    self.push(nxt.arrival_s, _ARRIVE, "", 0)
                self.arrive(d, t, arrived)
                if progress is not None and arrived % PROGRESS_EVERY == 0:
                    progress(arrived, self.expected, t)
            elif kind == _END:
                self.core_events += 1
                if self.wraps:
                    lc = live.get(subject)
                    w = lc.wrap if lc is not None else -1.0
                    self.apply(handle(ConversationEnded(subject, "caller",
                                                        w if w >= 0.0 else None), t), t)
                else:
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
                if self.uses_away and key[0] == "wrap_up" and self.after_wrap(key[1], t):
                    continue  # paused as its wrap-up ends: a break waited for it
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
                if self.uses_away:
                    self.shift_ends(subject, t)
                if cc.agent(subject).state is not AgentState.LOGGED_OUT:
                    self.core_events += 1  # on a call: the core logs it out when it ends
                    self.apply(handle(AgentLogout(subject), t), t)
            elif kind == _ACT:
                act = self.acts[subject][number]
                self.counts["planned"] += 1
                if not self.start_away(subject, act[1], act[2], t):
                    self.counts["skipped"] += 1
            elif kind == _UNPAUSE:
                self.unpause(subject, number, t)
            elif kind == _EPISODE:
                length_s, reason = self.episodes[number]
                self.start_away(subject, length_s, reason, t)
            elif kind == _NOT_READY:
                self.not_ready_due(subject, number, t)
            elif kind == _SHRINK:
                self.shrink(number, t)
            while instant:
                cid, oid = instant.pop(0)
                self.answer(cid, oid, t)
        return self.result(samples, arrived, last_t, last_arrival)

    def result(self, samples: list[tuple[int, ...]], arrived: int, last_t: float,
               last_arrival: float) -> VirtualResult:
        sc, cc, horizon = self.sc, self.cc, self.horizon
        end_s = last_t if horizon is None else max(last_t, horizon)
        outcomes = self.outcomes
        n_done = len(outcomes)
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

        counts = {k: v for k, v in self.counts.items() if v} if self.uses_away else {}
        return result_of(sc, self.seed, outcomes, samples, self.occupancy.agent_time, end_s,
                         time.perf_counter() - self.wall0, self.core_events, arrived,
                         last_arrival, self.estimates,
                         self.warnings(outcomes, len(outcomes) - n_done), self.agent_log,
                         counts)

    def warnings(self, outcomes: list[CallOutcome], n_unfinished: int) -> list[str]:
        """What the user must be told: calls left waiting at the end (per
        queue, and since when no agent with its skill was on shift), calls
        that arrived when no agent with their skill was on shift any more,
        planned breaks skipped."""
        sc = self.sc
        out: list[str] = list(sc.notes)
        start_at = sc.start_at
        skill_of = {q: qp.require.skill for q, qp in sc.policy.queues.items()}
        # the end of the last shift of an agent with each skill (inf: always on)
        last_on: dict[str, float] = {}
        for spec in sc.agents:
            end = max((e for _, e in spec.shifts), default=math.inf)
            for sk in spec.profile.skills:
                last_on[sk] = max(last_on.get(sk, -math.inf), end)

        def when(t: float) -> str:
            at = start_at + dt.timedelta(seconds=round(t))
            return at.strftime("%Y-%m-%d %H:%M")

        unfinished: dict[str, int] = {}
        late: dict[str, int] = {}
        for c in outcomes[len(outcomes) - n_unfinished:] if n_unfinished else ():
            q = c.queue or ""
            unfinished[q] = unfinished.get(q, 0) + 1
        if any(v < math.inf for v in last_on.values()):  # shifts end: who came after
            for c in outcomes:
                q = c.queue or ""
                if c.queue is not None and c.arrival_s >= last_on.get(
                        skill_of.get(q, q), -math.inf):
                    late[q] = late.get(q, 0) + 1
        if unfinished:
            parts = []
            for q, n in sorted(unfinished.items()):
                sk = skill_of.get(q, q)
                end = last_on.get(sk, -math.inf)
                why = (f" (no agent with skill {sk} on shift after {when(end)})"
                       if end < math.inf and end > -math.inf else
                       f" (no agent has skill {sk})" if end == -math.inf else "")
                parts.append(f"{q} {n:,}{why}")
            out.append(f"{sum(unfinished.values()):,} calls left unserved, still waiting at "
                       f"the end (counted as other): {'; '.join(parts)}")
        if late:
            parts = [f"{q} {n:,} (after {when(last_on[skill_of.get(q, q)])})"
                     if last_on.get(skill_of.get(q, q), -math.inf) > -math.inf else
                     f"{q} {n:,} (no agent has skill {skill_of.get(q, q)})"
                     for q, n in sorted(late.items())]
            out.append(f"{sum(late.values()):,} calls arrived when no agent with their queue's "
                       f"skill was on shift any more (the roster ends before the calls?): "
                       f"{'; '.join(parts)}")
        skipped = self.counts["skipped"]
        if skipped:
            out.append(f"{skipped:,} of {self.counts['planned']:,} planned breaks fell while "
                       f"their agent was logged out and were skipped")
        return out
