"""Bad files through every command that reads them: no traceback, the
documented exit code, a message naming the file and the line, at most 5 s
and 500 MB a run.

The corpus: the hand-written files of ``tests/data/bad_files/<kind>/`` (wrong
types at every level, unclosed quotes, truncated files...) and, made here in
the test's folder, what should not be committed: alias bombs, deep nesting,
encodings (Latin-1, GBK, UTF-16, NUL bytes, escapes of NUL and lone
surrogates), huge files, empty files, folders, missing files, pipes, symbolic
link loops and unreadable files.  Each file is put in a folder of its own,
with good files beside it for the files that name it (a configuration naming
a bad routing file, a scenario naming a bad trace...), and each command that
reads its kind runs on it (``KINDS``), through ``tests/bad_files_runner.py``:
one ``acd`` process per run, forked from one that has imported the commands
(the import time is added to each run's time).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from acd.loaders.textfile import (
    AGENTS_CSV_MAX_BYTES,
    CSV_MAX_BYTES,
    TRACE_MAX_BYTES,
    YAML_MAX_BYTES,
)
from acd.loaders.yamlpos import MAX_ALIAS_VALUES, MAX_DEPTH

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "bad_files"
RUNNER = ROOT / "tests" / "bad_files_runner.py"
ACD = Path(sys.executable).parent / "acd"

#: a run's CPU time (the import of the commands added: a real ``acd`` process's) and
#: peak memory; the wall time is looser, for a machine busy with other work.  The
#: largest file a loader reads (just under its size limit) takes 4-5 s here on a
#: shared core: 8 s leaves room for that and still catches a quadratic reader
MAX_S, MAX_MB, MAX_WALL_S = 8.0, 500.0, 20.0

# ------------------------------------------------------------- good files

GOOD: dict[str, str] = {
    "flow.yaml": (ROOT / "ivr_flows" / "basic.yaml").read_text(encoding="utf-8"),
    "routing.yaml": textwrap.dedent("""\
        queues:
          billing: {skill: billing, ring_timeout_s: 15}
          tech: {skill: tech}
          general: {skill: general}
        """),
    "sms.yaml": textwrap.dedent("""\
        sender: "10086"
        link: "https://m.example.cn/s/{token}"
        templates:
          app_link:
            zh: "App自助办理：{link} 回复TD退订"
        rules:
          - name: left_ivr
            when: {outcome: ivr}
            template: app_link
        """),
    "acd.yaml": textwrap.dedent("""\
        ami: {host: 127.0.0.1, port: 9, username: acd, secret: x, action_timeout_s: 1}
        agi: {host: 127.0.0.1, port: 0}
        database: sqlite+aiosqlite:///acd.db
        flow: flow.yaml
        routing: routing.yaml
        sms: {policy: sms.yaml, transport: log}
        agents:
          - {id: a1001, extension: "1001", skills: {billing: 5, tech: 5, general: 5}}
        """),
    "scenario.yaml": textwrap.dedent("""\
        name: small
        interval_minutes: 60
        arrivals: {calls_per_hour: 200}
        calls: 200
        routing: routing.yaml
        queues:
          billing: {share: 0.5, sl_seconds: 20}
          tech: {share: 0.3}
          general: {share: 0.2}
        handle: {dist: exponential, mean: 180}
        patience: {dist: exponential, mean: 300}
        agents:
          counts: {billing: 4, tech: 3, general: 2}
        """),
    "scenario_ivr.yaml": textwrap.dedent("""\
        name: small-ivr
        arrivals: {calls_per_hour: 200}
        calls: 200
        queues: {billing: {}, tech: {}, general: {}}
        ivr: {flow: flow.yaml}
        handle: {dist: exponential, mean: 180}
        agents:
          counts: {billing: 4, tech: 3, general: 2}
        """),
    "scenario_trace.yaml": textwrap.dedent("""\
        name: small-trace
        start: "08:00"
        trace: trace.csv
        queues: {billing: {sl_seconds: 20}, tech: {}}
        agents:
          counts: {billing: 2, tech: 2}
        """),
    "trace.csv": "arrival,number,queue,attributes,handle,patience\n"
                 "0,13800000001,billing,,100,\n10,13800000002,tech,dialect=cantonese,50,\n",
    "flow.tests.yaml": textwrap.dedent("""\
        flow: flow.yaml
        at: "2026-11-23T10:00:00+08:00"
        cases:
          - name: billing
            keys: ["", "1"]
            expect: {queue: billing}
        """),
    "main.yaml": textwrap.dedent("""\
        flow: main
        start: s
        nodes:
          s:
            type: subflow
            flow: flow.yaml
            next: q
          q:
            type: queue
            queue: billing
        """),
    "customers.csv": "number,name,vip_level\n13800138000,张伟,3\n13800138001,王芳,0\n",
    "agents.csv": "agent_id,extension,skills\na1001,1001,billing:5\na1002,1002,tech:4\n",
    "agents.yaml": "agents:\n  - {agent_id: a1001, extension: \"1001\", skills: {billing: 5}}\n",
}
DB = "sqlite+aiosqlite:///profiles.db"


@dataclass(frozen=True)
class Command:
    args: tuple[str, ...]
    codes: frozenset[int]  # the documented exit codes for a bad file
    via: str | None = None  # the file that names the bad one (its line is named too)
    skip: frozenset[str] = frozenset()  # kinds of entries it does not apply to
    unreadable: int | None = 2  # the code for a file that cannot be read or parsed at all


def cmd(*args: str, codes: tuple[int, ...] = (2,), via: str | None = None,
        skip: tuple[str, ...] = (), unreadable: int | None = 2) -> Command:
    return Command(args, frozenset(codes), via, frozenset(skip), unreadable)


#: what cannot be read or parsed at all (not UTF-8, not YAML, over a bound, not a
#: file): exit 2 from every command, those that answer a readable file's problems
#: with 1 too (``None``: depends on the kind, e.g. a cut that still parses)
UNREADABLE: dict[str, bool | None] = {
    **dict.fromkeys((
        "latin1", "gbk", "utf16_with_bom", "utf16le_without_bom", "nul_byte", "overlong_utf8",
        "binary", "directory", "missing", "fifo", "symlink_loop", "unreadable",
        "over_the_size_limit", "utf8_bom_then_an_error", "alias_bomb",
        "alias_bomb_with_merge_keys", "alias_loop", "undefined_alias", "deep_flow_sequence",
        "deep_json", "deep_block", "nul_escape", "lone_surrogate_escape", "control_character",
        "two_documents", "long_key", "just_under_the_size_limit", "densest_values",
        "fifty_megabytes", "giant_field", "giant_row",
        # hand-made
        "unclosed_quote.yaml", "unclosed_flow_mapping.yaml", "unclosed_flow_sequence.yaml",
        "truncated_in_a_flow_mapping.yaml", "tab_indent.yaml", "subflow_missing.yaml",
        "subflow_is_a_folder.yaml", "flow_names_a_missing_file.yaml"), True),
    "truncated": None,
}


#: kind -> (the name the bad file takes, the commands that read it)
KINDS: dict[str, tuple[str, tuple[Command, ...]]] = {
    "config": ("acd.yaml", (
        cmd("serve", "--config", "acd.yaml"),
        cmd("flow", "validate", "--config", "acd.yaml", "flow.yaml"),
        # ./acd.yaml is read for its country_code only: 0 when that is fine
        cmd("agents", "list", "--db", DB, codes=(0, 2), unreadable=None),
    )),
    "routing": ("routing.yaml", (
        cmd("flow", "validate", "--routing", "routing.yaml", "flow.yaml"),
        cmd("serve", "--config", "acd.yaml", via="acd.yaml"),
        cmd("sim", "run", "scenario.yaml", via="scenario.yaml"),
        cmd("staffing", "--scenario", "scenario.yaml", via="scenario.yaml"),
    )),
    "sms": ("sms.yaml", (
        cmd("serve", "--config", "acd.yaml", via="acd.yaml"),
        cmd("flow", "validate", "--config", "acd.yaml", "flow.yaml", via="acd.yaml"),
    )),
    "flow": ("flow.yaml", (
        cmd("flow", "validate", "flow.yaml", codes=(1,)),
        cmd("flow", "graph", "flow.yaml", "--format", "dot"),
        cmd("flow", "run", "flow.yaml"),
        cmd("flow", "test", "flow.tests.yaml", codes=(1,), via="flow.tests.yaml"),
        cmd("flow", "validate", "main.yaml", codes=(1,), via="main.yaml"),
        cmd("serve", "--config", "acd.yaml", via="acd.yaml"),
        cmd("sim", "run", "scenario_ivr.yaml", via="scenario_ivr.yaml"),
        cmd("demo", "--flow", "flow.yaml", "--calls", "1"),
    )),
    "flowtest": ("flow.tests.yaml", (
        cmd("flow", "test", "flow.tests.yaml", codes=(1,)),
        # a flow's tests are found beside it (a missing file: none to find)
        cmd("flow", "test", "flow.yaml", codes=(1,), skip=("missing", "loop")),
    )),
    "scenario": ("scenario.yaml", (
        cmd("sim", "run", "scenario.yaml"),
        cmd("staffing", "--scenario", "scenario.yaml"),
    )),
    "trace": ("trace.csv", (
        cmd("sim", "run", "scenario_trace.yaml", via="scenario_trace.yaml"),
        cmd("staffing", "--scenario", "scenario_trace.yaml", via="scenario_trace.yaml"),
    )),
    "customers": ("customers.csv", (
        cmd("customers", "import", "customers.csv", "--db", DB, codes=(1, 2)),
    )),
    "agents_csv": ("agents.csv", (
        cmd("agents", "import", "agents.csv", "--db", DB, codes=(1, 2)),
    )),
    "agents_yaml": ("agents.yaml", (
        cmd("agents", "import", "agents.yaml", "--db", DB, codes=(1, 2)),
    )),
}
YAML_KINDS = ("config", "routing", "sms", "flow", "flowtest", "scenario", "agents_yaml")
CSV_KINDS = ("customers", "agents_csv", "trace")
#: the size limit of each kind
LIMITS = {**dict.fromkeys(YAML_KINDS, YAML_MAX_BYTES), "customers": CSV_MAX_BYTES,
          "agents_csv": AGENTS_CSV_MAX_BYTES, "trace": TRACE_MAX_BYTES}


@dataclass
class Bad:
    """One bad file of the corpus."""

    kind: str
    name: str
    data: bytes = b""
    special: str = ""  # dir, missing, fifo, loop, unreadable, sparse (a file of that size)
    size: int = 0  # for sparse
    whole: bool = False  # a problem of the file as a whole: no line in it to name
    expect: tuple[str, ...] = ()  # texts the output must hold as well
    codes: frozenset[int] | None = None  # other exit codes than the kind's
    names: str = ""  # a regular expression of the file the message names (default: the bad one)

    @property
    def unreadable(self) -> bool | None:
        """The file cannot be read or parsed at all (:data:`UNREADABLE`)."""
        return UNREADABLE.get(self.name, False)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


# ------------------------------------------------------------- generators


def _bomb(levels: int = 10) -> bytes:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _with_line(good: str, line: int, extra: str) -> str:
    """``good`` with ``extra`` put at the end of its line ``line`` (from 1)."""
    lines = good.splitlines(keepends=True)
    i = min(line, len(lines)) - 1
    lines[i] = lines[i].rstrip("\n") + extra + "\n"
    return "".join(lines)


def _with_bytes(good: str, line: int, extra: bytes) -> bytes:
    """``good`` in UTF-8 with the bytes ``extra`` at the end of its line ``line``."""
    lines = good.encode().splitlines(keepends=True)
    i = min(line, len(lines)) - 1
    lines[i] = lines[i].rstrip(b"\n") + extra + b"\n"
    return b"".join(lines)


def generated(kind: str) -> list[Bad]:
    """What is made for every kind of file: encodings, bombs, nesting, sizes,
    things that are not files."""
    target, _ = KINDS[kind]
    good = GOOD[target]
    out = [
        Bad(kind, "empty", b""),
        Bad(kind, "blank", b"   \n\n \n"),
        Bad(kind, "latin1", _with_bytes(good, 2, " # café".encode("latin-1")),
            expect=(f"{target}:2:{len(good.splitlines()[1]) + 7}: ",)),
        Bad(kind, "gbk", _with_bytes(good, 3, " # 中文注释".encode("gbk")),
            expect=(f"{target}:{min(3, len(good.splitlines()))}:",)),
        Bad(kind, "utf16_with_bom", good.encode("utf-16"), expect=("UTF-16",)),
        Bad(kind, "utf16le_without_bom", good.encode("utf-16-le"), expect=("NUL",)),
        Bad(kind, "nul_byte", _with_line(good, 2, "\x00").encode(), expect=(f"{target}:2:",)),
        Bad(kind, "overlong_utf8", good.encode() + b"\xc0\xaf\n"),
        Bad(kind, "binary", random.Random(kind).randbytes(4096)),
        Bad(kind, "truncated", _truncated(good.encode())),
        Bad(kind, "directory", special="dir", whole=True),
        Bad(kind, "missing", special="missing", whole=True),
        Bad(kind, "fifo", special="fifo", whole=True),
        Bad(kind, "symlink_loop", special="loop", whole=True),
        Bad(kind, "over_the_size_limit", special="sparse", whole=True,
            size=LIMITS[kind] + 1,
            expect=("more than",)),
    ]
    if os.geteuid() != 0:  # root reads anything: test_unreadable_file_as_root_is_skipped
        out.append(Bad(kind, "unreadable", good.encode(), special="unreadable", whole=True))
    if kind in YAML_KINDS:
        out += [
            Bad(kind, "utf8_bom_then_an_error", ("\ufeff# a comment\nx: ]\n" + good).encode(),
                expect=(f"{target}:2:4:",)),
            Bad(kind, "alias_bomb", _bomb(), expect=("aliases repeat more than",)),
            Bad(kind, "alias_bomb_with_merge_keys", (
                "a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8}\n" + "".join(
                    f"b{i}: &b{i} {{<<: [{', '.join([f'*b{i - 1}' if i else '*a'] * 9)}]}}\n"
                    for i in range(9))).encode(), expect=("aliases repeat more than",)),
            Bad(kind, "alias_loop", b"a: &x [1, *x]\n", expect=("loop",)),
            Bad(kind, "undefined_alias", _with_line(good, 1, "").encode() + b"x: *nope\n"),
            Bad(kind, "many_small_aliases", (
                "base: &b 1\nlist: [" + ", ".join(["*b"] * 50_000) + "]\n").encode()),
            Bad(kind, "deep_flow_sequence", b"x: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
                expect=(f"more than {MAX_DEPTH} levels",)),
            Bad(kind, "deep_json", b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"\n",
                expect=(f"more than {MAX_DEPTH} levels",)),
            Bad(kind, "deep_block", "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 5))
                .encode() + b"  " * (MAX_DEPTH + 5) + b"v\n",
                expect=(f"more than {MAX_DEPTH} levels",)),
            Bad(kind, "nul_escape", _with_line(good, 1, "").encode() + b'x: "a\\0b"\n',
                expect=("NUL",)),
            Bad(kind, "lone_surrogate_escape", _with_line(good, 1, "").encode()
                + b'x: "\\ud800"\n', expect=("surrogate",)),
            Bad(kind, "control_character", _with_line(good, 2, " # \x07\x1b[2J").encode()),
            Bad(kind, "python_tag", b"x: !!python/object/apply:os.system [\"echo owned\"]\n"),
            Bad(kind, "two_documents", (good + "---\n" + good).encode()),
            Bad(kind, "top_is_a_scalar", b"42\n"),
            Bad(kind, "long_key", b"k" * 600_000 + b": 1\n"),
            Bad(kind, "long_line_value", b"x: " + b"v" * (YAML_MAX_BYTES - 100) + b"\n"),
            Bad(kind, "long_value_quoted_in_the_message", _long_value(kind),
                expect=("characters ...]",)),
            Bad(kind, "just_under_the_size_limit", _many_entries(YAML_MAX_BYTES - 4096)),
            Bad(kind, "densest_values", b"x: [" + b"1," * (YAML_MAX_BYTES // 2 - 8) + b"1]\n"),
            Bad(kind, "fifty_megabytes", _fifty_megabyte_flow() if kind == "flow" else b"",
                special="" if kind == "flow" else "sparse", size=50 * 1024**2, whole=True,
                expect=("more than",)),
        ]
    else:
        header = good.splitlines()[0]
        out += [
            Bad(kind, "utf8_bom_then_an_error",
                ("\ufeff" + header + "\n" + ",".join(["x"] * 40) + "\n").encode(),
                expect=(f"{target}:2",)),
            Bad(kind, "header_only", (header + "\n").encode(),
                codes=None if kind == "trace" else frozenset({0})),  # nothing to import
            Bad(kind, "giant_field", (header + '\n"' + "x" * 300_000 + '"\n').encode(),
                expect=(f"{target}:2",)),
            Bad(kind, "giant_row", (header + "\n" + ",".join(["1"] * 300_000) + "\n").encode(),
                expect=(f"{target}:2",)),
            Bad(kind, "old_mac_line_ends", good.replace("\n", "\r").encode()
                + b"x,\"y\rz\r"),
            Bad(kind, "control_characters", (good + "\x1b[2J\x07,\x08\x7f\n").encode()),
            # no row taken: nothing imported, as for a file that cannot be read
            Bad(kind, "every_row_bad_just_under_the_size_limit", _bad_rows(kind, header),
                codes=None if kind == "trace" else frozenset({2}),
                expect=() if kind == "trace" else ("nothing imported",)),
        ]
    return out


def _long_value(kind: str) -> bytes:
    """A file whose error message quotes a value of 500,000 characters."""
    v = "v" * 500_000
    return {"config": "flow: flow.yaml\nqueues: [{name: billing}, {name: tech}, {name: general}]"
                      f"\nevents: {{topic_prefix: "
                      f"'{v}/'}}\n",
            "routing": f"queues:\n  billing: {{max_wait: {{after: 900, fallback: {v}}}}}\n",
            "sms": f"templates:\n  app_link: {{zh: x}}\nrules:\n  - {{name: r, when: "
                   f"{{outcome: {v}}}, template: app_link}}\n",
            "flow": f"flow: f\nstart: {v}\nnodes:\n  a: {{type: hangup}}\n",
            "flowtest": f"flow: flow.yaml\nat: {v}\ncases:\n  - {{name: a, expect: {{}}}}\n",
            "scenario": f"name: s\nday: {v}\narrivals: {{calls_per_hour: 10}}\n"
                        "agents: {counts: {q: 1}}\n",
            "agents_yaml": f"agents:\n  - {{agent_id: a1, extension: '1001', gender: {v}}}\n",
            }[kind].encode()


def _bad_rows(kind: str, header: str) -> bytes:
    """A CSV file just under the size limit whose every row is bad in each of
    its values: the most work a CSV file can give."""
    row = {"customers": "1380{:07d},客户,gold,minnan,prepaid,a;b,X,200,X,99+",
           "agents_csv": "a{:07d},1,billing:x;vip:y,minnan:z,zh;en,X,99+,g1;g2,maybe",
           "trace": "{:07d},13800000001,billing,vip=gold,x,y"}[kind]
    header = {"customers": "number,name,vip_level,dialect,segment,tags,gender,age,"
                           "preferred_gender,preferred_age_band",
              "agents_csv": "agent_id,extension,skills,dialects,languages,gender,age_band,"
                            "groups,vip_qualified"}.get(kind, header)
    size = len(row.format(0).encode()) + 1
    n = (LIMITS[kind] - 200) // size
    return (header + "\n" + "".join(row.format(i) + "\n" for i in range(n))).encode()


def _fifty_megabyte_flow() -> bytes:
    """A real flow of 50 MB (700,000 nodes): the one of the issue, read in a
    minute and 1.2 GB before the size limit."""
    node = "  n{0}:\n    type: play\n    prompt: acd/welcome\n    next: n{1}\n"
    n = 50 * 1024**2 // len(node.format(500_000, 500_001))
    return ("flow: big\nstart: n0\nnodes:\n" + "".join(node.format(i, i + 1) for i in range(n))
            + f"  n{n}:\n    type: hangup\n").encode()


def _truncated(data: bytes) -> bytes:
    """The first two thirds of ``data``, cut inside a line."""
    cut = len(data) * 2 // 3
    while data[cut - 1:cut] == b"\n" or data[cut:cut + 1] == b"\n":
        cut += 1
    return data[:cut]


def _many_entries(size: int) -> bytes:
    """A YAML mapping of about ``size`` bytes of small entries: the most
    work for the parser a file under the size limit can give."""
    entry = "  k{:06d}: [1, a, true, 2.5]\n"
    n = size // len(entry.format(0))
    return ("many:\n" + "".join(entry.format(i) for i in range(n))).encode()


def handmade() -> list[Bad]:
    out = []
    for kind in KINDS:
        for f in sorted((CORPUS / kind).iterdir()):
            out.append(Bad(kind, f.name, f.read_bytes()))
    return out


def special_cases() -> list[Bad]:
    """Bad files that need more than one file, or a look at what was kept."""
    rows = [f"1380{i:07d},客户{i}" for i in range(20_000)]
    rows[2] = '13800130002,"张三'  # an unclosed quote near the top ...
    rows[15_000] = '13800145000,"李四'  # ... and one near the end
    unclosed = ("number,name\n" + "\n".join(rows) + "\n").encode()
    sub_chain = {f"s{i}.yaml": f"flow: s{i}\nstart: n\nnodes:\n  n:\n    type: subflow\n"
                 f"    flow: s{i + 1}.yaml\n    next: r\n  r:\n    type: return\n"
                 for i in range(40)}
    fan = {f"f{i}.yaml": f"flow: f{i}\nstart: n0\nnodes:\n" + "".join(
        f"  n{j}:\n    type: subflow\n    flow: f{i + 1}.yaml\n    next: n{j + 1}\n"
        for j in range(30)) + "  n30:\n    type: return\n" for i in range(6)}
    fan["f6.yaml"] = "flow: f6\nstart: a\nnodes:\n  a:\n    type: return\n"
    nodes = 10_000  # about 90,000 values: under the bound, all of them read
    big_flow = "flow: big\nstart: n0\nnodes:\n" + "".join(
        f"  n{i}:\n    type: play\n    prompt: acd/welcome\n    next: n{i + 1}\n"
        for i in range(nodes)) + f"  n{nodes}:\n    type: queue\n    queue: billing\n" \
        f"  last:\n    type: play\n    prompt: acd/welcome\n    next: nowhere\n"
    agents = "".join(f"  - {{id: b{i}, extension: \"{1000 + i}\", skills: {{billing: 5}}}}\n"
                     for i in range(3000))
    big_config = GOOD["acd.yaml"].replace("agents:\n", "agents:\n" + agents) \
        + "  - {id: a1, extension: \"1\"}\n"
    many = "agents:\n" + "".join(
        f"  - {{agent_id: a{i}, extension: \"{1000 + i}\", skills: {{billing: 5, tech: 3}}, "
        f"groups: [day]}}\n" for i in range(5000)) + "  - {agent_id: bad, extension: x}\n"
    return [
        # a bomb where the reader turns the value into text (a message quoting it)
        Bad("config", "alias_bomb_quoted_in_a_message", b"flow: flow.yaml\nrouting: ["
            + b", ".join([b"&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
                f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]".encode() for i in range(1, 10)])
            + b"]\nqueues: [{name: billing}]\n", expect=("aliases repeat",)),
        Bad("flow", "ten_thousand_nodes_and_a_dangling_next", big_flow.encode(),
            expect=("goes to 'nowhere'",)),
        Bad("config", "three_thousand_agents_and_a_bad_one", big_config.encode(),
            expect=("agents[3001]",)),
        Bad("agents_yaml", "five_thousand_agents_and_a_bad_one", many.encode(),
            expect=("imported 5000 new", "1 rows rejected")),
        # 20,000 rows, two unclosed quotes: two lines rejected, the rest imported
        Bad("customers", "unclosed_quotes_in_20000_rows", unclosed,
            expect=("customers.csv:4", "customers.csv:15002", "imported 19998 new",
                    "2 rows rejected")),
        Bad("flow", "subflows_40_deep", special="files:" + json.dumps(
            {"flow.yaml": sub_chain["s0.yaml"].replace("type: return", "type: hangup"),
             **{k: v for k, v in sub_chain.items() if k != "s0.yaml"}}),
            expect=("more than 16 deep",), names=r"s\d+\.yaml"),
        Bad("flow", "subflow_fan_out_bomb", special="files:" + json.dumps(
            {"flow.yaml": fan["f0.yaml"].replace("type: return", "type: hangup"),
             **{k: v for k, v in fan.items() if k != "f0.yaml"}}),
            expect=("nodes",), names=r"f\d\.yaml"),
    ]


def corpus() -> list[Bad]:
    out = handmade() + special_cases()
    for kind in KINDS:
        out += generated(kind)
    return out


# ------------------------------------------------------------------ cases


def _place(folder: Path, bad: Bad, target: str) -> None:
    folder.mkdir(parents=True)
    # the database `acd agents list` reads (a read-only command makes none)
    sqlite3.connect(folder / "profiles.db").close()
    for name, text in GOOD.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / target
    path.unlink()
    if bad.special == "dir":
        path.mkdir()
    elif bad.special == "missing":
        pass
    elif bad.special == "fifo":
        os.mkfifo(path)
    elif bad.special == "loop":
        path.symlink_to(path.name)
    elif bad.special == "sparse":
        with path.open("wb") as f:
            f.write(GOOD[target].encode())
            f.truncate(bad.size)
    elif bad.special.startswith("files:"):
        for name, text in json.loads(bad.special[len("files:"):]).items():
            (folder / name).write_text(text, encoding="utf-8")
    else:
        path.write_bytes(bad.data)
        if bad.special == "unreadable":
            path.chmod(0)


@dataclass
class Case:
    bad: Bad
    command: Command
    cwd: Path
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.bad.id}: acd {' '.join(self.command.args)}"


def build(tmp: Path) -> list[Case]:
    cases = []
    for n, bad in enumerate(corpus()):
        target, commands = KINDS[bad.kind]
        folder = tmp / f"{n:03d}-{bad.kind}-{bad.name}"
        _place(folder, bad, target)
        cases += [Case(bad, c, folder) for c in commands if bad.special not in c.skip]
    only = os.environ.get("BAD_FILES_ONLY")  # a regular expression of case ids, to look closer
    return [c for c in cases if re.search(only, c.id)] if only else cases


def run_all(cases: list[Case]) -> float:
    """Run every case; returns the runner's import time (s)."""
    runs = [{"args": list(c.command.args), "cwd": str(c.cwd)} for c in cases]
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(runs),
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    for case, result in zip(cases, doc["results"], strict=True):
        case.result = result
    return float(doc["import_s"])


