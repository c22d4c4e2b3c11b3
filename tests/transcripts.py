"""Loader for the recordings of a real Asterisk 22 in ``asterisk-transcripts/``.

The folder is ``../shared/asterisk-transcripts`` next to the repository root,
or wherever the ``ACD_TRANSCRIPTS`` environment variable points.  Each ``.txt``
file is a sequence of blocks headed ``--- <kind> t=<seconds>``; the lines
that follow a header, up to the next one, are the block's content.

:func:`load_blocks` returns the blocks of one file in order as
:class:`Block` ``(kind, t, raw)`` tuples, where ``raw`` is what went over the
wire:

* ``AMI banner``: the greeting line plus ``\\r\\n``;
* ``AMI >>`` / ``AMI <<``: the ``Key: Value`` lines joined with ``\\r\\n`` and
  terminated by ``\\r\\n\\r\\n``;
* ``AGI env``: the ``agi_*`` lines each ending in ``\\n`` plus the empty line
  that closes the request header;
* ``AGI >>`` / ``AGI <<``: the line plus ``\\n``;
* ``AGI trailing``: the recorded Python bytes literal (``b'200 result=0\\n'``),
  or ``b""`` for ``<timeout>`` (nothing arrived);
* ``AMI`` (undocumented in the README, last block of every file): ``<EOF>``,
  Asterisk closed the AMI connection; ``raw`` is ``b""``.

If the folder is absent, :data:`SKIP_REASON` says why and :func:`file_params`
yields a single skipped parameter, so transcript-driven tests skip instead of
erroring.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "ACD_TRANSCRIPTS"
DEFAULT_DIR = REPO_ROOT / "tests" / "data" / "asterisk-transcripts"

AMI_BANNER = "AMI banner"
AMI_OUT = "AMI >>"  # client -> Asterisk (actions)
AMI_IN = "AMI <<"  # Asterisk -> client (responses, events)
AMI_EOF = "AMI"  # content "<EOF>": Asterisk closed the AMI socket
AGI_ENV = "AGI env"
AGI_OUT = "AGI >>"  # FastAGI server -> Asterisk (commands)
AGI_IN = "AGI <<"  # Asterisk -> FastAGI server (one reply line)
AGI_TRAILING = "AGI trailing"
KINDS = frozenset(
    {AMI_BANNER, AMI_OUT, AMI_IN, AMI_EOF, AGI_ENV, AGI_OUT, AGI_IN, AGI_TRAILING}
)

_HEADER_RE = re.compile(r"^--- (?P<kind>.+?) t=(?P<t>\d+(?:\.\d+)?)$")


class Block(NamedTuple):
    """One recorded block: its kind, its time stamp and the bytes on the wire."""

    kind: str
    t: float
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")

    @property
    def lines(self) -> list[str]:
        """The block's lines without their terminators (no closing empty line)."""
        if self.kind in (AMI_OUT, AMI_IN):
            return self.text[: -len("\r\n\r\n")].split("\r\n")
        if self.kind == AMI_BANNER:
            return [self.text[: -len("\r\n")]]
        if self.kind == AGI_ENV:
            return self.text[: -len("\n\n")].split("\n")
        return self.text.splitlines()

    @property
    def headers(self) -> list[tuple[str, str]]:
        """AMI/AGI-env lines as ordered ``(key, value)`` pairs (``Key: Value``)."""
        if self.kind not in (AMI_OUT, AMI_IN, AGI_ENV):
            raise ValueError(f"{self.kind!r} blocks have no headers")
        pairs = []
        for line in self.lines:
            key, sep, value = line.partition(": ")
            if not sep:
                if not line.endswith(":"):
                    raise ValueError(f"not a 'Key: Value' line: {line!r}")
                key, value = line[:-1], ""
            pairs.append((key, value))
        return pairs

    @property
    def timed_out(self) -> bool:
        """``AGI trailing`` recorded as ``<timeout>`` (nothing arrived)."""
        return self.kind == AGI_TRAILING and not self.raw


def transcripts_dir() -> Path | None:
    """The transcript folder, or None if it does not exist."""
    configured = os.environ.get(ENV_VAR)
    path = Path(configured) if configured else DEFAULT_DIR
    return path if path.is_dir() else None


def skip_reason() -> str | None:
    """Why transcript-driven tests must be skipped, or None if they can run."""
    if transcripts_dir() is not None:
        return None
    configured = os.environ.get(ENV_VAR)
    if configured:
        return f"transcripts folder {configured!r} (from ${ENV_VAR}) does not exist"
    return f"transcripts folder {str(DEFAULT_DIR)!r} is absent (set ${ENV_VAR} to override)"


SKIP_REASON = skip_reason()
requires_transcripts = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


