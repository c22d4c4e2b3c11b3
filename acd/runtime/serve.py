"""The engine's run loop for ``acd serve``: take the leadership (hot
standby, :mod:`acd.adapters.leader`), start, serve until a signal, a fatal
AMI error or the loss of the leadership, stop.

Of the processes sharing a database, only the leader drives Asterisk; the
others wait in :meth:`Leadership.acquire`.  A leader that loses the
leadership (its lock connection died) stops driving at once, hands its
calls over like a graceful stop, and waits to lead again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from acd.adapters.ami import AmiActionTimeout, AmiConnectError
from acd.adapters.leader import Leadership
from acd.logs import show_private
from acd.prompts.startup import check_at_start
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig

log = logging.getLogger(__name__)

#: a standby that took over but cannot reach Asterisk tries again this often
RETRY_S = 2.0


async def serve(config: EngineConfig, on_up: Callable[[Engine], None] | None = None) -> None:
    """Run the engine while this process leads, until SIGINT/SIGTERM (then
    stop cleanly) or until its AMI supervisor ends with an error (raised
    here: a refused login on a reconnect, say)."""
    show_private(config.show_caller_data)  # callers' numbers and names in the log, or masked
    if config.show_caller_data:
        log.warning("logging: show_caller_data is on: callers' numbers, names and SMS texts "
                    "are logged as they are")
    # every prompt the flow and the engine may play, where Asterisk looks: one warning
    await asyncio.to_thread(check_at_start, config.flow, config.sounds, config.say_composed,
                            config.config_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    leader = Leadership(config.database_url, config.leader_name, poll_s=config.leader_poll_s)
    stopper: asyncio.Task[bool] = asyncio.ensure_future(stop.wait())
    standby = False  # this process has waited for another: it never gives up on Asterisk
    try:
        while not stop.is_set():
            waited = time.monotonic()
            acquiring = asyncio.ensure_future(leader.acquire())
            done, _ = await asyncio.wait([acquiring, stopper],
                                         return_when=asyncio.FIRST_COMPLETED)
            if acquiring not in done:
                acquiring.cancel()
                await asyncio.gather(acquiring, return_exceptions=True)
                return
            acquiring.result()
            waited_s = time.monotonic() - waited
            if waited_s > config.leader_poll_s:
                standby = True
                log.warning("leadership %r taken: this engine drives Asterisk now (it stood by "
                            "for %.1f s)", config.leader_name, waited_s)
            try:
                if not await _lead(config, leader, stopper, on_up):
                    return
            except (AmiConnectError, AmiActionTimeout) as exc:
                if not standby:
                    raise  # the first start: Asterisk cannot be reached, or not answer (exit 4)
                # a standby that took over keeps trying, as the leader did
                log.error("%s; the leadership is given back and taken again in %.0f s", exc,
                          RETRY_S)
                await leader.release()
                await asyncio.wait([stopper], timeout=RETRY_S)
                continue
            log.error("leadership %r lost: stopped driving Asterisk; waiting to lead again",
                      config.leader_name)
    finally:
        stopper.cancel()
        await leader.release()


async def _lead(config: EngineConfig, leader: Leadership, stopper: asyncio.Task[bool],
                on_up: Callable[[Engine], None] | None) -> bool:
    """Drive Asterisk while we lead.  Returns True when the leadership was
    lost (the caller waits to lead again), False on a stop."""
    engine = Engine(config)
    await engine.start()
    gc.collect()
    gc.freeze()  # long-lived state (agents, policy, flows) out of every later GC scan
    if on_up is not None:
        on_up(engine)
    lost: asyncio.Task[Any] = asyncio.ensure_future(leader.lost.wait())
    try:
        watched: list[asyncio.Future[Any]] = [stopper, lost]
        if engine.supervisor is not None:
            watched.append(engine.supervisor)
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        sup = engine.supervisor
        if sup is not None and sup.done() and not sup.cancelled():
            exc = sup.exception()
            if exc is not None:
                raise exc
        return lost.done() and not stopper.done()
    finally:
        fenced = lost.done()
        lost.cancel()
        await engine.stop(fenced=fenced)
        gc.unfreeze()
