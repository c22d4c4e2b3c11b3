"""A generated month with a known truth, for testing replays of call
records (:mod:`acd.loadsim.replay`; ``benchmarks/replay_month.py``).

:func:`month_scenario` builds a center that runs 24 hours a day for
``days`` days: three queues with their own handle time, wrap-up and
patience (exponential, lognormal, Weibull), callers of priority 0, 1 and 2,
arrivals following a daily and weekly pattern, agents on 8-hour shifts from
a greedy cover of the load (some across midnight) with two breaks and a
lunch each, random not-ready episodes and ring-no-answer.  Every call's
patience is known (the truth).  :func:`run_month` plays it with the
virtual simulator and exports what a center would have: call records
(answered: wait, talk, wrap-up; abandoned: the time to hang up, nothing
else) and agent state records (logins, logouts, pauses with their reasons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.loadsim.figures import VirtualResult
from acd.loadsim.model import AgentSpec, Dist, NotReadySpec, QueueSpec, Scenario, TraceCall
from acd.planning.records import ABANDONED, ANSWERED, CenterRecord

__all__ = ["MONTH_QUEUES", "Month", "month_scenario", "run_month", "states_csv"]

#: queue -> (share of calls, handle (mean, sd), wrap-up (mean, sd), patience)
#: patience: ("expon", mean) | ("lognorm", median, sigma) | ("weibull", shape, scale)
MONTH_QUEUES: dict[str, tuple[float, tuple[float, float], tuple[float, float],
                              tuple[Any, ...]]] = {
    "billing": (0.5, (240.0, 160.0), (30.0, 15.0), ("expon", 150.0)),
    "tech": (0.3, (420.0, 300.0), (60.0, 40.0), ("lognorm", 110.0, 0.9)),
    "sales": (0.2, (180.0, 120.0), (20.0, 20.0), ("weibull", 0.8, 100.0)),
}
PRIORITIES = ((0, 0.85), (1, 0.10), (2, 0.05))
#: relative arrival rate per hour of the day
HOURLY = (0.25, 0.2, 0.15, 0.15, 0.15, 0.25, 0.45, 0.75, 1.0, 1.15, 1.2, 1.15,
          0.95, 1.0, 1.1, 1.1, 1.0, 0.85, 0.7, 0.6, 0.5, 0.45, 0.35, 0.3)
WEEKDAY = (1.0, 0.95, 0.95, 0.95, 1.05, 0.6, 0.5)
SHIFT_H = 8
#: (minutes after the shift start, minutes, kind)
BREAKS = ((120, 15, "break"), (240, 30, "lunch"), (360, 15, "break"))
NOT_READY = (NotReadySpec("coaching", 0.1, Dist("exponential", 600.0)),
             NotReadySpec("personal", 0.15, Dist("exponential", 300.0)))
SKILL_MIX = ({"billing": 5}, {"tech": 5}, {"billing": 5}, {"tech": 5},
             {"billing": 5, "sales": 4}, {"tech": 5, "billing": 3}, {"sales": 5},
             {"tech": 5}, {"billing": 4, "tech": 4, "sales": 4}, {"billing": 5})


@dataclass
class Month:
    start: datetime
    scenario: Scenario  # the truth: every call's patience known
    result: VirtualResult
    records: list[CenterRecord]
    states: list[tuple[str, datetime, str, str]]  # (agent, at, state, reason)
    skills: dict[str, tuple[tuple[str, int], ...]]
    unfinished: int  # calls still waiting at the end (not exported)


def _lognormal(mean: float, sd: float) -> tuple[float, float]:
    s2 = math.log(1.0 + (sd / mean) ** 2)
    return math.log(mean) - s2 / 2.0, math.sqrt(s2)


def _patience(rng: Any, spec: tuple[Any, ...], n: int) -> Any:
    if spec[0] == "expon":
        return rng.exponential(spec[1], n)
    if spec[0] == "lognorm":
        return rng.lognormal(math.log(spec[1]), spec[2], n)
    return spec[2] * rng.weibull(spec[1], n)


def month_scenario(seed: int = 1, days: int = 28, start: datetime = datetime(2026, 11, 2),
                   calls_per_day: float = 1100.0, staffing: float = 1.0) -> Scenario:
    """The truth's scenario (a trace of ``days`` days from ``start``, a Monday
    by default, and the agents' shifts); ``staffing`` scales the agents."""
    import numpy as np

    rng = np.random.default_rng([seed, 2026])
    hour_w = np.asarray(HOURLY) / sum(HOURLY)
    calls: list[TraceCall] = []
    n_call = 0
    for d in range(days):
        day_n = calls_per_day * WEEKDAY[(start + timedelta(days=d)).weekday()] \
            * rng.uniform(0.9, 1.1)
        for h in range(24):
            for q, (share, hand, wrap, pat) in MONTH_QUEUES.items():
                n = int(rng.poisson(day_n * hour_w[h] * share))
                if not n:
                    continue
                at = np.sort(rng.uniform(0, 3600.0, n)) + d * 86400.0 + h * 3600.0
                mu, sg = _lognormal(*hand)
                handle = rng.lognormal(mu, sg, n)
                wmu, wsg = _lognormal(*wrap)
                wraps = rng.lognormal(wmu, wsg, n)
                patience = _patience(rng, pat, n)
                prio = rng.choice([p for p, _ in PRIORITIES], size=n,
                                  p=[w for _, w in PRIORITIES])
                for k in range(n):
                    n_call += 1
                    calls.append(TraceCall(float(at[k]), f"1380{n_call:07d}", q, (),
                                           float(handle[k]), float(patience[k]), n_call,
                                           int(prio[k]), float(wraps[k])))
    calls.sort(key=lambda c: c.arrival_s)
    agents = _agents(days, calls_per_day, staffing)
    policy = simple_policy(dict.fromkeys(MONTH_QUEUES, 20.0))
    return Scenario(
        name=f"generated month ({days} days)", file="<month>", policy=policy,
        agents=agents, queues={q: QueueSpec(q) for q in MONTH_QUEUES}, start_s=0.0,
        start_date=start.date(), interval_s=1800.0, trace=tuple(calls),
        not_ready=NOT_READY, ring_no_answer=0.02, rona_pause_s=30.0, sl_seconds=20.0)


