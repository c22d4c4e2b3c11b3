"""Small helpers shared by the simulator modules."""

from __future__ import annotations

import re

_INT = re.compile(r"\s*([-+]?\d+)")
_FLOAT = re.compile(r"\s*([-+]?\d+(?:\.\d*)?)")
_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def atoi(text: str, default: int = 0) -> int:
    """C ``atoi``: the leading integer of ``text``, else ``default``."""
    m = _INT.match(text)
    return int(m.group(1)) if m else default


def atof(text: str, default: float = 0.0) -> float:
    """C ``atof`` for plain decimals."""
    m = _FLOAT.match(text)
    return float(m.group(1)) if m else default


def parse_callerid(text: str) -> tuple[str, str]:
    """``"Zhang" <13800138000>`` -> (name, number), as ast_callerid_parse does."""
    m = _CALLERID.match(text)
    if m is None:
        text = text.strip()
        if text and all(c.isdigit() or c in "+*#" for c in text):
            return "", text
        return text.strip('"'), ""
    name = m.group("qname") if m.group("qname") is not None else (m.group("name") or "")
    return name.strip(), m.group("num").strip()
