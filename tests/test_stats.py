"""Interval statistics: hand-computed scenarios and properties."""

from __future__ import annotations

import json
import math
from enum import Enum
from fractions import Fraction
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.compiled import is_compiled
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    AgentLogin,
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallRecord,
    CallStarted,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    OfferAnswered,
    Outcome,
    StartTimer,
    WriteCallRecord,
)
from acd.core.policy import simple_policy
from acd.core.stats import DEFAULT_SL, ServiceLevel, Statistics

T10 = 36000.0  # 10:00 on the driver's clock; a multiple of 900
M = 60.0  # one minute

S = AgentState


class _Future(Enum):
    CALLBACK_LATER = "callback_later"


FUTURE = cast(Outcome, _Future.CALLBACK_LATER)  # an outcome the module does not know yet
#: compiled (mypyc), a CallRecord holds an Outcome or nothing: an outcome the
#: statistics do not know cannot reach them, so those cases are not run
COMPILED = is_compiled()

_ids = iter(range(10**9))


def rec(queue: str | None, cls: str, outcome: Outcome, queued_at: float, wait: float,
        talk: float | None = None) -> WriteCallRecord:
    """A record as the core writes it; ``queued_at`` is the start for IVR-only calls."""
    answered = outcome is Outcome.ANSWERED
    answered_at = queued_at + wait if answered else None
    talk_s = (talk if talk is not None else 90.0) if answered else None
    ended_at = (answered_at + talk_s) if answered_at is not None and talk_s is not None \
        else queued_at + wait
    return WriteCallRecord(CallRecord(
        call_id=f"c{next(_ids)}", caller="1380000", caller_name="", started_at=queued_at - 5,
        ended_at=ended_at, outcome=outcome, ivr_path=("welcome",), queue=queue,
        queued_at=queued_at if queue is not None else None,
        wait_s=wait if queue is not None else None,
        agent_id="a1" if answered else None, answered_at=answered_at, talk_s=talk_s,
        offers=1 if answered else 0, server="pbx1", customer_class=cls,
    ))


def feed(stats: Statistics, *actions: object) -> None:
    for a in actions:
        stats.on_action(a, 0.0)  # type: ignore[arg-type]


def change(agent: str, old: AgentState, new: AgentState, at: float) -> AgentStateChanged:
    return AgentStateChanged(agent, old, new, at)


# ------------------------------------------------------------------ service level


def two_class_stats() -> Statistics:
    stats = Statistics({"vip": ServiceLevel(10, 0.9), "std": ServiceLevel(20, 0.8)},
                       default_sl=ServiceLevel(30, 0.5))
    A, X = Outcome.ANSWERED, Outcome.ABANDONED
    feed(stats,
         # vip, threshold 10 s: 5 and 10 (== threshold) within, 12 after, one abandon
         rec("billing", "vip", A, T10 + 10, 5, talk=60),
         rec("billing", "vip", A, T10 + 20, 10, talk=120),
         rec("billing", "vip", A, T10 + 30, 12, talk=180),
         rec("billing", "vip", X, T10 + 40, 3),
         # std, threshold 20 s: 15, 0, 19, 1 within, abandon after 40 s
         rec("billing", "std", A, T10 + 50, 15, talk=100),
         rec("billing", "std", A, T10 + 60, 0, talk=100),
         rec("billing", "std", A, T10 + 70, 19, talk=100),
         rec("billing", "std", A, T10 + 80, 1, talk=100),
         rec("billing", "std", X, T10 + 90, 40))
    return stats


def test_service_level_counts_abandons_against_it_per_class() -> None:
    stats = two_class_stats()
    rows = {r.customer_class: r for r in stats.intervals()}
    assert set(rows) == {"vip", "std"}

    vip = rows["vip"]
    assert (vip.start, vip.end, vip.queue) == (T10, T10 + 900, "billing")
    assert (vip.offered, vip.answered, vip.abandoned, vip.other) == (4, 3, 1, 0)
    assert vip.answered_within_sl == 2
    assert (vip.threshold_s, vip.target) == (10, 0.9)
    assert vip.service_level == 0.5  # 2 of 4 offered
    assert vip.sl_answered_only == pytest.approx(2 / 3)  # 2 of 3 answered
    assert vip.sl_met is False
    assert vip.asa_s == 9.0  # (5 + 10 + 12) / 3
    assert vip.abandon_rate == 0.25
    assert vip.longest_wait_s == 12.0
    assert vip.mean_talk_s == 120.0

    std = rows["std"]
    assert (std.offered, std.answered, std.abandoned, std.answered_within_sl) == (5, 4, 1, 4)
    assert std.service_level == 0.8
    assert std.sl_met is True  # exactly on target counts as met
    assert std.sl_answered_only == 1.0
    assert std.asa_s == 8.75  # (15 + 0 + 19 + 1) / 4
    assert std.abandon_rate == 0.2
    assert std.longest_wait_s == 40.0  # an abandoned call's wait counts


