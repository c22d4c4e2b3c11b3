"""``acd schedule``: shifts and breaks that cover a requirements file
(docs/planning.md, "Scheduling").

    acd schedule requirements.csv --rules rules.yaml -o roster.csv \\
        [--csv coverage.csv] [--time-limit 30] [--solver highs|cp-sat] [--plot OUT.png]

Reads the Requirements CSV (agents needed per interval and queue) and the
rules (agent types, shift lengths and start times, breaks, weights), solves
(:func:`acd.planning.schedule.solve`), prints the solver's status and gap,
the totals and the coverage per interval, writes the roster as a Roster CSV
(the simulator's ``roster:``) and the coverage as CSV.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from acd.cli.common import (
    FileProblem,
    console,
    err_console,
    shown,
    tz_option_zone,
    write_csv,
    write_text_output,
)

if TYPE_CHECKING:
    from acd.planning.schedule import Schedule

COVERAGE_COLUMNS = ("interval_start", "queue", "required", "scheduled", "scheduled_min",
                    "over", "under", "covered")


def _note(text: str) -> None:
    err_console.print(f"note: {text}", soft_wrap=True, highlight=False, markup=False)


@click.command("schedule")
@click.argument("requirements", type=click.Path(dir_okay=False))
@click.option("--rules", "rules_path", required=True, type=click.Path(dir_okay=False),
              help="Scheduling rules (YAML): agent types, shifts, breaks, weights.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the roster (Roster CSV; '-' for standard output).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the coverage per interval and queue as CSV.")
@click.option("--time-limit", type=click.FloatRange(1, 86400), default=30.0,
              show_default=True, help="Solver time limit, seconds (shared by the days).")
@click.option("--solver", type=click.Choice(["highs", "cp-sat"]), default="highs",
              show_default=True, help="HiGHS (scipy) or OR-Tools CP-SAT.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Plot required vs scheduled per interval to a PNG.")
@click.option("--tz", help="Time zone for interval starts given with a UTC offset "
                           "[default: this machine's].")
@click.option("--rows", type=click.IntRange(0), default=48, show_default=True,
              help="Coverage rows printed (0: none; all go to --csv).")
def schedule(requirements: str, rules_path: str, output: str | None, csv_path: str | None,
             time_limit: float, solver: str, plot_path: str | None, tz: str | None,
             rows: int) -> None:
    """Build shifts and breaks that cover REQUIREMENTS (a Requirements CSV:
    interval_start,queue,required,...) under the rules of --rules."""
    from acd.loaders.planning_csv import PlanningFileError, load_requirements
    from acd.loaders.schedule_rules import RulesError, load_rules
    from acd.loaders.textfile import TextFileError
    from acd.planning.schedule import ScheduleError, solve

    zone = _zone(tz)
    try:
        reqs = load_requirements(requirements, tz=zone)
    except (TextFileError, PlanningFileError) as exc:
        raise FileProblem(str(exc)) from None
    try:
        rules = load_rules(rules_path)
    except RulesError as exc:
        raise FileProblem(str(exc)) from None
    try:
        sched = solve(reqs, rules, time_limit_s=time_limit, backend=solver)
    except ScheduleError as exc:
        raise FileProblem(f"{requirements}: {exc}") from None
    _print(sched, rows)
    if output:
        from acd.loaders.roster_csv import write_roster

        if write_text_output(output, write_roster(sched.roster)):
            console.print(f"wrote {shown(output)} ({len(sched.roster.shifts)} shifts)")
    if csv_path:
        write_csv(csv_path, COVERAGE_COLUMNS, (
            (f"{r.start:%Y-%m-%d %H:%M}", r.queue, r.required, f"{r.scheduled:g}",
             f"{r.scheduled_min:g}", f"{r.over:g}", f"{r.under:g}", int(r.covered))
            for r in sched.coverage))
    if plot_path:
        _plot(sched, plot_path)


def _zone(name: str | None) -> dt.tzinfo:
    return tz_option_zone(name)


def _print(sched: Schedule, rows: int) -> None:
    gap = f"gap {sched.gap:.2%}" if sched.status != "OPTIMAL" else "gap 0"
    console.print(f"solver: {sched.status} ({gap}), {sched.solve_s:.1f} s, "
                  f"{sched.variables:,} variables; agents named by {sched.naming}",
                  highlight=False)
    cov = sched.coverage
    covered = sum(1 for r in cov if r.covered)
    console.print(
        f"{len(sched.roster.shifts)} shifts for {len(sched.roster.agents())} agents, "
        f"{sched.paid_hours:,.1f} paid hours ({sched.productive_hours:,.1f} on duty); "
        f"covered {covered}/{len(cov)} interval-queues; under-staffed "
        f"{sched.under_interval_agents:,.1f} interval-agents; over-staffed "
        f"{sum(r.over for r in cov):,.1f}", highlight=False)
    for note in sched.notes:
        _note(note)
    if sched.status != "OPTIMAL" and (sched.gap > 0.05 or covered < len(cov)):
        _note(f"the solver stopped at its time limit, {sched.gap:.0%} from the best "
              f"possible schedule{'' if covered == len(cov) else ', intervals left uncovered'}"
              ": give it more --time-limit (it is shared among the days)")
    for t, start, end in sched.unassigned[:5]:
        _note(f"left out: a {t} shift {start:%Y-%m-%d %H:%M} - {end:%H:%M}")
    if not rows:
        return
    from rich.table import Table

    table = Table("interval", "queue", "required", "scheduled", "lowest", "over", "under",
                  box=None, pad_edge=False)
    shown_rows = list(cov)
    if len(shown_rows) > rows:  # the uncovered first, then the earliest
        shown_rows = sorted(shown_rows, key=lambda r: (r.covered, r.start))[:rows]
        shown_rows.sort(key=lambda r: (r.start, r.queue))
    for r in shown_rows:
        mark = "" if r.covered else " !"
        table.add_row(f"{r.start:%a %Y-%m-%d %H:%M}", shown(r.queue), str(r.required),
                      f"{r.scheduled:.1f}", f"{r.scheduled_min:g}{mark}", f"{r.over:.1f}",
                      f"{r.under:.1f}")
    console.print(table)
    if len(cov) > rows:
        first = "the uncovered first, " if covered < len(cov) else ""
        console.print(f"({rows} of {len(cov)} rows shown: {first}in time order; --csv for all)")


def _plot(sched: Schedule, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FileProblem("--plot needs matplotlib: pip install 'acd[planning]'") from None
    queues = sorted({r.queue for r in sched.coverage})
    fig, axes = plt.subplots(len(queues), 1, figsize=(12, 2.6 * len(queues)), squeeze=False,
                             sharex=True)
    for ax, q in zip(axes[:, 0], queues, strict=True):
        rs = [r for r in sched.coverage if r.queue == q]
        step = dt.timedelta(minutes=sched.interval_min)
        # each interval drawn over its length; a gap (no requirement) left blank
        xs: list[dt.datetime] = []
        cols: list[list[float]] = [[], [], []]
        for i, r in enumerate(rs):
            xs += [r.start, r.start + step]
            for col, v in zip(cols, (r.required, r.scheduled, r.scheduled_min), strict=True):
                col += [v, v]
            if i + 1 < len(rs) and rs[i + 1].start > r.start + step:
                xs.append(r.start + step)
                for col in cols:
                    col.append(float("nan"))
        ax.plot(xs, cols[0], label="required", color="black")
        ax.plot(xs, cols[1], label="scheduled", color="tab:blue")
        ax.plot(xs, cols[2], label="lowest slot", color="tab:blue", alpha=0.4, linestyle="--")
        ax.set_ylabel(q)
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise FileProblem(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    console.print(f"wrote {shown(path)}")
