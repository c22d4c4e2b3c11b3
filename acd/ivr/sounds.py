"""Which sound files a flow may play, per language, and where Asterisk finds
them: the one lookup that ``acd flow validate --sounds``, ``acd prompts``
and the start-up check share.

Asterisk 22 looks a sound up in ``main/file.c``: ``fileexists_core()`` tries
the channel's language (``preflang``, dialect and all: ``zh_TW``), then that
language with each ``_suffix`` cut off (``zh``), then no language at all,
then the default language ``en`` (``DEFAULT_LANGUAGE`` of ``asterisk.h``)
unless it was tried already; ``fileexists_test()`` puts the language in
front of the name (``languageprefix = yes``, the default:
``sounds/zh/acd/welcome``), and ``filehelper()`` takes the first file with
the extension of any format module loaded (``formats/format_*.c``, the
``.exts`` of each).  :func:`lookup_dirs` and :data:`SOUND_EXTENSIONS` are
those, read from the 22.9.0 sources.

The engine composes numbers, money, dates and times from the pack's own
prompts (``acd/num/...``, ``acd/date/...``, ``acd/time/...``) in the
languages of ``say_composed`` (acd.yaml; :mod:`acd.ivr.saying`), so there
those are needed too: :func:`say_prompts`.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Collection, Iterator
from pathlib import Path

from acd.ivr import prompt_names as pn
from acd.ivr.nodes import Flow, Node, Prompt, Say
from acd.ivr.saying import COMPOSED_LANGUAGES, composes

#: Asterisk's default language: tried last (main/file.c, asterisk.h)
DEFAULT_LANGUAGE = "en"
#: a language code as Asterisk takes it (``CHANNEL(language)``: zh, yue, en_US,
#: pt_BR, zh_CN): it names a folder under ``sounds/``, so no ``/`` nor ``.``
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}([_-][A-Za-z0-9]{1,8}){0,3}")
#: a folder is listed up to this many entries (a bound on a mounted folder)
MAX_ENTRIES = 100_000


def is_language_code(text: str) -> bool:
    """``text`` is a language code (:data:`LANGUAGE_CODE`), safe as a folder name."""
    return LANGUAGE_CODE.fullmatch(text) is not None


class SoundsPathError(ValueError):
    """A path under the sounds folder would lead outside it."""

#: the file extensions of the audio formats Asterisk 22 plays (the ``.exts``
#: of formats/format_*.c and addons/format_mp3.c; ``wav49`` is written
#: ``.WAV`` on disk, build_filename()), most common first; a sound counts as
#: present when a file with any of them exists
SOUND_EXTENSIONS = (
    "wav", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "wav16", "WAV", "g729", "mp3",
    "ogg", "pcm", "ul", "mu", "ulw", "al", "alw", "au", "slin", "raw", "sln12", "sln24",
    "sln32", "sln44", "sln48", "sln96", "sln192", "g719", "g723", "g723sf", "g726-40",
    "g726-32", "g726-24", "g726-16", "ilbc", "spx", "spx16", "spx32", "siren7", "siren14",
    "vox",
)
_EXTENSIONS = frozenset(SOUND_EXTENSIONS)

#: the prompts a say node needs, per kind, in a language the engine composes
#: numbers in (digits and units; 两; minus; the decimal point; date and time
#: words); none for ``alpha`` (Asterisk's own ``letters/``)
SAY_NEEDS: dict[str, tuple[str, ...]] = {
    "digits": pn.NUM_DIGITS,
    "number": pn.NUMBER_PROMPTS,
    "money": pn.NUMBER_PROMPTS,
    "date": (*pn.NUMBER_PROMPTS, pn.DATE_YEAR, pn.DATE_MONTH, pn.DATE_DAY, *pn.WEEKDAYS),
    "time": (*pn.NUMBER_PROMPTS, pn.TIME_HOUR, pn.TIME_MINUTE, pn.TIME_AM, pn.TIME_PM),
    "datetime": (*pn.NUMBER_PROMPTS, *pn.DATE_TIME_PROMPTS),
    "alpha": (),
}


def lookup_dirs(language: str | None) -> list[str]:
    """The folders under ``sounds/`` that Asterisk tries, in order, for a
    channel of ``language`` ("" is ``sounds/`` itself): ``zh_TW`` -> zh_TW,
    zh, "", en; ``en`` -> en, ""."""
    out: list[str] = []
    lang = language or ""
    while lang:
        out.append(lang)
        if "_" not in lang:
            break
        lang = lang.rsplit("_", 1)[0]
    out.append("")
    if language != DEFAULT_LANGUAGE and lang != DEFAULT_LANGUAGE:
        out.append(DEFAULT_LANGUAGE)
    return out


def say_prompts(kind: str) -> tuple[str, ...]:
    """The number, date and time prompts a say node of ``kind`` needs in a
    language the engine composes in."""
    return SAY_NEEDS.get(kind, ())


class SoundsFolder:
    """An Asterisk sounds folder (``/var/lib/asterisk/sounds``, or a copy),
    searched as Asterisk does; each folder under it is listed once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._listings: dict[str, dict[str, list[str]]] = {}

    def path(self, rel: str) -> Path:
        """``rel`` (``zh/acd/welcome.wav``) under the root; SoundsPathError
        for an absolute path or one that leads out of the root (``..``)."""
        norm = posixpath.normpath(rel) if rel else "."
        if posixpath.isabs(norm) or norm == ".." or norm.startswith("../") \
                or Path(rel).is_absolute():
            raise SoundsPathError(f"{rel!r} is outside the sounds folder {self.root}")
        return self.root / norm if norm != "." else self.root

    def files(self, folder: str) -> dict[str, list[str]]:
        """Name without extension -> the sound files of that name in ``folder``
        (relative to the root: ``zh/acd``), from one listing of it (at most
        :data:`MAX_ENTRIES` entries; no stat per file where the file system
        gives the entry's type, as NFS and local ones do)."""
        got = self._listings.get(folder)
        if got is None:
            got = {}
            where = self.path(folder)
            found: list[str] = []
            try:
                with os.scandir(where) as it:
                    for entry in it:
                        _stem, dot, ext = entry.name.rpartition(".")
                        if dot and ext in _EXTENSIONS and entry.is_file():
                            found.append(entry.name)
                        if len(found) >= MAX_ENTRIES:
                            break
            except OSError:
                found = []
            for name in sorted(found):
                got.setdefault(name.rpartition(".")[0], []).append(name)
            self._listings[folder] = got
        return got

    def forget(self) -> None:
        """Drop the listings (after files were written or removed)."""
        self._listings.clear()

    def in_folder(self, language: str | None, name: str) -> list[str]:
        """The files of sound ``name`` in exactly one language's folder (None:
        the no-language folder), relative to the root (``zh/acd/welcome.wav``)."""
        rel = f"{language}/{name}" if language else name
        folder, _, stem = rel.rpartition("/")
        return [f"{folder}/{f}" if folder else f for f in self.files(folder).get(stem, [])]

    def locate(self, language: str | None, name: str) -> tuple[str, str] | None:
        """(folder tried, file) of the file Asterisk plays for ``name`` on a
        channel of ``language`` (the folder "" is the root), or None."""
        for lang in lookup_dirs(language):
            found = self.in_folder(lang or None, name)
            if found:
                return lang, found[0]
        return None

    def find(self, language: str | None, name: str) -> str | None:
        """The file Asterisk plays for ``name`` on a channel of ``language``
        (relative to the root), or None: it finds none."""
        got = self.locate(language, name)
        return got[1] if got else None


