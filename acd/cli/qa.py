"""``acd qa ...``: quality review of calls (docs/quality.md).

    acd qa sample --week 2026-W48|this|last --rate 5% --reviewers r1,r2 [--seed N] [--dry-run]
    acd qa sample --week 2026-W48 --replay
    acd qa list [--reviewer R] [--week W]
    acd qa score CALL_ID [--form F.yaml] --reviewer R --answer item=value ... [--comment T]
    acd qa report [--by agent|team|queue|week|agent-week|team-week|item] [--csv PATH]
    acd qa export --agent A --out DIR [--html] [--mail ADDRESS --smtp HOST[:PORT]]

They work on the database directly, with or without a running engine.  The
configuration (``--config``, else ./acd.yaml if there is one) gives the
database (``--db`` instead), the time zone (``statistics.tz``, else this
machine's; ``--tz`` instead) and the scoring form (``qa.form``; ``--form``
instead), as for the engine and ``acd report calls``.  Exit codes: 1 a
refusal (bad answers, a week already drawn ...), 2 a file that cannot be
read or a wrong form (``file:line:col``), 3 the database.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from acd.cli.common import console, db_option, err_console, run_db, shown, write_csv

_R = TypeVar("_R")

CONFIG_FILE = "acd.yaml"
#: the agent's copy by mail: the SMTP server, the sender, a login
SMTP_ENV, FROM_ENV = "ACD_SMTP", "ACD_MAIL_FROM"
USER_ENV, PASSWORD_ENV = "ACD_SMTP_USER", "ACD_SMTP_PASSWORD"
MAIL_TIMEOUT_S = 10.0
#: the longest rate kept (its exact fraction, like 1/20, in ``qa_draws.rate``)
RATE_MAX_CHARS = 32
#: the differences `acd qa sample --replay` shows per draw
REPLAY_SHOWN = 20


class _Refused(click.ClickException):
    exit_code = 1


class _BadFile(click.ClickException):
    exit_code = 2


def _run(db_url: str | None, work: Callable[[Any], Coroutine[Any, Any, _R]]) -> _R:
    """Run ``work`` with the QA store (its tables are made by ``create``, as
    every table of :mod:`acd.adapters.schema`)."""
    from acd.adapters.qa_store import QaStore

    return run_db(db_url, lambda db: work(QaStore(db)))


def _plural(n: int, word: str) -> str:
    """``1 call``, ``2 calls``, ``0 calls``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _zone(tz: str) -> dt.tzinfo:
    from acd.ivr.hours import HoursError, zone

    try:
        return zone(tz)
    except HoursError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None


