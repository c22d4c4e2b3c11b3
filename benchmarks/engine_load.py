"""Engine cost per call and the highest arrival rate it sustains on one core.

    .venv/bin/python benchmarks/engine_load.py [--rates 25,50,100,200] [--seconds 10]

The engine runs in this process (one asyncio thread; SQLite writes in
aiosqlite's thread); the PBX simulator runs in a child process
(benchmarks/sim_process.py) and talks to it over loopback AMI and FastAGI,
so the CPU measured here is the engine's alone.  Each caller goes through
the hotline IVR (greeting, menu, key) to a queue and an agent, or serves
itself (10 %).

A rate is *sustained* when every call ends with exactly one call record,
nobody abandons (patience 300-600 s, so only a slow engine could make them
give up) and the engine used less than 90 % of one core.  Printed per rate:
engine CPU ms per completed call, engine core utilisation, p99 of the core's
decision time, and the simulator's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.adapters.ami import AmiConfig  # noqa: E402
from acd.core.center import agents_for_queues  # noqa: E402
from acd.core.model import CoreConfig  # noqa: E402
from acd.core.policy import simple_policy  # noqa: E402
from acd.ivr.load import load_flow  # noqa: E402
from acd.runtime.engine import Engine  # noqa: E402
from acd.runtime.settings import EngineConfig  # noqa: E402

SECRET = "bench-secret"
TALK_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_rate(rate: float, seconds: float, db_dir: str) -> dict[str, float | int | bool]:
    calls = max(20, int(rate * seconds))
    agents = int(rate * (TALK_S + 0.6) * 1.5) + 5
    ami_port, agi_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "benchmarks" / "sim_process.py"), str(ami_port),
        f"agi://127.0.0.1:{agi_port}", SECRET, str(agents), str(calls), str(rate), str(TALK_S),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    await proc.stdout.readline()  # {"ready": true}
    flow = load_flow(ROOT / "ivr_flows" / "basic.yaml")
    policy = simple_policy({q: 10.0 for q in sorted(flow.queues)})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, wrap_up_s=0.1, agents=agents_for_queues(
            {f"a{1001 + i}": (str(1001 + i), tuple(policy.queues)) for i in range(agents)})),
        flow=flow, ami=AmiConfig(port=ami_port, secret=SECRET), agi_port=agi_port,
        database_url=f"sqlite+aiosqlite:///{db_dir}/bench-{int(rate)}.db",
    )
    engine = Engine(cfg)
    await engine.start()
    engine.latencies = []
    cpu0, t0 = time.process_time(), time.monotonic()
    line = await proc.stdout.readline()
    await proc.wait()
    await engine.writer.drain()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    summary = json.loads(line)
    lat = sorted(engine.latencies)
    records = await engine.db.summary()
    await engine.stop()
    p99_us = lat[int(0.99 * (len(lat) - 1))] / 1000 if lat else 0.0
    util = cpu / wall
    ok = records.total == calls and summary["abandoned"] == 0 and util < 0.9
    return {"rate": rate, "calls": calls, "records": records.total,
            "answered": records.answered, "abandoned": records.abandoned,
            "engine_cpu_s": round(cpu, 3), "cpu_ms_per_call": round(1000 * cpu / calls, 3),
            "engine_util": round(util, 3), "p99_decision_us": round(p99_us, 1),
            "sim_cpu_s": summary["sim_cpu_s"], "wall_s": round(wall, 1), "sustained": ok}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="25,50,100,200", help="arrival rates, calls per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="arrival period per rate")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for rate in (float(r) for r in args.rates.split(",")):
            row = await run_rate(rate, args.seconds, d)
            rows.append(row)
            print(json.dumps(row), flush=True)
    best = [r for r in rows if r["sustained"]]
    if best:
        top = max(best, key=lambda r: float(r["rate"]))
        print(f"highest sustained arrival rate measured: {top['rate']:g} calls/s, the engine "
              f"using {100 * float(top['engine_util']):.0f} % of one core, "
              f"{top['cpu_ms_per_call']} ms CPU per completed call")
    else:
        print("no rate was sustained")


if __name__ == "__main__":
    asyncio.run(main())
