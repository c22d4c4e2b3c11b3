"""Prompts through the whole engine and the PBX simulator: a missing menu
prompt is logged by the simulator as Asterisk 22 logs it and by the engine
with the prompt's name and the call (not taken silently as "no key"); a
hang-up is no missing file; a Cantonese caller hears the balance and the
queue position composed from the pack's number prompts, not SAY NUMBER;
the ``say_composed`` setting; the simulator's lines for each way a file is
opened (STREAM FILE, GET DATA, the RECORD FILE beep, Playback)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers import SECRET, db_url, engine_on_pbx, pbx_for_engine, raw, sim_config

from acd.adapters.ami import AmiConfig
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr import prompt_names as names
from acd.ivr.load import load_flow
from acd.logs import Limited
from acd.runtime import ivr_agi
from acd.runtime.engine import Engine
from acd.runtime.settings import ConfigError, EngineConfig, parse_config
from sim.config import CallerScript, CallResult, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX
from sim.testkit import AgiConn, AgiScriptServer

FLOW = """
flow: sayings
languages: [zh, yue, en]
start: menu
nodes:
  menu:
    type: menu
    prompt: acd/main-menu
    timeout: 1
    retries: 1
    options: {"1": cantonese}
    on_fail: q
  cantonese: {type: language, language: yue, next: balance}
  balance: {type: set, vars: {balance: "1234.50"}, next: say}
  say: {type: say, say: money, value: "{balance}", prompt: acd/your-balance-is, next: q}
  q: {type: queue, queue: general}
