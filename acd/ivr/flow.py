"""IVR flows written in YAML: loading and checking.

Every error names the file, line and column.  The loader walks PyYAML's
node graph (``yaml.compose``) rather than plain data so that each value keeps
its position in the file.  Nothing from a file is ever evaluated.

Node types (foundation set): ``play``, ``menu``, ``queue``, ``hangup``,
``goto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from acd.yamlpos import Reader, YamlError, read_text

DIGITS = set("0123456789*#")


class FlowError(YamlError):
    """A flow file is wrong; the message says where and what."""


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str
    next: str
    barge_in: bool = False


@dataclass(frozen=True, slots=True)
class Menu:
    prompt: str
    options: Mapping[str, str]
    timeout_s: float = 5.0
    retries: int = 2
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None
    on_fail: str | None = None  # where to go when retries are used up


@dataclass(frozen=True, slots=True)
class QueueNode:
    queue: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Hangup:
    prompt: str | None = None


@dataclass(frozen=True, slots=True)
class Goto:
    target: str


NodeBody = Play | Menu | QueueNode | Hangup | Goto


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    body: NodeBody
    line: int


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]
    file: str
    version: str = ""
    queues: frozenset[str] = field(default_factory=frozenset)


# -------------------------------------------------------------------- loading


class _Reader(Reader):
    def __init__(self, file: str) -> None:
        super().__init__(file, FlowError)


_NODE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # type: (required keys, optional keys)
    "play": ({"prompt", "next"}, {"barge_in"}),
    "menu": ({"prompt", "options"},
             {"timeout", "retries", "invalid_prompt", "timeout_prompt", "on_fail"}),
    "queue": ({"queue"}, {"priority"}),
    "hangup": (set(), {"prompt"}),
    "goto": ({"target"}, set()),
}


def _parse_node(r: _Reader, name: str, key_node: yaml.Node, node: yaml.Node) -> Node:
    fields = r.mapping(node, f"node {name!r}")
    if "type" not in fields:
        raise r.err(node, f"node {name!r} has no 'type' (one of: {', '.join(_NODE_KEYS)})")
    type_node = fields.pop("type")[1]
    kind = r.string(type_node, f"node {name!r}: type")
    if kind not in _NODE_KEYS:
        raise r.err(type_node, f"node {name!r}: unknown type {kind!r} "
                               f"(one of: {', '.join(_NODE_KEYS)})")
    required, optional = _NODE_KEYS[kind]
    for key, (knode, _) in fields.items():
        if key not in required and key not in optional:
            allowed = ", ".join(sorted(required | optional))
            raise r.err(knode, f"node {name!r}: {kind} has no field {key!r} (fields: {allowed})")
    for key in sorted(required):
        if key not in fields:
            raise r.err(node, f"node {name!r}: {kind} needs a {key!r} field")

    def s(key: str) -> str:
        return r.string(fields[key][1], f"node {name!r}: {key}")

    def opt_s(key: str) -> str | None:
        return s(key) if key in fields else None

    body: NodeBody
    if kind == "play":
        barge = r.boolean(fields["barge_in"][1], "barge_in") if "barge_in" in fields else False
        body = Play(prompt=s("prompt"), next=s("next"), barge_in=barge)
    elif kind == "menu":
        opt_nodes = r.mapping(fields["options"][1], f"node {name!r}: options")
        if not opt_nodes:
            raise r.err(fields["options"][1], f"node {name!r}: options is empty")
        options: dict[str, str] = {}
        for key, (knode, vnode) in opt_nodes.items():
            if len(key) != 1 or key not in DIGITS:
                raise r.err(knode, f"node {name!r}: option key {key!r} is not one of 0-9, * or #")
            options[key] = r.string(vnode, f"node {name!r}: option {key!r}")
        body = Menu(
            prompt=s("prompt"), options=options,
            timeout_s=r.number(fields["timeout"][1], "timeout", 0.5, 60)
            if "timeout" in fields else 5.0,
            retries=r.integer(fields["retries"][1], "retries", 0, 10)
            if "retries" in fields else 2,
            invalid_prompt=opt_s("invalid_prompt"), timeout_prompt=opt_s("timeout_prompt"),
            on_fail=opt_s("on_fail"),
        )
    elif kind == "queue":
        prio = r.integer(fields["priority"][1], "priority", 0, 100) if "priority" in fields else 0
        body = QueueNode(queue=s("queue"), priority=prio)
    elif kind == "hangup":
        body = Hangup(prompt=opt_s("prompt"))
    else:
        body = Goto(target=s("target"))
    return Node(name=name, body=body, line=key_node.start_mark.line + 1)


def successors(body: NodeBody) -> list[str]:
    match body:
        case Play():
            return [body.next]
        case Menu():
            return list(body.options.values()) + ([body.on_fail] if body.on_fail else [])
        case Goto():
            return [body.target]
        case _:
            return []


def parse_flow(text: str, file: str = "<flow>", known_queues: set[str] | None = None) -> Flow:
    """Parse and check a flow; raises FlowError naming file, line and column."""
    r = _Reader(file)
    root = r.compose(text)
    top = r.mapping(root, "the flow file")
    for key, (knode, _) in top.items():
        if key not in ("flow", "start", "nodes", "version"):
            raise r.err(knode, f"unknown top-level key {key!r} (keys: flow, start, nodes, version)")
    for key in ("flow", "start", "nodes"):
        if key not in top:
            raise r.err(root, f"the flow file needs a top-level {key!r}")
    name = r.string(top["flow"][1], "flow")
    start_node = top["start"][1]
    start = r.string(start_node, "start")
    version = r.string(top["version"][1], "version") if "version" in top else ""
    nodes: dict[str, Node] = {}
    for nname, (knode, vnode) in r.mapping(top["nodes"][1], "nodes").items():
        nodes[nname] = _parse_node(r, nname, knode, vnode)
    if not nodes:
        raise r.err(top["nodes"][1], "nodes is empty")
    if start not in nodes:
        raise r.err(start_node, f"start node {start!r} is not defined")
    # every reference must name a node
    for node in nodes.values():
        for target in successors(node.body):
            if target not in nodes:
                raise FlowError(file, node.line, 1,
                                f"node {node.name!r} goes to {target!r}, which is not defined")
    queues = frozenset(n.body.queue for n in nodes.values() if isinstance(n.body, QueueNode))
    if known_queues is not None:
        for n in nodes.values():
            if isinstance(n.body, QueueNode) and n.body.queue not in known_queues:
                raise FlowError(file, n.line, 1, f"node {n.name!r}: unknown queue "
                                f"{n.body.queue!r} (queues: {', '.join(sorted(known_queues))})")
    _check_goto_cycles(file, nodes)
    return Flow(name=name, start=start, nodes=nodes, file=file, version=version, queues=queues)


def _check_goto_cycles(file: str, nodes: Mapping[str, Node]) -> None:
    """A ring of goto nodes would spin without ever talking to the caller."""
    for node in nodes.values():
        seen = {node.name}
        cur = node.body
        while isinstance(cur, Goto):
            if cur.target in seen:
                raise FlowError(file, node.line, 1,
                                f"node {node.name!r}: goto loop with no prompt in between")
            seen.add(cur.target)
            cur = nodes[cur.target].body


def load_flow(path: str | Path, known_queues: set[str] | None = None) -> Flow:
    text, file = read_text(path, FlowError, "flow file")
    return parse_flow(text, file, known_queues)
