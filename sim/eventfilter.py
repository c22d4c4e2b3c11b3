"""manager.conf ``eventfilter`` and the AMI ``Filter`` action, as Asterisk 22 does them.

Mirrors main/manager.c (22.1 and later: ``manager_add_filter``,
``filter_cmp_fn``, ``match_eventdata``, ``should_send_event``):

* legacy filters: ``eventfilter = <regex>`` (``!<regex>`` excludes), the
  regular expression searched in the whole event text;
* a leading ``!`` excludes in an advanced filter too, unless its
  ``action(...)`` says otherwise (``manager_add_filter``);
* advanced filters: ``eventfilter(<criteria>) = [<pattern>]`` with, in any
  order, ``action(include|exclude)``, ``name(<event>)`` (exact,
  case-sensitive: Asterisk compares hashes of the names),
  ``header(<header>)`` (the pattern is tried on that header's value, each
  occurrence, the value's leading blanks skipped, empty values never
  match) and ``method(regex|exact|starts_with|ends_with|contains|none)``;
  the pattern is empty exactly when the method is ``none`` (the default
  of an advanced filter);
* a session with include filters only sends an event matching any of
  them; with exclude filters only, an event matching none of them; with
  both, an event matching an include and no exclude; with none, every
  event.

Only events *queued* for sessions (``manager_event``: Newchannel, Hangup,
DialBegin, OriginateResponse, Shutdown ...) are filtered.  What an action
writes straight to its session is not: its response and the items of an
event list (``CoreShowChannel``, ``DeviceStateList``'s
``DeviceStateChange``, ``DBGetResponse``, the ``...Complete`` events), and
the ``FullyBooted`` written right after a ``Login``.

Regular expressions are POSIX ERE in Asterisk (``regcomp``); here they are
Python's ``re``, which agrees on the expressions a filter needs.

Also here: :func:`read_manager_conf`, the few manager.conf settings the
simulator honours (a user's ``read``, ``write``, ``eventfilter`` lines;
``[general]`` ``channelvars``), from a file in Asterisk's config syntax.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class FilterError(ValueError):
    """A filter Asterisk refuses (``FILTER_FORMAT_ERROR``); ``compile_error``
    for a regular expression that does not compile (``FILTER_COMPILE_FAIL``)."""

    def __init__(self, message: str, *, compile_error: bool = False) -> None:
        super().__init__(message)
        self.compile_error = compile_error


class Method(enum.Enum):
    """``method(...)``: how the pattern is tried on the data."""

    REGEX = "regex"
    EXACT = "exact"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One ``eventfilter`` line (or one ``Filter`` action)."""

    exclude: bool
    method: Method
    pattern: str = ""
    name: str | None = None
    #: the header tried, with its colon (``Device:``); None: the whole event
    header: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, name: str, text: str) -> bool:
        """``filter_cmp_fn``: does the event ``name`` whose text is ``text`` match?"""
        if self.name is not None and name != self.name:
            return False
        if self.header is None:
            return self._match(text)
        for line in text.split("\n"):
            line = line.removesuffix("\r")
            if not line.startswith(self.header):
                continue
            value = _skip_blanks(line[len(self.header):])
            if value and self._match(value):
                return True
        return False

    def _match(self, data: str) -> bool:
        """``match_eventdata``."""
        method = self.method
        if method is Method.REGEX:
            return self.regex is not None and self.regex.search(data) is not None
        if method is Method.STARTS_WITH:
            return data.startswith(self.pattern)
        if method is Method.ENDS_WITH:
            return data.endswith(self.pattern)
        if method is Method.CONTAINS:
            return self.pattern in data
        if method is Method.EXACT:
            return data == self.pattern
        return True  # NONE


def _skip_blanks(text: str) -> str:
    """``ast_skip_blanks``: skip every character below 33."""
    i = 0
    while i < len(text) and ord(text[i]) < 33:
        i += 1
    return text[i:]


def _option_value(option: str, what: str, line: str) -> str:
    """The text after ``(`` of ``name(Hangup`` (strtok already cut the ``)``)."""
    _, paren, value = option.partition("(")
    value = value.strip()
    if not paren or not value:
        raise FilterError(f"{line}: {what!r} parameter not formatted correctly")
    return value


