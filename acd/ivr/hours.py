"""Opening hours and holidays in a time zone (the ``hours`` node).

::

    timezone: Asia/Shanghai
    open:
      mon-fri: "08:00-22:00"
      sat,sun: "09:00-12:00, 13:00-18:00"
    holidays: ["2026-10-01", "2026-10-02"]      # closed all day
    special: {"2026-12-31": "08:00-12:00"}      # different hours that day

Pure: :meth:`Hours.is_open` takes the instant to judge; nobody here reads
the clock.  ``24:00`` ends a range at midnight; a range may not cross it
(write ``22:00-24:00`` on one day and ``00:00-02:00`` on the next).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\Z")

Ranges = tuple[tuple[int, int], ...]  # minutes from midnight, [start, end)


class HoursError(ValueError):
    pass


def parse_days(spec: str) -> list[int]:
    """``mon-fri``, ``sat,sun``, ``mon,wed-fri``, ``daily`` -> weekday numbers (0 = Monday)."""
    spec = spec.strip().lower()
    if spec in ("daily", "every day", "all"):
        return list(range(7))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, _, b = part.partition("-")
            a, b = a.strip(), b.strip()
            if a not in DAYS or b not in DAYS:
                raise HoursError(f"{part!r} is not a day range like mon-fri")
            i, j = DAYS.index(a), DAYS.index(b)
            out.extend(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise HoursError(f"{part!r} is not a day (mon, tue, wed, thu, fri, sat, sun, "
                             "a range like mon-fri, or daily)")
    return out


def parse_ranges(spec: str) -> Ranges:
    """``"08:00-12:00, 13:00-18:00"``, ``"24h"`` or ``"closed"``."""
    spec = spec.strip().lower()
    if spec == "closed":
        return ()
    if spec in ("24h", "00:00-24:00"):
        return ((0, 24 * 60),)
    out: list[tuple[int, int]] = []
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if m is None:
            raise HoursError(f"{part.strip()!r} is not a time range like 08:00-18:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise HoursError(f"{part.strip()!r}: not a time of day")
        a, b = h1 * 60 + m1, h2 * 60 + m2
        if b <= a:
            raise HoursError(f"{part.strip()!r}: the end is not after the start "
                             "(a range may not cross midnight)")
        out.append((a, b))
    return tuple(sorted(out))


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise HoursError(f"{text!r} is not a date like 2026-10-01") from None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"unknown time zone {name!r} (e.g. Asia/Shanghai, "
                         "Europe/London, UTC)") from None


@dataclass(frozen=True, slots=True)
class Hours:
    timezone: str
    weekly: tuple[Ranges, ...]  # 7 entries, Monday first
    holidays: frozenset[dt.date] = frozenset()
    special: Mapping[dt.date, Ranges] | None = None

    def ranges_on(self, day: dt.date) -> Ranges:
        """The opening ranges of ``day`` (a local date): its special hours,
        none on a holiday, else its weekday's."""
        if self.special is not None and day in self.special:
            return self.special[day]
        if day in self.holidays:
            return ()
        return self.weekly[day.weekday()]

    def is_open(self, when: dt.datetime) -> bool:
        if when.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        local = when.astimezone(zone(self.timezone))
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.ranges_on(local.date()))

    def describe(self, when: dt.datetime) -> str:
        """``08:00-22:00 daily``, ``mon-fri 08:00-18:00; sat-sun closed``, and
        the day of ``when`` if it is a holiday or has special hours."""
        if len(set(self.weekly)) == 1:
            text = f"{_shown(self.weekly[0])} daily"
        else:
            groups: list[tuple[int, int]] = []  # first, last day of a run of the same hours
            for i in range(7):
                if groups and self.weekly[i] == self.weekly[groups[-1][1]]:
                    groups[-1] = (groups[-1][0], i)
                else:
                    groups.append((i, i))
            text = "; ".join((DAYS[a] if a == b else f"{DAYS[a]}-{DAYS[b]}")
                             + f" {_shown(self.weekly[a])}" for a, b in groups)
        day = when.astimezone(zone(self.timezone)).date()
        if self.special is not None and day in self.special:
            text += f"; {day.isoformat()}: {_shown(self.special[day])}"
        elif day in self.holidays:
            text += f"; {day.isoformat()}: closed (a holiday)"
        return text


def _shown(r: Ranges) -> str:
    return ", ".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"
                     for a, b in r) or "closed"


def local_fields(when: dt.datetime, tz: str) -> dict[str, str | int]:
    """The ``now.*`` names of conditions, in ``tz``."""
    local = when.astimezone(zone(tz))
    return {"hour": local.hour, "minute": local.minute, "weekday": DAYS[local.weekday()],
            "date": local.date().isoformat(), "time": f"{local.hour:02d}:{local.minute:02d}"}
