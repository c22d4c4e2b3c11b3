"""FastAGI codec (acd/protocols/agi.py) against the real Asterisk 22 recordings,
plus synthetic replies, malformed requests and known Asterisk reply forms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transcripts import (
    AGI_ENV,
    AGI_IN,
    AGI_OUT,
    AGI_TRAILING,
    agi_reply_lines,
    load_blocks,
    of_kind,
    transcript_files,
)
from transcripts import SKIP_REASON as TRANSCRIPTS_SKIP_REASON

from acd.protocols import agi
from acd.protocols.agi import (
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResult,
    ReplyParser,
    RequestReader,
    parse_request,
    tokenize,
)


def _agi_params() -> list[object]:
    """One param per transcript file that has a FastAGI session."""
    params = [
        pytest.param(path, id=path.stem)
        for path in transcript_files()
        if of_kind(load_blocks(path), AGI_ENV)
    ]
    if not params:
        params = [pytest.param(None, id="no-transcripts", marks=pytest.mark.skip(
            reason=TRANSCRIPTS_SKIP_REASON or "no FastAGI session in the transcripts"))]
    return params


AGI_FILES = _agi_params()


def env_block(path: Path) -> bytes:
    """The recorded request header, without the empty line that ends it."""
    envs = of_kind(load_blocks(path), AGI_ENV)
    assert len(envs) == 1
    raw = envs[0].raw
    assert raw.endswith(b"\n\n")
    return raw[:-1]


def test_transcripts_hold_agi_sessions() -> None:
    if TRANSCRIPTS_SKIP_REASON:
        pytest.skip(TRANSCRIPTS_SKIP_REASON)
    assert len(AGI_FILES) >= 7


# ------------------------------------------------------------------- request


@pytest.mark.parametrize("path", AGI_FILES)
def test_recorded_request_parses(path: Path) -> None:
    block = of_kind(load_blocks(path), AGI_ENV)[0]
    expected = dict(block.headers)
    req = parse_request(env_block(path))

    assert dict(req.env) == expected
    assert list(req.env) == [k for k, _ in block.headers]  # order kept
    assert req.script == "hotline"
    assert req.query == {}
    assert req.args == ()
    assert req.channel == expected["agi_channel"]
    assert req.channel.startswith("Local/s@caller-")
    assert req.uniqueid == expected["agi_uniqueid"] != ""
    assert req.callerid == "13800138000"
    assert req.calleridname == ("张三" if path.stem == "utf8" else "Zhang")
    assert req.language == "en"
    assert req.context == "hotline"
    assert req.extension == "10086"
    assert req.env["agi_accountcode"] == ""


@pytest.mark.parametrize("path", AGI_FILES)
def test_request_reader_byte_by_byte(path: Path) -> None:
    raw = of_kind(load_blocks(path), AGI_ENV)[0].raw
    reader = RequestReader()
    for i in range(len(raw) - 1):
        assert reader.feed(raw[i:i + 1]) is None, f"returned early at byte {i}"
    got = reader.feed(raw[-1:])
    assert got is not None
    req, rest = got
    assert rest == b""
    assert req == parse_request(env_block(path))


@pytest.mark.parametrize("path", AGI_FILES)
def test_request_reader_returns_leftover(path: Path) -> None:
    raw = of_kind(load_blocks(path), AGI_ENV)[0].raw
    got = RequestReader().feed(raw + b"HANGUP\n200 res")
    assert got is not None
    req, rest = got
    assert rest == b"HANGUP\n200 res"
    assert req.script == "hotline"


@pytest.mark.parametrize("path", AGI_FILES)
def test_encode_request_reproduces_recorded_header(path: Path) -> None:
    """The simulator writes the header byte-for-byte like Asterisk."""
    raw = of_kind(load_blocks(path), AGI_ENV)[0].raw
    assert agi.encode_request(parse_request(env_block(path)).env) == raw


def test_utf8_caller_name_split_mid_character() -> None:
    raw = of_kind(load_blocks("utf8"), AGI_ENV)[0].raw
    cut = raw.index("张".encode()) + 1
    reader = RequestReader()
    assert reader.feed(raw[:cut]) is None
    got = reader.feed(raw[cut:])
    assert got is not None
    assert got[0].calleridname == "张三"


def _header(*lines: str, end: str = "\n") -> bytes:
    return "".join(f"{line}{end}" for line in lines).encode() + end.encode()


def test_query_and_args_are_split_off() -> None:
    raw = _header(
        "agi_network: yes",
        "agi_network_script: hotline?lang=yue&vip=1",
        "agi_request: agi://127.0.0.1:4573/hotline?lang=yue&vip=1",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_arg_1: sales",
        "agi_arg_2: two words",
        "agi_arg_3: ",
    )
    got = RequestReader().feed(raw)
    assert got is not None
    req, rest = got
    assert rest == b""
    assert req.script == "hotline"
    assert req.query == {"lang": "yue", "vip": "1"}
    assert req.args == ("sales", "two words", "")
    assert req.env["agi_network_script"] == "hotline?lang=yue&vip=1"


@pytest.mark.parametrize(("raw", "script", "query"), [
    ("hotline", "hotline", {}),
    ("/hotline/", "hotline", {}),
    ("ivr/sales?x=1&x=2", "ivr/sales", {"x": "2"}),
    ("hotline?name=%E5%BC%A0%E4%B8%89&empty=", "hotline", {"name": "张三", "empty": ""}),
    ("", "", {}),
])
def test_split_script(raw: str, script: str, query: dict[str, str]) -> None:
    assert agi.split_script(raw) == (script, query)


def test_request_without_script_header() -> None:
    req = parse_request(b"agi_network: yes\nagi_channel: Local/x-1;2\n")
    assert req.script == "" and req.query == {}
    assert req.language == "en"  # default when absent


def test_request_with_crlf_line_ends_byte_by_byte() -> None:
    raw = _header("agi_network: yes", "agi_network_script: hotline",
                  "agi_calleridname: 张三", end="\r\n")
    reader = RequestReader()
    results = [reader.feed(raw[i:i + 1]) for i in range(len(raw))]
    assert results[:-1] == [None] * (len(raw) - 1)
    last = results[-1]
    assert last is not None
    assert last[0].calleridname == "张三" and last[0].script == "hotline"
    assert last[1] == b""


def test_garbage_header_line_names_the_line_number() -> None:
    raw = _header("agi_network: yes", "agi_network_script: hotline", "GET / HTTP/1.1")
    with pytest.raises(AgiProtocolError, match=r"line 3\b.*GET / HTTP/1\.1"):
        RequestReader().feed(raw)


@pytest.mark.parametrize("line", ["agi_channel", "channel: x", "agi channel: x", ": x"])
def test_bad_header_lines(line: str) -> None:
    with pytest.raises(AgiProtocolError, match="line 2"):
        parse_request(_header("agi_network: yes", line)[:-1])


def test_header_not_utf8_keeps_the_call() -> None:
    """A caller's name in another encoding (GBK 张三 here) decodes with
    replacement: the request is read, the rest of it intact."""
    raw = (b"agi_network: yes\nagi_network_script: hotline\n"
           b"agi_calleridname: \xd5\xc5\xc8\xfd\nagi_callerid: 13800138000\n\n")
    got = RequestReader().feed(raw)
    assert got is not None
    req, rest = got
    assert rest == b""
    assert req.script == "hotline" and req.callerid == "13800138000"
    assert "\ufffd" in req.calleridname
    assert req.calleridname == raw.split(b"name: ")[1].split(b"\n")[0].decode(
        "utf-8", errors="replace")


def test_truncated_utf8_in_header_keeps_the_call() -> None:
    raw = b"agi_network: yes\nagi_calleridname: \xe5\xbc\n\n"
    got = RequestReader().feed(raw)
    assert got is not None and got[0].calleridname == "\ufffd"


def test_encode_request_sends_surrogate_escapes_as_raw_bytes() -> None:
    """The simulator can play a caller whose name is not UTF-8."""
    name = b"\xd5\xc5\xc8\xfd".decode("utf-8", "surrogateescape")
    raw = agi.encode_request({"agi_network": "yes", "agi_calleridname": name})
    assert raw == b"agi_network: yes\nagi_calleridname: \xd5\xc5\xc8\xfd\n\n"
    req = parse_request(raw[:-1])
    assert req.calleridname == "\ufffd" * 4  # GBK: no UTF-8 continuation bytes


@pytest.mark.parametrize("env", [
    {},
    {"agi_x": "a\nagi_y: injected"},
    {"agi_x": "a\rb"},
    {"channel": "x"},
    {"agi x": "y"},
    {"agi_x:y": "z"},
    {"agi_x": "\ud800"},  # a lone surrogate that is no escaped byte
    {"agi_x\udc80": "y"},  # escaped bytes only in values: a name is text
])
def test_encode_request_refuses_what_cannot_be_a_header(env: dict[str, str]) -> None:
    with pytest.raises(agi.AgiEncodeError):
        agi.encode_request(env)


def test_parse_request_refuses_an_oversized_block() -> None:
    block = b"agi_x: " + b"y" * agi.MAX_HEADER_BYTES
    with pytest.raises(AgiProtocolError, match=str(agi.MAX_HEADER_BYTES)):
        parse_request(block)


def test_header_over_max_size_in_one_read() -> None:
    """Cut into reads or not, an oversized header is refused the same."""
    raw = b"agi_arg_1: " + b"x" * 300 + b"\n\n"
    with pytest.raises(AgiProtocolError, match="256"):
        RequestReader(max_bytes=256).feed(raw)
    reader = RequestReader(max_bytes=256)
    with pytest.raises(AgiProtocolError, match="256"):
        for i in range(len(raw)):
            reader.feed(raw[i:i + 1])


def test_header_of_exactly_max_size_whatever_the_reads() -> None:
    block = b"agi_x: " + b"y" * (256 - 7)
    assert len(block) == 256
    for cut in range(len(block) - 2, len(block) + 2):
        reader = RequestReader(max_bytes=256)
        raw = block + b"\r\n\r\n"
        assert reader.feed(raw[:cut]) is None
        got = reader.feed(raw[cut:])
        assert got is not None and got[0].env["agi_x"] == "y" * 249


def test_reader_refuses_again_after_a_refusal_and_starts_afresh_after_a_request() -> None:
    reader = RequestReader()
    with pytest.raises(AgiProtocolError):
        reader.feed(b"GET / HTTP/1.1\n\n")
    with pytest.raises(AgiProtocolError, match="already refused"):
        reader.feed(b"agi_network: yes\n\n")
    reader = RequestReader()
    got = reader.feed(b"agi_a: 1\n\nagi_b")
    assert got is not None and dict(got[0].env) == {"agi_a": "1"} and got[1] == b"agi_b"
    got = reader.feed(b"agi_b: 2\n\n")
    assert got is not None and dict(got[0].env) == {"agi_b": "2"}


def test_request_reader_search_is_linear() -> None:
    """A header fed a byte at a time is searched once, not once per read."""
    reader = RequestReader()
    raw = b"agi_arg_1: " + b"x" * 10_000 + b"\n\n"
    for i in range(len(raw)):
        reader.feed(raw[i:i + 1])
    assert reader.searched <= 4 * len(raw)  # at most 3 bytes looked at again per read
    reader = RequestReader()
    for i in range(0, len(raw), 64):
        reader.feed(raw[i:i + 64])
    assert reader.searched <= len(raw) + 3 * (len(raw) // 64 + 1)


@pytest.mark.parametrize("first", [b"\n", b"\r\n", b"\nagi_network: yes\n\n"])
def test_empty_first_line(first: bytes) -> None:
    with pytest.raises(AgiProtocolError, match="empty"):
        RequestReader().feed(first)


def test_empty_first_line_byte_by_byte() -> None:
    reader = RequestReader()
    assert reader.feed(b"\r") is None
    with pytest.raises(AgiProtocolError, match="empty"):
        reader.feed(b"\n")


def test_header_over_max_size() -> None:
    reader = RequestReader(max_bytes=256)
    line = b"agi_arg_1: " + b"x" * 100 + b"\n"
    assert reader.feed(line) is None
    assert reader.feed(line) is None
    with pytest.raises(AgiProtocolError, match="256"):
        reader.feed(line)


def test_header_over_default_max_size() -> None:
    reader = RequestReader()
    with pytest.raises(AgiProtocolError):
        reader.feed(b"agi_x: " + b"y" * agi.MAX_HEADER_BYTES)


# ------------------------------------------------------------------- replies


EXPECTED_REPLIES: dict[str, AgiResult | AgiError | AgiHangup] = {
    "200 result=0": AgiResult(value="0", raw="200 result=0"),
    "200 result=1": AgiResult(value="1", raw="200 result=1"),
    "200 result=-1": AgiResult(value="-1", raw="200 result=-1"),
    "200 result=1 (13800138000)": AgiResult(value="1", data="13800138000",
                                            raw="200 result=1 (13800138000)"),
    "200 result=49 endpos=9760": AgiResult(value="49", endpos=9760,
                                           raw="200 result=49 endpos=9760"),
    "200 result=2 (timeout)": AgiResult(value="2", timeout=True, raw="200 result=2 (timeout)"),
    "HANGUP": AgiHangup(),
}


@pytest.mark.parametrize("path", AGI_FILES)
def test_recorded_replies_parse(path: Path) -> None:
    blocks = load_blocks(path)
    lines = agi_reply_lines(blocks)
    assert len(lines) >= len(of_kind(blocks, AGI_IN))
    parser = ReplyParser()  # one parser for the whole session, as in the engine
    for line in lines:
        if line not in EXPECTED_REPLIES:
            pytest.fail(f"{path.name}: reply {line!r} has no expectation; add one")
        assert parser.feed_line(line + "\n") == EXPECTED_REPLIES[line], line


@pytest.mark.parametrize("path", AGI_FILES)
def test_trailing_bytes_parse(path: Path) -> None:
    trailing = of_kind(load_blocks(path), AGI_TRAILING)
    assert len(trailing) == 1
    if trailing[0].timed_out:
        assert trailing[0].raw == b""
        return
    line = trailing[0].raw.decode()
    assert line.endswith("\n")
    assert ReplyParser().feed_line(line) == EXPECTED_REPLIES[line.rstrip("\n")]


def _encode_reply(reply: AgiResult | AgiError | AgiHangup) -> bytes:
    if isinstance(reply, AgiHangup):
        return agi.REPLY_HANGUP
    assert isinstance(reply, AgiResult)
    return agi.encode_result(reply.value, reply.data, endpos=reply.endpos,
                             timeout=reply.timeout)


@pytest.mark.parametrize("path", AGI_FILES)
def test_reply_encoders_reproduce_recorded_bytes(path: Path) -> None:
    """The simulator's reply writers produce what Asterisk wrote."""
    parser = ReplyParser()
    for block in of_kind(load_blocks(path), AGI_IN, AGI_TRAILING):
        for line in block.raw.decode().splitlines(keepends=True):
            reply = parser.feed_line(line)
            assert reply is not None
            assert _encode_reply(reply) == line.encode()


