"""Call recordings (docs/recordings.md): the core's choice of calls and
files (at each offer), the offer's file set on the caller's channel, the
dialplan's MixMonitor against the PBX simulator end to end, the
simulator's AMI MixMonitor, the retention pass and its command."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from helpers import SCALE, acd, call_record, db_url, engine_on_pbx, pbx_for_engine
from hypothesis import given
from hypothesis import strategies as st
from transcripts import AMI_IN, load_blocks, requires_transcripts

from acd.adapters.ami import AmiConfig
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    AgentLogin,
    CallerGone,
    CallQueued,
    CallRestored,
    CallStarted,
    ConnectCall,
    CoreConfig,
    Event,
    OfferAnswered,
    OfferFailed,
    RecordingRule,
    WriteCallRecord,
    civil_date,
)
from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.loaders.routing import load_policy
from acd.protocols.agi import AgiResult
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.engine import Engine
from acd.runtime.moves import PbxMoves
from acd.runtime.recordings import RecordingsConfig, prune
from acd.runtime.settings import ConfigError, EngineConfig, load_config, parse_config
from sim.config import CallerScript, Outcome, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe, hold_forever

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
DAY = 86400.0
T0 = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC).timestamp()

# ------------------------------------------------------------------ the core


def logged_in(cc: ContactCenter) -> ContactCenter:
    for agent in list(cc.agents()):
        cc.handle(AgentLogin(agent.agent_id), 0.0)
    return cc


def center(rule: RecordingRule | None, queues: tuple[str, ...] = ("billing", "tech"),
           agents: int = 2) -> ContactCenter:
    return logged_in(ContactCenter(CoreConfig(
        policy=simple_policy({q: 20.0 for q in queues}),
        agents=agents_for_queues({f"a{i}": (f"10{i:02d}", queues) for i in range(agents)}),
        recording=rule)))


def offer(cc: ContactCenter, call_id: str, queue: str, t: float,
          attributes: tuple[tuple[str, str], ...] = ()) -> ConnectCall:
    """The call started and queued at ``t``: its offer."""
    cc.handle(CallStarted(call_id, "13800138000"), t)
    out = cc.handle(CallQueued(call_id, queue, attributes=attributes), t)
    return next(a for a in out if isinstance(a, ConnectCall))


def answer(cc: ContactCenter, call_id: str, queue: str, t: float,
           attributes: tuple[tuple[str, str], ...] = ()) -> str:
    """The call started, queued, offered and answered 3 s later: the file
    its offer carried ("" = none)."""
    first = offer(cc, call_id, queue, t, attributes)
    assert cc.handle(OfferAnswered(call_id, first.offer_id), t + 3) is not None
    return first.recording


def record_of(actions: Sequence[object]) -> WriteCallRecord:
    return next(a for a in actions if isinstance(a, WriteCallRecord))


def test_the_offer_carries_the_file_of_a_configured_queue_in_a_date_folder() -> None:
    cc = center(RecordingRule("/rec/acd/", "wav", queues=frozenset({"billing"})))
    assert answer(cc, "1764667800.42", "billing", T0) \
        == "/rec/acd/2026/12/02/1764667800.42.wav"
    assert answer(cc, "c2", "tech", T0) == ""
    rec = record_of(cc.handle(CallerGone("1764667800.42"), T0 + 60)).record
    assert rec.recording == "/rec/acd/2026/12/02/1764667800.42.wav"
    assert record_of(cc.handle(CallerGone("c2"), T0 + 60)).record.recording == ""


def test_the_date_is_the_offers_in_utc() -> None:
    cc = center(RecordingRule("/r", all_calls=True))
    late = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    first = offer(cc, "c1", "billing", late)
    assert first.recording == "/r/2026/12/31/c1.wav"
    cc.handle(OfferAnswered("c1", first.offer_id), late + 5)  # answered the next day
    assert record_of(cc.handle(CallerGone("c1"), late + 60)).record.recording \
        == "/r/2026/12/31/c1.wav"


def test_no_rule_records_nothing_and_all_records_every_answered_call() -> None:
    cc = center(None)
    assert answer(cc, "c1", "billing", T0) == ""
    cc = center(RecordingRule("/r", "gsm", all_calls=True))
    assert answer(cc, "c1", "billing", T0) == "/r/2026/12/02/c1.gsm"
    assert answer(cc, "c2", "tech", T0) == "/r/2026/12/02/c2.gsm"


def test_a_class_rule_records_the_calls_of_that_customer_class() -> None:
    policy = load_policy(ROOT / "routing.example.yaml")
    agents = tuple(AgentProfile(agent_id=f"a{q}", extension=f"20{i}", skills={q: 9},
                                dialects={"mandarin": 9}, vip_qualified=True)
                   for i, q in enumerate(sorted({p.require.skill
                                                 for p in policy.queues.values()})))
    vip_only = RecordingRule("/r", classes=frozenset({"vip"}))
    cc = logged_in(ContactCenter(CoreConfig(policy=policy, agents=agents, recording=vip_only)))
    vip = answer(cc, "v1", "billing", T0, (("vip_level", "3"), ("dialect", "mandarin")))
    assert vip == "/r/2026/12/02/v1.wav"
    assert answer(cc, "s1", "tech", T0) == ""  # standard class
    standard = RecordingRule("/r", classes=frozenset({"standard"}))
    cc = logged_in(ContactCenter(CoreConfig(policy=policy, agents=agents, recording=standard)))
    assert answer(cc, "s1", "tech", T0) == "/r/2026/12/02/s1.wav"


def test_the_file_name_keeps_only_safe_characters_of_the_call_id() -> None:
    rule = RecordingRule("/r", "wav", all_calls=True)
    assert rule.file("pbx2:1733.5/../x y", T0) == "/r/2026/12/02/pbx2-1733.5-..-x-y.wav"
    assert rule.file("..", T0) == "/r/2026/12/02/call.wav"
    assert RecordingRule("/", "wav").file("c", 0) == "/1970/01/01/c.wav"


@given(st.integers(min_value=-2 * 10**13, max_value=25 * 10**13))
def test_civil_date_is_the_utc_calendar_date(ms: int) -> None:
    d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    assert civil_date(ms / 1000) == (d.year, d.month, d.day)


def test_the_record_names_the_file_only_when_an_offer_was_answered() -> None:
    """An offer the caller hangs up on while it rings records nothing: the
    dialplan starts MixMonitor only as the agent answers."""
    cc = center(RecordingRule("/r", queues=frozenset({"billing"})))
    ringing = offer(cc, "c1", "billing", T0)
    assert ringing.recording == "/r/2026/12/02/c1.wav"
    call = cc.call("c1")
    assert call is not None and call.recording == ""
    rec = record_of(cc.handle(CallerGone("c1"), T0 + 10)).record
    assert rec.outcome.value == "abandoned" and rec.recording == ""


def test_ring_no_answer_then_an_answer_names_one_file() -> None:
    """The first offer rings out (RONA); the next, to another agent, is
    answered: both carried the same name (same call id), the record names it
    once."""
    cc = center(RecordingRule("/r", all_calls=True))
    first = offer(cc, "c1", "billing", T0)
    out = cc.handle(OfferFailed("c1", first.offer_id, "NOANSWER"), T0 + 20)
    call = cc.call("c1")
    assert call is not None and call.recording == ""  # not answered: nothing kept
    second = next(a for a in out if isinstance(a, ConnectCall))
    assert second.agent_id != first.agent_id and second.offer_id != first.offer_id
    assert second.recording == first.recording == "/r/2026/12/02/c1.wav"
    cc.handle(OfferAnswered("c1", second.offer_id), T0 + 23)
    rec = record_of(cc.handle(CallerGone("c1"), T0 + 60)).record
    assert (rec.agent_id, rec.recording) == (second.agent_id, "/r/2026/12/02/c1.wav")


def test_a_call_restored_connected_keeps_its_recording_and_offers_nothing() -> None:
    cc = center(RecordingRule("/r", all_calls=True))
    out = cc.handle(CallRestored("c1", "138", started_at=T0, queue="billing", queued_at=T0,
                                 agent_id="a0", answered_at=T0 + 5, offer_id=7,
                                 recording="/r/2026/12/02/c1.wav"), T0 + 30)
    assert not [a for a in out if isinstance(a, ConnectCall)]
    rec = record_of(cc.handle(CallerGone("c1"), T0 + 60)).record
    assert rec.recording == "/r/2026/12/02/c1.wav"


def test_a_call_restored_ringing_keeps_its_offers_file_if_that_offer_is_answered() -> None:
    cc = center(RecordingRule("/r", all_calls=True))
    cc.handle(CallRestored("c1", "138", started_at=T0, queue="billing", queued_at=T0,
                           agent_id="a0", offer_id=7, recording="/r/2026/12/02/c1.wav"), T0 + 30)
    cc.handle(OfferAnswered("c1", 7), T0 + 31)
    assert record_of(cc.handle(CallerGone("c1"), T0 + 60)).record.recording \
        == "/r/2026/12/02/c1.wav"


async def test_the_recording_survives_the_spool_the_database_and_calls_live(
        tmp_path: Path) -> None:
    from acd.adapters.rows import fit_item, from_json, to_json
    from acd.adapters.storage import Database
    from acd.runtime.continuity import live_row, restored

    cc = center(RecordingRule("/r", all_calls=True))
    ringing = offer(cc, "c1", "billing", T0)
    call = cc.call("c1")
    assert call is not None
    row = live_row(call, T0 + 1)  # ringing: the offer's file, kept across a restart
    assert row is not None and row.state == "offered" and row.recording == ringing.recording
    cc.handle(OfferAnswered("c1", ringing.offer_id), T0 + 3)
    row = live_row(call, T0 + 5)
    assert row is not None and row.recording == "/r/2026/12/02/c1.wav"
    rec = record_of(cc.handle(CallerGone("c1"), T0 + 60)).record
    for item in (row, rec):
        assert from_json(to_json(item)) == item
        assert fit_item(item) == (item, [])
    long = replace(rec, recording="/r/" + "x" * 600)
    fitted, changed = fit_item(long)
    assert changed == ["recording"] and len(fitted.recording) == 512  # type: ignore[union-attr]
    db = Database(db_url(tmp_path))
    await db.create()
    try:
        await db.write_batch([], [], (), [row])
        [back] = await db.live_calls()
        assert back.recording == row.recording
        other = center(None)
        other.handle(restored(back, state="connected"), T0 + 30)
        assert record_of(other.handle(CallerGone("c1"), T0 + 60)).record.recording \
            == row.recording
        gone = center(None)  # the PBX says it rang out meanwhile: back to waiting
        gone.handle(restored(back, state="waiting"), T0 + 30)
        waiting = gone.call("c1")
        assert waiting is not None and waiting.offer_recording == ""
        await db.write_batch([rec, replace(rec, call_id="c2", recording="")], [], ())
        assert (await db.call("c1") or {})["recording"] == "/r/2026/12/02/c1.wav"
        assert (await db.call("c2") or {})["recording"] is None  # not recorded: NULL
    finally:
        await db.dispose()


# ------------------------------------------------------------------ the moves


class FakeAmi:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send(self, action: str, fields: dict[str, str] | None = None) -> AmiMessage:
        self.sent.append((action, dict(fields or {})))
        return AmiMessage((("Response", "Success"),))


@pytest.mark.parametrize(("recordings", "file", "expected"), [
    (True, "/r/2026/12/02/c1.wav", [("ACD_RECORDING", "/r/2026/12/02/c1.wav")]),
    (True, "", [("ACD_RECORDING", "")]),  # clears an earlier offer's file
    (False, "", []),  # no recordings configured: no Setvar more than before
])
async def test_the_offers_file_is_set_with_the_other_variables_before_the_redirect(
        recordings: bool, file: str, expected: list[tuple[str, str]]) -> None:
    calls, sink = CallRegistry(), []
    calls.add(LiveCall("c1", "PJSIP/trunk-1"))
    fake = FakeAmi()
    moves = PbxMoves(fake, calls, CallReports(calls, sink.append), "acd-connect",
                     recordings=recordings)
    await moves.connect(ConnectCall("c1", 5, "a1", "1001", "PJSIP/trunk-1", "pbx1", 15,
                                    recording=file))
    assert [(f["Variable"], f["Value"]) for a, f in fake.sent if a == "Setvar"] == [
        ("ACD_OFFER", "5"), ("ACD_RING_TIMEOUT", "15"), *expected]
    assert [a for a, _ in fake.sent][-1] == "Redirect"  # all in one batch, the move last
    assert sink == []


# -------------------------------------------------------------- the settings


def settings(tmp_path: Path, recordings: object) -> EngineConfig:
    data = yaml.safe_load((ROOT / "acd.example.yaml").read_text())
    data["recordings"] = recordings
    return parse_config(data, "acd.yaml", ROOT)


def test_settings_read_the_rule_and_refuse_bad_values(tmp_path: Path) -> None:
    cfg = settings(tmp_path, {"queues": ["billing"], "dir": "/mnt/rec/", "format": "wav16",
                              "retention_days": 30, "local_dir": "rec"})
    r = cfg.recordings
    assert r is not None and cfg.core.recording is r.rule
    assert (r.rule.folder, r.rule.file_format, r.rule.queues, r.retention_days,
            r.local_dir) == ("/mnt/rec", "wav16", frozenset({"billing"}), 30.0,
                             str(ROOT / "rec"))
    assert settings(tmp_path, {"classes": "all"}).core.recording.all_calls  # type: ignore[union-attr]
    for bad, where in [({"queues": ["nope"]}, "recordings.queues[0]: unknown queue 'nope'"),
                       ({"dir": "spool/acd"}, "recordings.dir"),
                       ({"dir": "/a/../etc"}, "recordings.dir"),
                       ({"dir": "/a,b"}, "recordings.dir"),
                       ({"format": "mp3"}, "recordings.format: unknown format 'mp3'"),
                       # MixMonitor's options are the dialplan's, not a setting
                       ({"options": "b"}, "recordings.options: unknown key"),
                       ({"retention_days": 0}, "recordings.retention_days"),
                       ({"queue": ["billing"]}, "recordings.queue: unknown key")]:
        with pytest.raises(ConfigError, match=where.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
            settings(tmp_path, bad)


def small_config(tmp_path: Path, recordings: str) -> Path:
    """An acd.yaml of the basic flow's three queues and ``recordings``."""
    conf = tmp_path / "acd.yaml"
    conf.write_text(f"flow: {ROOT}/ivr_flows/basic.yaml\n"
                    "queues: [{name: billing}, {name: tech}, {name: general}]\n"
                    f"recordings:\n{recordings}")
    return conf


