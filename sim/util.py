"""Small helpers shared by the simulator modules."""

from __future__ import annotations

import re

_INT = re.compile(r"\s*([-+]?\d+)")
_FLOAT = re.compile(r"\s*([-+]?\d+(?:\.\d*)?)")
_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def atoi(text: str, default: int = 0) -> int:
    """C ``atoi``: the leading integer of ``text``, else ``default``."""
    m = _INT.match(text)
    return int(m.group(1)) if m else default


def scan_int(text: str) -> int | None:
    """``sscanf(text, "%30d", &n) == 1``: the leading integer, None if there is none."""
    m = _INT.match(text)
    return int(m.group(1)) if m else None


def atof(text: str, default: float = 0.0) -> float:
    """C ``atof`` for plain decimals."""
    m = _FLOAT.match(text)
    return float(m.group(1)) if m else default


def parse_callerid(text: str) -> tuple[str, str]:
    """``"Zhang" <13800138000>`` -> (name, number), as ast_callerid_parse does."""
    m = _CALLERID.match(text)
    if m is None:
        text = text.strip()
        if text and all(c.isdigit() or c in "+*#" for c in text):
            return "", text
        return text.strip('"'), ""
    name = m.group("qname") if m.group("qname") is not None else (m.group("name") or "")
    return name.strip(), m.group("num").strip()


def separate_args(text: str, delim: str = ",", *, remove_chars: bool = False,
                  max_args: int | None = None) -> list[str]:
    """main/app.c ``__ast_app_separate_args``: split at ``delim`` outside
    ``(...)``, ``[...]`` and ``"..."``; with ``max_args`` the last argument
    keeps the rest, delimiters included (``AST_NONSTANDARD_APP_ARGS(args,
    "acd/answered/1001", '/')`` with two fields: ``acd``, ``answered/1001``).
    ``remove_chars`` (the ``*_APP_ARGS`` macros; ``*_RAW_ARGS`` keep them):
    quotes are dropped and a backslash makes the next character literal.
    An empty text has no argument; a trailing delimiter adds an empty one."""
    args: list[str] = []
    if not text:
        return args
    paren = bracket = 0
    quote = False
    current: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if max_args is not None and len(args) >= max_args - 1:
            current.append(text[i])  # the last argument: the rest as it is
            i += 1
            continue
        c = text[i]
        if c == "(":
            paren += 1
        elif c == ")":
            paren = max(0, paren - 1)
        elif c == "[":
            bracket += 1
        elif c == "]":
            bracket = max(0, bracket - 1)
        elif c == '"' and delim != '"':
            quote = not quote
            if remove_chars:
                i += 1
                continue
        elif c == "\\":
            if remove_chars:
                i += 1  # literal character, not parsed
                if i < n:
                    current.append(text[i])
                    i += 1
                continue
            current.append(c)
            i += 1
            if i < n:
                current.append(text[i])
                i += 1
            continue
        elif c == delim and not paren and not quote and not bracket:
            args.append("".join(current))
            current = []
            i += 1
            if i == n:
                args.append("")  # the text ended with the delimiter
            continue
        current.append(c)
        i += 1
    if current:
        args.append("".join(current))
    return args


def parse_app_options(text: str) -> dict[str, str]:
    """main/app.c ``parse_options`` (``ast_app_parse_options64``): one letter
    per option, an argument in balanced parentheses after it
    (``m(default)U(acd-answered^c-1^1001)``); ``""`` for an option given
    without one.  Backslashes outside quotes are dropped; a quoted argument
    (``(" ...")``) loses its quotes."""
    options: dict[str, str] = {}
    i = 0
    n = len(text)
    while i < n:
        letter = text[i]
        i += 1
        if i < n and text[i] == "(":
            i += 1
            paren, quote = 1, False
            parse_quotes = i < n and text[i] == '"'
            arg: list[str] = []
            while i < n:
                c = text[i]
                if c == "(" and not quote:
                    paren += 1
                elif c == ")" and not quote:
                    paren -= 1
                    if paren == 0:
                        i += 1
                        break
                elif c == '"' and parse_quotes:
                    quote = not quote
                    i += 1
                    continue
                elif c == "\\":
                    if not quote or (i + 1 < n and text[i + 1] == '"'):
                        i += 1  # dropped; the next character is taken as it is
                        if i < n:
                            arg.append(text[i])
                            i += 1
                        continue
                    arg.append(c)
                    i += 1
                    if i < n:
                        arg.append(text[i])
                        i += 1
                    continue
                arg.append(c)
                i += 1
            options[letter] = "".join(arg)
        else:
            options[letter] = ""
    return options
