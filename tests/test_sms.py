"""SMS diversion: rules, the outbox (same transaction as the call record),
caps, quiet hours, opt-outs, the sender, and the report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

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
    normalize_number,
    parse_sms_policy,
)
from acd.sms.transport import InboundSms, OutgoingSms, PermanentSmsError, TransportError

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
    assert normalize_number("+86 138-0013-8000") == "13800138000"
    assert normalize_number("008613800138000") == "13800138000"
    assert POLICY.is_mobile("8613800138000") and not POLICY.is_mobile("02088886666")
    p = POLICY.decide(facts(number="02088886666"))
    assert p is not None and p.suppressed == "not-mobile"
    for word in ("STOP", "stop", " TD ", "退订", "td。"):
        assert is_opt_out(word)
    assert not is_opt_out("STOP charging me twice")


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


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = Database(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await d.create()
    yield d
    await d.dispose()


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
    assert row is not None and row.state == "queued" and row.number == "13800138000"
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


class Gateway:
    """A transport that fails on demand."""

    name = "test"

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.sent: list[OutgoingSms] = []
        self.on_inbound = None

    async def start(self, on_receipt, on_inbound) -> None:  # type: ignore[no-untyped-def]
        self.on_receipt, self.on_inbound = on_receipt, on_inbound

    async def send(self, msg: OutgoingSms) -> str:
        if self.down:
            raise TransportError("gateway down")
        if msg.to in self.refuse:
            raise PermanentSmsError("invalid destination")
        self.sent.append(msg)
        return f"m{msg.sms_id}"

    async def close(self) -> None:
        pass


async def test_sender_retries_with_backoff_and_defers_quiet_hours(db: Database) -> None:
    store = SmsStore(db)
    now = [at(10)]
    gw = Gateway()
    sender = SmsSender(store, gw, SenderConfig(backoff_s=10), clock=lambda: now[0])
    await sender.transport.start(sender._on_receipt, sender._on_inbound)
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


async def test_permanent_refusal_and_expiry_fail_with_a_reason(db: Database) -> None:
    store = SmsStore(db)
    now = [at(10)]
    gw = Gateway()
    gw.refuse.add("13800000003")
    sender = SmsSender(store, gw, SenderConfig(max_age_h=1), clock=lambda: now[0])
    await queue_call(db, "bad", "13800000003")
    await queue_call(db, "old", "13800000004", ended=at(8))
    await sender.send_due()
    assert (await store.get("bad")).reason == "refused: invalid destination"  # type: ignore[union-attr]
    row = await store.get("old")
    assert row is not None and row.state == "failed" and row.reason.startswith("expired")


async def test_receipts_and_stop_replies(db: Database) -> None:
    store = SmsStore(db)
    transport = LogTransport()
    sender = SmsSender(store, transport, clock=lambda: at(10, 5))
    await sender.start()
    try:
        await queue_call(db, "c1")
        await sender.send_due()
        await transport.close()  # let the receipt land
        row = await store.get("c1")
        assert row is not None and row.state == "delivered"
        await sender._on_inbound(InboundSms("+8613800138000", "TD"))
        assert [r["number"] for r in await store.opted_out()] == ["13800138000"]
        assert sender.stats.opt_outs == 1
    finally:
        await sender.stop()
