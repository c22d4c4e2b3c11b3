"""AMI codec (acd/protocols/ami.py) against the real Asterisk 22 recordings,
plus malformed input and a round-trip property."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transcripts import (
    AMI_IN,
    AMI_OUT,
    ami_client_stream,
    ami_server_stream,
    file_params,
    load_blocks,
    of_kind,
)

from acd.protocols.ami import (
    AmiBanner,
    AmiDecoder,
    AmiEncodeError,
    AmiFrameError,
    AmiItem,
    AmiMessage,
    AmiProtocolError,
    ResponseCollector,
    action,
    encode,
    encode_message,
    parse_variables,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def decode_chunks(chunks: list[bytes], *, expect_banner: bool = True) -> list[AmiItem]:
    decoder = AmiDecoder(expect_banner=expect_banner)
    items: list[AmiItem] = []
    for chunk in chunks:
        items.extend(decoder.feed(chunk))
    return items


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_chunks(data: bytes, seed: str) -> list[bytes]:
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(data):
        # Mostly small reads (they cut through CRLFs and terminators), some large.
        size = rng.choice((rng.randint(1, 7), rng.randint(8, 200), rng.randint(200, 5000)))
        chunks.append(data[pos:pos + size])
        pos += size
    return chunks


def messages_only(items: list[AmiItem]) -> list[AmiMessage]:
    errors = [i for i in items if isinstance(i, AmiFrameError)]
    assert errors == []
    assert all(isinstance(i, AmiMessage) for i in items)
    return [i for i in items if isinstance(i, AmiMessage)]


def server_messages(path: Path | str) -> list[AmiMessage]:
    items = decode_chunks([ami_server_stream(load_blocks(path))])
    assert isinstance(items[0], AmiBanner)
    return messages_only(items[1:])


# ------------------------------------------------- every transcript, AMI stream


SPLITTERS = {
    "one-piece": lambda data, name: [data],
    "byte-by-byte": lambda data, name: [data[i:i + 1] for i in range(len(data))],
    "random-chunks": lambda data, name: random_chunks(data, f"ami-{name}"),
}


@pytest.mark.parametrize("path", file_params())
@pytest.mark.parametrize("how", list(SPLITTERS))
def test_server_stream_decodes_like_the_recording(path: Path, how: str) -> None:
    blocks = load_blocks(path)
    stream = ami_server_stream(blocks)
    chunks = SPLITTERS[how](stream, path.stem)
    assert b"".join(chunks) == stream
    if how != "one-piece":
        assert len(chunks) > 1

    items = decode_chunks(chunks)

    assert items[0] == AmiBanner("11.0.0")
    messages = messages_only(items[1:])
    received = of_kind(blocks, AMI_IN)
    assert len(messages) == len(received)
    for msg, block in zip(messages, received, strict=True):
        assert list(msg.headers) == block.headers, f"block at t={block.t}"


@pytest.mark.parametrize("path", file_params())
def test_chunking_does_not_change_the_messages(path: Path) -> None:
    stream = ami_server_stream(load_blocks(path))
    results = [decode_chunks(split(stream, path.stem)) for split in SPLITTERS.values()]
    assert results[0] == results[1] == results[2]
    # AmiMessage equality is by headers; check the look-up index agrees too.
    for a, b in zip(results[0][1:], results[1][1:], strict=True):
        assert isinstance(a, AmiMessage) and isinstance(b, AmiMessage)
        assert a.as_dict() == b.as_dict()


@pytest.mark.parametrize("path", file_params())
def test_empty_values_are_kept(path: Path) -> None:
    blocks = load_blocks(path)
    messages = server_messages(path)
    empties = [
        (i, key) for i, block in enumerate(of_kind(blocks, AMI_IN))
        for key, value in block.headers if value == ""
    ]
    assert empties, "every recording has 'AccountCode: ' style headers"
    for i, key in empties:
        assert key in messages[i]
        assert messages[i][key] == ""


@pytest.mark.parametrize("path", file_params())
def test_actions_decode_and_reencode_byte_identically(path: Path) -> None:
    sent = of_kind(load_blocks(path), AMI_OUT)
    assert sent, "every recording logs in"
    for block in sent:
        items = AmiDecoder(expect_banner=False).feed(block.raw)
        assert len(items) == 1
        msg = items[0]
        assert isinstance(msg, AmiMessage)
        assert list(msg.headers) == block.headers
        assert msg.action is not None
        assert encode(msg) == block.raw


@pytest.mark.parametrize("path", file_params())
def test_client_stream_byte_by_byte(path: Path) -> None:
    """The simulator's side: all actions as one stream, read a byte at a time."""
    blocks = load_blocks(path)
    stream = ami_client_stream(blocks)
    items = decode_chunks([stream[i:i + 1] for i in range(len(stream))], expect_banner=False)
    messages = messages_only(items)
    assert [list(m.headers) for m in messages] == [b.headers for b in of_kind(blocks, AMI_OUT)]
    assert b"".join(encode(m) for m in messages) == stream


