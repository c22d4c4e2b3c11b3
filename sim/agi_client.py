"""FastAGI from Asterisk's side: the simulator connects to the engine.

One :class:`AgiSession` per ``AGI()`` step, run inside the channel's own
task (no task of its own).  What it mirrors, recording by recording:

* request header block (answered.txt ``AGI env``): ``agi_network: yes``,
  ``agi_network_script`` = everything after ``host:port/`` including any
  ``?query``, ``agi_request`` ... ``agi_threadid``, then an empty line;
* replies in res_agi.c's forms, written with ``acd.protocols.agi``;
* a key in the escape set interrupts STREAM FILE with
  ``200 result=<ascii> endpos=<samples>`` (answered.txt ``result=49
  endpos=9760``); GET DATA ends with ``(timeout)`` when fewer than ``max``
  digits came (``200 result=2 (timeout)``);
* hang-up or AMI Redirect while a command runs: that command answers
  ``200 result=-1``, then ``HANGUP`` is written at once, ahead of the reply
  to the next command (abandon.txt, answered.txt); with no command running
  ``HANGUP`` is written immediately;
* after ``HANGUP`` the session is dead: the first command still gets a
  reply (NOOP ``200 result=0``, commands that need a live channel 511),
  later commands get none until the socket closes (abandon.txt,
  ivr_hangup.txt: ``NOOP "again"`` was only executed at close);
* the channel leaves the AGI when the engine closes the socket (or, once
  dead, after ``SimConfig.agi_dead_close_s``): a redirected channel then
  continues at its target (answered.txt t=8.116), a hung-up one is
  destroyed;
* ``HANGUP`` as a command: ``200 result=1``, ``SoftHangupRequest Cause:
  32``, then the unsolicited ``HANGUP`` line, and at close ``Hangup
  Cause: 0`` (ivr_only.txt).

Replies of the other commands, as res_agi.c's handlers print them:

* SAY ALPHA / DATE / TIME / DATETIME (like SAY NUMBER / DIGITS): ``200
  result=<ascii of the escape key>``, ``0`` when played out, ``-1`` on
  hang-up; each spoken word lasts ``SimConfig.say_word_s`` (a date is 4
  words, a time 3, SAY DATETIME counts its format: the default ``ABdY
  'digits/at' IMp`` is 8, ``A dBY HMS`` for language ``de``);
* RECORD FILE (handle_recordfile): ``200 result=<ascii> (dtmf)
  endpos=<n>`` (200 ms of DTMF cut off), ``200 result=0 (timeout)
  endpos=<n>``, ``200 result=-1 (hangup) endpos=<n>``; on ``s=<silence>``
  the reply is also ``(timeout)``, with what ``ast_waitfor`` returned last as
  the result (the milliseconds left: ~99980 with timeout -1) and ``endpos``
  cut back by ``silence - 1`` seconds; a key or hang-up during the beep gives
  ``200 result=<ascii>|-1 (randomerror) endpos=<offset>``, a missing beep
  file ``200 result=-1 (randomerror) endpos=<offset>``.  Timeout < 0 means no
  limit.  Positions count 20 ms voice frames (160 samples).  Every file
  written is kept in ``pbx.apps.recordings``;
* SET CONTEXT / EXTENSION / PRIORITY: ``200 result=0``; PRIORITY takes a
  number (sscanf ``%d``) or a label (none exist here: 520) and stores
  ``n - 1`` (autoloop), so the dialplan goes on at priority ``n`` after the
  socket closes;
* GET DATA (ast_app_getdata_full): one file (no ``&`` lists), any key
  interrupts it; timeout 0 means 6 s for the first key and 2 s between keys,
  < 0 no limit; ``#`` ends the input without being part of it; max 0 answers
  ``200 result=-1``.

A sound file that does not exist (``SimConfig.known_files``) is logged at
WARNING as Asterisk 22's main/file.c logs it: ``File <name> does not exist
in any format`` (openstream_internal), and where the command goes through
``ast_streamfile`` (GET DATA, the RECORD FILE beep; Playback in sim.apps)
also ``Unable to open <name> (format (ulaw)): No such file or directory``.
STREAM FILE calls ``ast_openstream`` itself: the first line only.  Every
file that does play is kept in ``pbx.apps.played`` (:class:`Played`).

How a session ends (run_agi / launch_netscript in res_agi.c): a refused
connection (or none within ``agi_connect_timeout_s``, MAX_AGI_CONNECT 2 s)
makes ``AGISTATUS=FAILURE`` and ``AGI()`` returns 0: the dialplan goes on.
The socket is read only between commands: if the engine goes away while a
command runs (``EXEC MusicOnHold``), the command runs to its end (the caller
keeps hearing music), its reply goes nowhere, then EOF ends the session as
"script completed": ``AGISTATUS=SUCCESS``, next priority.  An AMI Redirect
interrupts the running command at once even then: ``AGISTATUS=HANGUP``,
and the channel goes on at the target.

A handler that returns RESULT_FAILURE in res_agi.c (a ``-1`` from SAY,
STREAM FILE, WAIT FOR DIGIT, RECORD FILE's hang-up) publishes ``AGIExecEnd
ResultCode: -1 Result: Failure``, and, unless the channel was hung up (or
redirected) at that moment, makes AGISTATUS ``FAILURE``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from acd.protocols.agi import (
    REPLY_510,
    REPLY_511,
    REPLY_HANGUP,
    encode_520,
    encode_request,
    encode_result,
    tokenize,
)
from sim.channels import Channel, ChannelInterrupted, ChannelRegistry
from sim.config import SAMPLES_PER_SECOND, Recording, SimConfig
from sim.dialplan import AppRunner, Dialplan
from sim.events import Events
from sim.util import atoi, scan_int

log = logging.getLogger(__name__)

ALL_DIGITS = "0123456789*#ABCD"
DEFAULT_AGI_PORT = 4573
#: samples per 20 ms voice frame: RECORD FILE positions move by whole frames.
FRAME_SAMPLES = 160
#: ``ast_waitfor(chan, <0)`` waits in rounds of 100000 ms and returns what is
#: left of the round; a frame comes every 20 ms.
WAITFOR_ROUND_LEFT_MS = 100000 - 20
#: ``ast_stream_rewind(fs, 200)`` after an escape key in RECORD FILE.
DTMF_CUT_SAMPLES = 200 * SAMPLES_PER_SECOND // 1000

#: the caller channel's native formats as ``ast_format_cap_get_names`` prints
#: them, for file.c's "Unable to open" line (an endpoint with allow=ulaw)
NATIVE_FORMATS = "(ulaw)"

#: SAY DATETIME: sound files per format letter (say.c ast_say_date_with_format_en).
_FORMAT_WORDS = {**dict.fromkeys("AaBbhmdeYIlHkMNPpSQq", 1), "R": 2, "T": 3}
DEFAULT_DATETIME_FORMAT = "ABdY 'digits/at' IMp"
DEFAULT_DATETIME_FORMAT_DE = "A dBY HMS"


@dataclass(frozen=True, slots=True)
class Played:
    """A sound file that began to play on a channel (``pbx.apps.played``)."""

    uniqueid: str
    name: str
    #: the channel's language then (``CHANNEL(language)``): Asterisk looks
    #: the file up in ``sounds/<language>/`` first
    language: str
    #: STREAM FILE, GET DATA or Playback
    by: str


def log_missing_file(name: str, *, streamfile: bool) -> None:
    """What Asterisk 22 logs when sound file ``name`` is found in no format:
    main/file.c openstream_internal's warning, then, when the caller went
    through ``ast_streamfile`` (GET DATA, Playback, the RECORD FILE beep;
    ``streamfile``), that function's own (``strerror(errno)`` of the failed
    lookup)."""
    log.warning("File %s does not exist in any format", name)
    if streamfile:
        log.warning("Unable to open %s (format %s): %s", name, NATIVE_FORMATS,
                    "No such file or directory")


@dataclass(frozen=True, slots=True)
class AgiUrl:
    host: str
    port: int
    script: str  # everything after "host:port/", query included


def parse_agi_url(url: str) -> AgiUrl | None:
    """``agi://127.0.0.1:4573/requeue?status=NOANSWER`` -> host, port, script."""
    if not url.lower().startswith("agi://"):
        return None
    rest = url[6:]
    hostport, _, script = rest.partition("/")
    host, _, port = hostport.partition(":")
    if not host:
        return None
    try:
        port_no = int(port) if port else DEFAULT_AGI_PORT
    except ValueError:
        return None
    return AgiUrl(host, port_no, script)


