"""Properties of the AMI and AGI codecs for any input (issue 13, item 4).

* every decoder raises only its documented error for any bytes, cut into
  reads any way: ``AmiProtocolError`` (malformed frames come out as
  ``AmiFrameError`` items), ``AgiProtocolError``;
* what comes out does not depend on how the bytes were cut into reads;
* what the encoders accept decodes back to what they were given; what they
  refuse, they refuse with ``AmiEncodeError`` / ``AgiEncodeError``;
* the SMPP message codec's decoders never raise, and its split gives parts
  that read back as the text (or a ``ValueError``);
* the decoders' work is linear in the input: they count the bytes their
  search for a message's end looks at (``searched``), and that stays within
  the input's length plus 3 bytes a read, whatever the reads.

``benchmarks/fuzz_codecs.py`` runs the same checks on 100,000+ cases.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.protocols import agi, ami, smpp
from acd.protocols.agi import (
    AgiEncodeError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResult,
    ReplyParser,
    RequestReader,
)
from acd.protocols.ami import (
    AmiDecoder,
    AmiEncodeError,
    AmiFrameError,
    AmiItem,
    AmiMessage,
    AmiProtocolError,
    ResponseCollector,
)

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ inputs

# Pieces that hit the decoders' edges: line and message ends cut anywhere,
# header names, greetings, bytes that are not UTF-8, huge numbers.
_AMI_PIECES = [b"\r\n", b"\r\n\r\n", b"\r", b"\n", b":", b": ", b" ", b"Event: ", b"Newchannel",
               b"Hangup", b"Response: Success", b"ActionID: 1", b"\r\nActionID:", b"EventList: ",
               b"start", b"Complete", b"Variable: a=1,b=2", b",", b"=",
               b"Asterisk Call Manager/", b"22.0.0", b"\xe5\xbc\xa0", b"\xe5\xbc", b"\xff",
               b"\x00", b"CallerIDName: ", b"x" * 40]
_AGI_PIECES = [b"\n", b"\r\n", b"\r", b"\n\n", b"agi_", b"network", b": ", b":", b" ",
               b"agi_network_script: ", b"hotline?lang=zh&x=%E5%BC", b"agi_arg_1: ",
               b"agi_calleridname: ", b"\xd5\xc5", b"\xe5\xbc", b"\xff", b"\x00", b"?", b"&",
               b"%", b"=", b"y" * 40]


def _stream(pieces: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(pieces) | st.binary(max_size=4), max_size=60).map(b"".join),
    )


def _cuts(data: st.DataObject, raw: bytes) -> list[bytes]:
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12), label="cuts")
    bounds = [0, *sorted(set(cuts)), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


# -------------------------------------------------------------------- AMI


def _ami_outcome(chunks: list[bytes], *, banner: bool, max_message: int,
                 events: frozenset[str] | None) -> tuple[list[AmiItem], bool, int]:
    """(every item out, whether the stream was refused, events skipped)."""
    decoder = AmiDecoder(expect_banner=banner, max_message=max_message, events=events)
    items: list[AmiItem] = []
    try:
        for chunk in chunks:
            items.extend(decoder.feed(chunk))
    except AmiProtocolError as exc:
        items.extend(exc.items)
        # refused for good: the next read is refused too
        with pytest.raises(AmiProtocolError):
            decoder.feed(b"Event: X\r\n\r\n")
        return items, True, decoder.skipped
    return items, False, decoder.skipped


@SETTINGS
@given(raw=_stream(_AMI_PIECES), data=st.data(), banner=st.booleans(),
       max_message=st.sampled_from([16, 64, ami.DEFAULT_MAX_MESSAGE]),
       events=st.sampled_from([None, frozenset({"Hangup"})]))
def test_ami_decoder_any_bytes_any_reads(raw: bytes, data: st.DataObject, banner: bool,
                                         max_message: int,
                                         events: frozenset[str] | None) -> None:
    """Only AmiProtocolError escapes; the items (with those riding on the
    error) and the verdict are the same however the bytes are cut."""
    whole = _ami_outcome([raw], banner=banner, max_message=max_message, events=events)
    cut = _ami_outcome(_cuts(data, raw), banner=banner, max_message=max_message, events=events)
    one_by_one = _ami_outcome([raw[i:i + 1] for i in range(len(raw))], banner=banner,
                              max_message=max_message, events=events)
    assert cut == whole
    assert one_by_one == whole
    for item in whole[0]:
        if isinstance(item, AmiMessage):
            # nothing a peer sends makes the helpers raise
            ami.parse_variables(item)
            ResponseCollector(item.action_id or "x").feed(item)
            assert item.as_dict() is not None
        elif isinstance(item, AmiFrameError):
            assert item.reason and item.raw is not None
            assert isinstance(item.bad_line, str)


@SETTINGS
@given(raw=_stream(_AMI_PIECES))
def test_ami_parse_message_never_raises(raw: bytes) -> None:
    msg = ami.parse_message(raw)
    assert isinstance(msg, AmiMessage | AmiFrameError)
    if isinstance(msg, AmiMessage):
        assert isinstance(ami.parse_variables(msg), dict)


_any_text = st.text(max_size=20) | st.text("Ev: \r\n\t\x85\u3000\udc80\ud800\u5f20", max_size=12)
_ami_keys = st.one_of(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True), _any_text)
_ami_values = st.one_of(st.text(st.characters(exclude_characters="\r\n"), max_size=30), _any_text)


@SETTINGS
@given(headers=st.lists(st.tuples(_ami_keys, _ami_values), max_size=6), data=st.data())
def test_ami_what_encodes_decodes_back(headers: list[tuple[str, str]],
                                       data: st.DataObject) -> None:
    try:
        wire = ami.encode_message(headers)
    except AmiEncodeError:
        return
    items = _ami_outcome(_cuts(data, wire), banner=False, max_message=ami.DEFAULT_MAX_MESSAGE,
                         events=None)
    assert items == ([AmiMessage(tuple(headers))], False, 0)
    assert [list(m.headers) for m in items[0] if isinstance(m, AmiMessage)] == [headers]


@SETTINGS
@given(messages=st.lists(st.lists(st.tuples(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)),
    min_size=1, max_size=5), max_size=6), data=st.data())
def test_ami_streams_of_messages_decode_at_any_chunking(
        messages: list[list[tuple[str, str]]], data: st.DataObject) -> None:
    stream = b"Asterisk Call Manager/22.0.0\r\n" + b"".join(
        ami.encode_message(m) for m in messages)
    items, refused, _ = _ami_outcome(_cuts(data, stream), banner=True,
                                     max_message=ami.DEFAULT_MAX_MESSAGE, events=None)
    assert not refused
    assert items == [ami.AmiBanner("22.0.0"), *(AmiMessage(tuple(m)) for m in messages)]


@settings(max_examples=30, deadline=None, database=None)
@given(read=st.integers(1, 256), line=st.sampled_from(
    [b"\r", b"\r\n\r", b"ChanVariable: x=yyyyyyyy\r\n", b"x", b"\r\n\r\r"]))
def test_ami_decoder_work_is_linear(read: int, line: bytes) -> None:
    """The search for a message's end looks at each byte about once,
    whatever the reads: no more than the input plus 3 bytes a read."""
    payload = (line * (200_000 // len(line) + 1))[:200_000]
    decoder = AmiDecoder(expect_banner=False, max_message=150_000)
    fed = reads = 0
    try:
        for i in range(0, len(payload), read):
            fed += len(payload[i:i + read])
            reads += 1
            decoder.feed(payload[i:i + read])
    except AmiProtocolError:
        pass
    assert decoder.searched <= fed + 3 * reads


# -------------------------------------------------------------------- AGI


def _agi_outcome(chunks: list[bytes]) -> tuple[str, AgiRequest | None, bytes]:
    """("request", request, every byte after it) / ("error"|"incomplete", None, b"")."""
    reader = RequestReader()
    for i, chunk in enumerate(chunks):
        try:
            got = reader.feed(chunk)
        except AgiProtocolError:
            with pytest.raises(AgiProtocolError):
                reader.feed(b"agi_network: yes\n\n")
            return "error", None, b""
        if got is not None:
            return "request", got[0], got[1] + b"".join(chunks[i + 1:])
    return "incomplete", None, b""


@SETTINGS
@given(raw=_stream(_AGI_PIECES), data=st.data())
def test_agi_request_reader_any_bytes_any_reads(raw: bytes, data: st.DataObject) -> None:
    whole = _agi_outcome([raw])
    assert _agi_outcome(_cuts(data, raw)) == whole
    assert _agi_outcome([raw[i:i + 1] for i in range(len(raw))]) == whole
    if whole[1] is not None:
        req = whole[1]
        # the properties and helpers of a request never raise
        assert isinstance(req.channel + req.callerid + req.calleridname + req.language, str)
        assert agi.split_script(req.env.get("agi_network_script", ""))[0] == req.script


@SETTINGS
@given(raw=_stream(_AGI_PIECES))
def test_agi_parse_request_only_its_error(raw: bytes) -> None:
    try:
        req = agi.parse_request(raw)
    except AgiProtocolError as exc:
        assert str(exc)
        return
    assert req.env


@SETTINGS
@given(raw=st.text(max_size=60) | st.text("?&=%;/+ab\u5f20", max_size=40))
def test_agi_split_script_and_tokenize_never_raise(raw: str) -> None:
    path, query = agi.split_script(raw)
    assert isinstance(path, str) and all(isinstance(v, str) for v in query.values())
    assert all(isinstance(t, str) for t in agi.tokenize(raw))


# text with what the encoders must refuse or carry: line breaks, other
# spaces, colons, lone surrogates (escaped bytes \udc80-\udcff, and others)
_odd_text = st.text("agi_x:= \t\r\n\x85\u3000\\\"\u5f20\U0001f600\udc80\udcff\ud800", max_size=12)
_agi_names = st.one_of(st.from_regex(r"agi_[a-z0-9_]{1,12}", fullmatch=True),
                       st.text(max_size=10), _odd_text)


@SETTINGS
@given(env=st.dictionaries(_agi_names, st.text(max_size=30) | _odd_text, max_size=6))
def test_agi_what_encodes_as_a_request_reads_back(env: dict[str, str]) -> None:
    try:
        wire = agi.encode_request(env)
    except AgiEncodeError:
        return
    got = RequestReader().feed(wire)
    assert got is not None
    req, rest = got
    assert rest == b""
    assert dict(req.env) == {k: v.encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace") for k, v in env.items()}


_REPLY_PIECES = ["200", " result=", "result=", "-", "1", "9" * 30, "*", "#", "A", " (", ")",
                 "(", "timeout", " endpos=", "endpos=", "520-", "520 ", "510 ", "511 ",
                 "HANGUP", "\u00b2", "\u0663", "\U0010ffff", "\ud800", " ", "\t", "\r", "\n"]
_reply_lines = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(_REPLY_PIECES) | st.text(max_size=3), max_size=12).map("".join),
    st.builds(lambda v, e: f"200 result={v} endpos={e}",
              st.integers(-10**30, 10**30), st.integers(-10**30, 10**30)),
    st.builds(lambda n: "200 result=" + "7" * n, st.integers(1000, 5000)),
)


def _reply_outcome(lines: list[str]) -> list[object]:
    parser = ReplyParser()
    out: list[object] = []
    for line in lines:
        try:
            item = parser.feed_line(line)
        except AgiProtocolError:
            out.append("error")
            continue
        if isinstance(item, AgiResult):
            # nothing in a reply makes its properties raise
            assert isinstance(item.result, int)
            assert item.digit is None or len(item.digit) == 1
            assert isinstance(item.failed, bool)
        else:
            assert item is None or isinstance(item, AgiError | AgiHangup)
        out.append(item)
    return out


@SETTINGS
@given(lines=st.lists(_reply_lines, max_size=12))
def test_agi_reply_parser_only_its_error(lines: list[str]) -> None:
    _reply_outcome(lines)


@SETTINGS
@given(value=st.one_of(st.integers(-10**25, 10**25), st.text("0123456789*#ABCD-", max_size=8),
                       st.text(max_size=5)),
       data=st.none() | st.text(max_size=30) | st.text("()\r\n endpos=1\ud800", max_size=12),
       endpos=st.none() | st.integers(-10**22, 10**22), timeout=st.booleans())
def test_agi_what_encodes_as_a_result_reads_back(value: int | str, data: str | None,
                                                 endpos: int | None, timeout: bool) -> None:
    try:
        wire = agi.encode_result(value, data, endpos=endpos, timeout=timeout)
    except AgiEncodeError:
        return
    r = ReplyParser().feed_line(wire.decode())
    assert isinstance(r, AgiResult)
    assert r.value == str(value)
    assert r.endpos == endpos
    assert r.timeout is (timeout or data == "timeout")
    assert r.data == (None if r.timeout else data)


@SETTINGS
@given(usage=st.lists(st.text(max_size=30) | st.text("520 -\r\n\x0c\ud800x", max_size=8),
                     max_size=8))
def test_agi_what_encodes_as_520_reads_back(usage: list[str]) -> None:
    try:
        wire = agi.encode_520(usage)
    except AgiEncodeError:
        return
    # (split on line feeds only: the usage text may hold other line breaks)
    out = _reply_outcome([line + "\n" for line in wire.decode().split("\n")[:-1]])
    assert out[-1] == AgiError(520, "Invalid command syntax", tuple(usage))
    assert out[:-1] == [None] * (len(usage) + 1)


@SETTINGS
@given(words=st.lists(st.text(max_size=10), min_size=1, max_size=4),
       quoted=st.lists(st.text(max_size=20) | st.text("\"\\ \t\r\n\ud800a", max_size=8),
                       max_size=3))
def test_agi_what_encodes_as_a_command_tokenizes_back(words: list[str],
                                                      quoted: list[str]) -> None:
    if any("\\" in w for w in words):
        return  # a bare word's backslash is an escape to Asterisk too
    try:
        for w in words:
            agi._check_word(w)
        wire = agi.encode_command(*words, quoted=quoted)
    except AgiEncodeError:
        return
    assert agi.tokenize(wire.decode()) == [*words, *quoted]


@settings(max_examples=20, deadline=None, database=None)
@given(read=st.integers(1, 128), tail=st.sampled_from([b"y", b"\r", b"\r\n\r", b"\n\r"]))
def test_agi_request_reader_work_is_linear(read: int, tail: bytes) -> None:
    payload = b"agi_arg_1: " + tail * (agi.MAX_HEADER_BYTES // len(tail) + 10)
    reader = RequestReader()
    fed = reads = 0
    try:
        for i in range(0, len(payload), read):
            fed += len(payload[i:i + read])
            reads += 1
            reader.feed(payload[i:i + read])
    except AgiProtocolError:
        pass
    assert reader.searched <= fed + 3 * reads


def test_agi_never_ending_520_holds_bounded_memory() -> None:
    """A million-line 520 body is refused at the cap, not kept (it was
    157 MB per million lines)."""
    parser = ReplyParser()
    assert parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n") is None
    errors = 0
    for _ in range(100_000):
        try:
            parser.feed_line("520-Invalid command syntax.  Proper usage follows:\n")
        except AgiProtocolError:
            errors += 1
    # refused once per cap's worth of lines (then a new body starts): the
    # parser never holds more than the cap
    assert errors == 1 + (100_000 - (agi.MAX_USAGE_LINES + 1)) // (agi.MAX_USAGE_LINES + 2)
    assert len(parser._usage) <= agi.MAX_USAGE_LINES


# ------------------------------------------------------------------- SMPP


@SETTINGS
@given(data=st.binary(max_size=80), dc=st.integers(-1, 300),
       tag=st.sampled_from([smpp.TLV_RECEIPTED_MESSAGE_ID, smpp.TLV_MESSAGE_STATE, 7]),
       base=st.sampled_from([None, 10, 16, 36]))
def test_smpp_decoders_never_raise(data: bytes, dc: int, tag: int, base: int | None) -> None:
    concat, payload = smpp.parse_udh(data)
    assert concat is None or len(concat) == 3
    assert isinstance(smpp.decode_short_message(payload, dc), str)
    rid, state = smpp.parse_receipt(b"id:" + data + b" stat:" + data, [(tag, data)])
    assert isinstance(rid, str) and isinstance(state, str)
    assert isinstance(smpp.normalize_id(data.decode("latin-1"), base), str)


@SETTINGS
@given(text=st.text(max_size=400) | st.text("ab{}\u20ac\u5f20\U0001f600\ud800", max_size=400),
       ref=st.integers(0, 255))
def test_smpp_split_reads_back(text: str, ref: int) -> None:
    try:
        dc, parts = smpp.split_message(text, ref)
    except ValueError:
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text) or len(text) > 255 * 67
        return
    if len(parts) == 1:
        payloads = parts
    else:
        heads = [smpp.parse_udh(p) for p in parts]
        assert [c for c, _ in heads] == [(ref, len(parts), i) for i in range(1, len(parts) + 1)]
        payloads = [p for _, p in heads]
    assert smpp.decode_short_message(b"".join(payloads), dc) == text
