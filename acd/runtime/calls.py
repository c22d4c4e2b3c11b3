"""The call registry: the engine's one record of each live call.

A :class:`LiveCall` holds what the engine (not the core) knows of a call:
its channel and ids on the PBX, the offer whose Redirect it asked for and
the one whose Dial is ringing, the agent leg's ``Uniqueid``, the caller's
attributes and profile lookup, the hold settings of its queue node, and its
IVR run.  The routing state (waiting, offered, connected ...) is the core's
alone.  :class:`CallRegistry` also maps every channel ``Uniqueid`` it knows
(the caller's, the ringing agent's) to its call and role.

:class:`CallReports` tells the core what happened to a call's channels and
keeps the record in step: a caller gone (:class:`~acd.core.model.CallerGone`;
the core picks the outcome) and an offer that failed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from acd.core.errors import CoreError
from acd.core.model import CallerGone, Event, OfferFailed
from acd.ivr.interpreter import FlowRun

if TYPE_CHECKING:
    from acd.adapters.fastagi import AgiSession

#: how many ended calls the registry remembers (with their secrets): a
#: FastAGI script naming one must still present its secret
ENDED_KEPT = 10_000

Role = Literal["caller", "agent"]
CALLER: Role = "caller"
AGENT: Role = "agent"

#: is the channel a call's FastAGI session named the channel that runs it?
#: ``pending``: a call just arrived, its proof on the way (the core does not
#: know it yet); ``proven``: the channel carries the secret this session set
#: (AMI ``Getvar``), or the call came from the PBX's own channel list;
#: ``unproven``: AMI could not tell (down, no answer): nothing is done to its
#: channel over AMI before it is proven (see :mod:`acd.runtime.agi_scripts`)
Proof = Literal["pending", "proven", "unproven"]
PENDING: Proof = "pending"
PROVEN: Proof = "proven"
UNPROVEN: Proof = "unproven"


@dataclass(slots=True)
class LiveCall:
    """The engine's bookkeeping for one live call (not routing state)."""

    call_id: str
    channel: str
    run: FlowRun | None = None
    #: the Asterisk server of the caller's channel ("" = the first one)
    server: str = ""
    #: the caller channel's ``Uniqueid`` on that server ("" = ``call_id``)
    uid: str = ""
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
    #: the flow waited for the profile lookup once (at most PROFILE_WAIT_S)
    profile_waited: bool = False
    #: the core has written the call's record (the call is over for routing)
    ended: bool = False
    #: its offer was put back at start-up from the PBX: the offer id the
    #: dialplan names may be one this process never knew
    restored_offer: bool = False
    #: a Redirect of ours is sent and its answer not in yet
    redirect_pending: bool = False
    #: the call's secret (``ACD_CALL_SECRET`` on its channel): a later FastAGI
    #: script of the call must present it; None: not known (a call an
    #: earlier process took whose channel does not show it)
    secret: str | None = field(default=None, repr=False)
    #: see :data:`Proof`
    proof: Proof = PROVEN
    #: a pending call's channel hung up (AMI ``Hangup``): set by
    #: :meth:`CallReports.caller_gone`, with the cause in ``gone_cause``
    hung_up: asyncio.Event | None = None
    gone_cause: int = 16
    #: the FastAGI session serving it while it is not proven: a later session
    #: that proves the channel its own closes it (a squatter's)
    session: AgiSession | None = field(default=None, repr=False)
    #: replaced by such a session: this record, and its session, no longer
    #: speak for the call
    evicted: bool = False

    @property
    def ivr_path(self) -> tuple[str, ...]:
        """The IVR nodes the caller went through so far."""
        return tuple(self.run.path) if self.run is not None else ()

    @property
    def moved(self) -> bool:
        """The engine moved the caller away (to an agent or a fallback): the
        AGI session's end is that move, not a hang-up."""
        return self.redirect_offer is not None or self.fallback is not None

    def drop_lookup(self) -> None:
        """Cancel the caller's profile lookup, if one is under way."""
        if self.lookup is not None:
            self.lookup.cancel()


