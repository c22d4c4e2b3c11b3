"""Pictures of IVR flows: Graphviz DOT text, and a drawing made without Graphviz.

* :func:`to_dot` - DOT text for Graphviz or any DOT viewer (always available);
* :func:`layout` - a layered (Sugiyama-style) top-to-bottom layout in pure
  Python: boxes with coordinates, edges as smooth polylines, sub-flow outlines;
* :func:`render` - writes ``.dot``, ``.svg`` or ``.png``; the pictures are drawn
  from :func:`layout` with matplotlib (imported only then), so no Graphviz
  binary is needed.

The layout, in short:

1. *Ranks.*  A depth-first search from the start node marks the edges that go
   back to a node still on the search stack (retry loops, "press 9 to
   repeat"); the other edges form an acyclic graph and a node's rank is the
   longest path to it from the start.  Unreachable nodes share one extra rank
   at the bottom.
2. *Layers.*  Rank ``r`` is layer ``2r``; the odd layers between hold the edge
   labels.  An edge spanning several layers becomes a chain of dummy points,
   one per layer, so it is routed around the boxes; its first dummy carries
   its label, which therefore takes room in the layout and never covers a box
   or another label.  A back edge leaves its box at the side, climbs through
   its own chain of dummies (a curve beside the forward edges) and enters
   its target at the side; a self-loop is a small loop beside its box.
3. *Order.*  Alternating downward and upward barycenter sweeps reorder each
   layer, keeping a sub-flow's members together and the order with the
   fewest crossings; then each loop moves to the side of its boxes that its
   path runs on, more sweeps follow, and neighbours are swapped while that
   removes crossings ("transpose").
4. *Coordinates.*  Box sizes come from the label text (East-Asian wide
   characters count as two columns).  Each layer is placed by a weighted
   least-squares fit to its neighbours' positions under minimum-gap
   constraints (pool-adjacent-violators), sweeping down and up; long edges
   weigh more, and a last pass lines up each long edge's dummies so it runs
   straight.  Layers whose edges run far sideways get more room between them.
"""

from __future__ import annotations

