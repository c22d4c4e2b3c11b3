"""Load generator: Poisson arrivals of randomly drawn callers.

``rate_per_s`` is per *simulated* second: inter-arrival gaps are drawn from
an exponential distribution and scaled by ``SimConfig.time_scale`` like
every other duration.  The caller mix is drawn from a seeded
``random.Random``, so a run is reproducible up to the engine's own timing.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sim.config import CallerScript, CallResult, Outcome

if TYPE_CHECKING:
    from sim.pbx import SimPBX

_SURNAMES = "王李张刘陈杨黄赵吴周"
_GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "三", "四"]
_LATIN = ["Zhang", "Li Wei", "Chen Jing", "Wang Fang", ""]


@dataclass(slots=True)
class CallerScriptMix:
    """The random mix of caller scripts the load generator draws from (keys,
    patience, names); not the load simulator's scenario callers
    (:class:`acd.loadsim.model.CallerPopulation`)."""

    #: key scripts and their weights (one entry per input prompt, "" = no key).
    keys: list[tuple[list[str], float]] = field(default_factory=lambda: [
        (["1"], 0.45), (["2"], 0.30), (["3"], 0.10), ([""], 0.10), (["9", "1"], 0.05),
    ])
    #: patience (simulated seconds), uniform in this range; None = never gives up.
    patience_s: tuple[float, float] | None = (30.0, 180.0)
    #: share of callers who hang up in the IVR, and when.
    ivr_hangup_p: float = 0.05
    ivr_hangup_after_s: tuple[float, float] = (1.0, 6.0)
    key_delay_s: tuple[float, float] = (0.3, 1.5)
    #: share of callers with a Chinese (UTF-8) name.
    chinese_name_p: float = 0.5
    dnid: str = "10086"

    def draw(self, rng: random.Random, index: int) -> CallerScript:
        keys: list[str] = []
        if self.keys:
            options = [k for k, _ in self.keys]
            weights = [w for _, w in self.keys]
            keys = list(rng.choices(options, weights=weights)[0])
        if rng.random() < self.chinese_name_p:
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        else:
            name = rng.choice(_LATIN)
        patience = rng.uniform(*self.patience_s) if self.patience_s is not None else None
        hangup_after = (rng.uniform(*self.ivr_hangup_after_s)
                        if rng.random() < self.ivr_hangup_p else None)
        return CallerScript(
            number=f"138{rng.randrange(10**8):08d}",
            name=name,
            keys=keys,
            patience_s=patience,
            hangup_after_s=hangup_after,
            dnid=self.dnid,
            key_delay_s=rng.uniform(*self.key_delay_s),
        )


async def run_load(pbx: SimPBX, n_calls: int, rate_per_s: float,
                   mix: CallerScriptMix | None = None, seed: int = 0) -> list[CallResult]:
    """Place ``n_calls`` calls as a Poisson process; results in placing order."""
    rng = random.Random(seed)
    mix = mix or CallerScriptMix()
    handles = []
    for i in range(n_calls):
        if i and rate_per_s > 0:
            await asyncio.sleep(pbx.cfg.scaled(rng.expovariate(rate_per_s)))
        handles.append(await pbx.place_call(mix.draw(rng, i)))
    return list(await asyncio.gather(*(h.done for h in handles)))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summarize(results: list[CallResult]) -> dict[str, Any]:
    """A JSON-able summary of a load run."""
    outcomes = Counter(r.outcome.value for r in results)
    waits = [r.wait_s for r in results if r.wait_s is not None and r.outcome is Outcome.TALKED]
    talks = [r.talk_s for r in results if r.talk_s is not None]
    return {
        "calls": len(results),
        "outcomes": dict(sorted(outcomes.items())),
        "answered": outcomes.get(Outcome.TALKED.value, 0),
        "abandoned": outcomes.get(Outcome.ABANDONED_HOLD.value, 0)
        + outcomes.get(Outcome.ABANDONED_RINGING.value, 0),
        "mean_wait_s": round(statistics.fmean(waits), 3) if waits else None,
        "p90_wait_s": _pct(waits, 0.9),
        "mean_talk_s": round(statistics.fmean(talks), 3) if talks else None,
        "requeues": sum(r.requeues for r in results),
        "agents": len({r.agent for r in results if r.agent}),
    }
