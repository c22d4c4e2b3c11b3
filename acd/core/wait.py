"""Expected wait: a queue's recent handle times, and when agents free up.

The core (:mod:`acd.core.center`) feeds :class:`HandleTimes` with every
answered call and asks :func:`free_time` how long until the k-th of a
queue's agents is free for a caller.  Plain arithmetic: no clock reads
(every time is given), no I/O.

Handle time here is what one call occupies an agent for: ringing + talk +
wrap-up, from the offer to the agent being ready again.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Final

#: handle times kept per queue: the most recent calls
HANDLE_WINDOW: Final = 50
#: the configured ``handle_time_s`` counts as one call while the queue has
#: no history, fading out linearly over this many real calls
PRIOR_FADE_CALLS: Final = 5
#: the rest of a call in progress is read from the queue's remembered calls
#: once it has this many (before: taken as exponential with the mean)
EMPIRICAL_FROM: Final = 10
#: a call that has lasted longer than every remembered call of its queue is
#: expected to go on for this share of the mean handle time
TAIL_SHARE: Final = 0.25
#: no call in progress is expected to end sooner than this
MIN_RESIDUAL_S: Final = 1.0
#: the expected wait is solved to within this many seconds, or this share of it
SOLVE_S: Final = 0.5
SOLVE_SHARE: Final = 0.01
#: agents alike count as one group: free within the same this many seconds,
#: or on calls of one queue that have lasted within the same this share of
#: its mean handle time (bounds the work with thousands of agents)
GROUP_S: Final = 0.5
GROUP_SHARE: Final = 0.01


class HandleTimes:
    """The handle times of a queue's last :data:`HANDLE_WINDOW` answered
    calls, with the configured value as a prior worth one call that the
    first :data:`PRIOR_FADE_CALLS` real calls overrule."""

    __slots__ = ("_dirty", "_mean", "_prefix", "_sorted", "prior", "rings", "seen", "window")

    def __init__(self, prior: float, size: int = HANDLE_WINDOW) -> None:
        self.prior = prior
        self.window: deque[float] = deque(maxlen=size)
        #: how long the same calls rang before the agent answered
        self.rings: deque[float] = deque(maxlen=size)
        self.seen = 0  # real calls so far
        self._sorted: list[float] = []
        self._prefix: list[float] = [0.0]  # _prefix[i] = sum(_sorted[:i])
        self._dirty = False
        self._mean = -1.0  # cached mean(); -1: to compute

    def add(self, seconds: float, ring: float = 0.0) -> None:
        """One answered call: ``seconds`` it occupied its agent (ringing
        included), ``ring`` of them ringing."""
        self.window.append(max(0.0, seconds))
        self.rings.append(max(0.0, ring))
        self.seen += 1
        self._dirty = True
        self._mean = -1.0

    def ring(self) -> float:
        """The mean time an agent's phone rang before answering (0 with no history)."""
        return sum(self.rings) / len(self.rings) if self.rings else 0.0

    def prior_weight(self) -> float:
        return max(0.0, 1.0 - self.seen / PRIOR_FADE_CALLS)

    def mean(self) -> float:
        """The expected handle time of the queue's next call."""
        if self._mean < 0.0:
            w = self.prior_weight()
            n = len(self.window)
            self._mean = self.prior if n == 0 else (w * self.prior + sum(self.window)) / (w + n)
        return self._mean

    def done_by(self, elapsed: float, t: float) -> tuple[float, float]:
        """For a call that has occupied its agent for ``elapsed`` seconds:
        (the chance it is over within ``t`` more seconds, the expected time
        the agent has been free by then, E[(t - rest)+]).

        From the remembered calls longer than ``elapsed`` (the empirical
        distribution of the rest); while the prior still counts, and for a
        call longer than every remembered one, the rest is taken as
        exponential with the mean handle time (resp. :data:`TAIL_SHARE` of it)."""
        mean = self.mean()
        if len(self.window) >= EMPIRICAL_FROM:
            if self._dirty:
                self._sort()
            srt = self._sorted
            i0 = bisect_right(srt, elapsed)
            longer = len(srt) - i0
            if longer:
                i1 = bisect_right(srt, elapsed + t)
                done = i1 - i0
                free = done * (t + elapsed) - (self._prefix[i1] - self._prefix[i0])
                return done / longer, free / longer
            mean = max(MIN_RESIDUAL_S, TAIL_SHARE * mean)
        p = 1.0 - math.exp(-t / mean) if mean > 0 else 1.0
        return p, max(0.0, t - mean * p)

    def _sort(self) -> None:
        self._sorted = sorted(self.window)
        prefix = [0.0] * (len(self._sorted) + 1)
        for i, h in enumerate(self._sorted):
            prefix[i + 1] = prefix[i] + h
        self._prefix = prefix
        self._dirty = False


