"""Holding a queued caller: music on hold in the caller's FastAGI session,
with the position and expected wait announced at the queue's interval.

The announcements are in the caller's language (the one the IVR left them
in): composed from the pack's number prompts in a language of
``say_composed`` (:mod:`acd.ivr.saying`), else Asterisk's ``SAY NUMBER``.
A prompt that does not play is logged with its name (as in the IVR).

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
from collections.abc import Callable, Collection

from acd.adapters.fastagi import AgiSession
from acd.core.center import ContactCenter
from acd.ivr.prompt_names import (
    EXPECTED_WAIT,
    EXPECTED_WAIT_UNDER_A_MINUTE,
    MINUTES,
    YOU_ARE_CALLER,
)
from acd.ivr.saying import COMPOSED_LANGUAGES
from acd.logs import Limited
from acd.runtime.calls import CallReports, LiveCall
from acd.runtime.ivr_agi import play, say_number

log = logging.getLogger(__name__)

HOLD_CHUNK_S = 120  # MusicOnHold per EXEC: between chunks the hold loop re-checks the call
#: an expected wait under this is announced as "less than a minute" (of the
#: callers told so over the simulated days of tests/test_ewt.py, 0.8-6 %
#: waited over a minute; "about 1 minute" misled every caller answered in
#: seconds, as on the real PBX of issue 14)
UNDER_A_MINUTE_S = 45.0


class Hold:
    """The hold loop and its announcements; reads the core's queue and position."""

    def __init__(self, core: ContactCenter, reports: CallReports, moh_class: str,
                 fallback_wait_s: float,
                 composed: Collection[str] = COMPOSED_LANGUAGES,
                 clock: Callable[[], float] = time.time) -> None:
        """``fallback_wait_s``: how long the socket is kept open for a
        fallback Redirect still on its way; ``composed``: the languages whose
        numbers are said from the pack's prompts (``say_composed``);
        ``clock``: the engine's, for the expected wait at the moment it is said."""
        self.core = core
        self.clock = clock
        self.reports = reports
        self.moh_class = moh_class
        self.fallback_wait_s = fallback_wait_s
        self.composed = composed
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
        """'You are caller number N; expected wait about M minutes' (under
        :data:`UNDER_A_MINUTE_S`: 'less than a minute'), in the caller's
        language (the position alone while no agent serves the queue: the
        core has no wait to promise)."""
        where = self.core.position(call.call_id, self.clock())
        if where is None:
            return
        pos, ewt = where
        # the IVR's language; a call taken over from an earlier process (no
        # run): the channel's when this session began
        language = call.run.language if call.run is not None else session.request.language
        await play(session, (YOU_ARE_CALLER,))
        await say_number(session, pos, language, self.composed)
        if ewt is None:
            return  # no agent serves the queue now: no wait to promise
        if ewt < UNDER_A_MINUTE_S:
            await play(session, (EXPECTED_WAIT_UNDER_A_MINUTE,))
            return
        await play(session, (EXPECTED_WAIT,))
        await say_number(session, max(1, round(ewt / 60)), language, self.composed)
        await play(session, (MINUTES,))
