"""What reading a profile file gives: the good rows, and every problem
as an :class:`Issue` naming the file, the line, the field and what is wrong::

    customers.csv:14: vip_level 'gold' is not a whole number 0-9

or a :class:`ProfileFileError` for a file that cannot be read as a whole.
The CSV and YAML readers collect into a :class:`Collector`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.textfile import clip

P = TypeVar("P", CustomerProfile, AgentProfile)


class Issue(NamedTuple):
    """One problem in a file: where, which field, what (a full sentence).
    A named tuple: a file whose every row is wrong makes hundreds of
    thousands of them, and a tuple is made three times faster than a frozen
    dataclass."""

    file: str
    line: int
    field: str  # the column or field; "" when it is about the whole row or file
    problem: str  # plain words, e.g. "vip_level 'gold' is not a whole number 0-9"
    warning: bool = False  # warnings do not reject the row

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {'warning: ' if self.warning else ''}{self.problem}"


@dataclass(frozen=True, slots=True)
class Row(Generic[P]):
    """A good row: the profile, its line, and the fields the file gave for it."""

    profile: P
    line: int
    fields: frozenset[str]


@dataclass(slots=True)
class ParseResult(Generic[P]):
    """Good rows (a later duplicate replaces an earlier one) and the problems."""

    file: str
    rows: list[Row[P]] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    rejected: int = 0  # rows with at least one error; none of their data is kept

    @property
    def profiles(self) -> list[P]:
        return [r.profile for r in self.rows]

    @property
    def issues(self) -> list[Issue]:
        """Errors and warnings in file order."""
        return sorted(self.errors + self.warnings, key=lambda i: i.line)


class ProfileFileError(ValueError):
    """The file cannot be read as a whole; nothing in it was taken."""

    def __init__(self, file: str, line: int, problem: str, column: int = 0) -> None:
        problem = clip(problem)  # a value quoted from the file may be huge
        where = f"{file}:{line}:{column}" if line and column else f"{file}:{line}" if line \
            else file
        super().__init__(f"{where}: {problem}")
        self.issue = Issue(file, line, "", problem)


@dataclass(slots=True)
class Collector(Generic[P]):
    """The rows and problems of one file as a reader goes through it: a later
    row with the key of an earlier one replaces it, with a warning."""

    result: ParseResult[P]
    key: Callable[[P], str]
    key_field: str
    seen: dict[str, Row[P]] = field(default_factory=dict)

    def error(self, line: int, fld: str, problem: str) -> None:
        self.result.errors.append(Issue(self.result.file, line, fld, problem))

    def keep(self, row: Row[P]) -> None:
        k = self.key(row.profile)
        earlier = self.seen.get(k)
        if earlier is not None:
            self.result.warnings.append(Issue(
                self.result.file, row.line, self.key_field,
                f"{self.key_field} {k!r} also on line {earlier.line}; this later row wins",
                warning=True))
            del self.seen[k]  # the row moves to its later place
        self.seen[k] = row

    def finish(self) -> ParseResult[P]:
        self.result.rows = list(self.seen.values())
        return self.result
