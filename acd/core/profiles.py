"""Caller and agent profiles: plain, immutable data the router matches on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

GENDERS = ("F", "M")
#: age bands agents are described by (and callers may prefer)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
LEVEL_MIN, LEVEL_MAX = 1, 10


def _frozen(m: Mapping[str, int] | None) -> Mapping[str, int]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class CustomerProfile:
    """A known caller, keyed by phone number (the ``customers`` table)."""

    number: str
    name: str = ""
    vip_level: int = 0  # 0 = not VIP; 1, 2, 3 ... higher is more important
    dialect: str = ""  # e.g. minnan, cantonese, mandarin
    language: str = ""  # e.g. zh, en
    segment: str = ""  # e.g. prepaid, postpaid, enterprise
    tags: frozenset[str] = frozenset()
    gender: str = ""  # the caller's own, if known
    age: int | None = None
    preferred_gender: str = ""  # F / M: the caller prefers an agent of this gender
    preferred_age_band: str = ""

    def attributes(self) -> dict[str, str]:
        """The profile as call attributes (text), for routing rules."""
        out = {
            "number": self.number, "name": self.name, "vip_level": str(self.vip_level),
            "dialect": self.dialect, "language": self.language, "segment": self.segment,
            "tags": ",".join(sorted(self.tags)), "gender": self.gender,
            "age": "" if self.age is None else str(self.age),
            "preferred_gender": self.preferred_gender,
            "preferred_age_band": self.preferred_age_band,
        }
        return {k: v for k, v in out.items() if v != ""}


#: the caller attribute the caller lookup adds to the profile: the agent of
#: the caller's latest answered call
LAST_AGENT = "last_agent"
#: every attribute the engine's caller lookup can give (``caller.<name>`` in a
#: flow, routing attributes): the customers table's columns, as
#: :meth:`CustomerProfile.attributes` writes them, and ``last_agent``.  A
#: flow that reads another ``caller.`` name reads nothing (``none``).
CALLER_ATTRIBUTES = frozenset({f.name for f in fields(CustomerProfile)} | {LAST_AGENT})


@dataclass(frozen=True)
class AgentProfile:
    """What the router knows about an agent."""

    agent_id: str
    extension: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=lambda: _frozen(None))  # level 1-10
    dialects: Mapping[str, int] = field(default_factory=lambda: _frozen(None))  # proficiency
    languages: frozenset[str] = frozenset()
    gender: str = ""
    age_band: str = ""
    groups: frozenset[str] = frozenset()
    vip_qualified: bool = False
    #: the Asterisk servers whose callers can reach the agent's phone (its
    #: own, and those with a path to it); empty: every server (one server)
    servers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", _frozen(self.skills))
        object.__setattr__(self, "dialects", _frozen(self.dialects))
        for kind, m in (("skill", self.skills), ("dialect", self.dialects)):
            for k, v in m.items():
                if not LEVEL_MIN <= v <= LEVEL_MAX:
                    raise ValueError(f"agent {self.agent_id}: {kind} {k!r} level {v} "
                                     f"is not {LEVEL_MIN}-{LEVEL_MAX}")
        if self.gender and self.gender not in GENDERS:
            raise ValueError(f"agent {self.agent_id}: gender {self.gender!r} is not F or M")
        if self.age_band and self.age_band not in AGE_BANDS:
            raise ValueError(f"agent {self.agent_id}: age band {self.age_band!r} is not one "
                             f"of {', '.join(AGE_BANDS)}")

    def shape(self) -> tuple[object, ...]:
        """Everything but identity: agents of one shape score alike."""
        return (tuple(sorted(self.skills.items())), tuple(sorted(self.dialects.items())),
                tuple(sorted(self.languages)), self.gender, self.age_band,
                tuple(sorted(self.groups)), self.vip_qualified, tuple(sorted(self.servers)))
