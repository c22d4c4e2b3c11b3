"""The simulator's side of call continuity: the ``[acd-recover]`` dialplan,
FastAGI sessions that end without the engine, AMI ``channelvars``,
``DeviceStateList`` and the AMI fault knobs.

Each behaviour is Asterisk 22's (res/res_agi.c, main/pbx.c,
main/pbx_builtins.c, main/ast_expr2.y, main/manager.c,
main/manager_channels.c, res/res_manager_devicestate.c; the facts are in
docs/decisions.md).  Small FastAGI servers (sim.testkit) play the engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from helpers import free_port, raw, sim_config

from acd.protocols.ami import AmiMessage
from sim import CallerScript, PhoneBehaviour, SimPBX
from sim.dialplan import Dialplan
from sim.expr import UnsupportedExpression, evaluate, substitute
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe

RESUME = "resume?server=pbx1"
#: the AGI() step's data: the URL, then the call's secret (none set by these scripts)
RESUME_DATA = RESUME + ","


def newexten(pbx: SimPBX, uid: str) -> Callable[[], list[tuple[str, str, str, str, str]]]:
    """Record the channel's Newexten steps: (context, exten, priority, app, data)."""
    steps: list[tuple[str, str, str, str, str]] = []

    def listen(m: AmiMessage) -> None:
        if m.event == "Newexten" and m["Uniqueid"] == uid:
            steps.append((m["Context"], m["Exten"], m["Priority"], m["Application"],
                          m["AppData"]))

    pbx.add_event_listener(listen)
    return lambda: list(steps)


def varsets(pbx: SimPBX, uid: str, variable: str) -> list[str]:
    values: list[str] = []

    def listen(m: AmiMessage) -> None:
        if m.event == "VarSet" and m["Uniqueid"] == uid and m["Variable"] == variable:
            values.append(m["Value"])

    pbx.add_event_listener(listen)
    return values


# --------------------------------------------------------- expressions, gotos


def test_expressions_the_dialplan_uses() -> None:
    names = {"ACD_TRIES": "10", "ACD_RECOVER_TRIES": "10", "EMPTY": ""}

    def sub(template: str) -> str:
        return substitute(template, lambda n: names.get(n, ""))

    assert sub("ACD_TRIES=$[${ACD_TRIES} + 1]") == "ACD_TRIES=11"
    assert sub("$[${ACD_TRIES} > ${ACD_RECOVER_TRIES}]?last,1") == "0?last,1"
    assert sub("$[11 > ${ACD_RECOVER_TRIES}]") == "1"
    assert sub("$[${ACD_TRIES} >= 10]") == "1"
    assert sub("$[9 - 10]") == "-1"
    assert sub("$[-2 + 5]") == "3"
    assert sub("$[(1 + 2) = 3]") == "1"
    assert sub('$["a" = "a"]') == "1"
    assert sub('$["10" < "9"]') == "1"  # quoted: strings, compared as such
    assert sub("$[10 < 9]") == "0"  # numbers compare as numbers
    assert sub("$[$[1 + 1] + 1]") == "3"
    assert sub("$[2.5 + 1]") == "3.5"
    # ACD_TRIES unset: "$[ + 1]" is a syntax error, which ast_str_expr makes "0"
    assert sub("$[${EMPTY} + 1]") == "0"
    assert sub("$[${EMPTY} > 10]") == "0"
    assert sub("$[]") == ""
    assert sub("$[word + 2]") == "2"  # op_plus: a non-number counts as absent
    with pytest.raises(UnsupportedExpression, match=r"'\*'"):
        evaluate("2 * 3")


def test_labels_of_the_recover_context() -> None:
    plan = Dialplan(sim_config(AgiScriptServer()))
    assert plan.find_label("acd-recover", "s", "again") == 4
    assert plan.find_label("acd-recover", "s", "nope") == -1
    assert plan.find_label("acd-recover", "resume", "again") == -1
    assert plan.lookup("acd-recover", "resume") == [("Goto", "s,again")]
    assert [app for app, _ in plan.lookup("acd-recover", "s") or []] == [
        "Set", "GotoIf", "Playback", "AGI", "AGI", "MusicOnHold", "Goto"]


# ------------------------------------------------------------- the recovery


