"""Replaying a generated month from its call records alone, against the truth.

    .venv/bin/python benchmarks/replay_month.py [--days 28] [--calls-per-day 1100]
        [--seed 1] [--replay-seed 0] [--keep DIR]

A month with a known truth (acd.loadsim.month: three queues with their own
handle time, wrap-up and patience, priorities 0-2, 24-hour operation with
shifts across midnight, breaks and lunches, random not-ready episodes,
ring-no-answer) is played by the virtual simulator; its call records
(answered: wait, talk, wrap-up; abandoned: the time to hang up) and agent
state records are written as a center would export them, and the month is
replayed from those files alone: the roster from the state records, the
unknowns (patience of answered calls, handle time and wrap-up of abandoned
ones) fitted.  Printed: abandonment and served within 20 s for the month,
truth against replay, per queue; the share of 30-minute intervals within 5
points; the worst intervals; the fitted patience against the true one.
tests/test_replay_month.py asserts the figures (2 points for the month,
5 points in at least 80 % of the intervals).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from acd.loadsim.month import MONTH_QUEUES, replay_month


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--calls-per-day", type=float, default=1100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replay-seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None,
                    help="write records.csv and states.csv here (default: a temporary folder)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        mr = replay_month(folder, a.seed, a.days, a.calls_per_day, replay_seed=a.replay_seed)
    cmp = mr.comparison
    m = mr.month
    print(f"{a.days} days from {m.start:%Y-%m-%d (%A)}: {len(m.records):,} call records, "
          f"{len(m.states):,} agent state records, {len(m.scenario.agents)} agents")
    print("wall: " + ", ".join(f"{k} {v:.1f} s" for k, v in mr.seconds.items()))
    for n in mr.notes:
        print(f"note: {n}")
    print(f"ring-no-answer estimated from the state records: {mr.ring_no_answer:.4f} "
          f"(truth {m.scenario.ring_no_answer:.4f})")
    print()
    print(f"{'':14} {'offered':>8} {'aband. truth':>13} {'replay':>7} {'err':>6} "
          f"{'SL20 truth':>11} {'replay':>7} {'err':>6}")
    rows = [(f"queue {q}", r) for q, r in cmp.queues.items()] + [("month", cmp.total)]
    for label, r in rows:
        ab, sl, _ = r.errors()
        print(f"{label:14} {r.records.offered:8,} {r.records.abandon_pct:12.2f}% "
              f"{r.replay.abandon_pct:6.2f}% {ab:+6.2f} {r.records.sl_pct:10.2f}% "
              f"{r.replay.sl_pct:6.2f}% {sl:+6.2f}")
    s = cmp.summary(5.0)
    print()
    print(f"30-min intervals with calls: {s['intervals']:,}; within 5 points: abandonment "
          f"{100 * s['share_within_abandon']:.1f} %, served within 20 s "
          f"{100 * s['share_within_sl']:.1f} %, both {100 * s['share_within_both']:.1f} %")
    print("worst intervals (error in points, replay - truth):")
    for r in cmp.worst(8):
        ab, sl, _ = r.errors()
        print(f"  {r.start:%a %Y-%m-%d %H:%M}  {r.records.offered:4} calls  "
              f"abandoned {r.records.abandon_pct:5.1f}% -> {r.replay.abandon_pct:5.1f}% "
              f"({ab:+5.1f})  SL {r.records.sl_pct:5.1f}% -> {r.replay.sl_pct:5.1f}% "
              f"({sl:+5.1f})")
    print()
    print("patience, fitted from the records (censored) against the truth:")
    for q, (_, _, _, spec) in MONTH_QUEUES.items():
        f = mr.fits.queues[q].patience
        print(f"  {q}: truth {spec}; {f.describe() if f else 'no abandonment'}")


if __name__ == "__main__":
    main()
