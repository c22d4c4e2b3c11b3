"""Where each caller is on the PBX, read from one ``CoreShowChannels``
answer: the start-up rebuild and the reconciliation after an AMI reconnect
both judge calls by it (docs/continuity.md).

A caller's channel is one of:

==========  ==============================================================
GONE        not in the list: the caller hung up while nobody listened
RINGING     in ``Dial`` in the connect context, not bridged: the agent
            (``Exten``) is ringing; the agent's leg shares its ``Linkedid``
TALKING     in ``Dial`` and in a bridge: answered; the agent's leg is the
            other channel in the bridge
HOLDING     in one of our holding contexts (the hotline's AGI, the
            connect context's requeue AGI, acd-recover): waiting for us
ELSEWHERE   anywhere else (a transfer, voicemail, a fallback)
==========  ==============================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from acd.protocols.ami import AmiMessage

RECOVER_CONTEXT = "acd-recover"


class Place(Enum):
    GONE = "gone"
    RINGING = "ringing"
    TALKING = "talking"
    HOLDING = "holding"
    ELSEWHERE = "elsewhere"


@dataclass(frozen=True, slots=True)
class Channel:
    """One ``CoreShowChannel`` event."""

    uniqueid: str
    name: str
    context: str
    exten: str
    priority: int
    application: str
    bridge: str
    linkedid: str
    caller: str
    caller_name: str
    duration_s: float
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_event(cls, msg: AmiMessage) -> Channel:
        variables: dict[str, str] = {}
        for item in msg.get_all("ChanVariable"):
            name, sep, value = item.partition("=")
            if sep:
                variables[name] = value
        prio = msg.get("Priority")
        prio_ok = prio.isascii() and prio.isdigit() and len(prio) < 10
        return cls(
            uniqueid=msg.get("Uniqueid"), name=msg.get("Channel"), context=msg.get("Context"),
            exten=msg.get("Exten"), priority=int(prio) if prio_ok else 0,
            application=msg.get("Application"), bridge=msg.get("BridgeId"),
            linkedid=msg.get("Linkedid"), caller=_known(msg.get("CallerIDNum")),
            caller_name=_known(msg.get("CallerIDName")),
            duration_s=_seconds(msg.get("Duration")), variables=variables)


def _known(value: str) -> str:
    return "" if value == "<unknown>" else value


def _seconds(hms: str) -> float:
    """``Duration: 00:01:05`` -> 65.0 (0 when unreadable)."""
    try:
        h, m, s = (int(x) for x in hms.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + s)


@dataclass(frozen=True, slots=True)
class Where:
    """Where a caller is: ``extension`` is the agent's (ringing/talking),
    ``agent_leg`` the agent channel's ``Uniqueid`` when it can be told."""

    place: Place
    channel: Channel | None = None
    extension: str | None = None
    agent_leg: str | None = None


class PbxChannels:
    """The channels of one ``CoreShowChannels`` answer, indexed."""

    def __init__(self, events: Iterable[AmiMessage], *, connect_context: str,
                 holding_contexts: Iterable[str],
                 path_contexts: Iterable[str] = ()) -> None:
        """``path_contexts``: contexts whose Dial reaches agents on another
        server: a caller in Dial there rings or talks as in the connect
        context."""
        self.by_uid: dict[str, Channel] = {}
        self._bridges: dict[str, list[Channel]] = {}
        self._linked: dict[str, list[Channel]] = {}
        for msg in events:
            if msg.event != "CoreShowChannel":
                continue
            ch = Channel.from_event(msg)
            self.by_uid[ch.uniqueid] = ch
            if ch.bridge:
                self._bridges.setdefault(ch.bridge, []).append(ch)
            if ch.linkedid:
                self._linked.setdefault(ch.linkedid, []).append(ch)
        self.connect_contexts = frozenset({connect_context, *path_contexts})
        self.holding = frozenset(holding_contexts) | self.connect_contexts | {RECOVER_CONTEXT}

    def __contains__(self, uid: object) -> bool:
        return uid in self.by_uid

    def where(self, uid: str) -> Where:
        ch = self.by_uid.get(uid)
        if ch is None:
            return Where(Place.GONE)
        if ch.context in self.connect_contexts and ch.application == "Dial":
            if ch.bridge:
                peers = [p for p in self._bridges.get(ch.bridge, ()) if p.uniqueid != uid]
                return Where(Place.TALKING, ch, ch.exten,
                             peers[0].uniqueid if len(peers) == 1 else None)
            legs = [p for p in self._linked.get(ch.linkedid or uid, ())
                    if p.uniqueid != uid]
            return Where(Place.RINGING, ch, ch.exten,
                         legs[0].uniqueid if len(legs) == 1 else None)
        if ch.context == RECOVER_CONTEXT and ch.exten == "last":
            return Where(Place.ELSEWHERE, ch)  # the last resort: out of our hands
        if ch.context in self.holding:
            return Where(Place.HOLDING, ch)
        return Where(Place.ELSEWHERE, ch)

    def ours(self, call_id_var: str) -> list[Channel]:
        """Channels carrying our call id variable (manager.conf ``channelvars``)."""
        return [ch for ch in self.by_uid.values() if ch.variables.get(call_id_var)]
