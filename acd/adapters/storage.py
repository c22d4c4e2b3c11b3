"""Database adapter: SQLAlchemy 2 async; SQLite (aiosqlite) by default,
PostgreSQL (asyncpg) at scale, same code.

Call records are written by one owned writer task in small batches (one
transaction per batch, not per call), and flushed on stop, so a burst of
hangups costs one commit, and nothing accepted is lost at shutdown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from acd.adapters.backoff import Backoff
from acd.adapters.schema import call_records, explanations, metadata, utc
from acd.adapters.sms_store import insert_pending
from acd.core.model import CallRecord, Explanation, Outcome
from acd.sms.policy import PendingSms

log = logging.getLogger(__name__)

__all__ = ["Database", "RecordWriter", "StorageError", "Summary", "make_engine"]

_LIMITS = {"call_id": 64, "caller": 64, "caller_name": 128, "server": 64,
           "ivr_path": 1024, "queue": 64, "agent_id": 64, "customer_class": 64,
           "first_queue": 64}


def _explanation_row(e: Explanation) -> dict[str, Any]:
    return {
        "call_id": e.call_id, "offer_id": e.offer_id, "agent_id": e.agent_id, "at": utc(e.at),
        "queue": e.queue, "customer_class": e.customer_class, "priority": e.priority,
        "waited_s": e.waited_s, "stage": json.dumps(list(e.stage), ensure_ascii=False)[:1024],
        "reason": e.reason[:256],
        "candidates": json.dumps([{"agent_id": c.agent_id, "score": c.score,
                                   "terms": dict(c.terms)} for c in e.candidates])[:8192],
    }


class StorageError(Exception):
    pass


def _row(rec: CallRecord) -> dict[str, Any]:
    row: dict[str, Any] = {
        "call_id": rec.call_id, "caller": rec.caller, "caller_name": rec.caller_name,
        "server": rec.server, "started_at": utc(rec.started_at), "ended_at": utc(rec.ended_at),
        "outcome": rec.outcome.value, "ivr_path": ">".join(rec.ivr_path), "queue": rec.queue,
        "wait_s": rec.wait_s, "agent_id": rec.agent_id, "talk_s": rec.talk_s,
        "offers": rec.offers, "customer_class": rec.customer_class,
        "priority": rec.priority, "first_queue": rec.first_queue,
    }
    # SQLite would accept over-long strings that PostgreSQL refuses: check here.
    for key, limit in _LIMITS.items():
        value = row[key]
        if isinstance(value, str) and len(value) > limit:
            row[key] = value[: limit - 1] + "…"
    return row


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    answered: int
    abandoned: int
    ivr: int
    mean_wait_s: float | None
    mean_talk_s: float | None
    max_wait_s: float | None


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            # SQLAlchemy's documented aiosqlite recipe: let SQLAlchemy emit
            # BEGIN itself (IMMEDIATE, so read-modify-write cannot lose updates).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    async def create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def write_batch(self, records: Sequence[CallRecord],
                          items: Sequence[Explanation],
                          sms: Sequence[PendingSms] = ()) -> None:
        """Call records, explanations and the calls' SMS in one transaction
        (all or none)."""
        if not records and not items and not sms:
            return
        async with self.engine.begin() as conn:
            if records:
                await conn.execute(call_records.insert(), [_row(r) for r in records])
            if items:
                await conn.execute(explanations.insert(), [_explanation_row(e) for e in items])
            if sms:
                await insert_pending(conn, sms)

    async def explanations_for(self, call_id: str) -> list[dict[str, Any]]:
        q = select(explanations).where(explanations.c.call_id == call_id) \
            .order_by(explanations.c.offer_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["stage"] = json.loads(d["stage"])
            d["candidates"] = json.loads(d["candidates"])
            out.append(d)
        return out

    async def call(self, call_id: str) -> dict[str, Any] | None:
        q = select(call_records).where(call_records.c.call_id == call_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).mappings().first()
        return dict(row) if row is not None else None

    async def calls(self, limit: int | None = None) -> list[dict[str, Any]]:
        q = select(call_records).order_by(call_records.c.started_at)
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [dict(r) for r in rows]

    async def summary(self, since: dt.datetime | None = None) -> Summary:
        c = call_records.c
        q = select(
            func.count(),
            func.sum((c.outcome == Outcome.ANSWERED.value).cast(Integer)),
            func.sum((c.outcome == Outcome.ABANDONED.value).cast(Integer)),
            func.sum((c.outcome == Outcome.IVR.value).cast(Integer)),
            func.avg(c.wait_s), func.avg(c.talk_s), func.max(c.wait_s),
        )
        if since is not None:
            q = q.where(c.started_at >= since)
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).one()
        return Summary(
            total=int(row[0] or 0), answered=int(row[1] or 0), abandoned=int(row[2] or 0),
            ivr=int(row[3] or 0), mean_wait_s=row[4], mean_talk_s=row[5], max_wait_s=row[6],
        )


class RecordWriter:
    """Owned task batching call records into the database.

    ``stop()`` does not cancel a write half-way: it queues a sentinel and
    waits for the task to drain everything accepted before it.
    """

    def __init__(self, db: Database, batch: int = 500, linger_s: float = 0.25) -> None:
        self._db = db
        self._queue: asyncio.Queue[CallRecord | Explanation | PendingSms | None] = \
            asyncio.Queue()
        self._batch = batch
        self._linger = linger_s
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failed = 0
        self._accepted = 0

    def put(self, rec: CallRecord) -> None:
        self._accepted += 1
        self._queue.put_nowait(rec)

    def put_explanation(self, item: Explanation) -> None:
        self._accepted += 1
        self._queue.put_nowait(item)

    def put_sms(self, item: PendingSms) -> None:
        """Queue after its call's record: both land in the same transaction
        unless the batch boundary falls between them (then the record first)."""
        self._accepted += 1
        self._queue.put_nowait(item)

    async def drain(self, poll_s: float = 0.01) -> None:
        """Wait until every record accepted so far is written (or given up)."""
        while self.written + self.failed < self._accepted:
            if self._task is None or self._task.done():
                raise StorageError("the record writer is not running")
            await asyncio.sleep(poll_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            await asyncio.sleep(self._linger)
            batch: list[CallRecord | Explanation | PendingSms] = [first]
            while len(batch) < self._batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[CallRecord | Explanation | PendingSms]) -> None:
        """Write a batch; while the database is down, retry with backoff
        (nothing accepted is dropped); a row the database refuses (e.g. a
        duplicate key) is logged and skipped, the rest written."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._db.write_batch(
                    [b for b in batch if isinstance(b, CallRecord)],
                    [b for b in batch if isinstance(b, Explanation)],
                    [b for b in batch if isinstance(b, PendingSms)])
                self.written += len(batch)
                return
            except IntegrityError:
                if len(batch) == 1:
                    log.error("the database refused %r; skipped", batch[0])
                    self.failed += 1
                    return
                for item in batch:  # find the bad row(s): one by one
                    await self._write([item])
                return
            except Exception:
                log.exception("writing %d call records failed; retrying in %.1fs",
                              len(batch), backoff.delay)
                await asyncio.sleep(backoff.delay)
                backoff.grow()

    async def stop(self) -> None:
        """Write everything accepted so far, then end the task."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None
