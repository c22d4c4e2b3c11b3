"""The outbox and sender over SMPP against the in-process SMSC: an abandoned
call yields exactly one SMS (Chinese, UCS-2, concatenated), its receipt marks
it delivered, a TD reply opts the number out."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from helpers import wait_for
from smsc import FakeSmsc

from acd.adapters.sms_smpp import SmppConfig, SmppTransport
from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database
from acd.core.model import CallRecord, Outcome
from acd.runtime.sms_sender import SenderConfig, SmsSender
from acd.sms.policy import CallFacts, PendingSms, parse_sms_policy

POLICY = parse_sms_policy("""
sender: "10086"
link: "https://m.example.cn/s/{token}"
templates:
  sorry:
    zh: >-
      {caller_name}您好，抱歉让您久等。话费、流量、账单、套餐变更、发票和积分兑换都可以在
      App里自助办理，无需排队等候人工服务，点击即可打开：{link}
      如需人工服务，请在工作时间再次拨打客服热线，我们会尽快为您服务。回复TD退订
rules:
  - {name: abandoned, when: {outcome: abandoned, min_wait_s: 20}, template: sorry}
""", "sms.yaml")


async def test_abandoned_call_one_sms_over_smpp_receipt_and_td_reply(db: Database) -> None:
    smsc = FakeSmsc(password="pw")
    await smsc.start()
    store = SmsStore(db)
    transport = SmppTransport(SmppConfig(host="127.0.0.1", port=smsc.port, system_id="acd",
                                         password="pw", dest_ton=0, reconnect_min_s=0.05,
                                         reconnect_max_s=0.2, liveness_check_s=0.1))
    sender = SmsSender(store, transport, SenderConfig(sender="10086", poll_s=0.05))
    await sender.start()
    try:
        assert await transport.wait_bound(5)
        t = time.time()
        rec = CallRecord("c1", "+8613900001111", "王芳", t - 90, t, Outcome.ABANDONED, (),
                         "billing", t - 80, 80.0, None, None, None, 0, "pbx1")
        pending = POLICY.decide(CallFacts("c1", rec.caller, "王芳", "abandoned", t, 80.0))
        assert pending is not None
        await db.write_batch([rec], [], [pending])
        parts = await smsc.wait_submits(3, timeout=10)
        assert {p.destination for p in parts} == {"13900001111"}
        assert all(p.data_coding == 0x08 for p in parts)
        text = b"".join(p.short_message[6:] for p in parts).decode("utf-16-be")
        assert text == pending.text and text.startswith("王芳您好")

        async def sent() -> bool:
            r = await store.get("c1")
            return r is not None and r.state == "sent" and r.message_id == parts[0].message_id

        assert await wait_for(sent)
        for p in parts:  # the SMSC reports each part delivered
            await smsc.deliver("13900001111", "10086",
                               f"id:{p.message_id} sub:001 dlvrd:001 submit date:2611231000 "
                               "done date:2611231000 stat:DELIVRD err:000 text:".encode(),
                               esm_class=0x04)

        async def delivered() -> bool:
            r = await store.get("c1")
            return r is not None and r.state == "delivered"

        assert await wait_for(delivered)
        # the caller replies TD (in UCS-2, as phones send Chinese)
        await smsc.deliver("8613900001111", "10086", "TD".encode("utf-16-be"), data_coding=8)

        async def opted() -> bool:
            return [r["number"] for r in await store.opted_out()] == ["+8613900001111"]

        assert await wait_for(opted)
        await asyncio.sleep(0.3)
        assert len(smsc.submits) == 3  # exactly one SMS (three parts), never resent
    finally:
        await sender.stop()
        await smsc.stop()


async def test_a_foreign_number_under_the_national_ton_fails_with_the_reason(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """dest_ton 2 (national) cannot carry +1 650...: the row is failed with a
    reason that says so (and the log says it), nothing reaches the SMSC, and
    the Chinese mobile queued after it still goes, in its national form."""
    smsc = FakeSmsc(password="pw")
    await smsc.start()
    store = SmsStore(db)
    transport = SmppTransport(SmppConfig(host="127.0.0.1", port=smsc.port, system_id="acd",
                                         password="pw", dest_ton=2, reconnect_min_s=0.05,
                                         reconnect_max_s=0.2, liveness_check_s=0.1))
    sender = SmsSender(store, transport, SenderConfig(sender="10086", poll_s=0.05))
    t = time.time()
    records, pending = [], []
    for call_id, number in (("us", "+1 650 253 0000"), ("cn", "013900001111")):
        records.append(CallRecord(call_id, number, "", t - 90, t, Outcome.ABANDONED, (),
                                  "billing", t - 80, 80.0, None, None, None, 0, "pbx1"))
        pending.append(PendingSms(call_id, store.identity(number), "abandoned", "sorry", "en",
                                  "hi", f"tok-{call_id}", t, t))
    await db.write_batch(records, [], pending)
    caplog.set_level(logging.WARNING, logger="acd.runtime.sms_sender")
    await sender.start()
    try:
        (part,) = await smsc.wait_submits(1, timeout=10)
        assert (part.destination, part.dest_ton) == ("13900001111", 2)

        async def failed() -> bool:
            r = await store.get("us")
            return r is not None and r.state == "failed"

        assert await wait_for(failed)
        row = await store.get("us")
        assert row is not None and row.reason.startswith(
            "refused: +16502530000 is a foreign number (country code 86); dest_ton 2")
        # logged, the number masked (logging: show_caller_data is off)
        assert any("+16*****0000 is a foreign number" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.WARNING)
        assert "16502530000" not in caplog.text
        await asyncio.sleep(0.2)
        assert len(smsc.submits) == 1  # never sent in a form the SMSC would misread
    finally:
        await sender.stop()
        await smsc.stop()