def test_totals_over_mixed_classes() -> None:
    stats = two_class_stats()
    tot = stats.totals()
    assert (tot.queue, tot.customer_class, tot.start, tot.end) == (None, None, T10, T10 + 900)
    assert (tot.offered, tot.answered, tot.abandoned, tot.answered_within_sl) == (9, 7, 2, 6)
    assert tot.service_level == pytest.approx(6 / 9)
    assert tot.sl_answered_only == pytest.approx(6 / 7)
    assert tot.asa_s == pytest.approx(62 / 7)
    assert tot.abandon_rate == pytest.approx(2 / 9)
    assert tot.longest_wait_s == 40.0
    # the classes have different targets: no single target to compare against
    assert (tot.threshold_s, tot.target, tot.sl_met) == (None, None, None)

    vip = stats.totals(customer_class="vip")
    assert (vip.offered, vip.service_level, vip.target, vip.sl_met) == (4, 0.5, 0.9, False)
    assert stats.totals(queue="billing").offered == 9
    empty = stats.totals(queue="sales")
    assert (empty.offered, empty.service_level, empty.asa_s, empty.start) == (0, None, None, None)


def test_unknown_class_uses_the_default_service_level() -> None:
    stats = Statistics({"vip": ServiceLevel(10, 0.9)}, default_sl=ServiceLevel(30, 0.5))
    feed(stats,
         rec("billing", "gold", Outcome.ANSWERED, T10, 25),  # 25 <= 30: within
         rec("billing", "", Outcome.ANSWERED, T10, 31),  # no class: default, after 30
         rec("billing", "vip", Outcome.ANSWERED, T10, 25))  # vip: 25 > 10
    rows = {r.customer_class: r for r in stats.intervals()}
    assert (rows["gold"].answered_within_sl, rows["gold"].threshold_s) == (1, 30)
    assert (rows["gold"].service_level, rows["gold"].target, rows["gold"].sl_met) == (
        1.0, 0.5, True)
    assert (rows[""].answered_within_sl, rows[""].sl_met) == (0, False)
    assert rows["vip"].answered_within_sl == 0
    assert stats.service_level_for("nobody") == ServiceLevel(30, 0.5)
    assert Statistics().service_level_for("x") == DEFAULT_SL == ServiceLevel(20, 0.8)


@pytest.mark.skipif(COMPILED, reason="compiled: a CallRecord cannot hold an unknown outcome")
def test_asa_abandon_rate_and_unknown_outcomes() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         rec("sales", "", Outcome.ANSWERED, T10, 10),
         rec("sales", "", Outcome.ANSWERED, T10, 20),
         rec("sales", "", Outcome.ANSWERED, T10, 30),
         rec("sales", "", Outcome.ABANDONED, T10, 50),
         rec("sales", "", Outcome.FALLBACK, T10, 70),  # neither answered nor abandoned
         rec("sales", "", FUTURE, T10, 60))  # nor an outcome added later
    (row,) = stats.intervals()
    assert (row.offered, row.answered, row.abandoned, row.other) == (6, 3, 1, 2)
    assert row.asa_s == 20.0
    assert row.answered_wait_sum_s == 60.0
    assert row.abandon_rate == pytest.approx(1 / 6)
    assert row.answered_within_sl == 2  # 10 and 20 (threshold inclusive)
    assert row.service_level == pytest.approx(2 / 6)
    assert row.longest_wait_s == 70.0  # the fallback call waited too
    assert row.mean_talk_s == 90.0


# ---------------------------------------------------------------------- intervals


def test_interval_alignment_and_a_call_answered_in_the_next_interval() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         # queued 10:14:50, answered 10:15:10: counts in 10:00-10:15, within 20 s
         rec("billing", "", Outcome.ANSWERED, T10 + 14 * M + 50, 20),
         # exactly 10:15:00 belongs to 10:15-10:30
         rec("billing", "", Outcome.ANSWERED, T10 + 15 * M, 25),
         rec("billing", "", Outcome.ABANDONED, T10 + 30 * M - 0.5, 100))
    first, second = stats.intervals()
    assert (first.start, first.end) == (T10, T10 + 900)
    assert (first.offered, first.answered, first.answered_within_sl) == (1, 1, 1)
    assert (second.start, second.end) == (T10 + 900, T10 + 1800)
    assert (second.offered, second.answered, second.abandoned) == (2, 1, 1)
    assert (second.service_level, second.longest_wait_s) == (0.0, 100.0)


def test_other_interval_lengths_align_on_multiples() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8), interval_s=600)
    feed(stats, rec("q", "", Outcome.ANSWERED, 1234.0, 5), rec("q", "", Outcome.ANSWERED, 1199, 5))
    assert [(r.start, r.end) for r in stats.intervals()] == [(600, 1200), (1200, 1800)]
    with pytest.raises(ValueError):
        Statistics({}, ServiceLevel(20, 0.8), interval_s=0)
    with pytest.raises(ValueError):
        ServiceLevel(20, 1.5)


