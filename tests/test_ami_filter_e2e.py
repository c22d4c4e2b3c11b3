"""The engine against a PBX configured with the shipped asterisk_conf/manager.conf
(``read = call,system``, the ``eventfilter`` lines, ``write`` without
``system``) sending Asterisk's whole event volume: calls are still answered,
abandoned and rung out right, and a restarted engine still rebuilds its calls
from ``CoreShowChannels`` and ``DBGet``, whose answers are never filtered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import SECRET, db_url, engine_on_pbx, free_port, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.core.center import agents_for_queues
from acd.core.model import AgentState, CallState, CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, Outcome, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
MANAGER_CONF = ROOT / "asterisk_conf" / "manager.conf"


def shipped_pbx() -> SimConfig:
    """Asterisk's volume, through the shipped manager.conf's user ``acd``."""
    cfg = pbx_for_engine(full_event_volume=True)
    cfg.use_manager_conf(MANAGER_CONF)
    assert cfg.ami_eventfilters and cfg.ami_read == "call,system"
    return cfg


def engine_config(tmp_path: Path, exts: list[str], *, ring_timeout_s: float,
                  agi_port: int = 0) -> EngineConfig:
    policy = simple_policy({q: ring_timeout_s for q in sorted(FLOW.queues)})
    agents = agents_for_queues({f"a{ext}": (ext, tuple(policy.queues)) for ext in exts})
    return EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET), agi_port=agi_port,
        database_url=db_url(tmp_path))


async def until(cond: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``cond`` every 20 ms; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def records(engine: Engine, n: int, timeout: float = 15.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while engine.counters.calls_finished < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await engine.writer.drain()
    return {r["call_id"]: r for r in await engine.db.calls()}


async def test_answered_abandoned_and_rung_out_through_the_filter(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answers=False),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=2.0)}
    cfg = engine_config(tmp_path, list(phones), ring_timeout_s=1)
    async with engine_on_pbx(cfg, pbx=shipped_pbx(), phones=phones) as (pbx, engine):
        first = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=30,
                                                  key_delay_s=0.02))
        phone = pbx.phones.phones["1002"]
        await until(lambda: phone.channel is not None and phone.channel.answered,
                    "agent 1002 answers the first call")
        # both agents out of reach (one talking, one paused): this one gives up
        second = await pbx.place_call(CallerScript(keys=["", "2"], patience_s=0.5,
                                                   key_delay_s=0.02))
        answered = await asyncio.wait_for(first.done, 15)
        abandoned = await asyncio.wait_for(second.done, 15)
        recs = await records(engine, 2)
        rung_out = engine.core.agent("a1001")
        sent, filtered = pbx.ami.sent, pbx.ami.filtered
        errors = engine.counters.errors
    assert answered.outcome is Outcome.TALKED and answered.agent == "1002"
    assert answered.dial_statuses == ["NOANSWER", "ANSWER"]
    assert (recs[answered.uniqueid]["outcome"], recs[answered.uniqueid]["agent_id"],
            recs[answered.uniqueid]["offers"]) == ("answered", "a1002", 2)
    assert abandoned.outcome is Outcome.ABANDONED_HOLD
    assert recs[abandoned.uniqueid]["outcome"] == "abandoned"
    assert rung_out.state is AgentState.PAUSED and "NOANSWER" in rung_out.reason
    assert errors == 0
    # what reached the engine of read's classes: a few events a call (the
    # phones' device states among them), more held back by the filter
    assert filtered > sent
    assert sent <= 20


async def test_a_restarted_engine_rebuilds_its_calls_through_the_filter(
        tmp_path: Path) -> None:
    """Engine A stops while one call rings the only agent and another waits;
    the agent answers while no engine runs.  Engine B finds the first call
    talking in CoreShowChannels and its answer in AstDB (DBGet), takes the
    waiting one back, and both end answered."""
    agi_port = free_port()
    cfg = engine_config(tmp_path, ["1001"], ring_timeout_s=10, agi_port=agi_port)
    pbx_cfg = shipped_pbx()
    pbx_cfg.agi_url = f"agi://127.0.0.1:{agi_port}"
    async with SimPBX(pbx_cfg) as pbx:
        pbx.add_phone("1001", PhoneBehaviour(answer_after_s=1.0, talk_s=1.0))
        cfg = replace(cfg, ami=replace(cfg.ami, port=pbx.ami_port))
        engine = Engine(cfg)
        await engine.start()
        try:
            ringing = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                                        key_delay_s=0.02))
            await until(lambda: (c := engine.core.call(ringing.uniqueid)) is not None
                        and c.state is CallState.OFFERED, "the first call rings 1001")
            waiting = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                                        key_delay_s=0.02))
            await until(lambda: (c := engine.core.call(waiting.uniqueid)) is not None
                        and c.queue is not None, "the second call waits in a queue")
            await engine.writer.drain()
        finally:
            await engine.stop()
        dbgets = pbx.ami.actions["dbget"]
        await until(lambda: pbx.astdb.get("acd/answered", "1001") is not None,
                    "1001 answers while no engine runs")
        engine = Engine(cfg)
        await engine.start()
        try:
            first = await asyncio.wait_for(ringing.done, 20)
            second = await asyncio.wait_for(waiting.done, 20)
            recs = await records(engine, 2)
            errors = engine.counters.errors
        finally:
            await engine.stop()
        actions = pbx.ami.actions
        assert pbx.ami.filtered > 0
    assert (first.outcome, first.agent, first.requeues) == (Outcome.TALKED, "1001", 0)
    assert (second.outcome, second.agent) == (Outcome.TALKED, "1001")
    assert (recs[first.uniqueid]["outcome"], recs[first.uniqueid]["agent_id"]) == (
        "answered", "a1001")
    assert (recs[second.uniqueid]["outcome"], recs[second.uniqueid]["agent_id"]) == (
        "answered", "a1001")
    assert actions["dbget"] > dbgets  # the restart read the answer from AstDB
    assert actions["coreshowchannels"] >= 2 and actions["devicestatelist"] >= 2
    assert errors == 0
