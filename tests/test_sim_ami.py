"""The simulator's AMI server, driven with raw sockets + acd.protocols.ami.

Expected forms come from /work/shared/asterisk-transcripts (login, rona.txt,
coreshow.txt) and main/manager.c.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import SCALE
from transcripts import AMI_IN, load_blocks, requires_transcripts

from acd.protocols.ami import AmiMessage
from sim import CallerScript, PhoneBehaviour, SimConfig, SimPBX
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe, hold_forever


@pytest.fixture
async def agi() -> AsyncIterator[AgiScriptServer]:
    """Every call is answered and held (conftest's ``pbx`` and ``ami`` use it)."""
    async with AgiScriptServer(hold_forever) as server:
        yield server


@pytest.fixture
def pbx_config(agi: AgiScriptServer) -> SimConfig:
    return SimConfig(agi_url=agi.url, time_scale=SCALE)  # the default 1 s prompts


# ------------------------------------------------------------------- login


async def test_banner_login_and_fully_booted(pbx: SimPBX) -> None:
    probe = await AmiProbe.connect(pbx.ami_port)
    assert probe.banner == "11.0.0"
    resp = await probe.action("Login", {"Username": "acd", "Secret": "acdsecret"})
    assert [k for k, _ in resp.headers] == ["Response", "ActionID", "Message"]
    assert resp.get("Message") == "Authentication accepted"
    booted = await probe.wait_event("FullyBooted")
    assert booted.get("Privilege") == "system,all"
    assert booted.get("Status") == "Fully Booted"
    await probe.close()


@pytest.mark.parametrize(("events", "booted"), [("off", False), ("call", False),
                                                 ("system,call", True), ("on", True)])
async def test_login_event_mask(pbx: SimPBX, events: str, booted: bool) -> None:
    probe = await AmiProbe.connect(pbx.ami_port)
    assert (await probe.login(events=events)).response == "Success"
    await probe.drain(0.1)
    got = [m.event for m in probe.messages if m.event]
    assert (got == ["FullyBooted"]) is booted
    if events == "off":
        call = await pbx.place_call(CallerScript(patience_s=None))
        await probe.drain(0.2)
        assert [m.event for m in probe.messages if m.event] == []
        call.hangup()
        assert (await probe.action("Ping")).get("Ping") == "Pong"
    await probe.close()


async def test_wrong_secret_is_refused_and_closed(pbx: SimPBX) -> None:
    probe = await AmiProbe.connect(pbx.ami_port)
    resp = await probe.login(secret="wrong")
    assert resp.response == "Error"
    assert resp.get("Message") == "Authentication failed"
    await probe.wait_closed(2)
    await probe.close()


async def test_actions_before_login_are_denied(pbx: SimPBX) -> None:
    probe = await AmiProbe.connect(pbx.ami_port)
    for action in ("Ping", "Originate", "CoreShowChannels"):
        resp = await probe.action(action)
        assert resp.response == "Error"
        assert resp.get("Message") == "Permission denied"
    assert (await probe.login()).response == "Success"
    await probe.close()


async def test_ping_logoff(ami: AmiProbe) -> None:
    pong = await ami.action("Ping")
    assert [k for k, _ in pong.headers] == ["Response", "ActionID", "Ping", "Timestamp"]
    assert float(pong.get("Timestamp")) > 0
    bye = await ami.action("Logoff")
    assert bye.response == "Goodbye"
    assert bye.get("Message") == "Thanks for all the fish."
    await ami.wait_closed(2)


async def test_unknown_action_and_broken_frame_keep_the_connection(ami: AmiProbe) -> None:
    resp = await ami.action("NoSuchAction")
    assert resp.response == "Error"
    assert resp.get("Message").startswith("Invalid/unknown command: NoSuchAction.")
    ami.send_raw(b"this is not a header\r\n\r\n")
    err = await ami.wait_for(lambda m: m.response == "Error")
    assert err.get("Message") == "Missing action in request"
    ami.send_raw(b"ActionID: x1\r\n\r\n")
    err = await ami.response("x1")
    assert err.get("Message") == "Missing action in request"
    assert (await ami.action("Ping")).response == "Success"


# --------------------------------------------------------- fault injection


async def test_fault_injection(pbx: SimPBX, ami: AmiProbe) -> None:
    await pbx.inject_ami_raw(b"Response: Bogus\r\nActionID: junk\r\n\r\n")
    assert (await ami.response("junk")).response == "Bogus"

    pbx.freeze_ami(True)
    aid = ami.send("Ping")
    with pytest.raises(TimeoutError):
        await ami.response(aid, wait_s=0.3)
    pbx.freeze_ami(False)
    assert (await ami.response(aid)).get("Ping") == "Pong"

    await pbx.drop_ami_clients()
    await ami.wait_closed(2)
    again = await AmiProbe.connect(pbx.ami_port)
    assert (await again.login()).response == "Success"
    await again.close()


# ---------------------------------------------------------------- channels


async def test_core_show_channels_lists_live_channels(pbx: SimPBX, ami: AmiProbe) -> None:
    call = await pbx.place_call(CallerScript(name="张三", patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    resp, items = await ami.list_action("CoreShowChannels")
    assert resp.response == "Success"
    assert resp.get("EventList") == "start"
    assert resp.get("Message") == "Channels will follow"
    *channels, complete = items
    assert complete.event == "CoreShowChannelsComplete"
    assert complete.get("EventList") == "Complete"
    assert complete.get("ListItems") == "1"
    (chan,) = channels
    assert [k for k, _ in chan.headers] == [
        "Event", "ActionID", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
        "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode",
        "Context", "Exten", "Priority", "Uniqueid", "Linkedid",
        # manager.conf channelvars = ACD_CALL_ID,ACD_QUEUED,ACD_OFFER,ACD_CALL_SECRET
        "ChanVariable", "ChanVariable", "ChanVariable", "ChanVariable",
        "Application", "ApplicationData", "Duration", "BridgeId"]
    # unset: empty
    assert chan.get_all("ChanVariable") == ["ACD_CALL_ID=", "ACD_QUEUED=", "ACD_OFFER=",
                                            "ACD_CALL_SECRET="]
    assert chan.get("Uniqueid") == call.uniqueid
    assert chan.get("Linkedid") == call.uniqueid
    assert chan.get("CallerIDName") == "张三"
    assert chan.get("ChannelStateDesc") == "Up"
    assert (chan.get("Application"), chan.get("ApplicationData")) == ("MusicOnHold",
                                                                      "default,30")
    assert chan.get("Context") == "acd-hotline"
    assert chan.get("Priority") == "3"
    call.hangup()
    await call.done
    _, items = await ami.list_action("CoreShowChannels")
    assert items[-1].get("ListItems") == "0"


async def test_getvar_setvar_redirect_errors(pbx: SimPBX, ami: AmiProbe) -> None:
    call = await pbx.place_call(CallerScript(name="张三", patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    resp = await ami.action("Setvar", {"Channel": call.channel, "Variable": "ACD_X",
                                       "Value": "42"})
    assert resp.get("Message") == "Variable Set"
    varset = await ami.wait_event("VarSet", Variable="ACD_X")
    assert varset.get("Value") == "42"
    got = await ami.action("Getvar", {"Channel": call.channel, "Variable": "ACD_X"})
    assert (got.get("Variable"), got.get("Value")) == ("ACD_X", "42")
    got = await ami.action("Getvar", {"Channel": call.uniqueid, "Variable": "CALLERID(name)"})
    assert got.get("Value") == "张三"
    bad = await ami.action("Getvar", {"Channel": "PJSIP/nope-00000000", "Variable": "X"})
    assert (bad.response, bad.get("Message")) == ("Error", "No such channel")
    bad = await ami.action("Redirect", {"Channel": "PJSIP/nope-00000000",
                                        "Context": "acd-connect", "Exten": "1001",
                                        "Priority": "1"})
    assert (bad.response, bad.get("Message")) == (
        "Error", "Channel does not exist: PJSIP/nope-00000000")  # manager.c action_redirect
    call.hangup()
    await call.done


async def test_ami_hangup_of_held_caller(pbx: SimPBX, ami: AmiProbe) -> None:
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    resp = await ami.action("Hangup", {"Channel": call.channel, "Cause": "16"})
    assert resp.get("Message") == "Channel Hungup"
    soft = await ami.wait_event("SoftHangupRequest", Uniqueid=call.uniqueid)
    assert soft.get("Cause") == "16"
    hangup = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    assert (hangup.get("Cause"), hangup.get("Cause-txt")) == ("16", "Normal Clearing")
    result = await call.done
    assert (result.outcome.value, result.hangup_by) == ("engine_hangup", "engine")
    missing = await ami.action("Hangup", {"Channel": call.channel})
    assert missing.get("Message") == "No such channel"


# --------------------------------------------------------------- originate


async def test_originate_no_answer_gives_reason_3(pbx: SimPBX, ami: AmiProbe) -> None:
    """rona.txt: queued at once, later Failure / Reason 3 / Uniqueid <unknown>."""
    pbx.add_phone("1002", PhoneBehaviour(answers=False))
    resp = await ami.action("Originate", {
        "Channel": "PJSIP/1002", "Context": "agents", "Exten": "1001", "Priority": "1",
        "Timeout": "4000", "CallerID": '"ACD" <10086>', "Async": "true"})
    assert resp.response == "Success"
    assert resp.get("Message") == "Originate successfully queued"
    ringing = await ami.wait_event("DeviceStateChange", Device="PJSIP/1002")
    assert ringing.get("State") == "RINGING"
    hangup = await ami.wait_event("Hangup")
    assert (hangup.get("Cause"), hangup.get("Cause-txt")) == ("19", "User alerting, no answer")
    orig = await ami.wait_event("OriginateResponse")
    assert [k for k, _ in orig.headers] == [
        "Event", "Privilege", "ActionID", "Response", "Channel", "Context", "Exten", "Reason",
        "Uniqueid", "CallerIDNum", "CallerIDName"]
    assert orig.action_id == resp.action_id
    assert (orig.get("Response"), orig.get("Reason"), orig.get("Uniqueid")) == (
        "Failure", "3", "<unknown>")
    assert (orig.get("Channel"), orig.get("Context"), orig.get("Exten")) == (
        "PJSIP/1002", "agents", "1001")
    assert (orig.get("CallerIDNum"), orig.get("CallerIDName")) == ("10086", "ACD")
    free = await ami.wait_event("DeviceStateChange", Device="PJSIP/1002")
    assert free.get("State") == "NOT_INUSE"


async def test_originate_outcomes(pbx: SimPBX, ami: AmiProbe, agi: AgiScriptServer) -> None:
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.5, talk_s=1000))
    pbx.add_phone("1003", PhoneBehaviour(busy=True))
    ok = await ami.action("Originate", {
        "Channel": "PJSIP/1001", "Context": "from-internal", "Exten": "s", "Priority": "1",
        "Async": "yes", "ChannelId": "agent-leg-1"})
    res = await ami.wait_event("OriginateResponse", ActionID=ok.action_id or "")
    assert (res.get("Response"), res.get("Reason"), res.get("Uniqueid")) == (
        "Success", "4", "agent-leg-1")
    assert res.get("Channel").startswith("PJSIP/1001-")
    # Parked in a context the dialplan does not define: it just waits.
    _, items = await ami.list_action("CoreShowChannels")
    assert [e.get("Uniqueid") for e in items[:-1]] == ["agent-leg-1"]
    assert items[0].get("Application") == "Wait"
    # Busy phone (Reason 5) and unknown endpoint (Reason 8, no channel).
    busy = await ami.action("Originate", {"Channel": "PJSIP/1003", "Context": "x",
                                          "Exten": "s", "Async": "true"})
    res = await ami.wait_event("OriginateResponse", ActionID=busy.action_id or "")
    assert (res.get("Response"), res.get("Reason"), res.get("Uniqueid")) == (
        "Failure", "5", "<unknown>")
    unknown = await ami.action("Originate", {"Channel": "PJSIP/9999", "Context": "x",
                                             "Exten": "s", "Async": "true"})
    res = await ami.wait_event("OriginateResponse", ActionID=unknown.action_id or "")
    assert (res.get("Response"), res.get("Reason"), res.get("Uniqueid")) == (
        "Failure", "8", "<unknown>")
    # The phone is in use: a synchronous Originate (no Async) fails after the fact.
    sync = await ami.action("Originate", {"Channel": "PJSIP/1001", "Context": "x",
                                          "Exten": "s"})
    assert (sync.response, sync.get("Message")) == ("Error", "Originate failed")
    # Redirect the parked agent into the hotline: it runs the AGI at once.
    moved = await ami.action("Redirect", {"Channel": "agent-leg-1", "Context": "acd-hotline",
                                          "Exten": "10086", "Priority": "1"})
    assert moved.get("Message") == "Redirect successful"
    (conn,) = await agi.wait_connections(1)
    assert conn.request.env["agi_uniqueid"] == "agent-leg-1"
    assert conn.request.env["agi_channel"].startswith("PJSIP/1001-")
    hang = await ami.action("Hangup", {"Channel": "agent-leg-1"})
    assert hang.response == "Success"
    await ami.wait_event("Hangup", Uniqueid="agent-leg-1")


async def test_sync_originate_answers_after_the_result(pbx: SimPBX, ami: AmiProbe) -> None:
    pbx.add_phone("1004", PhoneBehaviour(answer_after_s=1, talk_s=1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    resp = await ami.action("Originate", {"Channel": "PJSIP/1004", "Context": "x",
                                          "Exten": "s", "Priority": "1"})
    assert (resp.response, resp.get("Message")) == ("Success", "Originate successfully queued")
    assert loop.time() - start >= SCALE * 0.9
    # No OriginateResponse for a synchronous Originate; the talk time ends the call.
    hangup = await ami.wait_event("Hangup")
    assert hangup.get("Channel").startswith("PJSIP/1004-")
    assert not [m for m in ami.messages if m.event == "OriginateResponse"]


async def test_events_action_switches_events(pbx: SimPBX, ami: AmiProbe) -> None:
    resp = await ami.action("Events", {"EventMask": "off"})
    assert (resp.response, resp.get("Events")) == ("Success", "Off")
    await ami.drain(0.05)
    seen = len(ami.messages)
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.drain(0.1)
    assert [m for m in ami.messages[seen:] if m.event] == []
    resp = await ami.action("Events", {"EventMask": "call"})
    assert resp.get("Events") == "On"
    call.hangup()
    hangup = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    assert hangup.get("Privilege") == "call,all"


async def test_originate_into_the_hotline_runs_its_agi(pbx: SimPBX, ami: AmiProbe,
                                                       agi: AgiScriptServer) -> None:
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.2, talk_s=2))
    resp = await ami.action("Originate", {
        "Channel": "PJSIP/1001", "Context": "acd-hotline", "Exten": "10086", "Priority": "1",
        "CallerID": '"张三" <13800138000>', "Async": "true", "Variable": "ACD_X=1"})
    res = await ami.wait_event("OriginateResponse", ActionID=resp.action_id or "")
    assert (res.get("Response"), res.get("Reason")) == ("Success", "4")
    assert res.get("CallerIDName") == "张三"
    (conn,) = await agi.wait_connections(1)
    env = conn.request.env
    assert env["agi_uniqueid"] == res.get("Uniqueid")
    assert (env["agi_callerid"], env["agi_calleridname"]) == ("13800138000", "张三")
    assert (env["agi_context"], env["agi_extension"], env["agi_priority"]) == (
        "acd-hotline", "10086", "3")
    # The agent's talk time ends it: HANGUP on the AGI side, then Hangup.
    hangup = await ami.wait_event("Hangup", Uniqueid=res.get("Uniqueid"))
    assert hangup.get("Cause") == "16"


# ------------------------------------------------------------ event filters
# sim/eventfilter.py against main/manager.c (Asterisk 22): its own unit
# tests' tables (eventfilter_test_creation, eventfilter_test_matching).

_NEWCHANNEL = ("Newchannel", "Event: Newchannel\r\nChannel: XXX\r\nSomeheader: YYY\r\n")
_VARSET = ("VarSet", "Event: VarSet\r\nChannel: ABC\r\nSomeheader: XXX\r\n")

#: (criteria, pattern, error (None / "format" / "compile"), event, sent)
_PARSING = [
    ("eventfilter", "XXX", None, _NEWCHANNEL, True),
    ("eventfilter", "!XXX", None, _VARSET, False),
    ("eventfilter(name(VarSet),method(none))", "", None, _VARSET, True),
    ("eventfilter(name(Newchannel),method(regex))", "X[XYZ]X", None, _NEWCHANNEL, True),
    ("eventfilter(name(Newchannel),method(regex))", "X[abc]X", None, _NEWCHANNEL, False),
    ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[XYZ]X", None,
     _NEWCHANNEL, False),
    ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[abc]X", None,
     _NEWCHANNEL, True),
    ("eventfilter(action(include),name(VarSet),header(Channel),method(starts_with))", "AB",
     None, _VARSET, True),
    ("eventfilter(action(include),name(VarSet),header(Channel),method(ends_with))", "BC",
     None, _VARSET, True),
    ("eventfilter(action(include),name(VarSet),header(Channel),method(exact))", "ABC",
     None, _VARSET, True),
    ("eventfilter(action(include),name(VarSet),header(Channel),method(exact))", "XXX",
     None, _VARSET, False),
    ("eventfilter(name(VarSet),header(Channel),method(exact))", "!ZZZ", None, _VARSET, True),
    ("eventfilter(action(exclude),name(VarSet),header(Channel),method(exact))", "ZZZ", None,
     _VARSET, True),
    # a lone "!" makes an advanced filter with no pattern an exclude one
    # (manager_add_filter strips it before the legacy and advanced checks)
    ("eventfilter(name(Newchannel))", "!", None, _NEWCHANNEL, False),
    ("eventfilter(name(Newchannel))", "!", None, _VARSET, True),
    # action(include) wins over the pattern's "!"
    ("eventfilter(action(include),name(VarSet),header(Someheader),method(exact))", "!XXX",
     None, _VARSET, True),
    ("eventfilter(action(include)", "", "format", None, False),
    ("eventfilter(action(inlude)", "", "format", None, False),
    ("eventfilter(nnnn(yyy)", "XXX", "format", None, False),
    ("eventfilter(eader(VarSet)", "XXX", "format", None, False),
    ("eventfilter(ethod(contains)", "XXX", "format", None, False),
    ("eventfilter(nnnn(yyy),header(VarSet),method(contains)", "XXX", "format", None, False),
    ("eventfilter(name(yyy),heder(VarSet),method(contains)", "XXX", "format", None, False),
    ("eventfilter(name(yyy),header(VarSet),mehod(contains)", "XXX", "format", None, False),
    ("eventfilter(name(yyy),header(VarSet),method(coains)", "XXX", "format", None, False),
    ("eventfilter(method(yyy))", "XXX", "format", None, False),
    ("eventfilter", "", "format", None, False),
    ("eventfilter", "!", "format", None, False),
    ("eventfilter()", "XXX", "format", None, False),
    ("eventfilter", "XX[X", "compile", None, False),
    ("eventfilter(method(regex))", "XX[X", "compile", None, False),
    # what the shipped manager.conf uses, and the empty value it needs
    ("eventfilter(action(include),name(Hangup))", "", None,
     ("Hangup", "Event: Hangup\r\nUniqueid: 1.1\r\n"), True),
    ("eventfilter(action(include),name(Hangup))", "", None, _VARSET, False),
    ("eventfilter(action(include),name(Hangup))", "x", "format", None, False),
    ("eventfilter(action(include),name(DeviceStateChange),header(Device),"
     "method(starts_with))", "PJSIP/", None,
     ("DeviceStateChange", "Event: DeviceStateChange\r\nDevice: PJSIP/1001\r\nState: INUSE"
      "\r\n"), True),
    ("eventfilter(action(include),name(DeviceStateChange),header(Device),"
     "method(starts_with))", "PJSIP/", None,
     ("DeviceStateChange", "Event: DeviceStateChange\r\nDevice: Local/1001@agents\r\n"
      "State: INUSE\r\n"), False),
    # names are exact, case and all (Asterisk compares their hashes)
    ("eventfilter(name(hangup))", "", None, ("Hangup", "Event: Hangup\r\n"), False),
]


@pytest.mark.parametrize(("criteria", "pattern", "error", "event", "sent"), _PARSING)
def test_eventfilter_lines_as_asterisk_reads_them(
        criteria: str, pattern: str, error: str | None,
        event: tuple[str, str] | None, sent: bool) -> None:
    from sim.eventfilter import FilterError, FilterSet, parse_filter

    if error is not None:
        with pytest.raises(FilterError) as info:
            parse_filter(criteria, pattern)
        assert info.value.compile_error is (error == "compile")
        return
    assert event is not None
    assert FilterSet.of([parse_filter(criteria, pattern)]).should_send(*event) is sent


def test_include_and_exclude_filters_combine_as_in_asterisk() -> None:
    """Asterisk's eventfilter_test_matching: include filters first (any of
    them), then the exclude filters take away."""
    from sim.eventfilter import FilterSet, parse_filter

    filters = FilterSet.of(parse_filter(c, p) for c, p in [
        ("eventfilter(name(VarSet),method(none))", ""),
        ("eventfilter(name(Newchannel),method(regex))", "X[XYZ]X"),
        ("eventfilter(name(Newchannel),method(regex))", "X[abc]X"),
        ("eventfilter(name(Newchannel),header(Someheader),method(regex))", "ZZZ"),
        ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[a]X"),
        ("eventfilter(action(exclude),name(Newchannel),method(regex))", "X[Z]X"),
        ("eventfilter(action(exclude),name(VarSet),header(Channel),method(regex))", "YYY"),
    ])
    cases = [("Newchannel", "XXX", "YYY", True), ("Newchannel", "XZX", "YYY", False),
             ("Newchannel", "XaX", "YYY", False), ("Newchannel", "XbX", "YYY", True),
             ("Newchannel", "XcX", "YYY", True), ("Newchannel", "YYY", "YYY", False),
             ("Newchannel", "YYY", "ZZZ", True), ("VarSet", "XXX", "YYY", True),
             ("VarSet", "YYY", "YYY", False)]
    for name, channel, some, sent in cases:
        text = f"Event: {name}\r\nChannel: {channel}\r\nSomeheader: {some}\r\n"
        assert filters.should_send(name, text) is sent, (name, channel, some)
    assert FilterSet().should_send("Anything", "Event: Anything\r\n")  # no filters: all


SHIPPED_MANAGER_CONF = Path(__file__).resolve().parent.parent / "asterisk_conf" / "manager.conf"


def test_the_shipped_filter_lets_through_every_event_the_engine_acts_on() -> None:
    """AMI_EVENTS and the eventfilter lines of asterisk_conf/manager.conf go
    together: each event the engine reads passes (DeviceStateChange of a
    PJSIP phone), the bulk of a call's volume does not."""
    from acd.runtime.ami_events import AMI_EVENTS
    from sim.eventfilter import FilterSet, parse_filter, read_manager_conf

    user = read_manager_conf(SHIPPED_MANAGER_CONF)
    assert (user.read, user.write) == ("call,system", "call,originate,reporting")
    filters = FilterSet.of(parse_filter(k, v) for k, v in user.eventfilters)
    for name in AMI_EVENTS:
        text = f"Event: {name}\r\nPrivilege: call,all\r\nDevice: PJSIP/1001\r\n"
        assert filters.should_send(name, text), name
    for name in ("Newchannel", "Newstate", "VarSet", "Newexten", "BridgeEnter", "DialState",
                 "MusicOnHoldStart", "NewCallerid", "SoftHangupRequest", "AGIExecStart"):
        assert not filters.should_send(name, f"Event: {name}\r\nChannel: PJSIP/1-1\r\n"), name
    assert not filters.should_send(
        "DeviceStateChange", "Event: DeviceStateChange\r\nDevice: Local/1001@agents\r\n")


def test_manager_conf_syntax_errors_name_file_and_line(tmp_path: Path) -> None:
    from sim.eventfilter import read_manager_conf

    conf = tmp_path / "manager.conf"
    conf.write_text("[general]\nenabled = yes\n[acd\nsecret = x\n")
    with pytest.raises(ValueError, match=r"manager\.conf:3: section name without '\]'"):
        read_manager_conf(conf)
    conf.write_text("[general]\n;-- a block\ncomment --;\n[other]\nread = all ; c\n"
                    "eventfilter = Event: Hangup\\; x\n")
    with pytest.raises(ValueError, match=r"no \[acd\] section"):
        read_manager_conf(conf)
    user = read_manager_conf(conf, "other")
    assert (user.read, user.eventfilters) == ("all", (("eventfilter", "Event: Hangup; x"),))


async def _probe_call(pbx: SimPBX) -> list[AmiMessage]:
    """A probe logged in with every class; one call held, listed, hung up:
    the events it got (list items included)."""
    probe = await AmiProbe.connect(pbx.ami_port)
    assert (await probe.login(secret="acdsecret")).response == "Success"
    call = await pbx.place_call(CallerScript(patience_s=None))
    _, items = await probe.list_action("CoreShowChannels")
    assert [(m.event, m.get("Uniqueid")) for m in items] == [
        ("CoreShowChannel", call.uniqueid), ("CoreShowChannelsComplete", "")]
    _, states = await probe.list_action("DeviceStateList")
    assert [m.event for m in states] == ["DeviceStateChange", "DeviceStateListComplete"]
    pbx.astdb.put("acd/answered", "1001", "1790000000 c-1")
    _, got = await probe.list_action("DBGet", {"Family": "acd/answered", "Key": "1001"})
    assert got[0].get("Val") == "1790000000 c-1"
    call.hangup()
    await probe.wait_event("Hangup", Uniqueid=call.uniqueid)
    await probe.drain(0.05)
    await probe.close()
    return [m for m in probe.messages if m.event]


async def test_the_shipped_manager_conf_filters_what_asterisk_would(
        agi: AgiScriptServer) -> None:
    """With asterisk_conf/manager.conf: only the events the engine reads
    come; responses, list items (CoreShowChannel, DeviceStateList's
    DeviceStateChange, DBGetResponse, the ...Complete events) and the
    FullyBooted after Login are never filtered."""
    lean = SimConfig(agi_url=agi.url, time_scale=SCALE, full_event_volume=True)
    async with SimPBX(lean) as pbx:
        pbx.add_phone("1001")
        everything = await _probe_call(pbx)
    cfg = SimConfig(agi_url=agi.url, time_scale=SCALE, full_event_volume=True)
    cfg.use_manager_conf(SHIPPED_MANAGER_CONF)
    assert cfg.ami_read == "call,system" and len(cfg.ami_eventfilters) == 6
    async with SimPBX(cfg) as pbx:
        pbx.add_phone("1001")
        filtered = await _probe_call(pbx)
        assert pbx.ami.filtered > 0
    names = [m.event for m in filtered]
    listed = {"CoreShowChannel", "CoreShowChannelsComplete", "DeviceStateChange",
              "DeviceStateListComplete", "DBGetResponse", "DBGetComplete"}
    assert names[0] == "FullyBooted"
    queued = [m for m in filtered[1:] if m.action_id is None]
    assert {m.event for m in queued} <= {"Hangup", "DialBegin", "DialEnd", "Rename",
                                         "DeviceStateChange", "Shutdown"}
    # the call (no Dial): the trunk's device state (a PJSIP device) and the Hangup
    assert [(m.event, m.get("Device"), m.get("State")) for m in queued] == [
        ("DeviceStateChange", "PJSIP/trunk", "INUSE"), ("Hangup", "", ""),
        ("DeviceStateChange", "PJSIP/trunk", "NOT_INUSE")]
    assert {m.event for m in filtered if m.action_id is not None} == listed
    assert len([m for m in everything[1:] if m.action_id is None]) > 4 * len(queued)
    assert {"VarSet", "Newexten", "AGIExecStart", "Newchannel"} <= {m.event for m in everything}


async def test_filter_action_as_asterisk(agi: AgiScriptServer) -> None:
    """``Filter`` needs ``system`` in the user's write (the shipped user has
    not); granted, it adds a session filter with Asterisk's answers."""
    cfg = SimConfig(agi_url=agi.url, time_scale=SCALE, ami_write="call,originate,reporting")
    async with SimPBX(cfg) as pbx:
        probe = await AmiProbe.connect(pbx.ami_port)
        await probe.login()
        resp = await probe.action("Filter", {"Operation": "Add", "Filter": "Event: Hangup"})
        assert (resp.response, resp.get("Message")) == ("Error", "Permission denied")
        assert (await probe.action("DBPut", {"Family": "f", "Key": "k", "Val": "v"})).get(
            "Message") == "Permission denied"
        assert (await probe.action("Getvar", {"Variable": "X"})).response == "Success"
        await probe.close()
    async with SimPBX(SimConfig(agi_url=agi.url, time_scale=SCALE)) as pbx:
        probe = await AmiProbe.connect(pbx.ami_port)
        await probe.login()
        answers = [await probe.action("Filter", fields) for fields in (
            {"Filter": "x"},  # no Operation: Asterisk compares it with "Add" as it is
            {"Operation": "Add"},  # a legacy filter needs a pattern
            {"Operation": "add", "Filter": "XX[X"},
            {"Operation": "Add", "MatchCriteria": "action(include),name(Hangup)"},
        )]
        assert [(a.response, a.get("Message")) for a in answers] == [
            ("Error", "Unknown operation"),
            ("Error", "Filter was formatted incorrectly.  Check the syntax of the filter given."),
            ("Error", "Filter did not compile.  Check the syntax of the filter given."),
            ("Success", "Success")]
        await probe.drain(0.05)
        seen = len(probe.messages)
        call = await pbx.place_call(CallerScript(patience_s=None))
        await asyncio.sleep(0.2)
        call.hangup()
        await probe.wait_event("Hangup", Uniqueid=call.uniqueid)
        await probe.drain(0.05)
        assert {m.event for m in probe.messages[seen:] if m.event} == {"Hangup"}
        await probe.close()


# ------------------------------------------------------ Asterisk's volume

_DIAL_VARS = {"DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME",
              "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS",
              "PROGRESSTIME", "PROGRESSTIME_MS", "BRIDGEPEER"}


def _recorded_answered_call() -> list[AmiMessage]:
    """answered.txt's events of the two channels a trunk-to-phone call has:
    the caller's (``Local/s@caller-...;1``, which runs the hotline) and the
    dialled leg (``Local/1001@agents-...;1``), and the bridge's; not the
    Local channels' other halves, the recording harness's Originate, the
    login's, nor device states (Local devices there, PJSIP ones here)."""
    out = []
    for block in load_blocks("answered"):
        if block.kind != AMI_IN:
            continue
        msg = AmiMessage(tuple(block.headers))
        if msg.event is None or msg.get("Channel").endswith(";2") or msg.event in (
                "LocalBridge", "OriginateResponse", "SuccessfulAuth", "FullyBooted",
                "DeviceStateChange"):
            continue
        out.append(msg)
    return out


@requires_transcripts
async def test_full_event_volume_is_asterisks() -> None:
    """``full_event_volume``: the answered call of answered.txt (same AGI
    script, redirect to the agent, agent hangs up) gives app_dial's variables
    in Asterisk's order on both legs, and about as many events as the
    recording has on the same two channels."""
    async def hotline(conn: AgiConn) -> None:
        for cmd in ("ANSWER", "GET VARIABLE CALLERID(num)",
                    'STREAM FILE hello-world "0123456789#*"',
                    "GET DATA vm-enter-num-to-call 3000 2", 'SET VARIABLE ACD_QUEUE "billing"',
                    'EXEC MusicOnHold "default,30"', 'NOOP "after redirect"'):
            await conn.command(cmd)
        await conn.read_line()

    async with AgiScriptServer(scripts={"hotline": hotline}) as agi:
        cfg = SimConfig(agi_url=agi.url, time_scale=SCALE, prompt_s=5.0,
                        full_event_volume=True)
        async with SimPBX(cfg) as pbx:
            pbx.add_phone("1001", PhoneBehaviour(answer_after_s=1, talk_s=5))
            probe = await AmiProbe.connect(pbx.ami_port)
            await probe.login()
            call = await pbx.place_call(CallerScript(name="Zhang", keys=["1", "2"]))
            moh = await probe.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
            await probe.action("Redirect", {"Channel": moh["Channel"], "Context": "acd-connect",
                                            "Exten": "1001", "Priority": "1"})
            await call.done
            await probe.wait_event("Hangup", Uniqueid=call.uniqueid)
            await probe.drain(0.05)
            await probe.close()
    sim = [m for m in probe.messages if m.event and m.action_id is None
           and m.event not in ("FullyBooted", "DeviceStateChange")]
    recorded = _recorded_answered_call()

    def dial_vars(events: list[AmiMessage], channel: str) -> list[tuple[str, bool]]:
        return [(m["Variable"], m["Value"] == "") for m in events
                if m.event == "VarSet" and m["Channel"].startswith(channel)
                and m["Variable"] in _DIAL_VARS]

    caller, agent = call.channel, "PJSIP/1001-"
    assert dial_vars(sim, caller) == dial_vars(recorded, "Local/s@caller-")
    assert dial_vars(sim, agent) == dial_vars(recorded, "Local/1001@agents-")
    assert len(dial_vars(sim, caller)) == 21
    # the rest differs with the dialplan (the shipped one sets and Gosubs
    # more than the recording's): within a few events of Asterisk's 78
    assert abs(len(sim) - len(recorded)) <= 10, (len(sim), len(recorded))
    assert len(recorded) == 78
