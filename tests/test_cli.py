"""The `acd` command: help, flow validation, serve's errors, the demo."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import free_port

from cli import main

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, ami_port: int, secret: str, flow: str) -> Path:
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(f"""
ami: {{host: 127.0.0.1, port: {ami_port}, username: acd, secret: {secret}}}
agi: {{port: 0}}
database: sqlite+aiosqlite:///{tmp_path}/acd.db
flow: {flow}
queues: [{{name: billing}}, {{name: tech}}, {{name: general}}]
agents: [{{id: a1, extension: "1001", queues: [billing]}}]
""")
    return cfg


def test_help_lists_the_commands() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for word in ("serve", "demo", "flow", "Asterisk"):
        assert word in out


def test_flow_validate(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["flow", "validate", str(ROOT / "ivr_flows" / "basic.yaml")])
    assert r.exit_code == 0 and "flow 'basic'" in r.output
    bad = ROOT / "tests" / "flows" / "bad" / "dangling_next.yaml"
    r = CliRunner().invoke(main, ["flow", "validate", str(bad)])
    assert r.exit_code == 1
    assert "dangling_next.yaml:7:11: node 'a' goes to 'nowhere'" in r.output


def test_serve_refuses_missing_or_broken_configuration(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "cannot read the configuration" in r.output
    bad_flow = ROOT / "tests" / "flows" / "bad" / "unknown_type.yaml"
    cfg = write_config(tmp_path, 1, "x", str(bad_flow))
    r = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2 and "unknown_type.yaml:5:" in r.output and "dance" in r.output
    cfg.write_text("queues: []\n")
    r = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    assert r.exit_code == 2 and "queues: must be a non-empty list" in r.output


def test_serve_without_asterisk_exits_4(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, free_port(), "x", str(ROOT / "ivr_flows" / "basic.yaml"))
    r = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    assert r.exit_code == 4 and "cannot reach Asterisk AMI" in r.output


def test_serve_with_wrong_password_exits_3(tmp_path: Path) -> None:
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "sim", "--ami-port", str(port),
                            "--secret", "right"], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cfg = write_config(tmp_path, port, "wrong", str(ROOT / "ivr_flows" / "basic.yaml"))
        r = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    finally:
        sim.terminate()
        sim.wait(10)
    assert r.exit_code == 3
    assert "refused AMI login for user 'acd'" in r.output


@pytest.mark.slow
def test_demo_prints_the_summary(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["demo", "--calls", "12", "--rate", "20", "--agents", "4",
                                  "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.exit_code == 0, r.output
    assert "answered" in r.output and "ended in IVR" in r.output and "mean wait" in r.output
    assert "12 calls, 4 agents" in r.output


def test_flow_run_shows_prompts_keys_and_path() -> None:
    r = CliRunner().invoke(main, ["flow", "run", str(ROOT / "ivr_flows" / "basic.yaml"),
                                  "--keys", ",7,3"])
    assert r.exit_code == 0, r.output
    assert "⌨ main_menu 7" in r.output and "acd/invalid-option" in r.output
    assert "path: welcome > main_menu > balance > goodbye" in r.output
    assert "✖ goodbye hang up" in r.output


def test_the_sample_hotline_passes_validate_and_its_tests() -> None:
    r = CliRunner().invoke(main, ["flow", "validate", str(ROOT / "ivr_flows" / "hotline.yaml"),
                                  "--config", str(ROOT / "acd.example.yaml"), "--strict"])
    assert r.exit_code == 0, r.output
    assert "flow 'hotline' version 2026.11" in r.output
    r = CliRunner().invoke(main, ["flow", "test", str(ROOT / "ivr_flows" / "hotline.yaml")])
    assert r.exit_code == 0, r.output
    assert "19 case(s) passed" in r.output


def test_flow_test_reports_a_failing_case_with_its_line(tmp_path: Path) -> None:
    text = (ROOT / "ivr_flows" / "hotline.tests.yaml").read_text()
    bad = tmp_path / "hotline.tests.yaml"
    flow = ROOT / "ivr_flows" / "hotline.yaml"
    bad.write_text(text.replace("flow: hotline.yaml", f"flow: {flow}")
                   .replace("priority: 60", "priority: 40"))
    r = CliRunner().invoke(main, ["flow", "test", str(bad)])
    assert r.exit_code == 1
    assert "priority 60, expected 40" in r.output and "1 failed of 19" in r.output


HOTLINE = str(ROOT / "ivr_flows" / "hotline.yaml")


def test_flow_graph_writes_svg_png_dot_and_mermaid(tmp_path: Path) -> None:
    for ext in ("svg", "png", "dot", "mmd"):
        out = tmp_path / f"h.{ext}"
        r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 1000
        assert f"wrote {out} (37 nodes)" in r.output
    assert (tmp_path / "h.mmd").read_text(encoding="utf-8").startswith(
        '---\ntitle: "hotline (version 2026.11)"\n---\nflowchart TD\n')
    assert (tmp_path / "h.dot").read_text(encoding="utf-8").startswith('digraph "hotline" {')
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "-o", str(tmp_path / "h.gif")])
    assert r.exit_code == 2 and ".svg" in r.output and ".mmd" in r.output
    assert not (tmp_path / "h.gif").exists()
    # --format wins over the extension
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "-o", str(tmp_path / "h.txt"),
                                  "--format", "mermaid"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "h.txt").read_text(encoding="utf-8") == \
        (tmp_path / "h.mmd").read_text(encoding="utf-8")


def test_flow_graph_prints_mermaid_or_dot(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "--format", "mermaid"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("---\ntitle: ") and "flowchart TD" in r.output
    assert "wrote" not in r.output  # only the text: it can be piped
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "-o", "-", "--format", "dot"])
    assert r.exit_code == 0 and r.output.startswith('digraph "hotline" {')
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE])
    assert r.exit_code == 2 and "give -o FILE" in r.output
    r = CliRunner().invoke(main, ["flow", "graph", HOTLINE, "--format", "png"])
    assert r.exit_code == 2 and "goes to a file" in r.output


def _without_plot(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``acd ARGS`` in an interpreter where matplotlib cannot be imported (as when
    the plot extra is not installed)."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv[0] = 'acd'\n"
            "from cli import main; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.slow  # seven interpreters
def test_flow_tools_work_without_the_plot_extra(tmp_path: Path) -> None:
    r = _without_plot(["flow", "validate", HOTLINE])
    assert r.returncode == 0 and "flow 'hotline'" in r.stdout, r.stderr
    for ext in ("dot", "mmd"):
        r = _without_plot(["flow", "graph", HOTLINE, "-o", str(tmp_path / f"h.{ext}")])
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"h.{ext}").stat().st_size > 1000
    r = _without_plot(["flow", "graph", HOTLINE, "--format", "mermaid"])
    assert r.returncode == 0 and "flowchart TD" in r.stdout
    for ext in ("png", "svg"):
        r = _without_plot(["flow", "graph", HOTLINE, "-o", str(tmp_path / f"h.{ext}")])
        assert r.returncode == 2
        assert f"a .{ext} picture needs matplotlib" in r.stderr
        assert "pip install 'acd[plot]'" in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / f"h.{ext}").exists()
    # the blocker is real: without it the same command draws
    r = subprocess.run([sys.executable, "-c", "from cli import main; main()", "flow", "graph",
                        HOTLINE, "-o", str(tmp_path / "h.png")], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and (tmp_path / "h.png").exists(), r.stderr


def test_sim_plot_without_the_plot_extra_names_it_before_the_run(tmp_path: Path) -> None:
    r = _without_plot(["sim", "run", str(ROOT / "sim" / "scenarios" / "erlang_a.yaml"),
                       "--plot", str(tmp_path / "day.png")])
    assert r.returncode == 2
    assert "--plot needs matplotlib" in r.stderr and "pip install 'acd[plot]'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "day.png").exists()


def test_serve_works_without_the_plot_extra(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, free_port(), "x", str(ROOT / "ivr_flows" / "basic.yaml"))
    r = _without_plot(["serve", "--config", str(cfg)])
    # as far as an engine gets without Asterisk: the configuration, the flow, the
    # database, then the AMI connection
    assert r.returncode == 4 and "cannot reach Asterisk AMI" in r.stdout + r.stderr


@pytest.mark.slow
def test_demo_works_without_the_plot_extra(tmp_path: Path) -> None:
    r = _without_plot(["demo", "--calls", "4", "--rate", "20", "--agents", "2",
                       "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 calls, 2 agents" in r.stdout


def test_flow_validate_and_test_exit_2_for_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    """1 for a readable flow with a problem (above), 2 for one that cannot be
    read or parsed at all: not UTF-8, not YAML, an alias bomb, missing."""
    good = (ROOT / "ivr_flows" / "basic.yaml").read_bytes()
    bomb = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]\n"
                   for i in range(10))
    files = {"latin1.yaml": good.replace(b"\n", b" # caf\xe9\n", 1),
             "syntax.yaml": b"flow: x\nstart: [\n", "bomb.yaml": bomb.encode()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        r = CliRunner().invoke(main, ["flow", "validate", str(tmp_path / name)])
        assert r.exit_code == 2, (name, r.output)
        assert re.search(rf"{name}:\d+:\d+: ", r.output), r.output
    r = CliRunner().invoke(main, ["flow", "validate", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "nope.yaml" in r.output
    bad = ROOT / "tests" / "flows" / "bad" / "dangling_next.yaml"  # and a readable one: 2 wins
    r = CliRunner().invoke(main, ["flow", "validate", str(bad), str(tmp_path / "bomb.yaml")])
    assert r.exit_code == 2 and "dangling_next.yaml:7:11:" in r.output
    case = "cases: [{name: a, expect: {end: x}}]\n"
    (tmp_path / "t.tests.yaml").write_text(f"flow: {tmp_path / 'bomb.yaml'}\n{case}",
                                           encoding="utf-8")
    r = CliRunner().invoke(main, ["flow", "test", str(tmp_path / "t.tests.yaml")])
    assert r.exit_code == 2 and "aliases repeat more than" in r.output, r.output
    (tmp_path / "t.tests.yaml").write_text(f"flow: {bad}\n{case}", encoding="utf-8")
    r = CliRunner().invoke(main, ["flow", "test", str(tmp_path / "t.tests.yaml")])
    assert r.exit_code == 1, r.output
