"""The event bus: the contact center's call, agent and queue events, published
over MQTT for wallboards, CRM screen pops and ticketing systems.

Off unless ``acd.yaml`` has an ``events:`` block (see docs/events.md; the
topics and payloads are specified in docs/events.asyncapi.yaml).

How it fits the engine: after each core decision, :meth:`EventBus.on_decision`
maps the event and the actions to payloads and only appends them to a bounded
queue -- it never raises and never waits.  A publisher task of the bus's own
(:class:`~acd.adapters.events_mqtt.MqttEventLink`) takes them from the queue
and publishes them, reconnecting with backoff while the broker is away.  When
the queue is full, the oldest event is dropped and counted (``dropped``);
every event carries a per-engine sequence number (``seq``), so a consumer
sees the gap.

Topics (``<p>`` = ``topic_prefix``, ``<s>`` = the engine's ``server``):

=============================  ====================================================
``<p>/<s>/call/<id>/<kind>``   kind: started, restored, queued, offered, answered,
                               fallback, ended (the call's record)
``<p>/<s>/agent/<id>/state``   an agent's state change (retained)
``<p>/<s>/queue/<name>``       a queue's snapshot every ``queue_every_s`` (retained)
``<p>/<s>/status``             the link: online, or offline (also the MQTT will;
                               retained)
=============================  ====================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acd.core.center import Agent, ContactCenter
from acd.core.errors import UnknownSubject
from acd.core.model import (
    Action,
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallRecord,
    CallRestored,
    CallStarted,
    CallState,
    ConnectCall,
    Event,
    FallbackCall,
    OfferAnswered,
    WriteCallRecord,
)
from acd.logs import redacted

if TYPE_CHECKING:  # imported when the bus starts: aiomqtt is the optional `mqtt` extra
    from acd.adapters.events_mqtt import MqttEventLink, Outgoing

log = logging.getLogger(__name__)

#: characters that may not stand in an MQTT topic level we publish to
_NOT_IN_LEVEL = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})
#: at most one warning per this many seconds for dropped events and mapping errors
WARN_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class EventsConfig:
    """``events:`` in acd.yaml (see docs/events.md)."""

    transport: str = "mqtt"
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "acd"
    qos: int = 1
    #: None: ``acd-events-<server>-<run>`` (unique per engine process)
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    #: events held while the broker is away; past it the oldest are dropped
    queue_limit: int = 10_000
    #: seconds between queue snapshots; 0: none
    queue_every_s: float = 5.0
    #: the broker's acknowledgement (QoS 1/2) of one publish, and the connect
    publish_timeout_s: float = 5.0
    reconnect_max_s: float = 10.0
    #: stop(): how long the events still queued may take to go out (broker up)
    flush_s: float = 2.0


def level(name: str) -> str:
    """``name`` as one topic level: ``/``, ``+``, ``#`` (and NUL) become ``_``
    (the payload carries the name as it is)."""
    return name.translate(_NOT_IN_LEVEL) or "_"


def record_json(rec: CallRecord) -> dict[str, Any]:
    """A call record as the ``ended`` event carries it: the database's names
    (but ``pbx`` for its ``server``, the Asterisk server of the call: the
    envelope's ``server`` is the engine's), times in epoch seconds, the IVR
    path as a list."""
    return {
        "call_id": rec.call_id, "caller": rec.caller, "caller_name": rec.caller_name,
        "pbx": rec.server,
        "started_at": rec.started_at, "ended_at": rec.ended_at,
        "outcome": rec.outcome.value, "ivr_path": list(rec.ivr_path),
        "queue": rec.queue, "first_queue": rec.first_queue, "queued_at": rec.queued_at,
        "wait_s": rec.wait_s, "agent_id": rec.agent_id, "answered_at": rec.answered_at,
        "talk_s": rec.talk_s, "offers": rec.offers, "customer_class": rec.customer_class,
        "priority": rec.priority,
    }


#: (topic below ``<prefix>/<server>/``, payload without the envelope, retained)
Item = tuple[str, dict[str, Any], bool]


def decision_events(event: Event, actions: Sequence[Action], now: float,
                    core: ContactCenter | None = None) -> list[Item]:
    """What one core decision publishes, in order: what the event itself
    says (a call started, queued, answered), then one item per action that
    matters to the outside (an offer, a fallback, the record, agent states).

    ``core`` (the state right after the decision) adds what the event does
    not say: the queue the routing picked, the customer class, the agent's
    name.  Pure apart from reading ``core``."""
    out: list[Item] = []
    if isinstance(event, CallStarted):
        out.append((f"call/{level(event.call_id)}/started",
                    {"event": "call.started", "call_id": event.call_id,
                     "caller": event.caller, "caller_name": event.caller_name,
                     "pbx": event.server}, False))
    elif isinstance(event, CallQueued):
        call = core.call(event.call_id) if core is not None else None
        if call is not None and call.queue is not None:
            queue, priority, cls = call.queue, call.priority, call.customer_class
        else:  # ended at once (or no core): what the IVR asked for
            queue, priority, cls = event.queue, event.priority, ""
        out.append((f"call/{level(event.call_id)}/queued",
                    {"event": "call.queued", "call_id": event.call_id, "queue": queue,
                     "ivr_queue": event.queue, "priority": priority,
                     "customer_class": cls, "ivr_path": list(event.ivr_path)}, False))
    elif isinstance(event, CallRestored):
        call = core.call(event.call_id) if core is not None else None
        out.append((f"call/{level(event.call_id)}/restored",
                    {"event": "call.restored", "call_id": event.call_id,
                     "caller": event.caller, "caller_name": event.caller_name,
                     "pbx": event.server, "started_at": event.started_at,
                     "state": call.state.value if call is not None else None,
                     "queue": call.queue if call is not None else event.queue,
                     "agent_id": call.agent_id if call is not None else event.agent_id},
                    False))
    elif isinstance(event, OfferAnswered):
        # a late answer to an offer the core has withdrawn changes nothing:
        # the agent going on the call is what says the answer counted
        agent = next((a.agent_id for a in actions if isinstance(a, AgentStateChanged)
                      and a.new is AgentState.ON_CALL), None)
        if agent is not None:
            call = core.call(event.call_id) if core is not None else None
            queued_at = call.queued_at if call is not None else None
            out.append((f"call/{level(event.call_id)}/answered",
                        {"event": "call.answered", "call_id": event.call_id,
                         "offer_id": event.offer_id, "agent_id": agent,
                         "queue": call.queue if call is not None else None,
                         "wait_s": now - queued_at if queued_at is not None else None},
                        False))
    for action in actions:
        if isinstance(action, ConnectCall):
            call = core.call(action.call_id) if core is not None else None
            out.append((f"call/{level(action.call_id)}/offered",
                        {"event": "call.offered", "call_id": action.call_id,
                         "offer_id": action.offer_id, "agent_id": action.agent_id,
                         "extension": action.extension,
                         "queue": call.queue if call is not None else None,
                         "ring_timeout_s": action.ring_timeout_s}, False))
        elif isinstance(action, AgentStateChanged):
            out.append((f"agent/{level(action.agent_id)}/state",
                        agent_json(action, core), True))
        elif isinstance(action, FallbackCall):
            out.append((f"call/{level(action.call_id)}/fallback",
                        {"event": "call.fallback", "call_id": action.call_id,
                         "kind": action.kind, "queue": action.queue}, False))
        elif isinstance(action, WriteCallRecord):
            rec = action.record
            out.append((f"call/{level(rec.call_id)}/ended",
                        {"event": "call.ended", **record_json(rec)}, False))
    return out


def agent_json(change: AgentStateChanged, core: ContactCenter | None) -> dict[str, Any]:
    name, call_id = "", None
    if core is not None:
        try:
            agent: Agent | None = core.agent(change.agent_id)
        except UnknownSubject:  # removed meanwhile
            agent = None
        if agent is not None:
            name = agent.profile.name
            # the call it rings with or is on (the state after the whole decision
            # may already be a later one: ready, then reserved for another call)
            if change.new in (AgentState.RESERVED, AgentState.ON_CALL):
                call_id = agent.call_id
    return {"event": "agent.state", "agent_id": change.agent_id, "name": name,
            "old": change.old.value, "new": change.new.value, "reason": change.reason,
            "call_id": call_id}


def queue_snapshot(core: ContactCenter, now: float) -> list[dict[str, Any]]:
    """Per queue: calls waiting, the longest wait, calls ringing an agent,
    agents serving it (:meth:`ContactCenter.serves`) logged in and not paused,
    and those ready."""
    staffing = core.queue_staffing()
    ringing: dict[str, int] = {}
    for call in core.calls():
        if call.state is CallState.OFFERED and call.queue is not None:
            ringing[call.queue] = ringing.get(call.queue, 0) + 1
    out: list[dict[str, Any]] = []
    for name in core.queue_names():
        skill = core.queue_policy(name).require.skill
        waiting = core.waiting(name)
        since = [c.queued_at for c in (core.call(cid) for cid in waiting)
                 if c is not None and c.queued_at is not None]
        out.append({"queue": name, "skill": skill, "waiting": len(waiting),
                    "longest_wait_s": now - min(since) if since else None,
                    "ringing": ringing.get(name, 0), "staffed": staffing[name][0],
                    "ready": staffing[name][1]})
    return out


class EventBus:
    """The engine's events, queued for the broker.

    ``on_decision`` (from the engine, after each decision) and the queue
    snapshots append to one queue of at most ``queue_limit`` events; the
    publisher task takes them in order.  ``seq`` is the number of the last
    event appended (1, 2, 3 ... per engine process, whose ``run`` id every
    payload carries too)."""

    def __init__(self, config: EventsConfig, server: str, core: ContactCenter | None = None,
                 clock: Callable[[], float] = time.time, *,
                 snapshot: Callable[[float], list[dict[str, Any]]] | None = None) -> None:
        """``snapshot(now)``: the queue snapshots (default :func:`queue_snapshot`
        of ``core``; none without a core)."""
        self.config = config
        self.server = server
        self.core = core
        self.clock = clock
        if snapshot is None and core is not None:
            def snapshot(now: float) -> list[dict[str, Any]]:
                return queue_snapshot(core, now)
        self.snapshot = snapshot
        self.run_id = secrets.token_hex(4)
        self.base = f"{config.topic_prefix}/{level(server)}"
        self.seq = 0
        self.dropped = 0
        self.errors = 0
        self._queue: deque[tuple[str, dict[str, Any], bool]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._next_warn = {"drop": 0.0, "error": 0.0}
        self._dropped_warned = 0
        self.link: MqttEventLink | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._snap_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------ engine side

    def on_decision(self, event: Event, actions: Sequence[Action], now: float) -> None:
        """Queue what the decision publishes.  Never raises, never waits."""
        try:
            for topic, body, retain in decision_events(event, actions, now, self.core):
                self._put(topic, body, now, retain)
        except Exception:
            self.errors += 1
            if self._may_warn("error"):
                log.exception("event bus: mapping event %s failed (%d so far); "
                              "the engine carries on", redacted(event), self.errors)

    def publish_queues(self) -> None:
        """Queue one snapshot of every queue (retained)."""
        if self.snapshot is None:
            return
        now = self.clock()
        for snap in self.snapshot(now):
            self._put(f"queue/{level(str(snap['queue']))}",
                      {"event": "queue.snapshot", **snap}, now, True)

    @property
    def queued(self) -> int:
        """Events waiting for the publisher (not counting the batch it holds)."""
        return len(self._queue)

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def published(self) -> int:
        """Events the broker has acknowledged (QoS 1/2) or taken (QoS 0)."""
        return self.link.published if self.link is not None else 0

    def pending(self) -> list[tuple[str, dict[str, Any], bool]]:
        """The queued events as (topic, payload, retained): for tests and tools."""
        return list(self._queue)

    def _put(self, topic: str, body: dict[str, Any], at: float, retain: bool) -> None:
        self.seq += 1
        # the envelope first: readers of a raw payload see what it is at once
        payload = {"event": body.pop("event"), "seq": self.seq, "at": at,
                   "server": self.server, "run": self.run_id, **body}
        if len(self._queue) >= self.config.queue_limit:
            self._queue.popleft()
            self.dropped += 1
            if self._may_warn("drop"):
                log.warning("event bus: MQTT broker %s:%s is not taking events; dropped "
                            "%d oldest (%d in all; queue limit %d)", self.config.host,
                            self.config.port, self.dropped - self._dropped_warned,
                            self.dropped, self.config.queue_limit)
                self._dropped_warned = self.dropped
        self._queue.append((f"{self.base}/{topic}", payload, retain))
        self._wake.set()

    def _may_warn(self, what: str) -> bool:
        t = time.monotonic()
        if t < self._next_warn[what]:
            return False
        self._next_warn[what] = t + WARN_EVERY_S
        return True

    # ----------------------------------------------------- publisher side

    async def take(self, n: int) -> list[Outgoing]:
        """Up to ``n`` events, oldest first, as MQTT messages; waits for one.
        ``[]``: the bus is stopping and nothing is left."""
        from acd.adapters.events_mqtt import Outgoing
        while not self._queue:
            if self._closed:
                return []
            self._wake.clear()
            await self._wake.wait()
        out: list[Outgoing] = []
        while self._queue and len(out) < n:
            topic, payload, retain = self._queue.popleft()
            out.append(Outgoing(topic, _encode(payload), retain))
        return out

    def status(self, state: str) -> Outgoing:
        """The link's status message, retained: ``online`` (connected),
        ``offline`` (stopped; ``last_seq``: the last event published) or
        ``lost`` (the MQTT will, set when connecting, which the broker sends
        if the engine vanishes: its ``at`` is when the link was made).  Not
        an event: no ``seq``."""
        from acd.adapters.events_mqtt import Outgoing
        return Outgoing(f"{self.base}/status", _encode({
            "event": "status", "state": state, "at": self.clock(), "server": self.server,
            "run": self.run_id, "last_seq": self.seq if state == "offline" else None}), True)

    async def start(self) -> None:
        """Start the publisher (and the queue snapshots); returns at once,
        whether the broker is up or not."""
        from acd.adapters.events_mqtt import LinkConfig, MqttEventLink
        cfg = self.config
        if self._link_task is not None:
            raise RuntimeError("the event bus is already started")
        self._closed = False
        self.link = MqttEventLink(LinkConfig(
            host=cfg.host, port=cfg.port, username=cfg.username, password=cfg.password,
            client_id=cfg.client_id or f"acd-events-{level(self.server)}-{self.run_id}",
            qos=cfg.qos, publish_timeout_s=cfg.publish_timeout_s,
            reconnect_max_s=cfg.reconnect_max_s), self.take, self.status)
        loop = asyncio.get_running_loop()
        self._link_task = loop.create_task(self.link.run(), name="events-mqtt")
        self._link_task.add_done_callback(self._ended)
        if cfg.queue_every_s > 0 and self.snapshot is not None:
            self._snap_task = loop.create_task(self._snapshots(), name="events-queues")
            self._snap_task.add_done_callback(self._ended)
        log.info("event bus: publishing to MQTT %s:%s under %s/ (QoS %d)", cfg.host, cfg.port,
                 self.base, cfg.qos)

    async def stop(self, cancel_s: float = 1.0) -> None:
        """Stop publishing: what is queued may go out for up to ``flush_s``
        if the broker is connected; then the publisher is cancelled.  Returns
        within ``flush_s + 2 * cancel_s`` seconds, broker or not."""
        self._closed = True
        self._wake.set()
        if self._snap_task is not None:
            self._snap_task.cancel()
            await asyncio.wait({self._snap_task}, timeout=cancel_s)
            self._snap_task = None
        task = self._link_task
        if task is None:
            return
        if self.connected:  # it publishes what is left, the offline status, and ends
            await asyncio.wait({task}, timeout=self.config.flush_s)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=cancel_s)
        if not task.done():  # kept referenced (self._link_task) until it ends
            log.error("event bus: the MQTT publisher did not stop within %.1f s", cancel_s)
            return
        self._link_task = None
        left = len(self._queue) + (self.link.holding if self.link is not None else 0)
        if left or self.dropped:
            log.warning("event bus: stopped with %d events not published and %d dropped "
                        "(broker %s:%s)", left, self.dropped, self.config.host,
                        self.config.port)

    async def _snapshots(self) -> None:
        every = self.config.queue_every_s
        while True:
            try:
                # only while connected: snapshots are the present, and a backlog of
                # stale ones would push calls' events out of a full queue
                if self.connected:
                    self.publish_queues()
            except Exception:
                self.errors += 1
                if self._may_warn("error"):
                    log.exception("event bus: queue snapshot failed (%d errors so far)",
                                  self.errors)
            await asyncio.sleep(every)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("event bus: task %s failed", task.get_name(), exc_info=task.exception())


def _encode(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON, names as they are (ensure_ascii=False: 张三, not \\u5f20\\u4e09)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode()
