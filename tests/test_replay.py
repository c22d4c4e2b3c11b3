"""Replaying call records: the trace built from them (known values kept,
unknowns drawn, patience of answered calls conditional on their wait), the
roster's agents, the comparison's figures, a short generated period replayed
through the real simulator, and ``acd sim replay``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from acd.cli.loadsim import sim_group
from acd.core.profiles import AgentProfile
from acd.loaders.records_csv import write_records
from acd.loaders.roster_csv import write_roster
from acd.loadsim.month import month_scenario, run_month, states_csv
from acd.loadsim.replay import (
    agents_from_roster,
    compare,
    dst_changes,
    record_figures,
    replay_scenario,
    replay_trace,
    span_start,
)
from acd.loadsim.virtual import run_virtual
from acd.planning.fitting import fit_records
from acd.planning.records import CenterRecord
from acd.planning.roster import Activity, Roster, Shift, StateRow, roster_from_states

T0 = datetime(2026, 11, 2, 8, 0)


def _history(n: int = 800, seed: int = 5) -> list[CenterRecord]:
    """Calls of one queue: exponential patience (mean 90 s) and waits (30 s)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p, w = rng.exponential(90.0), rng.exponential(30.0)
        at = T0 + timedelta(seconds=20 * i)
        if p < w:
            out.append(CenterRecord(at, "q", "abandoned", abandon_s=p, wait_s=p, line=i + 2))
        else:
            out.append(CenterRecord(at, "q", "answered", wait_s=w, line=i + 2,
                                    handle_s=float(rng.lognormal(5, 0.5)),
                                    wrap_s=float(rng.exponential(20.0))))
    return out


def test_trace_keeps_what_is_known_and_draws_the_rest() -> None:
    hist = _history()
    fits = fit_records(hist)
    mine = [
        CenterRecord(T0 + timedelta(seconds=30), "q", "answered", 2, wait_s=150.0,
                     handle_s=61.0, wrap_s=7.0, number="n1", attributes=(("k", "v"),)),
        CenterRecord(T0 + timedelta(seconds=10), "q", "answered", 0, wait_s=40.0,
                     handle_s=99.0),  # no wrap-up in the export
        CenterRecord(T0 + timedelta(seconds=20), "q", "abandoned", 1, wait_s=33.0,
                     abandon_s=33.0),
    ]
    trace = replay_trace(mine, fits, T0, seed=3)
    assert [c.arrival_s for c in trace] == [10.0, 20.0, 30.0]
    no_wrap, abandoned, full = trace
    assert (full.handle_s, full.wrap_s, full.priority, full.number, full.attributes) == \
        (61.0, 7.0, 2, "n1", (("k", "v"),))
    assert full.patience_s is not None and full.patience_s > 150.0
    # drawn from the history's own values (empirical: over 50 of them)
    hist_wraps = {r.wrap_s for r in hist if r.wrap_s is not None}
    hist_handles = {r.handle_s for r in hist if r.handle_s is not None}
    assert no_wrap.handle_s == 99.0 and no_wrap.wrap_s in hist_wraps
    assert abandoned.patience_s == 33.0 and abandoned.priority == 1
    assert abandoned.handle_s in hist_handles and abandoned.wrap_s in hist_wraps
    # the drawn patience of answered calls always outlasts the wait they had
    many = replay_trace(hist, fits, T0, seed=1)
    by_line = {c.line: c for c in many}
    for r in hist:
        c = by_line[r.line]
        if r.outcome == "answered":
            assert c.patience_s is not None and c.patience_s > (r.wait_s or 0.0)
            assert c.handle_s == r.handle_s and c.wrap_s == r.wrap_s
        else:
            assert c.patience_s == r.abandon_s
    # the same seed, the same draws
    assert replay_trace(hist, fits, T0, seed=1) == many


