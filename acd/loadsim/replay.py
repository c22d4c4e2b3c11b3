"""Replaying a center's call records: the calls of a period it lived through,
with the roster of that period, through the production router, compared
interval by interval with what the records say happened.

:func:`replay_trace` turns the records into a trace: each call arrives when
it did, in its queue, with its priority; what the records know is used as
it is (an answered call's talk time and wrap-up, an abandoned call's time to
hang up, which is its patience) and what they do not is drawn from the fits
of :mod:`acd.planning.fitting`: the handle time and wrap-up of a call that
was abandoned (the replay may answer it), the wrap-up where the export has
none, and the patience of an answered call, drawn given that it exceeds the
wait the call actually had.

:func:`replay_scenario` builds the scenario: the roster's shifts and
activities become the agents' logins, logouts and breaks (kept whole); the
routing policy and service-level thresholds come from a base scenario when
one is given, else FIFO queues (queue = skill).  :func:`compare` sets the
replay's figures beside the records' own per interval (offered, abandonment,
served within the threshold over all arrivals, ASA) with the error in points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.loadsim.figures import CallOutcome
from acd.loadsim.model import AgentSpec, QueueSpec, Scenario, SimError, TraceCall
from acd.planning.fitting import RecordFits
from acd.planning.records import ABANDONED, ANSWERED, CenterRecord
from acd.planning.roster import Roster

__all__ = ["Comparison", "Figures", "IntervalRow", "agents_from_roster", "compare",
           "dst_changes", "outcome_figures", "record_figures", "replay_scenario", "replay_trace",
           "span_start"]


def span_start(records: Sequence[CenterRecord], roster: Roster | None,
               interval_s: int) -> datetime:
    """t = 0 of the replay: the first arrival or shift start, down to the
    interval (intervals are aligned on the hour)."""
    firsts = [min(r.arrival for r in records)] if records else []
    span = roster.span() if roster is not None else None
    if span is not None:
        firsts.append(span[0])
    if not firsts:
        raise SimError("nothing to replay: no call records and no shifts")
    first = min(firsts)
    hour = first.replace(minute=0, second=0, microsecond=0)
    k = int((first - hour).total_seconds() // interval_s)
    return hour + timedelta(seconds=k * interval_s)


def dst_changes(first: datetime, last: datetime, tz: tzinfo) -> list[datetime]:
    """The local hours between ``first`` and ``last`` (naive local times of
    ``tz``) at which the zone's UTC offset changes (daylight saving).  The
    replay works on wall-clock times: across such a change its hours are not
    real hours (see docs/planning.md)."""
    out: list[datetime] = []
    hour = first.replace(minute=0, second=0, microsecond=0)
    prev = hour.replace(tzinfo=tz).utcoffset()
    while hour < last:
        hour += timedelta(hours=1)
        off = hour.replace(tzinfo=tz).utcoffset()
        if off != prev:
            out.append(hour)
        prev = off
    return out


def replay_trace(records: Sequence[CenterRecord], fits: RecordFits, start: datetime,
                 seed: int = 0) -> tuple[TraceCall, ...]:
    """One trace call per record (see the module docstring), in order of arrival."""
    from acd.planning.fitting import planning_libs

    np, _ = planning_libs()
    rng = np.random.default_rng([seed, 16])
    by_queue: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_queue.setdefault(r.queue, []).append(i)
    handle: list[float] = [0.0] * len(records)
    wrap: list[float | None] = [None] * len(records)
    patience: list[float | None] = [None] * len(records)
    all_handles = [r.handle_s for r in records
                   if r.outcome == ANSWERED and r.handle_s is not None]
    for q, idx in sorted(by_queue.items()):
        fit = fits.queues.get(q)
        recs = [records[i] for i in idx]
        need_h = [i for i, r in zip(idx, recs, strict=True) if r.handle_s is None]
        if need_h:
            hf = fit.handle if fit is not None else None
            if hf is not None:
                drawn = hf.draw(rng, len(need_h))
            elif all_handles:  # a queue nobody was answered in: the other queues' calls
                drawn = rng.choice(np.asarray(all_handles), size=len(need_h))
            else:
                raise SimError(f"queue {q}: no answered call in the records: no handle time "
                               "to draw for its abandoned calls")
            for i, v in zip(need_h, drawn, strict=True):
                handle[i] = float(v)
        wf = fit.wrap if fit is not None else None
        need_w = [i for i, r in zip(idx, recs, strict=True) if r.wrap_s is None]
        if need_w and wf is not None:
            for i, v in zip(need_w, wf.draw(rng, len(need_w)), strict=True):
                wrap[i] = float(v)
        pf = fit.patience if fit is not None else None
        answered = [i for i, r in zip(idx, recs, strict=True) if r.outcome == ANSWERED]
        if answered and pf is not None:
            # given patience > the wait it had; a wait unknown (counted by the
            # fit, RecordFits.unknown_waits): drawn unconditionally (given > 0)
            drawn_p = pf.draw_given([records[i].wait_s or 0.0 for i in answered], rng)
            for i, v in zip(answered, drawn_p, strict=True):
                patience[i] = float(v)
        for i, r in zip(idx, recs, strict=True):
            if r.handle_s is not None:
                handle[i] = r.handle_s
            if r.wrap_s is not None:
                wrap[i] = r.wrap_s
            if r.outcome == ABANDONED:
                patience[i] = r.waited_s
    out = [TraceCall((r.arrival - start).total_seconds(), r.number or f"rec{r.line or i + 1}",
                     r.queue, r.attributes, handle[i], patience[i], r.line, r.priority, wrap[i])
           for i, r in enumerate(records)]
    out.sort(key=lambda c: c.arrival_s)
    return tuple(out)


def agents_from_roster(roster: Roster, start: datetime, queues: Sequence[str],
                       known: Mapping[str, AgentProfile] | None = None,
                       file: str = "<roster>") -> tuple[tuple[AgentSpec, ...], list[str]]:
    """One agent per roster agent (:func:`acd.loadsim.rosters.roster_agents`):
    its shifts and activities in seconds from ``start``.  Skills: the roster's
    own (the period's truth), else the ``known`` profile's, else every queue
    (noted)."""
    from acd.loadsim.rosters import roster_agents

    guessed: list[str] = []

    def every_queue(agent: str) -> dict[str, int]:
        guessed.append(agent)
        return dict.fromkeys(queues, 1)

    specs = roster_agents(roster, start, file,
                          known={a: AgentSpec(p) for a, p in (known or {}).items()},
                          roster_skills_win=True, no_skills=every_queue)
    notes: list[str] = []
    if guessed:
        notes.append(f"{len(guessed)} agent(s) with no skills known (not in the roster's skills "
                     f"nor the base scenario): they take every queue ({', '.join(guessed[:5])}"
                     f"{', ...' if len(guessed) > 5 else ''}), so the replay is optimistic "
                     f"wherever skills really split them: give their skills in the roster's "
                     f"skills column or an agents: list in --scenario BASE.yaml")
    return specs, notes


def replay_scenario(records: Sequence[CenterRecord], roster: Roster, fits: RecordFits, *,
                    base: Scenario | None = None, interval_s: int = 1800,
                    answer_within_s: float = 20.0, seed: int = 0, name: str = "replay",
                    ring_no_answer: float | None = None, roster_file: str = "<roster>"
                    ) -> tuple[Scenario, list[str]]:
    """The replay's scenario (a trace of the records, the roster's agents) and notes.
    ``ring_no_answer``: the share of offers left unanswered (None: the base
    scenario's, else 0)."""
    start = span_start(records, roster, interval_s)
    queues = sorted({r.queue for r in records})
    trace = replay_trace(records, fits, start, seed)
    known = {a.profile.agent_id: a.profile for a in base.agents} if base is not None else {}
    agents, notes = agents_from_roster(roster, start, queues, known, roster_file)
    if base is not None:
        policy = base.policy
        missing = [q for q in queues if q not in policy.queues]
        if missing:
            raise SimError(f"queue(s) {', '.join(missing)} of the records are not queues of "
                           f"the base scenario's routing ({', '.join(policy.queues)})")
        qspecs = {q: dataclasses.replace(base.queues[q], share=0.0) if q in base.queues
                  else QueueSpec(q) for q in policy.queues}
        sc = dataclasses.replace(
            base, name=name, agents=agents, queues=qspecs, trace=trace,
            start_s=(start - start.replace(hour=0, minute=0, second=0)).total_seconds(),
            start_date=start.date(), interval_s=float(interval_s), rates=(),
            open_ended=False, hours=None, calls=None, warmup_s=0.0, days=1, wrap_up=None,
            not_ready=(), shrinkage=(), roster=None, forecast=None, ivr=None,
            ring_no_answer=base.ring_no_answer if ring_no_answer is None else ring_no_answer)
    else:
        policy = simple_policy(dict.fromkeys(queues, 20.0))
        sc = Scenario(name=name, file="<replay>", policy=policy, agents=agents,
                      queues={q: QueueSpec(q, sl_seconds=answer_within_s) for q in queues},
                      start_s=(start - start.replace(hour=0, minute=0, second=0)
                               ).total_seconds(),
                      start_date=start.date(), interval_s=float(interval_s), trace=trace,
                      sl_seconds=answer_within_s, ring_no_answer=ring_no_answer or 0.0)
    return sc, notes


# ------------------------------------------------------------ comparison


@dataclass
class Figures:
    """What happened to the calls of one interval (or the span)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    within: int = 0  # answered within the threshold
    wait_answered_s: float = 0.0  # sum of the answered calls' waits

    def add(self, outcome: str, wait_s: float | None, threshold_s: float) -> None:
        self.offered += 1
        if outcome == ANSWERED:
            self.answered += 1
            w = wait_s or 0.0
            self.wait_answered_s += w
            if w <= threshold_s:
                self.within += 1
        elif outcome == ABANDONED:
            self.abandoned += 1

    def merge(self, other: Figures) -> None:
        self.offered += other.offered
        self.answered += other.answered
        self.abandoned += other.abandoned
        self.within += other.within
        self.wait_answered_s += other.wait_answered_s

    @property
    def abandon_pct(self) -> float | None:
        return 100.0 * self.abandoned / self.offered if self.offered else None

    @property
    def sl_pct(self) -> float | None:
        """Answered within the threshold, share of all arrivals (%)."""
        return 100.0 * self.within / self.offered if self.offered else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_answered_s / self.answered if self.answered else None


def record_figures(records: Sequence[CenterRecord], start: datetime, interval_s: int,
                   threshold_s: float) -> tuple[dict[int, Figures], dict[str, Figures]]:
    """The records' own figures: per interval from ``start``, and per queue."""
    per: dict[int, Figures] = {}
    queues: dict[str, Figures] = {}
    for r in records:
        i = int((r.arrival - start).total_seconds() // interval_s)
        wait = r.wait_s if r.outcome == ANSWERED else r.waited_s
        per.setdefault(i, Figures()).add(r.outcome, wait, threshold_s)
        queues.setdefault(r.queue, Figures()).add(r.outcome, wait, threshold_s)
    return per, queues


def outcome_figures(calls: Sequence[CallOutcome], interval_s: float, threshold_s: float
                    ) -> tuple[dict[int, Figures], dict[str, Figures]]:
    """A run's figures, per interval (from t = 0) and per first queue; a call
    still waiting at the end counts as offered, neither answered nor abandoned."""
    per: dict[int, Figures] = {}
    queues: dict[str, Figures] = {}
    for c in calls:
        if c.queue is None:
            continue
        i = int(c.arrival_s // interval_s)
        per.setdefault(i, Figures()).add(c.outcome, c.wait_s, threshold_s)
        queues.setdefault(c.first_queue or c.queue, Figures()).add(c.outcome, c.wait_s,
                                                                    threshold_s)
    return per, queues


@dataclass
class IntervalRow:
    start: datetime
    records: Figures
    replay: Figures

    def errors(self) -> tuple[float | None, float | None, float | None]:
        """(abandonment, served within, ASA) replay minus records: points, points, s."""
        def diff(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a
        return (diff(self.records.abandon_pct, self.replay.abandon_pct),
                diff(self.records.sl_pct, self.replay.sl_pct),
                diff(self.records.asa_s, self.replay.asa_s))

    def as_dict(self) -> dict[str, Any]:
        ab, sl, asa = self.errors()
        r, p = self.records, self.replay
        return {"interval": self.start.isoformat(sep=" ", timespec="minutes"),
                "offered": r.offered, "offered_replay": p.offered,
                "abandon_pct": r.abandon_pct, "abandon_pct_replay": p.abandon_pct,
                "abandon_error_pts": ab, "sl_pct": r.sl_pct, "sl_pct_replay": p.sl_pct,
                "sl_error_pts": sl, "asa_s": r.asa_s, "asa_s_replay": p.asa_s,
                "asa_error_s": asa}


@dataclass
class Comparison:
    """The replay beside the records: per interval, per queue, and the span."""

    interval_s: int
    threshold_s: float
    rows: list[IntervalRow]
    total: IntervalRow
    queues: dict[str, IntervalRow] = field(default_factory=dict)

    def within(self, points: float, what: str = "both") -> float:
        """Share of intervals (with calls) whose error is within ``points``:
        abandonment ("abandon"), served within ("sl") or both."""
        rows = [r for r in self.rows if r.records.offered]
        if not rows:
            return math.nan
        ok = 0
        for r in rows:
            ab, sl, _ = r.errors()
            good_ab = ab is not None and abs(ab) <= points
            good_sl = sl is not None and abs(sl) <= points
            ok += {"abandon": good_ab, "sl": good_sl, "both": good_ab and good_sl}[what]
        return ok / len(rows)

    def worst(self, n: int = 5) -> list[IntervalRow]:
        """The intervals with the largest error (abandonment or served within)."""
        def key(r: IntervalRow) -> float:
            ab, sl, _ = r.errors()
            return max(abs(ab or 0.0), abs(sl or 0.0))
        return sorted((r for r in self.rows if r.records.offered), key=key, reverse=True)[:n]

    def summary(self, points: float = 5.0) -> dict[str, Any]:
        ab, sl, asa = self.total.errors()
        rows = [r for r in self.rows if r.records.offered]
        return {
            "records": self.total.as_dict(), "intervals": len(rows),
            "within_points": points,
            "share_within_abandon": self.within(points, "abandon"),
            "share_within_sl": self.within(points, "sl"),
            "share_within_both": self.within(points, "both"),
            "abandon_error_pts": ab, "sl_error_pts": sl, "asa_error_s": asa,
        }


def compare(records: Sequence[CenterRecord], calls: Sequence[CallOutcome], start: datetime,
            interval_s: int = 1800, threshold_s: float = 20.0) -> Comparison:
    """The replay's calls (``calls``, times from ``start``) beside the records."""
    rec_i, rec_q = record_figures(records, start, interval_s, threshold_s)
    run_i, run_q = outcome_figures(calls, interval_s, threshold_s)
    keys = sorted(set(rec_i) | set(run_i))
    rows: list[IntervalRow] = []
    if keys:
        for i in range(keys[0], keys[-1] + 1):
            rows.append(IntervalRow(start + timedelta(seconds=i * interval_s),
                                    rec_i.get(i, Figures()), run_i.get(i, Figures())))
    tot_r, tot_p = Figures(), Figures()
    for r in rows:
        tot_r.merge(r.records)
        tot_p.merge(r.replay)
    queues = {q: IntervalRow(start, rec_q.get(q, Figures()), run_q.get(q, Figures()))
              for q in sorted(set(rec_q) | set(run_q))}
    return Comparison(interval_s, threshold_s, rows, IntervalRow(start, tot_r, tot_p), queues)


def comparison_csv(cmp: Comparison) -> str:
    """Per interval (then the span as ``total``): the records' figures, the
    replay's and the error."""
    import csv
    import io

    buf = io.StringIO()
    rows = [r.as_dict() for r in cmp.rows]
    total = cmp.total.as_dict()
    total["interval"] = "total"
    w = csv.DictWriter(buf, fieldnames=list(total), lineterminator="\n")
    w.writeheader()
    for row in [*rows, total]:
        w.writerow({k: ("" if v is None else round(v, 3) if isinstance(v, float) else v)
                    for k, v in row.items()})
    return buf.getvalue()


def plot_comparison(cmp: Comparison, path: str, title: str = "replay") -> None:
    """A PNG of the comparison (:func:`acd.plot.replay.plot_replay`, which
    raises :class:`acd.plot.PlotUnavailable` without matplotlib)."""
    from acd.plot.replay import ReplayPoint, plot_replay

    points = [ReplayPoint(r.start, r.records.sl_pct, r.replay.sl_pct, r.records.abandon_pct,
                          r.replay.abandon_pct) for r in cmp.rows if r.records.offered]
    plot_replay(points, path, cmp.threshold_s, title)
