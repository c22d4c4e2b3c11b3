"""Every sound the engine may play with a flow, per language, and which of
them Asterisk would not find in a sounds folder.

A flow plays its nodes' prompts (sub-flows included) in each of its
``languages:``; the engine plays its own prompts (:mod:`acd.ivr.prompt_names`:
the hold announcements, the fallbacks, the money units) in each of them,
and in the languages it composes numbers in, the number prompts (the hold
announcement says the caller's position and the wait), plus the date and
time prompts where a say node says a date or a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from acd.ivr import prompt_names as pn
from acd.ivr.nodes import Flow
from acd.ivr.saying import COMPOSED_LANGUAGES, composes
from acd.ivr.sounds import SoundsFolder, flow_sounds

#: language -> sound names, in the order first met
Needs = dict[str, list[str]]


def needed(flows: Iterable[Flow], compose: Collection[str] = COMPOSED_LANGUAGES) -> Needs:
    """What the engine may play with these flows, per language (each
    flow's ``languages:``; ``compose``: ``say_composed`` of acd.yaml,
    :func:`acd.ivr.saying.composes`)."""
    out: dict[str, dict[str, None]] = {}
    for flow in flows:
        for lang, names in flow_sounds(flow, compose).items():
            got = out.setdefault(lang, {})
            got.update(dict.fromkeys(names))
            got.update(dict.fromkeys(pn.ENGINE_PROMPTS))
            if composes("number", lang, compose):
                got.update(dict.fromkeys(pn.NUMBER_PROMPTS))
    return {lang: list(names) for lang, names in out.items()}


def missing(needs: Mapping[str, list[str]], sounds: str | Path | SoundsFolder) -> Needs:
    """Language -> the sounds of ``needs`` that Asterisk finds no file for
    (its lookup order: :func:`acd.ivr.sounds.lookup_dirs`); languages with
    none missing left out."""
    folder = sounds if isinstance(sounds, SoundsFolder) else SoundsFolder(sounds)
    out: Needs = {}
    for lang, names in needs.items():
        gone = [n for n in names if folder.find(lang, n) is None]
        if gone:
            out[lang] = gone
    return out


def summary(gone: Mapping[str, list[str]], most: int = 8) -> str:
    """``zh: acd/welcome, acd/main-menu; yue: 31 (acd/a, acd/b, ... and 23 more)``."""
    parts = []
    for lang, names in gone.items():
        shown = ", ".join(names[:most])
        if len(names) > most:
            shown = f"{len(names)} ({shown} and {len(names) - most} more)"
        parts.append(f"{lang}: {shown}")
    return "; ".join(parts)
