"""The simulator's AMI server, driven with raw sockets + acd.protocols.ami.

Expected forms come from /work/shared/asterisk-transcripts (login, rona.txt,
coreshow.txt) and main/manager.c.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from helpers import SCALE

from acd.protocols.agi import AgiResult
from sim import CallerScript, PhoneBehaviour, SimConfig, SimPBX
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe


async def hold_forever(conn: AgiConn) -> None:
    """A hotline that answers and holds the caller on MusicOnHold."""
    await conn.command("ANSWER")
    while True:
        reply = await conn.command('EXEC MusicOnHold "default,30"', wait_s=30)
        if not isinstance(reply, AgiResult) or reply.result < 0:
            return


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