def zone_name(tz: dt.tzinfo) -> str | None:
    """The name of a zone that :func:`acd.ivr.hours.zone` reads back
    (``Asia/Shanghai``, ``UTC``); None for an unnamed fixed offset."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    return "UTC" if tz.utcoffset(None) == dt.timedelta(0) else None


@dataclass(frozen=True, slots=True)
class _Setup:
    """What the configuration gives the commands (options override it)."""

    #: the database (None: ``--db`` not given and no configuration: the default)
    db_url: str | None
    zone: dt.tzinfo
    #: the scoring form (``qa.form``, else qa_form.yaml beside it, else the example)
    form: Path


def _setup(config_path: str | None, tz: str | None, db_url: str | None) -> _Setup:
    """``--config`` (else ./acd.yaml if there is one), with ``--tz`` and
    ``--db`` over its ``statistics.tz`` and ``database``; without either the
    machine's zone, the default database and ``qa_form.yaml`` here, else the
    example form."""
    from acd.ivr.parse import FlowError
    from acd.runtime.settings import ConfigError, default_qa_form, load_config, local_zone

    path = config_path
    if path is None and Path(CONFIG_FILE).is_file():
        path = CONFIG_FILE
    if path is None:
        return _Setup(db_url, _zone(tz) if tz is not None else local_zone(),
                      default_qa_form(Path(".")))
    try:
        cfg = load_config(path)
    except (ConfigError, FlowError) as exc:
        raise _BadFile(str(exc)) from None
    return _Setup(db_url or cfg.database_url, _zone(tz) if tz is not None else cfg.qa.zone,
                  cfg.qa.form)


def _zone_label(tz: dt.tzinfo) -> str:
    return zone_name(tz) or str(tz)


def _week(text: str, tz: dt.tzinfo) -> str:
    """``--week``: ``this``, ``last`` (in ``tz``) or ``2026-W48``."""
    from acd.qa.sample import SampleError, resolve_week

    try:
        return resolve_week(text, time.time(), tz)
    except SampleError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from None


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--config acd.yaml`` (keyword ``config_path``)."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="acd.yaml: the database, the time zone (statistics.tz) and the "
                             "scoring form (qa.form) [default: ./acd.yaml if there is "
                             "one].")(f)


def tz_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--tz", default=None, help=f"Time zone of {what} [default: "
                        "statistics.tz of the configuration, else this machine's].")


def _day(value: str | None, what: str, tz: dt.tzinfo, end: bool = False) -> dt.datetime | None:
    if value is None:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-23",
                                 param_hint=what) from None
    return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), tz)


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}s"


def _local(ts: dt.datetime | None, tz: dt.tzinfo) -> str:
    return "-" if ts is None else ts.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _record_table(rows: list[dict[str, Any]], tz: dt.tzinfo, title: str) -> Table:
    """Drawn calls beside their records: times, queue, wait, talk, agent,
    reviewer, status, recording."""
    table = Table(title=title)
    table.add_column("call", overflow="fold")  # whole: `acd qa score` takes it
    for name in ("week", "started", "ended", "queue", "wait", "talk", "agent", "reviewer",
                 "status"):
        table.add_column(name)
    table.add_column("recording", overflow="fold")  # the whole path, over lines if need be
    for r in rows:
        rec = r["record"] or {}
        table.add_row(shown(r["call_id"]), shown(r["week"]), _local(rec.get("started_at"), tz),
                      _local(rec.get("ended_at"), tz), shown(r["queue"] or "-"),
                      _secs(rec.get("wait_s")), _secs(rec.get("talk_s")), shown(r["agent_id"]),
                      shown(r["reviewer"]), shown(r["status"]),
                      shown(rec.get("recording") or "-"))
    return table


def _draws_table(draws: list[dict[str, Any]], rows: list[dict[str, Any]],
                 tz: dt.tzinfo) -> Table:
    """The draws of the calls listed, with their options (calls drawn before
    the options were kept: their seed only)."""
    table = Table("draw", "week", "drawn", "seed", "options", "calls", title="draws")
    table.columns[4].overflow = "fold"
    for d in draws:
        table.add_row(f"#{d['id']}", shown(d["week"]), _local(d["drawn_at"], tz),
                      str(d["seed"]), shown(d["options"].describe()
                                            + (" (--again)" if d["again"] else "")),
                      str(d["calls"]))
    older: dict[tuple[str, int], int] = {}
    for r in rows:
        if r["draw_id"] is None:
            key = (r["week"], r["seed"])
            older[key] = older.get(key, 0) + 1
    for (week, seed), n in sorted(older.items()):
        table.add_row("-", shown(week), "-", str(seed), "not kept (drawn by an older version)",
                      f"{n} listed")
    return table


@click.group("qa")
def qa() -> None:
    """Quality review: the week's sample of calls, scores on a form, reports."""


# ------------------------------------------------------------------ sample


@qa.command("sample")
@click.option("--week", required=True, help="ISO week, like 2026-W48, or this or last "
              "(in --tz).")
@click.option("--rate", help="Share of the week's answered calls, like 5% (or 0.05).")
@click.option("--per-agent", type=click.IntRange(1, 1000), help="Calls per agent instead.")
@click.option("--reviewers", help="Reviewers, comma separated: r1,r2 (the order counts).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1),
              help="Seed of the draw (default: a random one, kept with the sample).")
@click.option("--min-one/--no-min-one", default=False, show_default=True,
              help="With --rate: at least one call of every agent with calls.")
@click.option("--again", is_flag=True, help="Draw more for a week already drawn "
              "(from the calls not drawn yet).")
@tz_option("the week (kept with the draw)")
@click.option("--dry-run", is_flag=True, help="Show the sample; keep nothing.")
@click.option("--replay", is_flag=True, help="Draw the week's kept draws again with their "
              "kept options and seed, and compare (keeps nothing).")
