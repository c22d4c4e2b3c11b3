"""Load-simulator scenario files (YAML): reading and checking them.

A scenario describes a day, several days (or a stationary stretch) of a contact center:
when calls arrive, who calls, which queue they want, how patient they are,
how long they talk, which agents are logged in when, and how calls are
routed.  :func:`load_scenario` reads a file; every mistake is reported as
``file:line:column: problem`` (positions from :mod:`acd.loaders.yamlpos`, like the
routing policy).  Nothing in the file is evaluated as code.

::

    name: monday
    start: "08:00"                 # time of day of the simulation's t = 0, or a local
                                   # date and time "2026-11-02 08:00"
    day: monday                    # a label (a weekday, or a date YYYY-MM-DD)
    days: 1                        # the daily arrivals list, shifts and breaks repeat
    interval_minutes: 15           # 15, 30 or 60: arrivals and statistics per interval
    arrivals:                      # exactly one of:
      per_interval: [40, 52, ...]  #   expected calls in each interval (of a day, with days)
      # per_hour: [160, 208, ...]  #   the rate (calls/hour) in each interval
      # calls_per_hour: 200        #   one constant rate (needs `calls` or `hours`)
      # forecast: forecast.csv     #   a Forecast CSV: per queue per interval, any span
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
    wrap_up_s: 0                   # fixed; or wrap_up: {dist: ..., mean: ...} per call
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
    #      shifts: ["08:00-12:00", "13:00-17:00"],   # "22:00-06:00": across midnight
    #      breaks: [{at: "10:00", minutes: 15}, {at: "14:30", minutes: 15, kind: coffee}]}
    # roster: roster.csv           # or the shifts and breaks per date from a Roster CSV
    not_ready:                     # random not-ready episodes per logged-in agent
      coaching: {per_hour: 0.2, minutes: {dist: exponential, mean: 10}}
    # shrinkage: 0.3               # or: a share of the agents unavailable (per interval: a list)
    routing: ../../routing.example.yaml   # optional; else FIFO queues (queue = skill)
    trace: trace_small.csv                # optional: replay these calls instead of arrivals

Breaks, a roster's activities and not-ready episodes are kept whole: one
due while the agent is on a call starts when the call and its wrap-up end
and keeps its length (docs/simulator.md, "Agents' availability").

Paths are relative to the scenario file.  Times of day are ``HH:MM`` (or
``HH:MM:SS``); the simulation clock counts seconds from ``start``.

A scenario's ``trace:`` is a CSV of recorded calls (see
:mod:`acd.loadsim.trace`).  What a file becomes is the model of
:mod:`acd.loadsim.model` (:class:`~acd.loadsim.model.Scenario` and its parts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from acd.core.policy import ClassRule, Policy, Test, When, simple_policy
from acd.core.profiles import AGE_BANDS, GENDERS, AgentProfile
from acd.loaders.yamlpos import Reader, read_text
from acd.loadsim.model import (
    DAY_S,
    WEEKDAYS,
    AgentSpec,
    CallerPopulation,
    Dist,
    IvrSpec,
    NotReadySpec,
    QueueSpec,
    Scenario,
    ScenarioError,
    TraceCall,
    TraceError,
    day_start,
    parse_tod,
    routed_queues,
)
from acd.loadsim.trace import load_trace
from acd.planning.roster import Roster

INTERVAL_MINUTES = (15, 30, 60)
DISTRIBUTIONS = ("exponential", "lognormal", "fixed")

__all__ = ["erlang_scenario", "load_scenario", "parse_scenario"]

# ------------------------------------------------------------------ parsing

TOP_KEYS = {"name", "start", "day", "days", "interval_minutes", "arrivals", "calls", "hours",
            "warmup_minutes", "callers", "queues", "ivr", "handle", "patience", "wrap_up_s",
            "wrap_up", "ring_no_answer", "ring_delay_s", "rona_pause_s", "sl_seconds",
            "agents", "roster", "not_ready", "shrinkage", "routing", "trace"}
AGENT_KEYS = {"id", "count", "skills", "dialects", "languages", "gender", "age_band",
              "groups", "vip_qualified", "shift", "shifts", "breaks", "extension"}
#: the agents' daily shifts, repeated: (seconds from the start, ...) per day
_Spans = tuple[tuple[float, float], ...]
_Breaks = tuple[tuple[float, float, str], ...]


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


def _shift(r: Reader, node: yaml.Node, what: str) -> tuple[float, float]:
    """A daily shift ``HH:MM-HH:MM`` -> (start, end) as seconds after midnight;
    an end at or before the start is the next day's (``22:00-06:00``)."""
    text = r.string(node, what)
    parts = text.replace(" ", "").split("-")
    a = parse_tod(parts[0]) if len(parts) == 2 else None
    b = parse_tod(parts[1]) if len(parts) == 2 else None
    if a is None or b is None:
        raise r.err(node, f"{what} must be HH:MM-HH:MM (got {text!r})")
    if b == a:
        raise r.err(node, f"{what}: the shift ends when it starts ({parts[0]})")
    if a >= DAY_S:
        raise r.err(node, f"{what}: a shift cannot start at 24:00 (write 00:00)")
    return a, (b if b > a else b + DAY_S)


