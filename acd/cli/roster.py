"""``acd roster ...``: rosters (docs/planning.md, "Rosters and agent states").

``acd roster import`` makes the roster of a period the center lived through
from its agents' state records: ours (the database table ``agent_events``)
or a CSV of state records (a center's export), and writes it as a Roster
CSV; ``acd roster show`` prints a Roster CSV's shifts per day and the agents
scheduled per interval.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from acd.cli.common import (
    FileProblem,
    config_option,
    console,
    db_option,
    err_console,
    event_rows,
    run_db,
    seed_event_rows,
    shown,
    time_option_value,
    tz_option_zone,
    write_text_output,
)

if TYPE_CHECKING:
    from rich.console import Console

    from acd.planning.roster import ImportNotes, Roster, StateRow

#: ids named in the warning about rows this version cannot read
NAMED = 5
#: the longest bar of ``acd roster show`` (more agents: the bars are scaled)
BAR = 50


@click.group("roster")
def roster() -> None:
    """Rosters: import a period's from the agents' states, show one."""


# ------------------------------------------------------------------ options


def _settings(config_path: str | None) -> tuple[str | None, str | None]:
    """(database URL, statistics.tz) of the configuration (``--config``, else
    ./acd.yaml if there is one)."""
    cfg = config_option(config_path)
    return (cfg.database_url, cfg.statistics.tz) if cfg is not None else (None, None)


def _zone(name: str | None) -> dt.tzinfo:
    return tz_option_zone(name)


def _when(value: str, tz: dt.tzinfo, what: str, *, end: bool) -> dt.datetime:
    """``--from``/``--to`` as a naive local time in ``tz`` (:func:`time_option_value`)."""
    return time_option_value(value, tz, what, end=end).replace(tzinfo=None)


def _local(t: dt.datetime, tz: dt.tzinfo) -> float:
    """Epoch seconds of a naive local time in ``tz``."""
    return t.replace(tzinfo=tz).timestamp()


# ------------------------------------------------------------------ reading


def _read_events(db_url: str | None, since: float | None, until: float, tz: dt.tzinfo
                 ) -> tuple[list[StateRow], list[str], dict[str, list[tuple[str, int]]],
                            list[str]]:
    """State records from ``agent_events``: those in [since, until) and each
    agent's last change in the :data:`~acd.cli.common.SEED_LOOKBACK_S`
    before ``since`` (its state then), as naive local times in ``tz``; the
    ids of rows with a state this version does not know (skipped); the
    skills of the agent profiles stored (``acd agents import``); the
    profiles whose skills cannot be read (``agent: problem``, left out)."""
    from sqlalchemy import select

    from acd.adapters.profiles_store import agents_table
    from acd.adapters.schema import aware
    from acd.planning.intervals import NonDecreasing
    from acd.planning.roster import StateRow

    bad: list[str] = []
    bad_skills: list[str] = []
    states = {"logged_out", "ready", "reserved", "on_call", "wrap_up", "paused"}
    # in the hour repeated when clocks go back, local times would go back:
    # each agent stays where it was (in UTC order), so the changes keep
    # their order
    in_order = NonDecreasing()

    def row(r: Any) -> StateRow | None:
        if r["new_state"] not in states:
            bad.append(str(r["id"]))
            return None
        at = in_order(r["agent_id"], aware(r["at"]).astimezone(tz).replace(tzinfo=None))
        return StateRow(r["agent_id"], at, r["new_state"], r["reason"] or "")

    def work(conn: Any) -> list[StateRow]:
        out: list[StateRow] = []
        if since is not None:
            seeds: dict[str, Any] = {}
            for r in seed_event_rows(conn, since):
                seeds[r["agent_id"]] = r  # the later row (same instant, higher id) wins
            for r in seeds.values():
                s = row(r)
                if s is not None:
                    out.append(s)
        for r in event_rows(conn, since, until):
            s = row(r)
            if s is not None:
                out.append(s)
        a = agents_table.c
        for agent_id, raw in conn.execute(select(a.agent_id, a.skills)):
            try:
                levels = json.loads(raw or "{}")
            except ValueError:  # the profile commands refuse such a row too
                bad_skills.append(f"{agent_id}: not JSON")
                continue
            if not isinstance(levels, dict):
                bad_skills.append(f"{agent_id}: not a JSON object of name: level")
                continue
            wrong = sorted(str(k) for k, v in levels.items()
                           if not isinstance(v, int) or isinstance(v, bool))
            if wrong:
                bad_skills.append(f"{agent_id}: level of {', '.join(wrong)} not a whole "
                                  "number")
            skills[agent_id] = sorted((str(k), v) for k, v in levels.items()
                                      if isinstance(v, int) and not isinstance(v, bool))
        return out

    skills: dict[str, list[tuple[str, int]]] = {}

    async def go(db: Any) -> list[StateRow]:
        result: list[StateRow] = await db.read(work)
        return result

    return run_db(db_url, go, read_only=True), bad, skills, bad_skills


# ------------------------------------------------------------------ output


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _out(err: bool) -> Console:
    """Where the summaries go: standard error while a CSV goes to standard output."""
    return err_console if err else console


def _print(out: Console, text: str) -> None:
    out.print(shown(text), soft_wrap=True, highlight=False)


def _summary(out: Console, r: Roster, notes: ImportNotes | None, source: str) -> None:
    """Agents, shifts per day, activities by kind, the notes."""
    from acd.planning.roster import when

    span = r.span()
    if span is None:
        _print(out, f"{source}: no shifts (no agent logged in within the period asked: check "
                    "--from/--to against the records' dates)")
    else:
        _print(out, f"{source}: {len(r.agents())} agents, {len(r.shifts)} shifts, "
               f"{when(span[0])} - {when(span[1])}")
        per_day: dict[dt.date, list[Any]] = {}
        for s in r.shifts:
            per_day.setdefault(s.start.date(), []).append(s)
        _print(out, "shifts per day (by start): day, shifts, agents, on shift, available")
        for day, ss in sorted(per_day.items()):
            on = sum((s.end - s.start).total_seconds() for s in ss)
            _print(out, f"  {day:%Y-%m-%d %a}  {len(ss):5d}  {len({s.agent for s in ss}):5d}  "
                   f"{_hours(on):>9}  {_hours(sum(s.available_s for s in ss)):>9}")
        kinds: Counter[str] = Counter()
        secs: dict[str, float] = {}
        for s in r.shifts:
            for a in s.activities:
                kinds[a.kind] += 1
                secs[a.kind] = secs.get(a.kind, 0.0) + (a.end - a.start).total_seconds()
        if kinds:
            _print(out, "activities by kind: " + ", ".join(
                f"{k} {kinds[k]} ({_hours(secs[k])})"
                for k in sorted(kinds, key=lambda k: (-secs[k], k))))
        else:
            _print(out, "activities: none")
    for line in notes.lines() if notes is not None else ():
        err_console.print(f"note: {shown(line)}", soft_wrap=True, highlight=False)


def _write(out: Console, path: str, text: str, rows: int) -> None:
    if write_text_output(path, text):
        _print(out, f"wrote {path} ({rows} rows)")


# ------------------------------------------------------------------ commands


@roster.command("import")
@click.option("--states", "states_path", type=click.Path(dir_okay=False),
              help="A CSV of agent state records (agent,at,state,reason) instead of the "
                   "database.")
@click.option("--from", "since", metavar="DATE",
              help="Start: a day (YYYY-MM-DD) or 'YYYY-MM-DD HH:MM', in --tz; an agent "
                   "logged in then gets a shift from there [default: the first record].")
@click.option("--to", "until", metavar="DATE",
              help="End (excluded): a day (through its end) or a time, in --tz; shifts still "
                   "open close there [default: now for the database, the last record for "
                   "--states].")
@click.option("--tz", help="Time zone of the roster's local times and of --from/--to "
                           "[default: statistics.tz of the configuration, else this "
                           "machine's].")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(dir_okay=False, allow_dash=True),
              help="The Roster CSV to write ('-' for standard output).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="acd.yaml: the database and statistics.tz [default: ./acd.yaml if there "
                   "is one].")
@db_option
def roster_import(states_path: str | None, since: str | None, until: str | None,
                  tz: str | None, output: str, config_path: str | None,
                  db_url: str | None) -> None:
    """A period's roster, from the agents' state records.

    A login opens a shift, a logout closes it, a pause (other than a
    ring-no-answer pause) is an activity named by its reason.  Prints the
    agents, shifts per day, activities by kind and what had to be guessed or
    left out (docs/planning.md)."""
    from acd.loaders.roster_csv import RosterFileError, load_states, write_roster
    from acd.loaders.textfile import TextFileError
    from acd.planning.roster import RosterError, roster_from_states

    if states_path is not None and db_url is not None:
        raise click.UsageError("give --db or --states, not both")
    out = _out(output == "-")
    config_db, config_tz = _settings(config_path)
    zone = _zone(tz if tz is not None else config_tz)
    t0 = _when(since, zone, "--from", end=False) if since else None
    t1 = _when(until, zone, "--to", end=True) if until else None
    if t0 is not None and t1 is not None and t0 >= t1:
        raise click.BadParameter("the period is empty: --from must come before --to",
                                 param_hint="--from")
    if states_path is not None:
        try:
            rows = load_states(states_path, zone)
            skills: dict[str, list[tuple[str, int]]] = {}
            bad_skills: list[str] = []
        except (TextFileError, RosterFileError) as exc:
            raise FileProblem(str(exc)) from None
        source = states_path
    else:
        if t1 is None:  # the agents logged in now: their shifts run to now
            t1 = dt.datetime.fromtimestamp(time.time(), zone).replace(tzinfo=None,
                                                                     microsecond=0)
        rows, bad, skills, bad_skills = _read_events(db_url or config_db,
                                         _local(t0, zone) if t0 else None, _local(t1, zone),
                                         zone)
        if bad:
            more = ", ..." if len(bad) > NAMED else ""
            err_console.print(
                f"warning: skipped {len(bad)} agent events with a state this version does not "
                f"know (agent_events ids {', '.join(bad[:NAMED])}{more})",
                soft_wrap=True, highlight=False, markup=False)
        source = "agent_events"
    try:
        result, notes = roster_from_states(rows, since=t0, until=t1, skills=skills)
        for problem in bad_skills:
            notes.add("bad_profile_skills", problem)
    except RosterError as exc:
        raise FileProblem(f"{source}: {exc}") from None
    _summary(out, result, notes, f"{source}: {len(rows)} state records; roster")
    text = write_roster(result)
    _write(out, output, text, text.count("\n") - 1)


@roster.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--interval", type=click.Choice(["15", "30", "60"]), default="30",
              show_default=True, help="Minutes per interval.")
@click.option("--skill", help="Count only the agents with this skill (the shifts' skills "
                              "column).")
@click.option("--tz", help="Time zone for times with a UTC offset in the file "
                           "[default: this machine's].")
@click.option("--from", "since", metavar="DATE",
              help="Show the intervals from this day (YYYY-MM-DD) or time on "
                   "[default: the first shift's start].")
@click.option("--to", "until", metavar="DATE",
              help="... up to this day (through its end) or time [default: the last "
                   "shift's end].")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Also write the scheduled agents per interval as CSV here ('-': "
                   "standard output).")
def roster_show(path: str, interval: str, skill: str | None, tz: str | None,
                since: str | None, until: str | None, csv_path: str | None) -> None:
    """A Roster CSV's shifts per day and agents scheduled per interval.

    Scheduled: on shift and not in an activity, averaged over the interval
    (docs/planning.md)."""
    from acd.loaders.roster_csv import RosterFileError, load_roster
    from acd.loaders.textfile import TextFileError
    from acd.planning.roster import when

    out = _out(csv_path == "-")
    zone = _zone(tz)
    try:
        r = load_roster(path, zone)
    except (TextFileError, RosterFileError) as exc:
        raise FileProblem(str(exc)) from None
    _summary(out, r, None, path)
    span = r.span()
    if span is None:
        return
    t0 = _when(since, zone, "--from", end=False) if since else span[0]
    t1 = _when(until, zone, "--to", end=True) if until else span[1]
    if t0 >= t1:
        raise click.BadParameter("the period is empty: --from must come before --to",
                                 param_hint="--from")
    step = int(interval) * 60
    start = t0.replace(minute=t0.minute // int(interval) * int(interval), second=0,
                       microsecond=0)
    rows = r.scheduled(start, t1, step, skill)
    if skill is not None and not any(name == skill for s in r.shifts for name, _ in s.skills):
        err_console.print(f"note: no shift in {shown(path)} has the skill {shown(skill)} "
                          "(shifts without skills count for none)", soft_wrap=True,
                          highlight=False)
    if csv_path is not None:
        from acd.cli.common import write_csv

        write_csv(csv_path, ("interval_start", "skill", "scheduled"),
                  ((when(s), skill or "", f"{v:.3f}".rstrip("0").rstrip(".")) for s, v in rows))
        if csv_path == "-":
            return
    _print(out, f"scheduled agents per {interval} minutes"
           + (f" with skill {skill}" if skill else "") + ":")
    top = max((v for _, v in rows), default=0.0)
    scale = BAR / top if top > BAR else 1.0
    day = None
    for s, v in rows:
        if s.date() != day:
            day = s.date()
            _print(out, f"  {day:%Y-%m-%d %a}")
        _print(out, f"    {s:%H:%M}  {v:7.2f}  {'#' * round(v * scale)}")
