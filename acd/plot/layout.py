"""A layered (Sugiyama-style) top-to-bottom layout of a flow, in pure Python.

:func:`layout` gives boxes with coordinates, edges as smooth curves (cubic
Bezier pieces) and sub-flow outlines; :mod:`acd.plot.draw` draws them.

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
   removes crossings ("transpose").  This runs from several starting orders
   (the preorder from the start node, its mirror image, seeded shuffles) and
   the order with the fewest crossings is kept (see :mod:`acd.plot.layered`).
4. *Coordinates.*  Box sizes come from the label text (East-Asian wide
   characters count as two columns).  Each layer is placed by a weighted
   least-squares fit to its neighbours' positions under minimum-gap
   constraints (pool-adjacent-violators), sweeping down and up; long edges
   weigh more, and a last pass lines up each long edge's dummies so it runs
   straight.  Layers whose edges run far sideways get more room between them.

A library layout (grandalf's Sugiyama) was measured against this one; see
"The flow picture: layout" in docs/decisions.md and benchmarks/flow_layout.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

from acd.ivr.checks import reachable
from acd.ivr.labels import box_lines, cluster_of, label_lines, node_kind, prefixes
from acd.ivr.nodes import Flow, edges
from acd.plot.clusters import outlines
from acd.plot.layered import Layered
from acd.plot.shapes import Box, Cluster, Layout, Point, Route
from acd.plot.sizes import (
    CLUSTER_TITLE,
    DUMMY_W,
    EMPTY_LABEL_H,
    GROUP_SEP,
    HEX,
    LAYER_GAP,
    LOOP_W,
    MAX_GAP,
    SLOPE,
    START_ROOM,
    box_size,
    label_size,
)

__all__ = ["Box", "Cluster", "Layout", "Route", "layout"]


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


def layout(flow: Flow, *, starts: int = 16) -> Layout:
    """A layered top-to-bottom layout of the flow (see the module's notes).

    Units are inches (the drawing uses them 1:1), y grows downward.
    Deterministic: the same flow gives the same layout.  ``starts``: how many
    starting orders the crossing reduction tries (1: the preorder alone).
    """
    live = reachable(flow)
    out = _merged_edges(flow)
    rank = _ranks(flow, out, live)
    pre = _preorder(flow, out)
    g = Layered()
    g.group_sep = GROUP_SEP + 0.1 * max((n.count("/") for n in flow.nodes), default=0)

    box_text: dict[str, tuple[tuple[str, ...], int]] = {}
    node_item: dict[str, int] = {}
    initial: dict[int, float] = {}
    for name in sorted(flow.nodes, key=lambda n: pre[n]):
        node = flow.nodes[name]
        lines, notes = box_lines(node)
        box_text[name] = lines, notes
        w, h = box_size(lines, notes, node_kind(node))
        i = g.add(2 * rank[name], w, h, name, cluster_of(name).split("/")[0],
                  cluster=cluster_of(name))
        node_item[name] = i
        initial[i] = pre[name]

    all_edges = [e for name in sorted(flow.nodes, key=lambda n: pre[n]) for e in out[name]]
    for k, e in enumerate(all_edges):
        lw, lh = label_size(label_lines(e.labels))
        src, dst = node_item[e.source], node_item[e.target]
        cs, ct = cluster_of(e.source), cluster_of(e.target)
        group = cs.split("/")[0] if cs and cs.split("/")[0] == ct.split("/")[0] else ""
        common = "/".join(a for a, b in zip(cs.split("/"), ct.split("/"), strict=False)
                          if a == b) if cs and ct else ""
        key0 = pre[e.source] + (k + 1) / (len(all_edges) + 2)
        ls, lt = g.items[src].layer, g.items[dst].layer
        if e.kind == "forward":
            chain: list[int] = []
            for layer in range(ls + 1, lt):
                label = layer == ls + 1
                i = g.add(layer, max(lw, DUMMY_W) if label else DUMMY_W,
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
            s_side = g.add(ls, DUMMY_W, 0.0, None, group, owner=src, side=1,
                           cluster=common)
            mid = list(range(lt + 1, ls))
            odd = [layer for layer in mid if layer % 2 == 1] or mid
            label_layer = odd[(len(odd) - 1) // 2] if odd else None
            chain = [s_side]
            for layer in reversed(mid):
                is_label = layer == label_layer
                i = g.add(layer, max(lw, DUMMY_W) if is_label else DUMMY_W,
                          lh if is_label else 0.0, None, group, cluster=common)
                initial[i] = key0
                chain.append(i)
                if is_label:
                    e.label_item = i
            chain.append(g.add(lt, DUMMY_W, 0.0, None, group, owner=dst, side=1,
                               cluster=common))
            for lower, upper in pairwise(chain):
                g.link(upper, lower)
            e.chain = tuple(chain)
            g.chains.append(chain[1:-1])
        elif e.kind == "self":
            i = g.add(ls, LOOP_W + lw + (0.06 if lw else 0.0), lh, None, group, owner=src,
                      side=1, cluster=common)
            e.chain = (i,)
            e.label_item = i

    crossings = g.order(initial, starts)
    for e in all_edges:
        if e.chain and e.kind in ("back", "self"):
            e.sides = (g.items[e.chain[0]].side, g.items[e.chain[-1]].side)
    g.place_x(loose_last=len(live) < len(flow.nodes))
    return _finish(flow, g, all_edges, rank, live, box_text, node_item, crossings)


def _side_point(box: Box, side: int, y: float) -> Point:
    """The point of the box's outline on that side at height y (hexagons slant)."""
    inset = HEX * abs(y - box.y) / (box.height / 2) if box.kind == "logic" else 0.0
    return (box.right - inset if side > 0 else box.left + inset), y


def _vbez(a: Point, b: Point) -> list[Point]:
    """A Bezier piece from a to b leaving and arriving vertically."""
    h = (b[1] - a[1]) / 2
    return [(a[0], a[1] + h), (b[0], b[1] - h), b]


def _finish(flow: Flow, g: Layered, all_edges: list[_Edge], rank: Mapping[str, int],
            live: set[str], box_text: Mapping[str, tuple[tuple[str, ...], int]],
            node_item: Mapping[str, int], crossings: int) -> Layout:
    items = g.items
    # y, layer by layer: more room where edges run far sideways, and above the
    # first layer of a sub-flow for its title
    cluster_first: dict[str, int] = {}
    for name, i in node_item.items():
        for p in prefixes(cluster_of(name)) if cluster_of(name) else []:
            cluster_first[p] = min(cluster_first.get(p, 10 ** 9), items[i].layer)
    y = START_ROOM
    layer_y: list[float] = []
    layer_h: list[float] = []
    for li, layer in enumerate(g.layers):
        if li:
            spread = max([abs(items[a].x - items[b].x) for b in layer for a, _ in g.up[b]],
                         default=0.0)
            y += min(MAX_GAP, max(LAYER_GAP, SLOPE * spread))
        h = max([items[i].height for i in layer], default=0.0)
        if li % 2 == 1:
            h = max(h, EMPTY_LABEL_H)
        y += sum(1 for first in cluster_first.values() if first == li) * CLUSTER_TITLE
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
                          name in live, name == flow.start, cluster_of(name))
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
        inner = min(box.width - 2 * (HEX + 0.06 if box.kind == "logic" else 0.12),
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
        text = label_lines(e.labels)
        lsize = label_size(text)
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
            reach = near + side * (LOOP_W - 0.08)
            y0, y1 = sb.y - sb.height * 0.22, sb.y + sb.height * 0.22
            c = edge_x + (reach - edge_x) * 1.33
            curve = [(edge_x, y0), (c, y0 - 0.12), (c, y1 + 0.12), (edge_x, y1)]
            if text:
                label_at = (reach + side * (0.06 + lsize[0] / 2), sb.y)
        else:  # flat: an arc below the unreachable rank
            flat_depth += 1
            depth = 0.2 + 0.16 * flat_depth
            low = max(sb.bottom, tb.bottom) + depth
            curve = [(sb.x, sb.bottom), (sb.x, low + depth * 0.3), (tb.x, low + depth * 0.3),
                     (tb.x, tb.bottom)]
            if text:
                label_at = ((sb.x + tb.x) / 2, low)
        if e.label_item is not None and e.kind != "self" and text:
            label_at = at(e.label_item)
        routes.append(Route(e.source, e.target, tuple(e.labels), text, e.kind,
                            tuple(curve), label_at, lsize, e.source in live))
    if flat_depth:
        bottom += 0.3 + 0.16 * flat_depth

    clusters = outlines(flow, g, boxes, node_item, layer_y, layer_h, routes)

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

