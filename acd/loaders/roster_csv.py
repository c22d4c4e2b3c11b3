"""The Roster CSV and the agent state records CSV (docs/planning.md,
"Rosters and agent states").

Roster CSV (:func:`parse_roster`, :func:`load_roster`, :func:`write_roster`)::

    agent,start,end,activity,skills
    a1,2026-11-02 22:00,2026-11-03 06:00,shift,billing=5;tech=3
    a1,2026-11-03 01:00,2026-11-03 01:30,break,
    a1,2026-11-03 03:10,2026-11-03 03:25,not_ready:coaching,

``activity``: ``shift`` (also when the column is absent or empty), or any
other word: a period inside one of that agent's shifts when the agent takes no
calls.  ``skills`` (shift rows only, optional): ``name=level`` pairs
separated by ``;`` (``name:level`` too, as in the agents CSV).

Agent state records CSV (:func:`parse_states`, :func:`load_states`)::

    agent,at,state,reason
    a1,2026-11-02 21:58:12,ready,
    a1,2026-11-03 01:00:40,paused,break

``state``: an agent state (logged_out, ready, reserved, on_call, wrap_up,
paused) or one of :data:`STATE_WORDS` (login, logout, aux, acw, ...).

Times are local wall-clock times ``YYYY-MM-DD HH:MM[:SS]`` (or with ``T``);
a time with a UTC offset (``2026-11-02T21:58:12+01:00``, ``...Z``) is
converted to the local time of the zone ``tz`` (None: this machine's).
Errors: :class:`RosterFileError`, ``file:line: column: problem``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from acd.loaders.localtime import parse_local
from acd.loaders.profile_fields import FieldError, parse_levels
from acd.loaders.textfile import CsvFileError, csv_header, csv_records, read_text_file
from acd.planning.roster import SHIFT, Activity, Roster, RosterError, Shift, StateRow, when

__all__ = [
    "ROSTER_COLUMNS", "ROSTER_MAX_BYTES", "STATES_COLUMNS", "STATES_MAX_BYTES", "STATE_WORDS",
    "RosterFileError", "load_roster", "load_states", "parse_local", "parse_roster",
    "parse_states", "write_roster",
]

ROSTER_COLUMNS = ("agent", "start", "end", "activity", "skills")
STATES_COLUMNS = ("agent", "at", "state", "reason")
#: the largest Roster CSV read: a year of 1,000 agents' shifts with three
#: activities each is some 70 MB
ROSTER_MAX_BYTES = 128 * 1024 * 1024
#: the largest state records CSV read: a month of 1,000 agents changing state
#: 200 times a day is some 250 MB
STATES_MAX_BYTES = 384 * 1024 * 1024
#: state words of other centers' exports, beside our own state names
#: (compared lower-cased, ``-`` and spaces as ``_``)
STATE_WORDS = {
    "login": "ready", "logged_in": "ready", "available": "ready", "idle": "ready",
    "logout": "logged_out", "logoff": "logged_out", "logged_off": "logged_out",
    "not_ready": "paused", "notready": "paused", "aux": "paused", "pause": "paused",
    "break": "paused",
    "acw": "wrap_up", "wrap": "wrap_up", "wrapup": "wrap_up", "after_call_work": "wrap_up",
    "busy": "on_call", "talk": "on_call", "talking": "on_call", "oncall": "on_call",
    "ringing": "reserved", "ring": "reserved",
}
_OUR_STATES = ("logged_out", "ready", "reserved", "on_call", "wrap_up", "paused")


class RosterFileError(CsvFileError):
    """A roster or state records file is wrong: ``file:line: column: problem``
    (line 0: the file as a whole, ``file: problem``)."""


def _header(records: Iterator[tuple[int, int, list[str] | str]], file: str, what: str,
            columns: tuple[str, ...], required: tuple[str, ...]) -> dict[str, int]:
    first = next(records, None)
    if first is None:
        raise RosterFileError(file, 0, "", f"the {what} is empty (no header)")
    if isinstance(first[2], str):
        raise RosterFileError(file, first[0], "header", first[2])
    try:
        return csv_header(first[2], columns, required)
    except ValueError as exc:
        raise RosterFileError(file, first[0], "header", str(exc)) from None


def _skills(raw: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for part in raw.split(";"):
        part = part.strip()
        if part:
            sep = "=" if "=" in part else ":"
            name, _, level = part.partition(sep)
            pairs.append((name.strip(), level.strip()))
    try:
        levels = parse_levels(pairs, lower=False)
    except FieldError as exc:
        raise ValueError(f"{exc} (write name=level;name=level, e.g. billing=5;tech=3)") from None
    return tuple(sorted(levels.items()))


def _rows(records: Iterator[tuple[int, int, list[str] | str]], file: str, n: int,
          i_agent: int) -> Iterator[tuple[int, list[str], str]]:
    """(line, cells padded to ``n``, agent) of each data row; blank rows
    skipped; a row too long, an open quote or an empty agent: RosterFileError."""
    for lineno, _, row in records:
        if isinstance(row, str):
            raise RosterFileError(file, lineno, "", row)
        if len(row) != n:
            if len(row) > n:
                raise RosterFileError(file, lineno, "", f"{len(row)} fields, the header has {n}")
            row = row + [""] * (n - len(row))
        agent = row[i_agent].strip()
        if not agent:
            if all(not c.strip() for c in row):
                continue
            raise RosterFileError(file, lineno, "agent", "empty")
        yield lineno, row, agent


def parse_roster(text: str, file: str = "<roster>", tz: dt.tzinfo | None = None) -> Roster:
    """The roster of a Roster CSV (module docstring), or RosterFileError."""
    records = csv_records(text, comments=True)
    col = _header(records, file, "roster", ROSTER_COLUMNS, ("agent", "start", "end"))
    shift_rows: list[Shift] = []
    act_rows: list[tuple[str, Activity]] = []
    n = len(col)
    i_agent, i_start, i_end = col["agent"], col["start"], col["end"]
    i_kind, i_skills = col.get("activity"), col.get("skills")
    for lineno, row, agent in _rows(records, file, n, i_agent):
        times = []
        for c, i in (("start", i_start), ("end", i_end)):
            try:
                times.append(parse_local(row[i], tz))
            except ValueError as exc:
                raise RosterFileError(file, lineno, c, str(exc)) from None
        kind = (row[i_kind].strip() if i_kind is not None else "") or SHIFT
        raw_skills = row[i_skills].strip() if i_skills is not None else ""
        try:
            if kind == SHIFT:
                try:
                    skills = _skills(raw_skills) if raw_skills else ()
                except ValueError as exc:
                    raise RosterFileError(file, lineno, "skills", str(exc)) from None
                shift_rows.append(Shift(agent, times[0], times[1], skills, (), lineno))
            else:
                if raw_skills:
                    raise RosterFileError(file, lineno, "skills",
                                          f"only on shift rows (this is a {kind!r} row)")
                act_rows.append((agent, Activity(times[0], times[1], kind, lineno)))
        except RosterError as exc:
            raise RosterFileError(file, exc.line or lineno, exc.column, exc.problem) from None
    try:  # the shifts' overlaps first: an activity then lies in one shift at most
        Roster(tuple(shift_rows))
    except RosterError as exc:
        raise RosterFileError(file, exc.line, exc.column, exc.problem) from None
    by_agent: dict[str, list[Shift]] = {}
    for s in shift_rows:
        by_agent.setdefault(s.agent, []).append(s)
    acts: dict[int, list[Activity]] = {}
    for agent, a in act_rows:
        home = next((s for s in by_agent.get(agent, ())
                     if s.start <= a.start and a.end <= s.end), None)
        if home is None:
            near = by_agent.get(agent)
            raise RosterFileError(
                file, a.line, "start",
                f"{a.kind} {when(a.start)} - {when(a.end)} lies in no shift of {agent}"
                + (" (the agent has no shift row)" if not near else
                   " (its shifts: " + ", ".join(f"{when(s.start)} - {when(s.end)} "
                                                 f"line {s.line}" for s in near[:3])
                   + (", ..." if len(near) > 3 else "") + ")"))
        acts.setdefault(id(home), []).append(a)
    shifts = []
    for s in shift_rows:
        try:
            shifts.append(Shift(s.agent, s.start, s.end, s.skills, tuple(acts.get(id(s), ())),
                                s.line))
        except RosterError as exc:
            raise RosterFileError(file, exc.line, exc.column, exc.problem) from None
    return Roster(tuple(shifts))


def load_roster(path: str | Path, tz: dt.tzinfo | None = None) -> Roster:
    """The roster of a Roster CSV file; TextFileError (missing, too big, not
    UTF-8) or RosterFileError."""
    return parse_roster(read_text_file(path, "roster", ROSTER_MAX_BYTES), str(path), tz)


def _cell(text: str) -> str:
    if any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def write_roster(roster: Roster) -> str:
    """The Roster CSV of ``roster`` (each shift row, then its activities);
    :func:`parse_roster` reads it back as the same roster."""
    lines = [",".join(ROSTER_COLUMNS)]
    for s in roster.shifts:
        skills = ";".join(f"{name}={level}" for name, level in s.skills)
        lines.append(",".join((_cell(s.agent), when(s.start), when(s.end), SHIFT,
                               _cell(skills))))
        for a in s.activities:
            lines.append(",".join((_cell(s.agent), when(a.start), when(a.end), _cell(a.kind),
                                   "")))
    return "\n".join(lines) + "\n"


def state_value(word: str) -> str | None:
    """Our state name of a state word (:data:`STATE_WORDS`), None if unknown."""
    w = word.strip().lower().replace("-", "_").replace(" ", "_")
    if w in _OUR_STATES:
        return w
    return STATE_WORDS.get(w)


def parse_states(text: str, file: str = "<states>", tz: dt.tzinfo | None = None
                 ) -> list[StateRow]:
    """The state records of an agent state records CSV (module docstring), in
    the file's order (:func:`~acd.planning.roster.roster_from_states` sorts
    and notes records out of time order), or RosterFileError."""
    records = csv_records(text, comments=True)
    col = _header(records, file, "state records file", STATES_COLUMNS, ("agent", "at", "state"))
    out: list[StateRow] = []
    n = len(col)
    i_agent, i_at, i_state, i_reason = col["agent"], col["at"], col["state"], col.get("reason")
    states: dict[str, str | None] = {}  # a state word -> our state (a few words, many rows)
    for lineno, row, agent in _rows(records, file, n, i_agent):
        try:
            at = parse_local(row[i_at], tz)
        except ValueError as exc:
            raise RosterFileError(file, lineno, "at", str(exc)) from None
        word = row[i_state]
        state = states.get(word)
        if state is None:
            state = states[word] = state_value(word)
            if state is None:
                word = word.strip()
                raise RosterFileError(
                    file, lineno, "state",
                    f"{word!r} is not an agent state ({', '.join(_OUR_STATES)}; also "
                    f"{', '.join(sorted(STATE_WORDS))})" if word else "empty")
        reason = row[i_reason].strip() if i_reason is not None else ""
        if not reason and word.strip().lower() == "break":
            reason = "break"
        out.append(StateRow(agent, at, state, reason, lineno))
    return out


def load_states(path: str | Path, tz: dt.tzinfo | None = None) -> list[StateRow]:
    """The records of an agent state records CSV file; TextFileError or
    RosterFileError."""
    return parse_states(read_text_file(path, "state records file", STATES_MAX_BYTES),
                        str(path), tz)
