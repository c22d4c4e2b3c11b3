"""Staffing by simulation: the smallest agent count that meets a target.

:func:`search_agents` runs the virtual simulator (:func:`acd.loadsim.virtual.run_virtual`,
the production router) on a scenario with more or fewer agents and finds the
smallest count whose service level (share of all arrivals answered within
the threshold) is at least ``target_sl`` and, with ``max_abandon``, whose
abandonment share is at most that.  It starts from the Erlang C / Erlang A
estimate (:mod:`acd.planning.erlang`), gallops up or down from it, then
bisects (:func:`acd.planning.search.smallest_count`, the search the Erlang
calculator uses too), so the answer ``n`` always comes with ``n - 1``
evaluated (and not meeting the target).

Every count is simulated in ``replications`` independent replications
(:mod:`acd.loadsim.replicate`: seeds derived from ``seed``, run in parallel
processes); every figure is their mean with a Student-t confidence
interval.  A count meets the target when the one-sided lower confidence
bound of its service level is at least ``target_sl`` (and the upper bound
of its abandonment at most ``max_abandon``), fails it when the upper bound
of SL (the lower bound of abandonment) is on the wrong side, and is
undecided otherwise: it gets more replications, in batches, up to
``max_replications``; still undecided, it counts as not meeting the target
(``CountFigures.decided`` is False and the output says so).  The verdict's
bounds are Bonferroni-corrected (:func:`decision_level`): the error
``1 - confidence`` is split over the tests (SL, and abandonment with
``max_abandon``) and over the looks (the batches a count may get, at most
``ceil(max_replications / replications)``), so that looking again after
each batch does not lower the confidence of "meets" below ``confidence``
(up to the normal approximation of the Student-t interval).  The intervals
shown stay at ``confidence``.  Replication
``i`` has the same seed for every count (common random numbers: same
arrivals, handle times and patience), so the counts differ only by their
agents.  A steady-state run (constant rate, one interval) discards its
first tenth of arrivals as a warm-up (:func:`scope_scenario`).

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
      at that interval's arrival rate (``calls`` arrivals per replication,
      the first tenth as warm-up) with the agents on shift at the interval's middle, always
      logged in and available (:func:`on_the_phones`: no breaks, not-ready or
      shrinkage; the schedule adds those): the planners' per-interval question.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from acd.loadsim.ivr_walk import walk_ivr
from acd.loadsim.model import AgentSpec, Dist, Scenario, SimError, clock
from acd.loadsim.replicate import (
    Estimate,
    Job,
    Replication,
    Replicator,
    estimate,
    pool_agents,
    replication_seed,
    scale_roster,
)
from acd.planning.erlang import StaffingResult, agents_needed, evaluate
from acd.planning.forecast import ForecastRow
from acd.planning.requirements import Answer, Requirement, requirements_from
from acd.planning.search import smallest_count

__all__ = [
    "CountFigures",
    "ErlangInputs",
    "StaffingSearch",
    "decide",
    "decision_level",
    "erlang_estimate",
    "erlang_inputs",
    "evaluate_count",
    "looks_of",
    "on_the_phones",
    "pool_agents",
    "scale_roster",
    "scope_scenario",
    "search_agents",
    "simple_scenario",
    "simulated_requirements",
    "stationary_scenario",
]

#: arrivals per replication of a steady-state run (a constant rate, an interval)
DEFAULT_CALLS = 5_000
MAX_AGENTS = 100_000


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
    """The scenario to simulate, its arrivals per replication, the warm-up
    calls and a label of the scope.

    A steady-state run (a constant rate, or one interval's rate) starts
    empty, which flatters the first calls: the first tenth of its arrivals
    are a warm-up, not counted (nor is their time in the occupancy), on top
    of the scenario's own warm-up time.  A scenario with a day of arrivals
    is run as the day it is (it opens empty, as the center does)."""
    if interval is None:
        if sc.open_ended and sc.trace is None:
            n = calls or min(sc.calls or DEFAULT_CALLS, DEFAULT_CALLS)
            warm = n // 10
            rate = sc.rates[0] if sc.rates else 0.0
            if rate > 0:
                sc = dataclasses.replace(sc, warmup_s=max(sc.warmup_s, warm / rate))
            return sc, n, warm, "the whole scenario"
        return sc, calls, 0, "the whole scenario"
    i = _interval_index(sc, interval)
    mid = (i + 0.5) * sc.interval_s
    on = [a for a in sc.agents if not a.shifts or any(s <= mid < e for s, e in a.shifts)]
    if not on:
        raise SimError(f"no agent is on shift at {clock(mid, sc.start_s)}")
    if sc.rates[i] <= 0:
        raise SimError(f"no calls arrive in interval {clock(i * sc.interval_s, sc.start_s)}")
    n = calls or DEFAULT_CALLS
    mix = sc.queue_mix[min(i, len(sc.queue_mix) - 1)] if sc.queue_mix else None
    stationary = dataclasses.replace(
        on_the_phones(sc, on), rates=(sc.rates[i],), open_ended=True, hours=None, calls=n,
        warmup_s=(n // 10) / sc.rates[i], start_s=sc.start_s + i * sc.interval_s,
        queue_mix=() if mix is None else (mix,))
    return stationary, n, n // 10, f"interval {clock(i * sc.interval_s, sc.start_s)}"


#: what a requirement leaves out, said in the outputs (docs/planning.md)
REQUIREMENT_NOTE = ("agents on the phones: no shifts, breaks, not-ready or shrinkage "
                    "(availability is the schedule's business)")


def on_the_phones(sc: Scenario, agents: Sequence[AgentSpec]) -> Scenario:
    """``sc`` with ``agents`` always logged in and always available: no
    shifts, no planned breaks (``activities``), no random not-ready episodes,
    no shrinkage.  A requirement (one interval, or a forecast row) counts the
    agents needed on the phones; their availability is planned by the
    schedule, which adds breaks and shrinkage on top.  The one place both
    :func:`scope_scenario` (``interval=``) and :func:`stationary_scenario`
    decide this."""
    return dataclasses.replace(
        sc, agents=tuple(dataclasses.replace(a, shifts=(), activities=()) for a in agents),
        not_ready=(), shrinkage=(), roster=None)


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

#: replications per count, and the most a count may get when its interval
#: straddles the target (default: 4 x replications)
DEFAULT_REPLICATIONS = 10
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class CountFigures:
    """One agent count: the simulated figures of the scope over its
    replications (means, with Student-t intervals) and Erlang's."""

    agents: int
    #: summed over the replications (counted calls, after the warm-up)
    offered: int
    answered: int
    abandoned: int
    #: means over the replications
    service_level: float | None
    abandon_rate: float | None
    mean_wait_s: float | None
    asa_s: float | None
    occupancy: float | None
    #: the target holds at the stated confidence (False also when undecided)
    meets: bool
    erlang: StaffingResult | None = None
    replications: int = 1
    #: False: the interval still straddled the target after the most replications
    decided: bool = True
    sl_ci: Estimate | None = None
    abandon_ci: Estimate | None = None
    wait_ci: Estimate | None = None
    asa_ci: Estimate | None = None
    occupancy_ci: Estimate | None = None
    wall_s: float = 0.0
    #: the one-sided bounds the verdict used (at :func:`decision_level`)
    sl_bound: float | None = None
    abandon_bound: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "erlang" and not f.name.endswith("_ci")}
        d["ci"] = {name: None if est is None else est.as_dict() for name, est in (
            ("service_level", self.sl_ci), ("abandon_rate", self.abandon_ci),
            ("mean_wait_s", self.wait_ci), ("asa_s", self.asa_ci),
            ("occupancy", self.occupancy_ci))}
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
    #: arrivals per replication (None: the scenario's day)
    calls: int | None
    base_agents: int  # the scenario's count (roster or pool)
    erlang: ErlangInputs | None
    erlang_estimate: int | None
    #: the smallest count meeting the target (None: none up to the limit)
    needed: int | None
    tried: list[CountFigures] = field(default_factory=list)
    replications: int = DEFAULT_REPLICATIONS
    max_replications: int = 4 * DEFAULT_REPLICATIONS
    confidence: float = DEFAULT_CONFIDENCE
    #: warm-up per replication: calls not counted (besides the scenario's warm-up time)
    warmup_calls: int = 0
    warmup_s: float = 0.0
    workers: int = 1
    #: the scenario replays a trace: the replications share its arrivals, handle
    #: times and patience, and differ only by what it leaves to chance
    trace: bool = False
    #: the most batches a count may get (each a look at the verdict)
    looks: int = 4
    #: the one-sided level of each test of the verdict (:func:`decision_level`)
    decision_level: float = 1.0 - (1.0 - DEFAULT_CONFIDENCE) / 4
    #: a requirement (one interval): agents on the phones (:func:`on_the_phones`)
    on_the_phones: bool = False

    @property
    def undecided(self) -> list[int]:
        """Counts whose interval still straddled the target after the most replications."""
        return [c.agents for c in self.tried if not c.decided]

    def to_dict(self) -> dict[str, Any]:
        e = self.erlang
        return {
            "scenario": self.scenario, "scope": self.scope, "queue": self.queue,
            "pool": self.pool, "target_sl": self.target_sl, "max_abandon": self.max_abandon,
            "seed": self.seed, "calls": self.calls, "base_agents": self.base_agents,
            "replications": self.replications, "max_replications": self.max_replications,
            "confidence": self.confidence, "warmup_calls": self.warmup_calls,
            "warmup_s": self.warmup_s, "workers": self.workers, "trace": self.trace,
            "looks": self.looks, "decision_level": self.decision_level,
            "availability": REQUIREMENT_NOTE if self.on_the_phones else "as scheduled",
            "erlang": None if e is None else {
                "model": e.model, "calls_per_hour": e.calls_per_hour, "aht_s": e.aht_s,
                "patience_s": e.patience_s, "t_s": e.t_s, "logged_in": e.logged_in,
                "serving": e.serving, "estimate": self.erlang_estimate},
            "agents_needed": self.needed,
            "undecided": self.undecided,
            "results": [c.as_dict() for c in self.tried],
        }