def test_stream_file_interrupted_by_key() -> None:
    r = ReplyParser().feed_line("200 result=49 endpos=9760\n")
    assert isinstance(r, AgiResult)
    assert r.digit == "1" and r.endpos == 9760 and not r.timeout and r.data is None


def test_get_data_timeout() -> None:
    r = ReplyParser().feed_line("200 result=2 (timeout)\n")
    assert isinstance(r, AgiResult)
    assert r.timeout and r.result == 2 and r.data is None and r.endpos is None


def test_failure_and_hangup() -> None:
    parser = ReplyParser()
    r = parser.feed_line("200 result=-1\n")
    assert isinstance(r, AgiResult) and r.result == -1 and r.digit is None
    assert parser.feed_line("HANGUP\n") == AgiHangup()
    assert parser.feed_line("200 result=0\r\n") == AgiResult(value="0", raw="200 result=0")


@pytest.mark.parametrize(("line", "code", "message"), [
    ("510 Invalid or unknown command", 510, "Invalid or unknown command"),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511,
     "Command Not Permitted on a dead channel or intercept routine"),
    ("520 Invalid command syntax.  Proper usage not available.", 520,
     "Invalid command syntax.  Proper usage not available."),
])
def test_error_replies(line: str, code: int, message: str) -> None:
    assert ReplyParser().feed_line(line + "\n") == AgiError(code, message)


