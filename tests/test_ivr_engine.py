"""Every IVR node type run by the engine over FastAGI against the PBX simulator,
with the real reply formats: keys interrupting prompts, GET DATA timeouts,
RECORD FILE, SAY, lookups over real HTTP, hang-ups in the middle of a node,
transfer, voicemail and flow reloads."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from helpers import SECRET, call_record, db_url, engine_on_pbx, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

#: the due date the lookup returns, said as noon that day in Shanghai
DUE = int(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp())
MONDAY_10 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC).timestamp()  # 10:00 in Shanghai

FLOW = """
flow: every
version: "{version}"
languages: [zh, en]
timezone: Asia/Shanghai
start: hours
nodes:
  hours:
    type: hours
    timezone: Asia/Shanghai
    open: {{mon-fri: "08:00-20:00"}}
    when_open: lang
    when_closed: closed
  closed: {{type: voicemail, mailbox: "8000@hotline", prompt: acd/closed}}
  lang: {{type: language, language: en, dialect: cantonese, next: greet}}
  greet: {{type: play, prompt: [acd/hello, acd/welcome], barge_in: true, next: menu}}
  menu:
    type: menu
    prompt: acd/menu
    timeout: 2
    retries: 1
    timeout_prompt: acd/no-input
    invalid_prompt: acd/invalid
    options: {{"1": acct, "2": xfer, "3": rec, "4": vipsub, "9": vm}}
    on_fail: bye
  vipsub: {{type: subflow, flow: sub.yaml, next: subq}}
  subq:
    type: queue
    queue: billing
    priority: "int(tier) * 10"
  acct:
    type: input
    prompt: acd/enter-account
    variable: account
    min_digits: 4
    max_digits: 8
    timeout: 2
    retries: 1
    invalid_prompt: acd/bad-account
    timeout_prompt: acd/no-input
    next: fetch
    on_fail: bye
  fetch:
    type: lookup
    source: http
    url: "{url}/acct/{{account}}?n={{caller.number}}"
    timeout: 1
    save: {{balance: balance, due: due}}
    next: say
    on_error: sorry
  say:
    type: say
    say: money
    value: "{{balance}}"
    prompt: acd/balance-is
    barge_in: true
    next: say_date
  say_date: {{type: say, say: date, value: "{{due}}", next: mark}}
  mark: {{type: sms, template: balance_link, next: set}}
  set:
    type: set
    vars: {{tier: "{{caller.vip_level}}"}}
    next: jump
  jump: {{type: goto, target: route}}
  route:
    type: branch
    cases:
      - if: tier == "2"
        goto: vipq
    else: q
  vipq:
    type: queue
    queue: vip
    priority: 40
    attributes: {{account: "{{account}}"}}
  q:
    type: queue
    queue: billing
    attributes: {{account: "{{account}}"}}
  rec:
    type: record
    prompt: acd/after-beep
    variable: message
    max_seconds: 5
    next: thanks
  thanks: {{type: hangup, prompt: acd/thanks}}
  xfer: {{type: transfer, number: "95555", prompt: acd/transferring}}
  vm: {{type: voicemail, mailbox: "1000@hotline"}}
  sorry: {{type: hangup, prompt: acd/sorry}}
  bye: {{type: hangup, prompt: acd/bye}}
"""


SUB = """
flow: sub
start: look
variables: {tier: "0"}
nodes:
  look:
    type: lookup
    source: profile
    save: {tier: vip_level}
    next: done
    on_error: done
  done: {type: return}
