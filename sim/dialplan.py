"""The fixed dialplan the simulator emulates, and the loop that runs it.

Mirrors the project's ``asterisk_conf/extensions.conf`` (names from
:class:`sim.config.SimConfig`)::

    [acd-hotline]
    exten => 10086,1,Answer()
     same => n,AGI(${ACD_AGI}/hotline?server=${ACD_SERVER})
     same => n,Hangup()
    [acd-connect]
    exten => _X.,1,Set(ACD_THIS_OFFER=${ACD_OFFER})
     same => n,Dial(PJSIP/${EXTEN},${ACD_RING_TIMEOUT},m(${ACD_MOH}))
     same => n,AGI(${ACD_AGI}/requeue?status=${DIALSTATUS}&offer=${ACD_THIS_OFFER}\
&server=${ACD_SERVER})       (one line in extensions.conf)
     same => n,Hangup()
    [acd-fallback]
    exten => callback,1,AGI(${ACD_AGI}/fallback?kind=${EXTEN}&server=${ACD_SERVER})
     same => n,Hangup()
    (likewise sms and message)
    exten => voicemail,1,VoiceMail(${ACD_VOICEMAIL},u)
     same => n,Hangup()
    [acd-transfer]
    exten => _X.,1,Dial(PJSIP/${EXTEN}@${ACD_TRUNK},60)
     same => n,Hangup()

(``?server=`` / ``&server=`` only when ``SimConfig.server_name`` is set;
``${ACD_TRUNK}`` defaults to ``SimConfig.trunk`` and ``${ACD_VOICEMAIL}``
to ``10086@default``, as in ``[globals]``, unless set on the channel or
as a global.)

The engine sends a caller to ``acd-transfer`` from inside its AGI with
``SET CONTEXT`` / ``SET EXTENSION`` / ``SET PRIORITY 1`` and then closes the
socket: as in ``__ast_pbx_run`` the dialplan goes on at the channel's
context/exten and priority + 1 after ``AGI()`` returns 0, and ``SET
PRIORITY n`` stores ``n - 1`` (``ast_explicit_goto`` inside the PBX's
autoloop), so priority ``n`` runs next.  The dialplan has no priority labels,
so ``SET PRIORITY <label>`` always finds none.

Any other context (an Originate into ``from-internal``, say) behaves as
``exten => _.,1,Wait(86400)``: the channel waits until hung up or
redirected.  Each step publishes ``Newexten`` (``Extension``,
``Application``, ``AppData``) as in answered.txt.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from sim.channels import Channel
from sim.config import SimConfig
from sim.events import Events

log = logging.getLogger(__name__)

Step = tuple[str, str]

PARKED: list[Step] = [("Wait", "86400")]


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


class Dialplan:
    """Context -> extension patterns -> steps."""

    def __init__(self, cfg: SimConfig) -> None:
        server = "server=${ACD_SERVER}" if cfg.server_name is not None else ""
        hotline_url = f"${{ACD_AGI}}/{cfg.hotline_script}" + (f"?{server}" if server else "")
        requeue_url = (f"${{ACD_AGI}}/{cfg.requeue_script}?status=${{DIALSTATUS}}"
                       "&offer=${ACD_THIS_OFFER}"
                       + (f"&{server}" if server else ""))
        hotline: list[Step] = [("Answer", ""), ("AGI", hotline_url), ("Hangup", "")]
        connect: list[Step] = [
            ("Set", "ACD_THIS_OFFER=${ACD_OFFER}"),
            ("Dial", "PJSIP/${EXTEN},${ACD_RING_TIMEOUT},m(${ACD_MOH})"),
            ("AGI", requeue_url),
            ("Hangup", ""),
        ]
        fallback_url = "${ACD_AGI}/fallback?kind=${EXTEN}" + (f"&{server}" if server else "")
        fallback: list[Step] = [("AGI", fallback_url), ("Hangup", "")]
        voicemail: list[Step] = [("VoiceMail", "${ACD_VOICEMAIL},u"), ("Hangup", "")]
        transfer: list[Step] = [("Dial", "PJSIP/${EXTEN}@${ACD_TRUNK},60"), ("Hangup", "")]
        self._contexts: dict[str, list[tuple[re.Pattern[str], list[Step]]]] = {
            cfg.hotline_context: [(pattern_regex(e), hotline) for e in cfg.hotline_extens],
            cfg.connect_context: [(pattern_regex("_X."), connect)],
            cfg.fallback_context: [(pattern_regex(k), fallback)
                                   for k in ("callback", "sms", "message")]
            + [(pattern_regex("voicemail"), voicemail)],
            cfg.transfer_context: [(pattern_regex("_X."), transfer)],
        }
        #: [globals] the simulator fills in when neither the channel nor a
        #: global (AMI Setvar) has a value (ACD_AGI & co. are pbx.expand's).
        self.defaults: dict[str, str] = {
            "ACD_TRUNK": cfg.trunk,
            "ACD_VOICEMAIL": "10086@default",
        }

    def lookup(self, context: str, exten: str) -> list[Step] | None:
        entries = self._contexts.get(context)
        if entries is None:
            return PARKED
        for regex, steps in entries:
            if regex.match(exten):
                return steps
        return None

    def defines(self, context: str) -> bool:
        return context in self._contexts

    def find_label(self, context: str, exten: str, label: str) -> int:
        """``ast_findlabel_extension``: the priority labelled ``label``, -1 if none
        (this dialplan, like extensions.conf, labels no priority)."""
        return -1


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
    def expand(self, chan: Channel, template: str) -> str: ...
    def request_hangup(self, chan: Channel, cause: int) -> None: ...
    def end_of_dialplan(self, chan: Channel) -> None: ...


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
            steps = self._dialplan.lookup(chan.context, chan.exten)
            if steps is None or not 1 <= chan.priority <= len(steps):
                if steps is None:
                    log.warning("%s sent to invalid extension %s,%s,%d", chan.name,
                                chan.context, chan.exten, chan.priority)
                return
            app, template = steps[chan.priority - 1]
            res = await self._step(chan, app, self._expand(chan, template))
            if chan.hungup:
                return
            if chan.redirect_to is not None:
                continue
            if res < 0:
                return
            chan.priority += 1

    def _expand(self, chan: Channel, template: str) -> str:
        pbx = self._pbx
        for name, value in self._dialplan.defaults.items():
            ref = "${" + name + "}"
            if ref in template and not pbx.read_var(chan, name):
                template = template.replace(ref, value)
        return pbx.expand(chan, template)

    async def _step(self, chan: Channel, app: str, data: str) -> int:
        chan.application, chan.app_data = app, data
        self._pbx.events.newexten(chan, app, data)
        res = await self._pbx.apps.run(chan, app, data)
        if res is None:  # no such application: Asterisk hangs the channel up
            self._pbx.request_hangup(chan, 16)
            return -1
        return res
