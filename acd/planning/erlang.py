"""Erlang B, C and A: staffing figures for one queue served by identical agents.

Pure functions, no I/O.  Inputs are in the planner's units: arrivals in
calls per hour, times (handling time, patience, answer-within threshold) in
seconds.  Every probability is a share of *all* arrivals.

Erlang C (M/M/n)
    Poisson arrivals at rate λ, exponential handling at rate μ = 1/AHT per
    agent, n agents, callers never give up.  With the offered load ρ = λ/μ
    (Erlangs) and B the Erlang B blocking probability::

        C     = n·B / (n − ρ·(1 − B))          P(wait > 0)
        E[W]  = C / (nμ − λ)                   mean wait over all arrivals
        SL(t) = 1 − C·exp(−(nμ − λ)·t)         P(W ≤ t)
        occupancy = ρ / n

    For ρ ≥ n the queue is unstable: the result says so (``stable=False``,
    pwait 1, mean wait ``math.inf``, service level 0, occupancy 1).

Erlang A (M/M/n+M, Palm's model)
    As Erlang C, plus every waiting caller abandons after an exponential
    patience of mean 1/θ.  The number in system is a birth–death process::

        p_j     ∝ ρ^j / j!                          j ≤ n
        p_{n+k} = p_n · Π_{i=1..k} λ / (nμ + iθ)    k ≥ 1

    With S0 = Σ_k Π_{i≤k} λ/(nμ+iθ) and S1 = Σ_k k·Π_{i≤k} λ/(nμ+iθ)
    (k ≥ 0), normalisation gives p_n = B / (1 − B + B·S0), and::

        pwait = p_n·S0                    arrivals that find all agents busy (PASTA)
        E[Lq] = p_n·S1                    mean queue length
        E[W]  = E[Lq] / λ                 mean time in queue, abandoners included (Little)
        pab   = θ·E[Lq] / λ = θ·E[W]      abandonment rate / arrival rate

    When λ > nμ the equivalent queue balance ``λ·pwait = nμ·(pwait − p_n) +
    λ·pab`` gives pab without cancellation, and S0 is taken from the
    regularised incomplete gamma function when its series would be long
    (S0 = Γ(a+1)·c^(−a)·e^c·P(a, c), a = nμ/θ, c = λ/θ).

    Service level: the offered wait V (what a caller would wait if patient
    enough) has, on (0, ∞), the density f_V(x) = p_n·nμ·exp(λ·H(x) − nμ·x)
    with H(x) = (1 − e^(−θx))/θ [Baccelli & Hébuterne 1981; Mandelbaum &
    Zeltyn, "The M/M/n+G queue: summary of performance measures", 2009].  A
    caller is served within t when V ≤ t and its patience exceeds V, so with
    x = t + s and λ_t = λ·e^(−θt)::

        P(served, W > t) = ∫_t^∞ e^(−θx) f_V(x) dx
                         = p_n·nμ/(nμ+θ) · exp(λ·H(t) − (nμ+θ)·t)
                           · Σ_k Π_{i=1..k} λ_t / (nμ + (i+1)θ)
        SL(t) = 1 − pab − P(served, W > t)
        occupancy = ρ·(1 − pab) / n

All series have positive terms, are summed with a running scale (no
factorial or power overflows for thousands of agents) and are cut off with a
geometric bound on the remainder (relative 1e-17).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from acd.planning.search import smallest_count

__all__ = [
    "ErlangAResult",
    "ErlangCResult",
    "StaffingResult",
    "agents_needed",
    "check_targets",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "evaluate",
    "offered_load",
]

SECONDS_PER_HOUR = 3600.0
#: agents_needed gives up (ValueError) beyond this many agents
MAX_AGENTS = 1_000_000

_EPS = 1e-17  # relative cut-off of the series
_RESCALE = 1e150  # series terms are rescaled above this
_LOG_RESCALE = math.log(_RESCALE)
_GAMMA_CLIMB = 50_000.0  # use the incomplete gamma when a series climbs this many terms
_TINY = 1e-300


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class ErlangCResult:
    """Erlang C (M/M/n, no abandonment) figures for one agent count."""

    calls_per_hour: float
    aht_s: float
    agents: int
    t_s: float
    #: offered load λ/μ in Erlangs
    offered_load: float
    #: share of arrivals that wait at all (1 when unstable)
    pwait: float
    #: mean wait over all arrivals, seconds (math.inf when unstable)
    wait_mean_s: float
    #: share of all arrivals answered within t_s seconds (0 when unstable)
    sl: float
    #: share of agent time spent handling calls (1 when unstable)
    occupancy: float
    #: False when offered_load >= agents: the queue grows without bound
    stable: bool
    #: nobody abandons in Erlang C
    pab: float = 0.0

    @property
    def model(self) -> Literal["C"]:
        return "C"

    @property
    def patience_s(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Erlang A (M/M/n+M, exponential patience) figures for one agent count."""

    calls_per_hour: float
    aht_s: float
    patience_s: float
    agents: int
    t_s: float
    #: offered load λ/μ in Erlangs
    offered_load: float
    #: share of arrivals that find every agent busy (and so wait)
    pwait: float
    #: share of arrivals that abandon before reaching an agent
    pab: float
    #: mean time in queue over all arrivals (abandoners: until they hang up), seconds
    wait_mean_s: float
    #: share of all arrivals that reach an agent within t_s seconds
    sl: float
    #: share of agent time spent handling calls
    occupancy: float

    @property
    def model(self) -> Literal["A"]:
        return "A"

    @property
    def stable(self) -> bool:
        return True  # abandonment keeps the queue finite whatever the load


