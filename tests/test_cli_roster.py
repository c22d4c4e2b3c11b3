"""`acd roster import` (from our database's agent_events, or a state records
CSV) and `acd roster show`."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from acd.adapters.profiles_store import ProfileStore
from acd.adapters.rows import AgentEventRow
from acd.adapters.storage import Database
from acd.cli import main
from acd.core.profiles import AgentProfile
from acd.loaders.roster_csv import load_roster
from acd.planning.roster import Activity

D = dt.datetime


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, ["roster", *args])
    assert "Traceback" not in result.output, result.output
    return result


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _database(path: Path, events: list[tuple[str, str, str, str, str]],
              profiles: tuple[AgentProfile, ...] = ()) -> str:
    """A database of this version holding these agent_events rows (agent,
    UTC time, old state, new state, reason), written as the engine writes
    them (the record writer's items), and these agent profiles; its URL."""
    url = f"sqlite+aiosqlite:///{path}"

    async def make() -> None:
        db = Database(url)
        await db.create()
        try:
            await db.write_items([AgentEventRow(a, _utc(at), old, new, reason)
                                  for a, at, old, new, reason in events])
            if profiles:
                await ProfileStore(db).upsert_agents(profiles)
        finally:
            await db.dispose()

    asyncio.run(make())
    return url


EVENTS = [
    # a1 logged in the evening before: a shift from --from on
    ("a1", "2026-11-22 22:00", "logged_out", "paused", ""),
    ("a1", "2026-11-22 22:00", "paused", "ready", ""),
    ("a1", "2026-11-23 01:00", "ready", "paused", "break"),
    ("a1", "2026-11-23 01:15", "paused", "ready", ""),
    ("a1", "2026-11-23 03:00", "ready", "reserved", ""),
    ("a1", "2026-11-23 03:00:20", "reserved", "paused", "offer NOANSWER"),
    ("a1", "2026-11-23 03:00:50", "paused", "ready", ""),
    ("a1", "2026-11-23 06:00", "ready", "logged_out", ""),
    # a2: a day shift with lunch, logged in but not ready for 5 minutes
    ("a2", "2026-11-23 08:00", "logged_out", "paused", ""),
    ("a2", "2026-11-23 08:05", "paused", "ready", ""),
    ("a2", "2026-11-23 12:00", "ready", "paused", "lunch"),
    ("a2", "2026-11-23 12:45", "paused", "ready", ""),
    ("a2", "2026-11-23 16:00", "ready", "logged_out", ""),
    # a3: still logged in at --to
    ("a3", "2026-11-23 20:00", "logged_out", "paused", ""),
    ("a3", "2026-11-23 20:00", "paused", "ready", ""),
    # after the period: left out by the query
    ("a2", "2026-11-24 08:00", "logged_out", "paused", ""),
]


def test_import_from_our_database(tmp_path: Path) -> None:
    url = _database(tmp_path / "acd.db", EVENTS,
                    (AgentProfile("a2", "1002", skills={"billing": 5, "tech": 2}),))
    out = tmp_path / "roster.csv"
    res = run("import", "--db", url, "--from", "2026-11-23", "--to", "2026-11-23", "--tz", "UTC",
              "-o", str(out))
    assert res.exit_code == 0, res.output
    r = load_roster(out)
    got = [(s.agent, s.start, s.end, s.activities) for s in r.shifts]
    assert got == [
        ("a1", D(2026, 11, 23), D(2026, 11, 23, 6),
         (Activity(D(2026, 11, 23, 1), D(2026, 11, 23, 1, 15), "break"),)),
        ("a2", D(2026, 11, 23, 8), D(2026, 11, 23, 16),
         (Activity(D(2026, 11, 23, 8), D(2026, 11, 23, 8, 5), "not_ready"),
          Activity(D(2026, 11, 23, 12), D(2026, 11, 23, 12, 45), "lunch"))),
        ("a3", D(2026, 11, 23, 20), D(2026, 11, 24), ())]
    # the skills of the stored agent profiles (a1 and a3 have none)
    assert [s.skills for s in r.shifts] == [(), (("billing", 5), ("tech", 2)), ()]
    assert "agent_events: 14 state records; roster: 3 agents, 3 shifts" in res.stdout
    assert "2026-11-23 Mon      3      3" in res.stdout
    assert "activities by kind: lunch 1 (0.8 h), break 1 (0.2 h), not_ready 1 (0.1 h)" \
        in res.stdout
    assert "1 shifts already open at the period's start" in res.stderr
    assert "1 shifts still open at the end of the records (closed there), e.g. a3 from " \
           "2026-11-23 20:00, closed at 2026-11-24 00:00" in res.stderr
    assert "1 ring-no-answer pauses" in res.stderr
    # in another zone: the same shifts at Paris wall-clock times (UTC+1 in November)
    res = run("import", "--db", url, "--from", "2026-11-23 09:00", "--to", "2026-11-23 18:00",
              "--tz", "Europe/Paris", "-o", "-")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    shifts = [(r["agent"], r["start"], r["end"]) for r in rows if r["activity"] == "shift"]
    assert ("a2", "2026-11-23 09:00", "2026-11-23 17:00") in shifts


def test_the_hour_repeated_when_clocks_go_back_keeps_the_order(tmp_path: Path) -> None:
    # Paris, 25 October 2026: 03:00 CEST (01:00 UTC) is 02:00 CET
    url = _database(tmp_path / "acd.db", [
        ("a1", "2026-10-25 00:30", "logged_out", "ready", ""),  # 02:30 CEST
        ("a1", "2026-10-25 00:50", "ready", "paused", "break"),  # 02:50 CEST
        ("a1", "2026-10-25 01:10", "paused", "ready", ""),  # 02:10 CET
        ("a1", "2026-10-25 02:00", "ready", "logged_out", "")])  # 03:00 CET
    res = run("import", "--db", url, "--tz", "Europe/Paris", "--from", "2026-10-25",
              "--to", "2026-10-25", "-o", str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    (s,) = load_roster(tmp_path / "r.csv").shifts
    # the break ended "at 02:10" after it began at 02:50: put at 02:50, of no length
    assert (s.start, s.end, s.activities) == (D(2026, 10, 25, 2, 30), D(2026, 10, 25, 3), ())
    assert "1 pauses of no length" in res.stderr


def test_import_warns_of_states_it_does_not_know(tmp_path: Path) -> None:
    url = _database(tmp_path / "acd.db", EVENTS[8:13])
    con = sqlite3.connect(tmp_path / "acd.db")
    con.execute("UPDATE agent_events SET new_state = 'on_break' WHERE reason = 'lunch'")
    con.commit()
    (bad,) = [r[0] for r in con.execute("SELECT id FROM agent_events WHERE reason = 'lunch'")]
    con.close()
    res = run("import", "--db", url, "--tz", "UTC", "--to", "2026-11-24", "-o",
              str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    assert (f"warning: skipped 1 agent events with a state this version does not know "
            f"(agent_events ids {bad})") in res.stderr
    (s,) = load_roster(tmp_path / "r.csv").shifts
    assert [a.kind for a in s.activities] == ["not_ready"]  # the lunch is not known


def test_import_refuses_a_missing_database(tmp_path: Path) -> None:
    res = run("import", "--db", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", "-o",
              str(tmp_path / "r.csv"))
    assert res.exit_code == 2
    assert "no database at" in res.stderr
    assert not (tmp_path / "none.db").exists()


STATES = """agent,at,state,reason
b1,2026-11-02T21:00:00Z,login,
b1,2026-11-02T23:00:00Z,aux,meeting
b1,2026-11-02T23:30:00Z,ready,
b1,2026-11-03T05:00:00Z,logout,
"""


def test_import_from_a_states_csv_and_show_it(tmp_path: Path) -> None:
    states = tmp_path / "states.csv"
    states.write_text(STATES, encoding="utf-8")
    out = tmp_path / "r.csv"
    res = run("import", "--states", str(states), "--tz", "Asia/Shanghai", "-o", str(out))
    assert res.exit_code == 0, res.output
    (s,) = load_roster(out).shifts
    # UTC+8: a shift across midnight, local
    assert (s.start, s.end) == (D(2026, 11, 3, 5), D(2026, 11, 3, 13))
    assert s.activities == (Activity(D(2026, 11, 3, 7), D(2026, 11, 3, 7, 30), "meeting"),)
    res = run("show", str(out), "--interval", "60", "--csv", "-")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    got = {r["interval_start"]: float(r["scheduled"]) for r in rows}
    assert got["2026-11-03 06:00"] == 1 and got["2026-11-03 07:00"] == 0.5
    assert len(got) == 8
    res = run("show", str(out), "--interval", "30", "--from", "2026-11-03 06:30",
              "--to", "2026-11-03 08:00")
    assert res.exit_code == 0, res.output
    assert [line.split() for line in res.stdout.splitlines()[-3:]] == [
        ["06:30", "1.00", "#"], ["07:00", "0.00"], ["07:30", "1.00", "#"]]
    res = run("show", str(out), "--skill", "billing")
    assert res.exit_code == 0, res.output
    assert "note: no shift in" in res.stderr and "has the skill billing" in res.stderr


def _fails(tmp_path: Path, name: str, text: str, *args: str) -> Any:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    cmd = ("import", "--states", str(p), "-o", str(tmp_path / "o.csv")) if name.startswith(
        "s") else ("show", str(p))
    res = run(*cmd, *args)
    assert res.exit_code == 2, res.output
    return res.stderr


def test_bad_input_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    err = _fails(tmp_path, "s1.csv", "agent,at,state\nb1,2026-11-02 21:00,ready\n"
                                     "b1,2026-13-02 22:00,paused\n")
    assert f"{tmp_path / 's1.csv'}:3: at: '2026-13-02 22:00'" in err
    err = _fails(tmp_path, "s2.csv", "agent,at,state\nb1,2026-11-02 21:00,lunching\n")
    assert f"{tmp_path / 's2.csv'}:2: state: 'lunching' is not an agent state" in err
    err = _fails(tmp_path, "r1.csv", "agent,start,end\nb1,2026-11-02 08:00,2026-11-02 16:00\n"
                                     "b1,2026-11-02 12:00,2026-11-02 20:00\n")
    assert (f"{tmp_path / 'r1.csv'}:3: start: b1's shift 2026-11-02 12:00 - 2026-11-02 20:00 "
            "overlaps the shift 2026-11-02 08:00 - 2026-11-02 16:00 on line 2") in err
    assert not (tmp_path / "o.csv").exists()
    res = run("import", "--states", str(tmp_path / "s2.csv"), "--db", "sqlite:///x.db", "-o",
              "-")
    assert res.exit_code == 2 and "give --db or --states, not both" in res.output
    res = run("import", "--states", str(tmp_path / "s2.csv"), "--from", "2026-11-03",
              "--to", "2026-11-02", "-o", "-")
    assert res.exit_code == 2 and "--from must come before --to" in res.output


def test_profiles_with_skills_it_cannot_read_are_counted_in_the_notes(tmp_path: Path) -> None:
    url = _database(tmp_path / "acd.db", EVENTS[8:13],
                    (AgentProfile("a2", "1002", skills={"billing": 5}),
                     AgentProfile("a4", "1004", skills={"tech": 3})))
    con = sqlite3.connect(tmp_path / "acd.db")
    con.execute("UPDATE agents SET skills = '{\"billing\": 5, \"tech\": \"high\"}' "
                "WHERE agent_id = 'a2'")
    con.execute("UPDATE agents SET skills = '{not json' WHERE agent_id = 'a4'")
    con.commit()
    con.close()
    res = run("import", "--db", url, "--tz", "UTC", "--to", "2026-11-24", "-o",
              str(tmp_path / "r.csv"))
    assert res.exit_code == 0, res.output
    assert "2 agent profiles whose stored skills cannot be read" in res.stderr
    assert "a2: level of tech not a whole number" in res.stderr
    assert "a4: not JSON" in res.stderr
    (s,) = load_roster(tmp_path / "r.csv").shifts
    assert s.skills == (("billing", 5),)  # what could be read is kept
