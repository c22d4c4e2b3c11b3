"""``acd report ...``: reports from the database (``acd report calls`` and
``acd report fit`` here; ``acd report sms`` registers itself from
:mod:`acd.cli.sms`).

``acd report calls`` reads the call records and the agents' state changes
(``agent_events``) of a period and replays them into the engine's own
statistics (:mod:`acd.reports.calls`), so its figures are the live ones;
every figure is defined in docs/reports.md.

``acd report fit`` sets the plan (requirements, roster) against the same
replay and the agents' state changes, per interval (:mod:`acd.planning.fit`;
docs/planning.md, "Fit: plan against the day").
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click
from rich.table import Table

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
    write_csv,
)


@click.group("report")
def report() -> None:
    """Reports from the database."""


# ------------------------------------------------------------------ options


def _zone(name: str | None, configured: str | None = None) -> dt.tzinfo:
    """``--tz``, else ``statistics.tz``, else this machine's zone."""
    return tz_option_zone(name, configured)


def _when(value: str, tz: dt.tzinfo, what: str, *, end: bool) -> float:
    """``--since``/``--until`` as epoch seconds (:func:`time_option_value`)."""
    return time_option_value(value, tz, what, end=end).timestamp()


def _service_levels(config_path: str | None) -> tuple[dict[str, Any], Any, str | None]:
    """(class -> ServiceLevel, the statistics settings, the database URL) of
    the configuration (``--config``, else ./acd.yaml if there is one)."""
    from acd.core.stats import ServiceLevel
    from acd.runtime.settings import StatsConfig

    cfg = config_option(config_path)
    if cfg is None:
        return {}, StatsConfig(), None
    sls = {c.name: ServiceLevel(c.sl_threshold_s, c.sl_target)
           for c in cfg.core.policy.classes.values()}
    return sls, cfg.statistics, cfg.database_url


# ------------------------------------------------------------------ reading


#: ids named in the warning about rows this version cannot read
NAMED = 5


def _read(db: Any, since: float, until: float) -> Any:
    """The records counted in [since, until), the state changes in it (in
    time order: ``at``, then ``id``), each agent's state at ``since`` (its
    last change in the :data:`~acd.cli.common.SEED_LOOKBACK_S` before) and the rows skipped
    as this version cannot read them: ``(call ids, agent event ids)``."""
    from sqlalchemy import select

    from acd.adapters.schema import aware, call_records, utc
    from acd.core.model import AgentState, AgentStateChanged, CallRecord, Outcome
    from acd.reports.calls import counted_at

    c = call_records.c
    has = {col.name for col in call_records.c}
    bad_calls: list[str] = []
    bad_events: list[str] = []

    def ts(v: Any) -> float | None:
        return aware(v).timestamp() if v is not None else None

    def state(r: Any) -> tuple[AgentState, AgentState] | None:
        try:
            return AgentState(r["old_state"]), AgentState(r["new_state"])
        except ValueError:  # a state this version does not know
            bad_events.append(str(r["id"]))
            return None

    def work(conn: Any) -> Any:
        q = select(call_records).where(c.started_at < utc(until), c.ended_at >= utc(since))
        records: list[CallRecord] = []
        for r in conn.execute(q).mappings():
            try:
                outcome = Outcome(r["outcome"])
            except ValueError:  # an outcome this version does not know
                bad_calls.append(str(r["call_id"]))
                continue
            rec = CallRecord(
                call_id=r["call_id"], caller=r["caller"], caller_name=r["caller_name"],
                started_at=ts(r["started_at"]) or 0.0, ended_at=ts(r["ended_at"]) or 0.0,
                outcome=outcome,
                ivr_path=tuple(p for p in (r["ivr_path"] or "").split(">") if p),
                queue=r["queue"], queued_at=ts(r["queued_at"]), wait_s=r["wait_s"],
                agent_id=r["agent_id"], answered_at=ts(r["answered_at"]),
                talk_s=r["talk_s"], offers=r["offers"], server=r["server"],
                customer_class=r["customer_class"], priority=r["priority"],
                first_queue=r["first_queue"],
                ivr_end=(r["ivr_end"] or "") if "ivr_end" in has else "")
            if since <= counted_at(rec) < until:
                records.append(rec)
        changes: list[AgentStateChanged] = []
        for r in event_rows(conn, since, until):
            states = state(r)
            if states is not None:
                changes.append(AgentStateChanged(r["agent_id"], states[0], states[1],
                                                 ts(r["at"]) or 0.0, r["reason"]))
        # each agent's last change before `since` (by time, then id)
        seeds: dict[str, tuple[AgentState, float]] = {}
        for r in seed_event_rows(conn, since):
            states = state(r)
            seeds.pop(r["agent_id"], None)  # the later row (same instant, higher id) wins
            if states is not None and states[1] is not AgentState.LOGGED_OUT:
                seeds[r["agent_id"]] = (states[1], since)
        return records, changes, seeds, (bad_calls, bad_events)

    return db.read(work)


