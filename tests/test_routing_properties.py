"""Property tests of the router over random event sequences (hypothesis).

A little clock runs the timers the core asks for, so escalation and
wrap-up happen as they would in the engine.
"""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from acd.core.center import ContactCenter
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    AgentState,
    CallerGone,
    CallQueued,
    CallStarted,
    CallState,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    OfferAnswered,
    OfferFailed,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.policy import eligible, stage_for
from acd.core.profiles import AgentProfile
from acd.loaders.routing import parse_policy

POLICY = parse_policy("""
routes:
  - {when: {prio: "3"}, queue: q, priority: 3}
  - {when: {prio: "1"}, queue: q, priority: 1}
  - {when: {want: r}, queue: r}
aging: {seconds_per_level: 10}
queues:
  q:
    skill: s
    require: {dialect: {min_proficiency: 5}}
    prefer: {dialect: 2, gender: 1, last_agent: 3, idle: 0.5}
    escalate:
      - {after: 20, accept_dialects: {minnan: [mandarin], cantonese: [mandarin]}}
      - {after: 40, drop: dialect}
      - {after: 80, overflow: r}
  r:
    skill: t
    prefer: {idle: 1}
""")

DIALECTS = ["minnan", "cantonese", "mandarin"]

agent_st = st.builds(
    lambda i, s, t, d, g: AgentProfile(
        f"a{i}", f"10{i:02d}", skills={k: v for k, v in (("s", s), ("t", t)) if v},
        dialects=d, gender=g),
    st.just(0), st.integers(0, 9), st.integers(0, 9),
    st.dictionaries(st.sampled_from(DIALECTS), st.integers(1, 10), max_size=2),
    st.sampled_from(["", "F", "M"]),
)

op_st = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(["minnan", "cantonese", "mandarin", ""]),
              st.sampled_from(["0", "1", "3"]), st.sampled_from(["q", "r"])),
    st.tuples(st.sampled_from(["hangup", "answer", "fail", "end"]), st.integers(0, 50)),
    st.tuples(st.just("advance"), st.floats(0.1, 30.0)),
    # a timer that fires before its time (clocks drift): the core must not act early
    st.tuples(st.just("early"), st.integers(0, 50)),
    st.tuples(st.sampled_from(["pause", "ready", "logout", "login"]), st.integers(0, 50)),
)


class Harness:
    def __init__(self, agents: list[AgentProfile]) -> None:
        self.cc = ContactCenter(CoreConfig(policy=POLICY, agents=tuple(agents), wrap_up_s=3.0,
                                           rona_pause_s=5.0))
        self.now = 0.0
        self.timers: dict[tuple[str, str], float] = {}
        self.started: list[str] = []
        self.recorded: list[str] = []
        self.offers: dict[str, int] = {}

    def feed(self, event: object) -> None:
        out = self.cc.handle(event, self.now)  # type: ignore[arg-type]
        self.apply(out)

    def apply(self, out: list[Action]) -> None:
        for a in out:
            if isinstance(a, StartTimer):
                self.timers[a.key] = a.at
            elif isinstance(a, CancelTimer):
                self.timers.pop(a.key, None)
            elif isinstance(a, ConnectCall):
                self.check_offer(a)
                self.offers[a.call_id] = a.offer_id
            elif isinstance(a, WriteCallRecord):
                self.recorded.append(a.record.call_id)

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while True:
            due = [(at, k) for k, at in self.timers.items() if at <= end]
            if not due:
                break
            at, key = min(due)
            del self.timers[key]
            self.now = max(self.now, at)
            self.feed(TimerFired(key))
        self.now = end

    def check_offer(self, a: ConnectCall) -> None:
        cc = self.cc
        call = cc.call(a.call_id)
        assert call is not None and call.stage is not None and call.queued_at is not None
        agent = cc.agent(a.agent_id)
        waited = self.now - call.queued_at
        # a relaxation never applies before its time
        qp = cc.queue_policy(call.queue or "")
        for step in qp.escalate[:call.stage.steps_done]:
            assert step.after_s <= waited + 1e-9, (step, waited)
        if call.queue != call.first_queue:
            first = cc.queue_policy(call.first_queue or "")
            over = [s.after_s for s in first.escalate if s.overflow == call.queue]
            assert over and over[0] <= waited + 1e-9
        # the agent really meets the requirements of that stage
        stage = stage_for(cc.policy, call.queue or "", call.stage.steps_done, call.attrs)
        assert eligible(agent.profile, stage.signature)
        # never passed over: no waiting call the agent could take came first
        for other in cc.calls():
            if other is call or other.state is not CallState.WAITING or other.stage is None:
                continue
            if eligible(agent.profile, other.stage.signature):
                assert (other.key, other.seq) > (call.key, call.seq), (
                    f"{other.call_id} (key {other.key}) passed over by {call.call_id} "
                    f"(key {call.key}) for {agent.agent_id}")

    def invariants(self) -> None:
        cc = self.cc
        booked = [ag.call_id for ag in cc.agents() if ag.call_id is not None]
        assert len(booked) == len(set(booked)), "an agent double-booked / call held twice"
        for ag in cc.agents():
            if ag.state in (AgentState.RESERVED, AgentState.ON_CALL):
                call = cc.call(ag.call_id or "")
                assert call is not None and call.agent_id == ag.agent_id
            else:
                assert ag.call_id is None
        assert len(self.recorded) == len(set(self.recorded)), "a call recorded twice"
        live = {c.call_id for c in cc.calls()}
        assert set(self.started) == live | set(self.recorded), "a call was lost"
        assert not live & set(self.recorded)
        # waiting calls in each queue are in service order
        for q in cc.queue_names():
            keys = [(c.key, c.seq) for c in (cc.call(cid) for cid in cc.waiting(q)) if c]
            assert keys == sorted(keys)


