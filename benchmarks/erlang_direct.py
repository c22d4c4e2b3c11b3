"""The virtual simulator's own figures against the Erlang C/A vectors, run
directly (no reference recursion): one long run per row, fixed seed.

    .venv/bin/python benchmarks/erlang_direct.py [--calls 200000] [--seed 20261123]
        [--only C/1200/65,...] [--core here|compiled]

Prints P(wait), SL, P(abandon) and the mean wait of each row beside the
exact figures, and whether the row is within 0.01 / 3 %.  Heavily loaded
Erlang C rows need millions of calls to settle (tests/test_sim_virtual.py
checks them through the identical textbook sample path instead).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("ACD_SITE"):  # a compiled build (--core compiled): first on the path
    sys.path.insert(0, os.environ["ACD_SITE"])

from acd.compiled import describe, rerun_compiled  # noqa: E402
from acd.loadsim.scenario import erlang_scenario  # noqa: E402
from acd.loadsim.virtual import run_virtual  # noqa: E402

VECTORS = ROOT.parent / "shared" / "erlang-vectors.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--warmup-calls", type=int, default=5_000)
    ap.add_argument("--only", default="",
                    help="rows to run, as MODEL/CALLS_PER_HOUR/AGENTS, comma-separated")
    ap.add_argument("--core", choices=("here", "compiled"), default="here",
                    help="the router this interpreter imports (default), or the mypyc build")
    args = ap.parse_args()
    if args.core == "compiled":
        own = [a for a in sys.argv[1:] if a not in ("--core", "compiled", "--core=compiled")]
        sys.exit(rerun_compiled(__file__, own))
    if not VECTORS.is_file():
        sys.exit(f"no vectors at {VECTORS}")
    with VECTORS.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if args.only:
        wanted = set(args.only.split(","))
        rows = [r for r in rows
                if f"{r['model']}/{r['calls_per_hour']}/{r['agents']}" in wanted]
        if not rows:
            sys.exit(f"--only {args.only}: no such rows (MODEL/CALLS_PER_HOUR/AGENTS)")
    print(f"router: {describe()}; {args.calls:,} calls per row, seed {args.seed}")
    ok_rows = 0
    for row in rows:
        sc = erlang_scenario(row, args.calls)
        t0 = time.perf_counter()
        tot = run_virtual(sc, seed=args.seed, warmup_calls=args.warmup_calls).totals("total", "")
        w_ref = float(row["wait_mean_s"])
        assert tot.pwait is not None and tot.service_level is not None \
            and tot.abandon_rate is not None and tot.mean_wait_s is not None
        ok = (abs(tot.pwait - float(row["pwait"])) <= 0.01
              and abs(tot.service_level - float(row["sl"])) <= 0.01
              and abs(tot.abandon_rate - float(row["pab"])) <= 0.01
              and abs(tot.mean_wait_s / w_ref - 1) <= 0.03)
        ok_rows += ok
        dev = 100 * (tot.mean_wait_s / w_ref - 1)
        print(f"{row['model']} {row['calls_per_hour']:>5}/h {row['agents']:>3} agents  "
              f"pwait {tot.pwait:.4f}/{float(row['pwait']):.4f}  "
              f"sl {tot.service_level:.4f}/{float(row['sl']):.4f}  "
              f"pab {tot.abandon_rate:.4f}/{float(row['pab']):.4f}  "
              f"wait {tot.mean_wait_s:7.2f}/{w_ref:7.2f} ({dev:+.1f} %)"
              f"  {'ok' if ok else 'MISS'}  {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{ok_rows} of {len(rows)} rows within 0.01 (P(wait), SL, P(abandon)) and 3 % (wait)")


if __name__ == "__main__":
    main()
