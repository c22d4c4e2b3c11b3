"""The hotline's VIP fast lane with profiles as stored: examples/customers.csv
imported into a real database with the project's importer, each caller
looked up with the engine's own caller lookup, the flow run with what it
found.  A caller with ``vip_level`` 2 or more reaches ``vip_queue`` with
priority ``vip_level * 20``; the others go through the menus.  Once through
the flow's interpreter (SQLite and PostgreSQL), once through the engine
against the PBX simulator (SQLite)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import time
from pathlib import Path

import pytest
from helpers import SECRET, acd, call_record, db_url, engine_on_pbx

from acd.adapters.ami import AmiConfig
from acd.adapters.lookup import LookupBatcher
from acd.adapters.profiles_store import ProfileStore
from acd.adapters.storage import Database
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.dryrun import dry_run
from acd.ivr.flowtest import FlowTestError, load_tests
from acd.ivr.interpreter import EnterQueue
from acd.ivr.load import load_flow
from acd.loaders.profile_csv import parse_customers_csv
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, PhoneBehaviour, SimConfig

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = ROOT / "examples" / "customers.csv"
HOTLINE = load_flow(ROOT / "ivr_flows" / "hotline.yaml")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # open
#: a caller who is not VIP enough (or not VIP): Mandarin (1), then bills (3)
MENU_KEYS = ["", "1", "3"]


def levels() -> dict[str, int]:
    """The VIP level of every customer of the sample file, read with the
    csv module (not the importer under test)."""
    with CUSTOMERS.open(encoding="utf-8", newline="") as f:
        return {row["number"]: int(row["vip_level"] or 0) for row in csv.DictReader(f)}


def test_the_sample_has_callers_on_both_sides_of_the_fast_lane() -> None:
    lv = levels()
    assert {n for n, v in lv.items() if v >= 2} and {n for n, v in lv.items() if v == 1} \
        and {n for n, v in lv.items() if v == 0}


async def import_customers(db: Database) -> None:
    """What `acd customers import examples/customers.csv` does: the CSV
    parser, then the store's upsert of the columns the file gives."""
    result = parse_customers_csv(CUSTOMERS.read_text(encoding="utf-8"), str(CUSTOMERS))
    assert not result.errors and result.rows
    store = ProfileStore(db)
    for row in result.rows:
        await store.upsert_customers([row.profile], fields=row.fields)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Database:
    """A database with the engine's tables: SQLite in a temporary file, or a
    schema of its own in the test PostgreSQL (skipped when it is down)."""
    d: Database = request.getfixturevalue("db" if request.param == "sqlite" else "postgres_db")
    return d


async def test_every_sample_caller_takes_the_lane_their_stored_level_gives(
        database: Database) -> None:
    await import_customers(database)
    lookups = LookupBatcher(ProfileStore(database).callers_context)  # as the engine wires it
    lookups.start()
    try:
        found = {number: await lookups.attributes(number) for number in levels()}
        stranger = await lookups.attributes("13700000000")
    finally:
        await lookups.stop()
    assert stranger == {}
    vip_seen = plain_seen = 0
    for number, level in levels().items():
        attrs = found[number]
        assert attrs["vip_level"] == str(level), number  # text, as the flow gets it
        # the engine's caller is {number, name} from the network; the profile
        # fills in the rest (FlowRun.add_caller_info keeps what is there)
        profile = {k: v for k, v in attrs.items() if k not in ("number", "name")}
        fast = level >= 2
        run = dry_run(HOTLINE, [] if fast else MENU_KEYS, number, profile, MONDAY_10)
        assert isinstance(run.end, EnterQueue), (number, run.path)
        if fast:
            vip_seen += 1
            assert run.path[-3:] == ("vip_check", "vip_greeting", "vip_queue"), number
            assert (run.end.queue, run.end.priority) == ("vip", level * 20), number
        else:
            plain_seen += 1
            assert "vip_queue" not in run.path and "language_menu" in run.path, number
            assert (run.end.queue, run.end.priority) == ("billing", 0), number
    assert vip_seen and plain_seen


# ----------------------------------------------------- the engine, end to end


