"""MixMonitor as Asterisk 22's apps/app_mixmonitor.c does it, for the
dialplan application ``MixMonitor(file[,options])`` (sim/apps.py: what
``[acd-answered]`` runs on the agent's channel as it answers, the way the
engine records calls) and the AMI actions ``MixMonitor`` and
``StopMixMonitor`` (sim/ami_server.py; the engine does not use them).
Both start a recording the same way (:meth:`Monitors.start`); the
application also sets ``MIXMONITOR_FILENAME`` and sends
``MixMonitorStart``, and returns -1 without a file (nor ``r()``/``t()``).

As recorded from Asterisk 22.10.1 (tests/data/asterisk-transcripts/
mixmonitor.txt).  ``MixMonitor`` (write class ``system``: its ``Command``
runs a shell command when the recording ends): ``No channel specified``,
``No such channel`` (the channel by name or ``Uniqueid``); else the answer
``Response: Success`` with no ``Message`` (``MixMonitorID`` with the
``i(var)`` option), then, on the channel, ``VarSet`` of
``MIXMONITOR_FILENAME`` (the file name made absolute: a relative one under
:attr:`SimConfig.monitor_dir`, as ``filename_parse`` does under
``ast_config_AST_MONITOR_DIR``; ``.wav49`` becomes ``.WAV``) and
``MixMonitorStart`` (class ``call``, the channel snapshot, no file name).
An empty ``File`` with no ``r()``/``t()`` option: ``Could not start
monitoring channel``.

``StopMixMonitor``: ``No channel specified``, ``No such channel``, ``Could
not stop monitoring channel`` (none running), else ``Success`` and
``MixMonitorStop``.  A channel that hangs up ends its recordings without
``MixMonitorStop`` (Asterisk sends it only for a stop asked for).

Files are written only when :attr:`SimConfig.monitor_dir` is set (tests
give a temporary folder).  As Asterisk's monitor thread, the file is
created as the recording starts (an empty WAV: its 44-byte header; the
folders made) and holds its audio when it ends (stop or hang-up): with
option ``b`` the time the channel spent bridged while recorded (none if it
never was), without ``b`` from the start to the end.  A name without an
extension gets ``.raw`` (signed linear).  At most
:attr:`SimConfig.monitor_max_s` simulated seconds of audio are written
(a quiet 440 Hz tone, 8 kHz, 16-bit mono as Asterisk's ``wav``; 16 kHz for
``wav16``; a format other than WAV gets the raw samples).  Every recording
is kept in :attr:`Monitors.recordings`.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass

from acd.protocols.ami import AmiMessage
from sim.channels import Channel
from sim.config import SimConfig
from sim.events import Events

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Recording:
    """One MixMonitor on one channel."""

    uniqueid: str
    channel: str
    file: str
    options: str
    started: float  # loop time
    bridged_only: bool
    bridged_s: float = 0.0  # real seconds bridged so far (closed spans)
    bridged_since: float | None = None
    ended: float | None = None
    #: the file written (None: not written: no monitor_dir, never bridged, an error)
    written: str | None = None
    #: simulated seconds of the conversation it holds
    duration_s: float = 0.0
    stopped: bool = False  # by StopMixMonitor (else by the hang-up)


def _option_arg(options: str, letter: str) -> str | None:
    """The argument of option ``letter(...)`` in ``options``, None without it."""
    i = 0
    while i < len(options):
        ch = options[i]
        arg = None
        if i + 1 < len(options) and options[i + 1] == "(":
            end = options.find(")", i + 2)
            end = len(options) if end < 0 else end
            arg = options[i + 2:end]
            nxt = end + 1
        else:
            nxt = i + 1
        if ch == letter:
            return arg if arg is not None else ""
        i = nxt
    return None


class Monitors:
    """The PBX's running and finished recordings."""

    def __init__(self, cfg: SimConfig, events: Events,
                 set_var: Callable[[Channel, str, str], None], now: Callable[[], float]) -> None:
        self.cfg = cfg
        self.events = events
        self.set_var = set_var
        self.now = now
        #: every recording started, in order
        self.recordings: list[Recording] = []
        self._running: dict[str, list[Recording]] = {}
        self._listening = False

    def file_name(self, file: str) -> str:
        """``filename_parse``: absolute, ``.wav49`` -> ``.WAV``."""
        if not file.startswith("/"):
            file = f"{(self.cfg.monitor_dir or '/var/spool/asterisk/monitor').rstrip('/')}/{file}"
        if file.endswith(".wav49"):
            file = file[:-len(".wav49")] + ".WAV"
        return file

    @staticmethod
    def can_start(file: str, options: str) -> bool:
        """``mixmonitor_exec``'s refusal: no file and no ``r()``/``t()``."""
        return bool(file) or _option_arg(options, "r") is not None \
            or _option_arg(options, "t") is not None

    @staticmethod
    def id_var(options: str) -> str:
        """The variable of option ``i(var)`` ("" without it)."""
        return _option_arg(options, "i") or ""

    def start(self, chan: Channel, file: str, options: str, mon_id: str = "") -> Recording:
        """Start recording ``chan`` (``can_start`` said it can); ``mon_id``
        goes into the ``i(var)`` variable."""
        if not self._listening:
            self.events.listeners.append(self._on_event)
            self._listening = True
        name = self.file_name(file) if file else ""
        now = self.now()
        rec = Recording(chan.uniqueid, chan.name, name, options, now,
                        bridged_only=_option_arg(options, "b") is not None)
        if chan.bridge is not None:
            rec.bridged_since = now
        self.set_var(chan, "MIXMONITOR_FILENAME", name)
        uid_var = self.id_var(options)
        if uid_var:
            self.set_var(chan, uid_var, mon_id)
        self.recordings.append(rec)
        self._running.setdefault(chan.uniqueid, []).append(rec)
        self._write(rec, 0.0)  # the monitor thread opens the file at once
        self._event("MixMonitorStart", chan)
        return rec

    def stop(self, chan: Channel) -> bool:
        """StopMixMonitor: the channel's latest recording ends (False: none)."""
        running = self._running.get(chan.uniqueid)
        if not running:
            return False
        rec = running.pop()
        if not running:
            del self._running[chan.uniqueid]
        rec.stopped = True
        self._finish(rec)
        self._event("MixMonitorStop", chan)
        return True

    def _event(self, name: str, chan: Channel) -> None:
        if self.events.on("call"):
            self.events.emit("call", name, self.events.snapshot(chan))

    # ------------------------------------------------------------ channel events

    def _on_event(self, msg: AmiMessage) -> None:
        name = msg.get("Event")
        if name not in ("BridgeEnter", "BridgeLeave", "Hangup"):
            return
        running = self._running.get(msg.get("Uniqueid"))
        if not running:
            return
        now = self.now()
        for rec in list(running):
            if name == "BridgeEnter" and rec.bridged_since is None:
                rec.bridged_since = now
            elif name == "BridgeLeave" and rec.bridged_since is not None:
                rec.bridged_s += now - rec.bridged_since
                rec.bridged_since = None
        if name == "Hangup":
            del self._running[msg.get("Uniqueid")]
            for rec in running:
                self._finish(rec)

    def _finish(self, rec: Recording) -> None:
        now = self.now()
        rec.ended = now
        if rec.bridged_since is not None:
            rec.bridged_s += now - rec.bridged_since
            rec.bridged_since = None
        real = rec.bridged_s if rec.bridged_only else now - rec.started
        rec.duration_s = self.cfg.unscaled(real)
        self._write(rec, min(rec.duration_s, self.cfg.monitor_max_s))

    def _write(self, rec: Recording, seconds: float) -> None:
        if self.cfg.monitor_dir is None or not rec.file:
            return
        path = rec.file if "." in os.path.basename(rec.file) else rec.file + ".raw"
        try:
            write_audio(path, seconds)
        except OSError as exc:  # Asterisk logs it; the call goes on
            log.warning("MixMonitor: cannot write %s: %s", path, exc)
            return
        rec.written = path


def write_audio(path: str, seconds: float) -> None:
    """A small valid recording at ``path`` (folders made as ``ast_mkdir``)."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    ext = path.rpartition(".")[2]
    rate = 16000 if ext == "wav16" else 8000
    count = int(seconds * rate)
    samples = struct.pack(f"<{count}h", *(int(800 * math.sin(2 * math.pi * 440 * i / rate))
                                          for i in range(count)))
    if ext in ("wav", "WAV", "wav16"):
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples)
    else:
        with open(path, "wb") as f:
            f.write(samples)
