"""Virtual-time simulation of the production router (acd/loadsim/virtual.py).

Erlang checks (``/work/shared/erlang-vectors.csv``, one FCFS queue,
exponential inter-arrival, handle and patience times):

1. ``test_erlang_row_production``: the production router, driven by
   :func:`run_virtual`, produces *exactly* the sample path of the textbook
   FCFS M/M/c(+M) recursion fed with the same random numbers (every call's
   arrival, wait and outcome, bit for bit), and its own figures agree with
   the vector within the tolerance or three standard errors of the run,
   whichever is wider (12,000 calls cannot pin a heavily loaded Erlang C
   queue's mean wait to 3 %).
2. ``test_erlang_row_tolerance``: the same sample path, continued (the
   recursion is ~50x faster than the router), until the 99.7 % interval of
   every figure fits inside the tolerance; then pwait, pab and sl must be
   within 0.01 and the mean wait within 3 % of the vector.  Erlang A rows
   need ~1-2 M calls and always run; Erlang C rows near saturation need up
   to ~35 M calls (minutes), so they run with ``ACD_SIM_LONG=1``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import heapq
import json
import math
import os
import random
import statistics
import textwrap
from pathlib import Path
from typing import Any

import pytest

from acd.loadsim.model import SimError, TraceCall
from acd.loadsim.plots import plot
from acd.loadsim.scenario import erlang_scenario, load_scenario, parse_scenario
from acd.loadsim.virtual import run_virtual

VECTORS = Path(__file__).resolve().parent / "data" / "erlang-vectors.csv"
SCENARIOS = Path(__file__).resolve().parents[1] / "sim" / "scenarios"
LONG = os.environ.get("ACD_SIM_LONG") == "1"

SEED = 20261123
PROD_CALLS = 12_000  # production-router run per row (exact path check + loose figures)
PROD_WARMUP = 2_000
REF_WARMUP = 20_000
REF_BLOCK = 100_000  # reference: batch-means blocks
REF_MIN_BLOCKS = 15
REF_MAX_CALLS = 60_000_000
TOL_P = 0.01  # pwait, pab, sl: absolute
TOL_W = 0.03  # mean wait: relative


def _rows() -> list[dict[str, str]]:
    if not VECTORS.is_file():
        return []
    with VECTORS.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


ROWS = _rows()
needs_vectors = pytest.mark.skipif(not ROWS, reason=f"Erlang vectors not found: {VECTORS}")
ROW_IDS = [f"{r['model']}-{r['calls_per_hour']}cph-{r['aht_s']}s-"
           f"{r['patience_s'] or 'inf'}p-{r['agents']}ag" for r in ROWS] or ["none"]
ROW_INDEXES = list(range(len(ROWS))) or [-1]


# ------------------------------------------------------------ the reference


def _reference_inputs(seed: int, row: dict[str, str]) -> tuple[Any, Any, Any, float, float, float]:
    """The random streams and rates exactly as run_virtual draws them (one
    stream per purpose, seeded "<seed>:<purpose>"; a patience is drawn per
    call when the scenario has one)."""
    ra, rh, rp = (random.Random(f"{seed}:{name}") for name in ("arrivals", "handle", "patience"))
    lam = float(row["calls_per_hour"]) / 3600.0
    hr = 1.0 / float(row["aht_s"])
    pr = 1.0 / float(row["patience_s"]) if row["patience_s"] else 0.0
    return ra.expovariate, rh.expovariate, rp.expovariate, lam, hr, pr


def reference_calls(seed: int, row: dict[str, str], n: int) -> list[tuple[float, float, str]]:
    """FCFS M/M/c(+M): (arrival, wait, outcome) per call.  A call takes the
    first agent to become free unless its patience runs out first."""
    ea, eh, ep, lam, hr, pr = _reference_inputs(seed, row)
    free = [0.0] * int(row["agents"])  # when each agent is next free (a heap)
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for _ in range(n):
        t = t + ea(lam)
        h = eh(hr)
        p = ep(pr) if pr else math.inf
        f = free[0]
        if f <= t:
            heapq.heapreplace(free, t + h)
            out.append((t, 0.0, "answered"))
        elif f - t > p:
            out.append((t, (t + p) - t, "abandoned"))
        else:
            heapq.heapreplace(free, f + h)
            out.append((t, f - t, "answered"))
    return out


def reference_figures(seed: int, row: dict[str, str], max_calls: int) -> dict[str, Any]:
    """The same recursion, in blocks of REF_BLOCK calls after REF_WARMUP,
    until 3 standard errors (batch means over blocks) of every figure fit
    inside the tolerance, or ``max_calls``."""
    ea, eh, ep, lam, hr, pr = _reference_inputs(seed, row)
    free = [0.0] * int(row["agents"])
    rep = heapq.heapreplace
    t_s = float(row["t_s"])
    w_csv = float(row["wait_mean_s"])
    inf = math.inf
    t = 0.0
    for _ in range(REF_WARMUP):
        t = t + ea(lam)
        h = eh(hr)
        p = ep(pr) if pr else inf
        f = free[0]
        if f <= t:
            rep(free, t + h)
        elif f - t <= p:
            rep(free, f + h)
    blocks: list[tuple[float, float, float, float]] = []
    while True:
        waited = abandoned = within = 0
        wsum = 0.0
        for _ in range(REF_BLOCK):
            t = t + ea(lam)
            h = eh(hr)
            p = ep(pr) if pr else inf
            f = free[0]
            if f <= t:
                rep(free, t + h)
                within += 1
            elif f - t > p:
                waited += 1
                abandoned += 1
                wsum += (t + p) - t
            else:
                w = f - t
                rep(free, f + h)
                waited += 1
                wsum += w
                if w <= t_s:
                    within += 1
        blocks.append((waited / REF_BLOCK, abandoned / REF_BLOCK, within / REF_BLOCK,
                       wsum / REF_BLOCK))
        if len(blocks) < REF_MIN_BLOCKS:
            continue
        means = [statistics.fmean(b[k] for b in blocks) for k in range(4)]
        ses = [statistics.stdev(b[k] for b in blocks) / math.sqrt(len(blocks))
               for k in range(4)]
        precise = max(ses[:3]) * 3 <= TOL_P and ses[3] * 3 <= TOL_W * w_csv
        if precise or len(blocks) * REF_BLOCK >= max_calls:
            return {"calls": len(blocks) * REF_BLOCK, "precise": precise,
                    "pwait": means[0], "pab": means[1], "sl": means[2], "wait": means[3],
                    "se": ses}


# ------------------------------------------------------------ runs (in parallel)


def _production_job(i: int) -> dict[str, Any]:
    row = ROWS[i]
    result = run_virtual(erlang_scenario(row, PROD_CALLS), SEED, warmup_calls=PROD_WARMUP)
    calls = sorted(result.calls, key=lambda c: int(c.call_id[1:]))
    ref = reference_calls(SEED, row, PROD_CALLS)
    mismatches = [(c.call_id, (c.arrival_s, c.wait_s, c.outcome), r)
                  for c, r in zip(calls, ref, strict=True)
                  if (c.arrival_s, c.wait_s, c.outcome) != r]
    counted = [c for c in calls if c.counted]
    t_s = float(row["t_s"])
    nb = 10
    size = len(counted) // nb
    batches = []
    for b in range(nb):
        part = counted[b * size:(b + 1) * size]
        batches.append((
            sum(c.waited for c in part) / size,
            sum(c.outcome == "abandoned" for c in part) / size,
            sum(c.outcome == "answered" and (c.wait_s or 0.0) <= t_s for c in part) / size,
            sum(c.wait_s or 0.0 for c in part) / size))
    ses = [statistics.stdev(b[k] for b in batches) / math.sqrt(nb) for k in range(4)]
    tot = result.totals()
    return {"calls": len(calls), "mismatches": mismatches[:3], "n_mismatches": len(mismatches),
            "pwait": tot.pwait, "pab": tot.abandon_rate, "sl": tot.service_level,
            "wait": tot.mean_wait_s, "se": ses, "counted": tot.offered}


def _reference_job(i: int) -> dict[str, Any]:
    return reference_figures(SEED, ROWS[i], REF_MAX_CALLS)


def _in_parallel(job: Any, indexes: list[int]) -> dict[int, dict[str, Any]]:
    workers = min(len(indexes), os.cpu_count() or 1, 4)
    if workers > 1:
        try:
            with concurrent.futures.ProcessPoolExecutor(workers) as pool:
                return dict(zip(indexes, pool.map(job, indexes), strict=True))
        except (OSError, concurrent.futures.process.BrokenProcessPool):
            pass  # no processes here: one after the other
    return {i: job(i) for i in indexes}


@pytest.fixture(scope="module")
def production() -> dict[int, dict[str, Any]]:
    return _in_parallel(_production_job, list(range(len(ROWS))))


@pytest.fixture(scope="module")
def reference() -> dict[int, dict[str, Any]]:
    chosen = [i for i, r in enumerate(ROWS) if r["model"] == "A" or LONG]
    return _in_parallel(_reference_job, chosen)


def _deviations(got: dict[str, Any], row: dict[str, str]) -> dict[str, float]:
    return {"pwait": got["pwait"] - float(row["pwait"]), "pab": got["pab"] - float(row["pab"]),
            "sl": got["sl"] - float(row["sl"]),
            "wait": got["wait"] / float(row["wait_mean_s"]) - 1.0}


@needs_vectors
@pytest.mark.parametrize("i", ROW_INDEXES, ids=ROW_IDS)
def test_erlang_row_production(i: int, production: dict[int, dict[str, Any]]) -> None:
    row, got = ROWS[i], production[i]
    assert got["calls"] == PROD_CALLS
    assert got["n_mismatches"] == 0, f"router and FCFS recursion differ: {got['mismatches']}"
    dev = _deviations(got, row)
    se = got["se"]
    w_csv = float(row["wait_mean_s"])
    assert abs(dev["pwait"]) <= max(TOL_P, 3 * se[0]), (dev, se)
    assert abs(dev["pab"]) <= max(TOL_P, 3 * se[1]), (dev, se)
    assert abs(dev["sl"]) <= max(TOL_P, 3 * se[2]), (dev, se)
    assert abs(dev["wait"]) <= max(TOL_W, 3 * se[3] / w_csv), (dev, se)


@pytest.mark.slow  # the reference runs until precise: about 6 s
@needs_vectors
@pytest.mark.parametrize("i", ROW_INDEXES, ids=ROW_IDS)
def test_erlang_row_tolerance(i: int, reference: dict[int, dict[str, Any]]) -> None:
    row = ROWS[i]
    if i not in reference:
        pytest.skip("Erlang C near saturation needs up to ~35 M calls: set ACD_SIM_LONG=1")
    got = reference[i]
    assert got["precise"], f"not precise enough after {got['calls']} calls: {got['se']}"
    dev = _deviations(got, row)
    assert abs(dev["pwait"]) <= TOL_P, dev
    assert abs(dev["pab"]) <= TOL_P, dev
    assert abs(dev["sl"]) <= TOL_P, dev
    assert abs(dev["wait"]) <= TOL_W, dev


# ------------------------------------------------------------ trace replay

#: sim/scenarios/trace_small.csv by hand (2 agents, FIFO, wrap-up 10 s; a1
#: logs in first, so it is the longer idle):
#:  c1  0 s  -> a1 at once, talks 100 -> a1 free at 110 (wrap-up)
#:  c2 10 s  -> a2 at once, talks 50  -> a2 free at 70
#:  c3 20 s  waits; a2 free at 70 -> wait 50, talks 35 -> a2 free at 115
#:  c4 30 s  patience 20: hangs up at 50 -> abandoned after 20
#:  c5 40 s  (VIP) waits; a1 free at 110 -> wait 70, talks 20 -> a1 free at 140
#:  c6 60 s  patience 44: hangs up at 104, before anyone is free -> abandoned after 44
#:  c7 120 s -> a2 (free since 115) at once, talks 15 -> a2 free at 145
#:  c8 125 s (the number of c1 again) waits; a1 free at 140 -> wait 15 (patience 30)
TRACE_EXPECTED = [
    # call, arrival, wait, outcome, agent, class
    ("c1", 0.0, 0.0, "answered", "a1", "standard"),
    ("c2", 10.0, 0.0, "answered", "a2", "standard"),
    ("c3", 20.0, 50.0, "answered", "a2", "standard"),
    ("c4", 30.0, 20.0, "abandoned", None, "standard"),
    ("c5", 40.0, 70.0, "answered", "a1", "vip"),
    ("c6", 60.0, 44.0, "abandoned", None, "standard"),
    ("c7", 120.0, 0.0, "answered", "a2", "standard"),
    ("c8", 125.0, 15.0, "answered", "a1", "standard"),
]


def test_trace_replay_is_exact() -> None:
    result = run_virtual(load_scenario(SCENARIOS / "trace_small.yaml"), seed=123)
    got = sorted(((c.call_id, c.arrival_s, c.wait_s, c.outcome, c.agent_id, c.customer_class)
                  for c in result.calls), key=lambda x: x[1])
    assert got == TRACE_EXPECTED
    by_id = {c.call_id: c for c in result.calls}
    assert by_id["c8"].number == by_id["c1"].number == "13800000001"
    assert by_id["c5"].ended_at == 130.0 and by_id["c8"].ended_at == 200.0
    assert [by_id[c].waited for c in ("c1", "c2", "c3", "c7")] == [False, False, True, False]
    tot = result.totals()
    assert (tot.offered, tot.answered, tot.abandoned) == (8, 6, 2)
    assert tot.answered_within_sl == 4  # waits 0, 0, 0, 15 (threshold 20)
    assert tot.pwait == pytest.approx(5 / 8)
    assert tot.mean_wait_s == pytest.approx((50 + 20 + 70 + 44 + 15) / 8)
    # another seed changes nothing: a trace has no randomness
    again = run_virtual(load_scenario(SCENARIOS / "trace_small.yaml"), seed=7)
    assert again.calls == result.calls


# ------------------------------------------------------------ behaviour

SMALL = """\
name: small
start: "08:00"
interval_minutes: 15
arrivals:
  per_interval: [40, 0, 80]