async def test_recovery_reaches_the_standby(agi: AgiScriptServer) -> None:
    """The primary engine ends the hotline session without moving the caller,
    then is gone (connection refused); acd-recover plays the message, fails
    on the primary (AGISTATUS FAILURE) and reaches the standby."""
    done = asyncio.Event()
    hotline_over = asyncio.Event()

    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command("SET VARIABLE ACD_CALL_ID c-42")
        hotline_over.set()

    standby_lines: list[str] = []

    async def resume(conn: AgiConn) -> None:
        for cmd in ("GET VARIABLE ACD_TRIES", "GET VARIABLE ACD_CALL_ID",
                    "GET VARIABLE AGISTATUS", "SET VARIABLE ACD_TRIES 0", "HANGUP"):
            standby_lines.append(raw(await conn.command(cmd)))
        done.set()

    agi.scripts["hotline"] = hotline
    async with AgiScriptServer(scripts={"resume": resume}) as standby:
        cfg = sim_config(agi, agi_standby_url=standby.url)
        async with SimPBX(cfg) as pbx:
            call = await pbx.place_call(CallerScript(patience_s=None))
            steps = newexten(pbx, call.uniqueid)
            statuses = varsets(pbx, call.uniqueid, "AGISTATUS")
            async with asyncio.timeout(5):
                await hotline_over.wait()
            await agi.stop()  # the primary is gone: connection refused from now on
            async with asyncio.timeout(10):
                await done.wait()
            result = await call.done
        (conn,) = standby.connections
    env = conn.request.env
    assert env["agi_network_script"] == RESUME
    assert env["agi_request"] == f"{standby.url}/{RESUME}"
    assert (env["agi_context"], env["agi_extension"], env["agi_priority"]) == (
        "acd-recover", "s", "5")
    assert standby_lines == ["200 result=1 (1)", "200 result=1 (c-42)",
                             "200 result=1 (FAILURE)", "200 result=1", "200 result=1"]
    primary = f"{agi.url}/{RESUME_DATA}"
    assert steps() == [
        ("acd-hotline", "10086", "1", "Answer", ""),
        ("acd-hotline", "10086", "2", "Set", "ACD_TRIES=0"),
        ("acd-hotline", "10086", "3", "AGI", f"{agi.url}/hotline?server=pbx1"),
        ("acd-hotline", "10086", "4", "Goto", "acd-recover,s,1"),
        ("acd-recover", "s", "1", "Set", "ACD_TRIES=1"),
        ("acd-recover", "s", "2", "GotoIf", "0?last,1"),
        ("acd-recover", "s", "3", "Playback", "acd/one-moment"),
        ("acd-recover", "s", "4", "AGI", primary),
        ("acd-recover", "s", "5", "AGI", f"{standby.url}/{RESUME_DATA}"),
    ]
    # the hotline session ended on its own: SUCCESS; the primary refused: FAILURE;
    assert statuses == ["SUCCESS", "FAILURE", "HANGUP"]  # the last: AGI HANGUP
    assert result.agi_scripts[-2:] == [RESUME, RESUME]


async def test_bounded_tries_end_in_voicemail(agi: AgiScriptServer) -> None:
    """No engine anywhere: every AGI fails at once, each round plays the
    message and ACD_RECOVER_WAIT seconds of music; after ACD_RECOVER_TRIES
    rounds the caller leaves a voicemail, then Hangup()."""
    url = f"agi://127.0.0.1:{free_port()}"
    cfg = sim_config(agi, agi_url=url, recover_tries=2, recover_wait_s=4, prompt_s=1.0,
                     voicemail_max_s=2.0)
    async with SimPBX(cfg) as pbx:
        call = await pbx.place_call(CallerScript(patience_s=None))
        steps = newexten(pbx, call.uniqueid)
        tries = varsets(pbx, call.uniqueid, "ACD_TRIES")
        statuses = varsets(pbx, call.uniqueid, "AGISTATUS")
        moh: list[str] = []
        pbx.add_event_listener(lambda m: moh.append(m["Class"])
                               if m.event == "MusicOnHoldStart" else None)
        result = await call.done
        messages = [(v.uniqueid, v.mailbox) for v in pbx.apps.voicemails]
    assert tries == ["0", "1", "2", "3"]
    assert statuses == ["FAILURE"] * 5  # the hotline's, then two rounds of two
    gotoifs = [data for _, _, _, app, data in steps() if app == "GotoIf"]
    assert gotoifs == ["0?last,1", "0?last,1", "1?last,1"]
    mohs = [data for ctx, _, _, app, data in steps() if app == "MusicOnHold"]
    assert mohs == ["default,4", "default,4"]
    assert moh == ["default", "default"]
    assert steps()[-3:] == [("acd-recover", "last", "1", "Playback", "acd/leave-message"),
                            ("acd-recover", "last", "2", "VoiceMail", "10086@default,s"),
                            ("acd-recover", "last", "3", "Hangup", "")]
    assert messages == [(call.uniqueid, "10086@default")]
    # 2 rounds of 1 s message + 4 s music, acd/leave-message (1 s), the beep
    # (no English greeting: option s) and 2 s of message
    assert result.duration_s == pytest.approx(2 * 5 + 1 + 0.25 + 2, abs=1.5)


