"""The load simulator's scenario model: what a scenario file or a trace
becomes (:class:`Scenario` and its parts), the errors of the load
simulator, and the simulated day's clock (time of day, the day's date).

Nothing here reads a file: :mod:`acd.loadsim.scenario` reads the YAML,
:mod:`acd.loadsim.trace` the CSV.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.core.policy import Policy
from acd.core.profiles import AgentProfile
from acd.loaders.yamlpos import YamlError

DAY_S = 86400.0

__all__ = [
    "WEEKDAYS",
    "AgentSpec",
    "CallerPopulation",
    "Dist",
    "IvrSpec",
    "NotReadySpec",
    "QueueSpec",
    "Scenario",
    "ScenarioError",
    "SimError",
    "TraceCall",
    "TraceError",
    "clock",
    "day_start",
    "parse_tod",
    "routed_queues",
]


class ScenarioError(YamlError):
    """A scenario file is wrong; the message names file, line, column and problem."""


class TraceError(ScenarioError):
    """A trace CSV is wrong: ``file:line: column: problem``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(file, line, 0, message)
        self.args = (f"{file}:{line}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class SimError(Exception):
    """The scenario cannot be simulated (e.g. the IVR names an unknown queue)."""


@dataclass(frozen=True, slots=True)
class Dist:
    """A duration distribution: exponential (mean), lognormal (mean, sd) or fixed."""

    kind: str
    mean: float
    sd: float = 0.0

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function drawing one value (seconds) from ``rng``."""
        if self.kind == "fixed":
            value = self.mean
            return lambda: value
        if self.kind == "lognormal":
            sigma2 = math.log(1.0 + (self.sd / self.mean) ** 2)
            mu, sigma = math.log(self.mean) - sigma2 / 2.0, math.sqrt(sigma2)
            lognorm = rng.lognormvariate
            return lambda: lognorm(mu, sigma)
        rate = 1.0 / self.mean
        expo = rng.expovariate
        return lambda: expo(rate)

    def describe(self) -> str:
        if self.kind == "lognormal":
            return f"lognormal mean {self.mean:g} s, sd {self.sd:g} s"
        return f"{self.kind} {self.mean:g} s" if self.kind == "fixed" \
            else f"exponential mean {self.mean:g} s"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    share: float = 0.0
    handle: Dist | None = None  # None: the scenario's default
    patience: Dist | None = None
    patience_set: bool = False  # True: ``patience`` overrides (None = never hangs up)
    sl_seconds: float | None = None  # None: the scenario's default
    ring_timeout_s: float = 20.0  # FIFO mode only (a routing file has its own)
    wrap_up: Dist | None = None  # None: the scenario's wrap-up


@dataclass(frozen=True, slots=True)
class CallerPopulation:
    """Who calls in a scenario (its ``callers:`` section): repeat callers, VIP
    share and levels, dialects, segments, number prefix."""

    pool: int | None = None  # None: every caller is new
    vip_share: float = 0.0
    vip_levels: tuple[tuple[int, float], ...] = ((1, 1.0),)
    vip_handle: Dist | None = None
    vip_patience: Dist | None = None
    vip_patience_set: bool = False
    dialects: tuple[tuple[str, float], ...] = ()
    segments: tuple[tuple[str, float], ...] = ()
    number_prefix: str = "139"
    #: (priority, probability): a priority drawn per call (() = priority 0)
    priorities: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class IvrSpec:
    flow_path: Path
    #: menu node -> ((key or None for no key, probability), ...)
    keys: Mapping[str, tuple[tuple[str | None, float], ...]]
    flow: Any = None  # the loaded flow (acd.ivr.nodes.Flow)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    profile: AgentProfile
    #: (login, logout) in seconds from the start; () = logged in all the time
    shifts: tuple[tuple[float, float], ...] = ()
    #: planned breaks (start s from the start, length s, kind), sorted, kept whole:
    #: one due while the agent is on a call starts when the call and its
    #: wrap-up end, and lasts its full length
    activities: tuple[tuple[float, float, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NotReadySpec:
    """Random not-ready episodes of one reason: per logged-in agent, starting
    at ``per_hour`` (a Poisson process), each lasting a draw of ``length``
    (seconds); kept whole like breaks."""

    reason: str
    per_hour: float
    length: Dist


@dataclass(frozen=True, slots=True)
class TraceCall:
    arrival_s: float
    number: str
    queue: str
    attributes: tuple[tuple[str, str], ...] = ()
    handle_s: float = 0.0
    patience_s: float | None = None  # None: never hangs up
    line: int = 0
    priority: int = 0
    wrap_s: float | None = None  # None: the scenario's wrap-up


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    file: str
    policy: Policy
    agents: tuple[AgentSpec, ...]
    queues: Mapping[str, QueueSpec]
    start_s: float = 0.0  # time of day of t = 0 (seconds after midnight)
    day: str = ""
    interval_s: float = 3600.0
    #: arrival rate (calls per second) in each interval, piecewise constant
    rates: tuple[float, ...] = ()
    #: True: the last rate goes on after the listed intervals (constant rate)
    open_ended: bool = False
    hours: float | None = None
    calls: int | None = None
    warmup_s: float = 0.0
    callers: CallerPopulation = field(default_factory=CallerPopulation)
    ivr: IvrSpec | None = None
    handle: Dist = field(default_factory=lambda: Dist("exponential", 180.0))
    patience: Dist | None = None
    wrap_up_s: float = 0.0
    ring_no_answer: float = 0.0
    ring_delay_s: float = 0.0
    rona_pause_s: float | None = 30.0
    sl_seconds: float = 20.0
    routing: Path | None = None
    trace: tuple[TraceCall, ...] | None = None
    #: the date of t = 0 (``start`` given as a date and time); None: from ``day``
    start_date: dt.date | None = None
    #: the daily arrivals and shifts repeat this many days
    days: int = 1
    #: wrap-up drawn per answered call (None: the fixed ``wrap_up_s``)
    wrap_up: Dist | None = None
    not_ready: tuple[NotReadySpec, ...] = ()
    #: share of the logged-in agents unavailable, per interval from ``start``
    #: (repeating daily; past the list: its last value); () = none
    shrinkage: tuple[float, ...] = ()
    #: the roster file the agents' shifts came from (None: the agents' own shifts)
    roster: Path | None = None
    #: the forecast file the arrivals came from
    forecast: Path | None = None
    #: per interval, the queues' shares of its calls (a forecast); () = ``queues``' shares
    queue_mix: tuple[tuple[tuple[str, float], ...], ...] = ()
    #: what reading the scenario left out (told with the run's warnings)
    notes: tuple[str, ...] = ()

    @property
    def start_at(self) -> dt.datetime:
        """The naive local date and time of t = 0."""
        date = self.start_date if self.start_date is not None else day_start(self.day).date()
        return dt.datetime(date.year, date.month, date.day) + dt.timedelta(seconds=self.start_s)

    def wraps(self) -> bool:
        """True when a wrap-up is drawn per call (a distribution, or a trace's own)."""
        return self.wrap_up is not None or any(q.wrap_up is not None
                                               for q in self.queues.values()) or (
            self.trace is not None and any(c.wrap_s is not None for c in self.trace))

    @property
    def day_end_s(self) -> float | None:
        """End of the arrivals (seconds from the start), None when open-ended."""
        if self.trace is not None:
            return max((c.arrival_s for c in self.trace), default=0.0)
        if self.open_ended:
            return self.hours * 3600.0 if self.hours is not None else None
        return len(self.rates) * self.interval_s

    def queue_sl(self, queue: str) -> float:
        spec = self.queues.get(queue)
        if spec is not None and spec.sl_seconds is not None:
            return spec.sl_seconds
        return self.sl_seconds

    def expected_calls(self) -> float | None:
        """Expected number of arrivals (None when open-ended without a limit)."""
        if self.trace is not None:
            return float(len(self.trace))
        end = self.day_end_s
        if end is None:
            return float(self.calls) if self.calls is not None else None
        if self.open_ended:
            n = self.rates[0] * end
        else:
            n = sum(r * self.interval_s for r in self.rates)
        return min(n, float(self.calls)) if self.calls is not None else n


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: a Monday: the simulated day's date when ``day`` is a weekday name
REFERENCE_MONDAY = dt.date(2026, 11, 23)


def day_start(day: str, timezone: str | None = None) -> dt.datetime:
    """Midnight of the simulated day: ``day`` is a date (YYYY-MM-DD), a
    weekday name (a day of the week of 2026-11-23) or empty (that Monday);
    in ``timezone`` (e.g. the IVR flow's), else UTC."""
    tz: dt.tzinfo = dt.UTC
    if timezone:
        try:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(timezone)
        except (ImportError, KeyError, ValueError):
            tz = dt.UTC
    text = day.strip().lower()
    if text in WEEKDAYS:
        date = REFERENCE_MONDAY + dt.timedelta(days=WEEKDAYS.index(text))
    else:
        try:
            date = dt.date.fromisoformat(text)
        except ValueError:
            date = REFERENCE_MONDAY
    return dt.datetime(date.year, date.month, date.day, tzinfo=tz)


def clock(t: float, start_s: float = 0.0) -> str:
    """``HH:MM`` of a simulation time (days past the first are added as +Nd)."""
    tod = round(start_s + t)
    days, rest = divmod(tod, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"{text}+{days}d" if days else text


def parse_tod(text: str) -> float | None:
    """A time of day ``HH:MM`` or ``HH:MM:SS`` -> seconds after midnight
    (24:00 allowed); None when ``text`` is not one."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        return None
    h, m = int(parts[0]), int(parts[1])
    s = int(parts[2]) if len(parts) == 3 else 0
    if m > 59 or s > 59 or h * 3600 + m * 60 + s > DAY_S:
        return None
    return float(h * 3600 + m * 60 + s)


def routed_queues(policy: Policy) -> frozenset[str]:
    """The queue names the IVR may send calls to because a route rule catches
    them (``ivr_queue`` tests) and puts them in one of the policy's queues."""
    return frozenset(v for rule in policy.routes for t in rule.when.tests
                     if t.attr == "ivr_queue" and not t.negate for v in t.values)

