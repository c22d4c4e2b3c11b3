"""Holding a queued caller: music on hold in the caller's FastAGI session,
with the position and expected wait announced at the queue's interval.

The caller stays on ``EXEC MusicOnHold`` in chunks (the announcement
interval, else :data:`HOLD_CHUNK_S`); between chunks the loop re-checks the
call.  It ends when the engine moves the caller (to an agent or a fallback:
the running command returns and the socket is closed at once, letting the
channel go on in the dialplan), or when the caller hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from acd.adapters.fastagi import AgiSession
from acd.core.center import ContactCenter
from acd.logs import Limited
from acd.protocols import agi
from acd.runtime.calls import CallReports, LiveCall

log = logging.getLogger(__name__)

HOLD_CHUNK_S = 120  # MusicOnHold per EXEC: between chunks the hold loop re-checks the call


class Hold:
    """The hold loop and its announcements; reads the core's queue and position."""

    def __init__(self, core: ContactCenter, reports: CallReports, moh_class: str,
                 fallback_wait_s: float) -> None:
        """``fallback_wait_s``: how long the socket is kept open for a
        fallback Redirect still on its way."""
        self.core = core
        self.reports = reports
        self.moh_class = moh_class
        self.fallback_wait_s = fallback_wait_s
        #: a class that does not play fails for every caller: one line a minute each
        self.limited = Limited(60.0)

    async def run(self, session: AgiSession, call: LiveCall) -> None:
        """Music on hold until the engine moves the caller (to an agent or a
        fallback) or they hang up; position and expected wait announced at
        the queue's interval."""
        app = "MusicOnHold"
        while True:
            queued = self.core.call(call.call_id)
            if queued is None or queued.queue is None:
                if call.fallback is not None:
                    # keep the socket until the fallback Redirect is out
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(call.fallback_sent.wait(), self.fallback_wait_s)
                return
            every = call.announce_every_s if call.announce_every_s is not None \
                else self.core.queue_policy(queued.queue).announce_every_s
            moh = call.moh or self.moh_class
            chunk = round(every) if every else HOLD_CHUNK_S
            args = f"{moh},{chunk}" if app == "MusicOnHold" else str(chunk)
            t0 = time.monotonic()
            res = await session.exec(app, args, timeout=chunk + 30)
            if call.moved:
                return  # moved: closing the socket lets the channel go on
            if res.failed:
                self.reports.caller_gone(call.call_id, 16, call, session=True)
                return
            if app == "MusicOnHold" and time.monotonic() - t0 < min(1.0, chunk / 2):
                # the class could not start (no files): hold in silence
                # rather than re-issuing MusicOnHold in a tight loop
                self.limited.warning(log, f"moh {moh}", "call %s: MusicOnHold class %r did not "
                                     "play; holding with Wait", call.call_id, moh)
                app = "Wait"
                continue
            if every:
                await self.announce(session, call)
                if call.moved:
                    return

    async def announce(self, session: AgiSession, call: LiveCall) -> None:
        """'You are caller number N; expected wait about M minutes.'"""
        where = self.core.position(call.call_id)
        if where is None:
            return
        pos, ewt = where
        await session.stream_file("acd/you-are-caller")
        await session.command(agi.say_number(pos))
        await session.stream_file("acd/expected-wait")
        await session.command(agi.say_number(max(1, round(ewt / 60))))
        await session.stream_file("acd/minutes")