@config_option
@db_option
def sample(week: str, rate: str | None, per_agent: int | None, reviewers: str | None,
           seed: int | None, min_one: bool, again: bool, tz: str | None, dry_run: bool,
           replay: bool, config_path: str | None, db_url: str | None) -> None:
    """Draw the week's answered calls to review, stratified by agent and queue
    (largest remainder allocation), and give them to the reviewers (balanced;
    nobody reviews their own calls)."""
    from acd.qa.sample import DrawOptions, SampleError, draw, parse_rate, week_bounds

    if replay:
        if rate is not None or per_agent is not None or reviewers is not None \
                or seed is not None or min_one or again or dry_run:
            raise click.UsageError("--replay takes the kept options: give only --week "
                                   "(and --db, --config, --tz for this or last)")
        setup = _setup(config_path, tz, db_url)
        _replay(_week(week, setup.zone), setup.db_url)
        return
    setup = _setup(config_path, tz, db_url)
    tzinfo, db_url = setup.zone, setup.db_url
    tz_kept = zone_name(tzinfo)
    if tz_kept is None:
        raise click.UsageError("this machine's time zone has no name to keep with the draw "
                               "(a fixed offset): give --tz Asia/Shanghai, or statistics.tz "
                               "in acd.yaml")
    if (rate is None) == (per_agent is None):
        raise click.UsageError("give one of --rate and --per-agent")
    if reviewers is None:
        raise click.UsageError("give the reviewers: --reviewers r1,r2")
    names = [r.strip() for r in reviewers.split(",") if r.strip()]
    try:
        start, end = week_bounds(_week(week, tzinfo), tzinfo)
        fraction = parse_rate(rate) if rate is not None else None
    except SampleError as exc:
        raise click.BadParameter(str(exc)) from None
    if fraction is not None and len(str(fraction)) > RATE_MAX_CHARS:
        raise click.BadParameter(f"{rate!r}: too many digits to keep (a rate like 5% or 2.5%)",
                                 param_hint="--rate")
    options = DrawOptions(tuple(names), rate=fraction, per_agent=per_agent,
                          at_least_one=min_one, tz=tz_kept)
    week_name = f"{start.isocalendar()[0]:04d}-W{start.isocalendar()[1]:02d}"
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)

    async def work(store: Any) -> tuple[Any, int, list[dict[str, Any]]]:
        already = await store.week_count(week_name)
        if already and not again and not dry_run:
            raise _Refused(f"week {week_name} was drawn already ({already} calls: "
                           f"acd qa list --week {week_name}); --again draws more")
        calls = await store.answered_calls(start, end)
        before = await store.drawn_among([c.call_id for c in calls])
        try:
            s = draw(calls, week_name, seed=seed, reviewers=names, rate=fraction,
                     per_agent=per_agent, at_least_one=min_one, drawn_before=before)
        except SampleError as exc:
            raise _Refused(str(exc)) from None
        kept = 0 if dry_run else await store.save_sample(s, time.time(), options, again=again)
        rows = await store.assignments(week=week_name) if not dry_run else []
        return s, kept, rows

    from acd.adapters.qa_store import QaStoreError

    try:
        s, kept, rows = _run(db_url, work)
    except QaStoreError as exc:
        raise _Refused(str(exc)) from None
    alloc = Table("agent", "queue", "calls", "quota", "drawn",
                  title=f"{week_name}: {s.population} answered calls not drawn before, "
                        f"seed {s.seed}, {shown(options.describe())}")
    for a in s.allocations:
        alloc.add_row(shown(a.agent_id), shown(a.queue or "-"), str(a.volume),
                      f"{float(a.quota):.2f}", str(a.count))
    console.print(alloc)
    if dry_run:
        picks = Table("call", "started", "agent", "queue", "reviewer", title="would draw")
        for p in s.picks:
            picks.add_row(shown(p.call.call_id), _local(dt.datetime.fromtimestamp(
                p.call.started_at, dt.UTC), tzinfo), shown(p.call.agent_id),
                shown(p.call.queue or "-"), shown(p.reviewer))
        console.print(picks)
        console.print(f"dry run: {_plural(len(s.picks), 'call')} would be drawn; "
                      "nothing kept")
        return
    drawn = {p.call.call_id for p in s.picks}
    console.print(_record_table([r for r in rows if r["call_id"] in drawn], tzinfo,
                                f"drawn: {_plural(kept, 'call')}"))
    console.print("per reviewer: " + ", ".join(f"{shown(r)} {n}" for r, n in s.loads.items()))


