"""Ending tasks at a stop, within a bound.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives as
the awaited result does (CPython gh-86296, fixed in 3.12): the cancelled
task gets the result and carries on.  A task that loops (the AMI link's
Ping watchdog, say) then never ends, and a stop that cancels it once and
waits for it, waits forever.  :func:`cancel_and_wait` cancels again until
the task has ended, and gives up after a bound the caller names.

Cancelling again must not cut short a task's cleanup (``finally: await
writer.wait_closed()``): a task still running after its cancel is either
cleaning up or has swallowed the cancel, and the two look alike when the
swallower did not take the cancel back (``Task.cancelling()`` stays above
zero after 3.11's ``wait_for`` swallows one).  So a task whose cancel was
taken back (``cancelling() == 0``) is cancelled again at the next check
(every :data:`RECANCEL_S`); one with its cancel still pending only once it
has had :data:`CLEANUP_GRACE_S` since its latest cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

log = logging.getLogger(__name__)

#: how often the tasks not ended yet are looked at (and those whose cancel
#: was taken back cancelled again)
RECANCEL_S: Final = 0.1
#: a task with its cancel still pending (cleaning up, or a cancel swallowed
#: without being taken back) is cancelled again this long after its latest cancel
CLEANUP_GRACE_S: Final = 0.5


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]],
                          within: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they have ended, at most ``within``
    seconds, cancelling again those still running (see the module's
    docstring for when).  Returns those still running after ``within`` (the
    caller says so).  A task that ends meanwhile with an exception other
    than the cancel (its cleanup failed) is logged as a warning with its
    name; the exceptions of tasks that had ended before the call are the
    caller's, taken here only so that asyncio does not report them again
    as never retrieved.  Cancelled meanwhile itself, it still sees its tasks
    end (within the same bound), then raises ``CancelledError``: a task
    ending its own subtasks in a ``finally`` leaves none behind."""
    everyone = list(tasks)
    pending = {t for t in everyone if not t.done()}
    waited = list(pending)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, within)
    interrupted: asyncio.CancelledError | None = None
    cancelled_at: dict[asyncio.Task[Any], float] = {}
    while pending:
        now = loop.time()
        for t in pending:
            last = cancelled_at.get(t)
            if last is None or t.cancelling() == 0 or now - last >= CLEANUP_GRACE_S:
                t.cancel()
                cancelled_at[t] = now
        left = deadline - now
        if left <= 0:
            break
        try:
            await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
        except asyncio.CancelledError as exc:
            interrupted = exc
        pending = {t for t in pending if not t.done()}
    for t in everyone:
        if t.done() and not t.cancelled():
            t.exception()
    for t in waited:
        if t.done() and not t.cancelled() and (err := t.exception()) is not None:
            log.warning("task %s failed after its cancel: %s: %s", t.get_name(),
                        type(err).__name__, err, exc_info=err)
    if interrupted is not None:
        raise interrupted
    return pending