def _skipped_warning(bad_calls: list[str], bad_events: list[str]) -> str | None:
    """One line about the rows this version cannot read (None: none)."""
    parts = []
    for rows, what in ((bad_calls, "call records with an outcome this version does not "
                                   "know (call ids"),
                       (bad_events, "agent events with a state this version does not "
                                    "know (agent_events ids")):
        if rows:
            more = ", ..." if len(rows) > NAMED else ""
            parts.append(f"{len(rows)} {what} {', '.join(rows[:NAMED])}{more})")
    if not parts:
        return None
    return f"skipped {' and '.join(parts)}: they count nowhere in this report"


# ------------------------------------------------------------------ output


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = f"{v:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(v)


def _shown(col: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if col == "interval" and isinstance(v, str) and len(v) > 16:
        return v[5:16].replace("T", " ")  # 11-23 10:15 (the CSV has the whole time)
    if isinstance(v, float):
        if col in ("service_level", "sl_answered_only", "abandon_rate", "occupancy",
                   "utilisation", "target"):
            return f"{100 * v:.1f}%"
        return f"{v:.1f}"
    return shown(v)


#: what the terminal table shows (the CSV has every column)
_TABLE = {
    "call": ("interval", "group", "offered", "answered", "abandoned", "short_abandoned",
             "transferred", "service_level", "target", "asa_s", "aht_s", "abandon_rate",
             "longest_wait_s"),
    "agent": ("interval", "agent", "answered", "aht_s", "talk_s", "wrap_s", "logged_in_s",
              "paused_s", "occupancy", "utilisation"),
    "ivr": ("interval", "node", "reason", "calls", "transferred", "mean_ivr_s"),
}


def _png(path: str, by: str, rows: list[dict[str, Any]]) -> None:
    from acd.plot import PlotUnavailable, require_matplotlib

    try:
        require_matplotlib("acd report calls --png")
    except PlotUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    import matplotlib.pyplot as plt
    per = [r for r in rows if r["interval"] != "all"]
    if by == "agent":
        tot = [r for r in rows if r["interval"] == "all" and r["agent"] != "all"]
        fig, ax = plt.subplots(figsize=(max(6, len(tot) * 0.8), 4))
        xs = list(range(len(tot)))
        ax.bar([x - 0.2 for x in xs], [r["occupancy"] or 0 for r in tot], 0.4, label="occupancy")
        ax.bar([x + 0.2 for x in xs], [r["utilisation"] or 0 for r in tot], 0.4,
               label="utilisation")
        ax.set_xticks(xs, [r["agent"] for r in tot], rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title("Agents: occupancy and utilisation")
    elif by == "ivr":
        tot = [r for r in rows if r["interval"] == "all"]
        fig, ax = plt.subplots(figsize=(max(6, len(tot) * 0.8), 4))
        ax.bar(range(len(tot)), [r["calls"] for r in tot])
        ax.set_xticks(range(len(tot)), [f"{r['node']}\n{r['reason']}" for r in tot])
        ax.set_title("Calls that ended in the IVR")
    else:
        fig = _png_calls(plt, per)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _png_calls(plt: Any, per: list[dict[str, Any]]) -> Any:
    """Calls per interval (offered: solid, answered: dashed) above the
    service level (with each group's target dotted): one colour per group
    in both panels, each with its legend; a period of one interval is drawn
    as bars (a line of one point is a dot)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    groups = sorted({r["group"] for r in per})
    labels = sorted({r["interval"] for r in per})
    pos = {label: i for i, label in enumerate(labels)}
    palette = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    colour = {g: palette(i % palette.N) for i, g in enumerate(groups)}
    targets = {g: {r["target"] for r in per if r["group"] == g and r["target"] is not None}
               for g in groups}
    shared = {t for ts in targets.values() for t in ts}
    one = len(labels) == 1
    width = 0.8 / max(1, len(groups))
    for i, g in enumerate(groups):
        mine = [r for r in per if r["group"] == g]
        c = colour[g]
        if one:
            x = -0.4 + width * (i + 0.5)
            ax1.bar(x - width / 4, mine[0]["offered"], width / 2, color=c, label=f"{g} offered")
            ax1.bar(x + width / 4, mine[0]["answered"], width / 2, color=c, alpha=0.45,
                    hatch="//", label=f"{g} answered")
            ax2.bar(x, mine[0]["service_level"] or 0, width * 0.9, color=c, label=f"{g} SL")
            for t in targets[g]:
                ax2.hlines(t, x - width / 2, x + width / 2, colors=[c], linestyles=":")
            continue
        xs = [pos[r["interval"]] for r in mine]
        ax1.plot(xs, [r["offered"] for r in mine], color=c, marker="o", label=f"{g} offered")
        ax1.plot(xs, [r["answered"] for r in mine], color=c, marker=".", linestyle="--",
                 label=f"{g} answered")
        ax2.plot(xs, [r["service_level"] for r in mine], color=c, marker="o",
                 label=f"{g} SL")
        if len(shared) > 1:  # targets differ: each group's in its colour
            for t in targets[g]:
                ax2.axhline(t, color=c, linestyle=":", linewidth=1.2)
    if len(shared) == 1 and not one:
        ax2.axhline(next(iter(shared)), color="grey", linestyle=":", linewidth=1.2,
                    label=f"target {100 * next(iter(shared)):.0f}%")
    elif len(shared) == 1:
        ax2.plot([], [], color="grey", linestyle=":",
                 label=f"target {100 * next(iter(shared)):.0f}%")
    elif shared:
        ax2.plot([], [], color="grey", linestyle=":", label="target (per group)")
    from matplotlib.ticker import MaxNLocator

    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))  # calls: whole numbers
    ax1.set_ylabel("calls")
    ax1.legend(fontsize="small", ncol=2 if len(groups) > 3 else 1, loc="upper left",
               bbox_to_anchor=(1.01, 1.0))
    ax2.set_ylabel("service level")
    ax2.set_ylim(0, 1.05)
    ax2.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
    ax2.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    short = [label[5:16].replace("T", " ") if len(label) > 16 else label for label in labels]
    if one:
        ax2.set_xlim(-0.5, 0.5)
        ax2.set_xticks([0], short)
    else:
        step = max(1, len(labels) // 12)
        ax2.set_xticks(range(0, len(labels), step), short[::step], rotation=30, ha="right")
    ax1.set_title("Calls per interval")
    ax2.set_title("Service level per interval", fontsize="medium")
    return fig


# ------------------------------------------------------------------ command


@report.command("calls")
@click.option("--since", help="Start: a day (YYYY-MM-DD) or 'YYYY-MM-DD HH:MM', in --tz, "
                              "rounded down to its interval's start [default: today's start].")
@click.option("--until", help="End (excluded): a day (through its end) or a time, in --tz, "
                              "rounded up to an interval's end [default: now].")
@click.option("--tz", help="Time zone of the days, times and intervals "
                           "[default: this machine's].")
@click.option("--interval", default="15m", show_default=True,
              help="15m, 30m, 60m, day or week (weeks start on Monday).")
@click.option("--by", type=click.Choice(["total", "queue", "class", "agent", "ivr"]),
              default="queue", show_default=True)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write CSV here ('-' for standard output) instead of a table.")
@click.option("--png", "png_path", type=click.Path(dir_okay=False),
              help="Also draw the figures to this PNG file (needs matplotlib).")
@click.option("--short-abandon", "short_abandon", type=float, default=None, metavar="S",
              help="Abandons within S seconds are counted apart [default: "
                   "statistics.short_abandon_s of the configuration, else 0: off].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="acd.yaml: service levels per class, statistics settings, the database "
                   "[default: ./acd.yaml if there is one].")
@db_option
def report_calls(since: str | None, until: str | None, tz: str | None, interval: str,
                 by: str, csv_path: str | None, png_path: str | None,
                 short_abandon: float | None, config_path: str | None,
                 db_url: str | None) -> None:
    """Interval report from the call records: offered, answered, abandoned
    (short abandons apart), service level against each class's target, ASA,
    AHT (talk + wrap-up), longest wait, transfers; per agent answered, AHT,
    occupancy and utilisation; calls that ended in the IVR by node and
    reason.  The figures are those of the engine's live statistics
    (definitions: docs/reports.md)."""
    from acd.reports.calls import columns_for, new_statistics, parse_interval, replay, report_rows

    try:
        size = parse_interval(interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    if short_abandon is not None and not 0 <= short_abandon <= 3600:
        raise click.BadParameter(f"{short_abandon:g} must be within 0..3600 seconds",
                                 param_hint="--short-abandon")
    sls, settings, config_db = _service_levels(config_path)
    zone = _zone(tz, settings.tz)
    now = time.time()
    t1 = _when(until, zone, "--until", end=True) if until else now
    if since:
        t0 = _when(since, zone, "--since", end=False)
    else:
        t0 = dt.datetime.combine(dt.datetime.fromtimestamp(min(t1, now), zone).date(),
                                 dt.time(), zone).timestamp()
    if t0 >= t1:
        raise click.BadParameter("the period is empty: --since must come before --until",
                                 param_hint="--since")
    short = short_abandon if short_abandon is not None else settings.short_abandon_s
    stats = new_statistics(sls, size, short_abandon_s=short, tz=zone)
    # whole intervals only, so a row's label is what it counts: --since down
    # to its interval's start, --until up to an interval's end (not "now")
    asked = (t0, t1)
    t0 = stats.start_of(stats.index_of(t0))
    if until:
        k = stats.index_of(t1)
        if stats.start_of(k) < t1:
            t1 = stats.start_of(k + 1)
    if (t0, t1) != asked:
        how = [w for w, moved in (("--since rounded down", t0 != asked[0]),
                                  ("--until rounded up", t1 != asked[1])) if moved]
        err_console.print(
            f"note: the period is widened to whole {interval} intervals: "
            f"{dt.datetime.fromtimestamp(t0, zone):%Y-%m-%d %H:%M} - "
            f"{dt.datetime.fromtimestamp(t1, zone):%Y-%m-%d %H:%M} ({', '.join(how)})",
            soft_wrap=True, highlight=False, markup=False)
    records, changes, seeds, (bad_calls, bad_events) = run_db(
        db_url or config_db, lambda db: _read(db, t0, t1))
    warning = _skipped_warning(bad_calls, bad_events)
    if warning is not None:
        err_console.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)
    replay(stats, records, changes, seeds)
    rows = report_rows(stats, by, zone, now=min(t1, now))  # type: ignore[arg-type]
    cols = columns_for(by)  # type: ignore[arg-type]
    if png_path is not None:
        _png(png_path, by, rows)
    if csv_path is not None:
        write_csv(csv_path, cols, ([_cell(r[c]) for c in cols] for r in rows))
        return
    kind = "agent" if by == "agent" else "ivr" if by == "ivr" else "call"
    span = (f"{dt.datetime.fromtimestamp(t0, zone):%Y-%m-%d %H:%M} - "
            f"{dt.datetime.fromtimestamp(t1, zone):%Y-%m-%d %H:%M}")
    table = Table(*_TABLE[kind], title=f"Calls by {by}, {interval} intervals, {span} "
                                       f"({len(records)} calls; docs/reports.md)")
    for r in rows:
        table.add_row(*(_shown(c, r[c]) for c in _TABLE[kind]),
                      style="bold" if r["interval"] == "all" else None)
    console.print(table)
    if png_path is not None:
        console.print(f"wrote {png_path}")


# ------------------------------------------------------------------ fit

#: the columns of ``acd report fit --csv``: one row per interval, then one
#: per day (``interval`` = ``day``) with the day's scores
FIT_COLUMNS = ("interval", "start", "end", "queue", "required", "scheduled", "available",
               "plan_gap", "adherence_gap", "fit_gap", "offered", "answered", "abandoned",
               "service_level", "target", "fit_score", "covered", "plan_score")
#: what ``acd report fit`` shows for a figure that is not known
MISSING = "—"


def _fit_interval(text: str | None) -> int | None:
    """``--interval``: 15, 30 or 60 minutes (``15m``, ``60m``, ``1h`` too): seconds."""
    if text is None:
        return None
    t = text.strip().lower().replace("1h", "60").removesuffix("m").removesuffix("min")
    if t not in ("15", "30", "60"):
        raise click.BadParameter(f"{text!r} is not 15, 30 or 60 (minutes)",
                                 param_hint="--interval")
    return int(t) * 60


def _fit_day(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a day like 2026-11-23",
                                 param_hint=what) from None


def _fit_plan_files(req_path: str | None, roster_path: str | None,
                    zone: dt.tzinfo) -> tuple[list[Any] | None, Any]:
    """The requirements and the roster (None: not asked for); a file that
    cannot be read exits 2 naming the file, line and column."""
    from acd.loaders.textfile import TextFileError

    reqs: list[Any] | None = None
    roster: Any = None
    if req_path is not None:
        from acd.loaders.planning_csv import load_requirements

        try:
            reqs = load_requirements(req_path, tz=zone)
        except (TextFileError, ValueError) as exc:
            raise FileProblem(str(exc)) from None
    if roster_path is not None:
        from acd.loaders.roster_csv import load_roster

        try:
            roster = load_roster(roster_path, zone)
        except (TextFileError, ValueError) as exc:
            raise FileProblem(str(exc)) from None
    return reqs, roster


def _fit_skills(config_path: str | None, roster: Any, queue: str | None
                ) -> tuple[str | None, dict[str, set[str]], set[str] | None, set[str]]:
    """(the skill ``queue`` needs, agent -> skills known from the
    configuration, the agents counted for ``queue``: those with the skill
    in the configuration or in one of their roster shifts (None: every
    agent), the agents whose skills are known from either)."""
    skills: dict[str, set[str]] = {}
    skill = queue
    cfg = config_option(config_path)
    if cfg is not None:
        for a in cfg.core.agents:
            skills[a.agent_id] = set(a.skills)
        qp = cfg.core.policy.queues.get(queue) if queue is not None else None
        if qp is not None:
            skill = qp.require.skill
    known = set(skills)
    if roster is not None:
        known |= {s.agent for s in roster.shifts if s.skills}
    if skill is None:
        return None, skills, None, known
    agents = {a for a, have in skills.items() if skill in have}
    if roster is not None:
        agents |= {s.agent for s in roster.shifts if any(n == skill for n, _ in s.skills)}
    return skill, skills, agents, known


def _fit_show(v: float | None) -> str:
    return MISSING if v is None else f"{v:.1f}"


def _fit_pct(v: float | None) -> str:
    return MISSING if v is None else f"{100 * v:.1f}%"


def _fit_day_line(d: Any) -> str:
    """One day's scores, in words."""
    if d.score is None:
        fit = "fit score — (no agent required" + (
            ")" if d.intervals else ": no requirements for these intervals)")
    else:
        fit = (f"fit score {d.score:.1f} (Σ|available − required| {d.gap_sum:.1f} over "
               f"Σ required {d.required_sum:.1f}, {d.intervals} intervals)")
    parts = [fit]
    if d.covered is not None:
        parts.append(f"available ≥ required in {100 * d.covered:.0f}% of the intervals "
                     "that need agents")
    if d.plan_score is not None:
        parts.append(f"plan score {d.plan_score:.1f}")
    sl = _fit_pct(d.service_level)
    target = f" (target {100 * d.target:.0f}%)" if d.target is not None else ""
    parts.append(f"SL {sl}{target}, offered {d.offered}, abandoned {d.abandoned}")
    return f"{d.day:%Y-%m-%d}: " + "; ".join(parts)


@report.command("fit")
@click.option("--requirements", "req_path", type=click.Path(dir_okay=False),
              help="Requirements CSV (acd staffing -o): agents required per interval and queue.")
@click.option("--roster", "roster_path", type=click.Path(dir_okay=False),
              help="Roster CSV (acd schedule -o, acd roster import): agents scheduled.")
@click.option("--from", "from_day", metavar="DATE",
              help="First day (YYYY-MM-DD) [default: the requirements' first day, else the "
                   "roster's, else today].")
@click.option("--to", "to_day", metavar="DATE",
              help="Last day, included [default: the requirements' last day, else the "
                   "roster's, else --from].")
@click.option("--day", metavar="DATE", help="One day (instead of --from/--to).")
@click.option("--interval", "interval",
              help="15, 30 or 60 minutes [default: the requirements' interval, else 30].")
@click.option("--queue", help="One queue: its requirements, the agents with its skill "
                              "(scheduled and available) and its calls [default: all].")
@click.option("--tz", help="Time zone of the days and intervals [default: the configuration's "
                           "statistics.tz, else this machine's].")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write CSV here ('-' for standard output) instead of a table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw required/scheduled/available and the service level to this "
                   "PNG file (needs matplotlib).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="acd.yaml: service levels per class, agents' skills, the database "
                   "[default: ./acd.yaml if there is one].")
@db_option
def report_fit(req_path: str | None, roster_path: str | None, from_day: str | None,
               to_day: str | None, day: str | None, interval: str | None, queue: str | None,
               tz: str | None, csv_path: str | None, plot_path: str | None,
               config_path: str | None, db_url: str | None) -> None:
    """The plan against the day, per interval: agents required (the
    requirements), scheduled (the roster) and available (logged in and not
    paused, from the agents' state changes), the gaps between them, and
    the service level reached (the engine's statistics, as in `acd report
    calls`); per day a fit score (docs/planning.md, "Fit: plan against the
    day")."""
    from acd.core.stats import DAY_S
    from acd.planning.fit import (
        available_per_interval,
        fit_days,
        fit_rows,
        grid,
        required_per_interval,
        requirement_step,
    )
    from acd.reports.calls import new_statistics, replay

    if day is not None and (from_day is not None or to_day is not None):
        raise click.UsageError("--day is one day: give it or --from/--to, not both")
    size = _fit_interval(interval)
    sls, settings, config_db = _service_levels(config_path)
    zone = _zone(tz, settings.tz)
    reqs, roster = _fit_plan_files(req_path, roster_path, zone)
    if reqs is not None and queue is not None and not any(r.queue == queue for r in reqs):
        queues = sorted({r.queue for r in reqs})
        raise click.BadParameter(f"{req_path} has no requirement for queue {queue!r} "
                                 f"(its queues: {', '.join(queues) or 'none'})",
                                 param_hint="--queue")
    if size is None:
        step = requirement_step(reqs, 1800) if reqs else 1800
        size = step if step in (900, 1800, 3600) else 1800
    # the days
    now = time.time()
    if day is not None:
        first = last = _fit_day(day, "--day")
    else:
        span: tuple[dt.date, dt.date] | None = None
        if reqs:
            span = (min(r.start for r in reqs).date(), max(r.start for r in reqs).date())
        elif roster is not None and roster.span() is not None:
            a, b = roster.span()
            span = (a.date(), (b - dt.timedelta(microseconds=1)).date())
        if from_day is not None:
            first = _fit_day(from_day, "--from")
        else:
            first = span[0] if span is not None else dt.datetime.fromtimestamp(now, zone).date()
        if to_day is not None:
            last = _fit_day(to_day, "--to")
        else:
            last = span[1] if span is not None and span[1] >= first else first
    if last < first:
        raise click.BadParameter(f"{last} comes before {first}", param_hint="--to")
    start = dt.datetime.combine(first, dt.time())
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    starts = grid(start, end, size)
    t0 = start.replace(tzinfo=zone).timestamp()
    t1 = end.replace(tzinfo=zone).timestamp()

    def local(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)

    # the day: calls and agent states, replayed into the engine's statistics
    records, changes, seeds, (bad_calls, bad_events) = run_db(
        db_url or config_db, lambda db: _read(db, t0, t1), read_only=True)
    warning = _skipped_warning(bad_calls, bad_events)
    if warning is not None:
        err_console.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)
    per: dict[float, Any] = {}
    service: dict[dt.datetime, Any] = {}
    day_service: dict[dt.date, Any] = {}
    for length, into in ((float(size), service), (DAY_S, day_service)):
        stats = new_statistics(sls, length, short_abandon_s=settings.short_abandon_s, tz=zone)
        replay(stats, records, changes, seeds)
        for s in stats.intervals(queue=queue, combine=True):
            per[s.start or 0.0] = s
            key = local(s.start or 0.0)
            into[key if length != DAY_S else key.date()] = s  # type: ignore[index]
    skill, agent_skills, counted, known = _fit_skills(config_path, roster, queue)
    states = [(local(t0), a, st.value, "") for a, (st, _at) in sorted(seeds.items())]
    states += [(local(c.at), c.agent_id, c.new.value, c.reason) for c in changes]
    if counted is not None:
        unknown = sorted({a for _t, a, _s, _r in states} - known)
        if unknown:
            more = ", ..." if len(unknown) > NAMED else ""
            err_console.print(
                f"note: {len(unknown)} agents with no known skills (not in the configuration, "
                f"no skills in the roster) are not counted as available for {queue}: "
                f"{', '.join(unknown[:NAMED])}{more}", soft_wrap=True, highlight=False,
                markup=False)
    if not states:
        err_console.print(
            "note: the database holds no agent state changes for this period (nor an agent "
            "logged in before it): available is 0 throughout, so the fit score is too; is "
            "this the right database and day?", soft_wrap=True, highlight=False, markup=False)
    until = local(min(t1, now))
    available = available_per_interval(states, starts, size, agents=counted, until=until)
    required = (required_per_interval(reqs, starts, size, queue=queue)
                if reqs is not None else None)
    scheduled = (dict(roster.scheduled(start, end, size, skill=skill,
                                       agent_skills=agent_skills))
                 if roster is not None else None)
    rows = fit_rows(starts, size, required=required, scheduled=scheduled,
                    available=available, service=service)
    days = fit_days(rows, day_service)
    what = queue if queue is not None else "all queues"
    if plot_path is not None:
        from acd.plot import PlotUnavailable
        from acd.plot.fit import draw_fit

        try:
            draw_fit(plot_path, rows, days, what=what)
        except PlotUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    if csv_path is not None:
        def iso(t: dt.datetime) -> str:
            return t.isoformat(sep=" ", timespec="minutes")

        group = queue if queue is not None else "all"
        out: list[list[str]] = []
        for r in rows:
            out.append([_cell(v) for v in (
                iso(r.start), iso(r.start), iso(r.end), group, r.required, r.scheduled,
                r.available, r.plan_gap, r.adherence_gap, r.fit_gap, r.offered, r.answered,
                r.abandoned, r.service_level, r.target, None, None, None)])
        for d in days:
            d0 = dt.datetime.combine(d.day, dt.time())
            out.append([_cell(v) for v in (
                "day", iso(d0), iso(d0 + dt.timedelta(days=1)), group,
                d.required_sum if d.intervals else None,
                None, None, None, None, None, d.offered, d.answered, d.abandoned,
                d.service_level, d.target, d.score, d.covered, d.plan_score)])
        write_csv(csv_path, FIT_COLUMNS, out)
        return
    shown_rows = [r for r in rows if not r.idle]
    from rich.table import Column

    table = Table(Column("interval", no_wrap=True), "required", "scheduled", "available",
                  "sched−req", "avail−sched", "avail−req", "SL", "offered", "abandoned",
                  title=f"Fit, {what}, {size // 60}-minute intervals, {first} - {last} "
                        "(docs/planning.md)")
    for r in shown_rows:
        short = r.fit_gap is not None and r.fit_gap < 0
        table.add_row(f"{r.start:%m-%d %H:%M}", _fit_show(r.required), _fit_show(r.scheduled),
                      _fit_show(r.available), _fit_show(r.plan_gap),
                      _fit_show(r.adherence_gap), _fit_show(r.fit_gap),
                      _fit_pct(r.service_level), str(r.offered), str(r.abandoned),
                      style="red" if short else None)
    console.print(table)
    if len(shown_rows) < len(rows):
        console.print(f"{len(rows) - len(shown_rows)} intervals with no agent required, "
                      "scheduled or available and no call are not shown (the CSV has them)",
                      highlight=False)
    for d in days:
        console.print(_fit_day_line(d), highlight=False, markup=False)
    if plot_path is not None:
        console.print(f"wrote {plot_path}", highlight=False, markup=False)