"""


@asynccontextmanager
async def lookup_server(delay_s: float = 0.0) -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def acct(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        await asyncio.sleep(delay_s)
        if request.match_info["id"] == "0000":
            return web.json_response({"error": "no such account"}, status=404)
        return web.json_response({"balance": "12.50", "due": "2026-12-01"})

    app = web.Application()
    app.router.add_get("/acct/{id}", acct)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def system(tmp_path: Path, url: str, *, clock_at: float = MONDAY_10,
                 version: str = "1", profiles: dict[str, dict[str, str]] | None = None,
                 ) -> AsyncIterator[tuple[SimPBX, Engine, Path]]:
    (tmp_path / "sub.yaml").write_text(SUB)
    flow_file = tmp_path / "every.yaml"
    flow_file.write_text(FLOW.format(url=url, version=version))
    pbx = pbx_for_engine(say_word_s=0.05, dtmf_gap_s=0.02, dtmf_duration_s=0.02,
                         transfer_talk_s=0.3, voicemail_max_s=0.3, beep_s=0.01)
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    flow = load_flow(flow_file)
    policy = simple_policy({"billing": 5, "vip": 5})
    agents = agents_for_queues({"a1001": ("1001", ("billing", "vip"))})
    start = time.time()

    async def lookup(number: str) -> dict[str, str]:
        return dict((profiles or {}).get(number, {}))

    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
        flow=flow, ami=AmiConfig(username="acd", secret=SECRET), database_url=db_url(tmp_path),
        known_queues=frozenset({"billing", "vip"}))
    async with engine_on_pbx(cfg, pbx=pbx, phones=phones,
                             clock=lambda: clock_at + (time.time() - start),
                             lookup=lookup) as (sim, engine):
        yield sim, engine, flow_file


async def call(pbx: SimPBX, keys: list[str], number: str = "13800138000",
               hangup_after_s: float | None = None, timeout: float = 15) -> CallResult:
    h = await pbx.place_call(CallerScript(number=number, keys=keys, patience_s=10,
                                          key_delay_s=0.02, hangup_after_s=hangup_after_s))
    return await asyncio.wait_for(h.done, timeout)



def commands(res: CallResult) -> list[str]:
    """What the flow made the caller hear and do (not the engine's own
    bookkeeping: ANSWER, variables it reads, its ACD_* channel variables)."""
    return [c for c in res.agi_commands
            if not c.startswith(("ANSWER", "GET VARIABLE", "SET VARIABLE ACD_"))]


async def test_input_lookup_say_set_branch_and_queue(tmp_path: Path) -> None:
    async with lookup_server() as (url, seen), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["", "", "1", "12345#", ""])
        rec = await call_record(engine, res.uniqueid)
    assert res.outcome is Outcome.TALKED and res.agent == "1001"
    cmds = commands(res)
    assert cmds[:4] == ['SET VARIABLE CHANNEL(language) "en"', 'STREAM FILE acd/hello '
                        '"0123456789*#"', 'STREAM FILE acd/welcome "0123456789*#"',
                        "GET DATA acd/menu 2000 1"]
    assert "GET DATA acd/enter-account 2000 8" in cmds
    assert seen == ["/acct/12345?n=13800138000"]
    i = cmds.index('STREAM FILE acd/balance-is "0123456789*#"')
    assert cmds[i + 1:i + 6] == ['SAY NUMBER 12 "0123456789*#"',
                                 'STREAM FILE acd/yuan "0123456789*#"',
                                 'SAY NUMBER 50 "0123456789*#"',
                                 'STREAM FILE acd/fen "0123456789*#"',
                                 f'SAY DATETIME {DUE} "" "ABdY" "Asia/Shanghai"']
    assert rec["queue"] == "billing" and rec["outcome"] == "answered"
    assert rec["ivr_path"].split(">") == ["hours", "lang", "greet", "menu", "acct", "fetch",
                                          "say", "say_date", "mark", "set", "jump", "route",
                                          "q"]


async def test_a_key_interrupts_the_prompts_and_answers_the_menu(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["9"])  # typed during acd/hello
        await call_record(engine, res.uniqueid)
        voicemails = list(pbx.apps.voicemails)
    cmds = commands(res)
    # the second welcome file and the menu prompt are skipped: type-ahead chose 9
    assert 'STREAM FILE acd/welcome "0123456789*#"' not in cmds
    assert not any(c.startswith("GET DATA acd/menu") for c in cmds)
    assert 'EXEC VoiceMail "1000@hotline,s"' in cmds
    assert [v.mailbox for v in voicemails] == ["1000@hotline"]


async def test_get_data_timeouts_retry_then_fail(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["", "", "", ""])
        rec = await call_record(engine, res.uniqueid)
    cmds = commands(res)
    menu = [c for c in cmds if c.startswith("GET DATA acd/menu")]
    assert len(menu) == 2  # first try and one retry
    assert 'STREAM FILE acd/no-input ""' in cmds
    assert 'STREAM FILE acd/bye ""' in cmds and cmds[-1] == "HANGUP"
    assert rec["outcome"] == "ivr" and rec["ivr_path"].endswith("bye")


async def test_input_validation_and_lookup_not_found(tmp_path: Path) -> None:
    async with lookup_server() as (url, seen), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["", "", "1", "12#", "0000#"])
        rec = await call_record(engine, res.uniqueid)
    cmds = commands(res)
    assert 'STREAM FILE acd/bad-account ""' in cmds  # "12" is too short
    assert seen == ["/acct/0000?n=13800138000"]       # 404: nothing found
    assert 'STREAM FILE acd/sorry ""' in cmds
    assert rec["ivr_path"].endswith("fetch>sorry")


async def test_lookup_timeout_takes_on_error(tmp_path: Path) -> None:
    async with lookup_server(delay_s=3) as (url, _), system(tmp_path, url) as (pbx, engine, _):
        t0 = time.monotonic()
        res = await call(pbx, ["", "", "1", "1234#"])
        rec = await call_record(engine, res.uniqueid)
        assert time.monotonic() - t0 < 2.5  # the 1 s timeout, not the server's 3 s
    assert rec["ivr_path"].endswith("fetch>sorry")


async def test_vip_profile_branches_to_the_vip_queue(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), \
            system(tmp_path, url, profiles={"13900000000": {"vip_level": "2"}}) as (pbx, engine, _):
        res = await call(pbx, ["", "", "1", "5555#", ""], number="13900000000")
        rec = await call_record(engine, res.uniqueid)
    assert rec["queue"] == "vip" and rec["priority"] == 40


async def test_subflow_with_a_profile_lookup_returns_to_the_main_flow(tmp_path: Path) -> None:
    profiles = {"13900000001": {"vip_level": "3"}}
    async with lookup_server() as (url, _), \
            system(tmp_path, url, profiles=profiles) as (pbx, engine, _):
        vip = await call(pbx, ["", "", "4"], number="13900000001")
        plain = await call(pbx, ["", "", "4"], number="13900000002")  # no profile: on_error
        rec_vip = await call_record(engine, vip.uniqueid)
        rec_plain = await call_record(engine, plain.uniqueid)
    assert rec_vip["ivr_path"].endswith("menu>vipsub>vipsub/look>vipsub/done>subq")
    assert (rec_vip["queue"], rec_vip["priority"]) == ("billing", 30)
    assert rec_plain["ivr_path"].endswith("vipsub/look>vipsub/done>subq")
    assert rec_plain["priority"] == 0


async def test_record_stops_on_hash(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["", "", "3", "#"])
        await call_record(engine, res.uniqueid)
        recordings = list(pbx.apps.recordings)
    cmds = commands(res)
    assert any(c.startswith("RECORD FILE recordings/" + res.uniqueid + ' wav "#" 5000 BEEP')
               for c in cmds), cmds
    assert [r.file for r in recordings] == [f"recordings/{res.uniqueid}"]
    assert 'STREAM FILE acd/thanks ""' in cmds


async def test_transfer_leaves_the_call_in_the_dialplan(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (pbx, engine, _):
        res = await call(pbx, ["", "", "2"])
        rec = await call_record(engine, res.uniqueid)
    cmds = commands(res)
    assert cmds[-3:] == ["SET CONTEXT acd-transfer", "SET EXTENSION 95555", "SET PRIORITY 1"]
    assert res.transferred_to == "95555"
    assert rec["outcome"] == "ivr" and rec["ivr_path"].endswith("xfer")


async def test_out_of_hours_goes_to_voicemail(tmp_path: Path) -> None:
    night = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC).timestamp()  # 22:00 Shanghai
    async with lookup_server() as (url, _), \
            system(tmp_path, url, clock_at=night) as (pbx, engine, _):
        res = await call(pbx, [])
        rec = await call_record(engine, res.uniqueid)
    assert rec["ivr_path"] == "hours>closed"
    assert 'EXEC VoiceMail "8000@hotline,s"' in commands(res)


async def test_hangup_in_the_middle_of_each_kind_of_node(tmp_path: Path) -> None:
    # (keys, seconds after which the caller hangs up, the node it is in by then)
    cases = [([""], 0.06, "greet"),                    # during STREAM FILE (2 x 0.05 s)
             (["", "", ""], 0.3, "menu"),              # during GET DATA (1 key)
             (["", "", "1"], 0.4, "acct"),             # during GET DATA (digits)
             # during the HTTP lookup: AGI learns of a hang-up only at its next
             # command, so the walk goes on to the lookup's on_error node
             (["", "", "1", "1234#"], 0.75, "sorry"),
             (["", "", "3"], 0.6, "rec")]              # during RECORD FILE
    async with lookup_server(delay_s=2) as (url, _), system(tmp_path, url) as (pbx, engine, _):
        results = await asyncio.gather(*(call(pbx, k, number=f"1380000000{i}",
                                              hangup_after_s=t)
                                         for i, (k, t, _) in enumerate(cases)))
        recs = [await call_record(engine, r.uniqueid) for r in results]
        await asyncio.sleep(0.1)
        assert engine.agi.active == 0
        assert engine.counters.errors == 0
    for (_, _, node), rec, res in zip(cases, recs, results, strict=True):
        assert rec["outcome"] == "ivr", (node, rec)
        assert rec["ivr_path"].split(">")[-1] == node, (node, rec["ivr_path"])
        assert res.outcome is Outcome.IVR_HANGUP


@pytest.mark.slow  # three calls through the menu, one after the other
async def test_reload_new_calls_take_the_new_version_old_calls_finish(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (pbx, engine, flow_file):
        # a call sits in the menu (long timeout through silence) while the flow changes
        first = await pbx.place_call(CallerScript(keys=["", "", "", "1", "1234#", ""],
                                                  patience_s=5, key_delay_s=0.02))
        await asyncio.sleep(0.15)
        new = FLOW.format(url=url, version="2").replace(
            'options: {"1": acct, "2": xfer, "3": rec, "4": vipsub, "9": vm}',
            'options: {"1": xfer, "2": xfer, "3": rec, "4": vipsub, "9": vm}')
        assert new != FLOW.format(url=url, version="2")
        flow_file.write_text(new)
        result = engine.flows.reload()
        assert result.ok and result.version == "2" and result.changed
        second = await call(pbx, ["", "", "1"])
        # a broken file is refused; the engine keeps version 2
        flow_file.write_text(new.replace("type: transfer", "type: teleport"))
        bad = engine.flows.reload()
        assert not bad.ok and "unknown type 'teleport'" in bad.problems[0]
        assert engine.flow.version == "2"
        third = await call(pbx, ["", "", "1"])
        res1 = await asyncio.wait_for(first.done, 15)
        rec1 = await call_record(engine, res1.uniqueid)
    assert rec1["queue"] == "billing"  # the old version's "1": account, lookup, queue
    assert second.transferred_to == "95555" and third.transferred_to == "95555"


async def test_watch_reloads_on_a_file_change(tmp_path: Path) -> None:
    async with lookup_server() as (url, _), system(tmp_path, url) as (_, engine, flow_file):
        task = asyncio.get_running_loop().create_task(engine.flows.watch(interval_s=0.05))
        try:
            await asyncio.sleep(0.1)
            flow_file.write_text(FLOW.format(url=url, version="3"))
            import os
            os.utime(flow_file, (time.time() + 5, time.time() + 5))
            deadline = time.monotonic() + 3
            while engine.flow.version != "3" and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
    assert engine.flow.version == "3" and engine.flows.loads == 2
