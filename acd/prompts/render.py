"""Speech from text: espeak-ng says each piece, sox joins the pieces and
makes what Asterisk plays (8 kHz, mono, 16-bit; ``.wav``, ``.gsm`` or
``.ulaw``), loudness brought to -3 dBFS peak.

Both are Debian packages (``apt-get install espeak-ng sox``); every run has a
time bound, and a tool that is missing, fails or takes too long is a
:class:`RenderError` that says which and why.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: the formats ``acd prompts build`` writes -> sox's output options
FORMATS: dict[str, tuple[str, ...]] = {
    "wav": ("-t", "wav", "-e", "signed-integer", "-b", "16"),
    "gsm": ("-t", "gsm",),
    "ulaw": ("-t", "ul", "-e", "u-law"),
}
RATE = 8000
#: one espeak-ng or sox run may take this long at most
TIMEOUT_S = 30.0
#: the Debian package of each tool
PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


class RenderError(Exception):
    """A prompt could not be rendered; ``tool_missing``: a tool is not installed
    (nothing can be rendered)."""

    def __init__(self, message: str, tool_missing: bool = False) -> None:
        super().__init__(message)
        self.tool_missing = tool_missing


def tool(name: str) -> str:
    """The path of ``name`` (espeak-ng or sox), or RenderError naming the
    Debian package that has it."""
    path = shutil.which(name)
    if path is None:
        raise RenderError(f"{name} is not installed (it renders the prompts): install it, "
                          f"e.g. `apt-get install {PACKAGES.get(name, name)}` on Debian or "
                          "Ubuntu", tool_missing=True)
    return path


def _run(args: list[str], what: str, stdin: bytes | None = None,
         timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{what}: {Path(args[0]).name} took more than {timeout_s:g} s"
                          ) from None
    except OSError as exc:
        raise RenderError(f"{what}: cannot run {args[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"{what}: {Path(args[0]).name} failed (exit {done.returncode})"
                          + (f": {why[-1]}" if why else ""))
    return done


def installed_voices(timeout_s: float = TIMEOUT_S) -> frozenset[str]:
    """The voice names espeak-ng knows (``espeak-ng --voices``: the language
    column, the voice name and the file, lower case)."""
    out = _run([tool("espeak-ng"), "--voices"], "listing the voices", None, timeout_s)
    names: set[str] = set()
    for line in out.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.update(c.lower() for c in (cols[1], cols[3], cols[4]))
    return frozenset(names)


def pick_voice(candidates: Sequence[str], installed: frozenset[str]) -> str | None:
    """The first of ``candidates`` that espeak-ng has."""
    return next((v for v in candidates if v.lower() in installed), None)


def render(pieces: Sequence[tuple[str, str]], fmt: str, out: Path,
           timeout_s: float = TIMEOUT_S) -> None:
    """Say each (voice, text) piece with espeak-ng, one after the other, into
    ``out`` in ``fmt`` (:data:`FORMATS`), 8 kHz mono."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    espeak, sox = tool("espeak-ng"), tool("sox")
    with tempfile.TemporaryDirectory(prefix="acd-prompt-") as tmp:
        parts: list[str] = []
        for i, (voice, text) in enumerate(pieces):
            part = str(Path(tmp) / f"{i}.wav")
            _run([espeak, "-v", voice, "-b", "1", "-w", part, "--stdin"],
                 f"saying {text[:40]!r} with voice {voice}", text.encode("utf-8"), timeout_s)
            if not Path(part).is_file() or Path(part).stat().st_size <= 44:
                raise RenderError(f"saying {text[:40]!r} with voice {voice}: espeak-ng wrote "
                                  "no sound")
            if len(pieces) > 1:  # sox joins files of one rate only (espeak-ng: 22.05 kHz,
                # an MBROLA voice 16 kHz): each piece at 8 kHz first
                same = str(Path(tmp) / f"{i}-8k.wav")
                _run([sox, part, "-r", str(RATE), "-c", "1", "-b", "16", same],
                     f"converting {text[:40]!r}", None, timeout_s)
                part = same
            parts.append(part)
        _run([sox, *parts, *FORMATS[fmt], "-r", str(RATE), "-c", "1", str(out), "norm", "-3"],
             f"converting to {fmt}", None, timeout_s)
