"""The figures of ``acd report calls``: stored call records and agent state
changes replayed, in time order, into :class:`acd.core.stats.Statistics` --
the very code of the engine's live statistics -- and laid out as rows.
Every figure is defined once, in ``docs/reports.md``.

Sans-I/O: records, changes, times and an already loaded ``tzinfo`` in; rows
out.  The command (``acd.cli.report``) reads the database and the clock.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import Any, Literal

from acd.core.model import AgentState, AgentStateChanged, CallRecord, WriteCallRecord
from acd.core.stats import (
    DAY_S,
    DEFAULT_SL,
    WEEK_S,
    AgentIntervalStats,
    IntervalStats,
    IvrOutcomeStats,
    ServiceLevel,
    Statistics,
    UtcOffset,
)

__all__ = ["AGENT_COLUMNS", "BY", "CALL_COLUMNS", "INTERVALS", "IVR_COLUMNS", "By",
           "columns_for", "counted_at", "parse_interval", "replay", "report_rows",
           "zone_offset"]

#: ``--interval`` values and their length in seconds
INTERVALS: dict[str, float] = {"15m": 900.0, "30m": 1800.0, "60m": 3600.0, "day": DAY_S,
                               "week": WEEK_S}
By = Literal["total", "queue", "class", "agent", "ivr"]
BY: tuple[By, ...] = ("total", "queue", "class", "agent", "ivr")

#: the columns of the call rows (``--by total|queue|class``), in order
CALL_COLUMNS = (
    "interval", "start", "end", "group", "offered", "answered", "abandoned",
    "short_abandoned", "other", "transferred", "sl_offered", "answered_within_sl",
    "threshold_s", "target", "service_level", "sl_met", "sl_answered_only", "asa_s",
    "abandon_rate", "aht_s", "mean_talk_s", "longest_wait_s", "answered_wait_sum_s",
    "talk_sum_s", "wrap_sum_s")
#: the columns of the agent rows (``--by agent``)
AGENT_COLUMNS = (
    "interval", "start", "end", "agent", "answered", "talk_s", "wrap_s", "aht_s",
    "logged_in_s", "paused_s", "ready_s", "reserved_s", "on_call_s", "wrap_up_s", "busy_s",
    "available_s", "occupancy", "utilisation")
#: the columns of the IVR rows (``--by ivr``)
IVR_COLUMNS = ("interval", "start", "end", "node", "reason", "calls", "transferred",
               "mean_ivr_s", "ivr_sum_s")


def columns_for(by: By) -> tuple[str, ...]:
    return AGENT_COLUMNS if by == "agent" else IVR_COLUMNS if by == "ivr" else CALL_COLUMNS


def parse_interval(text: str) -> float:
    """``15m``, ``30m``, ``60m`` (also ``1h``), ``day`` or ``week``: seconds."""
    value = INTERVALS.get(text.strip().lower().replace("1h", "60m"))
    if value is None:
        raise ValueError(f"{text!r} is not an interval (one of {', '.join(INTERVALS)})")
    return value


def zone_offset(tz: dt.tzinfo) -> UtcOffset:
    """The UTC offset (seconds east) of ``tz`` at an instant, DST included."""
    def offset(t: float) -> float:
        off = dt.datetime.fromtimestamp(t, tz).utcoffset()
        return off.total_seconds() if off is not None else 0.0
    return offset


def counted_at(r: CallRecord) -> float:
    """The instant whose interval a call counts in: queued, else started."""
    return r.queued_at if r.queue is not None and r.queued_at is not None else r.started_at


def replay(stats: Statistics, records: Iterable[CallRecord],
           changes: Iterable[AgentStateChanged],
           seeds: Mapping[str, tuple[AgentState, float]] | None = None) -> Statistics:
    """Feed ``stats`` as the engine did: each record at its ``ended_at``,
    each change at its ``at``, in time order; at equal times records first
    (so a zero wrap-up, ended at the call's end, still follows its call).
    ``changes`` are given in the order they were logged (at equal ``at``
    that order is kept: a stable sort by time, as heapq.merge needs).
    ``seeds``: an agent's state at the start of the report (its last
    change before it), fed first so its time counts from there."""
    for agent, (state, at) in sorted((seeds or {}).items()):
        stats.on_action(AgentStateChanged(agent, state, state, at), at)
    recs = sorted(records, key=lambda r: r.ended_at)
    keyed_r: Iterator[tuple[float, int, int, CallRecord | AgentStateChanged]] = (
        (r.ended_at, 0, n, r) for n, r in enumerate(recs))
    keyed_c: Iterator[tuple[float, int, int, CallRecord | AgentStateChanged]] = (
        (c.at, 1, n, c) for n, c in enumerate(sorted(changes, key=lambda c: c.at)))
    for t, _kind, _n, item in heapq.merge(keyed_r, keyed_c, key=lambda x: (x[0], x[1], x[2])):
        if isinstance(item, CallRecord):
            stats.on_action(WriteCallRecord(item), t)
        else:
            stats.on_action(item, t)
    return stats


def new_statistics(service_levels: Mapping[str, ServiceLevel], interval_s: float, *,
                   short_abandon_s: float = 0.0, tz: dt.tzinfo | None = None,
                   default_sl: ServiceLevel = DEFAULT_SL) -> Statistics:
    """A :class:`Statistics` as the report counts (``tz`` None: UTC)."""
    return Statistics(service_levels, default_sl, interval_s, short_abandon_s=short_abandon_s,
                      utc_offset=zone_offset(tz) if tz is not None else None)


def _when(t: float | None, tz: dt.tzinfo) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, tz).isoformat(timespec="minutes")


def _call_row(s: IntervalStats, label: str, group: str, tz: dt.tzinfo) -> dict[str, Any]:
    d = asdict(s)
    d.update(interval=label, start=_when(s.start, tz), end=_when(s.end, tz), group=group)
    return {k: d[k] for k in CALL_COLUMNS}


def _agent_row(s: AgentIntervalStats, label: str, agent: str, tz: dt.tzinfo) -> dict[str, Any]:
    d = asdict(s)
    d.update(interval=label, start=_when(s.start, tz), end=_when(s.end, tz), agent=agent)
    return {k: d[k] for k in AGENT_COLUMNS}


def _ivr_row(s: IvrOutcomeStats, label: str, tz: dt.tzinfo) -> dict[str, Any]:
    d = asdict(s)
    d.update(interval=label, start=_when(s.start, tz), end=_when(s.end, tz),
             node=s.node if s.node is not None else "all",
             reason=s.reason if s.reason is not None else "all")
    return {k: d[k] for k in IVR_COLUMNS}


def report_rows(stats: Statistics, by: By, tz: dt.tzinfo, *,
                now: float | None = None) -> list[dict[str, Any]]:
    """The report's rows: per interval (oldest first) and group, then one
    row per group over the whole report (``interval`` ``all``).  Agent rows
    count each agent's open state up to ``now`` (the report's end)."""
    if by == "agent":
        rows = [_agent_row(s, _when(s.start, tz), s.agent_id or "", tz)
                for s in stats.agent_intervals(now=now)]
        rows += [_agent_row(stats.agent_totals(a, now=now), "all", a, tz)
                 for a in stats.agents(now=now)]
        everyone = stats.agent_totals(now=now)
        if everyone.start is not None:
            rows.append(_agent_row(everyone, "all", "all", tz))
        return rows
    if by == "ivr":
        rows = [_ivr_row(s, _when(s.start, tz), tz) for s in stats.ivr_outcomes()]
        rows += [_ivr_row(s, "all", tz) for s in stats.ivr_outcome_totals()]
        return rows
    if by == "total":
        rows = [_call_row(s, _when(s.start, tz), "all", tz) for s in stats.intervals(combine=True)]
        total = stats.totals()
        if total.start is not None:
            rows.append(_call_row(total, "all", "all", tz))
        return rows
    groups = stats.queues() if by == "queue" else stats.classes()
    per: list[tuple[float, str, dict[str, Any]]] = []
    for g in groups:
        items = stats.intervals(queue=g, combine=True) if by == "queue" else \
            stats.intervals(customer_class=g, combine=True)
        per.extend((s.start or 0.0, g, _call_row(s, _when(s.start, tz), g, tz)) for s in items)
    rows = [row for _t, _g, row in sorted(per, key=lambda x: (x[0], x[1]))]
    for g in groups:
        total = stats.totals(queue=g) if by == "queue" else stats.totals(customer_class=g)
        rows.append(_call_row(total, "all", g, tz))
    return rows
