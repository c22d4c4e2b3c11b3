"""The AMI server side, framed with ``acd.protocols.ami``.

Mirrors main/manager.c as seen in the recordings: banner ``Asterisk Call
Manager/11.0.0``; ``Response`` first, ``ActionID`` second, then the rest;
``Permission denied`` for anything but Login/Logoff/Challenge before
login; a wrong secret gets ``Authentication failed`` and the connection is
closed; ``FullyBooted`` right after a login whose event mask includes
``system``; ``Logoff`` -> ``Goodbye`` / ``Thanks for all the fish.`` and
close; list actions (CoreShowChannels, DeviceStateList) answer with
``EventList: start``, one event per item (no ``Privilege`` header) and a
``...Complete`` event with ``ListItems``.  ``CoreShowChannel`` carries the
channel snapshot (with manager.conf ``channelvars`` as ``ChanVariable:
NAME=value`` lines after ``Linkedid``), then ``Application``,
``ApplicationData``, ``Duration``, ``BridgeId``.  ``Redirect`` checks its
headers and the channel in action_redirect's order and with its messages
(``Channel does not exist: <name>``, ``Redirect failed, channel not up.``
for a hung-up channel or one whose previous Redirect is still pending,
``Priority is invalid`` for an unknown label).  ``DBGet`` / ``DBPut`` /
``DBDel`` (main/db.c) read and write the PBX's AstDB (:mod:`sim.astdb`):
``DBGet`` answers a one-item list (``DBGetResponse``, ``DBGetComplete``) or
``Error`` ``Database entry not found``.  ``MixMonitor`` / ``StopMixMonitor``
(apps/app_mixmonitor.c) record a channel (:mod:`sim.mixmonitor`; the files
go to :attr:`SimConfig.monitor_dir`).  An action needs one of its classes
in the user's ``write`` (:attr:`SimConfig.ami_write`; main/manager.c's
``ast_manager_register_xml_core`` classes, :data:`ACTION_CLASSES`), else
``Permission denied``.  Events go to a session if their class is in its
``read`` and event mask and its event filters let them through
(manager.conf ``eventfilter`` lines of :attr:`SimConfig.ami_eventfilters`,
then the session's ``Filter`` actions: :mod:`sim.eventfilter`, Asterisk
22's semantics); responses, event-list items and the ``FullyBooted`` after
``Login`` are never filtered, as in Asterisk.

Fault injection for tests: :meth:`AmiServer.freeze`, :meth:`AmiServer.drop_all`,
:meth:`AmiServer.drop_after` (carry out the next action of a name, then reset
every connection before its response is written) and
:meth:`AmiServer.refuse` / :meth:`AmiServer.accept` (close the listening
socket: new connections are refused, open sessions go on).

One task per connection (owned, cancelled on stop).  Events are encoded once
by :class:`sim.events.Events` and written to every session that wants their
class; a session whose unsent output exceeds ``ami_max_buffer`` is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from acd.protocols.ami import (
    AmiDecoder,
    AmiFrameError,
    AmiMessage,
    AmiProtocolError,
    encode_message,
    parse_variables,
)
from sim.astdb import AstDB
from sim.channels import Channel, ChannelRegistry
from sim.config import SimConfig
from sim.dialplan import Dialplan
from sim.eventfilter import EventFilter, FilterError, FilterSet, event_name, parse_filter
from sim.events import Events, encode_event
from sim.mixmonitor import Monitors
from sim.originate import OriginateRequest, OriginateResult
from sim.util import atoi, parse_callerid, scan_int

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]

EVENT_CLASSES = frozenset({
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message",
})

#: the classes an action needs one of in the user's ``write`` (main/manager.c,
#: main/db.c, res/res_manager_devicestate.c); absent: none needed
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "filter": frozenset({"system"}),
    "originate": frozenset({"originate"}),
    "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "getvar": frozenset({"call", "reporting"}),
    "setvar": frozenset({"call"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "devicestatelist": frozenset({"call", "reporting"}),
    "dbget": frozenset({"system", "reporting"}),
    "dbput": frozenset({"system"}),
    "dbdel": frozenset({"system"}),
    # apps/app_mixmonitor.c
    "mixmonitor": frozenset({"system"}),
    "stopmixmonitor": frozenset({"system", "call"}),
}

_TRUE = {"on", "yes", "true", "1", "all"}
_FALSE = {"off", "no", "false", "0", "none"}


def parse_event_mask(value: str | None) -> frozenset[str] | None:
    """``Events:`` of Login / ``EventMask:`` of Events.  None = every class."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text or text in _TRUE:
        return None
    if text in _FALSE:
        return frozenset()
    classes = {c.strip() for c in text.split(",") if c.strip()}
    if "all" in classes:
        return None
    return frozenset(classes)


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class AmiSession:
    """One manager connection."""

    def __init__(self, server: AmiServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self.authenticated = False
        self.username = ""
        self.mask: frozenset[str] | None = None
        #: the user's eventfilter lines, then this session's Filter actions
        self.filters = FilterSet()
        self._held: list[bytes] = []
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- output

    def wants(self, event_class: str) -> bool:
        if not self.authenticated or self.closed:
            return False
        mask = self.mask
        return mask is None or event_class in mask

    def send_event(self, payload: bytes) -> None:
        """A queued event (``manager_event``): filtered, then written."""
        server = self._server
        if self.filters and not self.filters.should_send(
                event_name(payload), payload.decode("utf-8", errors="replace")):
            server.filtered += 1
            return
        server.sent += 1
        server.sent_bytes += len(payload)
        self.write(payload)

    def write(self, payload: bytes) -> None:
        if self.closed or self._server.muted:
            return
        if self._server.frozen:
            self._held.append(payload)
            return
        transport = self._writer.transport
        if transport.is_closing():  # the client went away; the reader will notice
            self.closed = True
            return
        self._writer.write(payload)
        if transport.get_write_buffer_size() > self._server.max_buffer:
            log.warning("AMI client %s is not reading; dropping it", self.username or "?")
            self.abort()

    def flush_held(self) -> None:
        held, self._held = self._held, []
        for payload in held:
            self.write(payload)

    def _reply(self, msg: AmiMessage | None, response: str, fields: Iterable[tuple[str, str]] = (),
               ) -> None:
        headers: Headers = [("Response", response)]
        if msg is not None and msg.action_id is not None:
            headers.append(("ActionID", msg.action_id))
        headers.extend(fields)
        self.write(encode_message(headers))

    def _error(self, msg: AmiMessage | None, message: str) -> None:
        self._reply(msg, "Error", [("Message", message)])

    def _success(self, msg: AmiMessage, message: str) -> None:
        self._reply(msg, "Success", [("Message", message)])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.transport.abort()

    # ------------------------------------------------------------------ input

    async def run(self) -> None:
        server = self._server
        self.write(f"Asterisk Call Manager/{server.version}\r\n".encode())
        decoder = AmiDecoder(expect_banner=False)
        try:
            while not self.closed:
                data = await self._reader.read(65536)
                if not data:
                    break
                if server.frozen:
                    await server.wait_unfrozen()
                try:
                    items = decoder.feed(data)
                except AmiProtocolError as exc:
                    log.warning("AMI client broke framing: %s", exc)
                    break
                for item in items:
                    if self.closed:
                        break
                    if isinstance(item, AmiFrameError):
                        self._error(None, "Missing action in request")
                    elif isinstance(item, AmiMessage):
                        await self._handle(item)
        except ConnectionError:
            pass
        finally:
            self.close()

    async def _handle(self, msg: AmiMessage) -> None:
        name = (msg.action or "").strip().lower()
        if not name:
            self._error(msg, "Missing action in request")
            return
        if not self.authenticated and name not in ("login", "logoff", "challenge"):
            self._error(msg, "Permission denied")
            return
        handler = _ACTIONS.get(name)
        if handler is None:
            self._error(msg, f"Invalid/unknown command: {msg.action}. "
                             "Use Action: ListCommands to show available commands.")
            return
        server = self._server
        needs = ACTION_CLASSES.get(name)
        if needs is not None and server.write is not None and not needs & server.write:
            self._error(msg, "Permission denied")
            return
        server.actions[name] += 1
        if not server.take_drop(name):
            await handler(self, msg)
            return
        # Fault injection: carry the action out, then reset every connection
        # before anything (its response included) reaches a client.
        server.muted = True
        try:
            await handler(self, msg)
        finally:
            server.abort_all()
            server.muted = False

    # ---------------------------------------------------------------- actions

    async def _login(self, msg: AmiMessage) -> None:
        user = msg.get("Username")
        secret = msg.get("Secret")
        users = self._server.pbx.cfg.users
        if not user or user not in users or users[user] != secret:
            self._error(msg, "Authentication failed")
            self.close()
            return
        self.authenticated = True
        self.username = user
        self.filters = FilterSet.of(self._server.user_filters)
        self._server.logged_in.set()
        self.mask = self._server.limit(
            parse_event_mask(msg.get("Events") if "Events" in msg else None))
        self._success(msg, "Authentication accepted")
        if self.wants("system"):
            up = str(int(time.monotonic() - self._server.started))
            self.write(encode_message([
                ("Event", "FullyBooted"), ("Privilege", "system,all"),
                ("Uptime", up), ("LastReload", up), ("Status", "Fully Booted"),
            ]))

    async def _logoff(self, msg: AmiMessage) -> None:
        self._reply(msg, "Goodbye", [("Message", "Thanks for all the fish.")])
        self.close()

    async def _challenge(self, msg: AmiMessage) -> None:
        self._error(msg, "Must specify AuthType")

    async def _ping(self, msg: AmiMessage) -> None:
        self._reply(msg, "Success", [("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])

    async def _events(self, msg: AmiMessage) -> None:
        self.mask = self._server.limit(parse_event_mask(msg.get("EventMask", "on")))
        self._reply(msg, "Success", [("Events", "Off" if self.mask == frozenset() else "On")])

    async def _filter(self, msg: AmiMessage) -> None:
        """manager.c ``action_filter``: ``Operation: Add`` (exactly that word,
        any case), ``MatchCriteria`` (the advanced filter's options, without
        ``eventfilter(...)``), ``Filter`` (the pattern)."""
        if msg.get("Operation").lower() != "add":
            self._error(msg, "Unknown operation")
            return
        criteria = msg.get("MatchCriteria")
        key = f"eventfilter({criteria})" if criteria else "eventfilter"
        try:
            self.filters.add(parse_filter(key, msg.get("Filter")))
        except FilterError as exc:
            self._error(msg, "Filter did not compile.  Check the syntax of the filter given."
                        if exc.compile_error else
                        "Filter was formatted incorrectly.  Check the syntax of the filter given.")
            return
        # action_filter (main/manager.c, Asterisk 18 to 23 alike):
        #   astman_send_ack(s, m, "Success");
        # astman_send_ack -> astman_send_response_full(s, m, "Success", msg, NULL)
        # writes "Response: Success" then "Message: Success"
        self._success(msg, "Success")

    async def _originate(self, msg: AmiMessage) -> None:
        channel = msg.get("Channel")
        if not channel:
            self._error(msg, "Channel not specified")
            return
        if "/" not in channel:
            self._error(msg, "Invalid channel")
            return
        priority_text = msg.get("Priority", "1") or "1"
        if not priority_text.strip().lstrip("-").isdigit():
            self._error(msg, "Invalid priority")
            return
        timeout_ms = atoi(msg.get("Timeout"), 30000) if msg.get("Timeout") else 30000
        cid_name, cid_num = parse_callerid(msg.get("CallerID"))
        req = OriginateRequest(
            action_id=msg.action_id,
            channel=channel,
            context=msg.get("Context"),
            exten=msg.get("Exten"),
            priority=int(priority_text),
            application=msg.get("Application"),
            data=msg.get("Data"),
            timeout_s=max(0, timeout_ms) / 1000,
            cid_num=cid_num,
            cid_name=cid_name,
            variables=parse_variables(msg),
            channel_id=msg.get("ChannelId") or None,
            other_channel_id=msg.get("OtherChannelId") or None,
            is_async=msg.get("Async").strip().lower() in _TRUE,
        )
        pbx = self._server.pbx
        if req.channel_id and pbx.channels.find(req.channel_id) is not None:
            self._error(msg, "Uniqueid already in use.")
            return
        result = pbx.originate(req)
        if req.is_async:
            self._success(msg, "Originate successfully queued")
            return
        # Synchronous: this session waits for the outcome, as Asterisk's does.
        outcome = await result
        if outcome.success:
            self._success(msg, "Originate successfully queued")
        else:
            self._error(msg, "Originate failed")

    async def _redirect(self, msg: AmiMessage) -> None:
        """manager.c ``action_redirect``: checks and messages in its order."""
        pbx = self._server.pbx
        name, context, exten = msg.get("Channel"), msg.get("Context"), msg.get("Exten")
        name2, context2 = msg.get("ExtraChannel"), msg.get("ExtraContext")
        exten2, prio2_text = msg.get("ExtraExten"), msg.get("ExtraPriority")
        if not name:
            self._error(msg, "Channel not specified")
            return
        if not context:
            self._error(msg, "Context not specified")
            return
        if not exten:
            self._error(msg, "Exten not specified")
            return
        if not msg.get("Priority"):
            self._error(msg, "Priority not specified")
            return
        priority = self._priority(context, exten, msg.get("Priority"))
        if priority < 1:
            self._error(msg, "Priority is invalid")
            return
        priority2 = 0
        if name2 and context2:
            if not exten2:
                self._error(msg, "ExtraExten not specified")
                return
            if not prio2_text:
                self._error(msg, "ExtraPriority not specified")
                return
            priority2 = self._priority(context2, exten2, prio2_text)
            if priority2 < 1:
                self._error(msg, "ExtraPriority is invalid")
                return
        chan = pbx.channels.find(name)
        if chan is None or chan.destroyed:
            self._error(msg, f"Channel does not exist: {name}")
            return
        if chan.interrupted:  # ast_check_hangup: any soft hang-up flag, ASYNCGOTO too
            self._error(msg, "Redirect failed, channel not up.")
            return
        if not name2:
            if pbx.redirect(chan, context, exten, priority):
                self._success(msg, "Redirect successful")
            else:
                self._error(msg, "Redirect failed")
            return
        chan2 = pbx.channels.find(name2)
        if chan2 is None or chan2.destroyed:
            self._error(msg, f"ExtraChannel does not exist: {name2}")
            return
        if chan2.interrupted:
            self._error(msg, "Redirect failed, extra channel not up.")
            return
        if not pbx.redirect(chan, context, exten, priority):
            self._error(msg, "Redirect failed")
        elif not (pbx.redirect(chan2, context2, exten2, priority2) if context2
                  else pbx.redirect(chan2, context, exten, priority)):
            self._error(msg, "Secondary redirect failed")
        else:
            self._success(msg, "Dual Redirect successful")

    def _priority(self, context: str, exten: str, text: str) -> int:
        """``sscanf("%30d")``, else the label's priority (-1 when none)."""
        number = scan_int(text)
        if number is not None:
            return number
        return self._server.pbx.dialplan.find_label(context, exten, text)

    async def _hangup(self, msg: AmiMessage) -> None:
        name = msg.get("Channel")
        if not name:
            self._error(msg, "No channel specified")
            return
        pbx = self._server.pbx
        chan = pbx.channels.find(name)
        if chan is None or chan.destroyed:
            self._error(msg, "No such channel")
            return
        cause = atoi(msg.get("Cause"), 16) if msg.get("Cause") else 16
        pbx.soft_hangup(chan, cause, by="engine")
        self._success(msg, "Channel Hungup")

    def _var_target(self, msg: AmiMessage) -> tuple[bool, Channel | None]:
        """Getvar/Setvar: (ok, channel); no ``Channel:`` means a global.
        Replies with the error itself when not ok."""
        if not msg.get("Variable"):
            self._error(msg, "No variable specified")
            return False, None
        name = msg.get("Channel")
        if not name:
            return True, None
        chan = self._server.pbx.channels.find(name)
        if chan is None:
            self._error(msg, "No such channel")
            return False, None
        return True, chan

    async def _getvar(self, msg: AmiMessage) -> None:
        ok, chan = self._var_target(msg)
        if not ok:
            return
        pbx, variable = self._server.pbx, msg.get("Variable")
        value = pbx.read_var(chan, variable) if chan is not None else pbx.globals.get(variable)
        self._reply(msg, "Success", [("Variable", variable), ("Value", value or "")])

    async def _setvar(self, msg: AmiMessage) -> None:
        ok, chan = self._var_target(msg)
        if not ok:
            return
        pbx, variable = self._server.pbx, msg.get("Variable")
        if chan is not None:
            pbx.set_var(chan, variable, msg.get("Value"))
        else:
            pbx.globals[variable] = msg.get("Value")
        self._success(msg, "Variable Set")

    async def _core_show_channels(self, msg: AmiMessage) -> None:
        """coreshow.txt: response, one CoreShowChannel per channel, then Complete."""
        pbx = self._server.pbx
        aid: Headers = [("ActionID", msg.action_id)] if msg.action_id is not None else []
        self._reply(msg, "Success", [("EventList", "start"),
                                     ("Message", "Channels will follow")])
        now = pbx.loop.time()
        channels = pbx.channels.all()
        for ch in channels:
            bridge = ch.bridge.uniqueid if ch.bridge is not None else ""
            headers: Headers = [("Event", "CoreShowChannel"), *aid,
                                *pbx.events.snapshot(ch),
                                ("Application", ch.application),
                                ("ApplicationData", ch.app_data),
                                ("Duration", _duration(pbx.cfg.unscaled(now - ch.created))),
                                ("BridgeId", bridge)]
            self.write(encode_event(headers))
        self.write(encode_message([("Event", "CoreShowChannelsComplete"), *aid,
                                   ("EventList", "Complete"),
                                   ("ListItems", str(len(channels)))]))

    def _family_key(self, msg: AmiMessage, period: str) -> tuple[str, str] | None:
        """The ``Family`` and ``Key`` headers, or an error reply (None)."""
        family, key = msg.get("Family"), msg.get("Key")
        if not family:
            self._error(msg, f"No family specified{period}")
            return None
        if not key:
            self._error(msg, f"No key specified{period}")
            return None
        return family, key

    async def _db_get(self, msg: AmiMessage) -> None:
        """main/db.c ``manager_dbget``: ``Error`` "Database entry not found",
        or a one-item list: ``Success`` + ``EventList: start`` + ``Message:
        Result will follow``, ``DBGetResponse`` (``Family``, ``Key``, ``Val``,
        then ``ActionID``), ``DBGetComplete`` with ``ListItems: 1``."""
        names = self._family_key(msg, ".")
        if names is None:
            return
        family, key = names
        value = self._server.pbx.astdb.get(family, key)
        if value is None:
            self._error(msg, "Database entry not found")
            return
        aid: Headers = [("ActionID", msg.action_id)] if msg.action_id is not None else []
        self._reply(msg, "Success", [("EventList", "start"),
                                     ("Message", "Result will follow")])
        self.write(encode_message([("Event", "DBGetResponse"), ("Family", family),
                                   ("Key", key), ("Val", value), *aid]))
        self.write(encode_message([("Event", "DBGetComplete"), *aid,
                                   ("EventList", "Complete"), ("ListItems", "1")]))

    async def _db_put(self, msg: AmiMessage) -> None:
        """``manager_dbput`` (no period after its "No ... specified")."""
        names = self._family_key(msg, "")
        if names is None:
            return
        self._server.pbx.astdb.put(*names, msg.get("Val"))
        self._success(msg, "Updated database successfully")

    async def _db_del(self, msg: AmiMessage) -> None:
        """``manager_dbdel`` (``ast_db_del2``: a missing key is an error)."""
        names = self._family_key(msg, ".")
        if names is None:
            return
        if self._server.pbx.astdb.delete(*names):
            self._success(msg, "Key deleted successfully")
        else:
            self._error(msg, "Database entry could not be deleted")

    def _monitored(self, msg: AmiMessage) -> Channel | None:
        """MixMonitor/StopMixMonitor's channel, or their error reply (None)."""
        name = msg.get("Channel")
        if not name:
            self._error(msg, "No channel specified")
            return None
        chan = self._server.pbx.channels.find(name)
        if chan is None or chan.destroyed:
            self._error(msg, "No such channel")
            return None
        return chan

    async def _mixmonitor(self, msg: AmiMessage) -> None:
        """app_mixmonitor.c ``manager_mixmonitor`` (sim/mixmonitor.py)."""
        chan = self._monitored(msg)
        if chan is None:
            return
        monitors = self._server.monitors
        file, options = msg.get("File"), msg.get("Options")
        if not monitors.can_start(file, options):
            self._error(msg, "Could not start monitoring channel")
            return
        mon_id = f"{chan.uniqueid}-{len(monitors.recordings) + 1}" \
            if monitors.id_var(options) else ""
        # mixmonitor.txt: the answer first, then VarSet and MixMonitorStart
        self._reply(msg, "Success", [("MixMonitorID", mon_id)] if mon_id else [])
        monitors.start(chan, file, options, mon_id)

    async def _stop_mixmonitor(self, msg: AmiMessage) -> None:
        """app_mixmonitor.c ``manager_stop_mixmonitor``."""
        chan = self._monitored(msg)
        if chan is None:
            return
        if not self._server.monitors.stop(chan):
            self._error(msg, "Could not stop monitoring channel")
            return
        self._reply(msg, "Success")

    async def _device_state_list(self, msg: AmiMessage) -> None:
        """res_manager_devicestate.c: response, one DeviceStateChange per
        device (no Privilege header), then DeviceStateListComplete."""
        aid: Headers = [("ActionID", msg.action_id)] if msg.action_id is not None else []
        self._reply(msg, "Success", [("EventList", "start"),
                                     ("Message", "Device State Changes will follow")])
        states = self._server.pbx.device_states()
        for device, state in states:
            self.write(encode_message([("Event", "DeviceStateChange"), *aid,
                                       ("Device", device), ("State", state)]))
        self.write(encode_message([("Event", "DeviceStateListComplete"), *aid,
                                   ("EventList", "Complete"), ("ListItems", str(len(states)))]))


_ACTIONS = {
    "login": AmiSession._login,
    "logoff": AmiSession._logoff,
    "challenge": AmiSession._challenge,
    "ping": AmiSession._ping,
    "events": AmiSession._events,
    "filter": AmiSession._filter,
    "originate": AmiSession._originate,
    "redirect": AmiSession._redirect,
    "hangup": AmiSession._hangup,
    "getvar": AmiSession._getvar,
    "setvar": AmiSession._setvar,
    "coreshowchannels": AmiSession._core_show_channels,
    "devicestatelist": AmiSession._device_state_list,
    "dbget": AmiSession._db_get,
    "dbput": AmiSession._db_put,
    "dbdel": AmiSession._db_del,
    "mixmonitor": AmiSession._mixmonitor,
    "stopmixmonitor": AmiSession._stop_mixmonitor,
}


class AmiHost(Protocol):
    """What the AMI server's actions need of the PBX (see sim.pbx.SimPBX)."""

    @property
    def cfg(self) -> SimConfig: ...
    @property
    def channels(self) -> ChannelRegistry: ...
    @property
    def globals(self) -> dict[str, str]: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def events(self) -> Events: ...
    @property
    def dialplan(self) -> Dialplan: ...
    @property
    def astdb(self) -> AstDB: ...

    def read_var(self, chan: Channel, name: str) -> str | None: ...
    def set_var(self, chan: Channel, name: str, value: str) -> None: ...
    def originate(self, req: OriginateRequest) -> asyncio.Future[OriginateResult]: ...
    def redirect(self, chan: Channel, context: str, exten: str, priority: int) -> bool: ...
    def device_states(self) -> list[tuple[str, str]]: ...
    def soft_hangup(self, chan: Channel, cause: int, *, final_cause: int | None = None,
                    by: str | None = None) -> None: ...


class AmiServer:
    """Listening socket + sessions; also the :class:`sim.events.EventOutput`."""

    def __init__(self, pbx: AmiHost) -> None:
        self.pbx = pbx
        self.version = pbx.cfg.ami_version
        self.max_buffer = pbx.cfg.ami_max_buffer
        self.read = parse_event_mask(pbx.cfg.ami_read) if pbx.cfg.ami_read else None
        #: manager.conf ``write``: the classes of the actions allowed (None: all)
        self.write = parse_event_mask(pbx.cfg.ami_write) if pbx.cfg.ami_write else None
        #: manager.conf ``eventfilter`` lines, as Asterisk reads them: a line
        #: it refuses is logged and left out
        self.user_filters: list[EventFilter] = []
        for key, value in pbx.cfg.ami_eventfilters:
            try:
                self.user_filters.append(parse_filter(key, value))
            except FilterError as exc:
                log.warning("AMI: eventfilter refused: %s", exc)
        #: queued events a session's filters kept from it, and those written
        #: (with their bytes), over all sessions
        self.filtered = 0
        self.sent = 0
        self.sent_bytes = 0
        #: actions carried out (lower-case name -> count), all sessions
        self.actions: Counter[str] = Counter()
        self.sessions: set[AmiSession] = set()
        self.frozen = False
        self._unfrozen = asyncio.Event()
        self._unfrozen.set()
        self._server: asyncio.Server | None = None
        self._host = "127.0.0.1"
        #: while set, nothing is written to any client (drop_after).
        self.muted = False
        #: action name (lower case) -> how many more times to drop after it.
        self._drop_after: dict[str, int] = {}
        #: actions after which every connection was dropped, in order.
        self.dropped_after: list[str] = []
        self._reopen: asyncio.Task[None] | None = None
        #: set at the first successful login (python -m sim waits for it).
        self.logged_in = asyncio.Event()
        self.started = time.monotonic()
        self.port = 0
        self._monitors: Monitors | None = None

    @property
    def monitors(self) -> Monitors:
        """MixMonitor's recordings (made at first use: the PBX's events
        exist only after this server)."""
        if self._monitors is None:
            pbx = self.pbx
            self._monitors = Monitors(pbx.cfg, pbx.events, pbx.set_var,
                                      lambda: pbx.loop.time())
        return self._monitors

    async def start(self, host: str, port: int) -> None:
        self._host = host
        self._server = await asyncio.start_server(self._on_connect, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.started = time.monotonic()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback: the session task is ours (asyncio's own callback
        # task would log an error when cancelled on Python 3.11).
        session = AmiSession(self, reader, writer)
        task = asyncio.get_running_loop().create_task(self._serve(session),
                                                      name="sim:ami-session")
        session.task = task
        self.sessions.add(session)
        task.add_done_callback(lambda _t: self.sessions.discard(session))

    async def _serve(self, session: AmiSession) -> None:
        try:
            await session.run()
        except Exception:
            log.exception("AMI session failed")
            session.abort()

    def limit(self, mask: frozenset[str] | None) -> frozenset[str] | None:
        """Intersect a session's event mask with the user's ``read`` classes."""
        read = self.read
        if read is None:
            return mask
        return read if mask is None else mask & read

    # EventOutput --------------------------------------------------------------

    def wants(self, event_class: str) -> bool:
        return any(s.wants(event_class) for s in self.sessions)

    def publish(self, event_class: str, payload: bytes) -> None:
        for session in list(self.sessions):
            if session.wants(event_class):
                session.send_event(payload)

    # fault injection ----------------------------------------------------------

    def freeze(self, frozen: bool) -> None:
        self.frozen = frozen
        if frozen:
            self._unfrozen.clear()
        else:
            self._unfrozen.set()
            for session in list(self.sessions):
                session.flush_held()

    async def wait_unfrozen(self) -> None:
        await self._unfrozen.wait()

    async def drop_all(self) -> None:
        sessions = list(self.sessions)
        for session in sessions:
            session.abort()
        await self._cancel(sessions)

    def abort_all(self) -> None:
        """Reset every connection now (their tasks end on their own)."""
        for session in list(self.sessions):
            session.abort()

    def drop_after(self, action: str, times: int = 1) -> None:
        """Arm: after the next ``times`` actions named ``action`` have been
        carried out, reset every connection before the response is written."""
        if times < 1:
            raise ValueError(f"drop_after({action!r}, times={times}): times must be >= 1")
        self._drop_after[action.strip().lower()] = times

    def take_drop(self, action: str) -> bool:
        """Is a drop armed for this action (lower case)?  Uses one up."""
        left = self._drop_after.get(action, 0)
        if left <= 0:
            return False
        if left == 1:
            del self._drop_after[action]
        else:
            self._drop_after[action] = left - 1
        self.dropped_after.append(action)
        return True

    async def refuse(self, seconds: float | None = None) -> None:
        """Stop listening (connections are refused); open sessions stay.
        With ``seconds``, listen again after that long (real time)."""
        self._cancel_reopen()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        if seconds is not None:
            self._reopen = asyncio.get_running_loop().create_task(
                self._accept_later(seconds), name="sim:ami-reopen")

    async def _accept_later(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._reopen = None
        await self.accept()

    async def accept(self) -> None:
        """Listen again on the same port (after :meth:`refuse`)."""
        if self._reopen is not None and self._reopen is not asyncio.current_task():
            self._cancel_reopen()
        if self._server is None:
            self._server = await asyncio.start_server(self._on_connect, self._host, self.port)

    def _cancel_reopen(self) -> None:
        task, self._reopen = self._reopen, None
        if task is not None and not task.done():
            task.cancel()

    async def inject(self, raw: bytes) -> None:
        for session in list(self.sessions):
            session.write(raw)

    async def _cancel(self, sessions: list[AmiSession]) -> None:
        """Wait for the (aborted) sessions to end; cancel any that hang on."""
        tasks = [s.task for s in sessions
                 if s.task is not None and s.task is not asyncio.current_task()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def stop(self) -> None:
        task, self._reopen = self._reopen, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._server is not None:
            self._server.close()
        self.freeze(False)
        sessions = list(self.sessions)
        for session in sessions:
            session.abort()
        await self._cancel(sessions)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

