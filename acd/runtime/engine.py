"""The one place that wires everything: core, FastAGI, AMI, database, timers.

Decide, then do I/O: every event from the world (an AGI step, an AMI event,
a timer) goes through ``ContactCenter.handle(event, now)``; the actions it
returns are carried out here, and their results come back as events.

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
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from acd.adapters.ami import AmiActionFailed, AmiClient, AmiError
from acd.adapters.fastagi import AgiHangupError, AgiSession, FastAgiServer
from acd.adapters.lookup import LookupBatcher
from acd.adapters.profiles_store import ProfileStore
from acd.adapters.storage import Database, RecordWriter
from acd.api.control import ControlApi
from acd.core.center import ContactCenter, DuplicateCall, UnknownSubject
from acd.core.fsm import IllegalTransition
from acd.core.model import (
    Action,
    AgentLogin,
    AgentProfileChanged,
    AgentStateChanged,
    CallerHungUp,
    CallQueued,
    CallRecord,
    CallStarted,
    CallState,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    Event,
    FallbackCall,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    RecordExplanation,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.stats import ServiceLevel, Statistics
from acd.ivr.flow import Flow
from acd.ivr.interpreter import EndCall, EnterQueue, FlowRun, TransferCall, VoicemailCall
from acd.protocols import agi
from acd.protocols.ami import AmiMessage
from acd.runtime.flows import FlowRegistry
from acd.runtime.http_lookup import HttpLookup
from acd.runtime.ivr_agi import play, run_flow
from acd.runtime.settings import EngineConfig, SmsConfig
from acd.runtime.sms_sender import SmsSender
from acd.sms.policy import CallFacts

log = logging.getLogger(__name__)
#: what acd-transfer's `_X.` pattern matches
_NUMBER = re.compile(r"[0-9]{2,32}")
_MAILBOX = re.compile(r"[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")


HOLD_CHUNK_S = 120  # MusicOnHold per EXEC: between chunks the hold loop re-checks the call
#: the AMI events the engine acts on; the rest are dropped before parsing
AMI_EVENTS = frozenset({"Hangup", "DialBegin", "DialEnd", "Rename", "FullyBooted", "Shutdown"})
REDIRECT_RETRY_S = 1.0
FALLBACK_CONTEXT = "acd-fallback"
LOOKUP_TIMEOUT_S = 2.0  # pause before re-offering after the PBX link failed a redirect


def make_transport(cfg: SmsConfig, on_app_login: Callable[[str], Any] | None = None) -> Any:
    if cfg.transport == "mqtt":
        from acd.adapters.sms_mqtt import MqttConfig, MqttTransport
        return MqttTransport(cfg.mqtt or MqttConfig(), on_app_login)
    if cfg.transport == "smpp":
        from acd.adapters.sms_smpp import SmppTransport
        return SmppTransport(cfg.smpp)
    from acd.adapters.sms_log import LogTransport
    return LogTransport()


@dataclass(slots=True)
class CallSession:
    """The engine's bookkeeping for one live call (not routing state)."""

    call_id: str
    channel: str
    run: FlowRun | None = None
    #: offer id whose Redirect we asked for; an AGI -1/HANGUP then means
    #: "moved to the agent", not "caller hung up".
    redirect_offer: int | None = None
    #: the engine moved the caller to a fallback (max wait reached)
    fallback: str | None = None
    #: set once the fallback Redirect was sent (or failed): the AGI socket
    #: must stay open until then, or the dialplan would hang the caller up
    fallback_sent: asyncio.Event = field(default_factory=asyncio.Event)
    #: caller attributes for routing: profile, last agent (looked up while
    #: the caller is in the IVR), IVR variables
    attrs: dict[str, str] = field(default_factory=dict)
    lookup: asyncio.Task[dict[str, str]] | None = None
    #: offer whose Dial is ringing (set at DialBegin): DialEnd belongs to it.
    dial_offer: int | None = None
    agent_uid: str | None = None
    #: per-call hold settings from the flow's queue node
    moh: str | None = None
    announce_every_s: float | None = None
    profile_merged: bool = False