def test_error_reply_constants() -> None:
    parser = ReplyParser()
    assert parser.feed_line(agi.REPLY_510.decode()) == AgiError(510, "Invalid or unknown command")
    r = parser.feed_line(agi.REPLY_511.decode())
    assert isinstance(r, AgiError) and r.code == 511


USAGE = (
    " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
    "\tStream the given file, and receive DTMF data.",
    "",
    "Returns the digits received from the channel at the other end.",
)


def test_multiline_520() -> None:
    parser = ReplyParser()
    assert parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n") is None
    for line in USAGE:
        assert parser.feed_line(line + "\n") is None
    final = parser.feed_line("520 End of proper usage.\n")
    assert final == AgiError(520, "Invalid command syntax", USAGE)
    # The parser is back to normal afterwards.
    assert parser.feed_line("200 result=0\n") == AgiResult(value="0", raw="200 result=0")


def test_multiline_520_from_encoder_with_lookalike_body_lines() -> None:
    """Body lines that look like replies (HANGUP, 200 ...) are usage text."""
    usage = ("HANGUP", "200 result=0", "510 not an error")
    parser = ReplyParser()
    out = [parser.feed_line(line) for line in
           agi.encode_520(usage).decode().splitlines(keepends=True)]
    assert out[:-1] == [None] * (len(usage) + 1)
    assert out[-1] == AgiError(520, "Invalid command syntax", usage)