def parse_filter(criteria: str, pattern: str) -> EventFilter:
    """``manager_add_filter(criteria, pattern)``: the config key
    (``eventfilter`` or ``eventfilter(...)``) and its value.  Raises
    :class:`FilterError` where Asterisk answers ``FILTER_FORMAT_ERROR`` or
    ``FILTER_COMPILE_FAIL``."""
    line = f"'{criteria} = {pattern}'"
    if not criteria:
        raise FilterError("missing criteria")
    # manager_add_filter (main/manager.c, Asterisk 22): a leading '!' is taken
    # off every pattern, legacy or advanced, and makes the filter an exclude
    # one; an advanced filter's action(...) then overrides it:
    #   "For a legacy filter, if the first character of filter_pattern is '!'
    #    then it's an exclude filter.  It's also accepted as an alternative to
    #    specifying "action(exclude)" for an advanced filter.  If "action" is
    #    specified however, it will take precedence."
    exclude = False
    if pattern.startswith("!"):
        exclude, pattern = True, pattern[1:]
    method = Method.REGEX
    name: str | None = None
    header: str | None = None
    start = criteria.find("(")
    if start < 0:
        if not pattern:
            raise FilterError(f"{line}: legacy filter with no filter pattern specified")
    else:
        method = Method.NONE
        options = criteria[start + 1:].strip()
        if not options or not options.endswith(")"):
            raise FilterError(f"{line}: filter options not formatted correctly")
        found = False
        # strtok_r(temp, " ,)"): "action(include),name(Hangup))" -> action(include, name(Hangup
        for option in (t for t in re.split(r"[ ,)]", options) if t):
            if option.startswith("action"):
                value = _option_value(option, "action", line)
                if value not in ("include", "exclude"):
                    raise FilterError(f"{line}: 'action' option {value!r} is unknown")
                exclude = value == "exclude"
            elif option.startswith("name"):
                name = _option_value(option, "name", line)
            elif option.startswith("header"):
                header = _option_value(option, "header", line)
                if not header.endswith(":"):
                    header += ":"
            elif option.startswith("method"):
                value = _option_value(option, "method", line)
                try:
                    method = Method(value)
                except ValueError:
                    raise FilterError(f"{line}: 'method' option {value!r} is unknown") from None
            else:
                raise FilterError(f"{line}: filter option {option!r} is unknown")
            found = True
        if not found:
            raise FilterError(f"{line}: no action, name, header, or method option found")
        if not pattern and method is not Method.NONE:
            raise FilterError(f"{line}: method can't be {method.value!r} with no filter pattern")
        if pattern and method is Method.NONE:
            raise FilterError(f"{line}: method can't be 'none' with a filter pattern")
        if name is None and header is None and method is Method.NONE:
            raise FilterError(f"{line}: no name or header option found and no filter pattern")
    regex = None
    if pattern and method is Method.REGEX:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise FilterError(f"{line}: the regular expression does not compile ({exc})",
                              compile_error=True) from None
    return EventFilter(exclude=exclude, method=method, pattern=pattern, name=name,
                       header=header, regex=regex)


@dataclass(slots=True)
class FilterSet:
    """A session's filters (its user's ``eventfilter`` lines, then its
    ``Filter`` actions): ``should_send_event``."""

    include: list[EventFilter] = field(default_factory=list)
    exclude: list[EventFilter] = field(default_factory=list)

    @classmethod
    def of(cls, filters: Iterable[EventFilter]) -> FilterSet:
        out = cls()
        for f in filters:
            out.add(f)
        return out

    def add(self, f: EventFilter) -> None:
        (self.exclude if f.exclude else self.include).append(f)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def should_send(self, name: str, text: str) -> bool:
        """Is the event ``name`` (its whole text ``text``) sent to the session?"""
        if self.include and not any(f.matches(name, text) for f in self.include):
            return False
        return not any(f.matches(name, text) for f in self.exclude)


def event_name(payload: bytes) -> str:
    """The name of an encoded event (its first line is ``Event: <name>``)."""
    end = payload.find(b"\r\n")
    first = payload[:end] if end >= 0 else payload
    key, _, value = first.partition(b":")
    if key.strip().lower() != b"event":
        return ""
    return value.strip().decode("utf-8", errors="replace")


# ------------------------------------------------------------- manager.conf


@dataclass(frozen=True, slots=True)
class ManagerUser:
    """What the simulator takes of one manager.conf user (and ``[general]``)."""

    name: str
    read: str | None
    write: str | None
    #: (key, value) of every ``eventfilter`` line, in order
    eventfilters: tuple[tuple[str, str], ...]
    #: ``[general]`` ``channelvars`` (None: not set)
    channelvars: tuple[str, ...] | None


def _strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """Asterisk's config comments: ``;`` to the end of the line (``\\;`` is
    a semicolon), ``;-- ... --;`` across lines."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 3, False
            continue
        c = line[i]
        if c == "\\" and line.startswith(";", i + 1):
            out.append(";")
            i += 2
        elif line.startswith(";--", i):
            in_block = True
            i += 3
        elif c == ";":
            break
        else:
            out.append(c)
            i += 1
    return "".join(out), in_block


def parse_conf(text: str, source: str = "manager.conf") -> list[tuple[str, list[tuple[str, str]]]]:
    """Sections of an Asterisk config file: [(name, [(key, value), ...])].
    Raises ValueError naming ``source:line`` for a line that is neither."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line, in_block = _strip_comment(raw, in_block)
        line = line.strip()
        if not line:
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                raise ValueError(f"{source}:{lineno}: section name without ']'")
            sections.append((line[1:end].strip(), []))
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{source}:{lineno}: not 'name = value'")
        if not sections:
            raise ValueError(f"{source}:{lineno}: setting outside a section")
        sections[-1][1].append((key.strip(), value.removeprefix(">").strip()))
    return sections


def read_manager_conf(path: str | Path, user: str = "acd") -> ManagerUser:
    """``user``'s section of a manager.conf (ValueError if there is none)."""
    p = Path(path)
    sections = parse_conf(p.read_text(encoding="utf-8"), str(p))
    channelvars: tuple[str, ...] | None = None
    found: Sequence[tuple[str, str]] | None = None
    for name, settings in sections:
        if name == "general":
            for key, value in settings:
                if key.lower() == "channelvars":
                    channelvars = tuple(v.strip() for v in value.split(",") if v.strip())
        elif name == user:
            found = settings
    if found is None:
        raise ValueError(f"{p}: no [{user}] section")
    read = write = None
    filters: list[tuple[str, str]] = []
    for key, value in found:
        low = key.lower()
        if low == "read":
            read = value
        elif low == "write":
            write = value
        elif key.startswith("eventfilter"):
            filters.append((key, value))
    return ManagerUser(user, read, write, tuple(filters), channelvars)
