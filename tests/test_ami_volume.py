"""What Asterisk's AMI volume costs the engine: events it does not act on
are dropped by the decoder before they are parsed (their name read from the
first line), and the engine's AMI client hands its consumer only the events
of ``AMI_EVENTS`` and the replies to its own actions."""

from __future__ import annotations

from pathlib import Path

from helpers import SCALE
from hypothesis import given, settings
from hypothesis import strategies as st
from transcripts import AMI_IN, load_blocks, requires_transcripts

from acd.adapters.ami import AmiClient, AmiConfig
from acd.protocols.ami import AmiDecoder, AmiFrameError, AmiMessage, parse_message
from acd.runtime.ami_events import AMI_EVENTS
from sim import CallerScript, PhoneBehaviour, SimConfig, SimPBX
from sim.testkit import AgiConn, AgiScriptServer


def test_an_event_not_acted_on_is_dropped_before_it_is_parsed() -> None:
    """A VarSet that is not even ``Key: Value`` lines goes unnoticed when
    VarSet is not wanted: it was never parsed.  Wanted, it is a frame error."""
    stream = (b"Event: VarSet\r\nthis is no header\r\n\r\n"
              b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n"
              b"Event: Newexten\r\nUniqueid: 1.1\r\n\r\n")
    lean = AmiDecoder(expect_banner=False, events=AMI_EVENTS)
    items = lean.feed(stream)
    assert [(i.event, i.get("Cause")) for i in items if isinstance(i, AmiMessage)] == [
        ("Hangup", "16")]
    assert len(items) == 1 and lean.skipped == 2
    full = AmiDecoder(expect_banner=False)
    items = full.feed(stream)
    assert isinstance(items[0], AmiFrameError) and items[0].line == 2
    assert [i.event for i in items[1:] if isinstance(i, AmiMessage)] == ["Hangup", "Newexten"]


def test_replies_to_our_actions_pass_whatever_their_name() -> None:
    """List items carry the action's ActionID: never dropped."""
    decoder = AmiDecoder(expect_banner=False, events=frozenset({"Hangup"}))
    items = decoder.feed(b"Event: CoreShowChannel\r\nActionID: 7\r\nUniqueid: 1.2\r\n\r\n"
                         b"Event: DBGetResponse\r\nFamily: acd\r\nKey: k\r\nVal: v\r\n"
                         b"ActionID: 8\r\n\r\n"
                         b"Event: CoreShowChannel\r\nUniqueid: 1.3\r\n\r\n")
    assert [(i.event, i.action_id) for i in items if isinstance(i, AmiMessage)] == [
        ("CoreShowChannel", "7"), ("DBGetResponse", "8")]
    assert decoder.skipped == 1


@requires_transcripts
def test_of_a_recorded_answered_call_the_engine_parses_one_event_in_seven() -> None:
    """answered.txt as Asterisk sent it (every class): 16 of its 114 events
    are parsed (Hangup, DialBegin/End, DeviceStateChange), the replies to
    the recording's actions too; the rest is skipped unparsed."""
    blocks = [b for b in load_blocks("answered") if b.kind == AMI_IN]
    decoder = AmiDecoder(expect_banner=False, events=AMI_EVENTS)
    out = [i for b in blocks for i in decoder.feed(b.raw)]
    events = [m for m in out if isinstance(m, AmiMessage) and m.event]
    wanted = [m for m in events if m.action_id is None]
    assert {m.event for m in wanted} == {"Hangup", "DialBegin", "DialEnd", "DeviceStateChange"}
    assert len(wanted) == 16
    assert decoder.skipped == sum(1 for b in blocks if b.raw.startswith(b"Event: ")) - len(
        events)
    assert decoder.skipped == 97


