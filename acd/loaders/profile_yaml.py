"""Reading agent profiles from YAML text: a list of mappings, or
``{agents: [...]}``, one mapping of fields per agent.

Lists (``languages``, ``groups``) may be YAML lists or one ``a;b`` text;
``skills`` and ``dialects`` YAML mappings of names to levels or one
``billing:5;vip:3`` text; every value is then read by the field's parser,
as from a CSV cell.  Line numbers come from ``yaml.compose`` node marks: the
line of the offending value, or of the item for problems of the item as a
whole.  Each :class:`Row` records the item's keys, so that an import can
update only those fields of an agent already stored.  Pure: given the text,
never the file.
"""

from __future__ import annotations

from typing import Any

import yaml

from acd.core.profiles import AgentProfile
from acd.loaders.profile_fields import (
    AGENT_COLUMNS,
    AGENT_PARSERS,
    AGENT_REQUIRED,
    FieldError,
    parse_levels,
    split_levels,
)
from acd.loaders.profile_results import Collector, ParseResult, ProfileFileError, Row
from acd.loaders.yamlpos import YamlLimitError, compose

_NULL = "tag:yaml.org,2002:null"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _scalar(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise FieldError(f"must be a single value, not {_kind(node)}")
    return "" if node.tag == _NULL else str(node.value).strip()


def _yaml_list(node: yaml.Node, name: str) -> str:
    """A list of names (or one text, ';'-separated) as 'a;b' for the CSV parser."""
    if isinstance(node, yaml.SequenceNode):
        items = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                raise FieldError(f"entries must be single names, not {_kind(item)}")
            if ";" in str(item.value):
                raise FieldError(f"entry {item.value!r} contains ';'")
            items.append(str(item.value).strip())
        return ";".join(items)
    if isinstance(node, yaml.MappingNode):
        raise FieldError("must be a list of names, not a mapping")
    return _scalar(node)


def _yaml_levels(node: yaml.Node, name: str, lower: bool) -> dict[str, int]:
    if isinstance(node, yaml.MappingNode):
        pairs = []
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode) or not isinstance(v, yaml.ScalarNode):
                raise FieldError(f"must map names to levels, e.g. {{{name[:-1]}: 5}}")
            pairs.append((str(k.value).strip(), "" if v.tag == _NULL else str(v.value).strip()))
        return parse_levels(pairs, lower)
    if isinstance(node, yaml.SequenceNode):
        raise FieldError("must be a mapping of names to levels, e.g. {billing: 5}, not a list")
    return parse_levels(split_levels(_scalar(node)), lower)


def _agent_field(name: str, node: yaml.Node) -> Any:
    if name == "skills":
        return _yaml_levels(node, name, lower=False)
    if name == "dialects":
        return _yaml_levels(node, name, lower=True)
    if name in ("languages", "groups"):
        return AGENT_PARSERS[name](_yaml_list(node, name))
    return AGENT_PARSERS[name](_scalar(node))


#: an agents file may hold more values than the other YAML files (about 40 an agent)
MAX_AGENT_VALUES = 250_000


def parse_agents_yaml(text: str, file: str = "agents.yaml") -> ParseResult[AgentProfile]:
    """Agents from YAML: a list of mappings, or ``{agents: [...]}``."""
    text = text.removeprefix("\ufeff")
    try:  # bounded: nesting, aliases (acd.loaders.yamlpos)
        root = compose(text, max_values=MAX_AGENT_VALUES)
    except YamlLimitError as exc:
        mark = exc.problem_mark
        raise ProfileFileError(file, mark.line + 1 if mark else 1, str(exc.problem),
                               mark.column + 1 if mark else 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProfileFileError(file, mark.line + 1 if mark else 1,
                               f"is not valid YAML: {exc.problem or exc}",
                               mark.column + 1 if mark else 0) from None
    except yaml.YAMLError as exc:
        raise ProfileFileError(file, 1, f"is not valid YAML: {exc}") from None
    if root is None:
        raise ProfileFileError(file, 1, "the file is empty; it must be a list of agents")
    if isinstance(root, yaml.MappingNode):
        keys = {str(k.value): v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(keys) != {"agents"} or len(root.value) != 1:
            raise ProfileFileError(file, _line(root), "the top level must be a list of agents "
                                   "or a mapping with just the key 'agents'")
        root = keys["agents"]
    if not isinstance(root, yaml.SequenceNode):
        raise ProfileFileError(file, _line(root), "the agents must be a list "
                               "(each item starting with '- ')")
    out = Collector[AgentProfile](ParseResult(file), lambda a: a.agent_id, "agent_id")
    for item in root.value:
        line = _line(item)
        if not isinstance(item, yaml.MappingNode):
            what = repr(item.value) if isinstance(item, yaml.ScalarNode) else _kind(item)
            out.error(line, "", f"the item is {what}, not a mapping of fields "
                      "(agent_id: ..., extension: ...)")
            out.result.rejected += 1
            continue
        values: dict[str, Any] = {}
        given: set[str] = set()
        bad = False
        for knode, vnode in item.value:
            name = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "?"
            if name not in AGENT_COLUMNS:
                out.error(_line(knode), name, f"unknown field {name!r} "
                          f"(known: {', '.join(AGENT_COLUMNS)})")
                bad = True
                continue
            if name in given:
                out.error(_line(knode), name, f"{name} appears twice in this agent")
                bad = True
                continue
            given.add(name)
            try:
                value = _agent_field(name, vnode)
            except FieldError as exc:
                out.error(_line(vnode), name, f"{name} {exc}")
                bad = True
                continue
            if name in AGENT_REQUIRED and value == "":
                out.error(_line(vnode), name, f"{name} is missing")
                bad = True
                continue
            values[name] = value
        for r in AGENT_REQUIRED:
            if r not in given:
                out.error(line, r, f"{r} is missing")
                bad = True
        if bad:
            out.result.rejected += 1
            continue
        try:
            profile = AgentProfile(**values)
        except ValueError as exc:
            out.error(line, "", str(exc))
            out.result.rejected += 1
            continue
        out.keep(Row(profile, line, frozenset(given)))
    return out.finish()
