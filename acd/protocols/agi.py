"""FastAGI codec: request header block, commands and every reply form.

Pure: bytes/lines in, typed values out.  Serves both the engine (FastAGI
server: reads the request, writes commands, reads replies) and the PBX
simulator (the Asterisk side: writes the request, reads commands, writes
replies).  The reply forms are those of Asterisk 22 ``res/res_agi.c``:

* ``200 result=N``               plain result
* ``200 result=N (data)``        GET VARIABLE and friends
* ``200 result=12 (timeout)``    GET DATA that ended on timeout
* ``200 result=N endpos=M``      STREAM FILE / CONTROL STREAM FILE
* ``510 Invalid or unknown command``
* ``511 Command Not Permitted on a dead channel or intercept routine``
* ``520-Invalid command syntax.  Proper usage follows:`` ... ``520 End of proper usage.``
* ``HANGUP``                     written unsolicited when the channel hangs up
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

MAX_HEADER_BYTES = 16 * 1024
_END_OF_HEADER = re.compile(rb"\r?\n\r?\n")


class AgiProtocolError(Exception):
    """The peer sent something that is not AGI."""


# --------------------------------------------------------------------- request


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The FastAGI request header block, with the script split from its query."""

    env: Mapping[str, str]
    script: str
    query: Mapping[str, str]
    args: tuple[str, ...]

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def callerid(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("agi_calleridname", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "en")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")


def split_script(raw: str) -> tuple[str, dict[str, str]]:
    """``hotline?lang=zh`` -> (``hotline``, {``lang``: ``zh``}); leading ``/`` dropped."""
    path, _, qs = raw.partition("?")
    query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
    return path.strip("/"), query


def parse_request(block: bytes) -> AgiRequest:
    """Parse the header block (the lines up to, not including, the empty line)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgiProtocolError(f"request header is not UTF-8 (byte {exc.start})") from exc
    env: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or " " in key:
            raise AgiProtocolError(
                f"request header line {lineno} is not 'agi_name: value': {line[:80]!r}"
            )
        env[key] = value[1:] if value.startswith(" ") else value
    if not env:
        raise AgiProtocolError("empty request header")
    script, query = split_script(env.get("agi_network_script", ""))
    args: list[str] = []
    n = 1
    while f"agi_arg_{n}" in env:
        args.append(env[f"agi_arg_{n}"])
        n += 1
    return AgiRequest(env=env, script=script, query=query, args=tuple(args))


class RequestReader:
    """Accumulates bytes until the blank line that ends the request header.

    The one header reader: the FastAGI server feeds it the lines it reads,
    the simulator's test kit the chunks it receives."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes

    def feed(self, data: bytes) -> tuple[AgiRequest, bytes] | None:
        """Returns the request and any bytes after it, or None if incomplete."""
        buf = self._buf
        # the end mark is at most 4 bytes long: look again only where it can
        # straddle the bytes seen before
        start = max(0, len(buf) - 3)
        buf += data
        if buf.startswith(b"\n") or buf.startswith(b"\r\n"):
            raise AgiProtocolError("request header starts with an empty line")
        m = _END_OF_HEADER.search(buf, start)
        if m is not None:
            req = parse_request(bytes(buf[: m.start()]))
            return req, bytes(buf[m.end():])
        if len(buf) > self._max:
            raise AgiProtocolError(f"request header larger than {self._max} bytes")
        return None


def encode_request(env: Mapping[str, str]) -> bytes:
    """The Asterisk side: header lines then one empty line."""
    lines = [f"{k}: {v}\n" for k, v in env.items()]
    lines.append("\n")
    return "".join(lines).encode("utf-8")


# --------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class AgiResult:
    """A ``200`` reply.

    ``value`` is the text after ``result=`` as sent: a number for most
    commands, the typed digits for GET DATA (which may be empty, keep leading
    zeros, or hold ``*``), so it is kept as text; ``result`` reads it as an int.
    """

    value: str
    data: str | None = None
    endpos: int | None = None
    timeout: bool = False
    raw: str = ""

    @property
    def result(self) -> int:
        """The value as an integer; -1 when it is not a number (GET DATA digits)."""
        try:
            return int(self.value)
        except ValueError:
            return -1

    @property
    def digit(self) -> str | None:
        """For STREAM FILE / WAIT FOR DIGIT: the key pressed, if any."""
        r = self.result
        if r > 0:
            return chr(r)
        return None

    @property
    def failed(self) -> bool:
        """``result=-1``: the command failed or the channel hung up."""
        return self.value == "-1"


@dataclass(frozen=True, slots=True)
class AgiError:
    """A 510, 511 or 520 reply; ``usage`` holds the 520 body lines."""

    code: int
    message: str
    usage: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class AgiHangup:
    """The unsolicited ``HANGUP`` line."""


AgiReply = AgiResult | AgiError
AgiLine = AgiResult | AgiError | AgiHangup

_RESULT_RE = re.compile(
    r"^200 result=(?P<result>-?[0-9*#A-D]*)"
    r"(?: \((?P<data>.*)\))?"
    r"(?: endpos=(?P<endpos>-?\d+))?"
    r"\s*$"
)


def parse_result_line(line: str) -> AgiResult:
    m = _RESULT_RE.match(line)
    if m is None:
        raise AgiProtocolError(f"unreadable AGI reply: {line[:80]!r}")
    data = m.group("data")
    timeout = data == "timeout"
    endpos = m.group("endpos")
    return AgiResult(
        value=m.group("result"),
        data=None if timeout else data,
        endpos=int(endpos) if endpos is not None else None,
        timeout=timeout,
        raw=line,
    )


class ReplyParser:
    """Turns reply lines into typed replies, assembling multi-line 520s.

    ``feed_line`` returns a complete item, or None while inside a 520 body.
    """

    __slots__ = ("_in_usage", "_usage")

    def __init__(self) -> None:
        self._usage: list[str] = []
        self._in_usage = False

    def feed_line(self, line: str) -> AgiLine | None:
        line = line.rstrip("\r\n")
        if self._in_usage:
            if line.startswith("520 "):
                self._in_usage = False
                usage, self._usage = tuple(self._usage), []
                return AgiError(520, "Invalid command syntax", usage)
            self._usage.append(line)
            return None
        if line == "HANGUP":
            return AgiHangup()
        if line.startswith("200"):
            return parse_result_line(line)
        if line.startswith("520-"):
            self._in_usage = True
            self._usage = []
            return None
        code, _, msg = line.partition(" ")
        if code.isdigit() and len(code) == 3:
            return AgiError(int(code), msg)
        raise AgiProtocolError(f"unreadable AGI reply: {line[:80]!r}")


# The Asterisk side writes replies with these helpers.

def encode_result(result: int | str, data: str | None = None, *, endpos: int | None = None,
                  timeout: bool = False) -> bytes:
    text = f"200 result={result}"
    if timeout:
        text += " (timeout)"
    elif data is not None:
        text += f" ({data})"
    if endpos is not None:
        text += f" endpos={endpos}"
    return (text + "\n").encode("utf-8")


REPLY_510 = b"510 Invalid or unknown command\n"
REPLY_511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"
REPLY_HANGUP = b"HANGUP\n"


def encode_520(usage: Sequence[str]) -> bytes:
    body = "".join(f"{line}\n" for line in usage)
    return (
        "520-Invalid command syntax.  Proper usage follows:\n"
        + body
        + "520 End of proper usage.\n"
    ).encode("utf-8")


# -------------------------------------------------------------------- commands


def quote(arg: str) -> str:
    """Quote one AGI argument the way Asterisk's parser reads it back."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(*words: str, quoted: Sequence[str] = ()) -> bytes:
    """``encode_command("STREAM", "FILE", "hello", quoted=["12#"])``."""
    parts = list(words) + [quote(q) for q in quoted]
    text = " ".join(parts)
    if "\n" in text or "\r" in text:
        raise ValueError("AGI command contains a line break")
    return (text + "\n").encode("utf-8")


def answer() -> bytes:
    return b"ANSWER\n"


def hangup() -> bytes:
    return b"HANGUP\n"


def noop(text: str = "") -> bytes:
    return encode_command("NOOP", quoted=[text] if text else [])


def stream_file(name: str, escape_digits: str = "") -> bytes:
    _check_word(name)
    return encode_command("STREAM", "FILE", name, quoted=[escape_digits])


def get_data(name: str, timeout_ms: int, max_digits: int) -> bytes:
    _check_word(name)
    return encode_command("GET", "DATA", name, str(timeout_ms), str(max_digits))


def get_variable(name: str) -> bytes:
    _check_word(name)
    return encode_command("GET", "VARIABLE", name)


def set_variable(name: str, value: str) -> bytes:
    _check_word(name)
    return encode_command("SET", "VARIABLE", name, quoted=[value])


def say_number(number: int, escape_digits: str = "") -> bytes:
    return encode_command("SAY", "NUMBER", str(number), quoted=[escape_digits])


def say_digits(digits: str, escape_digits: str = "") -> bytes:
    return encode_command("SAY", "DIGITS", digits, quoted=[escape_digits])


def exec_app(app: str, options: str = "") -> bytes:
    _check_word(app)
    return encode_command("EXEC", app, quoted=[options])


def _check_word(word: str) -> None:
    if not word or any(c.isspace() or c == '"' for c in word):
        raise ValueError(f"not a single AGI word: {word!r}")


def tokenize(line: str) -> list[str]:
    """Split a command line into arguments as Asterisk does (quotes, backslash)."""
    out: list[str] = []
    cur: list[str] = []
    in_quotes = False
    escaped = False
    have = False
    for ch in line.rstrip("\r\n"):
        if escaped:
            cur.append(ch)
            escaped = False
            have = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
            have = True
        elif ch in " \t" and not in_quotes:
            if have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if have:
        out.append("".join(cur))
    return out


def say_alpha(text: str, escape_digits: str = "") -> bytes:
    _check_word(text)
    return encode_command("SAY", "ALPHA", text, quoted=[escape_digits])


def say_datetime(epoch: int, escape_digits: str = "", fmt: str = "", timezone: str = "") -> bytes:
    """``SAY DATETIME <time> <escape digits> [format] [timezone]`` (format letters as in
    say.conf: ``ABdY`` a date, ``IMp`` a time)."""
    words = [escape_digits] + ([fmt] if fmt or timezone else []) + ([timezone] if timezone else [])
    return encode_command("SAY", "DATETIME", str(epoch), quoted=words)


def record_file(name: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = -1,
                beep: bool = True, silence_s: int | None = None) -> bytes:
    """``RECORD FILE <filename> <format> <escape digits> <timeout> [BEEP] [s=<silence>]``."""
    _check_word(name)
    _check_word(fmt)
    tail = (["BEEP"] if beep else []) + ([f"s={silence_s}"] if silence_s else [])
    return (encode_command("RECORD", "FILE", name, fmt, quoted=[escape_digits])[:-1]
            + (" " + " ".join([str(timeout_ms), *tail])).encode() + b"\n")


def set_context(context: str) -> bytes:
    _check_word(context)
    return encode_command("SET", "CONTEXT", context)


def set_extension(exten: str) -> bytes:
    _check_word(exten)
    return encode_command("SET", "EXTENSION", exten)


def set_priority(priority: int | str) -> bytes:
    return encode_command("SET", "PRIORITY", str(priority))