@settings(max_examples=300, deadline=None)
@given(st.lists(agent_st, min_size=1, max_size=6), st.lists(op_st, max_size=80))
def test_router_invariants(agent_list: list[AgentProfile], ops: list[tuple]) -> None:  # type: ignore[type-arg]
    agents = [AgentProfile(f"a{i}", f"10{i:02d}", skills=dict(p.skills) or {"t": 1},
                           dialects=dict(p.dialects), gender=p.gender)
              for i, p in enumerate(agent_list)]
    h = Harness(agents)
    for ag in agents:
        h.feed(AgentLogin(ag.agent_id))
    for op in ops:
        kind = op[0]
        cc = h.cc
        live = [c for c in h.started if cc.call(c) is not None]
        if kind == "arrive":
            cid = f"c{len(h.started)}"
            h.started.append(cid)
            h.feed(CallStarted(cid, f"1380000{len(h.started) % 7}"))
            attrs = (("dialect", op[1]), ("prio", op[2]), ("want", op[3]))
            h.feed(CallQueued(cid, "q", (), 0, tuple((k, v) for k, v in attrs if v)))
        elif kind in ("hangup", "answer", "fail", "end"):
            if not live:
                continue
            cid = live[op[1] % len(live)]
            call = cc.call(cid)
            assert call is not None
            if kind == "hangup" and call.state is not CallState.IVR:
                h.feed(CallerGone(cid))
            elif kind == "answer" and call.state is CallState.OFFERED:
                h.feed(OfferAnswered(cid, h.offers[cid]))
            elif kind == "fail" and call.state is CallState.OFFERED:
                h.feed(OfferFailed(cid, h.offers[cid], "NOANSWER"))
            elif kind == "end" and call.state is CallState.CONNECTED:
                h.feed(ConversationEnded(cid))
        elif kind == "advance":
            h.advance(op[1])
        elif kind == "early":
            pending = sorted(k for k, at in h.timers.items() if at > h.now)
            if pending:
                key = pending[op[1] % len(pending)]
                del h.timers[key]
                h.feed(TimerFired(key))
        else:
            ag = cc.agent(f"a{op[1] % len(agents)}")
            if kind == "pause" and ag.state in (AgentState.READY, AgentState.WRAP_UP):
                h.feed(AgentPause(ag.agent_id, "break"))
            elif kind == "ready" and ag.state is AgentState.PAUSED:
                h.feed(AgentReady(ag.agent_id))
            elif kind == "logout" and ag.state in (AgentState.READY, AgentState.PAUSED):
                h.feed(AgentLogout(ag.agent_id))
            elif kind == "login" and ag.state is AgentState.LOGGED_OUT:
                h.feed(AgentLogin(ag.agent_id))
        h.invariants()


def test_first_come_first_served_among_equals() -> None:
    agents = [AgentProfile("a0", "1000", skills={"s": 5}, dialects={"mandarin": 9})]
    h = Harness(agents)
    for i in range(5):
        h.started.append(f"c{i}")
        h.feed(CallStarted(f"c{i}", "1"))
        h.feed(CallQueued(f"c{i}", "q", (), 0, (("dialect", "mandarin"),)))
        h.now += 1.0
    served = []
    h.feed(AgentLogin("a0"))
    for _ in range(5):
        call_id = h.cc.agent("a0").call_id
        assert call_id is not None
        served.append(call_id)
        h.feed(OfferAnswered(call_id, h.offers[call_id]))
        h.now += 1
        h.feed(ConversationEnded(call_id))
        h.advance(3.0)
    assert served == [f"c{i}" for i in range(5)]


def test_heap_entries_are_tuples() -> None:  # the core's ordering key
    assert heapq.nsmallest(1, [(1.0, 2, "b"), (1.0, 1, "a")]) == [(1.0, 1, "a")]
