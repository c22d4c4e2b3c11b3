"""What the control API needs from the engine, and nothing more.

The engine passes itself (``ControlApi(engine)``) and satisfies
:class:`ControlledEngine` by its shape; the API never imports the engine's
package, so the two do not import each other.  Every change goes through
:meth:`ControlledEngine.submit`, which returns the core's refusal (answered
409 with the core's own reason) or None.

What the API reads is read-only here: agents and calls as
:class:`AgentView` and :class:`CallView` (the core's ``Agent`` and ``Call``
have these shapes), the stores as the few methods it calls
(:class:`AgentProfileStore`, :class:`SmsOutboxStore`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from acd.core.errors import CoreError
from acd.core.model import Action, AgentState, CallState, Event
from acd.core.policy import Policy, QueuePolicy, Stage
from acd.core.profiles import AgentProfile
from acd.core.stats import Statistics
from acd.ivr.nodes import Flow


class AgentView(Protocol):
    """An agent as the API reads it (the core's ``Agent`` has this shape)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def profile(self) -> AgentProfile: ...
    @property
    def state(self) -> AgentState: ...
    @property
    def since(self) -> float:
        """When it entered its state (0: never)."""
        ...
    @property
    def reason(self) -> str: ...
    @property
    def call_id(self) -> str | None: ...
    @property
    def calls_handled(self) -> int: ...
    @property
    def logout_after_call(self) -> bool: ...
    @property
    def pause_after_call(self) -> str | None:
        """The reason of a pause asked for while ringing or on a call, taken
        when that call is over (None: none pending)."""
        ...


class CallView(Protocol):
    """A call as the API reads it (the core's ``Call`` has this shape)."""

    @property
    def call_id(self) -> str: ...
    @property
    def caller(self) -> str: ...
    @property
    def state(self) -> CallState: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def queued_at(self) -> float | None: ...
    @property
    def customer_class(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def stage(self) -> Stage | None:
        """What applies to the call now (its escalation steps done)."""
        ...
    @property
    def attrs(self) -> Mapping[str, str]: ...
    @property
    def agent_id(self) -> str | None:
        """The agent it rings or talks to."""
        ...


class CenterView(Protocol):
    """The core's read side (``ContactCenter`` has this shape)."""

    @property
    def policy(self) -> Policy: ...

    def agent(self, agent_id: str) -> AgentView:
        """Raises ``UnknownSubject`` for an agent the core does not know."""
        ...

    def agents(self) -> Iterator[AgentView]: ...

    def call(self, call_id: str) -> CallView | None: ...

    def calls(self) -> Iterator[CallView]: ...

    def queue_names(self) -> list[str]: ...

    def queue_policy(self, queue: str) -> QueuePolicy: ...

    def waiting(self, queue: str) -> list[str]:
        """Waiting call ids of a queue in service order."""
        ...

    def position(self, call_id: str, now: float | None = None) -> tuple[int, float | None] | None:
        """(position, expected wait in seconds at ``now``; None when no agent
        serves the queue) of a waiting call."""
        ...

    def staffed(self, skill: str) -> int: ...

    def queue_staffing(self) -> dict[str, tuple[int, int]]:
        """queue -> (agents serving it logged in and not paused, those ready)."""
        ...

    def serves(self, agent: str | AgentProfile, queue: str) -> bool:
        """Does the agent (an id or a profile) meet the queue's hard
        requirements, as routing applies them (the caller's own left out)?"""
        ...


class FlowReload(Protocol):
    """The result of a flow reload."""

    @property
    def ok(self) -> bool: ...
    @property
    def changed(self) -> bool: ...
    @property
    def version(self) -> str: ...
    @property
    def problems(self) -> tuple[str, ...]: ...
    @property
    def warnings(self) -> tuple[str, ...]: ...


class FlowSource(Protocol):
    """The engine's IVR flow: the current version, and a reload."""

    @property
    def current(self) -> Flow: ...

    @property
    def loads(self) -> int: ...

    def reload(self) -> FlowReload: ...


class AgentProfileStore(Protocol):
    """Where an edited agent profile is stored before it goes live
    (``acd.adapters.profiles_store.ProfileStore`` has this shape)."""

    async def upsert_agents(self, profiles: Iterable[AgentProfile]) -> tuple[int, int]:
        """Store the profiles: ``(inserted, updated)``.  Raises
        ``ProfileStoreError`` for a profile it cannot store, ``SQLAlchemyError``
        or ``OSError`` when the database cannot be reached."""
        ...


class OutboxEntry(Protocol):
    """One SMS of the outbox as the API shows it."""

    @property
    def id(self) -> int: ...
    @property
    def call_id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def text(self) -> str: ...


class SmsOutboxStore(Protocol):
    """What the SMS endpoints need of the SMS store
    (``acd.adapters.sms_store.SmsStore`` has this shape)."""

    def identity(self, number: str) -> str:
        """``number`` in its one form, as the SMS tables key it."""
        ...

    async def click(self, token: str, now: float) -> str | None:
        """Count a click on an SMS link: the number it was sent to, or None
        for an unknown token."""
        ...

    async def app_login(self, number: str, now: float) -> None: ...

    async def opt_out(self, number: str, source: str, now: float) -> bool:
        """True if the number was not opted out before."""
        ...

    async def opt_in(self, number: str) -> bool:
        """True if the number was opted out."""
        ...

    async def rows(self, state: str | None = None, limit: int = 100) -> Sequence[OutboxEntry]:
        """The outbox, newest first (``state``: only those)."""
        ...


class CountersView(Protocol):
    """The engine's own counters (``EngineCounters`` has this shape)."""

    @property
    def calls_started(self) -> int: ...
    @property
    def calls_finished(self) -> int: ...
    @property
    def errors(self) -> int: ...


class AmiLinkView(Protocol):
    """One AMI link's health (``AmiClient`` has this shape)."""

    @property
    def connected(self) -> bool: ...
    @property
    def reconnects(self) -> int: ...


class ServerView(Protocol):
    """One Asterisk server of the engine (``PbxServer`` has this shape)."""

    @property
    def ami(self) -> AmiLinkView: ...


class AgiServerView(Protocol):
    """The FastAGI server's health (``FastAgiServer`` has this shape)."""

    @property
    def active(self) -> int:
        """Connections open now."""
        ...
    @property
    def rejected(self) -> int:
        """Connections dropped for bad input, since the start."""
        ...


class SmsSenderStatsView(Protocol):
    """The SMS sender's counters since the start (``SenderStats``)."""

    @property
    def sent(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def receipts(self) -> int: ...
    @property
    def opt_outs(self) -> int: ...


class SmsSenderView(Protocol):
    @property
    def stats(self) -> SmsSenderStatsView: ...


#: ``listener(event, actions, now, started_ns)``, called after every core
#: decision (the engine's ``Listener``); it must not block or await
DecisionListener = Callable[[Event, Sequence[Action], float, int], None]


class ControlledEngine(Protocol):
    """The engine as the control API sees it."""

    @property
    def clock(self) -> Callable[[], float]:
        """The engine's clock (epoch seconds)."""
        ...

    @property
    def core(self) -> CenterView: ...

    @property
    def statistics(self) -> Statistics: ...

    @property
    def flows(self) -> FlowSource: ...

    @property
    def profiles(self) -> AgentProfileStore:
        """Where an edited agent profile is stored before it goes live."""
        ...

    @property
    def sms_store(self) -> SmsOutboxStore | None:
        """None when SMS diversion is off."""
        ...

    @property
    def sms_app_url(self) -> str | None: ...

    # what /metrics reads (acd.api.metrics), at each scrape
    @property
    def counters(self) -> CountersView: ...
    @property
    def servers(self) -> Mapping[str, ServerView]:
        """Every Asterisk server by name."""
        ...
    @property
    def agi(self) -> AgiServerView: ...
    @property
    def sms(self) -> SmsSenderView | None:
        """None when SMS diversion is off."""
        ...

    @property
    def pbx_connected(self) -> bool: ...

    @property
    def listeners(self) -> list[DecisionListener]:
        """Parts that follow every decision (the wallboard's change feed adds
        itself while the control listener runs)."""
        ...

    def record_counts(self) -> Mapping[str, int]:
        """The record writer's counters: written, pending, spooled,
        dead-lettered, lost ... (``/health``'s ``records``)."""
        ...

    def submit(self, event: Event) -> CoreError | None:
        """Feed ``event`` to the core; its refusal (nothing changed), or None."""
        ...
