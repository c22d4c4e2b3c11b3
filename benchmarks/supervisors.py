"""What the supervisors' tools (issue 15) cost the engine: statistics reads,
the wallboard snapshot, a /metrics scrape, the queue_log and the decision
listeners.

    .venv/bin/python benchmarks/supervisors.py [--days 8,60] [--per-cell 2]
        [--agents 50,500] [--calls 20000] [--decisions 200000] [--repeats 5]
        [--zone Asia/Shanghai] [--seed 1] [--parts stats,board,queue_log,listeners]

Every figure is the median of ``--repeats`` runs (a fast one is run in a
loop of at least 20 ms per run), but the statistics' feed, their first
``intervals()`` and the first prune to 8 days: one run each.  Times are
this process's CPU time (``time.process_time``), not wall time, so the
machine's other load moves them less; on a busy machine still by 20-30 %.  Pure Python
unless the core was compiled (printed first).  About 20 s with the
defaults.

Part ``stats``: :class:`acd.core.stats.Statistics` as the engine builds it
(15-minute intervals in ``--zone``, via ``acd.reports.calls.zone_offset``;
classes ``standard`` 80/20 and ``vip`` 90/10), fed ``--days`` local days
up to "now" (17:00 of the last day) of synthetic, seeded actions: each
interval ``--per-cell`` calls per (queue, class) for 3 queues x 2 classes
(85 % answered, 10 % abandoned, 5 % fallback; waits exponential, mean 12 s;
talk log-normal, about 3 min), answered by 50 agents logged in around the
clock whose ``AgentStateChanged`` follow each call (reserved, on call, wrap
up, 10 % a pause after it).  The statistics keep aggregates per
(interval, queue, class) and (interval, agent), never calls, so the reads
depend on the days kept, not on the calls a day.  Timed: the feed (per
action); "today" as the wallboard reads it (``day_start(now)`` then
``totals(q, since=...)`` for every queue); ``queue_classes(since=today)``;
``intervals(since=today)`` (what /metrics reads); a full ``intervals()``
(its first call fills the interval-start cache, timed apart); and
``prune`` as the engine's daily pass does it (``keep_days`` = the days
fed, a day later each run: it drops the oldest day), its hourly pass that
drops nothing, and, with more than 8 days, one first pass down to the
default 8 days (the first pass after a start with ``keep_days`` lowered).

Part ``board``: :meth:`acd.api.wallboard.Wallboard.snapshot` (and its SSE
frame: the JSON) and a ``/metrics`` scrape (``generate_latest`` of
:class:`acd.api.metrics.Metrics`' registry) over an engine-like object: a
real :class:`~acd.core.center.ContactCenter` of 4 queues and ``--agents``
agents (1-2 skills each) driven into a busy moment -- half the agents on
a call, some ringing, wrapping up and paused, a tenth as many calls
waiting -- and statistics of the default 8 days kept (call records only:
the board and the scrape read no agent figures) at the same rate per
(queue, class).  Nothing else of the engine is built: no PBX, no HTTP.

Part ``queue_log``: ``--calls`` calls through the real core (2 queues, 20
agents serving both), each CallStarted, CallQueued (ENTERQUEUE; the offer:
CONNECT on the answer), OfferAnswered, ConversationEnded (COMPLETECALLER or
COMPLETEAGENT, alternately) and the wrap-up's TimerFired.  These events,
recorded once, are fed again to a fresh core for each run (the core is
deterministic: it decides the same), three ways, interleaved: the core
alone (``handle``); with the translator following each decision
(:meth:`acd.reports.queue_log.QueueLogTranslator.follow` over the
runtime's ``CoreQueueLogView``); and with ``line()`` of each entry too
(what the file appender writes).  Per call: the core's time and what the
translator adds (3 lines a call: ENTERQUEUE, CONNECT, COMPLETE*).

Part ``listeners``: ``--decisions`` calls of :meth:`Metrics.on_decision`
(the latency histogram's observe; ``started_ns`` read just before, so the
latency falls in the low buckets as in the engine) and of the wallboard's
``on_decision`` (with a stream open), less the same loop calling a
listener that does nothing: ns per decision that each adds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics as pystats
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import generate_latest

from acd.api.metrics import Metrics
from acd.api.protocol import ControlledEngine
from acd.api.wallboard import Wallboard
from acd.compiled import describe
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    Action,
    AgentLogin,
    AgentPause,
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallRecord,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    OfferAnswered,
    Outcome,
    StartTimer,
    TimerFired,
    WriteCallRecord,
)
from acd.core.policy import (
    ClassRule,
    CustomerClass,
    Policy,
    Preferences,
    QueuePolicy,
    Requirements,
    Test,
    When,
    simple_policy,
)
from acd.core.profiles import AgentProfile
from acd.core.stats import DAY_S, ServiceLevel, Statistics
from acd.reports.calls import zone_offset
from acd.reports.queue_log import QueueLogTranslator
from acd.runtime.queue_log_wiring import CoreQueueLogView

CLASSES = {"standard": ServiceLevel(20.0, 0.8), "vip": ServiceLevel(10.0, 0.9)}
KEEP_DAYS = 8  # statistics.keep_days' default
INTERVAL_S = 900.0
#: the clock of every figure: this process's CPU time (another process's
#: load moves it far less than wall time)
CPU = time.process_time


# ------------------------------------------------------------------ timing


def median_s(fn: Callable[[], object], repeats: int, min_run_s: float = 0.02) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs, each a loop
    of at least ``min_run_s`` (one warm-up call first)."""
    t0 = CPU()
    fn()
    once = CPU() - t0
    inner = max(1, int(min_run_s / once)) if once > 0 else 1000
    runs = []
    for _ in range(repeats):
        t0 = CPU()
        for _ in range(inner):
            fn()
        runs.append((CPU() - t0) / inner)
    return pystats.median(runs)