def test_filters_and_combined_rows() -> None:
    stats = Statistics({"vip": ServiceLevel(10, 0.9)}, ServiceLevel(20, 0.8))
    feed(stats,
         rec("billing", "vip", Outcome.ANSWERED, T10, 5),
         rec("billing", "std", Outcome.ANSWERED, T10, 15),
         rec("sales", "vip", Outcome.ABANDONED, T10, 5),
         rec("billing", "std", Outcome.ANSWERED, T10 + 900, 30))
    assert [(r.start, r.queue, r.customer_class) for r in stats.intervals()] == [
        (T10, "billing", "std"), (T10, "billing", "vip"), (T10, "sales", "vip"),
        (T10 + 900, "billing", "std")]
    assert [r.queue for r in stats.intervals(customer_class="vip")] == ["billing", "sales"]
    combined = stats.intervals(queue="billing", combine=True)
    assert [(r.start, r.queue, r.customer_class, r.offered, r.answered_within_sl)
            for r in combined] == [(T10, "billing", None, 2, 2), (T10 + 900, "billing", None, 1, 0)]
    assert combined[0].target is None  # vip and std differ
    assert combined[1].target == 0.8  # only std in that interval


# -------------------------------------------------------------------------- IVR


def test_ivr_only_calls_are_counted_apart() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         rec(None, "", Outcome.IVR, T10 + 2 * M, 30),
         rec(None, "vip", Outcome.IVR, T10 + 20 * M, 30),
         rec(None, "", Outcome.IVR, T10 + 21 * M, 30),
         rec("billing", "", Outcome.ANSWERED, T10 + 3 * M, 5))
    # counted in the interval of started_at (5 s before the times above)
    assert stats.ivr_only() == {T10: 1, T10 + 900: 2}
    assert stats.ivr_only_total() == 3
    assert stats.totals().offered == 1
    assert [(r.start, r.offered) for r in stats.intervals()] == [(T10, 1)]
    assert stats.to_rows("ivr") == [{"start": T10, "end": T10 + 900, "ivr_only": 1},
                                    {"start": T10 + 900, "end": T10 + 1800, "ivr_only": 2}]


# -------------------------------------------------------------------- occupancy


def occupancy_stats() -> Statistics:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         change("a1", S.LOGGED_OUT, S.PAUSED, T10 + 10 * M),
         change("a1", S.PAUSED, S.READY, T10 + 11 * M),
         change("a1", S.READY, S.RESERVED, T10 + 13 * M),
         change("a1", S.RESERVED, S.ON_CALL, T10 + 14 * M),
         change("a1", S.ON_CALL, S.WRAP_UP, T10 + 16 * M),  # 1 min in each interval
         change("a1", S.WRAP_UP, S.PAUSED, T10 + 17 * M),
         change("a1", S.PAUSED, S.READY, T10 + 20 * M),
         change("a1", S.READY, S.LOGGED_OUT, T10 + 25 * M),
         change("a1", S.LOGGED_OUT, S.PAUSED, T10 + 40 * M),
         change("a1", S.PAUSED, S.READY, T10 + 41 * M),
         # a2: first change seen at 10:04 (time before it is unknown)
         change("a2", S.READY, S.RESERVED, T10 + 4 * M),
         change("a2", S.RESERVED, S.ON_CALL, T10 + 5 * M),
         change("a2", S.ON_CALL, S.WRAP_UP, T10 + 20 * M),
         change("a2", S.WRAP_UP, S.READY, T10 + 21 * M),
         StartTimer(("wrap_up", "a2"), 0.0))  # ignored
    return stats


NOW = T10 + 44 * M


def test_occupancy_is_split_at_interval_boundaries() -> None:
    stats = occupancy_stats()
    rows = {(r.start, r.agent_id): r for r in stats.agent_intervals(now=NOW)}
    assert sorted(rows) == [(T10 + k * 900, a) for k in range(3) for a in ("a1", "a2")]

    a1 = rows[T10, "a1"]  # paused 1 min, ready 2, reserved 1, on call 1
    assert (a1.paused_s, a1.ready_s, a1.reserved_s, a1.on_call_s, a1.wrap_up_s) == (
        60, 120, 60, 60, 0)
    assert (a1.logged_in_s, a1.busy_s, a1.available_s, a1.occupancy) == (300, 120, 240, 0.5)

    a1 = rows[T10 + 900, "a1"]  # on call 1, wrap-up 1, paused 3, ready 5, then logged out
    assert (a1.on_call_s, a1.wrap_up_s, a1.paused_s, a1.ready_s) == (60, 60, 180, 300)
    assert (a1.logged_in_s, a1.busy_s, a1.available_s) == (600, 120, 420)
    assert a1.occupancy == pytest.approx(2 / 7)

    a1 = rows[T10 + 1800, "a1"]  # paused 1 min, ready 3 min up to now
    assert (a1.paused_s, a1.ready_s, a1.occupancy) == (60, 180, 0.0)

    a2 = rows[T10, "a2"]
    assert (a2.reserved_s, a2.on_call_s, a2.occupancy) == (60, 600, 1.0)
    a2 = rows[T10 + 900, "a2"]
    assert (a2.on_call_s, a2.wrap_up_s, a2.ready_s, a2.occupancy) == (300, 60, 540, 0.4)
    assert rows[T10 + 1800, "a2"].ready_s == 840

    assert stats.occupancy("a1", now=NOW) == pytest.approx(240 / 840)
    assert stats.occupancy("a2", now=NOW) == pytest.approx(1020 / 2400)
    # all agents: time-weighted, not a mean of the agents' ratios
    assert stats.occupancy(now=NOW) == pytest.approx(float(Fraction(1260, 3240)))
    overall = stats.agent_intervals(now=NOW, combine=True)
    assert [(r.start, r.agent_id, r.busy_s, r.available_s) for r in overall] == [
        (T10, None, 780, 900), (T10 + 900, None, 480, 1320), (T10 + 1800, None, 0, 1020)]
    tot = stats.agent_totals(now=NOW)
    assert (tot.start, tot.end, tot.busy_s, tot.available_s) == (T10, T10 + 2700, 1260, 3240)


