"""The fault suite's harness: real ``acd serve`` processes (killed, stopped,
restarted, one standing by) against the PBX simulator in the test process,
a load of simulated callers, and the checks every fault must pass:

- every call ends in exactly one record, with the outcome the caller lived
  (talked to agent X: answered by X; hung up waiting: abandoned ...);
- no caller was hung up because no engine was there (nobody reached the
  dialplan's last resort, nobody was hung up by the engine or the PBX);
- no agent was offered a call while busy or let one ring out because of
  the fault (every Dial the callers went through was answered or cancelled);
- nothing is left in the database's calls in progress at the end.

A caller who arrives while no engine runs and hangs up before one is back
never reached an engine (FastAGI was refused on every try, or the engine
died during the call's welcome, before it took the call: ``accepted``): no
engine can write a record for that call, Asterisk's CDR has it.  Such
calls are counted apart (``never_reached``), not as lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acd.adapters.storage import Database
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
SECRET = "fault-secret"
QUEUES = ("billing", "tech", "general")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_yaml(*, ami_port: int, agi_port: int, database: str, agents: int,
                ring_timeout_s: float = 8, wrap_up_s: float = 0.05,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An acd.yaml for the fault tests: the simulator's AMI, basic.yaml,
    agents a1001... on phones 1001... in every queue."""
    cfg: dict[str, Any] = {
        "server": "pbx1",
        "ami": {"host": "127.0.0.1", "port": ami_port, "username": "acd", "secret": SECRET,
                "action_timeout_s": 2, "ping_interval_s": 1, "ping_timeout_s": 1},
        "agi": {"host": "127.0.0.1", "port": agi_port},
        "database": database,
        "flow": str(ROOT / "ivr_flows" / "basic.yaml"),
        "queues": [{"name": q, "ring_timeout_s": ring_timeout_s} for q in QUEUES],
        "agents": [{"id": f"a{1001 + i}", "extension": str(1001 + i), "queues": list(QUEUES)}
                   for i in range(agents)],
        "wrap_up_s": wrap_up_s,
        "rona_pause_s": 30,
        "login_agents": True,
        "stop_flush_s": 5,
        "standby": {"poll_s": 0.2},
    }
    cfg.update(extra or {})
    return cfg