def test_agents_from_roster_shifts_across_midnight_and_skills() -> None:
    night = Shift("a1", datetime(2026, 11, 2, 22), datetime(2026, 11, 3, 6),
                  skills=(("billing", 5),),
                  activities=(Activity(datetime(2026, 11, 3, 1), datetime(2026, 11, 3, 1, 30),
                                       "lunch"),))
    day = Shift("a2", datetime(2026, 11, 2, 8), datetime(2026, 11, 2, 16))
    other = Shift("a3", datetime(2026, 11, 2, 8), datetime(2026, 11, 2, 16))
    start = datetime(2026, 11, 2)
    known = {"a2": AgentProfile("a2", "201", skills={"tech": 7})}
    agents, notes = agents_from_roster(Roster((night, day, other)), start,
                                       ["billing", "tech"], known)
    a1, a2, a3 = agents
    assert a1.shifts == ((22 * 3600.0, 30 * 3600.0),)
    assert a1.activities == ((25 * 3600.0, 1800.0, "lunch"),)
    assert dict(a1.profile.skills) == {"billing": 5}
    assert a2.profile.extension == "201" and dict(a2.profile.skills) == {"tech": 7}
    assert dict(a3.profile.skills) == {"billing": 1, "tech": 1}
    assert len(notes) == 1 and "a3" in notes[0] and "every queue" in notes[0]


def test_record_figures_count_over_all_arrivals() -> None:
    recs = [
        CenterRecord(T0, "q", "answered", wait_s=20.0, handle_s=1.0),  # within (inclusive)
        CenterRecord(T0 + timedelta(minutes=5), "q", "answered", wait_s=40.0, handle_s=1.0),
        CenterRecord(T0 + timedelta(minutes=6), "q", "abandoned", abandon_s=9.0, wait_s=9.0),
        CenterRecord(T0 + timedelta(minutes=31), "r", "answered", wait_s=0.0, handle_s=1.0),
    ]
    per, queues = record_figures(recs, T0, 1800, 20.0)
    first = per[0]
    assert (first.offered, first.answered, first.abandoned, first.within) == (3, 2, 1, 1)
    assert first.abandon_pct == pytest.approx(100 / 3)
    assert first.sl_pct == pytest.approx(100 / 3) and first.asa_s == pytest.approx(30.0)
    assert per[1].sl_pct == 100.0 and queues["r"].offered == 1


def test_a_replay_of_two_generated_days_matches_them(tmp_path: Path) -> None:
    """The whole path on two days: the truth's exports replayed from the
    files' contents (roster from the state records, unknowns fitted)."""
    month = run_month(month_scenario(seed=4, days=2, calls_per_day=600.0), seed=4)
    assert month.unfinished == 0
    records = month.records
    assert all(r.abandon_s is None for r in records if r.outcome == "answered")
    rows = [StateRow(a, at, s, reason) for a, at, s, reason in month.states]
    roster, notes = roster_from_states(rows, skills=month.skills)
    assert notes.counts.get("rona_pause", 0) > 0  # RONA pauses: not breaks
    kinds = {a.kind for s in roster.shifts for a in s.activities}
    assert {"break", "lunch", "coaching", "personal"} <= kinds
    assert any(s.end.date() > s.start.date() for s in roster.shifts)  # across midnight
    fits = fit_records(records)
    sc, extra = replay_scenario(records, roster, fits, seed=2)
    assert extra == []
    res = run_virtual(sc, 2)
    cmp = compare(records, res.calls, span_start(records, roster, 1800))
    assert cmp.total.records.offered == cmp.total.replay.offered == len(records)
    ab, sl, _ = cmp.total.errors()
    assert ab is not None and sl is not None
    assert abs(ab) < 2.0 and abs(sl) < 2.0, (ab, sl)
    assert cmp.within(5.0, "abandon") >= 0.8


def _cli() -> click.Group:
    cli = click.Group()
    cli.add_command(sim_group)
    return cli


