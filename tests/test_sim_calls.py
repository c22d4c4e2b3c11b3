"""Call flows through the simulator: FastAGI replies and AMI events.

A tiny FastAGI server (sim.testkit.AgiScriptServer, framed with
acd.protocols.agi) plays the engine's part with scripts like those of the
recordings in /work/shared/asterisk-transcripts; an AMI probe redirects and
watches.  Each test names the recording it mirrors.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from helpers import free_port, raw, sim_config

from acd.protocols.agi import AgiError, AgiHangup
from acd.protocols.ami import AmiMessage
from sim import CallerScript, Outcome, PhoneBehaviour, SimPBX
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe

HOTLINE = "hotline?server=pbx1"


async def redirect(ami: AmiProbe, channel: str, exten: str,
                   context: str = "acd-connect") -> AmiMessage:
    resp = await ami.action("Redirect", {"Channel": channel, "Context": context,
                                         "Exten": exten, "Priority": "1"})
    assert (resp.response, resp.get("Message")) == ("Success", "Redirect successful")
    return resp


# -------------------------------------------------------------- answered.txt


async def test_answered_call_like_the_recording(agi: AgiScriptServer, pbx: SimPBX,
                                                ami: AmiProbe) -> None:
    replies: list[str] = []
    trailing: list[str | None] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in ("ANSWER", "GET VARIABLE CALLERID(num)",
                    'STREAM FILE hello-world "0123456789#*"',
                    "GET DATA vm-enter-num-to-call 3000 2",
                    'SET VARIABLE ACD_QUEUE "billing"',
                    'EXEC MusicOnHold "default,30"',
                    'NOOP "after redirect"'):
            replies.append(raw(await conn.command(cmd)))
        trailing.append(await conn.read_line())

    agi.scripts["hotline"] = hotline
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=1, talk_s=5))
    call = await pbx.place_call(CallerScript(name="Zhang", keys=["1", "2"]))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    assert moh.get("Class") == "default"
    await redirect(ami, moh["Channel"], "1001")
    result = await call.done

    assert replies[:5] == ["200 result=0", "200 result=1 (13800138000)",
                           replies[2], "200 result=2 (timeout)", "200 result=1"]
    assert re.fullmatch(r"200 result=49 endpos=\d+", replies[2])
    assert 0 < int(replies[2].rpartition("=")[2]) < 5 * 8000
    assert replies[5:] == ["200 result=-1", "HANGUP"]
    assert trailing == ["200 result=0"]  # the NOOP's own reply, after HANGUP

    env = agi.requests[0].env
    assert list(env)[:6] == ["agi_network", "agi_network_script", "agi_request",
                             "agi_channel", "agi_language", "agi_type"]
    assert env["agi_network_script"] == HOTLINE
    assert env["agi_request"] == f"{agi.url}/{HOTLINE}"
    assert env["agi_uniqueid"] == call.uniqueid
    assert env["agi_channel"] == call.channel
    assert re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", call.channel)
    assert (env["agi_context"], env["agi_extension"], env["agi_priority"]) == (
        "acd-hotline", "10086", "3")
    assert env["agi_dnid"] == "10086"
    assert list(env)[-1] == "agi_threadid"

    await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    await ami.drain(0.05)
    events = [m for m in ami.messages if m.event]
    begin = next(m for m in events if m.event == "DialBegin")
    agent_uid = begin["DestUniqueid"]
    assert begin["Uniqueid"] == call.uniqueid
    assert begin["DialString"] == "1001"
    assert begin["DestChannel"].startswith("PJSIP/1001-")
    assert begin["DestLinkedid"] == call.uniqueid
    end = next(m for m in events if m.event == "DialEnd")
    assert (end["Uniqueid"], end["DestUniqueid"], end["DialStatus"]) == (
        call.uniqueid, agent_uid, "ANSWER")
    enters = [m for m in events if m.event == "BridgeEnter"]
    assert [m["Uniqueid"] for m in enters] == [agent_uid, call.uniqueid]
    assert enters[0]["BridgeUniqueid"] == enters[1]["BridgeUniqueid"]
    assert [m["BridgeNumChannels"] for m in enters] == ["1", "2"]
    leaves = [m for m in events if m.event == "BridgeLeave"]
    assert [m["Uniqueid"] for m in leaves] == [agent_uid, call.uniqueid]
    hangups = [(m["Uniqueid"], m["Cause"], m["Cause-txt"]) for m in events
               if m.event == "Hangup"]
    assert hangups == [(agent_uid, "16", "Normal Clearing"),
                       (call.uniqueid, "16", "Normal Clearing")]
    states = [m["State"] for m in events if m.event == "DeviceStateChange"]
    assert states == ["RINGING", "INUSE", "NOT_INUSE"]
    names = [m.event for m in events]
    assert names.index("MusicOnHoldStop") < names.index("DialBegin")
    assert {m["Privilege"] for m in events if m.event == "Newexten"} == {"dialplan,all"}
    dtmf = [m for m in events if m.event == "DTMFEnd"]
    assert [(m["Digit"], m["Direction"]) for m in dtmf] == [("1", "Received"),
                                                            ("2", "Received")]
    apps = [(m["Context"], m["Priority"], m["Application"]) for m in events
            if m.event == "Newexten" and m["Uniqueid"] == call.uniqueid]
    assert apps == [("acd-hotline", "1", "Answer"), ("acd-hotline", "2", "Set"),
                    ("acd-hotline", "3", "AGI"),
                    ("acd-connect", "1", "Set"), ("acd-connect", "2", "Dial")]

    assert result.outcome is Outcome.TALKED
    assert (result.agent, result.hangup_by, result.cause) == ("1001", "agent", 16)
    assert result.talk_s is not None and result.talk_s == pytest.approx(5, abs=1.5)
    assert result.agi_commands[0] == "ANSWER"


async def test_caller_hangs_up_while_talking(agi: AgiScriptServer, pbx: SimPBX,
                                             ami: AmiProbe) -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,30"')

    agi.scripts["hotline"] = hotline
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.5, talk_s=lambda: 1000.0))
    call = await pbx.place_call(CallerScript(patience_s=None, hangup_after_s=50))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await redirect(ami, moh["Channel"], "1001")
    enter = await ami.wait_event("BridgeEnter", Uniqueid=call.uniqueid)
    _, items = await ami.list_action("CoreShowChannels")
    bridged = {e["Uniqueid"]: e["BridgeId"] for e in items if e.event == "CoreShowChannel"}
    assert set(bridged.values()) == {enter["BridgeUniqueid"]}
    assert len(bridged) == 2
    first_leave = await ami.wait_event("BridgeLeave")
    assert first_leave["Uniqueid"] == call.uniqueid
    result = await call.done
    assert (result.outcome, result.hangup_by, result.agent) == (Outcome.TALKED, "caller",
                                                                "1001")
    assert pbx.phones.get("1001") is not None
    assert pbx.phones.phones["1001"].channel is None  # the phone is free again


# --------------------------------------------------------------- abandon.txt


async def test_abandon_while_on_hold(agi: AgiScriptServer) -> None:
    lines: list[str | None] = []
    closed_at: list[float] = []

    async def hotline(conn: AgiConn) -> None:
        lines.append(raw(await conn.command("ANSWER")))
        lines.append(raw(await conn.command('EXEC MusicOnHold "default,30"')))
        lines.append(raw(await conn.command('NOOP "after hangup"')))
        lines.append(raw(await conn.command('NOOP "again"')))
        lines.append(await conn.read_line(wait_s=2))  # nothing more: the sim closes
        closed_at.append(asyncio.get_running_loop().time())

    agi.scripts["hotline"] = hotline
    async with SimPBX(sim_config(agi, agi_dead_close_s=10.0)) as pbx:
        ami = await AmiProbe.connect(pbx.ami_port)
        await ami.login()
        call = await pbx.place_call(CallerScript(name="张三", patience_s=6))
        request = await ami.wait_event("HangupRequest", Uniqueid=call.uniqueid)
        assert request["Cause"] == "16"
        hangup = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
        hangup_at = asyncio.get_running_loop().time()
        result = await call.done
        await ami.close()
    assert lines == ["200 result=0", "200 result=-1", "HANGUP", "200 result=0", None]
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("16", "Normal Clearing")
    assert closed_at and hangup_at >= closed_at[0] - 0.05  # Hangup only once the socket closed
    assert result.outcome is Outcome.ABANDONED_HOLD
    assert (result.hangup_by, result.agent, result.cause) == ("caller", None, 16)
    assert result.wait_s == pytest.approx(6, abs=2)


# ---------------------------------------------- ring, no answer -> requeue


async def test_ring_no_answer_continues_into_requeue(agi: AgiScriptServer, pbx: SimPBX,
                                                     ami: AmiProbe) -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command('SET VARIABLE ACD_RING_TIMEOUT "3"')
        await conn.command('EXEC MusicOnHold "default,30"')
        await conn.command("NOOP")

    async def requeue(conn: AgiConn) -> None:
        assert raw(await conn.command("GET VARIABLE DIALSTATUS")) == "200 result=1 (NOANSWER)"
        assert raw(await conn.command("HANGUP")) == "200 result=1"

    agi.scripts.update(hotline=hotline, requeue=requeue)
    pbx.add_phone("1002", PhoneBehaviour(answers=False))
    call = await pbx.place_call(CallerScript(patience_s=None))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await redirect(ami, moh["Channel"], "1002")
    dial = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Application="Dial")
    # no ACD_CALL_ID, no ACD_RECORDING
    assert dial["AppData"] == "PJSIP/1002,3,m(default)U(acd-answered^^1002^)"
    end = await ami.wait_event("DialEnd", Uniqueid=call.uniqueid)
    assert end["DialStatus"] == "NOANSWER"
    leg = await ami.wait_event("Hangup", Uniqueid=end["DestUniqueid"])
    assert leg["Cause"] == "19"
    result = await call.done

    first, second = agi.requests
    assert second.env["agi_network_script"] == "requeue?status=NOANSWER&offer=&server=pbx1"
    assert second.script == "requeue"
    assert second.query["status"] == "NOANSWER"
    assert second.env["agi_uniqueid"] == first.env["agi_uniqueid"] == call.uniqueid
    assert second.env["agi_channel"] == call.channel
    assert (second.env["agi_context"], second.env["agi_extension"],
            second.env["agi_priority"]) == ("acd-connect", "1002", "3")
    assert result.outcome is Outcome.ENGINE_HANGUP
    assert (result.requeues, result.dial_statuses) == (1, ["NOANSWER"])


@pytest.mark.parametrize(("behaviour", "status"), [
    (PhoneBehaviour(busy=True), "BUSY"),
    (PhoneBehaviour(registered=False), "CHANUNAVAIL"),
    (None, "CHANUNAVAIL"),
])
async def test_dial_failures_requeue_with_status(agi: AgiScriptServer, pbx: SimPBX,
                                                 ami: AmiProbe, behaviour: PhoneBehaviour | None,
                                                 status: str) -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command('EXEC MusicOnHold "default,30"')

    async def requeue(conn: AgiConn) -> None:
        await conn.command("HANGUP")

    agi.scripts.update(hotline=hotline, requeue=requeue)
    if behaviour is not None:
        pbx.add_phone("1005", behaviour)
    call = await pbx.place_call(CallerScript(patience_s=None))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await redirect(ami, moh["Channel"], "1005")
    result = await call.done
    assert agi.requests[1].query["status"] == status
    assert result.dial_statuses == [status]
    await ami.drain(0.05)
    dial_ends = [m["DialStatus"] for m in ami.messages if m.event == "DialEnd"]
    assert dial_ends == (["BUSY"] if status == "BUSY" else [])  # no channel, no Dial events


# ---------------------------------------------------------------- cancel.txt


async def test_caller_hangs_up_while_agent_rings(agi: AgiScriptServer, pbx: SimPBX,
                                                 ami: AmiProbe) -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command('EXEC MusicOnHold "default,30"')
        await conn.command('NOOP "after"')

    agi.scripts["hotline"] = hotline
    pbx.add_phone("1002", PhoneBehaviour(answers=False))
    call = await pbx.place_call(CallerScript(patience_s=None))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await redirect(ami, moh["Channel"], "1002")
    begin = await ami.wait_event("DialBegin", Uniqueid=call.uniqueid)
    await ami.wait_event("DialState", Uniqueid=call.uniqueid)
    call.hangup()
    end = await ami.wait_event("DialEnd", Uniqueid=call.uniqueid)
    assert (end["DialStatus"], end["DestUniqueid"]) == ("CANCEL", begin["DestUniqueid"])
    leg = await ami.wait_event("Hangup", Uniqueid=begin["DestUniqueid"])
    caller = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    assert (leg["Cause"], caller["Cause"]) == ("16", "16")
    result = await call.done
    assert result.outcome is Outcome.ABANDONED_RINGING
    assert result.dial_statuses == ["CANCEL"]
    assert len(agi.requests) == 1  # no requeue after CANCEL


# ----------------------------------------------------------------- utf8.txt


async def test_utf8_caller_name(agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe) -> None:
    names: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        reply = await conn.command("GET VARIABLE CALLERID(name)")
        names.append(raw(reply))

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(number="13800138000", name="张三"))
    new = await ami.wait_event("Newchannel", Uniqueid=call.uniqueid)
    assert new["CallerIDName"] == "张三"
    await call.done
    assert agi.requests[0].env["agi_calleridname"] == "张三"
    assert names == ["200 result=1 (张三)"]


# ----------------------------------------------------- error replies, dead AGI


async def test_510_511_520_replies(agi: AgiScriptServer, pbx: SimPBX) -> None:
    got: list[object] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in ("FOO BAR", "STREAM FILE", "GET VARIABLE", "EXEC NoSuchApp",
                    "HANGUP", 'STREAM FILE hello-world ""'):
            got.append(await conn.command(cmd))
        got.append(await conn.read_reply())

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript())
    await call.done
    unknown, usage1, usage2, noapp, hangup, hangup_line, dead = got
    assert isinstance(unknown, AgiError) and unknown.code == 510
    assert unknown.message == "Invalid or unknown command"
    for usage in (usage1, usage2):
        assert isinstance(usage, AgiError) and usage.code == 520
        assert usage.usage and usage.usage[0].lstrip().startswith("Usage:")
    assert raw(noapp) == "200 result=-2"
    assert raw(hangup) == "200 result=1"
    assert isinstance(hangup_line, AgiHangup)
    assert isinstance(dead, AgiError) and dead.code == 511
    assert dead.message == "Command Not Permitted on a dead channel or intercept routine"


async def test_agi_hangup_command(agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe) -> None:
    """ivr_only.txt: SAY NUMBER, HANGUP -> 200 result=1, then HANGUP, Cause 32 then 0."""
    lines: list[str | None] = []

    async def hotline(conn: AgiConn) -> None:
        lines.append(raw(await conn.command('SAY NUMBER 42 ""')))
        lines.append(raw(await conn.command("HANGUP")))
        lines.append(await conn.read_line())

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript())
    soft = await ami.wait_event("SoftHangupRequest", Uniqueid=call.uniqueid)
    assert soft["Cause"] == "32"
    hangup = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("0", "Unknown")
    result = await call.done
    assert lines == ["200 result=0", "200 result=1", "HANGUP"]
    assert (result.outcome, result.hangup_by) == (Outcome.ENGINE_HANGUP, "engine")


async def test_hangup_between_commands_writes_hangup_at_once(agi: AgiScriptServer,
                                                             pbx: SimPBX) -> None:
    lines: list[str | None] = []

    async def hotline(conn: AgiConn) -> None:
        lines.append(raw(await conn.command("ANSWER")))
        lines.append(await conn.read_line())  # no command pending
        lines.append(raw(await conn.command("NOOP")))

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(hangup_after_s=3))
    result = await call.done
    assert lines == ["200 result=0", "HANGUP", "200 result=0"]
    assert result.outcome is Outcome.IVR_HANGUP


# ------------------------------------------------------------ prompts and keys


async def test_input_commands(agi: AgiScriptServer) -> None:
    lines: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in ("GET DATA vm-enter-num-to-call 3000 2",   # "12": max reached
                    "GET DATA vm-enter-num-to-call 500 2",    # "": nothing typed
                    "GET DATA vm-enter-num-to-call 3000 5",   # "1#": ended by #
                    "WAIT FOR DIGIT 3000",                    # "7"
                    'STREAM FILE hello-world "#"',            # "5": not an escape digit
                    'STREAM FILE hello-world ""',             # no keys left: plays out
                    'STREAM FILE no-such-file "1"',
                    "GET DATA no-such-file 1000 1",
                    "GET VARIABLE DIALSTATUS",
                    'SET VARIABLE FOO "bar baz"',
                    "GET VARIABLE FOO",
                    'SAY DIGITS 123 "9"'):
            reply = await conn.command(cmd)
            lines.append(raw(reply))

    agi.scripts["hotline"] = hotline
    known = frozenset({"hello-world", "vm-enter-num-to-call"})
    async with SimPBX(sim_config(agi, known_files=known)) as pbx:
        call = await pbx.place_call(CallerScript(keys=["12", "", "1#", "7", "5"]))
        await call.done
    assert lines == [
        "200 result=12",
        "200 result= (timeout)",
        "200 result=1",
        "200 result=55",
        "200 result=0 endpos=40000",
        "200 result=0 endpos=40000",
        "200 result=-1 endpos=0",
        "200 result=-1",
        "200 result=0",
        "200 result=1",
        "200 result=1 (bar baz)",
        "200 result=0",
    ]


async def test_agi_refused_goes_to_next_priority(pbx: SimPBX, ami: AmiProbe) -> None:
    """Connection refused: AGISTATUS=FAILURE, AGI() returns 0, the next priority
    (Goto acd-recover) runs (tests/test_sim_recovery.py follows it further)."""
    pbx.cfg.agi_url = f"agi://127.0.0.1:{free_port()}"
    call = await pbx.place_call(CallerScript())
    agistatus = await ami.wait_event("VarSet", Uniqueid=call.uniqueid, Variable="AGISTATUS")
    assert agistatus["Value"] == "FAILURE"
    step = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Application="Goto")
    assert (step["Priority"], step["AppData"]) == ("4", "acd-recover,s,1")
    step = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Context="acd-recover")
    assert (step["Exten"], step["Priority"], step["Application"]) == ("s", "1", "Set")
    call.hangup()
    result = await call.done
    assert result.cause == 16


async def test_dead_agi_socket_is_closed_by_the_sim(agi: AgiScriptServer) -> None:
    lines: list[str | None] = []

    async def hotline(conn: AgiConn) -> None:
        lines.append(raw(await conn.command('EXEC MusicOnHold "default,30"')))
        lines.append(await conn.read_line())
        lines.append(await conn.read_line(wait_s=5))  # the engine never closes

    agi.scripts["hotline"] = hotline
    async with SimPBX(sim_config(agi, agi_dead_close_s=5.0)) as pbx:
        call = await pbx.place_call(CallerScript(patience_s=1))
        result = await call.done
    assert lines == ["200 result=-1", "HANGUP", None]
    assert result.outcome is Outcome.ABANDONED_HOLD