#: files of the folder that are recordings but not in the block format
#: (queue_log.txt: a real Asterisk's queue_log, read by tests/test_queue_log.py)
NOT_TRANSCRIPTS = frozenset({"queue_log.txt"})


def transcript_files() -> list[Path]:
    """All ``*.txt`` recordings, sorted by name (empty if the folder is absent)."""
    folder = transcripts_dir()
    if folder is None:
        return []
    return sorted(p for p in folder.glob("*.txt") if p.name not in NOT_TRANSCRIPTS)


def file_params() -> list[object]:
    """``pytest.param`` per transcript file (id = file name), for parametrize.

    If the folder is absent this is one skipped parameter carrying
    :data:`SKIP_REASON`, so the test shows up as skipped rather than vanishing.
    """
    files = transcript_files()
    if not files:
        return [pytest.param(None, id="no-transcripts",
                             marks=pytest.mark.skip(reason=SKIP_REASON or "no transcripts"))]
    return [pytest.param(path, id=path.stem) for path in files]


def transcript_path(name: str | Path) -> Path:
    """A file of the folder by name (``"answered.txt"`` or ``"answered"``), or a path."""
    path = Path(name)
    if path.is_absolute() or path.parent != Path("."):
        return path
    folder = transcripts_dir()
    if folder is None:
        pytest.skip(SKIP_REASON or "no transcripts")
    if path.suffix != ".txt":
        path = path.with_name(path.name + ".txt")
    return folder / path


def load_blocks(name: str | Path) -> list[Block]:
    """The ordered blocks of one transcript file (see the module docstring)."""
    return list(_load(transcript_path(name).resolve()))


@cache
def _load(path: Path) -> tuple[Block, ...]:
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks: list[Block] = []
    kind: str | None = None
    t = 0.0
    body: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        m = _HEADER_RE.match(line)
        if m is not None:
            if kind is not None:
                blocks.append(_make_block(path, kind, t, body))
            kind, t, body = m["kind"], float(m["t"]), []
            if kind not in KINDS:
                raise ValueError(f"{path.name}:{lineno}: unknown block kind {kind!r}")
        elif kind is None:
            raise ValueError(f"{path.name}:{lineno}: content before the first block header")
        else:
            body.append(line)
    if kind is not None:
        blocks.append(_make_block(path, kind, t, body))
    return tuple(blocks)


def _make_block(path: Path, kind: str, t: float, body: list[str]) -> Block:
    where = f"{path.name}: {kind} t={t}"
    if not body:
        raise ValueError(f"{where}: empty block")
    if kind in (AMI_OUT, AMI_IN):
        raw = ("\r\n".join(body) + "\r\n\r\n").encode("utf-8")
    elif kind == AGI_ENV:
        raw = "".join(f"{line}\n" for line in body).encode("utf-8") + b"\n"
    else:
        if len(body) != 1:
            raise ValueError(f"{where}: expected one line, got {len(body)}")
        line = body[0]
        if kind == AMI_BANNER:
            raw = (line + "\r\n").encode("utf-8")
        elif kind in (AGI_OUT, AGI_IN):
            raw = (line + "\n").encode("utf-8")
        elif kind == AGI_TRAILING:
            if line == "<timeout>":
                raw = b""
            else:
                value = ast.literal_eval(line)
                if not isinstance(value, bytes):
                    raise ValueError(f"{where}: not a bytes literal: {line!r}")
                raw = value
        else:  # AMI_EOF
            if line != "<EOF>":
                raise ValueError(f"{where}: expected <EOF>, got {line!r}")
            raw = b""
    return Block(kind, t, raw)


# ------------------------------------------------------------------ helpers


def of_kind(blocks: Iterable[Block], *kinds: str) -> list[Block]:
    """The blocks of the given kinds, in order."""
    return [b for b in blocks if b.kind in kinds]


def ami_server_stream(blocks: Iterable[Block]) -> bytes:
    """Everything Asterisk sent on the AMI socket: banner + every ``AMI <<``."""
    return b"".join(b.raw for b in blocks if b.kind in (AMI_BANNER, AMI_IN))


def ami_client_stream(blocks: Iterable[Block]) -> bytes:
    """Everything the client sent on the AMI socket: every ``AMI >>``."""
    return b"".join(b.raw for b in blocks if b.kind == AMI_OUT)


def agi_reply_lines(blocks: Iterable[Block]) -> list[str]:
    """Every line Asterisk wrote on the FastAGI socket after the request
    header (``AGI <<`` and the ``AGI trailing`` bytes), in order, without ``\\n``."""
    out: list[str] = []
    for b in blocks:
        if b.kind in (AGI_IN, AGI_TRAILING):
            out.extend(b.raw.decode("utf-8").splitlines())
    return out
