"""Logging levels that mean what users expect (`acd serve`, `acd demo`):
none: warnings and errors; -v the engine's INFO; -vv its DEBUG; -vvv the
libraries' DEBUG too.  The libraries (aiosqlite, SQLAlchemy ...) stay quiet
below -vvv: an idle engine at -v logs nothing of theirs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import SECRET as FAULT_SECRET
from faults import engine_yaml, free_port
from helpers import SECRET, db_url, engine_on_pbx, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.cli.serve import LIBRARIES, NOTICES, OURS, _CliHandler, _setup_logging
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.load import load_flow
from acd.runtime.settings import EngineConfig
from sim.config import SimConfig
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
#: library loggers an engine on SQLite writes to at DEBUG
CHATTY = ("aiosqlite", "sqlalchemy")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The logging state as it was before the test (levels, root handlers)."""
    names = (*OURS, *LIBRARIES, *NOTICES, "sqlalchemy.engine", "acd.runtime.engine")
    levels = {n: logging.getLogger(n).level for n in names}
    root = logging.getLogger()
    root_level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for h in root.handlers:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(root_level)
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def effective(name: str) -> int:
    return logging.getLogger(name).getEffectiveLevel()


@pytest.mark.parametrize("verbose,ours,libraries", [
    (0, logging.WARNING, logging.WARNING),
    (1, logging.INFO, logging.WARNING),
    (2, logging.DEBUG, logging.WARNING),
    (3, logging.DEBUG, logging.DEBUG),
    (5, logging.DEBUG, logging.DEBUG),
])
def test_each_v_raises_the_level_it_says(restore_logging: None, verbose: int, ours: int,
                                         libraries: int) -> None:
    _setup_logging(verbose)
    for name in ("acd", "acd.runtime.engine", "acd.adapters.storage", "sim", "sim.pbx"):
        assert effective(name) == ours, name
    for name in ("aiosqlite", "sqlalchemy.engine.Engine", "sqlalchemy.pool", "asyncio",
                 "panoramisk", "aiomqtt", "aiohttp.access", "asyncpg", "some.other.lib"):
        assert effective(name) == libraries, name
    # whether this engine leads or stands by is said at every level
    assert effective("acd.adapters.leader") == min(ours, logging.INFO)
    # one handler of ours, however often it is set up
    _setup_logging(verbose)
    assert sum(isinstance(h, _CliHandler) for h in logging.getLogger().handlers) == 1


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, prefix: str, below: int = logging.CRITICAL + 1) -> list[logging.LogRecord]:
        return [r for r in self.records if (r.name == prefix or r.name.startswith(prefix + "."))
                and r.levelno < below]


async def idle_engine(tmp_path: Path, verbose: int) -> Collect:
    """What reaches the log handlers from an engine on SQLite and the PBX
    simulator that starts, idles for a second and stops, at ``-v`` x
    ``verbose``."""
    seen = Collect()
    logging.getLogger().addHandler(seen)
    try:
        _setup_logging(verbose)
        cfg = EngineConfig(
            core=CoreConfig(policy=simple_policy({"billing": 5, "tech": 5, "general": 5}),
                            agents=agents_for_queues({"a1001": ("1001", ("billing",))})),
            flow=load_flow(ROOT / "ivr_flows" / "basic.yaml"),
            ami=AmiConfig(username="acd", secret=SECRET), database_url=db_url(tmp_path))
        async with engine_on_pbx(cfg, pbx=pbx_for_engine()):
            await asyncio.sleep(1.0)
    finally:
        logging.getLogger().removeHandler(seen)
    return seen


async def test_an_idle_engine_at_v_logs_its_info_and_nothing_of_the_libraries(
        restore_logging: None, tmp_path: Path) -> None:
    seen = await idle_engine(tmp_path, 1)
    assert any("engine up" in r.getMessage() for r in seen.of("acd", logging.WARNING))
    assert not seen.of("acd", logging.INFO)  # no DEBUG
    for lib in CHATTY:
        assert not seen.of(lib, logging.WARNING), [r.getMessage() for r in seen.of(lib)][:3]


