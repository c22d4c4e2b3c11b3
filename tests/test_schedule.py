"""Scheduling (acd.planning.schedule, acd.loaders.schedule_rules, ``acd schedule``):
break windows, small solves checked against the rules and the roster's own
count of scheduled agents, multi-skilled agents, shifts across midnight,
weekly limits, the rules file's errors and the command."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from helpers import acd

from acd.loaders.roster_csv import parse_roster, write_roster
from acd.loaders.schedule_rules import RulesError, load_rules, parse_duration, parse_rules
from acd.planning.schedule import (
    DEFAULT_BREAKS,
    AgentType,
    BreakRule,
    Need,
    Schedule,
    ScheduleError,
    ScheduleRules,
    break_windows,
    coverage,
    solve,
)

DAY = dt.datetime(2026, 12, 7)
ROOT = Path(__file__).resolve().parent.parent


def needs(queue: str, start: str, values: list[int], day: dt.datetime = DAY) -> list[Need]:
    h, m = map(int, start.split(":"))
    t0 = day + dt.timedelta(hours=h, minutes=m)
    return [Need(t0 + dt.timedelta(minutes=30 * i), queue, v) for i, v in enumerate(values)]


def check_rules(sched: Schedule, rules: ScheduleRules) -> None:
    """Every shift follows the rules: length, start step, its breaks in their windows."""
    for s in sched.roster.shifts:
        length = int((s.end - s.start).total_seconds() // 60)
        assert length in rules.lengths_min
        assert (s.start.hour * 60 + s.start.minute) % rules.start_step_min == 0
        plan = break_windows(length, rules.breaks)
        assert len(s.activities) == len(plan)
        for a, (kind, minutes, w0, w1) in zip(s.activities, plan, strict=True):
            off = (a.start - s.start).total_seconds() / 60
            assert a.kind == kind and (a.end - a.start).total_seconds() == minutes * 60
            assert w0 <= off and off + minutes <= w1


def test_break_windows_default() -> None:
    eight = break_windows(480, DEFAULT_BREAKS)
    assert [(k, m) for k, m, _, _ in eight] == [("break", 15), ("lunch", 30), ("break", 15)]
    assert [(a, b) for _, _, a, b in eight] == [(60, 180), (180, 300), (300, 420)]
    assert [(k, a, b) for k, _, a, b in break_windows(360, DEFAULT_BREAKS)] == [
        ("break", 60, 180), ("lunch", 180, 300)]
    assert break_windows(240, DEFAULT_BREAKS) == [("break", 15, 60, 180)]
    assert break_windows(120, DEFAULT_BREAKS) == []
    with pytest.raises(ScheduleError, match="no room"):
        break_windows(240, (BreakRule("lunch", 60, window=(60, 180)),
                            BreakRule("break", 15, per_min=240, margin_min=60)))


@pytest.mark.parametrize("backend", ["highs", "cp-sat"])
def test_small_day_is_covered_and_follows_the_rules(backend: str) -> None:
    reqs = needs("billing", "08:00", [2, 3, 3, 4, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1])
    rules = ScheduleRules(agents=(AgentType("b", (("billing", 5),), 10),))
    sched = solve(reqs, rules, time_limit_s=5.0, backend=backend)
    assert sched.status in ("OPTIMAL", "FEASIBLE")
    assert all(r.covered for r in sched.coverage), sched.uncovered
    check_rules(sched, rules)
    # the coverage agrees with the roster's own count (single skill: nothing to assign)
    mean = dict(sched.roster.scheduled(reqs[0].start, reqs[-1].start + dt.timedelta(minutes=30),
                                       1800, "billing"))
    for r in sched.coverage:
        assert r.scheduled == pytest.approx(mean[r.start])
    # paid hours are what the shifts say; no interval is over-covered by a whole agent
    # more than the 4-hour minimum shift can explain
    assert sched.paid_hours == sum((s.end - s.start).total_seconds()
                                   for s in sched.roster.shifts) / 3600
    # the roster goes through its CSV unchanged
    assert parse_roster(write_roster(sched.roster), "r.csv") == sched.roster


def test_multi_skilled_agents_serve_one_queue_at_a_time() -> None:
    reqs = needs("billing", "10:00", [2] * 8) + needs("tech", "10:00", [1] * 8)
    rules = ScheduleRules(agents=(AgentType("flex", (("billing", 5), ("tech", 3)), 5),),
                          lengths_min=(240,), breaks=())
    sched = solve(reqs, rules, time_limit_s=5.0)
    assert all(r.covered for r in sched.coverage)
    mean = dict(sched.roster.scheduled(DAY + dt.timedelta(hours=10),
                                       DAY + dt.timedelta(hours=14), 1800))
    for start, total in mean.items():  # each agent counted once: 3 needed at once
        rows = [r for r in sched.coverage if r.start == start]
        assert sum(r.scheduled for r in rows) == pytest.approx(total)
        assert total >= 3
    # too few agents: the missing ones are counted, never hidden
    short = solve(reqs, ScheduleRules(agents=(AgentType("flex", (("billing", 5), ("tech", 3)),
                                                        2),), lengths_min=(240,), breaks=()),
                  time_limit_s=5.0)
    assert short.under_interval_agents == pytest.approx(8.0)
    assert len(short.uncovered) == 8
    assert all(r.queue == "tech" or r.scheduled_min < r.required for r in short.uncovered)


def test_a_night_is_covered_by_shifts_across_midnight() -> None:
    reqs = needs("night", "22:00", [2] * 8)  # 22:00 - 02:00
    rules = ScheduleRules(agents=(AgentType("n", (("night", 5),), 4),), lengths_min=(240,),
                          start_windows=((21 * 60, 23 * 60),))
    sched = solve(reqs, rules, time_limit_s=5.0)
    assert all(r.covered for r in sched.coverage)
    assert all(s.start.hour == 22 and s.end.date() > s.start.date() for s in sched.roster.shifts)
    check_rules(sched, rules)


def test_weekly_limits_and_rest_between_shifts() -> None:
    reqs = [n for d in range(4) for n in needs("q", "08:00", [1] * 8,
                                               DAY + dt.timedelta(days=d))]
    rules = ScheduleRules(agents=(AgentType("a", (("q", 5),), 1, max_shifts=2),),
                          lengths_min=(240,), breaks=())
    sched = solve(reqs, rules, time_limit_s=5.0)
    assert len(sched.roster.shifts) == 2  # one agent, at most two shifts a week
    assert sched.under_interval_agents == pytest.approx(16.0)  # two days of 8 intervals
    # two agents, 12-hour rest: one shift a day each, rest kept between an agent's shifts
    rules2 = ScheduleRules(agents=(AgentType("a", (("q", 5),), 2, min_rest_min=12 * 60),),
                           lengths_min=(240,), breaks=())
    sched2 = solve(reqs, rules2, time_limit_s=5.0)
    assert all(r.covered for r in sched2.coverage) and not sched2.unassigned
    by_agent: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for s in sched2.roster.shifts:
        by_agent.setdefault(s.agent, []).append((s.start, s.end))
    for spans in by_agent.values():
        for (_, e1), (s2, _) in itertools.pairwise(spans):
            assert (s2 - e1) >= dt.timedelta(hours=12)


def test_coverage_of_an_imported_roster_counts_part_time() -> None:
    from acd.planning.roster import Activity, Roster, Shift

    roster = Roster((Shift("x", DAY + dt.timedelta(hours=8), DAY + dt.timedelta(hours=9),
                           skills=(("q", 5),), activities=(Activity(
                               DAY + dt.timedelta(hours=8, minutes=10),
                               DAY + dt.timedelta(hours=8, minutes=25), "break"),)),))
    rows = coverage(roster, needs("q", "08:00", [1, 1]), interval_min=30, slot_min=15)
    assert [r.scheduled for r in rows] == [pytest.approx(0.5), 1.0]
    assert [r.scheduled_min for r in rows] == [pytest.approx(1 / 3), 1.0]
    assert not rows[0].covered and rows[1].covered


def test_rules_file_and_its_errors(tmp_path: Path) -> None:
    rules = load_rules(ROOT / "examples" / "schedule.yaml")
    assert rules.lengths_min == (480, 360, 240) and rules.start_step_min == 30
    assert [a.name for a in rules.agents] == ["billing", "tech", "flex"]
    assert rules.agents[2].skills == (("billing", 5), ("tech", 4))
    assert parse_duration("7h30") == 450 and parse_duration("45m") == 45
    assert parse_duration("90") == 90 and parse_duration("h") is None
    cases = {
        "agents: []\n": "r.yaml:1:9: agents is empty",
        "agents:\n  - {type: a, skills: [q], count: 2, colour: red}\n":
            "r.yaml:2:38: agents[0]: unknown key 'colour'",
        "shifts: {lengths: [8 hours]}\nagents: [{type: a, skills: [q], count: 1}]\n":
            "r.yaml:1:20: shifts: lengths[0] must be a duration",
        "breaks:\n  - {kind: lunch, minutes: 30, window: [3h, 3h15]}\n"
        "agents: [{type: a, skills: [q], count: 1}]\n":
            "r.yaml:2:40: breaks[0]: the window is shorter than the break",
        "agents: [{id: ann, count: 2, skills: [q]}]\n":
            "r.yaml:1:20: agents[0]: a named agent ('id') has no count",
    }
    for text, message in cases.items():
        with pytest.raises(RulesError) as info:
            parse_rules(text, "r.yaml")
        assert str(info.value).startswith(message), str(info.value)


def test_command_writes_roster_and_coverage(tmp_path: Path) -> None:
    from acd.loaders.planning_csv import write_requirements
    from acd.planning.requirements import Requirement

    reqs = [Requirement(n.start, n.queue, n.required)
            for n in needs("billing", "08:00", [1, 2, 2, 2, 2, 1, 1, 1])]
    (tmp_path / "req.csv").write_text(write_requirements(reqs), encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(
        "shifts: {lengths: [4h], start_step: 30m}\nbreaks: []\n"
        "agents: [{type: b, skills: [billing], count: 4}]\n", encoding="utf-8")
    out, cov = tmp_path / "roster.csv", tmp_path / "cov.csv"
    res = acd("schedule", str(tmp_path / "req.csv"), "--rules", str(tmp_path / "rules.yaml"),
              "-o", str(out), "--csv", str(cov), "--time-limit", "5")
    assert res.exit_code == 0, res.output
    assert "covered 8/8 interval-queues" in res.output
    roster = parse_roster(out.read_text(encoding="utf-8"), str(out))
    assert len(roster.shifts) >= 2
    lines = cov.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "interval_start,queue,required,scheduled,scheduled_min,over,under,covered"
    assert len(lines) == 9 and all(line.endswith(",1") for line in lines[1:])
    (tmp_path / "bad.yaml").write_text("agents:\n  - {type: b, skills: [billing]}\n",
                                       encoding="utf-8")
    bad = acd("schedule", str(tmp_path / "req.csv"), "--rules", str(tmp_path / "bad.yaml"))
    assert bad.exit_code == 2
    assert "bad.yaml:2:5: agents[0] needs a 'count'" in bad.output


def test_naming_model_keeps_rest_and_weekly_limits() -> None:
    """The CP-SAT naming (used when the greedy pass leaves a shift out): as
    many shifts as possible, none breaking rest, one-a-day or max_shifts."""
    from acd.planning.schedule import _cp_name

    # slots of 60 min: shifts (type, start, length, breaks); days of 24 slots
    mine: list[tuple[int, int, int, list[Any]]] = [
        (0, 8, 8, []), (0, 14, 8, []), (0, 32, 8, []), (0, 44, 8, []), (0, 56, 8, [])]
    day_of = [s // 24 for _, s, _, _ in mine]
    owner = _cp_name(mine, day_of, n_agents=2, rest=11, max_shifts=2, seed=0)
    placed = [j for j, o in enumerate(owner) if o >= 0]
    assert len(placed) == 4  # 2 agents x 2 shifts at most
    for a in (0, 1):
        js = sorted(j for j in placed if owner[j] == a)
        assert len(js) <= 2 and len({day_of[j] for j in js}) == len(js)
        for j, k in itertools.pairwise(js):
            assert mine[k][1] >= mine[j][1] + mine[j][2] + 11
