"""``GET /metrics``: an engine on the PBX simulator, calls of every outcome,
a scrape over HTTP with a real token, parsed with Prometheus' text parser;
every figure equals the engine's own.  And the Grafana dashboard in docs/
queries only metrics a scrape has."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from helpers import SECRET, db_url, engine_on_pbx
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from acd.adapters.ami import AmiConfig
from acd.api.config import ApiConfig, Role
from acd.api.metrics import LATENCY_BUCKETS
from acd.core.model import Action, AgentPause, AgentState, CoreConfig, Event
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.loaders.routing import parse_policy
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig, SmsConfig
from acd.runtime.sms_sender import SenderConfig
from acd.sms.policy import parse_sms_policy
from sim.config import CallerScript, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
DASHBOARD = ROOT / "docs" / "grafana" / "acd-dashboard.json"
# billing: nobody has its skill, a caller is sent to the fallback after 1 s;
# general: nobody either, callers wait (and abandon); tech: two agents
POLICY = parse_policy("""
classes: {standard: {sl_seconds: 20, sl_target: 0.8}}
queues:
  billing: {skill: billing, max_wait: {after: 1, fallback: callback}}
  tech: {skill: tech}
  general: {skill: general}
""")
SMS = parse_sms_policy("""
link: "https://m.example.cn/s/{token}"
templates: {sorry: {zh: "抱歉让您久等：{link}"}}
rules: [{name: abandoned, when: {outcome: abandoned}, template: sorry}]
""", "sms.yaml")

Families = dict[str, list[Sample]]


@asynccontextmanager
async def metered(tmp_path: Path, observer: Callable[[Event, Sequence[Action], int], None]
                  ) -> AsyncIterator[tuple[SimPBX, Engine, str]]:
    """Agents a1001, a1002 (tech) on answering phones; the control API on a
    free port; SMS on (log transport).  Yields (pbx, engine, API url)."""
    agents = tuple(AgentProfile(f"a{ext}", ext, skills={"tech": 5}) for ext in ("1001", "1002"))
    cfg = EngineConfig(
        core=CoreConfig(policy=POLICY, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), login_agents=True,
        sms=SmsConfig(SMS, "log", sender=SenderConfig(poll_s=0.05)),
        api=ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens"))
    phones = {ext: PhoneBehaviour(answer_after_s=0.05, talk_s=0.2) for ext in ("1001", "1002")}
    async with engine_on_pbx(cfg, phones=phones, observer=observer) as (pbx, engine):
        yield pbx, engine, f"http://127.0.0.1:{engine.api.port}"


def token(engine: Engine, role: Role = Role.READ) -> dict[str, str]:
    tokens = engine.api.tokens
    assert tokens is not None
    return {"Authorization": f"Bearer {tokens.by_role[role]}"}


async def scrape(url: str, headers: dict[str, str]) -> tuple[str, Families]:
    """The body of GET /metrics, and its samples by family (Prometheus' parser)."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics",
                                                         headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        body = await resp.text()
    families: Families = {}
    for fam in text_string_to_metric_families(body):
        assert fam.name not in families, f"family {fam.name} twice"
        families[fam.name] = list(fam.samples)
    return body, families


def value(families: Families, sample: str, **labels: str) -> float:
    """The one sample ``sample`` with exactly these labels."""
    family = re.sub(r"_(total|bucket|count|sum|created)$", "", sample)
    found = [s.value for name in {family, sample} for s in families.get(name, [])
             if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


async def until(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_scrape_shows_the_engines_own_figures(tmp_path: Path) -> None:
    decisions = [0]

    def count(event: Event, actions: Sequence[Action], started_ns: int) -> None:
        decisions[0] += 1  # the observer sees every decision the listeners see

    async with metered(tmp_path, count) as (pbx, engine, url):
        async with aiohttp.ClientSession() as http:
            # no token, a wrong one: 401, nothing shown
            for headers in ({}, {"Authorization": "Bearer not-a-token-of-ours-at-all"}):
                async with http.get(f"{url}/metrics", headers=headers) as resp:
                    assert resp.status == 401
                    assert "acd_" not in await resp.text()
        # the start-up's decisions came before the listener: count from here
        start0 = decisions[0]
        _, first = await scrape(url, token(engine))
        end0 = decisions[0]
        count0 = value(first, "acd_decision_latency_seconds_count")
        scripts = (
            [CallerScript(number=f"1390000000{i}", keys=["", "2"], patience_s=30,
                          key_delay_s=0.02) for i in range(3)]           # answered (tech)
            + [CallerScript(number=f"1370000000{i}", keys=["", "0"], patience_s=0.3,
                            key_delay_s=0.02) for i in range(2)]         # abandoned (general)
            + [CallerScript(number=f"1360000000{i}", keys=["", "3"], patience_s=30,
                            key_delay_s=0.02) for i in range(2)]         # ivr (self-service)
            + [CallerScript(number="13500000000", keys=["", "1"], patience_s=30,
                            key_delay_s=0.02)])                          # fallback (billing)
        handles = [await pbx.place_call(s) for s in scripts]
        results = [await asyncio.wait_for(h.done, 20) for h in handles]
        assert sorted(r.outcome.value for r in results) == sorted(
            [Outcome.TALKED.value] * 3 + [Outcome.ABANDONED_HOLD.value] * 2
            + [Outcome.ENGINE_HANGUP.value] * 3)
        # one caller left waiting in general, one agent paused, the other ready
        waiting = await pbx.place_call(CallerScript(number="13400000000", keys=["", "0"],
                                                    patience_s=120, key_delay_s=0.02))
        await until(lambda: len(engine.core.waiting("general")) == 1, "the waiting call")
        await until(lambda: all(a.state is AgentState.READY for a in engine.core.agents()),
                    "the agents' wrap-up")
        engine.handle(AgentPause("a1002", "lunch"))
        await until(lambda: engine.sms is not None and engine.sms.stats.sent == 2, "the SMS")
        await engine.writer.drain()
        await asyncio.sleep(0.1)  # the waiting caller's wait grows
        before = decisions[0]
        body, fams = await scrape(url, token(engine))
        after = decisions[0]
        now = engine.clock()
        st, counters = engine.statistics, engine.counters
        records = engine.record_counts()
        agi_active = engine.agi.active
        assert engine.sms is not None
        sms = engine.sms.stats
        waited = now - (engine.core.call(waiting.uniqueid).queued_at or now)  # type: ignore[union-attr]
        # the engine owns the pruning task (engine.prune_statistics, once a day)
        assert "statistics-prune" in {t.get_name() for t in engine._tasks}
        # the statistics pruned: counters
        # never go down, "today" is what is left of today (here: nothing)
        st.prune(now + 2 * 86400)
        _, pruned = await scrape(url, token(engine))
        assert st.totals().offered == 0
        for outcome, n in (("answered", 3), ("abandoned", 2), ("fallback", 1), ("ivr", 2)):
            assert value(pruned, "acd_calls_total", outcome=outcome) == n
        assert value(pruned, "acd_queue_calls_total", queue="tech", outcome="answered") == 3
        assert "acd_queue_offered_today" not in pruned \
            or not any(s.labels.get("queue") for s in pruned["acd_queue_offered_today"])

    # calls by outcome: the statistics' figures, and the calls of the simulator
    ended = st.ended_totals()  # queue -> answered, abandoned, other (never pruned)
    assert (sum(t[0] for t in ended.values()), sum(t[1] for t in ended.values()),
            sum(t[2] for t in ended.values()), st.ivr_ended_total()) == (3, 2, 1, 2)
    assert value(fams, "acd_calls_total", outcome="answered") == 3
    assert value(fams, "acd_calls_total", outcome="abandoned") == 2
    assert value(fams, "acd_calls_total", outcome="fallback") == 1
    assert value(fams, "acd_calls_total", outcome="ivr") == 2
    assert value(fams, "acd_queue_calls_total", queue="tech", outcome="answered") == 3
    assert value(fams, "acd_queue_calls_total", queue="general", outcome="abandoned") == 2
    assert value(fams, "acd_queue_calls_total", queue="billing", outcome="fallback") == 1
    assert value(fams, "acd_queue_calls_total", queue="tech", outcome="abandoned") == 0
    assert value(fams, "acd_calls_finished_total") == counters.calls_finished == 8
    assert value(fams, "acd_calls_started_total") == counters.calls_started == 9
    assert value(fams, "acd_calls_active") == 1
    assert value(fams, "acd_engine_errors_total") == counters.errors
    # waiting calls and the longest wait, per queue
    assert value(fams, "acd_queue_waiting_calls", queue="general") == 1
    assert value(fams, "acd_queue_waiting_calls", queue="tech") == 0
    longest = value(fams, "acd_queue_longest_wait_seconds", queue="general")
    assert 0.1 <= longest <= waited
    assert value(fams, "acd_queue_longest_wait_seconds", queue="billing") == 0
    # agents by state: every state, 0 included
    assert {s.labels["state"]: s.value for s in fams["acd_agents"]} == {
        "logged_out": 0, "ready": 1, "reserved": 0, "on_call": 0, "wrap_up": 0, "paused": 1}
    # service level today: 3 answered of 3 offered in tech (no wait), 0 of 2 in general
    assert value(fams, "acd_service_level_today_ratio", queue="tech", **{"class": "standard"}) \
        == 1.0
    assert value(fams, "acd_service_level_today_ratio", queue="general",
                 **{"class": "standard"}) == 0.0
    assert value(fams, "acd_queue_offered_today", queue="general", **{"class": "standard"}) == 2
    assert value(fams, "acd_service_level_target_ratio", **{"class": "standard"}) == 0.8
    assert value(fams, "acd_service_level_threshold_seconds", **{"class": "standard"}) == 20
    # links, FastAGI, records, SMS
    assert value(fams, "acd_ami_up", server="pbx1") == 1
    assert value(fams, "acd_ami_reconnects_total", server="pbx1") == 0
    assert value(fams, "acd_fastagi_sessions_active") == agi_active >= 1
    assert value(fams, "acd_fastagi_rejected_total") == 0
    assert value(fams, "acd_records_written_total") == records["written"] >= 8
    assert value(fams, "acd_records_pending") == records["pending"]
    assert value(fams, "acd_records_spooled") == records["spooled"] == 0
    assert value(fams, "acd_records_dead_lettered_total") == records["dead_lettered"] == 0
    assert value(fams, "acd_records_failed_total") == records["lost"] == 0
    assert value(fams, "acd_sms_sent_total") == sms.sent == 2
    assert value(fams, "acd_sms_failed_total") == sms.failed == 0
    # the decision latency: one observation per decision, in the buckets asked
    count = value(fams, "acd_decision_latency_seconds_count")
    assert before - end0 <= count - count0 <= after - start0
    assert count - count0 > 20
    buckets = [s for s in fams["acd_decision_latency_seconds"] if s.name.endswith("_bucket")]
    assert [float(s.labels["le"]) for s in buckets] == [*LATENCY_BUCKETS, float("inf")]
    assert buckets[-1].value == count
    assert 0 < value(fams, "acd_decision_latency_seconds_sum") < count * 0.05
    # Prometheus conventions: every family documented, counters end in _total
    assert body.count("# HELP acd_") == body.count("# TYPE acd_") == len(fams)
    for line in body.splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line
    assert {s.name for samples in fams.values() for s in samples
            if s.name.startswith("acd_calls")} == {
        "acd_calls_total", "acd_calls_started_total", "acd_calls_finished_total",
        "acd_calls_active"}
    # the listener leaves with the API
    assert engine.api.metrics.on_decision not in engine.listeners


async def test_two_engines_in_one_process_keep_their_own_registries(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    def nothing(event: Event, actions: Sequence[Action], started_ns: int) -> None:
        pass

    async with metered(tmp_path / "a", nothing) as (pbx_a, a, url_a), \
            metered(tmp_path / "b", nothing) as (_, b, url_b):
        h = await pbx_a.place_call(CallerScript(keys=["", "3"], key_delay_s=0.02))
        await asyncio.wait_for(h.done, 10)
        await until(lambda: a.counters.calls_finished == 1, "the call's record")
        _, fa = await scrape(url_a, token(a))
        _, fb = await scrape(url_b, token(b, Role.ADMIN))  # a higher role may read too
    assert value(fa, "acd_calls_total", outcome="ivr") == 1
    assert value(fb, "acd_calls_total", outcome="ivr") == 0
    assert value(fa, "acd_decision_latency_seconds_count") \
        > value(fb, "acd_decision_latency_seconds_count")


def promql_metrics(dashboard: dict[str, Any]) -> set[str]:
    """The acd_* series every panel's queries (and the variables) name."""
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("expr", "query") and isinstance(item, str):
                    exprs.append(item)
                elif key == "definition" and isinstance(item, str):
                    exprs.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return {m for e in exprs for m in re.findall(r"\bacd_[a-z0-9_]+", e)}


async def test_the_dashboard_queries_only_metrics_a_scrape_has(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] >= 39
    assert any(v.get("type") == "datasource" and v.get("query") == "prometheus"
               for v in dashboard["templating"]["list"])
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t.get("expr") for t in p["targets"]), p["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used = promql_metrics(dashboard)

    def nothing(event: Event, actions: Sequence[Action], started_ns: int) -> None:
        pass

    async with metered(tmp_path, nothing) as (pbx, engine, url):
        # one answered call: the per-class series exist
        h = await pbx.place_call(CallerScript(keys=["", "2"], key_delay_s=0.02))
        await asyncio.wait_for(h.done, 10)
        await until(lambda: engine.counters.calls_finished == 1, "the call's record")
        _, fams = await scrape(url, token(engine))
    series = {s.name for samples in fams.values() for s in samples} | set(fams)
    assert used - series == set(), "the dashboard queries metrics /metrics does not have"
    # and every metric of the scrape is on the dashboard
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", m) for m in used}
    assert set(fams) - shown - {"acd_decision_latency_seconds_created"} == set()
    quantiles = [t["expr"] for p in panels for t in p["targets"]
                 if "histogram_quantile" in t["expr"]]
    assert any("0.5," in q for q in quantiles) and any("0.99," in q for q in quantiles)


def test_the_engine_prunes_its_statistics_to_keep_days_and_the_counters_stay(
        tmp_path: Path) -> None:
    import datetime as dt

    from acd.api.metrics import Metrics
    from acd.core.model import CallRecord, WriteCallRecord
    from acd.core.model import Outcome as CallOutcome
    from acd.runtime.settings import StatsConfig

    now = [dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC).timestamp()]
    cfg = EngineConfig(core=CoreConfig(policy=POLICY, agents=()), flow=FLOW,
                       database_url=db_url(tmp_path),
                       statistics=StatsConfig(tz="UTC", keep_days=3),
                       api=ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens"))
    engine = Engine(cfg, clock=lambda: now[0])
    st = engine.statistics
    for day in range(10):  # one answered call a day at 09:00, the last one today
        t = now[0] - (9 - day) * 86400 - 3600
        st.on_action(WriteCallRecord(CallRecord(
            call_id=f"c{day}", caller="1", caller_name="", started_at=t - 5, ended_at=t + 60,
            outcome=CallOutcome.ANSWERED, ivr_path=(), queue="tech", queued_at=t, wait_s=5,
            agent_id=None, answered_at=t + 5, talk_s=55, offers=1, server="pbx1",
            customer_class="standard")), t)
    metrics = Metrics(engine)
    engine.prune_statistics()
    midnight = dt.datetime(2026, 11, 23, tzinfo=dt.UTC).timestamp()
    # today and the 2 days before it are kept
    assert [r.start for r in st.intervals()] == [
        midnight - 2 * 86400 + 9 * 3600, midnight - 86400 + 9 * 3600, midnight + 9 * 3600]
    engine.prune_statistics()  # the same day again: nothing more goes
    assert len(st.intervals()) == 3
    fams = {f.name: list(f.samples)
            for f in text_string_to_metric_families(metrics.render().decode())}
    assert value(fams, "acd_calls_total", outcome="answered") == 10
    assert value(fams, "acd_queue_calls_total", queue="tech", outcome="answered") == 10
    assert value(fams, "acd_queue_offered_today", queue="tech", **{"class": "standard"}) == 1
    now[0] += 86400  # a day later
    engine.prune_statistics()
    assert len(st.intervals()) == 2
    fams = {f.name: list(f.samples)
            for f in text_string_to_metric_families(metrics.render().decode())}
    assert value(fams, "acd_calls_total", outcome="answered") == 10  # never goes down
    # today (Nov 24) has no calls yet
    assert not any(s.labels.get("queue") == "tech" for s in fams.get("acd_queue_offered_today", []))
