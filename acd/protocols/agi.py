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

Errors, for any input whatever:

* the decoders (:func:`parse_request`, :meth:`RequestReader.feed`,
  :func:`parse_result_line`, :meth:`ReplyParser.feed_line`) raise only
  :class:`AgiProtocolError`, whose message names what was wrong and where;
  :func:`split_script` and :func:`tokenize` never raise, nor do the
  properties of the values they return (``AgiResult.result``, ``.digit``);
* the encoders (:func:`encode_request`, :func:`encode_result`,
  :func:`encode_520`, :func:`encode_command` and the command builders) raise
  only :class:`AgiEncodeError` (a ``ValueError``) for text they cannot put
  on the wire as one line: a line break, a word with a space, a character
  that is not Unicode text.

Bounds, so that a peer can neither make a decoder do work out of proportion
to what it sent nor make it hold memory without limit:

* the request header: :data:`MAX_HEADER_BYTES`; the reader looks for the
  end of the header only in the bytes it has not looked at yet;
* a reply line: :data:`MAX_REPLY_LINE` characters; the value after
  ``result=`` at most :data:`MAX_RESULT_CHARS` (GET DATA's 1024 digits);
  ``endpos`` at most :data:`MAX_ENDPOS_DIGITS` digits (a 64-bit offset);
* a 520 usage body: :data:`MAX_USAGE_LINES` lines and
  :data:`MAX_USAGE_CHARS` characters (Asterisk's longest is some 40 lines).

Text that is not UTF-8 is decoded with replacement (U+FFFD), never refused:
a caller's name in another encoding must not lose the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

#: The request header block (without the empty line that ends it) may not be
#: longer than this.
MAX_HEADER_BYTES = 16 * 1024
#: A reply line (without its line end) may not be longer than this: the
#: FastAGI server's read limit.
MAX_REPLY_LINE = 64 * 1024
#: The value after ``result=``: a number, or GET DATA's digits (at most 1024).
MAX_RESULT_CHARS = 1024
#: ``endpos`` is a sample offset (a 64-bit number in Asterisk).
MAX_ENDPOS_DIGITS = 19
#: A 520 usage body longer than this (lines, or characters counting one per
#: line end) is refused: Asterisk's longest is some 40 lines and 2 KiB.
MAX_USAGE_LINES = 1000
MAX_USAGE_CHARS = 64 * 1024

_END_OF_HEADER = re.compile(rb"\r?\n\r?\n")


class AgiProtocolError(Exception):
    """The peer sent something that is not AGI (the message says what and where).

    The only error the decoders raise.  After one the conversation is out of
    step: the caller should end it (the call itself goes on in the dialplan).
    """


class AgiEncodeError(ValueError):
    """Text that cannot go on the wire as AGI (a line break, a word with a
    space, a character that is not Unicode text): the only error the
    encoders raise."""


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
    """``hotline?lang=zh`` -> (``hotline``, {``lang``: ``zh``}); leading ``/`` dropped.

    Never raises: a query that is not ``k=v&...`` gives what it can (bad
    percent escapes are kept as text, bytes that are not UTF-8 become U+FFFD);
    a key given twice keeps its last value."""
    path, _, qs = raw.partition("?")
    query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
    return path.strip("/"), query


def parse_request(block: bytes, max_bytes: int = MAX_HEADER_BYTES) -> AgiRequest:
    """Parse the header block (the lines up to, not including, the empty line).

    Bytes that are not UTF-8 (a caller's name in GBK, say) become U+FFFD: the
    call is kept.  Raises :class:`AgiProtocolError` for a block longer than
    ``max_bytes``, an empty block, or a line that is not ``agi_name: value``
    (naming the line)."""
    if len(block) > max_bytes:
        raise AgiProtocolError(
            f"request header is {len(block)} bytes; at most {max_bytes} are read")
    text = block.decode("utf-8", errors="replace")
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
    the simulator's test kit the chunks it receives.  Each byte is looked at
    a bounded number of times however the header is cut into reads
    (``searched`` counts the bytes the search for the end looked at), and
    the header may not be longer than ``max_bytes``.
    """

    __slots__ = ("_buf", "_failed", "_max", "_scan", "searched")

    def __init__(self, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        #: where the next search for the end of the header starts
        self._scan = 0
        self._failed: str | None = None
        self.searched = 0

    def feed(self, data: bytes) -> tuple[AgiRequest, bytes] | None:
        """Returns the request and any bytes after it, or None if incomplete.

        Raises :class:`AgiProtocolError` for a header that starts with an
        empty line, is longer than ``max_bytes`` or does not parse (see
        :func:`parse_request`); after that every feed raises it again.
        Once it has returned a request the reader starts afresh (the bytes
        after the request are returned, not kept)."""
        if self._failed is not None:
            raise AgiProtocolError(f"request header already refused: {self._failed}")
        try:
            return self._feed(data)
        except AgiProtocolError as exc:
            self._failed = str(exc)
            self._buf = bytearray()
            raise

    def _feed(self, data: bytes) -> tuple[AgiRequest, bytes] | None:
        buf = self._buf
        buf += data
        if buf.startswith(b"\n") or buf.startswith(b"\r\n"):
            raise AgiProtocolError("request header starts with an empty line")
        # the end mark is at most 4 bytes long: look again only where it can
        # straddle the bytes seen before
        start = self._scan
        m = _END_OF_HEADER.search(buf, start)
        if m is None:
            self.searched += len(buf) - start
            self._scan = max(0, len(buf) - 3)
            # the header is at least as long as what is here but the start of
            # an end mark: refused as soon as it must be too long, whatever
            # the reads it comes in
            if len(buf) - _partial_end(buf) > self._max:
                raise AgiProtocolError(f"request header larger than {self._max} bytes")
            return None
        self.searched += m.end() - start
        if m.start() > self._max:
            raise AgiProtocolError(f"request header larger than {self._max} bytes")
        req = parse_request(bytes(buf[: m.start()]), self._max)
        rest = bytes(buf[m.end():])
        self._buf = bytearray()
        self._scan = 0
        return req, rest


def _partial_end(buf: bytearray) -> int:
    """How many of the last bytes of ``buf`` may be the start of an end mark
    (``\\r?\\n\\r?\\n``)."""
    if buf.endswith(b"\r\n\r"):
        return 3
    if buf.endswith(b"\n\r") or buf.endswith(b"\r\n"):
        return 2
    return 1 if buf.endswith(b"\r") or buf.endswith(b"\n") else 0


def encode_request(env: Mapping[str, str]) -> bytes:
    """The Asterisk side: header lines then one empty line.

    A value (not a name) may carry bytes that are not UTF-8 as surrogate escapes
    (``b"\\xd5\\xc5".decode("utf-8", "surrogateescape")``): they go out as
    those bytes, as Asterisk sends a caller's name in GBK.  Raises
    :class:`AgiEncodeError` for an empty header, a name that is not
    ``agi_`` and a word, or a value with a line break."""
    if not env:
        raise AgiEncodeError("an AGI request header needs at least one line")
    lines: list[str] = []
    for k, v in env.items():
        if not k.startswith("agi_") or any(c.isspace() or c == ":" for c in k):
            raise AgiEncodeError(f"not an AGI header name: {k!r}")
        _encode(k, "AGI header name")  # a name is text: no escaped bytes in it
        if "\n" in v or "\r" in v:
            raise AgiEncodeError(f"AGI header {k!r} contains a line break")
        lines.append(f"{k}: {v}\n")
    lines.append("\n")
    return _encode("".join(lines), "AGI request header", errors="surrogateescape")


def _encode(text: str, what: str, errors: str = "strict") -> bytes:
    try:
        return text.encode("utf-8", errors)
    except UnicodeEncodeError as exc:
        raise AgiEncodeError(
            f"{what} holds {text[exc.start:exc.end]!r} at character {exc.start}, "
            "which is not Unicode text") from None


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
        v = self.value
        # ASCII digits only, bounded by the parser: int() can neither refuse
        # them nor take long
        digits = v[1:] if v.startswith("-") else v
        if not digits or not digits.isascii() or not digits.isdigit() or len(v) > MAX_RESULT_CHARS:
            return -1
        return int(v)

    @property
    def digit(self) -> str | None:
        """For STREAM FILE / WAIT FOR DIGIT: the key pressed, if any (None
        too for a number that is no character)."""
        r = self.result
        if 0 < r <= 0x10FFFF and not 0xD800 <= r <= 0xDFFF:
            return chr(r)
        return None

    @property
    def failed(self) -> bool:
        """``result=-1``: the command failed or the channel hung up."""
        return self.value == "-1"


@dataclass(frozen=True, slots=True)
class AgiError:
    """A 510, 511 or 520 reply (or another three-digit code); ``usage`` holds
    the 520 body lines."""

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
    r"(?: endpos=(?P<endpos>-?[0-9]+))?"
    r"\s*$"
)
_CODE_RE = re.compile(r"[0-9]{3}")


def parse_result_line(line: str) -> AgiResult:
    """Parse one ``200 result=...`` line (its line end may be there or not).

    Raises :class:`AgiProtocolError` for anything else, a line longer than
    :data:`MAX_REPLY_LINE`, a value longer than :data:`MAX_RESULT_CHARS`, or
    an ``endpos`` of more than :data:`MAX_ENDPOS_DIGITS` digits."""
    if len(line) > MAX_REPLY_LINE + 2:
        raise AgiProtocolError(
            f"AGI reply line of {len(line)} characters; at most {MAX_REPLY_LINE}")
    m = _RESULT_RE.match(line)
    if m is None:
        raise AgiProtocolError(f"unreadable AGI reply: {line[:80]!r}")
    value = m.group("result")
    if len(value) > MAX_RESULT_CHARS:
        raise AgiProtocolError(
            f"AGI reply value of {len(value)} characters; at most {MAX_RESULT_CHARS}")
    data = m.group("data")
    timeout = data == "timeout"
    endpos = m.group("endpos")
    if endpos is not None and len(endpos.lstrip("-")) > MAX_ENDPOS_DIGITS:
        raise AgiProtocolError(
            f"AGI reply endpos of {len(endpos.lstrip('-'))} digits; at most "
            f"{MAX_ENDPOS_DIGITS}")
    return AgiResult(
        value=value,
        data=None if timeout else data,
        endpos=int(endpos) if endpos is not None else None,
        timeout=timeout,
        raw=line.rstrip("\r\n"),
    )


class ReplyParser:
    """Turns reply lines into typed replies, assembling multi-line 520s.

    ``feed_line`` returns a complete item, or None while inside a 520 body.
    Raises :class:`AgiProtocolError` for a line that is no AGI reply, one
    longer than :data:`MAX_REPLY_LINE`, and a 520 body of more than
    :data:`MAX_USAGE_LINES` lines or :data:`MAX_USAGE_CHARS` characters (the
    parser is then back at the start, outside any body; the conversation is
    out of step and should end).
    """

    __slots__ = ("_in_usage", "_usage", "_usage_chars")

    def __init__(self) -> None:
        self._usage: list[str] = []
        self._usage_chars = 0
        self._in_usage = False

    def feed_line(self, line: str) -> AgiLine | None:
        line = line.rstrip("\r\n")
        if len(line) > MAX_REPLY_LINE:
            self._reset()
            raise AgiProtocolError(
                f"AGI reply line of {len(line)} characters; at most {MAX_REPLY_LINE}")
        if self._in_usage:
            if line.startswith("520 "):
                usage = tuple(self._usage)
                self._reset()
                return AgiError(520, "Invalid command syntax", usage)
            self._usage.append(line)
            self._usage_chars += len(line) + 1
            if len(self._usage) > MAX_USAGE_LINES or self._usage_chars > MAX_USAGE_CHARS:
                lines, chars = len(self._usage), self._usage_chars
                self._reset()
                raise AgiProtocolError(
                    f"520 usage body of more than {lines} lines ({chars} characters) without "
                    f"its end line '520 End of proper usage.'; at most {MAX_USAGE_LINES} lines "
                    f"and {MAX_USAGE_CHARS} characters")
            return None
        if line == "HANGUP":
            return AgiHangup()
        if line.startswith("200"):
            return parse_result_line(line)
        if line.startswith("520-"):
            self._in_usage = True
            self._usage = []
            self._usage_chars = 0
            return None
        code, _, msg = line.partition(" ")
        if _CODE_RE.fullmatch(code):
            return AgiError(int(code), msg)
        raise AgiProtocolError(f"unreadable AGI reply: {line[:80]!r}")

    def _reset(self) -> None:
        self._in_usage = False
        self._usage = []
        self._usage_chars = 0


# The Asterisk side writes replies with these helpers.

_VALUE_RE = re.compile(r"-?[0-9*#A-D]*")


def encode_result(result: int | str, data: str | None = None, *, endpos: int | None = None,
                  timeout: bool = False) -> bytes:
    """``200 result=<result> [(<data>)|(timeout)] [endpos=<endpos>]``.

    Raises :class:`AgiEncodeError` for a result that is not a number or
    keys (``-?[0-9*#A-D]*``, at most :data:`MAX_RESULT_CHARS`), data with a
    line break, or an endpos of more than :data:`MAX_ENDPOS_DIGITS` digits."""
    value = str(result)
    if not _VALUE_RE.fullmatch(value) or len(value) > MAX_RESULT_CHARS:
        raise AgiEncodeError(f"not an AGI result value: {value[:80]!r}")
    text = f"200 result={value}"
    if timeout:
        text += " (timeout)"
    elif data is not None:
        if "\n" in data or "\r" in data:
            raise AgiEncodeError(f"AGI result data contains a line break: {data[:80]!r}")
        text += f" ({data})"
    if endpos is not None:
        if len(str(abs(endpos))) > MAX_ENDPOS_DIGITS:
            raise AgiEncodeError(f"AGI endpos {endpos} has more than {MAX_ENDPOS_DIGITS} digits")
        text += f" endpos={endpos}"
    return _encode(text + "\n", "AGI result data")


REPLY_510 = b"510 Invalid or unknown command\n"
REPLY_511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"
REPLY_HANGUP = b"HANGUP\n"


def encode_520(usage: Sequence[str]) -> bytes:
    """A multi-line 520 with ``usage`` as its body.  Raises
    :class:`AgiEncodeError` for a body line with a line break or one that
    would end the body early (``520 ...``)."""
    for line in usage:
        if "\n" in line or "\r" in line:
            raise AgiEncodeError(f"520 usage line contains a line break: {line[:80]!r}")
        if line.startswith("520 "):
            raise AgiEncodeError(f"520 usage line would end the body: {line[:80]!r}")
    body = "".join(f"{line}\n" for line in usage)
    return _encode(
        "520-Invalid command syntax.  Proper usage follows:\n"
        + body
        + "520 End of proper usage.\n", "520 usage")


# -------------------------------------------------------------------- commands


def quote(arg: str) -> str:
    """Quote one AGI argument the way Asterisk's parser reads it back."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(*words: str, quoted: Sequence[str] = ()) -> bytes:
    """``encode_command("STREAM", "FILE", "hello", quoted=["12#"])``.

    Raises :class:`AgiEncodeError` for a line break anywhere or a character
    that is not Unicode text (a lone surrogate)."""
    parts = list(words) + [quote(q) for q in quoted]
    text = " ".join(parts)
    if "\n" in text or "\r" in text:
        raise AgiEncodeError(f"AGI command contains a line break: {text[:80]!r}")
    return _encode(text + "\n", "AGI command")


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
        raise AgiEncodeError(f"not a single AGI word: {word!r}")


def tokenize(line: str) -> list[str]:
    """Split a command line into arguments as Asterisk does (quotes, backslash).

    Never raises; linear in the line (an unclosed quote runs to the end)."""
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
