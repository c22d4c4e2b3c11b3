"""Configuration and the plain data the simulator hands back.

Every duration the simulator itself produces (prompt lengths, key delays,
ring and talk times, MusicOnHold durations, GET DATA timeouts given by the
engine, the Dial ring timeout) is multiplied by :attr:`SimConfig.time_scale`
before it becomes a real sleep.  Durations reported back in
:class:`CallResult` (``wait_s``, ``talk_s`` ...) are in *simulated* seconds,
i.e. real seconds divided by ``time_scale``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sim.eventfilter import read_manager_conf

#: 8 kHz: the unit of STREAM FILE ``endpos`` (answered.txt: ~1.22 s -> 9760).
SAMPLES_PER_SECOND = 8000


@dataclass(slots=True)
class SimConfig:
    """Knobs of the simulated Asterisk.  Defaults mirror the lab recordings."""

    # AMI
    ami_host: str = "127.0.0.1"
    ami_port: int = 0
    users: dict[str, str] = field(default_factory=lambda: {"acd": "acdsecret"})
    ami_version: str = "11.0.0"
    #: manager.conf ``read =`` for every user (e.g. "call,system"); None = all classes.
    ami_read: str | None = None
    #: manager.conf ``write =`` for every user (e.g. "call,originate,reporting"):
    #: an action needing none of these classes is answered "Permission
    #: denied"; None = all classes.
    ami_write: str | None = None
    #: manager.conf ``eventfilter`` lines of every user, as (key, value):
    #: ``("eventfilter(action(include),name(Hangup))", "")``; Asterisk 22's
    #: syntax and semantics (sim/eventfilter.py).  :meth:`use_manager_conf`
    #: takes them from a manager.conf (the shipped one: asterisk_conf/).
    ami_eventfilters: tuple[tuple[str, str], ...] = ()
    #: a client whose unsent output exceeds this is dropped (Asterisk does the same).
    ami_max_buffer: int = 16 * 1024 * 1024
    #: manager.conf ``channelvars``: every event with a channel snapshot (and
    #: CoreShowChannel) carries ``ChanVariable: NAME=value`` for each, in this
    #: order, ``NAME=`` when unset (DialBegin & co.: ``DestChanVariable`` for
    #: the Dest channel).  Defaults to the shipped asterisk_conf/manager.conf.
    channelvars: tuple[str, ...] = ("ACD_CALL_ID", "ACD_QUEUED", "ACD_OFFER", "ACD_CALL_SECRET")

    # Dialplan (mirrors asterisk_conf/extensions.conf)
    agi_url: str = "agi://127.0.0.1:4573"  # ${ACD_AGI}
    #: ${ACD_SERVER}: added to both AGI URLs as ``server=<name>``; None leaves it out.
    server_name: str | None = "pbx1"
    hotline_context: str = "acd-hotline"
    hotline_extens: tuple[str, ...] = ("10086",)
    hotline_script: str = "hotline"
    connect_context: str = "acd-connect"
    #: ``[acd-answered]``: the routine acd-connect's Dial runs on the agent's
    #: channel when it answers (``U()``), writing AstDB ``acd/answered/<ext>``.
    answered_context: str = "acd-answered"
    fallback_context: str = "acd-fallback"
    #: ``[acd-transfer]``: ``Dial(PJSIP/${EXTEN}@${ACD_TRUNK},60)``; the engine
    #: sends a caller there with AGI SET CONTEXT/EXTENSION/PRIORITY.
    transfer_context: str = "acd-transfer"
    requeue_script: str = "requeue"
    #: requeue, resume and fallback pass ``${ACD_CALL_SECRET}`` as their AGI
    #: argument (the shipped extensions.conf); False: no argument, as the
    #: dialplan of a version before the call's secret
    call_secret_arg: bool = True
    #: ``[acd-recover]``: where a caller goes when its FastAGI session ended
    #: without the engine moving it (or the engine could not be reached).
    recover_context: str = "acd-recover"
    resume_script: str = "resume"
    #: ${ACD_AGI_STANDBY}: the second engine acd-recover tries; None = the
    #: same as :attr:`agi_url` (one engine, as in the shipped [globals]).
    agi_standby_url: str | None = None
    #: ${ACD_RECOVER_TRIES}: rounds in acd-recover before the last resort (VoiceMail).
    recover_tries: int = 10
    #: ${ACD_RECOVER_WAIT}: seconds of MusicOnHold between two rounds
    #: (MusicOnHold reads whole seconds: sscanf ``%d``).
    recover_wait_s: int = 3
    #: context/exten given to outbound phone channels (Dial legs, Originate).
    agent_context: str = "agents"
    #: the trunk's PJSIP endpoint: inbound channels are ``PJSIP/<trunk>-...``,
    #: and it is ``${ACD_TRUNK}`` (outbound ``Dial(PJSIP/<number>@<trunk>)``).
    trunk: str = "trunk"
    default_ring_timeout_s: float = 20.0  # ${ACD_RING_TIMEOUT} when unset
    default_moh_class: str = "default"  # ${ACD_MOH} when unset

    # Media
    time_scale: float = 1.0
    prompt_s: float = 1.0
    prompt_overrides: dict[str, float] = field(default_factory=dict)
    #: None: every sound file exists; otherwise only these (STREAM FILE of
    #: another name answers ``200 result=-1 endpos=0``).
    known_files: frozenset[str] | None = None
    #: length of one spoken word for SAY NUMBER / SAY DIGITS (ivr_only.txt: "42" ~1.7 s).
    say_word_s: float = 0.85
    #: DTMF as sent by the recorded callers (SendDTMF(...,250)): 100 ms tone, 250 ms gap.
    dtmf_duration_s: float = 0.1
    dtmf_gap_s: float = 0.25
    #: the "beep" before RECORD FILE (with a beep argument) and VoiceMail's recording.
    beep_s: float = 0.25
    #: how long a caller speaks into RECORD FILE before falling silent (what the
    #: ``s=<silence>`` detector sees: silence from then on).
    record_speech_s: float = 3.0
    #: MixMonitor (sim/mixmonitor.py): the folder recordings are written to
    #: (``astspooldir``/monitor; a relative file name goes under it); None:
    #: recordings are kept in ``pbx.monitors`` but no file is written
    monitor_dir: str | None = None
    #: a written recording holds at most this many simulated seconds of audio
    monitor_max_s: float = 5.0

    # Outside parties (acd-transfer) and voicemail
    #: the number dialled through the trunk answers after this long; None: it
    #: never answers (Dial ends NOANSWER at its timeout).
    transfer_answer_s: float | None = 2.0
    #: then talks this long and hangs up (unless the caller hangs up first).
    transfer_talk_s: float = 20.0
    #: VoiceMail(): the mailbox greeting (``u``: "unavailable") before the beep.
    voicemail_greeting_s: float = 2.0
    #: VoiceMail(): longest message (voicemail.conf ``maxsecs``).
    voicemail_max_s: float = 30.0

    # FastAGI (Asterisk side)
    #: res_agi.c MAX_AGI_CONNECT (2000 ms): then AGISTATUS=FAILURE, dialplan goes on.
    agi_connect_timeout_s: float = 2.0
    #: after ``HANGUP`` was written, close the socket if the engine has not
    #: done so after this long (real Asterisk would wait for ever).
    agi_dead_close_s: float = 5.0
    #: abandon.txt / ivr_hangup.txt: after the ``HANGUP`` line only the first
    #: command is answered; later ones get no reply until the socket closes.
    agi_silent_after_first_dead_reply: bool = True
    agi_version: str = "22.11.0-rc1"

    # Event volume
    emit_varset: bool = True
    emit_agi_exec: bool = True
    #: what a real Asterisk 22 sends besides (answered.txt): Dial's
    #: variables (DIALEDPEERNUMBER, ANSWEREDTIME, ... 19 VarSets per answered
    #: Dial), BRIDGEPEER on both legs, the dialled leg's NewCallerid and
    #: NewConnectedLine, the trunk's DeviceStateChange.  Off: the leaner
    #: stream most tests were written against.
    full_event_volume: bool = False

    def use_manager_conf(self, path: str | Path, user: str = "acd") -> None:
        """``read``, ``write`` and ``eventfilter`` of ``user`` in a
        manager.conf, and its ``[general]`` ``channelvars`` if set, as this
        simulator's AMI settings (ValueError naming the file and line for
        a file it cannot read as Asterisk's config syntax, or without that
        user)."""
        conf = read_manager_conf(path, user)
        self.ami_read, self.ami_write = conf.read, conf.write
        self.ami_eventfilters = conf.eventfilters
        if conf.channelvars is not None:
            self.channelvars = conf.channelvars

    def scaled(self, seconds: float) -> float:
        """Simulated seconds -> real seconds."""
        return seconds * self.time_scale

    def unscaled(self, real_seconds: float) -> float:
        """Real seconds -> simulated seconds."""
        return real_seconds / self.time_scale if self.time_scale > 0 else 0.0

    def prompt_length(self, name: str) -> float:
        """Simulated length of one sound file."""
        return self.prompt_overrides.get(name, self.prompt_s)

    def file_exists(self, name: str) -> bool:
        """Does sound file ``name`` exist?  A name holding ``&`` never does:
        Asterisk's file API (``ast_streamfile``, so STREAM FILE and GET DATA)
        takes one file; only applications such as Playback split ``a&b``."""
        if "&" in name:
            return False
        return self.known_files is None or name in self.known_files


TalkTime = float | Callable[[], float]


@dataclass(slots=True)
class PhoneBehaviour:
    """How an agent's phone (``PJSIP/<ext>``) reacts to calls."""

    answer_after_s: float = 1.0
    answers: bool = True
    #: seconds of talk after the bridge, or a callable drawing one per call.
    talk_s: TalkTime = 5.0
    #: always busy (DND): Dial -> BUSY, Originate -> Reason 5.
    busy: bool = False
    #: unregistered: Dial -> CHANUNAVAIL, Originate -> Reason 8.
    registered: bool = True

    def draw_talk_s(self) -> float:
        return self.talk_s() if callable(self.talk_s) else self.talk_s