def _replay(week: str, db_url: str | None) -> None:
    """``--replay``: each kept draw of the week drawn again from the
    database as it is now (its options, seed and time zone; the calls drawn
    before it left out), compared with the calls it kept.  Exit 1 when one
    differs or none can be drawn again."""
    from acd.ivr.hours import HoursError, zone
    from acd.qa.sample import SampleError, differences, draw, week_bounds

    name = week

    async def work(store: Any) -> tuple[list[tuple[dict[str, Any], int | None, list[str]]],
                                        dict[int, int]]:
        results: list[tuple[dict[str, Any], int | None, list[str]]] = []
        for d in await store.draws(week=name):
            o = d["options"]
            try:
                start, end = week_bounds(name, zone(o.tz))
                calls = await store.answered_calls(start, end)
                before = await store.drawn_before_draw(d["id"], [c.call_id for c in calls])
                again = draw(calls, name, seed=d["seed"], reviewers=o.reviewers, rate=o.rate,
                             per_agent=o.per_agent, at_least_one=o.at_least_one,
                             drawn_before=before)
            except (SampleError, HoursError) as exc:
                results.append((d, None, [f"cannot be drawn again: {exc}"]))
                continue
            results.append((d, again.population,
                            differences(again, await store.kept_picks(d["id"]))))
        return results, await store.older_draws(name)

    results, older = _run(db_url, work)
    if not results and not older:
        raise _Refused(f"week {name} was not drawn (acd qa list)")
    differ = 0
    for d, population, diff in results:
        console.print(f"draw #{d['id']} of {name}, drawn {_local(d['drawn_at'], dt.UTC)} UTC, "
                      f"seed {d['seed']}, {shown(d['options'].describe())}: "
                      f"{_plural(d['calls'], 'call')} kept")
        if population is not None and population != d["population"]:
            console.print(f"  the answered calls not drawn before were {d['population']}, "
                          f"are {population} now: records written or deleted since the draw")
        if diff:
            differ += 1
            for line in diff[:REPLAY_SHOWN]:
                console.print(f"  {shown(line)}")
            if len(diff) > REPLAY_SHOWN:
                console.print(f"  ... and {len(diff) - REPLAY_SHOWN} more")
            console.print("  [bold]differs[/bold]")
        else:
            console.print("  drawn again: the same calls, to the same reviewers")
    for seed, n in older.items():
        console.print(f"{_plural(n, 'call')} of {name} drawn with seed {seed} by an older "
                      "version: "
                      "their options were not kept, they cannot be drawn again")
    if differ:
        raise _Refused(f"{differ} of {len(results)} draws of {name} differ when drawn again")
    if not results:
        raise _Refused(f"no draw of {name} can be drawn again (options not kept)")


# -------------------------------------------------------------------- list


