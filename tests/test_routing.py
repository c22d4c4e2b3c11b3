"""Policy-driven routing: precise matching, relaxation, priority, aging."""

from __future__ import annotations

import pytest

from acd.core.center import ContactCenter
from acd.core.model import (
    Action,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentState,
    CallerGone,
    CallPriorityChanged,
    CallQueued,
    CallStarted,
    CancelTimer,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    FallbackCall,
    OfferAnswered,
    OfferFailed,
    Outcome,
    RecordExplanation,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.profiles import AgentProfile
from acd.loaders.routing import PolicyError, parse_policy

POLICY = """
classes:
  vip: {sl_target: 0.9, sl_seconds: 10}
  standard: {sl_target: 0.8, sl_seconds: 20}
class_rules:
  - when: {vip_level: {min: 1}}
    class: vip
routes:
  - when: {vip_level: {min: 1}}
    queue: vip
    priority: 10
aging: {seconds_per_level: 6}
queues:
  vip:
    skill: vip
    require: {vip_qualified: true, dialect: {min_proficiency: 6}}
    prefer: {dialect: 3, gender: 2, last_agent: 4, idle: 0.5}
    escalate:
      - {after: 30, drop: gender}
      - {after: 60, accept_dialects: {minnan: [mandarin]}}
      - {after: 90, overflow: general}
  general:
    skill: general
    prefer: {dialect: 1, last_agent: 4, idle: 1}
    max_wait: {after: 300, fallback: callback}
"""

MINNAN_VIP = {"vip_level": "2", "dialect": "minnan", "gender": "M", "age": "40",
              "preferred_gender": "F"}


def agent(aid: str, ext: str, **kw: object) -> AgentProfile:
    return AgentProfile(aid, ext, **kw)  # type: ignore[arg-type]


AGENTS = (
    agent("mandarin_vip", "1001", skills={"vip": 8, "general": 5}, dialects={"mandarin": 10},
          vip_qualified=True, gender="F"),
    agent("minnan_vip", "1002", skills={"vip": 6, "general": 5}, dialects={"minnan": 9,
          "mandarin": 8}, vip_qualified=True, gender="M"),
    agent("minnan_plain", "1003", skills={"general": 7}, dialects={"minnan": 10}),
    agent("general_f", "1004", skills={"general": 5}, dialects={"mandarin": 9}, gender="F"),
)


def center(agents: tuple[AgentProfile, ...] = AGENTS) -> ContactCenter:
    return ContactCenter(CoreConfig(policy=parse_policy(POLICY), agents=agents, wrap_up_s=5,
                                    rona_pause_s=None))


def login(cc: ContactCenter, *ids: str, t: float = 0.0) -> None:
    for i, aid in enumerate(ids):
        cc.handle(AgentLogin(aid), t + i * 0.001)


def queue(cc: ContactCenter, cid: str, t: float, attrs: dict[str, str],
          ivr_queue: str = "general", number: str | None = None) -> list[Action]:
    cc.handle(CallStarted(cid, number or f"138{cid}"), t)
    return cc.handle(CallQueued(cid, ivr_queue, (), 0, tuple(attrs.items())), t)


def offer(actions: list[Action]) -> ConnectCall | None:
    found = [a for a in actions if isinstance(a, ConnectCall)]
    return found[0] if found else None


def timers(actions: list[Action]) -> list[StartTimer]:
    return [a for a in actions if isinstance(a, StartTimer)]


def test_minnan_vip_caller_gets_the_free_minnan_vip_agent() -> None:
    cc = center()
    login(cc, "mandarin_vip", "minnan_vip", "minnan_plain", "general_f")
    out = queue(cc, "c1", 100.0, MINNAN_VIP)
    o = offer(out)
    assert o is not None and o.agent_id == "minnan_vip"
    call = cc.call("c1")
    assert call is not None and call.queue == "vip" and call.customer_class == "vip"
    assert call.priority == 10
    [expl] = [a.explanation for a in out if isinstance(a, RecordExplanation)]
    assert expl.agent_id == "minnan_vip" and expl.queue == "vip"
    terms = dict(expl.candidates[0].terms)
    assert terms["dialect"] == pytest.approx(3 * 9 / 10)
    # the Mandarin-only VIP agent was not even a candidate (hard requirement)
    assert [c.agent_id for c in expl.candidates] == ["minnan_vip"]


def test_with_none_free_he_waits_then_is_relaxed_step_by_step() -> None:
    cc = center()
    login(cc, "mandarin_vip", "general_f")  # no Minnan-speaking VIP agent on duty
    out = queue(cc, "c1", 100.0, MINNAN_VIP)
    assert offer(out) is None
    [esc] = [t for t in timers(out) if t.key == ("escalate", "c1")]
    assert esc.at == 130.0
    # a timer fired early changes nothing and re-arms for the step's time
    early = cc.handle(TimerFired(("escalate", "c1")), 120.0)
    assert offer(early) is None and [t.at for t in timers(early)] == [130.0]
    out = cc.handle(TimerFired(("escalate", "c1")), 130.0)  # gender preference dropped
    assert offer(out) is None
    assert [t.at for t in timers(out)] == [160.0]
    out = cc.handle(TimerFired(("escalate", "c1")), 159.99)
    assert offer(out) is None  # Mandarin is not accepted before 60 s
    out = cc.handle(TimerFired(("escalate", "c1")), 160.0)
    o = offer(out)
    assert o is not None and o.agent_id == "mandarin_vip"
    [expl] = [a.explanation for a in out if isinstance(a, RecordExplanation)]
    assert expl.stage == ("after 30s drop gender", "after 60s accept dialects minnan: mandarin")
    assert expl.waited_s == pytest.approx(60.0)


def test_overflow_to_general_after_90_seconds() -> None:
    cc = center()
    login(cc, "general_f")
    queue(cc, "c1", 0.0, MINNAN_VIP)
    for t in (30.0, 60.0):
        assert offer(cc.handle(TimerFired(("escalate", "c1")), t)) is None
    out = cc.handle(TimerFired(("escalate", "c1")), 90.0)
    o = offer(out)
    assert o is not None and o.agent_id == "general_f"
    call = cc.call("c1")
    assert call is not None and call.queue == "general" and call.first_queue == "vip"


def test_repeat_caller_gets_the_last_agent_when_free() -> None:
    cc = center()
    login(cc, "minnan_plain", "general_f")
    o = offer(queue(cc, "c1", 0.0, {"dialect": "minnan"}, number="13900000001"))
    assert o is not None and o.agent_id == "minnan_plain"
    cc.handle(OfferAnswered("c1", o.offer_id), 1.0)
    cc.handle(ConversationEnded("c1"), 60.0)
    cc.handle(TimerFired(("wrap_up", "minnan_plain")), 65.0)
    # general_f has been idle far longer, but the caller's last agent (the
    # adapter's lookup supplies it) wins
    o2 = offer(queue(cc, "c2", 70.0, {"dialect": "mandarin", "last_agent": "minnan_plain"},
                     number="13900000001"))
    assert o2 is not None and o2.agent_id == "minnan_plain"
    # a first-time caller gets the longest-idle, better-matching agent instead
    cc.handle(AgentLogin("mandarin_vip"), 71.0)
    o3 = offer(queue(cc, "c3", 72.0, {"dialect": "mandarin"}, number="13900000002"))
    assert o3 is not None and o3.agent_id == "general_f"


def test_the_core_keeps_no_memory_of_last_agents() -> None:
    """One store of the last agent: the call records (the engine's lookup
    passes it as an attribute); a repeat call without it is a first call."""
    cc = center()
    login(cc, "minnan_plain", "general_f")
    o = offer(queue(cc, "c1", 0.0, {"dialect": "minnan"}, number="13900000001"))
    assert o is not None and o.agent_id == "minnan_plain"
    cc.handle(OfferAnswered("c1", o.offer_id), 1.0)
    cc.handle(ConversationEnded("c1"), 60.0)
    cc.handle(TimerFired(("wrap_up", "minnan_plain")), 65.0)
    o2 = offer(queue(cc, "c2", 70.0, {"dialect": "mandarin"}, number="13900000001"))
    assert o2 is not None and o2.agent_id == "general_f"


def test_last_agent_from_the_database_attribute() -> None:
    cc = center()
    login(cc, "general_f", "minnan_plain")
    o = offer(queue(cc, "c1", 10.0, {"last_agent": "minnan_plain"}))
    assert o is not None and o.agent_id == "minnan_plain"


def test_gender_preference_outweighs_a_better_dialect_until_dropped() -> None:
    agents = (*AGENTS, agent("minnan_vip_f", "1005", skills={"vip": 6}, vip_qualified=True,
                             dialects={"minnan": 7}, gender="F"))
    cc = center(agents)
    login(cc, "minnan_vip", "minnan_vip_f")
    out = queue(cc, "c1", 0.0, MINNAN_VIP)  # prefers a woman
    o = offer(out)
    assert o is not None and o.agent_id == "minnan_vip_f"
    [expl] = [a.explanation for a in out if isinstance(a, RecordExplanation)]
    by_agent = {c.agent_id: dict(c.terms) for c in expl.candidates}
    assert by_agent["minnan_vip_f"]["gender"] == 2.0
    assert by_agent["minnan_vip"]["gender"] == 0.0
    assert by_agent["minnan_vip"]["dialect"] > by_agent["minnan_vip_f"]["dialect"]


def test_vip_priority_and_aging_bound() -> None:
    cc = center((agent("g", "1001", skills={"general": 5, "vip": 5}, vip_qualified=True,
                       dialects={"minnan": 9}),))
    queue(cc, "std_old", 0.0, {})  # standard, general queue, priority 0
    queue(cc, "vip_new", 50.0, {"vip_level": "1", "dialect": "minnan"})  # priority 10: 60 s
    queue(cc, "std_new", 51.0, {})
    cc.handle(AgentLogin("g"), 55.0)
    # VIP (virtual arrival 50 - 60 = -10) goes before the standard call of t=0
    a = cc.agent("g")
    assert a.call_id == "vip_new"
    # but a standard call that waited more than 60 s longer beats a new VIP call
    cc2 = center((agent("g", "1001", skills={"general": 5, "vip": 5}, vip_qualified=True,
                        dialects={"minnan": 9}),))
    queue(cc2, "std_old", 0.0, {})
    queue(cc2, "vip_new", 61.0, {"vip_level": "1", "dialect": "minnan"})
    cc2.handle(AgentLogin("g"), 62.0)
    assert cc2.agent("g").call_id == "std_old"


def test_position_and_expected_wait() -> None:
    cc = center()
    for i in range(3):
        queue(cc, f"c{i}", float(i), {})
    pos = cc.position("c2")
    assert pos is not None and pos[0] == 3
    assert pos[1] is None  # nobody staffed: no wait to promise (tests/test_ewt.py)
    login(cc, "mandarin_vip")  # takes c0
    assert cc.position("c2") is not None and cc.position("c2")[0] == 2  # type: ignore[index]


def test_max_wait_falls_back_with_a_record() -> None:
    cc = center()
    out = queue(cc, "c1", 0.0, {})
    assert ("max_wait", "c1") in [t.key for t in timers(out)]
    out = cc.handle(TimerFired(("max_wait", "c1")), 300.0)
    assert FallbackCall("c1", "callback", "general") in out
    [rec] = [a.record for a in out if isinstance(a, WriteCallRecord)]
    assert rec.outcome is Outcome.FALLBACK and rec.wait_s == pytest.approx(300.0)
    assert cc.call("c1") is None


def test_agent_state_is_tracked_through_the_table() -> None:
    cc = center()
    login(cc, "general_f")
    o = offer(queue(cc, "c1", 0.0, {}))
    assert o is not None
    assert cc.agent("general_f").state is AgentState.RESERVED


@pytest.mark.parametrize(("text", "line", "words"), [
    ("queues: {}\n", 1, "queues is empty"),
    ("queues:\n  q: {skill: s, colour: red}\n", 2, "unknown key 'colour'"),
    ("queues:\n  q:\n    escalate:\n      - {after: 30}\n", 4, "relax exactly one thing"),
    ("queues:\n  q:\n    escalate:\n      - {after: 30, overflow: nowhere}\n", 4,
     "overflow to unknown queue 'nowhere'"),
    ("queues:\n  q:\n    escalate:\n      - {after: 60, drop: dialect}\n"
     "      - {after: 30, drop: gender}\n", 5, "steps must be in order of time"),
    ("queues:\n  q:\n    escalate:\n      - {after: 3, drop: hair}\n", 4, "cannot drop 'hair'"),
    ("queues:\n  q: {prefer: {idle: lots}}\n", 2, "idle must be a number"),
    ("routes:\n  - {queue: x}\nqueues:\n  q: {}\n", 2, "unknown queue 'x'"),
    ("routes:\n  - {queue: q, when: {vip_level: {min: 3, max: 1}}}\nqueues:\n  q: {}\n", 2,
     "min 3 is above max 1"),
    ("class_rules:\n  - {class: gold}\nclasses: {vip: {}}\ndefault_class: vip\nqueues:\n"
     "  q: {}\n", 2, "unknown class 'gold'"),
    ("queues:\n  q: {max_wait: {after: 60, fallback: pigeon}}\n", 2,
     "fallback 'pigeon' is not one of"),
    ("queues:\n  q: {require: {dialect: {min_proficiency: 11}}}\n", 2,
     "min_proficiency must be a whole number from 1 to 10"),
])
def test_bad_policy_files_name_line_and_problem(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "routing.yaml")
    assert info.value.line == line, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"routing.yaml:{line}:")


