"""The callers' side of a live run: the PBX simulator, the agents' phones
(answering, talking for the planned handle time, noting when they ring) and
the planned callers placed at their scaled times.  It runs in the engine's
process (:class:`PbxSide`) or in a child process (:class:`ChildPbx`, which
drives ``python -m acd.loadsim.pbx_side --pbx`` with line-delimited JSON over
its stdin and stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acd.loadsim.model import Dist, SimError
from acd.loadsim.plan import PlannedCall
from sim.config import CallerScript, PhoneBehaviour, SimConfig
from sim.pbx import SimPBX
from sim.phones import Phone

__all__ = ["SECRET", "ChildPbx", "PbxSetup", "PbxSide"]

ROOT = Path(__file__).resolve().parents[2]

SECRET = "live-secret"
#: simulated seconds between an input prompt's start and the caller's key
KEY_DELAY_S = 0.3


class _ScenarioPhone(PhoneBehaviour):
    """An agent's phone: answers each ring with probability ``1 - rona``,
    talks for the planned handle time of the call it is bridged to, and
    notes when it starts ringing (monotonic ns, per caller channel)."""

    def __init__(self, answer_after_s: float, rona: float, rng: random.Random,
                 rings: list[tuple[str, int]], handle_of: dict[str, float],
                 fallback: Callable[[], float]) -> None:
        self._rona = rona
        self._u = rng.random
        self._rings = rings
        self._handle_of = handle_of
        self._fallback = fallback
        self.phone: Phone | None = None
        super().__init__(answer_after_s=answer_after_s, talk_s=self._talk)

    def _caller_uid(self) -> str | None:
        leg = self.phone.channel if self.phone is not None else None
        owner = leg.owner if leg is not None else None
        return owner.uniqueid if owner is not None else None

    @property
    def answers(self) -> bool:
        """Read by the simulator once per ring: the moment the phone rings."""
        uid = self._caller_uid()
        if uid is not None:
            self._rings.append((uid, time.monotonic_ns()))
        return not (self._rona > 0 and self._u() < self._rona)

    @answers.setter
    def answers(self, value: bool) -> None:
        pass  # drawn per ring

    def _talk(self) -> float:
        uid = self._caller_uid()
        handle = self._handle_of.get(uid) if uid is not None else None
        return handle if handle is not None else self._fallback()


@dataclass(frozen=True, slots=True)
class PbxSetup:
    """What the PBX side needs (JSON-able, for a child process)."""

    extensions: tuple[str, ...]
    speed: float
    prompt_s: float
    ring_delay_s: float
    ring_no_answer: float
    fallback_handle: tuple[str, float, float]  # Dist(kind, mean, sd)
    seed: int
    drain_timeout_s: float


class PbxSide:
    """The callers' side of a live run: the PBX simulator, the agents' phones
    and the planned callers.  Runs in the engine's process or in a child
    (``python -m acd.loadsim.pbx_side --pbx``)."""

    def __init__(self, plan: Sequence[PlannedCall], setup: PbxSetup) -> None:
        self.plan = plan
        self.setup = setup
        self.pbx = SimPBX(SimConfig(users={"acd": SECRET}, time_scale=1.0 / setup.speed,
                                    prompt_s=setup.prompt_s, ami_read="call,system"))
        self.rings: list[tuple[str, int]] = []
        self.handle_of: dict[str, float] = {}
        kind, mean, sd = setup.fallback_handle
        fallback = Dist(kind, mean, sd).sampler(random.Random(f"{setup.seed}:live-handle"))
        rng_rona = random.Random(f"{setup.seed}:rona")
        for ext in setup.extensions:
            beh = _ScenarioPhone(setup.ring_delay_s, setup.ring_no_answer, rng_rona, self.rings,
                                 self.handle_of, fallback)
            beh.phone = self.pbx.add_phone(ext, beh)
        self.handles: list[Any] = []
        self.index_of: dict[str, int] = {}  # caller uniqueid -> plan index
        self.lags: list[float] = []
        self.unfinished: list[str] = []
        self.problems: list[str] = []
        self.first_wall = self.last_wall = 0.0
        self.cpu0 = time.process_time()

    async def start(self) -> int:
        """Start the simulator; its AMI port."""
        await self.pbx.start()
        return self.pbx.ami_port

    def connect(self, agi_port: int) -> None:
        self.pbx.cfg.agi_url = f"agi://127.0.0.1:{agi_port}"

    async def play(self, real0: float,
                   progress: Callable[[int, int, float], None] | None = None) -> None:
        """Place every planned call at its time (``real0``: the loop's time of t = 0)."""
        loop = asyncio.get_running_loop()
        speed = self.setup.speed
        total = len(self.plan)
        self.cpu0 = time.process_time()
        for n, pc in enumerate(self.plan, 1):
            target = real0 + pc.arrival_s / speed
            delay = target - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self.lags.append(max(0.0, now - target))
            h = await self.pbx.place_call(CallerScript(
                number=pc.number, keys=list(pc.keys), patience_s=pc.patience_s,
                key_delay_s=KEY_DELAY_S))
            self.handle_of[h.uniqueid] = pc.handle_s
            self.index_of[h.uniqueid] = pc.index
            self.handles.append(h)
            if n == 1:
                self.first_wall = now
            self.last_wall = now
            if progress is not None and (n % 25 == 0 or n == total):
                progress(n, total, (now - real0) * speed)

    async def drain(self) -> None:
        """Wait for the calls to end; hang up those still running after the
        drain timeout (they are *unfinished*)."""
        pending = {h.done for h in self.handles if not h.done.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self.setup.drain_timeout_s)
        if pending:
            for h in self.handles:
                if not h.done.done():
                    self.unfinished.append(h.uniqueid)
                    h.hangup()
            _, still = await asyncio.wait(pending, timeout=10.0)
            if still:
                self.problems.append(f"{len(still)} calls did not end after being hung up")

    def result(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for h in self.handles:
            if h.done.done():
                name = h.done.result().outcome.value
                outcomes[name] = outcomes.get(name, 0) + 1
        span = self.last_wall - self.first_wall
        return {
            "index_of": self.index_of, "rings": self.rings, "lags": self.lags,
            "unfinished": self.unfinished, "problems": self.problems,
            "outcomes": dict(sorted(outcomes.items())),
            "offered_rate": (len(self.handles) - 1) / span if span > 0 else 0.0,
            "cpu_s": time.process_time() - self.cpu0,
        }

    async def stop(self) -> None:
        await self.pbx.stop()


def _plan_json(plan: Sequence[PlannedCall]) -> list[list[Any]]:
    return [[pc.index, pc.arrival_s, pc.number, [list(a) for a in pc.attributes], pc.queue,
             list(pc.keys), pc.handle_s, pc.patience_s, pc.counted] for pc in plan]


def _plan_from_json(rows: list[list[Any]]) -> list[PlannedCall]:
    return [PlannedCall(int(r[0]), float(r[1]), str(r[2]), tuple((str(k), str(v))
                                                                 for k, v in r[3]),
                        r[4], tuple(r[5]), float(r[6]), r[7], bool(r[8])) for r in rows]


class ChildPbx:
    """The engine's handle on a PBX side in a child process (line-delimited JSON
    over its stdin and stdout)."""

    def __init__(self, plan: Sequence[PlannedCall], setup: PbxSetup) -> None:
        self.plan = plan
        self.setup = setup
        self.proc: asyncio.subprocess.Process | None = None

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise SimError("the PBX simulator process ended early (see its stderr)")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise SimError(f"the PBX simulator process failed: {msg['error']}")
        return msg

    def _write(self, msg: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "acd.loadsim.pbx_side", "--pbx", cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 28)
        self._write({"setup": dataclasses.asdict(self.setup), "plan": _plan_json(self.plan)})
        return int((await self._read())["ami_port"])

    def connect(self, agi_port: int) -> None:
        self._agi_port = agi_port

    async def play(self, real0: float,
                   progress: Callable[[int, int, float], None] | None = None) -> None:
        self._write({"agi_port": self._agi_port, "real0": real0})
        while True:
            msg = await self._read()
            if "placed" in msg:
                if progress is not None:
                    progress(int(msg["placed"]), len(self.plan), float(msg["t"]))
            elif msg.get("played"):
                return

    async def drain(self) -> None:
        self._write({"drain": True})
        self._result = (await self._read())["result"]

    def result(self) -> dict[str, Any]:
        return dict(self._result)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError, RuntimeError):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _pbx_child() -> None:
    """``python -m acd.loadsim.pbx_side --pbx``: the PBX side, driven over stdin/stdout."""
    loop = asyncio.get_running_loop()

    async def read() -> dict[str, Any]:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            raise SystemExit(0)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def send(msg: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    side: PbxSide | None = None
    try:
        first = await read()
        s = first["setup"]
        setup = PbxSetup(tuple(s["extensions"]), s["speed"], s["prompt_s"],
                         s["ring_delay_s"], s["ring_no_answer"], tuple(s["fallback_handle"]),
                         s["seed"], s["drain_timeout_s"])
        side = PbxSide(_plan_from_json(first["plan"]), setup)
        send({"ami_port": await side.start()})
        go = await read()
        side.connect(int(go["agi_port"]))
        await side.play(float(go["real0"]),
                        lambda n, total, t: send({"placed": n, "t": t}))
        send({"played": True})
        await read()  # drain
        await side.drain()
        send({"result": side.result()})
        await read()  # EOF: stop
    except SystemExit:
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the engine's side
        send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if side is not None:
            await side.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--pbx"]:
        from acd.logs import SafeFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeFormatter(logging.BASIC_FORMAT))
        logging.basicConfig(level=logging.ERROR, handlers=[handler])
        asyncio.run(_pbx_child())
    else:
        sys.exit("usage: python -m acd.loadsim.pbx_side --pbx  (the PBX side of a split live run; "
                 "started by acd.loadsim.live.run_live)")
