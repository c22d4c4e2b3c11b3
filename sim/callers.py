"""Simulated callers: who presses which key when, and when they give up.

Keys are typed as the recorded callers typed them (``SendDTMF(12,250)`` in
the transcripts): ``DTMFBegin``, 100 ms later ``DTMFEnd`` (the moment
Asterisk acts on the digit), 250 ms gap before the next digit.  A caller
types the next entry of :attr:`CallerScript.keys` ``key_delay_s`` after an
input prompt starts (STREAM FILE / SAY with escape digits, GET DATA, WAIT
FOR DIGIT), one entry per prompt, never two entries at once.

The caller's phases: ``ivr`` -> ``hold`` (MusicOnHold) -> ``ringing`` (Dial
to an agent) -> ``talking`` (bridged).  Patience is a wall-clock deadline
from the first MusicOnHold (or ringback), cleared once connected.  A caller
sent to ``acd-transfer`` is in phase ``transfer`` while the outside number
rings and talks; its patience timer (if one runs) stops when that answers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.channels import Channel
from sim.config import CallerScript, CallResult, Outcome

if TYPE_CHECKING:
    from sim.config import SimConfig
    from sim.events import Events


class CallerState:
    """Behaviour and bookkeeping of one inbound call."""

    def __init__(self, script: CallerScript, cfg: SimConfig, events: Events,
                 remote_hangup: Callable[[Channel, int], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.script = script
        self._cfg = cfg
        self._events = events
        self._remote_hangup = remote_hangup
        self._loop = loop
        self._keys: deque[str] = deque(script.keys)
        self._typing = False
        self._patience: asyncio.TimerHandle | None = None
        self.phase = "ivr"
        self.phase_at_hangup: str | None = None
        self.hangup_by: str | None = None
        self.started_at = loop.time()
        self.first_hold_at: float | None = None
        self.connected_at: float | None = None
        #: when the call was first hung up (by anyone); the channel may live on
        #: a little (a dead AGI socket), but waits and talks end here.
        self.hungup_at: float | None = None
        self.agent: str | None = None
        self.requeues = 0
        self.dial_statuses: list[str] = []
        self.agi_scripts: list[str] = []
        self.agi_commands: list[str] = []
        #: acd-transfer: the number dialled, and when it answered.
        self.transferred_to: str | None = None
        self.transfer_answered_at: float | None = None
        self.done: asyncio.Future[CallResult] = loop.create_future()

    # -------------------------------------------------------------- typing

    def on_input_prompt(self, chan: Channel) -> None:
        """An input prompt started: type the next entry of ``keys``."""
        if self._typing or not self._keys:
            return
        entry = self._keys.popleft()
        if not entry:
            return
        self._typing = True
        cfg = self._cfg
        step = cfg.dtmf_duration_s + cfg.dtmf_gap_s
        for i, digit in enumerate(entry):
            begin = cfg.scaled(self.script.key_delay_s + i * step)
            chan.call_later(begin, self._dtmf_begin, chan, digit)
            chan.call_later(begin + cfg.scaled(cfg.dtmf_duration_s), self._dtmf_end, chan,
                            digit, i == len(entry) - 1)

    def _dtmf_begin(self, chan: Channel, digit: str) -> None:
        if not chan.hungup:
            self._events.dtmf_begin(chan, digit)

    def _dtmf_end(self, chan: Channel, digit: str, last: bool) -> None:
        if last:
            self._typing = False
        if not chan.hungup:
            self._events.dtmf_end(chan, digit, int(self._cfg.dtmf_duration_s * 1000))
            chan.press(digit)

    @property
    def keys_left(self) -> int:
        return len(self._keys)

    # -------------------------------------------------------------- phases

    def start(self, chan: Channel) -> None:
        if self.script.hangup_after_s is not None:
            chan.call_later(self._cfg.scaled(self.script.hangup_after_s), self.give_up, chan)

    def _start_waiting(self, chan: Channel) -> None:
        if self.first_hold_at is None:
            self.first_hold_at = self._loop.time()
            if self.script.patience_s is not None and self.connected_at is None:
                delay = self._cfg.scaled(self.script.patience_s)
                self._patience = self._loop.call_later(delay, self.give_up, chan)
                chan.timers.append(self._patience)

    def on_hold_start(self, chan: Channel) -> None:
        self.phase = "hold"
        self._start_waiting(chan)

    def on_hold_end(self, chan: Channel) -> None:
        if self.phase == "hold":
            self.phase = "ivr"

    def on_ringing(self, chan: Channel, agent: str) -> None:
        self.phase = "ringing"
        self._start_waiting(chan)

    def on_ring_end(self, chan: Channel) -> None:
        if self.phase == "ringing":
            self.phase = "ivr"

    def record_dial(self, status: str) -> None:
        self.dial_statuses.append(status)

    def on_connected(self, chan: Channel, agent: str) -> None:
        self.phase = "talking"
        self.agent = agent
        if self.connected_at is None:
            self.connected_at = self._loop.time()
        if self._patience is not None:
            self._patience.cancel()
            self._patience = None

    def on_transfer(self, chan: Channel, number: str) -> None:
        """Dial of an outside number through the trunk (acd-transfer) starts."""
        self.phase = "transfer"
        self.transferred_to = number

    def on_transfer_answered(self, chan: Channel) -> None:
        self.transfer_answered_at = self._loop.time()
        if self._patience is not None:
            self._patience.cancel()
            self._patience = None

    def on_transfer_end(self, chan: Channel) -> None:
        if self.phase == "transfer":
            self.phase = "ivr"

    def on_agi(self, script: str) -> None:
        self.agi_scripts.append(script)
        if script.partition("?")[0].strip("/") == self._cfg.requeue_script:
            self.requeues += 1

    def give_up(self, chan: Channel) -> None:
        """The caller hangs up now, wherever the call is."""
        if chan.destroyed or chan.hungup:
            return
        self.hangup_by = self.hangup_by or "caller"
        self.phase_at_hangup = self.phase
        self._remote_hangup(chan, 16)

    def mark_hangup(self) -> None:
        if self.hungup_at is None:
            self.hungup_at = self._loop.time()

    def note_hangup_by(self, who: str) -> None:
        if self.hangup_by is None:
            self.hangup_by = who
            self.phase_at_hangup = self.phase

    # -------------------------------------------------------------- result

    def outcome(self) -> Outcome:
        if self.connected_at is not None:
            return Outcome.TALKED
        if self.transfer_answered_at is not None:
            return Outcome.TRANSFERRED
        if self.hangup_by == "caller":
            if self.phase_at_hangup == "ringing":
                return Outcome.ABANDONED_RINGING
            if self.first_hold_at is not None:
                return Outcome.ABANDONED_HOLD
            return Outcome.IVR_HANGUP
        return Outcome.ENGINE_HANGUP

    def finish(self, chan: Channel, cause: int, stopped: bool = False) -> CallResult:
        now = self._loop.time()
        cfg = self._cfg
        outcome = Outcome.STOPPED if stopped else self.outcome()
        end = self.hungup_at if self.hungup_at is not None else now
        wait_end = self.connected_at if self.connected_at is not None else end
        result = CallResult(
            uniqueid=chan.uniqueid,
            channel=chan.name,
            number=self.script.number,
            name=self.script.name,
            outcome=outcome,
            agent=self.agent,
            hangup_by=self.hangup_by or "pbx",
            cause=cause,
            started_at=self.started_at,
            ended_at=now,
            first_hold_at=self.first_hold_at,
            connected_at=self.connected_at,
            wait_s=(cfg.unscaled(wait_end - self.first_hold_at)
                    if self.first_hold_at is not None else None),
            talk_s=(cfg.unscaled(end - self.connected_at)
                    if self.connected_at is not None else None),
            duration_s=cfg.unscaled(now - self.started_at),
            requeues=self.requeues,
            dial_statuses=list(self.dial_statuses),
            agi_scripts=list(self.agi_scripts),
            agi_commands=list(self.agi_commands),
            transferred_to=self.transferred_to,
        )
        if not self.done.done():
            self.done.set_result(result)
        return result


class CallHandle:
    """What :meth:`sim.pbx.SimPBX.place_call` returns."""

    __slots__ = ("_chan", "_state")

    def __init__(self, chan: Channel, state: CallerState) -> None:
        self._chan = chan
        self._state = state

    @property
    def uniqueid(self) -> str:
        return self._chan.uniqueid

    @property
    def channel(self) -> str:
        return self._chan.name

    @property
    def done(self) -> asyncio.Future[CallResult]:
        return self._state.done

    @property
    def phase(self) -> str:
        """ivr / hold / ringing / talking / transfer, or ``ended``."""
        return "ended" if self._chan.destroyed else self._state.phase

    @property
    def agi_commands(self) -> list[str]:
        return self._state.agi_commands

    def hangup(self) -> None:
        """Make the caller hang up now."""
        self._state.give_up(self._chan)
