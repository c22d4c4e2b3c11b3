"""Table-driven finite state machines.

A machine is a mapping ``(state, trigger) -> next state``.  Anything not in
the table is illegal and raises :class:`IllegalTransition`; there is no
implicit "stay" transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Generic, TypeVar

from acd.core.errors import CoreError

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=Enum)


class IllegalTransition(CoreError):
    """A trigger arrived in a state whose table has no row for it."""

    def __init__(self, machine: str, subject: str, state: Enum, trigger: Enum) -> None:
        super().__init__(
            f"{machine} {subject}: '{trigger.value}' is not allowed in state '{state.value}'"
        )
        self.machine = machine
        self.subject = subject
        self.state = state
        self.trigger = trigger


class Table(Generic[S, T]):
    """An immutable transition table."""

    __slots__ = ("_name", "_rows")

    def __init__(self, name: str, rows: Mapping[tuple[S, T], S]) -> None:
        self._name = name
        self._rows = dict(rows)

    @property
    def name(self) -> str:
        return self._name

    def next(self, subject: str, state: S, trigger: T) -> S:
        try:
            return self._rows[(state, trigger)]
        except KeyError:
            raise IllegalTransition(self._name, subject, state, trigger) from None

    def allows(self, state: S, trigger: T) -> bool:
        return (state, trigger) in self._rows

    def rows(self) -> dict[tuple[S, T], S]:
        return dict(self._rows)
