"""Reading a queue_log: Asterisk's documented format, parsed on its own
(not with the writer's code), so a test of the writer against this reader
checks the format and not one piece of code against itself.

The format (Asterisk's ``main/logger.c``, ``ast_queue_log``; the event list
of the Asterisk documentation, "Queue Logs")::

    epoch|callid|queuename|agent|event|data1|data2|...

- ``epoch``: seconds since 1970, a whole number;
- ``callid``: the caller channel's Uniqueid, or ``NONE``, ``MANAGER``,
  ``REALTIME``, ``CLI``;
- ``queuename``, ``agent``: names, or ``NONE``;
- ``event``: a name in capitals (app_queue's, or any a ``QueueLog()`` wrote);
- the data fields of the event, as many as it has (none for a line that
  ends right after the event, as Asterisk 1.2 wrote some).

Pure: text in, :class:`Entry` items out.  A malformed line raises
:class:`QueueLogFormatError` naming ``source:line``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EVENT_FIELDS", "Entry", "QueueLogFormatError", "counts", "parse_lines",
           "parse_row", "parse_text", "queue_counts"]

#: the documented data fields of app_queue's events, in order; a name
#: ending in ``_s`` is whole seconds, ``_ms`` milliseconds, ``pos`` a
#: 1-based position: each a whole number
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ABANDON": ("pos", "origpos", "waittime_s"),
    "ADDMEMBER": ("paused",),
    "AGENTDUMP": (),
    "AGENTLOGIN": ("channel",),
    "AGENTLOGOFF": ("channel", "logintime_s"),
    "ATTENDEDTRANSFER": ("method", "target", "holdtime_s", "calltime_s", "origpos"),
    "BLINDTRANSFER": ("extension", "context", "holdtime_s", "calltime_s", "origpos"),
    "COMPLETEAGENT": ("holdtime_s", "calltime_s", "origpos"),
    "COMPLETECALLER": ("holdtime_s", "calltime_s", "origpos"),
    "CONFIGRELOAD": (),
    "CONNECT": ("holdtime_s", "bridged_uniqueid", "ringtime_s"),
    "ENTERQUEUE": ("url", "callerid", "origpos", "callername"),
    "EXITEMPTY": ("pos", "origpos", "waittime_s"),
    "EXITWITHKEY": ("key", "pos", "origpos", "waittime_s"),
    "EXITWITHTIMEOUT": ("pos", "origpos", "waittime_s"),
    "PAUSE": ("reason",),
    "PAUSEALL": ("reason",),
    "QUEUESTART": (),
    "REMOVEMEMBER": (),
    "RINGCANCELED": ("ringtime_ms",),
    "RINGNOANSWER": ("ringtime_ms",),
    "SYSCOMPAT": (),
    "UNPAUSE": ("reason",),
    "UNPAUSEALL": ("reason",),
    "WITHDRAW": ("pos", "origpos", "waittime_s", "info"),
}

#: events whose data fields may be fewer than documented: ENTERQUEUE has
#: the caller's name only with ``log_caller_id_name``; older Asterisks wrote
#: ENTERQUEUE without the position and ABANDON/EXIT* as documented
_OPTIONAL_FROM: dict[str, int] = {"ENTERQUEUE": 2}

_EVENT = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_WHOLE = re.compile(r"-?[0-9]+\Z")


class QueueLogFormatError(ValueError):
    """A line that is not a queue_log line; the message names ``source:line``."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One line read: where it was, its five fixed fields, its data fields
    as written, and (for the events of :data:`EVENT_FIELDS`) the data by name,
    whole numbers as ``int``."""

    line_no: int
    time: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]
    fields: Mapping[str, str | int]

    def __getitem__(self, name: str) -> str | int:
        return self.fields[name]


def _numeric(name: str) -> bool:
    return name.endswith(("_s", "_ms")) or name in ("pos", "origpos")


def _typed(event: str, data: tuple[str, ...], where: str) -> dict[str, str | int]:
    names = EVENT_FIELDS.get(event)
    if names is None:
        return {}
    # trailing empty fields carry nothing ("|EVENT|" is one empty field)
    present = list(data)
    while present and present[-1] == "" and len(present) > len(names):
        present.pop()
    if len(present) > len(names) and names:
        raise QueueLogFormatError(f"{where}: {event} has {len(present)} data fields, "
                                  f"at most {len(names)} ({'|'.join(names)})")
    need = _OPTIONAL_FROM.get(event, len(names))
    if names and len(present) < need and any(_numeric(n) for n in names[len(present):need]):
        raise QueueLogFormatError(f"{where}: {event} has {len(present)} data fields, "
                                  f"needs {need} ({'|'.join(names[:need])})")
    out: dict[str, str | int] = {}
    for name, value in zip(names, present, strict=False):
        if _numeric(name):
            if not _WHOLE.match(value):
                raise QueueLogFormatError(f"{where}: {event} {name}: {value[:40]!r} is not "
                                          f"a whole number")
            out[name] = int(value)
        else:
            out[name] = value
    return out


def _parse(line: str, line_no: int, source: str) -> Entry:
    where = f"{source}:{line_no}"
    parts = line.split("|")
    if len(parts) < 5:
        raise QueueLogFormatError(f"{where}: {len(parts)} fields; a queue_log line has at "
                                  f"least 5 (epoch|callid|queuename|agent|event)")
    epoch, callid, queue, agent, event = parts[:5]
    if not epoch.isascii() or not epoch.isdigit():
        raise QueueLogFormatError(f"{where}: the time {epoch[:40]!r} is not whole seconds "
                                  f"since the epoch")
    if not _EVENT.match(event):
        raise QueueLogFormatError(f"{where}: the event {event[:40]!r} is not an event name")
    for name, value in (("callid", callid), ("queuename", queue), ("agent", agent)):
        if value == "":
            raise QueueLogFormatError(f"{where}: {name} is empty (Asterisk writes NONE)")
    data = tuple(parts[5:])
    return Entry(line_no, int(epoch), callid, queue, agent, event, data,
                 _typed(event, data, where))


def parse_lines(lines: Iterable[str], source: str = "queue_log") -> Iterator[Entry]:
    """Entries of ``lines`` (numbered from 1; blank lines skipped); the
    first malformed line raises :class:`QueueLogFormatError`."""
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        yield _parse(line, n, source)


def parse_text(text: str, source: str = "queue_log") -> list[Entry]:
    return list(parse_lines(text.split("\n"), source))


def parse_row(row: Mapping[str, Any], line_no: int = 0,
              source: str = "queue_log table") -> Entry:
    """A row of the realtime ``queue_log`` table (``time`` a datetime or
    epoch, ``callid``, ``queuename``, ``agent``, ``event``, ``data1``..``data5``
    or ``data``) read as the line Asterisk would have written to the file."""
    t = row.get("time")
    ts = getattr(t, "timestamp", None)
    if callable(ts):
        epoch = int(ts())
    elif isinstance(t, int | float):
        epoch = int(t)
    else:
        raise QueueLogFormatError(f"{source}:{line_no}: time {t!r} is not a time")
    if "data1" in row:
        data = [str(row.get(f"data{i}") or "") for i in range(1, 6)]
        while len(data) > 1 and data[-1] == "":
            data.pop()
    else:
        data = str(row.get("data") or "").split("|")
    fixed = [str(row.get(k) or "") for k in ("callid", "queuename", "agent", "event")]
    return _parse("|".join([str(epoch), *fixed, *data]), line_no, source)


def counts(entries: Iterable[Entry]) -> Counter[tuple[str, str]]:
    """How many lines of each (queue, event)."""
    return Counter((e.queue, e.event) for e in entries)


def queue_counts(entries: Iterable[Entry]) -> dict[str, dict[str, int]]:
    """Per queue (``NONE`` left out): offered (ENTERQUEUE), answered
    (CONNECT), abandoned (ABANDON), timeouts (EXITWITHTIMEOUT), and
    completed (COMPLETECALLER + COMPLETEAGENT)."""
    c = counts(entries)
    queues = sorted({q for q, _ in c if q != "NONE"})
    return {q: {"offered": c[(q, "ENTERQUEUE")], "answered": c[(q, "CONNECT")],
                "abandoned": c[(q, "ABANDON")], "timeouts": c[(q, "EXITWITHTIMEOUT")],
                "completed": c[(q, "COMPLETECALLER")] + c[(q, "COMPLETEAGENT")]}
            for q in queues}
