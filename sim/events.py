"""AMI events, laid out field for field as in the Asterisk 22 recordings.

Each event is encoded once (``acd.protocols.ami.encode_message``) and the
same bytes go to every AMI session that wants its class; nothing is built
when nobody listens.  Header order follows answered.txt: ``Event``,
``Privilege: <class>,all``, the channel snapshot (``Channel`` ...
``Linkedid``), then the event's own fields.  Dial events put the caller's
snapshot first and the ``Dest``-prefixed one after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from acd.protocols.ami import AmiMessage, encode_message
from sim.channels import STATE_DESC, Bridge, Channel

Headers = list[tuple[str, str]]

#: ``Cause-txt`` as Asterisk prints it (19 from rona.txt, 0 from ivr_only.txt).
CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


class EventOutput(Protocol):
    """Where encoded events go (the AMI server)."""

    def wants(self, event_class: str) -> bool: ...

    def publish(self, event_class: str, payload: bytes) -> None: ...


EventListener = Callable[[AmiMessage], None]


def encode_event(headers: Headers) -> bytes:
    """``encode_message``, and what Asterisk does that the codec will not: a
    value holding bytes that are not UTF-8 (a caller's name in GBK, written
    as surrogate escapes: ``b"\\xd5\\xc5".decode("utf-8", "surrogateescape")``)
    goes out as those bytes, as Asterisk copies a SIP display name."""
    try:
        return encode_message(headers)
    except ValueError:
        raw = [(k, v.encode("utf-8", "surrogateescape")) for k, v in headers]
        # the codec's other checks, on the text as a reader would decode it
        encode_message([(k, v.decode("utf-8", "replace")) for k, v in raw])
    return b"".join(k.encode() + b": " + v + b"\r\n" for k, v in raw) + b"\r\n"


def snapshot(ch: Channel, prefix: str = "") -> Headers:
    """The channel block every channel event carries (answered.txt)."""
    return [
        (prefix + "Channel", ch.name),
        (prefix + "ChannelState", str(ch.state)),
        (prefix + "ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
        (prefix + "CallerIDNum", ch.cid_num or "<unknown>"),
        (prefix + "CallerIDName", escape_c(ch.cid_name) or "<unknown>"),
        (prefix + "ConnectedLineNum", ch.conn_num or "<unknown>"),
        (prefix + "ConnectedLineName", escape_c(ch.conn_name) or "<unknown>"),
        (prefix + "Language", ch.language),
        (prefix + "AccountCode", ch.accountcode),
        (prefix + "Context", ch.context),
        (prefix + "Exten", ch.exten),
        (prefix + "Priority", str(ch.priority)),
        (prefix + "Uniqueid", ch.uniqueid),
        (prefix + "Linkedid", ch.linkedid),
    ]


#: ``ast_escape_c``: what a ChanVariable value shows for these characters.
_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
              "\t": "\\t", "\v": "\\v", "\\": "\\\\", "'": "\\'", '"': '\\"',
              "?": "\\?"}


def escape_c(value: str) -> str:
    """``ast_escape_c_alloc``: C escapes, as channel variables are printed in events."""
    if not any(c in _C_ESCAPES for c in value):
        return value
    return "".join(_C_ESCAPES.get(c, c) for c in value)


ManagerVars = Callable[[Channel], list[tuple[str, str]]]


def chan_variables(pairs: list[tuple[str, str]], prefix: str = "") -> Headers:
    """``ChanVariable: NAME=value`` lines (manager_channels.c
    ``ast_manager_build_channel_state_string_prefix``), after ``Linkedid``."""
    return [(prefix + "ChanVariable", f"{name}={escape_c(value)}") for name, value in pairs]


def bridge_block(bridge: Bridge) -> Headers:
    return [
        ("BridgeUniqueid", bridge.uniqueid),
        ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"),
        ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"),
        ("BridgeNumChannels", str(len(bridge.channels))),
        ("BridgeVideoSourceMode", "none"),
    ]


class Events:
    """Builds and publishes the events the simulated PBX emits."""

    def __init__(self, out: EventOutput, *, varset: bool = True, agi_exec: bool = True,
                 manager_vars: ManagerVars | None = None, full: bool = False,
                 trunk: str = "trunk") -> None:
        """``full``: Asterisk's whole volume (``SimConfig.full_event_volume``):
        here the trunk's ``DeviceStateChange`` (``PJSIP/<trunk>``: INUSE
        while it carries a call, NOT_INUSE after the last), NewCallerid and
        NewConnectedLine are for the callers to emit (sim/apps.py: Dial)."""
        self._out = out
        self._varset = varset
        self._agi_exec = agi_exec
        self.full = full
        self._trunk_prefix = f"PJSIP/{trunk}-"
        self._trunk_calls = 0
        #: manager.conf ``channelvars`` of a channel (None: none configured).
        self.manager_vars = manager_vars
        self.listeners: list[EventListener] = []

    def snapshot(self, ch: Channel, prefix: str = "") -> Headers:
        """The channel block, with its ``ChanVariable`` lines if channelvars are set."""
        fields = snapshot(ch, prefix)
        if self.manager_vars is not None:
            fields.extend(chan_variables(self.manager_vars(ch), prefix))
        return fields

    def on(self, event_class: str) -> bool:
        """Is anybody interested in this class?  Checked before building."""
        return bool(self.listeners) or self._out.wants(event_class)

    def emit(self, event_class: str, name: str, fields: Headers) -> None:
        headers: Headers = [("Event", name), ("Privilege", f"{event_class},all")]
        headers.extend(fields)
        if self._out.wants(event_class):
            self._out.publish(event_class, encode_event(headers))
        if self.listeners:
            msg = AmiMessage(tuple(headers))
            for listener in list(self.listeners):
                listener(msg)

    def _chan(self, event_class: str, name: str, ch: Channel,
              extra: Headers | None = None) -> None:
        if self.on(event_class):
            fields = self.snapshot(ch)
            if extra:
                fields.extend(extra)
            self.emit(event_class, name, fields)

    # ------------------------------------------------------------ lifecycle

    def newchannel(self, ch: Channel) -> None:
        self._chan("call", "Newchannel", ch)
        if self.full and ch.name.startswith(self._trunk_prefix):
            self._trunk_calls += 1
            if self._trunk_calls == 1:
                self.device_state(self._trunk_prefix[:-1], "INUSE")

    def new_callerid(self, ch: Channel) -> None:
        """answered.txt: the dialled leg's caller id, once set."""
        self._chan("call", "NewCallerid", ch,
                   [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])

    def new_connected_line(self, ch: Channel) -> None:
        self._chan("call", "NewConnectedLine", ch)

    def newstate(self, ch: Channel) -> None:
        self._chan("call", "Newstate", ch)

    def newexten(self, ch: Channel, app: str, data: str) -> None:
        self._chan("dialplan", "Newexten", ch,
                   [("Extension", ch.exten), ("Application", app), ("AppData", data)])

    def varset(self, ch: Channel, variable: str, value: str) -> None:
        if self._varset:
            self._chan("dialplan", "VarSet", ch, [("Variable", variable), ("Value", value)])

    def soft_hangup_request(self, ch: Channel, cause: int) -> None:
        self._chan("call", "SoftHangupRequest", ch, [("Cause", str(cause))])

    def hangup_request(self, ch: Channel, cause: int) -> None:
        self._chan("call", "HangupRequest", ch, [("Cause", str(cause))])

    def hangup(self, ch: Channel, cause: int) -> None:
        self._chan("call", "Hangup", ch, [("Cause", str(cause)), ("Cause-txt", cause_text(cause))])
        if self.full and ch.name.startswith(self._trunk_prefix) and self._trunk_calls > 0:
            self._trunk_calls -= 1
            if self._trunk_calls == 0:
                self.device_state(self._trunk_prefix[:-1], "NOT_INUSE")

    # ------------------------------------------------------------------ media

    def dtmf_begin(self, ch: Channel, digit: str) -> None:
        self._chan("dtmf", "DTMFBegin", ch, [("Digit", digit), ("Direction", "Received")])

    def dtmf_end(self, ch: Channel, digit: str, duration_ms: int) -> None:
        self._chan("dtmf", "DTMFEnd", ch,
                   [("Digit", digit), ("DurationMs", str(duration_ms)), ("Direction", "Received")])

    def moh_start(self, ch: Channel, moh_class: str) -> None:
        self._chan("call", "MusicOnHoldStart", ch, [("Class", moh_class)])

    def moh_stop(self, ch: Channel) -> None:
        self._chan("call", "MusicOnHoldStop", ch)

    # ------------------------------------------------------------------- dial

    def _dial(self, name: str, caller: Channel | None, dest: Channel, extra: Headers) -> None:
        if self.on("call"):
            fields = self.snapshot(caller) if caller is not None else []
            fields.extend(self.snapshot(dest, "Dest"))
            fields.extend(extra)
            self.emit("call", name, fields)

    def dial_begin(self, caller: Channel | None, dest: Channel, dialstring: str) -> None:
        self._dial("DialBegin", caller, dest, [("DialString", dialstring)])

    def dial_state(self, caller: Channel | None, dest: Channel, status: str) -> None:
        self._dial("DialState", caller, dest, [("DialStatus", status)])

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        self._dial("DialEnd", caller, dest, [("DialStatus", status)])

    # ---------------------------------------------------------------- bridges

    def bridge_create(self, bridge: Bridge) -> None:
        if self.on("call"):
            self.emit("call", "BridgeCreate", bridge_block(bridge))

    def bridge_destroy(self, bridge: Bridge) -> None:
        if self.on("call"):
            self.emit("call", "BridgeDestroy", bridge_block(bridge))

    def bridge_enter(self, bridge: Bridge, ch: Channel) -> None:
        if self.on("call"):
            self.emit("call", "BridgeEnter", bridge_block(bridge) + self.snapshot(ch))

    def bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        if self.on("call"):
            self.emit("call", "BridgeLeave", bridge_block(bridge) + self.snapshot(ch))

    # ------------------------------------------------------------------- misc

    def device_state(self, device: str, state: str) -> None:
        if self.on("call"):
            self.emit("call", "DeviceStateChange", [("Device", device), ("State", state)])

    def originate_response(self, action_id: str | None, *, success: bool, channel: str,
                           context: str, exten: str, reason: int, uniqueid: str,
                           cid_num: str, cid_name: str, chan: Channel | None = None) -> None:
        """rona.txt / answered.txt: ActionID first, ``Uniqueid: <unknown>`` on failure.

        ``chan``: the channel made (fast_originate passes it to
        ``ast_manager_event_multichan``), whose manager.conf channelvars
        follow in the old form ``ChanVariable(<channel>): NAME=value``
        (manager.c ``append_channel_vars``: no escaping)."""
        if not self.on("call"):
            return
        fields: Headers = [("ActionID", action_id)] if action_id is not None else []
        fields += [
            ("Response", "Success" if success else "Failure"),
            ("Channel", channel),
            ("Context", context),
            ("Exten", exten),
            ("Reason", str(reason)),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", cid_num or "<unknown>"),
            ("CallerIDName", cid_name or "<unknown>"),
        ]
        if chan is not None and self.manager_vars is not None:
            fields += [(f"ChanVariable({chan.name})", f"{name}={value}")
                       for name, value in self.manager_vars(chan)]
        self.emit("call", "OriginateResponse", fields)

    def agi_exec_start(self, ch: Channel, command_id: int, command: str) -> None:
        if self._agi_exec:
            self._chan("agi", "AGIExecStart", ch,
                       [("CommandId", str(command_id)), ("Command", command)])

    def agi_exec_end(self, ch: Channel, command_id: int, command: str, code: int,
                     result: str) -> None:
        if self._agi_exec:
            self._chan("agi", "AGIExecEnd", ch,
                       [("CommandId", str(command_id)), ("Command", command),
                        ("ResultCode", str(code)), ("Result", result)])

    @staticmethod
    def new_command_id() -> int:
        return random.randrange(1, 2**31)
