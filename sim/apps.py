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
``ast_request`` does.  Once the phone answers, as dial_exec_full does:
``DIALSTATUS=ANSWER``, the ``U(context^arg1^...)`` routine on the agent's
leg (``Gosub(context,s,1(args))``, the caller still on music), ``DialEnd
ANSWER``, ``MusicOnHoldStop``, the bridge; ``Return()`` (app_stack.c) ends
the routine.  With ``SimConfig.full_event_volume``, also what app_dial and
the bridge set as in answered.txt: ``DIALEDPEERNUMBER`` ... ``PROGRESSTIME_MS``
cleared as the Dial starts, the leg's ``DIALEDPEERNUMBER``, ``NewCallerid``
and ``NewConnectedLine``, ``DIALEDPEERNAME``/``DIALEDPEERNUMBER`` at the
answer, ``BRIDGEPEER`` on both legs (cleared as each leaves), and
``ANSWEREDTIME``, ``DIALEDTIME`` (and ``_MS``) and ``DIALSTATUS`` after the
bridge.

``Dial(PJSIP/<number>@<trunk>)`` (acd-transfer) calls an outside party
through the trunk: the leg ``PJSIP/<trunk>-XXXXXXXX`` (context
``from-trunk``, exten ``s``, as chan_pjsip names an outbound channel to an
endpoint whose ``context`` is that) gets the same events as an agent leg
(``DialBegin`` with ``DialString: <number>@<trunk>``, ``DialState
RINGING``, ``DialEnd ANSWER``, the bridge, ``Hangup``) but no
``DeviceStateChange``; it answers after ``SimConfig.transfer_answer_s`` and
hangs up after ``transfer_talk_s`` unless the caller does first.  A trunk
other than ``SimConfig.trunk`` does not exist: CHANUNAVAIL.

``Goto([[context,]exten,]priority)`` and ``GotoIf(cond?[a][:b])``
(pbx_builtins.c): a number, ``+n``/``-n`` or a label of the target
extension; ``n - 1`` is stored (the PBX loop adds one); a bad priority
returns -1 (the channel hangs up).  ``GotoIf``'s condition is false when
empty or a leading integer 0, true otherwise (pbx_checkcondition).
``Set(name=value)`` gets its value with ``$[...]`` already evaluated (the
runner substitutes the whole argument first, as pbx_extension_helper does).
``MusicOnHold(class,duration)`` plays whole seconds (sscanf ``%d``), forever
without one.

``ExecIf(cond?app(args)[:app(args)])`` (apps/app_exec.c ``execif_exec``)
runs the application of the outcome (none for a false condition without
one); an unknown application is -1.  ``MixMonitor(file[,options])``
(apps/app_mixmonitor.c ``mixmonitor_exec``) starts recording the channel
as the AMI action does (:mod:`sim.mixmonitor`: ``MIXMONITOR_FILENAME``,
``MixMonitorStart``, the WAV written into ``SimConfig.monitor_dir`` when
the channel hangs up; with ``b``, the time it was bridged); no file (and
no ``r()``/``t()``) is -1 with a warning.  ``[acd-answered]`` runs it on
the agent's channel inside Dial's ``U()``, before the bridge.

``VoiceMail(<mailbox>[@context][,options])``: answers if needed, plays the
greeting (``voicemail_greeting_s``) with option ``u`` or ``b`` (the
mailbox's "unavailable"/"busy" message: "The person at extension ... is
unavailable", then the instructions unless ``s``; app_voicemail.c
leave_voicemail), the beep, then records until the caller
presses ``#`` (it types its next ``keys`` entry: an input prompt), hangs up,
or ``voicemail_max_s`` passes; ``VMSTATUS=SUCCESS``; returns -1 after a
hang-up, else 0.  Each message is kept in :attr:`Apps.voicemails`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sim.agi_client import AgiHost, AgiSession, Played, log_missing_file
from sim.channels import STATE_DOWN, STATE_RINGING, STATE_UP, Bridge, Channel, ChannelInterrupted
from sim.config import Recording, VoicemailMessage
from sim.dialplan import release_frame
from sim.mixmonitor import Monitors
from sim.phones import Phone, PhoneBank
from sim.util import atof, atoi, parse_app_options, scan_int, separate_args