StaffingResult = ErlangCResult | ErlangAResult


# --------------------------------------------------------------- validation


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def _non_negative(name: str, value: float) -> float:
    v = _finite(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def _agents(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"agents must be a whole number, got {value!r}")
    if value < 1:
        raise ValueError(f"agents must be >= 1, got {value!r}")
    return value


# -------------------------------------------------------------- primitives


def offered_load(calls_per_hour: float, aht_s: float) -> float:
    """Offered load in Erlangs: calls per hour × AHT / 3600."""
    lam = _non_negative("calls_per_hour", calls_per_hour)
    return lam * _positive("aht_s", aht_s) / SECONDS_PER_HOUR


def erlang_b(agents: int, load: float) -> float:
    """Erlang B: the share of calls blocked with ``agents`` servers and no queue.

    Uses the recursion B(0) = 1, B(k) = ρ·B(k−1) / (k + ρ·B(k−1)), which is
    stable for any number of agents (B may underflow to 0 when it is below
    ~1e-308).
    """
    n = _agents(agents)
    rho = _non_negative("load", load)
    b = 1.0
    for k in range(1, n + 1):
        rb = rho * b
        b = rb / (k + rb)
    return b


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def _series(lam: float, base: float, theta: float) -> tuple[float, float]:
    """log S0 and log S1 of t_k = Π_{i=1..k} lam/(base + iθ), k ≥ 0 (t_0 = 1).

    S0 = Σ t_k, S1 = Σ k·t_k; log S1 is -inf when lam is 0.  Terms are
    summed until the geometric bound on both remainders is below _EPS of
    the sums; a running scale keeps them finite.
    """
    log_scale = 0.0
    t = s0 = 1.0
    s1 = 0.0
    k = 0
    while True:
        k += 1
        r = lam / (base + k * theta)
        t *= r
        s0 += t
        s1 += k * t
        if r < 1.0:
            q = r / (1.0 - r)
            # Σ_{m≥1} t·r^m and Σ_{m≥1} (k+m)·t·r^m bound the remainders (r decreases in k)
            if t * q <= _EPS * s0 and t * (k * q + q / (1.0 - r)) <= _EPS * s1:
                break
        if t > _RESCALE:
            t /= _RESCALE
            s0 /= _RESCALE
            s1 /= _RESCALE
            log_scale += _LOG_RESCALE
    return log_scale + math.log(s0), (log_scale + math.log(s1)) if s1 > 0 else -math.inf


def _u_minus_log1p(u: float) -> float:
    """u − log(1 + u) for u > −1, accurate also for small u."""
    if abs(u) < 0.25:
        # Σ_{k≥2} (−u)^k / k, 1e-17 after ~27 terms at |u| = 0.25
        total, power, k = 0.0, -u, 1
        while True:
            k += 1
            power *= -u  # (−u)^k
            term = power / k
            total += term
            if abs(term) <= 1e-17 * abs(total):
                return total
    return u - math.log1p(u)


def _stirling_rest(a: float) -> float:
    """log Γ(a+1) − (a·log a − a + ½·log(2πa)), for a > 0."""
    if a < 10.0:
        return math.lgamma(a + 1.0) - (a * math.log(a) - a + 0.5 * math.log(2.0 * math.pi * a))
    inv, inv2 = 1.0 / a, 1.0 / (a * a)
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))


