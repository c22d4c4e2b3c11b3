"""The simulator's agent availability: breaks kept whole, not-ready episodes,
shrinkage, shifts across midnight and over several days, rosters per date,
wrap-up per call, priorities, and the warning about calls left unserved.

Each test runs the real virtual simulator (the production router) on a small
scenario with a fixed seed and checks what happened from the agent state log
(``run_virtual(..., agent_log=True)``) or the figures.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from acd.loadsim.model import ScenarioError
from acd.loadsim.scenario import load_scenario, parse_scenario
from acd.loadsim.virtual import run_virtual


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def states(log: list[tuple[float, str, str, str]] | None, agent: str
           ) -> list[tuple[float, str, str]]:
    assert log is not None
    return [(t, s, why) for t, a, s, why in log if a == agent]


# ------------------------------------------------------------------ breaks kept whole


def test_a_break_due_during_a_call_starts_after_it_and_keeps_its_length(
        tmp_path: Path) -> None:
    # one agent; a call 08:05-08:20 (handle 900 s) then its wrap-up of 60 s;
    # the 15-minute break due at 08:10 starts at 08:21 and ends at 08:36; a
    # call arriving at 08:25 waits for it
    write(tmp_path, "calls.csv", """\
        arrival,queue,handle,patience
        08:05:00,q,900,
        08:25:00,q,60,
        """)
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        trace: calls.csv
        wrap_up_s: 60
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00",
             breaks: [{at: "08:10", minutes: 15}]}
        """))
    res = run_virtual(sc, seed=1, agent_log=True)
    log = states(res.agent_log, "a")
    paused = [(t, why) for t, s, why in log if s == "paused" and why]  # not the login's
    assert paused == [(1260.0, "break")]  # 08:21: after the call and its wrap-up
    back = next(t for t, s, _ in log if t > 1260.0 and s == "ready")
    assert back == 1260.0 + 15 * 60  # the break kept its 15 minutes
    second = next(c for c in res.calls if c.arrival_s == 1500.0)
    assert second.outcome == "answered" and second.answered_at == back
    assert res.activity_counts["delayed"] == 1 and "skipped" not in res.activity_counts


def test_a_break_due_in_a_ring_no_answer_pause_replaces_it(tmp_path: Path) -> None:
    # every offer goes unanswered: the call of 08:00:30 rings the agent 20 s,
    # which then sits in a ring-no-answer pause of 600 s; the break due at
    # 08:01 replaces that pause at once and keeps its 15 minutes (the agent
    # is ready at 08:16, not when the ring-no-answer pause would have ended)
    write(tmp_path, "calls.csv", """\
        arrival,queue,handle,patience
        08:00:30,q,60,25
        08:20:00,q,60,10
        """)
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        trace: calls.csv
        ring_no_answer: 1
        rona_pause_s: 600
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00",
             breaks: [{at: "08:01", minutes: 15}]}
        """))
    res = run_virtual(sc, seed=1, agent_log=True)
    log = [(t, s, why) for t, s, why in states(res.agent_log, "a") if t > 0]
    assert log[:4] == [(30.0, "reserved", ""), (50.0, "paused", "offer NOANSWER"),
                       (60.0, "paused", "break"), (960.0, "ready", "")]
    assert res.activity_counts == {"planned": 1}


def test_a_break_of_a_ready_agent_starts_on_time_and_lunch_kind(tmp_path: Path) -> None:
    write(tmp_path, "calls.csv", "arrival,queue,handle\n09:00:00,q,60\n")
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        trace: calls.csv
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00",
             breaks: [{at: "08:30", minutes: 45, kind: lunch}]}
        """))
    res = run_virtual(sc, seed=1, agent_log=True)
    log = states(res.agent_log, "a")
    assert (1800.0, "paused", "lunch") in log and (1800.0 + 2700, "ready", "") in log