def format_words(fmt: str) -> int:
    """How many sound files SAY DATETIME plays for ``fmt`` (``'quoted'`` = one file)."""
    words = 0
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c == "'":
            end = fmt.find("'", i + 1)
            if end < 0:
                break
            words += 1 if end > i + 1 else 0
            i = end
        else:
            words += _FORMAT_WORDS.get(c, 0)
        i += 1
    return words


def _frames(samples: int) -> int:
    """Down to whole 20 ms voice frames."""
    return max(0, samples - samples % FRAME_SAMPLES)


def record_silence_ms(args: list[str]) -> int:
    """handle_recordfile's ``s=`` lookup: the first of argv[6..8] holding an
    ``s`` at all, used only if that part reads ``s=<n>`` (n seconds)."""
    found: str | None = None
    for arg in args[6:9]:
        pos = arg.find("s")
        if pos >= 0:
            found = arg[pos:]
            break
    if found is None or len(found) <= 2 or not found.startswith("s="):
        return 0
    silence = atoi(found[2:])
    return silence * 1000 if silence > 0 else 0


def record_offset_beep(args: list[str]) -> tuple[int, bool]:
    """argv[6] is the sample offset if it reads as a number; any other argv[6]
    not starting ``s=``, or any argv[7] not starting ``s=``, asks for the beep."""
    offset = 0
    beep = False
    if len(args) > 6:
        number = scan_int(args[6])
        if number is not None:
            offset = number
        elif not args[6].startswith("s="):
            beep = True
    if len(args) > 7 and not args[7].startswith("s="):
        beep = True
    return offset, beep