class _Days:
    """Where the daily shifts and breaks fall: every day from the one before
    the start's date, each instance kept if it reaches into the run (ends
    after t = 0) and starts within the first ``days`` days or before the end
    of the arrivals (a trace longer than a day: the daily shifts repeat)."""

    def __init__(self, start_s: float, days: int, end_s: float | None) -> None:
        self.start_s = start_s
        self.days = days
        self.end_s = end_s

    def offsets(self, a: float, b: float) -> list[float]:
        """The t of midnight of each day whose instance of [a, b) (seconds
        after that midnight) falls in the run."""
        out: list[float] = []
        last = self.days if self.end_s is None else max(
            self.days, int((self.start_s + self.end_s) // DAY_S) + 1)
        for k in range(-1, last + 1):
            base = k * DAY_S - self.start_s
            if base + b <= 0:
                continue
            if k >= self.days and (self.end_s is None or base + a >= self.end_s):
                continue
            out.append(base)
        return out


def _agents(r: Reader, node: yaml.Node, days: _Days, skills: set[str],
            roster: bool = False) -> tuple[tuple[AgentSpec, ...], bool]:
    """The agents, and whether any has breaks.  ``roster``: the shifts come
    from a roster (none may be given here)."""
    out: list[AgentSpec] = []
    seen: set[str] = set()
    any_breaks = False
    if isinstance(node, yaml.MappingNode):
        fields = r.mapping(node, "agents")
        r.known(fields, "agents", {"counts", "shift", "shifts", "breaks"}, {"counts"}, node)
        if roster:
            raise r.err(node, "with a 'roster', give 'agents' as a list of agents by id "
                              "(their attributes), or leave it out")
        shifts, breaks = _shifts(r, fields, "agents", days)
        any_breaks = bool(breaks)
        for skill, (knode, vnode) in r.mapping(fields["counts"][1], "agents: counts").items():
            if skill not in skills:
                raise r.err(knode, f"agents: counts: {skill!r} is not a skill of any queue "
                                   f"(skills: {', '.join(sorted(skills))})")
            n = r.integer(vnode, f"agents: counts: {skill}", 0, 100_000)
            for i in range(1, n + 1):
                aid = f"{skill}{i}"
                out.append(AgentSpec(AgentProfile(aid, aid, skills={skill: 5}), shifts,
                                     breaks))
        return tuple(out), any_breaks
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
        if roster and any(k in f for k in ("shift", "shifts", "breaks")):
            key = next(k for k in ("shift", "shifts", "breaks") if k in f)
            raise r.err(f[key][0], f"{w}: {key!r}: the roster gives the shifts and breaks")
        shifts, breaks = _shifts(r, f, w, days)
        any_breaks = any_breaks or bool(breaks)
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
                gender=gender, age_band=age_band, groups=groups, vip_qualified=vipq), shifts,
                breaks))
    return tuple(out), any_breaks