async def test_resume_extension_skips_the_count(agi: AgiScriptServer, pbx: SimPBX,
                                                ami: AmiProbe) -> None:
    """An AMI Redirect to acd-recover,resume,1 goes to the label ``again``
    (priority 4) without counting a round; a Redirect may name a label too."""
    held = asyncio.Event()
    resumed: list[AgiConn] = []

    async def hotline(conn: AgiConn) -> None:
        held.set()
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()  # HANGUP; then close at once

    async def resume(conn: AgiConn) -> None:
        resumed.append(conn)
        await conn.command("HANGUP")

    agi.scripts.update(hotline=hotline, resume=resume)
    call = await pbx.place_call(CallerScript(patience_s=None))
    steps = newexten(pbx, call.uniqueid)
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    bad = await ami.action("Redirect", {"Channel": call.channel, "Context": "acd-recover",
                                        "Exten": "s", "Priority": "nolabel"})
    assert (bad.response, bad.get("Message")) == ("Error", "Priority is invalid")
    ok = await ami.action("Redirect", {"Channel": call.channel, "Context": "acd-recover",
                                       "Exten": "resume", "Priority": "1"})
    assert ok.get("Message") == "Redirect successful"
    await call.done
    assert steps()[3:] == [("acd-recover", "resume", "1", "Goto", "s,again"),
                           ("acd-recover", "s", "4", "AGI", f"{agi.url}/{RESUME_DATA}")]
    assert resumed[0].request.env["agi_priority"] == "4"


# ------------------------------------------------- sessions without an engine


async def test_engine_killed_during_moh_plays_the_chunk_then_recovers(
        agi: AgiScriptServer) -> None:
    """run_agi reads the socket only between commands: the engine dies while
    EXEC MusicOnHold runs, the caller hears the chunk to its end, then AGI()
    returns (AGISTATUS SUCCESS: EOF is "script completed") and the next
    priority sends the caller to acd-recover."""
    killed: list[float] = []

    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        conn.send('EXEC MusicOnHold "default,20"')
        await asyncio.sleep(0.05)
        killed.append(asyncio.get_running_loop().time())
        # returning closes the socket: the engine is gone

    agi.scripts["hotline"] = hotline
    cfg = sim_config(agi, time_scale=0.05)
    async with SimPBX(cfg) as pbx:
        call = await pbx.place_call(CallerScript(patience_s=None))
        steps = newexten(pbx, call.uniqueid)
        statuses = varsets(pbx, call.uniqueid, "AGISTATUS")
        times: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        pbx.add_event_listener(lambda m: times.setdefault(m.event or "", loop.time())
                               if m.event in ("MusicOnHoldStart", "MusicOnHoldStop") else None)
        async with asyncio.timeout(10):
            while not any(ctx == "acd-recover" for ctx, *_ in steps()):
                await asyncio.sleep(0.01)
        call.hangup()
        await call.done
    played = cfg.unscaled(times["MusicOnHoldStop"] - times["MusicOnHoldStart"])
    assert played == pytest.approx(20, abs=2)  # the whole chunk, long after the kill
    assert times["MusicOnHoldStop"] - killed[0] > cfg.scaled(15)
    assert statuses[0] == "SUCCESS"
    assert steps()[3:5] == [("acd-hotline", "10086", "4", "Goto", "acd-recover,s,1"),
                            ("acd-recover", "s", "1", "Set", "ACD_TRIES=1")]