def _parse_before(raw: bytes) -> AmiMessage | AmiFrameError:
    """parse_message as it was before its hot path was tightened (issue 14):
    what it returns must not have changed."""
    text = raw.decode("utf-8", errors="replace")
    pairs: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.split("\r\n"), start=1):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            return AmiFrameError(f"line {lineno} is not 'Key: Value'", raw, lineno)
        if value.startswith(" "):
            value = value[1:]
        pairs.append((key, value))
    if not pairs:
        return AmiFrameError("empty message", raw)
    return AmiMessage(tuple(pairs))


_PIECES = [b"\r\n", b":", b": ", b" ", b"\t", b"Event: ", b"Hangup", b"uniqueid", b"UNIQUEID",
           b"\xe5\xbc\xa0", b"\xe5\xbc", b"\xff", b"\x85", b"x"]


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.lists(st.sampled_from(_PIECES) | st.binary(max_size=3), max_size=40).map(
    b"".join))
def test_parse_message_is_what_it_was(raw: bytes) -> None:
    got, before = parse_message(raw), _parse_before(raw)
    assert got == before
    assert parse_message(bytearray(raw)) == before  # the decoder passes its buffer's slice
    if isinstance(got, AmiMessage) and isinstance(before, AmiMessage):
        for key in {k.lower() for k, _ in before.headers} | {"uniqueid", "x"}:
            assert got.get(key) == before.get(key)
            assert (key in got) == (key in before)
    elif isinstance(got, AmiFrameError):
        assert type(got.raw) is bytes


async def test_the_engine_client_hands_on_only_what_it_acts_on() -> None:
    """Against a PBX sending Asterisk's whole volume (every class, no
    filter), the AMI client's consumer sees AMI_EVENTS alone."""
    async def hold(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,30"')

    seen: list[str] = []
    async with AgiScriptServer(hold) as agi:
        cfg = SimConfig(agi_url=agi.url, time_scale=SCALE, full_event_volume=True,
                        users={"acd": "s"})
        async with SimPBX(cfg) as pbx:
            pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.5, talk_s=1))
            client = AmiClient(AmiConfig(port=pbx.ami_port, secret="s", events="on",
                                         wanted_events=AMI_EVENTS),
                               lambda m: seen.append(m.event or ""))
            await client.connect()
            call = await pbx.place_call(CallerScript(patience_s=None))
            channel = ""
            while not channel:
                items = await client.send_list("CoreShowChannels")
                channel = next((m.get("Channel") for m in items
                                if m.get("Application") == "MusicOnHold"), "")
            await client.send("Redirect", {"Channel": channel, "Context": "acd-connect",
                                           "Exten": "1001", "Priority": "1"})
            await call.done
            await client.send("Ping")
            await client.close()
            sent = pbx.ami.sent
    assert set(seen) <= AMI_EVENTS
    assert {"Hangup", "DialBegin", "DialEnd", "DeviceStateChange"} <= set(seen)
    assert sent > 4 * len(seen)


def test_the_benchmark_replays_what_asterisk_sends_per_case() -> None:
    """benchmarks/ami_replay.py: the volume per answered call in each case."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "ami_replay.py"
    spec = importlib.util.spec_from_file_location("ami_replay", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["ami_replay"] = bench
    spec.loader.exec_module(bench)
    volume = bench.volume(["answered"])
    assert {case: round(n) for case, (n, _) in volume.items()} == {
        "all": 111, "classes": 47, "eventfilter": 8}
    first = bench.schedule("eventfilter", 2, 10.0, 1.0, ["answered"], 1)
    texts = [p.decode() for _, p in first]
    assert len(texts) == 16 and all(t.endswith("\r\n\r\n") for t in texts)
    # each call its own ids: call 0's caller 1800000000.0, call 1's .16
    first_call = sum("Uniqueid: 1800000000.0\r\n" in t for t in texts)
    assert first_call > 0
    assert sum("Uniqueid: 1800000000.16\r\n" in t for t in texts) == first_call
    assert not any("1795461991." in t for t in texts)
    assert any("Channel: Local/s@caller-00000010;1\r\n" in t for t in texts)
