"""Quality reports: scores grouped by agent, team, queue, week or item
(docs/quality.md).  Pure: the scored calls come in (the latest score of each
call), rows go out.

Per group: ``count`` (calls scored), ``mean`` (mean score, 0-100, fatal
calls counted as 0), ``fatal_rate`` (share of calls with a fatal item
failed), ``pass_rate`` (share passing the form's pass mark, when the form
has one), and per item its pass rate over the calls that answered it (N/A
left out).  Per item: answered, N/A, passed, pass rate, mean ratio (the
answer over its scale's max).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIMENSIONS", "GroupRow", "ItemRow", "ScoredCall", "TeamsError", "by_group", "by_item",
           "parse_teams"]

#: what a report groups by (``agent-week``: each agent's weeks, over time)
DIMENSIONS = ("agent", "team", "queue", "week", "agent-week", "team-week")


@dataclass(frozen=True, slots=True)
class ScoredCall:
    call_id: str
    agent_id: str
    queue: str
    team: str
    week: str
    scored_at: float
    score: float
    fatal: bool
    #: item -> {"answer", "ratio", "passed"} (as :meth:`acd.qa.scoring.Score.answers_json`)
    answers: Mapping[str, Mapping[str, Any]]
    form: str = ""
    form_version: str = ""
    passed: bool | None = None
    reviewer: str = ""
    comment: str = ""


@dataclass(slots=True)
class GroupRow:
    key: tuple[str, ...]
    count: int = 0
    total: float = 0.0
    fatal: int = 0
    passed: int = 0
    judged: int = 0  # calls whose form has a pass mark
    items: dict[str, list[int]] = field(default_factory=dict)  # item -> [passed, answered]

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def fatal_rate(self) -> float | None:
        return self.fatal / self.count if self.count else None

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    def item_rate(self, item: str) -> float | None:
        p, n = self.items.get(item, (0, 0))
        return p / n if n else None


@dataclass(slots=True)
class ItemRow:
    item: str
    answered: int = 0
    na: int = 0
    passed: int = 0
    ratio_sum: float = 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.answered if self.answered else None

    @property
    def mean_ratio(self) -> float | None:
        return self.ratio_sum / self.answered if self.answered else None


def _key(c: ScoredCall, by: str) -> tuple[str, ...]:
    if by == "agent-week":
        return (c.agent_id, c.week)
    if by == "team-week":
        return (c.team, c.week)
    value = {"agent": c.agent_id, "team": c.team, "queue": c.queue, "week": c.week}.get(by)
    if value is None:
        raise ValueError(f"cannot group by {by!r} (one of {', '.join(DIMENSIONS)}, item)")
    return (value,)


def by_group(calls: Iterable[ScoredCall], by: str) -> list[GroupRow]:
    """One row per group, sorted by key; then a total row (key ``("all",)``)."""
    groups: dict[tuple[str, ...], GroupRow] = {}
    total = GroupRow(("all",))
    for c in calls:
        key = _key(c, by)
        for row in (groups.setdefault(key, GroupRow(key)), total):
            row.count += 1
            row.total += c.score
            row.fatal += int(c.fatal)
            if c.passed is not None:
                row.judged += 1
                row.passed += int(c.passed)
            for item, a in c.answers.items():
                if a.get("passed") is None:
                    continue
                counts = row.items.setdefault(item, [0, 0])
                counts[0] += int(bool(a["passed"]))
                counts[1] += 1
    return [*(groups[k] for k in sorted(groups)), total]


def by_item(calls: Iterable[ScoredCall], order: Sequence[str] = ()) -> list[ItemRow]:
    """One row per item: in ``order`` (a form's items) first, then the rest
    by name."""
    rows: dict[str, ItemRow] = defaultdict(lambda: ItemRow(""))
    for c in calls:
        for item, a in c.answers.items():
            row = rows[item]
            row.item = item
            if a.get("passed") is None:
                row.na += 1
                continue
            row.answered += 1
            row.passed += int(bool(a["passed"]))
            row.ratio_sum += float(a.get("ratio") or 0.0)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(rows.values(), key=lambda r: (rank.get(r.item, len(rank)), r.item))


class TeamsError(ValueError):
    """A teams CSV that cannot be read: ``file:line: problem``."""


def parse_teams(text: str, file: str = "<teams>") -> dict[str, str]:
    """A teams CSV (``agent_id,team``, a header line first) as agent -> team."""
    from acd.loaders.textfile import csv_records

    out: dict[str, str] = {}
    header = True
    for line, _, cells in csv_records(text, comments=True):
        if isinstance(cells, str):
            raise TeamsError(f"{file}:{line}: {cells}")
        cells = [c.strip() for c in cells]
        if header:
            header = False
            if [c.lower() for c in cells[:2]] != ["agent_id", "team"]:
                raise TeamsError(f"{file}:{line}: the first line must be the header "
                                 "agent_id,team")
            continue
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise TeamsError(f"{file}:{line}: expected two values, agent_id,team")
        if cells[0] in out:
            raise TeamsError(f"{file}:{line}: agent {cells[0]!r} is listed twice")
        out[cells[0]] = cells[1]
    return out