callers:
  pool: 30
  vip: {share: 0.2}
  dialects: {mandarin: 0.5, cantonese: 0.5}
queues:
  billing: {share: 0.5}
  tech: {share: 0.5, sl_seconds: 30}
handle: {dist: lognormal, mean: 60, sd: 30}
patience: {dist: exponential, mean: 90}
wrap_up_s: 5
ring_no_answer: 0.1
ring_delay_s: 2
agents:
  - {id: b, count: 2, skills: {billing: 5}}
  - {id: t, count: 2, skills: {tech: 5, billing: 3}}
"""


def test_same_seed_same_result_other_seed_other_result() -> None:
    sc = parse_scenario(SMALL)
    a, b, c = run_virtual(sc, 1), run_virtual(sc, 1), run_virtual(sc, 2)
    assert a.calls == b.calls and a.waiting == b.waiting
    assert a.summary_rows() == b.summary_rows()
    doc_a, doc_b = json.loads(a.to_json()), json.loads(b.to_json())
    doc_a.pop("wall_s")
    doc_b.pop("wall_s")
    assert doc_a == doc_b
    assert a.calls != c.calls
    assert a.summary_rows() != c.summary_rows()


def test_per_interval_buckets_and_series() -> None:
    result = run_virtual(parse_scenario(SMALL), 5)
    rows = result.interval_rows()
    assert [r["label"] for r in rows] == ["08:00", "08:15", "08:30"]
    assert rows[1]["offered"] == 0 and rows[1]["service_level"] is None
    assert rows[0]["offered"] > 0 and rows[2]["offered"] > rows[0]["offered"]
    total = result.totals()
    assert sum(r["offered"] for r in rows) == total.offered == len(result.calls)
    for q in ("billing", "tech"):
        q_rows = result.interval_rows("queue", q)
        assert len(q_rows) == 3
        assert sum(r["offered"] for r in q_rows) == result.totals("queue", q).offered
    assert result.totals("queue", "tech").t_s == 30 and result.totals("queue", "billing").t_s == 20
    classes = {r["key"] for r in result.summary_rows() if r["scope"] == "class"}
    assert classes == {"standard", "vip"}
    # calls arrive in their interval
    for c in result.calls:
        assert not 900 <= c.arrival_s < 1800
    # waiting calls, sampled every minute from 08:00, per queue
    assert len(result.waiting) >= 45 and all(len(s) == 2 for s in result.waiting)
    assert max(sum(s) for s in result.waiting) > 0
    # the repeat callers keep their profile
    classes_by_number: dict[str, set[str]] = {}
    for c in result.calls:
        classes_by_number.setdefault(c.number, set()).add(c.customer_class)
    assert len(classes_by_number) <= 30 and all(len(v) == 1 for v in classes_by_number.values())


def test_shift_end_logs_the_agent_out_after_its_call(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text(textwrap.dedent("""\
        arrival,number,queue,handle,patience
        0,1,q,700,
        5,2,q,1000,
        650,3,q,10,
        """), encoding="utf-8")
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        start: "08:00"
        trace: calls.csv
        queues: {q: {}}
        agents:
          - {id: a1, skills: {q: 5}, shift: "08:00-08:10"}
          - {id: a2, skills: {q: 5}}
        """), encoding="utf-8")
    result = run_virtual(load_scenario(tmp_path / "s.yaml"))
    by_id = {c.call_id: c for c in result.calls}
    assert by_id["c1"].agent_id == "a1" and by_id["c1"].outcome == "answered"  # finishes
    assert by_id["c2"].agent_id == "a2"
    # a1's shift ended at 600 during c1: logged out at 700, so c3 waits for a2
    assert by_id["c3"].agent_id == "a2" and by_id["c3"].wait_s == 1005 - 650


