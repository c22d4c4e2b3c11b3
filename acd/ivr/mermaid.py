"""A flow as a Mermaid flowchart, which GitHub, GitLab and most editors draw.

The same picture as the DOT text (:mod:`acd.ivr.dot`): boxes (hexagons for
logic) coloured by their class, labelled with the node's name, type and
detail (wrapped) and note; a dot and an arrow into the start node, which has
a thick outline; unreachable nodes dashed, with dotted edges; a sub-flow's
nodes in a (nested) subgraph.  The title goes in the front matter.

Node ids are ``n0``, ``n1``... in the file's order (node names may be
Chinese, hold ``/`` or be Mermaid keywords such as ``end``); every text is
quoted, with the characters Mermaid reads as markup written as entity codes
(``#34;`` for a double quote), so no name or prompt can break the chart.
"""

from __future__ import annotations

import json

from acd.ivr.checks import reachable
from acd.ivr.labels import (
    DEAD_COLOR,
    STYLES,
    TEXT_COLOR,
    box_lines,
    cluster_of,
    cluster_title,
    flow_title,
    node_kind,
    prefixes,
)
from acd.ivr.nodes import Flow, Node, edges

__all__ = ["mermaid_str", "to_mermaid"]

# characters that Mermaid reads as markup inside a quoted text ("#" first: the
# entity codes written for the others start with it)
_ENTITIES = (("#", "#35;"), ('"', "#34;"), ("&", "#38;"), ("<", "#60;"), (">", "#62;"),
             ("`", "#96;"), ("|", "#124;"))


def mermaid_str(text: str) -> str:
    """A quoted Mermaid text: markup characters as entity codes, control
    characters (newlines) as spaces."""
    out = "".join(c if c >= " " else " " for c in text)
    for char, code in _ENTITIES:
        out = out.replace(char, code)
    return f'"{out}"'


def _label(lines: tuple[str, ...]) -> str:
    """Lines of a box as one quoted text, broken with <br/>."""
    return '"' + "<br/>".join(mermaid_str(line)[1:-1] for line in lines) + '"'


def to_mermaid(flow: Flow) -> str:
    """The flow as Mermaid flowchart text (top to bottom)."""
    live = reachable(flow)
    ids = {name: f"n{i}" for i, name in enumerate(flow.nodes)}
    out = ["---", f"title: {json.dumps(flow_title(flow), ensure_ascii=False)}", "---",
           "flowchart TD"]

    def node_line(node: Node, indent: str) -> str:
        lines, _ = box_lines(node)
        text = _label(lines)
        shape = ("{{", "}}") if node_kind(node) == "logic" else ("(", ")")
        return f"{indent}{ids[node.name]}{shape[0]}{text}{shape[1]}"

    by_cluster: dict[str, list[Node]] = {}
    for node in flow.nodes.values():
        by_cluster.setdefault(cluster_of(node.name), []).append(node)
    subs = sorted({p for c in by_cluster if c for p in prefixes(c)})
    sub_ids = {sub: f"s{i}" for i, sub in enumerate(subs)}

    def emit(cluster: str, indent: str) -> None:
        for node in by_cluster.get(cluster, []):
            out.append(node_line(node, indent))
        for sub in subs:
            if cluster_of(sub) == cluster:
                out.append(f"{indent}subgraph {sub_ids[sub]} "
                           f"[{mermaid_str(cluster_title(flow, sub))}]")
                emit(sub, indent + "  ")
                out.append(f"{indent}end")

    out.append('  start_((" "))')
    emit("", "  ")
    out.append(f"  start_ --> {ids[flow.start]}")
    for node in flow.nodes.values():
        arrow = "-->" if node.name in live else "-.->"
        for label, target in edges(node.body):
            text = f"|{mermaid_str(label)}|" if label else ""
            out.append(f"  {ids[node.name]} {arrow}{text} {ids[target]}")

    for kind, style in STYLES.items():
        out.append(f"  classDef {kind} fill:{style.fill},stroke:{style.line},"
                   f"color:{TEXT_COLOR}")
    out.append(f"  classDef dead fill:#f8fafc,stroke:{DEAD_COLOR},stroke-dasharray:4 3,"
               "color:#64748b")
    out.append(f"  classDef start fill:{TEXT_COLOR},stroke:{TEXT_COLOR}")
    members: dict[str, list[str]] = {}
    for node in flow.nodes.values():
        kind = node_kind(node) if node.name in live else "dead"
        members.setdefault(kind, []).append(ids[node.name])
    for kind, names in members.items():
        out.append(f"  class {','.join(names)} {kind}")
    out.append("  class start_ start")
    out.append(f"  style {ids[flow.start]} stroke-width:3px")
    return "\n".join(out) + "\n"
