"""The queue_log, wired to the engine (``queue_log:`` in acd.yaml,
docs/reports.md#queue_log): a decision listener that hands each decision to the
translator (:mod:`acd.reports.queue_log`), and the lines it returns to the
file appender (:mod:`acd.adapters.queue_log`) and/or the record writer
(the realtime ``queue_log`` table, kept in the spool while the database is
down).  It owns the appender: started and stopped with the engine.

It sees the engine's parts it needs, never the engine itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from acd.adapters.queue_log import QueueLogFile
from acd.adapters.storage import RecordWriter
from acd.core.center import ContactCenter
from acd.core.errors import UnknownSubject
from acd.core.model import Action, Event
from acd.reports.queue_log import DEFAULT_AGENT_FORMAT, QueueLogEntry, QueueLogTranslator
from acd.runtime.calls import CallRegistry

log = logging.getLogger(__name__)

__all__ = ["CoreQueueLogView", "QueueLogConfig", "QueueLogWiring"]


@dataclass(frozen=True, slots=True)
class QueueLogConfig:
    """``queue_log:`` in acd.yaml (off unless ``file`` or ``table`` is set)."""

    #: the file lines are appended to (None: no file)
    file: Path | None = None
    #: rows in the realtime ``queue_log`` table of the engine's database
    table: bool = False
    #: the agent field: ``{agent}`` is the agent id
    agent_format: str = DEFAULT_AGENT_FORMAT
    #: a pause is written as Asterisk writes an interface's pause in all its
    #: queues: PAUSEALL (queue NONE), then PAUSE per queue
    pause_all: bool = True


class CoreQueueLogView:
    """The translator's :class:`~acd.reports.queue_log.QueueLogView` over the
    core (queues, agents) and the call registry (agent legs)."""

    def __init__(self, core: ContactCenter, calls: CallRegistry | None = None) -> None:
        self._core = core
        self._calls = calls

    def queue_of(self, call_id: str) -> str | None:
        call = self._core.call(call_id)
        return None if call is None else call.queue

    def agent_queues(self, agent_id: str) -> tuple[str, ...]:
        try:
            profile = self._core.agent(agent_id).profile
        except UnknownSubject:  # an agent the core does not know serves no queue
            return ()
        return tuple(q for q in self._core.queue_names() if self._core.serves(profile, q))

    def priority_of(self, call_id: str) -> int:
        call = self._core.call(call_id)
        return 0 if call is None else call.priority

    def agent_channel(self, call_id: str) -> str:
        if self._calls is None:
            return ""
        call = self._calls.get(call_id)
        return (call.agent_uid or "") if call is not None else ""


class QueueLogWiring:
    """The listener (:meth:`__call__`, an engine ``Listener``) and the
    appender it feeds.  ``put_row``: the record writer's
    ``put_queue_log`` when ``table`` is on."""

    def __init__(self, config: QueueLogConfig, core: ContactCenter,
                 calls: CallRegistry | None = None, writer: RecordWriter | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.translator = QueueLogTranslator(CoreQueueLogView(core, calls), config.agent_format,
                                             pause_all=config.pause_all)
        self.file = QueueLogFile(config.file) if config.file is not None else None
        self._writer = writer if config.table else None
        self._clock = clock
        self.entries = 0  # lines made since start

    def _emit(self, entries: Sequence[QueueLogEntry]) -> None:
        if not entries:
            return
        self.entries += len(entries)
        if self.file is not None:
            self.file.put([e.line() for e in entries])
        if self._writer is not None:
            for e in entries:
                self._writer.put_queue_log(e)

    def __call__(self, event: Event, actions: Sequence[Action], now: float,
                 started_ns: int) -> None:
        self._emit(self.translator.follow(event, actions, now))

    def start(self, now: float) -> None:
        """QUEUESTART (as Asterisk's logger writes when it starts), and the
        appender's task; the record writer runs already."""
        if self.file is not None:
            self.file.start()
        self._emit(self.translator.start(now))
        log.info("queue_log: %s%s%s", f"file {self.config.file}" if self.file else "",
                 " and " if self.file and self._writer else "",
                 "table queue_log" if self._writer else "")

    async def stop(self, timeout_s: float = 2.0) -> None:
        if self.file is not None:
            await self.file.stop(timeout_s)
            f = self.file
            log.info("queue_log: %d lines written to %s, %d failed writes, %d lines lost",
                     f.written, self.config.file, f.errors, f.lost)