def test_agents_log_in_and_out_with_their_shifts() -> None:
    text = SMALL.replace("""agents:
  - {id: b, count: 2, skills: {billing: 5}}
  - {id: t, count: 2, skills: {tech: 5, billing: 3}}
""", """agents:
  - {id: early, count: 2, skills: {billing: 5, tech: 5}, shift: "08:00-08:20"}
  - {id: late, count: 2, skills: {billing: 5, tech: 5}, shift: "08:20-09:00"}
""")
    result = run_virtual(parse_scenario(text), 3)
    for c in result.calls:
        if c.agent_id and c.answered_at is not None:
            if c.agent_id.startswith("early"):
                assert c.answered_at <= 1200 + 2  # offered before 08:20 (2 s ring)
            else:
                assert c.answered_at >= 1200
    assert {c.agent_id for c in result.calls if c.agent_id} >= {"early1", "late1"}
    late = result.interval_rows()[2]
    assert late["occupancy"] is not None


def test_ring_no_answer_always_produces_reoffers() -> None:
    text = SMALL.replace("ring_no_answer: 0.1", "ring_no_answer: 1.0") \
        + "rona_pause_s: 5\n"
    result = run_virtual(parse_scenario(text), 4)
    assert all(c.outcome == "abandoned" for c in result.calls)
    assert max(c.offers for c in result.calls) >= 2
    assert result.totals().answered == 0 and result.totals().service_level == 0


