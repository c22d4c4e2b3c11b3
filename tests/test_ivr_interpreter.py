"""The IVR interpreter's dispatch table: one handler per node type.

Behaviour (every node type walked, replies, type-ahead) is in test_flow.py;
this checks that the table the interpreter dispatches through is whole, so a
node type added to the flow language cannot be forgotten here.
"""

from __future__ import annotations

import typing

from acd.ivr.interpreter import NODE_HANDLERS
from acd.ivr.nodes import NodeBody


def test_every_node_type_has_a_handler() -> None:
    assert set(NODE_HANDLERS) == set(typing.get_args(NodeBody))
