"""The scheduling rules file of ``acd schedule`` (docs/planning.md, "Scheduling").

```yaml
interval: 30                 # minutes (optional: else from the requirements)
shifts:
  lengths: [8h, 6h, 4h]      # a duration: 8h, 7h30, 45m, 90 (minutes)
  start_step: 30m
  starts: ["06:00-10:00", "14:00-22:00"]   # optional: allowed start times
breaks:                      # optional: else the default (lunch + 15 min per 4 h)
  - {kind: lunch, minutes: 30, min_shift: 6h, window: [3h, 5h]}
  - {kind: break, minutes: 15, per: 4h, margin: 1h}
agents:
  - {type: billing, skills: [billing], count: 25, max_shifts: 5, min_rest: 11h}
  - {type: flex, skills: {billing: 5, tech: 3}, count: 6}
  - {id: ann, skills: [tech]}              # one named agent
weights: {under: 1000, paid: 10, over: 0}  # per agent-hour
```

:func:`parse_rules` raises :class:`RulesError` naming ``file:line:column``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from acd.loaders.yamlpos import Reader, YamlError, read_text
from acd.planning.schedule import (
    DEFAULT_BREAKS,
    AgentType,
    BreakRule,
    ScheduleError,
    ScheduleRules,
    Weights,
    break_windows,
)

__all__ = ["RulesError", "load_rules", "parse_duration", "parse_rules"]

TOP_KEYS = {"interval", "shifts", "breaks", "agents", "weights"}
_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*(?:m|min)?)?\s*$")
_TOD = re.compile(r"^(\d{1,2}):(\d{2})$")


class RulesError(YamlError):
    """A scheduling rules file is wrong: ``file:line:column: problem``."""


def parse_duration(text: str) -> int | None:
    """``8h``, ``7h30``, ``45m``, ``90min``, ``90`` (minutes) -> minutes;
    None when it is not one."""
    text = text.strip().lower()
    if not text:
        return None
    m = _DURATION.match(text)
    if m is None or (m.group(1) is None and m.group(2) is None):
        return None
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def _dur(r: Reader, node: yaml.Node, what: str, lo: int = 0, hi: int = 7 * 24 * 60) -> int:
    text = node.value if isinstance(node, yaml.ScalarNode) else None
    value = parse_duration(str(text)) if text is not None else None
    if value is None:
        raise r.err(node, f"{what} must be a duration such as 8h, 7h30, 45m or 90 (minutes)")
    if not lo <= value <= hi:
        raise r.err(node, f"{what} must be from {lo} to {hi} minutes (got {value})")
    return value


def _tod(r: Reader, node: yaml.Node, text: str, what: str) -> int:
    m = _TOD.match(text.strip())
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise r.err(node, f"{what}: {text!r} is not a time of day HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def _skills(r: Reader, node: yaml.Node, what: str) -> tuple[tuple[str, int], ...]:
    if isinstance(node, yaml.MappingNode):
        out = tuple((k, r.integer(v, f"{what}: {k}", 1, 10))
                    for k, (_, v) in r.mapping(node, what).items())
    else:
        out = tuple((q, 5) for q in r.strings(node, what))
    if not out:
        raise r.err(node, f"{what} is empty")
    return out


def parse_rules(text: str, file: str = "<rules>") -> ScheduleRules:
    r = Reader(file, RulesError)
    root = r.compose(text)
    top = r.mapping(root, "the rules")
    r.known(top, "the rules", TOP_KEYS, {"agents"}, root)
    interval = None
    if "interval" in top:
        node = top["interval"][1]
        interval = _dur(r, node, "interval")
        if interval not in (15, 30, 60):
            raise r.err(node, f"interval must be 15, 30 or 60 minutes (got {interval})")
    lengths: tuple[int, ...] = (480, 360, 240)
    step = 30
    windows: tuple[tuple[int, int], ...] = ()
    if "shifts" in top:
        node = top["shifts"][1]
        f = r.mapping(node, "shifts")
        r.known(f, "shifts", {"lengths", "start_step", "starts"}, set(), node)
        if "lengths" in f:
            nodes = r.sequence(f["lengths"][1], "shifts: lengths")
            if not nodes:
                raise r.err(f["lengths"][1], "shifts: lengths is empty")
            lengths = tuple(_dur(r, n, f"shifts: lengths[{i}]", 30, 16 * 60)
                            for i, n in enumerate(nodes))
        if "start_step" in f:
            step = _dur(r, f["start_step"][1], "shifts: start_step", 5, 24 * 60)
        if "starts" in f:
            out = []
            for i, n in enumerate(r.sequence(f["starts"][1], "shifts: starts")):
                text_ = r.string(n, f"shifts: starts[{i}]")
                parts = text_.replace(" ", "").split("-")
                if len(parts) != 2:
                    raise r.err(n, f"shifts: starts[{i}] must be HH:MM-HH:MM (got {text_!r})")
                out.append((_tod(r, n, parts[0], f"shifts: starts[{i}]"),
                            _tod(r, n, parts[1], f"shifts: starts[{i}]")))
            windows = tuple(out)
    breaks: tuple[BreakRule, ...] = DEFAULT_BREAKS
    if "breaks" in top:
        breaks = tuple(_break(r, n, i) for i, n in enumerate(
            r.sequence(top["breaks"][1], "breaks")))
    for length in lengths:
        try:
            break_windows(length, breaks)
        except ScheduleError as exc:
            raise r.err(top["breaks"][1] if "breaks" in top else root, str(exc)) from None
    agents = _agents(r, top["agents"][1])
    weights = Weights()
    if "weights" in top:
        node = top["weights"][1]
        f = r.mapping(node, "weights")
        r.known(f, "weights", {"under", "paid", "over"}, set(), node)
        weights = Weights(**{k: r.integer(v, f"weights: {k}", 0, 1_000_000)
                             for k, (_, v) in f.items()})
    return ScheduleRules(agents=agents, lengths_min=lengths, start_step_min=step,
                         start_windows=windows, breaks=breaks, weights=weights,
                         interval_min=interval)


def _break(r: Reader, node: yaml.Node, i: int) -> BreakRule:
    w = f"breaks[{i}]"
    f = r.mapping(node, w)
    r.known(f, w, {"kind", "minutes", "min_shift", "window", "per", "margin"},
            {"kind", "minutes"}, node)
    kind = r.string(f["kind"][1], f"{w}: kind")
    minutes = _dur(r, f["minutes"][1], f"{w}: minutes", 5, 4 * 60)
    min_shift = _dur(r, f["min_shift"][1], f"{w}: min_shift") if "min_shift" in f else 0
    margin = _dur(r, f["margin"][1], f"{w}: margin") if "margin" in f else 60
    window = per = None
    if ("window" in f) == ("per" in f):
        raise r.err(node, f"{w}: give either 'window' (a fixed window from the shift's "
                          "start) or 'per' (one break per so long a shift)")
    if "window" in f:
        nodes = r.sequence(f["window"][1], f"{w}: window")
        if len(nodes) != 2:
            raise r.err(f["window"][1], f"{w}: window must be [from, to] (e.g. [3h, 5h])")
        a, b = (_dur(r, n, f"{w}: window") for n in nodes)
        if b - a < minutes:
            raise r.err(f["window"][1], f"{w}: the window is shorter than the break")
        window = (a, b)
    else:
        per = _dur(r, f["per"][1], f"{w}: per", 30, 24 * 60)
    return BreakRule(kind, minutes, min_shift, window, per, margin,
                     line=node.start_mark.line + 1)


def _agents(r: Reader, node: yaml.Node) -> tuple[AgentType, ...]:
    out = []
    names: set[str] = set()
    for i, n in enumerate(r.sequence(node, "agents")):
        w = f"agents[{i}]"
        f = r.mapping(n, w)
        r.known(f, w, {"type", "id", "skills", "count", "max_shifts", "min_rest"},
                {"skills"}, n)
        ids: tuple[str, ...]
        if ("type" in f) == ("id" in f):
            raise r.err(n, f"{w}: give 'type' (agents alike, with a count) or 'id' (one "
                           "named agent)")
        if "id" in f:
            if "count" in f:
                raise r.err(f["count"][0], f"{w}: a named agent ('id') has no count")
            name = r.string(f["id"][1], f"{w}: id")
            count, ids = 1, (name,)
        else:
            name = r.string(f["type"][1], f"{w}: type")
            if "count" not in f:
                raise r.err(n, f"{w} needs a 'count'")
            count, ids = r.integer(f["count"][1], f"{w}: count", 1, 100_000), ()
        if name in names:
            raise r.err(f["id" if "id" in f else "type"][1], f"{w}: {name!r} is used twice")
        names.add(name)
        out.append(AgentType(
            name, _skills(r, f["skills"][1], f"{w}: skills"), count,
            max_shifts=r.integer(f["max_shifts"][1], f"{w}: max_shifts", 1, 7)
            if "max_shifts" in f else 5,
            min_rest_min=_dur(r, f["min_rest"][1], f"{w}: min_rest", 0, 48 * 60)
            if "min_rest" in f else 11 * 60,
            ids=ids, line=n.start_mark.line + 1))
    if not out:
        raise r.err(node, "agents is empty")
    return tuple(out)


def load_rules(path: str | Path) -> ScheduleRules:
    text, file = read_text(path, RulesError, "rules file")
    return parse_rules(text, file)
