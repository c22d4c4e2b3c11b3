"""ProfileStore on SQLite and on PostgreSQL (skipped if no server is running).

The PostgreSQL runs use a schema of their own (conftest's ``postgres_db``),
so they cannot touch other tables of the shared ``test`` database or
another test run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from acd.adapters.lookup import LookupBatcher
from acd.adapters.profiles_store import (
    ProfileStore,
    ProfileStoreError,
    UnknownAgentError,
    customers_table,
)
from acd.adapters.storage import Database
from acd.core.model import CallRecord, Outcome
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_csv import parse_customers_csv

FULL_CUSTOMER = CustomerProfile(
    number="+8613800138000", name="欧阳娜娜", vip_level=3, dialect="minnan", language="zh",
    segment="enterprise", tags=frozenset({"vip", "key-account", "投诉"}), gender="F", age=41,
    preferred_gender="F", preferred_age_band="35-44")
FULL_AGENT = AgentProfile(
    agent_id="a1001", extension="1001", name="林美玲", skills={"billing": 8, "vip": 7},
    dialects={"minnan": 10, "mandarin": 9}, languages=frozenset({"zh", "en"}), gender="F",
    age_band="35-44", groups=frozenset({"xiamen", "senior"}), vip_qualified=True)


@pytest.fixture(params=["db", "postgres_db"], ids=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> ProfileStore:
    """On conftest's SQLite ``db``, then on its ``postgres_db`` (skipped,
    saying why, when no server answers)."""
    db = request.getfixturevalue(request.param)
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
    # stored in its one form
    assert await store.get_customer("13900000000") == \
        dataclasses.replace(newcomer, number="+8613900000000")
    with pytest.raises(ProfileStoreError, match="unknown customers fields: colour"):
        await store.upsert_customers([change], fields={"number", "colour"})


def _fields(c: CustomerProfile) -> dict[str, Any]:
    return {f.name: getattr(c, f.name) for f in dataclasses.fields(CustomerProfile)}


async def test_customers_by_number_in_chunks_leaves_out_unknowns(store: ProfileStore) -> None:
    await store.upsert_customers([customer(i) for i in range(9)])
    wanted = [customer(i).number for i in range(0, 12)] + ["999"]
    got = await store.customers_by_number(wanted)
    assert sorted(got) == sorted(customer(i).number for i in range(9))
    assert all(got[n].number == "+86" + n for n in got)  # keyed as asked, stored +86...
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
    assert "customer '+8613800000002': name is 200 characters long (at most 128)" \
        in str(exc.value)
    assert "dialect 'MinNan' should be written 'minnan'" in str(exc.value)
    assert await store.get_customer(customer(1).number) is None


# ------------------------------------------- one identity per phone number


@pytest.fixture
def sqlite_store(db: Database) -> ProfileStore:
    return ProfileStore(db)


def answered(call_id: str, caller: str, agent_id: str, ended: float) -> CallRecord:
    return CallRecord(call_id, caller, "", ended - 100, ended, Outcome.ANSWERED, (), "vip",
                      ended - 90, 10.0, agent_id, ended - 80, 80.0, 1, "pbx1")


async def test_a_customer_imported_as_plus86_is_found_from_every_form(
        sqlite_store: ProfileStore) -> None:
    """Issue 11: the customers file says +8613800138000 (VIP 3); calls come from
    13800138000 and 008613800138000.  The engine's lookup (the batcher over
    ``callers_context``, as ``Engine`` wires it) finds the customer for both."""
    store = sqlite_store
    parsed = parse_customers_csv("number,name,vip_level\n+8613800138000,林先生,3\n")
    await store.upsert_customers(parsed.profiles, fields=parsed.rows[0].fields)
    await store.db.write_batch([answered("old", "13800138000", "a1", 1000.0)], [])
    lookups = LookupBatcher(store.callers_context)
    lookups.start()
    try:
        for caller in ("13800138000", "008613800138000", "+86 138 0013 8000"):
            attrs = await lookups.attributes(caller)
            assert attrs["vip_level"] == "3" and attrs["name"] == "林先生", caller
            assert attrs["number"] == "+8613800138000"
            assert attrs["last_agent"] == "a1", caller  # the call record of another form
        assert await lookups.attributes("13900000000") == {}
        assert await lookups.attributes("") == {}
    finally:
        await lookups.stop()


async def test_rows_written_before_normalising_are_still_found(
        sqlite_store: ProfileStore) -> None:
    store = sqlite_store
    now = dt.datetime.now(dt.UTC)
    async with store.db.engine.begin() as conn:  # as an older version stored them
        await conn.execute(customers_table.insert(), [
            {"number": "13900000001", "name": "旧", "vip_level": 1, "updated_at": now},
            {"number": "8613900000002", "name": "旧二", "vip_level": 2, "updated_at": now}])
    got = await store.get_customer("+8613900000001")
    assert got is not None and got.name == "旧" and got.number == "13900000001"
    assert (await store.callers_context(["0086 139 0000 0002"]))["0086 139 0000 0002"][0] \
        == CustomerProfile("8613900000002", name="旧二", vip_level=2)
    assert await store.customer_updated_at("+8613900000001") is not None
    # a new import writes the one form; the reads prefer it to the old row
    await store.upsert_customers([CustomerProfile("13900000001", name="新", vip_level=3)])
    got = await store.get_customer("13900000001")
    assert got is not None and (got.number, got.name) == ("+8613900000001", "新")


async def test_the_last_agent_is_the_latest_answered_call_in_any_form(
        sqlite_store: ProfileStore) -> None:
    store = sqlite_store
    await store.db.write_batch([
        answered("c1", "13800138000", "a1", 1000.0),
        answered("c2", "+8613800138000", "a2", 2000.0),
        answered("c3", "8613800138000", "a3", 1500.0),
        answered("c4", "13900000000", "a4", 3000.0)], [])
    ctx = await store.callers_context(["008613800138000", "13900000000", "1001"])
    assert ctx == {"008613800138000": (None, "a2"), "13900000000": (None, "a4"),
                   "1001": (None, None)}
    assert await store.caller_context("13800138000") == (None, "a2")


async def test_a_mobile_behind_the_trunk_0_keeps_its_last_agent(
        sqlite_store: ProfileStore) -> None:
    """Some PBXs give a mobile's caller id with the trunk 0: call records keep
    it as it came (013800138000), and every form of the number finds it."""
    store = sqlite_store
    await store.db.write_batch([answered("c1", "013800138000", "a7", 1000.0)], [])
    for caller in ("013800138000", "13800138000", "+8613800138000", "008613800138000"):
        assert await store.caller_context(caller) == (None, "a7"), caller
    now = dt.datetime.now(dt.UTC)
    async with store.db.engine.begin() as conn:  # a customer as an older version stored it
        await conn.execute(customers_table.insert(), [
            {"number": "013900000001", "name": "旧", "vip_level": 2, "updated_at": now}])
    got = await store.get_customer("+8613900000001")
    assert got is not None and got.vip_level == 2
    lookups = LookupBatcher(store.callers_context)
    lookups.start()
    try:
        assert (await lookups.attributes("13800138000"))["last_agent"] == "a7"
    finally:
        await lookups.stop()


async def test_an_old_row_is_never_found_under_another_number(
        sqlite_store: ProfileStore) -> None:
    """16502530000 is how an older version stored the Chinese mobile
    +8616502530000: it is not the US caller +1 650 253 0000, in either direction."""
    store = sqlite_store
    now = dt.datetime.now(dt.UTC)
    async with store.db.engine.begin() as conn:
        await conn.execute(customers_table.insert(), [
            {"number": "16502530000", "name": "旧", "vip_level": 3, "updated_at": now},
            {"number": "0016502530001", "name": "US", "vip_level": 1, "updated_at": now}])
    await store.db.write_batch([answered("c1", "16502530000", "a1", 1000.0),
                                answered("c2", "+16502530000", "a2", 900.0)], [])
    assert await store.get_customer("+16502530000") is None
    assert await store.customer_updated_at("+16502530000") is None
    assert await store.caller_context("+16502530000") == (None, "a2")
    assert await store.caller_context("0016502530000") == (None, "a2")
    got = await store.get_customer("+8616502530000")
    assert got is not None and got.vip_level == 3
    assert (await store.caller_context("16502530000"))[1] == "a1"
    # an old row in a form that reads as the number is found
    got = await store.get_customer("+1 650 253 0001")
    assert got is not None and got.name == "US"
    # a configured country without national forms: 16502530000 is no one's form
    elsewhere = ProfileStore(store.db, country="44")
    assert await elsewhere.get_customer("+8616502530000") is None
    assert await elsewhere.get_customer("16502530000") is not None  # as written


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
