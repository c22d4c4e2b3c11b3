"""``acd customers ...`` and ``acd agents ...``: profile import and editing.

    acd customers import FILE      CSV; errors by file:line, then a summary
    acd customers show NUMBER
    acd agents import FILE         CSV or YAML (by extension)
    acd agents list
    acd agents set AGENT_ID --skill billing=7 --drop-skill vip --vip ...

Exit codes of the imports: 0 every row was taken, 1 some rows were rejected
(the good ones are kept), 2 the file cannot be read at all (nothing taken),
3 the database failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.profiles_store import ProfileStore, ProfileStoreError, UnknownAgentError
from acd.adapters.storage import Database
from acd.core.profiles import AGE_BANDS, AgentProfile, CustomerProfile
from acd.loaders.profiles import (
    FieldError,
    Issue,
    ParseResult,
    ProfileFileError,
    decode,
    parse_agents,
    parse_customers_csv,
    parse_extension,
    parse_gender,
    parse_key,
    parse_level,
    parse_list,
)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages

DEFAULT_DB = "sqlite+aiosqlite:///acd.db"
CONFIG_FILE = "acd.yaml"
#: at most this many problems are listed; the summary counts all of them
SHOW_ISSUES = 200

EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, EXIT_DATABASE = 0, 1, 2, 3

_R = TypeVar("_R")
_P = TypeVar("_P", CustomerProfile, AgentProfile)


def default_db() -> str:
    """The ``database`` of ./acd.yaml if it names one, else the SQLite default."""
    path = Path(CONFIG_FILE)
    if not path.is_file():
        return DEFAULT_DB
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read the database from {path}: {exc}; "
                                   "give --db") from None
    url = data.get("database") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url else DEFAULT_DB


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db_url", default=None, metavar="URL",
                        help="Database URL (default: `database` of ./acd.yaml, "
                             f"else {DEFAULT_DB}).")(f)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<database URL>"


def _run(db_url: str | None, work: Callable[[ProfileStore], Coroutine[Any, Any, _R]]) -> _R:
    """Open the database (creating missing tables), run ``work``, close it.
    A database failure ends the command with exit code 3."""
    return run_db(db_url, lambda db: work(ProfileStore(db)))


def run_db(db_url: str | None, work: Callable[[Database], Coroutine[Any, Any, _R]]) -> _R:
    """``_run`` for any store: ``work`` gets the open database."""
    url = db_url or default_db()

    async def go() -> _R:
        db = Database(url)
        try:
            await db.create()
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        err_console.print(f"[red]database error[/red] ({escape(_safe(url))}): "
                          f"{escape(str(exc).splitlines()[0] if str(exc) else repr(exc))}")
        sys.exit(EXIT_DATABASE)


# ---------------------------------------------------------------- imports


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfileFileError(str(path), 0, f"cannot be read: {exc.strerror or exc}") from None
    return decode(data, str(path))


def _issue_table(issues: Sequence[Issue]) -> Table:
    shown = issues[:SHOW_ISSUES]
    more = len(issues) - len(shown)
    table = Table(title="problems", caption=f"{more} more not shown" if more else None)
    table.add_column("where", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("problem", overflow="fold")
    for i in shown:
        problem = escape(i.problem)
        table.add_row(i.where, i.field or "-",
                      f"[yellow]warning:[/yellow] {problem}" if i.warning else problem)
    return table


def _import(path: Path, db_url: str | None, what: str,
            parse: Callable[[str, str], ParseResult[_P]],
            upsert: Callable[[ProfileStore], Callable[..., Coroutine[Any, Any, tuple[int, int]]]],
            ) -> None:
    try:
        result = parse(_read(path), str(path))
    except ProfileFileError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        err_console.print(f"nothing imported: the {what} file cannot be read")
        sys.exit(EXIT_UNREADABLE)

    async def work(store: ProfileStore) -> tuple[int, int]:
        # rows are grouped by the fields they give (CSV: one group; YAML: per
        # item), so an existing profile keeps the fields a row leaves out
        groups: dict[frozenset[str], list[_P]] = {}
        for row in result.rows:
            groups.setdefault(row.fields, []).append(row.profile)
        new = updated = 0
        for fields, profiles in groups.items():
            n, u = await upsert(store)(profiles, fields=fields)
            new, updated = new + n, updated + u
        return new, updated

    if result.issues:
        console.print(_issue_table(result.issues))
    try:
        new, updated = _run(db_url, work)
    except ProfileStoreError as exc:  # not expected: the parser checks the same
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(EXIT_DATABASE)
    console.print(f"imported {new} new, {updated} updated, {result.rejected} rows rejected")
    if result.warnings:
        console.print(f"{len(result.warnings)} warning{'s' if len(result.warnings) != 1 else ''}"
                      " (the rows were imported)")
    sys.exit(EXIT_REJECTED if result.rejected else EXIT_OK)


# -------------------------------------------------------------- customers


@click.group("customers")
def customers() -> None:
    """Customer profiles (callers, keyed by phone number)."""


@customers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_db_option
def customers_import(file: Path, db_url: str | None) -> None:
    """Import customers from a CSV FILE (UTF-8, header line first).

    Columns (any order, only `number` required): number, name, vip_level,
    dialect, language, segment, tags (a;b), gender, age, preferred_gender,
    preferred_age_band. A customer already stored keeps the columns the file
    does not have. Bad rows are listed by line and left out; the good ones
    are imported. Exit code 0: all rows imported; 1: some rejected; 2: the
    file cannot be read (nothing imported); 3: database error.
    """
    _import(file, db_url, "customers", parse_customers_csv, lambda s: s.upsert_customers)


@customers.command("show")
@click.argument("number")
@_db_option
def customers_show(number: str, db_url: str | None) -> None:
    """Show the stored profile of the customer with phone NUMBER (exit 1 if none)."""
    async def work(store: ProfileStore) -> tuple[CustomerProfile | None, Any]:
        c = await store.get_customer(number.strip())
        return c, (await store.customer_updated_at(c.number)) if c is not None else None

    customer, updated_at = _run(db_url, work)
    if customer is None:
        err_console.print(f"no customer with number {escape(number)!r} is stored")
        sys.exit(1)
    table = Table(title=f"customer {escape(customer.number)}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "number": customer.number, "name": customer.name,
        "vip_level": str(customer.vip_level), "dialect": customer.dialect,
        "language": customer.language, "segment": customer.segment,
        "tags": ", ".join(sorted(customer.tags)), "gender": customer.gender,
        "age": "" if customer.age is None else str(customer.age),
        "preferred_gender": customer.preferred_gender,
        "preferred_age_band": customer.preferred_age_band,
        "updated_at": updated_at.isoformat(timespec="seconds") if updated_at else "",
    }
    for k, v in rows.items():
        table.add_row(k, escape(v) or "-")
    console.print(table)


# ----------------------------------------------------------------- agents


@click.group("agents")
def agents() -> None:
    """Agent profiles STORED in the database (import, list, set).

    For the running engine's live agents use `acd agent`.
    """


@agents.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_db_option
def agents_import(file: Path, db_url: str | None) -> None:
    """Import agents from FILE: CSV (.csv) or YAML (.yaml/.yml).

    CSV columns: agent_id, extension (required), name, skills (billing:5;vip:3),
    dialects (minnan:8), languages (zh;en), gender, age_band, groups,
    vip_qualified. YAML: a list of agents (or {agents: [...]}) with the same
    fields, skills and dialects as mappings. An agent already stored keeps
    the fields the file does not give. Exit codes as for `customers import`.
    """
    _import(file, db_url, "agents", parse_agents, lambda s: s.upsert_agents)


def _levels(m: Any) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(m.items())) or "-"


def agents_table(rows: Sequence[AgentProfile], title: str = "agents") -> Table:
    table = Table(title=title)
    for col in ("id", "extension", "skills", "dialects", "gender", "age band", "groups", "VIP"):
        short = col in ("extension", "gender", "age band", "VIP")
        table.add_column(col, no_wrap=short, overflow="fold")
    for a in rows:
        table.add_row(escape(a.agent_id), a.extension, escape(_levels(a.skills)),
                      escape(_levels(a.dialects)), a.gender or "-", a.age_band or "-",
                      escape(" ".join(sorted(a.groups))) or "-",
                      "yes" if a.vip_qualified else "no")
    return table


@agents.command("list")
@_db_option
def agents_list(db_url: str | None) -> None:
    """List the stored agents."""
    async def work(store: ProfileStore) -> list[AgentProfile]:
        return await store.agents()

    rows = _run(db_url, work)
    if not rows:
        console.print("no agents stored (import some with `acd agents import FILE`)")
        return
    console.print(agents_table(rows, f"agents ({len(rows)})"))


def _option_value(parse: Callable[[str], _R]) -> Callable[[click.Context, click.Parameter, Any],
                                                          Any]:
    """A click callback running a profiles_io parser (errors name the option)."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, tuple):
                return tuple(parse(v.strip()) for v in value)
            return parse(value.strip())
        except FieldError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return callback


