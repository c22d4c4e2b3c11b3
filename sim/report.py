"""Plain-text tables of a virtual run (for a terminal or a log).

    from sim.report import summary_table, interval_table
    print(summary_table(result))
    print(interval_table(result, "queue", "billing"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.virtual import VirtualResult

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (row key, heading, format)
    ("offered", "offered", "d"),
    ("answered", "answered", "d"),
    ("abandoned", "abandoned", "d"),
    ("other", "other", "d"),
    ("service_level", "SL", "%"),
    ("t_s", "t_s", "g"),
    ("pwait", "P(wait)", "%"),
    ("mean_wait_s", "wait s", ".1f"),
    ("asa_s", "ASA s", ".1f"),
    ("abandon_rate", "aband.", "%"),
    ("occupancy", "occup.", "%"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "%":
        return f"{100.0 * value:.1f} %"
    if fmt == "d":
        return str(int(value))
    return format(value, fmt)


def _table(first: str, rows: Sequence[dict[str, Any]], label: Any) -> str:
    head = [first, *(h for _, h, _ in COLUMNS)]
    body = [[str(label(r)), *(_cell(r.get(k), f) for k, _, f in COLUMNS)] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(head, widths, strict=True)))]
    for line in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    return "\n".join(lines)


def summary_table(result: VirtualResult) -> str:
    """The whole run: all calls, each queue, each customer class."""
    def label(r: dict[str, Any]) -> str:
        return "all calls" if r["scope"] == "total" else f"{r['scope']} {r['key']}"

    text = _table("", result.summary_rows(), label)
    return (f"{text}\n{result.arrivals:,} calls arrived; {result.wall_s:.2f} s wall, "
            f"{result.calls_per_second():,.0f} simulated calls/s")


def interval_table(result: VirtualResult, scope: str = "total", key: str = "") -> str:
    """Per interval, for all calls (default), a queue or a class."""
    return _table("interval", result.interval_rows(scope, key), lambda r: r["label"])
