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
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sim.ami_server import AmiServer
from sim.apps import Apps
from sim.astdb import AstDB
from sim.callers import CallerState, CallHandle
from sim.channels import STATE_DOWN, STATE_RING, Channel, ChannelRegistry
from sim.config import CallerScript, PhoneBehaviour, SimConfig
from sim.dialplan import Dialplan, DialplanRunner
from sim.events import EventListener, Events
from sim.expr import substitute
from sim.mixmonitor import Monitors
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
from sim.util import separate_args

log = logging.getLogger(__name__)

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


class SimPBX:
    """The simulated PBX.  ``async with SimPBX(cfg) as pbx: ...``"""

    def __init__(self, cfg: SimConfig | None = None, *, astdb: AstDB | None = None) -> None:
        self.cfg = cfg or SimConfig()
        #: AstDB (``DB()``, AMI ``DBGet``/``DBPut``/``DBDel``): outlives AMI
        #: sessions and stop/start; pass one to a new SimPBX to play a restart.
        self.astdb = astdb if astdb is not None else AstDB()
        #: ``${EPOCH}``'s clock: wall-clock seconds (``time(NULL)``), not scaled.
        self.wall_clock: Callable[[], float] = time.time
        self.channels = ChannelRegistry()
        self.ami = AmiServer(self)
        self.events = Events(self.ami, varset=self.cfg.emit_varset,
                             agi_exec=self.cfg.emit_agi_exec, manager_vars=self.manager_vars,
                             full=self.cfg.full_event_volume, trunk=self.cfg.trunk)
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

    def drop_ami_after(self, action: str, times: int = 1) -> None:
        """The next ``times`` AMI actions named ``action`` (``Redirect``) are
        carried out, then every AMI connection is reset before the response
        is written: the client never learns whether it worked."""
        self.ami.drop_after(action, times)

    async def refuse_ami(self, seconds: float | None = None) -> None:
        """Close the AMI listening socket (new connections are refused, as when
        Asterisk is down; open sessions stay); reopen on the same port after
        ``seconds`` (real time), or at :meth:`accept_ami`."""
        await self.ami.refuse(seconds)

    async def accept_ami(self) -> None:
        """Listen again on the AMI port after :meth:`refuse_ami`."""
        await self.ami.accept()

    def set_registered(self, ext: str, registered: bool) -> None:
        """The phone ``PJSIP/<ext>`` registers or unregisters: an idle phone's
        device state becomes NOT_INUSE / UNAVAILABLE (``DeviceStateChange``);
        one in a call keeps the call's state until it ends (chan_pjsip
        ``chan_pjsip_devicestate``: channels decide while there are any)."""
        self.phones.set_registered(ext, registered)

    def device_states(self) -> list[tuple[str, str]]:
        """What AMI ``DeviceStateList`` reports: (device, state) of every phone."""
        return [(phone.device, phone.device_state) for phone in self.phones.phones.values()]

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

    def redirect(self, chan: Channel, context: str, exten: str, priority: int) -> bool:
        """``ast_async_goto`` of a live channel (AMI Redirect); False: "Redirect failed".

        A channel running dialplan - inside AGI too, even one whose FastAGI
        server is gone - is interrupted at once (``AST_SOFTHANGUP_ASYNCGOTO``):
        the running application returns, and the channel goes on at the
        target once ``AGI()`` is over.  Until then the redirect is pending and
        a second one is refused (``ast_check_hangup``: see the AMI server)."""
        target = (context, exten, priority)
        if chan.owner is not None:  # a Dial leg: only once it is up and bridged
            if chan.bridge is None:
                return False
            chan.redirect_to = target
            chan.poke()
            return True
        if not chan.has_pbx:  # an originated channel still ringing
            return False
        chan.redirect_to = target
        self._interrupt(chan)
        return True

    @property
    def monitors(self) -> Monitors:
        """MixMonitor's recordings, the AMI action's and the application's."""
        return self.ami.monitors

    async def run_sub(self, chan: Channel, context: str, exten: str, priority: int,
                      args: list[str]) -> int:
        """A Gosub routine run on ``chan`` from C (Dial's ``U()``)."""
        return await self._runner.run_sub(chan, context, exten, priority, args)

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
        """A channel variable or one of the few dialplan functions, None if
        unset.  As ``pbx_builtin_getvar_helper``: the channel's variable, else
        the global (AMI ``Setvar`` without a channel, then extensions.conf's
        ``[globals]``)."""
        special = _FUNCTIONS.get(name.strip().upper())
        if special is not None:
            return special(chan)
        if name == "EPOCH":  # pbx_variables.c: "%d" of time(NULL), before any variable
            return str(int(self.wall_clock()))
        if name.startswith("DB(") and name.endswith(")"):
            return self._db_read(chan, name[3:-1])
        value = chan.vars.get(name)
        if value is None:
            value = self.globals.get(name)
        if value is None:
            value = self.dialplan.global_var(name)
        return value

    def set_var(self, chan: Channel, name: str, value: str) -> None:
        up = name.strip().upper()
        if up == "CALLERID(NUM)":
            chan.cid_num = value
        elif up == "CALLERID(NAME)":
            chan.cid_name = value
        elif name.startswith("DB(") and name.endswith(")"):
            self._db_write(name[3:-1], value)
            return  # a function write (ast_func_write): no VarSet
        elif up == "CHANNEL(LANGUAGE)":
            chan.language = value  # sound files are looked up in sounds/<language>/ now
            return  # a function write (ast_func_write): no VarSet
        else:
            chan.vars[name] = value
        self.events.varset(chan, name, value)

    def _db_read(self, chan: Channel, args: str) -> str:
        """``${DB(family/key)}`` (funcs/func_db.c ``function_db_read``): the
        value, ``""`` when missing; a value found is also set as
        ``DB_RESULT``."""
        parts = separate_args(args, "/", remove_chars=True, max_args=2)
        if len(parts) < 2:
            log.warning("%s: DB requires an argument, DB(<family>/<key>)", chan.name)
            return ""
        value = self.astdb.get(parts[0], parts[1])
        if value is None:
            return ""
        self.set_var(chan, "DB_RESULT", value)
        return value

    def _db_write(self, args: str, value: str) -> None:
        """``Set(DB(family/key)=value)`` (``function_db_write``): family up to
        the first ``/``, the key is the rest (``acd/answered/1001`` -> family
        ``acd``, key ``answered/1001``: AstDB key ``/acd/answered/1001``);
        a malformed key is written all the same, with a warning."""
        parts = separate_args(args, "/", remove_chars=True, max_args=2)
        if len(parts) < 2:
            log.warning("DB requires an argument, DB(<family>/<key>)=value")
            return
        family, key = parts
        if not key or key[0] == "/" or key[-1] == "/" or "//" in key:
            log.warning("DB: key '%s' seems malformed", key)
        self.astdb.put(family, key, value)

    def expand(self, chan: Channel, template: str) -> str:
        """``${VAR}`` and ``$[expression]`` substitution (sim.expr)."""
        return substitute(template, lambda name: self.read_var(chan, name) or "")

    def manager_vars(self, chan: Channel) -> list[tuple[str, str]]:
        """manager.conf ``channelvars`` of ``chan``: (name, value), ``""`` when
        unset (``channel_get_external_vars``)."""
        return [(name, self.read_var(chan, name) or "") for name in self.cfg.channelvars]

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
                uniqueid=result.uniqueid, cid_num=req.cid_num, cid_name=req.cid_name,
                chan=self.channels.find(result.uniqueid) if result.success else None)
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
