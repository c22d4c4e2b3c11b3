"""``acd staffing``: how many agents a queue needs (Erlang C or Erlang A).

    acd staffing --calls-per-hour 200 --aht 180                  Erlang C, 80 % in 20 s
    acd staffing --calls-per-hour 200 --aht 180 --patience 180   Erlang A (callers abandon)
    acd staffing ... --max-abandon 0.05                          also cap the abandon share
    acd staffing ... --agents 12                                 evaluate 12 agents, no search
    acd staffing ... --json                                      figures as JSON
    acd staffing --scenario sim/scenarios/erlang_a.yaml [--target-sl 0.8] [--max-abandon X]
                 [--seed N] [--calls N] [--queue Q] [--interval HH:MM] [--pool SKILL]
                 [--replications 10] [--max-replications 40] [--confidence 0.95]
                 [--workers N]                                   by simulation (see below)
    acd staffing --forecast forecast.csv --aht 210 [--patience 120] [--wrap-up 20]
                 [--method erlang|sim] [--scenario BASE.yaml] -o requirements.csv
                                                                 requirements per interval

The table shows the agent counts around the answer (needed − 2 … needed + 3)
with the share of callers who wait, who abandon, the mean wait (over all
callers, abandoners included), the service level (share of all callers
answered within --answer-within seconds) and agent occupancy.  The formulas
are in :mod:`acd.planning.erlang`.

With ``--scenario`` the counts are tried in the virtual simulator (the
production router; :mod:`acd.loadsim.staffing`): the scenario's roster scaled
uniformly (or, with ``--pool``, the agents whose only skill is that one),
starting from the Erlang estimate and searching up or down until the
smallest count that meets the target sits next to one that does not; every
count with the same seed.  The service-level thresholds are the scenario's
(``sl_seconds``, the routing file's classes).  The table shows each count
tried: simulated service level, abandonment, mean wait and occupancy, and
the Erlang C/A service level and abandonment of the scope as one queue
beside them.  ``--queue`` measures one queue, ``--interval`` one interval
of the day (a stationary run at its rate, with the agents on shift then,
always available: no breaks, not-ready or shrinkage, which the schedule adds).
Every count is simulated in ``--replications`` independent replications
(in parallel on ``--workers`` processes, default all cores); every
simulated figure is their mean with its ``--confidence`` Student-t interval,
and a count meets the target when the one-sided lower bound of its service
level (upper bound of abandonment) does, Bonferroni-corrected over the two
tests and the batches a count may get; a count whose interval straddles
the target gets more replications, up to ``--max-replications``, and the
output says when it still could not decide.

With ``--forecast`` (a Forecast CSV, docs/planning.md) the command computes
the requirements per interval and queue: Erlang A (Erlang C without
``--patience``; handle time ``--aht`` + ``--wrap-up``), or with ``--method
sim`` a stationary simulation of each interval's rate (``--scenario``: the
routing policy and distributions of that base scenario; else one FIFO queue
with exponential times), and writes the Requirements CSV (``-o``, else to
standard output).

Exit codes: 0 done; 2 a bad option value (the message names the option).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
from click.core import ParameterSource
from rich import box
from rich.table import Table

from acd.cli.common import console, err_console, write_text_output
from acd.planning.erlang import agents_needed, check_targets, evaluate, offered_load

if TYPE_CHECKING:
    from acd.loadsim.replicate import Estimate
    from acd.loadsim.staffing import StaffingSearch

#: arrivals per replication for a constant-rate scenario or an interval
#: (acd.loadsim.staffing.DEFAULT_CALLS), replications per count and confidence
DEFAULT_CALLS = 5_000
DEFAULT_REPLICATIONS = 10
DEFAULT_CONFIDENCE = 0.95

#: rows shown below and above the answer
ROWS_BELOW, ROWS_ABOVE = 2, 3
#: the library's parameter names → this command's options (for error messages)
OPTION_OF = {"calls_per_hour": "--calls-per-hour", "aht_s": "--aht", "patience_s": "--patience",
             "target_sl": "--target-sl", "t_s": "--answer-within",
             "answer_within_s": "--answer-within",
             "max_abandon": "--max-abandon", "agents": "--agents"}
#: other parameters whose flag is not their name
_FLAG_OF = {"wrap_up_s": "--wrap-up", "as_json": "--json", "scenario_path": "--scenario",
            "output": "-o/--output", "forecast_path": "--forecast"}
_PARAM_RE = re.compile(r"\b(" + "|".join(OPTION_OF) + r")\b")


class Figures(Protocol):
    """What one table row needs.  The Erlang results have it.  The
    simulator-based search (``--scenario``) shows Erlang's figures beside
    its own, so it has a table of its own (:func:`scenario_table`)."""

    @property
    def agents(self) -> int: ...
    @property
    def pwait(self) -> float: ...
    @property
    def pab(self) -> float: ...
    @property
    def wait_mean_s(self) -> float: ...
    @property
    def sl(self) -> float: ...
    @property
    def occupancy(self) -> float: ...
    @property
    def stable(self) -> bool: ...


def _option_names(message: str) -> str:
    return _PARAM_RE.sub(lambda m: OPTION_OF[m.group(1)], message)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _seconds(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.1f} s"


def meets(r: Figures, target_sl: float, max_abandon: float | None) -> bool:
    return r.stable and r.sl >= target_sl and (max_abandon is None or r.pab <= max_abandon)


def staffing_table(rows: Sequence[Figures], *, mark: int, mark_label: str, title: str,
                   caption: str, answer_within_s: float, target_sl: float,
                   max_abandon: float | None, show_abandon: bool = True) -> Table:
    """One row per agent count; the ``mark`` row is highlighted and labelled."""
    notes = [caption, f"→ {mark_label}"]
    if any(not r.stable for r in rows):
        notes.append("∞: load ≥ agents, the queue grows without bound")
    table = Table(title=title, caption="\n".join(notes), box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("agents", justify="right")
    table.add_column("wait", justify="right")
    if show_abandon:
        table.add_column("abandon", justify="right")
    table.add_column("mean wait", justify="right")
    table.add_column(f"SL {answer_within_s:g} s", justify="right")
    table.add_column("occupancy", justify="right")
    table.add_column("target", justify="center")
    for r in rows:
        ok = meets(r, target_sl, max_abandon)
        cells = ["→" if r.agents == mark else "", str(r.agents), _pct(r.pwait)]
        if show_abandon:
            cells.append(_pct(r.pab))
        cells += [_seconds(r.wait_mean_s), _pct(r.sl), _pct(r.occupancy),
                  "[green]✓[/green]" if ok else "[red]✗[/red]"]
        table.add_row(*cells, style="bold" if r.agents == mark else None)
    return table


def _row_json(r: Figures, target_sl: float, max_abandon: float | None) -> dict[str, Any]:
    return {"agents": r.agents, "pwait": r.pwait, "pab": r.pab,
            # JSON has no infinity: an unstable queue has no mean wait
            "wait_mean_s": None if math.isinf(r.wait_mean_s) else r.wait_mean_s,
            "sl": r.sl, "occupancy": r.occupancy, "stable": r.stable,
            "meets_target": meets(r, target_sl, max_abandon)}


@click.command()
@click.option("--calls-per-hour", type=float, default=None,
              help="Arriving calls per hour (required without --scenario).")
@click.option("--aht", "aht_s", type=float, default=None,
              help="Average handling time, seconds (talk + wrap-up; required without "
                   "--scenario).")
@click.option("--patience", "patience_s", type=float, default=None,
              help="Callers' mean patience, seconds (exponential): Erlang A.  "
                   "Omitted: Erlang C, nobody abandons.")
@click.option("--target-sl", type=float, default=0.8, show_default=True,
              help="Service level target: share of all callers answered within "
                   "--answer-within seconds.")
@click.option("--answer-within", "answer_within_s", type=float, default=20.0, show_default=True,
              help="Service level threshold, seconds.")
@click.option("--max-abandon", type=float, default=None,
              help="Also require at most this share of callers to abandon (needs --patience).")
@click.option("--agents", type=int, default=None,
              help="Evaluate this many agents instead of searching for the number needed.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Search by simulation on this load-simulator scenario (sim/scenarios/) "
                   "instead of the Erlang formulas.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="By simulation: the base seed; replication i of every count has the seed "
                   "derived from it and i.")
@click.option("--calls", type=click.IntRange(min=100), default=None,
              help="With --scenario: arrivals per replication (default: the scenario's day, "
                   f"or {DEFAULT_CALLS:,} for a constant rate or an interval, the first "
                   "tenth a warm-up).")
@click.option("--queue", default=None, help="With --scenario: meet the target in this queue.")
@click.option("--interval", default=None,
              help="With --scenario: meet the target in this interval of the day (HH:MM).")
@click.option("--pool", default=None,
              help="With --scenario: scale the agents whose only skill is this one (default: "
                   "the whole roster, uniformly).")
@click.option("--replications", type=click.IntRange(min=2), default=DEFAULT_REPLICATIONS,
              show_default=True,
              help="By simulation: independent replications per agent count (seeds derived "
                   "from --seed).")
@click.option("--max-replications", type=click.IntRange(min=2), default=None,
              help="By simulation: the most replications a count gets while its interval "
                   "straddles the target (default: 4 x --replications).")
@click.option("--confidence", type=click.FloatRange(0.5, 1.0, min_open=False, max_open=True),
              default=DEFAULT_CONFIDENCE, show_default=True,
              help="By simulation: confidence of the intervals, and of the target holding.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="By simulation: processes running replications (default: all cores; 1: "
                   "in this process).")
@click.option("--forecast", "forecast_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Requirements per interval and queue for this Forecast CSV (see "
                   "docs/planning.md).")
@click.option("--wrap-up", "wrap_up_s", type=float, default=0.0, show_default=True,
              help="With --forecast: after-call work, seconds (added to --aht for Erlang).")
@click.option("--method", type=click.Choice(["erlang", "sim"]), default="erlang",
              show_default=True,
              help="With --forecast: Erlang A/C (quick), or a simulation per interval.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="With --forecast: write the Requirements CSV here "
                                 "(default: standard output).")
@click.pass_context
def staffing(ctx: click.Context, calls_per_hour: float | None, aht_s: float | None,
             patience_s: float | None, target_sl: float, answer_within_s: float,
             max_abandon: float | None, agents: int | None, as_json: bool,
             scenario_path: Path | None, seed: int, calls: int | None, queue: str | None,
             interval: str | None, pool: str | None, replications: int,
             max_replications: int | None, confidence: float, workers: int | None,
             forecast_path: Path | None, wrap_up_s: float, method: str,
             output: Path | None) -> None:
    """How many agents a queue needs to answer --target-sl of all calls within
    --answer-within seconds: Erlang C, or Erlang A with --patience; or, with
    --scenario, by simulating a scenario with more or fewer agents (with
    confidence intervals); or, with --forecast, per interval and queue."""

    def given(*names: str) -> list[str]:
        return [OPTION_OF.get(name) or _FLAG_OF.get(name) or "--" + name.replace("_", "-")
                for name in names
                if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]

    sim_opts = ("replications", "max_replications", "confidence", "workers")
    if max_replications is not None and max_replications < replications:
        raise click.UsageError(f"--max-replications ({max_replications}) must be >= "
                               f"--replications ({replications})")
    if forecast_path is not None:
        wrong = given("calls_per_hour", "agents", "queue", "interval", "pool", "as_json")
        if wrong:
            raise click.UsageError(f"{', '.join(wrong)}: not with --forecast")
        if method == "erlang":
            wrong = given("scenario_path", "seed", "calls", *sim_opts)
            if wrong:
                raise click.UsageError(f"{', '.join(wrong)}: only with --method sim")
        if scenario_path is not None:
            wrong = given("aht_s", "patience_s", "wrap_up_s", "answer_within_s")
            if wrong:
                raise click.UsageError(f"{', '.join(wrong)}: not with --scenario (the "
                                       f"scenario gives the handle times, patience and "
                                       f"thresholds)")
        elif aht_s is None:
            raise click.UsageError("Missing option '--aht' (or give --method sim with "
                                   "--scenario).")
        _forecast_staffing(forecast_path, method=method, scenario_path=scenario_path,
                           aht_s=aht_s, patience_s=patience_s, wrap_up_s=wrap_up_s,
                           target_sl=target_sl, answer_within_s=answer_within_s,
                           max_abandon=max_abandon, seed=seed, calls=calls,
                           replications=replications, max_replications=max_replications,
                           confidence=confidence, workers=workers, output=output)
        return
    wrong = given("wrap_up_s", "method", "output")
    if wrong:
        raise click.UsageError(f"{', '.join(wrong)}: only with --forecast")
    if scenario_path is not None:
        clash = given("calls_per_hour", "aht_s", "patience_s", "answer_within_s")
        if clash:
            raise click.UsageError(f"{', '.join(clash)}: not with --scenario (the scenario "
                                   f"gives the load, handle times, patience and thresholds)")
        _scenario_staffing(scenario_path, target_sl=target_sl, max_abandon=max_abandon,
                           agents=agents, seed=seed, calls=calls, queue=queue,
                           interval=interval, pool=pool, as_json=as_json,
                           replications=replications, max_replications=max_replications,
                           confidence=confidence, workers=workers)
        return
    extra = given("seed", "calls", "queue", "interval", "pool", *sim_opts)
    if extra:
        raise click.UsageError(f"{', '.join(extra)}: only with --scenario")
    if calls_per_hour is None:
        raise click.UsageError("Missing option '--calls-per-hour' (or give --scenario).")
    if aht_s is None:
        raise click.UsageError("Missing option '--aht' (or give --scenario).")
    try:
        load = offered_load(calls_per_hour, aht_s)
        if agents is None:
            mark = agents_needed(calls_per_hour, aht_s, target_sl, answer_within_s,
                                 patience_s=patience_s, max_abandon=max_abandon)
            needed: int | None = mark
        else:
            needed = None
            mark = agents
            evaluate(calls_per_hour, aht_s, agents, answer_within_s, patience_s)
            check_targets(target_sl, patience_s, max_abandon)  # the ✓/✗ column uses them
        counts = range(max(1, mark - ROWS_BELOW), mark + ROWS_ABOVE + 1)
        # the simulator-based search (--scenario) is _scenario_staffing below
        rows = [evaluate(calls_per_hour, aht_s, n, answer_within_s, patience_s) for n in counts]
    except ValueError as exc:
        raise click.UsageError(_option_names(str(exc))) from exc

    model = "C" if patience_s is None else "A"
    if as_json:
        click.echo(json.dumps({
            "model": model, "calls_per_hour": calls_per_hour, "aht_s": aht_s,
            "patience_s": patience_s, "offered_load": load, "target_sl": target_sl,
            "answer_within_s": answer_within_s, "max_abandon": max_abandon,
            "agents_needed": needed, "agents": agents,
            "results": [_row_json(r, target_sl, max_abandon) for r in rows],
        }, indent=2))
        return

    title = ("staffing, Erlang C (no abandonment)" if patience_s is None
             else f"staffing, Erlang A (mean patience {patience_s:g} s)")
    caption = (f"{load:.2f} Erlangs ({calls_per_hour:g} calls/h × {aht_s:g} s); "
               f"target {100 * target_sl:g} % within {answer_within_s:g} s")
    if max_abandon is not None:
        caption += f", abandon ≤ {100 * max_abandon:g} %"
    if needed is not None:
        label = f"{needed} agents needed"
    else:
        shown = next(r for r in rows if r.agents == mark)
        label = (f"{mark} agents given: "
                 f"{'meets' if meets(shown, target_sl, max_abandon) else 'misses'} the target")
    console.print(staffing_table(rows, mark=mark, mark_label=label, title=title, caption=caption,
                                 answer_within_s=answer_within_s, target_sl=target_sl,
                                 max_abandon=max_abandon, show_abandon=patience_s is not None))


# ------------------------------------------------------------------ --scenario


def _opt_pct(x: float | None) -> str:
    return "-" if x is None else _pct(x)


def _ci(est: Estimate | None, mean: float | None, pct: bool = True) -> str:
    """``85.2 % (83.7-86.6)``: the mean and its two-sided interval."""
    if mean is None:
        return "-"
    if est is None:
        return _pct(mean) if pct else _seconds(mean)
    if pct:
        return f"{100 * mean:.1f} % ({100 * est.lo:.1f}–{100 * est.hi:.1f})"
    return f"{mean:.1f} s ({est.lo:.1f}–{est.hi:.1f})"


def scenario_table(search: StaffingSearch) -> Table:
    """One row per count tried: simulated figures with their confidence
    intervals, then Erlang's beside them."""
    e = search.erlang
    model = f"Erlang {e.model}" if e is not None else "Erlang"
    what = "roster" if search.pool is None else f"{search.pool} agents"
    scope = search.scope + (f", queue {search.queue}" if search.queue else "")
    conf = f"{100 * search.confidence:g} %"
    warm = ""
    if search.warmup_s > 0:
        warm = f", the first {search.warmup_s / 60:.0f} min of each a warm-up"
    notes = [f"{scope}; {what} scaled; {search.replications}+ replications per count "
             f"(seeds from {search.seed}, {search.workers} process"
             f"{'es' if search.workers > 1 else ''})"
             + (f", {search.calls:,} arrivals each{warm}" if search.calls else ""),
             f"figures: mean over the replications ({conf} interval)"]
    if search.trace:
        notes.append("a trace: every replication replays its calls (arrivals, handle times, "
                     "patience); the intervals cover only what it leaves to chance")
    target = f"target SL ≥ {100 * search.target_sl:g} %"
    if search.max_abandon is not None:
        target += f", abandon ≤ {100 * search.max_abandon:g} %"
    tests = "SL and abandonment" if search.max_abandon is not None else "SL"
    notes.append(target + f", held at {conf} confidence: each test ({tests}) one-sided at "
                 f"{100 * search.decision_level:.2f} % (Bonferroni over the tests and "
                 f"{search.looks} look{'s' if search.looks > 1 else ''})")
    if search.on_the_phones:
        from acd.loadsim.staffing import REQUIREMENT_NOTE

        notes.append(REQUIREMENT_NOTE)
    if e is not None:
        pat = "no abandonment" if e.patience_s is None else f"patience {e.patience_s:.0f} s"
        est = "" if search.erlang_estimate is None else f" → estimate {search.erlang_estimate}"
        notes.append(f"{model} as one queue: {e.calls_per_hour:.0f} calls/h, AHT "
                     f"{e.aht_s:.0f} s, {pat}, SL within {e.t_s:g} s{est}")
    if search.undecided:
        notes.append(f"? could not decide for {', '.join(map(str, search.undecided))} agents: "
                     f"the interval still straddles the target after "
                     f"{search.max_replications} replications (counted as not meeting it)")
    if search.needed is not None:
        notes.append(f"→ {search.needed} agents needed")
    elif len(search.tried) == 1:  # --agents: one count, no search
        c = search.tried[0]
        verdict = "meets" if c.meets else ("misses" if c.decided else "cannot tell whether "
                                           "it meets")
        notes.append(f"→ {c.agents} agents given: {verdict} the target")
    else:
        notes.append("→ no count tried meets the target")
    table = Table(title=f"staffing by simulation: {search.scenario}",
                  caption="\n".join(notes), box=box.SIMPLE_HEAD, padding=(0, 1),
                  pad_edge=False)
    table.add_column("", no_wrap=True)
    for head in ("agents", "reps", "SL", "abandon", "wait", "occup.", "Erl. SL", "Erl. ab."):
        table.add_column(head, justify="right", no_wrap=True)
    table.add_column("target", justify="center", no_wrap=True)
    for c in search.tried:
        mark = c.agents == search.needed
        er = c.erlang
        verdict = "[green]✓[/green]" if c.meets else (
            "[red]✗[/red]" if c.decided else "[yellow]?[/yellow]")
        table.add_row(
            "→" if mark else "", str(c.agents), str(c.replications),
            _ci(c.sl_ci, c.service_level), _ci(c.abandon_ci, c.abandon_rate),
            _ci(c.wait_ci, c.mean_wait_s, pct=False), _ci(c.occupancy_ci, c.occupancy),
            "-" if er is None else _pct(er.sl), "-" if er is None else _pct(er.pab),
            verdict, style="bold" if mark else None)
    return table


