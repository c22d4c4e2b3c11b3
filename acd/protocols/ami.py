"""Asterisk Manager Interface codec: bytes in, typed messages out, and back.

Pure: no sockets, no clock.  Framing is on ``\\r\\n\\r\\n``; every message is
decoded from UTF-8 *as a whole*, so a multi-byte character that straddles two
TCP reads arrives intact (panoramisk's stock protocol decodes per chunk and
silently drops such characters).  Bytes that are not UTF-8 become U+FFFD.

The same codec serves both sides: the engine's AMI client decodes responses
and events, the PBX simulator decodes actions.

Errors, for any input whatever:

* :meth:`AmiDecoder.feed` raises only :class:`AmiProtocolError`, when the
  stream cannot go on (not an Asterisk greeting, a message longer than the
  decoder's ``max_message``); the items it had decoded before, in that read,
  ride on the error (``exc.items``).  A frame that is not ``Key: Value``
  lines is no error of the stream: it comes out as an :class:`AmiFrameError`
  item, and the next frame is read as usual;
* :func:`parse_message` returns an :class:`AmiFrameError` rather than raise;
  :func:`parse_variables`, :meth:`ResponseCollector.feed` and the look-ups
  of :class:`AmiMessage` (but ``msg[key]``, a ``KeyError`` when absent, as a
  mapping) never raise;
* the encoders (:func:`encode_message`, :func:`encode`) raise only
  :class:`AmiEncodeError` (a ``ValueError``) for headers that cannot be
  written as ``Key: Value`` lines.

Work is linear in the input however it is cut into reads: the decoder looks
for a message's end only in bytes it has not looked at yet (``searched``
counts the bytes looked at), and holds at most ``max_message`` bytes of an
unfinished message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

EOL = b"\r\n"
EOM = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

#: A message (or the greeting line) longer than this is a protocol error.
DEFAULT_MAX_MESSAGE = 1 << 20


class AmiProtocolError(Exception):
    """The peer broke AMI framing in a way the connection cannot recover from.

    ``items`` holds what the failing :meth:`AmiDecoder.feed` had decoded
    before the fault (items of earlier feeds were returned by them)."""

    def __init__(self, message: str, items: Sequence[AmiItem] = ()) -> None:
        super().__init__(message)
        self.items: list[AmiItem] = list(items)


class AmiEncodeError(ValueError):
    """Headers that cannot go on the wire as AMI (an empty or odd key, a line
    break, a character that is not Unicode text): the only error the
    encoders raise."""


@dataclass(frozen=True, slots=True)
class AmiBanner:
    """The greeting line ``Asterisk Call Manager/<version>`` sent on connect."""

    version: str


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message (action, response or event) with its ordered headers.

    Headers may repeat (``Variable:`` in actions, ``ChanVariable`` in events),
    so they are kept as an ordered tuple of pairs.  Look-ups are
    case-insensitive, as in Asterisk.
    """

    headers: tuple[tuple[str, str], ...]
    _index: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # the first value of a header wins (reversed: later pairs are overwritten)
        object.__setattr__(self, "_index", {k.lower(): v for k, v in reversed(self.headers)})

    @classmethod
    def _of(cls, headers: tuple[tuple[str, str], ...]) -> AmiMessage:
        """As ``AmiMessage(headers)``, for the decoder's hot path."""
        msg = object.__new__(cls)
        object.__setattr__(msg, "headers", headers)
        object.__setattr__(msg, "_index", {k.lower(): v for k, v in reversed(headers)})
        return msg

    @classmethod
    def build(cls, first: tuple[str, str], fields: Mapping[str, str] | None = None,
              extra: Iterable[tuple[str, str]] = ()) -> AmiMessage:
        pairs = [first]
        if fields:
            pairs.extend(fields.items())
        pairs.extend(extra)
        return cls(tuple(pairs))

    def get(self, key: str, default: str = "") -> str:
        return self._index.get(key.lower(), default)

    def get_all(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def __getitem__(self, key: str) -> str:
        return self._index[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    @property
    def event(self) -> str | None:
        return self._index.get("event")

    @property
    def response(self) -> str | None:
        return self._index.get("response")

    @property
    def action(self) -> str | None:
        return self._index.get("action")

    @property
    def action_id(self) -> str | None:
        return self._index.get("actionid")

    @property
    def is_success(self) -> bool:
        return self.response in ("Success", "Goodbye", "Follows")

    @property
    def starts_event_list(self) -> bool:
        return self.get("EventList").lower() == "start"

    @property
    def ends_event_list(self) -> bool:
        return self.event is not None and self.get("EventList").lower() == "complete"

    def as_dict(self) -> dict[str, str]:
        """First value per header, keys as sent."""
        out: dict[str, str] = {}
        for k, v in self.headers:
            out.setdefault(k, v)
        return out


@dataclass(frozen=True, slots=True)
class AmiFrameError:
    """A frame that could not be parsed; the stream itself stays usable.

    ``reason`` says what is wrong and where (``line 2 is not 'Key: Value'``)
    without quoting the frame, which may hold callers' numbers and names:
    ``raw`` is the frame, ``line`` the number of the faulty line (0 if none),
    :attr:`bad_line` its text."""

    reason: str
    raw: bytes
    line: int = 0

    @property
    def bad_line(self) -> str:
        """The text of the faulty line ("" when the fault is not one line's)."""
        if self.line <= 0:
            return ""
        lines = self.raw.decode("utf-8", errors="replace").split("\r\n")
        return lines[self.line - 1] if self.line <= len(lines) else ""


AmiItem = AmiBanner | AmiMessage | AmiFrameError


def parse_message(raw: bytes | bytearray) -> AmiMessage | AmiFrameError:
    """Parse one frame (without its terminating blank line); never raises."""
    text = raw.decode("utf-8", errors="replace")
    pairs: list[tuple[str, str]] = []
    append = pairs.append
    lineno = 0
    for line in text.split("\r\n"):
        lineno += 1
        if line:
            key, sep, value = line.partition(":")
            if not sep or not key or key != key.strip():
                return AmiFrameError(f"line {lineno} is not 'Key: Value'", bytes(raw), lineno)
            append((key, value[1:] if value[:1] == " " else value))
    if not pairs:
        return AmiFrameError("empty message", bytes(raw))
    return AmiMessage._of(tuple(pairs))


class AmiDecoder:
    """Incremental AMI stream decoder.

    ``feed(bytes)`` returns the complete items found so far.  With
    ``expect_banner`` (client side) the first line is the greeting.
    """

    __slots__ = ("_buf", "_events", "_expect_banner", "_failed", "_max", "_scan", "searched",
                 "skipped")

    def __init__(self, *, expect_banner: bool = True, max_message: int = DEFAULT_MAX_MESSAGE,
                 events: frozenset[str] | None = None):
        """``events``: if given, events of other names are dropped unparsed
        (unless they carry an ``ActionID``: replies to our own actions), so
        the event volume an ACD does not need costs a byte search, not a parse.
        """
        self._buf = bytearray()
        self._expect_banner = expect_banner
        self._max = max_message
        self._events = None if events is None else frozenset(e.encode() for e in events)
        #: where in the buffer the next search for an end starts: the bytes
        #: before it were looked at already
        self._scan = 0
        self._failed: str | None = None
        self.skipped = 0
        #: bytes looked at by the searches for line and message ends (the
        #: work is linear in the input: at most its length plus 3 per feed)
        self.searched = 0

    def feed(self, data: bytes) -> list[AmiItem]:
        """The items complete with ``data``.  Raises :class:`AmiProtocolError`
        (with the items of this read before the fault) for a greeting that is
        not Asterisk's or a message longer than ``max_message``; after that,
        every feed raises it again."""
        if self._failed is not None:
            raise AmiProtocolError(f"AMI stream already refused: {self._failed}")
        out: list[AmiItem] = []
        try:
            self._feed(data, out)
        except AmiProtocolError as exc:
            self._failed = str(exc)
            self._buf = bytearray()
            exc.items = out
            raise
        return out

    def _feed(self, data: bytes, out: list[AmiItem]) -> None:
        buf = self._buf
        buf += data
        if self._expect_banner:
            start = self._scan
            nl = buf.find(EOL, start)
            if nl < 0:
                self.searched += len(buf) - start
                self._scan = max(0, len(buf) - 1)
                if len(buf) - buf.endswith(b"\r") > self._max:
                    raise AmiProtocolError(
                        f"greeting longer than {self._max} bytes without a line end")
                return
            self.searched += nl + 2 - start
            if nl > self._max:
                raise AmiProtocolError(f"greeting longer than {self._max} bytes")
            line = bytes(buf[:nl]).decode("utf-8", errors="replace")
            del buf[: nl + 2]
            self._scan = 0
            self._expect_banner = False
            if not line.startswith(BANNER_PREFIX):
                raise AmiProtocolError(f"not an Asterisk manager: greeting was {line[:80]!r}")
            out.append(AmiBanner(line[len(BANNER_PREFIX):].strip()))
        start = 0
        while True:
            # Tolerate blank lines between messages (some peers send extra CRLFs).
            while buf.startswith(EOL, start):
                start += 2
            frm = max(start, self._scan)
            end = buf.find(EOM, frm)
            if end < 0:
                self.searched += len(buf) - frm
                # the end mark may begin in the last 3 bytes
                self._scan = max(start, len(buf) - 3)
                break
            self.searched += end + 4 - frm
            self._scan = end + 4
            if end - start > self._max:
                raise AmiProtocolError(f"message of {end - start} bytes; at most {self._max}")
            if self._events is not None and buf.startswith(b"Event: ", start):
                eol = buf.find(EOL, start, end)
                name = bytes(buf[start + 7: end if eol < 0 else eol])
                if name not in self._events and buf.find(b"\r\nActionID:", start, end) < 0:
                    self.skipped += 1
                    start = end + 4
                    continue
            out.append(parse_message(buf[start:end]))
            start = end + 4
        if start:
            del buf[:start]
            self._scan -= start
        # what is left is the start of a message at least as long as the
        # bytes before where its end mark may begin: refused as soon as it
        # must be too long, whatever the reads it comes in
        if len(buf) > self._max and len(buf) - _partial_end(buf) > self._max:
            raise AmiProtocolError(
                f"message larger than {self._max} bytes without a terminating blank line"
            )


def _partial_end(buf: bytearray) -> int:
    """How many of the last bytes of ``buf`` may be the start of an end mark."""
    for k in (3, 2, 1):
        if buf.endswith(EOM[:k]):
            return k
    return 0


def _check_header(key: str, value: str) -> None:
    if not key or key != key.strip() or any(c in key for c in ":\r\n"):
        raise AmiEncodeError(f"not an AMI header name: {key!r}")
    if "\r" in value or "\n" in value:
        raise AmiEncodeError(f"AMI header {key!r} contains a line break")


def encode_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode ordered headers as one AMI message (UTF-8, CRLF, blank line).

    Raises :class:`AmiEncodeError` for no headers, a key that is empty, has
    a colon, a line break or surrounding space, a value with a line break,
    or a character that is not Unicode text (a lone surrogate)."""
    parts: list[str] = []
    for key, value in headers:
        _check_header(key, value)
        parts.append(f"{key}: {value}\r\n")
    if not parts:
        raise AmiEncodeError("an AMI message needs at least one header")
    parts.append("\r\n")
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AmiEncodeError(
            f"AMI message holds {text[exc.start:exc.end]!r} at character {exc.start}, "
            "which is not Unicode text") from None


def encode(msg: AmiMessage) -> bytes:
    """``msg`` on the wire; raises :class:`AmiEncodeError` as :func:`encode_message`."""
    return encode_message(msg.headers)


def action(name: str, action_id: str, fields: Mapping[str, str] | None = None,
           variables: Mapping[str, str] | None = None) -> AmiMessage:
    """Build an action; ``variables`` become repeated ``Variable: k=v`` headers."""
    pairs: list[tuple[str, str]] = [("Action", name), ("ActionID", action_id)]
    if fields:
        pairs.extend(fields.items())
    if variables:
        pairs.extend(("Variable", f"{k}={v}") for k, v in variables.items())
    return AmiMessage(tuple(pairs))


def parse_variables(msg: AmiMessage) -> dict[str, str]:
    """``Variable: a=1`` headers (possibly ``a=1,b=2`` in one header) as a
    dict; never raises, linear in the headers' length."""
    out: dict[str, str] = {}
    for raw in msg.get_all("Variable"):
        for item in _split_vars(raw):
            k, _, v = item.partition("=")
            if k:
                out[k.strip()] = v
    return out


def _split_vars(raw: str) -> Iterator[str]:
    # Asterisk accepts several comma-separated assignments in one header, but
    # only split where the next chunk looks like another assignment.
    # (the pieces of one assignment are gathered in a list and joined once: a
    # header of many commas must not cost a copy per comma)
    parts: list[str] = []
    for piece in raw.split(","):
        if not parts or parts == [""]:
            parts = [piece]  # leading empty pieces are dropped
        elif "=" in piece:
            yield ",".join(parts)
            parts = [piece]
        else:
            parts.append(piece)
    if parts and parts != [""]:
        yield ",".join(parts)


@dataclass(slots=True)
class ResponseCollector:
    """Collects the reply to one action: a response, plus for event-list
    actions (``CoreShowChannels``...) the events up to the ``...Complete`` one.
    """

    action_id: str
    response: AmiMessage | None = None
    events: list[AmiMessage] = field(default_factory=list)
    done: bool = False

    def feed(self, msg: AmiMessage) -> bool:
        """Offer a message; returns True if it belonged to this action.  Never raises."""
        if self.done or msg.action_id != self.action_id:
            return False
        if self.response is None and msg.response is not None:
            self.response = msg
            self.done = not msg.starts_event_list
            return True
        if msg.event is not None:
            if msg.ends_event_list:
                self.done = True
            else:
                self.events.append(msg)
            return True
        return False
