"""``acd customers ...`` and ``acd agents import|list|set``: the profiles
stored in the database, imported and edited.

    acd customers import FILE      CSV; errors by file:line, then a summary
    acd customers show NUMBER
    acd agents import FILE         CSV or YAML (by extension)
    acd agents list
    acd agents set AGENT_ID --skill billing=7 --drop-skill vip --vip ...

``acd agents live ...`` (the running engine's agents) is in
:mod:`acd.cli.control`; :mod:`acd.cli` adds it to this group.

Exit codes of the imports: 0 every row was taken, 1 some rows were rejected
(the good ones are kept), 2 the file cannot be read at all, or none of its
rows could be taken (nothing imported), 3 the database failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from acd.adapters.profiles_store import ProfileStore, ProfileStoreError, UnknownAgentError
from acd.cli.common import (
    console,
    db_option,
    default_country,
    err_console,
    levels,
    profile_options,
    run_db,
)
from acd.cli.common import shown as escape  # rich markup AND control characters escaped
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_csv import parse_customers_csv
from acd.loaders.profile_results import Issue, ParseResult, ProfileFileError
from acd.loaders.profiles import decode, parse_agents
from acd.loaders.textfile import (
    AGENTS_CSV_MAX_BYTES,
    CSV_MAX_BYTES,
    YAML_MAX_BYTES,
    TextFileError,
    clip,
    read_bytes_file,
)

#: at most this many problems are listed; the summary counts all of them
SHOW_ISSUES = 200

EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, EXIT_DATABASE = 0, 1, 2, 3

_R = TypeVar("_R")
_P = TypeVar("_P", CustomerProfile, AgentProfile)


def _run(db_url: str | None, work: Callable[[ProfileStore], Coroutine[Any, Any, _R]]) -> _R:
    """Open the database (creating missing tables), run ``work``, close it.
    A database failure ends the command with exit code 3."""
    country = default_country()
    return run_db(db_url, lambda db: work(ProfileStore(db, country=country)))


# ---------------------------------------------------------------- imports


def _read(path: Path, customers: bool) -> str:
    """The file's text: a regular file within its size limit (CSV or YAML),
    UTF-8 (acd.loaders.textfile), or ProfileFileError."""
    suffix = path.suffix.lower()
    limit = YAML_MAX_BYTES if suffix in (".yaml", ".yml") else CSV_MAX_BYTES if customers \
        else AGENTS_CSV_MAX_BYTES
    try:
        data = read_bytes_file(path, "file", limit)
    except TextFileError as exc:
        raise ProfileFileError(str(path), 0, f"cannot be read: {exc.problem}") from None
    return decode(data, str(path))


def _ranges(lines: Sequence[int]) -> str:
    """``4, 9-12, 15002`` for sorted line numbers."""
    out: list[str] = []
    start = prev = lines[0]
    for n in [*lines[1:], -1]:
        if n != prev + 1:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = n
        prev = n
    return ", ".join(out)


def _issue_table(issues: Sequence[Issue]) -> Table:
    shown = issues[:SHOW_ISSUES]
    more = len(issues) - len(shown)
    table = Table(title="problems", caption=f"{more} more not shown" if more else None)
    table.add_column("where", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("problem", overflow="fold")
    for i in shown:
        problem = escape(clip(i.problem))  # a value quoted from the file may be huge
        table.add_row(escape(i.where), escape(i.field) or "-",
                      f"[yellow]warning:[/yellow] {problem}" if i.warning else problem)
    return table


def _import(path: Path, db_url: str | None, what: str,
            parse: Callable[[str, str], ParseResult[_P]],
            upsert: Callable[[ProfileStore], Callable[..., Coroutine[Any, Any, tuple[int, int]]]],
            ) -> None:
    try:
        result = parse(_read(path, what == "customers"), str(path))
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

    if result.issues:  # the rows left out first, then the warnings
        errors = sorted(result.errors, key=lambda i: i.line)
        console.print(_issue_table(errors + sorted(result.warnings, key=lambda i: i.line)))
        if len(errors) > SHOW_ISSUES:  # every line left out is named, if only by number
            console.print(f"the other rows left out: lines "
                          f"{_ranges(sorted({i.line for i in errors[SHOW_ISSUES:]}))}",
                          soft_wrap=True)
    if result.rejected and not result.rows:  # every row left out: the database untouched
        err_console.print(f"nothing imported: no row of the {what} file could be taken "
                          f"({result.rejected} rows rejected)")
        sys.exit(EXIT_UNREADABLE)
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
@db_option
def customers_import(file: Path, db_url: str | None) -> None:
    """Import customers from a CSV FILE (UTF-8, header line first).

    Columns (any order, only `number` required): number, name, vip_level,
    dialect, language, segment, tags (a;b), gender, age, preferred_gender,
    preferred_age_band. A customer already stored keeps the columns the file
    does not have. Numbers are stored in one form (+8613800138000 for
    13800138000, 008613800138000 ...; `country_code` of ./acd.yaml for
    national numbers); one that is not a full phone number is kept as
    written, with a warning. Bad rows are listed by line and left out; the
    good ones are imported. Exit code 0: all rows imported; 1: some
    rejected; 2: the file cannot be read (nothing imported); 3: database
    error.
    """
    country = default_country()
    _import(file, db_url, "customers",
            lambda text, name: parse_customers_csv(text, name, country),
            lambda s: s.upsert_customers)


@customers.command("show")
@click.argument("number")
@db_option
def customers_show(number: str, db_url: str | None) -> None:
    """Show the stored profile of the customer with phone NUMBER, in any form
    (13800138000, +86 138 0013 8000 ...; exit 1 if none)."""
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


@click.group("agents", short_help="Agents: stored profiles (database); `agents live`: "
                                  "the running engine's.")
def agents() -> None:
    """Agents.  `import`, `list` and `set` work on the profiles STORED in the
    database, engine running or not (a running engine takes them at its next
    start).  `acd agents live ...` works on the RUNNING engine's agents over
    its control API: show, login, logout, ready, pause, set (live and stored).
    """


@agents.command("import", short_help="Import agent profiles into the database from FILE.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@db_option
def agents_import(file: Path, db_url: str | None) -> None:
    """Import agents from FILE: CSV (.csv) or YAML (.yaml/.yml).

    CSV columns: agent_id, extension (required), name, skills (billing:5;vip:3),
    dialects (minnan:8), languages (zh;en), gender, age_band, groups,
    vip_qualified. YAML: a list of agents (or {agents: [...]}) with the same
    fields, skills and dialects as mappings. An agent already stored keeps
    the fields the file does not give. Exit codes as for `customers import`.
    """
    _import(file, db_url, "agents", parse_agents, lambda s: s.upsert_agents)


def agents_table(rows: Sequence[AgentProfile], title: str = "agents") -> Table:
    table = Table(title=title)
    for col in ("id", "extension", "skills", "dialects", "gender", "age band", "groups", "VIP"):
        short = col in ("extension", "gender", "age band", "VIP")
        table.add_column(col, no_wrap=short, overflow="fold")
    for a in rows:
        table.add_row(escape(a.agent_id), escape(a.extension), escape(levels(a.skills)),
                      escape(levels(a.dialects)), a.gender or "-", a.age_band or "-",
                      escape(" ".join(sorted(a.groups))) or "-",
                      "yes" if a.vip_qualified else "no")
    return table


@agents.command("list")
@db_option
def agents_list(db_url: str | None) -> None:
    """List the agent profiles stored in the database."""
    async def work(store: ProfileStore) -> list[AgentProfile]:
        return await store.agents()

    rows = _run(db_url, work)
    if not rows:
        console.print("no agents stored (import some with `acd agents import FILE`)")
        return
    console.print(agents_table(rows, f"agents ({len(rows)})"))


@agents.command("set", short_help="Change an agent's stored profile (database).")
@click.argument("agent_id")
@profile_options
@db_option
def agents_set(agent_id: str, skills: tuple[tuple[str, int], ...], drop_skills: tuple[str, ...],
               dialects: tuple[tuple[str, int], ...], drop_dialects: tuple[str, ...],
               gender: str | None, age_band: str | None, groups: tuple[str, ...],
               vip: bool | None, extension: str | None, db_url: str | None) -> None:
    """Change an agent's profile stored in the database, e.g.

        acd agents set a1001 --skill billing=7 --drop-skill vip --dialect minnan=8 --vip

    A running engine takes it at its next start; `acd agents live set`
    changes the live agent now (and stores it too).
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
