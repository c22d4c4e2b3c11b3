"""Database adapter: SQLAlchemy 2 async; SQLite (aiosqlite) by default,
PostgreSQL (asyncpg) at scale, same code.

Call records (and explanations, the calls' SMS, calls in progress and
agents' states) are written by one owned writer task, :class:`RecordWriter`,
in small batches (one transaction per batch, not per call), so a burst of
hangups costs one commit.  Nothing it accepts is lost, whatever the database
does:

- every row is fitted to its table when it is accepted
  (:func:`acd.adapters.rows.fit_item`): the database never refuses a row we
  made for its lengths, NUL, encodings or numbers;
- a row the database refuses all the same ("this row": a duplicate key, a
  constraint, a value it cannot take) is found by halving the batch, kept in
  ``dead_letters`` with the database's reason, and the rest are written;
- while the database is unavailable ("not now": connection errors, a full
  disk, timeouts) the batch is retried with backoff; rows past the memory
  bound, rows waiting longer than ``spool_after_s``, and at :meth:`stop`
  whatever the database did not take within its bound go to the local spool
  (:mod:`acd.adapters.spool`), written again as soon as the database is back
  or, after a stop, by the next start (:meth:`RecordWriter.replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Integer, Table, bindparam, create_engine, delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from acd.adapters.backoff import Backoff
from acd.adapters.rows import (
    AgentEventRow,
    AgentStateRow,
    Item,
    LiveCallRow,
    dumps,
    fit_item,
    from_json,
    kind,
    ref,
    to_json,
)
from acd.adapters.schema import (
    add_missing_columns,
    add_missing_indexes,
    agent_events,
    agent_states,
    aware,
    call_records,
    calls_live,
    dead_letters,
    explanations,
    fit_json,
    fit_key,
    fit_row,
    metadata,
    utc,
)
from acd.adapters.schema import queue_log as queue_log_table
from acd.adapters.sms_store import insert_pending, sms_outbox
from acd.adapters.spool import Spool, SpoolError
from acd.core.model import CallRecord, Explanation, Outcome
from acd.logs import Limited, printable
from acd.reports.queue_log import QueueLogEntry
from acd.sms.policy import PendingSms

log = logging.getLogger(__name__)

__all__ = ["AgentStateRow", "Database", "LiveCallRow", "MissingDriver", "RecordWriter",
           "RecordsConfig", "StorageError", "Summary", "default_spool_dir", "make_engine",
           "require_driver", "stored_id"]


def stored_id(call_id: str) -> str:
    """A call id as the tables hold it (one over 64 characters is cut, with a
    hash of the whole: :func:`acd.adapters.schema.fit_key`)."""
    return fit_key(call_id, 64)


def _explanation_row(e: Explanation) -> dict[str, Any]:
    return fit_row(explanations, {
        "call_id": e.call_id, "offer_id": e.offer_id, "agent_id": e.agent_id, "at": utc(e.at),
        "queue": e.queue, "customer_class": e.customer_class, "priority": e.priority,
        "waited_s": e.waited_s, "stage": fit_json(list(e.stage), 1024),
        "reason": e.reason,
        "candidates": fit_json([{"agent_id": c.agent_id, "score": c.score,
                                 "terms": dict(c.terms)} for c in e.candidates], 8192),
    })


def _live_row(r: LiveCallRow) -> dict[str, Any]:
    return fit_row(calls_live, {
        "call_id": r.call_id, "server": r.server, "channel": r.channel,
        "caller": r.caller, "caller_name": r.caller_name, "state": r.state,
        "started_at": r.started_at, "queue": r.queue, "first_queue": r.first_queue,
        "queued_at": r.queued_at, "priority": r.priority,
        "attributes": fit_json(dict(r.attributes), 4096),
        "ivr_path": ">".join(r.ivr_path), "offers": r.offers, "offer_id": r.offer_id,
        "agent_id": r.agent_id, "answered_at": r.answered_at, "updated_at": r.updated_at,
        "recording": r.recording or None,
    })


def _from_live(d: Any) -> LiveCallRow:
    try:
        attrs = json.loads(d["attributes"] or "{}")
    except ValueError:
        attrs = {}
    if not isinstance(attrs, dict):
        attrs = {}
    return LiveCallRow(
        call_id=d["call_id"], server=d["server"], channel=d["channel"], caller=d["caller"],
        caller_name=d["caller_name"], state=d["state"], started_at=d["started_at"],
        queue=d["queue"], first_queue=d["first_queue"], queued_at=d["queued_at"],
        priority=d["priority"],
        attributes=tuple((str(k), str(v)) for k, v in attrs.items()),
        ivr_path=tuple(p for p in (d["ivr_path"] or "").split(">") if p),
        offers=d["offers"], offer_id=d["offer_id"], agent_id=d["agent_id"],
        answered_at=d["answered_at"], updated_at=d["updated_at"],
        recording=d.get("recording") or "")


def _queue_log_row(e: QueueLogEntry) -> dict[str, Any]:
    d1, d2, d3, d4, d5 = e.data_columns()
    return fit_row(queue_log_table, {
        "time": utc(e.time), "callid": e.callid, "queuename": e.queuename, "agent": e.agent,
        "event": e.event, "data1": d1, "data2": d2, "data3": d3, "data4": d4, "data5": d5})


class StorageError(Exception):
    pass


class MissingDriver(StorageError):
    """The database URL names a driver that is not installed (asyncpg for
    PostgreSQL: the ``postgres`` extra).  The commands exit 2 on it."""


#: the extra of acd that installs each database's driver
_DRIVER_EXTRAS = {"postgresql": "postgres"}


def _row(rec: CallRecord) -> dict[str, Any]:
    return fit_row(call_records, {
        "call_id": rec.call_id, "caller": rec.caller, "caller_name": rec.caller_name,
        "server": rec.server, "started_at": utc(rec.started_at), "ended_at": utc(rec.ended_at),
        "outcome": rec.outcome.value, "ivr_path": ">".join(rec.ivr_path), "queue": rec.queue,
        "wait_s": rec.wait_s, "agent_id": rec.agent_id, "talk_s": rec.talk_s,
        "offers": rec.offers, "customer_class": rec.customer_class,
        "priority": rec.priority, "first_queue": rec.first_queue,
        "recording": rec.recording or None,
        "queued_at": utc(rec.queued_at) if rec.queued_at is not None else None,
        "answered_at": utc(rec.answered_at) if rec.answered_at is not None else None,
        "ivr_end": rec.ivr_end or None,
    })


def _event_row(e: AgentEventRow) -> dict[str, Any]:
    return fit_row(agent_events, {"agent_id": e.agent_id, "at": utc(e.at),
                                  "old_state": e.old_state, "new_state": e.new_state,
                                  "reason": e.reason})


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    answered: int
    abandoned: int
    ivr: int
    mean_wait_s: float | None
    mean_talk_s: float | None
    max_wait_s: float | None


def _sqlite_pragmas(dbapi_conn: Any) -> None:
    """SQLAlchemy's documented pysqlite/aiosqlite recipe: let SQLAlchemy emit
    BEGIN itself (IMMEDIATE, so read-modify-write cannot lose updates); WAL,
    a 30 s busy timeout, synchronous=NORMAL."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _missing(url: str, exc: ModuleNotFoundError) -> MissingDriver:
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        backend = "database"
    extra = _DRIVER_EXTRAS.get(backend)
    hint = f"pip install 'acd[{extra}]'" if extra else f"install {exc.name}"
    return MissingDriver(f"the {backend} driver is missing: {hint}")


