"""The engine's parts on their own, with fakes: the timers seam, the call
registry and AMI event translation, the Redirects, and the engine itself on
a virtual clock (no PBX, no subclass)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from acd.adapters.ami import AmiActionFailed, AmiNotConnected
from acd.core.errors import CoreError, UnknownSubject
from acd.core.model import (
    Action,
    AgentHungUp,
    AgentLogin,
    AgentReady,
    AgentState,
    CallerGone,
    CallQueued,
    CallStarted,
    ConnectCall,
    CoreConfig,
    Event,
    FallbackCall,
    OfferAnswered,
    OfferFailed,
    Outcome,
    StartTimer,
    WriteCallRecord,
)
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.loaders.routing import parse_policy
from acd.protocols.ami import AmiMessage
from acd.runtime import moves
from acd.runtime.ami_events import AmiEvents
from acd.runtime.calls import CallRegistry, CallReports, LiveCall
from acd.runtime.engine import Engine
from acd.runtime.moves import PbxMoves
from acd.runtime.settings import EngineConfig
from acd.runtime.timers import LoopTimers, TimerKey, VirtualTimers

ROOT = Path(__file__).resolve().parent.parent


def ami(event: str, **headers: str) -> AmiMessage:
    return AmiMessage((("Event", event), *headers.items()))


class Sink:
    """Stands in for ``Engine.handle``: records the events."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> CoreError | None:
        self.events.append(event)
        return None


# ------------------------------------------------------------------ timers


def test_virtual_timers_fire_in_time_order_and_respect_cancel_and_replace() -> None:
    vt = VirtualTimers(100.0)
    fired: list[tuple[TimerKey, float]] = []

    def fire(key: TimerKey) -> None:
        fired.append((key, vt()))
        if key == ("a", "1"):  # a timer started by a fire counts at once
            vt.start(("c", "1"), vt() + 1, fire)

    vt.start(("b", "1"), 105.0, fire)
    vt.start(("a", "1"), 102.0, fire)
    vt.start(("x", "1"), 101.0, fire)
    vt.cancel(("x", "1"))
    vt.start(("b", "1"), 104.0, fire)  # replaced: fires once, at the new time
    assert vt.armed() == 2 and vt.due(("b", "1")) == 104.0
    assert vt.advance(1.5) == 0 and vt() == 101.5
    assert vt.advance(10) == 3
    assert fired == [(("a", "1"), 102.0), (("c", "1"), 103.0), (("b", "1"), 104.0)]
    assert vt() == 111.5 and vt.armed() == 0
    with pytest.raises(ValueError):
        vt.advance(-1)


async def test_loop_timers_run_a_faster_clock() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    timers = LoopTimers(lambda: 1000.0 + (loop.time() - t0) * 100, speed=100)
    done = asyncio.Event()
    fired: list[TimerKey] = []

    def fire(key: TimerKey) -> None:
        fired.append(key)
        done.set()

    timers.start(("gone", "1"), 1001.0, fire)
    timers.cancel(("gone", "1"))
    timers.start(("wrap_up", "a1"), 1005.0, fire)  # 5 simulated s = 50 ms
    assert timers.armed() == 1
    await asyncio.wait_for(done.wait(), 2)
    assert fired == [("wrap_up", "a1")] and timers.armed() == 0
    assert loop.time() - t0 == pytest.approx(0.05, abs=0.04)


# -------------------------------------------------- registry and AMI events


def registry_with(call_id: str = "c1") -> tuple[CallRegistry, Sink, AmiEvents, LiveCall]:
    calls, sink = CallRegistry(), Sink()
    live = LiveCall(call_id, "PJSIP/trunk-1")
    calls.add(live)
    return calls, sink, AmiEvents(calls, CallReports(calls, sink)), live


def test_a_ring_nobody_answers_then_the_caller_hangs_up() -> None:
    calls, sink, events, live = registry_with()
    live.redirect_offer = 7
    events.on_event(ami("DialBegin", Uniqueid="c1", DestUniqueid="ag1"))
    assert calls.leg("ag1") == ("c1", "agent") and live.dial_offer == 7
    events.on_event(ami("DialEnd", Uniqueid="c1", DialStatus="NOANSWER"))
    assert sink.events == [OfferFailed("c1", 7, "NOANSWER")]
    assert live.redirect_offer is None and live.dial_offer is None
    assert calls.leg("ag1") is None and live.agent_uid is None
    events.on_event(ami("Hangup", Uniqueid="ag1"))  # no longer ours
    events.on_event(ami("Rename", Uniqueid="c1", Newname="PJSIP/trunk-1<MASQ>"))
    assert live.channel == "PJSIP/trunk-1<MASQ>"
    events.on_event(ami("Hangup", Uniqueid="c1", Cause="17"))
    events.on_event(ami("Hangup", Uniqueid="c1", Cause="16"))  # once only
    assert sink.events[1:] == [CallerGone("c1", 17, ())]


