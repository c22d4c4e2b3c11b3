"""Quality review (issue 15, item 6): forms, the weekly stratified sample,
scores, reports, the agent's copy, and the reviewer's web pages."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import email
import email.policy
import html
import io
import os
import random
import re
import socketserver
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from helpers import db_url
from test_http_api import FakeEngine

from acd.adapters.qa_store import QaStore, QaStoreError, qa_draws, qa_samples
from acd.adapters.storage import Database
from acd.api.config import ApiConfig, Role
from acd.api.control import ControlApi
from acd.api.qa_pages import QaPages
from acd.cli import main
from acd.core.model import CallRecord, Outcome
from acd.qa.forms import EXAMPLE_FORM, FormError, load_form, parse_answers, parse_form
from acd.qa.report import ScoredCall, TeamsError, by_group, by_item, parse_teams
from acd.qa.sample import (
    CallRef,
    DrawOptions,
    SampleError,
    allocate_per_agent,
    allocate_rate,
    assign_reviewers,
    differences,
    draw,
    parse_rate,
    parse_week,
    resolve_week,
    week_bounds,
    week_of,
)
from acd.qa.scoring import AnswerError, check_answers, score
from acd.runtime.settings import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
FORM = ROOT / "examples" / "qa_form.yaml"
TZ = ZoneInfo("Asia/Shanghai")
PBX_DIR = "/var/spool/asterisk/monitor/acd"
GOOD = {"greeting": "yes", "verify_identity": "na", "listening": "4", "accuracy": "5",
        "hold_etiquette": "yes", "no_false_promise": "yes", "resolution": "yes",
        "courtesy": "3", "closing_script": "no"}  # 14.4 of 16: 90.0


# ------------------------------------------------------------ a simulated week

#: agent -> (queue -> calls offered in the week): uneven on purpose; a6 has 2
LOADS = {"a1": {"billing": 41, "tech": 12}, "a2": {"billing": 30}, "a3": {"tech": 22, "vip": 7},
         "a4": {"billing": 9, "tech": 9, "vip": 3}, "a5": {"vip": 15}, "a6": {"tech": 2}}


def week_records(week: str, seed: int, abandoned: int = 20) -> list[CallRecord]:
    """A week of call records (Asia/Shanghai), built with a fixed seed: the
    offered calls of LOADS (answered), plus abandoned ones with no agent."""
    rng = random.Random(seed)
    start, _ = week_bounds(week, TZ)
    t0 = start.timestamp()
    out: list[CallRecord] = []

    def at() -> float:
        return t0 + rng.randrange(7) * 86400 + 8 * 3600 + rng.uniform(0, 12 * 3600)

    n = 0
    for agent, queues in LOADS.items():
        for queue, count in queues.items():
            for _ in range(count):
                n += 1
                s = at()
                wait, talk = rng.uniform(2, 90), rng.uniform(30, 600)
                day = dt.datetime.fromtimestamp(s, dt.UTC)
                out.append(CallRecord(
                    f"{week}-c{n:04d}", f"1380013{n:04d}", "", s, s + wait + talk,
                    Outcome.ANSWERED, ("menu",), queue, s + 5, wait, agent, s + 5 + wait, talk,
                    1, "pbx1", recording=f"{PBX_DIR}/{day:%Y/%m/%d}/{week}-c{n:04d}.wav"))
    for _ in range(abandoned):
        n += 1
        s = at()
        out.append(CallRecord(f"{week}-c{n:04d}", "13900000000", "", s, s + 40,
                              Outcome.ABANDONED, (), "billing", s + 5, 35.0, None, None, None,
                              0, "pbx1"))
    return out


async def write(url: str, records: list[CallRecord]) -> None:
    db = Database(url)
    try:
        await db.create()
        await db.write_batch(records, [])
    finally:
        await db.dispose()


def build(tmp_path: Path, name: str = "acd.db") -> str:
    url = db_url(tmp_path, name)
    asyncio.run(write(url, week_records("2026-W48", 48) + week_records("2026-W49", 49)))
    return url


def expected_allocation(volumes: dict[tuple[str, str], int], percent: int
                        ) -> dict[tuple[str, str], int]:
    """The largest remainder allocation, in whole numbers (written apart from
    acd.qa.sample): n = round half up of percent% of N; floors of n*v/N; the
    rest to the largest remainders (ties: larger volume, then key)."""
    total = sum(volumes.values())
    n = (2 * percent * total + 100) // 200
    counts = {s: n * v // total for s, v in volumes.items()}
    rest = n - sum(counts.values())
    order = sorted(volumes, key=lambda s: (-(n * volumes[s] % total), -volumes[s], s))
    for s in order[:rest]:
        counts[s] += 1
    return counts


@contextlib.contextmanager
def fake_smtp() -> Iterator[tuple[int, list[bytes]]]:
    """An SMTP server on a free port that keeps each message's bytes."""
    received: list[bytes] = []

    class Session(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            def say(line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            say("220 fake ESMTP")
            while line := self.rfile.readline():
                verb = line.decode("ascii", "replace").strip().upper()
                if verb.startswith("EHLO"):
                    say("250-fake")
                    say("250 8BITMIME")
                elif verb == "DATA":
                    say("354 end with .")
                    data = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    received.append(data)
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def invoke(*args: str, tz: str = "Asia/Shanghai") -> Any:
    """``acd`` with ``args``; this machine's zone is ``tz`` ($TZ): the
    commands' default zone without a configuration."""
    r = CliRunner().invoke(main, list(args), env={"COLUMNS": "200", "TZ": tz})
    return r


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------- allocation


def test_largest_remainder_by_hand() -> None:
    volumes = {("a1", "billing"): 37, ("a1", "tech"): 13, ("a2", "billing"): 25,
               ("a3", "tech"): 4, ("a4", "billing"): 1}
    # 5% of 80 = 4; quotas 1.85 0.65 1.25 0.2 0.05: floors 1 0 1 0 0, the two
    # left go to the largest remainders .85 and .65
    got = {(a.agent_id, a.queue): a.count for a in allocate_rate(volumes, Fraction(5, 100))}
    assert got == {("a1", "billing"): 2, ("a1", "tech"): 1, ("a2", "billing"): 1,
                   ("a3", "tech"): 0, ("a4", "billing"): 0}
    # at least one per agent: a3 and a4 get one each, on top
    got = {(a.agent_id, a.queue): a.count
           for a in allocate_rate(volumes, Fraction(5, 100), at_least_one=True)}
    assert got == {("a1", "billing"): 2, ("a1", "tech"): 1, ("a2", "billing"): 1,
                   ("a3", "tech"): 1, ("a4", "billing"): 1}
    # a count per agent, shared by the agent's queues: a1 3 of 50 -> 2.22 + 0.78 -> 2 + 1
    per = {(a.agent_id, a.queue): a.count for a in allocate_per_agent(volumes, 3)}
    assert per == {("a1", "billing"): 2, ("a1", "tech"): 1, ("a2", "billing"): 3,
                   ("a3", "tech"): 3, ("a4", "billing"): 1}
    # half up: 2.5% of 20 = 0.5 -> 1
    assert sum(a.count for a in allocate_rate({("a", "q"): 20}, Fraction(25, 1000))) == 1


def test_weeks_rates_and_reviewers() -> None:
    assert parse_week("2026-W48") == (2026, 48)
    assert parse_week("2026-W53") == (2026, 53)  # 2026 ends on a Thursday
    with pytest.raises(SampleError, match="2025 has no ISO week 53"):
        parse_week("2025-W53")
    with pytest.raises(SampleError, match="not an ISO week"):
        parse_week("2026-48")
    start, end = week_bounds("2026-W48", TZ)
    assert start.isoformat() == "2026-11-23T00:00:00+08:00" and end - start == dt.timedelta(7)
    assert week_of(start.timestamp(), TZ) == "2026-W48"
    assert week_of(start.timestamp() - 1, TZ) == "2026-W47"
    assert parse_rate("5%") == Fraction(1, 20) and parse_rate("0.05") == Fraction(1, 20)
    for bad in ("0%", "120%", "five"):
        with pytest.raises(SampleError):
            parse_rate(bad)
    calls = [CallRef(f"c{i}", f"a{i % 3}", "q", float(i)) for i in range(30)]
    picks, loads = assign_reviewers(calls, ["a0", "r1", "r2"])
    assert all(p.reviewer != p.call.agent_id for p in picks)
    assert sum(loads.values()) == 30 and max(loads.values()) - min(loads.values()) <= 1
    with pytest.raises(SampleError, match="only reviewer"):
        assign_reviewers([CallRef("x", "a0", "q", 0.0)], ["a0"])
    with pytest.raises(SampleError, match="named twice"):
        assign_reviewers(calls, ["r1", "r1"])


def test_this_and_last_week_are_taken_in_the_zone() -> None:
    # Monday 2026-11-30 00:30 in Shanghai is still Sunday 2026-11-29 in UTC
    now = dt.datetime(2026, 11, 30, 0, 30, tzinfo=TZ).timestamp()
    assert (resolve_week("this", now, TZ), resolve_week("last", now, TZ)) == \
        ("2026-W49", "2026-W48")
    assert (resolve_week("THIS", now, dt.UTC), resolve_week(" last ", now, dt.UTC)) == \
        ("2026-W48", "2026-W47")
    # over the year's end: 2026 has 53 ISO weeks
    jan = dt.datetime(2027, 1, 4, 9, 0, tzinfo=TZ).timestamp()
    assert (resolve_week("this", jan, TZ), resolve_week("last", jan, TZ)) == \
        ("2027-W01", "2026-W53")
    assert resolve_week("2026W48", now, TZ) == "2026-W48"
    with pytest.raises(SampleError, match="'next' is not a week: this, last or an ISO week"):
        resolve_week("next", now, TZ)
    with pytest.raises(SampleError, match="2025 has no ISO week 53"):
        resolve_week("2025-W53", now, TZ)


def test_the_draw_is_seeded_and_never_repeats_a_call() -> None:
    records = week_records("2026-W48", 48)
    calls = [CallRef(r.call_id, r.agent_id or "", r.queue or "", r.started_at)
             for r in records if r.outcome is Outcome.ANSWERED]
    one = draw(calls, "2026-W48", seed=11, reviewers=["r1", "r2"], rate=Fraction(1, 10))
    two = draw(calls, "2026-W48", seed=11, reviewers=["r1", "r2"], rate=Fraction(1, 10))
    other = draw(calls, "2026-W48", seed=12, reviewers=["r1", "r2"], rate=Fraction(1, 10))
    ids = [p.call.call_id for p in one.picks]
    assert ids == [p.call.call_id for p in two.picks]
    assert [p.reviewer for p in one.picks] == [p.reviewer for p in two.picks]
    assert ids != [p.call.call_id for p in other.picks]
    # the same week again, less what was drawn: no call twice
    more = draw(calls, "2026-W48", seed=11, reviewers=["r1"], rate=Fraction(1, 10),
                drawn_before=ids)
    assert not set(ids) & {p.call.call_id for p in more.picks}
    assert more.population == len(calls) - len(ids)


# ------------------------------------------------------------------- forms


def test_the_example_form_and_scores() -> None:
    form = load_form(FORM)
    assert (form.name, form.version, len(form.items)) == ("hotline", "2026.1", 9)
    assert "核实" in form.item("verify_identity").text  # type: ignore[union-attr]
    s = score(form, GOOD)
    assert (s.score, s.fatal, s.passed) == (90.0, False, True)  # N/A left out: 14.4 / 16
    assert s.answers_json()["verify_identity"] == {"answer": "na", "ratio": None,
                                                   "passed": None}
    fatal = score(form, {**GOOD, "no_false_promise": "no"})
    assert (fatal.score, fatal.fatal, fatal.passed) == (0.0, True, False)
    with pytest.raises(AnswerError) as err:
        score(form, {**GOOD, "courtesy": "7", "greeting": "na", "bogus": "yes",
                     "accuracy": "maybe"})
    problems = err.value.problems
    assert "item 'bogus' is not on form 'hotline'" in problems[0]
    assert any("item 'greeting': N/A is not allowed" in p for p in problems)
    assert any("item 'courtesy': answer a whole number from 0 to 3" in p for p in problems)
    assert any("item 'accuracy': answer a whole number from 0 to 5" in p for p in problems)
    missing = dict(GOOD)
    del missing["resolution"]
    assert check_answers(form, missing) == ["item 'resolution': no answer"]


def test_the_package_ships_the_example_form() -> None:
    """The form used without one of the site's: a copy of the documented
    example inside the package (an installed package has no examples/)."""
    assert EXAMPLE_FORM.parent == ROOT / "acd" / "qa"
    assert EXAMPLE_FORM.read_bytes() == FORM.read_bytes()
    assert load_form(EXAMPLE_FORM).name == "hotline"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    [line] = [x for x in pyproject.splitlines() if x.startswith("acd = [")]
    assert '"qa/*.yaml"' in line  # package-data: shipped in the wheel


MINI_FORM = ("name: mini\nversion: 1\nsections:\n  - id: s\n    items:\n"
             "      - {id: ok, text: Fine}\n")


def write_config(folder: Path, extra: str = "", database: str | None = None) -> Path:
    """A small acd.yaml in ``folder`` (the flow and queue of tests/test_config.py)."""
    path = folder / "acd.yaml"
    flow = ROOT / "ivr_flows" / "basic.yaml"
    queues = "[{name: billing}, {name: tech}, {name: general}]"
    path.write_text(f"flow: {flow}\nqueues: {queues}\n"
                    + (f"database: {database}\n" if database else "") + extra,
                    encoding="utf-8")
    return path


def config_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_the_form_is_a_setting_checked_at_load(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert load_config(cfg).qa.form == EXAMPLE_FORM  # nothing beside acd.yaml
    beside = tmp_path / "qa_form.yaml"
    beside.write_text(MINI_FORM, encoding="utf-8")
    assert load_config(cfg).qa.form == beside  # qa_form.yaml beside acd.yaml
    (tmp_path / "forms").mkdir()
    (tmp_path / "forms" / "f.yaml").write_text(MINI_FORM, encoding="utf-8")
    write_config(tmp_path, "qa:\n  form: forms/f.yaml\n")  # relative to acd.yaml
    assert load_config(cfg).qa.form == tmp_path / "forms" / "f.yaml"
    write_config(tmp_path, "qa:\n  form: forms/none.yaml\n")
    assert config_problem(cfg) == (
        f"{cfg}:4:9: qa.form: the scoring form cannot be used: scoring form not found: "
        f"{tmp_path / 'forms' / 'none.yaml'}")
    (tmp_path / "forms" / "f.yaml").write_text(MINI_FORM.replace("{id: ok", "{id: 9ok"),
                                               encoding="utf-8")
    write_config(tmp_path, "qa:\n  form: forms/f.yaml\n")
    assert config_problem(cfg).startswith(  # placed in the form itself
        f"{tmp_path / 'forms' / 'f.yaml'}:6:14: item id '9ok' must be a name")
    beside.write_text("name: x\nversion: 1\n", encoding="utf-8")  # the default is checked too
    write_config(tmp_path)
    assert config_problem(cfg) == f"{beside}:1:1: the form needs a 'sections'"
    write_config(tmp_path, "qa: {from: qa_form.yaml}\n")
    assert config_problem(cfg) == f"{cfg}:3:6: qa.from: unknown key (known: form)"
    beside.unlink()
    write_config(tmp_path, "statistics: {tz: America/New_York}\n")
    assert load_config(cfg).qa.zone == ZoneInfo("America/New_York")
    write_config(tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "Europe/Paris")
        assert load_config(cfg).qa.zone == ZoneInfo("Europe/Paris")  # the machine's
    assert load_config(ROOT / "acd.example.yaml").qa.form == EXAMPLE_FORM


@pytest.mark.parametrize(("text", "where", "message"), [
    ("name: x\nversion: 1\n", "f.yaml:1:1", "the form needs a 'sections'"),
    ("name: x\nversion: 1\nsections: []\n", "f.yaml:3:11", "sections is empty"),
    ("name: 9x\nversion: 1\nsections: []\n", "f.yaml:1:7", "must be a name"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - id: q\n"
     "        text: t\n        kind: scale\n", "f.yaml:6:9", "a scale needs a 'max'"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - {id: q, text: t, "
     "wieght: 2}\n", "f.yaml:6:26", "unknown key 'wieght'"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - {id: q, text: t}\n"
     "      - {id: q, text: u}\n", "f.yaml:7:14", "item 'q' appears twice (first at line 6)"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - {id: q, text: t, "
     "weight: -1}\n", "f.yaml:6:34", "weight must be a number from 0.001"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - {id: q, text: t, "
     "kind: scale, max: 5, pass_at: 6}\n", "f.yaml:6:56", "pass_at must be a whole number"),
    ("name: x\nversion: 1\nsections:\n  - id: a\n    items:\n      - {id: q, text: t, "
     "fatal: maybe}\n", "f.yaml:6:33", "fatal must be true or false"),
    ("name: x\nversion: [1\n", "f.yaml:3:1", "not valid YAML"),
])
def test_form_errors_name_the_place(text: str, where: str, message: str) -> None:
    with pytest.raises(FormError) as err:
        parse_form(text, "f.yaml")
    assert str(err.value).startswith(where + ": "), str(err.value)
    assert message in str(err.value)


def test_answers_and_teams_files() -> None:
    assert parse_answers("greeting: yes\ncourtesy: 3\n") == {"greeting": "yes", "courtesy": "3"}
    with pytest.raises(FormError, match=r"^a\.yaml:2:11: item 'courtesy': the answer must"):
        parse_answers("greeting: yes\ncourtesy: [3]\n", "a.yaml")
    assert parse_teams("agent_id,team\na1,north\na2,south\n") == {"a1": "north", "a2": "south"}
    with pytest.raises(TeamsError, match=r"^t\.csv:1: the first line"):
        parse_teams("a1,north\n", "t.csv")
    with pytest.raises(TeamsError, match=r"^t\.csv:3: agent 'a1' is listed twice"):
        parse_teams("agent_id,team\na1,north\na1,south\n", "t.csv")


def test_report_groups_by_hand() -> None:
    def sc(call: str, agent: str, team: str, week: str, value: float, fatal: bool,
           answers: dict[str, bool | None]) -> ScoredCall:
        return ScoredCall(call, agent, "q", team, week, 0.0, value, fatal,
                          {k: {"answer": "x", "ratio": 1.0 if v else 0.0, "passed": v}
                           for k, v in answers.items()}, passed=value >= 80)

    calls = [sc("c1", "a1", "t1", "W1", 90, False, {"i1": True, "i2": None}),
             sc("c2", "a1", "t1", "W2", 0, True, {"i1": False, "i2": False}),
             sc("c3", "a2", "t1", "W2", 70, False, {"i1": True, "i2": True})]
    rows = {r.key: r for r in by_group(calls, "agent")}
    assert (rows[("a1",)].count, rows[("a1",)].mean, rows[("a1",)].fatal_rate) == (2, 45.0, 0.5)
    assert rows[("a1",)].item_rate("i1") == 0.5 and rows[("a1",)].item_rate("i2") == 0.0
    assert rows[("all",)].count == 3 and rows[("all",)].pass_rate == pytest.approx(1 / 3)
    weeks = {r.key: r for r in by_group(calls, "agent-week")}
    assert weeks[("a1", "W2")].mean == 0.0 and weeks[("a1", "W1")].mean == 90.0
    items = {r.item: r for r in by_item(calls)}
    assert (items["i2"].answered, items["i2"].na, items["i2"].pass_rate) == (2, 1, 0.5)
    assert items["i1"].pass_rate == pytest.approx(2 / 3)


# --------------------------------------------- the CLI over a simulated week


def sampled(url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                rows = (await conn.execute(qa_samples.select())).mappings().all()
            return [dict(r) for r in rows]
        finally:
            await db.dispose()
    return asyncio.run(read())


def test_sample_of_a_simulated_week_is_stratified(tmp_path: Path) -> None:
    url = build(tmp_path)
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "5%",
               "--reviewers", "a1,q1,q2", "--seed", "7", "--tz", "Asia/Shanghai")
    assert r.exit_code == 0, r.output
    rows = sampled(url)
    volumes = {(a, q): n for a, qs in LOADS.items() for q, n in qs.items()}
    want = expected_allocation(volumes, 5)
    got = Counter((row["agent_id"], row["queue"]) for row in rows)
    assert {s: got.get(s, 0) for s in volumes} == want
    assert len(rows) == sum(want.values()) == 8  # 5% of 150
    assert {row["week"] for row in rows} == {"2026-W48"} and {row["seed"] for row in rows} == {7}
    assert all(row["reviewer"] != row["agent_id"] for row in rows)  # a1 never gets its own
    loads = Counter(row["reviewer"] for row in rows)
    assert max(loads.values()) - min(loads.values()) <= 1
    assert all(row["call_id"].startswith("2026-W48-") for row in rows)
    # the output shows the record beside each call, and its recording
    assert "2026/11/" in r.output and PBX_DIR in r.output
    # the same week again is refused; --again draws from the rest only
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "5%",
               "--reviewers", "q1", "--seed", "7")
    assert r.exit_code == 1 and "was drawn already (8 calls" in r.output
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "5%",
               "--reviewers", "q1", "--seed", "7", "--again")
    assert r.exit_code == 0, r.output
    again = sampled(url)
    assert len(again) == len({row["call_id"] for row in again}) > len(rows)
    # the next week: none of its calls was drawn before, and none repeats
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W49", "--per-agent", "2",
               "--reviewers", "q1,q2", "--seed", "7")
    assert r.exit_code == 0, r.output
    every = sampled(url)
    w49 = [row for row in every if row["week"] == "2026-W49"]
    assert len({row["call_id"] for row in every}) == len(every)
    assert all(row["call_id"].startswith("2026-W49-") for row in w49)
    per_agent = Counter(row["agent_id"] for row in w49)
    assert per_agent == {a: 2 for a in LOADS}  # 2 each (a6 has just 2)
    # a1's two over billing 41 and tech 12: 1.547 + 0.453 -> 1 + 0, the one left to billing
    assert Counter(row["queue"] for row in w49 if row["agent_id"] == "a1") == {"billing": 2}


def test_at_least_one_per_agent_and_the_seed(tmp_path: Path) -> None:
    one, two = build(tmp_path, "one.db"), build(tmp_path, "two.db")
    for url in (one, two):
        r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "2%",
                   "--reviewers", "q1,q2,q3", "--seed", "2026", "--min-one")
        assert r.exit_code == 0, r.output
    a, b = sampled(one), sampled(two)
    assert sorted((x["call_id"], x["reviewer"]) for x in a) == \
        sorted((x["call_id"], x["reviewer"]) for x in b)
    assert set(Counter(x["agent_id"] for x in a)) == set(LOADS)  # a6 (2 calls) too
    # 2% of 150 = 3 by largest remainder (a1, a2, a3); a4, a5, a6 got none: one each on top
    assert len(a) == 3 + 3
    # a dry run keeps nothing
    three = build(tmp_path, "three.db")
    r = invoke("qa", "sample", "--db", three, "--week", "2026-W48", "--rate", "2%",
               "--reviewers", "q1", "--seed", "2026", "--dry-run")
    assert r.exit_code == 0 and "nothing kept" in r.output and sampled(three) == []
    r = invoke("qa", "sample", "--db", three, "--week", "2026-W48", "--reviewers", "q1")
    assert r.exit_code == 2 and "--rate and --per-agent" in r.output
    r = invoke("qa", "sample", "--db", three, "--week", "2026-W60", "--rate", "5%",
               "--reviewers", "q1")
    assert r.exit_code == 2 and "has no ISO week 60" in r.output


def drawn_rows(url: str, table: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                return [dict(r) for r in (await conn.execute(table.select())).mappings().all()]
        finally:
            await db.dispose()
    return asyncio.run(read())


def test_draw_options_are_kept_listed_and_replayed(tmp_path: Path) -> None:
    url = build(tmp_path)
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "2.5%",
               "--reviewers", "q2,q1", "--seed", "11", "--min-one", "--tz", "Asia/Shanghai")
    assert r.exit_code == 0, r.output
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--per-agent", "1",
               "--reviewers", "q3", "--seed", "12", "--again", "--tz", "Asia/Shanghai")
    assert r.exit_code == 0, r.output
    draws = drawn_rows(url, qa_draws)
    assert [(d["id"], d["week"], d["seed"], d["rate"], d["per_agent"], bool(d["min_one"]),
             d["tz"], d["reviewers"], bool(d["again"])) for d in draws] == [
        (1, "2026-W48", 11, "1/40", None, True, "Asia/Shanghai", "q2,q1", False),
        (2, "2026-W48", 12, None, 1, False, "Asia/Shanghai", "q3", True)]
    rows = sampled(url)
    assert Counter(row["draw_id"] for row in rows) == {1: 4 + 2, 2: len(LOADS)}  # a4, a6: +1
    # the list shows each listed call's draw with its options
    r = invoke("qa", "list", "--db", url, "--week", "2026-W48")
    assert r.exit_code == 0, r.output
    assert "rate 2.5%, min-one, tz Asia/Shanghai, reviewers q2,q1" in r.output
    assert "per agent 1, tz Asia/Shanghai, reviewers q3 (--again)" in r.output
    # drawn again from the database as it is now: the same calls to the same reviewers
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--replay")
    assert r.exit_code == 0, r.output
    assert r.output.count("the same calls, to the same reviewers") == 2
    # on a copy taken before the draw, the shown options draw the same calls
    fresh = build(tmp_path, "copy.db")
    r = invoke("qa", "sample", "--db", fresh, "--week", "2026-W48", "--rate", "1/40",
               "--reviewers", "q2,q1", "--seed", "11", "--min-one")
    assert r.exit_code == 0, r.output
    assert {(x["call_id"], x["reviewer"]) for x in sampled(fresh)} == \
        {(x["call_id"], x["reviewer"]) for x in rows if x["draw_id"] == 1}
    # a kept sample that was changed since is told of, and the command fails
    one = next(x for x in rows if x["draw_id"] == 2)

    async def tamper() -> None:
        db = Database(url)
        try:
            async with db.engine.begin() as conn:
                await conn.execute(qa_samples.update().where(
                    qa_samples.c.call_id == one["call_id"]).values(reviewer="zz"))
        finally:
            await db.dispose()
    asyncio.run(tamper())
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--replay")
    assert r.exit_code == 1
    assert f"call {one['call_id']}: reviewer zz kept, q3 drawn again" in r.output
    assert "1 of 2 draws of 2026-W48 differ" in r.output
    # --replay takes the kept options only; a week never drawn is refused
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--replay", "--seed", "1")
    assert r.exit_code == 2 and "kept options" in r.output
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W50", "--replay")
    assert r.exit_code == 1 and "was not drawn" in r.output


def test_an_older_database_gets_the_draws(tmp_path: Path) -> None:
    """qa_samples as the first version made it (no draw_id, no qa_draws):
    create() adds the column and the table; its calls list with their seed
    and cannot be drawn again; new draws keep their options."""
    import sqlite3

    url = build(tmp_path)
    path = tmp_path / "acd.db"
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE qa_samples")
        conn.execute("DROP TABLE qa_draws")
        conn.execute("CREATE TABLE qa_samples (call_id VARCHAR(64) PRIMARY KEY, week VARCHAR(8) "
                     "NOT NULL, agent_id VARCHAR(64) NOT NULL, queue VARCHAR(64) NOT NULL, "
                     "reviewer VARCHAR(64) NOT NULL, drawn_at DATETIME NOT NULL, seed INTEGER "
                     "NOT NULL, status VARCHAR(16) NOT NULL)")
        conn.execute("INSERT INTO qa_samples VALUES ('2026-W48-c0001', '2026-W48', 'a1', "
                     "'billing', 'q1', '2026-11-30 01:00:00', 99, 'assigned')")
    r = invoke("qa", "list", "--db", url)
    assert r.exit_code == 0, r.output
    assert "not kept (drawn by an older version)" in r.output and "99" in r.output
    with sqlite3.connect(path) as conn:
        assert "draw_id" in {c[1] for c in conn.execute("PRAGMA table_info(qa_samples)")}
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--replay")
    assert r.exit_code == 1 and "seed 99 by an older version" in r.output
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--rate", "5%",
               "--reviewers", "q1", "--seed", "3", "--again")
    assert r.exit_code == 0, r.output
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--replay")
    # the new draw is drawn again the same (the older call left out); the older one cannot
    assert "the same calls, to the same reviewers" in r.output and r.exit_code == 0, r.output