class CallRegistry:
    """Live calls by call id, and (server, channel ``Uniqueid``) -> (call
    id, role).

    A call's id is its caller channel's ``Uniqueid`` (``agi_uniqueid``) on
    the first server; on any other server, ``<server>:<Uniqueid>``
    (:meth:`call_id`): uniqueids are unique on one Asterisk server only.
    The leg methods take the channel's server (default: the first)."""

    def __init__(self, primary: str = "") -> None:
        self.primary = primary
        self._calls: dict[str, LiveCall] = {}
        self._legs: dict[tuple[str, str], tuple[str, Role]] = {}
        #: the latest calls ended: call id -> its secret ("" if not known)
        self._ended: OrderedDict[str, str] = OrderedDict()

    def call_id(self, server: str, uid: str) -> str:
        """The id of the call whose caller channel is ``uid`` on ``server``."""
        return uid if not server or server == self.primary else f"{server}:{uid}"

    def uid(self, server: str, call_id: str) -> str:
        """The caller channel's ``Uniqueid`` of a call of ``server``."""
        prefix = f"{server}:"
        if server and server != self.primary and call_id.startswith(prefix):
            return call_id[len(prefix):]
        return call_id

    def _server(self, server: str | None) -> str:
        return self.primary if not server else server

    def _caller_key(self, call: LiveCall) -> tuple[str, str]:
        return self._server(call.server), call.uid or call.call_id

    # ------------------------------------------------------------ read side

    def get(self, call_id: str) -> LiveCall | None:
        return self._calls.get(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def live_calls(self) -> Iterator[LiveCall]:
        """Every call the registry holds (the ended ones until their fallback
        Redirect is out)."""
        return iter(list(self._calls.values()))

    def leg(self, uid: str, server: str | None = None) -> tuple[str, Role] | None:
        """(call id, role) of a channel; None when it is none of ours."""
        return self._legs.get((self._server(server), uid))

    def legs(self, server: str | None = None) -> dict[str, tuple[str, Role]]:
        """A copy of one server's channel map: ``Uniqueid`` -> (call id, role)."""
        srv = self._server(server)
        return {uid: entry for (s, uid), entry in self._legs.items() if s == srv}

    # ----------------------------------------------------------- write side

    def add(self, call: LiveCall) -> None:
        """A new call (the hotline AGI started); its caller leg is mapped."""
        if not call.uid:
            call.uid = self.uid(call.server, call.call_id)
        self._calls[call.call_id] = call
        self._legs[self._caller_key(call)] = (call.call_id, CALLER)

    def map_caller(self, call_id: str) -> None:
        """The caller's channel is ours again (back from a failed ring)."""
        call = self._calls.get(call_id)
        if call is not None:
            self._legs[self._caller_key(call)] = (call_id, CALLER)

    def map_agent(self, call_id: str, uid: str) -> None:
        """``Dial`` began ringing the agent on channel ``uid`` (DialBegin):
        that Dial belongs to the offer we redirected for."""
        call = self._calls.get(call_id)
        if call is None:
            return
        self._legs[(self._server(call.server), uid)] = (call_id, AGENT)
        call.agent_uid = uid
        call.dial_offer = call.redirect_offer

    def drop_leg(self, uid: str, server: str | None = None) -> tuple[str, Role] | None:
        return self._legs.pop((self._server(server), uid), None)

    def drop_agent_leg(self, call: LiveCall) -> None:
        """The ring ended unanswered: the agent's channel is no longer ours."""
        if call.agent_uid is not None:
            self._legs.pop((self._server(call.server), call.agent_uid), None)
            call.agent_uid = None

    def offer_over(self, call_id: str, offer_id: int) -> None:
        """``offer_id`` failed: it is neither redirected nor ringing any more."""
        call = self._calls.get(call_id)
        if call is not None:
            if call.redirect_offer == offer_id:
                call.redirect_offer = None
            if call.dial_offer == offer_id:
                call.dial_offer = None

    def finished(self, call_id: str) -> LiveCall | None:
        """The core wrote the call's record: its channels are forgotten, and
        the record too unless a fallback Redirect is still to go out
        (:meth:`discard` then).  Returns the record, marked ended."""
        call = self._calls.get(call_id)
        if call is None:
            self._legs.pop((self.primary, call_id), None)
            return None
        self._legs.pop(self._caller_key(call), None)
        call.ended = True
        self._ended[call_id] = call.secret or ""
        self._ended.move_to_end(call_id)
        if len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        if call.fallback is None:
            del self._calls[call_id]
        if call.agent_uid is not None:
            self._legs.pop((self._server(call.server), call.agent_uid), None)
        return call

    def discard(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def forget(self, call: LiveCall) -> None:
        """A call that never was (a FastAGI peer's fake, found out before the
        core heard of it): gone without a trace, its uniqueid free for the
        real channel that has it (not remembered as ended)."""
        if self._calls.get(call.call_id) is call:
            del self._calls[call.call_id]
            key = self._caller_key(call)
            if self._legs.get(key) == (call.call_id, CALLER):
                del self._legs[key]

    def ended_secret(self, call_id: str) -> str | None:
        """The secret of a call that ended a short while ago (one of the last
        :data:`ENDED_KEPT`): ``""`` if it was not known, None if the call is
        not one of them."""
        return self._ended.get(call_id)


class CallReports:
    """What happened to a call's channels, told to the core through
    ``handle`` (the engine's), with the registry kept in step."""

    def __init__(self, calls: CallRegistry,
                 handle: Callable[[Event], CoreError | None]) -> None:
        self.calls = calls
        self.handle = handle
        #: the engine is handing its calls over (graceful stop): the ends of
        #: the AGI sessions it closes are not the callers' hang-ups
        self.stopping = False

    def caller_gone(self, call_id: str, cause: int, call: LiveCall | None = None, *,
                    session: bool = False) -> None:
        """The caller's channel is gone, however we learnt it (AGI or AMI).
        ``call``: the record, when the caller holds it (it leaves the
        registry with the call's end).  Nothing is sent for a call whose
        record is already written.  ``session``: learnt from the end of its
        AGI session, which means nothing while the engine is stopping (it
        closes the sessions itself; the caller goes on to the next engine)."""
        if session and self.stopping:
            return
        if call is None:
            call = self.calls.get(call_id)
        if call is not None and (call.ended or call.evicted):
            return
        if call is not None and call.proof == PENDING:
            # not a call for the core yet: its proof decides (a caller who
            # hung up before it came is recorded then)
            call.gone_cause = cause
            if call.hung_up is not None:
                call.hung_up.set()
            return
        path = call.ivr_path if call is not None else ()
        self.handle(CallerGone(call_id, cause, path))

    def offer_failed(self, call_id: str, offer_id: int, reason: str,
                     agent_fault: bool = True) -> None:
        """The offer did not connect (the core ignores it if it is no longer
        the call's live offer)."""
        self.calls.offer_over(call_id, offer_id)
        self.handle(OfferFailed(call_id, offer_id, reason, agent_fault))
