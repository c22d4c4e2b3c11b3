"""Reading a customer or agent file as a whole: its bytes as text
(:func:`decode`), and the agents' reader told by the file name
(:func:`parse_agents`).

The readers themselves are :mod:`acd.loaders.profile_csv` (customers and
agents) and :mod:`acd.loaders.profile_yaml` (agents); the values of one field
are judged by :mod:`acd.loaders.profile_fields`, what a file gives is in
:mod:`acd.loaders.profile_results`, and profiles made in code are checked
by :mod:`acd.loaders.profile_checks`.  Nothing stops at the first bad row:
every problem is collected, and every good row is returned alongside.  Pure:
given the bytes or the text of a file, never touching the file system or a
database.
"""

from __future__ import annotations

from pathlib import PurePath

from acd.core.profiles import AgentProfile
from acd.loaders.profile_csv import parse_agents_csv
from acd.loaders.profile_results import ParseResult, ProfileFileError
from acd.loaders.profile_yaml import parse_agents_yaml
from acd.loaders.textfile import TextFileError, decode_text


def decode(data: bytes, file: str) -> str:
    """UTF-8 (a BOM is dropped), or ProfileFileError naming the line of the
    first byte that is not (UTF-16, binary files: line 1 or the NUL's)."""
    try:
        return decode_text(data, file)
    except TextFileError as exc:
        problem = f"is {exc.problem}" if exc.problem.startswith(("not ", "UTF-")) \
            else exc.problem
        if file.lower().endswith(".csv"):
            problem += " (in Excel: save as \"CSV UTF-8\")"
        raise ProfileFileError(file, exc.line, problem, exc.column) from None


def parse_agents(text: str, file: str) -> ParseResult[AgentProfile]:
    """CSV or YAML, told by the file name's extension."""
    suffix = PurePath(file).suffix.lower()
    if suffix == ".csv":
        return parse_agents_csv(text, file)
    if suffix in (".yaml", ".yml"):
        return parse_agents_yaml(text, file)
    raise ProfileFileError(file, 0, "cannot tell the format: the name must end in .csv, "
                           ".yaml or .yml")
