"""Load-simulator scenarios and traces: loading, and errors that name the place."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from acd.loadsim.ivr_walk import walk_ivr
from acd.loadsim.model import Dist, ScenarioError, TraceError, clock, day_start
from acd.loadsim.scenario import load_scenario, parse_scenario
from acd.loadsim.trace import load_trace, parse_trace

SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"

MINIMAL = """\
name: tiny
start: "08:00"
interval_minutes: 15
arrivals:
  per_interval: [30, 60]
queues:
  billing: {share: 0.6}
  tech: {share: 0.4, handle: {dist: lognormal, mean: 300, sd: 100}, sl_seconds: 30}
handle: {dist: exponential, mean: 180}
patience: {dist: exponential, mean: 120}
agents:
  counts: {billing: 2, tech: 1}
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------ loading


def test_minimal_scenario() -> None:
    sc = parse_scenario(MINIMAL, "tiny.yaml")
    assert sc.name == "tiny" and sc.start_s == 8 * 3600 and sc.interval_s == 900
    assert sc.rates == pytest.approx((30 / 900, 60 / 900))
    assert sc.day_end_s == 1800 and sc.expected_calls() == pytest.approx(90)
    assert [a.profile.agent_id for a in sc.agents] == ["billing1", "billing2", "tech1"]
    assert dict(sc.agents[2].profile.skills) == {"tech": 5}
    assert sc.agents[0].shifts == ()  # logged in all the time
    assert set(sc.policy.queues) == {"billing", "tech"}
    assert sc.queues["tech"].handle == Dist("lognormal", 300, 100)
    assert sc.queue_sl("tech") == 30 and sc.queue_sl("billing") == 20
    assert sc.patience == Dist("exponential", 120)
    assert sc.ring_no_answer == 0 and sc.wrap_up_s == 0


def test_example_scenarios_load() -> None:
    ea = load_scenario(SCENARIOS / "erlang_a.yaml")
    assert ea.open_ended and ea.rates == pytest.approx((200 / 3600,))
    assert ea.calls == 200_000 and len(ea.agents) == 11
    assert ea.patience == Dist("exponential", 360) and ea.handle == Dist("exponential", 180)

    mon = load_scenario(SCENARIOS / "monday.yaml")
    assert mon.interval_s == 900 and len(mon.rates) == 56  # 08:00-22:00
    assert mon.start_s == 8 * 3600 and mon.day == "monday"
    assert set(mon.policy.queues) == {"billing", "tech", "general"}
    assert mon.routing is not None and mon.routing.name == "monday_routing.yaml"
    assert mon.ivr is not None and "main_menu" in mon.ivr.keys
    assert dict(mon.ivr.keys["main_menu"])[None] == pytest.approx(0.05)  # "none": no key
    assert mon.callers.pool == 20000 and mon.callers.vip_share == 0.05
    assert {d for d, _ in mon.callers.dialects} == {"cantonese", "minnan", "mandarin"}
    split = next(a for a in mon.agents if a.profile.agent_id == "e-t1")
    assert split.shifts == ((0.0, 4 * 3600.0), (4.75 * 3600, 8 * 3600.0))  # lunch break
    assert any(a.profile.vip_qualified for a in mon.agents)

    tr = load_scenario(SCENARIOS / "trace_small.yaml")
    assert tr.trace is not None and len(tr.trace) == 8
    assert tr.trace[2].arrival_s == 20  # 08:00:20 with the scenario starting 08:00


def test_agent_list_with_count_shifts_and_attributes() -> None:
    sc = parse_scenario(MINIMAL.replace("agents:\n  counts: {billing: 2, tech: 1}\n", """\
agents:
  - {id: b, count: 2, skills: {billing: 7, tech: 3}, dialects: {cantonese: 9},
     gender: F, age_band: 25-34, groups: [day], vip_qualified: true,
     shifts: ["07:30-12:00", "13:00-17:00"]}
  - {id: solo, skills: {tech: 5}, languages: [zh, en], shift: "09:00-09:30"}
"""))
    ids = [a.profile.agent_id for a in sc.agents]
    assert ids == ["b1", "b2", "solo"]
    b1 = sc.agents[0]
    assert b1.profile.gender == "F" and b1.profile.vip_qualified
    assert dict(b1.profile.dialects) == {"cantonese": 9} and b1.profile.groups == {"day"}
    # shift times are seconds from the start (08:00); a shift may begin before it
    assert b1.shifts == ((-1800.0, 4 * 3600.0), (5 * 3600.0, 9 * 3600.0))
    assert sc.agents[2].shifts == ((3600.0, 5400.0),)
    assert sc.agents[2].profile.languages == {"zh", "en"}


