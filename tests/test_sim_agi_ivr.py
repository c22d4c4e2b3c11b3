"""The simulator's IVR-side AGI commands: SAY ALPHA/DATE/TIME/DATETIME,
RECORD FILE, SET CONTEXT/EXTENSION/PRIORITY (a transfer through
``acd-transfer``), VoiceMail via EXEC, and GET DATA's edge cases.

Every expected reply is the line Asterisk 22's res/res_agi.c prints (the
handler named in each test); a tiny FastAGI server (sim.testkit) plays the
engine's part.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from helpers import SCALE, raw, sim_config

from acd.protocols.agi import AgiError
from sim import CallerScript, Outcome, SimConfig, SimPBX
from sim.agi_client import format_words, record_offset_beep, record_silence_ms
from sim.config import CallResult, Recording
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe

#: for tests that measure durations or positions: 1 s = 100 ms, so that a
#: loaded machine's 20 ms of lateness is 0.2 s (1600 samples), not 1 s.
TIMED = pytest.mark.parametrize("pbx_config", [0.1], indirect=True, ids=["scale0.1"])
ALL_KEYS = '"0123456789#*"'


@pytest.fixture
def pbx_config(agi: AgiScriptServer, request: pytest.FixtureRequest) -> SimConfig:
    """conftest's, at the time scale a test asks for with ``TIMED``."""
    return sim_config(agi, getattr(request, "param", SCALE))


async def call_with(agi: AgiScriptServer, pbx: SimPBX, commands: list[str],
                    script: CallerScript, trailing: bool = False) -> tuple[list[str], CallResult]:
    """One call whose hotline AGI sends ``commands`` one by one, then closes:
    the reply lines (plus, if ``trailing``, the next line: what arrives
    unasked, ``None`` at EOF) and the call's result."""
    lines: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in commands:
            lines.append(raw(await conn.command(cmd)))
        if trailing:
            lines.append(str(await conn.read_line()))

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(script)
    result = await call.done
    assert not agi.errors
    return lines, result


async def run_script(agi: AgiScriptServer, pbx: SimPBX, commands: list[str],
                     script: CallerScript, trailing: bool = False) -> list[str]:
    return (await call_with(agi, pbx, commands, script, trailing))[0]


# ------------------------------------------------------------------------ SAY


@TIMED
async def test_say_commands_played_out_and_interrupted(agi: AgiScriptServer,
                                                       pbx: SimPBX) -> None:
    """handle_saydatetime & co.: ``200 result=<ascii of the key>``, else 0."""
    durations: list[float] = []
    lines: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        loop = asyncio.get_running_loop()
        for cmd in (f"SAY DATETIME 1786000000 {ALL_KEYS}",        # "5" interrupts
                    'SAY DATE 1786000000 ""',
                    'SAY TIME 1786000000 ""',
                    'SAY DATETIME 1786000000 "#" IMp Asia/Shanghai',  # "7": not an escape
                    'SAY ALPHA abc1 ""',
                    'SAY DATETIME 1786000000 "" ""'):              # empty format: nothing
            t0 = loop.time()
            lines.append(raw(await conn.command(cmd)))
            durations.append((loop.time() - t0) / pbx.cfg.time_scale)

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(keys=["5", "7"], key_delay_s=1.0))
    await call.done
    assert lines == ["200 result=53", "200 result=0", "200 result=0", "200 result=0",
                     "200 result=0", "200 result=0"]
    word = pbx.cfg.say_word_s
    assert durations[0] < 8 * word  # cut short by the key at ~1.1 s
    assert durations[1] == pytest.approx(4 * word, abs=0.6)  # weekday month day year
    assert durations[2] == pytest.approx(3 * word, abs=0.6)  # hour minutes am/pm
    assert durations[3] == pytest.approx(3 * word, abs=0.6)  # I M p, the key ignored
    assert durations[4] == pytest.approx(4 * word, abs=0.6)  # a b c 1
    assert durations[5] < 0.6


