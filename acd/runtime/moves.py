"""Moving callers on the PBX over AMI: to the agent's phone (``ConnectCall``)
and to a fallback after the queue's maximum wait (``FallbackCall``).

How a caller is connected (see docs/decisions.md): the held caller's
channel gets ``ACD_OFFER`` and ``ACD_RING_TIMEOUT`` (AMI ``Setvar``) and,
when recordings are configured, ``ACD_RECORDING`` (the offer's file, ""
for none: docs/recordings.md), and is redirected to
``acd-connect,<extension>,1``, whose ``Dial`` rings the agent (and whose
``U()`` starts MixMonitor into that file when the agent answers).
A Redirect that Asterisk refuses is reported to the core as the offer's
failure (through no fault of the agent) or, when the channel is gone, as
the caller's hang-up.  A Redirect whose answer never came (the link
dropped or froze) may have moved the caller all the same: it is never
re-offered blindly, but settled by what happens next (DialBegin, requeue
or Hangup) under a guard timer, then by the live channels
(``settle(call_id)``, a ``CoreShowChannels`` look-up).

Nothing is done over AMI to a caller's channel before it is proven to be
the call's (:func:`channel_proof`: the channel carries the secret the
call's FastAGI session set; :data:`~acd.runtime.calls.Proof`).  A call taken
while AMI could not tell is checked once more before its first Setvar or
Redirect; a fake is then ended, and its channel, someone else's, left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from acd.adapters.ami import AmiActionFailed, AmiError, AmiNotConnected
from acd.core.model import ConnectCall, FallbackCall
from acd.logs import Limited, printable
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import PROVEN, CallRegistry, CallReports, LiveCall
from acd.runtime.continuity import SECRET_VAR, secret_matches

log = logging.getLogger(__name__)

#: pause before re-offering after the PBX refused a redirect
REDIRECT_RETRY_S = 1.0
#: a Redirect with no answer: how long DialBegin, requeue or Hangup may take
#: to tell what it did, before the live channels are asked
SETTLE_AFTER_S = 3.0
#: ... and how long in all before the offer is given up as failed (the link
#: stayed down: the reconnect's reconciliation settles the rest)
SETTLE_GIVE_UP_S = 60.0
FALLBACK_CONTEXT = "acd-fallback"


class AmiSender(Protocol):
    async def send(self, action: str, fields: dict[str, str] | None = None) -> AmiMessage: ...


#: what :func:`channel_proof` found: ``proven`` (the channel carries the
#: secret), ``fake`` (it is there without it: whoever the secret was set to
#: over FastAGI was not that channel's Asterisk), ``absent`` (no such
#: channel) or ``unknown`` (AMI could not tell: not connected, no answer)
Verdict = Literal["proven", "fake", "absent", "unknown"]
Send = Callable[[str, dict[str, str]], Awaitable[AmiMessage]]


async def channel_proof(send: Send, channel: str, secret: str | None) -> tuple[Verdict, str]:
    """Is ``channel`` (as a FastAGI request named it) the channel whose
    session was given ``secret``?  One AMI ``Getvar`` of ``ACD_CALL_SECRET``
    on it (``send``: the call's server's).  Returns the verdict and, unless
    proven, why.  A channel named with control characters, or none, is not
    sent to AMI at all (a ``Getvar`` without ``Channel`` reads a global)."""
    if not channel or not channel.isprintable() or not secret:
        return "fake", f"channel {printable(channel[:80], newlines=False)!r} is no channel name"
    try:
        msg = await send("Getvar", {"Channel": channel, "Variable": SECRET_VAR})
    except AmiActionFailed as exc:
        if "no such channel" in exc.message.lower():
            return "absent", "no such channel"
        return "unknown", f"Getvar refused: {exc.message[:200]}"
    except AmiError as exc:
        return "unknown", str(exc)
    if secret_matches(msg.get("Value"), secret):
        return "proven", ""
    return "fake", f"{SECRET_VAR} on {printable(channel[:80], newlines=False)} is not the " \
                   "secret its session was given"


class PbxMoves:
    """Carries out ``ConnectCall`` and ``FallbackCall`` with AMI actions."""

    def __init__(self, ami: AmiSender, calls: CallRegistry, reports: CallReports,
                 connect_context: str,
                 settle: Callable[[str], Awaitable[None]] | None = None,
                 offer_live: Callable[[str, int], bool] | None = None,
                 recordings: bool = False) -> None:
        """``settle(call_id)``: reconcile one call's offer with the live
        channels; ``offer_live(call_id, offer_id)``: the offer is still the
        call's current one, unanswered (the core's view); ``recordings``:
        every offer sets ``ACD_RECORDING`` (its file, or "" so that an
        earlier offer's file is not used)."""
        self.ami = ami
        self.recordings = recordings
        self.calls = calls
        self.reports = reports
        self.connect_context = connect_context
        self.settle = settle
        self.offer_live = offer_live
        #: per-call failures (a PBX that refuses or does not answer fails
        #: every call alike): one line a minute of each kind, with a count
        self.limited = Limited(60.0)

    async def connect(self, action: ConnectCall, context: str | None = None) -> None:
        """Move the held caller to the agent: AMI Setvar ACD_OFFER (so the
        dialplan's requeue can name the offer it failed), ACD_RING_TIMEOUT
        and (``recordings``) ACD_RECORDING, then Redirect to
        ``acd-connect,<extension>,1`` (``context``: a path to an agent on
        another server instead).

        The actions go out back to back, without waiting for each answer
        (one round trip instead of three or four): Asterisk runs the actions of
        one manager session one after the other, in the order they arrive, so
        the variables are set before the Redirect moves the channel.  The
        Redirect's answer decides what happens next."""
        call = self.calls.get(action.call_id)
        if call is None:
            return  # ended meanwhile (its record is written): nothing to move
        channel = call.channel
        if call.proof != PROVEN and not await self._proven(call, action):
            return
        call.redirect_pending = True
        try:
            results = await self._send_connect(action, channel, context)
        finally:
            call.redirect_pending = False
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: not ours to swallow
        redirect = results[-1]
        if isinstance(redirect, AmiError):
            await self._connect_failed(action, redirect)
        elif isinstance(redirect, BaseException):
            raise redirect
        else:
            for result in results[:-1]:
                if isinstance(result, BaseException):  # moved anyway: say why it may misreport
                    self.limited.warning(log, "setvar", "call %s: Setvar before the redirect "
                                         "failed: %s", action.call_id, result)

    async def _proven(self, call: LiveCall, action: ConnectCall) -> bool:
        """A call taken while AMI could not prove its channel: proven now,
        or not moved (and, if it is not the channel's, ended)."""
        verdict, why = await channel_proof(self.ami.send, call.channel, call.secret)
        if call.evicted or self.calls.get(call.call_id) is not call:
            return False  # taken by its channel's own session meanwhile, or ended
        if verdict == "proven":
            call.proof = PROVEN
            call.session = None
            return True
        if verdict == "unknown":  # the Redirect could not go either
            self.limited.warning(log, "unproven", "call %s: its channel is still not proven "
                                 "(%s); not offered yet", action.call_id, why)
            await asyncio.sleep(REDIRECT_RETRY_S)
            self.reports.offer_failed(action.call_id, action.offer_id, "PBX-UNREACHABLE",
                                      agent_fault=False)
            return False
        # a FastAGI peer's fake (or a caller gone): ended; the channel it
        # named, someone else's, is left alone
        self.limited.warning(log, "fake", "call %s, taken while AMI could not tell, is not "
                             "proven its channel's (%s): ended, nothing sent to the channel",
                             action.call_id, why)
        if call.session is not None:
            call.session.abort()
        self.reports.caller_gone(action.call_id, 16)
        return False

    async def _send_connect(self, action: ConnectCall, channel: str,
                            context: str | None) -> list[AmiMessage | BaseException]:
        variables = [("ACD_OFFER", str(action.offer_id)),
                     ("ACD_RING_TIMEOUT", str(max(1, round(action.ring_timeout_s))))]
        if self.recordings or action.recording:
            variables.append(("ACD_RECORDING", action.recording))
        return list(await asyncio.gather(
            *(self.ami.send("Setvar", {"Channel": channel, "Variable": name, "Value": value})
              for name, value in variables),
            self.ami.send("Redirect", {
                "Channel": channel, "Context": context or self.connect_context,
                "Exten": action.extension, "Priority": "1",
            }),
            return_exceptions=True))

    async def _connect_failed(self, action: ConnectCall, exc: AmiError) -> None:
        if isinstance(exc, AmiActionFailed):
            text = exc.message.lower()
            if "not exist" in text or "not found" in text or "no such" in text \
                    or "not up" in text:
                # the caller is hanging up, or a Redirect of it is still
                # pending ("channel not up" says both): the live channels tell
                if self.settle is not None:
                    try:
                        await self.settle(action.call_id)
                        return
                    except AmiError:
                        pass
                self.reports.caller_gone(action.call_id, 16)
            else:
                # refused for a reason that is not the agent's (permissions,
                # dialplan): log loudly, wait a little so it cannot spin
                self.limited.error(log, "refused", "call %s: Asterisk refused the redirect "
                                   "to %s: %s", action.call_id, action.extension, exc.message)
                await asyncio.sleep(REDIRECT_RETRY_S)
                self.reports.offer_failed(action.call_id, action.offer_id,
                                          f"REDIRECT {exc.message}", agent_fault=False)
        elif self.settle is None or self.offer_live is None \
                or isinstance(exc, AmiNotConnected):
            # not sent (the link was down): surely not moved
            self.limited.warning(log, "not-sent", "call %s: redirect to %s failed: %s",
                                 action.call_id, action.agent_id, exc)
            await asyncio.sleep(REDIRECT_RETRY_S)
            self.reports.offer_failed(action.call_id, action.offer_id, "PBX-UNREACHABLE",
                                      agent_fault=False)
        else:
            # no answer (timeout, link lost): the Redirect may have moved the
            # caller all the same; offering again now could pull them away
            # from an agent who answers
            self.limited.warning(log, "no-answer", "call %s: no answer to the redirect to %s "
                                 "(%s); settling it by what happens next", action.call_id,
                                 action.agent_id, exc)
            await self._settle(action)

    async def _settle(self, action: ConnectCall) -> None:
        assert self.settle is not None and self.offer_live is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SETTLE_GIVE_UP_S
        call_id, offer = action.call_id, action.offer_id
        while True:
            await asyncio.sleep(SETTLE_AFTER_S)
            call = self.calls.get(call_id)
            if not self.offer_live(call_id, offer) or call is None \
                    or call.dial_offer == offer:
                return  # DialBegin, requeue, Hangup or a reconnect settled it
            try:
                await self.settle(call_id)
            except AmiError as exc:
                if loop.time() < give_up:
                    log.info("call %s: cannot settle its redirect yet (%s)", call_id, exc)
                    continue
                self.limited.error(log, "unsettled", "call %s: redirect to %s never settled "
                                   "in %ss; offer given up", call_id, action.agent_id,
                                   SETTLE_GIVE_UP_S)
                self.reports.offer_failed(call_id, offer, "PBX-UNREACHABLE",
                                          agent_fault=False)
            return

    async def fallback(self, call: LiveCall, action: FallbackCall) -> None:
        """Max wait reached: move the caller to ``acd-fallback,<kind>,1``
        (a caller whose channel is not proven is not moved: the session's
        end lets a real one go on in the dialplan)."""
        try:
            if call.proof != PROVEN:
                verdict, why = await channel_proof(self.ami.send, call.channel, call.secret)
                if verdict != "proven":
                    self.limited.warning(log, "fallback-unproven", "call %s: fallback %s not "
                                         "sent: its channel is not proven (%s)", call.call_id,
                                         action.kind, why)
                    if verdict != "unknown" and call.session is not None:
                        call.session.abort()
                    return
                call.proof = PROVEN
                call.session = None
            await self.ami.send("Redirect", {
                "Channel": call.channel, "Context": FALLBACK_CONTEXT,
                "Exten": action.kind, "Priority": "1",
            })
        except AmiError as exc:
            self.limited.warning(log, "fallback", "call %s: fallback %s failed (%s); hanging up",
                                 call.call_id, action.kind, exc)
            with contextlib.suppress(AmiError):
                await self.ami.send("Hangup", {"Channel": call.channel, "Cause": "16"})
        finally:
            # the call's record is written; the hold loop keeps its own
            # reference and sees ``fallback`` set
            self.calls.discard(call.call_id)
            call.fallback_sent.set()