@dataclass(slots=True)
class CallerScript:
    """What one simulated caller does (see :meth:`sim.pbx.SimPBX.place_call`)."""

    number: str = "13800138000"
    name: str = ""
    #: one entry per input prompt, in order; "" = press nothing for that prompt.
    keys: list[str] = field(default_factory=list)
    #: hang up if not connected to an agent this long after first hearing
    #: MusicOnHold (wall clock from the first MOH, so it accumulates across
    #: requeues); None = infinitely patient.
    patience_s: float | None = 30.0
    #: hang up this long after the call starts, wherever it is.
    hangup_after_s: float | None = None
    dnid: str = "10086"
    key_delay_s: float = 0.5


class Outcome(enum.StrEnum):
    """How a simulated call ended."""

    IVR_HANGUP = "ivr_hangup"  # caller hung up before ever being held
    ABANDONED_HOLD = "abandoned_hold"  # caller hung up while held / queued
    ABANDONED_RINGING = "abandoned_ringing"  # caller hung up while an agent rang
    TALKED = "talked"  # bridged to an agent
    TRANSFERRED = "transferred"  # bridged to an outside number (acd-transfer), no agent
    ENGINE_HANGUP = "engine_hangup"  # hung up by the engine or the dialplan
    STOPPED = "stopped"  # the simulator was stopped first


