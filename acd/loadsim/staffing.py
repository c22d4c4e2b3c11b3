"""Staffing by simulation: the smallest agent count that meets a target.

:func:`search_agents` runs the virtual simulator (:func:`acd.loadsim.virtual.run_virtual`,
the production router) on a scenario with more or fewer agents and finds the
smallest count whose service level (share of all arrivals answered within
the threshold) is at least ``target_sl`` and, with ``max_abandon``, whose
abandonment share is at most that.  It starts from the Erlang C / Erlang A
estimate (:mod:`acd.planning.erlang`), gallops up or down from it, then
bisects (:func:`acd.planning.search.smallest_count`, the search the Erlang
calculator uses too), so the answer ``n`` always comes with ``n - 1``
evaluated (and failing).  Every count is run with the same seed: same
arrivals, handle times and patience (common random numbers), so the counts
differ only by their agents.

What is staffed
    * the roster, scaled uniformly (default): ``n`` agents made of the
      scenario's agents, each repeated ``n // N`` or ``n // N + 1`` times
      (the extra copies spread evenly over the roster, so every kind of
      agent keeps its share; ids ``a~1``, ``a~2`` ... for the copies), with
      their shifts;
    * or one single-skill pool (``pool=SKILL``): the agents whose only skill
      is ``SKILL`` are scaled the same way, everyone else stays.

What is measured
    * the whole scenario (default): the figures of all counted calls;
    * ``queue=Q``: the figures of queue ``Q``;
    * ``interval=I`` (an index or a time of day ``HH:MM``): a stationary run
      at that interval's arrival rate (``calls`` arrivals, the first tenth
      as warm-up) with the agents on shift at the interval's middle, always
      logged in: the planners' per-interval question.

The Erlang figure shown beside each count treats the scope as one queue
served by identical agents: arrival rate of the scope (for a day: the mean
rate), mean handle time plus wrap-up, mean patience (Erlang A; Erlang C when
nobody hangs up), the scope's service-level threshold; for a roster with
shifts, the agents logged in on average (count × mean logged-in share).
With several skills, routing rules or a non-exponential patience it is an
estimate to start from, not the answer.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acd.loadsim.ivr_walk import walk_ivr
from acd.loadsim.model import AgentSpec, Dist, Scenario, SimError, clock
from acd.loadsim.virtual import run_virtual
from acd.planning.erlang import StaffingResult, agents_needed, evaluate
from acd.planning.search import smallest_count

__all__ = [
    "CountFigures",
    "ErlangInputs",
    "StaffingSearch",
    "erlang_estimate",
    "erlang_inputs",
    "evaluate_count",
    "pool_agents",
    "scale_roster",
    "scope_scenario",
    "search_agents",
]

#: arrivals per count for an open-ended scenario without ``calls``
DEFAULT_CALLS = 20_000
MAX_AGENTS = 100_000


# ------------------------------------------------------------------ the roster


def _spread(n: int, size: int) -> list[int]:
    """Copies of each of ``size`` agents for ``n`` in all: ``n // size`` each,
    the remainder spread evenly."""
    reps = [n // size] * size
    extra = n % size
    for j in range(extra):
        reps[int((j + 0.5) * size / extra)] += 1
    return reps


def _copies(spec: AgentSpec, k: int, taken: set[str]) -> list[AgentSpec]:
    out: list[AgentSpec] = []
    base = spec.profile.agent_id
    for i in range(k):
        aid = base if i == 0 else f"{base}~{i}"
        while aid in taken:
            aid += "~"
        taken.add(aid)
        ext = spec.profile.extension if i == 0 else aid
        out.append(dataclasses.replace(
            spec, profile=dataclasses.replace(spec.profile, agent_id=aid, extension=ext)))
    return out


def pool_agents(sc: Scenario, pool: str) -> list[AgentSpec]:
    return [a for a in sc.agents if set(a.profile.skills) == {pool}]


def scale_roster(sc: Scenario, n: int, pool: str | None = None) -> Scenario:
    """``sc`` with ``n`` agents: the roster scaled uniformly, or (``pool``) the
    agents whose only skill is ``pool`` scaled and the others kept."""
    if n < 0:
        raise ValueError(f"agent count must be >= 0, got {n}")
    if pool is None:
        base = list(sc.agents)
        keep: list[AgentSpec] = []
    else:
        base = pool_agents(sc, pool)
        keep = [a for a in sc.agents if set(a.profile.skills) != {pool}]
    if not base:
        what = "agents" if pool is None else f"agents with the single skill {pool!r}"
        raise SimError(f"the scenario has no {what} to scale")
    taken = {a.profile.agent_id for a in keep}
    agents = list(keep)
    for spec, k in zip(base, _spread(n, len(base)), strict=True):
        agents.extend(_copies(spec, k, taken))
    return dataclasses.replace(sc, agents=tuple(agents))


# ------------------------------------------------------------------ scopes


def _interval_index(sc: Scenario, interval: int | str) -> int:
    if isinstance(interval, int) or str(interval).isdigit():
        i = int(interval)
    else:
        labels = [clock(k * sc.interval_s, sc.start_s) for k in range(len(sc.rates))]
        if str(interval) not in labels:
            raise SimError(f"interval {interval!r} is not one of the scenario's "
                           f"({labels[0]} ... {labels[-1]})" if labels else
                           f"interval {interval!r}: the scenario has no intervals")
        i = labels.index(str(interval))
    if sc.trace is not None or sc.open_ended:
        raise SimError("an interval can be staffed only in a scenario with arrivals per "
                       "interval (per_interval or per_hour)")
    if not 0 <= i < len(sc.rates):
        raise SimError(f"interval {i} is out of range (0-{len(sc.rates) - 1})")
    return i


def scope_scenario(sc: Scenario, interval: int | str | None, calls: int | None
                   ) -> tuple[Scenario, int | None, int, str]:
    """The scenario to simulate, its arrival limit, the warm-up calls and a
    label of the scope."""
    if interval is None:
        if calls is None and sc.trace is None and sc.day_end_s is None:
            calls = min(sc.calls or DEFAULT_CALLS, DEFAULT_CALLS)
        return sc, calls, 0, "the whole scenario"
    i = _interval_index(sc, interval)
    mid = (i + 0.5) * sc.interval_s
    on = [dataclasses.replace(a, shifts=()) for a in sc.agents
          if not a.shifts or any(s <= mid < e for s, e in a.shifts)]
    if not on:
        raise SimError(f"no agent is on shift at {clock(mid, sc.start_s)}")
    n = calls or DEFAULT_CALLS
    stationary = dataclasses.replace(
        sc, rates=(sc.rates[i],), open_ended=True, hours=None, calls=n, warmup_s=0.0,
        agents=tuple(on), start_s=sc.start_s + i * sc.interval_s)
    if sc.rates[i] <= 0:
        raise SimError(f"no calls arrive in interval {clock(i * sc.interval_s, sc.start_s)}")
    return stationary, n, n // 10, f"interval {clock(i * sc.interval_s, sc.start_s)}"


# ------------------------------------------------------------------ Erlang


@dataclass(frozen=True, slots=True)
class ErlangInputs:
    """The scope as one Erlang queue."""

    calls_per_hour: float
    aht_s: float  # handle + wrap-up
    patience_s: float | None  # None: Erlang C
    t_s: float
    #: mean share of the scaled agents logged in (1 without shifts)
    logged_in: float
    #: share of the scaled agents that serve the scope (with the queue's skill)
    serving: float

    @property
    def model(self) -> str:
        return "C" if self.patience_s is None else "A"

    def agents_for(self, n: int) -> int:
        """Agents Erlang sees for a roster of ``n``."""
        return max(1, round(n * self.logged_in * self.serving))


def _queue_shares(sc: Scenario, seed: int) -> dict[str | None, float]:
    """Requested queue -> share of arrivals (None: ends in the IVR)."""
    if sc.trace is not None:
        out: dict[str | None, float] = {}
        for c in sc.trace:
            out[c.queue] = out.get(c.queue, 0.0) + 1.0 / len(sc.trace)
        return out
    if sc.ivr is None:
        return {q: s.share for q, s in sc.queues.items() if s.share > 0}
    rng = random.Random(f"{seed}:shares")
    walks = 4000
    counts: dict[str | None, float] = {}
    mix = sc.callers
    for _ in range(walks):
        attrs: dict[str, str] = {}
        if mix.vip_share > 0 and rng.random() < mix.vip_share:
            attrs["vip_level"] = str(mix.vip_levels[0][0])
        queue = walk_ivr(sc.ivr.flow, sc.ivr.keys, rng, attrs)[0]
        counts[queue] = counts.get(queue, 0.0) + 1.0 / walks
    return counts


def _mean(d: Dist | None) -> float | None:
    return None if d is None else d.mean


def erlang_inputs(sc: Scenario, queue: str | None = None, pool: str | None = None,
                  seed: int = 0) -> ErlangInputs:
    """The Erlang view of ``sc`` (already narrowed to a scope by
    :func:`scope_scenario`), for the whole of it or one queue."""
    shares = _queue_shares(sc, seed)
    queued = {q: s for q, s in shares.items() if q is not None}
    if queue is not None:
        queued = {queue: queued.get(queue, 0.0)}
    total_share = sum(queued.values())
    # arrival rate
    if sc.trace is not None:
        span = max(c.arrival_s for c in sc.trace) - min(c.arrival_s for c in sc.trace)
        rate_h = len(sc.trace) / span * 3600.0 if span > 0 else 1.0
    elif sc.open_ended:
        rate_h = sc.rates[0] * 3600.0
    else:
        end = sc.day_end_s or 1.0
        rate_h = (sc.expected_calls() or 0.0) / end * 3600.0
    calls_h = rate_h * total_share
    # handle and patience, weighted by queue share (VIPs: their own)
    mix = sc.callers
    aht = 0.0
    pat_sum, pat_none = 0.0, 0.0
    for q, s in queued.items():
        spec = sc.queues.get(q)
        w = s / total_share if total_share > 0 else 0.0
        if sc.trace is not None:
            calls = [c for c in sc.trace if c.queue == q]
            h = sum(c.handle_s for c in calls) / len(calls) if calls else sc.handle.mean
            pats = [c.patience_s for c in calls if c.patience_s is not None]
            p: float | None = sum(pats) / len(pats) if pats else None
        else:
            hd = (spec.handle if spec is not None and spec.handle is not None else sc.handle)
            h = hd.mean
            if mix.vip_handle is not None:
                h = (1 - mix.vip_share) * h + mix.vip_share * mix.vip_handle.mean
            p = _mean(spec.patience) if spec is not None and spec.patience_set \
                else _mean(sc.patience)
            if mix.vip_patience_set and mix.vip_share > 0:
                vp = _mean(mix.vip_patience)
                p = None if p is None or vp is None else \
                    (1 - mix.vip_share) * p + mix.vip_share * vp
        aht += w * h
        if p is None:
            pat_none += w
        else:
            pat_sum += w * p
    # most callers hang up at some point: Erlang A with their mean patience
    patience = pat_sum / (1.0 - pat_none) if pat_none < 0.5 else None
    t_s = sc.queue_sl(queue) if queue is not None else (
        sc.queue_sl(next(iter(queued))) if len(queued) == 1 else sc.sl_seconds)
    # agents: mean logged-in share over the arrivals, and the share serving the scope
    agents = pool_agents(sc, pool) if pool is not None else list(sc.agents)
    day_end = sc.day_end_s
    if day_end and any(a.shifts for a in agents) and not sc.open_ended:
        end = day_end
        on = sum(end if not a.shifts else sum(max(0.0, min(e, end) - max(s, 0.0))
                                              for s, e in a.shifts) for a in agents)
        logged_in = on / (end * len(agents)) if agents else 1.0
    else:
        logged_in = 1.0
    serving = 1.0
    if queue is not None and pool is None and agents:
        qp = sc.policy.queues.get(queue)
        skill = qp.require.skill if qp is not None else queue
        serving = sum(1 for a in agents if skill in a.profile.skills) / len(agents)
    return ErlangInputs(calls_h, aht + sc.wrap_up_s, patience, t_s, logged_in,
                        serving or 1.0)


def erlang_estimate(inp: ErlangInputs, target_sl: float, max_abandon: float | None
                    ) -> int | None:
    """The roster size whose Erlang figure meets the target (None: no estimate)."""
    if inp.calls_per_hour <= 0 or inp.aht_s <= 0:
        return None
    try:
        need = agents_needed(inp.calls_per_hour, inp.aht_s, target_sl, inp.t_s,
                             patience_s=inp.patience_s,
                             max_abandon=max_abandon if inp.patience_s is not None else None)
    except ValueError:
        return None
    return max(1, math.ceil(need / (inp.logged_in * inp.serving)))


# ------------------------------------------------------------------ the search


@dataclass(frozen=True, slots=True)
class CountFigures:
    """One agent count: the simulated figures of the scope and Erlang's."""

    agents: int
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    abandon_rate: float | None
    mean_wait_s: float | None
    asa_s: float | None
    occupancy: float | None
    meets: bool
    erlang: StaffingResult | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "erlang"}
        e = self.erlang
        d["erlang"] = None if e is None else {
            "model": e.model, "agents": e.agents, "sl": e.sl, "pab": e.pab,
            "wait_mean_s": None if math.isinf(e.wait_mean_s) else e.wait_mean_s,
            "occupancy": e.occupancy, "stable": e.stable}
        return d


