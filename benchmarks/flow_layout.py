"""The flow picture's layout against a library one: edge crossings and time per flow.

    .venv/bin/python benchmarks/flow_layout.py [--random 12] [--repeat 5]
    (the library column needs grandalf: .venv/bin/pip install grandalf)

Layouts compared, on the same boxes (sizes from the label text) and the same
edges (parallel ones merged, a label box in the middle of each):

* ``ours/1`` - acd.plot.layout with one starting order (as before the
  renovation, with fewer sweeps);
* ``ours`` - acd.plot.layout as shipped (the best of 16 starting orders);
* ``grandalf`` - grandalf's SugiyamaLayout (Brandes-Koepf coordinates), loops
  broken by grandalf itself; ``grandalf/our loops`` - the same with the loops
  we find (the edges back to a node on the depth-first path from the start).

Per flow: ``layer x`` - crossings between adjacent layers of each layout's own
layered graph (what ``Layout.crossings`` counts); ``picture x`` - crossings
of the drawn edges (curves sampled, polylines through the dummy points for
grandalf; points inside a box and self-loops left out); ``thru`` - edges
drawn across a box that is not one of their ends; ``ms`` - the median time of
one layout.  Flows: ivr_flows/*.yaml and examples/**/*.yaml that load as
flows, then ``--random`` seeded random flows (menus, plays, branches, queues,
hangups; one edge in five loops back).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.ivr.load import load_flow  # noqa: E402
from acd.ivr.nodes import Flow  # noqa: E402
from acd.ivr.parse import FlowError, parse_flow  # noqa: E402
from acd.plot.layout import layout  # noqa: E402
from acd.plot.shapes import Layout  # noqa: E402

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass
class Result:
    layer_x: int
    picture_x: int
    through: int
    ms: float


# ------------------------------------------------------------------ geometry


def _bezier_points(curve: Sequence[Point], steps: int = 8) -> list[Point]:
    pts = [curve[0]]
    for k in range(0, len(curve) - 3, 3):
        p0, p1, p2, p3 = curve[k:k + 4]
        for s in range(1, steps + 1):
            t = s / steps
            u = 1 - t
            pts.append((u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0]
                        + t**3 * p3[0],
                        u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1]
                        + t**3 * p3[1]))
    return pts


def _cross(a: Point, b: Point, c: Point, d: Point) -> Point | None:
    """Where segments ab and cd cross properly, or None."""
    def orient(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2, d3, d4 = orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d)
    if d1 * d2 < 0 and d3 * d4 < 0:
        t = d1 / (d1 - d2)
        return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
    return None


def _inside(p: Point, r: Rect, slack: float = 0.0) -> bool:
    return r[0] - slack < p[0] < r[2] + slack and r[1] - slack < p[1] < r[3] + slack


def picture_crossings(lines: Sequence[Sequence[Point]], boxes: Sequence[Rect]) -> int:
    """Crossings between the drawn edges, outside the boxes."""
    bbox = [(min(x for x, _ in pts), min(y for _, y in pts), max(x for x, _ in pts),
             max(y for _, y in pts)) for pts in lines]
    n = 0
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            a, b = bbox[i], bbox[j]
            if a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]:
                continue
            for p, q in itertools.pairwise(lines[i]):
                for r, s in itertools.pairwise(lines[j]):
                    x = _cross(p, q, r, s)
                    if x is not None and not any(_inside(x, box, 1e-3) for box in boxes):
                        n += 1
    return n


def through_boxes(lines: Sequence[Sequence[Point]], ends: Sequence[tuple[int, int]],
                  boxes: Sequence[Rect]) -> int:
    """Edges drawn across a box that is not one of their ends."""
    n = 0
    for pts, (s, t) in zip(lines, ends, strict=True):
        n += any(k not in (s, t) and _inside((p[0] + (q[0] - p[0]) * f,
                                              p[1] + (q[1] - p[1]) * f), box, -0.02)
                 for k, box in enumerate(boxes)
                 for p, q in itertools.pairwise(pts) for f in (0.1, 0.3, 0.5, 0.7, 0.9))
    return n


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times) * 1000


# ------------------------------------------------------------------- layouts


def ours(flow: Flow, starts: int, repeat: int) -> Result:
    lay, ms = _timed(lambda: layout(flow, starts=starts), repeat)
    names = list(lay.boxes)
    boxes = [(b.left, b.top, b.right, b.bottom) for b in lay.boxes.values()]
    drawn = [r for r in lay.routes if r.kind != "self"]
    lines = [_bezier_points(r.curve) for r in drawn]
    ends = [(names.index(r.source), names.index(r.target)) for r in drawn]
    return Result(lay.crossings, picture_crossings(lines, boxes),
                  through_boxes(lines, ends, boxes), ms)


class _View:
    def __init__(self, w: float, h: float) -> None:
        self.w, self.h, self.xy = w, h, (0.0, 0.0)
        self.pts: list[Point] = []

    def setpath(self, pts: list[Point]) -> None:
        self.pts = list(pts)


def grandalf(flow: Flow, our_loops: bool, repeat: int) -> Result:
    """grandalf's Sugiyama layout of the same boxes, with a label box mid-edge."""
    graphs = importlib.import_module("grandalf.graphs")
    layouts = importlib.import_module("grandalf.layouts")
    ref: Layout = layout(flow, starts=1)  # the boxes, merged edges and label sizes

    def run() -> tuple[Any, ...]:
        vs = {n: graphs.Vertex(n) for n in ref.boxes}
        for n, v in vs.items():
            v.view = _View(ref.boxes[n].width, ref.boxes[n].height)
        edges, mids, back = [], [], []
        for r in ref.routes:
            if r.kind == "self":
                continue
            m = graphs.Vertex(("label", r.source, r.target))
            m.view = _View(max(r.label_size[0], 0.05), r.label_size[1])
            e1, e2 = graphs.Edge(vs[r.source], m), graphs.Edge(m, vs[r.target])
            e1.view, e2.view = _View(0, 0), _View(0, 0)
            edges += [e1, e2]
            mids.append((r, m, e1, e2))
            if r.kind == "back":
                back += [e1, e2]
        g = graphs.Graph([*vs.values(), *(m for _, m, _, _ in mids)], edges)
        x0, layer_x, shift = 0.0, 0, {}
        for comp in g.C:
            sug = layouts.SugiyamaLayout(comp)
            sug.xspace, sug.yspace = 0.34, 0.2
            roots = [v for v in comp.sV if v.data == flow.start] or None
            if our_loops:
                sug.init_all(roots=roots, inverted_edges=[e for e in back if e in comp.sE])
            else:
                sug.init_all(roots=roots)
            sug.draw()
            left = min(v.view.xy[0] - v.view.w / 2 for layer in sug.layers for v in layer)
            right = max(v.view.xy[0] + v.view.w / 2 for layer in sug.layers for v in layer)
            for e in comp.sE:
                shift[e] = x0 - left
            for v in comp.sV:
                shift[v] = x0 - left
            x0 += right - left + 0.5
            layer_x += _grandalf_layer_crossings(sug, comp)
        return vs, mids, shift, layer_x

    (vs, mids, shift, layer_x), ms = _timed(run, repeat)
    names = list(vs)
    boxes = []
    for v in vs.values():
        x, y = v.view.xy[0] + shift[v], v.view.xy[1]
        boxes.append((x - v.view.w / 2, y - v.view.h / 2, x + v.view.w / 2, y + v.view.h / 2))
    lines, ends = [], []
    for r, m, e1, e2 in mids:
        a, b = e1.view.pts, e2.view.pts
        if a[0] != vs[r.source].view.xy:
            a = a[::-1]
        if b[0] != m.view.xy:
            b = b[::-1]
        lines.append([(x + shift[e1], y) for x, y in a + b[1:]])
        ends.append((names.index(r.source), names.index(r.target)))
    return Result(layer_x, picture_crossings(lines, boxes), through_boxes(lines, ends, boxes),
                  ms)


