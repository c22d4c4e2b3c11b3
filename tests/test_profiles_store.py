"""ProfileStore on SQLite and on PostgreSQL (skipped if no server is running).

The PostgreSQL runs use a schema of their own (unique name, created, then
dropped with everything in it), so they cannot touch other tables of the
shared ``test`` database or another test run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from acd.adapters.profiles_store import (
    ProfileStore,
    ProfileStoreError,
    UnknownAgentError,
    agents_table,
    customers_table,
)
from acd.adapters.storage import Database, metadata
from acd.core.profiles import AgentProfile, CustomerProfile

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

FULL_CUSTOMER = CustomerProfile(
    number="+8613800138000", name="欧阳娜娜", vip_level=3, dialect="minnan", language="zh",
    segment="enterprise", tags=frozenset({"vip", "key-account", "投诉"}), gender="F", age=41,
    preferred_gender="F", preferred_age_band="35-44")
FULL_AGENT = AgentProfile(
    agent_id="a1001", extension="1001", name="林美玲", skills={"billing": 8, "vip": 7},
    dialects={"minnan": 10, "mandarin": 9}, languages=frozenset({"zh", "en"}), gender="F",
    age_band="35-44", groups=frozenset({"xiamen", "senior"}), vip_qualified=True)


async def _sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/profiles.db")
    await db.create()
    try:
        yield db
    finally:
        await db.dispose()


async def _postgres() -> AsyncIterator[Database]:
    schema = f"acd_test_{uuid.uuid4().hex[:12]}"
    db = Database(PG_URL)

    @event.listens_for(db.engine.sync_engine, "connect")
    def _search_path(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()

    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(metadata.create_all, tables=[customers_table, agents_table])
    except (OSError, SQLAlchemyError) as exc:
        await db.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    try:
        yield db
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    gen = _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
    async for d in gen:
        yield d


@pytest.fixture
def store(db: Database) -> ProfileStore:
    return ProfileStore(db, batch=4)  # small batches: several transactions per upsert


def customer(i: int, **kw: Any) -> CustomerProfile:
    return CustomerProfile(f"138{i:08d}", **kw)


# -------------------------------------------------------------- customers


async def test_database_create_makes_the_profile_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    await db.create()
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    await db.dispose()
    assert {"customers", "agents", "call_records"} <= set(names)


async def test_customer_round_trip_of_every_field(store: ProfileStore) -> None:
    assert await store.upsert_customers([FULL_CUSTOMER]) == (1, 0)
    assert await store.get_customer(FULL_CUSTOMER.number) == FULL_CUSTOMER
    bare = CustomerProfile("110")
    await store.upsert_customers([bare])
    assert await store.get_customer("110") == bare  # age None, tags empty
    assert await store.get_customer("119") is None


async def test_customer_upsert_counts(store: ProfileStore) -> None:
    first = [customer(i, name=f"客户{i}") for i in range(10)]
    assert await store.upsert_customers(first) == (10, 0)
    again = [customer(i, name=f"新{i}") for i in range(5, 15)]
    assert await store.upsert_customers(again) == (5, 5)
    got = await store.customers_by_number(c.number for c in first + again)
    assert len(got) == 15
    assert got[customer(4).number].name == "客户4"
    assert got[customer(7).number].name == "新7"
    assert await store.upsert_customers([]) == (0, 0)


async def test_a_number_given_twice_counts_once_and_the_later_wins(
        store: ProfileStore) -> None:
    assert await store.upsert_customers([customer(1, vip_level=1),
                                         customer(1, vip_level=2)]) == (1, 0)
    got = await store.get_customer(customer(1).number)
    assert got is not None and got.vip_level == 2


async def test_upsert_limited_to_fields_keeps_the_other_columns(store: ProfileStore) -> None:
    await store.upsert_customers([FULL_CUSTOMER])
    change = CustomerProfile(FULL_CUSTOMER.number, vip_level=1)
    newcomer = CustomerProfile("13900000000", vip_level=2)
    assert await store.upsert_customers([change, newcomer],
                                        fields={"number", "vip_level"}) == (1, 1)
    kept = await store.get_customer(FULL_CUSTOMER.number)
    assert kept == CustomerProfile(**{**_fields(FULL_CUSTOMER), "vip_level": 1})
    assert await store.get_customer("13900000000") == newcomer
    with pytest.raises(ProfileStoreError, match="unknown customers fields: colour"):
        await store.upsert_customers([change], fields={"number", "colour"})


def _fields(c: CustomerProfile) -> dict[str, Any]:
    return {f.name: getattr(c, f.name) for f in dataclasses.fields(CustomerProfile)}


async def test_customers_by_number_in_chunks_leaves_out_unknowns(store: ProfileStore) -> None:
    await store.upsert_customers([customer(i) for i in range(9)])
    wanted = [customer(i).number for i in range(0, 12)] + ["999"]
    got = await store.customers_by_number(wanted)
    assert sorted(got) == sorted(customer(i).number for i in range(9))
    assert all(got[n].number == n for n in got)
    assert await store.customers_by_number([]) == {}


async def test_updated_at_is_utc_aware_and_moves(store: ProfileStore) -> None:
    before = dt.datetime.now(dt.UTC)
    await store.upsert_customers([customer(1)])
    first = await store.customer_updated_at(customer(1).number)
    assert first is not None and first.tzinfo is not None
    assert first.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=5) <= first <= dt.datetime.now(dt.UTC)
    await store.upsert_customers([customer(1, name="x")])
    second = await store.customer_updated_at(customer(1).number)
    assert second is not None and second >= first
    assert await store.customer_updated_at("999") is None


async def test_invalid_customers_are_refused_before_anything_is_written(
        store: ProfileStore) -> None:
    # PostgreSQL would refuse a 200-character name; SQLite would keep it: checked in code
    bad = [customer(1), customer(2, name="名" * 200), CustomerProfile("13800138003",
                                                                     dialect="MinNan")]
    with pytest.raises(ProfileStoreError) as exc:
        await store.upsert_customers(bad)
    assert "customer '13800000002': name is 200 characters long (at most 128)" in str(exc.value)
    assert "dialect 'MinNan' should be written 'minnan'" in str(exc.value)
    assert await store.get_customer(customer(1).number) is None


# ----------------------------------------------------------------- agents


async def test_agent_round_trip_of_every_field(store: ProfileStore) -> None:
    assert await store.upsert_agents([FULL_AGENT]) == (1, 0)
    assert await store.get_agent("a1001") == FULL_AGENT
    assert await store.get_agent("nobody") is None
    bare = AgentProfile("a2", "1002")
    await store.upsert_agents([bare])
    assert await store.agents() == [FULL_AGENT, bare]  # by id


async def test_agent_upsert_counts_and_fields(store: ProfileStore) -> None:
    team = [AgentProfile(f"a{i}", f"10{i:02d}", skills={"general": 5}) for i in range(6)]
    assert await store.upsert_agents(team) == (6, 0)
    assert await store.upsert_agents([AgentProfile("a0", "2000"),
                                      AgentProfile("a9", "1009")],
                                     fields={"agent_id", "extension"}) == (1, 1)
    a0 = await store.get_agent("a0")
    assert a0 is not None and a0.extension == "2000" and dict(a0.skills) == {"general": 5}
    assert len(await store.agents()) == 7


async def test_update_agent(store: ProfileStore) -> None:
    await store.upsert_agents([FULL_AGENT])
    new = await store.update_agent("a1001", skills={"tech": 3}, vip_qualified=False,
                                   gender="M", age_band="45-54", groups=frozenset({"night"}))
    assert new == AgentProfile(
        agent_id="a1001", extension="1001", name="林美玲", skills={"tech": 3},
        dialects=FULL_AGENT.dialects, languages=FULL_AGENT.languages, gender="M",
        age_band="45-54", groups=frozenset({"night"}), vip_qualified=False)
    assert await store.get_agent("a1001") == new


async def test_update_of_an_unknown_agent_is_a_clear_error(store: ProfileStore) -> None:
    with pytest.raises(UnknownAgentError, match="no agent 'ghost' is stored") as exc:
        await store.update_agent("ghost", gender="F")
    assert isinstance(exc.value, LookupError)
    assert exc.value.agent_id == "ghost"


@pytest.mark.parametrize(("changes", "words"), [
    ({"gender": "X"}, "gender 'X' is not F or M"),
    ({"skills": {"billing": 11}}, "skill 'billing' level 11 is not 1-10"),
    ({"extension": "1"}, "extension '1' is not an extension"),
    ({"name": "n" * 129}, "name is 129 characters long (at most 128)"),
    ({"colour": "red"}, "unknown field colour"),
    ({"agent_id": "a2"}, "the id cannot be changed"),
])
async def test_update_agent_refuses_bad_changes(store: ProfileStore, changes: dict[str, Any],
                                                words: str) -> None:
    await store.upsert_agents([FULL_AGENT])
    with pytest.raises(ProfileStoreError, match=re.escape(words)):
        await store.update_agent("a1001", **changes)
    assert await store.get_agent("a1001") == FULL_AGENT


async def test_modify_agent_reads_and_writes_in_one_go(store: ProfileStore) -> None:
    await store.upsert_agents([FULL_AGENT])
    new = await store.modify_agent("a1001", lambda a: AgentProfile(
        a.agent_id, a.extension, skills={**a.skills, "tech": 2}))
    assert dict(new.skills) == {"billing": 8, "vip": 7, "tech": 2}
    assert await store.get_agent("a1001") == new

    def boom(a: AgentProfile) -> AgentProfile:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.modify_agent("a1001", boom)
    assert await store.get_agent("a1001") == new


async def test_delete_agent(store: ProfileStore) -> None:
    await store.upsert_agents([FULL_AGENT])
    assert await store.delete_agent("a1001") is True
    assert await store.delete_agent("a1001") is False
    assert await store.agents() == []


async def test_invalid_agents_are_refused(store: ProfileStore) -> None:
    with pytest.raises(ProfileStoreError, match="agent 'a 1': agent_id 'a 1' is not an agent"):
        await store.upsert_agents([AgentProfile("a 1", "1001")])
    assert await store.agents() == []
