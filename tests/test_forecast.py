"""The call forecast (acd.planning.forecast), the generated demand it is
tested on (acd.planning.synthetic) and the forecast / holidays files
(acd.loaders.planning_csv)."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime, timedelta

import pytest

from acd.loaders.planning_csv import (
    PlanningFileError,
    parse_forecast,
    parse_holidays,
    write_forecast,
)
from acd.planning.forecast import (
    ForecastError,
    ForecastRow,
    History,
    backtest,
    count_arrivals,
    forecast,
    naive_forecast,
    wape,
)
from acd.planning.synthetic import (
    HOLIDAY_FACTOR,
    day_profile,
    default_holidays,
    synthetic_demand,
)

pytest.importorskip("statsmodels")


def _oracle_wape(demand: object, days: list[date]) -> tuple[float, float]:
    """WAPE per interval and per day of the true expectations on ``days``."""
    h = demand.history  # type: ignore[attr-defined]
    fi: list[float] = []
    ai: list[float] = []
    fd: list[float] = []
    ad: list[float] = []
    step = timedelta(minutes=h.interval_min)
    for q, per in h.counts.items():
        for d in days:
            mu = demand.expected[q][(d - h.first).days]  # type: ignore[attr-defined]
            base = datetime.combine(d, dt.time())
            got = [per.get(base + k * step, 0.0) for k in range(len(mu))]
            fi.extend(mu)
            ai.extend(got)
            fd.append(sum(mu))
            ad.append(sum(got))
    return wape(fi, ai), wape(fd, ad)


@pytest.mark.slow  # a year of history and 12 fits: some 4 s of CPU, more on a busy machine
def test_the_backtest_on_a_generated_year_beats_the_same_weekday_naive_forecast() -> None:
    # a year at 60-minute intervals, two queues, the last 6 weeks tested
    # (Christmas and New Year among them)
    demand = synthetic_demand(date(2025, 1, 6), 364, 60, seed=7)
    bt = backtest(demand.history, 6, holidays=demand.holidays)
    assert len(bt.origins) == 6 and bt.origins[-1] == demand.history.last - timedelta(days=6)
    assert set(bt.interval) == {"billing", "tech", "all"}
    for q in bt.interval:
        (mi, ni), (md, nd) = bt.interval[q], bt.day[q]
        assert mi < ni * 0.8, (q, mi, ni)
        assert md < nd * 0.7, (q, md, nd)
    # and close to the noise floor: what the true expectations themselves score
    tested = [o + timedelta(days=j) for o in bt.origins for j in range(7)]
    assert any(d in demand.holidays for d in tested)
    oracle_int, oracle_day = _oracle_wape(demand, tested)
    mi, _ = bt.interval["all"]
    md, _ = bt.day["all"]
    assert mi < oracle_int * 1.15, (mi, oracle_int)
    assert md < oracle_day * 1.6, (md, oracle_day)
    # every tested day of each queue is there, with the actual counts
    assert len(bt.days) == 2 * 6 * 7
    day0 = bt.days[0]
    counted = sum(c for t, c in demand.history.counts[day0.queue].items()
                  if t.date() == day0.day)
    assert day0.actual == counted


def test_a_holiday_is_forecast_low_with_its_own_profile() -> None:
    hol = default_holidays(date(2025, 1, 6), 364)
    demand = synthetic_demand(date(2025, 1, 6), 350, 60, seed=3, holidays=hol)  # to 12-21
    assert date(2025, 12, 25) in hol and date(2025, 12, 22) not in hol
    fc = forecast(demand.history, days=7, holidays=hol)  # Mon 22 .. Sun 28 December
    daily = fc.daily()["billing"]
    christmas, wednesday = daily[date(2025, 12, 25)], daily[date(2025, 12, 24)]
    # the generated holiday has HOLIDAY_FACTOR of a normal day (Thursday 1.00, Wednesday 1.05)
    assert christmas == pytest.approx(HOLIDAY_FACTOR * wednesday / 1.05, rel=0.25)
    # without the holidays, the model takes it for a normal Thursday
    plain = forecast(demand.history, days=7).daily()["billing"]
    assert plain[date(2025, 12, 25)] > 2.2 * christmas
    # the holiday's intra-day shape is the weekend's (one peak about 12:30), not the
    # working day's (the morning peak at 10:00)
    rows = {r.start.hour: r.calls for r in fc.rows
            if r.queue == "billing" and r.start.date() == date(2025, 12, 25)}
    assert max(rows, key=lambda h: rows[h]) in (11, 12, 13)
    weekday = {r.start.hour: r.calls for r in fc.rows
               if r.queue == "billing" and r.start.date() == date(2025, 12, 24)}
    assert max(weekday, key=lambda h: weekday[h]) in (9, 10)


def test_a_holiday_with_none_in_the_history_is_forecast_like_the_quietest_weekday() -> None:
    demand = synthetic_demand(date(2025, 6, 2), 56, 60, seed=2, holidays={})
    ahead = {date(2025, 7, 30): "a Wednesday off"}
    fc = forecast(demand.history, days=7, holidays=ahead)
    daily = fc.daily()["tech"]
    assert daily[date(2025, 7, 30)] == pytest.approx(daily[date(2025, 8, 3)], rel=0.2)  # a Sunday
    assert any("no holiday in the history" in n for n in fc.notes)


def test_short_history_falls_back_and_too_short_is_refused() -> None:
    demand = synthetic_demand(date(2025, 3, 3), 14, 30, seed=4, holidays={})
    fc = forecast(demand.history, days=7)
    assert fc.methods == {"billing": "seasonal naive", "tech": "seasonal naive"}
    assert any("seasonal naive" in n and "14 days" in n for n in fc.notes)
    # each day as the last one of its weekday: the daily totals of the second week
    daily = fc.daily()["billing"]
    for j in range(7):
        last = date(2025, 3, 10) + timedelta(days=j)
        got = sum(c for t, c in demand.history.counts["billing"].items() if t.date() == last)
        assert daily[last + timedelta(days=7)] == pytest.approx(got)
    short = synthetic_demand(date(2025, 3, 3), 5, 30, seed=4, holidays={})
    with pytest.raises(ForecastError, match=r"too little history .*5 day"):
        forecast(short.history)
    with pytest.raises(ForecastError, match="backtest of 3 week"):
        backtest(demand.history, 3)


def test_unknown_queue_and_bad_arguments_are_named() -> None:
    demand = synthetic_demand(date(2025, 3, 3), 28, 60, seed=5, holidays={})
    with pytest.raises(ForecastError, match=r"unknown queue 'sales'.*'billing', 'tech'"):
        forecast(demand.history, queues=["sales"])
    with pytest.raises(ForecastError, match="at least one day"):
        forecast(demand.history, days=0)
    with pytest.raises(ForecastError, match="15, 30 or 60"):
        count_arrivals([], 20)
    with pytest.raises(ForecastError, match="empty"):
        count_arrivals([], 30)


def test_queues_are_forecast_separately_and_closed_days_stay_closed() -> None:
    # one queue closed on Sundays (no calls at all), one open every day
    demand = synthetic_demand(date(2025, 3, 3), 63, 60, seed=6, holidays={})
    counts = {q: dict(per) for q, per in demand.history.counts.items()}
    counts["billing"] = {t: c for t, c in counts["billing"].items() if t.weekday() != 6}
    hist = History(60, demand.history.first, demand.history.last, counts)
    fc = forecast(hist, days=7, queues=["billing"])
    assert {r.queue for r in fc.rows} == {"billing"}
    daily = fc.daily()["billing"]
    sunday = next(d for d in daily if d.weekday() == 6)
    monday = next(d for d in daily if d.weekday() == 0)
    assert daily[sunday] < 0.05 * daily[monday]
    assert len(fc.rows) == 7 * 24
    assert all(r.calls >= 0 for r in fc.rows)
    # the tech queue alone forecasts the same whatever billing did
    alone = forecast(hist, days=7, queues=["tech"]).daily()["tech"]
    both = forecast(demand.history, days=7).daily()["tech"]
    assert alone == pytest.approx(both)


def test_the_naive_forecast_is_the_value_seven_days_before() -> None:
    demand = synthetic_demand(date(2025, 3, 3), 21, 30, seed=8, holidays={})
    h = demand.history
    fc = naive_forecast(h, days=9)
    got = {(r.queue, r.start): r.calls for r in fc.rows}
    for (q, start), calls in got.items():
        back = start - timedelta(days=7 if start.date() <= h.last + timedelta(days=7) else 14)
        assert calls == h.counts[q].get(back, 0.0)
    # a start inside the history uses only the days before it
    inside = naive_forecast(h, start=date(2025, 3, 17), days=1)
    assert {r.start: r.calls for r in inside.rows if r.queue == "tech"} == {
        t + timedelta(days=7): h.counts["tech"].get(t, 0.0)
        for t in (datetime(2025, 3, 10) + timedelta(minutes=30 * k) for k in range(48))}


def test_arrivals_are_counted_in_their_interval() -> None:
    at = [(datetime(2025, 3, 3, 8, 0, 0), "a"), (datetime(2025, 3, 3, 8, 29, 59), "a"),
          (datetime(2025, 3, 3, 8, 30), "a"), (datetime(2025, 3, 4, 23, 59), "b"),
          (datetime(2025, 3, 6, 1, 0), "a")]
    h, outside = count_arrivals(at, 30, last=date(2025, 3, 5))
    assert outside == 1
    assert (h.first, h.last, h.days) == (date(2025, 3, 3), date(2025, 3, 5), 3)
    assert h.counts == {"a": {datetime(2025, 3, 3, 8): 2.0, datetime(2025, 3, 3, 8, 30): 1.0},
                        "b": {datetime(2025, 3, 4, 23, 30): 1.0}}


def test_the_generated_demand_has_its_seasonality() -> None:
    demand = synthetic_demand(date(2025, 1, 6), 28, 60, seed=9, holidays={})
    per = demand.history.counts["billing"]
    by_weekday = [sum(c for t, c in per.items() if t.weekday() == wd) for wd in range(7)]
    assert by_weekday[0] > by_weekday[3] > by_weekday[5] > by_weekday[6]
    assert sum(day_profile(15, True)) == pytest.approx(1.0)
    again = synthetic_demand(date(2025, 1, 6), 28, 60, seed=9, holidays={})
    assert again.history.counts == demand.history.counts
    assert wape([1.0, 3.0], [2.0, 2.0]) == pytest.approx(0.5)


# ---------------------------------------------------------------- files


def test_forecast_csv_round_trip_and_errors() -> None:
    rows = [ForecastRow(datetime(2026, 12, 7, 8, 0), "billing", 41.3),
            ForecastRow(datetime(2026, 12, 7, 8, 30), "billing", 0.0),
            ForecastRow(datetime(2026, 12, 7, 8, 0), "a,b", 2.125)]
    text = write_forecast(rows)
    assert text.splitlines()[:2] == ["interval_start,queue,calls", "2026-12-07 08:00,billing,41.3"]
    back = parse_forecast(text, "f.csv")
    assert [(r.start, r.queue, r.calls) for r in back] == [(r.start, r.queue, r.calls)
                                                           for r in rows]
    assert [r.line for r in back] == [2, 3, 4]
    utc = parse_forecast("interval_start,queue,calls\n2026-12-07T08:00+00:00,q,1\n", "f.csv",
                         tz=dt.timezone(timedelta(hours=8)))
    assert utc[0].start == datetime(2026, 12, 7, 16, 0)
    bad = [
        ("interval_start,queue\n", "f.csv:1: header: missing column(s) calls"),
        ("interval_start,queue,calls\n2026-12-07 08:00,q,x\n", "f.csv:2: calls: 'x' is not"),
        ("interval_start,queue,calls\n2026-12-07 08:00,q,-1\n", "f.csv:2: calls: '-1'"),
        ("interval_start,queue,calls\n2026-12-07,q,1\n", "f.csv:2: interval_start: "),
        ("interval_start,queue,calls\n2026-12-07 08:00,,1\n", "f.csv:2: queue: empty"),
        ("interval_start,queue,calls\n2026-12-07 08:00,q,1\n2026-12-07 08:00,q,2\n",
         "f.csv:3: interval_start: queue 'q' at 2026-12-07 08:00 is given twice (also on "
         "line 2)"),
        ("interval_start,queue,calls\n2026-12-07 08:00,q\n", "f.csv:2: 2 fields"),
    ]
    for text, message in bad:
        with pytest.raises(PlanningFileError) as err:
            parse_forecast(text, "f.csv")
        assert str(err.value).startswith(message), (text, str(err.value))


def test_holidays_file() -> None:
    text = "# public holidays\n2026-12-25 Christmas Day\n\n2026-12-26\t Boxing Day\n2027-01-01\n"
    assert parse_holidays(text, "h.txt") == {date(2026, 12, 25): "Christmas Day",
                                             date(2026, 12, 26): "Boxing Day",
                                             date(2027, 1, 1): ""}
    with pytest.raises(PlanningFileError, match=r"^h.txt:3: date: '2026-13-01' is not a date"):
        parse_holidays("2026-12-25\n\n2026-13-01 x\n", "h.txt")
    with pytest.raises(PlanningFileError, match=r"^h.txt:2: date: 2026-12-25 is given twice"):
        parse_holidays("2026-12-25\n2026-12-25,again\n", "h.txt")
