"""``acd recordings prune [--dry-run]``: one retention pass over the
recordings folder (docs/recordings.md), as the running engine makes once
an hour: recordings older than ``recordings.retention_days`` under
``recordings.local_dir`` are deleted (``--dry-run``: listed only).
``acd recordings check``: do the files the call records name exist?"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from acd.cli.common import shown as out  # rich markup AND control characters escaped

if TYPE_CHECKING:
    from acd.runtime.recordings import RecordingsConfig
    from acd.runtime.settings import EngineConfig

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages


@click.group()
def recordings() -> None:
    """Call recordings: the retention of the recordings folder, and a check
    that the files the call records name exist."""


def _recordings(config_path: Path, needs: str, *, retention: bool
                ) -> tuple[EngineConfig, RecordingsConfig]:
    """The configuration and its ``recordings:`` with a ``local_dir`` (and,
    with ``retention``, ``retention_days``); exit 2 saying what it ``needs``."""
    from acd.ivr.parse import FlowError
    from acd.runtime.settings import ConfigError, load_config

    try:
        cfg = load_config(config_path)
    except (ConfigError, FlowError) as exc:
        err_console.print(f"[red]✗[/red] {out(exc)}")
        sys.exit(2)
    rec = cfg.recordings
    if rec is None or rec.local_dir is None or (retention and rec.retention_days is None):
        err_console.print(f"[red]✗[/red] {out(str(config_path))}: {needs}")
        sys.exit(2)
    return cfg, rec


@recordings.command("prune")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="acd.yaml", show_default=True, help="Engine configuration (YAML).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--list", "show", is_flag=True, help="Print each recording deleted.")
def prune(config_path: Path, dry_run: bool, show: bool) -> None:
    """Delete the recordings older than `recordings.retention_days` under
    `recordings.local_dir` (one pass, as the engine makes every hour;
    symbolic links are neither followed nor deleted)."""
    from acd.runtime.recordings import prune_pass

    _, rec = _recordings(config_path, "retention needs recordings.local_dir and "
                         "recordings.retention_days", retention=True)
    try:
        result = prune_pass(rec, time.time(), dry_run=dry_run)
    except OSError as exc:
        err_console.print(f"[red]✗[/red] cannot read {out(rec.local_dir)}: "
                          f"{out(exc.strerror or str(exc))}")
        sys.exit(1)
    if show or dry_run:
        for path in result.deleted:
            console.print(out(path))
    console.print(out(result.line()))
    if result.errors:
        sys.exit(1)


@recordings.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="acd.yaml", show_default=True, help="Engine configuration (YAML).")
@click.option("--since", help="Records that started from: a day (YYYY-MM-DD) or "
                              "'YYYY-MM-DD HH:MM', in --tz [default: 7 days ago].")
@click.option("--until", help="... until (excluded): a day (through its end) or a time "
                              "[default: now].")
@click.option("--tz", help="Time zone of --since and --until [default: the configuration's "
                           "statistics.tz, else this machine's].")
def check(config_path: Path, since: str | None, until: str | None, tz: str | None) -> None:
    """Does each recording the call records name exist under
    `recordings.local_dir`?  Lists the missing ones (exit 1 if any): the
    dialplan did not start MixMonitor, app_mixmonitor is not loaded, Asterisk
    could not write the folder... (docs/recordings.md).  Recordings older
    than `recordings.retention_days` are counted apart (deleted on purpose)."""
    from acd.cli.common import run_db, time_option_value, tz_option_zone
    from acd.runtime.recordings import check_records

    cfg, rec = _recordings(config_path, "the check needs recordings.local_dir (the "
                           "recordings folder as this host sees it)", retention=False)
    zone = tz_option_zone(tz, cfg.statistics.tz)
    now = time.time()
    t1 = time_option_value(until, zone, "--until", end=True).timestamp() if until else now
    t0 = time_option_value(since, zone, "--since", end=False).timestamp() if since \
        else t1 - 7 * 86400.0
    result = run_db(cfg.database_url, lambda db: check_records(db, rec, t0, t1, now),
                    read_only=True)
    for call_id, agent, started, path in result.missing:
        console.print(f"missing: call {out(call_id)} (agent {out(agent or '-')}, started "
                      f"{started:%Y-%m-%d %H:%M} UTC): {out(path)}")
    console.print(out(result.line()))
    if result.missing:
        sys.exit(1)
