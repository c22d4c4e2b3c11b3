"""The FastAGI scripts the dialplan calls: ``hotline`` (a new call: IVR,
then queue and hold), ``requeue`` (back from a ring nobody answered),
``resume`` (back from ``acd-recover``: a call whose engine went away) and
``fallback`` (after the queue's maximum wait).

Each call's AGI session runs here; what happens to the call is decided by
the core, fed through the engine's ``handle`` (via :class:`CallReports`).
IVR steps are carried out by :mod:`acd.runtime.ivr_agi`, the hold loop by
:mod:`acd.runtime.hold`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from acd.adapters.fastagi import AgiHangupError, AgiSession
from acd.core.model import CallQueued, CallStarted, CallState, IvrEnded
from acd.ivr.interpreter import EndCall, EnterQueue, FlowRun, TransferCall, VoicemailCall
from acd.ivr.nodes import Flow
from acd.protocols import agi
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.continuity import (
    CALL_ID_VAR,
    QUEUED_VAR,
    parse_queued,
    queued_var,
    restored,
    row_from_channel,
)
from acd.runtime.counters import EngineCounters
from acd.runtime.hold import Hold
from acd.runtime.ivr_agi import play, run_flow
from acd.runtime.settings import EngineConfig

log = logging.getLogger(__name__)

#: what acd-transfer's `_X.` pattern matches
_NUMBER = re.compile(r"[0-9]{2,32}")
_MAILBOX = re.compile(r"[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")
#: how long routing waits for the caller's profile lookup once the IVR is done
LOOKUP_TIMEOUT_S = 2.0

Lookup = Callable[[str], Coroutine[Any, Any, dict[str, str]]]
HttpGet = Callable[[str, float], Awaitable[Mapping[str, object] | None]]
Script = Callable[[AgiSession], Awaitable[None]]


class CallScripts:
    """The hotline, requeue and fallback scripts (:meth:`routes` for the
    FastAGI server)."""

    def __init__(self, config: EngineConfig, calls: CallRegistry, reports: CallReports,
                 hold: Hold, flow: Callable[[], Flow], lookup: Lookup, http: HttpGet,
                 clock: Callable[[], float], counters: EngineCounters) -> None:
        """``flow()``: the flow new calls take; ``lookup(number)``: the
        caller's profile as routing attributes."""
        self.config = config
        self.calls = calls
        self.reports = reports
        self.hold = hold
        self.flow = flow
        self.lookup = lookup
        self.http = http
        self.clock = clock
        self.counters = counters
        #: (call id, kind, number) of the latest calls sent to a fallback
        self.fallbacks: deque[tuple[str, str, str]] = deque(maxlen=10_000)

    def routes(self) -> dict[str, Script]:
        return {"hotline": self.hotline, "requeue": self.requeue, "resume": self.resume,
                "fallback": self.fallback}

    # ------------------------------------------------------------- hotline

    def _server(self, session: AgiSession) -> str | None:
        """The session's Asterisk server (``?server=``), if it is one we drive."""
        req = session.request
        server = req.query.get("server", self.config.server)
        if server not in self.config.server_names:
            log.error("call %s comes from Asterisk server %r, but this engine drives only %s; "
                      "hanging up (set ACD_SERVER in extensions.conf to the server's name in "
                      "acd.yaml)", req.uniqueid, server,
                      ", ".join(repr(n) for n in self.config.server_names))
            return None
        return server

    async def hotline(self, session: AgiSession) -> None:
        req = session.request
        if not req.uniqueid:
            log.error("FastAGI hotline call without agi_uniqueid; hanging up")
            await session.hangup()
            return
        server = self._server(session)
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        if call_id in self.calls:
            log.error("call %s: a second hotline session for a live call; hanging it up", call_id)
            await session.hangup()
            return
        call = LiveCall(call_id, req.channel, server=server, uid=req.uniqueid)
        self._start_flow(session, call)
        self.calls.add(call)
        if self.reports.handle(CallStarted(call_id, req.callerid, req.calleridname,
                                           req.channel, server)) is not None:
            self.calls.finished(call_id)  # refused (logged): not a call of ours
            if call.lookup is not None:
                call.lookup.cancel()
            await session.hangup()
            return
        self.counters.calls_started += 1
        await self._serve(session, call, ivr=True)

    def _start_flow(self, session: AgiSession, call: LiveCall) -> None:
        """The flow from its start (a new call, or one back in the IVR), and
        the caller's profile looked up meanwhile."""
        req = session.request
        caller = {"number": req.callerid, "name": req.calleridname}
        call.run = FlowRun(self.flow(), caller, call_id=call.call_id)
        call.profile_merged = False
        call.lookup = asyncio.get_running_loop().create_task(self.lookup(req.callerid))

    async def _serve(self, session: AgiSession, call: LiveCall, *, ivr: bool) -> None:
        """The IVR (``ivr``), then hold; or hold only."""
        try:
            await session.answer()
            if ivr:  # the call is ours: a later engine process finds it by this
                await session.set_variable(CALL_ID_VAR, call.call_id)
            if not ivr or await self._run_ivr(session, call):
                await self.hold.run(session, call)
        except AgiHangupError:
            if not call.moved:
                self.reports.caller_gone(call.call_id, 16, call, session=True)
            raise
        finally:
            if call.lookup is not None and not call.lookup.done():
                call.lookup.cancel()

    async def _caller_attributes(self, call: LiveCall) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if call.lookup is not None:
            try:
                attrs.update(await asyncio.wait_for(asyncio.shield(call.lookup),
                                                    LOOKUP_TIMEOUT_S))
            except TimeoutError:
                log.warning("call %s: profile lookup took over %ss; routing without it",
                            call.call_id, LOOKUP_TIMEOUT_S)
            except Exception:
                log.exception("call %s: profile lookup failed; routing without it",
                              call.call_id)
        attrs.update(call.attrs)  # what the caller chose in the IVR wins
        return attrs

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _merge_profile(self, call: LiveCall) -> None:
        """Once the background profile lookup is in, conditions see ``caller.*``."""
        if call.profile_merged or call.lookup is None or not call.lookup.done():
            return
        call.profile_merged = True
        if call.run is not None and not call.lookup.cancelled() \
                and call.lookup.exception() is None:
            call.run.add_caller_info(call.lookup.result())

    async def _profile_for(self, call: LiveCall) -> dict[str, str] | None:
        if call.lookup is None:
            return None
        attrs = await asyncio.shield(call.lookup)
        return {k: v for k, v in attrs.items() if k != "last_agent"} or None

    async def _run_ivr(self, session: AgiSession, call: LiveCall) -> bool:
        """Walk the flow; returns True when the call was queued."""
        run = call.run
        assert run is not None
        end = await run_flow(session, run, clock=self._now,
                             profile=lambda: self._profile_for(call), http=self.http,
                             before_step=lambda: self._merge_profile(call))
        await play(session, end.prompts)
        handle = self.reports.handle
        match end:
            case EnterQueue():
                call.attrs = dict(end.attributes)
                call.moh = end.moh
                call.announce_every_s = end.announce_every_s
                await session.set_variable("ACD_MOH", end.moh or self.config.moh_class)
                attrs = await self._caller_attributes(call)
                if call.ended:
                    return False  # hung up meanwhile (seen on AMI)
                # what a later engine process needs if this one goes away
                # before the call's row reaches the database
                started = self.hold.core.call(call.call_id)
                await session.set_variable(QUEUED_VAR, queued_var(
                    end.queue, end.priority, attrs, self.clock(),
                    started.started_at if started is not None else self.clock(), end.path))
                if call.ended:
                    return False
                handle(CallQueued(call.call_id, end.queue, end.path, end.priority,
                                  tuple(attrs.items())))
                return True
            case TransferCall() if not _NUMBER.fullmatch(end.number):
                log.error("call %s: transfer number %r from the flow is not a phone number; "
                          "hanging up", call.call_id, end.number)
                handle(IvrEnded(call.call_id, end.path, "transfer-failed"))
                await session.hangup()
                return False
            case TransferCall():
                # the channel goes on in the dialplan once the AGI socket closes
                handle(IvrEnded(call.call_id, end.path, f"transfer:{end.number}"))
                await session.command(agi.set_context(self.config.transfer_context))
                await session.command(agi.set_extension(end.number))
                await session.command(agi.set_priority(1))
                return False
            case VoicemailCall() if not _MAILBOX.fullmatch(end.mailbox):
                log.error("call %s: mailbox %r from the flow is not a mailbox; hanging up",
                          call.call_id, end.mailbox)
                handle(IvrEnded(call.call_id, end.path, "voicemail-failed"))
                await session.hangup()
                return False
            case VoicemailCall():
                handle(IvrEnded(call.call_id, end.path, "voicemail"))
                await session.exec("VoiceMail", f"{end.mailbox},u")
                await session.hangup()
                return False
            case EndCall():
                handle(IvrEnded(call.call_id, end.path, end.reason))
                await session.hangup()
                return False
        return False

    # ------------------------------------------------------------- requeue

    async def requeue(self, session: AgiSession) -> None:
        """The agent did not answer; the dialplan brought the caller back."""
        req = session.request
        server = self._server(session)
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        call = self.calls.get(call_id)
        if call is None or call.ended:
            # not ours (any more): an earlier engine's call that was not found
            # at start-up; picked up as resume does
            log.warning("requeue for unknown call %s (%s); resuming it", call_id, req.channel)
            await self.resume(session)
            return
        status = req.query.get("status", "") or "NOANSWER"
        offer = req.query.get("offer", "")
        core_call = self.hold.core.call(call_id)
        if call.restored_offer and core_call is not None \
                and core_call.state is CallState.OFFERED \
                and call.redirect_offer == core_call.offer_id:
            # the ring an earlier process started (its offer id may be one we
            # never knew): this requeue is its end
            offer = str(core_call.offer_id)
        call.restored_offer = False
        if offer.isdigit():
            # the offer's failure, unless a DialEnd already told it (the core
            # ignores an offer that is no longer the call's live one); a
            # phone that is not registered fails Dial with no DialEnd at all
            self.reports.offer_failed(call_id, int(offer), status)
        call.channel = req.channel or call.channel
        if not call.ended:
            self.calls.map_caller(call_id)
        try:
            await self.hold.run(session, call)
        except AgiHangupError:
            if call.redirect_offer is None:
                self.reports.caller_gone(call_id, 16, call, session=True)
            raise

    # -------------------------------------------------------------- resume

    async def resume(self, session: AgiSession) -> None:
        """Back from ``acd-recover``: the call's engine went away (a crash,
        a stop, a takeover) or its session died with an earlier process.
        A call we hold goes on where it was (waiting: back on hold at its
        place; in the IVR: the flow again); one found only by its channel's
        ``ACD_QUEUED`` is put back in its queue; anything else is a new call."""
        req = session.request
        server = self._server(session) if req.uniqueid else None
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        await session.set_variable("ACD_TRIES", "0")
        call = self.calls.get(call_id)
        core_call = self.hold.core.call(call_id)
        if call is None or core_call is None or call.ended:
            if not await self._from_channel(session, server, call_id):
                await self.hotline(session)
                return
            call = self.calls.get(call_id)
            core_call = self.hold.core.call(call_id)
            if call is None or core_call is None:
                return
        self.counters.calls_resumed += 1
        call.channel = req.channel or call.channel
        self.calls.map_caller(call_id)
        state = core_call.state
        if state is CallState.OFFERED and call.dial_offer is None \
                and (call.restored_offer or call.redirect_offer != core_call.offer_id):
            # it was to ring an agent (an earlier process's offer), but it is
            # here: that offer is over
            call.restored_offer = False
            self.reports.offer_failed(call_id, core_call.offer_id, "RESUMED",
                                      agent_fault=False)
        elif state is CallState.OFFERED and call.dial_offer is None:
            pass  # our Redirect for this offer is on its way: hold until it lands
        elif state is CallState.OFFERED or state is CallState.CONNECTED:
            log.warning("resume of call %s, which is %s with agent %s: left alone", call_id,
                        state.value, core_call.agent_id)
            return
        if state is CallState.IVR:
            self._start_flow(session, call)
            await self._serve(session, call, ivr=True)
        else:
            await self._serve(session, call, ivr=False)

    async def _from_channel(self, session: AgiSession, server: str, call_id: str) -> bool:
        """A queued call no process told us of: put back from ``ACD_QUEUED``."""
        req = session.request
        queued = parse_queued(await session.get_variable(QUEUED_VAR))
        if queued is None:
            return False
        row = row_from_channel(call_id, queued, caller=req.callerid,
                               caller_name=req.calleridname, channel=req.channel,
                               server=server, now=self.clock())
        ev = restored(row)
        ev.reroute = True
        call = LiveCall(call_id, req.channel, server=server, uid=req.uniqueid)
        self.calls.add(call)
        if self.reports.handle(ev) is not None:
            self.calls.finished(call_id)
            self.calls.discard(call_id)
            return False
        log.info("call %s put back in queue %s from its channel variables", call_id,
                 queued.queue)
        return True

    # ------------------------------------------------------------ fallback

    async def fallback(self, session: AgiSession) -> None:
        """The dialplan's ``acd-fallback`` hands the caller back after the
        queue's maximum wait: tell them what happens next and hang up."""
        req = session.request
        kind = req.query.get("kind", "message")
        prompt = {"callback": "acd/callback-registered", "sms": "acd/sms-sent",
                  "voicemail": "acd/leave-message"}.get(kind, "acd/all-busy-call-later")
        log.info("call %s: fallback %s after the maximum wait", req.uniqueid, kind)
        self.fallbacks.append((req.uniqueid, kind, req.callerid))
        await session.answer()
        await session.stream_file(prompt)
        await session.hangup()
