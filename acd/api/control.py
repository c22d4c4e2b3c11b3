"""The control API: a small JSON-over-HTTP surface for operators and the CLI.

``acd agents live ...`` and ``acd queue show`` talk to the running engine through
it.  It listens on 127.0.0.1 by default; every request needs credentials
(:mod:`acd.api.auth`): a bearer token of the token file the engine creates
(``acd-api.tokens`` beside acd.yaml), or a client certificate (mutual TLS,
``api.tls``), and the role they carry (:class:`~acd.api.config.Role`)
decides what it may do.  A non-loopback address needs TLS or
``api.allow_plain_http``.  The SMS link has a listener of its own (the public
listener, ``api.public``) with nothing else on it.

The API sees the engine only through :class:`~acd.api.protocol.ControlledEngine`.
Reads come from the core's read side and the engine's
:class:`~acd.core.stats.Statistics` (:mod:`acd.api.views`); every change goes
through ``engine.submit(event)`` like any other event, and a refusal of the
core comes back from it and is answered 409 with the core's own message
("agent a1: 'logout' is not allowed in state 'on_call'").  Request bodies
are read and checked by :mod:`acd.api.requests`.

Endpoints of the control listener, with the role each needs (see
docs/operations.md)::

    GET  /health                     read   {"ami": bool, "calls": n, ..., "records": {...}}
    GET  /agents                     read   every agent, with state and occupancy
    GET  /agents/{id}                read
    POST /agents/{id}/login          agent  {"ready": true}
    POST /agents/{id}/logout         agent
    POST /agents/{id}/ready          agent
    POST /agents/{id}/pause          agent  {"reason": "lunch"}
    POST /agents/{id}/profile        admin  partial profile change (stored, then live)
    GET  /queues                     read   per queue: waiting, longest wait, staffing, today
    GET  /queues/{name}              read   ... and the waiting calls (read: numbers masked)
    GET  /stats[?interval=true]      read   statistics totals, or per-interval rows
    GET  /flow                       read   the IVR flow's version
    GET  /metrics                    read   Prometheus metrics (docs/metrics.md)
    POST /flow/reload                admin  reload it from its file
    POST /sms/app-login              admin  {"number": ...}
    POST /sms/optout                 admin  {"number": ..., "remove": false}
    GET  /sms/outbox                 admin  the outbox, texts included
    GET  /wallboard[/state|/events]  read   the web wallboard (docs/wallboard.md; a
                                            browser: cookie from /wallboard?token=)
    GET  /qa, /qa/{call_id}[/recording]  admin  quality review pages (docs/quality.md; a
                                            browser: cookie from the sign-in form)
    GET  /qa/static/{qa.css|qa.js}   read   their style and script
    POST /qa/{call_id}/score         admin  a score from the review page's form
    POST /qa/sign-in                 none   the sign-in form (token=...&next=...): the
                                            one route without credentials, it checks
                                            the admin token itself (auth.OPEN_ROUTES)
    POST /qa/sign-out                admin  clears the browser's QA cookie

and of the public listener, without credentials::

    GET  /s/{token}                  count the SMS link's click, redirect to the app
    POST /sms/click/{token}          a web front reports a click

Errors are ``{"error": "..."}`` with 400 (bad JSON or field, the message
names the field), 401 (no or wrong credentials), 403 (role too low), 404
(unknown agent, queue or path), 409 (not allowed in the agent's current
state), 413 (body too large), 503 (database unavailable) or 500 (a bug: it
is logged and the server carries on).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import ssl
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.profiles_store import ProfileStoreError
from acd.api.auth import (
    NEEDS,
    OPEN_ROUTES,
    QA_SIGN_IN_PATH,
    QA_SIGN_OUT_PATH,
    ApiSetupError,
    Guard,
    Tokens,
    load_or_create,
    role_of,
    server_context,
)
from acd.api.config import DEFAULT_HOST, DEFAULT_PORT, ApiConfig, Role
from acd.api.metrics import Metrics
from acd.api.protocol import AgentView, ControlledEngine, DecisionListener, SmsOutboxStore
from acd.api.qa_pages import QaPages
from acd.api.requests import (
    MAX_BODY_BYTES,
    PROFILE_FIELDS,
    REASON_MAX,
    ApiError,
    Handler,
    bad,
    boolean,
    changed_profile,
    flag,
    read_body,
    string,
)
from acd.api.views import Views
from acd.api.wallboard import Wallboard
from acd.core.errors import UnknownSubject
from acd.core.model import (
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentProfileChanged,
    AgentReady,
    Event,
)
from acd.loaders.profile_checks import agent_problems
from acd.logs import Limited, brief, printable

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ApiSetupError", "ControlApi"]

#: an SMS link token as the engine makes them (secrets.token_urlsafe, at most 32)
LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: HTTP header limits of both listeners (aiohttp's request handler)
HEADER_LIMITS: dict[str, Any] = {"max_line_size": 4096, "max_field_size": 4096,
                                 "max_headers": 64}
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _why(exc: OSError) -> str:
    """A listen error's reason, without asyncio's repetition of the address."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or brief(exc)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON answer; nothing escapes to kill the server."""
    try:
        return await handler(request)
    except ApiError as exc:
        resp = _json({"error": exc.message}, exc.status)
        resp.headers.update(exc.headers)
        return resp
    except web.HTTPException as exc:  # no such path, wrong method ...
        if exc.status < 400:
            raise
        what = f"no such endpoint: {request.method} {request.path}" if exc.status == 404 \
            else f"{exc.reason}: {request.method} {request.path}"
        resp = _json({"error": what}, exc.status)
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - logged (rate-limited) by _failed; server lives on
        return _failed(request, exc)


