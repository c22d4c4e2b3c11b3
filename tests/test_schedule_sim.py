"""Done-when of issue 16, scheduling: a week of requirements (Erlang A per
interval) is scheduled, and the virtual simulator, running the schedule as
the agents' shifts (breaks taken as time logged out), confirms the service
level target in every interval the schedule claims covered.

How it is confirmed: the calls of each interval are drawn (Poisson arrivals
per queue and interval, exponential handle times and patience: the Erlang A
model) in 20 replications.  An interval-queue the schedule claims covered
*misses* when its service level (answered within 20 s / offered), the mean
over the replications, is below the target with 99.9 % one-sided confidence
(Student t over the replications): no covered interval may miss.  Besides,
the SL pooled over all covered intervals must reach the target, and at least
90 % of them must reach it on the point estimate alone (an interval staffed
at exactly the Erlang A count has a true SL just above the target, so its
estimate falls below it about half the time when the count is tight).  Shift changes:
the simulator keeps an agent whose shift (or a piece before a break) ends
during a call until the call ends, and backlog is carried from interval to
interval, as in a real center.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

import pytest

from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.loaders.planning_csv import write_forecast
from acd.loaders.roster_csv import write_roster
from acd.loadsim.figures import VirtualResult
from acd.loadsim.model import AgentSpec, Dist, QueueSpec, Scenario, TraceCall
from acd.loadsim.scenario import load_scenario
from acd.loadsim.virtual import run_virtual
from acd.planning.erlang import agents_needed, erlang_a
from acd.planning.forecast import ForecastRow
from acd.planning.schedule import (
    AgentType,
    BreakRule,
    CoverageRow,
    Need,
    Schedule,
    ScheduleRules,
    solve,
)

pytestmark = pytest.mark.slow

AHT_S = 240.0
PATIENCE_S = 120.0
TARGET = 0.80
T_S = 20.0
START = dt.datetime(2026, 12, 7)  # a Monday
QUEUES = {"billing": 1.0, "tech": 0.5}
REPLICATIONS = 20
#: one-sided confidence of the "misses the target" verdict per interval (about 900
#: intervals are judged: at 0.999, about one false alarm if every one sat exactly at the
#: target; they sit above it, as the agent counts are rounded up)
CONFIDENCE = 0.999


def rate(h: float, day: int) -> float:
    """Calls per hour of billing at hour h: a double peak, quieter at the weekend."""
    scale = 0.7 if day >= 5 else 1.0
    return scale * (60 + 140 * math.exp(-((h - 10.5) / 1.8) ** 2)
                    + 110 * math.exp(-((h - 16) / 2) ** 2))


def week() -> tuple[list[Need], dict[tuple[dt.datetime, str], float]]:
    needs, rates = [], {}
    for d in range(7):
        for k in range(14, 46):  # 07:00 - 23:00, 30-minute intervals
            at = START + dt.timedelta(days=d, minutes=30 * k)
            for q, share in QUEUES.items():
                lam = rate(k / 2 + 0.25, d) * share
                rates[(at, q)] = lam
                needs.append(Need(at, q, agents_needed(lam, AHT_S, TARGET, T_S,
                                                       patience_s=PATIENCE_S)))
    return needs, rates


def scenario(roster_shifts: list[tuple[str, str, float, list[tuple[float, float]]]]
             ) -> Scenario:
    policy = simple_policy({q: 20.0 for q in QUEUES})
    agents = []
    per_agent: dict[str, tuple[str, list[tuple[float, float]]]] = {}
    for agent, queue, _, pieces in roster_shifts:
        per_agent.setdefault(agent, (queue, []))[1].extend(pieces)
    for agent, (queue, pieces) in sorted(per_agent.items()):
        agents.append(AgentSpec(AgentProfile(agent, agent, skills={queue: 5}),
                                tuple(sorted(pieces))))
    return Scenario(name="week", file="<test>", policy=policy, agents=tuple(agents),
                    queues={q: QueueSpec(q) for q in QUEUES}, interval_s=1800.0,
                    handle=Dist("exponential", AHT_S),
                    patience=Dist("exponential", PATIENCE_S), sl_seconds=T_S)


def trace(rates: dict[tuple[dt.datetime, str], float], seed: int) -> list[TraceCall]:
    rng = random.Random(seed)
    calls: list[TraceCall] = []
    for (at, q), lam in sorted(rates.items()):
        t0 = (at - START).total_seconds()
        t = t0 + rng.expovariate(lam / 3600.0)
        while t < t0 + 1800.0:
            calls.append(TraceCall(t, f"n{len(calls)}", q, handle_s=rng.expovariate(1 / AHT_S),
                                   patience_s=rng.expovariate(1 / PATIENCE_S)))
            t += rng.expovariate(lam / 3600.0)
    calls.sort(key=lambda c: c.arrival_s)
    return calls


@pytest.fixture(scope="module")
def week_schedule() -> tuple[Schedule, dict[tuple[dt.datetime, str], float]]:
    needs, rates = week()
    rules = ScheduleRules(
        agents=(AgentType("b", (("billing", 5),), 60), AgentType("t", (("tech", 5),), 40)),
        lengths_min=(480, 360, 240), start_step_min=60,
        breaks=(BreakRule("lunch", 30, min_shift_min=360, window=(180, 300)),))
    return solve(needs, rules, time_limit_s=20.0), rates


def test_week_schedule_meets_the_target_in_the_simulator(
        week_schedule: tuple[Schedule, dict[tuple[dt.datetime, str], float]]) -> None:
    sched, rates = week_schedule
    covered = [r for r in sched.coverage if r.covered]
    print(f"\nsolver {sched.status}, gap {sched.gap:.1%}, {sched.solve_s:.1f} s, "
          f"{len(sched.roster.shifts)} shifts, {sched.paid_hours:.0f} paid hours, "
          f"under {sched.under_interval_agents:.1f} interval-agents, "
          f"{len(covered)}/{len(sched.coverage)} interval-queues covered, "
          f"unassigned {len(sched.unassigned)}")
    assert sched.roster.shifts and len(covered) >= 0.9 * len(sched.coverage)
    # the roster as simulator agents: a shift in pieces around its breaks
    shifts = []
    for s in sched.roster.shifts:
        t, pieces = (s.start - START).total_seconds(), []
        for a in s.activities:
            pieces.append((t, (a.start - START).total_seconds()))
            t = (a.end - START).total_seconds()
        pieces.append((t, (s.end - START).total_seconds()))
        shifts.append((s.agent, s.skills[0][0], 0.0, pieces))
    sc = scenario(shifts)
    results = [run_virtual(sc, seed=rep, trace=trace(rates, 1000 + rep))
               for rep in range(REPLICATIONS)]
    judge(covered, results, START, rates)


def test_week_roster_csv_in_a_scenario_file(
        week_schedule: tuple[Schedule, dict[tuple[dt.datetime, str], float]],
        tmp_path: Path) -> None:
    """The same schedule through files: the Roster CSV as the scenario's
    ``roster:`` (breaks kept whole: one due during a call starts after it),
    the arrivals from a Forecast CSV (Poisson arrivals drawn by the simulator)."""
    sched, rates = week_schedule
    covered = [r for r in sched.coverage if r.covered]
    (tmp_path / "roster.csv").write_text(write_roster(sched.roster), encoding="utf-8")
    (tmp_path / "forecast.csv").write_text(write_forecast(
        ForecastRow(at, q, lam / 2) for (at, q), lam in sorted(rates.items())), encoding="utf-8")
    (tmp_path / "week.yaml").write_text(
        'name: week\nstart: "2026-12-07 07:00"\ninterval_minutes: 30\n'
        "arrivals: {forecast: forecast.csv}\nroster: roster.csv\n"
        f"handle: {{dist: exponential, mean: {AHT_S:g}}}\n"
        f"patience: {{dist: exponential, mean: {PATIENCE_S:g}}}\n"
        f"sl_seconds: {T_S:g}\nqueues: {{billing: {{}}, tech: {{}}}}\n", encoding="utf-8")
    sc = load_scenario(tmp_path / "week.yaml")
    results = [run_virtual(sc, seed=rep) for rep in range(REPLICATIONS)]
    judge(covered, results, START + dt.timedelta(hours=7), rates)


def judge(covered: list[CoverageRow], results: list[VirtualResult], t0: dt.datetime,
          rates: dict[tuple[dt.datetime, str], float]) -> None:
    """Assert the target holds in the covered intervals (see the module text)."""
    per_rep: dict[tuple[int, str], list[float]] = {}
    pooled: dict[tuple[int, str], list[int]] = {}
    for res in results:
        for q in QUEUES:
            for row in res.interval_rows("queue", q):
                key = (int(row["interval_start"] // 1800), q)
                if row["offered"]:
                    per_rep.setdefault(key, []).append(row["service_level"])
                acc = pooled.setdefault(key, [0, 0])
                acc[0] += row["answered_within_sl"]
                acc[1] += row["offered"]
    from scipy.stats import t as student

    misses, below, sl_ok, sl_off, gaps = [], 0, 0, 0, []
    for r in covered:
        key = (int((r.start - t0).total_seconds() // 1800), r.queue)
        ok, off = pooled[key]
        sl_ok, sl_off = sl_ok + ok, sl_off + off
        xs = per_rep[key]
        m = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
        upper = m + student.ppf(CONFIDENCE, len(xs) - 1) * sd / math.sqrt(len(xs))
        if ok / off < TARGET:
            below += 1
        lam = rates[(r.start, r.queue)]
        gaps.append(m - erlang_a(lam, AHT_S, PATIENCE_S, r.required, T_S).sl)
        if upper < TARGET:
            misses.append((str(r.start), r.queue, r.required, r.scheduled_min, round(m, 3),
                           round(upper, 3)))
    print(f"{len(results)} replications, {sl_off} calls in covered intervals: pooled SL "
          f"{sl_ok / sl_off:.3f}; covered intervals with pooled SL below {TARGET}: {below}/"
          f"{len(covered)}; significantly below: {len(misses)} {misses[:5]}; simulated SL - "
          f"Erlang A SL at the required count: mean {sum(gaps) / len(gaps):+.3f}, "
          f"lowest {min(gaps):+.3f}")
    assert sl_ok / sl_off >= TARGET
    assert below <= 0.1 * len(covered)
    assert not misses, f"{len(misses)} covered intervals miss the target: {misses[:10]}"