@dataclass(slots=True)
class EngineStats:
    calls_started: int = 0
    calls_finished: int = 0
    errors: int = 0


class Engine:
    def __init__(self, config: EngineConfig, clock: Callable[[], float] = time.time,
                 lookup: Callable[[str], Coroutine[Any, Any, dict[str, str]]] | None = None,
                 ) -> None:
        """``lookup(number)``: the caller's profile as routing attributes
        (default: the customers table and the last agent from call records)."""
        self.config = config
        self.clock = clock
        self.core = ContactCenter(config.core)
        self.flows = FlowRegistry(config.flow, config.flow.file,
                                  set(config.known_queues) if config.known_queues else None,
                                  config.sounds)
        self.http = HttpLookup()
        self.db = Database(config.database_url)
        self.writer = RecordWriter(self.db)
        self.profiles = ProfileStore(self.db)
        self.sms: SmsSender | None = None
        if config.sms is not None:
            from acd.adapters.sms_store import SmsStore

            policy = config.sms.policy
            self.sms_store = SmsStore(self.db)
            sender_cfg = dataclasses.replace(config.sms.sender,
                                             sender=policy.sender or config.sms.sender.sender)
            self.sms = SmsSender(self.sms_store,
                                 make_transport(config.sms, self._app_login), sender_cfg,
                                 clock)
        self.lookups = LookupBatcher(self.profiles.callers_context)
        self.api = ControlApi(self)
        self.agi = FastAgiServer(
            {"hotline": self._hotline, "requeue": self._requeue, "fallback": self._fallback_agi},
            host=config.agi_host, port=config.agi_port,
        )
        ami_cfg = config.ami
        if ami_cfg.wanted_events is None:
            ami_cfg = dataclasses.replace(ami_cfg, wanted_events=AMI_EVENTS)
        self.ami = AmiClient(ami_cfg, self._on_ami_event, self._resync, name=config.server)
        self.stats = EngineStats()
        self.statistics = Statistics({c.name: ServiceLevel(c.sl_threshold_s, c.sl_target)
                                      for c in config.core.policy.classes.values()})
        self.lookup = lookup if lookup is not None else self._db_lookup
        self._sessions: dict[str, CallSession] = {}
        self._channels: dict[str, tuple[str, str]] = {}  # uniqueid -> (call_id, role)
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ami_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        #: (call id, kind, number) of the latest calls sent to a fallback
        self.fallbacks: deque[tuple[str, str, str]] = deque(maxlen=10_000)
        #: set to a list to collect every core decision's duration (ns), for benchmarks
        self.latencies: list[int] | None = None

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

    @property
    def flow(self) -> Flow:
        """The flow new calls take (calls in progress keep their own)."""
        return self.flows.current

    @property
    def supervisor(self) -> asyncio.Task[None] | None:
        """The AMI supervisor task: it ends only with a fatal error (e.g. the
        AMI login was refused on a reconnect)."""
        return self._ami_task

    def _ami_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("AMI supervisor stopped: %s", task.exception())

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
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        if self.sms is not None:
            await self.sms.stop()
        await self.lookups.stop()
        await self.writer.stop()
        await self.db.dispose()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.errors += 1
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ----------------------------------------------------- core <-> world

    def handle(self, event: Event) -> None:
        """Feed one event to the core and carry out what it decides."""
        t0 = time.perf_counter_ns()
        try:
            actions = self.core.handle(event, self.clock())
        except (IllegalTransition, UnknownSubject, DuplicateCall) as exc:
            self.stats.errors += 1
            log.error("event %s refused by the core: %s", event, exc)
            return
        if self.latencies is not None:
            self.latencies.append(time.perf_counter_ns() - t0)
        for action in actions:
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, WriteCallRecord | AgentStateChanged):
            self.statistics.on_action(action, self.clock())
        match action:
            case ConnectCall():
                sess = self._sessions.get(action.call_id)
                if sess is not None:
                    sess.redirect_offer = action.offer_id
                self._spawn(self._connect(action), f"connect-{action.call_id}")
            case StartTimer():
                self._cancel_timer(action.key)
                delay = max(0.0, action.at - self.clock())
                self._timers[action.key] = asyncio.get_running_loop().call_later(
                    delay, self._fire, action.key)
            case CancelTimer():
                self._cancel_timer(action.key)
            case WriteCallRecord():
                rec = action.record
                done = self._sessions.get(rec.call_id)
                self._queue_sms(rec, done)
                if done is None or done.fallback is None:
                    self._sessions.pop(rec.call_id, None)
                self._channels.pop(rec.call_id, None)
                if done is not None and done.agent_uid is not None:
                    self._channels.pop(done.agent_uid, None)
                self.stats.calls_finished += 1
                self.writer.put(rec)
            case AgentStateChanged():
                log.debug("agent %s: %s -> %s %s", action.agent_id, action.old.value,
                          action.new.value, action.reason)
            case RecordExplanation():
                self.writer.put_explanation(action.explanation)
            case FallbackCall():
                sess = self._sessions.get(action.call_id)
                if sess is not None:
                    sess.fallback = action.kind
                    self._spawn(self._redirect_fallback(sess, action), f"fallback-{action.call_id}")

    def _queue_sms(self, rec: CallRecord, sess: CallSession | None) -> None:
        """The SMS rules look at the ended call; what they pick is written with
        the call's record (same transaction)."""
        if self.config.sms is None:
            return
        run = sess.run if sess is not None else None
        attrs = sess.attrs if sess is not None else {}
        facts = CallFacts(
            call_id=rec.call_id, caller=rec.caller, caller_name=rec.caller_name,
            outcome=rec.outcome.value, ended_at=rec.ended_at, wait_s=rec.wait_s,
            ivr_path=rec.ivr_path, queue=rec.queue, agent_id=rec.agent_id,
            intent=attrs.get("intent"),
            language=run.language if run is not None else None,
            marks=tuple(run.sms) if run is not None else ())
        pending = self.config.sms.policy.decide(facts)
        if pending is not None:
            self.writer.put_sms(pending)

    async def _app_login(self, number: str) -> None:
        if self.config.sms is not None:
            from acd.sms.policy import normalize_number
            await self.sms_store.app_login(normalize_number(number), self.clock())

    def _cancel_timer(self, key: tuple[str, str]) -> None:
        h = self._timers.pop(key, None)
        if h is not None:
            h.cancel()

    def _fire(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        self.handle(TimerFired(key))

    async def _connect(self, action: ConnectCall) -> None:
        """Move the held caller to the agent: AMI Setvar ACD_OFFER (so the
        dialplan's requeue can name the offer it failed) and ACD_RING_TIMEOUT,
        then Redirect to ``acd-connect,<extension>,1``.

        The three actions go out back to back, without waiting for each
        answer (one round trip instead of three): Asterisk runs the actions of
        one manager session one after the other, in the order they arrive, so
        the variables are set before the Redirect moves the channel.  The
        Redirect's answer decides what happens next."""
        sess = self._sessions.get(action.call_id)
        channel = sess.channel if sess is not None else action.channel
        results = await asyncio.gather(
            self.ami.send("Setvar", {"Channel": channel, "Variable": "ACD_OFFER",
                                     "Value": str(action.offer_id)}),
            self.ami.send("Setvar", {"Channel": channel, "Variable": "ACD_RING_TIMEOUT",
                                     "Value": str(max(1, round(action.ring_timeout_s)))}),
            self.ami.send("Redirect", {
                "Channel": channel, "Context": self.config.connect_context,
                "Exten": action.extension, "Priority": "1",
            }),
            return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: not ours to swallow
        redirect = results[2]
        if isinstance(redirect, AmiError):
            await self._connect_failed(action, redirect)
        elif isinstance(redirect, BaseException):
            raise redirect
        else:
            for result in results[:2]:
                if isinstance(result, BaseException):  # moved anyway: say why it may misreport
                    log.warning("call %s: Setvar before the redirect failed: %s",
                                action.call_id, result)

    async def _connect_failed(self, action: ConnectCall, exc: AmiError) -> None:
        if isinstance(exc, AmiActionFailed):
            text = exc.message.lower()
            if "not exist" in text or "not found" in text or "no such" in text \
                    or "not up" in text:
                # the caller is hanging up; the Hangup event will confirm it
                self._caller_gone(action.call_id, 16)
            else:
                # refused for a reason that is not the agent's (permissions,
                # dialplan): log loudly, wait a little so it cannot spin
                log.error("call %s: Asterisk refused the redirect to %s: %s", action.call_id,
                          action.extension, exc.message)
                await asyncio.sleep(REDIRECT_RETRY_S)
                self._offer_failed(action.call_id, action.offer_id,
                                   f"REDIRECT {exc.message}", agent_fault=False)
        else:
            # the PBX link is down or slow: not the agent's fault; wait a
            # little so a dead link does not spin offers
            log.warning("call %s: redirect to %s failed: %s", action.call_id, action.agent_id, exc)
            await asyncio.sleep(REDIRECT_RETRY_S)
            self._offer_failed(action.call_id, action.offer_id, "PBX-UNREACHABLE",
                               agent_fault=False)

    async def _redirect_fallback(self, sess: CallSession, action: FallbackCall) -> None:
        """Max wait reached: move the caller to ``acd-fallback,<kind>,1``."""
        try:
            await self.ami.send("Redirect", {
                "Channel": sess.channel, "Context": FALLBACK_CONTEXT,
                "Exten": action.kind, "Priority": "1",
            })
        except AmiError as exc:
            log.warning("call %s: fallback %s failed (%s); hanging up", sess.call_id,
                        action.kind, exc)
            with contextlib.suppress(AmiError):
                await self.ami.send("Hangup", {"Channel": sess.channel, "Cause": "16"})
        finally:
            # the call's record is written; the hold loop keeps its own
            # reference and sees ``fallback`` set
            self._sessions.pop(sess.call_id, None)
            sess.fallback_sent.set()

    async def _db_lookup(self, number: str) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if not number:
            return attrs
        customer, last = await self.lookups.get(number)
        if customer is not None:
            attrs.update(customer.attributes())
        if last:
            attrs["last_agent"] = last
        return attrs

    def _offer_failed(self, call_id: str, offer_id: int, reason: str,
                      agent_fault: bool = True) -> None:
        sess = self._sessions.get(call_id)
        if sess is not None:
            if sess.redirect_offer == offer_id:
                sess.redirect_offer = None
            if sess.dial_offer == offer_id:
                sess.dial_offer = None
        self.handle(OfferFailed(call_id, offer_id, reason, agent_fault))

    def _caller_gone(self, call_id: str, cause: int) -> None:
        """The caller's channel is gone, however we learnt it (AGI or AMI)."""
        call = self.core.call(call_id)
        if call is None:
            return
        if call.state is CallState.IVR:
            sess = self._sessions.get(call_id)
            path = tuple(sess.run.path) if sess is not None and sess.run is not None else ()
            self.handle(IvrEnded(call_id, path, "caller-hangup"))
        elif call.state is CallState.CONNECTED:
            self.handle(ConversationEnded(call_id, "caller"))
        else:
            self.handle(CallerHungUp(call_id, cause))

    # ------------------------------------------------------------- AMI

    def _on_ami_event(self, msg: AmiMessage) -> None:
        name = msg.event
        if name == "Hangup":
            uid = msg.get("Uniqueid")
            entry = self._channels.pop(uid, None)
            if entry is None:
                return
            call_id, role = entry
            if role == "caller":
                cause = msg.get("Cause")
                self._caller_gone(call_id, int(cause) if cause.isdigit() else 0)
            else:
                call = self.core.call(call_id)
                if call is not None and call.state is CallState.CONNECTED:
                    self.handle(ConversationEnded(call_id, "agent"))
        elif name == "DialBegin":
            entry = self._channels.get(msg.get("Uniqueid"))
            if entry is not None and entry[1] == "caller":
                dest = msg.get("DestUniqueid")
                self._channels[dest] = (entry[0], "agent")
                sess = self._sessions.get(entry[0])
                if sess is not None:
                    sess.agent_uid = dest
                    sess.dial_offer = sess.redirect_offer
        elif name == "DialEnd":
            entry = self._channels.get(msg.get("Uniqueid"))
            if entry is None or entry[1] != "caller":
                return
            call_id = entry[0]
            sess = self._sessions.get(call_id)
            if sess is None or sess.dial_offer is None:
                return
            offer = sess.dial_offer
            status = msg.get("DialStatus")
            if status == "ANSWER":
                self.handle(OfferAnswered(call_id, offer))
            elif status != "CANCEL":  # CANCEL: the caller left; Hangup follows
                if sess.agent_uid is not None:
                    self._channels.pop(sess.agent_uid, None)
                    sess.agent_uid = None
                self._offer_failed(call_id, offer, status or "UNKNOWN")
        elif name == "Rename":
            uid = msg.get("Uniqueid")
            entry = self._channels.get(uid)
            if entry is not None and entry[1] == "caller":
                sess = self._sessions.get(entry[0])
                if sess is not None:
                    sess.channel = msg.get("Newname") or sess.channel

    async def _resync(self) -> None:
        """After a (re)connect: calls whose caller channel no longer exists
        ended while we were not listening."""
        # only channels we knew before asking can be judged by the answer:
        # a call that arrives while the reply is on its way is not in it
        known = dict(self._channels)
        try:
            items = await self.ami.send_list("CoreShowChannels")
        except AmiError as exc:
            log.warning("resync after AMI connect failed: %s", exc)
            return
        live = {m.get("Uniqueid") for m in items if m.event == "CoreShowChannel"}
        for uid, (call_id, role) in known.items():
            if uid not in live and self._channels.get(uid) == (call_id, role):
                self._channels.pop(uid, None)
                if role == "caller":
                    log.info("resync: call %s ended while AMI was down", call_id)
                    self._caller_gone(call_id, 0)

    # ----------------------------------------------------------- FastAGI

    async def _hotline(self, session: AgiSession) -> None:
        req = session.request
        call_id = req.uniqueid
        if not call_id:
            log.error("FastAGI hotline call without agi_uniqueid; hanging up")
            await session.hangup()
            return
        server = req.query.get("server", self.config.server)
        if server != self.config.server:
            log.error("call %s comes from Asterisk server %r, but this engine drives only %r; "
                      "hanging up (set ACD_SERVER in extensions.conf to %r)", call_id, server,
                      self.config.server, self.config.server)
            await session.hangup()
            return
        if call_id in self._sessions or self.core.call(call_id) is not None:
            log.error("call %s: a second hotline session for a live call; hanging it up", call_id)
            await session.hangup()
            return
        caller = {"number": req.callerid, "name": req.calleridname}
        sess = CallSession(call_id, req.channel, run=FlowRun(self.flow, caller,
                                                             call_id=call_id))
        sess.lookup = asyncio.get_running_loop().create_task(self.lookup(req.callerid))
        self._sessions[call_id] = sess
        self._channels[call_id] = (call_id, "caller")
        self.stats.calls_started += 1
        self.handle(CallStarted(call_id, req.callerid, req.calleridname, req.channel, server))
        try:
            await session.answer()
            queued = await self._run_ivr(session, sess)
            if queued:
                await self._hold(session, sess)
        except AgiHangupError:
            if sess.redirect_offer is None and sess.fallback is None:
                self._caller_gone(call_id, 16)
            raise
        finally:
            if sess.lookup is not None and not sess.lookup.done():
                sess.lookup.cancel()

    async def _caller_attributes(self, sess: CallSession) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if sess.lookup is not None:
            try:
                attrs.update(await asyncio.wait_for(asyncio.shield(sess.lookup),
                                                    LOOKUP_TIMEOUT_S))
            except TimeoutError:
                log.warning("call %s: profile lookup took over %ss; routing without it",
                            sess.call_id, LOOKUP_TIMEOUT_S)
            except Exception:
                log.exception("call %s: profile lookup failed; routing without it",
                              sess.call_id)
        attrs.update(sess.attrs)  # what the caller chose in the IVR wins
        return attrs

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _merge_profile(self, sess: CallSession) -> None:
        """Once the background profile lookup is in, conditions see ``caller.*``."""
        if sess.profile_merged or sess.lookup is None or not sess.lookup.done():
            return
        sess.profile_merged = True
        if sess.run is not None and not sess.lookup.cancelled() \
                and sess.lookup.exception() is None:
            sess.run.add_caller_info(sess.lookup.result())

    async def _profile_for(self, sess: CallSession) -> dict[str, str] | None:
        if sess.lookup is None:
            return None
        attrs = await asyncio.shield(sess.lookup)
        return {k: v for k, v in attrs.items() if k != "last_agent"} or None

    async def _run_ivr(self, session: AgiSession, sess: CallSession) -> bool:
        """Walk the flow; returns True when the call was queued."""
        run = sess.run
        assert run is not None
        end = await run_flow(session, run, clock=self._now,
                             profile=lambda: self._profile_for(sess), http=self.http.get,
                             before_step=lambda: self._merge_profile(sess))
        await play(session, end.prompts)
        match end:
            case EnterQueue():
                sess.attrs = dict(end.attributes)
                sess.moh = end.moh
                sess.announce_every_s = end.announce_every_s
                await session.set_variable("ACD_CALL_ID", sess.call_id)
                await session.set_variable("ACD_MOH", end.moh or self.config.moh_class)
                attrs = await self._caller_attributes(sess)
                if self.core.call(sess.call_id) is None:
                    return False  # hung up meanwhile (seen on AMI)
                self.handle(CallQueued(sess.call_id, end.queue, end.path, end.priority,
                                       tuple(attrs.items())))
                return True
            case TransferCall() if not _NUMBER.fullmatch(end.number):
                log.error("call %s: transfer number %r from the flow is not a phone number; "
                          "hanging up", sess.call_id, end.number)
                self.handle(IvrEnded(sess.call_id, end.path, "transfer-failed"))
                await session.hangup()
                return False
            case TransferCall():
                # the channel goes on in the dialplan once the AGI socket closes
                self.handle(IvrEnded(sess.call_id, end.path, f"transfer:{end.number}"))
                await session.command(agi.set_context(self.config.transfer_context))
                await session.command(agi.set_extension(end.number))
                await session.command(agi.set_priority(1))
                return False
            case VoicemailCall() if not _MAILBOX.fullmatch(end.mailbox):
                log.error("call %s: mailbox %r from the flow is not a mailbox; hanging up",
                          sess.call_id, end.mailbox)
                self.handle(IvrEnded(sess.call_id, end.path, "voicemail-failed"))
                await session.hangup()
                return False
            case VoicemailCall():
                self.handle(IvrEnded(sess.call_id, end.path, "voicemail"))
                await session.exec("VoiceMail", f"{end.mailbox},u")
                await session.hangup()
                return False
            case EndCall():
                self.handle(IvrEnded(sess.call_id, end.path, end.reason))
                await session.hangup()
                return False
        return False

    async def _hold(self, session: AgiSession, sess: CallSession) -> None:
        """Music on hold until the engine moves the caller (to an agent or a
        fallback) or they hang up; position and expected wait announced at
        the queue's interval."""
        app = "MusicOnHold"
        while True:
            call = self.core.call(sess.call_id)
            if call is None or call.queue is None:
                if sess.fallback is not None:
                    # keep the socket until the fallback Redirect is out
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sess.fallback_sent.wait(),
                                               self.config.ami.action_timeout + 1)
                return
            every = sess.announce_every_s if sess.announce_every_s is not None \
                else self.core.queue_policy(call.queue).announce_every_s
            moh = sess.moh or self.config.moh_class
            chunk = round(every) if every else HOLD_CHUNK_S
            args = f"{moh},{chunk}" if app == "MusicOnHold" else str(chunk)
            t0 = time.monotonic()
            res = await session.exec(app, args, timeout=chunk + 30)
            if sess.redirect_offer is not None or sess.fallback is not None:
                return  # moved: closing the socket lets the channel go on
            if res.failed:
                self._caller_gone(sess.call_id, 16)
                return
            if app == "MusicOnHold" and time.monotonic() - t0 < min(1.0, chunk / 2):
                # the class could not start (no files): hold in silence
                # rather than re-issuing MusicOnHold in a tight loop
                log.warning("call %s: MusicOnHold class %r did not play; holding with Wait",
                            sess.call_id, moh)
                app = "Wait"
                continue
            if every:
                await self._announce(session, sess)
                if sess.redirect_offer is not None or sess.fallback is not None:
                    return

    async def _announce(self, session: AgiSession, sess: CallSession) -> None:
        """'You are caller number N; expected wait about M minutes.'"""
        where = self.core.position(sess.call_id)
        if where is None:
            return
        pos, ewt = where
        await session.stream_file("acd/you-are-caller")
        await session.command(agi.say_number(pos))
        await session.stream_file("acd/expected-wait")
        await session.command(agi.say_number(max(1, round(ewt / 60))))
        await session.stream_file("acd/minutes")

    async def _fallback_agi(self, session: AgiSession) -> None:
        """The dialplan's ``acd-fallback`` hands the caller back after the
        queue's maximum wait: tell them what happens next and hang up."""
        req = session.request
        kind = req.query.get("kind", "message")
        prompt = {"callback": "acd/callback-registered", "sms": "acd/sms-sent",
                  "voicemail": "acd/leave-message"}.get(kind, "acd/all-busy-call-later")
        log.info("call %s: fallback %s after the maximum wait", req.uniqueid, kind)
        self.fallbacks.append((req.uniqueid, kind, req.callerid))
        await session.answer()
        await session.stream_file(prompt)
        await session.hangup()

    async def _requeue(self, session: AgiSession) -> None:
        """The agent did not answer; the dialplan brought the caller back."""
        req = session.request
        call_id = req.uniqueid
        sess = self._sessions.get(call_id)
        call = self.core.call(call_id)
        if sess is None or call is None:
            log.warning("requeue for unknown call %s (%s); hanging up", call_id, req.channel)
            await session.hangup()
            return
        status = req.query.get("status", "") or "NOANSWER"
        offer = req.query.get("offer", "")
        if offer.isdigit() and call.state is CallState.OFFERED and call.offer_id == int(offer):
            # no DialEnd for this offer yet (or none at all: a phone that is
            # not registered fails Dial without DialBegin/DialEnd events)
            self._offer_failed(call_id, int(offer), status)
        sess.channel = req.channel or sess.channel
        if self.core.call(call_id) is not None:
            self._channels[call_id] = (call_id, "caller")
        try:
            await self._hold(session, sess)
        except AgiHangupError:
            if sess.redirect_offer is None or self.core.call(call_id) is None:
                self._caller_gone(call_id, 16)
            raise
