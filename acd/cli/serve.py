"""``acd serve`` (the engine against Asterisk) and ``acd demo`` (the engine
against the PBX simulator).

Exit codes of ``acd serve``: 2 the configuration or the flow is wrong (the
control API's token file too: readable by others, say; or the database's
driver is not installed), 3
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
from acd.adapters.storage import MissingDriver, require_driver
from acd.api.auth import ApiSetupError
from acd.cli.common import DEMO_DB_FILE, console, err_console, shown
from acd.ivr.checks import check_flow
from acd.ivr.load import load_flow
from acd.ivr.parse import FlowError
from acd.logs import SafeFormatter
from acd.runtime.settings import ConfigError, EngineConfig, load_config

log = logging.getLogger(__name__)

#: the engine's own loggers (``sim``: the PBX simulator of ``acd demo``)
OURS = ("acd", "sim")
#: the libraries the engine runs on: quiet (WARNING) below -vvv, since at
#: DEBUG they write what goes over the wire as it is (SQL parameters, AMI
#: and MQTT messages: callers' numbers and names), unmasked
LIBRARIES = ("aiosqlite", "sqlalchemy", "asyncpg", "asyncio", "panoramisk", "aiomqtt",
             "aiohttp")
#: lines of our own that say what the engine is doing as a whole, shown at
#: every level: whether it leads or stands by (hot standby), and when it
#: takes over or gives the leadership back
NOTICES = ("acd.adapters.leader",)
VERBOSE_HELP = ("Logging: without -v, warnings and errors only; -v the engine's INFO (its "
                "life: links, leadership, reloads, stop); -vv its DEBUG (every "
                "decision); -vvv DEBUG of the libraries too (SQL, AMI, MQTT: "
                "callers' data unmasked).")


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`_setup_logging` installs (found again and replaced
    by a later call, as in tests that run several commands)."""


def _setup_logging(verbose: int) -> None:
    """Log to standard error, one printable line per record (control
    characters and line breaks from outside escaped; acd.logs.SafeFormatter).

    ====  ==================================================================
    0     WARNING for every logger (the leadership's INFO lines too:
          :data:`NOTICES`); what `acd serve` listens on is printed by the
          command itself
    -v    the engine's own loggers (:data:`OURS`) at INFO
    -vv   the engine's own loggers at DEBUG
    -vvv  every logger at DEBUG, the libraries' too (:data:`LIBRARIES`);
          they log SQL parameters, AMI and MQTT messages unmasked
          (``logging.show_caller_data`` masks only the engine's lines):
          said at WARNING when it starts
    ====  ==================================================================
    """
    ours = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    everything = verbose >= 3
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    handler = _CliHandler()  # standard error as it is now
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if everything else logging.WARNING)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if everything else logging.WARNING)
    for name in OURS:
        logging.getLogger(name).setLevel(ours)
    for name in NOTICES:
        logging.getLogger(name).setLevel(min(ours, logging.INFO))
    if everything:
        log.warning(
            "-vvv: the libraries log at DEBUG too (%s): SQL parameters, AMI and MQTT "
            "messages with callers' numbers and names, unmasked", ", ".join(LIBRARIES))


# ------------------------------------------------------------------ serve


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="acd.yaml", show_default=True, help="Engine configuration (YAML).")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
def serve(config_path: Path, verbose: int) -> None:
    """Run the engine: FastAGI server, AMI client and database.

    Of several `acd serve` sharing a database, one leads and drives Asterisk;
    the others stand by and take over when it dies (docs/continuity.md).
    SIGTERM stops gracefully: no new calls, the calls in progress left to
    the next engine, records flushed.  Exits non-zero with a clear message if
    the configuration or the flow is wrong, Asterisk cannot be reached, or
    it refuses the AMI login.

    Standard error: where the engine listens, once it is up, and warnings
    and errors; -v adds the engine's INFO lines, -vv its DEBUG, -vvv the
    libraries' DEBUG (docs/operations.md, "Logs").
    """
    _setup_logging(verbose)
    from acd.runtime.serve import serve as serve_engine

    try:
        config = load_config(config_path)
    except (ConfigError, FlowError) as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)
    try:  # before the leadership or the engine would need it
        require_driver(config.database_url)
    except MissingDriver as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)
    for problem in check_flow(config.flow, config.known_queues):  # the errors refused it
        log.warning("flow: %s", problem)  # as `acd flow validate` says them

    def up(engine: Any) -> None:
        for line in started(engine, config):
            err_console.print(shown(line), soft_wrap=True, highlight=False)

    async def run() -> None:
        await serve_engine(config, up)

    try:
        asyncio.run(run())
    except ApiSetupError as exc:  # the control API's token file or TLS files
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except MissingDriver as exc:  # the database's driver (asyncpg) is not installed
        err_console.print(f"[red]error:[/red] {shown(exc)}")
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
    err_console.print("acd engine stopped")


def started(engine: Any, config: EngineConfig) -> list[str]:
    """What `acd serve` prints once the engine is up, at every log level:
    where it listens and what it serves (the engine's own INFO line says the
    same for -v)."""
    pbxs = ", ".join(f"{s.name} {s.ami.config.host}:{s.ami.config.port}"
                     + ("" if s.ami.connected else " (not reached yet)")
                     for s in engine.servers.values())
    agents = sum(1 for _ in engine.core.agents())
    lines = [f"acd engine serving: FastAGI {config.agi_host}:{engine.agi.port}, AMI {pbxs}, "
             f"{agents} agents, flow {config.flow.file}"]
    api = config.api
    if engine.api.port is not None:
        lines.append(f"control API on {'https' if api.tls is not None else 'http'}://"
                     f"{api.host}:{engine.api.port} (tokens: {api.token_file})")
    if engine.api.public_port is not None:
        lines.append(f"SMS link listener on http://{api.public_host}:{engine.api.public_port}")
    if engine.counters.calls_restored:
        lines.append(f"calls taken over from an earlier engine: {engine.restored}")
    return lines