# ------------------------------------------------------- specific recordings


def test_answered_redirect_action_and_success_response() -> None:
    blocks = load_blocks("answered")
    actions = [
        m for m in decode_chunks([ami_client_stream(blocks)], expect_banner=False)
        if isinstance(m, AmiMessage)
    ]
    redirect = [m for m in actions if m.action == "Redirect"]
    assert len(redirect) == 1
    assert redirect[0].action_id == "redir1"
    assert redirect[0]["context"] == "acd-connect"
    assert redirect[0]["Exten"] == "1001"
    assert redirect[0]["Priority"] == "1"
    # The builder produces exactly what went over the wire.
    rebuilt = action("Redirect", "redir1", {
        "Channel": redirect[0]["Channel"], "Context": "acd-connect",
        "Exten": "1001", "Priority": "1",
    })
    assert encode(rebuilt) == next(b.raw for b in of_kind(blocks, AMI_OUT)
                                   if b"Action: Redirect" in b.raw)

    collector = ResponseCollector("redir1")
    taken = [m for m in server_messages("answered") if collector.feed(m)]
    assert collector.done
    assert len(taken) == 1
    assert collector.response is taken[0]
    assert collector.response.response == "Success"
    assert collector.response.is_success
    assert collector.response["Message"] == "Redirect successful"
    assert collector.events == []


def test_answered_originate_variables() -> None:
    blocks = load_blocks("answered")
    originate = AmiDecoder(expect_banner=False).feed(
        next(b.raw for b in of_kind(blocks, AMI_OUT) if b"Action: Originate" in b.raw))[0]
    assert isinstance(originate, AmiMessage)
    assert originate.get_all("Variable") == ["KEYS=12", "HOLD=20"]
    assert parse_variables(originate) == {"KEYS": "12", "HOLD": "20"}
    assert originate["CallerID"] == '"Zhang" <13800138000>'


def test_rona_originate_response_failure() -> None:
    messages = server_messages("rona")
    responses = [m for m in messages if m.event == "OriginateResponse"]
    assert len(responses) == 1
    ev = responses[0]
    assert ev.action_id == "orig-rona"
    assert ev.response == "Failure"
    assert not ev.is_success
    assert ev["Reason"] == "3"
    assert ev["Uniqueid"] == "<unknown>"

    # The async Originate's immediate reply is the "queued" response; the
    # collector is done with it and does not swallow the later event.
    collector = ResponseCollector("orig-rona")
    taken = [m for m in messages if collector.feed(m)]
    assert len(taken) == 1
    assert taken[0].response == "Success"
    assert taken[0]["Message"] == "Originate successfully queued"
    assert collector.events == []


def test_coreshow_channels_collected_until_complete() -> None:
    blocks = load_blocks("coreshow")
    expected_events = sum(
        1 for b in of_kind(blocks, AMI_IN) if ("Event", "CoreShowChannel") in b.headers
    )
    assert expected_events >= 1

    collector = ResponseCollector("cs1")
    done_on: AmiMessage | None = None
    accepted = 0
    for msg in server_messages("coreshow"):
        was_done = collector.done
        if collector.feed(msg):
            accepted += 1
        if collector.done and not was_done:
            done_on = msg
    assert collector.done
    assert done_on is not None and done_on.event == "CoreShowChannelsComplete"
    assert collector.response is not None
    assert collector.response.response == "Success"
    assert collector.response.starts_event_list
    assert len(collector.events) == expected_events
    assert all(e.event == "CoreShowChannel" and e.action_id == "cs1" for e in collector.events)
    assert int(done_on["ListItems"]) == len(collector.events)
    assert accepted == 1 + expected_events + 1
    # The held caller's channel is among them, running MusicOnHold.
    assert "MusicOnHold" in [e["Application"] for e in collector.events]


