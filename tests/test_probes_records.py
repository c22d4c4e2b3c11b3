"""The issue's live probes of call-record writing, each with over 100 real
simulated calls flowing through an engine on the PBX simulator:

- **PostgreSQL bad row**: some callers' channels have an 81-character
  uniqueid (the call id), some a NUL in the caller's name; every call ends
  in exactly one record (fitted: no dead letter needed), ``stop()`` within
  its bound;
- **disk full until stop**: SQLite's ``max_page_count`` makes the database
  full ("database or disk is full", SQLITE_FULL) part-way through the load
  and until the stop; the stop returns within ``stop_flush_s``, the spool
  holds what was not written, and the next start writes it: every call one
  record, none twice.

Each prints one line of figures (``pytest -s``)::

    .venv/bin/pytest -s -p no:cacheprovider tests/test_probes_records.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from faults import expected
from helpers import SECRET, db_url, pbx_for_engine
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from acd.adapters.ami import AmiConfig
from acd.adapters.spool import Spool
from acd.adapters.storage import Database, RecordsConfig, stored_id
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
AGENTS = 12


def config(database: str, spool: Path, **fields: Any) -> EngineConfig:
    policy = simple_policy({q: 8 for q in sorted(FLOW.queues)})
    agents = agents_for_queues({f"a{1001 + i}": (str(1001 + i), tuple(policy.queues))
                                for i in range(AGENTS)})
    return EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET), database_url=database,
        agi_port=0, records=RecordsConfig(spool_dir=str(spool), spool_after_s=0.5), **fields)


@asynccontextmanager
async def pbx() -> AsyncIterator[SimPBX]:
    rng = random.Random(5)
    async with SimPBX(pbx_for_engine()) as sim:
        for i in range(AGENTS):
            sim.add_phone(str(1001 + i), PhoneBehaviour(
                answer_after_s=0.05, talk_s=lambda: rng.uniform(0.2, 0.6)))
        yield sim


async def started(cfg: EngineConfig, sim: SimPBX) -> Engine:
    engine = Engine(dataclasses.replace(cfg, ami=dataclasses.replace(cfg.ami,
                                                                     port=sim.ami_port)))
    await engine.start()
    sim.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
    return engine


async def load(sim: SimPBX, n: int, script: Callable[[int], CallerScript],
               during: Callable[[int], None] = lambda i: None,
               rate: float = 25.0) -> list[CallResult]:
    """``n`` calls at ``rate`` a second; ``during(i)`` before call ``i``."""
    rng = random.Random(11)
    handles = []
    for i in range(n):
        during(i)
        handles.append(await sim.place_call(script(i)))
        await asyncio.sleep(rng.expovariate(rate))
    _, pending = await asyncio.wait([h.done for h in handles], timeout=60)
    assert not pending, f"{len(pending)} calls still going"
    return [h.done.result() for h in handles]


def script(i: int, name: str = "") -> CallerScript:
    keys = [["", "1"], ["", "2"], ["", "0"]][i % 3]
    return CallerScript(number=f"1390000{i:04d}", name=name, keys=keys,
                        patience_s=None if i % 10 else 0.3, key_delay_s=0.02)


async def timed_stop(engine: Engine) -> float:
    t0 = time.monotonic()
    await asyncio.wait_for(engine.stop(), engine.config.stop_flush_s + 10)  # the test's guard
    return time.monotonic() - t0


def check(results: list[CallResult], recs: dict[str, dict[str, Any]],
          dead: set[str]) -> tuple[list[str], list[str]]:
    """Each call: its record (under the id the tables hold) with the outcome
    the caller lived, or a dead letter.  Returns (lost, wrong)."""
    lost, wrong = [], []
    for res in results:
        key = stored_id(res.uniqueid)
        rec = recs.get(key)
        if rec is None:
            if key not in dead:
                lost.append(res.uniqueid)
            continue
        if rec["outcome"] != expected(res) and res.outcome is not Outcome.TALKED:
            wrong.append(f"{res.uniqueid}: {res.outcome.value} -> {rec['outcome']}")
        elif res.outcome is Outcome.TALKED and rec["agent_id"] != f"a{res.agent}":
            wrong.append(f"{res.uniqueid}: talked to {res.agent}, record {rec['agent_id']}")
    return lost, wrong


# ------------------------------------------------------ PostgreSQL bad row


@pytest.fixture
async def fresh_pg() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own (created, then dropped)."""
    name = f"acd_probe_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_postgresql_bad_rows_every_call_one_record(fresh_pg: str, tmp_path: Path) -> None:
    n = 120
    long_ids: list[str] = []
    cfg = config(fresh_pg, tmp_path / "spool", stop_flush_s=5)
    async with pbx() as sim:
        engine = await started(cfg, sim)
        new_uid = sim.channels.new_uniqueid
        make_long = False

        def uid() -> str:  # the caller's channel of every 5th call: an 81-character uniqueid
            nonlocal make_long
            u = new_uid()
            if make_long:
                make_long = False
                u = f"{u}.{'7' * (80 - len(u))}"
                long_ids.append(u)
            return u

        sim.channels.new_uniqueid = uid  # type: ignore[method-assign]

        def during(i: int) -> None:
            nonlocal make_long
            make_long = i % 5 == 0

        try:
            results = await load(sim, n, lambda i: script(
                i, "Evil\x00Name" if i % 7 == 0 else "张三" if i % 2 else ""), during)
            deadline = time.monotonic() + 20
            while engine.counters.calls_finished < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.wait_for(engine.writer.drain(), 20)
        finally:
            took = await timed_stop(engine)
    w = engine.writer
    db = Database(fresh_pg)
    try:
        recs = {r["call_id"]: r for r in await db.calls()}
        dead = {d["ref"] for d in await db.dead_letters()}
        left = await db.live_calls()
    finally:
        await db.dispose()
    lost, wrong = check(results, recs, dead)
    assert len(long_ids) == n // 5 and all(len(u) == 81 for u in long_ids)
    print(f"\n[probe] PostgreSQL bad rows: {n} calls ({len(long_ids)} with an 81-char uniqueid, "
          f"{sum(1 for i in range(n) if i % 7 == 0)} with a NUL in the name): "
          f"{len(recs)} records, {len(dead)} dead letters, {w.fitted} rows fitted, "
          f"{len(lost)} lost, {w.spooled} spooled, stop {took:.2f} s "
          f"(bound {cfg.stop_flush_s:g} s)")
    assert not lost and not wrong, (lost[:5], wrong[:5])
    assert len(recs) == n and not dead  # fitted: each a normal record
    assert all("\x00" not in (r["caller_name"] or "") for r in recs.values())
    nul_names = [r for r in recs.values() if r["caller_name"].startswith("Evil")]
    assert len(nul_names) == sum(1 for i in range(n) if i % 7 == 0)
    assert all(stored_id(u) in recs for u in long_ids)
    assert w.failed == 0 and w.dead_lettered == 0 and w.fitted > 0
    assert left == [] and took <= cfg.stop_flush_s


