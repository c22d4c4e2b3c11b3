"""The FastAGI scripts the dialplan calls: ``hotline`` (a new call: IVR,
then queue and hold), ``requeue`` (back from a ring nobody answered),
``resume`` (back from ``acd-recover``: a call whose engine went away) and
``fallback`` (after the queue's maximum wait).

Each call's AGI session runs here; what happens to the call is decided by
the core, fed through the engine's ``handle`` (via :class:`CallReports`).
IVR steps are carried out by :mod:`acd.runtime.ivr_agi`, the hold loop by
:mod:`acd.runtime.hold`.

The call's secret: the first script of a call (``hotline``, or ``resume``
of a call this process did not know) sets a new random secret on the
channel (``ACD_CALL_SECRET``, :func:`~acd.runtime.continuity.new_secret`).
Every later script naming a call the engine holds must present it, as its
first AGI argument (the dialplan passes ``${ACD_CALL_SECRET}``; a dialplan
that passes no argument is asked with ``GET VARIABLE``); one that does not
is refused (:class:`~acd.adapters.fastagi.AgiRefused`: the session is
closed, the call untouched).  So a peer that can reach the FastAGI port and
knows a call's uniqueid cannot take the call over.

The call's channel, proven: a peer can also open a ``hotline`` of its own
naming a real channel (a caller talking to an agent, say) or the next
uniqueid Asterisk will give.  So a new call (``hotline``; ``resume`` of a
call known only from its channel) is not a call until the channel its
request names is shown to carry the secret this session set: one AMI
``Getvar`` on the call's server, sent as the channel is answered
(:meth:`CallScripts._welcome`).  A fake's ``SET VARIABLE`` went to the peer,
not to Asterisk, so the real channel does not have it: the session is
closed, nothing is done to the channel, the core never hears of it (no
record: a fake is not a call) and its uniqueid stays free for the real
channel; logged once a minute with a count.  A caller who hangs up before
the proof (no such channel, or the session hung up first) is a call if the
channel's AMI ``Hangup`` comes within :data:`GONE_GRACE_S` of the session's
close (recorded), else nothing; a session that stops speaking AGI before
the proof (a 520 that never ends) is nothing.  At a graceful stop the
proofs under way are let finish (:meth:`CallScripts.settle`).  When AMI
cannot tell (link down, no answer within
:data:`PROOF_TIMEOUT_S`) the call is taken, ``unproven``: nothing is done
to its channel over AMI until a later ``Getvar`` proves it
(:mod:`acd.runtime.moves`).  A second ``hotline`` for a uniqueid held by a
session not proven is decided by the proof, not by who came first: the
newcomer proves the channel its own, the squatter's session is closed and
the call is the newcomer's.

A session that ends in error (a reply that is not AGI, a command Asterisk
refused, a bug) leaves its call where it was: a real caller comes back
through ``acd-recover``; a call whose channel is gone (or never was: a
peer faking Asterisk) is found by the next check of the live channels
(``check``, at most every :data:`STRAY_CHECK_S`) and ended, so that it is
recorded and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from acd.adapters.fastagi import AgiHangupError, AgiRefused, AgiSession
from acd.core.model import CallQueued, CallStarted, CallState, Event, IvrEnded
from acd.ivr.checks import expressions
from acd.ivr.interpreter import EndCall, EnterQueue, FlowRun, TransferCall, VoicemailCall
from acd.ivr.nodes import Flow
from acd.ivr.prompt_names import (
    ALL_BUSY_CALL_LATER,
    CALLBACK_REGISTERED,
    LEAVE_MESSAGE,
    SMS_SENT,
)
from acd.logs import Limited, printable, private
from acd.protocols import agi
from acd.runtime.calls import (
    PENDING,
    PROVEN,
    UNPROVEN,
    CallRegistry,
    CallReports,
    LiveCall,
)
from acd.runtime.continuity import (
    CALL_ID_VAR,
    QUEUED_VAR,
    SECRET_VAR,
    new_secret,
    parse_queued,
    queued_var,
    restored,
    row_from_channel,
    secret_matches,
)
from acd.runtime.counters import EngineCounters
from acd.runtime.hold import Hold
from acd.runtime.ivr_agi import play, run_flow
from acd.runtime.moves import Verdict
from acd.runtime.settings import EngineConfig

log = logging.getLogger(__name__)

#: what acd-transfer's `_X.` pattern matches
_NUMBER = re.compile(r"[0-9]{2,32}")
_MAILBOX = re.compile(r"[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")
#: how long routing waits for the caller's profile lookup once the IVR is done
LOOKUP_TIMEOUT_S = 2.0
#: how long the flow waits, once per call, for a profile lookup slower than
#: its first step before deciding on ``caller.*`` without it
PROFILE_WAIT_S = 1.0
#: ``caller.*`` names the call itself brings (AGI request), not the profile
_CALL_BROUGHT = frozenset({"caller.number", "caller.name"})
#: calls whose session ended in error are checked against the live channels
#: at most this often (one CoreShowChannels for all of them)
STRAY_CHECK_S = 5.0
#: how long the proof of a new call's channel (one AMI Getvar) may take
#: before the call is taken unproven; the caller hears nothing meanwhile
PROOF_TIMEOUT_S = 2.0
#: a new call whose channel is not there (or whose session ended before the
#: proof): how long its AMI Hangup may take to come, which makes it a caller
#: who hung up (recorded) rather than nothing
GONE_GRACE_S = 2.0

def reads_profile(flow: Flow) -> bool:
    """Does ``flow`` decide anything on the caller's profile (a ``caller.X``
    other than the number and name the call itself brings)?"""
    return any(name.startswith("caller.") and name not in _CALL_BROUGHT
               for node in flow.nodes.values() for _, e in expressions(node)
               for name in e.names)


Lookup = Callable[[str], Coroutine[Any, Any, dict[str, str]]]
HttpGet = Callable[[str, float], Awaitable[Mapping[str, object] | None]]
Script = Callable[[AgiSession], Awaitable[None]]
#: ``check(server, call_ids)``: settle those calls of ``server`` by its live
#: channels (a call whose channel is gone ends); False: it could not be done
Check = Callable[[str, Sequence[str]], Awaitable[bool]]
Spawn = Callable[[Coroutine[Any, Any, None], str], None]
#: ``prove(server, channel, secret, timeout)``: does ``channel`` on ``server``
#: carry ``secret``?  (:func:`acd.runtime.moves.channel_proof`)
Prove = Callable[[str, str, str, float], Awaitable[tuple[Verdict, str]]]


@dataclass(slots=True)
class Welcome:
    """How a new call's first commands went (:meth:`CallScripts._welcome`)."""

    verdict: Verdict
    #: why it is not proven ("" when it is)
    why: str
    #: the secret's SET VARIABLE was answered: the channel has it if it is ours
    secret_set: bool
    #: what ended the session meanwhile, if anything did
    error: Exception | None


