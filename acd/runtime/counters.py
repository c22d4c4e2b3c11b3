"""The engine's own counters (not call statistics: those are the core's
:class:`~acd.core.stats.Statistics`, ``engine.statistics``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class EngineCounters:
    #: hotline sessions that became calls
    calls_started: int = 0
    #: call records the core wrote (every call ends in exactly one)
    calls_finished: int = 0
    #: calls picked up again through the ``resume`` script (their engine went away)
    calls_resumed: int = 0
    #: calls found at start-up that an earlier engine process had accepted
    calls_restored: int = 0
    #: events the core refused from the engine's own sources (AMI, AGI,
    #: timers), tasks that failed and observer failures; refusals returned to a caller of
    #: ``Engine.submit`` (the control API) are that caller's, not counted
    errors: int = 0
