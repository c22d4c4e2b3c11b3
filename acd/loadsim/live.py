"""Live load simulation: the real engine against the PBX simulator, over sockets.

:func:`run_live` takes the same scenario file as :func:`acd.loadsim.virtual.run_virtual`
and plays it against a real :class:`acd.runtime.engine.Engine` and a
:class:`sim.pbx.SimPBX` talking AMI and FastAGI on loopback, sped up
``speed`` times (``SimConfig.time_scale = 1 / speed``; a 14 h day at speed
600 takes about 85 s of wall time).  By default both run in this process and
one asyncio loop; ``split=True`` runs the simulator (phones and callers) in
a child process (``python -m acd.loadsim.live --pbx``, driven over its stdin and
stdout), so the engine has a core to itself.  Figures come from the engine's
call records (its SQLite database in a temporary folder), converted to
simulated seconds, and are computed by the same code as the virtual run's (a
:class:`~acd.loadsim.virtual.VirtualResult` is built from them), so the two modes
print the same tables.  On top of them: the engine's latency, in real time.

What is the same as in the virtual run
    The calls.  The arrival plan (:func:`plan_calls`) draws from the same
    seeded random streams in the same order as ``run_virtual``: same seed,
    same arrival times, numbers, caller attributes, IVR keys, handle times
    and patience (a trace is replayed as it is).  The routing policy
    (the scenario's routing file, or FIFO queues), agents and their
    profiles, wrap-up and the ring-no-answer pause go to the engine's core
    unchanged.

How the scenario becomes a live run
    * Arrivals: each planned call is placed (``SimPBX.place_call``) at its
      scaled time; a call placed late (a busy loop) is placed at once and
      the lag is reported (``arrival_lag``).
    * IVR: with an ``ivr:`` the engine runs that flow over FastAGI; the
      caller's key script is derived by walking the flow with the
      scenario's key probabilities (:func:`acd.loadsim.scenario.walk`: the draws of
      :func:`acd.loadsim.scenario.walk_ivr`, one script entry per input prompt the
      engine will play: a barge-in prompt, each prompt of a menu).  Without
      one, a flow is generated: one queue node (one queue), or a menu whose
      key ``1``, ``2`` ... picks the call's queue (several queues, a trace).
    * Caller attributes (VIP level, dialect, segment, a trace's
      attributes) reach the engine through its profile lookup (the
      ``lookup`` hook), as a customers table would supply them; no
      ``last_agent`` is looked up (as in the virtual run).
    * Patience: ``CallerScript.patience_s``, counted by the simulator from
      the first music on hold (virtual: from the queue entry; the two
      differ by the engine's own delay between them).
    * Handle time: each agent phone's ``PhoneBehaviour.talk_s`` is a
      callable that looks up the planned handle time of the call it is
      bridged to; talk starts when the agent answers, as in the virtual run.
    * Ring-no-answer: each phone answers each ring with probability
      ``1 - ring_no_answer`` (a :class:`PhoneBehaviour` whose ``answers`` is
      drawn per ring), after ``ring_delay_s``; an unanswered ring ends at the
      queue's ring timeout (the simulator's Dial timeout).
    * Agents and shifts: agents log in and out through
      ``engine.handle(AgentLogin / AgentLogout)`` at their scaled shift
      times; an agent whose shift ends during a call logs out when the call
      ends (as in the virtual run).  Extensions are renumbered (``20001``
      ...) because the dialplan's ``acd-connect`` only matches digits.
    * Time: the engine's clock runs in simulated time (epoch seconds of the
      scenario's day, so opening hours see the scenario's time of day), and
      its timers (wrap-up, RONA pause, escalation, maximum wait) fire after
      ``delay / speed`` real seconds.  This is done by a subclass of the
      engine (:class:`LiveEngine`) that overrides ``Engine._do`` for
      ``StartTimer`` only (and watches ConnectCall and agent states);
      everything else is the production engine.  As ``acd serve`` does,
      the garbage collector's long-lived objects are frozen after start.

What is approximated (and so differs from the virtual run)
    * Every real delay is multiplied by ``speed`` in simulated seconds: the
      engine's connect path (AMI Setvar, Setvar, Redirect, the caller's AGI
      ending, then the dialplan's Dial) takes 2-3 ms, i.e. 1-2 s of
      simulated wait at speed 600; event-loop lag under load adds to waits
      the same way.  Lower ``speed`` for waits closer to the virtual run's.
    * The IVR takes time (prompts: ``prompt_s`` simulated seconds each; key
      delays); the virtual run walks it instantly.  Calls count in the
      interval of their arrival (the record's ``started_at``), waits from
      the queue entry (the record's ``wait_s``).
    * ``waited`` (P(wait > 0)) is "not offered in the same core decision as
      the queue entry".
    * The engine holds callers on ``MusicOnHold`` chunks; at high speed a
      chunk is shorter than the engine's "MusicOnHold did not play" check
      and it holds them with ``Wait`` instead (its warning is filtered out).
    * Calls still running ``drain_timeout_s`` after the last arrival (no
      agent left, callers who never hang up) are hung up and reported
      ``unfinished``.
    * Unless ``split``, engine and simulator share one process and one
      core: rates and latencies then include the simulator's own work
      (about as much CPU per call as the engine's).

Latency (real time, not scaled)
    ``decisions``: every ``ContactCenter.handle`` call the engine made
    (``engine.latencies``), in µs.  ``connect``: from the core's
    ``ConnectCall`` to the agent's phone starting to ring in the simulator
    (the AMI actions, the redirect, the caller's AGI ending, the Dial), in
    ms; each ring is matched to its call's latest ConnectCall (monotonic
    clock, comparable across the two processes).  ``queue_to_ring``: for
    calls offered as they entered the queue, from the engine feeding
    ``CallQueued`` to the phone ringing, in ms.

:func:`max_sustained_rate` steps the arrival rate up (calls per wall
second) on a stationary scenario (:func:`rate_scenario`) and reports the
highest rate at which every call was recorded, the p99 routing latency
stayed within a bound and the engine kept up; ``benchmarks/live_rate.py``
prints it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import datetime as dt
import gc
import json
import logging
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.adapters.ami import AmiConfig
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallState,
    ConnectCall,
    CoreConfig,
    Event,
    StartTimer,
)
from acd.ivr.flow import Flow, parse_flow
from acd.loadsim.draws import draw_calls
from acd.loadsim.scenario import Dist, Scenario, TraceCall, day_start
from acd.loadsim.virtual import (
    SAMPLE_S,
    CallOutcome,
    Occupancy,
    SimError,
    VirtualResult,
    result_of,
)
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, Outcome, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX
from sim.phones import Phone

__all__ = [
    "LiveEngine",
    "LiveResult",
    "PbxSetup",
    "PbxSide",
    "PlannedCall",
    "RateStep",
    "live_flow",
    "max_sustained_rate",
    "plan_calls",
    "run_live",
    "run_live_sync",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]

SECRET = "live-secret"
#: simulated seconds between an input prompt's start and the caller's key
KEY_DELAY_S = 0.3
#: first extension given to the scenario's agents (acd-connect matches digits only)
FIRST_EXTENSION = 20001
#: keys of the generated menu (several queues, no IVR in the scenario)
MENU_KEYS = "1234567890*#"


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One caller of the live run, drawn before the run starts."""

    index: int  # 1-based arrival number
    arrival_s: float  # simulated seconds from the start
    number: str
    attributes: tuple[tuple[str, str], ...]
    queue: str | None  # the queue the IVR (or the share draw, or the trace) picks; None: IVR end
    keys: tuple[str, ...]  # CallerScript.keys: one entry per input prompt
    handle_s: float
    patience_s: float | None  # None: never hangs up
    counted: bool  # after the warm-up