log = logging.getLogger(__name__)

App = Callable[[Channel, str], Awaitable[int]]

#: the ``context =`` of the trunk endpoint (asterisk_conf/README.md's example),
#: which chan_pjsip gives the outbound channels it creates towards it.
TRUNK_CONTEXT = "from-trunk"

#: what app_dial clears on the caller as a Dial starts, after DIALSTATUS
#: (answered.txt; ``SimConfig.full_event_volume``)
DIAL_CLEARED = ("DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
                "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME",
                "PROGRESSTIME_MS")


def _whole_int(text: str) -> int | None:
    """pbx_parse_location's ``sscanf(pri, "%30d%1s") == 1``: an integer with
    nothing after it (``1x`` is a label)."""
    value = scan_int(text)
    if value is None or text.strip().lstrip("+-").strip("0123456789"):
        return None
    return value


def _check_condition(condition: str) -> bool:
    """pbx_checkcondition: empty is false, a leading integer decides, any
    other string is true."""
    if not condition:
        return False
    number = scan_int(condition)
    return bool(number) if number is not None else True


def _dial_status_for(cause: int) -> str:
    """DIALSTATUS when the called phone hangs up before answering (app_dial handle_cause)."""
    if cause == 17:
        return "BUSY"
    if cause == 34:
        return "CONGESTION"
    if cause in (16, 19, 0):
        return "NOANSWER"
    return "CHANUNAVAIL"


class AppHost(AgiHost, Protocol):
    """What the applications need of the PBX (see sim.pbx.SimPBX): what a
    FastAGI session needs (``AGI()`` runs one), phones and channel life."""

    @property
    def phones(self) -> PhoneBank: ...

    def new_outbound_channel(self, phone: Phone, linked_to: Channel | None, *,
                             uniqueid: str | None = None, cid_num: str = "",
                             cid_name: str = "") -> Channel: ...
    @property
    def monitors(self) -> Monitors: ...

    def continue_in_dialplan(self, chan: Channel) -> None: ...
    async def run_sub(self, chan: Channel, context: str, exten: str, priority: int,
                      args: list[str]) -> int: ...
    def remote_hangup(self, chan: Channel, cause: int) -> None: ...
    def request_hangup(self, chan: Channel, cause: int) -> None: ...
    def destroy(self, chan: Channel, cause: int, *, release_phone: bool = True) -> None: ...


