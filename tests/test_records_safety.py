"""The record writer when rows or the database go wrong: bad rows of every
kind are written fitted (lengths, NUL, lone surrogates, numbers that are not
finite), a row the database refuses all the same goes to ``dead_letters``
(found by halving, not row by row) and the rest are written; an outage
spills to the local spool with memory bounded; ``stop()`` returns within its
bound whatever the database does (hung, unreachable, full), the spool holds
exactly what was not written, and the next start writes it once.

SQLite and PostgreSQL (127.0.0.1:5432, database ``test``: a schema of the
test's own; skipped when absent).  A hung or vanishing PostgreSQL is played
by a TCP relay that stops relaying or closes (:class:`Relay`); a full disk
by SQLite's ``max_page_count`` ("database or disk is full", SQLITE_FULL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL
from helpers import db_url, free_port, wait_for
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from acd.adapters import storage
from acd.adapters.rows import AgentStateRow, Item, LiveCallRow, from_json
from acd.adapters.schema import call_records, calls_live, fit_key
from acd.adapters.spool import Spool
from acd.adapters.storage import (
    Database,
    RecordsConfig,
    RecordWriter,
    classify,
    default_spool_dir,
    stored_id,
)
from acd.core.model import CallRecord, Candidate, Explanation, Outcome
from acd.runtime.settings import ConfigError, load_config
from acd.sms.policy import PendingSms

NOW = 1_790_000_000.0
NUMBER = "13912345678"  # a caller's number: never in a log line in clear
NAME = "Zhang\x00San"


def record(call_id: str, **fields: Any) -> CallRecord:
    r = CallRecord(call_id, NUMBER, "Zhang San", NOW, NOW + 30, Outcome.ANSWERED,
                   ("menu", "billing"), "billing", NOW + 1, 4.0, "a1001", NOW + 5, 25.0, 1,
                   "pbx1")
    for k, v in fields.items():
        setattr(r, k, v)
    return r


def live(call_id: str, **fields: Any) -> LiveCallRow:
    base: dict[str, Any] = dict(
        call_id=call_id, server="pbx1", channel="PJSIP/trunk-00000001", caller=NUMBER,
        caller_name="Zhang San", state="waiting", started_at=NOW, queue="billing",
        first_queue=None, queued_at=NOW + 1, priority=0, attributes=(("lang", "zh"),),
        ivr_path=("menu",), offers=0, offer_id=0, agent_id=None, answered_at=None,
        updated_at=NOW + 1)
    base.update(fields)
    return LiveCallRow(**base)


def explanation(call_id: str, **fields: Any) -> Explanation:
    e = Explanation(call_id, 1, "a1001", NOW + 2, "billing", "", 0, 2.0, ("base",),
                    "best score", (Candidate("a1001", 1.5, (("skill", 1.0),)),))
    for k, v in fields.items():
        setattr(e, k, v)
    return e


def sms(call_id: str, **fields: Any) -> PendingSms:
    p = PendingSms(call_id, "+86" + NUMBER, "missed", "sorry", "zh", "We missed you",
                   uuid.uuid4().hex[:16], NOW + 31, NOW + 31)
    return dataclasses.replace(p, **fields)


class CountingDatabase(Database):
    """The real database, counting the transactions the writer asks for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.transactions = 0

    async def write_items(self, items: Sequence[Item | None]) -> None:
        self.transactions += 1
        await super().write_items(items)