@pytest.mark.parametrize("line", ["garbage here", "", "20 result=0", "OK", "200result=1",
                                  "200 result=abc", "200 result=1 endpos=x",
                                  "\u00b2\u00b2\u00b2 odd code", "\u0663\u0663\u0663 odd",
                                  "200 result=1 endpos=\u0663"])
def test_garbage_reply_line(line: str) -> None:
    with pytest.raises(AgiProtocolError) as exc:
        ReplyParser().feed_line(line + "\n")
    assert repr(line) in str(exc.value)


@pytest.mark.parametrize(("line", "data"), [
    ("200 result=1 (Zhang (VIP))", "Zhang (VIP)"),
    ("200 result=1 (a) b (c)", "a) b (c"),
    ("200 result=1 ()", ""),
    ("200 result=1 (张三)", "张三"),
    ("200 result=1 (( )", "( "),
])
def test_data_with_parentheses(line: str, data: str) -> None:
    r = ReplyParser().feed_line(line + "\n")
    assert isinstance(r, AgiResult)
    assert r.result == 1 and r.data == data and not r.timeout


def test_data_and_endpos() -> None:
    r = ReplyParser().feed_line("200 result=0 (waitfor) endpos=1234\n")
    assert r == AgiResult(value="0", data="waitfor", endpos=1234,
                          raw="200 result=0 (waitfor) endpos=1234")


