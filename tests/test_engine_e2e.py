"""The engine against the PBX simulator, over real AMI and FastAGI sockets."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers import SECRET, db_url, engine_on_pbx

from acd.adapters.ami import AmiAuthError, AmiConfig
from acd.core.center import agents_for_queues
from acd.core.model import AgentState, CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")


@asynccontextmanager
async def system(tmp_path: Path, phones: dict[str, PhoneBehaviour], *, ring_timeout_s: float = 5,
                 wrap_up_s: float = 0.05, secret: str = SECRET,
                 ami: dict[str, float] | None = None) -> AsyncIterator[tuple[SimPBX, Engine]]:
    """Agents ``a<ext>`` on phones ``<ext>``, in every queue; the engine logs
    in to AMI with ``secret`` (the simulator's is SECRET)."""
    policy = simple_policy({q: ring_timeout_s for q in sorted(FLOW.queues)})
    agents = agents_for_queues({f"a{ext}": (ext, tuple(policy.queues)) for ext in phones})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=wrap_up_s, rona_pause_s=None),
        flow=FLOW,
        ami=AmiConfig(username="acd", secret=secret, **(ami or {})),  # type: ignore[arg-type]
        database_url=db_url(tmp_path),
    )
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        yield pbx, engine


async def records_for(engine: Engine, n: int, timeout: float = 10.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while engine.counters.calls_finished < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await engine.writer.drain()
    return {r["call_id"]: r for r in await engine.db.calls()}


def expected_outcome(res: CallResult) -> str:
    return {
        Outcome.TALKED: "answered",
        Outcome.ABANDONED_HOLD: "abandoned",
        Outcome.ABANDONED_RINGING: "abandoned",
        Outcome.IVR_HANGUP: "ivr",
        Outcome.ENGINE_HANGUP: "ivr",
    }[res.outcome]


async def test_200_concurrent_calls_each_get_one_consistent_record(tmp_path: Path) -> None:
    rng = random.Random(7)
    phones = {str(1001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.3) for i in range(25)}
    async with system(tmp_path, phones) as (pbx, engine):
        scripts = []
        for i in range(200):
            r = rng.random()
            keys = ["", "1"] if r < 0.35 else ["", "2"] if r < 0.6 else ["", "0"] \
                if r < 0.8 else ["", "3"]
            hang = rng.uniform(0.01, 0.1) if i % 25 == 0 else None
            scripts.append(CallerScript(number=f"1380000{i:04d}", name="张三" if i % 2 else "",
                                        keys=keys, patience_s=rng.uniform(0.3, 4.0),
                                        hangup_after_s=hang, key_delay_s=0.02))
        handles = [await pbx.place_call(s) for s in scripts]
        # garbage on the FastAGI port meanwhile must not disturb anything
        _, w = await asyncio.open_connection("127.0.0.1", engine.agi.port)
        w.write(b"\x00\xffnot agi at all\n\n")
        peak = 0
        pending = {h.done for h in handles}
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.02)
            peak = max(peak, sum(1 for _ in engine.core.calls()))
        w.close()
        results = [h.done.result() for h in handles]
        recs = await records_for(engine, 200)
    assert peak >= 150, f"only {peak} calls were live at once"
    assert len(recs) == 200
    assert set(recs) == {r.uniqueid for r in results}
    outcomes: dict[str, int] = defaultdict(int)
    for res in results:
        rec = recs[res.uniqueid]
        outcomes[rec["outcome"]] += 1
        assert rec["outcome"] == expected_outcome(res), (res, rec)
        if rec["outcome"] == "answered":
            assert rec["agent_id"] == f"a{res.agent}"
            assert rec["queue"] in {"billing", "tech", "general"}
            # the record's talk is what the PBX saw (the phone talks 0.3 s; on a
            # loaded machine both sides see the same event-loop delays on top)
            assert res.talk_s is not None and res.talk_s >= 0.3 - 0.01
            assert rec["talk_s"] == pytest.approx(res.talk_s, abs=0.2)
            assert rec["wait_s"] is not None and rec["wait_s"] >= 0
        else:
            assert rec["agent_id"] is None
        assert "BUSY" not in res.dial_statuses  # never rang a phone already in a call
        assert rec["caller"] == res.number
    assert outcomes["answered"] > 50 and outcomes["abandoned"] > 0 and outcomes["ivr"] > 0
    # no agent ever held two calls: answered intervals per agent never overlap
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rec in recs.values():
        if rec["outcome"] == "answered":
            end = rec["ended_at"].timestamp()
            spans[rec["agent_id"]].append((end - rec["talk_s"], end))
    for agent, iv in spans.items():
        iv.sort()
        for (_, e1), (s2, _) in itertools.pairwise(iv):
            assert s2 >= e1 - 1e-3, f"agent {agent} overlaps"
    assert engine.agi.rejected == 1
    assert engine.counters.errors == 0
    assert all(a.state is AgentState.READY or a.state is AgentState.WRAP_UP
               for a in engine.core.agents())


