"""Batched caller lookups: the profile and last agent of callers who arrive
within a few milliseconds of each other come back from one database round
trip (two queries), not two queries per call.

``get(number)`` is awaited by the call's own task; one owned flusher task
runs the batches.  A failed batch fails each of its waiters (the engine then
routes without the profile), and never the flusher.

``attributes(number)`` is the engine's caller lookup: the caller's routing
attributes (the customer's profile and ``last_agent``).  The fetch
(``ProfileStore.callers_context``) finds the number in any of its forms: a
call from ``13800138000`` finds the customer stored as ``+8613800138000``.
A caller id that is not a phone number (``anonymous``, ``Restricted``, an
empty one) is not looked up: withheld callers are not one customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from acd.core.numbers import is_number
from acd.core.profiles import CustomerProfile
from acd.logs import Limited, brief

log = logging.getLogger(__name__)

Context = tuple[CustomerProfile | None, str | None]
Fetch = Callable[[Collection[str]], Coroutine[Any, Any, dict[str, Context]]]


class LookupBatcher:
    def __init__(self, fetch: Fetch, linger_s: float = 0.005, max_batch: int = 200) -> None:
        self._fetch = fetch
        self._linger = linger_s
        self._max = max_batch
        self._pending: dict[str, list[asyncio.Future[Context]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        #: a database down fails every batch: one line a minute, with a count
        self.limited = Limited(60.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lookups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.limited.flush(log)
        for futs in self._pending.values():
            for f in futs:
                if not f.done():
                    f.cancel()
        self._pending.clear()

    async def attributes(self, number: str) -> dict[str, str]:
        """The caller's routing attributes: the customer's profile and the
        agent of their latest answered call as ``last_agent``.

        None for an unknown number, and none, without a lookup, for a caller
        id that is not a phone number by :func:`acd.core.numbers.is_number`
        (3-20 digits with an optional leading ``+``, separators aside):
        ``anonymous``, ``unknown``, ``Restricted``, ``Private``, an empty
        one.  Those are what the network sends for a withheld number, so
        they name no one caller, and must not hand one withheld caller the
        profile or the last agent of another."""
        attrs: dict[str, str] = {}
        if not is_number(number):
            return attrs
        customer, last = await self.get(number)
        if customer is not None:
            attrs.update(customer.attributes())
        if last:
            attrs["last_agent"] = last
        return attrs

    async def get(self, number: str) -> Context:
        fut: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(number, []).append(fut)
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._linger)
            self._wake.clear()
            while self._pending:
                numbers = list(self._pending)[: self._max]
                waiters = {n: self._pending.pop(n) for n in numbers}
                self.batches += 1
                try:
                    found = await self._fetch(numbers)
                except Exception as exc:  # handed to every waiter
                    # the type and first line: a database error's next lines
                    # quote the statement's parameters (the batch's numbers)
                    if self.limited.warning(log, "fetch", "caller lookup of %d numbers failed: "
                                            "%s", len(numbers), brief(exc)):
                        log.debug("caller lookup failed", exc_info=exc)
                    for futs in waiters.values():
                        for f in futs:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for n, futs in waiters.items():
                    for f in futs:
                        if not f.done():
                            f.set_result(found.get(n, (None, None)))
