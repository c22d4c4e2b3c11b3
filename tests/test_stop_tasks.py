"""A stop ends its tasks within a bound, even a task that swallowed its cancel.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result, instead of
raising ``CancelledError``, when the cancel and the result arrive in the
same loop iteration (CPython gh-86296).  The AMI link's watchdog pings in a
loop through ``wait_for``: a stop that cancelled it once and waited could
wait forever (tests/test_probes_agi.py's 20k-connection probe: an engine
that did not exit after SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time

import pytest

from acd.adapters.ami import AmiClient, AmiConfig
from acd.adapters.tasks import CLEANUP_GRACE_S, cancel_and_wait
from sim.config import SimConfig
from sim.pbx import SimPBX


async def _pinger(answers: asyncio.Future[str], seen: list[str]) -> None:
    """A watchdog loop: waits for an answer through wait_for, then again."""
    loop = asyncio.get_running_loop()
    while True:
        fut = answers if not answers.done() else loop.create_future()
        seen.append(await asyncio.wait_for(fut, 10))
        await asyncio.sleep(0.01)


async def _cancelled_as_the_answer_comes() -> tuple[asyncio.Task[None], list[str]]:
    loop = asyncio.get_running_loop()
    answers: asyncio.Future[str] = loop.create_future()
    seen: list[str] = []
    task = asyncio.ensure_future(_pinger(answers, seen))
    await asyncio.sleep(0.01)
    answers.set_result("pong")
    task.cancel()  # in the same iteration as the answer
    return task, seen


async def test_a_single_cancel_can_be_lost_and_cancel_and_wait_ends_the_task() -> None:
    task, seen = await _cancelled_as_the_answer_comes()
    done, _ = await asyncio.wait({task}, timeout=0.3)
    if sys.version_info < (3, 12):  # the loss this guards against
        assert not done and seen == ["pong"]
    t0 = time.monotonic()
    assert await cancel_and_wait([task], 2.0) == set()
    assert task.cancelled() and time.monotonic() - t0 < 1.0


async def test_cancelled_itself_it_still_ends_its_tasks_first() -> None:
    inner, _ = await _cancelled_as_the_answer_comes()

    async def owner() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await cancel_and_wait([inner], 2.0)

    outer = asyncio.ensure_future(owner())
    await asyncio.sleep(0.01)
    # cancelled over and over, as a stop does: the inner task ends all the same
    assert await cancel_and_wait([outer], 2.0) == set()
    assert outer.cancelled() and inner.cancelled()


async def test_a_task_that_will_not_end_is_given_up_on_after_the_bound() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    assert await cancel_and_wait([task], 0.3) == {task}
    assert 0.3 <= time.monotonic() - t0 < 1.0
    release.set()
    await cancel_and_wait([task], 1.0)
    assert task.done()


@pytest.mark.slow
async def test_the_ami_watchdog_always_ends_when_the_stop_cancels_it() -> None:
    """The real client against the simulator, pinging every 2 ms, cancelled
    at random moments: every supervisor ends within a second."""
    rng = random.Random(7)
    slowest = 0.0
    async with SimPBX(SimConfig(users={"acd": "s"})) as pbx:
        for _ in range(60):
            client = AmiClient(AmiConfig(port=pbx.ami_port, secret="s", ping_interval=0.002,
                                         ping_timeout=1.0), lambda m: None)
            await client.connect()
            task = asyncio.ensure_future(client.run())
            await asyncio.sleep(rng.uniform(0.01, 0.04))
            t0 = time.monotonic()
            assert await cancel_and_wait([task], 5.0) == set()
            slowest = max(slowest, time.monotonic() - t0)
            await client.close()
    assert slowest < 1.0


async def test_a_cleanup_after_the_cancel_is_not_cut_short() -> None:
    """``finally: await writer.wait_closed()``: cancelled again every
    RECANCEL_S, a cleanup longer than that never finished."""
    cleaned: list[float] = []

    async def closes_slowly() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            t0 = time.monotonic()
            await asyncio.sleep(0.3)  # longer than RECANCEL_S, shorter than the grace
            cleaned.append(time.monotonic() - t0)

    task = asyncio.ensure_future(closes_slowly())
    await asyncio.sleep(0.01)
    assert await cancel_and_wait([task], 2.0) == set()
    assert task.cancelled() and len(cleaned) == 1 and cleaned[0] >= 0.3


async def test_a_cancel_taken_back_is_cancelled_again_at_once() -> None:
    caught = 0

    async def takes_it_back() -> None:
        nonlocal caught
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                caught += 1
                me = asyncio.current_task()
                assert me is not None
                if caught == 1:
                    me.uncancel()  # swallowed, and said so: cancelling() back to 0
                    continue
                raise

    task = asyncio.ensure_future(takes_it_back())
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    assert await cancel_and_wait([task], 2.0) == set()
    # again at the next check, not after the cleanup grace
    assert task.cancelled() and caught == 2 and time.monotonic() - t0 < CLEANUP_GRACE_S


async def test_a_task_failing_after_its_cancel_is_logged_by_name(
        caplog: pytest.LogCaptureFixture) -> None:
    async def fails_in_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            raise OSError("socket gone")

    task = asyncio.ensure_future(fails_in_cleanup())
    task.set_name("session-7")
    earlier = asyncio.ensure_future(fails_in_cleanup())
    await asyncio.sleep(0.01)
    earlier.cancel()
    await asyncio.wait({earlier})  # ended before the call: the caller's to report
    with caplog.at_level(logging.WARNING, logger="acd.adapters.tasks"):
        assert await cancel_and_wait([task, earlier], 1.0) == set()
    assert [r.getMessage() for r in caplog.records] == [
        "task session-7 failed after its cancel: OSError: socket gone"]


async def test_a_cancel_swallowed_without_being_taken_back_is_cancelled_again() -> None:
    """As 3.11's wait_for does: the cancel caught, not taken back
    (``cancelling()`` stays 1), the loop goes on: cancelled again after the
    cleanup grace, and ends well within the bound."""
    caught = 0

    async def swallows_once() -> None:
        nonlocal caught
        while True:
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                caught += 1
                if caught == 1:
                    continue
                raise

    task = asyncio.ensure_future(swallows_once())
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    assert await cancel_and_wait([task], 3.0) == set()
    took = time.monotonic() - t0
    assert task.cancelled() and caught == 2
    assert CLEANUP_GRACE_S <= took < CLEANUP_GRACE_S + 0.5