def test_datetime_format_word_counts() -> None:
    assert format_words("ABdY 'digits/at' IMp") == 8
    assert format_words("A dBY HMS") == 7
    assert format_words("R") == 2
    assert format_words("T") == 3
    assert format_words("''") == 0


@TIMED  # the hang-up 2 s in is 40 ms at 0.02: too soon for a loaded machine's command
async def test_say_datetime_hangup_answers_minus_one(agi: AgiScriptServer, pbx: SimPBX,
                                                     ami: AmiProbe) -> None:
    lines = await run_script(agi, pbx, [f'SAY DATETIME 1786000000 {ALL_KEYS}'],
                             CallerScript(hangup_after_s=2), trailing=True)
    assert lines == ["200 result=-1", "HANGUP"]
    end = await ami.wait_event("AGIExecEnd", Command=f"SAY DATETIME 1786000000 {ALL_KEYS}")
    assert (end["ResultCode"], end["Result"]) == ("-1", "Failure")  # RESULT_FAILURE


# ---------------------------------------------------------------- usage (520)


@pytest.mark.parametrize("cmd", [
    "SAY ALPHA abc",
    'SAY ALPHA abc "" x',          # case sensitivity must be a/l/n/u
    'SAY DATE 1786000000 "" x',
    'SAY DATE today ""',
    "SAY TIME 1786000000",
    'SAY TIME noon ""',
    "SAY DATETIME 1786000000",
    'SAY DATETIME soon ""',
    'RECORD FILE msg wav "#"',
    'RECORD FILE msg wav "#" forever',
    "SET CONTEXT",
    "SET CONTEXT acd-transfer extra",
    "SET EXTENSION",
    "SET EXTENSION 1 2",
    "SET PRIORITY",
    "SET PRIORITY nosuchlabel",    # a label that does not exist
])
async def test_usage_replies(agi: AgiScriptServer, pbx: SimPBX, cmd: str) -> None:
    got: list[object] = []

    async def hotline(conn: AgiConn) -> None:
        got.append(await conn.command(cmd))

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript())
    await call.done
    (usage,) = got
    assert isinstance(usage, AgiError) and usage.code == 520
    words = " ".join(cmd.split()[:2])
    assert usage.usage[0].strip().startswith(f"Usage: {words} ")


# ---------------------------------------------------------------- RECORD FILE


def test_record_file_argument_rules() -> None:
    """handle_recordfile's reading of argv[6..8]."""
    base = ["RECORD", "FILE", "f", "wav", "#", "-1"]
    assert record_offset_beep(base) == (0, False)
    assert record_offset_beep([*base, "BEEP"]) == (0, True)
    assert record_offset_beep([*base, "800"]) == (800, False)
    assert record_offset_beep([*base, "800", "BEEP"]) == (800, True)
    assert record_offset_beep([*base, "s=3"]) == (0, False)
    assert record_offset_beep([*base, "BEEP", "s=3"]) == (0, True)
    assert record_silence_ms([*base, "BEEP", "s=3"]) == 3000
    assert record_silence_ms([*base, "s=3"]) == 3000
    assert record_silence_ms([*base, "0", "beep", "s=2"]) == 2000
    assert record_silence_ms([*base, "s=0"]) == 0
    assert record_silence_ms([*base, "BEEP"]) == 0


@TIMED
async def test_record_file_stopped_by_hash(agi: AgiScriptServer, pbx: SimPBX,
                                           ami: AmiProbe) -> None:
    lines = await run_script(agi, pbx, ['RECORD FILE /tmp/msg1 wav "#" -1 BEEP'],
                             CallerScript(keys=["#"], key_delay_s=3.0))
    (line,) = lines
    m = re.fullmatch(r"200 result=35 \(dtmf\) endpos=(\d+)", line)
    assert m is not None, line
    endpos = int(m.group(1))
    # beep 0.25 s, "#" at 3.1 s: ~2.85 s recorded, minus the 200 ms cut off
    assert endpos == pytest.approx(int(2.85 * 8000) - 1600, abs=4000)
    (rec,) = pbx.apps.recordings
    assert isinstance(rec, Recording)
    assert (rec.file, rec.format, rec.seconds) == ("/tmp/msg1", "wav", endpos / 8000)
    end = await ami.wait_event("AGIExecEnd", Command='RECORD FILE /tmp/msg1 wav "#" -1 BEEP')
    assert (end["ResultCode"], end["Result"]) == ("200", "Success")


