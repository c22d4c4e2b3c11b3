"""A forecast's interval length is read from its rows; a row off that grid is
refused, naming it (a 30-minute forecast with one row at 19:45 was read as a
15-minute one: every count taken as twice the rate, staffing nearly doubled)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from acd.cli import main
from acd.loaders.planning_csv import write_forecast
from acd.planning.forecast import ForecastRow
from acd.planning.requirements import interval_seconds


def rows_every(minutes: int, n: int) -> list[ForecastRow]:
    t0 = datetime(2026, 12, 7, 8, 0)
    return [ForecastRow(t0 + timedelta(minutes=minutes * i), "billing", 40.0, line=i + 2)
            for i in range(n)]


@pytest.mark.parametrize("minutes", [15, 30, 60])
def test_the_interval_is_the_rows_own(minutes: int) -> None:
    rows = rows_every(minutes, 6)
    del rows[3]  # a gap (an interval with no row) does not change it
    assert interval_seconds(rows) == minutes * 60


def test_a_row_off_the_grid_is_refused_by_line(tmp_path: Path) -> None:
    rows = rows_every(30, 8)
    rows[5] = ForecastRow(rows[5].start + timedelta(minutes=15), "billing", 40.0, line=7)
    with pytest.raises(ValueError, match=r"f.csv:7: interval_start: 2026-12-07 10:45 is off "
                                         r"the 30-minute grid"):
        interval_seconds(rows, file="f.csv")
    path = tmp_path / "forecast.csv"
    path.write_text(write_forecast(rows), encoding="utf-8")
    result = CliRunner().invoke(main, ["staffing", "--forecast", str(path), "--aht", "190"])
    assert result.exit_code == 2
    assert "forecast.csv:7: interval_start: 2026-12-07 10:45 is off the 30-minute grid" \
        in result.output


def test_a_single_interval_takes_the_default() -> None:
    assert interval_seconds(rows_every(30, 1)) == 1800


def test_a_requirements_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    # -o into a folder that does not exist: exit 2 naming it, not a traceback
    path = tmp_path / "forecast.csv"
    path.write_text(write_forecast(rows_every(30, 4)), encoding="utf-8")
    out = tmp_path / "missing" / "requirements.csv"
    result = CliRunner().invoke(main, ["staffing", "--forecast", str(path), "--aht", "190",
                                       "-o", str(out)])
    assert result.exit_code == 2
    assert f"{out}: cannot write" in result.output and not out.exists()