def live_flow(sc: Scenario) -> tuple[Flow, dict[str, str]]:
    """The flow the engine runs, and the key that picks each queue (generated
    menu only; empty otherwise)."""
    if sc.ivr is not None:
        return sc.ivr.flow, {}
    names = list(sc.queues) if sc.trace is None else sorted(
        set(sc.queues) | {c.queue for c in sc.trace})
    if not names:
        raise SimError("the scenario has no queue to send calls to")
    if len(names) > len(MENU_KEYS):
        raise SimError(f"live mode without an IVR handles at most {len(MENU_KEYS)} queues "
                       f"(the generated menu has one key per queue); got {len(names)}")
    lines = [f"flow: sim-{sc.name}", 'version: "1"']
    if len(names) == 1:
        lines += ["start: q0", "nodes:",
                  f"  q0: {{type: queue, queue: {_yaml_str(names[0])}, announce_every: 0}}"]
        key_of: dict[str, str] = {}
    else:
        key_of = {q: MENU_KEYS[i] for i, q in enumerate(names)}
        options = ", ".join(f'"{key_of[q]}": q{i}' for i, q in enumerate(names))
        lines += ["start: pick", "nodes:",
                  "  pick: {type: menu, prompt: acd/main-menu, timeout: 30, retries: 2, "
                  f"on_fail: q0, options: {{{options}}}}}"]
        lines += [f"  q{i}: {{type: queue, queue: {_yaml_str(q)}, announce_every: 0}}"
                  for i, q in enumerate(names)]
    return parse_flow("\n".join(lines) + "\n", f"<generated flow for {sc.file}>"), key_of


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_calls(sc: Scenario, seed: int = 0, calls: int | None = None, *,
               trace: Sequence[TraceCall] | None = None, warmup_calls: int = 0,
               key_of: dict[str, str] | None = None) -> list[PlannedCall]:
    """Every caller of the run, in order of arrival: the same draws as
    :func:`acd.loadsim.virtual.run_virtual` (:func:`acd.loadsim.draws.draw_calls`).  ``key_of``:
    queue -> menu key of the generated flow (scenarios without an IVR)."""
    key_of = key_of or {}
    trace = trace if trace is not None else sc.trace
    max_calls = calls if calls is not None else sc.calls
    if max_calls is None and trace is None and sc.day_end_s is None:
        raise SimError("the scenario has a constant rate and no end: give calls or hours")
    out: list[PlannedCall] = []
    for d in draw_calls(sc, seed, max_calls, trace):
        script = d.script if sc.ivr is not None and trace is None else (
            (key_of[d.queue],) if d.queue is not None and d.queue in key_of else ())
        counted = d.index > warmup_calls and d.arrival_s >= sc.warmup_s
        out.append(PlannedCall(d.index, d.arrival_s, d.number, d.attributes, d.queue, script,
                               d.handle_s, d.patience_s, counted))
    return out


