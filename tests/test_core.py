"""The sans-I/O core: agent and call state machines and FIFO routing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.core.center import ContactCenter, agents_for_queues
from acd.core.errors import CoreError, DuplicateCall, UnknownSubject
from acd.core.fsm import IllegalTransition
from acd.core.model import (
    AGENT_TABLE,
    AgentHungUp,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    AgentState,
    AgentStateChanged,
    AgentTrigger,
    CallerGone,
    CallQueued,
    CallStarted,
    CallState,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    Outcome,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.policy import simple_policy


def make(n_agents: int = 2, queues: tuple[str, ...] = ("billing",), **kw: float) -> ContactCenter:
    cfg = CoreConfig(
        policy=simple_policy({q: 20.0 for q in queues}),
        agents=agents_for_queues({f"a{i}": (f"10{i:02d}", queues) for i in range(n_agents)}),
        **kw,  # type: ignore[arg-type]
    )
    return ContactCenter(cfg)


def connects(actions: list[object]) -> list[ConnectCall]:
    return [a for a in actions if isinstance(a, ConnectCall)]


def records(actions: list[object]) -> list[WriteCallRecord]:
    return [a for a in actions if isinstance(a, WriteCallRecord)]


def start(cc: ContactCenter, cid: str, t: float, queue: str = "billing") -> list[object]:
    cc.handle(CallStarted(cid, "138" + cid), t)
    return list(cc.handle(CallQueued(cid, queue, ("welcome", "menu")), t))


def test_longest_idle_agent_gets_the_call_and_record_is_complete() -> None:
    cc = make(2)
    cc.handle(AgentLogin("a0"), 0.0)
    cc.handle(AgentLogin("a1"), 1.0)
    [offer] = connects(start(cc, "c1", 10.0))
    assert offer.agent_id == "a0" and offer.extension == "1000"
    assert cc.agent("a0").state is AgentState.RESERVED
    cc.handle(OfferAnswered("c1", offer.offer_id), 12.0)
    assert cc.agent("a0").state is AgentState.ON_CALL
    out = cc.handle(ConversationEnded("c1", "agent"), 42.0)
    [rec] = records(out)
    r = rec.record
    assert (r.outcome, r.agent_id, r.queue) == (Outcome.ANSWERED, "a0", "billing")
    assert r.wait_s == pytest.approx(2.0) and r.talk_s == pytest.approx(30.0)
    assert r.ivr_path == ("welcome", "menu")
    assert cc.agent("a0").state is AgentState.WRAP_UP
    assert StartTimer(("wrap_up", "a0"), 47.0) in out
    cc.handle(TimerFired(("wrap_up", "a0")), 47.0)
    assert cc.agent("a0").state is AgentState.READY
    assert cc.call("c1") is None


def test_fifo_among_waiting_calls() -> None:
    cc = make(1)
    for i, t in enumerate((1.0, 2.0, 3.0)):
        assert connects(start(cc, f"c{i}", t)) == []
    assert cc.waiting("billing") == ["c0", "c1", "c2"]
    [offer] = connects(cc.handle(AgentLogin("a0"), 5.0))
    assert offer.call_id == "c0"


def test_ring_no_answer_pauses_agent_and_keeps_the_callers_place() -> None:
    cc = make(2, rona_pause_s=30.0)
    cc.handle(AgentLogin("a0"), 0.0)
    [o1] = connects(start(cc, "c1", 1.0))
    start(cc, "c2", 2.0)  # waits behind c1
    out = cc.handle(OfferFailed("c1", o1.offer_id, "NOANSWER"), 21.0)
    assert cc.agent("a0").state is AgentState.PAUSED
    assert "NOANSWER" in cc.agent("a0").reason
    assert StartTimer(("ready", "a0"), 51.0) in out
    assert cc.waiting("billing") == ["c1", "c2"]  # c1 is still first
    [o2] = connects(cc.handle(AgentLogin("a1"), 22.0))
    assert o2.call_id == "c1" and o2.agent_id == "a1"
    # a stale result for the first offer changes nothing
    assert cc.handle(OfferAnswered("c1", o1.offer_id), 23.0) == []
    assert cc.agent("a1").state is AgentState.RESERVED


def test_caller_hangs_up_while_agent_rings() -> None:
    cc = make(1)
    cc.handle(AgentLogin("a0"), 0.0)
    [_o] = connects(start(cc, "c1", 1.0))
    out = cc.handle(CallerGone("c1"), 4.0)
    [rec] = records(out)
    assert rec.record.outcome is Outcome.ABANDONED and rec.record.agent_id is None
    assert rec.record.wait_s == pytest.approx(3.0)
    assert cc.agent("a0").state is AgentState.READY


def test_abandon_in_queue_and_ivr_hangup() -> None:
    cc = make(0)
    start(cc, "c1", 1.0)
    [rec] = records(cc.handle(CallerGone("c1"), 9.0))
    assert rec.record.outcome is Outcome.ABANDONED
    cc.handle(CallStarted("c2", "139"), 10.0)
    [rec2] = records(cc.handle(IvrEnded("c2", ("welcome",), "caller-hangup"), 12.0))
    assert rec2.record.outcome is Outcome.IVR and rec2.record.queue is None


def test_caller_gone_outcome_follows_the_calls_state() -> None:
    cc = make(1)
    cc.handle(AgentLogin("a0"), 0.0)
    # in the IVR: ended there, with the path the engine reports
    cc.handle(CallStarted("ivr", "131"), 1.0)
    [rec] = records(cc.handle(CallerGone("ivr", 16, ("welcome", "menu")), 2.0))
    assert rec.record.outcome is Outcome.IVR and rec.record.ivr_path == ("welcome", "menu")
    # ringing: abandoned, the agent released (not paused)
    [offer] = connects(start(cc, "ring", 3.0))
    [rec] = records(cc.handle(CallerGone("ring", 16, ("ignored",)), 5.0))
    assert rec.record.outcome is Outcome.ABANDONED and rec.record.ivr_path == ("welcome", "menu")
    assert cc.agent("a0").state is AgentState.READY
    # connected: the conversation ends, by the caller
    [offer] = connects(start(cc, "talk", 6.0))
    cc.handle(OfferAnswered("talk", offer.offer_id), 7.0)
    [rec] = records(cc.handle(CallerGone("talk", 16), 20.0))
    assert rec.record.outcome is Outcome.ANSWERED and rec.record.talk_s == pytest.approx(13.0)
    assert cc.agent("a0").state is AgentState.WRAP_UP
    # gone already (AGI and AMI both saw the hang-up): nothing, not an error
    assert cc.handle(CallerGone("talk", 16), 21.0) == []
    assert cc.handle(CallerGone("never-seen", 0), 21.0) == []
    # waiting: abandoned
    start(cc, "wait", 22.0)
    [rec] = records(cc.handle(CallerGone("wait", 0), 30.0))
    assert rec.record.outcome is Outcome.ABANDONED and rec.record.wait_s == pytest.approx(8.0)


def test_agent_hung_up_ends_only_a_connected_conversation() -> None:
    cc = make(1, wrap_up_s=0.0)
    cc.handle(AgentLogin("a0"), 0.0)
    [offer] = connects(start(cc, "c1", 1.0))
    assert cc.handle(AgentHungUp("c1"), 2.0) == []  # ringing: the offer's result tells
    assert cc.call("c1") is not None and cc.call("c1").state is CallState.OFFERED
    cc.handle(OfferAnswered("c1", offer.offer_id), 3.0)
    [rec] = records(cc.handle(AgentHungUp("c1"), 9.0))
    assert rec.record.outcome is Outcome.ANSWERED and rec.record.talk_s == pytest.approx(6.0)
    assert cc.agent("a0").state is AgentState.READY
    assert cc.handle(AgentHungUp("c1"), 10.0) == []  # gone: nothing


def test_a_stale_offer_failure_changes_nothing() -> None:
    cc = make(2)
    cc.handle(AgentLogin("a0"), 0.0)
    [o1] = connects(start(cc, "c1", 1.0))
    cc.handle(OfferFailed("c1", o1.offer_id, "NOANSWER"), 11.0)  # DialEnd first
    assert cc.agent("a0").state is AgentState.PAUSED
    # the dialplan's requeue names the same offer: already failed, ignored
    assert cc.handle(OfferFailed("c1", o1.offer_id, "NOANSWER"), 11.5) == []
    [o2] = connects(cc.handle(AgentLogin("a1"), 12.0))
    assert cc.handle(OfferFailed("c1", o1.offer_id, "NOANSWER"), 12.5) == []
    assert cc.call("c1") is not None and cc.call("c1").offer_id == o2.offer_id
    assert cc.agent("a1").state is AgentState.RESERVED


def test_core_errors_share_one_base_class() -> None:
    assert issubclass(IllegalTransition, CoreError)
    assert issubclass(UnknownSubject, CoreError) and issubclass(DuplicateCall, CoreError)


def test_illegal_transitions_raise() -> None:
    cc = make(1)
    with pytest.raises(IllegalTransition, match="'ready' is not allowed in state 'logged_out'"):
        cc.handle(AgentReady("a0"), 0.0)
    cc.handle(AgentLogin("a0"), 0.0)
    [_o] = connects(start(cc, "c1", 1.0))
    with pytest.raises(IllegalTransition, match="'ready' is not allowed in state 'reserved'"):
        cc.handle(AgentReady("a0"), 2.0)  # no pause pending: nothing to take back
    with pytest.raises(UnknownSubject):
        cc.handle(AgentPause("nobody"), 2.0)
    with pytest.raises(DuplicateCall):
        cc.handle(CallStarted("c1", "x"), 2.0)
    with pytest.raises(UnknownSubject, match="unknown queue"):
        cc.handle(CallStarted("c9", "x"), 2.0) or cc.handle(CallQueued("c9", "nope"), 2.0)


def test_logout_on_a_call_waits_for_the_call_to_end() -> None:
    cc = make(1, wrap_up_s=5.0)
    cc.handle(AgentLogin("a0"), 0.0)
    [offer] = connects(start(cc, "c1", 1.0))
    assert cc.handle(AgentLogout("a0"), 2.0) == []  # ringing: nothing changes yet
    agent = cc.agent("a0")
    assert agent.state is AgentState.RESERVED and agent.logout_after_call
    cc.handle(OfferAnswered("c1", offer.offer_id), 3.0)
    assert agent.state is AgentState.ON_CALL
    assert connects(start(cc, "c2", 4.0)) == []  # c2 waits
    out = cc.handle(ConversationEnded("c1"), 10.0)
    # the call is recorded, the agent goes out through wrap-up, no wrap-up timer,
    # and the waiting call is not offered to it
    assert [(a.old, a.new) for a in out if isinstance(a, AgentStateChanged)] == [
        (AgentState.ON_CALL, AgentState.WRAP_UP), (AgentState.WRAP_UP, AgentState.LOGGED_OUT)]
    assert records(out) and connects(out) == []
    assert not any(isinstance(a, StartTimer) for a in out)
    assert agent.state is AgentState.LOGGED_OUT and not agent.logout_after_call
    assert cc.call("c2") is not None and cc.call("c2").state is CallState.WAITING


def test_logout_while_ringing_then_no_answer_logs_out_and_requeues() -> None:
    cc = make(2)
    cc.handle(AgentLogin("a0"), 0.0)
    [offer] = connects(start(cc, "c1", 1.0))
    cc.handle(AgentLogout("a0"), 2.0)
    cc.handle(AgentLogin("a1"), 3.0)  # a1 is ready, but c1 still rings a0
    out = cc.handle(OfferFailed("c1", offer.offer_id, "NOANSWER"), 21.0)
    assert cc.agent("a0").state is AgentState.LOGGED_OUT
    assert not any(isinstance(a, StartTimer) and a.key == ("ready", "a0") for a in out)
    [again] = connects(out)
    assert again.agent_id == "a1"


def test_logout_while_ringing_then_caller_hangs_up() -> None:
    cc = make(1)
    cc.handle(AgentLogin("a0"), 0.0)
    connects(start(cc, "c1", 1.0))
    cc.handle(AgentLogout("a0"), 2.0)
    start(cc, "c2", 2.5)
    out = cc.handle(CallerGone("c1"), 3.0)
    assert cc.agent("a0").state is AgentState.LOGGED_OUT
    assert connects(out) == []  # c2 is not offered to the agent on its way out


def test_login_before_the_call_ends_cancels_the_logout() -> None:
    cc = make(1, wrap_up_s=0.0)
    cc.handle(AgentLogin("a0"), 0.0)
    [offer] = connects(start(cc, "c1", 1.0))
    cc.handle(OfferAnswered("c1", offer.offer_id), 2.0)
    cc.handle(AgentLogout("a0"), 3.0)
    assert cc.handle(AgentLogin("a0"), 4.0) == []  # back-to-back shifts: stays
    start(cc, "c2", 5.0)
    out = cc.handle(ConversationEnded("c1"), 9.0)
    # no wrap-up: ready at once (no zero-length timer) and takes the waiting call
    assert not any(isinstance(a, StartTimer) for a in out)
    [nxt] = connects(out)
    assert nxt.call_id == "c2" and cc.agent("a0").state is AgentState.RESERVED


# ---------------------------------------------------- pause after the call


def changes(out: list[object]) -> list[tuple[AgentState, AgentState, str]]:
    return [(a.old, a.new, a.reason) for a in out if isinstance(a, AgentStateChanged)]


def on_call(cc: ContactCenter, cid: str = "c1", t: float = 1.0) -> ConnectCall:
    """a0 logged in at 0, then talking to ``cid`` (queued and answered at ``t``)."""
    cc.handle(AgentLogin("a0"), 0.0)
    [offer] = connects(start(cc, cid, t))
    cc.handle(OfferAnswered(cid, offer.offer_id), t)
    return offer


def test_pause_during_a_call_takes_effect_after_the_wrap_up() -> None:
    cc = make(1, wrap_up_s=5.0)
    on_call(cc)
    agent = cc.agent("a0")
    assert cc.handle(AgentPause("a0", "lunch"), 2.0) == []  # no error, nothing changes yet
    assert agent.state is AgentState.ON_CALL and agent.pause_after_call == "lunch"
    start(cc, "c2", 3.0)
    out = cc.handle(ConversationEnded("c1"), 10.0)
    assert changes(out) == [(AgentState.ON_CALL, AgentState.WRAP_UP, "")]
    assert StartTimer(("wrap_up", "a0"), 15.0) in out
    out = cc.handle(TimerFired(("wrap_up", "a0")), 15.0)
    # paused (not ready) with the reason asked for; the waiting call is not offered
    assert changes(out) == [(AgentState.WRAP_UP, AgentState.PAUSED, "lunch")]
    assert connects(out) == [] and cc.waiting("billing") == ["c2"]
    assert not any(isinstance(a, StartTimer) for a in out)  # no timer back to ready
    assert (agent.state, agent.reason, agent.pause_after_call) == (AgentState.PAUSED, "lunch",
                                                                    None)
    [offer] = connects(cc.handle(AgentReady("a0"), 20.0))
    assert offer.call_id == "c2"


def test_pause_during_a_call_without_wrap_up_takes_effect_as_it_ends() -> None:
    cc = make(1, wrap_up_s=0.0)
    on_call(cc)
    cc.handle(AgentPause("a0"), 2.0)  # no reason: "paused"
    start(cc, "c2", 3.0)
    out = cc.handle(ConversationEnded("c1", "agent"), 10.0)
    assert changes(out) == [(AgentState.ON_CALL, AgentState.WRAP_UP, ""),
                            (AgentState.WRAP_UP, AgentState.PAUSED, "paused")]
    assert connects(out) == [] and records(out)
    assert not any(isinstance(a, StartTimer) for a in out)
    # the same with a wrap-up of this call's own of 0 where the default has one
    cc = make(1, wrap_up_s=30.0)
    on_call(cc)
    cc.handle(AgentPause("a0", "coaching"), 2.0)
    out = cc.handle(ConversationEnded("c1", wrap_up_s=0.0), 10.0)
    assert changes(out)[-1] == (AgentState.WRAP_UP, AgentState.PAUSED, "coaching")
    assert not any(isinstance(a, StartTimer) for a in out)


def test_pause_while_ringing_takes_effect_when_the_offer_fails() -> None:
    for agent_fault in (True, False):
        cc = make(2, rona_pause_s=30.0)
        cc.handle(AgentLogin("a0"), 0.0)
        [offer] = connects(start(cc, "c1", 1.0))
        cc.handle(AgentPause("a0", "break"), 2.0)
        assert cc.agent("a0").state is AgentState.RESERVED
        cc.handle(AgentLogin("a1"), 3.0)  # ready, but c1 still rings a0
        out = cc.handle(OfferFailed("c1", offer.offer_id, "NOANSWER", agent_fault), 21.0)
        # the pending pause wins over the ring-no-answer pause: its reason, no timer
        assert changes(out)[0] == (AgentState.RESERVED, AgentState.PAUSED, "break")
        assert not any(isinstance(a, StartTimer) and a.key == ("ready", "a0") for a in out)
        agent = cc.agent("a0")
        assert (agent.state, agent.reason, agent.pause_after_call) == (
            AgentState.PAUSED, "break", None)
        [again] = connects(out)
        assert again.agent_id == "a1"


def test_pause_while_ringing_takes_effect_when_the_caller_leaves() -> None:
    cc = make(1)
    cc.handle(AgentLogin("a0"), 0.0)
    connects(start(cc, "c1", 1.0))
    cc.handle(AgentPause("a0", "meeting"), 2.0)
    start(cc, "c2", 2.5)
    out = cc.handle(CallerGone("c1"), 3.0)
    # straight from ringing to paused: no ready in between, c2 not offered
    assert changes(out) == [(AgentState.RESERVED, AgentState.PAUSED, "meeting")]
    assert connects(out) == [] and cc.waiting("billing") == ["c2"]
    assert cc.agent("a0").pause_after_call is None


def test_ready_takes_a_pending_pause_back() -> None:
    cc = make(1, wrap_up_s=5.0)
    on_call(cc)
    cc.handle(AgentPause("a0", "lunch"), 2.0)
    assert cc.handle(AgentReady("a0"), 3.0) == []  # no error: the pause is taken back
    agent = cc.agent("a0")
    assert agent.state is AgentState.ON_CALL and agent.pause_after_call is None
    cc.handle(ConversationEnded("c1"), 10.0)
    # asked again in wrap-up and taken back there too
    cc.handle(AgentPause("a0", "lunch"), 11.0)
    assert agent.state is AgentState.PAUSED  # in wrap-up a pause is immediate, as before
    cc.handle(AgentReady("a0"), 12.0)
    assert agent.state is AgentState.READY
    # a pending pause kept into wrap-up, taken back there: ready now, as a
    # ready in wrap-up without a pause pending is (next test)
    on_call_again = connects(start(cc, "c2", 13.0))[0]
    cc.handle(OfferAnswered("c2", on_call_again.offer_id), 13.0)
    cc.handle(AgentPause("a0"), 14.0)
    cc.handle(ConversationEnded("c2"), 20.0)
    assert agent.state is AgentState.WRAP_UP and agent.pause_after_call == "paused"
    start(cc, "c3", 20.5)  # waits: the agent is in wrap-up
    out = cc.handle(AgentReady("a0"), 21.0)
    assert changes(out) == [(AgentState.WRAP_UP, AgentState.READY, ""),
                            (AgentState.READY, AgentState.RESERVED, "")]
    assert CancelTimer(("wrap_up", "a0")) in out and agent.pause_after_call is None
    [offer] = connects(out)
    assert offer.call_id == "c3" and agent.call_id == "c3"
    # the wrap-up's timer, had it fired all the same, changes nothing
    assert cc.handle(TimerFired(("wrap_up", "a0")), 25.0) == []
    assert agent.state is AgentState.RESERVED


def test_ready_in_wrap_up_ends_it_early_with_or_without_a_pause_pending() -> None:
    for pause in (False, True):
        cc = make(1, wrap_up_s=30.0)
        on_call(cc)
        if pause:
            cc.handle(AgentPause("a0", "lunch"), 2.0)
        cc.handle(ConversationEnded("c1"), 10.0)
        agent = cc.agent("a0")
        assert agent.state is AgentState.WRAP_UP
        assert agent.pause_after_call == ("lunch" if pause else None)
        start(cc, "c2", 11.0)
        out = cc.handle(AgentReady("a0"), 12.0)
        assert CancelTimer(("wrap_up", "a0")) in out
        assert [c.call_id for c in connects(out)] == ["c2"], pause
        assert agent.state is AgentState.RESERVED and agent.pause_after_call is None


def test_logout_takes_a_pending_pause_away() -> None:
    cc = make(1, wrap_up_s=5.0)
    on_call(cc)
    cc.handle(AgentPause("a0", "lunch"), 2.0)
    cc.handle(AgentLogout("a0"), 3.0)
    agent = cc.agent("a0")
    assert agent.pause_after_call is None and agent.logout_after_call
    out = cc.handle(ConversationEnded("c1"), 10.0)
    assert changes(out)[-1] == (AgentState.WRAP_UP, AgentState.LOGGED_OUT, "")
    # logged in again: no pause left over from the earlier shift
    cc.handle(AgentLogin("a0"), 20.0)
    [offer] = connects(start(cc, "c2", 21.0))
    cc.handle(OfferAnswered("c2", offer.offer_id), 21.0)
    cc.handle(ConversationEnded("c2"), 30.0)
    out = cc.handle(TimerFired(("wrap_up", "a0")), 35.0)
    assert changes(out) == [(AgentState.WRAP_UP, AgentState.READY, "")]


def test_wrap_up_of_the_call_sets_the_timer_the_estimate_and_the_handle_time() -> None:
    cc = make(1, wrap_up_s=5.0)
    on_call(cc)
    out = cc.handle(ConversationEnded("c1", wrap_up_s=60.0), 11.0)
    assert StartTimer(("wrap_up", "a0"), 71.0) in out
    # learnt: ring 0 + talk 10 + this call's wrap-up 60 (the prior, 20 s, fades out)
    [window] = [list(cc._handle["billing"].window)]
    assert window == [pytest.approx(70.0)]
    start(cc, "c2", 21.0)
    est = cc.estimate("c2", 21.0)
    assert est is not None and est.servers == 1
    assert est.wait_s == pytest.approx(50.0, abs=1.0)  # the wrap-up's end, not 11 + 5
    cc2 = make(1, wrap_up_s=5.0)
    on_call(cc2)
    cc2.handle(ConversationEnded("c1"), 11.0)  # None: the configured wrap-up
    assert list(cc2._handle["billing"].window) == [pytest.approx(15.0)]
    start(cc2, "c2", 12.0)
    est = cc2.estimate("c2", 12.0)
    assert est is not None and est.wait_s == pytest.approx(4.0, abs=1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_wrap_up_that_is_not_a_number_is_the_configured_one(bad: float) -> None:
    cc = make(1, wrap_up_s=5.0)
    on_call(cc)
    out = cc.handle(ConversationEnded("c1", wrap_up_s=bad), 11.0)
    assert [a for a in out if isinstance(a, StartTimer)] == [StartTimer(("wrap_up", "a0"), 16.0)]
    assert list(cc._handle["billing"].window) == [pytest.approx(15.0)]
    start(cc, "c2", 12.0)
    est = cc.estimate("c2", 12.0)
    assert est is not None and est.wait_s == pytest.approx(4.0, abs=1.0)
    out = cc.handle(TimerFired(("wrap_up", "a0")), 16.0)
    assert [c.call_id for c in connects(out)] == ["c2"]


def test_an_agent_pausing_after_its_call_is_not_expected_to_come_free() -> None:
    cc = make(2, wrap_up_s=5.0)
    on_call(cc)
    start(cc, "c2", 2.0)
    est = cc.estimate("c2", 2.0)
    assert est is not None and est.servers == 1 and est.wait_s is not None
    cc.handle(AgentPause("a0", "lunch"), 3.0)
    est = cc.estimate("c2", 3.0)
    assert est is not None and (est.servers, est.wait_s) == (0, None)
    cc.handle(AgentReady("a0"), 4.0)  # taken back: counted again
    est = cc.estimate("c2", 4.0)
    assert est is not None and est.servers == 1 and est.wait_s is not None
    cc.handle(AgentPause("a0", "lunch"), 5.0)
    cc.handle(ConversationEnded("c1"), 10.0)  # in wrap-up, still pausing after it
    est = cc.estimate("c2", 10.0)
    assert est is not None and (est.servers, est.wait_s) == (0, None)
    # taken back in wrap-up: ready now (the wrap-up cut short), c2 offered at once
    assert [c.call_id for c in connects(cc.handle(AgentReady("a0"), 11.0))] == ["c2"]


def test_agent_table_has_no_implicit_rows() -> None:
    rows = AGENT_TABLE.rows()
    for state in AgentState:
        for trig in AgentTrigger:
            assert AGENT_TABLE.allows(state, trig) == ((state, trig) in rows)
    assert not AGENT_TABLE.allows(AgentState.ON_CALL, AgentTrigger.OFFER)


# ------------------------------------------------------------ property test

ops = st.lists(
    st.tuples(st.sampled_from(["arrive", "hangup", "answer", "fail", "end", "timer",
                               "pause", "ready"]),
              st.integers(0, 7)),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_random_sequences_keep_invariants(seq: list[tuple[str, int]]) -> None:
    """No call lost or doubled, no agent double-booked, FIFO offers."""
    cc = make(3, queues=("q",), rona_pause_s=5.0)
    for a in ("a0", "a1", "a2"):
        cc.handle(AgentLogin(a), 0.0)
    t = 0.0
    started: list[str] = []
    recorded: list[str] = []
    offered_order: list[str] = []
    live_offers: dict[str, int] = {}
    for op, n in seq:
        t += 1.0
        out: list[object] = []
        if op == "arrive":
            cid = f"c{len(started)}"
            started.append(cid)
            cc.handle(CallStarted(cid, "1"), t)
            out = list(cc.handle(CallQueued(cid, "q"), t))
        else:
            live = [c for c in started if cc.call(c) is not None]
            if not live and op in ("hangup", "answer", "fail", "end"):
                continue
            if op in ("hangup", "answer", "fail", "end"):
                cid = live[n % len(live)]
                call = cc.call(cid)
                assert call is not None
                if op == "hangup":
                    out = list(cc.handle(CallerGone(cid), t))
                elif op == "answer" and cid in live_offers:
                    out = list(cc.handle(OfferAnswered(cid, live_offers[cid]), t))
                elif op == "fail" and cid in live_offers and call.state.value == "offered":
                    out = list(cc.handle(OfferFailed(cid, live_offers[cid], "NOANSWER"), t))
                elif op == "end" and call.state.value == "connected":
                    out = list(cc.handle(ConversationEnded(cid), t))
            else:
                agent = cc.agent(f"a{n % 3}")
                if op == "timer":
                    out = list(cc.handle(TimerFired(("wrap_up", agent.agent_id)), t))
                    out += cc.handle(TimerFired(("ready", agent.agent_id)), t)
                elif op == "pause" and agent.state is not AgentState.LOGGED_OUT:
                    out = list(cc.handle(AgentPause(agent.agent_id, "break"), t))
                elif op == "ready" and (agent.state in (AgentState.PAUSED,
                                                        AgentState.WRAP_UP)
                                        or agent.pause_after_call is not None):
                    out = list(cc.handle(AgentReady(agent.agent_id), t))
        for a in out:
            if isinstance(a, ConnectCall):
                live_offers[a.call_id] = a.offer_id
                offered_order.append(a.call_id)
            if isinstance(a, WriteCallRecord):
                recorded.append(a.record.call_id)
        # invariants after every step
        busy = [ag.call_id for ag in cc.agents() if ag.call_id is not None]
        assert len(busy) == len(set(busy)), "a call is held by two agents"
        for ag in cc.agents():
            if ag.state in (AgentState.RESERVED, AgentState.ON_CALL):
                assert ag.call_id is not None and cc.call(ag.call_id) is not None
                call = cc.call(ag.call_id)
                assert call is not None and call.agent_id == ag.agent_id
            else:
                assert ag.call_id is None
            if ag.pause_after_call is not None:  # pending only until it could be ready
                assert ag.state in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)
        assert len(recorded) == len(set(recorded)), "a call was recorded twice"
        live_ids = {c.call_id for c in cc.calls()}
        assert set(started) == live_ids | set(recorded), "a call was lost"
        # FIFO: no waiting call arrived before a call that got offered later
        waiting = cc.waiting("q")
        assert waiting == sorted(waiting, key=lambda c: int(c[1:]))


def test_without_explanations_the_decisions_are_the_same() -> None:
    """`explain=False` (the virtual simulator) changes what is recorded, not who gets a call."""
    import random

    from acd.core.model import (
        AgentLogin,
        CallQueued,
        CallStarted,
        ConnectCall,
        ConversationEnded,
        CoreConfig,
        OfferAnswered,
        RecordExplanation,
        TimerFired,
    )

    def run(explain: bool) -> tuple[list[tuple[str, str]], int]:
        policy = simple_policy({"q": 20})
        agents = agents_for_queues({f"a{i}": (str(1000 + i), ("q",)) for i in range(4)})
        cc = ContactCenter(CoreConfig(policy, agents, wrap_up_s=1.0, explain=explain))
        rng = random.Random(5)
        offers: list[tuple[str, str]] = []
        counts = [0]
        events: list[tuple[float, int, object]] = []  # (time, seq, event)
        seq = [0]

        def later(t: float, ev: object) -> None:
            seq[0] += 1
            events.append((t, seq[0], ev))

        def do(out: list[object], t: float) -> None:
            for act in out:
                counts[0] += isinstance(act, RecordExplanation)
                if isinstance(act, ConnectCall):
                    offers.append((act.call_id, act.agent_id))
                    do(cc.handle(OfferAnswered(act.call_id, act.offer_id), t), t)
                    later(t + rng.expovariate(0.3), ConversationEnded(act.call_id))
                elif type(act).__name__ == "StartTimer":
                    later(act.at, TimerFired(act.key))  # type: ignore[attr-defined]

        t = 0.0
        for a in agents:
            do(cc.handle(AgentLogin(a.agent_id), t), t)  # type: ignore[arg-type]
        for i in range(200):
            t += rng.expovariate(1.0)
            later(t, CallStarted(f"c{i}", "138"))
            later(t, CallQueued(f"c{i}", "q"))
        while events:
            events.sort(key=lambda e: (e[0], e[1]))
            when, _, ev = events.pop(0)
            do(cc.handle(ev, when), when)  # type: ignore[arg-type]
        return offers, counts[0]

    with_explain, n = run(True)
    without, m = run(False)
    assert with_explain == without and len(without) == 200
    assert n == len(with_explain) and m == 0
