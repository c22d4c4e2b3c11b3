"""Call traces (CSV): recorded calls, replayed by the load simulator instead
of random arrivals.

Trace CSV (:func:`load_trace`), a header and one call per row::

    arrival,number,queue,attributes,handle,patience,priority,wrap
    0,13800000001,billing,vip_level=2;dialect=cantonese,120,,0,
    08:00:05,13800000002,tech,,60,30,2,15

``arrival``: seconds from the start, a time of day ``HH:MM:SS``, or a
local date and time ``YYYY-MM-DD HH:MM[:SS]`` (a multi-day trace; seconds from
the scenario's ``start_at``; read by :func:`acd.loaders.localtime.parse_local`,
a value with a UTC offset is converted to this machine's zone);
``priority`` (optional, default 0): the call's priority; ``wrap`` (optional,
empty = the scenario's wrap-up): the agent's after-call work in seconds;
``attributes``: ``key=value`` pairs separated by ``;``, named as the
customers table's columns (``vip_level``; ``vip`` is an alias of it);
``patience`` empty = never hangs up.  A trace is replayed exactly: no
random draws for arrivals, handle times or patience.

"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from acd.loaders.localtime import parse_local
from acd.loaders.textfile import TRACE_MAX_BYTES, csv_records
from acd.loaders.yamlpos import read_text
from acd.loadsim.model import ScenarioError, TraceCall, TraceError, parse_tod

__all__ = ["TRACE_COLUMNS", "load_trace", "parse_trace"]

TRACE_COLUMNS = ("arrival", "number", "queue", "attributes", "handle", "patience",
                 "priority", "wrap")


def parse_trace(text: str, file: str = "<trace>", start_s: float = 0.0,
                start_at: dt.datetime | None = None) -> tuple[TraceCall, ...]:
    """Calls of a trace CSV (see the module docstring), in order of arrival.
    ``start_s``: the scenario's start (time of day), for HH:MM:SS arrivals;
    ``start_at``: its date and time, for date-and-time arrivals."""
    records = csv_records(text, comments=True)  # an open quote: an error on its line
    first = next(records, None)
    if first is None:
        raise TraceError(file, 1, "the trace is empty")
    if isinstance(first[2], str):
        raise TraceError(file, first[0], f"header: {first[2]}")
    header = [h.strip().lower() for h in first[2]]
    missing = [c for c in ("arrival", "queue", "handle") if c not in header]
    if missing:
        raise TraceError(file, 1, f"header: missing column(s) {', '.join(missing)} "
                                  f"(columns: {', '.join(TRACE_COLUMNS)})")
    unknown = [c for c in header if c not in TRACE_COLUMNS]
    if unknown:
        raise TraceError(file, 1, f"header: unknown column(s) {', '.join(unknown)} "
                                  f"(columns: {', '.join(TRACE_COLUMNS)})")
    col = {c: i for i, c in enumerate(header)}
    out: list[TraceCall] = []
    for lineno, _, row in records:
        if isinstance(row, str):
            raise TraceError(file, lineno, row)
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) > len(header):
            raise TraceError(file, lineno, f"{len(row)} fields, the header has {len(header)}")

        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        arr_text = get("arrival")
        arrival: float | None
        if len(arr_text) > 10 and arr_text[4:5] == "-":  # a date and time
            try:  # naive local; one with a UTC offset: converted to this machine's zone
                when = parse_local(arr_text)
            except ValueError as exc:
                raise TraceError(file, lineno, f"arrival: {exc}") from None
            if start_at is None:
                raise TraceError(file, lineno, f"arrival: {arr_text!r}: a date and time "
                                               f"needs the scenario's start date (give "
                                               f"start: \"YYYY-MM-DD HH:MM\")")
            arrival = (when - start_at).total_seconds()
        elif ":" in arr_text:
            tod = parse_tod(arr_text)
            arrival = None if tod is None else tod - start_s
        else:
            try:
                arrival = float(arr_text)
            except ValueError:
                arrival = None
        if arrival is None or not math.isfinite(arrival):
            raise TraceError(file, lineno, f"arrival: {arr_text!r} is not seconds, HH:MM:SS "
                                           f"or YYYY-MM-DD HH:MM:SS")
        if arrival < 0:
            raise TraceError(file, lineno, f"arrival: {arr_text!r} is before the scenario's "
                                           f"start")
        queue = get("queue")
        if not queue:
            raise TraceError(file, lineno, "queue: empty")
        handle = _trace_seconds(file, lineno, "handle", get("handle"), required=True)
        patience = _trace_seconds(file, lineno, "patience", get("patience"), required=False)
        attrs: list[tuple[str, str]] = []
        for part in get("attributes").split(";"):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise TraceError(file, lineno, f"attributes: {part!r} is not key=value")
            k, v = (s.strip() for s in part.split("=", 1))
            if not k:
                raise TraceError(file, lineno, f"attributes: {part!r} has no key")
            if k == "vip":
                k = "vip_level"
            if k == "vip_level" and not v.isdigit():
                raise TraceError(file, lineno, f"attributes: vip level {v!r} is not a number")
            attrs.append((k, v))
        number = get("number") or f"trace{lineno}"
        assert handle is not None
        prio_text = get("priority")
        priority = 0
        if prio_text:
            try:
                priority = int(prio_text)
            except ValueError:
                priority = -1
            if not 0 <= priority <= 100:
                raise TraceError(file, lineno, f"priority: {prio_text!r} is not a whole "
                                               f"number 0-100")
        wrap = _trace_seconds(file, lineno, "wrap", get("wrap"), required=False)
        out.append(TraceCall(arrival, number, queue, tuple(attrs), handle, patience, lineno,
                             priority, wrap))
    if not out:
        raise TraceError(file, first[0], "the trace has no calls (only its header)")
    out.sort(key=lambda c: c.arrival_s)  # stable: ties keep the file's order
    return tuple(out)


def _trace_seconds(file: str, line: int, name: str, text: str, required: bool) -> float | None:
    if not text:
        if required:
            raise TraceError(file, line, f"{name}: empty")
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise TraceError(file, line, f"{name}: {text!r} is not a number of seconds >= 0")
    return value


def load_trace(path: str | Path, start_s: float = 0.0, start_at: dt.datetime | None = None
               ) -> tuple[TraceCall, ...]:
    text, file = read_text(path, ScenarioError, "trace file", limit=TRACE_MAX_BYTES)
    return parse_trace(text, file, start_s, start_at)