def _scenario_staffing(path: Path, *, target_sl: float, max_abandon: float | None,
                       agents: int | None, seed: int, calls: int | None, queue: str | None,
                       interval: str | None, pool: str | None, as_json: bool,
                       replications: int = DEFAULT_REPLICATIONS,
                       max_replications: int | None = None,
                       confidence: float = DEFAULT_CONFIDENCE,
                       workers: int | None = None) -> None:
    from acd.loaders.yamlpos import YamlError
    from acd.loadsim.model import SimError
    from acd.loadsim.scenario import load_scenario
    from acd.loadsim.staffing import search_agents

    try:
        check_targets(target_sl, 1.0, max_abandon)
    except ValueError as exc:
        raise click.UsageError(_option_names(str(exc))) from exc
    try:
        sc = load_scenario(path)
    except YamlError as exc:
        err_console.print(str(exc), markup=False, highlight=False)
        sys.exit(2)
    status = err_console.status("simulating ...")
    if not as_json:
        status.start()

    def tried(c: Any) -> None:
        sl = "-" if c.service_level is None else f"{100 * c.service_level:.1f} %"
        status.update(f"simulating ... {c.agents} agents: SL {sl} "
                      f"({c.replications} replications)")

    try:
        if agents is not None and agents < 1:
            raise click.UsageError("--agents must be >= 1")
        search = search_agents(sc, target_sl, max_abandon, seed=seed, calls=calls,
                               queue=queue, interval=interval, pool=pool, progress=tried,
                               only=agents, replications=replications,
                               max_replications=max_replications, confidence=confidence,
                               workers=workers)
    except SimError as exc:
        raise click.UsageError(f"{path}: {exc}") from exc
    finally:
        status.stop()
    if as_json:
        doc = {"model": "simulation", **search.to_dict()}
        click.echo(json.dumps(doc, indent=2))
        return
    console.print(scenario_table(search))