async def test_redirect_of_a_dead_session_moves_it_at_once(agi: AgiScriptServer) -> None:
    """The engine died inside EXEC MusicOnHold (no duration: it would play
    forever); a new engine's AMI Redirect interrupts the music at once,
    AGI() ends (AGISTATUS HANGUP) and the channel goes on at the target."""
    async def hotline(conn: AgiConn) -> None:
        conn.send('EXEC MusicOnHold "default"')

    agi.scripts["hotline"] = hotline
    cfg = sim_config(agi, time_scale=0.05)
    async with SimPBX(cfg) as pbx:
        ami = await AmiProbe.connect(pbx.ami_port)
        await ami.login()
        call = await pbx.place_call(CallerScript(patience_s=None))
        steps = newexten(pbx, call.uniqueid)
        statuses = varsets(pbx, call.uniqueid, "AGISTATUS")
        await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
        await asyncio.sleep(0.2)  # the socket is closed by now; the music goes on
        assert call.phase == "hold"
        show = (await ami.list_action("CoreShowChannels"))[1][0]
        assert (show["Context"], show["Priority"], show["Application"],
                show["ApplicationData"]) == ("acd-hotline", "3", "MusicOnHold", "default")
        t0 = asyncio.get_running_loop().time()
        ok = await ami.action("Redirect", {"Channel": call.channel, "Context": "acd-recover",
                                           "Exten": "resume", "Priority": "1"})
        assert ok.get("Message") == "Redirect successful"
        await ami.wait_event("MusicOnHoldStop", Uniqueid=call.uniqueid)
        step = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Exten="resume")
        assert asyncio.get_running_loop().time() - t0 < 0.5
        assert step["Application"] == "Goto"
        call.hangup()
        await call.done
        await ami.close()
    assert statuses[0] == "HANGUP"
    assert ("acd-recover", "s", "4", "AGI", f"{agi.url}/{RESUME_DATA}") in steps()


async def test_second_redirect_while_one_is_pending_is_refused(agi: AgiScriptServer) -> None:
    """A live engine keeps the socket open after the Redirect: the channel
    stays in AGI() with the redirect pending (AST_SOFTHANGUP_ASYNCGOTO), so
    ast_check_hangup refuses another; the first target wins at close."""
    release = asyncio.Event()

    async def hotline(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()  # HANGUP
        await release.wait()

    agi.scripts["hotline"] = hotline
    async with SimPBX(sim_config(agi, agi_dead_close_s=60)) as pbx:
        pbx.add_phone("1001", PhoneBehaviour(answer_after_s=60))
        ami = await AmiProbe.connect(pbx.ami_port)
        await ami.login()
        call = await pbx.place_call(CallerScript(patience_s=None))
        await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
        first = await ami.action("Redirect", {"Channel": call.channel,
                                              "Context": "acd-connect", "Exten": "1001",
                                              "Priority": "1"})
        assert first.get("Message") == "Redirect successful"
        second = await ami.action("Redirect", {"Channel": call.channel,
                                               "Context": "acd-fallback", "Exten": "voicemail",
                                               "Priority": "1"})
        assert (second.response, second.get("Message")) == (
            "Error", "Redirect failed, channel not up.")
        release.set()
        step = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Application="Dial")
        assert step["Context"] == "acd-connect"
        call.hangup()
        await call.done
        await ami.close()


async def test_fallback_without_an_engine_still_says_a_word(agi: AgiScriptServer,
                                                            pbx: SimPBX, ami: AmiProbe) -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()  # HANGUP after the Redirect
        await agi.stop()  # the engine goes before the fallback's AGI

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(patience_s=None))
    steps = newexten(pbx, call.uniqueid)
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await ami.action("Redirect", {"Channel": call.channel, "Context": "acd-fallback",
                                  "Exten": "callback", "Priority": "1"})
    await call.done
    assert [(ctx, app, data) for ctx, _, _, app, data in steps()[3:]] == [
        ("acd-fallback", "AGI", f"{agi.url}/fallback?kind=callback&server=pbx1,"),
        ("acd-fallback", "Playback", "acd/all-busy-call-later"),
        ("acd-fallback", "Hangup", "")]


# ------------------------------------------------------------ channelvars


