"""The engine against the PBX simulator with its control API up, for the API
and CLI tests (``helpers.engine_on_pbx``, as in test_engine_e2e.py).

The API listens on a free port (``api_port=0``).  Until the engine starts
the API itself (``self.api = ControlApi(self)``), the helper wires one; once
it does, the helper uses the engine's own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import SECRET, db_url, engine_on_pbx

from acd.adapters.ami import AmiConfig
from acd.api.control import ControlApi
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile
from acd.ivr.load import load_flow
from acd.runtime.engine import Engine
from acd.runtime.settings import EngineConfig
from sim.config import PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
QUEUES = tuple(sorted(FLOW.queues))  # billing, general, tech


@dataclass
class System:
    pbx: SimPBX
    engine: Engine
    api: ControlApi
    url: str  # http://127.0.0.1:<port>
    db_url: str


@asynccontextmanager
async def system(tmp_path: Path, phones: Mapping[str, PhoneBehaviour],
                 skills: Mapping[str, Mapping[str, int]] | None = None, *,
                 ring_timeout_s: float = 5, wrap_up_s: float = 0.05,
                 login_agents: bool = True, sms: Any = None) -> AsyncIterator[System]:
    """Agents ``a<ext>`` on phones ``<ext>``; ``skills``: {ext: {skill: level}}
    (default: every queue at level 5)."""
    policy = simple_policy({q: ring_timeout_s for q in QUEUES})
    agents = tuple(
        AgentProfile(f"a{ext}", ext, name=f"Agent {ext}",
                     skills=dict((skills or {}).get(ext) or {q: 5 for q in QUEUES}))
        for ext in phones)
    url = db_url(tmp_path)
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=wrap_up_s, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET),
        database_url=url, login_agents=login_agents, api_port=0, sms=sms,
    )
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        own: ControlApi | None = None
        try:
            api = getattr(engine, "api", None)
            if not isinstance(api, ControlApi) or api.port is None:
                own = api = ControlApi(engine)
                await own.start("127.0.0.1", 0)
            yield System(pbx, engine, api, f"http://127.0.0.1:{api.port}", url)
        finally:
            if own is not None:
                await own.stop()


async def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
