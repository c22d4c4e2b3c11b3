"""The call forecast's rolling-origin backtest on a generated year with known
seasonality, beside the same-weekday naive forecast and the noise floor.

    .venv/bin/python benchmarks/forecast_backtest.py [--days 364] [--interval 30]
        [--weeks 8] [--seed 1]

The demand (:mod:`acd.planning.synthetic`): two queues (billing 1,200 and
tech 500 calls a normal day before the weekday factor), a weekly pattern, a
double intra-day peak on working days and one on weekends, a +10 % a year
trend, a ±15 % yearly wave, holidays at 35 % of a normal day with the
weekend's profile, Poisson counts.  For each of the last ``--weeks`` weeks
the model (:mod:`acd.planning.forecast`) is fitted on the days before and
forecasts the 7 days from it; the same-weekday naive forecast is each
interval as it was 7 days before.  WAPE = Σ|forecast − actual| / Σ actual,
over every interval (per interval) and over the daily totals (per day).
"oracle" is the WAPE of the expectations the counts were drawn around: the
Poisson noise no forecast can remove.  Exit 1 if the model does not beat the
naive forecast on both measures.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as clock


def main() -> int:
    from acd.planning.forecast import backtest, wape
    from acd.planning.synthetic import synthetic_demand

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=364)
    ap.add_argument("--interval", type=int, default=30, choices=(15, 30, 60))
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    t0 = time.perf_counter()
    demand = synthetic_demand(date(2025, 1, 6), args.days, args.interval, seed=args.seed)
    t1 = time.perf_counter()
    bt = backtest(demand.history, args.weeks, holidays=demand.holidays)
    t2 = time.perf_counter()
    h = demand.history
    tested = [o + timedelta(days=j) for o in bt.origins for j in range(7)]
    in_test = [d for d in tested if d in demand.holidays]
    print(f"generated {h.first} .. {h.last} ({h.days} days, {args.interval}-minute intervals, "
          f"seed {args.seed}; {len(demand.holidays)} holidays, {len(in_test)} in the tested "
          f"weeks: {', '.join(map(str, in_test)) or 'none'})")
    print(f"backtest: {len(bt.origins)} weekly origins {bt.origins[0]} .. {bt.origins[-1]}, "
          f"7 days each; generation {t1 - t0:.1f} s, backtest {t2 - t1:.1f} s")

    # the noise floor: the expectations themselves as the forecast
    oracle_int: dict[str, tuple[list[float], list[float]]] = {}
    oracle_day: dict[str, tuple[list[float], list[float]]] = {}
    per_day_all: dict[date, list[float]] = {}
    step = timedelta(minutes=args.interval)
    for q, per in h.counts.items():
        fi, ai = oracle_int.setdefault(q, ([], []))
        fa, aa = oracle_int.setdefault("all", ([], []))
        fd, ad = oracle_day.setdefault(q, ([], []))
        for d in tested:
            mu = demand.expected[q][(d - h.first).days]
            base = datetime.combine(d, clock())
            got = [per.get(base + k * step, 0.0) for k in range(len(mu))]
            fi.extend(mu)
            ai.extend(got)
            fa.extend(mu)
            aa.extend(got)
            fd.append(sum(mu))
            ad.append(sum(got))
            acc = per_day_all.setdefault(d, [0.0, 0.0])
            acc[0] += sum(mu)
            acc[1] += sum(got)
    oracle_day["all"] = ([v[0] for v in per_day_all.values()],
                         [v[1] for v in per_day_all.values()])

    print()
    print(f"{'queue':<10} {'WAPE per interval':>34}   {'WAPE per day':>34}")
    print(f"{'':<10} {'model':>10} {'naive':>10} {'oracle':>10}   "
          f"{'model':>10} {'naive':>10} {'oracle':>10}")
    ok = True
    for q in [*sorted(k for k in bt.interval if k != "all"), "all"]:
        mi, ni = bt.interval[q]
        md, nd = bt.day[q]
        oi = wape(*oracle_int[q])
        od = wape(*oracle_day[q])
        ok = ok and mi < ni and md < nd
        print(f"{q:<10} {100 * mi:>9.1f}% {100 * ni:>9.1f}% {100 * oi:>9.1f}%   "
              f"{100 * md:>9.1f}% {100 * nd:>9.1f}% {100 * od:>9.1f}%")
    for note in bt.notes:
        print(f"note: {note}")
    print()
    print("the model beats the same-weekday naive forecast on both measures" if ok
          else "the model does NOT beat the same-weekday naive forecast on both measures")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
