"""A roster's agents for the simulator: the one conversion of a
:class:`~acd.planning.roster.Roster` into :class:`~acd.loadsim.model.AgentSpec`,
used by a scenario's ``roster:`` (:mod:`acd.loadsim.scenario`) and by the
replay of a center's records (:mod:`acd.loadsim.replay`).

Each roster agent's shifts and activities (breaks kept whole) become seconds
from ``start``.  An agent has one set of skills for the whole roster: shift
rows of one agent giving different skills are refused (the error names both
lines) rather than all but the first being ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime

from acd.core.profiles import AgentProfile
from acd.loadsim.model import AgentSpec, TraceError
from acd.planning.roster import Roster, Shift

__all__ = ["roster_agents", "roster_skills"]


def roster_skills(roster: Roster, file: str
                  ) -> dict[str, tuple[tuple[tuple[str, int], ...], int]]:
    """Per agent: the skills its shift rows give and the first such row's
    line (agents whose rows give none are absent).  Rows of one agent with
    different skills: a :class:`TraceError` naming both lines."""
    out: dict[str, tuple[tuple[tuple[str, int], ...], int]] = {}
    for sh in roster.shifts:
        if not sh.skills:
            continue
        got = out.get(sh.agent)
        if got is None:
            out[sh.agent] = (sh.skills, sh.line)
        elif dict(got[0]) != dict(sh.skills):
            raise TraceError(file, sh.line, f"skills: {sh.agent}'s skills "
                             f"{_skills_text(sh.skills)} differ from those of line {got[1]} "
                             f"({_skills_text(got[0])}): one set of skills per agent")
    return out


def _skills_text(skills: tuple[tuple[str, int], ...]) -> str:
    return ";".join(f"{k}={v}" for k, v in skills)


def roster_agents(roster: Roster, start: datetime, file: str, *,
                  known: Mapping[str, AgentSpec] | None = None,
                  roster_skills_win: bool = False,
                  no_skills: Callable[[str], dict[str, int]]) -> tuple[AgentSpec, ...]:
    """One agent per roster agent (sorted by id), its shifts and activities
    in seconds from ``start``.

    Attributes: the ``known`` agent's (by id), with the roster's skills
    instead of its own when ``roster_skills_win`` and the roster gives some;
    an unknown agent gets the roster's skills, else ``no_skills(agent)``
    (which may raise)."""
    skills = roster_skills(roster, file)
    per: dict[str, list[Shift]] = {}
    for sh in roster.shifts:  # overlaps are refused by Roster itself
        per.setdefault(sh.agent, []).append(sh)

    def t(at: datetime) -> float:
        return (at - start).total_seconds()

    out: list[AgentSpec] = []
    for aid in sorted(per):
        shifts = per[aid]
        spec = (known or {}).get(aid)
        got = skills.get(aid)
        if spec is None:
            profile = AgentProfile(aid, aid, skills=dict(got[0]) if got is not None
                                   else no_skills(aid))
            spec = AgentSpec(profile)
        elif got is not None and roster_skills_win:
            spec = dataclasses.replace(
                spec, profile=dataclasses.replace(spec.profile, skills=dict(got[0])))
        spans = tuple(sorted((t(s.start), t(s.end)) for s in shifts))
        acts = tuple(sorted((t(a.start), (a.end - a.start).total_seconds(), a.kind)
                            for s in shifts for a in s.activities))
        out.append(dataclasses.replace(spec, shifts=spans, activities=acts))
    return tuple(out)
