"""Load generator, 300+ concurrent calls, clean shutdown and ``python -m sim``."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from helpers import free_port

from acd.protocols.agi import AgiResult
from sim import (
    CallerScript,
    CallerScriptMix,
    Outcome,
    PhoneBehaviour,
    SimConfig,
    SimPBX,
    run_load,
    summarize,
)
from sim.__main__ import parse_extensions
from sim.testkit import AgiConn, AgiScriptServer, AmiProbe

ROOT = Path(__file__).resolve().parents[1]


async def test_300_concurrent_calls() -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command('STREAM FILE hello-world "12"')
        await conn.command("GET DATA vm-enter-num-to-call 2000 1")
        await conn.command('EXEC MusicOnHold "default,60"')  # 3 s real: all 320 coexist
        await conn.command("HANGUP")  # as the engine ends a call (else: acd-recover)

    async with AgiScriptServer(scripts={"hotline": hotline}) as agi:
        async with SimPBX(SimConfig(agi_url=agi.url, time_scale=0.05)) as pbx:
            ami = await AmiProbe.connect(pbx.ami_port)
            await ami.login()
            cpu0 = time.process_time()
            calls = [await pbx.place_call(CallerScript(keys=["1", "2"], patience_s=None))
                     for _ in range(320)]
            await agi.wait_connections(320, wait_s=10)
            assert len(pbx.channels) == 320
            assert pbx.task_count == 320  # one task per channel, no more
            results = await asyncio.gather(*(c.done for c in calls))
            cpu = time.process_time() - cpu0
            await ami.drain(0.1)
            await ami.close()
    assert {r.outcome for r in results} == {Outcome.ENGINE_HANGUP}
    assert len({r.uniqueid for r in results}) == 320
    assert cpu < 320 * 0.02  # well under Asterisk's own ~22 ms per call
    assert not agi.errors


async def test_run_load_mix_is_seeded_and_complete() -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        await conn.command("GET DATA vm-enter-num-to-call 2000 1")
        await conn.command('EXEC MusicOnHold "default,10"')

    rng_a, rng_b = random.Random(7), random.Random(7)
    mix = CallerScriptMix(patience_s=(2.0, 20.0), ivr_hangup_p=0.3)
    assert [mix.draw(rng_a, i) for i in range(20)] == [mix.draw(rng_b, i) for i in range(20)]

    async with AgiScriptServer(scripts={"hotline": hotline}) as agi:
        async with SimPBX(SimConfig(agi_url=agi.url, time_scale=0.01)) as pbx:
            results = await run_load(pbx, 40, rate_per_s=20.0, mix=mix, seed=3)
    assert len(results) == 40
    summary = summarize(results)
    assert summary["calls"] == 40
    assert sum(summary["outcomes"].values()) == 40
    assert set(summary["outcomes"]) <= {o.value for o in Outcome}
    assert summary["outcomes"].get("abandoned_hold", 0) > 0
    json.dumps(summary, ensure_ascii=False)


async def test_stop_cancels_every_task_and_settles_calls() -> None:
    async def hotline(conn: AgiConn) -> None:
        await conn.command("ANSWER")
        while True:
            reply = await conn.command('EXEC MusicOnHold "default"', wait_s=60)
            if not isinstance(reply, AgiResult) or reply.result < 0:
                return

    async with AgiScriptServer(scripts={"hotline": hotline}) as agi:
        pbx = SimPBX(SimConfig(agi_url=agi.url, time_scale=0.01))
        await pbx.start()
        pbx.add_phone("1001", PhoneBehaviour(answers=False))
        ami = await AmiProbe.connect(pbx.ami_port)
        await ami.login()
        calls = [await pbx.place_call(CallerScript(patience_s=None)) for _ in range(5)]
        await agi.wait_connections(5)
        aid = ami.send("Originate", {"Channel": "PJSIP/1001", "Context": "x", "Exten": "s"})
        await asyncio.sleep(0.05)
        await pbx.stop()
        results = [await c.done for c in calls]
        assert {r.outcome for r in results} == {Outcome.STOPPED}
        assert pbx.task_count == 0
        assert len(pbx.channels) == 0
        await ami.wait_closed()
        assert ami.messages[-1].action_id == aid  # the pending sync Originate was answered
        await ami.close()
    own = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not own] == []


def test_parse_extensions() -> None:
    assert parse_extensions("1001-1003,1010") == ["1001", "1002", "1003", "1010"]
    assert parse_extensions("0801-0802") == ["0801", "0802"]


def test_python_dash_m_sim_runs_a_load() -> None:
    closed_port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "sim", "--ami-port", "0", "--agi-url",
         f"agi://127.0.0.1:{closed_port}", "--agents", "1001-1002", "--calls", "5",
         "--rate", "50", "--time-scale", "0.01", "--wait-login-s", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["calls"] == 5
    # no engine: every AGI fails, the callers go round acd-recover, then leave a
    # voicemail (and Hangup()) unless they give up while the music plays
    assert sum(summary["outcomes"].values()) == 5
    assert set(summary["outcomes"]) <= {"engine_hangup", "abandoned_hold"}