def fmt(seconds: float) -> str:
    """A duration with a unit that suits it."""
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e9:.0f} ns"


def table(title: str, head: Sequence[str], rows: Sequence[Sequence[str]],
          right: tuple[int, ...] = (-2,)) -> None:
    """Columns left-aligned but ``right`` (indexes; the figures)."""
    n = len(head)
    rights = {i % n for i in right}
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(n)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in rights else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(f"\n{title}")
    top = line(head)
    print(top)
    print("-" * max(len(top), *(len(line(r)) for r in rows)))
    for r in rows:
        print(line(r))


# ------------------------------------------------------- synthetic figures


def synthetic(start: float, now: float, queues: Sequence[str], agents: Sequence[str],
              per_cell: int, rng: random.Random) -> list[Action]:
    """Call records and agent state changes from ``start`` to ``now``, in
    the order the engine would feed them (by time; at equal times records
    first).  ``agents`` empty: records only (the calls' agents unnamed)."""
    items: list[tuple[float, int, int, Action]] = []
    seq = 0

    def put(t: float, kind: int, action: Action) -> None:
        nonlocal seq
        if t <= now:
            seq += 1
            items.append((t, kind, seq, action))

    free_at = dict.fromkeys(agents, start)
    for a in agents:
        put(start, 1, AgentStateChanged(a, AgentState.LOGGED_OUT, AgentState.READY, start))
    turn = 0
    n = 0
    t_int = start
    while t_int < now:
        for q in queues:
            for c in CLASSES:
                for _ in range(per_cell):
                    n += 1
                    queued = t_int + rng.uniform(0, INTERVAL_S)
                    started = queued - rng.uniform(5, 40)
                    wait = min(rng.expovariate(1 / 12), 600.0)
                    r = rng.random()
                    agent: str | None = None
                    ring = rng.uniform(2, 8)
                    answer = queued + wait
                    reserve = max(queued, answer - ring)  # the agent's phone rings
                    if r < 0.85 and agents:
                        for i in range(len(agents)):  # the next free agent, in turn
                            cand = agents[(turn + i) % len(agents)]
                            if free_at[cand] <= reserve:
                                agent, turn = cand, turn + i + 1
                                break
                    if r < 0.85 and (agent is not None or not agents):
                        talk = rng.lognormvariate(5.0, 0.5)
                        ended = answer + talk
                        rec = CallRecord(f"c{n}", f"139{n:08d}", "", started, ended,
                                         Outcome.ANSWERED, (), q, queued, wait, agent,
                                         answer, talk, 1, "pbx1", c)
                        if agent is not None:
                            wrap = rng.uniform(5, 30)
                            steps = [(reserve, AgentState.READY, AgentState.RESERVED),
                                     (answer, AgentState.RESERVED, AgentState.ON_CALL),
                                     (ended, AgentState.ON_CALL, AgentState.WRAP_UP)]
                            back = ended + wrap
                            if rng.random() < 0.1:
                                steps.append((back, AgentState.WRAP_UP, AgentState.PAUSED))
                                steps.append((back + rng.uniform(60, 600), AgentState.PAUSED,
                                              AgentState.READY))
                            else:
                                steps.append((back, AgentState.WRAP_UP, AgentState.READY))
                            for at, old, new in steps:
                                put(at, 1, AgentStateChanged(agent, old, new, at))
                            free_at[agent] = steps[-1][0]
                    else:
                        ended = queued + wait
                        outcome = Outcome.FALLBACK if r >= 0.95 else Outcome.ABANDONED
                        rec = CallRecord(f"c{n}", f"139{n:08d}", "", started, ended, outcome,
                                         (), q, queued, wait, None, None, None, 0, "pbx1", c)
                    put(rec.ended_at, 0, WriteCallRecord(rec))
        t_int += INTERVAL_S
    items.sort(key=lambda x: (x[0], x[1], x[2]))
    return [a for _t, _k, _s, a in items]


