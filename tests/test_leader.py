"""Leadership for hot standby (acd/adapters/leader.py) against a real
PostgreSQL (advisory lock; the ``postgres_db`` fixture skips, saying why,
when none answers) and SQLite files (flock): one holder at a time, a standby
that takes over when the holder releases, is cut off, or is SIGKILLed (a real
subprocess; the takeover is timed), and names that do not block each other.

Every test uses a lock name of its own, so parallel runs do not collide."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import db_url
from sqlalchemy.engine import make_url

from acd.adapters.leader import PG_DEAD_CLIENT_S, Leadership, LeadershipError, lock_key
from acd.adapters.storage import Database

#: fast timings for the tests: a standby tries every 0.1 s, a leader checks every 0.2 s
POLL = 0.1
CHECK = 0.2
#: scheduling slack on a loaded 2-core machine
MARGIN = 1.0

LOGGER = "acd.adapters.leader"


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex}"


def leadership(url: str, name: str) -> Leadership:
    return Leadership(url, name, poll_s=POLL, check_s=CHECK, connect_timeout_s=2.0)


@pytest.fixture
def pg_url(postgres_db: Database) -> str:
    """The test PostgreSQL's URL (skips when it is not reachable)."""
    return postgres_db.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return db_url(tmp_path)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``url`` runs on both kinds of database."""
    fixture = "pg_url" if request.param == "postgresql" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` (a test's acquire) and wait for it to end."""
    task.cancel()
    await asyncio.wait({task}, timeout=5)


async def pg_execute(url: str, query: str, *args: object) -> object:
    import asyncpg  # type: ignore[import-untyped]

    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username,
                                 database=u.database, timeout=5)
    try:
        return await conn.fetchval(query, *args, timeout=5)
    finally:
        await conn.close(timeout=5)


