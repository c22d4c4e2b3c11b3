"""`acd report sms` over a simulated day: the figures match what the
simulation did (sent, delivered, diversion, return within 24 h / 7 d)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import random
from pathlib import Path

from click.testing import CliRunner
from helpers import SmsGateway

from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database
from acd.core.model import CallRecord, Outcome
from acd.runtime.sms_sender import SenderConfig, SmsSender
from acd.sms.policy import CallFacts, PendingSms, load_sms_policy
from cli import main

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_sms_policy(ROOT / "sms.example.yaml")
SH = dt.timezone(dt.timedelta(hours=8))
DAY = dt.datetime(2026, 11, 23, tzinfo=SH)


async def simulate_day(db_url: str, seed: int = 3) -> dict[str, dict[str, int]]:
    """300 calls from 200 numbers over a day; returns the expected figures per rule."""
    rng = random.Random(seed)
    db = Database(db_url)
    await db.create()
    store = SmsStore(db)
    clock = [DAY.timestamp()]
    gw = SmsGateway()
    sender = SmsSender(store, gw, SenderConfig(), clock=lambda: clock[0])
    numbers = [f"139{i:08d}" for i in range(200)]
    calls = []
    for i in range(300):
        t = DAY.timestamp() + rng.uniform(8 * 3600, 23 * 3600)
        kind = rng.choice(["abandoned", "abandoned", "ivr", "answered"])
        calls.append((t, i, rng.choice(numbers), kind, rng.uniform(5, 200),
                      rng.choice(["main_menu", "goodbye"]), rng.choice(["billing", "tech"])))
    calls.sort()
    for t, i, number, kind, wait, node, intent in calls:
        clock[0] = t
        await sender.send_due()
        outcome = Outcome(kind)
        rec = CallRecord(f"c{i}", number, "", t - wait - 20, t, outcome,
                         ("welcome", node) if kind == "ivr" else ("welcome",), "billing",
                         t - wait, wait, "a1" if kind == "answered" else None, None,
                         30.0 if kind == "answered" else None, 1, "pbx1")
        pending = POLICY.decide(CallFacts(f"c{i}", number, "", kind, t, wait, rec.ivr_path,
                                          "billing", rec.agent_id, intent))
        await db.write_batch([rec], [], [pending] if pending else [])
    # the night passes: what quiet hours held back goes out at 08:00
    for h in range(24, 34):
        clock[0] = DAY.timestamp() + h * 3600
        await sender.send_due()
    rows = await store.rows(limit=10_000)
    expected: dict[str, dict[str, int]] = {}
    later_calls = []
    for r in rows:
        e = expected.setdefault(r.rule, dict.fromkeys(
            ("wanted", "suppressed", "sent", "delivered", "diverted", "back24", "back7"), 0))
        e["wanted"] += 1
        if r.state == "suppressed":
            e["suppressed"] += 1
            continue
        assert r.state == "sent", r
        e["sent"] += 1
        row = await store.get(r.call_id)
        assert row is not None
        sent_at = (await _sent_at(db, r.id))
        if rng.random() < 0.9:
            await store.mark_receipt(r.message_id or "", True, "DELIVRD", sent_at + 5)
            e["delivered"] += 1
        div = rng.random() < 0.3
        if div:
            if rng.random() < 0.5:
                assert await store.click(r.token, sent_at + rng.uniform(60, 3600)) == r.number
            else:  # the app reports the number in another form: the same number
                assert r.number.startswith("+86")
                await store.app_login("00" + r.number[1:], sent_at + rng.uniform(60, 6 * 86400))
        # return calls come with the caller id in the national form (the outbox
        # holds +86...): the report matches them as one number
        back = rng.random()
        if back < 0.15:
            later_calls.append((r.to, sent_at + rng.uniform(60, 86000)))
        elif back < 0.25:
            later_calls.append((r.to, sent_at + rng.uniform(2 * 86400, 6 * 86400)))
        elif back < 0.3:
            later_calls.append((r.to, sent_at + 10 * 86400))  # too late to count
        e["diverted"] += div
        e["back24"] += back < 0.15
        e["back7"] += back < 0.25
    # return calls are ordinary call records of the same numbers
    for j, (number, t) in enumerate(later_calls):
        await db.write_batch([CallRecord(f"r{j}", number, "", t, t + 30, Outcome.ANSWERED, (),
                                         "general", t, 1.0, "a2", t + 1, 29.0, 1, "pbx1")], [])
    await db.dispose()
    return expected


async def _sent_at(db: Database, sms_id: int) -> float:
    from sqlalchemy import select

    from acd.adapters.sms_store import sms_outbox
    async with db.engine.connect() as conn:
        t = (await conn.execute(select(sms_outbox.c.sent_at).where(
            sms_outbox.c.id == sms_id))).scalar_one()
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def test_report_over_a_simulated_day(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'day.db'}"
    expected = asyncio.run(simulate_day(url))
    assert set(expected) == {"abandoned", "left_ivr", "billing_served"}
    assert sum(e["suppressed"] for e in expected.values()) > 0  # the cap did its work
    r = CliRunner().invoke(main, ["report", "sms", "--db", url, "--by", "rule", "--csv", "-"])
    assert r.exit_code == 0, r.output
    got = {row["rule"]: row for row in csv.DictReader(io.StringIO(r.output))}
    for rule, e in expected.items():
        g = got[rule]
        assert int(g["wanted"]) == e["wanted"], rule
        assert int(g["suppressed"]) == e["suppressed"], rule
        assert int(g["sent"]) == e["sent"], rule
        assert int(g["delivered"]) == e["delivered"], rule
        assert int(g["diverted"]) == e["diverted"], rule
        # a number may have had two SMS (days apart) or return calls that count for
        # an earlier SMS as well: the report can only be >= the planted returns
        assert float(g["return_24h"]) >= round(e["back24"] / e["sent"], 4) - 1e-9, rule
        assert float(g["return_7d"]) >= round(e["back7"] / e["sent"], 4) - 1e-9, rule
        assert float(g["diversion"]) == round(e["diverted"] / e["sent"], 4), rule
    total = got["total"]
    assert int(total["sent"]) == sum(e["sent"] for e in expected.values())
    # the table names every figure
    r = CliRunner().invoke(main, ["report", "sms", "--db", url], env={"COLUMNS": "140"})
    assert r.exit_code == 0
    for word in ("sent", "deliv.", "diversion", "return 24h", "return 7d", "2026-11-23",
                 "left_ivr", f"{100 * e['diverted'] / e['sent']:.1f}%"):
        assert word in r.output
    r = CliRunner().invoke(main, ["report", "sms", "--db", url, "--since", "23-11-2026"])
    assert r.exit_code == 2 and "is not a date like" in r.output


def test_optout_cli_refuses_a_bad_number_and_keeps_the_list(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    r = CliRunner().invoke(main, ["sms", "optout", "add", "+86 138 0013 8000", "--db", url])
    assert r.exit_code == 0 and "+8613800138000: opted out" in r.output
    r = CliRunner().invoke(main, ["sms", "optout", "add", "008613800138000", "--db", url])
    assert r.exit_code == 0 and "+8613800138000: already opted out" in r.output
    r = CliRunner().invoke(main, ["sms", "optout", "add", "13900000000", "x", "--db", url])
    assert r.exit_code == 2 and "'x' is not a phone number" in r.output
    r = CliRunner().invoke(main, ["sms", "optout", "list", "--db", url])
    assert "13800138000" in r.output and "13900000000" not in r.output
    r = CliRunner().invoke(main, ["sms", "optout", "remove", "13800138000", "--db", url])
    assert r.exit_code == 0 and "removed" in r.output


def test_a_call_back_from_the_trunk_0_form_counts_as_a_return(tmp_path: Path) -> None:
    """Call records keep the caller id as the network gave it: a call-back
    from 013800138000 after an SMS to 13800138000 is a return of that number,
    and one from 16502530000 (another number here) is not one of +16502530000."""

    async def run() -> list[tuple[int, int, int]]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
        await db.create()
        store = SmsStore(db)
        t = DAY.timestamp() + 10 * 3600
        for i, number in enumerate(("13800138000", "+16502530000")):
            rec = CallRecord(f"c{i}", number, "", t - 60, t, Outcome.ABANDONED, (), "general",
                             t - 50, 50.0, None, None, None, 0, "pbx1")
            await db.write_batch([rec], [], [PendingSms(
                f"c{i}", store.identity(number), "abandoned", "sorry", "zh", "x", f"tok{i}",
                t, t)])
            row = await store.get(f"c{i}")
            assert row is not None and row.state == "queued"
            assert await store.mark_sent(row.id, f"m{i}", "log", t + 1, 1)
        for j, caller in enumerate(("013800138000", "16502530000")):  # 2 h later
            await db.write_batch([CallRecord(
                f"r{j}", caller, "", t + 7200, t + 7260, Outcome.ANSWERED, (), "general",
                t + 7200, 1.0, "a2", t + 7201, 59.0, 1, "pbx1")], [])
        rows = await store.report(tz="Asia/Shanghai")
        await db.dispose()
        return [(r.sent, r.returned_24h, r.returned_7d) for r in rows]

    assert asyncio.run(run()) == [(2, 1, 1)]
