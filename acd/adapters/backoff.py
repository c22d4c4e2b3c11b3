"""Reconnect backoff: the one schedule of waits between attempts.

Used by the AMI client, the MQTT and SMPP SMS transports and the call-record
writer.  The wait starts at ``initial``, doubles after each failed attempt
and stops growing at ``maximum``; a success (or a session that held) starts
it over.  There is no jitter: none of these loops had any, and each talks to
one peer, so the waits stay exactly what they were.

Pure: it only counts; the caller sleeps (and logs the wait it is about to
take, which is :attr:`Backoff.delay`).
"""

from __future__ import annotations


class Backoff:
    """Exponential waits with a cap: ``initial``, ``2 * initial``, … ``maximum``."""

    __slots__ = ("_delay", "factor", "initial", "maximum")

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if initial < 0 or maximum < 0:
            raise ValueError(f"backoff waits must not be negative: {initial}, {maximum}")
        if factor < 1:
            raise ValueError(f"backoff factor must be at least 1: {factor}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._delay = initial

    @property
    def delay(self) -> float:
        """The wait before the next attempt, in seconds."""
        return self._delay

    def grow(self) -> None:
        """An attempt failed: the next wait is ``factor`` times longer, up to ``maximum``."""
        self._delay = min(self._delay * self.factor, self.maximum)

    def reset(self) -> None:
        """An attempt succeeded: the next wait is ``initial`` again."""
        self._delay = self.initial
