"""Sub-flow outlines: a polygon around each sub-flow's boxes, layer by layer,
and a place for its title that no arrow crosses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

from acd.ivr.labels import cluster_title, prefixes, text_width
from acd.ivr.nodes import Flow
from acd.plot.layered import Item, Layered
from acd.plot.shapes import Box, Cluster, Point, Route
from acd.plot.sizes import CLUSTER_PAD, CLUSTER_TITLE, LAYER_GAP, col_w

__all__ = ["outlines"]


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


def outlines(flow: Flow, g: Layered, boxes: Mapping[str, Box], node_item: Mapping[str, int],
              layer_y: Sequence[float], layer_h: Sequence[float],
              routes: Sequence[Route]) -> list[Cluster]:
    """An outline around each sub-flow's boxes, following them layer by layer; the title
    goes at the top, left or right, where fewer arrows cross it."""
    items = g.items
    names = sorted({p for b in boxes.values() if b.cluster for p in prefixes(b.cluster)})
    deepest = max((n.count("/") for n in names), default=0)
    out: list[Cluster] = []
    for name in names:
        depth = name.count("/")
        pad = CLUSTER_PAD + 0.1 * (deepest - depth)

        def inside(it: Item, name: str = name) -> bool:
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
            y0 = layer_y[li] - layer_h[li] / 2 - (LAYER_GAP / 2 if li != first else pad)
            y1 = layer_y[li] + layer_h[li] / 2 + (LAYER_GAP / 2 if li != last else pad)
            if li == first:
                y0 -= CLUSTER_TITLE * (1 + deepest - depth) - 0.04
            if bands:  # meet the band above
                y0 = bands[-1][1]
            bands.append((y0, y1, lefts[k], rights[k]))
        left = [p for b in bands for p in ((b[2], b[0]), (b[2], b[1]))]
        right = [p for b in reversed(bands) for p in ((b[3], b[1]), (b[3], b[0]))]
        # the title: in the widest stretch of the top that no arrow crosses
        ty = bands[0][0] + CLUSTER_TITLE / 2 + 0.03
        x0, x1 = bands[0][2] + 0.1, bands[0][3] - 0.1
        cuts = sorted(x for r in routes for x in _bezier_at_y(r.curve, ty) if x0 < x < x1)
        free = [(a + 0.07, b - 0.07) for a, b in pairwise([x0 - 0.07, *cuts, x1 + 0.07])]
        title, spot = cluster_title(flow, name), x0
        for text in (title, f"sub-flow {name}", name.rpartition("/")[2]):
            tw = text_width(text) * col_w(8, True)
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