import math
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.ivr.checks import reachable
from acd.ivr.flow import (
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
    edges,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["FORMATS", "KINDS", "STYLES", "Box", "Cluster", "Layout", "Route", "Style",
           "detail", "layout", "node_kind", "render", "text_width", "to_dot"]

Point = tuple[float, float]
LineStyle = str | tuple[float, tuple[float, float]]

#: file formats :func:`render` writes
FORMATS = ("dot", "svg", "png")


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

_EDGE = "#475569"
_BACK = "#7c3aed"
_DEAD = "#94a3b8"
_TEXT = "#0f172a"
_SUBTLE = "#475569"


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


def _cluster_of(name: str) -> str:
    """The sub-flow a node was inlined from ("balance/ask" -> "balance"), or ""."""
    return name.rpartition("/")[0]


# ------------------------------------------------------------------------ DOT


def _dot_str(text: str) -> str:
    """A DOT double-quoted string: quotes and backslashes escaped, newlines as \\n."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return '"' + "".join(c for c in out if c >= " ") + '"'


def _clip(text: str, width: int) -> str:
    """Text cut to ``width`` columns, with an ellipsis when cut."""
    if text_width(text) <= width:
        return text
    out = ""
    for c in text:
        if text_width(out + c) > width - 1:
            break
        out += c
    return out.rstrip() + "…"


def to_dot(flow: Flow) -> str:
    """The flow as Graphviz DOT text."""
    live = reachable(flow)
    lines = [
        f"digraph {_dot_str(flow.name)} {{",
        f"  graph [rankdir=TB, label={_dot_str(_title(flow))}, labelloc=t, fontsize=16, "
        'fontname="sans-serif", nodesep=0.35, ranksep=0.45];',
        '  node [fontname="sans-serif", fontsize=10, margin="0.15,0.06"];',
        f'  edge [fontname="sans-serif", fontsize=9, color="{_EDGE}", fontcolor="{_EDGE}"];',
        '  "__start__" [shape=circle, label="", width=0.18, style=filled, '
        'fillcolor="#0f172a", color="#0f172a"];',
    ]

    def node_line(node: Node, indent: str) -> str:
        kind = node_kind(node)
        style = STYLES[kind]
        text = node.name + "\n" + node.type
        d = detail(node)
        if d:
            text += ": " + _clip(d, 70)
        if node.note:
            text += "\n" + _clip(node.note, 70)
        styles = ["filled"] + (["rounded"] if style.dot_shape == "box" else [])
        if node.name not in live:
            styles.append("dashed")
        attrs = [f"label={_dot_str(text)}", f"shape={style.dot_shape}",
                 f"style={_dot_str(','.join(styles))}", f'fillcolor="{style.fill}"',
                 f'color="{style.line}"']
        if node.name == flow.start:
            attrs.append("penwidth=2.5")
        if node.name not in live:
            attrs.append('fontcolor="#64748b"')
        return f"{indent}{_dot_str(node.name)} [{', '.join(attrs)}];"

    # nodes, sub-flow members grouped (nested) in clusters
    by_cluster: dict[str, list[Node]] = {}
    for node in flow.nodes.values():
        by_cluster.setdefault(_cluster_of(node.name), []).append(node)
    prefixes = sorted({p for c in by_cluster if c for p in _prefixes(c)})

    def emit(cluster: str, indent: str) -> None:
        for node in by_cluster.get(cluster, []):
            lines.append(node_line(node, indent))
        for sub in prefixes:
            if _cluster_of(sub) == cluster:
                lines.append(f"{indent}subgraph {_dot_str('cluster_' + sub)} {{")
                lines.append(f"{indent}  label={_dot_str(_cluster_title(flow, sub))}; "
                             'labeljust=l; style="rounded,filled"; fillcolor="#f8fafc"; '
                             'color="#94a3b8"; fontsize=10;')
                emit(sub, indent + "  ")
                lines.append(f"{indent}}}")

    emit("", "  ")
    lines.append(f'  "__start__" -> {_dot_str(flow.start)} [penwidth=1.5];')
    for node in flow.nodes.values():
        for label, target in edges(node.body):
            attrs = []
            if label:
                attrs.append(f"label={_dot_str(label)}")
            if node.name not in live:
                attrs.append('style=dashed, color="#94a3b8"')
            tail = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {_dot_str(node.name)} -> {_dot_str(target)}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _prefixes(cluster: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b", "a/b/c"]."""
    parts = cluster.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _cluster_title(flow: Flow, cluster: str) -> str:
    node = flow.nodes.get(cluster)
    if node is not None and isinstance(node.body, SubFlow):
        return f"sub-flow {cluster} ({node.body.flow})"
    return f"sub-flow {cluster}"


def _title(flow: Flow) -> str:
    return f"{flow.name} (version {flow.version})" if flow.version else flow.name


# ---------------------------------------------------------------- text sizes


def text_width(text: str) -> int:
    """Display columns: East-Asian wide and full-width characters count two."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


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


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Lines of at most ``width`` columns, about equally long, broken at spaces where
    possible (anywhere in Chinese); the last line ends with an ellipsis when the text
    does not fit in ``max_lines``."""
    lines = _wrap_greedy(text, width)
    if len(lines) > max_lines:
        keep = lines[:max_lines]
        rest = " ".join(lines[max_lines - 1:])
        keep[-1] = _clip(rest, width)
        return keep
    if len(lines) > 1:  # balance: the narrowest width that needs no more lines
        for w in range(max(4, width * 2 // 3), width):
            trial = _wrap_greedy(text, w)
            if len(trial) == len(lines):
                return trial
    return lines


def _label_lines(labels: Sequence[str]) -> tuple[str, ...]:
    """An edge's labels as lines: short ones packed ("key 1, no key"), long ones wrapped."""
    lines: list[str] = []
    packable = True
    for label in labels:
        if "," in label or (" " in label.strip() and text_width(label) > 12):
            lines.extend(_wrap(label, 26, 3))
            packable = False
        elif lines and packable and text_width(lines[-1] + ", " + label) <= 26:
            lines[-1] += ", " + label
        else:
            lines.append(label)
            packable = True
    if len(lines) > 5:
        lines = [*lines[:4], "…"]
    return tuple(lines)


# sizes in inches; the drawing uses 1 unit = 1 inch so these are the real sizes
_NAME_PT, _TEXT_PT, _NOTE_PT, _LABEL_PT = 9.0, 7.8, 7.4, 7.2
_EM = 1 / 72  # inches per point
_PAD_X, _PAD_Y = 0.13, 0.07
_MIN_BOX_W = 0.9
_HEX = 0.14  # how far a logic node's points stick out
_NODE_SEP, _DUMMY_SEP, _MIXED_SEP, _GROUP_SEP, _SIDE_SEP = 0.34, 0.1, 0.16, 0.3, 0.16
_LAYER_GAP = 0.2  # the least room between two layers
_SLOPE = 0.12  # more room between layers whose edges run far sideways
_MAX_GAP = 0.6
_EMPTY_LABEL_H = 0.2  # room for an unlabelled edge between two ranks
_DUMMY_W = 0.05
_START_ROOM = 0.42
_CLUSTER_PAD = 0.13
_CLUSTER_TITLE = 0.2
_LOOP_W = 0.3  # how far a self-loop sticks out


def _line_h(pt: float) -> float:
    return pt * _EM * 1.32


def _col_w(pt: float, bold: bool = False) -> float:
    return pt * _EM * (0.66 if bold else 0.6)


def _box_lines(node: Node) -> tuple[tuple[str, ...], int]:
    """The text of a node's box: its name, type and detail, then its note."""
    d = detail(node)
    body = _wrap(f"{node.type}: {d}" if d else node.type, 36, 2)
    note = _wrap(node.note, 36, 2) if node.note else []
    return (_clip(node.name, 36), *body, *note), len(note)


def _box_size(lines: Sequence[str], notes: int, kind: str) -> tuple[float, float]:
    name, rest = lines[0], lines[1:]
    body = rest[:len(rest) - notes]
    note = rest[len(rest) - notes:]
    w = max([text_width(name) * _col_w(_NAME_PT, True)]
            + [text_width(t) * _col_w(_TEXT_PT) for t in body]
            + [text_width(t) * _col_w(_NOTE_PT) for t in note])
    w = max(_MIN_BOX_W, w + 2 * _PAD_X + (2 * _HEX if kind == "logic" else 0))
    h = _line_h(_NAME_PT) + len(body) * _line_h(_TEXT_PT) + len(note) * _line_h(_NOTE_PT)
    return round(w, 3), round(h + 2 * _PAD_Y, 3)


def _label_size(lines: Sequence[str]) -> tuple[float, float]:
    if not lines:
        return 0.0, 0.0
    w = max(text_width(t) for t in lines) * _col_w(_LABEL_PT) + 0.12
    return round(w, 3), round(len(lines) * _line_h(_LABEL_PT) + 0.06, 3)


# --------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class Box:
    """One node's box; ``x``/``y`` are its centre (inches, y grows downward)."""

    name: str
    type: str
    kind: str  # prompt, logic, service, queue or exit (see KINDS)
    lines: tuple[str, ...]  # the name, the type and detail, then the note
    notes: int  # how many of the last lines are the note
    x: float
    y: float
    width: float
    height: float
    rank: int
    order: int  # position in its rank, from the left
    reachable: bool
    start: bool
    cluster: str  # the sub-flow it was inlined from ("balance"), or ""

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2

    @property
    def top(self) -> float:
        return self.y - self.height / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True, slots=True)
class Route:
    """One arrow: the edges from one node to another, their labels joined.

    ``kind``: ``forward`` (down the ranks, bottom to top of the boxes),
    ``back`` (up the ranks: a loop, leaving and entering the boxes at the
    side), ``self`` (a node to itself) or ``flat`` (within the unreachable rank).
    ``curve``: cubic Bezier pieces, the start point then (control, control,
    end) for each piece; the arrowhead is at the last point.
    """

    source: str
    target: str
    labels: tuple[str, ...]
    label_lines: tuple[str, ...]
    kind: str
    curve: tuple[Point, ...]
    label_at: Point | None  # the centre of the label
    label_size: tuple[float, float]
    live: bool  # the source is reachable

    @property
    def label(self) -> str:
        return ", ".join(self.labels)


@dataclass(frozen=True, slots=True)
class Cluster:
    """A sub-flow's nodes: an outline around them (a polygon) and its title."""

    name: str
    title: str
    outline: tuple[Point, ...]
    title_at: Point  # the left end of the title
    depth: int  # 0 for a sub-flow of the main flow, 1 inside that...


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: Mapping[str, Box]
    routes: tuple[Route, ...]
    clusters: tuple[Cluster, ...]
    ranks: tuple[tuple[str, ...], ...]  # node names by rank, left to right
    width: float
    height: float
    crossings: int  # edge crossings between adjacent layers (a measure of tidiness)


class _Item:
    """A box or a dummy point in one layer of the layered graph."""

    __slots__ = ("cluster", "group", "height", "id", "layer", "node", "owner", "pos", "side",
                 "width", "x")

    def __init__(self, id_: int, layer: int, width: float, height: float, node: str | None,
                 group: str, owner: int | None = None, side: int = 1, cluster: str = "") -> None:
        self.id = id_
        self.cluster = cluster  # the innermost sub-flow it belongs to (dummies: both ends)
        self.layer = layer
        self.width = width
        self.height = height
        self.node = node
        self.group = group
        self.owner = owner  # a side point stays right next to this box
        self.side = side  # -1 left of the owner, 1 right
        self.pos = 0
        self.x = 0.0


@dataclass(slots=True)
class _Edge:
    source: str
    target: str
    labels: list[str]
    kind: str = "forward"
    chain: tuple[int, ...] = ()  # dummy items, source side first
    label_item: int | None = None
    sides: tuple[int, int] = (1, 1)  # back edges: the side they leave and enter by


def _merged_edges(flow: Flow) -> dict[str, list[_Edge]]:
    """Each node's arrows, one per target (labels of parallel edges joined)."""
    out: dict[str, list[_Edge]] = {}
    for node in flow.nodes.values():
        mine: dict[str, _Edge] = {}
        for label, target in edges(node.body):
            if target not in flow.nodes:
                continue
            e = mine.setdefault(target, _Edge(node.name, target, []))
            if label and label not in e.labels:
                e.labels.append(label)
        out[node.name] = list(mine.values())
    return out


def _ranks(flow: Flow, out: Mapping[str, list[_Edge]], live: set[str]) -> dict[str, int]:
    """Longest-path ranks over the DFS tree from the start; marks back edges."""
    state: dict[str, int] = {flow.start: 1}  # 1 on the stack, 2 done
    post: list[str] = []
    stack: list[tuple[str, int]] = [(flow.start, 0)]
    while stack:
        name, i = stack[-1]
        nexts = out[name]
        if i < len(nexts):
            stack[-1] = (name, i + 1)
            e = nexts[i]
            s = state.get(e.target, 0)
            if s == 1:
                e.kind = "back"
            elif s == 0:
                state[e.target] = 1
                stack.append((e.target, 0))
        else:
            state[name] = 2
            post.append(name)
            stack.pop()
    rank = {name: 0 for name in post}
    for name in reversed(post):  # a topological order of the forward edges
        for e in out[name]:
            if e.kind != "back":
                rank[e.target] = max(rank[e.target], rank[name] + 1)
    bottom = max(rank.values()) + 1
    for name in flow.nodes:
        if name not in live:
            rank[name] = bottom
    for name in flow.nodes:
        for e in out[name]:
            r, t = rank[name], rank[e.target]
            if e.target == name:
                e.kind = "self"
            elif name not in live:
                e.kind = "flat" if r == t else "back" if t < r else "forward"
    return rank


def _preorder(flow: Flow, out: Mapping[str, list[_Edge]]) -> dict[str, int]:
    order: dict[str, int] = {}
    stack = [flow.start]
    while stack:
        name = stack.pop()
        if name in order:
            continue
        order[name] = len(order)
        stack.extend(e.target for e in reversed(out[name]) if e.target not in order)
    for name in flow.nodes:
        order.setdefault(name, len(order))
    return order


def _pava(desired: Sequence[float], weights: Sequence[float],
          gaps: Sequence[float]) -> list[float]:
    """Minimise sum w (x - d)^2 subject to x[i+1] - x[i] >= gaps[i] (pool adjacent
    violators on the positions less the gaps before them)."""
    if not desired:
        return []
    offs = [0.0]
    for g in gaps:
        offs.append(offs[-1] + g)
    blocks: list[list[float]] = []  # [weight, weighted sum, count]
    for d, w, off in zip(desired, weights, offs, strict=True):
        blocks.append([w, w * (d - off), 1])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] > blocks[-1][1] / blocks[-1][0]:
            w2, s2, n2 = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += s2
            blocks[-1][2] += n2
    out: list[float] = []
    for w, s, n in blocks:
        out.extend([s / w] * int(n))
    return [y + off for y, off in zip(out, offs, strict=True)]


class _Layered:
    """The layered graph: items per layer, segments between adjacent layers."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.layers: list[list[int]] = []
        self.up: dict[int, list[tuple[int, float]]] = {}
        self.down: dict[int, list[tuple[int, float]]] = {}
        self.attached: dict[int, list[int]] = {}
        self.chains: list[list[int]] = []  # the dummies of each long edge, in order
        self.group_sep = _GROUP_SEP  # extra room beside a sub-flow (for its outline)

    def add(self, layer: int, width: float, height: float, node: str | None, group: str,
            owner: int | None = None, side: int = 1, cluster: str = "") -> int:
        item = _Item(len(self.items), layer, width, height, node, group, owner, side, cluster)
        self.items.append(item)
        while len(self.layers) <= layer:
            self.layers.append([])
        self.layers[layer].append(item.id)
        self.up[item.id] = []
        self.down[item.id] = []
        if owner is not None:
            self.attached.setdefault(owner, []).append(item.id)
        return item.id

    def link(self, upper: int, lower: int) -> None:
        a, b = self.items[upper], self.items[lower]
        real = (a.node is not None) + (b.node is not None)
        w = (8.0, 2.0, 1.0)[real]  # long edges stay straight
        self.down[upper].append((lower, w))
        self.up[lower].append((upper, w))

    # ---- order within layers

    def _arrange(self, layer: list[int], score: Mapping[int, float]) -> list[int]:
        items = self.items
        groups: dict[str, list[int]] = {}
        units: list[list[int]] = []
        for i in layer:
            if items[i].owner is not None:
                continue
            g = items[i].group
            if not g:
                units.append([i])
            elif g in groups:
                groups[g].append(i)
            else:
                groups[g] = [i]
                units.append(groups[g])
        for unit in units:
            unit.sort(key=lambda i: (score[i], items[i].pos))
        units.sort(key=lambda u: (sum(score[i] for i in u) / len(u), items[u[0]].pos))
        out: list[int] = []
        for unit in units:
            for i in unit:
                side = self.attached.get(i, [])
                # side points: the one whose edge climbs furthest sits furthest out
                left = sorted((j for j in side if items[j].side < 0),
                              key=lambda j: (score.get(j, 0.0), items[j].pos))
                right = sorted((j for j in side if items[j].side > 0),
                               key=lambda j: (score.get(j, 0.0), items[j].pos))
                out.extend(left)
                out.append(i)
                out.extend(right)
        for p, i in enumerate(out):
            items[i].pos = p
        return out

    def crossings(self) -> int:
        total = 0
        items = self.items
        for layer in self.layers[:-1]:
            segs = sorted((items[a].pos, items[b].pos) for a in layer for b, _ in self.down[a])
            for k, (a1, b1) in enumerate(segs):
                for a2, b2 in segs[k + 1:]:
                    if a2 > a1 and b2 < b1:
                        total += 1
        return total

    def order(self, initial: Mapping[int, float]) -> int:
        """Barycenter sweeps, then each loop takes the side of its box its path runs
        on, and sweeps again; returns the number of crossings."""
        self.layers = [self._arrange(layer, initial) for layer in self.layers]
        self._sweeps(16)
        for _ in range(3):
            if not self._choose_sides():
                break
            self.layers = [self._arrange(layer, {i: float(self.items[i].pos) for i in layer})
                           for layer in self.layers]
            self._sweeps(8)
        self._transpose()
        return self.crossings()

    def _transpose(self, rounds: int = 6) -> None:
        """Swap neighbouring boxes (with their side points) or dummies while that
        removes crossings with the layers above and below."""
        items = self.items

        def unit_of(i: int) -> int:
            owner = items[i].owner
            return owner if owner is not None else i

        def cross(a: list[int], b: list[int]) -> int:
            """Crossings between a's and b's segments when a is left of b."""
            n = 0
            for nbrs in (self.up, self.down):
                pa = [items[j].pos for i in a for j, _ in nbrs[i]]
                pb = [items[j].pos for i in b for j, _ in nbrs[i]]
                n += sum(1 for x in pa for y in pb if x > y)
            return n

        for _ in range(rounds):
            improved = False
            for layer in self.layers:
                units: list[list[int]] = []
                for i in layer:
                    if units and unit_of(units[-1][0]) == unit_of(i):
                        units[-1].append(i)
                    else:
                        units.append([i])
                for k in range(len(units) - 1):
                    a, b = units[k], units[k + 1]
                    if items[unit_of(a[0])].group != items[unit_of(b[0])].group:
                        continue
                    if cross(a, b) > cross(b, a):
                        units[k], units[k + 1] = b, a
                        layer[:] = [i for u in units for i in u]
                        for p, i in enumerate(layer):
                            items[i].pos = p
                        improved = True
            if not improved:
                break

    def _choose_sides(self) -> bool:
        """Put each side point on the side of its box where its path runs (compared with
        the box's other edges in the same neighbouring layer); self-loops go on the
        quieter side.  Returns whether anything moved."""
        items = self.items
        changed = False
        for owner, attached in self.attached.items():
            loops = []
            for j in attached:
                if self.up[j]:
                    nb, ref = self.up[j][0][0], self.up[owner]
                elif self.down[j]:
                    nb, ref = self.down[j][0][0], self.down[owner]
                else:
                    loops.append(j)
                    continue
                if not ref:
                    continue
                bary = sum(items[k].pos for k, _ in ref) / len(ref)
                side = items[j].side if items[nb].pos == bary else (
                    -1 if items[nb].pos < bary else 1)
                changed |= side != items[j].side
                items[j].side = side
            for j in loops:
                right = sum(1 for k in attached if k not in loops and items[k].side > 0)
                left = sum(1 for k in attached if k not in loops and items[k].side < 0)
                side = -1 if right > left else 1
                changed |= side != items[j].side
                items[j].side = side
        return changed

    def _sweeps(self, sweeps: int) -> int:
        """Alternating down and up barycenter sweeps from the current order; keeps the
        order with the fewest crossings (returned)."""
        items = self.items
        best = self.crossings()
        best_layers = [list(layer) for layer in self.layers]
        for sweep in range(sweeps):
            downward = sweep % 2 == 0
            seq = range(1, len(self.layers)) if downward else range(len(self.layers) - 2, -1, -1)
            nbrs = self.up if downward else self.down
            for li in seq:
                score: dict[int, float] = {}
                for i in self.layers[li]:
                    ns = nbrs[i]
                    score[i] = (sum(items[j].pos for j, _ in ns) / len(ns) if ns
                                else float(items[i].pos))
                self.layers[li] = self._arrange(self.layers[li], score)
            c = self.crossings()
            if c < best:
                best = c
                best_layers = [list(layer) for layer in self.layers]
            if best == 0:
                break
        self.layers = best_layers
        for layer in self.layers:
            for p, i in enumerate(layer):
                items[i].pos = p
        return best

    # ---- x coordinates

    def _gap(self, a: _Item, b: _Item) -> float:
        real = (a.node is not None) + (b.node is not None)
        if b.owner == a.id or a.owner == b.id:
            sep = _SIDE_SEP
        elif real == 2:
            sep = _NODE_SEP
        elif real == 1:
            sep = _MIXED_SEP
        else:
            sep = _DUMMY_SEP
        ga = a.group if a.owner is None else self.items[a.owner].group
        gb = b.group if b.owner is None else self.items[b.owner].group
        if ga != gb and (ga or gb):
            sep += self.group_sep
        return (a.width + b.width) / 2 + sep

    def _snap(self, layer: list[int]) -> None:
        """Side points sit right next to their box."""
        items = self.items
        for k, i in enumerate(layer):
            it = items[i]
            if it.owner is not None and it.side > 0:
                prev = items[layer[k - 1]]
                it.x = prev.x + self._gap(prev, it)
        for k in range(len(layer) - 1, -1, -1):
            it = items[layer[k]]
            if it.owner is not None and it.side < 0:
                nxt = items[layer[k + 1]]
                it.x = nxt.x - self._gap(it, nxt)

    def place_x(self, passes: int = 12, loose_last: bool = False) -> None:
        """Least-squares fits to the neighbours, layer by layer, down and up; with
        ``loose_last`` the last layer (unreachable boxes) is centred under the rest."""
        items = self.items
        for layer in self.layers:
            x = 0.0
            for k, i in enumerate(layer):
                if k:
                    x += self._gap(items[layer[k - 1]], items[i])
                items[i].x = x
            for i in layer:
                items[i].x -= x / 2

        def fit(li: int, up: bool, down: bool) -> None:
            layer = self.layers[li]
            desired: list[float] = []
            weights: list[float] = []
            for i in layer:
                it = items[i]
                ns = (self.up[i] if up else []) + (self.down[i] if down else [])
                w = sum(w for _, w in ns)
                if it.owner is not None:  # follows its box (snapped below)
                    desired.append(items[it.owner].x + it.side * (it.width / 2 + 0.3))
                    weights.append(0.01)
                elif w:
                    desired.append(sum(items[j].x * w for j, w in ns) / w)
                    weights.append(w)
                else:
                    desired.append(it.x)
                    weights.append(0.25)
            gaps = [self._gap(items[a], items[b]) for a, b in pairwise(layer)]
            for i, x in zip(layer, _pava(desired, weights, gaps), strict=True):
                items[i].x = x
            self._snap(layer)

        n = len(self.layers)
        for _ in range(passes):
            for li in range(1, n):
                fit(li, True, False)
            for li in range(n - 2, -1, -1):
                fit(li, False, True)
        for li in range(n):
            fit(li, True, True)
        for _ in range(2):
            self._straighten()
        if loose_last and n > 1:
            rest = [items[i] for layer in self.layers[:-1] for i in layer]
            last = [items[i] for i in self.layers[-1]]
            lo = min(it.x - it.width / 2 for it in rest)
            hi = max(it.x + it.width / 2 for it in rest)
            a = min(it.x - it.width / 2 for it in last)
            b = max(it.x + it.width / 2 for it in last)
            shift = (lo - a) + max(0.0, ((hi - lo) - (b - a)) / 2)
            for it in last:
                it.x += shift

    def _straighten(self) -> None:
        """Line up each long edge's dummies on one x wherever their neighbours allow,
        so long edges run straight instead of jogging at every layer."""
        items = self.items
        inf = float("inf")

        def room(i: int) -> tuple[float, float]:
            it = items[i]
            layer = self.layers[it.layer]
            lo, hi = -inf, inf
            if it.pos > 0:
                left = items[layer[it.pos - 1]]
                lo = left.x + self._gap(left, it)
            if it.pos < len(layer) - 1:
                right = items[layer[it.pos + 1]]
                hi = right.x - self._gap(it, right)
            return lo, hi

        def align(run: list[int], lo: float, hi: float, ends: list[float]) -> None:
            xs = sorted([items[i].x for i in run] + ends)
            x = min(hi, max(lo, xs[len(xs) // 2]))
            for i in run:
                items[i].x = x

        for chain in sorted(self.chains, key=len, reverse=True):
            run: list[int] = []
            lo, hi = -inf, inf
            for i in chain:
                a, b = room(i)
                if run and (max(lo, a) > min(hi, b)):
                    align(run, lo, hi, [])
                    run, lo, hi = [], -inf, inf
                run.append(i)
                lo, hi = max(lo, a), min(hi, b)
            if run:
                align(run, lo, hi, [])


def layout(flow: Flow) -> Layout:
    """A layered top-to-bottom layout of the flow (see the module's notes).

    Units are inches (the drawing uses them 1:1), y grows downward.
    Deterministic: the same flow gives the same layout.
    """
    live = reachable(flow)
    out = _merged_edges(flow)
    rank = _ranks(flow, out, live)
    pre = _preorder(flow, out)
    g = _Layered()
    g.group_sep = _GROUP_SEP + 0.1 * max((n.count("/") for n in flow.nodes), default=0)

    box_text: dict[str, tuple[tuple[str, ...], int]] = {}
    node_item: dict[str, int] = {}
    initial: dict[int, float] = {}
    for name in sorted(flow.nodes, key=lambda n: pre[n]):
        node = flow.nodes[name]
        lines, notes = _box_lines(node)
        box_text[name] = lines, notes
        w, h = _box_size(lines, notes, node_kind(node))
        i = g.add(2 * rank[name], w, h, name, _cluster_of(name).split("/")[0],
                  cluster=_cluster_of(name))
        node_item[name] = i
        initial[i] = pre[name]

    all_edges = [e for name in sorted(flow.nodes, key=lambda n: pre[n]) for e in out[name]]
    for k, e in enumerate(all_edges):
        label_lines = _label_lines(e.labels)
        lw, lh = _label_size(label_lines)
        src, dst = node_item[e.source], node_item[e.target]
        cs, ct = _cluster_of(e.source), _cluster_of(e.target)
        group = cs.split("/")[0] if cs and cs.split("/")[0] == ct.split("/")[0] else ""
        common = "/".join(a for a, b in zip(cs.split("/"), ct.split("/"), strict=False)
                          if a == b) if cs and ct else ""
        key0 = pre[e.source] + (k + 1) / (len(all_edges) + 2)
        ls, lt = g.items[src].layer, g.items[dst].layer
        if e.kind == "forward":
            chain: list[int] = []
            for layer in range(ls + 1, lt):
                label = layer == ls + 1
                i = g.add(layer, max(lw, _DUMMY_W) if label else _DUMMY_W,
                          lh if label else 0.0, None, group, cluster=common)
                initial[i] = key0
                chain.append(i)
            for a, b in pairwise([src, *chain, dst]):
                g.link(a, b)
            e.chain = tuple(chain)
            e.label_item = chain[0] if chain else None
            g.chains.append(chain)
        elif e.kind == "back":
            # up the side: a side point next to each box, dummies between
            s_side = g.add(ls, _DUMMY_W, 0.0, None, group, owner=src, side=1,
                           cluster=common)
            mid = list(range(lt + 1, ls))
            odd = [layer for layer in mid if layer % 2 == 1] or mid
            label_layer = odd[(len(odd) - 1) // 2] if odd else None
            chain = [s_side]
            for layer in reversed(mid):
                is_label = layer == label_layer
                i = g.add(layer, max(lw, _DUMMY_W) if is_label else _DUMMY_W,
                          lh if is_label else 0.0, None, group, cluster=common)
                initial[i] = key0
                chain.append(i)
                if is_label:
                    e.label_item = i
            chain.append(g.add(lt, _DUMMY_W, 0.0, None, group, owner=dst, side=1,
                               cluster=common))
            for lower, upper in pairwise(chain):
                g.link(upper, lower)
            e.chain = tuple(chain)
            g.chains.append(chain[1:-1])
        elif e.kind == "self":
            i = g.add(ls, _LOOP_W + lw + (0.06 if lw else 0.0), lh, None, group, owner=src,
                      side=1, cluster=common)
            e.chain = (i,)
            e.label_item = i

    crossings = g.order(initial)
    for e in all_edges:
        if e.chain and e.kind in ("back", "self"):
            e.sides = (g.items[e.chain[0]].side, g.items[e.chain[-1]].side)
    g.place_x(loose_last=len(live) < len(flow.nodes))
    return _finish(flow, g, all_edges, rank, live, box_text, node_item, crossings)


def _side_point(box: Box, side: int, y: float) -> Point:
    """The point of the box's outline on that side at height y (hexagons slant)."""
    inset = _HEX * abs(y - box.y) / (box.height / 2) if box.kind == "logic" else 0.0
    return (box.right - inset if side > 0 else box.left + inset), y


def _vbez(a: Point, b: Point) -> list[Point]:
    """A Bezier piece from a to b leaving and arriving vertically."""
    h = (b[1] - a[1]) / 2
    return [(a[0], a[1] + h), (b[0], b[1] - h), b]


def _finish(flow: Flow, g: _Layered, all_edges: list[_Edge], rank: Mapping[str, int],
            live: set[str], box_text: Mapping[str, tuple[tuple[str, ...], int]],
            node_item: Mapping[str, int], crossings: int) -> Layout:
    items = g.items
    # y, layer by layer: more room where edges run far sideways, and above the
    # first layer of a sub-flow for its title
    cluster_first: dict[str, int] = {}
    for name, i in node_item.items():
        for p in _prefixes(_cluster_of(name)) if _cluster_of(name) else []:
            cluster_first[p] = min(cluster_first.get(p, 10 ** 9), items[i].layer)
    y = _START_ROOM
    layer_y: list[float] = []
    layer_h: list[float] = []
    for li, layer in enumerate(g.layers):
        if li:
            spread = max([abs(items[a].x - items[b].x) for b in layer for a, _ in g.up[b]],
                         default=0.0)
            y += min(_MAX_GAP, max(_LAYER_GAP, _SLOPE * spread))
        h = max([items[i].height for i in layer], default=0.0)
        if li % 2 == 1:
            h = max(h, _EMPTY_LABEL_H)
        y += sum(1 for first in cluster_first.values() if first == li) * _CLUSTER_TITLE
        layer_y.append(y + h / 2)
        layer_h.append(h)
        y += h
    bottom = y

    boxes: dict[str, Box] = {}
    for name, i in node_item.items():
        it = items[i]
        node = flow.nodes[name]
        lines, notes = box_text[name]
        order = sum(1 for j in g.layers[it.layer][:it.pos] if items[j].node is not None)
        boxes[name] = Box(name, node.type, node_kind(node), lines, notes, it.x,
                          layer_y[it.layer], it.width, it.height, rank[name], order,
                          name in live, name == flow.start, _cluster_of(name))
    ranks = [tuple(items[i].node or "" for i in layer if items[i].node is not None)
             for layer in g.layers[::2]]

    def at(i: int) -> Point:
        return items[i].x, layer_y[items[i].layer]

    # ports: forward edges leave at the bottom and enter at the top, spread in the
    # order of where they go; loops use the sides
    out_ports: dict[str, list[tuple[float, int]]] = {}
    in_ports: dict[str, list[tuple[float, int]]] = {}
    for k, e in enumerate(all_edges):
        if e.kind == "forward":
            first = items[e.chain[0]].x if e.chain else boxes[e.target].x
            last = items[e.chain[-1]].x if e.chain else boxes[e.source].x
            out_ports.setdefault(e.source, []).append((first, k))
            in_ports.setdefault(e.target, []).append((last, k))
    for ports in (*out_ports.values(), *in_ports.values()):
        ports.sort()

    def port_x(box: Box, ports: list[tuple[float, int]], k: int) -> float:
        n = len(ports)
        idx = [p[1] for p in ports].index(k)
        inner = min(box.width - 2 * (_HEX + 0.06 if box.kind == "logic" else 0.12),
                    0.28 * (n - 1))
        return box.x - inner / 2 + (inner * idx / (n - 1) if n > 1 else 0.0)

    loop_items = {e.chain[0] for e in all_edges if e.kind == "self"}

    def side_y(box: Box, dummy: int) -> float:
        """Loops leave and enter at the side; the nearest side point sits highest."""
        it = items[dummy]
        same = [j for j in g.attached.get(node_item[box.name], []) if items[j].side == it.side]
        others = sorted((j for j in same if j not in loop_items),
                        key=lambda j: abs(items[j].x - box.x))
        lo, hi = (0.2, 0.8) if len(others) == len(same) else (0.1, 0.2)
        n = len(others)
        frac = lo + (hi - lo) * (others.index(dummy) / (n - 1)) if n > 1 else (lo + hi) / 2
        return box.top + box.height * frac

    def band(i: int) -> tuple[float, float]:
        it = items[i]
        return layer_y[it.layer] - layer_h[it.layer] / 2, layer_y[it.layer] + layer_h[it.layer] / 2

    routes: list[Route] = []
    flat_depth = 0
    for k, e in enumerate(all_edges):
        sb, tb = boxes[e.source], boxes[e.target]
        label_lines = _label_lines(e.labels)
        lsize = _label_size(label_lines)
        label_at: Point | None = None
        curve: list[Point]
        if e.kind == "forward":
            # straight down through each layer, S-curves in the gaps between
            pts = [(port_x(sb, out_ports[e.source], k), sb.bottom)]
            for i in e.chain:
                y0, y1 = band(i)
                pts += [(items[i].x, y0), (items[i].x, y1)]
            pts.append((port_x(tb, in_ports[e.target], k), tb.top))
            curve = [pts[0]]
            for a, b in pairwise(pts):
                curve += _vbez(a, b)
        elif e.kind == "back":
            # out at the side, turn up, climb through the dummies, turn in at the side
            (ss, ts), s_side, t_side = e.sides, e.chain[0], e.chain[-1]
            p0 = _side_point(sb, ss, side_y(sb, s_side))
            p1 = _side_point(tb, ts, side_y(tb, t_side))
            ax, bx = items[s_side].x, items[t_side].x
            q0 = (ax, min(p0[1] - 0.03, max(band(s_side)[0], p0[1] - abs(ax - p0[0]))))
            q1 = (bx, max(p1[1] + 0.03, min(band(t_side)[1], p1[1] + abs(bx - p1[0]))))
            curve = [p0, (p0[0] + (ax - p0[0]) * 0.55, p0[1]), (ax, q0[1] + (p0[1] - q0[1]) * 0.45),
                     q0]
            pts = [q0]
            for i in e.chain[1:-1]:
                y0, y1 = band(i)
                pts += [(items[i].x, y1), (items[i].x, y0)]
            pts.append(q1)
            for u, v in pairwise(pts):
                curve += _vbez(u, v)
            curve += [(bx, q1[1] - (q1[1] - p1[1]) * 0.55), (p1[0] + (bx - p1[0]) * 0.45, p1[1]),
                      p1]
        elif e.kind == "self":
            it, side = items[e.chain[0]], e.sides[0]
            edge_x = sb.right if side > 0 else sb.left
            near = it.x - side * it.width / 2  # the loop's side of its room
            reach = near + side * (_LOOP_W - 0.08)
            y0, y1 = sb.y - sb.height * 0.22, sb.y + sb.height * 0.22
            c = edge_x + (reach - edge_x) * 1.33
            curve = [(edge_x, y0), (c, y0 - 0.12), (c, y1 + 0.12), (edge_x, y1)]
            if label_lines:
                label_at = (reach + side * (0.06 + lsize[0] / 2), sb.y)
        else:  # flat: an arc below the unreachable rank
            flat_depth += 1
            depth = 0.2 + 0.16 * flat_depth
            low = max(sb.bottom, tb.bottom) + depth
            curve = [(sb.x, sb.bottom), (sb.x, low + depth * 0.3), (tb.x, low + depth * 0.3),
                     (tb.x, tb.bottom)]
            if label_lines:
                label_at = ((sb.x + tb.x) / 2, low)
        if e.label_item is not None and e.kind != "self" and label_lines:
            label_at = at(e.label_item)
        routes.append(Route(e.source, e.target, tuple(e.labels), label_lines, e.kind,
                            tuple(curve), label_at, lsize, e.source in live))
    if flat_depth:
        bottom += 0.3 + 0.16 * flat_depth

    clusters = _clusters(flow, g, boxes, node_item, layer_y, layer_h, routes)

    # shift everything so the picture starts at a small margin
    xs = [b.left for b in boxes.values()] + [p[0] for r in routes for p in r.curve]
    xs += [r.label_at[0] - r.label_size[0] / 2 for r in routes if r.label_at]
    xs += [p[0] for c in clusters for p in c.outline]
    xe = [b.right for b in boxes.values()] + [p[0] for r in routes for p in r.curve]
    xe += [r.label_at[0] + r.label_size[0] / 2 for r in routes if r.label_at]
    xe += [p[0] for c in clusters for p in c.outline]
    margin = 0.3
    dx = margin - min(xs)

    def sh(p: Point) -> Point:
        return round(p[0] + dx, 4), round(p[1], 4)

    boxes = {n: _moved(b, dx) for n, b in boxes.items()}
    routes = [Route(r.source, r.target, r.labels, r.label_lines, r.kind,
                    tuple(sh(p) for p in r.curve), sh(r.label_at) if r.label_at else None,
                    r.label_size, r.live) for r in routes]
    clusters = [Cluster(c.name, c.title, tuple(sh(p) for p in c.outline), sh(c.title_at),
                        c.depth) for c in clusters]
    return Layout(boxes, tuple(routes), tuple(clusters), tuple(ranks),
                  round(max(xe) + dx + margin, 4), round(bottom + 0.2, 4), crossings)


def _moved(b: Box, dx: float) -> Box:
    return Box(b.name, b.type, b.kind, b.lines, b.notes, round(b.x + dx, 4), round(b.y, 4),
               b.width, b.height, b.rank, b.order, b.reachable, b.start, b.cluster)


def _bezier_at_y(curve: Sequence[Point], y: float) -> list[float]:
    """Where (x) a curve crosses the height y (sampled)."""
    out: list[float] = []
    for k in range(0, len(curve) - 3, 3):
        p0, p1, p2, p3 = curve[k:k + 4]
        prev: Point | None = None
        for step in range(17):
            t = step / 16
            u = 1 - t
            pt = (u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
                  u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1])
            if prev is not None and (prev[1] - y) * (pt[1] - y) <= 0 and prev[1] != pt[1]:
                out.append(prev[0] + (pt[0] - prev[0]) * (y - prev[1]) / (pt[1] - prev[1]))
            prev = pt
    return out


def _clusters(flow: Flow, g: _Layered, boxes: Mapping[str, Box], node_item: Mapping[str, int],
              layer_y: Sequence[float], layer_h: Sequence[float],
              routes: Sequence[Route]) -> list[Cluster]:
    """An outline around each sub-flow's boxes, following them layer by layer; the title
    goes at the top, left or right, where fewer arrows cross it."""
    items = g.items
    names = sorted({p for b in boxes.values() if b.cluster for p in _prefixes(b.cluster)})
    deepest = max((n.count("/") for n in names), default=0)
    out: list[Cluster] = []
    for name in names:
        depth = name.count("/")
        pad = _CLUSTER_PAD + 0.1 * (deepest - depth)

        def inside(it: _Item, name: str = name) -> bool:
            if it.owner is not None and it.node is None:
                it = items[it.owner]  # a loop's side point goes with its box
            return it.cluster == name or it.cluster.startswith(name + "/")

        node_layers = [items[node_item[b.name]].layer for b in boxes.values()
                       if b.cluster == name or b.cluster.startswith(name + "/")]
        first, last = min(node_layers), max(node_layers)
        spans: dict[int, tuple[float, float]] = {}
        for li in range(first, last + 1):
            mine = [items[i] for i in g.layers[li] if inside(items[i])]
            if mine:
                spans[li] = (min(it.x - it.width / 2 for it in mine),
                             max(it.x + it.width / 2 for it in mine))
        # each layer: the sub-flow's own span; then notches (a layer narrower than
        # both its neighbours) are filled, unless something else is in the way
        room = 0.08 + 0.1 * (deepest - depth)  # nested outlines stay apart
        layers = range(first, last + 1)
        lefts: list[float] = []
        rights: list[float] = []
        walls: list[tuple[float, float]] = []
        lo, hi = spans[first]
        for li in layers:
            lo, hi = spans.get(li, (lo, hi))
            others = [items[i] for i in g.layers[li] if not inside(items[i])]
            walls.append((max([it.x + it.width / 2 + room for it in others if it.x < lo],
                              default=-math.inf),
                          min([it.x - it.width / 2 - room for it in others if it.x > hi],
                              default=math.inf)))
            lefts.append(lo - pad)
            rights.append(hi + pad)
        for _ in range(len(lefts)):
            changed = False
            for k in range(1, len(lefts) - 1):
                want_l = max(lefts[k - 1], lefts[k + 1])
                if want_l < lefts[k] - 1e-6 and walls[k][0] < lefts[k]:
                    lefts[k] = max(want_l, min(walls[k][0], lefts[k]))
                    changed = True
                want_r = min(rights[k - 1], rights[k + 1])
                if want_r > rights[k] + 1e-6 and walls[k][1] > rights[k]:
                    rights[k] = min(want_r, max(walls[k][1], rights[k]))
                    changed = True
            if not changed:
                break
        bands: list[tuple[float, float, float, float]] = []  # y0, y1, left, right
        for k, li in enumerate(layers):
            y0 = layer_y[li] - layer_h[li] / 2 - (_LAYER_GAP / 2 if li != first else pad)
            y1 = layer_y[li] + layer_h[li] / 2 + (_LAYER_GAP / 2 if li != last else pad)
            if li == first:
                y0 -= _CLUSTER_TITLE * (1 + deepest - depth) - 0.04
            if bands:  # meet the band above
                y0 = bands[-1][1]
            bands.append((y0, y1, lefts[k], rights[k]))
        left = [p for b in bands for p in ((b[2], b[0]), (b[2], b[1]))]
        right = [p for b in reversed(bands) for p in ((b[3], b[1]), (b[3], b[0]))]
        # the title: in the widest stretch of the top that no arrow crosses
        ty = bands[0][0] + _CLUSTER_TITLE / 2 + 0.03
        x0, x1 = bands[0][2] + 0.1, bands[0][3] - 0.1
        cuts = sorted(x for r in routes for x in _bezier_at_y(r.curve, ty) if x0 < x < x1)
        free = [(a + 0.07, b - 0.07) for a, b in pairwise([x0 - 0.07, *cuts, x1 + 0.07])]
        title, spot = _cluster_title(flow, name), x0
        for text in (title, f"sub-flow {name}", name.rpartition("/")[2]):
            tw = text_width(text) * _col_w(8, True)
            fits = [a for a, b in free if b - a >= tw]
            if fits:
                title, spot = text, fits[0]
                break
        out.append(Cluster(name, title, tuple(_simplify(left + right)), (spot, ty), depth))
    return out


def _simplify(points: Sequence[Point]) -> list[Point]:
    """Drop repeated and collinear points of a rectilinear polygon."""
    pts: list[Point] = []
    for p in points:
        if not pts or (abs(p[0] - pts[-1][0]) > 1e-9 or abs(p[1] - pts[-1][1]) > 1e-9):
            pts.append(p)
    changed = True
    while changed and len(pts) > 4:
        changed = False
        for i in range(len(pts)):
            a, b, c = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
            if (abs(a[0] - b[0]) < 1e-9 and abs(b[0] - c[0]) < 1e-9) or \
                    (abs(a[1] - b[1]) < 1e-9 and abs(b[1] - c[1]) < 1e-9):
                del pts[i]
                changed = True
                break
    return pts


# --------------------------------------------------------------------- render


def render(flow: Flow, path: str | Path, fmt: str | None = None) -> None:
    """Write the flow as ``.dot`` (DOT text), ``.svg`` or ``.png`` (drawn with matplotlib).

    ``fmt`` (``"dot"``, ``"svg"``, ``"png"``) overrides the file's extension.
    """
    p = Path(path)
    kind = (fmt if fmt is not None else p.suffix).lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"cannot write {p.name!r} as {kind or 'a file without an extension'!r}:"
                         f" the formats are {', '.join('.' + f for f in FORMATS)}")
    if kind == "dot":
        p.write_text(to_dot(flow), encoding="utf-8")
        return
    _draw(flow, layout(flow), p, kind)


_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
              "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei",
              "PingFang SC", "Hiragino Sans GB", "Heiti SC", "Sarasa Gothic SC",
              "AR PL UMing CN", "Droid Sans Fallback", "Arial Unicode MS")


