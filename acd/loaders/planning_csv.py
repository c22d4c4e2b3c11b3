"""The workforce-planning files (docs/planning.md).

Forecast CSV: expected arrivals per interval and queue::

    interval_start,queue,calls
    2026-12-07 08:00,billing,41.3

``interval_start``: naive local time ``YYYY-MM-DD HH:MM[:SS]`` (or with a
``T``); a value with a UTC offset is converted to the local time of ``tz``
(default: the machine's zone).  ``calls``: a number >= 0.  A queue's interval
given twice is an error.

Holidays file: one date per line, ``YYYY-MM-DD`` and an optional name after
a space, a tab or a comma (``2026-12-25 Christmas``); blank lines and lines
starting with ``#`` are left out.

Errors: :class:`PlanningFileError`, ``file:line: column: problem``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, datetime, tzinfo
from pathlib import Path

from acd.loaders.localtime import parse_local
from acd.loaders.textfile import CsvFileError, csv_header, csv_records, read_text_file
from acd.planning.forecast import ForecastRow
from acd.planning.requirements import Requirement

__all__ = [
    "FORECAST_COLUMNS",
    "FORECAST_MAX_BYTES",
    "HOLIDAYS_MAX_BYTES",
    "REQUIREMENTS_COLUMNS",
    "PlanningFileError",
    "load_forecast",
    "load_holidays",
    "load_requirements",
    "parse_forecast",
    "parse_holidays",
    "parse_requirements",
    "write_forecast",
    "write_requirements",
]

FORECAST_COLUMNS = ("interval_start", "queue", "calls")
#: the largest forecast file read: a year of 15-minute intervals for some 20 queues
FORECAST_MAX_BYTES = 256 * 1024 * 1024
#: the largest holidays file read
HOLIDAYS_MAX_BYTES = 1024 * 1024

_HOLIDAY = re.compile(r"(\S+?)(?:[ \t,]+(.*))?")


class PlanningFileError(CsvFileError):
    """A planning file is wrong: ``file:line: column: problem`` (line 0: the
    file as a whole, ``file: problem``)."""


# ---------------------------------------------------------------- forecast


def _number(x: float) -> str:
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def write_forecast(rows: Iterable[ForecastRow]) -> str:
    """Forecast CSV text of ``rows`` (in their order)."""
    out = [",".join(FORECAST_COLUMNS)]
    for r in rows:
        queue = r.queue
        if any(ch in queue for ch in ',"\r\n'):
            queue = '"' + queue.replace('"', '""') + '"'
        out.append(f"{r.start:%Y-%m-%d %H:%M},{queue},{_number(r.calls)}")
    return "\n".join(out) + "\n"


def _header(cells: list[str], columns: tuple[str, ...], required: tuple[str, ...], file: str,
            line: int) -> list[str]:
    """The header's column names, or the error of :func:`csv_header` at its line."""
    try:
        csv_header(cells, columns, required)
    except ValueError as exc:
        raise PlanningFileError(file, line, "header", str(exc)) from None
    return [h.strip().lower() for h in cells]


def parse_forecast(text: str, file: str = "<forecast>", *, tz: tzinfo | None = None
                   ) -> list[ForecastRow]:
    """The rows of forecast CSV text, in file order (``line`` set)."""
    records = csv_records(text, comments=True)
    first = next(records, None)
    if first is None:
        raise PlanningFileError(file, 0, "", "the forecast file is empty (no header)")
    if isinstance(first[2], str):
        raise PlanningFileError(file, first[0], "header", first[2])
    header = _header(first[2], FORECAST_COLUMNS, FORECAST_COLUMNS, file, first[0])
    col = {c: i for i, c in enumerate(header)}
    rows: list[ForecastRow] = []
    seen: dict[tuple[datetime, str], int] = {}
    for line, _, cells in records:
        if isinstance(cells, str):
            raise PlanningFileError(file, line, "", cells)
        if len(cells) != len(header):
            raise PlanningFileError(file, line, "", f"{len(cells)} fields, the header has "
                                                    f"{len(header)}")
        try:
            start = parse_local(cells[col["interval_start"]], tz)
        except ValueError as exc:
            raise PlanningFileError(file, line, "interval_start", str(exc)) from None
        queue = cells[col["queue"]].strip()
        if not queue:
            raise PlanningFileError(file, line, "queue", "empty: name the queue")
        raw = cells[col["calls"]].strip()
        try:
            calls = float(raw)
        except ValueError:
            calls = math.nan
        if not (math.isfinite(calls) and calls >= 0):
            raise PlanningFileError(file, line, "calls", f"{raw!r} is not a number of calls "
                                                         ">= 0")
        key = (start, queue)
        if key in seen:
            raise PlanningFileError(file, line, "interval_start",
                                    f"queue {queue!r} at {start:%Y-%m-%d %H:%M} is given "
                                    f"twice (also on line {seen[key]})")
        seen[key] = line
        rows.append(ForecastRow(start, queue, calls, line))
    return rows


def load_forecast(path: str | Path, *, tz: tzinfo | None = None) -> list[ForecastRow]:
    """The rows of a forecast CSV file (TextFileError or PlanningFileError)."""
    return parse_forecast(read_text_file(path, "forecast file", FORECAST_MAX_BYTES), str(path),
                          tz=tz)


# ---------------------------------------------------------------- holidays