def decide(sl: Estimate | None, ab: Estimate | None, target_sl: float,
           max_abandon: float | None) -> bool | None:
    """True: the target holds at the estimates' confidence (the one-sided
    lower bound of SL >= target and the upper bound of abandonment <=
    max_abandon); False: it fails at that confidence; None: undecided."""
    if sl is None or (max_abandon is not None and ab is None):
        return None
    if sl.upper < target_sl or (max_abandon is not None and ab is not None
                                and ab.lower > max_abandon):
        return False
    if sl.lower >= target_sl and (max_abandon is None or (ab is not None
                                                          and ab.upper <= max_abandon)):
        return True
    return None


def looks_of(replications: int, max_replications: int) -> int:
    """The most batches (looks at the verdict) a count gets: batches of
    ``replications`` up to ``max_replications``."""
    return max(1, math.ceil(max_replications / replications))


def decision_level(confidence: float, max_abandon: float | None, looks: int) -> float:
    """The one-sided level of each test of a verdict: Bonferroni over the
    tests (SL; abandonment too with ``max_abandon``) and the ``looks``, so
    the chance of a wrong verdict at any look, on either figure, is at most
    ``1 - confidence``."""
    tests = 1 if max_abandon is None else 2
    return 1.0 - (1.0 - confidence) / (tests * max(1, looks))