def test_current_state_counts_only_when_asked_with_now() -> None:
    stats = occupancy_stats()
    # closed spans only: a1 has paused 1 min in 10:30 and a2 nothing after 10:21
    a1 = stats.agent_intervals("a1")
    assert [(r.start, r.available_s, r.occupancy) for r in a1] == [
        (T10, 240, 0.5), (T10 + 900, 420, pytest.approx(2 / 7)), (T10 + 1800, 0, None)]
    assert stats.occupancy("a1") == pytest.approx(240 / 660)
    assert stats.occupancy("a1", now=NOW) == pytest.approx(240 / 840)
    assert stats.occupancy("a1") == pytest.approx(240 / 660)  # reading changed nothing
    assert stats.occupancy("nobody", now=NOW) is None
    # an agent currently logged out adds nothing
    feed(stats, change("a1", S.READY, S.LOGGED_OUT, NOW))
    assert stats.occupancy("a1", now=NOW + 3600) == pytest.approx(240 / 840)


def test_agent_time_does_not_go_backwards() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         change("a1", S.LOGGED_OUT, S.READY, T10 + 100),
         change("a1", S.READY, S.ON_CALL, T10 + 50),  # clock stepped back: no time
         change("a1", S.ON_CALL, S.WRAP_UP, T10 + 160))
    (row,) = stats.agent_intervals()
    assert (row.ready_s, row.on_call_s) == (0, 60)


# ------------------------------------------------------------------------ prune


def test_prune_drops_whole_old_intervals_and_late_data() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         rec("q", "", Outcome.ANSWERED, T10 + 1, 5),
         rec("q", "", Outcome.ANSWERED, T10 + 901, 5),
         rec("q", "", Outcome.ANSWERED, T10 + 1801, 5),
         rec(None, "", Outcome.IVR, T10 + 10, 5),
         change("a1", S.LOGGED_OUT, S.READY, T10 + 100))
    stats.prune(T10 + 900)
    assert [r.start for r in stats.intervals()] == [T10 + 900, T10 + 1800]
    assert stats.ivr_only() == {}
    stats.prune(T10 + 1000)  # mid-interval: 10:15-10:30 is not over, kept
    assert [r.start for r in stats.intervals()] == [T10 + 900, T10 + 1800]
    stats.prune(0)  # never goes back
    assert stats.totals().offered == 2

    # a late record for a pruned interval is not rebuilt into a partial interval
    feed(stats, rec("q", "", Outcome.ABANDONED, T10 + 5, 2000), rec(None, "", Outcome.IVR, T10, 1))
    assert stats.dropped == 2
    assert stats.totals().offered == 2
    # a1 has been ready since 10:01:40; only time from 10:15 is kept
    feed(stats, change("a1", S.READY, S.ON_CALL, T10 + 1000))
    # (the 10:30 interval also has a row for a1: it answered a call queued then)
    (row,) = [r for r in stats.agent_intervals() if r.logged_in_s]
    assert [(r.start, r.answered) for r in stats.agent_intervals()] == [
        (T10 + 900, 1), (T10 + 1800, 1)]
    assert (row.start, row.ready_s) == (T10 + 900, 100)
    assert stats.agent_totals(now=T10 + 1900).on_call_s == 900


# ------------------------------------------------------------------------- rows


def test_rows_are_plain_and_uniform() -> None:
    stats = two_class_stats()
    feed(stats, change("a1", S.LOGGED_OUT, S.READY, T10),
         change("a1", S.READY, S.ON_CALL, T10 + 60))
    rows = stats.to_rows()
    assert len(rows) == 2
    assert rows[0].keys() == rows[1].keys()
    assert {"start", "queue", "customer_class", "offered", "service_level", "sl_met",
            "sl_answered_only", "asa_s", "abandon_rate", "longest_wait_s"} <= rows[0].keys()
    (agent,) = stats.to_rows("agents", now=T10 + 120)
    assert (agent["agent_id"], agent["ready_s"], agent["on_call_s"], agent["occupancy"]) == (
        "a1", 60, 60, 0.5)
    json.dumps([stats.to_rows(), stats.to_rows("agents"), stats.to_rows("ivr")])
    with pytest.raises(ValueError):
        stats.to_rows("calls")  # type: ignore[arg-type]


# ------------------------------------------------------------- with the core