def test_coreshow_collector_not_done_before_complete() -> None:
    messages = server_messages("coreshow")
    collector = ResponseCollector("cs1")
    for msg in messages:
        if msg.event == "CoreShowChannelsComplete":
            assert collector.response is not None and not collector.done
            break
        collector.feed(msg)
    else:
        pytest.fail("no CoreShowChannelsComplete in coreshow.txt")


def test_utf8_caller_name_survives_split_inside_character() -> None:
    stream = ami_server_stream(load_blocks("utf8"))
    zhang = "张".encode()
    assert len(zhang) == 3
    offset = stream.index(zhang)
    whole = decode_chunks([stream])
    for cut in (offset + 1, offset + 2):
        items = decode_chunks([stream[:cut], stream[cut:]])
        assert items == whole
        first = next(m for m in messages_only(items[1:]) if "张" in "".join(m.as_dict().values()))
        assert first["CallerIDName"] == "张三"


def test_utf8_every_multibyte_character_split() -> None:
    """Cut the stream inside every non-ASCII character at once."""
    stream = ami_server_stream(load_blocks("utf8"))
    cuts = [i for i in range(1, len(stream)) if 0x80 <= stream[i] < 0xC0]
    assert len(cuts) > 100
    messages = messages_only(decode_chunks(split_at(stream, cuts))[1:])
    names = [m["CallerIDName"] for m in messages if "CallerIDName" in m]
    assert "张三" in names
    assert all("\ufffd" not in v for m in messages for _, v in m.headers)
    assert messages == messages_only(decode_chunks([stream])[1:])


# ------------------------------------------------------------------ bad input