async def test_record_file_timeout_and_offset(agi: AgiScriptServer, pbx: SimPBX) -> None:
    lines = await run_script(agi, pbx, ['RECORD FILE msg2 wav "#" 2000',
                                        'RECORD FILE msg2 wav "#" 1000 800',
                                        'RECORD FILE msg2 wav "#" 0',
                                        'RECORD FILE msg3 gsm "" 500 BEEP'],
                             CallerScript(keys=["", "5"]))
    assert lines == ["200 result=0 (timeout) endpos=16000",
                     "200 result=0 (timeout) endpos=8800",   # appended after sample 800
                     "200 result=0 (timeout) endpos=0",      # timeout 0: nothing recorded
                     "200 result=0 (timeout) endpos=4000"]
    assert [(r.file, r.format, r.seconds) for r in pbx.apps.recordings] == [
        ("msg2", "wav", 2.0), ("msg2", "wav", 1.1), ("msg2", "wav", 0.0), ("msg3", "gsm", 0.5)]


async def test_record_file_silence(agi: AgiScriptServer, pbx: SimPBX) -> None:
    """On silence handle_recordfile still says ``(timeout)``, with ``res`` the
    milliseconds ast_waitfor had left, and rewinds ``silence - 1`` seconds."""
    lines = await run_script(agi, pbx, ['RECORD FILE msg wav "#" -1 s=2',
                                        'RECORD FILE msg wav "#" 10000 BEEP s=2',
                                        'RECORD FILE msg wav "#" 4000 s=2'],
                             CallerScript())
    speech = pbx.cfg.record_speech_s  # 3 s of talk, then 2 s of silence
    assert lines == [f"200 result=99980 (timeout) endpos={int((speech + 1) * 8000)}",
                     f"200 result=5000 (timeout) endpos={int((speech + 1) * 8000)}",
                     "200 result=0 (timeout) endpos=32000"]  # time ran out first


@TIMED
async def test_record_file_hangup(agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe) -> None:
    """``200 result=-1 (hangup) endpos=<n>``, then the unsolicited HANGUP."""
    cmd = 'RECORD FILE msg4 wav "#" -1 BEEP'
    lines = await run_script(agi, pbx, [cmd], CallerScript(hangup_after_s=3), trailing=True)
    m = re.fullmatch(r"200 result=-1 \(hangup\) endpos=(\d+)", lines[0])
    assert m is not None, lines
    assert int(m.group(1)) % 160 == 0
    assert int(m.group(1)) == pytest.approx(2.75 * 8000, abs=4000)
    assert lines[1] == "HANGUP"
    end = await ami.wait_event("AGIExecEnd", Command=cmd)
    assert (end["ResultCode"], end["Result"]) == ("-1", "Failure")
    status = await ami.wait_event("VarSet", Variable="AGISTATUS")
    assert status["Value"] == "HANGUP"
    assert [r.file for r in pbx.apps.recordings] == ["msg4"]


