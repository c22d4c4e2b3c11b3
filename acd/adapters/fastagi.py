"""FastAGI server on asyncio streams.

Our own rather than panoramisk's (which spins at 100 % CPU when a client
closes mid-header, reads an unsolicited ``HANGUP`` as the next reply and
matches routes on the raw script including ``?query``) or pyst2's (does not
import on Python 3.11).

* who may connect: the peers of ``allow`` (networks and host names; None:
  anyone); any other is closed at once;
* until its request header is in, a connection is a small protocol object
  feeding the codec's ``RequestReader`` (no task, no stream): holding
  thousands of idle ones costs some KiB each and closing one next to
  nothing, so a flood of them cannot starve the event loop (the AMI pings);
* at most ``max_connections`` at once: when they are all taken, the one
  that has waited longest for its request header (an Asterisk sends it at
  once) is closed to make room, and if every one is past its header the new
  connection is closed; nothing is read from it;
* the request header is read under a timeout (``header_timeout``, one timer
  for all) and a size bound (the codec's ``MAX_HEADER_BYTES``); garbage or a
  close mid-header drops that connection only;
* routing is on the script path without its ``?query``; the query reaches
  the handler through ``session.request.query``;
* ``HANGUP``, a 511 reply and EOF all raise :class:`AgiHangupError`; a reply
  that is no AGI, longer than :data:`MAX_REPLY_BYTES` (a 520 that never
  ends) or not complete within the command's timeout raises
  :class:`~acd.protocols.agi.AgiProtocolError`, and the session ends (the
  channel goes on in the dialplan);
* a handler may refuse its session with :class:`AgiRefused` (a wrong call
  secret): the socket is closed at once, nothing sent;
* every kind of dropped or refused connection is counted (``dropped``) and
  logged at most once a minute with a count (:class:`acd.logs.Limited`);
* one task per call, owned by the server and cancelled on ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from acd.adapters.tasks import cancel_and_wait
from acd.logs import Limited, printable
from acd.protocols import agi
from acd.protocols.agi import (
    MAX_HEADER_BYTES,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResult,
    ReplyParser,
    RequestReader,
)

log = logging.getLogger(__name__)

#: the most connections open at once (``agi.max_connections``): one per
#: caller in the IVR or on hold (a caller ringing or talking to an agent
#: holds none), so 4096 is more callers waiting at once than one engine's
#: agents can serve; some 5 KiB each while idle (measured), at most some
#: 50 KiB for a session whose peer fills its read buffer and reply bound
DEFAULT_MAX_CONNECTIONS = 4096
#: connections the kernel queues until they are accepted; asyncio accepts
#: as many at once, before any is looked at
ACCEPT_BACKLOG = 1024
#: open files beyond ``max_connections``: while a flood is shed, up to some
#: three rounds of accepts are open but not yet looked at or not yet closed;
#: and the engine's own (database, AMI, API, logs)
FD_RESERVE = 4 * ACCEPT_BACKLOG + 256
#: the most bytes one command's reply may take, a 520 usage body included
#: (Asterisk's longest is some 2 KiB; GET VARIABLE answers at most 1 KiB)
MAX_REPLY_BYTES = 16 * 1024
#: how long closing a session may wait for the peer before the socket is aborted
CLOSE_WAIT_S = 2.0
#: at a stop, how long the sessions are given to end once cancelled (each
#: closes its socket, at most CLOSE_WAIT_S)
STOP_SESSIONS_S = CLOSE_WAIT_S + 3.0
#: the longest line read, of the request header or of a reply (the stream
#: reader's limit: it holds at most twice this before it stops reading)
READ_LIMIT = MAX_HEADER_BYTES
#: who may connect when acd.yaml names nobody: this host (the engine adds
#: the AMI hosts of its Asterisk servers)
LOOPBACK = ("127.0.0.0/8", "::1")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AgiHangupError(Exception):
    """The channel hung up (or was redirected away): ``HANGUP``, 511 or EOF."""


class AgiCommandError(Exception):
    """Asterisk refused a command (510 unknown, 520 bad syntax)."""

    def __init__(self, command: bytes, error: AgiError) -> None:
        detail = "; ".join(error.usage[:3]) if error.usage else error.message
        super().__init__(f"AGI command {_shown(command)} refused with {error.code}: "
                         f"{printable(detail[:200], newlines=False)}")
        self.error = error


class AgiRefused(Exception):
    """A handler refuses its session (a script naming a call without that
    call's secret, say): the server closes the socket at once, sends
    nothing, and logs the ``kind`` at most once a minute with a count."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AgiSession:
    """One FastAGI conversation: send a command, get its typed reply."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, command_timeout: float | None = None) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._timeout = command_timeout
        self.hung_up = False
        self.closed = False
        #: a reply was not AGI (or did not come): the conversation is out of step
        self.broken = False
        #: what the handler took this session to serve (a call id), its own business
        self.owner: str | None = None

    async def command(self, line: bytes, timeout: float | None = None) -> AgiResult:
        """Send one command line and return its ``200`` reply.

        Raises AgiHangupError once the channel is gone, AgiCommandError on
        510/520, AgiProtocolError if the peer is not speaking AGI (a reply
        that does not parse, is longer than :data:`MAX_REPLY_BYTES`, or is
        not complete within the timeout); after that the session is broken
        and every later command raises AgiProtocolError at once.
        """
        if self.hung_up or self.closed:
            raise AgiHangupError(f"channel {self.request.channel} is gone")
        if self.broken:
            raise AgiProtocolError("the session is out of step after an earlier error")
        wait = timeout if timeout is not None else self._timeout
        try:
            async with asyncio.timeout(wait):
                try:
                    self._writer.write(line)
                    # a peer that never reads would hold this forever: bounded
                    await self._writer.drain()
                except (ConnectionError, RuntimeError) as exc:
                    self.hung_up = True
                    raise AgiHangupError(f"connection lost while sending: {exc}") from None
                return await self._reply(line)
        except TimeoutError:
            self.broken = True
            raise AgiProtocolError(
                f"no complete reply to {_shown(line)} in {wait}s") from None
        except AgiProtocolError:
            self.broken = True
            raise

    async def _reply(self, line: bytes) -> AgiResult:
        size = 0
        while True:
            try:
                raw = await self._reader.readline()
            except ValueError:  # longer than the stream's limit
                raise AgiProtocolError(
                    f"reply to {_shown(line)}: a line longer than {READ_LIMIT} bytes"
                ) from None
            except ConnectionError as exc:
                self.hung_up = True
                raise AgiHangupError(f"connection lost: {exc}") from None
            if not raw:
                self.hung_up = True
                raise AgiHangupError("connection closed by Asterisk")
            size += len(raw)
            if size > MAX_REPLY_BYTES:
                raise AgiProtocolError(
                    f"reply to {_shown(line)} longer than {MAX_REPLY_BYTES} bytes "
                    "(a 520 usage body without its end?)")
            item = self._parser.feed_line(raw.decode("utf-8", errors="replace"))
            if item is None:
                continue  # inside a multi-line 520
            if isinstance(item, AgiHangup):
                self.hung_up = True
                raise AgiHangupError("HANGUP")
            if isinstance(item, AgiError):
                if item.code == 511:
                    self.hung_up = True
                    raise AgiHangupError("511 dead channel")
                raise AgiCommandError(line, item)
            return item

    async def close(self) -> None:
        """Close the socket now: after a Redirect the channel only moves on
        once this happens."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        try:
            # a peer advertising a zero window would hold this forever: bounded
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self._writer.wait_closed()
        except TimeoutError:
            self._writer.transport.abort()
        except ConnectionError:
            pass

    def abort(self) -> None:
        """Drop the connection at once, nothing more sent (a refused session)."""
        self.closed = True
        self._writer.transport.abort()

    # convenience wrappers ------------------------------------------------

    async def answer(self) -> AgiResult:
        return await self.command(agi.answer())

    async def hangup(self) -> AgiResult:
        return await self.command(agi.hangup())

    async def set_variable(self, name: str, value: str) -> AgiResult:
        return await self.command(agi.set_variable(name, value))

    async def get_variable(self, name: str) -> str | None:
        res = await self.command(agi.get_variable(name))
        return res.data if res.result == 1 else None

    async def stream_file(self, name: str, escape_digits: str = "") -> AgiResult:
        return await self.command(agi.stream_file(name, escape_digits))

    async def get_data(self, name: str, timeout_ms: int, max_digits: int) -> AgiResult:
        wait = None if self._timeout is None else self._timeout + timeout_ms / 1000
        return await self.command(agi.get_data(name, timeout_ms, max_digits), timeout=wait)

    async def exec(self, app: str, options: str = "", timeout: float | None = None) -> AgiResult:
        return await self.command(agi.exec_app(app, options), timeout=timeout)


def _shown(line: bytes) -> str:
    """A command for a log line: up to its first quoted argument (a value set
    on the channel, the call's secret say, is not the log's business)."""
    text = line.decode(errors="replace").partition('"')[0].strip()
    return repr(printable(text[:80], newlines=False))


Handler = Callable[[AgiSession], Awaitable[None]]


class PeerFilter:
    """The peers that may connect: IP networks (``10.0.0.0/8``, ``::1``) and
    host names (looked up by :meth:`resolve`); ``None`` lets anyone in."""

    def __init__(self, entries: Sequence[str] | None) -> None:
        self.entries = None if entries is None else tuple(entries)
        self.networks: list[Network] = []
        self.hosts: list[str] = []
        for entry in self.entries or ():
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.append(entry)

    async def resolve(self, timeout: float = 5.0) -> None:
        """The addresses of the host names, added as single-address networks;
        a name that does not resolve is logged and left out."""
        loop = asyncio.get_running_loop()
        for host in self.hosts:
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout)
            except (OSError, TimeoutError) as exc:
                log.warning("FastAGI: agi.allow: cannot resolve %r (%s); its connections "
                            "are refused", host, exc)
                continue
            for info in infos:
                addr = str(info[4][0]).partition("%")[0]
                with contextlib.suppress(ValueError):
                    net = ipaddress.ip_network(addr)
                    if net not in self.networks:
                        self.networks.append(net)

    def allows(self, host: object) -> bool:
        if self.entries is None:
            return True
        if not isinstance(host, str):
            return False
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def __str__(self) -> str:
        return "anyone" if self.entries is None else ", ".join(self.entries) or "nobody"