def require_driver(url: str) -> None:
    """:class:`MissingDriver` if the driver of ``url`` is not installed (a
    URL SQLAlchemy cannot read is left to its own error, later)."""
    try:
        make_url(url).get_dialect().import_dbapi()
    except ModuleNotFoundError as exc:
        raise _missing(url, exc) from None
    except (ArgumentError, ValueError, NoSuchModuleError):
        return


def make_engine(url: str) -> AsyncEngine:
    """The async engine of ``url``; :class:`MissingDriver` when its driver
    is not installed (SQLAlchemy imports it here)."""
    try:
        return _make_engine(url)
    except ModuleNotFoundError as exc:
        raise _missing(url, exc) from None


def _make_engine(url: str) -> AsyncEngine:
    # hide_parameters: an error's text never quotes the statement's values
    # (callers' numbers and names), wherever it is logged or shown
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            _sqlite_pragmas(dbapi_conn)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)


_R = TypeVar("_R")

#: how long a direct SQLite thread waits for work before it ends (a new one
#: starts with the next job)
_IDLE_S = 60.0


class _Worker:
    """One daemon thread running jobs in order (started with the first job,
    ended after ``_IDLE_S`` without one, or by :meth:`close` once the jobs
    given before are done; a later job starts it again).  A job's
    result or exception is handed to the awaiting task's loop; a job whose
    task stopped waiting (a timeout) still runs to its end, in order."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop,
                                            asyncio.Future[Any],
                                            Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], _R]) -> asyncio.Future[_R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_R] = loop.create_future()
        with self._lock:
            self._jobs.put((loop, fut, fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return fut

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_S)
            except queue.Empty:
                job = None
            if job is None:
                with self._lock:  # no job came meanwhile: ends; a later submit starts anew
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            loop, fut, fn = job
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting task (re-raised there)
                _hand(loop, fut, None, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                _hand(loop, fut, result, None)


def _hand(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any,
          exc: BaseException | None) -> None:
    def settle() -> None:
        if fut.done():  # its task stopped waiting (cancelled, timed out)
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
        loop.call_soon_threadsafe(settle)


class _DirectSqlite:
    """A SQLite file database's writes and the caller lookups, each a whole
    transaction run as one job on a thread of its own with SQLAlchemy's
    sync engine (pysqlite) on the same file, instead of one hop to
    aiosqlite's thread and back per statement.  Same pragmas and BEGIN
    IMMEDIATE recipe as :func:`make_engine` (reads: a plain BEGIN, a WAL
    snapshot that never waits for the writer); the async engine's pool
    ``checkout`` listeners are run for its connections too (so a fault
    injected there reaches every connection the database uses)."""

    def __init__(self, url: str, path: str, async_engine: AsyncEngine) -> None:
        self.path = path
        self._ready = False
        self.engine: Engine = create_engine(
            make_url(url).set(drivername="sqlite"), hide_parameters=True,
            connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            _sqlite_pragmas(dbapi_conn)

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            read = conn.get_execution_options().get("acd_read", False)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        @event.listens_for(self.engine, "checkout")
        def _on_checkout(dbapi_conn: Any, rec: Any, proxy: Any) -> None:
            async_engine.sync_engine.pool.dispatch.checkout(dbapi_conn, rec, proxy)

        self._writes = _Worker("acd-db-write")
        self._reads = _Worker("acd-db-read")

    def _file(self) -> None:
        if not self._ready:  # made 0600 before SQLite makes it (as Database.create does)
            _private_sqlite_file(self.path)
            self._ready = True

    def _transaction(self, fn: Callable[[Connection], _R]) -> _R:
        self._file()
        with self.engine.begin() as conn:
            return fn(conn)

    def _read(self, fn: Callable[[Connection], _R]) -> _R:
        self._file()
        with self.engine.connect() as conn:
            conn.execution_options(acd_read=True)
            return fn(conn)

    async def transaction(self, fn: Callable[[Connection], _R]) -> _R:
        return await self._writes.submit(lambda: self._transaction(fn))

    async def read(self, fn: Callable[[Connection], _R]) -> _R:
        return await self._reads.submit(lambda: self._read(fn))

    async def dispose(self) -> None:
        """Closes the connections after the jobs given so far (on the
        writer's thread: never under a write running there)."""
        done = self._writes.submit(self.engine.dispose)
        self._reads.close()
        self._writes.close()
        await done


# a batch's statements, built once (built per batch, they cost more than executing)
_INSERT_RECORDS = call_records.insert()
_INSERT_EXPLANATIONS = explanations.insert()
_INSERT_EVENTS = agent_events.insert()
_DELETE_LIVE = delete(calls_live).where(calls_live.c.call_id.in_(bindparam("ids", expanding=True)))
_UPSERTS: dict[tuple[str, str], Any] = {}


def _replace(dialect: str, table: Table) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` every other column: a row
    replaces the one under its key, in one statement (as a delete and an
    insert would, in two)."""
    stmt = _UPSERTS.get((dialect, table.name))
    if stmt is None:
        ins = sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c.name: ins.excluded[c.name] for c in table.c if not c.primary_key})
        _UPSERTS[(dialect, table.name)] = stmt
    return stmt


def _execute_plan(conn: Connection, plan: Sequence[tuple[Any, Any]]) -> None:
    for stmt, params in plan:
        conn.execute(stmt, params)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        path = sqlite_file(url)
        #: a SQLite file's batches and lookups: one thread hop per transaction
        self._direct = _DirectSqlite(url, path, self.engine) if path is not None else None
        #: called once a transaction that queued SMS has committed (the SMS
        #: sender wakes for them instead of polling the outbox)
        self.on_sms_written: Callable[[], None] | None = None

    async def transaction(self, fn: Callable[[Connection], _R]) -> _R:
        """``fn(connection)`` in one transaction (all or none), with a sync
        SQLAlchemy connection: on a SQLite file on a database thread of its
        own, in one hop; otherwise the async engine's (``run_sync``)."""
        if self._direct is not None:
            return await self._direct.transaction(fn)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Callable[[Connection], _R]) -> _R:
        """``fn(connection)`` for reading (as :meth:`transaction`; on a SQLite
        file a thread of its own, a snapshot that never waits for writes)."""
        if self._direct is not None:
            return await self._direct.read(fn)
        async with self.engine.connect() as conn:
            return await conn.run_sync(fn)

    async def create(self) -> None:
        """Create the tables.  A new SQLite file (and its ``-wal``/``-shm``)
        is made readable by its owner only (it holds callers' numbers); an
        existing one readable by group or others is warned about once."""
        path = sqlite_file(self.url)
        if path is not None:
            _private_sqlite_file(path)
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            try:
                added = await conn.run_sync(add_missing_columns)
                indexed = await conn.run_sync(add_missing_indexes)
            except RuntimeError as exc:
                raise StorageError(str(exc)) from None
        if added:
            log.warning("database upgraded: added the columns %s", ", ".join(added))
        if indexed:
            log.warning("database upgraded: made the indexes %s", ", ".join(indexed))
        if path is not None:
            # SQLite gives them the database file's mode; made sure of here
            with contextlib.suppress(OSError):
                mode = os.stat(path).st_mode & 0o777
                for extra in (path + "-wal", path + "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        if os.stat(extra).st_mode & 0o777 & ~mode:
                            os.chmod(extra, mode)

    async def dispose(self, timeout: float = 2.0) -> None:
        """Close the connections, within ``timeout`` (a hung connection is
        left to the process's end, with an error logged)."""
        try:
            async with asyncio.timeout(timeout):
                if self._direct is not None:
                    await self._direct.dispose()
                await self.engine.dispose()
        except TimeoutError:
            log.error("closing the database connections took over %.1f s; left", timeout)

    async def write_batch(self, records: Sequence[CallRecord],
                          items: Sequence[Explanation],
                          sms: Sequence[PendingSms] = (),
                          live: Sequence[LiveCallRow] = (),
                          agents: Sequence[AgentStateRow] = (),
                          queue_log: Sequence[QueueLogEntry] = (),
                          events: Sequence[AgentEventRow] = ()) -> None:
        """Call records, explanations, the calls' SMS, calls in progress and
        agents' states in one transaction (all or none).  A recorded call's
        row in ``calls_live`` goes in the same transaction; ``live`` rows
        replace the calls' earlier ones (the last one per call wins).  Every
        value is fitted to its column (:func:`acd.adapters.schema.fit_row`)."""
        if not records and not items and not sms and not live and not agents \
                and not queue_log and not events:
            return
        record_rows = [_row(r) for r in records]
        recorded = {r["call_id"] for r in record_rows}
        last: dict[str, LiveCallRow] = {}
        for row in live:  # the last one per call (only it is fitted)
            last[stored_id(row.call_id)] = row
        latest = {cid: _live_row(row) for cid, row in last.items() if cid not in recorded}
        states = {}
        for a in agents:
            ar = fit_row(agent_states, {"agent_id": a.agent_id, "state": a.state,
                                        "reason": a.reason, "since": a.since})
            states[ar["agent_id"]] = ar
        plan: list[tuple[Any, Any]] = []
        dialect = self.engine.dialect.name
        if record_rows:
            plan.append((_INSERT_RECORDS, record_rows))
        if recorded:  # a recorded call's row goes (in the same transaction)
            plan.append((_DELETE_LIVE, {"ids": sorted(recorded)}))
        upsert = dialect in ("sqlite", "postgresql")
        if latest and not upsert:  # (another database: a delete and an insert)
            plan.append((_DELETE_LIVE, {"ids": sorted(latest)}))
        if latest:
            plan.append((_replace(dialect, calls_live) if upsert else calls_live.insert(),
                         list(latest.values())))
        if items:
            plan.append((_INSERT_EXPLANATIONS, [_explanation_row(e) for e in items]))
        if states and not upsert:
            plan.append((delete(agent_states).where(agent_states.c.agent_id.in_(states)), None))
        if states:
            plan.append((_replace(dialect, agent_states) if upsert else agent_states.insert(),
                         list(states.values())))
        if events:  # the log of agent state changes, in order
            plan.append((_INSERT_EVENTS, [_event_row(e) for e in events]))
        if queue_log:  # Asterisk's realtime queue_log rows (docs/reports.md#queue_log)
            plan.append((queue_log_table.insert(), [_queue_log_row(e) for e in queue_log]))
        if not sms:
            # one transaction, the whole plan in one go (one thread hop on SQLite)
            await self.transaction(lambda conn: _execute_plan(conn, plan))
            return
        async with self.engine.begin() as conn:
            for stmt, params in plan:
                await conn.execute(stmt, params)
            await insert_pending(conn, sms)
        if self.on_sms_written is not None:
            self.on_sms_written()

    async def write_items(self, items: Sequence[Item | None]) -> None:
        """:meth:`write_batch` of the writer's items, in one transaction (None: skipped)."""
        await self.write_batch(
            [b for b in items if isinstance(b, CallRecord)],
            [b for b in items if isinstance(b, Explanation)],
            [b for b in items if isinstance(b, PendingSms)],
            [b for b in items if isinstance(b, LiveCallRow)],
            [b for b in items if isinstance(b, AgentStateRow)],
            [b for b in items if isinstance(b, QueueLogEntry)],
            events=[b for b in items if isinstance(b, AgentEventRow)])

    async def dead_letter(self, item: Item, reason: str, at: float) -> None:
        """Keep a row the database refused in ``dead_letters``, in a
        transaction of its own; a refused call record's row in ``calls_live``
        goes with it (the call is accounted for by its dead letter, and no
        later start writes a second record for it)."""
        row = fit_row(dead_letters, {"at": utc(at), "kind": kind(item), "ref": ref(item),
                                     "reason": reason, "item": dumps(to_json(item))})
        async with self.engine.begin() as conn:
            await conn.execute(dead_letters.insert(), [row])
            if isinstance(item, CallRecord):
                await conn.execute(delete(calls_live).where(
                    calls_live.c.call_id == stored_id(item.call_id)))

    async def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows the database refused, oldest first (``item`` read back as JSON)."""
        q = select(dead_letters).order_by(dead_letters.c.id)
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["item"] = json.loads(d["item"])
            out.append(d)
        return out

    async def already(self, item: Item) -> Literal["no", "same", "other"]:
        """Is ``item`` in the database already?  ``same``: this very row (an
        earlier write that was not known to have worked, a spool read
        twice); ``other``: a different row under its key (a second record
        for a call); ``no``."""
        async with self.engine.connect() as conn:
            if isinstance(item, CallRecord):
                c = call_records.c
                row = (await conn.execute(select(c.outcome, c.agent_id, c.ended_at).where(
                    c.call_id == stored_id(item.call_id)))).first()
                if row is None:
                    return "no"
                ended = aware(row[2])
                same = row[0] == item.outcome.value and row[1] == item.agent_id \
                    and abs(ended.timestamp() - utc(item.ended_at).timestamp()) < 0.002
                return "same" if same else "other"
            if isinstance(item, Explanation):
                e = explanations.c
                q = select(e.call_id).where(e.call_id == stored_id(item.call_id),
                                            e.offer_id == item.offer_id)
            elif isinstance(item, PendingSms):
                q = select(sms_outbox.c.call_id).where(
                    sms_outbox.c.call_id == stored_id(item.call_id))
            else:
                return "no"
            return "same" if (await conn.execute(q)).first() is not None else "no"

    async def stale(self, items: Sequence[Item | None]) -> set[int]:
        """Which of ``items`` (read back from a spool) the database has
        already, or has newer: records, explanations and SMS already
        written, call rows of calls recorded or updated since, agents'
        states changed since.  Their indexes."""
        calls = {stored_id(i.call_id) for i in items
                 if isinstance(i, CallRecord | LiveCallRow | PendingSms)}
        pairs = {(stored_id(i.call_id), i.offer_id) for i in items if isinstance(i, Explanation)}
        agents = {i.agent_id for i in items if isinstance(i, AgentStateRow)}
        logged = {i.agent_id for i in items if isinstance(i, AgentEventRow)}
        async with self.engine.connect() as conn:
            seen: set[tuple[str, float, str]] = set()
            if logged:  # agent_events has no natural key: (agent, time, new state)
                ev = agent_events.c
                ats = [i.at for i in items if isinstance(i, AgentEventRow)]
                seen = {(r[0], round(aware(r[1]).timestamp(), 3), r[2])
                        for r in await conn.execute(
                            select(ev.agent_id, ev.at, ev.new_state).where(
                                ev.agent_id.in_(logged), ev.at >= utc(min(ats) - 1),
                                ev.at <= utc(max(ats) + 1)))}
            recorded: set[str] = set()
            live_at: dict[str, float] = {}
            sms_done: set[str] = set()
            explained: set[tuple[str, int]] = set()
            since: dict[str, float] = {}
            if calls:
                recorded = {r[0] for r in await conn.execute(
                    select(call_records.c.call_id).where(call_records.c.call_id.in_(calls)))}
                live_at = {r[0]: r[1] for r in await conn.execute(
                    select(calls_live.c.call_id, calls_live.c.updated_at).where(
                        calls_live.c.call_id.in_(calls)))}
                sms_done = {r[0] for r in await conn.execute(
                    select(sms_outbox.c.call_id).where(sms_outbox.c.call_id.in_(calls)))}
            if pairs:
                e = explanations.c
                explained = pairs & {(r[0], r[1]) for r in await conn.execute(
                    select(e.call_id, e.offer_id).where(e.call_id.in_({c for c, _ in pairs})))}
            if agents:
                since = {r[0]: r[1] for r in await conn.execute(
                    select(agent_states.c.agent_id, agent_states.c.since).where(
                        agent_states.c.agent_id.in_(agents)))}
        out = set()
        for n, i in enumerate(items):
            if isinstance(i, CallRecord):
                old = stored_id(i.call_id) in recorded
            elif isinstance(i, LiveCallRow):
                cid = stored_id(i.call_id)
                old = cid in recorded or live_at.get(cid, -1.0) > i.updated_at
            elif isinstance(i, PendingSms):
                old = stored_id(i.call_id) in sms_done
            elif isinstance(i, Explanation):
                old = (stored_id(i.call_id), i.offer_id) in explained
            elif isinstance(i, AgentStateRow):
                old = since.get(i.agent_id, -1.0) > i.since
            elif isinstance(i, AgentEventRow):
                old = (i.agent_id, round(utc(i.at).timestamp(), 3), i.new_state) in seen
            else:
                old = False
            if old:
                out.add(n)
        return out

    async def live_calls(self) -> list[LiveCallRow]:
        """The calls in progress an earlier engine process left (``calls_live``)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(calls_live))).mappings().all()
        return [_from_live(r) for r in rows]

    async def forget_live(self, call_ids: Sequence[str]) -> None:
        """Drop rows of calls that already have their record."""
        if call_ids:
            ids = {stored_id(c) for c in call_ids}
            async with self.engine.begin() as conn:
                await conn.execute(delete(calls_live).where(calls_live.c.call_id.in_(ids)))

    async def recorded(self, call_ids: Sequence[str]) -> set[str]:
        """Which of these calls already have a record (each as given, also
        one whose id the tables hold shortened: :func:`stored_id`)."""
        if not call_ids:
            return set()
        stored = {stored_id(c): c for c in call_ids}
        q = select(call_records.c.call_id).where(call_records.c.call_id.in_(stored))
        async with self.engine.connect() as conn:
            return {stored[r[0]] for r in (await conn.execute(q)).all()}

    async def agent_states(self) -> list[AgentStateRow]:
        """Each agent's last state and pause reason."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(agent_states))).mappings().all()
        return [AgentStateRow(r["agent_id"], r["state"], r["reason"], r["since"]) for r in rows]

    async def explanations_for(self, call_id: str) -> list[dict[str, Any]]:
        q = select(explanations).where(explanations.c.call_id == stored_id(call_id)) \
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
        q = select(call_records).where(call_records.c.call_id == stored_id(call_id))
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




# ------------------------------------------------------------------ the writer


@dataclass(frozen=True, slots=True)
class RecordsConfig:
    """``records:`` in acd.yaml: the record writer's memory bound and spool."""

    #: the spool directory; None: beside a SQLite database file
    #: (``<file>.spool``), else ``spool`` in the working directory
    spool_dir: str | None = None
    #: the database has taken nothing for this long: the rows waiting in
    #: memory go to the spool (so that a crash cannot lose them)
    spool_after_s: float = 30.0
    #: rows held in memory at most; from half of it they go to the spool; if
    #: the spool cannot take them either, rows past it are lost (counted);
    #: while a spool write has not answered yet, up to four times as many
    max_memory_items: int = 50_000
    #: one write (a batch's transaction) given up after this long: the
    #: database counts as unavailable and the batch is tried again
    write_timeout_s: float = 30.0


#: the SQLite files found readable by group or others (warned about once)
_warned_open: set[str] = set()


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite database file, or None (another
    database, an in-memory one, or a ``file:`` URI)."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        return None
    db = u.database or ""
    if u.get_backend_name() != "sqlite" or not db or db == ":memory:" \
            or u.query.get("mode") == "memory" or db.startswith("file:"):
        return None
    return os.path.abspath(db)


def _private_sqlite_file(path: str) -> None:
    """Create ``path`` empty with mode 0600 if it is missing (SQLite would
    create it 0644 under the usual umask); warn once if it exists readable
    by group or others.  A file that cannot be made here is left to SQLite
    (which says why)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            return
        if mode & 0o077 and path not in _warned_open:
            _warned_open.add(path)
            log.warning("the database file %s is readable by group or others (mode %o) though "
                        "it holds callers' numbers; chmod 600 it", printable(path), mode)
        return
    except OSError:
        return
    os.close(fd)


def default_spool_dir(url: str) -> Path:
    """Beside a SQLite database file, ``<file>.spool``; otherwise ``spool``
    in the working directory."""
    path = sqlite_file(url)
    return Path(path + ".spool") if path is not None else Path("spool").absolute()


def database_identity(url: str) -> str:
    """The database a spool's rows are for: its URL without the driver or
    the password (a SQLite file by its absolute path; an in-memory database
    is this process's own)."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        return f"unknown:{os.getpid()}"
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if not db or db == ":memory:" or u.query.get("mode") == "memory":
            return f"sqlite:memory:{os.getpid()}"
        return "sqlite:" + os.path.abspath(db.removeprefix("file:"))
    return u.set(drivername=backend).render_as_string(hide_password=True)


_Verdict = Literal["refused", "down", "unknown"]


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def classify(exc: BaseException) -> _Verdict:
    """``refused``: the database refuses this row (a constraint, a value it
    cannot take: SQLSTATE classes 22 and 23, or the driver cannot send it);
    ``down``: the database is unavailable now (connection, resources, a full
    disk, a timeout, a missing table or right: every row would fail alike);
    ``unknown``: anything else (tried again; halved after a few tries)."""
    if isinstance(exc, DBAPIError):
        state = _sqlstate(exc)
        if exc.connection_invalidated:
            return "down"
        if state is not None:
            return "refused" if state[:2] in ("22", "23") else "down"
        if isinstance(exc, IntegrityError | DataError):
            return "refused"
        if isinstance(exc, OperationalError | InterfaceError) \
                or isinstance(exc.orig, OSError | TimeoutError):
            return "down"
        return "unknown"
    if isinstance(exc, OSError | TimeoutError | PoolTimeout | DisconnectionError):
        return "down"
    if isinstance(exc, UnicodeError | ValueError | OverflowError | TypeError):
        return "refused"
    return "unknown"


def _inner(exc: BaseException) -> BaseException:
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        return orig.__cause__ or orig
    return exc


def db_reason(exc: BaseException) -> str:
    """The database's words, for a dead letter (they may hold the row's
    values: they are kept with the row, never logged)."""
    inner = _inner(exc)
    state = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
    words = " | ".join(line.strip() for line in str(inner).splitlines() if line.strip())
    return f"{type(inner).__name__}{' ' + state if state else ''}: {words}"


_NAMES_ONLY = re.compile(r"[\w.]+(, [\w.]+)*")


def log_reason(exc: BaseException) -> str:
    """The database's words without the row's values, for a log line: the
    first line, cut at the first ``: `` unless only names follow
    (``UNIQUE constraint failed: call_records.call_id``)."""
    inner = _inner(exc)
    state = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
    lines = str(inner).splitlines()
    text = lines[0] if lines else ""
    head, sep, tail = text.partition(": ")
    if sep and not _NAMES_ONLY.fullmatch(tail.strip()):
        text = head
    text = printable(text[:160], newlines=False)
    return f"{type(inner).__name__}{' ' + state if state else ''}{': ' + text if text else ''}"


_WHAT = {"record": "record", "explanation": "routing explanation", "sms": "SMS",
         "live": "row in calls_live", "agent": "state", "queue_log": "queue_log line",
         "agent_event": "state change"}


def _what(item: Item) -> str:
    """``the record of call 1790000000.12`` (the id made printable): names a
    row in a log line without its caller's number or name."""
    whose = "agent" if isinstance(item, AgentStateRow | AgentEventRow) else "call"
    return f"the {_WHAT[kind(item)]} of {whose} {printable(ref(item), newlines=False)}"


class _Down(Exception):
    """The database could not take a part of a batch now."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(log_reason(cause))
        self.cause = cause


@dataclass(slots=True)
class _Batch:
    """Rows being written, in order (None: nothing to write there: a spool
    line that was not a row, a row the database has already).  ``done``:
    how many from the start are settled (written, or refused and kept);
    ``disk``: where the spool's first unread row is in ``items`` (None: the
    rows are not on disk)."""

    items: list[Item | None]
    done: int = 0
    disk: int | None = None


#: how long after a spool failure (the disk is full) before trying again
DISK_RETRY_S = 5.0
#: the first wait before a batch the database could not take is tried again
#: (doubled at each failure up to RETRY_MAX_S)
RETRY_S = 0.2
RETRY_MAX_S = 5.0
#: tries of a batch failing with an error of no known kind before it is halved
UNKNOWN_TRIES = 3


class RecordWriter:
    """Owned task writing rows to the database in batches; see the module.

    Counters (plain attributes; the control API may show them):
    ``written`` (rows the database took), ``dead_lettered`` (refused and kept
    in ``dead_letters``), ``duplicates`` (already in the database: an
    earlier write not known to have worked, a spool read twice),
    ``failed`` (lost: kept nowhere, each logged; 0 unless memory and disk
    both ran out), ``fitted`` (rows changed to fit their tables),
    ``replayed`` (rows read back from earlier spools at start), and the
    gauges :attr:`pending` (accepted and not yet settled), :attr:`spooled`
    (of those, on local disk) and :attr:`in_memory`.
    """

    def __init__(self, db: Database, batch: int = 500, linger_s: float = 0.05, *,
                 config: RecordsConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._cfg = cfg = config or RecordsConfig()
        self._batch = batch
        self._linger = linger_s
        self._clock = clock
        self.spool_dir = Path(cfg.spool_dir) if cfg.spool_dir else default_spool_dir(db.url)
        self._identity = database_identity(db.url)
        self._max_mem = max(2, cfg.max_memory_items)
        self._spill_at = max(1, self._max_mem // 2)
        self._mem: deque[Item] = deque()
        self._inflight: _Batch | None = None
        self._spool: Spool | None = None  # this writer's file (made when first needed)
        self._dead_spool: Spool | None = None  # dead letters the table would not take
        self._disk_lock = asyncio.Lock()
        self._disk_failed_at: float | None = None
        self._spilling = False
        self._spill_task: asyncio.Task[bool] | None = None
        self._wake = asyncio.Event()  # rows came
        self._stop_now = asyncio.Event()  # stop() was called
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing_since: float | None = None
        self._limited = Limited(60.0)
        self._accepted = 0
        self.written = 0
        self.dead_lettered = 0
        self.duplicates = 0
        self.failed = 0
        self.fitted = 0
        self.replayed = 0

    # ------------------------------------------------------------ figures

    @property
    def pending(self) -> int:
        """Accepted and not yet settled (in memory, being written, or on disk)."""
        return self._accepted - self.written - self.dead_lettered - self.duplicates - self.failed

    @property
    def spooled(self) -> int:
        """Rows on local disk not yet written (after a stop: all that were not)."""
        return self._spool.unread if self._spool is not None else 0

    @property
    def in_memory(self) -> int:
        return len(self._mem)

    @property
    def spool_files(self) -> list[Path]:
        """This writer's spool files (those it has made)."""
        return [s.path for s in (self._spool, self._dead_spool) if s is not None]

    # ------------------------------------------------------------- accept

    def put(self, rec: CallRecord) -> None:
        self._accept(rec)

    def put_explanation(self, item: Explanation) -> None:
        self._accept(item)

    def put_live(self, row: LiveCallRow) -> None:
        """A call in progress changed: its row for the next engine process."""
        self._accept(row)

    def put_agent_state(self, row: AgentStateRow) -> None:
        self._accept(row)

    def put_agent_event(self, row: AgentEventRow) -> None:
        """An agent's state changed: a row of the ``agent_events`` log."""
        self._accept(row)

    def put_queue_log(self, entry: QueueLogEntry) -> None:
        """A queue_log line for the realtime ``queue_log`` table."""
        self._accept(entry)

    def put_sms(self, item: PendingSms) -> None:
        """Queue after its call's record: both land in the same transaction
        unless the batch boundary falls between them (then the record first)."""
        self._accept(item)

    def _accept(self, item: Item) -> None:
        self._accepted += 1
        try:
            item, changed = fit_item(item)
        except (TypeError, ValueError) as exc:  # not a row we know: a bug, said once
            self.failed += 1
            self._limited.error(log, "unknown", "the record writer was given %s (%s); "
                                "dropped (%d rows lost so far)", type(item).__name__, exc,
                                self.failed)
            return
        if changed:
            self.fitted += 1
            self._limited.warning(
                log, f"fitted-{kind(item)}",
                "%s: %s would be refused by the database (too long, NUL, lone surrogates, "
                "not a finite number); written fitted (%d rows so far)", _what(item),
                ", ".join(sorted(set(changed))), self.fitted)
        bound = self._max_mem * (0.9 if isinstance(item, LiveCallRow | AgentStateRow) else 1.0)
        if len(self._mem) >= bound and (self._disk_resting() or len(self._mem) >= 4 * bound):
            # memory is full and the spool cannot take more (failed, or hangs);
            # a call's rows in progress go first: the next one replaces them
            self.failed += 1
            self._limited.error(
                log, "lost", "the database and the spool are both unavailable and %d rows "
                "are waiting in memory: %s is lost (%d rows lost so far)",
                len(self._mem), _what(item), self.failed)
            return
        self._mem.append(item)
        self._wake.set()
        if len(self._mem) >= self._spill_at:
            self._spill_soon()

    # ------------------------------------------------------------ running

    def start(self) -> None:
        self._stopping = False
        self._stop_now.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Said at once (not at stop) when the writer ends by an error: rows
        accepted from then on wait in memory, and go to the spool at stop."""
        if not task.cancelled() and task.exception() is not None:
            log.error("the record writer failed: rows are no longer written (they wait in "
                      "memory, and go to the spool at stop)", exc_info=task.exception())

    async def drain(self, poll_s: float = 0.01) -> None:
        """Wait until every row accepted so far is settled (written, or kept
        in dead_letters); raises if the writer is not running."""
        while self.pending > 0:
            if self._task is None or self._task.done():
                raise StorageError("the record writer is not running")
            await asyncio.sleep(poll_s)

    async def _run(self) -> None:
        backoff = Backoff(RETRY_S, RETRY_MAX_S)
        unknowns = 0  # failures of this batch with an error of no known kind
        while True:
            batch = self._inflight
            if batch is None:
                batch = await self._take()
                if batch is None:
                    return
            try:
                try:
                    await self._write(batch, halve_unknown=unknowns >= UNKNOWN_TRIES)
                except _Down:
                    raise
                except Exception as exc:  # a fault of ours: the writer goes on all the same
                    self._limited.error(log, "bug", "writing rows failed (%s); tried again",
                                        log_reason(exc), exc_info=exc)
                    raise _Down(exc) from exc
            except _Down as down:
                if classify(down.cause) == "unknown":
                    unknowns += 1  # (an outage is no reason to halve a batch)
                await self._settle(batch)
                if self._stopping:
                    # not tried again (its wait would be cut short: a loop until
                    # the stop's bound): stop() spools what is left
                    log.warning("stop: the database cannot take rows now (%s); %d rows "
                                "go to the spool", down, self.pending - self.spooled)
                    return
                now = time.monotonic()
                if self._failing_since is None:
                    self._failing_since = now
                self._limited.warning(
                    log, "down", "the database cannot take rows now (%s); %d rows waiting "
                    "(%d on local disk), next try in %.1f s", down, self.pending, self.spooled,
                    backoff.delay)
                if now - self._failing_since >= self._cfg.spool_after_s:
                    self._spill_soon()
                await self._pause(backoff.delay)
                backoff.grow()
                continue
            await self._settle(batch)
            self._inflight = None
            unknowns = 0
            backoff.reset()
            if self._failing_since is not None:
                log.warning("the database takes rows again after %.1f s; %d rows waiting",
                            time.monotonic() - self._failing_since, self.pending)
                self._failing_since = None

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by a stop (not by new rows: a batch fills
        meanwhile, and a database that is down is not asked again at once)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # (no task per wait, as wait_for makes)
                await self._stop_now.wait()

    async def _take(self) -> _Batch | None:
        """The next rows to write, oldest first: the spool's, then memory's
        (taken under the disk lock, so never while a spill moves them);
        None when stopping with nothing left."""
        lingered = False
        while True:
            failed: BaseException | None = None
            async with self._disk_lock:
                spool = self._spool
                if spool is not None and spool.unread > 0:
                    try:
                        lines = await asyncio.to_thread(spool.peek, self._batch)
                    except (OSError, SpoolError) as exc:
                        lines, failed = [], exc
                    if lines:
                        self._inflight = _Batch(self._decode(lines), disk=0)
                        return self._inflight
                if failed is None and self._mem \
                        and (lingered or self._stopping or len(self._mem) >= self._batch):
                    n = min(self._batch, len(self._mem))
                    self._inflight = _Batch([self._mem.popleft() for _ in range(n)])
                    return self._inflight
            if spool is not None and failed is not None:
                # its rows come first (memory's wait behind them): tried again
                # a little later, or left in the file for the next start
                self._disk_failed_at = time.monotonic()
                self._limited.error(log, "spool-read", "the spool file %s cannot be read "
                                    "(%s); %d rows there wait (tried again in %.0f s, else "
                                    "at the next start)", spool.path, failed, spool.unread,
                                    DISK_RETRY_S)
                if self._stopping:
                    return None
                await self._pause(DISK_RETRY_S)
                continue
            if self._mem:
                await self._pause(self._linger)
                lingered = True
                continue
            if self._stopping:
                return None
            self._wake.clear()
            await self._wake.wait()

    def _decode(self, lines: Sequence[dict[str, Any] | None], *,
                count: bool = True) -> list[Item | None]:
        """Spool lines as rows (fitted again: a file may have been edited);
        None for a line that is not one (logged; counted lost if ``count``)."""
        out: list[Item | None] = []
        for line in lines:
            try:
                if line is None:
                    raise ValueError("not JSON")
                out.append(fit_item(from_json(line))[0])
            except (ValueError, TypeError) as exc:
                self.failed += count
                self._limited.error(log, "corrupt", "a spool line is not a row (%s); skipped",
                                    exc)
                out.append(None)
        return out

    async def _write(self, batch: _Batch, *, halve_unknown: bool) -> None:
        """Write ``batch`` from ``batch.done`` on, a transaction per part: a
        part the database refuses is halved until the row is found, which is
        kept in ``dead_letters``.  Raises :class:`_Down` at the first part
        the database cannot take now (``batch.done``: how far it got)."""
        stack = [(batch.done, len(batch.items))]
        while stack:
            lo, hi = stack.pop()
            part = batch.items[lo:hi]
            rows = [i for i in part if i is not None]
            if rows:
                try:
                    async with asyncio.timeout(self._cfg.write_timeout_s):
                        await self._db.write_items(rows)
                except Exception as exc:  # judged: refused, down or unknown
                    verdict = classify(exc)
                    if verdict == "unknown" and halve_unknown:
                        verdict = "refused"
                    if verdict != "refused":
                        raise _Down(exc) from exc
                    if len(rows) > 1:
                        mid = (lo + hi) // 2
                        stack.append((mid, hi))
                        stack.append((lo, mid))
                        continue
                    await self._refused(rows[0], exc)
                else:
                    self.written += len(rows)
            batch.done = hi

    async def _refused(self, item: Item, exc: BaseException) -> None:
        """One row the database refused: already there (an earlier write that
        worked after all: settled), or kept in ``dead_letters``."""
        reason = db_reason(exc)
        said = log_reason(exc)
        seen = "no"
        state = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
        if isinstance(exc, IntegrityError) or (state or "").startswith("23"):
            try:
                seen = await asyncio.wait_for(self._db.already(item), self._cfg.write_timeout_s)
            except Exception as exc2:  # the check is a nicety: judged like a write
                if classify(exc2) == "down":
                    raise _Down(exc2) from exc2
        if seen == "same":
            self.duplicates += 1
            log.debug("%s is in the database already", _what(item))
            return
        if seen == "other":
            reason = f"a second {_WHAT[kind(item)]} for call {ref(item)} (the first is " \
                f"kept): {reason}"
            said = f"it is a second {_WHAT[kind(item)]} for the call (the first is kept): " \
                f"{said}"
        try:
            await asyncio.wait_for(self._db.dead_letter(item, reason, self._clock()),
                                   self._cfg.write_timeout_s)
        except Exception as exc2:  # the dead letter in the spool instead
            if classify(exc2) == "down":
                raise _Down(exc2) from exc2
            await self._dead_to_spool(item, reason, exc2)
            return
        self.dead_lettered += 1
        self._limited.error(log, "refused", "the database refused %s: %s; kept in "
                            "dead_letters (%d rows refused so far)", _what(item), said,
                            self.dead_lettered)

    async def _dead_to_spool(self, item: Item, reason: str, exc: BaseException) -> None:
        """``dead_letters`` refused the row too: it waits in a spool file of
        its own for the next start (never read back by this writer)."""
        line = dumps({**to_json(item), "dead": reason[:512]})
        try:
            async with self._disk_lock:
                if self._dead_spool is None:
                    self._dead_spool = await asyncio.to_thread(Spool.create, self.spool_dir,
                                                               self._identity)
                await asyncio.to_thread(self._dead_spool.append, [line])
        except (OSError, SpoolError) as exc2:
            self.failed += 1
            self._limited.error(log, "lost", "%s, refused by the database, could be kept "
                                "neither in dead_letters (%s) nor in the spool (%s): lost (%d "
                                "rows lost so far)", _what(item), log_reason(exc), exc2,
                                self.failed)
            return
        self.dead_lettered += 1
        self._limited.error(log, "refused-spooled", "the database refused %s and "
                            "dead_letters refused it too (%s); kept in the spool for the next "
                            "start", _what(item), log_reason(exc))

    async def _settle(self, batch: _Batch) -> None:
        """Rows of ``batch`` settled from the spool are taken off it."""
        if batch.disk is None or batch.done <= batch.disk:
            return
        async with self._disk_lock:
            spool = self._spool
            if spool is not None and batch.disk is not None and batch.done > batch.disk:
                n, batch.disk = batch.done - batch.disk, batch.done  # before: never twice
                try:
                    await asyncio.to_thread(spool.consume, n)
                except (OSError, SpoolError) as exc:  # read again at the next start: no harm
                    self._limited.error(log, "spool", "spool file %s: %s", spool.path, exc)

    # ------------------------------------------------------------- spool

    def _disk_resting(self) -> bool:
        return self._disk_failed_at is not None \
            and time.monotonic() - self._disk_failed_at < DISK_RETRY_S

    def _spill_soon(self) -> None:
        if self._spilling or self._disk_resting() or self._stopping:
            return
        if self._spill_task is not None and not self._spill_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._spill_task = loop.create_task(self._spill(), name="record-spill")

    async def _spill(self) -> bool:
        """Memory's rows (and the unwritten rest of a batch taken from
        memory) to the spool, in order, again while more came meanwhile.
        False when the disk refused (the rows stay in memory)."""
        ok = await self._spill_once()
        while ok and len(self._mem) >= self._spill_at and not self._stopping:
            ok = await self._spill_once()
        return ok

    async def _spill_once(self) -> bool:
        if self._spilling:
            return False
        self._spilling = True
        try:
            async with self._disk_lock:
                batch = self._inflight
                with_batch = batch is not None and batch.disk is None
                start = batch.done if batch is not None and with_batch else 0
                head: list[Item | None] = batch.items[start:] if batch is not None \
                    and with_batch else []
                moved = list(self._mem)
                lines = [dumps(to_json(i)) for i in [*head, *moved] if i is not None]
                if not lines:
                    return True
                self._mem.clear()
                try:
                    if self._spool is None:
                        self._spool = await asyncio.to_thread(Spool.create, self.spool_dir,
                                                              self._identity)
                    spool = self._spool
                    await asyncio.to_thread(spool.append, lines)
                except BaseException as exc:
                    # back to memory, in order (also when cancelled at stop: the
                    # append may yet land, a duplicate that replay skips; a
                    # loss would not be seen); the batch's rows are still its own
                    self._mem.extendleft(reversed(moved))
                    if not isinstance(exc, OSError | SpoolError):
                        raise
                    self._disk_failed_at = time.monotonic()
                    self._limited.error(log, "spool-failed", "the spool in %s cannot take "
                                        "rows (%s); %d rows kept in memory (at most %d)",
                                        self.spool_dir, exc, len(self._mem), self._max_mem)
                    return False
                self._disk_failed_at = None
                if batch is not None and with_batch:
                    # the batch's unwritten rows are the spool's first unread ones now
                    # (nothing was unread: rows are taken from memory only then, and
                    # a batch from memory holds no None)
                    batch.disk = start
                log.info("%d rows waiting for the database went to the spool %s (%d there "
                         "now)", len(lines), spool.path, spool.unread)
                return True
        finally:
            self._spilling = False

    # ------------------------------------------------------------- stop

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what was accepted, for at most ``timeout`` seconds whatever the
        database does; what it has not taken by then goes to the spool (for
        the next start).  Returns within ``timeout`` (the spool's own writes
        included: what the disk cannot take by then is counted lost)."""
        task = self._task
        if task is None:
            if self._mem:  # never started (a start that failed): kept all the same
                self._stopping = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._final(), max(0.01, timeout))
            return
        t0 = time.monotonic()
        deadline = t0 + max(0.0, timeout)
        reserve = min(2.0, timeout / 2)  # for the spool
        self._stopping = True
        self._wake.set()
        self._stop_now.set()
        await asyncio.wait({task}, timeout=max(0.0, deadline - reserve - time.monotonic()))
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=min(0.5, reserve / 2))
        spill = self._spill_task
        if spill is not None and not spill.done():
            await asyncio.wait({spill},
                               timeout=max(0.0, deadline - reserve / 2 - time.monotonic()))
            if not spill.done():
                spill.cancel()  # its rows go back to memory, for _final
                await asyncio.wait({spill}, timeout=max(0.0, min(0.1, deadline -
                                                                  time.monotonic())))
        try:
            await asyncio.wait_for(self._final(), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            lost = len(self._mem) + self._unspooled()
            self._mem.clear()
            self._inflight = None
            self.failed += lost
            log.error("stop: the spool in %s did not answer in time; %d rows lost",
                      self.spool_dir, lost)
        self._task = None
        self._limited.flush(log)
        if self.pending:
            log.warning("stop: %d rows not written are kept in the spool for the next start "
                        "(%s)", self.spooled, ", ".join(str(p) for p in self.spool_files))

    def _unspooled(self) -> int:
        b = self._inflight
        if b is None or b.disk is not None:
            return 0
        return sum(1 for i in b.items[b.done:] if i is not None)

    async def _final(self) -> None:
        """At stop: the spool's written rows taken off it, the rest of memory
        (and of a batch not on disk) appended, files closed."""
        batch = self._inflight
        if batch is not None:
            await self._settle(batch)
        if self._mem or self._unspooled():
            if not await self._spill():
                lost = len(self._mem) + self._unspooled()
                self.failed += lost
                log.error("stop: neither the database nor the spool in %s took %d rows; lost",
                          self.spool_dir, lost)
                self._mem.clear()
        self._inflight = None
        async with self._disk_lock:
            for spool in (self._spool, self._dead_spool):
                if spool is not None and not spool.closed:
                    await asyncio.to_thread(spool.close)

    # ------------------------------------------------------------ replay

    async def replay(self) -> int:
        """At start: write the rows earlier writers left in the spool
        directory for this database, oldest file first, before anything
        else (rows the database has already, or has newer, are skipped, so a
        file read twice writes nothing twice).  Returns the rows read.  A
        database that fails meanwhile leaves the rest for the next start."""
        total = 0
        mine = set(self.spool_files)
        for path in Spool.files(self.spool_dir):
            if path in mine:
                continue
            try:
                spool = await asyncio.to_thread(Spool.adopt, path, self._identity)
            except SpoolError:
                spool = None
            if spool is None:
                continue
            t0 = time.monotonic()
            n0 = spool.unread
            try:
                done = await self._replay_file(spool)
            finally:
                await asyncio.to_thread(spool.close)
            total += done
            log.warning("spool %s: %d of %d rows from an earlier run written in %.1f s "
                        "(%d written in all, %d in dead_letters, %d there already)", path,
                        done, n0, time.monotonic() - t0, self.written, self.dead_lettered,
                        self.duplicates)
            if spool.unread:
                log.error("spool %s: the database failed; %d rows left for the next start",
                          path, spool.unread)
                break
        return total

    async def _replay_file(self, spool: Spool) -> int:
        done = 0
        while spool.unread > 0:
            lines = await asyncio.to_thread(spool.peek, self._batch)
            if not lines:
                break
            items = self._decode(lines, count=False)
            corrupt = {n for n, i in enumerate(items) if i is None}
            batch = _Batch(items, disk=0)
            stale: set[int] = set()
            try:
                try:
                    stale = await asyncio.wait_for(self._db.stale(items),
                                                   self._cfg.write_timeout_s)
                except Exception as exc:  # judged like a write
                    raise _Down(exc) from exc
                for n in stale:
                    batch.items[n] = None
                await self._write(batch, halve_unknown=False)
            except _Down as down:
                log.error("replaying the spool: the database cannot take rows (%s)", down)
            # the settled rows: accepted, and each written, kept, there already or lost
            self._accepted += batch.done
            self.replayed += sum(1 for n in range(batch.done) if n not in corrupt)
            self.duplicates += sum(1 for n in stale if n < batch.done)
            self.failed += sum(1 for n in corrupt if n < batch.done)
            await asyncio.to_thread(spool.consume, batch.done)
            done += batch.done
            if batch.done < len(items):
                break
        return done