def hotline_config(url: str) -> EngineConfig:
    queues = ("vip", "general", "billing", "tech")
    return EngineConfig(
        core=CoreConfig(policy=simple_policy(dict.fromkeys(queues, 5.0)),
                        agents=agents_for_queues({"a1001": ("1001", ("vip", "general")),
                                                  "a1002": ("1002", ("billing", "tech"))}),
                        wrap_up_s=0.05, rona_pause_s=None),
        flow=HOTLINE, ami=AmiConfig(username="acd", secret=SECRET), database_url=url,
        known_queues=frozenset(queues))



async def test_the_engine_sends_a_stored_vip_to_the_vip_queue(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    # the importer as users run it (in a thread: it runs its own event loop)
    r = await asyncio.to_thread(acd, "customers", "import", str(CUSTOMERS), "--db", url)
    assert r.exit_code == 0, r.output
    vip, plain = "13800138000", "13812345678"
    assert (levels()[vip], levels()[plain]) == (3, 0)
    # prompts of 0.3 s: the welcome covers the profile lookup, as on a real line
    pbx = SimConfig(users={"acd": SECRET}, prompt_s=0.3, dtmf_gap_s=0.02,
                    dtmf_duration_s=0.02)
    start = time.time()
    async with engine_on_pbx(hotline_config(url), pbx=pbx,
                             phones=dict.fromkeys(("1001", "1002"), PhoneBehaviour(
                                 answer_after_s=0.05, talk_s=0.2)),
                             clock=lambda: MONDAY_10.timestamp() + (time.time() - start),
                             ) as (sim, engine):
        calls = {}
        for number, keys in ((vip, []), (plain, MENU_KEYS)):
            h = await sim.place_call(CallerScript(number=number, keys=keys, patience_s=20,
                                                  key_delay_s=0.02))
            calls[number] = (await asyncio.wait_for(h.done, 20)).uniqueid
        rec_vip = await call_record(engine, calls[vip], timeout=10)
        rec_plain = await call_record(engine, calls[plain], timeout=10)
    assert rec_vip["ivr_path"].endswith("vip_check>vip_greeting>vip_queue"), rec_vip
    assert (rec_vip["queue"], rec_vip["priority"]) == ("vip", 3 * 20)
    assert "vip_queue" not in rec_plain["ivr_path"], rec_plain
    assert (rec_plain["queue"], rec_plain["priority"]) == ("billing", 0)


async def test_a_lookup_slower_than_the_welcome_is_waited_for(tmp_path: Path) -> None:
    """The database has a slow moment: the profile comes 0.3 s after a
    welcome of 0.05 s.  The flow waits for it (once, at most PROFILE_WAIT_S)
    before deciding on ``caller.vip_level``: the VIP still takes the lane."""
    from acd.runtime.agi_scripts import PROFILE_WAIT_S

    assert PROFILE_WAIT_S >= 1.0  # the margin over the lookup's 0.3 s
    asked: list[str] = []

    async def slow_lookup(number: str) -> dict[str, str]:
        asked.append(number)
        await asyncio.sleep(0.3)
        return {"vip_level": "3"}

    pbx = SimConfig(users={"acd": SECRET}, prompt_s=0.05, dtmf_gap_s=0.02,
                    dtmf_duration_s=0.02)
    start = time.time()
    async with engine_on_pbx(hotline_config(db_url(tmp_path)), pbx=pbx,
                             phones={"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)},
                             clock=lambda: MONDAY_10.timestamp() + (time.time() - start),
                             lookup=slow_lookup) as (sim, engine):
        h = await sim.place_call(CallerScript(number="13800138000", keys=[], patience_s=20))
        rec = await call_record(engine, (await asyncio.wait_for(h.done, 20)).uniqueid, timeout=10)
    assert asked == ["13800138000"]
    assert rec["ivr_path"].endswith("vip_check>vip_greeting>vip_queue"), rec
    assert (rec["queue"], rec["priority"]) == ("vip", 60)


# ------------------------------------- a name no profile has is warned about

OLD_NAME = """
flow: old
start: vip_check
nodes:
  vip_check:
    type: branch
    cases: [{if: caller.vip >= 2, goto: fast}]
    else: slow
  fast: {type: queue, queue: vip, priority: "caller.vip_level * 20"}
  slow: {type: queue, queue: general}
"""


def test_a_flow_reading_a_name_no_profile_has_is_warned_about(tmp_path: Path) -> None:
    flow = tmp_path / "old.yaml"
    flow.write_text(OLD_NAME, encoding="utf-8")
    r = acd("flow", "validate", str(flow))
    assert r.exit_code == 0  # a warning: the flow still loads
    assert (f"{flow}:7:18: warning: node 'vip_check': caller.vip is not an attribute of the "
            "caller's profile, so it is always none") in r.output
    assert "1 warning(s)" in r.output  # caller.vip_level, the priority's, is fine
    assert acd("flow", "validate", "--strict", str(flow)).exit_code == 1
    # `acd serve` says it at start too (here Asterisk is not there: exit 4)
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(f"flow: {flow}\nqueues: [{{name: vip}}, {{name: general}}]\n"
                   "ami: {host: 127.0.0.1, port: 1}\n"
                   f"database: {db_url(tmp_path)}\nagi: {{port: 0}}\n", encoding="utf-8")
    r = acd("serve", "--config", str(cfg))
    assert r.exit_code == 4, r.output
    assert "WARNING acd.cli.serve: flow: " in r.output and "caller.vip is not an attribute" \
        in r.output


# ------------------------------------ the flow tests' profiles, as stored


async def test_the_hotline_tests_profiles_are_shaped_as_the_database_gives_them(
        db: Database) -> None:
    await import_customers(db)
    lookups = LookupBatcher(ProfileStore(db).callers_context)
    lookups.start()
    try:
        cases = [c for c in load_tests(ROOT / "ivr_flows" / "hotline.tests.yaml").cases
                 if c.profile is not None]
        assert len(cases) >= 3
        for case in cases:
            stored = await lookups.attributes(case.caller)
            assert case.profile is not None and case.profile["vip_level"] == \
                stored["vip_level"], case.name
            for key, value in case.profile.items():  # same keys, same text
                assert stored.get(key) == value, (case.name, key)
    finally:
        await lookups.stop()


@pytest.mark.parametrize("profile,where,words", [
    ("{vip: 3}", "6:15", "profile: 'vip' is not a profile attribute (the caller lookup "
                         "gives: age, dialect, gender, language, last_agent, name, "),
    ("{vip_level: gold}", "6:26", "profile: vip_level 'gold' is not a whole number 0-9"),
    ("{vip_level: 12}", "6:26", "profile: vip_level '12' is not a whole number 0-9"),
    ("{number: '139'}", "6:15", "profile: number is the caller's own number"),
    ("{gender: x}", "6:23", "profile: gender 'x' is not"),
])
def test_a_flow_test_profile_no_database_holds_is_refused(tmp_path: Path, profile: str,
                                                          where: str, words: str) -> None:
    tests = tmp_path / "t.tests.yaml"
    tests.write_text(f"flow: {ROOT / 'ivr_flows' / 'hotline.yaml'}\n"
                     "cases:\n"
                     "  - name: a VIP\n"
                     "    expect: {queue: vip}\n"
                     "    caller: '13800138000'\n"
                     f"    profile: {profile}\n", encoding="utf-8")
    with pytest.raises(FlowTestError) as info:
        load_tests(tests)
    assert str(info.value).startswith(f"{tests}:{where}: case 'a VIP': {words}"), \
        str(info.value)


def test_a_flow_test_profile_is_text_as_stored(tmp_path: Path) -> None:
    tests = tmp_path / "t.tests.yaml"
    tests.write_text(f"flow: {ROOT / 'ivr_flows' / 'hotline.yaml'}\n"
                     "cases:\n"
                     "  - name: a VIP\n"
                     "    expect: {queue: vip}\n"
                     "    profile: {vip_level: 3, dialect: MinNan, tags: [vip, key-account],\n"
                     "              age: 52, last_agent: a1001}\n", encoding="utf-8")
    (case,) = load_tests(tests).cases
    assert case.profile == {"vip_level": "3", "dialect": "minnan", "tags": "key-account,vip",
                            "age": "52", "last_agent": "a1001"}


def test_only_a_flow_reading_the_profile_waits_for_it() -> None:
    """The hotline branches on caller.vip_level: it waits for a slow
    lookup; the basic flow reads no profile: its callers never wait."""
    from acd.runtime.agi_scripts import reads_profile

    assert reads_profile(HOTLINE) is True
    assert reads_profile(load_flow(ROOT / "ivr_flows" / "basic.yaml")) is False
