"""A call's score from a reviewer's answers on a form (docs/quality.md).

Answers are texts, as a command line, a YAML file or an HTML form gives
them: a yes/no item takes ``yes``/``no`` (also ``y``/``n``, ``pass``/``fail``,
``true``/``false``, ``1``/``0``), a scale item a whole number ``0..max``, and
an item with ``na: true`` also ``na`` (or ``n/a``).

The score, 0-100: each answered item earns ``weight * answer / max`` of its
``weight``; N/A items are left out of both sums; ``100 * earned / possible``.
A fatal item failed (``no``, or ``0`` on a scale) makes the score 0 whatever
the rest.  Every item must be answered; every problem is listed at once
(:class:`AnswerError`).  Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acd.qa.forms import Form, Item

__all__ = ["AnswerError", "ItemResult", "Score", "check_answers", "score"]

YES = frozenset({"yes", "y", "pass", "true", "1"})
NO = frozenset({"no", "n", "fail", "false", "0"})
NA = frozenset({"na", "n/a"})
#: a comment's length at most
COMMENT_MAX = 4000


class AnswerError(ValueError):
    """Answers that do not fit the form: ``problems``, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's answer: ``value`` None for N/A."""

    item: str
    answer: str
    value: int | None
    ratio: float | None
    passed: bool | None

    def as_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "ratio": self.ratio, "passed": self.passed}


@dataclass(frozen=True, slots=True)
class Score:
    form: str
    form_version: str
    score: float
    #: a fatal item was failed (the score is 0)
    fatal: bool
    items: tuple[ItemResult, ...]
    #: None when the form has no pass mark
    passed: bool | None

    def answers_json(self) -> dict[str, dict[str, Any]]:
        """What the store keeps: per item its answer, ratio and pass, so
        reports need not read the form again."""
        return {r.item: r.as_json() for r in self.items}


def _value(item: Item, raw: str) -> tuple[int | None, str | None]:
    """(value, None) or (None, problem); (None, None) for N/A."""
    text = raw.strip().lower()
    if text in NA:
        return (None, None) if item.na else \
            (None, f"item {item.id!r}: N/A is not allowed (the form has no `na: true` for it)")
    if item.kind == "yes_no":
        if text in YES:
            return 1, None
        if text in NO:
            return 0, None
        return None, f"item {item.id!r}: answer yes or no{' or na' if item.na else ''}, " \
                     f"not {raw!r}"
    try:
        v = int(text)
    except ValueError:
        v = -1
    if 0 <= v <= item.max:
        return v, None
    return None, f"item {item.id!r}: answer a whole number from 0 to {item.max}" \
                 f"{' or na' if item.na else ''}, not {raw!r}"


def check_answers(form: Form, answers: Mapping[str, str]) -> list[str]:
    """The problems of ``answers`` on ``form`` (empty: they fit)."""
    problems: list[str] = []
    known = {i.id for i in form.items}
    for key in answers:
        if key not in known:
            problems.append(f"item {key!r} is not on form {form.name!r} "
                            f"(its items: {', '.join(sorted(known))})")
    for item in form.items:
        if item.id not in answers:
            problems.append(f"item {item.id!r}: no answer")
            continue
        _, problem = _value(item, answers[item.id])
        if problem is not None:
            problems.append(problem)
    return problems


def score(form: Form, answers: Mapping[str, str]) -> Score:
    """The score of ``answers`` on ``form``; :class:`AnswerError` lists every
    problem."""
    problems = check_answers(form, answers)
    if problems:
        raise AnswerError(problems)
    results: list[ItemResult] = []
    earned = possible = 0.0
    fatal = False
    for item in form.items:
        raw = answers[item.id].strip()
        value, _ = _value(item, raw)
        if value is None:
            results.append(ItemResult(item.id, "na", None, None, None))
            continue
        ratio = value / item.max
        earned += item.weight * ratio
        possible += item.weight
        if item.fatal and value == 0:
            fatal = True
        answer = ("yes" if value else "no") if item.kind == "yes_no" else str(value)
        results.append(ItemResult(item.id, answer, value, ratio, value >= item.pass_at))
    if possible == 0:
        raise AnswerError(["every item is N/A: there is nothing to score"])
    total = 0.0 if fatal else round(100.0 * earned / possible, 2)
    passed = None if form.pass_mark is None else (not fatal and total >= form.pass_mark)
    return Score(form.name, form.version, total, fatal, tuple(results), passed)
