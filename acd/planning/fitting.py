"""Fitting what a center's call records do not say: handle time, wrap-up and
patience per queue, for a replay (:mod:`acd.loadsim.replay`).

Handle time (and wrap-up, where the export has it) comes from answered calls:
a lognormal by maximum likelihood (mu, sigma of the logs) and the empirical
distribution itself.  Draws come from the empirical distribution by default
(:data:`MIN_EMPIRICAL` observations or more): with hundreds of calls per
queue it reproduces the real shape (several kinds of calls mixed, rounding,
a long tail) that a lognormal only approximates; the lognormal is used below
that, and is printed for reference.

Patience is censored: an abandoned call shows its patience (the time it hung
up), an answered call only that its patience was longer than its wait
(right-censored).  The mean of the abandonment times alone is far too short
(only the impatient are seen), so patience gets:

- the Kaplan-Meier (product-limit) estimate of its survival function
  (statsmodels ``SurvfuncRight``), while :data:`MIN_AT_RISK` calls are still
  at risk;
- censored maximum-likelihood fits (``scipy.stats`` with ``CensoredData``)
  of an exponential, a lognormal and a Weibull, the best by AIC kept; it
  gives the mean and the tail beyond the last observed abandonment, where
  Kaplan-Meier says nothing;
- a conditional draw: patience given patience > w.  An answered call of the
  replay gets a patience longer than the wait it actually had (drawing it
  unconditionally would make some of them hang up before the time they were
  in fact answered).

Draws follow Kaplan-Meier within the observed range, the parametric fit
beyond it (given patience > the last Kaplan-Meier time).  Pure
computation (numpy, scipy, statsmodels: ``acd[planning]``, imported here
only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from acd.planning.records import ABANDONED, ANSWERED, CenterRecord

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

__all__ = ["MIN_EMPIRICAL", "MIN_EVENTS", "DurationFit", "PatienceFit", "QueueFit",
           "RecordFits", "fit_duration", "fit_patience", "fit_records", "planning_libs"]

#: a handle-time (or wrap-up) sample this large is drawn from as it is
MIN_EMPIRICAL = 50
#: a queue with fewer abandonments gets the patience fitted on all queues
MIN_EVENTS = 20
#: Kaplan-Meier is followed while this many calls are at risk, the parametric
#: fit beyond (a handful at risk make its last steps noise)
MIN_AT_RISK = 30
#: uncensored times are taken as at least this (a log of 0 has no likelihood)
_FLOOR_S = 0.1
_MODELS = ("expon", "lognorm", "weibull_min")
_MODEL_NAMES = {"expon": "exponential", "lognorm": "lognormal", "weibull_min": "Weibull"}


def planning_libs() -> tuple[Any, Any]:
    """(numpy, scipy.stats), or ImportError saying which extra to install."""
    try:
        import numpy
        from scipy import stats
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ImportError(f"fitting call records needs numpy and scipy ({exc.name} is "
                          "missing): pip install 'acd[planning]'") from None
    return numpy, stats


# ------------------------------------------------------------ handle, wrap


@dataclass(frozen=True, eq=False)
class DurationFit:
    """A duration sample (seconds): its lognormal fit and the sample itself."""

    n: int
    mean: float
    sd: float
    mu: float  # lognormal: mean of the logs (positive values)
    sigma: float  # lognormal: sd of the logs
    values: NDArray[np.float64]
    method: str  # "empirical" or "lognormal": what draw() uses

    def draw(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        if self.method == "empirical":
            return rng.choice(self.values, size=size, replace=True)
        return rng.lognormal(self.mu, self.sigma, size=size)

    @property
    def lognormal_mean(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2.0)

    def describe(self) -> str:
        return (f"n {self.n:,}, mean {self.mean:.1f} s, sd {self.sd:.1f} s; lognormal "
                f"mu {self.mu:.3f} sigma {self.sigma:.3f} (mean {self.lognormal_mean:.1f} s); "
                f"drawn from the {self.method}")


def fit_duration(values: Iterable[float], method: str | None = None) -> DurationFit | None:
    """Fit a duration sample; None when it is empty.  ``method``: "empirical"
    or "lognormal" (default: empirical from :data:`MIN_EMPIRICAL` values on)."""
    np, _ = planning_libs()
    x = np.asarray([float(v) for v in values], dtype=float)
    if x.size == 0:
        return None
    pos = x[x > 0]
    logs = np.log(pos) if pos.size else np.zeros(1)
    mu, sigma = float(logs.mean()), float(logs.std())  # MLE: ddof 0
    if method is None:
        method = "empirical" if x.size >= MIN_EMPIRICAL else "lognormal"
    if method not in ("empirical", "lognormal"):
        raise ValueError(f"method: {method!r} is not empirical or lognormal")
    return DurationFit(int(x.size), float(x.mean()), float(x.std()), mu, sigma, x, method)


# ---------------------------------------------------------------- patience


@dataclass(frozen=True, eq=False)
class PatienceFit:
    """Patience from censored observations: Kaplan-Meier and the best of the
    censored maximum-likelihood fits."""

    n: int  # observations
    events: int  # abandoned calls: patience seen
    censored: int  # answered calls: patience > wait
    naive_mean: float  # mean of the abandonment times alone (biased short)
    #: Kaplan-Meier: event times (while MIN_AT_RISK calls are at risk) and S(t) just after
    km_times: NDArray[np.float64]
    km_surv: NDArray[np.float64]
    model: str  # scipy.stats name of the kept fit
    params: tuple[float, ...]  # its parameters (loc fixed at 0)
    aic: dict[str, float] = field(default_factory=dict)  # every model tried
    method: str = "km"  # what draws use: "km" (with the parametric tail) or "model"

    @property
    def censored_share(self) -> float:
        return self.censored / self.n if self.n else 0.0

    def frozen(self) -> Any:
        _, stats = planning_libs()
        return getattr(stats, self.model)(*self.params)

    @property
    def mean(self) -> float:
        """Mean patience of the parametric fit."""
        return float(self.frozen().mean())

    def km_sf(self, t: float) -> float:
        """Kaplan-Meier S(t) (the last value beyond the last event time)."""
        np, _ = planning_libs()
        i = int(np.searchsorted(self.km_times, t, side="right")) - 1
        return 1.0 if i < 0 else float(self.km_surv[i])

    @property
    def km_median(self) -> float | None:
        np, _ = planning_libs()
        below = np.nonzero(self.km_surv <= 0.5)[0]
        return float(self.km_times[below[0]]) if below.size else None

    def draw_given(self, waits: Sequence[float] | NDArray[np.float64],
                   rng: np.random.Generator) -> NDArray[np.float64]:
        """One patience per wait w, drawn from the distribution of patience
        given patience > w (w = 0: unconditional)."""
        np, _ = planning_libs()
        w = np.asarray(waits, dtype=float)
        u = 1.0 - rng.random(w.size)  # (0, 1]
        dist = self.frozen()
        if self.method == "model" or self.km_times.size == 0:
            return self._tail(dist, w, u)
        times, surv = self.km_times, self.km_surv
        idx = np.searchsorted(times, w, side="right") - 1
        s_w = np.where(idx >= 0, surv[np.maximum(idx, 0)], 1.0)
        target = s_w * u
        # first event time whose S is at or below the target (S non-increasing)
        j = np.searchsorted(-surv, -target, side="left")
        out = np.empty(w.size)
        inside = j < times.size
        out[inside] = times[j[inside]]
        tail = ~inside
        if tail.any():  # beyond the last abandonment: the parametric fit
            t0 = np.maximum(w[tail], times[-1])
            last = surv[-1] if surv[-1] > 0 else 1.0
            out[tail] = self._tail(dist, t0, np.clip(target[tail] / last, 1e-300, 1.0))
        return cast("FloatArray", out)

    @staticmethod
    def _tail(dist: Any, t0: NDArray[np.float64], v: NDArray[np.float64]
              ) -> NDArray[np.float64]:
        """Draws from ``dist`` given > t0, by inversion (v uniform in (0, 1])."""
        np, _ = planning_libs()
        s0 = dist.sf(t0)
        x = dist.isf(s0 * v)
        bad = ~np.isfinite(x) | (x <= t0) | (s0 <= 1e-300)
        if bad.any():  # far in the tail: no resolution left; just past t0
            x[bad] = t0[bad] * 1.001 + 1.0
        return cast("FloatArray", np.asarray(x, dtype=float))

    def describe(self) -> str:
        name = _MODEL_NAMES.get(self.model, self.model)
        km_med = self.km_median
        aics = ", ".join(f"{_MODEL_NAMES[k]} {v:,.1f}" for k, v in sorted(
            self.aic.items(), key=lambda kv: kv[1]))
        return (f"{self.events:,} abandoned (seen), {self.censored:,} answered (censored, "
                f"{100 * self.censored_share:.0f} %); censored ML: {name} "
                f"{_params_text(self.model, self.params)}, mean {self.mean:.1f} s "
                f"(AIC {aics}); Kaplan-Meier median "
                f"{'beyond the data' if km_med is None else f'{km_med:.1f} s'}; "
                f"naive mean of abandonments {self.naive_mean:.1f} s; draws: "
                f"{'Kaplan-Meier, the fit beyond' if self.method == 'km' else name}")


def _params_text(model: str, params: tuple[float, ...]) -> str:
    if model == "expon":
        return f"(scale {params[1]:.1f} s)"
    if model == "lognorm":
        return f"(median {params[2]:.1f} s, sigma {params[0]:.3f})"
    return f"(shape {params[0]:.3f}, scale {params[2]:.1f} s)"


def fit_patience(abandoned: Iterable[float], answered_waits: Iterable[float],
                 method: str = "km") -> PatienceFit | None:
    """Patience from abandonment times (seen) and answered calls' waits
    (censored: patience > wait); None without any abandonment."""
    np, stats = planning_libs()
    try:
        from statsmodels.duration.survfunc import SurvfuncRight
    except ImportError as exc:  # pragma: no cover
        raise ImportError("Kaplan-Meier needs statsmodels: pip install 'acd[planning]'"
                          ) from exc
    if method not in ("km", "model"):
        raise ValueError(f"method: {method!r} is not km or model")
    seen = np.maximum(np.asarray(list(abandoned), dtype=float), _FLOOR_S)
    right_all = np.asarray(list(answered_waits), dtype=float)
    if seen.size == 0:
        return None
    right = right_all[right_all > 0]  # a wait of 0 says nothing about patience
    times = np.concatenate([seen, right])
    status = np.concatenate([np.ones(seen.size), np.zeros(right.size)])
    km = SurvfuncRight(times, status)
    km_times = np.asarray(km.surv_times, dtype=float)
    km_surv = np.asarray(km.surv_prob, dtype=float)
    keep = np.asarray(km.n_risk) >= MIN_AT_RISK
    km_times, km_surv = km_times[keep], km_surv[keep]
    data = stats.CensoredData(uncensored=seen, right=right) if right.size else seen
    best: tuple[float, str, tuple[float, ...]] | None = None
    aic: dict[str, float] = {}
    for name in _MODELS:
        dist = getattr(stats, name)
        try:
            params = tuple(float(p) for p in dist.fit(data, floc=0))
        except (ValueError, RuntimeError, FloatingPointError):
            continue
        frozen = dist(*params)
        ll = float(np.sum(frozen.logpdf(seen)) + (np.sum(frozen.logsf(right))
                                                   if right.size else 0.0))
        if not math.isfinite(ll):
            continue
        k = len(params) - 1  # loc fixed
        aic[name] = 2 * k - 2 * ll
        if best is None or aic[name] < best[0]:
            best = (aic[name], name, params)
    if best is None:  # pragma: no cover - exponential always fits
        raise ValueError("no distribution fits the patience data")
    return PatienceFit(int(times.size) + int(right_all.size - right.size), int(seen.size),
                       int(right_all.size), float(seen.mean()),
                       km_times, km_surv, best[1], best[2], aic, method)


# ---------------------------------------------------------------- per queue


@dataclass(frozen=True, eq=False)
class QueueFit:
    queue: str
    calls: int
    answered: int
    abandoned: int
    handle: DurationFit | None
    wrap: DurationFit | None  # None: the export has no wrap-up for this queue
    patience: PatienceFit | None  # None: nobody abandoned (patience unknown, unbounded)
    patience_from: str = "queue"  # "queue", or "all queues" (too few abandonments)
    #: answered calls whose wait is unknown: counted in ``answered`` but not in
    #: the patience fit (nothing is known about their patience)
    unknown_wait: int = 0


@dataclass(frozen=True, eq=False)
class RecordFits:
    queues: dict[str, QueueFit]
    #: the patience fitted on all queues; None when no queue needed it (every
    #: queue with abandonments had enough) or nobody abandoned
    pooled_patience: PatienceFit | None

    @property
    def unknown_waits(self) -> int:
        """Answered calls without a wait, over all queues (not in the patience fit)."""
        return sum(f.unknown_wait for f in self.queues.values())

    def describe(self) -> list[str]:
        lines: list[str] = []
        for q, f in self.queues.items():
            lines.append(f"{q}: {f.calls:,} calls, {f.answered:,} answered, {f.abandoned:,} "
                         "abandoned")
            lines.append(f"  handle: {f.handle.describe() if f.handle else 'no answered call'}")
            lines.append(f"  wrap-up: {f.wrap.describe() if f.wrap else 'not in the records'}")
            if f.patience is None:
                lines.append("  patience: nobody abandoned (callers never hang up)")
            else:
                src = "" if f.patience_from == "queue" else \
                    f" [fewer than {MIN_EVENTS} abandonments: fitted on all queues]"
                lines.append(f"  patience: {f.patience.describe()}{src}")
            if f.unknown_wait:
                lines.append(f"  {f.unknown_wait:,} answered call(s) without a wait: not in "
                             "the patience fit")
        return lines


def fit_records(records: Iterable[CenterRecord], *, handle_method: str | None = None,
                patience_method: str = "km", min_events: int = MIN_EVENTS) -> RecordFits:
    """Per queue: handle time and wrap-up from answered calls, patience from
    abandoned (seen) and answered (censored at their wait) calls."""
    handles: dict[str, list[float]] = {}
    wraps: dict[str, list[float]] = {}
    seen: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    unknown: dict[str, int] = {}  # answered with no wait: censored nowhere
    for r in records:
        handles.setdefault(r.queue, [])
        wraps.setdefault(r.queue, [])
        seen.setdefault(r.queue, [])
        waits.setdefault(r.queue, [])
        if r.outcome == ANSWERED:
            if r.handle_s is not None:
                handles[r.queue].append(r.handle_s)
            if r.wrap_s is not None:
                wraps[r.queue].append(r.wrap_s)
            if r.wait_s is None:
                unknown[r.queue] = unknown.get(r.queue, 0) + 1
            else:
                waits[r.queue].append(r.wait_s)
        elif r.outcome == ABANDONED:
            seen[r.queue].append(r.waited_s)
    pooled: PatienceFit | None = None
    if any(0 < len(v) < min_events for v in seen.values()):  # only when a queue needs it
        pooled = fit_patience([x for v in seen.values() for x in v],
                              [x for v in waits.values() for x in v], patience_method)
    out: dict[str, QueueFit] = {}
    for q in sorted(handles):
        if len(seen[q]) >= min_events:
            pat, src = fit_patience(seen[q], waits[q], patience_method), "queue"
        elif seen[q]:
            pat, src = pooled, "all queues"
        else:
            pat, src = None, "queue"
        n_unknown = unknown.get(q, 0)
        answered = len(waits[q]) + n_unknown
        out[q] = QueueFit(q, answered + len(seen[q]), answered, len(seen[q]),
                          fit_duration(handles[q], handle_method),
                          fit_duration(wraps[q], handle_method), pat, src, n_unknown)
    return RecordFits(out, pooled)