# GET DATA answers "200 result=%s" / "200 result=%s (timeout)" with the digits
# *string* (res_agi.c handle_getdata): empty when nothing was pressed, with
# leading zeros and '*' kept.
@pytest.mark.parametrize(("line", "value", "timeout"), [
    ("200 result= (timeout)", "", True),  # nothing pressed
    ("200 result=", "", False),  # only '#' pressed
    ("200 result=0123", "0123", False),
    ("200 result=05 (timeout)", "05", True),
    ("200 result=*12", "*12", False),
])
def test_get_data_digit_strings(line: str, value: str, timeout: bool) -> None:
    r = ReplyParser().feed_line(line + "\n")
    assert isinstance(r, AgiResult)
    assert r.value == value
    assert r.timeout is timeout
    assert r.data is None
    assert not r.failed
    assert agi.encode_result(r.value, timeout=r.timeout) == (line + "\n").encode()


def test_numeric_value_reads_as_int() -> None:
    r = ReplyParser().feed_line("200 result=0123\n")
    assert isinstance(r, AgiResult)
    assert r.result == 123 and r.value == "0123"
    r = ReplyParser().feed_line("200 result=-1\n")
    assert isinstance(r, AgiResult)
    assert r.failed and r.result == -1


@settings(max_examples=100, deadline=None, database=None)
@given(
    value=st.one_of(st.integers(-1, 255).map(str), st.text("0123456789*", max_size=6)),
    data=st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                             max_size=30).filter(lambda d: d != "timeout"),
    endpos=st.none() | st.integers(0, 10**9),
    timeout=st.booleans(),
)
def test_encoded_results_parse_back(value: str, data: str | None, endpos: int | None,
                                    timeout: bool) -> None:
    """What the simulator writes, the engine reads back unchanged."""
    line = agi.encode_result(value, data, endpos=endpos, timeout=timeout)
    r = ReplyParser().feed_line(line.decode())
    assert isinstance(r, AgiResult)
    assert r.value == value
    assert r.timeout is timeout
    assert r.data == (None if timeout else data)
    assert r.endpos == endpos