# ------------------------------------------------------------------ engine side


class SimClock:
    """The engine's clock: epoch seconds of the simulated day, running
    ``speed`` times faster than the event loop's clock."""

    __slots__ = ("epoch0", "loop", "real0", "speed")

    def __init__(self, epoch0: float, speed: float, loop: asyncio.AbstractEventLoop) -> None:
        self.epoch0 = epoch0
        self.speed = speed
        self.loop = loop
        self.real0 = loop.time()

    def __call__(self) -> float:
        return self.epoch0 + (self.loop.time() - self.real0) * self.speed

    def sim(self) -> float:
        """Simulated seconds since the start."""
        return (self.loop.time() - self.real0) * self.speed

    def real_at(self, sim_s: float) -> float:
        """The event loop's time at simulated second ``sim_s``."""
        return self.real0 + sim_s / self.speed


class _Observer:
    """The engine side's watch: offers, agent states (occupancy); shifts."""

    def __init__(self, clock: SimClock, occupancy: Occupancy) -> None:
        self.clock = clock
        self.occupancy = occupancy
        #: call id -> monotonic ns of each ConnectCall
        self.connects: dict[str, list[int]] = {}
        #: call id -> monotonic ns of CallQueued, for calls offered in that decision
        self.queued: dict[str, int] = {}
        self.engine: LiveEngine | None = None

    def on_agent(self, act: AgentStateChanged) -> None:
        self.occupancy.change(act.agent_id, act.new, act.at - self.clock.epoch0)

    # --- shifts
    def login(self, aid: str) -> None:
        eng = self.engine
        assert eng is not None
        agent = eng.core.agent(aid)
        # logged out; or asked out at the end of its call (back-to-back shifts: stays)
        if agent.state is AgentState.LOGGED_OUT or agent.logout_after_call:
            eng.handle(AgentLogin(aid, ready=True))

    def logout(self, aid: str) -> None:
        eng = self.engine
        assert eng is not None
        if eng.core.agent(aid).state is not AgentState.LOGGED_OUT:
            eng.handle(AgentLogout(aid))  # on a call: the core logs it out when it ends


class LiveEngine(Engine):
    """The production engine with a simulated clock: timers fire after
    ``delay / speed`` real seconds; offers and agent states are observed."""

    def __init__(self, config: EngineConfig, clock: SimClock, observer: _Observer,
                 lookup: Callable[[str], Any]) -> None:
        super().__init__(config, clock=clock, lookup=lookup)
        self._speed = clock.speed
        self._obs = observer

    def handle(self, event: Event) -> None:
        if type(event) is CallQueued:
            t0 = time.monotonic_ns()
            super().handle(event)
            call = self.core.call(event.call_id)
            if call is not None and (call.offers > 0 or call.state is not CallState.WAITING):
                self._obs.queued[event.call_id] = t0
            return
        super().handle(event)

    def _do(self, action: Action) -> None:
        tp = type(action)
        if tp is StartTimer:
            assert isinstance(action, StartTimer)
            self._cancel_timer(action.key)
            delay = max(0.0, action.at - self.clock()) / self._speed
            self._timers[action.key] = asyncio.get_running_loop().call_later(
                delay, self._fire, action.key)
            return
        if tp is ConnectCall:
            assert isinstance(action, ConnectCall)
            self._obs.connects.setdefault(action.call_id, []).append(time.monotonic_ns())
        elif tp is AgentStateChanged:
            assert isinstance(action, AgentStateChanged)
            self._obs.on_agent(action)
        super()._do(action)


