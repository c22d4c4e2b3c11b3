"""``acd demo``: the engine against the PBX simulator over real sockets.

The simulator listens for AMI on an ephemeral loopback port; the engine
listens for FastAGI on another; calls flow exactly as with a real Asterisk.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from acd.adapters.ami import AmiConfig
from acd.adapters.schema import call_records
from acd.adapters.storage import Summary
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.nodes import Flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, CallResult, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX

DEMO_SECRET = "demo-secret"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    calls: int
    agents: int
    rate: float
    talk_s: float
    seed: int
    database_url: str
    flow: Flow
    wrap_up_s: float = 0.3
    patience_mean_s: float = 10.0
    prompt_s: float = 0.5


@dataclass(slots=True)
class DemoResult:
    summary: Summary
    sim_results: list[CallResult]
    elapsed_s: float
    cpu_s: float  # engine and simulator together (one process)
    problems: list[str] = field(default_factory=list)


def caller_mix(rng: random.Random, n: int, patience_mean_s: float) -> list[CallerScript]:
    """A hotline's callers: most pick a queue, some serve themselves, some
    get lost in the menu, a few hang up in the IVR."""
    scripts: list[CallerScript] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.25:
            keys = ["", "1"]  # billing
        elif r < 0.45:
            keys = ["", "2"]  # tech
        elif r < 0.65:
            keys = ["", "0"]  # agent
        elif r < 0.80:
            keys = ["", "3"]  # balance self-service: ends in the IVR
        elif r < 0.90:
            keys = ["", "7", "1"]  # a wrong key first
        elif r < 0.95:
            keys = ["2"]  # presses 2 during the greeting: type-ahead picks tech
        else:
            keys = [""]
        hang = rng.uniform(0.3, 2.0) if r >= 0.97 else None
        scripts.append(CallerScript(
            number=f"138{rng.randrange(10**8):08d}", name=rng.choice(["张三", "李四", "Wang", ""]),
            keys=keys, patience_s=rng.expovariate(1 / patience_mean_s),
            hangup_after_s=hang, key_delay_s=0.2,
        ))
    return scripts


def _talk_draw(rng: random.Random, mean_s: float) -> Callable[[], float]:
    return lambda: rng.expovariate(1 / mean_s)


def demo_config(opts: DemoOptions, ami_port: int) -> EngineConfig:
    policy = simple_policy({q: 5.0 for q in sorted(opts.flow.queues)})
    names = tuple(policy.queues)
    agents = agents_for_queues({f"a{1001 + i}": (str(1001 + i), names)
                                for i in range(opts.agents)})
    return EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=opts.wrap_up_s,
                        rona_pause_s=2.0),
        flow=opts.flow,
        ami=AmiConfig(port=ami_port, username="acd", secret=DEMO_SECRET, ping_interval=2.0),
        agi_port=0, database_url=opts.database_url,
    )


async def run_demo(opts: DemoOptions, console: Console | None = None) -> DemoResult:
    rng = random.Random(opts.seed)
    pbx = SimPBX(SimConfig(users={"acd": DEMO_SECRET}, prompt_s=opts.prompt_s))
    await pbx.start()
    engine: Engine | None = None
    try:
        for i in range(opts.agents):
            pbx.add_phone(str(1001 + i), PhoneBehaviour(
                answer_after_s=0.2,
                talk_s=_talk_draw(random.Random(opts.seed * 1000 + i), opts.talk_s),
            ))
        engine = Engine(demo_config(opts, pbx.ami_port))
        async with engine.db.engine.begin() as conn:  # a fresh table each demo run
            await conn.run_sync(call_records.drop, checkfirst=True)
        await engine.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
        scripts = caller_mix(rng, opts.calls, opts.patience_mean_s)
        cpu0, t0 = time.process_time(), time.monotonic()
        handles = []
        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), console=console, transient=True,
                            disable=console is None)
        with progress:
            placed = progress.add_task("placing calls", total=opts.calls)
            ended = progress.add_task("calls ended", total=opts.calls)
            for script in scripts:
                h = await pbx.place_call(script)
                h.done.add_done_callback(lambda _f: progress.advance(ended))
                handles.append(h)
                progress.advance(placed)
                await asyncio.sleep(rng.expovariate(opts.rate))
            results = list(await asyncio.gather(*(h.done for h in handles)))
            # the engine writes each record when it sees the call end
            deadline = time.monotonic() + 10
            while engine.counters.calls_finished < opts.calls and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        await engine.writer.drain()
        summary = await engine.db.summary()
        problems: list[str] = []
        if summary.total != opts.calls:
            problems.append(f"{opts.calls} calls placed but {summary.total} call records")
        return DemoResult(summary, results, elapsed, cpu, problems)
    finally:
        if engine is not None:
            await engine.stop()
        await pbx.stop()
