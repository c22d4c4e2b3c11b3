"""The FastAGI scripts the dialplan calls: ``hotline`` (a new call: IVR,
then queue and hold), ``requeue`` (back from a ring nobody answered) and
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
from acd.core.model import CallQueued, CallStarted, IvrEnded
from acd.ivr.interpreter import EndCall, EnterQueue, FlowRun, TransferCall, VoicemailCall
from acd.ivr.nodes import Flow
from acd.protocols import agi
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
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
        return {"hotline": self.hotline, "requeue": self.requeue, "fallback": self.fallback}

    # ------------------------------------------------------------- hotline

    async def hotline(self, session: AgiSession) -> None:
        req = session.request
        call_id = req.uniqueid
        if not call_id:
            log.error("FastAGI hotline call without agi_uniqueid; hanging up")
            await session.hangup()
            return
        server = req.query.get("server", self.config.server)
        if server != self.config.server:
            log.error("call %s comes from Asterisk server %r, but this engine drives only %r; "
                      "hanging up (set ACD_SERVER in extensions.conf to %r)", call_id, server,
                      self.config.server, self.config.server)
            await session.hangup()
            return
        if call_id in self.calls:
            log.error("call %s: a second hotline session for a live call; hanging it up", call_id)
            await session.hangup()
            return
        caller = {"number": req.callerid, "name": req.calleridname}
        call = LiveCall(call_id, req.channel, run=FlowRun(self.flow(), caller, call_id=call_id))
        call.lookup = asyncio.get_running_loop().create_task(self.lookup(req.callerid))
        self.calls.add(call)
        if self.reports.handle(CallStarted(call_id, req.callerid, req.calleridname,
                                           req.channel, server)) is not None:
            self.calls.finished(call_id)  # refused (logged): not a call of ours
            call.lookup.cancel()
            await session.hangup()
            return
        self.counters.calls_started += 1
        try:
            await session.answer()
            if await self._run_ivr(session, call):
                await self.hold.run(session, call)
        except AgiHangupError:
            if not call.moved:
                self.reports.caller_gone(call_id, 16, call)
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
                await session.set_variable("ACD_CALL_ID", call.call_id)
                await session.set_variable("ACD_MOH", end.moh or self.config.moh_class)
                attrs = await self._caller_attributes(call)
                if call.ended:
                    return False  # hung up meanwhile (seen on AMI)
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
        call_id = req.uniqueid
        call = self.calls.get(call_id)
        if call is None or call.ended:
            log.warning("requeue for unknown call %s (%s); hanging up", call_id, req.channel)
            await session.hangup()
            return
        status = req.query.get("status", "") or "NOANSWER"
        offer = req.query.get("offer", "")
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
                self.reports.caller_gone(call_id, 16, call)
            raise

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
