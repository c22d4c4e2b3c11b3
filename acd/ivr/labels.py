"""What a picture of a flow says about each node and edge, in any format.

The node classes (colour and shape by node type), a node's one-line
description, the sub-flow a node was inlined from, and text measured in
display columns (East-Asian wide characters count two) and wrapped into
lines.  The DOT and Mermaid writers (:mod:`acd.ivr.dot`,
:mod:`acd.ivr.mermaid`) and the drawing (:mod:`acd.plot`) all read them, so
the pictures agree with each other.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acd.ivr.nodes import (
    Branch,
    Flow,
    Goto,
    Hangup,
    HoursNode,
    Input,
    Language,
    Lookup,
    Menu,
    Node,
    Play,
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

__all__ = ["BACK_COLOR", "DEAD_COLOR", "EDGE_COLOR", "KINDS", "STYLES", "SUBTLE_COLOR",
           "TEXT_COLOR", "Style", "box_lines", "clip", "cluster_of", "cluster_title", "detail",
           "flow_title", "label_lines", "node_kind", "prefixes", "text_width", "wrap"]


# --------------------------------------------------------------- node classes


@dataclass(frozen=True, slots=True)
class Style:
    fill: str
    line: str
    title: str  # for the legend
    dot_shape: str


#: node type -> node class (colour and shape)
KINDS: Mapping[str, str] = {
    "play": "prompt", "say": "prompt", "menu": "prompt", "input": "prompt", "record": "prompt",
    "set": "logic", "branch": "logic", "hours": "logic", "language": "logic", "goto": "logic",
    "subflow": "logic", "return": "logic",
    "lookup": "service", "sms": "service",
    "queue": "queue",
    "hangup": "exit", "transfer": "exit", "voicemail": "exit",
}

STYLES: Mapping[str, Style] = {
    "prompt": Style("#dbeafe", "#2563eb", "prompt / menu / input", "box"),
    "logic": Style("#eef0f3", "#64748b", "logic", "hexagon"),
    "service": Style("#fef3c7", "#d97706", "self-service", "box"),
    "queue": Style("#dcfce7", "#16a34a", "queue", "box"),
    "exit": Style("#fee2e2", "#dc2626", "hangup / transfer / voicemail", "box"),
}

EDGE_COLOR = "#475569"  # an edge
BACK_COLOR = "#7c3aed"  # an edge that loops back up
DEAD_COLOR = "#94a3b8"  # an edge from an unreachable node
TEXT_COLOR = "#0f172a"
SUBTLE_COLOR = "#475569"


def node_kind(node: Node) -> str:
    """The node's class: prompt, logic, service, queue or exit."""
    return KINDS.get(node.type, "logic")


def detail(node: Node) -> str:
    """A short description of what the node does (prompt, queue, variable...)."""
    b = node.body
    match b:
        case Play() | Menu():
            return str(b.prompt)
        case Say():
            said = f"{b.say} {b.value.source}"
            return f"{b.prompt} + {said}" if b.prompt else said
        case Input():
            digits = (f"{b.max_digits}" if b.min_digits == b.max_digits
                      else f"{b.min_digits}-{b.max_digits}")
            return f"{b.prompt} → {b.variable} ({digits} digits)"
        case SetVars():
            return ", ".join(f"{k} = {v.source}" for k, v in b.values.items())
        case Branch():
            n = len(b.cases)
            return f"{n} condition{'s' if n != 1 else ''}"
        case Lookup():
            return b.url.source if b.url is not None else "caller profile"
        case HoursNode():
            return b.hours.timezone
        case Language():
            return f"{b.language} / {b.dialect}" if b.dialect else b.language
        case QueueNode():
            prio = b.priority_expr.source if b.priority_expr is not None else str(b.priority)
            return f"{b.queue}, priority {prio}"
        case Transfer():
            return b.number.source
        case Voicemail():
            return b.mailbox.source
        case Record():
            return f"→ {b.variable} (max {b.max_s} s)"
        case Sms():
            return b.template
        case Hangup():
            return str(b.prompt) if b.prompt is not None else ""
        case SubFlow():
            return b.flow
        case Goto() | Return():
            return ""
    return ""  # pragma: no cover - every body type is matched above


