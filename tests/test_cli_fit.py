"""``acd report fit`` end to end (issue 16, build item 7): a SQLite database
made with the engine's schema holding a morning's call records and agent
state changes (as the engine writes them: UTC), a requirements CSV and a
roster CSV, in a zone one hour east of UTC; the printed and CSV figures are
checked against values worked out by hand in the comments."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from acd.adapters.schema import agent_events, call_records, metadata, utc
from acd.cli import main

TZ = "Europe/Berlin"  # UTC+1 in November
ZONE = dt.timezone(dt.timedelta(hours=1))
DAY = "2026-11-02"


def ts(local: str) -> float:
    """'2026-11-02 08:10[:ss]' (or 'HH:MM[:ss]' on DAY) in Berlin: epoch seconds."""
    text = local if len(local) > 8 else f"{DAY} {local}"
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp()


#: (local time, agent, old, new, reason)
EVENTS = [
    # a4: a night shift logged in the day before (its state at midnight comes
    # from before the report), out at 00:45
    ("2026-11-01 23:00", "a4", "logged_out", "ready", ""),
    ("00:45", "a4", "ready", "logged_out", ""),
    # a1: in at 07:50, a 15-minute break (half an interval) 08:10-08:25, out at 10:00
    ("07:50", "a1", "logged_out", "ready", ""),
    ("08:10", "a1", "ready", "paused", "break"),
    ("08:25", "a1", "paused", "ready", ""),
    ("10:00", "a1", "ready", "logged_out", ""),
    # a2: in at 08:15, two calls, out at 09:15 (mid-interval)
    ("08:15", "a2", "logged_out", "ready", ""),
    ("08:20", "a2", "ready", "reserved", ""),
    ("08:21", "a2", "reserved", "on_call", ""),
    ("08:40", "a2", "on_call", "wrap_up", ""),
    ("08:45", "a2", "wrap_up", "ready", ""),
    ("08:50:05", "a2", "ready", "reserved", ""),
    ("08:50:10", "a2", "reserved", "on_call", ""),
    ("09:00", "a2", "on_call", "wrap_up", ""),
    ("09:02", "a2", "wrap_up", "ready", ""),
    ("09:15", "a2", "ready", "logged_out", ""),
    # a3: in at 08:40, a call, paused after it at 09:10, out at 09:20
    ("08:40", "a3", "logged_out", "ready", ""),
    ("09:05", "a3", "ready", "reserved", ""),
    ("09:05:05", "a3", "reserved", "on_call", ""),
    ("09:08", "a3", "on_call", "wrap_up", ""),
    ("09:10", "a3", "wrap_up", "paused", "coaching"),
    ("09:20", "a3", "paused", "logged_out", ""),
]

#: (call id, queue, queued, outcome, wait, agent, talk): the default service
#: level (answered within 20 s) applies, no configuration
CALLS = [
    ("c1", "billing", "08:05", "abandoned", 30.0, None, None),
    ("c2", "billing", "08:19:40", "answered", 80.0, "a2", 1140.0),
    ("c3", "tech", "09:05", "answered", 5.0, "a3", 175.0),
    ("c4", "billing", "08:50", "answered", 10.0, "a2", 590.0),
]

ROSTER = """\
agent,start,end,activity,skills
a1,2026-11-02 08:00,2026-11-02 10:00,shift,billing=5
a1,2026-11-02 08:15,2026-11-02 08:30,break,
a2,2026-11-02 08:00,2026-11-02 09:30,shift,billing=5
a3,2026-11-02 08:30,2026-11-02 09:30,shift,tech=5
"""

REQUIREMENTS = """\
interval_start,queue,required
2026-11-02 08:00,billing,2
2026-11-02 08:30,billing,2
2026-11-02 08:30,tech,1
2026-11-02 09:00,billing,2
2026-11-02 09:00,tech,1
2026-11-02 09:30,billing,1
"""


def make_db(path: Path) -> str:
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        for at, agent, old, new, reason in EVENTS:
            conn.execute(agent_events.insert().values(
                agent_id=agent, at=utc(ts(at)), old_state=old, new_state=new, reason=reason))
        for cid, queue, queued, outcome, wait, who, talk in CALLS:
            q = ts(queued)
            answered = q + wait if who else None
            end = (answered or 0.0) + (talk or 0.0) if who else q + wait
            conn.execute(call_records.insert().values(
                call_id=cid, caller="13800000001", caller_name="", server="pbx1",
                started_at=utc(q - 20), ended_at=utc(end), outcome=outcome,
                ivr_path="menu", queue=queue, queued_at=utc(q), wait_s=wait,
                agent_id=who, answered_at=utc(answered) if answered else None,
                talk_s=talk, offers=1 if who else 0, customer_class="standard",
                priority=0, ivr_end=""))
    engine.dispose()
    path.chmod(0o600)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The database and the plan files, made once (the tests only read them)."""
    d = tmp_path_factory.mktemp("fit")
    (d / "roster.csv").write_text(ROSTER)
    (d / "req.csv").write_text(REQUIREMENTS)
    return {"db": make_db(d / "acd.db"), "roster": str(d / "roster.csv"),
            "req": str(d / "req.csv")}


