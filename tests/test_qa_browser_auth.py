"""The quality review pages for a browser (issue 15): the admin token typed
in the sign-in form (``POST /qa/sign-in``, never in a URL: ``GET
/qa?token=`` is refused) gives a cookie (acd/api/auth.py, ``QA``) that opens
the /qa pages, the score's POST and the sign-out from their own page, and
nothing else; then the whole review in a real browser, signing in by typing
the token (headless Chromium driven by Selenium through
/usr/bin/chromedriver, never a downloaded one)."""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_api_auth import _client_tls, listening, pki  # noqa: F401 - pki: a fixture
from test_http_api import FakeEngine
from test_qa import FORM, GOOD, PBX_DIR, form_data, sample_for_web

from acd.adapters.qa_store import QaStore
from acd.adapters.storage import Database
from acd.api.auth import (
    QA,
    QA_COOKIE,
    QA_COOKIE_MAX_AGE_S,
    SIGN_IN_MAX_BYTES,
    WALLBOARD,
    WALLBOARD_COOKIE,
    BrowserCookie,
    new_tokens,
)
from acd.api.config import ApiConfig, TlsConfig
from acd.api.control import ControlApi
from acd.api.qa_pages import QaPages

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None


def qa_api(engine: Any, db: Database, local: Path, token_file: Path) -> ControlApi:
    engine.db = db
    engine.config = SimpleNamespace(recordings=SimpleNamespace(
        local_dir=str(local), rule=SimpleNamespace(folder=PBX_DIR)))
    api = ControlApi(engine, ApiConfig(token_file=token_file))
    api.qa = QaPages(engine, form_file=FORM)
    return api


@pytest.fixture
async def site(tmp_path: Path, db: Database) -> AsyncIterator[
        tuple[TestClient[Any, Any], ControlApi, Database, Path]]:
    """The control app with the four sampled calls of tests/test_qa.py, and a
    client with no credentials of its own (each request says what it has)."""
    local = tmp_path / "recordings"
    local.mkdir()
    await sample_for_web(db, local)
    api = qa_api(FakeEngine(), db, local, tmp_path / "acd-api.tokens")
    # no access log, as the engine's listener (acd/api/control.py): a log line
    # is then the engine's own (the access log is checked on a real listener below)
    server = TestServer(api.app())
    await server.start_server(access_log=None)
    client = TestClient(server)
    async with client:
        yield client, api, db, local


def tokens_of(api: ControlApi) -> dict[str, str]:
    assert api.tokens is not None
    return {r.label: t for r, t in api.tokens.by_role.items()}


def jar(value: str, name: str = QA_COOKIE) -> dict[str, str]:
    return {"Cookie": f"{name}={value}"}


def here(c: TestClient[Any, Any]) -> str:
    """This server's origin, as a browser's Origin header names it."""
    return str(c.make_url("")).rstrip("/")