def _shifts(r: Reader, f: dict[str, tuple[yaml.Node, yaml.Node]], w: str,
            days: _Days) -> tuple[_Spans, _Breaks]:
    """An agent's shifts and breaks over the run: the daily ones, repeated
    each day (see :class:`_Days`)."""
    if "shift" in f and "shifts" in f:
        raise r.err(f["shifts"][0], f"{w}: give 'shift' or 'shifts', not both")
    if "shift" in f:
        nodes = [f["shift"][1]]
        daily = [_shift(r, nodes[0], f"{w}: shift")]
    elif "shifts" in f:
        nodes = r.sequence(f["shifts"][1], f"{w}: shifts")
        daily = [_shift(r, n, f"{w}: shifts[{k}]") for k, n in enumerate(nodes)]
    else:
        nodes, daily = [], []
    order = sorted(range(len(daily)), key=lambda k: daily[k])
    for k1, k2 in itertools.pairwise(order):
        if daily[k2][0] < daily[k1][1]:
            raise r.err(nodes[k2], f"{w}: shifts overlap")
    if len(daily) > 1 and max(e for _, e in daily) - DAY_S > min(s for s, _ in daily):
        raise r.err(nodes[0], f"{w}: shifts overlap (from one day to the next)")
    # breaks: inside one of the daily shifts (after midnight: the shift's next day)
    breaks: list[tuple[int, float, float, str]] = []  # (shift index, at, length, kind)
    if "breaks" in f:
        if not daily:
            raise r.err(f["breaks"][0], f"{w}: breaks need a 'shift' or 'shifts'")
        for k, bn in enumerate(r.sequence(f["breaks"][1], f"{w}: breaks")):
            bw = f"{w}: breaks[{k}]"
            bf = r.mapping(bn, bw)
            r.known(bf, bw, {"at", "minutes", "kind"}, {"at", "minutes"}, bn)
            at = _tod(r, bf["at"][1], f"{bw}: at")
            length = r.number(bf["minutes"][1], f"{bw}: minutes", 0.01, 24 * 60) * 60.0
            kind = r.string(bf["kind"][1], f"{bw}: kind") if "kind" in bf else "break"
            if not kind:
                raise r.err(bf["kind"][1], f"{bw}: kind is empty")
            for si, (a, b) in enumerate(daily):
                x = next((x for x in (at, at + DAY_S) if a <= x and x + length <= b), None)
                if x is not None:
                    breaks.append((si, x, length, kind))
                    break
            else:
                raise r.err(bn, f"{bw}: the break ({bf['at'][1].value}, {length / 60:g} "
                                f"minutes) is not inside one of the shifts")
    shifts: list[tuple[float, float]] = []
    acts: list[tuple[float, float, str]] = []
    for si, (a, b) in enumerate(daily):
        for base in days.offsets(a, b):
            shifts.append((base + a, base + b))
            acts.extend((base + x, length, kind) for i, x, length, kind in breaks if i == si)
    shifts.sort()
    acts.sort()
    return tuple(shifts), tuple(acts)


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
    r.known(top, "the scenario", TOP_KEYS, set(), root)

    def num(key: str, lo: float, hi: float, default: float) -> float:
        return r.number(top[key][1], key, lo, hi) if key in top else default

    name = r.string(top["name"][1], "name") if "name" in top else Path(file).stem
    start_s = 0.0
    start_date: dt.date | None = None
    if "start" in top:
        start_s, start_date = _start(r, top["start"][1])
    day = r.string(top["day"][1], "day") if "day" in top else ""
    if day and day.lower() not in WEEKDAYS:
        try:
            day_date = dt.date.fromisoformat(day)
        except ValueError:
            raise r.err(top["day"][1], f"day must be a weekday name or a date YYYY-MM-DD "
                                       f"(got {day!r})") from None
        if start_date is not None and day_date != start_date:
            raise r.err(top["day"][1], f"day {day} is not the date of start "
                                       f"({start_date.isoformat()})")
    days = r.integer(top["days"][1], "days", 1, 3660) if "days" in top else 1
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
    forecast: Path | None = None
    forecast_queues: dict[str, float] = {}
    queue_mix: tuple[tuple[tuple[str, float], ...], ...] = ()
    if "trace" in top and "arrivals" in top:
        raise r.err(top["trace"][0], "give 'arrivals' or 'trace', not both")
    if "trace" in top:
        tpath = base / r.string(top["trace"][1], "trace")
        try:
            trace = load_trace(tpath, start_s, _start_at(start_date, day, start_s)
                               if start_date is not None or _is_date(day) else None)
        except ScenarioError as exc:  # TraceError too
            if exc.line:  # placed in the trace file
                raise
            raise r.err(top["trace"][1], f"trace: {exc.problem}: {tpath}") from None
    elif "arrivals" in top:
        an = top["arrivals"][1]
        af = r.mapping(an, "arrivals")
        r.known(af, "arrivals", {"per_interval", "per_hour", "calls_per_hour", "forecast"})
        given = [k for k in ("per_interval", "per_hour", "calls_per_hour", "forecast")
                 if k in af]
        if len(given) != 1:
            raise r.err(an, "arrivals needs exactly one of per_interval, per_hour, "
                            "calls_per_hour, forecast")
        kind = given[0]
        vnode = af[kind][1]
        if kind == "forecast":
            if "days" in top:
                raise r.err(top["days"][0], "'days' does not go with a forecast (the "
                                            "forecast's span is the scenario's)")
            forecast = base / r.string(vnode, "arrivals: forecast")
            start_s, start_date, rates, forecast_queues, queue_mix = _forecast(
                r, vnode, forecast, interval_s, start_s if "start" in top else None,
                start_date)
        elif kind == "calls_per_hour":
            rates = (r.number(vnode, "arrivals: calls_per_hour", 0.001, 1e7) / 3600.0,)
            open_ended = True
        else:
            values = [r.number(n, f"arrivals: {kind}[{i}]", 0, 1e7)
                      for i, n in enumerate(r.sequence(vnode, f"arrivals: {kind}"))]
            if not values:
                raise r.err(vnode, f"arrivals: {kind} is empty")
            rates = tuple(v / interval_s if kind == "per_interval" else v / 3600.0
                          for v in values)
            if days > 1:  # the daily list, repeated: each day's from the start's time
                per_day = round(DAY_S / interval_s)
                if len(rates) > per_day:
                    raise r.err(vnode, f"arrivals: {kind} has {len(rates)} intervals, more "
                                       f"than a day's {per_day} (with 'days', the list "
                                       f"is one day's)")
                day_rates = rates + (0.0,) * (per_day - len(rates))
                rates = day_rates * (days - 1) + rates
    else:
        raise r.err(root, "the scenario needs 'arrivals' (or a 'trace')")
    calls = r.integer(top["calls"][1], "calls", 1, 10**9) if "calls" in top else None
    hours = num("hours", 0.001, 1e6, 0.0) or None
    if "hours" in top and not open_ended:
        raise r.err(top["hours"][0], "'hours' only goes with arrivals: calls_per_hour "
                                     "(a list of intervals sets the length itself)")
    if open_ended and "days" in top:
        raise r.err(top["days"][0], "'days' repeats a daily list of arrivals (per_interval "
                                    "or per_hour), not a constant rate")
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
    wrap_up: Dist | None = None
    if "wrap_up" in top:
        if "wrap_up_s" in top:
            raise r.err(top["wrap_up"][0], "give 'wrap_up' (a distribution) or 'wrap_up_s' "
                                           "(fixed seconds), not both")
        wrap_up = _dist(r, top["wrap_up"][1], "wrap_up")

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
            r.known(f, w, {"share", "handle", "patience", "sl_seconds", "ring_timeout_s",
                           "wrap_up"})
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
                wrap_up=_dist(r, f["wrap_up"][1], f"{w}: wrap_up") if "wrap_up" in f else None,
            )
        if forecast is not None:
            if shares_given:
                raise r.err(qn, "with a forecast, the arrivals per queue are the forecast's: "
                                "give no queue shares")
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
    elif forecast is not None:
        for q, share in forecast_queues.items():  # the forecast's queues, listed or not
            queues[q] = dataclasses.replace(queues.get(q, QueueSpec(q)), share=share)
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
    end_s: float | None
    if trace is not None:
        end_s = max((c.arrival_s for c in trace), default=0.0)
    elif open_ended:
        end_s = hours * 3600.0 if hours is not None else None
    else:
        end_s = len(rates) * interval_s
    roster_path: Path | None = None
    any_breaks = False
    notes: list[str] = []
    if "roster" in top:
        roster_path = base / r.string(top["roster"][1], "roster")
        if start_date is None and not _is_date(day):  # the roster's first day
            start_date = _roster_first_day(r, top["roster"][1], roster_path)
        listed = _agents(r, top["agents"][1], _Days(start_s, days, end_s), skills,
                         roster=True)[0] if "agents" in top else ()
        agents, any_breaks = _roster_agents(
            r, top, roster_path, _start_at(start_date, day, start_s), skills, listed)
        on_roster = {a.profile.agent_id for a in agents}
        off = [a.profile.agent_id for a in listed if a.profile.agent_id not in on_roster]
        if off:
            notes.append(f"{len(off)} agent(s) under 'agents' have no shift in the roster and "
                         f"do not work: {', '.join(off[:10])}{' ...' if len(off) > 10 else ''}")
    elif "agents" in top:
        agents, any_breaks = _agents(r, top["agents"][1], _Days(start_s, days, end_s), skills)
    else:
        raise r.err(root, "the scenario needs 'agents' (or a 'roster')")
    not_ready: tuple[NotReadySpec, ...] = ()
    if "not_ready" in top:
        not_ready = _not_ready(r, top["not_ready"][1])
    shrinkage: tuple[float, ...] = ()
    if "shrinkage" in top:
        others = [k for k, on in (("breaks", any_breaks and roster_path is None),
                                  ("the roster's activities", any_breaks and roster_path),
                                  ("not_ready", bool(not_ready))) if on]
        if others:
            raise r.err(top["shrinkage"][0], f"give 'shrinkage' or {' and '.join(others)}, "
                                             f"not both (shrinkage is the share of agents "
                                             f"unavailable, instead of planned ones)")
        shrinkage = _shrinkage(r, top["shrinkage"][1], interval_s)

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
        sl_seconds=sl_default, routing=routing, trace=trace, start_date=start_date, days=days,
        wrap_up=wrap_up, not_ready=not_ready, shrinkage=shrinkage, roster=roster_path,
        forecast=forecast, queue_mix=queue_mix, notes=tuple(notes),
    )


