"""SMS over a real Mosquitto broker: delivered once, none lost, none doubled,
through a broker outage; receipts and STOP replies over MQTT; and an
abandoned call through the whole engine yields exactly one SMS."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aiomqtt
import pytest
from helpers import SECRET, db_url, engine_on_pbx, wait_for
from mqtt_broker import Broker

from acd.adapters.sms_mqtt import MqttConfig, MqttTransport
from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database
from acd.core.model import CallRecord, Outcome
from acd.runtime.sms_sender import SenderConfig, SmsSender
from acd.sms.policy import CallFacts, parse_sms_policy

# Every test takes conftest's ``mqtt_broker``: skipped, saying why, without Mosquitto.

BASIC_FLOW = Path(__file__).resolve().parent.parent / "ivr_flows" / "basic.yaml"
POLICY = parse_sms_policy("""
sender: "10086"
link: "https://m.example.cn/s/{token}"
cap: {per_number: 100, hours: 24}
templates:
  sorry: {zh: "抱歉让您久等，App自助办理：{link} 回复TD退订"}
rules:
  - {name: abandoned, when: {outcome: abandoned}, template: sorry}
""", "sms.yaml")


class PhoneGateway:
    """The SMS gateway on the other side of the broker: takes each SMS once
    (by its id, as docs/sms.md asks of a gateway), 'delivers' it and
    publishes a receipt."""

    def __init__(self, port: int, prefix: str = "acd") -> None:
        self.port, self.prefix = port, prefix
        self.raw: list[int] = []  # every publish seen, duplicates included
        self.phones: Counter[int] = Counter()  # what reached a phone
        self.texts: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.client: aiomqtt.Client | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="gateway",
                                          clean_session=False) as client:
                    self.client = client
                    await client.subscribe(f"{self.prefix}/sms/out", qos=1)
                    self.ready.set()
                    async for m in client.messages:
                        data = json.loads(m.payload)  # type: ignore[arg-type]
                        self.raw.append(data["id"])
                        if data["id"] not in self.phones:
                            self.phones[data["id"]] += 1
                            self.texts[data["id"]] = data["text"]
                        await client.publish(f"{self.prefix}/sms/receipt", json.dumps(
                            {"id": data["id"], "status": "DELIVRD"}), qos=1)
            except aiomqtt.MqttError:
                self.ready.clear()
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> PhoneGateway:
        self._task = asyncio.get_running_loop().create_task(self.run())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


def rec(i: int, t: float) -> tuple[CallRecord, CallFacts]:
    number = f"138{i:08d}"
    r = CallRecord(f"call-{i}", number, "", t - 60, t, Outcome.ABANDONED, (), "billing",
                   t - 50, 50.0, None, None, None, 0, "pbx1")
    return r, CallFacts(f"call-{i}", number, "", "abandoned", t, 50.0)


@asynccontextmanager
async def outbox(db: Database, port: int) -> AsyncIterator[tuple[SmsStore, SmsSender]]:
    """The outbox in ``db`` and its sender, running, over the broker on ``port``."""
    store = SmsStore(db)
    transport = MqttTransport(MqttConfig(port=port, client_id="engine-test",
                                         reconnect_max_s=1.0, publish_timeout_s=2))
    sender = SmsSender(store, transport, SenderConfig(poll_s=0.1, backoff_s=0.2,
                                                      backoff_max_s=1.0))
    await sender.start()
    try:
        yield store, sender
    finally:
        await sender.stop()


async def queue(db: Database, i: int) -> None:
    r, f = rec(i, time.time())
    pending = POLICY.decide(f)
    assert pending is not None
    await db.write_batch([r], [], [pending])


@pytest.mark.slow
async def test_broker_down_30s_then_back_every_sms_delivered_once(
        mqtt_broker: Broker, db: Database) -> None:
    broker = mqtt_broker
    async with PhoneGateway(broker.port) as gw, outbox(db, broker.port) as (store, sender):
        assert await sender.transport.wait_connected(10)  # type: ignore[attr-defined]
        for i in range(5):
            await queue(db, i)

        async def all_delivered(n: int) -> bool:
            return sum(r.state == "delivered" for r in await store.rows(limit=1000)) == n

        assert await wait_for(lambda: all_delivered(5), 15)
        broker.stop()
        outage = time.monotonic()
        for i in range(5, 25):  # calls keep ending while the broker is down
            await queue(db, i)
        await asyncio.sleep(30 - (time.monotonic() - outage))
        states = Counter(r.state for r in await store.rows(limit=1000))
        assert states == {"delivered": 5, "queued": 20}
        assert sender.stats.retries > 0
        broker.start()
        assert await wait_for(lambda: all_delivered(25), 30), \
            Counter(r.state for r in await store.rows(limit=1000))
        rows = await store.rows(limit=1000)
    ids = {r.id for r in rows}
    assert set(gw.phones) == ids and all(n == 1 for n in gw.phones.values())
    # the engine published each SMS once; had QoS 1 repeated one, the gateway's
    # id check would have kept it from the phone (see docs/sms.md)
    assert len(gw.raw) == len(set(gw.raw)) == 25
    assert all("回复TD退订" in t for t in gw.texts.values())


async def test_stop_reply_and_app_login_over_mqtt(mqtt_broker: Broker, db: Database) -> None:
    logins: list[str] = []
    async with PhoneGateway(mqtt_broker.port) as gw, \
            outbox(db, mqtt_broker.port) as (store, sender):
        transport = sender.transport
        assert isinstance(transport, MqttTransport)

        async def on_login(number: str) -> None:
            logins.append(number)
            await store.app_login(number, time.time())

        transport.on_app_login = on_login
        assert await transport.wait_connected(10)
        assert gw.client is not None
        await gw.client.publish("acd/sms/in", json.dumps(
            {"from": "+8613800000009", "text": "退订"}), qos=1)
        await gw.client.publish("acd/app/login", json.dumps({"number": "13800000001"}),
                                qos=1)
        await gw.client.publish("acd/sms/in", b"not json", qos=1)  # logged, ignored

        async def opted() -> bool:
            return [r["number"] for r in await store.opted_out()] == ["+8613800000009"]

        assert await wait_for(opted, 10)
        assert await wait_for(lambda: asyncio.sleep(0, bool(logins)), 10)
        await queue(db, 9)  # 13800000009: opted out
        row = await store.get("call-9")
        assert row is not None and (row.state, row.reason) == ("suppressed", "opted-out")
    assert logins == ["13800000001"]


async def test_an_abandoned_call_yields_exactly_one_sms(mqtt_broker: Broker,
                                                       tmp_path: Path) -> None:
    """Engine + PBX simulator + a real broker: the caller gives up in the queue."""
    from acd.adapters.ami import AmiConfig
    from acd.core.center import agents_for_queues
    from acd.core.model import CoreConfig
    from acd.core.policy import simple_policy
    from acd.ivr.load import load_flow
    from acd.runtime.settings import EngineConfig, SmsConfig
    from sim.config import CallerScript
    from sim.config import Outcome as SimOutcome

    flow = load_flow(BASIC_FLOW)
    policy = simple_policy({q: 5 for q in flow.queues})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents_for_queues({"a1": ("1001", ("billing",))}),
                        wrap_up_s=0.05),
        flow=flow, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), login_agents=False,
        sms=SmsConfig(POLICY, "mqtt", MqttConfig(port=mqtt_broker.port),
                      sender=SenderConfig(poll_s=0.1)))
    async with PhoneGateway(mqtt_broker.port) as gw, engine_on_pbx(cfg) as (pbx, engine):
        h = await pbx.place_call(CallerScript(number="13912345678", keys=["", "1"],
                                              patience_s=0.5, key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 15)
        assert res.outcome is SimOutcome.ABANDONED_HOLD

        async def delivered() -> bool:
            row = await engine.sms_store.get(res.uniqueid)
            return row is not None and row.state == "delivered"

        assert await wait_for(delivered, 15)
        await asyncio.sleep(0.5)  # anything more would have arrived by now
        rows = await engine.sms_store.rows()
        call = await engine.db.call(res.uniqueid)
    assert call is not None and call["outcome"] == "abandoned"
    assert [(r.call_id, r.number, r.rule) for r in rows] == [
        (res.uniqueid, "+8613912345678", "abandoned")]
    assert list(gw.phones.values()) == [1] and len(gw.raw) == 1
