"""Batched caller lookups."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from acd.adapters.lookup import Context, LookupBatcher
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
