"""`acd sim run`: virtual and live runs from the command line.

The command is tested on a local click group (as tests/test_cli_staffing.py
does), independent of how cli.py registers it.  The trace scenario
(sim/scenarios/trace_small.yaml) is replayed exactly, so its figures are
known: 8 calls, 6 answered, 2 abandoned (tests/test_sim_virtual.py works
them out by hand).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner, Result

from acd.cli.loadsim import sim_group

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "sim" / "scenarios" / "trace_small.yaml"

cli = click.Group()
cli.add_command(sim_group)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["sim", "run", *args])


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)  # nothing but JSON on stdout
    return data


def totals(data: dict[str, Any], scope: str, key: str = "") -> dict[str, Any]:
    found = [r for r in data["totals"] if r["scope"] == scope and r["key"] == key]
    assert len(found) == 1, data["totals"]
    return found[0]


def test_virtual_json_has_per_queue_and_class_figures() -> None:
    data = run_json(str(TRACE))
    assert data["mode"] == "virtual" and data["scenario"] == "trace-small"
    assert data["arrivals"] == 8 and data["queues"] == ["support"]
    q = totals(data, "queue", "support")
    assert (q["offered"], q["answered"], q["abandoned"], q["other"]) == (8, 6, 2, 0)
    assert q["service_level"] == 4 / 8 and q["abandon_rate"] == 2 / 8
    assert q["t_s"] == 20
    assert 0 < q["occupancy"] <= 1 and q["mean_wait_s"] > 0
    assert totals(data, "total")["offered"] == 8
    assert {r["key"] for r in data["totals"] if r["scope"] == "class"} == {"standard", "vip"}
    assert data["intervals"] and all(r["label"] == "08:00" for r in data["intervals"])
    assert "calls" not in data
    with_calls = run_json(str(TRACE), "--with-calls")
    assert len(with_calls["calls"]) == 8


def test_virtual_tables_and_seed_and_calls(tmp_path: Path) -> None:
    result = run(str(ROOT / "sim" / "scenarios" / "erlang_a.yaml"), "--calls", "3000",
                 "--seed", "2", "--intervals", "queue:q")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "erlang-a: virtual run, seed 2" in out
    assert "queue q" in out and "per interval (queue q)" in out
    assert "3,000 calls arrived" in out and "warm-up left out" in out
    again = run_json(str(ROOT / "sim" / "scenarios" / "erlang_a.yaml"), "--calls", "3000",
                     "--seed", "2")
    assert again["arrivals"] == 3000 and again["seed"] == 2


def test_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "day.png"
    result = run(str(TRACE), "--plot", str(png), "--intervals", "none")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "per interval" not in result.output and f"plot: {png}" in result.output


def test_bad_scenario_is_a_positioned_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n"
                   "arrivals:\n"
                   "  calls_per_hour: 100\n"
                   "calls: 50\n"
                   "handle: {dist: weibull, mean: 60}\n"
                   "queues: {q: {share: 1}}\n"
                   "agents: {counts: {q: 2}}\n", encoding="utf-8")
    result = run(str(bad))
    assert result.exit_code == 2
    assert f"{bad}:5:" in result.output and "weibull" in result.output
    assert "Traceback" not in result.output

    missing = run(str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml" in missing.output
    assert "not found" in missing.output


def test_bad_options() -> None:
    result = run(str(TRACE), "--intervals", "queue:nope")
    assert result.exit_code == 2 and "nope" in result.output
    result = run(str(TRACE), "--intervals", "sideways")
    assert result.exit_code == 2 and "--intervals" in result.output
    result = run(str(TRACE), "--speed", "60")  # a virtual run has no speed
    assert result.exit_code == 2 and "--speed: only with --live" in result.output


def test_live_json(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text("name: tiny\n"
                        "arrivals: {calls_per_hour: 1800}\n"
                        "calls: 12\n"
                        "queues: {q: {share: 1.0}}\n"
                        "handle: {dist: exponential, mean: 20}\n"
                        "patience: {dist: exponential, mean: 60}\n"
                        "agents: {counts: {q: 2}}\n", encoding="utf-8")
    data = run_json(str(scenario), "--live", "--speed", "200", "--seed", "3")
    assert data["mode"] == "live"
    live = data["live"]
    assert live["placed"] == live["records"] == 12 and live["problems"] == []
    assert live["speed"] == 200 and live["decisions_us"]["count"] > 0
    q = totals(data, "queue", "q")
    assert q["offered"] + data["ivr_only"] == 12
    assert q["answered"] + q["abandoned"] + q["other"] == q["offered"]
