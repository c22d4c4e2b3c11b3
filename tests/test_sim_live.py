"""Live load simulation: the real engine against the PBX simulator over AMI
and FastAGI, from a scenario file, sped up (acd/loadsim/live.py and its parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.loadsim.live import run_live
from acd.loadsim.live_result import LiveResult
from acd.loadsim.plan import live_flow, plan_calls
from acd.loadsim.rate import max_sustained_rate
from acd.loadsim.scenario import load_scenario, parse_scenario
from acd.loadsim.virtual import run_virtual

ROOT = Path(__file__).resolve().parent.parent
SMALL = """\
name: small
start: "09:00"
interval_minutes: 15
arrivals: {calls_per_hour: 720}
calls: 40
queues:
  billing: {share: 0.6, sl_seconds: 20}
  tech: {share: 0.4, sl_seconds: 30}
handle: {dist: exponential, mean: 60}
patience: {dist: exponential, mean: 120}
wrap_up_s: 5
ring_no_answer: 0.1
ring_delay_s: 2
agents:
  counts: {billing: 3, tech: 2}
"""


def accounted(res: LiveResult) -> None:
    """Every arrival has one record and one outcome."""
    total = res.totals()
    assert res.placed == res.records == res.figures.arrivals
    assert total.answered + total.abandoned + total.other == total.offered
    assert total.offered + res.figures.ivr_only() == res.placed
    assert res.unfinished == 0 and res.engine_errors == 0
    assert res.problems == []


async def test_small_live_run_is_accounted_for_and_plausible() -> None:
    sc = parse_scenario(SMALL, "<small>")
    res = await run_live(sc, seed=1, speed=200)
    accounted(res)
    assert res.placed == 40
    total = res.totals()
    assert total.offered == 40 and total.answered > 10
    assert total.service_level is not None and 0 <= total.service_level <= 1
    assert total.mean_wait_s is not None and total.mean_wait_s >= 0
    assert total.occupancy is not None and 0.2 < total.occupancy <= 1
    # the callers' side agrees with the engine's records
    assert res.sim_outcomes.get("talked", 0) == total.answered
    # every call went to the queue its plan drew (the generated menu works)
    _, keys = live_flow(sc)
    plan = {p.index: p.queue for p in plan_calls(sc, 1, key_of=keys)}
    assert sorted(c.first_queue for c in res.figures.calls) == sorted(plan.values())
    # latency figures are there
    for name in ("p50", "p99", "max"):
        assert res.decisions[name] is not None and res.decisions[name] > 0
        assert res.connect[name] is not None and res.connect[name] > 0
    assert res.decisions["count"] > 100  # calls started, queued, answered, ended, timers
    assert res.connect["count"] >= total.answered
    assert res.decisions["p50"] < 5_000  # µs: a decision takes well under 5 ms
    # the figures are in simulated seconds: 40 calls at 720/h span minutes, not seconds
    assert 60 < max(c.arrival_s for c in res.figures.calls) < 600
    assert res.wall_s < 20


def test_the_plan_is_the_virtual_runs_calls() -> None:
    """Same seed, same arrivals, queues and numbers as run_virtual."""
    sc = parse_scenario(SMALL, "<small>")
    _, keys = live_flow(sc)
    plan = plan_calls(sc, 7, key_of=keys)
    virtual = run_virtual(sc, 7)
    got = [(p.arrival_s, p.number, p.queue) for p in plan]
    want = sorted((c.arrival_s, c.number, c.first_queue) for c in virtual.calls)
    assert got == want
    assert {p.keys for p in plan} == {("1",), ("2",)}  # one menu key per queue


def test_ivr_key_scripts_follow_the_flow() -> None:
    """The Monday scenario's callers press keys that lead the real flow to the
    queue the virtual walk chose: "" for the barge-in greeting, then the key."""
    sc = load_scenario(ROOT / "sim" / "scenarios" / "monday.yaml")
    plan = plan_calls(sc, 1, 300)
    virtual = run_virtual(sc, 1, 300)
    assert [p.arrival_s for p in plan] == sorted(c.arrival_s for c in virtual.calls)
    queue_of = {"1": "billing", "2": "tech", "0": "general", "3": None}
    retried = 0
    for p in plan:
        assert p.keys[0] == ""  # the greeting (barge-in: an input prompt)
        pressed = [k for k in p.keys[1:] if k]
        assert len(pressed) <= 1
        # no key at all: the menu retries, then sends the caller to general
        assert p.queue == (queue_of[pressed[0]] if pressed else "general")
        if len(p.keys) > 2:  # a retry: the timeout prompt and the menu again
            retried += 1
            assert p.keys[1] == ""
    assert retried > 0


async def test_day_with_ivr_routing_and_shifts_live() -> None:
    """The Monday scenario (IVR, routing file, VIPs, shifts) live, for its
    first 40 calls at speed 600."""
    sc = load_scenario(ROOT / "sim" / "scenarios" / "monday.yaml")
    res = await run_live(sc, seed=2, calls=40, speed=600)
    accounted(res)
    assert res.placed == 40
    assert {c.queue for c in res.figures.calls} <= {"billing", "tech", "general", None}
    assert res.connect["count"] > 0


async def test_trace_live_with_the_simulator_in_a_child_process() -> None:
    sc = load_scenario(ROOT / "sim" / "scenarios" / "trace_small.yaml")
    res = await run_live(sc, seed=0, speed=200, split=True)
    accounted(res)
    assert res.split and res.sim_cpu_s is not None
    assert res.placed == 8
    assert {c.number for c in res.figures.calls} == {c.number for c in sc.trace or ()}
    assert res.connect["count"] >= res.totals().answered > 0


def test_max_sustained_rate_steps() -> None:
    best, steps = max_sustained_rate((20,), 1.0, speed=100, split=False)
    assert len(steps) == 1
    step = steps[0]
    assert step.calls == step.records == 20 and step.unfinished == 0
    assert step.decision_p99_us is not None and step.connect_p99_ms is not None
    assert best == (20 if step.sustained else None)
    with pytest.raises(ValueError):
        max_sustained_rate((20,), 1.0, latency="sideways")