def _grandalf_layer_crossings(sug: Any, comp: Any) -> int:
    pos = {v: i for layer in sug.layers for i, v in enumerate(layer)}
    segs: dict[int, list[tuple[int, int]]] = {}
    for e in comp.sE:
        v0, v1 = e.v
        r0, r1 = sug.grx[v0].rank, sug.grx[v1].rank
        if r0 > r1:
            v0, v1, r0, r1 = v1, v0, r1, r0
        chain = [v0, *(sug.ctrls[e][r] for r in range(r0 + 1, r1)), v1]
        for r, (a, b) in zip(range(r0, r1), itertools.pairwise(chain), strict=True):
            segs.setdefault(r, []).append((pos[a], pos[b]))
    return sum(1 for ss in segs.values() for k, (a1, b1) in enumerate(ss)
               for a2, b2 in ss[k + 1:] if (a1 - a2) * (b1 - b2) < 0)


# --------------------------------------------------------------------- flows


def sample_flows() -> list[Flow]:
    out = []
    files = [*sorted((ROOT / "ivr_flows").glob("*.yaml")),
             *sorted((ROOT / "examples").rglob("*.yaml"))]
    for f in files:
        if f.name.endswith(".tests.yaml"):
            continue
        try:
            out.append(load_flow(f))
        except FlowError:
            continue  # not a flow (agents, tests) or a sub-flow on its own
    return out


