"""Checks on whole profiles: what is wrong with a customer or agent profile
made in code (the store checks every profile before writing it; the control
API checks an agent changed at run time), and the warning for a customer
number kept as written.

A profile field is turned back into text the way a file would give it and
read again with the field's parser, so the problems are worded as an import
would word them.  Pure: no files, no database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any

from acd.core.numbers import is_e164
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_fields import (
    AGENT_PARSERS,
    AGENT_REQUIRED,
    CUSTOMER_PARSERS,
    CUSTOMER_REQUIRED,
    FieldError,
    check_number,
)


def _serial(value: object) -> str:
    """A profile field as text, the way the parsers read it."""
    if isinstance(value, frozenset | set):
        return ";".join(sorted(value))
    if isinstance(value, Mapping):
        return ";".join(f"{k}:{v}" for k, v in sorted(value.items()))
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_Spec = tuple[tuple[str, object, Callable[[str], Any], bool], ...]

#: profile fields the engine fills in at run time, never read from a file or
#: the database (``servers``: where the agent's phone can be reached from)
RUNTIME_ONLY = frozenset({"servers"})


def _spec(cls: type[CustomerProfile] | type[AgentProfile],
          parsers: Mapping[str, Callable[[str], Any]], required: tuple[str, ...]) -> _Spec:
    out = []
    for f in fields(cls):
        if f.name in RUNTIME_ONLY:
            continue
        default: object = f.default
        if f.default_factory is not MISSING:
            default = f.default_factory()
        out.append((f.name, default, parsers[f.name], f.name in required))
    return tuple(out)


def _problems(profile: CustomerProfile | AgentProfile, spec: _Spec) -> list[str]:
    out: list[str] = []
    for name, default, parse, required in spec:
        value = getattr(profile, name)
        if value == default and not required:
            continue  # the usual case, and always fine
        text = _serial(value)
        if required and not text:
            out.append(f"{name} is missing")
            continue
        try:
            parsed = parse(text)
        except FieldError as exc:
            out.append(f"{name} {exc}")
            continue
        if isinstance(value, str) and text != text.strip():
            out.append(f"{name} {value!r} has spaces around it")
        elif isinstance(value, Mapping):
            if parsed != dict(value):
                out.append(f"{name} {dict(value)!r} should be written {parsed!r}")
        elif isinstance(value, frozenset):
            if parsed != value:
                out.append(f"{name} {sorted(value)!r} should be written {sorted(parsed)!r}")
        elif parsed != value or type(parsed) is not type(value):
            out.append(f"{name} {value!r} should be written {parsed!r}")
    return out


def customer_problems(profile: CustomerProfile) -> list[str]:
    """What is wrong with a customer profile, in the parsers' words ([] if fine)."""
    return _problems(profile, _CUSTOMER_SPEC)


def agent_problems(profile: AgentProfile) -> list[str]:
    """What is wrong with an agent profile, in the parsers' words ([] if fine)."""
    return _problems(profile, _AGENT_SPEC)


# a stored number is checked, not normalised again: the store normalises it
# for the configured country before the check
_CUSTOMER_SPEC = _spec(CustomerProfile, {**CUSTOMER_PARSERS, "number": check_number},
                       CUSTOMER_REQUIRED)
_AGENT_SPEC = _spec(AgentProfile, AGENT_PARSERS, AGENT_REQUIRED)


def number_warnings(profile: CustomerProfile) -> list[tuple[str, str]]:
    """(field, problem) for a number kept as written (not a full phone number)."""
    if is_e164(profile.number):
        return []
    return [("number", f"number {profile.number!r} is not a full phone number (no country "
                       "or area code could be read): kept as written, so only a caller id "
                       "written the same way finds it")]