def test_a_bad_value_in_a_file_is_placed_at_its_line_and_column(tmp_path: Path) -> None:
    conf = small_config(tmp_path, "  queues: [billing]\n  format: mp3\n")
    with pytest.raises(ConfigError, match=r"acd\.yaml:5:11: recordings\.format: unknown format"):
        load_config(conf)
    conf = small_config(tmp_path, "  queues: [billing, nope]\n")
    with pytest.raises(ConfigError, match=r"acd\.yaml:4:21: recordings\.queues\[1\]: unknown"):
        load_config(conf)


# ------------------------------------------------------------ the retention


def old(path: Path, days: float, data: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    t = time.time() - days * DAY
    os.utime(path, (t, t), follow_symlinks=False)
    return path


def test_prune_deletes_old_recordings_keeps_new_ones_and_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "monitor" / "acd"
    gone = [old(root / "2026/08/01/c1.wav", 120), old(root / "2026/08/02/c2.wav", 95)]
    kept = [old(root / "2026/11/30/c3.wav", 2), old(root / "2026/08/01/notes.txt", 300),
            old(root / "2026/08/03/c4.wav", 80)]
    outside = old(tmp_path / "elsewhere" / "secret.wav", 400)
    outside_dir = old(tmp_path / "elsewhere2" / "2020" / "x.wav", 400)
    (root / "link.wav").symlink_to(outside)
    os.utime(root / "link.wav", (0, 0), follow_symlinks=False)  # an old link: still left alone
    (root / "2019").symlink_to(outside_dir.parent, target_is_directory=True)
    (root / "empty-old").mkdir()
    dry = prune(root, time.time() - 90 * DAY, dry_run=True)
    assert sorted(dry.deleted) == ["2026/08/01/c1.wav", "2026/08/02/c2.wav"]
    assert all(p.exists() for p in gone)
    res = prune(root, time.time() - 90 * DAY)
    assert sorted(res.deleted) == ["2026/08/01/c1.wav", "2026/08/02/c2.wav"]
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    assert outside.exists() and outside_dir.exists()
    assert (root / "link.wav").is_symlink() and (root / "2019").is_symlink()
    assert not (root / "2026/08/02").exists()  # emptied by the pass: removed
    assert (root / "2026/08/01").exists() and root.exists()
    assert (res.links, res.errors, res.more, res.bytes) == (2, 0, False, 8)
    assert "deleted 2 recordings" in res.line() and "2 symbolic links left alone" in res.line()


def test_prune_stops_at_its_bound_and_the_next_pass_goes_on(tmp_path: Path) -> None:
    for i in range(7):
        old(tmp_path / f"d{i % 2}" / f"c{i}.wav", 100)
    first = prune(tmp_path, time.time() - 90 * DAY, max_files=5)
    assert len(first.deleted) == 5 and first.more
    second = prune(tmp_path, time.time() - 90 * DAY, max_files=5)
    assert len(second.deleted) == 2 and not second.more
    assert list(tmp_path.iterdir()) == []


def test_prune_never_enters_the_folder_of_a_link_given_below(tmp_path: Path) -> None:
    """A folder swapped for a link to / (say) between two passes: not entered."""
    target = tmp_path / "victim"
    old(target / "keep.wav", 500)
    root = tmp_path / "rec"
    root.mkdir()
    (root / "2026").symlink_to(target, target_is_directory=True)
    res = prune(root, time.time())
    assert res.deleted == [] and (target / "keep.wav").exists()


def test_acd_recordings_prune_runs_one_pass(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    a = old(root / "2026/01/01/c1.wav", 100)
    b = old(root / "2026/12/01/c2.wav", 1)
    conf = small_config(tmp_path, f"  queues: all\n  retention_days: 90\n  local_dir: {root}\n")
    dry = acd("recordings", "prune", "--config", str(conf), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2026/01/01/c1.wav" in dry.output and "would delete 1 recordings" in dry.output
    assert a.exists()
    res = acd("recordings", "prune", "--config", str(conf))
    assert res.exit_code == 0, res.output
    assert "deleted 1 recordings" in res.output
    assert not a.exists() and b.exists()
    conf = small_config(tmp_path, "  queues: all\n")
    res = acd("recordings", "prune", "--config", str(conf))
    assert res.exit_code == 2 and "recordings.local_dir" in res.output


def test_acd_recordings_check_names_the_records_whose_file_is_missing(tmp_path: Path) -> None:
    from acd.adapters.storage import Database
    from acd.core.model import CallRecord
    from acd.core.model import Outcome as Ended

    root = tmp_path / "rec"
    now = time.time()

    def rec(call_id: str, days: float, recording: str) -> CallRecord:
        t = now - days * DAY
        return CallRecord(call_id, "13800138000", "", t, t + 60, Ended.ANSWERED, (),
                          "billing", t + 5, 5.0, "a1", t + 10, 50.0, 1, "pbx1",
                          recording=recording)

    old(root / "2026/12/01/here.wav", 1, b"RIFF....")
    old(root / "2026/12/01/empty.wav", 1, b"")
    records = [rec("here", 1, "/r/2026/12/01/here.wav"),
               rec("gone", 1, "/r/2026/12/01/gone.wav"),        # never written
               rec("empty", 1, "/r/2026/12/01/empty.wav"),      # MixMonitor wrote nothing
               rec("aged", 100, "/r/2026/08/01/aged.wav"),      # past retention: deleted
               rec("other", 1, "/elsewhere/x.wav"),
               rec("none", 1, ""),                               # not recorded
               rec("before", 20, "/r/2026/11/01/before.wav")]   # before --since
    url = db_url(tmp_path)

    async def write() -> None:
        db = Database(url)
        await db.create()
        try:
            await db.write_batch(records, [])
        finally:
            await db.dispose()

    asyncio.run(write())
    conf = small_config(tmp_path, f"  queues: all\n  dir: /r\n  retention_days: 90\n"
                                  f"  local_dir: {root}\n")
    conf.write_text(conf.read_text() + f"database: {url}\n")
    since = dt.datetime.fromtimestamp(now - 120 * DAY, dt.UTC).strftime("%Y-%m-%d")
    res = acd("recordings", "check", "--config", str(conf), "--since", since, "--tz", "UTC")
    assert res.exit_code == 1, res.output
    missing = [line for line in res.output.splitlines() if line.startswith("missing:")]
    assert sorted(m.split()[2] for m in missing) == ["before", "empty", "gone"]
    assert "/r/2026/12/01/gone.wav" in res.output
    assert ("6 records name a recording; 1 present in " in res.output
            and "3 missing, 1 past retention_days" in res.output
            and "1 under another folder" in res.output), res.output
    # the default span is the last 7 days: 'before' (20 days) and 'aged' are out of it
    res = acd("recordings", "check", "--config", str(conf))
    assert res.exit_code == 1 and "4 records name a recording" in res.output, res.output
    for f in ("gone", "empty"):
        old(root / f"2026/12/01/{f}.wav", 1, b"RIFF....")
    res = acd("recordings", "check", "--config", str(conf))
    assert res.exit_code == 0 and "0 missing" in res.output, res.output
    res = acd("recordings", "check", "--config", str(small_config(tmp_path, "  queues: all\n")))
    assert res.exit_code == 2 and "recordings.local_dir" in res.output


# -------------------------------------------------------------- the simulator


@pytest.fixture
async def agi() -> AsyncIterator[AgiScriptServer]:
    async with AgiScriptServer(hold_forever) as server:
        yield server


@pytest.fixture
def pbx_config(agi: AgiScriptServer, tmp_path: Path) -> SimConfig:
    return SimConfig(agi_url=agi.url, time_scale=SCALE, monitor_dir=str(tmp_path / "monitor"))


def recorded_mixmonitor() -> list[AmiMessage]:
    """What the real Asterisk 22 said to MixMonitor and StopMixMonitor
    (mixmonitor.txt), in order: responses and events."""
    return [AmiMessage(tuple(b.headers)) for b in load_blocks("mixmonitor.txt")
            if b.kind == AMI_IN]


@requires_transcripts
async def test_the_simulator_answers_mixmonitor_as_asterisk_22_does(
        pbx: SimPBX, ami: AmiProbe, tmp_path: Path) -> None:
    real = recorded_mixmonitor()
    real_start = next(m for m in real if m.event == "MixMonitorStart")
    real_stop = next(m for m in real if m.event == "MixMonitorStop")
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    for fields, message in [({"File": "x.wav"}, "No channel specified"),
                            ({"Channel": "PJSIP/nope-00000000", "File": "x.wav"},
                             "No such channel"),
                            ({"Channel": call.channel}, "Could not start monitoring channel")]:
        bad = await ami.action("MixMonitor", fields)
        assert (bad.response, bad.get("Message")) == ("Error", message)
    recorded_errors = {m.get("Message") for m in real if m.response == "Error"}
    assert recorded_errors == {"No channel specified", "No such channel",
                               "Could not stop monitoring channel"}  # the texts here
    bad = await ami.action("StopMixMonitor", {"Channel": call.channel})
    assert (bad.response, bad.get("Message")) == ("Error", "Could not stop monitoring channel")
    aid = ami.send("MixMonitor", {"Channel": call.uniqueid, "File": "acd/t/x.wav49",
                                  "Options": ""})
    ok = await ami.response(aid)
    assert [k for k, _ in ok.headers] == ["Response", "ActionID"]  # no Message, as recorded
    assert ok.response == "Success"
    file = f"{tmp_path}/monitor/acd/t/x.WAV"  # relative: under the monitor folder
    varset = await ami.wait_event("VarSet", Variable="MIXMONITOR_FILENAME")
    assert (varset.get("Privilege"), varset.get("Value")) == ("dialplan,all", file)
    start = await ami.wait_event("MixMonitorStart", Uniqueid=call.uniqueid)
    # the response first, then VarSet, then MixMonitorStart (mixmonitor.txt)
    order = [ami.messages.index(m) for m in (ok, varset, start)]
    assert order == sorted(order)
    assert [k for k, _ in start.headers] == [k for k, _ in real_start.headers]
    assert start.get("Privilege") == real_start.get("Privilege") == "call,all"
    assert start.get("Channel") == call.channel
    with wave.open(file, "rb") as w:  # created at once: an empty WAV for now
        assert w.getnframes() == 0
    raw = f"{tmp_path}/monitor/abs/y"  # absolute, no extension: y.raw
    ok = await ami.action("MixMonitor", {"Channel": call.channel, "File": raw,
                                         "Options": "bi(MID)"})
    assert ok.get("MixMonitorID") and ok.response == "Success"
    ok = await ami.action("StopMixMonitor", {"Channel": call.channel})
    assert [k for k, _ in ok.headers] == ["Response", "ActionID"]
    stop = await ami.wait_event("MixMonitorStop", Uniqueid=call.uniqueid)
    assert [k for k, _ in stop.headers] == [k for k, _ in real_stop.headers]
    first, second = pbx.ami.monitors.recordings
    assert second.stopped and second.written == raw + ".raw"
    assert os.path.getsize(raw + ".raw") == 0  # noqa: ASYNC240 - b, never bridged: no audio
    call.hangup()
    await call.done
    await ami.drain(0.1)
    assert sum(m.event == "MixMonitorStop" for m in ami.messages) == 1  # none at the hang-up
    assert first.written == file and not first.stopped
    with wave.open(file, "rb") as w:  # without b: the whole time since the start
        assert w.getnframes() > 0 and (w.getframerate(), w.getsampwidth()) == (8000, 2)


async def test_mixmonitor_needs_the_system_write_class(agi: AgiScriptServer) -> None:
    cfg = SimConfig(agi_url=agi.url, time_scale=SCALE)
    cfg.use_manager_conf(ROOT / "asterisk_conf" / "manager.conf")  # write = call,...
    async with SimPBX(cfg) as pbx:
        probe = await AmiProbe.connect(pbx.ami_port)
        await probe.action("Login", {"Username": "acd", "Secret": "acdsecret"})
        call = await pbx.place_call(CallerScript(patience_s=None))
        for _ in range(100):
            if pbx.channels.find(call.channel) is not None:
                break
            await asyncio.sleep(0.02)
        bad = await probe.action("MixMonitor", {"Channel": call.channel, "File": "x.wav"})
        assert (bad.response, bad.get("Message")) == ("Error", "Permission denied")
        call.hangup()
        await call.done
        await probe.close()
    assert pbx.ami.monitors.recordings == []


async def test_the_dialplan_applications_execif_and_mixmonitor(tmp_path: Path) -> None:
    """``ExecIf`` (app_exec.c) and ``MixMonitor`` (app_mixmonitor.c) as
    dialplan applications (here through AGI ``EXEC``, which runs the same
    applications): a false condition runs nothing; a true one starts
    MixMonitor on the channel (``MIXMONITOR_FILENAME``, the file created at
    once); no file is -1; an unknown application is -1."""
    seen: list[tuple[str, int]] = []

    async def script(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        for cmd in ('EXEC ExecIf "0?MixMonitor(/x/no.wav,b)"',
                    'EXEC ExecIf "1?MixMonitor(acd/2026/12/02/c1.wav,b)"',
                    'EXEC ExecIf "1?NoSuchApp(x)"', 'EXEC MixMonitor ",b"'):
            reply = await conn.command(cmd)
            assert isinstance(reply, AgiResult)
            seen.append((cmd, reply.result))
        await conn.command("HANGUP")

    async with AgiScriptServer(script) as server, SimPBX(SimConfig(
            agi_url=server.url, time_scale=SCALE,
            monitor_dir=str(tmp_path / "monitor"))) as pbx:
        call = await pbx.place_call(CallerScript(patience_s=None))
        await asyncio.wait_for(call.done, 10)
    assert [r for _, r in seen] == [0, 0, -1, -1]
    [mon] = pbx.monitors.recordings
    assert mon.file == f"{tmp_path}/monitor/acd/2026/12/02/c1.wav" and mon.bridged_only
    assert mon.written == mon.file and wav_seconds(mon.file) == 0  # b: never bridged


# ------------------------------------------------------ engine + simulator


def engine_config(tmp_path: Path, phones: dict[str, PhoneBehaviour],
                  queues: frozenset[str] = frozenset({"billing"}),
                  local: bool = False, ring_s: float = 5.0,
                  rona_pause_s: float | None = None) -> EngineConfig:
    folder = tmp_path / "monitor" / "acd"
    policy = simple_policy({q: ring_s for q in sorted(FLOW.queues)})
    agents = agents_for_queues({f"a{ext}": (ext, tuple(policy.queues)) for ext in phones})
    rule = RecordingRule(str(folder), "wav", queues=queues)
    return EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05,
                        rona_pause_s=rona_pause_s, recording=rule),
        flow=FLOW, ami=AmiConfig(username="acd", secret="test-secret"),
        database_url=db_url(tmp_path),
        recordings=RecordingsConfig(rule, retention_days=90,
                                    local_dir=str(folder) if local else None))


@asynccontextmanager
async def system(tmp_path: Path, phones: dict[str, PhoneBehaviour], *,
                 queues: frozenset[str] = frozenset({"billing"}), local: bool = False,
                 ring_s: float = 5.0, rona_pause_s: float | None = None,
                 ) -> AsyncIterator[tuple[SimPBX, Engine, Path]]:
    """Agents ``a<ext>`` in every queue; recordings of ``queues`` to
    ``<tmp>/monitor/acd``, the simulator's monitor folder ``<tmp>/monitor``;
    the shipped manager.conf's write classes (no ``system``), eventfilter
    and channelvars."""
    monitor = tmp_path / "monitor"
    folder = monitor / "acd"
    cfg = engine_config(tmp_path, phones, queues, local, ring_s, rona_pause_s)
    pbx = pbx_for_engine(monitor_dir=str(monitor))
    pbx.use_manager_conf(ROOT / "asterisk_conf" / "manager.conf")
    async with engine_on_pbx(cfg, pbx=pbx, phones=phones) as (sim, engine):
        yield sim, engine, folder


def billing(**kw: object) -> CallerScript:
    return CallerScript(keys=["", "1"], patience_s=30, key_delay_s=0.02, **kw)  # type: ignore[arg-type]


def wav_seconds(path: str) -> float:
    with wave.open(path, "rb") as w:  # a real, valid WAV
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return w.getnframes() / 8000


async def test_an_answered_call_is_recorded_by_the_dialplan_with_the_shipped_manager_conf(
        tmp_path: Path) -> None:
    """No AMI MixMonitor (the shipped manager.conf grants no ``system``):
    the offer's file goes in ACD_RECORDING, ``[acd-answered]`` runs
    MixMonitor(<file>,b) on the agent's channel; the WAV holds the bridged
    time; the record names it."""
    phones = {"1001": PhoneBehaviour(answer_after_s=0.3, talk_s=0.6)}
    events: list[AmiMessage] = []
    async with system(tmp_path, phones) as (pbx, engine, folder):
        pbx.add_event_listener(events.append)
        h = await pbx.place_call(billing())
        res = await asyncio.wait_for(h.done, 15)
        rec = await call_record(engine, res.uniqueid)
        monitors = list(pbx.monitors.recordings)
    assert res.outcome is Outcome.TALKED and rec["outcome"] == "answered"
    assert pbx.ami.actions["mixmonitor"] == 0  # nothing over AMI
    [mon] = monitors
    leg = next(m["DestUniqueid"] for m in events if m.event == "DialBegin")
    assert mon.uniqueid == leg != res.uniqueid and mon.channel.startswith("PJSIP/1001-")
    assert mon.options == "b" and mon.bridged_only
    start = dt.datetime.fromtimestamp(rec["started_at"].timestamp(), dt.UTC)
    end = dt.datetime.fromtimestamp(rec["ended_at"].timestamp(), dt.UTC)
    names = {str(folder / f"{d:%Y/%m/%d}" / f"{res.uniqueid}.wav") for d in (start, end)}
    assert rec["recording"] in names  # the offer's date (midnight UTC: either)
    assert rec["recording"] == mon.file == mon.written
    # the bridged time only (no ringing, no music): the talk, both parties
    assert wav_seconds(rec["recording"]) == pytest.approx(mon.duration_s, abs=0.01)
    assert mon.duration_s == pytest.approx(res.talk_s, abs=0.1)
    assert mon.duration_s == pytest.approx(0.6, abs=0.25)
    steps = [(m["Application"], m["AppData"]) for m in events
             if m.event == "Newexten" and m["Uniqueid"] == leg and m["Context"] == "acd-answered"]
    assert steps[1] == ("ExecIf", f"1?MixMonitor({rec['recording']},b)")
    assert engine.counters.errors == 0


async def test_a_queue_not_configured_is_not_recorded(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with system(tmp_path, phones) as (pbx, engine, folder):
        h = await pbx.place_call(CallerScript(keys=["", "2"], patience_s=30, key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 15)
        rec = await call_record(engine, res.uniqueid)
    assert res.outcome is Outcome.TALKED and rec["queue"] == "tech"
    assert rec["recording"] is None
    assert pbx.monitors.recordings == [] and not folder.exists()


async def test_ring_no_answer_then_an_answer_records_one_file_of_the_bridged_time(
        tmp_path: Path) -> None:
    """The agent's phone rings out once (RONA: nothing recorded), then
    answers the next offer: one recording, of the conversation only."""
    phones = {"1001": PhoneBehaviour(answers=False, talk_s=0.5)}
    failed: list[Event] = []

    def listen(event: Event, actions: object, now: float, started_ns: int) -> None:
        if isinstance(event, OfferFailed):
            failed.append(event)

    async with system(tmp_path, phones, ring_s=1.0, rona_pause_s=0.2) as (pbx, engine, _):
        engine.listeners.append(listen)
        h = await pbx.place_call(billing())
        for _ in range(300):
            if failed:
                break
            await asyncio.sleep(0.02)
        assert failed, "the first offer never rang out"
        phone = pbx.phones.get("1001")
        assert phone is not None
        phone.behaviour.answers = True
        phone.behaviour.answer_after_s = 0.05
        res = await asyncio.wait_for(h.done, 15)
        rec = await call_record(engine, res.uniqueid)
        monitors = list(pbx.monitors.recordings)
    assert res.outcome is Outcome.TALKED and rec["offers"] == 2
    [mon] = monitors  # the ring-no-answer attempt recorded nothing
    assert rec["recording"] == mon.written and mon.written.endswith(f"/{res.uniqueid}.wav")
    assert wav_seconds(mon.written) == pytest.approx(0.5, abs=0.25)


async def test_the_engine_retention_task_prunes_the_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "monitor" / "acd"
    stale = old(folder / "2026/01/01/old.wav", 200)
    fresh = old(folder / "2026/12/01/new.wav", 1)
    async with system(tmp_path, {"1001": PhoneBehaviour()}, local=True) as (_, engine, _f):
        assert engine.retention is not None
        for _ in range(100):
            if engine.retention.passes:
                break
            await asyncio.sleep(0.02)
    assert engine.retention.passes >= 1 and engine.retention.deleted == 1
    assert not stale.exists() and fresh.exists()


async def test_a_connected_call_taken_over_after_a_restart_keeps_its_recording(
        tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=3.0)}
    cfg = engine_config(tmp_path, phones)
    sim = SimPBX(pbx_for_engine(monitor_dir=str(tmp_path / "monitor")))
    await sim.start()
    try:
        sim.add_phone("1001", phones["1001"])
        first = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=sim.ami_port)))
        await first.start()
        sim.cfg.agi_url = f"agi://127.0.0.1:{first.agi.port}"
        h = await sim.place_call(billing())
        for _ in range(250):
            if sim.monitors.recordings:
                break
            await asyncio.sleep(0.02)
        await first.stop()  # the call in progress is left to the next engine
        second = Engine(replace(cfg, agi_port=0, ami=replace(cfg.ami, port=sim.ami_port)))
        await second.start()
        try:
            res = await asyncio.wait_for(h.done, 15)
            rec = await call_record(second, res.uniqueid)
        finally:
            await second.stop()
    finally:
        await sim.stop()
    assert res.outcome is Outcome.TALKED and second.restored is not None
    assert second.restored.talking == 1
    [mon] = sim.monitors.recordings  # recorded once, as the agent answered
    assert rec["outcome"] == "answered" and rec["recording"] == mon.written
    assert mon.written is not None and mon.written.endswith(f"/{res.uniqueid}.wav")