def test_fed_by_the_core() -> None:
    cc = ContactCenter(CoreConfig(policy=simple_policy({"billing": 20.0}),
                                  agents=agents_for_queues({"a1": ("1001", ("billing",))})))
    stats = Statistics({}, ServiceLevel(20, 0.8))
    offers: list[ConnectCall] = []

    def drive(event: object, now: float) -> None:
        for action in cc.handle(event, now):  # type: ignore[arg-type]
            stats.on_action(action, now)
            if isinstance(action, ConnectCall):
                offers.append(action)

    drive(AgentLogin("a1"), T10)
    drive(CallStarted("c1", "1380"), T10 + 800)
    drive(CallQueued("c1", "billing"), T10 + 810)
    drive(OfferAnswered("c1", offers[-1].offer_id), T10 + 815)
    drive(ConversationEnded("c1"), T10 + 1000)
    stats.on_action(CancelTimer(("x", "y")), T10 + 1000)
    (row,) = stats.intervals()
    assert (row.start, row.offered, row.answered, row.asa_s, row.mean_talk_s) == (
        T10, 1, 1, 5.0, 185.0)
    # ready 10:00-10:13:30, reserved 5 s, on call 85 s then 100 s, wrap-up to now
    first, second = stats.agent_intervals(now=T10 + 1005)
    assert (first.ready_s, first.reserved_s, first.on_call_s) == (810, 5, 85)
    assert (second.on_call_s, second.wrap_up_s) == (100, 5)


# ------------------------------------------------------------------- properties

_outcomes = st.sampled_from([*Outcome] if COMPILED else [*Outcome, FUTURE])
_records = st.lists(st.builds(
    rec,
    queue=st.sampled_from([None, "q1", "q2"]),
    cls=st.sampled_from(["", "vip", "std", "odd"]),
    outcome=_outcomes,
    queued_at=st.floats(0, 20_000, allow_nan=False),
    wait=st.floats(0, 600, allow_nan=False),
    talk=st.floats(0, 600, allow_nan=False),
), max_size=60)


def _check_row_bounds(r: object) -> None:
    from acd.core.stats import IntervalStats
    assert isinstance(r, IntervalStats)
    assert r.offered == r.answered + r.abandoned + r.other
    assert 0 <= r.answered_within_sl <= r.answered
    for ratio in (r.service_level, r.sl_answered_only, r.abandon_rate):
        assert ratio is None or 0.0 <= ratio <= 1.0
    assert (r.service_level is None) == (r.offered == 0)


@settings(max_examples=200, deadline=None)
@given(_records, st.sampled_from([None, "q1", "q2"]), st.sampled_from([None, "vip", "odd"]))
def test_totals_are_the_sum_of_intervals(records: list[WriteCallRecord], queue: str | None,
                                         cls: str | None) -> None:
    stats = Statistics({"vip": ServiceLevel(10, 0.9), "std": ServiceLevel(30, 0.7)},
                       ServiceLevel(20, 0.8))
    feed(stats, *records)
    for combine in (False, True):
        rows = stats.intervals(queue, cls, combine=combine)
        tot = stats.totals(queue, cls)
        for field in ("offered", "answered", "abandoned", "other", "answered_within_sl"):
            assert getattr(tot, field) == sum(getattr(r, field) for r in rows)
        assert tot.answered_wait_sum_s == pytest.approx(sum(r.answered_wait_sum_s for r in rows))
        assert tot.talk_sum_s == pytest.approx(sum(r.talk_sum_s for r in rows))
        waits = [r.longest_wait_s for r in rows if r.longest_wait_s is not None]
        assert tot.longest_wait_s == (max(waits) if waits else None)
        for r in [*rows, tot]:
            _check_row_bounds(r)
        for r in rows:
            assert r.start is not None and r.end is not None
            assert r.start % 900 == 0 and r.end - r.start == 900
    queued = [r.record for r in records if r.record.queue is not None]
    assert stats.totals().offered == len(queued)
    assert stats.ivr_only_total() == len(records) - len(queued)
    assert stats.totals().answered == sum(r.outcome is Outcome.ANSWERED for r in queued)
    assert stats.totals().abandoned == sum(r.outcome is Outcome.ABANDONED for r in queued)


_NEXT = [s for s in AgentState]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a1", "a2"]), st.sampled_from(_NEXT),
                          st.floats(0, 3000, allow_nan=False)), max_size=40),
       st.floats(0, 3000, allow_nan=False))
def test_agent_time_is_conserved(steps: list[tuple[str, AgentState, float]],
                                 tail: float) -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    state: dict[str, tuple[AgentState, float]] = {}
    t = T10
    expected = {"a1": 0.0, "a2": 0.0}
    for agent, new, dt in steps:
        t += dt
        old, since = state.get(agent, (AgentState.LOGGED_OUT, t))
        if old is not AgentState.LOGGED_OUT:
            expected[agent] += t - since
        stats.on_action(change(agent, old, new, t), t)
        state[agent] = (new, t)
    now = t + tail
    for agent, (st_, since) in state.items():
        if st_ is not AgentState.LOGGED_OUT:
            expected[agent] += now - since
    rows = stats.agent_intervals(now=now)
    for r in rows:
        assert r.logged_in_s <= 900 + 1e-6
        assert r.occupancy is None or 0.0 <= r.occupancy <= 1.0
    for agent in ("a1", "a2"):
        got = sum(r.logged_in_s for r in rows if r.agent_id == agent)
        assert math.isclose(got, expected[agent], rel_tol=1e-9, abs_tol=1e-6)
        assert math.isclose(stats.agent_totals(agent, now=now).logged_in_s, got,
                            rel_tol=1e-9, abs_tol=1e-6)
    both = stats.agent_totals(now=now)
    assert math.isclose(both.busy_s, sum(r.busy_s for r in rows), rel_tol=1e-9, abs_tol=1e-6)


