"""The production engine as the live run drives it: its timers in simulated
time (:class:`~acd.runtime.timers.LoopTimers` at the clock's speed: they
fire after ``delay / speed`` real seconds), and its decisions observed
(the engine's ``observer`` hook) for the figures and latencies
(:func:`live_engine`; :class:`LiveObserver`, which also logs agents in and out
at their shift times).  Nothing of the engine is overridden."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from acd.core.fsm import IllegalTransition
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentStateChanged,
    CallQueued,
    ConnectCall,
    Event,
    Outcome,
    WriteCallRecord,
)
from acd.loadsim.figures import Occupancy
from acd.loadsim.sim_clock import SimClock
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from acd.runtime.timers import LoopTimers

__all__ = ["LiveObserver", "live_engine"]


class LiveObserver:
    """The engine side's watch: offers, agent states (occupancy); shifts."""

    def __init__(self, clock: SimClock, occupancy: Occupancy) -> None:
        self.clock = clock
        self.occupancy = occupancy
        #: call id -> monotonic ns of each ConnectCall
        self.connects: dict[str, list[int]] = {}
        #: call id -> monotonic ns of CallQueued, for calls offered in that decision
        self.queued: dict[str, int] = {}
        #: caller number -> the agent of their latest answered call: the world's
        #: record, handed to the engine by the lookup as ``last_agent``
        self.last_agent: dict[str, str] = {}
        self.engine: Engine | None = None

    def on_agent(self, act: AgentStateChanged) -> None:
        self.occupancy.change(act.agent_id, act.new, act.at - self.clock.epoch0)

    def decided(self, event: Event, actions: Sequence[Action], started_ns: int) -> None:
        """The engine's observer: each ConnectCall's time, agent states, the
        calls offered in the very decision that queued them, and the agent
        of each answered call (the run's last-agent record)."""
        queued = type(event) is CallQueued
        for action in actions:
            tp = type(action)
            if tp is ConnectCall:
                assert isinstance(action, ConnectCall)
                self.connects.setdefault(action.call_id, []).append(time.monotonic_ns())
                if queued:
                    assert isinstance(event, CallQueued)
                    if action.call_id == event.call_id:
                        self.queued[event.call_id] = started_ns
            elif tp is AgentStateChanged:
                assert isinstance(action, AgentStateChanged)
                self.on_agent(action)
            elif tp is WriteCallRecord:
                assert isinstance(action, WriteCallRecord)
                rec = action.record
                if rec.outcome is Outcome.ANSWERED and rec.agent_id is not None:
                    self.last_agent[rec.caller] = rec.agent_id

    # --- shifts: the core decides what a shift's start or end means
    def login(self, aid: str) -> None:
        """Logs a logged-out agent in; one asked out at the end of its call
        stays (back-to-back shifts); one already in refuses, which is fine."""
        self._shift(AgentLogin(aid, ready=True))

    def logout(self, aid: str) -> None:
        """Logs the agent out (on a call: when the call ends); one already
        out refuses, which is fine."""
        self._shift(AgentLogout(aid))

    def _shift(self, event: AgentLogin | AgentLogout) -> None:
        eng = self.engine
        assert eng is not None
        refusal = eng.submit(event)
        if refusal is not None and not isinstance(refusal, IllegalTransition):
            raise refusal  # an unknown agent: a bug, not a shift boundary


def live_engine(config: EngineConfig, clock: SimClock, observer: LiveObserver,
                lookup: Callable[[str], Any]) -> Engine:
    """The production engine with a simulated clock: timers fire after
    ``delay / speed`` real seconds; offers and agent states are observed."""
    engine = Engine(config, clock=clock, lookup=lookup,
                    timers=LoopTimers(clock, clock.speed), observer=observer.decided)
    observer.engine = engine
    return engine