@qa.command("list")
@click.option("--reviewer", help="Only this reviewer's calls.")
@click.option("--week", help="Only this week (2026-W48, this or last).")
@click.option("--agent", help="Only this agent's calls.")
@click.option("--status", type=click.Choice(["assigned", "scored"]), help="Only this status.")
@tz_option("the times shown and of --week this|last")
@config_option
@db_option
def list_(reviewer: str | None, week: str | None, agent: str | None, status: str | None,
          tz: str | None, config_path: str | None, db_url: str | None) -> None:
    """The drawn calls, beside their records and recordings."""
    setup = _setup(config_path, tz, db_url)
    tzinfo, db_url = setup.zone, setup.db_url
    if week is not None:
        week = _week(week, tzinfo)

    async def work(store: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows = await store.assignments(reviewer=reviewer, week=week, agent=agent,
                                       status=status)
        ids = sorted({r["draw_id"] for r in rows if r["draw_id"] is not None})
        return rows, await store.draws(ids=ids) if ids else []

    rows, draws = _run(db_url, work)
    console.print(_record_table(rows, tzinfo, f"{_plural(len(rows), 'call')} to review "
                                f"(times in {_zone_label(tzinfo)})"))
    if rows:
        console.print(_draws_table(draws, rows, tzinfo))


# ------------------------------------------------------------------- score


def _form(path: str) -> Any:
    from acd.qa.forms import FormError, load_form

    try:
        return load_form(path)
    except FormError as exc:
        raise _BadFile(str(exc)) from None


@qa.command("score")
@click.argument("call_id")
@click.option("--form", "form_path", help="The scoring form (YAML) [default: qa.form of "
              "the configuration, else qa_form.yaml beside it, else the example form].")
@click.option("--reviewer", required=True, help="Who scored the call.")
@click.option("--answer", "answers", multiple=True, metavar="ITEM=VALUE",
              help="An item's answer: yes, no, na or 0..max (repeat for each item).")
@click.option("--answers", "answers_file", help="The answers in a YAML file (item: value).")
@click.option("--comment", default="", help="The reviewer's comment for the agent.")
@tz_option("the times shown")
@config_option
@db_option
def score(call_id: str, form_path: str | None, reviewer: str, answers: tuple[str, ...],
          answers_file: str | None, comment: str, tz: str | None, config_path: str | None,
          db_url: str | None) -> None:
    """Score a drawn call on a form; the record, the recording and the
    result are shown."""
    from acd.adapters.qa_store import QaStoreError
    from acd.qa.forms import FormError, load_answers
    from acd.qa.scoring import COMMENT_MAX, AnswerError
    from acd.qa.scoring import score as compute

    setup = _setup(config_path, tz, db_url)
    tzinfo, db_url = setup.zone, setup.db_url
    form = _form(form_path if form_path is not None else str(setup.form))
    given: dict[str, str] = {}
    if answers_file is not None:
        try:
            given.update(load_answers(answers_file))
        except FormError as exc:
            raise _BadFile(str(exc)) from None
    for a in answers:
        item, sep, value = a.partition("=")
        if not sep or not item.strip():
            raise click.BadParameter(f"{a!r}: expected ITEM=VALUE", param_hint="--answer")
        given[item.strip()] = value.strip()
    if len(comment) > COMMENT_MAX:
        raise click.BadParameter(f"at most {COMMENT_MAX} characters", param_hint="--comment")
    try:
        result = compute(form, given)
    except AnswerError as exc:
        raise _Refused("the answers do not fit form "
                       f"{form.name!r}:\n  " + "\n  ".join(exc.problems)) from None

    async def work(store: Any) -> dict[str, Any] | None:
        found = await store.review(call_id)
        if found is None:
            return None
        if found["agent_id"] == reviewer:
            raise _Refused(f"call {call_id} was taken by {reviewer}: nobody scores their "
                           "own calls")
        await store.save_score(call_id, result, reviewer=reviewer, scored_at=time.time(),
                               comment=comment)
        again: dict[str, Any] | None = await store.review(call_id)
        return again

    try:
        found = _run(db_url, work)
    except QaStoreError as exc:
        raise _Refused(str(exc)) from None
    if found is None:
        raise _Refused(f"call {call_id} is not in any sample (`acd qa sample` draws the "
                       "calls to review)")
    console.print(_record_table([found], tzinfo, "the call"))
    if found["reviewer"] != reviewer:
        err_console.print(f"note: the call was assigned to {shown(found['reviewer'])}")
    table = Table("item", "answer", "passed", title=f"form {shown(form.name)} "
                  f"v{shown(form.version)}")
    for r in result.items:
        table.add_row(shown(r.item), shown(r.answer),
                      "-" if r.passed is None else ("yes" if r.passed else "no"))
    console.print(table)
    console.print(f"score {result.score:.1f}" + (" (a fatal item failed)" if result.fatal
                                                  else "")
                  + ("" if result.passed is None else
                     (", passed" if result.passed else ", not passed")))


# ------------------------------------------------------------------ report


def _teams(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    from acd.loaders.textfile import CSV_MAX_BYTES, TextFileError, read_text_file
    from acd.qa.report import TeamsError, parse_teams

    try:
        return parse_teams(read_text_file(path, "teams CSV", CSV_MAX_BYTES), path)
    except (TextFileError, TeamsError) as exc:
        raise _BadFile(str(exc)) from None


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


@qa.command("report")
@click.option("--by", type=click.Choice(["agent", "team", "queue", "week", "agent-week",
                                         "team-week", "item"]),
              default="agent", show_default=True)
@click.option("--since", help="First day of calls (YYYY-MM-DD), in --tz.")
@click.option("--until", help="Last day of calls (YYYY-MM-DD), in --tz.")
@click.option("--agent", help="Only this agent's calls.")
@click.option("--teams", "teams_path", help="CSV agent_id,team (default: the agents' groups "
              "in the agents table).")
@click.option("--form", "form_path", help="A form: its items' order and texts (--by item).")
@tz_option("the days")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write CSV here ('-' for standard output) instead of a table.")
@config_option
@db_option
def report(by: str, since: str | None, until: str | None, agent: str | None,
           teams_path: str | None, form_path: str | None, tz: str | None, csv_path: str | None,
           config_path: str | None, db_url: str | None) -> None:
    """Scores by agent, team, queue, week or item: calls scored, mean score,
    fatal rate, pass rate, and each item's pass rate (N/A left out)."""
    from acd.qa.report import by_group, by_item

    setup = _setup(config_path, tz, db_url)
    tzinfo, db_url = setup.zone, setup.db_url
    t0, t1 = _day(since, "--since", tzinfo), _day(until, "--until", tzinfo, end=True)
    teams = _teams(teams_path)
    form = _form(form_path) if form_path else None
    calls = _run(db_url, lambda store: store.scored(since=t0, until=t1, agent=agent,
                                                    teams=teams))
    if by == "item":
        order = [i.id for i in form.items] if form else []
        texts = {i.id: i.text for i in form.items} if form else {}
        irows = by_item(calls, order)
        header = ["item", "answered", "na", "passed", "pass_rate", "mean_ratio"]
        data = [[i.item, i.answered, i.na, i.passed, _pct(i.pass_rate), _pct(i.mean_ratio)]
                for i in irows]
        if csv_path is not None:
            write_csv(csv_path, header, data)
            return
        table = Table("item", "answered", "N/A", "passed", "pass rate", "mean",
                      title=f"items over {_plural(len(calls), 'scored call')}")
        for i in irows:
            label = f"{i.item} {texts[i.item]}" if i.item in texts else i.item
            table.add_row(shown(label), str(i.answered), str(i.na), str(i.passed),
                          "-" if i.pass_rate is None else f"{100 * i.pass_rate:.1f}%",
                          "-" if i.mean_ratio is None else f"{100 * i.mean_ratio:.1f}%")
        console.print(table)
        return
    rows = by_group(calls, by)
    items = sorted({i for c in calls for i in c.answers}) if form is None \
        else [i.id for i in form.items]
    keys = by.split("-")
    header = [*keys, "count", "mean_score", "fatal_rate", "pass_rate",
              *(f"pass_{i}" for i in items)]
    data = [[*(r.key if len(r.key) == len(keys) else (*r.key, *[""] * (len(keys) - 1))),
             r.count, "" if r.mean is None else f"{r.mean:.2f}", _pct(r.fatal_rate),
             _pct(r.pass_rate), *(_pct(r.item_rate(i)) for i in items)] for r in rows]
    if csv_path is not None:
        write_csv(csv_path, header, data)
        return
    table = Table(*keys, "calls", "mean", "fatal", "passed", title=f"quality by {by}")
    for r, d in zip(rows, data, strict=True):
        table.add_row(*(shown(x) for x in d[:len(keys)]), str(r.count),
                      "-" if r.mean is None else f"{r.mean:.1f}",
                      "-" if r.fatal_rate is None else f"{100 * r.fatal_rate:.1f}%",
                      "-" if r.pass_rate is None else f"{100 * r.pass_rate:.1f}%",
                      style="bold" if r.key == ("all",) else None)
    console.print(table)


# ------------------------------------------------------------------ export


@qa.command("export")
@click.option("--agent", required=True, help="The agent whose copy is written.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write <agent>.md (or .html) and <agent>.csv in.")
@click.option("--html", "as_html", is_flag=True, help="HTML instead of Markdown.")
@click.option("--form", "form_path", help="A form: item texts beside their ids.")
@click.option("--since", help="First day of calls (YYYY-MM-DD), in --tz.")
@click.option("--until", help="Last day of calls (YYYY-MM-DD), in --tz.")
@tz_option("the times and days")
@click.option("--mail", "mail_to", metavar="ADDRESS",
              help="Also mail the copy to this address (the document and the CSV).")
@click.option("--smtp", envvar=SMTP_ENV, metavar="HOST[:PORT]",
              help=f"The SMTP server for --mail (default ${SMTP_ENV}; port 25).")
@click.option("--mail-from", envvar=FROM_ENV, default="acd@localhost", show_default=True,
              help=f"The sender for --mail (or ${FROM_ENV}).")
@click.option("--starttls", is_flag=True, help="STARTTLS before sending (and before the "
              f"login of ${USER_ENV} / ${PASSWORD_ENV}, if set).")
@config_option
@db_option
def export(agent: str, out_dir: str, as_html: bool, form_path: str | None, since: str | None,
           until: str | None, tz: str | None, mail_to: str | None, smtp: str | None,
           mail_from: str, starttls: bool, config_path: str | None, db_url: str | None) -> None:
    """The agent's copy: their scores, item results and the reviewers'
    comments, one document (Markdown or HTML) and one CSV; with --mail, also
    sent to the agent."""
    from acd.qa.export import agent_csv, agent_html, agent_markdown

    if mail_to is not None and not smtp:
        raise click.UsageError(f"--mail needs an SMTP server: --smtp HOST[:PORT] or ${SMTP_ENV}")

    setup = _setup(config_path, tz, db_url)
    tzinfo, db_url = setup.zone, setup.db_url
    t0, t1 = _day(since, "--since", tzinfo), _day(until, "--until", tzinfo, end=True)
    form = _form(form_path) if form_path else None
    texts = {i.id: i.text for i in form.items} if form else None
    calls = _run(db_url, lambda store: store.scored(since=t0, until=t1, agent=agent,
                                                    teams={}))
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in agent).lstrip(".") \
        or "agent"
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        doc = folder / f"{safe}.{'html' if as_html else 'md'}"
        doc.write_text((agent_html if as_html else agent_markdown)(agent, calls, tzinfo, texts),
                       encoding="utf-8")
        table = folder / f"{safe}.csv"
        table.write_text(agent_csv(calls, tzinfo), encoding="utf-8", newline="")
    except OSError as exc:
        raise _BadFile(f"{out_dir}: cannot write: {exc.strerror or exc}") from None
    console.print(f"wrote {shown(doc)} and {shown(table)} "
                  f"({_plural(len(calls), 'scored call')})")
    if mail_to is not None and smtp:
        _mail(smtp, starttls, mail_from, mail_to, f"Quality reviews: {agent}", doc, table)
        console.print(f"mailed to {shown(mail_to)} through {shown(smtp)}")


def _mail(server: str, starttls: bool, sender: str, to: str, subject: str, doc: Path,
          table: Path) -> None:
    """One message: the document as its text (Markdown) or HTML body, the
    CSV attached; refused or unreachable: exit 1 with the server's words."""
    import os
    import smtplib
    from email.message import EmailMessage

    host, _, port_text = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    try:
        port = int(port_text) if port_text else 25
    except ValueError:
        raise click.BadParameter(f"{server!r}: expected HOST[:PORT]", param_hint="--smtp") \
            from None
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    body = doc.read_text(encoding="utf-8")
    if doc.suffix == ".html":
        msg.set_content("The quality reviews are in the HTML part and the CSV attached.")
        msg.add_alternative(body, subtype="html")
    else:
        msg.set_content(body)
    msg.add_attachment(table.read_bytes(), maintype="text", subtype="csv", filename=table.name)
    try:
        with smtplib.SMTP(host or server, port, timeout=MAIL_TIMEOUT_S) as client:
            if starttls:
                client.starttls()
            user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
            if user and password:
                client.login(user, password)
            client.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise _Refused(f"mail to {to} through {server} not sent: {exc}") from None
