"""The fixed dialplan the simulator emulates, and the loop that runs it.

Mirrors the project's ``asterisk_conf/extensions.conf`` (names from
:class:`sim.config.SimConfig`)::

    [acd-hotline]
    exten => 10086,1,Answer()
     same => n,Set(ACD_TRIES=0)
     same => n,AGI(${ACD_AGI}/hotline?server=${ACD_SERVER})
     same => n,Goto(acd-recover,s,1)
    [acd-connect]
    exten => _X.,1,Set(ACD_THIS_OFFER=${ACD_OFFER})
     same => n,Dial(PJSIP/${EXTEN},${ACD_RING_TIMEOUT},m(${ACD_MOH})\
U(acd-answered^${ACD_CALL_ID}^${EXTEN}^${ACD_RECORDING}))       (one line in extensions.conf)
     same => n,AGI(${ACD_AGI}/requeue?status=${DIALSTATUS}&offer=${ACD_THIS_OFFER}\
&server=${ACD_SERVER},${ACD_CALL_SECRET})       (one line in extensions.conf)
     same => n,Goto(acd-recover,s,1)
    [acd-answered]
    exten => s,1,Set(DB(acd/answered/${ARG2})=${EPOCH} ${ARG1})
     same => n,ExecIf($["${ARG3}" != ""]?MixMonitor(${ARG3},b))
     same => n,Return()
    [acd-recover]
    exten => s,1,Set(ACD_TRIES=$[${ACD_TRIES} + 1])
     same => n,GotoIf($[${ACD_TRIES} > ${ACD_RECOVER_TRIES}]?last,1)
     same => n,Playback(acd/one-moment)
     same => n(again),AGI(${ACD_AGI}/resume?server=${ACD_SERVER},${ACD_CALL_SECRET})
     same => n,AGI(${ACD_AGI_STANDBY}/resume?server=${ACD_SERVER},${ACD_CALL_SECRET})
     same => n,MusicOnHold(${ACD_MOH},${ACD_RECOVER_WAIT})
     same => n,Goto(s,1)
    exten => resume,1,Goto(s,again)
    exten => last,1,Playback(acd/leave-message)
     same => n,VoiceMail(${ACD_VOICEMAIL},s)
     same => n,Hangup()
    [acd-fallback]
    exten => callback,1,AGI(${ACD_AGI}/fallback?kind=${EXTEN}&server=${ACD_SERVER},\
${ACD_CALL_SECRET})       (one line in extensions.conf)
     same => n,Playback(acd/all-busy-call-later)
     same => n,Hangup()
    (likewise sms and message)
    exten => voicemail,1,Playback(acd/leave-message)
     same => n,VoiceMail(${ACD_VOICEMAIL},s)
     same => n,Hangup()
    [acd-transfer]
    exten => _X.,1,Dial(PJSIP/${EXTEN}@${ACD_TRUNK},60)
     same => n,Hangup()

(``?server=`` / ``&server=`` only when ``SimConfig.server_name`` is set;
``,${ACD_CALL_SECRET}``, the call's secret the engine set on the channel,
only when ``SimConfig.call_secret_arg`` is, as it is by default: off, the
dialplan of an older version.)
``[globals]`` (:meth:`Dialplan.global_var`): ``ACD_AGI`` = ``agi_url``,
``ACD_AGI_STANDBY`` = ``agi_standby_url`` (default: ``agi_url``),
``ACD_SERVER``, ``ACD_RING_TIMEOUT``, ``ACD_MOH``, ``ACD_VOICEMAIL``
(``10086@default``), ``ACD_RECOVER_TRIES`` (``recover_tries``, 10),
``ACD_RECOVER_WAIT`` (``recover_wait_s``, 3), ``ACD_TRUNK`` (``trunk``).  As
``pbx_builtin_getvar_helper`` reads them, a channel variable of the same
name hides the global, and so does a global set over AMI (``Setvar`` without
``Channel``).  ``$[...]`` is evaluated by :mod:`sim.expr`.

How the PBX loop runs it (``__ast_pbx_run``, main/pbx.c): an application
returning 0 goes on at priority + 1; one returning non-zero ends the
dialplan (the channel hangs up) unless an AMI Redirect is pending
(``AST_SOFTHANGUP_ASYNCGOTO``: it goes on at the redirect target); running
past the last priority ends it too.  ``Goto``/``GotoIf`` and AGI ``SET
PRIORITY`` store ``n - 1`` (``ast_explicit_goto`` with
``AST_FLAG_IN_AUTOLOOP``), so priority ``n`` runs next; a label
(``Goto(s,again)``) is looked up in the target extension
(``pbx_parse_location`` -> ``ast_findlabel_extension``).

So when ``AGI()`` returns - the engine closed the session without moving the
caller, it was killed (Asterisk notices only once the running command, e.g.
``EXEC MusicOnHold``, returns), or the connection was refused
(``AGISTATUS=FAILURE``) - the caller goes to ``acd-recover``: each round
plays ``acd/one-moment``, tries the primary engine and the standby, plays
``ACD_RECOVER_WAIT`` seconds of music; after ``ACD_RECOVER_TRIES`` rounds
(``ACD_TRIES`` counts them; an engine that takes the call back sets it to 0)
the caller leaves a voicemail.

The engine sends a caller to ``acd-transfer`` from inside its AGI with
``SET CONTEXT`` / ``SET EXTENSION`` / ``SET PRIORITY 1`` and then closes the
socket: the dialplan goes on at the channel's context/exten and priority + 1
after ``AGI()`` returns 0, and ``SET PRIORITY n`` stores ``n - 1``, so
priority ``n`` runs next.

Dial's ``U(acd-answered^<call id>^<ext>^<recording>)`` (apps/app_dial.c):
once the agent answers, and before ``DialEnd ANSWER`` and the bridge, the
agent's channel runs ``acd-answered,s,1`` as a Gosub
(:meth:`DialplanRunner.run_sub`, apps/app_stack.c ``gosub_run``) with
``${ARG1}`` = the call id, ``${ARG2}`` = the extension and ``${ARG3}`` =
the file the engine set in ``ACD_RECORDING`` for this offer (empty: not
recorded), while the caller keeps its music; ``ExecIf`` starts
``MixMonitor(<file>,b)`` on the agent's channel when there is a file
(recorded while bridged: both parties; :mod:`sim.mixmonitor`);
``Return()`` ends it.  So AstDB (:mod:`sim.astdb`) keeps ``/acd/answered/<ext>`` =
``"<epoch> <call id>"`` for the last call each agent answered; AMI ``DBGet``
reads it.  A ``U()`` context that does not exist only logs an error: the
call is bridged all the same (no marker).

Any other context (an Originate into ``from-internal``, say) behaves as
``exten => _.,1,Wait(86400)``: the channel waits until hung up or
redirected.  Each step publishes ``Newexten`` (``Extension``,
``Application``, ``AppData`` with the variables substituted) as in
answered.txt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sim.channels import Channel, GosubFrame
from sim.config import SimConfig
from sim.events import Events

log = logging.getLogger(__name__)

Step = tuple[str, str]


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """An Asterisk extension pattern (``_X.``, ``_1NXX``, ``_[1-3]!``) as a regex."""
    if not pattern.startswith("_"):
        return re.compile(re.escape(pattern) + r"\Z")
    out: list[str] = []
    body = pattern[1:]
    i = 0
    while i < len(body):
        c = body[i].upper()
        if c == "X":
            out.append("[0-9]")
        elif c == "Z":
            out.append("[1-9]")
        elif c == "N":
            out.append("[2-9]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            end = body.index("]", i)
            out.append("[" + body[i + 1:end] + "]")
            i = end
        else:
            out.append(re.escape(body[i]))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class Extension:
    """One extension's priorities (1-based) and its priority labels (``n(again)``)."""

    steps: tuple[Step, ...]
    labels: Mapping[str, int]


