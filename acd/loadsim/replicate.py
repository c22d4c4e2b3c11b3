"""Independent replications of a simulation, in parallel, with confidence intervals.

One simulation run is one sample of a random system: its service level is
the truth plus noise (and, from an empty start, plus a bias).  Staffing by
simulation therefore runs ``R`` independent replications of the same
scenario and agent count, each with its own seed, and reports every figure
as the mean over the replications with a Student-t confidence interval.

Seeds
    Replication ``i`` (0, 1, 2 ...) of base seed ``s`` runs with
    :func:`replication_seed` ``(s, i)``: a 56-bit number hashed from both,
    the same on every machine and in every process.  Every agent count of a
    search uses the same seeds (common random numbers: the counts differ by
    their agents only, not by their callers).

Parallel
    :class:`Replicator` runs the jobs in a
    :class:`concurrent.futures.ProcessPoolExecutor` (``workers`` processes,
    default ``os.cpu_count()``; 1 = in this process, no pool).  Results do
    not depend on the number of workers: a replication's figures depend on
    its job only.  A :class:`~acd.loadsim.model.Scenario` holds read-only
    mappings (``types.MappingProxyType``) that :mod:`pickle` refuses, so a
    job is pickled here with a reducer for them (:func:`dumps`) and sent as
    bytes.  The pool's processes come from a fork server (``forkserver``
    start method on Linux, else ``spawn``): forking the command's own
    process, which runs a status spinner thread, is not safe.

Intervals
    Student t with ``R - 1`` degrees of freedom: the two-sided interval at
    ``confidence`` (``lo``, ``hi``) for display, and the one-sided bounds at
    ``confidence`` (``lower``, ``upper``) for decisions ("the service level
    is at least ``lower`` with 95 % confidence").  The t quantile is exact,
    computed here without SciPy: the t distribution function of an integer
    number of degrees of freedom is a finite trigonometric sum (Abramowitz
    & Stegun 26.7.3/26.7.4), inverted by bisection (:func:`t_quantile`).
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import math
import multiprocessing
import os
import pickle
import statistics
import sys
import types
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from acd.loadsim.model import AgentSpec, Scenario, SimError

__all__ = [
    "Estimate",
    "Job",
    "Replication",
    "Replicator",
    "dumps",
    "estimate",
    "pool_agents",
    "replication_seed",
    "run_job",
    "scale_roster",
    "t_cdf",
    "t_quantile",
]


# ------------------------------------------------------------------ Student t


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with ``df`` (a whole number >= 1) degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    theta = math.atan(abs(x) / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:  # A(t|ν) = 2/π (θ + sinθ (cosθ + 2/3 cos³θ + ... ))
        total = 0.0
        if df > 1:
            term = c
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        a = 2.0 / math.pi * (theta + s * total)
    else:  # A(t|ν) = sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + ...)
        term = total = 1.0
        for k in range(2, df - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        a = s * total
    a = min(1.0, max(0.0, a))
    return 0.5 + 0.5 * a if x >= 0 else 0.5 - 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure over replications: the mean and its Student-t bounds."""

    mean: float
    #: two-sided interval at ``confidence``
    lo: float
    hi: float
    #: one-sided bounds at ``confidence``: the figure is >= lower (<= upper) with that confidence
    lower: float
    upper: float
    #: replications with a value (a replication without answered calls has no ASA)
    n: int
    sd: float
    confidence: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "lower": self.lower,
                "upper": self.upper, "n": self.n, "sd": self.sd}