def test_line_without_colon_is_a_frame_error_and_stream_continues() -> None:
    data = (b"Event: Newchannel\r\nthis is not a header\r\nUniqueid: 1.1\r\n\r\n"
            b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n")
    for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
        items = decode_chunks(chunks, expect_banner=False)
        assert len(items) == 2
        err, nxt = items
        assert isinstance(err, AmiFrameError)
        # the reason names the place, not the content (callers' data in logs)
        assert err.reason == "line 2 is not 'Key: Value'"
        assert err.line == 2 and err.bad_line == "this is not a header"
        assert err.raw == b"Event: Newchannel\r\nthis is not a header\r\nUniqueid: 1.1"
        assert isinstance(nxt, AmiMessage)
        assert nxt.event == "Hangup" and nxt["Uniqueid"] == "1.1"


def test_key_with_surrounding_space_is_a_frame_error() -> None:
    items = decode_chunks([b" Event: X\r\n\r\nEvent: Y\r\n\r\n"], expect_banner=False)
    assert isinstance(items[0], AmiFrameError)
    assert items[1] == AmiMessage((("Event", "Y"),))


def test_blank_lines_between_messages_are_tolerated() -> None:
    data = b"\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n"
    for chunks in ([data], [data[i:i + 1] for i in range(len(data))]):
        items = decode_chunks(chunks, expect_banner=False)
        assert items == [AmiMessage((("Event", "A"),)), AmiMessage((("Event", "B"),))]


def test_value_colons_and_missing_space() -> None:
    items = decode_chunks([b"EventTV: 2026-11-23T19:26:31.337+0000\r\nKey:x\r\nE:\r\n\r\n"],
                          expect_banner=False)
    assert items == [AmiMessage((("EventTV", "2026-11-23T19:26:31.337+0000"),
                                 ("Key", "x"), ("E", "")))]


def test_oversized_unterminated_message_is_a_protocol_error() -> None:
    decoder = AmiDecoder(expect_banner=False, max_message=64)
    assert decoder.feed(b"Event: X\r\nData: " + b"x" * (64 - 16)) == []  # exactly 64 bytes
    with pytest.raises(AmiProtocolError, match="64"):
        decoder.feed(b"x")


def test_oversized_message_split_over_many_reads() -> None:
    decoder = AmiDecoder(expect_banner=False, max_message=1000)
    with pytest.raises(AmiProtocolError):
        for _ in range(200):
            decoder.feed(b"Variable: a=b\r\n")


def test_large_terminated_message_within_limit_is_fine() -> None:
    body = b"".join(b"ChanVariable: v%d=%d\r\n" % (i, i) for i in range(500))
    decoder = AmiDecoder(expect_banner=False)
    items = decoder.feed(b"Event: Big\r\n" + body + b"\r\n")
    assert len(items) == 1 and isinstance(items[0], AmiMessage)
    assert len(items[0].get_all("ChanVariable")) == 500


def test_wrong_banner_is_a_protocol_error() -> None:
    with pytest.raises(AmiProtocolError, match=r"SSH-2\.0"):
        AmiDecoder(expect_banner=True).feed(b"SSH-2.0-OpenSSH_9.6\r\n")


def test_wrong_banner_byte_by_byte() -> None:
    decoder = AmiDecoder(expect_banner=True)
    data = b"HTTP/1.1 400 Bad Request\r\n"
    for b in data[:-1]:
        assert decoder.feed(bytes([b])) == []
    with pytest.raises(AmiProtocolError, match="HTTP"):
        decoder.feed(data[-1:])


def test_banner_without_line_end_too_long() -> None:
    decoder = AmiDecoder(expect_banner=True, max_message=100)
    with pytest.raises(AmiProtocolError):
        decoder.feed(b"x" * 101)


def test_banner_byte_by_byte_then_message_in_same_read() -> None:
    decoder = AmiDecoder(expect_banner=True)
    for b in BANNER[:-1]:
        assert decoder.feed(bytes([b])) == []
    items = decoder.feed(BANNER[-1:] + b"Response: Success\r\n\r\n")
    assert items == [AmiBanner("11.0.0"), AmiMessage((("Response", "Success"),))]


def test_encode_refuses_line_breaks_in_values() -> None:
    for bad in ("a\r\nEvent: injected", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="Channel"):
            encode_message([("Channel", bad)])


def test_message_lookups() -> None:
    msg = AmiMessage((("Event", "VarSet"), ("Variable", "a"), ("variable", "b")))
    assert msg["EVENT"] == "VarSet"
    assert msg.get("VARIABLE") == "a"  # first value wins
    assert msg.get_all("Variable") == ["a", "b"]
    assert msg.get("missing", "d") == "d"
    assert "event" in msg and "nope" not in msg and 3 not in msg
    with pytest.raises(KeyError):
        msg["nope"]


# ---------------------------------------------------------------- property


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
_messages = st.lists(st.tuples(_keys, _values), min_size=1, max_size=6).map(
    lambda pairs: AmiMessage(tuple(pairs)))


@settings(max_examples=100, deadline=None, database=None)
@given(messages=st.lists(_messages, max_size=5), with_banner=st.booleans(), data=st.data())
def test_encoded_messages_decode_identically_at_any_chunking(
    messages: list[AmiMessage], with_banner: bool, data: st.DataObject
) -> None:
    stream = (BANNER if with_banner else b"") + b"".join(encode(m) for m in messages)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=20))
    items = decode_chunks(split_at(stream, cuts), expect_banner=with_banner)
    if with_banner:
        assert items[0] == AmiBanner("11.0.0")
        items = items[1:]
    assert [i.headers for i in messages_only(items)] == [m.headers for m in messages]


# ------------------------------------------------- hostile input (issue 13)


def test_oversized_terminated_message_in_one_read_is_a_protocol_error() -> None:
    """Cut into reads or not, a message over the cap is refused the same, and
    what came before it in that read rides on the error."""
    big = b"Event: Big\r\nData: " + b"x" * 100 + b"\r\n\r\n"
    small = b"Event: Small\r\n\r\n"
    with pytest.raises(AmiProtocolError, match="at most 64") as exc:
        AmiDecoder(expect_banner=False, max_message=64).feed(small + big + small)
    assert exc.value.items == [AmiMessage((("Event", "Small"),))]
    decoder = AmiDecoder(expect_banner=False, max_message=64)
    seen: list[AmiItem] = []
    with pytest.raises(AmiProtocolError):
        for b in small + big:
            seen.extend(decoder.feed(bytes([b])))
    assert seen == [AmiMessage((("Event", "Small"),))]


