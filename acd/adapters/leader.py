"""Leadership for hot standby: of the ``acd serve`` processes that share a
database, exactly one holds the leadership and drives Asterisk; the others
wait in :meth:`Leadership.acquire` and take over when it dies.

The database's own locking does the work; there is no protocol of ours
(no heartbeat table, no lease clock):

* **PostgreSQL**: a session-level advisory lock, ``pg_try_advisory_lock(key)``,
  held on a connection of its own.  PostgreSQL releases a session lock when
  the session ends, whichever way it ends: an orderly close, a killed process
  (its kernel closes the socket at once, the backend reads EOF and exits), or
  a host that vanished (the backend notices through TCP keepalive and
  ``tcp_user_timeout``, set on the lock connection: see "Takeover bound").
* **SQLite** (a file): an exclusive :func:`fcntl.flock` on ``<db>.leader``
  beside the database file (``<db>.<name>.leader`` for a name other than
  ``acd``), so two engines on one machine sharing a SQLite file work too.
  The kernel releases the lock when the holder's process ends, however it
  ends.  The file should be on a local file system.
* **In-memory SQLite**: nothing else can share the database, so the process
  is always the leader.

The lock key is a stable signed 64-bit integer derived from the name with
BLAKE2b (:func:`lock_key`), never Python's ``hash()``, which differs between
processes.  Changing the derivation would let an old and a new engine both
lead during a rolling upgrade: ``tests/test_leader.py`` pins it.

Who leads
    The lock connection's ``application_name`` is
    ``acd-leader <hostname> pid <pid>`` while it leads (``acd-standby ...``
    while it waits), so ``pg_stat_activity`` shows it; a standby logs once
    ``waiting for leadership (held by ...)`` naming the holder, found through
    ``pg_locks`` joined with ``pg_stat_activity``.  With SQLite the holder
    writes the same description into the ``.leader`` file.

While held
    A watchdog task, owned by the :class:`Leadership` and cancelled by
    :meth:`Leadership.release`, runs ``SELECT 1`` on the lock connection
    every ``check_s`` seconds, bounded by ``check_s``.  A failure sets
    :attr:`Leadership.lost`, closes the connection (so the session, and with
    it the lock, is surely given up) and logs an error; a connection that
    closes under us (``pg_terminate_backend``, say) is noticed at once through
    asyncpg's termination listener.  With SQLite the watchdog checks that the
    lock file is still the file we locked (a removed or replaced file would
    let another process lock a new one).  A caller that sees ``lost`` set
    must stop driving Asterisk: another engine may take over.

Takeover bound (:attr:`Leadership.takeover_bound_s`)
    How long after the leader's death a waiting standby holds the lock:
    the time until the database frees the lock, plus one poll interval
    (``poll_s``), plus one lock attempt.  PostgreSQL:
    ``PG_DEAD_CLIENT_S + poll_s + connect_timeout_s`` (the worst case, a
    vanished host; 16 s with the defaults).  SQLite file: ``poll_s`` + 1 s of
    slack (an attempt is one local system call).  In-memory: 0.

    * A killed leader process (SIGKILL, crash, OOM): its kernel closes the
      socket at once, PostgreSQL frees the lock at once (the flock likewise),
      so a standby leads within ``poll_s`` plus a round trip.
    * A leader host that vanishes (power cut, network cut): no FIN ever
      arrives.  The lock connection asks its PostgreSQL backend for
      ``tcp_keepalives_idle`` = 4 s, ``tcp_keepalives_interval`` = 2 s,
      ``tcp_keepalives_count`` = 3 and ``tcp_user_timeout`` = 10 s
      (PostgreSQL >= 12), so the backend drops a silent client about 10 s
      (:data:`PG_DEAD_CLIENT_S`) after it last heard from it, whether the
      connection was idle (keepalive probes go unanswered) or the backend had
      a reply in flight (the user timeout bounds retransmission); without
      them Linux waits two hours (idle) or ~15 minutes (retransmission).
      These settings apply to TCP connections only (a Unix socket means the
      same host, where the killed-process case applies).
    * No split brain on a partition: the old leader notices within
      ``2 * check_s`` (the watchdog's interval plus its timeout), which must
      be, and is checked to be, shorter than :data:`PG_DEAD_CLIENT_S`, so it
      has stepped down before the database lets a standby in.

    Not covered: a leader that is alive but frozen (SIGSTOP, a stalled disk)
    keeps the lock, as its kernel still answers keepalives; and a pooler in
    transaction mode (PgBouncer) between the engine and PostgreSQL breaks
    session locks: the lock connection must reach PostgreSQL itself.

Why a plain asyncpg connection and not one of SQLAlchemy's
    A session lock lives as long as its connection, so that connection must
    belong to the lock alone: a pooled connection would go back to the pool
    still holding the lock (or lose it to a ``pre_ping`` reconnect, a
    recycle, or ``dispose()``) without anybody noticing.  asyncpg also gives
    what this needs directly: ``server_settings`` for the keepalive and
    ``application_name`` settings, a connect ``timeout``, per-query timeouts,
    ``terminate()`` to drop the session at once, and a termination listener.
    The connection arguments come from SQLAlchemy's own asyncpg dialect
    (``create_connect_args``), so host, port, user, password, database and
    ``ssl`` are read exactly as the engine's pool reads them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import hashlib
import inspect
import logging
import os
import re
import socket
from typing import Any, Protocol

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from acd.adapters.backoff import Backoff
from acd.logs import Limited

log = logging.getLogger(__name__)

__all__ = ["PG_DEAD_CLIENT_S", "Leadership", "LeadershipError", "lock_key"]

#: PostgreSQL's keepalive settings on the lock connection (seconds; count of probes)
PG_KEEPALIVE_IDLE_S = 4
PG_KEEPALIVE_INTERVAL_S = 2
PG_KEEPALIVE_COUNT = 3
#: how long PostgreSQL keeps the session (and the lock) of a client that fell
#: silent: the keepalive probes and the TCP user timeout both end there
PG_DEAD_CLIENT_S = PG_KEEPALIVE_IDLE_S + PG_KEEPALIVE_INTERVAL_S * PG_KEEPALIVE_COUNT
#: the longest wait between two attempts while the database cannot be reached
RETRY_MAX_S = 10.0
#: a flock attempt is one system call: the SQLite bound's slack is for scheduling
_LOCAL_SLACK_S = 1.0
#: PostgreSQL keeps the first 63 bytes of an application_name
_APP_NAME_MAX = 63
#: a lock name used as it is in a SQLite lock file's name
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

_HOLDER_SQL = """
SELECT a.application_name, host(a.client_addr) AS client_addr, l.pid
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
LIMIT 1
"""


class LeadershipError(Exception):
    """Leadership cannot work as configured (an unsupported database URL, a
    refused login, a lock file that cannot be created): retrying would not
    help."""


class _Unavailable(Exception):
    """The lock's store cannot be reached now (retried; while held: lost)."""


