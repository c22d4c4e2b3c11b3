"""The one place that wires everything: core, FastAGI, AMI, database, timers.

Decide, then do I/O: every event from the world (an AGI step, an AMI event,
a timer) goes through ``ContactCenter.handle(event, now)``; the actions it
returns are carried out here, and their results come back as events.

The parts, each with one job, are built and connected in ``__init__``:

====================  ========================================================
``calls``             the call registry (:mod:`acd.runtime.calls`): one record
                      of each live call, and the channel map
``scripts``           the FastAGI scripts hotline, requeue, fallback
                      (:mod:`acd.runtime.agi_scripts`)
``hold``              the hold loop and announcements (:mod:`acd.runtime.hold`)
``ami_events``        AMI events -> core events (:mod:`acd.runtime.ami_events`)
``moves``             Redirects to an agent or a fallback (:mod:`acd.runtime.moves`)
``timers``            the core's timers (:mod:`acd.runtime.timers`; pass
                      ``timers=`` for a simulated or virtual clock)
``api``               the control API (:mod:`acd.api`), which sees the engine
                      only through its :class:`~acd.api.protocol.ControlledEngine`
====================  ========================================================

How a caller is held and connected (see docs/decisions.md): the caller stays
in our FastAGI session on ``EXEC MusicOnHold`` while waiting; to connect,
the engine sends AMI ``Redirect`` of the caller's channel to
``acd-connect,<agent extension>,1``, whose ``Dial`` rings the agent with
music on hold; if the agent does not answer, the dialplan brings the caller
back to FastAGI (``requeue``) and the core puts the call back at its
original place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from acd.adapters.ami import AmiClient
from acd.adapters.fastagi import FastAgiServer
from acd.adapters.lookup import LookupBatcher
from acd.adapters.profiles_store import ProfileStore
from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database, RecordWriter
from acd.api.control import ControlApi
from acd.core.center import ContactCenter
from acd.core.errors import CoreError
from acd.core.model import (
    Action,
    AgentLogin,
    AgentProfileChanged,
    AgentStateChanged,
    CallRecord,
    CancelTimer,
    ConnectCall,
    Event,
    FallbackCall,
    RecordExplanation,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.stats import ServiceLevel, Statistics
from acd.ivr.nodes import Flow
from acd.runtime.agi_scripts import CallScripts
from acd.runtime.ami_events import AMI_EVENTS, AmiEvents
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.counters import EngineCounters
from acd.runtime.flows import FlowRegistry
from acd.runtime.hold import Hold
from acd.runtime.http_lookup import HttpLookup
from acd.runtime.moves import PbxMoves
from acd.runtime.settings import EngineConfig
from acd.runtime.sms_sender import SmsSender
from acd.runtime.sms_wiring import call_facts, make_transport
from acd.runtime.timers import LoopTimers, TimerKey, Timers

log = logging.getLogger(__name__)

#: ``observer(event, actions, started_ns)``: called after each core decision,
#: before its actions are carried out; ``started_ns`` is ``time.monotonic_ns()``
#: when the event reached the engine.  An ``Exception`` it raises is logged
#: with the event and counted in ``counters.errors``; the actions are
#: carried out all the same
Observer = Callable[[Event, Sequence[Action], int], None]


class Engine:
    """The engine's public face: ``start``/``stop``, ``handle``/``submit``
    an event, and read views (``core``, ``calls``, ``statistics``,
    ``counters``)."""

    def __init__(self, config: EngineConfig, clock: Callable[[], float] = time.time,
                 lookup: Callable[[str], Coroutine[Any, Any, dict[str, str]]] | None = None,
                 *, timers: Timers | None = None, observer: Observer | None = None) -> None:
        """``lookup(number)``: the caller's profile as routing attributes
        (default: the customers table and the last agent from call records).
        ``timers``: default real time on the asyncio loop.  ``observer``: see
        :data:`Observer`."""
        self.config = config
        self.clock = clock
        self.core = ContactCenter(config.core)
        self.flows = FlowRegistry(config.flow, config.flow.file,
                                  set(config.known_queues) if config.known_queues else None,
                                  config.sounds)
        self.http = HttpLookup()
        self.db = Database(config.database_url)
        self.writer = RecordWriter(self.db)
        self.profiles = ProfileStore(self.db, country=config.country_code)
        self.sms: SmsSender | None = None
        self.sms_store: SmsStore | None = None
        if config.sms is not None:
            policy = config.sms.policy
            self.sms_store = SmsStore(self.db, country=config.country_code)
            sender_cfg = dataclasses.replace(config.sms.sender,
                                             sender=policy.sender or config.sms.sender.sender)
            self.sms = SmsSender(self.sms_store,
                                 make_transport(config.sms, self._app_login), sender_cfg,
                                 clock)
        self.lookups = LookupBatcher(self.profiles.callers_context)
        # the caller lookup: profile and last agent from the database (the
        # call records are the one store of a caller's last agent)
        self.lookup = lookup if lookup is not None else self.lookups.attributes
        self.counters = EngineCounters()
        self.statistics = Statistics({c.name: ServiceLevel(c.sl_threshold_s, c.sl_target)
                                      for c in config.core.policy.classes.values()})
        self.timers: Timers = timers if timers is not None else LoopTimers(clock)
        self.observer = observer
        #: set to a list to collect every core decision's duration (ns), for benchmarks
        self.latencies: list[int] | None = None

        # the parts
        self.calls = CallRegistry()
        reports = CallReports(self.calls, self.handle)
        self.hold = Hold(self.core, reports, config.moh_class,
                         fallback_wait_s=config.ami.action_timeout + 1)
        self.scripts = CallScripts(config, self.calls, reports, self.hold,
                                   lambda: self.flows.current, self.lookup, self.http.get,
                                   clock, self.counters)
        self.agi = FastAgiServer(self.scripts.routes(), host=config.agi_host,
                                 port=config.agi_port)
        self.ami_events = AmiEvents(self.calls, reports)
        ami_cfg = config.ami
        if ami_cfg.wanted_events is None:
            ami_cfg = dataclasses.replace(ami_cfg, wanted_events=AMI_EVENTS)
        self.ami = AmiClient(ami_cfg, self.ami_events.on_event, self._resync,
                             name=config.server)
        self.moves = PbxMoves(self.ami, self.calls, reports, config.connect_context)
        self.api = ControlApi(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ami_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.db.create()
        for profile in await self.profiles.agents():
            # agents stored with `acd agents import/set` join (or update) the configured ones
            self.handle(AgentProfileChanged(profile))
        self.writer.start()
        self.lookups.start()
        if self.sms is not None:
            await self.sms.start()
        await self.agi.start()
        try:
            if self.config.api_port is not None:
                await self.api.start(self.config.api_host, self.config.api_port)
            await self.ami.connect()  # a wrong password or no Asterisk fails here, loudly
        except BaseException:
            await self.api.stop()
            await self.agi.stop()
            if self.sms is not None:
                await self.sms.stop()
            await self.lookups.stop()
            await self.writer.stop()
            await self.db.dispose()
            raise
        self._ami_task = asyncio.get_running_loop().create_task(self.ami.run(), name="ami")
        self._ami_task.add_done_callback(self._ami_ended)
        if self.config.login_agents:
            for agent in self.core.agents():
                self.handle(AgentLogin(agent.agent_id, ready=True))
        if self.config.flow_watch:
            self._watch_task = asyncio.get_running_loop().create_task(
                self.flows.watch(), name="flow-watch")

        log.info("engine up: FastAGI on %s:%s, AMI %s:%s, %d agents, flow %s",
                 self.config.agi_host, self.agi.port, self.config.ami.host,
                 self.config.ami.port, sum(1 for _ in self.core.agents()), self.flow.file)

    async def stop(self) -> None:
        await self.api.stop()
        await self.agi.stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        await self.http.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ami_task is not None:
            self._ami_task.cancel()
            await asyncio.gather(self._ami_task, return_exceptions=True)
        await self.ami.close()
        self.timers.cancel_all()
        if self.sms is not None:
            await self.sms.stop()
        await self.lookups.stop()
        await self.writer.stop()
        await self.db.dispose()

    @property
    def flow(self) -> Flow:
        """The flow new calls take (calls in progress keep their own)."""
        return self.flows.current

    @property
    def supervisor(self) -> asyncio.Task[None] | None:
        """The AMI supervisor task: it ends only with a fatal error (e.g. the
        AMI login was refused on a reconnect)."""
        return self._ami_task

    @property
    def fallbacks(self) -> deque[tuple[str, str, str]]:
        """(call id, kind, number) of the latest calls sent to a fallback."""
        return self.scripts.fallbacks

    @property
    def pbx_connected(self) -> bool:
        """The AMI link is up."""
        return bool(self.ami.connected)

    @property
    def sms_app_url(self) -> str | None:
        """Where an SMS link sends the caller (None: SMS diversion is off)."""
        return self.config.sms.policy.app_url if self.config.sms is not None else None

    def _ami_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI supervisor stopped: %s", task.exception())

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters.errors += 1
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ----------------------------------------------------- core <-> world

    def submit(self, event: Event) -> CoreError | None:
        """Feed one event to the core and carry out what it decides.  Returns
        the core's refusal (the event changed nothing), or None; the caller
        decides what a refusal means (the control API answers 409)."""
        observer = self.observer
        started = time.monotonic_ns() if observer is not None else 0
        t0 = time.perf_counter_ns()
        try:
            actions = self.core.handle(event, self.clock())
        except CoreError as exc:
            return exc
        if self.latencies is not None:
            self.latencies.append(time.perf_counter_ns() - t0)
        if observer is not None:
            try:
                observer(event, actions, started)
            except Exception:
                # the core has decided: its actions are carried out whatever the
                # observer does (a skipped ConnectCall would strand the call)
                self.counters.errors += 1
                log.exception("observer failed on event %s (its actions are carried out)",
                              event)
        for action in actions:
            self._do(action)
        return None

    def handle(self, event: Event) -> CoreError | None:
        """:meth:`submit` for the engine's own sources (AMI, AGI, timers,
        start-up): a refusal there is a race or a bug, so it is also logged
        with the event and counted in ``counters.errors``."""
        refusal = self.submit(event)
        if refusal is not None:
            self.counters.errors += 1
            log.error("event %s refused by the core: %s", event, refusal)
        return refusal

    def _do(self, action: Action) -> None:
        if isinstance(action, WriteCallRecord | AgentStateChanged):
            self.statistics.on_action(action, self.clock())
        match action:
            case ConnectCall():
                call = self.calls.get(action.call_id)
                if call is not None:
                    call.redirect_offer = action.offer_id
                self._spawn(self.moves.connect(action), f"connect-{action.call_id}")
            case StartTimer():
                self.timers.start(action.key, action.at, self._fire)
            case CancelTimer():
                self.timers.cancel(action.key)
            case WriteCallRecord():
                rec = action.record
                self._queue_sms(rec, self.calls.finished(rec.call_id))
                self.counters.calls_finished += 1
                self.writer.put(rec)
            case AgentStateChanged():
                log.debug("agent %s: %s -> %s %s", action.agent_id, action.old.value,
                          action.new.value, action.reason)
            case RecordExplanation():
                self.writer.put_explanation(action.explanation)
            case FallbackCall():
                call = self.calls.get(action.call_id)
                if call is not None:
                    call.fallback = action.kind
                    self._spawn(self.moves.fallback(call, action), f"fallback-{action.call_id}")

    def _fire(self, key: TimerKey) -> None:
        self.handle(TimerFired(key))

    def _queue_sms(self, rec: CallRecord, call: LiveCall | None) -> None:
        """The SMS rules look at the ended call; what they pick is written with
        the call's record (same transaction)."""
        if self.config.sms is None:
            return
        pending = self.config.sms.policy.decide(call_facts(rec, call))
        if pending is not None:
            self.writer.put_sms(pending)

    async def _resync(self) -> None:
        await self.ami_events.resync(self.ami.send_list)

    async def _app_login(self, number: str) -> None:
        if self.sms_store is not None:
            await self.sms_store.app_login(number, self.clock())  # the store normalises