async def test_ring_no_answer_goes_to_next_agent_and_pauses_the_first(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answers=False),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with system(tmp_path, phones, ring_timeout_s=1) as (pbx, engine):
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=30, key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 15)
        recs = await records_for(engine, 1)
        first = engine.core.agent("a1001")
    assert res.outcome is Outcome.TALKED and res.agent == "1002"
    assert res.dial_statuses == ["NOANSWER", "ANSWER"]
    assert res.requeues == 1
    rec = recs[res.uniqueid]
    assert (rec["outcome"], rec["agent_id"], rec["offers"]) == ("answered", "a1002", 2)
    assert first.state is AgentState.PAUSED and "NOANSWER" in first.reason


async def test_caller_hangs_up_while_agent_rings(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answers=False)}
    async with system(tmp_path, phones, ring_timeout_s=10) as (pbx, engine):
        h = await pbx.place_call(CallerScript(keys=["", "1"], patience_s=0.5, key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 10)
        recs = await records_for(engine, 1)
        agent = engine.core.agent("a1001")
    assert res.outcome is Outcome.ABANDONED_RINGING
    assert recs[res.uniqueid]["outcome"] == "abandoned"
    assert agent.state is AgentState.READY and agent.call_id is None


async def test_wrong_ami_password_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AmiAuthError, match="refused AMI login for user 'acd'"):
        async with system(tmp_path, {"1001": PhoneBehaviour()}, secret="wrong"):
            pass


async def test_malformed_ami_frames_are_skipped(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    async with system(tmp_path, phones) as (pbx, engine):
        await pbx.inject_ami_raw(b"this is not AMI\r\nEvent\r\n\r\n")
        h = await pbx.place_call(CallerScript(keys=["", "2"], key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 10)
        recs = await records_for(engine, 1)
        reconnects = engine.ami.reconnects
    assert res.outcome is Outcome.TALKED
    assert recs[res.uniqueid]["outcome"] == "answered"
    assert reconnects == 0  # the link stayed up


async def test_ami_link_lost_mid_call_reconnects_and_resyncs(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.6)}
    async with system(tmp_path, phones, ami={"backoff_initial": 1.2}) as (pbx, engine):
        h = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.02))
        while not any(c.state.value == "connected" for c in engine.core.calls()):
            await asyncio.sleep(0.01)
        await pbx.drop_ami_clients()  # the hangup happens while we are not listening
        res = await asyncio.wait_for(h.done, 10)
        recs = await records_for(engine, 1, timeout=10)
        reconnects = engine.ami.reconnects
        # and the engine still serves new calls after the reconnect
        h2 = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.02))
        res2 = await asyncio.wait_for(h2.done, 10)
        recs = await records_for(engine, 2)
    assert res.outcome is Outcome.TALKED and res2.outcome is Outcome.TALKED
    assert recs[res.uniqueid]["outcome"] == "answered"
    assert recs[res2.uniqueid]["outcome"] == "answered"
    assert reconnects == 1