# ------------------------------------------------------------------- demo


#: ``acd demo``'s flow when --flow is not given (relative: the project folder)
DEMO_FLOW = Path("ivr_flows") / "basic.yaml"


def demo_flow_file(given: Path | None) -> Path:
    """The flow file ``acd demo`` runs: ``--flow``, else :data:`DEMO_FLOW`
    in the current folder, else the sample beside the package's source (an
    editable install from a checkout: <checkout>/ivr_flows/basic.yaml),
    said on the console.  Exit 2 if there is none."""
    if given is not None:
        return given
    if DEMO_FLOW.is_file():
        return DEMO_FLOW
    import acd

    beside = Path(acd.__file__).resolve().parent.parent / DEMO_FLOW
    if beside.is_file():
        console.print(f"flow: {shown(beside)} (no {DEMO_FLOW} in this folder)", soft_wrap=True)
        return beside
    err_console.print(f"[red]error:[/red] no {DEMO_FLOW} in {shown(Path.cwd())}: run acd demo "
                      f"from the project folder, or pass --flow PATH (a flow file)")
    sys.exit(2)


@click.command()
@click.option("--calls", default=200, show_default=True, help="How many calls to place.")
@click.option("--agents", default=20, show_default=True, help="How many agents (phones).")
@click.option("--rate", default=20.0, show_default=True, help="Call arrivals per second.")
@click.option("--talk", default=2.0, show_default=True, help="Mean talk time, seconds.")
@click.option("--seed", default=1, show_default=True, help="Random seed for the caller mix.")
@click.option("--db", default=f"sqlite+aiosqlite:///{DEMO_DB_FILE}", show_default=True,
              help="Database for call records (a fresh table each run).")
@click.option("--flow", "flow_path", default=None, show_default=str(DEMO_FLOW),
              type=click.Path(dir_okay=False, path_type=Path),
              help="The IVR flow callers go through (ivr_flows/hotline.yaml: the hotline, "
                   "with the example account service started for its lookups; its hours "
                   "are 08:00-22:00 Asia/Shanghai: see --open).  Not given: the default in "
                   "this folder, else the sample beside the installed source.")
@click.option("--at", "at", default=None, metavar="[DATE ]HH:MM",
              help="Run as if the demo started at this time in the flow's time zone "
                   "(today, or YYYY-MM-DD HH:MM): the engine's clock, which the flow's "
                   "opening hours and the call records see, is moved by that much.")
@click.option("--open", "open_", is_flag=True,
              help="Run as if at the next time the flow's opening hours say open (as "
                   "now if they do).")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
def demo(calls: int, agents: int, rate: float, talk: float, seed: int, db: str,
         flow_path: Path | None, at: str | None, open_: bool, verbose: int) -> None:
    """Engine plus the PBX simulator over real AMI and FastAGI sockets:
    place CALLS simulated callers, then print what happened to them."""
    _setup_logging(verbose)
    import datetime as dt
    import time

    from acd.ivr.hours import zone
    from acd.loadsim.demo import DemoOptions, clock_offset, closed_notice, flow_zone, run_demo

    if at is not None and open_:
        raise click.UsageError("give --at or --open, not both")
    try:
        flow = load_flow(demo_flow_file(flow_path))
    except FlowError as exc:
        err_console.print(f"[red]error:[/red] {shown(exc)}")
        sys.exit(2)
    now = time.time()
    try:
        offset = clock_offset(flow, now, at=at, open_=open_)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at" if at is not None else "--open") \
            from None
    start = dt.datetime.fromtimestamp(now + offset, dt.UTC)
    if at is not None or offset:
        tz = flow_zone(flow)
        local = start.astimezone(zone(tz))
        console.print(f"clock: as if at {local:%Y-%m-%d %H:%M} {shown(tz)} (the engine's clock "
                      f"moved by {offset / 3600:+.2f} h; the call records carry that time)",
                      soft_wrap=True)
    closed = closed_notice(flow, start)
    if closed is not None:
        console.print(f"[yellow]out of hours:[/yellow] {shown(closed)}", soft_wrap=True)
    opts = DemoOptions(calls=calls, agents=agents, rate=rate, talk_s=talk, seed=seed,
                       database_url=db, flow=flow, clock_offset_s=offset)
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
    if result.self_service is not None:  # the flow's lookups went to the example back end
        got = result.self_service
        unknown_to = result.unknown_to or "the lookups' on_error"
        checked = sum(got.get(k, 0) for k in ("verified", "refused", "locked"))
        console.print(f"self-service lookups (example back end, docs/selfservice.md): "
                      f"{got.get('account', 0)} answered, {checked} passwords checked, "
                      f"{got.get('unknown', 0)} unknown numbers ({unknown_to}), "
                      f"{got.get('bad', 0)} refused")
    if closed is not None:
        console.print("the flow was out of hours for these calls (see above): add --open to "
                      "run as if open", soft_wrap=True)
    if offset:  # `acd report calls` defaults to today as the wall clock has it
        tz = flow_zone(flow)
        first = start.astimezone(zone(tz))
        last = dt.datetime.fromtimestamp(now + offset + result.elapsed_s, zone(tz))
        console.print(f"report these calls: acd report calls --db {db} --tz {tz} --since "
                      f"{first:%Y-%m-%d} --until {last:%Y-%m-%d}", soft_wrap=True)
    if result.problems:
        for p in result.problems:
            err_console.print(f"[red]problem:[/red] {p}")
        sys.exit(1)
