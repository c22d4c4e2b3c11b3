"""Plain helpers shared by the test files (the shared fixtures are in
conftest.py): the ``acd`` command, free ports, SQLite addresses, the PBX
simulator's configuration for FastAGI tests, Asterisk's reply lines,
polling (a call's record among it), an SMS gateway, and an engine started
against the PBX simulator."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.protocols.agi import AgiError, AgiHangup, AgiResult
from acd.sms.transport import (
    OnInbound,
    OnReceipt,
    OutgoingSms,
    PermanentSmsError,
    TransportError,
)
from sim.config import PhoneBehaviour, SimConfig
from sim.pbx import SimPBX
from sim.testkit import AgiScriptServer

if TYPE_CHECKING:  # imported where used: conftest loads this module for every test
    from click.testing import Result

    from acd.runtime.engine import Engine
    from acd.runtime.settings import EngineConfig

#: the simulator's time scale in the FastAGI tests: one simulated second is
#: 20 ms, so a 5 s prompt plays in 100 ms
SCALE = 0.02
#: the AMI secret of user ``acd`` in the engine tests
SECRET = "test-secret"


def acd(*args: str) -> Result:
    """``acd ARGS`` through click's runner, 200 columns wide so that rich
    wraps neither tables nor problem texts."""
    from click.testing import CliRunner

    from cli import main

    return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def db_url(tmp_path: Path, name: str = "acd.db") -> str:
    """The address of a SQLite database file in ``tmp_path``."""
    return f"sqlite+aiosqlite:///{tmp_path / name}"


def sim_config(agi: AgiScriptServer, scale: float = SCALE, **fields: Any) -> SimConfig:
    """The PBX simulator's configuration for a test's FastAGI server: calls
    go to ``agi``, time runs at ``scale``, prompts last 5 s; ``fields`` set
    any other field."""
    cfg = SimConfig(agi_url=agi.url, time_scale=scale, prompt_s=5.0)
    for key, value in fields.items():
        setattr(cfg, key, value)
    return cfg


def raw(reply: object) -> str:
    """The reply line as Asterisk wrote it."""
    if isinstance(reply, AgiResult):
        return reply.raw
    if isinstance(reply, AgiHangup):
        return "HANGUP"
    if isinstance(reply, AgiError):
        return f"{reply.code} {reply.message}"
    return repr(reply)


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float = 10) -> bool:
    """Ask ``cond`` every 50 ms until it is true (True) or ``timeout``
    seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(0.05)
    return False


async def call_record(engine: Engine, call_id: str, timeout: float = 5) -> dict[str, Any]:
    """The engine's record of the call ``call_id``: its record writer
    drained and the database asked every 20 ms until the record is there;
    AssertionError after ``timeout`` seconds without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await engine.writer.drain()
        rec = await engine.db.call(call_id)
        if rec is not None:
            return rec
        await asyncio.sleep(0.02)
    raise AssertionError(f"no record for {call_id} after {timeout} s")


class SmsGateway:
    """An SMS transport that takes every message (``sent``), or fails on
    demand: all while ``down``, for good for the numbers in ``refuse``."""

    name = "test"

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.sent: list[OutgoingSms] = []

    async def start(self, on_receipt: OnReceipt, on_inbound: OnInbound) -> None:
        pass

    async def send(self, msg: OutgoingSms) -> str:
        if self.down:
            raise TransportError("gateway down")
        if msg.to in self.refuse:
            raise PermanentSmsError("invalid destination")
        self.sent.append(msg)
        return f"m{msg.sms_id}"

    async def close(self) -> None:
        pass


def pbx_for_engine(secret: str = SECRET, **fields: Any) -> SimConfig:
    """The PBX simulator's configuration for an engine test: AMI user
    ``acd`` with ``secret``, 50 ms prompts; ``fields`` set any other field."""
    return SimConfig(users={"acd": secret}, prompt_s=0.05, **fields)


@asynccontextmanager
async def engine_on_pbx(config: EngineConfig, *, pbx: SimConfig | None = None,
                        phones: Mapping[str, PhoneBehaviour] | None = None,
                        **engine_kw: Any) -> AsyncIterator[tuple[SimPBX, Engine]]:
    """The PBX simulator (``pbx``, default :func:`pbx_for_engine`) started
    with ``phones``, and an engine on it: ``config`` with its AMI port set to
    the simulator's and FastAGI on a free port; ``engine_kw`` go to
    :class:`Engine`.  Once the engine has started, the simulator's calls go
    to its FastAGI server.  Both stop at the end, the engine first."""
    from acd.runtime.engine import Engine

    sim = SimPBX(pbx or pbx_for_engine())
    await sim.start()
    try:
        for ext, behaviour in (phones or {}).items():
            sim.add_phone(ext, behaviour)
        engine = Engine(replace(config, agi_port=0, ami=replace(config.ami, port=sim.ami_port)),
                        **engine_kw)
        try:
            await engine.start()
            sim.cfg.agi_url = f"agi://127.0.0.1:{engine.agi.port}"
            yield sim, engine
        finally:
            await engine.stop()
    finally:
        await sim.stop()