async def test_a_stalled_asterisk_keeps_its_link_and_its_events(tmp_path: Path) -> None:
    """Frozen: neither Ping nor a new login is answered, so the link is kept
    (a new session would never see the stall's events); a call answered
    during the stall is recorded answered once it is over."""
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.3)}
    async with system(tmp_path, phones,
                      ami={"ping_interval": 0.2, "ping_timeout": 0.3,
                           "connect_timeout": 0.3}) as (pbx, engine):
        pbx.freeze_ami(True)
        h = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.02))
        t0 = time.monotonic()
        while engine.ami.stalled_since is None and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.02)
        assert engine.ami.stalled_since is not None and engine.ami.connected
        await asyncio.sleep(1.0)
        pbx.freeze_ami(False)
        res = await asyncio.wait_for(h.done, 10)
        recs = await records_for(engine, 1)
        assert engine.ami.reconnects == 0 and engine.ami.stalled_since is None
    assert res.outcome is Outcome.TALKED
    assert recs[res.uniqueid]["outcome"] == "answered"


class Relay:
    """A TCP relay to the simulator's AMI that can go silent on the
    connections it carries (a half-open link: no FIN, nothing through)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silent: set[asyncio.StreamWriter] = set()
        self.conns: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._on, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def blackhole(self) -> None:
        self.silent.update(self.conns)

    async def _on(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.port)
        self.conns.append(w)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if w not in self.silent:
                    dst.write(data)

        await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.conns:
            w.close()


async def test_a_half_open_ami_link_is_declared_dead(tmp_path: Path) -> None:
    """Pings go unanswered on the link while a new session logs in: the
    link is dead (half-open TCP); the engine reconnects."""
    from dataclasses import replace

    from helpers import pbx_for_engine
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents_for_queues({"a1001": ("1001", tuple(
            policy.queues))}), wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, database_url=db_url(tmp_path), agi_port=0,
        ami=AmiConfig(username="acd", secret=SECRET, ping_interval=0.2, ping_timeout=0.3,
                      backoff_initial=0.1, connect_timeout=1))
    async with SimPBX(pbx_for_engine()) as pbx:
        pbx.add_phone("1001", phones["1001"])
        relay = Relay(pbx.ami_port)
        port = await relay.start()
        engine = Engine(replace(cfg, ami=replace(cfg.ami, port=port)))
        await engine.start()
        try:
            pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
            relay.blackhole()
            t0 = time.monotonic()
            while engine.ami.reconnects == 0 and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.02)
            assert engine.ami.reconnects >= 1
            while not engine.ami.connected and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.02)
            h = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.02))
            res = await asyncio.wait_for(h.done, 10)
        finally:
            await engine.stop()
            await relay.stop()
    assert res.outcome is Outcome.TALKED


async def test_call_from_an_unconfigured_server_is_refused_and_others_go_on(
        tmp_path: Path) -> None:
    from acd.protocols.agi import encode_request

    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    async with system(tmp_path, phones) as (pbx, engine):
        r, w = await asyncio.open_connection("127.0.0.1", engine.agi.port)
        w.write(encode_request({"agi_network": "yes", "agi_network_script": "hotline?server=pbx9",
                                "agi_channel": "PJSIP/trunk-1", "agi_uniqueid": "9.1",
                                "agi_callerid": "13800000000"}))
        assert await asyncio.wait_for(r.readline(), 5) == b"HANGUP\n"
        w.close()
        assert engine.core.call("9.1") is None and engine.calls.get("9.1") is None
        h = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 10)
        recs = await records_for(engine, 1)
    assert res.outcome is Outcome.TALKED
    assert list(recs) == [res.uniqueid]  # the refused call left no record