def test_answer_then_agent_hangs_up_and_the_record_forgets_the_channels() -> None:
    calls, sink, events, live = registry_with()
    live.redirect_offer = 3
    events.on_event(ami("DialBegin", Uniqueid="c1", DestUniqueid="ag1"))
    events.on_event(ami("DialEnd", Uniqueid="c1", DialStatus="ANSWER"))
    events.on_event(ami("Hangup", Uniqueid="ag1", Cause="16"))
    assert sink.events == [OfferAnswered("c1", 3), AgentHungUp("c1")]
    assert calls.finished("c1") is live and live.ended
    assert calls.get("c1") is None and calls.leg("c1") is None and len(calls) == 0
    # a record already written: a late report of the caller's hang-up sends nothing
    CallReports(calls, sink).caller_gone("c1", 16, live)
    events.on_event(ami("DialEnd", Uniqueid="c1", DialStatus="CANCEL"))
    assert len(sink.events) == 2
    # without the record at hand, the core is told and ignores a call it no longer has
    CallReports(calls, sink).caller_gone("c1", 16)
    assert sink.events[2:] == [CallerGone("c1", 16, ())]


def test_a_fallback_keeps_the_record_until_its_redirect_is_out() -> None:
    calls, _sink, _events, live = registry_with()
    live.fallback = "callback"
    assert calls.finished("c1") is live and live.ended
    assert calls.get("c1") is live and list(calls.live_calls()) == [live]
    calls.discard("c1")
    assert calls.get("c1") is None


# ------------------------------------------------------------------ moves


class FakeAmi:
    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.fail = fail or {}

    async def send(self, action: str, fields: dict[str, str] | None = None) -> AmiMessage:
        self.sent.append((action, dict(fields or {})))
        if action in self.fail:
            raise self.fail[action]
        return AmiMessage((("Response", "Success"),))


def connect_action(offer: int = 5) -> ConnectCall:
    return ConnectCall("c1", offer, "a1", "1001", "PJSIP/old-name", "pbx1", 14.6)


async def test_connect_sets_the_variables_then_redirects_the_current_channel() -> None:
    calls, sink, _events, live = registry_with()
    live.channel = "PJSIP/renamed"
    fake = FakeAmi()
    await PbxMoves(fake, calls, CallReports(calls, sink), "acd-connect").connect(connect_action())
    assert [(a, f.get("Variable"), f.get("Value")) for a, f in fake.sent] == [
        ("Setvar", "ACD_OFFER", "5"), ("Setvar", "ACD_RING_TIMEOUT", "15"),
        ("Redirect", None, None)]
    assert {f["Channel"] for _, f in fake.sent} == {"PJSIP/renamed"}
    assert fake.sent[2][1] == {"Channel": "PJSIP/renamed", "Context": "acd-connect",
                               "Exten": "1001", "Priority": "1"}
    assert sink.events == []


@pytest.mark.parametrize(("error", "expected"), [
    (AmiActionFailed("Redirect", "Channel specified does not exist"), CallerGone("c1", 16, ())),
    (AmiActionFailed("Redirect", "Permission denied"),
     OfferFailed("c1", 5, "REDIRECT Permission denied", agent_fault=False)),
    (AmiNotConnected("link down"), OfferFailed("c1", 5, "PBX-UNREACHABLE", agent_fault=False)),
])
async def test_a_failed_redirect_is_reported_to_the_core(
        monkeypatch: pytest.MonkeyPatch, error: Exception, expected: Event) -> None:
    monkeypatch.setattr(moves, "REDIRECT_RETRY_S", 0.0)
    calls, sink, _events, live = registry_with()
    live.redirect_offer = 5
    fake = FakeAmi({"Redirect": error})
    await PbxMoves(fake, calls, CallReports(calls, sink), "acd-connect").connect(connect_action())
    assert sink.events == [expected]
    if isinstance(expected, OfferFailed):
        assert live.redirect_offer is None  # not a move: a hang-up now is the caller's


async def test_a_failed_fallback_redirect_hangs_up_and_releases_the_hold() -> None:
    calls, sink, _events, live = registry_with()
    live.fallback = "sms"
    calls.finished("c1")
    fake = FakeAmi({"Redirect": AmiNotConnected("down")})
    await PbxMoves(fake, calls, CallReports(calls, sink), "acd-connect").fallback(
        live, FallbackCall("c1", "sms", "billing"))
    assert [a for a, _ in fake.sent] == ["Redirect", "Hangup"]
    assert live.fallback_sent.is_set() and calls.get("c1") is None