class _Pending(asyncio.Protocol):
    """A connection until its request header is in: no task, no stream,
    only the codec's :class:`RequestReader` (an idle connection costs little
    to hold and nothing to close).  Once the header is in, the connection is
    handed to a stream reader and a session task."""

    __slots__ = ("header", "host", "server", "since", "transport")

    def __init__(self, server: FastAgiServer) -> None:
        self.server = server
        self.header = RequestReader(MAX_HEADER_BYTES)
        self.since = 0.0
        self.host: object = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.host = peer[0] if isinstance(peer, tuple) and peer else peer
        self.server._accepted(self)

    def data_received(self, data: bytes) -> None:
        try:
            got = self.header.feed(data)
        except AgiProtocolError as exc:
            self.server._bad_header(self, str(exc))
            return
        if got is not None:
            self.server._header_in(self, *got)

    def eof_received(self) -> bool:
        self.server._bad_header(self, "connection closed before the end of the request header")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._waiting.pop(self, None)


class FastAgiServer:
    """Accepts FastAGI connections and runs one supervised task per call."""

    def __init__(self, routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 4573,
                 header_timeout: float = 5.0, command_timeout: float | None = 120.0, *,
                 allow: Sequence[str] | None = None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        """``allow``: the peers that may connect (addresses, networks, host
        names; None: anyone); ``max_connections``: open at once, at most
        (lowered at :meth:`bind` if the open-files limit cannot take them)."""
        self._routes = routes
        self._host = host
        self._port = port
        self._header_timeout = header_timeout
        self._command_timeout = command_timeout
        self.peers = PeerFilter(allow)
        self.max_connections = max(1, max_connections)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: connections still waiting for their request header, oldest first
        self._waiting: OrderedDict[_Pending, None] = OrderedDict()
        #: closes the connections whose header is late (one task for them all)
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        #: every connection dropped or refused, by kind
        self.dropped: Counter[str] = Counter()
        #: one line a minute of each kind, with a count
        self.limited = Limited(60.0)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen and serve (:meth:`bind` first to hold the port early)."""
        if self._server is None:
            await self.bind()
        assert self._server is not None
        await self._server.start_serving()

    async def bind(self) -> None:
        """Take the port without accepting connections yet: a port in use
        fails here, before the engine does anything else.  Raises OSError
        naming the address.  Also looks up the host names of ``allow`` and
        makes room for ``max_connections`` open files."""
        self._room_for_files()
        await self.peers.resolve()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Pending(self), self._host, self._port, backlog=ACCEPT_BACKLOG,
                start_serving=False)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for FastAGI on {self._host}:{self._port} "
                                     f"(acd.yaml: agi.host, agi.port): {exc.strerror}") from None

    def _room_for_files(self) -> None:
        """Raise the process's open-files limit (soft, up to the hard one) so
        that ``max_connections`` fit beside :data:`FD_RESERVE`; if the hard
        limit is too low, take fewer connections (and say so)."""
        try:
            import resource
        except ImportError:  # not on this system
            return
        want = self.max_connections + FD_RESERVE
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY or soft >= want:
            return
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                soft = new
            except (ValueError, OSError) as exc:
                log.warning("FastAGI: cannot raise the open-files limit to %d: %s", new, exc)
        if soft < want:
            fit = max(16, soft - FD_RESERVE)
            log.warning("FastAGI: at most %d connections at once, not %d (agi.max_connections): "
                        "the open-files limit is %d (ulimit -n; LimitNOFILE= in a systemd "
                        "unit)", fit, self.max_connections, soft)
            self.max_connections = fit

    async def stop(self, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        """No new connections, then every session ended (its socket closed).
        ``settle()``: awaited in between, with no new session coming (the
        caller bounds it).  The sessions go first: from Python 3.12.1
        ``wait_closed`` waits for every connection, so it comes last, bounded."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for pending in list(self._waiting):
            self._abort(pending)
        if self._sweeper is not None:
            await cancel_and_wait([self._sweeper], STOP_SESSIONS_S)
        if settle is not None:
            await settle()
        # cancelled again until they end (a single cancel can be lost on
        # Python 3.11: acd.adapters.tasks), never waited for forever
        stuck = await cancel_and_wait(list(self._tasks), STOP_SESSIONS_S)
        if stuck:
            log.error("FastAGI: %d sessions did not end within %.0f s of being cancelled; "
                      "stopping without them", len(stuck), STOP_SESSIONS_S)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        self.limited.flush(log)

    @property
    def active(self) -> int:
        """Connections open: sessions, and those still waiting for their header."""
        return len(self._tasks) + len(self._waiting)

    #: the kinds of drop that are bad input from the peer
    BAD_INPUT = ("header-timeout", "bad-header", "no-route")

    @property
    def rejected(self) -> int:
        """Connections dropped for bad input."""
        return sum(self.dropped[k] for k in self.BAD_INPUT)

    def _drop(self, kind: str, level: int, msg: str, *args: object) -> None:
        self.dropped[kind] += 1
        self.limited.log(log, level, f"agi-{kind}", msg, *args)

    def _abort(self, pending: _Pending) -> None:
        self._waiting.pop(pending, None)
        if pending.transport is not None:
            pending.transport.abort()

    # ------------------------------------------------- before the header

    def _accepted(self, pending: _Pending) -> None:
        host = pending.host
        if self._closing:  # accepted just before the stop
            self._abort(pending)
            return
        if not self.peers.allows(host):
            self._abort(pending)
            self._drop("not-allowed", logging.WARNING,
                       "FastAGI: connection from %s refused: not one of the Asterisk servers "
                       "(acd.yaml agi.allow: %s)", host, self.peers)
            return
        if self.active >= self.max_connections and not self._make_room():
            self._abort(pending)
            self._drop("over-cap", logging.WARNING,
                       "FastAGI: connection from %s refused: %d connections open, the most "
                       "acd.yaml agi.max_connections allows", host, self.active)
            return
        pending.since = time.monotonic()
        self._waiting[pending] = None
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="fastagi-header-timeouts")

    def _make_room(self) -> bool:
        """At the cap: close the connection that has waited longest for its
        request header.  False when every connection is past its header."""
        if not self._waiting:
            return False
        oldest, _ = self._waiting.popitem(last=False)
        self._abort(oldest)
        self._drop("evicted", logging.WARNING,
                   "FastAGI: connection from %s closed after %.1f s without a request header, "
                   "to make room (acd.yaml agi.max_connections: %d)", oldest.host,
                   time.monotonic() - oldest.since, self.max_connections)
        return True

    async def _sweep(self) -> None:
        """Close the connections whose request header is not in within
        ``header_timeout``, the oldest first; ends when none is waiting."""
        while self._waiting:
            oldest = next(iter(self._waiting))
            late = oldest.since + self._header_timeout - time.monotonic()
            if late > 0:
                await asyncio.sleep(late)
                continue
            self._abort(oldest)
            self._drop("header-timeout", logging.WARNING,
                       "FastAGI %s: no complete request header within %ss; dropped",
                       oldest.host, self._header_timeout)

    def _bad_header(self, pending: _Pending, why: str) -> None:
        if pending not in self._waiting:
            return
        self._waiting.pop(pending)
        self._drop("bad-header", logging.WARNING,
                   "FastAGI %s: bad request header (%s); dropped", pending.host,
                   printable(why, newlines=False))
        if pending.transport is not None:
            pending.transport.close()

    def _header_in(self, pending: _Pending, request: AgiRequest, rest: bytes) -> None:
        """The header is in: the connection goes to a stream reader (with
        whatever followed the header, a ``HANGUP`` say) and a session task."""
        if pending not in self._waiting or pending.transport is None:
            return  # closed meanwhile (evicted, late)
        del self._waiting[pending]
        transport = pending.transport
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest:
            reader.feed_data(rest)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        handler = self._routes.get(request.script)
        if handler is None:
            self._drop("no-route", logging.WARNING,
                       "FastAGI %s: no route for script %r (routes: %s); hanging up",
                       pending.host, printable(request.script[:80], newlines=False),
                       ", ".join(sorted(self._routes)))
            transport.write(agi.hangup())
            transport.close()
            return
        session = AgiSession(request, reader, writer, self._command_timeout)
        task = loop.create_task(self._serve(handler, session, pending.host))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------ the session

    async def _serve(self, handler: Handler, session: AgiSession, host: object) -> None:
        request = session.request
        uid = printable(request.uniqueid[:64], newlines=False)
        try:
            await handler(session)
        except AgiHangupError:
            pass
        except AgiRefused as exc:
            session.abort()  # nothing more is said or read
            self._drop(f"refused-{exc.kind}", logging.WARNING,
                       "FastAGI %s: %s; session closed", host, exc)
        except AgiProtocolError as exc:
            self._drop("protocol", logging.ERROR,
                       "FastAGI call %s (%s) from %s: %s; session ended", uid, request.script,
                       host, printable(str(exc), newlines=False))
        except AgiCommandError as exc:
            self._drop("command", logging.ERROR, "FastAGI call %s (%s): %s", uid,
                       request.script, exc)
        except Exception:  # noqa: BLE001 - a bug in a script: logged, the others go on
            self.dropped["failed"] += 1
            self.limited.error(log, f"agi-failed-{request.script}",
                               "FastAGI call %s (%s): handler failed", uid, request.script,
                               exc_info=True)
        finally:
            await session.close()