#: the rate limit of each application's failure lines, per route: a flood of
#: failing requests (a database down, a bug one request can trigger) cannot
#: fill the log
FAILURES = web.AppKey("acd.failures", Limited)


def _route(request: web.Request) -> str:
    """``GET /agents/{id}``: the route's pattern, not the path (the public
    listener's paths carry SMS link tokens; the patterns are few)."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    pattern = resource.canonical if resource is not None else "?"
    return f"{request.method} {printable(pattern, newlines=False)[:100]}"


def _failed(request: web.Request, exc: Exception) -> web.Response:
    """A handler failed: 503 for the database, else 500.  The answer names
    the exception's type only: a message (a database error's statement and
    parameters: callers' numbers, link tokens) never reaches a client,
    least of all the public listener's anonymous ones.  Logged with
    :func:`brief` (ERROR for a bug, WARNING for the database), the traceback
    at DEBUG; at most one line per route a minute, with the count of the rest."""
    route, kind = _route(request), type(exc).__name__
    failures = request.app.get(FAILURES) or Limited(60.0)
    if isinstance(exc, SQLAlchemyError):
        shown = failures.warning(log, route, "API: %s: database: %s", route, brief(exc))
        answer = _json({"error": f"database unavailable ({kind}): try again later"}, 503)
    else:
        shown = failures.error(log, route, "API: %s failed (a bug): %s", route, brief(exc))
        answer = _json({"error": f"internal error: {kind}"}, 500)
    if shown and log.isEnabledFor(logging.DEBUG):
        log.debug("API: %s: the traceback", route, exc_info=exc)
    return answer


@web.middleware
async def _public_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The public listener: every path but its two is 404, whatever the method."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return _json({"error": f"no such endpoint: {request.method} {request.path}"}, 404)


class ControlApi:
    """The engine's HTTP control surface (aiohttp): the control listener and
    the public (SMS link) listener.

    Wired by the engine: ``self.api = ControlApi(self, config.api)`` in
    ``__init__``, :meth:`prepare` first thing when it starts (the token file
    and TLS: a problem stops the start before anything is driven), ``await
    self.api.start()`` when it is up, ``await self.api.stop()`` first thing
    when it stops.
    """

    def __init__(self, engine: ControlledEngine, config: ApiConfig | None = None) -> None:
        self.engine = engine
        self.config = config if config is not None else ApiConfig()
        self.views = Views(engine)
        self.wallboard = Wallboard(engine)
        #: the quality reviewer's pages (docs/quality.md)
        self.qa = QaPages(engine)
        #: /metrics: the engine's own registry (the decision latency listener
        #: follows the decisions while the control listener runs)
        self.metrics = Metrics(engine)
        self.tokens: Tokens | None = None
        self.guard: Guard | None = None
        self._ssl: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._public: web.AppRunner | None = None
        # profile changes are read-modify-write across an await (the database):
        # one at a time, so two concurrent edits cannot lose one another
        self._profile_lock = asyncio.Lock()
        self._link_failures = Limited(60.0)
        self._failures = Limited(60.0)
        self._refusals = Limited(60.0)

    # ---------------------------------------------------------- lifecycle

    def prepare(self) -> None:
        """Check the settings, read the token file (made when missing) and
        load the TLS files; :class:`ApiSetupError` names what is wrong.  A
        no-op when the control listener is off, and once done."""
        if self.config.port is not None and self.guard is None:
            self._setup()

    def _setup(self) -> None:
        problem = self.config.problem()
        if problem is not None:
            raise ApiSetupError(problem)
        if self.config.tls is not None:
            self._ssl = server_context(self.config.tls)
        tokens, created = load_or_create(self.config.token_file)
        if created:
            log.info("control API: made the token file %s (mode 0600: read, agent and admin "
                     "tokens); `acd` commands run beside acd.yaml read it", tokens.file)
        self.tokens = tokens
        self.guard = Guard(tokens, self.config.tls, self._refusals)

    def _needs(self, app: web.Application, method: str, path: str, handler: Handler,
               role: Role) -> None:
        route = app.router.add_route(method, path, handler)
        app[NEEDS][route] = role

    @staticmethod
    def _open(app: web.Application, method: str, path: str, handler: Handler) -> None:
        """A route without credentials: only one of :data:`OPEN_ROUTES`
        (the QA sign-in form, which checks its token itself)."""
        if (method, path) not in OPEN_ROUTES:
            raise ValueError(f"{method} {path} is not one of the open routes (auth.OPEN_ROUTES)")
        app.router.add_route(method, path, handler)

    def app(self) -> web.Application:
        """The control listener's application (every route needs credentials
        but the QA sign-in form, which checks the token it is given)."""
        if self.guard is None:
            self._setup()
        assert self.guard is not None
        app = web.Application(middlewares=[_errors, self.guard.middleware],
                              client_max_size=MAX_BODY_BYTES)
        app[NEEDS] = {}
        app[FAILURES] = self._failures
        read, agent, admin = Role.READ, Role.AGENT, Role.ADMIN
        for method, path, handler, role in (
                ("GET", "/health", self.health, read),
                ("GET", "/agents", self.list_agents, read),
                ("GET", "/agents/{id}", self.get_agent, read),
                ("POST", "/agents/{id}/login", self.login, agent),
                ("POST", "/agents/{id}/logout", self.logout, agent),
                ("POST", "/agents/{id}/ready", self.ready, agent),
                ("POST", "/agents/{id}/pause", self.pause, agent),
                ("POST", "/agents/{id}/profile", self.profile, admin),
                ("GET", "/queues", self.list_queues, read),
                ("GET", "/queues/{name}", self.get_queue, read),
                ("GET", "/stats", self.stats, read),
                ("GET", "/flow", self.get_flow, read),
                ("GET", "/metrics", self.get_metrics, read),
                ("POST", "/flow/reload", self.reload_flow, admin),
                ("POST", "/sms/app-login", self.sms_app_login, admin),
                ("POST", "/sms/optout", self.sms_optout, admin),
                ("GET", "/sms/outbox", self.sms_outbox, admin)):
            self._needs(app, method, path, handler, role)
        for method, path, handler in self.wallboard.routes():
            self._needs(app, method, path, handler, read)
        for qa_route in self.qa.routes():  # (method, path, handler, role)
            self._needs(app, *qa_route)
        # the QA sign-in form checks the admin token itself: open, and the only one
        self._open(app, "POST", QA_SIGN_IN_PATH, self.guard.sign_in)
        self._needs(app, "POST", QA_SIGN_OUT_PATH, self.guard.sign_out, admin)
        app.on_startup.append(self.wallboard.startup)
        app.on_shutdown.append(self.wallboard.shutdown)  # its streams end at once
        return app

    def public_app(self) -> web.Application:
        """The public listener's application: the SMS link and click tracking only."""
        app = web.Application(middlewares=[_errors, _public_errors],
                              client_max_size=MAX_BODY_BYTES)
        app[FAILURES] = self._failures
        app.router.add_get("/s/{token}", self.sms_link, allow_head=False)
        app.router.add_post("/sms/click/{token}", self.sms_click)
        return app

    async def start(self) -> None:
        """Start the listeners the settings ask for (port 0: any free port,
        see :attr:`port` and :attr:`public_port`); none: nothing to do."""
        if self._runner is not None or self._public is not None:
            raise RuntimeError("the control API is already started")
        cfg = self.config
        try:
            if cfg.port is not None:
                app = self.app()  # reads the tokens and TLS files first
                self._runner = await self._listen(app, cfg.host, cfg.port, self._ssl,
                                                  "api.host, api.port")
                self._follow(True)
                scheme = "https" if self._ssl is not None else "http"
                log.info("control API on %s://%s:%s (tokens: %s%s)", scheme, cfg.host, self.port,
                         cfg.token_file, ", client certificates" if cfg.tls is not None
                         and cfg.tls.client_ca is not None else "")
                if cfg.plain_on_network:
                    log.warning("control API on http://%s:%s WITHOUT TLS (api.allow_plain_http): "
                                "tokens, caller numbers and SMS texts cross the network in the "
                                "clear; anyone on the path can take the admin token. Use "
                                "api.tls, or keep it on 127.0.0.1 behind a TLS proxy",
                                cfg.host, self.port)
            if cfg.public_port is not None:
                self._public = await self._listen(self.public_app(), cfg.public_host,
                                                  cfg.public_port, None,
                                                  "api.public.host, api.public.port")
                log.info("SMS link listener on http://%s:%s (GET /s/<token>, POST "
                         "/sms/click/<token>; nothing else)", cfg.public_host, self.public_port)
        except BaseException:
            await self.stop()
            raise

    @staticmethod
    async def _listen(app: web.Application, host: str, port: int,
                      ssl_context: ssl.SSLContext | None, settings: str) -> web.AppRunner:
        """Listen on ``host``:``port``; an :class:`OSError` names the
        ``settings`` (in acd.yaml) that chose them."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, **HEADER_LIMITS)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"cannot listen for the control API on {host}:{port} "
                                     f"(acd.yaml: {settings}): {_why(exc)}") from None
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    def _follow(self, on: bool) -> None:
        """Add (or take away) the metrics' decision listener.  An engine
        without decision listeners (the API tests' fake engine) shows no
        decision latency."""
        listeners: list[DecisionListener] | None = getattr(self.engine, "listeners", None)
        if listeners is None:
            return
        if on:
            listeners.append(self.metrics.on_decision)
        elif self.metrics.on_decision in listeners:
            listeners.remove(self.metrics.on_decision)

    async def stop(self) -> None:
        """Stop listening (a no-op if not started); log what the rate-limited
        lines held back, with its count."""
        if self._runner is not None:
            self._follow(False)
        runners, self._runner, self._public = (self._runner, self._public), None, None
        for runner in runners:
            if runner is not None:
                await runner.cleanup()
        for limited in (self._refusals, self._failures, self._link_failures):
            limited.flush()

    @staticmethod
    def _port(runner: web.AppRunner | None) -> int | None:
        if runner is None:
            return None
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return None

    @property
    def port(self) -> int | None:
        """The control listener's port (the real one when started with port
        0); None if stopped."""
        return self._port(self._runner)

    @property
    def public_port(self) -> int | None:
        """The public (SMS link) listener's port; None if stopped."""
        return self._port(self._public)

    # ------------------------------------------------------------ helpers

    def _now(self) -> float:
        return self.engine.clock()

    def _agent(self, agent_id: str) -> AgentView:
        try:
            return self.engine.core.agent(agent_id)
        except UnknownSubject:
            raise ApiError(404, f"unknown agent {agent_id!r}") from None

    def _queue_name(self, name: str) -> str:
        if name not in self.engine.core.policy.queues:
            raise ApiError(404, f"unknown queue {name!r} "
                                f"(queues: {', '.join(self.engine.core.queue_names())})")
        return name

    def _submit(self, event: Event) -> None:
        """Hand ``event`` to the engine; the core's refusal is answered 409."""
        refusal = self.engine.submit(event)
        if refusal is not None:
            raise ApiError(409, str(refusal))

    # -------------------------------------------------------------- health

    async def health(self, request: web.Request) -> web.Response:
        return _json(self.views.health())

    # -------------------------------------------------------------- agents

    async def list_agents(self, request: web.Request) -> web.Response:
        return _json(self.views.agents())

    async def get_agent(self, request: web.Request) -> web.Response:
        return _json(self.views.agent(self._agent(request.match_info["id"])))

    async def login(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        body = await read_body(request, ("ready",))
        ready = boolean(body, "ready") if "ready" in body else True
        # logged in, or (on a call with a logout pending) taking that logout back
        self._submit(AgentLogin(agent.agent_id, ready=ready))
        return _json(self.views.agent(agent))

    async def logout(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        await read_body(request, ())
        # ringing or on a call: the core logs the agent out when the call ends
        self._submit(AgentLogout(agent.agent_id))
        return _json(self.views.agent(agent))

    async def ready(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        await read_body(request, ())
        self._submit(AgentReady(agent.agent_id))
        return _json(self.views.agent(agent))

    async def pause(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        body = await read_body(request, ("reason",))
        reason = string(body, "reason") if "reason" in body else ""
        if len(reason) > REASON_MAX or any(not ch.isprintable() for ch in reason):
            raise bad("reason", f"at most {REASON_MAX} printable characters")
        if agent.logout_after_call:
            raise ApiError(409, f"agent {agent.agent_id} logs out when its call ends: no pause "
                                "after it (a login takes the logout back)")
        self._submit(AgentPause(agent.agent_id, reason))
        if agent.pause_after_call is None:
            return _json(self.views.agent(agent))
        # ringing or on a call: accepted, carried out when the call is over
        return _json({**self.views.agent(agent),
                      "message": f"agent {agent.agent_id} is {agent.state.value}: paused "
                                 f"({agent.pause_after_call}) after the current call"},
                     status=202)

    async def profile(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self._agent(agent_id)
        body = await read_body(request, PROFILE_FIELDS)
        if not body:
            raise ApiError(400, f"nothing to change: give at least one of "
                                f"{', '.join(PROFILE_FIELDS)}")
        async with self._profile_lock:
            agent = self._agent(agent_id)
            known = {qp.require.skill for qp in self.engine.core.policy.queues.values()}
            new = changed_profile(agent.profile, body, known)
            problems = agent_problems(new)
            if problems:
                raise ApiError(400, "; ".join(problems))
            try:
                await self.engine.profiles.upsert_agents([new])
            except ProfileStoreError as exc:
                raise ApiError(400, str(exc)) from None
            except (SQLAlchemyError, OSError) as exc:
                self._failures.warning(log, "profile", "API: cannot store a profile: database: %s",
                                  brief(exc))
                raise ApiError(503, f"database: cannot store the profile ({type(exc).__name__}"
                                    "); nothing was changed") from None
            self._submit(AgentProfileChanged(new))
        return _json(self.views.agent(self._agent(agent_id)))

    # -------------------------------------------------------------- queues

    async def list_queues(self, request: web.Request) -> web.Response:
        return _json(self.views.queues())

    async def get_queue(self, request: web.Request) -> web.Response:
        # the read role (wallboards) sees callers' numbers masked
        return _json(self.views.queue(self._queue_name(request.match_info["name"]),
                                      masked=role_of(request) < Role.AGENT))

    # --------------------------------------------------------------- stats

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.views.stats(flag(request, "interval")))

    # ------------------------------------------------------------ metrics

    async def get_metrics(self, request: web.Request) -> web.Response:
        """Prometheus' text format, read from the engine now (docs/metrics.md)."""
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------ flows

    async def get_flow(self, request: web.Request) -> web.Response:
        return _json(self.views.flow(self.engine.flows))

    async def reload_flow(self, request: web.Request) -> web.Response:
        """Reload the flow; 200 with ok=false (and the problems) when it is refused."""
        result = await asyncio.to_thread(self.engine.flows.reload)  # reads files
        return _json({"ok": result.ok, "changed": result.changed, "version": result.version,
                      "problems": list(result.problems), "warnings": list(result.warnings),
                      "flow": self.views.flow(self.engine.flows)})

    # -------------------------------------------------------------- SMS

    def _sms_store(self) -> SmsOutboxStore:
        store = self.engine.sms_store
        if store is None:
            raise ApiError(404, "SMS diversion is off (no `sms:` in the configuration)")
        return store

    async def sms_click(self, request: web.Request) -> web.Response:
        """A web front reports that the link with this token was opened (public listener)."""
        token = request.match_info["token"]
        if not LINK_TOKEN.fullmatch(token):
            raise ApiError(404, "unknown token")
        store = self._sms_store()
        try:
            number = await store.click(token, self._now())
        except (SQLAlchemyError, OSError) as exc:
            # the database's message (its statement, the token, the caller's
            # number) is for the log, never for an anonymous client
            self._link_failures.warning(log, "click-report", "SMS link: a reported click not "
                                        "counted: database: %s", type(exc).__name__)
            raise ApiError(503, "cannot count the click now: try again later",
                           {"Retry-After": "30"}) from None
        if number is None:
            raise ApiError(404, "unknown token")
        return _json({"ok": True})

    async def sms_link(self, request: web.Request) -> web.StreamResponse:
        """The SMS link itself (public listener): count, then redirect.  The
        caller is sent on even when the click cannot be counted."""
        token = request.match_info["token"]
        store = self._sms_store()
        if LINK_TOKEN.fullmatch(token):
            try:
                await store.click(token, self._now())
            except (SQLAlchemyError, OSError) as exc:
                self._link_failures.warning(log, "click", "SMS link: a click not counted: "
                                            "database: %s", type(exc).__name__)
        # the configured page only: a target taken from the request would be an open redirect
        url = self.engine.sms_app_url
        raise web.HTTPFound(url if url is not None else "/")

    async def sms_app_login(self, request: web.Request) -> web.Response:
        """The app saw a login from this number (counts as diversion)."""
        from acd.core.numbers import is_number

        data = await read_body(request, ["number"])
        raw = string(data, "number") if "number" in data else ""
        if not is_number(raw):
            raise bad("number", "must be a phone number")
        store = self._sms_store()
        number = store.identity(raw)
        await store.app_login(number, self._now())
        return _json({"ok": True, "number": number})

    async def sms_optout(self, request: web.Request) -> web.Response:
        from acd.core.numbers import is_number

        data = await read_body(request, ["number", "remove"])
        raw = string(data, "number") if "number" in data else ""
        if not is_number(raw):
            raise bad("number", "must be a phone number")
        store = self._sms_store()
        number = store.identity(raw)
        if data.get("remove"):
            changed = await store.opt_in(number)
        else:
            changed = await store.opt_out(number, "api", self._now())
        return _json({"ok": True, "number": number, "changed": changed})

    async def sms_outbox(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        limit = request.query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise bad("limit", f"must be a whole number 1-10000, not {limit!r}")
        rows = await self._sms_store().rows(state, int(limit))
        return _json([{"id": r.id, "call_id": r.call_id, "number": r.number, "rule": r.rule,
                       "state": r.state, "reason": r.reason, "attempts": r.attempts,
                       "created_at": r.created_at.isoformat(), "text": r.text}
                      for r in rows])