def lock_key(name: str) -> int:
    """The advisory lock key of ``name``: a signed 64-bit integer, the same in
    every process and on every machine (BLAKE2b, 8 bytes)."""
    digest = hashlib.blake2b(f"acd-leader:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _text(exc: BaseException) -> str:
    """``TypeName: message``, or the type's name alone when the message is
    empty (a timeout's)."""
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _who(role: str) -> str:
    """``<role> <hostname> pid <pid>``, cut to what PostgreSQL keeps."""
    tail = f" pid {os.getpid()}"
    head = f"{role} {socket.gethostname()}"
    return head[: _APP_NAME_MAX - len(tail)] + tail


class _Lock(Protocol):
    """One way of holding the lock; errors leave as :class:`_Unavailable`
    (try again) or :class:`LeadershipError` (give up)."""

    takeover_bound_s: float

    async def try_lock(self) -> bool: ...
    async def holder(self) -> str | None: ...
    async def check(self, timeout: float) -> None: ...
    async def drop(self) -> None: ...
    def abort(self) -> None: ...


class Leadership:
    """The leadership named ``name`` over the database at ``url`` (the
    engine's SQLAlchemy URL).  See the module's documentation.

    ``poll_s``: wait between two tries while another process leads.
    ``check_s``: the watchdog's interval (and its check's timeout) while held.
    ``connect_timeout_s``: the bound of one connection attempt or lock query.
    """

    def __init__(self, url: str, name: str = "acd", *, poll_s: float = 1.0,
                 check_s: float = 1.0, connect_timeout_s: float = 5.0) -> None:
        for what, value in (("poll_s", poll_s), ("check_s", check_s),
                            ("connect_timeout_s", connect_timeout_s)):
            if not value > 0:
                raise ValueError(f"Leadership {name!r}: {what} must be positive, not {value}")
        self.name = name
        self.key = lock_key(name)
        self.poll_s = poll_s
        self.check_s = check_s
        self.connect_timeout_s = connect_timeout_s
        #: set when the leadership is lost after :meth:`acquire` (cleared by the next acquire)
        self.lost = asyncio.Event()
        self._lock = _make_lock(url, self)
        #: seconds from the leader's death to a waiting standby holding the lock
        self.takeover_bound_s: float = self._lock.takeover_bound_s
        self._held = False
        self._watchdog: asyncio.Task[None] | None = None
        #: a database down while waiting (a line per retry): one a minute, with a count
        self.limited = Limited(60.0)

    def __repr__(self) -> str:
        state = "held" if self.held else "lost" if self.lost.is_set() else "not held"
        return f"<Leadership {self.name!r} {state}>"

    @property
    def held(self) -> bool:
        """True from :meth:`acquire`'s return until the lock is lost or released."""
        return self._held

    async def acquire(self) -> None:
        """Return once this process holds the leadership.  Tries every
        ``poll_s`` while another holds it (logging once who does); while the
        database cannot be reached, retries with a growing wait (up to
        :data:`RETRY_MAX_S`), each attempt bounded by ``connect_timeout_s``.
        Raises :class:`LeadershipError` when retrying cannot help."""
        if self._held:
            return
        await self._stop_watchdog()
        self.lost.clear()
        backoff = Backoff(self.poll_s, max(self.poll_s, RETRY_MAX_S))
        told_waiting = False
        try:
            while True:
                try:
                    got = await self._lock.try_lock()
                except _Unavailable as exc:
                    self._lock.abort()
                    self.limited.warning(log, "retry", "leadership %r: %s; retrying in %.1fs",
                                         self.name, exc, backoff.delay)
                    await asyncio.sleep(backoff.delay)
                    backoff.grow()
                    continue
                backoff.reset()
                if got:
                    break
                if not told_waiting:
                    told_waiting = True
                    holder = await self._lock.holder()
                    log.info("leadership %r: waiting for leadership (held by %s)",
                             self.name, holder or "an unknown holder")
                await asyncio.sleep(self.poll_s)
        except BaseException:
            self._lock.abort()  # a waiting connection (or fd) must not outlive us
            raise
        self.limited.flush(log)
        self._held = True
        self._watchdog = asyncio.create_task(self._watch(), name=f"leadership {self.name} watchdog")
        log.info("leadership %r: acquired (%s)", self.name, _who("acd-leader"))

    async def release(self) -> None:
        """Give the leadership up (and stop waiting connections); idempotent,
        each step bounded by ``connect_timeout_s``.  Does not set ``lost``."""
        was_held = self._held
        self._held = False
        self.limited.flush(log)
        await self._stop_watchdog()
        await self._lock.drop()
        if was_held:
            log.info("leadership %r: released", self.name)

    # ------------------------------------------------------------ internals

    async def _stop_watchdog(self) -> None:
        task, self._watchdog = self._watchdog, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.connect_timeout_s)
        if not done:
            log.error("leadership %r: the watchdog did not stop within %.1fs",
                      self.name, self.connect_timeout_s)

    async def _watch(self) -> None:
        while self._held:
            await asyncio.sleep(self.check_s)
            if not self._held:
                return
            try:
                await self._lock.check(self.check_s)
            except _Unavailable as exc:
                self._lose(str(exc))
                return
            except Exception as exc:
                # unsure whether we lead means we do not: step down, loudly
                log.exception("leadership %r: the check failed unexpectedly", self.name)
                self._lose(f"unexpected {_text(exc)}")
                return

    def _lose(self, reason: str) -> None:
        """The lock is gone or cannot be vouched for: close its connection
        (so it surely is gone) and tell the owner through ``lost``."""
        if not self._held:
            return
        self._held = False
        self._lock.abort()
        self.lost.set()
        log.error("leadership %r: LOST (%s); this engine must stop driving Asterisk",
                  self.name, reason)
        task = self._watchdog
        if task is not None and task is not asyncio.current_task():
            task.cancel()  # still owned: release() or the next acquire() awaits it


