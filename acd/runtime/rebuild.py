"""Picking the world up again: at start-up from what an earlier engine
process left (the database's calls in progress and agents' states, the
PBX's live channels and device states), and after an AMI reconnect from
the live channels alone (docs/continuity.md).

Decide, then do I/O: every call found is put back through the core as a
:class:`~acd.core.model.CallRestored` (and a :class:`~acd.core.model.CallerGone`
when its caller left meanwhile, so its one record is written); the only
PBX actions are Redirects of callers whose AGI session died with the
earlier process, to ``acd-recover,resume,1``, where the dialplan brings
them back to us.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from acd.adapters.ami import AmiActionFailed, AmiError
from acd.adapters.storage import AgentStateRow, Database, LiveCallRow
from acd.core.center import ContactCenter
from acd.core.errors import CoreError
from acd.core.model import (
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    AgentState,
    CallRestored,
    CallState,
    Event,
    OfferAnswered,
)
from acd.logs import Limited
from acd.protocols.ami import AmiMessage
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.continuity import (
    CALL_ID_VAR,
    OFFER_VAR,
    PHONE_BUSY,
    QUEUED_VAR,
    SECRET_VAR,
    ivr_row_from_channel,
    login_events,
    parse_queued,
    restored,
    row_from_channel,
)
from acd.runtime.pbx_state import RECOVER_CONTEXT, Channel, PbxChannels, Place

log = logging.getLogger(__name__)

#: a phone in one of these device states is busy: its agent is not offered calls
BUSY_DEVICE_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
#: ... in one of these, it is not on that server (not registered there)
ABSENT_DEVICE_STATES = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN", ""})
#: the dialplan's holding contexts besides the connect context and acd-recover
HOTLINE_CONTEXTS = ("acd-hotline",)

#: ``send_list(action, fields)``: an AMI action's events
SendList = Callable[..., Awaitable[list[AmiMessage]]]
#: AstDB family where the dialplan's [acd-answered] writes, per agent
#: extension, "<epoch> <call id>" of the last call it answered
ANSWERED_FAMILY = "acd/answered"
Send = Callable[[str, dict[str, str]], Awaitable[AmiMessage]]
Submit = Callable[[Event], CoreError | None]


@dataclass(slots=True)
class RebuildReport:
    """What the start-up found (logged, and shown to tests and operators)."""

    waiting: int = 0
    ringing: int = 0
    talking: int = 0
    ivr: int = 0
    ended: int = 0  # the caller left while no engine listened: record written now
    from_channel: int = 0  # found by the channel's variables alone
    redirected: int = 0  # dead AGI sessions sent to acd-recover,resume
    agents_restored: int = 0
    phones_busy: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.waiting} waiting, {self.ringing} ringing, {self.talking} talking, "
                f"{self.ivr} in the IVR, {self.ended} ended while no engine ran "
                f"({self.from_channel} from channel variables only), "
                f"{self.redirected} sessions resumed, {self.agents_restored} agent states, "
                f"{len(self.phones_busy)} phones busy")


def order_key(row: LiveCallRow, core: ContactCenter) -> tuple[bool, float]:
    """Waiting calls are put back in order of virtual arrival (each may be
    offered as it is put back: the earliest first), the IVR ones last."""
    if row.state == "ivr" or row.queue is None or row.queued_at is None:
        return True, row.started_at
    return False, row.queued_at - row.priority * core.policy.aging_s_per_level


def put_back_in_order(core: ContactCenter, found: Sequence[StartUp],
                      report: RebuildReport) -> dict[str, list[tuple[str, str]]]:
    """Phase 2 over one or more servers: their waiting calls put back in
    one order of virtual arrival (:func:`order_key`), the IVR ones last.
    Returns, per server, the callers to send back to acd-recover once
    FastAGI is open."""
    later = sorted(((order_key(row, core), i, row, f) for f in found
                    for i, row in enumerate(f.later)), key=lambda x: (x[0], x[1]))
    redirects: dict[str, list[tuple[str, str]]] = {}
    for _, _, row, f in later:
        pending = f.rebuild.put_back(row, f, report)
        if pending is not None:
            redirects.setdefault(f.rebuild.server, []).append(pending)
    return redirects


@dataclass(slots=True)
class StartUp:
    """What :meth:`Rebuild.scan` found that :meth:`Rebuild.finish` puts back."""

    rebuild: Rebuild
    pbx: PbxChannels
    later: list[LiveCallRow]
    reroute: set[str]
    #: extension -> PJSIP device state on this server
    devices: dict[str, str]


def agents_back(core: ContactCenter, submit: Submit, rows: Sequence[AgentStateRow],
                login_agents: bool, report: RebuildReport) -> None:
    """Agents' login states and pauses as the earlier process left them;
    the others logged in (``login_agents``) or left out."""
    seen: set[str] = set()
    for agent_id, what, reason in login_events(rows):
        try:
            agent = core.agent(agent_id)
        except CoreError:
            continue  # no longer configured
        seen.add(agent_id)
        report.agents_restored += 1
        if what == "out":
            if agent.state is not AgentState.LOGGED_OUT:
                submit(AgentLogout(agent_id))
            continue
        if agent.state is AgentState.LOGGED_OUT:
            # straight into the stored state: a ready agent logged in ready (not
            # paused first, then made ready: the queue_log would show a
            # zero-length pause on every restart), a paused one paused
            submit(AgentLogin(agent_id, ready=what != "pause"))
            if what != "pause":
                continue
        if what == "pause":
            submit(AgentPause(agent_id, reason))
        else:
            submit(AgentReady(agent_id))
    if login_agents:
        for agent in list(core.agents()):
            if agent.agent_id not in seen and agent.state is AgentState.LOGGED_OUT:
                submit(AgentLogin(agent.agent_id, ready=True))


class Phones:
    """Agents whose phone is busy with a call not ours are paused until it
    is free (``DeviceStateChange``), so nobody talking is offered a call."""

    def __init__(self, core: ContactCenter, submit: Submit) -> None:
        self.core = core
        self.submit = submit
        #: agents paused because their phone was busy
        self.paused: set[str] = set()

    def pause_busy(self, busy: set[str], report: RebuildReport) -> None:
        for agent in list(self.core.agents()):
            if agent.profile.extension in busy and agent.call_id is None \
                    and agent.state is AgentState.READY:
                self.submit(AgentPause(agent.agent_id, PHONE_BUSY))
                self.paused.add(agent.agent_id)
                report.phones_busy.append(agent.agent_id)

    def state(self, extension: str, state: str) -> None:
        """A ``DeviceStateChange``: an agent paused for a busy phone is ready
        again once it is free."""
        if state in BUSY_DEVICE_STATES or not self.paused:
            return
        for agent in list(self.core.agents()):
            if agent.profile.extension == extension and agent.agent_id in self.paused:
                self.paused.discard(agent.agent_id)
                if agent.state is AgentState.PAUSED and agent.reason == PHONE_BUSY:
                    self.submit(AgentReady(agent.agent_id))


class Rebuild:
    """Start-up rebuild and reconnect reconciliation for one Asterisk server."""

    def __init__(self, core: ContactCenter, submit: Submit, calls: CallRegistry,
                 reports: CallReports, db: Database, *, server: str, connect_context: str,
                 clock: Callable[[], float], path_contexts: Sequence[str] = ()) -> None:
        """``submit``: the engine's submit (returns the core's refusal);
        ``path_contexts``: this server's contexts that dial agents on others."""
        self.path_contexts = tuple(path_contexts)
        self.core = core
        self.submit = submit
        self.calls = calls
        self.reports = reports
        self.db = db
        self.server = server
        self.connect_context = connect_context
        self.clock = clock
        #: per-call troubles of a start-up or a resync (a PBX in trouble
        #: troubles every call alike): one line a minute of each kind, with a count
        self.limited = Limited(60.0)

    def _channels(self, events: list[AmiMessage]) -> PbxChannels:
        return PbxChannels(events, connect_context=self.connect_context,
                           holding_contexts=HOTLINE_CONTEXTS, path_contexts=self.path_contexts)

    # ------------------------------------------------------------ start-up

    async def scan(self, send_list: SendList, report: RebuildReport) -> StartUp:
        """Phase 1 of the start-up, for this server: read the database's
        calls in progress, the live channels and the phones' states; put
        back the calls that are with an agent (ringing, talking) and end the
        ones whose caller left.  The rest waits for :meth:`finish`, once
        every server's agents are known (the engine pauses busy phones and
        places agents on servers in between)."""
        # calls this process already holds (a server first reached after the
        # start, a scan run again) are its own: never put back over them
        rows = [r for r in await self.db.live_calls()
                if self._mine(r.server) and not self._held(r.call_id)]
        done = await self.db.recorded([r.call_id for r in rows])
        if done:  # the record made it, the row's delete did not (rows of an older version)
            await self.db.forget_live(sorted(done))
            rows = [r for r in rows if r.call_id not in done]
        pbx = self._channels(await send_list("CoreShowChannels"))
        ours = pbx.ours(CALL_ID_VAR)
        if ours and SECRET_VAR not in ours[0].variables:
            log.warning("start-up: the channel list does not show %s (add it to manager.conf "
                        "channelvars, asterisk_conf/manager.conf): the calls taken over from "
                        "the earlier process take their next FastAGI script unchecked",
                        SECRET_VAR)
        devices = await self._device_states(send_list)
        known = {r.call_id for r in rows}
        now = self.clock()
        found_on_channel: list[LiveCallRow] = []
        for ch in ours:
            call_id = self.calls.call_id(self.server, ch.uniqueid)
            if call_id in known or self._held(call_id) \
                    or pbx.where(ch.uniqueid).place is not Place.HOLDING:
                continue
            queued = parse_queued(ch.variables.get(QUEUED_VAR))
            if queued is not None:
                found_on_channel.append(row_from_channel(
                    call_id, queued, caller=ch.caller, caller_name=ch.caller_name,
                    channel=ch.name, server=self.server, now=now))
            else:  # still in the IVR
                found_on_channel.append(ivr_row_from_channel(
                    call_id, caller=ch.caller, caller_name=ch.caller_name, channel=ch.name,
                    server=self.server, started_at=now - ch.duration_s, now=now))
        recorded = await self.db.recorded([r.call_id for r in found_on_channel])
        for r in found_on_channel:
            if r.call_id not in recorded:
                rows.append(r)
                report.from_channel += 1
        reroute = {r.call_id for r in rows if r.call_id not in known}
        later: list[LiveCallRow] = []
        for row in rows:
            w = pbx.where(self.calls.uid(self.server, row.call_id))
            if w.place is Place.TALKING or w.place is Place.RINGING:
                assert w.channel is not None
                await self._with_agent(row, w.channel.name, w.place, w.extension or "",
                                       w.agent_leg, w.channel.variables.get(OFFER_VAR, ""),
                                       row.call_id in reroute, report, send_list)
                self._secret(row.call_id, w.channel)
            elif w.place is Place.GONE or w.place is Place.ELSEWHERE:
                await self._ended(row, row.call_id in reroute, report, send_list,
                                  elsewhere=w.place is Place.ELSEWHERE)
            else:
                later.append(row)
        return StartUp(self, pbx, later, reroute, devices)

    def put_back(self, row: LiveCallRow, found: StartUp,
                 report: RebuildReport) -> tuple[str, str] | None:
        """Phase 2, one call: a waiting (or IVR) call back at its place (it
        may be offered at once).  Returns (call id, channel) when its caller
        sits in a session that died with the earlier process: to be sent to
        acd-recover once FastAGI is open (:meth:`resume`)."""
        w = found.pbx.where(self.calls.uid(self.server, row.call_id))
        assert w.channel is not None
        self._waiting(row, w.channel.name, row.call_id in found.reroute, report)
        self._secret(row.call_id, w.channel)
        if w.channel.context != RECOVER_CONTEXT:
            return row.call_id, w.channel.name
        return None

    async def finish(self, found: StartUp, send: Send, report: RebuildReport) -> None:
        """Phase 2 for this server alone (a server first reached after the
        start): the waiting calls in order of virtual arrival, then resumes."""
        for _, redirects in put_back_in_order(self.core, [found], report).items():
            await self.resume(redirects, send, report)

    async def resume(self, redirects: Sequence[tuple[str, str]], send: Send,
                     report: RebuildReport) -> None:
        """Callers whose AGI session died with the earlier process: back to
        us through ``acd-recover,resume,1`` (FastAGI must be open)."""
        for call_id, channel in redirects:
            await self._resume(call_id, channel, send, report)

    def _secret(self, call_id: str, channel: Channel) -> None:
        """A call put back takes its secret from its channel (manager.conf
        ``channelvars``): its next FastAGI script must present it."""
        call = self.calls.get(call_id)
        if call is not None and call.secret is None:
            call.secret = channel.variables.get(SECRET_VAR) or None

    def _held(self, call_id: str) -> bool:
        return call_id in self.calls or self.core.call(call_id) is not None

    def _mine(self, server: str) -> bool:
        return server == self.server or (not server and self.server == self.calls.primary)

    async def _device_states(self, send_list: SendList) -> dict[str, str]:
        """Extension -> state of each PJSIP device (AMI ``DeviceStateList``)."""
        try:
            events = await send_list("DeviceStateList")
        except AmiError as exc:
            log.warning("start-up: DeviceStateList on %s failed (%s): agents' phones not "
                        "checked", self.server, exc)
            return {}
        out: dict[str, str] = {}
        for msg in events:
            if msg.event != "DeviceStateChange":
                continue
            tech, _, ext = msg.get("Device").partition("/")
            if tech.upper() == "PJSIP" and ext:
                out[ext] = msg.get("State")
        return out


    def _agent_by_extension(self, extension: str) -> str | None:
        for agent in self.core.agents():
            if agent.profile.extension == extension:
                return agent.agent_id
        return None

    def _put_back(self, ev: CallRestored, channel: str) -> bool:
        if self._held(ev.call_id):
            return False  # ours already: never overwritten
        call = LiveCall(ev.call_id, channel, server=self.server,
                        uid=self.calls.uid(self.server, ev.call_id))
        self.calls.add(call)
        refusal = self.submit(ev)
        if refusal is not None:
            self.calls.finished(ev.call_id)
            self.calls.discard(ev.call_id)
            self.limited.error(log, "put-back", "start-up: call %s could not be put back: %s",
                               ev.call_id, refusal)
            return False
        return True

    async def _with_agent(self, row: LiveCallRow, channel: str, place: Place, extension: str,
                          agent_leg: str | None, offer_var: str, reroute: bool,
                          report: RebuildReport, send_list: SendList) -> None:
        agent_id = self._agent_by_extension(extension)
        talking = place is Place.TALKING
        offer_id = int(offer_var) if offer_var.isascii() and offer_var.isdigit() \
            and len(offer_var) < 10 else row.offer_id
        if agent_id is None:
            # never offered again (a Redirect would cut a live conversation):
            # a ring that ends comes back through requeue/resume by itself
            self.limited.error(log, "no-agent", "start-up: call %s is %s extension %s, which "
                               "is no agent of ours; left alone", row.call_id,
                               "talking to" if talking else "ringing", extension)
            return
        state = "connected" if talking else "offered"
        answered = row.answered_at
        if talking and answered is None:
            answered = await self.answered_at(send_list, extension, row.call_id)
        if answered is None:
            answered = self.clock()
        ev = restored(row, state=state, agent_id=agent_id, offer_id=offer_id,
                      answered_at=answered)
        ev.reroute = reroute
        if not self._put_back(ev, channel):
            if not talking:  # the agent is taken: the ring ends, requeue brings it back
                self.limited.error(log, "agent-busy", "start-up: call %s rings %s, who is "
                                   "busy with another call", row.call_id, agent_id)
            return
        call = self.calls.get(row.call_id)
        assert call is not None
        call.redirect_offer = offer_id
        call.restored_offer = True
        if agent_leg:
            self.calls.map_agent(row.call_id, agent_leg)
        else:
            call.dial_offer = offer_id
        if talking:
            report.talking += 1
        else:
            report.ringing += 1

    def _waiting(self, row: LiveCallRow, channel: str, reroute: bool,
                 report: RebuildReport) -> None:
        state = "ivr" if row.state == "ivr" or row.queue is None else "waiting"
        ev = restored(row, state=state, channel=channel)
        ev.reroute = reroute
        if self._put_back(ev, channel):
            if state == "ivr":
                report.ivr += 1
            else:
                report.waiting += 1

    async def _ended(self, row: LiveCallRow, reroute: bool, report: RebuildReport,
                     send_list: SendList, *, elsewhere: bool) -> None:
        """The caller is gone (or out of our hands): the record, now.  A
        call that was ringing an agent was answered if AstDB says so."""
        state = row.state if row.state in ("ivr", "connected") else "waiting"
        answered = row.answered_at
        if row.state == "offered" and row.agent_id is not None:
            try:
                ext = self.core.agent(row.agent_id).profile.extension
            except CoreError:
                ext = ""
            answered = await self.answered_at(send_list, ext, row.call_id)
            if answered is not None:
                state = "connected"
        if row.queue is None:
            state = "ivr"
        ev = restored(row, state=state, answered_at=answered)
        ev.reroute = reroute
        if state == "connected" and row.agent_id is not None:
            try:
                agent = self.core.agent(row.agent_id)
            except CoreError:
                agent = None
            if agent is None or agent.call_id is not None:
                ev = restored(row, state="waiting")
                ev.reroute = reroute
        if not self._put_back(ev, row.channel):
            return
        if elsewhere:
            self.limited.warning(log, "elsewhere", "start-up: call %s left the engine's "
                                 "contexts while no engine ran; its record is written now",
                                 row.call_id)
        self.reports.caller_gone(row.call_id, 0)
        report.ended += 1

    async def _resume(self, call_id: str, channel: str, send: Send,
                      report: RebuildReport) -> None:
        """One caller to ``acd-recover,resume,1`` (unless offered meanwhile)."""
        call = self.calls.get(call_id)
        core_call = self.core.call(call_id)
        if call is None or core_call is None or call.moved or core_call.state not in (
                CallState.WAITING, CallState.IVR):
            return
        try:
            await send("Redirect", {"Channel": channel, "Context": RECOVER_CONTEXT,
                                    "Exten": "resume", "Priority": "1"})
            report.redirected += 1
        except AmiError as exc:
            # it comes back by itself when its hold chunk ends
            self.limited.warning(log, "resume", "start-up: call %s: Redirect to %s,resume "
                                 "failed (%s)", call_id, RECOVER_CONTEXT, exc)

    # ------------------------------------------------------- reconciliation

    async def answered_at(self, send_list: SendList, extension: str,
                          call_id: str) -> float | None:
        """When ``extension`` answered call ``call_id``, by the AstDB entry
        the dialplan's ``[acd-answered]`` writes (None: it did not, or
        there is no telling)."""
        if not extension:
            return None
        try:
            events = await send_list("DBGet", {"Family": ANSWERED_FAMILY, "Key": extension})
        except AmiActionFailed:
            return None  # no entry: that phone never answered one of our calls
        except AmiError as exc:
            self.limited.warning(log, "dbget", "DBGet %s/%s failed (%s): call %s taken as not "
                                 "answered", ANSWERED_FAMILY, extension, exc, call_id)
            return None
        for msg in events:
            if msg.event == "DBGetResponse":
                epoch, _, answered = msg.get("Val").partition(" ")
                if answered == call_id:
                    try:
                        return float(epoch)
                    except ValueError:
                        return self.clock()
        return None

    async def gone(self, call_id: str, send_list: SendList, cause: int = 0) -> None:
        """The caller is gone (a Hangup, or not in ``CoreShowChannels`` after
        an outage).  If the core still has it ringing an agent, the answer
        may have been missed with a lost link: AstDB says whether that agent
        answered it, and if so the call was answered first."""
        core_call = self.core.call(call_id)
        if core_call is not None and core_call.state is CallState.OFFERED \
                and core_call.agent_id is not None:
            ext = self.core.agent(core_call.agent_id).profile.extension
            at = await self.answered_at(send_list, ext, call_id)
            core_call = self.core.call(call_id)  # still ringing after the look-up?
            if at is not None and core_call is not None \
                    and core_call.state is CallState.OFFERED:
                log.info("call %s was answered by %s while AMI was down", call_id, ext)
                self.submit(OfferAnswered(call_id, core_call.offer_id, at))
        self.reports.caller_gone(call_id, cause)

    def offers(self) -> dict[str, int]:
        """Each call's current offer id, taken with ``known`` before asking
        the PBX: an offer made while the answer was on its way is not in it."""
        return {c.call_id: c.offer_id for c in self.core.calls()}

    async def reconcile(self, events: list[AmiMessage], known: Mapping[str, tuple[str, str]],
                        send_list: SendList, offers: Mapping[str, int] | None = None) -> None:
        """After an AMI (re)connect: the live channels settle what the
        engine may have missed while the link was down.  ``known``: the
        channel map taken before asking (a call that arrived while the
        answer was on its way is not in the answer); ``offers``: likewise
        each call's offer id (:meth:`offers`)."""
        pbx = self._channels(events)
        gone: list[str] = []
        for uid, (call_id, role) in known.items():
            if uid not in pbx and self.calls.leg(uid, self.server) == (call_id, role):
                self.calls.drop_leg(uid, self.server)
                if role == "caller":
                    log.info("resync: call %s ended while AMI was down", call_id)
                    gone.append(call_id)
        for uid, (call_id, role) in known.items():
            if role == "caller" and uid in pbx:
                self.settle(call_id, pbx, None if offers is None else offers.get(call_id))
        for call_id in gone:
            await self.gone(call_id, send_list)

    async def settle_from(self, call_id: str, events: list[AmiMessage],
                          send_list: SendList, offer_id: int | None = None) -> None:
        """:meth:`settle` one call by a fresh ``CoreShowChannels`` answer
        (``offer_id``: the offer in question, taken before asking)."""
        pbx = self._channels(events)
        if self.calls.uid(self.server, call_id) not in pbx:
            await self.gone(call_id, send_list)
            return
        self.settle(call_id, pbx, offer_id)

    def settle(self, call_id: str, pbx: PbxChannels, offer_id: int | None = None) -> None:
        """Make the core's view of one call's offer agree with the PBX.
        Nothing is judged for an offer other than ``offer_id`` (made after
        the PBX was asked); a caller still on hold is not taken as a failed
        offer while its Redirect awaits an answer."""
        call = self.calls.get(call_id)
        core_call = self.core.call(call_id)
        if call is None or core_call is None:
            return
        if offer_id is not None and core_call.offer_id != offer_id:
            return
        w = pbx.where(call.uid or call_id)
        if w.channel is not None and w.channel.name:
            call.channel = w.channel.name
        state = core_call.state
        if state is CallState.OFFERED:
            offer = core_call.offer_id
            if w.place is Place.TALKING:
                if call.dial_offer is None:
                    call.dial_offer = offer
                if w.agent_leg and call.agent_uid is None:
                    self.calls.map_agent(call_id, w.agent_leg)
                self.submit(OfferAnswered(call_id, offer))
            elif w.place is Place.RINGING:
                if w.agent_leg and call.agent_uid is None:
                    self.calls.map_agent(call_id, w.agent_leg)
                call.dial_offer = offer
            elif w.place is Place.HOLDING and not call.redirect_pending:
                # the Redirect never moved it (or the ring is over and requeue
                # comes): the offer failed, not through the agent's fault; a
                # Redirect still awaiting its answer may yet move it
                self.reports.offer_failed(call_id, offer, "NOT-MOVED", agent_fault=False)
        elif state is CallState.CONNECTED and w.place is Place.TALKING:
            if w.agent_leg and call.agent_uid is None:
                self.calls.map_agent(call_id, w.agent_leg)
