"""Calls that outlive the engine process, piece by piece: the core's
CallRestored, the rows and channel variables a later process reads, the
database's calls in progress, and where a caller is by CoreShowChannels."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import db_url

from acd.adapters.storage import AgentStateRow, Database, LiveCallRow
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.errors import DuplicateCall, UnknownSubject
from acd.core.model import (
    AgentLogin,
    AgentState,
    CallerGone,
    CallQueued,
    CallRestored,
    CallStarted,
    CallState,
    ConnectCall,
    CoreConfig,
    OfferFailed,
    Outcome,
    WriteCallRecord,
)
from acd.core.policy import simple_policy
from acd.loaders.routing import parse_policy
from acd.protocols.ami import AmiMessage
from acd.runtime.continuity import (
    live_row,
    login_events,
    parse_queued,
    queued_var,
    restored,
    row_from_channel,
)
from acd.runtime.pbx_state import PbxChannels, Place
from acd.runtime.rebuild import order_key


def make(n_agents: int = 1, queues: tuple[str, ...] = ("billing",)) -> ContactCenter:
    return ContactCenter(CoreConfig(
        policy=simple_policy({q: 20.0 for q in queues}),
        agents=agents_for_queues({f"a{i}": (f"10{i:02d}", queues) for i in range(n_agents)}),
        wrap_up_s=0))


def connects(actions: list[object]) -> list[ConnectCall]:
    return [a for a in actions if isinstance(a, ConnectCall)]


def records(actions: list[object]) -> list[WriteCallRecord]:
    return [a for a in actions if isinstance(a, WriteCallRecord)]


# ----------------------------------------------------------------- the core


def test_restored_waiting_calls_keep_their_original_places() -> None:
    cc = make()
    # found in the opposite order of their arrival
    cc.handle(CallRestored("late", "1381", started_at=90, queue="billing", queued_at=100), 500)
    cc.handle(CallRestored("early", "1382", started_at=40, queue="billing", queued_at=50), 500)
    assert cc.waiting("billing") == ["early", "late"]
    offered = connects(list(cc.handle(AgentLogin("a0"), 501)))
    assert [c.call_id for c in offered] == ["early"]
    cc.handle(CallerGone("late", 16), 510)
    out = list(cc.handle(CallerGone("early", 16), 520))
    rec = records(out)[0].record
    # the record is the first process's call: its start and wait from the start
    assert rec.started_at == 40 and rec.queued_at == 50 and rec.outcome is Outcome.ABANDONED
    assert rec.wait_s == pytest.approx(470)


def test_restored_connected_call_ends_in_one_answered_record() -> None:
    cc = make()
    cc.handle(AgentLogin("a0"), 0)
    out = list(cc.handle(CallRestored(
        "c1", "1381", "张三", "PJSIP/trunk-1", "pbx1", 10, queue="billing", queued_at=12,
        offers=1, offer_id=7, agent_id="a0", answered_at=20), 100))
    assert not connects(out)
    agent = cc.agent("a0")
    assert agent.state is AgentState.ON_CALL and agent.call_id == "c1"
    # a new call waits: the agent is talking
    start_out = list(cc.handle(CallStarted("c2", "1382"), 101))
    start_out += cc.handle(CallQueued("c2", "billing"), 101)
    assert not connects(start_out)
    out = list(cc.handle(CallerGone("c1", 16), 130))
    rec = records(out)[0].record
    assert rec.outcome is Outcome.ANSWERED and rec.agent_id == "a0"
    assert rec.talk_s == pytest.approx(110) and rec.wait_s == pytest.approx(8)
    assert rec.caller_name == "张三" and rec.offers == 1
    # the agent, free again, takes the waiting call, with an offer id above the restored one
    assert [c.offer_id for c in connects(out)] == [8]


def test_restored_ringing_call_fails_back_to_its_place_with_the_offer_it_names() -> None:
    cc = make(2)
    cc.handle(AgentLogin("a1"), 0)
    cc.handle(CallRestored("c1", "1381", started_at=0, queue="billing", queued_at=5,
                           offers=2, offer_id=41, agent_id="a1"), 100)
    assert cc.call("c1").state is CallState.OFFERED  # type: ignore[union-attr]
    assert cc.agent("a1").state is AgentState.RESERVED
    cc.handle(OfferFailed("c1", 40, "NOANSWER"), 101)  # a stale offer: ignored
    assert cc.call("c1").state is CallState.OFFERED  # type: ignore[union-attr]
    out = list(cc.handle(OfferFailed("c1", 41, "NOANSWER", agent_fault=False), 102))
    # back at its place and offered again, to the agent free again
    assert [(c.agent_id, c.offer_id) for c in connects(out)] == [("a1", 42)]


def test_a_restore_naming_a_busy_agent_or_an_unknown_queue_changes_nothing() -> None:
    cc = make()
    cc.handle(CallRestored("c1", "1", queue="billing", queued_at=0, offer_id=1,
                           agent_id="a0", answered_at=1), 10)
    with pytest.raises(DuplicateCall):
        cc.handle(CallRestored("c2", "2", queue="billing", queued_at=0, offer_id=2,
                               agent_id="a0", answered_at=2), 10)
    with pytest.raises(UnknownSubject):
        cc.handle(CallRestored("c3", "3", queue="nope", queued_at=0), 10)
    with pytest.raises(DuplicateCall):
        cc.handle(CallRestored("c1", "1", queue="billing", queued_at=0), 10)
    assert cc.call("c2") is None and cc.call("c3") is None


def test_a_restored_ivr_call_is_queued_later_and_keeps_its_start() -> None:
    cc = make()
    cc.handle(CallRestored("c1", "1381", started_at=3, ivr_path=("welcome",)), 10)
    assert cc.call("c1").state is CallState.IVR  # type: ignore[union-attr]
    cc.handle(CallQueued("c1", "billing", ("welcome", "menu")), 12)
    rec = records(list(cc.handle(CallerGone("c1", 16), 20)))[0].record
    assert rec.started_at == 3 and rec.queued_at == 12 and rec.outcome is Outcome.ABANDONED


def test_reroute_routes_what_the_ivr_asked_for_as_call_queued_does() -> None:
    policy = parse_policy(
        "classes: {vip: {}, standard: {}}\n"
        "default_class: standard\n"
        "class_rules: [{when: {vip_level: {min: 1}}, class: vip}]\n"
        "routes: [{when: {vip_level: {min: 1}}, queue: vip, priority: 10}]\n"
        "queues: {general: {skill: general}, vip: {skill: vip}}\n")
    cc = ContactCenter(CoreConfig(policy=policy, agents=()))
    attrs = (("vip_level", "2"),)
    cc.handle(CallStarted("ref", "1"), 0)
    cc.handle(CallQueued("ref", "general", (), 0, attrs), 0)
    cc.handle(CallRestored("c1", "2", queue="general", queued_at=0, attributes=attrs,
                           reroute=True), 0)
    ref, got = cc.call("ref"), cc.call("c1")
    assert ref is not None and got is not None
    assert (got.queue, got.priority, got.customer_class) == \
        (ref.queue, ref.priority, ref.customer_class) == ("vip", 10, "vip")


# ------------------------------------------------- rows and channel variables


def test_a_live_row_puts_the_same_call_back() -> None:
    cc = make()
    cc.handle(CallStarted("c1", "1381", "李四", "PJSIP/trunk-9", "pbx1"), 10)
    cc.handle(CallQueued("c1", "billing", ("welcome", "menu"), 1, (("dialect", "minnan"),)), 12)
    call = cc.call("c1")
    assert call is not None
    row = live_row(call, 13)
    assert row is not None and row.state == "waiting"
    other = make()
    other.handle(restored(row), 50)
    back = other.call("c1")
    assert back is not None
    for name in ("caller", "caller_name", "channel", "server", "started_at", "queue",
                 "queued_at", "priority", "ivr_path", "customer_class", "attrs"):
        assert getattr(back, name) == getattr(call, name), name


def test_queued_variable_round_trip_and_its_bound() -> None:
    text = queued_var("billing", 2, {"dialect": "闽南 & co", "vip_level": "1"}, 100.25, 90.5,
                      ("welcome", "menu"))
    q = parse_queued(text)
    assert q is not None
    assert (q.queue, q.priority, q.queued_at, q.started_at, q.ivr_path) == \
        ("billing", 2, 100.25, 90.5, ("welcome", "menu"))
    assert dict(q.attributes) == {"dialect": "闽南 & co", "vip_level": "1"}
    long = queued_var("q", 0, {f"k{i}": "x" * 100 for i in range(50)}, 1, 1, ())
    assert len(long) <= 1500 and parse_queued(long) is not None
    assert parse_queued("") is None and parse_queued("not=ours") is None
    row = row_from_channel("u1", q, caller="1381", caller_name="", channel="PJSIP/t-1",
                           server="pbx1", now=200)
    ev = restored(row)
    assert ev.queue == "billing" and ev.queued_at == 100.25 and ev.started_at == 90.5


def test_agent_states_come_back_but_not_a_ring_no_answer_pause() -> None:
    rows = [AgentStateRow("a1", "logged_out", "", 1), AgentStateRow("a2", "paused", "lunch", 2),
            AgentStateRow("a3", "paused", "offer NOANSWER", 3),
            AgentStateRow("a4", "on_call", "", 4), AgentStateRow("a5", "bogus", "", 5),
            AgentStateRow("a6", "paused", "phone-in-use", 6)]
    # a busy-phone pause is not kept either: the start-up looks at the phone again
    assert list(login_events(rows)) == [("a1", "out", ""), ("a2", "pause", "lunch"),
                                        ("a3", "login", ""), ("a4", "login", ""),
                                        ("a6", "login", "")]


def test_waiting_calls_are_put_back_in_order_of_virtual_arrival() -> None:
    cc = ContactCenter(CoreConfig(policy=simple_policy({"billing": 20}), agents=()))
    aging = cc.policy.aging_s_per_level

    def row(cid: str, state: str, queued_at: float | None, priority: int = 0) -> LiveCallRow:
        return LiveCallRow(cid, "pbx1", "", "", "", state, 0.0, "billing", None, queued_at,
                           priority, (), (), 0, 0, None, None, 0.0)

    rows = [row("late", "waiting", 100), row("ivr", "ivr", None),
            row("early", "waiting", 50), row("vip", "waiting", 100 + 5 * aging - 1, 5)]
    assert [r.call_id for r in sorted(rows, key=lambda r: order_key(r, cc))] == \
        ["early", "vip", "late", "ivr"]


async def test_the_database_keeps_calls_in_progress_until_their_record(tmp_path: Path) -> None:
    db = Database(db_url(tmp_path))
    await db.create()
    cc = make()
    cc.handle(CallStarted("c1", "1381"), 10)
    cc.handle(CallStarted("c2", "1382"), 10)
    rows = []
    for cid in ("c1", "c2"):
        out = cc.handle(CallQueued(cid, "billing"), 11)
        assert not records(list(out))
        call = cc.call(cid)
        assert call is not None
        row = live_row(call, 11)
        assert row is not None
        rows.append(row)
    await db.write_batch([], [], (), [rows[0], rows[1]], [AgentStateRow("a0", "paused", "x", 1)])
    # a newer row of c1 replaces the older one
    newer = LiveCallRow(**{**{f: getattr(rows[0], f) for f in rows[0].__slots__},
                           "offers": 3, "updated_at": 12})  # type: ignore[arg-type]
    await db.write_batch([], [], (), [newer])
    got = {r.call_id: r for r in await db.live_calls()}
    assert set(got) == {"c1", "c2"} and got["c1"].offers == 3 and got["c2"] == rows[1]
    # the record and the row's removal go together
    rec = records(list(cc.handle(CallerGone("c1", 16), 20)))[0].record
    await db.write_batch([rec], [], (), [newer])  # a row in the same batch does not survive
    assert [r.call_id for r in await db.live_calls()] == ["c2"]
    assert await db.recorded(["c1", "c2"]) == {"c1"}
    assert [(a.agent_id, a.state) for a in await db.agent_states()] == [("a0", "paused")]
    await db.dispose()


# ------------------------------------------------------------ where callers are


def chan(uid: str, context: str, app: str, *, bridge: str = "", linked: str = "",
         exten: str = "10086", **variables: str) -> AmiMessage:
    headers = [("Event", "CoreShowChannel"), ("Channel", f"PJSIP/x-{uid}"),
               ("Context", context), ("Exten", exten), ("Priority", "2"),
               ("Uniqueid", uid), ("Linkedid", linked or uid), ("Application", app),
               ("BridgeId", bridge), ("Duration", "00:01:05")]
    headers += [("ChanVariable", f"{k}={v}") for k, v in variables.items()]
    return AmiMessage(tuple(headers))


def test_where_callers_are_by_core_show_channels() -> None:
    events = [
        chan("hold", "acd-hotline", "MusicOnHold", ACD_CALL_ID="hold"),
        chan("ring", "acd-connect", "Dial", exten="1001", ACD_OFFER="5"),
        chan("ring-agent", "agents", "AppDial", linked="ring", exten="s"),
        chan("talk", "acd-connect", "Dial", bridge="b1", exten="1002"),
        chan("talk-agent", "agents", "AppDial", bridge="b1", linked="talk", exten="s"),
        chan("requeue", "acd-connect", "AGI"),
        chan("recover", "acd-recover", "Playback"),
        chan("voicemail", "acd-recover", "VoiceMail", exten="last"),
        chan("transfer", "acd-transfer", "Dial", exten="0755"),
        AmiMessage((("Event", "CoreShowChannelsComplete"),)),
    ]
    pbx = PbxChannels(events, connect_context="acd-connect",
                      holding_contexts=("acd-hotline", "acd-connect"))
    assert pbx.where("gone").place is Place.GONE
    assert pbx.where("hold").place is Place.HOLDING
    ring = pbx.where("ring")
    assert (ring.place, ring.extension, ring.agent_leg) == (Place.RINGING, "1001", "ring-agent")
    assert ring.channel is not None and ring.channel.variables == {"ACD_OFFER": "5"}
    talk = pbx.where("talk")
    assert (talk.place, talk.extension, talk.agent_leg) == (Place.TALKING, "1002", "talk-agent")
    assert pbx.where("requeue").place is Place.HOLDING
    assert pbx.where("recover").place is Place.HOLDING
    assert pbx.where("voicemail").place is Place.ELSEWHERE  # the last resort
    assert pbx.where("transfer").place is Place.ELSEWHERE
    assert [c.uniqueid for c in pbx.ours("ACD_CALL_ID")] == ["hold"]
    assert pbx.by_uid["hold"].duration_s == 65
