"""``acd forecast`` end to end: a center's call-record CSV (or our database)
in, the forecast CSV out and read back, the backtest table, the plot, and
bad input named."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from acd.cli import main
from acd.loaders.planning_csv import parse_forecast
from acd.loaders.records_csv import write_records
from acd.planning.records import CenterRecord
from acd.planning.synthetic import arrival_times, synthetic_demand

pytest.importorskip("statsmodels")

FIRST = date(2025, 9, 1)  # a Monday


def _records_csv(tmp_path: Path, days: int, seed: int = 3) -> Path:
    demand = synthetic_demand(FIRST, days, 60, queues={"billing": 200, "tech": 80}, seed=seed,
                              holidays={date(2025, 10, 1): "national day"})
    recs = [CenterRecord(arrival=t, queue=q, outcome="answered", wait_s=4.0, handle_s=120.0)
            for t, q in arrival_times(demand, seed=seed)]
    path = tmp_path / "calls.csv"
    path.write_text(write_records(recs), encoding="utf-8")
    return path


@pytest.mark.slow  # statsmodels and matplotlib imported, 6 fits and a plot: 5 s or more
def test_records_csv_in_forecast_csv_out(tmp_path: Path) -> None:
    records = _records_csv(tmp_path, 6 * 7)  # through Sunday 2025-10-12
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("# ours\n2025-10-01 national day\n2025-10-15 a holiday ahead\n",
                        encoding="utf-8")
    out, png = tmp_path / "forecast.csv", tmp_path / "forecast.png"
    result = CliRunner().invoke(main, [
        "forecast", "--records", str(records), "--holidays", str(holidays), "--days", "7",
        "--interval", "30", "--backtest", "2", "--tz", "UTC", "-o", str(out),
        "--plot", str(png)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "history: 2025-09-01 .. 2025-10-12 (42 days" in text
    assert "Backtest: WAPE over 2 weekly origin(s) 2025-09-29 .. 2025-10-06" in text
    assert "billing: exponential smoothing, tech: exponential smoothing" in text
    rows = parse_forecast(out.read_text(encoding="utf-8"), str(out))
    starts = sorted({r.start for r in rows})
    assert starts[0] == datetime(2025, 10, 13) and len(starts) == 7 * 48
    assert {r.queue for r in rows} == {"billing", "tech"} and len(rows) == 2 * 7 * 48
    daily: dict[date, float] = {}
    for r in rows:
        if r.queue == "billing":
            daily[r.start.date()] = daily.get(r.start.date(), 0.0) + r.calls
    # the printed daily totals are the file's
    for day, total in daily.items():
        assert f"{day} " in text and f"{total:,.0f}" in text
    # the holiday ahead (a Wednesday) is forecast well below the Tuesday before it
    assert daily[date(2025, 10, 15)] < 0.6 * daily[date(2025, 10, 14)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same to standard output: the CSV alone there
    result = CliRunner().invoke(main, [
        "forecast", "--records", str(records), "--queue", "tech", "--days", "1",
        "--backtest", "0", "--tz", "UTC", "-o", "-"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln]
    assert lines[0] == "interval_start,queue,calls" and len(lines) == 1 + 48
    assert all(",tech," in ln for ln in lines[1:])


@pytest.mark.parametrize(("args", "words"), [
    (["--queue", "sales"], "unknown queue 'sales': the history has 'billing', 'tech'"),
    (["--backtest", "9"], "--backtest 9: too little history for a backtest of 9 week(s)"),
    (["--holidays", "HOL"], "holidays.txt:2: date: '2025-02-30' is not a date"),
    (["--start", "tomorrow"], "'tomorrow' is not a day"),
])
def test_bad_input_is_named(tmp_path: Path, args: list[str], words: str) -> None:
    records = _records_csv(tmp_path, 21)
    hol = tmp_path / "holidays.txt"
    hol.write_text("2025-01-01 new year\n2025-02-30 nothing\n", encoding="utf-8")
    args = [str(hol) if a == "HOL" else a for a in args]
    result = CliRunner().invoke(main, ["forecast", "--records", str(records), "--tz", "UTC",
                                       *args])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()), result.output


def test_too_little_history_and_a_bad_records_file(tmp_path: Path) -> None:
    records = _records_csv(tmp_path, 5)
    result = CliRunner().invoke(main, ["forecast", "--records", str(records), "--tz", "UTC"])
    assert result.exit_code == 2
    assert "too little history for queue 'billing': 5 day(s)" in " ".join(result.output.split())
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival,queue,outcome,wait,handle\n2025-09-01 08:00,q,answered,1,60\n"
                   "yesterday,q,answered,1,60\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["forecast", "--records", str(bad), "--tz", "UTC"])
    assert result.exit_code == 2
    assert f"{bad}:3: arrival:" in " ".join(result.output.split())


def test_our_call_records_in_the_database(tmp_path: Path) -> None:
    from acd.adapters.storage import Database
    from acd.core.model import CallRecord, Outcome

    demand = synthetic_demand(FIRST, 28, 60, queues={"billing": 60}, seed=5, holidays={})
    zone = dt.timezone(timedelta(hours=8))
    records = []
    for i, (t, q) in enumerate(arrival_times(demand, seed=5)):
        at = t.replace(tzinfo=zone).timestamp()
        records.append(CallRecord(
            call_id=f"c{i}", caller="13800000000", caller_name="", started_at=at - 20,
            ended_at=at + 100, outcome=Outcome.ANSWERED, ivr_path=("menu",), queue=q,
            queued_at=at, wait_s=5.0, agent_id="a1", answered_at=at + 5, talk_s=95.0,
            offers=1, server=""))
    # a call that ended in the IVR is no arrival
    records.append(CallRecord(
        call_id="ivr", caller="1", caller_name="", started_at=records[0].started_at,
        ended_at=records[0].ended_at, outcome=Outcome.IVR, ivr_path=("menu",), queue=None,
        queued_at=None, wait_s=None, agent_id=None, answered_at=None, talk_s=None, offers=0,
        server=""))
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"

    async def fill() -> None:
        db = Database(url)
        await db.create()
        await db.write_batch(records, [])
        await db.dispose()

    asyncio.run(fill())
    out = tmp_path / "f.csv"
    result = CliRunner().invoke(main, ["forecast", "--db", url, "--tz", "Asia/Shanghai",
                                       "--interval", "60", "--days", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"history: 2025-09-01 .. 2025-09-28 (28 days, {len(records) - 1:,} calls" in text
    assert "1 call(s) never reached a queue: not counted as arrivals" in text
    assert "no backtest: 28 days of history" in text
    rows = parse_forecast(out.read_text(encoding="utf-8"), str(out))
    assert len(rows) == 48 and rows[0].start == datetime(2025, 9, 29)
    # counted in the zone given: the night hours (00:00-07:00 local) stay quiet
    night = sum(r.calls for r in rows if r.start.hour < 6)
    assert night < 0.05 * sum(r.calls for r in rows)