def local_day(zone: ZoneInfo, days_back: int) -> tuple[float, float]:
    """(start of the local day ``days_back`` days before the day "now" is
    in, now): now is 17:00 local on a fixed day (the figures do not depend
    on the date)."""
    now_local = dt.datetime(2026, 9, 30, 17, 0, tzinfo=zone)
    first = (now_local - dt.timedelta(days=days_back)).replace(hour=0)
    return first.timestamp(), now_local.timestamp()


def new_statistics(zone: ZoneInfo) -> Statistics:
    return Statistics(CLASSES, interval_s=INTERVAL_S, utc_offset=zone_offset(zone))


# ------------------------------------------------------------ part: stats


def stats_rows(days: int, args: argparse.Namespace, zone: ZoneInfo) -> list[list[str]]:
    queues = ["billing", "tech", "general"]
    agents = [f"a{i:02d}" for i in range(50)]
    repeats: int = args.repeats
    rng = random.Random(args.seed)
    start, now = local_day(zone, days - 1)
    actions = synthetic(start, now, queues, agents, args.per_cell, rng)
    st = new_statistics(zone)
    on = st.on_action
    gc.collect()
    t0 = CPU()
    for a in actions:
        on(a, 0.0)
    feed = CPU() - t0
    n_rec = sum(1 for a in actions if isinstance(a, WriteCallRecord))
    label = f"{days} days"
    rows = [[label, "feed: per action", fmt(feed / len(actions)),
             f"{n_rec:,} records + {len(actions) - n_rec:,} state changes in {feed:.2f} s"]]
    del actions

    t0 = CPU()
    n_rows = len(st.intervals())
    rows.append([label, "intervals(), first call", fmt(CPU() - t0),
                 f"{n_rows:,} rows; fills the start cache"])

    def today() -> None:
        since = st.day_start(now)
        for q in queues:
            st.totals(q, since=since)

    since = st.day_start(now)
    rows.append([label, "day_start + totals(q, since) x3", fmt(median_s(today, repeats)),
                 "the wallboard's today"])
    rows.append([label, "queue_classes(since=today)",
                 fmt(median_s(lambda: st.queue_classes(since=since), repeats)), ""])
    rows.append([label, "intervals(since=today)",
                 fmt(median_s(lambda: st.intervals(since=since), repeats)),
                 "what /metrics reads"])
    rows.append([label, "intervals(), all kept", fmt(median_s(st.intervals, repeats)),
                 f"{n_rows:,} rows"])

    def daily(day: int, keep: int) -> float:
        """The engine's pass (Engine.prune_statistics) ``day`` days after now."""
        later = now + day * DAY_S
        t0 = CPU()
        st.prune(st.day_start(st.day_start(later) - (keep - 1) * DAY_S + 43200.0))
        return CPU() - t0

    passes = [daily(d, days) for d in range(1, repeats + 1)]
    rows.append([label, "prune: daily pass", fmt(pystats.median(passes)),
                 "drops the oldest day"])
    rows.append([label, "prune: hourly pass",
                 fmt(median_s(lambda: daily(repeats, days), repeats)), "nothing to drop"])
    if days - repeats > KEEP_DAYS:
        before = len(st.intervals())
        took = daily(0, KEEP_DAYS)
        rows.append([label, f"prune: first pass to {KEEP_DAYS} days", fmt(took),
                     f"{before:,} -> {len(st.intervals()):,} rows (1 run)"])
    return rows


