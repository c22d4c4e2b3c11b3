"""The event bus: core decisions -> MQTT events, the ``events:`` settings, and
the engine publishing a stretch of simulated calls to a real Mosquitto broker
(events that reconcile with the call records), with the broker away, mute or
restarted."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
import jsonschema
import pytest
import yaml
from helpers import SECRET, db_url, engine_on_pbx, free_port, wait_for
from mqtt_broker import Broker

from acd.adapters.ami import AmiConfig
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    Action,
    AgentLogin,
    AgentPause,
    CallQueued,
    CallRestored,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    OfferAnswered,
    OfferFailed,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.loaders.routing import parse_policy
from acd.runtime.engine import Engine
from acd.runtime.event_bus import EventBus, EventsConfig, level, queue_snapshot
from acd.runtime.settings import ConfigError, EngineConfig, load_config, parse_config
from sim.config import CallerScript, CallResult, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = ROOT / "ivr_flows" / "basic.yaml"
FLOW = load_flow(FLOW_FILE)
SPEC = yaml.safe_load((ROOT / "docs" / "events.asyncapi.yaml").read_text(encoding="utf-8"))
#: event name -> its payload schema in the AsyncAPI document
SCHEMAS = {m["name"]: m["payload"]["$ref"] for m in SPEC["components"]["messages"].values()}


def conforms(payload: dict[str, Any]) -> None:
    """``payload`` is what docs/events.asyncapi.yaml says its ``event`` carries."""
    ref = SCHEMAS[payload["event"]]
    # the document is the root of the $ref (draft 7: the $ref alone applies)
    jsonschema.Draft7Validator({**SPEC, "$ref": ref}).validate(payload)


def test_the_asyncapi_documents_examples_are_what_it_specifies() -> None:
    examples = [ex["payload"] for m in SPEC["components"]["messages"].values()
                for ex in m.get("examples", [])]
    assert len(examples) >= 4
    for payload in examples:
        conforms(payload)
    with pytest.raises(jsonschema.ValidationError):  # and conforms() can fail
        conforms({**examples[0], "surprise": 1})


# ------------------------------------------------------------ the mapping


def center(policy_text: str | None = None) -> ContactCenter:
    policy = parse_policy(policy_text) if policy_text else simple_policy({"billing": 20.0})
    agents = (AgentProfile("a1", "1001", name="王芳", skills={"billing": 5}),
              AgentProfile("a2", "1002", name="陈伟", skills={"billing": 5}))
    return ContactCenter(CoreConfig(policy=policy, agents=agents, rona_pause_s=None))


def feed(core: ContactCenter, bus: EventBus, event: Event, now: float) -> list[Action]:
    """What Engine.submit does with an event: decide, then tell the bus."""
    actions = core.handle(event, now)
    bus.on_decision(event, actions, now)
    return actions


def events(bus: EventBus) -> list[tuple[str, dict[str, Any], bool]]:
    return bus.pending()


def test_a_call_answered_is_started_queued_offered_answered_ended_in_seq_order() -> None:
    core = center()
    bus = EventBus(EventsConfig(topic_prefix="tenant1/acd"), "pbx1", core)
    feed(core, bus, AgentLogin("a1", ready=True), 100.0)
    feed(core, bus, CallStarted("c/1", "13800138000", "张三"), 101.0)
    [offer] = [a for a in feed(core, bus, CallQueued("c/1", "billing", ("welcome", "menu"),
                                                     priority=2), 105.0)
               if isinstance(a, ConnectCall)]
    feed(core, bus, OfferAnswered("c/1", offer.offer_id), 108.0)
    [rec] = [a.record for a in feed(core, bus, ConversationEnded("c/1", "caller"), 140.0)
             if isinstance(a, WriteCallRecord)]

    got = events(bus)
    assert [(t, p["event"]) for t, p, _ in got] == [
        ("tenant1/acd/pbx1/agent/a1/state", "agent.state"),    # logged in (paused)
        ("tenant1/acd/pbx1/agent/a1/state", "agent.state"),    # ready
        ("tenant1/acd/pbx1/call/c_1/started", "call.started"),  # "/" is not a topic level
        ("tenant1/acd/pbx1/call/c_1/queued", "call.queued"),
        ("tenant1/acd/pbx1/agent/a1/state", "agent.state"),    # reserved
        ("tenant1/acd/pbx1/call/c_1/offered", "call.offered"),
        ("tenant1/acd/pbx1/call/c_1/answered", "call.answered"),
        ("tenant1/acd/pbx1/agent/a1/state", "agent.state"),    # on call
        ("tenant1/acd/pbx1/agent/a1/state", "agent.state"),    # wrap-up
        ("tenant1/acd/pbx1/call/c_1/ended", "call.ended"),
    ]
    assert [p["seq"] for _, p, _ in got] == list(range(1, 11)) and bus.seq == 10
    assert {p["run"] for _, p, _ in got} == {bus.run_id}
    assert all(p["server"] == "pbx1" for _, p, _ in got)
    # retained: the agents' states (the latest is the present); calls are not
    assert [r for _, p, r in got] == [p["event"] == "agent.state" for _, p, _ in got]
    by = {p["event"]: p for _, p, _ in got}
    assert by["call.started"] == {**by["call.started"], "call_id": "c/1",
                                  "caller": "13800138000", "caller_name": "张三", "at": 101.0,
                                  "pbx": ""}
    assert (by["call.queued"]["queue"], by["call.queued"]["priority"],
            by["call.queued"]["ivr_path"], by["call.queued"]["at"]) == \
        ("billing", 2, ["welcome", "menu"], 105.0)
    assert (by["call.offered"]["agent_id"], by["call.offered"]["offer_id"],
            by["call.offered"]["extension"]) == ("a1", offer.offer_id, "1001")
    assert (by["call.answered"]["agent_id"], by["call.answered"]["wait_s"]) == ("a1", 3.0)
    ended = by["call.ended"]
    assert (ended["outcome"], ended["agent_id"], ended["wait_s"], ended["talk_s"]) == \
        ("answered", "a1", rec.wait_s, rec.talk_s)
    assert ended["ivr_path"] == ["welcome", "menu"] and ended["at"] == 140.0
    states = [(p["old"], p["new"], p["name"], p["call_id"])
              for _, p, _ in got if p["event"] == "agent.state"]
    assert states == [("logged_out", "paused", "王芳", None), ("paused", "ready", "王芳", None),
                      ("ready", "reserved", "王芳", "c/1"), ("reserved", "on_call", "王芳", "c/1"),
                      ("on_call", "wrap_up", "王芳", None)]
    for _, p, _ in got:
        conforms(p)


def test_queued_names_the_queue_the_routing_picked_and_the_class() -> None:
    core = center("""
