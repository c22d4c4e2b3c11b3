"""``acd staffing``: how many agents a queue needs (Erlang C or Erlang A).

    acd staffing --calls-per-hour 200 --aht 180                  Erlang C, 80 % in 20 s
    acd staffing --calls-per-hour 200 --aht 180 --patience 180   Erlang A (callers abandon)
    acd staffing ... --max-abandon 0.05                          also cap the abandon share
    acd staffing ... --agents 12                                 evaluate 12 agents, no search
    acd staffing ... --json                                      figures as JSON

The table shows the agent counts around the answer (needed − 2 … needed + 3)
with the share of callers who wait, who abandon, the mean wait (over all
callers, abandoners included), the service level (share of all callers
answered within --answer-within seconds) and agent occupancy.  The formulas
are in :mod:`acd.planning.erlang`.

Exit codes: 0 done; 2 a bad option value (the message names the option).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

import click
from rich import box
from rich.console import Console
from rich.table import Table

from acd.planning.erlang import agents_needed, check_targets, evaluate, offered_load

console = Console()

#: rows shown below and above the answer
ROWS_BELOW, ROWS_ABOVE = 2, 3
#: the library's parameter names → this command's options (for error messages)
OPTION_OF = {"calls_per_hour": "--calls-per-hour", "aht_s": "--aht", "patience_s": "--patience",
             "target_sl": "--target-sl", "t_s": "--answer-within",
             "max_abandon": "--max-abandon", "agents": "--agents"}
_PARAM_RE = re.compile(r"\b(" + "|".join(OPTION_OF) + r")\b")


class Figures(Protocol):
    """What one table row needs.  The Erlang results have it; a
    simulator-based evaluation (a future ``--scenario``) can provide the
    same attributes and reuse :func:`staffing_table` and :func:`as_json`."""

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
@click.option("--calls-per-hour", type=float, required=True, help="Arriving calls per hour.")
@click.option("--aht", "aht_s", type=float, required=True,
              help="Average handling time, seconds (talk + wrap-up).")
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
def staffing(calls_per_hour: float, aht_s: float, patience_s: float | None, target_sl: float,
             answer_within_s: float, max_abandon: float | None, agents: int | None,
             as_json: bool) -> None:
    """How many agents a queue needs to answer --target-sl of all calls within
    --answer-within seconds: Erlang C, or Erlang A with --patience."""
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
        # hook: a simulator-based search (a future --scenario option) replaces the two
        # calls above and this list with its own Figures; the rendering below stays as is
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