class Apps:
    """The applications the fixed dialplan (and AGI EXEC) may run."""

    def __init__(self, pbx: AppHost) -> None:
        self._pbx = pbx
        self._apps: dict[str, App] = {
            "answer": self.answer,
            "hangup": self.hangup,
            "wait": self.wait,
            "musiconhold": self.music_on_hold,
            "playback": self.playback,
            "set": self.set,
            "goto": self.goto,
            "gotoif": self.goto_if,
            "noop": self.noop,
            "ringing": self.noop,
            "progress": self.noop,
            "dial": self.dial,
            "agi": self.agi,
            "voicemail": self.voicemail,
            "return": self.return_,
            "execif": self.exec_if,
            "mixmonitor": self.mix_monitor,
        }
        #: files written by AGI RECORD FILE, in order.
        self.recordings: list[Recording] = []
        #: sound files that began to play (STREAM FILE, GET DATA, Playback), in order.
        self.played: list[Played] = []
        #: messages left with VoiceMail(), in order.
        self.voicemails: list[VoicemailMessage] = []

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

    async def goto(self, chan: Channel, data: str) -> int:
        """``Goto([[context,]exten,]priority)`` (pbx_parseable_goto): the
        priority is a number, ``+n``/``-n`` (relative) or a label of the
        target extension; 0 on success (the target's priority - 1 is stored,
        as ast_explicit_goto does inside the PBX loop), -1 for a bad one."""
        if not data:
            log.warning("%s: Goto requires an argument ([[context,]extension,]priority)",
                        chan.name)
            return -1
        parts = data.split(",", 2)
        context = parts[0] if len(parts) == 3 else ""
        exten = parts[-2] if len(parts) >= 2 else ""
        pri = parts[-1]
        mode = 0
        if pri[:1] in ("+", "-"):
            mode = 1 if pri[0] == "+" else -1
            pri = pri[1:]
        number = _whole_int(pri)
        if number is None:
            number = self._pbx.dialplan.find_label(context or chan.context, exten or chan.exten,
                                                   pri)
            if number < 1:
                log.warning("%s: Priority '%s' must be a number > 0, or valid label",
                            chan.name, pri)
                return -1
            mode = 0
        if mode:
            number = chan.priority + number * mode
        if chan.redirect_to is not None:  # an AMI Redirect is pending: it wins
            return 0
        if context:
            chan.context = context
        if exten:
            chan.exten = exten
        if number > -1:
            chan.priority = number - 1  # AST_FLAG_IN_AUTOLOOP: the loop adds one
        return 0

    async def goto_if(self, chan: Channel, data: str) -> int:
        """``GotoIf(condition?[label1][:label2])`` (pbx_builtin_gotoif): a
        condition that is empty or reads as integer 0 is false, any other
        number or string true; no branch for the outcome: on to the next."""
        if not data:
            log.warning("%s: GotoIf: ignoring, since there is no variable to check", chan.name)
            return 0
        condition, _, branches = data.partition("?")
        branch1, _, branch2 = branches.partition(":")
        branch = branch1 if _check_condition(condition) else branch2
        if not branch:
            return 0
        return await self.goto(chan, branch)

    async def return_(self, chan: Channel, data: str) -> int:
        """``Return([value])`` (apps/app_stack.c ``return_exec``): back to the
        innermost Gosub's return address (its priority - 1: the loop adds
        one), its ``ARGn`` gone, ``GOSUB_RETVAL`` = ``value``; -1 when that
        frame ends a routine run from C (Dial's ``U()``), which stops the
        routine's loop; -1 with an error when there is no Gosub."""
        if not chan.gosub:
            log.error("%s: Return without Gosub: stack is empty", chan.name)
            return -1
        frame = chan.gosub.pop()
        chan.context, chan.exten = frame.context, frame.exten
        chan.priority = frame.priority - 1  # AST_FLAG_IN_AUTOLOOP
        release_frame(self._pbx.events, chan, frame)
        self._pbx.set_var(chan, "GOSUB_RETVAL", data)
        return -1 if frame.is_special else 0

    async def exec_if(self, chan: Channel, data: str) -> int:
        """``ExecIf(expr?app(args)[:app(args)])`` (app_exec.c
        ``execif_exec``, the current syntax): the condition as
        pbx_checkcondition reads it; the application named before ``(``,
        its data up to the last ``)``."""
        first_comma, first_question = data.find(","), data.find("?")
        if first_question < 0 or 0 <= first_comma < first_question:
            log.warning("%s: ExecIf: deprecated syntax is not simulated: %r", chan.name, data)
            return -1
        parts = separate_args(data, "?", max_args=2)
        if len(parts) < 2 or not parts[1]:
            log.error("Usage: ExecIf(<expr>?<appiftrue>(<args>)[:<appiffalse>(<args)])")
            return -1
        branches = separate_args(parts[1], ":", max_args=2)
        branch = branches[0] if _check_condition(parts[0]) else \
            (branches[1] if len(branches) > 1 else "")
        if not branch:
            return 0
        name, paren, rest = branch.partition("(")
        args = rest[:rest.rfind(")")] if paren and ")" in rest else rest
        if not name or not self.known(name):
            log.warning("Could not find application! (%s)", name)
            return -1
        res = await self.run(chan, name, args)
        return -1 if res is None else res

    async def mix_monitor(self, chan: Channel, data: str) -> int:
        """``MixMonitor(file[,options[,command]])`` (app_mixmonitor.c
        ``mixmonitor_exec``): records ``chan`` (:mod:`sim.mixmonitor`); 0,
        or -1 without a file (nor ``r()``/``t()``)."""
        args = separate_args(data, remove_chars=True)
        file = args[0] if args else ""
        options = args[1] if len(args) > 1 else ""
        monitors = self._pbx.monitors
        if not monitors.can_start(file, options):
            log.warning("MixMonitor requires an argument (filename)")
            return -1
        monitors.start(chan, file, options)
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
                self.played.append(Played(chan.uniqueid, name, chan.language, "Playback"))
                length += cfg.prompt_length(name)
            else:
                # app_playback.c: ast_streamfile fails, "Playback failed" unless
                # hung up, and it goes on with the next file
                log_missing_file(name, streamfile=True)
                if not chan.interrupted:
                    log.warning("Playback failed on %s for %s", chan.name, data)
                ok = False
        self._pbx.set_var(chan, "PLAYBACKSTATUS", "SUCCESS" if ok else "FAILED")
        try:
            await chan.sleep_until(chan.loop.time() + cfg.scaled(length))
        except ChannelInterrupted:
            return -1
        return 0

    async def music_on_hold(self, chan: Channel, data: str) -> int:
        """``MusicOnHold(class,duration)``: MusicOnHoldStart/Stop around the wait.

        play_moh_exec (res_musiconhold.c) reads the duration with sscanf
        ``%d``: whole seconds (``2.5`` is 2); none, 0 or unreadable plays
        until the channel hangs up or is redirected.  It returns 0 when the
        time is up, -1 when interrupted."""
        pbx = self._pbx
        moh_class, _, duration = data.partition(",")
        moh_class = moh_class.strip() or pbx.cfg.default_moh_class
        seconds = scan_int(duration) if duration.strip() else None
        if chan.interrupted:
            return -1
        deadline = (chan.loop.time() + pbx.cfg.scaled(seconds)
                    if seconds is not None and seconds > 0 else None)
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

    async def voicemail(self, chan: Channel, data: str) -> int:
        """``VoiceMail(mailbox[@context][&...][,options])``: the caller leaves a message."""
        pbx = self._pbx
        cfg = pbx.cfg
        mailbox = data.split(",", 1)[0].split("&", 1)[0].strip()
        options = data.partition(",")[2]
        greeting_s = cfg.voicemail_greeting_s if "u" in options or "b" in options else 0.0
        if chan.interrupted:
            return -1
        if chan.state != STATE_UP:  # vm_exec answers (unless option e)
            chan.state = STATE_UP
            pbx.events.newstate(chan)
        loop = chan.loop
        try:  # the "unavailable" greeting (u, b), then the beep
            await chan.sleep_until(loop.time() + cfg.scaled(greeting_s + cfg.beep_s))
        except ChannelInterrupted:
            return -1
        start = loop.time()
        hung_up = False
        chan.listen(True)
        try:
            await chan.wait_digit(start + cfg.scaled(cfg.voicemail_max_s), "#")
        except ChannelInterrupted:
            hung_up = True
        finally:
            chan.unlisten()
        seconds = min(cfg.voicemail_max_s, cfg.unscaled(loop.time() - start))
        self.voicemails.append(VoicemailMessage(chan.uniqueid, mailbox, round(seconds, 3)))
        pbx.set_var(chan, "VMSTATUS", "SUCCESS")
        return -1 if hung_up else 0

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
        parts = separate_args(data, ",", remove_chars=True)  # AST_STANDARD_APP_ARGS
        target = parts[0].split("&")[0] if parts else ""
        ring_s = atof(parts[1]) if len(parts) > 1 and parts[1].strip() else 0.0
        options = parse_app_options(parts[2] if len(parts) > 2 else "")
        moh_class = (options["m"] or pbx.cfg.default_moh_class) if "m" in options else None
        tech, _, ext = target.partition("/")
        if tech.upper() == "PJSIP" and "@" in ext:
            return await self._dial_trunk(chan, ext, ring_s, moh_class)
        phone = pbx.phones.get(ext) if tech.upper() == "PJSIP" else None
        if chan.interrupted:
            return -1
        pbx.set_var(chan, "DIALSTATUS", "")
        full = pbx.cfg.full_event_volume
        dialled_at = chan.loop.time()
        if full:
            for name in DIAL_CLEARED:
                pbx.set_var(chan, name, "")
        if phone is None or not phone.available:
            return self._dial_failed(chan, "CHANUNAVAIL", before_ringing=True)

        leg = pbx.new_outbound_channel(phone, linked_to=chan)
        if full:
            pbx.set_var(leg, "DIALEDPEERNUMBER", ext)
            pbx.events.new_callerid(leg)
            pbx.events.new_connected_line(leg)
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

        status = await self._wait_answer(chan, leg, ring_s)
        if chan.caller is not None:
            chan.caller.on_ring_end(chan)
            chan.caller.record_dial(status)

        if status != "ANSWER":
            if moh_class is not None:
                pbx.events.moh_stop(chan)
            return self._not_answered(chan, leg, status)
        # dial_exec_full after the answer: DIALSTATUS, the U() routine on the
        # agent's leg (the caller still hears music), DialEnd ANSWER, the
        # music stops, the bridge (answered.txt: VarSet DIALSTATUS first).
        pbx.set_var(chan, "DIALSTATUS", "ANSWER")
        answered_at = chan.loop.time()
        if full:
            pbx.set_var(chan, "DIALEDPEERNAME", leg.name)
            pbx.set_var(chan, "DIALEDPEERNUMBER", ext)
        if options.get("U"):
            await self._callee_gosub(leg, options["U"])
        pbx.events.dial_end(chan, leg, "ANSWER")
        if moh_class is not None:
            pbx.events.moh_stop(chan)
        result = await self._bridge(chan, leg, ext)
        if full:  # answered.txt: after the bridge, before the caller hangs up
            now = chan.loop.time()
            for name, since in (("ANSWEREDTIME", answered_at), ("DIALEDTIME", dialled_at)):
                seconds = pbx.cfg.unscaled(now - since)
                pbx.set_var(chan, name, str(int(seconds)))
                pbx.set_var(chan, f"{name}_MS", str(int(seconds * 1000)))
            pbx.set_var(chan, "DIALSTATUS", "ANSWER")
        return result

    async def _callee_gosub(self, leg: Channel, spec: str) -> None:
        """Dial's ``U(context[^arg1[^...]])``: ``^`` becomes ``,``
        (``ast_replace_subargument_delimiter``), the routine starts at
        ``context,s,1`` with the rest as its arguments (``Gosub(context,s,1(
        args))``, split by gosub_exec's ``AST_STANDARD_RAW_ARGS``) and runs on
        the called channel.  Its result is not used unless it sets
        ``GOSUB_RESULT`` (not emulated): a missing context only logs an
        error, the call is bridged all the same."""
        context, sep, rest = spec.replace("^", ",").partition(",")
        args = separate_args(rest) if sep else []
        await self._pbx.run_sub(leg, context, "s", 1, args)

    async def _wait_answer(self, chan: Channel, leg: Channel, ring_s: float) -> str:
        """Ring ``leg`` until it answers, hangs up, the caller leaves or time is up."""
        loop = chan.loop
        deadline = loop.time() + self._pbx.cfg.scaled(ring_s) if ring_s > 0 else None
        while True:
            if chan.interrupted:
                return "CANCEL"
            if leg.hungup:
                return _dial_status_for(leg.hangup_cause)
            if leg.answered:
                return "ANSWER"
            if deadline is not None and loop.time() >= deadline:
                return "NOANSWER"
            await chan.pause(deadline)

    def _not_answered(self, chan: Channel, leg: Channel, status: str) -> int:
        """``DialEnd <status>``, the leg's ``Hangup``, DIALSTATUS; Dial's result."""
        pbx = self._pbx
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

    async def _dial_trunk(self, chan: Channel, resource: str, ring_s: float,
                          moh_class: str | None) -> int:
        """``Dial(PJSIP/<number>@<trunk>)``: an outside party (acd-transfer)."""
        pbx = self._pbx
        cfg = pbx.cfg
        number, _, trunk = resource.partition("@")
        if chan.interrupted:
            return -1
        pbx.set_var(chan, "DIALSTATUS", "")
        if chan.caller is not None:
            chan.caller.on_transfer(chan, number)
        if not number or trunk != cfg.trunk:
            # chan_pjsip: no such endpoint -> the request fails, no channel.
            if chan.caller is not None:
                chan.caller.on_transfer_end(chan)
            return self._dial_failed(chan, "CHANUNAVAIL", before_ringing=True)
        leg = Channel(chan.loop, uniqueid=pbx.channels.new_uniqueid(), linkedid=chan.linkedid,
                      name=pbx.channels.new_name(f"PJSIP/{trunk}"), context=TRUNK_CONTEXT,
                      exten="s", priority=1, state=STATE_DOWN, cid_num=number,
                      cid_name=chan.cid_name)
        leg.owner = chan
        leg.conn_num, leg.conn_name = chan.cid_num, chan.cid_name
        pbx.channels.add(leg)
        pbx.events.newchannel(leg)
        leg.application, leg.app_data = "AppDial", "(Outgoing Line)"
        pbx.events.newexten(leg, leg.application, leg.app_data)
        pbx.events.dial_begin(chan, leg, resource)
        leg.state = STATE_RINGING  # the far end's 180 Ringing
        pbx.events.newstate(leg)
        pbx.events.dial_state(chan, leg, "RINGING")
        if moh_class is not None:
            pbx.events.moh_start(chan, moh_class)
        if cfg.transfer_answer_s is not None:
            leg.call_later(cfg.scaled(cfg.transfer_answer_s), self._far_end_answers, leg)

        status = await self._wait_answer(chan, leg, ring_s)
        if moh_class is not None:
            pbx.events.moh_stop(chan)
        if chan.caller is not None:
            chan.caller.record_dial(status)
        if status != "ANSWER":
            if chan.caller is not None:
                chan.caller.on_transfer_end(chan)
            return self._not_answered(chan, leg, status)
        pbx.events.dial_end(chan, leg, "ANSWER")
        pbx.set_var(chan, "DIALSTATUS", "ANSWER")
        if chan.caller is not None:
            chan.caller.on_transfer_answered(chan)
        leg.call_later(cfg.scaled(cfg.transfer_talk_s), self._far_end_hangs_up, leg)
        return await self._bridge(chan, leg, number, transfer=True)

    def _far_end_answers(self, leg: Channel) -> None:
        if leg.destroyed or leg.hungup or leg.answered:
            return
        leg.answered = True
        leg.state = STATE_UP
        self._pbx.events.newstate(leg)
        leg.poke()

    def _far_end_hangs_up(self, leg: Channel) -> None:
        if not leg.destroyed and not leg.hungup:
            self._pbx.remote_hangup(leg, 16)

    def _dial_failed(self, chan: Channel, status: str, *, before_ringing: bool = False) -> int:
        """Dial did not connect: DIALSTATUS set, on to the next priority."""
        self._pbx.set_var(chan, "DIALSTATUS", status)
        if before_ringing and chan.caller is not None:
            chan.caller.record_dial(status)
        return 0

    async def _bridge(self, chan: Channel, leg: Channel, ext: str, *,
                      transfer: bool = False) -> int:
        """Both legs in a basic bridge until one leaves (answered.txt order).

        ``transfer``: ``leg`` is an outside party, not an agent (the caller is
        not "connected", and its hang-up counts as ``remote``)."""
        pbx = self._pbx
        ev = pbx.events
        bridge = Bridge()
        ev.bridge_create(bridge)
        for party in (leg, chan):
            bridge.channels.append(party)
            party.bridge = bridge
            ev.bridge_enter(bridge, party)
        full = pbx.cfg.full_event_volume
        if full:
            pbx.set_var(leg, "BRIDGEPEER", chan.name)
            pbx.set_var(chan, "BRIDGEPEER", leg.name)
        if chan.caller is not None and not transfer:
            chan.caller.on_connected(chan, ext)
        pbx.phones.start_talk(leg)
        while not (chan.interrupted or leg.hungup or leg.redirect_to is not None):
            await chan.pause(None)

        def leave(party: Channel) -> None:
            if party in bridge.channels:
                bridge.channels.remove(party)
            party.bridge = None
            if full:
                pbx.set_var(party, "BRIDGEPEER", "")
            ev.bridge_leave(bridge, party)

        if leg.hungup or leg.redirect_to is not None:
            # The agent went first: leg leaves, leg is gone, then the caller.
            leave(leg)
            if leg.hungup:
                if chan.caller is not None:
                    chan.caller.note_hangup_by("remote" if transfer else "agent")
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