def _make_lock(url: str, owner: Leadership) -> _Lock:
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        # (neither the URL nor SQLAlchemy's message: both may hold a password)
        scheme = url.partition(":")[0]
        raise LeadershipError(f"leadership {owner.name!r}: not a database URL "
                              f"(starting {scheme!r})") from None
    backend = u.get_backend_name()
    if backend == "postgresql":
        return _PgLock(u, owner)
    if backend == "sqlite":
        path = _sqlite_path(u)
        if path is None:
            return _MemoryLock()
        return _FileLock(_lock_file(path, owner.name), owner)
    raise LeadershipError(f"leadership {owner.name!r}: no leader lock for "
                          f"{u.render_as_string(hide_password=True)} "
                          "(supported: postgresql, sqlite)")


def _sqlite_path(u: URL) -> str | None:
    """The database file of a SQLite URL, None for an in-memory database."""
    db = u.database or ""
    if db in ("", ":memory:") or u.query.get("mode") == "memory":
        return None
    if db.startswith("file:") and u.query.get("uri"):
        db = db.removeprefix("file:")
        if db.startswith("//"):  # file:///abs/path
            db = db[2:]
        if db in ("", ":memory:"):
            return None
    return os.path.abspath(db)


def _lock_file(db_path: str, name: str) -> str:
    """``<db>.leader`` for the default name, ``<db>.<name>.leader`` for
    another (its key in hex if the name is not a plain file name part), so
    that different names do not block each other, as on PostgreSQL."""
    if name == "acd":
        return f"{db_path}.leader"
    if not _PLAIN_NAME.fullmatch(name):
        name = f"{lock_key(name) & 0xFFFFFFFFFFFFFFFF:016x}"
    return f"{db_path}.{name}.leader"