def test_rates_per_hour_and_constant_rate() -> None:
    per_hour = MINIMAL.replace("per_interval: [30, 60]", "per_hour: [120, 240]")
    assert parse_scenario(per_hour).rates == pytest.approx((120 / 3600, 240 / 3600))
    const = MINIMAL.replace("  per_interval: [30, 60]", "  calls_per_hour: 360") + "hours: 2\n"
    sc = parse_scenario(const)
    assert sc.open_ended and sc.day_end_s == 7200 and sc.expected_calls() == pytest.approx(720)


def test_vip_mix_and_simple_policy_classes() -> None:
    sc = parse_scenario(MINIMAL + """\
callers:
  pool: 500
  vip: {share: 0.1, levels: {1: 0.5, 3: 0.5}, handle: {dist: fixed, mean: 60}}
  dialects: {mandarin: 0.7, cantonese: 0.3}
""")
    assert sc.callers.vip_levels == ((1, 0.5), (3, 0.5))
    assert sc.callers.vip_handle == Dist("fixed", 60)
    # FIFO mode: VIPs form the class "vip" for the figures (no priority)
    assert sc.policy.classify({"vip_level": "3"}) == "vip"
    assert sc.policy.classify({"vip_level": "0"}) == "standard"
    assert sc.policy.route({"vip_level": "3"}, "tech") == ("tech", 0)


def test_routing_file(tmp_path: Path) -> None:
    write(tmp_path, """\
        classes:
          vip: {sl_target: 0.9, sl_seconds: 10}
          standard: {sl_target: 0.8, sl_seconds: 20}
        class_rules: [{when: {vip_level: {min: 1}}, class: vip}]
        routes: [{when: {vip_level: {min: 1}}, queue: support, priority: 10}]
        queues:
          support: {skill: support}
        """, "routing.yaml")
    path = write(tmp_path, """\
        arrivals: {per_interval: [10]}
        queues: {support: {share: 1}}
        routing: routing.yaml
        agents: {counts: {support: 1}}
        """)
    sc = load_scenario(path)
    assert sc.routing == tmp_path / "routing.yaml"
    assert sc.policy.route({"vip_level": "2"}, "support") == ("support", 10)


def test_trace_csv(tmp_path: Path) -> None:
    calls = parse_trace(textwrap.dedent("""\
        arrival,number,queue,attributes,handle,patience
        08:00:30,138001,billing,vip=2;dialect=cantonese,120,
        5,138002,tech,,60.5,30
        # a comment line

        08:00:05,138003,tech,segment=prepaid,10,0
        """), "t.csv", start_s=8 * 3600)
    assert [c.arrival_s for c in calls] == [5, 5, 30]  # sorted, ties in file order
    assert [c.number for c in calls] == ["138002", "138003", "138001"]
    first = calls[2]
    assert first.attributes == (("vip_level", "2"), ("dialect", "cantonese"))
    assert first.patience_s is None and first.handle_s == 120 and first.line == 2
    assert calls[0].patience_s == 30 and calls[1].patience_s == 0
    assert load_trace(SCENARIOS / "trace_small.csv", 8 * 3600)[0].number == "13800000001"


def test_clock_and_day() -> None:
    assert clock(0, 8 * 3600) == "08:00" and clock(900, 8 * 3600) == "08:15"
    assert clock(20 * 3600, 8 * 3600) == "04:00+1d"
    assert day_start("wednesday").isoformat() == "2026-11-25T00:00:00+00:00"
    assert day_start("2027-01-04", "Asia/Shanghai").utcoffset() is not None