def extension(*lines: Step | tuple[str, str, str]) -> Extension:
    """Priorities 1, 2, ... in order; a 3-tuple ``(app, data, label)`` labels its
    priority, as ``same => n(label),App(data)`` does."""
    steps: list[Step] = []
    labels: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        steps.append((line[0], line[1]))
        if len(line) == 3:
            labels[line[2]] = number
    return Extension(tuple(steps), labels)


PARKED = extension(("Wait", "86400"))


class Dialplan:
    """Context -> extension patterns -> priorities, and the ``[globals]``."""

    def __init__(self, cfg: SimConfig) -> None:
        self._cfg = cfg
        server = "server=${ACD_SERVER}" if cfg.server_name is not None else ""
        hotline_url = f"${{ACD_AGI}}/{cfg.hotline_script}" + (f"?{server}" if server else "")
        requeue_url = (f"${{ACD_AGI}}/{cfg.requeue_script}?status=${{DIALSTATUS}}"
                       "&offer=${ACD_THIS_OFFER}"
                       + (f"&{server}" if server else ""))
        resume_query = f"?{server}" if server else ""
        secret = ",${ACD_CALL_SECRET}" if cfg.call_secret_arg else ""
        requeue_url += secret
        recover = cfg.recover_context
        hotline = extension(
            ("Answer", ""),
            ("Set", "ACD_TRIES=0"),
            ("AGI", hotline_url),
            ("Goto", f"{recover},s,1"),
        )
        connect = extension(
            ("Set", "ACD_THIS_OFFER=${ACD_OFFER}"),
            ("Dial", "PJSIP/${EXTEN},${ACD_RING_TIMEOUT},m(${ACD_MOH})"
                     f"U({cfg.answered_context}^${{ACD_CALL_ID}}^${{EXTEN}}^${{ACD_RECORDING}})"),
            ("AGI", requeue_url),
            ("Goto", f"{recover},s,1"),
        )
        answered = extension(
            ("Set", "DB(acd/answered/${ARG2})=${EPOCH} ${ARG1}"),
            ("ExecIf", '$["${ARG3}" != ""]?MixMonitor(${ARG3},b)'),
            ("Return", ""),
        )
        recover_s = extension(
            ("Set", "ACD_TRIES=$[${ACD_TRIES} + 1]"),
            ("GotoIf", "$[${ACD_TRIES} > ${ACD_RECOVER_TRIES}]?last,1"),
            ("Playback", "acd/one-moment"),
            ("AGI", f"${{ACD_AGI}}/{cfg.resume_script}{resume_query}{secret}", "again"),
            ("AGI", f"${{ACD_AGI_STANDBY}}/{cfg.resume_script}{resume_query}{secret}"),
            ("MusicOnHold", "${ACD_MOH},${ACD_RECOVER_WAIT}"),
            ("Goto", "s,1"),
        )
        resume = extension(("Goto", "s,again"))
        voicemail = extension(("Playback", "acd/leave-message"),
                              ("VoiceMail", "${ACD_VOICEMAIL},s"), ("Hangup", ""))
        fallback_url = "${ACD_AGI}/fallback?kind=${EXTEN}" + (f"&{server}" if server else "") \
            + secret
        fallback = extension(("AGI", fallback_url), ("Playback", "acd/all-busy-call-later"),
                             ("Hangup", ""))
        transfer = extension(("Dial", "PJSIP/${EXTEN}@${ACD_TRUNK},60"), ("Hangup", ""))
        self._contexts: dict[str, list[tuple[re.Pattern[str], Extension]]] = {
            cfg.hotline_context: [(pattern_regex(e), hotline) for e in cfg.hotline_extens],
            cfg.connect_context: [(pattern_regex("_X."), connect)],
            cfg.answered_context: [(pattern_regex("s"), answered)],
            recover: [(pattern_regex("s"), recover_s), (pattern_regex("resume"), resume),
                      (pattern_regex("last"), voicemail)],
            cfg.fallback_context: [(pattern_regex(k), fallback)
                                   for k in ("callback", "sms", "message")]
            + [(pattern_regex("voicemail"), voicemail)],
            cfg.transfer_context: [(pattern_regex("_X."), transfer)],
        }

    def global_var(self, name: str) -> str | None:
        """``[globals]`` of extensions.conf, read from the configuration now
        (a test may point ``agi_url`` elsewhere after start)."""
        cfg = self._cfg
        if name == "ACD_AGI":
            return cfg.agi_url
        if name == "ACD_AGI_STANDBY":
            return cfg.agi_standby_url if cfg.agi_standby_url is not None else cfg.agi_url
        if name == "ACD_SERVER":
            return cfg.server_name or ""
        if name == "ACD_RING_TIMEOUT":
            return _fmt_seconds(cfg.default_ring_timeout_s)
        if name == "ACD_MOH":
            return cfg.default_moh_class
        if name == "ACD_VOICEMAIL":
            return "10086@default"
        if name == "ACD_RECOVER_TRIES":
            return str(cfg.recover_tries)
        if name == "ACD_RECOVER_WAIT":
            return str(cfg.recover_wait_s)
        if name == "ACD_TRUNK":
            return cfg.trunk
        return None

    def find(self, context: str, exten: str) -> Extension | None:
        """The extension ``exten`` matches in ``context``; any context the
        project does not define parks the channel (``Wait(86400)``)."""
        entries = self._contexts.get(context)
        if entries is None:
            return PARKED
        for regex, ext in entries:
            if regex.match(exten):
                return ext
        return None

    def lookup(self, context: str, exten: str) -> list[Step] | None:
        ext = self.find(context, exten)
        return None if ext is None else list(ext.steps)

    def defines(self, context: str) -> bool:
        return context in self._contexts

    def exists(self, context: str, exten: str, priority: int) -> bool:
        """``ast_exists_extension``: is there such a priority?  (Unlike
        :meth:`find`, a context the dialplan lacks has none.)"""
        if not self.defines(context):
            return False
        ext = self.find(context, exten)
        return ext is not None and 1 <= priority <= len(ext.steps)

    def remove_context(self, context: str) -> None:
        """Drop a context, as if extensions.conf lacked it (a test of a
        dialplan merged in part: ``Dial(...U(acd-answered^...))`` without
        ``[acd-answered]``)."""
        self._contexts.pop(context, None)

    def find_label(self, context: str, exten: str, label: str) -> int:
        """``ast_findlabel_extension``: the priority labelled ``label``, -1 if none."""
        ext = self.find(context, exten)
        if ext is None:
            return -1
        return ext.labels.get(label, -1)


