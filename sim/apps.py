"""Dialplan applications, shared by the dialplan runner and AGI ``EXEC``.

Each returns what the Asterisk application returns: 0 to go on, -1 when the
channel hung up (or must stop).  ``run`` returns None for an application
the simulator does not know (AGI ``EXEC`` then answers ``200 result=-2``).

``Dial`` mirrors answered.txt / cancel.txt for a ``PJSIP/<ext>`` phone:
``Newchannel`` + ``Newexten AppDial`` for the leg, ``DialBegin``, ringing
(``DeviceStateChange RINGING``, ``DialState RINGING``), then either
``DialEnd ANSWER`` + ``BridgeCreate``/``BridgeEnter`` x2 ... ``BridgeLeave``
x2/``BridgeDestroy``, or ``DialEnd NOANSWER|BUSY|CANCEL`` and the leg's
``Hangup``.  Without the ``g`` option a bridged call ends the caller's
dialplan; a failed Dial goes on to the next priority with ``DIALSTATUS``
set.  An unknown or unregistered phone fails the request before any
channel exists (``DIALSTATUS=CHANUNAVAIL``, no Dial events), as
``ast_request`` does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sim.agi_client import AgiSession
from sim.channels import STATE_UP, Bridge, Channel, ChannelInterrupted
from sim.util import atof, atoi

if TYPE_CHECKING:
    from sim.pbx import SimPBX

log = logging.getLogger(__name__)

App = Callable[[Channel, str], Awaitable[int]]

_MOH_OPT = re.compile(r"m(?:\(([^)]*)\))?")


def _dial_status_for(cause: int) -> str:
    """DIALSTATUS when the called phone hangs up before answering (app_dial handle_cause)."""
    if cause == 17:
        return "BUSY"
    if cause == 34:
        return "CONGESTION"
    if cause in (16, 19, 0):
        return "NOANSWER"
    return "CHANUNAVAIL"


class Apps:
    """The applications the fixed dialplan (and AGI EXEC) may run."""

    def __init__(self, pbx: SimPBX) -> None:
        self._pbx = pbx
        self._apps: dict[str, App] = {
            "answer": self.answer,
            "hangup": self.hangup,
            "wait": self.wait,
            "musiconhold": self.music_on_hold,
            "playback": self.playback,
            "set": self.set,
            "noop": self.noop,
            "ringing": self.noop,
            "progress": self.noop,
            "dial": self.dial,
            "agi": self.agi,
        }

    def known(self, app: str) -> bool:
        return app.lower() in self._apps

    async def run(self, chan: Channel, app: str, data: str) -> int | None:
        fn = self._apps.get(app.lower())
        if fn is None:
            log.warning("%s: no application %r", chan.name, app)
            return None
        return await fn(chan, data)

    # ------------------------------------------------------------- simple ones

    async def noop(self, chan: Channel, data: str) -> int:
        return 0

    async def answer(self, chan: Channel, data: str) -> int:
        if chan.hungup:
            return -1
        if chan.state != STATE_UP:
            chan.state = STATE_UP
            self._pbx.events.newstate(chan)
        return 0

    async def hangup(self, chan: Channel, data: str) -> int:
        cause = atoi(data, 16) if data else 16
        self._pbx.request_hangup(chan, cause)
        return -1

    async def set(self, chan: Channel, data: str) -> int:
        name, sep, value = data.partition("=")
        if sep and name:
            self._pbx.set_var(chan, name.strip(), value)
        return 0

    async def wait(self, chan: Channel, data: str) -> int:
        seconds = atof(data)
        try:
            await chan.sleep_until(chan.loop.time() + self._pbx.cfg.scaled(seconds))
        except ChannelInterrupted:
            return -1
        return 0

    async def playback(self, chan: Channel, data: str) -> int:
        cfg = self._pbx.cfg
        files = [f for f in data.split(",", 1)[0].split("&") if f]
        length = 0.0
        ok = True
        for name in files:
            if cfg.file_exists(name):
                length += cfg.prompt_length(name)
            else:
                ok = False
        self._pbx.set_var(chan, "PLAYBACKSTATUS", "SUCCESS" if ok else "FAILED")
        try:
            await chan.sleep_until(chan.loop.time() + cfg.scaled(length))
        except ChannelInterrupted:
            return -1
        return 0

    async def music_on_hold(self, chan: Channel, data: str) -> int:
        """``MusicOnHold(class,duration)``: MusicOnHoldStart/Stop around the wait."""
        pbx = self._pbx
        moh_class, _, duration = data.partition(",")
        moh_class = moh_class.strip() or pbx.cfg.default_moh_class
        seconds = atof(duration) if duration.strip() else 0.0
        if chan.interrupted:
            return -1
        deadline = chan.loop.time() + pbx.cfg.scaled(seconds) if seconds > 0 else None
        pbx.events.moh_start(chan, moh_class)
        if chan.caller is not None:
            chan.caller.on_hold_start(chan)
        try:
            await chan.sleep_until(deadline)
            return 0
        except ChannelInterrupted:
            return -1
        finally:
            pbx.events.moh_stop(chan)
            if chan.caller is not None:
                chan.caller.on_hold_end(chan)

    # --------------------------------------------------------------------- AGI

    async def agi(self, chan: Channel, data: str) -> int:
        """``AGI(url[,args])``: a FastAGI session; on failure the dialplan goes on."""
        url, *args = data.split(",")
        if chan.caller is not None:
            chan.caller.on_agi(url.partition("://")[2].partition("/")[2])
        status = await AgiSession(self._pbx, chan, url, args).run()
        self._pbx.set_var(chan, "AGISTATUS", status)
        if chan.hungup:
            return -1
        return 0

    # -------------------------------------------------------------------- Dial

    async def dial(self, chan: Channel, data: str) -> int:
        pbx = self._pbx
        parts = data.split(",")
        target = parts[0].split("&")[0]
        ring_s = atof(parts[1]) if len(parts) > 1 and parts[1].strip() else 0.0
        options = parts[2] if len(parts) > 2 else ""
        moh = _MOH_OPT.search(options)
        moh_class = (moh.group(1) or pbx.cfg.default_moh_class) if moh else None
        tech, _, ext = target.partition("/")
        phone = pbx.phones.get(ext) if tech.upper() == "PJSIP" else None
        if chan.interrupted:
            return -1
        pbx.set_var(chan, "DIALSTATUS", "")
        if phone is None or not phone.available:
            return self._dial_failed(chan, "CHANUNAVAIL", before_ringing=True)

        leg = pbx.new_outbound_channel(phone, linked_to=chan)
        pbx.events.dial_begin(chan, leg, ext)
        if phone.busy_now():
            pbx.events.dial_end(chan, leg, "BUSY")
            pbx.destroy(leg, 17)
            return self._dial_failed(chan, "BUSY", before_ringing=True)
        pbx.phones.ring(leg, phone)
        pbx.events.dial_state(chan, leg, "RINGING")
        if moh_class is not None:
            pbx.events.moh_start(chan, moh_class)
        if chan.caller is not None:
            chan.caller.on_ringing(chan, ext)

        loop = chan.loop
        deadline = loop.time() + pbx.cfg.scaled(ring_s) if ring_s > 0 else None
        while True:
            if chan.interrupted:
                status = "CANCEL"
                break
            if leg.hungup:
                status = _dial_status_for(leg.hangup_cause)
                break
            if leg.answered:
                status = "ANSWER"
                break
            if deadline is not None and loop.time() >= deadline:
                status = "NOANSWER"
                break
            await chan.pause(deadline)
        if moh_class is not None:
            pbx.events.moh_stop(chan)
        if chan.caller is not None:
            chan.caller.on_ring_end(chan)
            chan.caller.record_dial(status)

        if status != "ANSWER":
            pbx.events.dial_end(chan, leg, status)
            if leg.hungup:
                cause = leg.hangup_cause
            else:
                cause = 19 if status == "NOANSWER" else 16
            pbx.destroy(leg, cause)
            if status == "CANCEL":
                pbx.set_var(chan, "DIALSTATUS", status)
                return -1 if chan.hungup else 0
            return self._dial_failed(chan, status)

        pbx.events.dial_end(chan, leg, "ANSWER")
        pbx.set_var(chan, "DIALSTATUS", "ANSWER")
        return await self._bridge(chan, leg, ext)

    def _dial_failed(self, chan: Channel, status: str, *, before_ringing: bool = False) -> int:
        """Dial did not connect: DIALSTATUS set, on to the next priority."""
        self._pbx.set_var(chan, "DIALSTATUS", status)
        if before_ringing and chan.caller is not None:
            chan.caller.record_dial(status)
        return 0

    async def _bridge(self, chan: Channel, leg: Channel, ext: str) -> int:
        """Both legs in a basic bridge until one leaves (answered.txt order)."""
        pbx = self._pbx
        ev = pbx.events
        bridge = Bridge()
        ev.bridge_create(bridge)
        for party in (leg, chan):
            bridge.channels.append(party)
            party.bridge = bridge
            ev.bridge_enter(bridge, party)
        if chan.caller is not None:
            chan.caller.on_connected(chan, ext)
        pbx.phones.start_talk(leg)
        while not (chan.interrupted or leg.hungup or leg.redirect_to is not None):
            await chan.pause(None)

        def leave(party: Channel) -> None:
            if party in bridge.channels:
                bridge.channels.remove(party)
            party.bridge = None
            ev.bridge_leave(bridge, party)

        if leg.hungup or leg.redirect_to is not None:
            # The agent went first: leg leaves, leg is gone, then the caller.
            leave(leg)
            if leg.hungup:
                if chan.caller is not None:
                    chan.caller.note_hangup_by("agent")
                pbx.destroy(leg, leg.hangup_cause)
            leave(chan)
            ev.bridge_destroy(bridge)
            if not leg.hungup:
                pbx.continue_in_dialplan(leg)
            if chan.redirect_to is not None and not chan.hungup:
                return 0
            pbx.request_hangup(chan, 16)
            return -1
        # The caller went first (hung up or redirected).
        leave(chan)
        leave(leg)
        ev.bridge_destroy(bridge)
        pbx.destroy(leg, 16)
        return -1 if chan.hungup else 0
