"""Several Asterisk servers, one engine: calls keyed by (server, uniqueid),
agents reached on the server their phone is on (or through a path), one
router over all, and a server whose AMI drops ends only its own calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from helpers import SECRET, db_url, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    AgentLogin,
    CallQueued,
    CallStarted,
    ConnectCall,
    CoreConfig,
)
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import ConfigError, EngineConfig, ServerConfig, parse_config
from sim.config import CallerScript, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")


def test_the_router_offers_a_call_only_to_agents_its_server_reaches() -> None:
    from dataclasses import replace
    base = agents_for_queues({"a1": ("1001", ("q",)), "a2": ("2001", ("q",))})
    agents = (replace(base[0], servers=frozenset({"pbx1"})),
              replace(base[1], servers=frozenset({"pbx2"})))
    cc = ContactCenter(CoreConfig(policy=simple_policy({"q": 20}), agents=agents))
    cc.handle(AgentLogin("a1"), 0)
    cc.handle(AgentLogin("a2"), 0)
    offered = {}
    for cid, server in (("x", "pbx2"), ("y", "pbx1")):
        cc.handle(CallStarted(cid, "1", server=server), 1)
        out = cc.handle(CallQueued(cid, "q"), 1)
        offered.update({a.call_id: (a.agent_id, a.server) for a in out
                        if isinstance(a, ConnectCall)})
    # a1 was idle longest, yet the pbx2 call goes to a2
    assert offered == {"x": ("a2", "pbx2"), "y": ("a1", "pbx1")}


def test_servers_and_paths_in_acd_yaml(tmp_path: Path) -> None:
    flow = str(ROOT / "ivr_flows" / "basic.yaml")
    base = {"flow": flow, "queues": [{"name": q} for q in sorted(FLOW.queues)],
            "agents": [{"id": "a1", "extension": "1001", "queues": ["billing"],
                        "server": "pbx2"}],
            "servers": [{"name": "pbx2", "ami": {"host": "10.0.0.2", "secret": "s"}}],
            "paths": [{"from": "pbx1", "to": "pbx2", "context": "acd-connect-pbx2"}]}
    cfg = parse_config(base, "acd.yaml", ROOT)
    assert cfg.server_names == ("pbx1", "pbx2")
    assert cfg.servers == (ServerConfig("pbx2", AmiConfig(host="10.0.0.2", secret="s")),)
    assert cfg.paths == {("pbx1", "pbx2"): "acd-connect-pbx2"}
    assert cfg.agent_servers == {"a1": "pbx2"}
    for bad, where in (
            ({"servers": [{"name": "pbx1"}]}, "servers[0].name"),
            ({"servers": [{"name": "pbx2", "amy": {}}]}, "servers[0].amy"),
            ({"paths": [{"from": "pbx1", "to": "pbx9", "context": "c"}]}, "paths[0].to"),
            ({"agents": [{"id": "a1", "extension": "1001", "queues": ["billing"],
                          "server": "pbx7"}]}, "agents[0].server")):
        with pytest.raises(ConfigError, match=rf"{where.replace('[', '.').replace(']', '.')}"):
            parse_config({**base, **bad}, "acd.yaml", ROOT)


async def test_two_servers_calls_reach_agents_on_their_own_server(tmp_path: Path) -> None:
    """Agents 1001-1003 have phones on pbx1, 2001-2003 on pbx2 (found by
    device state); both simulators number their channels alike, so the same
    uniqueid lives on both.  Every call is answered by an agent of its own
    server; pbx2's AMI drops mid-load and pbx1's calls go on untouched."""
    phones1 = {str(1001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.4) for i in range(3)}
    phones2 = {str(2001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.4) for i in range(3)}
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    agents = agents_for_queues({f"a{ext}": (ext, tuple(policy.queues))
                                for ext in (*phones1, *phones2)})
    async with SimPBX(pbx_for_engine(server_name="pbx1")) as pbx1, \
            SimPBX(pbx_for_engine(server_name="pbx2")) as pbx2:
        for pbx, phones in ((pbx1, phones1), (pbx2, phones2)):
            for ext, b in phones.items():
                pbx.add_phone(ext, b)
        cfg = EngineConfig(
            core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
            flow=FLOW, database_url=db_url(tmp_path), agi_port=0, server="pbx1",
            ami=AmiConfig(username="acd", secret=SECRET, port=pbx1.ami_port,
                          backoff_initial=0.1),
            servers=(ServerConfig("pbx2", AmiConfig(username="acd", secret=SECRET,
                                                    port=pbx2.ami_port,
                                                    backoff_initial=0.1)),))
        engine = Engine(cfg)
        await engine.start()
        try:
            assert engine.agent_home == {**{f"a{e}": "pbx1" for e in phones1},
                                         **{f"a{e}": "pbx2" for e in phones2}}
            for pbx in (pbx1, pbx2):
                pbx.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
            handles = []
            for i in range(30):
                pbx = pbx1 if i % 2 else pbx2
                handles.append((pbx, await pbx.place_call(CallerScript(
                    number=f"1380000{i:04d}", keys=["", "1"], patience_s=None,
                    key_delay_s=0.02))))
                if i == 14:
                    await pbx2.drop_ami_clients()
                await asyncio.sleep(0.05)
            results = [(pbx, await asyncio.wait_for(h.done, 30)) for pbx, h in handles]
            while engine.counters.calls_finished < len(results):
                await asyncio.sleep(0.05)
            await engine.writer.drain()
            recs = {r["call_id"]: r for r in await engine.db.calls()}
            reconnects = (engine.servers["pbx1"].ami.reconnects,
                          engine.servers["pbx2"].ami.reconnects)
        finally:
            await engine.stop()
    uids = Counter(res.uniqueid for _, res in results)
    assert any(n == 2 for n in uids.values()), "the two servers never shared a uniqueid"
    assert len(recs) == 30
    for pbx, res in results:
        assert res.outcome is Outcome.TALKED
        own = phones1 if pbx is pbx1 else phones2
        assert res.agent in own, f"a call of {pbx.cfg.server_name} reached {res.agent}"
        call_id = res.uniqueid if pbx is pbx1 else f"pbx2:{res.uniqueid}"
        rec = recs[call_id]
        assert (rec["outcome"], rec["agent_id"], rec["server"]) == \
            ("answered", f"a{res.agent}", pbx.cfg.server_name)
    assert reconnects[0] == 0 and reconnects[1] >= 1


async def test_a_server_first_reached_late_keeps_the_calls_taken_meanwhile(
        tmp_path: Path) -> None:
    """pbx2 is down when the engine starts; its calls still come over
    FastAGI and are queued.  When its AMI comes up, the first-connect
    rebuild must not put those calls back over the live ones."""
    from helpers import free_port

    from acd.core.model import AgentLogin
    p2 = free_port()
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    agents = agents_for_queues({"a2001": ("2001", tuple(policy.queues))})
    async with SimPBX(pbx_for_engine(server_name="pbx1")) as pbx1:
        pbx2 = SimPBX(pbx_for_engine(server_name="pbx2", ami_port=p2))
        pbx2.add_phone("2001", PhoneBehaviour(answer_after_s=0.05, talk_s=0.3))
        cfg = EngineConfig(
            core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
            flow=FLOW, database_url=db_url(tmp_path), agi_port=0, server="pbx1",
            ami=AmiConfig(username="acd", secret=SECRET, port=pbx1.ami_port),
            servers=(ServerConfig("pbx2", AmiConfig(username="acd", secret=SECRET, port=p2,
                                                    backoff_initial=0.1, backoff_max=0.3)),),
            agent_servers={"a2001": "pbx2"}, login_agents=False)
        engine = Engine(cfg)
        await engine.start()
        try:
            assert not engine.servers["pbx2"].scanned
            pbx2.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
            h = await pbx2.place_call(CallerScript(keys=["", "1"], patience_s=None,
                                                   key_delay_s=0.02))
            cid = f"pbx2:{h.uniqueid}"
            for _ in range(200):
                c = engine.core.call(cid)
                if c is not None and c.queue is not None:
                    break
                await asyncio.sleep(0.02)
            await engine.writer.drain()  # its calls_live row is written
            await pbx2.start()
            for _ in range(100):
                if engine.servers["pbx2"].scanned:
                    break
                await asyncio.sleep(0.05)
            assert engine.servers["pbx2"].scanned
            assert engine.calls.get(cid) is not None and engine.core.call(cid) is not None
            engine.handle(AgentLogin("a2001"))
            res = await asyncio.wait_for(h.done, 20)
            while engine.counters.calls_finished < 1:
                await asyncio.sleep(0.05)
            await engine.writer.drain()
            recs = {r["call_id"]: r for r in await engine.db.calls()}
        finally:
            await engine.stop()
            await pbx2.stop()
    assert res.outcome is Outcome.TALKED and res.agent == "2001"
    assert (recs[cid]["outcome"], recs[cid]["agent_id"]) == ("answered", "a2001")
    assert engine.counters.errors == 0


def test_a_server_needs_its_ami_and_a_path_leads_elsewhere() -> None:
    flow = str(ROOT / "ivr_flows" / "basic.yaml")
    base = {"flow": flow, "queues": [{"name": q} for q in sorted(FLOW.queues)]}
    with pytest.raises(ConfigError, match=r"servers\[0\]: server 'pbx2' needs its ami"):
        parse_config({**base, "servers": [{"name": "pbx2"}]}, "acd.yaml", ROOT)
    with pytest.raises(ConfigError, match=r"paths\[0\]\.to: a path leads from a server to"):
        parse_config({**base, "paths": [{"from": "pbx1", "to": "pbx1", "context": "c"}]},
                     "acd.yaml", ROOT)


async def test_an_answer_is_read_from_astdb_and_a_missing_one_fails_fast() -> None:
    """DBGet of a missing key is an Error answer: no wait for a list."""
    import time

    from acd.adapters.ami import AmiClient
    from acd.core.center import ContactCenter
    from acd.runtime.calls import CallRegistry, CallReports
    from acd.runtime.rebuild import Rebuild
    async with SimPBX(pbx_for_engine()) as pbx:
        ami = AmiClient(AmiConfig(username="acd", secret=SECRET, port=pbx.ami_port),
                        lambda m: None)
        await ami.connect()
        calls = CallRegistry("pbx1")
        rebuild = Rebuild(ContactCenter(CoreConfig(policy=simple_policy({"q": 5}))),
                          lambda e: None, calls, CallReports(calls, lambda e: None),
                          None, server="pbx1", connect_context="acd-connect",  # type: ignore[arg-type]
                          clock=time.time)
        t0 = time.monotonic()
        assert await rebuild.answered_at(ami.send_list, "1001", "c1") is None
        assert time.monotonic() - t0 < 1.0
        pbx.astdb.put("acd/answered", "1001", "1790000000 c1")
        assert await rebuild.answered_at(ami.send_list, "1001", "c1") == 1790000000.0
        assert await rebuild.answered_at(ami.send_list, "1001", "c2") is None  # another call
        await ami.close()


async def test_a_fastagi_port_in_use_fails_before_asterisk_is_driven(tmp_path: Path) -> None:
    import socket
    policy = simple_policy({q: 5 for q in sorted(FLOW.queues)})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with SimPBX(pbx_for_engine()) as pbx:
            logins: list[str] = []
            pbx.add_event_listener(lambda cls, payload: logins.append(cls))
            engine = Engine(EngineConfig(
                core=CoreConfig(policy=policy), flow=FLOW, database_url=db_url(tmp_path),
                agi_port=port, ami=AmiConfig(username="acd", secret=SECRET,
                                             port=pbx.ami_port)))
            with pytest.raises(OSError, match=r"agi\.host, agi\.port"):
                await engine.start()
            assert not engine.ami.connected and engine.ami.reconnects == 0
