"""Live load simulation: the run of the real engine against the PBX simulator,
over sockets (:func:`run_live`), and its figures from the engine's call records.

Its parts: the plan of callers and the flow (:mod:`acd.loadsim.plan`), the
simulated clock (:mod:`acd.loadsim.sim_clock`), the engine with that clock
(:mod:`acd.loadsim.live_engine`), the callers' side, in this process or a
child (:mod:`acd.loadsim.pbx_side`), and what a run returns
(:mod:`acd.loadsim.live_result`).  :mod:`acd.loadsim.rate` searches the
highest arrival rate the engine sustains.

:func:`run_live` takes the same scenario file as :func:`acd.loadsim.virtual.run_virtual`
and plays it against a real :class:`acd.runtime.engine.Engine` and a
:class:`sim.pbx.SimPBX` talking AMI and FastAGI on loopback, sped up
``speed`` times (``SimConfig.time_scale = 1 / speed``; a 14 h day at speed
600 takes about 85 s of wall time).  By default both run in this process and
one asyncio loop; ``split=True`` runs the simulator (phones and callers) in
a child process (``python -m acd.loadsim.pbx_side --pbx``, driven over its stdin and
stdout), so the engine has a core to itself.  Figures come from the engine's
call records (its SQLite database in a temporary folder), converted to
simulated seconds, and are computed by the same code as the virtual run's (a
:class:`~acd.loadsim.figures.VirtualResult` is built from them), so the two modes
print the same tables.  On top of them: the engine's latency, in real time.

What is the same as in the virtual run
    The calls.  The arrival plan (:func:`acd.loadsim.plan.plan_calls`) draws from the same
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
      scenario's key probabilities (:func:`acd.loadsim.ivr_walk.walk`: the draws of
      :func:`acd.loadsim.ivr_walk.walk_ivr`, one script entry per input prompt the
      engine will play: a barge-in prompt, each prompt of a menu).  Without
      one, a flow is generated: one queue node (one queue), or a menu whose
      key ``1``, ``2`` ... picks the call's queue (several queues, a trace).
    * Caller attributes (VIP level, dialect, segment, a trace's
      attributes) reach the engine through its profile lookup (the
      ``lookup`` hook), as a customers table would supply them, with the
      caller's ``last_agent`` from the run's own record of answered calls
      (as the virtual run hands it over; the engine would read its call
      records).
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
      ``engine.submit(AgentLogin / AgentLogout)`` at their scaled shift
      times (the core's refusal of one already in or out is ignored); an
      agent whose shift ends during a call logs out when the call ends (as
      in the virtual run).  Extensions are renumbered (``20001``
      ...) because the dialplan's ``acd-connect`` only matches digits.
    * Time: the engine's clock runs in simulated time (epoch seconds of the
      scenario's day, so opening hours see the scenario's time of day), and
      its timers (wrap-up, RONA pause, escalation, maximum wait) fire after
      ``delay / speed`` real seconds.  This is done through the engine's
      seams (:func:`acd.loadsim.live_engine.live_engine`): its ``timers``
      on the simulated clock and an ``observer`` of its decisions (which
      watches ConnectCall, agent states and answered calls); everything
      else is the production engine.  As ``acd serve`` does,
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
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gc
import logging
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from acd.adapters.ami import AmiConfig
from acd.core.model import CallState, CoreConfig
from acd.ivr.nodes import Flow
from acd.loadsim.figures import SAMPLE_S, CallOutcome, Occupancy, result_of
from acd.loadsim.live_engine import LiveObserver, live_engine
from acd.loadsim.live_result import LiveResult, percentiles, ring_latencies
from acd.loadsim.model import Scenario, SimError, TraceCall, day_start
from acd.loadsim.pbx_side import SECRET, ChildPbx, PbxSetup, PbxSide
from acd.loadsim.plan import PlannedCall, live_flow, plan_calls
from acd.loadsim.sim_clock import SimClock
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import Outcome

__all__ = ["live_unsupported", "run_live", "run_live_sync"]

#: first extension given to the scenario's agents (acd-connect matches digits only)
FIRST_EXTENSION = 20001


class _QuietHold(logging.Filter):
    """At high speed a MusicOnHold chunk is shorter than the engine's check
    for a class that did not play: it holds with Wait (fine), but warns."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not play; holding with Wait" not in record.getMessage()


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
    unsupported = live_unsupported(sc, trace)
    if unsupported:
        raise SimError(f"live mode does not play {', '.join(unsupported)} (only shifts and a "
                       f"fixed wrap_up_s): run this scenario in virtual mode")
    flow, key_of = live_flow(sc)
    plan = plan_calls(sc, seed, calls, trace=trace, warmup_calls=warmup_calls, key_of=key_of)
    if db_dir is None:
        with tempfile.TemporaryDirectory(prefix="acd-live-") as d:
            return await _run(sc, seed, plan, flow, speed, progress, prompt_s,
                              drain_timeout_s, split, Path(d))
    return await _run(sc, seed, plan, flow, speed, progress, prompt_s, drain_timeout_s,
                      split, Path(db_dir))


def live_unsupported(sc: Scenario, trace: Sequence[TraceCall] | None = None) -> list[str]:
    """What of ``sc`` the live mode cannot play (agents' availability, drawn
    wrap-ups): named, so it is refused rather than left out."""
    out: list[str] = []
    if any(a.activities for a in sc.agents):
        out.append("breaks or roster activities")
    if sc.not_ready:
        out.append("not_ready episodes")
    if sc.shrinkage:
        out.append("shrinkage")
    calls = trace if trace is not None else (sc.trace or ())
    if sc.wraps() or any(c.wrap_s is not None for c in calls):
        out.append("wrap-ups drawn per call (wrap_up, a trace's wrap column)")
    return out


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
        attrs = dict(attrs_of.get(number, {}))
        last = obs.last_agent.get(number)
        if last is not None:
            attrs.setdefault("last_agent", last)
        return attrs

    # agents get numeric extensions: acd-connect's Dial matches digits only
    profiles = []
    for i, spec in enumerate(sc.agents):
        prof = dataclasses.replace(spec.profile, extension=str(FIRST_EXTENSION + i))
        profiles.append(prof)
    obs = LiveObserver(clock, Occupancy({p.agent_id: tuple(p.skills) for p in profiles},
                                     sc.warmup_s, sc.interval_s))
    h = sc.handle
    setup = PbxSetup(tuple(p.extension for p in profiles), speed, prompt_s, sc.ring_delay_s,
                     sc.ring_no_answer, (h.kind, h.mean, h.sd), seed, drain_timeout_s)
    side: PbxSide | ChildPbx = ChildPbx(plan, setup) if split else PbxSide(plan, setup)

    hold_filter = _QuietHold()
    hold_log = logging.getLogger("acd.runtime.hold")
    hold_log.addFilter(hold_filter)
    engine: Engine | None = None
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
        engine = live_engine(cfg, clock, obs, lookup)
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
        while engine.counters.calls_finished < len(plan) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        end_sim = clock.sim()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        await engine.writer.drain()
        rows = await engine.db.calls()
        latencies = list(engine.latencies)
        errors = engine.counters.errors
    finally:
        for th in timers:
            th.cancel()
        if sampler_task is not None:
            sampler_task.cancel()
            await asyncio.gather(sampler_task, return_exceptions=True)
        if engine is not None:
            await engine.stop()
        await side.stop()
        hold_log.removeFilter(hold_filter)
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
    connect_ns, queue_ns = ring_latencies(obs.connects, obs.queued, pbx_result["rings"])

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
