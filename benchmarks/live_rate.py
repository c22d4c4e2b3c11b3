"""Live mode: the highest sustained arrival rate with p99 routing latency at most 5 ms.

    .venv/bin/python benchmarks/live_rate.py [--rates 50,100,150,200,300,400,600]
        [--seconds 4] [--p99-ms 5] [--latency decision|connect] [--keep-up-ms 100]
        [--in-process] [--speed 100] [--stop-after 1] [--json]

Each rate (arrivals per second of wall time) runs :func:`acd.loadsim.rate.rate_scenario`
for ``--seconds`` of arrivals: the real engine against the PBX simulator over
AMI and FastAGI on loopback, callers going through the basic hotline IVR
(greeting, menu, a key) to three FIFO queues with agents enough for the load
(waits come from the engine, not from a lack of agents), talk 30 s and
wrap-up 2 s simulated at ``--speed`` 100 (0.3 s and 20 ms real), nobody
hanging up.  The simulator runs in a child process (as in
benchmarks/engine_load.py) so the engine has a core to itself;
``--in-process`` puts both on one core, as ``acd sim run --live`` does.

A rate is *sustained* when (see :func:`acd.loadsim.rate.max_sustained_rate`):

* every call ends with exactly one call record (none left unfinished, no
  engine error);
* the p99 routing latency is at most ``--p99-ms``: ``decision`` (default)
  the core's routing decisions (``engine.latencies``), or ``connect`` the
  whole routing path, from the core's decision (``ConnectCall``) to the
  agent's phone ringing in the simulator (AMI Setvar ×2 and Redirect, the
  caller's AGI ending, the dialplan's Dial);
* with ``decision``: the engine keeps up, i.e. that whole path's p99 is at
  most ``--keep-up-ms`` (a saturated event loop shows there, while each
  decision stays fast).

The steps stop at the first rate that is not sustained (``--stop-after``).
Printed per rate: the achieved arrival rate, records, p99 decision time,
p50/p99 decision → ring, p99 queue entry → ring (calls offered at once), p99
arrival lag (how late the load generator placed calls) and CPU use of the
engine's process (and of the simulator's).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.loadsim.rate import RateStep, max_sustained_rate  # noqa: E402


def _show(step: RateStep) -> None:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    dec = "-" if step.decision_p99_us is None else f"{step.decision_p99_us:.0f} µs"
    sim = "" if step.sim_cpu_util is None else f", sim {100 * step.sim_cpu_util:3.0f} %"
    print(f"{step.rate:5g}/s (achieved {step.offered_rate:5.1f}/s)  records "
          f"{step.records}/{step.calls}  decision p99 {dec}  decision→ring p50 "
          f"{ms(step.connect_p50_ms)} p99 {ms(step.connect_p99_ms)}  queued→ring p99 "
          f"{ms(step.queue_to_ring_p99_ms)}  lag p99 {ms(step.arrival_lag_p99_ms)}  "
          f"CPU engine {100 * step.cpu_util:3.0f} %{sim}  "
          f"{'sustained' if step.sustained else 'NOT sustained: ' + step.why}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="50,100,150,200,300,400,600",
                    help="arrival rates to try, calls per wall second, ascending")
    ap.add_argument("--seconds", type=float, default=4.0, help="arrival period per rate")
    ap.add_argument("--p99-ms", type=float, default=5.0, help="p99 routing latency bound")
    ap.add_argument("--latency", choices=("decision", "connect"), default="decision",
                    help="which latency --p99-ms bounds")
    ap.add_argument("--keep-up-ms", type=float, default=100.0,
                    help="with --latency decision: bound on the p99 decision→ring time")
    ap.add_argument("--in-process", action="store_true",
                    help="engine and simulator in one process (one core)")
    ap.add_argument("--speed", type=float, default=100.0, help="simulated s per real s")
    ap.add_argument("--stop-after", type=int, default=1,
                    help="stop after this many rates in a row are not sustained")
    ap.add_argument("--json", action="store_true", help="one JSON line per rate, then the result")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rates = [float(r) for r in args.rates.split(",")]

    def report(step: RateStep) -> None:
        if args.json:
            print(json.dumps(step.as_dict()), flush=True)
        else:
            _show(step)

    best, _ = max_sustained_rate(rates, args.seconds, p99_ms=args.p99_ms,
                                 latency=args.latency, keep_up_ms=args.keep_up_ms,
                                 speed=args.speed, split=not args.in_process,
                                 stop_after=args.stop_after, report=report)
    what = (f"p99 {args.latency} latency <= {args.p99_ms:g} ms"
            + (f", p99 decision→ring <= {args.keep_up_ms:g} ms" if args.latency == "decision"
               else ""))
    if args.json:
        print(json.dumps({"max_sustained_rate": best, "criteria": what}))
    elif best is None:
        print(f"no rate was sustained ({what}, every call recorded)")
    else:
        print(f"highest sustained arrival rate: {best:g} calls/s (wall time) with {what} "
              f"and every call recorded")


if __name__ == "__main__":
    main()