def _figures(n: int, reps: list[Replication], confidence: float, target_sl: float,
             max_abandon: float | None, erlang: StaffingResult | None,
             level: float | None = None) -> CountFigures:
    sl = estimate([r.service_level for r in reps], confidence)
    ab = estimate([r.abandon_rate for r in reps], confidence)
    sl_d = estimate([r.service_level for r in reps], level or confidence)
    ab_d = estimate([r.abandon_rate for r in reps], level or confidence)
    verdict = decide(sl_d, ab_d, target_sl, max_abandon)

    def mean(values: list[float | None]) -> float | None:
        xs = [v for v in values if v is not None]
        return sum(xs) / len(xs) if xs else None

    return CountFigures(
        n, sum(r.offered for r in reps), sum(r.answered for r in reps),
        sum(r.abandoned for r in reps), mean([r.service_level for r in reps]),
        mean([r.abandon_rate for r in reps]), mean([r.mean_wait_s for r in reps]),
        mean([r.asa_s for r in reps]), mean([r.occupancy for r in reps]),
        verdict is True, erlang, len(reps), verdict is not None, sl, ab,
        estimate([r.mean_wait_s for r in reps], confidence),
        estimate([r.asa_s for r in reps], confidence),
        estimate([r.occupancy for r in reps], confidence),
        sum(r.wall_s for r in reps), None if sl_d is None else sl_d.lower,
        None if ab_d is None else ab_d.upper)


