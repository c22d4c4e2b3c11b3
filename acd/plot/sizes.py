"""Sizes of a flow drawing, in inches (the drawing uses 1 unit = 1 inch, so
these are the real sizes): fonts, paddings and the room between things."""

from __future__ import annotations

from collections.abc import Sequence

from acd.ivr.labels import text_width

NAME_PT, TEXT_PT, NOTE_PT, LABEL_PT = 9.0, 7.8, 7.4, 7.2  # font sizes
EM = 1 / 72  # inches per point
PAD_X, PAD_Y = 0.13, 0.07  # inside a box, around its text
MIN_BOX_W = 0.9
HEX = 0.14  # how far a logic node's points stick out
# the least room between two boxes, two dummy points, a box and a dummy, things
# of different sub-flows (added), a box and its side point
NODE_SEP, DUMMY_SEP, MIXED_SEP, GROUP_SEP, SIDE_SEP = 0.34, 0.1, 0.16, 0.3, 0.16
LAYER_GAP = 0.2  # the least room between two layers
SLOPE = 0.12  # more room between layers whose edges run far sideways
MAX_GAP = 0.6
EMPTY_LABEL_H = 0.2  # room for an unlabelled edge between two ranks
DUMMY_W = 0.05
START_ROOM = 0.42  # above the first rank: the start dot and its arrow
CLUSTER_PAD = 0.13
CLUSTER_TITLE = 0.2
LOOP_W = 0.3  # how far a self-loop sticks out


def line_h(pt: float) -> float:
    """The height of a line of text of that font size."""
    return pt * EM * 1.32


def col_w(pt: float, bold: bool = False) -> float:
    """The width of one display column of text of that font size."""
    return pt * EM * (0.66 if bold else 0.6)


def box_size(lines: Sequence[str], notes: int, kind: str) -> tuple[float, float]:
    """Width and height of a box showing ``lines`` (the last ``notes`` of them the note)."""
    name, rest = lines[0], lines[1:]
    body = rest[:len(rest) - notes]
    note = rest[len(rest) - notes:]
    w = max([text_width(name) * col_w(NAME_PT, True)]
            + [text_width(t) * col_w(TEXT_PT) for t in body]
            + [text_width(t) * col_w(NOTE_PT) for t in note])
    w = max(MIN_BOX_W, w + 2 * PAD_X + (2 * HEX if kind == "logic" else 0))
    h = line_h(NAME_PT) + len(body) * line_h(TEXT_PT) + len(note) * line_h(NOTE_PT)
    return round(w, 3), round(h + 2 * PAD_Y, 3)


def label_size(lines: Sequence[str]) -> tuple[float, float]:
    """Width and height of an edge's label."""
    if not lines:
        return 0.0, 0.0
    w = max(text_width(t) for t in lines) * col_w(LABEL_PT) + 0.12
    return round(w, 3), round(len(lines) * line_h(LABEL_PT) + 0.06, 3)
