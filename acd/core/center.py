"""The sans-I/O contact-center core: ``handle(event, now) -> actions``.

No sockets, no clock reads, no awaits.  The engine (real time) and the load
simulator (virtual time) drive this same object.

Routing here is first-come first-served per queue with the longest-idle
ready agent; a failed offer puts the call back at its original place.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from acd.core.model import (
    AGENT_TABLE,
    CALL_TABLE,
    Action,
    AgentConfig,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    AgentState,
    AgentStateChanged,
    AgentTrigger,
    CallerHungUp,
    CallQueued,
    CallRecord,
    CallStarted,
    CallState,
    CallTrigger,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    Outcome,
    QueueConfig,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)


class UnknownSubject(Exception):
    """An event names a call, agent or queue the core does not know."""


class DuplicateCall(Exception):
    """A call id that is already live was started again."""


@dataclass(slots=True)
class Agent:
    config: AgentConfig
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    reason: str = ""
    call_id: str | None = None
    calls_handled: int = 0

    @property
    def agent_id(self) -> str:
        return self.config.agent_id


@dataclass(slots=True)
class Call:
    call_id: str
    caller: str
    caller_name: str
    channel: str
    server: str
    started_at: float
    state: CallState = CallState.IVR
    queue: str | None = None
    seq: int = 0  # arrival order in the queue; kept across failed offers
    queued_at: float | None = None
    ivr_path: tuple[str, ...] = ()
    agent_id: str | None = None
    offer_id: int = 0
    offers: int = 0
    answered_at: float | None = None


@dataclass(slots=True)
class Queue:
    config: QueueConfig
    waiting: list[tuple[int, str]] = field(default_factory=list)  # heap of (seq, call_id)
    ready: dict[str, None] = field(default_factory=dict)  # ready agents, longest idle first


class ContactCenter:
    """Calls, agents and queues; every decision is returned as actions."""

    def __init__(self, config: CoreConfig) -> None:
        self._config = config
        self._queues: dict[str, Queue] = {q.name: Queue(q) for q in config.queues}
        self._agents: dict[str, Agent] = {}
        for a in config.agents:
            for qname in a.queues:
                if qname not in self._queues:
                    raise UnknownSubject(f"agent {a.agent_id}: unknown queue {qname!r}")
            self._agents[a.agent_id] = Agent(a)
        self._calls: dict[str, Call] = {}
        self._seq = 0
        self._offer_seq = 0

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
        return list(self._queues)

    def waiting(self, queue: str) -> list[str]:
        """Waiting call ids of a queue in service order."""
        q = self._queues[queue]
        return [cid for _, cid in sorted(q.waiting) if self._is_waiting(cid, queue)]

    # ------------------------------------------------------------ write side

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        match event:
            case CallStarted():
                self._call_started(event, now)
            case CallQueued():
                self._call_queued(event, now, out)
            case IvrEnded():
                self._ivr_ended(event, now, out)
            case CallerHungUp():
                self._caller_hung_up(event, now, out)
            case OfferAnswered():
                self._offer_answered(event, now, out)
            case OfferFailed():
                self._offer_failed(event, now, out)
            case ConversationEnded():
                self._conversation_ended(event, now, out)
            case AgentLogin():
                self._agent_login(event, now, out)
            case AgentLogout():
                self._agent_move(self.agent(event.agent_id), AgentTrigger.LOGOUT, now, out)
            case AgentReady():
                agent = self.agent(event.agent_id)
                self._agent_move(agent, AgentTrigger.READY, now, out)
                out.append(CancelTimer(("ready", agent.agent_id)))
                self._dispatch_agent(agent, now, out)
            case AgentPause():
                agent = self.agent(event.agent_id)
                if agent.state is AgentState.WRAP_UP:
                    out.append(CancelTimer(("wrap_up", agent.agent_id)))
                self._agent_move(agent, AgentTrigger.PAUSE, now, out, event.reason)
            case TimerFired():
                self._timer(event, now, out)
        return out

    # ------------------------------------------------------------ call events

    def _call_started(self, ev: CallStarted, now: float) -> None:
        if ev.call_id in self._calls:
            raise DuplicateCall(f"call {ev.call_id!r} started twice")
        self._calls[ev.call_id] = Call(
            ev.call_id, ev.caller, ev.caller_name, ev.channel, ev.server, started_at=now
        )

    def _get_call(self, call_id: str) -> Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise UnknownSubject(f"unknown call {call_id!r}") from None

    def _move_call(self, call: Call, trigger: CallTrigger) -> None:
        call.state = CALL_TABLE.next(call.call_id, call.state, trigger)

    def _call_queued(self, ev: CallQueued, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        if ev.queue not in self._queues:
            raise UnknownSubject(f"call {ev.call_id}: unknown queue {ev.queue!r}")
        self._move_call(call, CallTrigger.QUEUE)
        self._seq += 1
        call.seq = self._seq
        call.queue = ev.queue
        call.queued_at = now
        call.ivr_path = ev.ivr_path
        q = self._queues[ev.queue]
        heapq.heappush(q.waiting, (call.seq, call.call_id))
        self._dispatch_queue(q, now, out)

    def _ivr_ended(self, ev: IvrEnded, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        self._move_call(call, CallTrigger.IVR_END)
        call.ivr_path = ev.ivr_path
        self._finish(call, now, Outcome.IVR, out)

    def _caller_hung_up(self, ev: CallerHungUp, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        state = call.state
        if state is CallState.CONNECTED:
            self._conversation_ended(ConversationEnded(ev.call_id, "caller"), now, out)
            return
        self._move_call(call, CallTrigger.HANGUP)
        if state is CallState.OFFERED:
            agent = self.agent(call.agent_id or "")
            self._agent_move(agent, AgentTrigger.OFFER_WITHDRAWN, now, out)
            agent.call_id = None
            call.agent_id = None
            self._dispatch_agent(agent, now, out)
        outcome = Outcome.IVR if state is CallState.IVR else Outcome.ABANDONED
        self._finish(call, now, outcome, out)

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
        call.answered_at = now
        agent = self.agent(call.agent_id or "")
        self._agent_move(agent, AgentTrigger.ANSWER, now, out)

    def _offer_failed(self, ev: OfferFailed, now: float, out: list[Action]) -> None:
        call = self._current_offer(ev.call_id, ev.offer_id)
        if call is None:
            return
        self._move_call(call, CallTrigger.OFFER_FAILED)
        agent = self.agent(call.agent_id or "")
        agent.call_id = None
        call.agent_id = None
        if ev.agent_fault:
            self._agent_move(agent, AgentTrigger.OFFER_FAILED, now, out, f"offer {ev.reason}")
            if self._config.rona_pause_s is not None:
                out.append(StartTimer(("ready", agent.agent_id), now + self._config.rona_pause_s))
        else:
            self._agent_move(agent, AgentTrigger.OFFER_WITHDRAWN, now, out)
        # back at its original place: same seq
        assert call.queue is not None
        q = self._queues[call.queue]
        heapq.heappush(q.waiting, (call.seq, call.call_id))
        self._dispatch_queue(q, now, out)
        if not ev.agent_fault:
            self._dispatch_agent(agent, now, out)

    def _conversation_ended(self, ev: ConversationEnded, now: float, out: list[Action]) -> None:
        call = self._get_call(ev.call_id)
        self._move_call(call, CallTrigger.HANGUP)
        agent = self.agent(call.agent_id or "")
        self._agent_move(agent, AgentTrigger.CALL_ENDED, now, out)
        agent.call_id = None
        agent.calls_handled += 1
        out.append(StartTimer(("wrap_up", agent.agent_id), now + self._config.wrap_up_s))
        self._finish(call, now, Outcome.ANSWERED, out)

    def _finish(self, call: Call, now: float, outcome: Outcome, out: list[Action]) -> None:
        del self._calls[call.call_id]
        wait = None
        if call.queued_at is not None:
            wait = (call.answered_at if call.answered_at is not None else now) - call.queued_at
        talk = now - call.answered_at if call.answered_at is not None else None
        agent_id = None
        if outcome is Outcome.ANSWERED:
            agent_id = call.agent_id
        out.append(WriteCallRecord(CallRecord(
            call_id=call.call_id, caller=call.caller, caller_name=call.caller_name,
            started_at=call.started_at, ended_at=now, outcome=outcome,
            ivr_path=call.ivr_path, queue=call.queue, queued_at=call.queued_at,
            wait_s=wait, agent_id=agent_id, answered_at=call.answered_at, talk_s=talk,
            offers=call.offers, server=call.server,
        )))

    # ----------------------------------------------------------- agent events

    def _agent_login(self, ev: AgentLogin, now: float, out: list[Action]) -> None:
        agent = self.agent(ev.agent_id)
        self._agent_move(agent, AgentTrigger.LOGIN, now, out)
        if ev.ready:
            self._agent_move(agent, AgentTrigger.READY, now, out)
            self._dispatch_agent(agent, now, out)

    def _agent_move(self, agent: Agent, trigger: AgentTrigger, now: float,
                    out: list[Action], reason: str = "") -> None:
        old = agent.state
        new = AGENT_TABLE.next(agent.agent_id, old, trigger)
        if old is AgentState.READY and new is not AgentState.READY:
            for qname in agent.config.queues:
                self._queues[qname].ready.pop(agent.agent_id, None)
        if new is AgentState.READY and old is not AgentState.READY:
            for qname in agent.config.queues:
                self._queues[qname].ready[agent.agent_id] = None
        agent.state = new
        agent.reason = reason if new is AgentState.PAUSED else ""
        if new is not old:
            agent.since = now
            out.append(AgentStateChanged(agent.agent_id, old, new, now, agent.reason))

    def _timer(self, ev: TimerFired, now: float, out: list[Action]) -> None:
        kind, agent_id = ev.key
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        if kind == "wrap_up" and agent.state is AgentState.WRAP_UP:
            self._agent_move(agent, AgentTrigger.WRAP_UP_DONE, now, out)
            self._dispatch_agent(agent, now, out)
        elif kind == "ready" and agent.state is AgentState.PAUSED:
            self._agent_move(agent, AgentTrigger.READY, now, out)
            self._dispatch_agent(agent, now, out)

    # --------------------------------------------------------------- routing

    def _is_waiting(self, call_id: str, queue: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.state is CallState.WAITING and call.queue == queue

    def _head(self, q: Queue) -> tuple[int, str] | None:
        """Oldest waiting call of a queue, dropping stale heap entries."""
        heap = q.waiting
        while heap:
            seq, cid = heap[0]
            call = self._calls.get(cid)
            if call is not None and call.state is CallState.WAITING and call.seq == seq:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _dispatch_queue(self, q: Queue, now: float, out: list[Action]) -> None:
        """A call joined ``q``: give queued calls to ready agents while both exist."""
        while q.ready:
            head = self._head(q)
            if head is None:
                return
            agent_id = next(iter(q.ready))
            self._offer(self._calls[head[1]], self._agents[agent_id], q, now, out)

    def _dispatch_agent(self, agent: Agent, now: float, out: list[Action]) -> None:
        """``agent`` became ready: give it the oldest call of its queues."""
        if agent.state is not AgentState.READY:
            return
        best: tuple[int, str] | None = None
        best_q: Queue | None = None
        for qname in agent.config.queues:
            q = self._queues[qname]
            head = self._head(q)
            if head is not None and (best is None or head < best):
                best, best_q = head, q
        if best is not None and best_q is not None:
            self._offer(self._calls[best[1]], agent, best_q, now, out)

    def _offer(self, call: Call, agent: Agent, q: Queue, now: float, out: list[Action]) -> None:
        heapq.heappop(q.waiting)
        self._move_call(call, CallTrigger.OFFER)
        self._agent_move(agent, AgentTrigger.OFFER, now, out)
        self._offer_seq += 1
        call.offer_id = self._offer_seq
        call.offers += 1
        call.agent_id = agent.agent_id
        agent.call_id = call.call_id
        out.append(ConnectCall(
            call_id=call.call_id, offer_id=call.offer_id, agent_id=agent.agent_id,
            extension=agent.config.extension, channel=call.channel, server=call.server,
            ring_timeout_s=q.config.ring_timeout_s,
        ))