def parse_holidays(text: str, file: str = "<holidays>") -> dict[date, str]:
    """Date -> name ("" when none) of a holidays file's text."""
    out: dict[date, str] = {}
    where: dict[date, int] = {}
    for line, raw in enumerate(text.splitlines(), 1):
        t = raw.strip()
        if not t or t.startswith("#"):
            continue
        m = _HOLIDAY.fullmatch(t)
        word = m.group(1) if m else t
        name = (m.group(2) or "").strip() if m else ""
        try:
            day = date.fromisoformat(word) if len(word) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise PlanningFileError(file, line, "date",
                                    f"{word!r} is not a date YYYY-MM-DD (a line: the date, "
                                    "then an optional name)")
        if day in out:
            raise PlanningFileError(file, line, "date", f"{day} is given twice (also on line "
                                                        f"{where[day]})")
        out[day] = name
        where[day] = line
    return out


def load_holidays(path: str | Path) -> dict[date, str]:
    """Date -> name of a holidays file (TextFileError or PlanningFileError)."""
    return parse_holidays(read_text_file(path, "holidays file", HOLIDAYS_MAX_BYTES), str(path))


# ---------------------------------------------------------------- requirements
# Requirements CSV (written by `acd staffing --forecast`, read by `acd schedule`
# and `acd report fit`): agents needed per interval and queue::
#
#     interval_start,queue,required,calls,aht_s,sl,sl_low,sl_high,abandon
#     2026-12-07 08:00,billing,12,41.3,210.0,0.83,0.80,0.86,0.021
#
# Required columns: interval_start, queue, required (a whole number >= 0); the
# others may be absent or empty; sl, sl_low, sl_high, abandon are shares in
# [0, 1], calls and aht_s numbers >= 0.

REQUIREMENTS_COLUMNS = ("interval_start", "queue", "required", "calls", "aht_s", "sl",
                        "sl_low", "sl_high", "abandon")
_REQUIRED_COLUMNS = ("interval_start", "queue", "required")
#: the largest requirements file read (as the forecast)
REQUIREMENTS_MAX_BYTES = FORECAST_MAX_BYTES


def _opt_number(x: float | None, digits: int) -> str:
    if x is None:
        return ""
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def write_requirements(rows: Iterable[Requirement]) -> str:
    """Requirements CSV text of ``rows`` (in their order); absent figures are empty."""
    out = [",".join(REQUIREMENTS_COLUMNS)]
    for r in rows:
        queue = r.queue
        if any(ch in queue for ch in ',"\r\n'):
            queue = '"' + queue.replace('"', '""') + '"'
        out.append(",".join((
            f"{r.start:%Y-%m-%d %H:%M}", queue, str(r.required), _opt_number(r.calls, 3),
            _opt_number(r.aht_s, 3), _opt_number(r.sl, 6), _opt_number(r.sl_low, 6),
            _opt_number(r.sl_high, 6), _opt_number(r.abandon, 6))))
    return "\n".join(out) + "\n"


def parse_requirements(text: str, file: str = "<requirements>", *, tz: tzinfo | None = None
                       ) -> list[Requirement]:
    """The rows of requirements CSV text, in file order (``line`` set)."""
    records = csv_records(text, comments=True)
    first = next(records, None)
    if first is None:
        raise PlanningFileError(file, 0, "", "the requirements file is empty (no header)")
    if isinstance(first[2], str):
        raise PlanningFileError(file, first[0], "header", first[2])
    header = _header(first[2], REQUIREMENTS_COLUMNS, _REQUIRED_COLUMNS, file, first[0])
    col = {c: i for i, c in enumerate(header)}
    rows: list[Requirement] = []
    seen: dict[tuple[datetime, str], int] = {}
    for line, _, cells in records:
        if isinstance(cells, str):
            raise PlanningFileError(file, line, "", cells)
        if len(cells) != len(header):
            raise PlanningFileError(file, line, "", f"{len(cells)} fields, the header has "
                                                    f"{len(header)}")
        try:
            start = parse_local(cells[col["interval_start"]], tz)
        except ValueError as exc:
            raise PlanningFileError(file, line, "interval_start", str(exc)) from None
        queue = cells[col["queue"]].strip()
        if not queue:
            raise PlanningFileError(file, line, "queue", "empty: name the queue")
        raw = cells[col["required"]].strip()
        if not raw.isdigit():
            raise PlanningFileError(file, line, "required",
                                    f"{raw!r} is not a whole number of agents >= 0")
        figures: dict[str, float | None] = {}
        for name in REQUIREMENTS_COLUMNS[3:]:
            cell = cells[col[name]].strip() if name in col else ""
            if not cell:
                figures[name] = None
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            share = name in ("sl", "sl_low", "sl_high", "abandon")
            if not (math.isfinite(value) and value >= 0 and (not share or value <= 1)):
                raise PlanningFileError(file, line, name, f"{cell!r} is not " + (
                    "a share in [0, 1]" if share else "a number >= 0"))
            figures[name] = value
        key = (start, queue)
        if key in seen:
            raise PlanningFileError(file, line, "interval_start",
                                    f"queue {queue!r} at {start:%Y-%m-%d %H:%M} is given "
                                    f"twice (also on line {seen[key]})")
        seen[key] = line
        rows.append(Requirement(start, queue, int(raw), figures["calls"], figures["aht_s"],
                                figures["sl"], figures["sl_low"], figures["sl_high"],
                                figures["abandon"], line))
    return rows


def load_requirements(path: str | Path, *, tz: tzinfo | None = None) -> list[Requirement]:
    """The rows of a requirements CSV file (TextFileError or PlanningFileError)."""
    return parse_requirements(read_text_file(path, "requirements file",
                                             REQUIREMENTS_MAX_BYTES), str(path), tz=tz)
