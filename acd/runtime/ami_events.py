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
DeviceState-   a PJSIP phone's state (``on_device(extension, state)``): an
Change         agent paused because their phone was busy is ready once free
=============  =============================================================

After every (re)connect the engine reconciles its calls with
``CoreShowChannels`` (:mod:`acd.runtime.rebuild`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from acd.core.model import AgentHungUp, OfferAnswered
from acd.logs import Limited
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import AGENT, CALLER, CallRegistry, CallReports

log = logging.getLogger(__name__)

#: the AMI events the engine acts on (``Shutdown``: logged by the AMI client);
#: the decoder drops the rest unparsed, and the shipped manager.conf asks
#: Asterisk for these alone (``eventfilter``; a test holds the two together).
#: Not here because they are never filtered: the replies to the engine's own
#: actions and the items of their lists (``CoreShowChannel``,
#: ``DeviceStateList``'s ``DeviceStateChange``, ``DBGetResponse``), which
#: carry its ``ActionID``.
AMI_EVENTS = frozenset({"Hangup", "DialBegin", "DialEnd", "Rename", "DeviceStateChange",
                        "Shutdown"})

#: ``on_device(server, extension, state)``
OnDevice = Callable[[str, str, str], None]

#: what Asterisk's Dial says in DialEnd's ``DialStatus``; another is taken as
#: a failed offer all the same, and logged (once a minute, with a count)
DIAL_STATUSES = frozenset({"ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION",
                           "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS"})


def cause_code(text: str) -> int | None:
    """A Hangup's ``Cause`` as a number (a Q.850 cause: 0-127 in practice);
    None for anything but 1 to 4 ASCII digits."""
    return int(text) if 0 < len(text) <= 4 and text.isascii() and text.isdigit() else None


class AmiEvents:
    """Hangup, DialBegin, DialEnd and Rename of our channels on one Asterisk
    server (``server``; "" = the first) -> core events."""

    def __init__(self, calls: CallRegistry, reports: CallReports,
                 on_device: OnDevice | None = None, server: str = "",
                 caller_gone: Callable[[str, int], None] | None = None) -> None:
        """``caller_gone(call_id, cause)``: how a caller's Hangup is told
        (default ``reports.caller_gone``; the engine's looks up a missed
        answer first when the call was ringing)."""
        self.calls = calls
        self.reports = reports
        self.on_device = on_device
        self.server = server or calls.primary
        self.caller_gone = caller_gone or self.reports.caller_gone
        #: events of our calls that are not as Asterisk sends them: one line a
        #: minute of each kind, with a count
        self.odd = Limited(60.0)

    def on_event(self, msg: AmiMessage) -> None:
        name = msg.event
        if name == "Hangup":
            self._hangup(msg)
        elif name == "DialBegin":
            entry = self.calls.leg(msg.get("Uniqueid"), self.server)
            if entry is not None and entry[1] == CALLER:
                self.calls.map_agent(entry[0], msg.get("DestUniqueid"))
        elif name == "DialEnd":
            self._dial_end(msg)
        elif name == "DeviceStateChange":
            if self.on_device is not None:
                tech, _, ext = msg.get("Device").partition("/")
                if tech.upper() == "PJSIP" and ext:
                    self.on_device(self.server, ext, msg.get("State"))
        elif name == "Rename":
            entry = self.calls.leg(msg.get("Uniqueid"), self.server)
            if entry is not None and entry[1] == CALLER:
                call = self.calls.get(entry[0])
                if call is not None:
                    call.channel = msg.get("Newname") or call.channel

    def _hangup(self, msg: AmiMessage) -> None:
        entry = self.calls.drop_leg(msg.get("Uniqueid"), self.server)
        if entry is None:
            return
        call_id, role = entry
        if role == CALLER:
            cause = msg.get("Cause")
            code = cause_code(cause)
            if code is None:
                self.odd.warning(log, "cause", "AMI %s: Hangup of call %s with Cause %r: taken "
                                 "as 0", self.server, call_id, cause[:40])
            self.caller_gone(call_id, code or 0)
        elif role == AGENT:
            self.reports.handle(AgentHungUp(call_id))

    def _dial_end(self, msg: AmiMessage) -> None:
        entry = self.calls.leg(msg.get("Uniqueid"), self.server)
        if entry is None or entry[1] != CALLER:
            return
        call_id = entry[0]
        call = self.calls.get(call_id)
        if call is None or call.dial_offer is None:
            return
        offer = call.dial_offer
        status = msg.get("DialStatus")
        if status not in DIAL_STATUSES:
            self.odd.warning(log, "dialstatus", "AMI %s: DialEnd of call %s with DialStatus "
                             "%r: taken as a failed offer", self.server, call_id, status[:40])
            status = "UNKNOWN" if not status else status[:40]
        if status == "ANSWER":
            self.reports.handle(OfferAnswered(call_id, offer))
        elif status != "CANCEL":  # CANCEL: the caller left; Hangup follows
            self.calls.drop_agent_leg(call)
            self.reports.offer_failed(call_id, offer, status)
