"""``acd serve`` (the engine against Asterisk) and ``acd demo`` (the engine
against the PBX simulator).

Exit codes of ``acd serve``: 2 the configuration or the flow is wrong (the
control API's token file too: readable by others, say), 3
Asterisk refused the AMI login, 4 Asterisk cannot be reached, 5 another
operating-system error (a port in use, ...), 6 the database cannot hold
the leadership (hot standby: an unsupported or unknown database).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from acd.adapters.ami import AmiActionTimeout, AmiAuthError, AmiConnectError
from acd.adapters.leader import LeadershipError
from acd.api.auth import ApiSetupError
from acd.cli.common import console, err_console, shown
from acd.ivr.load import load_flow
from acd.ivr.parse import FlowError
from acd.logs import SafeFormatter
from acd.runtime.settings import ConfigError, load_config


def _setup_logging(verbose: int) -> None:
    """Log to standard error, one printable line per record (control
    characters and line breaks from outside escaped; acd.logs.SafeFormatter).
    ``verbose`` raises the level of the engine's own loggers (``acd``, and
    ``sim`` for the demo) only: the libraries' stay at WARNING, as at
    DEBUG they write what goes over the wire (SQL parameters, AMI and MQTT
    messages: callers' numbers) unmasked."""
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in ("acd", "sim"):
        logging.getLogger(name).setLevel(level)


# ------------------------------------------------------------------ serve


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="acd.yaml", show_default=True, help="Engine configuration (YAML).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def serve(config_path: Path, verbose: int) -> None:
    """Run the engine: FastAGI server, AMI client and database.

    Of several `acd serve` sharing a database, one leads and drives Asterisk;
    the others stand by and take over when it dies (docs/continuity.md).
    SIGTERM stops gracefully: no new calls, the calls in progress left to
    the next engine, records flushed.  Exits non-zero with a clear message if
    the configuration or the flow is wrong, Asterisk cannot be reached, or
    it refuses the AMI login.
    """
    _setup_logging(verbose + 1)
    from acd.runtime.serve import serve as serve_engine

    try:
        config = load_config(config_path)
    except (ConfigError, FlowError) as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)

    def up(engine: Any) -> None:
        console.print(f"acd engine serving: FastAGI {config.agi_host}:{engine.agi.port}, "
                      f"AMI {config.ami.host}:{config.ami.port}, flow {config.flow.file}")

    async def run() -> None:
        await serve_engine(config, up)

    try:
        asyncio.run(run())
    except ApiSetupError as exc:  # the control API's token file or TLS files
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except AmiAuthError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(3)
    except AmiConnectError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(4)
    except AmiActionTimeout as exc:  # reached, logged in, then silent: as good as unreachable
        err_console.print(f"[red]error:[/red] Asterisk stopped answering AMI actions while "
                          f"the engine started: {exc}")
        sys.exit(4)
    except LeadershipError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(6)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(5)


# ------------------------------------------------------------------- demo


@click.command()
@click.option("--calls", default=200, show_default=True, help="How many calls to place.")
@click.option("--agents", default=20, show_default=True, help="How many agents (phones).")
@click.option("--rate", default=20.0, show_default=True, help="Call arrivals per second.")
@click.option("--talk", default=2.0, show_default=True, help="Mean talk time, seconds.")
@click.option("--seed", default=1, show_default=True, help="Random seed for the caller mix.")
@click.option("--db", default="sqlite+aiosqlite:///acd-demo.db", show_default=True,
              help="Database for call records (a fresh table each run).")
@click.option("--flow", "flow_path", default="ivr_flows/basic.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("-v", "--verbose", count=True)
def demo(calls: int, agents: int, rate: float, talk: float, seed: int, db: str,
         flow_path: Path, verbose: int) -> None:
    """Engine plus the PBX simulator over real AMI and FastAGI sockets:
    place CALLS simulated callers, then print what happened to them."""
    _setup_logging(verbose)
    from acd.loadsim.demo import DemoOptions, run_demo

    try:
        flow = load_flow(flow_path)
    except FlowError as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)
    opts = DemoOptions(calls=calls, agents=agents, rate=rate, talk_s=talk, seed=seed,
                       database_url=db, flow=flow)
    result = asyncio.run(run_demo(opts, console))
    s = result.summary
    table = Table(title="acd demo", caption=f"{s.total} calls, {agents} agents, {rate:g}/s")
    table.add_column("outcome")
    table.add_column("calls", justify="right")
    table.add_column("share", justify="right")
    for label, n in (("answered", s.answered), ("abandoned", s.abandoned),
                     ("ended in IVR", s.ivr)):
        table.add_row(label, str(n), f"{100 * n / s.total:.1f} %" if s.total else "-")
    console.print(table)
    mean_wait = f"{s.mean_wait_s:.2f} s" if s.mean_wait_s is not None else "-"
    max_wait = f"{s.max_wait_s:.2f} s" if s.max_wait_s is not None else "-"
    mean_talk = f"{s.mean_talk_s:.2f} s" if s.mean_talk_s is not None else "-"
    console.print(f"mean wait {mean_wait}  (longest {max_wait}), mean talk {mean_talk}; "
                  f"{result.elapsed_s:.1f} s wall, CPU {result.cpu_s:.2f} s (engine and simulator)")
    if result.problems:
        for p in result.problems:
            err_console.print(f"[red]problem:[/red] {p}")
        sys.exit(1)