def part_stats(args: argparse.Namespace, zone: ZoneInfo) -> None:
    rows: list[list[str]] = []
    for days in args.days:
        rows += stats_rows(days, args, zone)
        gc.collect()
    table(f"Statistics ({args.zone}, 15-min intervals, 3 queues x 2 classes, 50 agents, "
          f"{args.per_cell} calls per queue and class per interval)",
          ["kept", "operation", "median", "note"], rows)


# ------------------------------------------------------------ part: board


class Counters:
    calls_started = 0
    calls_finished = 0
    errors = 0


class _Ami:
    connected = True
    reconnects = 0


class _Server:
    ami = _Ami()


class _Agi:
    active = 3
    rejected = 0


class Scene:
    """An engine as the wallboard and /metrics read it: a real core, real
    statistics, a clock; the rest (links, counters, record writer) fixed
    values.  Only what they read is here (see acd/api/protocol.py)."""

    def __init__(self, policy: Policy, agents: Sequence[AgentProfile], stats: Statistics,
                 now: float) -> None:
        self.core = ContactCenter(CoreConfig(policy=policy, agents=tuple(agents),
                                             wrap_up_s=30.0, rona_pause_s=None))
        self.statistics = stats
        self.now = now
        self.clock: Callable[[], float] = lambda: self.now
        self.counters = Counters()
        self.servers = {"pbx1": _Server()}
        self.agi = _Agi()
        self.sms = None
        self.sms_store = None
        self.sms_app_url = None
        self.profiles = None
        self.flows = None
        self.pbx_connected = True
        self.listeners: list[Any] = []

    def record_counts(self) -> dict[str, int]:
        return {"written": 0, "pending": 0, "spooled": 0, "dead_lettered": 0, "lost": 0}

    def go(self, event: Event) -> list[Action]:
        actions = self.core.handle(event, self.now)
        for a in actions:
            self.statistics.on_action(a, self.now)
        return actions