class AppRunner(Protocol):
    """The applications a dialplan step runs (see sim.apps.Apps)."""

    async def run(self, chan: Channel, app: str, data: str) -> int | None: ...


class DialplanHost(Protocol):
    """What the dialplan runner needs of the PBX (see sim.pbx.SimPBX)."""

    @property
    def events(self) -> Events: ...
    @property
    def apps(self) -> AppRunner: ...

    def read_var(self, chan: Channel, name: str) -> str | None: ...
    def set_var(self, chan: Channel, name: str, value: str) -> None: ...
    def expand(self, chan: Channel, template: str) -> str: ...
    def request_hangup(self, chan: Channel, cause: int) -> None: ...
    def end_of_dialplan(self, chan: Channel) -> None: ...


def push_frame(events: Events, chan: Channel, frame: GosubFrame, args: list[str]) -> None:
    """gosub_exec's ``frame_set_var`` for ``ARG1..ARGn`` and ``ARGC``: each
    is pushed over any variable of that name (``pbx_builtin_pushvar_helper``:
    no VarSet of its own) and published as ``VarSet LOCAL(<name>)``; as many
    ``ARGn`` as the enclosing frame had are set (``""`` past this call's
    arguments), hiding the outer ones."""
    values = [(f"ARG{i + 1}", args[i] if i < len(args) else "")
              for i in range(frame.arguments)]
    values.append(("ARGC", str(len(args))))
    for name, value in values:
        frame.hidden[name] = chan.vars.get(name)
        chan.vars[name] = value
        events.varset(chan, f"LOCAL({name})", value)