def _fonts() -> list[str]:
    """DejaVu Sans, then any installed font with Chinese glyphs as a fallback."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in _CJK_FONTS if f in have)]


def _draw(flow: Flow, lay: Layout, path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    width = max(lay.width, 6.5)
    rows = _legend_rows(width - 0.6)
    header = 0.62 + (0.2 if flow.description else 0.0) + 0.24 * len(rows) + 0.1
    height = lay.height + header
    dx = (width - lay.width) / 2
    fonts = _fonts()
    if kind == "png" and len(fonts) == 1 and _has_wide(flow, lay):
        warnings.warn("no font with Chinese characters is installed (e.g. Noto Sans CJK, "
                      "WenQuanYi): they show as boxes in the PNG; the SVG keeps them as text",
                      stacklevel=3)
    rc: dict[str, Any] = {"font.family": fonts, "svg.fonttype": "none",
                          "svg.hashsalt": "acd-flow", "path.simplify": False}
    with matplotlib.rc_context(rc), warnings.catch_warnings():  # type: ignore[arg-type]
        warnings.filterwarnings("ignore", message=r".*Glyph .* missing from")
        fig = Figure(figsize=(width, height), dpi=110)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(-dx, width - dx)
        ax.set_ylim(lay.height, -header)
        ax.set_axis_off()
        _draw_header(ax, flow, lay, -dx + 0.3, -header, rows)
        for c in sorted(lay.clusters, key=lambda c: c.depth):
            _draw_cluster(ax, c)
        for r in lay.routes:
            _draw_route(ax, r)
        for b in lay.boxes.values():
            _draw_box(ax, b)
        meta: dict[str, str | None] = ({"Software": None} if kind == "png"
                                       else {"Date": None})
        fig.savefig(path, format=kind, dpi=110, facecolor="white", metadata=meta)


def _has_wide(flow: Flow, lay: Layout) -> bool:
    texts = [flow.name, flow.description, *(t for b in lay.boxes.values() for t in b.lines),
             *(t for r in lay.routes for t in r.label_lines),
             *(c.title for c in lay.clusters)]
    return any(text_width(t) > len(t) for t in texts)


def _legend_rows(room: float) -> list[list[tuple[str, str]]]:
    entries = [(k, s.title) for k, s in STYLES.items()]
    entries += [("start", "start"), ("dead", "unreachable"), ("back", "loop back")]
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0.0
    for e in entries:
        w = _legend_w(e[1])
        if rows[-1] and used + w > room:
            rows.append([])
            used = 0.0
        rows[-1].append(e)
        used += w
    return rows


def _legend_w(text: str) -> float:
    return 0.38 + text_width(text) * 7.5 * _EM * 0.56 + 0.25


def _draw_header(ax: Axes, flow: Flow, lay: Layout, x: float, top: float,
                 rows: list[list[tuple[str, str]]]) -> None:
    from matplotlib.patches import FancyBboxPatch

    y = top + 0.42
    ax.text(x, y, flow.name, fontsize=15, fontweight="bold", color=_TEXT, va="baseline",
            ha="left")
    live = sum(1 for b in lay.boxes.values() if b.reachable)
    facts = [f"version {flow.version}" if flow.version else "",
             f"{len(lay.boxes)} nodes" + (f", {len(lay.boxes) - live} unreachable"
                                          if live < len(lay.boxes) else ""),
             Path(flow.file).name if flow.file else ""]
    ax.text(x + text_width(flow.name) * _col_w(15, True) + 0.2, y,
            "   ·   ".join(s for s in facts if s), fontsize=9, color=_SUBTLE, va="baseline")
    if flow.description:
        y += 0.22
        ax.text(x, y, _clip(flow.description, 150), fontsize=8.5, color=_SUBTLE,
                va="baseline", style="italic")
    y += 0.08
    for row in rows:
        y += 0.24
        cx = x
        for key, text in row:
            rounded = "round,pad=0,rounding_size=0.04"
            if key in STYLES:
                st = STYLES[key]
                ax.add_patch(FancyBboxPatch((cx, y - 0.07), 0.3, 0.14, boxstyle=rounded,
                                            fc=st.fill, ec=st.line, lw=1.0))
            elif key == "start":
                ax.add_patch(FancyBboxPatch((cx, y - 0.07), 0.3, 0.14, boxstyle=rounded,
                                            fc="white", ec=_TEXT, lw=2.2))
            elif key == "dead":
                ax.add_patch(FancyBboxPatch((cx, y - 0.07), 0.3, 0.14, boxstyle=rounded,
                                            fc="#f8fafc", ec="#64748b", ls=(0, (3, 2)), lw=1.0))
            else:
                _arrow(ax, [(cx + 0.3, y + 0.06), (cx + 0.3, y - 0.12), (cx, y - 0.12),
                            (cx, y + 0.04)], _BACK, "-")
            ax.text(cx + 0.38, y, text, fontsize=7.5, color=_TEXT, va="center")
            cx += _legend_w(text)


def _arrow(ax: Axes, curve: Sequence[Point], color: str, ls: LineStyle,
           lw: float = 1.0) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MPath

    codes = [MPath.MOVETO] + [MPath.CURVE4] * (len(curve) - 1)
    ax.add_patch(FancyArrowPatch(path=MPath(curve, codes),
                                 arrowstyle="-|>,head_length=0.55,head_width=0.28",
                                 mutation_scale=10, color=color, lw=lw, linestyle=ls,
                                 shrinkA=0, shrinkB=0, zorder=2, joinstyle="round",
                                 capstyle="round"))


def _draw_route(ax: Axes, r: Route) -> None:
    color = _EDGE if r.kind == "forward" else _BACK
    if not r.live:
        color = _DEAD
    ls: LineStyle = "-" if r.live else (0, (4, 3))
    _arrow(ax, r.curve, color, ls, 1.1 if r.kind == "forward" else 1.0)
    if r.label_at and r.label_lines:
        ax.text(r.label_at[0], r.label_at[1], "\n".join(r.label_lines), fontsize=_LABEL_PT,
                color=color, ha="center", va="center", linespacing=1.15, zorder=4,
                bbox={"boxstyle": "round,pad=0.2,rounding_size=0.35", "fc": "white",
                      "ec": "none", "alpha": 0.95})


def _rounded(points: Sequence[Point], r: float) -> tuple[list[Point], list[int]]:
    """A closed polygon with its corners rounded."""
    from matplotlib.path import Path as MPath

    verts: list[Point] = []
    codes: list[int] = []
    n = len(points)
    for i in range(n):
        a, b, c = points[i - 1], points[i], points[(i + 1) % n]
        da, dc = math.dist(a, b), math.dist(b, c)
        ra, rc = min(r, da / 2), min(r, dc / 2)
        p = (b[0] + (a[0] - b[0]) * ra / da, b[1] + (a[1] - b[1]) * ra / da)
        q = (b[0] + (c[0] - b[0]) * rc / dc, b[1] + (c[1] - b[1]) * rc / dc)
        verts += [p, b, q]
        codes += [int(MPath.MOVETO if i == 0 else MPath.LINETO), int(MPath.CURVE3),
                  int(MPath.CURVE3)]
    verts.append(verts[0])
    codes.append(int(MPath.CLOSEPOLY))
    return verts, codes


def _draw_cluster(ax: Axes, c: Cluster) -> None:
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MPath

    fill = ("#f1f5f9", "#e7ecf2", "#dde4ec")[min(c.depth, 2)]
    verts, codes = _rounded(c.outline, 0.12)
    ax.add_patch(PathPatch(MPath(verts, codes), fc=fill, ec="#94a3b8", lw=0.9, zorder=0))
    ax.text(c.title_at[0], c.title_at[1], c.title, fontsize=8, color=_SUBTLE,
            fontweight="bold", va="center", ha="left", zorder=1)


def _draw_box(ax: Axes, b: Box) -> None:
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon

    st = STYLES.get(b.kind, STYLES["logic"])
    ls: LineStyle = "-" if b.reachable else (0, (4, 2.5))
    lw = 2.4 if b.start else 1.2
    fill = st.fill if b.reachable else "#f8fafc"
    if b.kind == "logic":
        h = _HEX
        pts = [(b.left, b.y), (b.left + h, b.top), (b.right - h, b.top), (b.right, b.y),
               (b.right - h, b.bottom), (b.left + h, b.bottom)]
        ax.add_patch(Polygon(pts, closed=True, fc=fill, ec=st.line, lw=lw, ls=ls, zorder=3,
                             joinstyle="round"))
    else:
        ax.add_patch(FancyBboxPatch((b.left, b.top), b.width, b.height,
                                    boxstyle="round,pad=0,rounding_size=0.09", fc=fill,
                                    ec=st.line, lw=lw, ls=ls, zorder=3))
    if b.start:
        ax.add_patch(Circle((b.x, b.top - 0.3), 0.065, fc=_TEXT, ec=_TEXT, zorder=3))
        _arrow(ax, [(b.x, b.top - 0.23), (b.x, b.top - 0.15), (b.x, b.top - 0.09),
                    (b.x, b.top - 0.01)], _TEXT, "-", 1.3)
    text = _TEXT if b.reachable else "#64748b"
    y = b.top + _PAD_Y
    body = b.lines[1:len(b.lines) - b.notes]
    note = b.lines[len(b.lines) - b.notes:]
    lh = _line_h(_NAME_PT)
    ax.text(b.x, y + lh / 2, b.lines[0], fontsize=_NAME_PT, fontweight="bold", color=text,
            ha="center", va="center", zorder=4)
    y += lh
    for line in body:
        lh = _line_h(_TEXT_PT)
        ax.text(b.x, y + lh / 2, line, fontsize=_TEXT_PT,
                color=_SUBTLE if b.reachable else "#64748b", ha="center", va="center",
                zorder=4)
        y += lh
    for line in note:
        lh = _line_h(_NOTE_PT)
        ax.text(b.x, y + lh / 2, line, fontsize=_NOTE_PT, color="#6b7280", style="italic",
                ha="center", va="center", zorder=4)
        y += lh