def random_flow(seed: int, n: int) -> Flow:
    """A seeded random flow of n nodes, every node reachable from the first."""
    rnd = random.Random(seed)
    kinds = ["menu", *rnd.choices(["menu", "play", "branch", "queue", "hangup"],
                                  [3, 3, 2, 1, 1], k=n - 1)]
    cap = {"menu": 5, "play": 1, "branch": 3, "queue": 0, "hangup": 0}
    outs: dict[int, list[int]] = {i: [] for i in range(n)}
    for i in range(1, n):  # a parent for each node: all are reachable
        free = [p for p in range(i) if len(outs[p]) < cap[kinds[p]]]
        if free:
            outs[rnd.choice(free[-6:])].append(i)
        else:
            outs[rnd.choice([p for p in range(i) if cap[kinds[p]]])][-1] = i
    for i in range(n):
        want = {"menu": rnd.randint(2, 4), "play": 1, "branch": rnd.randint(2, 3)}.get(kinds[i], 0)
        while len(outs[i]) < want:
            later = range(i + 1, n)
            loop = rnd.random() < 0.2 and i > 0
            outs[i].append(rnd.randrange(0, i + 1) if loop or not later else rnd.choice(later))
    lines = [f"flow: random{seed}", "start: n0", "nodes:"]
    for i, (kind, o) in enumerate(zip(kinds, outs.values(), strict=True)):
        if kind == "menu":
            opts = ", ".join(f'"{d + 1}": n{t}' for d, t in enumerate(o[:-1]))
            lines.append(f"  n{i}: {{type: menu, prompt: p{i}, options: {{{opts}}}, "
                         f"on_fail: n{o[-1]}}}")
        elif kind == "play":
            lines.append(f"  n{i}: {{type: play, prompt: p{i}, next: n{o[0]}}}")
        elif kind == "branch":
            cases = ", ".join(f'{{if: "x == {d}", goto: n{t}}}' for d, t in enumerate(o[:-1]))
            lines.append(f"  n{i}: {{type: branch, cases: [{cases}], else: n{o[-1]}}}")
        elif kind == "queue":
            lines.append(f"  n{i}: {{type: queue, queue: q{i}}}")
        else:
            lines.append(f"  n{i}: {{type: hangup}}")
    return parse_flow("\n".join(lines) + "\n", f"random{seed}.yaml")


# ---------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=12, help="random flows (14, 17, 20... nodes)")
    ap.add_argument("--repeat", type=int, default=5, help="layouts timed per flow (median)")
    args = ap.parse_args()
    try:
        importlib.import_module("grandalf")
        have_grandalf = True
    except ImportError:
        have_grandalf = False
        print("grandalf is not installed (.venv/bin/pip install grandalf): ours only\n")
    layouts: list[tuple[str, Callable[[Flow], Result]]] = [
        ("ours/1", lambda f: ours(f, 1, args.repeat)),
        ("ours", lambda f: ours(f, 16, args.repeat)),
    ]
    if have_grandalf:
        layouts += [("grandalf", lambda f: grandalf(f, False, args.repeat)),
                    ("grandalf/our loops", lambda f: grandalf(f, True, args.repeat))]
    flows = sample_flows()
    randoms = [random_flow(seed, 14 + 3 * seed) for seed in range(args.random)]
    head = f"{'flow':<12} {'nodes':>5}"
    for name, _ in layouts:
        head += f" | {name + ': layer x, picture x, thru, ms':>44}"
    print(head)
    totals = {name: [0, 0, 0, 0.0] for name, _ in layouts}
    for flow in [*flows, *randoms]:
        row = f"{flow.name:<12} {len(flow.nodes):>5}"
        for name, fn in layouts:
            r = fn(flow)
            row += f" | {r.layer_x:>17} {r.picture_x:>9} {r.through:>4} {r.ms:>8.1f}"
            if flow in randoms:
                for k, v in enumerate((r.layer_x, r.picture_x, r.through, r.ms)):
                    totals[name][k] += v
        print(row)
    if randoms:
        row = f"{'random sum':<12} {sum(len(f.nodes) for f in randoms):>5}"
        for name, _ in layouts:
            t = totals[name]
            row += f" | {t[0]:>17} {t[1]:>9} {t[2]:>4} {t[3]:>8.1f}"
        print(row)


if __name__ == "__main__":
    main()
