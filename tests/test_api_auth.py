"""Who may use the control API: tokens, roles, mutual TLS, the SMS link's
public listener, request limits and the token file.

Each action the control API used to allow anyone who could connect (change
an agent's extension, log an agent out, opt a number that sent STOP back in,
fake an app login, take the outbox with its link tokens and texts, read
callers' numbers, reload the flow) is refused without a token (401) and
with the wallboards' read token (403), and works with the role it needs.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import os
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_system import ROOT, system, until
from helpers import acd, free_port
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from test_http_api import FakeEngine, FakeSms
from test_sms_api import POLICY

from acd.adapters.sms_store import sms_events
from acd.api.auth import (
    NEEDS,
    OPEN_ROUTES,
    ApiSetupError,
    load_or_create,
    read_token_file,
    write_token_file,
)
from acd.api.config import ApiConfig, Role, TlsConfig, is_loopback
from acd.api.control import ControlApi
from acd.api.requests import MAX_BODY_BYTES, MAX_DEPTH, MAX_ITEMS
from acd.cli.common import plain_http_refusal
from acd.core.model import AgentState
from acd.logs import SafeFormatter
from acd.runtime.settings import ConfigError, SmsConfig, parse_config
from acd.runtime.sms_sender import SenderConfig
from sim.config import CallerScript, PhoneBehaviour

#: every route of the control listener, a body it accepts, and the role it needs
ROUTES: list[tuple[str, str, Any, Role]] = [
    ("GET", "/health", None, Role.READ),
    ("GET", "/agents", None, Role.READ),
    ("GET", "/agents/a0", None, Role.READ),
    ("POST", "/agents/a0/login", {"ready": False}, Role.AGENT),
    ("POST", "/agents/a0/logout", None, Role.AGENT),
    ("POST", "/agents/a0/ready", None, Role.AGENT),
    ("POST", "/agents/a0/pause", {"reason": "x"}, Role.AGENT),
    ("POST", "/agents/a0/profile", {"extension": "1999"}, Role.ADMIN),
    ("GET", "/queues", None, Role.READ),
    ("GET", "/queues/billing", None, Role.READ),
    ("GET", "/stats", None, Role.READ),
    ("GET", "/flow", None, Role.READ),
    ("POST", "/flow/reload", None, Role.ADMIN),
    ("POST", "/sms/app-login", {"number": "13800138000"}, Role.ADMIN),
    ("POST", "/sms/optout", {"number": "13800138000"}, Role.ADMIN),
    ("GET", "/sms/outbox", None, Role.ADMIN),
    ("GET", "/metrics", None, Role.READ),
    ("GET", "/wallboard", None, Role.READ),
    ("GET", "/wallboard/static/wallboard.js", None, Role.READ),
    ("GET", "/wallboard/state", None, Role.READ),
    ("GET", "/wallboard/events", None, Role.READ),
    ("GET", "/qa/static/qa.css", None, Role.READ),
    ("GET", "/qa", None, Role.ADMIN),
    ("GET", "/qa/c1", None, Role.ADMIN),
    ("GET", "/qa/c1/recording", None, Role.ADMIN),
    ("POST", "/qa/c1/score", None, Role.ADMIN),
    ("POST", "/qa/sign-out", None, Role.ADMIN),
    # open: the sign-in form checks the admin token of its body itself (OPEN below)
    ("POST", "/qa/sign-in", None, Role.ADMIN),
]
#: the one route let in without credentials, and why: it IS the credential
#: check (the admin token in a form's body, never in a URL); it must still
#: refuse a missing or wrong token with 401 and give nothing but the cookie
OPEN = {("POST", "/qa/sign-in")}
#: the route each path of ROUTES stands for, where a{id} or {name} is not it
CANONICAL = {"/wallboard/static/wallboard.js": "/wallboard/static/{name}",
             "/qa/static/qa.css": "/qa/static/{name}", "/qa/c1": "/qa/{call_id}",
             "/qa/c1/recording": "/qa/{call_id}/recording",
             "/qa/c1/score": "/qa/{call_id}/score"}


def canonical(path: str) -> str:
    return CANONICAL.get(path) or path.replace("a0", "{id}").replace("billing", "{name}")


class LinkSms(FakeSms):
    """The fake SMS store with one known link token."""

    def __init__(self) -> None:
        super().__init__()
        self.clicks: list[str] = []

    async def click(self, token: str, now: float) -> str | None:
        self.clicks.append(token)
        return "+8613800138000" if token == "Ab3dE" else None


@asynccontextmanager
async def listening(tmp_path: Path, **config: Any) -> AsyncIterator[tuple[ControlApi, FakeEngine]]:
    """A :class:`ControlApi` on real sockets over the fake engine (no PBX):
    the control listener and the public one on free ports."""
    engine = FakeEngine(LinkSms())
    engine.sms_app_url = "https://m.example.cn/app"  # type: ignore[assignment]
    engine.flows.reload = Reloaded  # type: ignore[method-assign]
    fields: dict[str, Any] = {"port": 0, "public_port": 0,
                              "token_file": tmp_path / "acd-api.tokens", **config}
    api = ControlApi(engine, ApiConfig(**fields))
    await api.start()
    try:
        yield api, engine
    finally:
        await api.stop()


def links(engine: FakeEngine) -> LinkSms:
    assert isinstance(engine.sms_store, LinkSms)
    return engine.sms_store


class Reloaded:
    ok, changed, version, problems, warnings = True, False, "v1", (), ()


def bearer(api: ControlApi, role: Role) -> dict[str, str]:
    assert api.tokens is not None
    return {"Authorization": f"Bearer {api.tokens.by_role[role]}"}


async def request(url: str, method: str, path: str, body: Any = None,
                  headers: dict[str, str] | None = None,
                  **kwargs: Any) -> tuple[int, Any, Any]:
    """(status, JSON or text, headers) of one request."""
    async with aiohttp.ClientSession() as http, \
            http.request(method, url + path, json=body, headers=headers or {},
                         allow_redirects=False, **kwargs) as resp:
        if resp.content_type == "text/event-stream":  # a stream: its headers tell
            return resp.status, "", resp.headers
        data = await resp.json() if resp.content_type == "application/json" \
            else await resp.text()
        return resp.status, data, resp.headers


# --------------------------------------------------------- every route


async def test_every_route_needs_a_token_and_its_role(tmp_path: Path) -> None:
    async with listening(tmp_path) as (api, _):
        url = f"http://127.0.0.1:{api.port}"
        # the table above is the whole of the listener: a new route must be added to it
        app = api.app()
        routes = {(r.method, r.resource.canonical) for r in app.router.routes()
                  if r.resource is not None}
        assert routes == {(m, canonical(p)) for m, p, _, _ in ROUTES}
        assert len(app[NEEDS]) == len(ROUTES) - len(OPEN)
        assert OPEN_ROUTES == OPEN  # nothing else is open, in the guard either
        for method, path, body, need in ROUTES:
            if (method, path) in OPEN:
                await open_route_checks_its_token(api, url, method, path)
                continue
            status, data, headers = await request(url, method, path, body)
            assert status == 401, (method, path, data)
            assert headers["WWW-Authenticate"] == 'Bearer realm="acd"'
            assert data["error"].startswith("unauthorized: no credentials")
            for wrong in ("Bearer not-a-token-of-ours-at-all", "Basic YWRtaW46YWRtaW4=",
                          "Bearer", f"bearer {bearer(api, Role.ADMIN)['Authorization'][7:]}x"):
                status, data, headers = await request(url, method, path, body,
                                                      {"Authorization": wrong})
                assert status == 401, (method, path, wrong)
                assert headers["WWW-Authenticate"] == 'Bearer realm="acd", error="invalid_token"'
            for role in Role:
                status, data, _ = await request(url, method, path, body, bearer(api, role))
                if role < need:
                    assert status == 403, (method, path, role, data)
                    where = canonical(path)
                    assert data["error"] == (
                        f"forbidden: {method} {where} needs the {need.label} role "
                        f"(these credentials have {role.label})")
                else:
                    assert status not in (401, 403), (method, path, role, data)
        # an unknown path: 401 without a token (nothing told), 404 with one
        status, _, _ = await request(url, "GET", "/no/such/path")
        assert status == 401
        status, data, _ = await request(url, "GET", "/no/such/path", None, bearer(api, Role.READ))
        assert status == 404 and data["error"] == "no such endpoint: GET /no/such/path"
        # the scheme's name is not case-sensitive
        status, _, _ = await request(url, "GET", "/health", None, {
            "Authorization": f"bEaReR {bearer(api, Role.READ)['Authorization'][7:]}"})
        assert status == 200


async def open_route_checks_its_token(api: ControlApi, url: str, method: str,
                                      path: str) -> None:
    """The sign-in form's POST: no token, or a wrong one, is 401 (whatever
    Authorization header comes with it: the form's token decides), a lower
    role's 403, none with a cookie; the admin token gives the QA cookie."""
    here = {"Origin": url}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.tokens is not None
    admin = api.tokens.by_role[Role.ADMIN]
    for body, headers in ((None, {}), ("", here), ("token=", here), ("next=/qa", here),
                          (None, bearer(api, Role.ADMIN))):
        status, _, got = await request(url, method, path, data=body,
                                       headers={**form, **headers})
        assert status == 401 and "Set-Cookie" not in got, (body, headers)
        assert got["WWW-Authenticate"] == 'Bearer realm="acd"'
    for wrong in ("not-a-token-of-ours-at-all", admin + "x", admin[:-1]):
        status, _, got = await request(url, method, path, data=f"token={wrong}",
                                       headers={**form, **here, **bearer(api, Role.ADMIN)})
        assert status == 401 and "Set-Cookie" not in got, wrong
        assert got["WWW-Authenticate"] == 'Bearer realm="acd", error="invalid_token"'
    for role in (Role.READ, Role.AGENT):
        status, _, got = await request(url, method, path, headers={**form, **here},
                                       data=f"token={api.tokens.by_role[role]}")
        assert status == 403 and "Set-Cookie" not in got, role
    status, _, got = await request(url, method, path, data=f"token={admin}",
                                   headers={**form, **here})
    assert status == 303 and got["Set-Cookie"].startswith("acd_qa=")
    assert got["Location"] == "/qa"