class CallScripts:
    """The hotline, requeue and fallback scripts (:meth:`routes` for the
    FastAGI server)."""

    def __init__(self, config: EngineConfig, calls: CallRegistry, reports: CallReports,
                 hold: Hold, flow: Callable[[], Flow], lookup: Lookup, http: HttpGet,
                 clock: Callable[[], float], counters: EngineCounters, *,
                 check: Check | None = None, spawn: Spawn | None = None,
                 prove: Prove | None = None) -> None:
        """``flow()``: the flow new calls take; ``lookup(number)``: the
        caller's profile as routing attributes; ``check``: see :data:`Check`
        (run in a task of ``spawn(coro, name)``); ``prove``: see
        :data:`Prove` (None: no AMI, every new call is taken unproven)."""
        self.config = config
        self.calls = calls
        self.reports = reports
        self.hold = hold
        self.flow = flow
        self._profile_flow: tuple[Flow, bool] | None = None
        self.lookup = lookup
        self.http = http
        self.clock = clock
        self.counters = counters
        #: (call id, kind, number) of the latest calls sent to a fallback
        self.fallbacks: deque[tuple[str, str, str]] = deque(maxlen=10_000)
        self.check = check
        self.spawn = spawn
        self.prove = prove
        #: server -> calls whose session ended in error, to be checked
        self._strays: dict[str, set[str]] = {}
        self._sweeping = False
        #: scripts refused for a call's secret, and calls whose secret was not known
        self.refused = 0
        self.unchecked = 0
        #: new calls whose channel did not carry their secret (fakes), that
        #: named no channel there is, taken unproven (AMI could not tell),
        #: and taken from a squatter by the channel's own session
        self.fakes = 0
        self.no_channel = 0
        self.unproven = 0
        self.squatters = 0
        #: what a peer can make us say again and again: one line a minute of each kind
        self.limited = Limited(60.0)

    def routes(self) -> dict[str, Script]:
        return {name: self._guarded(script) for name, script in (
            ("hotline", self.hotline), ("requeue", self.requeue), ("resume", self.resume),
            ("fallback", self.fallback))}

    # ------------------------------------------------------ secret, strays

    async def _claim(self, session: AgiSession, call: LiveCall) -> None:
        """The call is ours from now on: a new secret on its channel (unless
        it has one we know), which every later script of it must present."""
        if call.secret is None:
            call.secret = new_secret()
            await session.set_variable(SECRET_VAR, call.secret)

    async def _presented(self, session: AgiSession) -> str:
        """The secret a script presents: its first argument, or, from a
        dialplan that passes none, the channel's variable."""
        req = session.request
        if req.args:
            return req.args[0]
        return await session.get_variable(SECRET_VAR) or ""

    async def _admit(self, session: AgiSession, call: LiveCall) -> None:
        """A script naming ``call``: it must present the call's secret.
        Raises :class:`AgiRefused` otherwise; nothing of the call has been
        touched then."""
        req = session.request
        presented = await self._presented(session)
        if call.secret is None:
            # taken over from an earlier process whose channel list did not
            # show the secret (manager.conf channelvars without it), or from
            # a version that set none: the first script of it wins
            self.unchecked += 1
            self.limited.warning(log, "unchecked", "call %s: its secret was not known (is "
                                 "%s in manager.conf channelvars?); %s taken unchecked",
                                 call.call_id, SECRET_VAR, req.script)
            if presented:
                call.secret = presented
            else:
                await self._claim(session, call)
            session.owner = call.call_id
            return
        if not secret_matches(presented, call.secret):
            self.refused += 1
            raise AgiRefused("secret", f"{req.script} for call {call.call_id} without the "
                             f"call's secret ({SECRET_VAR}); the call is left as it was")
        if call.proof == PENDING:  # its first session is still being proven: try again
            raise AgiRefused("pending", f"{req.script} for call {call.call_id}, whose channel "
                             "is still being proven; the call is left as it was")
        session.owner = call.call_id

    async def _admit_ended(self, session: AgiSession, call_id: str) -> None:
        """A script naming a call that ended a short while ago (its record is
        written): only with that call's secret, or a peer could start a
        call of its own under the id (raises :class:`AgiRefused`)."""
        secret = self.calls.ended_secret(call_id)
        if secret and not secret_matches(await self._presented(session), secret):
            self.refused += 1
            raise AgiRefused("secret", f"{session.request.script} for call {call_id}, which "
                             f"has ended, without the call's secret ({SECRET_VAR})")
        session.owner = call_id  # (no secret known: as before there were any)

    def _guarded(self, script: Script) -> Script:
        async def run(session: AgiSession) -> None:
            try:
                await script(session)
            except (AgiHangupError, AgiRefused):
                raise
            except Exception:
                if session.owner is not None:
                    self._stray(session.owner)
                raise
        return run

    def _stray(self, call_id: str) -> None:
        """The session of a call we hold ended in error: a real caller comes
        back by itself (acd-recover); whether the channel is still there is
        checked soon, all such calls at once."""
        call = self.calls.get(call_id)
        if self.check is None or self.spawn is None or call is None or call.ended \
                or call.moved:
            return
        self._strays.setdefault(call.server or self.config.server, set()).add(call_id)
        if not self._sweeping:
            self._sweeping = True
            self.spawn(self._sweep(), "agi-strays")

    async def _sweep(self) -> None:
        assert self.check is not None
        try:
            while self._strays:
                await asyncio.sleep(STRAY_CHECK_S)
                strays, self._strays = self._strays, {}
                for server, ids in strays.items():
                    live = sorted(c for c in ids if (call := self.calls.get(c)) is not None
                                  and not call.ended and not call.moved)
                    if live and not await self.check(server, live):
                        self._strays.setdefault(server, set()).update(live)  # next round
        finally:
            self._sweeping = False

    async def settle(self) -> None:
        """At a graceful stop, before the sessions are cut: the new calls
        whose channel is being proven are given the time to be (at most
        :data:`PROOF_TIMEOUT_S` + :data:`GONE_GRACE_S`), so that a real one
        is the core's, in the database, for the next engine, rather than
        lost with its session."""
        loop = asyncio.get_running_loop()
        until = loop.time() + PROOF_TIMEOUT_S + GONE_GRACE_S + 0.5
        while any(c.proof == PENDING for c in self.calls.live_calls()) \
                and loop.time() < until:
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------- hotline

    def _server(self, session: AgiSession) -> str | None:
        """The session's Asterisk server (``?server=``), if it is one we drive."""
        req = session.request
        server = req.query.get("server", self.config.server)
        if server not in self.config.server_names:
            self.limited.error(log, "server", "call %s comes from Asterisk server %r, but this "
                               "engine drives only %s; hanging up (set ACD_SERVER in "
                               "extensions.conf to the server's name in acd.yaml)",
                               printable(req.uniqueid[:64], newlines=False),
                               printable(server[:64], newlines=False),
                               ", ".join(repr(n) for n in self.config.server_names))
            return None
        return server

    async def hotline(self, session: AgiSession) -> None:
        req = session.request
        if not req.uniqueid:
            self.limited.error(log, "no-uid", "FastAGI hotline call without agi_uniqueid; "
                               "hanging up")
            await session.hangup()
            return
        server = self._server(session)
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        held = self.calls.get(call_id)
        if held is not None and (held.proof == PROVEN or held.ended):
            self.limited.error(log, "second", "call %s: a second hotline session for a live "
                               "call; hanging it up", printable(call_id[:80], newlines=False))
            await session.hangup()
            return
        if held is None and session.owner is None \
                and self.calls.ended_secret(call_id) is not None:
            # a uniqueid is given once: a hotline for one that ended is no call
            raise AgiRefused("ended", f"hotline for call {call_id}, which has ended")
        if held is None and (leg := self.calls.leg(req.uniqueid, server)) is not None:
            # the uniqueid of a channel we know otherwise (an agent's leg)
            raise AgiRefused("leg", f"hotline for {call_id}, the uniqueid of the {leg[1]} "
                                    f"channel of call {leg[0]}")
        call = self._arriving(session, server)
        if held is not None:  # held by a session not proven: the proof decides
            await self._challenge(session, call, held)
            return
        self.calls.add(call)  # its Hangup is seen from now on
        welcome = await self._welcome(session, call, answer=True)
        outcome = await self._judge(session, call, welcome)
        await self._begin(session, call, outcome, welcome)

    def _arriving(self, session: AgiSession, server: str) -> LiveCall:
        """A new call as its request has it, its secret chosen, not proven."""
        req = session.request
        return LiveCall(self.calls.call_id(server, req.uniqueid), req.channel, server=server,
                        uid=req.uniqueid, secret=new_secret(), proof=PENDING,
                        hung_up=asyncio.Event(), session=session)

    async def _begin(self, session: AgiSession, call: LiveCall,
                     outcome: Literal["call", "gone"], welcome: Welcome) -> None:
        """A new call of the hotline is the core's from now on: its IVR."""
        req = session.request
        self._start_flow(session, call)
        session.owner = call.call_id
        if self.reports.handle(CallStarted(call.call_id, req.callerid, req.calleridname,
                                           call.channel, call.server)) is not None:
            self.calls.finished(call.call_id)  # refused (logged): not a call of ours
            call.drop_lookup()
            if outcome == "call" and welcome.error is None:
                await session.hangup()
            return
        self.counters.calls_started += 1
        if self._after_welcome(call, outcome, welcome):
            await self._serve(session, call, ivr=True, welcomed=True)

    def _after_welcome(self, call: LiveCall, outcome: Literal["call", "gone"],
                       welcome: Welcome) -> bool:
        """A new call just told to the core: True if its session goes on;
        else it is recorded as gone, or its session's error raised."""
        if outcome == "gone":
            call.drop_lookup()
            self.reports.caller_gone(call.call_id, call.gone_cause, call)
            return False
        if welcome.error is not None:
            if isinstance(welcome.error, AgiHangupError):
                call.drop_lookup()
                self.reports.caller_gone(call.call_id, 16, call, session=True)
            raise welcome.error
        return True

    async def _welcome(self, session: AgiSession, call: LiveCall, *,
                       answer: bool) -> Welcome:
        """A new call's first commands: its secret set on its channel, then
        the proof that the channel the request names got it (one AMI
        Getvar) while the channel is answered (``answer``).  Two round
        trips in all: the call is the core's (and in the database) that
        soon.  An error of the session is kept in the answer, not raised:
        what it means depends on the proof (:meth:`_judge`)."""
        assert call.secret is not None
        secret_set = False
        error: Exception | None = None
        try:
            await session.set_variable(SECRET_VAR, call.secret)
            secret_set = True
        except Exception as exc:  # noqa: BLE001 - judged with the proof
            error = exc
        proof = asyncio.ensure_future(self._prove(call))  # awaited below, or cancelled
        try:
            if answer and error is None:
                await session.answer()
        except Exception as exc:  # noqa: BLE001 - judged with the proof
            error = exc
        except BaseException:
            proof.cancel()
            raise
        verdict, why = await proof
        return Welcome(verdict, why, secret_set, error)

    async def _prove(self, call: LiveCall) -> tuple[Verdict, str]:
        if self.prove is None:
            return "unknown", "no AMI"
        assert call.secret is not None
        return await self.prove(call.server or self.config.server, call.channel, call.secret,
                                PROOF_TIMEOUT_S)

    async def _judge(self, session: AgiSession, call: LiveCall,
                     welcome: Welcome) -> Literal["call", "gone"]:
        """Is the new call ``call`` a call?  ``call``: proven, or AMI could
        not tell (taken unproven); ``gone``: a caller who hung up before it
        could be proven (to be recorded).  Raises :class:`AgiRefused` for
        what is no call (the call forgotten, nothing done to its channel)."""
        req = session.request
        if call.evicted:
            raise AgiRefused("squatter", self._squatter(session))
        what = (f"{req.script} for {printable(req.uniqueid[:64], newlines=False)} on "
                f"channel {printable(call.channel[:80], newlines=False)}")
        verdict = welcome.verdict
        if verdict == "proven":
            call.proof = PROVEN
            call.session = None
            return "call"
        if verdict == "fake" and welcome.secret_set:
            self.calls.forget(call)
            self.fakes += 1
            raise AgiRefused("fake", f"{what}: not a call, the channel is not the session's "
                                     f"({welcome.why}); session closed, nothing done to the "
                                     "channel")
        if verdict == "unknown":
            # AMI cannot tell: taken, and nothing done to its channel over
            # AMI until it is proven (a caller is not lost to an AMI outage)
            call.proof = UNPROVEN
            self.unproven += 1
            self.limited.warning(log, "unproven", "%s: AMI could not prove the channel its "
                                 "own (%s); taken, proven before anything is done to the "
                                 "channel", what, welcome.why)
            if not welcome.secret_set:
                call.secret = None  # not on the channel: its next script is taken unchecked
            return "call"
        if welcome.error is not None and not isinstance(welcome.error, AgiHangupError):
            # a peer that does not speak AGI as Asterisk does (a 520 that
            # never ends, say) before its channel was proven: nothing
            self.calls.forget(call)
            raise welcome.error
        # no such channel, or the session hung up before its secret was set:
        # a caller who hung up (its Hangup comes) or nothing.  Asterisk ends
        # a channel (and says Hangup) only once its AGI socket is closed
        session.abort()
        if call.hung_up is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.hung_up.wait(), GONE_GRACE_S)
        if call.evicted:
            raise AgiRefused("squatter", self._squatter(session))
        if call.hung_up is not None and call.hung_up.is_set():
            call.proof = UNPROVEN
            return "gone"
        self.calls.forget(call)
        self.no_channel += 1
        why = welcome.why if welcome.error is None else \
            f"the session ended first: {printable(str(welcome.error)[:200], newlines=False)}"
        raise AgiRefused("no-channel", f"{what}: not a call, no such channel hung up ({why}); "
                                       "session closed")

    def _squatter(self, session: AgiSession) -> str:
        req = session.request
        return (f"{req.script} for {printable(req.uniqueid[:64], newlines=False)}: the "
                "channel's own session proved it and took the call; this one closed")

    async def _challenge(self, session: AgiSession, call: LiveCall, held: LiveCall) -> None:
        """A hotline for a uniqueid ``held`` by a session not proven: if
        this one proves the channel its own, ``held`` was a squatter's (its
        session closed) and the call is this session's; else this one goes."""
        req = session.request
        welcome = await self._welcome(session, call, answer=True)
        current = self.calls.get(call.call_id)
        if welcome.verdict != "proven":
            if welcome.verdict == "fake" and welcome.secret_set:
                self.fakes += 1
                raise AgiRefused("fake", f"{req.script} for call {call.call_id}, held by "
                                         f"another session: not the channel's ({welcome.why});"
                                         " session closed, nothing done to the channel")
            self.limited.error(log, "second", "call %s: a second hotline session for a live "
                               "call, which it could not prove its own (%s); hanging it up",
                               printable(call.call_id[:80], newlines=False), welcome.why)
            if welcome.error is not None:
                raise welcome.error
            await session.hangup()
            return
        call.proof = PROVEN
        call.session = None
        if current is not None and (current.proof == PROVEN or current.ended):
            # proven meanwhile (one channel in two sessions?), or ended: the
            # first keeps it
            self.limited.error(log, "second", "call %s: a second hotline session for a live "
                               "call; hanging it up", printable(call.call_id[:80],
                                                                newlines=False))
            if welcome.error is not None:
                raise welcome.error
            await session.hangup()
            return
        if current is not None:
            self.squatters += 1
            self.limited.warning(log, "squatter", "call %s: its channel's own session took it "
                                 "from a session that named the same uniqueid first (a "
                                 "squatter's, closed)", printable(call.call_id[:80],
                                                                  newlines=False))
            current.evicted = True
            if current.session is not None:
                current.session.abort()
            current.drop_lookup()
        core_call = self.hold.core.call(call.call_id)
        if current is None or current.proof == PENDING or core_call is None:
            # the squatter was never a call of the core's: a new call
            if current is not None:
                self.calls.forget(current)
            self.calls.add(call)
            await self._begin(session, call, "call", welcome)
            return
        # the squatter's call was taken unproven (AMI was down): this session
        # goes on with it where it is (as resume does)
        call.attrs, call.moh = current.attrs, current.moh
        call.announce_every_s = current.announce_every_s
        self.calls.add(call)
        session.owner = call.call_id
        if self._after_welcome(call, "call", welcome):
            await self._carry_on(session, call, welcomed=True)

    def _start_flow(self, session: AgiSession, call: LiveCall) -> None:
        """The flow from its start (a new call, or one back in the IVR), and
        the caller's profile looked up meanwhile."""
        req = session.request
        caller = {"number": req.callerid, "name": req.calleridname}
        flow = self.flow()
        call.run = FlowRun(flow, caller, call_id=call.call_id)
        call.profile_waited = not self._reads_profile(flow)  # nothing to wait for
        call.profile_merged = False
        call.lookup = asyncio.get_running_loop().create_task(self.lookup(req.callerid))

    async def _serve(self, session: AgiSession, call: LiveCall, *, ivr: bool,
                     welcomed: bool = False) -> None:
        """The IVR (``ivr``), then hold; or hold only.  ``welcomed``: the
        call's first commands are done (:meth:`_welcome`)."""
        try:
            if not welcomed:
                await session.answer()
            if ivr:  # the call is ours: a later engine process finds it by this
                if not welcomed:
                    await self._claim(session, call)  # before ACD_CALL_ID: with it, always
                await session.set_variable(CALL_ID_VAR, call.call_id)
            if not ivr or await self._run_ivr(session, call):
                await self.hold.run(session, call)
        except AgiHangupError:
            if not call.moved:
                self.reports.caller_gone(call.call_id, 16, call, session=True)
            raise
        finally:
            call.drop_lookup()

    async def _caller_attributes(self, call: LiveCall) -> dict[str, str]:
        attrs: dict[str, str] = {}
        if call.lookup is not None:
            try:
                attrs.update(await asyncio.wait_for(asyncio.shield(call.lookup),
                                                    LOOKUP_TIMEOUT_S))
            except TimeoutError:
                log.warning("call %s: profile lookup took over %ss; routing without it",
                            call.call_id, LOOKUP_TIMEOUT_S)
            except Exception:
                log.exception("call %s: profile lookup failed; routing without it",
                              call.call_id)
        attrs.update(call.attrs)  # what the caller chose in the IVR wins
        return attrs

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _reads_profile(self, flow: Flow) -> bool:
        """:func:`reads_profile`, kept for the flow object in use (a reload
        brings a new one)."""
        if self._profile_flow is None or self._profile_flow[0] is not flow:
            self._profile_flow = (flow, reads_profile(flow))
        return self._profile_flow[1]

    async def _profile_in(self, call: LiveCall) -> None:
        """Before the flow decides its next nodes: the profile, once its
        lookup is in, seen by conditions (``caller.vip_level``).  A lookup
        slower than the first step (the welcome covers it normally) is
        waited for once, at most :data:`PROFILE_WAIT_S`, so a database
        having a slow moment does not send a VIP down the general path
        (only by a flow reading the profile: the others never wait)."""
        lookup = call.lookup
        if lookup is not None and not lookup.done() and not call.profile_waited:
            call.profile_waited = True
            await asyncio.wait({lookup}, timeout=PROFILE_WAIT_S)
        self._merge_profile(call)

    def _merge_profile(self, call: LiveCall) -> None:
        """Once the background profile lookup is in, conditions see ``caller.*``."""
        if call.profile_merged or call.lookup is None or not call.lookup.done():
            return
        call.profile_merged = True
        if call.run is not None and not call.lookup.cancelled() \
                and call.lookup.exception() is None:
            call.run.add_caller_info(call.lookup.result())

    async def _profile_for(self, call: LiveCall) -> dict[str, str] | None:
        if call.lookup is None:
            return None
        attrs = await asyncio.shield(call.lookup)
        return {k: v for k, v in attrs.items() if k != "last_agent"} or None

    async def _run_ivr(self, session: AgiSession, call: LiveCall) -> bool:
        """Walk the flow; returns True when the call was queued."""
        run = call.run
        assert run is not None
        end = await run_flow(session, run, clock=self._now,
                             profile=lambda: self._profile_for(call), http=self.http,
                             before_step=lambda: self._profile_in(call),
                             composed=self.config.say_composed)
        await play(session, end.prompts)

        def handle(event: Event) -> object:
            if call.evicted:  # the call is another session's now: this one ends
                raise AgiHangupError("the call was taken by its channel's own session")
            return self.reports.handle(event)

        match end:
            case EnterQueue():
                call.attrs = dict(end.attributes)
                call.moh = end.moh
                call.announce_every_s = end.announce_every_s
                await session.set_variable("ACD_MOH", end.moh or self.config.moh_class)
                attrs = await self._caller_attributes(call)
                if call.ended:
                    return False  # hung up meanwhile (seen on AMI)
                # what a later engine process needs if this one goes away
                # before the call's row reaches the database
                started = self.hold.core.call(call.call_id)
                await session.set_variable(QUEUED_VAR, queued_var(
                    end.queue, end.priority, attrs, self.clock(),
                    started.started_at if started is not None else self.clock(), end.path))
                if call.ended:
                    return False
                handle(CallQueued(call.call_id, end.queue, end.path, end.priority,
                                  tuple(attrs.items())))
                return True
            case TransferCall() if not _NUMBER.fullmatch(end.number):
                log.error("call %s: transfer number %s from the flow is not a phone number; "
                          "hanging up", call.call_id, private(end.number))
                handle(IvrEnded(call.call_id, end.path, "transfer-failed"))
                await session.hangup()
                return False
            case TransferCall():
                # the channel goes on in the dialplan once the AGI socket closes
                handle(IvrEnded(call.call_id, end.path, f"transfer:{end.number}"))
                await session.command(agi.set_context(self.config.transfer_context))
                await session.command(agi.set_extension(end.number))
                await session.command(agi.set_priority(1))
                return False
            case VoicemailCall() if not _MAILBOX.fullmatch(end.mailbox):
                log.error("call %s: mailbox %r from the flow is not a mailbox; hanging up",
                          call.call_id, end.mailbox)
                handle(IvrEnded(call.call_id, end.path, "voicemail-failed"))
                await session.hangup()
                return False
            case VoicemailCall():
                handle(IvrEnded(call.call_id, end.path, "voicemail"))
                # the flow's prompt said it: no English greeting of Asterisk's
                await session.exec("VoiceMail", f"{end.mailbox},s")
                await session.hangup()
                return False
            case EndCall():
                handle(IvrEnded(call.call_id, end.path, end.reason))
                await session.hangup()
                return False
        return False

    # ------------------------------------------------------------- requeue

    async def requeue(self, session: AgiSession) -> None:
        """The agent did not answer; the dialplan brought the caller back."""
        req = session.request
        server = self._server(session)
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        call = self.calls.get(call_id)
        if call is None or call.ended:
            # not ours (any more): an earlier engine's call that was not found
            # at start-up; picked up as resume does
            self.limited.warning(log, "requeue-unknown", "requeue for unknown call %s (%s); "
                                 "resuming it", printable(call_id[:80], newlines=False),
                                 printable(req.channel[:80], newlines=False))
            await self.resume(session)
            return
        await self._admit(session, call)
        status = req.query.get("status", "") or "NOANSWER"
        offer = req.query.get("offer", "")
        core_call = self.hold.core.call(call_id)
        if call.restored_offer and core_call is not None \
                and core_call.state is CallState.OFFERED \
                and call.redirect_offer == core_call.offer_id:
            # the ring an earlier process started (its offer id may be one we
            # never knew): this requeue is its end
            offer = str(core_call.offer_id)
        call.restored_offer = False
        if offer.isdigit():
            # the offer's failure, unless a DialEnd already told it (the core
            # ignores an offer that is no longer the call's live one); a
            # phone that is not registered fails Dial with no DialEnd at all
            self.reports.offer_failed(call_id, int(offer), status)
        call.channel = req.channel or call.channel
        if not call.ended:
            self.calls.map_caller(call_id)
        try:
            await self.hold.run(session, call)
        except AgiHangupError:
            if call.redirect_offer is None:
                self.reports.caller_gone(call_id, 16, call, session=True)
            raise

    # -------------------------------------------------------------- resume

    async def resume(self, session: AgiSession) -> None:
        """Back from ``acd-recover``: the call's engine went away (a crash,
        a stop, a takeover) or its session died with an earlier process.
        A call we hold goes on where it was (waiting: back on hold at its
        place; in the IVR: the flow again); one found only by its channel's
        ``ACD_QUEUED`` is put back in its queue; anything else is a new call."""
        req = session.request
        server = self._server(session) if req.uniqueid else None
        if server is None:
            await session.hangup()
            return
        call_id = self.calls.call_id(server, req.uniqueid)
        call = self.calls.get(call_id)
        if call is not None:
            await self._admit(session, call)
        else:
            await self._admit_ended(session, call_id)
        await session.set_variable("ACD_TRIES", "0")
        core_call = self.hold.core.call(call_id)
        if call is None or core_call is None or call.ended:
            if not await self._from_channel(session, server, call_id):
                await self.hotline(session)
                return
            call = self.calls.get(call_id)
            core_call = self.hold.core.call(call_id)
            if call is None or core_call is None:
                return
        self.counters.calls_resumed += 1
        call.channel = req.channel or call.channel
        self.calls.map_caller(call_id)
        await self._carry_on(session, call)

    async def _carry_on(self, session: AgiSession, call: LiveCall, *,
                        welcomed: bool = False) -> None:
        """A call the core holds, back in a session of its own: it goes on
        where it is (waiting: on hold at its place; in the IVR: the flow
        again; ringing for an offer whose Redirect never came: that offer
        is over)."""
        call_id = call.call_id
        core_call = self.hold.core.call(call_id)
        if core_call is None:
            return
        state = core_call.state
        if state is CallState.OFFERED and call.dial_offer is None \
                and (call.restored_offer or call.redirect_offer != core_call.offer_id):
            # it was to ring an agent (an earlier process's offer), but it is
            # here: that offer is over
            call.restored_offer = False
            self.reports.offer_failed(call_id, core_call.offer_id, "RESUMED",
                                      agent_fault=False)
        elif state is CallState.OFFERED and call.dial_offer is None:
            pass  # our Redirect for this offer is on its way: hold until it lands
        elif state is CallState.OFFERED or state is CallState.CONNECTED:
            self.limited.warning(log, "resume-busy", "resume of call %s, which is %s with "
                                 "agent %s: left alone", call_id, state.value,
                                 core_call.agent_id)
            return
        if state is CallState.IVR:
            self._start_flow(session, call)
            await self._serve(session, call, ivr=True, welcomed=welcomed)
        else:
            await self._serve(session, call, ivr=False)

    async def _from_channel(self, session: AgiSession, server: str, call_id: str) -> bool:
        """A queued call no process told us of: put back from ``ACD_QUEUED``."""
        req = session.request
        queued = parse_queued(await session.get_variable(QUEUED_VAR))
        if queued is None:
            return False
        # a new call to this process: its channel proven first, as a hotline's
        call = self._arriving(session, server)
        self.calls.add(call)
        welcome = await self._welcome(session, call, answer=False)
        outcome = await self._judge(session, call, welcome)
        row = row_from_channel(call_id, queued, caller=req.callerid,
                               caller_name=req.calleridname, channel=call.channel,
                               server=server, now=self.clock())
        ev = restored(row)
        ev.reroute = True
        if self.reports.handle(ev) is not None:
            self.calls.finished(call_id)
            self.calls.discard(call_id)
            return False
        session.owner = call_id
        if self._after_welcome(call, outcome, welcome):
            log.info("call %s put back in queue %s from its channel variables", call_id,
                     queued.queue)
        return True

    # ------------------------------------------------------------ fallback

    async def fallback(self, session: AgiSession) -> None:
        """The dialplan's ``acd-fallback`` hands the caller back after the
        queue's maximum wait: tell them what happens next and hang up."""
        req = session.request
        server = req.query.get("server", self.config.server)
        call_id = self.calls.call_id(server, req.uniqueid)
        call = self.calls.get(call_id)
        if call is not None:  # still held (its Redirect's answer not in yet)
            await self._admit(session, call)
        else:  # its record is written: it ended in the fallback
            await self._admit_ended(session, call_id)
        kind = req.query.get("kind", "message")
        prompt = {"callback": CALLBACK_REGISTERED, "sms": SMS_SENT,
                  "voicemail": LEAVE_MESSAGE}.get(kind, ALL_BUSY_CALL_LATER)
        log.info("call %s: fallback %s after the maximum wait",
                 printable(req.uniqueid[:80], newlines=False),
                 printable(kind[:32], newlines=False))
        self.fallbacks.append((req.uniqueid, kind, req.callerid))
        await session.answer()
        await play(session, (prompt,))  # a missing file is logged with its name
        await session.hangup()
