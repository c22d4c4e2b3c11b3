"""Routing core under load: decisions per second, p99 latency, memory.

    .venv/bin/python benchmarks/router_bench.py [--agents 10000] [--skills 50]
        [--waiting 5000] [--decisions 200000] [--seed 1]

10,000 agents with 3-5 of 50 skills (levels 1-10), one or two of five
dialects, gender, age band, 10 % VIP-qualified; 50 queues (one per skill)
requiring the caller's dialect (proficiency 5+), preferring dialect, skill
level, gender, age band, the last agent and idle time, relaxing the dialect
after 60 s and dropping it after 120 s; priority aging.  All agents are
busy and 5,000 calls wait.  Then a steady state: an agent's call ends, its
wrap-up ends (it takes the first eligible waiting call: a decision over
every partition of its queues), the offer is answered, and a new caller
arrives (call started, call queued) to keep 5,000 waiting.  Every
``handle()`` is a decision, timed one by one.  Memory: what the core
allocated to build and fill (tracemalloc, switched off before the timed
phase), and the process's maximum RSS.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.core.center import ContactCenter
from acd.core.model import (
    Action,
    AgentLogin,
    CallQueued,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    OfferAnswered,
    TimerFired,
)
from acd.core.policy import (
    Policy,
    Preferences,
    QueuePolicy,
    Requirements,
    RouteRule,
    Step,
    Test,
    When,
)
from acd.core.profiles import AGE_BANDS, AgentProfile

DIALECTS = ["mandarin", "minnan", "cantonese", "wu", "hakka"]


def build(n_agents: int, n_skills: int, rng: random.Random) -> tuple[Policy, list[AgentProfile]]:
    skills = [f"s{i}" for i in range(n_skills)]
    queues = {
        s: QueuePolicy(
            s, Requirements(skill=s, dialect_min=5),
            Preferences(dialect=2, skill_level=1, gender=1, age_band=0.5, last_agent=3,
                        idle=0.5),
            escalate=(Step(60, accept_dialects={d: ("mandarin",) for d in DIALECTS[1:]}),
                      Step(120, drop="dialect")),
            handle_time_s=180)
        for s in skills
    }
    routes = (RouteRule(When((Test("vip_level", lo=1),)), skills[0], priority=5),)
    policy = Policy(queues=queues, routes=routes, aging_s_per_level=30)
    agents = []
    for i in range(n_agents):
        mine = rng.sample(skills, rng.randint(3, 5))
        dialects = rng.sample(DIALECTS, rng.randint(1, 2))
        agents.append(AgentProfile(
            f"a{i}", f"{10000 + i}", skills={s: rng.randint(1, 10) for s in mine},
            dialects={d: rng.randint(5, 10) for d in dialects},
            gender=rng.choice("FM"), age_band=rng.choice(AGE_BANDS),
            vip_qualified=rng.random() < 0.1))
    return policy, agents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--skills", type=int, default=50)
    ap.add_argument("--waiting", type=int, default=5_000)
    ap.add_argument("--decisions", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    policy, agents = build(args.agents, args.skills, rng)
    skills = list(policy.queues)

    tracemalloc.start()
    cc = ContactCenter(CoreConfig(policy=policy, agents=tuple(agents), wrap_up_s=10,
                                  rona_pause_s=None))
    now = 0.0
    lat: list[int] = []
    offers: dict[str, int] = {}
    seq = 0

    def feed(ev: Event) -> list[Action]:
        """One decision: the core handles one event."""
        t0 = time.perf_counter_ns()
        out = cc.handle(ev, now)
        lat.append(time.perf_counter_ns() - t0)
        for a in out:
            if isinstance(a, ConnectCall):
                offers[a.call_id] = a.offer_id
        return out

    def new_call() -> None:
        nonlocal seq
        seq += 1
        cid = f"c{seq}"
        feed(CallStarted(cid, f"1{rng.randrange(10**10):010d}"))
        attrs = (("dialect", rng.choice(DIALECTS)), ("preferred_gender", rng.choice("FM ")),
                 ("vip_level", "1" if rng.random() < 0.05 else "0"))
        feed(CallQueued(cid, rng.choice(skills), (), 0, attrs))

    def answer_all() -> None:
        for cid, oid in list(offers.items()):
            feed(OfferAnswered(cid, oid))
        offers.clear()

    # fill: every agent on a call (a caller that matches each agent), then a backlog
    for a in agents:
        feed(AgentLogin(a.agent_id))
    for a in agents:
        while cc.agent(a.agent_id).state.value == "ready":
            seq += 1
            cid = f"c{seq}"
            cc.handle(CallStarted(cid, f"1{rng.randrange(10**10):010d}"), now)
            feed(CallQueued(cid, rng.choice(list(a.skills)), (), 0,
                            (("dialect", rng.choice(list(a.dialects))),)))
            now += 0.001
    answer_all()
    on_call = [ag.agent_id for ag in cc.agents() if ag.call_id is not None]
    assert len(on_call) == len(agents), "the fill left agents idle"
    for _ in range(args.waiting):
        new_call()
        now += 0.001
    answer_all()
    lat.clear()
    current_after_fill, fill_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    gc.freeze()  # as the engine does after start: long-lived state out of GC scans

    # steady state
    t_start = time.perf_counter()
    decisions = 0
    while decisions < args.decisions:
        now += 0.01
        aid = rng.choice(on_call)
        agent = cc.agent(aid)
        if agent.call_id is None:
            continue
        feed(ConversationEnded(agent.call_id, "agent"))
        feed(TimerFired(("wrap_up", aid)))
        answer_all()
        new_call()
        decisions += 5
    elapsed = time.perf_counter() - t_start
    lat.sort()
    n = len(lat)
    waiting = sum(len(cc.waiting(q)) for q in skills)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"agents {args.agents}, skills {args.skills}, waiting calls {waiting}")
    print(f"decisions: {n} in {elapsed:.2f} s wall = {n / elapsed:,.0f} decisions/s with the "
          f"harness; core time {sum(lat) / 1e9:.2f} s = {n / (sum(lat) / 1e9):,.0f} decisions/s")
    print(f"latency: p50 {lat[n // 2] / 1000:.1f} us, p99 {lat[int(n * 0.99)] / 1000:.1f} us, "
          f"max {lat[-1] / 1000:.1f} us")
    print(f"memory: core {current_after_fill / 2**20:.1f} MB after the fill, peak "
          f"{fill_peak / 2**20:.1f} MB (tracemalloc); process max RSS {rss_mb:.1f} MB")


if __name__ == "__main__":
    main()
