"""Call forecast per interval: arrivals counted per interval in, expected
calls per interval per queue for the days ahead out.  Pure computation (no
files, no clock); numpy and statsmodels are imported when a forecast is made
(``pip install 'acd[planning]'``).

The model (one queue at a time; queues are forecast separately)
    A contact center's day has two seasonalities: the week (Mondays busy,
    Sundays quiet) and the day (a morning and an afternoon peak, another
    shape on weekends).  The forecast splits them, as most workforce
    planning tools do:

    1. **Daily totals** by exponential smoothing (Holt-Winters,
       ``statsmodels.tsa.holtwinters.ExponentialSmoothing``) with a weekly
       season (``seasonal_periods=7``, multiplicative when every day has
       calls, else additive) and a damped additive trend: the level follows a
       slow trend and a yearly wave without needing years of history, the
       weekly pattern is re-estimated as it drifts, and the damping keeps a
       short trend from running away over the horizon.  Initial states by the
       heuristic decomposition (the fit is then some 0.15 s).  It is fitted on the
       last :data:`MAX_FIT_DAYS` days at most.
    2. **Intra-day profile** of each weekday: the share of the day's calls in
       each interval, pooled over that weekday's last :data:`PROFILE_WEEKS`
       normal days, recent weeks weighing more (weight
       :data:`PROFILE_DECAY` per week of age): the averaging over weeks is the
       smoothing; no smoothing along the day, which would move calls into
       the intervals around an opening hour.
    3. An interval's forecast = the day's total × the weekday's share.

Holidays (dates given by the caller) are a day type of their own: their
history is left out of the weekday model and profiles (in the daily series
a past holiday is replaced by the mean of the same weekday's normal days in
the two weeks around it, so the smoothing does not take it for a drop in
level).  A holiday ahead is forecast as its weekday's total × the ratio of
the past holidays' calls to what a normal day would have had, with the
profile of the past holidays pooled and shrunk toward the quietest
weekday's (:data:`HOLIDAY_PRIOR_CALLS` calls' worth).  With no past holiday
in the history it is forecast like the quietest weekday (a note says so).

Short history: fewer than :data:`MODEL_DAYS` days fall back to the
seasonal naive forecast (each day as the last normal day of the same
weekday; a note says so); fewer than :data:`MIN_DAYS` normal days are
refused (:class:`ForecastError`).  Intervals without calls are zeros.

The baseline every forecast is measured against, :func:`naive_forecast`,
is the same-weekday naive forecast: each interval as it was 7 days before.
:func:`backtest` runs both over rolling origins (each of the last K weeks:
fit on the days before it, forecast the 7 days from it) and gives their
WAPE, Σ|forecast − actual| / Σ actual, over every interval and over the
daily totals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from acd.planning.intervals import floor

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "INTERVALS",
    "Backtest",
    "BacktestDay",
    "Forecast",
    "ForecastError",
    "ForecastRow",
    "History",
    "backtest",
    "count_arrivals",
    "forecast",
    "naive_forecast",
    "wape",
]

#: the interval lengths in minutes (aligned on the hour)
INTERVALS = (15, 30, 60)
#: fewer normal days of history than this are refused
MIN_DAYS = 7
#: fewer days of history than this: the seasonal naive forecast, not the model
MODEL_DAYS = 21
#: the weeks of history each weekday's intra-day profile is pooled over
PROFILE_WEEKS = 8
#: the weight of a profile week relative to the week after it
PROFILE_DECAY = 0.85
#: the daily model is fitted on this many days at most (the most recent)
MAX_FIT_DAYS = 730
#: the holidays' pooled profile is shrunk toward the quietest weekday's with
#: this many calls' worth of that profile
HOLIDAY_PRIOR_CALLS = 200.0
#: what to install for forecasts
EXTRA = "pip install 'acd[planning]'"


class ForecastError(ValueError):
    """The history cannot give the forecast asked for (too short, an unknown
    queue, a bad argument); the message says what and why."""


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """Expected arrivals of one queue in the interval starting at ``start``
    (naive local time); ``line``: where it was read from (0: computed)."""

    start: datetime
    queue: str
    calls: float
    line: int = 0


@dataclass(frozen=True, slots=True)
class History:
    """Arrivals counted per interval: ``counts[queue][interval start]``, over
    the days ``first`` .. ``last`` (both included; an interval missing from
    ``counts`` had no call)."""

    interval_min: int
    first: date
    last: date
    counts: Mapping[str, Mapping[datetime, float]]

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(sorted(self.counts))

    def until(self, end: date) -> History:
        """The history of the days before ``end``."""
        last = min(self.last, end - timedelta(days=1))
        stop = datetime.combine(last + timedelta(days=1), datetime.min.time())
        return History(self.interval_min, self.first, last,
                       {q: {t: c for t, c in per.items() if t < stop}
                        for q, per in self.counts.items()})


def _check_interval(interval_min: int) -> None:
    if interval_min not in INTERVALS:
        raise ForecastError(f"the interval must be 15, 30 or 60 minutes, not {interval_min}")


def count_arrivals(arrivals: Iterable[tuple[datetime, str]], interval_min: int, *,
                   first: date | None = None, last: date | None = None
                   ) -> tuple[History, int]:
    """Count (arrival time, queue) pairs per interval: the history over the
    days ``first`` .. ``last`` (default: the first and last arrival's days)
    and how many arrivals fell outside those days (not counted)."""
    _check_interval(interval_min)
    counts: dict[str, dict[datetime, float]] = {}
    outside = 0
    lo: date | None = None
    hi: date | None = None
    for at, queue in arrivals:
        day = at.date()
        if (first is not None and day < first) or (last is not None and day > last):
            outside += 1
            continue
        start = floor(at, interval_min * 60)
        per = counts.setdefault(queue, {})
        per[start] = per.get(start, 0.0) + 1.0
        lo = day if lo is None or day < lo else lo
        hi = day if hi is None or day > hi else hi
    f = first if first is not None else lo
    la = last if last is not None else hi
    if f is None or la is None:
        raise ForecastError("no calls to forecast from: the history is empty")
    if la < f:
        raise ForecastError(f"the history's last day {la} is before its first {f}")
    return History(interval_min, f, la, counts), outside


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast: ``rows`` per queue then interval, every interval of the
    ``days`` days from ``first``; ``methods[queue]`` says how each queue was
    forecast ("exponential smoothing" or "seasonal naive"); ``notes`` what
    the reader should know (fallbacks, holiday guesses)."""

    interval_min: int
    first: date
    days: int
    rows: tuple[ForecastRow, ...]
    methods: Mapping[str, str]
    notes: tuple[str, ...] = ()

    def daily(self) -> dict[str, dict[date, float]]:
        """Queue -> day -> expected calls that day."""
        out: dict[str, dict[date, float]] = {}
        for r in self.rows:
            per = out.setdefault(r.queue, {})
            per[r.start.date()] = per.get(r.start.date(), 0.0) + r.calls
        return out


@dataclass(frozen=True, slots=True)
class BacktestDay:
    """One day of one queue in the backtest: actual calls and the two forecasts."""

    queue: str
    day: date
    origin: date
    actual: float
    model: float
    naive: float


@dataclass(frozen=True, slots=True)
class Backtest:
    """Rolling-origin backtest: per queue (and ``"all"``), the WAPE over every
    interval and over the daily totals of the model and of the same-weekday
    naive forecast: ``interval[queue] = (model, naive)``, ``day`` likewise."""

    origins: tuple[date, ...]
    interval: Mapping[str, tuple[float, float]]
    day: Mapping[str, tuple[float, float]]
    days: tuple[BacktestDay, ...]
    notes: tuple[str, ...] = ()


def wape(forecast: Sequence[float], actual: Sequence[float]) -> float:
    """Σ|forecast − actual| / Σ actual (NaN when there is no actual call)."""
    total = math.fsum(actual)
    if total <= 0:
        return math.nan
    return math.fsum(abs(f - a) for f, a in zip(forecast, actual, strict=True)) / total


# ---------------------------------------------------------------- helpers


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - the planning extra is missing
        raise ForecastError(f"forecasts need numpy and statsmodels: {EXTRA}") from exc
    return numpy


def _per_day(interval_min: int) -> int:
    return 1440 // interval_min


def _matrix(history: History, queue: str) -> np.ndarray:
    """Counts as a (days, intervals per day) array."""
    np_ = _numpy()
    m: np.ndarray = np_.zeros((history.days, _per_day(history.interval_min)))
    for t, c in history.counts.get(queue, {}).items():
        d = (t.date() - history.first).days
        if 0 <= d < history.days:
            m[d, (t.hour * 60 + t.minute) // history.interval_min] += c
    return m


def _profile(m: np.ndarray, rows: Sequence[int]) -> np.ndarray | None:
    """The pooled share per interval of the days ``rows`` (latest last),
    recent days weighing more; None when they have no call."""
    np_ = _numpy()
    if not rows:
        return None
    w = np_.array([PROFILE_DECAY ** (len(rows) - 1 - k) for k in range(len(rows))])
    pooled = (m[list(rows)] * w[:, None]).sum(axis=0)
    total = float(pooled.sum())
    return pooled / total if total > 0 else None


@dataclass(slots=True)
class _Fit:
    """What the model learned from one queue's history."""

    profiles: dict[int, np.ndarray]     # weekday -> shares
    flat: np.ndarray                    # all normal days pooled
    holiday_profile: np.ndarray
    holiday_ratio: float | None         # None: no past holiday
    weekday_mean: dict[int, float]      # mean daily total of each weekday's normal days
    notes: list[str] = field(default_factory=list)


def _learn_days(m: np.ndarray, first: date, holidays: Mapping[date, str],
                cleaned: np.ndarray) -> _Fit:
    """Profiles per weekday, the holidays' profile and ratio."""
    np_ = _numpy()
    n = m.shape[0]
    totals = m.sum(axis=1)
    days = [first + timedelta(days=i) for i in range(n)]
    normal = [i for i in range(n) if days[i] not in holidays]
    flat = _profile(m, normal[-PROFILE_WEEKS * 7:])
    if flat is None:
        flat = np_.full(m.shape[1], 1.0 / m.shape[1])
    profiles: dict[int, np.ndarray] = {}
    weekday_mean: dict[int, float] = {}
    for wd in range(7):
        rows = [i for i in normal if days[i].weekday() == wd]
        recent = rows[-PROFILE_WEEKS:]
        p = _profile(m, recent)
        profiles[wd] = p if p is not None else flat
        weekday_mean[wd] = float(totals[recent].mean()) if recent else 0.0
    quiet = min(range(7), key=lambda wd: (weekday_mean[wd], wd))
    past = [i for i in range(n) if days[i] in holidays]
    prior = profiles[quiet]
    ratio: float | None = None
    holiday_profile = prior
    if past:
        expected = float(cleaned[past].sum())
        got = float(totals[past].sum())
        ratio = got / expected if expected > 0 else None
        pooled = m[past].sum(axis=0)
        holiday_profile = (pooled + HOLIDAY_PRIOR_CALLS * prior) / (got + HOLIDAY_PRIOR_CALLS)
    return _Fit(profiles, flat, holiday_profile, ratio, weekday_mean)


def _cleaned(totals: np.ndarray, first: date, holidays: Mapping[date, str]) -> np.ndarray:
    """Daily totals with each past holiday replaced by the mean of the same
    weekday's normal days within two weeks of it (else of all of them)."""
    out = totals.copy()
    n = len(totals)
    is_hol = [first + timedelta(days=i) in holidays for i in range(n)]
    for i in range(n):
        if not is_hol[i]:
            continue
        near = [totals[j] for j in (i - 14, i - 7, i + 7, i + 14)
                if 0 <= j < n and not is_hol[j]]
        if not near:
            near = [totals[j] for j in range(i % 7, n, 7) if not is_hol[j]]
        out[i] = sum(near) / len(near) if near else 0.0
    return out


def _smooth_daily(series: np.ndarray, horizon: int) -> np.ndarray:
    """Holt-Winters forecast of the daily totals, ``horizon`` days ahead."""
    np_ = _numpy()
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError as exc:  # pragma: no cover - the planning extra is missing
        raise ForecastError(f"forecasts need statsmodels: {EXTRA}") from exc
    import warnings

    y = np_.asarray(series, dtype=float)
    seasonal = "mul" if float(y.min()) > 0 else "add"
    with warnings.catch_warnings():  # convergence chatter: the result is checked below
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                     seasonal_periods=7, initialization_method="heuristic")
        fitted = model.fit(use_brute=False)
        out = np_.asarray(fitted.forecast(horizon), dtype=float)
    if not np_.all(np_.isfinite(out)):
        raise FloatingPointError("the smoothing gave non-finite values")
    return np_.clip(out, 0.0, None)  # type: ignore[no-any-return]


def _seasonal_naive_daily(cleaned: np.ndarray, horizon: int) -> np.ndarray:
    """Each day ahead as the last day with the same weekday."""
    np_ = _numpy()
    n = len(cleaned)
    out: np.ndarray = np_.array([cleaned[n - 7 + (j % 7)] for j in range(horizon)])
    return out


def _forecast_queue(m: np.ndarray, first: date, horizon: int,
                    holidays: Mapping[date, str], queue: str
                    ) -> tuple[np.ndarray, str, list[str]]:
    """(horizon, intervals) forecast of one queue, the method, notes."""
    np_ = _numpy()
    n = m.shape[0]
    notes: list[str] = []
    normal_days = sum(1 for i in range(n) if first + timedelta(days=i) not in holidays)
    if normal_days < MIN_DAYS:
        raise ForecastError(
            f"too little history for queue {queue!r}: {normal_days} day(s) that are not "
            f"holidays; a forecast needs at least {MIN_DAYS} (a whole week)")
    totals = m.sum(axis=1)
    cleaned = _cleaned(totals, first, holidays)
    fit = _learn_days(m, first, holidays, cleaned)
    method = "exponential smoothing"
    if n < MODEL_DAYS:
        method = "seasonal naive"
        notes.append(f"queue {queue!r}: {n} days of history, fewer than {MODEL_DAYS}: "
                     "seasonal naive forecast (each day as the last one of its weekday)")
        daily = _seasonal_naive_daily(cleaned, horizon)
    else:
        try:
            daily = _smooth_daily(cleaned[-MAX_FIT_DAYS:], horizon)
        except (ValueError, FloatingPointError, np_.linalg.LinAlgError) as exc:
            method = "seasonal naive"
            notes.append(f"queue {queue!r}: the smoothing failed ({exc}): seasonal naive "
                         "forecast instead")
            daily = _seasonal_naive_daily(cleaned, horizon)
    last = first + timedelta(days=n - 1)
    out = np_.zeros((horizon, m.shape[1]))
    quiet = min(range(7), key=lambda wd: (fit.weekday_mean[wd], wd))
    guessed = False
    for j in range(horizon):
        day = last + timedelta(days=j + 1)
        wd = day.weekday()
        if day in holidays:
            if fit.holiday_ratio is not None:
                level = daily[j] * fit.holiday_ratio
            else:
                guessed = True
                mean = fit.weekday_mean[wd]
                level = daily[j] * (fit.weekday_mean[quiet] / mean) if mean > 0 else daily[j]
            out[j] = level * fit.holiday_profile
        else:
            out[j] = daily[j] * fit.profiles[wd]
    if guessed:
        notes.append(f"queue {queue!r}: no holiday in the history: holidays ahead are "
                     "forecast like the quietest weekday")
    return out, method, notes


def _check_queues(history: History, queues: Sequence[str] | None) -> tuple[str, ...]:
    if not queues:
        if not history.counts:
            raise ForecastError("no calls to forecast from: the history is empty")
        return history.queues
    unknown = [q for q in queues if q not in history.counts]
    if unknown:
        raise ForecastError(
            f"unknown queue {unknown[0]!r}: the history has "
            + (", ".join(repr(q) for q in history.queues) or "no queue"))
    return tuple(dict.fromkeys(queues))


def _rows(queue: str, start: date, values: np.ndarray, interval_min: int
          ) -> list[ForecastRow]:
    base = datetime.combine(start, datetime.min.time())
    step = timedelta(minutes=interval_min)
    per = values.shape[1]
    return [ForecastRow(base + timedelta(days=d) + k * step, queue, float(values[d, k]))
            for d in range(values.shape[0]) for k in range(per)]


def forecast(history: History, *, start: date | None = None, days: int = 7,
             holidays: Mapping[date, str] | None = None,
             queues: Sequence[str] | None = None) -> Forecast:
    """Expected calls per interval of each queue (``queues``; default all of
    the history's) for ``days`` days from ``start`` (default: the day after
    the history).  A start inside the history forecasts from the days before
    it only; a start later than the day after the history forecasts the gap
    too (not returned)."""
    _check_interval(history.interval_min)
    if days < 1:
        raise ForecastError(f"the forecast needs at least one day, not {days}")
    hol = dict(holidays or {})
    names = _check_queues(history, queues)
    first_day = start if start is not None else history.last + timedelta(days=1)
    if first_day <= history.first:
        raise ForecastError(f"the forecast starts {first_day}, not after the history's "
                            f"first day {history.first}")
    hist = history.until(first_day) if first_day <= history.last else history
    gap = (first_day - hist.last).days - 1
    rows: list[ForecastRow] = []
    methods: dict[str, str] = {}
    notes: list[str] = []
    if first_day <= history.last:
        notes.append(f"the forecast starts inside the history: only the days before "
                     f"{first_day} are used")
    for q in names:
        values, method, qnotes = _forecast_queue(_matrix(hist, q), hist.first, gap + days,
                                                 hol, q)
        methods[q] = method
        notes.extend(qnotes)
        rows.extend(_rows(q, first_day, values[gap:], hist.interval_min))
    return Forecast(hist.interval_min, first_day, days, tuple(rows), methods, tuple(notes))


def naive_forecast(history: History, *, start: date | None = None, days: int = 7,
                   queues: Sequence[str] | None = None) -> Forecast:
    """The same-weekday naive forecast: each interval as it was 7 days
    before (for a day more than a week ahead, as in the last week of the
    history that has its weekday)."""
    _check_interval(history.interval_min)
    names = _check_queues(history, queues)
    first_day = start if start is not None else history.last + timedelta(days=1)
    hist = history.until(first_day) if first_day <= history.last else history
    if hist.days < 7:
        raise ForecastError(f"the same-weekday naive forecast needs a week of history; "
                            f"there are {max(hist.days, 0)} day(s)")
    gap = (first_day - hist.last).days - 1
    rows: list[ForecastRow] = []
    for q in names:
        m = _matrix(hist, q)
        values = _naive_values(m, gap + days)
        rows.extend(_rows(q, first_day, values[gap:], hist.interval_min))
    return Forecast(hist.interval_min, first_day, days, tuple(rows),
                    dict.fromkeys(names, "same-weekday naive"))


def _naive_values(m: np.ndarray, horizon: int) -> np.ndarray:
    np_ = _numpy()
    n = m.shape[0]
    out: np.ndarray = np_.array([m[n - 7 + (j % 7)] for j in range(horizon)])
    return out


# ---------------------------------------------------------------- backtest


def backtest(history: History, weeks: int, *, holidays: Mapping[date, str] | None = None,
             queues: Sequence[str] | None = None) -> Backtest:
    """Rolling-origin backtest over the last ``weeks`` weeks of the history:
    for each origin (the history's last day + 1 − 7·k, k = weeks .. 1) the
    model is fitted on the days before it and forecasts the 7 days from it;
    the same-weekday naive forecast likewise.  WAPE per interval (every
    interval of every origin) and per day (daily totals), per queue and all
    queues together."""
    np_ = _numpy()
    _check_interval(history.interval_min)
    if weeks < 1:
        raise ForecastError(f"the backtest needs at least one week, not {weeks}")
    hol = dict(holidays or {})
    names = _check_queues(history, queues)
    needed = 7 * weeks + MIN_DAYS
    if history.days < needed:
        raise ForecastError(
            f"too little history for a backtest of {weeks} week(s): {history.days} day(s); "
            f"it needs at least {needed} (the weeks tested and a week before them)")
    end = history.last + timedelta(days=1)
    origins = tuple(end - timedelta(days=7 * k) for k in range(weeks, 0, -1))
    per_int: dict[str, tuple[list[float], list[float], list[float]]] = {
        q: ([], [], []) for q in (*names, "all")}
    per_day: dict[str, tuple[list[float], list[float], list[float]]] = {
        q: ([], [], []) for q in (*names, "all")}
    out_days: list[BacktestDay] = []
    notes: list[str] = []
    full = {q: _matrix(history, q) for q in names}
    for origin in origins:
        cut = (origin - history.first).days
        for q in names:
            m = full[q]
            model, _, qnotes = _forecast_queue(m[:cut], history.first, 7, hol, q)
            notes.extend(n for n in qnotes if n not in notes)
            naive = _naive_values(m[:cut], 7)
            actual = m[cut:cut + 7]
            for key in (q, "all"):
                a, f, b = per_int[key]
                a.extend(actual.ravel().tolist())
                f.extend(model.ravel().tolist())
                b.extend(naive.ravel().tolist())
            for j in range(7):
                row = BacktestDay(q, origin + timedelta(days=j), origin,
                                  float(actual[j].sum()), float(model[j].sum()),
                                  float(naive[j].sum()))
                out_days.append(row)
    # daily totals: per queue, and for "all" the sum over queues of each day
    all_days: dict[date, list[float]] = {}
    for r in out_days:
        a, f, b = per_day[r.queue]
        a.append(r.actual)
        f.append(r.model)
        b.append(r.naive)
        acc = all_days.setdefault(r.day, [0.0, 0.0, 0.0])
        acc[0] += r.actual
        acc[1] += r.model
        acc[2] += r.naive
    for a_, f_, b_ in all_days.values():
        per_day["all"][0].append(a_)
        per_day["all"][1].append(f_)
        per_day["all"][2].append(b_)

    def score(d: dict[str, tuple[list[float], list[float], list[float]]]
              ) -> dict[str, tuple[float, float]]:
        return {q: (wape(f, a), wape(b, a)) for q, (a, f, b) in d.items()}

    del np_
    return Backtest(origins, score(per_int), score(per_day), tuple(out_days), tuple(notes))