# ------------------------------------------------------------------ sub-flows


def cluster_of(name: str) -> str:
    """The sub-flow a node was inlined from ("balance/ask" -> "balance"), or ""."""
    return name.rpartition("/")[0]


def prefixes(cluster: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b", "a/b/c"]: the sub-flow and the ones around it."""
    parts = cluster.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def cluster_title(flow: Flow, cluster: str) -> str:
    """A sub-flow's title: "sub-flow NAME (FILE)"."""
    node = flow.nodes.get(cluster)
    if node is not None and isinstance(node.body, SubFlow):
        return f"sub-flow {cluster} ({node.body.flow})"
    return f"sub-flow {cluster}"


def flow_title(flow: Flow) -> str:
    """The flow's name, with its version when it has one."""
    return f"{flow.name} (version {flow.version})" if flow.version else flow.name


# ----------------------------------------------------------------------- text


def text_width(text: str) -> int:
    """Display columns: East-Asian wide and full-width characters count two."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def clip(text: str, width: int) -> str:
    """Text cut to ``width`` columns, with an ellipsis when cut."""
    if text_width(text) <= width:
        return text
    out = ""
    for c in text:
        if text_width(out + c) > width - 1:
            break
        out += c
    return out.rstrip() + "…"


def _wrap_greedy(text: str, width: int) -> list[str]:
    lines: list[str] = []
    rest = text.strip()
    while rest:
        if text_width(rest) <= width:
            lines.append(rest)
            break
        cut, used = 0, 0
        for i, c in enumerate(rest):
            used += text_width(c)
            if used > width:
                break
            cut = i + 1
        space = rest.rfind(" ", 0, cut + 1)
        if space > width // 3:
            cut = space
        lines.append(rest[:max(cut, 1)].rstrip())
        rest = rest[max(cut, 1):].lstrip()
    return lines


def wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Lines of at most ``width`` columns, about equally long, broken at spaces where
    possible (anywhere in Chinese); the last line ends with an ellipsis when the text
    does not fit in ``max_lines``."""
    lines = _wrap_greedy(text, width)
    if len(lines) > max_lines:
        keep = lines[:max_lines]
        rest = " ".join(lines[max_lines - 1:])
        keep[-1] = clip(rest, width)
        return keep
    if len(lines) > 1:  # balance: the narrowest width that needs no more lines
        for w in range(max(4, width * 2 // 3), width):
            trial = _wrap_greedy(text, w)
            if len(trial) == len(lines):
                return trial
    return lines


def box_lines(node: Node) -> tuple[tuple[str, ...], int]:
    """The text of a node's box: its name, its type and detail (wrapped), then its note;
    and how many of the last lines are the note."""
    d = detail(node)
    body = wrap(f"{node.type}: {d}" if d else node.type, 36, 2)
    note = wrap(node.note, 36, 2) if node.note else []
    return (clip(node.name, 36), *body, *note), len(note)


def label_lines(labels: Sequence[str]) -> tuple[str, ...]:
    """An edge's labels as lines: short ones packed ("key 1, no key"), long ones wrapped."""
    lines: list[str] = []
    packable = True
    for label in labels:
        if "," in label or (" " in label.strip() and text_width(label) > 12):
            lines.extend(wrap(label, 26, 3))
            packable = False
        elif lines and packable and text_width(lines[-1] + ", " + label) <= 26:
            lines[-1] += ", " + label
        else:
            lines.append(label)
            packable = True
    if len(lines) > 5:
        lines = [*lines[:4], "…"]
    return tuple(lines)
