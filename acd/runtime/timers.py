"""The engine's timers behind one seam.

The core asks for timers in its own time (``StartTimer(key, at)``,
``CancelTimer(key)``); a :class:`Timers` calls ``fire(key)`` when that time
comes, and the engine feeds ``TimerFired(key)`` back.  Starting a key that
is armed replaces it; cancelling a key that is not armed does nothing.

* :class:`LoopTimers`: the asyncio loop's ``call_later``.  With ``speed``
  above 1 the engine's clock runs that many times faster than the loop's (the
  live simulator), so a timer fires after ``delay / speed`` real seconds.
* :class:`VirtualTimers`: a clock of its own that moves only when told
  (``advance``); the due timers fire in time order, each with the clock set
  to its time.  For tests: pass it as both ``clock`` and ``timers``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Protocol

TimerKey = tuple[str, str]
Fire = Callable[[TimerKey], None]


class Timers(Protocol):
    """Arms and cancels the core's timers."""

    def start(self, key: TimerKey, at: float, fire: Fire) -> None:
        """Call ``fire(key)`` at ``at`` (the engine's clock), replacing an armed ``key``."""

    def cancel(self, key: TimerKey) -> None:
        """Disarm ``key`` (a no-op when it is not armed)."""

    def cancel_all(self) -> None:
        """Disarm every timer (the engine is stopping)."""

    def armed(self) -> int:
        """How many timers are armed."""


class LoopTimers:
    """Timers on the running asyncio loop; ``clock`` is the engine's."""

    def __init__(self, clock: Callable[[], float], speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self._clock = clock
        self._speed = speed
        self._handles: dict[TimerKey, asyncio.TimerHandle] = {}

    def start(self, key: TimerKey, at: float, fire: Fire) -> None:
        self.cancel(key)
        delay = max(0.0, at - self._clock()) / self._speed
        self._handles[key] = asyncio.get_running_loop().call_later(
            delay, self._fire, key, fire)

    def _fire(self, key: TimerKey, fire: Fire) -> None:
        self._handles.pop(key, None)
        fire(key)

    def cancel(self, key: TimerKey) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def armed(self) -> int:
        return len(self._handles)


class VirtualTimers:
    """A clock that moves only when told, and its timers.

    ``vt()`` is the time; ``advance(seconds)`` moves it, firing every timer
    due by then in order of time (ties: in the order they were started);
    a timer started or cancelled by a ``fire`` counts at once."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._seq = 0
        self._heap: list[tuple[float, int, TimerKey]] = []
        self._armed: dict[TimerKey, tuple[int, Fire]] = {}

    def __call__(self) -> float:
        return self.now

    def start(self, key: TimerKey, at: float, fire: Fire) -> None:
        self._seq += 1
        self._armed[key] = (self._seq, fire)
        heapq.heappush(self._heap, (max(at, self.now), self._seq, key))

    def cancel(self, key: TimerKey) -> None:
        self._armed.pop(key, None)

    def cancel_all(self) -> None:
        self._armed.clear()
        self._heap.clear()

    def armed(self) -> int:
        return len(self._armed)

    def due(self, key: TimerKey) -> float | None:
        """When ``key`` fires (None: not armed)."""
        armed = self._armed.get(key)
        if armed is None:
            return None
        return next(at for at, seq, k in self._heap if k == key and seq == armed[0])

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` on; returns how many timers fired."""
        if seconds < 0:
            raise ValueError("time does not go back")
        return self.run_until(self.now + seconds)

    def run_until(self, t: float) -> int:
        """Move the clock to ``t``, firing what is due on the way."""
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= t:
            at, seq, key = heapq.heappop(heap)
            armed = self._armed.get(key)
            if armed is None or armed[0] != seq:
                continue  # cancelled or replaced
            del self._armed[key]
            self.now = max(self.now, at)
            armed[1](key)
            fired += 1
        self.now = max(self.now, t)
        return fired
