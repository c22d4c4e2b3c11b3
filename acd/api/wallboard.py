"""The web wallboard: a page, its JSON snapshot and a live feed (docs/wallboard.md).

Routes (on the control listener, the ``read`` role; a browser gets in with
the wallboard cookie, :data:`acd.api.auth.WALLBOARD`)::

    GET /wallboard                   the page (HTML; its script and style below),
                                     with the snapshot of now in it (drawn at
                                     once; ``?once=1``: that one only, no stream)
    GET /wallboard/static/{name}     wallboard.js, wallboard.css
    GET /wallboard/state             the snapshot (JSON)
    GET /wallboard/events            Server-Sent Events: the snapshot on connect,
                                     then after each change of the engine

A snapshot (:meth:`Wallboard.snapshot`) holds the queues (waiting calls,
the oldest one's queue time, agents by state, service level today and in
this statistics interval), the agents (state, since when, the current
call with the caller's number masked as for the read role), the customer
classes' service level against their targets, and the alerts: a class
below its target today or in this interval.  Figures come from the core's
read side and the engine's :class:`~acd.core.stats.Statistics`; the page
counts the waiting and in-state times up itself between snapshots.

The feed: a decision listener on ``engine.listeners`` (added while at least
one stream is open) marks the board changed; one task builds a snapshot
for all the streams at most every :attr:`Wallboard.min_gap_s` (5 a second
by default), and at least every :attr:`Wallboard.refresh_s` (the interval
rolls over with no event).  Each stream keeps only the latest snapshot it
has not sent yet: a slow browser skips snapshots, never queues them; one
that cannot take a snapshot within :attr:`Wallboard.write_timeout_s` is
dropped (its ``EventSource`` reconnects).  A comment line every
:attr:`Wallboard.heartbeat_s` keeps proxies from closing an idle stream;
at most :attr:`Wallboard.max_streams` streams at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from acd.api.protocol import AgentView, CallView, ControlledEngine
from acd.api.requests import ApiError
from acd.core.model import Action, AgentState, CallState, Event
from acd.core.stats import IntervalStats
from acd.logs import Limited, brief, mask

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: the files the page loads, and their types (nothing else is served)
ASSETS = {"wallboard.js": "text/javascript", "wallboard.css": "text/css"}
#: the page's policy: its own script and style only, no frames, no other origin
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: where the page carries its first snapshot (a JSON data block, never run)
SNAPSHOT_SLOT = b"<!--snapshot-->"
#: agent states shown per queue, in this order (logged-out agents are counted apart)
STATES = ("ready", "reserved", "on_call", "wrap_up", "paused")
#: waiting calls listed per queue (the count is always whole)
CALLS_SHOWN = 10
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"),
                           allow_nan=False)


def _figures(t: IntervalStats, target: float | None) -> dict[str, Any]:
    """A period's figures, as the statistics compute them (docs/reports.md:
    service level = answered within the threshold / offered less short
    abandons); ``sl_met`` against ``target`` (None: no one target)."""
    sl = t.service_level
    return {"offered": t.offered, "answered": t.answered, "abandoned": t.abandoned,
            "short_abandoned": t.short_abandoned, "within_sl": t.answered_within_sl,
            "service_level": sl, "asa_s": t.asa_s, "abandon_rate": t.abandon_rate,
            "sl_met": sl >= target if sl is not None and target is not None else None}


class _Stream:
    """One open event stream: the latest snapshot it has not sent (one slot,
    replaced: a slow reader skips snapshots, it never queues them)."""

    __slots__ = ("pending", "ready", "sent", "skipped")

    def __init__(self) -> None:
        self.pending: bytes | None = None
        self.ready = asyncio.Event()
        self.sent = 0
        self.skipped = 0

    def put(self, frame: bytes) -> None:
        if self.pending is not None:
            self.skipped += 1
        self.pending = frame
        self.ready.set()

    def take(self) -> bytes | None:
        frame, self.pending = self.pending, None
        self.ready.clear()
        return frame


class Wallboard:
    """The wallboard of one engine (see the module's text)."""

    def __init__(self, engine: ControlledEngine, *, max_streams: int = 32,
                 min_gap_s: float = 0.2, refresh_s: float = 30.0, heartbeat_s: float = 15.0,
                 write_timeout_s: float = 30.0) -> None:
        self.engine = engine
        self.max_streams = max_streams
        self.min_gap_s = min_gap_s
        self.refresh_s = refresh_s
        self.heartbeat_s = heartbeat_s
        self.write_timeout_s = write_timeout_s
        self.streams: set[_Stream] = set()
        #: decisions seen and snapshots built for the streams (for tests and health)
        self.changes = 0
        self.snapshots = 0
        self.dropped = 0
        self._seq = 0
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._failures = Limited(60.0)
        self._assets: dict[str, bytes] = {}

    # ------------------------------------------------------------ routes

    def routes(self) -> list[tuple[str, str, Any]]:
        """(method, path, handler) of the wallboard's routes (all ``read``)."""
        return [("GET", "/wallboard", self.page),
                ("GET", "/wallboard/static/{name}", self.asset),
                ("GET", "/wallboard/state", self.state),
                ("GET", "/wallboard/events", self.events)]

    def _asset(self, name: str) -> bytes:
        data = self._assets.get(name)
        if data is None:
            data = (STATIC / name).read_bytes()
            self._assets[name] = data
        return data

    @staticmethod
    def _headers(content_type: str) -> dict[str, str]:
        return {"Content-Type": content_type, "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": CSP}

    async def page(self, request: web.Request) -> web.Response:
        """The page, carrying the snapshot of now: a full board at once (a
        screenshot tool, a slow stream), before the stream's first one."""
        page = self._asset("wallboard.html")
        # JSON in a <script> block: no "<" in it (no "</script>", no "<!--")
        data = _dumps(self.snapshot()).replace("<", "\\u003c").encode()
        return web.Response(body=page.replace(SNAPSHOT_SLOT, data, 1),
                            headers={**self._headers("text/html; charset=utf-8"),
                                     "Cache-Control": "no-store"})

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = ASSETS.get(name)
        if kind is None:
            raise ApiError(404, f"no such wallboard file: {name!r}")
        return web.Response(body=self._asset(name),
                            headers=self._headers(f"{kind}; charset=utf-8"))

    async def state(self, request: web.Request) -> web.Response:
        return web.Response(text=_dumps(self.snapshot()), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    # ---------------------------------------------------------- snapshot

    def snapshot(self) -> dict[str, Any]:
        """What the board shows, now."""
        engine = self.engine
        core = engine.core
        stats = engine.statistics
        now = engine.clock()
        size = stats.interval_s
        # today and this interval, in the statistics' zone (statistics.tz)
        interval_start = stats.start_of(stats.index_of(now))
        day_start = stats.day_start(now)
        # the classes each queue had today: only today's intervals are walked
        q_classes = stats.queue_classes(since=day_start)

        agents = sorted(core.agents(), key=lambda a: a.agent_id)
        calls = {c.call_id: c for c in core.calls()}
        queues = [self._queue(name, now, agents, calls, day_start, interval_start,
                              q_classes.get(name, set()))
                  for name in core.queue_names()]

        policy = core.policy
        names = sorted({*policy.classes, *(c for cs in q_classes.values() for c in cs),
                        policy.default_class})
        classes, alerts = [], []
        for name in names:
            sl = stats.service_level_for(name)
            today = _figures(stats.totals(customer_class=name, since=day_start), sl.target)
            this = _figures(stats.totals(customer_class=name, since=interval_start), sl.target)
            classes.append({"name": name, "sl_threshold_s": sl.threshold_s,
                            "sl_target": sl.target, "today": today, "interval": this})
            for period, fig in (("today", today), ("interval", this)):
                if fig["sl_met"] is False:
                    alerts.append({"customer_class": name, "period": period,
                                   "service_level": fig["service_level"],
                                   "sl_target": sl.target, "sl_threshold_s": sl.threshold_s,
                                   "offered": fig["offered"],
                                   "within_sl": fig["within_sl"]})

        by_state = dict.fromkeys((*STATES, "logged_out"), 0)
        for a in agents:
            by_state[a.state.value] = by_state.get(a.state.value, 0) + 1
        return {
            "now": now, "day_start": day_start,
            "interval": {"start": interval_start, "end": interval_start + size,
                         "length_s": size},
            "totals": {"waiting": sum(q["waiting"] for q in queues), "agents": by_state},
            "queues": queues,
            "agents": [self._agent(a, now, calls) for a in agents],
            "classes": classes,
            "alerts": alerts,
        }

    def _queue(self, name: str, now: float, agents: Sequence[AgentView],
               calls: dict[str, CallView], day_start: float, interval_start: float,
               classes: Iterable[str]) -> dict[str, Any]:
        core, stats = self.engine.core, self.engine.statistics
        qp = core.queue_policy(name)
        need = qp.require
        waiting = [c for c in (calls.get(cid) for cid in core.waiting(name)) if c is not None]
        queued = [c.queued_at for c in waiting if c.queued_at is not None]
        oldest = min(queued, default=None)
        serving = dict.fromkeys(STATES, 0)
        logged_out = 0
        for a in agents:
            if not core.serves(a.profile, name):
                continue
            if a.state is AgentState.LOGGED_OUT:
                logged_out += 1
            else:
                serving[a.state.value] += 1
        sl = stats.service_level_of(set(classes), core.policy.default_class)
        target = sl.target if sl is not None else None
        return {
            "name": name, "skill": need.skill,
            "waiting": len(waiting), "oldest_queued_at": oldest,
            "longest_wait_s": now - oldest if oldest is not None else None,
            "ringing": sum(1 for c in calls.values()
                           if c.queue == name and c.state is CallState.OFFERED),
            "agents": serving, "logged_in": sum(serving.values()), "logged_out": logged_out,
            "sl_threshold_s": sl.threshold_s if sl is not None else None, "sl_target": target,
            "today": _figures(stats.totals(name, since=day_start), target),
            "interval": _figures(stats.totals(name, since=interval_start), target),
            "calls": [{"call_id": c.call_id, "caller": mask(c.caller),
                       "customer_class": c.customer_class, "priority": c.priority,
                       "queued_at": c.queued_at}
                      for c in waiting[:CALLS_SHOWN]],
        }

    @staticmethod
    def _agent(agent: AgentView, now: float, calls: dict[str, CallView]) -> dict[str, Any]:
        p = agent.profile
        call = calls.get(agent.call_id) if agent.call_id is not None else None
        return {
            "id": p.agent_id, "name": p.name, "extension": p.extension,
            "state": agent.state.value, "since": agent.since if agent.since > 0 else None,
            "in_state_s": now - agent.since if agent.since > 0 else None,
            "reason": agent.reason,
            "call": None if call is None else {
                "call_id": call.call_id, "caller": mask(call.caller), "queue": call.queue,
                "customer_class": call.customer_class, "state": call.state.value},
        }

    def frame(self, snapshot: dict[str, Any]) -> bytes:
        """An SSE ``snapshot`` event (JSON on one line: it has no newline)."""
        self._seq += 1
        return f"event: snapshot\nid: {self._seq}\ndata: {_dumps(snapshot)}\n\n".encode()

    # -------------------------------------------------------------- feed

    def on_decision(self, event: Event, actions: Sequence[Action], now: float,
                    started_ns: int) -> None:
        """The engine's decision listener: only marks the board changed."""
        self.changes += 1
        if self._loop is None or self._loop_thread == threading.get_ident():
            self._dirty.set()
        else:  # a decision off the event loop's thread
            self._loop.call_soon_threadsafe(self._dirty.set)

    def _listen(self) -> None:
        """The first stream: follow the engine's decisions, start the feed."""
        if self._listening:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._dirty = asyncio.Event()
        self.engine.listeners.append(self.on_decision)
        self._listening = True
        self._task = asyncio.create_task(self._feed(), name="wallboard feed")

    async def _unlisten(self) -> None:
        """The last stream left (or the API stops): no listener, no task."""
        if self._listening:
            self._listening = False
            try:
                self.engine.listeners.remove(self.on_decision)
            except ValueError:
                pass
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # its end, whatever it was

    async def _feed(self) -> None:
        """Build a snapshot for every stream after a change (at most every
        ``min_gap_s``) and at least every ``refresh_s``."""
        while True:
            try:
                async with asyncio.timeout(self.refresh_s):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            if self.streams:
                try:
                    frame = self.frame(self.snapshot())
                except Exception as exc:  # noqa: BLE001 - logged (rate-limited); feed lives on
                    self._failures.error(log, "snapshot", "wallboard: a snapshot failed "
                                         "(a bug): %s", brief(exc), exc_info=True)
                else:
                    self.snapshots += 1
                    for stream in self.streams:
                        stream.put(frame)
            await asyncio.sleep(self.min_gap_s)

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        async with asyncio.timeout(self.write_timeout_s):
            await resp.write(data)

    async def events(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            raise ApiError(503, "the control API is stopping")
        if len(self.streams) >= self.max_streams:
            raise ApiError(503, f"too many wallboard streams open ({self.max_streams}); "
                                "close one, or read GET /wallboard/state")
        first = self.frame(self.snapshot())  # before the answer starts: a bug is a 500
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
        stream = _Stream()
        self.streams.add(stream)
        try:
            self._listen()
            await resp.prepare(request)
            await self._write(resp, b"retry: 2000\n\n" + first)
            stream.sent += 1
            while not self._closing:
                try:
                    async with asyncio.timeout(self.heartbeat_s):
                        await stream.ready.wait()
                except TimeoutError:
                    await self._write(resp, b": heartbeat\n\n")
                    continue
                frame = stream.take()
                if frame is not None and not self._closing:
                    await self._write(resp, frame)
                    stream.sent += 1
        except TimeoutError:
            self.dropped += 1
            log.info("wallboard: a stream from %s took no snapshot in %.0f s: dropped",
                     request.remote or "?", self.write_timeout_s)
        except ConnectionError:
            pass  # the browser went away
        finally:
            self.streams.discard(stream)
            if not self.streams:
                await self._unlisten()
        return resp

    # --------------------------------------------------------- lifecycle

    async def startup(self, app: web.Application) -> None:
        """The API starts (aiohttp's ``on_startup``): streams are taken."""
        self._closing = False

    async def shutdown(self, app: web.Application) -> None:
        """The API stops: every stream ends now (aiohttp's ``on_shutdown``)."""
        self._closing = True
        for stream in self.streams:
            stream.ready.set()
        await self._unlisten()
