"""`acd staffing`: Erlang C / Erlang A staffing from the command line.

The command is tested on a local click group, independent of how cli.py
registers it.  Figures are the ones of the shared reference vectors
(erlang-vectors.csv), e.g. 200 calls/h × 180 s with 12 agents: Erlang C
SL(20 s) 0.640158, Erlang A (patience 180 s) SL 0.802304.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from acd.cli.planning import staffing

cli = click.Group()
cli.add_command(staffing)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["staffing", *args])


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def row(data: dict[str, Any], agents: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in data["results"] if r["agents"] == agents]
    assert len(found) == 1, data
    return found[0]


def table_rows(out: str) -> dict[str, str]:
    """Table lines (they end with the ✓/✗ target column) by agent count."""
    rows = [ln for ln in out.splitlines() if ln.split() and ln.split()[-1] in ("✓", "✗")]
    return {ln.split()[1] if ln.lstrip().startswith("→") else ln.split()[0]: ln for ln in rows}


def test_erlang_c_search_table() -> None:
    result = run("--calls-per-hour", "200", "--aht", "180")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Erlang C" in out and "10.00 Erlangs" in out
    assert "14 agents needed" in out
    assert "abandon " not in out  # nobody abandons in Erlang C: no column
    lines = table_rows(out)
    assert sorted(int(k) for k in lines) == list(range(12, 18))  # needed − 2 … needed + 3
    assert "64.0 %" in lines["12"] and "40.4 s" in lines["12"] and "✗" in lines["12"]
    assert "88.8 %" in lines["14"] and "7.8 s" in lines["14"] and "✓" in lines["14"]
    assert lines["14"].lstrip().startswith("→")


def test_erlang_c_json_figures() -> None:
    data = run_json("--calls-per-hour", "200", "--aht", "180")
    assert data["model"] == "C" and data["agents_needed"] == 14 and data["agents"] is None
    assert data["offered_load"] == pytest.approx(10.0)
    r12 = row(data, 12)
    assert r12["sl"] == pytest.approx(0.640158, abs=1e-6)
    assert r12["pwait"] == pytest.approx(0.449388, abs=1e-6)
    assert r12["wait_mean_s"] == pytest.approx(40.444940, abs=1e-6)
    assert r12["pab"] == 0 and r12["occupancy"] == pytest.approx(10 / 12)
    assert not r12["meets_target"] and not row(data, 13)["meets_target"]
    assert row(data, 14)["meets_target"] and row(data, 14)["sl"] == pytest.approx(0.888350,
                                                                                   abs=1e-6)


def test_given_agents_no_search_and_unstable_rows() -> None:
    data = run_json("--calls-per-hour", "200", "--aht", "180", "--agents", "12")
    assert data["agents_needed"] is None and data["agents"] == 12
    assert [r["agents"] for r in data["results"]] == list(range(10, 16))
    unstable = row(data, 10)  # 10 Erlangs on 10 agents
    assert unstable["stable"] is False and unstable["wait_mean_s"] is None
    assert unstable["pwait"] == 1 and unstable["sl"] == 0

    table = run("--calls-per-hour", "200", "--aht", "180", "--agents", "10")
    assert table.exit_code == 0, table.output
    assert "10 agents given: misses the target" in table.output
    assert "∞" in table.output and "grows without bound" in table.output


def test_erlang_a_figures_and_abandon_target() -> None:
    base = ("--calls-per-hour", "200", "--aht", "180", "--patience", "180")
    data = run_json(*base, "--agents", "12")
    assert data["model"] == "A" and data["patience_s"] == 180
    r12 = row(data, 12)
    for field, expected in (("pwait", 0.303224), ("pab", 0.053092), ("wait_mean_s", 9.556493),
                            ("sl", 0.802304)):
        assert r12[field] == pytest.approx(expected, abs=1e-6), field
    assert r12["meets_target"]  # SL 0.8023 ≥ 0.8, no abandon cap

    assert run_json(*base)["agents_needed"] == 12
    capped = run_json(*base, "--max-abandon", "0.03")
    assert capped["agents_needed"] == 14
    assert row(capped, 13)["pab"] > 0.03 >= row(capped, 14)["pab"]

    table = run(*base, "--max-abandon", "0.03")
    assert table.exit_code == 0, table.output
    assert "Erlang A" in table.output and "abandon" in table.output
    assert "14 agents needed" in table.output and "5.3 %" in table.output  # 12 agents abandon


def test_answer_within_changes_the_answer() -> None:
    loose = run_json("--calls-per-hour", "200", "--aht", "180", "--answer-within", "60")
    strict = run_json("--calls-per-hour", "200", "--aht", "180", "--target-sl", "0.95",
                      "--answer-within", "10")
    assert loose["agents_needed"] < 14 < strict["agents_needed"]


def test_rows_start_at_one_agent() -> None:
    data = run_json("--calls-per-hour", "10", "--aht", "60", "--agents", "1")
    assert [r["agents"] for r in data["results"]] == [1, 2, 3, 4]


@pytest.mark.parametrize(("args", "message"), [
    (("--calls-per-hour", "-5", "--aht", "180"), "--calls-per-hour must be"),
    (("--calls-per-hour", "200", "--aht", "0"), "--aht must be > 0"),
    (("--calls-per-hour", "200", "--aht", "180", "--patience", "0"), "--patience must be > 0"),
    (("--calls-per-hour", "200", "--aht", "180", "--target-sl", "1"),
     "--target-sl must be below 1"),
    (("--calls-per-hour", "200", "--aht", "180", "--answer-within", "-1"),
     "--answer-within must be >= 0"),
    (("--calls-per-hour", "200", "--aht", "180", "--max-abandon", "0.05"),
     "--max-abandon needs --patience"),
    (("--calls-per-hour", "200", "--aht", "180", "--agents", "0"), "--agents must be >= 1"),
    (("--calls-per-hour", "200", "--aht", "180", "--agents", "12", "--target-sl", "2"),
     "--target-sl must be below 1"),
])
def test_bad_options(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_required_option() -> None:
    result = run("--aht", "180")
    assert result.exit_code == 2 and "--calls-per-hour" in result.output


@pytest.mark.parametrize(("option", "value"), [
    ("--answer-within", "20"), ("--calls-per-hour", "200"), ("--aht", "180"),
    ("--patience", "60")])
def test_options_the_scenario_gives_are_refused_by_their_own_names(option: str,
                                                                   value: str) -> None:
    result = run("--scenario", "sim/scenarios/monday.yaml", option, value)
    assert result.exit_code == 2
    assert f"{option}: not with --scenario" in result.output
    assert "_s" not in result.output.split("Error:")[1].split(":")[0]  # no Python names


# ------------------------------------------------------------------ --forecast


def _forecast(tmp_path: Path) -> tuple[Path, list[Any]]:
    from acd.loaders.planning_csv import write_forecast
    from acd.planning.forecast import ForecastRow

    t0 = datetime(2026, 12, 7, 8, 0)
    calls = [41.3, 60.0, 0.0, 41.3, 97.5, 12.0]  # 41.3 twice: one answer for both
    rows = [ForecastRow(t0 + timedelta(minutes=30 * i), q, c)
            for i, c in enumerate(calls) for q in ("billing", "tech")]
    path = tmp_path / "forecast.csv"
    path.write_text(write_forecast(rows), encoding="utf-8")
    return path, rows


def test_forecast_requirements_by_erlang_round_trip(tmp_path: Path) -> None:
    from acd.loaders.planning_csv import parse_requirements, write_requirements
    from acd.planning.erlang import agents_needed, erlang_a

    path, rows = _forecast(tmp_path)
    out = tmp_path / "requirements.csv"
    result = run("--forecast", str(path), "--aht", "190", "--wrap-up", "20", "--patience",
                 "120", "--target-sl", "0.8", "--answer-within", "20", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "12 requirements (6 intervals of 30 min × 2 queues) by Erlang A" in result.output
    text = out.read_text(encoding="utf-8")
    reqs = parse_requirements(text, str(out))
    assert write_requirements(reqs) == text  # round trip
    assert [(r.start, r.queue, r.calls) for r in reqs] == [(f.start, f.queue, f.calls)
                                                           for f in rows]
    for r in reqs:
        assert r.aht_s == 210 and r.sl_low is None and r.sl_high is None
        if r.calls == 0:
            assert r.required == 0
            continue
        assert r.calls is not None
        rate = r.calls * 2  # per 30 minutes -> per hour
        need = agents_needed(rate, 210, 0.8, 20, patience_s=120)
        exact = erlang_a(rate, 210, 120, need, 20)
        assert r.required == need
        assert r.sl == pytest.approx(exact.sl, abs=1e-6)
        assert r.abandon == pytest.approx(exact.pab, abs=1e-6)
        assert r.sl is not None and r.sl >= 0.8
        assert erlang_a(rate, 210, 120, need - 1, 20).sl < 0.8

    # to standard output, Erlang C without --patience
    plain = run("--forecast", str(path), "--aht", "210")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.startswith("interval_start,queue,required,calls,aht_s,sl,sl_low,")
    assert "by Erlang C" in plain.stderr


def test_forecast_requirements_by_simulation(tmp_path: Path) -> None:
    from acd.loaders.planning_csv import parse_requirements, write_forecast
    from acd.planning.erlang import agents_needed
    from acd.planning.forecast import ForecastRow

    t0 = datetime(2026, 12, 7, 8, 0)
    rows = [ForecastRow(t0, "billing", 50.0), ForecastRow(t0 + timedelta(minutes=30),
                                                          "billing", 50.0),
            ForecastRow(t0 + timedelta(minutes=60), "billing", 20.0)]
    path = tmp_path / "f.csv"
    path.write_text(write_forecast(rows), encoding="utf-8")
    out = tmp_path / "r.csv"
    result = run("--forecast", str(path), "--aht", "180", "--patience", "240", "--method",
                 "sim", "--calls", "2000", "--replications", "4", "--max-replications", "8",
                 "--workers", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "2 searches" in result.output  # two rows share the rate 50 per 30 min
    reqs = parse_requirements(out.read_text(encoding="utf-8"), str(out))
    assert reqs[0].required == reqs[1].required
    for r in reqs:
        assert r.sl_low is not None and r.sl_high is not None and r.sl is not None
        assert r.sl_low <= r.sl <= r.sl_high
        assert r.calls is not None
        need = agents_needed(r.calls * 2, 180, 0.8, 20, patience_s=240)
        assert need <= r.required <= need + 1  # the target held at 95 %: maybe one more


@pytest.mark.parametrize(("args", "message"), [
    (("--aht", "180", "--agents", "3"), "--agents: not with --forecast"),
    (("--aht", "180", "--replications", "4"), "--replications: only with --method sim"),
    (("--method", "sim", "--scenario", "sim/scenarios/erlang_a.yaml", "--aht", "180"),
     "--aht: not with --scenario"),
    ((), "Missing option '--aht'"),
    (("--aht", "180", "--max-abandon", "0.05"), "--max-abandon needs --patience"),
])
def test_forecast_option_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    path, _ = _forecast(tmp_path)
    result = run("--forecast", str(path), *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_forecast_and_requirements_file_errors(tmp_path: Path) -> None:
    from acd.loaders.planning_csv import PlanningFileError, parse_requirements

    bad = tmp_path / "bad.csv"
    bad.write_text("interval_start,queue,calls\n2026-12-07 08:00,billing,-3\n", encoding="utf-8")
    result = run("--forecast", str(bad), "--aht", "180")
    assert result.exit_code == 2 and f"{bad}:2: calls:" in result.output
    with pytest.raises(PlanningFileError, match=r"r\.csv:3: required: '2\.5' is not a whole"):
        parse_requirements("interval_start,queue,required\n2026-12-07 08:00,a,2\n"
                           "2026-12-07 08:30,a,2.5\n", "r.csv")
    with pytest.raises(PlanningFileError, match=r"r\.csv:2: sl: '1\.5' is not a share"):
        parse_requirements("interval_start,queue,required,sl\n2026-12-07 08:00,a,2,1.5\n",
                           "r.csv")
    with pytest.raises(PlanningFileError, match="missing column"):
        parse_requirements("interval_start,queue\n", "r.csv")
    only = parse_requirements("interval_start,queue,required\n2026-12-07 08:00,a,2\n", "r.csv")
    assert only[0].required == 2 and only[0].sl is None and only[0].line == 2
