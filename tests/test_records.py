"""A center's call records: the CSV (errors, skipped outcomes, streaming,
round trip) and the fits of what it does not say (handle time, wrap-up,
patience with censoring)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from acd.loaders.records_csv import (
    RecordsError,
    Skipped,
    iter_records,
    parse_records,
    write_records,
)
from acd.loaders.textfile import TextFileError
from acd.planning.fitting import fit_duration, fit_patience, fit_records
from acd.planning.records import CenterRecord

HEADER = "arrival,queue,priority,outcome,wait,handle,wrap,abandon_after,number,attributes\n"
SAMPLE = HEADER + (
    "2026-11-02 08:00:05,billing,0,answered,12.5,185,20,,13800000001,vip_level=2\n"
    "2026-11-02T08:00:09,tech,1,abandoned,,,,34.2,,\n"
    "2026-11-02 08:01,tech,,fallback,,,,,,\n"
    "2026-11-02 08:02,tech,,abandoned,7,,,,,\n"
    "2026-11-02 08:03,tech,,voicemail,,,,,,\n"
    "2026-11-02 08:04,tech,,Fallback,,,,,,\n")


def test_parse_records_reads_rows_and_counts_the_skipped() -> None:
    skipped = Skipped()
    recs = parse_records(SAMPLE, "r.csv", skipped=skipped)
    assert [r.outcome for r in recs] == ["answered", "abandoned", "abandoned"]
    a, b, c = recs
    assert a.arrival == datetime(2026, 11, 2, 8, 0, 5) and a.queue == "billing"
    assert (a.wait_s, a.handle_s, a.wrap_s, a.abandon_s) == (12.5, 185.0, 20.0, None)
    assert a.attributes == (("vip_level", "2"),) and a.number == "13800000001"
    assert b.priority == 1 and b.abandon_s == 34.2 and b.wait_s == 34.2 and b.line == 3
    # abandoned without abandon_after: its wait is the time it hung up
    assert c.abandon_s == 7.0 and c.waited_s == 7.0
    assert skipped.counts == {"fallback": 2, "voicemail": 1}
    assert skipped.lines["fallback"] == [4, 7]
    assert "3 rows with another outcome skipped" in skipped.describe()


@pytest.mark.parametrize(("row", "message"), [
    ("2026-11-02 08:00,billing,0,answered,3,,,,,", "r.csv:2: handle: empty"),
    ("2026-11-02 08:00,billing,0,answered,,30,,,,", "r.csv:2: wait: empty"),
    ("2026-11-02 08:00,billing,0,abandoned,,,,,,", "r.csv:2: abandon_after: empty"),
    ("2026-11-02 25:00,billing,0,answered,1,2,,,,", "r.csv:2: arrival: '2026-11-02 25:00'"),
    ("2026-11-02,billing,0,answered,1,2,,,,", "r.csv:2: arrival: '2026-11-02' has no time"),
    ("2026-11-02 08:00,,0,answered,1,2,,,,", "r.csv:2: queue: empty"),
    ("2026-11-02 08:00,billing,high,answered,1,2,,,,", "r.csv:2: priority: 'high'"),
    ("2026-11-02 08:00,billing,0,answered,-1,2,,,,", "r.csv:2: wait: '-1' is not a number"),
    ("2026-11-02 08:00,billing,0,answered,1,nan,,,,", "r.csv:2: handle: 'nan'"),
    ("2026-11-02 08:00,billing,0,,1,2,,,,", "r.csv:2: outcome: empty"),
    ("2026-11-02 08:00,billing,0,answered,1,2,,,,x", "r.csv:2: attributes: 'x' is not"),
    ("2026-11-02 08:00,billing,0,answered,1,2,,,,,,", "r.csv:2: 12 fields, the header has 10"),
    ("2026-11-02 08:00,billing,0,answered,1,2,,5,,", "r.csv:2: abandon_after: given for an "),
    ('2026-11-02 08:00,"billing,0,answered,1,2,,,,', "r.csv:2: cannot be read as CSV"),
])
def test_bad_rows_name_file_line_column(row: str, message: str) -> None:
    with pytest.raises(RecordsError) as exc:
        parse_records(HEADER + row + "\n", "r.csv")
    assert str(exc.value).startswith(message), str(exc.value)


def test_answered_with_abandon_after_zero_is_read() -> None:
    recs = parse_records(HEADER + "2026-11-02 08:00,q,0,answered,1,2,,0,,\n", "r.csv")
    assert recs[0].abandon_s is None and recs[0].handle_s == 2.0


def test_bad_headers() -> None:
    with pytest.raises(RecordsError, match=r"r.csv:1: header: missing column\(s\) outcome"):
        parse_records("arrival,queue\n", "r.csv")
    with pytest.raises(RecordsError, match=r"r.csv:1: header: unknown column\(s\) 'talk'"):
        parse_records("arrival,queue,outcome,talk\n", "r.csv")
    with pytest.raises(RecordsError, match=r"r\.csv:1: the file is empty"):
        parse_records("", "r.csv")


def test_utc_offsets_become_local_time_of_the_zone() -> None:
    tz = timezone(timedelta(hours=8))
    recs = parse_records("arrival,queue,outcome,wait,handle\n"
                         "2026-11-02T00:30:00+00:00,q,answered,1,2\n", "r.csv", tz=tz)
    assert recs[0].arrival == datetime(2026, 11, 2, 8, 30)


def test_round_trip_and_streamed_file(tmp_path: Path) -> None:
    recs = parse_records(SAMPLE, "r.csv")
    recs.append(CenterRecord(datetime(2026, 11, 3, 1, 2, 3, 500000), 'a,"b"', "answered",
                             2, 0.25, 61.0, None, None, "", (("k", "v w"),)))
    text = write_records(recs)
    path = tmp_path / "r.csv"
    path.write_text(text, encoding="utf-8")
    skipped = Skipped()
    again = list(iter_records(path, skipped=skipped))
    assert skipped.total == 0
    assert [(r.arrival, r.queue, r.outcome, r.priority, r.wait_s, r.handle_s, r.wrap_s,
             r.abandon_s, r.number, r.attributes) for r in again] == \
        [(r.arrival, r.queue, r.outcome, r.priority, r.wait_s, r.handle_s, r.wrap_s,
          r.abandon_s, r.number, r.attributes) for r in recs]


def test_streamed_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(HEADER.encode() + b"2026-11-02 08:00,caf\xe9,0,answered,1,2,,,,\n")
    with pytest.raises(TextFileError, match=r"r.csv:2:21: not UTF-8"):
        list(iter_records(path))
    path.write_text(SAMPLE, encoding="utf-8")
    with pytest.raises(TextFileError, match="more than the 100 bytes"):
        list(iter_records(path, limit=100))
    with pytest.raises(TextFileError, match="not found"):
        list(iter_records(tmp_path / "none.csv"))
    path.write_text(HEADER + "2026-11-02 08:00,q,0,answered,1,,,,,\n", encoding="utf-8")
    with pytest.raises(RecordsError, match=r"r.csv:2: handle: empty"):
        list(iter_records(path))
    # the checks of a whole-file read, made line by line
    path.write_bytes(HEADER.encode() + b"2026-11-02 08:00,q\x00,0,answered,1,2,,,,\n")
    with pytest.raises(TextFileError, match=r"r.csv:2:19: a NUL byte"):
        list(iter_records(path))
    path.write_bytes(HEADER.encode("utf-16"))
    with pytest.raises(TextFileError, match=r"r.csv:1:1: UTF-16 text"):
        list(iter_records(path))
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE.encode())
    assert len(list(iter_records(path))) == len(parse_records(SAMPLE, "r.csv"))
    with pytest.raises(TextFileError, match="is a folder"):
        list(iter_records(tmp_path))


# ------------------------------------------------------------------ fitting


def _censored_sample(patience: np.ndarray, rng: np.random.Generator,
                     mean_wait: float) -> tuple[np.ndarray, np.ndarray]:
    """(abandonment times, waits of the served): a caller is served when
    its patience outlasts the wait it would have had."""
    wait = rng.exponential(mean_wait, patience.size)
    served = patience > wait
    return patience[~served], wait[served]


@pytest.mark.parametrize(("kind", "true_mean"), [("exponential", 120.0),
                                                  ("lognormal", 60.0 * np.exp(0.5))])
def test_censored_fits_recover_patience_where_the_naive_mean_fails(
        kind: str, true_mean: float) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    patience = rng.exponential(120.0, n) if kind == "exponential" \
        else rng.lognormal(np.log(60.0), 1.0, n)
    seen, served_waits = _censored_sample(patience, rng, 30.0)
    share = served_waits.size / n
    assert 0.75 < share < 0.85  # heavily censored: about 80 % served
    fit = fit_patience(seen, served_waits)
    assert fit is not None and fit.censored == served_waits.size
    assert abs(fit.mean / true_mean - 1) < 0.05, fit.describe()
    assert fit.naive_mean < 0.5 * true_mean  # only the impatient are seen
    # the chosen model is the true family (or the Weibull that nests the exponential)
    assert fit.model in ({"expon", "weibull_min"} if kind == "exponential" else {"lognorm"})
    # Kaplan-Meier: S(t) within 2 points of the truth where there are data
    for t in (10.0, 30.0, 60.0):
        true_sf = float(np.mean(patience > t))
        assert abs(fit.km_sf(t) - true_sf) < 0.02, (t, fit.km_sf(t), true_sf)
    # draws (unconditional) have the true mean, the tail from the parametric fit
    draws = fit.draw_given(np.zeros(50_000), np.random.default_rng(1))
    assert abs(draws.mean() / true_mean - 1) < 0.06


def test_conditional_draws_exceed_the_wait_and_follow_the_truth() -> None:
    rng = np.random.default_rng(3)
    patience = rng.exponential(100.0, 20_000)
    seen, served = _censored_sample(patience, rng, 25.0)
    fit = fit_patience(seen, served)
    assert fit is not None and abs(fit.mean / 100.0 - 1) < 0.08  # the true mean
    assert (fit.events, fit.censored) == (len(seen), len(served))
    for w in (0.0, 20.0, 80.0, 400.0):  # 400: beyond every observed abandonment
        d = fit.draw_given(np.full(20_000, w), np.random.default_rng(5))
        assert (d > w).all() if w > 0 else (d >= 0).all()
        # exponential: memoryless, so E[P | P > w] = w + 100
        assert abs(d.mean() - (w + 100.0)) < 0.08 * (w + 100.0), (w, d.mean())
    model = fit_patience(seen, served, method="model")
    assert model is not None and model.method == "model"
    d = model.draw_given(np.full(5_000, 50.0), np.random.default_rng(2))
    assert (d > 50.0).all()
    # the parametric fit alone: memoryless too, E[P | P > 50] = 50 + its mean
    assert abs(d.mean() - (50.0 + model.mean)) < 0.08 * (50.0 + model.mean)
    assert abs(model.mean / 100.0 - 1) < 0.08


def test_duration_fit_empirical_and_lognormal() -> None:
    rng = np.random.default_rng(4)
    x = rng.lognormal(np.log(150), 0.6, 5_000)
    fit = fit_duration(x)
    assert fit is not None and fit.method == "empirical"
    assert abs(fit.mu - np.log(150)) < 0.03 and abs(fit.sigma - 0.6) < 0.03
    drawn = fit.draw(np.random.default_rng(1), 1000)
    assert set(drawn) <= set(x)
    small = fit_duration(x[:20])
    assert small is not None and small.method == "lognormal"
    assert fit_duration([]) is None


def test_fit_records_per_queue_and_pooled_patience() -> None:
    t0 = datetime(2026, 11, 2, 8)
    rng = np.random.default_rng(9)
    recs: list[CenterRecord] = []
    for i in range(600):
        p, w = rng.exponential(90.0), rng.exponential(30.0)
        at = t0 + timedelta(seconds=10 * i)
        if p < w:
            recs.append(CenterRecord(at, "big", "abandoned", abandon_s=p, wait_s=p))
        else:
            recs.append(CenterRecord(at, "big", "answered", wait_s=w,
                                     handle_s=rng.exponential(200.0), wrap_s=15.0))
    recs.append(CenterRecord(t0, "small", "abandoned", abandon_s=5.0, wait_s=5.0))
    recs.append(CenterRecord(t0, "small", "answered", wait_s=1.0, handle_s=60.0))
    recs.append(CenterRecord(t0, "calm", "answered", wait_s=1.0, handle_s=60.0))
    fits = fit_records(recs)
    assert fits.queues["big"].patience_from == "queue"
    assert fits.queues["small"].patience_from == "all queues"
    assert fits.queues["small"].patience is fits.pooled_patience
    assert fits.queues["calm"].patience is None and fits.queues["calm"].wrap is None
    big = fits.queues["big"]
    assert big.wrap is not None and big.wrap.mean == 15.0
    assert big.handle is not None and big.abandoned + big.answered == 600
    text = "\n".join(fits.describe())
    assert "censored" in text and "nobody abandoned" in text


def test_answered_calls_without_a_wait_are_counted_not_censored_at_zero() -> None:
    t0 = datetime(2026, 11, 2, 8)
    rng = np.random.default_rng(2)
    recs = [CenterRecord(t0, "q", "abandoned", abandon_s=float(p), wait_s=float(p))
            for p in rng.exponential(60.0, 40)]
    recs += [CenterRecord(t0, "q", "answered", wait_s=5.0, handle_s=60.0)] * 50
    recs += [CenterRecord(t0, "q", "answered", handle_s=60.0)] * 7  # wait unknown
    fits = fit_records(recs)
    q = fits.queues["q"]
    assert (q.calls, q.answered, q.abandoned, q.unknown_wait) == (97, 57, 40, 7)
    assert fits.unknown_waits == 7
    assert q.patience is not None and (q.patience.events, q.patience.censored) == (40, 50)
    assert "7 answered call(s) without a wait" in "\n".join(fits.describe())
    # every queue has enough abandonments: no pooled fit is made
    assert fits.pooled_patience is None