def test_overflow_in_a_circle_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"overflow goes round in a circle \(a -> b -> a\)"):
        parse_policy("queues:\n  a: {escalate: [{after: 10, overflow: b}]}\n"
                     "  b: {escalate: [{after: 20, overflow: a}]}\n", "routing.yaml")


def test_a_manual_pause_cancels_the_ring_no_answer_return() -> None:
    cc = ContactCenter(CoreConfig(policy=parse_policy(POLICY), agents=AGENTS, rona_pause_s=30))
    login(cc, "general_f")
    o = offer(queue(cc, "c1", 0.0, {}))
    assert o is not None
    cc.handle(OfferFailed("c1", o.offer_id, "NOANSWER"), 20.0)  # paused, back at 50 s
    out = cc.handle(AgentPause("general_f", "lunch"), 25.0)
    assert CancelTimer(("ready", "general_f")) in out
    out = cc.handle(AgentLogout("general_f"), 26.0)
    assert CancelTimer(("ready", "general_f")) in out


def test_priority_changed_while_ringing_counts_when_the_call_comes_back() -> None:
    cc = center((agent("g", "1001", skills={"general": 5}),))
    login(cc, "g")
    o = offer(queue(cc, "c1", 0.0, {}))
    assert o is not None
    queue(cc, "c2", 10.0, {})
    cc.handle(CallPriorityChanged("c1", -10), 11.0)  # demoted while its offer rings
    cc.handle(OfferFailed("c1", o.offer_id, "NOANSWER"), 15.0)
    assert cc.waiting("general") == ["c2", "c1"]


def test_stale_partition_entries_are_compacted() -> None:
    cc = center((agent("g", "1001", skills={"vip": 5}),))  # nobody serves general
    for i in range(500):
        queue(cc, f"c{i}", float(i), {})
        cc.handle(CallerGone(f"c{i}"), float(i) + 0.5)
    sizes = cc.partition_sizes("general")
    assert sum(waiting for waiting, _ in sizes) == 0
    assert sum(held for _, held in sizes) < 200