async def test_record_file_beep_interrupted_or_missing(agi: AgiScriptServer) -> None:
    """A key during the beep, or no beep file: ``(randomerror)``, nothing recorded."""
    cfg = sim_config(agi, beep_s=2.0)
    async with SimPBX(cfg) as pbx:
        lines = await run_script(agi, pbx, ['RECORD FILE msg wav "#" -1 BEEP',
                                            'RECORD FILE msg wav "#" 3000 800 1'],
                                 CallerScript(keys=["#", "#"], key_delay_s=0.5))
        assert lines == ["200 result=35 (randomerror) endpos=0",
                         "200 result=35 (randomerror) endpos=800"]
        assert pbx.apps.recordings == []
    cfg = sim_config(agi, known_files=frozenset({"hello-world"}))
    async with SimPBX(cfg) as pbx:
        lines = await run_script(agi, pbx, ['RECORD FILE msg wav "#" 3000 BEEP'],
                                 CallerScript())
        assert lines == ["200 result=-1 (randomerror) endpos=0"]


# ------------------------------------------------------ SET CONTEXT & transfer


@TIMED
async def test_transfer_by_set_context_extension_priority(agi: AgiScriptServer,
                                                          ami: AmiProbe, pbx: SimPBX) -> None:
    pbx.cfg.transfer_talk_s = 5.0
    lines, result = await call_with(agi, pbx, ["ANSWER",
                                        "SET CONTEXT acd-transfer",
                                        "SET EXTENSION 13900139000",
                                        "SET PRIORITY 1",
                                        "GET VARIABLE PRIORITY"],
                             CallerScript(patience_s=None))
    assert lines == ["200 result=0", "200 result=0", "200 result=0", "200 result=0",
                     "200 result=1 (0)"]  # priority 1 is stored as 0 (autoloop)
    await ami.drain(0.1)
    events = [m for m in ami.messages if m.event]
    uid = agi.requests[0].env["agi_uniqueid"]
    steps = [(m["Context"], m["Exten"], m["Priority"], m["Application"], m["AppData"])
             for m in events if m.event == "Newexten" and m["Uniqueid"] == uid]
    assert steps[3:] == [("acd-transfer", "13900139000", "1", "Dial",
                          "PJSIP/13900139000@trunk,60")]
    begin = next(m for m in events if m.event == "DialBegin")
    assert begin["Uniqueid"] == uid
    assert begin["DialString"] == "13900139000@trunk"
    assert re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", begin["DestChannel"])
    assert (begin["DestCallerIDNum"], begin["DestLinkedid"]) == ("13900139000", uid)
    leg = begin["DestUniqueid"]
    dial_states = [m["DialStatus"] for m in events if m.event in ("DialState", "DialEnd")]
    assert dial_states == ["RINGING", "ANSWER"]
    enters = [m["Uniqueid"] for m in events if m.event == "BridgeEnter"]
    assert enters == [leg, uid]
    hangups = [(m["Uniqueid"], m["Cause"]) for m in events if m.event == "Hangup"]
    assert hangups == [(leg, "16"), (uid, "16")]
    assert not [m for m in events if m.event == "DeviceStateChange"]

    assert result.transferred_to == "13900139000"
    assert result.outcome is Outcome.TRANSFERRED
    assert (result.agent, result.hangup_by, result.dial_statuses) == (None, "remote",
                                                                       ["ANSWER"])
    assert result.duration_s == pytest.approx(2 + 5, abs=1.5)



async def test_without_set_priority_the_dialplan_goes_on_after_the_agi(
        agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe) -> None:
    """SET CONTEXT/EXTENSION alone keep the priority (3, the AGI's): the loop
    adds one, so acd-transfer,<number>,4 runs, which does not exist -> the end."""
    lines, result = await call_with(agi, pbx, ["SET CONTEXT acd-transfer",
                                               "SET EXTENSION 13900139000"],
                                    CallerScript())
    assert lines == ["200 result=0", "200 result=0"]
    await ami.drain(0.05)
    uid = result.uniqueid
    apps = [m["Application"] for m in ami.messages
            if m.event == "Newexten" and m["Uniqueid"] == uid]
    assert apps == ["Answer", "Set", "AGI"]
    assert (result.transferred_to, result.outcome) == (None, Outcome.ENGINE_HANGUP)