@dataclass(slots=True)
class StaffingSearch:
    """What :func:`search_agents` returns."""

    scenario: str
    scope: str  # "the whole scenario", "interval 10:00"
    queue: str | None
    pool: str | None  # None: the roster, scaled uniformly
    target_sl: float
    max_abandon: float | None
    seed: int
    calls: int | None
    base_agents: int  # the scenario's count (roster or pool)
    erlang: ErlangInputs | None
    erlang_estimate: int | None
    #: the smallest count meeting the target (None: none up to the limit)
    needed: int | None
    tried: list[CountFigures] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        e = self.erlang
        return {
            "scenario": self.scenario, "scope": self.scope, "queue": self.queue,
            "pool": self.pool, "target_sl": self.target_sl, "max_abandon": self.max_abandon,
            "seed": self.seed, "calls": self.calls, "base_agents": self.base_agents,
            "erlang": None if e is None else {
                "model": e.model, "calls_per_hour": e.calls_per_hour, "aht_s": e.aht_s,
                "patience_s": e.patience_s, "t_s": e.t_s, "logged_in": e.logged_in,
                "serving": e.serving, "estimate": self.erlang_estimate},
            "agents_needed": self.needed,
            "results": [c.as_dict() for c in self.tried],
        }


def _meets(sl: float | None, ab: float | None, target_sl: float,
           max_abandon: float | None) -> bool:
    return sl is not None and sl >= target_sl and (
        max_abandon is None or (ab is not None and ab <= max_abandon))


