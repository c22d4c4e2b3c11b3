"""The highest arrival rate the live engine sustains.

:func:`max_sustained_rate` steps the arrival rate up (calls per wall
second) on a stationary scenario (:func:`rate_scenario`) and reports the
highest rate at which every call was recorded, the p99 routing latency
stayed within a bound and the engine kept up; ``benchmarks/live_rate.py``
prints it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acd.loadsim.live import run_live_sync
from acd.loadsim.model import Scenario
from acd.loadsim.scenario import parse_scenario

__all__ = ["RateStep", "max_sustained_rate", "rate_scenario"]

ROOT = Path(__file__).resolve().parents[2]


#: the stationary scenario of :func:`max_sustained_rate`: the basic hotline
#: IVR (greeting, menu, key) in front of three FIFO queues
RATE_SCENARIO = """\
name: live-rate-{rate:g}
interval_minutes: 60
arrivals: {{calls_per_hour: {per_hour}}}
calls: {calls}
ivr:
  flow: {flow}
  keys: {{main_menu: {{"1": 0.4, "2": 0.3, "0": 0.2, "3": 0.1}}}}
queues: {{billing: , tech: , general: }}
handle: {{dist: exponential, mean: {handle}}}
patience: none
wrap_up_s: {wrap}
agents:
  counts: {{billing: {n_billing}, tech: {n_tech}, general: {n_general}}}
"""


@dataclass(frozen=True, slots=True)
class RateStep:
    """One arrival rate of :func:`max_sustained_rate`."""

    rate: float  # planned arrivals per wall second
    offered_rate: float  # achieved
    calls: int
    records: int
    unfinished: int
    decision_p99_us: float | None
    decision_max_us: float | None
    connect_p50_ms: float | None
    connect_p99_ms: float | None
    queue_to_ring_p99_ms: float | None
    arrival_lag_p99_ms: float | None
    cpu_util: float  # this process's CPU / wall (the engine; with the simulator unless split)
    sim_cpu_util: float | None  # the simulator's process (split runs)
    wall_s: float
    sustained: bool
    why: str  # why not sustained ("" when sustained)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def rate_scenario(rate: float, seconds: float, speed: float, handle_s: float = 30.0,
                  wrap_s: float = 2.0) -> Scenario:
    """A stationary scenario of ``rate`` arrivals per wall second for
    ``seconds`` wall seconds at ``speed``, with agents enough for the load
    (so that waits come from the engine, not from a lack of agents)."""
    per_s = rate / speed  # per simulated second
    load = per_s * (handle_s + wrap_s + 10.0)  # Erlangs, with the ring and connect time

    def agents(share: float) -> int:
        return math.ceil(load * share * 1.3) + 3

    text = RATE_SCENARIO.format(
        rate=rate, per_hour=per_s * 3600.0, calls=max(10, round(rate * seconds)),
        flow=ROOT / "ivr_flows" / "basic.yaml", handle=handle_s, wrap=wrap_s,
        n_billing=agents(0.4), n_tech=agents(0.3), n_general=agents(0.2))
    return parse_scenario(text, f"<live rate {rate:g}/s>", base_dir=ROOT)


def max_sustained_rate(rates: Sequence[float] = (50, 100, 200, 300, 400, 500, 600, 800),
                       seconds: float = 4.0, *, p99_ms: float = 5.0,
                       latency: str = "decision", keep_up_ms: float | None = 100.0,
                       speed: float = 100.0, seed: int = 1, split: bool = True,
                       stop_after: int = 1, report: Callable[[RateStep], None] | None = None
                       ) -> tuple[float | None, list[RateStep]]:
    """Step the arrival rate up (calls per wall second, ``seconds`` of arrivals
    each) on :func:`rate_scenario` and return the highest rate *sustained*:

    * every call recorded (none unfinished, no engine error);
    * the p99 routing latency at most ``p99_ms``: ``latency="decision"``
      (default) the core's routing decisions (``engine.latencies``),
      ``"connect"`` the whole routing path, from the core's ConnectCall
      until the agent's phone rings (the decision, AMI Setvar ×2 and
      Redirect, the caller's AGI ending, the dialplan's Dial);
    * the engine keeping up: with ``latency="decision"``, the p99 of that
      whole path at most ``keep_up_ms`` (None: not checked).  A saturated
      event loop shows there first (and in ``arrival_lag``) while each
      decision stays fast.

    ``split``: the PBX simulator in a child process (default), so that the
    engine has this process's core to itself; otherwise both share it.
    Stops after ``stop_after`` rates in a row fail.  Returns (the highest
    sustained rate or None, every step)."""
    if latency not in ("connect", "decision"):
        raise ValueError(f"latency must be 'connect' or 'decision', got {latency!r}")
    steps: list[RateStep] = []
    best: float | None = None
    failures = 0
    for rate in rates:
        sc = rate_scenario(rate, seconds, speed)
        res = run_live_sync(sc, seed, speed=speed, drain_timeout_s=30.0, split=split)
        dec99 = res.decisions["p99"]
        con99 = res.connect["p99"]
        dec99_ms = dec99 / 1000.0 if dec99 is not None else None
        bound = dec99_ms if latency == "decision" else con99
        why = []
        if res.records != res.placed or res.unfinished:
            why.append(f"{res.records} records of {res.placed} calls, "
                       f"{res.unfinished} unfinished")
        if res.engine_errors:
            why.append(f"{res.engine_errors} engine errors")
        if bound is None or bound > p99_ms:
            why.append(f"p99 {latency} latency {bound} ms > {p99_ms:g} ms")
        if latency == "decision" and keep_up_ms is not None and (
                con99 is None or con99 > keep_up_ms):
            why.append(f"not keeping up: p99 decision→ring {con99} ms > {keep_up_ms:g} ms")
        step = RateStep(
            rate=rate, offered_rate=round(res.offered_rate, 1), calls=res.placed,
            records=res.records, unfinished=res.unfinished,
            decision_p99_us=_f(dec99), decision_max_us=_f(res.decisions["max"]),
            connect_p50_ms=_f(res.connect["p50"]), connect_p99_ms=_f(con99),
            queue_to_ring_p99_ms=_f(res.queue_to_ring["p99"]),
            arrival_lag_p99_ms=_f(res.arrival_lag["p99"]),
            cpu_util=round(res.cpu_s / res.wall_s, 3) if res.wall_s > 0 else 0.0,
            sim_cpu_util=round(res.sim_cpu_s / res.wall_s, 3)
            if res.sim_cpu_s is not None and res.wall_s > 0 else None,
            wall_s=round(res.wall_s, 2), sustained=not why, why="; ".join(why))
        steps.append(step)
        if report is not None:
            report(step)
        if step.sustained:
            best = rate if best is None else max(best, rate)
            failures = 0
        else:
            failures += 1
            if failures >= stop_after:
                break
    return best, steps


def _f(value: float | int | None) -> float | None:
    return None if value is None else float(value)
