"""``acd sms ...`` and ``acd report sms``: the SMS outbox, opt-outs and outcome
(the ``report`` group lives in :mod:`acd.cli.report`).

These work on the database directly (``--db``, default: ``database`` of
./acd.yaml), so they work with or without a running engine.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from rich.table import Table

from acd.cli.common import console, db_option, default_country, run_db, shown, write_csv
from acd.cli.report import report

_R = TypeVar("_R")


def _run(db_url: str | None, work: Callable[[Any], Coroutine[Any, Any, _R]]) -> _R:
    """Open the database, run ``work`` with the SMS store, close it (exit 3 on a
    database failure, as every database command)."""
    from acd.adapters.sms_store import SmsStore

    country = default_country()
    return run_db(db_url, lambda db: work(SmsStore(db, country)))


def _numbers(values: tuple[str, ...]) -> list[str]:
    """The numbers in their one form (``country_code`` of ./acd.yaml), as the
    engine keys them: ``138 0013 8000`` and ``008613800138000`` are
    ``+8613800138000``."""
    from acd.core.numbers import is_number, normalize

    country = default_country()
    for v in values:
        if not is_number(v):
            raise click.BadParameter(f"{v!r} is not a phone number", param_hint="NUMBER")
    return [normalize(v, country) for v in values]


@click.group("sms")
def sms() -> None:
    """SMS diversion: the outbox and the opt-out list."""


@sms.group("optout")
def optout() -> None:
    """Numbers that get no SMS (callers who replied STOP/TD are added by themselves)."""


@optout.command("add")
@click.argument("numbers", nargs=-1, required=True)
@db_option
def optout_add(numbers: tuple[str, ...], db_url: str | None) -> None:
    """Stop sending SMS to NUMBERS (anything still queued for them is suppressed)."""
    clean = _numbers(numbers)

    async def work(store: Any) -> list[bool]:
        return [await store.opt_out(n, "cli", time.time()) for n in clean]

    for n, added in zip(clean, _run(db_url, work), strict=True):
        console.print(f"{shown(n)}: " + ("opted out" if added else "already opted out"))


@optout.command("remove")
@click.argument("numbers", nargs=-1, required=True)
@db_option
def optout_remove(numbers: tuple[str, ...], db_url: str | None) -> None:
    """Send SMS to NUMBERS again."""
    clean = _numbers(numbers)

    async def work(store: Any) -> list[bool]:
        return [await store.opt_in(n) for n in clean]

    for n, removed in zip(clean, _run(db_url, work), strict=True):
        console.print(f"{shown(n)}: " + ("removed" if removed else "was not on the list"))


@optout.command("list")
@db_option
def optout_list(db_url: str | None) -> None:
    """The opt-out list."""
    rows = _run(db_url, lambda store: store.opted_out())
    table = Table("number", "since", "how", title=f"{len(rows)} opted out")
    for r in rows:
        table.add_row(shown(r["number"]), str(r["at"])[:19], shown(r["source"]))
    console.print(table)


@sms.command("outbox")
@click.option("--state", type=click.Choice(["queued", "sent", "delivered", "failed",
                                            "suppressed"]), help="Only this state.")
@click.option("--limit", default=50, show_default=True)
@db_option
def outbox(state: str | None, limit: int, db_url: str | None) -> None:
    """The newest SMS in the outbox, with their state and reason."""
    rows = _run(db_url, lambda store: store.rows(state, limit))
    table = Table("id", "call", "number", "rule", "state", "reason", "tries", "created",
                  title=f"SMS outbox ({len(rows)})")
    for r in rows:
        table.add_row(str(r.id), shown(r.call_id), shown(r.number), shown(r.rule),
                      shown(r.state), shown(r.reason),
                      str(r.attempts), r.created_at.isoformat(timespec="minutes"))
    console.print(table)


# ------------------------------------------------------------------ report


def _day(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-23",
                                 param_hint=what) from None


@report.command("sms")
@click.option("--since", help="First day (YYYY-MM-DD), in --tz.")
@click.option("--until", help="Last day (YYYY-MM-DD), in --tz.")
@click.option("--tz", default="Asia/Shanghai", show_default=True, help="Time zone of days.")
@click.option("--by", type=click.Choice(["rule", "day", "both"]), default="both",
              show_default=True)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write CSV here ('-' for standard output) instead of a table.")
@db_option
def report_sms(since: str | None, until: str | None, tz: str, by: str, csv_path: str | None,
               db_url: str | None) -> None:
    """SMS diversion outcome by rule and day: SMS sent and delivered, the
    diversion rate (link opened or app login within 7 days), the return rate
    (the number called again within 24 h / 7 days) and retention (diverted
    and did not call again within 7 days); rates are over SMS sent."""
    from acd.adapters.sms_store import ReportRow
    from acd.ivr.hours import HoursError, zone

    try:
        tzinfo = zone(tz)
    except HoursError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None
    d0, d1 = _day(since, "--since"), _day(until, "--until")
    t0 = dt.datetime.combine(d0, dt.time(), tzinfo) if d0 else None
    t1 = dt.datetime.combine(d1 + dt.timedelta(days=1), dt.time(), tzinfo) if d1 else None
    rows = _run(db_url, lambda store: store.report(t0, t1, tz))
    groups: dict[tuple[str, str], ReportRow] = {}
    total = ReportRow("total", "all")
    for r in rows:
        key = (r.rule if by != "day" else "all", r.day if by != "rule" else "all")
        groups.setdefault(key, ReportRow(*key)).add(r)
        total.add(r)
    out = [*sorted(groups.values(), key=lambda r: (r.day, r.rule)), total]
    header = ["rule", "day", "wanted", "suppressed", "queued", "sent", "delivered", "failed",
              "diverted", "diversion", "return_24h", "return_7d", "retention"]

    def counts(r: ReportRow) -> list[Any]:
        return [r.rule, r.day, r.candidates, r.suppressed, r.queued, r.sent, r.delivered,
                r.failed, r.diverted]

    def rates(r: ReportRow) -> list[float | None]:  # over sent
        return [r.rate(n) for n in (r.diverted, r.returned_24h, r.returned_7d, r.retained)]

    if csv_path is not None:
        write_csv(csv_path, header, ([*counts(r), *("" if x is None else f"{x:.4f}"
                                                    for x in rates(r))] for r in out))
        return
    table = Table("rule", "day", "wanted", "suppr.", "sent", "deliv.", "failed", "diversion",
                  "return 24h", "return 7d", "retained", title="SMS diversion (rates over sent)")
    for r in out:
        c = counts(r)
        table.add_row(*(shown(x) for x in (*c[:4], *c[5:8])),
                      *("-" if x is None else f"{100 * x:.1f}%" for x in rates(r)),
                      style="bold" if r is total else None)
    console.print(table)
