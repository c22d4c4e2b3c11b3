"""Small secure-by-default items (issue 13): the SQLite file is its owner's
only; a failing IVR lookup and the control API's refusals are logged once a
minute per kind with a count (the refusals' held-back count at stop); a port
taken names the setting that chose it."""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

import pytest
from test_api_auth import bearer, listening, request
from test_http_api import FakeEngine, FakeSms

from acd.adapters import storage
from acd.adapters.storage import Database
from acd.api.config import ApiConfig, Role
from acd.api.control import ControlApi
from acd.ivr.interpreter import LookupData
from acd.logs import show_private
from acd.runtime import ivr_agi
from acd.runtime.http_lookup import HttpLookup
from acd.runtime.ivr_agi import _lookup


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_sqlite_file_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual one: SQLite alone would make the file 0644
    try:
        path = tmp_path / "acd.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.create()
            async with db.engine.begin() as conn:  # a write: the -wal and -shm exist
                await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            made = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
            assert len(made) == 3
            assert {p.name: _mode(p) for p in made} == {p.name: 0o600 for p in made}
        finally:
            await db.dispose()
    finally:
        os.umask(old)


async def test_an_existing_sqlite_file_readable_by_others_is_warned_about_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "acd.db"
    path.touch()
    path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="acd.adapters.storage")
    for _ in range(2):
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.create()
        finally:
            await db.dispose()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"the database file {path} is readable by group or others (mode 644) "
                     "though it holds callers' numbers; chmod 600 it"]
    assert _mode(path) == 0o644  # told, not changed behind the operator's back
    # a private one: nothing said
    caplog.clear()
    private = tmp_path / "private.db"
    private.touch(mode=0o600)
    db = Database(f"sqlite+aiosqlite:///{private}")
    try:
        await db.create()
    finally:
        await db.dispose()
    assert caplog.records == []
    assert storage.sqlite_file("sqlite+aiosqlite://") is None
    assert storage.sqlite_file("postgresql+psycopg://u@h/db") is None


async def test_an_unreachable_lookup_is_one_line_with_a_count(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ivr_agi, "lookup_log", ivr_agi.Limited(60.0))
    show_private(False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = HttpLookup()

    async def no_profile() -> None:
        raise AssertionError("not a profile lookup")

    caplog.set_level(logging.WARNING, logger="acd.runtime.ivr_agi")
    try:
        for i in range(20):
            step = LookupData("http", f"http://127.0.0.1:{port}/who?n=1391234{i:04d}", 2.0)
            assert await _lookup(step, no_profile, http.get) is None
    finally:
        await http.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    url = f"http://127.0.0.1:{port}/who?n=*"
    assert lines[0].startswith(f"lookup {url} failed: ClientConnectorError: Cannot connect")
    assert lines[0].count("/who") == 1 and "1391234" not in lines[0]
    ivr_agi.lookup_log.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1].endswith("(and 18 more like it, held back)")


async def test_refusals_are_limited_per_reason_and_counted_at_stop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="acd.api.auth")
    async with listening(tmp_path) as (api, _):
        url = f"http://127.0.0.1:{api.port}"
        for _ in range(3):
            assert (await request(url, "GET", "/health"))[0] == 401
        for _ in range(4):
            assert (await request(url, "GET", "/health", None,
                                  {"Authorization": "Bearer not-ours"}))[0] == 401
        for _ in range(2):
            assert (await request(url, "GET", "/sms/outbox", None,
                                  bearer(api, Role.READ)))[0] == 403
        during = [r.getMessage() for r in caplog.records]
    after = [r.getMessage() for r in caplog.records][len(during):]
    # a wrong-token burst after a no-token refusal is seen, under its own reason
    assert during == [
        "control API: GET /health from 127.0.0.1 refused (401: no credentials (Authorization: "
        "Bearer <token>, the token file's))",
        "control API: GET /health from 127.0.0.1 refused (401: wrong token)",
        "control API: GET /sms/outbox from 127.0.0.1 refused (403: GET /sms/outbox needs the "
        "admin role (these credentials have read))"]
    assert sorted(after) == sorted([
        "control API: GET /health from 127.0.0.1 refused (401: no credentials (Authorization: "
        "Bearer <token>, the token file's)) (and 1 more like it, held back)",
        "control API: GET /health from 127.0.0.1 refused (401: wrong token) "
        "(and 2 more like it, held back)",
        "control API: GET /sms/outbox from 127.0.0.1 refused (403: GET /sms/outbox needs the "
        "admin role (these credentials have read))"])


@pytest.mark.parametrize("public", [False, True])
async def test_a_taken_port_names_its_setting(tmp_path: Path, public: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fields = {"public_port": port} if public else {"port": port}
        api = ControlApi(FakeEngine(FakeSms()), ApiConfig(
            token_file=tmp_path / "acd-api.tokens", **fields))  # type: ignore[arg-type]
        with pytest.raises(OSError) as err:
            await api.start()
    setting = "api.public.host, api.public.port" if public else "api.host, api.port"
    assert str(err.value) == (f"[Errno 98] cannot listen for the control API on 127.0.0.1:"
                              f"{port} (acd.yaml: {setting}): Address already in use")
    assert api.port is None and api.public_port is None
