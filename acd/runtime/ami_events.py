"""AMI events translated into core events.

Only the channels in the call registry matter; calls are tracked by
``Uniqueid``, never by channel name:

=============  =============================================================
Hangup         the caller's channel: ``CallerGone`` (the core picks the
               outcome); an agent's: ``AgentHungUp``
DialBegin      the agent's channel is mapped to the call; the Dial belongs
               to the offer whose Redirect the engine asked for
DialEnd        ``ANSWER``: ``OfferAnswered``; ``CANCEL``: nothing (the
               caller left, a Hangup follows); else ``OfferFailed``
Rename         the caller's channel name (used for Redirect) follows
=============  =============================================================

After every (re)connect, :meth:`AmiEvents.resync` asks ``CoreShowChannels``:
calls whose caller's channel vanished while the link was down have ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from acd.adapters.ami import AmiError
from acd.core.model import AgentHungUp, OfferAnswered
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import AGENT, CALLER, CallRegistry, CallReports

log = logging.getLogger(__name__)

#: the AMI events the engine acts on; the rest are dropped before parsing
AMI_EVENTS = frozenset({"Hangup", "DialBegin", "DialEnd", "Rename", "FullyBooted", "Shutdown"})

SendList = Callable[[str], Awaitable[list[AmiMessage]]]


class AmiEvents:
    """Hangup, DialBegin, DialEnd and Rename of our channels -> core events."""

    def __init__(self, calls: CallRegistry, reports: CallReports) -> None:
        self.calls = calls
        self.reports = reports

    def on_event(self, msg: AmiMessage) -> None:
        name = msg.event
        if name == "Hangup":
            self._hangup(msg)
        elif name == "DialBegin":
            entry = self.calls.leg(msg.get("Uniqueid"))
            if entry is not None and entry[1] == CALLER:
                self.calls.map_agent(entry[0], msg.get("DestUniqueid"))
        elif name == "DialEnd":
            self._dial_end(msg)
        elif name == "Rename":
            entry = self.calls.leg(msg.get("Uniqueid"))
            if entry is not None and entry[1] == CALLER:
                call = self.calls.get(entry[0])
                if call is not None:
                    call.channel = msg.get("Newname") or call.channel

    def _hangup(self, msg: AmiMessage) -> None:
        entry = self.calls.drop_leg(msg.get("Uniqueid"))
        if entry is None:
            return
        call_id, role = entry
        if role == CALLER:
            cause = msg.get("Cause")
            self.reports.caller_gone(call_id, int(cause) if cause.isdigit() else 0)
        elif role == AGENT:
            self.reports.handle(AgentHungUp(call_id))

    def _dial_end(self, msg: AmiMessage) -> None:
        entry = self.calls.leg(msg.get("Uniqueid"))
        if entry is None or entry[1] != CALLER:
            return
        call_id = entry[0]
        call = self.calls.get(call_id)
        if call is None or call.dial_offer is None:
            return
        offer = call.dial_offer
        status = msg.get("DialStatus")
        if status == "ANSWER":
            self.reports.handle(OfferAnswered(call_id, offer))
        elif status != "CANCEL":  # CANCEL: the caller left; Hangup follows
            self.calls.drop_agent_leg(call)
            self.reports.offer_failed(call_id, offer, status or "UNKNOWN")

    async def resync(self, send_list: SendList) -> None:
        """After a (re)connect: calls whose caller channel no longer exists
        ended while we were not listening."""
        # only channels we knew before asking can be judged by the answer:
        # a call that arrives while the reply is on its way is not in it
        known = self.calls.legs()
        try:
            items = await send_list("CoreShowChannels")
        except AmiError as exc:
            log.warning("resync after AMI connect failed: %s", exc)
            return
        live = {m.get("Uniqueid") for m in items if m.event == "CoreShowChannel"}
        for uid, (call_id, role) in known.items():
            if uid not in live and self.calls.leg(uid) == (call_id, role):
                self.calls.drop_leg(uid)
                if role == CALLER:
                    log.info("resync: call %s ended while AMI was down", call_id)
                    self.reports.caller_gone(call_id, 0)