classes: {vip: {}, standard: {}}
class_rules: [{when: {vip_level: {min: 1}}, class: vip}]
routes: [{when: {vip_level: {min: 1}}, queue: vip, priority: 10}]
queues: {vip: {skill: billing}, billing: {skill: billing}}
""")
    bus = EventBus(EventsConfig(), "pbx1", core)
    feed(core, bus, CallStarted("c1", "139"), 0.0)
    feed(core, bus, CallQueued("c1", "billing", attributes=(("vip_level", "2"),)), 1.0)
    [queued] = [p for _, p, _ in events(bus) if p["event"] == "call.queued"]
    assert (queued["queue"], queued["ivr_queue"], queued["customer_class"],
            queued["priority"]) == ("vip", "billing", "vip", 10)


def test_an_answer_the_core_ignores_publishes_no_answered() -> None:
    core = center()
    bus = EventBus(EventsConfig(), "pbx1", core)
    feed(core, bus, AgentLogin("a1", ready=True), 0.0)
    feed(core, bus, CallStarted("c1", "139"), 0.0)
    [offer] = [a for a in feed(core, bus, CallQueued("c1", "billing"), 1.0)
               if isinstance(a, ConnectCall)]
    feed(core, bus, OfferFailed("c1", offer.offer_id, "NOANSWER"), 21.0)
    before = bus.seq
    assert feed(core, bus, OfferAnswered("c1", offer.offer_id), 22.0) == []  # too late
    assert bus.seq == before
    assert not [p for _, p, _ in events(bus) if p["event"] == "call.answered"]
    paused = [p for _, p, _ in events(bus) if p["event"] == "agent.state"][-1]
    assert (paused["new"], paused["reason"]) == ("paused", "offer NOANSWER")


def test_a_call_past_its_queues_maximum_publishes_fallback_then_ended() -> None:
    core = center("queues: {billing: {skill: billing, max_wait: {after: 30, "
                  "fallback: callback}}}")
    bus = EventBus(EventsConfig(), "pbx1", core)
    feed(core, bus, CallStarted("c1", "139"), 0.0)
    timers = [a for a in feed(core, bus, CallQueued("c1", "billing"), 1.0)
              if isinstance(a, StartTimer)]
    for timer in timers:
        feed(core, bus, TimerFired(timer.key), timer.at)
    got = [p for _, p, _ in events(bus)]
    assert [p["event"] for p in got] == ["call.started", "call.queued", "call.fallback",
                                         "call.ended"]
    assert (got[2]["kind"], got[2]["queue"]) == ("callback", "billing")
    assert (got[3]["outcome"], got[3]["wait_s"]) == ("fallback", 30.0)
    for p in got:
        conforms(p)


def test_a_call_an_earlier_process_accepted_is_published_as_restored() -> None:
    core = center()
    bus = EventBus(EventsConfig(), "pbx1", core)
    feed(core, bus, CallRestored("c9", "13900000009", "李四", started_at=90.0,
                                 queue="billing", queued_at=95.0), 100.0)
    [restored] = [p for _, p, _ in events(bus)]
    assert {k: restored[k] for k in ("event", "call_id", "caller_name", "started_at", "state",
                                     "queue", "agent_id", "at")} == \
        {"event": "call.restored", "call_id": "c9", "caller_name": "李四", "started_at": 90.0,
         "state": "waiting", "queue": "billing", "agent_id": None, "at": 100.0}
    conforms(restored)


def test_when_full_the_oldest_are_dropped_counted_and_warned_once(
        caplog: pytest.LogCaptureFixture) -> None:
    core = center()
    bus = EventBus(EventsConfig(queue_limit=3), "pbx1", core)
    with caplog.at_level(logging.WARNING, "acd.runtime.event_bus"):
        for i in range(6):
            feed(core, bus, CallStarted(f"c{i}", "139"), float(i))
    assert [p["seq"] for _, p, _ in events(bus)] == [4, 5, 6]  # the gap tells the consumer
    assert bus.dropped == 3 and bus.queued == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "dropped 1 oldest (1 in all; queue limit 3)" in warnings[0]


def test_a_mapping_failure_is_counted_and_never_reaches_the_engine(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def call(self, call_id: str) -> None:
            raise RuntimeError("broken core view")

    bus = EventBus(EventsConfig(), "pbx1", Broken())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, "acd.runtime.event_bus"):
        bus.on_decision(CallQueued("c1", "billing"), [], 1.0)
        bus.on_decision(CallQueued("c2", "billing"), [], 2.0)
    assert bus.errors == 2 and bus.queued == 0
    assert len([r for r in caplog.records if "mapping event" in r.getMessage()]) == 1


async def test_payloads_are_utf8_json_with_names_as_they_are() -> None:
    bus = EventBus(EventsConfig(), "pbx1", center())
    bus.on_decision(CallStarted("c1", "139", "张三"), [], 5.0)
    [msg] = await bus.take(10)
    assert "张三".encode() in msg.payload and b"\\u" not in msg.payload
    assert json.loads(msg.payload)["caller_name"] == "张三"
    assert (msg.topic, msg.retain) == ("acd/pbx1/call/c1/started", False)


def test_queue_snapshot_counts_waiting_ringing_staffed_and_ready() -> None:
    core = ContactCenter(CoreConfig(
        policy=simple_policy({"billing": 20.0, "tech": 20.0}), rona_pause_s=None,
        agents=agents_for_queues({"a1": ("1001", ("billing",)), "a2": ("1002", ("billing",)),
                                  "a3": ("1003", ("tech",))})))
    bus = EventBus(EventsConfig(), "pbx1", core, clock=lambda: 50.0)
    for agent, ready in (("a1", True), ("a2", False), ("a3", True)):
        feed(core, bus, AgentLogin(agent, ready=ready), 0.0)
    for i, t in enumerate((10.0, 20.0, 30.0)):
        feed(core, bus, CallStarted(f"c{i}", "139"), t)
        feed(core, bus, CallQueued(f"c{i}", "billing"), t)  # c0 rings a1
    feed(core, bus, AgentPause("a3", "lunch"), 40.0)
    snap = {s["queue"]: s for s in queue_snapshot(core, 50.0)}
    assert snap["billing"] == {"queue": "billing", "skill": "billing", "waiting": 2,
                               "longest_wait_s": 30.0, "ringing": 1, "staffed": 1, "ready": 0}
    assert snap["tech"] == {"queue": "tech", "skill": "tech", "waiting": 0,
                            "longest_wait_s": None, "ringing": 0, "staffed": 0, "ready": 0}
    bus.publish_queues()
    published = [(t, p, r) for t, p, r in events(bus) if p["event"] == "queue.snapshot"]
    assert [(t, r, p["at"], p["waiting"]) for t, p, r in published] == [
        ("acd/pbx1/queue/billing", True, 50.0, 2), ("acd/pbx1/queue/tech", True, 50.0, 0)]
    for _, p, _ in published:
        conforms(p)


def test_names_become_single_topic_levels() -> None:
    assert level("a/b+c#d") == "a_b_c_d"
    assert level("客服") == "客服"
    assert level("") == "_"


# ------------------------------------------------------------ the settings


def config_file(tmp_path: Path, events: str, server: str = "pbx1") -> Path:
    path = tmp_path / "acd.yaml"
    path.write_text(f"server: {server}\nflow: {FLOW_FILE}\n"
                    "queues: [{name: billing}, {name: tech}, {name: general}]\n"
                    f"events:\n{events}", encoding="utf-8")
    return path


def test_the_events_block_and_its_defaults(tmp_path: Path) -> None:
    cfg = load_config(config_file(tmp_path, "  host: broker.local\n  password: 1234\n"))
    assert cfg.events == EventsConfig(host="broker.local", password="1234")
    assert (cfg.events.port, cfg.events.qos, cfg.events.topic_prefix,
            cfg.events.queue_limit, cfg.events.queue_every_s) == (1883, 1, "acd", 10_000, 5.0)
    cfg = load_config(config_file(tmp_path, "  {topic_prefix: t1/acd, qos: 0, client_id: x,"
                                            " username: u, queue_limit: 5, queue_every_s: 0}\n"))
    assert cfg.events == EventsConfig(topic_prefix="t1/acd", qos=0, client_id="x",
                                      username="u", queue_limit=5, queue_every_s=0.0)
    # off unless configured: the default install needs no broker
    queues = [{"name": q} for q in ("billing", "tech", "general")]
    assert parse_config({"flow": str(FLOW_FILE), "queues": queues}).events is None
    sample = load_config(ROOT / "acd.example.yaml")
    assert sample.events is None  # the sample's block is commented out


@pytest.mark.parametrize(("events", "where"), [
    ("  qos: 3\n", "5:8: events.qos: must be 0, 1 or 2 (the MQTT QoS)"),
    ("  qos: 1.0\n", "5:8: events.qos: must be 0, 1 or 2"),
    ("  port: 70000\n", "5:9: events.port: must be a TCP port number (0-65535)"),
    ("  transport: kafka\n", "5:14: events.transport: 'kafka' is not one of: mqtt"),
    ("  queue_limit: 0\n", "5:16: events.queue_limit: must be a whole number from 1"),
    ("  queue_every_s: -1\n", "5:18: events.queue_every_s: must be a number from 0 to 3600"),
    ("  topic_prefix: acd/#\n", "5:17: events.topic_prefix: 'acd/#' must be MQTT topic levels"),
    ("  topic_prefix: /acd\n", "5:17: events.topic_prefix: '/acd' must be MQTT topic levels"),
    ("  hots: x\n", "5:3: events.hots: unknown key (known: client_id, host, password, port, "
                    "qos, queue_every_s, queue_limit, topic_prefix, transport, username)"),
    ("  - mqtt\n", "5:3: events: must be a mapping"),
])
def test_events_settings_errors_name_file_line_and_key(tmp_path: Path, events: str,
                                                       where: str) -> None:
    path = config_file(tmp_path, events)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:{where}"), str(info.value)


def test_a_server_name_that_is_no_topic_level_is_refused_with_events(tmp_path: Path) -> None:
    path = config_file(tmp_path, "  host: 127.0.0.1\n", server="pbx/1")
    with pytest.raises(ConfigError, match=r"acd.yaml:1:9: server: 'pbx/1' is a topic level"):
        load_config(path)


# ------------------------------------------------ the engine and a broker


class Listener:
    """A consumer of the events: every message on ``topic`` as (topic, payload,
    retained), through broker restarts (a persistent session, so what is
    published while it reconnects waits for it at the broker)."""

    def __init__(self, port: int, topic: str = "acd/#") -> None:
        self.port, self.topic = port, topic
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.ready = asyncio.Event()
        self._id = f"listener-{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self._id,
                                          clean_session=False) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for m in client.messages:
                        assert isinstance(m.payload, bytes)
                        self.messages.append((str(m.topic), json.loads(m.payload),
                                              bool(m.retain)))
            except aiomqtt.MqttError:
                self.ready.clear()
                await asyncio.sleep(0.1)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [p for _, p, _ in self.messages
                if p["event"] != "status" and (name is None or p["event"] == name)]

    async def __aenter__(self) -> Listener:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


POLICY = parse_policy("""
queues:
  billing: {skill: billing, ring_timeout_s: 1}
  tech: {skill: tech, ring_timeout_s: 1}
  general: {skill: general, max_wait: {after: 1, fallback: message}}
