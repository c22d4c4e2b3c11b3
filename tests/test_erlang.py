"""Erlang B, C and A calculators (acd.planning.erlang).

* every row of the shared reference file ``erlang-vectors.csv`` (outside the
  repository; skipped, with the reason, when absent) to 1e-6;
* an independent reference for Erlang A: the birth–death chain on a
  truncated state space for the stationary figures, and uniformisation of
  the tagged caller's chain (its place in the queue, served, abandoned) for
  the service level, so that the closed-form service level is checked by a
  different method;
* properties: agents_needed is minimal, figures are monotone in the agent
  count, Erlang A tends to Erlang C as patience grows, large agent counts,
  and the error messages.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.planning import erlang
from acd.planning.erlang import (
    ErlangAResult,
    ErlangCResult,
    agents_needed,
    erlang_a,
    erlang_b,
    erlang_c,
    evaluate,
    offered_load,
)
from acd.planning.search import smallest_count

VECTORS = Path(__file__).resolve().parent / "data" / "erlang-vectors.csv"
#: the file has 6 decimals; the calculators must match it to 1e-6 absolute
TOL = 1e-6
FIELDS = ("pwait", "pab", "wait_mean_s", "sl")
ABSENT = f"reference vectors {VECTORS} are absent (a shared file outside the repository)"


# ------------------------------------------------------------ the vectors


def _vector_rows() -> list[Any]:
    if not VECTORS.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT), id="no-vectors")]
    with VECTORS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [pytest.param(r, id=f"{r['model']}-{r['calls_per_hour']}x{r['aht_s']}"
                                f"-p{r['patience_s'] or 'inf'}-n{r['agents']}-t{r['t_s']}")
            for r in rows]


def _evaluate_row(row: dict[str, str]) -> ErlangCResult | ErlangAResult:
    assert row["model"] in ("A", "C"), row
    patience = float(row["patience_s"]) if row["model"] == "A" else None
    assert (patience is None) == (row["patience_s"].strip() == ""), row
    return evaluate(float(row["calls_per_hour"]), float(row["aht_s"]), int(row["agents"]),
                    float(row["t_s"]), patience)


@pytest.mark.parametrize("row", _vector_rows())
def test_reference_vector(row: dict[str, str]) -> None:
    r = _evaluate_row(row)
    assert r.model == row["model"]
    errors = {f: abs(getattr(r, f) - float(row[f])) for f in FIELDS}
    assert all(e <= TOL for e in errors.values()), (row, r, errors)


def test_reference_vectors_cover_both_models() -> None:
    if not VECTORS.is_file():
        pytest.skip(ABSENT)
    with VECTORS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"A", "C"}
    worst = max(abs(getattr(_evaluate_row(r), f) - float(r[f])) for r in rows for f in FIELDS)
    assert worst <= TOL


# -------------------------------------------------- independent references


def _log_sum(logs: list[float]) -> float:
    m = max(logs)
    return m + math.log(sum(math.exp(x - m) for x in logs))


def reference_c(calls_per_hour: float, aht_s: float, n: int, t_s: float) -> tuple[float, ...]:
    """Erlang C from its textbook form, in logs: pwait, mean wait, SL."""
    rho = calls_per_hour * aht_s / 3600
    log_terms = [k * math.log(rho) - math.lgamma(k + 1) for k in range(n)]
    log_last = n * math.log(rho) - math.lgamma(n + 1) + math.log(n / (n - rho))
    c = math.exp(log_last - _log_sum([*log_terms, log_last]))
    gap = (n - rho) / aht_s
    return c, c / gap, 1 - c * math.exp(-gap * t_s)


def reference_a(calls_per_hour: float, aht_s: float, patience_s: float, n: int,
                t_s: float) -> dict[str, float]:
    """Erlang A on a truncated birth–death chain, SL by uniformisation.

    The tagged caller finds k callers ahead (PASTA); its place drops at rate
    nμ + jθ (a service or an abandonment ahead), it enters service from
    place 0 at rate nμ and abandons at rate θ.  P(served by t | k) comes from
    uniformisation, which has positive terms only.
    """
    lam, mu, th = calls_per_hour / 3600, 1 / aht_s, 1 / patience_s
    logw = [0.0]
    for j in range(1, n + 1):
        logw.append(logw[-1] + math.log(lam / (j * mu)))
    k = 0
    while True:
        k += 1
        r = lam / (n * mu + k * th)
        logw.append(logw[-1] + math.log(r))
        if r < 0.5 and logw[-1] < max(logw) - 60:
            break
    big = max(logw)
    w = [math.exp(x - big) for x in logw]
    total = sum(w)
    p = [x / total for x in w]
    queue = p[n:]  # queue[k]: k callers waiting
    kmax = len(queue) - 1
    lq = sum(k * q for k, q in enumerate(queue))
    down = [n * mu + j * th for j in range(kmax + 1)]
    rate = down[-1] + th
    x = rate * t_s
    h = [0.0] * (kmax + 1)  # P(served within m uniformised steps | place j)
    weight = math.exp(-x)  # Poisson(m; x), m = 0
    served = [0.0] * (kmax + 1)
    m = 0
    while m < x + 12 * math.sqrt(x) + 40:
        m += 1
        h = [(down[j] / rate) * (h[j - 1] if j else 1.0)
             + (1 - (down[j] + th) / rate) * h[j] for j in range(kmax + 1)]
        weight *= x / m
        for j in range(kmax + 1):
            served[j] += weight * h[j]
    sl = sum(p[:n]) + sum(q * s for q, s in zip(queue, served, strict=True))
    return {"pwait": sum(queue), "pab": th * lq / lam, "wait_mean_s": lq / lam, "sl": sl}


A_CASES = [  # calls/h, aht, patience, agents, t
    (200, 180, 180, 10, 20), (200, 180, 180, 12, 0), (360, 240, 120, 24, 20),
    (1200, 180, 90, 58, 20), (252, 120, 60, 12, 20), (100, 100, 100, 1, 30),
    (900, 300, 30, 50, 15),  # overloaded: λ > nμ
    (400, 400, 2000, 30, 60),  # overloaded, patient callers: a long queue
    (20000, 300, 120, 1700, 20),  # hundreds of agents
]


@pytest.mark.parametrize("case", A_CASES, ids=lambda c: "-".join(map(str, c)))
def test_erlang_a_matches_birth_death_and_uniformisation(case: tuple[float, ...]) -> None:
    cph, aht, pat, n, t = case
    r = erlang_a(cph, aht, pat, int(n), t)
    ref = reference_a(cph, aht, pat, int(n), t)
    for f in FIELDS:
        assert getattr(r, f) == pytest.approx(ref[f], abs=1e-9, rel=1e-9), (f, r, ref)


@pytest.mark.parametrize(("cph", "aht", "n", "t"), [
    (200, 180, 12, 20), (600, 300, 55, 20), (3000, 240, 230, 30), (60000, 300, 5100, 20),
])
def test_erlang_c_matches_textbook_form(cph: float, aht: float, n: int, t: float) -> None:
    r = erlang_c(cph, aht, n, t)
    pwait, wait, sl = reference_c(cph, aht, n, t)
    assert r.pwait == pytest.approx(pwait, rel=1e-10)
    assert r.wait_mean_s == pytest.approx(wait, rel=1e-10)
    assert r.sl == pytest.approx(sl, rel=1e-10)
    assert r.pab == 0 and r.stable
    assert r.occupancy == pytest.approx(r.offered_load / n)


def test_small_hand_values() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)
    # M/M/1: P(wait) = ρ, E[W] = ρ/(μ − λ), P(W ≤ t) = 1 − ρ·e^(−(μ−λ)t)
    r = erlang_c(18, 100, 1, 10)  # λ = 1/200 s, μ = 1/100 s, ρ = 0.5
    assert r.pwait == pytest.approx(0.5)
    assert r.wait_mean_s == pytest.approx(0.5 / (1 / 100 - 1 / 200))
    assert r.sl == pytest.approx(1 - 0.5 * math.exp(-(1 / 100 - 1 / 200) * 10))
    assert offered_load(200, 180) == pytest.approx(10.0)


def test_erlang_b_large_counts_do_not_overflow() -> None:
    b = erlang_b(5000, 4900.0)
    log_terms = [k * math.log(4900.0) - math.lgamma(k + 1) for k in range(5001)]
    assert b == pytest.approx(math.exp(log_terms[-1] - _log_sum(log_terms)), rel=1e-9)
    assert erlang_b(3000, 1.0) == 0.0  # ~1e-9131 underflows, no error


def test_erlang_a_identities() -> None:
    for cph, aht, pat, n, t in A_CASES:
        r = erlang_a(cph, aht, pat, int(n), t)
        assert r.pab == pytest.approx(r.wait_mean_s / pat, rel=1e-12)  # pab = θ·E[W]
        assert r.occupancy == pytest.approx(min(1.0, r.offered_load * (1 - r.pab) / n))
        assert 0 <= r.sl <= 1 - r.pab + 1e-12
        at0 = erlang_a(cph, aht, pat, int(n), 0)
        assert at0.sl == pytest.approx(1 - at0.pwait, abs=1e-12)  # only those not waiting
        late = erlang_a(cph, aht, pat, int(n), 1e7)
        assert late.sl == pytest.approx(1 - late.pab, abs=1e-12)  # every served caller


def test_overloaded_erlang_a_gamma_path_agrees_with_series(monkeypatch: pytest.MonkeyPatch) -> None:
    # λ − nμ = 0.3/s with θ = 1e-6/s: the series would climb 300 000 terms
    assert erlang._log_s0_gamma(1.0, 0.7, 1e-6) == pytest.approx(
        erlang._series(1.0, 0.7, 1e-6)[0], rel=1e-12)
    cases = [(3600, 100, 2e5, 60, 20), (3600, 100, 1e6, 99, 5), (7200, 300, 5e4, 500, 20)]
    fast = [erlang_a(*c) for c in cases]
    monkeypatch.setattr(erlang, "_GAMMA_CLIMB", math.inf)  # series only
    slow = [erlang_a(*c) for c in cases]
    for f, s in zip(fast, slow, strict=True):
        for name in (*FIELDS, "occupancy"):
            assert getattr(f, name) == pytest.approx(getattr(s, name), rel=1e-9, abs=1e-12)


def test_unstable_erlang_c_is_reported_not_raised() -> None:
    for n in (5, 9, 10):  # load 10 Erlangs
        r = erlang_c(200, 180, n, 20)
        assert not r.stable
        assert (r.pwait, r.sl, r.occupancy) == (1.0, 0.0, 1.0)
        assert r.wait_mean_s == math.inf
    assert erlang_c(200, 180, 11, 20).stable


def test_no_calls() -> None:
    c = erlang_c(0, 180, 3, 20)
    a = erlang_a(0, 180, 60, 3, 20)
    for r in (c, a):
        assert (r.pwait, r.pab, r.wait_mean_s, r.sl, r.occupancy) == (0, 0, 0, 1, 0)


def test_hundreds_of_agents() -> None:
    c = erlang_c(20000, 300, 1700, 20)
    a = erlang_a(20000, 300, 120, 1700, 20)
    assert 0 < c.pwait < 1 and 0 < a.pwait < c.pwait and 0.9 < a.sl <= 1
    assert agents_needed(20000, 300, 0.9, 20) == 1690
    n = agents_needed(20000, 300, 0.9, 20, patience_s=120)
    assert erlang_a(20000, 300, 120, n, 20).sl >= 0.9 > erlang_a(20000, 300, 120, n - 1, 20).sl
    # a very patient, overloaded crowd: nothing overflows, nearly nobody is served in time
    r = erlang_a(20000, 300, 1e9, 1600, 20)
    assert r.pwait == pytest.approx(1.0)
    assert r.pab == pytest.approx(1 - 1600 / (20000 * 300 / 3600))
    assert r.sl < 1e-9


# ------------------------------------------------------------- properties


def _meets(r: ErlangCResult | ErlangAResult, target: float, cap: float | None) -> bool:
    return r.stable and r.sl >= target and (cap is None or r.pab <= cap)


@settings(max_examples=80, deadline=None)
@given(cph=st.floats(5, 4000), aht=st.floats(20, 900), target=st.floats(0.05, 0.97),
       t=st.floats(0, 90), patience=st.none() | st.floats(5, 2000), cap=st.floats(0.005, 0.5),
       use_cap=st.booleans())
def test_agents_needed_is_minimal(cph: float, aht: float, target: float, t: float,
                                  patience: float | None, cap: float, use_cap: bool) -> None:
    max_ab = cap if use_cap and patience is not None else None
    n = agents_needed(cph, aht, target, t, patience_s=patience, max_abandon=max_ab)
    assert _meets(evaluate(cph, aht, n, t, patience), target, max_ab)
    if n > 1:
        assert not _meets(evaluate(cph, aht, n - 1, t, patience), target, max_ab)


def test_agents_needed_known_answers() -> None:
    assert agents_needed(200, 180, 0.8, 20) == 14  # 13 agents: SL 0.7956
    assert erlang_c(200, 180, 13, 20).sl < 0.8 < erlang_c(200, 180, 14, 20).sl
    assert agents_needed(200, 180, 0.8, 20, patience_s=180) == 12  # abandoners help SL
    assert agents_needed(200, 180, 0.8, 20, patience_s=180, max_abandon=0.03) == 14
    assert agents_needed(200, 180, 0.0, 20) == 11  # the smallest stable count
    assert agents_needed(1, 60, 0.5, 20, patience_s=60) == 1


@settings(max_examples=40, deadline=None)
@given(cph=st.floats(5, 3000), aht=st.floats(20, 900), t=st.floats(0, 90),
       patience=st.none() | st.floats(5, 2000))
def test_figures_are_monotone_in_agents(cph: float, aht: float, t: float,
                                        patience: float | None) -> None:
    rho = cph * aht / 3600
    rows = [evaluate(cph, aht, n, t, patience) for n in range(1, int(rho) + 25)]
    for a, b in itertools.pairwise(rows):
        assert b.sl >= a.sl - 1e-12
        assert b.pwait <= a.pwait + 1e-12
        assert b.pab <= a.pab + 1e-12
        assert b.wait_mean_s <= a.wait_mean_s * (1 + 1e-12) + 1e-12


@pytest.mark.parametrize(("cph", "aht", "n", "t"), [
    (200, 180, 12, 20), (600, 300, 55, 20), (50, 600, 10, 20), (3000, 240, 215, 30),
])
def test_erlang_a_tends_to_erlang_c(cph: float, aht: float, n: int, t: float) -> None:
    c = erlang_c(cph, aht, n, t)
    gaps = []
    for patience in (1e3, 1e5, 1e7, 1e9):
        a = erlang_a(cph, aht, patience, n, t)
        gaps.append(max(abs(a.pwait - c.pwait), abs(a.sl - c.sl), a.pab,
                        abs(a.wait_mean_s - c.wait_mean_s) / c.wait_mean_s))
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-5


# ------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(("call", "message"), [
    (lambda: erlang_c(-1, 180, 10, 20), "calls_per_hour must be >= 0"),
    (lambda: erlang_c(200, 0, 10, 20), "aht_s must be > 0"),
    (lambda: erlang_c(200, 180, 0, 20), "agents must be >= 1"),
    (lambda: erlang_c(200, 180, 2.5, 20), "agents must be a whole number"),  # type: ignore[arg-type]
    (lambda: erlang_c(200, 180, True, 20), "agents must be a whole number"),
    (lambda: erlang_c(200, 180, 10, -1), "t_s must be >= 0"),
    (lambda: erlang_c(math.nan, 180, 10, 20), "calls_per_hour must be a finite number"),
    (lambda: erlang_c("200", 180, 10, 20), "calls_per_hour must be a number"),  # type: ignore[arg-type]
    (lambda: erlang_a(200, 180, 0, 10, 20), "patience_s must be > 0"),
    (lambda: erlang_a(200, 180, -5, 10, 20), "patience_s must be > 0"),
    (lambda: erlang_a(200, 180, math.inf, 10, 20), "patience_s must be a finite number"),
    (lambda: erlang_b(10, -1), "load must be >= 0"),
    (lambda: agents_needed(0, 180, 0.8, 20), "calls_per_hour must be > 0"),
    (lambda: agents_needed(200, 180, 1.0, 20), "target_sl must be below 1"),
    (lambda: agents_needed(200, 180, -0.1, 20), "target_sl must be >= 0"),
    (lambda: agents_needed(200, 180, 0.8, 20, max_abandon=0.05), "max_abandon needs patience_s"),
    (lambda: agents_needed(200, 180, 0.8, 20, patience_s=60, max_abandon=0),
     "max_abandon must be > 0"),
    (lambda: agents_needed(200, 180, 0.8, 20, patience_s=60, max_abandon=2),
     "max_abandon must be <= 1"),
])
def test_bad_inputs_name_the_parameter(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------ the shared agent-count search


def _asking(answer: int) -> tuple[list[int], Any]:
    asked: list[int] = []

    def meets(n: int) -> bool:
        asked.append(n)
        return n >= answer

    return asked, meets


def test_smallest_count_gallops_then_bisects_in_a_fixed_order() -> None:
    # up from 10: 11, 13, 17, 25 (meets), then bisect 21, 19, 20
    asked, meets = _asking(20)
    assert smallest_count(meets, 10, limit=100) == 20
    assert asked == [10, 11, 13, 17, 25, 21, 19, 20]
    # down from 30: 29, 27, 23, 15 (fails), then bisect 19, 21, 20
    asked, meets = _asking(20)
    assert smallest_count(meets, 30, limit=100) == 20
    assert asked == [30, 29, 27, 23, 15, 19, 21, 20]
    # the last step up is cut at the limit; beyond it: None
    asked, meets = _asking(60)
    assert smallest_count(meets, 40, limit=50) is None
    assert asked == [40, 41, 43, 47, 50]
    # down to the floor, which is the answer without its predecessor asked
    asked, meets = _asking(1)
    assert smallest_count(meets, 6, floor=3, limit=9) == 3
    assert asked == [6, 5, 3]
    with pytest.raises(ValueError, match="not within"):
        smallest_count(meets, 2, floor=3, limit=9)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.integers(1, 400), st.integers(1, 3))
def test_smallest_count_is_the_smallest_and_asks_each_count_once(
        answer: int, start: int, limit: int, floor: int) -> None:
    start = max(floor, min(start, limit))
    if floor > limit:
        return
    asked, meets = _asking(answer)
    got = smallest_count(meets, start, floor=floor, limit=limit)
    expect = max(answer, floor) if answer <= limit else None
    assert got == expect
    assert len(asked) == len(set(asked))
    if got is not None and got > floor:
        assert got - 1 in asked