# ------------------------------------------------- report extensions (issue 15)


def test_short_abandons_are_counted_apart_and_out_of_sl_and_abandon_rate() -> None:
    A, X = Outcome.ANSWERED, Outcome.ABANDONED
    calls = (rec("q", "", A, T10 + 1, 5), rec("q", "", A, T10 + 2, 30),
             rec("q", "", X, T10 + 3, 4.9),  # short: below 5 s
             rec("q", "", X, T10 + 4, 5.0),  # 5 s is not below 5 s: a real abandon
             rec("q", "", X, T10 + 5, 60))
    stats = Statistics({}, ServiceLevel(20, 0.8), short_abandon_s=5)
    feed(stats, *calls)
    t = stats.totals()
    assert (t.offered, t.answered, t.abandoned, t.short_abandoned, t.sl_offered) == (5, 2, 2, 1, 4)
    assert t.service_level == 0.25  # 1 within 20 s of 4 (the short abandon left out)
    assert t.abandon_rate == 0.5  # 2 of 4
    assert t.longest_wait_s == 60
    # off (the default): every abandon counts, as before
    off = Statistics({}, ServiceLevel(20, 0.8))
    feed(off, *calls)
    t = off.totals()
    assert (t.abandoned, t.short_abandoned, t.sl_offered, t.service_level) == (3, 0, 5, 0.2)
    with pytest.raises(ValueError, match="short_abandon_s"):
        Statistics(short_abandon_s=-1)


def answered(agent: str, queue: str, queued_at: float, wait: float, talk: float,
             first_queue: str | None = None, cls: str = "") -> WriteCallRecord:
    a = rec(queue, cls, Outcome.ANSWERED, queued_at, wait, talk=talk)
    a.record.agent_id = agent
    a.record.first_queue = first_queue
    return a


def test_wrap_up_after_a_call_goes_to_its_interval_queue_and_agent() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    call = answered("a1", "q", T10 + 890, 5, 100)  # queued 10:14:50: interval 10:00
    end = T10 + 995
    feed(stats,
         change("a1", S.LOGGED_OUT, S.READY, T10),
         change("a1", S.READY, S.RESERVED, T10 + 893),
         change("a1", S.RESERVED, S.ON_CALL, T10 + 895),
         change("a1", S.ON_CALL, S.WRAP_UP, end),  # the core's order: change, record, ...
         call,
         change("a1", S.WRAP_UP, S.READY, end + 30),
         # the next call: no wrap-up at all (ready at once, same instant)
         change("a1", S.READY, S.ON_CALL, end + 40))
    second = answered("a1", "q", end + 38, 2, 50)
    feed(stats, change("a1", S.ON_CALL, S.WRAP_UP, end + 90), second,
         change("a1", S.WRAP_UP, S.READY, end + 90))
    rows = stats.intervals()
    assert [(r.start, r.answered, r.talk_sum_s, r.wrap_sum_s, r.aht_s) for r in rows] == [
        (T10, 1, 100, 30, 130), (T10 + 900, 1, 50, 0, 50)]
    a = {r.start: r for r in stats.agent_intervals(now=end + 100)}
    assert (a[T10].answered, a[T10].talk_s, a[T10].wrap_s, a[T10].aht_s) == (1, 100, 30, 130)
    assert (a[T10 + 900].answered, a[T10 + 900].wrap_s) == (1, 0)
    tot = stats.agent_totals("a1", now=end + 100)
    assert (tot.answered, tot.talk_s, tot.wrap_s, tot.aht_s) == (2, 150, 30, 90)
    # a wrap-up still running counts nothing yet
    feed(stats, change("a1", S.READY, S.ON_CALL, end + 200),
         change("a1", S.ON_CALL, S.WRAP_UP, end + 260), answered("a1", "q", end + 199, 1, 60))
    assert stats.agent_totals("a1").wrap_s == 30


def test_transfers_utilisation_and_paused_time() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    feed(stats,
         answered("a1", "tech", T10 + 10, 50, 60, first_queue="billing"),
         answered("a1", "tech", T10 + 20, 5, 60),
         change("a1", S.LOGGED_OUT, S.PAUSED, T10),
         change("a1", S.PAUSED, S.READY, T10 + 100),
         change("a1", S.READY, S.ON_CALL, T10 + 400),
         change("a1", S.ON_CALL, S.WRAP_UP, T10 + 700),
         change("a1", S.WRAP_UP, S.LOGGED_OUT, T10 + 800))
    t = stats.totals(queue="tech")
    assert (t.offered, t.transferred) == (2, 1)
    a = stats.agent_totals("a1", now=T10 + 5000)  # logged out: nothing more counts
    assert (a.paused_s, a.logged_in_s, a.busy_s, a.available_s) == (100, 800, 400, 700)
    assert a.occupancy == pytest.approx(400 / 700)
    assert a.utilisation == 0.5
    assert stats.queues() == ["tech"] and stats.agents() == ["a1"]


