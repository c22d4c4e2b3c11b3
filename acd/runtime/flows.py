"""The engine's IVR flow, reloadable without a restart.

A reload reads and checks the file (and its sub-flows) again.  When it
passes, new calls take the new version; calls already in the IVR finish on
the version they started with (each :class:`~acd.ivr.interpreter.FlowRun`
holds its own :class:`~acd.ivr.nodes.Flow`).  When it fails, the old version
stays and the problems are returned and logged.  ``watch()`` polls the
files' modification times and reloads on a change (``acd serve`` runs it
when ``flow_watch`` is on); ``acd flow reload`` asks the control API.
Prompts missing in the sounds folder (``sounds:``) do not refuse a reload:
they are logged, and returned as a warning, as at start
(:mod:`acd.prompts.startup`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from acd.ivr.load import load_flow_and_warnings
from acd.ivr.nodes import Flow
from acd.ivr.parse import FlowError
from acd.ivr.saying import COMPOSED_LANGUAGES
from acd.prompts.collect import summary
from acd.prompts.startup import check_at_start

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    changed: bool
    version: str
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())


class FlowRegistry:
    def __init__(self, flow: Flow, path: str | Path | None = None,
                 known_queues: set[str] | None = None, sounds: str | Path | None = None,
                 compose: Collection[str] = COMPOSED_LANGUAGES) -> None:
        self.current = flow
        self.path = Path(path) if path is not None else Path(flow.file)
        self.known_queues = known_queues
        self.sounds = sounds
        self.compose = compose
        self.loads = 1
        self._mtimes = self._stat()
        #: reloads run on worker threads (they read files, perhaps a mounted
        #: sounds folder): one at a time
        self._reloading = threading.Lock()

    def _stat(self) -> dict[str, float]:
        """The current flow's files (the flow file first, then its sub-flows)."""
        return self._stat_files(list(self.current.files))

    def reload(self) -> ReloadResult:
        """Load the flow file again; run it on a worker thread
        (``asyncio.to_thread``): it reads files."""
        with self._reloading:
            return self._reload()

    def _reload(self) -> ReloadResult:
        try:
            flow, problems = load_flow_and_warnings(self.path, self.known_queues)
        except FlowError as exc:
            log.error("flow reload refused, keeping version %r: %s",
                      self.current.version, exc)
            self._mtimes = self._stat()  # do not retry the same broken file
            return ReloadResult(False, False, self.current.version, (str(exc),))
        for w in problems:
            log.warning("flow %s: %s", flow.name, w)
        warnings = [str(w) for w in problems]
        if self.sounds is not None:
            gone = check_at_start(flow, self.sounds, self.compose)
            if gone:
                warnings.append(f"prompts missing in {self.sounds}: {summary(gone)}")
        old = self.current
        self.current = flow
        self.loads += 1
        self._mtimes = self._stat()
        changed = flow.version != old.version or flow.nodes != old.nodes
        log.info("flow %s reloaded: version %r -> %r (calls in progress keep theirs)",
                 flow.name, old.version, flow.version)
        return ReloadResult(True, changed, flow.version, (), tuple(warnings))

    @staticmethod
    def _stat_files(files: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in files:
            try:
                out[f] = os.stat(f).st_mtime
            except OSError:
                out[f] = -1.0
        return out

    def changed_on_disk(self) -> bool:
        return self._stat_files(list(self._mtimes)) != self._mtimes

    async def watch(self, interval_s: float = 2.0) -> None:
        """Reload whenever a flow file changes (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval_s)
            if self.changed_on_disk():
                # let an editor finish writing the file
                await asyncio.sleep(min(0.2, interval_s))
                await asyncio.to_thread(self.reload)  # file reads off the event loop
