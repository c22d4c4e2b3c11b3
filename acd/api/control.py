"""The control API: a small JSON-over-HTTP surface for operators and the CLI.

``acd agent ...`` and ``acd queue show`` talk to the running engine through
it.  It listens on 127.0.0.1 by default and has no authentication: keep it
on the loopback interface (or behind a proxy that adds some).

Reads come straight from the core's read side and from the engine's
:class:`~acd.core.stats.Statistics`; every change goes through
``engine.handle(event)`` like any other event.  ``Engine.handle`` logs and
swallows events the core refuses, so the API checks a transition against
the agent state table first and answers 409 with the core's own message
("agent a1: 'logout' is not allowed in state 'on_call'") instead.

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

Errors are ``{"error": "..."}`` with 400 (bad JSON or field, the message
names the field), 404 (unknown agent, queue or path), 409 (not allowed in
the agent's current state), 503 (database unavailable) or 500 (a bug: it
is logged and the server carries on).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.profiles_store import ProfileStoreError
from acd.core.center import Agent, Call, UnknownSubject
from acd.core.fsm import IllegalTransition
from acd.core.model import (
    AGENT_TABLE,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentProfileChanged,
    AgentReady,
    AgentState,
    AgentTrigger,
    CallState,
    Event,
)
from acd.core.profiles import AGE_BANDS, LEVEL_MAX, LEVEL_MIN, AgentProfile
from acd.core.stats import ServiceLevel
from acd.loaders.profiles import (
    FieldError,
    agent_problems,
    parse_extension,
    parse_gender,
    parse_key,
    parse_key_list,
    parse_list,
    parse_lower_key,
    parse_name,
)

if TYPE_CHECKING:
    from acd.runtime.engine import Engine

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088
#: a pause reason is shown on wallboards: keep it short
REASON_MAX = 64
#: call attributes shown with a waiting call (routing-relevant ones only)
SHOWN_ATTRIBUTES = ("dialect", "vip_level", "language", "preferred_gender",
                    "preferred_age_band", "segment")
PROFILE_FIELDS = ("skills", "drop_skills", "dialects", "drop_dialects", "languages", "gender",
                  "age_band", "groups", "vip_qualified", "extension", "name")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_dumps = functools.partial(json.dumps, ensure_ascii=False)


class ApiError(Exception):
    """Answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


# ------------------------------------------------------------------ parsing


