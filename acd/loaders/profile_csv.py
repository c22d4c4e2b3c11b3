"""Reading customer and agent profiles from CSV text.

The header (line 1) names the columns, in any order; unknown, missing
required, repeated or unnamed columns, or columns separated by ``;``, refuse
the whole file (:class:`ProfileFileError`).  Every other problem is one
:class:`Issue` and rejects only its row; the good rows are kept.  Line
numbers are physical lines of the file (blank lines count too).  No value
may hold a line break, so a row is one line: a quote left open is an error
on its own line, and the lines after it are read as usual; it never
swallows the rest of the file.

Customer numbers are stored in their one form (:func:`acd.core.numbers.normalize`:
``138 0013 8000``, ``008613800138000`` and ``+8613800138000`` are all
``+8613800138000``); a number that cannot be read as a full phone number
(``110``, an extension) is kept as written, with a warning naming its line.
Pure: given the text, never the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from acd.core.numbers import DEFAULT_COUNTRY
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.loaders.profile_checks import number_warnings
from acd.loaders.profile_fields import (
    AGENT_COLUMNS,
    AGENT_PARSERS,
    AGENT_REQUIRED,
    CUSTOMER_COLUMNS,
    CUSTOMER_PARSERS,
    CUSTOMER_REQUIRED,
    FieldError,
    parse_number,
)
from acd.loaders.profile_results import (
    Collector,
    Issue,
    P,
    ParseResult,
    ProfileFileError,
    Row,
)
from acd.loaders.textfile import csv_records


def _csv(text: str, file: str, columns: tuple[str, ...], required: tuple[str, ...],
         parsers: Mapping[str, Callable[[str], Any]], make: Callable[[dict[str, Any]], P],
         key: Callable[[P], str],
         warnings: Callable[[P], list[tuple[str, str]]] | None = None) -> ParseResult[P]:
    text = text.removeprefix("\ufeff")
    records = _records(text)
    try:
        header_line, _, header_raw = next(records)
    except StopIteration:
        raise ProfileFileError(file, 1, "the file is empty; the first line must be the header "
                               f"({','.join(columns)})") from None
    if isinstance(header_raw, str):
        raise ProfileFileError(file, header_line, f"the header {header_raw}")
    header = [h.strip().lower() for h in header_raw]
    _check_header(file, header_line, header, columns, required)
    given = frozenset(header)
    out = Collector[P](ParseResult(file), key, required[0])
    for line, _, cells in records:
        if isinstance(cells, str):  # the line cannot be read as CSV
            out.error(line, "", cells)
            out.result.rejected += 1
            continue
        if len(cells) != len(header):
            out.error(line, "", f"has {len(cells)} values but the header has {len(header)} "
                                "columns")
            out.result.rejected += 1
            continue
        values: dict[str, Any] = {}
        bad = False
        for col, cell in zip(header, cells, strict=True):
            raw = cell.strip()
            if not raw and col in required:
                out.error(line, col, f"{col} is missing")
                bad = True
                continue
            try:
                values[col] = parsers[col](raw)
            except FieldError as exc:
                out.error(line, col, f"{col} {exc}")
                bad = True
        if bad:
            out.result.rejected += 1
            continue
        try:
            profile = make(values)
        except ValueError as exc:  # the profile's own checks (none expected)
            out.error(line, "", str(exc))
            out.result.rejected += 1
            continue
        if warnings is not None:
            for fld, problem in warnings(profile):
                out.result.warnings.append(Issue(file, line, fld, problem, warning=True))
        out.keep(Row(profile, line, given))
    return out.finish()


def _records(text: str) -> Iterator[tuple[int, int, list[str] | str]]:
    """(line, line, cells) of each line with a value, or (line, line,
    problem) for a line that cannot be read as CSV: a quote left open is an
    error on its line, and the next line is read as the next record
    (:func:`acd.loaders.textfile.csv_records`)."""
    for line, end, cells in csv_records(text):
        if isinstance(cells, str) or any(c.strip() for c in cells):
            yield line, end, cells


def _check_header(file: str, line: int, header: list[str], columns: tuple[str, ...],
                  required: tuple[str, ...]) -> None:
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        raise ProfileFileError(file, line, f"the header is one column {header[0]!r}: columns "
                               "must be separated by commas")
    for i, h in enumerate(header):
        if not h:
            raise ProfileFileError(file, line, f"column {i + 1} of the header has no name")
        if h in header[:i]:
            raise ProfileFileError(file, line, f"column {h!r} appears twice in the header")
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise ProfileFileError(file, line, f"unknown column{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(repr(u) for u in unknown)} "
                               f"(known: {', '.join(columns)})")
    for r in required:
        if r not in header:
            raise ProfileFileError(file, line, f"the header has no {r!r} column "
                                   f"(it is required)")


def _customer(values: dict[str, Any]) -> CustomerProfile:
    return CustomerProfile(**values)


def _agent(values: dict[str, Any]) -> AgentProfile:
    return AgentProfile(**values)


def parse_customers_csv(text: str, file: str = "customers.csv",
                        country: str = DEFAULT_COUNTRY) -> ParseResult[CustomerProfile]:
    """Customers from CSV text (header in any order; ``number`` required),
    their numbers normalised for ``country`` (a number given twice in two
    forms is one customer: the later row wins, with a warning)."""
    parsers = {**CUSTOMER_PARSERS, "number": lambda raw: parse_number(raw, country)}
    return _csv(text, file, CUSTOMER_COLUMNS, CUSTOMER_REQUIRED, parsers,
                _customer, lambda c: c.number, number_warnings)


def parse_agents_csv(text: str, file: str = "agents.csv") -> ParseResult[AgentProfile]:
    """Agents from CSV text (``agent_id`` and ``extension`` required)."""
    return _csv(text, file, AGENT_COLUMNS, AGENT_REQUIRED, AGENT_PARSERS,
                _agent, lambda a: a.agent_id)
