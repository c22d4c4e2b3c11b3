"""Batched caller lookups."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from acd.adapters.lookup import Context, LookupBatcher
from acd.adapters.storage import Database
from acd.core.profiles import CustomerProfile


async def test_concurrent_lookups_share_one_fetch_and_failures_reach_each_waiter() -> None:
    calls: list[list[str]] = []
    fail = False

    async def fetch(numbers: Collection[str]) -> dict[str, Context]:
        calls.append(sorted(numbers))
        if fail:
            raise ConnectionError("database down")
        return {"1": (CustomerProfile("1", vip_level=2), "a7")}

    b = LookupBatcher(fetch, linger_s=0.01)
    b.start()
    try:
        got = await asyncio.gather(b.get("1"), b.get("2"), b.get("1"))
        assert calls == [["1", "2"]]
        assert got[0][0] is not None and got[0][0].vip_level == 2 and got[0][1] == "a7"
        assert got[1] == (None, None) and got[2] == got[0]
        fail = True
        with pytest.raises(ConnectionError):
            await b.get("3")
        fail = False
        assert (await b.get("1"))[1] == "a7"  # the flusher survived the failure
    finally:
        await b.stop()
    assert b.batches == 3


async def test_a_withheld_caller_id_is_no_one_and_is_not_looked_up() -> None:
    """anonymous, unknown, Restricted... are what the network sends for every
    withheld number: they must not share the last agent or profile of
    whichever withheld caller was served last."""
    asked: list[str] = []

    async def fetch(numbers: Collection[str]) -> dict[str, Context]:
        asked.extend(numbers)
        return {n: (CustomerProfile(n, vip_level=3), "a7") for n in numbers}

    b = LookupBatcher(fetch, linger_s=0.001)
    b.start()
    try:
        for caller in ("anonymous", "unknown", "Restricted", "Private", "Unavailable",
                       "", " ", "+", "12"):
            assert await b.attributes(caller) == {}, caller
        assert asked == []
        attrs = await b.attributes("013800138000")  # a number, in any form: looked up
        assert attrs["last_agent"] == "a7" and attrs["vip_level"] == "3"
        assert asked == ["013800138000"]
    finally:
        await b.stop()


async def test_record_writer_skips_a_refused_row_and_keeps_the_rest(db: Database) -> None:
    import time as _time

    from acd.adapters.storage import RecordWriter
    from acd.core.model import CallRecord, Outcome

    w = RecordWriter(db, linger_s=0.01)
    w.start()
    now = _time.time()

    def rec(cid: str) -> CallRecord:
        return CallRecord(cid, "1", "", now, now + 1, Outcome.IVR, (), None, None, None, None,
                          None, None, 0, "pbx1")

    for cid in ("a", "b", "a", "c"):  # the second "a" is refused (duplicate key)
        w.put(rec(cid))
    await w.drain()
    await w.stop()
    ids = sorted(r["call_id"] for r in await db.calls())
    assert ids == ["a", "b", "c"]
    # the same record twice: the database has it already (nothing lost, no dead letter)
    assert (w.written, w.duplicates, w.dead_lettered, w.failed) == (3, 1, 0, 0)