async def _body(request: web.Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object of the body ({} when there is none); unknown keys are refused."""
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body: must be a JSON object")
    known = tuple(allowed)
    for key in data:
        if key not in known:
            raise ApiError(400, f"{key}: unknown field (fields: {', '.join(known) or 'none'})")
    return data


def _bad(name: str, problem: str) -> ApiError:
    return ApiError(400, f"{name}: {problem}")


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise _bad(name, f"must be a string, not {json.dumps(value)}")
    return value.strip()


def _bool(data: dict[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise _bad(name, f"must be true or false, not {json.dumps(value)}")
    return value


def _parsed(name: str, parse: Callable[[str], Any], raw: str) -> Any:
    try:
        return parse(raw)
    except FieldError as exc:
        raise _bad(name, str(exc)) from None


def _levels(data: dict[str, Any], name: str, lower: bool) -> dict[str, int]:
    value = data[name]
    if not isinstance(value, dict):
        raise _bad(name, 'must be an object {"name": level}')
    out: dict[str, int] = {}
    for key, level in value.items():
        k = _parsed(name, parse_lower_key if lower else parse_key, str(key).strip())
        if not k:
            raise _bad(name, "a name cannot be empty")
        if isinstance(level, bool) or not isinstance(level, int) \
                or not LEVEL_MIN <= level <= LEVEL_MAX:
            raise _bad(f"{name}.{k}", f"level {json.dumps(level)} is not a whole number "
                       f"{LEVEL_MIN}-{LEVEL_MAX}")
        out[k] = level
    return out


def _names(data: dict[str, Any], name: str) -> list[str]:
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(name, "must be a list of strings")
    return [v.strip() for v in value]


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise _bad(name, f"{raw!r} is not true or false")


# ------------------------------------------------------------------ the API


class ControlApi:
    """The engine's HTTP control surface (aiohttp).

    Wired by the engine: ``self.api = ControlApi(self)`` in ``__init__``,
    ``await self.api.start(host, port)`` when it is up, ``await
    self.api.stop()`` first thing when it stops.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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

    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.engine.core.agent(agent_id)
        except UnknownSubject:
            raise ApiError(404, f"unknown agent {agent_id!r}") from None

    def _queue_name(self, name: str) -> str:
        if name not in self.engine.core.policy.queues:
            raise ApiError(404, f"unknown queue {name!r} "
                                f"(queues: {', '.join(self.engine.core.queue_names())})")
        return name

    def _occupancies(self, now: float) -> dict[str, float | None]:
        """Occupancy of every agent in one pass over the statistics
        (``Statistics.occupancy`` per agent would scan everything per agent)."""
        busy: dict[str, float] = {}
        available: dict[str, float] = {}
        for row in self.engine.statistics.agent_intervals(now=now):
            if row.agent_id is None:
                continue
            busy[row.agent_id] = busy.get(row.agent_id, 0.0) + row.busy_s
            available[row.agent_id] = available.get(row.agent_id, 0.0) + row.available_s
        return {a: (busy[a] / available[a] if available[a] else None) for a in available}

    def _agent_json(self, agent: Agent, now: float, occupancy: float | None) -> dict[str, Any]:
        p = agent.profile
        return {
            "id": p.agent_id, "extension": p.extension, "name": p.name,
            "state": agent.state.value, "since": agent.since,
            "in_state_s": now - agent.since if agent.since > 0 else None,
            "reason": agent.reason, "call_id": agent.call_id,
            "skills": dict(sorted(p.skills.items())),
            "dialects": dict(sorted(p.dialects.items())),
            "languages": sorted(p.languages), "gender": p.gender, "age_band": p.age_band,
            "groups": sorted(p.groups), "vip_qualified": p.vip_qualified,
            "calls_handled": agent.calls_handled, "occupancy": occupancy,
            "logout_after_call": agent.logout_after_call,
        }

    def _one_agent(self, agent: Agent) -> dict[str, Any]:
        now = self._now()
        occ = self.engine.statistics.occupancy(agent.agent_id, now=now)
        return self._agent_json(agent, now, occ)

    def _feed(self, agent: Agent, triggers: tuple[AgentTrigger, ...], event: Event) -> None:
        """Check the agent may take ``triggers`` in turn, then hand ``event`` to the engine."""
        state = agent.state
        for trigger in triggers:
            if not AGENT_TABLE.allows(state, trigger):
                raise ApiError(409, str(IllegalTransition(AGENT_TABLE.name, agent.agent_id,
                                                          state, trigger)))
            state = AGENT_TABLE.next(agent.agent_id, state, trigger)
        errors = self.engine.stats.errors
        self.engine.handle(event)
        if self.engine.stats.errors != errors:  # refused after all (logged by the engine)
            raise ApiError(409, f"agent {agent.agent_id}: the engine refused {type(event).__name__}"
                                " (see the engine log)")

    # -------------------------------------------------------------- health

    async def health(self, request: web.Request) -> web.Response:
        core = self.engine.core
        agents = list(core.agents())
        return _json({
            "ami": bool(self.engine.ami.connected),
            "calls": sum(1 for _ in core.calls()),
            "agents": len(agents),
            "logged_in": sum(1 for a in agents if a.state is not AgentState.LOGGED_OUT),
            "ready": sum(1 for a in agents if a.state is AgentState.READY),
        })

    # -------------------------------------------------------------- agents

    async def list_agents(self, request: web.Request) -> web.Response:
        now = self._now()
        occ = self._occupancies(now)
        agents = sorted(self.engine.core.agents(), key=lambda a: a.agent_id)
        return _json([self._agent_json(a, now, occ.get(a.agent_id)) for a in agents])

    async def get_agent(self, request: web.Request) -> web.Response:
        return _json(self._one_agent(self._agent(request.match_info["id"])))

    async def login(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        body = await _body(request, ("ready",))
        ready = _bool(body, "ready") if "ready" in body else True
        triggers: tuple[AgentTrigger, ...] = (
            (AgentTrigger.LOGIN, AgentTrigger.READY) if ready else (AgentTrigger.LOGIN,))
        if agent.logout_after_call:  # takes back a logout asked during the call
            triggers = ()
        self._feed(agent, triggers, AgentLogin(agent.agent_id, ready=ready))
        return _json(self._one_agent(agent))

    async def logout(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        await _body(request, ())
        # ringing or on a call: the core logs the agent out when the call ends
        on_call = agent.state in (AgentState.RESERVED, AgentState.ON_CALL)
        self._feed(agent, () if on_call else (AgentTrigger.LOGOUT,),
                   AgentLogout(agent.agent_id))
        return _json(self._one_agent(agent))

    async def ready(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        await _body(request, ())
        self._feed(agent, (AgentTrigger.READY,), AgentReady(agent.agent_id))
        return _json(self._one_agent(agent))

    async def pause(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["id"])
        body = await _body(request, ("reason",))
        reason = _str(body, "reason") if "reason" in body else ""
        if len(reason) > REASON_MAX or any(not ch.isprintable() for ch in reason):
            raise _bad("reason", f"at most {REASON_MAX} printable characters")
        self._feed(agent, (AgentTrigger.PAUSE,), AgentPause(agent.agent_id, reason))
        return _json(self._one_agent(agent))

    async def profile(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["id"]
        self._agent(agent_id)
        body = await _body(request, PROFILE_FIELDS)
        if not body:
            raise ApiError(400, f"nothing to change: give at least one of "
                                f"{', '.join(PROFILE_FIELDS)}")
        async with self._profile_lock:
            agent = self._agent(agent_id)
            new = self._changed_profile(agent.profile, body)
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
            self.engine.handle(AgentProfileChanged(new))
        return _json(self._one_agent(self._agent(agent_id)))

    def _changed_profile(self, old: AgentProfile, body: dict[str, Any]) -> AgentProfile:
        """The profile ``old`` with the changes of a /profile body (400 naming the field)."""
        skills = dict(old.skills)
        if "drop_skills" in body:
            for name in _names(body, "drop_skills"):
                if name not in skills:
                    raise _bad("drop_skills", f"agent {old.agent_id} has no skill {name!r} "
                               f"(skills: {', '.join(sorted(skills)) or 'none'})")
                del skills[name]
        if "skills" in body:
            add = _levels(body, "skills", lower=False)
            dropped = set(add) & set(body.get("drop_skills") or ())
            if dropped:
                raise _bad("skills", f"skill {sorted(dropped)[0]!r} is both set and dropped")
            known = {qp.require.skill for qp in self.engine.core.policy.queues.values()}
            for name in add:
                if name not in known:
                    raise _bad("skills", f"no queue uses skill {name!r} "
                               f"(skills: {', '.join(sorted(known))})")
            skills.update(add)
        dialects = dict(old.dialects)
        if "drop_dialects" in body:
            for name in _names(body, "drop_dialects"):
                if name.lower() not in dialects:
                    raise _bad("drop_dialects", f"agent {old.agent_id} has no dialect {name!r} "
                               f"(dialects: {', '.join(sorted(dialects)) or 'none'})")
                del dialects[name.lower()]
        if "dialects" in body:
            dialects.update(_levels(body, "dialects", lower=True))
        languages = old.languages
        if "languages" in body:
            languages = _parsed("languages", parse_key_list, ";".join(_names(body, "languages")))
        groups = old.groups
        if "groups" in body:
            names = _names(body, "groups")
            if any(";" in n for n in names):
                raise _bad("groups", "a group name cannot contain ';'")
            groups = _parsed("groups", parse_list, ";".join(names))
        gender = _parsed("gender", parse_gender, _str(body, "gender")) \
            if "gender" in body else old.gender
        age_band = old.age_band
        if "age_band" in body:
            age_band = _str(body, "age_band")
            if age_band and age_band not in AGE_BANDS:
                raise _bad("age_band", f"{age_band!r} is not one of {', '.join(AGE_BANDS)}")
        extension = _parsed("extension", parse_extension, _str(body, "extension")) \
            if "extension" in body else old.extension
        name = _parsed("name", parse_name, _str(body, "name")) if "name" in body else old.name
        vip = _bool(body, "vip_qualified") if "vip_qualified" in body else old.vip_qualified
        try:
            return AgentProfile(agent_id=old.agent_id, extension=extension, name=name,
                                skills=skills, dialects=dialects, languages=languages,
                                gender=gender, age_band=age_band, groups=groups,
                                vip_qualified=vip)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    # -------------------------------------------------------------- queues

    def _today_start(self, now: float) -> float:
        """Local midnight of the engine's clock."""
        day = dt.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.timestamp()

    def _today(self, now: float) -> dict[str, dict[str, Any]]:
        """Per queue: call figures of the statistics intervals that began today."""
        since = self._today_start(now)
        acc: dict[str, dict[str, Any]] = {}
        for row in self.engine.statistics.intervals():
            if row.queue is None or row.start is None or row.start < since:
                continue
            t = acc.setdefault(row.queue, {"offered": 0, "answered": 0, "abandoned": 0,
                                           "within": 0, "wait_sum": 0.0, "classes": set()})
            t["offered"] += row.offered
            t["answered"] += row.answered
            t["abandoned"] += row.abandoned
            t["within"] += row.answered_within_sl
            t["wait_sum"] += row.answered_wait_sum_s
            t["classes"].add(row.customer_class)
        return acc

    def _service_level(self, classes: set[str]) -> ServiceLevel | None:
        """The target of the classes seen (the default class's when none);
        None when they do not share one."""
        stats = self.engine.statistics
        if not classes:
            return stats.service_level_for(self.engine.core.policy.default_class)
        sls = {stats.service_level_for(c) for c in classes}
        return sls.pop() if len(sls) == 1 else None

    def _queue_json(self, name: str, now: float, today: dict[str, dict[str, Any]],
                    ready_by_skill: dict[str, int]) -> dict[str, Any]:
        core = self.engine.core
        qp = core.queue_policy(name)
        waiting = core.waiting(name)
        calls = [c for c in (core.call(cid) for cid in waiting) if c is not None]
        longest = max((now - c.queued_at for c in calls if c.queued_at is not None),
                      default=None)
        ringing = sum(1 for c in core.calls()
                      if c.queue == name and c.state is CallState.OFFERED)
        t = today.get(name) or {"offered": 0, "answered": 0, "abandoned": 0, "within": 0,
                                "wait_sum": 0.0, "classes": set()}
        sl = self._service_level(t["classes"])
        offered, answered = t["offered"], t["answered"]
        service_level = t["within"] / offered if offered else None
        return {
            "name": name, "skill": qp.require.skill,
            "waiting": len(waiting), "longest_wait_s": longest, "ringing": ringing,
            "staffed": core.staffed(qp.require.skill),
            "ready": ready_by_skill.get(qp.require.skill, 0),
            "offered": offered, "answered": answered, "abandoned": t["abandoned"],
            "service_level": service_level,
            "asa_s": t["wait_sum"] / answered if answered else None,
            "abandon_rate": t["abandoned"] / offered if offered else None,
            "sl_threshold_s": sl.threshold_s if sl is not None else None,
            "sl_target": sl.target if sl is not None else None,
            "sl_met": service_level >= sl.target
            if sl is not None and service_level is not None else None,
        }

    def _ready_by_skill(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for agent in self.engine.core.agents():
            if agent.state is AgentState.READY:
                for skill in agent.profile.skills:
                    out[skill] = out.get(skill, 0) + 1
        return out

    async def list_queues(self, request: web.Request) -> web.Response:
        now = self._now()
        today, ready = self._today(now), self._ready_by_skill()
        return _json([self._queue_json(q, now, today, ready)
                      for q in self.engine.core.queue_names()])

    def _call_json(self, call: Call, now: float) -> dict[str, Any]:
        where = self.engine.core.position(call.call_id)
        return {
            "call_id": call.call_id, "caller": call.caller,
            "position": where[0] if where is not None else None,
            "expected_wait_s": where[1] if where is not None else None,
            "customer_class": call.customer_class, "priority": call.priority,
            "waited_s": now - call.queued_at if call.queued_at is not None else None,
            "escalation_steps": call.stage.steps_done if call.stage is not None else 0,
            "attributes": {k: call.attrs[k] for k in SHOWN_ATTRIBUTES if call.attrs.get(k)},
        }

    async def get_queue(self, request: web.Request) -> web.Response:
        name = self._queue_name(request.match_info["name"])
        now = self._now()
        core = self.engine.core
        out = self._queue_json(name, now, self._today(now), self._ready_by_skill())
        calls = [c for c in (core.call(cid) for cid in core.waiting(name)) if c is not None]
        out["calls"] = [self._call_json(c, now) for c in calls]
        out["offered_calls"] = [
            {"call_id": c.call_id, "caller": c.caller, "agent_id": c.agent_id,
             "waited_s": now - c.queued_at if c.queued_at is not None else None}
            for c in core.calls() if c.queue == name and c.state is CallState.OFFERED]
        return _json(out)

    # --------------------------------------------------------------- stats

    async def stats(self, request: web.Request) -> web.Response:
        per_interval = _flag(request, "interval")
        now = self._now()
        st = self.engine.statistics
        if per_interval:
            return _json({"interval_s": st.interval_s, "queues": st.to_rows("queues"),
                          "agents": st.to_rows("agents", now=now), "ivr": st.to_rows("ivr")})
        agent_rows: dict[str, list[float]] = {}
        fields = ("ready_s", "reserved_s", "on_call_s", "wrap_up_s", "paused_s",
                  "logged_in_s", "busy_s", "available_s")
        for row in st.agent_intervals(now=now):
            if row.agent_id is None:
                continue
            acc = agent_rows.setdefault(row.agent_id, [0.0] * len(fields))
            for i, f in enumerate(fields):
                acc[i] += getattr(row, f)
        agents = []
        for agent_id, values in sorted(agent_rows.items()):
            item: dict[str, Any] = {"agent_id": agent_id, **dict(zip(fields, values, strict=True))}
            item["occupancy"] = item["busy_s"] / item["available_s"] if item["available_s"] \
                else None
            agents.append(item)
        return _json({
            "interval_s": st.interval_s,
            "total": asdict(st.totals()),
            "queues": [asdict(st.totals(q)) for q in self.engine.core.queue_names()],
            "agents": agents,
            "ivr_only": st.ivr_only_total(),
        })

    # ------------------------------------------------------------ flows

    def _flow_json(self) -> dict[str, Any]:
        fl = self.engine.flows.current
        return {"name": fl.name, "version": fl.version, "file": fl.file,
                "files": list(fl.files), "nodes": len(fl.nodes), "queues": sorted(fl.queues),
                "loads": self.engine.flows.loads}

    async def get_flow(self, request: web.Request) -> web.Response:
        return _json(self._flow_json())

    async def reload_flow(self, request: web.Request) -> web.Response:
        """Reload the flow; 200 with ok=false (and the problems) when it is refused."""
        result = self.engine.flows.reload()
        return _json({"ok": result.ok, "changed": result.changed, "version": result.version,
                      "problems": list(result.problems), "warnings": list(result.warnings),
                      "flow": self._flow_json()})

    # -------------------------------------------------------------- SMS

    def _sms_store(self) -> Any:
        if self.engine.sms is None:
            raise ApiError(404, "SMS diversion is off (no `sms:` in the configuration)")
        return self.engine.sms_store

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
        cfg = self.engine.config.sms
        raise web.HTTPFound(cfg.policy.app_url if cfg is not None else "/")

    async def sms_app_login(self, request: web.Request) -> web.Response:
        """The app saw a login from this number (counts as diversion)."""
        from acd.sms.policy import normalize_number

        data = await _body(request, ["number"])
        number = normalize_number(_str(data, "number")) if "number" in data else ""
        if not number:
            raise _bad("number", "must be a phone number")
        await self._sms_store().app_login(number, self._now())
        return _json({"ok": True, "number": number})

    async def sms_optout(self, request: web.Request) -> web.Response:
        from acd.sms.policy import normalize_number

        data = await _body(request, ["number", "remove"])
        number = normalize_number(_str(data, "number")) if "number" in data else ""
        if not number:
            raise _bad("number", "must be a phone number")
        store = self._sms_store()
        if data.get("remove"):
            changed = await store.opt_in(number)
        else:
            changed = await store.opt_out(number, "api", self._now())
        return _json({"ok": True, "number": number, "changed": changed})

    async def sms_outbox(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        limit = request.query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
            raise _bad("limit", f"must be a whole number 1-10000, not {limit!r}")
        rows = await self._sms_store().rows(state, int(limit))
        return _json([{"id": r.id, "call_id": r.call_id, "number": r.number, "rule": r.rule,
                       "state": r.state, "reason": r.reason, "attempts": r.attempts,
                       "created_at": r.created_at.isoformat(), "text": r.text}
                      for r in rows])
