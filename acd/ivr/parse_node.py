"""Reading one node of a flow file into its body, with positioned errors.

:func:`parse_node` checks a node's type and field names against the table
(:mod:`acd.ivr.fields`), reads each field's value (prompts and sound names,
templates and conditions (:mod:`acd.ivr.expr`), opening hours
(:mod:`acd.ivr.hours`), digits, numbers within bounds) into the node's
dataclass (:mod:`acd.ivr.nodes`), and remembers where each field is
written, for checks that point at one.  Every error names the file, line
and column: the reader's error class (:class:`acd.ivr.parse.FlowError` for
flows) is raised at the YAML node at fault.

References between nodes are checked by the parser of the whole file
(:mod:`acd.ivr.parse`), which knows every node's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from acd.ivr.expr import NAME_RE, Expr, ExprError, Template, parse_expr, parse_template
from acd.ivr.fields import NODE_TYPES, FieldSpec
from acd.ivr.hours import DAYS, Hours, HoursError, parse_date, parse_days, parse_ranges, zone
from acd.ivr.nodes import (
    DIGITS,
    Branch,
    Case,
    Goto,
    Hangup,
    HoursNode,
    Input,
    Language,
    Lookup,
    Menu,
    Node,
    NodeBody,
    Play,
    Prompt,
    PromptItem,
    QueueNode,
    Record,
    Return,
    Say,
    SetVars,
    Sms,
    SubFlow,
    Transfer,
    Voicemail,
)
from acd.loaders.yamlpos import Reader, YamlError

__all__ = ["parse_node", "parse_sound", "parse_vars", "scalar_text"]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _NodeParser:
    """Reads one node's fields, remembering where each one is."""

    def __init__(self, r: Reader, name: str, kind: str,
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

    def err(self, key: str, message: str) -> YamlError:
        return self.r.err(self.node(key), f"node {self.name!r}: {message}")

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


def _varname(r: Reader, node: yaml.Node, what: str) -> str:
    name = r.string(node, what)
    if not NAME_RE.match(name):
        raise r.err(node, f"{what}: {name!r} is not a variable name "
                          "(letters, digits and _, not starting with a digit)")
    if name in ("caller", "now", "call"):
        raise r.err(node, f"{what}: {name!r} is a reserved name")
    return name


def scalar_text(r: Reader, node: yaml.Node, what: str) -> str:
    """A scalar's text as written (a number stays as it is written)."""
    if not isinstance(node, yaml.ScalarNode):
        raise r.err(node, f"{what} must be a text")
    return str(node.value)


P = TypeVar("P")


def _parsed(r: Reader, node: yaml.Node, what: str, parse: Callable[[str], P]) -> P:
    """The node's text through ``parse``; an error at its column in the file."""
    text = scalar_text(r, node, what)
    try:
        return parse(text)
    except ExprError as exc:
        raise _at(r, node, exc.column, f"{what}: {exc}") from None


def _template(r: Reader, node: yaml.Node, what: str) -> Template:
    return _parsed(r, node, what, parse_template)


def _expr(r: Reader, node: yaml.Node, what: str) -> Expr:
    return _parsed(r, node, what, parse_expr)


def _at(r: Reader, node: yaml.Node, column: int, message: str) -> YamlError:
    """An error at a column inside a scalar (plain or quoted on one line)."""
    line, col = _mark(node)
    if isinstance(node, yaml.ScalarNode) and node.start_mark.line == node.end_mark.line:
        col += column - 1 + (1 if node.style in ("'", '"') else 0)
    return r.error(r.file, line, col, message)


def _prompt(r: Reader, node: yaml.Node, what: str) -> Prompt:
    items: list[PromptItem] = []
    values = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not values:
        raise r.err(node, f"{what}: the list of prompts is empty")
    for v in values:
        if isinstance(v, yaml.MappingNode):
            by_lang: dict[str, str] = {}
            for lang, (_, vn) in r.mapping(v, f"{what} (language -> sound file)").items():
                by_lang[lang] = parse_sound(r, vn, f"{what} ({lang})")
            if not by_lang:
                raise r.err(v, f"{what}: no sound file for any language")
            items.append(by_lang)
        else:
            items.append(parse_sound(r, v, what))
    return Prompt(tuple(items))


def parse_sound(r: Reader, node: yaml.Node, what: str) -> str:
    """A sound file name (no path tricks, nothing the AGI command line splits on)."""
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
        values = parse_vars(r, p.node("vars"), p.what("vars"), p.marks)
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


def parse_vars(r: Reader, node: yaml.Node, what: str,
               marks: dict[str, tuple[int, int]] | None = None) -> dict[str, Template]:
    """Variable name -> template; each name's position goes into ``marks``."""
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



def parse_node(r: Reader, name: str, key_node: yaml.Node, node: yaml.Node) -> Node:
    """The node ``name`` (written at ``key_node``) from its mapping ``node``."""
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
