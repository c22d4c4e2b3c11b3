"""Staffing with confidence intervals (issue 16): replications, Student-t
intervals, the count chosen so the target holds at the stated confidence.

The Erlang A scenario (sim/scenarios/erlang_a.yaml: 200 calls/h, handle
180 s, patience 360 s, SL within 20 s) is the M/M/n+M system whose exact
figures acd.planning.erlang computes: 80 % needs 13 agents (SL 0.8524;
12 give 0.7618).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import pytest

from acd.loadsim.replicate import (
    Job,
    Replicator,
    dumps,
    estimate,
    replication_seed,
    t_cdf,
    t_quantile,
)
from acd.loadsim.scenario import load_scenario
from acd.loadsim.staffing import (
    decide,
    decision_level,
    evaluate_count,
    looks_of,
    scope_scenario,
    search_agents,
)
from acd.planning.erlang import agents_needed, erlang_a

ROOT = Path(__file__).resolve().parent.parent
ERLANG_A = ROOT / "sim" / "scenarios" / "erlang_a.yaml"
LAM, AHT, PATIENCE, T = 200.0, 180.0, 360.0, 20.0


def test_student_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 7, 9, 10, 19, 39, 120):
        for p in (0.6, 0.9, 0.95, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-9)
            assert t_quantile(1 - p, df) == pytest.approx(stats.t.ppf(1 - p, df), abs=1e-9)
        for x in (-3.0, -0.5, 0.0, 0.7, 2.5):
            assert t_cdf(x, df) == pytest.approx(stats.t.cdf(x, df), abs=1e-12)


def test_estimate_and_decision() -> None:
    est = estimate([0.80, 0.84, 0.82, 0.86, None], 0.95)  # None: a replication without value
    assert est is not None and est.n == 4
    assert est.mean == pytest.approx(0.83)
    assert est.lo < est.lower < est.mean < est.upper < est.hi  # one-sided bounds are tighter
    assert est.hi - est.mean == pytest.approx(t_quantile(0.975, 3) * est.sd / 2)
    assert estimate([0.8], 0.95) is None  # no interval from one value
    # the decision: lower bound above the target -> meets; upper below -> fails; else None
    assert decide(est, None, est.lower - 1e-9, None) is True
    assert decide(est, None, est.upper + 1e-9, None) is False
    assert decide(est, None, est.mean, None) is None
    ab = estimate([0.01, 0.02, 0.015], 0.95)
    assert ab is not None
    assert decide(est, ab, 0.5, ab.upper + 1e-9) is True
    assert decide(est, ab, 0.5, ab.mean) is None  # abandonment straddles its cap
    assert decide(est, ab, 0.5, ab.lower - 1e-9) is False


@pytest.mark.slow
def test_parallel_and_serial_runs_give_the_same_figures() -> None:
    sc, calls, warm, _ = scope_scenario(load_scenario(ERLANG_A), None, 2500)
    assert pickle.loads(dumps(sc)) == sc  # what the worker processes get
    jobs = [Job(sc, 12, replication_seed(7, i), calls, warm, index=i) for i in range(4)]
    with Replicator(1) as serial:
        one = serial.run(jobs)
    with Replicator(2, min_parallel_calls=0) as pool:
        two = pool.run(jobs)
        again = pool.run(jobs)  # the pool is reused
        assert pool.pooled == 8  # both batches ran in the worker processes
    strip = [dataclasses.replace(r, wall_s=0.0) for r in one]
    assert [dataclasses.replace(r, wall_s=0.0) for r in two] == strip
    assert [dataclasses.replace(r, wall_s=0.0) for r in again] == strip
    assert len({r.seed for r in one}) == 4  # every replication has its own seed
    assert len({r.service_level for r in one}) == 4
    # a search: the same answer and figures in one process and in two
    kw = {"seed": 3, "calls": 2500, "replications": 4, "max_replications": 4}  # 10,000 calls
    s1 = search_agents(load_scenario(ERLANG_A), 0.8, workers=1, **kw)  # type: ignore[arg-type]
    s2 = search_agents(load_scenario(ERLANG_A), 0.8, workers=2, **kw)  # type: ignore[arg-type]
    assert s2.workers == 2 and s1.workers == 1
    assert s1.needed == s2.needed
    assert [dataclasses.replace(c, wall_s=0.0) for c in s1.tried] == \
        [dataclasses.replace(c, wall_s=0.0) for c in s2.tried]


def test_straddling_interval_gets_more_replications_then_says_undecided() -> None:
    sc = load_scenario(ERLANG_A)
    exact = erlang_a(LAM, AHT, PATIENCE, 13, T).sl
    # a target at the true SL: the interval straddles it whatever the replications
    got = evaluate_count(sc, 13, target_sl=exact, seed=2, calls=2500, replications=3,
                         max_replications=7)
    assert got.replications == 7 and not got.decided and not got.meets
    assert got.sl_ci is not None and got.sl_ci.lower < exact < got.sl_ci.upper
    # a clear case is decided with the first batch
    clear = evaluate_count(sc, 13, target_sl=0.6, seed=2, calls=2500, replications=3,
                           max_replications=7)
    assert clear.replications == 3 and clear.decided and clear.meets
    # the verdict's bound is Bonferroni-corrected over the looks (3 batches at most
    # here: 3 + 3 + 1 replications) and, with --max-abandon, the two tests
    assert looks_of(3, 7) == 3 and looks_of(10, 40) == 4 and looks_of(4, 4) == 1
    level = decision_level(0.95, None, 3)
    assert level == pytest.approx(1 - 0.05 / 3)
    assert decision_level(0.95, 0.05, 4) == pytest.approx(1 - 0.05 / 8)
    ci = clear.sl_ci
    assert ci is not None and clear.sl_bound is not None
    assert clear.sl_bound == pytest.approx(
        ci.mean - t_quantile(level, ci.n - 1) * ci.sd / math.sqrt(ci.n))
    assert 0.6 <= clear.sl_bound < ci.lower  # stricter than the shown 95 % bound
    capped = evaluate_count(sc, 13, target_sl=0.6, max_abandon=0.5, seed=2, calls=2500,
                            replications=3, max_replications=7)
    ab = capped.abandon_ci
    assert ab is not None and capped.abandon_bound is not None
    assert capped.abandon_bound == pytest.approx(
        ab.mean + t_quantile(decision_level(0.95, 0.5, 3), ab.n - 1) * ab.sd / math.sqrt(ab.n))


@pytest.mark.slow
def test_issue_case_count_and_interval_agree_with_erlang_a() -> None:
    """The issue: one seed, no warm-up picked 61 agents where Erlang A says 63
    and showed an SL 12 points off.  With replications, a warm-up and the
    target held at 95 %, the search on the Erlang A system picks Erlang A's
    count (or one more) and the SL interval there covers the exact SL."""
    sc = load_scenario(ERLANG_A)
    res = search_agents(sc, 0.8, seed=0, replications=10, workers=2)
    want = agents_needed(LAM, AHT, 0.8, T, patience_s=PATIENCE)
    assert want == 13 and res.needed is not None
    assert want <= res.needed <= want + 1
    by_n = {c.agents: c for c in res.tried}
    for n in (res.needed, res.needed - 1):
        ci = by_n[n].sl_ci
        exact = erlang_a(LAM, AHT, PATIENCE, n, T)
        assert ci is not None and ci.lo <= exact.sl <= ci.hi, (n, ci, exact.sl)
        ab = by_n[n].abandon_ci
        assert ab is not None and ab.lo <= exact.pab <= ab.hi, (n, ab, exact.pab)
    assert res.calls is not None and res.warmup_s > 0
    assert res.warmup_calls == res.calls // 10  # warm-up: 10 % at least


@pytest.mark.slow
def test_chosen_count_meets_the_target_on_an_independent_long_run() -> None:
    """Done when: the count chosen at 95 % meets the target on a long run
    with other seeds and many more calls (and the count below misses it).
    The target 0.84 is close to the exact SL of 13 agents (0.852)."""
    sc = load_scenario(ERLANG_A)
    target = 0.84
    res = search_agents(sc, target, seed=11, calls=4000, replications=8, workers=2)
    n = res.needed
    assert n is not None and n in (13, 14)
    chosen = next(c for c in res.tried if c.agents == n)
    assert chosen.sl_ci is not None and chosen.sl_ci.lower >= target
    # the long run: 4 replications of 50,000 arrivals, seeds from another base seed
    long_sc, calls, warm, _ = scope_scenario(sc, None, 50_000)
    with Replicator(2) as rep:
        runs = rep.run([Job(long_sc, n, replication_seed(999, i), calls, warm, index=i)
                        for i in range(4)])
        below = rep.run([Job(long_sc, n - 1, replication_seed(999, i), calls, warm, index=i)
                         for i in range(2)])
    assert not {r.seed for r in runs} & {replication_seed(11, i) for i in range(40)}
    counted = sum(r.offered for r in runs)
    assert counted > 150_000
    long_sl = sum((r.service_level or 0.0) * r.offered for r in runs) / counted
    assert long_sl >= target
    below_sl = sum((r.service_level or 0.0) * r.offered for r in below) / \
        sum(r.offered for r in below)
    assert below_sl < target or n == 14