async def holder_backend(url: str, name: str) -> int | None:
    """The PostgreSQL backend pid that holds the lock of ``name``."""
    key = lock_key(name)
    pid = await pg_execute(
        url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
        (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
    return pid if isinstance(pid, int) else None


# ---------------------------------------------------------------- both kinds


def test_lock_key_is_stable() -> None:
    """Pinned: a different key in a new version would let an old and a new
    engine lead at once during a rolling upgrade."""
    assert lock_key("acd") == lock_key("acd")
    assert lock_key("acd") == 8789752699671096414
    assert lock_key("acd") != lock_key("acd2")
    assert all(-(2**63) <= lock_key(n) < 2**63 for n in ("", "x", "é" * 100))


async def test_one_holder_then_the_standby_after_release(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    name = unique_name()
    first, second = leadership(url, name), leadership(url, name)
    try:
        await asyncio.wait_for(first.acquire(), 5)
        assert first.held
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(10 * POLL)  # ten tries
        assert not waiting.done(), "a second holder while the first holds"
        assert not second.held
        waits = [r.getMessage() for r in caplog.records if "waiting for leadership" in r.message]
        assert len(waits) == 1, waits  # once, not at every try
        assert f"acd-leader {socket.gethostname()} pid {os.getpid()}" in waits[0]

        t0 = time.monotonic()
        await first.release()
        assert not first.held
        await asyncio.wait_for(waiting, POLL + MARGIN)
        assert second.held
        assert time.monotonic() - t0 < POLL + MARGIN
        assert not first.lost.is_set() and not second.lost.is_set()
    finally:
        await first.release()
        await second.release()


async def test_release_is_idempotent_and_acquire_again(url: str) -> None:
    name = unique_name()
    lead = leadership(url, name)
    await lead.release()  # never acquired
    await asyncio.wait_for(lead.acquire(), 5)
    await asyncio.wait_for(lead.acquire(), 1)  # already held: returns at once
    await lead.release()
    await lead.release()
    assert not lead.held and not lead.lost.is_set()
    other = leadership(url, name)
    try:
        await asyncio.wait_for(other.acquire(), 5)  # really released
        await other.release()
        await asyncio.wait_for(lead.acquire(), 5)  # and can be had again
        assert lead.held
    finally:
        await lead.release()
        await other.release()


async def test_different_names_do_not_block_each_other(url: str) -> None:
    a, b = leadership(url, unique_name()), leadership(url, unique_name())
    try:
        await asyncio.wait_for(a.acquire(), 5)
        await asyncio.wait_for(b.acquire(), 5)
        assert a.held and b.held
    finally:
        await a.release()
        await b.release()


async def test_cancelled_wait_leaves_nothing_behind(url: str) -> None:
    """A standby stopped while waiting (``acd serve`` shut down) drops its
    waiting connection; the leader is untouched."""
    name = unique_name()
    first, second = leadership(url, name), leadership(url, name)
    try:
        await asyncio.wait_for(first.acquire(), 5)
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(3 * POLL)
        await stopped(waiting)
        assert waiting.cancelled() and not second.held
        await asyncio.sleep(3 * CHECK)
        assert first.held and not first.lost.is_set()
    finally:
        await first.release()
        await second.release()


HOLDER = textwrap.dedent("""
    import asyncio, sys
    from acd.adapters.leader import Leadership

    async def main() -> None:
        lead = Leadership(sys.argv[1], sys.argv[2], poll_s=0.1, check_s=0.2)
        await lead.acquire()
        print("acquired", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def test_sigkilled_holder_is_taken_over(url: str) -> None:
    """A real ``acd serve``-like process holds the lock and is SIGKILLed: the
    standby here leads within one poll (its kernel closes the socket / the
    file at once), far inside the documented bound."""
    name = unique_name()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, url, name,
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    standby = leadership(url, name)
    waiting: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 8)
        assert line == b"acquired\n"
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.sleep(5 * POLL)
        assert not waiting.done(), "the standby led while the subprocess held the lock"

        t0 = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(waiting, POLL + MARGIN)
        took = time.monotonic() - t0
        print(f"\ntakeover after SIGKILL ({make_url(url).get_backend_name()}): {took:.3f} s")
        assert standby.held
        assert took < POLL + MARGIN
        assert took < standby.takeover_bound_s
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 5)
        if waiting is not None:
            await stopped(waiting)
        await standby.release()


# ----------------------------------------------------------------- PostgreSQL


async def test_pg_holder_is_named_in_pg_stat_activity(pg_url: str) -> None:
    name = unique_name()
    lead = leadership(pg_url, name)
    try:
        await asyncio.wait_for(lead.acquire(), 5)
        pid = await holder_backend(pg_url, name)
        assert pid is not None
        app = await pg_execute(pg_url, "SELECT application_name FROM pg_stat_activity "
                               "WHERE pid = $1", pid)
        assert app == f"acd-leader {socket.gethostname()} pid {os.getpid()}"
    finally:
        await lead.release()
    assert await holder_backend(pg_url, name) is None  # release() returns with the lock free


async def test_pg_lock_connection_has_the_keepalives_of_the_bound(pg_url: str) -> None:
    """The takeover bound rests on these settings of the lock connection's
    backend (TCP: the test server is at 127.0.0.1)."""
    lead = leadership(pg_url, unique_name())
    try:
        await asyncio.wait_for(lead.acquire(), 5)
        conn = lead._lock._conn  # type: ignore[attr-defined]
        show = {s: await conn.fetchval(f"SHOW {s}") for s in (
            "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
            "tcp_user_timeout")}
        # (a Unix socket would show 0: these are the TCP socket's real values)
        assert show == {"tcp_keepalives_idle": "4", "tcp_keepalives_interval": "2",
                        "tcp_keepalives_count": "3", "tcp_user_timeout": "10000"}
        assert PG_DEAD_CLIENT_S == 10
        assert lead.takeover_bound_s == PG_DEAD_CLIENT_S + POLL + 2.0
    finally:
        await lead.release()


async def test_pg_terminated_backend_is_lost_and_taken_over(pg_url: str) -> None:
    name = unique_name()
    first, second = leadership(pg_url, name), leadership(pg_url, name)
    waiting: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(first.acquire(), 5)
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(3 * POLL)
        pid = await holder_backend(pg_url, name)
        assert pid is not None

        t0 = time.monotonic()
        assert await pg_execute(pg_url, "SELECT pg_terminate_backend($1)", pid) is True
        await asyncio.wait_for(first.lost.wait(), CHECK + MARGIN)
        assert time.monotonic() - t0 < CHECK + MARGIN
        assert not first.held
        await asyncio.wait_for(waiting, POLL + MARGIN)
        assert second.held and not second.lost.is_set()
    finally:
        if waiting is not None:
            await stopped(waiting)
        await first.release()
        await second.release()


class Proxy:
    """A TCP relay to PostgreSQL that can be down (nothing listens) or
    silent (relays nothing, like a network that lost the leader's host)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in self._writers:
            w.close()
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_w}
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pipe(src, dst, (writer, up_w)))
            self._tasks.add(task)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    both: tuple[asyncio.StreamWriter, ...]) -> None:
        try:
            while data := await src.read(65536):
                if not self.silent:
                    dst.write(data)
        except OSError:
            pass  # the other side went away: close both below
        finally:
            for w in both:
                w.close()


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[Proxy]:
    p = Proxy(make_url(pg_url).port or 5432)
    try:
        yield p
    finally:
        await p.stop()


def via(url: str, port: int) -> str:
    return make_url(url).set(port=port).render_as_string(hide_password=False)


async def test_pg_acquire_waits_out_a_database_that_is_down(
        pg_url: str, proxy: Proxy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()  # nothing listens there now
    lead = leadership(via(pg_url, number), unique_name())
    try:
        task = asyncio.create_task(lead.acquire())
        await asyncio.sleep(1.0)
        assert not task.done()  # retrying, not failing
        assert any("cannot connect" in r.message for r in caplog.records)
        await proxy.start(number)  # the database is back
        await asyncio.wait_for(task, 2.0 + MARGIN)  # waits grow 0.1, 0.2, 0.4, 0.8, 1.6
        assert lead.held
    finally:
        await lead.release()


async def test_pg_silent_database_loses_the_lead_before_a_standby_gets_it(
        pg_url: str, proxy: Proxy) -> None:
    """A leader whose database falls silent (its network is cut) steps down
    by its watchdog's timeout; closing its connection ends the session, and
    the standby (not cut off) leads after it, never before."""
    await proxy.start()
    name = unique_name()
    first, second = leadership(via(pg_url, proxy.port), name), leadership(pg_url, name)
    waiting: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(first.acquire(), 5)
        waiting = asyncio.create_task(second.acquire())
        first_lost_when_second_led: list[bool] = []
        waiting.add_done_callback(lambda _: first_lost_when_second_led.append(
            first.lost.is_set()))
        await asyncio.sleep(3 * POLL)
        proxy.silent = True
        t0 = time.monotonic()
        await asyncio.wait_for(first.lost.wait(), 2 * CHECK + MARGIN)
        assert time.monotonic() - t0 < 2 * CHECK + MARGIN
        await asyncio.wait_for(waiting, POLL + MARGIN)
        assert second.held
        assert first_lost_when_second_led == [True]
    finally:
        if waiting is not None:
            await stopped(waiting)
        await first.release()
        await second.release()


def test_pg_check_interval_must_beat_the_servers_dead_client_time() -> None:
    with pytest.raises(ValueError, match="check_s"):
        Leadership("postgresql+asyncpg://u@127.0.0.1/db", check_s=PG_DEAD_CLIENT_S / 2)


async def test_pg_unknown_database_is_an_error_not_a_wait(pg_url: str) -> None:
    bad = make_url(pg_url).set(database=f"no_such_db_{uuid.uuid4().hex[:8]}")
    lead = leadership(bad.render_as_string(hide_password=False), unique_name())
    with pytest.raises(LeadershipError, match="no_such_db"):
        await asyncio.wait_for(lead.acquire(), 5)
    assert not lead.held


# --------------------------------------------------------------------- SQLite


async def test_sqlite_lock_file_beside_the_database(tmp_path: Path) -> None:
    lead = leadership(db_url(tmp_path), unique_name())
    try:
        await asyncio.wait_for(lead.acquire(), 5)
        files = [f for f in os.listdir(tmp_path) if f.endswith(".leader")]
        assert files == [f"acd.db.{lead.name}.leader"]
        text = (tmp_path / files[0]).read_text()
        assert text.startswith(f"acd-leader {socket.gethostname()} pid {os.getpid()} since ")
    finally:
        await lead.release()
    assert (tmp_path / files[0]).read_text() == ""
    default = leadership(db_url(tmp_path), "acd")
    try:
        await asyncio.wait_for(default.acquire(), 5)
        assert (tmp_path / "acd.db.leader").exists()
    finally:
        await default.release()


async def test_sqlite_replaced_lock_file_is_lost(tmp_path: Path) -> None:
    """Removing the lock file would let another process lock a new one: the
    holder notices and steps down."""
    lead = leadership(db_url(tmp_path), unique_name())
    try:
        await asyncio.wait_for(lead.acquire(), 5)
        (tmp_path / f"acd.db.{lead.name}.leader").unlink()
        await asyncio.wait_for(lead.lost.wait(), CHECK + MARGIN)
        assert not lead.held
    finally:
        await lead.release()


async def test_sqlite_memory_is_always_leader() -> None:
    for url in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        a, b = leadership(url, "same"), leadership(url, "same")
        await asyncio.wait_for(a.acquire(), 1)
        await asyncio.wait_for(b.acquire(), 1)
        assert a.held and b.held and a.takeover_bound_s == 0
        await a.release()
        await b.release()


async def test_sqlite_unusable_lock_file_is_an_error(tmp_path: Path) -> None:
    lead = leadership(db_url(tmp_path / "missing-dir"), unique_name())
    with pytest.raises(LeadershipError, match="missing-dir"):
        await asyncio.wait_for(lead.acquire(), 5)


def test_unsupported_database_is_an_error() -> None:
    with pytest.raises(LeadershipError, match="supported: postgresql, sqlite") as err:
        Leadership("mysql+aiomysql://u:secret@h/db")
    assert "secret" not in str(err.value)
    with pytest.raises(LeadershipError, match="not a database URL") as err:
        Leadership("postgresql://u:secret@h:port/db")
    assert "secret" not in str(err.value)
