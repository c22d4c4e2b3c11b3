"""What may reach a log or a terminal: callers' numbers and names masked,
repeated warnings counted instead of repeated, control characters stripped.

Used by every layer that logs or prints (adapters, engine, control API,
command line); it imports nothing of ``acd``.

- :func:`private` wraps a caller's number or name for a log call:
  ``log.warning("call %s from %s", call_id, private(caller))`` prints
  ``138****5678`` unless :func:`show_private` was called (the ``logging:
  show_caller_data: true`` setting of acd.yaml).  The masking happens when
  the line is formatted, so a line that is not logged costs nothing.
  :func:`redacted` does the same for a whole event or record (a dataclass:
  its caller, name, number, text ... fields masked), :func:`scrubbed` for a
  message that quotes a caller's number (an error text), and :func:`brief`
  shortens an exception to its type and first line (a database error's
  later lines quote the statement's parameters).
- :class:`Limited` lets the first of a kind of warning through, then one line
  per ``every_s`` with the count of those held back ("... (and 2,581 more
  like it in the last 60 s)").
- :func:`printable` makes text from outside (a caller's name, a file's
  content) safe to print on an operator's terminal: escape sequences and other
  control characters become ``\\x1b``-style text.  :class:`SafeFormatter`
  applies it to every log line (one record, one line; a traceback keeps its
  lines, each made printable).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import threading
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = [
    "Limited",
    "Private",
    "Redacted",
    "SafeFormatter",
    "Scrubbed",
    "brief",
    "mask",
    "printable",
    "private",
    "redacted",
    "scrubbed",
    "show_private",
    "showing_private",
]

_show = False


def show_private(show: bool = True) -> None:
    """Show callers' numbers and names in logs as they are (off by default)."""
    global _show
    _show = show


def showing_private() -> bool:
    return _show


