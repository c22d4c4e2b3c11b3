"""The flow language's model: node types, nodes and the flow.

What a parsed flow is made of, and nothing about how it was read: the
prompt, one frozen dataclass per node type (:data:`NodeBody` is their
union), the :class:`Node` that carries a body with its name and where it
is written, and the :class:`Flow`.  The ways out of a node
(:func:`edges`, :func:`successors`) and the renaming of its references
(:func:`map_refs`, for inlined sub-flows) are here too, since they are
read off the node types alone.

The parser is :mod:`acd.ivr.parse`; the table of node types and their
fields (for the parser and the JSON Schema) is :mod:`acd.ivr.fields`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from acd.ivr.expr import Expr, Template, parse_template
from acd.ivr.hours import Hours
from acd.ivr.prompt_names import FEN, YUAN

#: the keys a caller can press
DIGITS = "0123456789*#"
#: how a say node may say its value
SAY_KINDS = ("digits", "number", "date", "time", "datetime", "money", "alpha")
#: where a lookup node looks
LOOKUP_SOURCES = ("profile", "http")
#: variables every flow has
BUILTIN_VARIABLES = ("language", "dialect")


# ------------------------------------------------------------------ prompts

PromptItem = str | Mapping[str, str]  # a sound name, or one per language


@dataclass(frozen=True, slots=True)
class Prompt:
    """One or more sound files played in a row; each may differ by language."""

    items: tuple[PromptItem, ...]

    def resolve(self, language: str, default_language: str) -> tuple[str, ...]:
        out: list[str] = []
        for item in self.items:
            if isinstance(item, str):
                out.append(item)
            else:
                out.append(item.get(language) or item.get(default_language)
                           or next(iter(item.values())))
        return tuple(out)

    def names(self) -> list[tuple[str | None, str]]:
        """(language or None, sound name) for every file the prompt may play."""
        out: list[tuple[str | None, str]] = []
        for item in self.items:
            if isinstance(item, str):
                out.append((None, item))
            else:
                out.extend(item.items())
        return out

    def __str__(self) -> str:
        return " + ".join(i if isinstance(i, str) else "/".join(i.values()) for i in self.items)


# -------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class Play:
    prompt: Prompt
    next: str
    barge_in: bool = False


@dataclass(frozen=True, slots=True)
class Say:
    say: str  # one of SAY_KINDS
    value: Template
    next: str
    barge_in: bool = False
    prompt: Prompt | None = None  # played first ("Your balance is")


@dataclass(frozen=True, slots=True)
class Menu:
    prompt: Prompt
    options: Mapping[str, str]
    timeout_s: float = 5.0
    retries: int = 2
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    on_invalid: str | None = None  # retries used up, last try a wrong key
    on_timeout: str | None = None  # retries used up, last try no key
    on_fail: str | None = None  # retries used up (either way)


@dataclass(frozen=True, slots=True)
class Input:
    prompt: Prompt
    variable: str
    next: str
    max_digits: int
    min_digits: int = 1
    timeout_s: float = 5.0
    terminator: str = "#"
    pattern: str | None = None
    retries: int = 2
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    on_fail: str | None = None


@dataclass(frozen=True, slots=True)
class SetVars:
    values: Mapping[str, Template]
    next: str


@dataclass(frozen=True, slots=True)
class Case:
    condition: Expr
    target: str


@dataclass(frozen=True, slots=True)
class Branch:
    cases: tuple[Case, ...]
    otherwise: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    source: str  # profile | http
    next: str
    save: Mapping[str, str] = field(default_factory=dict)  # variable -> field path
    url: Template | None = None
    timeout_s: float = 3.0
    on_error: str | None = None


@dataclass(frozen=True, slots=True)
class HoursNode:
    hours: Hours
    when_open: str
    when_closed: str


@dataclass(frozen=True, slots=True)
class Language:
    language: str
    next: str
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class QueueNode:
    queue: str
    priority: int = 0
    priority_expr: Expr | None = None
    attributes: Mapping[str, Template] = field(default_factory=dict)
    moh: str | None = None
    announce_every_s: float | None = None
    prompt: Prompt | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    number: Template
    prompt: Prompt | None = None


@dataclass(frozen=True, slots=True)
class Voicemail:
    mailbox: Template
    prompt: Prompt | None = None


@dataclass(frozen=True, slots=True)
class Record:
    variable: str
    next: str
    prompt: Prompt | None = None
    max_s: int = 60
    beep: bool = True
    silence_s: int | None = None
    file: Template = field(default_factory=lambda: parse_template("recordings/{call.id}"))


@dataclass(frozen=True, slots=True)
class Sms:
    template: str
    next: str


@dataclass(frozen=True, slots=True)
class Hangup:
    prompt: Prompt | None = None


@dataclass(frozen=True, slots=True)
class Goto:
    target: str


@dataclass(frozen=True, slots=True)
class SubFlow:
    flow: str  # the file, as written
    entry: str  # the sub-flow's start node (after inlining)
    next: str  # where its `return` nodes go


@dataclass(frozen=True, slots=True)
class Return:
    target: str = ""  # filled in when the sub-flow is inlined


NodeBody = (Play | Say | Menu | Input | SetVars | Branch | Lookup | HoursNode | Language
            | QueueNode | Transfer | Voicemail | Record | Sms | Hangup | Goto | SubFlow
            | Return)

#: the node types that end the flow (the call leaves the IVR)
TERMINAL = (QueueNode, Transfer, Voicemail, Hangup)
#: the node types that wait for the caller (or the PBX) and so break a loop
INTERACTIVE = (Play, Say, Menu, Input, Record)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    type: str
    body: NodeBody
    line: int
    column: int = 1
    file: str = ""
    #: (line, column) of each field, for checks that point at one
    marks: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    note: str = ""

    def mark(self, key: str) -> tuple[int, int]:
        return self.marks.get(key, (self.line, self.column))


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]
    file: str
    version: str = ""
    queues: frozenset[str] = frozenset()
    languages: tuple[str, ...] = ("en",)
    timezone: str = "UTC"
    variables: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    #: every file the flow was read from (itself and its sub-flows)
    files: tuple[str, ...] = ()
    money_unit: str = YUAN
    money_cents: str = FEN

    @property
    def default_language(self) -> str:
        return self.languages[0]


# ------------------------------------------------------------- ways out


def successors(body: NodeBody) -> list[str]:
    """The nodes a node can lead to, in a stable order."""
    return [target for _, target in edges(body)]


def edges(body: NodeBody) -> list[tuple[str, str]]:
    """(label, target) for every way out of a node (the graph's arrows)."""
    match body:
        case Play() | Say() | SetVars() | Language() | Sms() | Record():
            return [("", body.next)]
        case Goto():
            return [("", body.target)]
        case Menu():
            out = [(f"key {k}", t) for k, t in body.options.items()]
            out += [(lbl, t) for lbl, t in (("wrong key", body.on_invalid),
                                            ("no key", body.on_timeout),
                                            ("failed", body.on_fail)) if t]
            return out
        case Input():
            return [("entered", body.next)] + ([("failed", body.on_fail)]
                                               if body.on_fail else [])
        case Branch():
            out = [(c.condition.source, c.target) for c in body.cases]
            return out + ([("else", body.otherwise)] if body.otherwise else [])
        case Lookup():
            return [("found", body.next)] + ([("error", body.on_error)]
                                             if body.on_error else [])
        case HoursNode():
            return [("open", body.when_open), ("closed", body.when_closed)]
        case SubFlow():
            return [("enter", body.entry)] if body.entry else []
        case Return():
            return [("return", body.target)] if body.target else []
        case _:
            return []


def map_refs(body: NodeBody, f: Callable[[str], str]) -> NodeBody:
    """The same node with every node reference passed through ``f``."""
    def o(x: str | None) -> str | None:
        return None if x is None else f(x)

    match body:
        case Play() | Say() | SetVars() | Language() | Sms() | Record() | Lookup() \
                | Input():
            body = dataclasses.replace(body, next=f(body.next))
            if isinstance(body, Input):
                body = dataclasses.replace(body, on_fail=o(body.on_fail))
            if isinstance(body, Lookup):
                body = dataclasses.replace(body, on_error=o(body.on_error))
            return body
        case Menu():
            return dataclasses.replace(
                body, options={k: f(v) for k, v in body.options.items()},
                on_invalid=o(body.on_invalid), on_timeout=o(body.on_timeout),
                on_fail=o(body.on_fail))
        case Branch():
            return Branch(tuple(Case(c.condition, f(c.target)) for c in body.cases),
                          o(body.otherwise))
        case HoursNode():
            return HoursNode(body.hours, f(body.when_open), f(body.when_closed))
        case Goto():
            return Goto(f(body.target))
        case SubFlow():
            return SubFlow(body.flow, f(body.entry) if body.entry else "", f(body.next))
        case _:
            return body