def test_caller_hanging_up_while_the_agent_rings(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text(
        "arrival,queue,handle,patience\n0,q,30,2\n1,q,30,\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "trace: calls.csv\nqueues: {q: {}}\nring_delay_s: 5\nagents: {counts: {q: 1}}\n",
        encoding="utf-8")
    result = run_virtual(load_scenario(tmp_path / "s.yaml"))
    by_id = {c.call_id: c for c in result.calls}
    # c1 is offered at 0 and hangs up at 2 while the phone rings: its answer
    # (due at 5) is dropped; the agent is offered c2 at 2, answered at 7
    assert (by_id["c1"].outcome, by_id["c1"].offers, by_id["c1"].wait_s) == ("abandoned", 1, 2)
    assert by_id["c2"].outcome == "answered" and by_id["c2"].answered_at == 7
    assert by_id["c2"].wait_s == 6 and by_id["c2"].waited  # not offered on arrival


ROUTING = """\
classes:
  vip: {sl_target: 0.9, sl_seconds: 10}
  standard: {sl_target: 0.8, sl_seconds: 20}
class_rules: [{when: {vip_level: {min: 1}}, class: vip}]
routes: [{when: {vip_level: {min: 1}}, queue: support, priority: 10}]
aging: {seconds_per_level: 6}
queues:
  support: {skill: support}
"""


def test_vip_priority_is_served_first_under_the_routing_policy(tmp_path: Path) -> None:
    (tmp_path / "routing.yaml").write_text(ROUTING, encoding="utf-8")
    (tmp_path / "calls.csv").write_text(textwrap.dedent("""\
        arrival,number,queue,attributes,handle,patience
        0,1,support,,100,
        10,2,support,,50,
        20,3,support,vip=1,40,
        30,4,support,,10,
        """), encoding="utf-8")
    scenario = textwrap.dedent("""\
        trace: calls.csv
        agents: {counts: {support: 1}}
        """)
    (tmp_path / "fifo.yaml").write_text(scenario + "queues: {support: {}}\n", encoding="utf-8")
    (tmp_path / "vip.yaml").write_text(scenario + "routing: routing.yaml\n", encoding="utf-8")

    def served(path: Path) -> list[tuple[str, float | None, str]]:
        result = run_virtual(load_scenario(path))
        return [(c.call_id, c.answered_at, c.customer_class)
                for c in sorted(result.calls, key=lambda c: c.answered_at or 0)]

    # FIFO: in order of arrival (VIP only a class for the figures)
    assert served(tmp_path / "fifo.yaml") == [
        ("c1", 0, "standard"), ("c2", 100, "standard"), ("c3", 150, "vip"),
        ("c4", 190, "standard")]
    # priority 10 x 6 s = 60 s head start: the VIP (queued at 20) goes before c2 (10)
    vip = served(tmp_path / "vip.yaml")
    assert vip == [("c1", 0, "standard"), ("c3", 100, "vip"), ("c2", 140, "standard"),
                   ("c4", 190, "standard")]
    result = run_virtual(load_scenario(tmp_path / "vip.yaml"))
    assert result.totals("class", "vip").t_s == 10  # the class's threshold


def test_ivr_day_scenario_json_and_plot(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None, float]] = []
    result = run_virtual(load_scenario(SCENARIOS / "monday.yaml"), seed=1,
                         progress=lambda n, total, t: seen.append((n, total, t)))
    outcomes = {c.outcome for c in result.calls}
    assert {"answered", "abandoned", "ivr"} <= outcomes  # key 3: self-service
    assert set(result.classes) == {"standard", "vip"}
    assert len(result.interval_rows()) == 56
    assert seen and seen[-1][0] == result.arrivals and seen[-1][1] == 3699
    total = result.totals()
    assert 0.5 < (total.service_level or 0) <= 1 and 0 < (total.occupancy or 0) < 1
    assert result.arrivals > 3000 and total.offered + result.ivr_only() == result.arrivals
    doc = json.loads(result.to_json())
    assert doc["scenario"] == "monday" and doc["start"] == "08:00" and doc["ivr_only"] > 200
    assert len(doc["calls"]) == len(result.calls)
    assert doc["waiting"]["queues"] == ["billing", "tech", "general"]
    assert "calls" not in json.loads(result.to_json(calls=False))
    pytest.importorskip("matplotlib")
    out = plot(result, tmp_path / "monday.png")
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_queue_unknown_to_the_policy_is_a_clear_error() -> None:
    sc = load_scenario(SCENARIOS / "trace_small.yaml")
    with pytest.raises(SimError, match="queue 'sales' is not a queue of the routing policy"):
        run_virtual(sc, trace=[TraceCall(0.0, "1", "sales", (), 5.0)])