# ------------------------------------------------------------------ --forecast


def _forecast_staffing(path: Path, *, method: str, scenario_path: Path | None,
                       aht_s: float | None, patience_s: float | None, wrap_up_s: float,
                       target_sl: float, answer_within_s: float, max_abandon: float | None,
                       seed: int, calls: int | None, replications: int,
                       max_replications: int | None, confidence: float, workers: int | None,
                       output: Path | None) -> None:
    import time

    from acd.loaders.planning_csv import PlanningFileError, load_forecast, write_requirements
    from acd.loaders.textfile import TextFileError
    from acd.planning.requirements import erlang_requirements, interval_seconds

    try:
        check_targets(target_sl, 1.0 if method == "sim" else patience_s, max_abandon)
        if aht_s is not None and aht_s <= 0:
            raise ValueError(f"aht_s must be > 0, got {aht_s!r}")
        if patience_s is not None and patience_s <= 0:
            raise ValueError(f"patience_s must be > 0, got {patience_s!r}")
        if not (math.isfinite(wrap_up_s) and wrap_up_s >= 0):
            raise ValueError(f"--wrap-up must be >= 0, got {wrap_up_s!r}")
        if answer_within_s < 0:
            raise ValueError(f"answer_within_s must be >= 0, got {answer_within_s!r}")
    except ValueError as exc:
        raise click.UsageError(_option_names(str(exc))) from exc
    try:
        rows = load_forecast(path)
    except (TextFileError, PlanningFileError) as exc:
        err_console.print(str(exc), markup=False, highlight=False)
        sys.exit(2)
    if not rows:
        err_console.print(f"{path}: no intervals in the forecast", markup=False)
        sys.exit(2)
    try:
        interval_s = interval_seconds(rows, file=str(path))
    except ValueError as exc:
        err_console.print(str(exc), markup=False, highlight=False)
        sys.exit(2)
    t0 = time.perf_counter()
    note = ""
    if method == "erlang":
        assert aht_s is not None
        reqs = erlang_requirements(rows, interval_s=interval_s, aht_s=aht_s + wrap_up_s,
                                   target_sl=target_sl, t_s=answer_within_s,
                                   patience_s=patience_s, max_abandon=max_abandon)
        model = "Erlang C" if patience_s is None else "Erlang A"
    else:
        reqs, note = _simulated(rows, interval_s, scenario_path, aht_s=aht_s,
                                patience_s=patience_s, wrap_up_s=wrap_up_s,
                                target_sl=target_sl, answer_within_s=answer_within_s,
                                max_abandon=max_abandon, seed=seed, calls=calls,
                                replications=replications, max_replications=max_replications,
                                confidence=confidence, workers=workers)
        model = "simulation"
    took = time.perf_counter() - t0
    write_text_output("-" if output is None else output, write_requirements(reqs))
    queues = sorted({r.queue for r in reqs})
    peak = max(reqs, key=lambda r: r.required)
    n_int = len({r.start for r in reqs})
    summary = (f"{len(reqs)} requirements ({n_int} interval{'s' if n_int > 1 else ''} of "
               f"{interval_s // 60} min × {len(queues)} queue{'s' if len(queues) > 1 else ''})"
               f" by {model} in {took:.2f} s{note}; peak {peak.required} agents "
               f"({peak.queue}, {peak.start:%Y-%m-%d %H:%M})"
               + (f"; written to {output}" if output is not None else ""))
    err_console.print(summary, markup=False, highlight=False)


