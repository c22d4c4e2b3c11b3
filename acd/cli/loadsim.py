"""``acd sim``: the load simulator from the command line.

    acd sim run SCENARIO                      virtual time (default): the production router,
                                              a discrete-event loop, no sockets
    acd sim run SCENARIO --live --speed 600   the real engine against the PBX simulator
                                              over AMI and FastAGI on loopback, 600 × faster
    acd sim run ... --seed 3 --calls 5000     another seed; stop after 5000 arrivals
    acd sim run ... --plot day.png            service level and waiting calls across the day
    acd sim run ... --json                    the figures as JSON (nothing else on stdout)
    acd sim replay RECORDS.csv --states S.csv a center's call records replayed with the roster
                                              of the period, compared per interval
                                              (docs/planning.md)

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

import datetime as dt
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
    ("available", "agents", "s"),  # mean agents available (logged in, not paused)
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
    for warning in figures.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    if plot_path is not None:
        console.print(f"plot: {plot_path}")
    for p in problems:
        err_console.print(f"[red]problem:[/red] {p}")
    if problems:
        sys.exit(1)


# ------------------------------------------------------------------ replay


@sim_group.command("replay")
@click.argument("records", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--roster", "roster_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The period's roster (Roster CSV: shifts and activities).")
@click.option("--states", "states_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Or the agents' state records (CSV: agent,at,state,reason): "
                                 "the roster is taken from them.")
@click.option("--scenario", "base_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A base scenario: its routing policy, queue service-level "
                                 "thresholds and the agents' skills.")
@click.option("--interval", type=click.Choice(["15", "30", "60"]), default="30",
              show_default=True, help="Interval of the comparison (minutes).")
@click.option("--answer-within", type=click.FloatRange(min=0), default=20.0,
              show_default=True, help="Served within this many seconds (share of all calls).")
@click.option("--within-points", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Count the intervals whose error is within this many "
                                      "points.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the draws (unknown handle times, wrap-ups, patience).")
@click.option("--ring-no-answer", type=click.FloatRange(0, 1), default=None,
              help="Share of offers the agents leave unanswered [default: from the "
                   "ring-no-answer pauses of --states; with --roster the base scenario's, "
                   "else 0].")
@click.option("--tz", help="Time zone that times with a UTC offset are converted to "
                           "[default: this machine's].")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the per-interval comparison as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write a PNG: records against replay per interval.")
@click.option("--json", "as_json", is_flag=True, help="Print the fits and the comparison as "
                                                      "JSON only.")
def replay(records: Path, roster_path: Path | None, states_path: Path | None,
           base_path: Path | None, interval: str, answer_within: float, within_points: float,
           seed: int, ring_no_answer: float | None, tz: str | None, csv_path: Path | None,
           plot_path: Path | None, as_json: bool) -> None:
    """Replay a center's call RECORDS (CSV) with the roster of the same period:
    unknown handle times and patience are fitted, the calls replayed through the
    router, and each interval's figures set beside the records' own."""
    from acd.loaders.records_csv import RecordsError, Skipped, iter_records
    from acd.loaders.roster_csv import RosterFileError, load_roster, load_states
    from acd.loaders.textfile import TextFileError
    from acd.loadsim.model import SimError
    from acd.loadsim.replay import (
        compare,
        comparison_csv,
        dst_changes,
        plot_comparison,
        replay_scenario,
        span_start,
    )
    from acd.loadsim.scenario import load_scenario
    from acd.loadsim.virtual import run_virtual
    from acd.planning.roster import RosterError, is_rona_reason, roster_from_states

    if (roster_path is None) == (states_path is None):
        raise click.UsageError("give --roster or --states (one of them)")
    if plot_path is not None:
        from acd.plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib("--plot")
        except PlotUnavailable as exc:
            _fail(f"Error: {exc}")
            return
    zone_info: dt.tzinfo
    if tz is not None:
        from acd.ivr.hours import HoursError, zone

        try:
            zone_info = zone(tz)
        except HoursError as exc:
            raise click.BadParameter(str(exc), param_hint="--tz") from None
    else:
        from acd.runtime.settings import local_zone

        zone_info = local_zone()
    notes: list[str] = []
    skipped = Skipped()
    try:
        from acd.planning.fitting import fit_records

        recs = list(iter_records(records, tz=zone_info, skipped=skipped))
        if not recs:
            _fail(f"{records}: no answered or abandoned call to replay")
            return
        if skipped.total:
            notes.append(f"{records}: {skipped.describe()}")
        base = load_scenario(base_path) if base_path is not None else None
        rona = 0
        if roster_path is not None:
            roster = load_roster(roster_path, zone_info)
        else:
            assert states_path is not None
            rows = load_states(states_path, zone_info)
            skills = {a.profile.agent_id: tuple(a.profile.skills.items())
                      for a in base.agents} if base is not None else None
            roster, import_notes = roster_from_states(rows, skills=skills)
            notes.extend(f"{states_path}: {line}" for line in import_notes.lines())
            rona = sum(1 for r in rows if r.state == "paused" and is_rona_reason(r.reason))
        fits = fit_records(recs)
        answered = sum(1 for r in recs if r.outcome == "answered")
        # ring-no-answer: the share of offers the state records show unanswered
        rona_p: float | None = None  # --roster: the base scenario's, else 0
        if states_path is not None:
            rona_p = rona / (answered + rona) if rona else 0.0
        if ring_no_answer is not None:
            rona_p = ring_no_answer
        elif rona:
            notes.append(f"{rona:,} ring-no-answer pauses in the state records: offers go "
                         f"unanswered with probability {rona_p:.3f} in the replay")
        interval_s = int(interval) * 60
        sc, more = replay_scenario(recs, roster, fits, base=base, interval_s=interval_s,
                                   answer_within_s=answer_within, seed=seed,
                                   name=f"replay of {records.name}", ring_no_answer=rona_p,
                                   roster_file=str(roster_path or states_path))
        notes.extend(more)
        result = run_virtual(sc, seed)
    except (RecordsError, RosterFileError, TextFileError, YamlError) as exc:
        _fail(str(exc))
        return
    except RosterError as exc:
        _fail(f"{roster_path or states_path}: {exc}")
        return
    except (SimError, ImportError) as exc:
        _fail(f"Error: {exc}")
        return
    start = span_start(recs, roster, interval_s)
    warnings = list(result.warnings)
    last = max([r.arrival for r in recs] + [s.end for s in roster.shifts])
    changes = dst_changes(start, last, zone_info)
    if changes:
        warnings.append(
            f"the replayed span crosses {len(changes)} daylight-saving change(s) of "
            f"{tz or 'the local zone'} ({', '.join(f'{c:%Y-%m-%d %H:%M}' for c in changes[:3])}"
            f"{', ...' if len(changes) > 3 else ''}): times are local wall-clock times, so "
            "around a change the replay's hours are not real hours (at a fall-back the "
            "repeated hour's calls and shifts fall into one hour; at a spring-forward an "
            "hour is empty)")
    if fits.unknown_waits:
        notes.append(f"{fits.unknown_waits:,} answered record(s) without a wait: left out of "
                     "the patience fit; their patience is drawn unconditionally")
    cmp = compare(recs, result.calls, start, interval_s, answer_within)
    if csv_path is not None:
        csv_path.write_text(comparison_csv(cmp), encoding="utf-8")
    if plot_path is not None:
        from acd.plot import PlotUnavailable

        try:
            plot_comparison(cmp, str(plot_path), title=f"replay of {records.name}")
        except PlotUnavailable as exc:
            _fail(f"Error: {exc}")
            return
    if as_json:
        doc = {"records": str(records), "calls": len(recs), "skipped": skipped.counts,
               "fits": _fits_json(fits), "summary": cmp.summary(within_points),
               "queues": {q: r.as_dict() for q, r in cmp.queues.items()},
               "intervals": [r.as_dict() for r in cmp.rows], "notes": notes,
               "warnings": warnings, "activity_counts": dict(result.activity_counts)}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        return
    console = _console()
    console.print(f"[bold]fitted from {len(recs):,} call records[/bold]")
    for line in fits.describe():
        console.print(line, markup=False, highlight=False)
    for n in notes:
        err_console.print(f"note: {n}", markup=False, highlight=False)
    console.print(_replay_table(cmp, within_points))
    console.print(_replay_intervals(cmp))
    s = cmp.summary(within_points)
    console.print(
        f"intervals with calls: {s['intervals']:,}; within {within_points:g} points: "
        f"abandonment {100 * s['share_within_abandon']:.1f} %, served within "
        f"{answer_within:g} s {100 * s['share_within_sl']:.1f} %, both "
        f"{100 * s['share_within_both']:.1f} %", highlight=False)
    worst = ", ".join(
        f"{r.start:%Y-%m-%d %H:%M} ({r.records.offered} calls: ab. {r.errors()[0]:+.1f}, "
        f"SL {r.errors()[1]:+.1f})" for r in cmp.worst(5)
        if r.errors()[0] is not None and r.errors()[1] is not None)
    console.print(f"worst intervals: {worst}", highlight=False)
    for what, p in (("csv", csv_path), ("plot", plot_path)):
        if p is not None:
            console.print(f"{what}: {p}", highlight=False)
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


def _fits_json(fits: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q, f in fits.queues.items():
        p = f.patience
        out[q] = {
            "calls": f.calls, "answered": f.answered, "abandoned": f.abandoned,
            "answered_without_wait": f.unknown_wait,
            "handle": None if f.handle is None else {
                "mean_s": f.handle.mean, "lognormal_mu": f.handle.mu,
                "lognormal_sigma": f.handle.sigma, "drawn_from": f.handle.method},
            "wrap": None if f.wrap is None else {
                "mean_s": f.wrap.mean, "lognormal_mu": f.wrap.mu,
                "lognormal_sigma": f.wrap.sigma, "drawn_from": f.wrap.method},
            "patience": None if p is None else {
                "fitted_on": f.patience_from, "censored_share": p.censored_share,
                "model": p.model, "params": list(p.params), "mean_s": p.mean,
                "aic": p.aic, "km_median_s": p.km_median, "naive_mean_s": p.naive_mean},
        }
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _pts(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def _replay_table(cmp: Any, points: float) -> Table:
    table = Table(title=f"the span: records against replay (served within "
                        f"{cmp.threshold_s:g} s, of all calls)", box=box.SIMPLE_HEAD,
                  padding=(0, 1))
    for head in ("", "offered", "aband. rec", "replay", "err (pts)", "SL rec", "replay",
                 "err (pts)", "ASA rec", "replay"):
        table.add_column(head, justify="right" if head else "left", no_wrap=True)
    rows = [(f"queue {q}", r) for q, r in cmp.queues.items()] + [("all calls", cmp.total)]
    for label, r in rows:
        ab, sl, _ = r.errors()
        table.add_row(label, f"{r.records.offered:,}", _pct(r.records.abandon_pct),
                      _pct(r.replay.abandon_pct), _pts(ab), _pct(r.records.sl_pct),
                      _pct(r.replay.sl_pct), _pts(sl),
                      "-" if r.records.asa_s is None else f"{r.records.asa_s:.1f}",
                      "-" if r.replay.asa_s is None else f"{r.replay.asa_s:.1f}",
                      style="bold" if label == "all calls" else None)
    return table


def _replay_intervals(cmp: Any) -> Table:
    table = Table(title="per interval", box=box.SIMPLE_HEAD, padding=(0, 1))
    for head in ("interval", "offered", "aband. rec", "replay", "err", "SL rec", "replay",
                 "err", "ASA rec", "replay"):
        table.add_column(head, justify="left" if head == "interval" else "right",
                         no_wrap=True)
    for r in cmp.rows:
        if not r.records.offered and not r.replay.offered:
            continue
        ab, sl, _ = r.errors()
        table.add_row(f"{r.start:%Y-%m-%d %H:%M}", f"{r.records.offered:,}",
                      _pct(r.records.abandon_pct), _pct(r.replay.abandon_pct), _pts(ab),
                      _pct(r.records.sl_pct), _pct(r.replay.sl_pct), _pts(sl),
                      "-" if r.records.asa_s is None else f"{r.records.asa_s:.1f}",
                      "-" if r.replay.asa_s is None else f"{r.replay.asa_s:.1f}")
    return table
