"""``acd forecast``: expected calls per interval and queue for the days ahead,
from the call records (ours in the database, or a center's CSV export).

    acd forecast --records calls.csv --days 7 --interval 30 -o forecast.csv
    acd forecast --db URL --holidays holidays.txt --backtest 8 --plot forecast.png

Arrivals are counted per interval in the local time of ``--tz`` (our
records: the time the call entered its first queue, else its start; a call
that never reached a queue is not an arrival); the model is in
:mod:`acd.planning.forecast` (daily totals by Holt-Winters exponential
smoothing with a weekly season, times each weekday's intra-day profile;
holidays as their own day type).  It prints the forecast's daily totals and
the rolling-origin backtest (WAPE per interval and per day, the model beside
the same-weekday naive forecast), writes the forecast CSV (``-o``) and a
plot (``--plot``).  docs/planning.md, section Forecast.

Exit codes: 0 done; 2 a bad option, file or history (the message says which);
3 a database error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from acd.cli.common import (
    config_option,
    console,
    db_option,
    err_console,
    run_db,
    shown,
    tz_option_zone,
    write_text_output,
)

if TYPE_CHECKING:
    from acd.planning.forecast import Backtest, Forecast, History

#: the backtest's weeks when --backtest is not given (skipped, with a note,
#: when the history is too short for it)
DEFAULT_BACKTEST_WEEKS = 4
#: the history's days drawn in the plot
PLOT_HISTORY_DAYS = 8 * 7


class ForecastProblem(click.ClickException):
    """Bad input (a file, an option, a history too short): exit 2."""

    exit_code = 2


def _note(text: str) -> None:
    err_console.print(f"note: {text}", soft_wrap=True, highlight=False, markup=False)


def _zone(name: str | None, configured: str | None) -> dt.tzinfo:
    return tz_option_zone(name, configured)


def _config(path: str | None) -> tuple[str | None, str | None]:
    """(statistics.tz, database URL) of --config (else ./acd.yaml if there is one)."""
    cfg = config_option(path)
    return (cfg.statistics.tz, cfg.database_url) if cfg is not None else (None, None)


# ------------------------------------------------------------------ reading


def _from_records(path: str, zone: dt.tzinfo, interval: int) -> History:
    """The arrivals of a center's call-record CSV, counted."""
    from acd.loaders.records_csv import RecordsError, Skipped, iter_records
    from acd.loaders.textfile import TextFileError
    from acd.planning.forecast import ForecastError, count_arrivals

    skipped = Skipped()
    try:
        history, _ = count_arrivals(((r.arrival, r.queue) for r in
                                     iter_records(path, tz=zone, skipped=skipped)), interval)
    except (RecordsError, TextFileError) as exc:
        raise ForecastProblem(str(exc)) from None
    except ForecastError as exc:
        raise ForecastProblem(f"{path}: {exc}") from None
    if skipped.total:
        _note(f"{path}: {skipped.describe()}: not counted as arrivals")
    return history


def _from_db(url: str | None, zone: dt.tzinfo, interval: int, today: dt.date) -> History:
    """Our call records' arrivals (the first queue's entry, else the call's
    start), counted; today's calls left out (the day is not over)."""
    from acd.planning.forecast import ForecastError, count_arrivals

    no_queue = 0
    later = 0

    async def work(db: Any) -> History:
        from sqlalchemy import select

        from acd.adapters.schema import aware, call_records

        c = call_records.c

        def read(conn: Any) -> History:
            def arrivals() -> Iterator[tuple[dt.datetime, str]]:
                nonlocal no_queue, later
                q = select(c.first_queue, c.queue, c.queued_at, c.started_at)
                for first_queue, queue, queued_at, started_at in conn.execute(q):
                    name = first_queue or queue
                    if not name:
                        no_queue += 1
                        continue
                    at = aware(queued_at if queued_at is not None else started_at)
                    local = at.astimezone(zone).replace(tzinfo=None)
                    if local.date() >= today:
                        later += 1
                        continue
                    yield local, name

            history, _ = count_arrivals(arrivals(), interval)  # a stream: counts only kept
            return history

        counted: History = await db.read(read)
        return counted

    try:
        history = run_db(url, work, read_only=True)
    except ForecastError as exc:
        raise ForecastProblem(f"the call records: {exc}") from None
    if no_queue:
        _note(f"{no_queue:,} call(s) never reached a queue: not counted as arrivals")
    if later:
        _note(f"{later:,} call(s) of today ({today}) left out: the day is not over")
    return history


# ------------------------------------------------------------------ output


