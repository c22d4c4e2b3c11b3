"""The layered graph of a flow layout: the order within layers and the x positions.

Boxes and dummy points (the bends of long edges, their labels, the side
points of loops) sit in layers.  :meth:`Layered.order` orders each layer to
avoid crossings (barycenter sweeps from several starts, then each loop takes
the side of its box its path runs on, then neighbours are swapped while that
removes crossings); :meth:`Layered.place_x` places each layer by a weighted
least-squares fit to its neighbours under minimum gaps.
"""

from __future__ import annotations

import random
from bisect import bisect_right, insort
from collections.abc import Mapping, Sequence
from itertools import pairwise

from acd.plot.sizes import DUMMY_SEP, GROUP_SEP, MIXED_SEP, NODE_SEP, SIDE_SEP

__all__ = ["Item", "Layered"]


class Item:
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


class Layered:
    """The layered graph: items per layer, segments between adjacent layers."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.layers: list[list[int]] = []
        self.up: dict[int, list[tuple[int, float]]] = {}
        self.down: dict[int, list[tuple[int, float]]] = {}
        self.attached: dict[int, list[int]] = {}
        self.chains: list[list[int]] = []  # the dummies of each long edge, in order
        self.group_sep = GROUP_SEP  # extra room beside a sub-flow (for its outline)

    def add(self, layer: int, width: float, height: float, node: str | None, group: str,
            owner: int | None = None, side: int = 1, cluster: str = "") -> int:
        item = Item(len(self.items), layer, width, height, node, group, owner, side, cluster)
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
                side = self.attached.get(i)
                if not side:
                    out.append(i)
                    continue
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
        """Crossings between the segments of each pair of adjacent layers: pairs whose
        upper ends are in one order and lower ends in the other (counted with a sorted
        list of the lower ends seen so far)."""
        total = 0
        items = self.items
        for layer in self.layers[:-1]:
            segs = sorted((items[a].pos, items[b].pos) for a in layer for b, _ in self.down[a])
            seen: list[int] = []
            k = 0
            while k < len(segs):
                same = k
                while same < len(segs) and segs[same][0] == segs[k][0]:
                    total += len(seen) - bisect_right(seen, segs[same][1])
                    same += 1
                for _, b in segs[k:same]:
                    insort(seen, b)
                k = same
        return total

    def order(self, initial: Mapping[int, float], starts: int = 16) -> int:
        """Order each layer from several starts and keep the order with the fewest
        crossings (the earliest start on a tie); returns the number of crossings.

        The first start is ``initial``, the second its mirror image, the others seeded
        shuffles of it (so the result is the same on every run): the sweeps only improve
        the order they start from, and which start ends best differs from flow to flow.
        """
        sides = [it.side for it in self.items]
        keys = sorted(initial, key=lambda i: (initial[i], i))
        best: tuple[int, list[list[int]], list[int]] | None = None
        for k in range(max(1, starts)):
            if k == 0:
                start = dict(initial)
            elif k == 1:
                start = {i: -v for i, v in initial.items()}
            else:
                shuffled = list(keys)
                random.Random(k).shuffle(shuffled)
                start = {i: float(p) for p, i in enumerate(shuffled)}
            for it, side in zip(self.items, sides, strict=True):
                it.pos, it.side = 0, side
            c = self._order_from(start)
            if best is None or c < best[0]:
                best = (c, [list(layer) for layer in self.layers],
                        [it.side for it in self.items])
            if c == 0:
                break
        assert best is not None
        crossings, self.layers, chosen = best
        for it, side in zip(self.items, chosen, strict=True):
            it.side = side
        for layer in self.layers:
            for p, i in enumerate(layer):
                self.items[i].pos = p
        return crossings

    def _order_from(self, initial: Mapping[int, float]) -> int:
        """Barycenter sweeps, then each loop takes the side of its box its path runs
        on, and sweeps again; then transpositions.  Returns the number of crossings."""
        self.layers = [self._arrange(layer, initial) for layer in self.layers]
        self._sweeps(4)
        for _ in range(3):
            if not self._choose_sides():
                break
            self.layers = [self._arrange(layer, {i: float(self.items[i].pos) for i in layer})
                           for layer in self.layers]
            self._sweeps(4)
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

    def _gap(self, a: Item, b: Item) -> float:
        real = (a.node is not None) + (b.node is not None)
        if b.owner == a.id or a.owner == b.id:
            sep = SIDE_SEP
        elif real == 2:
            sep = NODE_SEP
        elif real == 1:
            sep = MIXED_SEP
        else:
            sep = DUMMY_SEP
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