def _routed(policy: Policy, queue: str) -> bool:
    return queue in routed_queues(policy)


def _callers(r: Reader, node: yaml.Node) -> CallerPopulation:
    f = r.mapping(node, "callers")
    r.known(f, "callers", {"pool", "vip", "dialects", "segments", "number_prefix",
                           "priorities"})
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
        priorities=_priorities(r, f["priorities"][1]) if "priorities" in f else (),
    )


def _priorities(r: Reader, node: yaml.Node) -> tuple[tuple[int, float], ...]:
    pairs = _shares(r, node, "callers: priorities")
    out: list[tuple[int, float]] = []
    for (k, p), (kn, _) in zip(pairs, r.mapping(node, "").values(), strict=True):
        try:
            level = int(k)
        except ValueError:
            level = -1
        if not 0 <= level <= 100:
            raise r.err(kn, f"callers: priorities: {k!r} is not a priority 0-100")
        out.append((level, p))
    return tuple(out)


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



# ------------------------------------------------------------------ days, rosters, availability


def _start(r: Reader, node: yaml.Node) -> tuple[float, dt.date | None]:
    """``start``: a time of day ``HH:MM[:SS]``, or a date and time
    ``YYYY-MM-DD HH:MM[:SS]`` (also with ``T``) -> (seconds after midnight, date)."""
    text = r.string(node, "start").strip()
    tod = parse_tod(text)
    if tod is not None:
        if tod >= DAY_S:
            raise r.err(node, "start must be before 24:00")
        return tod, None
    try:
        when = dt.datetime.fromisoformat(text) if len(text) > 10 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is not None:
        raise r.err(node, f"start must be a time of day HH:MM or a local date and time "
                          f"YYYY-MM-DD HH:MM (got {text!r})")
    return float(when.hour * 3600 + when.minute * 60 + when.second), when.date()


