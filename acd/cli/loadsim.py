"""``acd sim``: the load simulator from the command line.

    acd sim run SCENARIO                      virtual time (default): the production router,
                                              a discrete-event loop, no sockets
    acd sim run SCENARIO --live --speed 600   the real engine against the PBX simulator
                                              over AMI and FastAGI on loopback, 600 × faster
    acd sim run ... --seed 3 --calls 5000     another seed; stop after 5000 arrivals
    acd sim run ... --plot day.png            service level and waiting calls across the day
    acd sim run ... --json                    the figures as JSON (nothing else on stdout)

Scenarios are described in :mod:`acd.loadsim.scenario` (``sim/scenarios/`` has
examples).  The tables: per queue and customer class, offered, answered,
abandoned, other (fallback or unfinished), service level (share of *all*
arrivals answered within the threshold ``t``), P(wait > 0), mean wait
(all arrivals), ASA, abandonment and agent occupancy; then the same per
interval for all calls (``--intervals queue:billing`` for one queue, ``none``
to leave it out).  Live runs add the engine's latency (real time): core
decisions, and from the routing decision to the agent's phone ringing.

Exit codes: 0 done; 1 a live run found problems (calls without a record...);
2 a bad scenario (``file:line:column: problem``) or option.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from acd.compiled import describe as describe_router
from acd.loaders.yamlpos import YamlError

err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages

#: (row key, heading, format): "d" count, "%" share, "s" seconds, "t" threshold
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("offered", "offered", "d"),
    ("answered", "answered", "d"),
    ("abandoned", "aband.", "d"),
    ("other", "other", "d"),
    ("service_level", "SL", "%"),
    ("t_s", "t (s)", "t"),
    ("pwait", "P(wait)", "%"),
    ("mean_wait_s", "wait (s)", "s"),
    ("asa_s", "ASA (s)", "s"),
    ("abandon_rate", "ab. rate", "%"),
    ("occupancy", "occup.", "%"),
    ("longest_wait_s", "max wait", "s"),
)
#: tables are wider than 80 columns: when stdout is not a terminal, do not squeeze them
PIPE_WIDTH = 160
#: --wait-estimates: the expected wait is asked again this often while a caller waits
WAIT_ESTIMATE_EVERY_S = 30.0


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "%":
        return f"{100.0 * value:.1f}%"
    if fmt == "d":
        return f"{int(value):,}"
    if fmt == "t":
        return f"{value:g}"
    return f"{value:.1f}"


def figures_table(rows: Sequence[dict[str, Any]], first: str, label: Any, title: str,
                  caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(first, no_wrap=True)
    for _, head, _ in COLUMNS:
        table.add_column(head, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(str(label(r)), *(_cell(r.get(k), f) for k, _, f in COLUMNS),
                      style="bold" if r.get("scope") == "total" else None)
    return table


def _summary_label(r: dict[str, Any]) -> str:
    return "all calls" if r["scope"] == "total" else f"{r['scope']} {r['key']}"


def _fail(message: str) -> None:
    err_console.print(message, markup=False, highlight=False)
    sys.exit(2)


def _interval_scope(text: str, queues: Sequence[str]) -> tuple[str, str] | None:
    """``--intervals``: (scope, key), or None for no table."""
    if text in ("none", ""):
        return None
    if text in ("total", "all"):
        return "total", ""
    scope, sep, key = text.partition(":")
    if not sep or scope not in ("queue", "class") or not key:
        raise click.BadParameter("give total, none, queue:NAME or class:NAME",
                                 param_hint="'--intervals'")
    if scope == "queue" and key not in queues:
        raise click.BadParameter(f"queue {key!r} is not a queue of the scenario "
                                 f"({', '.join(queues)})", param_hint="'--intervals'")
    return scope, key


def _latency_table(facts: dict[str, Any]) -> Table:
    table = Table(title="engine latency (real time)", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("what", no_wrap=True)
    for head in ("count", "p50", "p99", "max"):
        table.add_column(head, justify="right")

    def row(name: str, d: dict[str, Any], unit: str) -> None:
        digits = 1 if unit == "µs" else 2
        cells = [f"{d['count']:,}"] + [
            "-" if d[k] is None else f"{d[k]:,.{digits}f} {unit}" for k in ("p50", "p99", "max")]
        table.add_row(name, *cells)

    row("core decision", facts["decisions_us"], "µs")
    row("decision → agent's phone rings", facts["connect_ms"], "ms")
    row("queued → agent's phone rings (offered at once)", facts["queue_to_ring_ms"], "ms")
    row("arrival placed late by", facts["arrival_lag_ms"], "ms")
    return table


@click.group("sim")
def sim_group() -> None:
    """Load simulator: play a scenario (arrivals, callers, agents, routing) in
    virtual time or live against the real engine."""


@sim_group.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--virtual/--live", "virtual", default=True, show_default=True,
              help="Virtual time (the production router, no sockets), or the real engine "
                   "against the PBX simulator over AMI and FastAGI.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--calls", type=click.IntRange(min=1), default=None,
              help="Stop after this many arrivals (default: the scenario's).")
@click.option("--warmup-calls", type=click.IntRange(min=0), default=0, show_default=True,
              help="Leave the first calls out of the figures (besides the scenario's "
                   "warm-up time).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True,
              help="Live mode: simulated seconds per real second (600: a 14 h day in 84 s).")
@click.option("--split", is_flag=True,
              help="Live mode: run the PBX simulator in a child process (the engine gets "
                   "a core to itself).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write a PNG: service level and waiting calls across the day.")
@click.option("--intervals", "intervals", default="total", show_default=True,
              help="Per-interval table for: total, queue:NAME, class:NAME, or none.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the figures as JSON only (no tables, no progress bar).")
@click.option("--with-calls", is_flag=True, help="With --json: one record per call too.")
@click.option("--wait-estimates", is_flag=True,
              help="Virtual mode: record the expected wait the router gives each waiting "
                   "caller (as it joins the queue, then every 30 s) and say how far it was "
                   "from the actual wait.")
@click.pass_context
def run(ctx: click.Context, scenario: Path, virtual: bool, seed: int, calls: int | None,
        warmup_calls: int, speed: float, split: bool, plot_path: Path | None, intervals: str,
        as_json: bool, with_calls: bool, wait_estimates: bool) -> None:
    """Play SCENARIO and print per-queue, per-class and per-interval figures."""
    from acd.loadsim.model import SimError
    from acd.loadsim.scenario import load_scenario
    from acd.loadsim.virtual import run_virtual

    if virtual:
        live_only = [f"--{n}" for n in ("speed", "split")
                     if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE]
        if live_only:
            raise click.UsageError(f"{', '.join(live_only)}: only with --live")
    elif wait_estimates:
        raise click.UsageError("--wait-estimates: only with --virtual")
    if plot_path is not None:  # before the run: matplotlib comes with the plot extra
        from acd.plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib("--plot")
        except PlotUnavailable as exc:
            _fail(f"Error: {exc}")
            return
    try:
        sc = load_scenario(scenario)
    except YamlError as exc:
        _fail(str(exc))
        return
    try:
        scope = _interval_scope(intervals, tuple(sc.policy.queues))
    except click.BadParameter as exc:
        _fail(f"Error: {exc.format_message()}")
        return
    expected = sc.expected_calls()
    total = calls if calls is not None else sc.calls
    if expected is not None:  # about: a day's arrivals are random
        total = round(expected) if total is None else min(total, round(expected))
    mode = "virtual" if virtual else "live"
    if not virtual and not as_json:
        horizon = sc.day_end_s
        if sc.open_ended and sc.rates and total:
            by_calls = total / sc.rates[0]
            horizon = by_calls if horizon is None else min(horizon, by_calls)
        if horizon:
            span = f"{horizon / 3600:,.1f} simulated hours" if horizon >= 3600 \
                else f"{horizon / 60:,.0f} simulated minutes"
            err_console.print(f"live run at speed {speed:g}: about {horizon / speed:,.0f} s "
                              f"of wall time for {span}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=True,
                        disable=as_json)
    live_facts: dict[str, Any] | None = None
    problems: list[str] = []
    try:
        with progress:
            task = progress.add_task(f"{mode} run: arrivals", total=total)

            def advance(done: int, expected: int | None, t: float) -> None:
                if expected:
                    progress.update(task, total=expected)
                progress.update(task, completed=done)

            if virtual:
                result = run_virtual(sc, seed, calls, warmup_calls=warmup_calls,
                                     progress=advance, estimates=wait_estimates,
                                     estimate_every_s=WAIT_ESTIMATE_EVERY_S)
                figures = result
            else:
                from acd.loadsim.live import run_live_sync

                live = run_live_sync(sc, seed, calls, speed=speed, warmup_calls=warmup_calls,
                                     split=split, progress=advance)
                figures = live.figures
                live_facts = live.live_facts()
                problems = live.problems
    except SimError as exc:
        _fail(f"{scenario}: {exc}")
        return
    if scope is not None and scope[0] == "class" and scope[1] not in figures.classes:
        _fail(f"Error: Invalid value for '--intervals': class {scope[1]!r} is not in the run "
              f"({', '.join(figures.classes)})")
        return
    if plot_path is not None:
        from acd.loadsim.plots import plot  # matplotlib: only when a plot is asked for

        plot(figures, plot_path, title=f"{sc.name} ({mode}, seed {seed})")

    if as_json:
        doc = json.loads(figures.to_json(calls=with_calls))
        doc["mode"] = mode
        if live_facts is not None:
            doc["live"] = live_facts
        if plot_path is not None:
            doc["plot"] = str(plot_path)
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        sys.exit(1 if problems else 0)

    console = _console()
    title = f"{sc.name}: {mode} run, seed {seed}"
    console.print(figures_table(figures.summary_rows(), "", _summary_label, title))
    if scope is not None:
        rows = figures.interval_rows(*scope)
        what = "all calls" if scope[0] == "total" else f"{scope[0]} {scope[1]}"
        console.print(figures_table(rows, "interval", lambda r: r["label"],
                                    f"per interval ({what})"))
    ivr = figures.ivr_only()
    notes = [f"{figures.arrivals:,} calls arrived"]
    if ivr:
        notes.append(f"{ivr:,} ended in the IVR")
    if figures.warmup_s or warmup_calls:
        notes.append("warm-up left out")
    if virtual:
        notes.append(f"{figures.wall_s:.2f} s wall, {figures.calls_per_second():,.0f} "
                     f"simulated calls/s (router: {describe_router()})")
        console.print("; ".join(notes))
        at_queue, later = result.wait_error(), result.wait_error(later=True)
        if at_queue is not None and later is not None:
            console.print(at_queue.describe())
            console.print(later.describe(f"every {WAIT_ESTIMATE_EVERY_S:g} s while waiting"))
    else:
        assert live_facts is not None
        console.print(_latency_table(live_facts))
        notes.append(f"{live_facts['records']:,} call records")
        cpu = (f"CPU {live_facts['cpu_s']:.1f} s engine, {live_facts['sim_cpu_s']:.1f} s "
               f"simulator" if live_facts["split"] else
               f"CPU {live_facts['cpu_s']:.1f} s (engine and simulator)")
        notes.append(f"speed {speed:g}: {live_facts['wall_s']:.1f} s wall, "
                     f"{live_facts['offered_rate_per_wall_s']:,.1f} arrivals per wall second, "
                     f"{cpu}")
        console.print("; ".join(notes))
    if plot_path is not None:
        console.print(f"plot: {plot_path}")
    for p in problems:
        err_console.print(f"[red]problem:[/red] {p}")
    if problems:
        sys.exit(1)