async def test_refusals_are_logged_rate_limited_and_never_with_the_token(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with listening(tmp_path) as (api, _):
        url = f"http://127.0.0.1:{api.port}"
        wrong = "Wr0ngTokenThatMustNotBeLogged"
        for _ in range(50):
            status, _, _ = await request(url, "POST", "/agents/a0/logout", None,
                                         {"Authorization": f"Bearer {wrong}"})
            assert status == 401
        for _ in range(20):
            status, _, _ = await request(url, "GET", "/sms/outbox", None, bearer(api, Role.READ))
            assert status == 403
        assert api.guard is not None and api.guard.refused == 70
        lines = [r.getMessage() for r in caplog.records if r.name == "acd.api.auth"]
        assert lines == [
            "control API: POST /agents/a0/logout from 127.0.0.1 refused (401: wrong token)",
            "control API: GET /sms/outbox from 127.0.0.1 refused (403: GET /sms/outbox needs "
            "the admin role (these credentials have read))"]
        assert api.tokens is not None
        for secret in (wrong, *api.tokens.by_role.values()):
            assert secret not in caplog.text


# ----------------------------------------------- the former open actions


async def test_each_formerly_open_action_is_refused_without_its_role(tmp_path: Path) -> None:
    """Against the engine on the PBX simulator, with SMS on: nothing changes
    when refused, and the right role does it."""
    sms = SmsConfig(POLICY, "log", sender=SenderConfig(poll_s=0.05))
    phones = {"1001": PhoneBehaviour(), "1002": PhoneBehaviour()}
    async with system(tmp_path, phones, sms=sms) as s:
        store = s.engine.sms_store
        assert store is not None

        async def do(role: str | None, method: str, path: str, body: Any = None) -> Any:
            status, data, _ = await request(s.url, method, path, body,
                                            s.headers(role) if role else None)
            return status, data

        async def refused(method: str, path: str, body: Any = None,
                          also: tuple[str, ...] = ()) -> None:
            for role, want in ((None, 401), ("read", 403), *((r, 403) for r in also)):
                status, data = await do(role, method, path, body)
                assert status == want, (role, method, path, data)

        # an agent's extension (their calls would ring elsewhere): admin only
        await refused("POST", "/agents/a1001/profile", {"extension": "1999"}, also=("agent",))
        assert s.engine.core.agent("a1001").profile.extension == "1001"
        assert await s.engine.profiles.get_agent("a1001") is None  # nothing stored either
        status, a = await do("admin", "POST", "/agents/a1001/profile", {"extension": "1999"})
        assert status == 200 and a["extension"] == "1999"

        # logging an agent out: agent role
        await refused("POST", "/agents/a1002/logout")
        assert s.engine.core.agent("a1002").state is AgentState.READY
        status, a = await do("agent", "POST", "/agents/a1002/logout")
        assert status == 200 and a["state"] == "logged_out"

        # opting back in a number that sent STOP: admin only
        number = "+8613712345678"
        await store.opt_out(number, "sms", time.time())
        await refused("POST", "/sms/optout", {"number": number, "remove": True}, also=("agent",))
        assert [o["number"] for o in await store.opted_out()] == [number]
        status, data = await do("admin", "POST", "/sms/optout", {"number": number,
                                                                  "remove": True})
        assert status == 200 and data["changed"] is True
        assert await store.opted_out() == []

        # a fake app login (counted as diversion): admin only
        await refused("POST", "/sms/app-login", {"number": number}, also=("agent",))

        async def app_logins() -> int:
            async with s.engine.db.engine.connect() as conn:
                rows = (await conn.execute(select(sms_events.c.kind))).scalars().all()
            return sum(1 for k in rows if k == "app_login")

        assert await app_logins() == 0
        status, _ = await do("admin", "POST", "/sms/app-login", {"number": number})
        assert status == 200 and await app_logins() == 1

        # the outbox, with its texts and link tokens: admin only
        await refused("GET", "/sms/outbox", also=("agent",))
        status, rows = await do("admin", "GET", "/sms/outbox")
        assert status == 200 and rows == []

        # reloading the flow: admin only
        loads = s.engine.flows.loads
        await refused("POST", "/flow/reload", also=("agent",))
        assert s.engine.flows.loads == loads
        status, data = await do("admin", "POST", "/flow/reload")
        assert status == 200 and data["ok"] is True and s.engine.flows.loads == loads + 1

        # callers' numbers: none without a token, masked for wallboards, whole for agents
        for aid in ("a1001",):
            assert (await do("agent", "POST", f"/agents/{aid}/pause"))[0] == 200
        h = await s.pbx.place_call(CallerScript(number="13900000001", keys=["", "1"],
                                                patience_s=30, key_delay_s=0.02))
        await until(lambda: s.engine.core.waiting("billing") == [h.uniqueid],
                    what="the call waiting")
        status, _ = await do(None, "GET", "/queues/billing")
        assert status == 401
        status, q = await do("read", "GET", "/queues/billing")
        assert status == 200 and [c["caller"] for c in q["calls"]] == ["139****0001"]
        assert "13900000001" not in json.dumps(q)
        status, q = await do("agent", "GET", "/queues/billing")
        assert [c["caller"] for c in q["calls"]] == ["13900000001"]
        assert s.engine.counters.errors == 0


# ---------------------------------------------------------- the public listener


async def test_the_public_listener_serves_the_link_and_nothing_else(tmp_path: Path) -> None:
    async with listening(tmp_path) as (api, engine):
        public = f"http://127.0.0.1:{api.public_port}"
        control = f"http://127.0.0.1:{api.port}"
        status, _, headers = await request(public, "GET", "/s/Ab3dE?to=https://evil.example")
        assert status == 302 and headers["Location"] == "https://m.example.cn/app"
        status, data, _ = await request(public, "POST", "/sms/click/Ab3dE")
        assert (status, data) == (200, {"ok": True})
        status, data, _ = await request(public, "POST", "/sms/click/unknown")
        assert status == 404
        # an unknown or malformed token still sends the caller on; a malformed
        # one never reaches the store
        status, _, _ = await request(public, "GET", "/s/unknown")
        assert status == 302
        status, _, _ = await request(public, "GET", "/s/" + "x" * 200)
        assert status == 302
        assert links(engine).clicks == ["Ab3dE", "Ab3dE", "unknown", "unknown"]
        # everything else is 404, whatever the method or the credentials
        admin = bearer(api, Role.ADMIN)
        for method, path, body, _ in ROUTES:
            status, data, _ = await request(public, method, path, body, admin)
            assert status == 404, (method, path, data)
        for method, path in (("POST", "/s/Ab3dE"), ("GET", "/sms/click/Ab3dE"),
                             ("DELETE", "/s/Ab3dE"), ("GET", "/"), ("GET", "/s/")):
            status, data, _ = await request(public, method, path)
            assert status == 404, (method, path, data)
        # and the control listener has no link: 401 without a token, 404 with one
        for method, path in (("GET", "/s/Ab3dE"), ("POST", "/sms/click/Ab3dE")):
            assert (await request(control, method, path))[0] == 401
            assert (await request(control, method, path, None, admin))[0] == 404
        assert links(engine).clicks == ["Ab3dE", "Ab3dE", "unknown", "unknown"]


async def test_the_link_redirects_even_when_the_click_cannot_be_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with listening(tmp_path) as (api, engine):
        async def down(token: str, now: float) -> str | None:
            raise OSError("database down")
        links(engine).click = down  # type: ignore[method-assign]
        for _ in range(5):
            status, _, headers = await request(f"http://127.0.0.1:{api.public_port}", "GET",
                                               "/s/Ab3dE")
            assert status == 302 and headers["Location"] == "https://m.example.cn/app"
    lines = [r.getMessage() for r in caplog.records if "a click not counted" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(and 3 more like it, held back)")  # at stop


NUMBER = "13800138000"


def _db_error() -> OperationalError:
    """A database error as SQLAlchemy makes them: its message quotes the
    statement and its parameters (a link token, a caller's number)."""
    return OperationalError("UPDATE sms_outbox SET clicked_at=? WHERE token=? AND number=?",
                            ("Ab3dE", f"+86{NUMBER}"), sqlite3.OperationalError("disk I/O error"))


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every line captured, messages and tracebacks, as the engine writes them."""
    fmt = SafeFormatter("%(levelname)s %(name)s %(message)s")
    # without the traceback text caplog's own formatter left on the record
    records = [logging.makeLogRecord({**r.__dict__, "exc_text": None}) for r in caplog.records]
    return "\n".join(fmt.format(r) for r in records)


async def test_database_errors_never_reach_a_client_nor_flood_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert NUMBER in str(_db_error()) and "Ab3dE" in str(_db_error())
    caplog.set_level(logging.DEBUG, logger="acd.api")
    async with listening(tmp_path) as (api, engine):
        async def down(*args: object) -> Any:
            raise _db_error()
        store = links(engine)
        store.click = down  # type: ignore[method-assign,assignment]
        store.app_login = down  # type: ignore[method-assign,assignment]
        public = f"http://127.0.0.1:{api.public_port}"
        for _ in range(20):
            # the public listener: a click report is 503, the link still redirects
            status, data, headers = await request(public, "POST", "/sms/click/Ab3dE")
            assert (status, data) == (503, {"error": "cannot count the click now: "
                                                     "try again later"})
            assert headers["Retry-After"] == "30"
            status, _, headers = await request(public, "GET", "/s/Ab3dE")
            assert status == 302 and headers["Location"] == "https://m.example.cn/app"
            # a handler that does not catch it: the shared middleware answers
            # 503 with the exception's type only
            status, data, _ = await request(f"http://127.0.0.1:{api.port}", "POST",
                                            "/sms/app-login", {"number": NUMBER},
                                            bearer(api, Role.ADMIN))
            assert (status, data) == (503, {"error": "database unavailable "
                                                     "(OperationalError): try again later"})
    logged = _logged(caplog)
    assert NUMBER not in logged and "Ab3dE" not in logged and "UPDATE" not in logged
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # 20 of each kind: the first line of each, the rest counted (told at stop)
    held = [m for m in messages if m.endswith("held back)")]
    assert len(held) == 3 and all(m.endswith("(and 18 more like it, held back)") for m in held)
    messages = [m for m in messages if m not in held]
    assert sum("reported click not counted" in m for m in messages) == 1
    assert sum("a click not counted" in m for m in messages) == 1
    assert [m for m in messages if "app-login" in m] == [
        "API: POST /sms/app-login: database: OperationalError: (sqlite3.OperationalError) "
        "disk I/O error"]
    assert len(messages) == 3, messages
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(tracebacks) == 1 and "disk I/O error [...]" in _logged(caplog)


async def test_a_bug_is_answered_with_its_type_only_and_logged_once_a_minute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with listening(tmp_path) as (api, engine):
        async def bug(*args: object) -> Any:
            raise KeyError("no_such_field")
        links(engine).click = bug  # type: ignore[method-assign,assignment]
        for _ in range(10):
            status, data, _ = await request(f"http://127.0.0.1:{api.public_port}", "POST",
                                            "/sms/click/Ab3dE")
            assert (status, data) == (500, {"error": "internal error: KeyError"})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "API: POST /sms/click/{token} failed (a bug): KeyError: 'no_such_field'",
        "API: POST /sms/click/{token} failed (a bug): KeyError: 'no_such_field' "
        "(and 8 more like it, held back)"]  # at stop
    assert "Ab3dE" not in _logged(caplog)  # the route's pattern, not the path


# ------------------------------------------------- the commands' client


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request ``answer`` (status, headers, body) and records
    (path, Authorization) of each."""

    seen: list[tuple[str, str | None]]
    answer: tuple[int, dict[str, str], bytes]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        status, headers, body = self.answer
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _serving(host: str, status: int, headers: dict[str, str], body: bytes = b""
             ) -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("H", (_Recorder,), {"seen": seen, "answer": (status, headers, body)})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _network_address() -> str:
    """An address of this machine that is not loopback (skip without one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet: picks the outgoing address
            address = str(sock.getsockname()[0])
        except OSError:
            address = ""
    if not address or is_loopback(address):
        pytest.skip("this machine has no network address that is not loopback")
    return address


TOKEN = "T0ken-" + "x" * 26


def test_the_commands_never_send_the_token_over_plain_http_to_the_network(
        monkeypatch: pytest.MonkeyPatch) -> None:
    address = _network_address()
    monkeypatch.delenv("ACD_API_ALLOW_PLAIN_HTTP", raising=False)
    body = json.dumps([]).encode()
    with _serving(address, 200, {"Content-Type": "application/json"}, body) as (port, seen):
        url = f"http://{address}:{port}"
        res = acd("agents", "live", "show", "--api", url, "--token", TOKEN)
        assert res.exit_code == 5, res.output
        out = " ".join(res.output.split())
        assert f"{url}: refusing to send the API token over plain http" in out
        assert "https://" in out and "ACD_API_ALLOW_PLAIN_HTTP=1" in out
        assert TOKEN not in res.output
        assert seen == []  # refused before connecting
        # the way round it, said in the message, works
        monkeypatch.setenv("ACD_API_ALLOW_PLAIN_HTTP", "1")
        res = acd("agents", "live", "show", "--api", url, "--token", TOKEN)
        assert res.exit_code == 0, res.output
        assert seen == [("/agents", f"Bearer {TOKEN}")]
    # loopback, https: no refusal (checked before any connection is made)
    monkeypatch.delenv("ACD_API_ALLOW_PLAIN_HTTP")
    for ok in ("http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1",
               "https://acd.example.cn:8443"):
        assert plain_http_refusal(ok) is None, ok
    assert plain_http_refusal("http://acd.example.cn:8088") is not None
    assert plain_http_refusal("http://127.0.0.1.example.cn:8088") is not None


def test_the_commands_do_not_follow_redirects() -> None:
    body = json.dumps([]).encode()
    with _serving("127.0.0.1", 200, {"Content-Type": "application/json"}, body) as (
            port2, elsewhere):
        target = f"http://127.0.0.1:{port2}/agents"
        for code in (301, 302, 303, 307, 308):
            with _serving("127.0.0.1", code, {"Location": target}) as (port, seen):
                res = acd("agents", "live", "show", "--api", f"http://127.0.0.1:{port}",
                          "--token", TOKEN)
                assert res.exit_code == 4, res.output
                out = " ".join(res.output.split())
                assert f"it answered {code}, a redirect to {target}" in out
                assert "do not follow redirects" in out
                assert seen == [("/agents", f"Bearer {TOKEN}")]
        assert elsewhere == []  # neither the token nor the request went on


# ------------------------------------------------------------ request limits


async def test_body_size_depth_and_count_limits(tmp_path: Path) -> None:
    async with listening(tmp_path) as (api, engine):
        url = f"http://127.0.0.1:{api.port}"
        admin = bearer(api, Role.ADMIN)
        path = "/agents/a0/profile"
        big = json.dumps({"name": "x" * (MAX_BODY_BYTES + 1)}).encode()
        status, data, _ = await request(url, "POST", path, None, admin, data=big)
        assert (status, data) == (413, {"error": f"body: too large (at most {MAX_BODY_BYTES} "
                                                 "bytes)"})

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the read stops it
            yield b'{"name": "'
            for _ in range(20):
                yield b"x" * 8192
            yield b'"}'
        status, data, _ = await request(url, "POST", path, None, admin, data=chunks())
        assert status == 413 and data["error"].startswith("body: too large")

        deep = "[" * 30_000 + "]" * 30_000  # once a RecursionError: a 500
        status, data, _ = await request(url, "POST", path, None, admin, data=deep.encode())
        assert (status, data) == (400, {"error": f"body: nested deeper than {MAX_DEPTH} levels"})
        nested: Any = 1
        for _ in range(MAX_DEPTH - 1):
            nested = [nested]
        status, data, _ = await request(url, "POST", path, {"groups": nested}, admin)
        assert status == 400 and data["error"] == "groups: must be a list of strings"  # parsed
        many = {"groups": ["g"] * (MAX_ITEMS + 1)}
        status, data, _ = await request(url, "POST", path, many, admin)
        assert (status, data) == (400, {"error": f"body: more than {MAX_ITEMS} values"})
        status, data, _ = await request(url, "POST", path, None, admin,
                                        data=b'{"name": "[[[[[[[[[[[[,,,,"}')
        assert status == 200, data  # brackets and commas in a string do not count
        status, data, _ = await request(url, "POST", path, None, admin, data=b'{"name": "\xff"}')
        assert (status, data) == (400, {"error": "body: not UTF-8 (byte 10)"})
        # a header over the limit: aiohttp refuses it before any handler
        status, _, _ = await request(url, "GET", "/health", None,
                                     {**admin, "X-Filler": "y" * 10_000})
        assert status in (400, 431)
        assert (await request(url, "GET", "/health", None, admin))[0] == 200  # still serving
        assert engine.core.agent("a0").profile.name == "[[[[[[[[[[[[,,,,"


# --------------------------------------------------------- the token file


def test_the_token_file_is_made_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "acd-api.tokens"
    old = os.umask(0)
    try:
        tokens, created = load_or_create(path)
    finally:
        os.umask(old)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(tokens.by_role) == set(Role) and len(set(tokens.by_role.values())) == 3
    assert all(len(t) >= 40 for t in tokens.by_role.values())
    again, created = load_or_create(path)
    assert not created and again.by_role == tokens.by_role  # kept, never replaced
    assert not write_token_file(path, tokens)  # one there already: left alone
    assert [p.name for p in tmp_path.iterdir()] == ["acd-api.tokens"]  # no temporary left
    assert tokens.role_of(tokens.by_role[Role.AGENT]) is Role.AGENT
    assert tokens.role_of(tokens.by_role[Role.AGENT] + "x") is None
    assert tokens.role_of("") is None and tokens.best() == tokens.by_role[Role.ADMIN]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_a_token_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "acd-api.tokens"
    load_or_create(path)
    path.chmod(mode)
    with pytest.raises(ApiSetupError) as err:
        load_or_create(path)
    assert str(err.value) == (f"{path}: the token file may be read or written by group or "
                              f"others (mode {mode:04o}); make it private: chmod 600 {path}")
    with pytest.raises(ApiSetupError):  # the commands refuse it too
        read_token_file(path, owner=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a file to another user needs root")
def test_a_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acd-api.tokens"
    load_or_create(path)
    os.chown(path, 12345, -1)
    with pytest.raises(ApiSetupError, match="belongs to another user"):
        load_or_create(path)
    assert read_token_file(path, owner=False).by_role  # the commands may use it (root reads)


@pytest.mark.parametrize("text, problem", [
    ("", "no tokens"),
    ("# only a comment\n", "no tokens"),
    ("reader: " + "a" * 32 + "\n", ":1: expected `ROLE: TOKEN` with ROLE one of read, agent, "
                                   "admin, not 'reader'"),
    ("admin " + "a" * 32 + "\n", ":1: expected `ROLE: TOKEN`"),
    ("admin: short\n", ":1: the admin token must be 16-256"),
    ("admin: " + "a" * 32 + "\nadmin: " + "b" * 32 + "\n", ":2: a second admin token"),
    ("admin: has a space in it...........\n", ":1: the admin token must be"),
])
def test_a_bad_token_file_is_refused_naming_file_and_line(tmp_path: Path, text: str,
                                                          problem: str) -> None:
    path = tmp_path / "t.tokens"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ApiSetupError) as err:
        load_or_create(path)
    assert str(err.value).startswith(str(path)) and problem in str(err.value)
    path.write_bytes(b"admin: \xff" + b"a" * 30)
    with pytest.raises(ApiSetupError, match="not UTF-8"):
        load_or_create(path)
    one = tmp_path / "one.tokens"
    one.write_text("# a wallboard's file\nread: " + "r" * 43 + "\n", encoding="utf-8")
    one.chmod(0o600)
    assert read_token_file(one).by_role == {Role.READ: "r" * 43}


def test_serve_with_a_readable_token_file_exits_2_naming_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    tokens = tmp_path / "acd-api.tokens"
    load_or_create(tokens)
    tokens.chmod(0o644)
    (tmp_path / "acd.yaml").write_text(
        f"ami: {{port: {free_port()}, secret: x}}\n"
        f"flow: {ROOT / 'ivr_flows' / 'basic.yaml'}\n"
        "database: sqlite+aiosqlite:///acd.db\n"
        "queues: [{name: billing}, {name: general}, {name: tech}]\n"
        f"api: {{port: {free_port()}}}\n", encoding="utf-8")
    res = acd("serve", "--config", "acd.yaml")
    assert res.exit_code == 2, res.output
    # the last words, after the start-up warnings: beside acd.yaml, named as acd.yaml names it
    assert " ".join(res.output.split()).endswith(
        "error: acd-api.tokens: the token file may be read or written by group or others "
        "(mode 0644); make it private: chmod 600 acd-api.tokens")


# --------------------------------------------------------- settings


def _config(api: str, base: Path = ROOT) -> Any:
    import yaml
    data = yaml.safe_load(f"""
flow: {ROOT / "ivr_flows" / "basic.yaml"}
queues: [{{name: billing}}, {{name: general}}, {{name: tech}}]
{api}
""")
    return parse_config(data, "acd.yaml", base)


def test_api_settings_and_a_plain_network_listener_refused(tmp_path: Path) -> None:
    cfg = _config("api: {port: 8088}")
    assert (cfg.api.host, cfg.api.port, cfg.api_port) == ("127.0.0.1", 8088, 8088)
    assert cfg.api.token_file == ROOT / "acd-api.tokens"  # beside acd.yaml
    assert cfg.api.public_port is None and cfg.api.tls is None
    assert _config("api_port: 9000\napi_host: ::1").api.port == 9000  # the old spelling
    assert _config("").api.port is None  # off
    cfg = _config("api: {port: 8088, token_file: /etc/acd/tokens, public: {host: 0.0.0.0, "
                  "port: 8089}}")
    assert cfg.api.token_file == Path("/etc/acd/tokens")
    # the public listener may face the network: it serves only the link
    assert (cfg.api.public_host, cfg.api.public_port) == ("0.0.0.0", 8089)
    for api, problem in (
            ("api: {host: 0.0.0.0, port: 8088}", "api.host: 0.0.0.0 is not a loopback address"),
            ("api_host: 10.0.0.5\napi_port: 8088", "api_host: 10.0.0.5 is not a loopback"),
            ("api: {host: acd.example.org, port: 8088}", "is not a loopback address"),
            ("api: {port: 8088}\napi_port: 8088", "api_port: give it once: api.port"),
            ("api: {port: 8088, public: {port: 8088}}", "api.public.port: 8088 is the control"),
            ("api: {port: 8088, colour: red}", "api.colour: unknown key"),
            ("api: {port: 8088, allow_plain_http: yes please}", "api.allow_plain_http: must be"),
            ("api: {port: 8088, tls: {cert: c.pem}}", "api.tls: needs key"),
            ("api: {port: 8088, tls: {cert: c.pem, key: k.pem, client_roles: {x: admin}}}",
             "api.tls.client_roles: needs api.tls.client_ca"),
            ("api: {port: 8088, tls: {cert: c.pem, key: k.pem, client_ca: ca.pem, "
             "client_roles: {x: root}}}", "api.tls.client_roles.x: 'root' is not a role"),
            ("api: {port: 8088, tls: {cert: nope.pem, key: nope.key}}",
             "api.tls: " + str(tmp_path / "nope.pem"))):
        with pytest.raises(ConfigError) as err:
            _config(api, tmp_path)
        assert problem in str(err.value), (api, str(err.value))
    with pytest.raises(ConfigError) as err:
        _config("api: {host: 0.0.0.0, port: 1}")
    assert str(err.value) == (
        "acd.yaml: api.host: 0.0.0.0 is not a loopback address, so the control API would take "
        "tokens in plain HTTP from the network; give api.tls (cert, key) or set "
        "api.allow_plain_http: true (e.g. behind a TLS proxy)")
    assert _config("api: {host: 0.0.0.0, port: 8088, allow_plain_http: true}").api.port == 8088
    assert _config("api: {host: localhost, port: 8088}").api.port == 8088
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org", ""))


async def test_plain_http_on_the_network_is_refused_or_warned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine()
    api = ControlApi(engine, ApiConfig(host="0.0.0.0", port=0,
                                       token_file=tmp_path / "t.tokens"))
    with pytest.raises(ApiSetupError, match=r"0\.0\.0\.0 is not a loopback address"):
        await api.start()
    assert api.port is None and not (tmp_path / "t.tokens").exists()
    caplog.set_level(logging.INFO)
    api = ControlApi(engine, ApiConfig(host="0.0.0.0", port=0, allow_plain_http=True,
                                       token_file=tmp_path / "t.tokens"))
    await api.start()
    try:
        warned = [r for r in caplog.records if r.levelno == logging.WARNING
                  and "WITHOUT TLS" in r.getMessage()]
        assert len(warned) == 1 and "api.allow_plain_http" in warned[0].getMessage()
    finally:
        await api.stop()


# --------------------------------------------------------------- mutual TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    (d / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n{ext}\n", encoding="ascii")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
             cwd=d)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the engine's certificate (127.0.0.1), client certificates
    ``ops-console`` and ``stranger`` of that CA, and ``rogue`` of another CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (it makes the test certificates)")
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "engine", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                             "extendedKeyUsage=serverAuth")
    for client in ("ops-console", "stranger"):
        _leaf(d, client, "ca", "extendedKeyUsage=clientAuth")
    _leaf(d, "rogue", "other-ca", "extendedKeyUsage=clientAuth")
    return d


def _client_tls(pki: Path, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki / "ca.pem")
    if cert is not None:
        ctx.load_cert_chain(pki / f"{cert}.pem", pki / f"{cert}.key")
    return ctx


async def test_mutual_tls(tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no acd.yaml, no token file: the certificate alone
    tls = TlsConfig(cert=pki / "engine.pem", key=pki / "engine.key", client_ca=pki / "ca.pem",
                    client_roles={"ops-console": Role.ADMIN})
    async with listening(tmp_path, tls=tls) as (api, _):
        url = f"https://127.0.0.1:{api.port}"
        # a certificate with a role: no token needed
        status, data, _ = await request(url, "POST", "/agents/a0/profile", {"name": "Ops"},
                                        ssl=_client_tls(pki, "ops-console"))
        assert status == 200 and data["name"] == "Ops"
        # a certificate of the CA without a role: a token as well
        stranger = _client_tls(pki, "stranger")
        status, _, _ = await request(url, "GET", "/health", ssl=stranger)
        assert status == 401
        status, _, _ = await request(url, "GET", "/health", None, bearer(api, Role.READ),
                                     ssl=stranger)
        assert status == 200
        status, _, _ = await request(url, "GET", "/sms/outbox", None, bearer(api, Role.READ),
                                     ssl=stranger)
        assert status == 403
        # no certificate, or one of another CA: refused in the handshake, even with a token
        for ctx in (_client_tls(pki, None), _client_tls(pki, "rogue")):
            with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
                await request(url, "GET", "/health", None, bearer(api, Role.ADMIN), ssl=ctx)
        # plain HTTP on the TLS port: no answer of ours
        with pytest.raises(aiohttp.ClientError):
            await request(f"http://127.0.0.1:{api.port}", "GET", "/health", None,
                          bearer(api, Role.ADMIN))
        # the commands: $ACD_API_CA, $ACD_API_CERT, $ACD_API_KEY
        env = {"ACD_API_CA": str(pki / "ca.pem"), "ACD_API_CERT": str(pki / "ops-console.pem"),
               "ACD_API_KEY": str(pki / "ops-console.key")}
        res = await asyncio.to_thread(_acd_with_env, env, "agents", "live", "show", "a0",
                                      "--api", url)
        assert res.exit_code == 0, res.output
        assert "Ops" in res.output
        env.pop("ACD_API_CERT")
        env.pop("ACD_API_KEY")
        res = await asyncio.to_thread(_acd_with_env, env, "agents", "live", "show", "--api", url)
        assert res.exit_code == 5, res.output
        assert "TLS" in res.output


def _acd_with_env(env: dict[str, str], *args: str) -> Any:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return acd(*args)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def test_tls_without_client_certificates_takes_tokens(tmp_path: Path, pki: Path) -> None:
    tls = TlsConfig(cert=pki / "engine.pem", key=pki / "engine.key")
    async with listening(tmp_path, tls=tls, host="127.0.0.1") as (api, _):
        url = f"https://127.0.0.1:{api.port}"
        ctx = _client_tls(pki, None)
        assert (await request(url, "GET", "/health", ssl=ctx))[0] == 401
        assert (await request(url, "GET", "/health", None, bearer(api, Role.READ),
                              ssl=ctx))[0] == 200
    # a non-loopback address is allowed with TLS
    assert ApiConfig(host="0.0.0.0", port=1, tls=tls).problem() is None
