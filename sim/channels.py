"""Channels, bridges and the one interruptible wait every application uses.

A :class:`Channel` carries what an AMI channel snapshot shows (answered.txt:
``Channel``, ``ChannelState``, ``CallerIDNum`` ... ``Linkedid``) plus the
state the simulator needs: channel variables, the current application, the
bridge, and whether it was hung up or redirected.

Concurrency model: only a channel that runs dialplan has a task (callers,
answered originates).  An agent leg created by ``Dial`` has none: the
caller's task drives it.  Everything that can interrupt an application
(hang-up, AMI Redirect, a DTMF digit, the agent answering) calls
:meth:`Channel.poke`, which wakes the single coroutine waiting in
:meth:`Channel.pause` on that channel (or on the leg's owner).  Timers are
``loop.call_at`` handles owned by the channel and cancelled when it is
destroyed: no task per timer, no polling.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.config import CallResult, PhoneBehaviour


class ChannelInterrupted(Exception):
    """The channel was hung up or redirected while an application was running."""


# Asterisk channel states (AST_STATE_*) and their ``ChannelStateDesc``.
STATE_DOWN = 0
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6
STATE_DESC = {STATE_DOWN: "Down", STATE_RING: "Ring", STATE_RINGING: "Ringing", STATE_UP: "Up"}


class AgiHook(Protocol):
    """What a channel needs from the FastAGI session it is in (see sim.agi_client)."""

    def on_interrupt(self) -> None: ...


class CallerHook(Protocol):
    """What the simulator tells the script of an inbound call (see
    sim.callers.CallerState) as its channel goes through the dialplan."""

    @property
    def agi_commands(self) -> list[str]: ...

    def on_input_prompt(self, chan: Channel) -> None: ...
    def on_agi(self, script: str) -> None: ...
    def on_hold_start(self, chan: Channel) -> None: ...
    def on_hold_end(self, chan: Channel) -> None: ...
    def on_ringing(self, chan: Channel, agent: str) -> None: ...
    def on_ring_end(self, chan: Channel) -> None: ...
    def record_dial(self, status: str) -> None: ...
    def on_connected(self, chan: Channel, agent: str) -> None: ...
    def on_transfer(self, chan: Channel, number: str) -> None: ...
    def on_transfer_answered(self, chan: Channel) -> None: ...
    def on_transfer_end(self, chan: Channel) -> None: ...
    def mark_hangup(self) -> None: ...
    def note_hangup_by(self, who: str) -> None: ...
    def finish(self, chan: Channel, cause: int, stopped: bool = False) -> CallResult: ...


class PhoneHook(Protocol):
    """The agent phone a Dial leg rings, as the phone bank keeps it on the leg
    (see sim.phones.Phone)."""

    channel: Channel | None
    device_state: str
    calls: int

    @property
    def device(self) -> str: ...
    @property
    def behaviour(self) -> PhoneBehaviour: ...


@dataclass(slots=True)
class GosubFrame:
    """One return address of a channel's Gosub stack (apps/app_stack.c
    ``gosub_stack_frame``): where ``Return()`` goes back to, the ``ARGn`` /
    ``ARGC`` variables the call pushed (with the values they hide: None =
    none), and whether it ends a routine run from C (Dial's ``U()``:
    ``is_special``, its ``Return()`` ends the routine's loop)."""

    context: str
    exten: str
    priority: int
    arguments: int
    hidden: dict[str, str | None] = field(default_factory=dict)
    is_special: bool = False


def _wake_up(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Channel:
    """One simulated Asterisk channel."""

    __slots__ = (
        "_wake", "accountcode", "agi", "answered", "app_data", "application", "bridge",
        "caller", "cid_name", "cid_num", "conn_name", "conn_num", "context", "created",
        "destroyed", "digits", "dnid", "exten", "gosub", "hangup_cause", "has_pbx", "hungup",
        "language", "linkedid", "listening", "loop", "name", "owner", "phone", "priority",
        "redirect_to", "state", "timers", "uniqueid", "vars",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, *, uniqueid: str, linkedid: str,
                 name: str, context: str, exten: str, priority: int, state: int,
                 cid_num: str, cid_name: str, dnid: str = "unknown") -> None:
        self.loop = loop
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.name = name
        self.context = context
        self.exten = exten
        self.priority = priority
        self.state = state
        self.cid_num = cid_num
        self.cid_name = cid_name
        self.conn_num = "<unknown>"
        self.conn_name = "<unknown>"
        self.language = "en"
        self.accountcode = ""
        self.dnid = dnid
        self.created = loop.time()
        self.vars: dict[str, str] = {}
        #: Gosub return addresses, innermost last.
        self.gosub: list[GosubFrame] = []
        self.application = ""
        self.app_data = ""
        self.bridge: Bridge | None = None
        self.hungup = False
        self.hangup_cause = 16
        self.redirect_to: tuple[str, str, int] | None = None
        self.destroyed = False
        #: for a Dial leg: the caller channel whose task drives this one.
        self.owner: Channel | None = None
        self.answered = False
        self.has_pbx = False
        self.listening = False
        self.digits: deque[str] = deque()
        self.agi: AgiHook | None = None
        self.caller: CallerHook | None = None
        self.phone: PhoneHook | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self._wake: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Channel {self.name} {self.uniqueid}>"

    # ---------------------------------------------------------------- state

    @property
    def interrupted(self) -> bool:
        """Hung up or redirected: the running application must give up."""
        return self.hungup or self.redirect_to is not None

    def caller_id_all(self) -> str:
        return f'"{self.cid_name}" <{self.cid_num}>' if self.cid_name else f"<{self.cid_num}>"

    # ---------------------------------------------------------------- timers

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        """A timer that dies with the channel."""
        if self.destroyed:
            return
        timers = self.timers
        if len(timers) > 16:
            timers[:] = [t for t in timers if not t.cancelled() and t.when() > self.loop.time()]
        timers.append(self.loop.call_later(max(0.0, delay), callback, *args))

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    # --------------------------------------------------------------- waiting

    def poke(self) -> None:
        """Wake whoever waits on this channel (and the owner of a Dial leg)."""
        fut = self._wake
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self.owner is not None:
            self.owner.poke()

    async def pause(self, deadline: float | None) -> None:
        """Sleep until ``deadline`` (loop time) or the next :meth:`poke`."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self._wake = fut
        handle = self.loop.call_at(deadline, _wake_up, fut) if deadline is not None else None
        try:
            await fut
        finally:
            if handle is not None:
                handle.cancel()
            self._wake = None

    async def wait_digit(self, deadline: float | None, accept: str) -> str | None:
        """A digit from ``accept``, or None once ``deadline`` passes.

        Digits outside ``accept`` are dropped, as Asterisk drops keys that are
        not escape digits while a file plays.  Raises ChannelInterrupted on
        hang-up or redirect.
        """
        loop = self.loop
        while True:
            if self.interrupted:
                raise ChannelInterrupted
            digits = self.digits
            while digits:
                d = digits.popleft()
                if d in accept:
                    return d
            if deadline is not None and loop.time() >= deadline:
                return None
            await self.pause(deadline)

    async def sleep_until(self, deadline: float | None) -> None:
        """Interruptible sleep (raises ChannelInterrupted)."""
        await self.wait_digit(deadline, "")

    # ------------------------------------------------------------------ DTMF

    def listen(self, prompt_for_input: bool) -> None:
        """Start collecting DTMF.  ``prompt_for_input`` lets the caller type."""
        self.digits.clear()
        self.listening = True
        if prompt_for_input and self.caller is not None:
            self.caller.on_input_prompt(self)

    def unlisten(self) -> None:
        self.listening = False
        self.digits.clear()

    def press(self, digit: str) -> None:
        """A received digit (at DTMFEnd).  Lost if nobody is listening."""
        if self.listening and not self.destroyed:
            self.digits.append(digit)
            self.poke()


class Bridge:
    """A basic two-party bridge (``BridgeType: basic``, ``simple_bridge``)."""

    __slots__ = ("channels", "uniqueid")

    def __init__(self) -> None:
        self.uniqueid = str(uuid.uuid4())
        self.channels: list[Channel] = []


class ChannelRegistry:
    """Live channels by name and Uniqueid, plus the id counters.

    Uniqueids are ``<epoch>.<seq>`` and channel names end in an 8-hex-digit
    counter, both global to the PBX, as in the recordings
    (``1795461991.0``, ``Local/s@caller-00000000;1``).
    """

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._name_seq = itertools.count()
        self.by_name: dict[str, Channel] = {}
        self.by_uid: dict[str, Channel] = {}

    def new_uniqueid(self) -> str:
        uid = f"{int(time.time())}.{next(self._seq)}"
        while uid in self.by_uid:
            uid = f"{int(time.time())}.{next(self._seq)}"
        return uid

    def new_name(self, prefix: str) -> str:
        return f"{prefix}-{next(self._name_seq):08x}"

    def add(self, chan: Channel) -> None:
        self.by_name[chan.name] = chan
        self.by_uid[chan.uniqueid] = chan

    def remove(self, chan: Channel) -> None:
        if self.by_name.get(chan.name) is chan:
            del self.by_name[chan.name]
        if self.by_uid.get(chan.uniqueid) is chan:
            del self.by_uid[chan.uniqueid]

    def find(self, key: str) -> Channel | None:
        """By name, then by Uniqueid (as ``ast_channel_get_by_name`` does)."""
        return self.by_name.get(key) or self.by_uid.get(key)

    def __len__(self) -> int:
        return len(self.by_uid)

    def all(self) -> list[Channel]:
        return list(self.by_uid.values())
