"""A center's call-record export (CSV), one row per call that reached a queue::

    arrival,queue,priority,outcome,wait,handle,wrap,abandon_after,number,attributes
    2026-11-02 08:00:05,billing,0,answered,12.5,185,20,,13800000001,vip_level=2
    2026-11-02 08:00:09,tech,1,abandoned,,,,34.2,,

Required columns: ``arrival``, ``queue``, ``outcome``.  ``arrival``: naive local
time ``YYYY-MM-DD HH:MM[:SS]`` (or with a ``T``); a value with a UTC offset is
converted to the local time of ``tz`` (default: the machine's zone).
``outcome``: ``answered`` or ``abandoned``; rows with another outcome
(fallback, voicemail, transferred...) are counted and skipped (:class:`Skipped`).
An answered call needs ``handle`` (talk time) and ``wait``; an abandoned call
needs ``abandon_after`` (else its ``wait`` is taken as the time it hung up).
Times are seconds.  Errors: :class:`RecordsError` ``file:line: column: problem``.

:func:`iter_records` streams a file (up to :data:`RECORDS_MAX_BYTES`) one line
at a time; :func:`parse_records` reads text; :func:`write_records` writes it.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from acd.loaders.localtime import parse_local
from acd.loaders.textfile import CsvFileError, csv_header, iter_text_lines
from acd.planning.records import ABANDONED, ANSWERED, CenterRecord

__all__ = ["RECORDS_COLUMNS", "RECORDS_MAX_BYTES", "RecordsError", "Skipped", "iter_records",
           "parse_records", "write_records"]

RECORDS_COLUMNS = ("arrival", "queue", "priority", "outcome", "wait", "handle", "wrap",
                   "abandon_after", "number", "attributes")
REQUIRED = ("arrival", "queue", "outcome")
#: the largest call-record file read: about 12 million calls (read as a stream)
RECORDS_MAX_BYTES = 1024 ** 3


class RecordsError(CsvFileError):
    """A call-record CSV is wrong: ``file:line: column: problem``."""


@dataclass
class Skipped:
    """Rows left out because their outcome is neither answered nor abandoned:
    count per outcome, and the first few lines of each."""

    counts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, outcome: str, line: int) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        first = self.lines.setdefault(outcome, [])
        if len(first) < 3:
            first.append(line)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        """``12 rows skipped: fallback 10 (lines 5, 9, 40), voicemail 2 (...)``."""
        if not self.counts:
            return "no rows skipped"
        parts = [f"{k} {n:,} (line{'s' if len(self.lines[k]) > 1 else ''} "
                 f"{', '.join(map(str, self.lines[k]))}{', ...' if n > 3 else ''})"
                 for k, n in sorted(self.counts.items(), key=lambda kv: -kv[1])]
        return (f"{self.total:,} row{'s' if self.total != 1 else ''} with another outcome "
                f"skipped: {'; '.join(parts)}")


class _Header:
    def __init__(self, file: str, line: int, cells: list[str]) -> None:
        try:
            self.col = csv_header(cells, RECORDS_COLUMNS, REQUIRED)
        except ValueError as exc:
            raise RecordsError(file, line, "header", str(exc)) from None
        self.n = len(self.col)


def _when(file: str, line: int, text: str, tz: tzinfo | None) -> datetime:
    try:
        return parse_local(text, tz)
    except ValueError as exc:
        raise RecordsError(file, line, "arrival", str(exc)) from None


def _seconds(file: str, line: int, name: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise RecordsError(file, line, name, f"{text!r} is not a number of seconds >= 0")
    return value


def _record(file: str, line: int, h: _Header, row: list[str], tz: tzinfo | None,
            skipped: Skipped | None) -> CenterRecord | None:
    if len(row) > h.n:
        raise RecordsError(file, line, "", f"{len(row)} fields, the header has {h.n}")
    col = h.col

    def get(name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    outcome = get("outcome").lower()
    if not outcome:
        raise RecordsError(file, line, "outcome", "empty (answered or abandoned)")
    if outcome not in (ANSWERED, ABANDONED):
        if skipped is not None:
            skipped.add(outcome, line)
        return None
    text = get("arrival")
    if not text:
        raise RecordsError(file, line, "arrival", "empty")
    arrival = _when(file, line, text, tz)
    queue = get("queue")
    if not queue:
        raise RecordsError(file, line, "queue", "empty")
    ptext = get("priority")
    try:
        priority = int(ptext) if ptext else 0
    except ValueError:
        raise RecordsError(file, line, "priority", f"{ptext!r} is not a whole "
                                                   "number") from None
    wait = _seconds(file, line, "wait", get("wait"))
    handle = _seconds(file, line, "handle", get("handle"))
    wrap = _seconds(file, line, "wrap", get("wrap"))
    abandon = _seconds(file, line, "abandon_after", get("abandon_after"))
    if outcome == ANSWERED:
        if handle is None:
            raise RecordsError(file, line, "handle", "empty: an answered call needs its talk "
                                                     "time")
        if wait is None:
            raise RecordsError(file, line, "wait", "empty: an answered call needs its time to "
                                                   "answer")
        if abandon:  # an export may write 0 there for answered calls
            raise RecordsError(file, line, "abandon_after", "given for an answered call")
        abandon = None
    else:
        if abandon is None:
            if wait is None:
                raise RecordsError(file, line, "abandon_after",
                                   "empty (and no wait): an abandoned call needs the time "
                                   "the caller hung up")
            abandon = wait
        wait = abandon
    attrs: list[tuple[str, str]] = []
    for part in get("attributes").split(";"):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise RecordsError(file, line, "attributes", f"{part!r} is not key=value")
        attrs.append((k.strip(), v.strip()))
    return CenterRecord(arrival, queue, outcome, priority, wait, handle, wrap, abandon,
                        get("number"), tuple(attrs), line)


def _cells(file: str, line: int, text: str) -> list[str]:
    text = text.rstrip("\r\n")
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise RecordsError(file, line, "", f"cannot be read as CSV ({exc}); a value "
                                           "cannot run on to the next line") from None


def _records(lines: Iterable[tuple[int, str]], file: str, tz: tzinfo | None,
             skipped: Skipped | None) -> Iterator[CenterRecord]:
    header: _Header | None = None
    for lineno, text in lines:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        cells = _cells(file, lineno, text)
        if header is None:
            header = _Header(file, lineno, cells)
            continue
        if all(not c.strip() for c in cells):
            continue
        rec = _record(file, lineno, header, cells, tz, skipped)
        if rec is not None:
            yield rec
    if header is None:
        raise RecordsError(file, 1, "", "the file is empty (no header)")


def parse_records(text: str, file: str = "<records>", *, tz: tzinfo | None = None,
                  skipped: Skipped | None = None) -> list[CenterRecord]:
    """The answered and abandoned calls of call-record CSV text, in file order
    (rows with another outcome are counted in ``skipped``)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return list(_records(enumerate(text.splitlines(), 1), file, tz, skipped))