def test_calls_limit_and_warmup() -> None:
    sc = parse_scenario(textwrap.dedent("""\
        arrivals: {calls_per_hour: 200}
        calls: 100000
        queues: {q: {share: 1}}
        patience: {dist: exponential, mean: 360}
        agents: {counts: {q: 11}}
        """))
    result = run_virtual(sc, 3, calls=3000, warmup_calls=1000)
    assert result.arrivals == 3000 and len(result.calls) == 3000
    assert sum(c.counted for c in result.calls) == 2000 == result.totals().offered
    # each call: started, queued, then answered + ended, or hung up (no wrap-up
    # here: no timer); nothing else fed to the core
    n_answered = sum(c.outcome == "answered" for c in result.calls)
    assert result.calls_per_second() > 0
    assert result.core_events == 3 * 3000 + n_answered + 11  # + 11 logins
    # the scenario's own warm-up (time) and calls limit
    sc_day = load_scenario(SCENARIOS / "erlang_a.yaml")
    assert sc_day.warmup_s == 36000 and sc_day.calls == 200_000
    day = run_virtual(sc_day, 3, calls=4000)
    assert all(c.counted == (c.arrival_s >= 36000) for c in day.calls)
    assert day.totals().offered == sum(c.counted for c in day.calls) > 0


def test_a_call_nobody_can_take_is_unfinished(tmp_path: Path) -> None:
    (tmp_path / "calls.csv").write_text(
        "arrival,queue,handle\n0,q,50\n55,q,50\n120,q,10\n300,q,10\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        start: "08:00"
        trace: calls.csv
        queues: {q: {}}
        agents: [{id: a, skills: {q: 5}, shift: "08:00-08:01"}]
        """), encoding="utf-8")
    result = run_virtual(load_scenario(tmp_path / "s.yaml"))
    by_id = {c.call_id: c for c in result.calls}
    assert (by_id["c1"].outcome, by_id["c1"].agent_id) == ("answered", "a")
    assert by_id["c2"].answered_at == 55  # before the shift ends at 60; out at 105
    # nobody is left: c3 and c4 wait until the simulation runs out of events
    assert [(by_id[c].outcome, by_id[c].wait_s) for c in ("c3", "c4")] == [
        ("unfinished", 180.0), ("unfinished", 0.0)]
    total = result.totals()
    assert (total.offered, total.answered, total.other) == (4, 2, 2)