class EngineProcess:
    """One ``acd serve`` process; its log goes to ``<dir>/<name>.log``."""

    def __init__(self, directory: Path, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.path = directory / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.log_path = directory / f"{name}.log"
        self.agi_port = int(config["agi"]["port"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "serve", "--config", str(self.path), "-v"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        log.close()
        self.started_at = time.monotonic()

    async def serving(self, timeout: float = 30.0) -> float:
        """Wait until FastAGI accepts connections; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     + self.log())
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.agi_port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            w.close()
            return time.monotonic()
        raise AssertionError(f"{self.name} not serving within {timeout}s:\n" + self.log())

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"{self.name} did not exit within {timeout}s:\n"
                                     + self.log())
            await asyncio.sleep(0.02)
        return int(self.proc.returncode)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        except OSError:
            return ""

    def kill_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Load:
    """Callers: most patient (served whatever happens), some who give up
    waiting; agents' phones answer quickly and talk a while."""

    calls: int = 120
    rate: float = 15.0  # arrivals per second
    agents: int = 12
    talk_s: tuple[float, float] = (1.0, 2.5)
    impatient_share: float = 0.1
    impatient_s: tuple[float, float] = (1.0, 3.0)
    seed: int = 1
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def phones(self) -> dict[str, PhoneBehaviour]:
        lo, hi = self.talk_s
        rng = random.Random(self.seed + 1)
        return {str(1001 + i): PhoneBehaviour(answer_after_s=0.1,
                                              talk_s=lambda: rng.uniform(lo, hi))
                for i in range(self.agents)}

    def script(self, i: int) -> CallerScript:
        keys = [["", "1"], ["", "2"], ["", "0"]][i % 3]
        patience = self.rng.uniform(*self.impatient_s) \
            if self.rng.random() < self.impatient_share else None
        return CallerScript(number=f"1390000{i:04d}", keys=keys, patience_s=patience,
                            key_delay_s=0.02)


def pbx_config(agi_port: int, standby_port: int | None = None, **fields: Any) -> SimConfig:
    cfg = SimConfig(users={"acd": SECRET}, prompt_s=0.05, agi_url=f"agi://127.0.0.1:{agi_port}",
                    **fields)
    if standby_port is not None:
        cfg.agi_standby_url = f"agi://127.0.0.1:{standby_port}"
    return cfg


async def run_load(pbx: SimPBX, load: Load,
                   during: Callable[[], Awaitable[None]], *, fault_after: int,
                   timeout: float = 120.0) -> list[CallResult]:
    """Place ``load.calls`` calls at ``load.rate``/s; after ``fault_after``
    of them, run ``during()`` (the fault) beside the rest of the arrivals;
    returns every call's result once all have ended."""
    handles = []
    fault: asyncio.Task[None] | None = None
    for i in range(load.calls):
        if i == fault_after:
            fault = asyncio.ensure_future(during())
        handles.append(await pbx.place_call(load.script(i)))
        await asyncio.sleep(load.rng.expovariate(load.rate))
    if fault is not None:
        await asyncio.wait_for(fault, timeout)
    _, pending = await asyncio.wait([h.done for h in handles], timeout=timeout)
    assert not pending, f"{len(pending)} calls still going after {timeout}s"
    return [h.done.result() for h in handles]


def queued(res: CallResult) -> bool:
    """An engine put the caller on hold in a queue (or rang an agent for it)."""
    return bool(res.dial_statuses) or any(
        c.upper().startswith("EXEC MUSICONHOLD") for c in res.agi_commands)


def expected(res: CallResult) -> str:
    """The record's outcome for what the caller lived.  A caller who hung up
    on the music of acd-recover before any engine queued them (their IVR
    was cut by the fault) ended in the IVR, not in a queue."""
    if res.outcome is Outcome.ABANDONED_HOLD and not queued(res):
        return "ivr"
    return {Outcome.TALKED: "answered", Outcome.ABANDONED_HOLD: "abandoned",
            Outcome.ABANDONED_RINGING: "abandoned", Outcome.IVR_HANGUP: "ivr"}.get(
                res.outcome, f"<{res.outcome.value}>")


@dataclass
class Verdict:
    calls: int
    records: int
    never_reached: int  # hung up before any engine answered FastAGI (no record possible)
    lost: list[str]
    duplicated: int
    wrong: list[str]
    hung_up_by_absence: list[str]
    rang_busy_or_out: list[str]
    left_in_progress: int
    outcomes: dict[str, int]
    #: an agent recorded on two calls at once
    overlaps: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} records lost: {self.lost[:5]}")
        if self.duplicated:
            out.append(f"{self.duplicated} records duplicated")
        if self.wrong:
            out.append(f"{len(self.wrong)} wrong outcomes: {self.wrong[:5]}")
        if self.hung_up_by_absence:
            out.append(f"{len(self.hung_up_by_absence)} callers hung up by the engine's "
                       f"absence: {self.hung_up_by_absence[:5]}")
        if self.rang_busy_or_out:
            out.append(f"{len(self.rang_busy_or_out)} rings busy or unanswered: "
                       f"{self.rang_busy_or_out[:5]}")
        if self.left_in_progress:
            out.append(f"{self.left_in_progress} rows left in calls_live")
        if self.overlaps:
            out.append(f"agents on two calls at once: {self.overlaps[:5]}")
        return out


#: the commands of a new call's welcome, before the engine takes it as a
#: call: its secret set on the channel and the answer, while the channel is
#: proven over AMI (docs/security.md).  An engine killed then has taken
#: nothing: no row of the call exists anywhere, as for a refused FastAGI.
WELCOME = ("SET VARIABLE ACD_CALL_SECRET", "ANSWER")


def accepted(res: CallResult) -> bool:
    """Did an engine take the call (run any command beyond the welcome)?"""
    return any(not c.upper().startswith(WELCOME) for c in res.agi_commands)


async def verdict(results: list[CallResult], database: str, logs: str = "", *,
                  overlaps: bool = True) -> Verdict:
    """``overlaps``: check that no agent is recorded on two calls at once.
    Not across an engine's death: a call that ended while no engine ran is
    recorded as ending when the next engine learnt of it (docs/continuity.md,
    "What is not covered"), which may be after the agent's next call began."""
    db = Database(database)
    try:
        recs = {r["call_id"]: r for r in await db.calls()}
        left = len(await db.live_calls())
    finally:
        await db.dispose()
    never = [r for r in results if r.uniqueid not in recs and not accepted(r)]
    lost = [f"{r.uniqueid} ({r.outcome.value}, agent {r.agent}, AGI {r.agi_scripts})"
            for r in results if r.uniqueid not in recs and accepted(r)]
    wrong = []
    outcomes: dict[str, int] = {}
    for res in results:
        rec = recs.get(res.uniqueid)
        if rec is None:
            continue
        if not res.agi_commands:
            wrong.append(f"{res.uniqueid}: a record for a call no engine answered")
        outcomes[rec["outcome"]] = outcomes.get(rec["outcome"], 0) + 1
        want = expected(res)
        if rec["outcome"] != want:
            wrong.append(f"{res.uniqueid}: caller {res.outcome.value}, record {rec['outcome']}")
        elif want == "answered" and rec["agent_id"] != f"a{res.agent}":
            wrong.append(f"{res.uniqueid}: talked to {res.agent}, record {rec['agent_id']}")
    absent = [f"{r.uniqueid}: {r.outcome.value} by {r.hangup_by}" for r in results
              if r.outcome not in (Outcome.TALKED, Outcome.ABANDONED_HOLD,
                                   Outcome.ABANDONED_RINGING, Outcome.IVR_HANGUP)
              or r.hangup_by in ("engine", "pbx")]
    rang = [f"{r.uniqueid}: {r.dial_statuses}" for r in results
            if any(s not in ("ANSWER", "CANCEL") for s in r.dial_statuses)]
    duplicated = logs.count("the database refused")
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for rec in recs.values():
        if rec["outcome"] == "answered" and rec["talk_s"] is not None:
            end = rec["ended_at"].timestamp()
            spans.setdefault(rec["agent_id"], []).append((end - rec["talk_s"], end,
                                                          rec["call_id"]))
    overlapping = []
    for agent, iv in (spans.items() if overlaps else ()):
        iv.sort()
        for (_, e1, c1), (s2, _, c2) in itertools.pairwise(iv):
            if s2 < e1 - 0.05:
                overlapping.append(f"{agent}: {c1} and {c2}")
    return Verdict(len(results), len(recs), len(never), lost, duplicated, wrong, absent, rang,
                   left, outcomes, overlapping)


async def stop_all(*procs: EngineProcess) -> None:
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.signal(signal.SIGTERM)
    for p in procs:
        if p.proc is not None:
            try:
                await p.wait()
            finally:
                p.kill_quietly()