# ------------------------------------------------------------------ memory


class _MemoryLock:
    """In-memory SQLite: no other process can share the database."""

    takeover_bound_s = 0.0

    async def try_lock(self) -> bool:
        return True

    async def holder(self) -> str | None:
        return None

    async def check(self, timeout: float) -> None:
        return None

    async def drop(self) -> None:
        return None

    def abort(self) -> None:
        return None


# -------------------------------------------------------------- SQLite file


class _FileLock:
    """An exclusive ``flock`` on ``path``, which holds the holder's
    description.  The file is never removed (removing it would let a second
    process lock a new file while the first still holds the old one); a
    holder checks that the path still names the file it locked."""

    def __init__(self, path: str, owner: Leadership) -> None:
        self.path = path
        self.owner = owner
        # the kernel frees the lock as the holder's process ends: one poll,
        # and slack for a loaded machine (an attempt is one local system call)
        self.takeover_bound_s = owner.poll_s + _LOCAL_SLACK_S
        self._fd: int | None = None
        self._locked = False

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise LeadershipError(f"leadership {self.owner.name!r}: cannot open the lock "
                                      f"file {self.path}: {exc}") from exc
        return self._fd

    def _same_file(self, fd: int) -> bool:
        try:
            now = os.stat(self.path)
            mine = os.fstat(fd)
        except OSError:  # removed, or cannot be vouched for
            return False
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    async def try_lock(self) -> bool:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise LeadershipError(f"leadership {self.owner.name!r}: cannot lock "
                                  f"{self.path}: {exc}") from exc
        if not self._same_file(fd):  # removed or replaced since we opened it
            self.abort()
            raise _Unavailable(f"lock file {self.path} was replaced while locking it")
        self._locked = True
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        text = f"{_who('acd-leader')} since {since}\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
        except OSError as exc:  # the lock holds all the same; only the description is missing
            log.warning("leadership %r: cannot write the holder into %s: %s",
                        self.owner.name, self.path, exc)
        return True

    async def holder(self) -> str | None:
        fd = self._fd
        if fd is None:
            return None
        try:
            text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
        except OSError as exc:
            log.debug("leadership %r: cannot read %s: %s", self.owner.name, self.path, exc)
            return None
        return f"{text} (lock file {self.path})" if text else f"lock file {self.path}"

    async def check(self, timeout: float) -> None:
        fd = self._fd
        if fd is None or not self._locked:
            raise _Unavailable(f"lock file {self.path} is closed")
        if not self._same_file(fd):
            raise _Unavailable(f"lock file {self.path} was removed or replaced")

    async def drop(self) -> None:
        fd = self._fd
        if fd is not None and self._locked:
            try:
                os.ftruncate(fd, 0)
            except OSError as exc:
                log.warning("leadership %r: cannot clear %s: %s", self.owner.name, self.path, exc)
        self.abort()

    def abort(self) -> None:
        fd, self._fd = self._fd, None
        self._locked = False
        if fd is not None:
            os.close(fd)  # frees the flock


