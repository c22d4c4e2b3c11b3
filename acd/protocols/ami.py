"""Asterisk Manager Interface codec: bytes in, typed messages out, and back.

Pure: no sockets, no clock.  Framing is on ``\\r\\n\\r\\n``; every message is
decoded from UTF-8 *as a whole*, so a multi-byte character that straddles two
TCP reads arrives intact (panoramisk's stock protocol decodes per chunk and
silently drops such characters).

The same codec serves both sides: the engine's AMI client decodes responses
and events, the PBX simulator decodes actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

EOL = b"\r\n"
EOM = b"\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"

#: A message larger than this without a terminator is a protocol error.
DEFAULT_MAX_MESSAGE = 1 << 20


class AmiProtocolError(Exception):
    """The peer broke AMI framing in a way the connection cannot recover from."""


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
        index: dict[str, str] = {}
        for key, value in self.headers:
            index.setdefault(key.lower(), value)
        object.__setattr__(self, "_index", index)

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
    """A frame that could not be parsed; the stream itself stays usable."""

    reason: str
    raw: bytes


AmiItem = AmiBanner | AmiMessage | AmiFrameError


def parse_message(raw: bytes) -> AmiMessage | AmiFrameError:
    """Parse one frame (without its terminating blank line)."""
    text = raw.decode("utf-8", errors="replace")
    pairs: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.split("\r\n"), start=1):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            return AmiFrameError(f"line {lineno} is not 'Key: Value': {line[:80]!r}", raw)
        if value.startswith(" "):
            value = value[1:]
        pairs.append((key, value))
    if not pairs:
        return AmiFrameError("empty message", raw)
    return AmiMessage(tuple(pairs))


class AmiDecoder:
    """Incremental AMI stream decoder.

    ``feed(bytes)`` returns the complete items found so far.  With
    ``expect_banner`` (client side) the first line is the greeting.
    """

    __slots__ = ("_buf", "_events", "_expect_banner", "_max", "skipped")

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
        self.skipped = 0

    def feed(self, data: bytes) -> list[AmiItem]:
        self._buf += data
        out: list[AmiItem] = []
        if self._expect_banner:
            nl = self._buf.find(EOL)
            if nl < 0:
                self._check_size()
                return out
            line = bytes(self._buf[:nl]).decode("utf-8", errors="replace")
            del self._buf[: nl + 2]
            self._expect_banner = False
            if not line.startswith(BANNER_PREFIX):
                raise AmiProtocolError(f"not an Asterisk manager: greeting was {line[:80]!r}")
            out.append(AmiBanner(line[len(BANNER_PREFIX):].strip()))
        buf = self._buf
        start = 0
        while True:
            # Tolerate blank lines between messages (some peers send extra CRLFs).
            while buf.startswith(EOL, start):
                start += 2
            end = buf.find(EOM, start)
            if end < 0:
                break
            if self._events is not None and buf.startswith(b"Event: ", start):
                eol = buf.find(EOL, start, end)
                name = bytes(buf[start + 7: end if eol < 0 else eol])
                if name not in self._events and buf.find(b"\r\nActionID:", start, end) < 0:
                    self.skipped += 1
                    start = end + 4
                    continue
            out.append(parse_message(bytes(buf[start:end])))
            start = end + 4
        if start:
            del buf[:start]
        self._check_size()
        return out

    def _check_size(self) -> None:
        if len(self._buf) > self._max:
            raise AmiProtocolError(
                f"message larger than {self._max} bytes without a terminating blank line"
            )


def encode_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode ordered headers as one AMI message (UTF-8, CRLF, blank line)."""
    parts: list[str] = []
    for key, value in headers:
        if "\r" in value or "\n" in value:
            raise ValueError(f"AMI header {key!r} contains a line break")
        parts.append(f"{key}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def encode(msg: AmiMessage) -> bytes:
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
    """``Variable: a=1`` headers (possibly ``a=1,b=2`` in one header) as a dict."""
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
    chunk = ""
    for piece in raw.split(","):
        if chunk and "=" in piece:
            yield chunk
            chunk = piece
        else:
            chunk = f"{chunk},{piece}" if chunk else piece
    if chunk:
        yield chunk


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
        """Offer a message; returns True if it belonged to this action."""
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