async def test_chanvariable_in_core_show_channel_and_events(agi: AgiScriptServer,
                                                            pbx: SimPBX, ami: AmiProbe) -> None:
    queued = "q=general&arrival=1795463007.5&priority=0"

    async def hotline(conn: AgiConn) -> None:
        await conn.command("SET VARIABLE ACD_CALL_ID c-7")
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()

    agi.scripts["hotline"] = hotline
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.5, talk_s=1))
    call = await pbx.place_call(CallerScript(name='O"Brien', patience_s=None))
    newchannel = await ami.wait_event("Newchannel", Uniqueid=call.uniqueid)
    assert newchannel.get_all("ChanVariable") == ["ACD_CALL_ID=", "ACD_QUEUED=", "ACD_OFFER=",
                                                  "ACD_CALL_SECRET="]
    assert newchannel["CallerIDName"] == 'O\\"Brien'  # ast_escape_c, as in the snapshot
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await ami.action("Setvar", {"Channel": call.channel, "Variable": "ACD_QUEUED",
                                "Value": queued})
    _, items = await ami.list_action("CoreShowChannels")
    (show,) = items[:-1]
    keys = [k for k, _ in show.headers]
    assert keys[keys.index("Linkedid") + 1:] == [
        "ChanVariable", "ChanVariable", "ChanVariable", "ChanVariable", "Application",
        "ApplicationData", "Duration", "BridgeId"]
    assert show.get_all("ChanVariable") == ["ACD_CALL_ID=c-7", f"ACD_QUEUED={queued}",
                                            "ACD_OFFER=", "ACD_CALL_SECRET="]
    await ami.action("Setvar", {"Channel": call.channel, "Variable": "ACD_OFFER",
                                "Value": "o-3"})
    await ami.action("Redirect", {"Channel": call.channel, "Context": "acd-connect",
                                  "Exten": "1001", "Priority": "1"})
    begin = await ami.wait_event("DialBegin", Uniqueid=call.uniqueid)
    assert begin.get_all("ChanVariable") == ["ACD_CALL_ID=c-7", f"ACD_QUEUED={queued}",
                                             "ACD_OFFER=o-3", "ACD_CALL_SECRET="]
    assert begin.get_all("DestChanVariable") == ["ACD_CALL_ID=", "ACD_QUEUED=", "ACD_OFFER=",
                                                 "ACD_CALL_SECRET="]
    keys = [k for k, _ in begin.headers]
    assert keys.index("DestChanVariable") == keys.index("DestLinkedid") + 1
    hangup = await ami.wait_event("Hangup", Uniqueid=call.uniqueid)
    assert hangup.get_all("ChanVariable") == ["ACD_CALL_ID=c-7", f"ACD_QUEUED={queued}",
                                              "ACD_OFFER=o-3", "ACD_CALL_SECRET="]
    await call.done


async def test_originate_response_has_the_old_form(pbx: SimPBX, ami: AmiProbe) -> None:
    """OriginateResponse is raised with the new channel (ast_manager_event_multichan):
    its channelvars come last, as ``ChanVariable(<channel>): NAME=value``."""
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.2, talk_s=1))
    resp = await ami.action("Originate", {
        "Channel": "PJSIP/1001", "Context": "from-internal", "Exten": "s", "Priority": "1",
        "Async": "true", "Variable": "ACD_CALL_ID=c-9"})
    res = await ami.wait_event("OriginateResponse", ActionID=resp.action_id or "")
    channel = res["Channel"]
    assert res.headers[-4:] == ((f"ChanVariable({channel})", "ACD_CALL_ID=c-9"),
                                (f"ChanVariable({channel})", "ACD_QUEUED="),
                                (f"ChanVariable({channel})", "ACD_OFFER="),
                                (f"ChanVariable({channel})", "ACD_CALL_SECRET="))
    await ami.wait_event("Hangup", Uniqueid=res["Uniqueid"])


async def test_no_channelvars_no_chanvariable(agi: AgiScriptServer) -> None:
    async with SimPBX(sim_config(agi, channelvars=())) as pbx:
        ami = await AmiProbe.connect(pbx.ami_port)
        await ami.login()
        call = await pbx.place_call(CallerScript(patience_s=None))
        created = await ami.wait_event("Newchannel", Uniqueid=call.uniqueid)
        _, items = await ami.list_action("CoreShowChannels")
        call.hangup()
        await call.done
        await ami.close()
    assert "ChanVariable" not in created
    assert "ChanVariable" not in items[0]


# ------------------------------------------------------------ device states


