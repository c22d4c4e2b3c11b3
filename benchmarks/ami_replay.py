"""Engine CPU per call against Asterisk's real AMI event volume.

    .venv/bin/python benchmarks/ami_replay.py [--calls 300] [--rate 10] [--scale 0.25]
        [--mix answered] [--whole-calls 200] [--parts replay,whole]
        [--cases all,classes,eventfilter] [--floor]

Asterisk does not send the lean stream of the PBX simulator: the answered
call recorded in tests/data/asterisk-transcripts/answered.txt (a real
Asterisk 22) is 114 AMI events, 32 of them VarSet.  This benchmark measures
what that volume costs the engine, in three cases:

* ``all``: every event as recorded (``read = all`` and a login asking for
  every class, ``Events: on``): 111 a call (the recording harness's own
  two left out);
* ``classes``: the classes the shipped asterisk_conf/manager.conf asks
  for, ``read = call,system`` (the engine's login asks the same): 47;
* ``eventfilter``: those classes through the shipped ``eventfilter`` lines
  (Asterisk 22.1+; applied as main/manager.c does, by sim/eventfilter.py): 8.

Part ``replay``: a minimal AMI server in a child process replays, for
``--calls`` calls arriving ``--rate`` per second (Poisson), each call's
recorded events (``AMI <<`` blocks of the ``--mix`` transcripts from the
first ``Newchannel``, without the harness's ``OriginateResponse``), with
Uniqueid/Linkedid/channel numbers made new per call, at the recorded
offsets times ``--scale``, one write per event as Asterisk writes them.
The engine runs in this process as ``acd serve`` runs it (the real
``Engine``: AMI client and event handling, FastAGI listening, SQLite), so
the CPU counted (time.process_time(), every thread) is the engine's alone,
from the first event to the answer of a Ping sent after the last.  The idle
engine's CPU over as long a run (Pings, timers) is measured too, and each
figure is also given without it.  The replayed calls are not the engine's
own (it queued none of them), so its work on an event it reads ends at the
look-up of the call: this part is the price of the volume itself.  With
``--floor``, a bare asyncio client that only logs in and reads the same
bytes is timed as well: what receiving them costs any asyncio program.

Part ``whole``: whole calls, AMI and FastAGI, as on a real PBX: the PBX
simulator in a child process (like benchmarks/engine_load.py) with
``full_event_volume`` (Asterisk's Dial, bridge and device events besides
the IVR's; trunk and phones are PJSIP channels, so fewer events than the
Local channels of the recording) in the same three cases, ``--whole-calls``
calls through the basic flow's menu to an agent (talk 2 s) at ``--rate``.
Printed: the engine's CPU per call, of it the main (asyncio) thread's and
the other threads' (aiosqlite's), and the events it received per call.

Every figure is printed beside Asterisk's own CPU per call, 22 ms
(../shared/asterisk-notes.md: a real Asterisk 22 on this kind of machine,
Local caller -> Playback + app_queue + Dial to a Local agent, 300 calls at
10 calls/s), with the ratio; the target is at most a tenth of it (2.2 ms).
The machine's other load moves these figures by 20-30 % from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.protocols.ami import AmiDecoder, AmiMessage, AmiProtocolError, encode_message  # noqa: E402
from sim.eventfilter import FilterSet, parse_filter, read_manager_conf  # noqa: E402

#: Asterisk's CPU per call, ms (../shared/asterisk-notes.md, "Cost reference")
ASTERISK_MS = 22.0
TARGET_MS = ASTERISK_MS / 10
SECRET = "bench-secret"
MANAGER_CONF = ROOT / "asterisk_conf" / "manager.conf"
CASES = ("all", "classes", "eventfilter")
#: what Asterisk is told in manager.conf, per case
LABELS = {"all": "read=all", "classes": "read=call,system",
          "eventfilter": "+eventfilter"}
TRANSCRIPTS = Path(os.environ.get("ACD_TRANSCRIPTS",
                                  ROOT / "tests" / "data" / "asterisk-transcripts"))
#: events of the recording harness, not of a call from a trunk
HARNESS_EVENTS = frozenset({"OriginateResponse", "SuccessfulAuth", "FullyBooted"})
SELF = resource.RUSAGE_SELF


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------- the recordings


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded event: seconds after the call's first, class, name, text."""

    t: float
    event_class: str
    name: str
    text: str