""")


@asynccontextmanager
async def center_on_pbx(tmp_path: Path, events: EventsConfig,
                        phones: dict[str, PhoneBehaviour]
                        ) -> AsyncIterator[tuple[SimPBX, Engine]]:
    """The engine with ``events`` on the PBX simulator: agents ``a<ext>`` on
    ``phones`` take billing and tech; nobody takes general (its callers go
    to the fallback after 1 s, unless they give up first)."""
    agents = tuple(AgentProfile(f"a{ext}", ext, name=f"坐席{ext}",
                                skills={"billing": 5, "tech": 5}) for ext in phones)
    cfg = EngineConfig(
        core=CoreConfig(policy=POLICY, agents=agents, wrap_up_s=0.05, rona_pause_s=60),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), events=events)
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        yield pbx, engine


async def place_calls(pbx: SimPBX, n: int, seed: int) -> list[CallResult]:
    """``n`` callers over about a second: billing, tech, self-service (IVR)
    and general (fallback), some impatient, some hanging up in the IVR."""
    rng = random.Random(seed)
    handles = []
    for i in range(n):
        key = rng.choice(["1", "1", "2", "2", "3", "0"])
        handles.append(await pbx.place_call(CallerScript(
            number=f"1380013{i:04d}", name="张三" if i % 3 == 0 else "",
            keys=["", key], key_delay_s=0.02, patience_s=rng.uniform(0.3, 3.0),
            hangup_after_s=0.05 if i % 17 == 0 else None)))
        await asyncio.sleep(rng.uniform(0, 0.03))
    return [await asyncio.wait_for(h.done, 30) for h in handles]


async def until(cond: Callable[[], bool], timeout: float = 10) -> bool:
    async def check() -> bool:
        return cond()
    return await wait_for(check, timeout)


async def records(engine: Engine, n: int) -> dict[str, dict[str, Any]]:
    async def written() -> bool:
        return engine.counters.calls_finished >= n
    assert await wait_for(written, 15)
    await engine.writer.drain()
    return {r["call_id"]: r for r in await engine.db.calls()}


async def test_the_events_of_a_stretch_of_calls_reconcile_with_the_call_records(
        mqtt_broker: Broker, tmp_path: Path) -> None:
    phones = {str(1001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.2) for i in range(5)}
    phones["1009"] = PhoneBehaviour(answers=False)  # rings out: offered again elsewhere
    n = 60
    events = EventsConfig(port=mqtt_broker.port, queue_every_s=0.2)
    async with Listener(mqtt_broker.port) as listener:
        async with center_on_pbx(tmp_path, events, phones) as (pbx, engine):
            bus = engine.events
            assert bus is not None
            assert await until(lambda: bus.connected, 10)
            results = await place_calls(pbx, n, seed=11)
            recs = await records(engine, n)

            async def all_ended() -> bool:
                return len(listener.events("call.ended")) >= n
            assert await wait_for(all_ended, 15), len(listener.events("call.ended"))
            assert engine.counters.errors == 0 and bus.errors == 0 and bus.dropped == 0
        # stopped: what was queued went out, then "offline"; nothing changes any more
        run, last_seq = bus.run_id, bus.seq
        final_states = {a.agent_id: a.state.value for a in engine.core.agents()}

        async def offline() -> bool:
            return any(p["event"] == "status" and p["state"] == "offline"
                       for _, p, _ in listener.messages)
        assert await wait_for(offline, 5)

    # the simulator's calls, the database's records and the events agree
    assert set(recs) == {r.uniqueid for r in results}
    ended = listener.events("call.ended")
    assert Counter(p["call_id"] for p in ended) == Counter(list(recs))  # exactly one each
    for p in ended:
        rec = recs[p["call_id"]]
        assert p["outcome"] == rec["outcome"]
        assert (p["agent_id"], p["queue"], p["offers"], p["pbx"], p["caller"]) == \
            (rec["agent_id"], rec["queue"], rec["offers"], rec["server"], rec["caller"])
        assert p["wait_s"] == pytest.approx(rec["wait_s"]) if rec["wait_s"] is not None \
            else p["wait_s"] is None
        assert p["talk_s"] == pytest.approx(rec["talk_s"]) if rec["talk_s"] is not None \
            else p["talk_s"] is None
        assert p["ivr_path"] == (rec["ivr_path"].split(">") if rec["ivr_path"] else [])
    outcomes = Counter(r["outcome"] for r in recs.values())
    assert outcomes["answered"] > 10 and outcomes["ivr"] > 0 and outcomes["fallback"] > 0 \
        and outcomes["abandoned"] > 0, outcomes

    # one run, every seq from 1 to the last exactly once: no gap, no duplicate
    evs = listener.events()
    assert {p["run"] for p in evs} == {run}
    assert sorted(p["seq"] for p in evs) == list(range(1, last_seq + 1))
    assert [p["seq"] for p in evs] == sorted(p["seq"] for p in evs)  # and in order

    # per call: the kinds in their order, and what they say matches the record
    kinds: dict[str, list[str]] = defaultdict(list)
    for p in evs:
        if p["event"].startswith("call."):
            kinds[p["call_id"]].append(p["event"].removeprefix("call."))
    assert set(kinds) == set(recs)
    for call_id, got in kinds.items():
        rec = recs[call_id]
        assert got[0] == "started" and got[-1] == "ended", got
        if rec["outcome"] == "answered":
            assert got.count("answered") == 1 and got.count("queued") == 1
            assert got.index("queued") < got.index("offered") < got.index("answered")
        else:
            assert "answered" not in got
        assert ("fallback" in got) == (rec["outcome"] == "fallback")
        assert got.count("offered") == rec["offers"]
    answered = {p["call_id"]: p for p in listener.events("call.answered")}
    assert {c: p["agent_id"] for c, p in answered.items()} == \
        {c: r["agent_id"] for c, r in recs.items() if r["outcome"] == "answered"}
    assert any(got.count("offered") > 1 for got in kinds.values())  # 1009 rang out
    started = {p["call_id"]: p for p in listener.events("call.started")}
    assert all(started[c]["caller"] == r["caller"] for c, r in recs.items())
    assert any(p["caller_name"] == "张三" for p in started.values())

    # agents: the last state of each is the engine's at the end; 1009 was paused
    last: dict[str, dict[str, Any]] = {}
    for p in listener.events("agent.state"):
        last[p["agent_id"]] = p
    assert {a: p["new"] for a, p in last.items()} == final_states
    assert any(p["new"] == "paused" and p["reason"] == "offer NOANSWER"
               for p in listener.events("agent.state") if p["agent_id"] == "a1009")

    # queue snapshots came, for every queue
    snaps = listener.events("queue.snapshot")
    assert {p["queue"] for p in snaps} == {"billing", "tech", "general"}
    assert any(p["waiting"] > 0 for p in snaps)

    # every payload is what the AsyncAPI document says
    for _, p, _ in listener.messages:
        conforms(p)
    status = [p["state"] for _, p, _ in listener.messages if p["event"] == "status"]
    assert status == ["online", "offline"]
    offline_msg = next(p for _, p, _ in listener.messages if p.get("state") == "offline")
    assert offline_msg["last_seq"] == last_seq


async def test_with_no_broker_the_engine_serves_and_stops_in_time(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    events = EventsConfig(port=closed, queue_limit=25, queue_every_s=0.1)
    stopping = time.monotonic()
    async with center_on_pbx(tmp_path, events, phones) as (pbx, engine):
        bus = engine.events
        assert bus is not None
        results = await place_calls(pbx, 12, seed=3)
        recs = await records(engine, 12)
        assert set(recs) == {r.uniqueid for r in results}
        assert engine.counters.errors == 0
        assert not bus.connected and bus.published == 0
        # more than the limit came: the oldest were dropped and counted
        assert bus.queued + (bus.link.holding if bus.link else 0) <= 25
        assert bus.dropped > 0 and bus.seq == bus.dropped + bus.queued + \
            (bus.link.holding if bus.link else 0)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3.0  # engine.stop(), the simulator's stop with it


async def test_a_broker_that_stops_acknowledging_does_not_hold_up_the_engine(
        tmp_path: Path) -> None:
    """A "broker" that accepts the connection (CONNACK) and then never
    acknowledges a publish: the engine serves on, stop() returns in time."""
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1024)  # CONNECT
            writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
            await writer.drain()
            while await reader.read(65536):
                pass  # PUBLISHes, never a PUBACK
        finally:
            writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
        events = EventsConfig(port=port, publish_timeout_s=30, queue_every_s=0)
        async with center_on_pbx(tmp_path, events, phones) as (pbx, engine):
            bus = engine.events
            assert bus is not None
            assert await until(lambda: bus.connected, 10)
            results = await place_calls(pbx, 4, seed=5)
            recs = await records(engine, 4)
            assert set(recs) == {r.uniqueid for r in results}
            assert bus.published == 0 and bus.queued > 0  # none acknowledged
            stopping = time.monotonic()
        # flush_s (2 s) for what is queued, then the publisher is cancelled
        assert time.monotonic() - stopping < 2 + 2 * 1.0 + 1.0
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.slow  # the broker is away for 2 s, and the publisher's backoff
async def test_events_held_while_the_broker_restarts_arrive_in_order_without_gaps(
        mqtt_broker: Broker, tmp_path: Path) -> None:
    phones = {str(1001 + i): PhoneBehaviour(answer_after_s=0.05, talk_s=0.1) for i in range(3)}
    events = replace(EventsConfig(port=mqtt_broker.port, queue_every_s=0), reconnect_max_s=1.0)
    async with Listener(mqtt_broker.port) as listener, \
            center_on_pbx(tmp_path, events, phones) as (pbx, engine):
        bus = engine.events
        assert bus is not None
        assert await until(lambda: bus.connected, 10)
        first = await place_calls(pbx, 5, seed=1)
        mqtt_broker.stop()
        second = await place_calls(pbx, 10, seed=2)  # the broker is away meanwhile
        recs = await records(engine, 15)
        assert bus.published < bus.seq
        await asyncio.sleep(1.0)
        mqtt_broker.start()

        async def all_ended() -> bool:
            return len(listener.events("call.ended")) >= 15
        assert await wait_for(all_ended, 20)
        assert await until(lambda: bus.published >= bus.seq, 10)
        assert bus.link is not None and bus.link.connects == 2 and bus.dropped == 0
    assert {p["call_id"] for p in listener.events("call.ended")} == \
        set(recs) == {r.uniqueid for r in first + second}
    seqs = [p["seq"] for p in listener.events()]
    assert sorted(set(seqs)) == list(range(1, bus.seq + 1))  # no gap (QoS 1: maybe twice)


async def test_an_engine_that_vanishes_leaves_lost_on_the_status_topic(
        mqtt_broker: Broker) -> None:
    """Killed, no goodbye: the broker publishes the will."""
    script = (
        "import asyncio\n"
        "from acd.runtime.event_bus import EventBus, EventsConfig\n"
        "async def main() -> None:\n"
        f"    bus = EventBus(EventsConfig(port={mqtt_broker.port}), 'pbx7')\n"
        "    await bus.start()\n"
        "    while not bus.connected:\n"
        "        await asyncio.sleep(0.02)\n"
        "    print(bus.run_id, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n")
    async with Listener(mqtt_broker.port, "acd/pbx7/status") as listener:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            run = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
            assert await until(lambda: [p["state"] for _, p, _ in listener.messages] ==
                               ["online"])
        finally:
            proc.kill()
            await proc.wait()
        assert await until(lambda: len(listener.messages) == 2, 10)
    [(topic, online, _), (_, lost, _)] = listener.messages
    assert topic == "acd/pbx7/status"
    assert (online["state"], lost["state"], online["run"], lost["run"]) == \
        ("online", "lost", run, run)
    conforms(lost)