def _daily_table(fc: Forecast, holidays: dict[dt.date, str]) -> Table:
    daily = fc.daily()
    queues = list(daily)
    table = Table("day", "weekday", *queues, *(["all"] if len(queues) > 1 else []),
                  title=f"Forecast: expected calls per day ({fc.interval_min}-minute intervals "
                        "in the CSV)")
    for i in range(fc.days):
        day = fc.first + dt.timedelta(days=i)
        vals = [daily[q].get(day, 0.0) for q in queues]
        label = f"{day:%a}"
        if day in holidays:
            label += " holiday" + (f" ({holidays[day]})" if holidays[day] else "")
        table.add_row(str(day), label, *(f"{v:,.0f}" for v in vals),
                      *([f"{sum(vals):,.0f}"] if len(queues) > 1 else []))
    return table


def _backtest_table(bt: Backtest) -> Table:
    def pct(x: float) -> str:
        return "-" if x != x else f"{100 * x:.1f} %"

    table = Table("queue", "per interval: model", "naive", "per day: model", "naive",
                  title=f"Backtest: WAPE over {len(bt.origins)} weekly origin(s) "
                        f"{bt.origins[0]} .. {bt.origins[-1]} (model vs same-weekday naive)")
    names = [q for q in bt.interval if q != "all"]
    for q in [*names, *(["all"] if len(names) > 1 else [])]:
        (mi, ni), (md, nd) = bt.interval[q], bt.day[q]
        table.add_row(q, pct(mi), pct(ni), pct(md), pct(nd),
                      style="bold" if q == "all" else None)
    return table


def _plot(path: str, history: History, fc: Forecast, bt: Backtest | None,
          queues: Sequence[str]) -> None:
    from acd.plot import PlotUnavailable, require_matplotlib

    try:
        require_matplotlib("acd forecast --plot")
    except PlotUnavailable as exc:
        raise ForecastProblem(str(exc)) from None
    import matplotlib.pyplot as plt

    panels = 3 if bt is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(11, 3.2 * panels))
    # 1: daily totals, the history's last weeks and the forecast
    ax = axes[0]
    start = max(history.first, history.last - dt.timedelta(days=PLOT_HISTORY_DAYS - 1))
    daily = fc.daily()
    for q in queues:
        per: dict[dt.date, float] = {}
        for t, c in history.counts.get(q, {}).items():
            if t.date() >= start:
                per[t.date()] = per.get(t.date(), 0.0) + c
        days = [start + dt.timedelta(days=i) for i in range((history.last - start).days + 1)]
        line, = ax.plot(days, [per.get(d, 0.0) for d in days], label=f"{q}: history")
        fdays = sorted(daily[q])
        ax.plot(fdays, [daily[q][d] for d in fdays], "--", color=line.get_color(),
                label=f"{q}: forecast")
    ax.set_title("Calls per day", fontsize="medium")
    ax.legend(fontsize="small", ncol=2)
    # 2: per interval, the history's last week and the forecast (queues summed)
    ax = axes[1]
    step = dt.timedelta(minutes=history.interval_min)
    week = max(history.first, history.last - dt.timedelta(days=6))
    t0 = dt.datetime.combine(week, dt.time())
    t1 = dt.datetime.combine(history.last + dt.timedelta(days=1), dt.time())
    n = int((t1 - t0) / step)
    hist_x = [t0 + k * step for k in range(n)]
    hist_y = [sum(history.counts.get(q, {}).get(t, 0.0) for q in queues) for t in hist_x]
    ax.plot(hist_x, hist_y, lw=0.8, label="history (last week)")
    summed: dict[dt.datetime, float] = {}
    for r in fc.rows:
        summed[r.start] = summed.get(r.start, 0.0) + r.calls
    xs = sorted(summed)
    ax.plot(xs, [summed[x] for x in xs], lw=0.8, label="forecast")
    ax.set_title(f"Calls per {history.interval_min}-minute interval"
                 + (" (queues summed)" if len(queues) > 1 else ""), fontsize="medium")
    ax.legend(fontsize="small")
    # 3: the backtest, daily totals: actual, model, naive
    if bt is not None:
        ax = axes[2]
        per_day: dict[dt.date, list[float]] = {}
        for d in bt.days:
            acc = per_day.setdefault(d.day, [0.0, 0.0, 0.0])
            acc[0] += d.actual
            acc[1] += d.model
            acc[2] += d.naive
        xs_d = sorted(per_day)
        ax.plot(xs_d, [per_day[x][0] for x in xs_d], "k-", label="actual")
        ax.plot(xs_d, [per_day[x][1] for x in xs_d], "o-", ms=3, label="model")
        ax.plot(xs_d, [per_day[x][2] for x in xs_d], "x:", ms=4, label="same-weekday naive")
        ax.set_title("Backtest: calls per day, forecasts made at each weekly origin",
                     fontsize="medium")
        ax.legend(fontsize="small")
    for ax in axes:  # every panel keeps its dates (autofmt_xdate would keep the last's only)
        for label in ax.get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("right")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ForecastProblem(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _day(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day like 2026-12-07",
                                 param_hint=what) from None


# ------------------------------------------------------------------ command


@click.command("forecast")
@db_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="acd.yaml: the database and statistics.tz [default: ./acd.yaml if there "
                   "is one].")
