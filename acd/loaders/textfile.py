"""Reading the text files people write, safely: one place for every file the
engine and the ``acd`` command read (YAML through :mod:`acd.loaders.yamlpos`,
CSV through :func:`csv_records`).

:func:`read_text_file` refuses, with a :class:`TextFileError` naming the file
and, where there is one, the line and column:

- a missing file, a folder, a pipe or a device, a file it may not read;
- a file larger than its limit (``limit``: each reader gives its own, see
  :data:`YAML_MAX_BYTES`, :data:`CSV_MAX_BYTES`, :data:`AGENTS_CSV_MAX_BYTES`
  and :data:`TRACE_MAX_BYTES`), before reading it;
- text that is not UTF-8 (``file:3:7: not UTF-8 text (byte 0xe9) ...``),
  UTF-16 or UTF-32 text (told by its byte-order mark), and binary files
  (a NUL byte).  A UTF-8 byte-order mark is dropped.

:func:`csv_records` reads CSV text one record at a time without letting an
unclosed quote swallow the rest of the file: a record may run on over at
most :data:`CSV_MAX_SPAN` lines (1: none of our values holds a line break),
or it is an error on the line that opened the quote, and the reading goes on
with the next line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

#: the largest YAML file read (configuration, routing, SMS rules, flows, flow
#: tests, scenarios, agents); the largest example is 7 kB
YAML_MAX_BYTES = 1024 * 1024
#: the largest customers CSV file read: about 70,000 customers, imported in
#: some 7 s and 170 MB (a file whose every value is wrong: 3 s); split a
#: bigger list into several files
CSV_MAX_BYTES = 3 * 1024 * 1024
#: the largest agents CSV file read: some 15,000 agents
AGENTS_CSV_MAX_BYTES = 1024 * 1024
#: the largest call trace read (the load simulator): about 80,000 calls
TRACE_MAX_BYTES = 4 * 1024 * 1024
#: a CSV record may run on over this many lines at most: 1, as none of the
#: values read from CSV may hold a line break (a quote left open is then an
#: error on its own line, and swallows nothing)
CSV_MAX_SPAN = 1

_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class TextFileError(Exception):
    """A file cannot be read as text; ``line`` 0 means the file as a whole
    (then the message is ``file: problem``, else ``file:line:column: problem``)."""

    def __init__(self, file: str, line: int, column: int, problem: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {problem}" if line else f"{file}: {problem}")
        self.file = file
        self.line = line
        self.column = column
        self.problem = problem


def clip(text: str, limit: int = 1000) -> str:
    """``text`` cut in the middle when longer than ``limit`` characters: a
    message quoting a value from a file stays readable on a terminal."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 5
    return f"{text[:head]} [... {len(text) - head - tail:,} characters ...] {text[-tail:]}"


def size_text(n: int) -> str:
    """``1.5 MB``, ``640 kB``, ``12 bytes``."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} kB"
    return f"{n} bytes"


def _open_regular(path: str | Path, what: str, limit: int) -> int:
    """A file descriptor open for reading on a regular file of at most
    ``limit`` bytes (by its size now), or TextFileError."""
    p = Path(path)
    file = str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise TextFileError(file, 0, 0, f"{what} not found") from None
    except OSError as exc:
        raise TextFileError(file, 0, 0, f"cannot read the {what}: "
                                        f"{exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TextFileError(file, 0, 0, f"the {what} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):  # a pipe would block, a device never end
        raise TextFileError(file, 0, 0, f"the {what} is not a regular file (a pipe, a device "
                                        "or a socket)")
    if st.st_size > limit:
        raise TextFileError(file, 0, 0, _too_big(what, st.st_size, limit))
    try:
        return os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC)
    except OSError as exc:
        raise TextFileError(file, 0, 0, f"cannot read the {what}: "
                                        f"{exc.strerror or exc}") from None


def read_bytes_file(path: str | Path, what: str = "file", limit: int = YAML_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or TextFileError."""
    file = str(path)
    fd = _open_regular(path, what, limit)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)  # a file that grew since: still bounded
    except OSError as exc:
        raise TextFileError(file, 0, 0, f"cannot read the {what}: "
                                        f"{exc.strerror or exc}") from None
    if len(data) > limit:
        raise TextFileError(file, 0, 0, _too_big(what, len(data), limit))
    return data