async def test_vv_gives_the_engines_debug_and_still_not_the_libraries(
        restore_logging: None, tmp_path: Path) -> None:
    seen = await idle_engine(tmp_path, 2)
    assert seen.of("acd", logging.INFO)  # DEBUG lines of the engine
    for lib in CHATTY:
        assert not seen.of(lib, logging.WARNING), lib


async def test_vvv_gives_the_libraries_debug_and_says_so(restore_logging: None,
                                                          tmp_path: Path) -> None:
    seen = await idle_engine(tmp_path, 3)
    assert seen.of("aiosqlite", logging.INFO)  # what -v must keep out
    assert any(r.levelno == logging.WARNING and "-vvv: the libraries log at DEBUG too"
               in r.getMessage() for r in seen.of("acd.cli"))


# ------------------------------------------------------- `acd serve` itself


def serve_output(tmp_path: Path, pbx: SimPBX, *options: str) -> str:
    """Standard error of `acd serve OPTIONS` started, idle for 1.5 s, then
    stopped with SIGTERM."""
    import yaml

    agi_port = free_port()
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(yaml.safe_dump(engine_yaml(
        ami_port=pbx.ami_port, agi_port=agi_port, database=db_url(tmp_path), agents=1),
        allow_unicode=True), encoding="utf-8")
    err = tmp_path / "stderr.txt"
    with err.open("wb") as f:
        proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--config",
                                 str(cfg), *options], stdout=f, stderr=f, cwd=tmp_path,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="300"))
    try:
        deadline = time.monotonic() + 20
        while "acd engine serving" not in err.read_text(encoding="utf-8", errors="replace"):
            assert proc.poll() is None, err.read_text(encoding="utf-8", errors="replace")
            assert time.monotonic() < deadline, "not serving within 20 s"
            time.sleep(0.05)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, err.read_text(encoding="utf-8", errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err.read_text(encoding="utf-8", errors="replace")


def lines_at(text: str, level: str, name: str = "") -> list[str]:
    return [line for line in text.splitlines() if f" {level} {name}" in line]


async def run_serve(tmp_path: Path, *options: str) -> str:
    async with SimPBX(SimConfig(users={"acd": FAULT_SECRET}, prompt_s=0.05)) as pbx:
        return await asyncio.to_thread(serve_output, tmp_path, pbx, *options)


async def test_acd_serve_without_v_prints_where_it_listens_and_logs_warnings_only(
        tmp_path: Path) -> None:
    out = await run_serve(tmp_path)
    assert "acd engine serving: FastAGI 127.0.0.1:" in out and "1 agents" in out
    assert "acd engine stopped" in out
    assert [line for line in lines_at(out, "INFO") if " acd.adapters.leader:" not in line] == []
    assert any("leadership 'acd': acquired" in line for line in lines_at(out, "INFO"))
    assert not lines_at(out, "DEBUG")


async def test_acd_serve_v_logs_the_engines_info_and_nothing_of_the_libraries(
        tmp_path: Path) -> None:
    out = await run_serve(tmp_path, "-v")
    assert any("engine up" in line for line in lines_at(out, "INFO", "acd.runtime.engine"))
    assert not lines_at(out, "DEBUG")
    for lib in CHATTY:
        assert not [line for line in out.splitlines() if f" {lib}" in line], lib


async def test_acd_serve_vvv_logs_the_libraries_debug(tmp_path: Path) -> None:
    out = await run_serve(tmp_path, "-vvv")
    assert lines_at(out, "DEBUG", "aiosqlite")
    assert lines_at(out, "DEBUG", "acd.")
    assert any("-vvv: the libraries log at DEBUG too" in line
               for line in lines_at(out, "WARNING", "acd.cli.serve"))