async def test_device_state_list_and_changes(pbx: SimPBX, ami: AmiProbe) -> None:
    pbx.add_phone("1001")
    pbx.add_phone("1002", PhoneBehaviour(registered=False))
    await ami.drain(0.05)
    resp, items = await ami.list_action("DeviceStateList")
    assert [k for k, _ in resp.headers] == ["Response", "ActionID", "EventList", "Message"]
    assert (resp.response, resp["EventList"], resp["Message"]) == (
        "Success", "start", "Device State Changes will follow")
    *states, complete = items
    assert [[k for k, _ in m.headers] for m in states] == [
        ["Event", "ActionID", "Device", "State"]] * 2  # no Privilege in a list
    assert {(m["Device"], m["State"]) for m in states} == {
        ("PJSIP/1001", "NOT_INUSE"), ("PJSIP/1002", "UNAVAILABLE")}
    assert [(k, v) for k, v in complete.headers if k != "ActionID"] == [
        ("Event", "DeviceStateListComplete"), ("EventList", "Complete"), ("ListItems", "2")]
    pbx.set_registered("1001", False)
    change = await ami.wait_event("DeviceStateChange", Device="PJSIP/1001")
    assert [(k, v) for k, v in change.headers] == [
        ("Event", "DeviceStateChange"), ("Privilege", "call,all"), ("Device", "PJSIP/1001"),
        ("State", "UNAVAILABLE")]
    pbx.set_registered("1002", True)
    change = await ami.wait_event("DeviceStateChange", Device="PJSIP/1002")
    assert change["State"] == "NOT_INUSE"
    with pytest.raises(KeyError, match="PJSIP/9999"):
        pbx.set_registered("9999", True)


# ------------------------------------------------------------- fault knobs


async def test_drop_right_after_a_redirect(agi: AgiScriptServer, pbx: SimPBX,
                                           ami: AmiProbe) -> None:
    """The Redirect is carried out but its response never arrives: every
    AMI connection is reset first.  Only the next Redirect is affected."""
    async def hotline(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()

    agi.scripts["hotline"] = hotline
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=60))
    other = await AmiProbe.connect(pbx.ami_port)
    await other.login()
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    pbx.drop_ami_after("Redirect")
    aid = ami.send("Redirect", {"Channel": call.channel, "Context": "acd-connect",
                                "Exten": "1001", "Priority": "1"})
    await ami.wait_closed()
    await other.wait_closed()
    assert not [m for m in ami.messages if m.action_id == aid]
    again = await AmiProbe.connect(pbx.ami_port)
    await again.login()
    for _ in range(100):  # it did happen: the caller is in acd-connect's Dial
        _, items = await again.list_action("CoreShowChannels")
        caller = next(m for m in items if m.get("Uniqueid") == call.uniqueid)
        if caller["Application"] == "Dial":
            break
        await asyncio.sleep(0.02)
    assert (caller["Context"], caller["Application"]) == ("acd-connect", "Dial")
    resp = await again.action("Redirect", {"Channel": call.channel, "Context": "acd-fallback",
                                           "Exten": "voicemail", "Priority": "1"})
    assert resp.get("Message") == "Redirect successful"  # one drop only
    assert pbx.ami.dropped_after == ["redirect"]
    call.hangup()
    await call.done
    await again.close()


async def test_refuse_new_ami_connections_for_a_while(pbx: SimPBX, ami: AmiProbe) -> None:
    await pbx.refuse_ami()
    with pytest.raises(ConnectionRefusedError):
        await AmiProbe.connect(pbx.ami_port)
    pong = await ami.action("Ping")  # open sessions stay
    assert pong["Ping"] == "Pong"
    await pbx.accept_ami()
    probe = await AmiProbe.connect(pbx.ami_port)
    assert (await probe.login()).response == "Success"
    await probe.close()

    await pbx.refuse_ami(0.3)
    with pytest.raises(ConnectionRefusedError):
        await AmiProbe.connect(pbx.ami_port)
    await asyncio.sleep(0.5)
    probe = await AmiProbe.connect(pbx.ami_port)
    await probe.close()
    await pbx.refuse_ami(60)  # stop() cancels the pending reopen


async def test_freeze_and_drop_all_still_work(pbx: SimPBX, ami: AmiProbe) -> None:
    pbx.freeze_ami(True)
    aid = ami.send("Ping")
    assert not [m for m in await ami.drain(0.2) if m.action_id == aid]
    pbx.freeze_ami(False)
    assert (await ami.response(aid))["Ping"] == "Pong"
    await pbx.drop_ami_clients()
    await ami.wait_closed()
