"""SMS diversion: rules, the outbox (same transaction as the call record),
caps, quiet hours, opt-outs, the sender, and the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import SmsGateway, wait_for

from acd.adapters.sms_log import LogTransport
from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database
from acd.core.model import CallRecord, Outcome
from acd.runtime.sms_sender import SenderConfig, SmsSender
from acd.sms.policy import (
    CallFacts,
    SmsPolicyError,
    is_opt_out,
    load_sms_policy,
    parse_sms_policy,
)
from acd.sms.transport import InboundSms, OnInbound, OnReceipt

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_sms_policy(ROOT / "sms.example.yaml")
SH = dt.timezone(dt.timedelta(hours=8))


def at(hh: int, mm: int = 0, day: int = 23) -> float:
    return dt.datetime(2026, 11, day, hh, mm, tzinfo=SH).timestamp()


def facts(outcome: str = "abandoned", wait: float | None = 45, number: str = "13800138000",
          when: float | None = None, **kw: object) -> CallFacts:
    return CallFacts(call_id=str(kw.pop("call_id", "c1")), caller=number, caller_name="王芳",
                     outcome=outcome, ended_at=when or at(10), wait_s=wait,
                     **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------- rules


def test_rules_pick_one_template_per_call() -> None:
    p = POLICY.decide(facts(), token="tok1")
    assert p is not None and p.rule == "abandoned" and p.template == "sorry_wait"
    assert p.text == "抱歉让您久等。您关心的问题可在App自助办理，无需排队：" \
                     "https://m.example.cn/s/tok1 回复TD退订"
    assert p.send_after == p.created_at and p.suppressed is None
    # too short a wait: no rule
    assert POLICY.decide(facts(wait=10)) is None
    # left the IVR at a listed node; elsewhere nothing
    p = POLICY.decide(facts("ivr", None, ivr_path=("hours", "welcome", "main_menu")))
    assert p is not None and p.rule == "left_ivr"
    assert POLICY.decide(facts("ivr", None, ivr_path=("hours", "welcome"))) is None
    # served for an intent
    p = POLICY.decide(facts("answered", 5, intent="billing"))
    assert p is not None and p.rule == "billing_served"
    assert POLICY.decide(facts("answered", 5, intent="tech")) is None
    # an IVR sms node wins over the rules
    p = POLICY.decide(facts(marks=("balance_app_link",)))
    assert p is not None and p.rule == "ivr:balance_app_link"


def test_language_caller_name_and_fallback() -> None:
    p = POLICY.decide(facts("ivr", None, ivr_path=("main_menu",), language="yue"), "t")
    assert p is not None and p.language == "yue" and p.text.startswith("王芳你好")
    p = POLICY.decide(facts(language="nan"), "t")  # no Minnan text: the default language
    assert p is not None and p.language == "zh"


def test_quiet_hours_defer_to_the_morning() -> None:
    p = POLICY.decide(facts(when=at(23, 30)))
    assert p is not None
    assert p.send_after == at(8, 0, day=24) and p.created_at == at(23, 30)
    p = POLICY.decide(facts(when=at(6, 15)))
    assert p is not None and p.send_after == at(8, 0)
    p = POLICY.decide(facts(when=at(20, 59)))
    assert p is not None and p.send_after == p.created_at


def test_numbers() -> None:
    # the SMS is keyed by the caller's one number, whatever form the caller id has
    for form in ("+86 138-0013-8000", "008613800138000", "8613800138000", "13800138000"):
        p = POLICY.decide(facts(number=form))
        assert p is not None and p.number == "+8613800138000" and p.suppressed is None
    # mobile_pattern sees the national number
    assert POLICY.is_mobile("8613800138000") and POLICY.is_mobile("+8613800138000")
    assert not POLICY.is_mobile("02088886666") and not POLICY.is_mobile("anonymous")
    # a foreign number is not taken for a Chinese mobile (1 650... looks like one)
    assert not POLICY.is_mobile("+16502530000")
    p = POLICY.decide(facts(number="02088886666"))
    assert p is not None and p.suppressed == "not-mobile" and p.number == "+862088886666"
    # another configured country: China's national forms are not read as such
    # (a country without a numbering plan in acd.core.numbers keeps its
    # national forms as written; E.164 forms are one number)
    uk = parse_sms_policy("templates: {a: {en: x}}\nrules: [{name: r, when: {}, template: a}]\n"
                          "mobile_pattern: '00447[0-9]{9}'\n", country="44")
    p = uk.decide(facts(number="0044 7911 123456"))
    assert p is not None and p.number == "+447911123456" and p.suppressed is None
    p = uk.decide(facts(number="13800138000"))
    assert p is not None and p.number == "13800138000" and p.suppressed == "not-mobile"
    for word in ("STOP", "stop", " TD ", "退订", "td。"):
        assert is_opt_out(word)
    assert not is_opt_out("STOP charging me twice")


def test_a_withheld_caller_gets_no_sms_whatever_the_pattern() -> None:
    # anonymous, unknown, Restricted... are not phone numbers: not-mobile, as
    # before, even under a pattern that would match the word
    loose = parse_sms_policy("templates: {a: {zh: x}}\nrules: [{name: r, when: {}, "
                             "template: a}]\nmobile_pattern: '.*'\n")
    for caller in ("anonymous", "unknown", "Restricted", "Private", ""):
        for policy in (POLICY, loose):
            p = policy.decide(facts(number=caller))
            assert p is not None and p.suppressed == "not-mobile", (caller, policy.file)
    p = loose.decide(facts(number="013800138000"))  # a number: the pattern decides
    assert p is not None and p.suppressed is None and p.number == "+8613800138000"


@pytest.mark.parametrize("text,line,words", [
    ("templates: {}\n", 1, "templates is empty"),
    ("templates: {a: {zh: 'x {link}'}}\n", 1, "uses {link} but the file sets no link"),
    ("link: http://x/\ntemplates: {a: {zh: x}}\n", 1, "link must contain {token}"),
    ("templates: {a: {zh: '{name}'}}\n", 1, "unknown name {name}"),
    ("templates: {a: {zh: x}}\nrules:\n  - {name: r, when: {outcome: lost}, template: a}\n",
     3, "outcome 'lost' is not one of"),
    ("templates: {a: {zh: x}}\nrules:\n  - {name: r, when: {}, template: b}\n", 3,
     "unknown template 'b'"),
    ("templates: {a: {zh: x}}\nquiet_hours: {from: '25:00', to: '08:00', timezone: UTC}\n",
     2, "'25:00' is not a time"),
    ("templates: {a: {zh: x}}\nquiet_hours: {from: '21:00', to: '08:00', timezone: Mars}\n",
     2, "unknown time zone 'Mars'"),
    ("templates: {a: {zh: x}}\nrules:\n  - {name: r, when: {last_node: [nope]}, "
     "template: a}\n", 3, "last_node 'nope' is not a node of the flow"),
    ("templates: {a: {zh: x}}\nmobile_pattern: '1[3-9'\n", 2, "not a valid regular"),
])
def test_bad_policy_files(text: str, line: int, words: str) -> None:
    with pytest.raises(SmsPolicyError) as info:
        parse_sms_policy(text, "sms.yaml", known_nodes=["main_menu"])
    assert info.value.line == line and words in str(info.value)


# -------------------------------------------------------------------- outbox


def record(call_id: str, number: str = "13800138000", outcome: Outcome = Outcome.ABANDONED,
           ended: float | None = None, started: float | None = None) -> CallRecord:
    end = ended or at(10)
    return CallRecord(call_id, number, "王芳", started or end - 60, end, outcome, (), "billing",
                      end - 50, 50.0, None, None, None, 0, "pbx1")


async def queue_call(db: Database, call_id: str, number: str = "13800138000",
                     ended: float | None = None) -> None:
    rec = record(call_id, number, ended=ended)
    pending = POLICY.decide(facts(call_id=call_id, number=number, when=rec.ended_at))
    assert pending is not None
    await db.write_batch([rec], [], [pending])


async def test_the_sms_is_written_with_its_call_record_or_not_at_all(db: Database) -> None:
    store = SmsStore(db)
    await queue_call(db, "c1")
    row = await store.get("c1")
    assert row is not None and row.state == "queued" and row.number == "+8613800138000"
    assert row.to == "13800138000"  # the gateway gets the national form
    # the same call again (a duplicate record): the whole transaction is refused,
    # so there is no second SMS either
    with pytest.raises(Exception, match=r"(?i)unique"):
        await queue_call(db, "c1")
    assert len(await store.rows()) == 1


async def test_cap_and_opt_out_suppress_with_a_reason(db: Database) -> None:
    store = SmsStore(db)
    await queue_call(db, "c1", ended=at(10))
    await queue_call(db, "c2", ended=at(18))            # same number, 8 h later: capped
    await queue_call(db, "c3", ended=at(10, 30, day=24))  # 24.5 h later: allowed again
    assert [(r.call_id, r.state, r.reason) for r in reversed(await store.rows())] == [
        ("c1", "queued", ""), ("c2", "suppressed", "cap: 1 in 24 h"), ("c3", "queued", "")]
    await store.opt_out("13900000000", "cli", at(9))
    await queue_call(db, "c4", number="13900000000")
    row = await store.get("c4")
    assert row is not None and (row.state, row.reason) == ("suppressed", "opted-out")
    # opting out also suppresses what is still queued for the number
    await store.opt_out("13800138000", "reply", at(11))
    row = await store.get("c3")
    assert row is not None and (row.state, row.reason) == ("suppressed", "opted-out")


async def test_cap_counts_every_form_of_a_number_as_one(db: Database) -> None:
    store = SmsStore(db)
    await queue_call(db, "c1", number="+8613800138000", ended=at(10))
    await queue_call(db, "c2", number="13800138000", ended=at(11))
    await queue_call(db, "c3", number="008613800138000", ended=at(12))
    assert [(r.call_id, r.state, r.reason) for r in reversed(await store.rows())] == [
        ("c1", "queued", ""), ("c2", "suppressed", "cap: 1 in 24 h"),
        ("c3", "suppressed", "cap: 1 in 24 h")]
    assert {r.number for r in await store.rows()} == {"+8613800138000"}


async def test_opt_outs_in_any_form_and_rows_written_before_normalising(db: Database) -> None:
    from acd.adapters.sms_store import sms_optout, sms_outbox

    store = SmsStore(db)
    assert await store.opt_out("138 0013 8000", "cli", at(9))
    assert not await store.opt_out("008613800138000", "reply", at(9))  # already there
    await queue_call(db, "c1", number="8613800138000")
    row = await store.get("c1")
    assert row is not None and row.reason == "opted-out"
    assert await store.opt_in("+8613800138000")
    assert await store.opted_out() == []
    # an opt-out and an SMS stored by an older version (national form)
    async with db.engine.begin() as conn:
        await conn.execute(sms_optout.insert().values(
            number="13900000000", at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), source="reply"))
        await conn.execute(sms_outbox.insert().values(
            call_id="old", number="13700000000", rule="r", template="t", language="zh",
            text="x", token="old-token", state="sent", reason="",
            created_at=dt.datetime.fromtimestamp(at(9), dt.UTC),
            send_after=dt.datetime.fromtimestamp(at(9), dt.UTC),
            next_attempt_at=dt.datetime.fromtimestamp(at(9), dt.UTC)))
    await queue_call(db, "c2", number="+8613900000000")
    row = await store.get("c2")
    assert row is not None and row.reason == "opted-out"  # the old opt-out holds
    await queue_call(db, "c3", number="+8613700000000")
    row = await store.get("c3")
    assert row is not None and row.reason == "cap: 1 in 24 h"  # the old SMS counts
    assert await store.opt_in("+86 139 0000 0000")  # removes the old row too
    assert await store.opted_out() == []


async def test_a_mobile_behind_the_trunk_0_is_the_mobile_for_cap_and_opt_out(
        db: Database) -> None:
    """Some PBXs give a mobile's caller id with the trunk 0 (013800138000);
    an older version stored that as it came: its opt-out and SMS still count."""
    from acd.adapters.sms_store import sms_optout, sms_outbox

    store = SmsStore(db)
    when = dt.datetime.fromtimestamp(at(9), dt.UTC)
    async with db.engine.begin() as conn:
        await conn.execute(sms_optout.insert().values(
            number="013900000000", at=when, source="reply"))
        await conn.execute(sms_outbox.insert().values(
            call_id="old", number="013700000000", rule="r", template="t", language="zh",
            text="x", token="old-token", state="sent", reason="", created_at=when,
            send_after=when, next_attempt_at=when))
    await queue_call(db, "c1", number="13900000000")
    row = await store.get("c1")
    assert row is not None and row.reason == "opted-out"
    await queue_call(db, "c2", number="+8613700000000")
    row = await store.get("c2")
    assert row is not None and row.reason == "cap: 1 in 24 h"
    # and a call from 013800138000 is capped by an SMS to 13800138000
    await queue_call(db, "c3", number="13800138000", ended=at(10))
    await queue_call(db, "c4", number="013800138000", ended=at(11))
    row = await store.get("c4")
    assert row is not None and (row.number, row.reason) == ("+8613800138000", "cap: 1 in 24 h")


async def test_sender_retries_with_backoff_and_defers_quiet_hours(db: Database) -> None:
    store = SmsStore(db)
    now = [at(10)]
    gw = SmsGateway()
    sender = SmsSender(store, gw, SenderConfig(backoff_s=10), clock=lambda: now[0])
    await queue_call(db, "day", "13800000001", ended=at(10))
    await queue_call(db, "night", "13800000002", ended=at(23))  # deferred to 08:00
    gw.down = True
    await sender.send_due()
    row = await store.get("day")
    assert row is not None and row.state == "queued" and row.attempts == 1
    now[0] += 5  # within the backoff: not tried again
    await sender.send_due()
    assert (await store.get("day")).attempts == 1  # type: ignore[union-attr]
    gw.down = False
    now[0] += 6
    await sender.send_due()
    assert [m.to for m in gw.sent] == ["13800000001"]
    assert (await store.get("day")).state == "sent"  # type: ignore[union-attr]
    now[0] = at(7, 59, day=24)
    await sender.send_due()
    assert len(gw.sent) == 1  # still quiet hours
    now[0] = at(8, 0, day=24)
    await sender.send_due()
    assert [m.to for m in gw.sent] == ["13800000001", "13800000002"]
    # nothing is sent twice, however often the sender looks
    await sender.send_due()
    assert len(gw.sent) == 2


async def test_a_row_retried_for_days_waits_the_cap_not_an_overflow(db: Database) -> None:
    store = SmsStore(db)
    now = [at(10, 30)]
    gw = SmsGateway()
    sender = SmsSender(store, gw, SenderConfig(backoff_s=1.0, backoff_max_s=300.0,
                                               max_age_h=720), clock=lambda: now[0])
    await queue_call(db, "long", "13800000005", ended=at(10))
    row = await store.get("long")
    assert row is not None
    await store.mark_retry(row.id, "gateway down", now[0], 2000)  # about a week of retries
    gw.down = True
    await sender.send_due()
    row = await store.get("long")
    assert row is not None and row.state == "queued" and row.attempts == 2001
    gw.down = False
    now[0] += 299  # the wait is the cap
    await sender.send_due()
    assert gw.sent == []
    now[0] += 2
    await sender.send_due()
    assert [m.to for m in gw.sent] == ["13800000005"]


async def test_a_quiet_outbox_is_not_polled_and_a_queued_sms_wakes_the_sender(
        db: Database) -> None:
    """The sender reads the outbox when this process commits an SMS, when a
    queued row falls due, and otherwise only every ``idle_s``."""
    store = SmsStore(db)
    reads: list[float] = []
    due = store.due

    async def counted(now: float, limit: int = 100) -> Any:
        reads.append(time.monotonic())
        return await due(now, limit)

    store.due = counted  # type: ignore[method-assign]
    gw = SmsGateway()
    m0 = time.monotonic()

    def clock() -> float:  # 10:00 on a test day (outside quiet hours), running
        return at(10) + time.monotonic() - m0

    sender = SmsSender(store, gw, SenderConfig(poll_s=0.05, idle_s=30, backoff_s=0.6,
                                               backoff_max_s=0.6), clock=clock)
    await sender.start()
    try:
        await asyncio.sleep(1.0)
        assert len(reads) == 1  # once at start; polled every 50 ms it would be ~20
        t0 = time.monotonic()
        await queue_call(db, "c1", "13800000001", ended=clock())
        assert await wait_for(lambda: _sent(gw, 1), 10)
        assert time.monotonic() - t0 < 10  # woken: not after idle_s (30 s)
        # a retry is tried again when it falls due, not after idle_s
        gw.down = True
        await queue_call(db, "c2", "13800000002", ended=clock())
        assert await wait_for(lambda: _attempts(store, "c2", 1), 5)
        gw.down = False
        t1 = time.monotonic()
        assert await wait_for(lambda: _sent(gw, 2), 10)
        assert time.monotonic() - t1 < 10  # when its backoff ends, not after idle_s
        n = len(reads)
        await asyncio.sleep(1.0)
        assert len(reads) == n  # nothing queued: quiet again
    finally:
        await sender.stop()
    assert db.on_sms_written is None  # a stopped sender is not woken


async def _sent(gw: SmsGateway, n: int) -> bool:
    return len(gw.sent) == n


async def _attempts(store: SmsStore, call_id: str, n: int) -> bool:
    row = await store.get(call_id)
    return row is not None and row.attempts >= n


async def test_permanent_refusal_and_expiry_fail_with_a_reason(db: Database) -> None:
    store = SmsStore(db)
    now = [at(10)]
    gw = SmsGateway()
    gw.refuse.add("13800000003")
    sender = SmsSender(store, gw, SenderConfig(max_age_h=1), clock=lambda: now[0])
    await queue_call(db, "bad", "13800000003")
    await queue_call(db, "old", "13800000004", ended=at(8))
    await sender.send_due()
    assert (await store.get("bad")).reason == "refused: invalid destination"  # type: ignore[union-attr]
    row = await store.get("old")
    assert row is not None and row.state == "failed" and row.reason.startswith("expired")


class RepliedTo(LogTransport):
    """The log transport (every SMS delivered, with a receipt), and phones
    that reply: ``reply`` hands the sender an SMS from a phone, as a
    gateway's transport does."""

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        await super().start(on_receipt, on_inbound)
        self.on_inbound = on_inbound

    async def reply(self, number: str, text: str) -> None:
        await self.on_inbound(InboundSms(number, text))


async def test_receipts_and_stop_replies(db: Database) -> None:
    store = SmsStore(db)
    transport = RepliedTo()
    sender = SmsSender(store, transport, clock=lambda: at(10, 5))
    await sender.start()
    try:
        await queue_call(db, "c1")
        await sender.send_due()
        await transport.close()  # let the receipt land
        row = await store.get("c1")
        assert row is not None and row.state == "delivered"
        await transport.reply("+8613800138000", "TD")
        assert [r["number"] for r in await store.opted_out()] == ["+8613800138000"]
        assert sender.stats.opt_outs == 1
        # a STOP from another form of the number is the same number
        await transport.reply("8613800138000", "STOP")
        assert sender.stats.opt_outs == 1 and len(await store.opted_out()) == 1
    finally:
        await sender.stop()
