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


@dataclass(slots=True)
class CallStarted:
    """A caller reached the engine (the hotline AGI started)."""

    call_id: str
    caller: str
    caller_name: str = ""
    channel: str = ""
    server: str = ""


@dataclass(slots=True)
class CallQueued:
    """The IVR handed the call to a queue."""

    call_id: str
    queue: str
    ivr_path: tuple[str, ...] = ()
    priority: int = 0
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class IvrEnded:
    """The call ended inside the IVR (flow hung up, or the caller did)."""

    call_id: str
    ivr_path: tuple[str, ...] = ()
    reason: str = "hangup"


@dataclass(slots=True)
class CallerHungUp:
    """The caller's channel is gone (AMI Hangup, or AGI saw the hangup)."""

    call_id: str
    cause: int = 16


@dataclass(slots=True)
class OfferAnswered:
    call_id: str
    offer_id: int


@dataclass(slots=True)
class OfferFailed:
    """The offer did not connect; ``reason`` e.g. NOANSWER, BUSY, CHANUNAVAIL, ERROR."""

    call_id: str
    offer_id: int
    reason: str
    #: False when the offer failed through no fault of the agent (e.g. the
    #: redirect was refused): the agent goes back to ready, not paused.
    agent_fault: bool = True


@dataclass(slots=True)
class ConversationEnded:
    """Either party of a connected call hung up."""

    call_id: str
    by: str = "caller"  # "caller" | "agent"


@dataclass(slots=True)
class AgentLogin:
    agent_id: str
    ready: bool = True


@dataclass(slots=True)
class AgentLogout:
    """Log the agent out; one ringing or on a call is logged out as soon as
    that call ends (``Agent.logout_after_call``; an ``AgentLogin`` before then
    cancels it)."""

    agent_id: str


@dataclass(slots=True)
class AgentReady:
    agent_id: str


@dataclass(slots=True)
class AgentPause:
    agent_id: str
    reason: str = ""


@dataclass(slots=True)
class AgentProfileChanged:
    """A new or edited agent profile (skills, dialects...)."""

    profile: AgentProfile


@dataclass(slots=True)
class CallPriorityChanged:
    call_id: str
    priority: int


@dataclass(slots=True)
class TimerFired:
    key: tuple[str, str]


Event = (
    CallStarted | CallQueued | IvrEnded | CallerHungUp | OfferAnswered | OfferFailed
    | ConversationEnded | AgentLogin | AgentLogout | AgentReady | AgentPause | TimerFired
    | AgentProfileChanged | CallPriorityChanged
)

# --------------------------------------------------------------------- actions


@dataclass(slots=True)
class ConnectCall:
    """Ring ``extension`` and connect the waiting caller to it."""

    call_id: str
    offer_id: int
    agent_id: str
    extension: str
    channel: str
    server: str
    ring_timeout_s: float


@dataclass(slots=True)
class StartTimer:
    key: tuple[str, str]
    at: float


@dataclass(slots=True)
class CancelTimer:
    key: tuple[str, str]


@dataclass(slots=True)
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


@dataclass(slots=True)
class WriteCallRecord:
    record: CallRecord


@dataclass(slots=True)
class AgentStateChanged:
    """Published for wallboards and the CLI."""

    agent_id: str
    old: AgentState
    new: AgentState
    at: float
    reason: str = ""


@dataclass(slots=True)
class FallbackCall:
    """The call waited its queue's maximum: do ``kind`` (callback,
    voicemail, sms, message) and release it."""

    call_id: str
    kind: str
    queue: str


@dataclass(slots=True)
class Candidate:
    agent_id: str
    score: float
    terms: tuple[tuple[str, float], ...]


@dataclass(slots=True)
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


@dataclass(slots=True)
class RecordExplanation:
    explanation: Explanation


Action = (
    ConnectCall | StartTimer | CancelTimer | WriteCallRecord | AgentStateChanged
    | FallbackCall | RecordExplanation
)


# ------------------------------------------------------------------ configuration


@dataclass(slots=True)
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
