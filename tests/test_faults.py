"""The fault suite: real ``acd serve`` processes against the PBX simulator,
120+ calls each, and a fault in the middle of the load: the engine killed
(SIGKILL) or stopped (SIGTERM) and started again, the leader killed with a
standby running, the AMI link dropped, frozen for 6 s, or dropped right
after a Redirect.  In every case: 0 records lost, 0 duplicated, 0 wrong
outcomes, 0 callers hung up by the engine's absence, 0 rings to a busy
phone or left unanswered (no ring-no-answer pauses), nothing left in
progress; the takeover time is printed (see tests/faults.py)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faults import (
    EngineProcess,
    Load,
    engine_yaml,
    free_port,
    pbx_config,
    run_load,
    stop_all,
    verdict,
)
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from sim.pbx import SimPBX

pytestmark = pytest.mark.slow

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def report(name: str, v: object, takeover_s: float | None = None) -> None:
    extra = f", takeover {takeover_s:.2f} s" if takeover_s is not None else ""
    print(f"\n[fault] {name}: {v}{extra}")


async def _restart_case(tmp_path: Path, sig: int, name: str) -> None:
    load = Load()
    agi_port = free_port()
    database = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    async with SimPBX(pbx_config(agi_port)) as pbx:
        for ext, phone in load.phones().items():
            pbx.add_phone(ext, phone)
        cfg = engine_yaml(ami_port=pbx.ami_port, agi_port=agi_port, database=database,
                          agents=load.agents)
        first = EngineProcess(tmp_path, "first", cfg)
        second = EngineProcess(tmp_path, "second", cfg)
        takeover: list[float] = []
        try:
            first.start()
            await first.serving()

            async def fault() -> None:
                await asyncio.sleep(1.0)
                t0 = time.monotonic()
                first.signal(sig)
                await first.wait()
                second.start()
                takeover.append(await second.serving() - t0)

            results = await run_load(pbx, load, fault, fault_after=load.calls // 3)
        finally:
            await stop_all(first, second)
            first.kill_quietly()
            second.kill_quietly()
    v = await verdict(results, database, first.log() + second.log(), overlaps=False)
    report(name, v, takeover[0] if takeover else None)
    assert v.records + v.never_reached == load.calls
    assert not v.problems(), "\n".join(v.problems()) + "\n" + second.log()[-3000:]
    assert v.outcomes.get("answered", 0) > load.calls // 2


async def test_sigkill_mid_load_then_restart(tmp_path: Path) -> None:
    await _restart_case(tmp_path, signal.SIGKILL, "SIGKILL and restart")


async def test_sigterm_mid_load_then_restart(tmp_path: Path) -> None:
    await _restart_case(tmp_path, signal.SIGTERM, "SIGTERM and restart")


async def test_sigkill_of_the_leader_with_a_standby_running(
        fresh_pg_database: str, tmp_path: Path) -> None:
    load = Load(seed=3)
    leader_port, standby_port = free_port(), free_port()
    async with SimPBX(pbx_config(leader_port, standby_port)) as pbx:
        for ext, phone in load.phones().items():
            pbx.add_phone(ext, phone)
        leader = EngineProcess(tmp_path, "leader", engine_yaml(
            ami_port=pbx.ami_port, agi_port=leader_port, database=fresh_pg_database,
            agents=load.agents))
        standby = EngineProcess(tmp_path, "standby", engine_yaml(
            ami_port=pbx.ami_port, agi_port=standby_port, database=fresh_pg_database,
            agents=load.agents))
        takeover: list[float] = []
        try:
            leader.start()
            await leader.serving()
            standby.start()
            await asyncio.sleep(1.5)  # it waits for the leadership, FastAGI closed
            assert standby.proc is not None and standby.proc.poll() is None
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", standby_port)

            async def fault() -> None:
                await asyncio.sleep(1.0)
                t0 = time.monotonic()
                leader.signal(signal.SIGKILL)
                takeover.append(await standby.serving() - t0)

            results = await run_load(pbx, load, fault, fault_after=load.calls // 3)
        finally:
            await stop_all(standby, leader)
            leader.kill_quietly()
            standby.kill_quietly()
    v = await verdict(results, fresh_pg_database, leader.log() + standby.log(), overlaps=False)
    report("SIGKILL of the leader, standby takes over", v, takeover[0] if takeover else None)
    assert takeover and takeover[0] < 10
    assert not v.problems(), "\n".join(v.problems()) + "\n" + standby.log()[-3000:]


async def _ami_case(tmp_path: Path, name: str, seed: int, fault_name: str) -> None:
    load = Load(seed=seed)
    agi_port = free_port()
    database = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    async with SimPBX(pbx_config(agi_port)) as pbx:
        for ext, phone in load.phones().items():
            pbx.add_phone(ext, phone)
        engine = EngineProcess(tmp_path, "engine", engine_yaml(
            ami_port=pbx.ami_port, agi_port=agi_port, database=database, agents=load.agents))
        try:
            engine.start()
            await engine.serving()

            async def fault() -> None:
                await asyncio.sleep(1.0)
                if fault_name == "drop":
                    await pbx.drop_ami_clients()
                elif fault_name == "freeze":
                    pbx.freeze_ami(True)
                    await asyncio.sleep(6.0)
                    pbx.freeze_ami(False)
                elif fault_name == "redirect":
                    pbx.drop_ami_after("Redirect", times=3)

            results = await run_load(pbx, load, fault, fault_after=load.calls // 3)
        finally:
            await stop_all(engine)
            engine.kill_quietly()
    v = await verdict(results, database, engine.log())
    report(name, v)
    assert not v.problems(), "\n".join(v.problems()) + "\n" + engine.log()[-3000:]


async def test_ami_drop_mid_load(tmp_path: Path) -> None:
    await _ami_case(tmp_path, "AMI drop", 4, "drop")


async def test_ami_frozen_for_6_seconds(tmp_path: Path) -> None:
    await _ami_case(tmp_path, "AMI frozen 6 s", 5, "freeze")


async def test_ami_drop_right_after_a_redirect(tmp_path: Path) -> None:
    await _ami_case(tmp_path, "AMI drop right after Redirects", 6, "redirect")


@pytest.fixture
async def fresh_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own (created, then dropped), shared by
    the engine processes of one test."""
    name = f"acd_fault_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()