def release_frame(events: Events, chan: Channel, frame: GosubFrame) -> None:
    """``gosub_release_frame``: the frame's variables go (newest first),
    uncovering what they hid; each non-empty one gone is a ``VarSet`` with
    an empty value (``pbx_builtin_setvar_helper(chan, name, NULL)``)."""
    for name, hidden in reversed(frame.hidden.items()):
        old = chan.vars.pop(name, None)
        if hidden is not None:
            chan.vars[name] = hidden
        if old:
            events.varset(chan, name, "")


class DialplanRunner:
    """Runs a channel through the dialplan: the body of the channel's task."""

    def __init__(self, pbx: DialplanHost, dialplan: Dialplan) -> None:
        self._pbx = pbx
        self._dialplan = dialplan

    async def run(self, chan: Channel, app: tuple[str, str] | None = None) -> None:
        """From the channel's context/exten/priority (or one application) to hang-up."""
        pbx = self._pbx
        chan.has_pbx = True
        try:
            if app is not None:
                await self._step(chan, app[0], app[1])
                if chan.redirect_to is not None and not chan.hungup:
                    await self._loop(chan)
            else:
                await self._loop(chan)
        except Exception:
            log.exception("%s: dialplan failed", chan.name)
        finally:
            pbx.end_of_dialplan(chan)

    async def _loop(self, chan: Channel) -> None:
        while not chan.hungup:
            if chan.redirect_to is not None:
                chan.context, chan.exten, chan.priority = chan.redirect_to
                chan.redirect_to = None
            ext = self._dialplan.find(chan.context, chan.exten)
            if ext is None or not 1 <= chan.priority <= len(ext.steps):
                if ext is None:
                    log.warning("%s sent to invalid extension %s,%s,%d", chan.name,
                                chan.context, chan.exten, chan.priority)
                return
            app, template = ext.steps[chan.priority - 1]
            res = await self._step(chan, app, self._pbx.expand(chan, template))
            if chan.hungup:
                return
            if chan.redirect_to is not None:
                continue
            if res < 0:
                return
            chan.priority += 1

    async def run_sub(self, chan: Channel, context: str, exten: str, priority: int,
                      args: list[str]) -> int:
        """A Gosub run from C (apps/app_stack.c ``gosub_run``, what Dial's
        ``U()`` calls through ``ast_app_exec_sub``) on ``chan`` (the agent's
        leg): push the return address and ``ARGn``, run ``context,exten,
        priority`` on until an application returns non-zero (``Return()`` of
        this frame returns -1), the channel hangs up or is redirected, or the
        dialplan runs out; then put the channel back where it was.

        0 when the routine ran; -1 when its start does not exist
        (``gosub_exec``: "Gosub attempted to reach non-existent destination",
        nothing pushed, nothing run).  A routine that ended anywhere but its
        ``Return()`` logs "Abnormal ... exit", pops its frames and sets
        ``GOSUB_RETVAL`` to ``""``."""
        saved = (chan.context, chan.exten, chan.priority)
        saved_app = (chan.application, chan.app_data)
        pending, chan.redirect_to = chan.redirect_to, None  # ASYNCGOTO saved and cleared
        try:
            if not self._dialplan.exists(context, exten, priority):
                log.error("%s: Gosub attempted to reach non-existent destination "
                          "'%s,%s,%d' from '%s,%s,%d'", chan.name, context, exten, priority,
                          *saved)
                return -1
            outer = chan.gosub[-1].arguments if chan.gosub else 0
            frame = GosubFrame(saved[0], saved[1], saved[2] + 1,
                               max(outer, len(args)), is_special=True)
            push_frame(self._pbx.events, chan, frame, args)
            chan.gosub.append(frame)
            chan.context, chan.exten, chan.priority = context, exten, priority - 1
            while True:
                if chan.redirect_to is not None:
                    log.error("%s An async goto just messed up our execution location.",
                              chan.name)
                    break
                if chan.hungup:
                    break
                chan.priority += 1
                ext = self._dialplan.find(chan.context, chan.exten)
                if ext is None or not 1 <= chan.priority <= len(ext.steps):
                    break
                app, template = ext.steps[chan.priority - 1]
                if await self._step(chan, app, self._pbx.expand(chan, template)):
                    break
            if (chan.context, chan.exten, chan.priority) != saved:
                log.warning("%s Abnormal 'Gosub(%s,%s,%d)' exit.  Popping routine return "
                            "locations.", chan.name, context, exten, priority)
                while chan.gosub:  # balance_stack: up to and including this frame
                    popped = chan.gosub.pop()
                    release_frame(self._pbx.events, chan, popped)
                    if popped.is_special:
                        break
                self._pbx.set_var(chan, "GOSUB_RETVAL", "")
            return 0
        finally:
            if chan.redirect_to is None:
                chan.context, chan.exten, chan.priority = saved
            if pending is not None:
                chan.redirect_to = pending
            chan.application, chan.app_data = saved_app  # pbx_exec restores appl/data

    async def _step(self, chan: Channel, app: str, data: str) -> int:
        chan.application, chan.app_data = app, data
        self._pbx.events.newexten(chan, app, data)
        res = await self._pbx.apps.run(chan, app, data)
        if res is None:  # no such application: Asterisk hangs the channel up
            self._pbx.request_hangup(chan, 16)
            return -1
        return res