def test_a_bare_create_makes_the_qa_tables(tmp_path: Path) -> None:
    """Database(url).create() in a fresh interpreter that never imported the
    QA store makes its tables."""
    import subprocess
    import sys

    code = ("import asyncio, sys, sqlite3\n"
            "from acd.adapters.storage import Database\n"
            "async def main():\n"
            f"    db = Database({db_url(tmp_path, 'bare.db')!r})\n"
            "    await db.create()\n"
            "    await db.dispose()\n"
            "asyncio.run(main())\n"
            "assert 'acd.adapters.qa_store' not in sys.modules\n"
            f"names = {{r[0] for r in sqlite3.connect({str(tmp_path / 'bare.db')!r}).execute("
            "\"SELECT name FROM sqlite_master WHERE type='table'\")}\n"
            "print(sorted(n for n in names if n.startswith('qa_')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['qa_draws', 'qa_samples', 'qa_scores']"


def test_replay_differences_and_options_by_hand() -> None:
    calls = [CallRef(f"c{i}", "a1", "q", float(i)) for i in range(10)]
    s = draw(calls, "2026-W48", seed=1, reviewers=["r1", "r2"], per_agent=3)
    kept = {p.call.call_id: p.reviewer for p in s.picks}
    assert differences(s, kept) == []
    first, *_ = sorted(kept)
    other = next(c.call_id for c in calls if c.call_id not in kept)
    changed = {**{k: v for k, v in kept.items() if k != first}, other: "r1"}
    second = sorted(kept)[1]
    changed[second] = "r9"
    assert differences(s, changed) == [
        f"call {first} is drawn again but was not kept",
        f"call {other} was kept but is not drawn again",
        f"call {second}: reviewer r9 kept, {kept[second]} drawn again"]
    assert DrawOptions(("r1",), rate=Fraction(1, 3), tz="UTC").describe() == \
        "rate 33.3333%, tz UTC, reviewers r1"
    assert DrawOptions(("r1", "r2"), per_agent=4, at_least_one=True).describe() == \
        "per agent 4, min-one, tz -, reviewers r1,r2"


def test_csv_to_a_path_that_cannot_be_written(tmp_path: Path) -> None:
    url = build(tmp_path)
    r = invoke("qa", "report", "--db", url, "--csv", str(tmp_path / "no" / "such" / "r.csv"))
    assert r.exit_code == 2 and "cannot write" in r.output
    r = invoke("qa", "report", "--db", url, "--csv", str(tmp_path / "r.csv"))
    assert r.exit_code == 0 and "(1 rows)" in r.output
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("agent,count,")


def test_scores_round_trip_into_the_report(tmp_path: Path) -> None:
    url = build(tmp_path)
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--per-agent", "1",
               "--reviewers", "q1,q2", "--seed", "5")
    assert r.exit_code == 0, r.output
    rows = {row["agent_id"]: row for row in sampled(url)}
    form = str(FORM)

    def score_cli(agent: str, *answers: str, comment: str = "") -> Any:
        row = rows[agent]
        return invoke("qa", "score", row["call_id"], "--db", url, "--form", form,
                      "--reviewer", row["reviewer"], *answers, "--comment", comment)

    def as_args(answers: dict[str, str]) -> list[str]:
        return [x for k, v in answers.items() for x in ("--answer", f"{k}={v}")]

    r = score_cli("a1", *as_args(GOOD), comment="Good call; close with the script 请用结束语")
    assert r.exit_code == 0, r.output
    assert "score 90.0" in r.output and "2026-W48" in r.output and PBX_DIR in r.output
    r = score_cli("a2", *as_args({**GOOD, "no_false_promise": "no"}), comment="promised a refund")
    assert r.exit_code == 0 and "score 0.0 (a fatal item failed)" in r.output
    answers = tmp_path / "a3.yaml"
    answers.write_text("".join(f"{k}: {v}\n" for k, v in
                               {**GOOD, "closing_script": "yes", "courtesy": 2}.items()))
    r = score_cli("a3", "--answers", str(answers))  # 14.733 / 16 = 92.08
    assert r.exit_code == 0 and "score 92.1" in r.output
    # refused: bad answers (nothing kept), the agent scoring their own call, an unknown call
    r = score_cli("a4", *as_args({**GOOD, "courtesy": "9"}))
    assert r.exit_code == 1 and "item 'courtesy': answer a whole number from 0 to 3" in r.output
    r = invoke("qa", "score", rows["a4"]["call_id"], "--db", url, "--form", form,
               "--reviewer", "a4", *as_args(GOOD))
    assert r.exit_code == 1 and "nobody scores their own calls" in r.output
    r = invoke("qa", "score", "nope", "--db", url, "--form", form, "--reviewer", "q1",
               *as_args(GOOD))
    assert r.exit_code == 1 and "not in any sample" in r.output
    bad_form = tmp_path / "bad.yaml"
    bad_form.write_text("name: x\nversion: 1\nsections:\n  - id: a\n    items: []\n")
    r = invoke("qa", "score", rows["a4"]["call_id"], "--db", url, "--form", str(bad_form),
               "--reviewer", "q1", "--answer", "a=yes")
    assert r.exit_code == 2 and f"{bad_form}:5:12: section 'a' has no items" in r.output

    # scored again: the report takes the latest score
    r = score_cli("a1", *as_args({**GOOD, "closing_script": "yes"}), comment="re-scored")
    assert r.exit_code == 0 and "score 96.2" in r.output  # 15.4 / 16 = 96.25 (rounds to even)

    r = invoke("qa", "report", "--db", url, "--by", "agent", "--csv", "-")
    assert r.exit_code == 0, r.output
    got = {row["agent"]: row for row in csv_rows(r.output)}
    assert set(got) == {"a1", "a2", "a3", "all"}
    assert (got["a1"]["count"], got["a1"]["mean_score"], got["a1"]["fatal_rate"]) == \
        ("1", "96.25", "0.0000")
    assert (got["a2"]["mean_score"], got["a2"]["fatal_rate"], got["a2"]["pass_rate"]) == \
        ("0.00", "1.0000", "0.0000")
    assert got["a3"]["mean_score"] == "92.08"
    assert (got["all"]["count"], got["all"]["mean_score"]) == ("3", f"{(96.25 + 92.08) / 3:.2f}")
    assert got["all"]["fatal_rate"] == "0.3333" and got["all"]["pass_rate"] == "0.6667"
    assert got["all"]["pass_closing_script"] == "0.6667"  # a1 yes, a2 no, a3 yes
    assert got["all"]["pass_verify_identity"] == ""  # N/A everywhere

    r = invoke("qa", "report", "--db", url, "--by", "item", "--form", form, "--csv", "-")
    items = {row["item"]: row for row in csv_rows(r.output)}
    assert next(iter(items)) == "greeting"  # the form's order
    assert (items["verify_identity"]["answered"], items["verify_identity"]["na"]) == ("0", "3")
    assert items["courtesy"]["mean_ratio"] == f"{(1 + 1 + 2 / 3) / 3:.4f}"
    assert items["no_false_promise"]["pass_rate"] == "0.6667"

    r = invoke("qa", "report", "--db", url, "--by", "week", "--csv", "-")
    assert [(x["week"], x["count"]) for x in csv_rows(r.output)] == [("2026-W48", "3"),
                                                                     ("all", "3")]
    teams = tmp_path / "teams.csv"
    teams.write_text("agent_id,team\na1,north\na2,north\na3,south\n")
    r = invoke("qa", "report", "--db", url, "--by", "team", "--teams", str(teams), "--csv", "-")
    by_team = {x["team"]: x for x in csv_rows(r.output)}
    assert (by_team["north"]["count"], by_team["north"]["mean_score"]) == ("2", "48.12")
    assert by_team["south"]["count"] == "1"
    r = invoke("qa", "report", "--db", url, "--since", "2026-11-30", "--csv", "-")
    assert [x["agent"] for x in csv_rows(r.output)] == ["all"]  # no call of W49 was scored
    r = invoke("qa", "report", "--db", url)
    assert r.exit_code == 0 and "quality by agent" in r.output

    r = invoke("qa", "list", "--db", url, "--reviewer", rows["a1"]["reviewer"])
    assert r.exit_code == 0 and rows["a1"]["call_id"] in r.output and "scored" in r.output

    # the agent's copy: scores, item results and comments
    out = tmp_path / "copies"
    r = invoke("qa", "export", "--db", url, "--agent", "a1", "--out", str(out), "--form", form)
    assert r.exit_code == 0, r.output
    assert "(1 scored call)" in r.output
    r = invoke("qa", "export", "--db", url, "--agent", "nobody", "--out", str(out))
    assert r.exit_code == 0 and "(0 scored calls)" in r.output
    md = (out / "a1.md").read_text()
    assert "Calls scored: 1; mean score: 96.2" in md and "re-scored" in md
    assert "verify_identity: Verifies the caller's identity" in md
    lines = csv_rows((out / "a1.csv").read_text())
    assert len(lines) == 9 and {x["call_id"] for x in lines} == {rows["a1"]["call_id"]}
    r = invoke("qa", "export", "--db", url, "--agent", "a2", "--out", str(out), "--html")
    page = (out / "a2.html").read_text()
    assert "fatal item failed" in page and "promised a refund" in page

    # ... and by mail, through an SMTP server (a small fake one here)
    with fake_smtp() as (port, received):
        r = invoke("qa", "export", "--db", url, "--agent", "a1", "--out", str(out),
                   "--mail", "a1@example.cn", "--smtp", f"127.0.0.1:{port}",
                   "--mail-from", "qa@example.cn")
        assert r.exit_code == 0, r.output
    assert "mailed to a1@example.cn" in r.output and len(received) == 1
    msg = email.message_from_bytes(received[0], policy=email.policy.default)
    assert (msg["To"], msg["Subject"]) == ("a1@example.cn", "Quality reviews: a1")
    parts = {p.get_filename() or p.get_content_type(): p.get_content()
             for p in msg.iter_parts()}
    assert "re-scored" in parts["text/plain"] and "Calls scored: 1" in parts["text/plain"]
    assert "closing_script" in parts["a1.csv"]
    r = invoke("qa", "export", "--db", url, "--agent", "a1", "--out", str(out),
               "--mail", "a1@example.cn", "--smtp", f"127.0.0.1:{port}")
    assert r.exit_code == 1 and "not sent" in r.output  # nobody listens there now
    r = invoke("qa", "export", "--db", url, "--agent", "a1", "--out", str(out), "--mail", "x@y")
    assert r.exit_code == 2 and "--mail needs an SMTP server" in r.output