# ------------------------------------------------------------------ commands


TOKENIZED = {
    "ANSWER": ["ANSWER"],
    "HANGUP": ["HANGUP"],
    "GET VARIABLE CALLERID(num)": ["GET", "VARIABLE", "CALLERID(num)"],
    'STREAM FILE hello-world "0123456789#*"': ["STREAM", "FILE", "hello-world", "0123456789#*"],
    "GET DATA vm-enter-num-to-call 3000 2": ["GET", "DATA", "vm-enter-num-to-call", "3000", "2"],
    "GET DATA vm-enter-num-to-call 8000 4": ["GET", "DATA", "vm-enter-num-to-call", "8000", "4"],
    'SET VARIABLE ACD_QUEUE "billing"': ["SET", "VARIABLE", "ACD_QUEUE", "billing"],
    'EXEC MusicOnHold "default,30"': ["EXEC", "MusicOnHold", "default,30"],
    'SAY NUMBER 42 ""': ["SAY", "NUMBER", "42", ""],
    'NOOP "after redirect"': ["NOOP", "after redirect"],
    'NOOP "after hangup"': ["NOOP", "after hangup"],
    'NOOP "after"': ["NOOP", "after"],
    'NOOP "again"': ["NOOP", "again"],
}

_BUILDERS: dict[tuple[str, ...], Callable[[list[str]], bytes]] = {
    ("ANSWER",): lambda a: agi.answer(),
    ("HANGUP",): lambda a: agi.hangup(),
    ("NOOP",): lambda a: agi.noop(*a),
    ("GET", "VARIABLE"): lambda a: agi.get_variable(*a),
    ("SET", "VARIABLE"): lambda a: agi.set_variable(*a),
    ("STREAM", "FILE"): lambda a: agi.stream_file(*a),
    ("GET", "DATA"): lambda a: agi.get_data(a[0], int(a[1]), int(a[2])),
    ("SAY", "NUMBER"): lambda a: agi.say_number(int(a[0]), *a[1:]),
    ("EXEC",): lambda a: agi.exec_app(*a),
}


def rebuild(tokens: list[str]) -> bytes:
    """Call the command builder that corresponds to a tokenized command."""
    for n in (2, 1):
        build = _BUILDERS.get(tuple(tokens[:n]))
        if build is not None:
            return build(tokens[n:])
    raise AssertionError(f"no builder for {tokens!r}")


@pytest.mark.parametrize("path", AGI_FILES)
def test_recorded_commands_tokenize_and_rebuild(path: Path) -> None:
    commands = of_kind(load_blocks(path), AGI_OUT)
    assert commands
    for block in commands:
        line = block.raw.decode()
        text = line.rstrip("\n")
        if text not in TOKENIZED:
            pytest.fail(f"{path.name}: command {text!r} has no expected tokens; add one")
        tokens = tokenize(line)
        assert tokens == TOKENIZED[text]
        assert rebuild(tokens) == block.raw


