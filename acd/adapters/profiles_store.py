"""Customer and agent profiles in the database (SQLite or PostgreSQL).

The ``customers`` and ``agents`` tables live on the shared ``metadata`` of
:mod:`acd.adapters.storage`, so ``Database.create()`` creates them.

Upserts are batched: one transaction per batch, one executemany-style
``INSERT ... ON CONFLICT DO UPDATE`` per batch (SQLite or PostgreSQL flavour,
chosen by the engine's dialect name).  An upsert may be limited to some
``fields``: an existing row then keeps its other columns (a CSV with just
``number,vip_level`` changes VIP levels and nothing else); a new row gets
the profile's defaults for them.

Every profile is checked before it is written (:func:`customer_problems`,
:func:`agent_problems`): lengths above all, because PostgreSQL refuses text
longer than a column where SQLite would keep it.

Customers are keyed by the one form of their number
(:func:`acd.core.numbers.normalize`, for the store's ``country``): it is
normalised when written, and every read (``get_customer``, the caller
lookup) looks up that form first, then the other forms that read as the
same number in that country, as an older version may have stored them
(:func:`acd.core.numbers.variants`: ``8613800138000``, ``008613800138000``,
``13800138000``, ``013800138000``), so rows written before numbers were
normalised are still found, and a row is never found under a number its key
does not read as (``16502530000`` is a Chinese mobile, not ``+16502530000``).
The same holds for the caller column of the call records the last agent is
read from, which keeps the caller id as the network gave it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    literal_column,
    select,
)
from sqlalchemy import func as sa_func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Row as SaRow
from sqlalchemy.ext.asyncio import AsyncConnection

from acd.adapters.schema import aware, call_records, metadata
from acd.adapters.storage import Database, StorageError
from acd.core.numbers import DEFAULT_COUNTRY, normalize, variants
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_checks import agent_problems, customer_problems
from acd.loaders.profile_fields import (
    AGENT_COLUMNS,
    AGENT_ID_MAX,
    CUSTOMER_COLUMNS,
    EXTENSION_MAX,
    KEY_MAX,
    LEVELS_MAX,
    LIST_MAX,
    NAME_MAX,
    NUMBER_MAX,
    SEGMENT_MAX,
)

customers_table = Table(
    "customers",
    metadata,
    Column("number", String(NUMBER_MAX), primary_key=True),
    Column("name", String(NAME_MAX), nullable=False, default=""),
    Column("vip_level", Integer, nullable=False, default=0),
    Column("dialect", String(KEY_MAX), nullable=False, default=""),
    Column("language", String(KEY_MAX), nullable=False, default=""),
    Column("segment", String(SEGMENT_MAX), nullable=False, default=""),
    Column("tags", String(LIST_MAX), nullable=False, default=""),  # 'a;b', sorted
    Column("gender", String(1), nullable=False, default=""),
    Column("age", Integer),
    Column("preferred_gender", String(1), nullable=False, default=""),
    Column("preferred_age_band", String(8), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

agents_table = Table(
    "agents",
    metadata,
    Column("agent_id", String(AGENT_ID_MAX), primary_key=True),
    Column("extension", String(EXTENSION_MAX), nullable=False),
    Column("name", String(NAME_MAX), nullable=False, default=""),
    Column("skills", String(LEVELS_MAX), nullable=False, default="{}"),  # JSON {name: level}
    Column("dialects", String(LEVELS_MAX), nullable=False, default="{}"),  # JSON
    Column("languages", String(LIST_MAX), nullable=False, default=""),  # 'en;zh'
    Column("gender", String(1), nullable=False, default=""),
    Column("age_band", String(8), nullable=False, default=""),
    Column("groups", String(LIST_MAX), nullable=False, default=""),  # 'a;b'
    Column("vip_qualified", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: rows per transaction in upserts (and keys per IN (...) in lookups)
BATCH = 1000

_T = TypeVar("_T", CustomerProfile, AgentProfile)
_V = TypeVar("_V")


def _last_agent_query() -> Any:
    c = call_records.c
    latest = select(c.caller, sa_func.max(c.ended_at).label("at")).where(
        c.caller.in_(bindparam("wanted", expanding=True)), c.outcome == "answered"
    ).group_by(c.caller).subquery()
    return select(c.caller, c.agent_id, latest.c.at).join(
        latest, (c.caller == latest.c.caller) & (c.ended_at == latest.c.at))


# the caller lookup's two queries, built once (built per lookup, they cost
# more than running them)
_PROFILES_Q = select(customers_table).where(
    customers_table.c.number.in_(bindparam("wanted", expanding=True)))
_LAST_Q = _last_agent_query()


class ProfileStoreError(StorageError):
    """A profile cannot be stored (it is invalid, or the database cannot do it)."""


class UnknownAgentError(ProfileStoreError, LookupError):
    """No agent with this id is stored."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no agent {agent_id!r} is stored")
        self.agent_id = agent_id


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _join(items: Iterable[str]) -> str:
    return ";".join(sorted(items))