def busy_scene(n_agents: int, zone: ZoneInfo, per_cell: int, seed: int) -> Scene:
    rng = random.Random(seed)
    skills = ["billing", "tech", "vip", "general"]
    names = {"billing": "账务查询", "tech": "技术支持", "vip": "VIP 专线", "general": "general"}
    vip = When((Test("vip_level", values=frozenset({"gold", "platinum"})),))
    policy = Policy(
        queues={names[s]: QueuePolicy(names[s], Requirements(skill=s), Preferences(idle=1.0),
                                      ring_timeout_s=20.0) for s in skills},
        classes={c: CustomerClass(c, sl.threshold_s, sl.target) for c, sl in CLASSES.items()},
        class_rules=(ClassRule(vip, "vip"),))
    profiles = [AgentProfile(f"a{i:03d}", str(1000 + i), name=f"坐席 {i}",
                             skills={s: rng.randint(1, 9) for s in rng.sample(skills,
                                                                               rng.randint(1, 2))})
                for i in range(n_agents)]
    start, now = local_day(zone, KEEP_DAYS - 1)
    stats = new_statistics(zone)
    for a in synthetic(start, now - 600, list(names.values()), [], per_cell, rng):
        stats.on_action(a, 0.0)
    s = Scene(policy, profiles, stats, now - 600)
    for p in profiles:
        s.go(AgentLogin(p.agent_id, ready=True))
    n = 0

    def call(queue: str) -> ConnectCall | None:
        nonlocal n
        n += 1
        cid = f"b{n}"
        s.go(CallStarted(cid, f"138{n:08d}"))
        attrs = (("vip_level", "gold"),) if rng.random() < 0.2 else ()
        offers = [a for a in s.go(CallQueued(cid, queue, attributes=attrs))
                  if isinstance(a, ConnectCall)]
        return offers[0] if offers else None

    queue_names = list(names.values())
    # half the agents on a call, a twentieth of them then hanging up (wrap-up)
    talking: list[str] = []
    for _ in range(n_agents // 2):
        s.now += 0.5
        offer = call(rng.choice(queue_names))
        if offer is not None:
            s.go(OfferAnswered(offer.call_id, offer.offer_id))
            talking.append(offer.call_id)
    for cid in talking[:max(1, n_agents // 20)]:
        s.go(ConversationEnded(cid))
    for _ in range(max(1, n_agents // 20)):  # ringing
        call(rng.choice(queue_names))
    ready = [a.agent_id for a in s.core.agents() if a.state is AgentState.READY]
    for aid in ready:  # the rest on a break: the next calls wait
        s.go(AgentPause(aid, rng.choice(["小休", "培训", "午餐"])))
    for _ in range(max(4, n_agents // 10)):
        s.now += 1.0
        call(rng.choice(queue_names))
    s.now = now
    return s


def board_rows(n_agents: int, args: argparse.Namespace, zone: ZoneInfo) -> list[list[str]]:
    repeats: int = args.repeats
    s = busy_scene(n_agents, zone, args.per_cell, args.seed)
    engine = cast(ControlledEngine, s)  # only what the two read is there
    board = Wallboard(engine)
    metrics = Metrics(engine)
    waiting = sum(len(s.core.waiting(q)) for q in s.core.queue_names())
    states: dict[str, int] = {}
    for a in s.core.agents():
        states[a.state.value] = states.get(a.state.value, 0) + 1
    label = f"{n_agents} agents"
    snap = board.snapshot()
    body = board.frame(snap)
    scrape = generate_latest(metrics.registry)
    n_lines = scrape.count(b"\n")
    return [
        [label, "wallboard snapshot()", fmt(median_s(board.snapshot, repeats)),
         f"{waiting} waiting; " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))],
        [label, "  + its frame (JSON)", fmt(median_s(lambda: board.frame(snap), repeats)),
         f"{len(body):,} bytes"],
        [label, "/metrics generate_latest",
         fmt(median_s(lambda: generate_latest(metrics.registry), repeats)),
         f"{len(scrape):,} bytes, {n_lines:,} lines"]]


def part_board(args: argparse.Namespace, zone: ZoneInfo) -> None:
    rows: list[list[str]] = []
    for n_agents in args.agents:
        rows += board_rows(n_agents, args, zone)
    table(f"Wallboard and /metrics (4 queues, 2 classes, {KEEP_DAYS} days of statistics kept, "
          f"{args.zone})", ["scene", "operation", "median", "note"], rows)


# -------------------------------------------------------- part: queue_log


QL_QUEUES = ("billing", "tech")


def queue_log_core() -> ContactCenter:
    return ContactCenter(CoreConfig(
        policy=simple_policy(dict.fromkeys(QL_QUEUES, 20.0)),
        agents=agents_for_queues({f"a{i}": (str(1001 + i), QL_QUEUES) for i in range(20)}),
        wrap_up_s=5.0, rona_pause_s=None))


def queue_log_events(calls: int, seed: int) -> tuple[list[tuple[Event, float]], int]:
    """The decisions' events and times (a driver over one core), and how
    many of them are the agents' logins before the calls.  The core is
    deterministic: a fresh one fed the same events decides the same."""
    rng = random.Random(seed)
    core = queue_log_core()
    now = 1_790_000_000.0
    out: list[tuple[Event, float]] = []

    def feed(ev: Event) -> list[Action]:
        out.append((ev, now))
        return core.handle(ev, now)

    for i in range(20):
        feed(AgentLogin(f"a{i}"))
    for n in range(calls):
        cid = f"{1_790_000_000 + n}.{n}"
        feed(CallStarted(cid, f"139{rng.randrange(10**8):08d}"))
        now += 0.5
        offer = next(a for a in feed(CallQueued(cid, QL_QUEUES[n % 2]))
                     if isinstance(a, ConnectCall))
        now += rng.uniform(2, 6)
        feed(OfferAnswered(cid, offer.offer_id))
        now += rng.uniform(30, 300)
        timer = next(a for a in feed(ConversationEnded(cid, "caller" if n % 2 else "agent"))
                     if isinstance(a, StartTimer))
        now += 5.0
        feed(TimerFired(timer.key))
    return out, 20


def queue_log_run(events: list[tuple[Event, float]], logins: int, mode: str
                  ) -> tuple[float, int]:
    """CPU seconds to feed the calls' events to a fresh core ("core"), and
    to its translator too ("follow"), and the lines made ("line": and
    each entry's ``line()``)."""
    core = queue_log_core()
    tr = QueueLogTranslator(CoreQueueLogView(core))
    handle, follow = core.handle, tr.follow
    for ev, now in events[:logins]:
        follow(ev, handle(ev, now), now)
    calls = events[logins:]
    lines = 0
    gc.collect()
    gc.freeze()  # as the engine does after start: the events out of the GC's scans
    try:
        t0 = CPU()
        if mode == "core":
            for ev, now in calls:
                handle(ev, now)
        elif mode == "follow":
            for ev, now in calls:
                follow(ev, handle(ev, now), now)
        else:
            for ev, now in calls:
                out = [e.line() for e in follow(ev, handle(ev, now), now)]
                lines += len(out)
        return CPU() - t0, lines
    finally:
        gc.unfreeze()


def part_queue_log(args: argparse.Namespace) -> None:
    events, logins = queue_log_events(args.calls, args.seed)
    times: dict[str, list[float]] = {"core": [], "follow": [], "line": []}
    lines = 0
    for _ in range(args.repeats):  # interleaved: a load change hits all three
        for mode, got in times.items():
            took, n = queue_log_run(events, logins, mode)
            got.append(took / args.calls)
            lines = max(lines, n)
    core = pystats.median(times["core"])
    with_follow = pystats.median(times["follow"])
    with_lines = pystats.median(times["line"])
    tr = with_lines - core
    table(f"queue_log: {args.calls:,} calls through the real core "
          f"(5 decisions a call, {args.repeats} runs)",
          ["per call", "median", "note"],
          [["core (handle)", fmt(core), "the decisions alone"],
           ["core + follow()", fmt(with_follow), f"follow: +{fmt(with_follow - core)}"],
           ["core + follow() + line()", fmt(with_lines),
            f"line: +{fmt(with_lines - with_follow)} ({lines / args.calls:.1f} lines a call)"],
           ["translator (follow + line)", fmt(tr), f"+{tr / core:.0%} of the core"]])


# -------------------------------------------------------- part: listeners


def part_listeners(args: argparse.Namespace, zone: ZoneInfo) -> None:
    s = busy_scene(50, zone, 1, args.seed)
    engine = cast(ControlledEngine, s)
    metrics = Metrics(engine)
    board = Wallboard(engine)
    ev = CallStarted("c1", "13800138000")
    actions: tuple[Action, ...] = ()
    n: int = args.decisions
    mono = time.monotonic_ns

    def nothing(event: Event, actions: Sequence[Action], now: float, started_ns: int) -> None:
        pass

    def loop(listener: Callable[[Event, Sequence[Action], float, int], None]) -> float:
        t0 = CPU()
        for _ in range(n):
            listener(ev, actions, 0.0, mono())
        return (CPU() - t0) * 1e9 / n

    results: dict[str, list[float]] = {"nothing": [], "metrics": [], "wallboard": []}
    for _ in range(args.repeats):  # interleaved: a load change hits all three
        results["nothing"].append(loop(nothing))
        results["metrics"].append(loop(metrics.on_decision))
        results["wallboard"].append(loop(board.on_decision))
    base = pystats.median(results["nothing"])
    rows = [["a listener doing nothing (the loop)", f"{base:.0f} ns", ""]]
    for name, what in (("metrics", "Metrics.on_decision (latency histogram)"),
                       ("wallboard", "Wallboard.on_decision (a stream open)")):
        raw = pystats.median(results[name])
        rows.append([what, f"{raw:.0f} ns", f"+{raw - base:.0f} ns"])
    table(f"Decision listeners: {n:,} calls each, {args.repeats} runs interleaved",
          ["listener", "per call", "over the loop"], rows, right=(1, 2))


# ------------------------------------------------------------------- main


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=ints, default=[8, 60],
                    help="days of statistics fed, comma-separated (default 8,60)")
    ap.add_argument("--per-cell", type=int, default=2,
                    help="calls per queue and class per 15-min interval (default 2)")
    ap.add_argument("--agents", type=ints, default=[50, 500],
                    help="agents of the wallboard/metrics scene (default 50,500)")
    ap.add_argument("--calls", type=int, default=20_000, help="queue_log calls (20000)")
    ap.add_argument("--decisions", type=int, default=200_000,
                    help="listener calls per run (200000)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--zone", default="Asia/Shanghai")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parts", default="stats,board,queue_log,listeners")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"stats", "board", "queue_log", "listeners"}
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    zone = ZoneInfo(args.zone)
    print(f"core: {describe()}; Python {sys.version.split()[0]}; median of {args.repeats} runs")
    t0 = time.perf_counter()
    if "stats" in parts:
        part_stats(args, zone)
    if "board" in parts:
        part_board(args, zone)
    if "queue_log" in parts:
        part_queue_log(args)
    if "listeners" in parts:
        part_listeners(args, zone)
    print(f"\n(whole run {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