async def test_set_priority_2_runs_priority_2(agi: AgiScriptServer, pbx: SimPBX,
                                              ami: AmiProbe) -> None:
    _, result = await call_with(agi, pbx, ["SET CONTEXT acd-transfer",
                                           "SET EXTENSION 13900139000",
                                           "SET PRIORITY 2"], CallerScript())
    step = await ami.wait_event("Newexten", Uniqueid=result.uniqueid, Context="acd-transfer")
    assert (step["Priority"], step["Application"]) == ("2", "Hangup")
    assert result.transferred_to is None


@TIMED
async def test_caller_hangs_up_during_transfer(agi: AgiScriptServer, pbx: SimPBX,
                                               ami: AmiProbe) -> None:
    pbx.cfg.transfer_talk_s = 1000.0
    _, result = await call_with(agi, pbx, ["SET CONTEXT acd-transfer",
                                           "SET EXTENSION 13900139000",
                                           "SET PRIORITY 1"],
                                CallerScript(hangup_after_s=6))
    assert result.outcome is Outcome.TRANSFERRED
    assert (result.transferred_to, result.hangup_by) == ("13900139000", "caller")
    await ami.drain(0.05)
    leaves = [m["Uniqueid"] for m in ami.messages if m.event == "BridgeLeave"]
    assert leaves[0] == result.uniqueid  # the caller left first


async def test_transfer_not_answered(agi: AgiScriptServer) -> None:
    cfg = sim_config(agi, transfer_answer_s=None)
    async with SimPBX(cfg) as pbx:
        _, result = await call_with(agi, pbx, ["SET CONTEXT acd-transfer",
                                               "SET EXTENSION 13900139000",
                                               "SET PRIORITY 1"], CallerScript())
    assert result.dial_statuses == ["NOANSWER"]  # after Dial's 60 s
    assert result.transferred_to == "13900139000"
    assert result.outcome is Outcome.ENGINE_HANGUP  # then Hangup()
    assert result.duration_s == pytest.approx(60, abs=3)


# ---------------------------------------------------------------- VoiceMail


@TIMED
async def test_voicemail_via_exec(agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe) -> None:
    """handle_exec: ``200 result=<what the application returned>``."""
    lines, result = await call_with(agi, pbx, ['EXEC VoiceMail "1001@default,u"', "HANGUP"],
                                    CallerScript(keys=["#"], key_delay_s=4.0))
    assert lines == ["200 result=0", "200 result=1"]
    (msg,) = pbx.apps.voicemails
    assert (msg.uniqueid, msg.mailbox) == (result.uniqueid, "1001@default")
    assert msg.seconds == pytest.approx(4.1, abs=1.0)
    vmstatus = await ami.wait_event("VarSet", Uniqueid=result.uniqueid, Variable="VMSTATUS")
    assert vmstatus["Value"] == "SUCCESS"
    state = await ami.wait_event("Newstate", Uniqueid=result.uniqueid)
    assert state["ChannelStateDesc"] == "Up"  # VoiceMail answered the call


@TIMED
async def test_voicemail_until_hangup(agi: AgiScriptServer, pbx: SimPBX) -> None:
    lines = await run_script(agi, pbx, ['EXEC VoiceMail "1001,u"'],
                             CallerScript(hangup_after_s=10), trailing=True)
    assert lines == ["200 result=-1", "HANGUP"]
    (msg,) = pbx.apps.voicemails
    greeting = pbx.cfg.voicemail_greeting_s + pbx.cfg.beep_s
    assert msg.mailbox == "1001"
    assert msg.seconds == pytest.approx(10 - greeting, abs=1.0)


