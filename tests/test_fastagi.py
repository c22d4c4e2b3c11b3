"""FastAGI server: routing, reply handling and bad clients, over real sockets."""

from __future__ import annotations

import asyncio

from acd.adapters.fastagi import AgiHangupError, AgiSession, FastAgiServer
from acd.protocols.agi import encode_request


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


async def _server(rec: Recorder, **kw: float) -> FastAgiServer:
    srv = FastAgiServer({"hotline": rec.handler}, port=0, **kw)
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
