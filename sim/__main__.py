"""Run the simulator as its own process.

    python -m sim --ami-port 5038 --agi-url agi://127.0.0.1:4573 \\
        --user acd --secret X --agents 1001-1020 --talk-s 3 [--calls N --rate R]

With ``--calls`` it waits for an AMI login (``--wait-login-s``), places the
calls, prints a one-line JSON summary and exits; otherwise it serves until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from sim.config import PhoneBehaviour, SimConfig
from sim.load import CallerScriptMix, run_load, summarize
from sim.pbx import SimPBX


def parse_extensions(spec: str) -> list[str]:
    """``1001-1003,1010`` -> ['1001', '1002', '1003', '1010']."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep:
            width = len(lo)
            out.extend(str(n).zfill(width) for n in range(int(lo), int(hi) + 1))
        else:
            out.append(part)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--ami-host", default="127.0.0.1")
    p.add_argument("--ami-port", type=int, default=5038)
    p.add_argument("--agi-url", default="agi://127.0.0.1:4573", help="value of ${ACD_AGI}")
    p.add_argument("--agi-standby-url", default=None,
                   help="value of ${ACD_AGI_STANDBY} (acd-recover's second engine); "
                        "default: the same as --agi-url")
    p.add_argument("--server", default="pbx1",
                   help="${ACD_SERVER}: this simulated Asterisk's name in acd.yaml")
    p.add_argument("--user", default="acd")
    p.add_argument("--secret", default="acdsecret")
    p.add_argument("--agents", default="1001-1010", help="extensions, e.g. 1001-1020,1050")
    p.add_argument("--answer-after-s", type=float, default=1.0)
    p.add_argument("--talk-s", type=float, default=5.0)
    p.add_argument("--no-answer", default="", help="extensions that never answer")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--prompt-s", type=float, default=1.0)
    p.add_argument("--calls", type=int, default=0, help="place N calls, print a summary, exit")
    p.add_argument("--rate", type=float, default=1.0, help="calls per simulated second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience-s", type=float, nargs=2, metavar=("MIN", "MAX"),
                   default=(30.0, 180.0))
    p.add_argument("--wait-login-s", type=float, default=30.0,
                   help="with --calls: wait this long for an AMI login first")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


async def _main(args: argparse.Namespace) -> int:
    cfg = SimConfig(ami_host=args.ami_host, ami_port=args.ami_port, users={args.user: args.secret},
                    agi_url=args.agi_url, agi_standby_url=args.agi_standby_url,
                    server_name=args.server,
                    time_scale=args.time_scale, prompt_s=args.prompt_s)
    pbx = SimPBX(cfg)
    no_answer = set(parse_extensions(args.no_answer))
    for ext in parse_extensions(args.agents):
        pbx.add_phone(ext, PhoneBehaviour(answer_after_s=args.answer_after_s,
                                          talk_s=args.talk_s, answers=ext not in no_answer))
    await pbx.start()
    print(f"sim: AMI on {cfg.ami_host}:{pbx.ami_port}, FastAGI to {cfg.agi_url}",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if args.calls > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.wait_login_s):
                    await pbx.ami.logged_in.wait()
            mix = CallerScriptMix(patience_s=tuple(args.patience_s))
            load = asyncio.ensure_future(run_load(pbx, args.calls, args.rate, mix, args.seed))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not load.done():  # a signal: no summary of a load cut short
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
                print("sim: stopped before the load ended", file=sys.stderr, flush=True)
                return 1
            results = await load
            print(json.dumps(summarize(results), ensure_ascii=False), flush=True)
        else:
            await stop.wait()
    finally:
        await pbx.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
