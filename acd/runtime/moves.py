"""Moving callers on the PBX over AMI: to the agent's phone (``ConnectCall``)
and to a fallback after the queue's maximum wait (``FallbackCall``).

How a caller is connected (see docs/decisions.md): the held caller's
channel gets ``ACD_OFFER`` and ``ACD_RING_TIMEOUT`` (AMI ``Setvar``) and is
redirected to ``acd-connect,<extension>,1``, whose ``Dial`` rings the agent.
A Redirect that fails is reported to the core as the offer's failure
(through no fault of the agent) or, when the channel is gone, as the
caller's hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from acd.adapters.ami import AmiActionFailed, AmiError
from acd.core.model import ConnectCall, FallbackCall
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import CallRegistry, CallReports, LiveCall

log = logging.getLogger(__name__)

#: pause before re-offering after the PBX refused a redirect or its link failed
REDIRECT_RETRY_S = 1.0
FALLBACK_CONTEXT = "acd-fallback"


class AmiSender(Protocol):
    async def send(self, action: str, fields: dict[str, str] | None = None) -> AmiMessage: ...


class PbxMoves:
    """Carries out ``ConnectCall`` and ``FallbackCall`` with AMI actions."""

    def __init__(self, ami: AmiSender, calls: CallRegistry, reports: CallReports,
                 connect_context: str) -> None:
        self.ami = ami
        self.calls = calls
        self.reports = reports
        self.connect_context = connect_context

    async def connect(self, action: ConnectCall) -> None:
        """Move the held caller to the agent: AMI Setvar ACD_OFFER (so the
        dialplan's requeue can name the offer it failed) and ACD_RING_TIMEOUT,
        then Redirect to ``acd-connect,<extension>,1``.

        The three actions go out back to back, without waiting for each
        answer (one round trip instead of three): Asterisk runs the actions of
        one manager session one after the other, in the order they arrive, so
        the variables are set before the Redirect moves the channel.  The
        Redirect's answer decides what happens next."""
        call = self.calls.get(action.call_id)
        channel = call.channel if call is not None else action.channel
        results = await asyncio.gather(
            self.ami.send("Setvar", {"Channel": channel, "Variable": "ACD_OFFER",
                                     "Value": str(action.offer_id)}),
            self.ami.send("Setvar", {"Channel": channel, "Variable": "ACD_RING_TIMEOUT",
                                     "Value": str(max(1, round(action.ring_timeout_s)))}),
            self.ami.send("Redirect", {
                "Channel": channel, "Context": self.connect_context,
                "Exten": action.extension, "Priority": "1",
            }),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: not ours to swallow
        redirect = results[2]
        if isinstance(redirect, AmiError):
            await self._connect_failed(action, redirect)
        elif isinstance(redirect, BaseException):
            raise redirect
        else:
            for result in results[:2]:
                if isinstance(result, BaseException):  # moved anyway: say why it may misreport
                    log.warning("call %s: Setvar before the redirect failed: %s",
                                action.call_id, result)

    async def _connect_failed(self, action: ConnectCall, exc: AmiError) -> None:
        if isinstance(exc, AmiActionFailed):
            text = exc.message.lower()
            if "not exist" in text or "not found" in text or "no such" in text \
                    or "not up" in text:
                # the caller is hanging up; the Hangup event will confirm it
                self.reports.caller_gone(action.call_id, 16)
            else:
                # refused for a reason that is not the agent's (permissions,
                # dialplan): log loudly, wait a little so it cannot spin
                log.error("call %s: Asterisk refused the redirect to %s: %s", action.call_id,
                          action.extension, exc.message)
                await asyncio.sleep(REDIRECT_RETRY_S)
                self.reports.offer_failed(action.call_id, action.offer_id,
                                          f"REDIRECT {exc.message}", agent_fault=False)
        else:
            # the PBX link is down or slow: not the agent's fault; wait a
            # little so a dead link does not spin offers
            log.warning("call %s: redirect to %s failed: %s", action.call_id, action.agent_id, exc)
            await asyncio.sleep(REDIRECT_RETRY_S)
            self.reports.offer_failed(action.call_id, action.offer_id, "PBX-UNREACHABLE",
                                      agent_fault=False)

    async def fallback(self, call: LiveCall, action: FallbackCall) -> None:
        """Max wait reached: move the caller to ``acd-fallback,<kind>,1``."""
        try:
            await self.ami.send("Redirect", {
                "Channel": call.channel, "Context": FALLBACK_CONTEXT,
                "Exten": action.kind, "Priority": "1",
            })
        except AmiError as exc:
            log.warning("call %s: fallback %s failed (%s); hanging up", call.call_id,
                        action.kind, exc)
            with contextlib.suppress(AmiError):
                await self.ami.send("Hangup", {"Channel": call.channel, "Cause": "16"})
        finally:
            # the call's record is written; the hold loop keeps its own
            # reference and sees ``fallback`` set
            self.calls.discard(call.call_id)
            call.fallback_sent.set()
