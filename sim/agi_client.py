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
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from acd.protocols.agi import (
    REPLY_510,
    REPLY_511,
    REPLY_HANGUP,
    encode_520,
    encode_request,
    encode_result,
    tokenize,
)
from sim.channels import Channel, ChannelInterrupted
from sim.config import SAMPLES_PER_SECOND
from sim.util import atoi

if TYPE_CHECKING:
    from sim.pbx import SimPBX

log = logging.getLogger(__name__)

ALL_DIGITS = "0123456789*#ABCD"
DEFAULT_AGI_PORT = 4573


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


class AgiSession:
    """One FastAGI conversation for one ``AGI()`` dialplan step."""

    def __init__(self, pbx: SimPBX, chan: Channel, url: str, args: list[str]) -> None:
        self._pbx = pbx
        self._chan = chan
        self._url = url
        self._args = args
        self._writer: asyncio.StreamWriter | None = None
        self._busy = False
        self._dead = False
        self._silent = False
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
        if code != 200:
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
            return encode_result(-1, endpos=offset)
        total = int(cfg.prompt_length(name) * SAMPLES_PER_SECOND)
        offset = min(offset, total)
        start = chan.loop.time()
        deadline = start + cfg.scaled((total - offset) / SAMPLES_PER_SECOND)
        if escape:
            chan.listen(True)
        try:
            digit = await chan.wait_digit(deadline, escape)
        except ChannelInterrupted:
            return encode_result(-1, endpos=min(total, offset + self._samples_since(start)))
        finally:
            chan.unlisten()
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
        elif timeout_ms < 0:
            first = inter = None
        else:  # the channel's pbx defaults: rtimeout 10 s, dtimeout 5 s
            first, inter = 10.0, 5.0
        files = [f for f in args[2].split("&") if f]
        if files and not cfg.file_exists(files[-1]):
            return encode_result(-1)
        prompt_s = sum(cfg.prompt_length(f) for f in files if cfg.file_exists(f))
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
        try:
            ms = int(args[3])
        except ValueError:
            raise _ShowUsage from None
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
            return encode_result(-1)
        finally:
            chan.unlisten()
        return encode_result(ord(digit) if digit else 0)

    async def _say_number(self, args: list[str]) -> bytes:
        if len(args) not in (4, 5):
            raise _ShowUsage
        try:
            number = int(args[2])
        except ValueError:
            raise _ShowUsage from None
        return await self._say(_say_words(number), args[3])

    async def _say_digits(self, args: list[str]) -> bytes:
        if len(args) != 4 or not args[2].isdigit():
            raise _ShowUsage
        return await self._say(len(args[2]), args[3])

