"""``acd demo``: the engine against the PBX simulator over real sockets.

The simulator listens for AMI on an ephemeral loopback port; the engine
listens for FastAGI on another; calls flow exactly as with a real Asterisk.

A flow whose lookups call the example self-service back end's address
(``http://127.0.0.1:8099``, as ``ivr_flows/hotline.yaml`` does) gets that
back end in-process on a free port, with accounts for most of the demo's
callers (the others are unknown numbers: the flow's ``on_error``); the
engine's lookups to that address go there (:class:`HttpLookup` ``origins``).

The demo runs on the wall clock, and a flow's ``hours`` nodes judge it: the
hotline out of its hours (08:00-22:00 Asia/Shanghai) sends every caller to
its closed branch.  :func:`closed_notice` says so at the start;
``DemoOptions.clock_offset_s`` (``acd demo --at HH:MM`` / ``--open``,
:func:`clock_offset`) runs the whole engine on a clock moved by that much,
so the flow's hours (and ``now.*`` conditions) see that time, and the call
records carry it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
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
from acd.ivr.hours import zone
from acd.ivr.nodes import (
    Flow,
    Hangup,
    HoursNode,
    Lookup,
    Menu,
    Play,
    QueueNode,
    Say,
    Transfer,
    Voicemail,
    successors,
)
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
    #: seconds added to the wall clock for the engine (the flow's hours,
    #: its ``now.*``, the call records): :func:`clock_offset`
    clock_offset_s: float = 0.0


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
    #: where the flow sends the example back end's unknown numbers (its
    #: lookups' ``on_error``) at the demo's start: "to an agent", "to voicemail" ...
    unknown_to: str | None = None


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


def _calls_backend(body: Lookup) -> bool:
    if body.url is None:
        return False
    try:
        return origin(body.url.source) == origin(DEFAULT_ORIGIN)
    except ValueError:
        return False


def calls_self_service(flow: Flow) -> bool:
    """Does ``flow`` look anything up at the example back end's address
    (:data:`~acd.loadsim.selfservice.DEFAULT_ORIGIN`)?"""
    return any(isinstance(n.body, Lookup) and _calls_backend(n.body)
               for n in flow.nodes.values())


# ------------------------------------------------------------ opening hours


def hours_nodes(flow: Flow) -> list[tuple[str, HoursNode]]:
    return [(name, n.body) for name, n in flow.nodes.items() if isinstance(n.body, HoursNode)]


def first_hours(flow: Flow) -> tuple[str, HoursNode] | None:
    """The ``hours`` node every caller meets first: the start node, or the
    first one on the way from it through nodes with a single way out."""
    name, seen = flow.start, set()
    while name in flow.nodes and name not in seen:
        seen.add(name)
        body = flow.nodes[name].body
        if isinstance(body, HoursNode):
            return name, body
        after = successors(body)
        if len(after) != 1:
            return None
        name = after[0]
    return None


def flow_zone(flow: Flow) -> str:
    """The time zone the flow's opening hours are kept in."""
    found = first_hours(flow)
    return found[1].hours.timezone if found is not None else flow.timezone




def follow(flow: Flow, name: str, when: dt.datetime) -> str:
    """Where a caller sent to node ``name`` at ``when`` ends up, said as
    "to an agent", "to voicemail" ... (the flow walked through the nodes
    with one way out, its ``hours`` nodes judged at ``when``)."""
    seen: set[str] = set()
    while name in flow.nodes and name not in seen:
        seen.add(name)
        body = flow.nodes[name].body
        match body:
            case QueueNode():
                return "to an agent"
            case Voicemail():
                return "to voicemail"
            case Transfer():
                return "transferred"
            case Hangup():
                return "hung up"
            case HoursNode():
                name = body.when_open if body.hours.is_open(when) else body.when_closed
                continue
        after = successors(body)
        if len(after) != 1:
            break
        name = after[0]
    return f"to {name}"


def _reaches(flow: Flow, name: str, when: dt.datetime) -> set[type]:
    """The kinds of node reachable from ``name`` at ``when`` (``hours``
    nodes take their branch for ``when`` only)."""
    kinds: set[type] = set()
    todo, seen = [name], set()
    while todo:
        n = todo.pop()
        if n in seen or n not in flow.nodes:
            continue
        seen.add(n)
        body = flow.nodes[n].body
        kinds.add(type(body))
        if isinstance(body, HoursNode):
            todo.append(body.when_open if body.hours.is_open(when) else body.when_closed)
        else:
            todo.extend(successors(body))
    return kinds


