"""The interval grid of the planning files, in one place: naive local
wall-clock intervals of 15, 30 or 60 minutes (any length dividing an hour),
aligned on the hour and named by their start.

- :func:`grid`: the interval starts over a span;
- :func:`floor`: the interval a time falls in;
- :func:`spread`: how many seconds of a period ``[a, b)`` fall in each
  interval of a regular grid (time-weighted averages: agents on shift,
  available, required);
- :class:`NonDecreasing`: per agent, a local time that never goes back.

Local wall-clock times: at a daylight-saving change the day has 23 or 25
hours of real time but the grid counts wall-clock time (the hour skipped in
spring is an interval with nothing in it; in autumn the repeated hour is
one interval holding both).  Pure: no clock, no files.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

__all__ = ["NonDecreasing", "check_interval", "floor", "grid", "spread"]


def check_interval(interval_s: int) -> None:
    """ValueError unless ``interval_s`` is a positive divisor of an hour."""
    if interval_s <= 0 or 3600 % interval_s:
        raise ValueError(f"an interval of {interval_s} s does not divide an hour")


def grid(start: datetime, end: datetime, interval_s: int) -> list[datetime]:
    """The interval starts from ``start`` (must lie on an interval boundary:
    aligned on the hour) up to ``end`` (excluded)."""
    check_interval(interval_s)
    if (start.minute * 60 + start.second) % interval_s or start.microsecond:
        raise ValueError(f"{start:%Y-%m-%d %H:%M:%S} is not on a {interval_s // 60}-minute "
                         "boundary")
    step = timedelta(seconds=interval_s)
    out: list[datetime] = []
    t = start
    while t < end:
        out.append(t)
        t += step
    return out


def floor(at: datetime, interval_s: int) -> datetime:
    """The start of the interval ``at`` falls in (seconds and fractions
    dropped; ``at``'s ``tzinfo`` kept)."""
    check_interval(interval_s)
    secs = (at.minute * 60 + at.second) // interval_s * interval_s
    return at.replace(minute=secs // 60, second=secs % 60, microsecond=0)


def spread(a: datetime, b: datetime, origin: datetime, interval_s: int, n: int
           ) -> Iterator[tuple[int, float]]:
    """(index, seconds) of each interval ``k`` of ``origin + k * interval_s``
    (0 <= k < n) that ``[a, b)`` overlaps, with the seconds of the overlap;
    nothing for an empty period or one outside the ``n`` intervals."""
    step = timedelta(seconds=interval_s)
    lo, hi = max(a, origin), min(b, origin + n * step)
    if hi <= lo:
        return
    k = int((lo - origin).total_seconds() // interval_s)
    while k < n:
        i0 = origin + k * step
        if i0 >= hi:
            break
        yield k, (min(hi, i0 + step) - max(lo, i0)).total_seconds()
        k += 1


class NonDecreasing:
    """Local times kept from going back, per key (an agent): when clocks go
    back, a record of the repeated hour, taken in the order things happened
    (UTC order), would come before the one it follows; it is moved to the
    key's latest time instead, so each agent's changes keep their order
    (the repeated hour's time is counted once)."""

    def __init__(self) -> None:
        self._latest: dict[str, datetime] = {}

    def __call__(self, key: str, at: datetime) -> datetime:
        prev = self._latest.get(key)
        if prev is not None and at < prev:
            at = prev
        self._latest[key] = at
        return at
