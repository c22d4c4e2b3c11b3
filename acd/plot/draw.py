"""A flow drawn with matplotlib (SVG or PNG) from its layout, and :func:`render`
for every picture format.

matplotlib is imported when a drawing is made, through
:func:`acd.plot.require_matplotlib`, which names the ``plot`` extra when it is
missing; the text formats (DOT, Mermaid) never need it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.ivr.graph import TEXT_FORMATS, picture_format, to_text
from acd.ivr.labels import (
    BACK_COLOR,
    DEAD_COLOR,
    EDGE_COLOR,
    STYLES,
    SUBTLE_COLOR,
    TEXT_COLOR,
    clip,
    text_width,
)
from acd.ivr.nodes import Flow
from acd.plot import require_matplotlib
from acd.plot.layout import layout
from acd.plot.shapes import Box, Cluster, Layout, Point, Route
from acd.plot.sizes import (
    EM,
    HEX,
    LABEL_PT,
    NAME_PT,
    NOTE_PT,
    PAD_Y,
    TEXT_PT,
    col_w,
    line_h,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["draw", "render"]

LineStyle = str | tuple[float, tuple[float, float]]


def render(flow: Flow, path: str | Path, fmt: str | None = None) -> None:
    """Write the flow as ``.dot`` (DOT text), ``.mmd`` (Mermaid), ``.svg`` or ``.png``
    (drawn with matplotlib).

    ``fmt`` (``"dot"``, ``"mmd"`` or ``"mermaid"``, ``"svg"``, ``"png"``) overrides the
    file's extension.  Raises ValueError for another format, and
    :class:`acd.plot.PlotUnavailable` for a drawing without matplotlib.
    """
    p = Path(path)
    kind = picture_format(p, fmt)
    if kind in TEXT_FORMATS:
        p.write_text(to_text(flow, kind), encoding="utf-8")
        return
    require_matplotlib(f"a .{kind} picture")
    draw(flow, layout(flow), p, kind)


_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
              "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei",
              "PingFang SC", "Hiragino Sans GB", "Heiti SC", "Sarasa Gothic SC",
              "AR PL UMing CN", "Droid Sans Fallback", "Arial Unicode MS")


def _fonts() -> list[str]:
    """DejaVu Sans, then any installed font with Chinese glyphs as a fallback."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in _CJK_FONTS if f in have)]


def draw(flow: Flow, lay: Layout, path: Path, kind: str) -> None:
    """Draw the flow from its layout into ``path`` as ``svg`` or ``png``: a header (the
    name, version, node count, description and a legend), then the sub-flow outlines,
    the arrows and the boxes."""
    require_matplotlib(f"a .{kind} picture")  # names the extra when it is missing
    import matplotlib
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
    return 0.38 + text_width(text) * 7.5 * EM * 0.56 + 0.25


def _draw_header(ax: Axes, flow: Flow, lay: Layout, x: float, top: float,
                 rows: list[list[tuple[str, str]]]) -> None:
    from matplotlib.patches import FancyBboxPatch

    y = top + 0.42
    ax.text(x, y, flow.name, fontsize=15, fontweight="bold", color=TEXT_COLOR, va="baseline",
            ha="left")
    live = sum(1 for b in lay.boxes.values() if b.reachable)
    facts = [f"version {flow.version}" if flow.version else "",
             f"{len(lay.boxes)} nodes" + (f", {len(lay.boxes) - live} unreachable"
                                          if live < len(lay.boxes) else ""),
             Path(flow.file).name if flow.file else ""]
    ax.text(x + text_width(flow.name) * col_w(15, True) + 0.2, y,
            "   ·   ".join(s for s in facts if s), fontsize=9, color=SUBTLE_COLOR, va="baseline")
    if flow.description:
        y += 0.22
        ax.text(x, y, clip(flow.description, 150), fontsize=8.5, color=SUBTLE_COLOR,
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
                                            fc="white", ec=TEXT_COLOR, lw=2.2))
            elif key == "dead":
                ax.add_patch(FancyBboxPatch((cx, y - 0.07), 0.3, 0.14, boxstyle=rounded,
                                            fc="#f8fafc", ec="#64748b", ls=(0, (3, 2)), lw=1.0))
            else:
                _arrow(ax, [(cx + 0.3, y + 0.06), (cx + 0.3, y - 0.12), (cx, y - 0.12),
                            (cx, y + 0.04)], BACK_COLOR, "-")
            ax.text(cx + 0.38, y, text, fontsize=7.5, color=TEXT_COLOR, va="center")
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
    color = EDGE_COLOR if r.kind == "forward" else BACK_COLOR
    if not r.live:
        color = DEAD_COLOR
    ls: LineStyle = "-" if r.live else (0, (4, 3))
    _arrow(ax, r.curve, color, ls, 1.1 if r.kind == "forward" else 1.0)
    if r.label_at and r.label_lines:
        ax.text(r.label_at[0], r.label_at[1], "\n".join(r.label_lines), fontsize=LABEL_PT,
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
    ax.text(c.title_at[0], c.title_at[1], c.title, fontsize=8, color=SUBTLE_COLOR,
            fontweight="bold", va="center", ha="left", zorder=1)


def _draw_box(ax: Axes, b: Box) -> None:
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon

    st = STYLES.get(b.kind, STYLES["logic"])
    ls: LineStyle = "-" if b.reachable else (0, (4, 2.5))
    lw = 2.4 if b.start else 1.2
    fill = st.fill if b.reachable else "#f8fafc"
    if b.kind == "logic":
        h = HEX
        pts = [(b.left, b.y), (b.left + h, b.top), (b.right - h, b.top), (b.right, b.y),
               (b.right - h, b.bottom), (b.left + h, b.bottom)]
        ax.add_patch(Polygon(pts, closed=True, fc=fill, ec=st.line, lw=lw, ls=ls, zorder=3,
                             joinstyle="round"))
    else:
        ax.add_patch(FancyBboxPatch((b.left, b.top), b.width, b.height,
                                    boxstyle="round,pad=0,rounding_size=0.09", fc=fill,
                                    ec=st.line, lw=lw, ls=ls, zorder=3))
    if b.start:
        ax.add_patch(Circle((b.x, b.top - 0.3), 0.065, fc=TEXT_COLOR, ec=TEXT_COLOR, zorder=3))
        _arrow(ax, [(b.x, b.top - 0.23), (b.x, b.top - 0.15), (b.x, b.top - 0.09),
                    (b.x, b.top - 0.01)], TEXT_COLOR, "-", 1.3)
    text = TEXT_COLOR if b.reachable else "#64748b"
    y = b.top + PAD_Y
    body = b.lines[1:len(b.lines) - b.notes]
    note = b.lines[len(b.lines) - b.notes:]
    lh = line_h(NAME_PT)
    ax.text(b.x, y + lh / 2, b.lines[0], fontsize=NAME_PT, fontweight="bold", color=text,
            ha="center", va="center", zorder=4)
    y += lh
    for line in body:
        lh = line_h(TEXT_PT)
        ax.text(b.x, y + lh / 2, line, fontsize=TEXT_PT,
                color=SUBTLE_COLOR if b.reachable else "#64748b", ha="center", va="center",
                zorder=4)
        y += lh
    for line in note:
        lh = line_h(NOTE_PT)
        ax.text(b.x, y + lh / 2, line, fontsize=NOTE_PT, color="#6b7280", style="italic",
                ha="center", va="center", zorder=4)
        y += lh
