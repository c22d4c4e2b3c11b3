"""The queue_log file: lines appended as Asterisk's logger appends them
(one line per entry, each batch written and flushed at once), reopened when
the file is moved or deleted (as Asterisk does after logrotate's ``logger
reload``, here without being told: the path is checked before each write).

The writes are made in a worker thread (``asyncio.to_thread``), one at a
time and in order: a slow disk or a stalled NFS server never holds the
engine's event loop (a write over ``slow_s`` is logged, the lines put
meanwhile wait, bounded by ``max_pending``).

A write that fails (disk full, permissions, the directory gone) is logged
once a minute with a count and counted (``errors``); its lines wait (up to
``max_pending``, the oldest dropped and counted in ``lost`` beyond that) and
are tried again after ``retry_s``.  A write cut short leaves no broken line:
the bytes it wrote are cut off again (``ftruncate`` to the size before,
when the file is still that size plus them: nobody else wrote to it); when
they cannot be (the file was truncated or written by another meanwhile),
the lines wholly written count as written, and the next write to that file
begins with a newline, so only the cut piece stays and every later line is
whole.  Nothing here ever raises into the engine: the calls go on whatever
the file does.

The realtime table goes through the engine's record writer instead
(:meth:`acd.adapters.storage.RecordWriter.put_queue_log`), which keeps rows
in its spool while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from acd.logs import Limited, printable

log = logging.getLogger(__name__)

__all__ = ["QueueLogFile"]


class QueueLogFile:
    """Owned appender of queue_log lines to ``path``.

    :meth:`put` only queues (a listener may call it: it never blocks);
    the task started by :meth:`start` writes, in a worker thread;
    :meth:`write_now` writes what is queued at once, in the calling thread
    (tests; never while the task runs).

    Counters: ``written`` (lines in the file), ``errors`` (failed writes),
    ``lost`` (lines dropped: over ``max_pending``, or left at stop),
    ``reopened`` (times the file was found moved and opened anew),
    ``cut`` (writes cut short whose piece was cut off the file again).

    ``write``: ``os.write`` (a test hands a writer that fails partway)."""

    def __init__(self, path: str | os.PathLike[str], *, retry_s: float = 1.0,
                 max_pending: int = 100_000, mode: int = 0o640, slow_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 write: Callable[[int, memoryview], int] = os.write) -> None:
        self.path = Path(path)
        self.retry_s = retry_s
        self.max_pending = max(1, max_pending)
        self.mode = mode
        self.slow_s = slow_s
        self._clock = clock
        self._os_write = write
        self._pending: deque[str] = deque()
        self._inflight: list[str] = []  # the lines a write has now (out of _pending)
        self._writing: asyncio.Future[tuple[int, OSError | None]] | None = None
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        #: the file a write was cut short in, mid-line, and could not be cut back
        self._torn: tuple[int, int] | None = None
        self._failed_at: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._limited = Limited(60.0)
        self.written = 0
        self.errors = 0
        self.lost = 0
        self.reopened = 0
        self.cut = 0

    @property
    def pending(self) -> int:
        """Lines not written yet (queued, or in a write under way)."""
        return len(self._pending) + len(self._inflight)

    # ------------------------------------------------------------ accept

    def put(self, lines: Iterable[str]) -> None:
        """Queue lines (without their newline); never blocks, never raises."""
        for line in lines:
            self._pending.append(line)
        self._trim()
        self._wake.set()

    def _trim(self) -> None:
        over = len(self._pending) - self.max_pending
        if over <= 0:
            return
        for _ in range(over):
            self._pending.popleft()
        self.lost += over
        self._limited.error(log, "lost", "queue_log %s: %d lines waiting to be "
                            "written; the oldest dropped (%d lost so far)",
                            printable(str(self.path)), len(self._pending), self.lost)

    # ------------------------------------------------------------ writing (thread)

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     self.mode)
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        return fd

    def _close(self) -> None:
        fd, self._fd, self._ident = self._fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _current(self) -> int:
        """The open file, reopened when ``path`` no longer names it
        (moved by logrotate, deleted)."""
        fd = self._fd
        if fd is not None:
            try:
                st = os.stat(self.path)
                moved = (st.st_dev, st.st_ino) != self._ident
            except FileNotFoundError:
                moved = True
            if not moved:
                return fd
            self._close()
            self.reopened += 1
            log.info("queue_log %s was moved or deleted: writing a new file there",
                     printable(str(self.path)))
        return self._open()

    def _write(self, lines: list[str]) -> tuple[int, OSError | None]:
        """Append ``lines`` (blocking: run in a worker thread, one at a
        time).  (lines now wholly in the file, the error or None)."""
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        try:
            fd = self._current()
            size = os.fstat(fd).st_size
            lead = 0
            if self._torn is not None and self._torn == self._ident and size > 0:
                data = b"\n" + data  # end the piece a cut write left
                lead = 1
        except OSError as exc:
            self._close()  # opened again on the next try (the directory may come back)
            return 0, exc
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += self._os_write(fd, view[done:])
        except OSError as exc:
            whole = self._cut_short(fd, size, data, done, lead)
            self._close()
            return whole, exc
        self._torn = None
        return len(lines), None

    def _cut_short(self, fd: int, size: int, data: bytes, done: int, lead: int) -> int:
        """A write stopped after ``done`` bytes of ``data`` (appended at
        ``size``): cut them off again when the file is ours alone since
        (then nothing of the batch is in it: 0), else keep the whole lines
        and say the file ends mid-line.  Returns the batch's lines wholly
        written."""
        if done == 0:
            return 0
        try:
            st = os.fstat(fd)
            if st.st_size == size + done:
                os.ftruncate(fd, size)
                self.cut += 1
                return 0
        except OSError as exc:
            log.error("queue_log %s: a write was cut short and its %d bytes could not be "
                      "cut off (%s)", printable(str(self.path)), done, exc.strerror or exc)
        else:
            log.error("queue_log %s: a write was cut short and the file changed meanwhile "
                      "(size %d, expected %d): the piece stays, the next line starts anew",
                      printable(str(self.path)), st.st_size, size + done)
        written = data[:done]
        whole = written[lead:].count(b"\n")
        self._torn = None if written.endswith(b"\n") else self._ident
        return whole

    # ------------------------------------------------------------ writing (loop)

    def _settle(self, lines: list[str], result: tuple[int, OSError | None]) -> bool:
        """Count a write's result; lines not written go back in front."""
        whole, exc = result
        self.written += whole
        rest = lines[whole:]
        if exc is None and not rest:
            self._failed_at = None
            return True
        self.errors += 1
        self._failed_at = self._clock()
        self._pending.extendleft(reversed(rest))
        self._trim()
        self._limited.error(log, "write", "queue_log %s: cannot write (%s); %d lines "
                            "wait, tried again every %.0f s (%d failed writes so far)",
                            printable(str(self.path)),
                            (exc.strerror or exc) if exc is not None else "?",
                            len(self._pending), self.retry_s, self.errors)
        return False

    def write_now(self) -> bool:
        """Write every queued line now, in this thread (one ``write`` per
        batch); False when the write failed (the lines not written stay
        queued, the error is logged and counted)."""
        if self._writing is not None:
            raise RuntimeError("queue_log: write_now while a write is under way")
        if not self._pending:
            return True
        lines = list(self._pending)
        self._pending.clear()
        return self._settle(lines, self._write(lines))

    def _launch(self) -> asyncio.Future[tuple[int, OSError | None]] | None:
        """Start writing what is queued in a worker thread (None: nothing
        queued, or a write is under way).  The result is counted when the
        thread ends, whoever waits for it (a cancelled task does not)."""
        if self._writing is not None or not self._pending:
            return None
        lines = self._inflight = list(self._pending)
        self._pending.clear()
        fut = asyncio.ensure_future(asyncio.to_thread(self._write, lines))
        self._writing = fut

        def done(f: asyncio.Future[tuple[int, OSError | None]]) -> None:
            self._writing, self._inflight = None, []
            if f.cancelled():  # not started (the loop closing): nothing written
                self._settle(lines, (0, OSError("the write was cancelled")))
                return
            exc = f.exception()
            if exc is not None:  # a bug in _write: the lines are kept, it is said
                log.error("queue_log %s: the write failed", printable(str(self.path)),
                          exc_info=exc)
                self._settle(lines, (0, OSError(str(exc))))
                return
            self._settle(lines, f.result())

        fut.add_done_callback(done)
        return fut

    # ------------------------------------------------------------ running

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-log-file")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._failed_at is not None:
                rest = self._failed_at + self.retry_s - self._clock()
                if rest > 0:
                    await asyncio.sleep(rest)
            fut = self._launch()
            if fut is None:
                continue
            # waited for, not cancelled with this task: stop() waits for it too
            done, _ = await asyncio.wait((fut,), timeout=self.slow_s)
            while not done:
                self._limited.error(log, "slow", "queue_log %s: a write has taken over "
                                    "%.0f s; %d lines wait", printable(str(self.path)),
                                    self.slow_s, self.pending)
                done, _ = await asyncio.wait((fut,), timeout=self.slow_s)
            if self._failed_at is not None:
                self._wake.set()  # again after retry_s

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the task, wait for a write under way, write what is queued
        (one last try), close the file; lines still not written are counted
        lost and said.  Bounded by ``timeout_s``."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            async with asyncio.timeout(timeout_s):
                if self._writing is not None:
                    await asyncio.wait((self._writing,))
                fut = self._launch()
                if fut is not None:
                    await asyncio.wait((fut,))
        except TimeoutError:  # the thread goes on with it; the file is its to close
            log.error("queue_log %s: the last write took over %.1f s; left (%d lines)",
                      printable(str(self.path)), timeout_s, self.pending)
            return
        if self._pending:
            self.lost += len(self._pending)
            log.error("queue_log %s: %d lines could not be written and are lost "
                      "(%d failed writes)", printable(str(self.path)), len(self._pending),
                      self.errors)
            self._pending.clear()
        self._close()
        self._limited.flush(log)