async def sign_in(c: TestClient[Any, Any], token: str, next_: str | None = None,
                  headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """The sign-in form's POST, from this server's own page unless
    ``headers`` say otherwise; the client keeps no cookie."""
    data = {"token": token, **({"next": next_} if next_ is not None else {})}
    resp = await c.post("/qa/sign-in", data=data, allow_redirects=False,
                        headers={"Origin": here(c), "Accept": "text/html", **(headers or {})})
    await resp.read()
    c.session.cookie_jar.clear()
    return resp


def hidden_next(page: str) -> str:
    """The sign-in form's ``next`` field, as a browser sends it back."""
    found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert found, page
    return html.unescape(found.group(1))


# ---------------------------------------------------------------- the cookie


async def test_the_sign_in_form_gives_a_cookie_that_opens_the_qa_pages_only(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acd.api.auth")
    c, api, _, _ = site
    tokens = tokens_of(api)
    # without anything: 401; a browser gets the sign-in form, a script JSON
    for path, back in (("/qa", "/qa"), ("/qa/ok?reviewer=r1", "/qa/ok?reviewer=r1"),
                       ("/qa?week=2026-W48&status=assigned", "/qa?week=2026-W48&status=assigned"),
                       ("/qa/ok/recording", "/qa/ok/recording")):
        resp = await c.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
        page = await resp.text()
        assert resp.status == 401 and resp.content_type == "text/html", path
        assert '<form method="post" action="/qa/sign-in">' in page
        assert '<input type="password" name="token"' in page
        assert hidden_next(page) == back, path
        assert "?token" not in page and "docs/quality.md" in page
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="acd"'
        assert resp.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "form-action 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        # its Origin goes with the form's POST (a no-referrer page's would be "null")
        assert resp.headers["Referrer-Policy"] == "strict-origin"
    resp = await c.get("/qa")
    assert resp.status == 401 and (await resp.json())["error"].startswith("unauthorized")
    # a wrong token: 401, the form again; the read and agent tokens: 403; no cookie
    resp = await sign_in(c, "x" * 43, "/qa/ok")
    page = await resp.text()
    assert resp.status == 401 and "Set-Cookie" not in resp.headers
    assert "Wrong token" in page and hidden_next(page) == "/qa/ok"
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="acd", error="invalid_token"'
    for role in ("read", "agent"):
        resp = await sign_in(c, tokens[role])
        page = await resp.text()
        assert resp.status == 403 and "Set-Cookie" not in resp.headers, role
        assert f"That is the {role} token" in page and "need the admin token" in page
        assert tokens[role] not in page
    resp = await sign_in(c, "")
    assert resp.status == 401 and "Set-Cookie" not in resp.headers
    assert not list(c.session.cookie_jar)
    # the admin token: 303 to the page asked for, with the cookie
    resp = await sign_in(c, f" {tokens['admin']}\n", "/qa?reviewer=r1")  # pasted: trimmed
    assert resp.status == 303 and resp.headers["Location"] == "/qa?reviewer=r1"
    assert resp.headers["Cache-Control"] == "no-store"
    header = resp.headers["Set-Cookie"]
    assert header.startswith(f"{QA_COOKIE}=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/qa;", f"Max-Age={12 * 3600}"):
        assert part in header + ";", part
    assert "Secure" not in header  # plain HTTP here; over TLS it is (below)
    assert tokens["admin"] not in header
    cookie = resp.cookies[QA_COOKIE].value
    expires = int(cookie.split(".")[0])
    assert time.time() + QA_COOKIE_MAX_AGE_S - 60 < expires <= time.time() + QA_COOKIE_MAX_AGE_S
    # without a next: /qa
    resp = await sign_in(c, tokens["admin"])
    assert resp.status == 303 and resp.headers["Location"] == "/qa"
    # it opens the pages, the recording, the style and script; each page can sign out
    for path in ("/qa", "/qa?reviewer=r1", "/qa/ok", "/qa/ok/recording", "/qa/static/qa.css",
                 "/qa/static/qa.js"):
        resp = await c.get(path, headers=jar(cookie))
        assert resp.status == 200, path
        if resp.content_type == "text/html":
            assert '<form method="post" action="/qa/sign-out"' in await resp.text()
    # ... and nothing else: other reads, the wallboard, changes, admin paths
    for method, path in (("GET", "/health"), ("GET", "/agents"), ("GET", "/queues"),
                         ("GET", "/metrics"), ("GET", "/sms/outbox"), ("GET", "/wallboard"),
                         ("GET", "/wallboard/state"), ("GET", "/qa-assets/qa.css"),
                         ("GET", "/qax"), ("POST", "/flow/reload"),
                         ("POST", "/agents/a0/profile"), ("POST", "/qa"),
                         ("POST", "/qa/ok"), ("POST", "/qa/ok/recording"),
                         ("POST", "/sms/optout"), ("POST", "/qa/sign-out/x")):
        resp = await c.request(method, path, headers={**jar(cookie), "Origin": here(c)})
        assert resp.status == 401, (method, path, resp.status)
    # a forged, an expired, another key's or another cookie's value: 401
    forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
    assert api.tokens is not None
    old = BrowserCookie(api.tokens, QA, clock=lambda: time.time() - QA_COOKIE_MAX_AGE_S - 1)
    board = BrowserCookie(api.tokens, WALLBOARD).make()
    for bad in (forged, "99999999999." + cookie.split(".")[1], "", "1.2", old.make(), board,
                BrowserCookie(new_tokens(), QA).make()):
        resp = await c.get("/qa", headers=jar(bad))
        assert resp.status == 401, bad
        error = (await resp.json())["error"]
        assert "expired or not this server's: sign in again at /qa" in error
    # the QA cookie under the wallboard's name opens nothing
    assert (await c.get("/wallboard/state", headers=jar(cookie, WALLBOARD_COOKIE))).status == 401
    # with a bearer token the token decides: the read token cannot see /qa
    read = {"Authorization": f"Bearer {tokens['read']}"}
    assert (await c.get("/qa", headers={**jar(cookie), **read})).status == 403
    # no token in the log, whichever was typed; the sign-in is logged
    messages = [r.getMessage() for r in caplog.records]
    assert not any(t in m for m in messages for t in tokens.values())
    assert "control API: the quality review pages: signed in from 127.0.0.1" in messages
    assert "control API: POST /qa/sign-in from 127.0.0.1 refused (401: wrong token)" in messages


async def test_a_token_in_the_url_is_refused_and_never_logged(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acd.api.auth")
    c, api, _, _ = site
    tokens = tokens_of(api)
    cookie = (await sign_in(c, tokens["admin"])).cookies[QA_COOKIE].value
    for token in (tokens["admin"], tokens["read"], "x" * 43):
        for path in (f"/qa?token={token}", f"/qa?reviewer=r1&token={token}",
                     f"/qa/ok?token={token}", f"/qa/static/qa.css?token={token}"):
            # a browser: 400, the form, told why; no cookie, the token nowhere in the page
            resp = await c.get(path, headers={"Accept": "text/html"}, allow_redirects=False)
            page = await resp.text()
            assert resp.status == 400 and "Set-Cookie" not in resp.headers, path
            assert "A token does not go in the address" in page
            assert '<form method="post" action="/qa/sign-in">' in page
            assert token not in page and "token=" not in hidden_next(page)
            # a script: 400 JSON; with a good cookie or the admin bearer token as well: 400
            for headers in ({}, jar(cookie), {"Authorization": f"Bearer {tokens['admin']}"}):
                resp = await c.get(path, headers=headers, allow_redirects=False)
                assert resp.status == 400 and "Set-Cookie" not in resp.headers, path
                assert "a token does not belong in a URL" in (await resp.json())["error"]
    assert not list(c.session.cookie_jar)
    messages = [r.getMessage() for r in caplog.records]
    assert "control API: GET /qa from 127.0.0.1 refused (400: the quality review pages: a " \
           "token does not belong in a URL (browsers keep URLs in their history, proxies " \
           "and servers in their logs): sign in with the form of /qa)" in messages
    assert not any(t in m for m in messages for t in tokens.values())
    assert not any("token=" in m for m in messages)
    # the refusals are rate-limited: one line per kind a minute, however many
    kinds = [m for m in messages if "refused (400" in m]
    assert len(kinds) == 1, kinds


async def test_the_sign_in_form_must_come_from_its_own_page(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path]) -> None:
    """CSRF on the sign-in: the POST must name this server in its Origin
    (or, without one, its Referer), else 403 before the token is compared."""
    c, api, _, _ = site
    admin = tokens_of(api)["admin"]
    for why, headers in (("neither", {"Origin": ""}),
                         ("another site", {"Origin": "https://evil.example"}),
                         ("null", {"Origin": "null"}),
                         ("another port", {"Origin": "http://127.0.0.1:1"}),
                         ("referer", {"Origin": "", "Referer": "https://evil.example/qa"}),
                         ("not a URL", {"Origin": "", "Referer": "qa/ok"})):
        for token in (admin, "x" * 43):
            resp = await sign_in(c, token, headers=headers)
            assert resp.status == 403 and "Set-Cookie" not in resp.headers, why
            assert "must be sent from this server's own page" in html.unescape(
                await resp.text()), why
    # its own page's Referer (no Origin), then its Origin: signed in
    resp = await sign_in(c, admin, headers={"Origin": "", "Referer": f"{here(c)}/qa/ok"})
    assert resp.status == 303 and QA_COOKIE in resp.cookies
    resp = await sign_in(c, admin)
    assert resp.status == 303 and QA_COOKIE in resp.cookies


@pytest.mark.parametrize("asked", [
    "https://evil.example/qa", "//evil.example/qa", "///evil.example/qa", "/\\evil.example",
    "\\\\evil.example\\qa", "/qa/../agents", "/qa/%2e%2e/agents", "/qa/..%2fagents",
    "/qa/./ok", "/agents", "/qax", "/qa@evil.example", "/wallboard", "qa", "",
    "/qa\r\nSet-Cookie: x=1", "/qa\tx", "/qa ok", "javascript:alert(1)", "http:/qa",
    "https:///evil.example/qa", "/qa/sign-in", "/qa/ok?x=é", "/qa/" + "x" * 600])
async def test_the_sign_in_never_sends_the_browser_elsewhere(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path], asked: str) -> None:
    """No open redirect: a ``next`` that is not a /qa path of this server
    sends the browser to /qa."""
    c, api, _, _ = site
    resp = await sign_in(c, tokens_of(api)["admin"], asked)
    assert resp.status == 303 and resp.headers["Location"] == "/qa", asked


async def test_the_sign_in_keeps_the_page_asked_for(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path]) -> None:
    c, api, _, _ = site
    call = "/qa/%E5%91%BC%E5%8F%AB"  # a call id in Chinese, percent-encoded
    for asked, back in (("/qa/ok?reviewer=r1", "/qa/ok?reviewer=r1"),
                        ("/qa?week=2026-W48&status=assigned",
                         "/qa?week=2026-W48&status=assigned"),
                        ("/qa/ok#top", "/qa/ok"), (call, call),
                        ("/qa/static/qa.css", "/qa/static/qa.css")):
        resp = await sign_in(c, tokens_of(api)["admin"], asked)
        assert resp.status == 303 and resp.headers["Location"] == back, asked