def digits_reply(digits: str, timeout: bool) -> bytes:
    """GET DATA's ``200 result=%s[ (timeout)]``: the digits as a *string*
    (``""``, ``"007"`` and ``"1*"`` are all possible), as res_agi.c prints them."""
    return encode_result(digits, timeout=timeout)


class _ShowUsage(Exception):
    """Wrong arguments: answer with the 520 usage block."""


Handler = Callable[[list[str]], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class _Command:
    words: tuple[str, ...]
    handler: Handler
    dead_ok: bool  # res_agi.c's "dead" flag: allowed on a hung-up channel
    usage: tuple[str, ...]


def _say_words(number: int) -> int:
    """Rough count of the sound files SAY NUMBER plays ("42" -> forty, two)."""
    text = str(abs(number))
    words = sum(1 for c in text if c != "0") or 1
    return words + (1 if number < 0 else 0)


class AgiApps(AppRunner, Protocol):
    """The applications AGI ``EXEC`` and ``ANSWER`` run (see sim.apps.Apps)."""

    @property
    def recordings(self) -> list[Recording]: ...
    @property
    def played(self) -> list[Played]: ...

    def known(self, app: str) -> bool: ...
    async def answer(self, chan: Channel, data: str) -> int: ...


class AgiHost(Protocol):
    """What a FastAGI session needs of the PBX (see sim.pbx.SimPBX)."""

    @property
    def cfg(self) -> SimConfig: ...
    @property
    def channels(self) -> ChannelRegistry: ...
    @property
    def events(self) -> Events: ...
    @property
    def apps(self) -> AgiApps: ...
    @property
    def dialplan(self) -> Dialplan: ...

    def read_var(self, chan: Channel, name: str) -> str | None: ...
    def set_var(self, chan: Channel, name: str, value: str) -> None: ...
    def expand(self, chan: Channel, template: str) -> str: ...
    def soft_hangup(self, chan: Channel, cause: int, *, final_cause: int | None = None,
                    by: str | None = None) -> None: ...


class AgiSession:
    """One FastAGI conversation for one ``AGI()`` dialplan step."""

    def __init__(self, pbx: AgiHost, chan: Channel, url: str, args: list[str]) -> None:
        self._pbx = pbx
        self._chan = chan
        self._url = url
        self._args = args
        self._writer: asyncio.StreamWriter | None = None
        self._busy = False
        self._dead = False
        self._silent = False
        #: the running command's handler "returned RESULT_FAILURE".
        self._failed = False
        #: run_agi's returnstatus became AGI_RESULT_FAILURE.
        self._agi_failed = False
        self._close_timer: asyncio.TimerHandle | None = None
        #: commands that got no reply because the session was dead and silent.
        self.unanswered: list[str] = []
        self._commands = self._command_table()

    # ----------------------------------------------------------------- running

    async def run(self) -> str:
        """Run the session; returns the AGISTATUS (SUCCESS, FAILURE, HANGUP)."""
        cfg = self._pbx.cfg
        chan = self._chan
        target = parse_agi_url(self._url)
        if target is None:
            log.warning("%s: AGI URL %r is not agi://host[:port]/script", chan.name, self._url)
            return "FAILURE"
        try:
            async with asyncio.timeout(cfg.agi_connect_timeout_s):
                reader, writer = await asyncio.open_connection(target.host, target.port)
        except (OSError, TimeoutError) as exc:
            log.info("%s: FastAGI connect to %s:%s failed: %s", chan.name, target.host,
                     target.port, exc)
            return "FAILURE"
        self._writer = writer
        chan.agi = self
        try:
            writer.write(encode_request(self._env(target)))
            if chan.interrupted:
                self._go_dead()
            await self._serve(reader)
        finally:
            chan.agi = None
            if self._close_timer is not None:
                self._close_timer.cancel()
            writer.close()
        if self._agi_failed:
            return "FAILURE"
        return "HANGUP" if chan.interrupted else "SUCCESS"

    def _env(self, target: AgiUrl) -> dict[str, str]:
        chan = self._chan
        env = {"agi_network": "yes"}
        if target.script:
            env["agi_network_script"] = target.script
        env.update({
            "agi_request": self._url,
            "agi_channel": chan.name,
            "agi_language": chan.language,
            "agi_type": chan.name.partition("/")[0],
            "agi_uniqueid": chan.uniqueid,
            "agi_version": self._pbx.cfg.agi_version,
            "agi_callerid": chan.cid_num or "unknown",
            "agi_calleridname": chan.cid_name or "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": chan.dnid or "unknown",
            "agi_rdnis": "unknown",
            "agi_context": chan.context,
            "agi_extension": chan.exten,
            "agi_priority": str(chan.priority),
            "agi_enhanced": "0.0",
            "agi_accountcode": chan.accountcode,
            "agi_threadid": str(random.randrange(10**14, 10**15)),
        })
        for i, arg in enumerate(self._args, start=1):
            env[f"agi_arg_{i}"] = arg
        return env

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        chan = self._chan
        cfg = self._pbx.cfg
        while True:
            try:
                raw = await reader.readline()
            except (ConnectionError, ValueError):
                return
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if chan.caller is not None:
                chan.caller.agi_commands.append(line)
            if self._silent:
                self.unanswered.append(line)
                continue
            if self._dead:
                self._write(await self._execute(line, dead=True))
                self._silent = cfg.agi_silent_after_first_dead_reply
                continue
            self._busy = True
            try:
                reply = await self._execute(line, dead=False)
            finally:
                self._busy = False
            self._write(reply)
            if chan.interrupted:
                self._go_dead()

    def _write(self, data: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(data)

    def on_interrupt(self) -> None:
        """Hang-up or Redirect: with no command running, ``HANGUP`` goes out now."""
        if not self._busy:
            self._go_dead()

    def _go_dead(self) -> None:
        if self._dead:
            return
        self._dead = True
        self._write(REPLY_HANGUP)
        cfg = self._pbx.cfg
        self._close_timer = self._chan.loop.call_later(
            cfg.scaled(cfg.agi_dead_close_s), self._force_close)

    def _force_close(self) -> None:
        writer = self._writer
        if writer is not None:
            log.info("%s: engine kept the dead AGI socket open; closing it", self._chan.name)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # the engine is not even reading
            else:
                writer.close()

    # ---------------------------------------------------------------- dispatch

    def _find(self, args: list[str]) -> _Command | None:
        upper = tuple(a.upper() for a in args[:3])
        for n in (3, 2, 1):
            cmd = self._commands.get(upper[:n])
            if cmd is not None and len(upper) >= n:
                return cmd
        return None

    async def _execute(self, line: str, dead: bool) -> bytes:
        args = tokenize(line)
        cmd = self._find(args) if args else None
        ev = self._pbx.events
        command_id = ev.new_command_id()
        ev.agi_exec_start(self._chan, command_id, line)
        self._failed = False
        if cmd is None:
            reply = REPLY_510
        elif dead and not cmd.dead_ok:
            reply = REPLY_511
        else:
            try:
                reply = await cmd.handler(args)
            except _ShowUsage:
                reply = encode_520(cmd.usage)
        code = int(reply[:3]) if reply[:3].isdigit() else 200
        if self._failed:
            # RESULT_FAILURE: "Failure" with ResultCode -1; AGISTATUS FAILURE
            # unless the failure came from a hang-up (run_agi).
            code, result = -1, "Failure"
            if dead or not self._chan.interrupted:
                self._agi_failed = True
        elif code != 200:
            result = "Failure" if code != 520 else "Usage"
        elif reply.startswith(b"200 result=-1"):
            result = "Unknown Result"
        else:
            result = "Success"
        ev.agi_exec_end(self._chan, command_id, line, code, result)
        return reply

    def _command_table(self) -> dict[tuple[str, ...], _Command]:
        specs: list[tuple[str, Handler, bool, str]] = [
            ("ANSWER", self._answer, False, "Usage: ANSWER"),
            ("HANGUP", self._hangup, True, "Usage: HANGUP [<channelname>]"),
            ("NOOP", self._noop, True, "Usage: NOOP"),
            ("VERBOSE", self._verbose, True, "Usage: VERBOSE <message> <level>"),
            ("CHANNEL STATUS", self._channel_status, True,
             "Usage: CHANNEL STATUS [<channelname>]"),
            ("GET VARIABLE", self._get_variable, True, "Usage: GET VARIABLE <variablename>"),
            ("GET FULL VARIABLE", self._get_full_variable, True,
             "Usage: GET FULL VARIABLE <variablename> [<channel name>]"),
            ("SET VARIABLE", self._set_variable, True,
             "Usage: SET VARIABLE <variablename> <value>"),
            ("STREAM FILE", self._stream_file, False,
             "Usage: STREAM FILE <filename> <escape digits> [sample offset]"),
            ("GET DATA", self._get_data, False,
             "Usage: GET DATA <file to be streamed> [timeout] [max digits]"),
            ("WAIT FOR DIGIT", self._wait_for_digit, False, "Usage: WAIT FOR DIGIT <timeout>"),
            ("SAY NUMBER", self._say_number, False,
             "Usage: SAY NUMBER <number> <escape digits> [gender]"),
            ("SAY DIGITS", self._say_digits, False, "Usage: SAY DIGITS <number> <escape digits>"),
            ("SAY ALPHA", self._say_alpha, False, "Usage: SAY ALPHA <number> <escape digits>"),
            ("SAY DATE", self._say_date, False, "Usage: SAY DATE <date> <escape digits>"),
            ("SAY TIME", self._say_time, False, "Usage: SAY TIME <time> <escape digits>"),
            ("SAY DATETIME", self._say_datetime, False,
             "Usage: SAY DATETIME <time> <escape digits> [format] [timezone]"),
            ("RECORD FILE", self._record_file, False,
             "Usage: RECORD FILE <filename> <format> <escape digits> <timeout> "
             "[offset samples] [BEEP] [s=silence]"),
            ("SET CONTEXT", self._set_context, False, "Usage: SET CONTEXT <desired context>"),
            ("SET EXTENSION", self._set_extension, False,
             "Usage: SET EXTENSION <new extension>"),
            ("SET PRIORITY", self._set_priority, False, "Usage: SET PRIORITY <priority>"),
            ("EXEC", self._exec, True, "Usage: EXEC <application> <options>"),
        ]
        table: dict[tuple[str, ...], _Command] = {}
        for name, handler, dead_ok, usage in specs:
            words = tuple(name.split())
            lines = (f" {usage}", "", f" Returns: see the Asterisk 22 AGI reference for {name}.")
            table[words] = _Command(words, handler, dead_ok, lines)
        return table

    # ---------------------------------------------------------------- commands

    async def _noop(self, args: list[str]) -> bytes:
        return encode_result(0)

    async def _verbose(self, args: list[str]) -> bytes:
        if len(args) < 2:
            raise _ShowUsage
        return encode_result(1)

    async def _answer(self, args: list[str]) -> bytes:
        res = await self._pbx.apps.answer(self._chan, "")
        return encode_result(res)

    async def _hangup(self, args: list[str]) -> bytes:
        if len(args) > 2:
            raise _ShowUsage
        if len(args) == 1:
            # ivr_only.txt: SoftHangupRequest Cause 32 now, Hangup Cause 0 at the end.
            self._pbx.soft_hangup(self._chan, 32, final_cause=0, by="engine")
            return encode_result(1)
        other = self._pbx.channels.find(args[1])
        if other is None:
            return encode_result(-1)
        self._pbx.soft_hangup(other, 16, by="engine")
        return encode_result(1)

    async def _channel_status(self, args: list[str]) -> bytes:
        if len(args) > 3:
            raise _ShowUsage
        chan = self._pbx.channels.find(args[2]) if len(args) == 3 else self._chan
        return encode_result(-1 if chan is None else chan.state)

    async def _get_variable(self, args: list[str]) -> bytes:
        if len(args) != 3:
            raise _ShowUsage
        value = self._pbx.read_var(self._chan, args[2])
        return encode_result(0) if value is None else encode_result(1, value)

    async def _get_full_variable(self, args: list[str]) -> bytes:
        if len(args) not in (4, 5):
            raise _ShowUsage
        chan = self._pbx.channels.find(args[4]) if len(args) == 5 else self._chan
        if chan is None:
            return encode_result(0)
        return encode_result(1, self._pbx.expand(chan, args[3]))

    async def _set_variable(self, args: list[str]) -> bytes:
        if len(args) != 4:
            raise _ShowUsage
        self._pbx.set_var(self._chan, args[2], args[3])
        return encode_result(1)

    async def _exec(self, args: list[str]) -> bytes:
        if len(args) < 2:
            raise _ShowUsage
        apps = self._pbx.apps
        app, data = args[1], (args[2] if len(args) > 2 else "")
        if not apps.known(app):
            return encode_result(-2)
        chan = self._chan
        saved = chan.application, chan.app_data
        chan.application, chan.app_data = app, data
        try:
            res = await apps.run(chan, app, data)
        finally:
            chan.application, chan.app_data = saved
        return encode_result(-2 if res is None else res)

    # -------------------------------------------------------------- media ones

    def _played(self, name: str, by: str) -> None:
        chan = self._chan
        self._pbx.apps.played.append(Played(chan.uniqueid, name, chan.language, by))

    def _samples_since(self, start: float) -> int:
        return int(self._pbx.cfg.unscaled(self._chan.loop.time() - start) * SAMPLES_PER_SECOND)

    async def _stream_file(self, args: list[str]) -> bytes:
        if len(args) not in (4, 5):
            raise _ShowUsage
        cfg = self._pbx.cfg
        chan = self._chan
        name, escape = args[2], args[3]
        offset = max(0, atoi(args[4])) if len(args) == 5 else 0
        if not cfg.file_exists(name):
            log_missing_file(name, streamfile=False)  # handle_streamfile: ast_openstream
            self._failed = True
            return encode_result(-1, endpos=offset)
        self._played(name, "STREAM FILE")
        total = int(cfg.prompt_length(name) * SAMPLES_PER_SECOND)
        offset = min(offset, total)
        start = chan.loop.time()
        deadline = start + cfg.scaled((total - offset) / SAMPLES_PER_SECOND)
        if escape:
            chan.listen(True)
        try:
            digit = await chan.wait_digit(deadline, escape)
        except ChannelInterrupted:
            self._failed = True
            self._pbx.set_var(chan, "PLAYBACKSTATUS", "FAILED")
            return encode_result(-1, endpos=min(total, offset + self._samples_since(start)))
        finally:
            chan.unlisten()
        # handle_streamfile: "FAILED" for any non-zero result, a key included
        # (answered.txt: VarSet PLAYBACKSTATUS FAILED after result=49).
        self._pbx.set_var(chan, "PLAYBACKSTATUS", "FAILED" if digit else "SUCCESS")
        if digit is None:
            return encode_result(0, endpos=total)
        return encode_result(ord(digit), endpos=min(total, offset + self._samples_since(start)))

    async def _get_data(self, args: list[str]) -> bytes:
        if len(args) < 3:
            raise _ShowUsage
        cfg = self._pbx.cfg
        chan = self._chan
        timeout_ms = atoi(args[3]) if len(args) > 3 else 0
        max_digits = atoi(args[4]) if len(args) > 4 else 1024
        first: float | None
        inter: float | None
        if timeout_ms > 0:
            first = inter = timeout_ms / 1000
        elif timeout_ms < 0:  # 1000000000 ms
            first = inter = None
        else:  # ast_app_getdata_full's own defaults (not the channel's pbx ones)
            first, inter = 6.0, 2.0
        # One file: ast_streamfile knows no "a&b" lists (only apps like Read do).
        name = args[2]
        if name and not cfg.file_exists(name):
            log_missing_file(name, streamfile=True)  # ast_app_getdata_full: ast_streamfile
            if "&" in name:
                log.warning("%s: GET DATA %r: Asterisk plays one file here, not an & list; "
                            "answering 200 result=-1 as it would", chan.name, name)
            return encode_result(-1)
        if name:
            self._played(name, "GET DATA")
        if max_digits == 0:  # ast_readstring_full: "if (!len) return -1"
            return encode_result(-1)
        prompt_s = cfg.prompt_length(name) if name else 0.0
        loop = chan.loop
        digits = ""
        chan.listen(True)
        try:
            digit: str | None = None
            if prompt_s > 0:
                digit = await chan.wait_digit(loop.time() + cfg.scaled(prompt_s), ALL_DIGITS)
            wait_s = first
            while True:
                if digit is None:
                    deadline = None if wait_s is None else loop.time() + cfg.scaled(wait_s)
                    digit = await chan.wait_digit(deadline, ALL_DIGITS)
                    if digit is None:
                        return digits_reply(digits, timeout=True)
                if digit == "#":
                    return digits_reply(digits, timeout=False)
                digits += digit
                if len(digits) >= max_digits:
                    return digits_reply(digits, timeout=False)
                digit, wait_s = None, inter
        except ChannelInterrupted:
            return encode_result(-1)
        finally:
            chan.unlisten()

    async def _wait_for_digit(self, args: list[str]) -> bytes:
        if len(args) != 4:
            raise _ShowUsage
        ms = scan_int(args[3])
        if ms is None:
            raise _ShowUsage
        chan = self._chan
        deadline = None if ms < 0 else chan.loop.time() + self._pbx.cfg.scaled(ms / 1000)
        return await self._key_or_end(deadline, ALL_DIGITS)

    async def _say(self, words: int, escape: str) -> bytes:
        cfg = self._pbx.cfg
        deadline = self._chan.loop.time() + cfg.scaled(words * cfg.say_word_s)
        return await self._key_or_end(deadline, escape)

    async def _key_or_end(self, deadline: float | None, accept: str) -> bytes:
        """Wait until ``deadline`` or a key in ``accept``: ``result=<ascii>``,
        0 when none, -1 when the channel went away."""
        chan = self._chan
        if accept:
            chan.listen(True)
        try:
            digit = await chan.wait_digit(deadline, accept)
        except ChannelInterrupted:
            self._failed = True
            return encode_result(-1)
        finally:
            chan.unlisten()
        return encode_result(ord(digit) if digit else 0)

    async def _say_number(self, args: list[str]) -> bytes:
        if len(args) not in (4, 5):
            raise _ShowUsage
        number = scan_int(args[2])
        if number is None:
            raise _ShowUsage
        return await self._say(_say_words(number), args[3])

    async def _say_digits(self, args: list[str]) -> bytes:
        # sscanf must read a number, then the whole argument is said ("12#" too).
        if len(args) != 4 or scan_int(args[2]) is None:
            raise _ShowUsage
        return await self._say(len(args[2]), args[3])

    async def _say_alpha(self, args: list[str]) -> bytes:
        if len(args) not in (4, 5):
            raise _ShowUsage
        if len(args) == 5 and args[4][:1] not in ("", "a", "A", "l", "L", "n", "N", "u", "U"):
            raise _ShowUsage  # case sensitivity: all / lower / none / upper
        return await self._say(len(args[2]), args[3])

    async def _say_date(self, args: list[str]) -> bytes:
        if len(args) != 4 or scan_int(args[2]) is None:
            raise _ShowUsage
        return await self._say(4, args[3])  # weekday, month, day, year

    async def _say_time(self, args: list[str]) -> bytes:
        if len(args) != 4 or scan_int(args[2]) is None:
            raise _ShowUsage
        return await self._say(3, args[3])  # hour, minutes, a.m./p.m.

    async def _say_datetime(self, args: list[str]) -> bytes:
        if len(args) < 4:
            raise _ShowUsage
        if len(args) > 4:
            fmt = args[4]
        elif self._chan.language.lower() == "de":
            fmt = DEFAULT_DATETIME_FORMAT_DE
        else:
            fmt = DEFAULT_DATETIME_FORMAT
        # args[5], the time zone, changes the words, not how many there are.
        if scan_int(args[2]) is None:  # ast_get_time_t: "%30ld"
            raise _ShowUsage
        return await self._say(format_words(fmt), args[3])

    # ------------------------------------------------------------- RECORD FILE

    async def _record_file(self, args: list[str]) -> bytes:
        if len(args) < 6:
            raise _ShowUsage
        ms = scan_int(args[5])
        if ms is None:
            raise _ShowUsage
        chan = self._chan
        name, fmt, escape = args[2], args[3], args[4]
        silence_ms = record_silence_ms(args)
        offset, beep = record_offset_beep(args)
        if escape:  # an input prompt: the caller types its next keys entry
            chan.listen(True)
        try:
            return await self._record(name, fmt, escape, ms, offset, beep, silence_ms)
        finally:
            chan.unlisten()

    async def _record(self, name: str, fmt: str, escape: str, ms: int, offset: int,
                      beep: bool, silence_ms: int) -> bytes:
        cfg = self._pbx.cfg
        chan = self._chan
        loop = chan.loop
        # The beep, which the escape digits interrupt (ast_waitstream); without
        # one, ast_waitstream has no stream and says -1 only on a hang-up.
        res = 0
        try:
            if beep:
                if not cfg.file_exists("beep"):
                    log_missing_file("beep", streamfile=True)
                    res = -1
                else:
                    key = await chan.wait_digit(loop.time() + cfg.scaled(cfg.beep_s), escape)
                    res = ord(key) if key else 0
            elif chan.interrupted:
                res = -1
        except ChannelInterrupted:
            res = -1
        if res:
            return encode_result(res, "randomerror", endpos=offset)

        base = max(0, offset)
        if ms == 0:  # the record loop never runs
            return self._recorded(name, fmt, encode_result(0, "timeout", endpos=offset), offset)
        start = loop.time()
        ends: list[float] = []
        if ms > 0:
            ends.append(ms / 1000)
        if silence_ms > 0:
            ends.append(cfg.record_speech_s + silence_ms / 1000)
        end_s = min(ends) if ends else None
        deadline = start + cfg.scaled(end_s) if end_s is not None else None
        try:
            key = await chan.wait_digit(deadline, escape)
        except ChannelInterrupted:
            self._failed = True
            pos = base + _frames(self._samples_since(start))
            return self._recorded(name, fmt, encode_result(-1, "hangup", endpos=pos), pos)
        if key is not None:
            pos = max(0, base + _frames(self._samples_since(start)) - DTMF_CUT_SAMPLES)
            return self._recorded(name, fmt, encode_result(ord(key), "dtmf", endpos=pos), pos)
        assert end_s is not None
        pos = base + _frames(int(end_s * SAMPLES_PER_SECOND))
        if ms > 0 and end_s >= ms / 1000:
            return self._recorded(name, fmt, encode_result(0, "timeout", endpos=pos), pos)
        # Silence: rewound by (silence - 1 s); the result is what the last
        # ast_waitfor returned (the ms left of its wait).
        pos = max(0, pos - (silence_ms - 1000) * SAMPLES_PER_SECOND // 1000)
        left = WAITFOR_ROUND_LEFT_MS if ms < 0 else max(0, ms - int(end_s * 1000))
        return self._recorded(name, fmt, encode_result(left, "timeout", endpos=pos), pos)

    def _recorded(self, name: str, fmt: str, reply: bytes, endpos: int) -> bytes:
        self._pbx.apps.recordings.append(
            Recording(self._chan.uniqueid, name, fmt, max(0, endpos) / SAMPLES_PER_SECOND))
        return reply

    # --------------------------------------------------------- where to go next

    async def _set_context(self, args: list[str]) -> bytes:
        if len(args) != 3:
            raise _ShowUsage
        self._chan.context = args[2]
        return encode_result(0)

    async def _set_extension(self, args: list[str]) -> bytes:
        if len(args) != 3:
            raise _ShowUsage
        self._chan.exten = args[2]
        return encode_result(0)

    async def _set_priority(self, args: list[str]) -> bytes:
        if len(args) != 3:
            raise _ShowUsage
        chan = self._chan
        priority = scan_int(args[2])
        if priority is None:
            priority = self._pbx.dialplan.find_label(chan.context, chan.exten, args[2])
            if priority < 1:
                raise _ShowUsage
        if priority > -1:
            # ast_explicit_goto inside the PBX loop (AST_FLAG_IN_AUTOLOOP): one
            # less, since the loop adds one when AGI() returns.  (An Originate'd
            # Application has no loop, but hangs up after it anyway.)
            chan.priority = priority - 1
        return encode_result(0)