@pytest.mark.parametrize(("built", "wire"), [
    (agi.answer(), b"ANSWER\n"),
    (agi.hangup(), b"HANGUP\n"),
    (agi.get_variable("CALLERID(num)"), b"GET VARIABLE CALLERID(num)\n"),
    (agi.stream_file("hello-world", "0123456789#*"), b'STREAM FILE hello-world "0123456789#*"\n'),
    (agi.get_data("vm-enter-num-to-call", 3000, 2), b"GET DATA vm-enter-num-to-call 3000 2\n"),
    (agi.set_variable("ACD_QUEUE", "billing"), b'SET VARIABLE ACD_QUEUE "billing"\n'),
    (agi.exec_app("MusicOnHold", "default,30"), b'EXEC MusicOnHold "default,30"\n'),
    (agi.say_number(42), b'SAY NUMBER 42 ""\n'),
    (agi.noop("after redirect"), b'NOOP "after redirect"\n'),
    (agi.noop(), b"NOOP\n"),
    (agi.stream_file("beep"), b'STREAM FILE beep ""\n'),
    (agi.say_digits("0123", "#"), b'SAY DIGITS 0123 "#"\n'),
    (agi.set_variable("NAME", 'say "hi" \\o/'), b'SET VARIABLE NAME "say \\"hi\\" \\\\o/"\n'),
    (agi.set_variable("NAME", "张三"), 'SET VARIABLE NAME "张三"\n'.encode()),
])
def test_builders_produce_wire_bytes(built: bytes, wire: bytes) -> None:
    assert built == wire


@pytest.mark.parametrize("call", [
    lambda: agi.stream_file("two words"),
    lambda: agi.stream_file(""),
    lambda: agi.get_variable('a"b'),
    lambda: agi.exec_app("Music\tOnHold"),
    lambda: agi.set_variable("X", "line\nbreak"),
    lambda: agi.noop("a\rb"),
])
def test_builders_refuse_unsafe_arguments(call: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(("line", "tokens"), [
    ('SET VARIABLE X "a \\"b\\" \\\\c"', ["SET", "VARIABLE", "X", 'a "b" \\c']),
    ("NOOP   spaced   out  ", ["NOOP", "spaced", "out"]),
    ('NOOP ab"c d"e', ["NOOP", "abc de"]),
    ("NOOP a\\ b", ["NOOP", "a b"]),
    ('EXEC Dial "PJSIP/1001,20"\r\n', ["EXEC", "Dial", "PJSIP/1001,20"]),
    ("", []),
])
def test_tokenize_quoting_rules(line: str, tokens: list[str]) -> None:
    assert tokenize(line) == tokens


def test_tokenize_tab_separates_like_asterisk() -> None:
    assert tokenize("GET\tVARIABLE\tX\n") == ["GET", "VARIABLE", "X"]


@settings(max_examples=100, deadline=None, database=None)
@given(value=st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40))
def test_quoted_argument_round_trips(value: str) -> None:
    line = agi.set_variable("ACD_VALUE", value).decode()
    assert tokenize(line) == ["SET", "VARIABLE", "ACD_VALUE", value]


def test_request_dataclass_is_what_reader_returns() -> None:
    got = RequestReader().feed(b"agi_network: yes\nagi_network_script: x?a=1\n\n")
    assert got is not None
    assert isinstance(got[0], AgiRequest)
    assert got[0] == AgiRequest(env={"agi_network": "yes", "agi_network_script": "x?a=1"},
                                script="x", query={"a": "1"}, args=())


# ------------------------------------------------ hostile replies (issue 13)


def test_key_code_beyond_unicode_is_no_digit() -> None:
    for value in ("1114112", "99999999999", "55296", "0", "-5"):
        r = ReplyParser().feed_line(f"200 result={value} endpos=1\n")
        assert isinstance(r, AgiResult)
        assert r.digit is None
    r = ReplyParser().feed_line("200 result=1114111\n")
    assert isinstance(r, AgiResult) and r.digit == chr(0x10FFFF)


