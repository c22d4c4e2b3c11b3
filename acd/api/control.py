"""The control API: a small JSON-over-HTTP surface for operators and the CLI.

``acd agents live ...`` and ``acd queue show`` talk to the running engine through
it.  It listens on 127.0.0.1 by default and has no authentication: keep it
on the loopback interface (or behind a proxy that adds some).

The API sees the engine only through :class:`~acd.api.protocol.ControlledEngine`.
Reads come from the core's read side and the engine's
:class:`~acd.core.stats.Statistics` (:mod:`acd.api.views`); every change goes
through ``engine.submit(event)`` like any other event, and a refusal of the
core comes back from it and is answered 409 with the core's own message
("agent a1: 'logout' is not allowed in state 'on_call'").  Request bodies
are read and checked by :mod:`acd.api.requests`.

Endpoints (see docs/operations.md)::

    GET  /health                     {"ami": bool, "calls": n, "agents": n, ...}
    GET  /agents                     every agent, with state and occupancy
    GET  /agents/{id}
    POST /agents/{id}/login          {"ready": true}
    POST /agents/{id}/logout
    POST /agents/{id}/ready
    POST /agents/{id}/pause          {"reason": "lunch"}
    POST /agents/{id}/profile        partial profile change (stored, then live)
    GET  /queues                     per queue: waiting, longest wait, staffing, today's figures
    GET  /queues/{name}              ... and the waiting calls in service order
    GET  /stats[?interval=true]      statistics totals, or per-interval rows
    GET  /flow, POST /flow/reload    the IVR flow's version; reload it from its file

Errors are ``{"error": "..."}`` with 400 (bad JSON or field, the message
names the field), 404 (unknown agent, queue or path), 409 (not allowed in
the agent's current state), 503 (database unavailable) or 500 (a bug: it
is logged and the server carries on).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.profiles_store import ProfileStoreError
from acd.api.protocol import AgentView, ControlledEngine, SmsOutboxStore
from acd.api.requests import (
    PROFILE_FIELDS,
    REASON_MAX,
    ApiError,
    bad,
    boolean,
    changed_profile,
    flag,
    read_body,
    string,
)
from acd.api.views import Views
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

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON answer; nothing escapes to kill the server."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json({"error": exc.message}, exc.status)
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
    except Exception as exc:
        log.exception("control API: %s %s failed", request.method, request.path)
        return _json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)


class ControlApi:
    """The engine's HTTP control surface (aiohttp).

    Wired by the engine: ``self.api = ControlApi(self)`` in ``__init__``,
    ``await self.api.start(host, port)`` when it is up, ``await
    self.api.stop()`` first thing when it stops.
    """

    def __init__(self, engine: ControlledEngine) -> None:
        self.engine = engine
        self.views = Views(engine)
        self._runner: web.AppRunner | None = None
        # profile changes are read-modify-write across an await (the database):
        # one at a time, so two concurrent edits cannot lose one another
        self._profile_lock = asyncio.Lock()

    # ---------------------------------------------------------- lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_errors])
        app.router.add_get("/health", self.health)
        app.router.add_get("/agents", self.list_agents)
        app.router.add_get("/agents/{id}", self.get_agent)
        app.router.add_post("/agents/{id}/login", self.login)
        app.router.add_post("/agents/{id}/logout", self.logout)
        app.router.add_post("/agents/{id}/ready", self.ready)
        app.router.add_post("/agents/{id}/pause", self.pause)
        app.router.add_post("/agents/{id}/profile", self.profile)
        app.router.add_get("/queues", self.list_queues)
        app.router.add_get("/queues/{name}", self.get_queue)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/flow", self.get_flow)
        app.router.add_post("/flow/reload", self.reload_flow)
        app.router.add_get("/s/{token}", self.sms_link)
        app.router.add_post("/sms/click/{token}", self.sms_click)
        app.router.add_post("/sms/app-login", self.sms_app_login)
        app.router.add_post("/sms/optout", self.sms_optout)
        app.router.add_get("/sms/outbox", self.sms_outbox)
        return app

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`)."""
        if self._runner is not None:
            raise RuntimeError("the control API is already started")
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("control API on http://%s:%s", host, self.port)

    async def stop(self) -> None:
        """Stop listening (a no-op if not started)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int | None:
        """The port listened on (the real one when started with port 0); None if stopped."""
        if self._runner is None:
            return None
        for address in self._runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return None

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
        self._submit(AgentPause(agent.agent_id, reason))
        return _json(self.views.agent(agent))

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
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ApiError(503, f"database: cannot store the profile ({first}); "
                                    "nothing was changed") from None
            self._submit(AgentProfileChanged(new))
        return _json(self.views.agent(self._agent(agent_id)))

    # -------------------------------------------------------------- queues

    async def list_queues(self, request: web.Request) -> web.Response:
        return _json(self.views.queues())

    async def get_queue(self, request: web.Request) -> web.Response:
        return _json(self.views.queue(self._queue_name(request.match_info["name"])))

    # --------------------------------------------------------------- stats

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.views.stats(flag(request, "interval")))

    # ------------------------------------------------------------ flows

    async def get_flow(self, request: web.Request) -> web.Response:
        return _json(self.views.flow(self.engine.flows))

    async def reload_flow(self, request: web.Request) -> web.Response:
        """Reload the flow; 200 with ok=false (and the problems) when it is refused."""
        result = self.engine.flows.reload()
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
        """A web front reports that the link with this token was opened."""
        number = await self._sms_store().click(request.match_info["token"], self._now())
        if number is None:
            raise ApiError(404, "unknown token")
        return _json({"ok": True})

    async def sms_link(self, request: web.Request) -> web.StreamResponse:
        """The SMS link itself, when this API is the link's host: count, then redirect."""
        token = request.match_info["token"]
        await self._sms_store().click(token, self._now())
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
