"""Routing policy files (YAML) -> :class:`acd.core.policy.Policy`.

Every error names file, line and column.  Conditions are structured::

    when: {vip_level: {min: 1}, dialect: [minnan, cantonese], segment: {not: prepaid}}

A value is *equals*; a list is *any of*; ``{min, max}`` a numeric range;
``{not: ...}`` negates; ``{present: true}`` tests that the attribute is set.
Nothing is evaluated as code.  See docs/routing.md.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from acd.core.policy import (
    PREFERENCE_NAMES,
    REQUIREMENT_NAMES,
    ClassRule,
    CustomerClass,
    Policy,
    Preferences,
    QueuePolicy,
    Requirements,
    RouteRule,
    Step,
    Test,
    When,
)
from acd.loaders.yamlpos import Reader, YamlError, read_text

FALLBACKS = ("callback", "voicemail", "sms", "message")


class PolicyError(YamlError):
    """A routing policy file is wrong."""


def _when(r: Reader, node: yaml.Node, what: str) -> When:
    tests: list[Test] = []
    for attr, (_knode, vnode) in r.mapping(node, what).items():
        tests.append(_test(r, attr, vnode, f"{what}: {attr}"))
    return When(tuple(tests))


def _test(r: Reader, attr: str, node: yaml.Node, what: str, negate: bool = False) -> Test:
    if isinstance(node, yaml.ScalarNode):
        return Test(attr, values=frozenset([r.string(node, what)]), negate=negate)
    if isinstance(node, yaml.SequenceNode):
        return Test(attr, values=frozenset(r.strings(node, what)), negate=negate)
    fields = r.mapping(node, what)
    r.known(fields, what, {"min", "max", "not", "present"})
    if "not" in fields:
        if len(fields) > 1:
            raise r.err(node, f"{what}: 'not' cannot be combined with other tests")
        return _test(r, attr, fields["not"][1], what, negate=not negate)
    if "present" in fields:
        if len(fields) > 1:
            raise r.err(node, f"{what}: 'present' cannot be combined with other tests")
        present = r.boolean(fields["present"][1], f"{what}: present")
        return Test(attr, present=True, negate=negate != (not present))
    lo = r.number(fields["min"][1], f"{what}: min", -1e12, 1e12) if "min" in fields else None
    hi = r.number(fields["max"][1], f"{what}: max", -1e12, 1e12) if "max" in fields else None
    if lo is None and hi is None:
        raise r.err(node, f"{what}: give a value, a list, min/max, not or present")
    if lo is not None and hi is not None and lo > hi:
        raise r.err(node, f"{what}: min {lo:g} is above max {hi:g}")
    return Test(attr, lo=lo, hi=hi, negate=negate)


def _dialect_map(r: Reader, node: yaml.Node, what: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for d, (_, vnode) in r.mapping(node, what).items():
        out[d.lower()] = tuple(x.lower() for x in r.strings(vnode, f"{what}: {d}"))
    return out


def _require(r: Reader, node: yaml.Node | None, what: str, skill: str,
             min_level: int) -> Requirements:
    if node is None:
        return Requirements(skill=skill, min_level=min_level)
    fields = r.mapping(node, what)
    r.known(fields, what, set(REQUIREMENT_NAMES))
    dialect_min = None
    if "dialect" in fields:
        dnode = fields["dialect"][1]
        if isinstance(dnode, yaml.ScalarNode) and dnode.value in ("true", "yes"):
            dialect_min = 1
        else:
            dfields = r.mapping(dnode, f"{what}: dialect")
            r.known(dfields, f"{what}: dialect", {"min_proficiency"})
            dialect_min = r.integer(dfields["min_proficiency"][1],
                                    f"{what}: dialect: min_proficiency", 1, 10) \
                if "min_proficiency" in dfields else 1

    def flag(name: str) -> bool:
        return r.boolean(fields[name][1], f"{what}: {name}") if name in fields else False

    groups = frozenset(r.strings(fields["groups"][1], f"{what}: groups")) \
        if "groups" in fields else frozenset()
    return Requirements(skill=skill, min_level=min_level, dialect_min=dialect_min,
                        language=flag("language"), gender=flag("gender"),
                        age_band=flag("age_band"), vip_qualified=flag("vip_qualified"),
                        groups=groups)


def _prefer(r: Reader, node: yaml.Node | None, what: str) -> Preferences:
    if node is None:
        return Preferences(idle=1.0)
    fields = r.mapping(node, what)
    r.known(fields, what, set(PREFERENCE_NAMES))
    weights = {k: r.number(v, f"{what}: {k}", 0, 1000) for k, (_, v) in fields.items()}
    return Preferences(**weights)


def _steps(r: Reader, node: yaml.Node, what: str, queues: set[str]) -> tuple[Step, ...]:
    steps: list[Step] = []
    last = -1.0
    for i, snode in enumerate(r.sequence(node, what)):
        sw = f"{what}[{i}]"
        fields = r.mapping(snode, sw)
        r.known(fields, sw, {"after", "drop", "accept_dialects", "min_level", "overflow"})
        if "after" not in fields:
            raise r.err(snode, f"{sw} needs 'after' (seconds of waiting)")
        after = r.number(fields["after"][1], f"{sw}: after", 0, 86400)
        if after < last:
            raise r.err(fields["after"][1], f"{sw}: steps must be in order of time "
                                            f"({after:g}s comes after {last:g}s)")
        last = after
        changes = [k for k in ("drop", "accept_dialects", "min_level", "overflow") if k in fields]
        if len(changes) != 1:
            raise r.err(snode, f"{sw}: relax exactly one thing per step "
                               f"(drop, accept_dialects, min_level or overflow)")
        kind = changes[0]
        vnode = fields[kind][1]
        if kind == "drop":
            name = r.string(vnode, f"{sw}: drop")
            if name not in REQUIREMENT_NAMES and name not in PREFERENCE_NAMES:
                raise r.err(vnode, f"{sw}: cannot drop {name!r} (requirements: "
                                   f"{', '.join(REQUIREMENT_NAMES)}; preferences: "
                                   f"{', '.join(PREFERENCE_NAMES)})")
            steps.append(Step(after, drop=name))
        elif kind == "accept_dialects":
            steps.append(Step(after, accept_dialects=_dialect_map(r, vnode, f"{sw}: {kind}")))
        elif kind == "min_level":
            steps.append(Step(after, min_level=r.integer(vnode, f"{sw}: min_level", 1, 10)))
        else:
            target = r.string(vnode, f"{sw}: overflow")
            if target not in queues:
                raise r.err(vnode, f"{sw}: overflow to unknown queue {target!r} "
                                   f"(queues: {', '.join(sorted(queues))})")
            steps.append(Step(after, overflow=target))
    return tuple(steps)


QUEUE_KEYS = {"skill", "min_level", "require", "prefer", "escalate", "max_wait", "announce",
              "ring_timeout_s", "handle_time_s"}


def parse_policy(text: str, file: str = "<policy>") -> Policy:
    r = Reader(file, PolicyError)
    root = r.compose(text)
    top = r.mapping(root, "the policy file")
    r.known(top, "the policy file", {"classes", "class_rules", "routes", "queues", "aging",
                                     "default_class"}, {"queues"}, root)
    qnodes = r.mapping(top["queues"][1], "queues")
    if not qnodes:
        raise r.err(top["queues"][1], "queues is empty")
    qnames = set(qnodes)

    classes: dict[str, CustomerClass] = {}
    if "classes" in top:
        for cname, (_, cnode) in r.mapping(top["classes"][1], "classes").items():
            cf = r.mapping(cnode, f"class {cname!r}")
            r.known(cf, f"class {cname!r}", {"sl_target", "sl_seconds"})
            classes[cname] = CustomerClass(
                cname,
                sl_threshold_s=r.number(cf["sl_seconds"][1], f"class {cname!r}: sl_seconds",
                                        1, 3600) if "sl_seconds" in cf else 20.0,
                sl_target=r.number(cf["sl_target"][1], f"class {cname!r}: sl_target", 0, 1)
                if "sl_target" in cf else 0.8)
    default_class = r.string(top["default_class"][1], "default_class") \
        if "default_class" in top else "standard"
    if classes and default_class not in classes:
        node = top["default_class"][1] if "default_class" in top else top["classes"][1]
        raise r.err(node, f"default class {default_class!r} is not defined "
                          f"(classes: {', '.join(classes)})")

    class_rules: list[ClassRule] = []
    if "class_rules" in top:
        for i, n in enumerate(r.sequence(top["class_rules"][1], "class_rules")):
            w = f"class_rules[{i}]"
            f = r.mapping(n, w)
            r.known(f, w, {"when", "class"}, {"class"}, n)
            cname = r.string(f["class"][1], f"{w}: class")
            if classes and cname not in classes:
                raise r.err(f["class"][1], f"{w}: unknown class {cname!r} "
                                           f"(classes: {', '.join(classes)})")
            class_rules.append(ClassRule(_when(r, f["when"][1], f"{w}: when")
                                         if "when" in f else When(), cname))

    routes: list[RouteRule] = []
    if "routes" in top:
        for i, n in enumerate(r.sequence(top["routes"][1], "routes")):
            w = f"routes[{i}]"
            f = r.mapping(n, w)
            r.known(f, w, {"when", "queue", "priority"}, {"queue"}, n)
            q = r.string(f["queue"][1], f"{w}: queue")
            if q not in qnames:
                raise r.err(f["queue"][1], f"{w}: unknown queue {q!r} "
                                           f"(queues: {', '.join(sorted(qnames))})")
            prio = r.integer(f["priority"][1], f"{w}: priority", 0, 100) \
                if "priority" in f else 0
            routes.append(RouteRule(_when(r, f["when"][1], f"{w}: when")
                                    if "when" in f else When(), q, prio))

    aging = 60.0
    if "aging" in top:
        af = r.mapping(top["aging"][1], "aging")
        r.known(af, "aging", {"seconds_per_level"}, {"seconds_per_level"}, top["aging"][1])
        aging = r.number(af["seconds_per_level"][1], "aging: seconds_per_level", 0.001, 86400)

    queues: dict[str, QueuePolicy] = {}
    for qname, (_, qnode) in qnodes.items():
        w = f"queue {qname!r}"
        f = r.mapping(qnode, w)
        r.known(f, w, QUEUE_KEYS)
        skill = r.string(f["skill"][1], f"{w}: skill") if "skill" in f else qname
        min_level = r.integer(f["min_level"][1], f"{w}: min_level", 1, 10) \
            if "min_level" in f else 1
        require = _require(r, f["require"][1] if "require" in f else None,
                           f"{w}: require", skill, min_level)
        prefer = _prefer(r, f["prefer"][1] if "prefer" in f else None, f"{w}: prefer")
        steps = _steps(r, f["escalate"][1], f"{w}: escalate", qnames) \
            if "escalate" in f else ()
        for st in steps:
            if st.overflow == qname:
                raise r.err(f["escalate"][1], f"{w}: overflow to itself")
        max_wait, fallback = None, "message"
        if "max_wait" in f:
            mf = r.mapping(f["max_wait"][1], f"{w}: max_wait")
            r.known(mf, f"{w}: max_wait", {"after", "fallback"}, {"after"}, f["max_wait"][1])
            max_wait = r.number(mf["after"][1], f"{w}: max_wait: after", 1, 86400)
            if "fallback" in mf:
                fallback = r.string(mf["fallback"][1], f"{w}: max_wait: fallback")
                if fallback not in FALLBACKS:
                    raise r.err(mf["fallback"][1], f"{w}: fallback {fallback!r} is not one of "
                                                   f"{', '.join(FALLBACKS)}")
        announce = None
        if "announce" in f:
            an = r.mapping(f["announce"][1], f"{w}: announce")
            r.known(an, f"{w}: announce", {"every"}, {"every"}, f["announce"][1])
            announce = r.number(an["every"][1], f"{w}: announce: every", 5, 3600)
        queues[qname] = QueuePolicy(
            qname, require, prefer, steps, max_wait, fallback, announce,
            ring_timeout_s=r.number(f["ring_timeout_s"][1], f"{w}: ring_timeout_s", 1, 300)
            if "ring_timeout_s" in f else 20.0,
            handle_time_s=r.number(f["handle_time_s"][1], f"{w}: handle_time_s", 1, 36000)
            if "handle_time_s" in f else 180.0,
        )
    _check_overflow_cycles(r, qnodes, queues)
    return Policy(queues=queues, classes=classes, class_rules=tuple(class_rules),
                  routes=tuple(routes), aging_s_per_level=aging, default_class=default_class)


def _check_overflow_cycles(r: Reader, qnodes: dict[str, tuple[yaml.Node, yaml.Node]],
                           queues: dict[str, QueuePolicy]) -> None:
    """A call must not overflow round in a circle (A -> B -> A)."""
    for start in queues:
        seen = [start]
        cur = start
        while True:
            nxt = next((s.overflow for s in queues[cur].escalate if s.overflow), None)
            if nxt is None:
                break
            if nxt in seen:
                raise r.err(qnodes[start][0], f"queue {start!r}: overflow goes round in a "
                                              f"circle ({' -> '.join([*seen, nxt])})")
            seen.append(nxt)
            cur = nxt


def load_policy(path: str | Path) -> Policy:
    text, file = read_text(path, PolicyError, "routing policy file")
    return parse_policy(text, file)