# ------------------------------------------------- disk full until stop


async def test_sqlite_disk_full_until_stop_nothing_lost(tmp_path: Path) -> None:
    n = 100
    url = db_url(tmp_path)
    spool = tmp_path / "spool"
    cfg = config(url, spool, stop_flush_s=3)
    full = False
    async with pbx() as sim:
        engine = await started(cfg, sim)

        @event.listens_for(engine.db.engine.sync_engine, "checkout")
        def _disk(dbapi_conn: Any, _rec: Any, _proxy: Any) -> None:
            # a full disk: the database may not grow by a page (SQLITE_FULL)
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA max_page_count = {1 if full else 1073741823}")
            cur.close()

        def during(i: int) -> None:
            nonlocal full
            if i == 30:
                full = True

        try:
            results = await load(sim, n, script, during)
            deadline = time.monotonic() + 20
            while engine.counters.calls_finished < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # past spool_after_s: the waiting rows go to disk
            on_disk_before_stop = engine.writer.spooled
        finally:
            took = await timed_stop(engine)
    w = engine.writer
    recorded_before = len(await _records(url))
    spooled = w.spooled
    assert w.failed == 0 and spooled == w.pending > 0
    assert len(Spool.files(spool)) == 1
    # the next start writes the rest, once
    async with pbx() as sim:
        engine2 = await started(cfg, sim)
        replayed = engine2.writer.replayed
        await timed_stop(engine2)
    recs = await _records(url)
    lost, wrong = check(results, recs, set())
    db = Database(url)
    try:
        left = await db.live_calls()
    finally:
        await db.dispose()
    print(f"\n[probe] SQLite full until stop: {n} calls, {recorded_before} records written "
          f"before the stop, {on_disk_before_stop} rows on disk before it, {spooled} spooled "
          f"at stop (stop {took:.2f} s, bound {cfg.stop_flush_s:g} s), {replayed} replayed "
          f"by the next start: {len(recs)} records, {len(lost)} lost, "
          f"{engine2.writer.duplicates} already there")
    assert recorded_before < n  # the disk was full for most of them
    assert not lost and not wrong, (lost[:5], wrong[:5])
    assert len(recs) == n and left == []
    assert replayed == spooled and Spool.files(spool) == []
    assert took <= cfg.stop_flush_s + 0.5


async def _records(url: str) -> dict[str, dict[str, Any]]:
    db = Database(url)
    try:
        return {r["call_id"]: r for r in await db.calls()}
    finally:
        await db.dispose()
