"""IVR flows written in YAML: the language and its loader.

Every error names the file, line and column.  The loader walks PyYAML's node
graph (``yaml.compose``) rather than plain data so that each value keeps its
position in the file.  Nothing from a file is ever evaluated: conditions are
parsed into a checked tree (:mod:`acd.ivr.expr`).

The language is documented in ``docs/ivr-flows.md``; :data:`NODE_TYPES` is
the one table of node types and their fields, from which the loader checks
field names and :mod:`acd.ivr.schema` writes the JSON Schema for editors.

Structural errors (bad YAML, unknown fields, a reference to a missing node,
a bad condition) raise :class:`FlowError`; the graph checks (unreachable
nodes, dead ends, loops, undefined variables, unknown queues, missing sound
files) are in :mod:`acd.ivr.checks`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from acd.ivr.expr import NAME_RE, Expr, ExprError, Template, parse_expr, parse_template
from acd.ivr.hours import DAYS, Hours, HoursError, parse_date, parse_days, parse_ranges, zone
from acd.loaders.yamlpos import Reader, YamlError, read_text

if TYPE_CHECKING:
    from acd.ivr.checks import Problem

DIGITS = "0123456789*#"
SAY_KINDS = ("digits", "number", "date", "time", "datetime", "money", "alpha")
LOOKUP_SOURCES = ("profile", "http")
#: variables every flow has
BUILTIN_VARIABLES = ("language", "dialect")


class FlowError(YamlError):
    """A flow file is wrong; the message says where and what."""


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
    money_unit: str = "acd/yuan"
    money_cents: str = "acd/fen"

    @property
    def default_language(self) -> str:
        return self.languages[0]


# ------------------------------------------------------------ the type table


@dataclass(frozen=True, slots=True)
class FieldSpec:
    kind: str  # ref prompt text template expr int num bool options cases vars attrs ...
    required: bool = False
    doc: str = ""
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()


def _f(kind: str, doc: str, required: bool = False, lo: float = 0, hi: float = 0,
       choices: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(kind, required, doc, lo, hi, choices)


_PROMPT_OPT = _f("prompt", "sound file(s) played first")

NODE_TYPES: dict[str, tuple[str, dict[str, FieldSpec]]] = {
    "play": ("Play sound files; with barge_in a key interrupts and is kept for the next menu.", {
        "prompt": _f("prompt", "sound file name(s), or one per language", True),
        "next": _f("ref", "the node after it", True),
        "barge_in": _f("bool", "a key interrupts the prompt (type-ahead into the next menu)"),
    }),
    "say": ("Say a value in the call's language.", {
        "say": _f("choice", "how to say it", True, choices=SAY_KINDS),
        "value": _f("template", "the value, e.g. '{balance}' (a date as 2026-11-23, a time "
                    "as 14:30, money as 12.50)", True),
        "next": _f("ref", "the node after it", True),
        "prompt": _PROMPT_OPT,
        "barge_in": _f("bool", "a key interrupts"),
    }),
    "menu": ("Play a prompt and take one key.", {
        "prompt": _f("prompt", "the menu prompt", True),
        "options": _f("options", "key (0-9, *, #) -> node", True),
        "timeout": _f("num", "seconds to wait for a key after the prompt", lo=0.5, hi=60),
        "retries": _f("int", "tries after the first before giving up", lo=0, hi=10),
        "invalid_prompt": _f("prompt", "played after a wrong key"),
        "timeout_prompt": _f("prompt", "played after no key"),
        "on_invalid": _f("ref", "when the retries are used up and the last key was wrong"),
        "on_timeout": _f("ref", "when the retries are used up and the last try had no key"),
        "on_fail": _f("ref", "when the retries are used up (either way)"),
    }),
    "input": ("Collect digits into a variable.", {
        "prompt": _f("prompt", "the prompt", True),
        "variable": _f("name", "the variable that gets the digits", True),
        "max_digits": _f("int", "at most this many digits", True, lo=1, hi=64),
        "min_digits": _f("int", "at least this many digits", lo=1, hi=64),
        "next": _f("ref", "the node after a valid entry", True),
        "timeout": _f("num", "seconds to wait for each digit", lo=0.5, hi=60),
        "terminator": _f("choice", "the key that ends the entry early", choices=("#",)),
        "pattern": _f("regex", "a regular expression the whole entry must match"),
        "retries": _f("int", "tries after the first before giving up", lo=0, hi=10),
        "invalid_prompt": _f("prompt", "played after an entry that does not fit"),
        "timeout_prompt": _f("prompt", "played after no entry"),
        "on_fail": _f("ref", "when the retries are used up"),
    }),
    "set": ("Set variables (text templates).", {
        "vars": _f("vars", "variable -> value (a template such as '{caller.vip}')", True),
        "next": _f("ref", "the node after it", True),
    }),
    "branch": ("Go to the first case whose condition holds.", {
        "cases": _f("cases", "a list of {if: condition, goto: node}", True),
        "else": _f("ref", "when no case holds"),
    }),
    "lookup": ("Look data up: the caller's profile, or an HTTP service (JSON).", {
        "source": _f("choice", "profile or http", True, choices=LOOKUP_SOURCES),
        "url": _f("template", "for http: the address, e.g. "
                  "'http://crm/balance?msisdn={caller.number}'"),
        "timeout": _f("num", "seconds before giving up", lo=0.1, hi=30),
        "save": _f("save", "variable -> field of the answer (dotted path, e.g. data.left_mb)"),
        "next": _f("ref", "the node after a successful lookup", True),
        "on_error": _f("ref", "when the lookup fails, times out or finds nothing"),
    }),
    "hours": ("Branch on opening hours and holidays in a time zone.", {
        "timezone": _f("text", "an IANA time zone, e.g. Asia/Shanghai", True),
        "open": _f("week", "days -> time ranges, e.g. mon-fri: '08:00-22:00'", True),
        "holidays": _f("dates", "dates closed all day (2026-10-01)"),
        "special": _f("special", "date -> time ranges that day, instead of the week's"),
        "when_open": _f("ref", "the node when open", True),
        "when_closed": _f("ref", "the node when closed", True),
    }),
    "language": ("Set the language (prompts, SAY) and dialect (routing) of the call.", {
        "language": _f("text", "a language code from the flow's languages", True),
        "dialect": _f("text", "the caller's dialect for routing (e.g. cantonese)"),
        "next": _f("ref", "the node after it", True),
    }),
    "queue": ("Hand the call to the ACD.", {
        "queue": _f("text", "the queue", True),
        "priority": _f("priority", "0-100, or a condition-style expression such as "
                       "'caller.vip * 10'"),
        "attributes": _f("attrs", "routing attributes (name -> template)"),
        "moh": _f("text", "the music-on-hold class"),
        "announce_every": _f("num", "seconds between position announcements (0 = never)",
                             lo=0, hi=3600),
        "prompt": _PROMPT_OPT,
    }),
    "transfer": ("Transfer the call to an outside number.", {
        "number": _f("template", "the number to dial", True),
        "prompt": _PROMPT_OPT,
    }),
    "voicemail": ("Leave the caller in a voicemail box.", {
        "mailbox": _f("template", "mailbox@context", True),
        "prompt": _PROMPT_OPT,
    }),
    "record": ("Record the caller (a message, a complaint) into a file.", {
        "variable": _f("name", "the variable that gets the file name", True),
        "next": _f("ref", "the node after it", True),
        "prompt": _PROMPT_OPT,
        "max_seconds": _f("int", "longest recording", lo=1, hi=600),
        "beep": _f("bool", "beep before recording (default true)"),
        "silence": _f("int", "stop after this many seconds of silence", lo=1, hi=60),
        "file": _f("template", "file name without extension (default recordings/{call.id})"),
    }),
    "sms": ("Mark an SMS to send after the call ends (see docs/sms.md).", {
        "template": _f("text", "the SMS template", True),
        "next": _f("ref", "the node after it", True),
    }),
    "hangup": ("End the call.", {
        "prompt": _f("prompt", "played before hanging up"),
    }),
    "goto": ("Go to another node.", {
        "target": _f("ref", "the node", True),
    }),
    "subflow": ("Run another flow file, then go on at next (its return nodes come back).", {
        "flow": _f("text", "the flow file, relative to this one", True),
        "next": _f("ref", "where the sub-flow's return nodes go", True),
    }),
    "return": ("Leave a sub-flow (back to the subflow node's next).", {}),
}
COMMON_FIELDS = {"type": _f("choice", "the node type", True, choices=tuple(NODE_TYPES)),
                 "note": _f("text", "a note for designers (shown in the graph)")}
TOP_FIELDS: dict[str, FieldSpec] = {
    "flow": _f("text", "the flow's name", True),
    "start": _f("ref", "the first node", True),
    "nodes": _f("nodes", "node name -> node", True),
    "version": _f("label", "a version label"),
    "description": _f("text", "what the flow is for"),
    "languages": _f("list", "the languages prompts exist in; the first is the default"),
    "timezone": _f("text", "time zone of now.* in conditions (default UTC)"),
    "variables": _f("vars", "variables and their starting values"),
    "money": _f("money", "sound files for saying money: {unit: acd/yuan, cents: acd/fen}"),
}


# ---------------------------------------------------------------- reading


class _Reader(Reader):
    def __init__(self, file: str) -> None:
        super().__init__(file, FlowError)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _NodeParser:
    """Reads one node's fields, remembering where each one is."""

    def __init__(self, r: _Reader, name: str, kind: str,
                 fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> None:
        self.r = r
        self.name = name
        self.kind = kind
        self.fields = fields
        self.marks: dict[str, tuple[int, int]] = {k: _mark(v) for k, (_, v) in fields.items()}

    def what(self, key: str) -> str:
        return f"node {self.name!r}: {key}"

    def has(self, key: str) -> bool:
        return key in self.fields

    def node(self, key: str) -> yaml.Node:
        return self.fields[key][1]

    def err(self, key: str, message: str) -> FlowError:
        return self.r.err(self.node(key), f"node {self.name!r}: {message}")  # type: ignore[return-value]

    def text(self, key: str) -> str:
        return self.r.string(self.node(key), self.what(key))

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def ref(self, key: str) -> str:
        return self.text(key)

    def opt_ref(self, key: str) -> str | None:
        return self.ref(key) if self.has(key) else None

    def spec(self, key: str) -> FieldSpec:
        return NODE_TYPES[self.kind][1][key]

    def num(self, key: str, default: float) -> float:
        if not self.has(key):
            return default
        s = self.spec(key)
        return self.r.number(self.node(key), self.what(key), s.lo, s.hi)

    def int(self, key: str, default: int) -> int:
        if not self.has(key):
            return default
        s = self.spec(key)
        return self.r.integer(self.node(key), self.what(key), int(s.lo), int(s.hi))

    def bool(self, key: str, default: bool) -> bool:
        return self.r.boolean(self.node(key), self.what(key)) if self.has(key) else default

    def choice(self, key: str) -> str:
        value = self.text(key)
        choices = self.spec(key).choices
        if value not in choices:
            raise self.err(key, f"{key} {value!r} is not one of: {', '.join(choices)}")
        return value

    def varname(self, key: str) -> str:
        return _varname(self.r, self.node(key), self.what(key))

    def prompt(self, key: str) -> Prompt:
        return _prompt(self.r, self.node(key), self.what(key))

    def opt_prompt(self, key: str) -> Prompt | None:
        return self.prompt(key) if self.has(key) else None

    def template(self, key: str) -> Template:
        return _template(self.r, self.node(key), self.what(key))

    def expr(self, node: yaml.Node, what: str) -> Expr:
        return _expr(self.r, node, what)


def _varname(r: _Reader, node: yaml.Node, what: str) -> str:
    name = r.string(node, what)
    if not NAME_RE.match(name):
        raise r.err(node, f"{what}: {name!r} is not a variable name "
                          "(letters, digits and _, not starting with a digit)")
    if name in ("caller", "now", "call"):
        raise r.err(node, f"{what}: {name!r} is a reserved name")
    return name


def _scalar_text(r: _Reader, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise r.err(node, f"{what} must be a text")
    return str(node.value)


def _template(r: _Reader, node: yaml.Node, what: str) -> Template:
    text = _scalar_text(r, node, what)
    try:
        return parse_template(text)
    except ExprError as exc:
        raise _at(r, node, exc.column, f"{what}: {exc}") from None


def _expr(r: _Reader, node: yaml.Node, what: str) -> Expr:
    text = _scalar_text(r, node, what)
    try:
        return parse_expr(text)
    except ExprError as exc:
        raise _at(r, node, exc.column, f"{what}: {exc}") from None


def _at(r: _Reader, node: yaml.Node, column: int, message: str) -> FlowError:
    """An error at a column inside a scalar (plain or quoted on one line)."""
    line, col = _mark(node)
    if isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line:
        col += column - 1 + (1 if node.style in ("'", '"') else 0)
    return FlowError(r.file, line, col, message)


def _prompt(r: _Reader, node: yaml.Node, what: str) -> Prompt:
    items: list[PromptItem] = []
    values = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not values:
        raise r.err(node, f"{what}: the list of prompts is empty")
    for v in values:
        if isinstance(v, yaml.MappingNode):
            by_lang: dict[str, str] = {}
            for lang, (_, vn) in r.mapping(v, f"{what} (language -> sound file)").items():
                by_lang[lang] = _sound(r, vn, f"{what} ({lang})")
            if not by_lang:
                raise r.err(v, f"{what}: no sound file for any language")
            items.append(by_lang)
        else:
            items.append(_sound(r, v, what))
    return Prompt(tuple(items))


def _sound(r: _Reader, node: yaml.Node, what: str) -> str:
    name = r.string(node, what)
    if any(c in name for c in " ,|&\n\"'") or name.startswith("/") or ".." in name:
        raise r.err(node, f"{what}: {name!r} is not a sound file name (no spaces, quotes, "
                          "commas, '&', '|', '..' or leading '/'; no extension needed)")
    return name


def _parse_body(p: _NodeParser) -> NodeBody:
    r, name, kind = p.r, p.name, p.kind
    if kind == "play":
        return Play(p.prompt("prompt"), p.ref("next"), p.bool("barge_in", False))
    if kind == "say":
        return Say(p.choice("say"), p.template("value"), p.ref("next"),
                   p.bool("barge_in", False), p.opt_prompt("prompt"))
    if kind == "menu":
        opt_nodes = r.mapping(p.node("options"), p.what("options"))
        if not opt_nodes:
            raise p.err("options", "options is empty")
        options: dict[str, str] = {}
        for key, (knode, vnode) in opt_nodes.items():
            if len(key) != 1 or key not in DIGITS:
                raise r.err(knode, f"node {name!r}: option key {key!r} is not one of 0-9, "
                                   "* or # (quote it: \"1\")")
            options[key] = r.string(vnode, f"node {name!r}: option {key!r}")
        return Menu(p.prompt("prompt"), options, p.num("timeout", 5.0), p.int("retries", 2),
                    p.opt_prompt("invalid_prompt"), p.opt_prompt("timeout_prompt"),
                    p.opt_ref("on_invalid"), p.opt_ref("on_timeout"), p.opt_ref("on_fail"))
    if kind == "input":
        max_d = p.int("max_digits", 1)
        min_d = p.int("min_digits", 1)
        if min_d > max_d:
            raise p.err("min_digits", f"min_digits {min_d} is more than max_digits {max_d}")
        pattern = p.opt_text("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise p.err("pattern", f"pattern is not a valid regular expression: {exc}") \
                    from None
        return Input(p.prompt("prompt"), p.varname("variable"), p.ref("next"), max_d, min_d,
                     p.num("timeout", 5.0), p.choice("terminator") if p.has("terminator")
                     else "#", pattern, p.int("retries", 2), p.opt_prompt("invalid_prompt"),
                     p.opt_prompt("timeout_prompt"), p.opt_ref("on_fail"))
    if kind == "set":
        values = _vars(r, p.node("vars"), p.what("vars"), p.marks)
        if not values:
            raise p.err("vars", "vars is empty")
        return SetVars(values, p.ref("next"))
    if kind == "branch":
        cases: list[Case] = []
        items = r.sequence(p.node("cases"), p.what("cases"))
        if not items:
            raise p.err("cases", "cases is empty")
        for i, item in enumerate(items):
            what = f"node {name!r}: case {i + 1}"
            f = r.mapping(item, what)
            r.known(f, what, {"if", "goto"}, {"if", "goto"}, item)
            cond = p.expr(f["if"][1], f"{what}: if")
            p.marks[f"cases.{i}"] = _mark(f["if"][1])
            p.marks[f"cases.{i}.goto"] = _mark(f["goto"][1])
            cases.append(Case(cond, r.string(f["goto"][1], f"{what}: goto")))
        return Branch(tuple(cases), p.opt_ref("else"))
    if kind == "lookup":
        source = p.choice("source")
        url = p.template("url") if p.has("url") else None
        if source == "http" and url is None:
            raise r.err(p.fields["source"][1], f"node {name!r}: an http lookup needs a 'url'")
        if source == "profile" and url is not None:
            raise p.err("url", "a profile lookup takes no url (it looks up the caller's "
                               "number in the profile store)")
        if url is not None and not url.source.startswith(("http://", "https://")):
            raise p.err("url", f"url {url.source!r} must start with http:// or https://")
        save: dict[str, str] = {}
        if p.has("save"):
            for var, (knode, vnode) in r.mapping(p.node("save"), p.what("save")).items():
                _varname(r, knode, p.what("save"))
                path = r.string(vnode, f"node {name!r}: save {var!r}")
                if not all(NAME_RE.match(s) or s.isdigit() for s in path.split(".")):
                    raise r.err(vnode, f"node {name!r}: save {var!r}: {path!r} is not a "
                                       "field path like balance or data.left_mb")
                save[var] = path
                p.marks[f"save.{var}"] = _mark(knode)
        return Lookup(source, p.ref("next"), save, url, p.num("timeout", 3.0),
                      p.opt_ref("on_error"))
    if kind == "hours":
        return HoursNode(_hours(p), p.ref("when_open"), p.ref("when_closed"))
    if kind == "language":
        return Language(p.text("language"), p.ref("next"), p.opt_text("dialect"))
    if kind == "queue":
        prio, prio_expr = 0, None
        if p.has("priority"):
            pn = p.node("priority")
            if isinstance(pn, yaml.ScalarNode) and pn.value.strip().lstrip("-").isdigit():
                prio = r.integer(pn, p.what("priority"), 0, 100)
            else:
                prio_expr = p.expr(pn, p.what("priority"))
        attrs: dict[str, Template] = {}
        if p.has("attributes"):
            for key, (knode, vnode) in r.mapping(p.node("attributes"),
                                                 p.what("attributes")).items():
                if not NAME_RE.match(key):
                    raise r.err(knode, f"node {name!r}: attribute name {key!r} is not a name")
                attrs[key] = _template(r, vnode, f"node {name!r}: attribute {key!r}")
        every = p.num("announce_every", -1.0) if p.has("announce_every") else None
        if every is not None and 0 < every < 10:
            raise p.err("announce_every", "announce_every must be 0 (never) or at least 10 "
                                          "seconds")
        return QueueNode(p.text("queue"), prio, prio_expr, attrs, p.opt_text("moh"), every,
                         p.opt_prompt("prompt"))
    if kind == "transfer":
        number = p.template("number")
        if number.constant and not re.fullmatch(r"[0-9]{2,32}", number.source):
            raise p.err("number", f"number {number.source!r} is not a phone number (2 to 32 "
                                  "digits: acd-transfer's _X. pattern)")
        return Transfer(number, p.opt_prompt("prompt"))
    if kind == "voicemail":
        return Voicemail(p.template("mailbox"), p.opt_prompt("prompt"))
    if kind == "record":
        return Record(p.varname("variable"), p.ref("next"), p.opt_prompt("prompt"),
                      p.int("max_seconds", 60), p.bool("beep", True),
                      p.int("silence", 0) or None,
                      p.template("file") if p.has("file") else parse_template(
                          "recordings/{call.id}"))
    if kind == "sms":
        return Sms(p.text("template"), p.ref("next"))
    if kind == "hangup":
        return Hangup(p.opt_prompt("prompt"))
    if kind == "goto":
        return Goto(p.ref("target"))
    if kind == "subflow":
        return SubFlow(p.text("flow"), "", p.ref("next"))
    return Return()


def _vars(r: _Reader, node: yaml.Node, what: str,
          marks: dict[str, tuple[int, int]] | None = None) -> dict[str, Template]:
    out: dict[str, Template] = {}
    for key, (knode, vnode) in r.mapping(node, what).items():
        _varname(r, knode, what)
        if not isinstance(vnode, yaml.ScalarNode):
            raise r.err(vnode, f"{what}: {key!r} must be a text or a number")
        out[key] = _template(r, vnode, f"{what}: {key!r}")
        if marks is not None:
            marks[f"vars.{key}"] = _mark(knode)
    return out


def _hours(p: _NodeParser) -> Hours:
    r = p.r
    tz_name = p.text("timezone")
    try:
        zone(tz_name)
    except HoursError as exc:
        raise p.err("timezone", str(exc)) from None
    week: list[tuple[tuple[int, int], ...]] = [()] * 7
    seen: dict[int, str] = {}
    for days, (knode, vnode) in r.mapping(p.node("open"), p.what("open")).items():
        try:
            numbers = parse_days(days)
            ranges = parse_ranges(r.string(vnode, f"node {p.name!r}: open {days!r}"))
        except HoursError as exc:
            raise r.err(knode if "day" in str(exc) or "range like mon" in str(exc)
                        else vnode, f"node {p.name!r}: open: {exc}") from None
        for d in numbers:
            if d in seen:
                raise r.err(knode, f"node {p.name!r}: open: {DAYS[d]} is given twice "
                                   f"({seen[d]!r} and {days!r})")
            seen[d] = days
            week[d] = ranges
    holidays: set[Any] = set()
    if p.has("holidays"):
        for item in r.sequence(p.node("holidays"), p.what("holidays")):
            try:
                holidays.add(parse_date(r.string(item, p.what("holidays"))))
            except HoursError as exc:
                raise r.err(item, f"node {p.name!r}: holidays: {exc}") from None
    special: dict[Any, tuple[tuple[int, int], ...]] = {}
    if p.has("special"):
        for day, (knode, vnode) in r.mapping(p.node("special"), p.what("special")).items():
            try:
                special[parse_date(day)] = parse_ranges(r.string(vnode, p.what("special")))
            except HoursError as exc:
                raise r.err(knode, f"node {p.name!r}: special: {exc}") from None
    return Hours(tz_name, tuple(week), frozenset(holidays), special or None)


# ---------------------------------------------------------- graph helpers


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


def _map_refs(body: NodeBody, f: Callable[[str], str]) -> NodeBody:
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


def _ref_marks(node: Node) -> dict[str, tuple[int, int]]:
    """Where each reference of a node is written, by target name."""
    out: dict[str, tuple[int, int]] = {}
    for key in ("next", "target", "on_fail", "on_invalid", "on_timeout", "on_error",
                "else", "when_open", "when_closed"):
        if key in node.marks:
            out.setdefault(key, node.marks[key])
    return out


# ----------------------------------------------------------------- loading


def parse_flow(text: str, file: str = "<flow>", _stack: tuple[str, ...] = ()) -> Flow:
    """Parse a flow (and its sub-flows); raises FlowError naming file, line and column.

    Unknown queues are a check (:func:`acd.ivr.checks.check_flow`), reported
    by :func:`load_flow`.
    """
    r = _Reader(file)
    root = r.compose(text)
    top = r.mapping(root, "the flow file")
    for key, (knode, _) in top.items():
        if key not in TOP_FIELDS:
            raise r.err(knode, f"unknown top-level key {key!r} "
                               f"(keys: {', '.join(TOP_FIELDS)})")
    for key in ("flow", "start", "nodes"):
        if key not in top:
            raise r.err(root, f"the flow file needs a top-level {key!r}")
    name = r.string(top["flow"][1], "flow")
    start_node = top["start"][1]
    start = r.string(start_node, "start")
    version = _scalar_text(r, top["version"][1], "version") if "version" in top else ""
    description = r.string(top["description"][1], "description") \
        if "description" in top else ""
    languages: tuple[str, ...] = ("en",)
    if "languages" in top:
        langs = r.strings(top["languages"][1], "languages")
        if not langs:
            raise r.err(top["languages"][1], "languages is empty")
        if len(set(langs)) != len(langs):
            raise r.err(top["languages"][1], "languages lists a language twice")
        languages = tuple(langs)
    timezone = "UTC"
    if "timezone" in top:
        timezone = r.string(top["timezone"][1], "timezone")
        try:
            zone(timezone)
        except HoursError as exc:
            raise r.err(top["timezone"][1], str(exc)) from None
    variables: dict[str, str] = {}
    if "variables" in top:
        for key, tmpl in _vars(r, top["variables"][1], "variables").items():
            if not tmpl.constant:
                raise r.err(top["variables"][1], f"variables: {key!r} must be a plain "
                                                 "starting value, not a template")
            variables[key] = tmpl.source
    money_unit, money_cents = "acd/yuan", "acd/fen"
    if "money" in top:
        m = r.mapping(top["money"][1], "money")
        r.known(m, "money", {"unit", "cents"})
        if "unit" in m:
            money_unit = _sound(r, m["unit"][1], "money: unit")
        if "cents" in m:
            money_cents = _sound(r, m["cents"][1], "money: cents")

    nodes: dict[str, Node] = {}
    nodes_map = r.mapping(top["nodes"][1], "nodes")
    if not nodes_map:
        raise r.err(top["nodes"][1], "nodes is empty")
    for nname, (knode, vnode) in nodes_map.items():
        if "/" in nname:
            raise r.err(knode, f"node name {nname!r}: '/' is kept for sub-flow nodes")
        nodes[nname] = _parse_node(r, nname, knode, vnode)
    if start not in nodes:
        raise r.err(start_node, f"start node {start!r} is not defined")

    # every reference must name a node
    for node in nodes.values():
        for label, target in edges(node.body):
            if target not in nodes:
                line, col = _find_ref(node, target)
                hint = _closest(target, nodes)
                where = f" ({label})" if label and len(label) < 30 else ""
                raise FlowError(file, line, col, f"node {node.name!r} goes to {target!r}"
                                f"{where}, which is not defined{hint}")
        if isinstance(node.body, Language) and node.body.language not in languages:
            line, col = node.mark("language")
            raise FlowError(file, line, col, f"node {node.name!r}: language "
                            f"{node.body.language!r} is not in the flow's languages "
                            f"({', '.join(languages)})")

    # sub-flows: read and inline them under "<node>/"
    if any(isinstance(n.body, SubFlow) for n in nodes.values()):
        nodes = _inline_subflows(file, nodes, variables, (*_stack, _key(file)), languages)
    files = [file, *sorted({n.file for n in nodes.values() if n.file and n.file != file})]
    if not _stack:
        for node in nodes.values():
            if isinstance(node.body, Return) and not node.body.target:
                raise FlowError(node.file, node.line, node.column,
                                f"node {node.name!r}: return outside a sub-flow (use hangup, "
                                "or run this file as a subflow)")
    queues = frozenset(n.body.queue for n in nodes.values() if isinstance(n.body, QueueNode))
    return Flow(name=name, start=start, nodes=nodes, file=file, version=version,
                queues=queues, languages=languages, timezone=timezone, variables=variables,
                description=description, files=tuple(files), money_unit=money_unit,
                money_cents=money_cents)


def _key(file: str) -> str:
    try:
        return str(Path(file).resolve())
    except OSError:
        return file


def _find_ref(node: Node, target: str) -> tuple[int, int]:
    body = node.body
    if isinstance(body, Menu):
        for k, t in body.options.items():
            if t == target:
                return node.marks.get(f"options.{k}", node.mark("options"))
    if isinstance(body, Branch):
        for i, c in enumerate(body.cases):
            if c.target == target:
                return node.mark(f"cases.{i}.goto")
    for key, mark in _ref_marks(node).items():
        if getattr(body, {"else": "otherwise"}.get(key, key), None) == target:
            return mark
    return node.line, node.column


def _closest(name: str, nodes: Mapping[str, Node]) -> str:
    import difflib
    best = difflib.get_close_matches(name, list(nodes), n=1)
    return f" (did you mean {best[0]!r}?)" if best else ""


def _parse_node(r: _Reader, name: str, key_node: yaml.Node, node: yaml.Node) -> Node:
    fields = r.mapping(node, f"node {name!r}")
    kinds = ", ".join(NODE_TYPES)
    if "type" not in fields:
        raise r.err(node, f"node {name!r} has no 'type' (one of: {kinds})")
    type_node = fields.pop("type")[1]
    kind = r.string(type_node, f"node {name!r}: type")
    if kind not in NODE_TYPES:
        import difflib
        best = difflib.get_close_matches(kind, list(NODE_TYPES), n=1)
        hint = f"; did you mean {best[0]!r}?" if best else ""
        raise r.err(type_node, f"node {name!r}: unknown type {kind!r}{hint} (one of: {kinds})")
    specs = NODE_TYPES[kind][1]
    note = ""
    if "note" in fields:
        note = r.string(fields.pop("note")[1], f"node {name!r}: note")
    for key, (knode, _) in fields.items():
        if key not in specs:
            allowed = ", ".join(sorted(specs)) or "none"
            raise r.err(knode, f"node {name!r}: {kind} has no field {key!r} "
                               f"(fields: {allowed})")
    for key, spec in specs.items():
        if spec.required and key not in fields:
            raise r.err(node, f"node {name!r}: {kind} needs a {key!r} field")
    p = _NodeParser(r, name, kind, fields)
    if "options" in fields and isinstance(fields["options"][1], yaml.MappingNode):
        for k, v in fields["options"][1].value:
            p.marks[f"options.{k.value}"] = _mark(v)
    body = _parse_body(p)
    line, col = _mark(key_node)
    return Node(name=name, type=kind, body=body, line=line, column=col, file=r.file,
                marks=p.marks, note=note)


def _inline_subflows(file: str, nodes: dict[str, Node], variables: dict[str, str],
                     stack: tuple[str, ...], languages: tuple[str, ...]) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for node in nodes.values():
        body = node.body
        if not isinstance(body, SubFlow):
            out[node.name] = node
            continue
        path = Path(file).parent / body.flow
        line, col = node.mark("flow")
        if _key(str(path)) in stack:
            raise FlowError(file, line, col, f"node {node.name!r}: sub-flow {body.flow!r} "
                            "includes itself (directly or through other sub-flows)")
        try:
            text, sub_file = read_text(path, FlowError, "sub-flow file")
        except FlowError as exc:
            raise FlowError(file, line, col, f"node {node.name!r}: sub-flow {body.flow!r}: "
                            f"{exc.problem}") from None
        sub = parse_flow(text, sub_file, stack)
        prefix = f"{node.name}/"
        for lang in sub.languages:
            if sub.languages != ("en",) and lang not in languages:
                raise FlowError(file, line, col, f"node {node.name!r}: sub-flow {body.flow!r} "
                                f"has language {lang!r}, which this flow lacks")
        for var, value in sub.variables.items():
            variables.setdefault(var, value)
        def rename(t: str, prefix: str = prefix) -> str:
            return prefix + t

        for sname, snode in sub.nodes.items():
            sbody = _map_refs(snode.body, rename)
            if isinstance(sbody, Return):
                sbody = Return(body.next) if not sbody.target else \
                    Return(prefix + sbody.target)
            out[prefix + sname] = dataclasses.replace(snode, name=prefix + sname, body=sbody)
        out[node.name] = dataclasses.replace(
            node, body=SubFlow(body.flow, prefix + sub.start, body.next))
    return out


def load_flow(path: str | Path, known_queues: set[str] | None = None,
              sounds: str | Path | None = None) -> Flow:
    """Read, parse and check a flow; raises FlowError for the first error.

    Warnings (unreachable nodes, variables set on some paths only) do not
    stop loading; :func:`load_flow_and_warnings` returns them too.
    """
    return load_flow_and_warnings(path, known_queues, sounds)[0]


def load_flow_and_warnings(path: str | Path, known_queues: set[str] | None = None,
                           sounds: str | Path | None = None) -> tuple[Flow, list[Problem]]:
    """:func:`load_flow`, and the warnings of the same checks."""
    from acd.ivr.checks import check_flow

    text, file = read_text(path, FlowError, "flow file")
    flow = parse_flow(text, file)
    problems = check_flow(flow, known_queues, sounds)
    for problem in problems:
        if problem.severity == "error":
            raise FlowError(problem.file, problem.line, problem.column, problem.message)
    return flow, [p for p in problems if p.severity == "warning"]