def iter_text_lines(path: str | Path, what: str = "file", limit: int = YAML_MAX_BYTES
                    ) -> Iterator[tuple[int, str]]:
    """(line number from 1, text with its line end) of each line of a UTF-8
    file of at most ``limit`` bytes, read one line at a time (a file too
    big to hold in memory at once): the checks of :func:`read_text_file`
    with the same messages and places, each made as the reading gets there
    (lines before a bad byte have been given already)."""
    file = str(path)
    fd = _open_regular(path, what, limit)
    read = 0
    try:
        with os.fdopen(fd, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                read += len(raw)
                if read > limit:  # a file that grew since
                    raise TextFileError(file, 0, 0, _too_big(what, read, limit))
                if lineno == 1:
                    for bom, name in _BOMS:
                        if raw.startswith(bom):
                            raise TextFileError(file, 1, 1, f"{name} text (it starts with a "
                                                            f"{name} byte-order mark): save "
                                                            "the file as UTF-8")
                    if raw.startswith(codecs.BOM_UTF8):
                        raw = raw[len(codecs.BOM_UTF8):]
                nul = raw.find(b"\x00")
                if nul >= 0:
                    raise TextFileError(file, lineno, _column(raw, nul),
                                        "a NUL byte: this is a binary file (or UTF-16 text), "
                                        "not UTF-8 text")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TextFileError(file, lineno, _column(raw, exc.start),
                                        f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                        f"offset {read - len(raw) + exc.start}): save the "
                                        "file as UTF-8") from None
                yield lineno, text
    except OSError as exc:
        raise TextFileError(file, 0, 0, f"cannot read the {what}: "
                                        f"{exc.strerror or exc}") from None


def _column(line: bytes, offset: int) -> int:
    """The column (in characters, from 1) of a byte offset in a line."""
    return len(line[:offset].decode("utf-8", "replace")) + 1


def _too_big(what: str, size: int, limit: int) -> str:
    if size_text(size) == size_text(limit):
        return f"the {what} is {size:,} bytes, more than the {limit:,} a {what} may have"
    return (f"the {what} is {size_text(size)}, more than the {size_text(limit)} a {what} "
            "may have")


def decode_text(data: bytes, file: str) -> str:
    """UTF-8 text (a UTF-8 byte-order mark dropped), or TextFileError
    naming the line and column of the first byte that is not."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise TextFileError(file, 1, 1, f"{name} text (it starts with a {name} byte-order "
                                            "mark): save the file as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    nul = data.find(b"\x00")
    if nul >= 0:  # before decoding: UTF-16 without its mark is NULs, not bad UTF-8
        line, column = _place(data, nul)
        raise TextFileError(file, line, column, "a NUL byte: this is a binary file (or UTF-16 "
                                                "text), not UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _place(data, exc.start)
        raise TextFileError(file, line, column, f"not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                                f"at offset {exc.start}): save the file as "
                                                "UTF-8") from None


def _place(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column) of a byte offset, the column in characters."""
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def read_text_file(path: str | Path, what: str = "file", limit: int = YAML_MAX_BYTES) -> str:
    """The text of a UTF-8 file of at most ``limit`` bytes, or TextFileError."""
    data = read_bytes_file(path, what, limit)
    return decode_text(data, str(path))


# --------------------------------------------------------------------- CSV


def csv_records(text: str, max_span: int = CSV_MAX_SPAN, comments: bool = False
                ) -> Iterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, cells) of each record of CSV text (lines from
    1, physical lines: a quoted value over two lines counts both), or
    (line, line, problem) for a line that cannot be read.

    A quote left open would make the csv module take the rest of the file
    as one value; here a record may run on over at most ``max_span``
    lines: one that does not end by then (or ends the file inside its
    quotes) is reported on its first line, and reading goes on with the
    next line.  Blank lines give no record, nor lines starting with ``#``
    when ``comments``.
    """
    lines = io.StringIO(text, newline="").readlines()
    i, n = 0, len(lines)
    while i < n:
        head = lines[i].strip()
        if not head or (comments and head.startswith("#")):
            i += 1
            continue
        if '"' not in lines[i]:  # no quotes: what the csv module would make of it, faster
            yield i + 1, i + 1, lines[i].rstrip("\r\n").split(",")
            i += 1
            continue
        chunk = lines[i:i + max_span]
        used = 0

        def feed(chunk: list[str] = chunk) -> Iterator[str]:
            nonlocal used
            for line in chunk:
                used += 1
                yield line

        try:
            cells = next(csv.reader(feed(), strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                yield i + 1, i + 1, ("a \" quote opened on this line is not closed on it "
                                     + ("(a value cannot run on to the next line)"
                                        if max_span == 1 else f"(within {max_span} lines)")
                                     + ": the line is left out")
                i += 1
                continue
            # a quote followed by other text (a"b"c): read it as the csv module does
            used = 0
            try:
                cells = next(csv.reader(feed(), strict=False))
            except csv.Error as exc2:
                yield i + 1, i + 1, f"cannot be read as CSV: {exc2}"
                i += 1
                continue
        yield i + 1, i + used, cells
        i += used


class CsvFileError(ValueError):
    """A CSV file is wrong at a place: ``file:line: column: problem`` (line 0:
    the file as a whole, ``file: problem``; no column: ``file:line: problem``).
    Each planning file's reader raises its own subclass."""

    def __init__(self, file: str, line: int, column: str, problem: str) -> None:
        where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{column + ': ' if column else ''}{problem}")
        self.file = file
        self.line = line
        self.column = column
        self.problem = problem

    def __str__(self) -> str:
        return str(self.args[0])


def csv_header(cells: list[str], columns: tuple[str, ...], required: tuple[str, ...]
               ) -> dict[str, int]:
    """column name -> index of a CSV header (names trimmed, lower-cased), or
    ValueError saying what is wrong: a required column missing, a column not
    in ``columns``, a column twice.  The caller names the file and line."""
    import difflib

    header = [h.strip().lower() for h in cells]
    missing = [c for c in required if c not in header]
    unknown = [h for h in header if h not in columns]
    if missing or unknown:
        parts = []
        if unknown:
            named = []
            for h in unknown:
                near = difflib.get_close_matches(h, columns, n=1)
                named.append(f"{h!r} (did you mean {near[0]!r}?)" if near else repr(h))
            parts.append(f"unknown column(s) {', '.join(named)}")
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        raise ValueError(f"{'; '.join(parts)} (columns: {', '.join(columns)})")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise ValueError(f"column(s) {', '.join(twice)} twice")
    return {c: i for i, c in enumerate(header)}