def mask(text: str) -> str:
    """A caller's number or name with its middle hidden: ``13812345678`` →
    ``138****5678``, ``张三丰`` → ``张**``; empty stays empty.  Enough is left
    for an operator to tell two callers apart in a log, not to call them:
    at least a third of a number (and never fewer than 4 of its characters)
    is hidden."""
    text = printable(text, newlines=False)
    n = len(text)
    if n == 0:
        return ""
    digits = sum(ch.isdigit() for ch in text)
    if digits * 2 >= n and n >= 7:  # a number: keep a little of its head and its tail
        tail = 4 if n >= 8 else 2
        head = min(3, max(0, n - tail - max(4, -(-n // 3))))
        return text[:head] + "*" * (n - head - tail) + text[-tail:]
    if n <= 2:
        return text[0] + "*" * (n - 1) if n > 1 else "*"
    return text[0] + "*" * min(n - 1, 8)


class Private:
    """A caller's number or name in a log call; masked when formatted."""

    __slots__ = ("text",)

    def __init__(self, text: object) -> None:
        self.text = "" if text is None else str(text)

    def __str__(self) -> str:
        return printable(self.text) if _show else mask(self.text)

    def __repr__(self) -> str:
        return repr(str(self))


def private(text: object) -> Private:
    return Private(text)


# ------------------------------------------------------------ whole records

#: fields of an event, record or row that hold what a caller said or is:
#: their values are masked by :func:`redacted`
PRIVATE_FIELDS = frozenset({
    "caller", "caller_name", "number", "name", "text", "to", "sender", "source",
    "destination", "short_message", "msisdn", "phone", "token", "url", "value",
})
#: fields that map names to what the caller entered or a lookup found
#: (IVR variables, call attributes): names shown, values masked
PRIVATE_MAPS = frozenset({"attributes", "variables", "vars", "profile_vars", "data"})
_DEPTH = 4


class Redacted:
    """An event, record or row for a log line: a dataclass shown as
    ``Type(field=value, ...)`` with the values of :data:`PRIVATE_FIELDS`
    masked and those of :data:`PRIVATE_MAPS` hidden (unless
    :func:`show_private`); anything else shown as its type's name only."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return printable(_render(self.obj, _DEPTH), newlines=False)

    __repr__ = __str__


def redacted(obj: object) -> Redacted:
    return Redacted(obj)


def _render(v: object, depth: int) -> str:
    if v is None or isinstance(v, bool | int | float | str | bytes):
        return repr(v)
    if isinstance(v, enum.Enum):
        return f"{type(v).__name__}.{v.name}"
    if depth <= 0:
        return f"{type(v).__name__}(...)"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        parts = []
        for f in dataclasses.fields(v):
            try:
                value = getattr(v, f.name)
            except AttributeError:
                continue
            parts.append(f"{f.name}={_field(f.name, value, depth - 1)}")
        return f"{type(v).__name__}({', '.join(parts)})"
    if isinstance(v, tuple | list | frozenset | set):
        inner = ", ".join(_render(x, depth - 1) for x in list(v)[:20])
        more = ", ..." if len(v) > 20 else ""
        if isinstance(v, tuple):
            return f"({inner},)" if len(v) == 1 else f"({inner}{more})"
        return f"[{inner}{more}]"
    if isinstance(v, Mapping):
        inner = ", ".join(f"{k!r}: {_render(x, depth - 1)}" for k, x in list(v.items())[:20])
        return "{" + inner + (", ..." if len(v) > 20 else "") + "}"
    return f"{type(v).__name__}(...)"  # unknown: it could carry anything


def _field(name: str, value: object, depth: int) -> str:
    if name in PRIVATE_FIELDS and value is not None and not isinstance(value, bool | float):
        if isinstance(value, str | bytes | int):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return repr(printable(text) if _show else mask(text))
        if not _show:  # a list of numbers, say
            return "'*'"
    if name in PRIVATE_MAPS and not _show:
        if isinstance(value, Mapping):
            return "{" + ", ".join(f"{k!r}: '*'" for k in list(value)[:20]) + "}"
        if isinstance(value, tuple | list):  # (name, value) pairs
            keys = [p[0] for p in value if isinstance(p, tuple | list) and p]
            inner = ", ".join(f"({k!r}, '*')" for k in keys[:20])
            return f"({inner},)" if len(keys) == 1 else f"({inner})"
        return "'*'"
    return _render(value, depth)


def scrubbed(text: object, *values: object) -> Scrubbed:
    """``text`` (an error message, say) with each of ``values`` (a caller's
    number, its dialled form ...) masked wherever it appears, when the line
    is formatted."""
    return Scrubbed(str(text), tuple(str(v) for v in values if v is not None and len(str(v)) > 2))


class Scrubbed:
    """A message quoting callers' numbers or names; masked when formatted."""

    __slots__ = ("text", "values")

    def __init__(self, text: str, values: tuple[str, ...]) -> None:
        self.text, self.values = text, values

    def __str__(self) -> str:
        out = self.text
        if not _show:
            for v in sorted(self.values, key=len, reverse=True):
                out = out.replace(v, mask(v))
        return printable(out)

    __repr__ = __str__


def brief(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` (cut to ``limit``): what a
    repeated failure logs, without the traceback and without a database
    error's later lines (its statement and the parameters, callers' numbers
    among them)."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > limit:
        first = first[:limit] + "..."
    first = printable(first, newlines=False)
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# ------------------------------------------------------------- terminals

# C0 controls but tab and newline, DEL, C1 controls, the Unicode bidi
# embeddings, overrides, isolates and marks that can make a line read
# backwards on a terminal, the line and paragraph separators, and lone
# surrogates (undecodable bytes: a terminal's encoder refuses them)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters written as ``\\x1b`` etc., so that
    nothing from outside can move the cursor, recolour or retitle an
    operator's terminal.  ``newlines=False`` escapes line breaks and tabs
    too (one record per line in a log)."""
    out = _CONTROL.sub(_escape, text)
    if not newlines:
        out = out.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return out


class SafeFormatter(logging.Formatter):
    """A log formatter whose every record is one printable line: the
    message's control characters and line breaks escaped.  A traceback keeps
    its lines (each made printable); unless :func:`show_private`, each
    exception's message in it is cut to its first line (a database error's
    next lines quote the statement's parameters: callers' numbers)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record), newlines=False)

    def formatException(self, ei: Any) -> str:
        try:
            text = _traceback_text(ei)
        except Exception:  # noqa: BLE001 - a log line must never fail on its traceback
            text = super().formatException(ei)
        return printable(text)

    def formatStack(self, stack_info: str) -> str:
        return printable(stack_info)


def _traceback_text(ei: tuple[type[BaseException], BaseException, TracebackType | None]
                    ) -> str:
    te = traceback.TracebackException(ei[0], ei[1], ei[2], compact=True)
    if not _show:
        seen: set[int] = set()
        todo = [te]
        while todo:
            t = todo.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            s = getattr(t, "_str", None)
            if isinstance(s, str) and "\n" in s.strip():
                t._str = s.strip().splitlines()[0] + " [...]"  # type: ignore[attr-defined]
            todo.extend(x for x in (t.__cause__, t.__context__) if x is not None)
    text = "".join(te.format())
    return text[:-1] if text.endswith("\n") else text


# ------------------------------------------------------------ rate limits


class Limited:
    """Rate-limit one kind of log line: the first goes through, later ones
    within ``every_s`` are counted and reported with the next line let
    through.  Thread-safe; keyed so one instance can guard several kinds
    (``limited.warning(log, "agi-refused", "...", args)``).  At most
    ``max_keys`` kinds are remembered (the quiet ones are forgotten first).
    :meth:`flush` (at stop) logs the last line held back of each kind with
    its count."""

    def __init__(self, every_s: float = 60.0, max_keys: int = 1000) -> None:
        self.every_s = every_s
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        #: the latest line held back of each kind: (logger, level, msg, args)
        self._latest: dict[str, tuple[logging.Logger, int, str, tuple[Any, ...]]] = {}
        self.total: dict[str, int] = {}

    def log(self, logger: logging.Logger, level: int, key: str, msg: str,
            *args: Any, now: float | None = None, exc_info: Any = None,
            stacklevel: int = 2) -> bool:
        """Log ``msg % args`` unless one of ``key`` went out less than
        ``every_s`` ago; returns whether it was logged.  The record names
        the caller's file and line (``stacklevel`` as in :mod:`logging`)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            if key not in self.total and len(self.total) >= self.max_keys:
                self._forget()
            self.total[key] = self.total.get(key, 0) + 1
            last = self._last.get(key)
            if last is not None and t - last < self.every_s:
                self._held[key] = self._held.get(key, 0) + 1
                self._latest[key] = (logger, level, msg, args)
                return False
            held = self._held.pop(key, 0)
            self._latest.pop(key, None)
            self._last[key] = t
        if held:
            msg = f"{msg} (and {held:,} more like it in the last {self.every_s:g} s)"
        logger.log(level, msg, *args, exc_info=exc_info, stacklevel=stacklevel)
        return True

    def _forget(self) -> None:
        """Make room: drop the kinds with nothing held back, the oldest first."""
        quiet = sorted((k for k in self.total if k not in self._held),
                       key=lambda k: self._last.get(k, 0.0))
        for k in quiet[: max(1, len(self.total) // 2)]:
            self.total.pop(k, None)
            self._last.pop(k, None)

    def warning(self, logger: logging.Logger, key: str, msg: str, *args: Any,
                now: float | None = None, exc_info: Any = None) -> bool:
        return self.log(logger, logging.WARNING, key, msg, *args, now=now, exc_info=exc_info,
                        stacklevel=3)

    def error(self, logger: logging.Logger, key: str, msg: str, *args: Any,
              now: float | None = None, exc_info: Any = None) -> bool:
        return self.log(logger, logging.ERROR, key, msg, *args, now=now, exc_info=exc_info,
                        stacklevel=3)

    def info(self, logger: logging.Logger, key: str, msg: str, *args: Any,
             now: float | None = None) -> bool:
        return self.log(logger, logging.INFO, key, msg, *args, now=now, stacklevel=3)

    def held(self, key: str | None = None) -> int:
        """How many lines are held back now (of ``key``, or in all)."""
        with self._lock:
            return self._held.get(key, 0) if key is not None else sum(self._held.values())

    def flush(self, logger: logging.Logger | None = None, level: int | None = None) -> None:
        """Report what is still held back (at stop): the latest line of each
        kind with its count, on its own logger and level (or ``logger`` and
        ``level`` when given)."""
        with self._lock:
            held, self._held = self._held, {}
            latest, self._latest = self._latest, {}
            self._last.clear()
        for key, n in held.items():
            lg, lv, msg, args = latest.get(key, (logger, level, f"{key}: held back", ()))
            lg = logger or lg or logging.getLogger(__name__)
            lv = level if level is not None else (lv if lv is not None else logging.WARNING)
            # the latest line held back, and how many more besides it
            lg.log(lv, f"{msg} (and {n - 1:,} more like it, held back)" if n > 1 else msg, *args)
