"""Parsing a flow file: YAML text in, a :class:`~acd.ivr.nodes.Flow` out.

Every error names the file, line and column (:class:`FlowError`).  The
parser walks PyYAML's node graph (``yaml.compose``) rather than plain data
so that each value keeps its position in the file.  Nothing from a file is
ever evaluated: conditions are parsed into a checked tree
(:mod:`acd.ivr.expr`).

:func:`parse_flow` reads the top-level keys, each node
(:func:`acd.ivr.parse_node.parse_node`), checks that every reference names
a node, and inlines sub-flows under ``"<node>/"``.  The language is
documented in ``docs/ivr-flows.md``.

Structural errors (bad YAML, unknown fields, a reference to a missing node,
a bad condition) raise :class:`FlowError`; the graph checks (unreachable
nodes, dead ends, loops, undefined variables, unknown queues, missing sound
files) are in :mod:`acd.ivr.checks`, and :func:`acd.ivr.load.load_flow`
reads a file, parses it here and runs those checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from acd.ivr.fields import TOP_FIELDS
from acd.ivr.hours import HoursError, zone
from acd.ivr.nodes import (
    Branch,
    Flow,
    Language,
    Menu,
    Node,
    QueueNode,
    Return,
    SubFlow,
    edges,
    map_refs,
)
from acd.ivr.parse_node import parse_node, parse_sound, parse_vars, scalar_text
from acd.ivr.prompt_names import FEN, YUAN
from acd.ivr.sounds import is_language_code
from acd.loaders.yamlpos import Reader, YamlError, read_text

__all__ = ["FlowError", "parse_flow"]


class FlowError(YamlError):
    """A flow file is wrong; the message says where and what."""


#: sub-flows include sub-flows at most this deep
MAX_SUBFLOW_DEPTH = 16
#: a flow has at most this many nodes, its sub-flows' included
MAX_FLOW_NODES = 20_000


def parse_flow(text: str, file: str = "<flow>", _stack: tuple[str, ...] = (),
               _cache: dict[str, Flow] | None = None) -> Flow:
    """Parse a flow (and its sub-flows); raises FlowError naming file, line and column.

    Unknown queues are a check (:func:`acd.ivr.checks.check_flow`), reported
    by :func:`acd.ivr.load.load_flow`.
    """
    r = Reader(file, FlowError)
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
    version = scalar_text(r, top["version"][1], "version") if "version" in top else ""
    description = r.string(top["description"][1], "description") \
        if "description" in top else ""
    languages: tuple[str, ...] = ("en",)
    if "languages" in top:
        langs = r.strings(top["languages"][1], "languages")
        if not langs:
            raise r.err(top["languages"][1], "languages is empty")
        if len(set(langs)) != len(langs):
            raise r.err(top["languages"][1], "languages lists a language twice")
        lnode = top["languages"][1]
        items = lnode.value if isinstance(lnode.value, list) else []
        for i, lang in enumerate(langs):
            if not is_language_code(lang):
                at = items[i] if len(items) == len(langs) else lnode
                raise r.err(at, f"languages: {lang!r} is not a language "
                            "code (zh, yue, en, en_US, pt_BR: letters and digits with _ "
                            "or -, as Asterisk's CHANNEL(language) takes; it names a "
                            "folder of the sounds)")
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
        for key, tmpl in parse_vars(r, top["variables"][1], "variables").items():
            if not tmpl.constant:
                raise r.err(top["variables"][1], f"variables: {key!r} must be a plain "
                                                 "starting value, not a template")
            variables[key] = tmpl.source
    money_unit, money_cents = YUAN, FEN
    if "money" in top:
        m = r.mapping(top["money"][1], "money")
        r.known(m, "money", {"unit", "cents"})
        if "unit" in m:
            money_unit = parse_sound(r, m["unit"][1], "money: unit")
        if "cents" in m:
            money_cents = parse_sound(r, m["cents"][1], "money: cents")

    nodes: dict[str, Node] = {}
    nodes_map = r.mapping(top["nodes"][1], "nodes")
    if not nodes_map:
        raise r.err(top["nodes"][1], "nodes is empty")
    for nname, (knode, vnode) in nodes_map.items():
        if "/" in nname:
            raise r.err(knode, f"node name {nname!r}: '/' is kept for sub-flow nodes")
        nodes[nname] = parse_node(r, nname, knode, vnode)
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
        if isinstance(node.body, Language) and not is_language_code(node.body.language):
            line, col = node.mark("language")
            raise FlowError(file, line, col, f"node {node.name!r}: language "
                            f"{node.body.language!r} is not a language code (zh, yue, en, "
                            "en_US, pt_BR)")
        if isinstance(node.body, Language) and node.body.language not in languages:
            line, col = node.mark("language")
            raise FlowError(file, line, col, f"node {node.name!r}: language "
                            f"{node.body.language!r} is not in the flow's languages "
                            f"({', '.join(languages)})")

    # sub-flows: read and inline them under "<node>/"
    if any(isinstance(n.body, SubFlow) for n in nodes.values()):
        nodes = _inline_subflows(file, nodes, variables, (*_stack, _key(file)), languages,
                                 {} if _cache is None else _cache)
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
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13)
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


def _ref_marks(node: Node) -> dict[str, tuple[int, int]]:
    """Where each reference of a node is written, by target name."""
    out: dict[str, tuple[int, int]] = {}
    for key in ("next", "target", "on_fail", "on_invalid", "on_timeout", "on_error",
                "else", "when_open", "when_closed"):
        if key in node.marks:
            out.setdefault(key, node.marks[key])
    return out


def _closest(name: str, nodes: Mapping[str, Node]) -> str:
    import difflib
    best = difflib.get_close_matches(name, list(nodes), n=1)
    return f" (did you mean {best[0]!r}?)" if best else ""


def _inline_subflows(file: str, nodes: dict[str, Node], variables: dict[str, str],
                     stack: tuple[str, ...], languages: tuple[str, ...],
                     cache: dict[str, Flow]) -> dict[str, Node]:
    """The nodes with each sub-flow's nodes inlined; every file is read once
    (``cache``), however often it is included, and the flow's size is
    bounded (:data:`MAX_SUBFLOW_DEPTH`, :data:`MAX_FLOW_NODES`)."""
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
        if len(stack) > MAX_SUBFLOW_DEPTH:
            raise FlowError(file, line, col, f"node {node.name!r}: sub-flows include "
                            f"sub-flows more than {MAX_SUBFLOW_DEPTH} deep")
        sub = cache.get(_key(str(path)))
        if sub is None:
            try:
                text, sub_file = read_text(path, FlowError, "sub-flow file")
            except FlowError as exc:
                if exc.line:  # a place in the sub-flow file (a byte that is not UTF-8)
                    raise
                whole = FlowError(file, line, col, f"node {node.name!r}: sub-flow "
                                  f"{body.flow!r}: {exc.problem}")
                whole.unreadable = True  # missing, a folder, too big: exit 2 as the file's own
                raise whole from None
            sub = cache[_key(str(path))] = parse_flow(text, sub_file, stack, cache)
        if len(out) + len(sub.nodes) + len(nodes) > MAX_FLOW_NODES:
            raise FlowError(file, line, col, f"node {node.name!r}: with its sub-flows the "
                            f"flow has more than {MAX_FLOW_NODES:,} nodes")
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
            sbody = map_refs(snode.body, rename)
            if isinstance(sbody, Return):
                sbody = Return(body.next) if not sbody.target else \
                    Return(prefix + sbody.target)
            out[prefix + sname] = dataclasses.replace(snode, name=prefix + sname, body=sbody)
        out[node.name] = dataclasses.replace(
            node, body=SubFlow(body.flow, prefix + sub.start, body.next))
    return out