def call_events(scenario: str) -> list[Recorded]:
    """The events Asterisk sent for the call of ``<scenario>.txt``."""
    path = TRANSCRIPTS / f"{scenario}.txt"
    if not path.is_file():
        raise SystemExit(f"{path}: no such recording (set ACD_TRANSCRIPTS to the folder)")
    out: list[Recorded] = []
    t0: float | None = None
    kind, t = "", 0.0
    lines: list[str] = []

    def flush() -> None:
        nonlocal t0
        if kind != "AMI <<" or not lines or not lines[0].startswith("Event: "):
            return
        name = lines[0][len("Event: "):]
        if t0 is None and name != "Newchannel":
            return
        if name in HARNESS_EVENTS:
            return
        if t0 is None:
            t0 = t
        privilege = next((ln.partition(": ")[2] for ln in lines if ln.startswith("Privilege:")),
                         "")
        out.append(Recorded(t - t0, privilege.split(",")[0], name, "\r\n".join(lines)))

    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"--- (.+?) t=(\d+(?:\.\d+)?)", line)
        if m:
            flush()
            kind, t, lines = m.group(1), float(m.group(2)), []
        elif line:
            lines.append(line)
    flush()
    return out


def filters() -> FilterSet:
    """The shipped manager.conf's eventfilter lines of user acd."""
    user = read_manager_conf(MANAGER_CONF, "acd")
    return FilterSet.of(parse_filter(k, v) for k, v in user.eventfilters)


def passes(case: str, ev: Recorded, fs: FilterSet) -> bool:
    """Does Asterisk send ``ev`` to the engine in ``case``?"""
    if case == "all":
        return True
    if ev.event_class not in ("call", "system"):
        return False
    return case == "classes" or fs.should_send(ev.name, ev.text + "\r\n\r\n")


_UID = re.compile(r"\b(\d{9,10})\.(\d+)\b")
_CHAN = re.compile(r"-([0-9a-f]{8})(?=;|\r|$)")


def renumber(text: str, call: int) -> str:
    """The call's own Uniqueids, Linkedids and channel numbers."""
    text = _UID.sub(lambda m: f"1800000000.{call * 16 + int(m.group(2))}", text)
    return _CHAN.sub(lambda m: f"-{call * 16 + int(m.group(1), 16):08x}", text)


def schedule(case: str, calls: int, rate: float, scale: float, mix: list[str],
             seed: int) -> list[tuple[float, bytes]]:
    """(seconds from the start, the event on the wire) of every call, in order."""
    rng = random.Random(seed)
    fs = filters()
    templates = {s: call_events(s) for s in set(mix)}
    out: list[tuple[float, bytes]] = []
    start = 0.0
    for call in range(calls):
        start += rng.expovariate(rate)
        for ev in templates[mix[call % len(mix)]]:
            if passes(case, ev, fs):
                out.append((start + ev.t * scale,
                            (renumber(ev.text, call) + "\r\n\r\n").encode()))
    out.sort(key=lambda item: item[0])
    return out


def volume(mix: list[str]) -> dict[str, tuple[float, float]]:
    """Per case: events and bytes per call of the mix."""
    fs = filters()
    per: dict[str, tuple[float, float]] = {}
    for case in CASES:
        n = b = 0
        for scenario in mix:
            for ev in call_events(scenario):
                if passes(case, ev, fs):
                    n += 1
                    b += len(ev.text) + 4
        per[case] = (n / len(mix), b / len(mix))
    return per


# ------------------------------------------------- child: the replaying AMI