def _is_date(day: str) -> bool:
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _start_at(start_date: dt.date | None, day: str, start_s: float) -> dt.datetime:
    date = start_date if start_date is not None else day_start(day).date()
    return dt.datetime(date.year, date.month, date.day) + dt.timedelta(seconds=start_s)


def _roster_error(r: Reader, node: yaml.Node, path: Path, exc: Exception) -> Exception:
    """A roster file's error: placed in the roster file when it names a line,
    else at the scenario's ``roster:`` line."""
    line = getattr(exc, "line", 0) or 0
    if line:
        column = getattr(exc, "column", "")
        problem = getattr(exc, "problem", str(exc))
        return TraceError(str(path), line, f"{column}: {problem}" if column else problem)
    return r.err(node, f"roster: {getattr(exc, 'problem', exc)}: {path}")


def _load_roster(r: Reader, node: yaml.Node, path: Path) -> Roster:
    from acd.loaders.roster_csv import load_roster

    try:
        return load_roster(path)
    except (ValueError, OSError) as exc:  # RosterFileError, TextFileError
        raise _roster_error(r, node, path, exc) from None


def _roster_first_day(r: Reader, node: yaml.Node, path: Path) -> dt.date:
    span = _load_roster(r, node, path).span()
    if span is None:
        raise r.err(node, f"roster: the roster has no shifts: {path}")
    return span[0].date()


