"""FastAGI server on asyncio streams.

Our own rather than panoramisk's (which spins at 100 % CPU when a client
closes mid-header, reads an unsolicited ``HANGUP`` as the next reply and
matches routes on the raw script including ``?query``) or pyst2's (does not
import on Python 3.11).

* the request header is read under a timeout; garbage or a close mid-header
  drops that connection only;
* routing is on the script path without its ``?query``; the query reaches
  the handler through ``session.request.query``;
* ``HANGUP``, a 511 reply and EOF all raise :class:`AgiHangupError`;
* one task per call, owned by the server and cancelled on ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from acd.protocols import agi
from acd.protocols.agi import (
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResult,
    ReplyParser,
    RequestReader,
)

log = logging.getLogger(__name__)


class AgiHangupError(Exception):
    """The channel hung up (or was redirected away): ``HANGUP``, 511 or EOF."""


class AgiCommandError(Exception):
    """Asterisk refused a command (510 unknown, 520 bad syntax)."""

    def __init__(self, command: bytes, error: AgiError) -> None:
        detail = "; ".join(error.usage) if error.usage else error.message
        super().__init__(f"AGI command {command.decode(errors='replace').strip()!r} "
                         f"refused with {error.code}: {detail}")
        self.error = error


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

    async def command(self, line: bytes, timeout: float | None = None) -> AgiResult:
        """Send one command line and return its ``200`` reply.

        Raises AgiHangupError once the channel is gone, AgiCommandError on
        510/520, AgiProtocolError if the peer is not speaking AGI.
        """
        if self.hung_up or self.closed:
            raise AgiHangupError(f"channel {self.request.channel} is gone")
        try:
            self._writer.write(line)
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self.hung_up = True
            raise AgiHangupError(f"connection lost while sending: {exc}") from None
        wait = timeout if timeout is not None else self._timeout
        while True:
            try:
                raw = await asyncio.wait_for(self._reader.readline(), wait)
            except TimeoutError:
                raise AgiProtocolError(
                    f"no reply to {line.decode(errors='replace').strip()!r} in {wait}s"
                ) from None
            except (ConnectionError, ValueError) as exc:
                self.hung_up = True
                raise AgiHangupError(f"connection lost: {exc}") from None
            if not raw:
                self.hung_up = True
                raise AgiHangupError("connection closed by Asterisk")
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
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

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


Handler = Callable[[AgiSession], Awaitable[None]]


class FastAgiServer:
    """Accepts FastAGI connections and runs one supervised task per call."""

    def __init__(self, routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 4573,
                 header_timeout: float = 5.0, command_timeout: float | None = 120.0) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._header_timeout = header_timeout
        self._command_timeout = command_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0  # connections dropped for bad input

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
        naming the address."""
        try:
            self._server = await asyncio.start_server(
                self._on_connect, self._host, self._port, limit=64 * 1024, backlog=1024,
                start_serving=False)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for FastAGI on {self._host}:{self._port} "
                                     f"(acd.yaml: agi.host, agi.port): {exc.strerror}") from None

    async def stop(self) -> None:
        """No new connections, then every session ended (its socket closed).
        The sessions go first: from Python 3.12.1 ``wait_closed`` waits for
        every connection, so it comes last, bounded."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    @property
    def active(self) -> int:
        return len(self._tasks)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_request(self, reader: asyncio.StreamReader) -> AgiRequest:
        """Read the header line by line into the codec's :class:`RequestReader`
        up to the empty line.  Whatever follows (e.g. a ``HANGUP`` written at
        once because the caller already left) stays in the stream reader for
        the session: fed whole lines, the codec ends on the empty line itself
        and has nothing left over."""
        header = RequestReader()
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                raise AgiProtocolError("request header line too long") from None
            if not line:
                raise AgiProtocolError("connection closed before the end of the request header")
            done = header.feed(line)
            if done is not None:
                return done[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        session: AgiSession | None = None
        try:
            try:
                request = await asyncio.wait_for(self._read_request(reader), self._header_timeout)
            except TimeoutError:
                self.rejected += 1
                log.warning("FastAGI %s: no complete request header within %ss; dropped",
                            peer, self._header_timeout)
                return
            except (AgiProtocolError, ConnectionError) as exc:
                self.rejected += 1
                log.warning("FastAGI %s: bad request header (%s); dropped", peer, exc)
                return
            handler = self._routes.get(request.script)
            if handler is None:
                self.rejected += 1
                log.warning("FastAGI %s: no route for script %r (routes: %s); hanging up",
                            peer, request.script, ", ".join(sorted(self._routes)))
                with contextlib.suppress(ConnectionError):
                    writer.write(agi.hangup())
                    await writer.drain()
                return
            session = AgiSession(request, reader, writer, self._command_timeout)
            try:
                await handler(session)
            except AgiHangupError:
                pass
            except (AgiProtocolError, AgiCommandError) as exc:
                log.error("FastAGI call %s (%s): %s", request.uniqueid, request.script, exc)
            except Exception:
                log.exception("FastAGI call %s (%s): handler failed",
                              request.uniqueid, request.script)
        finally:
            if session is not None:
                await session.close()
            else:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
