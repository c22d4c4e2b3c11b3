"""Precise matching through the whole engine: the caller's profile comes
from the customers table, the policy routes the VIP to the VIP queue, he
waits (hearing his position) until the Minnan-speaking VIP agent is free."""

from __future__ import annotations

import asyncio
from pathlib import Path

from acd.adapters.ami import AmiConfig
from acd.core.model import AgentPause, AgentReady, CoreConfig
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.ivr.flow import load_flow
from acd.loaders.routing import parse_policy
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, Outcome, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent

POLICY = """
classes: {vip: {sl_target: 0.9, sl_seconds: 10}, standard: {}}
class_rules: [{when: {vip_level: {min: 1}}, class: vip}]
routes: [{when: {vip_level: {min: 1}}, queue: vip, priority: 10}]
queues:
  vip:
    skill: vip
    require: {vip_qualified: true, dialect: {min_proficiency: 6}}
    prefer: {dialect: 3, last_agent: 2, idle: 0.5}
    announce: {every: 5}
    ring_timeout_s: 5
  billing: {skill: billing}
  tech: {skill: tech}
  general: {skill: general}
"""


async def test_vip_minnan_caller_waits_for_the_minnan_agent(tmp_path: Path) -> None:
    pbx = SimPBX(SimConfig(users={"acd": "s"}, prompt_s=0.05))
    await pbx.start()
    agents = (
        AgentProfile("minnan", "1001", skills={"vip": 8, "general": 5},
                     dialects={"minnan": 9}, vip_qualified=True, gender="F"),
        AgentProfile("mandarin", "1004", skills={"vip": 6, "general": 5},
                     dialects={"mandarin": 10}, vip_qualified=True, gender="M"),
    )
    for a in agents:
        pbx.add_phone(a.extension, PhoneBehaviour(answer_after_s=0.05, talk_s=0.3))
    engine = Engine(EngineConfig(
        core=CoreConfig(policy=parse_policy(POLICY), agents=agents, wrap_up_s=0.1),
        flow=load_flow(ROOT / "ivr_flows" / "basic.yaml"),
        ami=AmiConfig(port=pbx.ami_port, secret="s"), agi_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    try:
        await engine.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
        await engine.profiles.upsert_customers([CustomerProfile(
            "13900000001", "林先生", vip_level=2, dialect="minnan", gender="M", age=40)])
        engine.handle(AgentPause("minnan", "lunch"))
        h = await pbx.place_call(CallerScript(number="13900000001", name="林先生",
                                              keys=["", "1"], patience_s=60, key_delay_s=0.05))
        await asyncio.sleep(6.5)  # the Mandarin agent is free but not eligible; he waits
        waiting = engine.core.call(h.uniqueid)
        assert waiting is not None and waiting.queue == "vip" and waiting.state.value == "waiting"
        assert waiting.customer_class == "vip" and waiting.attrs["dialect"] == "minnan"
        engine.handle(AgentReady("minnan"))
        res = await asyncio.wait_for(h.done, 10)
        await asyncio.sleep(0.2)
        await engine.writer.drain()
        rec = await engine.db.call(h.uniqueid)
        expl = await engine.db.explanations_for(h.uniqueid)
    finally:
        await engine.stop()
        await pbx.stop()
    assert res.outcome is Outcome.TALKED and res.agent == "1001"
    commands = " | ".join(res.agi_commands)
    assert "STREAM FILE acd/you-are-caller" in commands and "SAY NUMBER 1" in commands
    assert rec is not None and rec["agent_id"] == "minnan" and rec["queue"] == "vip"
    assert rec["customer_class"] == "vip" and rec["priority"] == 10
    assert [e["agent_id"] for e in expl] == ["minnan"]
    assert expl[0]["reason"].startswith("agent became ready")


async def test_max_wait_sends_the_caller_to_the_fallback(tmp_path: Path) -> None:
    policy = parse_policy("""
queues:
  billing: {skill: billing, max_wait: {after: 1, fallback: callback}}
  tech: {skill: tech}
  general: {skill: general}
""")
    pbx = SimPBX(SimConfig(users={"acd": "s"}, prompt_s=0.05))
    await pbx.start()
    agents = (AgentProfile("a1", "1001", skills={"billing": 5}),)
    pbx.add_phone("1001", PhoneBehaviour())
    engine = Engine(EngineConfig(
        core=CoreConfig(policy=policy, agents=agents), login_agents=False,
        flow=load_flow(ROOT / "ivr_flows" / "basic.yaml"),
        ami=AmiConfig(port=pbx.ami_port, secret="s"), agi_port=0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    try:
        await engine.start()
        pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=60, key_delay_s=0.05))
        res = await asyncio.wait_for(h.done, 10)
        await engine.writer.drain()
        rec = await engine.db.call(h.uniqueid)
        sessions = len(engine._sessions)
    finally:
        await engine.stop()
        await pbx.stop()
    assert res.outcome is Outcome.ENGINE_HANGUP
    assert any(s.startswith("fallback?kind=callback") for s in res.agi_scripts)
    assert "STREAM FILE acd/callback-registered" in " | ".join(res.agi_commands)
    assert rec is not None and rec["outcome"] == "fallback" and rec["queue"] == "billing"
    assert list(engine.fallbacks) == [(h.uniqueid, "callback", "13800138000")]
    assert sessions == 0  # nothing left behind
