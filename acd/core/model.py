"""The core's vocabulary: states, events in, actions out, records.

Everything here is plain data.  Times are floats in seconds on whatever clock
the driver uses (wall clock in the engine, virtual time in the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from acd.core.fsm import Table
from acd.core.policy import Policy
from acd.core.profiles import AgentProfile

# ---------------------------------------------------------------- agent states


class AgentState(Enum):
    # members are singletons: identity hashing (C speed) instead of Enum's hash(name)
    __hash__ = object.__hash__

    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # an offer is ringing the agent's phone
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentTrigger(Enum):
    # members are singletons: identity hashing (C speed) instead of Enum's hash(name)
    __hash__ = object.__hash__

    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    PAUSE = "pause"
    OFFER = "offer"
    ANSWER = "answer"
    OFFER_FAILED = "offer_failed"  # ring-no-answer, busy, unreachable
    OFFER_WITHDRAWN = "offer_withdrawn"  # the caller left while the agent rang
    CALL_ENDED = "call_ended"
    WRAP_UP_DONE = "wrap_up_done"


_A = AgentState
_AT = AgentTrigger

AGENT_TABLE: Table[AgentState, AgentTrigger] = Table(
    "agent",
    {
        (_A.LOGGED_OUT, _AT.LOGIN): _A.PAUSED,
        (_A.PAUSED, _AT.READY): _A.READY,
        (_A.PAUSED, _AT.PAUSE): _A.PAUSED,
        (_A.PAUSED, _AT.LOGOUT): _A.LOGGED_OUT,
        (_A.READY, _AT.READY): _A.READY,
        (_A.READY, _AT.PAUSE): _A.PAUSED,
        (_A.READY, _AT.LOGOUT): _A.LOGGED_OUT,
        (_A.READY, _AT.OFFER): _A.RESERVED,
        (_A.RESERVED, _AT.ANSWER): _A.ON_CALL,
        (_A.RESERVED, _AT.OFFER_FAILED): _A.PAUSED,
        (_A.RESERVED, _AT.OFFER_WITHDRAWN): _A.READY,
        (_A.ON_CALL, _AT.CALL_ENDED): _A.WRAP_UP,
        (_A.WRAP_UP, _AT.WRAP_UP_DONE): _A.READY,
        (_A.WRAP_UP, _AT.READY): _A.READY,  # the agent ends its wrap-up early
        (_A.WRAP_UP, _AT.PAUSE): _A.PAUSED,
        (_A.WRAP_UP, _AT.LOGOUT): _A.LOGGED_OUT,
    },
)

# ----------------------------------------------------------------- call states


class CallState(Enum):
    # members are singletons: identity hashing (C speed) instead of Enum's hash(name)
    __hash__ = object.__hash__

    IVR = "ivr"
    WAITING = "waiting"
    OFFERED = "offered"
    CONNECTED = "connected"
    ENDED = "ended"


class CallTrigger(Enum):
    # members are singletons: identity hashing (C speed) instead of Enum's hash(name)
    __hash__ = object.__hash__

    QUEUE = "queue"
    OFFER = "offer"
    ANSWER = "answer"
    OFFER_FAILED = "offer_failed"
    HANGUP = "hangup"
    IVR_END = "ivr_end"


_C = CallState
_CT = CallTrigger

CALL_TABLE: Table[CallState, CallTrigger] = Table(
    "call",
    {
        (_C.IVR, _CT.QUEUE): _C.WAITING,
        (_C.IVR, _CT.IVR_END): _C.ENDED,
        (_C.IVR, _CT.HANGUP): _C.ENDED,
        (_C.WAITING, _CT.OFFER): _C.OFFERED,
        (_C.WAITING, _CT.HANGUP): _C.ENDED,
        (_C.OFFERED, _CT.ANSWER): _C.CONNECTED,
        (_C.OFFERED, _CT.OFFER_FAILED): _C.WAITING,
        (_C.OFFERED, _CT.HANGUP): _C.ENDED,
        (_C.CONNECTED, _CT.HANGUP): _C.ENDED,
    },
)


class Outcome(Enum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    IVR = "ivr"  # ended in the IVR (self-service, caller hung up, flow hung up)
    FALLBACK = "fallback"  # waited the queue's maximum: callback/voicemail/SMS/message


# ---------------------------------------------------------------------- events
#
# Events, actions and records are plain slotted dataclasses, treated as
# immutable values by convention: nothing mutates one after it is built.
# They are not ``frozen`` because building a frozen dataclass costs several
# microseconds (each field goes through ``object.__setattr__``) and the core
# builds about ten per call (the virtual simulator: +40 % calls per second).


@dataclass(init=False)
class CallStarted:
    """A caller reached the engine (the hotline AGI started)."""

    call_id: str
    caller: str
    caller_name: str = ""
    channel: str = ""
    server: str = ""

    def __init__(self, call_id: str, caller: str, caller_name: str = "", channel: str = "",
                 server: str = "") -> None:
        self.call_id = call_id
        self.caller = caller
        self.caller_name = caller_name
        self.channel = channel
        self.server = server


@dataclass(init=False)
class CallQueued:
    """The IVR handed the call to a queue."""

    call_id: str
    queue: str
    ivr_path: tuple[str, ...] = ()
    priority: int = 0
    attributes: tuple[tuple[str, str], ...] = ()

    def __init__(self, call_id: str, queue: str, ivr_path: tuple[str, ...] = (), priority: int = 0,
                 attributes: tuple[tuple[str, str], ...] = ()) -> None:
        self.call_id = call_id
        self.queue = queue
        self.ivr_path = ivr_path
        self.priority = priority
        self.attributes = attributes


@dataclass(init=False)
class CallRestored:
    """A call in progress that an earlier engine process accepted, found
    again at start-up (its channel on the PBX, its row in the database):
    put back as it was, so its record is still written once, by us.

    - ``queue`` None: still in the IVR (its flow starts again; the record
      keeps ``started_at``);
    - ``agent_id`` and ``answered_at``: connected to that agent;
    - ``agent_id`` and no ``answered_at``: that agent's phone is ringing for
      it, under offer ``offer_id`` (the id the dialplan will name);
    - else waiting at its original place (``queued_at``, ``priority``).

    ``offer_id`` is also the call's last offer: later offers get higher ids,
    so a late result of an earlier process's offer is never taken for one
    of ours.  ``reroute``: ``queue`` and ``priority`` are what the IVR asked
    for (read back from the channel), routed again as ``CallQueued`` does."""

    call_id: str
    caller: str
    caller_name: str
    channel: str
    server: str
    started_at: float
    queue: str | None
    first_queue: str | None
    queued_at: float | None
    priority: int
    attributes: tuple[tuple[str, str], ...]
    ivr_path: tuple[str, ...]
    offers: int
    offer_id: int
    agent_id: str | None
    answered_at: float | None
    reroute: bool
    #: the file its recording goes to ("" = none): a connected call's, or
    #: the ringing offer's (recorded if that offer is answered)
    recording: str

    def __init__(self, call_id: str, caller: str, caller_name: str = "", channel: str = "",
                 server: str = "", started_at: float = 0.0, *, queue: str | None = None,
                 first_queue: str | None = None, queued_at: float | None = None,
                 priority: int = 0, attributes: tuple[tuple[str, str], ...] = (),
                 ivr_path: tuple[str, ...] = (), offers: int = 0, offer_id: int = 0,
                 agent_id: str | None = None, answered_at: float | None = None,
                 reroute: bool = False, recording: str = "") -> None:
        self.call_id = call_id
        self.caller = caller
        self.caller_name = caller_name
        self.channel = channel
        self.server = server
        self.started_at = started_at
        self.queue = queue
        self.first_queue = first_queue
        self.queued_at = queued_at
        self.priority = priority
        self.attributes = attributes
        self.ivr_path = ivr_path
        self.offers = offers
        self.offer_id = offer_id
        self.agent_id = agent_id
        self.answered_at = answered_at
        self.reroute = reroute
        self.recording = recording


@dataclass(init=False)
class IvrEnded:
    """The call ended inside the IVR (flow hung up, or the caller did)."""

    call_id: str
    ivr_path: tuple[str, ...] = ()
    reason: str = "hangup"

    def __init__(self, call_id: str, ivr_path: tuple[str, ...] = (),
                 reason: str = "hangup") -> None:
        self.call_id = call_id
        self.ivr_path = ivr_path
        self.reason = reason


@dataclass(init=False)
class CallerGone:
    """The caller hung up: the one caller hang-up event, however it was
    learnt (the engine: the AGI session saw the hang-up, an AMI ``Hangup``,
    a resync after a reconnect; the virtual simulator: the caller's patience
    ran out).  The sender need not know the call's state.

    The core picks the outcome from the call's state: in the IVR the call
    ends there (``ivr_path``, as ``IvrEnded`` with reason ``caller-hangup``);
    connected, the conversation ends (by the caller); waiting or ringing,
    the call is abandoned (the ringing agent released).  A call that has
    already ended is left alone: two sources may report the same hang-up."""

    call_id: str
    cause: int = 16
    ivr_path: tuple[str, ...] = ()

    def __init__(self, call_id: str, cause: int = 16, ivr_path: tuple[str, ...] = ()) -> None:
        self.call_id = call_id
        self.cause = cause
        self.ivr_path = ivr_path


@dataclass(init=False)
class AgentHungUp:
    """The agent's channel of a call is gone.  A connected conversation ends
    (by the agent); in any other state it changes nothing (a ring that ends
    unanswered is reported by its offer's result, ``OfferFailed``)."""

    call_id: str

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


@dataclass(init=False)
class OfferAnswered:
    """The agent answered the offer; ``at``: when, if it was learnt later
    (an answer the engine missed while AMI was down); else now."""

    call_id: str
    offer_id: int
    at: float | None = None

    def __init__(self, call_id: str, offer_id: int, at: float | None = None) -> None:
        self.call_id = call_id
        self.offer_id = offer_id
        self.at = at


@dataclass(init=False)
class OfferFailed:
    """The offer did not connect; ``reason`` e.g. NOANSWER, BUSY, CHANUNAVAIL, ERROR.

    A result for an offer that is no longer the call's live one (the caller
    left, the offer was answered or already failed, a later offer replaced
    it) changes nothing: the engine may report one failure twice (AMI
    ``DialEnd`` and the dialplan's ``requeue``) and leaves that to the core."""

    call_id: str
    offer_id: int
    reason: str
    #: False when the offer failed through no fault of the agent (e.g. the
    #: redirect was refused): the agent goes back to ready, not paused.
    agent_fault: bool = True

    def __init__(self, call_id: str, offer_id: int, reason: str, agent_fault: bool = True) -> None:
        self.call_id = call_id
        self.offer_id = offer_id
        self.reason = reason
        self.agent_fault = agent_fault


@dataclass(init=False)
class ConversationEnded:
    """Either party of a connected call hung up.  ``wrap_up_s``: the
    agent's wrap-up after this call (None, NaN or infinite:
    ``CoreConfig.wrap_up_s``; below 0: none)."""

    call_id: str
    by: str = "caller"  # "caller" | "agent"
    wrap_up_s: float | None = None

    def __init__(self, call_id: str, by: str = "caller", wrap_up_s: float | None = None) -> None:
        self.call_id = call_id
        self.by = by
        self.wrap_up_s = wrap_up_s


@dataclass
class AgentLogin:
    agent_id: str
    ready: bool = True


@dataclass
class AgentLogout:
    """Log the agent out; one ringing or on a call is logged out as soon as
    that call ends (``Agent.logout_after_call``; an ``AgentLogin`` before then
    cancels it)."""

    agent_id: str


@dataclass
class AgentReady:
    """Make the agent ready; one in wrap-up ends it early (any pause pending
    from its call taken back); one ringing or on a call with a pause pending
    (``Agent.pause_after_call``) has that pause cancelled instead."""

    agent_id: str


@dataclass
class AgentPause:
    """Pause the agent (``reason`` "" = "paused").  One ringing or on a call
    is paused as soon as it would otherwise become ready again (after the
    call's wrap-up; at once if the offer fails or the caller leaves while it
    rings): ``Agent.pause_after_call``; an ``AgentReady`` or a logout before
    then cancels it."""

    agent_id: str
    reason: str = ""


@dataclass
class AgentProfileChanged:
    """A new or edited agent profile (skills, dialects...)."""

    profile: AgentProfile


@dataclass
class CallPriorityChanged:
    call_id: str
    priority: int


@dataclass(init=False)
class TimerFired:
    key: tuple[str, str]

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key


Event = (
    CallStarted | CallRestored | CallQueued | IvrEnded | CallerGone | AgentHungUp
    | OfferAnswered | OfferFailed | ConversationEnded | AgentLogin | AgentLogout | AgentReady
    | AgentPause | TimerFired | AgentProfileChanged | CallPriorityChanged
)

# --------------------------------------------------------------------- actions


@dataclass(init=False)
class ConnectCall:
    """Ring ``extension`` and connect the waiting caller to it.
    ``recording``: the file the conversation is recorded into if the agent
    answers this offer ("" = none; the dialplan's ``[acd-answered]`` runs
    MixMonitor, docs/recordings.md)."""

    call_id: str
    offer_id: int
    agent_id: str
    extension: str
    channel: str
    server: str
    ring_timeout_s: float
    recording: str

    def __init__(self, call_id: str, offer_id: int, agent_id: str, extension: str, channel: str,
                 server: str, ring_timeout_s: float, recording: str = "") -> None:
        self.call_id = call_id
        self.offer_id = offer_id
        self.agent_id = agent_id
        self.extension = extension
        self.channel = channel
        self.server = server
        self.ring_timeout_s = ring_timeout_s
        self.recording = recording


@dataclass(init=False)
class StartTimer:
    key: tuple[str, str]
    at: float

    def __init__(self, key: tuple[str, str], at: float) -> None:
        self.key = key
        self.at = at


@dataclass(init=False)
class CancelTimer:
    key: tuple[str, str]

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key


@dataclass(init=False)
class CallRecord:
    """One per call, written when the call ends."""

    call_id: str
    caller: str
    caller_name: str
    started_at: float
    ended_at: float
    outcome: Outcome
    ivr_path: tuple[str, ...]
    queue: str | None
    queued_at: float | None
    wait_s: float | None
    agent_id: str | None
    answered_at: float | None
    talk_s: float | None
    offers: int
    server: str
    customer_class: str = ""
    priority: int = 0
    #: the queue the call was first put in, when it overflowed elsewhere
    first_queue: str | None = None
    #: how a call that ended in the IVR ended (``IvrEnded.reason``: hangup,
    #: caller-hangup, transfer:NUMBER, voicemail ...); "" for a queued call
    ivr_end: str = ""
    #: the file its conversation was recorded to ("" = not recorded)
    recording: str = ""

    def __init__(self, call_id: str, caller: str, caller_name: str, started_at: float,
                 ended_at: float, outcome: Outcome, ivr_path: tuple[str, ...], queue: str | None,
                 queued_at: float | None, wait_s: float | None, agent_id: str | None,
                 answered_at: float | None, talk_s: float | None, offers: int, server: str,
                 customer_class: str = "", priority: int = 0,
                 first_queue: str | None = None, ivr_end: str = "",
                 recording: str = "") -> None:
        self.call_id = call_id
        self.caller = caller
        self.caller_name = caller_name
        self.started_at = started_at
        self.ended_at = ended_at
        self.outcome = outcome
        self.ivr_path = ivr_path
        self.queue = queue
        self.queued_at = queued_at
        self.wait_s = wait_s
        self.agent_id = agent_id
        self.answered_at = answered_at
        self.talk_s = talk_s
        self.offers = offers
        self.server = server
        self.customer_class = customer_class
        self.priority = priority
        self.first_queue = first_queue
        self.ivr_end = ivr_end
        self.recording = recording


@dataclass(init=False)
class WriteCallRecord:
    record: CallRecord

    def __init__(self, record: CallRecord) -> None:
        self.record = record


@dataclass(init=False)
class AgentStateChanged:
    """Published for wallboards and the CLI."""

    agent_id: str
    old: AgentState
    new: AgentState
    at: float
    reason: str = ""

    def __init__(self, agent_id: str, old: AgentState, new: AgentState, at: float,
                 reason: str = "") -> None:
        self.agent_id = agent_id
        self.old = old
        self.new = new
        self.at = at
        self.reason = reason


@dataclass
class FallbackCall:
    """The call waited its queue's maximum: do ``kind`` (callback,
    voicemail, sms, message) and release it."""

    call_id: str
    kind: str
    queue: str


@dataclass
class Candidate:
    agent_id: str
    score: float
    terms: tuple[tuple[str, float], ...]


@dataclass
class Explanation:
    """Why a call was offered to an agent (``acd explain``)."""

    call_id: str
    offer_id: int
    agent_id: str
    at: float
    queue: str
    customer_class: str
    priority: int
    waited_s: float
    stage: tuple[str, ...]  # escalation steps applied
    reason: str
    candidates: tuple[Candidate, ...]


@dataclass
class RecordExplanation:
    explanation: Explanation


@dataclass
class WaitEstimate:
    """A waiting call's place and expected wait (``ContactCenter.estimate``)."""

    position: int  # 1-based, in its queue's service order
    #: seconds until an agent is expected to take the call; None when no
    #: agent serves it now (all logged out, paused, or none eligible)
    wait_s: float | None
    servers: int  # agents logged in, not paused, eligible for the call
    ahead: float  # calls expected to take one of those agents first (weighted)
    handle_s: float  # the queue's handle-time estimate (ring + talk + wrap-up)


Action = (
    ConnectCall | StartTimer | CancelTimer | WriteCallRecord | AgentStateChanged
    | FallbackCall | RecordExplanation
)


# ------------------------------------------------------------------ configuration


@dataclass
class CoreConfig:
    policy: Policy
    agents: tuple[AgentProfile, ...] = ()
    wrap_up_s: float = 5.0
    #: after a failed offer the agent is paused; back to ready after this many
    #: seconds (None: stays paused until someone sets it ready).
    rona_pause_s: float | None = 30.0
    #: build an Explanation for every offer (`acd explain`); the virtual
    #: simulator turns it off (nobody reads them there)
    explain: bool = True
    #: which calls are recorded if answered, and to which file (None: none)
    recording: RecordingRule | None = None


# --------------------------------------------------------------- recordings

#: characters a call id keeps in a recording's file name (others become "-")
_FILE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def civil_date(ts: float) -> tuple[int, int, int]:
    """(year, month, day) in UTC of epoch seconds ``ts`` (no clock, no
    time zone database: the proleptic Gregorian calendar)."""
    days = int(ts // 86400) + 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


@dataclass(init=False)
class RecordingRule:
    """Which answered calls are recorded (``recordings:`` in acd.yaml) and
    the file each goes to: ``<folder>/<yyyy>/<mm>/<dd>/<call id>.<format>``,
    the date the offer's, in UTC; the call id with any character but
    letters, digits, ``.``, ``_`` and ``-`` as ``-``.

    Decided at each offer (``ConnectCall.recording``): a call is recorded
    when the queue it is offered from is in ``queues`` or its customer
    class in ``classes``; ``all_calls``: every call.  Only an answered
    offer records (the dialplan starts MixMonitor as the agent answers)."""

    folder: str
    file_format: str
    queues: frozenset[str]
    classes: frozenset[str]
    all_calls: bool

    def __init__(self, folder: str, file_format: str = "wav",
                 queues: frozenset[str] = frozenset(), classes: frozenset[str] = frozenset(),
                 all_calls: bool = False) -> None:
        self.folder = folder.rstrip("/") or "/"
        self.file_format = file_format
        self.queues = queues
        self.classes = classes
        self.all_calls = all_calls

    def wants(self, queue: str | None, customer_class: str) -> bool:
        return self.all_calls or (queue is not None and queue in self.queues) \
            or (customer_class != "" and customer_class in self.classes)

    def file(self, call_id: str, at: float) -> str:
        """The file of call ``call_id`` offered at ``at`` (epoch seconds)."""
        year, month, day = civil_date(at)
        name = "".join(ch if ch in _FILE_SAFE else "-" for ch in call_id).lstrip(".") or "call"
        folder = self.folder if self.folder != "/" else ""
        return f"{folder}/{year:04d}/{month:02d}/{day:02d}/{name}.{self.file_format}"
