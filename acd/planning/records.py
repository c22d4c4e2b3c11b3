"""A center's call records: one row per call that reached a queue, as a
center exports them (see docs/planning.md, "Replaying a center's call
records").  Pure data: the CSV is read and written by
:mod:`acd.loaders.records_csv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ABANDONED", "ANSWERED", "OUTCOMES", "CenterRecord"]

ANSWERED = "answered"
ABANDONED = "abandoned"
OUTCOMES = (ANSWERED, ABANDONED)


@dataclass(frozen=True, slots=True)
class CenterRecord:
    """One call: ``arrival`` (naive local time it entered the queue), its
    queue, outcome and what is known of it.

    ``wait_s``: answered: time to answer; abandoned: = ``abandon_s``.
    ``handle_s``: talk time (answered calls: required).  ``wrap_s``: after-call
    work when the export has it.  ``abandon_s``: abandoned calls: time from
    queue entry to hang-up.
    """

    arrival: datetime
    queue: str
    outcome: str
    priority: int = 0
    wait_s: float | None = None
    handle_s: float | None = None
    wrap_s: float | None = None
    abandon_s: float | None = None
    number: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    line: int = 0

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWERED

    @property
    def waited_s(self) -> float:
        """How long the caller waited: to the answer, or to hanging up."""
        if self.outcome == ANSWERED:
            return self.wait_s or 0.0
        if self.abandon_s is not None:
            return self.abandon_s
        return self.wait_s or 0.0