def test_ivr_outcomes_by_last_node_and_reason() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    for path, reason, start in ((("menu", "operator"), "transfer:10086", T10),
                                (("menu", "operator"), "transfer:95555", T10 + 60),
                                (("menu", "balance"), "hangup", T10 + 100),
                                (("menu",), "caller-hangup", T10 + 950)):
        w = rec(None, "", Outcome.IVR, start + 5, 0)
        w.record.ivr_path = path
        w.record.ivr_end = reason
        w.record.ended_at = start + 30
        feed(stats, w)
    rows = stats.ivr_outcomes()
    assert [(r.start, r.node, r.reason, r.calls, r.transferred, r.mean_ivr_s) for r in rows] == [
        (T10, "balance", "hangup", 1, 0, 30), (T10, "operator", "transfer", 2, 2, 30),
        (T10 + 900, "menu", "caller-hangup", 1, 0, 30)]
    assert [(r.start, r.calls, r.transferred) for r in stats.ivr_outcomes(combine=True)] == [
        (T10, 3, 2), (T10 + 900, 1, 0)]
    assert {(r.node, r.reason): r.calls for r in stats.ivr_outcome_totals()} == {
        ("balance", "hangup"): 1, ("operator", "transfer"): 2, ("menu", "caller-hangup"): 1}
    assert stats.ivr_only_total() == 4  # the old view still counts them


def _zone(name: str):  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    from acd.reports.calls import zone_offset

    return zone_offset(ZoneInfo(name))


def test_days_and_weeks_align_on_local_midnight_and_monday() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    sh = ZoneInfo("Asia/Shanghai")
    monday = dt.datetime(2026, 11, 23, tzinfo=sh).timestamp()  # a Monday, 00:00 in Shanghai
    day = Statistics({}, interval_s=86400, utc_offset=_zone("Asia/Shanghai"))
    week = Statistics({}, interval_s=7 * 86400, utc_offset=_zone("Asia/Shanghai"))
    for s in (day, week):
        feed(s, rec("q", "", Outcome.ABANDONED, monday + 60, 1),  # Mon 00:01
             rec("q", "", Outcome.ABANDONED, monday - 60, 1),  # Sun 23:59: the day before
             rec("q", "", Outcome.ABANDONED, monday + 6 * 86400 + 3600, 1))  # Sun 01:00
    assert [(r.start, r.offered) for r in day.intervals()] == [
        (monday - 86400, 1), (monday, 1), (monday + 6 * 86400, 1)]
    assert [(r.start, r.end, r.offered) for r in week.intervals()] == [
        (monday - 7 * 86400, monday, 1), (monday, monday + 7 * 86400, 2)]
    # 15 minutes in a zone with a half-hour offset: aligned on its quarters
    q = Statistics({}, interval_s=900, utc_offset=_zone("Asia/Kolkata"))
    t = dt.datetime(2026, 11, 23, 10, 7, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()
    feed(q, rec("q", "", Outcome.ABANDONED, t, 1))
    assert q.intervals()[0].start == t - 7 * 60


def test_a_dst_day_is_23_hours_long_and_agent_time_splits_at_local_midnight() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    ldn = ZoneInfo("Europe/London")
    sun = dt.datetime(2026, 3, 29, tzinfo=ldn).timestamp()  # clocks go forward at 01:00
    mon = dt.datetime(2026, 3, 30, tzinfo=ldn).timestamp()
    assert mon - sun == 23 * 3600
    stats = Statistics({}, interval_s=86400, utc_offset=_zone("Europe/London"))
    feed(stats, rec("q", "", Outcome.ABANDONED, sun + 2 * 3600, 1),
         change("a1", S.LOGGED_OUT, S.READY, sun - 3600),  # Sat 23:00 (UTC+0)
         change("a1", S.READY, S.PAUSED, mon + 7200))  # Mon 02:00 (UTC+1)
    (r,) = stats.intervals()
    assert (r.start, r.end) == (sun, mon)
    rows = stats.agent_intervals()
    assert [(a.start, a.ready_s) for a in rows] == [
        (sun - 86400, 3600), (sun, 23 * 3600), (mon, 7200)]
    # 15-minute intervals across the change: 01:00 local does not exist, 02:00 follows 00:45
    q = Statistics({}, interval_s=900, utc_offset=_zone("Europe/London"))
    feed(q, change("a1", S.LOGGED_OUT, S.READY, sun + 3600 - 600),
         change("a1", S.READY, S.PAUSED, sun + 3600 + 600))
    starts = [(a.start, a.ready_s) for a in q.agent_intervals()]
    assert starts == [(sun + 2700, 600), (sun + 3600, 600)]
    assert dt.datetime.fromtimestamp(sun + 3600, ldn).strftime("%H:%M") == "02:00"


# ------------------------------------------------ day_start, caches, counters


def test_day_start_is_the_first_instant_of_the_local_day_across_midnight_dst() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    hav = ZoneInfo("America/Havana")
    day = Statistics({}, interval_s=86400, utc_offset=_zone("America/Havana"))
    # 2026-11-01: clocks go back at 01:00 to 00:00, so midnight happens twice;
    # the day starts at the first one (00:00-04:00 = 04:00 UTC), as its interval
    first = dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC).timestamp()
    assert dt.datetime.fromtimestamp(first, hav).isoformat() == "2026-11-01T00:00:00-04:00"
    for t in (first, first + 1800, first + 3600, first + 3 * 3600, first + 20 * 3600):
        assert day.day_start(t) == first
        assert day.start_of(day.index_of(t)) == first
    assert day.day_start(first - 1) == first - 24 * 3600  # Oct 31 (UTC-4 all day)
    # 2026-03-08: clocks go forward at 00:00 to 01:00: midnight does not exist,
    # the day starts at 01:00-04:00 (05:00 UTC), the gap's end
    gap = dt.datetime(2026, 3, 8, 5, tzinfo=dt.UTC).timestamp()
    assert dt.datetime.fromtimestamp(gap, hav).isoformat() == "2026-03-08T01:00:00-04:00"
    for t in (gap, gap + 60, gap + 12 * 3600):
        assert day.day_start(t) == gap
        assert day.start_of(day.index_of(t)) == gap
    assert day.day_start(gap - 1) == gap - 24 * 3600  # Mar 7 00:00-05:00
    # "today" since day_start counts a call of the first hour of Nov 1
    q = Statistics({}, interval_s=900, utc_offset=_zone("America/Havana"))
    feed(q, rec("q", "", Outcome.ABANDONED, first + 600, 1),  # 00:10-04:00
         rec("q", "", Outcome.ABANDONED, first - 600, 1))  # Oct 31 23:50
    now = first + 10 * 3600
    assert q.totals(since=q.day_start(now)).offered == 1
    assert [r.start for r in q.intervals(since=q.day_start(now))] == [first]


