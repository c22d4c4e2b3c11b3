"""The callers of a scenario, drawn from seeded random streams.

The virtual simulator pulls them one at a time as its clock reaches each
arrival; the live simulator draws the whole plan before it starts.  Both take
them from :func:`draw_calls`, so the same seed gives the same callers, keys,
handle times and patience in both.

One stream per purpose (``"<seed>:arrivals"``, ``":callers"``, ``":ivr"``,
``":handle"``, ``":patience"``; ``":wrap"`` and ``":priority"`` only when a
scenario draws wrap-ups or priorities): a change in how one is used leaves the others
alone.  Arrivals are a piecewise-constant-rate Poisson process (exponential
gaps, restarted at each interval boundary: memoryless, so exact).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from acd.loadsim.ivr_walk import walk
from acd.loadsim.model import Dist, Scenario, TraceCall, day_start


@dataclass(init=False)
class DrawnCall:
    index: int  # 1-based arrival number
    arrival_s: float  # simulated seconds from the start
    number: str
    attributes: tuple[tuple[str, str], ...]
    queue: str | None  # None: the call ends in the IVR
    priority: int
    path: tuple[str, ...]  # the IVR path
    script: tuple[str, ...]  # the caller's key script (IVR scenarios)
    handle_s: float
    patience_s: float | None  # None: never hangs up
    wrap_s: float | None  # the agent's wrap-up after this call; None: the scenario's fixed one

    def __init__(self, index: int, arrival_s: float, number: str,
                 attributes: tuple[tuple[str, str], ...], queue: str | None, priority: int,
                 path: tuple[str, ...], script: tuple[str, ...], handle_s: float,
                 patience_s: float | None, wrap_s: float | None = None) -> None:
        self.index = index
        self.arrival_s = arrival_s
        self.number = number
        self.attributes = attributes
        self.queue = queue
        self.priority = priority
        self.path = path
        self.script = script
        self.handle_s = handle_s
        self.patience_s = patience_s
        self.wrap_s = wrap_s


def stream(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


class _Exponential:
    """Draws ``rng.expovariate(1 / mean)``, bit for bit (the same expression as
    ``random.expovariate``), without a Python-level call per draw when
    compiled: the most common distribution by far."""

    __slots__ = ("rate", "uniform")

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.uniform = rng.random
        self.rate = rate

    def __call__(self) -> float:
        return -math.log(1.0 - self.uniform()) / self.rate


def _draw(d: Dist, rng: random.Random) -> Callable[[], float]:
    return _Exponential(rng, 1.0 / d.mean) if d.kind == "exponential" else d.sampler(rng)


#: a function drawing one duration (seconds)
Sampler = Callable[[], float]


def sampler(d: Dist, rng: random.Random) -> Sampler:
    """A function drawing from ``d`` with ``rng``."""
    return _draw(d, rng)


def _sampler(d: Dist | None, rng: random.Random) -> Callable[[], float] | None:
    return _draw(d, rng) if d is not None else None


def _pick(pairs: Sequence[tuple[Any, float]], u: float) -> Any:
    """The value whose cumulative probability first exceeds ``u``."""
    acc = 0.0
    for value, p in pairs:
        acc += p
        if u < acc:
            return value
    return pairs[-1][0]


def draw_calls(sc: Scenario, seed: int, max_calls: int | None,
               trace: Sequence[TraceCall] | None = None) -> Iterator[DrawnCall]:
    """The scenario's callers in order of arrival (a trace: as given), up to
    ``max_calls`` (None: until the arrivals end)."""
    if trace is not None:
        n = len(trace) if max_calls is None else min(max_calls, len(trace))
        # a call without its own wrap-up: the scenario's (drawn, or the fixed one)
        wrap_rng = stream(seed, "wrap")
        fallback = _sampler(sc.wrap_up, wrap_rng)
        queue_wrap = {q: _sampler(spec.wrap_up, wrap_rng) for q, spec in sc.queues.items()
                      if spec.wrap_up is not None}
        for i, tc in enumerate(trace[:n]):
            own = tc.wrap_s
            if own is None:
                qs = queue_wrap.get(tc.queue, fallback)
                own = qs() if qs is not None else None
            yield DrawnCall(i + 1, tc.arrival_s, tc.number, tc.attributes, tc.queue,
                            tc.priority, (), (), tc.handle_s, tc.patience_s, own)
        return
    if max_calls is not None and max_calls <= 0:
        return
    rng_arr, rng_caller, rng_ivr = (stream(seed, n) for n in ("arrivals", "callers", "ivr"))
    rng_handle, rng_patience = stream(seed, "handle"), stream(seed, "patience")
    uniform = rng_arr.random

    default_handle = _draw(sc.handle, rng_handle)
    default_patience = _sampler(sc.patience, rng_patience)
    # requested queue -> (handle sampler, patience sampler or None)
    by_queue: dict[str, tuple[Callable[[], float], Callable[[], float] | None]] = {}
    for q, spec in sc.queues.items():
        by_queue[q] = (_sampler(spec.handle, rng_handle) or default_handle,
                       _sampler(spec.patience, rng_patience) if spec.patience_set
                       else default_patience)
    mix = sc.callers
    # wrap-ups per call (only when drawn: a stream of their own)
    wrap_rng = stream(seed, "wrap")
    default_wrap = _sampler(sc.wrap_up, wrap_rng)
    if default_wrap is None and sc.wraps():
        fixed = sc.wrap_up_s
        default_wrap = lambda: fixed  # noqa: E731
    draw_wraps = sc.wraps()
    wrap_by_queue: dict[str, Callable[[], float] | None] = {
        q: _sampler(spec.wrap_up, wrap_rng) or default_wrap for q, spec in sc.queues.items()
    } if draw_wraps else {}
    priorities = mix.priorities
    prio_draw = stream(seed, "priority").random
    queue_mix = sc.queue_mix
    vip_handle = _sampler(mix.vip_handle, rng_handle)
    vip_patience = _sampler(mix.vip_patience, rng_patience)
    queue_shares = tuple((q, s.share) for q, s in sc.queues.items() if s.share > 0)
    ivr = sc.ivr
    ivr_midnight = day_start(sc.day, getattr(ivr.flow, "timezone", None) if ivr else None)
    profiles: dict[str, tuple[tuple[str, str], ...]] = {}
    pool, prefix = mix.pool, mix.number_prefix
    has_mix = mix.vip_share > 0 or bool(mix.dialects) or bool(mix.segments)

    def caller_attrs() -> tuple[tuple[str, str], ...]:
        rnd = rng_caller.random
        attrs: list[tuple[str, str]] = []
        if mix.vip_share > 0 and rnd() < mix.vip_share:
            attrs.append(("vip_level", str(_pick(mix.vip_levels, rnd()))))
        if mix.dialects:
            attrs.append(("dialect", _pick(mix.dialects, rnd())))
        if mix.segments:
            attrs.append(("segment", _pick(mix.segments, rnd())))
        return tuple(attrs)

    rates, interval, open_ended = sc.rates, sc.interval_s, sc.open_ended
    n_rates = len(rates)
    horizon = sc.day_end_s
    arr_end = horizon if horizon is not None else math.inf

    def next_arrival(t: float) -> float | None:
        while True:
            if t >= arr_end:
                return None
            if open_ended:
                return t - math.log(1.0 - uniform()) / rates[0]  # = expovariate
            i = int(t // interval)
            if i >= n_rates:
                return None
            rate = rates[i]
            end = (i + 1) * interval
            if rate > 0:
                t2 = t - math.log(1.0 - uniform()) / rate  # = rng.expovariate(rate)
                if t2 < end:
                    return t2 if t2 < arr_end else None
            t = end

    t_next = next_arrival(0.0)
    index = 0
    while t_next is not None:
        t = t_next
        index += 1
        if pool is not None:
            number = f"{prefix}{rng_caller.randrange(pool):08d}"
            got = profiles.get(number)
            if got is None:
                got = profiles[number] = caller_attrs() if has_mix else ()
            attrs = got
        else:
            number = f"{prefix}{index:08d}"
            attrs = caller_attrs() if has_mix else ()
        queue: str | None
        priority = 0
        path: tuple[str, ...] = ()
        script: tuple[str, ...] = ()
        if ivr is not None:
            w = walk(ivr.flow, ivr.keys, rng_ivr, dict(attrs),
                     ivr_midnight + dt.timedelta(seconds=sc.start_s + t))
            queue, priority, path, script = w.queue, w.priority, w.path, w.script
            if w.attributes:
                attrs = tuple({**dict(attrs), **dict(w.attributes)}.items())
        elif queue_mix:  # a forecast: the interval's own shares
            shares = queue_mix[min(int(t // interval), len(queue_mix) - 1)] or queue_shares
            queue = _pick(shares, rng_arr.random()) if len(shares) > 1 else shares[0][0]
        else:
            queue = _pick(queue_shares, rng_arr.random()) \
                if len(queue_shares) > 1 else queue_shares[0][0]
        if priorities and not priority:
            priority = _pick(priorities, prio_draw())
        hs, ps = by_queue.get(queue or "", (default_handle, default_patience))
        vip = bool(attrs) and attrs[0][0] == "vip_level"
        hold = (vip_handle if vip and vip_handle is not None else hs)()
        if vip and mix.vip_patience_set:
            ps = vip_patience
        patience = ps() if ps is not None else None
        wrap: float | None = None
        if draw_wraps:
            ws = wrap_by_queue.get(queue or "", default_wrap)
            wrap = ws() if ws is not None else None
        yield DrawnCall(index, t, number, attrs, queue, priority, path, script, hold, patience,
                        wrap)
        if max_calls is not None and index >= max_calls:
            return
        t_next = next_arrival(t)