def problems_of(case: Case, import_s: float) -> list[str]:
    """What is wrong with one run (nothing: [])."""
    r, bad, command = case.result, case.bad, case.command
    target = KINDS[bad.kind][0]
    text = r["out"] + r["err"]
    found = []
    if "Traceback" in text:
        found.append("a traceback")
    codes = bad.codes if bad.codes is not None else command.codes
    if command.unreadable is not None and bad.unreadable:
        codes = frozenset({command.unreadable})
    elif command.unreadable is not None and bad.unreadable is None:
        codes = codes | {command.unreadable}
    if bad.special == "dir":  # click refuses a folder for a FILE argument: a usage error
        codes = codes | {2}
    if r["rc"] not in codes:
        found.append(f"exit code {r['rc']}, not {sorted(codes)}")
    if r["cpu_s"] + import_s > MAX_S:
        found.append(f"took {r['cpu_s'] + import_s:.1f} s of CPU")
    if r["wall_s"] > MAX_WALL_S:
        found.append(f"took {r['wall_s']:.1f} s")
    if r["rss_mb"] > MAX_MB:
        found.append(f"{r['rss_mb']:.0f} MB")
    if r["rc"] != 0:
        name = bad.names or re.escape(target)
        if not re.search(rf"(?<![\w.-]){name}\b", text):
            found.append(f"the message does not name {target}")
        elif not bad.whole and not re.search(rf"(?<![\w.-]){name}:\d+", text) \
                and not (command.via and re.search(rf"{re.escape(command.via)}:\d+:", text)):
            found.append(f"the message names no line of {target}")
        if bad.whole and command.via and not re.search(rf"{re.escape(command.via)}:\d+:", text):
            found.append(f"the message names no line of {command.via}, which names {target}")
    for expected in bad.expect if r["rc"] != 0 else ():  # 0: the file was not its concern
        if expected not in text:
            found.append(f"{expected!r} is not in the output")
    return found