# --------------------------------------------------------------- PostgreSQL


class _PgConnection(Protocol):
    """What this module uses of an ``asyncpg.Connection``."""

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...
    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...
    async def close(self, *, timeout: float | None = None) -> None: ...
    def terminate(self) -> None: ...
    def is_closed(self) -> bool: ...
    def add_termination_listener(self, callback: Any) -> None: ...


class _PgLock:
    """``pg_try_advisory_lock`` on a connection of its own (also used, while
    waiting, for the tries)."""

    def __init__(self, url: URL, owner: Leadership) -> None:
        try:
            import asyncpg  # type: ignore[import-untyped]

            dialect = url.get_dialect()
        except (ImportError, NoSuchModuleError) as exc:
            raise LeadershipError(
                "leadership on PostgreSQL needs asyncpg: pip install 'acd[postgres]' "
                "(in a checkout: pip install -e '.[postgres]')") from exc
        if owner.check_s * 2 >= PG_DEAD_CLIENT_S:
            raise ValueError(
                f"Leadership {owner.name!r}: check_s={owner.check_s} is too long: a cut-off "
                f"leader must notice (within 2 * check_s) before PostgreSQL frees its lock "
                f"(after {PG_DEAD_CLIENT_S} s)")
        self.owner = owner
        self.pg: Any = asyncpg
        self.where = url.render_as_string(hide_password=True)
        _, kwargs = dialect().create_connect_args(url)
        accepted = inspect.signature(asyncpg.connect).parameters
        self.connect_kw: dict[str, Any] = {k: v for k, v in kwargs.items() if k in accepted}
        self.takeover_bound_s = PG_DEAD_CLIENT_S + owner.poll_s + owner.connect_timeout_s
        self.hi = (owner.key >> 32) & 0xFFFFFFFF  # pg_locks.classid of a bigint key
        self.lo = owner.key & 0xFFFFFFFF  # pg_locks.objid
        self._conn: _PgConnection | None = None
        self._locked = False

    def _errors(self) -> tuple[type[BaseException], ...]:
        """What asyncpg raises when the database cannot be reached or used now."""
        return (OSError, TimeoutError, self.pg.PostgresError, self.pg.InterfaceError)

    async def _connect(self) -> _PgConnection:
        timeout = self.owner.connect_timeout_s
        settings = dict(self.connect_kw.get("server_settings") or {})
        settings.update({
            "application_name": _who("acd-standby"),
            "tcp_keepalives_idle": str(PG_KEEPALIVE_IDLE_S),
            "tcp_keepalives_interval": str(PG_KEEPALIVE_INTERVAL_S),
            "tcp_keepalives_count": str(PG_KEEPALIVE_COUNT),
            "tcp_user_timeout": str(PG_DEAD_CLIENT_S * 1000),
        })
        kw = {**self.connect_kw, "timeout": timeout, "command_timeout": timeout,
              "server_settings": settings}
        try:
            async with asyncio.timeout(timeout + 1.0):  # asyncpg's own timeout, doubly sure
                conn: _PgConnection = await self.pg.connect(**kw)
        except (self.pg.InvalidAuthorizationSpecificationError,
                self.pg.InvalidCatalogNameError) as exc:
            raise LeadershipError(f"leadership {self.owner.name!r}: {self.where}: {exc}") from exc
        except self._errors() as exc:
            raise _Unavailable(f"cannot connect to {self.where}: "
                               f"{_text(exc)}") from exc
        conn.add_termination_listener(self._closed)
        return conn

    def _closed(self, conn: object) -> None:
        """asyncpg: ``conn`` closed, by us or under us."""
        if conn is self._conn and self._locked:
            self.owner._lose(f"the lock connection to {self.where} closed")

    async def try_lock(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            self._conn = await self._connect()
        conn = self._conn
        timeout = self.owner.connect_timeout_s
        try:
            got = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.owner.key,
                                           timeout=timeout))
            if got:
                await conn.fetchval("SELECT set_config('application_name', $1, false)",
                                    _who("acd-leader"), timeout=timeout)
        except self._errors() as exc:
            # abort() by the caller closes the session: a lock we may have got goes with it
            raise _Unavailable(f"lock query on {self.where} failed: "
                               f"{_text(exc)}") from exc
        self._locked = got
        return got

    async def holder(self) -> str | None:
        conn = self._conn
        if conn is None:
            return None
        try:
            row = await conn.fetchrow(_HOLDER_SQL, self.hi, self.lo,
                                      timeout=self.owner.connect_timeout_s)
        except self._errors() as exc:
            log.debug("leadership %r: cannot tell who holds it: %s", self.owner.name, exc)
            return None
        if row is None:
            return None
        parts = [row["application_name"] or "an unnamed session"]
        if row["client_addr"]:
            parts.append(f"from {row['client_addr']}")
        parts.append(f"backend pid {row['pid']}")
        return " ".join(parts)

    async def check(self, timeout: float) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            raise _Unavailable(f"the lock connection to {self.where} is closed")
        try:
            await conn.fetchval("SELECT 1", timeout=timeout)
        except TimeoutError as exc:
            raise _Unavailable(f"{self.where} did not answer a check "
                               f"within {timeout:g}s") from exc
        except self._errors() as exc:
            raise _Unavailable(f"check on {self.where} failed: "
                               f"{_text(exc)}") from exc

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        locked, self._locked = self._locked, False
        if conn is None or conn.is_closed():
            return
        timeout = self.owner.connect_timeout_s
        try:
            if locked:  # unlock first: once release() returns, the lock is free
                await conn.fetchval("SELECT pg_advisory_unlock($1)", self.owner.key,
                                    timeout=timeout)
            await conn.close(timeout=timeout)
        except self._errors() as exc:
            log.warning("leadership %r: closing the lock connection to %s: %s; "
                        "dropping it", self.owner.name, self.where, exc)
            conn.terminate()

    def abort(self) -> None:
        conn, self._conn = self._conn, None
        self._locked = False
        if conn is not None and not conn.is_closed():
            conn.terminate()  # the socket closes now; the backend ends, the lock with it
