"""Local wall-clock times in the planning files (roster, state records,
forecast, requirements, call records): one reader, :func:`parse_local`.

Accepted: ``YYYY-MM-DD HH:MM``, ``YYYY-MM-DD HH:MM:SS`` and
``YYYY-MM-DD HH:MM:SS.ffffff`` (1 to 6 digits: exports write milliseconds),
each also with ``T`` between the date and the time.  A value may end with a UTC
offset (``Z``, ``+01``, ``+0100``, ``+01:00``: a center's export in UTC or
ISO 8601): it is converted to the wall-clock time of the zone ``tz`` (None:
this machine's zone) and returned naive.

Refused, with a ValueError saying why: a date alone, an hour without
minutes (``2026-11-02 08``), the compact ISO form (``20261102T0800``), a
time of day with one digit (``8:00``), an impossible date or time.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

__all__ = ["LOCAL_TIME_FORM", "parse_local"]

#: how the accepted form is named in error messages
LOCAL_TIME_FORM = "YYYY-MM-DD HH:MM[:SS]"

_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?"
                   r"(Z|[+-]\d\d(?::?\d\d)?)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def parse_local(text: str, tz: tzinfo | None = None) -> datetime:
    """``text`` (module docstring) as a naive local datetime; one with a UTC
    offset converted to ``tz`` (None: this machine's zone).  ValueError with
    the reason otherwise (the message quotes the value, not the file)."""
    t = text.strip()
    m = _TIME.fullmatch(t)
    if m is None:
        if _DATE.fullmatch(t):
            raise ValueError(f"{t!r} has no time of day ({LOCAL_TIME_FORM})")
        raise ValueError(f"{t!r} is not a date and time like '2026-11-02 21:58' "
                         f"({LOCAL_TIME_FORM})")
    offset = m.group(1)
    if offset == "Z":
        t = t[:-1] + "+00:00"
    elif offset is not None and len(offset) == 3:  # +01: Python 3.11 wants the minutes
        t += ":00"
    try:
        value = datetime.fromisoformat(t)
    except ValueError as exc:
        raise ValueError(f"{text.strip()!r}: {exc}") from None
    if value.tzinfo is not None:
        value = value.astimezone(tz).replace(tzinfo=None)
    return value
