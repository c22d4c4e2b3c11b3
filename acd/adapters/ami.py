"""AMI client: panoramisk's ``Manager`` behind the project's own adapter.

What panoramisk gives us: action ids, matching responses (and event lists,
and ``OriginateResponse`` for async originates) to the action's future.
What we add or replace, because of its known defects:

* ``protocol_factory``: our protocol decodes AMI *per message* with
  :mod:`acd.protocols.ami` (panoramisk decodes per TCP chunk and drops a
  UTF-8 character split across reads); events go straight to our callback,
  which is guarded so that a failing consumer cannot kill the connection;
* login: a wrong password raises :class:`AmiAuthError` (panoramisk reconnects
  forever without saying so);
* liveness: a ``Ping`` every ``ping_interval`` must be answered within
  ``ping_timeout``; when it is not, a fresh session tries to log in: if it
  can, the link is declared dead and closed (a half-open TCP link); if it
  cannot either, Asterisk itself is stalled and the link is kept, so the
  events of the stall still arrive when it is over (a new session would
  never see them);
* reconnect: our own supervisor with exponential backoff (panoramisk's fixed
  timer is disabled), and an ``on_connected`` hook to resync state;
* every action runs under a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action as PanoAction
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message as PanoMessage

from acd.adapters.backoff import Backoff
from acd.logs import Limited, printable, private
from acd.protocols.ami import (
    AmiBanner,
    AmiDecoder,
    AmiFrameError,
    AmiMessage,
    AmiProtocolError,
    encode_message,
)

log = logging.getLogger(__name__)

#: malformed frames: the first logged, then one line a minute with the count
_frame_errors = Limited(60.0)


class AmiError(Exception):
    """Base for AMI adapter errors."""


class AmiAuthError(AmiError):
    """Asterisk refused the username/secret."""


class AmiConnectError(AmiError):
    """The AMI endpoint cannot be reached."""


class AmiNotConnected(AmiError):
    """An action was sent while the link is down."""


class AmiActionTimeout(AmiError):
    """Asterisk did not answer an action within its timeout."""


class AmiActionFailed(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.message = message


@dataclass(frozen=True, slots=True)
class AmiConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "acd"
    secret: str = ""
    #: event classes asked for at login (``system``: Shutdown).
    events: str = "call,system"
    #: event names passed to the consumer; the others are dropped unparsed
    #: (their name read from the first line, no headers built); None = all.
    #: Replies to our own actions (and their lists' items) always pass.
    wanted_events: frozenset[str] | None = None
    action_timeout: float = 5.0
    connect_timeout: float = 5.0
    ping_interval: float = 5.0
    ping_timeout: float = 3.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


EventCallback = Callable[[AmiMessage], None]


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk protocol whose decoding is done per message by our codec."""

    #: event names the consumer wants; None = all.  Set per client.
    wanted_events: frozenset[str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.decoder = AmiDecoder(expect_banner=True, events=self.wanted_events)
        self.on_event: EventCallback | None = None

    def data_received(self, data: bytes) -> None:
        try:
            items = self.decoder.feed(data)
        except AmiProtocolError as exc:
            log.error("AMI: %s; closing the connection", exc)
            self.transport.close()
            return
        for item in items:
            if isinstance(item, AmiMessage):
                self._route(item)
            elif isinstance(item, AmiFrameError):
                _log_frame_error(item)
            elif isinstance(item, AmiBanner):
                self.version = item.version

    def _route(self, msg: AmiMessage) -> None:
        aid = msg.action_id
        if aid is not None and aid in self.responses:
            self.handle_message(PanoMessage(_pano_fields(msg)))
            return
        if msg.event is not None and self.on_event is not None:
            if msg.event == "Shutdown":
                log.warning("AMI: Asterisk is shutting down")
            try:
                self.on_event(msg)
            except Exception:
                log.exception("AMI: event consumer failed on %s", msg.event)


def _log_frame_error(item: AmiFrameError) -> None:
    """A malformed frame, rate-limited: where it is wrong and its size; its
    text (callers' numbers and names) masked unless ``show_caller_data``."""
    text = item.raw[:200].decode("utf-8", errors="replace").replace("\r\n", "\n")
    _frame_errors.error(log, "ami-frame", "AMI: malformed frame skipped (%s; %d bytes): %s",
                        item.reason, len(item.raw), private(printable(text, newlines=False)))


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk Manager with its own reconnect and pinger switched off."""

    def __init__(self, on_lost: Callable[[Exception | None], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self._on_lost(exc)

    def ping(self) -> None:  # panoramisk's fire-and-forget pinger: we watch ourselves
        return None


class AmiClient:
    """One AMI connection to one Asterisk server, supervised."""

    def __init__(self, config: AmiConfig, on_event: EventCallback,
                 on_connected: Callable[[], Awaitable[None]] | None = None,
                 name: str = "pbx") -> None:
        self.config = config
        self.name = name
        self._on_event = on_event
        self._on_connected = on_connected
        self._manager: _Manager | None = None
        self._protocol: _Protocol | None = None
        self._lost = asyncio.Event()
        self.connected = False
        self.reconnects = 0
        #: since when (monotonic) Asterisk answers nothing on a link kept open
        self.stalled_since: float | None = None

    # ----------------------------------------------------------- connection

    async def connect(self) -> None:
        """Connect and log in once.  Raises AmiAuthError or AmiConnectError."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        manager = _Manager(
            on_lost=self._connection_lost, loop=loop, host=cfg.host, port=cfg.port,
            protocol_factory=_Protocol, ping_delay=10**6, ping_interval=10**6,
            reconnect_timeout=10**6,
        )
        try:
            wanted = cfg.wanted_events

            class _Proto(_Protocol):
                wanted_events = wanted

            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_Proto, cfg.host, cfg.port), cfg.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise AmiConnectError(
                f"cannot reach Asterisk AMI at {cfg.host}:{cfg.port} ({self.name}): {exc}"
            ) from None
        protocol.factory = manager
        protocol.config = manager.config
        protocol.encoding = manager.encoding = "utf-8"
        manager.responses = protocol.responses = {}
        manager.protocol = protocol
        manager._connected = True
        protocol.on_event = self._on_event
        self._manager, self._protocol = manager, protocol
        try:
            resp = await self.send("Login", {"Username": cfg.username, "Secret": cfg.secret,
                                             "Events": cfg.events})
        except AmiActionFailed as exc:
            transport.close()
            raise AmiAuthError(
                f"Asterisk at {cfg.host}:{cfg.port} refused AMI login for user "
                f"{cfg.username!r}: {exc.message}"
            ) from None
        except AmiActionTimeout as exc:  # a port that accepts but says nothing: not reached
            transport.close()
            raise AmiConnectError(
                f"Asterisk AMI at {cfg.host}:{cfg.port} ({self.name}) took the connection but "
                f"did not answer the login ({exc}): is that Asterisk's AMI port?"
            ) from None
        except AmiError:
            transport.close()
            raise
        self.connected = True
        log.info("AMI %s: logged in to %s:%s (%s)", self.name, cfg.host, cfg.port,
                 resp.get("Message", ""))

    def _connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        self._lost.set()

    async def run(self) -> None:
        """Keep the link up: watchdog pings, reconnect with backoff.

        Returns only when cancelled; raises AmiAuthError if a reconnect is
        refused (credentials changed: retrying would not help).
        """
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max)
        while True:
            if self.connected:
                # resync runs beside the watchdog: a PBX that froze during the
                # resync is still declared dead within the ping bound
                resync = None
                if self._on_connected is not None:
                    resync = asyncio.ensure_future(self._on_connected())
                try:
                    await self._watch()
                finally:
                    if resync is not None:
                        if not resync.done():
                            resync.cancel()
                        for res in await asyncio.gather(resync, return_exceptions=True):
                            if isinstance(res, Exception):
                                log.error("AMI %s: resync failed: %s", self.name, res)
                backoff.reset()
                log.warning("AMI %s: connection lost; reconnecting in %.1fs",
                            self.name, backoff.delay)
            await asyncio.sleep(backoff.delay)
            try:
                await self.connect()
                self.reconnects += 1
                continue
            except AmiConnectError as exc:
                log.warning("AMI %s: %s", self.name, exc)
            except AmiAuthError:
                raise
            except AmiError as exc:  # timeout, link closed again at once...: retry
                log.warning("AMI %s: reconnect failed (%s)", self.name, exc)
            backoff.grow()

    async def _watch(self) -> None:
        """Ping until the link fails; close it if a ping is not answered."""
        cfg = self.config
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), cfg.ping_interval)
                return
            try:
                await self.send("Ping", timeout=cfg.ping_timeout)
                if self.stalled_since is not None:
                    log.warning("AMI %s: answering again after %.1fs", self.name,
                                time.monotonic() - self.stalled_since)
                    self.stalled_since = None
            except AmiActionTimeout:
                # a dead link, or an Asterisk too busy to answer (frozen)?  A
                # fresh session tells: if it logs in, this link is dead; if it
                # cannot either, Asterisk is stalled, and this link is kept so
                # that the events of the stall still arrive when it is over
                if await self._fresh_login_works() and not await self._answers_ping():
                    log.error("AMI %s: no answer to Ping within %.1fs while a new session "
                              "logs in; declaring the link dead", self.name, cfg.ping_timeout)
                    self._drop()
                    return
                if self.stalled_since is None:
                    self.stalled_since = time.monotonic()
                    log.warning("AMI %s: Asterisk answers neither Ping nor a new login; "
                                "keeping the link until it does", self.name)
            except AmiNotConnected:
                return

    async def _answers_ping(self) -> bool:
        """One more Ping on this link (a stall may have ended meanwhile)."""
        try:
            await self.send("Ping", timeout=self.config.ping_timeout)
        except AmiError:
            return False
        return True

    async def _fresh_login_works(self) -> bool:
        """Does a new AMI session log in, within ``connect_timeout``?"""
        cfg = self.config
        writer = None
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
                decoder = AmiDecoder(expect_banner=True, events=frozenset())
                writer.write(encode_message([("Action", "Login"), ("ActionID", "probe"),
                                             ("Username", cfg.username),
                                             ("Secret", cfg.secret), ("Events", "off")]))
                while True:
                    data = await reader.read(4096)
                    if not data:
                        return False
                    for item in decoder.feed(data):
                        if isinstance(item, AmiMessage) and item.get("ActionID") == "probe":
                            writer.write(encode_message([("Action", "Logoff")]))
                            return item.get("Response").lower() == "success"
        except (OSError, TimeoutError, AmiProtocolError):
            return False
        finally:
            if writer is not None:
                writer.close()

    def _drop(self) -> None:
        self.connected = False
        if self._protocol is not None:
            self._protocol.transport.abort()
        self._lost.set()

    def abort(self) -> None:
        """Cut the link at once (no Logoff): not a word more to Asterisk."""
        self._drop()

    async def close(self) -> None:
        if self._protocol is not None and self.connected:
            with contextlib.suppress(AmiError):
                await self.send("Logoff", timeout=1.0)
        self.connected = False
        if self._protocol is not None:
            self._protocol.transport.close()

    # -------------------------------------------------------------- actions

    async def send(self, action: str, fields: Mapping[str, str] | None = None,
                   variables: Mapping[str, str] | None = None,
                   timeout: float | None = None) -> AmiMessage:
        """Send an action; return its response (for event-list actions, the
        final response; use :meth:`send_list` to get the events)."""
        result = await self._send(action, fields, variables, timeout, as_list=None)
        if isinstance(result, list):
            return result[-1]
        return result

    async def send_list(self, action: str, fields: Mapping[str, str] | None = None,
                        timeout: float | None = None) -> list[AmiMessage]:
        """Send an event-list action; return its response and events.  The
        list is recognised by the response (``EventList: start``, "... will
        follow"), so an ``Error`` answer (DBGet of a missing key, say) ends
        it at once and raises :class:`AmiActionFailed`; forcing a list would
        wait for events that never come."""
        result = await self._send(action, fields, None, timeout, as_list=None)
        return result if isinstance(result, list) else [result]

    async def _send(self, action: str, fields: Mapping[str, str] | None,
                    variables: Mapping[str, str] | None, timeout: float | None,
                    as_list: bool | None) -> AmiMessage | list[AmiMessage]:
        manager, protocol = self._manager, self._protocol
        if manager is None or protocol is None or protocol.transport.is_closing():
            raise AmiNotConnected(f"AMI {self.name} is not connected; {action} not sent")
        data: dict[str, Any] = {"Action": action}
        if fields:
            data.update(fields)
        if variables:
            data["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        pano = PanoAction(data, as_list=as_list)
        fut = protocol.send(pano, as_list=as_list)
        wait = timeout if timeout is not None else self.config.action_timeout
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancel that lands with the answer (gh-86296), and a stop never ends
            async with asyncio.timeout(wait):
                raw = await asyncio.shield(fut)
        except TimeoutError:
            protocol.responses.pop(pano.id, None)
            fut.cancel()
            raise AmiActionTimeout(f"AMI {action} got no answer within {wait}s") from None
        msgs = [_to_msg(m) for m in raw] if isinstance(raw, list) else [_to_msg(raw)]
        first = msgs[0]
        if first.response in ("Error", "Failure", "Fail"):
            raise AmiActionFailed(action, first.get("Message", "error"))
        return msgs if isinstance(raw, list) else first


def _pano_fields(msg: AmiMessage) -> dict[str, Any]:
    """The message for panoramisk: a header that repeats (``ChanVariable``
    in a ``CoreShowChannel`` of a list) as the list of its values, so that
    :func:`_to_msg` gives every one of them back."""
    out: dict[str, Any] = {}
    for k, v in msg.headers:
        prev = out.get(k)
        if prev is None:
            out[k] = v
        elif isinstance(prev, list):
            prev.append(v)
        else:
            out[k] = [prev, v]
    return out


def _to_msg(m: PanoMessage) -> AmiMessage:
    pairs: list[tuple[str, str]] = []
    for k, v in m.items():
        if isinstance(v, list):
            pairs.extend((k, str(x)) for x in v)
        else:
            pairs.append((k, str(v)))
    return AmiMessage(tuple(pairs))