def test_message_of_exactly_max_size_whatever_the_reads() -> None:
    frame = b"Event: X\r\nData: " + b"x" * (64 - 16)
    assert len(frame) == 64
    stream = frame + b"\r\n\r\n"
    for cut in range(60, len(stream)):
        decoder = AmiDecoder(expect_banner=False, max_message=64)
        items = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert len(items) == 1 and isinstance(items[0], AmiMessage), cut


def test_decoder_refuses_again_after_a_refusal() -> None:
    decoder = AmiDecoder(expect_banner=True)
    with pytest.raises(AmiProtocolError):
        decoder.feed(b"SSH-2.0-OpenSSH_9.6\r\n")
    with pytest.raises(AmiProtocolError, match="already refused"):
        decoder.feed(b"Event: X\r\n\r\n")


def test_decoder_search_is_linear() -> None:
    """1 MiB in 64-byte reads: each byte looked at about once, not once per
    read (the quadratic decoder looked at 8 GiB to reach its cap)."""
    chunk = b"ChanVariable: x=" + b"y" * 46 + b"\r\n"
    assert len(chunk) == 64
    decoder = AmiDecoder(expect_banner=False)
    fed = reads = 0
    with pytest.raises(AmiProtocolError):
        while True:
            fed += len(chunk)
            reads += 1
            decoder.feed(chunk)
    assert fed > 1 << 20
    assert decoder.searched <= fed + 3 * reads


def test_banner_search_is_linear_and_capped() -> None:
    decoder = AmiDecoder(expect_banner=True, max_message=10_000)
    with pytest.raises(AmiProtocolError, match="greeting longer"):
        for _ in range(10_000):
            decoder.feed(b"x\r")
    assert decoder.searched <= 2 * 10_000 + 10_000


@pytest.mark.parametrize("headers", [
    [],
    [("", "x")],
    [("Ev:ent", "x")],
    [(" Event", "x")],
    [("Event\r\nAction", "x")],
    [("Event", "a\r\nAction: Originate")],
    [("Event", "\ud800")],
])
def test_encode_refuses_what_cannot_be_a_message(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(AmiEncodeError):
        encode_message(headers)


def _split_vars_reference(raw: str) -> list[str]:
    """The former (quadratic) splitter, as the reference for the new one."""
    out, chunk = [], ""
    for piece in raw.split(","):
        if chunk and "=" in piece:
            out.append(chunk)
            chunk = piece
        else:
            chunk = f"{chunk},{piece}" if chunk else piece
    if chunk:
        out.append(chunk)
    return out


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.text(alphabet=",=ab ", max_size=30))
def test_variables_split_as_before(raw: str) -> None:
    from acd.protocols.ami import _split_vars
    assert list(_split_vars(raw)) == _split_vars_reference(raw)


def test_variables_header_of_many_commas_is_linear() -> None:
    msg = AmiMessage((("Variable", "a=" + "," * 500_000 + "b=1"),))
    assert parse_variables(msg) == {"a": "," * 499_999, "b": "1"}


def test_adapter_logs_malformed_frames_masked_and_rate_limited(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A malformed frame holding a caller's number and name is logged once a
    minute with a count, its text masked (issue 13: no caller data in logs)."""
    import logging

    from acd.adapters import ami as ami_adapter
    from acd.logs import Limited, show_private

    monkeypatch.setattr(ami_adapter, "_frame_errors", Limited(60.0))
    frame = (b"Event: Newchannel\r\nCallerIDNum: 13812345678\r\n"
             b"CallerIDName \xe5\xbc\xa0\xe4\xb8\x89 \x1b[31m\r\n\r\n")
    items = decode_chunks([frame * 5], expect_banner=False)
    assert len(items) == 5 and all(isinstance(i, AmiFrameError) for i in items)
    show_private(False)
    with caplog.at_level(logging.ERROR, logger="acd.adapters.ami"):
        for item in items:
            assert isinstance(item, AmiFrameError)
            ami_adapter._log_frame_error(item)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "line 3 is not 'Key: Value'" in lines[0] and f"{len(items[0].raw)} bytes" in lines[0]
    assert "13812345678" not in lines[0] and "张三" not in lines[0]
    assert "\x1b" not in lines[0] and "\n" not in lines[0]
