"""The record writer's spool: rows not yet in the database, kept on local
disk (during a long database outage, past the writer's memory bound, and at
a stop that the database did not let finish), written on the next start.

One file per writer (one per engine start), in the spool directory
(owner-only: the directory ``0700``, the files ``0600``), named
``<UTC start>-<pid>-<random>.jsonl``:

- the first line is a header: the spool format, the database the rows are
  for (its URL without the password; a spool is only ever written to the
  database it was made for), the process, and ``done``: how far the rows
  have been written (a byte offset, rewritten in place, 20 digits);
- then one row per line, JSON, ASCII only, appended (and ``fsync``-ed) in
  the order the rows were accepted.

While its writer lives, the file is locked (``flock``): another process
(a standby, the next start) only ever takes a file whose lock it can get,
that is one whose writer has ended, however it ended.  A writer that has
written every row of its file empties it (back to the header); one that
stops with nothing left removes it.

An append that fails half-way (the disk is full) is cut back to where it
began, so a file never holds half a row of ours.  A line that is not JSON
(a crash in the middle of an append) is skipped and counted when read.

Every method is synchronous and thread-safe (the writer calls them in a
worker thread, so that disk waits never hold the event loop); none is
called on the event loop itself except at :meth:`Spool.create`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["SPOOL_FORMAT", "Spool", "SpoolError"]

SPOOL_FORMAT = 1
_DIGITS = 20
_BLOCK = 1 << 16


class SpoolError(Exception):
    """A spool file cannot be made, read or locked (the reason in words)."""


def _header(database: str, done: int) -> tuple[bytes, int]:
    """The header line and where its ``done`` digits start."""
    head = json.dumps({"acd_spool": SPOOL_FORMAT, "database": database, "pid": os.getpid(),
                       "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
                      ensure_ascii=True, separators=(",", ":"))[:-1] + ',"done":"'
    digits_at = len(head)
    line = f'{head}{done:0{_DIGITS}d}"}}\n'.encode("ascii")
    return line, digits_at


def private_dir(directory: Path) -> None:
    """Make ``directory`` (owner-only) if it is missing; warn once if it
    exists and others may read it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("spool directory %s is open to others (mode %o): it holds callers' "
                    "numbers; chmod 700 it", directory, mode)


