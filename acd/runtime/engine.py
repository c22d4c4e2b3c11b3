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

from acd.adapters.ami import AmiConnectError, AmiError
from acd.adapters.fastagi import FastAgiServer
from acd.adapters.lookup import LookupBatcher
from acd.adapters.profiles_store import ProfileStore
from acd.adapters.rows import AgentEventRow
from acd.adapters.sms_store import SmsStore
from acd.adapters.storage import Database, RecordWriter
from acd.adapters.tasks import cancel_and_wait
from acd.api.control import ControlApi
from acd.core.center import ContactCenter
from acd.core.errors import CoreError
from acd.core.model import (
    Action,
    AgentProfileChanged,
    AgentStateChanged,
    CallRecord,
    CallState,
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
from acd.logs import Limited, redacted
from acd.protocols.ami import AmiMessage
from acd.reports.calls import zone_offset
from acd.runtime import ivr_agi
from acd.runtime.agi_scripts import CallScripts
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.continuity import agent_row, live_row, touched
from acd.runtime.counters import EngineCounters
from acd.runtime.event_bus import EventBus
from acd.runtime.flows import FlowRegistry
from acd.runtime.hold import Hold
from acd.runtime.http_lookup import HttpLookup
from acd.runtime.moves import Verdict, channel_proof
from acd.runtime.queue_log_wiring import QueueLogWiring
from acd.runtime.rebuild import (
    ABSENT_DEVICE_STATES,
    BUSY_DEVICE_STATES,
    Phones,
    RebuildReport,
    StartUp,
    agents_back,
    put_back_in_order,
)
from acd.runtime.recordings import Retention
from acd.runtime.servers import PbxServer
from acd.runtime.settings import EngineConfig, statistics_zone
from acd.runtime.sms_sender import SmsSender
from acd.runtime.sms_wiring import call_facts, make_transport
from acd.runtime.timers import LoopTimers, TimerKey, Timers

log = logging.getLogger(__name__)

#: at a stop, how long the engine's own tasks (the AMI supervisor, the flow
#: watch, the spawned ones) are given to end once cancelled; each ends at its
#: next await, so this is reached only by one stuck outside asyncio (logged)
STOP_TASKS_S = 5.0

#: ``observer(event, actions, started_ns)``: called after each core decision,
#: before its actions are carried out; ``started_ns`` is ``time.monotonic_ns()``
#: when the event reached the engine.  An ``Exception`` it raises is logged
#: with the event and counted in ``counters.errors``; the actions are
#: carried out all the same
Observer = Callable[[Event, Sequence[Action], int], None]

#: ``listener(event, actions, now, started_ns)``: a part that follows every core
#: decision (the queue_log writer, the wallboard's change feed, the metrics'
#: decision latency), called after the observer and before the actions are
#: carried out; like the observer, an ``Exception`` it raises is logged
#: (rate-limited) and counted, and the actions are carried out all the same.
#: A listener must not block or await: it only records or queues.
Listener = Callable[[Event, Sequence[Action], float, int], None]


class Engine:
    """The engine's public face: ``start``/``stop``, ``handle``/``submit``
    an event, and read views (``core``, ``calls``, ``statistics``,
    ``counters``)."""

    def __init__(self, config: EngineConfig, clock: Callable[[], float] = time.time,
                 lookup: Callable[[str], Coroutine[Any, Any, dict[str, str]]] | None = None,
                 *, timers: Timers | None = None, observer: Observer | None = None,
                 http: HttpLookup | None = None) -> None:
        """``lookup(number)``: the caller's profile as routing attributes
        (default: the customers table and the last agent from call records).
        ``timers``: default real time on the asyncio loop.  ``observer``: see
        :data:`Observer`.  ``http``: the flow's HTTP lookups (default: the
        URLs as written; ``acd demo`` routes the example back end's)."""
        self.config = config
        self.clock = clock
        self.core = ContactCenter(config.core)
        self.flows = FlowRegistry(config.flow, config.flow.file,
                                  set(config.known_queues) if config.known_queues else None,
                                  config.sounds, config.say_composed)
        self.http = http if http is not None else HttpLookup()
        self.db = Database(config.database_url)
        #: call records and the rest, written in batches; what the database
        #: cannot take goes to dead_letters or the local spool (config.records)
        self.writer = RecordWriter(self.db, config=config.records, clock=clock)
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
        #: refusals of the core and observer failures: at most one line a
        #: minute of each kind of event (with a count)
        self.refusals = Limited(60.0)
        st = config.statistics
        self.statistics = Statistics({c.name: ServiceLevel(c.sl_threshold_s, c.sl_target)
                                      for c in config.core.policy.classes.values()},
                                     interval_s=st.interval_s,
                                     short_abandon_s=st.short_abandon_s,
                                     utc_offset=zone_offset(statistics_zone(st)))
        self.timers: Timers = timers if timers is not None else LoopTimers(clock)
        self.observer = observer
        #: parts that follow every decision (:data:`Listener`); added by the wiring
        self.listeners: list[Listener] = []
        #: calls, agents and queues published over MQTT (None: no `events:` configured)
        self.events = EventBus(config.events, config.server, self.core, clock) \
            if config.events is not None else None
        #: set to a list to collect every core decision's duration (ns), for benchmarks
        self.latencies: list[int] | None = None

        # the parts
        self.calls = CallRegistry(config.server)
        self.reports = reports = CallReports(self.calls, self.handle)
        #: Asterisk-format queue_log lines (None: no `queue_log:` configured)
        self.queue_log = QueueLogWiring(config.queue_log, self.core, self.calls, self.writer) \
            if config.queue_log is not None else None
        if self.queue_log is not None:
            self.listeners.append(self.queue_log)
        self.hold = Hold(self.core, reports, config.moh_class,
                         fallback_wait_s=config.ami.action_timeout + 1,
                         composed=config.say_composed, clock=clock)
        self.scripts = CallScripts(config, self.calls, reports, self.hold,
                                   lambda: self.flows.current, self.lookup, self.http.get,
                                   clock, self.counters, check=self._check_strays,
                                   spawn=self._spawn, prove=self._prove)
        self.agi = FastAgiServer(self.scripts.routes(), host=config.agi_host,
                                 port=config.agi_port,
                                 header_timeout=config.agi_header_timeout_s,
                                 allow=config.agi_peers,
                                 max_connections=config.agi_max_connections)
        #: what the start-up found of an earlier process's calls
        self.restored: RebuildReport | None = None
        self.phones = Phones(self.core, self.handle)
        #: agent id -> the server their phone is on (several servers only)
        self.agent_home: dict[str, str] = dict(config.agent_servers)
        #: one per Asterisk server, the first (``server``/``ami``) first
        self.servers: dict[str, PbxServer] = {}
        for name, ami_cfg in ((config.server, config.ami),
                              *((x.name, x.ami) for x in config.servers)):
            self.servers[name] = PbxServer(
                name, ami_cfg, core=self.core, submit=self.handle, calls=self.calls,
                reports=reports, db=self.db, connect_context=config.connect_context,
                path_contexts=[ctx for (a, _), ctx in config.paths.items() if a == name],
                clock=clock, on_device=self._device_state, offer_live=self._offer_live,
                spawn=self._spawn)
        first = self.servers[config.server]
        #: the first server's parts (the only ones with one server)
        self.ami, self.ami_events, self.moves, self.rebuild = \
            first.ami, first.events, first.moves, first.rebuild
        self.api = ControlApi(self, config.api)
        #: recordings (docs/recordings.md): each offer sets its file on the
        #: caller's channel (ACD_RECORDING), the dialplan records the answered
        #: call into it; here, the retention pass
        self.retention: Retention | None = None
        if config.recordings is not None:
            self.retention = Retention(config.recordings, clock)
            for srv in self.servers.values():
                srv.moves.recordings = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ami_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self.api.prepare()  # the API's token file and TLS: a problem stops us before anything
        await self.db.create()
        # rows an earlier run left in the spool, before the start-up reads
        # calls_live and agent_states (so it does not record a call twice)
        await self.writer.replay()
        for profile in await self.profiles.agents():
            # agents stored with `acd agents import/set` join (or update) the configured ones
            self.handle(AgentProfileChanged(profile))
        self.writer.start()
        if self.queue_log is not None:
            self.queue_log.start(self.clock())
        if self.events is not None:
            await self.events.start()  # returns at once, broker or not
        self.lookups.start()
        if self.sms is not None:
            await self.sms.start()
        try:
            await self.agi.bind()  # a port in use fails before anything is driven
            for srv in self.servers.values():
                try:
                    # a wrong password, or no first Asterisk, fails here, loudly
                    await srv.ami.connect()
                except AmiConnectError as exc:
                    if srv.ami is self.ami:
                        raise
                    log.error("%s; its calls are picked up once it is reachable", exc)
            # calls and agents an earlier process left, before any new call:
            # FastAGI opens after (callers in acd-recover retry meanwhile)
            self.restored = found = RebuildReport()
            redirects = await self._start_up(found)
            self.counters.calls_restored = (found.waiting + found.ringing + found.talking
                                            + found.ivr + found.ended)
            await self.agi.start()
            # callers in sessions that died with the earlier process: back
            # to us now that FastAGI is open
            for srv, pending in redirects:
                await srv.rebuild.resume(pending, srv.ami.send, found)
            await self.api.start()  # the listeners api: asks for (none: nothing)
        except BaseException:
            await self.api.stop()
            await self.agi.stop()
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for srv in self.servers.values():
                await srv.ami.close()
            self.timers.cancel_all()
            if self.sms is not None:
                await self.sms.stop()
            await self.lookups.stop()
            if self.events is not None:
                await self.events.stop()
            if self.queue_log is not None:
                await self.queue_log.stop()
            await self.writer.stop(self.config.stop_flush_s)
            await self.db.dispose()
            raise
        self._ami_task = asyncio.get_running_loop().create_task(self._run_amis(), name="ami")
        self._ami_task.add_done_callback(self._ami_ended)
        if self.counters.calls_restored:
            log.info("start-up found an earlier engine's calls: %s", self.restored)
        if self.retention is not None and self.retention.enabled:
            self._spawn(self.retention.run(), "recordings-retention")
        self._spawn(self._prune_daily(), "statistics-prune")
        if self.config.flow_watch:
            self._watch_task = asyncio.get_running_loop().create_task(
                self.flows.watch(), name="flow-watch")

        log.info("engine up: FastAGI on %s:%s, AMI %s, %d agents, flow %s",
                 self.config.agi_host, self.agi.port,
                 ", ".join(f"{s.name} {s.ami.config.host}:{s.ami.config.port}"
                           f"{'' if s.ami.connected else ' (not reached yet)'}"
                           for s in self.servers.values()),
                 sum(1 for _ in self.core.agents()), self.flow.file)

    async def stop(self, *, fenced: bool = False) -> None:
        """Graceful stop: no new calls (FastAGI closes first: Asterisk's
        acd-recover sends callers on to the next engine), the calls in
        progress are left to the next engine process (their rows stay in the
        database; no record is written for them here), and everything
        accepted is flushed, within ``stop_flush_s``.  ``fenced``: another
        engine may lead already (the leadership was lost): Asterisk is let
        go of first (AMI links cut, timers off), then the rest."""
        self.reports.stopping = True
        log.info("stopping: %d calls in progress left to the next engine",
                 sum(1 for _ in self.core.calls()))
        if fenced:
            self.timers.cancel_all()
            if self._ami_task is not None:  # no reconnect either
                await self._end("the AMI supervisor", [self._ami_task])
            for srv in self.servers.values():
                srv.ami.abort()
        # new calls being proven are let finish first (bounded): a real one
        # is then in the database for the next engine
        await self.agi.stop(settle=None if fenced else self.scripts.settle)
        await self.api.stop()
        if self._watch_task is not None:
            await self._end("the flow watch", [self._watch_task])
        await self.http.close()
        await self._end("tasks", list(self._tasks))
        if self._ami_task is not None:
            await self._end("the AMI supervisor", [self._ami_task])
        for srv in self.servers.values():
            await srv.ami.close()
        self.timers.cancel_all()
        if self.sms is not None:
            await self.sms.stop()
        await self.lookups.stop()
        if self.events is not None:
            await self.events.stop()  # bounded: a few seconds at most, broker or not
        if self.queue_log is not None:
            await self.queue_log.stop()  # bounded: its last write, 2 s at most
        w = self.writer
        await w.stop(self.config.stop_flush_s)  # returns within it, whatever the database does
        log.info("stopped: %d rows written in all, %d refused (kept in dead_letters), %d left "
                 "in the spool for the next start, %d lost", w.written, w.dead_lettered,
                 w.spooled, w.failed)
        self.refusals.flush(log)
        self.scripts.limited.flush(log)
        self.hold.limited.flush()
        ivr_agi.play_log.flush()  # prompts that did not play, with their counts
        for srv in self.servers.values():
            srv.flush_logs()
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
        """Every server's AMI link is up."""
        return all(srv.ami.connected for srv in self.servers.values())

    def record_counts(self) -> dict[str, int]:
        """The record writer's counters (the control API's ``/health``)."""
        w = self.writer
        return {"written": w.written, "pending": w.pending, "in_memory": w.in_memory,
                "spooled": w.spooled, "dead_lettered": w.dead_lettered,
                "duplicates": w.duplicates, "fitted": w.fitted, "replayed": w.replayed,
                "lost": w.failed}

    async def _run_amis(self) -> None:
        """Every server's AMI supervisor; ends (raises) when one ends with a
        fatal error (a refused login on a reconnect, say), the others
        cancelled with it."""
        tasks = [asyncio.ensure_future(srv.ami.run()) for srv in self.servers.values()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # raises the fatal error
        finally:
            # cancelled again until they end: a Ping answered just as the
            # cancel came would swallow it (asyncio.wait_for on Python 3.11)
            # and the watchdog would go on pinging, holding the stop forever
            await cancel_and_wait(tasks, STOP_TASKS_S)

    async def _start_up(self, report: RebuildReport
                        ) -> list[tuple[PbxServer, list[tuple[str, str]]]]:
        """What an earlier process left: agents' states, then on every
        server the calls with an agent, agents placed on servers, busy
        phones paused, then the waiting calls at their places, in order of
        virtual arrival across all servers.  Returns the callers to send
        back to acd-recover once FastAGI is open."""
        agents_back(self.core, self.handle, await self.db.agent_states(),
                    self.config.login_agents, report)
        found: list[StartUp] = []
        for srv in self.servers.values():
            if not srv.ami.connected:
                continue
            try:
                found.append(await srv.rebuild.scan(srv.ami.send_list, report))
                srv.scanned = True
            except AmiError as exc:
                if srv.ami is self.ami:
                    raise
                log.error("start-up on %s failed (%s); again at its next connect",
                          srv.name, exc)
        if len(self.servers) > 1:
            self._place_agents(found)
        self.phones.pause_busy({ext for f in found for ext, state in f.devices.items()
                                if state in BUSY_DEVICE_STATES}, report)
        return [(self.servers[name], items)
                for name, items in put_back_in_order(self.core, found, report).items()]

    def _place_agents(self, found: list[StartUp]) -> None:
        """Several servers: each agent is reached on the server their phone
        is on (``server:`` in acd.yaml, else the first whose device state
        says it is there), or from a server with a path to it."""
        for f in found:
            for ext, state in f.devices.items():
                if state in ABSENT_DEVICE_STATES:
                    continue
                for agent in self.core.agents():
                    if agent.profile.extension == ext:
                        self.agent_home.setdefault(agent.agent_id, f.rebuild.server)
        for agent in list(self.core.agents()):
            self._reach(agent.agent_id)

    def _reach(self, agent_id: str) -> None:
        """Tell the core which servers' callers can reach the agent."""
        home = self.agent_home.get(agent_id)
        profile = self.core.agent(agent_id).profile
        if home is None:
            log.warning("agent %s: phone %s is on none of the servers; offered to callers "
                        "of any server", agent_id, profile.extension)
            return
        reach = frozenset({home, *(a for (a, b) in self.config.paths if b == home)})
        if profile.servers != reach:
            self.handle(AgentProfileChanged(dataclasses.replace(profile, servers=reach)))

    def _device_state(self, server: str, extension: str, state: str) -> None:
        """A ``DeviceStateChange`` on ``server``: busy-phone pauses end, and
        with several servers an agent whose phone registered elsewhere
        (and has no ``server:`` in acd.yaml) is reached there."""
        self.phones.state(extension, state)
        if len(self.servers) <= 1 or state in ABSENT_DEVICE_STATES:
            return
        for agent in list(self.core.agents()):
            aid = agent.agent_id
            if agent.profile.extension == extension and aid not in self.config.agent_servers \
                    and self.agent_home.get(aid) != server:
                log.info("agent %s: phone %s now on %s", aid, extension, server)
                self.agent_home[aid] = server
                self._reach(aid)

    @property
    def sms_app_url(self) -> str | None:
        """Where an SMS link sends the caller (None: SMS diversion is off)."""
        return self.config.sms.policy.app_url if self.config.sms is not None else None

    async def _end(self, what: str, tasks: list[asyncio.Task[Any]]) -> None:
        """Cancel ``tasks`` and wait for them, at most :data:`STOP_TASKS_S`:
        cancelled again until they end (a single cancel can be lost on Python
        3.11, see :mod:`acd.adapters.tasks`), never waited for forever."""
        stuck = await cancel_and_wait(tasks, STOP_TASKS_S)
        if stuck:
            log.error("stop: %s did not end within %.0f s of being cancelled (%s); going on "
                      "without waiting for them", what, STOP_TASKS_S,
                      ", ".join(sorted(t.get_name() for t in stuck)))

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
        listeners = self.listeners
        started = time.monotonic_ns() if observer is not None or listeners else 0
        t0 = time.perf_counter_ns()
        try:
            now = self.clock()
            actions = self.core.handle(event, now)
        except CoreError as exc:
            return exc
        if self.latencies is not None:
            self.latencies.append(time.perf_counter_ns() - t0)
        if log.isEnabledFor(logging.DEBUG):  # -vv: every decision, callers' data masked
            log.debug("%s -> %s", redacted(event),
                      ", ".join(type(a).__name__ for a in actions) or "nothing")
        if observer is not None:
            try:
                observer(event, actions, started)
            except Exception:  # noqa: BLE001 - logged with its traceback, rate-limited
                # the core has decided: its actions are carried out whatever the
                # observer does (a skipped ConnectCall would strand the call)
                self.counters.errors += 1
                self.refusals.error(log, f"observer {type(event).__name__}",
                                    "observer failed on event %s (its actions are carried out)",
                                    redacted(event), exc_info=True)
        for listener in listeners:
            try:
                listener(event, actions, now, started)
            except Exception:  # noqa: BLE001 - logged with its traceback, rate-limited
                self.counters.errors += 1
                self.refusals.error(log, f"listener {type(event).__name__}",
                                    "a decision listener failed on event %s "
                                    "(its actions are carried out)",
                                    redacted(event), exc_info=True)
        if self.events is not None:
            self.events.on_decision(event, actions, now)  # only queues: never raises or waits
        for action in actions:
            self._do(action)
        self._persist(event, actions, now)
        return None

    def _persist(self, event: Event, actions: Sequence[Action], now: float) -> None:
        """What a later process needs: the rows of the calls this decision
        changed, and agents' new states (written by the record writer)."""
        last = None
        for call_id in touched(event, actions):
            if call_id == last:
                continue
            last = call_id
            call = self.core.call(call_id)
            if call is not None:
                row = live_row(call, now)
                if row is not None:
                    self.writer.put_live(row)
        for action in actions:
            if isinstance(action, AgentStateChanged):
                self.writer.put_agent_state(agent_row(action))
                self.writer.put_agent_event(AgentEventRow(  # the log `acd report calls` replays
                    action.agent_id, action.at, action.old.value, action.new.value,
                    action.reason))

    def handle(self, event: Event) -> CoreError | None:
        """:meth:`submit` for the engine's own sources (AMI, AGI, timers,
        start-up): a refusal there is a race or a bug, so it is also logged
        with the event and counted in ``counters.errors``."""
        refusal = self.submit(event)
        if refusal is not None:
            self.counters.errors += 1
            self.refusals.error(log, type(event).__name__, "event %s refused by the core: %s",
                                redacted(event), refusal)
        return refusal

    def _do(self, action: Action) -> None:
        if isinstance(action, WriteCallRecord | AgentStateChanged):
            self.statistics.on_action(action, self.clock())
        match action:
            case ConnectCall():
                call = self.calls.get(action.call_id)
                if call is not None:
                    call.redirect_offer = action.offer_id
                srv = self.servers.get(action.server) or self.servers[self.config.server]
                home = self.agent_home.get(action.agent_id, srv.name)
                context = self.config.paths.get((srv.name, home)) if home != srv.name else None
                self._spawn(srv.moves.connect(action, context), f"connect-{action.call_id}")
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
                    srv = self.servers.get(call.server) or self.servers[self.config.server]
                    self._spawn(srv.moves.fallback(call, action), f"fallback-{action.call_id}")

    def prune_statistics(self, now: float | None = None) -> None:
        """Drop the statistics intervals older than ``statistics.keep_days``
        local days (today counts as one).  Bounded work: only the intervals
        that aged out since the last pass; a no-op within the same day."""
        st = self.statistics
        now = self.clock() if now is None else now
        keep = self.config.statistics.keep_days
        st.prune(st.day_start(st.day_start(now) - (keep - 1) * 86400.0 + 43200.0))

    async def _prune_daily(self) -> None:
        """The statistics' pruning: each hour (a pass within the same day
        prunes nothing); owned by the engine's tasks, cancelled at stop."""
        while True:
            self.prune_statistics()
            await asyncio.sleep(3600.0)

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

    async def _check_strays(self, server: str, call_ids: Sequence[str]) -> bool:
        """Calls whose FastAGI session ended in error, settled by one look at
        the server's live channels: one whose channel is gone (or never was)
        ends and is recorded; a caller still there comes back by itself.
        False when the server cannot be asked now."""
        srv = self.servers.get(server)
        if srv is None or not srv.ami.connected:
            return False
        try:
            events = await srv.ami.send_list("CoreShowChannels")
            for call_id in call_ids:
                await srv.rebuild.settle_from(call_id, events, srv.ami.send_list)
        except AmiError as exc:
            log.warning("checking %d calls whose FastAGI session failed: %s", len(call_ids),
                        exc)
            return False
        return True

    async def _prove(self, server: str, channel: str, secret: str,
                     timeout: float) -> tuple[Verdict, str]:
        """Does ``channel`` on ``server`` carry ``secret``?  One AMI Getvar
        on that server's link, within ``timeout`` (a new call's proof)."""
        srv = self.servers.get(server)
        if srv is None:
            return "unknown", f"no Asterisk server {server!r}"
        ami = srv.ami

        async def send(action: str, fields: dict[str, str]) -> AmiMessage:
            return await ami.send(action, fields, timeout=timeout)

        return await channel_proof(send, channel, secret)

    def _offer_live(self, call_id: str, offer_id: int) -> bool:
        call = self.core.call(call_id)
        return call is not None and call.state is CallState.OFFERED \
            and call.offer_id == offer_id

    async def _app_login(self, number: str) -> None:
        if self.sms_store is not None:
            await self.sms_store.app_login(number, self.clock())  # the store normalises