def test_cli_replay(tmp_path: Path) -> None:
    month = run_month(month_scenario(seed=6, days=1, calls_per_day=500.0), seed=6)
    rec = tmp_path / "records.csv"
    rec.write_text(write_records(month.records) + "2026-11-02 09:00,billing,0,fallback,,,,,,\n",
                   encoding="utf-8")
    states = tmp_path / "states.csv"
    states.write_text(states_csv(month.states), encoding="utf-8")
    rows = [StateRow(a, at, s, reason) for a, at, s, reason in month.states]
    roster_file = tmp_path / "roster.csv"
    roster_file.write_text(write_roster(roster_from_states(rows, skills=month.skills)[0]),
                           encoding="utf-8")
    out_csv, plot = tmp_path / "cmp.csv", tmp_path / "cmp.png"
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--roster", str(roster_file),
                                    "--csv", str(out_csv), "--plot", str(plot), "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "censored" in r.output and "per interval" in r.output
    assert "within 5 points" in r.output and "1 row with another outcome skipped" in r.output
    lines = out_csv.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("interval,offered,offered_replay,abandon_pct")
    assert lines[-1].startswith(f"total,{len(month.records)},{len(month.records)},")
    assert plot.stat().st_size > 10_000
    # --states: the roster from the state records; no skills known: every queue (noted)
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--states", str(states),
                                    "--json", "--interval", "60"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["calls"] == len(month.records) and doc["skipped"] == {"fallback": 1}
    assert set(doc["fits"]) == {"billing", "sales", "tech"}
    assert 0 < doc["fits"]["tech"]["patience"]["censored_share"] < 1
    assert any("every queue" in n for n in doc["notes"])
    assert doc["summary"]["intervals"] == sum(1 for i in doc["intervals"] if i["offered"])
    # a base scenario: the agents' skills (and the routing, thresholds)
    base = tmp_path / "base.yaml"
    agents = "\n".join(f"  - {{id: {a}, skills: {{{', '.join(f'{k}: {v}' for k, v in sk)}}}}}"
                       for a, sk in month.skills.items())
    base.write_text("name: base\narrivals: {per_hour: [10]}\nqueues: {billing: {share: 0.5}, "
                    "tech: {share: 0.3}, sales: {share: 0.2}}\nagents:\n" + agents + "\n",
                    encoding="utf-8")
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--states", str(states),
                                    "--scenario", str(base), "--ring-no-answer", "0",
                                    "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert not any("every queue" in n for n in doc["notes"])
    assert not any("ring-no-answer pauses in the state records" in n for n in doc["notes"])
    total = doc["summary"]["records"]
    assert abs(total["abandon_pct"] - total["abandon_pct_replay"]) < 3.0


def test_cli_replay_errors(tmp_path: Path) -> None:
    rec = tmp_path / "records.csv"
    rec.write_text("arrival,queue,outcome,wait,handle\n2026-11-02 08:00,q,answered,3,\n",
                   encoding="utf-8")
    roster = tmp_path / "roster.csv"
    roster.write_text("agent,start,end,activity,skills\na1,2026-11-02 07:00,2026-11-02 15:00,"
                      "shift,q=5\n", encoding="utf-8")
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--roster", str(roster)])
    assert r.exit_code == 2 and f"{rec}:2: handle: empty" in r.output
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec)])
    assert r.exit_code == 2 and "give --roster or --states" in r.output


def test_cli_replay_warns_when_the_roster_ends_before_the_records(tmp_path: Path) -> None:
    # calls every 2 minutes 08:00-09:58, nobody abandoned (patience unbounded);
    # the only agent's shift ends at 09:00: the later calls are left waiting
    rec = tmp_path / "records.csv"
    rec.write_text("arrival,queue,outcome,wait,handle\n" + "".join(
        f"{T0 + timedelta(minutes=2 * i):%Y-%m-%d %H:%M},q,answered,3,60\n" for i in range(60)),
        encoding="utf-8")
    roster = tmp_path / "roster.csv"
    roster.write_text("agent,start,end,activity,skills\n"
                      "a1,2026-11-02 08:00,2026-11-02 09:00,shift,q=5\n"
                      "a1,2026-11-02 08:30,2026-11-02 08:40,break,\n", encoding="utf-8")
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--roster", str(roster)])
    assert r.exit_code == 0, r.output
    assert "warning: 30 calls arrived when no agent with their queue's skill was on shift " \
           "any more" in r.output
    assert "calls left unserved, still waiting at the end" in r.output
    assert "(no agent with skill q on shift after 2026-11-02 09:00)" in r.output
    r = CliRunner().invoke(_cli(), ["sim", "replay", str(rec), "--roster", str(roster),
                                    "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert any(w.startswith("30 calls arrived when no agent") for w in doc["warnings"])
    assert doc["activity_counts"] == {"planned": 1}


def test_dst_changes_in_the_span() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    # 2026: summer time from 29 March 02:00 (-> 03:00) to 25 October 03:00 (-> 02:00)
    got = dst_changes(datetime(2026, 3, 28, 8), datetime(2026, 10, 26, 8), berlin)
    assert got == [datetime(2026, 3, 29, 3), datetime(2026, 10, 25, 3)]
    assert dst_changes(datetime(2026, 11, 2), datetime(2026, 11, 30), berlin) == []
