"""What a flow's layout is made of: boxes, arrows (routes), sub-flow outlines.

Units are inches, y grows downward; the drawing (:mod:`acd.plot.draw`) and
the tests read these, the layout (:mod:`acd.plot.layout`) makes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Box", "Cluster", "Layout", "Point", "Route"]

Point = tuple[float, float]


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