# ------------------------------------------------------------------ tests


@pytest.mark.slow
def test_every_bad_file_through_every_command(tmp_path: Path) -> None:
    cases = build(tmp_path)
    started = time.perf_counter()
    import_s = run_all(cases)
    elapsed = time.perf_counter() - started
    failures = []
    for case in cases:
        found = problems_of(case, import_s)
        if found:
            text = (case.result["out"] + case.result["err"]).strip()
            failures.append(f"{case.id}: {'; '.join(found)}\n    {text[:600]}")
    files = {c.bad.id for c in cases}
    dump = os.environ.get("BAD_FILES_DUMP")  # a file for every run's figures
    if dump:
        Path(dump).write_text(json.dumps([{"id": c.id, "rc": c.result["rc"],
                                           "cpu_s": round(c.result["cpu_s"], 3),
                                           "wall_s": round(c.result["wall_s"], 3),
                                           "rss_mb": round(c.result["rss_mb"]),
                                           "text": (c.result["out"] + c.result["err"])[-400:]}
                                          for c in cases], ensure_ascii=False, indent=1))
    slowest = max(cases, key=lambda c: c.result["cpu_s"])
    longest = max(cases, key=lambda c: c.result["wall_s"])
    biggest = max(cases, key=lambda c: c.result["rss_mb"])
    print(f"\n{len(files)} bad files, {len(cases)} runs in {elapsed:.1f} s; the import "
          f"({import_s:.2f} s of CPU) added to each: most CPU "
          f"{slowest.result['cpu_s'] + import_s:.2f} s ({slowest.id}), longest "
          f"{longest.result['wall_s']:.2f} s + import ({longest.id}); biggest "
          f"{biggest.result['rss_mb']:.0f} MB ({biggest.id})")
    if not os.environ.get("BAD_FILES_ONLY"):
        assert len(files) >= 60 and {c.bad.kind for c in cases} == set(KINDS)
    assert not failures, f"{len(failures)} of {len(cases)} runs:\n" + "\n".join(failures)