def _split(text: str) -> frozenset[str]:
    return frozenset(t for t in text.split(";") if t)


def _levels(m: Any) -> str:
    return json.dumps(dict(sorted(m.items())), ensure_ascii=False)


def customer_row(c: CustomerProfile) -> dict[str, Any]:
    return {
        "number": c.number, "name": c.name, "vip_level": c.vip_level, "dialect": c.dialect,
        "language": c.language, "segment": c.segment, "tags": _join(c.tags),
        "gender": c.gender, "age": c.age, "preferred_gender": c.preferred_gender,
        "preferred_age_band": c.preferred_age_band,
    }


def customer_from_row(r: Any) -> CustomerProfile:
    return CustomerProfile(
        number=r.number, name=r.name, vip_level=r.vip_level, dialect=r.dialect,
        language=r.language, segment=r.segment, tags=_split(r.tags), gender=r.gender,
        age=r.age, preferred_gender=r.preferred_gender,
        preferred_age_band=r.preferred_age_band,
    )


def agent_row(a: AgentProfile) -> dict[str, Any]:
    return {
        "agent_id": a.agent_id, "extension": a.extension, "name": a.name,
        "skills": _levels(a.skills), "dialects": _levels(a.dialects),
        "languages": _join(a.languages), "gender": a.gender, "age_band": a.age_band,
        "groups": _join(a.groups), "vip_qualified": a.vip_qualified,
    }


def agent_from_row(r: Any) -> AgentProfile:
    return AgentProfile(
        agent_id=r.agent_id, extension=r.extension, name=r.name,
        skills=json.loads(r.skills), dialects=json.loads(r.dialects),
        languages=_split(r.languages), gender=r.gender, age_band=r.age_band,
        groups=_split(r.groups), vip_qualified=bool(r.vip_qualified),
    )


def _check(profiles: Iterable[_T], problems: Callable[[_T], list[str]], what: str,
           key: Callable[[_T], str]) -> None:
    bad = []
    for p in profiles:
        found = problems(p)
        if found:
            bad.append(f"{what} {key(p)!r}: {'; '.join(found)}")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ProfileStoreError("cannot store invalid profiles: " + " | ".join(bad[:5]) + more)


def _best(found: dict[str, _V], forms: tuple[str, ...]) -> _V | None:
    """What was found under the first of ``forms`` that has anything."""
    for f in forms:
        if f in found:
            return found[f]
    return None


