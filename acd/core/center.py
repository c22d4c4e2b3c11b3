"""The sans-I/O contact-center core: ``handle(event, now) -> actions``.

No sockets, no clock reads, no awaits.  The engine (real time) and the load
simulator (virtual time) drive this same object.

Routing
-------
* Each queue has hard requirements (skill and level, the caller's dialect
  with a proficiency, language, preferred gender or age band, VIP
  qualification, groups) and weighted soft preferences (see
  :mod:`acd.core.policy`).  Escalation steps relax them one at a time as the
  caller waits, and may overflow the call to another queue.
* Calls are served in order of their *virtual arrival*
  ``queued_at - priority * aging_s_per_level``: a higher priority counts as
  having arrived earlier, so priority classes never starve: a call waits at
  most ``(p_high - p_low) * aging_s_per_level`` longer than a later call of
  a higher priority.  Among equals: first come, first served.
* A call meeting ready agents takes the best-scoring one (score terms are
  recorded for ``acd explain``); an agent becoming ready takes the first
  waiting call, in that order, whose requirements it meets.

Index structures keep both decisions cheap with thousands of agents and
calls: ready agents are grouped per skill by *shape* (profile minus
identity; agents of one shape are equally eligible and score alike, so only
the longest-idle one of each shape is considered), and waiting calls are
partitioned per queue by *signature* (their requirements as they bind that
caller), each partition a heap by virtual arrival.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from acd.core.errors import DuplicateCall, UnknownSubject
from acd.core.model import (
    AGENT_TABLE,
    CALL_TABLE,
    Action,
    AgentHungUp,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentProfileChanged,
    AgentReady,
    AgentState,
    AgentStateChanged,
    AgentTrigger,
    CallerGone,
    CallPriorityChanged,
    CallQueued,
    CallRecord,
    CallRestored,
    CallStarted,
    CallState,
    CallTrigger,
    CancelTimer,
    Candidate,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    Explanation,
    FallbackCall,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    Outcome,
    RecordExplanation,
    StartTimer,
    TimerFired,
    WaitEstimate,
    WriteCallRecord,
)
from acd.core.policy import (
    IDLE_CAP_MIN,
    SERVER_ATTR,
    Policy,
    PrefKey,
    QueuePolicy,
    Signature,
    Stage,
    eligible,
    signature,
    stage_for,
    static_terms,
)
from acd.core.profiles import AgentProfile
from acd.core.wait import HandleTimes, Server, free_time, grouped

EXPLAIN_TOP = 5
CACHE_LIMIT = 200_000
#: expected wait: at most this many calls ahead are looked at one by one per
#: queue (the rest are counted at the average weight of those)
WAIT_SCAN_LIMIT = 2_000

HeapEntry = tuple[float, int, str]  # (virtual arrival, seq, call id)
_UNSTAFFED = frozenset({AgentState.LOGGED_OUT, AgentState.PAUSED})
_READY = AgentState.READY
_ON_A_CALL = frozenset({AgentState.RESERVED, AgentState.ON_CALL})
#: AGENT_TABLE with what each transition does to the indexes, worked out once:
#: (state, trigger) -> (new state, leaves ready, enters ready, staffed delta)
_AGENT_STEPS: dict[tuple[AgentState, AgentTrigger], tuple[AgentState, bool, bool, int]] = {
    (old, trigger): (new, old is _READY and new is not _READY,
                     new is _READY and old is not _READY,
                     int(new not in _UNSTAFFED) - int(old not in _UNSTAFFED))
    for (old, trigger), new in AGENT_TABLE.rows().items()
}


class Part:
    """One partition of a queue: waiting calls with one signature, as a heap
    by virtual arrival.  ``live`` maps each call still in it to its entry;
    heap entries not in ``live`` are stale and dropped when they surface.
    Entries are compared by value: a stale entry equal to a live one (a call
    put back keeps its key and seq) stands for that same call."""

    __slots__ = ("heap", "live", "sig")

    def __init__(self, sig: Signature) -> None:
        self.sig = sig
        self.heap: list[HeapEntry] = []
        self.live: dict[str, HeapEntry] = {}

    def push(self, entry: HeapEntry) -> None:
        self.live[entry[2]] = entry
        heapq.heappush(self.heap, entry)

    def head(self) -> HeapEntry | None:
        heap, live = self.heap, self.live
        while heap:
            entry = heap[0]
            if live.get(entry[2]) == entry:  # ==, not is: mypyc boxes tuples anew
                return entry
            heapq.heappop(heap)
        return None


@dataclass
class Agent:
    agent_id: str  # = profile.agent_id (a field: read on every routing step)
    profile: AgentProfile
    shape: int  # interned shape id: agents of one shape are alike for routing
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    ready_since: float = 0.0
    reason: str = ""
    call_id: str | None = None
    calls_handled: int = 0
    #: asked to log out while on a call: logged out as soon as it ends
    logout_after_call: bool = False
    #: asked to pause while ringing or on a call: the pause's reason, taken
    #: when the agent would otherwise become ready (None: no pause pending)
    pause_after_call: str | None = None
    #: when its latest wrap-up ends (read while in WRAP_UP)
    wrap_up_until: float = 0.0

    @property
    def staffed(self) -> bool:
        return self.state not in _UNSTAFFED


@dataclass(init=False)
class Call:
    call_id: str
    caller: str
    caller_name: str
    channel: str
    server: str
    started_at: float
    state: CallState = CallState.IVR
    attrs: dict[str, str] = field(default_factory=dict)
    in_queue: bool = False  # in its queue's order and partition now
    timers: bool = False  # escalation / max-wait timers may be armed
    sig_id: int = -1  # interned stage signature (its partition)
    pref_id: int = -1  # interned preference key
    customer_class: str = ""
    queue: str | None = None
    first_queue: str | None = None
    priority: int = 0
    key: float = 0.0  # virtual arrival
    seq: int = 0
    queued_at: float | None = None
    stage: Stage | None = None
    ivr_path: tuple[str, ...] = ()
    agent_id: str | None = None
    offer_id: int = 0
    offers: int = 0
    offered_at: float = 0.0  # when its current (or last) offer began
    answered_at: float | None = None
    recording: str = ""  # the file its answered offer records into ("" = none)
    offer_recording: str = ""  # the file its current offer would record into

    def __init__(self, call_id: str, caller: str, caller_name: str, channel: str, server: str,
                 started_at: float) -> None:
        self.call_id = call_id
        self.caller = caller
        self.caller_name = caller_name
        self.channel = channel
        self.server = server
        self.started_at = started_at
        self.state = CallState.IVR
        self.attrs = {}
        self.in_queue = False
        self.timers = False
        self.sig_id = -1
        self.pref_id = -1
        self.customer_class = ""
        self.queue = None
        self.first_queue = None
        self.priority = 0
        self.key = 0.0
        self.seq = 0
        self.queued_at = None
        self.stage = None
        self.ivr_path = ()
        self.agent_id = None
        self.offer_id = 0
        self.offers = 0
        self.offered_at = 0.0
        self.answered_at = None
        self.recording = ""
        self.offer_recording = ""

    def entry(self) -> HeapEntry:
        return (self.key, self.seq, self.call_id)


class _WaitCache:
    """What expected-wait estimates share while no event comes and ``now``
    stays (a wallboard listing a queue's callers): per signature id its
    servers, their groups and skills, the agents escalation steps add, and
    the running shares of calls ahead."""

    __slots__ = ("ahead", "groups", "now", "servers", "skills", "steps", "version")

    def __init__(self, version: int, now: float) -> None:
        self.version = version
        self.now = now
        self.servers: dict[int, dict[str, Agent]] = {}
        self.groups: dict[int, list[Server]] = {}
        self.steps: dict[tuple[int, ...], list[list[Server]]] = {}
        self.ahead: dict[tuple[str, int], list[float]] = {}
        self.skills: dict[int, set[str]] = {}


class ContactCenter:
    """Calls, agents and queues; every decision is returned as actions."""

    def __init__(self, config: CoreConfig) -> None:
        self._config = config
        self._explain = config.explain
        self.policy: Policy = config.policy
        for qp in self.policy.queues.values():
            for step in qp.escalate:
                if step.overflow is not None and step.overflow not in self.policy.queues:
                    raise UnknownSubject(f"queue {qp.name}: overflow to unknown queue "
                                         f"{step.overflow!r}")
        self._agents: dict[str, Agent] = {}
        self._calls: dict[str, Call] = {}
        self._seq = 0
        self._offer_seq = 0
        # ready agents: skill -> shape id -> agent ids in ready order (longest idle first)
        self._ready: dict[str, dict[int, dict[str, None]]] = {}
        self._shape_ids: dict[tuple[object, ...], int] = {}
        self._shape_profile: list[AgentProfile] = []
        # waiting calls: queue -> signature id -> partition; queue -> sorted entries
        self._parts: dict[str, dict[int, Part]] = {q: {} for q in self.policy.queues}
        # queue -> its waiting calls in service order: built the first time
        # position() or waiting() asks about the queue, kept from then on (the
        # engine asks for announcements and the wallboard; the simulator never)
        self._ordered: dict[str, SortedList] = {}
        self._queues_by_skill: dict[str, list[str]] = {}
        for qp in self.policy.queues.values():
            self._queues_by_skill.setdefault(qp.require.skill, []).append(qp.name)
        self._sig_ids: dict[Signature, int] = {}
        self._sigs: list[Signature] = []
        self._pref_ids: dict[PrefKey, int] = {}
        self._prefs: list[PrefKey] = []
        # (shape id, signature id) -> eligible; (shape id, pref id) -> score terms.
        # Bounded: cleared when they grow past CACHE_LIMIT entries.
        self._elig: dict[tuple[int, int], bool] = {}
        self._terms: dict[tuple[int, int], tuple[float, dict[str, float]]] = {}
        # skill -> agents with it who are staffed (logged in, not paused)
        self._on_skill: dict[str, dict[str, Agent]] = {}
        # queue -> recent handle times (expected wait)
        self._handle: dict[str, HandleTimes] = {q: HandleTimes(qp.handle_time_s)
                                                for q, qp in self.policy.queues.items()}
        self._now = 0.0  # time of the latest event: the default "now" of estimate()
        self._version = 0  # events handled: what estimates share is kept while it stays
        self._wait_cache: _WaitCache | None = None
        self._stage_text: dict[tuple[str, int], tuple[str, ...]] = {}
        self._stages: dict[tuple[str, int, str, str, str, str, str], Stage] = {}
        self._stage_ids: dict[int, tuple[int, int]] = {}  # id(stage) -> (sig id, pref id)
        self._handlers: dict[type, Callable[[Any, float, list[Action]], None]] = {
            CallStarted: self._call_started, CallRestored: self._call_restored,
            CallQueued: self._call_queued,
            IvrEnded: self._ivr_ended, CallerGone: self._caller_gone,
            AgentHungUp: self._agent_hung_up,
            OfferAnswered: self._offer_answered, OfferFailed: self._offer_failed,
            ConversationEnded: self._conversation_ended,
            CallPriorityChanged: self._priority_changed, AgentLogin: self._agent_login,
            AgentLogout: self._agent_logout, AgentReady: self._agent_ready,
            AgentPause: self._agent_pause, AgentProfileChanged: self._agent_profile,
            TimerFired: self._timer,
        }
        for profile in config.agents:
            self._add_agent(profile)

    # ------------------------------------------------------------ read side

    def agent(self, agent_id: str) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownSubject(f"unknown agent {agent_id!r}") from None

    def agents(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def calls(self) -> Iterator[Call]:
        return iter(self._calls.values())

    def queue_names(self) -> list[str]:
        return list(self.policy.queues)

    def queue_policy(self, queue: str) -> QueuePolicy:
        return self.policy.queues[queue]

    def serves(self, agent: str | Agent | AgentProfile, queue: str) -> bool:
        """Does the agent (an id, an agent or a profile) serve ``queue``: meet
        its hard requirements (``require``) as routing applies them, with the
        ones that depend on a caller (dialect, language, gender, age band,
        server) left out?  Raises ``UnknownSubject`` for an unknown agent id
        and ``KeyError`` for an unknown queue."""
        if isinstance(agent, str):
            agent = self.agent(agent)
        profile = agent.profile if isinstance(agent, Agent) else agent
        return eligible(profile, signature(self.policy.queues[queue].require, {}))

    def queue_staffing(self) -> dict[str, tuple[int, int]]:
        """queue -> (agents serving it (:meth:`serves`) logged in and not
        paused, those of them ready now): the one count the control API, the
        wallboard and the event bus show."""
        staffed = dict.fromkeys(self.policy.queues, 0)
        ready = dict.fromkeys(self.policy.queues, 0)
        needs = [(name, signature(qp.require, {})) for name, qp in self.policy.queues.items()]
        for agent in self._agents.values():
            if agent.state is AgentState.LOGGED_OUT or agent.state is AgentState.PAUSED:
                continue
            is_ready = agent.state is AgentState.READY
            for name, need in needs:
                if eligible(agent.profile, need):
                    staffed[name] += 1
                    if is_ready:
                        ready[name] += 1
        return {q: (staffed[q], ready[q]) for q in staffed}

    def waiting(self, queue: str) -> list[str]:
        """Waiting call ids of a queue in service order (offered calls excluded)."""
        return [cid for _, _, cid in self._order(queue)
                if self._calls[cid].state is CallState.WAITING]

    def position(self, call_id: str, now: float | None = None) -> tuple[int, float | None] | None:
        """(1-based position in its queue, expected wait in seconds or None
        when no agent serves it) of a waiting call; see :meth:`estimate`."""
        est = self.estimate(call_id, now)
        return None if est is None else (est.position, est.wait_s)

    def handle_time(self, queue: str) -> float:
        """The queue's handle-time estimate (ring + talk + wrap-up, seconds)."""
        return self._handle[queue].mean()

    def estimate(self, call_id: str, now: float | None = None) -> WaitEstimate | None:
        """Position and expected wait of a waiting call at ``now`` (default:
        the time of the latest event).  None for a call that is not waiting.

        Servers: the agents logged in, not paused (nor leaving or pausing
        after their call) and eligible for the call as its requirements stand now; those
        its coming escalation steps make eligible join from the step's time
        (up to an overflow step).  Each is free after the expected rest of
        its current call (from that call's queue's recent handle times and
        how long the call has lasted; a wrap-up to its end), then once per
        handle time.  Calls ahead: the waiting calls, of any queue these
        agents serve, that come before this one in service order (virtual
        arrival), each counted by the share of its own eligible agents that
        are among the servers serving this call now (1 for a call of this
        queue with the same requirements).  The expected wait is when the
        servers are expected to have been free (calls ahead + 1) times
        (:func:`acd.core.wait.free_time`), plus the queue's mean ringing
        time.  ``wait_s`` is None when no agent serves the call, now or
        after its coming escalation steps."""
        call = self._calls.get(call_id)
        if call is None or call.queue is None or call.state is not CallState.WAITING:
            return None
        assert call.stage is not None and call.queued_at is not None
        if now is None:
            now = self._now
        cache = self._wait_cache
        if cache is None or cache.version != self._version or cache.now != now:
            cache = self._wait_cache = _WaitCache(self._version, now)
        ours = call.entry()
        queue = call.queue
        pos = self._order(queue).bisect_left(ours) + 1
        handle = self._handle[queue]
        mean = handle.mean()
        # the agents serving the call now, and those its coming escalation
        # steps add (an overflow step ends the look ahead)
        steps = self.policy.queues[queue].escalate
        path = [call.sig_id]
        starts: list[float] = []
        for i in range(call.stage.steps_done, len(steps)):
            if steps[i].overflow is not None:
                break
            path.append(self._sig_id(self._stage(queue, i + 1, call.attrs).signature))
            starts.append(max(0.0, call.queued_at + steps[i].after_s - now))
        busy = list(self._server_groups(cache, call.sig_id))
        base = call.sig_id  # whose share of the calls ahead counts
        if len(path) > 1:
            for i, added in enumerate(self._steps_add(cache, tuple(path))):
                busy.extend(server.later(starts[i]) for server in added)
                if not self._wait_servers(cache, base):
                    base = path[i + 1]
        if not busy:
            return WaitEstimate(pos, None, 0, float(pos - 1), mean)
        # calls ahead, weighted; and the mean handle time of that work
        skills = cache.skills.get(base)
        if skills is None:
            skills = cache.skills[base] = set()
            for agent in self._wait_servers(cache, base).values():
                skills.update(agent.profile.skills)
        ahead = work = 0.0
        for qname, qp in self.policy.queues.items():
            if qp.require.skill not in skills:
                continue
            n = self._order(qname).bisect_left(ours)
            if n == 0:
                continue
            weights = self._ahead_weights(cache, qname, base)
            weight = weights[n] if n < len(weights) else weights[-1] * n / (len(weights) - 1)
            ahead += weight
            work += weight * self._handle[qname].mean()
        cycle = (work + mean) / (ahead + 1.0)
        # the caller waits until an agent is free, then while its phone rings
        wait = free_time(busy, cycle, ahead + 1.0) + handle.ring()
        return WaitEstimate(pos, wait, len(self._wait_servers(cache, call.sig_id)), ahead, mean)

    def _wait_servers(self, cache: _WaitCache, sig_id: int) -> dict[str, Agent]:
        """Staffed agents eligible for a signature (not those leaving or
        pausing after their call)."""
        got = cache.servers.get(sig_id)
        if got is None:
            sig = self._sigs[sig_id]
            got = cache.servers[sig_id] = {
                aid: agent for aid, agent in self._on_skill.get(sig.skill, {}).items()
                if not agent.logout_after_call and agent.pause_after_call is None
                and self._eligible(agent.shape, sig_id)}
        return got

    def _server_groups(self, cache: _WaitCache, sig_id: int) -> list[Server]:
        got = cache.groups.get(sig_id)
        if got is None:
            got = cache.groups[sig_id] = grouped(
                [self._server(agent, cache.now) for agent in self._wait_servers(cache,
                                                                                sig_id).values()])
        return got

    def _steps_add(self, cache: _WaitCache, path: tuple[int, ...]) -> list[list[Server]]:
        """For each escalation step along ``path`` (signature ids, now first):
        the agents it makes eligible that no earlier stage had, grouped."""
        got = cache.steps.get(path)
        if got is None:
            seen = set(self._wait_servers(cache, path[0]))
            got = []
            for sig_id in path[1:]:
                added: list[Server] = []
                for aid, agent in self._wait_servers(cache, sig_id).items():
                    if aid not in seen:
                        seen.add(aid)
                        added.append(self._server(agent, cache.now))
                got.append(grouped(added))
            cache.steps[path] = got
        return got

    def _ahead_weights(self, cache: _WaitCache, queue: str, base: int) -> list[float]:
        """Running sums along ``queue``'s service order (its first
        :data:`WAIT_SCAN_LIMIT` waiting calls) of each call's share of the
        agents serving signature ``base``: element i = the first i calls'."""
        key = (queue, base)
        got = cache.ahead.get(key)
        if got is None:
            mine = self._wait_servers(cache, base)
            shares: dict[int, float] = {}
            total = 0.0
            got = [0.0]
            for entry in self._order(queue).islice(0, WAIT_SCAN_LIMIT):
                sig_id = self._calls[entry[2]].sig_id
                share = shares.get(sig_id)
                if share is None:
                    theirs = self._wait_servers(cache, sig_id)
                    share = shares[sig_id] = sum(1 for aid in theirs if aid in mine) \
                        / len(theirs) if theirs else 0.0
                total += share
                got.append(total)
            cache.ahead[key] = got
        return got

    def _server(self, agent: Agent, now: float) -> Server:
        """When a staffed agent will be ready for another call."""
        if agent.state is AgentState.WRAP_UP:
            return Server(None, free_at=max(0.0, agent.wrap_up_until - now))
        call = self._calls.get(agent.call_id) if agent.call_id is not None else None
        if agent.state is AgentState.READY:
            return Server(None, ready=True)
        if call is None or call.queue is None:
            # busy on a call the router did not give (a direct call, one it
            # does not know): taken as just begun, not as free now
            return Server(next(iter(self._handle.values()), None))
        return Server(self._handle[call.queue], now - call.offered_at)

    def staffed(self, skill: str) -> int:
        return len(self._on_skill.get(skill, ()))

    def partition_sizes(self, queue: str) -> list[tuple[int, int]]:
        """(waiting calls, heap entries held) of each partition of a queue:
        entries beyond the waiting calls are stale ones not dropped yet."""
        return [(len(p.live), len(p.heap)) for p in self._parts[queue].values()]

    def _order(self, queue: str) -> SortedList:
        order = self._ordered.get(queue)
        if order is None:
            order = self._ordered[queue] = SortedList(
                entry for part in self._parts[queue].values() for entry in part.live.values())
        return order

    # ------------------------------------------------------------ write side

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply one event at time ``now``; return the actions it decides."""
        self._now = now
        self._version += 1
        out: list[Action] = []
        try:
            handler = self._handlers[type(event)]
        except KeyError:
            raise TypeError(f"not a core event: {event!r}") from None
        handler(event, now, out)
        return out

    def _agent_login(self, ev: AgentLogin, now: float, out: list[Action]) -> None:
        agent = self.agent(ev.agent_id)
        if agent.logout_after_call:  # logged in again before the call ended: stays
            agent.logout_after_call = False
            return
        self._agent_move(agent, AgentTrigger.LOGIN, now, out)
        if ev.ready:
            self._agent_move(agent, AgentTrigger.READY, now, out)
            self._dispatch_agent(agent, now, out)

    def _agent_logout(self, ev: AgentLogout, now: float, out: list[Action]) -> None:
        agent = self.agent(ev.agent_id)
        agent.pause_after_call = None
        if agent.state in _ON_A_CALL:
            agent.logout_after_call = True  # out when the call ends (or the offer does)
            return
        self._log_out(agent, now, out)

    def _log_out(self, agent: Agent, now: float, out: list[Action]) -> None:
        agent.logout_after_call = False
        agent.pause_after_call = None
        self._agent_move(agent, AgentTrigger.LOGOUT, now, out)
        out.append(CancelTimer(("ready", agent.agent_id)))  # no stale return to ready

    def _agent_ready(self, ev: AgentReady, now: float, out: list[Action]) -> None:
        agent = self.agent(ev.agent_id)
        if agent.pause_after_call is not None:
            agent.pause_after_call = None  # the pending pause taken back
            if agent.state in _ON_A_CALL:
                return  # ready again after the call, as if no pause was asked
        if agent.state is AgentState.WRAP_UP:  # its wrap-up ended early: ready now
            out.append(CancelTimer(("wrap_up", agent.agent_id)))
        self._agent_move(agent, AgentTrigger.READY, now, out)
        out.append(CancelTimer(("ready", agent.agent_id)))
        self._dispatch_agent(agent, now, out)

    def _agent_pause(self, ev: AgentPause, now: float, out: list[Action]) -> None:
        agent = self.agent(ev.agent_id)
        if agent.state in _ON_A_CALL:
            # ringing or on a call: paused when it would become ready again
            agent.pause_after_call = ev.reason or "paused"
            return
        agent.pause_after_call = None
        if agent.state is AgentState.WRAP_UP:
            out.append(CancelTimer(("wrap_up", agent.agent_id)))
        self._agent_move(agent, AgentTrigger.PAUSE, now, out, ev.reason or "paused")
        # a pause chosen by a person replaces a ring-no-answer pause and its timer
        out.append(CancelTimer(("ready", agent.agent_id)))

    def _agent_profile(self, ev: AgentProfileChanged, now: float, out: list[Action]) -> None:
        self._profile_changed(ev.profile, now, out)

    def _call_started(self, ev: CallStarted, now: float, out: list[Action]) -> None:
        if ev.call_id in self._calls:
            raise DuplicateCall(f"call {ev.call_id!r} started twice")
        self._calls[ev.call_id] = Call(
            ev.call_id, ev.caller, ev.caller_name, ev.channel, ev.server, now)

    def _call_restored(self, ev: CallRestored, now: float, out: list[Action]) -> None:
        """A call an earlier engine process accepted, put back as it was (see
        :class:`~acd.core.model.CallRestored`).  Refused (nothing changes)
        when it names an unknown queue or agent, or an agent already busy with
        another call: the engine then restores it as waiting."""
        if ev.call_id in self._calls:
            raise DuplicateCall(f"call {ev.call_id!r} restored twice")
        agent: Agent | None = None
        queue, priority = ev.queue, ev.priority
        attrs = dict(ev.attributes)
        attrs.setdefault("number", ev.caller)
        if ev.server:
            attrs[SERVER_ATTR] = ev.server
        if queue is not None and ev.reroute:
            attrs["ivr_queue"] = queue
            queue, prio = self.policy.route(attrs, queue)
            priority += prio
        if queue is not None:
            if queue not in self.policy.queues:
                raise UnknownSubject(f"call {ev.call_id}: unknown queue {queue!r} "
                                     f"(queues: {', '.join(self.policy.queues)})")
            if ev.agent_id is not None:
                agent = self.agent(ev.agent_id)
                if agent.call_id is not None or agent.state in _ON_A_CALL:
                    raise DuplicateCall(f"call {ev.call_id}: agent {ev.agent_id!r} is busy "
                                        f"with call {agent.call_id!r}")
        call = Call(ev.call_id, ev.caller, ev.caller_name, ev.channel, ev.server,
                    ev.started_at)
        call.ivr_path = ev.ivr_path
        call.offers = ev.offers
        call.offer_id = ev.offer_id
        if ev.offer_id > self._offer_seq:
            self._offer_seq = ev.offer_id
        self._calls[ev.call_id] = call
        if queue is None:
            return  # in the IVR: the flow starts again
        queued_at = ev.queued_at if ev.queued_at is not None else now
        self._move_call(call, CallTrigger.QUEUE)
        call.attrs = attrs
        call.customer_class = self.policy.classify(attrs)
        call.priority = priority
        call.queued_at = queued_at
        call.queue = queue
        call.first_queue = ev.first_queue if ev.first_queue is not None else queue
        self._seq += 1
        call.seq = self._seq
        call.key = queued_at - call.priority * self.policy.aging_s_per_level
        self._set_stage(call, self._due_stage(call, queue, now))
        if agent is None:
            self._enter(call)
            self._arm_timers(call, out)
            self._dispatch_call(call, now, out)
            return
        # the agent's phone rings (or talks) for this call: the agent is
        # logged in and taken through the table's steps to where it is
        if agent.state is AgentState.LOGGED_OUT:
            self._agent_move(agent, AgentTrigger.LOGIN, now, out)
        if agent.state is AgentState.WRAP_UP:
            out.append(CancelTimer(("wrap_up", agent.agent_id)))
            self._agent_move(agent, AgentTrigger.WRAP_UP_DONE, now, out)
        if agent.state is AgentState.PAUSED:
            out.append(CancelTimer(("ready", agent.agent_id)))
            self._agent_move(agent, AgentTrigger.READY, now, out)
        self._move_call(call, CallTrigger.OFFER)
        self._agent_move(agent, AgentTrigger.OFFER, now, out)
        call.agent_id = agent.agent_id
        agent.call_id = call.call_id
        call.offered_at = ev.answered_at if ev.answered_at is not None else now
        call.offer_recording = ev.recording  # set on its channel with the offer
        if ev.answered_at is None:
            self._arm_timers(call, out)
            return
        self._move_call(call, CallTrigger.ANSWER)
        call.answered_at = ev.answered_at
        call.recording = ev.recording  # its recording goes on on the PBX
        self._agent_move(agent, AgentTrigger.ANSWER, now, out)

    # ------------------------------------------------------------ call events

    def _get_call(self, call_id: str) -> Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise UnknownSubject(f"unknown call {call_id!r}") from None

    def _move_call(self, call: Call, trigger: CallTrigger) -> None:
        call.state = CALL_TABLE.next(call.call_id, call.state, trigger)

    def _call_queued(self, ev: CallQueued, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        attrs = dict(ev.attributes)
        attrs.setdefault("number", call.caller)
        attrs["ivr_queue"] = ev.queue
        if call.server:
            attrs[SERVER_ATTR] = call.server
        queue, prio = self.policy.route(attrs, ev.queue)
        if queue not in self.policy.queues:
            raise UnknownSubject(f"call {ev.call_id}: unknown queue {queue!r} "
                                 f"(queues: {', '.join(self.policy.queues)})")
        self._move_call(call, CallTrigger.QUEUE)
        call.attrs = attrs
        call.customer_class = self.policy.classify(attrs)
        call.priority = prio + ev.priority
        call.ivr_path = ev.ivr_path
        call.queued_at = now
        call.queue = call.first_queue = queue
        self._seq += 1
        call.seq = self._seq
        call.key = now - call.priority * self.policy.aging_s_per_level
        self._set_stage(call, self._due_stage(call, queue, now))
        self._enter(call)
        self._arm_timers(call, out)
        self._dispatch_call(call, now, out)

    def _due_stage(self, call: Call, queue: str, now: float) -> Stage:
        """The stage of ``queue`` with every step already due for this call."""
        assert call.queued_at is not None
        steps = self.policy.queues[queue].escalate
        done = 0
        # same arithmetic as the timer's due time, so a timer firing exactly
        # on time always finds its step due (no float drift, no re-arm loop)
        while done < len(steps) and call.queued_at + steps[done].after_s <= now \
                and steps[done].overflow is None:
            done += 1
        return self._stage(queue, done, call.attrs)

    def _stage(self, queue: str, steps_done: int, attrs: Mapping[str, str]) -> Stage:
        """``stage_for``, cached on what a stage depends on (many callers share it)."""
        key = (queue, steps_done, attrs.get("dialect", ""), attrs.get("language", ""),
               attrs.get("preferred_gender", ""), attrs.get("preferred_age_band", ""),
               attrs.get(SERVER_ATTR, ""))
        stage = self._stages.get(key)
        if stage is None:
            if len(self._stages) >= CACHE_LIMIT:
                self._stages.clear()
            stage = self._stages[key] = stage_for(self.policy, queue, steps_done, attrs)
        return stage

    def _sig_id(self, sig: Signature) -> int:
        sid = self._sig_ids.get(sig)
        if sid is None:
            sid = self._sig_ids[sig] = len(self._sigs)
            self._sigs.append(sig)
        return sid

    def _set_stage(self, call: Call, stage: Stage) -> None:
        call.stage = stage
        ids = self._stage_ids.get(id(stage))
        if ids is None or self._sigs[ids[0]] is not stage.signature:
            sid = self._sig_id(stage.signature)
            pid = self._pref_ids.get(stage.pref_key)
            if pid is None:
                pid = self._pref_ids[stage.pref_key] = len(self._prefs)
                self._prefs.append(stage.pref_key)
            ids = (sid, pid)
            if len(self._stage_ids) >= CACHE_LIMIT:
                self._stage_ids.clear()
            self._stage_ids[id(stage)] = ids
        call.sig_id, call.pref_id = ids

    def _enter(self, call: Call) -> None:
        """Put a waiting call in its queue's partition and order."""
        assert call.queue is not None
        entry = call.entry()
        parts = self._parts[call.queue]
        part = parts.get(call.sig_id)
        if part is None:
            part = parts[call.sig_id] = Part(self._sigs[call.sig_id])
        part.push(entry)
        order = self._ordered.get(call.queue)
        if order is not None:
            order.add(entry)
        call.in_queue = True

    def _leave(self, call: Call) -> None:
        """Take a call out of its queue's order and partition."""
        if call.in_queue and call.queue is not None:
            call.in_queue = False
            order = self._ordered.get(call.queue)
            if order is not None:
                order.discard(call.entry())
            part = self._parts[call.queue].get(call.sig_id)
            if part is not None:
                part.live.pop(call.call_id, None)
                if len(part.heap) > 2 * len(part.live) + 64:
                    # compact: stale entries would otherwise pile up in a
                    # partition no agent ever takes from
                    part.heap = list(part.live.values())
                    heapq.heapify(part.heap)

    def _arm_timers(self, call: Call, out: list[Action]) -> None:
        assert call.queued_at is not None and call.queue is not None
        assert call.stage is not None
        qp = self.policy.queues[call.queue]
        if call.stage.steps_done < len(qp.escalate):
            at = call.queued_at + qp.escalate[call.stage.steps_done].after_s
            out.append(StartTimer(("escalate", call.call_id), at))
            call.timers = True
        if qp.max_wait_s is not None:
            out.append(StartTimer(("max_wait", call.call_id), call.queued_at + qp.max_wait_s))
            call.timers = True

    def _cancel_timers(self, call: Call, out: list[Action]) -> None:
        if call.timers:
            call.timers = False
            out.append(CancelTimer(("escalate", call.call_id)))
            out.append(CancelTimer(("max_wait", call.call_id)))

    def _ivr_ended(self, ev: IvrEnded, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        self._move_call(call, CallTrigger.IVR_END)
        call.ivr_path = ev.ivr_path
        self._finish(call, now, Outcome.IVR, out, ev.reason)

    def _caller_gone(self, ev: CallerGone, now: float, out: list[Action]) -> None:
        """The caller hung up: the call's state says what that means."""
        call = self._calls.get(ev.call_id)
        if call is None:
            return  # ended already (the other source of the same hang-up was first)
        state = call.state
        if state is CallState.IVR:
            self._ivr_ended(IvrEnded(ev.call_id, ev.ivr_path, "caller-hangup"), now, out)
            return
        if state is CallState.CONNECTED:
            self._conversation_ended(ConversationEnded(ev.call_id, "caller"), now, out)
            return
        # waiting or ringing: abandoned, the ringing agent released
        self._move_call(call, CallTrigger.HANGUP)
        if state is CallState.OFFERED:
            agent = self.agent(call.agent_id or "")
            if agent.pause_after_call is not None and not agent.logout_after_call:
                # straight to the pending pause (RESERVED -> PAUSED), not
                # through a ready of no length that wallboards would show
                self._pause_pending(agent, AgentTrigger.OFFER_FAILED, now, out)
            else:
                self._agent_move(agent, AgentTrigger.OFFER_WITHDRAWN, now, out)
            agent.call_id = None
            call.agent_id = None
            if agent.logout_after_call:
                self._log_out(agent, now, out)
            else:
                self._dispatch_agent(agent, now, out)
        self._finish(call, now, Outcome.ABANDONED, out)

    def _agent_hung_up(self, ev: AgentHungUp, now: float, out: list[Action]) -> None:
        call = self._calls.get(ev.call_id)
        if call is not None and call.state is CallState.CONNECTED:
            self._conversation_ended(ConversationEnded(ev.call_id, "agent"), now, out)

    def _current_offer(self, call_id: str, offer_id: int) -> Call | None:
        """The call if ``offer_id`` is its live offer; None for a stale result
        (the caller already left, or a later offer superseded this one)."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.OFFERED or call.offer_id != offer_id:
            return None
        return call

    def _offer_answered(self, ev: OfferAnswered, now: float, out: list[Action]) -> None:
        call = self._current_offer(ev.call_id, ev.offer_id)
        if call is None:
            return
        self._move_call(call, CallTrigger.ANSWER)
        call.answered_at = ev.at if ev.at is not None and ev.at <= now else now
        self._cancel_timers(call, out)
        agent = self.agent(call.agent_id or "")
        self._agent_move(agent, AgentTrigger.ANSWER, now, out)
        # the dialplan started MixMonitor as the agent answered this offer
        call.recording = call.offer_recording

    def _offer_failed(self, ev: OfferFailed, now: float, out: list[Action]) -> None:
        call = self._current_offer(ev.call_id, ev.offer_id)
        if call is None:
            return
        self._move_call(call, CallTrigger.OFFER_FAILED)
        agent = self.agent(call.agent_id or "")
        agent.call_id = None
        call.agent_id = None
        if agent.pause_after_call is not None and not agent.logout_after_call:
            # the pause asked while it rang wins over a ring-no-answer pause
            # (and its timer back to ready)
            self._pause_pending(agent, AgentTrigger.OFFER_FAILED, now, out)
        elif ev.agent_fault:
            self._agent_move(agent, AgentTrigger.OFFER_FAILED, now, out, f"offer {ev.reason}")
            if self._config.rona_pause_s is not None and not agent.logout_after_call:
                out.append(StartTimer(("ready", agent.agent_id), now + self._config.rona_pause_s))
        else:
            self._agent_move(agent, AgentTrigger.OFFER_WITHDRAWN, now, out)
        if agent.logout_after_call:  # before the call is offered again (not to this agent)
            self._log_out(agent, now, out)
        assert call.queue is not None and call.queued_at is not None
        qp = self.policy.queues[call.queue]
        if qp.max_wait_s is not None and now >= call.queued_at + qp.max_wait_s:
            self._fallback(call, now, out)
        else:
            # back at its original place: same arrival and seq (and the
            # priority it has now, which may have changed while it rang)
            call.key = call.queued_at - call.priority * self.policy.aging_s_per_level
            self._enter(call)
            self._dispatch_call(call, now, out)
        if not ev.agent_fault:
            self._dispatch_agent(agent, now, out)

    def _conversation_ended(self, ev: ConversationEnded, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        self._move_call(call, CallTrigger.HANGUP)
        agent = self.agent(call.agent_id or "")
        self._agent_move(agent, AgentTrigger.CALL_ENDED, now, out)
        agent.call_id = None
        agent.calls_handled += 1
        # None, NaN or infinite: the configured wrap-up (a NaN or infinite
        # timer would never fire, or fire at once, and poison the estimates)
        wrap_up_s = self._config.wrap_up_s
        if ev.wrap_up_s is not None and math.isfinite(ev.wrap_up_s):
            wrap_up_s = max(0.0, ev.wrap_up_s)
        agent.wrap_up_until = now + wrap_up_s
        leaving = agent.logout_after_call
        if wrap_up_s > 0 and not leaving:
            out.append(StartTimer(("wrap_up", agent.agent_id), now + wrap_up_s))
        if call.queue is not None and call.answered_at is not None:
            # what the call occupied the agent for: ringing + talk + wrap-up
            offered = min(call.offered_at, call.answered_at)
            self._handle[call.queue].add(now - offered + wrap_up_s, call.answered_at - offered)
        self._finish(call, now, Outcome.ANSWERED, out)
        if leaving:  # asked to log out during the call: out now, from wrap-up
            self._log_out(agent, now, out)
        elif wrap_up_s <= 0:  # no wrap-up: ready now, not through a zero-length timer
            if agent.pause_after_call is not None:  # or paused, as it asked during the call
                self._pause_pending(agent, AgentTrigger.PAUSE, now, out)
                return
            self._agent_move(agent, AgentTrigger.WRAP_UP_DONE, now, out)
            self._dispatch_agent(agent, now, out)

    def _priority_changed(self, ev: CallPriorityChanged, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        if call.state is not CallState.WAITING or call.queued_at is None:
            call.priority = ev.priority
            return
        self._leave(call)
        call.priority = ev.priority
        call.key = call.queued_at - call.priority * self.policy.aging_s_per_level
        self._enter(call)
        self._dispatch_call(call, now, out)

    def _finish(self, call: Call, now: float, outcome: Outcome, out: list[Action],
                ivr_end: str = "") -> None:
        if call.queued_at is not None:
            self._leave(call)
            self._cancel_timers(call, out)
        del self._calls[call.call_id]
        wait = None
        if call.queued_at is not None:
            wait = (call.answered_at if call.answered_at is not None else now) - call.queued_at
        talk = now - call.answered_at if call.answered_at is not None else None
        out.append(WriteCallRecord(CallRecord(
            call_id=call.call_id, caller=call.caller, caller_name=call.caller_name,
            started_at=call.started_at, ended_at=now, outcome=outcome,
            ivr_path=call.ivr_path, queue=call.queue, queued_at=call.queued_at,
            wait_s=wait, agent_id=call.agent_id if outcome is Outcome.ANSWERED else None,
            answered_at=call.answered_at, talk_s=talk, offers=call.offers, server=call.server,
            customer_class=call.customer_class, priority=call.priority,
            first_queue=call.first_queue if call.first_queue != call.queue else None,
            ivr_end=ivr_end, recording=call.recording,
        )))

    # ----------------------------------------------------------- agent events

    def _add_agent(self, profile: AgentProfile) -> None:
        if profile.agent_id in self._agents:
            raise DuplicateCall(f"agent {profile.agent_id!r} defined twice")
        self._agents[profile.agent_id] = Agent(profile.agent_id, profile, self._shape_id(profile))

    def _shape_id(self, profile: AgentProfile) -> int:
        shape = profile.shape()
        sid = self._shape_ids.get(shape)
        if sid is None:
            sid = self._shape_ids[shape] = len(self._shape_profile)
            self._shape_profile.append(profile)
        return sid

    def _profile_changed(self, profile: AgentProfile, now: float, out: list[Action]) -> None:
        agent = self._agents.get(profile.agent_id)
        if agent is None:
            self._add_agent(profile)
            return
        was_ready = agent.state is AgentState.READY
        if was_ready:
            self._unindex_ready(agent)
        if agent.staffed:
            self._count_staffed(agent, -1)
        agent.profile = profile
        agent.shape = self._shape_id(profile)
        if agent.staffed:
            self._count_staffed(agent, +1)
        if was_ready:
            self._index_ready(agent)
            self._dispatch_agent(agent, now, out)

    def _index_ready(self, agent: Agent) -> None:
        shape = agent.shape
        for skill in agent.profile.skills:
            self._ready.setdefault(skill, {}).setdefault(shape, {})[agent.agent_id] = None

    def _unindex_ready(self, agent: Agent) -> None:
        for skill in agent.profile.skills:
            groups = self._ready.get(skill)
            if groups is None:
                continue
            members = groups.get(agent.shape)
            if members is not None:
                members.pop(agent.agent_id, None)
                if not members:
                    del groups[agent.shape]

    def _count_staffed(self, agent: Agent, delta: int) -> None:
        for skill in agent.profile.skills:
            if delta > 0:
                self._on_skill.setdefault(skill, {})[agent.agent_id] = agent
            else:
                members = self._on_skill.get(skill)
                if members is not None:
                    members.pop(agent.agent_id, None)

    def _agent_move(self, agent: Agent, trigger: AgentTrigger, now: float,
                    out: list[Action], reason: str = "") -> None:
        old = agent.state
        step = _AGENT_STEPS.get((old, trigger))
        if step is None:
            AGENT_TABLE.next(agent.agent_id, old, trigger)  # raises IllegalTransition
            raise AssertionError("unreachable: _AGENT_STEPS mirrors AGENT_TABLE")
        new, leaves_ready, enters_ready, staffed_delta = step
        if leaves_ready:
            self._unindex_ready(agent)
        agent.state = new
        if enters_ready:
            agent.ready_since = now
            self._index_ready(agent)
        if staffed_delta:
            self._count_staffed(agent, staffed_delta)
        agent.reason = reason if new is AgentState.PAUSED else ""
        if new is not old:
            agent.since = now
            out.append(AgentStateChanged(agent.agent_id, old, new, now, agent.reason))

    def _pause_pending(self, agent: Agent, trigger: AgentTrigger, now: float,
                       out: list[Action]) -> None:
        """Take the agent's pending pause: ``trigger`` leads to PAUSED."""
        reason = agent.pause_after_call or "paused"
        agent.pause_after_call = None
        self._agent_move(agent, trigger, now, out, reason)

    def _timer(self, ev: TimerFired, now: float, out: list[Action]) -> None:
        kind, subject = ev.key
        if kind in ("wrap_up", "ready"):
            agent = self._agents.get(subject)
            if agent is None:
                return
            if kind == "wrap_up" and agent.state is AgentState.WRAP_UP:
                if agent.pause_after_call is not None:
                    self._pause_pending(agent, AgentTrigger.PAUSE, now, out)
                    return
                self._agent_move(agent, AgentTrigger.WRAP_UP_DONE, now, out)
                self._dispatch_agent(agent, now, out)
            elif kind == "ready" and agent.state is AgentState.PAUSED:
                self._agent_move(agent, AgentTrigger.READY, now, out)
                self._dispatch_agent(agent, now, out)
            return
        call = self._calls.get(subject)
        if call is None or call.queued_at is None or call.state not in (
                CallState.WAITING, CallState.OFFERED):
            return
        if kind == "escalate":
            self._escalate(call, now, out)
        elif kind == "max_wait" and call.state is CallState.WAITING:
            assert call.queue is not None
            qp = self.policy.queues[call.queue]
            if qp.max_wait_s is not None and now >= call.queued_at + qp.max_wait_s:
                self._leave(call)
                self._fallback(call, now, out)
            else:  # fired early (or the queue changed): not yet
                self._arm_timers_max(call, out)

    def _arm_timers_max(self, call: Call, out: list[Action]) -> None:
        assert call.queue is not None and call.queued_at is not None
        qp = self.policy.queues[call.queue]
        if qp.max_wait_s is not None:
            out.append(StartTimer(("max_wait", call.call_id), call.queued_at + qp.max_wait_s))
            call.timers = True

    def _escalate(self, call: Call, now: float, out: list[Action]) -> None:
        """Apply the escalation steps that are due; never one before its time."""
        assert call.queue is not None and call.queued_at is not None and call.stage is not None
        qp = self.policy.queues[call.queue]
        steps = qp.escalate
        done = call.stage.steps_done
        new_queue = call.queue
        while done < len(steps) and call.queued_at + steps[done].after_s <= now:
            overflow = steps[done].overflow
            done += 1
            if overflow is not None:
                new_queue = overflow
                break
        if done == call.stage.steps_done:
            # fired early: re-arm for the step's time
            if done < len(steps):
                out.append(StartTimer(("escalate", call.call_id),
                                      call.queued_at + steps[done].after_s))
                call.timers = True
            return
        waiting = call.state is CallState.WAITING
        if waiting:
            self._leave(call)
        if new_queue != call.queue:
            call.queue = new_queue
            self._set_stage(call, self._due_stage(call, new_queue, now))
            out.append(CancelTimer(("max_wait", call.call_id)))
            self._arm_timers_max(call, out)
        else:
            self._set_stage(call, self._stage(call.queue, done, call.attrs))
        nqp = self.policy.queues[call.queue]
        nd = call.stage.steps_done
        if nd < len(nqp.escalate):
            out.append(StartTimer(("escalate", call.call_id),
                                  call.queued_at + nqp.escalate[nd].after_s))
            call.timers = True
        if waiting:
            self._enter(call)
            self._dispatch_call(call, now, out)
        # an offered call keeps ringing; the new stage applies if it comes back

    def _fallback(self, call: Call, now: float, out: list[Action]) -> None:
        assert call.queue is not None
        qp = self.policy.queues[call.queue]
        call.state = CALL_TABLE.next(call.call_id, call.state, CallTrigger.HANGUP)
        out.append(FallbackCall(call.call_id, qp.fallback, call.queue))
        self._finish(call, now, Outcome.FALLBACK, out)

    # --------------------------------------------------------------- routing

    def _eligible(self, shape: int, sig_id: int) -> bool:
        key = (shape, sig_id)
        ok = self._elig.get(key)
        if ok is None:
            if len(self._elig) >= CACHE_LIMIT:
                self._elig.clear()
            ok = self._elig[key] = eligible(self._shape_profile[shape], self._sigs[sig_id])
        return ok

    def _static(self, shape: int, pref_id: int) -> tuple[float, dict[str, float]]:
        key = (shape, pref_id)
        got = self._terms.get(key)
        if got is None:
            if len(self._terms) >= CACHE_LIMIT:
                self._terms.clear()
            terms = static_terms(self._shape_profile[shape], self._prefs[pref_id])
            got = self._terms[key] = (sum(terms.values()), terms)
        return got

    def _dispatch_call(self, call: Call, now: float, out: list[Action]) -> None:
        """A call is waiting (new, relaxed, back from a failed offer): offer
        it to the best-scoring eligible ready agent, if any."""
        stage = call.stage
        assert stage is not None
        groups = self._ready.get(stage.require.skill)
        if not groups:
            return
        idle_w = stage.prefer.idle
        scored: list[tuple[float, float, str, int]] = []
        for shape, members in groups.items():
            if not self._eligible(shape, call.sig_id):
                continue
            aid = next(iter(members))
            ready_since = self._agents[aid].ready_since
            total = self._static(shape, call.pref_id)[0]
            if idle_w:
                total += idle_w * min((now - ready_since) / 60.0, IDLE_CAP_MIN)
            scored.append((total, -ready_since, aid, shape))
        if stage.prefer.last_agent:
            last = call.attrs.get("last_agent")
            agent = self._agents.get(last) if last else None
            if agent is not None and agent.state is AgentState.READY \
                    and stage.require.skill in agent.profile.skills \
                    and self._eligible(agent.shape, call.sig_id):
                total = self._static(agent.shape, call.pref_id)[0] + stage.prefer.last_agent
                if idle_w:
                    total += idle_w * min((now - agent.ready_since) / 60.0, IDLE_CAP_MIN)
                scored.append((total, -agent.ready_since, agent.agent_id, agent.shape))
        if not scored:
            return
        if not self._explain:
            best = max(scored)
            self._offer(call, self._agents[best[2]], now, out, (), "")
            return
        top = heapq.nlargest(EXPLAIN_TOP, scored)
        best = top[0]
        self._offer(call, self._agents[best[2]], now, out,
                    self._candidates(call, top, now), "best score among ready agents")

    def _candidates(self, call: Call, top: list[tuple[float, float, str, int]],
                    now: float) -> tuple[Candidate, ...]:
        stage = call.stage
        assert stage is not None
        out: list[Candidate] = []
        seen: set[str] = set()
        last = call.attrs.get("last_agent")
        for total, _, aid, shape in top:
            if aid in seen:
                continue
            seen.add(aid)
            terms = dict(self._static(shape, call.pref_id)[1])
            if stage.prefer.idle:
                ready_since = self._agents[aid].ready_since
                terms["idle"] = stage.prefer.idle * min((now - ready_since) / 60.0, IDLE_CAP_MIN)
            if stage.prefer.last_agent and aid == last:
                terms["last_agent"] = stage.prefer.last_agent
            out.append(Candidate(aid, round(total, 6), tuple(sorted(terms.items()))))
        return tuple(out)

    def _dispatch_agent(self, agent: Agent, now: float, out: list[Action]) -> None:
        """``agent`` became ready: give it the first waiting call, by virtual
        arrival, among the partitions whose requirements it meets."""
        if agent.state is not AgentState.READY:
            return
        best: HeapEntry | None = None
        shape = agent.shape
        elig = self._elig
        # hot path: Part.head() and _eligible() inlined
        for skill in agent.profile.skills:
            for qname in self._queues_by_skill.get(skill, ()):
                parts = self._parts[qname]
                empty: list[int] = []
                for sig_id, part in parts.items():
                    heap, live = part.heap, part.live
                    while heap and live.get(heap[0][2]) != heap[0]:
                        heapq.heappop(heap)
                    if not heap:
                        empty.append(sig_id)
                        continue
                    head = heap[0]
                    if best is None or head < best:
                        ok = elig.get((shape, sig_id))
                        if ok is None:
                            ok = self._eligible(shape, sig_id)
                        if ok:
                            best = head
                for sig_id in empty:
                    del parts[sig_id]
        if best is None:
            return
        call = self._calls[best[2]]
        if not self._explain:
            self._offer(call, agent, now, out, (), "")
            return
        self._offer(call, agent, now, out,
                    (Candidate(agent.agent_id, 0.0, ()),),
                    "agent became ready: first eligible waiting call by priority and arrival")

    def _stage_description(self, queue: str, qp: QueuePolicy, steps_done: int) -> tuple[str, ...]:
        key = (queue, steps_done)
        text = self._stage_text.get(key)
        if text is None:
            text = self._stage_text[key] = _describe(qp, steps_done)
        return text

    def _offer(self, call: Call, agent: Agent, now: float, out: list[Action],
               candidates: tuple[Candidate, ...], reason: str) -> None:
        self._leave(call)
        self._move_call(call, CallTrigger.OFFER)
        self._agent_move(agent, AgentTrigger.OFFER, now, out)
        self._offer_seq += 1
        call.offer_id = self._offer_seq
        call.offers += 1
        call.offered_at = now
        call.agent_id = agent.agent_id
        agent.call_id = call.call_id
        assert call.queue is not None and call.stage is not None and call.queued_at is not None
        qp = self.policy.queues[call.queue]
        rule = self._config.recording
        call.offer_recording = rule.file(call.call_id, now) \
            if rule is not None and rule.wants(call.queue, call.customer_class) else ""
        out.append(ConnectCall(
            call_id=call.call_id, offer_id=call.offer_id, agent_id=agent.agent_id,
            extension=agent.profile.extension, channel=call.channel, server=call.server,
            ring_timeout_s=qp.ring_timeout_s, recording=call.offer_recording,
        ))
        if not self._explain:
            return
        out.append(RecordExplanation(Explanation(
            call_id=call.call_id, offer_id=call.offer_id, agent_id=agent.agent_id, at=now,
            queue=call.queue, customer_class=call.customer_class, priority=call.priority,
            waited_s=now - call.queued_at, stage=self._stage_description(call.queue, qp,
                                                                         call.stage.steps_done),
            reason=reason, candidates=candidates,
        )))


def _describe(qp: QueuePolicy, steps_done: int) -> tuple[str, ...]:
    return tuple(s.describe() for s in qp.escalate[:steps_done])


def agents_for_queues(agents: Mapping[str, tuple[str, tuple[str, ...]]],
                      level: int = 5) -> tuple[AgentProfile, ...]:
    """Profiles for the simple FIFO set-up: {agent id: (extension, queues)}."""
    return tuple(AgentProfile(aid, ext, skills={q: level for q in queues})
                 for aid, (ext, queues) in agents.items())