@click.option("--records", "records_path", type=click.Path(dir_okay=False),
              help="A center's call-record CSV (docs/planning.md) instead of the database.")
@click.option("--queue", "queues", multiple=True, metavar="Q",
              help="Forecast this queue (repeat for several) [default: every queue].")
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="Days to forecast.")
@click.option("--interval", type=click.Choice(["15", "30", "60"]), default="30",
              show_default=True, help="Interval length in minutes.")
@click.option("--start", help="First day forecast (YYYY-MM-DD) [default: the day after the "
                              "history; a day inside it uses only the days before].")
@click.option("--holidays", "holidays_path", type=click.Path(dir_okay=False),
              help="Holidays: one date (YYYY-MM-DD) per line, an optional name after it.")
@click.option("--backtest", "backtest_weeks", type=click.IntRange(0, 520), default=None,
              help=f"Weeks of rolling-origin backtest; 0: none [default: "
                   f"{DEFAULT_BACKTEST_WEEKS} when the history is long enough].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw history, forecast and backtest to this PNG file (needs matplotlib).")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the forecast CSV here ('-': standard output).")
@click.option("--tz", help="Time zone of the intervals [default: statistics.tz of the "
                           "configuration, else this machine's].")
def forecast_command(db_url: str | None, config_path: str | None, records_path: str | None,
                     queues: tuple[str, ...], days: int, interval: str, start: str | None,
                     holidays_path: str | None, backtest_weeks: int | None,
                     plot_path: str | None, output: str | None, tz: str | None) -> None:
    """Forecast calls per interval and queue for the days ahead from the call
    records, with weekly and daily seasonality and holidays, and backtest it
    against the same-weekday naive forecast (WAPE per interval and per day)."""
    from acd.loaders.planning_csv import PlanningFileError, load_holidays, write_forecast
    from acd.loaders.textfile import TextFileError
    from acd.planning.forecast import (
        MIN_DAYS,
        MODEL_DAYS,
        ForecastError,
        backtest,
        forecast,
    )

    if records_path is not None and (db_url is not None or config_path is not None):
        raise click.UsageError("give --records, or --db/--config: not both")
    first_day = _day(start, "--start")
    holidays: dict[dt.date, str] = {}
    if holidays_path is not None:
        try:
            holidays = load_holidays(holidays_path)
        except (PlanningFileError, TextFileError) as exc:
            raise ForecastProblem(str(exc)) from None
    size = int(interval)
    if records_path is not None:
        zone = _zone(tz, None)
        history = _from_records(records_path, zone, size)
    else:
        configured_tz, config_db = _config(config_path)
        zone = _zone(tz, configured_tz)
        today = dt.datetime.now(zone).date()
        history = _from_db(db_url or config_db, zone, size, today)
    wanted = list(queues) or None
    try:
        fc = forecast(history, start=first_day, days=days, holidays=holidays, queues=wanted)
    except ForecastError as exc:
        raise ForecastProblem(str(exc)) from None
    source = records_path or "the call records"
    show = err_console if output == "-" else console  # standard output: the CSV alone
    show.print(f"history: {history.first} .. {history.last} ({history.days} days, "
                  f"{sum(sum(p.values()) for p in history.counts.values()):,.0f} calls, "
                  f"{len(history.counts)} queue(s)) from {shown(source)}", highlight=False)
    for note in fc.notes:
        _note(note)
    show.print(_daily_table(fc, holidays))
    show.print(", ".join(f"{q}: {m}" for q, m in fc.methods.items()), highlight=False)
    # backtest on the history the forecast used
    used = history.until(fc.first) if fc.first <= history.last else history
    weeks = backtest_weeks
    bt = None
    if weeks is None:
        weeks = DEFAULT_BACKTEST_WEEKS
        if used.days < 7 * weeks + MODEL_DAYS:
            _note(f"no backtest: {used.days} days of history, fewer than the "
                  f"{7 * weeks + MODEL_DAYS} a {weeks}-week backtest of the model needs "
                  "(--backtest WEEKS asks for one)")
            weeks = 0
    if weeks:
        try:
            bt = backtest(used, weeks, holidays=holidays, queues=list(fc.methods))
        except ForecastError as exc:
            raise ForecastProblem(f"--backtest {weeks}: {exc}") from None
        for note in bt.notes:
            _note(f"backtest: {note}")
        if used.days < 7 * weeks + MODEL_DAYS:
            _note(f"the first backtest origins have fewer than {MODEL_DAYS} days of history "
                  "(seasonal naive there); the backtest needs at least "
                  f"{7 * weeks + MIN_DAYS} days")
        show.print(_backtest_table(bt))
    if output is not None:
        if write_text_output(output, write_forecast(fc.rows)):
            console.print(f"wrote {shown(output)} ({len(fc.rows):,} rows)", highlight=False)
    if plot_path is not None:
        _plot(plot_path, used, fc, bt, list(fc.methods))
        show.print(f"wrote {shown(plot_path)}", highlight=False)