def evaluate_count(sc: Scenario, n: int, *, target_sl: float = 0.8,
                   max_abandon: float | None = None, seed: int = 0, calls: int | None = None,
                   warmup_calls: int = 0, queue: str | None = None, pool: str | None = None,
                   erlang: ErlangInputs | None = None,
                   replications: int = DEFAULT_REPLICATIONS,
                   max_replications: int | None = None,
                   confidence: float = DEFAULT_CONFIDENCE,
                   replicator: Replicator | None = None) -> CountFigures:
    """Simulate ``sc`` (already scoped) with ``n`` agents: ``replications``
    replications (seeds :func:`~acd.loadsim.replicate.replication_seed` of
    ``seed``), more in batches of as many while the interval straddles the
    target, up to ``max_replications``; the scope's figures."""
    if replications < 2:
        raise ValueError(f"replications must be >= 2 (an interval needs two), "
                         f"got {replications}")
    most = max(replications, max_replications if max_replications is not None
               else 4 * replications)
    level = decision_level(confidence, max_abandon, looks_of(replications, most))
    e = None
    if erlang is not None and erlang.calls_per_hour > 0 and erlang.aht_s > 0:
        try:
            e = evaluate(erlang.calls_per_hour, erlang.aht_s, erlang.agents_for(n),
                         erlang.t_s, erlang.patience_s)
        except ValueError:
            e = None
    own = replicator is None
    rep = replicator if replicator is not None else Replicator(1)
    try:
        reps: list[Replication] = []
        while True:
            batch = min(replications, most - len(reps))
            reps += rep.run([Job(sc, n, replication_seed(seed, i), calls, warmup_calls,
                                 queue, pool, i)
                             for i in range(len(reps), len(reps) + batch)])
            if all(r.offered == 0 for r in reps):
                raise SimError("no calls counted: the warm-up takes them all "
                               "(give more calls)" if warmup_calls or sc.warmup_s
                               else "no calls counted")
            got = _figures(n, reps, confidence, target_sl, max_abandon, e, level)
            if got.decided or len(reps) >= most:
                return got
    finally:
        if own:
            rep.close()