def evaluate_count(sc: Scenario, n: int, *, target_sl: float = 0.8,
                   max_abandon: float | None = None, seed: int = 0, calls: int | None = None,
                   warmup_calls: int = 0, queue: str | None = None, pool: str | None = None,
                   erlang: ErlangInputs | None = None) -> CountFigures:
    """Simulate ``sc`` (already scoped) with ``n`` agents; the scope's figures."""
    res = run_virtual(scale_roster(sc, n, pool), seed, calls, warmup_calls=warmup_calls)
    try:
        row = res.totals("queue", queue) if queue is not None else res.totals()
    except KeyError:
        raise SimError(f"no calls reached queue {queue!r}") from None
    sl, ab = row.service_level, row.abandon_rate
    e = None
    if erlang is not None and erlang.calls_per_hour > 0 and erlang.aht_s > 0:
        try:
            e = evaluate(erlang.calls_per_hour, erlang.aht_s, erlang.agents_for(n),
                         erlang.t_s, erlang.patience_s)
        except ValueError:
            e = None
    return CountFigures(n, row.offered, row.answered, row.abandoned, sl, ab, row.mean_wait_s,
                        row.asa_s, row.occupancy, _meets(sl, ab, target_sl, max_abandon), e)


def search_agents(scenario: Scenario, target_sl: float = 0.8, max_abandon: float | None = None,
                  *, seed: int = 0, calls: int | None = None, queue: str | None = None,
                  interval: int | str | None = None, pool: str | None = None,
                  start: int | None = None, max_agents: int = MAX_AGENTS,
                  progress: Callable[[CountFigures], None] | None = None,
                  only: int | None = None) -> StaffingSearch:
    """The smallest agent count meeting ``target_sl`` (and ``max_abandon``);
    see the module docstring.  ``start``: the first count tried (default: the
    Erlang estimate, else the scenario's count).  ``progress`` is called with
    each count's figures.  ``only``: no search, just this count's figures
    (``needed`` is then None)."""
    if not 0 <= target_sl < 1:
        raise ValueError(f"target_sl must be in [0, 1), got {target_sl!r}")
    if max_abandon is not None and not 0 < max_abandon <= 1:
        raise ValueError(f"max_abandon must be in (0, 1], got {max_abandon!r}")
    if queue is not None and queue not in scenario.policy.queues:
        raise SimError(f"queue {queue!r} is not a queue of the scenario "
                       f"(queues: {', '.join(scenario.policy.queues)})")
    if pool is not None and not pool_agents(scenario, pool):
        skills = sorted({s for a in scenario.agents for s in a.profile.skills})
        raise SimError(f"no agent has {pool!r} as their only skill (skills: "
                       f"{', '.join(skills)})")
    sc, n_calls, warmup, label = scope_scenario(scenario, interval, calls)
    base = len(pool_agents(sc, pool)) if pool is not None else len(sc.agents)
    inputs: ErlangInputs | None
    try:
        inputs = erlang_inputs(sc, queue, pool, seed)
    except (ValueError, ZeroDivisionError, StopIteration):
        inputs = None
    estimate = erlang_estimate(inputs, target_sl, max_abandon) if inputs is not None else None
    tried: dict[int, CountFigures] = {}

    def ok(n: int) -> bool:
        got = tried.get(n)
        if got is None:
            got = tried[n] = evaluate_count(
                sc, n, target_sl=target_sl, max_abandon=max_abandon, seed=seed, calls=n_calls,
                warmup_calls=warmup, queue=queue, pool=pool, erlang=inputs)
            if progress is not None:
                progress(got)
        return got.meets

    needed: int | None = None
    if only is not None:
        ok(only)
        return StaffingSearch(
            scenario=scenario.name, scope=label, queue=queue, pool=pool, target_sl=target_sl,
            max_abandon=max_abandon, seed=seed, calls=n_calls, base_agents=base, erlang=inputs,
            erlang_estimate=estimate, needed=None, tried=[tried[only]])
    n0 = min(max(1, start or estimate or base or 1), max_agents)
    needed = smallest_count(ok, n0, limit=max_agents)
    return StaffingSearch(
        scenario=scenario.name, scope=label, queue=queue, pool=pool, target_sl=target_sl,
        max_abandon=max_abandon, seed=seed, calls=n_calls, base_agents=base, erlang=inputs,
        erlang_estimate=estimate, needed=needed,
        tried=[tried[n] for n in sorted(tried)])

