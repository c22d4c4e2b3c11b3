"""The week's quality sample: which answered calls reviewers score
(docs/quality.md).  Pure: the calls, the week's bounds, the seed and the
reviewers come in; the sample goes out.

- **Population**: the answered calls of one ISO week (Monday 00:00 to the
  next Monday 00:00 in a time zone), with an agent, less every call drawn
  before (a call is never drawn twice, whatever the week).
- **Strata**: (agent, queue).  Each stratum's volume is its number of calls.
- **How many**, either
  - a **rate** (``5%``): ``n = round_half_up(rate * N)`` calls in all,
    shared among the strata in proportion to their volume by the **largest
    remainder** (Hamilton) method: each stratum gets the whole part of its
    quota ``n * volume / N``; the calls left over go one each to the strata
    with the largest fractional parts (ties: the larger volume, then the
    agent and queue in alphabetical order).  With ``at_least_one``, an
    agent whose strata got nothing gets one call in its largest stratum
    (ties as above): the total then exceeds ``n`` by that many.
  - a **count per agent** (``--per-agent 4``): each agent gets
    ``min(count, their calls)``, shared among their queues by the same
    largest remainder method over their own volume.
- **Draw**: ``random.Random(seed)``; the strata in order of (agent, queue),
  each stratum's calls in order of (start, call id), ``rng.sample`` of its
  count.  The same calls, week, rate and seed give the same sample.
- **Reviewers**: the drawn calls in order of (agent, queue, start) go each to
  the reviewer with the fewest calls so far (ties: round robin, from the one
  after the last given one), never to a reviewer who is the call's agent.
- **Replay**: a draw's options (:class:`DrawOptions`) are kept with its
  sample; :func:`differences` compares a sample drawn again with them to the
  one kept.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["Allocation", "CallRef", "DrawOptions", "Pick", "Sample", "SampleError",
           "allocate_per_agent", "allocate_rate", "assign_reviewers", "differences", "draw",
           "largest_remainder", "parse_rate", "parse_week", "rate_text", "resolve_week",
           "week_bounds", "week_of"]

Stratum = tuple[str, str]  # (agent, queue)

WEEK = re.compile(r"(\d{4})-?W(\d{2})")
RATE = re.compile(r"(\d+(?:\.\d+)?)\s*%")


class SampleError(ValueError):
    """A week, rate, count or reviewer list that cannot make a sample."""


@dataclass(frozen=True, slots=True)
class CallRef:
    """An answered call, as the sample needs it."""

    call_id: str
    agent_id: str
    queue: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Allocation:
    """One stratum: its calls, its exact quota and the count drawn."""

    agent_id: str
    queue: str
    volume: int
    quota: Fraction
    count: int


@dataclass(frozen=True, slots=True)
class Pick:
    call: CallRef
    reviewer: str


@dataclass(frozen=True, slots=True)
class Sample:
    week: str
    seed: int
    population: int
    allocations: tuple[Allocation, ...]
    picks: tuple[Pick, ...]
    loads: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DrawOptions:
    """What a draw was asked for, besides the week and the seed: kept with
    the sample, so that it can be drawn again (``tz``: the week's zone)."""

    reviewers: tuple[str, ...]
    rate: Fraction | None = None
    per_agent: int | None = None
    at_least_one: bool = False
    tz: str = ""

    def describe(self) -> str:
        """``rate 5%, min-one, tz Asia/Shanghai, reviewers wang,li``."""
        parts = [f"rate {rate_text(self.rate)}" if self.rate is not None
                 else f"per agent {self.per_agent}"]
        if self.at_least_one:
            parts.append("min-one")
        parts += [f"tz {self.tz or '-'}", f"reviewers {','.join(self.reviewers)}"]
        return ", ".join(parts)


def rate_text(rate: Fraction) -> str:
    """A rate as a percentage: ``5%``, ``2.5%``, ``33.3333%`` (``1/3``)."""
    return f"{float(rate * 100):.6g}%"


# ------------------------------------------------------------------ weeks


def parse_week(text: str) -> tuple[int, int]:
    """``2026-W48`` (or ``2026W48``) as (year, week); a week the year does not
    have (W53 of most years) is refused."""
    m = WEEK.fullmatch(text.strip())
    if m is None:
        raise SampleError(f"{text!r} is not an ISO week like 2026-W48")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        dt.date.fromisocalendar(year, week, 1)
    except ValueError:
        raise SampleError(f"{text!r}: {year} has no ISO week {week}") from None
    return year, week


def week_name(year: int, week: int) -> str:
    return f"{year:04d}-W{week:02d}"


def resolve_week(text: str, now: float, tz: dt.tzinfo) -> str:
    """``this`` (the ISO week of ``now`` in ``tz``), ``last`` (the one
    before) or ``2026-W48``, as a week's name (``2026-W48``)."""
    word = text.strip().lower()
    if word in ("this", "last"):
        day = dt.datetime.fromtimestamp(now, tz).date()
        if word == "last":
            day -= dt.timedelta(days=7)
        year, week, _ = day.isocalendar()
        return week_name(year, week)
    if WEEK.fullmatch(text.strip()) is None:
        raise SampleError(f"{text!r} is not a week: this, last or an ISO week like 2026-W48")
    return week_name(*parse_week(text))


def week_bounds(text: str, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The week's first instant and the next week's first (Monday 00:00 in ``tz``)."""
    year, week = parse_week(text)
    monday = dt.date.fromisocalendar(year, week, 1)
    start = dt.datetime.combine(monday, dt.time(), tz)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), tz)
    return start, end


def week_of(ts: float, tz: dt.tzinfo) -> str:
    """The ISO week (``2026-W48``) of an instant, in ``tz``."""
    year, week, _ = dt.datetime.fromtimestamp(ts, tz).isocalendar()
    return week_name(year, week)


def parse_rate(text: str) -> Fraction:
    """``5%`` or ``0.05`` as an exact fraction in (0, 1]."""
    t = text.strip()
    m = RATE.fullmatch(t)
    try:
        rate = Fraction(m.group(1)) / 100 if m is not None else Fraction(t)
    except (ValueError, ZeroDivisionError):
        raise SampleError(f"{text!r} is not a rate like 5% or 0.05") from None
    if not 0 < rate <= 1:
        raise SampleError(f"{text!r}: a rate is over 0 and at most 100%")
    return rate


# ------------------------------------------------------------- allocation


def largest_remainder(quotas: Mapping[Stratum, Fraction], total: int,
                      volumes: Mapping[Stratum, int]) -> dict[Stratum, int]:
    """``total`` shared by the largest remainder method: the whole part of
    each quota, then one each to the largest fractional parts (ties: larger
    volume, then key order), never more than a stratum's volume."""
    counts = {s: min(int(q), volumes[s]) for s, q in quotas.items()}
    left = total - sum(counts.values())
    order = sorted(quotas, key=lambda s: (-(quotas[s] - int(quotas[s])), -volumes[s], s))
    while left > 0:
        given = False
        for s in order:
            if left == 0:
                break
            if counts[s] < volumes[s]:
                counts[s] += 1
                left -= 1
                given = True
        if not given:
            break
    return counts


def _volumes(calls: Iterable[CallRef]) -> dict[Stratum, int]:
    v: dict[Stratum, int] = defaultdict(int)
    for c in calls:
        v[(c.agent_id, c.queue)] += 1
    return dict(v)


def allocate_rate(volumes: Mapping[Stratum, int], rate: Fraction,
                  at_least_one: bool = False) -> list[Allocation]:
    """Counts per stratum for a rate of the whole population (module doc)."""
    n_all = sum(volumes.values())
    if n_all == 0:
        return []
    total = int(rate * n_all + Fraction(1, 2))  # round half up
    quotas = {s: Fraction(total * v, n_all) for s, v in volumes.items()}
    counts = largest_remainder(quotas, total, volumes)
    if at_least_one:
        by_agent: dict[str, list[Stratum]] = defaultdict(list)
        for s in volumes:
            by_agent[s[0]].append(s)
        for strata in by_agent.values():
            if sum(counts[s] for s in strata) == 0:
                best = min(strata, key=lambda s: (-quotas[s], -volumes[s], s))
                counts[best] = 1
    return [Allocation(s[0], s[1], volumes[s], quotas[s], counts[s]) for s in sorted(volumes)]


def allocate_per_agent(volumes: Mapping[Stratum, int], per_agent: int) -> list[Allocation]:
    """``per_agent`` calls for each agent (all of theirs if fewer), shared
    among their queues by volume (module doc)."""
    if per_agent < 1:
        raise SampleError("a count per agent is at least 1")
    by_agent: dict[str, dict[Stratum, int]] = defaultdict(dict)
    for s, v in volumes.items():
        by_agent[s[0]][s] = v
    out: list[Allocation] = []
    for strata in by_agent.values():
        v_all = sum(strata.values())
        n = min(per_agent, v_all)
        quotas = {s: Fraction(n * v, v_all) for s, v in strata.items()}
        counts = largest_remainder(quotas, n, strata)
        out += [Allocation(s[0], s[1], strata[s], quotas[s], counts[s]) for s in strata]
    return sorted(out, key=lambda a: (a.agent_id, a.queue))


# ------------------------------------------------------------------ draw


def assign_reviewers(calls: Sequence[CallRef], reviewers: Sequence[str]) -> tuple[list[Pick],
                                                                                 dict[str, int]]:
    """Each call to a reviewer, balanced (module doc); a reviewer never gets
    a call they took as an agent."""
    if not reviewers:
        raise SampleError("no reviewers: give at least one")
    if len(set(reviewers)) != len(reviewers):
        raise SampleError(f"a reviewer is named twice: {', '.join(reviewers)}")
    loads = dict.fromkeys(reviewers, 0)
    nxt = 0
    picks: list[Pick] = []
    count = len(reviewers)
    for c in sorted(calls, key=lambda c: (c.agent_id, c.queue, c.started_at, c.call_id)):
        rotation = [reviewers[(nxt + i) % count] for i in range(count)]
        eligible = [r for r in rotation if r != c.agent_id]
        if not eligible:
            raise SampleError(f"call {c.call_id} was taken by agent {c.agent_id}, the only "
                              "reviewer: add a reviewer (nobody reviews their own calls)")
        best = min(eligible, key=lambda r: loads[r])  # the first of the least loaded
        loads[best] += 1
        nxt = (reviewers.index(best) + 1) % count
        picks.append(Pick(c, best))
    return picks, loads


def draw(calls: Iterable[CallRef], week: str, *, seed: int, reviewers: Sequence[str],
         rate: Fraction | None = None, per_agent: int | None = None,
         at_least_one: bool = False, drawn_before: Iterable[str] = ()) -> Sample:
    """The week's sample of ``calls`` (already the week's answered calls),
    less those ``drawn_before`` (module doc)."""
    if (rate is None) == (per_agent is None):
        raise SampleError("give either a rate or a count per agent")
    parse_week(week)
    before = set(drawn_before)
    population = sorted((c for c in calls if c.call_id not in before),
                        key=lambda c: (c.agent_id, c.queue, c.started_at, c.call_id))
    volumes = _volumes(population)
    allocations = allocate_rate(volumes, rate, at_least_one) if rate is not None \
        else allocate_per_agent(volumes, per_agent or 0)
    strata: dict[Stratum, list[CallRef]] = defaultdict(list)
    for c in population:
        strata[(c.agent_id, c.queue)].append(c)
    rng = random.Random(seed)
    chosen: list[CallRef] = []
    for a in allocations:  # sorted by (agent, queue)
        pool = strata[(a.agent_id, a.queue)]
        chosen += sorted(rng.sample(pool, a.count), key=lambda c: (c.started_at, c.call_id))
    picks, loads = assign_reviewers(chosen, reviewers)
    return Sample(week, seed, len(population), tuple(allocations), tuple(picks), loads)


def differences(again: Sample, kept: Mapping[str, str]) -> list[str]:
    """How a sample drawn again differs from the calls kept (call id ->
    reviewer): calls drawn only now, calls kept only, other reviewers; empty
    when the same calls went to the same reviewers."""
    now = {p.call.call_id: p.reviewer for p in again.picks}
    out = [f"call {c} is drawn again but was not kept" for c in sorted(now.keys() - kept)]
    out += [f"call {c} was kept but is not drawn again" for c in sorted(kept.keys() - now)]
    out += [f"call {c}: reviewer {kept[c]} kept, {now[c]} drawn again"
            for c in sorted(now.keys() & kept.keys()) if now[c] != kept[c]]
    return out