class Server:
    """An agent serving a queue, as the wait estimate sees it: free at a
    known time (``times`` None: ready, or in a timed wrap-up), or when the
    call it is on ends (that call's queue's ``times``, ``elapsed`` so far).

    ``start``: it serves the caller only from then on (seconds from now: an
    escalation step makes it eligible).  A busy agent's turns before then
    go to its other work, so only those after count; a ready agent has no
    other work (no call it may take waits), so it is free for the caller at
    ``start``."""

    __slots__ = ("count", "elapsed", "free_at", "ready", "start", "times")

    def __init__(self, times: HandleTimes | None, elapsed: float = 0.0,
                 free_at: float = 0.0, start: float = 0.0, ready: bool = False) -> None:
        self.times = times
        self.elapsed = elapsed
        self.free_at = free_at
        self.start = start
        self.ready = ready
        self.count = 1  # agents alike this one (see grouped())

    def later(self, start: float) -> Server:
        """This server (group), serving the caller from ``start`` seconds on."""
        server = Server(self.times, self.elapsed, self.free_at, start, self.ready)
        server.count = self.count
        return server

    def key(self) -> tuple[int, int, float]:
        times = self.times
        if times is None:
            return (-1 if self.ready else 0), int(self.free_at / GROUP_S), self.start
        return id(times), int(self.elapsed / max(GROUP_S, GROUP_SHARE * times.mean())), \
            self.start

    def done_by(self, t: float) -> tuple[float, float]:
        times = self.times
        if times is None:
            return (1.0, t - self.free_at) if t >= self.free_at else (0.0, 0.0)
        return times.done_by(self.elapsed, t)

    def turns(self, cycle: float, t: float) -> float:
        """Expected free turns for the caller from ``start`` to ``t``."""
        if t < self.start:
            return 0.0
        p, free = self.done_by(t)
        got = p + free / cycle
        if self.start > 0.0:
            p0, free0 = self.done_by(self.start)
            got -= free0 / cycle if self.ready else p0 + free0 / cycle
        return got * self.count


def grouped(servers: list[Server]) -> list[Server]:
    """The servers with those alike merged into one, counted (see
    :data:`GROUP_S`, :data:`GROUP_SHARE`): the first of each group stands
    for it."""
    groups: dict[tuple[int, int, float], Server] = {}
    for server in servers:
        key = server.key()
        first = groups.get(key)
        if first is None:
            groups[key] = server
        else:
            first.count += server.count
    return list(groups.values())


def turns_by(servers: list[Server], cycle: float, t: float) -> float:
    """Expected number of free turns the servers give within ``t`` seconds:
    each frees once when its current call ends, then once per ``cycle``
    (a mean handle time) of the time it has been free by then."""
    total = 0.0
    for server in servers:
        total += server.turns(cycle, t)
    return total


def free_time(servers: list[Server], cycle: float, k: float) -> float:
    """When, in seconds from now, the servers are expected to have given
    ``k`` free turns (``k`` >= 1, fractional: a weighted count of calls
    ahead, plus one): the time at which :func:`turns_by` reaches ``k``.
    Exact for exponential handle times (k x cycle / servers when all are
    busy); with known free times, the k-th of them while k is at most the
    number of servers, then the turns to come spread evenly (a fluid
    count: handle times vary)."""
    if not servers:
        raise ValueError("free_time: no servers")
    cycle = max(cycle, MIN_RESIDUAL_S)
    k = max(1.0, k)
    lo, hi = 0.0, max(1.0, k * cycle / sum(s.count for s in servers))
    for _ in range(64):
        if turns_by(servers, cycle, hi) >= k:
            break
        lo, hi = hi, hi * 2.0
    while hi - lo > max(SOLVE_S, SOLVE_SHARE * lo):
        mid = (lo + hi) / 2.0
        if turns_by(servers, cycle, mid) >= k:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2.0