# ------------------------------------------------------- what a flow plays


def node_prompts(node: Node) -> Iterator[tuple[str, Prompt]]:
    """(field, prompt) for every prompt field of a node."""
    for key in ("prompt", "invalid_prompt", "timeout_prompt"):
        value = getattr(node.body, key, None)
        if isinstance(value, Prompt):
            yield key, value


def node_sounds(flow: Flow, node: Node, compose: Collection[str] = COMPOSED_LANGUAGES
                ) -> Iterator[tuple[str, str, str]]:
    """(field, language, sound name) for every sound ``node`` may play, in
    each of the flow's languages: its prompts as resolved for that language,
    a say node's money units and, where the engine composes numbers, the
    number, date and time prompts its kind needs."""
    for key, prompt in node_prompts(node):
        for lang in flow.languages:
            for name in prompt.resolve(lang, flow.default_language):
                yield key, lang, name
    body = node.body
    if isinstance(body, Say):
        for lang in flow.languages:
            if body.say == "money":
                yield "say", lang, flow.money_unit
                yield "say", lang, flow.money_cents
            if composes(body.say, lang, compose):
                for name in say_prompts(body.say):
                    yield "say", lang, name
                if body.say == "money" and flow.money_cents == pn.FEN:
                    yield "say", lang, pn.JIAO  # the cents as 角 and 分


def flow_sounds(flow: Flow, compose: Collection[str] = COMPOSED_LANGUAGES
                ) -> dict[str, list[str]]:
    """Language -> the sounds the flow's nodes (sub-flows included: they are
    inlined) may play in it, each once, in file order."""
    out: dict[str, dict[str, None]] = {lang: {} for lang in flow.languages}
    for node in flow.nodes.values():
        for _key, lang, name in node_sounds(flow, node, compose):
            out[lang][name] = None
    return {lang: list(names) for lang, names in out.items()}