def _log_s0_gamma(lam: float, base: float, theta: float) -> float:
    """log S0 for lam > base + θ: S0 = Γ(a+1)·c^(−a)·e^c·P(a, c), a = base/θ, c = lam/θ.

    The large terms of log Γ(a+1) − a·log c + c cancel; they are written as
    a·(u − log(1+u)) + ½·log(2πa) + (Stirling rest), u = (c − a)/a, so that
    the result keeps its precision for a and c in the millions.  Q(a, c) =
    1 − P(a, c) comes from the continued fraction (modified Lentz, as in
    Numerical Recipes' gcf), which converges for c > a + 1.
    """
    a, c = base / theta, lam / theta
    core = a * _u_minus_log1p((lam - base) / base) + 0.5 * math.log(2.0 * math.pi * a) \
        + _stirling_rest(a)  # log Γ(a+1) − a·log c + c
    b = c + 1.0 - a
    cf_c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    i = 0
    while True:
        i += 1
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        cf_c = b + an / cf_c
        if abs(cf_c) < _TINY:
            cf_c = _TINY
        d = 1.0 / d
        delta = d * cf_c
        h *= delta
        if abs(delta - 1.0) < 1e-16 or i > 10_000_000:
            break
    log_q = -core + math.log(a) + math.log(h)  # −c + a·log c − log Γ(a) + log h
    return core + math.log(-math.expm1(log_q))


def _log_s0(lam: float, base: float, theta: float) -> float:
    """log S0 (see _series); the incomplete gamma form when the series is long
    (its terms climb for more than _GAMMA_CLIMB steps)."""
    if lam - base > _GAMMA_CLIMB * theta:
        return _log_s0_gamma(lam, base, theta)
    return _series(lam, base, theta)[0]


def _clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


# ------------------------------------------------------------------ models


def erlang_c(calls_per_hour: float, aht_s: float, agents: int, t_s: float) -> ErlangCResult:
    """Erlang C (M/M/n) figures for ``agents`` agents; see the module doc.

    ``t_s`` is the answer-within threshold of the service level, seconds.
    A load at or above the agent count gives an unstable result
    (``stable=False``, ``wait_mean_s == math.inf``) rather than an error.
    """
    lam_h = _non_negative("calls_per_hour", calls_per_hour)
    aht = _positive("aht_s", aht_s)
    n = _agents(agents)
    t = _non_negative("t_s", t_s)
    rho = lam_h * aht / SECONDS_PER_HOUR
    if rho >= n:
        return ErlangCResult(calls_per_hour=lam_h, aht_s=aht, agents=n, t_s=t,
                             offered_load=rho, pwait=1.0, wait_mean_s=math.inf, sl=0.0,
                             occupancy=1.0, stable=False)
    b = erlang_b(n, rho)
    c = _clamp01(n * b / (n - rho * (1.0 - b)))
    gap = (n - rho) / aht  # nμ − λ, per second
    return ErlangCResult(calls_per_hour=lam_h, aht_s=aht, agents=n, t_s=t, offered_load=rho,
                         pwait=c, wait_mean_s=c / gap, sl=_clamp01(1.0 - c * math.exp(-gap * t)),
                         occupancy=rho / n, stable=True)


