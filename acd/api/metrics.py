"""Prometheus metrics of one engine, served at ``GET /metrics`` (read role).

Every figure is read from the engine at scrape time (:class:`EngineCollector`):
its statistics, its core's read side, its counters and the health of its
links; nothing is counted twice.  The one exception is the decision latency,
which only exists while a decision is made: :meth:`Metrics.on_decision` is a
decision listener (the engine's ``listeners``) that observes
``time.monotonic_ns() - started_ns`` into a histogram.

Each engine has a registry of its own (:attr:`Metrics.registry`), never
prometheus_client's process-wide default one: several engines in one
process (the tests) each show their own figures.  Names follow Prometheus'
conventions: ``acd_`` prefix, ``_total`` for counters, seconds and ratios
(0..1).  Every metric, its labels and meaning: docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd.api.protocol import ControlledEngine
from acd.core.model import Action, AgentState, Event

__all__ = ["LATENCY_BUCKETS", "EngineCollector", "Metrics"]

#: decision latency buckets (seconds): 10 µs .. 50 ms
LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                   0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)

#: the outcome label of the statistics' "other" (a queued call that ended
#: neither answered nor abandoned: sent to a fallback)
_OTHER = "fallback"


class EngineCollector(Collector):
    """Reads the engine's figures at each scrape."""

    def __init__(self, engine: ControlledEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        now = self.engine.clock()
        stats = self.engine.statistics
        # the counters: the statistics' totals since they began, never pruned
        # (a counter never goes down); short abandons among the abandoned
        ended = stats.ended_totals()  # queue -> answered, abandoned, other
        # today: one pass over the rows since local midnight only (O(today))
        midnight = stats.day_start(now)  # in statistics.tz, as /queues
        # (queue, class) -> offered, within, offered less short abandons
        today: dict[tuple[str, str], list[int]] = {}
        for row in stats.intervals(since=midnight):
            if row.queue is None or row.customer_class is None:
                continue
            d = today.setdefault((row.queue, row.customer_class), [0, 0, 0])
            d[0] += row.offered
            d[1] += row.answered_within_sl
            d[2] += row.sl_offered
        yield from self._calls(ended)
        yield from self._queues(now, today)
        yield from self._agents()
        yield from self._links()
        yield from self._records()
        yield from self._sms()

    # ----------------------------------------------------------------- calls

    def _calls(self, ended: dict[str, tuple[int, int, int]]) -> Iterator[Metric]:
        e = self.engine
        outcomes = ("answered", "abandoned", _OTHER)
        by_outcome = CounterMetricFamily(
            "acd_calls", "Calls ended, by outcome (answered, abandoned, fallback: queued "
            "calls; ivr: ended before any queue)", labels=["outcome"])
        for i, outcome in enumerate(outcomes):
            by_outcome.add_metric([outcome], sum(t[i] for t in ended.values()))
        by_outcome.add_metric(["ivr"], e.statistics.ivr_ended_total())
        yield by_outcome
        per_queue = CounterMetricFamily(
            "acd_queue_calls", "Queued calls ended, by queue and outcome",
            labels=["queue", "outcome"])
        for q in sorted({*e.core.queue_names(), *ended}):
            t = ended.get(q) or (0, 0, 0)
            for i, outcome in enumerate(outcomes):
                per_queue.add_metric([q, outcome], t[i])
        yield per_queue
        c = e.counters
        yield CounterMetricFamily("acd_calls_started", "Calls that entered the engine "
                                  "(hotline sessions that became calls)", c.calls_started)
        yield CounterMetricFamily("acd_calls_finished", "Calls that ended (call records "
                                  "written by the core)", c.calls_finished)
        yield GaugeMetricFamily("acd_calls_active", "Calls in progress (IVR, waiting, "
                                "ringing, talking)", sum(1 for _ in e.core.calls()))
        yield CounterMetricFamily("acd_engine_errors", "Events the core refused from the "
                                  "engine's own sources, failed tasks and listeners", c.errors)

    # ---------------------------------------------------------------- queues

    def _queues(self, now: float, today: dict[tuple[str, str], list[int]]
                ) -> Iterator[Metric]:
        e = self.engine
        core = e.core
        waiting = GaugeMetricFamily("acd_queue_waiting_calls", "Calls waiting in the queue "
                                    "now", labels=["queue"])
        longest = GaugeMetricFamily("acd_queue_longest_wait_seconds", "Wait so far of the "
                                    "longest-waiting call of the queue (0: none waiting)",
                                    labels=["queue"])
        for q in core.queue_names():
            ids = core.waiting(q)
            waiting.add_metric([q], len(ids))
            since = [c.queued_at for c in (core.call(i) for i in ids)
                     if c is not None and c.queued_at is not None]
            longest.add_metric([q], max(0.0, now - min(since)) if since else 0.0)
        yield waiting
        yield longest
        # today: the statistics intervals that began since local midnight (as /queues)
        offered = GaugeMetricFamily("acd_queue_offered_today", "Calls offered to the queue "
                                    "today (that ended), by class", labels=["queue", "class"])
        within = GaugeMetricFamily("acd_queue_answered_within_sl_today", "Calls answered "
                                   "within their class's service level threshold today",
                                   labels=["queue", "class"])
        level = GaugeMetricFamily("acd_service_level_today_ratio", "Service level today: "
                                  "answered within the threshold / offered less short "
                                  "abandons (absent: none offered)", labels=["queue", "class"])
        for (q, cls), (n, w, sl_n) in sorted(today.items()):
            offered.add_metric([q, cls], n)
            within.add_metric([q, cls], w)
            if sl_n:
                level.add_metric([q, cls], w / sl_n)
        yield offered
        yield within
        yield level
        target = GaugeMetricFamily("acd_service_level_target_ratio", "The class's service "
                                   "level target (share of calls)", labels=["class"])
        threshold = GaugeMetricFamily("acd_service_level_threshold_seconds", "The class's "
                                      "service level threshold", labels=["class"])
        classes = set(core.policy.classes) | {cls for _, cls in today}
        for cls in sorted(classes):
            sl = e.statistics.service_level_for(cls)
            target.add_metric([cls], sl.target)
            threshold.add_metric([cls], sl.threshold_s)
        yield target
        yield threshold

    # ---------------------------------------------------------------- agents

    def _agents(self) -> Iterator[Metric]:
        counts = dict.fromkeys(AgentState, 0)
        for agent in self.engine.core.agents():
            counts[agent.state] += 1
        family = GaugeMetricFamily("acd_agents", "Agents by state (every state, 0 included)",
                                   labels=["state"])
        for state, n in counts.items():
            family.add_metric([state.value], n)
        yield family

    # ----------------------------------------------------------------- links

    def _links(self) -> Iterator[Metric]:
        e = self.engine
        up = GaugeMetricFamily("acd_ami_up", "The AMI link to the server is up (1) or not (0)",
                               labels=["server"])
        again = CounterMetricFamily("acd_ami_reconnects", "AMI links re-established after a "
                                    "loss", labels=["server"])
        for name, srv in e.servers.items():
            up.add_metric([name], 1 if srv.ami.connected else 0)
            again.add_metric([name], srv.ami.reconnects)
        yield up
        yield again
        yield GaugeMetricFamily("acd_fastagi_sessions_active", "FastAGI connections open now",
                                e.agi.active)
        yield CounterMetricFamily("acd_fastagi_rejected", "FastAGI connections dropped for bad "
                                  "input (header timeout, bad header, unknown script)",
                                  e.agi.rejected)

    # --------------------------------------------------------------- records

    def _records(self) -> Iterator[Metric]:
        r = self.engine.record_counts()
        yield GaugeMetricFamily("acd_records_pending", "Rows accepted by the record writer "
                                "and not yet in the database", r.get("pending", 0))
        yield GaugeMetricFamily("acd_records_spooled", "Rows on local disk (the spool) while "
                                "the database is down", r.get("spooled", 0))
        yield CounterMetricFamily("acd_records_written", "Rows written to the database",
                                  r.get("written", 0))
        yield CounterMetricFamily("acd_records_dead_lettered", "Rows the database refused "
                                  "(kept in dead_letters)", r.get("dead_lettered", 0))
        yield CounterMetricFamily("acd_records_failed", "Rows lost (neither written, "
                                  "dead-lettered nor spooled)", r.get("lost", 0))

    # ------------------------------------------------------------------- SMS

    def _sms(self) -> Iterator[Metric]:
        sender = self.engine.sms
        if sender is None:
            return
        s = sender.stats
        for name, value, what in (
                ("acd_sms_sent", s.sent, "SMS handed to the gateway"),
                ("acd_sms_retries", s.retries, "SMS sends to retry later (gateway down or busy)"),
                ("acd_sms_failed", s.failed, "SMS failed for good (refused or expired)"),
                ("acd_sms_receipts", s.receipts, "Delivery receipts applied"),
                ("acd_sms_opt_outs", s.opt_outs, "Numbers opted out by an SMS reply")):
            yield CounterMetricFamily(name, what, value)


class Metrics:
    """One engine's metrics: its registry, the collector, the latency histogram."""

    def __init__(self, engine: ControlledEngine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(engine))
        self.latency = Histogram(
            "acd_decision_latency_seconds", "Time from an event reaching the engine to the "
            "core's decision (seen by the decision listeners)",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self._observe = self.latency.observe

    def on_decision(self, event: Event, actions: Sequence[Action], now: float,
                    started_ns: int) -> None:
        """The decision listener: the latency of this decision."""
        self._observe((time.monotonic_ns() - started_ns) / 1e9)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