"""
#: every sound file the flow and the engine may play
ALL_FILES = frozenset({"acd/main-menu", "acd/your-balance-is", *names.ENGINE_PROMPTS,
                       *names.NUMBER_PROMPTS, *names.DATE_TIME_PROMPTS, names.SILENCE,
                       names.BEEP})
#: 1234.50 in Cantonese (as in Mandarin): 一千两百三十四元五角
BALANCE = ("acd/num/1", "acd/num/1000", "acd/num/liang", "acd/num/100", "acd/num/3",
           "acd/num/10", "acd/num/4", "acd/yuan", "acd/num/5", "acd/jiao")
ENGINE_LOG = "acd.runtime.ivr_agi"
SIM_LOG = "sim.agi_client"


@pytest.fixture(autouse=True)
def fresh_play_log(monkeypatch: pytest.MonkeyPatch) -> Limited:
    """A rate limiter of the test's own: another test's lines hold none back."""
    limited = Limited(60.0)
    monkeypatch.setattr(ivr_agi, "play_log", limited)
    return limited


@asynccontextmanager
async def system(tmp_path: Path, *, known_files: frozenset[str] | None = None,
                 agents_log_in: bool = True, announce_every_s: float | None = None,
                 say_composed: tuple[str, ...] = ("zh", "yue", "nan"), flow: str = FLOW,
                 ) -> AsyncIterator[tuple[SimPBX, Engine]]:
    flow_file = tmp_path / "sayings.yaml"
    flow_file.write_text(flow)
    policy = simple_policy({"general": 5})
    policy = dataclasses.replace(policy, queues={"general": dataclasses.replace(
        policy.queues["general"], announce_every_s=announce_every_s)})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents_for_queues({"a1001": ("1001", ("general",))}),
                        wrap_up_s=0.05, rona_pause_s=None),
        flow=load_flow(flow_file), ami=AmiConfig(username="acd", secret=SECRET),
        database_url=db_url(tmp_path), login_agents=agents_log_in, say_composed=say_composed)
    pbx = pbx_for_engine(known_files=known_files, dtmf_gap_s=0.02, dtmf_duration_s=0.02,
                         say_word_s=0.05)
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with engine_on_pbx(cfg, pbx=pbx, phones=phones) as (sim, engine):
        yield sim, engine


async def call(pbx: SimPBX, keys: list[str], *, patience_s: float = 10,
               hangup_after_s: float | None = None) -> CallResult:
    h = await pbx.place_call(CallerScript(keys=keys, patience_s=patience_s, key_delay_s=0.02,
                                          hangup_after_s=hangup_after_s))
    return await asyncio.wait_for(h.done, 15)


async def records(engine: Engine) -> list[dict]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await engine.writer.drain()
        rows = await engine.db.calls()
        if rows:
            return rows
        await asyncio.sleep(0.02)
    return []


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == logger and r.levelno == logging.WARNING]


async def test_a_missing_menu_prompt_is_logged_by_the_pbx_and_the_engine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_play_log: Limited) -> None:
    caplog.set_level(logging.INFO)
    async with system(tmp_path, known_files=ALL_FILES - {"acd/main-menu"}) as (pbx, engine):
        res = await call(pbx, ["1"])
        rows = await records(engine)
        during = [m for m in lines(caplog, ENGINE_LOG) if "acd/main-menu" in m]
    # Asterisk 22's main/file.c lines (GET DATA goes through ast_streamfile), once a try
    sim = lines(caplog, SIM_LOG)
    assert sim.count("File acd/main-menu does not exist in any format") == 2
    assert sim.count("Unable to open acd/main-menu (format (ulaw)): "
                     "No such file or directory") == 2
    # the engine: the prompt and the call named, once a minute per prompt (the
    # second try held back, then reported when the engine stops)
    assert len(during) == 1, during
    assert during[0].startswith(f"call {res.uniqueid}: GET DATA acd/main-menu did not play")
    assert "no such sound file" in during[0] and "taken as no input" in during[0]
    assert fresh_play_log.total == {"GET DATA acd/main-menu": 2}
    assert [m for m in lines(caplog, ENGINE_LOG) if "acd/main-menu" in m] == during * 2
    # the caller could not choose: two tries, then on_fail; still one record
    assert sum(c.startswith("GET DATA acd/main-menu") for c in res.agi_commands) == 2
    assert len(rows) == 1 and rows[0]["call_id"] == res.uniqueid
    assert rows[0]["queue"] == "general" and rows[0]["outcome"] == "answered"
    assert rows[0]["ivr_path"].split(">") == ["menu", "q"]
    assert not [p for p in pbx.apps.played if p.name == "acd/main-menu"]


async def test_a_missing_play_prompt_is_logged_by_the_engine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_play_log: Limited) -> None:
    """A ``play`` node's file missing on the PBX: STREAM FILE answers -1, the
    channel is still there; the engine names the prompt and the call, and
    the flow goes on to the next node."""
    caplog.set_level(logging.INFO)
    greeting = FLOW.replace("start: menu", "start: hello").replace(
        "nodes:\n", "nodes:\n  hello: {type: play, prompt: acd/hello, next: menu}\n")
    async with system(tmp_path, known_files=ALL_FILES, flow=greeting) as (pbx, engine):
        res = await call(pbx, ["1"])
        rows = await records(engine)
    sim = lines(caplog, SIM_LOG)
    assert "File acd/hello does not exist in any format" in sim
    during = [m for m in lines(caplog, ENGINE_LOG) if "acd/hello" in m]
    assert len(during) == 1, during
    assert during[0].startswith(f"call {res.uniqueid}: STREAM FILE acd/hello did not play: "
                                "no such sound file on the Asterisk server")
    assert fresh_play_log.total == {"STREAM FILE acd/hello": 1}
    assert 'STREAM FILE acd/hello ""' in res.agi_commands
    # skipped, not taken for a hang-up: the menu next, the caller's key, the queue
    assert not [p for p in pbx.apps.played if p.name == "acd/hello"]
    assert any(p.name == "acd/main-menu" for p in pbx.apps.played)
    assert len(rows) == 1 and rows[0]["call_id"] == res.uniqueid
    assert rows[0]["ivr_path"].split(">")[:2] == ["hello", "menu"]
    assert rows[0]["outcome"] == "answered"


async def test_a_hang_up_in_the_menu_is_no_missing_prompt(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with system(tmp_path) as (pbx, engine):
        res = await call(pbx, [""], hangup_after_s=0.5)  # while GET DATA waits for a key
        rows = await records(engine)
    assert any(c.startswith("GET DATA acd/main-menu") for c in res.agi_commands)
    assert not [m for m in lines(caplog, ENGINE_LOG) if "did not play" in m]
    assert not lines(caplog, SIM_LOG)
    assert len(rows) == 1 and rows[0]["outcome"] == "ivr"


async def test_a_cantonese_caller_hears_composed_prompts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # nobody serves the queue: the caller waits, hears their position, gives up
    async with system(tmp_path, agents_log_in=False, announce_every_s=1.0) as (pbx, engine):
        res = await call(pbx, ["1"], patience_s=2.5)
        rows = await records(engine)
        played = [p for p in pbx.apps.played if p.uniqueid == res.uniqueid]
    heard = [p.name for p in played]
    i = heard.index("acd/your-balance-is")
    assert tuple(heard[i + 1:i + 1 + len(BALANCE)]) == BALANCE
    assert {p.language for p in played[i:]} == {"yue"}  # after SET CHANNEL(language)
    assert all(p.by == "STREAM FILE" for p in played[i:])
    # the hold announcement: "you are caller number" 一 (no agent: no wait promised)
    j = heard.index(names.YOU_ARE_CALLER)
    assert heard[j + 1] == "acd/num/1"
    assert not [c for c in res.agi_commands if c.startswith("SAY ")]
    assert 'SET VARIABLE CHANNEL(language) "yue"' in res.agi_commands
    assert len(rows) == 1 and rows[0]["outcome"] == "abandoned"
    assert not [m for m in lines(caplog, ENGINE_LOG) if "did not play" in m]


async def test_the_flow_speaks_its_default_language_from_the_first_prompt(
        tmp_path: Path) -> None:
    """A channel comes in as Asterisk's default ``en``; the flow's first
    language is zh: the channel is set to zh before the menu, so the menu
    is looked up in sounds/zh/ (not the English recording in sounds/en/)."""
    async with system(tmp_path, agents_log_in=False) as (pbx, _):
        res = await call(pbx, [], patience_s=1.0)
        played = [p for p in pbx.apps.played if p.uniqueid == res.uniqueid]
    assert played and played[0].name == "acd/main-menu"
    assert played[0].language == "zh"
    first_play = next(i for i, c in enumerate(res.agi_commands) if c.startswith("GET DATA"))
    assert 'SET VARIABLE CHANNEL(language) "zh"' in res.agi_commands[:first_play]


async def test_languages_not_composed_keep_asterisks_say_commands(tmp_path: Path) -> None:
    async with system(tmp_path, agents_log_in=False, announce_every_s=1.0,
                      say_composed=()) as (pbx, _):
        res = await call(pbx, ["1"], patience_s=2.5)
    said = [c for c in res.agi_commands if c.startswith("SAY ")]
    assert said[:2] == ["SAY NUMBER 1234 \"\"", "SAY NUMBER 50 \"\""]
    assert "SAY NUMBER 1 \"\"" in said  # the position
    assert not [c for c in res.agi_commands if c.startswith("STREAM FILE acd/num/")]


async def test_money_in_arrears_is_said_with_its_minus(tmp_path: Path) -> None:
    """-3.20 is "minus three yuan twenty fen", not a credit of 3.20: in
    English (Asterisk's SAY) and composed (负)."""
    owing = FLOW.replace('"1234.50"', '"-3.20"')
    async with system(tmp_path, agents_log_in=False, say_composed=(), flow=owing) as (pbx, _):
        res = await call(pbx, ["1"], patience_s=1.5)
    i = res.agi_commands.index('STREAM FILE acd/your-balance-is ""')
    assert res.agi_commands[i + 1:i + 5] == [
        'STREAM FILE digits/minus ""', 'SAY NUMBER 3 ""', 'STREAM FILE acd/yuan ""',
        'SAY NUMBER 20 ""']
    async with system(tmp_path, agents_log_in=False, flow=owing) as (pbx, _):
        res = await call(pbx, ["1"], patience_s=1.5)
        heard = [p.name for p in pbx.apps.played if p.uniqueid == res.uniqueid]
    i = heard.index("acd/your-balance-is")
    assert heard[i + 1:i + 6] == ["acd/num/minus", "acd/num/3", "acd/yuan", "acd/num/liang",
                                  "acd/jiao"]


# ------------------------------------------------------------------ setting

BASE = {"flow": "sayings.yaml", "queues": [{"name": "general"}],
        "agents": [{"id": "a1", "extension": "1001", "queues": ["general"]}]}


def test_say_composed_setting(tmp_path: Path) -> None:
    (tmp_path / "sayings.yaml").write_text(FLOW)
    assert parse_config(BASE, base=tmp_path).say_composed == ("zh", "yue", "nan")
    cfg = parse_config({**BASE, "say_composed": ["yue"]}, base=tmp_path)
    assert cfg.say_composed == ("yue",)
    assert parse_config({**BASE, "say_composed": []}, base=tmp_path).say_composed == ()
    with pytest.raises(ConfigError, match=r"say_composed\[1\]: no number grammar for "
                                          r"language 'en'"):
        parse_config({**BASE, "say_composed": ["zh", "en"]}, base=tmp_path)
    with pytest.raises(ConfigError, match="say_composed: must be a list"):
        parse_config({**BASE, "say_composed": "zh"}, base=tmp_path)


# ------------------------------------------------- the simulator on its own


@pytest.fixture
def pbx_config(agi: AgiScriptServer) -> SimConfig:
    """conftest's, with one sound file only: ``acd/here``."""
    return sim_config(agi, known_files=frozenset({"acd/here"}))


async def test_the_simulator_logs_missing_files_as_asterisk_does(
        agi: AgiScriptServer, pbx: SimPBX, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    replies: list[str] = []

    async def hotline(conn: AgiConn) -> None:
        for cmd in ('SET VARIABLE CHANNEL(language) "nan"', 'STREAM FILE acd/gone ""',
                    'STREAM FILE acd/here ""', "GET DATA acd/lost 100 1",
                    'RECORD FILE /tmp/x wav "#" 1000 BEEP', 'EXEC Playback "acd/here&acd/away"'):
            mark = len(caplog.records)
            replies.append(raw(await conn.command(cmd)))
            replies.append(" | ".join(r.getMessage() for r in caplog.records[mark:]
                                      if r.levelno == logging.WARNING))

    agi.scripts["hotline"] = hotline
    call = await pbx.place_call(CallerScript())
    res = await call.done
    assert not agi.errors
    assert replies == [
        "200 result=1", "",
        # handle_streamfile opens the file with ast_openstream: one line
        "200 result=-1 endpos=0", "File acd/gone does not exist in any format",
        "200 result=0 endpos=40000", "",
        # ast_app_getdata_full -> ast_streamfile: its own line too
        "200 result=-1", "File acd/lost does not exist in any format | Unable to open "
        "acd/lost (format (ulaw)): No such file or directory",
        "200 result=-1 (randomerror) endpos=0", "File beep does not exist in any format | "
        "Unable to open beep (format (ulaw)): No such file or directory",
        # app_playback.c: on to the next file after "Playback failed"
        "200 result=0", "File acd/away does not exist in any format | Unable to open acd/away "
        "(format (ulaw)): No such file or directory | Playback failed on "
        f"{res.channel} for acd/here&acd/away",
    ]
    # what played, in the channel's language (a function write: no VarSet)
    assert [(p.name, p.language, p.by) for p in pbx.apps.played] == [
        ("acd/here", "nan", "STREAM FILE"), ("acd/here", "nan", "Playback")]
