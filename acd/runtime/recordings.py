"""Call recordings (docs/recordings.md): the core decides at each offer
whether the call is recorded if that offer is answered, and into which file
(``ConnectCall.recording``); the engine sets it on the caller's channel
(``ACD_RECORDING``, acd/runtime/moves.py) and the dialplan's
``[acd-answered]`` (Dial's ``U()``, on the agent's channel as it answers)
runs ``MixMonitor(<file>,b)``: nothing over AMI, no ``system`` class.
This module keeps the folder within its retention period.

- :func:`prune` is one retention pass over ``recordings.local_dir`` (the
  recordings folder as this host sees it: an NFS mount of the Asterisk
  spool, say): recordings (files named ``*.<format>`` of the formats
  Asterisk writes) older than ``retention_days`` are deleted, at most
  ``max_files`` a pass; nothing outside the folder is touched: every folder
  is opened relative to its parent with ``O_NOFOLLOW``, symbolic links are
  neither followed nor deleted.  :class:`Retention` runs it once an hour
  (an engine-owned task); ``acd recordings prune`` runs one pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from acd.adapters.schema import aware, call_records, utc
from acd.adapters.storage import Database
from acd.core.model import RecordingRule
from acd.logs import Limited, printable

log = logging.getLogger(__name__)

#: the file formats Asterisk's MixMonitor writes that a recording may use
#: (``recordings.format``; the file name's extension)
FORMATS = frozenset({"wav", "WAV", "wav16", "gsm", "sln", "sln16", "ulaw", "alaw", "g722",
                     "g729", "ogg"})
#: retention: one pass an hour
PRUNE_EVERY_S = 3600.0
#: retention: a pass deletes at most this many files (the rest wait for the next)
PRUNE_MAX_FILES = 10_000
#: ... and looks at most at this many folder entries
PRUNE_MAX_ENTRIES = 200_000
#: ... and goes at most this deep (yyyy/mm/dd is 3)
PRUNE_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class RecordingsConfig:
    """``recordings:`` of acd.yaml (docs/operations.md, "Recordings")."""

    #: which calls, which file (the core's part)
    rule: RecordingRule
    #: recordings older than this are deleted (None: kept for ever)
    retention_days: float | None = 90.0
    #: the recordings folder (``rule.folder`` on the PBX) as this host sees
    #: it; None: no retention here (done elsewhere)
    local_dir: str | None = None
    prune_every_s: float = PRUNE_EVERY_S
    prune_max_files: int = PRUNE_MAX_FILES


# ------------------------------------------------------------------ retention


@dataclass(slots=True)
class PruneResult:
    """What one retention pass did (or, dry, would do)."""

    folder: str
    cutoff: float
    dry_run: bool = False
    #: the recordings deleted (or to delete), as paths under the folder
    deleted: list[str] = field(default_factory=list)
    bytes: int = 0
    kept: int = 0
    #: symbolic links met (never followed, never deleted)
    links: int = 0
    #: entries that could not be read or deleted
    errors: int = 0
    #: the pass stopped at its bound: more may be due
    more: bool = False
    oldest: float | None = None
    newest: float | None = None

    def line(self) -> str:
        """The one log line of the pass."""
        days = ""
        if self.oldest is not None and self.newest is not None:
            days = (f", from {time.strftime('%Y-%m-%d', time.gmtime(self.oldest))} to "
                    f"{time.strftime('%Y-%m-%d', time.gmtime(self.newest))}")
        verb = "would delete" if self.dry_run else "deleted"
        extra = []
        if self.errors:
            extra.append(f"{self.errors} could not be read or deleted")
        if self.links:
            extra.append(f"{self.links} symbolic links left alone")
        if self.more:
            extra.append("more next pass")
        tail = f" ({'; '.join(extra)})" if extra else ""
        return (f"recordings retention: {verb} {len(self.deleted)} recordings older than "
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(self.cutoff))} UTC "
                f"({self.bytes / 1e6:.1f} MB{days}) in {printable(self.folder)}; "
                f"{self.kept} kept{tail}")


def prune(folder: str | Path, cutoff: float, *, formats: frozenset[str] = FORMATS,
          dry_run: bool = False, max_files: int = PRUNE_MAX_FILES,
          max_entries: int = PRUNE_MAX_ENTRIES) -> PruneResult:
    """One retention pass: delete the recordings under ``folder`` last
    modified before ``cutoff`` (epoch seconds), at most ``max_files``,
    looking at most at ``max_entries`` entries.  Only regular files named
    ``*.<one of formats>`` are deleted; folders emptied by the pass are
    removed (not ``folder`` itself).  Symbolic links below ``folder`` are
    neither followed nor deleted; every folder is opened relative to its
    parent's descriptor with ``O_NOFOLLOW``, so a folder swapped for a
    link meanwhile is not entered.  ``OSError`` when ``folder`` cannot be
    opened."""
    result = PruneResult(str(folder), cutoff, dry_run)
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    root = os.open(os.path.realpath(folder), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    budget = [max_entries]

    def walk(fd: int, rel: str, depth: int) -> bool:
        """Prune the folder open as ``fd``; True when it is left empty."""
        try:
            entries = list(os.scandir(fd))
        except OSError:
            result.errors += 1
            return False
        left = len(entries)
        for entry in sorted(entries, key=lambda e: e.name):
            if budget[0] <= 0 or len(result.deleted) >= max_files:
                result.more = True
                return False
            budget[0] -= 1
            name = entry.name
            path = f"{rel}/{name}" if rel else name
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                result.errors += 1
                continue
            if stat.S_ISLNK(st.st_mode):
                result.links += 1
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth >= PRUNE_MAX_DEPTH:
                    continue
                try:
                    sub = os.open(name, flags, dir_fd=fd)
                except OSError:
                    result.errors += 1
                    continue
                try:
                    empty = walk(sub, path, depth + 1)
                finally:
                    os.close(sub)
                if empty and not dry_run:
                    with contextlib.suppress(OSError):
                        os.rmdir(name, dir_fd=fd)
                        left -= 1
                continue
            ext = name.rpartition(".")[2] if "." in name else ""
            if not stat.S_ISREG(st.st_mode) or ext not in formats or st.st_mtime >= cutoff:
                result.kept += 1
                continue
            if not dry_run:
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError:
                    result.errors += 1
                    continue
                left -= 1
            result.deleted.append(path)
            result.bytes += st.st_size
            result.oldest = st.st_mtime if result.oldest is None \
                else min(result.oldest, st.st_mtime)
            result.newest = st.st_mtime if result.newest is None \
                else max(result.newest, st.st_mtime)
        return left == 0

    try:
        walk(root, "", 0)
    finally:
        os.close(root)
    return result


def prune_pass(config: RecordingsConfig, now: float, *, dry_run: bool = False) -> PruneResult:
    """One pass as configured (``local_dir``, ``retention_days``); ValueError
    when either is not set."""
    if config.local_dir is None or config.retention_days is None:
        raise ValueError("recordings.local_dir and recordings.retention_days must be set "
                         "for retention")
    return prune(config.local_dir, now - config.retention_days * 86400.0,
                 formats=FORMATS | {config.rule.file_format}, dry_run=dry_run,
                 max_files=config.prune_max_files)


class Retention:
    """The hourly retention pass, an engine-owned task (:meth:`run`)."""

    def __init__(self, config: RecordingsConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.passes = 0
        self.deleted = 0
        self.limited = Limited(3600.0)

    @property
    def enabled(self) -> bool:
        return self.config.local_dir is not None and self.config.retention_days is not None

    async def once(self) -> PruneResult | None:
        """One pass, in a worker thread (a folder on NFS may be slow); its
        work is bounded (``prune_max_files``, entries looked at)."""
        try:
            result = await asyncio.to_thread(prune_pass, self.config, self.clock())
        except OSError as exc:
            self.limited.error(log, "prune", "recordings retention: cannot read %s: %s",
                               self.config.local_dir, exc)
            return None
        except Exception:  # noqa: BLE001 - logged with its traceback; the next pass runs
            self.limited.error(log, "prune-bug", "recordings retention: the pass failed",
                               exc_info=True)
            return None
        self.passes += 1
        self.deleted += len(result.deleted)
        if result.deleted or result.errors or result.more:
            log.info("%s", result.line())
        return result

    async def run(self) -> None:
        """A pass now, then one every ``prune_every_s``, until cancelled."""
        while True:
            await self.once()
            await asyncio.sleep(self.config.prune_every_s)


# ------------------------------------------------------------------ the check


@dataclass(slots=True)
class CheckResult:
    """``acd recordings check``: the recordings the call records name, and
    which of them are in the folder."""

    folder: str
    named: int = 0
    present: int = 0
    #: older than retention_days: deleted on purpose
    expired: int = 0
    #: named under another folder than recordings.dir (not checked)
    elsewhere: int = 0
    #: (call id, agent, started at (UTC), the recording as the record names it)
    missing: list[tuple[str, str | None, dt.datetime, str]] = field(default_factory=list)

    def line(self) -> str:
        text = (f"recordings check: {self.named} records name a recording; {self.present} "
                f"present in {self.folder}, {len(self.missing)} missing")
        if self.expired:
            text += f", {self.expired} past retention_days (deleted on purpose)"
        if self.elsewhere:
            text += f", {self.elsewhere} under another folder (not checked)"
        return text


async def check_records(db: Database, config: RecordingsConfig, since: float, until: float,
                        now: float) -> CheckResult:
    """The records that started in [since, until) and name a recording: is
    each file under ``config.local_dir`` (a regular file, not empty)?"""
    if config.local_dir is None:
        raise ValueError("the check needs recordings.local_dir")
    c = call_records.c
    q = select(c.call_id, c.agent_id, c.started_at, c.recording).where(
        c.recording.is_not(None), c.started_at >= utc(since), c.started_at < utc(until)
    ).order_by(c.started_at, c.call_id)
    rows = await db.read(lambda conn: conn.execute(q).all())
    local, prefix = config.local_dir, config.rule.folder.rstrip("/") + "/"
    cutoff = None if config.retention_days is None else now - config.retention_days * 86400.0

    def look() -> CheckResult:
        result = CheckResult(local)
        for r in rows:
            result.named += 1
            started = aware(r.started_at)
            if not r.recording.startswith(prefix):
                result.elsewhere += 1
                continue
            path = os.path.join(local, r.recording[len(prefix):])
            try:
                st = os.stat(path, follow_symlinks=False)
                found = stat.S_ISREG(st.st_mode) and st.st_size > 0
            except OSError:
                found = False
            if found:
                result.present += 1
            elif cutoff is not None and started.timestamp() < cutoff:
                result.expired += 1
            else:
                result.missing.append((r.call_id, r.agent_id, started.astimezone(dt.UTC),
                                       r.recording))
        return result

    return await asyncio.to_thread(look)