def test_interval_starts_are_cached_and_since_reads_skip_older_intervals() -> None:
    import datetime as dt

    calls = 0
    shanghai = _zone("Asia/Shanghai")

    def offset(t: float) -> float:
        nonlocal calls
        calls += 1
        return shanghai(t)

    stats = Statistics({}, interval_s=900, utc_offset=offset)
    midnight = dt.datetime(2026, 11, 23, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
    for day in range(5):
        for i in range(0, 96, 4):
            feed(stats, rec("q", "vip" if day == 4 else "std", Outcome.ANSWERED,
                            midnight + (day - 4) * 86400 + i * 900 + 10, 5))
    assert len(stats.intervals()) == 5 * 24
    calls = 0
    assert len(stats.intervals()) == 5 * 24
    assert calls == 0  # every start came from the cache
    today = stats.day_start(midnight + 3600)
    assert today == midnight
    calls = 0
    rows = stats.intervals(since=today)
    assert [r.customer_class for r in rows] == ["vip"] * 24
    assert stats.queue_classes(since=today) == {"q": {"vip"}}
    assert stats.classes(since=today) == ["vip"] and stats.classes() == ["std", "vip"]
    assert stats.totals(since=today).offered == 24
    assert calls == 4  # one look-up per read with `since`, none per older interval
    stats.prune(today)
    assert stats.queue_classes() == {"q": {"vip"}}
    assert stats.start_of(stats.index_of(today)) == today


def test_ended_totals_never_go_down_when_intervals_are_pruned() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8), short_abandon_s=5)
    feed(stats,
         rec("q", "", Outcome.ANSWERED, T10 + 1, 5),
         rec("q", "", Outcome.ABANDONED, T10 + 2, 2),  # short: still an abandoned call
         rec("r", "", Outcome.FALLBACK, T10 + 3, 60),
         rec(None, "", Outcome.IVR, T10 + 4, 0),
         rec("q", "", Outcome.ANSWERED, T10 + 901, 5))
    before = stats.ended_totals()
    assert before == {"q": (2, 1, 0), "r": (0, 0, 1)}
    assert stats.ivr_ended_total() == 1
    stats.prune(T10 + 900)
    assert stats.totals().offered == 1
    assert stats.ended_totals() == before and stats.ivr_ended_total() == 1
    # a late record for a pruned interval is dropped from the intervals, not from the counts
    feed(stats, rec("q", "", Outcome.ABANDONED, T10 + 5, 60), rec(None, "", Outcome.IVR, T10, 0))
    assert stats.dropped == 2
    assert stats.ended_totals()["q"] == (2, 2, 0) and stats.ivr_ended_total() == 2


def test_aht_and_mean_talk_count_the_calls_with_a_known_talk_time() -> None:
    stats = Statistics({}, ServiceLevel(20, 0.8))
    known = answered("a1", "q", T10 + 10, 5, 100)
    unknown = answered("a1", "q", T10 + 300, 5, 100)
    unknown.record.talk_s = None  # an older row
    feed(stats, change("a1", S.LOGGED_OUT, S.READY, T10),
         change("a1", S.READY, S.ON_CALL, T10 + 15), change("a1", S.ON_CALL, S.WRAP_UP, T10 + 115),
         known, change("a1", S.WRAP_UP, S.READY, T10 + 135),
         change("a1", S.READY, S.ON_CALL, T10 + 305), change("a1", S.ON_CALL, S.WRAP_UP, T10 + 405),
         unknown, change("a1", S.WRAP_UP, S.READY, T10 + 445))
    t = stats.totals()
    # the call without talk time adds neither talk, wrap-up nor a denominator
    assert (t.answered, t.talk_sum_s, t.wrap_sum_s) == (2, 100, 20)
    assert (t.mean_talk_s, t.aht_s, t.asa_s) == (100, 120, 5)
    a = stats.agent_totals("a1")
    assert (a.answered, a.talk_s, a.wrap_s, a.aht_s) == (2, 100, 20, 120)