# ------------------------------------------- the engine on a virtual clock


async def test_engine_on_virtual_timers_with_an_observer(tmp_path: Path) -> None:
    """The seams the live simulator uses: the engine's timers on another
    clock and an observer of its decisions; no subclass, no PBX."""
    policy = parse_policy("""
queues:
  billing: {skill: billing, max_wait: {after: 30, fallback: callback}}
  tech: {skill: tech}
  general: {skill: general}
""")
    vt = VirtualTimers(1_000.0)
    seen: list[tuple[Event, tuple[Action, ...], int]] = []

    def observe(event: Event, actions: Sequence[Action], started_ns: int) -> None:
        seen.append((event, tuple(actions), started_ns))

    engine = Engine(EngineConfig(
        core=CoreConfig(policy=policy), flow=load_flow(ROOT / "ivr_flows" / "basic.yaml"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"),
        clock=vt, timers=vt, observer=observe)
    try:
        assert engine.handle(CallStarted("c1", "13800138000")) is None
        assert engine.handle(CallQueued("c1", "billing")) is None
        assert StartTimer(("max_wait", "c1"), 1_030.0) in seen[-1][1]
        assert vt.armed() == 1 and seen[-1][2] > 0
        assert vt.advance(29.9) == 0 and engine.core.call("c1") is not None
        assert vt.advance(0.1) == 1
        last = seen[-1][1]
        assert FallbackCall("c1", "callback", "billing") in last
        [rec] = [a.record for a in last if isinstance(a, WriteCallRecord)]
        assert rec.outcome is Outcome.FALLBACK and rec.wait_s == pytest.approx(30.0)
        assert engine.core.call("c1") is None and engine.counters.calls_finished == 1

        # refusals come back; only the engine's own sources count them as errors
        refusal = engine.submit(AgentReady("nobody"))
        assert isinstance(refusal, UnknownSubject) and engine.counters.errors == 0
        assert isinstance(engine.handle(AgentReady("nobody")), UnknownSubject)
        assert engine.counters.errors == 1
        # a hang-up reported for a call that is gone is no refusal
        assert engine.handle(CallerGone("c1", 16)) is None and engine.counters.errors == 1
    finally:
        engine.timers.cancel_all()
        await engine.db.dispose()


async def test_an_observer_that_raises_cannot_strand_a_call(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The core's decision is carried out whatever the observer does: the
    offer's Redirect goes out, the failure is logged with the event and
    counted; only ``Exception`` is caught."""
    policy = parse_policy("queues:\n  billing: {skill: billing}\n")
    vt = VirtualTimers(1_000.0)
    failing: list[type[BaseException]] = [RuntimeError]

    def observe(event: Event, actions: Sequence[Action], started_ns: int) -> None:
        raise failing[0](f"observer broke on {type(event).__name__}")

    engine = Engine(EngineConfig(
        core=CoreConfig(policy=policy, agents=(AgentProfile("a1", "1001",
                                                            skills={"billing": 5}),)),
        flow=load_flow(ROOT / "ivr_flows" / "basic.yaml"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"),
        clock=vt, timers=vt, observer=observe)
    fake = FakeAmi()
    engine.servers["pbx1"].moves = PbxMoves(
        fake, engine.calls, CallReports(engine.calls, engine.handle), "acd-connect")
    try:
        with caplog.at_level(logging.ERROR, logger="acd.runtime.engine"):
            assert engine.handle(AgentLogin("a1")) is None
            engine.calls.add(LiveCall("c1", "PJSIP/trunk-1"))
            assert engine.handle(CallStarted("c1", "13800138000")) is None
            assert engine.handle(CallQueued("c1", "billing")) is None
        assert engine.counters.errors == 3
        assert "observer failed on event CallQueued" in caplog.text
        assert "observer broke on CallQueued" in caplog.text  # the traceback
        # the ConnectCall was carried out: the offer's Redirect goes out
        live, call = engine.calls.get("c1"), engine.core.call("c1")
        assert engine.core.agent("a1").state is AgentState.RESERVED
        assert live is not None and call is not None and live.redirect_offer == call.offer_id
        for _ in range(100):  # bounded: the fake answers at once
            if len(fake.sent) == 3:
                break
            await asyncio.sleep(0)
        assert [a for a, _ in fake.sent] == ["Setvar", "Setvar", "Redirect"]
        assert fake.sent[2][1]["Exten"] == "1001"
        # not BaseException: a KeyboardInterrupt in the observer goes up
        failing[0] = KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            engine.handle(OfferAnswered("c1", call.offer_id))
        assert engine.counters.errors == 3
    finally:
        engine.timers.cancel_all()
        await engine.db.dispose()