def test_a_break_due_during_another_follows_it_back_to_back(tmp_path: Path) -> None:
    # a call waits through both: nothing is offered between them
    write(tmp_path, "calls.csv", "arrival,queue,handle\n08:15:00,q,60\n")
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        trace: calls.csv
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00",
             breaks: [{at: "08:10", minutes: 15}, {at: "08:20", minutes: 10, kind: coffee}]}
        """))
    res = run_virtual(sc, seed=1, agent_log=True)
    log = [e for e in states(res.agent_log, "a") if e[0] > 0]
    assert log[:3] == [(600.0, "paused", "break"), (1500.0, "paused", "coffee"),
                       (2100.0, "ready", "")]
    assert res.calls[0].answered_at == 2100.0


def test_shift_end_cuts_a_running_break_and_breaks_outside_a_shift_are_refused(
        tmp_path: Path) -> None:
    # a call 08:49-08:55 delays the break to 08:55-09:05: the shift's end at
    # 09:00 cuts it (the run goes on until a caller after the shift gives up)
    write(tmp_path, "calls.csv", "arrival,queue,handle,patience\n08:49:00,q,360,\n"
                                 "09:30:00,q,60,10\n")
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        trace: calls.csv
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-09:00",
             breaks: [{at: "08:50", minutes: 10}]}
        """))
    res = run_virtual(sc, seed=1, agent_log=True)
    log = states(res.agent_log, "a")
    assert log[-2:] == [(3300.0, "paused", "break"), (3600.0, "logged_out", "")]
    assert res.activity_counts == {"planned": 1, "delayed": 1, "cut": 1}
    assert res.warnings == ["1 calls arrived when no agent with their queue's skill was on "
                            "shift any more (the roster ends before the calls?): q 1 (after "
                            "2026-11-23 09:00)"]
    with pytest.raises(ScenarioError, match=r"breaks\[0\]: the break \(08:55, 10 minutes\) "
                                            r"is not inside one of the shifts"):
        parse_scenario(textwrap.dedent("""\
            start: "08:00"
            arrivals: {per_interval: [1]}
            queues: {q: {share: 1}}
            agents:
              - {id: a, skills: {q: 5}, shift: "08:00-09:00",
                 breaks: [{at: "08:55", minutes: 10}]}
            """), "s.yaml")


# ------------------------------------------------------------------ days and midnight


def test_a_shift_across_midnight_serves_calls_at_23_and_05_and_unserved_calls_warn(
        tmp_path: Path) -> None:
    write(tmp_path, "calls.csv", """\
        arrival,queue,handle,patience
        2026-11-02 23:00:00,q,60,
        2026-11-03 05:00:00,q,60,
        2026-11-03 07:00:00,q,60,
        2026-11-03 07:10:00,q,60,
        """)
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "2026-11-02 20:00"
        interval_minutes: 30
        trace: calls.csv
        agents:
          - {id: night, skills: {q: 5}, shift: "22:00-06:00"}
        """))
    assert sc.agents[0].shifts == ((7200.0, 36000.0),)
    res = run_virtual(sc, seed=1)
    by_at = {c.arrival_s: c for c in res.calls}
    assert by_at[3 * 3600.0].outcome == "answered" and by_at[3 * 3600.0].wait_s == 0
    assert by_at[9 * 3600.0].outcome == "answered" and by_at[9 * 3600.0].wait_s == 0
    assert by_at[11 * 3600.0].outcome == "unfinished"
    assert any("2 calls left unserved" in w and "q 2" in w
               and "after 2026-11-03 06:00" in w for w in res.warnings), res.warnings
    labels = {r["label"] for r in res.interval_rows()}
    assert "2026-11-03 05:00" in labels and "2026-11-02 23:00" in labels


def test_three_days_report_the_intervals_of_every_day(tmp_path: Path) -> None:
    sc = parse_scenario(textwrap.dedent("""\
        start: "2026-11-02 08:00"
        days: 3
        interval_minutes: 15
        arrivals: {per_interval: [20, 20, 20, 20]}
        queues: {q: {share: 1}}
        handle: {dist: exponential, mean: 60}
        agents:
          counts: {q: 4}
          shift: "08:00-09:00"
        """), "s.yaml")
    assert sc.start_at.isoformat() == "2026-11-02T08:00:00" and sc.days == 3
    assert sc.agents[0].shifts == ((0.0, 3600.0), (86400.0, 90000.0), (172800.0, 176400.0))
    res = run_virtual(sc, seed=2)
    rows = {r["label"]: r for r in res.interval_rows()}
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):
        for hhmm in ("08:00", "08:15", "08:30", "08:45"):
            assert rows[f"{day} {hhmm}"]["offered"] > 0, f"{day} {hhmm}"
            assert rows[f"{day} {hhmm}"]["at"] == f"{day} {hhmm}"
            assert rows[f"{day} {hhmm}"]["available"] > 0
    assert rows["2026-11-03 01:30"]["offered"] == 0  # the night: a row, no calls
    assert rows["2026-11-03 01:30"]["available"] == 0
    assert not res.warnings


def test_a_roster_per_date(tmp_path: Path) -> None:
    write(tmp_path, "roster.csv", """\
        agent,start,end,activity,skills
        a1,2026-11-02 08:00,2026-11-02 10:00,shift,q=5
        a2,2026-11-03 08:00,2026-11-03 10:00,shift,
        a2,2026-11-03 08:30,2026-11-03 08:45,break,
        """)
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        start: "08:00"
        days: 2
        interval_minutes: 30
        arrivals: {per_interval: [10, 10, 10, 10]}
        queues: {q: {share: 1}}
        handle: {dist: exponential, mean: 60}
        roster: roster.csv
        agents:
          - {id: a2, skills: {q: 7}}
          - {id: a9, skills: {q: 7}}
        """))
    assert sc.start_at.isoformat() == "2026-11-02T08:00:00"  # the roster's first day
    a1, a2 = sc.agents
    assert a1.profile.skills == {"q": 5} and a2.profile.skills == {"q": 7}
    assert a1.shifts == ((0.0, 7200.0),) and a2.shifts == ((86400.0, 93600.0),)
    assert a2.activities == ((88200.0, 900.0, "break"),)
    res = run_virtual(sc, seed=3, agent_log=True)
    assert res.warnings[0] == ("1 agent(s) under 'agents' have no shift in the roster and "
                               "do not work: a9")
    answered = [c for c in res.calls if c.outcome == "answered"]
    assert answered and all((c.agent_id == "a1") == (c.arrival_s < 86400) for c in answered)
    log = states(res.agent_log, "a2")
    assert log[1][:2] == (86400.0, "ready")  # logged in (paused, then ready at once)
    paused = [(t, why) for t, s, why in log if s == "paused" and why]
    assert len(paused) == 1 and paused[0][1] == "break" and 88200.0 <= paused[0][0] < 89100.0
    ready_after = next(t for t, s, _ in log if t > paused[0][0] and s == "ready")
    assert ready_after == paused[0][0] + 900.0