class ProfileStore:
    """Customers and agents on a :class:`Database` (whose ``create()`` makes the tables).

    ``country``: the configured country calling code, for numbers written
    in a national form (``country_code`` in acd.yaml).
    """

    def __init__(self, db: Database, batch: int = BATCH,
                 country: str = DEFAULT_COUNTRY) -> None:
        self.db = db
        self.batch = batch
        self.country = country

    def identity(self, number: str) -> str:
        """``number`` in its one form, as customers are keyed."""
        return normalize(number, self.country)

    def _forms(self, numbers: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Each number -> the forms it may be stored under, its one form first."""
        return {n: variants(self.identity(n), self.country) for n in numbers}

    # ------------------------------------------------------------ upserts

    def _insert(self, table: Table) -> Any:
        name = self.db.engine.dialect.name
        if name == "sqlite":
            return sqlite.insert(table)
        if name == "postgresql":
            return postgresql.insert(table)
        raise ProfileStoreError(f"profiles: database {name!r} is not supported "
                                "(SQLite or PostgreSQL)")

    async def _upsert(self, table: Table, key: str, rows: Sequence[dict[str, Any]],
                      columns: tuple[str, ...], fields: Collection[str] | None
                      ) -> tuple[int, int]:
        if fields is None:
            update = [c for c in columns if c != key]
        else:
            unknown = sorted(set(fields) - set(columns))
            if unknown:
                raise ProfileStoreError(f"unknown {table.name} fields: {', '.join(unknown)}")
            update = [c for c in columns if c in fields and c != key]
        update.append("updated_at")
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c[key]],
                                          set_={c: stmt.excluded[c] for c in update})
        postgres = self.db.engine.dialect.name == "postgresql"
        if postgres:
            # PostgreSQL tells per row: a row it just inserted has xmax = 0.
            stmt = stmt.returning(literal_column("(xmax = 0)").label("inserted"))
        inserted = 0
        for i in range(0, len(rows), self.batch):
            chunk = list(rows[i:i + self.batch])
            async with self.db.engine.begin() as conn:
                if postgres:
                    result = await conn.execute(stmt, chunk)
                    inserted += sum(1 for r in result.all() if r.inserted)
                else:
                    # inside BEGIN IMMEDIATE: nobody can add keys in between
                    col = table.c[key]
                    q = select(col).where(col.in_([r[key] for r in chunk]))
                    existing = len((await conn.execute(q)).all())
                    await conn.execute(stmt, chunk)
                    inserted += len(chunk) - existing
        return inserted, len(rows) - inserted

    async def upsert_customers(self, profiles: Iterable[CustomerProfile],
                               fields: Collection[str] | None = None) -> tuple[int, int]:
        """Insert or update customers by number: ``(inserted, updated)``.

        Numbers are stored in their one form (:meth:`identity`).  A number
        given twice (in any forms): the later profile wins.  With ``fields``,
        an existing customer keeps its other columns.  Raises
        ProfileStoreError (nothing written) if any profile is invalid.
        """
        normal = (c if (n := self.identity(c.number)) == c.number
                  else dataclasses.replace(c, number=n) for c in profiles)
        unique = list({c.number: c for c in normal}.values())
        _check(unique, customer_problems, "customer", lambda c: c.number)
        now = _now()
        rows = [customer_row(c) | {"updated_at": now} for c in unique]
        return await self._upsert(customers_table, "number", rows, CUSTOMER_COLUMNS, fields)

    async def upsert_agents(self, profiles: Iterable[AgentProfile],
                            fields: Collection[str] | None = None) -> tuple[int, int]:
        """Insert or update agents by id: ``(inserted, updated)`` (as for customers)."""
        unique = list({a.agent_id: a for a in profiles}.values())
        _check(unique, agent_problems, "agent", lambda a: a.agent_id)
        now = _now()
        rows = [agent_row(a) | {"updated_at": now} for a in unique]
        return await self._upsert(agents_table, "agent_id", rows, AGENT_COLUMNS, fields)

    # ---------------------------------------------------------- customers

    async def get_customer(self, number: str) -> CustomerProfile | None:
        """The customer with this number, in any of its forms."""
        return (await self.customers_by_number([number])).get(number)

    async def caller_context(self, number: str) -> tuple[CustomerProfile | None, str | None]:
        """The caller's profile and the agent of their last answered call."""
        return (await self.callers_context([number]))[number]

    async def callers_context(self, numbers: Collection[str]
                              ) -> dict[str, tuple[CustomerProfile | None, str | None]]:
        """For each number (a caller id, in any form): the customer, and the
        agent of the number's latest answered call (the call records are the
        one store of a caller's last agent), in one connection and two
        queries (batched lookups while the callers are in the IVR)."""
        forms = self._forms(set(numbers))
        out: dict[str, tuple[CustomerProfile | None, str | None]] = {
            n: (None, None) for n in forms}
        wanted = sorted({f for fs in forms.values() for f in fs})
        if not wanted:
            return out
        args = {"wanted": wanted}

        def both(conn: Connection) -> tuple[Sequence[Any], Sequence[Any]]:
            return conn.execute(_PROFILES_Q, args).all(), conn.execute(_LAST_Q, args).all()

        # one connection, one trip (on SQLite a thread hop, not one per statement)
        rows, last_rows = await self.db.read(both)
        found = {r.number: customer_from_row(r) for r in rows}
        last = {r.caller: (r.at, r.agent_id) for r in last_rows}
        for n, fs in forms.items():
            ends = [last[f] for f in fs if f in last]
            out[n] = (_best(found, fs), max(ends)[1] if ends else None)
        return out

    async def customers_by_number(self, numbers: Iterable[str]) -> dict[str, CustomerProfile]:
        """The stored customers among ``numbers`` (in any form), keyed by the
        numbers as given; unknown numbers are left out."""
        forms = self._forms(set(numbers))
        wanted = sorted({f for fs in forms.values() for f in fs})
        found: dict[str, CustomerProfile] = {}
        async with self.db.engine.connect() as conn:
            for i in range(0, len(wanted), self.batch):
                chunk = wanted[i:i + self.batch]
                q = select(customers_table).where(customers_table.c.number.in_(chunk))
                for row in (await conn.execute(q)).all():
                    found[row.number] = customer_from_row(row)
        out: dict[str, CustomerProfile] = {}
        for n, fs in forms.items():
            got = _best(found, fs)
            if got is not None:
                out[n] = got
        return out

    async def customer_updated_at(self, number: str) -> dt.datetime | None:
        """When the customer was last written (UTC), or None if unknown."""
        forms = variants(self.identity(number), self.country)
        q = select(customers_table.c.number, customers_table.c.updated_at) \
            .where(customers_table.c.number.in_(forms))
        async with self.db.engine.connect() as conn:
            found = {r.number: r.updated_at for r in (await conn.execute(q)).all()}
        ts = _best(found, forms)
        return aware(ts) if ts is not None else None

    # ------------------------------------------------------------- agents

    async def agents(self) -> list[AgentProfile]:
        """Every stored agent, by id (code-point order on every database)."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(agents_table))).all()
        return sorted((agent_from_row(r) for r in rows), key=lambda a: a.agent_id)

    async def get_agent(self, agent_id: str) -> AgentProfile | None:
        async with self.db.engine.connect() as conn:
            row = await self._agent_row(conn, agent_id)
        return agent_from_row(row) if row is not None else None

    @staticmethod
    async def _agent_row(conn: AsyncConnection, agent_id: str) -> SaRow[Any] | None:
        q = select(agents_table).where(agents_table.c.agent_id == agent_id)
        return (await conn.execute(q)).first()

    async def modify_agent(self, agent_id: str,
                           change: Callable[[AgentProfile], AgentProfile]) -> AgentProfile:
        """Read, change and write one agent in one transaction (on SQLite a
        ``BEGIN IMMEDIATE`` one, so concurrent edits cannot lose updates).

        ``change`` gets the stored profile and returns the new one; its
        exceptions propagate and nothing is written.  Raises
        UnknownAgentError, or ProfileStoreError for an invalid result.
        """
        async with self.db.engine.begin() as conn:
            if self.db.engine.dialect.name == "postgresql":
                q = select(agents_table).where(agents_table.c.agent_id == agent_id) \
                    .with_for_update()
                row = (await conn.execute(q)).first()
            else:
                row = await self._agent_row(conn, agent_id)
            if row is None:
                raise UnknownAgentError(agent_id)
            new = change(agent_from_row(row))
            if new.agent_id != agent_id:
                raise ProfileStoreError(f"agent {agent_id!r}: the id cannot be changed "
                                        f"(to {new.agent_id!r})")
            _check([new], agent_problems, "agent", lambda a: a.agent_id)
            values = agent_row(new) | {"updated_at": _now()}
            del values["agent_id"]
            await conn.execute(agents_table.update().where(agents_table.c.agent_id == agent_id)
                               .values(**values))
        return new

    async def update_agent(self, agent_id: str, /, **changes: Any) -> AgentProfile:
        """Change some fields of a stored agent, e.g.
        ``update_agent("a1", skills={"billing": 7}, vip_qualified=True)``.

        Raises UnknownAgentError for an unknown id, ProfileStoreError for an
        unknown field, a change of ``agent_id`` or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(AgentProfile)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ProfileStoreError(f"agent {agent_id!r}: unknown field "
                                    f"{', '.join(unknown)} (fields: {', '.join(AGENT_COLUMNS)})")
        if "agent_id" in changes and changes["agent_id"] != agent_id:
            raise ProfileStoreError(f"agent {agent_id!r}: the id cannot be changed")

        def change(old: AgentProfile) -> AgentProfile:
            try:
                return dataclasses.replace(old, **changes)
            except (ValueError, TypeError) as exc:
                raise ProfileStoreError(str(exc)) from None

        return await self.modify_agent(agent_id, change)

    async def delete_agent(self, agent_id: str) -> bool:
        """Remove an agent; False if there was none with this id."""
        async with self.db.engine.begin() as conn:
            q = delete(agents_table).where(agents_table.c.agent_id == agent_id)
            result = await conn.execute(q)
        return bool(result.rowcount)