def search_agents(scenario: Scenario, target_sl: float = 0.8, max_abandon: float | None = None,
                  *, seed: int = 0, calls: int | None = None, queue: str | None = None,
                  interval: int | str | None = None, pool: str | None = None,
                  start: int | None = None, max_agents: int = MAX_AGENTS,
                  progress: Callable[[CountFigures], None] | None = None,
                  only: int | None = None, replications: int = DEFAULT_REPLICATIONS,
                  max_replications: int | None = None,
                  confidence: float = DEFAULT_CONFIDENCE, workers: int | None = 1,
                  replicator: Replicator | None = None) -> StaffingSearch:
    """The smallest agent count whose target holds at ``confidence``
    (and ``max_abandon``); see the module docstring.  ``start``: the first
    count tried (default: the Erlang estimate, else the scenario's count).
    ``progress`` is called with each count's figures.  ``only``: no search,
    just this count's figures (``needed`` is then None).  ``workers``:
    processes for the replications (None: all cores), or share
    ``replicator``'s."""
    if not 0 <= target_sl < 1:
        raise ValueError(f"target_sl must be in [0, 1), got {target_sl!r}")
    if max_abandon is not None and not 0 < max_abandon <= 1:
        raise ValueError(f"max_abandon must be in (0, 1], got {max_abandon!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if replications < 2:
        raise ValueError(f"replications must be >= 2, got {replications}")
    most = max_replications if max_replications is not None else 4 * replications
    if most < replications:
        raise ValueError(f"max_replications ({most}) must be >= replications "
                         f"({replications})")
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
    estimate_n = erlang_estimate(inputs, target_sl, max_abandon) if inputs is not None \
        else None
    tried: dict[int, CountFigures] = {}
    own = replicator is None
    rep = replicator if replicator is not None else Replicator(workers)

    def ok(n: int) -> bool:
        got = tried.get(n)
        if got is None:
            got = tried[n] = evaluate_count(
                sc, n, target_sl=target_sl, max_abandon=max_abandon, seed=seed, calls=n_calls,
                warmup_calls=warmup, queue=queue, pool=pool, erlang=inputs,
                replications=replications, max_replications=most, confidence=confidence,
                replicator=rep)
            if progress is not None:
                progress(got)
        return got.meets

    try:
        needed: int | None = None
        if only is not None:
            ok(only)
        else:
            n0 = min(max(1, start or estimate_n or base or 1), max_agents)
            needed = smallest_count(ok, n0, limit=max_agents)
    finally:
        if own:
            rep.close()
    return StaffingSearch(
        scenario=scenario.name, scope=label, queue=queue, pool=pool, target_sl=target_sl,
        max_abandon=max_abandon, seed=seed, calls=n_calls, base_agents=base, erlang=inputs,
        erlang_estimate=estimate_n, needed=needed,
        tried=[tried[n] for n in sorted(tried)], replications=replications,
        max_replications=most, confidence=confidence, warmup_calls=warmup,
        warmup_s=sc.warmup_s, workers=rep.workers, trace=sc.trace is not None,
        looks=looks_of(replications, most), on_the_phones=interval is not None,
        decision_level=decision_level(confidence, max_abandon, looks_of(replications, most)))


# ------------------------------------------------------------------ requirements per interval


def stationary_scenario(base: Scenario, queue: str, calls_per_hour: float,
                        calls: int | None = None) -> Scenario:
    """``base`` reduced to one queue at a constant rate: its routing policy,
    the queue's handle time, patience, wrap-up and threshold, and the agents
    with the queue's skill (as they are: other skills, dialects, levels),
    always logged in and available (:func:`on_the_phones`).  Scale it with
    :func:`scale_roster`: the mix of those agents is kept."""
    qp = base.policy.queues.get(queue)
    if qp is None:
        raise SimError(f"queue {queue!r} is not a queue of the scenario "
                       f"(queues: {', '.join(base.policy.queues)})")
    skill = qp.require.skill
    agents = [a for a in base.agents if skill in a.profile.skills]
    if not agents:
        raise SimError(f"no agent of the scenario has the skill {skill!r} of queue {queue!r}")
    queues = {q: dataclasses.replace(s, share=1.0 if q == queue else 0.0)
              for q, s in base.queues.items()}
    if queue not in queues:
        from acd.loadsim.model import QueueSpec

        queues[queue] = QueueSpec(queue, share=1.0)
    changes: dict[str, Any] = {
        "queues": queues, "rates": (calls_per_hour / 3600.0,),
        "open_ended": True, "hours": None, "calls": calls or DEFAULT_CALLS, "warmup_s": 0.0,
        "ivr": None, "trace": None, "start_s": 0.0, "forecast": None, "days": 1,
        "queue_mix": ()}
    return dataclasses.replace(on_the_phones(base, agents), **changes)


def simple_scenario(queue: str, *, aht_s: float, patience_s: float | None,
                    wrap_up_s: float, t_s: float) -> Scenario:
    """One FIFO queue ``queue``, exponential handle time (mean ``aht_s``) and
    patience (none: nobody hangs up), fixed wrap-up, one agent (scale it)."""
    from acd.loadsim.scenario import parse_scenario

    def y(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    patience = "none" if patience_s is None else \
        f"{{dist: exponential, mean: {patience_s!r}}}"
    return parse_scenario(
        f"name: {y('staffing ' + queue)}\n"
        "interval_minutes: 60\n"
        "arrivals: {calls_per_hour: 1}\n"
        f"calls: {DEFAULT_CALLS}\n"
        f"queues: {{{y(queue)}: {{share: 1, sl_seconds: {t_s!r}}}}}\n"
        f"handle: {{dist: exponential, mean: {aht_s!r}}}\n"
        f"patience: {patience}\n"
        f"wrap_up_s: {wrap_up_s!r}\n"
        "ring_no_answer: 0\n"
        f"agents: {{counts: {{{y(queue)}: 1}}}}\n", "staffing.yaml")


def simulated_requirements(rows: Sequence[ForecastRow], *, interval_s: int,
                           scenario_of: Callable[[str], Scenario], target_sl: float,
                           max_abandon: float | None = None, seed: int = 0,
                           calls: int | None = None,
                           replications: int = DEFAULT_REPLICATIONS,
                           max_replications: int | None = None,
                           confidence: float = DEFAULT_CONFIDENCE,
                           workers: int | None = None,
                           progress: Callable[[int, int], None] | None = None,
                           ) -> tuple[list[Requirement], list[StaffingSearch]]:
    """Per forecast row: the smallest count whose target holds at
    ``confidence`` in a stationary simulation of the interval's rate
    (:func:`stationary_scenario` of ``scenario_of(queue)``), with the SL's
    interval.  Rows of one queue with the same rate share a search.
    ``progress(done, to_do)`` after each search.  Also returns the searches."""
    base_of: dict[str, Scenario] = {}
    searches: list[StaffingSearch] = []
    keys = {(r.queue, r.calls * 3600.0 / interval_s) for r in rows if r.calls > 0}
    with Replicator(workers) as rep:
        by_queue: dict[str, list[Requirement]] = {}
        for queue in dict.fromkeys(r.queue for r in rows):
            if queue not in base_of:
                base_of[queue] = scenario_of(queue)
            base = base_of[queue]

            def answer(rate: float, queue: str = queue, base: Scenario = base) -> Answer:
                sc = stationary_scenario(base, queue, rate, calls)
                try:
                    guess = erlang_estimate(erlang_inputs(sc, queue), target_sl, max_abandon)
                except (ValueError, ZeroDivisionError, StopIteration):
                    guess = None
                # a target the routing cannot reach (say, a dialect no agent speaks)
                # must not send the search to thousands of agents
                limit = max(10, 3 * (guess or math.ceil(rate * 0.1)))
                s = search_agents(sc, target_sl, max_abandon, seed=seed, calls=calls,
                                  queue=queue, replications=replications,
                                  max_replications=max_replications, confidence=confidence,
                                  replicator=rep, max_agents=limit)
                searches.append(s)
                if progress is not None:
                    progress(len(searches), len(keys))
                if s.needed is None:
                    top = max(s.tried, key=lambda c: c.agents)
                    sl = "-" if top.service_level is None else f"{100 * top.service_level:.1f} %"
                    raise SimError(f"queue {queue!r} at {rate:.1f} calls/h: no agent count up "
                                   f"to {limit} (3 x the Erlang estimate) meets the target "
                                   f"(SL with {top.agents}: {sl}); can the routing reach it?")
                got = next(c for c in s.tried if c.agents == s.needed)
                ci = got.sl_ci
                return (s.needed, got.service_level, got.abandon_rate,
                        None if ci is None else max(0.0, ci.lo),
                        None if ci is None else min(1.0, ci.hi))

            aht = None
            try:
                aht = erlang_inputs(stationary_scenario(base, queue, 1.0), queue).aht_s
            except (ValueError, ZeroDivisionError, StopIteration):
                aht = None
            mine = [r for r in rows if r.queue == queue]
            by_queue[queue] = requirements_from(mine, interval_s, aht or 0.0, answer)
    # back in the rows' order
    it = {q: iter(v) for q, v in by_queue.items()}
    return [next(it[r.queue]) for r in rows], searches