def closed_notice(flow: Flow, when: dt.datetime) -> str | None:
    """One line if the flow's first ``hours`` node says closed at ``when``:
    its hours and zone, and what the callers hear then (None: open, or no
    such node)."""
    found = first_hours(flow)
    if found is None or found[1].hours.is_open(when):
        return None
    name, node = found
    tz = node.hours.timezone
    local = when.astimezone(zone(tz))
    target = flow.nodes.get(node.when_closed)
    heard = node.when_closed
    if target is not None and isinstance(target.body, Play | Menu | Say) \
            and target.body.prompt is not None:
        heard += f" ({target.body.prompt})"
    kinds = _reaches(flow, node.when_closed, when)
    offered = [what for kind, what in ((Lookup, "self-service"), (Voicemail, "voicemail"))
               if kind in kinds]
    if QueueNode in kinds:
        then = "then the closed branch"
    else:
        then = f"then {' and '.join(offered) or 'the closed branch'}, no agent"
    return (f"{flow.name}: closed at the demo's start ({local:%a %H:%M} {tz}; hours node "
            f"{name!r}: open {node.hours.describe(when)}): callers hear {heard}, "
            f"{then}. To run as if open add --open (or --at HH:MM, in {tz}).")


_AT = re.compile(r"(?:(\d{4}-\d{2}-\d{2})[ T])?(\d{1,2}):(\d{2})\Z")
#: how far :func:`clock_offset` looks for an open time (``--open``)
OPEN_SEARCH_DAYS = 14


def clock_offset(flow: Flow, now: float, *, at: str | None = None,
                 open_: bool = False) -> float:
    """Seconds to add to the wall clock (``now``) for the demo to run as if
    at ``at`` (``HH:MM`` today, or ``YYYY-MM-DD HH:MM``, in the flow's hours'
    time zone), or with ``open_`` at the next time every ``hours`` node of
    the flow says open for the next hour (0 if they do from now).  ValueError:
    ``at`` is no such time, or the hours never open."""
    if at is not None:
        tz = zone(flow_zone(flow))
        m = _AT.match(at.strip())
        if m is None:
            raise ValueError(f"{at!r} is not a time like 10:00 or 2026-12-01 10:00")
        day_text, hh, mm = m.groups()
        hour, minute = int(hh), int(mm)
        if hour > 23 or minute > 59:
            raise ValueError(f"{at!r} is not a time of day")
        try:
            day = dt.date.fromisoformat(day_text) if day_text else \
                dt.datetime.fromtimestamp(now, tz).date()
        except ValueError:
            raise ValueError(f"{at!r}: {day_text} is not a date") from None
        return dt.datetime.combine(day, dt.time(hour, minute), tz).timestamp() - now
    if not open_:
        return 0.0
    every = [h.hours for _, h in hours_nodes(flow)]

    def is_open(t: float) -> bool:
        return all(h.is_open(dt.datetime.fromtimestamp(t, dt.UTC)) for h in every)

    if is_open(now) and is_open(now + 3600):
        return 0.0
    step = 15 * 60
    first = (int(now) // step + 1) * step
    for i in range(OPEN_SEARCH_DAYS * 24 * 4):
        t = first + i * step
        if is_open(t) and is_open(t + 3600):
            return t - now
    raise ValueError(f"the flow's hours do not open within {OPEN_SEARCH_DAYS} days")


def unknown_numbers_go(flow: Flow, when: dt.datetime) -> str | None:
    """:func:`follow` from the ``on_error`` of the flow's first lookup at
    the example back end (None: it has none)."""
    for node in flow.nodes.values():
        body = node.body
        if isinstance(body, Lookup) and body.on_error is not None and _calls_backend(body):
            return follow(flow, body.on_error, when)
    return None


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
        offset = opts.clock_offset_s

        def clock() -> float:
            return time.time() + offset

        engine = Engine(demo_config(opts, pbx.ami_port), clock, http=http)
        unknown_to = unknown_numbers_go(opts.flow, dt.datetime.fromtimestamp(clock(), dt.UTC))
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
                          backend.counts() if backend is not None else None, unknown_to)
    finally:
        if engine is not None:
            await engine.stop()
        await pbx.stop()