async def test_the_sign_in_body_is_a_small_form(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path]) -> None:
    c, api, _, _ = site
    admin = tokens_of(api)["admin"]
    origin = {"Origin": here(c)}
    form = {**origin, "Content-Type": "application/x-www-form-urlencoded"}
    for status, body, headers in (
            (413, f"token={admin}&next=/qa&pad=" + "x" * SIGN_IN_MAX_BYTES, form),
            (415, f'{{"token": "{admin}"}}', {**origin, "Content-Type": "application/json"}),
            (400, "&".join(f"f{i}=1" for i in range(9)) + f"&token={admin}", form),
            (400, b"token=\xff\xfe", form)):
        resp = await c.post("/qa/sign-in", data=body, headers=headers, allow_redirects=False)
        assert resp.status == status and "Set-Cookie" not in resp.headers, status
        assert admin not in await resp.text()
    # the first of a field given twice
    resp = await c.post("/qa/sign-in", data=f"token={admin}&token=x&next=/qa/ok&next=//evil",
                        headers=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/qa/ok"
    # GET /qa/sign-in opens nothing without the cookie (it is not the open route)
    c.session.cookie_jar.clear()
    assert (await c.get("/qa/sign-in")).status == 401


async def test_sign_out_clears_the_cookie(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path]) -> None:
    c, api, _, _ = site
    cookie = (await sign_in(c, tokens_of(api)["admin"])).cookies[QA_COOKIE].value
    # from another site, or without Origin and Referer: 403, the cookie stays
    for headers in ({}, {"Origin": "https://evil.example"}):
        resp = await c.post("/qa/sign-out", headers={**jar(cookie), **headers},
                            allow_redirects=False)
        assert resp.status == 403 and "Set-Cookie" not in resp.headers
    # without the cookie: 401 (nothing to sign out of)
    assert (await c.post("/qa/sign-out", headers={"Origin": here(c)},
                         allow_redirects=False)).status == 401
    resp = await c.post("/qa/sign-out", headers={**jar(cookie), "Origin": here(c)},
                        allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/qa"
    parts = [p.strip() for p in resp.headers["Set-Cookie"].split(";")]
    assert parts[0] in (f'{QA_COOKIE}=""', f"{QA_COOKIE}=")
    assert "Max-Age=0" in parts and "Path=/qa" in parts and "HttpOnly" in parts


async def test_the_score_post_with_the_cookie_needs_its_own_page(
        site: tuple[TestClient[Any, Any], ControlApi, Database, Path]) -> None:
    """CSRF: a POST carrying only the cookie must name this server in its
    Origin (or, without one, its Referer); without either it is refused."""
    c, api, db, _ = site
    assert api.guard is not None
    cookie = api.guard.qa.make()
    data = form_data(GOOD, reviewer="r1", comment="ok")
    store = QaStore(db)
    for why, headers in (("neither", {}), ("another site", {"Origin": "https://evil.example"}),
                         ("null", {"Origin": "null"}),
                         ("another port", {"Origin": "http://127.0.0.1:1"}),
                         ("referer", {"Referer": "https://evil.example/qa/ok"}),
                         ("not a URL", {"Referer": "qa/ok"})):
        resp = await c.post("/qa/ok/score", data=data, headers={**jar(cookie), **headers},
                            allow_redirects=False)
        assert resp.status == 403, why
        assert "from this server's own page" in (await resp.json())["error"], why
    review = await store.review("ok")
    assert review is not None and review["score"] is None
    # its own page's Referer (no Origin), then its Origin: kept
    resp = await c.post("/qa/ok/score", data=data, allow_redirects=False,
                        headers={**jar(cookie), "Referer": f"{here(c)}/qa/ok?reviewer=r1"})
    assert resp.status == 303 and resp.headers["Location"] == "/qa/ok?reviewer=r1&saved=1"
    resp = await c.post("/qa/ok/score", data={**data, "comment": "again"},
                        allow_redirects=False, headers={**jar(cookie), "Origin": here(c)})
    assert resp.status == 303
    review = await store.review("ok")
    assert review is not None and review["score"]["comment"] == "again"
    assert review["score"]["score"] == 90.0
    # an expired cookie on the form's POST: a browser gets the sign-in form,
    # which goes back to the call's page
    old = BrowserCookie(api.tokens or new_tokens(), QA,
                        clock=lambda: time.time() - QA_COOKIE_MAX_AGE_S - 1).make()
    resp = await c.post("/qa/ok/score", data=data, headers={
        **jar(old), "Origin": here(c), "Referer": f"{here(c)}/qa/ok?reviewer=r1",
        "Accept": "text/html"})
    page = await resp.text()
    assert resp.status == 401 and 'action="/qa/sign-in"' in page
    assert hidden_next(page) == "/qa/ok?reviewer=r1"


async def test_a_new_token_file_voids_the_cookie(tmp_path: Path, db: Database) -> None:
    local = tmp_path / "recordings"
    local.mkdir()
    token_file = tmp_path / "acd-api.tokens"
    first = qa_api(FakeEngine(), db, local, token_file)
    async with TestClient(TestServer(first.app())) as c:
        cookie = (await sign_in(c, tokens_of(first)["admin"])).cookies[QA_COOKIE].value
        assert (await c.get("/qa", headers=jar(cookie))).status == 200
    token_file.unlink()  # new tokens at the next start
    second = qa_api(FakeEngine(), db, local, token_file)
    async with TestClient(TestServer(second.app())) as c:
        assert tokens_of(second)["admin"] != tokens_of(first)["admin"]
        assert (await c.get("/qa", headers=jar(cookie))).status == 401


async def test_the_engine_listener_logs_no_token_and_wrong_tokens_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On the engine's own listener (no access log): a token in the URL, a
    typed one, a wrong one, fifty wrong ones: no token in any log line, one
    line per kind of refusal."""
    caplog.set_level(logging.DEBUG)
    async with listening(tmp_path, host="127.0.0.1") as (api, _):
        url = f"http://127.0.0.1:{api.port}"
        tokens = tokens_of(api)
        wrong = "Wr0ngTokenThatMustNotBeLogged"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/qa?token={tokens['admin']}") as resp:
                assert resp.status == 400
            for _ in range(50):
                async with s.post(f"{url}/qa/sign-in", data={"token": wrong},
                                  headers={"Origin": url}, allow_redirects=False) as resp:
                    assert resp.status == 401
            async with s.post(f"{url}/qa/sign-in", data={"token": tokens["admin"]},
                              headers={"Origin": url}, allow_redirects=False) as resp:
                assert resp.status == 303
        assert api.guard is not None and api.guard.refused == 51
    messages = [r.getMessage() for r in caplog.records]
    for secret in (wrong, *tokens.values()):
        assert secret not in caplog.text
    assert not any("token=" in m for m in messages)
    line = "control API: POST /qa/sign-in from 127.0.0.1 refused (401: wrong token)"
    # the first, and at stop the count of the others held back
    assert [m for m in messages if "refused (401" in m] == [
        line, f"{line} (and 48 more like it, held back)"]


async def test_the_cookie_is_secure_over_tls(tmp_path: Path, pki: Path) -> None:  # noqa: F811
    tls = TlsConfig(cert=pki / "engine.pem", key=pki / "engine.key")
    async with listening(tmp_path, tls=tls, host="127.0.0.1") as (api, _):
        ctx: ssl.SSLContext = _client_tls(pki, None)
        admin = tokens_of(api)["admin"]
        origin = f"https://127.0.0.1:{api.port}"
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{origin}/qa/sign-in", ssl=ctx, allow_redirects=False,
                              data={"token": admin}, headers={"Origin": origin}) as resp:
                assert resp.status == 303
                parts = [p.strip() for p in resp.headers["Set-Cookie"].split(";")]
                assert parts[0].startswith(f"{QA_COOKIE}=") and "Secure" in parts


# --------------------------------------------------------------- the browser


@contextmanager
def chromium() -> Iterator[Any]:
    if webdriver is None:
        pytest.skip("selenium is not installed (dev extra)")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.exists() and os.access(path, os.X_OK)):
            pytest.skip(f"no {path.name} at {path} (apt install {package})")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    except WebDriverException as exc:
        pytest.skip(f"Chromium would not start under chromedriver: {exc.msg}")
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()


def review_in_the_browser(driver: Any, url: str, admin: str) -> dict[str, Any]:
    """A token in the address (refused), then sign in by typing the token in
    the form, open the list, open call ``ok``, answer the form, send it,
    sign out; what the browser saw on the way (every address it showed)."""
    seen: dict[str, Any] = {"urls": []}
    driver.get(f"{url}/qa?token=not-the-admin-token")  # refused, whatever the token
    seen["in_url"] = driver.find_element(By.TAG_NAME, "body").text
    seen["cookies_in_url"] = [c["name"] for c in driver.get_cookies()]
    driver.get(f"{url}/qa?reviewer=r1")  # no cookie yet: the sign-in form
    seen["urls"].append(driver.current_url)
    seen["sign_in"] = driver.find_element(By.TAG_NAME, "body").text
    field = driver.find_element(By.CSS_SELECTOR, 'input[type="password"][name="token"]')
    field.send_keys(admin)
    driver.find_element(By.CSS_SELECTOR, 'form[action="/qa/sign-in"] button').click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                                    "table.calls")))
    seen["after_sign_in"] = driver.current_url
    seen["urls"].append(driver.current_url)
    seen["cookies"] = {c["name"]: c for c in driver.get_cookies()}
    # the style and the script came with the cookie: qa.js shows local times
    seen["css_rules"] = driver.execute_script(
        "return Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0)")
    first_time = driver.find_element(By.CSS_SELECTOR, "time[datetime]")
    seen["time"] = (first_time.get_attribute("datetime"), first_time.text)
    driver.find_element(By.CSS_SELECTOR, 'a[href^="/qa/ok?"]').click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "score")))
    seen["call_page"] = driver.current_url
    seen["urls"].append(driver.current_url)
    seen["audio"] = driver.find_element(By.TAG_NAME, "audio").get_attribute("src")
    seen["speed"] = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "p.speed button")]
    for item, answer in GOOD.items():
        driver.find_element(By.CSS_SELECTOR,
                            f'input[name="item.{item}"][value="{answer}"]').click()
    driver.find_element(By.NAME, "comment").send_keys("清楚，礼貌")
    driver.find_element(By.CSS_SELECTOR, "#score button[type=submit]").click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR,
                                                                    "p.saved, div.error")))
    seen["after_post"] = driver.current_url
    seen["urls"].append(driver.current_url)
    seen["saved"] = driver.find_element(By.CSS_SELECTOR, "p.saved").text
    driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.NAME, "token")))
    seen["after_sign_out"] = driver.current_url
    seen["urls"].append(driver.current_url)
    seen["cookies_after_sign_out"] = [c["name"] for c in driver.get_cookies()]
    return seen


@pytest.mark.slow
async def test_a_reviewer_scores_a_call_in_a_real_browser(tmp_path: Path, db: Database) -> None:
    local = tmp_path / "recordings"
    local.mkdir()
    await sample_for_web(db, local)
    api = qa_api(FakeEngine(), db, local, tmp_path / "acd-api.tokens")
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        cm = chromium()
        driver = await asyncio.to_thread(cm.__enter__)
        try:
            seen = await asyncio.to_thread(review_in_the_browser, driver, url,
                                           tokens_of(api)["admin"])
        finally:
            await asyncio.to_thread(cm.__exit__, None, None, None)
    finally:
        await server.close()
    assert "A token does not go in the address" in seen["in_url"]
    assert seen["cookies_in_url"] == []
    assert "Sign in with the admin token" in seen["sign_in"]
    assert seen["after_sign_in"] == f"{url}/qa?reviewer=r1"  # back to the page asked for
    admin = tokens_of(api)["admin"]
    assert not any(admin in u or "token" in u for u in seen["urls"]), seen["urls"]
    cookie = seen["cookies"][QA_COOKIE]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/qa"
    assert seen["css_rules"] > 0
    iso, shown = seen["time"]
    assert iso and shown  # the server's own format, in the configured zone
    assert seen["speed"] == ["1×", "1.25×", "1.5×", "2×", "− 5 s"]  # qa.js ran
    assert seen["call_page"] == f"{url}/qa/ok?reviewer=r1"
    assert seen["audio"] == f"{url}/qa/ok/recording"
    assert seen["after_post"] == f"{url}/qa/ok?reviewer=r1&saved=1"
    assert seen["saved"] == "score saved"
    assert seen["after_sign_out"] == f"{url}/qa" and seen["cookies_after_sign_out"] == []
    review = await QaStore(db).review("ok")
    assert review is not None and review["status"] == "scored"
    score = review["score"]
    assert (score["score"], score["reviewer"], score["comment"]) == (90.0, "r1", "清楚，礼貌")