def started_at(url: str, call_id: str) -> dt.datetime:
    async def read() -> dt.datetime:
        db = Database(url)
        try:
            found = await QaStore(db).review(call_id)
            assert found is not None
            return found["record"]["started_at"]  # type: ignore[no-any-return]
        finally:
            await db.dispose()
    return asyncio.run(read())


def test_the_configuration_gives_the_database_the_zone_and_the_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = build(tmp_path)
    (tmp_path / "mini.yaml").write_text(MINI_FORM, encoding="utf-8")
    cfg = write_config(tmp_path, "statistics: {tz: UTC}\nqa: {form: mini.yaml}\n",
                       database=url)
    # the week and the times in statistics.tz (UTC), not this machine's (Shanghai)
    r = invoke("qa", "sample", "--config", str(cfg), "--week", "2026-W48", "--per-agent", "1",
               "--reviewers", "q1", "--seed", "5")
    assert r.exit_code == 0, r.output
    assert [d["tz"] for d in drawn_rows(url, qa_draws)] == ["UTC"]
    row = sampled(url)[0]
    start = started_at(url, row["call_id"])
    r = invoke("qa", "list", "--config", str(cfg))
    assert r.exit_code == 0 and "6 calls to review (times in UTC)" in r.output
    assert f"{start.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}" in r.output
    # the form of qa.form: no --form needed
    r = invoke("qa", "score", row["call_id"], "--config", str(cfg), "--reviewer", "q1",
               "--answer", "ok=yes")
    assert r.exit_code == 0, r.output
    assert "form mini v1" in r.output and "score 100.0" in r.output
    # --tz and --form still decide when given
    r = invoke("qa", "list", "--config", str(cfg), "--tz", "Asia/Shanghai")
    assert f"{start.astimezone(TZ):%Y-%m-%d %H:%M:%S}" in r.output
    r = invoke("qa", "score", row["call_id"], "--config", str(cfg), "--reviewer", "q1",
               "--form", str(FORM), "--answer", "ok=yes")
    assert r.exit_code == 1 and "item 'ok' is not on form 'hotline'" in r.output
    # ./acd.yaml when there is one, as `acd report calls`
    monkeypatch.chdir(tmp_path)
    r = invoke("qa", "list", "--status", "scored")
    assert r.exit_code == 0 and "1 call to review (times in UTC)" in r.output
    assert row["call_id"] in r.output
    r = invoke("qa", "report", "--csv", "-")
    assert r.exit_code == 0 and csv_rows(r.output)[-1]["count"] == "1"
    # one that cannot be used: exit 2, placed
    write_config(tmp_path, "qa: {form: gone.yaml}\n", database=url)
    r = invoke("qa", "list")
    assert r.exit_code == 2, r.output
    assert "acd.yaml:4:12: qa.form: the scoring form cannot be used: scoring form not " \
        "found:" in r.output