def on_schema(db: Database, schema: str) -> Database:
    @event.listens_for(db.engine.sync_engine, "connect")
    def _search_path(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()

    return db


@asynccontextmanager
async def _schema() -> AsyncIterator[str]:
    """A schema of the test's own in PostgreSQL's ``test`` (dropped after)."""
    schema = f"acd_rec_{uuid.uuid4().hex[:12]}"
    admin = Database(PG_URL)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    try:
        yield schema
    finally:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with _schema() as schema:
        yield schema


@pytest.fixture(params=["sqlite", "postgresql"])
async def anydb(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CountingDatabase]:
    """The engine's tables on SQLite, then on PostgreSQL (a schema of its own)."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            db = CountingDatabase(db_url(tmp_path))
        else:
            schema = await stack.enter_async_context(_schema())
            db = CountingDatabase(PG_URL)
            on_schema(db, schema)
        await db.create()
        try:
            yield db
        finally:
            await db.dispose()


def writer(db: Database, tmp_path: Path, **cfg: Any) -> RecordWriter:
    return RecordWriter(db, linger_s=0.01, config=RecordsConfig(
        spool_dir=str(tmp_path / "spool"), **cfg))


def spool_rows(directory: Path) -> list[dict[str, Any]]:
    """Every row waiting in the spool files of ``directory`` (from each
    header's ``done`` on)."""
    out = []
    for path in Spool.files(directory):
        data = path.read_bytes()
        head, _, _ = data.partition(b"\n")
        done = int(json.loads(head)["done"])
        out += [json.loads(line) for line in data[done:].splitlines() if line.strip()]
    return out


async def call_ids(db: Database) -> list[str]:
    return sorted(r["call_id"] for r in await db.calls())


# ------------------------------------------------------------ bad rows


async def test_bad_rows_of_every_kind_are_written_fitted(
        anydb: CountingDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    long_id = "1790000000." + "9" * 70  # 81 characters
    assert len(long_id) == 81
    caplog.set_level(logging.WARNING, logger="acd.adapters.storage")
    w = writer(anydb, tmp_path)
    w.start()
    w.put_live(live(long_id, caller_name=NAME, ivr_path=tuple(f"n{i}" for i in range(900))))
    w.put_agent_state(AgentStateRow("a1001", "paused", "lunch\x00" + "x" * 300, math.nan))
    bad = [
        record(long_id, caller_name=NAME),
        record("nul", caller_name=NAME, caller="139\x0012345678"),
        record("surrogate", caller_name="bad \udcff name", server="pbx\ud800"),
        record("path", ivr_path=tuple(f"node{i}" for i in range(2000))),
        record("nan", wait_s=math.nan, talk_s=math.inf, offers=2**40, priority=-(2**63),
               queued_at=math.nan, started_at=math.inf),
        record("typo", customer_class="x" * 500, queue="q" * 100, agent_id="a" * 90),
    ]
    for r in bad:
        w.put(r)
    w.put_explanation(explanation("nul", reason="r\x00" * 500, waited_s=math.nan,
                                  stage=("s\udcff",) * 400,
                                  candidates=tuple(Candidate(f"a{i}", math.nan, (("t", 1.0),))
                                                   for i in range(2000))))
    w.put_sms(sms(long_id, text="hi\x00" * 1500, number="+86" + "1" * 100))
    await asyncio.wait_for(w.drain(), 20)
    await w.stop(5)
    # every row written, none refused, none lost, each bad one fitted
    assert (w.written, w.dead_lettered, w.failed, w.pending) == (10, 0, 0, 0)
    assert w.fitted == 10
    assert len(await call_ids(anydb)) == 6
    rec = await anydb.call(long_id)  # looked up by the id the engine knows
    assert rec is not None and rec["call_id"] == stored_id(long_id) == fit_key(long_id, 64)
    assert len(rec["call_id"]) == 64 and rec["caller_name"] == "Zhang\ufffdSan"
    nul = await anydb.call("nul")
    assert nul is not None and nul["caller"] == "139\ufffd12345678"
    sur = await anydb.call("surrogate")
    assert sur is not None and sur["caller_name"] == "bad \ufffd name"
    path = await anydb.call("path")
    assert path is not None and 1000 < len(path["ivr_path"]) <= 1024
    assert path["ivr_path"].split(">")[-1].startswith("node")  # whole node names only
    nan = await anydb.call("nan")
    assert nan is not None and nan["wait_s"] is None and nan["talk_s"] is None
    assert nan["offers"] == 2**31 - 1 and nan["priority"] == -(2**31)
    typo = await anydb.call("typo")
    assert typo is not None and len(typo["customer_class"]) == 64
    assert typo["agent_id"] == fit_key("a" * 90, 64)
    # the recorded call's row in calls_live went with its record
    assert await anydb.live_calls() == []
    (agent,) = await anydb.agent_states()
    assert agent.since == 0.0 and len(agent.reason) == 128 and "\x00" not in agent.reason
    (ex,) = await anydb.explanations_for("nul")
    assert len(ex["stage"]) > 0 and ex["candidates"] and ex["candidates"][0]["score"] == 0.0
    assert ex["waited_s"] == 0.0
    # said once per kind, by field name; the caller's number and name never in clear
    assert "caller_name would be refused" in caplog.text
    assert NUMBER not in caplog.text and "Zhang" not in caplog.text


async def test_an_sms_with_nul_and_a_long_number_is_queued(anydb: CountingDatabase,
                                                           tmp_path: Path) -> None:
    from acd.adapters.sms_store import SmsStore

    w = writer(anydb, tmp_path)
    w.start()
    w.put(record("c1"))
    w.put_sms(sms("c1", text="hi\x00there", rule="r" * 200))
    await w.stop(5)
    assert (w.written, w.failed, w.dead_lettered) == (2, 0, 0)
    due = await SmsStore(anydb).due(NOW + 100)
    assert [d.text for d in due] == ["hi\ufffdthere"]
    # a gateway's error text with a NUL, a surrogate and no end: fitted too
    store = SmsStore(anydb)
    await store.mark_retry(due[0].id, "down\x00\ud800" + "x" * 1000, NOW + 200, 1)
    await store.mark_failed(due[0].id, "gave up\x00", 2)
    row = await store.get("c1")
    assert row is not None and row.state == "failed" and row.reason == "gave up\ufffd"


# ---------------------------------------------------- refused rows


async def _refuse_caller(db: Database, caller: str) -> None:
    """Make the database refuse records from ``caller`` (as a constraint of
    the operator's would)."""
    async with db.engine.begin() as conn:
        if db.url.startswith("sqlite"):
            await conn.execute(text(
                "CREATE TRIGGER no_evil BEFORE INSERT ON call_records "
                f"WHEN NEW.caller = '{caller}' BEGIN SELECT RAISE(ABORT, 'evil caller'); END"))
        else:
            await conn.execute(text(
                f"ALTER TABLE call_records ADD CONSTRAINT no_evil CHECK (caller <> '{caller}')"))


async def test_a_refused_row_goes_to_dead_letters_and_the_rest_are_written(
        anydb: CountingDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    evil = "13900000666"
    await _refuse_caller(anydb, evil)
    w = writer(anydb, tmp_path)
    caplog.set_level(logging.INFO, logger="acd.adapters.storage")
    # one batch of 500: three refused records among them
    for i in range(500):
        w.put(record(f"c{i:03d}", caller=evil if i in (7, 250, 499) else NUMBER))
    w.start()
    await asyncio.wait_for(w.drain(), 30)
    await w.stop(5)
    assert (w.written, w.dead_lettered, w.failed) == (497, 3, 0)
    assert len(await call_ids(anydb)) == 497
    dead = await anydb.dead_letters()
    assert sorted(d["ref"] for d in dead) == ["c007", "c250", "c499"]
    assert all(d["kind"] == "record" for d in dead)
    assert all("evil" in d["reason"] or "no_evil" in d["reason"] for d in dead)
    row = from_json(dead[0]["item"])  # the whole row, to write by hand
    assert isinstance(row, CallRecord) and row.caller == evil
    # found by halving: a few dozen transactions, not one per row
    assert anydb.transactions < 60, anydb.transactions
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and "c007" in refusals[0] and "(1 rows refused so far)" in refusals[0]
    assert evil not in caplog.text and NUMBER not in caplog.text


async def test_a_second_record_for_a_call_is_a_dead_letter_and_the_same_one_is_not(
        anydb: CountingDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    w = writer(anydb, tmp_path)
    w.start()
    w.put(record("c1"))
    await w.drain()
    w.put(record("c1"))  # the same record again (a write not known to have worked)
    w.put(record("c1", outcome=Outcome.ABANDONED, agent_id=None))  # a different one
    w.put(record("c2"))
    caplog.set_level(logging.ERROR, logger="acd.adapters.storage")
    await w.stop(5)
    assert (w.written, w.duplicates, w.dead_lettered, w.failed) == (2, 1, 1, 0)
    (dead,) = await anydb.dead_letters()
    assert dead["ref"] == "c1" and "a second record" in dead["reason"]
    assert "the database refused the record of call c1: it is a second record" in caplog.text
    assert (await anydb.call("c1") or {})["outcome"] == "answered"  # the first is kept


async def test_a_refused_record_takes_its_calls_live_row_with_it(anydb: CountingDatabase,
                                                                 tmp_path: Path) -> None:
    evil = "13900000666"
    await _refuse_caller(anydb, evil)
    w = writer(anydb, tmp_path)
    w.start()
    w.put_live(live("c1", caller=evil))
    await w.drain()
    assert [r.call_id for r in await anydb.live_calls()] == ["c1"]
    w.put(record("c1", caller=evil))
    await w.stop(5)
    assert w.dead_lettered == 1
    # accounted for by its dead letter: no later start writes a record from the row
    assert await anydb.live_calls() == []


def test_errors_are_told_apart() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("x")
            self.sqlstate = sqlstate

    def pg(state: str) -> DBAPIError:
        return DBAPIError("INSERT", {}, PgError(state))

    assert classify(pg("22001")) == "refused"  # value too long
    assert classify(pg("22021")) == "refused"  # NUL
    assert classify(pg("23505")) == "refused"  # duplicate key
    assert classify(pg("08006")) == "down"  # connection failure
    assert classify(pg("53100")) == "down"  # disk full
    assert classify(pg("57P01")) == "down"  # admin shutdown
    assert classify(pg("42P01")) == "down"  # table missing: every row would fail
    assert classify(IntegrityError("INSERT", {}, Exception("UNIQUE"))) == "refused"
    assert classify(OperationalError("INSERT", {}, Exception("database or disk is full"))) \
        == "down"
    assert classify(ConnectionRefusedError()) == "down"
    assert classify(TimeoutError()) == "down"
    assert classify(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")) == "refused"
    assert classify(RuntimeError("?")) == "unknown"


# -------------------------------------------------- outages and stops


class Relay:
    """A TCP relay to PostgreSQL that can hang (relays nothing: every query
    waits for ever) or go away (closes and refuses connections)."""

    def __init__(self, target: int = 5432) -> None:
        self.target = target
        self.port = free_port()
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/test"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        self._writers |= {w, uw}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    while self.frozen:
                        await asyncio.sleep(0.02)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(r, uw), pump(ur, w))


@pytest.fixture
async def relay(pg_schema: str) -> AsyncIterator[Relay]:
    r = Relay()
    await r.up()
    try:
        yield r
    finally:
        r.frozen = False
        await r.down()


@pytest.mark.slow
async def test_an_outage_spills_to_the_spool_and_everything_is_written_after(
        relay: Relay, pg_schema: str, tmp_path: Path) -> None:
    db = on_schema(Database(relay.url), pg_schema)
    await db.create()
    w = writer(db, tmp_path, spool_after_s=0.3, max_memory_items=100, write_timeout_s=2)
    w.start()
    for i in range(50):
        w.put(record(f"before{i}"))
    await asyncio.wait_for(w.drain(), 10)
    await relay.down()  # PostgreSQL unreachable
    peak = 0
    for i in range(3000):
        w.put(record(f"during{i}"))
        w.put_live(live(f"live{i}"))
        peak = max(peak, w.in_memory)
        if i % 50 == 0:
            await asyncio.sleep(0.01)
    async def spilled() -> bool:  # past spool_after_s memory goes to disk
        return not w.in_memory and w.spooled >= 5900

    await wait_for(spilled, 20)  # polled: a loaded machine may take longer
    assert w.failed == 0
    assert peak <= 400, peak  # bounded: max_memory_items, 4 x while a spool write runs
    assert w.in_memory == 0 and w.spooled >= 5900, (w.in_memory, w.spooled)
    assert w.spool_files and stat.S_IMODE(w.spool_files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(w.spool_dir.stat().st_mode) == 0o700
    await relay.up()  # back
    await asyncio.wait_for(w.drain(), 30)
    await w.stop(5)
    assert (w.written, w.dead_lettered, w.failed, w.spooled) == (6050, 0, 0, 0)
    assert len(await call_ids(db)) == 3050
    assert len(await db.live_calls()) == 3000
    assert Spool.files(w.spool_dir) == []  # emptied, then removed at stop
    await db.dispose()


async def _stop_in_bound(w: RecordWriter, bound: float) -> float:
    t0 = time.monotonic()
    await asyncio.wait_for(w.stop(bound), bound + 5)  # (the test's own guard)
    took = time.monotonic() - t0
    assert took <= bound + 0.3, took
    return took


async def _replay_writes_them_once(url: str, schema: str | None, tmp_path: Path,
                                   expected: int) -> RecordWriter:
    db = Database(url)
    if schema is not None:
        on_schema(db, schema)
    await db.create()
    try:
        w2 = writer(db, tmp_path)
        assert await w2.replay() == expected
        assert len(await call_ids(db)) == 200
        assert Spool.files(w2.spool_dir) == []
        # a copy of the file read again (a crash mid-replay): nothing twice
        return w2
    finally:
        await db.dispose()


async def test_stop_with_a_hung_database_returns_in_bound_and_the_next_start_writes_the_rest(
        relay: Relay, pg_schema: str, tmp_path: Path) -> None:
    db = on_schema(Database(relay.url), pg_schema)
    await db.create()
    w = writer(db, tmp_path)  # write_timeout_s 30: the hang outlasts the stop
    w.start()
    for i in range(100):
        w.put(record(f"c{i:03d}"))
    await asyncio.wait_for(w.drain(), 10)
    relay.frozen = True  # every query waits for ever
    for i in range(100, 200):
        w.put(record(f"c{i:03d}"))
    await asyncio.sleep(0.3)  # the writer is inside a write that never ends
    took = await _stop_in_bound(w, 2.0)
    assert (w.written, w.failed) == (100, 0)
    rows = spool_rows(w.spool_dir)  # exactly the rows not written
    assert sorted(r["v"]["call_id"] for r in rows) == [f"c{i:03d}" for i in range(100, 200)]
    assert w.spooled == w.pending == 100
    relay.frozen = False
    await db.dispose()
    # the next start: all 200 once
    saved = {p.name: p.read_bytes() for p in Spool.files(w.spool_dir)}
    w2 = await _replay_writes_them_once(relay.url, pg_schema, tmp_path, 100)
    assert (w2.written, w2.duplicates, w2.failed) == (100, 0, 0)
    for name, data in saved.items():  # read twice (a crash mid-replay): nothing twice
        (w.spool_dir / name).write_bytes(data)
    w3 = await _replay_writes_them_once(relay.url, pg_schema, tmp_path, 100)
    assert (w3.written, w3.duplicates) == (0, 100)
    print(f"\n[records] hung PostgreSQL: stop took {took:.2f} s (bound 2 s), 100 written, "
          f"100 spooled, replayed 100, 0 lost, 0 duplicated")


async def test_stop_with_an_unreachable_database_returns_in_bound(
        relay: Relay, pg_schema: str, tmp_path: Path) -> None:
    db = on_schema(Database(relay.url), pg_schema)
    await db.create()
    await relay.down()
    w = writer(db, tmp_path)
    w.start()
    for i in range(200):
        w.put(record(f"c{i:03d}"))
        w.put_agent_state(AgentStateRow("a1", "ready", "", NOW + i))
    await asyncio.sleep(0.5)
    await _stop_in_bound(w, 1.5)
    assert (w.written, w.failed, w.spooled, w.pending) == (0, 0, 400, 400)
    await db.dispose()
    await relay.up()
    w2 = await _replay_writes_them_once(relay.url, pg_schema, tmp_path, 400)
    assert w2.written == 400
    db = on_schema(Database(relay.url), pg_schema)
    try:
        (agent,) = await db.agent_states()
        assert agent.since == NOW + 199  # the latest state wins
    finally:
        await db.dispose()


async def test_sqlite_full_until_stop_spools_the_rest(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    db = Database(url)
    full = False

    @event.listens_for(db.engine.sync_engine, "checkout")
    def _full(dbapi_conn: Any, _rec: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA max_page_count = {1 if full else 1073741823}")
        cur.close()

    await db.create()
    w = writer(db, tmp_path, spool_after_s=0.2)
    w.start()
    for i in range(100):
        w.put(record(f"c{i:03d}"))
    await asyncio.wait_for(w.drain(), 10)
    full = True
    for i in range(100, 400):
        w.put(record(f"c{i:03d}", ivr_path=("x" * 500,)))
    async def spilled() -> bool:
        return not w.in_memory and w.spooled >= 300

    await wait_for(spilled, 20)  # polled: a loaded machine may take longer
    assert w.in_memory == 0 and w.spooled == 300  # spilled after spool_after_s
    await _stop_in_bound(w, 2.0)
    assert (w.written, w.failed, w.spooled) == (100, 0, 300)
    await db.dispose()
    db2 = Database(url)
    try:
        w2 = writer(db2, tmp_path)
        assert await w2.replay() == 300
        assert len(await call_ids(db2)) == 400
    finally:
        await db2.dispose()


async def test_disk_and_database_both_gone_memory_stays_bounded_and_losses_are_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    port = free_port()  # nothing listens: the database is unreachable
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    w = RecordWriter(db, linger_s=0.01, config=RecordsConfig(
        spool_dir=str(tmp_path / "not-a-dir" / "spool"), max_memory_items=100,
        spool_after_s=0))
    w.start()
    caplog.set_level(logging.ERROR, logger="acd.adapters.storage")
    peak = 0
    for i in range(1000):
        w.put(record(f"c{i:03d}"))
        peak = max(peak, w.in_memory)
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)
    assert peak <= 400, peak  # bounded: max_memory_items, 4 x while a spool write runs
    kept = w.in_memory
    assert kept <= 400 and w.failed == 1000 - w.pending and w.pending >= kept
    t0 = time.monotonic()
    await w.stop(1.0)
    assert time.monotonic() - t0 <= 1.3
    assert w.failed == 1000 and w.pending == 0  # nothing could keep them: each counted
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert lost and len(lost) <= 4  # said with a count, not once per row
    await db.dispose()


async def test_a_spool_line_that_is_not_a_row_is_skipped_and_counted(tmp_path: Path) -> None:
    db = Database(db_url(tmp_path))
    await db.create()
    w = writer(db, tmp_path)
    w._stopping = True  # (no task: straight to the spool, as a stop with no database)
    w._mem.extend([record("c1"), record("c2")])
    assert await w._spill()
    spool = w._spool
    assert spool is not None
    await asyncio.to_thread(spool.append, ['{"k": "record", "v": {"call_id": 3}}', "garbage"])
    spool.close()
    w2 = writer(db, tmp_path)
    assert await w2.replay() == 4
    assert (w2.written, w2.failed) == (2, 2)
    assert await call_ids(db) == ["c1", "c2"]
    await db.dispose()


async def test_a_spool_for_another_database_or_a_live_writer_is_left_alone(
        tmp_path: Path) -> None:
    a, b = Database(db_url(tmp_path, "a.db")), Database(db_url(tmp_path, "b.db"))
    for d in (a, b):
        await d.create()
    spool_dir = tmp_path / "spool"
    wa = writer(a, tmp_path)
    wa._mem.append(record("for-a"))
    assert await wa._spill()  # its file stays locked while wa lives
    wb = writer(b, tmp_path)
    assert await wb.replay() == 0  # a's file: another database
    wa2 = writer(a, tmp_path)
    assert await wa2.replay() == 0  # locked: its writer lives
    assert wa._spool is not None
    wa._spool.close()
    assert await wa2.replay() == 1
    assert await call_ids(a) == ["for-a"] and await call_ids(b) == []
    assert Spool.files(spool_dir) == []
    for d in (a, b):
        await d.dispose()


def test_the_default_spool_is_beside_a_sqlite_file(tmp_path: Path) -> None:
    assert default_spool_dir(db_url(tmp_path)) == tmp_path / "acd.db.spool"
    assert default_spool_dir(PG_URL) == Path("spool").absolute()


# --------------------------------------------------------------- settings

_BASE = """\
queues: [{name: billing}, {name: tech}, {name: general}]
flow: %s
""" % (Path(__file__).resolve().parent.parent / "ivr_flows" / "basic.yaml")


def test_records_settings(tmp_path: Path) -> None:
    path = tmp_path / "acd.yaml"
    path.write_text(_BASE + "records: {spool_dir: spool, spool_after_s: 5, "
                    "max_memory_items: 1000, write_timeout_s: 10}\n", encoding="utf-8")
    cfg = load_config(path).records
    assert cfg == RecordsConfig(str(tmp_path / "spool"), 5.0, 1000, 10.0)
    path.write_text(_BASE, encoding="utf-8")
    assert load_config(path).records == RecordsConfig()
    for bad, words in [("records: {max_memory_items: 1.5}", "records.max_memory_items: must "
                        "be a whole number from 100 to 10,000,000"),
                       ("records: {spool_after_s: -1}", "records.spool_after_s: must be a "
                        "number from 0 to 86400"),
                       ("records: {spool: x}", "records.spool: unknown key"),
                       ("records: 3", "records: must be a mapping")]:
        path.write_text(_BASE + bad + "\n", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert f"{path}:3:" in str(info.value) and words in str(info.value), str(info.value)


async def test_calls_live_rows_are_not_resurrected_by_an_old_spool(tmp_path: Path) -> None:
    """A spool read after newer rows were written (a standby wrote them)
    neither brings back a recorded call's row nor an older state."""
    db = Database(db_url(tmp_path))
    await db.create()
    w = writer(db, tmp_path)
    w._mem.extend([live("c1", updated_at=NOW), live("c2", updated_at=NOW),
                   AgentStateRow("a1", "paused", "old", NOW)])
    assert await w._spill()
    assert w._spool is not None
    w._spool.close()
    await db.write_batch([record("c1")], [], (), [live("c2", updated_at=NOW + 9)],
                         [AgentStateRow("a1", "ready", "", NOW + 9)])
    w2 = writer(db, tmp_path)
    assert await w2.replay() == 3
    assert w2.duplicates == 3 and w2.written == 0
    rows = {r.call_id: r for r in await db.live_calls()}
    assert list(rows) == ["c2"] and rows["c2"].updated_at == NOW + 9
    assert (await db.agent_states())[0].state == "ready"
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(calls_live.c.call_id))).all() == [("c2",)]
        assert len((await conn.execute(select(call_records.c.call_id))).all()) == 1
    await db.dispose()
    assert os.listdir(tmp_path / "spool") == []


_FULL_DISK = r"""
import json, os, resource, signal, sys
from pathlib import Path
from acd.adapters.spool import Spool
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
directory = Path(sys.argv[1])
spool = Spool.create(directory, "sqlite:/x.db")
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))  # the disk is full at 16 KiB
row = json.dumps({"k": "agent", "v": {"agent_id": "a1", "state": "ready", "reason": "x" * 900,
                                      "since": 1.0}})
ok = failed = 0
for i in range(40):
    try:
        spool.append([row, row])
        ok += 2
    except OSError:
        failed += 2
size = os.path.getsize(spool.path)
read = spool.peek(1000)
spool.close()
print(json.dumps({"ok": ok, "failed": failed, "size": size, "read": len(read),
                  "whole": all(r is not None for r in read)}))
"""


def test_a_spool_append_that_fills_the_disk_leaves_no_half_row(tmp_path: Path) -> None:
    """A real full disk for the spool file (the process's file size limit):
    the append that does not fit fails whole, the rows before it stay."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "spool")],
                         capture_output=True, text=True, timeout=30,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    got = json.loads(out.stdout)
    assert got["ok"] > 0 and got["failed"] > 0
    assert got["read"] == got["ok"] and got["whole"]  # every row kept reads back whole
    assert got["size"] <= 16384


# ------------------------------------------------ the writer's own faults


class ScriptedDatabase(Database):
    """SQLite underneath; ``write_items`` counted (``sizes``: rows per call),
    failing while ``down`` (the connection refused), then with each of
    ``failures`` in turn, then writing."""

    def __init__(self, url: str, failures: Sequence[Exception] = ()) -> None:
        super().__init__(url)
        self.down = False
        self.failures = list(failures)
        self.sizes: list[int] = []

    async def write_items(self, items: Sequence[Item | None]) -> None:
        self.sizes.append(sum(1 for i in items if i is not None))
        if self.down:
            raise refused_connection()
        if self.failures:
            raise self.failures.pop(0)
        await super().write_items(items)


def refused_connection() -> OperationalError:
    return OperationalError("INSERT INTO call_records ...", {},
                            ConnectionRefusedError(111, "Connection refused"))


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "RETRY_S", 0.01)
    monkeypatch.setattr(storage, "DISK_RETRY_S", 0.05)


async def test_stop_with_the_database_refusing_connections_tries_a_handful_of_times(
        tmp_path: Path) -> None:
    db = ScriptedDatabase(db_url(tmp_path))
    await db.create()
    db.down = True
    w = writer(db, tmp_path)
    w.start()
    for i in range(50):
        w.put(record(f"c{i:03d}"))
    await asyncio.sleep(0.3)
    tried = len(db.sizes)
    assert 1 <= tried <= 4  # backing off: 0.2 s, 0.4 s ...
    await _stop_in_bound(w, 1.0)
    assert len(db.sizes) - tried <= 2, len(db.sizes) - tried  # not a loop till the bound
    assert (w.written, w.failed, w.spooled, w.pending) == (0, 0, 50, 50)
    await db.dispose()


async def test_a_spill_cut_short_at_stop_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool's first append hangs (a slow disk) past the stop's bound:
    the spill is cancelled, and its rows go to the spool at stop all the same."""
    gate = threading.Event()
    append = Spool.append
    hung = []

    def slow_append(self: Spool, rows: Sequence[str]) -> None:
        if not hung:
            hung.append(len(rows))
            gate.wait(10)
            raise OSError("the disk woke up too late")
        append(self, rows)

    monkeypatch.setattr(Spool, "append", slow_append)
    db = ScriptedDatabase(db_url(tmp_path))
    await db.create()
    db.down = True
    w = writer(db, tmp_path, max_memory_items=100)  # a spill from 50 rows in memory
    w.start()
    try:
        for i in range(60):
            w.put(record(f"c{i:03d}"))
        await asyncio.sleep(0.2)
        assert hung == [60] and w.in_memory == 0  # the spill took them all, and hangs
        await _stop_in_bound(w, 1.0)
    finally:
        gate.set()
    assert (w.written, w.failed) == (0, 0)
    assert w.spooled == w.pending == 60  # none lost uncounted
    assert len(spool_rows(w.spool_dir)) == 60
    await db.dispose()


async def test_a_spool_that_cannot_be_read_for_a_while_does_not_end_the_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_retries: None) -> None:
    db = ScriptedDatabase(db_url(tmp_path))
    await db.create()
    db.down = True
    w = writer(db, tmp_path, spool_after_s=0)
    w.start()
    for i in range(20):
        w.put(record(f"c{i:03d}"))
    await asyncio.sleep(0.1)  # a batch of 20 in flight, failing
    for i in range(20, 40):
        w.put(record(f"c{i:03d}"))
    for _ in range(100):
        if w.spooled == 40:
            break
        await asyncio.sleep(0.02)
    assert w.spooled == 40 and w.in_memory == 0
    peek = Spool.peek
    failures = []

    def bad_peek(self: Spool, n: int) -> list[dict[str, Any] | None]:
        if len(failures) < 3:
            failures.append(n)
            raise OSError(5, "Input/output error")
        return peek(self, n)

    monkeypatch.setattr(Spool, "peek", bad_peek)
    db.down = False
    await asyncio.wait_for(w.drain(), 5)  # raises if the writer ended
    assert len(failures) == 3
    assert (w.written, w.failed, w.pending) == (40, 0, 0)
    await w.stop(2.0)
    await db.dispose()


async def test_a_writer_that_fails_says_so_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    db = Database(db_url(tmp_path))
    await db.create()
    w = writer(db, tmp_path)

    async def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(w, "_take", broken)
    caplog.set_level(logging.ERROR, logger="acd.adapters.storage")
    w.start()
    await asyncio.sleep(0.05)
    said = [r for r in caplog.records if r.levelno >= logging.ERROR
            and "record writer" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is not None  # before any stop
    assert isinstance(said[0].exc_info[1], RuntimeError)
    await w.stop(1.0)
    assert len([r for r in caplog.records if "record writer" in r.getMessage()]) == 1
    await db.dispose()


async def test_an_outage_does_not_count_towards_halving_a_batch(
        tmp_path: Path, quick_retries: None) -> None:
    """A batch failing "down" many times, then once with an error of no known
    kind, is tried again whole (halved only after UNKNOWN_TRIES unknowns)."""
    db = ScriptedDatabase(db_url(tmp_path), failures=[
        *(refused_connection() for _ in range(storage.UNKNOWN_TRIES + 1)),
        RuntimeError("no known kind")])
    await db.create()
    w = writer(db, tmp_path)
    w.start()
    for i in range(40):
        w.put(record(f"c{i:03d}"))
    await asyncio.wait_for(w.drain(), 5)
    assert db.sizes == [40] * (storage.UNKNOWN_TRIES + 3)  # whole each time
    assert (w.written, w.dead_lettered) == (40, 0)
    db.failures = [RuntimeError("no known kind") for _ in range(storage.UNKNOWN_TRIES + 1)]
    db.sizes.clear()
    for i in range(40, 80):
        w.put(record(f"c{i:03d}"))
    await asyncio.wait_for(w.drain(), 5)
    # unknown after unknown: halved at last (then both halves written)
    assert db.sizes == [40] * (storage.UNKNOWN_TRIES + 1) + [20, 20]
    assert (w.written, w.dead_lettered) == (80, 0)
    await w.stop(2.0)
    await db.dispose()


async def test_database_errors_never_quote_the_rows_values(anydb: CountingDatabase) -> None:
    with pytest.raises(SQLAlchemyError) as info:
        async with anydb.engine.begin() as conn:
            await conn.execute(text("INSERT INTO no_such_table (caller) VALUES (:caller)"),
                               {"caller": NUMBER})
    assert NUMBER not in str(info.value), str(info.value)
    assert "parameters hidden" in str(info.value)
