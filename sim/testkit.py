"""Raw-socket helpers for driving the simulator in tests, without the engine.

* :class:`AmiProbe` - an AMI client framed with ``acd.protocols.ami``:
  reads the banner, sends actions, waits for responses and events.
* :class:`AgiScriptServer` - a tiny FastAGI server framed with
  ``acd.protocols.agi``: each connection runs an async script that sends
  commands and reads back *one line's worth* of reply per command (a
  ``HANGUP`` line counts, exactly like the recorder behind the transcripts).

Both read on demand (no background reader task), so a test owns every task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from acd.protocols import agi as agi_codec
from acd.protocols.agi import AgiLine, AgiRequest, ReplyParser, RequestReader
from acd.protocols.ami import AmiBanner, AmiDecoder, AmiMessage, action, encode, encode_message

log = logging.getLogger(__name__)


class AmiProbe:
    """A minimal AMI client for tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = AmiDecoder(expect_banner=True)
        self._pending: list[AmiMessage] = []
        self.banner: str | None = None
        self.messages: list[AmiMessage] = []
        self.eof = False
        self._ids = 0

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1",
                      wait_s: float = 5.0) -> AmiProbe:
        reader, writer = await asyncio.open_connection(host, port)
        probe = cls(reader, writer)
        async with asyncio.timeout(wait_s):
            while probe.banner is None and not probe.eof:
                await probe._read()
        return probe

    async def _read(self) -> None:
        data = await self._reader.read(65536)
        if not data:
            self.eof = True
            return
        for item in self._decoder.feed(data):
            if isinstance(item, AmiBanner):
                self.banner = item.version
            elif isinstance(item, AmiMessage):
                self._pending.append(item)
                self.messages.append(item)

    async def wait_for(self, pred: Callable[[AmiMessage], bool],
                       wait_s: float = 5.0) -> AmiMessage:
        """The first unconsumed message matching ``pred`` (consumes it)."""
        async with asyncio.timeout(wait_s):
            while True:
                for i, msg in enumerate(self._pending):
                    if pred(msg):
                        del self._pending[i]
                        return msg
                if self.eof:
                    raise ConnectionError("AMI connection closed")
                await self._read()

    async def drain(self, wait_s: float = 0.2) -> list[AmiMessage]:
        """Read whatever arrives within ``wait_s``; returns the unconsumed messages."""
        try:
            async with asyncio.timeout(wait_s):
                while not self.eof:
                    await self._read()
        except TimeoutError:
            pass
        return list(self._pending)

    async def wait_event(self, name: str, wait_s: float = 5.0, **fields: str) -> AmiMessage:
        """The next unconsumed event ``name`` whose headers equal ``fields``."""
        def match(m: AmiMessage) -> bool:
            return m.event == name and all(m.get(k) == v for k, v in fields.items())
        return await self.wait_for(match, wait_s)

    def next_id(self) -> str:
        self._ids += 1
        return f"t{self._ids}"

    def send(self, name: str, fields: Mapping[str, str] | None = None,
             variables: Mapping[str, str] | None = None, action_id: str | None = None) -> str:
        aid = action_id or self.next_id()
        self._writer.write(encode(action(name, aid, fields, variables)))
        return aid

    def send_raw(self, data: bytes) -> None:
        self._writer.write(data)

    def send_headers(self, headers: list[tuple[str, str]]) -> None:
        self._writer.write(encode_message(headers))

    async def response(self, action_id: str, wait_s: float = 5.0) -> AmiMessage:
        return await self.wait_for(
            lambda m: m.response is not None and m.action_id == action_id, wait_s)

    async def action(self, name: str, fields: Mapping[str, str] | None = None,
                     variables: Mapping[str, str] | None = None,
                     wait_s: float = 5.0) -> AmiMessage:
        return await self.response(self.send(name, fields, variables), wait_s)

    async def list_action(self, name: str, fields: Mapping[str, str] | None = None,
                          wait_s: float = 5.0) -> tuple[AmiMessage, list[AmiMessage]]:
        """An event-list action: the response and the item events (Complete last)."""
        aid = self.send(name, fields)
        resp = await self.response(aid, wait_s)
        items: list[AmiMessage] = []
        while True:
            msg = await self.wait_for(lambda m: m.event is not None and m.action_id == aid,
                                      wait_s)
            items.append(msg)
            if msg.ends_event_list:
                return resp, items

    async def login(self, user: str = "acd", secret: str = "acdsecret",
                    events: str | None = "on") -> AmiMessage:
        fields = {"Username": user, "Secret": secret}
        if events is not None:
            fields["Events"] = events
        return await self.action("Login", fields)

    async def wait_closed(self, wait_s: float = 5.0) -> None:
        async with asyncio.timeout(wait_s):
            while not self.eof:
                await self._read()

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class AgiConn:
    """One FastAGI connection from the simulator, seen from the engine's side."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, rest: bytes) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self._buf = rest
        self._parser = ReplyParser()
        #: (direction, line) pairs: ">>" sent, "<<" read.
        self.transcript: list[tuple[str, str]] = []

    async def read_line(self, wait_s: float = 5.0) -> str | None:
        """One raw reply line (without newline), None on EOF."""
        async with asyncio.timeout(wait_s):
            while b"\n" not in self._buf:
                data = await self._reader.read(4096)
                if not data:
                    return None
                self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        text = line.decode("utf-8")
        self.transcript.append(("<<", text))
        return text

    async def read_reply(self, wait_s: float = 5.0) -> AgiLine | None:
        """The next parsed reply (a 520 block is assembled), None on EOF."""
        while True:
            line = await self.read_line(wait_s)
            if line is None:
                return None
            item = self._parser.feed_line(line)
            if item is not None:
                return item

    async def command(self, line: bytes | str, wait_s: float = 5.0) -> AgiLine | None:
        """Send one command, return the next reply (which may be ``AgiHangup``)."""
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\n"):
            data += b"\n"
        self.transcript.append((">>", data.decode().rstrip("\n")))
        self._writer.write(data)
        return await self.read_reply(wait_s)

    def send(self, line: bytes | str) -> None:
        """Send a command without reading anything back."""
        data = line.encode() if isinstance(line, str) else line
        if not data.endswith(b"\n"):
            data += b"\n"
        self.transcript.append((">>", data.decode().rstrip("\n")))
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


AgiScript = Callable[[AgiConn], Awaitable[None]]


async def hold_forever(conn: AgiConn) -> None:
    """A hotline script that answers and holds the caller on MusicOnHold
    until the call ends (for tests of what happens to a call in progress)."""
    await conn.command("ANSWER")
    while True:
        reply = await conn.command('EXEC MusicOnHold "default,30"', wait_s=30)
        if not isinstance(reply, agi_codec.AgiResult) or reply.result < 0:
            return


class AgiScriptServer:
    """A FastAGI server running ``script(conn)`` for each connection.

    ``script`` may be swapped between calls; ``scripts`` maps the request's
    script path (``hotline``, ``requeue``) to its own script if given.
    """

    def __init__(self, script: AgiScript | None = None,
                 scripts: Mapping[str, AgiScript] | None = None) -> None:
        self.script = script
        self.scripts = dict(scripts or {})
        self.connections: list[AgiConn] = []
        self.requests: list[AgiRequest] = []
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._arrived = asyncio.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"agi://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for writer in list(self._writers):  # tasks cancelled before they ever ran
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AgiScriptServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_connections(self, n: int, wait_s: float = 5.0) -> list[AgiConn]:
        async with asyncio.timeout(wait_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.connections) >= n)
        return self.connections[:n]

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        self._writers.add(writer)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._writers.discard(writer))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req_reader = RequestReader()
            parsed = None
            while parsed is None:
                data = await reader.read(4096)
                if not data:
                    return
                parsed = req_reader.feed(data)
            request, rest = parsed
            conn = AgiConn(request, reader, writer, rest)
            self.requests.append(request)
            async with self._arrived:
                self.connections.append(conn)
                self._arrived.notify_all()
            script = self.scripts.get(request.script, self.script)
            if script is not None:
                await script(conn)
        except (TimeoutError, ConnectionError, agi_codec.AgiProtocolError) as exc:
            self.errors.append(exc)
        except Exception as exc:
            log.exception("AGI test script failed")
            self.errors.append(exc)
        finally:
            writer.close()