class _QuietHold(logging.Filter):
    """At high speed a MusicOnHold chunk is shorter than the engine's check
    for a class that did not play: it holds with Wait (fine), but warns."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not play; holding with Wait" not in record.getMessage()


# ------------------------------------------------------------------ PBX side


class _ScenarioPhone(PhoneBehaviour):
    """An agent's phone: answers each ring with probability ``1 - rona``,
    talks for the planned handle time of the call it is bridged to, and
    notes when it starts ringing (monotonic ns, per caller channel)."""

    def __init__(self, answer_after_s: float, rona: float, rng: random.Random,
                 rings: list[tuple[str, int]], handle_of: dict[str, float],
                 fallback: Callable[[], float]) -> None:
        self._rona = rona
        self._u = rng.random
        self._rings = rings
        self._handle_of = handle_of
        self._fallback = fallback
        self.phone: Phone | None = None
        super().__init__(answer_after_s=answer_after_s, talk_s=self._talk)

    def _caller_uid(self) -> str | None:
        leg = self.phone.channel if self.phone is not None else None
        owner = leg.owner if leg is not None else None
        return owner.uniqueid if owner is not None else None

    @property
    def answers(self) -> bool:
        """Read by the simulator once per ring: the moment the phone rings."""
        uid = self._caller_uid()
        if uid is not None:
            self._rings.append((uid, time.monotonic_ns()))
        return not (self._rona > 0 and self._u() < self._rona)

    @answers.setter
    def answers(self, value: bool) -> None:
        pass  # drawn per ring

    def _talk(self) -> float:
        uid = self._caller_uid()
        handle = self._handle_of.get(uid) if uid is not None else None
        return handle if handle is not None else self._fallback()


@dataclass(frozen=True, slots=True)
class PbxSetup:
    """What the PBX side needs (JSON-able, for a child process)."""

    extensions: tuple[str, ...]
    speed: float
    prompt_s: float
    ring_delay_s: float
    ring_no_answer: float
    fallback_handle: tuple[str, float, float]  # Dist(kind, mean, sd)
    seed: int
    drain_timeout_s: float


class PbxSide:
    """The callers' side of a live run: the PBX simulator, the agents' phones
    and the planned callers.  Runs in the engine's process or in a child
    (``python -m acd.loadsim.live --pbx``)."""

    def __init__(self, plan: Sequence[PlannedCall], setup: PbxSetup) -> None:
        self.plan = plan
        self.setup = setup
        self.pbx = SimPBX(SimConfig(users={"acd": SECRET}, time_scale=1.0 / setup.speed,
                                    prompt_s=setup.prompt_s, ami_read="call,system"))
        self.rings: list[tuple[str, int]] = []
        self.handle_of: dict[str, float] = {}
        kind, mean, sd = setup.fallback_handle
        fallback = Dist(kind, mean, sd).sampler(random.Random(f"{setup.seed}:live-handle"))
        rng_rona = random.Random(f"{setup.seed}:rona")
        for ext in setup.extensions:
            beh = _ScenarioPhone(setup.ring_delay_s, setup.ring_no_answer, rng_rona, self.rings,
                                 self.handle_of, fallback)
            beh.phone = self.pbx.add_phone(ext, beh)
        self.handles: list[Any] = []
        self.index_of: dict[str, int] = {}  # caller uniqueid -> plan index
        self.lags: list[float] = []
        self.unfinished: list[str] = []
        self.problems: list[str] = []
        self.first_wall = self.last_wall = 0.0
        self.cpu0 = time.process_time()

    async def start(self) -> int:
        """Start the simulator; its AMI port."""
        await self.pbx.start()
        return self.pbx.ami_port

    def connect(self, agi_port: int) -> None:
        self.pbx.cfg.agi_url = f"agi://127.0.0.1:{agi_port}"

    async def play(self, real0: float,
                   progress: Callable[[int, int, float], None] | None = None) -> None:
        """Place every planned call at its time (``real0``: the loop's time of t = 0)."""
        loop = asyncio.get_running_loop()
        speed = self.setup.speed
        total = len(self.plan)
        self.cpu0 = time.process_time()
        for n, pc in enumerate(self.plan, 1):
            target = real0 + pc.arrival_s / speed
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self.lags.append(max(0.0, now - target))
            h = await self.pbx.place_call(CallerScript(
                number=pc.number, keys=list(pc.keys), patience_s=pc.patience_s,
                key_delay_s=KEY_DELAY_S))
            self.handle_of[h.uniqueid] = pc.handle_s
            self.index_of[h.uniqueid] = pc.index
            self.handles.append(h)
            if n == 1:
                self.first_wall = now
            self.last_wall = now
            if progress is not None and (n % 25 == 0 or n == total):
                progress(n, total, (now - real0) * speed)

    async def drain(self) -> None:
        """Wait for the calls to end; hang up those still running after the
        drain timeout (they are *unfinished*)."""
        pending = {h.done for h in self.handles if not h.done.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.setup.drain_timeout_s)
        if pending:
            for h in self.handles:
                if not h.done.done():
                    self.unfinished.append(h.uniqueid)
                    h.hangup()
            _, still = await asyncio.wait(pending, timeout=10.0)
            if still:
                self.problems.append(f"{len(still)} calls did not end after being hung up")

    def result(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for h in self.handles:
            if h.done.done():
                name = h.done.result().outcome.value
                outcomes[name] = outcomes.get(name, 0) + 1
        span = self.last_wall - self.first_wall
        return {
            "index_of": self.index_of, "rings": self.rings, "lags": self.lags,
            "unfinished": self.unfinished, "problems": self.problems,
            "outcomes": dict(sorted(outcomes.items())),
            "offered_rate": (len(self.handles) - 1) / span if span > 0 else 0.0,
            "cpu_s": time.process_time() - self.cpu0,
        }

    async def stop(self) -> None:
        await self.pbx.stop()


def _plan_json(plan: Sequence[PlannedCall]) -> list[list[Any]]:
    return [[pc.index, pc.arrival_s, pc.number, [list(a) for a in pc.attributes], pc.queue,
             list(pc.keys), pc.handle_s, pc.patience_s, pc.counted] for pc in plan]


def _plan_from_json(rows: list[list[Any]]) -> list[PlannedCall]:
    return [PlannedCall(int(r[0]), float(r[1]), str(r[2]), tuple((str(k), str(v))
                                                                 for k, v in r[3]),
                        r[4], tuple(r[5]), float(r[6]), r[7], bool(r[8])) for r in rows]


class _ChildPbx:
    """The engine's handle on a PBX side in a child process (line-delimited JSON
    over its stdin and stdout)."""

    def __init__(self, plan: Sequence[PlannedCall], setup: PbxSetup) -> None:
        self.plan = plan
        self.setup = setup
        self.proc: asyncio.subprocess.Process | None = None

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise SimError("the PBX simulator process ended early (see its stderr)")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise SimError(f"the PBX simulator process failed: {msg['error']}")
        return msg

    def _write(self, msg: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "acd.loadsim.live", "--pbx", cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 28)
        self._write({"setup": dataclasses.asdict(self.setup), "plan": _plan_json(self.plan)})
        return int((await self._read())["ami_port"])

    def connect(self, agi_port: int) -> None:
        self._agi_port = agi_port

    async def play(self, real0: float,
                   progress: Callable[[int, int, float], None] | None = None) -> None:
        self._write({"agi_port": self._agi_port, "real0": real0})
        while True:
            msg = await self._read()
            if "placed" in msg:
                if progress is not None:
                    progress(int(msg["placed"]), len(self.plan), float(msg["t"]))
            elif msg.get("played"):
                return

    async def drain(self) -> None:
        self._write({"drain": True})
        self._result = (await self._read())["result"]

    def result(self) -> dict[str, Any]:
        return dict(self._result)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError, RuntimeError):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _pbx_child() -> None:
    """``python -m acd.loadsim.live --pbx``: the PBX side, driven over stdin/stdout."""
    loop = asyncio.get_running_loop()

    async def read() -> dict[str, Any]:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            raise SystemExit(0)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def send(msg: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    side: PbxSide | None = None
    try:
        first = await read()
        s = first["setup"]
        setup = PbxSetup(tuple(s["extensions"]), s["speed"], s["prompt_s"],
                         s["ring_delay_s"], s["ring_no_answer"], tuple(s["fallback_handle"]),
                         s["seed"], s["drain_timeout_s"])
        side = PbxSide(_plan_from_json(first["plan"]), setup)
        send({"ami_port": await side.start()})
        go = await read()
        side.connect(int(go["agi_port"]))
        await side.play(float(go["real0"]),
                        lambda n, total, t: send({"placed": n, "t": t}))
        send({"played": True})
        await read()  # drain
        await side.drain()
        send({"result": side.result()})
        await read()  # EOF: stop
    except SystemExit:
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the engine's side
        send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if side is not None:
            await side.stop()


# ------------------------------------------------------------------ results


def percentiles(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """count, p50, p99 and max of ``values`` (multiplied by ``scale``)."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    s = sorted(values)
    n = len(s)

    def at(q: float) -> float:
        return round(s[min(n - 1, int(q * n))] * scale, 3)

    return {"count": n, "p50": at(0.50), "p99": at(0.99), "max": round(s[-1] * scale, 3)}


def _ring_latencies(connects: dict[str, list[int]], queued: dict[str, int],
                    rings: Sequence[Sequence[Any]]) -> tuple[list[int], list[int]]:
    """(ConnectCall -> ring for each ring, CallQueued -> first ring for calls
    offered at once), ns.  A ring belongs to its call's latest ConnectCall
    before it."""
    connect_ns: list[int] = []
    queue_ns: list[int] = []
    seen: set[str] = set()
    for uid, t in sorted(rings, key=lambda r: r[1]):
        cs = connects.get(uid)
        if cs:
            i = bisect.bisect_right(cs, t)
            if i:
                connect_ns.append(t - cs[i - 1])
        if uid not in seen:
            seen.add(uid)
            q = queued.get(uid)
            if q is not None:
                queue_ns.append(t - q)
    return connect_ns, queue_ns


@dataclass(slots=True)
class LiveResult:
    """What :func:`run_live` returns: the figures (computed like the virtual
    run's) and the live run's own facts."""

    figures: VirtualResult
    speed: float
    #: True: the PBX simulator ran in a child process (cpu_s is the engine's alone)
    split: bool
    wall_s: float
    cpu_s: float
    sim_cpu_s: float | None
    placed: int
    records: int
    unfinished: int
    #: core decisions (µs): count, p50, p99, max
    decisions: dict[str, float | int | None]
    #: ConnectCall -> the agent's phone rings (ms)
    connect: dict[str, float | int | None]
    #: CallQueued -> the agent's phone rings, calls offered at once (ms)
    queue_to_ring: dict[str, float | int | None]
    #: how late calls were placed against their scaled arrival time (ms)
    arrival_lag: dict[str, float | int | None]
    #: calls placed per second of wall time (first to last arrival)
    offered_rate: float
    engine_errors: int
    #: what the simulator's callers saw (its own outcome names)
    sim_outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary_rows(self) -> list[dict[str, Any]]:
        return self.figures.summary_rows()

    def interval_rows(self, scope: str = "total", key: str = "") -> list[dict[str, Any]]:
        return self.figures.interval_rows(scope, key)

    def totals(self, scope: str = "total", key: str = "") -> Any:
        return self.figures.totals(scope, key)

    def live_facts(self) -> dict[str, Any]:
        return {
            "speed": self.speed, "split": self.split, "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "sim_cpu_s": None if self.sim_cpu_s is None else round(self.sim_cpu_s, 3),
            "placed": self.placed, "records": self.records, "unfinished": self.unfinished,
            "ivr_only": self.figures.ivr_only(),
            "offered_rate_per_wall_s": round(self.offered_rate, 2),
            "decisions_us": self.decisions, "connect_ms": self.connect,
            "queue_to_ring_ms": self.queue_to_ring, "arrival_lag_ms": self.arrival_lag,
            "engine_errors": self.engine_errors, "sim_outcomes": self.sim_outcomes,
            "problems": self.problems,
        }

    def to_json(self, calls: bool = False, indent: int | None = None) -> str:
        doc = json.loads(self.figures.to_json(calls=calls))
        doc["mode"] = "live"
        doc["live"] = self.live_facts()
        return json.dumps(doc, indent=indent, ensure_ascii=False)


def _ts(value: Any) -> float:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return float(value)


_OUTCOMES = {"answered", "abandoned", "fallback", "ivr"}


# ------------------------------------------------------------------ the run


async def run_live(sc: Scenario, seed: int = 0, calls: int | None = None, *,
                   speed: float = 600.0, trace: Sequence[TraceCall] | None = None,
                   warmup_calls: int = 0,
                   progress: Callable[[int, int, float], None] | None = None,
                   prompt_s: float = 1.0, drain_timeout_s: float = 60.0, split: bool = False,
                   db_dir: str | Path | None = None) -> LiveResult:
    """Play ``sc`` against the real engine and the PBX simulator (see the
    module docstring).  ``progress(placed, planned, simulated time)`` is
    called as calls are placed.  ``drain_timeout_s``: real seconds to wait,
    after the last arrival, for the calls still running.  ``split``: run the
    PBX simulator in a child process (the engine gets this process's core
    to itself)."""
    if not speed > 0:
        raise SimError(f"speed must be > 0, got {speed!r}")
    flow, key_of = live_flow(sc)
    plan = plan_calls(sc, seed, calls, trace=trace, warmup_calls=warmup_calls, key_of=key_of)
    if db_dir is None:
        with tempfile.TemporaryDirectory(prefix="acd-live-") as d:
            return await _run(sc, seed, plan, flow, speed, progress, prompt_s,
                              drain_timeout_s, split, Path(d))
    return await _run(sc, seed, plan, flow, speed, progress, prompt_s, drain_timeout_s,
                      split, Path(db_dir))


def run_live_sync(sc: Scenario, seed: int = 0, calls: int | None = None,
                  **kwargs: Any) -> LiveResult:
    """:func:`run_live` in a fresh event loop."""
    return asyncio.run(run_live(sc, seed, calls, **kwargs))


async def _run(sc: Scenario, seed: int, plan: list[PlannedCall], flow: Flow, speed: float,
               progress: Callable[[int, int, float], None] | None, prompt_s: float,
               drain_timeout_s: float, split: bool, db_dir: Path) -> LiveResult:
    loop = asyncio.get_running_loop()
    tz = getattr(flow, "timezone", None) if sc.ivr is not None else None
    clock = SimClock(day_start(sc.day, tz).timestamp() + sc.start_s, speed, loop)
    attrs_of = {pc.number: dict(pc.attributes) for pc in plan}

    async def lookup(number: str) -> dict[str, str]:
        return dict(attrs_of.get(number, {}))

    # agents get numeric extensions: acd-connect's Dial matches digits only
    profiles = []
    for i, spec in enumerate(sc.agents):
        prof = dataclasses.replace(spec.profile, extension=str(FIRST_EXTENSION + i))
        profiles.append(prof)
    obs = _Observer(clock, Occupancy({p.agent_id: tuple(p.skills) for p in profiles},
                                     sc.warmup_s, sc.interval_s))
    h = sc.handle
    setup = PbxSetup(tuple(p.extension for p in profiles), speed, prompt_s, sc.ring_delay_s,
                     sc.ring_no_answer, (h.kind, h.mean, h.sd), seed, drain_timeout_s)
    side: PbxSide | _ChildPbx = _ChildPbx(plan, setup) if split else PbxSide(plan, setup)

    hold_filter = _QuietHold()
    engine_log = logging.getLogger("acd.runtime.engine")
    engine_log.addFilter(hold_filter)
    engine: LiveEngine | None = None
    sampler_task: asyncio.Task[None] | None = None
    timers: list[asyncio.TimerHandle] = []
    frozen = False
    try:
        ami_port = await side.start()
        cfg = EngineConfig(
            core=CoreConfig(policy=sc.policy, agents=tuple(profiles), wrap_up_s=sc.wrap_up_s,
                            rona_pause_s=sc.rona_pause_s),
            flow=flow,
            ami=AmiConfig(port=ami_port, username="acd", secret=SECRET),
            agi_port=0, database_url=f"sqlite+aiosqlite:///{db_dir / 'live.db'}",
            login_agents=False,
        )
        engine = LiveEngine(cfg, clock, obs, lookup)
        obs.engine = engine
        await engine.start()
        side.connect(engine.agi.port)
        engine.latencies = []
        # as `acd serve` does: long-lived state out of every later GC scan
        gc.collect()
        gc.freeze()
        frozen = True

        # ---- t = 0 (a moment ahead, for a child process to get the word)
        clock.real0 = loop.time() + (0.2 if split else 0.0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for spec in sc.agents:
            aid = spec.profile.agent_id
            for a, b in spec.shifts or ((0.0, math.inf),):
                if b <= 0:
                    continue
                timers.append(loop.call_at(clock.real_at(max(a, 0.0)), obs.login, aid))
                if b < math.inf:
                    timers.append(loop.call_at(clock.real_at(b), obs.logout, aid))

        # ---- waiting calls per queue, every SAMPLE_S simulated seconds
        queue_names = tuple(sc.policy.queues)
        qindex = {q: i for i, q in enumerate(queue_names)}
        samples: list[tuple[int, ...]] = []

        async def sample() -> None:
            k = 0
            while True:
                delay = clock.real_at(k * SAMPLE_S) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                counts = [0] * len(queue_names)
                assert engine is not None
                for call in engine.core.calls():
                    if call.state is CallState.WAITING or call.state is CallState.OFFERED:
                        qi = qindex.get(call.queue or "")
                        if qi is not None:
                            counts[qi] += 1
                samples.append(tuple(counts))
                k += 1

        sampler_task = loop.create_task(sample(), name="live-sampler")
        await side.play(clock.real0, progress)
        await side.drain()
        pbx_result = side.result()
        deadline = loop.time() + 10.0
        while engine.stats.calls_finished < len(plan) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        end_sim = clock.sim()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        await engine.writer.drain()
        rows = await engine.db.calls()
        latencies = list(engine.latencies)
        errors = engine.stats.errors
    finally:
        for th in timers:
            th.cancel()
        if sampler_task is not None:
            sampler_task.cancel()
            await asyncio.gather(sampler_task, return_exceptions=True)
        if engine is not None:
            await engine.stop()
        await side.stop()
        engine_log.removeFilter(hold_filter)
        if frozen:
            gc.unfreeze()

    # ---- figures
    index_of: dict[str, int] = pbx_result["index_of"]
    by_index = {pc.index: pc for pc in plan}
    unfinished = set(pbx_result["unfinished"])
    problems: list[str] = list(pbx_result["problems"])
    epoch0 = clock.epoch0
    immediate = set(obs.queued)
    outcomes: list[CallOutcome] = []
    seen: set[str] = set()
    end_s = 0.0
    for r in rows:
        cid = str(r["call_id"])
        idx = index_of.get(cid)
        if idx is None:
            problems.append(f"a call record for an unknown call {cid}")
            continue
        pc = by_index[idx]
        seen.add(cid)
        started = _ts(r["started_at"]) - epoch0
        ended = _ts(r["ended_at"]) - epoch0
        end_s = max(end_s, ended)
        outcome = str(r["outcome"])
        if outcome not in _OUTCOMES:
            outcome = "fallback"
        if cid in unfinished and outcome == "abandoned":
            outcome = "unfinished"
        talk = r.get("talk_s")
        answered_at = ended - float(talk) if outcome == "answered" and talk is not None \
            else None
        queue = r.get("queue")
        outcomes.append(CallOutcome(
            cid, str(r["caller"]), queue, r.get("first_queue") or queue,
            str(r.get("customer_class") or ""), started, r.get("wait_s"), outcome,
            r.get("agent_id"), int(r.get("offers") or 0), cid not in immediate,
            pc.counted, answered_at, ended, int(r.get("priority") or 0)))
    missing = sum(1 for cid in index_of if cid not in seen)
    if missing:
        problems.append(f"{missing} of {len(index_of)} calls have no call record")
    if errors:
        problems.append(f"the engine counted {errors} errors (refused events, failed tasks)")
    sim_outcomes: dict[str, int] = pbx_result["outcomes"]
    talked = sim_outcomes.get(Outcome.TALKED.value, 0)
    answered = sum(1 for c in outcomes if c.outcome == "answered")
    if talked != answered:
        problems.append(f"the simulator's callers talked to an agent {talked} times, the "
                        f"engine recorded {answered} answered calls")
    connect_ns, queue_ns = _ring_latencies(obs.connects, obs.queued, pbx_result["rings"])

    horizon = sc.day_end_s
    end_s = max(end_s, end_sim if horizon is None else min(end_sim, max(horizon, end_s)))
    obs.occupancy.close(end_s)
    last_arrival = plan[-1].arrival_s if plan else 0.0
    figures = result_of(sc, seed, outcomes, samples, obs.occupancy.agent_time, end_s, wall,
                        len(latencies), len(index_of), last_arrival)
    return LiveResult(
        figures=figures, speed=speed, split=split, wall_s=wall, cpu_s=cpu,
        sim_cpu_s=float(pbx_result["cpu_s"]) if split else None, placed=len(index_of),
        records=len(rows), unfinished=len(unfinished),
        decisions=percentiles(latencies, 1e-3),
        connect=percentiles(connect_ns, 1e-6), queue_to_ring=percentiles(queue_ns, 1e-6),
        arrival_lag=percentiles(pbx_result["lags"], 1e3),
        offered_rate=float(pbx_result["offered_rate"]), engine_errors=errors,
        sim_outcomes=dict(sorted(sim_outcomes.items())), problems=problems,
    )


# ------------------------------------------------------------------ rate steps

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
    from acd.loadsim.scenario import parse_scenario

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


if __name__ == "__main__":
    if sys.argv[1:] == ["--pbx"]:
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        asyncio.run(_pbx_child())
    else:
        sys.exit("usage: python -m acd.loadsim.live --pbx  (the PBX side of a split live run; "
                 "started by acd.loadsim.live.run_live)")
