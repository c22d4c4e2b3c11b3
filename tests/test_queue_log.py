"""The queue_log (issue 15, item 2): Asterisk-format lines from the core's
decisions (acd/reports/queue_log.py), read back by a reader written from
the documented format (acd/reports/queue_log_read.py), appended to a file
(acd/adapters/queue_log.py) and the realtime table (the record writer),
wired to the engine (acd/runtime/queue_log_wiring.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import SECRET, db_url, engine_on_pbx
from sqlalchemy import select

from acd.adapters.ami import AmiConfig
from acd.adapters.queue_log import QueueLogFile
from acd.adapters.rows import fit_item, from_json, to_json
from acd.adapters.schema import queue_log as queue_log_table
from acd.adapters.storage import Database, RecordWriter
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    AgentHungUp,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    CallerGone,
    CallQueued,
    CallRestored,
    CallStarted,
    ConversationEnded,
    CoreConfig,
    Event,
    IvrEnded,
    OfferAnswered,
    OfferFailed,
    TimerFired,
)
from acd.core.policy import (
    Policy,
    Preferences,
    QueuePolicy,
    Requirements,
    Step,
    simple_policy,
)
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.reports.queue_log import QueueLogEntry, QueueLogTranslator
from acd.reports.queue_log_read import (
    EVENT_FIELDS,
    Entry,
    QueueLogFormatError,
    counts,
    parse_lines,
    parse_row,
    parse_text,
    queue_counts,
)
from acd.runtime.queue_log_wiring import CoreQueueLogView, QueueLogConfig, QueueLogWiring
from acd.runtime.settings import ConfigError, EngineConfig, parse_config
from sim.config import CallerScript, PhoneBehaviour

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "asterisk-transcripts" / "queue_log.txt"
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")


# ------------------------------------------------------------------ translator


class _View(CoreQueueLogView):
    """The core's view, with the agent leg's Uniqueid a test can predict."""

    def agent_channel(self, call_id: str) -> str:
        return f"{call_id}-agent"


class Harness:
    """The real core and the translator following its decisions."""

    def __init__(self, policy: Policy | None = None,
                 agents: dict[str, tuple[str, ...]] | None = None, wrap_up_s: float = 5.0,
                 rona_pause_s: float | None = 30.0, **kw: object) -> None:
        policy = policy or simple_policy({"billing": 20.0, "tech": 20.0})
        agents = agents if agents is not None else {"a1": ("billing", "tech")}
        self.core = ContactCenter(CoreConfig(
            policy=policy, agents=agents_for_queues(
                {a: (str(1001 + i), qs) for i, (a, qs) in enumerate(agents.items())}),
            wrap_up_s=wrap_up_s, rona_pause_s=rona_pause_s))
        self.tr = QueueLogTranslator(_View(self.core), **kw)  # type: ignore[arg-type]

    def feed(self, ev: Event, t: float) -> list[str]:
        actions = self.core.handle(ev, t)
        return [e.line() for e in self.tr.follow(ev, actions, t)]

    def call(self, cid: str, t: float, queue: str = "billing", caller: str = "13800138000"
             ) -> list[str]:
        return self.feed(CallStarted(cid, caller), t) + self.feed(CallQueued(cid, queue), t)


def test_queuestart_is_written_as_asterisks_logger_starts() -> None:
    h = Harness()
    assert [e.line() for e in h.tr.start(1700000000.9)] == [
        "1700000000|NONE|NONE|NONE|QUEUESTART|"]


def test_login_ready_is_one_addmember_per_queue_and_logout_removes() -> None:
    h = Harness()
    assert h.feed(AgentLogin("a1"), 100.0) == [
        "100|MANAGER|billing|Agent/a1|ADDMEMBER|",
        "100|MANAGER|tech|Agent/a1|ADDMEMBER|"]
    assert h.feed(AgentLogout("a1"), 200.0) == [
        "200|MANAGER|billing|Agent/a1|REMOVEMEMBER|",
        "200|MANAGER|tech|Agent/a1|REMOVEMEMBER|"]


def test_login_paused_says_paused_and_ready_then_unpauses() -> None:
    h = Harness(agent_format="{agent}")
    assert h.feed(AgentLogin("a1", ready=False), 10.0) == [
        "10|MANAGER|billing|a1|ADDMEMBER|PAUSED", "10|MANAGER|tech|a1|ADDMEMBER|PAUSED"]
    assert h.feed(AgentReady("a1"), 11.0) == [
        "11|NONE|NONE|a1|UNPAUSEALL|", "11|NONE|billing|a1|UNPAUSE|",
        "11|NONE|tech|a1|UNPAUSE|"]
    assert h.feed(AgentPause("a1", "lunch"), 12.0) == [
        "12|NONE|NONE|a1|PAUSEALL|lunch", "12|NONE|billing|a1|PAUSE|lunch",
        "12|NONE|tech|a1|PAUSE|lunch"]


def test_pause_per_queue_only_without_pause_all() -> None:
    h = Harness(pause_all=False)
    h.feed(AgentLogin("a1"), 10.0)
    assert h.feed(AgentPause("a1", "break"), 12.0) == [
        "12|NONE|billing|Agent/a1|PAUSE|break", "12|NONE|tech|Agent/a1|PAUSE|break"]


def test_answered_call_enterqueue_connect_completecaller_field_by_field() -> None:
    h = Harness()
    h.feed(AgentLogin("a1", ready=False), 90.0)
    assert h.call("c1", 100.4) == ["100|c1|billing|NONE|ENTERQUEUE||13800138000|1"]
    # the agent becomes ready at 103.7: offered at once, answers at 106.2
    assert h.feed(AgentReady("a1"), 103.7)[-1] == "103|NONE|tech|Agent/a1|UNPAUSE|"
    # CONNECT: hold time (s) | the agent leg's Uniqueid | ring time (s)
    assert h.feed(OfferAnswered("c1", 1), 106.2) == [
        "106|c1|billing|Agent/a1|CONNECT|6|c1-agent|3"]
    # COMPLETECALLER: hold time | talk time | original position
    assert h.feed(CallerGone("c1"), 170.9) == [
        "170|c1|billing|Agent/a1|COMPLETECALLER|6|64|1"]


def test_agent_hangup_is_completeagent() -> None:
    h = Harness()
    h.feed(AgentLogin("a1"), 0.0)
    h.call("c1", 10.0)
    h.feed(OfferAnswered("c1", 1), 12.0)
    assert h.feed(AgentHungUp("c1"), 50.0) == ["50|c1|billing|Agent/a1|COMPLETEAGENT|2|38|1"]
    h.feed(TimerFired(("wrap_up", "a1")), 55.0)
    h.call("c2", 60.0)
    h.feed(OfferAnswered("c2", 2), 61.0)
    assert h.feed(ConversationEnded("c2", "agent"), 70.0) == [
        "70|c2|billing|Agent/a1|COMPLETEAGENT|1|9|1"]


def test_abandon_position_now_and_at_entry() -> None:
    h = Harness(agents={})
    assert h.call("c1", 0.0)[0].endswith("|1")
    assert h.call("c2", 1.0) == ["1|c2|billing|NONE|ENTERQUEUE||13800138000|2"]
    assert h.call("c3", 2.0)[0].endswith("|3")
    assert h.feed(CallerGone("c1"), 5.0) == ["5|c1|billing|NONE|ABANDON|1|1|5"]
    # c3 is second now, entered third: ABANDON position | original position | wait
    assert h.feed(CallerGone("c3"), 9.5) == ["9|c3|billing|NONE|ABANDON|2|3|7"]


def test_positions_follow_app_queues_priority_placement() -> None:
    """app_queue's join_queue puts a caller after every caller of its
    priority or higher and ahead of the lower ones: the positions written
    are places in that list (not in order of arrival)."""
    h = Harness(agents={})
    assert h.call("c1", 0.0)[-1].endswith("|1")
    assert h.call("c2", 1.0)[-1].endswith("|2")
    h.feed(CallStarted("v1", "138"), 2.0)
    assert h.feed(CallQueued("v1", "billing", priority=2), 2.0) == [
        "2|v1|billing|NONE|ENTERQUEUE||138|1"]  # ahead of both
    h.feed(CallStarted("v2", "139"), 3.0)
    assert h.feed(CallQueued("v2", "billing", priority=2), 3.0) == [
        "3|v2|billing|NONE|ENTERQUEUE||139|2"]  # behind v1, ahead of c1 and c2
    assert h.call("c3", 4.0)[-1].endswith("|5")
    # c1 entered first, is third now (v1, v2 ahead): position | position on entry | wait
    assert h.feed(CallerGone("c1"), 6.0) == ["6|c1|billing|NONE|ABANDON|3|1|6"]
    assert h.feed(CallerGone("v1"), 7.0) == ["7|v1|billing|NONE|ABANDON|1|1|5"]
    assert h.feed(CallerGone("c3"), 8.0) == ["8|c3|billing|NONE|ABANDON|3|5|4"]


def test_ring_no_answer_then_auto_pause_with_the_reason() -> None:
    h = Harness()
    h.feed(AgentLogin("a1"), 0.0)
    h.call("c1", 10.0)
    # RINGNOANSWER's one field is the ring time in milliseconds
    assert h.feed(OfferFailed("c1", 1, "NOANSWER"), 25.25) == [
        "25|c1|billing|Agent/a1|RINGNOANSWER|15250",
        "25|NONE|NONE|Agent/a1|PAUSEALL|offer NOANSWER",
        "25|NONE|billing|Agent/a1|PAUSE|offer NOANSWER",
        "25|NONE|tech|Agent/a1|PAUSE|offer NOANSWER"]
    # back to ready by the ring-no-answer timer: unpaused, and offered again
    out = h.feed(TimerFired(("ready", "a1")), 55.25)
    assert out == ["55|NONE|NONE|Agent/a1|UNPAUSEALL|", "55|NONE|billing|Agent/a1|UNPAUSE|",
                   "55|NONE|tech|Agent/a1|UNPAUSE|"]
    assert h.feed(OfferAnswered("c1", 2), 57.0) == [
        "57|c1|billing|Agent/a1|CONNECT|47|c1-agent|2"]


def test_caller_leaving_while_it_rings_is_ringcanceled_then_abandon() -> None:
    h = Harness()
    h.feed(AgentLogin("a1"), 0.0)
    h.call("c1", 10.0)
    assert h.feed(CallerGone("c1"), 12.5) == [
        "12|c1|billing|Agent/a1|RINGCANCELED|2500",
        "12|c1|billing|NONE|ABANDON|1|1|2"]


def test_max_wait_is_exitwithtimeout() -> None:
    pol = simple_policy({"billing": 20.0})
    pol = dataclasses.replace(pol, queues={"billing": dataclasses.replace(
        pol.queues["billing"], max_wait_s=60.0)})
    h = Harness(pol, agents={})
    h.call("c0", 0.0)
    h.call("c1", 1.0)
    assert h.feed(TimerFired(("max_wait", "c0")), 60.0) == [
        "60|c0|billing|NONE|EXITWITHTIMEOUT|1|1|60"]
    assert h.feed(TimerFired(("max_wait", "c1")), 61.0) == [
        "61|c1|billing|NONE|EXITWITHTIMEOUT|1|2|60"]


def test_overflow_leaves_one_queue_and_enters_the_next() -> None:
    pol = simple_policy({"billing": 20.0, "general": 20.0})
    pol = dataclasses.replace(pol, queues={**pol.queues, "billing": dataclasses.replace(
        pol.queues["billing"], escalate=(Step(30.0, overflow="general"),))})
    h = Harness(pol, agents={"a1": ("general",)})
    h.feed(AgentLogin("a1", ready=False), 0.0)
    h.call("c1", 5.0, caller="138")
    assert h.feed(TimerFired(("escalate", "c1")), 35.0) == [
        "35|c1|billing|NONE|EXITWITHTIMEOUT|1|1|30",
        "35|c1|general|NONE|ENTERQUEUE||138|1"]
    h.feed(AgentReady("a1"), 40.0)
    assert h.feed(OfferAnswered("c1", 1), 41.0) == [
        "41|c1|general|Agent/a1|CONNECT|6|c1-agent|1"]


def test_calls_picked_up_after_a_restart_end_without_a_second_enterqueue() -> None:
    h = Harness()
    h.feed(AgentLogin("a1"), 0.0)
    assert h.feed(CallRestored("t1", "139", started_at=50.0, queue="billing", queued_at=52.0,
                               offers=1, offer_id=7, agent_id="a1", answered_at=60.0),
                  100.0) == []
    assert h.feed(CallRestored("w1", "138", started_at=90.0, queue="billing",
                               queued_at=95.0), 100.0) == []
    assert h.feed(CallerGone("w1"), 110.0) == ["110|w1|billing|NONE|ABANDON|1|1|15"]
    assert h.feed(CallerGone("t1"), 120.0) == [
        "120|t1|billing|Agent/a1|COMPLETECALLER|8|60|1"]


def test_a_call_ended_in_the_ivr_writes_nothing() -> None:
    h = Harness()
    assert h.feed(CallStarted("c1", "138"), 1.0) == []
    assert h.feed(IvrEnded("c1"), 2.0) == []
    assert h.tr.tracked == 0


def test_fields_never_carry_the_separator_or_a_line_break() -> None:
    e = QueueLogEntry(5.0, "c|1", "q\nx", "Agent/a|b", "PAUSE", ("a|b\r",))
    assert e.line() == "5|c_1|q x|Agent/a_b|PAUSE|a_b "
    assert len(parse_text(e.line())) == 1


def test_a_bad_agent_format_is_refused() -> None:
    with pytest.raises(ValueError, match="agent_format"):
        Harness(agent_format="Agent/{id}")


def test_realtime_columns_split_the_data_like_asterisk() -> None:
    e = QueueLogEntry(5.0, "c1", "q", "NONE", "ENTERQUEUE", ("", "138", "1"))
    assert e.data_columns() == ("", "138", "1", "", "")
    six = QueueLogEntry(5.0, "c1", "q", "NONE", "X", ("1", "2", "3", "4", "5", "6"))
    assert six.data_columns() == ("1", "2", "3", "4", "5|6")


# ---------------------------------------------------------------------- reader


SAMPLE = """\
1700000000|NONE|NONE|NONE|QUEUESTART|
1700000010|1700000010.1|billing|NONE|ENTERQUEUE||13800138000|1
1700000012|1700000010.1|billing|PJSIP/1001|RINGNOANSWER|2000
1700000015|1700000010.1|billing|PJSIP/1002|CONNECT|5|1700000013.4|2
1700000075|1700000010.1|billing|PJSIP/1002|COMPLETECALLER|5|60|1
1700000080|1700000079.2|tech|NONE|ENTERQUEUE||139|1
1700000090|1700000079.2|tech|NONE|ABANDON|1|1|10
1700000100|MANAGER|tech|PJSIP/1002|ADDMEMBER|
1700000101|NONE|tech|PJSIP/1002|PAUSE|lunch
"""


def test_reader_types_the_documented_fields_with_line_numbers() -> None:
    entries = parse_text(SAMPLE, "sample")
    assert [e.line_no for e in entries] == list(range(1, 10))
    connect = entries[3]
    assert (connect.time, connect.callid, connect.queue, connect.agent, connect.event) == (
        1700000015, "1700000010.1", "billing", "PJSIP/1002", "CONNECT")
    assert connect["holdtime_s"] == 5 and connect["bridged_uniqueid"] == "1700000013.4"
    assert connect["ringtime_s"] == 2
    assert entries[2]["ringtime_ms"] == 2000
    assert entries[1]["callerid"] == "13800138000" and entries[1]["origpos"] == 1
    assert entries[8]["reason"] == "lunch"
    assert entries[0].data == ("",) and entries[0].fields == {}
    assert queue_counts(entries) == {
        "billing": {"offered": 1, "answered": 1, "abandoned": 0, "timeouts": 0, "completed": 1},
        "tech": {"offered": 1, "answered": 0, "abandoned": 1, "timeouts": 0, "completed": 0}}
    assert counts(entries)[("tech", "ADDMEMBER")] == 1


@pytest.mark.parametrize(("line", "problem"), [
    ("17000|c1|q|NONE", "4 fields"),
    ("17x00|c1|q|NONE|ENTERQUEUE||1|1", "not whole seconds"),
    ("17000|c1|q|NONE|enter queue|", "not an event name"),
    ("17000|c1|q|NONE|CONNECT|5|u|soon", "CONNECT ringtime_s: 'soon' is not a whole number"),
    ("17000|c1|q|NONE|ABANDON|1|1", "needs 3"),
    ("17000|c1|q|NONE|RINGNOANSWER|1|2", "at most 1"),
    ("17000||q|NONE|PAUSE|x", "callid is empty"),
])
def test_reader_names_the_line_of_a_malformed_one(line: str, problem: str) -> None:
    with pytest.raises(QueueLogFormatError) as err:
        list(parse_lines(["1700000000|NONE|NONE|NONE|QUEUESTART|", "", line], "ql"))
    assert str(err.value).startswith("ql:3: ")
    assert problem in str(err.value)


def test_reader_reads_a_realtime_row_as_the_line() -> None:
    import datetime as dt

    t = dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC)
    e = parse_row({"time": t, "callid": "c1", "queuename": "q", "agent": "NONE",
                   "event": "ENTERQUEUE", "data1": "", "data2": "138", "data3": "2",
                   "data4": "", "data5": ""})
    assert (e.time, e.event, e["callerid"], e["origpos"]) == (1700000000, "ENTERQUEUE", "138", 2)
    e2 = parse_row({"time": 5, "callid": "c1", "queuename": "q", "agent": "A",
                    "event": "CONNECT", "data": "1|u|2"})
    assert e2["ringtime_s"] == 2


def _shape(e: Entry) -> tuple[str, int, tuple[str, ...]]:
    """An entry's shape: its event, how many data fields, and which of them
    are numbers (the rest text)."""
    kinds = tuple("n" if d.lstrip("-").isdigit() else ("e" if d == "" else "t")
                  for d in e.data)
    return e.event, len(e.data), kinds


@pytest.mark.skipif(not REAL.exists(), reason="no recorded queue_log of a real Asterisk "
                    "(tests/data/asterisk-transcripts/queue_log.txt)")
def test_reader_reads_a_real_asterisks_queue_log() -> None:
    entries = _real()
    assert len(entries) == 43
    # the recorded scenario (the file's header): 7 calls in support, one in shortwait
    assert queue_counts(entries) == {
        "support": {"offered": 7, "answered": 5, "abandoned": 2, "timeouts": 0,
                    "completed": 5},
        "shortwait": {"offered": 1, "answered": 0, "abandoned": 0, "timeouts": 1,
                      "completed": 0}}
    first = next(e for e in entries if e.event == "CONNECT")
    assert (first.line_no, first.callid, first.agent) == (36, "1796220756.0", "Alice")
    assert (first["holdtime_s"], first["bridged_uniqueid"], first["ringtime_s"]) == (
        1, "1796220756.2", 1)
    rna = next(e for e in entries if e.event == "RINGNOANSWER")
    assert rna["ringtime_ms"] == 5000
    assert next(e for e in entries if e.event == "EXITWITHTIMEOUT")["waittime_s"] == 10
    assert entries[-5]["callername"] == "Zhang_Wei"
    for e in entries:
        if EVENT_FIELDS.get(e.event):
            assert e.fields, e


def _real() -> list[Entry]:
    """The recorded file, its header of comments (notes of the recording,
    not Asterisk's) blanked so the line numbers stay the file's."""
    text = REAL.read_text(encoding="utf-8")
    lines = ["" if ln.startswith("#") else ln for ln in text.split("\n")]
    return list(parse_lines(lines, str(REAL)))


@pytest.mark.skipif(not REAL.exists(), reason="no recorded queue_log of a real Asterisk")
def test_our_lines_have_the_real_asterisks_shapes() -> None:
    """Every event both write: the same number of data fields, numbers where
    Asterisk writes numbers, empty where it writes nothing."""
    real = _real()
    ours = parse_text("\n".join(_a_day_of_lines()), "ours")
    real_shapes: dict[str, set[tuple[int, tuple[str, ...]]]] = {}
    for e in real:
        _, n, kinds = _shape(e)
        real_shapes.setdefault(e.event, set()).add((n, kinds))
    compared = set()
    for e in ours:
        if e.event not in real_shapes:
            continue
        _, n, kinds = _shape(e)
        counts_real = {k for k, _ in real_shapes[e.event]}
        assert n in counts_real, (e, real_shapes[e.event])
        for rn, rk in real_shapes[e.event]:
            if rn != n:
                continue
            for mine, theirs in zip(kinds, rk, strict=True):
                # a number stays a number; text may be empty on one side
                assert (mine == "n") == (theirs == "n") or "e" in (mine, theirs), (e, rk)
        compared.add(e.event)
    assert compared == {"QUEUESTART", "ADDMEMBER", "REMOVEMEMBER", "ENTERQUEUE", "CONNECT",
                        "COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT",
                        "RINGNOANSWER", "RINGCANCELED", "PAUSEALL", "PAUSE", "UNPAUSEALL",
                        "UNPAUSE"}
    # and the fixed fields alike: which callid (a call's, MANAGER, NONE), NONE queue, NONE agent
    def fixed(e: Entry) -> tuple[str, str, bool, bool]:
        callid = e.callid if e.callid in ("NONE", "MANAGER") else "call"
        return e.event, callid, e.queue == "NONE", e.agent == "NONE"

    real_fixed = {fixed(e) for e in real}
    assert {fixed(e) for e in ours if e.event in compared} <= real_fixed


def _a_day_of_lines() -> list[str]:
    """Lines of every kind from the core (for the shape comparison)."""
    pol = simple_policy({"billing": 20.0, "tech": 20.0})
    pol = dataclasses.replace(pol, queues={**pol.queues, "tech": dataclasses.replace(
        pol.queues["tech"], max_wait_s=60.0)})
    h = Harness(pol, agents={"a1": ("billing",), "a2": ("billing",)})
    out = [e.line() for e in h.tr.start(0.0)]
    out += h.feed(AgentLogin("a1"), 1.0) + h.feed(AgentLogin("a2", ready=False), 1.0)
    out += h.call("c1", 2.0)
    out += h.feed(OfferFailed("c1", 1, "NOANSWER"), 20.0)
    out += h.feed(AgentReady("a2"), 21.0) + h.feed(OfferAnswered("c1", 2), 23.0)
    out += h.feed(CallerGone("c1"), 80.0) + h.call("c2", 81.0)
    out += h.feed(TimerFired(("wrap_up", "a2")), 86.0) + h.feed(OfferAnswered("c2", 3), 88.0)
    out += h.feed(AgentHungUp("c2"), 100.0)
    out += h.feed(TimerFired(("wrap_up", "a2")), 105.0) + h.feed(AgentPause("a2", "x"), 106.0)
    out += h.call("c3", 110.0) + h.feed(CallerGone("c3"), 111.0)  # nobody free
    out += h.feed(TimerFired(("ready", "a1")), 115.0)
    out += h.call("c4", 120.0) + h.feed(CallerGone("c4"), 130.0)  # while a1 rings
    out += h.call("c5", 140.0, "tech") + h.feed(TimerFired(("max_wait", "c5")), 200.0)
    out += h.feed(AgentLogout("a2"), 300.0)
    return out


def test_the_reader_reads_every_kind_of_line_we_write() -> None:
    lines = _a_day_of_lines()
    entries = parse_text("\n".join(lines), "ours")
    assert len(entries) == len(lines)
    kinds = {e.event for e in entries}
    assert {"QUEUESTART", "ADDMEMBER", "ENTERQUEUE", "RINGNOANSWER", "CONNECT",
            "COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "PAUSE",
            "PAUSEALL", "UNPAUSE", "REMOVEMEMBER", "RINGCANCELED"} <= kinds
    assert queue_counts(entries)["tech"] == {
        "offered": 1, "answered": 0, "abandoned": 0, "timeouts": 1, "completed": 0}


# --------------------------------------------------------------------- adapter


def test_file_lines_are_appended_and_the_file_reopened_after_logrotate(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    f = QueueLogFile(path)
    f.put(["1|NONE|NONE|NONE|QUEUESTART|", "2|c1|q|NONE|ENTERQUEUE||138|1"])
    assert f.write_now() and f.written == 2
    assert path.read_text() == "1|NONE|NONE|NONE|QUEUESTART|\n2|c1|q|NONE|ENTERQUEUE||138|1\n"
    os.rename(path, tmp_path / "queue_log.1")  # logrotate moves it
    f.put(["3|c1|q|NONE|ABANDON|1|1|1"])
    assert f.write_now() and f.reopened == 1
    assert path.read_text() == "3|c1|q|NONE|ABANDON|1|1|1\n"
    assert (tmp_path / "queue_log.1").read_text().count("\n") == 2
    path.unlink()  # deleted: a new one
    f.put(["4|NONE|NONE|NONE|QUEUESTART|"])
    assert f.write_now() and path.read_text() == "4|NONE|NONE|NONE|QUEUESTART|\n"
    assert f.errors == 0 and f.lost == 0


def test_file_write_errors_are_counted_logged_and_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    f = QueueLogFile(blocker / "queue_log", max_pending=3)
    with caplog.at_level(logging.ERROR, "acd.adapters.queue_log"):
        f.put(["1|a|q|NONE|X|", "2|a|q|NONE|X|"])
        assert not f.write_now()
        assert not f.write_now()
    assert f.errors == 2 and f.pending == 2
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1  # rate-limited
    f.put(["3|a|q|NONE|X|", "4|a|q|NONE|X|"])  # over max_pending: the oldest goes
    assert f.lost == 1 and f.pending == 3
    blocker.unlink()
    blocker.mkdir()  # the directory is there now: the waiting lines go out
    assert f.write_now()
    assert (blocker / "queue_log").read_text() == "2|a|q|NONE|X|\n3|a|q|NONE|X|\n4|a|q|NONE|X|\n"


L1, L2, L3 = ("1|c1|q|NONE|ENTERQUEUE||138|1", "2|c1|q|Agent/a1|CONNECT|1|c1-a|1",
              "3|c1|q|Agent/a1|COMPLETECALLER|1|9|1")


class CutWriter:
    """``os.write`` on the real file, except that the ``fail_at``-th call
    writes only ``cut`` bytes and the next one fails with ENOSPC (a disk
    filling up partway through a write); ``meanwhile`` runs just before
    that failure (another process touching the file)."""

    def __init__(self, fail_at: int = 1, cut: int = 20,
                 meanwhile: Any = None) -> None:
        self.calls = 0
        self.fail_at, self.cut, self.meanwhile = fail_at, cut, meanwhile
        self.failing = False

    def __call__(self, fd: int, data: memoryview) -> int:
        self.calls += 1
        if self.failing:
            self.failing = False
            if self.meanwhile is not None:
                self.meanwhile()
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.calls == self.fail_at:
            self.failing = True
            return os.write(fd, data[:self.cut])
        return os.write(fd, data)


def test_a_write_cut_short_is_cut_off_again_and_leaves_no_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("0|NONE|NONE|NONE|QUEUESTART|\n")
    w = CutWriter(fail_at=1, cut=20)  # the first line is 29 bytes: cut inside it
    f = QueueLogFile(path, write=w)
    f.put([L1, L2])
    assert not f.write_now()
    assert w.calls == 2 and f.errors == 1 and f.cut == 1
    assert path.read_text() == "0|NONE|NONE|NONE|QUEUESTART|\n"  # the 20 bytes are gone
    assert (f.written, f.pending, f.lost) == (0, 2, 0)
    f.put([L3])
    assert f.write_now() and w.calls == 3
    assert path.read_text().splitlines() == ["0|NONE|NONE|NONE|QUEUESTART|", L1, L2, L3]
    assert (f.written, f.pending, f.errors) == (3, 0, 1)


def test_a_cut_write_that_cannot_be_cut_off_resumes_on_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"

    def other_writer() -> None:  # the file grows meanwhile: cutting it back is unsafe
        with open(path, "a") as other:
            other.write("9|NONE|NONE|NONE|QUEUESTART|\n")

    w = CutWriter(fail_at=1, cut=len(L1) + 1 + 10, meanwhile=other_writer)  # L1 and a piece
    f = QueueLogFile(path, write=w)
    f.put([L1, L2, L3])
    assert not f.write_now()
    assert (f.written, f.pending, f.errors, f.cut) == (1, 2, 1, 0)  # L1 is in the file
    assert f.write_now()
    lines = path.read_text().split("\n")
    assert lines[0] == L1 and lines.count(L1) == 1
    assert lines[1] == L2[:10] + "9|NONE|NONE|NONE|QUEUESTART|"  # the piece, then the other's
    assert lines[-3:] == [L2, L3, ""]  # the rest whole, each on its own line
    assert (f.written, f.pending, f.lost) == (3, 0, 0)


def test_a_cut_write_in_a_file_emptied_meanwhile_adds_no_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    w = CutWriter(fail_at=1, cut=5, meanwhile=lambda: os.truncate(path, 0))  # copytruncate
    f = QueueLogFile(path, write=w)
    f.put([L1, L2])
    assert not f.write_now() and f.pending == 2
    assert f.write_now()
    assert path.read_text() == f"{L1}\n{L2}\n"


async def test_writes_run_off_the_event_loop_in_order_and_stop_waits_for_them(
        tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    entered, release = threading.Event(), threading.Event()
    threads: list[int] = []

    def slow_write(fd: int, data: memoryview) -> int:
        threads.append(threading.get_ident())
        if len(threads) == 1:  # the first write hangs (a stalled disk) until released
            entered.set()
            assert release.wait(10)
        return os.write(fd, data)

    f = QueueLogFile(path, write=slow_write)
    f.start()
    f.put([L1])
    assert await asyncio.to_thread(entered.wait, 10)
    # the loop runs on while the write hangs: lines are taken, nothing written yet
    for _ in range(5):
        await asyncio.sleep(0)
    f.put([L2, L3])
    assert (f.pending, f.written) == (3, 0)
    release.set()
    await f.stop(timeout_s=10)  # waits for the write under way, then writes the rest
    assert path.read_text().splitlines() == [L1, L2, L3]
    assert (f.written, f.pending, f.lost, f.errors) == (3, 0, 0, 0)
    assert threading.get_ident() not in threads and len(threads) == 2


async def test_a_write_failing_in_the_task_is_retried_after_retry_s(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    w = CutWriter(fail_at=1, cut=7)
    f = QueueLogFile(path, write=w, retry_s=0.05)
    f.start()
    f.put([L1, L2])
    for _ in range(400):
        if f.written == 2:
            break
        await asyncio.sleep(0.01)
    await f.stop()
    assert path.read_text().splitlines() == [L1, L2]
    assert (f.written, f.errors, f.cut, f.lost) == (2, 1, 1, 0) and w.calls == 3


def test_which_queues_an_agent_serves_is_the_routing_answer() -> None:
    """core.serves(): the queue's hard requirements as routing applies them
    (level, groups, VIP), the caller's own (dialect) left out; the
    queue_log's ADDMEMBER queues are those, and a call of each queue is
    offered to the agent exactly when it serves it."""
    req = {"basic": Requirements("sales"), "senior": Requirements("sales", min_level=5),
           "team": Requirements("sales", groups=frozenset({"red"})),
           "vip": Requirements("sales", vip_qualified=True),
           "dialect": Requirements("sales", dialect_min=5),
           "other": Requirements("support")}
    policy = Policy(queues={q: QueuePolicy(q, r, Preferences(idle=1.0)) for q, r in req.items()})
    profiles = {"a1": AgentProfile("a1", "1001", skills={"sales": 3},
                                   groups=frozenset({"red"})),
                "a2": AgentProfile("a2", "1002", skills={"sales": 7}, vip_qualified=True)}
    want = {"a1": ("basic", "team", "dialect"), "a2": ("basic", "senior", "vip", "dialect")}
    for aid, profile in profiles.items():
        core = ContactCenter(CoreConfig(policy=policy, agents=(profile,)))
        view = CoreQueueLogView(core)
        assert tuple(sorted(view.agent_queues(aid))) == tuple(sorted(want[aid]))
        assert [core.serves(aid, q) for q in req] == [core.serves(profile, q) for q in req] \
            == [core.serves(core.agent(aid), q) for q in req]
        core.handle(AgentLogin(aid), 0.0)
        for i, q in enumerate(req):
            cid = f"c{i}"
            core.handle(CallStarted(cid, "138"), 1.0 + i)
            actions = core.handle(CallQueued(cid, q), 1.0 + i)
            offered = any(type(a).__name__ == "ConnectCall" for a in actions)
            assert offered == core.serves(aid, q), (aid, q)
            if offered:
                core.handle(CallerGone(cid), 1.5 + i)
                core.handle(TimerFired(("wrap_up", aid)), 1.6 + i)
    assert CoreQueueLogView(ContactCenter(CoreConfig(policy=policy))).agent_queues("x") == ()


async def test_the_realtime_table_through_the_record_writer(tmp_path: Path) -> None:
    db = Database(db_url(tmp_path))
    await db.create()
    w = RecordWriter(db)
    w.start()
    try:
        entries = [QueueLogEntry(1700000000.5, "c1", "billing", "NONE", "ENTERQUEUE",
                                 ("", "13800138000", "1")),
                   QueueLogEntry(1700000003.0, "c1", "billing", "Agent/a1", "CONNECT",
                                 ("3", "u1", "1")),
                   QueueLogEntry(1700000004.0, "NONE", "NONE", "Agent/a1", "PAUSEALL",
                                 ("x" * 300,))]
        for e in entries:
            w.put_queue_log(e)
        await w.drain()
        async with db.engine.connect() as conn:
            rows = (await conn.execute(select(queue_log_table).order_by(
                queue_log_table.c.id))).mappings().all()
    finally:
        await w.stop(2.0)
        await db.dispose()
    read = [parse_row(dict(r), n, "queue_log table") for n, r in enumerate(rows, 1)]
    assert [(e.time, e.callid, e.queue, e.agent, e.event) for e in read] == [
        (1700000000, "c1", "billing", "NONE", "ENTERQUEUE"),
        (1700000003, "c1", "billing", "Agent/a1", "CONNECT"),
        (1700000004, "NONE", "NONE", "Agent/a1", "PAUSEALL")]
    assert read[0]["callerid"] == "13800138000" and read[1]["ringtime_s"] == 1
    reason = read[2]["reason"]  # fitted to Asterisk's data columns (100 characters)
    assert isinstance(reason, str) and len(reason) == 100 and reason.startswith("x" * 99)
    assert w.fitted == 1


async def test_queue_log_rows_wait_in_the_spool_while_the_database_is_full(
        tmp_path: Path) -> None:
    """The table's rows go through the record writer: a database that cannot
    take them (SQLite full) keeps them in the spool; the next start writes
    them, each once."""
    from sqlalchemy import event

    from acd.adapters.storage import RecordsConfig

    url = db_url(tmp_path)
    db = Database(url)
    full = False

    @event.listens_for(db.engine.sync_engine, "checkout")
    def _full(dbapi_conn: Any, _rec: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA max_page_count = {1 if full else 1073741823}")
        cur.close()

    await db.create()
    cfg = RecordsConfig(spool_dir=str(tmp_path / "spool"), spool_after_s=0.2)
    w = RecordWriter(db, linger_s=0.01, config=cfg)
    w.start()
    full = True
    sent = [QueueLogEntry(1700000000.0 + i, f"c{i}", "billing", "NONE", "ENTERQUEUE",
                          ("", "138" * 30, str(i + 1))) for i in range(200)]
    for e in sent:
        w.put_queue_log(e)
    await asyncio.sleep(1.0)
    await w.stop(2.0)
    assert (w.written, w.failed, w.spooled) == (0, 0, 200)
    await db.dispose()
    db2 = Database(url)
    try:
        w2 = RecordWriter(db2, linger_s=0.01, config=cfg)
        assert await w2.replay() == 200
        async with db2.engine.connect() as conn:
            rows = (await conn.execute(select(queue_log_table).order_by(
                queue_log_table.c.id))).mappings().all()
    finally:
        await db2.dispose()
    read = [parse_row(dict(r), n) for n, r in enumerate(rows, 1)]
    assert [(e.callid, e["origpos"]) for e in read] == [(f"c{i}", i + 1) for i in range(200)]


def test_a_queue_log_row_survives_the_spool() -> None:
    e = QueueLogEntry(17.25, "c1", "q", "NONE", "ENTERQUEUE", ("", "13800138000", "1"))
    assert from_json(to_json(e)) == e
    fitted, changed = fit_item(e)
    assert fitted == e and changed == []


# -------------------------------------------------------------------- settings


def _cfg(extra: str, tmp_path: Path) -> EngineConfig:
    import yaml

    base = yaml.safe_load((ROOT / "acd.example.yaml").read_text())
    base.update(yaml.safe_load(extra) or {})
    return parse_config(base, "acd.yaml", ROOT)


def test_settings_queue_log_block(tmp_path: Path) -> None:
    assert _cfg("", tmp_path).queue_log is None
    assert _cfg("queue_log: {file: null, table: false}", tmp_path).queue_log is None
    c = _cfg(f"queue_log: {{file: {tmp_path}/queue_log, table: true}}", tmp_path)
    assert c.queue_log == QueueLogConfig(file=tmp_path / "queue_log", table=True)
    c = _cfg("queue_log: {file: ql, agent_format: 'SIP/{agent}'}", tmp_path)
    assert c.queue_log is not None and c.queue_log.file == ROOT / "ql"
    assert c.queue_log.agent_format == "SIP/{agent}" and not c.queue_log.table
    for bad, msg in (("queue_log: {table: yes please}", "queue_log.table: must be true"),
                     ("queue_log: {file: q, agent_format: '{id}'}", "may name only"),
                     ("queue_log: {file: q, agent_format: 'a|{agent}'}", "'|'"),
                     ("queue_log: {fil: q}", "unknown key")):
        with pytest.raises(ConfigError, match="queue_log"):
            _cfg(bad, tmp_path)
        with pytest.raises(ConfigError, match=msg.replace("|", r"\|")):
            _cfg(bad, tmp_path)


def test_a_queue_log_file_in_a_missing_folder_is_refused_at_load(tmp_path: Path) -> None:
    """Checked once when the settings are read, naming the place and the
    folder, rather than the engine starting and losing every line."""
    import yaml

    from acd.runtime.settings import load_config

    text = yaml.safe_dump({"flow": str(ROOT / "ivr_flows" / "basic.yaml"),
                           "routing": str(ROOT / "routing.example.yaml")})
    for value, problem in ((f"{tmp_path}/nowhere/queue_log",
                            f"the folder {tmp_path}/nowhere does not exist"),
                           (str(tmp_path), f"{tmp_path} is a folder")):
        cfg = tmp_path / "acd.yaml"
        cfg.write_text(text + f"queue_log:\n  file: {value}\n", encoding="utf-8")
        line = len(text.splitlines()) + 2
        with pytest.raises(ConfigError) as err:
            load_config(cfg)
        assert str(err.value).startswith(f"{cfg}:{line}:9: queue_log.file: "), str(err.value)
        assert problem in str(err.value)
    (tmp_path / "logs").mkdir()
    cfg.write_text(text + f"queue_log:\n  file: {tmp_path}/logs/queue_log\n", encoding="utf-8")
    got = load_config(cfg).queue_log
    assert got is not None and got.file == tmp_path / "logs" / "queue_log"


# ----------------------------------------------------------- a day, end to end


def _day_config(tmp_path: Path, phones: Sequence[str], ql: QueueLogConfig) -> EngineConfig:
    """billing: callers wait at most 1.5 s (then the fallback); tech
    overflows to general after 1 s; agents a<ext> in every queue."""
    pol = simple_policy({q: 0.6 for q in sorted(FLOW.queues)})
    queues = dict(pol.queues)
    queues["billing"] = dataclasses.replace(queues["billing"], max_wait_s=1.5)
    queues["tech"] = dataclasses.replace(queues["tech"], escalate=(Step(1.0, overflow="general"),))
    pol = dataclasses.replace(pol, queues=queues)
    agents = agents_for_queues({f"a{ext}": (ext, tuple(queues)) for ext in phones})
    return EngineConfig(
        core=CoreConfig(policy=pol, agents=agents, wrap_up_s=0.05, rona_pause_s=0.3),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), queue_log=ql)


@dataclasses.dataclass
class Day:
    records: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # of the queue_log table
    wiring: QueueLogWiring


async def _run_day(tmp_path: Path, ql: QueueLogConfig, n: int = 120, seed: int = 15) -> Day:
    rng = random.Random(seed)
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2),
              "1002": PhoneBehaviour(answer_after_s=0.1, talk_s=0.3),
              "1003": PhoneBehaviour(answers=False),  # ring-no-answer, then paused
              "1004": PhoneBehaviour(answer_after_s=0.05, talk_s=0.4)}
    cfg = _day_config(tmp_path, list(phones), ql)
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        handles = []
        for i in range(n):
            key = rng.choice(["1", "1", "2", "2", "0", "3"])
            handles.append(await pbx.place_call(CallerScript(
                number=f"1390000{i:04d}", keys=[key], patience_s=rng.uniform(0.2, 3.0),
                key_delay_s=0.02)))
            await asyncio.sleep(rng.uniform(0.0, 0.06))
        await asyncio.wait_for(asyncio.gather(*(h.done for h in handles)), 60)
        deadline = time.monotonic() + 10
        while engine.counters.calls_finished < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await engine.writer.drain()
        recs = await engine.db.calls()
        async with engine.db.engine.connect() as conn:
            rows = (await conn.execute(select(queue_log_table).order_by(
                queue_log_table.c.id))).mappings().all()
        assert engine.queue_log is not None
        wiring = engine.queue_log
    # the engine has stopped: the file is complete
    return Day([dict(r) for r in recs], [dict(r) for r in rows], wiring)


def _expected(recs: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """Per queue, from the call records: offered (each queue a call
    entered: an overflowed call entered two), answered, abandoned,
    timeouts (the fallback at the maximum wait, and each overflow out)."""
    exp: dict[str, Counter[str]] = {}
    for r in recs:
        q, first = r["queue"], r["first_queue"]
        if q is None:
            continue  # ended in the IVR
        assert isinstance(q, str)
        c = exp.setdefault(q, Counter())
        c["offered"] += 1
        if first is not None:
            assert isinstance(first, str)
            f = exp.setdefault(first, Counter())
            f["offered"] += 1
            f["timeouts"] += 1  # left it for the next queue
        outcome = r["outcome"]
        c["answered" if outcome == "answered" else "abandoned" if outcome == "abandoned"
          else "timeouts" if outcome == "fallback" else "other"] += 1
        if outcome == "answered":
            c["completed"] += 1
    return {q: {k: c[k] for k in ("offered", "answered", "abandoned", "timeouts", "completed")}
            for q, c in sorted(exp.items())}


@pytest.mark.slow
async def test_a_day_of_calls_queue_log_counts_match_the_records(tmp_path: Path) -> None:
    path = tmp_path / "log" / "queue_log"
    path.parent.mkdir()
    n = 120
    day = await _run_day(tmp_path, QueueLogConfig(file=path, table=True), n)
    recs, rows, wiring = day.records, day.rows, day.wiring
    assert len(recs) == n and len({r["call_id"] for r in recs}) == n
    entries = parse_text(path.read_text(encoding="utf-8"), str(path))
    table = [parse_row(r, i, "queue_log") for i, r in enumerate(rows, 1)]
    exp = _expected(recs)
    got = queue_counts(entries)
    assert got == exp
    assert queue_counts(table) == exp
    # the file and the table hold the same lines
    key = [(e.time, e.callid, e.queue, e.agent, e.event) for e in entries]
    assert key == [(e.time, e.callid, e.queue, e.agent, e.event) for e in table]
    c = counts(entries)
    outcomes = Counter(r["outcome"] for r in recs)
    # a busy day: every kind happened
    assert outcomes["answered"] > 20 and outcomes["abandoned"] > 0
    assert outcomes["fallback"] > 0 and any(r["first_queue"] for r in recs)
    assert sum(v for (_, ev), v in c.items() if ev == "RINGNOANSWER") > 0
    assert c[("NONE", "QUEUESTART")] == 1
    assert sum(v for (_, ev), v in c.items() if ev == "ADDMEMBER") == 4 * 3
    # each call's lines: one ENTERQUEUE per queue entered and one end
    by_call: dict[str, list[str]] = {}
    for e in entries:
        if e.callid not in ("NONE", "MANAGER"):
            by_call.setdefault(e.callid, []).append(e.event)
    ends = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT"}
    for r in recs:
        evs = by_call.get(str(r["call_id"]), [])
        if r["queue"] is None:
            assert evs == []
            continue
        assert evs[0] == "ENTERQUEUE" and evs[-1] in ends, (r, evs)
        if r["outcome"] == "answered":
            assert evs.count("CONNECT") == 1 and evs[-2] == "CONNECT"
            conn = next(e for e in entries if e.callid == r["call_id"] and e.event == "CONNECT")
            assert conn.agent == f"Agent/{r['agent_id']}"
    # CONNECT's hold time is the record's wait to the second (whole epoch seconds)
    for r in recs:
        if r["outcome"] == "answered" and not r["first_queue"]:
            conn = next(e for e in entries if e.callid == r["call_id"] and e.event == "CONNECT")
            assert abs(int(conn["holdtime_s"]) - float(r["wait_s"])) <= 1.0
    assert wiring.file is not None and wiring.file.errors == 0 and wiring.file.lost == 0
    # `acd report calls --csv -` of that day, per queue: its offered counts the
    # queue a call ended in (an overflow out is not offered there again)
    report = await asyncio.to_thread(_report_counts, db_url(tmp_path), recs)
    out = Counter(e.queue for i, e in enumerate(entries) if e.event == "EXITWITHTIMEOUT"
                  and any(x.callid == e.callid and x.event == "ENTERQUEUE"
                          for x in entries[i + 1:]))
    assert set(report) == set(got)
    for q, row in report.items():
        assert row["offered"] == got[q]["offered"] - out[q], q
        assert row["answered"] == got[q]["answered"], q
        assert row["abandoned"] + row["short_abandoned"] == got[q]["abandoned"], q
        assert row["other"] == got[q]["timeouts"] - out[q], q
    assert sum(out.values()) == sum(1 for r in recs if r["first_queue"]) > 0


def _report_counts(url: str, recs: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """``acd report calls --csv - --by queue --interval day`` over the days
    of ``recs``: the whole period's row per queue."""
    import csv
    import datetime as dt
    import io

    from click.testing import CliRunner

    from acd.cli import main

    days = sorted({r["started_at"].astimezone(dt.UTC).date()  # type: ignore[attr-defined]
                   for r in recs})
    res = CliRunner().invoke(main, [
        "report", "calls", "--csv", "-", "--by", "queue", "--interval", "day", "--tz", "UTC",
        "--since", days[0].isoformat(), "--until", days[-1].isoformat(), "--db", url])
    assert res.exit_code == 0, (res.output, res.exception)
    rows = list(csv.DictReader(io.StringIO(res.output)))
    return {r["group"]: {k: int(r[k]) for k in ("offered", "answered", "abandoned",
                                                 "short_abandoned", "other")}
            for r in rows if r["interval"] == "all"}


async def test_an_unwritable_queue_log_never_stops_calls(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    n = 30
    with caplog.at_level(logging.ERROR, "acd.adapters.queue_log"):
        day = await _run_day(tmp_path, QueueLogConfig(file=blocker / "queue_log"), n, seed=3)
    recs, wiring = day.records, day.wiring
    assert len(recs) == n and len({r["call_id"] for r in recs}) == n
    assert wiring.file is not None and wiring.file.errors > 0
    assert wiring.file.written == 0 and wiring.file.lost == wiring.entries
    assert any("cannot write" in r.getMessage() for r in caplog.records)


async def test_a_restart_adds_members_in_their_state_without_a_zero_length_pause(
        tmp_path: Path) -> None:
    """Stopped (as on SIGTERM) and started again: each agent is added back
    in the state it had (ADDMEMBER, or ADDMEMBER PAUSED for one paused),
    as on a first start; no PAUSE then UNPAUSE at the start."""
    path = tmp_path / "queue_log"
    phones = {"1001": PhoneBehaviour(), "1002": PhoneBehaviour()}
    cfg = _day_config(tmp_path, list(phones), QueueLogConfig(file=path))
    queues = len(cfg.core.policy.queues)
    async with engine_on_pbx(cfg, phones=phones) as (_, engine):
        assert engine.handle(AgentPause("a1002", "lunch")) is None
    first = path.read_text(encoding="utf-8").splitlines()
    async with engine_on_pbx(cfg, phones=phones) as (_, engine):
        assert engine.core.agent("a1001").state.value == "ready"
        assert engine.core.agent("a1002").state.value == "paused"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:len(first)] == first
    again = [ln.split("|")[2:] for ln in lines[len(first):]]
    assert again[0] == ["NONE", "NONE", "QUEUESTART", ""]
    # the first start: plain ADDMEMBER per queue for both, then a1002's pause
    start1 = [ln.split("|")[2:] for ln in first[1:]]
    assert sorted(x for x in start1 if x[2] == "ADDMEMBER") == sorted(
        [q, f"Agent/{a}", "ADDMEMBER", ""] for q in cfg.core.policy.queues
        for a in ("a1001", "a1002"))
    # the restart: the state each had, nothing else
    assert sorted(again[1:]) == sorted(
        [[q, "Agent/a1001", "ADDMEMBER", ""] for q in cfg.core.policy.queues]
        + [[q, "Agent/a1002", "ADDMEMBER", "PAUSED"] for q in cfg.core.policy.queues])
    assert len(again) == 1 + 2 * queues
