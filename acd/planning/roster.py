"""Rosters: who is on shift when, and when inside a shift they take no calls.

A :class:`Roster` is a set of :class:`Shift` s (an agent, a start, an end
that may be the next day, the agent's skills if known) each holding its
:class:`Activity` s (breaks, lunches, meetings, not-ready periods: times
inside the shift when the agent takes no calls).  Every time is a NAIVE
LOCAL wall-clock datetime.  :meth:`Roster.scheduled` counts the agents
available per interval, the figure staffing and scheduling compare with the
requirements.

:func:`roster_from_states` builds the roster of a period a center lived
through from its agents' state records (:class:`StateRow`: ours from the
database table ``agent_events``, or a center's export): a login opens a
shift, a logout closes it, and pauses other than ring-no-answer pauses
become activities whose kind is the pause's reason.  What it had to guess or
leave out is counted in :class:`ImportNotes`.

Pure computation: the files are read and written in
:mod:`acd.loaders.roster_csv` (docs/planning.md, "Rosters and agent states").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from acd.core.model import AgentState
from acd.planning.intervals import spread

__all__ = [
    "RONA_REASONS", "Activity", "ImportNotes", "Roster", "RosterError", "Shift", "StateRow",
    "is_rona_reason", "roster_from_states", "when",
]

#: the word of a shift row in the Roster CSV's ``activity`` column (so no
#: activity may be called that)
SHIFT = "shift"
#: pause reasons of a ring-no-answer pause (compared lower-cased, ``-``/space
#: as ``_``): the agent did not answer an offer and was paused by the ACD, not
#: by a plan; such pauses stay part of the agent's available time.  Our
#: engine's own are ``offer NOANSWER``, ``offer BUSY``, ``offer CHANUNAVAIL``...
#: (``offer `` + the failed offer's reason), recognised by that prefix.
RONA_REASONS = frozenset({"rona", "no_answer", "noanswer", "ring_no_answer", "ringnoanswer"})
#: the prefix of our engine's failed-offer pause reasons (acd.core.center)
RONA_PREFIX = "offer "
#: the kind of a pause that has no reason (a login that is not yet ready,
#: a center's export without reasons)
NO_REASON_KIND = "not_ready"
_STATES = frozenset(s.value for s in AgentState)


class RosterError(ValueError):
    """A roster is wrong: ``line`` (0: not from a file), ``column`` (the
    field, "" for the row as a whole) and the ``problem``."""

    def __init__(self, problem: str, line: int = 0, column: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.column + ': ' if self.column else ''}{self.problem}"


def when(t: dt.datetime) -> str:
    """``2026-11-03 01:00`` (seconds only when there are some)."""
    if t.microsecond:
        return t.strftime("%Y-%m-%d %H:%M:%S.%f")
    return t.strftime("%Y-%m-%d %H:%M:%S" if t.second else "%Y-%m-%d %H:%M")


def _naive(t: dt.datetime, what: str, line: int) -> None:
    if not isinstance(t, dt.datetime):
        raise RosterError(f"{t!r} is not a date and time", line, what)
    if t.tzinfo is not None:
        raise RosterError(f"{when(t)} has a time zone: roster times are local wall-clock "
                          "times (naive datetimes)", line, what)


@dataclass(frozen=True, slots=True)
class Activity:
    """A period inside a shift when the agent takes no calls."""

    start: dt.datetime  # naive local
    end: dt.datetime
    kind: str  # "break", "lunch", "meeting", "not_ready:coaching", ... (a free word)
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        _naive(self.start, "start", self.line)
        _naive(self.end, "end", self.line)
        if self.end <= self.start:
            raise RosterError(f"{when(self.end)} is not after the start {when(self.start)}",
                              self.line, "end")
        if not self.kind.strip():
            raise RosterError("empty: an activity needs a kind (break, lunch, ...)",
                              self.line, "activity")
        if self.kind == SHIFT:
            raise RosterError(f"{SHIFT!r} names a shift, not an activity", self.line, "activity")


@dataclass(frozen=True, slots=True)
class Shift:
    """An agent's shift: ``end`` may be the next day (a shift across midnight);
    ``skills`` () = the agent's skills as known elsewhere; ``activities``
    sorted, inside [start, end], not overlapping (checked)."""

    agent: str
    start: dt.datetime
    end: dt.datetime
    skills: tuple[tuple[str, int], ...] = ()
    activities: tuple[Activity, ...] = ()
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not self.agent.strip():
            raise RosterError("empty: a shift needs an agent", self.line, "agent")
        _naive(self.start, "start", self.line)
        _naive(self.end, "end", self.line)
        if self.end <= self.start:
            raise RosterError(f"{when(self.end)} is not after the start {when(self.start)}",
                              self.line, "end")
        acts = tuple(sorted(self.activities, key=lambda a: (a.start, a.end, a.kind)))
        object.__setattr__(self, "activities", acts)
        for a in acts:
            if a.start < self.start or a.end > self.end:
                raise RosterError(
                    f"{a.kind} {when(a.start)} - {when(a.end)} lies outside {self.agent}'s "
                    f"shift {when(self.start)} - {when(self.end)}"
                    + (f" (line {self.line})" if self.line else ""), a.line or self.line,
                    "start" if a.start < self.start else "end")
        for a, b in pairwise(acts):
            if b.start < a.end:
                raise RosterError(
                    f"{b.kind} {when(b.start)} - {when(b.end)} overlaps {a.kind} "
                    f"{when(a.start)} - {when(a.end)}" + (f" (line {a.line})" if a.line else "")
                    + f" in {self.agent}'s shift", b.line or self.line, "start")

    @property
    def available_s(self) -> float:
        """Seconds of the shift outside its activities."""
        return (self.end - self.start).total_seconds() - sum(
            (a.end - a.start).total_seconds() for a in self.activities)


@dataclass(frozen=True, slots=True)
class Roster:
    """Shifts, sorted by (start, agent); an agent's shifts may not overlap
    (checked: the error names both lines)."""

    shifts: tuple[Shift, ...]

    def __post_init__(self) -> None:
        shifts = tuple(sorted(self.shifts, key=lambda s: (s.start, s.agent, s.end)))
        object.__setattr__(self, "shifts", shifts)
        last: dict[str, Shift] = {}
        for s in shifts:  # by start: an overlap is with the agent's previous shift
            p = last.get(s.agent)
            if p is not None and s.start < p.end:
                raise RosterError(
                    f"{s.agent}'s shift {when(s.start)} - {when(s.end)} overlaps the shift "
                    f"{when(p.start)} - {when(p.end)}" + (f" on line {p.line}" if p.line else ""),
                    s.line, "start")
            if p is None or s.end > p.end:
                last[s.agent] = s

    def agents(self) -> tuple[str, ...]:
        """The agents with a shift, sorted."""
        return tuple(sorted({s.agent for s in self.shifts}))

    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """(first shift's start, last shift's end); None for an empty roster."""
        if not self.shifts:
            return None
        return self.shifts[0].start, max(s.end for s in self.shifts)

    def scheduled(self, start: dt.datetime, end: dt.datetime, interval_s: int,
                  skill: str | None = None,
                  agent_skills: Mapping[str, Iterable[str]] | None = None
                  ) -> list[tuple[dt.datetime, float]]:
        """Per interval from ``start`` (each named by its start) to ``end``:
        the agents on shift and not in an activity, averaged over the
        interval (a 15-minute break in a 30-minute interval counts 0.5).
        Every interval is a whole one: when ``end`` falls inside the last,
        that interval still runs its full length past ``end`` (the shifts
        in it beyond ``end`` count), as the other interval series do.

        ``skill``: only the agents with that skill: a shift's own ``skills``,
        else ``agent_skills[agent]`` (the skills known elsewhere); a shift
        with neither does not count for any skill."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        if end <= start:
            return []
        step = dt.timedelta(seconds=interval_s)
        n = -(-int((end - start).total_seconds()) // interval_s)
        seconds = [0.0] * n

        def add(a: dt.datetime, b: dt.datetime, sign: float) -> None:
            for k, part in spread(a, b, start, interval_s, n):
                seconds[k] += sign * part

        for s in self.shifts:
            if s.end <= start or s.start >= end:
                continue
            if skill is not None:
                if s.skills:
                    has = any(name == skill for name, _ in s.skills)
                else:
                    has = agent_skills is not None and skill in set(
                        agent_skills.get(s.agent, ()))
                if not has:
                    continue
            add(s.start, s.end, 1.0)
            for a in s.activities:
                add(a.start, a.end, -1.0)
        return [(start + k * step, max(0.0, seconds[k]) / interval_s) for k in range(n)]


# ------------------------------------------------------------ agent states


@dataclass(frozen=True, slots=True)
class StateRow:
    """An agent's state from ``at`` on (naive local); ``state`` an
    :class:`~acd.core.model.AgentState` value; ``reason`` the pause's reason."""

    agent: str
    at: dt.datetime
    state: str
    reason: str = ""
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not self.agent.strip():
            raise RosterError("empty: a state record needs an agent", self.line, "agent")
        _naive(self.at, "at", self.line)
        if self.state not in _STATES:
            raise RosterError(f"{self.state!r} is not an agent state ("
                              f"{', '.join(s.value for s in AgentState)})", self.line, "state")


def is_rona_reason(reason: str) -> bool:
    """A ring-no-answer pause's reason (:data:`RONA_REASONS`, or our engine's
    ``offer NOANSWER`` ...)."""
    text = reason.strip().lower()
    if text.startswith(RONA_PREFIX):
        return True
    return text.replace("-", "_").replace(" ", "_") in RONA_REASONS


#: how many examples :class:`ImportNotes` keeps per kind
EXAMPLES = 3
#: what each kind of note means (its line in :meth:`ImportNotes.lines`)
NOTE_TEXT = {
    "out_of_order": "agents whose records were out of time order (sorted by time)",
    "logout_without_login": "logouts with no shift open (skipped)",
    "open_at_end": "shifts still open at the end of the records (closed there)",
    "open_at_start": "shifts already open at the period's start (started there)",
    "rona_pause": "ring-no-answer pauses (kept as available time, not activities)",
    "no_reason": f"pauses without a reason (activity {NO_REASON_KIND!r})",
    "zero_length_pause": "pauses of no length (left out)",
    "zero_length_shift": "shifts of no length (login and logout at the same time; left out)",
    "after_until": "records at or after the period's end (left out)",
    "bad_profile_skills": "agent profiles whose stored skills cannot be read (a JSON object "
                          "of name: whole-number level; those skills left out)",
}


@dataclass
class ImportNotes:
    """What :func:`roster_from_states` dropped or guessed: a count per kind
    (:data:`NOTE_TEXT`) with up to :data:`EXAMPLES` examples each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < EXAMPLES:
            ex.append(example)

    def lines(self) -> list[str]:
        """One line per kind noted: ``3 logouts with no shift open (skipped), e.g. ...``."""
        out = []
        for kind in NOTE_TEXT:
            if kind in self.counts:
                out.append(f"{self.counts[kind]} {NOTE_TEXT[kind]}, e.g. "
                           + "; ".join(self.examples.get(kind, [])))
        return out


def _where(r: StateRow) -> str:
    return f"{r.agent} at {when(r.at)}" + (f" (line {r.line})" if r.line else "")


def roster_from_states(rows: Iterable[StateRow], *,
                       skills: Mapping[str, Sequence[tuple[str, int]]] | None = None,
                       since: dt.datetime | None = None, until: dt.datetime | None = None
                       ) -> tuple[Roster, ImportNotes]:
    """The roster the agents' state records show.

    Per agent, in time order (records out of order are sorted, noted): the
    agent starts logged out; a record in any other state opens a shift (a
    login), a ``logged_out`` one closes it (with no shift open: noted,
    skipped).  A ``paused`` period is an activity of kind its reason
    (``not_ready`` when it has none), unless it is a ring-no-answer pause
    (:func:`is_rona_reason`: available time, counted); a pause of another
    reason right after one ends the first.

    ``since``: records before it only tell each agent's state at ``since``
    (an agent logged in then has a shift from ``since``, noted).  ``until``:
    records at or after it are left out (noted); a shift still open at the
    end closes at ``until``, else at the last record's time (noted).
    ``skills``: agent -> skills, given to each of its shifts."""
    notes = ImportNotes()
    per: dict[str, list[StateRow]] = {}
    for r in rows:
        per.setdefault(r.agent, []).append(r)
    last_at: dt.datetime | None = None
    for agent, rs in per.items():
        first = next((b for a, b in pairwise(rs) if b.at < a.at), None)
        if first is not None:
            notes.add("out_of_order", _where(first))
            rs.sort(key=lambda r: r.at)  # stable: the same instant keeps the file's order
        kept = []
        for r in rs:
            if until is not None and r.at >= until:
                notes.add("after_until", _where(r))
            else:
                kept.append(r)
        per[agent] = kept
        if kept and (last_at is None or kept[-1].at > last_at):
            last_at = kept[-1].at
    end_at = until if until is not None else last_at
    shifts: list[Shift] = []
    for agent in sorted(per):
        shifts.extend(_agent_shifts(agent, per[agent], since, end_at, notes,
                                    tuple(skills.get(agent, ())) if skills else ()))
    return Roster(tuple(shifts)), notes


def _agent_shifts(agent: str, rows: list[StateRow], since: dt.datetime | None,
                  end_at: dt.datetime | None, notes: ImportNotes,
                  skills: tuple[tuple[str, int], ...]) -> list[Shift]:
    out: list[Shift] = []
    shift_start: dt.datetime | None = None
    shift_line = 0
    acts: list[Activity] = []
    #: (start, kind, line, where a pause without a reason began; "" with one)
    pause: tuple[dt.datetime, str, int, str] | None = None

    def end_pause(at: dt.datetime) -> None:
        nonlocal pause
        if pause is None:
            return
        start, kind, line, no_reason = pause
        pause = None
        if at > start:
            acts.append(Activity(start, at, kind, line))
            if no_reason:  # noted once it lasts (the engine's login passes a zero-length one)
                notes.add("no_reason", no_reason)
        else:
            notes.add("zero_length_pause", f"{agent} at {when(at)}"
                      + (f" (line {line})" if line else ""))

    def close(at: dt.datetime, line: int) -> None:
        nonlocal shift_start, acts
        assert shift_start is not None
        end_pause(at)
        if at > shift_start:
            out.append(Shift(agent, shift_start, at, skills, tuple(acts), shift_line))
        else:
            notes.add("zero_length_shift", f"{agent} at {when(at)}"
                      + (f" (line {line})" if line else ""))
        shift_start, acts = None, []

    def enter(r: StateRow, at: dt.datetime) -> None:
        """The agent is in r.state from ``at`` (a shift is open unless logged out)."""
        nonlocal shift_start, shift_line, pause
        if r.state != AgentState.PAUSED.value or is_rona_reason(r.reason):
            end_pause(at)
            if r.state == AgentState.PAUSED.value:
                notes.add("rona_pause", _where(r))
            return
        kind = r.reason.strip() or NO_REASON_KIND
        if pause is not None and pause[1] == kind:
            return  # the same pause goes on
        end_pause(at)
        pause = (at, kind, r.line, "" if r.reason.strip() else _where(r))

    i = 0
    if since is not None:
        before = [r for r in rows if r.at < since]
        i = len(before)
        if before and before[-1].state != AgentState.LOGGED_OUT.value:
            shift_start, shift_line = since, before[-1].line
            notes.add("open_at_start", f"{agent} at {when(since)}")
            enter(before[-1], since)
    for r in rows[i:]:
        if r.state == AgentState.LOGGED_OUT.value:
            if shift_start is None:
                notes.add("logout_without_login", _where(r))
                continue
            close(r.at, r.line)
            continue
        if shift_start is None:
            shift_start, shift_line = r.at, r.line
        enter(r, r.at)
    if shift_start is not None:
        at = end_at if end_at is not None and end_at > shift_start else shift_start
        notes.add("open_at_end", f"{agent} from {when(shift_start)}, closed at {when(at)}")
        close(at, 0)
    return out
