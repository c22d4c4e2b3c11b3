"""Pictures of IVR flows: the formats, and the ones written as text.

* ``dot`` - Graphviz DOT text (:func:`acd.ivr.dot.to_dot`);
* ``mmd`` - a Mermaid flowchart (:func:`acd.ivr.mermaid.to_mermaid`), which
  GitHub and most editors draw;
* ``svg``, ``png`` - drawings with a layered layout, made by :mod:`acd.plot`
  with matplotlib, which come with the ``plot`` extra
  (``pip install 'acd[plot]'``).

The text formats are pure functions of the flow; nothing here imports
matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from acd.ivr.dot import to_dot
from acd.ivr.mermaid import to_mermaid
from acd.ivr.nodes import Flow

__all__ = ["DRAWN_FORMATS", "FORMATS", "TEXT_FORMATS", "picture_format", "to_text"]

#: format -> the function that writes it as text
TEXT_FORMATS: Mapping[str, Callable[[Flow], str]] = {"dot": to_dot, "mmd": to_mermaid}
#: formats drawn by acd.plot (the ``plot`` extra)
DRAWN_FORMATS = ("svg", "png")
FORMATS = (*TEXT_FORMATS, *DRAWN_FORMATS)
_ALIASES = {"mermaid": "mmd", "gv": "dot"}


def picture_format(path: str | Path | None, fmt: str | None = None) -> str:
    """The format to write: ``fmt`` when given, else the file's extension
    (``mermaid`` and ``.mermaid`` mean ``mmd``, ``.gv`` means ``dot``).

    Raises ValueError, naming the formats, for any other.
    """
    if fmt is None and path is None:
        raise ValueError("give a file name or a format: "
                         f"{', '.join('.' + f for f in FORMATS)}")
    raw = fmt if fmt is not None else Path(path or "").suffix
    kind = raw.lower().lstrip(".")
    kind = _ALIASES.get(kind, kind)
    if kind not in FORMATS:
        what = f"{Path(path).name!r}" if path is not None else "the picture"
        raise ValueError(f"cannot write {what} as {raw or 'a file without an extension'!r}:"
                         f" the formats are {', '.join('.' + f for f in FORMATS)}")
    return kind


def to_text(flow: Flow, kind: str) -> str:
    """The flow as text in one of :data:`TEXT_FORMATS` (``dot`` or ``mmd``)."""
    try:
        write = TEXT_FORMATS[kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a text format: the text formats are "
                         f"{', '.join(TEXT_FORMATS)}") from None
    return write(flow)
