"""The live run's clock: the engine's time in the simulated day, running
``speed`` times faster than the event loop's."""

from __future__ import annotations

import asyncio

__all__ = ["SimClock"]


class SimClock:
    """The engine's clock: epoch seconds of the simulated day, running
    ``speed`` times faster than the event loop's clock."""

    __slots__ = ("epoch0", "loop", "real0", "speed")

    def __init__(self, epoch0: float, speed: float, loop: asyncio.AbstractEventLoop) -> None:
        self.epoch0 = epoch0
        self.speed = speed
        self.loop = loop
        self.real0 = loop.time()

    def __call__(self) -> float:
        return self.epoch0 + (self.loop.time() - self.real0) * self.speed

    def sim(self) -> float:
        """Simulated seconds since the start."""
        return (self.loop.time() - self.real0) * self.speed

    def real_at(self, sim_s: float) -> float:
        """The event loop's time at simulated second ``sim_s``."""
        return self.real0 + sim_s / self.speed