def _roster_agents(r: Reader, top: dict[str, tuple[yaml.Node, yaml.Node]], path: Path,
                   start_at: dt.datetime, skills: set[str], listed: tuple[AgentSpec, ...]
                   ) -> tuple[tuple[AgentSpec, ...], bool]:
    """The agents of a roster (:func:`acd.loadsim.rosters.roster_agents`):
    shifts and activities (breaks kept whole) from the roster; attributes from
    ``agents:`` by id, else the skills of the roster's ``skills`` column."""
    from acd.loadsim.rosters import roster_agents, roster_skills

    node = top["roster"][1]
    roster = _load_roster(r, node, path)
    known = {a.profile.agent_id: a for a in listed}
    for aid, (sk, line) in roster_skills(roster, str(path)).items():
        for name, _ in sk if aid not in known else ():
            if name not in skills:
                raise TraceError(str(path), line, f"skills: {name!r} ({aid}) is not a skill "
                                 f"of any queue (skills: {', '.join(sorted(skills))})")

    def no_skills(aid: str) -> dict[str, int]:
        raise r.err(top["agents"][1] if "agents" in top else node,
                    f"roster: agent {aid!r} has no skills: give them in the roster's "
                    f"skills column or under 'agents' ({path})")

    out = roster_agents(roster, start_at, str(path),
                        known=known, no_skills=no_skills)
    return out, any(a.activities for a in out)


