"""Loading a flow file: read it, parse it (:mod:`acd.ivr.parse`), check it
(:mod:`acd.ivr.checks`).

The one place that puts the parser and the checks together, so that neither
imports the other's caller: the checks read the parsed flow's types, the
parser knows nothing of the checks.
"""

from __future__ import annotations

from pathlib import Path

from acd.ivr.checks import Problem, check_flow
from acd.ivr.nodes import Flow
from acd.ivr.parse import FlowError, parse_flow
from acd.loaders.yamlpos import read_text

__all__ = ["load_flow", "load_flow_and_warnings"]


def load_flow(path: str | Path, known_queues: set[str] | None = None,
              sounds: str | Path | None = None) -> Flow:
    """Read, parse and check a flow; raises FlowError for the first error.

    Warnings (unreachable nodes, variables set on some paths only) do not
    stop loading; :func:`load_flow_and_warnings` returns them too.
    """
    return load_flow_and_warnings(path, known_queues, sounds)[0]


def load_flow_and_warnings(path: str | Path, known_queues: set[str] | None = None,
                           sounds: str | Path | None = None) -> tuple[Flow, list[Problem]]:
    """:func:`load_flow`, and the warnings of the same checks."""
    text, file = read_text(path, FlowError, "flow file")
    flow = parse_flow(text, file)
    problems = check_flow(flow, known_queues, sounds)
    for problem in problems:
        if problem.severity == "error":
            raise FlowError(problem.file, problem.line, problem.column, problem.message)
    return flow, [p for p in problems if p.severity == "warning"]
