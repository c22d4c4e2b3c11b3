"""FastAGI server: routing, reply handling and bad clients, over real
sockets; who may connect and how many; replies out of bounds; refusals
logged once with a count."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from acd.adapters.fastagi import (
    MAX_REPLY_BYTES,
    AgiHangupError,
    AgiRefused,
    AgiSession,
    FastAgiServer,
)
from acd.protocols.agi import AgiProtocolError, encode_request


def env(script: str, uid: str = "1795461991.0") -> dict[str, str]:
    return {"agi_network": "yes", "agi_network_script": script,
            "agi_request": f"agi://127.0.0.1:4573/{script}", "agi_channel": "PJSIP/trunk-1",
            "agi_uniqueid": uid, "agi_callerid": "13800138000", "agi_calleridname": "张三"}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.done = asyncio.Event()

    async def handler(self, s: AgiSession) -> None:
        self.seen.append(("request", (s.request.script, dict(s.request.query),
                                      s.request.calleridname)))
        try:
            r = await s.command(b"ANSWER\n")
            self.seen.append(("answer", r.value))
            r = await s.stream_file("hello-world", "0123456789#*")
            self.seen.append(("stream", (r.digit, r.endpos)))
            r = await s.get_data("menu", 3000, 2)
            self.seen.append(("data", (r.value, r.timeout)))
            await s.command(b"NOOP\n")
        except AgiHangupError as exc:
            self.seen.append(("hangup", str(exc)))
            raise
        finally:
            self.done.set()


async def _server(rec: Recorder, header_timeout: float = 5.0) -> FastAgiServer:
    srv = FastAgiServer({"hotline": rec.handler}, port=0, header_timeout=header_timeout)
    await srv.start()
    return srv


async def test_query_is_split_and_replies_are_typed() -> None:
    rec = Recorder()
    srv = await _server(rec)
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline?lang=yue&vip=1")))
    for reply in (b"200 result=0\n", b"200 result=49 endpos=9760\n",
                  b"520-Invalid command syntax.  Proper usage follows:\n",
                  ):
        assert (await r.readline()).endswith(b"\n")
        w.write(reply)
    # the third command (GET DATA) gets a multi-line 520: the body, then its end
    w.write(b"Usage: GET DATA <file>\n520 End of proper usage.\n")
    await asyncio.wait_for(rec.done.wait(), 5)
    w.close()
    await srv.stop()
    assert rec.seen[0] == ("request", ("hotline", {"lang": "yue", "vip": "1"}, "张三"))
    assert rec.seen[1:3] == [("answer", "0"), ("stream", ("1", 9760))]
    assert len(rec.seen) == 3  # the 520 became AgiCommandError: handler ended, logged


async def test_unsolicited_hangup_raises_for_the_handler() -> None:
    rec = Recorder()
    srv = await _server(rec)
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline")))
    await r.readline()
    w.write(b"200 result=0\n")
    await r.readline()  # STREAM FILE
    w.write(b"200 result=-1 endpos=0\n")
    await r.readline()  # GET DATA
    w.write(b"HANGUP\n200 result=-1\n")  # HANGUP ahead of the reply
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.seen[-1] == ("hangup", "HANGUP")
    assert await asyncio.wait_for(r.read(), 5) == b""  # server closed the socket
    await srv.stop()


async def test_511_and_eof_are_hangups() -> None:
    for tail in (b"511 Command Not Permitted on a dead channel or intercept routine\n", b""):
        rec = Recorder()
        srv = await _server(rec)
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode_request(env("hotline")))
        await r.readline()
        if tail:
            w.write(tail)
        else:
            w.close()
        await asyncio.wait_for(rec.done.wait(), 5)
        assert rec.seen[-1][0] == "hangup"
        await srv.stop()


async def test_bad_clients_are_dropped_and_others_keep_working() -> None:
    rec = Recorder()
    srv = await _server(rec, header_timeout=0.5)
    # 1. garbage instead of a header
    r1, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
    w1.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(r1.read(), 5) == b""
    # 2. closes mid-header
    _r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
    w2.write(b"agi_network: yes\nagi_network_scr")
    w2.close()
    # 3. sends half a header and stalls: dropped after the header timeout
    r3, w3 = await asyncio.open_connection("127.0.0.1", srv.port)
    w3.write(b"agi_network: yes\n")
    assert await asyncio.wait_for(r3.read(), 5) == b""
    # 4. unknown script: told to hang up
    r4, w4 = await asyncio.open_connection("127.0.0.1", srv.port)
    w4.write(encode_request(env("nosuch")))
    assert await asyncio.wait_for(r4.readline(), 5) == b"HANGUP\n"
    # a good call still works
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline")))
    for reply in (b"200 result=0\n", b"200 result=0 endpos=100\n", b"200 result= (timeout)\n",
                  b"200 result=0\n"):
        await r.readline()
        w.write(reply)
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.seen[-1] == ("data", ("", True))
    assert srv.rejected == 4
    for wr in (w1, w3, w4, w):
        wr.close()
    await srv.stop()


async def test_header_framing_is_the_codecs_over_the_socket() -> None:
    """The server reads the header with the codec's RequestReader: CRLF lines
    and a ``HANGUP`` in the same packet as the header (it stays for the
    session); an empty first line and an oversized header are dropped."""
    rec = Recorder()
    srv = await _server(rec, header_timeout=2.0)
    # CRLF header, the caller already gone: HANGUP follows in the same write
    crlf = encode_request(env("hotline")).replace(b"\n", b"\r\n")
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(crlf + b"HANGUP\n")
    assert await asyncio.wait_for(r.readline(), 5) == b"ANSWER\n"
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.seen == [("request", ("hotline", {}, "张三")), ("hangup", "HANGUP")]
    # an empty first line, and a header over 16 KiB without an end
    r1, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
    w1.write(b"\r\nagi_network: yes\n\n")
    assert await asyncio.wait_for(r1.read(), 5) == b""
    r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
    w2.write(b"".join(b"agi_arg_%d: %s\n" % (i, b"x" * 100) for i in range(1, 200)))
    assert await asyncio.wait_for(r2.read(), 5) == b""
    assert srv.rejected == 2
    for wr in (w, w1, w2):
        wr.close()
    await srv.stop()


# ------------------------------------------------- who may connect, and how many


async def _closed_at_once(r: asyncio.StreamReader) -> bool:
    """The server closed (or reset) the connection without a word."""
    try:
        return await asyncio.wait_for(r.read(), 5) == b""
    except ConnectionResetError:
        return True


async def test_a_peer_not_allowed_is_closed_at_once_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    srv = FastAgiServer({"hotline": rec.handler}, port=0, allow=["10.9.9.0/24", "::1"])
    await srv.start()
    for _ in range(5):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode_request(env("hotline")))
        assert await _closed_at_once(r)
        w.close()
    assert srv.dropped["not-allowed"] == 5 and not rec.seen
    lines = [r.getMessage() for r in caplog.records if "not one of the Asterisk" in r.getMessage()]
    assert lines == ["FastAGI: connection from 127.0.0.1 refused: not one of the Asterisk "
                     "servers (acd.yaml agi.allow: 10.9.9.0/24, ::1)"]
    await srv.stop()  # the 4 held back, with their count
    lines = [r.getMessage() for r in caplog.records if "not one of the Asterisk" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(and 3 more like it, held back)")


async def test_allowed_by_network_and_by_host_name() -> None:
    for allow in (["127.0.0.0/8"], ["localhost"], ["127.0.0.1"]):
        rec = Recorder()
        srv = FastAgiServer({"hotline": rec.handler}, port=0, allow=allow)
        await srv.start()
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode_request(env("hotline")))
        assert await asyncio.wait_for(r.readline(), 5) == b"ANSWER\n", allow
        w.close()
        await asyncio.wait_for(rec.done.wait(), 5)
        await srv.stop()
        assert srv.dropped == {}


class Blocker:
    """A handler that holds its session until told."""

    def __init__(self) -> None:
        self.started = 0
        self.go = asyncio.Event()

    async def handler(self, s: AgiSession) -> None:
        self.started += 1
        await self.go.wait()


async def test_at_the_cap_the_longest_idle_goes_then_new_ones_are_refused() -> None:
    b = Blocker()
    srv = FastAgiServer({"hotline": b.handler}, port=0, max_connections=3, header_timeout=30)
    await srv.start()
    idle = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert srv.active == 3
    # a fourth that speaks at once: the oldest idle one makes room for it
    calls = []
    for i in range(3):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode_request(env("hotline", f"1795461991.{i}")))
        calls.append((r, w))
        assert await _closed_at_once(idle[i][0])  # the oldest first
    while b.started < 3:
        await asyncio.sleep(0.01)
    assert srv.dropped["evicted"] == 3 and srv.active == 3
    # every connection is a call now: a new one is refused at once
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline", "1795461991.9")))
    assert await _closed_at_once(r)
    assert srv.dropped["over-cap"] == 1 and b.started == 3
    b.go.set()
    for _, wr in (*idle, *calls, (r, w)):
        wr.close()
    await srv.stop()


async def test_the_cap_is_lowered_to_what_the_open_files_limit_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from acd.adapters import fastagi

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(fastagi, "FD_RESERVE", 10)
    srv = FastAgiServer({}, port=0, max_connections=hard + 100)
    await srv.bind()
    try:
        assert srv.max_connections == hard - 10
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        await srv.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---------------------------------------------------------- replies out of bounds


async def _one_command(reply: bytes, *, command_timeout: float = 5.0,
                       stay_open: bool = True) -> tuple[FastAgiServer, list[object], bytes]:
    """A session whose first reply is ``reply``: what the handler saw, what
    the peer read after it."""
    seen: list[object] = []
    done = asyncio.Event()

    async def handler(s: AgiSession) -> None:
        try:
            seen.append(await s.answer())
        except Exception as exc:
            seen.append(exc)
            raise
        finally:
            done.set()

    srv = FastAgiServer({"hotline": handler}, port=0, command_timeout=command_timeout)
    await srv.start()
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline")))
    assert await r.readline() == b"ANSWER\n"
    w.write(reply)
    await asyncio.wait_for(done.wait(), 10)
    try:
        rest = await asyncio.wait_for(r.read(), 5)
    except ConnectionResetError:
        rest = b""
    w.close()
    await srv.stop()
    return srv, seen, rest


async def test_a_520_that_never_ends_ends_the_session() -> None:
    seen: list[object] = []
    done = asyncio.Event()

    async def handler(s: AgiSession) -> None:
        try:
            await s.answer()
        except Exception as exc:
            seen.append(exc)
            raise
        finally:
            done.set()

    srv = FastAgiServer({"hotline": handler}, port=0)
    await srv.start()
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline")))
    await r.readline()
    w.write(b"520-Invalid command syntax.  Proper usage follows:\n")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while not done.is_set() and sent < 10_000_000:
            w.write(b"Usage: ANSWER\n" * 1000)
            await w.drain()
            sent += 14_000
    await asyncio.wait_for(done.wait(), 10)
    assert isinstance(seen[0], AgiProtocolError)  # cut at its bound, not at the end
    assert "520 usage body" in str(seen[0]) or str(MAX_REPLY_BYTES) in str(seen[0])
    assert srv.dropped["protocol"] == 1
    assert await _closed_at_once(r)
    w.close()
    await srv.stop()


async def test_a_reply_line_too_long_or_unreadable_is_a_protocol_error_not_a_hangup() -> None:
    for reply in (b"200 result=" + b"1" * 40_000 + b"\n", b"hello\n",
                  b"200 result=0 endpos=" + b"9" * 5000 + b"\n"):
        srv, seen, rest = await _one_command(reply)
        assert isinstance(seen[0], AgiProtocolError), seen
        assert rest == b"" and srv.dropped["protocol"] == 1


async def test_a_reply_in_dribs_is_bounded_by_the_command_timeout_in_all() -> None:
    seen: list[object] = []
    done = asyncio.Event()

    async def handler(s: AgiSession) -> None:
        try:
            await s.answer()
        except Exception as exc:
            seen.append(exc)
            raise
        finally:
            done.set()

    srv = FastAgiServer({"hotline": handler}, port=0, command_timeout=0.5)
    await srv.start()
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(encode_request(env("hotline")))
    await r.readline()
    w.write(b"520-Invalid command syntax.  Proper usage follows:\n")
    t0 = asyncio.get_running_loop().time()
    while not done.is_set():  # a line every 0.1 s: never idle for the timeout
        w.write(b"Usage: ANSWER\n")
        await asyncio.sleep(0.1)
    assert isinstance(seen[0], AgiProtocolError)
    assert asyncio.get_running_loop().time() - t0 < 2
    w.close()
    await srv.stop()


async def test_a_refused_session_is_closed_without_a_word(
        caplog: pytest.LogCaptureFixture) -> None:
    async def handler(s: AgiSession) -> None:
        raise AgiRefused("secret", f"requeue for call {s.request.uniqueid} without its secret")

    srv = FastAgiServer({"requeue": handler}, port=0)
    await srv.start()
    for _ in range(3):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode_request(env("requeue?server=pbx1")))
        assert await _closed_at_once(r)
        w.close()
    await srv.stop()
    assert srv.dropped["refused-secret"] == 3
    lines = [r.getMessage() for r in caplog.records if "without its secret" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(and 1 more like it, held back)")


async def test_a_caller_name_that_is_not_utf8_keeps_the_call() -> None:
    rec = Recorder()
    srv = await _server(rec)
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    gbk = "张三".encode("gbk").decode("utf-8", "surrogateescape")  # raw bytes, as Asterisk sends
    head = encode_request({**env("hotline"), "agi_calleridname": gbk})
    assert "张三".encode("gbk") in head
    w.write(head)
    await r.readline()
    w.write(b"HANGUP\n")
    await asyncio.wait_for(rec.done.wait(), 5)
    assert rec.seen[0] == ("request", ("hotline", {}, "\ufffd\ufffd\ufffd\ufffd"))
    assert srv.dropped == {}
    w.close()
    await srv.stop()


async def test_a_peer_that_never_reads_cannot_hold_a_session() -> None:
    """Every wait of a session has a bound: sending to a peer that reads
    nothing (its window full) ends in AgiProtocolError within the command's
    timeout, and closing the session does not wait for it either."""
    from acd.protocols.agi import parse_request

    accepted: list[asyncio.StreamWriter] = []

    async def never_read(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)  # holds the socket open, reads nothing

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = parse_request(encode_request(env("hotline")))
    session = AgiSession(request, reader, writer, command_timeout=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AgiProtocolError):
        # far more than loopback's socket buffers hold: drain() must wait
        await session.command(b"NOOP " + b"x" * (64 * 1024 * 1024) + b"\n")
    assert loop.time() - started < 3.0
    started = loop.time()
    await session.close()
    assert loop.time() - started < 3.0
    for w in accepted:
        w.transport.abort()
    server.close()
    await server.wait_closed()