def test_without_a_configuration_the_machine_zone_and_the_example_form(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = build(tmp_path)
    monkeypatch.chdir(tmp_path)  # no acd.yaml here
    r = invoke("qa", "sample", "--db", url, "--week", "2026-W48", "--per-agent", "1",
               "--reviewers", "q1", "--seed", "5", tz="Europe/Paris")
    assert r.exit_code == 0, r.output
    assert [d["tz"] for d in drawn_rows(url, qa_draws)] == ["Europe/Paris"]
    row = sampled(url)[0]
    r = invoke("qa", "list", "--db", url, tz="Europe/Paris")
    assert "(times in Europe/Paris)" in r.output
    paris = started_at(url, row["call_id"]).astimezone(ZoneInfo("Europe/Paris"))
    assert f"{paris:%Y-%m-%d %H:%M:%S}" in r.output
    answers = [x for k, v in GOOD.items() for x in ("--answer", f"{k}={v}")]
    r = invoke("qa", "score", row["call_id"], "--db", url, "--reviewer", "q1", *answers)
    assert r.exit_code == 0 and "form hotline v2026.1" in r.output  # the package's example
    (tmp_path / "qa_form.yaml").write_text(MINI_FORM, encoding="utf-8")  # one here: taken
    r = invoke("qa", "score", row["call_id"], "--db", url, "--reviewer", "q1",
               "--answer", "ok=no")
    assert r.exit_code == 0 and "form mini v1" in r.output and "score 0.0" in r.output
    # --week this / last: in the zone; anything else is refused
    for word in ("this", "last"):
        before = resolve_week(word, time.time(), TZ)
        r = invoke("qa", "sample", "--db", url, "--week", word, "--per-agent", "1",
                   "--reviewers", "q1", "--dry-run")
        after = resolve_week(word, time.time(), TZ)
        assert r.exit_code == 0, r.output
        assert f"{before}:" in r.output or f"{after}:" in r.output
        r = invoke("qa", "list", "--db", url, "--week", word)
        drawn = sum(x["week"] == before for x in sampled(url))  # 6 when last is 2026-W48
        assert r.exit_code == 0 and f"{drawn} call" in r.output
    r = invoke("qa", "list", "--db", url, "--week", "next")
    assert r.exit_code == 2 and "'next' is not a week: this, last or an ISO week" in r.output


# ------------------------------------------------------------- the web pages


async def sample_for_web(db: Database, local: Path) -> dict[str, str]:
    """Four calls drawn for reviewer r1: a recording in the folder, one that
    climbs out of it, one that is a link out of it, and none."""
    t = dt.datetime(2026, 11, 24, 10, 0, tzinfo=TZ).timestamp()
    paths = {"ok": f"{PBX_DIR}/2026/11/24/ok.wav", "climb": f"{PBX_DIR}/../../../../etc/passwd",
             "link": f"{PBX_DIR}/2026/11/24/link.wav", "none": ""}
    recs = [CallRecord(k, "13800138000", "", t + i, t + i + 100, Outcome.ANSWERED, (), "billing",
                       t + i + 1, 12.0, "a7", t + i + 13, 80.0, 1, "pbx1", recording=p)
            for i, (k, p) in enumerate(paths.items())]
    await db.write_batch(recs, [])
    day = local / "2026" / "11" / "24"
    day.mkdir(parents=True)
    (day / "ok.wav").write_bytes(b"RIFF0000WAVEfmt fake audio")
    secret = local.parent / "secret.wav"
    secret.write_bytes(b"not yours")
    os.symlink(secret, day / "link.wav")
    store = QaStore(db)
    calls = await store.answered_calls(*week_bounds("2026-W48", TZ))
    s = draw(calls, "2026-W48", seed=1, reviewers=["r1"], per_agent=4)
    assert await store.save_sample(s, t + 86400) == 4
    return paths


@pytest.fixture
async def web(tmp_path: Path, db: Database) -> AsyncIterator[tuple[TestClient[Any, Any],
                                                                   ControlApi, Database]]:
    local = tmp_path / "recordings"
    local.mkdir()
    await sample_for_web(db, local)
    engine: Any = FakeEngine()
    engine.db = db
    engine.config = SimpleNamespace(recordings=SimpleNamespace(
        local_dir=str(local), rule=SimpleNamespace(folder=PBX_DIR)),
        qa=SimpleNamespace(form=FORM, zone=TZ))  # as load_config makes it (qa:, statistics.tz)
    api = ControlApi(engine, ApiConfig(token_file=tmp_path / "acd-api.tokens"))
    app = api.app()
    assert api.tokens is not None
    client = TestClient(TestServer(app), headers={
        "Authorization": f"Bearer {api.tokens.by_role[Role.ADMIN]}"})
    async with client:
        yield client, api, db


def form_data(answers: dict[str, str], **extra: str) -> dict[str, str]:
    return {**{f"item.{k}": v for k, v in answers.items()}, **extra}


async def test_the_review_pages(web: tuple[TestClient[Any, Any], ControlApi, Database]
                                ) -> None:
    client, api, db = web
    resp = await client.get("/qa", params={"reviewer": "r1"})
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert all(f"/qa/{k}?reviewer=r1" in page for k in ("ok", "climb", "link", "none"))
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert (await (await client.get("/qa", params={"reviewer": "nobody"})).text()).count(
        "<tr") == 1  # the header only

    resp = await client.get("/qa/ok")
    page = await resp.text()
    assert resp.status == 200
    assert '<audio controls preload="metadata" src="/qa/ok/recording">' in page
    assert f"{PBX_DIR}/2026/11/24/ok.wav" in page and "a7" in page and "billing" in page
    assert page.count('type="radio" name="item.courtesy"') == 4  # 0..3
    assert 'name="item.verify_identity" value="na"' in page
    assert "核实来电人身份" in page
    assert "no recording for this call" in await (await client.get("/qa/none")).text()

    resp = await client.get("/qa/ok/recording")
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
    assert await resp.read() == b"RIFF0000WAVEfmt fake audio"
    for call in ("climb", "link"):  # out of recordings.local_dir: refused
        resp = await client.get(f"/qa/{call}/recording")
        assert resp.status == 403, call
        assert "not inside recordings.local_dir" in (await resp.json())["error"]
    resp = await client.get("/qa/none/recording")
    assert resp.status == 404 and "has no recording" in (await resp.json())["error"]
    assert (await client.get("/qa/%2e%2e%2fsecret.wav/recording")).status == 404

    # a bad score: 400, the problems shown, the answers kept, nothing stored
    bad = form_data({**GOOD, "courtesy": "9"}, reviewer="r1", comment="x")
    del bad["item.resolution"]
    resp = await client.post("/qa/ok/score", data=bad)
    page = await resp.text()
    assert resp.status == 400 and "The score was not saved" in page
    assert "item &#x27;courtesy&#x27;: answer a whole number from 0 to 3" in page
    assert "item &#x27;resolution&#x27;: no answer" in page
    assert 'name="item.listening" value="4" checked' in page
    resp = await client.post("/qa/ok/score", data=form_data(GOOD, reviewer="a7"))
    assert resp.status == 400 and "nobody scores their own calls" in await resp.text()
    store = QaStore(db)
    assert (await store.review("ok"))["score"] is None  # type: ignore[index]

    resp = await client.post("/qa/ok/score", allow_redirects=False,
                             data=form_data(GOOD, reviewer="r1", comment="好 <b>"))
    assert resp.status == 303 and resp.headers["Location"] == "/qa/ok?reviewer=r1&saved=1"
    found = await store.review("ok")
    assert found is not None and found["status"] == "scored"
    assert (found["score"]["score"], found["score"]["comment"]) == (90.0, "好 <b>")
    page = await (await client.get("/qa/ok?reviewer=r1&saved=1")).text()
    assert "score saved" in page and "last score 90.0" in page and "好 &lt;b&gt;" in page
    assert 'name="item.courtesy" value="3" checked' in page
    assert (await client.get("/qa/unknown")).status == 404
    resp = await client.post("/qa/ok/score", data=form_data(GOOD, reviewer="r1"),
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    css = await client.get("/qa/static/qa.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert (await client.get("/qa/static/..%2fqa_pages.py")).status == 404
    # the read role (wallboards) may not see the pages
    assert api.tokens is not None
    read = {"Authorization": f"Bearer {api.tokens.by_role[Role.READ]}"}
    assert (await client.get("/qa", headers=read)).status == 403
    assert (await client.get("/qa/ok/recording", headers=read)).status == 403


async def test_the_pages_show_times_in_the_configured_zone(
        web: tuple[TestClient[Any, Any], ControlApi, Database]) -> None:
    """Formatted by the server (not by the browser's locale) in the zone of
    the configuration, named on the page."""
    client, api, _ = web
    page = await (await client.get("/qa", params={"reviewer": "r1"})).text()
    assert "4 calls" in page and '<p class="zone">times in Asia/Shanghai</p>' in page
    assert '<time datetime="2026-11-24T10:00:00+08:00">2026-11-24 10:00:00</time>' in page
    page = await (await client.get("/qa/ok")).text()
    assert "times in Asia/Shanghai" in page
    assert ">2026-11-24 10:00:00</time>" in page and ">2026-11-24 10:01:40</time>" in page
    api.qa._zone = dt.UTC  # given to QaPages instead: the same instants in UTC
    page = await (await client.get("/qa/ok")).text()
    assert "times in UTC" in page and ">2026-11-24 02:00:00</time>" in page
    # the script no longer rewrites them in the browser's locale
    script = await (await client.get("/qa/static/qa.js")).text()
    assert "toLocaleString" not in script and "time[datetime]" not in script
    # this and last week in that zone; a week that is none: 400
    page = await (await client.get("/qa", params={"week": "2026-W49"})).text()
    assert "<p>0 calls</p>" in page
    assert (await client.get("/qa", params={"week": "soon"})).status == 400


async def test_a_form_that_cannot_be_used_is_a_503_logged_once(
        web: tuple[TestClient[Any, Any], ControlApi, Database], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    client, api, _ = web
    form = tmp_path / "site_form.yaml"
    form.write_text(FORM.read_text(encoding="utf-8"), encoding="utf-8")
    api.engine.config.qa.form = form  # type: ignore[attr-defined]
    assert (await client.get("/qa/ok")).status == 200
    form.write_text("name: x\nversion: 1\nsections:\n  - id: a\n    items: []\n")
    with caplog.at_level("WARNING", logger="acd.api.qa_pages"):
        for _ in range(3):  # the page and the score's POST alike
            resp = await client.get("/qa/ok")
            page = await resp.text()
            assert resp.status == 503 and resp.content_type == "text/html"
            assert html.escape(f"{form}:5:12: section 'a' has no items") in page
            assert "qa: {form: PATH}" in page
        resp = await client.post("/qa/ok/score", data=form_data(GOOD, reviewer="r1"))
        assert resp.status == 503
    lines = [r for r in caplog.records if r.name == "acd.api.qa_pages"]
    assert len(lines) == 1  # rate limited: one a minute
    assert f"{form}:5:12: section 'a' has no items" in lines[0].getMessage()
    form.unlink()  # removed since the start: the same, naming the file
    resp = await client.get("/qa/ok")
    assert resp.status == 503 and html.escape(f"{form}: scoring form not found") in \
        await resp.text()
    assert (await client.get("/qa")).status == 200  # the list needs no form
    form.write_text(FORM.read_text(encoding="utf-8"), encoding="utf-8")  # fixed: read again
    assert (await client.get("/qa/ok")).status == 200


def test_the_pages_form_and_zone_without_qa_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine built without load_config (no ``config.qa``): qa_form.yaml
    in the working folder, else the package's example (never a path that
    only a checkout has); the zone of statistics.tz, else UTC."""
    monkeypatch.chdir(tmp_path)
    pages = QaPages(SimpleNamespace(config=SimpleNamespace()))
    assert pages.form_path() == EXAMPLE_FORM and pages.form().name == "hotline"
    assert pages.zone() == dt.UTC
    (tmp_path / "qa_form.yaml").write_text(MINI_FORM, encoding="utf-8")
    assert pages.form_path() == Path("qa_form.yaml") and pages.form().name == "mini"
    pages = QaPages(SimpleNamespace(config=SimpleNamespace(
        statistics=SimpleNamespace(tz="Asia/Shanghai"))))
    assert pages.zone() == TZ


async def test_without_a_database_the_pages_answer_404(tmp_path: Path) -> None:
    engine: Any = FakeEngine()
    api = ControlApi(engine, ApiConfig(token_file=tmp_path / "acd-api.tokens"))
    app = api.app()
    assert api.tokens is not None
    async with TestClient(TestServer(app), headers={
            "Authorization": f"Bearer {api.tokens.by_role[Role.ADMIN]}"}) as client:
        resp = await client.get("/qa")
        assert resp.status == 404 and "database" in (await resp.json())["error"]


# ------------------------------------------------------------------ PostgreSQL


async def test_store_round_trip_on_postgresql(postgres_db: Database) -> None:
    records = week_records("2026-W48", 48, abandoned=3)
    await postgres_db.write_batch(records, [])
    store = QaStore(postgres_db)
    calls = await store.answered_calls(*week_bounds("2026-W48", TZ))
    assert len(calls) == sum(n for qs in LOADS.values() for n in qs.values())
    s = draw(calls, "2026-W48", seed=3, reviewers=["q1", "q2"], rate=Fraction(1, 20))
    options = DrawOptions(("q1", "q2"), rate=Fraction(1, 20), tz="Asia/Shanghai")
    assert await store.save_sample(s, 1.8e9, options) == 8
    with pytest.raises(QaStoreError, match="drawn before"):
        await store.save_sample(s, 1.8e9, options)
    [kept] = await store.draws(week="2026-W48")  # the refused one kept no draw either
    assert kept["options"] == options and kept["calls"] == 8 and kept["population"] == 150
    assert await store.kept_picks(kept["id"]) == {p.call.call_id: p.reviewer for p in s.picks}
    ids = [c.call_id for c in calls]
    assert await store.drawn_before_draw(kept["id"], ids) == set()
    assert len(await store.drawn_before_draw(kept["id"] + 1, ids)) == 8
    first = s.picks[0].call.call_id
    assert await store.drawn_among([first, "nope"]) == {first}
    await store.save_score(first, score(load_form(FORM), GOOD), reviewer="q1",
                           scored_at=1.8e9 + 5, comment="ok")
    found = await store.review(first)
    assert found is not None and found["record"]["recording"].endswith(f"{first}.wav")
    got = await store.scored(teams={})
    assert [(c.call_id, c.score, c.week) for c in got] == [(first, 90.0, "2026-W48")]
    assert re.fullmatch(r"2026-W48", (await store.assignments(week="2026-W48"))[0]["week"])
