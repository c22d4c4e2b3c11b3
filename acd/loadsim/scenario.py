"""Load-simulator scenarios (YAML) and call traces (CSV).

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

Trace CSV (:func:`load_trace`), a header and one call per row::

    arrival,number,queue,attributes,handle,patience
    0,13800000001,billing,vip=2;dialect=cantonese,120,
    08:00:05,13800000002,tech,,60,30

``arrival``: seconds from the start, or a time of day ``HH:MM:SS``;
``attributes``: ``key=value`` pairs separated by ``;`` (``vip`` means
``vip_level``); ``patience`` empty = never hangs up.  A trace is replayed
exactly: no random draws for arrivals, handle times or patience.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
import random
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acd.core.policy import ClassRule, Policy, Test, When, simple_policy
from acd.core.profiles import AGE_BANDS, GENDERS, AgentProfile
from acd.loaders.yamlpos import Reader, YamlError, read_text

INTERVAL_MINUTES = (15, 30, 60)
DISTRIBUTIONS = ("exponential", "lognormal", "fixed")
DAY_S = 86400.0

__all__ = [
    "AgentSpec",
    "CallerMix",
    "Dist",
    "IvrSpec",
    "IvrWalk",
    "QueueSpec",
    "Scenario",
    "ScenarioError",
    "TraceCall",
    "TraceError",
    "clock",
    "day_start",
    "load_scenario",
    "load_trace",
    "parse_scenario",
    "parse_trace",
    "walk",
    "walk_ivr",
]


class ScenarioError(YamlError):
    """A scenario file is wrong; the message names file, line, column and problem."""


class TraceError(ScenarioError):
    """A trace CSV is wrong: ``file:line: column: problem``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(file, line, 0, message)
        self.args = (f"{file}:{line}: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


# ------------------------------------------------------------------ data


@dataclass(frozen=True, slots=True)
class Dist:
    """A duration distribution: exponential (mean), lognormal (mean, sd) or fixed."""

    kind: str
    mean: float
    sd: float = 0.0

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function drawing one value (seconds) from ``rng``."""
        if self.kind == "fixed":
            value = self.mean
            return lambda: value
        if self.kind == "lognormal":
            sigma2 = math.log(1.0 + (self.sd / self.mean) ** 2)
            mu, sigma = math.log(self.mean) - sigma2 / 2.0, math.sqrt(sigma2)
            lognorm = rng.lognormvariate
            return lambda: lognorm(mu, sigma)
        rate = 1.0 / self.mean
        expo = rng.expovariate
        return lambda: expo(rate)

    def describe(self) -> str:
        if self.kind == "lognormal":
            return f"lognormal mean {self.mean:g} s, sd {self.sd:g} s"
        return f"{self.kind} {self.mean:g} s" if self.kind == "fixed" \
            else f"exponential mean {self.mean:g} s"




@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    share: float = 0.0
    handle: Dist | None = None  # None: the scenario's default
    patience: Dist | None = None
    patience_set: bool = False  # True: ``patience`` overrides (None = never hangs up)
    sl_seconds: float | None = None  # None: the scenario's default
    ring_timeout_s: float = 20.0  # FIFO mode only (a routing file has its own)


@dataclass(frozen=True, slots=True)
class CallerMix:
    pool: int | None = None  # None: every caller is new
    vip_share: float = 0.0
    vip_levels: tuple[tuple[int, float], ...] = ((1, 1.0),)
    vip_handle: Dist | None = None
    vip_patience: Dist | None = None
    vip_patience_set: bool = False
    dialects: tuple[tuple[str, float], ...] = ()
    segments: tuple[tuple[str, float], ...] = ()
    number_prefix: str = "139"


@dataclass(frozen=True, slots=True)
class IvrSpec:
    flow_path: Path
    #: menu node -> ((key or None for no key, probability), ...)
    keys: Mapping[str, tuple[tuple[str | None, float], ...]]
    flow: Any = None  # the loaded flow (acd.ivr.flow.Flow)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    profile: AgentProfile
    #: (login, logout) in seconds from the start; () = logged in all the time
    shifts: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TraceCall:
    arrival_s: float
    number: str
    queue: str
    attributes: tuple[tuple[str, str], ...] = ()
    handle_s: float = 0.0
    patience_s: float | None = None  # None: never hangs up
    line: int = 0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    file: str
    policy: Policy
    agents: tuple[AgentSpec, ...]
    queues: Mapping[str, QueueSpec]
    start_s: float = 0.0  # time of day of t = 0 (seconds after midnight)
    day: str = ""
    interval_s: float = 3600.0
    #: arrival rate (calls per second) in each interval, piecewise constant
    rates: tuple[float, ...] = ()
    #: True: the last rate goes on after the listed intervals (constant rate)
    open_ended: bool = False
    hours: float | None = None
    calls: int | None = None
    warmup_s: float = 0.0
    callers: CallerMix = field(default_factory=CallerMix)
    ivr: IvrSpec | None = None
    handle: Dist = field(default_factory=lambda: Dist("exponential", 180.0))
    patience: Dist | None = None
    wrap_up_s: float = 0.0
    ring_no_answer: float = 0.0
    ring_delay_s: float = 0.0
    rona_pause_s: float | None = 30.0
    sl_seconds: float = 20.0
    routing: Path | None = None
    trace: tuple[TraceCall, ...] | None = None

    @property
    def day_end_s(self) -> float | None:
        """End of the arrivals (seconds from the start), None when open-ended."""
        if self.trace is not None:
            return max((c.arrival_s for c in self.trace), default=0.0)
        if self.open_ended:
            return self.hours * 3600.0 if self.hours is not None else None
        return len(self.rates) * self.interval_s

    def queue_sl(self, queue: str) -> float:
        spec = self.queues.get(queue)
        if spec is not None and spec.sl_seconds is not None:
            return spec.sl_seconds
        return self.sl_seconds

    def expected_calls(self) -> float | None:
        """Expected number of arrivals (None when open-ended without a limit)."""
        if self.trace is not None:
            return float(len(self.trace))
        end = self.day_end_s
        if end is None:
            return float(self.calls) if self.calls is not None else None
        if self.open_ended:
            n = self.rates[0] * end
        else:
            n = sum(r * self.interval_s for r in self.rates)
        return min(n, float(self.calls)) if self.calls is not None else n


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: a Monday: the simulated day's date when ``day`` is a weekday name
REFERENCE_MONDAY = dt.date(2026, 11, 23)


def day_start(day: str, timezone: str | None = None) -> dt.datetime:
    """Midnight of the simulated day: ``day`` is a date (YYYY-MM-DD), a
    weekday name (a day of the week of 2026-11-23) or empty (that Monday);
    in ``timezone`` (e.g. the IVR flow's), else UTC."""
    tz: dt.tzinfo = dt.UTC
    if timezone:
        try:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(timezone)
        except (ImportError, KeyError, ValueError):
            tz = dt.UTC
    text = day.strip().lower()
    if text in WEEKDAYS:
        date = REFERENCE_MONDAY + dt.timedelta(days=WEEKDAYS.index(text))
    else:
        try:
            date = dt.date.fromisoformat(text)
        except ValueError:
            date = REFERENCE_MONDAY
    return dt.datetime(date.year, date.month, date.day, tzinfo=tz)


def clock(t: float, start_s: float = 0.0) -> str:
    """``HH:MM`` of a simulation time (days past the first are added as +Nd)."""
    tod = round(start_s + t)
    days, rest = divmod(tod, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"{text}+{days}d" if days else text


# ------------------------------------------------------------------ IVR walk


@dataclass(frozen=True, slots=True)
class IvrWalk:
    """Where one simulated caller's walk through a flow ended."""

    queue: str | None  # None: the call ended in the IVR
    priority: int
    path: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # set by the flow (language, dialect, ...)
    #: the caller's key script for the live simulator: one entry per input
    #: prompt the engine plays (see acd/runtime/ivr_agi.py), the key on the last
    script: tuple[str, ...]


def _entries(step: Any, digit: str | None) -> list[str]:
    """The key-script entries for one IVR step: one per input prompt the engine
    plays for it (acd/runtime/ivr_agi.py), the key on the last."""
    kind = type(step).__name__
    prompts = tuple(getattr(step, "prompts", ()))
    if kind == "PlayPrompt":
        return [""] * len(prompts) if step.escape_digits else []
    if kind == "SayValue":
        return [""] * (len(prompts) + 1) if step.escape_digits else []
    if kind == "CollectDigit":
        return [""] * max(0, len(prompts) - 1) + [digit or ""]
    if kind == "CollectDigits":
        return [""] * (1 if step.typed else max(1, len(prompts)))
    if kind == "RecordFile":
        return [""]
    return []


def walk(flow: Any, keys: Mapping[str, Sequence[tuple[str | None, float]]],
         rng: random.Random, attributes: Mapping[str, str] | None = None,
         now: dt.datetime | None = None) -> IvrWalk:
    """Walk one caller through ``flow``: at a menu node the key is drawn from
    ``keys[node]`` (no entry: no key); every other step is answered with "no
    key".  ``attributes``: the caller's profile; ``now``: the simulated time
    (for opening hours).  The virtual and the live simulator both walk callers
    here, so the same seed draws the same keys in both."""
    from acd.ivr import interpreter as ivr

    run = ivr.FlowRun(flow, caller=dict(attributes or {}), now=now)
    script: list[str] = []
    step: Any = run.start()
    for _ in range(10_000):
        if isinstance(step, ivr.EnterQueue):
            return IvrWalk(step.queue, int(step.priority), tuple(step.path),
                           tuple(step.attributes), tuple(script))
        if isinstance(step, ivr.EndCall | ivr.TransferCall | ivr.VoicemailCall) or run.done:
            return IvrWalk(None, 0, tuple(getattr(step, "path", run.path)), (),
                           tuple(script))
        digit: str | None = None
        if isinstance(step, ivr.CollectDigit):
            choices = keys.get(run.node)
            if choices:  # probabilities may sum to less than 1: the rest is no key
                u = rng.random()
                acc = 0.0
                for key, p in choices:
                    acc += p
                    if u < acc:
                        digit = key
                        break
        script.extend(_entries(step, digit))
        step = run.resume(ivr.Key(digit))
    return IvrWalk(None, 0, tuple(run.path), (), tuple(script))


def walk_ivr(flow: Any, keys: Mapping[str, Sequence[tuple[str | None, float]]],
             rng: random.Random, attributes: Mapping[str, str] | None = None,
             now: dt.datetime | None = None
             ) -> tuple[str | None, int, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """:func:`walk` as (queue or None, priority, path, attributes the flow set)."""
    w = walk(flow, keys, rng, attributes, now)
    return w.queue, w.priority, w.path, w.attributes


def _pick(pairs: Sequence[tuple[Any, float]], u: float) -> Any:
    """The value whose cumulative probability first exceeds ``u``."""
    acc = 0.0
    for value, p in pairs:
        acc += p
        if u < acc:
            return value
    return pairs[-1][0]


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
    secs = _parse_tod(text)
    if secs is None:
        raise r.err(node, f"{what} must be a time of day HH:MM (got {text!r})")
    return secs


def _parse_tod(text: str) -> float | None:
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        return None
    h, m = int(parts[0]), int(parts[1])
    s = int(parts[2]) if len(parts) == 3 else 0
    if m > 59 or s > 59 or h * 3600 + m * 60 + s > DAY_S:
        return None
    return float(h * 3600 + m * 60 + s)


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
    a = _parse_tod(parts[0]) if len(parts) == 2 else None
    b = _parse_tod(parts[1]) if len(parts) == 2 else None
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
        except TraceError:
            raise
        except ScenarioError as exc:
            raise r.err(top["trace"][1], f"trace: {exc.problem}") from None
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
    callers = CallerMix()
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


def routed_queues(policy: Policy) -> frozenset[str]:
    """The queue names the IVR may send calls to because a route rule catches
    them (``ivr_queue`` tests) and puts them in one of the policy's queues."""
    return frozenset(v for rule in policy.routes for t in rule.when.tests
                     if t.attr == "ivr_queue" and not t.negate for v in t.values)


def _routed(policy: Policy, queue: str) -> bool:
    return queue in routed_queues(policy)


def _callers(r: Reader, node: yaml.Node) -> CallerMix:
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
    return CallerMix(
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
    from acd.ivr.flow import load_flow

    if not path.is_file():
        raise r.err(node, f"ivr: flow file not found: {path}")
    flow = load_flow(path)
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


# ------------------------------------------------------------------ traces

TRACE_COLUMNS = ("arrival", "number", "queue", "attributes", "handle", "patience")


def parse_trace(text: str, file: str = "<trace>", start_s: float = 0.0
                ) -> tuple[TraceCall, ...]:
    """Calls of a trace CSV (see the module docstring), in order of arrival.
    ``start_s``: the scenario's start (time of day), for HH:MM:SS arrivals."""
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise TraceError(file, 1, "the trace is empty")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("arrival", "queue", "handle") if c not in header]
    if missing:
        raise TraceError(file, 1, f"header: missing column(s) {', '.join(missing)} "
                                  f"(columns: {', '.join(TRACE_COLUMNS)})")
    unknown = [c for c in header if c not in TRACE_COLUMNS]
    if unknown:
        raise TraceError(file, 1, f"header: unknown column(s) {', '.join(unknown)} "
                                  f"(columns: {', '.join(TRACE_COLUMNS)})")
    col = {c: i for i, c in enumerate(header)}
    out: list[TraceCall] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if row[0].lstrip().startswith("#"):
            continue
        if len(row) > len(header):
            raise TraceError(file, lineno, f"{len(row)} fields, the header has {len(header)}")

        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        arr_text = get("arrival")
        arrival: float | None
        if ":" in arr_text:
            tod = _parse_tod(arr_text)
            arrival = None if tod is None else tod - start_s
        else:
            try:
                arrival = float(arr_text)
            except ValueError:
                arrival = None
        if arrival is None or not math.isfinite(arrival):
            raise TraceError(file, lineno, f"arrival: {arr_text!r} is not seconds or HH:MM:SS")
        if arrival < 0:
            raise TraceError(file, lineno, f"arrival: {arr_text!r} is before the scenario's "
                                           f"start")
        queue = get("queue")
        if not queue:
            raise TraceError(file, lineno, "queue: empty")
        handle = _trace_seconds(file, lineno, "handle", get("handle"), required=True)
        patience = _trace_seconds(file, lineno, "patience", get("patience"), required=False)
        attrs: list[tuple[str, str]] = []
        for part in get("attributes").split(";"):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise TraceError(file, lineno, f"attributes: {part!r} is not key=value")
            k, v = (s.strip() for s in part.split("=", 1))
            if not k:
                raise TraceError(file, lineno, f"attributes: {part!r} has no key")
            if k == "vip":
                k = "vip_level"
            if k == "vip_level" and not v.isdigit():
                raise TraceError(file, lineno, f"attributes: vip level {v!r} is not a number")
            attrs.append((k, v))
        number = get("number") or f"trace{lineno}"
        assert handle is not None
        out.append(TraceCall(arrival, number, queue, tuple(attrs), handle, patience, lineno))
    out.sort(key=lambda c: c.arrival_s)  # stable: ties keep the file's order
    return tuple(out)


def _trace_seconds(file: str, line: int, name: str, text: str, required: bool) -> float | None:
    if not text:
        if required:
            raise TraceError(file, line, f"{name}: empty")
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise TraceError(file, line, f"{name}: {text!r} is not a number of seconds >= 0")
    return value


def load_trace(path: str | Path, start_s: float = 0.0) -> tuple[TraceCall, ...]:
    text, file = read_text(path, ScenarioError, "trace file")
    return parse_trace(text, file, start_s)


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