def _name_level(raw: str) -> tuple[str, int]:
    name, sep, level = raw.partition("=")
    name, level = name.strip(), level.strip()
    if not sep or not name or not level:
        raise FieldError(f"{raw!r} must be NAME=LEVEL, e.g. billing=5")
    parse_key(name)
    try:
        return name, parse_level(level)
    except FieldError:
        raise FieldError(f"{raw!r}: level {level!r} is not a whole number 1-10") from None


def _group(raw: str) -> str:
    if not raw:
        raise FieldError("a group name cannot be empty")
    if ";" in raw:
        raise FieldError(f"{raw!r}: give one group per --group")
    (name,) = parse_list(raw)
    return name


def profile_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The profile-editing options shared by `acd agents set` (the database)
    and `acd agent set` (the running engine)."""
    for option in reversed(_PROFILE_OPTIONS):
        f = option(f)
    return f


_PROFILE_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--skill", "skills", multiple=True, metavar="NAME=LEVEL",
                 callback=_option_value(_name_level),
                 help="Set a skill's level (1-10); repeatable."),
    click.option("--drop-skill", "drop_skills", multiple=True, metavar="NAME",
                  help="Remove a skill; repeatable."),
    click.option("--dialect", "dialects", multiple=True, metavar="NAME=LEVEL",
                  callback=_option_value(_name_level),
                  help="Set a dialect's proficiency (1-10); repeatable."),
    click.option("--drop-dialect", "drop_dialects", multiple=True, metavar="NAME",
                  help="Remove a dialect; repeatable."),
    click.option("--gender", metavar="F|M", callback=_option_value(parse_gender),
                  help="F or M (female/male also accepted)."),
    click.option("--age-band", type=click.Choice(AGE_BANDS), help="Age band."),
    click.option("--group", "groups", multiple=True, metavar="G", callback=_option_value(_group),
                  help="The agent's groups become exactly these; repeatable."),
    click.option("--vip/--no-vip", default=None, help="May take VIP callers, or not."),
    click.option("--extension", metavar="E", callback=_option_value(parse_extension),
                  help="Phone extension (2-15 digits)."),
]


@agents.command("set")
@click.argument("agent_id")
@profile_options
@_db_option
def agents_set(agent_id: str, skills: tuple[tuple[str, int], ...], drop_skills: tuple[str, ...],
               dialects: tuple[tuple[str, int], ...], drop_dialects: tuple[str, ...],
               gender: str | None, age_band: str | None, groups: tuple[str, ...],
               vip: bool | None, extension: str | None, db_url: str | None) -> None:
    """Change a stored agent's profile, e.g.

        acd agents set a1001 --skill billing=7 --drop-skill vip --dialect minnan=8 --vip
    """
    if not any((skills, drop_skills, dialects, drop_dialects, groups)) \
            and gender is None and age_band is None and vip is None and extension is None:
        raise click.UsageError("nothing to change: give at least one option "
                               "(see `acd agents set --help`)")
    both = set(dict(skills)) & set(drop_skills)
    if both:
        raise click.BadParameter(f"skill {sorted(both)[0]!r} is both set and dropped",
                                 param_hint="'--drop-skill'")
    lowered = [(k.lower(), v) for k, v in dialects]

    def change(old: AgentProfile) -> AgentProfile:
        missing = [s for s in drop_skills if s not in old.skills]
        if missing:
            raise click.BadParameter(
                f"agent {old.agent_id} has no skill {missing[0]!r} "
                f"(skills: {', '.join(sorted(old.skills)) or 'none'})", param_hint="'--drop-skill'")
        missing = [d for d in drop_dialects if d.lower() not in old.dialects]
        if missing:
            raise click.BadParameter(
                f"agent {old.agent_id} has no dialect {missing[0]!r} "
                f"(dialects: {', '.join(sorted(old.dialects)) or 'none'})",
                param_hint="'--drop-dialect'")
        new_skills = {k: v for k, v in old.skills.items() if k not in drop_skills} | dict(skills)
        drop_d = {d.lower() for d in drop_dialects}
        new_dialects = {k: v for k, v in old.dialects.items() if k not in drop_d} | dict(lowered)
        return AgentProfile(
            agent_id=old.agent_id, extension=extension or old.extension, name=old.name,
            skills=new_skills, dialects=new_dialects, languages=old.languages,
            gender=gender if gender is not None else old.gender,
            age_band=age_band if age_band is not None else old.age_band,
            groups=frozenset(groups) if groups else old.groups,
            vip_qualified=vip if vip is not None else old.vip_qualified,
        )

    async def work(store: ProfileStore) -> AgentProfile:
        return await store.modify_agent(agent_id, change)

    try:
        updated = _run(db_url, work)
    except UnknownAgentError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))} "
                          "(`acd agents list` shows the stored agents)")
        sys.exit(1)
    except ProfileStoreError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(1)
    console.print(agents_table([updated], f"agent {escape(agent_id)} updated"))
