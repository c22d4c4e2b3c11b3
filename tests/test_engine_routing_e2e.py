"""Precise matching through the whole engine: the caller's profile comes
from the customers table, the policy routes the VIP to the VIP queue, he
waits (hearing his position) until the Minnan-speaking VIP agent is free."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import SECRET, db_url, engine_on_pbx

from acd.adapters.ami import AmiConfig
from acd.core.model import AgentPause, AgentReady, CoreConfig
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.ivr.load import load_flow
from acd.loaders.routing import parse_policy
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, Outcome, PhoneBehaviour

ROOT = Path(__file__).resolve().parent.parent
BASIC = load_flow(ROOT / "ivr_flows" / "basic.yaml")

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


@pytest.mark.slow  # the caller waits 6.5 s while an ineligible agent is free
async def test_vip_minnan_caller_waits_for_the_minnan_agent(tmp_path: Path) -> None:
    agents = (
        AgentProfile("minnan", "1001", skills={"vip": 8, "general": 5},
                     dialects={"minnan": 9}, vip_qualified=True, gender="F"),
        AgentProfile("mandarin", "1004", skills={"vip": 6, "general": 5},
                     dialects={"mandarin": 10}, vip_qualified=True, gender="M"),
    )
    phones = {a.extension: PhoneBehaviour(answer_after_s=0.05, talk_s=0.3) for a in agents}
    cfg = EngineConfig(
        core=CoreConfig(policy=parse_policy(POLICY), agents=agents, wrap_up_s=0.1),
        flow=BASIC, ami=AmiConfig(secret=SECRET), database_url=db_url(tmp_path))
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
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
    agents = (AgentProfile("a1", "1001", skills={"billing": 5}),)
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents), login_agents=False, flow=BASIC,
        ami=AmiConfig(secret=SECRET), database_url=db_url(tmp_path))
    async with engine_on_pbx(cfg, phones={"1001": PhoneBehaviour()}) as (pbx, engine):
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=60, key_delay_s=0.05))
        res = await asyncio.wait_for(h.done, 10)
        await engine.writer.drain()
        rec = await engine.db.call(h.uniqueid)
        sessions = len(engine.calls)
    assert res.outcome is Outcome.ENGINE_HANGUP
    assert any(s.startswith("fallback?kind=callback") for s in res.agi_scripts)
    assert "STREAM FILE acd/callback-registered" in " | ".join(res.agi_commands)
    assert rec is not None and rec["outcome"] == "fallback" and rec["queue"] == "billing"
    assert list(engine.fallbacks) == [(h.uniqueid, "callback", "13800138000")]
    assert sessions == 0  # nothing left behind