def _not_ready(r: Reader, node: yaml.Node) -> tuple[NotReadySpec, ...]:
    """``not_ready: {reason: {per_hour: 0.2, minutes: {dist: ..., mean: 10}}}``."""
    out: list[NotReadySpec] = []
    for reason, (_, vn) in r.mapping(node, "not_ready").items():
        w = f"not_ready: {reason}"
        f = r.mapping(vn, w)
        r.known(f, w, {"per_hour", "minutes"}, {"per_hour", "minutes"}, vn)
        per_hour = r.number(f["per_hour"][1], f"{w}: per_hour", 0, 60)
        minutes = _dist(r, f["minutes"][1], f"{w}: minutes")
        assert minutes is not None
        if minutes.mean <= 0:
            raise r.err(f["minutes"][1], f"{w}: minutes: the mean must be above 0")
        out.append(NotReadySpec(reason, per_hour,
                                Dist(minutes.kind, minutes.mean * 60.0, minutes.sd * 60.0)))
    return tuple(out)


def _shrinkage(r: Reader, node: yaml.Node, interval_s: float) -> tuple[float, ...]:
    """``shrinkage: 0.3`` or a list, one share per interval of a day from
    ``start`` (exactly a day's intervals, or one value), repeating daily."""
    if isinstance(node, yaml.SequenceNode):
        values = tuple(r.number(n, f"shrinkage[{i}]", 0, 0.95)
                       for i, n in enumerate(r.sequence(node, "shrinkage")))
        per_day = round(DAY_S / interval_s)
        if len(values) not in (1, per_day):
            raise r.err(node, f"shrinkage: {len(values)} values: give one per interval of a "
                              f"day ({per_day} of {interval_s / 60:g} minutes), or one value")
        return values
    return (r.number(node, "shrinkage", 0, 0.95),)


def _forecast(r: Reader, node: yaml.Node, path: Path, interval_s: float,
              start_s: float | None, start_date: dt.date | None
              ) -> tuple[float, dt.date, tuple[float, ...], dict[str, float],
                         tuple[tuple[tuple[str, float], ...], ...]]:
    """Arrivals from a Forecast CSV: (start_s, start date, total rate per
    interval, each queue's share of all the calls, each queue's share per
    interval).  The scenario's span is the forecast's (from ``start`` when
    given as a date and time)."""
    try:
        from acd.loaders.planning_csv import parse_forecast
    except ImportError:
        raise r.err(node, "arrivals: forecast: this installation cannot read forecast "
                          "files (acd.loaders.planning_csv is missing)") from None
    from acd.loaders.yamlpos import read_text as read

    text, file = read(path, ScenarioError, "forecast file")
    try:
        rows = parse_forecast(text, file)
    except ValueError as exc:
        raise _roster_error(r, node, path, exc) from None
    if not rows:
        raise r.err(node, f"arrivals: forecast: no rows: {path}")
    first = min(row.start for row in rows)
    t0 = dt.datetime.combine(start_date, dt.time()) + dt.timedelta(seconds=start_s) \
        if start_date is not None and start_s is not None else first
    per: dict[int, float] = {}
    by_queue: dict[str, float] = {}
    cells: dict[int, dict[str, float]] = {}
    for row in rows:
        off = (row.start - t0).total_seconds()
        if off < 0 or off % interval_s:
            raise TraceError(str(path), row.line, f"interval_start: {row.start} is not an "
                             f"interval of {interval_s / 60:g} minutes from {t0}")
        i = int(off // interval_s)
        per[i] = per.get(i, 0.0) + row.calls
        cell = cells.setdefault(i, {})
        cell[row.queue] = cell.get(row.queue, 0.0) + row.calls
        by_queue[row.queue] = by_queue.get(row.queue, 0.0) + row.calls
    total = sum(by_queue.values()) or 1.0
    n = max(per) + 1
    rates = tuple(per.get(i, 0.0) / interval_s for i in range(n))
    mix = tuple(tuple((q, c / per[i]) for q, c in sorted(cells[i].items()) if c > 0)
                if per.get(i, 0.0) > 0 else () for i in range(n))
    return (float(t0.hour * 3600 + t0.minute * 60 + t0.second), t0.date(), rates,
            {q: c / total for q, c in by_queue.items()}, mix)
