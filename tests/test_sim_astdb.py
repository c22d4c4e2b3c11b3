"""The answer marker: Dial's ``U()`` routine, ``DB()``, ``${EPOCH}``, AstDB
and AMI ``DBGet`` / ``DBPut`` / ``DBDel`` in the simulator.

When an agent answers, acd-connect's ``Dial(...U(acd-answered^<call id>^
<ext>))`` runs ``[acd-answered]`` on the agent's channel before the bridge,
which writes AstDB ``acd/answered/<ext>`` = ``"<epoch> <call id>"``; an
engine that missed the answer reads it back with ``DBGet``.  Each behaviour
is Asterisk 22's (apps/app_dial.c, apps/app_stack.c, funcs/func_db.c,
main/db.c, main/pbx_variables.c; quoted in the docstrings of sim.dialplan,
sim.apps, sim.pbx and sim.ami_server).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from helpers import raw, sim_config

from acd.protocols.ami import AmiMessage
from sim import CallerScript, Outcome, PhoneBehaviour, SimPBX
from sim.astdb import AstDB
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe
from sim.util import parse_app_options, separate_args

NOW = 1795463007.75  # the wall clock ${EPOCH} reads in these tests


def hold_with_call_id(call_id: str) -> Callable[[AgiConn], Awaitable[None]]:
    """A hotline script: set ACD_CALL_ID, hold the caller until moved."""

    async def hotline(conn: AgiConn) -> None:
        await conn.command(f"SET VARIABLE ACD_CALL_ID {call_id}")
        await conn.command('SET VARIABLE ACD_RING_TIMEOUT "3"')
        await conn.command('EXEC MusicOnHold "default,600"')
        await conn.read_line()

    return hotline


async def hang_up(conn: AgiConn) -> None:
    await conn.command("HANGUP")


def record(pbx: SimPBX) -> list[AmiMessage]:
    events: list[AmiMessage] = []
    pbx.add_event_listener(events.append)
    return events


async def connect_to(ami: AmiProbe, channel: str, exten: str) -> None:
    resp = await ami.action("Redirect", {"Channel": channel, "Context": "acd-connect",
                                         "Exten": exten, "Priority": "1"})
    assert resp.get("Message") == "Redirect successful"


# ------------------------------------------------------------ answered


async def test_answered_call_leaves_its_marker_for_dbget(agi: AgiScriptServer, pbx: SimPBX,
                                                         ami: AmiProbe) -> None:
    agi.scripts["hotline"] = hold_with_call_id("c-42")
    pbx.wall_clock = lambda: NOW
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.5, talk_s=1))
    events = record(pbx)
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await connect_to(ami, call.channel, "1001")
    result = await call.done
    assert result.outcome is Outcome.TALKED

    assert pbx.astdb.items() == [("/acd/answered/1001", "1795463007 c-42")]
    assert pbx.astdb.get("acd/answered", "1001") == pbx.astdb.get("acd", "answered/1001")

    # The routine ran on the agent's leg, after DIALSTATUS=ANSWER and before
    # DialEnd ANSWER, the end of the caller's music and the bridge.
    begin = next(m for m in events if m.event == "DialBegin")
    leg = begin["DestUniqueid"]
    steps = []
    for m in events:
        if m.event == "Newexten" and m["Uniqueid"] == leg:
            steps.append((m["Context"], m["Exten"], m["Priority"], m["Application"],
                          m["AppData"]))
    assert steps == [
        ("agents", "1001", "1", "AppDial", "(Outgoing Line)"),
        ("acd-answered", "s", "1", "Set", "DB(acd/answered/1001)=1795463007 c-42"),
        # no ACD_RECORDING on the caller: ARG3 empty, no recording
        ("acd-answered", "s", "2", "ExecIf", "0?MixMonitor(,b)"),
        ("acd-answered", "s", "3", "Return", "")]
    assert pbx.ami.monitors.recordings == []
    leg_vars = [(m["Variable"], m["Value"]) for m in events
                if m.event == "VarSet" and m["Uniqueid"] == leg]
    assert leg_vars == [("LOCAL(ARG1)", "c-42"), ("LOCAL(ARG2)", "1001"),
                        ("LOCAL(ARG3)", ""), ("LOCAL(ARGC)", "3"),
                        ("ARGC", ""), ("ARG2", ""), ("ARG1", ""), ("GOSUB_RETVAL", "")]

    after_ringing = events[events.index(begin):]
    order = []
    for m in after_ringing:
        if m.event == "VarSet" and m["Variable"] == "DIALSTATUS":
            order.append(f"DIALSTATUS={m['Value']}")
        elif m.event == "Newexten" and m["Uniqueid"] == leg and m["Context"] == "acd-answered":
            order.append(m["Application"])
        elif m.event == "DialEnd":
            order.append(f"DialEnd {m['DialStatus']}")
        elif m.event in ("MusicOnHoldStart", "MusicOnHoldStop", "BridgeCreate"):
            order.append(m.event)
    assert order == ["MusicOnHoldStart", "DIALSTATUS=ANSWER", "Set", "ExecIf", "Return",
                     "DialEnd ANSWER", "MusicOnHoldStop", "BridgeCreate"]

    # A later AMI session (the engine after an outage) reads it.
    await ami.close()
    later = await AmiProbe.connect(pbx.ami_port)
    try:
        await later.login()
        resp, items = await later.list_action("DBGet", {"Family": "acd",
                                                        "Key": "answered/1001"})
        aid = resp.action_id
        assert resp.headers == (("Response", "Success"), ("ActionID", aid),
                                ("EventList", "start"), ("Message", "Result will follow"))
        got, complete = items
        assert got.headers == (("Event", "DBGetResponse"), ("Family", "acd"),
                               ("Key", "answered/1001"), ("Val", "1795463007 c-42"),
                               ("ActionID", aid))
        assert complete.headers == (("Event", "DBGetComplete"), ("ActionID", complete.action_id),
                                    ("EventList", "Complete"), ("ListItems", "1"))
        # The same row under the other split of its full key.
        _, items = await later.list_action("DBGet", {"Family": "acd/answered", "Key": "1001"})
        assert (items[0]["Family"], items[0]["Key"], items[0]["Val"]) == (
            "acd/answered", "1001", "1795463007 c-42")
    finally:
        await later.close()


async def test_a_later_answer_overwrites_the_agents_marker(agi: AgiScriptServer, pbx: SimPBX,
                                                           ami: AmiProbe) -> None:
    ids = iter(["c-1", "c-2"])

    async def hotline(conn: AgiConn) -> None:
        await hold_with_call_id(next(ids))(conn)

    agi.scripts["hotline"] = hotline
    clock = [NOW]
    pbx.wall_clock = lambda: clock[0]
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.2, talk_s=0.5))
    for _ in range(2):
        call = await pbx.place_call(CallerScript(patience_s=None))
        await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
        await connect_to(ami, call.channel, "1001")
        assert (await call.done).outcome is Outcome.TALKED
        clock[0] += 60
    assert pbx.astdb.items() == [("/acd/answered/1001", "1795463067 c-2")]


# -------------------------------------------------------- not answered


@pytest.mark.parametrize(("behaviour", "status"), [
    (PhoneBehaviour(answers=False), "NOANSWER"),
    (PhoneBehaviour(busy=True), "BUSY"),
    (PhoneBehaviour(answer_after_s=30), "CANCEL"),
])
async def test_no_marker_without_an_answer(agi: AgiScriptServer, pbx: SimPBX, ami: AmiProbe,
                                           behaviour: PhoneBehaviour, status: str) -> None:
    agi.scripts.update(hotline=hold_with_call_id("c-5"), requeue=hang_up)
    pbx.add_phone("1001", behaviour)
    events = record(pbx)
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await connect_to(ami, call.channel, "1001")
    if status == "CANCEL":  # the caller hangs up while the agent's phone rings
        await ami.wait_event("DialState", Uniqueid=call.uniqueid)
        call.hangup()
    result = await call.done
    assert result.dial_statuses == [status]
    assert result.outcome is not Outcome.TALKED

    assert pbx.astdb.items() == []
    assert not [m for m in events if m.event == "Newexten" and m["Context"] == "acd-answered"]
    resp = await ami.action("DBGet", {"Family": "acd", "Key": "answered/1001"})
    assert resp.headers == (("Response", "Error"), ("ActionID", resp.action_id),
                            ("Message", "Database entry not found"))


async def test_missing_answered_context_still_bridges(agi: AgiScriptServer, pbx: SimPBX,
                                                      ami: AmiProbe) -> None:
    """gosub_exec fails ("non-existent destination"): app_dial ignores it."""
    pbx.dialplan.remove_context("acd-answered")
    agi.scripts["hotline"] = hold_with_call_id("c-6")
    pbx.add_phone("1001", PhoneBehaviour(answer_after_s=0.2, talk_s=0.5))
    events = record(pbx)
    call = await pbx.place_call(CallerScript(patience_s=None))
    await ami.wait_event("MusicOnHoldStart", Uniqueid=call.uniqueid)
    await connect_to(ami, call.channel, "1001")
    result = await call.done
    assert result.outcome is Outcome.TALKED
    assert pbx.astdb.items() == []
    assert [m["DialStatus"] for m in events if m.event == "DialEnd"] == ["ANSWER"]
    assert [m.event for m in events if m.event == "BridgeCreate"] == ["BridgeCreate"]
    assert not [m for m in events if m.event == "VarSet" and m["Variable"].startswith("LOCAL(")]


# ------------------------------------------------------------- AMI DB*


async def test_db_actions_answer_as_asterisk(pbx: SimPBX, ami: AmiProbe) -> None:
    async def reply(action: str, **fields: str) -> tuple[str, str]:
        resp = await ami.action(action, fields)
        return resp.response or "", resp.get("Message")

    assert await reply("DBGet", Key="k") == ("Error", "No family specified.")
    assert await reply("DBGet", Family="f") == ("Error", "No key specified.")
    assert await reply("DBGet", Family="f", Key="k") == ("Error", "Database entry not found")
    assert await reply("DBPut", Key="k", Val="v") == ("Error", "No family specified")
    assert await reply("DBPut", Family="f", Val="v") == ("Error", "No key specified")
    assert await reply("DBPut", Family="f", Key="k", Val="v 1") == (
        "Success", "Updated database successfully")
    assert pbx.astdb.get("f", "k") == "v 1"
    assert await reply("DBDel", Key="k") == ("Error", "No family specified.")
    assert await reply("DBDel", Family="f", Key="k") == ("Success", "Key deleted successfully")
    assert await reply("DBDel", Family="f", Key="k") == (
        "Error", "Database entry could not be deleted")
    assert len(pbx.astdb) == 0


async def test_astdb_outlives_the_pbx(agi: AgiScriptServer) -> None:
    """AstDB is a file: a restarted Asterisk still has the rows."""
    db = AstDB()
    db.put("acd", "answered/1001", "1795463007 c-9")
    async with SimPBX(sim_config(agi), astdb=db) as pbx:
        probe = await AmiProbe.connect(pbx.ami_port)
        await probe.login()
        _, items = await probe.list_action("DBGet", {"Family": "acd", "Key": "answered/1001"})
        await probe.close()
    assert items[0]["Val"] == "1795463007 c-9"
    db.clear()
    assert db.items() == []


# ----------------------------------------------------- DB() and EPOCH


async def test_db_function_and_epoch_from_agi(agi: AgiScriptServer, pbx: SimPBX,
                                              ami: AmiProbe) -> None:
    replies: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in ("GET VARIABLE EPOCH",
                    "SET VARIABLE DB(acd/answered/2002) x",
                    "GET VARIABLE DB(acd/answered/2002)",
                    "GET VARIABLE DB_RESULT",
                    "GET VARIABLE DB(acd/answered/9999)",
                    "HANGUP"):
            replies.append(raw(await conn.command(cmd)))

    agi.scripts["hotline"] = hotline
    pbx.wall_clock = lambda: NOW
    events = record(pbx)
    call = await pbx.place_call(CallerScript(patience_s=None))
    await call.done
    assert replies == ["200 result=1 (1795463007)", "200 result=1",
                       "200 result=1 (x)", "200 result=1 (x)", "200 result=1 ()",
                       "200 result=1"]
    assert pbx.astdb.items() == [("/acd/answered/2002", "x")]
    # a function write is no channel variable: no VarSet DB(...)
    assert not [m for m in events if m.event == "VarSet" and m["Variable"].startswith("DB(")]


def test_argument_splitting_as_asterisk() -> None:
    # AST_NONSTANDARD_APP_ARGS(args, parse, '/') with (family, key): first '/'
    assert separate_args("acd/answered/1001", "/", remove_chars=True, max_args=2) == [
        "acd", "answered/1001"]
    assert separate_args("c-1,1001") == ["c-1", "1001"]
    assert separate_args(",1001") == ["", "1001"]
    assert separate_args("a,") == ["a", ""]
    assert separate_args("") == []
    assert separate_args("f(a,b),c") == ["f(a,b)", "c"]
    assert separate_args('"a,b",c', remove_chars=True) == ["a,b", "c"]
    assert separate_args('"a,b",c') == ['"a,b"', "c"]
    assert parse_app_options("m(default)U(acd-answered^c-1^1001)") == {
        "m": "default", "U": "acd-answered^c-1^1001"}
    assert parse_app_options("gm") == {"g": "", "m": ""}
    assert parse_app_options("U(x(y)z)") == {"U": "x(y)z"}