class Spool:
    """One spool file: rows appended at the end, read from ``done`` on."""

    def __init__(self, path: Path, fd: int, digits_at: int, header_len: int, done: int,
                 end: int, unread: int, database: str) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = fd
        self._digits_at = digits_at
        self._header_len = header_len
        self._done = done  # byte offset of the first row not yet written
        self._end = end  # byte offset of the end of the file
        #: rows in the file not yet written to the database
        self.unread = unread
        self._lock = threading.Lock()

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, directory: Path, database: str) -> Spool:
        """A new, empty, locked spool file in ``directory`` (made owner-only
        if missing) for ``database``.  ``OSError`` when the disk refuses."""
        private_dir(directory)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}.jsonl"
        tmp = directory / f".{name}.new"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            line, digits_at = _header(database, 0)
            line, digits_at = _header(database, len(line))  # done: right after the header
            _write_all(fd, line, 0)
            os.fsync(fd)
            path = directory / name
            os.rename(tmp, path)  # others only look at *.jsonl: never at a file half made
            _sync_dir(directory)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return cls(path, fd, digits_at, len(line), len(line), len(line), 0, database)

    @classmethod
    def adopt(cls, path: Path, database: str) -> Spool | None:
        """An earlier writer's file, locked for us; None when its writer is
        still alive (locked), it is for another database, or it is not a
        spool file (each said in the log)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            log.warning("spool file %s: cannot open (%s); left as it is", path, exc.strerror)
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                log.debug("spool file %s: its writer is still running", path)
                return None
            first = _read_line(fd, 0)
            try:
                head = json.loads(first)
                done = int(head["done"])
                if head.get("acd_spool") != SPOOL_FORMAT or not first.endswith(b"\n"):
                    raise ValueError("format")
            except (ValueError, KeyError, TypeError):
                os.close(fd)
                log.warning("spool file %s: not a spool file of this version; left as it is",
                            path)
                return None
            if head.get("database") != database:
                os.close(fd)
                log.info("spool file %s is for another database (%s); left as it is", path,
                         head.get("database"))
                return None
            end = os.fstat(fd).st_size
            header_len = len(first)
            digits_at = first.index(b'"done":"') + len(b'"done":"')
            done = min(max(done, header_len), end)
            spool = cls(path, fd, digits_at, header_len, done, end, 0, database)
            spool.unread = spool._count_lines(done)
            return spool
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.close(fd)
            log.warning("spool file %s: cannot read (%s); left as it is", path, exc.strerror)
            return None

    @staticmethod
    def files(directory: Path) -> list[Path]:
        """The spool files in ``directory``, oldest first."""
        try:
            return sorted(p for p in directory.glob("*.jsonl") if p.is_file())
        except OSError:
            return []

    # ------------------------------------------------------------- rows

    def append(self, rows: Sequence[str]) -> None:
        """Add rows (one JSON text each, no newline) at the end and ``fsync``.
        On failure (``OSError``: the disk is full ...) the file is cut back
        to where it was, and the error raised."""
        if not rows:
            return
        data = ("\n".join(rows) + "\n").encode("ascii")
        with self._lock:
            fd = self._open_fd()
            start = self._end
            try:
                _write_all(fd, data, start)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
            self._end = start + len(data)
            self.unread += len(rows)

    def peek(self, n: int) -> list[dict[str, Any] | None]:
        """The next ``n`` rows not yet written (None for a line that is not a
        row), without taking them: :meth:`consume` does, once written."""
        with self._lock:
            fd = self._open_fd()
            out: list[dict[str, Any] | None] = []
            if n <= 0:
                return out
            for line, _ in _lines(fd, self._done, self._end):
                try:
                    obj = json.loads(line)
                    out.append(obj if isinstance(obj, dict) else None)
                except ValueError:
                    out.append(None)
                if len(out) >= n:
                    break
            return out

    def consume(self, n: int) -> None:
        """The next ``n`` rows are written: ``done`` moves past them (and the
        file is emptied once all are)."""
        if n <= 0:
            return
        with self._lock:
            fd = self._open_fd()
            taken = 0
            for _, pos in _lines(fd, self._done, self._end):
                self._done = pos
                taken += 1
                if taken >= n:
                    break
            self.unread = max(0, self.unread - taken)
            if self._done >= self._end:
                self.unread = 0
                os.ftruncate(fd, self._header_len)
                self._end = self._done = self._header_len
            self._write_done(fd)

    def close(self) -> None:
        """Release the file: removed if every row is written, else its
        ``done`` saved (``fsync``) for the next start."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                if self.unread == 0:
                    with contextlib.suppress(OSError):
                        self.path.unlink()
                else:
                    self._write_done(fd)
                    os.fsync(fd)
            finally:
                os.close(fd)  # releases the lock

    @property
    def closed(self) -> bool:
        return self._fd is None

    # ---------------------------------------------------------- inside

    def _open_fd(self) -> int:
        if self._fd is None:
            raise SpoolError(f"spool file {self.path} is closed")
        return self._fd

    def _write_done(self, fd: int) -> None:
        os.pwrite(fd, f"{self._done:0{_DIGITS}d}".encode("ascii"), self._digits_at)

    def _count_lines(self, pos: int) -> int:
        fd = self._open_fd()
        count = 0
        while pos < self._end:
            block = os.pread(fd, min(_BLOCK, self._end - pos), pos)
            if not block:
                break
            count += block.count(b"\n")
            pos += len(block)
            if pos >= self._end and not block.endswith(b"\n"):
                count += 1  # a last line with no newline
        return count


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _lines(fd: int, pos: int, end: int) -> Iterator[tuple[bytes, int]]:
    """Each line from ``pos`` to ``end``, with the offset just after it (a
    last line with no newline too)."""
    buf = b""
    while pos < end:
        block = os.pread(fd, min(_BLOCK, end - pos), pos)
        if not block:
            break
        pos += len(block)
        buf += block
        start = 0
        while True:
            cut = buf.find(b"\n", start)
            if cut < 0:
                break
            yield buf[start:cut], pos - len(buf) + cut + 1
            start = cut + 1
        buf = buf[start:]
    if buf:
        yield buf, pos


def _read_line(fd: int, pos: int, end: int | None = None) -> bytes:
    """The line starting at ``pos`` (with its newline, if it has one)."""
    parts: list[bytes] = []
    while end is None or pos < end:
        size = _BLOCK if end is None else min(_BLOCK, end - pos)
        block = os.pread(fd, size, pos)
        if not block:
            break
        cut = block.find(b"\n")
        if cut >= 0:
            parts.append(block[: cut + 1])
            break
        parts.append(block)
        pos += len(block)
    return b"".join(parts)


def _sync_dir(directory: Path) -> None:
    """Make a new name in ``directory`` durable (where the system allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
