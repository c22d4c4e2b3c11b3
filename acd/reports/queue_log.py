"""The queue_log: Asterisk's queue event log, written as app_queue writes it
(docs/reports.md#queue_log), so reporting tools made for Asterisk
(QueueMetrics, Asternic ...) read a center this engine routes.

Sans-I/O: :class:`QueueLogTranslator` follows the core's decisions
(``follow(event, actions, now)``, the engine's listener signature without
its clock) and returns :class:`QueueLogEntry` items; the adapter
(:mod:`acd.adapters.queue_log`) appends them to a file and/or the realtime
``queue_log`` table.  Nothing here reads a clock: every time is ``now``.

One line (``main/logger.c``, ``ast_queue_log``)::

    epoch|callid|queuename|agent|event|data1|data2|...

``epoch`` whole seconds (``time(NULL)``); ``callid`` the caller channel's
``Uniqueid`` (here the engine's call id, which is that ``Uniqueid`` on the
first server), ``NONE`` for agent events; ``agent`` the member's name
(``agent_format``, ``Agent/{agent}`` by default) or ``NONE``; the data
fields as app_queue formats them (``apps/app_queue.c``, Asterisk 22):

=================  ============================================================
ENTERQUEUE         url (empty) | caller id number | original position
CONNECT            hold time s | agent channel Uniqueid | ring time s
COMPLETECALLER     hold time s | talk time s | original position
COMPLETEAGENT      hold time s | talk time s | original position
ABANDON            position | original position | wait s
EXITWITHTIMEOUT    position | original position | wait s
RINGNOANSWER       ring time in milliseconds
RINGCANCELED       ring time in milliseconds (the caller left while it rang)
ADDMEMBER          ``PAUSED`` or empty
REMOVEMEMBER       empty
PAUSEALL/PAUSE     reason (PAUSEALL under queue ``NONE``, then PAUSE per queue)
UNPAUSEALL/UNPAUSE the unpause's reason: empty (the engine's is never given one;
                   Asterisk writes the ``Reason`` of ``QueuePause Paused=false``,
                   empty without one)
QUEUESTART         empty (callid, queue and agent ``NONE``)
=================  ============================================================

Times that app_queue takes as ``time(NULL) - start`` are differences of
whole epoch seconds here too (``int(now) - int(start)``), so a report
summing them agrees with one made from an Asterisk's log.  Positions are
places in the list app_queue keeps (``join_queue``): a call goes after every
call of its priority or higher and ahead of the lower ones, calls ringing an
agent stay in it until answered; the core's own service order (priorities
aged by waiting) may differ.  A call that overflows to another queue leaves
the first with EXITWITHTIMEOUT and enters the second with ENTERQUEUE (what a
dialplan's second ``Queue()`` after a timeout writes): its hold times from
then on (CONNECT, COMPLETE*) are its wait in the second queue only, as that
second ``Queue()`` counts them, not the call record's wait from the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from acd.core.model import (
    Action,
    AgentHungUp,
    AgentProfileChanged,
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallRecord,
    CallRestored,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    Event,
    OfferAnswered,
    OfferFailed,
    Outcome,
    TimerFired,
    WriteCallRecord,
)

__all__ = ["NONE", "QueueLogEntry", "QueueLogTranslator", "QueueLogView", "clean_field",
           "entry_line"]

#: what app_queue writes where a field has no value
NONE = "NONE"

#: the default agent field: QueueMetrics' and Asternic's agent naming
DEFAULT_AGENT_FORMAT = "Agent/{agent}"


def clean_field(value: str) -> str:
    """A field as one line can carry it: ``|`` (the separator) becomes ``_``
    (as app_queue does to a caller's name), line breaks and other control
    characters a space."""
    if value.isprintable() and "|" not in value:
        return value
    return "".join("_" if c == "|" else (c if c.isprintable() else " ") for c in value)


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One queue_log line.  ``data`` holds at least one field (app_queue
    always formats one, empty for events without data)."""

    time: float  # seconds since the epoch; the line writes the whole seconds
    callid: str
    queuename: str
    agent: str
    event: str
    data: tuple[str, ...] = ("",)

    @property
    def call_id(self) -> str:
        """The record writer's name for whose row this is."""
        return self.callid

    def line(self) -> str:
        """The line (without its newline), as ``ast_queue_log`` writes it."""
        return entry_line(self)

    def data_columns(self) -> tuple[str, str, str, str, str]:
        """data1..data5 of the realtime table (``queue_adaptive_realtime``):
        the data split at ``|``, the fifth keeping any rest."""
        parts = list(self.data[:4]) + (["|".join(self.data[4:])] if len(self.data) > 4 else [])
        parts += [""] * (5 - len(parts))
        return (parts[0], parts[1], parts[2], parts[3], parts[4])


def entry_line(e: QueueLogEntry) -> str:
    head = "|".join((str(int(e.time)), clean_field(e.callid), clean_field(e.queuename),
                     clean_field(e.agent), clean_field(e.event)))
    return head + "|" + "|".join(clean_field(d) for d in (e.data or ("",)))


class QueueLogView(Protocol):
    """What the translator asks of the core (read only, no I/O)."""

    def queue_of(self, call_id: str) -> str | None:
        """The queue the call is in now (None: not waiting or ringing)."""

    def agent_queues(self, agent_id: str) -> tuple[str, ...]:
        """The queues the agent serves (where ADDMEMBER and PAUSE go)."""

    def agent_channel(self, call_id: str) -> str:
        """The agent leg's ``Uniqueid`` of a connected call ("" unknown)."""

    def priority_of(self, call_id: str) -> int:
        """The call's priority now (0: unknown), for its place on entry."""


@dataclass(slots=True)
class _Call:
    queue: str
    entered: float  # when it entered this queue
    opos: int  # its position then
    queued_at: float  # when it first entered a queue (the record's queued_at)
    prio: int = 0  # its priority when it entered (its place in app_queue's list)
    agent: str | None = None  # the agent ringing or talking
    offered_at: float = 0.0
    answered_at: float | None = None


@dataclass(slots=True)
class _Agent:
    queues: tuple[str, ...] = ()  # the queues it was added to (ADDMEMBER)
    member: bool = False
    paused: bool = False


@dataclass(slots=True)
class _Net:
    """An agent's changes within one decision."""

    first: AgentState
    last: AgentState
    reason: str
    last_index: int


def _whole(t: float) -> int:
    return int(t)


def _span(start: float, end: float) -> int:
    """``time(NULL) - start`` of two epoch times: whole seconds, never below 0."""
    return max(0, _whole(end) - _whole(start))


class QueueLogTranslator:
    """Follows the core's decisions and says them as queue_log entries.

    ``view``: the core as the translator reads it (:class:`QueueLogView`);
    ``agent_format``: the agent field (``{agent}``: the agent id);
    ``pause_all``: a pause is written as Asterisk writes an interface's
    pause in every queue (``PAUSEALL`` under queue ``NONE``, then
    ``PAUSE`` per queue); False: the per-queue lines only."""

    def __init__(self, view: QueueLogView, agent_format: str = DEFAULT_AGENT_FORMAT,
                 *, pause_all: bool = True) -> None:
        try:
            agent_format.format(agent="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"agent_format {agent_format!r}: only {{agent}} may be named "
                             f"({type(exc).__name__}: {exc})") from None
        self._view = view
        self._format = agent_format
        self._pause_all = pause_all
        self._callers: dict[str, str] = {}
        self._calls: dict[str, _Call] = {}
        #: queue -> calls in it, in app_queue's order: by priority on entry,
        #: then arrival (ringing calls included, as app_queue keeps them)
        self._queues: dict[str, list[str]] = {}
        self._agents: dict[str, _Agent] = {}
        self._ringing: dict[str, str] = {}  # agent -> the call ringing it

    # ------------------------------------------------------------ public

    def member(self, agent_id: str) -> str:
        return self._format.format(agent=agent_id)

    def start(self, now: float) -> list[QueueLogEntry]:
        """What Asterisk writes when its queue logger starts."""
        return [QueueLogEntry(now, NONE, NONE, NONE, "QUEUESTART", ("",))]

    @property
    def tracked(self) -> int:
        """Calls followed now (entered a queue, not yet ended)."""
        return len(self._calls)

    def follow(self, event: Event, actions: Sequence[Action], now: float
               ) -> list[QueueLogEntry]:
        """The lines one core decision makes (``event`` was accepted and
        decided ``actions`` at ``now``)."""
        out: list[QueueLogEntry] = []
        if isinstance(event, CallStarted):
            self._callers[event.call_id] = event.caller
        elif isinstance(event, CallRestored):
            self._restored(event, now)
        elif isinstance(event, CallQueued):
            self._queued(event.call_id, now, out)
        elif isinstance(event, TimerFired) and event.key[0] == "escalate":
            self._overflow(event.key[1], now, out)
        nets = self._nets(actions)
        for i, action in enumerate(actions):
            if isinstance(action, ConnectCall):
                self._offered(action, now)
            elif isinstance(action, AgentStateChanged):
                self._agent_change(event, action, now, out)
                net = nets[action.agent_id]
                if net.last_index == i:
                    self._agent_net(action.agent_id, net, now, out)
            elif isinstance(action, WriteCallRecord):
                self._ended(event, action.record, now, out)
        if isinstance(event, AgentProfileChanged):
            self._profile(event.profile.agent_id, now, out)
        return out

    # ------------------------------------------------------------ calls

    def _restored(self, ev: CallRestored, now: float) -> None:
        """A call an earlier process wrote ENTERQUEUE (and CONNECT) for:
        followed on, so its end is written, without writing those again."""
        self._callers[ev.call_id] = ev.caller
        queue = self._view.queue_of(ev.call_id) or ev.queue  # routed again: the core's
        if queue is None or ev.queued_at is None:
            return
        call = self._place(ev.call_id, queue, ev.queued_at, ev.queued_at)
        if ev.agent_id is not None:
            call.agent = ev.agent_id
            call.answered_at = ev.answered_at
            if ev.answered_at is None:  # ringing since before: counted from now
                call.offered_at = now
                self._ringing[ev.agent_id] = ev.call_id
            else:
                self._leave(ev.call_id, call)

    def _place(self, call_id: str, queue: str, now: float, queued_at: float) -> _Call:
        """Put the call in the queue's list where app_queue's ``join_queue``
        puts a caller: after every call of its priority or higher, ahead of
        the lower ones."""
        members = self._queues.setdefault(queue, [])
        prio = self._view.priority_of(call_id)
        at = len(members)
        for i, cid in enumerate(members):
            other = self._calls.get(cid)
            if other is not None and other.prio < prio:
                at = i
                break
        members.insert(at, call_id)
        call = _Call(queue, now, at + 1, queued_at, prio)
        self._calls[call_id] = call
        return call

    def _enter(self, call_id: str, queue: str, now: float, queued_at: float,
               out: list[QueueLogEntry]) -> _Call:
        call = self._place(call_id, queue, now, queued_at)
        caller = self._callers.get(call_id, "")
        out.append(QueueLogEntry(now, call_id, queue, NONE, "ENTERQUEUE",
                                 ("", caller, str(call.opos))))
        return call

    def _queued(self, call_id: str, now: float, out: list[QueueLogEntry]) -> None:
        queue = self._view.queue_of(call_id)
        if queue is None:
            return  # already gone (decided in the same step)
        self._enter(call_id, queue, now, now, out)

    def _position(self, call: _Call, call_id: str) -> int:
        members = self._queues.get(call.queue, [])
        try:
            return members.index(call_id) + 1
        except ValueError:
            return 1  # no longer in the queue's list (ringing calls stay in it): first

    def _leave(self, call_id: str, call: _Call) -> None:
        members = self._queues.get(call.queue)
        if members is not None:
            with contextlib.suppress(ValueError):
                members.remove(call_id)
            if not members:
                del self._queues[call.queue]

    def _overflow(self, call_id: str, now: float, out: list[QueueLogEntry]) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        queue = self._view.queue_of(call_id)
        if queue is None or queue == call.queue:
            return
        pos = self._position(call, call_id)
        out.append(QueueLogEntry(now, call_id, call.queue, NONE, "EXITWITHTIMEOUT",
                                 (str(pos), str(call.opos), str(_span(call.entered, now)))))
        self._leave(call_id, call)
        moved = self._enter(call_id, queue, now, call.queued_at, out)
        moved.agent, moved.offered_at = call.agent, call.offered_at  # a ring goes on

    def _offered(self, action: ConnectCall, now: float) -> None:
        call = self._calls.get(action.call_id)
        if call is None:
            return
        call.agent = action.agent_id
        call.offered_at = now
        self._ringing[action.agent_id] = action.call_id

    def _ended(self, event: Event, rec: CallRecord, now: float,
               out: list[QueueLogEntry]) -> None:
        self._callers.pop(rec.call_id, None)
        call = self._calls.pop(rec.call_id, None)
        if call is None:
            return  # never entered a queue (ended in the IVR)
        if call.agent is not None and self._ringing.get(call.agent) == rec.call_id:
            del self._ringing[call.agent]
        pos = self._position(call, rec.call_id)
        self._leave(rec.call_id, call)
        cid, q = rec.call_id, call.queue
        if rec.outcome is Outcome.ANSWERED and rec.agent_id is not None:
            answered = call.answered_at if call.answered_at is not None else (
                rec.answered_at if rec.answered_at is not None else now)
            by_agent = isinstance(event, AgentHungUp) or (
                isinstance(event, ConversationEnded) and event.by == "agent")
            out.append(QueueLogEntry(
                now, cid, q, self.member(rec.agent_id),
                "COMPLETEAGENT" if by_agent else "COMPLETECALLER",
                (str(_span(call.entered, answered)), str(_span(answered, now)),
                 str(call.opos))))
        elif rec.outcome is Outcome.ABANDONED:
            out.append(QueueLogEntry(now, cid, q, NONE, "ABANDON",
                                     (str(pos), str(call.opos), str(_span(call.entered, now)))))
        elif rec.outcome is Outcome.FALLBACK:
            out.append(QueueLogEntry(now, cid, q, NONE, "EXITWITHTIMEOUT",
                                     (str(pos), str(call.opos), str(_span(call.entered, now)))))

    # ----------------------------------------------------------- agents

    @staticmethod
    def _nets(actions: Sequence[Action]) -> dict[str, _Net]:
        nets: dict[str, _Net] = {}
        for i, a in enumerate(actions):
            if isinstance(a, AgentStateChanged):
                net = nets.get(a.agent_id)
                if net is None:
                    nets[a.agent_id] = _Net(a.old, a.new, a.reason, i)
                else:
                    net.last, net.reason, net.last_index = a.new, a.reason, i
        return nets

    def _agent_change(self, event: Event, a: AgentStateChanged, now: float,
                      out: list[QueueLogEntry]) -> None:
        """The call lines of one change: an answer, a ring that ended."""
        if a.old is not AgentState.RESERVED:
            return
        call_id = self._ringing.pop(a.agent_id, None)
        call = self._calls.get(call_id) if call_id is not None else None
        if call_id is None or call is None:
            return
        member = self.member(a.agent_id)
        if a.new is AgentState.ON_CALL:
            answered = now
            if isinstance(event, OfferAnswered) and event.at is not None and event.at <= now:
                answered = event.at
            call.answered_at = answered
            out.append(QueueLogEntry(
                now, call_id, call.queue, member, "CONNECT",
                (str(_span(call.entered, answered)), self._view.agent_channel(call_id),
                 str(_span(call.offered_at, answered)))))
            self._leave(call_id, call)
            return
        ring_ms = str(max(0, round((now - call.offered_at) * 1000)))
        call.agent = None
        if isinstance(event, OfferFailed):
            out.append(QueueLogEntry(now, call_id, call.queue, member, "RINGNOANSWER",
                                     (ring_ms,)))
        else:  # the caller left while it rang (the ABANDON follows)
            out.append(QueueLogEntry(now, call_id, call.queue, member, "RINGCANCELED",
                                     (ring_ms,)))

    def _agent_net(self, agent_id: str, net: _Net, now: float,
                   out: list[QueueLogEntry]) -> None:
        """Membership and pause lines of an agent's changes in one decision
        (logged in and made ready at once: one ADDMEMBER, not also UNPAUSE)."""
        st = self._agents.setdefault(agent_id, _Agent())
        member_after = net.last is not AgentState.LOGGED_OUT
        paused_after = net.last is AgentState.PAUSED
        name = self.member(agent_id)
        if not st.member and net.first is not AgentState.LOGGED_OUT:
            # logged in before we followed it (an earlier process, a restart)
            st.queues = tuple(self._view.agent_queues(agent_id))
            st.member, st.paused = True, net.first is AgentState.PAUSED
        if not st.member and member_after:
            st.queues = tuple(self._view.agent_queues(agent_id))
            st.member, st.paused = True, paused_after
            flag = "PAUSED" if paused_after else ""
            out.extend(QueueLogEntry(now, "MANAGER", q, name, "ADDMEMBER", (flag,))
                       for q in st.queues)
            return
        if st.member and not member_after:
            out.extend(QueueLogEntry(now, "MANAGER", q, name, "REMOVEMEMBER", ("",))
                       for q in st.queues)
            del self._agents[agent_id]
            return
        if not member_after or st.paused == paused_after:
            return
        st.paused = paused_after
        # an unpause has no reason in the engine (AgentReady carries none): empty,
        # as Asterisk writes QueuePause Paused=false without a Reason
        reason = net.reason if paused_after else ""
        if self._pause_all:
            out.append(QueueLogEntry(now, NONE, NONE, name,
                                     "PAUSEALL" if paused_after else "UNPAUSEALL", (reason,)))
        event = "PAUSE" if paused_after else "UNPAUSE"
        out.extend(QueueLogEntry(now, NONE, q, name, event, (reason,)) for q in st.queues)

    def _profile(self, agent_id: str, now: float, out: list[QueueLogEntry]) -> None:
        """A logged-in agent's queues changed: added to the new ones, removed
        from the old (as ``QueueAdd``/``QueueRemove`` write it)."""
        st = self._agents.get(agent_id)
        if st is None or not st.member:
            return
        new = tuple(self._view.agent_queues(agent_id))
        name = self.member(agent_id)
        out.extend(QueueLogEntry(now, "MANAGER", q, name, "REMOVEMEMBER", ("",))
                   for q in st.queues if q not in new)
        flag = "PAUSED" if st.paused else ""
        out.extend(QueueLogEntry(now, "MANAGER", q, name, "ADDMEMBER", (flag,))
                   for q in new if q not in st.queues)
        st.queues = new
