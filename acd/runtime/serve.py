"""The engine's run loop for ``acd serve``: start, serve until a signal or a
fatal AMI error, stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable
from typing import Any

from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig


async def serve(config: EngineConfig, on_up: Callable[[Engine], None] | None = None) -> None:
    """Run the engine until SIGINT/SIGTERM (then stop cleanly) or until its
    AMI supervisor ends with an error (raised here: a refused login on a
    reconnect, say)."""
    engine = Engine(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await engine.start()
    gc.collect()
    gc.freeze()  # long-lived state (agents, policy, flows) out of every later GC scan
    if on_up is not None:
        on_up(engine)
    try:
        stopper: asyncio.Task[bool] = asyncio.ensure_future(stop.wait())
        watched: list[asyncio.Future[Any]] = [stopper]
        if engine.supervisor is not None:
            watched.append(engine.supervisor)
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        sup = engine.supervisor
        if sup is not None and sup.done() and not sup.cancelled():
            exc = sup.exception()
            if exc is not None:
                raise exc
    finally:
        await engine.stop()