def estimate(values: Sequence[float | None], confidence: float) -> Estimate | None:
    """Mean and Student-t bounds of the values that are not None (None when
    fewer than two)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    xs = [v for v in values if v is not None]
    if len(xs) < 2:
        return None
    n = len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs)
    se = sd / math.sqrt(n)
    two = t_quantile(0.5 + confidence / 2.0, n - 1) * se
    one = t_quantile(confidence, n - 1) * se
    return Estimate(mean, mean - two, mean + two, mean - one, mean + one, n, sd, confidence)


# ------------------------------------------------------------------ the roster
# (scaled here, for the jobs; acd.loadsim.staffing re-exports these)


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


# ------------------------------------------------------------------ jobs


def replication_seed(seed: int, i: int) -> int:
    """The seed of replication ``i`` of base seed ``seed`` (deterministic, 56 bits)."""
    digest = hashlib.sha256(f"acd-replication:{seed}:{i}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


@dataclass(frozen=True, slots=True)
class Job:
    """One replication: ``scenario`` (already scoped) with ``agents`` agents."""

    scenario: Scenario
    agents: int
    seed: int
    calls: int | None = None
    warmup_calls: int = 0
    queue: str | None = None
    pool: str | None = None
    #: the replication's number (for the result)
    index: int = 0


@dataclass(frozen=True, slots=True)
class Replication:
    """The scope's figures in one replication."""

    index: int
    seed: int
    agents: int
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    abandon_rate: float | None
    mean_wait_s: float | None
    asa_s: float | None
    occupancy: float | None
    wall_s: float


def run_job(job: Job) -> Replication:
    """Run one replication (in this process)."""
    from acd.loadsim.virtual import run_virtual

    res = run_virtual(scale_roster(job.scenario, job.agents, job.pool), job.seed, job.calls,
                      warmup_calls=job.warmup_calls)
    try:
        row = res.totals("queue", job.queue) if job.queue is not None else res.totals()
    except KeyError:
        raise SimError(f"no calls reached queue {job.queue!r}") from None
    return Replication(job.index, job.seed, job.agents, row.offered, row.answered,
                       row.abandoned, row.service_level, row.abandon_rate, row.mean_wait_s,
                       row.asa_s, row.occupancy, res.wall_s)


def _mappingproxy(d: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(d)


def _reduce_mappingproxy(m: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mappingproxy, (dict(m),))


def dumps(obj: object) -> bytes:
    """``pickle.dumps`` that also takes read-only mappings (a Scenario has some)."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    table = copyreg.dispatch_table.copy()
    table[types.MappingProxyType] = _reduce_mappingproxy
    p.dispatch_table = table
    p.dump(obj)
    return buf.getvalue()


def _run_payload(payload: bytes) -> Replication:
    job = pickle.loads(payload)
    assert isinstance(job, Job)
    return run_job(job)


#: a batch with fewer arrivals in all runs in this process: starting the
#: processes would cost more than it saves
MIN_PARALLEL_CALLS = 10_000


def _calls_of(job: Job) -> float:
    if job.calls is not None:
        return float(job.calls)
    return job.scenario.expected_calls() or 0.0


class Replicator:
    """Runs jobs in ``workers`` processes (1: in this process; also a batch
    of fewer than ``min_parallel_calls`` arrivals in all).  Use as a context
    manager, or call :meth:`close`; the pool starts on first use."""

    def __init__(self, workers: int | None = None,
                 min_parallel_calls: int = MIN_PARALLEL_CALLS) -> None:
        n = (os.cpu_count() or 1) if workers is None else workers
        if n < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = n
        self.min_parallel_calls = min_parallel_calls
        self._pool: Executor | None = None
        #: replications run so far, and how many of them in the pool's processes
        self.runs = 0
        self.pooled = 0

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, jobs: Sequence[Job]) -> list[Replication]:
        """The jobs' figures, in the jobs' order."""
        self.runs += len(jobs)
        if self.workers == 1 or len(jobs) <= 1 or \
                sum(_calls_of(j) for j in jobs) < self.min_parallel_calls:
            return [run_job(j) for j in jobs]
        if self._pool is None:
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            ctx = multiprocessing.get_context(method)
            if method == "forkserver":  # import the simulator once, in the server
                ctx.set_forkserver_preload(["acd.loadsim.virtual"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        self.pooled += len(jobs)
        return list(self._pool.map(_run_payload, [dumps(j) for j in jobs]))
