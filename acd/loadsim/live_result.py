"""What a live run returns (:class:`LiveResult`: the figures, computed like
the virtual run's, and the live run's own facts) and the latency figures it
carries (:func:`percentiles`, :func:`ring_latencies`).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from acd.loadsim.figures import VirtualResult

__all__ = ["LiveResult", "percentiles", "ring_latencies"]


def percentiles(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """count, p50, p99 and max of ``values`` (multiplied by ``scale``)."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    s = sorted(values)
    n = len(s)

    def at(q: float) -> float:
        return round(s[min(n - 1, int(q * n))] * scale, 3)

    return {"count": n, "p50": at(0.50), "p99": at(0.99), "max": round(s[-1] * scale, 3)}


def ring_latencies(connects: dict[str, list[int]], queued: dict[str, int],
                    rings: Sequence[Sequence[Any]]) -> tuple[list[int], list[int]]:
    """(ConnectCall -> ring for each ring, CallQueued -> first ring for calls
    offered at once), ns.  A ring belongs to its call's latest ConnectCall
    before it."""
    connect_ns: list[int] = []
    queue_ns: list[int] = []
    seen: set[str] = set()
    for uid, t in sorted(rings, key=lambda r: r[1]):
        cs = connects.get(uid)
        if cs:
            i = bisect.bisect_right(cs, t)
            if i:
                connect_ns.append(t - cs[i - 1])
        if uid not in seen:
            seen.add(uid)
            q = queued.get(uid)
            if q is not None:
                queue_ns.append(t - q)
    return connect_ns, queue_ns


@dataclass(slots=True)
class LiveResult:
    """What :func:`run_live` returns: the figures (computed like the virtual
    run's) and the live run's own facts."""

    figures: VirtualResult
    speed: float
    #: True: the PBX simulator ran in a child process (cpu_s is the engine's alone)
    split: bool
    wall_s: float
    cpu_s: float
    sim_cpu_s: float | None
    placed: int
    records: int
    unfinished: int
    #: core decisions (µs): count, p50, p99, max
    decisions: dict[str, float | int | None]
    #: ConnectCall -> the agent's phone rings (ms)
    connect: dict[str, float | int | None]
    #: CallQueued -> the agent's phone rings, calls offered at once (ms)
    queue_to_ring: dict[str, float | int | None]
    #: how late calls were placed against their scaled arrival time (ms)
    arrival_lag: dict[str, float | int | None]
    #: calls placed per second of wall time (first to last arrival)
    offered_rate: float
    engine_errors: int
    #: what the simulator's callers saw (its own outcome names)
    sim_outcomes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary_rows(self) -> list[dict[str, Any]]:
        return self.figures.summary_rows()

    def interval_rows(self, scope: str = "total", key: str = "") -> list[dict[str, Any]]:
        return self.figures.interval_rows(scope, key)

    def totals(self, scope: str = "total", key: str = "") -> Any:
        return self.figures.totals(scope, key)

    def live_facts(self) -> dict[str, Any]:
        return {
            "speed": self.speed, "split": self.split, "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "sim_cpu_s": None if self.sim_cpu_s is None else round(self.sim_cpu_s, 3),
            "placed": self.placed, "records": self.records, "unfinished": self.unfinished,
            "ivr_only": self.figures.ivr_only(),
            "offered_rate_per_wall_s": round(self.offered_rate, 2),
            "decisions_us": self.decisions, "connect_ms": self.connect,
            "queue_to_ring_ms": self.queue_to_ring, "arrival_lag_ms": self.arrival_lag,
            "engine_errors": self.engine_errors, "sim_outcomes": self.sim_outcomes,
            "problems": self.problems,
        }

    def to_json(self, calls: bool = False, indent: int | None = None) -> str:
        doc = json.loads(self.figures.to_json(calls=calls))
        doc["mode"] = "live"
        doc["live"] = self.live_facts()
        return json.dumps(doc, indent=indent, ensure_ascii=False)
