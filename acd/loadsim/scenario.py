"""Load-simulator scenario files (YAML): reading and checking them.

A scenario describes one day (or a stationary stretch) of a contact center:
when calls arrive, who calls, which queue they want, how patient they are,
how long they talk, which agents are logged in when, and how calls are
routed.  :func:`load_scenario` reads a file; every mistake is reported as
``file:line:column: problem`` (positions from :mod:`acd.loaders.yamlpos`, like the
routing policy).  Nothing in the file is evaluated as code.

::

    name: monday
    start: "08:00"                 # time of day of the simulation's t = 0
    day: monday                    # a label
    interval_minutes: 15           # 15, 30 or 60: arrivals and statistics per interval
    arrivals:                      # exactly one of:
      per_interval: [40, 52, ...]  #   expected calls in each interval
      # per_hour: [160, 208, ...]  #   the rate (calls/hour) in each interval
      # calls_per_hour: 200        #   one constant rate (needs `calls` or `hours`)
    calls: 200000                  # stop after this many arrivals (optional)
    hours: 8                       # with a constant rate: arrivals for this long (optional)
    warmup_minutes: 60             # calls arriving earlier are not counted (optional)
    callers:
      pool: 20000                  # numbers drawn from a pool: some callers call again
      vip: {share: 0.05, levels: {1: 0.7, 2: 0.2, 3: 0.1}, handle: ..., patience: ...}
      dialects: {mandarin: 0.6, cantonese: 0.25, minnan: 0.15}
      segments: {prepaid: 0.5, postpaid: 0.45, enterprise: 0.05}
    queues:                        # per queue: share (without ivr), overrides, SL threshold
      billing: {share: 0.5, handle: {dist: lognormal, mean: 240, sd: 150}, sl_seconds: 20}
      tech: {share: 0.5, patience: {dist: exponential, mean: 300}, ring_timeout_s: 15}
    ivr:                           # instead of shares: walk an IVR flow
      flow: ../../ivr_flows/hotline.yaml
      keys: {main_menu: {"1": 0.5, "2": 0.3, "3": 0.1, none: 0.1}}
    handle: {dist: exponential, mean: 180}      # exponential | lognormal (mean, sd) | fixed
    patience: {dist: exponential, mean: 360}    # or: none (nobody hangs up)
    wrap_up_s: 0
    ring_no_answer: 0.0            # probability that an offered agent does not answer
    ring_delay_s: 0                # time from offer to answer
    rona_pause_s: 30               # an agent who did not answer is paused this long
    sl_seconds: 20                 # default service-level threshold
    agents:                        # counts per skill ...
      counts: {billing: 6, tech: 5}
      shift: "08:00-22:00"         # optional, for all of them
    # ... or a list (``count`` makes several alike: id b1, b2, ...):
    # agents:
    #   - {id: b, count: 4, skills: {billing: 7}, dialects: {cantonese: 8},
    #      gender: F, age_band: 25-34, groups: [day], vip_qualified: true,
    #      shifts: ["08:00-12:00", "13:00-17:00"]}
    routing: ../../routing.example.yaml   # optional; else FIFO queues (queue = skill)
    trace: trace_small.csv                # optional: replay these calls instead of arrivals

Paths are relative to the scenario file.  Times of day are ``HH:MM`` (or
``HH:MM:SS``); the simulation clock counts seconds from ``start``.

A scenario's ``trace:`` is a CSV of recorded calls (see
:mod:`acd.loadsim.trace`).  What a file becomes is the model of
:mod:`acd.loadsim.model` (:class:`~acd.loadsim.model.Scenario` and its parts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from acd.core.policy import ClassRule, Policy, Test, When, simple_policy
from acd.core.profiles import AGE_BANDS, GENDERS, AgentProfile
from acd.loaders.yamlpos import Reader, read_text
from acd.loadsim.model import (
    WEEKDAYS,
    AgentSpec,
    CallerPopulation,
    Dist,
    IvrSpec,
    QueueSpec,
    Scenario,
    ScenarioError,
    TraceCall,
    TraceError,
    parse_tod,
    routed_queues,
)
from acd.loadsim.trace import load_trace

INTERVAL_MINUTES = (15, 30, 60)
DISTRIBUTIONS = ("exponential", "lognormal", "fixed")

__all__ = ["erlang_scenario", "load_scenario", "parse_scenario"]

# ------------------------------------------------------------------ parsing

TOP_KEYS = {"name", "start", "day", "interval_minutes", "arrivals", "calls", "hours",
            "warmup_minutes", "callers", "queues", "ivr", "handle", "patience", "wrap_up_s",
            "ring_no_answer", "ring_delay_s", "rona_pause_s", "sl_seconds", "agents",
            "routing", "trace"}
AGENT_KEYS = {"id", "count", "skills", "dialects", "languages", "gender", "age_band",
              "groups", "vip_qualified", "shift", "shifts", "extension"}


def _tod(r: Reader, node: yaml.Node, what: str) -> float:
    """A time of day HH:MM or HH:MM:SS -> seconds after midnight (24:00 allowed)."""
    text = r.string(node, what)
    secs = parse_tod(text)
    if secs is None:
        raise r.err(node, f"{what} must be a time of day HH:MM (got {text!r})")
    return secs


def _shares(r: Reader, node: yaml.Node, what: str) -> tuple[tuple[str, float], ...]:
    """A mapping of names to probabilities that add up to 1."""
    fields = r.mapping(node, what)
    if not fields:
        raise r.err(node, f"{what} is empty")
    out = tuple((k, r.number(v, f"{what}: {k}", 0, 1)) for k, (_, v) in fields.items())
    total = sum(p for _, p in out)
    if abs(total - 1.0) > 1e-6:
        raise r.err(node, f"{what}: the shares add up to {total:g}, not 1")
    return out


def _dist(r: Reader, node: yaml.Node, what: str, allow_none: bool = False) -> Dist | None:
    if isinstance(node, yaml.ScalarNode) and node.value in ("none", "never") and allow_none:
        return None
    if isinstance(node, yaml.ScalarNode):
        hint = " or none" if allow_none else ""
        raise r.err(node, f"{what} must be a mapping {{dist: exponential|lognormal|fixed, "
                          f"mean: seconds}}{hint}")
    fields = r.mapping(node, what)
    r.known(fields, what, {"dist", "mean", "sd"}, {"dist", "mean"}, node)
    kind = r.string(fields["dist"][1], f"{what}: dist")
    if kind not in DISTRIBUTIONS:
        raise r.err(fields["dist"][1], f"{what}: unknown distribution {kind!r} "
                                       f"(known: {', '.join(DISTRIBUTIONS)})")
    mean = r.number(fields["mean"][1], f"{what}: mean", 0 if kind == "fixed" else 0.001, 1e7)
    sd = 0.0
    if kind == "lognormal":
        if "sd" not in fields:
            raise r.err(node, f"{what}: a lognormal distribution needs 'sd'")
        sd = r.number(fields["sd"][1], f"{what}: sd", 0, 1e7)
    elif "sd" in fields:
        raise r.err(fields["sd"][0], f"{what}: 'sd' only applies to lognormal")
    return Dist(kind, mean, sd)


def _levels(r: Reader, node: yaml.Node, what: str, names: set[str] | None = None
            ) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, (knode, v) in r.mapping(node, what).items():
        if names is not None and k not in names:
            raise r.err(knode, f"{what}: {k!r} is not a skill of any queue "
                               f"(skills: {', '.join(sorted(names))})")
        out[k] = r.integer(v, f"{what}: {k}", 1, 10)
    return out


def _shift(r: Reader, node: yaml.Node, what: str, start_s: float) -> tuple[float, float]:
    text = r.string(node, what)
    parts = text.replace(" ", "").split("-")
    a = parse_tod(parts[0]) if len(parts) == 2 else None
    b = parse_tod(parts[1]) if len(parts) == 2 else None
    if a is None or b is None:
        raise r.err(node, f"{what} must be HH:MM-HH:MM (got {text!r})")
    if b <= a:
        raise r.err(node, f"{what}: the shift ends ({parts[1]}) before it starts ({parts[0]})")
    return a - start_s, b - start_s


def _agents(r: Reader, node: yaml.Node, start_s: float, skills: set[str]
            ) -> tuple[AgentSpec, ...]:
    out: list[AgentSpec] = []
    seen: set[str] = set()
    if isinstance(node, yaml.MappingNode):
        fields = r.mapping(node, "agents")
        r.known(fields, "agents", {"counts", "shift", "shifts"}, {"counts"}, node)
        shifts = _shifts(r, fields, "agents", start_s)
        for skill, (knode, vnode) in r.mapping(fields["counts"][1], "agents: counts").items():
            if skill not in skills:
                raise r.err(knode, f"agents: counts: {skill!r} is not a skill of any queue "
                                   f"(skills: {', '.join(sorted(skills))})")
            n = r.integer(vnode, f"agents: counts: {skill}", 0, 100_000)
            for i in range(1, n + 1):
                aid = f"{skill}{i}"
                out.append(AgentSpec(AgentProfile(aid, aid, skills={skill: 5}), shifts))
        return tuple(out)
    for i, anode in enumerate(r.sequence(node, "agents")):
        w = f"agents[{i}]"
        f = r.mapping(anode, w)
        r.known(f, w, AGENT_KEYS, {"id", "skills"}, anode)
        base = r.string(f["id"][1], f"{w}: id")
        count = r.integer(f["count"][1], f"{w}: count", 1, 100_000) if "count" in f else None
        agent_skills = _levels(r, f["skills"][1], f"{w}: skills", skills)
        if not agent_skills:
            raise r.err(f["skills"][1], f"{w}: skills is empty")
        dialects = _levels(r, f["dialects"][1], f"{w}: dialects") if "dialects" in f else {}
        languages = frozenset(r.strings(f["languages"][1], f"{w}: languages")) \
            if "languages" in f else frozenset()
        gender = r.string(f["gender"][1], f"{w}: gender") if "gender" in f else ""
        if gender and gender not in GENDERS:
            raise r.err(f["gender"][1], f"{w}: gender {gender!r} is not F or M")
        age_band = r.string(f["age_band"][1], f"{w}: age_band") if "age_band" in f else ""
        if age_band and age_band not in AGE_BANDS:
            raise r.err(f["age_band"][1], f"{w}: age band {age_band!r} is not one of "
                                          f"{', '.join(AGE_BANDS)}")
        groups = frozenset(r.strings(f["groups"][1], f"{w}: groups")) \
            if "groups" in f else frozenset()
        vipq = r.boolean(f["vip_qualified"][1], f"{w}: vip_qualified") \
            if "vip_qualified" in f else False
        shifts = _shifts(r, f, w, start_s)
        ids = [base] if count is None else [f"{base}{k}" for k in range(1, count + 1)]
        ext = r.string(f["extension"][1], f"{w}: extension") if "extension" in f else None
        if ext is not None and count is not None:
            raise r.err(f["extension"][0], f"{w}: 'extension' cannot go with 'count'")
        for aid in ids:
            if aid in seen:
                raise r.err(f["id"][1], f"{w}: agent id {aid!r} is used twice")
            seen.add(aid)
            out.append(AgentSpec(AgentProfile(
                aid, ext or aid, skills=agent_skills, dialects=dialects, languages=languages,
                gender=gender, age_band=age_band, groups=groups, vip_qualified=vipq), shifts))
    return tuple(out)


def _shifts(r: Reader, f: dict[str, tuple[yaml.Node, yaml.Node]], w: str,
            start_s: float) -> tuple[tuple[float, float], ...]:
    if "shift" in f and "shifts" in f:
        raise r.err(f["shifts"][0], f"{w}: give 'shift' or 'shifts', not both")
    if "shift" in f:
        return (_shift(r, f["shift"][1], f"{w}: shift", start_s),)
    if "shifts" not in f:
        return ()
    nodes = r.sequence(f["shifts"][1], f"{w}: shifts")
    out = sorted(_shift(r, n, f"{w}: shifts[{k}]", start_s) for k, n in enumerate(nodes))
    for (_, e1), (s2, _), n in zip(out, out[1:], nodes[1:], strict=False):
        if s2 < e1:
            raise r.err(n, f"{w}: shifts overlap")
    return tuple(out)


def _simple_policy(queues: Mapping[str, QueueSpec], vip: bool) -> Policy:
    """FIFO queues (queue = skill); VIP callers form the class 'vip' (for the
    figures only: no priority)."""
    policy = simple_policy({q: spec.ring_timeout_s for q, spec in queues.items()})
    if not vip:
        return policy
    # no class definitions: service levels are the queues' (sl_seconds)
    return dataclasses.replace(
        policy, class_rules=(ClassRule(When((Test("vip_level", lo=1.0),)), "vip"),))


def parse_scenario(text: str, file: str = "<scenario>", base_dir: str | Path | None = None
                   ) -> Scenario:
    """Parse a scenario; relative paths are taken from ``base_dir`` (default:
    the file's folder)."""
    base = Path(base_dir) if base_dir is not None else Path(file).parent
    r = Reader(file, ScenarioError)
    root = r.compose(text)
    top = r.mapping(root, "the scenario")
    r.known(top, "the scenario", TOP_KEYS, {"agents"}, root)

    def num(key: str, lo: float, hi: float, default: float) -> float:
        return r.number(top[key][1], key, lo, hi) if key in top else default

    name = r.string(top["name"][1], "name") if "name" in top else Path(file).stem
    start_s = _tod(r, top["start"][1], "start") if "start" in top else 0.0
    day = r.string(top["day"][1], "day") if "day" in top else ""
    if day and day.lower() not in WEEKDAYS:
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise r.err(top["day"][1], f"day must be a weekday name or a date YYYY-MM-DD "
                                       f"(got {day!r})") from None
    interval_s = 3600.0
    if "interval_minutes" in top:
        minutes = r.integer(top["interval_minutes"][1], "interval_minutes", 1, 60)
        if minutes not in INTERVAL_MINUTES:
            raise r.err(top["interval_minutes"][1],
                        f"interval_minutes must be 15, 30 or 60 (got {minutes})")
        interval_s = minutes * 60.0

    # ---- trace or arrivals
    trace: tuple[TraceCall, ...] | None = None
    rates: tuple[float, ...] = ()
    open_ended = False
    if "trace" in top and "arrivals" in top:
        raise r.err(top["trace"][0], "give 'arrivals' or 'trace', not both")
    if "trace" in top:
        tpath = base / r.string(top["trace"][1], "trace")
        try:
            trace = load_trace(tpath, start_s)
        except ScenarioError as exc:  # TraceError too
            if exc.line:  # placed in the trace file
                raise
            raise r.err(top["trace"][1], f"trace: {exc.problem}: {tpath}") from None
    elif "arrivals" in top:
        an = top["arrivals"][1]
        af = r.mapping(an, "arrivals")
        r.known(af, "arrivals", {"per_interval", "per_hour", "calls_per_hour"})
        given = [k for k in ("per_interval", "per_hour", "calls_per_hour") if k in af]
        if len(given) != 1:
            raise r.err(an, "arrivals needs exactly one of per_interval, per_hour, "
                            "calls_per_hour")
        kind = given[0]
        vnode = af[kind][1]
        if kind == "calls_per_hour":
            rates = (r.number(vnode, "arrivals: calls_per_hour", 0.001, 1e7) / 3600.0,)
            open_ended = True
        else:
            values = [r.number(n, f"arrivals: {kind}[{i}]", 0, 1e7)
                      for i, n in enumerate(r.sequence(vnode, f"arrivals: {kind}"))]
            if not values:
                raise r.err(vnode, f"arrivals: {kind} is empty")
            rates = tuple(v / interval_s if kind == "per_interval" else v / 3600.0
                          for v in values)
    else:
        raise r.err(root, "the scenario needs 'arrivals' (or a 'trace')")
    calls = r.integer(top["calls"][1], "calls", 1, 10**9) if "calls" in top else None
    hours = num("hours", 0.001, 1e6, 0.0) or None
    if "hours" in top and not open_ended:
        raise r.err(top["hours"][0], "'hours' only goes with arrivals: calls_per_hour "
                                     "(a list of intervals sets the length itself)")
    if open_ended and calls is None and hours is None:
        raise r.err(top["arrivals"][1], "a constant rate (calls_per_hour) needs 'calls' "
                                        "or 'hours' to end")
    warmup_s = num("warmup_minutes", 0, 1e7, 0.0) * 60.0

    # ---- distributions and knobs
    handle = _dist(r, top["handle"][1], "handle") if "handle" in top \
        else Dist("exponential", 180.0)
    assert handle is not None
    patience = _dist(r, top["patience"][1], "patience", allow_none=True) \
        if "patience" in top else None
    sl_default = num("sl_seconds", 0, 3600, 20.0)

    # ---- queues
    queues: dict[str, QueueSpec] = {}
    shares_given = False
    if "queues" in top:
        qn = top["queues"][1]
        for qname, (_qk, qv) in r.mapping(qn, "queues").items():
            w = f"queue {qname!r}"
            if isinstance(qv, yaml.ScalarNode) and qv.value in ("", "~", "null"):
                queues[qname] = QueueSpec(qname)
                continue
            f = r.mapping(qv, w)
            r.known(f, w, {"share", "handle", "patience", "sl_seconds", "ring_timeout_s"})
            share = r.number(f["share"][1], f"{w}: share", 0, 1) if "share" in f else 0.0
            shares_given = shares_given or "share" in f
            queues[qname] = QueueSpec(
                qname, share,
                handle=_dist(r, f["handle"][1], f"{w}: handle") if "handle" in f else None,
                patience=_dist(r, f["patience"][1], f"{w}: patience", allow_none=True)
                if "patience" in f else None,
                patience_set="patience" in f,
                sl_seconds=r.number(f["sl_seconds"][1], f"{w}: sl_seconds", 0, 3600)
                if "sl_seconds" in f else None,
                ring_timeout_s=r.number(f["ring_timeout_s"][1], f"{w}: ring_timeout_s", 1, 300)
                if "ring_timeout_s" in f else 20.0,
            )
        if shares_given:
            total = sum(q.share for q in queues.values())
            if abs(total - 1.0) > 1e-6:
                raise r.err(qn, f"queues: the shares add up to {total:g}, not 1")

    # ---- routing policy
    routing: Path | None = None
    if "routing" in top:
        from acd.loaders.routing import PolicyError, load_policy

        routing = base / r.string(top["routing"][1], "routing")
        try:
            policy = load_policy(routing)
        except PolicyError as exc:
            if exc.line == 0:  # the file itself is missing or unreadable
                raise r.err(top["routing"][1], f"routing: {exc.problem}: {routing}") from None
            raise
    else:
        policy = Policy(queues={})  # replaced below, once the VIP share is known

    # ---- IVR
    ivr: IvrSpec | None = None
    if "ivr" in top:
        inode = top["ivr"][1]
        fi = r.mapping(inode, "ivr")
        r.known(fi, "ivr", {"flow", "keys"}, {"flow"}, inode)
        if shares_given:
            raise r.err(top["ivr"][0], "give queue shares or an ivr, not both")
        keys: dict[str, tuple[tuple[str | None, float], ...]] = {}
        key_nodes: dict[str, yaml.Node] = {}
        if "keys" in fi:
            for node_name, (kk, kn) in r.mapping(fi["keys"][1], "ivr: keys").items():
                pairs = _shares(r, kn, f"ivr: keys: {node_name}")
                keys[node_name] = tuple((None if k in ("none", "") else k, p) for k, p in pairs)
                key_nodes[node_name] = kk
        flow_path = base / r.string(fi["flow"][1], "ivr: flow")
        ivr = IvrSpec(flow_path, keys, _load_flow(r, fi["flow"][1], flow_path, key_nodes))
    elif trace is None:
        if not queues:
            raise r.err(root, "the scenario needs 'queues' with shares (or an 'ivr')")
        if not shares_given:
            raise r.err(top["queues"][1], "queues need a 'share' each (or give an 'ivr')")

    # ---- callers
    callers = CallerPopulation()
    if "callers" in top:
        callers = _callers(r, top["callers"][1])

    if routing is None:
        names = set(queues)
        if trace is not None:
            names |= {c.queue for c in trace}
        all_queues = {q: queues.get(q, QueueSpec(q)) for q in sorted(names)} \
            if trace is not None else queues
        if ivr is not None and not queues:
            raise r.err(top["ivr"][0], "without a routing file, list the queues the IVR "
                                       "sends calls to under 'queues'")
        vip = callers.vip_share > 0 or (trace is not None and any(
            k in ("vip", "vip_level") and v not in ("", "0") for c in trace
            for k, v in c.attributes))
        queues = dict(all_queues)
        policy = _simple_policy(queues, vip)
    else:
        for qname, (qk, _) in (r.mapping(top["queues"][1], "queues").items()
                               if "queues" in top else ()):
            if qname not in policy.queues and not _routed(policy, qname):
                raise r.err(qk, f"queue {qname!r} is not in the routing file "
                                f"(queues: {', '.join(sorted(policy.queues))})")
        if trace is not None:
            for c in trace:
                if c.queue not in policy.queues and not _routed(policy, c.queue):
                    raise TraceError(str(base / r.string(top["trace"][1], "trace")), c.line,
                                     f"queue: {c.queue!r} is not in the routing file "
                                     f"(queues: {', '.join(sorted(policy.queues))})")

    if ivr is not None:
        flow_queues = getattr(ivr.flow, "queues", None) or ()
        for q in sorted(flow_queues):
            if q not in policy.queues and not _routed(policy, q):
                where = "the routing file" if routing else "queues"
                raise r.err(top["ivr"][1], f"ivr: the flow sends calls to queue {q!r}, which "
                                           f"is not in {where} "
                                           f"(queues: {', '.join(sorted(policy.queues))})")
    skills = {qp.require.skill for qp in policy.queues.values()}
    agents = _agents(r, top["agents"][1], start_s, skills)

    ring_no_answer = num("ring_no_answer", 0, 1, 0.0)
    ring_delay = num("ring_delay_s", 0, 300, 0.0)
    min_ring = min((qp.ring_timeout_s for qp in policy.queues.values()), default=20.0)
    if ring_delay >= min_ring:
        raise r.err(top["ring_delay_s"][1], f"ring_delay_s {ring_delay:g} must be below the "
                                            f"shortest ring timeout ({min_ring:g} s)")
    rona_pause: float | None = 30.0
    if "rona_pause_s" in top:
        rn = top["rona_pause_s"][1]
        rona_pause = None if isinstance(rn, yaml.ScalarNode) and rn.value == "none" \
            else r.number(rn, "rona_pause_s", 0, 86400)
    return Scenario(
        name=name, file=file, policy=policy, agents=agents, queues=queues, start_s=start_s,
        day=day, interval_s=interval_s, rates=rates, open_ended=open_ended, hours=hours,
        calls=calls, warmup_s=warmup_s, callers=callers, ivr=ivr, handle=handle,
        patience=patience, wrap_up_s=num("wrap_up_s", 0, 86400, 0.0),
        ring_no_answer=ring_no_answer, ring_delay_s=ring_delay, rona_pause_s=rona_pause,
        sl_seconds=sl_default, routing=routing, trace=trace,
    )


def _routed(policy: Policy, queue: str) -> bool:
    return queue in routed_queues(policy)


def _callers(r: Reader, node: yaml.Node) -> CallerPopulation:
    f = r.mapping(node, "callers")
    r.known(f, "callers", {"pool", "vip", "dialects", "segments", "number_prefix"})
    pool = r.integer(f["pool"][1], "callers: pool", 1, 10**9) if "pool" in f else None
    vip_share = 0.0
    levels: tuple[tuple[int, float], ...] = ((1, 1.0),)
    vip_handle: Dist | None = None
    vip_patience: Dist | None = None
    vip_patience_set = False
    if "vip" in f:
        vn = f["vip"][1]
        vf = r.mapping(vn, "callers: vip")
        r.known(vf, "callers: vip", {"share", "levels", "handle", "patience"}, {"share"}, vn)
        vip_share = r.number(vf["share"][1], "callers: vip: share", 0, 1)
        if "levels" in vf:
            pairs = _shares(r, vf["levels"][1], "callers: vip: levels")
            out: list[tuple[int, float]] = []
            for (k, p), (kn, _) in zip(pairs, r.mapping(vf["levels"][1], "").values(),
                                       strict=True):
                if not k.isdigit() or not 1 <= int(k) <= 100:
                    raise r.err(kn, f"callers: vip: levels: {k!r} is not a level 1-100")
                out.append((int(k), p))
            levels = tuple(out)
        if "handle" in vf:
            vip_handle = _dist(r, vf["handle"][1], "callers: vip: handle")
        if "patience" in vf:
            vip_patience = _dist(r, vf["patience"][1], "callers: vip: patience",
                                 allow_none=True)
            vip_patience_set = True
    return CallerPopulation(
        pool=pool, vip_share=vip_share, vip_levels=levels, vip_handle=vip_handle,
        vip_patience=vip_patience, vip_patience_set=vip_patience_set,
        dialects=_shares(r, f["dialects"][1], "callers: dialects") if "dialects" in f else (),
        segments=_shares(r, f["segments"][1], "callers: segments") if "segments" in f else (),
        number_prefix=r.string(f["number_prefix"][1], "callers: number_prefix")
        if "number_prefix" in f else "139",
    )


def _load_flow(r: Reader, node: yaml.Node, path: Path,
               key_nodes: Mapping[str, yaml.Node]) -> Any:
    """The flow, loaded by the IVR package (its own errors name its file and line)."""
    from acd.ivr.load import load_flow
    from acd.ivr.parse import FlowError

    if not path.is_file():
        raise r.err(node, f"ivr: flow file not found: {path}")
    try:
        flow = load_flow(path)
    except FlowError as exc:
        if exc.line == 0:  # the file as a whole (unreadable, too big): placed here
            raise r.err(node, f"ivr: flow: {exc.problem}: {path}") from None
        raise
    nodes = getattr(flow, "nodes", {})
    for name, knode in key_nodes.items():
        if name not in nodes:
            raise r.err(knode, f"ivr: keys: {name!r} is not a node of the flow "
                               f"(nodes: {', '.join(sorted(nodes))})")
    return flow


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file (see the module docstring)."""
    text, file = read_text(path, ScenarioError, "scenario file")
    return parse_scenario(text, file)


def erlang_scenario(row: Mapping[str, str], calls: int) -> Scenario:
    """The textbook system of one row of the Erlang vectors (columns model,
    calls_per_hour, aht_s, patience_s (empty: none), agents, t_s): one FCFS
    queue, exponential times, no wrap-up, every offer answered."""
    patience = f"{{dist: exponential, mean: {row['patience_s']}}}" if row["patience_s"] \
        else "none"
    return parse_scenario(textwrap.dedent(f"""\
        name: erlang-{row['model']}
        interval_minutes: 60
        arrivals: {{calls_per_hour: {row['calls_per_hour']}}}
        calls: {calls}
        queues: {{q: {{share: 1, sl_seconds: {row['t_s']}}}}}
        handle: {{dist: exponential, mean: {row['aht_s']}}}
        patience: {patience}
        wrap_up_s: 0
        ring_no_answer: 0
        agents: {{counts: {{q: {row['agents']}}}}}
        """), "erlang.yaml")

