"""A flow as Graphviz DOT text, for Graphviz or any DOT viewer.

Each node is a box (a hexagon for logic) coloured by its class
(:data:`acd.ivr.labels.STYLES`) and labelled with its name, type and detail;
the start node has a thick outline and an arrow from a dot; unreachable nodes
and their edges are dashed; a sub-flow's nodes sit in a (nested) cluster.
"""

from __future__ import annotations

from acd.ivr.checks import reachable
from acd.ivr.labels import (
    EDGE_COLOR,
    STYLES,
    clip,
    cluster_of,
    cluster_title,
    detail,
    flow_title,
    node_kind,
    prefixes,
)
from acd.ivr.nodes import Flow, Node, edges

__all__ = ["dot_str", "to_dot"]


def dot_str(text: str) -> str:
    """A DOT double-quoted string: quotes and backslashes escaped, newlines as \\n."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return '"' + "".join(c for c in out if c >= " ") + '"'


def to_dot(flow: Flow) -> str:
    """The flow as Graphviz DOT text."""
    live = reachable(flow)
    lines = [
        f"digraph {dot_str(flow.name)} {{",
        f"  graph [rankdir=TB, label={dot_str(flow_title(flow))}, labelloc=t, fontsize=16, "
        'fontname="sans-serif", nodesep=0.35, ranksep=0.45];',
        '  node [fontname="sans-serif", fontsize=10, margin="0.15,0.06"];',
        f'  edge [fontname="sans-serif", fontsize=9, color="{EDGE_COLOR}", '
        f'fontcolor="{EDGE_COLOR}"];',
        '  "__start__" [shape=circle, label="", width=0.18, style=filled, '
        'fillcolor="#0f172a", color="#0f172a"];',
    ]

    def node_line(node: Node, indent: str) -> str:
        kind = node_kind(node)
        style = STYLES[kind]
        text = node.name + "\n" + node.type
        d = detail(node)
        if d:
            text += ": " + clip(d, 70)
        if node.note:
            text += "\n" + clip(node.note, 70)
        styles = ["filled"] + (["rounded"] if style.dot_shape == "box" else [])
        if node.name not in live:
            styles.append("dashed")
        attrs = [f"label={dot_str(text)}", f"shape={style.dot_shape}",
                 f"style={dot_str(','.join(styles))}", f'fillcolor="{style.fill}"',
                 f'color="{style.line}"']
        if node.name == flow.start:
            attrs.append("penwidth=2.5")
        if node.name not in live:
            attrs.append('fontcolor="#64748b"')
        return f"{indent}{dot_str(node.name)} [{', '.join(attrs)}];"

    # nodes, sub-flow members grouped (nested) in clusters
    by_cluster: dict[str, list[Node]] = {}
    for node in flow.nodes.values():
        by_cluster.setdefault(cluster_of(node.name), []).append(node)
    subs = sorted({p for c in by_cluster if c for p in prefixes(c)})

    def emit(cluster: str, indent: str) -> None:
        for node in by_cluster.get(cluster, []):
            lines.append(node_line(node, indent))
        for sub in subs:
            if cluster_of(sub) == cluster:
                lines.append(f"{indent}subgraph {dot_str('cluster_' + sub)} {{")
                lines.append(f"{indent}  label={dot_str(cluster_title(flow, sub))}; "
                             'labeljust=l; style="rounded,filled"; fillcolor="#f8fafc"; '
                             'color="#94a3b8"; fontsize=10;')
                emit(sub, indent + "  ")
                lines.append(f"{indent}}}")

    emit("", "  ")
    lines.append(f'  "__start__" -> {dot_str(flow.start)} [penwidth=1.5];')
    for node in flow.nodes.values():
        for label, target in edges(node.body):
            attrs = []
            if label:
                attrs.append(f"label={dot_str(label)}")
            if node.name not in live:
                attrs.append('style=dashed, color="#94a3b8"')
            tail = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {dot_str(node.name)} -> {dot_str(target)}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"