@pytest.mark.slow
def test_the_runner_tells_what_a_real_acd_process_tells(tmp_path: Path) -> None:
    """The forked runs against real ``acd`` processes, on a few files."""
    picked = ("config/alias_bomb", "routing/latin1", "flow/deep_flow_sequence",
              "customers/unclosed_quotes.csv", "scenario/fifo", "trace/giant_field")
    cases = [c for c in build(tmp_path) if c.bad.id in picked]
    assert len({c.bad.id for c in cases}) == len(picked)
    run_all(cases)
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb", "NO_COLOR": "1"}
    for case in cases:
        real = subprocess.run([str(ACD), *case.command.args], cwd=case.cwd, capture_output=True,
                              text=True, env=env, timeout=60, check=False)
        assert (real.returncode, real.stderr.strip()[-300:]) == \
            (case.result["rc"], case.result["err"].strip()[-300:]), case.id


@pytest.mark.skipif(os.geteuid() != 0, reason="runs only as root (the corpus has the "
                                               "unreadable files otherwise)")
def test_unreadable_files_need_a_user_other_than_root() -> None:
    pytest.skip("running as root, which reads any file: the unreadable files of the corpus "
                "(chmod 000) are left out")


def test_the_corpus_has_every_kind_of_trouble() -> None:
    bads = corpus()
    names = {b.name for b in bads}
    for needed in ("alias_bomb", "deep_flow_sequence", "deep_json", "deep_block", "latin1",
                   "utf16_with_bom", "nul_byte", "lone_surrogate_escape", "over_the_size_limit",
                   "just_under_the_size_limit", "truncated", "empty", "directory", "missing"):
        assert needed in names
    assert {b.kind for b in bads} == set(KINDS)
    assert sum(1 for b in bads if b.name == "alias_bomb") == len(YAML_KINDS)
    assert MAX_ALIAS_VALUES < 9 ** 9  # the bomb is over the bound