@pytest.mark.slow
async def test_fault_calls_and_records_agree_with_the_files(tmp_path: Path) -> None:
    """20 calls (billing recorded, tech not; some callers hang up while
    queued, ringing or talking; one phone never answers, so offers ring out
    and go to the others); the AMI link drops once, right after a Redirect
    (carried out, its answer lost): every call has one record; every file
    written is named by its own call's record, and every file a record names
    exists with the bridged length."""
    phones = {str(1001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.5) for i in range(3)}
    phones["1004"] = PhoneBehaviour(answers=False)
    async with system(tmp_path, phones, ring_s=1.0, rona_pause_s=0.3) as (pbx, engine, folder):
        pbx.drop_ami_after("redirect")
        handles = []
        for i in range(20):
            keys = ["", "1"] if i % 3 else ["", "2"]
            hang = 0.6 if i % 5 == 0 else None
            handles.append(await pbx.place_call(CallerScript(
                keys=keys, patience_s=60, key_delay_s=0.02, hangup_after_s=hang)))
            await asyncio.sleep(0.05)
        results = [await asyncio.wait_for(h.done, 60) for h in handles]
        recs = {r.uniqueid: await call_record(engine, r.uniqueid, timeout=10) for r in results}
        await engine.writer.drain()
        all_rows = await engine.db.calls()
        monitors = list(pbx.monitors.recordings)
    assert len(all_rows) == len(results) == 20  # one record per call, no more
    assert engine.counters.calls_finished == 20
    assert pbx.ami.dropped_after == ["redirect"] and pbx.ami.actions["mixmonitor"] == 0
    answered_billing = {r.uniqueid for r in results
                        if recs[r.uniqueid]["outcome"] == "answered"
                        and recs[r.uniqueid]["queue"] == "billing"}
    assert answered_billing
    named = {recs[u]["recording"]: u for u in answered_billing}
    assert None not in named and len(named) == len(answered_billing)
    written = {m.written: m for m in monitors if m.written is not None}
    assert len(monitors) == len(written) == len(named)  # one file per recorded call
    assert set(named) == set(written)
    for file, uid in named.items():  # each file its own call's, with the bridged length
        assert file.endswith(f"/{uid}.wav") and file.startswith(f"{folder}/")
        assert wav_seconds(file) == pytest.approx(written[file].duration_s, abs=0.01)
    for r in results:
        if r.uniqueid not in answered_billing:
            assert recs[r.uniqueid]["recording"] is None
    # offers rang out (phone 1004) before an answer: still one file per call
    assert any(recs[r.uniqueid]["offers"] >= 2 for r in results)
