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

from sqlalchemy import Integer, delete, event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from acd.adapters.backoff import Backoff
from acd.adapters.schema import agent_states, call_records, calls_live, explanations, metadata, utc
from acd.adapters.sms_store import insert_pending
from acd.core.model import CallRecord, Explanation, Outcome
from acd.sms.policy import PendingSms

log = logging.getLogger(__name__)

__all__ = ["AgentStateRow", "Database", "LiveCallRow", "RecordWriter", "StorageError", "Summary",
           "make_engine"]

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


@dataclass(frozen=True, slots=True)
class LiveCallRow:
    """A call in progress as the next engine process needs it (table
    ``calls_live``): written with the call's decisions, gone with its record."""

    call_id: str
    server: str
    channel: str
    caller: str
    caller_name: str
    state: str  # ivr, waiting, offered, connected
    started_at: float
    queue: str | None
    first_queue: str | None
    queued_at: float | None
    priority: int
    attributes: tuple[tuple[str, str], ...]
    ivr_path: tuple[str, ...]
    offers: int
    offer_id: int
    agent_id: str | None
    answered_at: float | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """An agent's last state and pause reason (table ``agent_states``)."""

    agent_id: str
    state: str  # an AgentState value
    reason: str
    since: float


def _live_row(r: LiveCallRow) -> dict[str, Any]:
    attrs = json.dumps(dict(r.attributes), ensure_ascii=False)
    if len(attrs) > 4096:  # routing attributes are short; never fail a row on them
        attrs = "{}"
    return {
        "call_id": r.call_id, "server": r.server[:64], "channel": r.channel[:128],
        "caller": r.caller[:64], "caller_name": r.caller_name[:128], "state": r.state,
        "started_at": r.started_at, "queue": r.queue, "first_queue": r.first_queue,
        "queued_at": r.queued_at, "priority": r.priority, "attributes": attrs,
        "ivr_path": ">".join(r.ivr_path)[:1024], "offers": r.offers, "offer_id": r.offer_id,
        "agent_id": r.agent_id, "answered_at": r.answered_at, "updated_at": r.updated_at,
    }


def _from_live(d: Any) -> LiveCallRow:
    try:
        attrs = json.loads(d["attributes"] or "{}")
    except ValueError:
        attrs = {}
    return LiveCallRow(
        call_id=d["call_id"], server=d["server"], channel=d["channel"], caller=d["caller"],
        caller_name=d["caller_name"], state=d["state"], started_at=d["started_at"],
        queue=d["queue"], first_queue=d["first_queue"], queued_at=d["queued_at"],
        priority=d["priority"],
        attributes=tuple((str(k), str(v)) for k, v in attrs.items()),
        ivr_path=tuple(p for p in (d["ivr_path"] or "").split(">") if p),
        offers=d["offers"], offer_id=d["offer_id"], agent_id=d["agent_id"],
        answered_at=d["answered_at"], updated_at=d["updated_at"])


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
                          sms: Sequence[PendingSms] = (),
                          live: Sequence[LiveCallRow] = (),
                          agents: Sequence[AgentStateRow] = ()) -> None:
        """Call records, explanations, the calls' SMS, calls in progress and
        agents' states in one transaction (all or none).  A recorded call's
        row in ``calls_live`` goes in the same transaction; ``live`` rows
        replace the calls' earlier ones (the last one per call wins)."""
        if not records and not items and not sms and not live and not agents:
            return
        recorded = {r.call_id for r in records}
        latest: dict[str, LiveCallRow] = {}
        for row in live:
            if row.call_id not in recorded:
                latest[row.call_id] = row
        states = {a.agent_id: a for a in agents}
        async with self.engine.begin() as conn:
            if records:
                await conn.execute(call_records.insert(), [_row(r) for r in records])
            gone = recorded | latest.keys()
            if gone:
                await conn.execute(delete(calls_live).where(calls_live.c.call_id.in_(gone)))
            if latest:
                await conn.execute(calls_live.insert(), [_live_row(r) for r in latest.values()])
            if items:
                await conn.execute(explanations.insert(), [_explanation_row(e) for e in items])
            if sms:
                await insert_pending(conn, sms)
            if states:
                await conn.execute(delete(agent_states).where(
                    agent_states.c.agent_id.in_(states.keys())))
                await conn.execute(agent_states.insert(), [
                    {"agent_id": a.agent_id, "state": a.state, "reason": a.reason[:128],
                     "since": a.since} for a in states.values()])

    async def live_calls(self) -> list[LiveCallRow]:
        """The calls in progress an earlier engine process left (``calls_live``)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(calls_live))).mappings().all()
        return [_from_live(r) for r in rows]

    async def forget_live(self, call_ids: Sequence[str]) -> None:
        """Drop rows of calls that already have their record."""
        if call_ids:
            async with self.engine.begin() as conn:
                await conn.execute(delete(calls_live).where(calls_live.c.call_id.in_(call_ids)))

    async def recorded(self, call_ids: Sequence[str]) -> set[str]:
        """Which of these calls already have a record."""
        if not call_ids:
            return set()
        q = select(call_records.c.call_id).where(call_records.c.call_id.in_(call_ids))
        async with self.engine.connect() as conn:
            return {r[0] for r in (await conn.execute(q)).all()}

    async def agent_states(self) -> list[AgentStateRow]:
        """Each agent's last state and pause reason."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(agent_states))).mappings().all()
        return [AgentStateRow(r["agent_id"], r["state"], r["reason"], r["since"]) for r in rows]

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


_Item = CallRecord | Explanation | PendingSms | LiveCallRow | AgentStateRow


class RecordWriter:
    """Owned task batching call records into the database.

    ``stop()`` does not cancel a write half-way: it queues a sentinel and
    waits for the task to drain everything accepted before it.
    """

    def __init__(self, db: Database, batch: int = 500, linger_s: float = 0.25) -> None:
        self._db = db
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._batch = batch
        self._linger = linger_s
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failed = 0
        self._accepted = 0

    @property
    def pending(self) -> int:
        """Accepted and not yet written (nor given up)."""
        return self._accepted - self.written - self.failed

    def put(self, rec: CallRecord) -> None:
        self._accepted += 1
        self._queue.put_nowait(rec)

    def put_explanation(self, item: Explanation) -> None:
        self._accepted += 1
        self._queue.put_nowait(item)

    def put_live(self, row: LiveCallRow) -> None:
        """A call in progress changed: its row for the next engine process."""
        self._accepted += 1
        self._queue.put_nowait(row)

    def put_agent_state(self, row: AgentStateRow) -> None:
        self._accepted += 1
        self._queue.put_nowait(row)

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
            batch: list[_Item] = [first]
            while len(batch) < self._batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        """Write a batch; while the database is down, retry with backoff
        (nothing accepted is dropped); a row the database refuses (e.g. a
        duplicate key) is logged and skipped, the rest written."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._db.write_batch(
                    [b for b in batch if isinstance(b, CallRecord)],
                    [b for b in batch if isinstance(b, Explanation)],
                    [b for b in batch if isinstance(b, PendingSms)],
                    [b for b in batch if isinstance(b, LiveCallRow)],
                    [b for b in batch if isinstance(b, AgentStateRow)])
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
