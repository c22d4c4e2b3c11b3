"""One simulated caller's walk through an IVR flow: the keys drawn at each
menu, where the walk ends (a queue, or the end of the call in the IVR), and
the key script the live simulator's caller plays.  The virtual and the live
simulator both walk callers here (through :mod:`acd.loadsim.draws`), so the
same seed draws the same keys in both.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["IvrWalk", "walk", "walk_ivr"]


@dataclass(frozen=True, slots=True)
class IvrWalk:
    """Where one simulated caller's walk through a flow ended."""

    queue: str | None  # None: the call ended in the IVR
    priority: int
    path: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # set by the flow (language, dialect, ...)
    #: the caller's key script for the live simulator: one entry per input
    #: prompt the engine plays (see acd/runtime/ivr_agi.py), the key on the last
    script: tuple[str, ...]


def _entries(step: Any, digit: str | None) -> list[str]:
    """The key-script entries for one IVR step: one per input prompt the engine
    plays for it (acd/runtime/ivr_agi.py), the key on the last."""
    kind = type(step).__name__
    prompts = tuple(getattr(step, "prompts", ()))
    if kind == "PlayPrompt":
        return [""] * len(prompts) if step.escape_digits else []
    if kind == "SayValue":
        return [""] * (len(prompts) + 1) if step.escape_digits else []
    if kind == "CollectDigit":
        return [""] * max(0, len(prompts) - 1) + [digit or ""]
    if kind == "CollectDigits":
        return [""] * (1 if step.typed else max(1, len(prompts)))
    if kind == "RecordFile":
        return [""]
    return []


def walk(flow: Any, keys: Mapping[str, Sequence[tuple[str | None, float]]],
         rng: random.Random, attributes: Mapping[str, str] | None = None,
         now: dt.datetime | None = None) -> IvrWalk:
    """Walk one caller through ``flow``: at a menu node the key is drawn from
    ``keys[node]`` (no entry: no key); every other step is answered with "no
    key".  ``attributes``: the caller's profile; ``now``: the simulated time
    (for opening hours).  The virtual and the live simulator both walk callers
    here, so the same seed draws the same keys in both."""
    from acd.ivr import interpreter as ivr

    run = ivr.FlowRun(flow, caller=dict(attributes or {}), now=now)
    script: list[str] = []
    step: Any = run.start()
    for _ in range(10_000):
        if isinstance(step, ivr.EnterQueue):
            return IvrWalk(step.queue, int(step.priority), tuple(step.path),
                           tuple(step.attributes), tuple(script))
        if isinstance(step, ivr.EndCall | ivr.TransferCall | ivr.VoicemailCall) or run.done:
            return IvrWalk(None, 0, tuple(getattr(step, "path", run.path)), (),
                           tuple(script))
        digit: str | None = None
        if isinstance(step, ivr.CollectDigit):
            choices = keys.get(run.node)
            if choices:  # probabilities may sum to less than 1: the rest is no key
                u = rng.random()
                acc = 0.0
                for key, p in choices:
                    acc += p
                    if u < acc:
                        digit = key
                        break
        script.extend(_entries(step, digit))
        step = run.resume(ivr.Key(digit))
    return IvrWalk(None, 0, tuple(run.path), (), tuple(script))


def walk_ivr(flow: Any, keys: Mapping[str, Sequence[tuple[str | None, float]]],
             rng: random.Random, attributes: Mapping[str, str] | None = None,
             now: dt.datetime | None = None
             ) -> tuple[str | None, int, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """:func:`walk` as (queue or None, priority, path, attributes the flow set)."""
    w = walk(flow, keys, rng, attributes, now)
    return w.queue, w.priority, w.path, w.attributes