def test_walk_ivr_draws_keys_per_menu_node(tmp_path: Path) -> None:
    from acd.ivr.load import load_flow

    flow = load_flow(SCENARIOS / "monday_ivr.yaml")
    rng = random.Random(3)
    keys = {"main_menu": (("1", 0.5), ("3", 0.3), (None, 0.2))}
    seen: dict[str | None, int] = {}
    for _ in range(400):
        queue, prio, path, _attrs = walk_ivr(flow, keys, rng)
        seen[queue] = seen.get(queue, 0) + 1
        assert prio == 0 and path[0] == "welcome"
        if queue is None:  # key 3: balance self-service, the call ends in the IVR
            assert path[-1] == "goodbye"
    # "no key" is asked again (retries 2), then on_fail: general (0.2 ** 3 = 0.8 %)
    assert set(seen) <= {"billing", "general", None} and seen.get("general", 0) < 12
    assert 0.55 < seen["billing"] / 400 < 0.70  # about 0.5 / (0.5 + 0.3)
    # a menu without an entry gets no key: after the retries, on_fail (general)
    assert walk_ivr(flow, {}, rng)[0] == "general"


# ------------------------------------------------------------------ errors

BAD = [
    ("interval", MINIMAL.replace("interval_minutes: 15", "interval_minutes: 20"),
     3, "interval_minutes must be 15, 30 or 60 (got 20)"),
    ("shares", MINIMAL.replace("tech: {share: 0.4,", "tech: {share: 0.3,"),
     7, "queues: the shares add up to 0.9, not 1"),
    ("distribution", MINIMAL.replace("handle: {dist: exponential, mean: 180}",
                                     "handle: {dist: gamma, mean: 180}"),
     9, "handle: unknown distribution 'gamma' (known: exponential, lognormal, fixed)"),
    ("lognormal-sd", MINIMAL.replace("patience: {dist: exponential, mean: 120}",
                                     "patience: {dist: lognormal, mean: 120}"),
     10, "patience: a lognormal distribution needs 'sd'"),
    ("shift", MINIMAL.replace("counts: {billing: 2, tech: 1}",
                              "counts: {billing: 2, tech: 1}\n  shift: \"09:00-09:00\""),
     13, "agents: shift: the shift ends when it starts (09:00)"),
    ("skill", MINIMAL.replace("counts: {billing: 2, tech: 1}", "counts: {biling: 2}"),
     12, "agents: counts: 'biling' is not a skill of any queue (skills: billing, tech)"),
    ("unknown-key", MINIMAL.replace("arrivals:", "arrival:"),
     4, "the scenario: unknown key 'arrival'"),
    ("constant-rate-no-end", MINIMAL.replace("per_interval: [30, 60]", "calls_per_hour: 100"),
     5, "a constant rate (calls_per_hour) needs 'calls' or 'hours' to end"),
    ("probability", MINIMAL + "ring_no_answer: 1.5\n",
     13, "ring_no_answer must be a number from 0 to 1"),
    ("start", MINIMAL.replace('start: "08:00"', 'start: "25:00"'),
     2, "start must be a time of day HH:MM or a local date and time YYYY-MM-DD HH:MM "
        "(got '25:00')"),
    ("yaml", MINIMAL.replace("  billing: {share: 0.6}", "  billing: {share: 0.6"),
     8, "not valid YAML"),
    ("negative-count", MINIMAL.replace("per_interval: [30, 60]", "per_interval: [30, -5]"),
     5, "arrivals: per_interval[1] must be a number from 0 to 1e+07"),
    ("ring-delay", MINIMAL + "ring_delay_s: 25\n",
     13, "ring_delay_s 25 must be below the shortest ring timeout (20 s)"),
    ("agent-id-twice", MINIMAL.replace("agents:\n  counts: {billing: 2, tech: 1}\n",
                                       "agents:\n  - {id: a, skills: {tech: 5}}\n"
                                       "  - {id: a, skills: {billing: 5}}\n"),
     13, "agents[1]: agent id 'a' is used twice"),
    ("gender", MINIMAL.replace("agents:\n  counts: {billing: 2, tech: 1}\n",
                               "agents:\n  - {id: a, skills: {tech: 5}, gender: X}\n"),
     12, "agents[0]: gender 'X' is not F or M"),
    ("no-shares", MINIMAL.replace("{share: 0.6}", "{}").replace("share: 0.4, ", ""),
     7, "queues need a 'share' each (or give an 'ivr')"),
]


