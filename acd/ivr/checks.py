"""Static checks of a parsed flow: what would go wrong for a caller.

Errors (the flow is refused): dead ends (a branch that can happen but goes
nowhere: a menu or input without failure handling, a branch without
``else``, a lookup without ``on_error``), loops with no exit, loops that
never wait for the caller, variables that are read but never set, unknown
queues (when the queues are known), missing sound files (when a sounds
folder is given: looked up as Asterisk does, :mod:`acd.ivr.sounds`, with the
number prompts a say node needs where the engine composes numbers).

Warnings (reported, not refused): unreachable nodes, variables set on some
paths only, retries that repeat a prompt without saying what went wrong,
``caller.X`` where X is not an attribute of the caller's profile (the
customers table's columns and ``last_agent``: ``caller.vip`` is always none,
``caller.vip_level`` is the VIP level).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from acd.core.profiles import CALLER_ATTRIBUTES
from acd.ivr.expr import Expr, Template
from acd.ivr.nodes import (
    BUILTIN_VARIABLES,
    INTERACTIVE,
    TERMINAL,
    Branch,
    Flow,
    Input,
    Lookup,
    Menu,
    Node,
    QueueNode,
    Record,
    Return,
    Say,
    SetVars,
    Transfer,
    Voicemail,
    successors,
)
from acd.ivr.saying import COMPOSED_LANGUAGES
from acd.ivr.sounds import SoundsFolder, node_sounds


@dataclass(frozen=True, slots=True)
class Problem:
    severity: str  # error | warning
    file: str
    line: int
    column: int
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


def _p(sev: str, node: Node, message: str, key: str | None = None) -> Problem:
    line, col = node.mark(key) if key else (node.line, node.column)
    return Problem(sev, node.file, line, col, node.name, message)


def reachable(flow: Flow) -> set[str]:
    seen = {flow.start}
    todo = [flow.start]
    while todo:
        for nxt in successors(flow.nodes[todo.pop()].body):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def expressions(node: Node) -> Iterator[tuple[str, Expr | Template]]:
    """(field, expression) for every template and condition of a node."""
    b = node.body
    match b:
        case Say():
            yield "value", b.value
        case SetVars():
            for var, t in b.values.items():
                yield f"vars.{var}", t
        case Branch():
            for i, c in enumerate(b.cases):
                yield f"cases.{i}", c.condition
        case Lookup() if b.url is not None:
            yield "url", b.url
        case QueueNode():
            if b.priority_expr is not None:
                yield "priority", b.priority_expr
            for t in b.attributes.values():
                yield "attributes", t
        case Transfer():
            yield "number", b.number
        case Voicemail():
            yield "mailbox", b.mailbox
        case Record():
            yield "file", b.file


def uses(node: Node) -> Iterator[tuple[str, frozenset[str]]]:
    """(field, flow variables read) for every template and condition of a node."""
    for key, e in expressions(node):
        yield key, e.variables()


def _caller_names(node: Node) -> Iterator[Problem]:
    """``caller.X`` where X is no attribute the caller lookup gives (the
    customers table's columns and ``last_agent``): it always reads as none,
    as ``caller.vip`` did while profiles say ``vip_level``."""
    for key, e in expressions(node):
        for name in sorted(e.names):
            ns, _, attr = name.partition(".")
            if ns == "caller" and attr not in CALLER_ATTRIBUTES:
                yield _p("warning", node, f"node {node.name!r}: caller.{attr} is not an "
                                          "attribute of the caller's profile, so it is always "
                                          "none (caller.: "
                                          f"{', '.join(sorted(CALLER_ATTRIBUTES))})", key)


def defines(node: Node) -> set[str]:
    b = node.body
    match b:
        case SetVars():
            return set(b.values)
        case Input() | Record():
            return {b.variable}
        case Lookup():
            return set(b.save)
    return set()


def check_flow(flow: Flow, known_queues: set[str] | frozenset[str] | None = None,
               sounds: str | Path | None = None, *,
               compose: Collection[str] = COMPOSED_LANGUAGES) -> list[Problem]:
    """Every problem found, errors first, then in file order.  ``compose``:
    the languages the engine says numbers in from the pack's prompts
    (``say_composed``, :func:`acd.ivr.saying.composes`)."""
    out: list[Problem] = []
    nodes = flow.nodes
    live = reachable(flow)

    for node in nodes.values():
        if node.name not in live and not isinstance(node.body, Return):
            out.append(_p("warning", node, f"node {node.name!r} is unreachable: no path from "
                                           f"the start ({flow.start!r}) leads to it"))
    for node in nodes.values():
        out.extend(_dead_ends(node))

    preds = predecessors(flow)
    out.extend(_loops(flow, live, preds))
    out.extend(_variables(flow, live, preds))
    for node in nodes.values():
        out.extend(_caller_names(node))
    if known_queues is not None:
        for node in nodes.values():
            b = node.body
            if isinstance(b, QueueNode) and b.queue not in known_queues:
                out.append(_p("error", node, f"node {node.name!r}: unknown queue {b.queue!r} "
                                             f"(queues: {', '.join(sorted(known_queues))})",
                              "queue"))
    if sounds is not None:
        out.extend(_sounds(flow, Path(sounds), compose))
    out.sort(key=lambda p: (p.severity != "error", p.file, p.line, p.column))
    return out


def _dead_ends(node: Node) -> Iterator[Problem]:
    b = node.body
    n = node.name
    if isinstance(b, Menu):
        handled = b.on_fail is not None or (b.on_invalid is not None
                                            and b.on_timeout is not None)
        if not handled:
            what = "a wrong key" if b.on_invalid is None else "no key"
            yield _p("error", node, f"dead end: menu {n!r} has no on_fail, so after "
                                    f"{b.retries + 1} tries ending in {what} the call would "
                                    "be hung up without a word")
        if b.retries and b.invalid_prompt is None and b.timeout_prompt is None:
            yield _p("warning", node, f"menu {n!r} repeats its prompt without an "
                                      "invalid_prompt or timeout_prompt: the caller is not "
                                      "told what went wrong")
    elif isinstance(b, Input):
        if b.on_fail is None:
            yield _p("error", node, f"dead end: input {n!r} has no on_fail for when the "
                                    f"caller types nothing or a wrong entry {b.retries + 1} "
                                    "times")
        if b.retries and b.invalid_prompt is None and b.timeout_prompt is None:
            yield _p("warning", node, f"input {n!r} repeats its prompt without an "
                                      "invalid_prompt or timeout_prompt")
    elif isinstance(b, Branch) and b.otherwise is None:
        yield _p("error", node, f"dead end: branch {n!r} has no 'else' for when no case "
                                "holds")
    elif isinstance(b, Lookup) and b.on_error is None:
        yield _p("error", node, f"dead end: lookup {n!r} has no on_error for when the "
                                "lookup fails or times out")


def _sccs(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = graph[v]
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def predecessors(flow: Flow) -> dict[str, list[str]]:
    """node -> the nodes that lead to it."""
    preds: dict[str, list[str]] = {n: [] for n in flow.nodes}
    for n, node in flow.nodes.items():
        for s in successors(node.body):
            preds[s].append(n)
    return preds


def _loops(flow: Flow, live: set[str], preds: dict[str, list[str]]) -> Iterator[Problem]:
    nodes = flow.nodes
    # nodes from which the call can leave the IVR
    exits = [n for n, node in nodes.items() if isinstance(node.body, TERMINAL)]
    can_exit = set(exits)
    todo = list(exits)
    while todo:
        for p in preds[todo.pop()]:
            if p not in can_exit:
                can_exit.add(p)
                todo.append(p)
    trapped = [n for n in nodes if n in live and n not in can_exit]
    if trapped:
        first = min((nodes[n] for n in trapped), key=lambda x: (x.file, x.line))
        names = ", ".join(sorted(trapped)[:6]) + (" ..." if len(trapped) > 6 else "")
        yield _p("error", first, f"loop with no exit: from {names} the call can never "
                                 "reach a queue, transfer, voicemail or hangup")
    # loops that never wait for the caller would spin
    silent = {n: [s for s in successors(node.body)
                  if not isinstance(nodes[s].body, INTERACTIVE)]
              for n, node in nodes.items() if not isinstance(node.body, INTERACTIVE)}
    for comp in _sccs(silent):
        if len(comp) > 1 or comp[0] in silent.get(comp[0], []):
            first = min((nodes[n] for n in comp), key=lambda x: (x.file, x.line))
            yield _p("error", first, "loop that never waits for the caller: "
                                     f"{' -> '.join(sorted(comp))} would spin; put a "
                                     "prompt or menu in it")


def _variables(flow: Flow, live: set[str], preds: dict[str, list[str]]
               ) -> Iterator[Problem]:
    nodes = flow.nodes
    initial = set(flow.variables) | set(BUILTIN_VARIABLES)
    anywhere = initial.union(*(defines(n) for n in nodes.values()))
    # definitely set on entry to each node: intersection over predecessors
    everything = frozenset(anywhere)
    on_entry: dict[str, frozenset[str]] = {n: everything for n in nodes}
    on_entry[flow.start] = frozenset(initial)
    changed = True
    order = [n for n in nodes if n in live]
    while changed:
        changed = False
        for n in order:
            ins = [on_entry[p] | defines(nodes[p]) for p in preds[n] if p in live]
            new = frozenset(initial) if n == flow.start else frozenset()
            if ins:
                inter = frozenset.intersection(*ins)
                new = inter & new if n == flow.start else inter
            if new != on_entry[n]:
                on_entry[n] = new
                changed = True
    for n, node in nodes.items():
        for key, used in uses(node):
            for var in sorted(used):
                if var not in anywhere:
                    yield _p("error", node, f"node {n!r}: variable {var!r} is never set "
                                            "(set it with a set, input, lookup or record "
                                            "node, or declare it under variables:)", key)
                elif n in live and var not in on_entry[n] and var not in defines(node):
                    yield _p("warning", node, f"node {n!r}: variable {var!r} may be unset "
                                              "here: some paths to this node do not set it",
                             key)


def _sounds(flow: Flow, sounds: Path, compose: Collection[str]) -> Iterator[Problem]:
    if not sounds.is_dir():
        yield Problem("error", flow.file, 1, 1, "", f"sounds folder {str(sounds)!r} not found")
        return
    folder = SoundsFolder(sounds)
    for node in flow.nodes.values():
        # (field, name) -> languages it is missing in, in the order found
        missing: dict[tuple[str, str], list[str]] = {}
        for key, lang, name in node_sounds(flow, node, compose):
            langs = missing.setdefault((key, name), [])
            if lang not in langs and folder.find(lang, name) is None:
                langs.append(lang)
        prompts = [(k, n, ls) for (k, n), ls in missing.items() if ls and k != "say"]
        for key, name, langs in prompts:
            yield _p("error", node, f"node {node.name!r}: sound file {name!r} not found in "
                                    f"{sounds} for language(s) {', '.join(langs)}", key)
        numbers = [(n, ls) for (k, n), ls in missing.items() if ls and k == "say"]
        if numbers:
            names = [n for n, _ in numbers]
            langs = sorted({lang for _, ls in numbers for lang in ls})
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6
                                            else "")
            yield _p("error", node, f"node {node.name!r}: {len(names)} sound file(s) it says "
                                    f"values with not found in {sounds} for language(s) "
                                    f"{', '.join(langs)}: {shown} (`acd prompts build` "
                                    "makes them)", "say")
