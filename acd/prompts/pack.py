"""The prompts file (``ivr_flows/prompts.yaml``): the text of every prompt,
per language, and the voice that says each language.

::

    voices:                           # language -> espeak-ng voice (the first one installed)
      zh: [cmn-latn-pinyin, cmn]
      en: en-us
      nan: {voice: cmn-latn-pinyin, text_from: zh}   # no voice of its own: zh's text
    prompts:
      acd/welcome:
        zh: 您好，欢迎致电客户服务热线。
        en: Hello, and welcome to the customer service hotline.
      acd/choose-language:
        all:                          # the same in every language, in several voices
          - {zh: 普通话请按1。}
          - {en: For English, press 9.}

A text is a string (said in its language's voice) or a list of pieces, each
a string or ``{language: text}`` (said in that language's voice).  ``all``
gives the text of every language that has none of its own.  Read through
:mod:`acd.loaders.yamlpos`: every error names the file, line and column.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from acd.ivr.sounds import LANGUAGE_CODE
from acd.loaders.yamlpos import Reader, YamlError, read_text

#: the prompts file beside a flow, when no other is named
DEFAULT_NAME = "prompts.yaml"
#: a prompt's text is at most this long (espeak-ng's time is bounded by it)
MAX_TEXT = 600
#: a language code as Asterisk takes it (``CHANNEL(language)``: zh, yue, pt_BR);
#: the same pattern flows' ``languages:`` are checked against
_LANGUAGE = LANGUAGE_CODE
#: a sound name as flows write them (acd.ivr.parse_node.parse_sound), no extension
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
#: bumped when the rendering changes, so that synthesized files are made again
RENDER_VERSION = 1


class PromptsError(YamlError):
    """The prompts file is wrong (``file:line:column: problem``)."""


#: (voice, text) pieces said one after the other
Pieces = tuple[tuple[str, str], ...]
#: (language whose voice says it, or None: the language's own; text)
_Piece = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class Voice:
    """How a language is said: espeak-ng voices (the first installed one
    speaks) and the language whose text it reads when it has none."""

    voices: tuple[str, ...]
    text_from: str | None = None


@dataclass(frozen=True, slots=True)
class PromptText:
    name: str
    #: language (or ``all``) -> pieces
    texts: Mapping[str, tuple[_Piece, ...]]
    line: int = 0


@dataclass(frozen=True, slots=True)
class PromptPack:
    file: str
    voices: Mapping[str, Voice]
    prompts: Mapping[str, PromptText]
    #: name -> (line, column) of each prompt, for messages
    places: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def pieces(self, name: str, language: str) -> Pieces | None:
        """The pieces of ``name`` in ``language`` as (language of the voice,
        text), or None: the pack has no text for it."""
        prompt = self.prompts.get(name)
        if prompt is None:
            return None
        got = prompt.texts.get(language)
        if got is None:
            voice = self.voices.get(language)
            if voice is not None and voice.text_from is not None:
                got = prompt.texts.get(voice.text_from)
        if got is None:
            got = prompt.texts.get("all")
        if got is None:
            return None
        return tuple((lang or language, text) for lang, text in got)

    def fingerprint(self, name: str, language: str, fmt: str) -> str | None:
        """What a file of ``name`` in ``language`` and ``fmt`` is made from
        now (:func:`text_hash`), or None: no text.  PromptsError when a
        piece's language has no voice (:meth:`voice`)."""
        pieces = self.pieces(name, language)
        if pieces is None:
            return None
        return text_hash(tuple((",".join(self.voice(lang, name).voices), text)
                               for lang, text in pieces), fmt)

    def voice(self, language: str, name: str = "") -> Voice:
        """The voice of ``language``; PromptsError naming the pack (and the
        prompt ``name`` whose text needs it) when ``voices:`` has none: an
        ``all:`` text said in a flow language the pack gives no voice."""
        got = self.voices.get(language)
        if got is None:
            line, col = self.places.get(name, (0, 0))
            for_what = f"prompt {name!r}: " if name else ""
            raise PromptsError(self.file, line, col,
                               f"{for_what}no voice for language {language} in {self.file} "
                               f"voices: ({', '.join(self.voices)}); add one "
                               f"(`{language}: {{voice: ..., text_from: ...}}`) or a text "
                               f"in {language}")
        return got


