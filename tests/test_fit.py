"""acd.planning.fit (issue 16, build item 7): required, scheduled and
available per interval, and the daily fit score -- on hand-built inputs
whose figures are worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from acd.core.model import CallRecord, Outcome, WriteCallRecord
from acd.core.stats import ServiceLevel, Statistics
from acd.planning.fit import (
    FitRow,
    available_per_interval,
    covered_share,
    fit_days,
    fit_rows,
    fit_score,
    grid,
    required_per_interval,
    requirement_step,
)

D = dt.datetime(2026, 11, 2)


def at(hhmm: str) -> dt.datetime:
    h, m = hhmm.split(":")
    return D + dt.timedelta(hours=int(h), minutes=int(m))


#: three agents (30-minute intervals 08:00, 08:30, 09:00, 09:30):
#: a1 ready before the grid, a 15-minute break (half an interval) 08:10-08:25;
#: a2 logs in at 08:15, a call and its wrap-up, logs out mid-interval at 09:15;
#: a3 ready 08:40 across the 09:00 boundary, paused 09:10, logs out 09:20.
CHANGES = [
    (at("07:50"), "a1", "ready", ""),
    (at("08:10"), "a1", "paused", "break"),
    (at("08:25"), "a1", "ready", ""),
    (at("08:15"), "a2", "ready", ""),
    (at("08:20"), "a2", "reserved", ""),
    (at("08:21"), "a2", "on_call", ""),
    (at("08:40"), "a2", "wrap_up", ""),
    (at("08:45"), "a2", "ready", ""),
    (at("09:15"), "a2", "logged_out", ""),
    (at("08:40"), "a3", "ready", ""),
    (at("09:10"), "a3", "paused", "coaching"),
    (at("09:20"), "a3", "logged_out", ""),
]
STARTS = [at("08:00"), at("08:30"), at("09:00"), at("09:30")]


def test_grid_is_aligned_and_refuses_a_start_off_the_boundary() -> None:
    assert grid(at("08:00"), at("09:30"), 1800) == STARTS[:3]
    with pytest.raises(ValueError, match="08:10:00 is not on a 15-minute boundary"):
        grid(at("08:10"), at("09:00"), 900)
    with pytest.raises(ValueError, match="does not divide an hour"):
        grid(at("08:00"), at("09:00"), 2400)


def test_available_is_time_weighted_across_boundaries_pauses_and_logouts() -> None:
    got = available_per_interval(CHANGES, STARTS, 1800)
    # 08:00  a1: 08:00-08:10 + 08:25-08:30 = 15 min of 30 = 0.5; a2 08:15-08:30 (ready,
    #        reserved, on call all count) = 0.5                            -> 1.0
    # 08:30  a1 1; a2 1 (on call, wrap-up, ready); a3 08:40-09:00 = 2/3      -> 8/3
    # 09:00  a1 1; a2 to 09:15 = 0.5; a3 09:00-09:10 = 1/3 (paused, then out) -> 11/6
    # 09:30  a1 still ready                                                   -> 1.0
    assert got == pytest.approx([1.0, 8 / 3, 11 / 6, 1.0])


def test_available_of_some_agents_and_of_a_day_still_running() -> None:
    assert available_per_interval(CHANGES, STARTS, 1800, agents=["a1"]) == pytest.approx(
        [0.5, 1.0, 1.0, 1.0])
    # observed until 09:15: the 09:00 interval is averaged over its 15 observed
    # minutes (a1 15 + a2 15 + a3 10 = 40 agent-minutes / 15), 09:30 is unknown
    got = available_per_interval(CHANGES, STARTS, 1800, until=at("09:15"))
    assert got[:3] == pytest.approx([1.0, 8 / 3, 40 / 15])
    assert got[3] is None


def test_available_counts_nothing_before_an_agents_first_change() -> None:
    # a4's first change is a pause at 08:00: its time before is unknown, the
    # pause counts nothing; ready from 08:45
    changes = [(at("08:00"), "a4", "paused", "x"), (at("08:45"), "a4", "ready", "")]
    assert available_per_interval(changes, STARTS[:2], 1800) == pytest.approx([0.0, 0.5])
    with pytest.raises(ValueError, match="unknown state 'lunch'"):
        available_per_interval([(at("08:00"), "a4", "lunch", "")], STARTS, 1800)


@dataclass(frozen=True)
class Req:
    start: dt.datetime
    queue: str
    required: float


REQS = [
    Req(at("08:00"), "billing", 2), Req(at("08:15"), "billing", 4),
    Req(at("08:30"), "billing", 2), Req(at("08:45"), "billing", 2),
    Req(at("08:00"), "tech", 1),
]


def test_requirements_are_time_weighted_onto_the_grid() -> None:
    assert requirement_step(REQS, 1800) == 900
    assert requirement_step(REQS[:1], 1800) == 1800
    # 08:00: billing (2 + 4) / 2 = 3; tech 1 for its 15 minutes = 0.5; 08:30:
    # billing 2, tech has no row but the interval is known (0); 09:00: no row
    assert required_per_interval(REQS, STARTS[:3], 1800) == pytest.approx([3.5, 2.0, None])
    assert required_per_interval(REQS, STARTS[:3], 1800, queue="tech") == [0.5, None, None]
    assert required_per_interval(REQS, STARTS[:2], 1800, queue="billing") == [3.0, 2.0]
    # a 15-minute grid takes each requirement as it is
    q = [at("08:00"), at("08:15"), at("08:30")]
    assert required_per_interval(REQS, q, 900, queue="billing") == [2.0, 4.0, 2.0]
    # a 60-minute grid: billing (2 + 4 + 2 + 2) / 4 = 2.5, tech 1/4
    assert required_per_interval(REQS, [at("08:00")], 3600) == pytest.approx([2.75])


def test_fit_score_and_covered_share() -> None:
    pairs = [(4.0, 3.0), (4.0, 5.0), (2.0, 2.0), (0.0, 1.0)]
    # sum need 10, sum |gap| 1 + 1 + 0 + 1 = 3: 100 * (1 - 3/10) = 70
    assert fit_score(pairs) == pytest.approx(70.0)
    # intervals that need agents: 3; covered (have >= need): 2
    assert covered_share(pairs) == pytest.approx(2 / 3)
    assert fit_score([(2.0, 7.0)]) == 0.0  # 1 - 5/2 < 0: floored
    assert fit_score([(0.0, 3.0)]) is None
    assert covered_share([(0.0, 3.0)]) is None


def test_rows_and_days_take_the_service_level_from_the_engines_statistics() -> None:
    # two calls in the 08:00 interval (one answered in 10 s, one abandoned),
    # replayed into the engine's statistics (UTC: the naive times are UTC here)
    stats = Statistics({}, ServiceLevel(20.0, 0.8), 1800.0)
    base = at("08:05").replace(tzinfo=dt.UTC).timestamp()
    for i, (outcome, wait) in enumerate((("answered", 10.0), ("abandoned", 30.0))):
        stats.on_action(WriteCallRecord(CallRecord(
            call_id=f"c{i}", caller="1", caller_name="", started_at=base, ended_at=base + 100,
            outcome=Outcome(outcome), ivr_path=(), queue="billing", queued_at=base,
            wait_s=wait, agent_id="a1" if outcome == "answered" else None,
            answered_at=base + wait if outcome == "answered" else None,
            talk_s=60.0 if outcome == "answered" else None, offers=1, server="s")),
            base + 100)
    service = {dt.datetime.fromtimestamp(s.start or 0, dt.UTC).replace(tzinfo=None): s
               for s in stats.intervals(combine=True)}
    rows = fit_rows(STARTS[:3], 1800, required=[3.5, 2.0, None],
                    scheduled={at("08:00"): 3.0, at("08:30"): 3.0},
                    available=available_per_interval(CHANGES, STARTS[:3], 1800),
                    service=service)
    r0, r1, r2 = rows
    assert (r0.offered, r0.answered, r0.abandoned) == (2, 1, 1)
    assert r0.service_level == pytest.approx(0.5) and r0.target == pytest.approx(0.8)
    assert r1.offered == 0 and r1.service_level is None
    assert r2.scheduled == 0.0  # not in the roster's series: nobody scheduled
    assert r0.plan_gap == pytest.approx(-0.5)        # 3 - 3.5
    assert r0.adherence_gap == pytest.approx(-2.0)   # 1 - 3
    assert r1.fit_gap == pytest.approx(8 / 3 - 2)
    assert r2.required is None and r2.fit_gap is None
    (day,) = fit_days(rows)
    # counted: 08:00 (3.5, 1) and 08:30 (2, 8/3): |gap| 2.5 + 2/3
    assert day.intervals == 2 and day.required_sum == pytest.approx(5.5)
    assert day.gap_sum == pytest.approx(2.5 + 2 / 3)
    assert day.score == pytest.approx(100 * (1 - (2.5 + 2 / 3) / 5.5))
    assert day.covered == pytest.approx(0.5)
    # plan: (3.5, 3) and (2, 3): 100 * (1 - 1.5 / 5.5)
    assert day.plan_score == pytest.approx(100 * (1 - 1.5 / 5.5))
    assert (day.offered, day.answered, day.abandoned) == (2, 1, 1)


def test_days_split_by_date_and_idle_rows() -> None:
    d2 = D + dt.timedelta(days=1)
    rows = [FitRow(D + dt.timedelta(hours=23), D + dt.timedelta(hours=24), 2.0, None, 2.0),
            FitRow(d2, d2 + dt.timedelta(hours=1), 4.0, None, 1.0),
            FitRow(d2 + dt.timedelta(hours=1), d2 + dt.timedelta(hours=2), None, None, 0.0)]
    a, b = fit_days(rows)
    assert (a.day, a.score, a.covered, a.plan_score) == (D.date(), 100.0, 1.0, None)
    assert (b.day, b.score, b.covered, b.intervals) == (d2.date(), 25.0, 0.0, 1)
    assert rows[2].idle and not rows[1].idle
    with pytest.raises(ValueError, match="required: 1 values for 3 intervals"):
        fit_rows(STARTS[:3], 1800, required=[1.0])


def test_the_hour_repeated_when_clocks_go_back_keeps_each_agents_order() -> None:
    # Paris, 25 October 2026: 03:00 CEST (01:00 UTC) is 02:00 CET.  a1's
    # changes in the order they happened (UTC), as the database gives them:
    # ready 02:30 CEST, a break at 02:50 CEST, ready again at 02:10 CET (the
    # repeated hour), logged out at 07:00 CET; a2 ready all along.
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")

    def local(utc: str) -> dt.datetime:
        t = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC)
        return t.astimezone(paris).replace(tzinfo=None)

    day = dt.datetime(2026, 10, 25)
    changes = [
        (local("2026-10-24 22:00"), "a2", "ready", ""),
        (local("2026-10-25 00:30"), "a1", "ready", ""),
        (local("2026-10-25 00:50"), "a1", "paused", "break"),
        (local("2026-10-25 01:10"), "a1", "ready", ""),
        (local("2026-10-25 06:00"), "a1", "logged_out", ""),
    ]
    assert changes[3][0] < changes[2][0]  # the local times go back
    starts = grid(day + dt.timedelta(hours=2), day + dt.timedelta(hours=8), 1800)
    got = available_per_interval(changes, starts, 1800)
    # a1 counts from 02:30 (the pause's 20 minutes in the repeated hour, then
    # ready from "02:50" on: the repeated hour counted once) to 07:00, not
    # paused for the rest of the day
    assert got == pytest.approx([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0])


def test_interval_floor_and_spread() -> None:
    from acd.planning.intervals import NonDecreasing, floor, spread

    assert floor(at("08:44") + dt.timedelta(seconds=59, microseconds=5), 900) == at("08:30")
    assert floor(at("08:45"), 1800) == at("08:30")
    assert floor(at("23:59"), 3600) == at("23:00")
    with pytest.raises(ValueError, match="does not divide an hour"):
        floor(at("08:00"), 7 * 60)
    # 08:10-09:05 over the 30-minute intervals from 08:00: 20, 30 and 5 minutes
    assert list(spread(at("08:10"), at("09:05"), at("08:00"), 1800, 3)) == [
        (0, 1200.0), (1, 1800.0), (2, 300.0)]
    # clipped to the n intervals; nothing for an empty period or one outside
    assert list(spread(at("07:00"), at("10:00"), at("08:00"), 1800, 2)) == [
        (0, 1800.0), (1, 1800.0)]
    assert list(spread(at("09:00"), at("08:00"), at("08:00"), 1800, 4)) == []
    assert list(spread(at("10:00"), at("11:00"), at("08:00"), 1800, 4)) == []
    keep = NonDecreasing()
    assert [keep(a, t) for a, t in (("a", at("02:50")), ("b", at("02:10")),
                                    ("a", at("02:10")), ("a", at("03:00")))] == [
        at("02:50"), at("02:10"), at("02:50"), at("03:00")]
