"""What the control API needs from the engine, and nothing more.

The engine passes itself (``ControlApi(engine)``) and satisfies
:class:`ControlledEngine` by its shape; the API never imports the engine's
package, so the two do not import each other.  Every change goes through
:meth:`ControlledEngine.submit`, which returns the core's refusal (answered
409 with the core's own reason) or None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from acd.adapters.profiles_store import ProfileStore
from acd.adapters.sms_store import SmsStore
from acd.core.center import Agent, Call
from acd.core.errors import CoreError
from acd.core.model import Event
from acd.core.policy import Policy, QueuePolicy
from acd.core.stats import Statistics
from acd.ivr.nodes import Flow


class CenterView(Protocol):
    """The core's read side (``ContactCenter`` has this shape)."""

    @property
    def policy(self) -> Policy: ...

    def agent(self, agent_id: str) -> Agent:
        """Raises ``UnknownSubject`` for an agent the core does not know."""
        ...

    def agents(self) -> Iterator[Agent]: ...

    def call(self, call_id: str) -> Call | None: ...

    def calls(self) -> Iterator[Call]: ...

    def queue_names(self) -> list[str]: ...

    def queue_policy(self, queue: str) -> QueuePolicy: ...

    def waiting(self, queue: str) -> list[str]:
        """Waiting call ids of a queue in service order."""
        ...

    def position(self, call_id: str) -> tuple[int, float] | None:
        """(position, expected wait in seconds) of a waiting call."""
        ...

    def staffed(self, skill: str) -> int: ...


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
    def profiles(self) -> ProfileStore:
        """Where an edited agent profile is stored before it goes live."""
        ...

    @property
    def sms_store(self) -> SmsStore | None:
        """None when SMS diversion is off."""
        ...

    @property
    def sms_app_url(self) -> str | None: ...

    @property
    def pbx_connected(self) -> bool: ...

    def submit(self, event: Event) -> CoreError | None:
        """Feed ``event`` to the core; its refusal (nothing changed), or None."""
        ...