def text_hash(pieces: Pieces, fmt: str) -> str:
    """What a synthesized file was made from (voices, texts, format), hashed:
    a file whose hash differs is made again."""
    data = json.dumps([RENDER_VERSION, fmt, [list(p) for p in pieces]], ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def default_file(flow_file: str | Path) -> Path:
    """``prompts.yaml`` beside the flow file."""
    return Path(flow_file).parent / DEFAULT_NAME


def load_pack(path: str | Path) -> PromptPack:
    """Read and check a prompts file; :class:`PromptsError` naming the place."""
    text, file = read_text(path, PromptsError, "prompts file")
    return parse_pack(text, file)


def parse_pack(text: str, file: str = "<prompts>") -> PromptPack:
    r = Reader(file, PromptsError)
    root = r.compose(text)
    top = r.mapping(root, "top level")
    r.known(top, "top level", {"voices", "prompts"}, {"voices", "prompts"}, root)
    voices = _voices(r, top["voices"][1])
    prompts: dict[str, PromptText] = {}
    places: dict[str, tuple[int, int]] = {}
    for name, (knode, vnode) in r.mapping(top["prompts"][1], "prompts").items():
        if not _NAME.fullmatch(name) or ".." in name or "." in name.rsplit("/", 1)[-1]:
            raise r.err(knode, f"prompts: {name!r} is not a sound name (letters, digits, "
                               "_ - / only, without an extension: acd/welcome)")
        prompts[name] = _prompt(r, name, vnode, voices)
        places[name] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
    return PromptPack(file, voices, prompts, places)


def _language(r: Reader, node: yaml.Node, lang: str, what: str) -> str:
    if not _LANGUAGE.fullmatch(lang):
        raise r.err(node, f"{what}: {lang!r} is not a language code (zh, yue, en, pt_BR)")
    return lang


def _voices(r: Reader, node: yaml.Node) -> dict[str, Voice]:
    out: dict[str, Voice] = {}
    at: dict[str, yaml.Node] = {}  # where each text_from is written
    entries = r.mapping(node, "voices")
    if not entries:
        raise r.err(node, "voices is empty")
    for lang, (knode, vnode) in entries.items():
        _language(r, knode, lang, "voices")
        what = f"voices.{lang}"
        text_from = None
        if isinstance(vnode, yaml.MappingNode):
            fields = r.mapping(vnode, what)
            r.known(fields, what, {"voice", "text_from"}, {"voice"}, vnode)
            names = r.strings(fields["voice"][1], f"{what}.voice")
            if "text_from" in fields:
                at[lang] = fields["text_from"][1]
                text_from = r.string(at[lang], f"{what}.text_from")
        else:
            names = r.strings(vnode, what)
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_+-]+", name):
                raise r.err(vnode, f"{what}: {name!r} is not an espeak-ng voice name (en-us, "
                                   "yue)")
        out[lang] = Voice(tuple(names), text_from)
    for lang, v in out.items():
        if v.text_from is None:
            continue
        if v.text_from not in out or v.text_from == lang:
            raise r.err(at[lang], f"voices.{lang}.text_from: {v.text_from!r} is not another "
                                  f"language of voices ({', '.join(out)})")
        if out[v.text_from].text_from is not None:
            raise r.err(at[lang], f"voices.{lang}.text_from: {v.text_from!r} reads another "
                               "language's text itself; name that one")
    return out


def _prompt(r: Reader, name: str, node: yaml.Node, voices: Mapping[str, Voice]) -> PromptText:
    texts: dict[str, tuple[_Piece, ...]] = {}
    entries = r.mapping(node, f"prompt {name!r}")
    if not entries:
        raise r.err(node, f"prompt {name!r} has no text")
    for lang, (knode, vnode) in entries.items():
        if lang != "all" and lang not in voices:
            raise r.err(knode, f"prompt {name!r}: {lang!r} is not a language of voices "
                               f"({', '.join(voices)}) nor 'all'")
        texts[lang] = _text(r, vnode, f"prompt {name!r} ({lang})", voices)
    return PromptText(name, texts, node.start_mark.line + 1)


def _text(r: Reader, node: yaml.Node, what: str, voices: Mapping[str, Voice]
          ) -> tuple[_Piece, ...]:
    items = r.sequence(node, what) if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        raise r.err(node, f"{what}: the text is empty")
    out: list[_Piece] = []
    total = 0
    for item in items:
        lang: str | None = None
        if isinstance(item, yaml.MappingNode):
            one = r.mapping(item, what)
            if len(one) != 1:
                raise r.err(item, f"{what}: a piece is a text or {{language: text}}, one "
                                  "language per piece")
            ((lang, (knode, item)),) = one.items()
            if lang not in voices:
                raise r.err(knode, f"{what}: {lang!r} is not a language of voices "
                                   f"({', '.join(voices)})")
        text = r.string(item, what).strip()
        if not text:
            raise r.err(item, f"{what}: the text is empty")
        total += len(text)
        if total > MAX_TEXT:
            raise r.err(item, f"{what}: the text is longer than {MAX_TEXT} characters")
        out.append((lang, text))
    return tuple(out)