class ReplayServer:
    """Just enough of Asterisk's AMI for the engine to log in, rebuild
    (empty lists) and ping; then the schedule, to the first session."""

    def __init__(self, payloads: list[tuple[float, bytes]], read_system: bool) -> None:
        self.payloads = payloads
        self.read_system = read_system
        self.session: asyncio.StreamWriter | None = None
        self.logged_in = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        decoder = AmiDecoder(expect_banner=False)
        try:
            while data := await reader.read(65536):
                for item in decoder.feed(data):
                    if isinstance(item, AmiMessage) and not self.answer(item, writer):
                        return
        except (ConnectionError, AmiProtocolError):
            return
        finally:
            writer.close()

    def answer(self, msg: AmiMessage, writer: asyncio.StreamWriter) -> bool:
        name = (msg.action or "").lower()
        aid = [("ActionID", msg.action_id)] if msg.action_id is not None else []

        def reply(response: str, *fields: tuple[str, str]) -> None:
            writer.write(encode_message([("Response", response), *aid, *fields]))

        if name == "login":
            reply("Success", ("Message", "Authentication accepted"))
            if self.read_system:
                writer.write(encode_message([("Event", "FullyBooted"),
                                             ("Privilege", "system,all"),
                                             ("Status", "Fully Booted")]))
            if self.session is None:
                self.session = writer
                self.logged_in.set()
        elif name == "logoff":
            reply("Goodbye", ("Message", "Thanks for all the fish."))
            return False
        elif name == "ping":
            reply("Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        elif name in ("coreshowchannels", "devicestatelist"):
            reply("Success", ("EventList", "start"), ("Message", "will follow"))
            done = "CoreShowChannelsComplete" if name == "coreshowchannels" else \
                "DeviceStateListComplete"
            writer.write(encode_message([("Event", done), *aid, ("EventList", "Complete"),
                                         ("ListItems", "0")]))
        elif name == "dbget":
            reply("Error", ("Message", "Database entry not found"))
        else:
            reply("Success", ("Message", "ok"))
        return True

    async def play(self) -> dict[str, Any]:
        writer = self.session
        assert writer is not None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = nbytes = 0
        for at, payload in self.payloads:
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(payload)  # one write per event, as Asterisk's manager.c
            sent += 1
            nbytes += len(payload)
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
        await writer.drain()
        return {"events": sent, "bytes": nbytes, "seconds": round(loop.time() - t0, 3)}


async def child_replay(args: dict[str, Any]) -> None:
    payloads = [] if args["case"] == "idle" else schedule(
        args["case"], args["calls"], args["rate"], args["scale"], args["mix"], args["seed"])
    if args["case"] == "idle":  # as long as a run with events, without any
        last = schedule("eventfilter", args["calls"], args["rate"], args["scale"],
                        args["mix"], args["seed"])[-1][0]
        payloads = []
    server = ReplayServer(payloads, read_system=True)
    srv = await asyncio.start_server(server.serve, "127.0.0.1", args["port"])
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.wait_for(server.logged_in.wait(), 30)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    assert line.strip() == "go", line
    cpu0 = time.process_time()
    if args["case"] == "idle":
        await asyncio.sleep(last)
        result: dict[str, Any] = {"events": 0, "bytes": 0, "seconds": round(last, 3)}
    else:
        result = await server.play()
    result["server_cpu_s"] = round(time.process_time() - cpu0, 3)
    print(json.dumps(result), flush=True)
    # "stop": the engine logs off (its session ends) and this process exits
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    srv.close()
    await srv.wait_closed()


# ------------------------------------------------------ child: whole calls


async def child_sim(args: dict[str, Any]) -> None:
    from sim.config import PhoneBehaviour, SimConfig
    from sim.load import run_load, summarize
    from sim.pbx import SimPBX

    cfg = SimConfig(ami_port=args["port"], agi_url=args["agi_url"], users={"acd": SECRET},
                    prompt_s=0.2, time_scale=args["scale"], full_event_volume=True)
    if args["case"] == "eventfilter":
        cfg.use_manager_conf(MANAGER_CONF)
    elif args["case"] == "classes":
        cfg.ami_read = "call,system"
    pbx = SimPBX(cfg)
    for i in range(args["agents"]):
        pbx.add_phone(str(1001 + i), PhoneBehaviour(answer_after_s=0.5, talk_s=2.0))
    await pbx.start()
    print(json.dumps({"ready": True}), flush=True)
    async with asyncio.timeout(60):
        await pbx.ami.logged_in.wait()
    from sim_process import MIX as mix  # the engine_load benchmark's callers

    sent0, bytes0 = pbx.ami.sent, pbx.ami.sent_bytes
    cpu0 = time.process_time()
    results = await run_load(pbx, args["calls"], args["rate"] / args["scale"], mix, seed=1)
    summary = summarize(results)
    summary["sim_cpu_s"] = round(time.process_time() - cpu0, 3)
    summary["ami_events"] = pbx.ami.sent - sent0
    summary["ami_bytes"] = pbx.ami.sent_bytes - bytes0
    await pbx.stop()
    print(json.dumps(summary), flush=True)


# ------------------------------------------------------------ the engine


def engine_config(ami_port: int, agi_port: int, agents: int, db: str, case: str,
                  url: str | None = None) -> Any:
    """The engine as benchmarks/engine_load.py runs it; in case ``all`` it
    asks for every class at login (``Events: on``), else for call,system."""
    from acd.adapters.ami import AmiConfig
    from acd.core.center import agents_for_queues
    from acd.core.model import CoreConfig
    from acd.core.policy import simple_policy
    from acd.ivr.load import load_flow
    from acd.runtime.settings import EngineConfig

    flow = load_flow(ROOT / "ivr_flows" / "basic.yaml")
    policy = simple_policy({q: 10.0 for q in sorted(flow.queues)})
    return EngineConfig(
        core=CoreConfig(policy=policy, wrap_up_s=0.1, agents=agents_for_queues(
            {f"a{1001 + i}": (str(1001 + i), tuple(policy.queues)) for i in range(agents)})),
        flow=flow, agi_port=agi_port, database_url=url or f"sqlite+aiosqlite:///{db}",
        ami=AmiConfig(port=ami_port, secret=SECRET,
                      events="on" if case == "all" else "call,system"))


async def spawn(mode: str, args: dict[str, Any]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, json.dumps(args),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise SystemExit(f"the {mode} child process did not start")
    return proc


async def run_replay(case: str, opts: argparse.Namespace, db_dir: str) -> dict[str, Any]:
    from acd.runtime.engine import Engine

    port, agi_port = free_port(), free_port()
    proc = await spawn("replay", {"case": case, "port": port, "calls": opts.calls,
                                  "rate": opts.rate, "scale": opts.scale,
                                  "mix": opts.mix_list, "seed": 1})
    assert proc.stdin is not None and proc.stdout is not None
    engine = Engine(engine_config(port, agi_port, 10, f"{db_dir}/replay-{case}.db", case))
    await engine.start()
    cpu0, main0, ru0 = time.process_time(), time.thread_time(), resource.getrusage(SELF)
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    line = await proc.stdout.readline()
    await engine.ami.send("Ping")  # answered after every event before it was read
    cpu, main = time.process_time() - cpu0, time.thread_time() - main0
    ru = resource.getrusage(SELF)
    played = json.loads(line)
    await engine.stop()  # its Logoff ends the session
    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    await proc.wait()
    return {"case": case, "calls": opts.calls, "events": played["events"],
            "bytes": played["bytes"], "seconds": played["seconds"],
            "cpu_s": round(cpu, 4), "main_thread_s": round(main, 4),
            "user_s": round(ru.ru_utime - ru0.ru_utime, 4),
            "system_s": round(ru.ru_stime - ru0.ru_stime, 4),
            "ms_per_call": 1000 * cpu / opts.calls}


class Floor(asyncio.Protocol):
    """What receiving the bytes costs any asyncio program: a client that
    logs in and counts what it reads, nothing else (``--floor``)."""

    def __init__(self) -> None:
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(encode_message([("Action", "Login"), ("ActionID", "1"),
                                        ("Username", "acd"), ("Secret", SECRET)]))

    def data_received(self, data: bytes) -> None:
        self.received += len(data)


async def run_floor(case: str, opts: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    proc = await spawn("replay", {"case": case, "port": port, "calls": opts.calls,
                                  "rate": opts.rate, "scale": opts.scale,
                                  "mix": opts.mix_list, "seed": 1})
    assert proc.stdin is not None and proc.stdout is not None
    transport, floor = await asyncio.get_running_loop().create_connection(
        Floor, "127.0.0.1", port)
    while floor.received == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    start = floor.received
    cpu0 = time.process_time()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    played = json.loads(await proc.stdout.readline())
    async with asyncio.timeout(10):
        while floor.received - start < played["bytes"]:
            await asyncio.sleep(0.001)
    cpu = time.process_time() - cpu0
    transport.close()
    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    await proc.wait()
    return {"case": case, "cpu_s": round(cpu, 4), "ms_per_call": 1000 * cpu / opts.calls}


async def run_whole(case: str, opts: argparse.Namespace, db_dir: str) -> dict[str, Any]:
    from acd.runtime.engine import Engine

    calls = opts.whole_calls
    agents = int(opts.rate * 5) + 5
    port, agi_port = free_port(), free_port()
    proc = await spawn("sim", {"case": case, "port": port,
                               "agi_url": f"agi://127.0.0.1:{agi_port}", "agents": agents,
                               "calls": calls, "rate": opts.rate, "scale": 1.0})
    assert proc.stdout is not None
    engine = Engine(engine_config(port, agi_port, agents, f"{db_dir}/whole-{case}.db", case,
                                  opts.db))
    schema = await own_schema(engine.db) if opts.db else None
    try:
        await engine.start()
        cpu0, main0 = time.process_time(), time.thread_time()
        line = await proc.stdout.readline()
        await proc.wait()
        await engine.writer.drain()
        cpu, main = time.process_time() - cpu0, time.thread_time() - main0
        summary = json.loads(line)
        records = await engine.db.summary()
        await engine.stop()
    finally:
        if schema is not None:
            await drop_schema(opts.db, schema)
    return {"case": case, "calls": calls, "records": records.total,
            "answered": records.answered, "events": summary["ami_events"],
            "bytes": summary["ami_bytes"], "cpu_s": round(cpu, 3),
            "main_thread_s": round(main, 3), "ms_per_call": 1000 * cpu / calls}


async def own_schema(db: Any) -> str:
    """``--db`` (PostgreSQL): the engine's tables in a schema of this run's
    own (made here, dropped by :func:`drop_schema`), as tests/conftest.py does."""
    from sqlalchemy import event, text

    schema = f"acd_bench_{uuid.uuid4().hex[:12]}"

    @event.listens_for(db.engine.sync_engine, "connect")
    def _search_path(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()

    async with db.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return schema


async def drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def ratio(ms: float) -> str:
    """``ms`` beside Asterisk's figure."""
    verdict = "within" if ms <= TARGET_MS else "over"
    share = f"1/{ASTERISK_MS / ms:.0f} of" if 0 < ms < ASTERISK_MS else \
        f"{ms / ASTERISK_MS:.2f}x"
    return f"{ms:6.2f} ms/call = {share} Asterisk's {ASTERISK_MS:g} ms ({verdict} the 1/10 target)"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300, help="replayed calls per case")
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second")
    ap.add_argument("--scale", type=float, default=0.25,
                    help="replay: recorded offsets times this (a call's 13.6 s in 3.4 s)")
    ap.add_argument("--mix", default="answered",
                    help="replay: transcripts, comma-separated, taken in turn "
                         "(e.g. answered,answered,abandon,ivr_only)")
    ap.add_argument("--whole-calls", type=int, default=200, help="whole calls per case")
    ap.add_argument("--parts", default="replay,whole", help="replay, whole or both")
    ap.add_argument("--cases", default=",".join(CASES), help="some of: " + ", ".join(CASES))
    ap.add_argument("--floor", action="store_true",
                    help="replay: also time a bare asyncio client that only reads the bytes")
    ap.add_argument("--db", default=None, metavar="URL",
                    help="whole: a PostgreSQL database (postgresql+asyncpg://...) for the "
                         "engine, in a schema of the run's own (dropped after); default: a "
                         "SQLite file in a temporary folder")
    opts = ap.parse_args()
    if opts.db and not opts.db.startswith("postgresql"):
        ap.error("--db: a postgresql+asyncpg:// URL (SQLite is the default)")
    opts.mix_list = [m.strip() for m in opts.mix.split(",") if m.strip()]
    parts = {p.strip() for p in opts.parts.split(",")}
    cases = [c for c in CASES if c in opts.cases.split(",")]
    print(f"Asterisk's own CPU per call (asterisk-notes.md): {ASTERISK_MS:g} ms; "
          f"target for the engine: at most {TARGET_MS:g} ms")
    with tempfile.TemporaryDirectory() as d:
        if "replay" in parts:
            vol = volume(opts.mix_list)
            print(f"\nreplay of {opts.calls} recorded calls ({opts.mix}) at {opts.rate:g}/s, "
                  f"offsets x{opts.scale:g}; engine = the real Engine, events only")
            idle = await run_replay("idle", opts, d)
            idle_ms = idle["ms_per_call"]
            print(f"  idle engine over as long ({idle['seconds']} s): "
                  f"{idle_ms:.3f} ms per call's share")
            for case in cases:
                row = await run_replay(case, opts, d)
                n, b = vol[case]
                print(f"  {LABELS[case]:17s} {n:5.0f} events {b / 1024:5.1f} KiB per call: "
                      f"{ratio(row['ms_per_call'])}; without idle "
                      f"{row['ms_per_call'] - idle_ms:.3f} ms")
                print("    " + json.dumps(row))
                if opts.floor:
                    floor = await run_floor(case, opts)
                    print(f"    of which reading the bytes alone (a bare asyncio client): "
                          f"{floor['ms_per_call']:.3f} ms/call")
        if "whole" in parts:
            print(f"\nwhole calls: {opts.whole_calls} calls at {opts.rate:g}/s through the "
                  "PBX simulator (full_event_volume) and the real engine")
            for case in cases:
                row = await run_whole(case, opts, d)
                other = row["cpu_s"] - row["main_thread_s"]
                print(f"  {LABELS[case]:17s} {row['events'] / row['calls']:5.0f} events per call: "
                      f"{ratio(row['ms_per_call'])}; main thread "
                      f"{1000 * row['main_thread_s'] / row['calls']:.2f} ms, other threads "
                      f"{1000 * other / row['calls']:.2f} ms")
                print("    " + json.dumps(row))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child = {"replay": child_replay, "sim": child_sim}[sys.argv[2]]
        asyncio.run(child(json.loads(sys.argv[3])))
    else:
        asyncio.run(main())