def _agents(days: int, calls_per_day: float, staffing: float) -> tuple[AgentSpec, ...]:
    """Agents on 8-hour shifts covering each half hour's load (greedy, the day
    as a circle: the late shifts run across midnight), each with two breaks
    and a lunch; the same slots every day, fewer agents at the weekend."""
    work = {q: share * (hand[0] + wrap[0]) for q, (share, hand, wrap, _) in
            MONTH_QUEUES.items()}
    per_call = sum(work.values())
    total_w = sum(HOURLY)
    need = []
    for i in range(48):
        load = calls_per_day * HOURLY[i // 2] / total_w / 3600.0 * per_call
        # agents needed: the load plus a square-root safety margin, over the
        # share of a shift spent outside breaks and not-ready time
        need.append(staffing * (load + 1.3 * math.sqrt(load) + 0.5) / 0.78)
    have = [0.0] * 48
    starts: list[int] = []  # half-hour slot of each shift start
    for i in [*range(12, 48), *range(12)]:  # from 06:00 round the clock
        while have[i] < need[i]:
            starts.append(i)
            for k in range(SHIFT_H * 2):
                have[(i + k) % 48] += 1
    specs: list[AgentSpec] = []
    for n, slot in enumerate(sorted(starts)):
        aid = f"a{n + 1:03d}"
        skills = SKILL_MIX[n % len(SKILL_MIX)]
        shifts: list[tuple[float, float]] = []
        acts: list[tuple[float, float, str]] = []
        stagger = (n % 3) * 15 * 60.0
        for d in range(-1, days):  # day -1: the night shift running into the first day
            weekend = d % 7 >= 5
            if weekend and n % 2:  # half the agents at the weekend
                continue
            on = d * 86400.0 + slot * 1800.0
            off = on + SHIFT_H * 3600.0
            if off <= 0:
                continue
            shifts.append((max(on, 0.0), off))
            for after, minutes, kind in BREAKS:
                if on + after * 60.0 + stagger >= 0:
                    acts.append((on + after * 60.0 + stagger, minutes * 60.0, kind))
        specs.append(AgentSpec(AgentProfile(aid, aid, skills=skills), tuple(shifts),
                               tuple(acts)))
    return tuple(specs)


def run_month(sc: Scenario, seed: int = 1) -> Month:
    """Play the truth and export its call records and agent state records."""
    from acd.loadsim.virtual import run_virtual

    res = run_virtual(sc, seed, agent_log=True)
    start = sc.start_at
    trace = sc.trace or ()
    records: list[CenterRecord] = []
    unfinished = 0
    for c in res.calls:
        if c.queue is None:
            continue
        tc = trace[int(c.call_id[1:]) - 1]  # call ids count the arrivals from c1
        at = start + timedelta(seconds=c.arrival_s)
        if c.outcome == ANSWERED:
            records.append(CenterRecord(at, c.first_queue or c.queue, ANSWERED, c.priority,
                                        wait_s=c.wait_s, handle_s=tc.handle_s,
                                        wrap_s=tc.wrap_s, number=c.number))
        elif c.outcome == ABANDONED:
            records.append(CenterRecord(at, c.first_queue or c.queue, ABANDONED, c.priority,
                                        wait_s=c.wait_s, abandon_s=c.wait_s, number=c.number))
        else:
            unfinished += 1
    records.sort(key=lambda r: r.arrival)
    states = [(agent, start + timedelta(seconds=t), state, reason)
              for t, agent, state, reason in res.agent_log or ()]
    skills = {a.profile.agent_id: tuple(sorted(a.profile.skills.items())) for a in sc.agents}
    return Month(start, sc, res, records, states, skills, unfinished)


def states_csv(states: list[tuple[str, datetime, str, str]]) -> str:
    """The agent state records CSV (agent,at,state,reason) of an agent log."""
    out = ["agent,at,state,reason"]
    for agent, at, state, reason in states:
        out.append(f"{agent},{at.isoformat(sep=' ', timespec='milliseconds')},{state},"
                   f"{reason.replace(',', ' ')}")
    return "\n".join(out) + "\n"


@dataclass
class MonthReplay:
    """The month replayed from its exported files alone, beside the truth."""

    month: Month
    comparison: Any  # acd.loadsim.replay.Comparison
    fits: Any  # acd.planning.fitting.RecordFits
    notes: list[str]
    ring_no_answer: float  # estimated from the state records
    seconds: dict[str, float]  # wall time per step


def replay_month(folder: Any, seed: int = 1, days: int = 28, calls_per_day: float = 1100.0,
                 interval_s: int = 1800, answer_within_s: float = 20.0,
                 replay_seed: int = 0) -> MonthReplay:
    """Generate and play a month (the truth), write its call records and
    agent state records to ``folder`` (``records.csv``, ``states.csv``) as a
    center would export them, then replay it from those two files alone (and
    the agents' skills, which a center knows from its configuration): the
    roster from the state records, the unknowns fitted."""
    import time
    from pathlib import Path

    from acd.loaders.records_csv import Skipped, iter_records, write_records
    from acd.loaders.roster_csv import load_states
    from acd.loadsim.replay import compare, replay_scenario, span_start
    from acd.loadsim.virtual import run_virtual
    from acd.planning.fitting import fit_records
    from acd.planning.roster import is_rona_reason, roster_from_states

    out = Path(folder)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    month = run_month(month_scenario(seed, days, calls_per_day=calls_per_day), seed)
    seconds["truth"] = time.perf_counter() - t0
    (out / "records.csv").write_text(write_records(month.records), encoding="utf-8")
    (out / "states.csv").write_text(states_csv(month.states), encoding="utf-8")
    t0 = time.perf_counter()
    skipped = Skipped()
    records = list(iter_records(out / "records.csv", skipped=skipped))
    rows = load_states(out / "states.csv")
    roster, import_notes = roster_from_states(rows, skills=month.skills)
    notes = import_notes.lines()
    if skipped.total:
        notes.append(skipped.describe())
    if month.unfinished:
        notes.append(f"{month.unfinished} calls still waiting at the end of the truth (not "
                     "exported)")
    fits = fit_records(records)
    rona = sum(1 for r in rows if r.state == "paused" and is_rona_reason(r.reason))
    answered = sum(1 for r in records if r.outcome == ANSWERED)
    rona_p = rona / (answered + rona) if rona else 0.0
    sc, more = replay_scenario(records, roster, fits, interval_s=interval_s,
                               answer_within_s=answer_within_s, seed=replay_seed,
                               ring_no_answer=rona_p)
    notes.extend(more)
    seconds["read and fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_virtual(sc, replay_seed)
    seconds["replay"] = time.perf_counter() - t0
    cmp = compare(records, result.calls, span_start(records, roster, interval_s), interval_s,
                  answer_within_s)
    return MonthReplay(month, cmp, fits, notes, rona_p, seconds)
