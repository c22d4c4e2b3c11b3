"""A load-simulator run's figures, the same for the virtual and the live run.

Figures (per queue, customer class and interval, and in total; a call
counts in the interval of its arrival and in the queue it ended in):
offered, answered, abandoned, other (fallback; or "unfinished": still waiting
when the run ran out of events), service level = share of
*all* arrivals answered within the threshold (``sl_answered_only``: of the
answered), P(wait > 0) = share not offered to an agent at once, mean wait
over all arrivals (abandoners' time to hang up included), ASA, abandon
rate, occupancy of the agents with the queue's skill, longest wait, agents
available (mean logged in and not paused, per interval: ``Row.available``,
``VirtualResult.available``); each interval row carries its local date and
time (``Row.at``), and a run past its first day labels its intervals with it.
Calls arriving before the warm-up ends count nowhere.  These are the
definitions of the live statistics and ``acd report calls``
(:mod:`acd.core.stats`, docs/reports.md, which lists the differences: no
short abandons, intervals from the scenario's start, a queue's own
threshold for classes without one, the warm-up and unfinished calls).

:class:`Occupancy` turns agent state changes into agent time; :func:`result_of`
puts a run's calls, samples and agent time into a :class:`VirtualResult`,
which aggregates them on first use.  Compiled with mypyc with the loop (see
``setup.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from acd.core.model import AgentState
from acd.loadsim.model import Scenario, clock

__all__ = ["SAMPLE_S", "CallOutcome", "EstimateAt", "Occupancy", "Row", "VirtualResult",
           "WaitError", "result_of", "wait_error"]

#: agent state -> 0 not available (logged out, paused), 1 idle (ready), 2 busy
_OCC = {AgentState.LOGGED_OUT: 0, AgentState.PAUSED: 0, AgentState.READY: 1,
        AgentState.RESERVED: 2, AgentState.ON_CALL: 2, AgentState.WRAP_UP: 2}
SAMPLE_S = 60.0


class CallOutcome(NamedTuple):
    """One call, from its final record."""

    call_id: str
    number: str
    queue: str | None  # the queue it ended in (None: ended in the IVR)
    first_queue: str | None  # the queue it was put in first
    customer_class: str
    arrival_s: float  # queued (or started, for an IVR-only call), seconds from the start
    wait_s: float | None  # queued until answered / hung up / fallback
    outcome: str  # answered | abandoned | fallback | ivr | unfinished (still waiting at the end)
    agent_id: str | None
    offers: int
    waited: bool  # not offered to an agent at once
    counted: bool  # arrived after the warm-up
    answered_at: float | None
    ended_at: float
    priority: int


class EstimateAt(NamedTuple):
    """The expected wait a waiting caller was given: as it joined its queue
    (``waited_s`` 0), and again every so often while it waits, as the hold
    loop announces it (``run_virtual(..., estimates=True, estimate_every_s=...)``)."""

    call_id: str
    at: float  # seconds from the start
    waited_s: float  # how long the caller had waited then
    queue: str
    position: int
    wait_s: float | None  # the core's estimate; None: no agent serving the queue
    staffed: int  # agents logged in and not paused with the queue's skill
    servers: int  # of them, those eligible for this caller


@dataclass(frozen=True, slots=True)
class WaitError:
    """Expected wait as given vs the actual wait of the answered callers."""

    calls: int  # estimates given to callers who were answered later
    no_estimate: int  # times such a caller had no estimate (no agent serving)
    mae_s: float | None  # mean |estimate - actual|
    bias_s: float | None  # mean (estimate - actual): > 0 says too long
    long_s: float  # "long" waits: over this
    long_calls: int
    median_rel: float | None  # median |estimate - actual| / actual of the long waits
    within_half: float | None  # share of the long waits estimated within +-50 %

    def describe(self, when: str = "at queueing") -> str:
        if not self.calls:
            return f"expected wait {when}: no caller waited"
        text = (f"expected wait {when} vs actual ({self.calls:,} estimates, callers later "
                f"answered): mean absolute error {self.mae_s:.1f} s (bias {self.bias_s:+.1f} s)")
        if self.median_rel is not None and self.within_half is not None:
            text += (f"; waits over {self.long_s:g} s ({self.long_calls:,}): median relative "
                     f"error {self.median_rel:.0%}, {self.within_half:.0%} within +-50 %")
        return text


def wait_error(pairs: list[tuple[float | None, float]], long_s: float = 30.0) -> WaitError:
    """:class:`WaitError` of (estimate or None, actual wait) pairs."""
    given = [(e, a) for e, a in pairs if e is not None]
    n = len(given)
    errors = [e - a for e, a in given]
    rel = sorted(abs(e - a) / a for e, a in given if a > long_s)
    m = len(rel)
    median: float | None = None
    if m:
        median = rel[m // 2] if m % 2 else (rel[m // 2 - 1] + rel[m // 2]) / 2.0
    return WaitError(
        calls=n, no_estimate=len(pairs) - n,
        mae_s=sum(abs(x) for x in errors) / n if n else None,
        bias_s=sum(errors) / n if n else None, long_s=long_s, long_calls=m,
        median_rel=median, within_half=sum(1 for r in rel if r <= 0.5) / m if m else None)


@dataclass(frozen=True, slots=True)
class Row:
    """Figures of one (scope, key, interval) or of the whole run (interval None)."""

    scope: str  # total | queue | class
    key: str  # queue or class name ("" for total)
    interval_start: float | None  # seconds from the start; None = the whole run
    label: str  # HH:MM of the interval, or "all"
    t_s: float | None  # the service-level threshold (None: mixed)
    offered: int
    answered: int
    abandoned: int
    other: int
    answered_within_sl: int
    service_level: float | None
    sl_answered_only: float | None
    pwait: float | None
    mean_wait_s: float | None
    asa_s: float | None
    abandon_rate: float | None
    occupancy: float | None
    longest_wait_s: float | None
    #: the interval's start as a local date and time ``YYYY-MM-DD HH:MM`` (None: whole run)
    at: str | None = None
    #: mean agents available (logged in, not paused) with the scope's skill (all
    #: agents for the total; None for classes)
    available: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(slots=True)
class VirtualResult:
    """What :func:`run_virtual` returns.  Figures are computed on first use."""

    scenario: str
    seed: int
    start_s: float
    interval_s: float
    queues: tuple[str, ...]
    classes: tuple[str, ...]
    calls: list[CallOutcome]
    #: waiting calls (queued, not yet answered) per queue, sampled every ``SAMPLE_S``
    #: from t = 0: one tuple per sample, in the order of ``queues``
    waiting: list[tuple[int, ...]]
    #: per interval: {skill ("" = all agents): (busy seconds, available seconds)}
    agent_time: dict[int, dict[str, list[float]]]
    queue_skill: dict[str, str]
    queue_sl: dict[str, float]
    class_sl: dict[str, float]
    default_sl: float
    warmup_s: float
    end_s: float
    wall_s: float
    core_events: int
    arrivals: int
    #: intervals of the arrivals (the day): 0 .. n_intervals - 1 from t = 0; every
    #: one of them has a row for the total and each queue
    n_intervals: int = 0
    #: the expected wait each waiting caller was given (when asked for)
    estimates: list[EstimateAt] = field(default_factory=list)
    #: the local date and time of t = 0 (None: a time of day only)
    start_at: dt.datetime | None = None
    #: what the run could not do as asked (calls left unserved, ...), for the user
    warnings: list[str] = field(default_factory=list)
    #: every agent state change (t, agent, new state, reason), when asked for
    agent_log: list[tuple[float, str, str, str]] | None = None
    #: activities (breaks, not-ready, shrinkage): planned, skipped (agent logged
    #: out), delayed (after a call), cut (by the shift's end), not_ready, shrinkage
    activity_counts: dict[str, int] = field(default_factory=dict)
    _rows: list[Row] | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- figures

    def rows(self) -> list[Row]:
        """Every row: for total, each queue and each class, the whole run and
        each interval."""
        if self._rows is None:
            self._rows = self._aggregate()
        return self._rows

    @property
    def available(self) -> dict[int, dict[str, float]]:
        """Per interval (index from t = 0), per skill ("" = all agents): the mean
        number of agents available (logged in and not paused) over the interval."""
        out: dict[int, dict[str, float]] = {}
        interval = self.interval_s
        for i, per_skill in sorted(self.agent_time.items()):
            out[i] = {k: ba[1] / interval for k, ba in per_skill.items()}
        return out

    def interval_at(self, i: int) -> dt.datetime | None:
        """The local date and time of interval ``i``'s start (None: no date)."""
        if self.start_at is None:
            return None
        return self.start_at + dt.timedelta(seconds=i * self.interval_s)

    def interval_label(self, i: int) -> str:
        """``HH:MM`` of interval ``i`` in a one-day run, ``YYYY-MM-DD HH:MM``
        when the run goes past the first day."""
        at = self.interval_at(i)
        multi_day = self.start_s + max(self.n_intervals, i + 1) * self.interval_s > 86400.0
        if at is not None and multi_day:
            return at.strftime("%Y-%m-%d %H:%M")
        return clock(i * self.interval_s, self.start_s)

    def totals(self, scope: str = "total", key: str = "") -> Row:
        for row in self.rows():
            if row.scope == scope and row.key == key and row.interval_start is None:
                return row
        raise KeyError(f"no figures for {scope} {key!r}")

    def summary_rows(self) -> list[dict[str, Any]]:
        """The whole run: total, then each queue, then each class (dicts)."""
        return [r.as_dict() for r in self.rows() if r.interval_start is None]

    def interval_rows(self, scope: str = "total", key: str = "") -> list[dict[str, Any]]:
        """Per interval, for the total (default), a queue or a class."""
        return [r.as_dict() for r in self.rows()
                if r.interval_start is not None and r.scope == scope and r.key == key]

    def _threshold(self, c: CallOutcome) -> float:
        sl = self.class_sl.get(c.customer_class)
        if sl is not None:
            return sl
        return self.queue_sl.get(c.queue or "", self.default_sl)

    def _aggregate(self) -> list[Row]:
        interval = self.interval_s
        queue_sl, class_sl, default_sl = self.queue_sl, self.class_sl, self.default_sl
        # one pass over the calls, grouped by (interval, queue, class): [offered,
        #   answered, abandoned, other, within the call's / the queue's / the
        #   class's threshold, waited, wait_sum, answered_wait_sum, longest]
        groups: dict[tuple[int, str, str], list[float]] = {}
        limits: dict[tuple[str, str], tuple[float, float, float]] = {}
        for c in self.calls:
            queue = c.queue
            if not c.counted or queue is None:
                continue
            cls = c.customer_class
            lim = limits.get((queue, cls))
            if lim is None:
                lim = limits[(queue, cls)] = (
                    self._threshold(c), queue_sl.get(queue, default_sl),
                    class_sl.get(cls, default_sl))
            k = (int(c.arrival_s // interval), queue, cls)
            g = groups.get(k)
            if g is None:
                g = groups[k] = [0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
            wait = c.wait_s or 0.0
            g[0] += 1
            if c.outcome == "answered":
                g[1] += 1
                g[9] += wait
                if wait <= lim[0]:
                    g[4] += 1
                if wait <= lim[1]:
                    g[5] += 1
                if wait <= lim[2]:
                    g[6] += 1
            elif c.outcome == "abandoned":
                g[2] += 1
            else:
                g[3] += 1
            if c.waited:
                g[7] += 1
            g[8] += wait
            if wait > g[10]:
                g[10] = wait
        # (scope, key, interval index or -1) -> [offered, answered, abandoned, other,
        #   within_sl, waited, wait_sum, answered_wait_sum, longest]
        agg: dict[tuple[str, str, int], list[float]] = {}
        thresholds: dict[tuple[str, str], set[float]] = {}
        for (i, queue, cls), g in groups.items():
            lim = limits[(queue, cls)]
            for scope, key, t_s, w in (("total", "", lim[0], 4), ("queue", queue, lim[1], 5),
                                       ("class", cls, lim[2], 6)):
                thresholds.setdefault((scope, key), set()).add(t_s)
                for k2 in ((scope, key, i), (scope, key, -1)):
                    a = agg.get(k2)
                    if a is None:
                        a = agg[k2] = [0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
                    a[0] += g[0]
                    a[1] += g[1]
                    a[2] += g[2]
                    a[3] += g[3]
                    a[4] += g[w]
                    a[5] += g[7]
                    a[6] += g[8]
                    a[7] += g[9]
                    if g[10] > a[8]:
                        a[8] = g[10]
        # every interval of the run appears for the total and each queue
        # (zero rows where no call arrived)
        first = int(self.warmup_s // interval)
        for i in range(first, self.n_intervals):
            for scope, key in (("total", ""), *(("queue", q) for q in self.queues)):
                if (scope, key, i) not in agg:
                    agg[(scope, key, i)] = [0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
            thresholds.setdefault(("total", ""), set())
        for q in self.queues:
            thresholds.setdefault(("queue", q), {queue_sl.get(q, default_sl)})
        scope_rank = {"total": 0, "queue": 1, "class": 2}
        rows: list[Row] = []
        labels: dict[int, str] = {}
        ats: dict[int, str | None] = {}
        for _, _, i in agg:
            if i >= 0 and i not in labels:
                labels[i] = self.interval_label(i)
                at = self.interval_at(i)
                ats[i] = at.strftime("%Y-%m-%d %H:%M") if at is not None else None
        for (scope, key, i), a in sorted(agg.items(), key=lambda kv: (
                scope_rank[kv[0][0]], kv[0][1], kv[0][2])):
            ts = thresholds.get((scope, key), set())
            n_off, n_ans = int(a[0]), int(a[1])
            rows.append(Row(
                scope=scope, key=key, interval_start=None if i < 0 else i * interval,
                label="all" if i < 0 else labels[i],
                t_s=next(iter(ts)) if len(ts) == 1 else None,
                offered=n_off, answered=n_ans, abandoned=int(a[2]), other=int(a[3]),
                answered_within_sl=int(a[4]), service_level=_ratio(a[4], n_off),
                sl_answered_only=_ratio(a[4], n_ans), pwait=_ratio(a[5], n_off),
                mean_wait_s=_ratio(a[6], n_off), asa_s=_ratio(a[7], n_ans),
                abandon_rate=_ratio(a[2], n_off),
                occupancy=self._occupancy(scope, key, None if i < 0 else i),
                longest_wait_s=a[8] if n_off else None,
                at=None if i < 0 else ats[i],
                available=self._available(scope, key, None if i < 0 else i),
            ))
        return rows

    def _available(self, scope: str, key: str, i: int | None) -> float | None:
        """Mean agents available (interval ``i``, or the whole run after the warm-up)."""
        if scope == "class":
            return None
        skill = "" if scope == "total" else self.queue_skill.get(key, key)
        if i is not None:
            ba = self.agent_time.get(i, {}).get(skill)
            return ba[1] / self.interval_s if ba is not None else 0.0
        span = self.end_s - self.warmup_s
        total = sum(per.get(skill, (0.0, 0.0))[1] for per in self.agent_time.values())
        return total / span if span > 0 else None

    def _occupancy(self, scope: str, key: str, i: int | None) -> float | None:
        if scope == "class":
            return None
        skill = "" if scope == "total" else self.queue_skill.get(key, key)
        busy = avail = 0.0
        spans = self.agent_time.values() if i is None else (self.agent_time.get(i, {}),)
        for per_skill in spans:
            ba = per_skill.get(skill)
            if ba is not None:
                busy += ba[0]
                avail += ba[1]
        return busy / avail if avail > 0 else None

    # ---------------------------------------------------------------- export

    def to_json(self, calls: bool = True, indent: int | None = None) -> str:
        """Everything as JSON: run facts, rows (totals and intervals), the
        waiting-calls series and (``calls=True``) one record per call."""
        doc: dict[str, Any] = {
            "scenario": self.scenario, "seed": self.seed, "start": clock(0, self.start_s),
            "start_at": self.start_at.strftime("%Y-%m-%d %H:%M:%S")
            if self.start_at is not None else None, "warnings": list(self.warnings),
            "activities": dict(self.activity_counts),
            "start_s": self.start_s, "interval_s": self.interval_s, "warmup_s": self.warmup_s,
            "end_s": self.end_s, "arrivals": self.arrivals, "core_events": self.core_events,
            "wall_s": round(self.wall_s, 6), "queues": list(self.queues),
            "classes": list(self.classes), "ivr_only": self.ivr_only(),
            "totals": self.summary_rows(),
            "intervals": [r.as_dict() for r in self.rows() if r.interval_start is not None],
            "waiting": {"every_s": SAMPLE_S, "queues": list(self.queues),
                        "samples": [list(s) for s in self.waiting]},
        }
        at_queue, later = self.wait_error(), self.wait_error(later=True)
        if at_queue is not None and later is not None:
            doc["wait_estimates"] = {
                name: {f.name: getattr(err, f.name) for f in fields(err)}
                for name, err in (("at_queue", at_queue), ("while_waiting", later))}
        if calls:
            doc["calls"] = [c._asdict() for c in self.calls]
        return json.dumps(doc, indent=indent, ensure_ascii=False)

    def wait_pairs(self, later: bool = False) -> list[tuple[EstimateAt, float]]:
        """(estimate given, actual wait from then on) for the counted callers
        who waited and were answered (an abandoner's actual wait is not
        known): the estimates given as they joined the queue, or
        (``later``) those given while they waited."""
        answered = {c.call_id: c.answered_at for c in self.calls
                    if c.counted and c.outcome == "answered" and c.answered_at is not None}
        out: list[tuple[EstimateAt, float]] = []
        for e in self.estimates:
            at = answered.get(e.call_id)
            if at is not None and (e.waited_s > 0.0) == later:
                out.append((e, at - e.at))
        return out

    def wait_error(self, long_s: float = 30.0, later: bool = False) -> WaitError | None:
        """How far the expected waits given were off (None: none recorded)."""
        if not self.estimates:
            return None
        return wait_error([(e.wait_s, w) for e, w in self.wait_pairs(later)], long_s)

    def ivr_only(self) -> int:
        """Calls (after the warm-up) that ended in the IVR, never queued."""
        return sum(1 for c in self.calls if c.counted and c.queue is None)

    def calls_per_second(self) -> float:
        return self.arrivals / self.wall_s if self.wall_s > 0 else math.inf


class _Span:
    """An agent's current occupancy span: since when, its code (_OCC), and
    the keys its time counts under ("" = all agents, then each skill)."""

    __slots__ = ("code", "keys", "since")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.since = 0.0
        self.code = 0
        self.keys = keys


class Occupancy:
    """Agent time for occupancy, from agent state changes (both modes):
    ``agent_time[interval][key] = [busy s, available s]``, key "" for all
    agents and each skill; busy = reserved + on a call + wrap-up, available =
    logged in minus paused; split at interval boundaries, nothing before
    ``warmup_s``.  A span is closed only when the agent's code changes
    (reserved -> on call -> wrap-up is one busy span)."""

    def __init__(self, skills: dict[str, tuple[str, ...]], warmup_s: float,
                 interval_s: float) -> None:
        self.spans = {aid: _Span(("", *sorted(sk))) for aid, sk in skills.items()}
        self.warmup_s = warmup_s
        self.interval_s = interval_s
        self.agent_time: dict[int, dict[str, list[float]]] = {}

    def change(self, agent_id: str, new: AgentState, t: float) -> None:
        span = self.spans.get(agent_id)
        if span is None:
            return
        code = _OCC[new]
        old = span.code
        if code != old:
            if old and t > span.since:
                self._add(span.since, t, old == 2, span.keys)
            span.since = t
            span.code = code

    def close(self, end_s: float) -> None:
        """Count every open span up to ``end_s`` (the end of the run)."""
        for span in self.spans.values():
            if span.code and end_s > span.since:
                self._add(span.since, end_s, span.code == 2, span.keys)
            span.since = end_s

    def _add(self, a: float, b: float, busy: bool, keys: tuple[str, ...]) -> None:
        if a < self.warmup_s:
            a = self.warmup_s
        interval = self.interval_s
        while a < b:
            i = int(a // interval)
            seg = min(b, (i + 1) * interval)
            per = self.agent_time.get(i)
            if per is None:
                per = self.agent_time[i] = {}
            d = seg - a
            for k in keys:
                ba = per.get(k)
                if ba is None:
                    ba = per[k] = [0.0, 0.0]
                ba[1] += d
                if busy:
                    ba[0] += d
            a = seg


def result_of(sc: Scenario, seed: int, calls: list[CallOutcome],
              waiting: list[tuple[int, ...]], agent_time: dict[int, dict[str, list[float]]],
              end_s: float, wall_s: float, core_events: int, arrivals: int,
              last_arrival: float, estimates: list[EstimateAt] | None = None,
              warnings: list[str] | None = None,
              agent_log: list[tuple[float, str, str, str]] | None = None,
              activity_counts: dict[str, int] | None = None) -> VirtualResult:
    """A run's figures (virtual or live), with what they need from ``sc``."""
    policy = sc.policy
    queue_names = tuple(policy.queues)
    horizon = sc.day_end_s
    if horizon is not None and last_arrival > horizon:  # a trace past the scenario's end
        horizon = last_arrival
    return VirtualResult(
        scenario=sc.name, seed=seed, start_s=sc.start_s, interval_s=sc.interval_s,
        queues=queue_names,
        classes=tuple(sorted({c.customer_class for c in calls if c.queue is not None})),
        calls=calls, waiting=waiting, agent_time=agent_time,
        queue_skill={q: qp.require.skill for q, qp in policy.queues.items()},
        queue_sl={q: sc.queue_sl(q) for q in queue_names},
        class_sl={c: cl.sl_threshold_s for c, cl in policy.classes.items()},
        default_sl=sc.sl_seconds, warmup_s=sc.warmup_s, end_s=end_s, wall_s=wall_s,
        core_events=core_events, arrivals=arrivals,
        n_intervals=math.ceil((horizon if horizon is not None else last_arrival)
                              / sc.interval_s),
        estimates=estimates if estimates is not None else [],
        start_at=sc.start_at, warnings=warnings if warnings is not None else [],
        agent_log=agent_log, activity_counts=activity_counts or {},
    )