def erlang_a(calls_per_hour: float, aht_s: float, patience_s: float, agents: int,
             t_s: float) -> ErlangAResult:
    """Erlang A (M/M/n+M) figures for ``agents`` agents; see the module doc.

    ``patience_s`` is the callers' mean patience (exponential), ``t_s`` the
    answer-within threshold of the service level, both in seconds.  Any load
    is allowed: abandonment keeps the queue finite.
    """
    lam_h = _non_negative("calls_per_hour", calls_per_hour)
    aht = _positive("aht_s", aht_s)
    patience = _positive("patience_s", patience_s)
    n = _agents(agents)
    t = _non_negative("t_s", t_s)
    lam = lam_h / SECONDS_PER_HOUR
    mu = 1.0 / aht
    theta = 1.0 / patience
    rho = lam / mu
    b = erlang_b(n, rho)
    if b == 0.0:  # no load, or all agents busy with probability below ~1e-308
        return ErlangAResult(calls_per_hour=lam_h, aht_s=aht, patience_s=patience, agents=n,
                             t_s=t, offered_load=rho, pwait=0.0, pab=0.0, wait_mean_s=0.0,
                             sl=1.0, occupancy=rho / n)
    base = n * mu
    log_b = math.log(b)
    if lam <= base:
        log_s0, log_s1 = _series(lam, base, theta)
    else:
        log_s0, log_s1 = _log_s0(lam, base, theta), math.nan
    log_pn = log_b - _log_add(math.log1p(-b), log_b + log_s0)  # P(exactly n in system)
    pwait = math.exp(log_pn + log_s0)
    if lam <= base:
        lq = math.exp(log_pn + log_s1)  # E[queue length]
        pab, wait = theta * lq / lam, lq / lam
    else:
        pab = pwait * (1.0 - base / lam) + math.exp(log_pn) * base / lam
        wait = pab * patience
    # P(served, wait > t) from the offered-wait density
    lam_t = lam * math.exp(-theta * t)
    log_late = (log_pn + math.log(base) - math.log(base + theta)
                + lam * (-math.expm1(-theta * t)) / theta - (base + theta) * t
                + _log_s0(lam_t, base + theta, theta))
    pab = _clamp01(pab)
    sl = _clamp01(1.0 - pab - math.exp(log_late))
    return ErlangAResult(calls_per_hour=lam_h, aht_s=aht, patience_s=patience, agents=n, t_s=t,
                         offered_load=rho, pwait=_clamp01(pwait), pab=pab, wait_mean_s=wait,
                         sl=sl, occupancy=min(1.0, rho * (1.0 - pab) / n))


def evaluate(calls_per_hour: float, aht_s: float, agents: int, t_s: float,
             patience_s: float | None = None) -> StaffingResult:
    """Erlang C when ``patience_s`` is None, Erlang A otherwise."""
    if patience_s is None:
        return erlang_c(calls_per_hour, aht_s, agents, t_s)
    return erlang_a(calls_per_hour, aht_s, patience_s, agents, t_s)


# ---------------------------------------------------------------- staffing


def check_targets(target_sl: float, patience_s: float | None,
                  max_abandon: float | None) -> tuple[float, float | None]:
    """Validate staffing targets: 0 ≤ target_sl < 1; 0 < max_abandon ≤ 1, and
    only with a patience (Erlang A).  Returns them as floats."""
    target = _non_negative("target_sl", target_sl)
    if target >= 1.0:
        raise ValueError(f"target_sl must be below 1 (no finite staff answers every call "
                         f"within t_s), got {target_sl!r}")
    if max_abandon is None:
        return target, None
    if patience_s is None:
        raise ValueError("max_abandon needs patience_s: without abandonment (Erlang C) "
                         "nobody abandons")
    cap = _positive("max_abandon", max_abandon)
    if cap > 1.0:
        raise ValueError(f"max_abandon must be <= 1, got {max_abandon!r}")
    return target, cap


def agents_needed(calls_per_hour: float, aht_s: float, target_sl: float, t_s: float,
                  patience_s: float | None = None, max_abandon: float | None = None) -> int:
    """The smallest agent count whose service level (share of all arrivals
    answered within ``t_s`` seconds) is at least ``target_sl`` and, with
    ``max_abandon``, whose abandonment share is at most that.

    Erlang C when ``patience_s`` is None (only stable counts qualify),
    Erlang A otherwise; ``max_abandon`` needs ``patience_s``.  Service level
    rises and abandonment falls with every added agent, so the count is
    found by :func:`acd.planning.search.smallest_count` (doubling then
    bisection) from a lower bound (served share ≤ n/ρ, and for Erlang C
    n > ρ).
    """
    lam_h = _positive("calls_per_hour", calls_per_hour)
    aht = _positive("aht_s", aht_s)
    t = _non_negative("t_s", t_s)
    patience = None if patience_s is None else _positive("patience_s", patience_s)
    target, cap = check_targets(target_sl, patience_s, max_abandon)
    rho = lam_h * aht / SECONDS_PER_HOUR

    def meets(n: int) -> bool:
        r = evaluate(lam_h, aht, n, t, patience)
        return r.stable and r.sl >= target and (cap is None or r.pab <= cap)

    if patience is None:
        lo = math.floor(rho) + 1
    else:
        need_served = max(target, 1.0 - cap if cap is not None else 0.0)
        lo = max(1, math.floor(rho * need_served))
    # the last step up is cut at MAX_AGENTS (a lower bound beyond it is still tried)
    n = smallest_count(meets, lo, floor=lo, limit=max(lo, MAX_AGENTS))
    if n is None:
        raise ValueError(f"no staffing up to {MAX_AGENTS} agents meets target_sl={target_sl!r}"
                         f" and max_abandon={max_abandon!r}")
    return n