def test_roster_agents_without_skills_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "roster.csv", "agent,start,end,activity\n"
                                  "a1,2026-11-02 08:00,2026-11-02 10:00,shift\n")
    path = write(tmp_path, "s.yaml", """\
        start: "2026-11-02 08:00"
        arrivals: {per_interval: [10]}
        queues: {q: {share: 1}}
        roster: roster.csv
        """)
    with pytest.raises(ScenarioError, match="roster: agent 'a1' has no skills"):
        load_scenario(path)


def test_an_agent_with_different_skills_on_two_roster_shifts_is_refused(
        tmp_path: Path) -> None:
    write(tmp_path, "roster.csv", "agent,start,end,activity,skills\n"
                                  "a1,2026-11-02 08:00,2026-11-02 10:00,shift,q=5\n"
                                  "a1,2026-11-03 08:00,2026-11-03 10:00,shift,q=3\n"
                                  "a1,2026-11-04 08:00,2026-11-04 10:00,shift,\n")
    path = write(tmp_path, "s.yaml", """\
        start: "2026-11-02 08:00"
        arrivals: {per_interval: [10]}
        queues: {q: {share: 1}}
        roster: roster.csv
        """)
    with pytest.raises(ScenarioError, match=r"roster.csv:3: skills: a1's skills q=3 differ "
                                            r"from those of line 2 \(q=5\)"):
        load_scenario(path)
    # the same skills on both (or none on one): one agent with them, three shifts
    (tmp_path / "roster.csv").write_text(
        (tmp_path / "roster.csv").read_text().replace("q=3", "q=5"), encoding="utf-8")
    (agent,) = load_scenario(path).agents
    assert dict(agent.profile.skills) == {"q": 5} and len(agent.shifts) == 3


# ------------------------------------------------------------------ not ready, shrinkage

LONG_RUN = """\
interval_minutes: 60
arrivals: {calls_per_hour: 20}
hours: 300
queues: {q: {share: 1}}
handle: {dist: exponential, mean: 120}
agents:
  counts: {q: 10}
"""


def test_not_ready_episodes_take_their_share_of_the_time() -> None:
    # 0.5 episodes an hour of 12 minutes on average: 10 % of the logged-in time
    sc = parse_scenario(LONG_RUN + textwrap.dedent("""\
        not_ready:
          coaching: {per_hour: 0.5, minutes: {dist: exponential, mean: 12}}
        """), "s.yaml")
    res = run_virtual(sc, seed=4, agent_log=True)
    share = res.totals().available / 10  # type: ignore[operator]
    assert share == pytest.approx(0.9, abs=0.015)
    assert res.activity_counts["not_ready"] == pytest.approx(0.5 * 300 * 10, rel=0.1)
    assert any(s == "paused" and why == "coaching" for _, _, s, why in res.agent_log or ())


