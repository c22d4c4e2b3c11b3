"""``acd demo``: the engine against the PBX simulator over real sockets.

The simulator listens for AMI on an ephemeral loopback port; the engine
listens for FastAGI on another; calls flow exactly as with a real Asterisk.

A flow whose lookups call the example self-service back end's address
(``http://127.0.0.1:8099``, as ``ivr_flows/hotline.yaml`` does) gets that
back end in-process on a free port, with accounts for most of the demo's
callers (the others are unknown numbers: the flow's ``on_error``); the
engine's lookups to that address go there (:class:`HttpLookup` ``origins``).
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
from acd.ivr.nodes import Flow, Lookup
from acd.loadsim.selfservice import DEFAULT_ORIGIN, DEMO_PASSWORD, SelfService, demo_accounts
from acd.runtime.engine import Engine
from acd.runtime.http_lookup import HttpLookup, origin
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
    #: the example self-service back end's requests by kind (``account``:
    #: answered, ``unknown``: no such account ...); None: the flow calls none
    self_service: dict[str, int] | None = None


#: what the callers of each sample flow press, by the flow's name: (up to
#: this share of the callers, their keys: one entry per prompt that listens,
#: "" for none).  A flow of another name gets basic's.
CALLER_MIXES: dict[str, tuple[tuple[float, list[str]], ...]] = {
    # welcome, main menu
    "basic": (
        (0.25, ["", "1"]),        # billing
        (0.45, ["", "2"]),        # tech
        (0.65, ["", "0"]),        # agent
        (0.80, ["", "3"]),        # balance self-service: ends in the IVR
        (0.90, ["", "7", "1"]),   # a wrong key first
        (0.95, ["2"]),            # presses 2 during the greeting: type-ahead picks tech
        (1.00, [""]),
    ),
    # welcome, language, main menu, "anything else?" (out of hours: the
    # closed menu takes the second key: 1 balance, 2 data)
    "hotline": (
        (0.25, ["", "1", "1"]),        # balance in Mandarin (a lookup), then goodbye
        (0.40, ["", "1", "2"]),        # data left (a lookup)
        (0.50, ["", "2", "1", "0"]),   # balance in Cantonese, then an agent
        (0.57, ["", "1", "3"]),        # billing
        (0.62, ["", "1", "5", f"{DEMO_PASSWORD}#"]),  # lost SIM: the password checked (a lookup)
        (0.72, ["", "1", "4"]),        # tech
        (0.85, ["", "9", "0"]),        # English, an agent
        (0.92, ["", "1", "7", "0"]),   # a wrong key first
        (0.97, ["1", "2"]),            # type-ahead: 1 during the welcome picks Mandarin
        (1.00, [""]),                  # nothing: Mandarin, then an agent after the retries
    ),
}


def caller_mix(rng: random.Random, n: int, patience_mean_s: float,
               flow: str = "basic") -> list[CallerScript]:
    """A hotline's callers: most pick a queue, some serve themselves, some
    get lost in the menu, a few hang up in the IVR (:data:`CALLER_MIXES`)."""
    mix = CALLER_MIXES.get(flow, CALLER_MIXES["basic"])
    scripts: list[CallerScript] = []
    for _ in range(n):
        r = rng.random()
        keys = next((list(k) for upto, k in mix if r < upto), list(mix[-1][1]))
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


def calls_self_service(flow: Flow) -> bool:
    """Does ``flow`` look anything up at the example back end's address
    (:data:`~acd.loadsim.selfservice.DEFAULT_ORIGIN`)?"""
    for node in flow.nodes.values():
        body = node.body
        if isinstance(body, Lookup) and body.url is not None:
            try:
                if origin(body.url.source) == origin(DEFAULT_ORIGIN):
                    return True
            except ValueError:
                continue
    return False


async def run_demo(opts: DemoOptions, console: Console | None = None) -> DemoResult:
    rng = random.Random(opts.seed)
    scripts = caller_mix(rng, opts.calls, opts.patience_mean_s, opts.flow.name)
    backend: SelfService | None = None
    http: HttpLookup | None = None
    if calls_self_service(opts.flow):
        backend = SelfService(demo_accounts([s.number for s in scripts], opts.seed), port=0)
        backend.start()
        http = HttpLookup({DEFAULT_ORIGIN: backend.origin})
    try:
        return await _run(opts, rng, scripts, http, backend, console)
    finally:
        if backend is not None:
            await asyncio.to_thread(backend.stop)


async def _run(opts: DemoOptions, rng: random.Random, scripts: list[CallerScript],
               http: HttpLookup | None, backend: SelfService | None,
               console: Console | None) -> DemoResult:
    pbx = SimPBX(SimConfig(users={"acd": DEMO_SECRET}, prompt_s=opts.prompt_s))
    await pbx.start()
    engine: Engine | None = None
    try:
        for i in range(opts.agents):
            pbx.add_phone(str(1001 + i), PhoneBehaviour(
                answer_after_s=0.2,
                talk_s=_talk_draw(random.Random(opts.seed * 1000 + i), opts.talk_s),
            ))
        engine = Engine(demo_config(opts, pbx.ami_port), http=http)
        await engine.db.create()  # a new SQLite file is made 0600 (it holds numbers)
        async with engine.db.engine.begin() as conn:  # a fresh table each demo run
            await conn.run_sync(call_records.drop, checkfirst=True)
        await engine.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
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
        return DemoResult(summary, results, elapsed, cpu, problems,
                          backend.counts() if backend is not None else None)
    finally:
        if engine is not None:
            await engine.stop()
        await pbx.stop()