# ------------------------------------------------- AMI that does not answer


class _Ami:
    """A TCP server on 127.0.0.1 that takes connections and, as told, says
    nothing at all (``silent``) or only answers the Login (``login``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.mode == "login":
                threading.Thread(target=self._login, args=(conn,), daemon=True).start()

    def _login(self, conn: socket.socket) -> None:
        conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
        ids = re.findall(rb"ActionID: *(\S+)", buf)
        conn.sendall(b"Response: Success\r\nActionID: " + (ids[0] if ids else b"")
                     + b"\r\nMessage: Authentication accepted\r\n\r\n")

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture(params=["silent", "login"])
def mute_ami(request: pytest.FixtureRequest) -> Iterator[_Ami]:
    ami = _Ami(request.param)
    yield ami
    ami.close()


def test_serve_exits_4_when_asterisk_takes_the_connection_but_does_not_answer(
        tmp_path: Path, mute_ami: _Ami) -> None:
    """An AMI action timing out at start (the login, or the first action
    after it) is Asterisk not reached: exit 4, as the README says, no
    traceback."""
    (tmp_path / "acd.yaml").write_text(textwrap.dedent(f"""\
        ami: {{host: 127.0.0.1, port: {mute_ami.port}, username: acd, secret: x,
              action_timeout_s: 0.5}}
        agi: {{host: 127.0.0.1, port: 0}}
        database: sqlite+aiosqlite:///{tmp_path}/acd.db
        flow: {ROOT / "ivr_flows" / "basic.yaml"}
        queues: [{{name: billing}}, {{name: tech}}, {{name: general}}]
        """), encoding="utf-8")
    r = subprocess.run([str(ACD), "serve", "--config", str(tmp_path / "acd.yaml")],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 4, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert ("did not answer the login" if mute_ami.mode == "silent"
            else "stopped answering AMI actions") in r.stderr


# ------------------------------------------------------ the readers, directly


def test_an_alias_bomb_is_refused_at_once_at_its_alias() -> None:
    from acd.loaders.yamlpos import Reader, YamlError

    started = time.process_time()
    with pytest.raises(YamlError) as info:
        Reader("bomb.yaml").compose(_bomb(30).decode())  # 9**30 values if expanded
    assert time.process_time() - started < 0.5
    assert str(info.value).startswith("bomb.yaml:6:10: aliases repeat more than 100,000")


def test_aliases_and_merge_keys_within_the_bounds_are_read() -> None:
    from acd.loaders.yamlpos import Reader

    r = Reader("ok.yaml")
    data, _ = r.plain(r.compose("base: &b {host: h, port: 1}\nami:\n  <<: *b\n  port: 2\n"
                                "list: [*b, *b]\n"))
    assert data == {"base": {"host": "h", "port": 1}, "ami": {"host": "h", "port": 2},
                    "list": [{"host": "h", "port": 1}] * 2}


@pytest.mark.parametrize(("text", "where", "problem"), [
    ("a: " + "[" * 64 + "]" * 64 + "\n", "1:67", "nested more than 64 levels deep"),
    ("a: " + "[" * 63 + "]" * 63 + "\n", "", ""),  # 64 levels with the top mapping: fine
    ("a: &x [1, *x]\n", "1:11", "alias *x stands inside the value it names"),
    ('a: 1\nb: "x\\0y"\n', "2:4", "a NUL or a lone surrogate"),
    ('a: 1\nb: "\\udc80"\n', "2:4", "a NUL or a lone surrogate"),
    ("a: 1\nb: \x07\n", "2:4", "the character U+0007 is not allowed"),
    ("a: 1\n---\nb: 2\n", "2:1", "a second document"),
    ("a: [" + "1," * 100_000 + "1]\n", "1:199999", "more than 100,000 values"),
    ("a: [1,\n", "2:1", "not valid YAML: expected the node content"),  # PyYAML's words
])
def test_yaml_bounds_name_the_place(text: str, where: str, problem: str) -> None:
    from acd.loaders.yamlpos import Reader, YamlError

    if not problem:
        Reader("f.yaml").compose(text)
        return
    with pytest.raises(YamlError) as info:
        Reader("f.yaml").compose(text)
    assert str(info.value).startswith(f"f.yaml:{where}: ") and problem in str(info.value)


def test_a_key_twice_in_acd_yaml_is_refused_at_the_second() -> None:
    from acd.loaders.yamlpos import Reader, YamlError

    r = Reader("acd.yaml")
    with pytest.raises(YamlError, match=r"acd.yaml:3:3: key 'port' appears twice"):
        r.plain(r.compose("ami:\n  port: 1\n  port: 2\n"))


@pytest.mark.parametrize(("data", "where", "problem"), [
    (b"a: 1\nb: caf\xe9\n", "2:7", "not UTF-8 text (byte 0xe9 at offset 11)"),
    ("a: 1\nb: 中文\n".encode("gbk"), "2:4", "not UTF-8 text (byte 0xd6"),
    ("a: 1\n".encode("utf-16"), "1:1", "UTF-16 text"),
    (b"a: 1\nbb: \x00\n", "2:5", "a NUL byte"),
])
def test_text_that_is_not_utf8_is_placed(data: bytes, where: str, problem: str) -> None:
    from acd.loaders.textfile import TextFileError, decode_text

    with pytest.raises(TextFileError) as info:
        decode_text(data, "f.yaml")
    assert str(info.value).startswith(f"f.yaml:{where}: ") and problem in str(info.value)
    assert decode_text(b"\xef\xbb\xbfa: 1\n", "f.yaml") == "a: 1\n"  # a UTF-8 BOM is fine


def test_files_that_are_not_files_are_refused_without_blocking(tmp_path: Path) -> None:
    from acd.loaders.textfile import TextFileError, read_text_file

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "big").write_bytes(b"#" * 2000)
    for name, problem in (("pipe", "not a regular file"), ("loop", "cannot read"),
                          (".", "a folder"), ("nope", "not found"), ("big", "2,000 bytes")):
        with pytest.raises(TextFileError, match=problem) as info:
            read_text_file(tmp_path / name, "file", limit=1999)
        assert info.value.line == 0


def test_an_open_quote_costs_its_line_only() -> None:
    from acd.loaders.textfile import csv_records

    text = 'a,b\n1,"x\n2,y\n3,"multi\nline"\n4,"z""q"\n'
    unclosed = ('a " quote opened on this line is not closed on it (a value cannot run on '
                "to the next line): the line is left out")
    assert list(csv_records(text)) == [
        (1, 1, ["a", "b"]), (2, 2, unclosed), (3, 3, ["2", "y"]), (4, 4, unclosed),
        (5, 5, ['line"']), (6, 6, ["4", 'z"q'])]
    assert list(csv_records(text, max_span=2))[3:5] == [(4, 5, ["3", "multi\nline"]),
                                                         (6, 6, ["4", 'z"q'])]


def test_a_deep_condition_is_refused_not_recursed() -> None:
    from acd.ivr.expr import ExprError, parse_expr

    for text in ("-" * 900 + "1 > 0", "1 + " * 60 + "1 > 0", "(" * 300 + "1" + ")" * 300,
                 "x == 1 or " * 200 + "x == 2"):
        with pytest.raises(ExprError):
            parse_expr(text)
    assert parse_expr("caller.vip_level >= 2 and (x == 'a' or y in ('b', 'c'))")