def test_shrinkage_leaves_the_rest_of_the_logged_in_time_available() -> None:
    sc = parse_scenario(LONG_RUN + "shrinkage: 0.3\n", "s.yaml")
    res = run_virtual(sc, seed=5)
    assert res.totals().available / 10 == pytest.approx(0.7, abs=0.01)  # type: ignore[operator]
    per = res.available
    assert per[100][""] == pytest.approx(7.0, abs=0.6)  # every interval, not just on average
    day = [0.5] + [0.1] * 23  # one share per hour of the day, repeating daily
    listed = parse_scenario(LONG_RUN.replace("hours: 300", "hours: 48")
                            + f"shrinkage: {day}\n", "s.yaml")
    assert listed.shrinkage == tuple(day)
    r2 = run_virtual(listed, seed=5).available
    assert r2[0][""] == pytest.approx(5.0, abs=0.8) and r2[5][""] == pytest.approx(9.0, abs=0.8)
    assert r2[24][""] == pytest.approx(5.0, abs=0.8)  # the next day: its first share again


def test_a_shrinkage_list_must_cover_one_day() -> None:
    with pytest.raises(ScenarioError, match=r"2 values: give one per interval of a day "
                                            r"\(24 of 60 minutes\), or one value"):
        parse_scenario(LONG_RUN + "shrinkage: [0.5, 0.1]\n", "s.yaml")
    half_hours = LONG_RUN.replace("interval_minutes: 60", "interval_minutes: 30")
    with pytest.raises(ScenarioError, match=r"\(48 of 30 minutes\)"):
        parse_scenario(half_hours + f"shrinkage: {[0.2] * 24}\n", "s.yaml")
    assert parse_scenario(half_hours + "shrinkage: [0.2]\n", "s.yaml").shrinkage == (0.2,)


def test_shrinkage_and_breaks_or_not_ready_together_are_an_error() -> None:
    with pytest.raises(ScenarioError, match="give 'shrinkage' or not_ready, not both"):
        parse_scenario(LONG_RUN + "shrinkage: 0.3\nnot_ready: {x: {per_hour: 1, minutes: "
                                  "{dist: fixed, mean: 5}}}\n", "s.yaml")
    with pytest.raises(ScenarioError, match="give 'shrinkage' or breaks, not both"):
        parse_scenario(LONG_RUN.replace(
            "  counts: {q: 10}\n",
            "  - {id: a, skills: {q: 5}, shift: \"00:00-08:00\", "
            "breaks: [{at: \"02:00\", minutes: 10}]}\n") + "shrinkage: 0.2\n", "s.yaml")


# ------------------------------------------------------------------ wrap-up, priorities


def test_a_wrap_up_distribution_shows_in_occupancy() -> None:
    base = LONG_RUN.replace("{dist: exponential, mean: 120}", "{dist: fixed, mean: 120}")
    plain = run_virtual(parse_scenario(base, "s.yaml"), seed=6).totals().occupancy
    wrapped = parse_scenario(base + "wrap_up: {dist: exponential, mean: 60}\n", "s.yaml")
    occ = run_virtual(wrapped, seed=6).totals().occupancy
    assert plain is not None and occ is not None
    # 20 calls/h on 10 agents: 120 s -> 1/15; 180 s -> 1/10
    assert plain == pytest.approx(20 * 120 / 3600 / 10, rel=0.05)
    assert occ == pytest.approx(20 * 180 / 3600 / 10, rel=0.05)
    with pytest.raises(ScenarioError, match="give 'wrap_up'"):
        parse_scenario(base + "wrap_up_s: 5\nwrap_up: {dist: fixed, mean: 6}\n", "s.yaml")


