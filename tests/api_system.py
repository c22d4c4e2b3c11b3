"""The engine against the PBX simulator with its control API up, for the API
and CLI tests (``helpers.engine_on_pbx``, as in test_engine_e2e.py).

The API listens on a free port (``api.port=0``) with its token file in the
test's folder; ``System.headers(role)`` gives a request's credentials and
``System.token(role)`` the bare token.  ``public=True`` starts the SMS link's
listener too (``System.public_url``).
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
from acd.api.auth import read_token_file
from acd.api.config import ApiConfig, Role
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
    public_url: str | None = None  # the SMS link's listener, when asked for

    def token(self, role: str = "admin") -> str:
        tokens = self.api.tokens
        assert tokens is not None
        return tokens.by_role[Role[role.upper()]]

    def headers(self, role: str | None = "admin") -> dict[str, str]:
        """The Authorization header of ``role``'s token ({} for None)."""
        return {} if role is None else {"Authorization": f"Bearer {self.token(role)}"}


@asynccontextmanager
async def system(tmp_path: Path, phones: Mapping[str, PhoneBehaviour],
                 skills: Mapping[str, Mapping[str, int]] | None = None, *,
                 ring_timeout_s: float = 5, wrap_up_s: float = 0.05,
                 login_agents: bool = True, sms: Any = None,
                 public: bool = False) -> AsyncIterator[System]:
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
        database_url=url, login_agents=login_agents, sms=sms,
        api=ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens",
                      public_port=0 if public else None),
    )
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        api = engine.api
        assert api.port is not None and api.tokens is not None
        # the engine made the token file, private, and reads it as it is
        assert read_token_file(tmp_path / "acd-api.tokens").by_role == api.tokens.by_role
        yield System(pbx, engine, api, f"http://127.0.0.1:{api.port}", url,
                     f"http://127.0.0.1:{api.public_port}" if public else None)


async def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