def _simulated(rows: Any, interval_s: int, scenario_path: Path | None, *,
               aht_s: float | None, patience_s: float | None, wrap_up_s: float,
               target_sl: float, answer_within_s: float, max_abandon: float | None, seed: int,
               calls: int | None, replications: int, max_replications: int | None,
               confidence: float, workers: int | None) -> tuple[Any, str]:
    from acd.loaders.yamlpos import YamlError
    from acd.loadsim.model import Scenario, SimError
    from acd.loadsim.scenario import load_scenario
    from acd.loadsim.staffing import (
        REQUIREMENT_NOTE,
        simple_scenario,
        simulated_requirements,
    )

    if scenario_path is not None:
        try:
            base = load_scenario(scenario_path)
        except YamlError as exc:
            err_console.print(str(exc), markup=False, highlight=False)
            sys.exit(2)

        def scenario_of(queue: str) -> Scenario:
            return base
    else:
        assert aht_s is not None

        def scenario_of(queue: str) -> Scenario:
            return simple_scenario(queue, aht_s=aht_s, patience_s=patience_s,
                                   wrap_up_s=wrap_up_s, t_s=answer_within_s)

    status = err_console.status("simulating ...")
    status.start()

    def progress(done: int, todo: int) -> None:
        status.update(f"simulating ... {done}/{todo} distinct rates")

    try:
        reqs, searches = simulated_requirements(
            rows, interval_s=interval_s, scenario_of=scenario_of, target_sl=target_sl,
            max_abandon=max_abandon, seed=seed, calls=calls, replications=replications,
            max_replications=max_replications, confidence=confidence, workers=workers,
            progress=progress)
    except SimError as exc:
        where = scenario_path if scenario_path is not None else "--forecast"
        raise click.UsageError(f"{where}: {exc}") from exc
    finally:
        status.stop()
    runs = sum(c.replications for s in searches for c in s.tried)
    sim_s = sum(c.wall_s for s in searches for c in s.tried)
    undecided = sum(len(s.undecided) for s in searches)
    note = (f" ({len(searches)} searches, {runs:,} replications, {sim_s:.1f} s of "
            f"simulation on {searches[0].workers if searches else 1} process(es)"
            + (f"; {undecided} count(s) undecided at the most replications" if undecided
               else "") + "; " + REQUIREMENT_NOTE + ")")
    return reqs, note