def test_endpos_of_thousands_of_digits_is_a_protocol_error() -> None:
    with pytest.raises(AgiProtocolError, match="endpos of 5000 digits"):
        ReplyParser().feed_line("200 result=0 endpos=" + "9" * 5000 + "\n")
    r = ReplyParser().feed_line("200 result=0 endpos=" + "9" * agi.MAX_ENDPOS_DIGITS + "\n")
    assert isinstance(r, AgiResult) and r.endpos == int("9" * agi.MAX_ENDPOS_DIGITS)


def test_result_value_of_thousands_of_digits_is_a_protocol_error() -> None:
    with pytest.raises(AgiProtocolError, match="value of 5000 characters"):
        ReplyParser().feed_line("200 result=" + "1" * 5000 + "\n")
    r = ReplyParser().feed_line("200 result=" + "1" * agi.MAX_RESULT_CHARS + "\n")
    assert isinstance(r, AgiResult) and r.result == int("1" * agi.MAX_RESULT_CHARS)


def test_result_of_odd_values_reads_as_minus_one() -> None:
    for value in ("-", "*", "1*2", "-#", "#"):
        r = ReplyParser().feed_line(f"200 result={value}\n")
        assert isinstance(r, AgiResult) and r.result == -1 and r.digit is None
    assert AgiResult(value="\u0663").result == -1  # an AgiResult made by hand
    assert AgiResult(value="9" * 5000).result == -1


def test_any_three_digit_code_is_an_agi_error() -> None:
    assert ReplyParser().feed_line("100 Trying\n") == AgiError(100, "Trying")
    assert ReplyParser().feed_line("999\n") == AgiError(999, "")


def test_overlong_reply_line_is_a_protocol_error() -> None:
    with pytest.raises(AgiProtocolError, match="at most"):
        ReplyParser().feed_line("200 result=1 (" + "x" * agi.MAX_REPLY_LINE + ")\n")


def test_never_ending_520_is_refused_at_the_line_cap() -> None:
    parser = ReplyParser()
    assert parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n") is None
    for _ in range(agi.MAX_USAGE_LINES):
        assert parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n") is None
    with pytest.raises(AgiProtocolError, match="520 usage body of more than 1001 lines"):
        parser.feed_line("more\n")
    # back at the start: the next line is read as a reply
    assert parser.feed_line("200 result=0\n") == AgiResult(value="0", raw="200 result=0")


def test_never_ending_520_is_refused_at_the_size_cap() -> None:
    parser = ReplyParser()
    assert parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n") is None
    line = "u" * 1000 + "\n"
    fed = 0
    with pytest.raises(AgiProtocolError, match="characters"):
        while True:
            assert parser.feed_line(line) is None
            fed += 1
    assert fed == agi.MAX_USAGE_CHARS // 1001


def test_longest_allowed_520_body_passes() -> None:
    usage = tuple(f"line {i}" for i in range(agi.MAX_USAGE_LINES))
    parser = ReplyParser()
    out = [parser.feed_line(line) for line in
           agi.encode_520(usage).decode().splitlines(keepends=True)]
    assert out[-1] == AgiError(520, "Invalid command syntax", usage)


@pytest.mark.parametrize("call", [
    lambda: agi.encode_result(1, "a\nHANGUP"),
    lambda: agi.encode_result("1 (x)"),
    lambda: agi.encode_result("9" * (agi.MAX_RESULT_CHARS + 1)),
    lambda: agi.encode_result(0, endpos=10 ** agi.MAX_ENDPOS_DIGITS),
    lambda: agi.encode_result(1, "\udc80"),
    lambda: agi.encode_520(["a", "520 End of proper usage."]),
    lambda: agi.encode_520(["a\nb"]),
    lambda: agi.set_variable("X", "\ud800"),
    lambda: agi.stream_file("two words"),
    lambda: agi.noop("a\rb"),
])
def test_encoders_raise_their_documented_error(call: Callable[[], bytes]) -> None:
    with pytest.raises(agi.AgiEncodeError):
        call()
