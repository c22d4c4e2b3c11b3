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
    with pytest.raises(IllegalTransition, match="'pause' is not allowed in state 'reserved'"):
        cc.handle(AgentPause("a0"), 2.0)  # cannot pause while the phone rings
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
                elif op == "pause" and agent.state in (AgentState.READY, AgentState.WRAP_UP):
                    out = list(cc.handle(AgentPause(agent.agent_id, "break"), t))
                elif op == "ready" and agent.state is AgentState.PAUSED:
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
