"""Generated call demand with known seasonality, for tests, benchmarks and
demos (pure computation, seeded; numpy imported when used).

Each queue's expected calls in an interval are::

    base × weekday factor × (1 + trend · years) × (1 + wave · sin(2π · day of year / 365.25))
         × share of the interval in that day type's intra-day profile

- weekday factors (:data:`WEEKDAY`): Monday busiest, a quiet weekend;
- the intra-day profile of a working day has two peaks (about 10:00 and
  14:30, :func:`day_profile`), a weekend's one broad peak about 12:30;
  nothing from 00:00 to 07:00 but a trickle;
- holidays (:data:`HOLIDAYS` each year, or the caller's dates) have
  :data:`HOLIDAY_FACTOR` of the day's calls, with the weekend profile;
- the counts drawn are Poisson around those expectations.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from acd.planning.forecast import EXTRA, History

__all__ = [
    "HOLIDAYS",
    "HOLIDAY_FACTOR",
    "QUEUES",
    "WEEKDAY",
    "SyntheticDemand",
    "arrival_times",
    "day_profile",
    "default_holidays",
    "synthetic_demand",
]

#: day factor by weekday (Monday first)
WEEKDAY = (1.25, 1.10, 1.05, 1.00, 0.95, 0.60, 0.45)
#: (month, day) of the holidays of each year
HOLIDAYS = ((1, 1), (5, 1), (5, 26), (8, 15), (10, 1), (10, 2), (12, 25), (12, 26))
#: a holiday's calls relative to a normal day of its weekday
HOLIDAY_FACTOR = 0.35
#: mean calls per normal day (before the weekday factor) of the default queues
QUEUES: Mapping[str, float] = {"billing": 1200.0, "tech": 500.0}


def day_profile(interval_min: int, weekend: bool) -> list[float]:
    """Shares of a day's calls per interval (summing to 1)."""
    per = 1440 // interval_min
    out = []
    for k in range(per):
        h = (k + 0.5) * interval_min / 60.0  # the interval's middle, in hours
        if weekend:
            v = math.exp(-0.5 * ((h - 12.5) / 2.8) ** 2)
        else:
            v = (math.exp(-0.5 * ((h - 10.0) / 1.4) ** 2)
                 + 0.8 * math.exp(-0.5 * ((h - 14.5) / 1.8) ** 2))
        v += 0.03 if 7 <= h < 22 else 0.005
        out.append(v)
    total = sum(out)
    return [v / total for v in out]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - the planning extra is missing
        raise RuntimeError(f"generated demand needs numpy: {EXTRA}") from exc
    return numpy


def default_holidays(first: date, days: int) -> dict[date, str]:
    """The :data:`HOLIDAYS` dates falling in the ``days`` days from ``first``."""
    last = first + timedelta(days=days - 1)
    out: dict[date, str] = {}
    for year in range(first.year, last.year + 1):
        for month, day in HOLIDAYS:
            d = date(year, month, day)
            if first <= d <= last:
                out[d] = f"holiday {month:02d}-{day:02d}"
    return out


@dataclass(frozen=True, slots=True)
class SyntheticDemand:
    """The drawn counts (``history``), the expectations they were drawn
    around (``expected[queue][day index][interval]``) and the holidays."""

    history: History
    expected: Mapping[str, tuple[tuple[float, ...], ...]]
    holidays: Mapping[date, str]


def _expected_day(base: float, day: date, first: date, trend: float, wave: float,
                  holiday: bool, profiles: tuple[list[float], list[float]]) -> list[float]:
    years = (day - first).days / 365.25
    level = (base * WEEKDAY[day.weekday()] * (1 + trend * years)
             * (1 + wave * math.sin(2 * math.pi * day.timetuple().tm_yday / 365.25)))
    if holiday:
        level *= HOLIDAY_FACTOR
    weekend = holiday or day.weekday() >= 5
    return [level * s for s in profiles[1 if weekend else 0]]


def synthetic_demand(first: date = date(2025, 1, 6), days: int = 364, interval_min: int = 30,
                     *, queues: Mapping[str, float] | None = None, seed: int = 1,
                     trend: float = 0.10, wave: float = 0.15,
                     holidays: Mapping[date, str] | None = None) -> SyntheticDemand:
    """``days`` days of arrivals per interval from ``first``: per queue of
    ``queues`` (name -> mean calls a normal day, default :data:`QUEUES`),
    a yearly ``trend`` (0.10: +10 % a year), a yearly ``wave`` (±15 %),
    the ``holidays`` (default :func:`default_holidays`), Poisson counts with
    ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    qs = dict(queues if queues is not None else QUEUES)
    hol = dict(holidays) if holidays is not None else default_holidays(first, days)
    profiles = (day_profile(interval_min, False), day_profile(interval_min, True))
    step = timedelta(minutes=interval_min)
    counts: dict[str, dict[datetime, float]] = {}
    expected: dict[str, tuple[tuple[float, ...], ...]] = {}
    for q, base in qs.items():
        per: dict[datetime, float] = {}
        exp_days = []
        for i in range(days):
            day = first + timedelta(days=i)
            mu = _expected_day(base, day, first, trend, wave, day in hol, profiles)
            drawn = rng.poisson(mu)
            start = datetime.combine(day, datetime.min.time())
            for k, c in enumerate(drawn.tolist()):
                if c:
                    per[start + k * step] = float(c)
            exp_days.append(tuple(mu))
        counts[q] = per
        expected[q] = tuple(exp_days)
    last = first + timedelta(days=days - 1)
    return SyntheticDemand(History(interval_min, first, last, counts), expected, hol)


def arrival_times(demand: SyntheticDemand, seed: int = 1) -> Iterator[tuple[datetime, str]]:
    """Each counted call as (arrival time, queue), spread uniformly (to the
    second) over its interval, in time order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = demand.history.interval_min * 60
    calls: list[tuple[datetime, str]] = []
    for q, per in demand.history.counts.items():
        for start, c in per.items():
            offsets: Any = np.sort(rng.integers(0, size, int(c)))
            calls.extend((start + timedelta(seconds=int(s)), q) for s in offsets.tolist())
    calls.sort()
    yield from calls