async def test_voicemail_fallback_context(agi: AgiScriptServer, pbx: SimPBX,
                                          ami: AmiProbe) -> None:
    """acd-fallback,voicemail is Playback(acd/leave-message), VoiceMail(${ACD_VOICEMAIL},s)
    as in extensions.conf (s: no greeting of Asterisk's in English after ours)."""
    pbx.cfg.voicemail_max_s = 5.0

    async def hotline(conn: AgiConn) -> None:
        await conn.command('EXEC MusicOnHold "default,30"')

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(patience_s=None))
    moh = await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    resp = await ami.action("Redirect", {"Channel": moh["Channel"], "Context": "acd-fallback",
                                         "Exten": "voicemail", "Priority": "1"})
    assert resp.response == "Success"
    step = await ami.wait_event("Newexten", Uniqueid=call.uniqueid, Application="VoiceMail")
    assert step["AppData"] == "10086@default,s"
    await call.done
    (msg,) = pbx.apps.voicemails
    assert (msg.mailbox, msg.seconds) == ("10086@default", 5.0)


# ------------------------------------------------------------------ GET DATA


async def test_get_data_keys(agi: AgiScriptServer) -> None:
    """handle_getdata / ast_app_getdata_full / ast_readstring_full."""
    known = frozenset({"hello-world", "vm-enter-num-to-call", "beep"})
    async with SimPBX(sim_config(agi, known_files=known)) as pbx:
        lines = await run_script(agi, pbx, [
            "GET DATA vm-enter-num-to-call 3000 4",     # "1234": max reached
            "GET DATA vm-enter-num-to-call 3000 10",    # "98#": # ends, not kept
            "GET DATA vm-enter-num-to-call 3000 10",    # "#": empty, ended by #
            "GET DATA vm-enter-num-to-call 3000 10",    # "5*": * is a digit; then timeout
            "GET DATA hello-world&vm-enter-num-to-call 3000 1",  # one file, not a list
            "GET DATA vm-enter-num-to-call 3000 0",     # max 0
        ], CallerScript(keys=["1234", "98#", "#", "5*"]))
    assert lines == ["200 result=1234", "200 result=98", "200 result=",
                     "200 result=5* (timeout)", "200 result=-1", "200 result=-1"]


@TIMED
async def test_get_data_default_timeouts(agi: AgiScriptServer, pbx: SimPBX) -> None:
    """No timeout given: 6 s for the first key, 2 s between keys (not the
    PBX's 10 s / 5 s)."""
    durations: list[float] = []
    lines: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        loop = asyncio.get_running_loop()
        for cmd in ('GET DATA ""', 'GET DATA ""'):
            t0 = loop.time()
            lines.append(raw(await conn.command(cmd)))
            durations.append((loop.time() - t0) / pbx.cfg.time_scale)

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript(keys=["", "1"], key_delay_s=0.5))
    await call.done
    assert lines == ["200 result= (timeout)", "200 result=1 (timeout)"]
    assert durations[0] == pytest.approx(6.0, abs=0.8)
    assert durations[1] == pytest.approx(0.6 + 2.0, abs=0.8)


# ------------------------------------------------------- failures and AGISTATUS


async def test_missing_file_is_a_failure(agi: AgiScriptServer, ami: AmiProbe,
                                         pbx: SimPBX) -> None:
    """handle_streamfile returns RESULT_FAILURE for a missing file: AGIExecEnd
    ``ResultCode: -1`` / ``Failure``, and AGISTATUS=FAILURE (the channel is up)."""
    pbx.cfg.known_files = frozenset({"hello-world"})
    lines, result = await call_with(agi, pbx, ['STREAM FILE no-such-file ""',
                                               'STREAM FILE hello-world ""'], CallerScript())
    assert lines == ["200 result=-1 endpos=0", "200 result=0 endpos=40000"]
    end = await ami.wait_event("AGIExecEnd", Command='STREAM FILE no-such-file ""')
    assert (end["ResultCode"], end["Result"]) == ("-1", "Failure")
    playback = await ami.wait_event("VarSet", Variable="PLAYBACKSTATUS")
    assert playback["Value"] == "SUCCESS"
    status = await ami.wait_event("VarSet", Uniqueid=result.uniqueid, Variable="AGISTATUS")
    assert status["Value"] == "FAILURE"