@pytest.mark.parametrize(("text", "line", "problem"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_malformed_scenario_names_line_and_problem(tmp_path: Path, text: str, line: int,
                                                   problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert err.line == line, str(err)
    assert problem in str(err)
    assert str(err).startswith(f"{path}:{line}:{err.column}: ")


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")
    path = write(tmp_path, MINIMAL + "routing: missing.yaml\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 13 and "routing policy file not found" in str(info.value)
    path = write(tmp_path, MINIMAL.replace("queues:", "ivr: {flow: none.yaml}\nqueues:")
                 .replace("{share: 0.6}", "{}").replace("share: 0.4, ", ""))
    with pytest.raises(ScenarioError, match=r"scenario.yaml:6:\d+: ivr: flow file not found"):
        load_scenario(path)


def test_ivr_keys_for_an_unknown_node(tmp_path: Path) -> None:
    flow = (SCENARIOS / "monday_ivr.yaml").read_text(encoding="utf-8")
    write(tmp_path, flow, "flow.yaml")
    text = (MINIMAL.replace("{share: 0.6}", "{}").replace("share: 0.4, ", "")
            + "ivr:\n  flow: flow.yaml\n  keys: {main_mneu: {'1': 1.0}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.line == 15
    assert "ivr: keys: 'main_mneu' is not a node of the flow" in str(info.value)


def test_ivr_sends_calls_to_a_queue_that_is_not_listed(tmp_path: Path) -> None:
    write(tmp_path, (SCENARIOS / "monday_ivr.yaml").read_text(encoding="utf-8"), "flow.yaml")
    text = textwrap.dedent("""\
        arrivals: {per_interval: [10]}
        queues: {billing: {}, tech: {}}
        ivr: {flow: flow.yaml}
        agents: {counts: {billing: 1}}
        """)
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert info.value.line == 3
    assert "the flow sends calls to queue 'general', which is not in queues" in str(info.value)


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("arrival,queue,handle\nsoon,billing,10\n", 2, "arrival: 'soon' is not seconds, HH:MM:SS or "
     "YYYY-MM-DD HH:MM:SS"),
    ("arrival,queue\n0,billing\n", 1, "header: missing column(s) handle"),
    ("arrival,queue,handle,mood\n0,billing,10,ok\n", 1, "header: unknown column(s) mood"),
    ("arrival,queue,handle,attributes\n0,billing,10,vip\n", 2,
     "attributes: 'vip' is not key=value"),
    ("arrival,queue,handle,patience\n0,billing,10,-3\n", 2,
     "patience: '-3' is not a number of seconds >= 0"),
    ("arrival,queue,handle\n0,billing,10\n07:59:00,billing,10\n", 3,
     "arrival: '07:59:00' is before the scenario's start"),
    ("arrival,queue,handle\n0,,10\n", 2, "queue: empty"),
    ("arrival,queue,handle\n2026-11-02 08,billing,10\n", 2,
     "arrival: '2026-11-02 08' is not a date and time like '2026-11-02 21:58'"),
    ("arrival,queue,handle\n2026-11-31 08:00,billing,10\n", 2, "arrival: '2026-11-31 08:00': "),
])
def test_malformed_trace_names_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_trace(text, "calls.csv", start_s=8 * 3600)
    assert info.value.line == line
    assert str(info.value).startswith(f"calls.csv:{line}: {problem}")


def test_trace_with_unknown_queue_under_a_routing_file(tmp_path: Path) -> None:
    write(tmp_path, "queues:\n  support: {skill: support}\n", "routing.yaml")
    (tmp_path / "calls.csv").write_text("arrival,queue,handle\n0,support,5\n3,sales,5\n",
                                        encoding="utf-8")
    path = write(tmp_path, """\
        trace: calls.csv
        routing: routing.yaml
        agents: {counts: {support: 1}}
        """)
    with pytest.raises(TraceError, match=r"calls.csv:3: queue: 'sales' is not in the routing"):
        load_scenario(path)


# ------------------------------------------------------------------ days, breaks, wrap-up


def test_days_repeat_the_daily_list_and_shifts_and_cross_midnight() -> None:
    sc = parse_scenario(MINIMAL.replace('start: "08:00"', 'start: "2026-11-02 22:00"\ndays: 2')
                        .replace("counts: {billing: 2, tech: 1}",
                                 "counts: {billing: 2, tech: 1}\n  shift: \"21:00-07:00\""),
                        "tiny.yaml")
    assert sc.start_at.isoformat() == "2026-11-02T22:00:00" and sc.days == 2
    per_day = 96
    assert len(sc.rates) == per_day + 2 and sc.rates[2:per_day] == (0.0,) * (per_day - 2)
    assert sc.rates[per_day:] == pytest.approx((30 / 900, 60 / 900))
    # the night before's shift reaches into the start; then one each night
    assert sc.agents[0].shifts == ((-3600.0, 9 * 3600.0), (23 * 3600.0, 33 * 3600.0))


@pytest.mark.parametrize(("edit", "problem"), [
    ({'start: "08:00"': 'start: "08:00"\ndays: 2', "[30, 60]": "[" + "1, " * 96 + "1]"},
     "arrivals: per_interval has 97 intervals, more than a day's 96"),
    ({'start: "08:00"': 'start: "2026-11-02 08:00"\nday: 2026-11-03'},
     "day 2026-11-03 is not the date of start (2026-11-02)"),
    ({'start: "08:00"': 'start: "2026-11-02 08:00+01:00"'},
     "start must be a time of day HH:MM or a local date and time"),
    ({"per_interval: [30, 60]": "calls_per_hour: 10\ncalls: 5", 'start: "08:00"':
      'start: "08:00"\ndays: 3'}, "'days' repeats a daily list of arrivals"),
    ({"patience:": "wrap_up: {dist: fixed, mean: 5}\nwrap_up_s: 3\npatience:"},
     "give 'wrap_up' (a distribution) or 'wrap_up_s' (fixed seconds), not both"),
    ({"pool": "pool", "handle: {dist: exponential, mean: 180}":
      "handle: {dist: exponential, mean: 180}\ncallers: {priorities: {0: 0.5, x: 0.5}}"},
     "callers: priorities: 'x' is not a priority 0-100"),
    ({"handle: {dist: exponential, mean: 180}": "handle: {dist: exponential, mean: 180}\n"
      "not_ready: {coaching: {per_hour: 1}}"}, "not_ready: coaching needs a 'minutes'"),
])
def test_new_keys_are_checked(edit: dict[str, str], problem: str) -> None:
    text = MINIMAL
    for old, new in edit.items():
        text = text.replace(old, new)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "tiny.yaml")
    assert problem in str(info.value) and info.value.line > 0


def test_trace_priority_wrap_and_date_time_arrivals() -> None:
    import datetime as dt

    calls = parse_trace("arrival,queue,handle,priority,wrap\n"
                        "2026-11-03 01:30:05,billing,60,2,15.5\n"
                        "2026-11-02 23:00:00,tech,60,,\n", "t.csv", 22 * 3600,
                        dt.datetime(2026, 11, 2, 22, 0))
    assert [(c.arrival_s, c.priority, c.wrap_s) for c in calls] == [
        (3600.0, 0, None), (3.5 * 3600 + 5, 2, 15.5)]
    with pytest.raises(TraceError, match=r"t\.csv:2: priority: 'high' is not a whole number"):
        parse_trace("arrival,queue,handle,priority\n0,q,1,high\n", "t.csv")
    with pytest.raises(TraceError, match="needs the scenario's start date"):
        parse_trace("arrival,queue,handle\n2026-11-02 23:00:00,q,1\n", "t.csv")