def iter_records(path: str | os.PathLike[str], *, tz: tzinfo | None = None,
                 skipped: Skipped | None = None, limit: int = RECORDS_MAX_BYTES
                 ) -> Iterator[CenterRecord]:
    """The answered and abandoned calls of a call-record CSV file, read one
    line at a time (a file of up to ``limit`` bytes; TextFileError or
    RecordsError otherwise)."""
    p = Path(path)
    return _records(iter_text_lines(p, "call-record file", limit), str(p), tz, skipped)


def _num(x: float | None) -> str:
    if x is None:
        return ""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _cell(text: str) -> str:
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_records(records: Iterable[CenterRecord]) -> str:
    """Call-record CSV text (all columns) of ``records``."""
    out = [",".join(RECORDS_COLUMNS)]
    for r in records:
        when = r.arrival.isoformat(sep=" ", timespec="seconds" if not r.arrival.microsecond
                                   else "milliseconds")
        out.append(",".join((
            when, _cell(r.queue), str(r.priority), r.outcome,
            _num(r.wait_s) if r.outcome == ANSWERED else "",
            _num(r.handle_s), _num(r.wrap_s),
            _num(r.abandon_s) if r.outcome == ABANDONED else "",
            _cell(r.number), _cell(";".join(f"{k}={v}" for k, v in r.attributes)))))
    return "\n".join(out) + "\n"