def test_a_queue_wrap_up_and_a_trace_wrap_column(tmp_path: Path) -> None:
    write(tmp_path, "calls.csv", """\
        arrival,queue,handle,wrap,priority
        0,q,100,50,0
        1,q,100,,0
        """)
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        trace: calls.csv
        wrap_up_s: 10
        agents:
          - {id: a, skills: {q: 5}}
        """))
    assert [c.wrap_s for c in sc.trace or ()] == [50.0, None]
    res = run_virtual(sc, seed=1)
    second = next(c for c in res.calls if c.arrival_s == 1.0)
    assert second.answered_at == 150.0  # after the first call's own 50-s wrap-up
    queued = load_scenario(write(tmp_path, "s2.yaml", """\
        trace: calls.csv
        queues: {q: {wrap_up: {dist: fixed, mean: 30}}}
        agents:
          - {id: a, skills: {q: 5}}
        """))
    assert queued.queues["q"].wrap_up is not None
    third = run_virtual(queued, seed=1)
    calls = sorted(third.calls, key=lambda c: c.arrival_s)
    assert calls[1].answered_at == 150.0  # the trace's own wrap wins over the queue's


def test_priorities_are_drawn_and_served_first() -> None:
    sc = parse_scenario(textwrap.dedent("""\
        interval_minutes: 60
        arrivals: {calls_per_hour: 100}
        calls: 3000
        queues: {q: {share: 1}}
        handle: {dist: exponential, mean: 180}
        callers: {priorities: {0: 0.8, 50: 0.2}}
        agents:
          counts: {q: 5}
        """), "s.yaml")
    res = run_virtual(sc, seed=7)
    hi = [c.wait_s or 0.0 for c in res.calls if c.priority == 50]
    lo = [c.wait_s or 0.0 for c in res.calls if c.priority == 0]
    assert len(hi) == pytest.approx(600, rel=0.15) and len(hi) + len(lo) == 3000
    assert sum(hi) / len(hi) < 0.25 * sum(lo) / len(lo)


# ------------------------------------------------------------------ a forecast's arrivals


def test_arrivals_from_a_forecast_per_queue_and_interval(tmp_path: Path) -> None:
    rows = ["interval_start,queue,calls"]
    for day in ("2026-12-07", "2026-12-08"):
        rows += [f"{day} 08:00,billing,200", f"{day} 08:00,tech,0",
                 f"{day} 08:30,billing,50", f"{day} 08:30,tech,150"]
    (tmp_path / "forecast.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    sc = load_scenario(write(tmp_path, "s.yaml", """\
        interval_minutes: 30
        arrivals: {forecast: forecast.csv}
        handle: {dist: exponential, mean: 30}
        agents:
          - {id: a, count: 20, skills: {billing: 5, tech: 5}}
        """))
    assert sc.start_at.isoformat() == "2026-12-07T08:00:00" and sc.forecast is not None
    assert set(sc.queues) == {"billing", "tech"}
    assert len(sc.rates) == 24 * 2 + 2  # 08:00 to 09:00 the next day
    assert sc.expected_calls() == pytest.approx(800)
    res = run_virtual(sc, seed=8)
    got = {(r["label"], q): r["offered"] for q in ("billing", "tech")
           for r in res.interval_rows("queue", q)}
    assert got[("2026-12-07 08:00", "tech")] == 0 == got[("2026-12-08 08:00", "tech")]
    assert got[("2026-12-07 08:00", "billing")] == pytest.approx(200, abs=45)
    assert got[("2026-12-08 08:30", "tech")] == pytest.approx(150, abs=40)
    assert got[("2026-12-08 08:30", "billing")] == pytest.approx(50, abs=22)
    assert got[("2026-12-07 12:00", "billing")] == 0


def test_the_live_mode_refuses_what_it_cannot_play(tmp_path: Path) -> None:
    # breaks and drawn wrap-ups exist only in virtual mode: the live run names
    # them instead of leaving them out
    from acd.loadsim.live import live_unsupported, run_live_sync
    from acd.loadsim.model import SimError

    sc = parse_scenario(textwrap.dedent("""\
        start: "08:00"
        arrivals: {per_interval: [10]}
        queues: {q: {share: 1}}
        wrap_up: {dist: exponential, mean: 20}
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00",
             breaks: [{at: "09:00", minutes: 15}]}
        """), str(tmp_path / "s.yaml"))
    assert live_unsupported(sc) == ["breaks or roster activities",
                                    "wrap-ups drawn per call (wrap_up, a trace's wrap column)"]
    with pytest.raises(SimError, match="live mode does not play breaks"):
        run_live_sync(sc, seed=1)
    plain = parse_scenario(textwrap.dedent("""\
        start: "08:00"
        arrivals: {per_interval: [10]}
        queues: {q: {share: 1}}
        agents:
          - {id: a, skills: {q: 5}, shift: "08:00-12:00"}
        """), str(tmp_path / "p.yaml"))
    assert live_unsupported(plain) == []
