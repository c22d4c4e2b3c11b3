"""``acd recordings prune [--dry-run]``: one retention pass over the
recordings folder (docs/recordings.md), as the running engine makes once
an hour: recordings older than ``recordings.retention_days`` under
``recordings.local_dir`` are deleted (``--dry-run``: listed only)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from acd.cli.common import shown as out  # rich markup AND control characters escaped

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)  # never wrap file:line: messages


@click.group()
def recordings() -> None:
    """Call recordings: the retention of the recordings folder."""


@recordings.command("prune")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default="acd.yaml", show_default=True, help="Engine configuration (YAML).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--list", "show", is_flag=True, help="Print each recording deleted.")
def prune(config_path: Path, dry_run: bool, show: bool) -> None:
    """Delete the recordings older than `recordings.retention_days` under
    `recordings.local_dir` (one pass, as the engine makes every hour;
    symbolic links are neither followed nor deleted)."""
    from acd.ivr.parse import FlowError
    from acd.runtime.recordings import prune_pass
    from acd.runtime.settings import ConfigError, load_config

    try:
        cfg = load_config(config_path)
    except (ConfigError, FlowError) as exc:
        err_console.print(f"[red]✗[/red] {out(exc)}")
        sys.exit(2)
    rec = cfg.recordings
    if rec is None or rec.local_dir is None or rec.retention_days is None:
        err_console.print(f"[red]✗[/red] {out(str(config_path))}: retention needs "
                          "recordings.local_dir and recordings.retention_days")
        sys.exit(2)
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