@dataclass(slots=True)
class CallResult:
    """The record of one simulated inbound call.

    Timestamps are ``loop.time()`` values; ``*_s`` durations are simulated
    seconds.
    """

    uniqueid: str
    channel: str
    number: str
    name: str
    outcome: Outcome
    agent: str | None
    hangup_by: str  # caller | agent | remote (transfer target) | engine | pbx
    cause: int
    started_at: float
    ended_at: float
    first_hold_at: float | None
    connected_at: float | None
    wait_s: float | None  # first MOH -> connected (or end)
    talk_s: float | None
    duration_s: float
    requeues: int
    dial_statuses: list[str]
    agi_scripts: list[str]
    agi_commands: list[str]
    #: the number the caller was sent to through acd-transfer (its Dial was
    #: placed), whether or not it answered; None: never transferred.
    transferred_to: str | None = None


class Recording(NamedTuple):
    """A file written by AGI RECORD FILE (``SimPBX.apps.recordings``)."""

    uniqueid: str
    file: str
    format: str
    seconds: float  # simulated: the file's length (endpos / 8000)


class VoicemailMessage(NamedTuple):
    """A message left with VoiceMail() (``SimPBX.apps.voicemails``)."""

    uniqueid: str
    mailbox: str
    seconds: float  # simulated length of the recording
