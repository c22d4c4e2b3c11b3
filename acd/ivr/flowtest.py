"""Test cases for flows (``acd flow test``): inputs, then what must happen.

::

    flow: hotline.yaml                  # relative to this file
    at: "2026-11-23T10:00:00+08:00"     # the default time of the cases
    cases:
      - name: balance in Cantonese
        caller: "13800138000"
        profile: {vip_level: 2, dialect: cantonese}   # caller.*: the customers table's
                                        # columns, shaped as the caller lookup gives them
        keys: ["2", "3"]                # one entry per prompt that listens
        lookups:                        # node -> answer (a mapping) or error
          balance_lookup: {balance: "12.50"}
        expect:
          end: goodbye                  # the last node
          queue: billing                # it ends in this queue ...
          priority: 10
          attributes: {dialect: cantonese}
          transfer: "95555"             # ... or is transferred, or voicemail
          voicemail: "1000@default"
          reason: flow                  # why a hang-up happened
          path: [welcome, lang, ...]    # the whole path, exactly
          visits: [lang, balance]       # these nodes in this order (gaps allowed)
          not_visits: [agent_queue]
          variables: {account: "12345678"}
          sms: [balance_link]
          prompts: [acd/welcome]        # played, in this order (gaps allowed)
          keys_left: 0                  # keys the flow never asked for

Every mismatch is reported with the case's line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from acd.core.profiles import CALLER_ATTRIBUTES
from acd.ivr.dryrun import DryRun, dry_run
from acd.ivr.interpreter import EndCall, EnterQueue, TransferCall, VoicemailCall
from acd.ivr.load import load_flow
from acd.ivr.nodes import Flow
from acd.loaders.profile_fields import FieldError, caller_attributes
from acd.loaders.yamlpos import Reader, YamlError, plain_value, read_text

EXPECT_KEYS = {"end", "queue", "priority", "attributes", "transfer", "voicemail", "reason",
               "path", "visits", "not_visits", "variables", "sms", "prompts", "keys_left",
               "outcome"}
CASE_KEYS = {"name", "caller", "profile", "at", "keys", "lookups", "expect"}


class FlowTestError(YamlError):
    """A test file is wrong (not a failing case)."""


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    line: int
    caller: str
    profile: dict[str, str] | None
    at: dt.datetime | None
    keys: list[str]
    lookups: dict[str, dict[str, object] | None]
    expect: dict[str, Any]
    marks: dict[str, int] = field(default_factory=dict)  # expect key -> line


@dataclass(frozen=True, slots=True)
class TestFile:
    file: str
    flow_file: Path
    cases: tuple[Case, ...]
    flow_at: tuple[int, int] = (1, 1)  # where the file names its flow (line, column)


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    run: DryRun
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def _when(r: Reader, node: yaml.Node, what: str) -> dt.datetime:
    text = r.string(node, what)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise r.err(node, f"{what}: {text!r} is not a time like "
                          "2026-11-23T10:00:00+08:00") from None
    if when.tzinfo is None:
        raise r.err(node, f"{what}: {text!r} needs a UTC offset (e.g. +08:00)")
    return when


def _plain(r: Reader, node: yaml.Node) -> Any:
    """A value as ``yaml.safe_load`` gives it, or a positioned error."""
    try:
        return plain_value(node)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        problem = getattr(exc, "problem", None) or exc
        raise r.err(node, f"this value cannot be read: {problem}") from None


def _profile(r: Reader, node: yaml.Node, what: str, caller: str) -> dict[str, str]:
    """A case's ``profile:`` as the engine's caller lookup gives it: the
    customers table's columns read as an import reads them, then written
    as the stored profile is (``vip_level: 3`` is ``"3"``; tags a list or
    ``a;b``).  The caller's number stays the case's ``caller``, as in the
    engine, where the caller id wins over the stored form."""
    values: dict[str, str] = {}
    for key, (k, v) in r.mapping(node, f"{what}: profile").items():
        raw = _plain(r, v)
        text = "" if raw is None else ";".join(map(str, raw)) if isinstance(raw, list) \
            else str(raw)
        try:
            caller_attributes({key: text}, caller)
        except FieldError as exc:
            where = v if key in CALLER_ATTRIBUTES and key != "number" else k
            raise r.err(where, f"{what}: profile: {exc}") from None
        values[key] = text
    attrs = caller_attributes(values, caller)
    attrs.pop("number", None)
    return attrs


def load_tests(path: str | Path) -> TestFile:
    text, file = read_text(path, FlowTestError, "test file")
    r = Reader(file, FlowTestError)
    root = r.compose(text)
    top = r.mapping(root, "the test file")
    r.known(top, "the test file", {"flow", "at", "cases"}, {"flow", "cases"}, root)
    flow_file = Path(file).parent / r.string(top["flow"][1], "flow")
    default_at = _when(r, top["at"][1], "at") if "at" in top else None
    cases: list[Case] = []
    names: set[str] = set()
    items = r.sequence(top["cases"][1], "cases")
    if not items:
        raise r.err(top["cases"][1], "cases is empty")
    for i, item in enumerate(items):
        what = f"case {i + 1}"
        f = r.mapping(item, what)
        r.known(f, what, CASE_KEYS, {"name", "expect"}, item)
        name = r.string(f["name"][1], f"{what}: name")
        if name in names:
            raise r.err(f["name"][1], f"{what}: the name {name!r} is used twice")
        names.add(name)
        what = f"case {name!r}"
        keys: list[str] = []
        if "keys" in f:
            for k in r.sequence(f["keys"][1], f"{what}: keys"):
                if not isinstance(k, yaml.ScalarNode):
                    raise r.err(k, f"{what}: keys: each entry is a key or digits (quote them)")
                value = str(k.value)
                if any(c not in "0123456789*#" for c in value):
                    raise r.err(k, f"{what}: keys: {value!r} has something other than "
                                   "0-9, * and #")
                keys.append(value)
        caller = str(_plain(r, f["caller"][1])) if "caller" in f else "13800138000"
        profile = _profile(r, f["profile"][1], what, caller) if "profile" in f else None
        lookups: dict[str, dict[str, object] | None] = {}
        if "lookups" in f:
            for node_name, (_, v) in r.mapping(f["lookups"][1], f"{what}: lookups").items():
                if isinstance(v, yaml.ScalarNode) and v.value == "error":
                    lookups[node_name] = None
                elif isinstance(v, yaml.MappingNode):
                    lookups[node_name] = _plain(r, v)
                else:
                    raise r.err(v, f"{what}: lookups: {node_name!r} must be the answer "
                                   "(a mapping) or error")
        exp = r.mapping(f["expect"][1], f"{what}: expect")
        r.known(exp, f"{what}: expect", EXPECT_KEYS)
        if not exp:
            raise r.err(f["expect"][1], f"{what}: expect is empty")
        expect = {k: _plain(r, v) for k, (_, v) in exp.items()}
        for key in ("path", "visits", "not_visits", "sms", "prompts"):
            if key in expect and not isinstance(expect[key], list):
                raise r.err(exp[key][1], f"{what}: expect {key} must be a list")
        cases.append(Case(
            name=name, line=item.start_mark.line + 1,
            caller=caller,
            profile=profile,
            at=_when(r, f["at"][1], f"{what}: at") if "at" in f else default_at,
            keys=keys, lookups=lookups, expect=expect,
            marks={k: v.start_mark.line + 1 for k, (_, v) in exp.items()}))
    mark = top["flow"][1].start_mark
    return TestFile(file, flow_file, tuple(cases), (mark.line + 1, mark.column + 1))


def _subsequence(want: Sequence[str], got: Sequence[str]) -> str | None:
    """None when ``want`` appears in ``got`` in order; else the first missing item."""
    it = iter(got)
    for w in want:
        if not any(g == w for g in it):
            return w
    return None


def check_case(flow: Flow, case: Case) -> CaseResult:
    run = dry_run(flow, case.keys, case.caller, case.profile, case.at, case.lookups)
    fails: list[str] = []
    exp = case.expect
    end = run.end

    def fail(key: str, message: str) -> None:
        fails.append(f"line {case.marks.get(key, case.line)}: {message}")

    def kind(e: object) -> str:
        return {EnterQueue: "queue", TransferCall: "transfer", VoicemailCall: "voicemail",
                EndCall: "hangup"}[type(e)]

    if "outcome" in exp and kind(end) != exp["outcome"]:
        fail("outcome", f"ends in {kind(end)}, expected {exp['outcome']}")
    if "end" in exp and run.end_node != exp["end"]:
        fail("end", f"ends at node {run.end_node!r}, expected {exp['end']!r}")
    if "queue" in exp:
        if not isinstance(end, EnterQueue):
            fail("queue", f"ends in {kind(end)} at {run.end_node!r}, expected queue "
                          f"{exp['queue']!r}")
        elif end.queue != exp["queue"]:
            fail("queue", f"queue {end.queue!r}, expected {exp['queue']!r}")
    if "priority" in exp:
        got = end.priority if isinstance(end, EnterQueue) else None
        if got != exp["priority"]:
            fail("priority", f"priority {got}, expected {exp['priority']}")
    if "attributes" in exp:
        got_attrs = dict(end.attributes) if isinstance(end, EnterQueue) else {}
        for k, v in (exp["attributes"] or {}).items():
            if got_attrs.get(k) != str(v):
                fail("attributes", f"attribute {k} = {got_attrs.get(k)!r}, expected {str(v)!r}")
    if "transfer" in exp:
        got_n = end.number if isinstance(end, TransferCall) else None
        if got_n != str(exp["transfer"]):
            fail("transfer", f"transfer to {got_n!r}, expected {str(exp['transfer'])!r}")
    if "voicemail" in exp:
        got_m = end.mailbox if isinstance(end, VoicemailCall) else None
        if got_m != str(exp["voicemail"]):
            fail("voicemail", f"voicemail {got_m!r}, expected {str(exp['voicemail'])!r}")
    if "reason" in exp:
        got_r = end.reason if isinstance(end, EndCall) else None
        if got_r != exp["reason"]:
            fail("reason", f"hang-up reason {got_r!r}, expected {exp['reason']!r}")
    if "path" in exp and list(run.path) != [str(x) for x in exp["path"]]:
        fail("path", f"path {' > '.join(run.path)}, expected {' > '.join(exp['path'])}")
    if "visits" in exp:
        missing = _subsequence([str(x) for x in exp["visits"]], run.path)
        if missing is not None:
            fail("visits", f"does not visit {missing!r} in that order (path: "
                           f"{' > '.join(run.path)})")
    for n in exp.get("not_visits") or []:
        if n in run.path:
            fail("not_visits", f"visits {n!r} (path: {' > '.join(run.path)})")
    if "variables" in exp:
        for k, v in (exp["variables"] or {}).items():
            got_v = run.variables.get(k)
            want = None if v is None else str(v)
            if (None if got_v is None else str(got_v)) != want:
                fail("variables", f"variable {k} = {got_v!r}, expected {want!r}")
    if "sms" in exp and list(run.sms) != [str(x) for x in exp["sms"]]:
        fail("sms", f"SMS marked {list(run.sms)}, expected {exp['sms']}")
    if "prompts" in exp:
        missing = _subsequence([str(x) for x in exp["prompts"]], run.prompts)
        if missing is not None:
            fail("prompts", f"does not play {missing!r} in that order (played: "
                            f"{', '.join(run.prompts)})")
    if "keys_left" in exp and len(run.keys_left) != exp["keys_left"]:
        fail("keys_left", f"{len(run.keys_left)} key entries left unused "
                          f"({json.dumps(list(run.keys_left))}), expected {exp['keys_left']}")
    return CaseResult(case, run, tuple(fails))


def run_tests(tests: TestFile, flow: Flow | None = None) -> Iterator[CaseResult]:
    if flow is None:
        flow = load_flow(tests.flow_file)
    for case in tests.cases:
        yield check_case(flow, case)


def tests_for(flow_path: Path) -> Path:
    """``hotline.yaml`` -> ``hotline.tests.yaml``."""
    return flow_path.with_name(flow_path.name.removesuffix(".yaml").removesuffix(".yml")
                               + ".tests.yaml")