@pytest.fixture
def setup(files: dict[str, str], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no ./acd.yaml
    return {**files, "dir": str(tmp_path)}


def run(args: list[str]) -> str:
    res = CliRunner().invoke(main, ["report", "fit", *args])
    assert res.exit_code == 0, res.output
    return res.output


def rows_of(text: str) -> dict[str, dict[str, str]]:
    return {r["start"] if r["interval"] != "day" else "day": r
            for r in csv.DictReader(io.StringIO(text))}


def num(v: str) -> float | None:
    return float(v) if v != "" else None


#: hand-computed, 30-minute intervals (local time), all queues
#: available: 00:00 a4 = 1; 00:30 a4 to 00:45 = 0.5; 07:30 a1 from 07:50 = 1/3;
#: 08:00 a1 (10 + 5 min) 0.5 + a2 0.5 = 1; 08:30 a1 1 + a2 1 + a3 (20 min) 2/3;
#: 09:00 a1 1 + a2 (15 min) 0.5 + a3 (10 min, then paused) 1/3; 09:30 a1 1
AVAILABLE = {"00:00": 1.0, "00:30": 0.5, "07:30": 1 / 3, "08:00": 1.0, "08:30": 8 / 3,
             "09:00": 11 / 6, "09:30": 1.0, "10:00": 0.0}
#: scheduled: 08:00 a1 (break 08:15-08:30) 0.5 + a2 1; 08:30, 09:00 three; 09:30 a1
SCHEDULED = {"08:00": 1.5, "08:30": 3.0, "09:00": 3.0, "09:30": 1.0, "10:00": 0.0}
REQUIRED = {"08:00": 2.0, "08:30": 3.0, "09:00": 3.0, "09:30": 1.0}


def test_csv_of_all_queues_against_the_hand_figures(setup: dict[str, str]) -> None:
    out = run(["--requirements", setup["req"], "--roster", setup["roster"], "--db", setup["db"],
               "--day", DAY, "--tz", TZ, "--csv", "-"])
    rows = rows_of(out)
    assert len(rows) == 48 + 1  # every 30-minute interval of the day, then the day
    for hhmm, want in AVAILABLE.items():
        assert num(rows[f"{DAY} {hhmm}"]["available"]) == pytest.approx(want), hhmm
    for hhmm in ("00:00", "07:30", "08:00", "09:30", "10:00"):
        r = rows[f"{DAY} {hhmm}"]
        assert num(r["scheduled"]) == pytest.approx(SCHEDULED.get(hhmm, 0.0)), hhmm
        assert num(r["required"]) == REQUIRED.get(hhmm), hhmm
    r = rows[f"{DAY} 09:00"]
    assert num(r["plan_gap"]) == pytest.approx(0.0)
    assert num(r["adherence_gap"]) == pytest.approx(11 / 6 - 3)
    assert num(r["fit_gap"]) == pytest.approx(11 / 6 - 3)
    # calls: 08:00 c1 abandoned, c2 answered after 80 s: SL 0/2; 08:30 c4 in
    # 10 s: 1/1; 09:00 c3 (tech) in 5 s: 1/1
    assert (rows[f"{DAY} 08:00"]["offered"], rows[f"{DAY} 08:00"]["abandoned"],
            num(rows[f"{DAY} 08:00"]["service_level"])) == ("2", "1", 0.0)
    assert num(rows[f"{DAY} 08:30"]["service_level"]) == 1.0
    assert rows[f"{DAY} 07:30"]["service_level"] == ""
    day = rows["day"]
    # score over 08:00-09:30: need 2 + 3 + 3 + 1 = 9; |gap| 1 + 1/3 + 7/6 + 0 = 2.5
    assert num(day["fit_score"]) == pytest.approx(100 * (1 - 2.5 / 9))
    assert num(day["covered"]) == pytest.approx(0.25)  # only 09:30 has enough
    # plan: |1.5 - 2| only
    assert num(day["plan_score"]) == pytest.approx(100 * (1 - 0.5 / 9))
    # the day: 4 calls, 2 of them answered within 20 s
    assert (day["offered"], day["answered"], day["abandoned"]) == ("4", "3", "1")
    assert num(day["service_level"]) == pytest.approx(0.5)


def test_one_queue_counts_the_agents_with_its_skill(setup: dict[str, str]) -> None:
    res = CliRunner().invoke(main, [
        "report", "fit", "--requirements", setup["req"], "--roster", setup["roster"],
        "--db", setup["db"], "--tz", TZ, "--queue", "billing", "--csv", "-"])
    assert res.exit_code == 0, res.output
    # a4 has no skills anywhere: named, not counted
    assert "1 agents with no known skills" in res.stderr and "a4" in res.stderr
    rows = rows_of(res.stdout)
    assert len(rows) == 48 + 1  # no --day: the requirements' day
    # billing agents a1, a2: 08:30 2, 09:00 1.5; a4's night does not count
    got = {h: num(rows[f"{DAY} {h}"]["available"]) for h in ("00:00", "08:30", "09:00")}
    assert got == pytest.approx({"00:00": 0.0, "08:30": 2.0, "09:00": 1.5})
    assert num(rows[f"{DAY} 08:30"]["scheduled"]) == pytest.approx(2.0)
    assert num(rows[f"{DAY} 09:00"]["required"]) == 2.0
    day = rows["day"]
    # need 2 + 2 + 2 + 1 = 7, |gap| 1 + 0 + 0.5 + 0 = 1.5; covered 08:30, 09:30
    assert num(day["fit_score"]) == pytest.approx(100 * (1 - 1.5 / 7))
    assert num(day["covered"]) == pytest.approx(0.5)
    # billing's calls: c1, c2, c4, one answered within 20 s
    assert day["offered"] == "3"
    assert num(day["service_level"]) == pytest.approx(1 / 3)


def test_table_score_lines_and_plot(setup: dict[str, str]) -> None:
    png = Path(setup["dir"]) / "fit.png"
    out = run(["--requirements", setup["req"], "--roster", setup["roster"], "--db", setup["db"],
               "--day", DAY, "--tz", TZ, "--plot", str(png)])
    assert f"{DAY}: fit score {100 * (1 - 2.5 / 9):.1f}" in out
    assert "available ≥ required in 25% of the intervals that need agents" in out
    assert f"plan score {100 * (1 - 0.5 / 9):.1f}" in out
    assert "SL 50.0% (target 80%), offered 4, abandoned 1" in out
    lines = [ln for ln in out.splitlines() if "11-02 09:00" in ln]
    assert len(lines) == 1 and "1.8" in lines[0] and "3.0" in lines[0]
    # the night's empty intervals are left out of the table, and said so
    assert "11-02 03:00" not in out and "intervals with no agent required" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in out


def test_without_plan_files_the_plan_columns_are_missing(setup: dict[str, str]) -> None:
    out = run(["--db", setup["db"], "--day", DAY, "--tz", TZ, "--interval", "60"])
    line = next(ln for ln in out.splitlines() if "11-02 08:00" in ln)
    # 60-minute interval 08:00: available a1 (60 - 15 min of break) 0.75 + a2
    # (from 08:15) 0.75 + a3 (from 08:40) 1/3 = 1.8; nothing required or
    # scheduled (—); the three calls of 08:00-09:00, one answered within 20 s
    cells = [c.strip() for c in line.split("│")[1:-1]]
    assert cells == ["11-02 08:00", "—", "—", "1.8", "—", "—", "—", "33.3%", "3", "1"]
    assert f"{DAY}: fit score — (no agent required: no requirements" in out


def test_bad_input_is_named(setup: dict[str, str]) -> None:
    bad = Path(setup["dir"]) / "bad.csv"
    bad.write_text("agent,start,end,activity,skills\na1,2026-11-02 08:00,soon,shift,\n")
    res = CliRunner().invoke(main, ["report", "fit", "--roster", str(bad), "--db", setup["db"],
                                    "--day", DAY, "--tz", TZ])
    assert res.exit_code == 2 and f"{bad}:2: end" in res.output
    res = CliRunner().invoke(main, ["report", "fit", "--requirements", setup["req"],
                                    "--db", setup["db"], "--queue", "sales", "--tz", TZ])
    assert res.exit_code == 2 and "no requirement for queue 'sales'" in res.output
    assert "billing, tech" in res.output
    for args, msg in ((["--interval", "20"], "'20' is not 15, 30 or 60"),
                      (["--day", DAY, "--from", DAY], "--day is one day")):
        res = CliRunner().invoke(main, ["report", "fit", "--db", setup["db"], *args])
        assert res.exit_code == 2 and msg in res.output, res.output
    missing = Path(setup["dir"]) / "nothere.db"
    res = CliRunner().invoke(main, ["report", "fit", "--db", f"sqlite+aiosqlite:///{missing}",
                                    "--day", DAY])
    assert res.exit_code == 2 and not missing.exists()


def test_available_is_the_agents_available_time_of_report_calls(setup: dict[str, str]) -> None:
    """The same state changes, the same time: fit's available per interval is
    the agents' summed available_s of `acd report calls --by agent` over
    the interval's length."""
    fit = rows_of(run(["--db", setup["db"], "--day", DAY, "--tz", TZ, "--csv", "-"]))
    res = CliRunner().invoke(main, ["report", "calls", "--db", setup["db"], "--since", DAY,
                                    "--until", DAY, "--tz", TZ, "--interval", "30m",
                                    "--by", "agent", "--csv", "-"])
    assert res.exit_code == 0, res.output
    per: dict[str, float] = {}
    for r in csv.DictReader(io.StringIO(res.stdout)):
        if r["interval"] != "all":
            key = dt.datetime.fromisoformat(r["interval"]).strftime("%Y-%m-%d %H:%M")
            per[key] = per.get(key, 0.0) + float(r["available_s"])
    assert per  # the agents were there
    for start, r in fit.items():
        if start != "day":
            assert num(r["available"]) == pytest.approx(per.get(start, 0.0) / 1800), start


def test_a_day_the_database_knows_nothing_of_is_said(setup: dict[str, str]) -> None:
    # a day long before the database's records: no agent state at all, so the
    # zero availability (and score) is named rather than shown as a finding
    out = run(["--requirements", setup["req"], "--db", setup["db"], "--day", "2026-10-01",
               "--tz", TZ])
    assert "the database holds no agent state changes for this period" in out
    day = run(["--requirements", setup["req"], "--db", setup["db"], "--day", DAY, "--tz", TZ])
    assert "holds no agent state changes" not in day
