"""SimPBX: a simulated Asterisk 22 that speaks real AMI and FastAGI.

Ties the pieces together: the AMI server (sim.ami_server), the channel
registry (sim.channels), the fixed dialplan (sim.dialplan) with its
applications (sim.apps) and FastAGI client (sim.agi_client), agents' phones
(sim.phones) and scripted callers (sim.callers).

Hang-up flavours, as in the recordings:

* :meth:`remote_hangup` - the far end hung up (caller, agent): a
  ``HangupRequest`` now (abandon.txt t=8.324);
* :meth:`soft_hangup` - AMI ``Hangup``, AGI ``HANGUP``: a
  ``SoftHangupRequest`` with the cause now (ivr_only.txt Cause 32);
* :meth:`request_hangup` - the dialplan's own ``Hangup()`` / end of Dial;
* in every case the channel's task ends its dialplan with
  ``SoftHangupRequest Cause: 16`` and ``Hangup`` (:meth:`end_of_dialplan`),
  which for a channel in AGI happens only once the AGI socket is closed
  (abandon.txt t=11.329).

Every task the simulator starts is in ``self._tasks`` and is cancelled and
awaited by :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from sim.ami_server import AmiServer
from sim.apps import Apps
from sim.callers import CallerState, CallHandle
from sim.channels import STATE_DOWN, STATE_RING, Channel, ChannelRegistry
from sim.config import CallerScript, PhoneBehaviour, SimConfig
from sim.dialplan import Dialplan, DialplanRunner
from sim.events import EventListener, Events
from sim.originate import (
    REASON_ANSWERED,
    REASON_BUSY,
    REASON_CONGESTION,
    REASON_FAILED,
    REASON_HANGUP,
    REASON_NO_ANSWER,
    OriginateRequest,
    OriginateResult,
)
from sim.phones import Phone, PhoneBank

log = logging.getLogger(__name__)

_VAR_REF = re.compile(r"\$\{([^{}]+)\}")


#: the dialplan functions / built-in variables GET VARIABLE and ${...} know.
_FUNCTIONS: dict[str, Callable[[Channel], str]] = {
    "CALLERID(NUM)": lambda c: c.cid_num,
    "CALLERID(NAME)": lambda c: c.cid_name,
    "CALLERID(ALL)": lambda c: c.caller_id_all(),
    "CHANNEL": lambda c: c.name,
    "CHANNEL(NAME)": lambda c: c.name,
    "CHANNEL(LANGUAGE)": lambda c: c.language,
    "CHANNEL(LINKEDID)": lambda c: c.linkedid,
    "UNIQUEID": lambda c: c.uniqueid,
    "EXTEN": lambda c: c.exten,
    "CONTEXT": lambda c: c.context,
    "PRIORITY": lambda c: str(c.priority),
    "LANGUAGE": lambda c: c.language,
}


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class SimPBX:
    """The simulated PBX.  ``async with SimPBX(cfg) as pbx: ...``"""

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.channels = ChannelRegistry()
        self.ami = AmiServer(self)
        self.events = Events(self.ami, varset=self.cfg.emit_varset,
                             agi_exec=self.cfg.emit_agi_exec)
        self.phones = PhoneBank(self.cfg, self.events, self.remote_hangup)
        self.apps = Apps(self)
        self.dialplan = Dialplan(self.cfg)
        self._runner = DialplanRunner(self, self.dialplan)
        self.globals: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # ------------------------------------------------------------- lifecycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def start(self) -> None:
        """Bind the AMI port (``SimConfig.ami_port``, 0 = ephemeral)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        await self.ami.start(self.cfg.ami_host, self.cfg.ami_port)

    @property
    def ami_port(self) -> int:
        return self.ami.port

    async def stop(self) -> None:
        """Cancel and await every task; pending calls resolve as STOPPED."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for chan in self.channels.all():
            self.destroy(chan, 16)
        await self.ami.stop()

    async def __aenter__(self) -> SimPBX:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> None:
        """Start an owned task (cancelled by :meth:`stop`)."""
        if self._stopping:
            coro.close()
            return
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def task_count(self) -> int:
        return len(self._tasks)

    # ---------------------------------------------------------------- public

    def add_phone(self, ext: str, behaviour: PhoneBehaviour | None = None) -> Phone:
        """Add an agent phone ``PJSIP/<ext>`` (or change an existing one's behaviour)."""
        return self.phones.add(ext, behaviour)

    async def place_call(self, script: CallerScript) -> CallHandle:
        """An inbound call from the trunk into ``acd-hotline`` at ``script.dnid``."""
        cfg = self.cfg
        uid = self.channels.new_uniqueid()
        chan = Channel(self.loop, uniqueid=uid, linkedid=uid,
                       name=self.channels.new_name(f"PJSIP/{cfg.trunk}"),
                       context=cfg.hotline_context, exten=script.dnid, priority=1,
                       state=STATE_RING, cid_num=script.number, cid_name=script.name,
                       dnid=script.dnid)
        caller = CallerState(script, cfg, self.events, self.remote_hangup, self.loop)
        chan.caller = caller
        self.channels.add(chan)
        self.events.newchannel(chan)
        caller.start(chan)
        self.spawn(self._runner.run(chan), name=f"sim:{chan.name}")
        return CallHandle(chan, caller)

    def add_event_listener(self, listener: EventListener) -> None:
        """In-process copy of every event (as AmiMessage), for tests and tools."""
        self.events.listeners.append(listener)

    def remove_event_listener(self, listener: EventListener) -> None:
        if listener in self.events.listeners:
            self.events.listeners.remove(listener)

    # ------------------------------------------------------- fault injection

    async def drop_ami_clients(self) -> None:
        """Close every AMI connection abruptly (TCP reset)."""
        await self.ami.drop_all()

    def freeze_ami(self, frozen: bool) -> None:
        """Stop (or resume) reading and answering AMI; events are held meanwhile."""
        self.ami.freeze(frozen)

    async def inject_ami_raw(self, data: bytes) -> None:
        """Write raw bytes to every AMI client (malformed frames...)."""
        await self.ami.inject(data)

    # -------------------------------------------------------------- channels

    def new_outbound_channel(self, phone: Phone, linked_to: Channel | None, *,
                             uniqueid: str | None = None, cid_num: str = "",
                             cid_name: str = "") -> Channel:
        """A ``PJSIP/<ext>-XXXXXXXX`` channel towards a phone (Dial leg or Originate)."""
        uid = uniqueid or self.channels.new_uniqueid()
        chan = Channel(self.loop, uniqueid=uid,
                       linkedid=linked_to.linkedid if linked_to is not None else uid,
                       name=self.channels.new_name(phone.device), context=self.cfg.agent_context,
                       exten=phone.ext, priority=1, state=STATE_DOWN,
                       cid_num=cid_num, cid_name=cid_name)
        if linked_to is not None:
            # answered.txt's Dest snapshot: number = dialled ext, name/connected = caller.
            chan.owner = linked_to
            chan.cid_num = phone.ext
            chan.cid_name = linked_to.cid_name
            chan.conn_num = linked_to.cid_num
            chan.conn_name = linked_to.cid_name
        self.channels.add(chan)
        self.events.newchannel(chan)
        if linked_to is not None:
            chan.application, chan.app_data = "AppDial", "(Outgoing Line)"
            self.events.newexten(chan, chan.application, chan.app_data)
        return chan

    def _mark_hangup(self, chan: Channel) -> None:
        if chan.caller is not None:
            chan.caller.mark_hangup()

    def _interrupt(self, chan: Channel) -> None:
        if chan.agi is not None:
            chan.agi.on_interrupt()
        chan.poke()

    def _note_hangup_by(self, chan: Channel, who: str) -> None:
        caller = chan.caller
        if caller is None and chan.owner is not None:
            caller = chan.owner.caller
        if caller is not None:
            caller.note_hangup_by(who)

    def remote_hangup(self, chan: Channel, cause: int) -> None:
        """The far end hung up (BYE): ``HangupRequest`` now."""
        if chan.destroyed or chan.hungup:
            return
        self.events.hangup_request(chan, cause)
        chan.hungup = True
        chan.hangup_cause = cause
        self._mark_hangup(chan)
        self._interrupt(chan)

    def soft_hangup(self, chan: Channel, cause: int, *, final_cause: int | None = None,
                    by: str | None = None) -> None:
        """AMI Hangup / AGI HANGUP: ``SoftHangupRequest`` now."""
        if chan.destroyed or chan.hungup:
            return
        if by is not None:
            self._note_hangup_by(chan, by)
        self.events.soft_hangup_request(chan, cause)
        chan.hungup = True
        chan.hangup_cause = cause if final_cause is None else final_cause
        self._mark_hangup(chan)
        self._interrupt(chan)

    def request_hangup(self, chan: Channel, cause: int) -> None:
        """The dialplan itself ends the call (``Hangup()``, Dial without ``g``)."""
        if chan.destroyed or chan.hungup:
            return
        chan.hungup = True
        chan.hangup_cause = cause
        self._mark_hangup(chan)
        self._interrupt(chan)

    def redirect(self, name: str, context: str, exten: str, priority: int) -> str | None:
        """AMI Redirect; returns the error message, or None on success."""
        chan = self.channels.find(name)
        if chan is None or chan.destroyed or chan.hungup:
            return "Channel specified does not exist"
        target = (context or chan.context, exten or chan.exten, priority)
        if chan.owner is not None:  # a Dial leg: only once it is up and bridged
            if chan.bridge is None:
                return "Redirect failed"
            chan.redirect_to = target
            chan.poke()
            return None
        if not chan.has_pbx:  # an originated channel still ringing
            return "Redirect failed"
        chan.redirect_to = target
        self._interrupt(chan)
        return None

    def continue_in_dialplan(self, chan: Channel) -> None:
        """A redirected Dial leg leaves its bridge and runs dialplan on its own."""
        chan.owner = None
        self.spawn(self._runner.run(chan), name=f"sim:{chan.name}")

    def end_of_dialplan(self, chan: Channel) -> None:
        """The channel's dialplan is over: ``SoftHangupRequest 16`` + ``Hangup``."""
        if chan.destroyed:
            return
        self.events.soft_hangup_request(chan, 16)
        self.destroy(chan, chan.hangup_cause)

    def destroy(self, chan: Channel, cause: int, *, release_phone: bool = True) -> None:
        """``Hangup`` event, forget the channel, free its phone, settle the call."""
        if chan.destroyed:
            return
        chan.destroyed = True
        chan.hungup = True
        chan.hangup_cause = cause
        chan.cancel_timers()
        chan.unlisten()
        self.events.hangup(chan, cause)
        self.channels.remove(chan)
        if release_phone:
            self.phones.release(chan)
        if chan.caller is not None:
            chan.caller.finish(chan, cause, stopped=self._stopping)

    # ------------------------------------------------------------- variables

    def read_var(self, chan: Channel, name: str) -> str | None:
        """A channel variable or one of the few dialplan functions, None if unset."""
        special = _FUNCTIONS.get(name.strip().upper())
        if special is not None:
            return special(chan)
        value = chan.vars.get(name)
        if value is None:
            value = self.globals.get(name)
        return value

    def set_var(self, chan: Channel, name: str, value: str) -> None:
        up = name.strip().upper()
        if up == "CALLERID(NUM)":
            chan.cid_num = value
        elif up == "CALLERID(NAME)":
            chan.cid_name = value
        else:
            chan.vars[name] = value
        self.events.varset(chan, name, value)

    def expand(self, chan: Channel, template: str) -> str:
        """``${VAR}`` substitution; ACD_AGI / ACD_RING_TIMEOUT / ACD_MOH have defaults."""
        cfg = self.cfg
        defaults = {
            "ACD_AGI": cfg.agi_url,
            "ACD_SERVER": cfg.server_name or "",
            "ACD_RING_TIMEOUT": _fmt_seconds(cfg.default_ring_timeout_s),
            "ACD_MOH": cfg.default_moh_class,
        }

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            value = self.read_var(chan, key)
            if not value:
                value = defaults.get(key, value or "")
            return value

        return _VAR_REF.sub(sub, template)

    # ------------------------------------------------------------- originate

    def originate(self, req: OriginateRequest) -> asyncio.Future[OriginateResult]:
        """Start an Originate; the future resolves with its outcome."""
        fut: asyncio.Future[OriginateResult] = self.loop.create_future()
        tech, _, ext = req.channel.partition("/")
        phone = self.phones.get(ext) if tech.upper() == "PJSIP" else None
        if phone is None or not phone.available:
            reason = REASON_CONGESTION if tech.upper() == "PJSIP" else REASON_FAILED
            # After the "queued" response, as in Asterisk.
            self.loop.call_soon(self._originate_done, req, fut,
                                OriginateResult(False, reason, "<unknown>", req.channel))
            return fut
        self.spawn(self._run_originate(req, phone, fut), name=f"sim:originate:{req.channel}")
        return fut

    def _originate_done(self, req: OriginateRequest, fut: asyncio.Future[OriginateResult],
                        result: OriginateResult) -> None:
        if req.is_async:
            self.events.originate_response(
                req.action_id, success=result.success, channel=result.channel,
                context=req.context, exten=req.exten, reason=result.reason,
                uniqueid=result.uniqueid, cid_num=req.cid_num, cid_name=req.cid_name)
        if not fut.done():
            fut.set_result(result)

    async def _run_originate(self, req: OriginateRequest, phone: Phone,
                             fut: asyncio.Future[OriginateResult]) -> None:
        chan = self.new_outbound_channel(phone, None, uniqueid=req.channel_id,
                                         cid_num=req.cid_num, cid_name=req.cid_name)

        def fail(reason: int, cause: int) -> None:
            self.destroy(chan, cause, release_phone=False)
            self._originate_done(req, fut, OriginateResult(False, reason, "<unknown>",
                                                           req.channel))
            self.phones.release(chan)

        try:
            for key, value in req.variables.items():
                self.set_var(chan, key, value)
            if phone.busy_now():
                fail(REASON_BUSY, 17)
                return
            self.phones.ring(chan, phone)
            loop = self.loop
            deadline = loop.time() + self.cfg.scaled(req.timeout_s) if req.timeout_s > 0 else None
            while not chan.answered:
                if chan.hungup:
                    fail(REASON_HANGUP, chan.hangup_cause)
                    return
                if deadline is not None and loop.time() >= deadline:
                    fail(REASON_NO_ANSWER, 19)  # rona.txt: Cause 19, Reason 3
                    return
                await chan.pause(deadline)
        except asyncio.CancelledError:
            if not fut.done():
                fut.set_result(OriginateResult(False, REASON_HANGUP, "<unknown>", req.channel))
            self.destroy(chan, 16)
            raise
        self._originate_done(req, fut, OriginateResult(True, REASON_ANSWERED, chan.uniqueid,
                                                       chan.name))
        self.phones.start_talk(chan)
        if req.application:
            await self._runner.run(chan, app=(req.application, req.data))
        else:
            chan.context = req.context or "default"
            chan.exten = req.exten or "s"
            chan.priority = req.priority
            await self._runner.run(chan)
