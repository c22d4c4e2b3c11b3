"""Virtual-time mode (the production router) against a SimPy model of the same system.

    .venv/bin/python benchmarks/virtual_vs_simpy.py [--calls 200000] [--seed 1]
        [--repeat 1] [--gc] [--core both|pure|compiled]

``--core`` (default ``both``): the router as pure Python (the sources, as an
editable install runs them), compiled with mypyc (as ``ACD_COMPILE=1 pip
install .`` installs it; built here by :func:`acd.compiled.build_site` into
``build/compiled/``, about 40 s the first time), or one after the other,
each beside its own SimPy run.

The system is ``sim/scenarios/erlang_a.yaml``: one FCFS queue, 11 agents,
200 calls/h, exponential handle time (mean 180 s) and patience (mean 360 s),
no wrap-up, every offer answered at once; the first 10 simulated hours are a
warm-up.  Both models run in this process:

* **virtual**: :func:`acd.loadsim.virtual.run_virtual`, i.e. the production
  ``ContactCenter`` (state tables, routing indexes, call records,
  explanations) driven by a heap of events;
* **SimPy**: ``simpy.Resource(capacity=11)``, a caller process per call
  racing ``yield req | env.timeout(patience)``, an idle-agent deque (longest
  idle first) to name the agent, one record per call.

Both draw inter-arrival, handle and patience times from the same seeded
streams in the same order, so on an FCFS queue they follow the same sample
path: their figures agree to the last digit (a check that the two models
are one system).  Printed: simulated calls per second of each (wall clock
and CPU time of the run plus its figures), the ratio, and SL (20 s), P(abandon),
mean wait and P(wait > 0) of both beside the exact Erlang A values
(``acd.planning.erlang.erlang_a``, the calculator ``acd staffing`` uses).
The cyclic garbage collector is off during both runs (``run_virtual``'s
default) unless ``--gc``.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("ACD_SITE"):  # a compiled build (--core compiled): first on the path
    sys.path.insert(0, os.environ["ACD_SITE"])

from acd.compiled import describe, rerun_compiled
from acd.loadsim.scenario import load_scenario
from acd.loadsim.virtual import run_virtual
from acd.planning.erlang import erlang_a

SCENARIO = Path(__file__).resolve().parent.parent / "sim" / "scenarios" / "erlang_a.yaml"


# ------------------------------------------------------------------ SimPy model


def simpy_model(calls: int, seed: int, agents: int, calls_per_hour: float, handle_s: float,
                patience_s: float, warmup_s: float, t_s: float) -> dict[str, float]:
    import simpy

    streams = {name: random.Random(f"{seed}:{name}") for name in
               ("arrivals", "handle", "patience")}
    ea, eh, ep = (streams[n].expovariate for n in ("arrivals", "handle", "patience"))
    lam, hr, pr = calls_per_hour / 3600.0, 1.0 / handle_s, 1.0 / patience_s
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=agents)
    idle: deque[int] = deque(range(agents))  # longest idle first
    records: list[tuple[float, float, bool, int | None]] = []

    def caller(arrival: float, hold: float, patience: float
               ) -> Generator[Any, Any, None]:
        with pool.request() as req:
            got = yield req | env.timeout(patience)
            if req in got:
                agent = idle.popleft()
                records.append((arrival, env.now - arrival, True, agent))
                yield env.timeout(hold)
                idle.append(agent)
            else:
                records.append((arrival, env.now - arrival, False, None))

    def source() -> Generator[Any, Any, None]:
        t = 0.0
        for _ in range(calls):
            gap = ea(lam)
            yield env.timeout(gap)
            t = env.now
            env.process(caller(t, eh(hr), ep(pr)))

    env.process(source())
    env.run()
    counted = [r for r in records if r[0] >= warmup_s]
    n = len(counted)
    return {
        "calls": float(len(records)),
        "sl": sum(1 for r in counted if r[2] and r[1] <= t_s) / n,
        "pab": sum(1 for r in counted if not r[2]) / n,
        "wait_mean_s": sum(r[1] for r in counted) / n,
        "pwait": sum(1 for r in counted if r[1] > 0) / n,
    }


# ------------------------------------------------------------------ timing


def timed(fn: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs of each")
    ap.add_argument("--gc", action="store_true", help="keep the garbage collector on")
    ap.add_argument("--core", choices=("both", "pure", "compiled", "here"), default="both",
                    help="the router as pure Python, compiled (mypyc), or both (default); "
                         "'here': whatever this interpreter imports")
    args = ap.parse_args(argv)
    if args.core in ("both", "compiled"):
        own = ["--calls", str(args.calls), "--seed", str(args.seed), "--repeat",
               str(args.repeat), *(["--gc"] if args.gc else [])]
        if args.core == "both":
            measure(args)
            print()
        print("building the compiled core (mypyc)...", flush=True)
        return rerun_compiled(__file__, [*own, "--core", "here"])
    measure(args)
    return 0


def measure(args: argparse.Namespace) -> None:

    sc = load_scenario(SCENARIO)
    spec = sc.queues["q"]
    agents = len(sc.agents)
    cph = sc.rates[0] * 3600.0
    handle_s = sc.handle.mean
    assert sc.patience is not None
    patience_s = sc.patience.mean
    t_s = sc.queue_sl("q")
    assert spec.share == 1.0 and sc.wrap_up_s == 0 and sc.ring_no_answer == 0

    def virtual() -> dict[str, float]:
        r = run_virtual(sc, args.seed, calls=args.calls, keep_gc=args.gc)
        tot = r.totals()
        return {"calls": float(r.arrivals), "sl": tot.service_level or 0.0,
                "pab": tot.abandon_rate or 0.0, "wait_mean_s": tot.mean_wait_s or 0.0,
                "pwait": tot.pwait or 0.0, "core_events": float(r.core_events)}

    def simpy_run() -> dict[str, float]:
        if not args.gc:
            gc.disable()
        try:
            return simpy_model(args.calls, args.seed, agents, cph, handle_s, patience_s,
                               sc.warmup_s, t_s)
        finally:
            gc.enable()

    best: dict[str, tuple[dict[str, float], float, float]] = {}
    for _ in range(args.repeat):
        for name, fn in (("virtual", virtual), ("SimPy", simpy_run)):
            got = timed(fn)
            if name not in best or got[2] < best[name][2]:
                best[name] = got
    ea = erlang_a(cph, handle_s, patience_s, agents, t_s)
    exact = {"sl": ea.sl, "pab": ea.pab, "wait_mean_s": ea.wait_mean_s, "pwait": ea.pwait}

    print(f"router: {describe()}")
    print(f"Erlang A: {agents} agents, {cph:g} calls/h, handle {handle_s:g} s, patience "
          f"{patience_s:g} s (exponential); {args.calls:,} calls, first "
          f"{sc.warmup_s / 3600:g} h not counted; seed {args.seed}; best of {args.repeat}; "
          f"gc {'on' if args.gc else 'off'}")
    print(f"{'model':10} {'wall s':>8} {'cpu s':>8} {'calls/s':>9} {'(cpu)':>9}   "
          f"{'SL 20s':>7} {'P(ab)':>7} {'wait s':>7} {'P(w>0)':>7}")
    print(f"{'Erlang A':10} {'':>8} {'':>8} {'':>9} {'':>9}   {exact['sl']:7.4f} "
          f"{exact['pab']:7.4f} {exact['wait_mean_s']:7.2f} {exact['pwait']:7.4f}")
    for name, (fig, wall, cpu) in best.items():
        print(f"{name:10} {wall:8.2f} {cpu:8.2f} {fig['calls'] / wall:9.0f} "
              f"{fig['calls'] / cpu:9.0f}   {fig['sl']:7.4f} {fig['pab']:7.4f} "
              f"{fig['wait_mean_s']:7.2f} {fig['pwait']:7.4f}")
    v, s = best["virtual"], best["SimPy"]
    print(f"virtual / SimPy, simulated calls per second: {s[1] / v[1]:.2f}x (wall), "
          f"{s[2] / v[2]:.2f}x (cpu); the virtual run fed {v[0]['core_events']:,.0f} "
          f"events to the router ({v[0]['core_events'] / v[1]:,.0f}/s)")
    same = all(abs(v[0][k] - s[0][k]) < 1e-9 for k in ("sl", "pab", "wait_mean_s", "pwait"))
    print("same sample path: figures identical" if same else
          "figures differ between the models (not the same sample path)")


if __name__ == "__main__":
    raise SystemExit(main())
