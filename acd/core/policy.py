"""Routing policy: customer classes, rules, queues, requirements,
preferences and escalation.  Pure data plus the functions that apply it.

Conditions are structured (attribute -> test), never evaluated code:
``{vip_level: {min: 1}, dialect: [minnan, cantonese], segment: {not: prepaid}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from acd.core.profiles import AgentProfile

# ------------------------------------------------------------------ conditions


@dataclass(frozen=True)
class Test:
    """One attribute test.  ``values``: equals any; ``lo``/``hi``: numeric
    range; ``present``: the attribute is set (or not, with negate)."""

    attr: str
    values: frozenset[str] = frozenset()
    lo: float | None = None
    hi: float | None = None
    present: bool = False
    negate: bool = False

    def matches(self, attrs: Mapping[str, str]) -> bool:
        value = attrs.get(self.attr, "")
        ok: bool
        if self.present:
            ok = value != ""
        elif self.values:
            if self.attr == "tags":
                ok = bool(self.values & set(value.split(","))) if value else False
            else:
                ok = value in self.values
        else:
            try:
                num = float(value)
            except ValueError:
                ok = False
            else:
                ok = (self.lo is None or num >= self.lo) and (self.hi is None or num <= self.hi)
        return ok != self.negate


@dataclass(frozen=True)
class When:
    """All tests must match; an empty When matches every call."""

    tests: tuple[Test, ...] = ()

    def matches(self, attrs: Mapping[str, str]) -> bool:
        return all(t.matches(attrs) for t in self.tests)


# --------------------------------------------------------------------- policy


@dataclass(frozen=True)
class CustomerClass:
    name: str
    sl_threshold_s: float = 20.0
    sl_target: float = 0.8


@dataclass(frozen=True)
class ClassRule:
    when: When
    customer_class: str


@dataclass(frozen=True)
class RouteRule:
    when: When
    queue: str
    priority: int = 0


@dataclass(frozen=True)
class Requirements:
    """Hard requirements: an agent who fails one is not offered the call."""

    skill: str
    min_level: int = 1
    #: the agent speaks the caller's dialect with at least this proficiency
    dialect_min: int | None = None
    #: dialect -> other dialects also accepted (after an escalation step)
    accept_dialects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    language: bool = False  # speaks the caller's language
    gender: bool = False  # is of the caller's preferred gender
    age_band: bool = False  # is in the caller's preferred age band
    vip_qualified: bool = False
    groups: frozenset[str] = frozenset()  # belongs to one of these


@dataclass(frozen=True)
class Preferences:
    """Soft preferences: weights of score terms, each term in [0, 1]."""

    dialect: float = 0.0  # proficiency in the caller's dialect / 10
    skill_level: float = 0.0  # level in the queue's skill / 10
    language: float = 0.0
    gender: float = 0.0
    age_band: float = 0.0
    last_agent: float = 0.0  # the agent who served this number last time
    idle: float = 0.0  # per minute idle, up to IDLE_CAP_MIN minutes


IDLE_CAP_MIN = 10.0

REQUIREMENT_NAMES = ("dialect", "language", "gender", "age_band", "vip_qualified", "groups")
PREFERENCE_NAMES = ("dialect", "skill_level", "language", "gender", "age_band", "last_agent",
                    "idle")


@dataclass(frozen=True)
class Step:
    """One escalation step, ``after_s`` seconds after the call was queued.
    Exactly one of the change fields is set."""

    after_s: float
    drop: str | None = None  # a requirement or preference name
    accept_dialects: Mapping[str, tuple[str, ...]] | None = None
    min_level: int | None = None
    overflow: str | None = None

    def describe(self) -> str:
        if self.drop:
            return f"after {self.after_s:g}s drop {self.drop}"
        if self.accept_dialects:
            alts = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.accept_dialects.items())
            return f"after {self.after_s:g}s accept dialects {alts}"
        if self.min_level is not None:
            return f"after {self.after_s:g}s accept skill level {self.min_level}"
        return f"after {self.after_s:g}s overflow to {self.overflow}"


@dataclass(frozen=True)
class QueuePolicy:
    name: str
    require: Requirements
    prefer: Preferences = field(default_factory=Preferences)
    escalate: tuple[Step, ...] = ()
    max_wait_s: float | None = None
    fallback: str = "message"  # callback | voicemail | sms | message
    announce_every_s: float | None = None
    ring_timeout_s: float = 20.0
    #: assumed handle time (talk + wrap-up) until real calls teach us better
    handle_time_s: float = 180.0


@dataclass(frozen=True)
class Policy:
    queues: Mapping[str, QueuePolicy]
    classes: Mapping[str, CustomerClass] = field(default_factory=dict)
    class_rules: tuple[ClassRule, ...] = ()
    routes: tuple[RouteRule, ...] = ()
    #: a call gains one priority level per this many seconds of waiting
    aging_s_per_level: float = 60.0
    default_class: str = "standard"

    def classify(self, attrs: Mapping[str, str]) -> str:
        for rule in self.class_rules:
            if rule.when.matches(attrs):
                return rule.customer_class
        return self.default_class

    def route(self, attrs: Mapping[str, str], requested: str) -> tuple[str, int]:
        """The queue and priority for a call the IVR sent to ``requested``."""
        for rule in self.routes:
            if rule.when.matches(attrs):
                return rule.queue, rule.priority
        return requested, 0


def simple_policy(queues: Mapping[str, float], aging_s_per_level: float = 60.0) -> Policy:
    """FIFO queues without profiles: queue name = skill; {name: ring timeout}."""
    return Policy(
        queues={q: QueuePolicy(q, Requirements(skill=q), Preferences(idle=1.0),
                               ring_timeout_s=ring)
                for q, ring in queues.items()},
        aging_s_per_level=aging_s_per_level,
    )


# ------------------------------------------------------------ applying steps


@dataclass(frozen=True)
class Stage:
    """What applies to one call now: its queue's policy after the steps
    already due.  ``signature`` identifies the hard requirements as they
    bind this caller; calls with equal signatures are eligible for the same
    agents."""

    queue: str
    require: Requirements
    prefer: Preferences
    steps_done: int
    signature: Signature
    pref_key: PrefKey


def stage_for(policy: Policy, queue: str, steps_done: int, attrs: Mapping[str, str],
              base: QueuePolicy | None = None) -> Stage:
    """Apply the first ``steps_done`` escalation steps of ``queue``."""
    qp = base or policy.queues[queue]
    require, prefer = qp.require, qp.prefer
    for step in qp.escalate[:steps_done]:
        require, prefer = apply_step(require, prefer, step)
    return Stage(queue, require, prefer, steps_done, signature(require, attrs),
                 pref_key(require, prefer, attrs))


def apply_step(require: Requirements, prefer: Preferences,
               step: Step) -> tuple[Requirements, Preferences]:
    if step.drop is not None:
        name = step.drop
        if name in REQUIREMENT_NAMES:
            if name == "dialect":
                require = replace(require, dialect_min=None)
            elif name == "groups":
                require = replace(require, groups=frozenset())
            elif name == "language":
                require = replace(require, language=False)
            elif name == "gender":
                require = replace(require, gender=False)
            elif name == "age_band":
                require = replace(require, age_band=False)
            else:
                require = replace(require, vip_qualified=False)
        if name in PREFERENCE_NAMES:
            prefer = replace(prefer, **{name: 0.0})
    if step.accept_dialects:
        merged = dict(require.accept_dialects)
        for d, alts in step.accept_dialects.items():
            merged[d] = tuple(dict.fromkeys((*merged.get(d, ()), *alts)))
        require = replace(require, accept_dialects=merged)
    if step.min_level is not None:
        require = replace(require, min_level=step.min_level)
    return require, prefer


def _dialects(require: Requirements, attrs: Mapping[str, str]) -> tuple[str, ...]:
    d = attrs.get("dialect", "")
    if not d:
        return ()
    return (d, *require.accept_dialects.get(d, ()))


@dataclass(frozen=True)
class Signature:
    """The hard requirements as they bind one caller (hashable): calls with
    equal signatures are eligible for exactly the same agents."""

    skill: str
    min_level: int
    dialects: tuple[str, ...] = ()  # any of these, at dialect_min or better
    dialect_min: int = 0
    language: str = ""
    gender: str = ""
    age_band: str = ""
    vip_qualified: bool = False
    groups: frozenset[str] = frozenset()
    #: the caller's Asterisk server: only agents reachable from it
    server: str = ""


#: the call attribute naming the caller's Asterisk server (set by the core
#: from the call; routing rules may test it too)
SERVER_ATTR = "server"


def signature(require: Requirements, attrs: Mapping[str, str]) -> Signature:
    dialects = _dialects(require, attrs) if require.dialect_min else ()
    return Signature(
        skill=require.skill, min_level=require.min_level,
        dialects=dialects, dialect_min=require.dialect_min or 0 if dialects else 0,
        language=attrs.get("language", "") if require.language else "",
        gender=attrs.get("preferred_gender", "") if require.gender else "",
        age_band=attrs.get("preferred_age_band", "") if require.age_band else "",
        vip_qualified=require.vip_qualified, groups=require.groups,
        server=attrs.get(SERVER_ATTR, ""),
    )


@dataclass(frozen=True)
class PrefKey:
    """What the static score terms depend on, for one caller."""

    skill: str
    dialect: str
    alternatives: tuple[str, ...]
    language: str
    gender: str
    age_band: str
    prefer: Preferences


def pref_key(require: Requirements, prefer: Preferences, attrs: Mapping[str, str]) -> PrefKey:
    dialect = attrs.get("dialect", "")
    return PrefKey(require.skill, dialect, tuple(require.accept_dialects.get(dialect, ())),
                   attrs.get("language", ""), attrs.get("preferred_gender", ""),
                   attrs.get("preferred_age_band", ""), prefer)


def eligible(agent: AgentProfile, sig: Signature) -> bool:
    """Does ``agent`` meet a signature's hard requirements?"""
    if agent.skills.get(sig.skill, 0) < sig.min_level:
        return False
    if sig.dialects and not any(agent.dialects.get(d, 0) >= sig.dialect_min
                                for d in sig.dialects):
        return False
    if sig.language and sig.language not in agent.languages:
        return False
    if sig.gender and agent.gender != sig.gender:
        return False
    if sig.age_band and agent.age_band != sig.age_band:
        return False
    if sig.vip_qualified and not agent.vip_qualified:
        return False
    if sig.server and agent.servers and sig.server not in agent.servers:
        return False
    return not sig.groups or bool(agent.groups & sig.groups)


def static_terms(agent: AgentProfile, key: PrefKey) -> dict[str, float]:
    """Weighted score terms that depend on the agent's profile only (not on
    idle time or history)."""
    prefer = key.prefer
    terms: dict[str, float] = {}
    if prefer.dialect and key.dialect:
        prof = agent.dialects.get(key.dialect, 0)
        for alt in key.alternatives:  # an accepted alternative counts half
            prof = max(prof, agent.dialects.get(alt, 0) // 2)
        terms["dialect"] = prefer.dialect * prof / 10
    if prefer.skill_level:
        terms["skill_level"] = prefer.skill_level * agent.skills.get(key.skill, 0) / 10
    if prefer.language and key.language:
        terms["language"] = prefer.language * (1.0 if key.language in agent.languages else 0.0)
    if prefer.gender and key.gender:
        terms["gender"] = prefer.gender * (1.0 if agent.gender == key.gender else 0.0)
    if prefer.age_band and key.age_band:
        terms["age_band"] = prefer.age_band * (1.0 if agent.age_band == key.age_band else 0.0)
    return terms
