"""Dialplan substitution: ``${VAR}`` and ``$[expression]``, as Asterisk does it.

:func:`substitute` scans a template left to right as
``pbx_substitute_variables_helper_full`` (main/pbx_variables.c) does: a
``${...}`` or ``$[...]`` ends at its matching brace or bracket, whatever it
holds is substituted first (nested references), then the variable is read
or the expression evaluated.

:func:`evaluate` is the part of ``ast_expr`` (main/ast_expr2.y and the lexer
ast_expr2.fl) the project's dialplan uses: numbers (``[0-9]+(\\.[0-9]+)?``),
quoted strings (``"..."``, quotes kept, as the lexer keeps them), bare words,
binary ``+`` ``-``, unary ``-``, the comparisons ``= == != < > <= >=`` and
parentheses.  Precedence and semantics are ast_expr2.y's:

* comparisons bind looser than ``+``/``-``, all left-associative; they give
  ``1`` or ``0``; if either side is not a number they compare as strings
  (``strcoll``), else as numbers;
* ``op_plus`` / ``op_minus``: a non-numeric operand counts as absent (``a +
  word`` is ``a``, ``word - b`` is ``-b``, two words give ``0``);
* a syntax error (``$[ + 1]``, what ``$[${UNSET} + 1]`` becomes) logs a
  warning and yields ``0`` (``ast_str_expr``: no value -> "0"); an empty
  expression yields ``""``;
* numbers print with ``%.18Lg`` (``1``, ``2.5``).

Any other operator (``* / % | & ! ?: =~ :`` and functions) raises
:class:`UnsupportedExpression`: the simulator does not pretend to know it.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Lookup = Callable[[str], str]


class UnsupportedExpression(ValueError):
    """An ``$[...]`` using something the simulator does not evaluate."""


class _SyntaxError(Exception):
    pass


# --------------------------------------------------------------- substitution


def _match_end(text: str, start: int, open_c: str, close_c: str) -> tuple[int, bool]:
    """Index just after the closing ``close_c`` of a reference whose body
    starts at ``start`` (one level already open), and whether the body holds
    ``${`` / ``$[`` (needs substituting first).  No closing: the end."""
    depth = 1
    needsub = False
    i = start
    while i < len(text) and depth:
        c = text[i]
        if c == "$" and i + 1 < len(text) and text[i + 1] in "{[":
            needsub = True
            if text[i + 1] == open_c:
                depth += 1
            i += 2
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
        i += 1
    return i, needsub


def substitute(template: str, lookup: Lookup) -> str:
    """``template`` with every ``${NAME}`` read through ``lookup`` (``""`` when
    unset) and every ``$[expr]`` evaluated."""
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("$", i)
        while j >= 0 and (j + 1 >= n or template[j + 1] not in "{["):
            j = template.find("$", j + 1)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        kind = template[j + 1]
        close = "}" if kind == "{" else "]"
        end, needsub = _match_end(template, j + 2, kind, close)
        closed = end <= n and template[end - 1:end] == close and end > j + 2
        body = template[j + 2:end - 1] if closed else template[j + 2:end]
        if not closed:
            log.warning("missing %r in %r", close, template)
        if needsub:
            body = substitute(body, lookup)
        if kind == "{":
            out.append(lookup(body))
        else:
            out.append(evaluate(body))
        i = end
    return "".join(out)


# ----------------------------------------------------------------- expressions

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<op>==|!=|<=|>=|=~|~~|::|\|\||&&|[=<>+\-()|&*/%?!:,])
  | (?P<quoted>"[^"]*")
  | (?P<word>(?:[a-zA-Z0-9.';\\_^#@\x80-\U0010ffff]|\$(?!\{))+)
""", re.VERBOSE)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
_SUPPORTED_OPS = frozenset({"==", "=", "!=", "<", ">", "<=", ">=", "+", "-", "(", ")"})


@dataclass(slots=True)
class _Val:
    """``struct val``: a number, a numeric string (a number token) or a string."""

    kind: str  # "number" | "numeric" | "string"
    text: str = ""
    num: int | float = 0

    def to_number(self) -> bool:
        if self.kind == "number":
            return True
        if self.kind == "string":
            return False
        value = float(self.text)
        self.num = int(value) if value.is_integer() and "." not in self.text else value
        self.kind = "number"
        return True

    def as_text(self) -> str:
        return format_number(self.num) if self.kind == "number" else self.text


def format_number(value: int | float) -> str:
    """``%.18Lg``."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return format(value, ".18g")


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise _SyntaxError(f"unexpected {expr[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind == "ws":
            continue
        text = m.group()
        if kind == "op" and text not in _SUPPORTED_OPS:
            raise UnsupportedExpression(
                f"$[{expr}]: operator {text!r} is not evaluated by the simulator "
                "(only numbers, quoted strings, + - and comparisons)")
        out.append((kind, text))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _SyntaxError("unexpected end")
        self.pos += 1
        return tok

    def comparison(self) -> _Val:
        left = self.additive()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in _COMPARATORS:
            self.pos += 1
            left = _compare(tok[1], left, self.additive())
        return left

    def additive(self) -> _Val:
        left = self.unary()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in "+-":
            self.pos += 1
            right = self.unary()
            left = _plus(left, right) if tok[1] == "+" else _minus(left, right)
        return left

    def unary(self) -> _Val:
        kind, text = self.take()
        if kind == "op" and text == "-":
            operand = self.unary()
            if not operand.to_number():
                log.warning("non-numeric argument")
                return _Val("number", num=0)
            return _Val("number", num=-operand.num)
        if kind == "op" and text == "(":
            inner = self.comparison()
            if self.take() != ("op", ")"):
                raise _SyntaxError("missing )")
            return inner
        if kind == "op":
            raise _SyntaxError(f"unexpected {text!r}")
        if kind == "word" and self.peek() == ("op", "("):
            raise UnsupportedExpression(f"function {text}(...) in an expression is not "
                                        "evaluated by the simulator")
        if kind == "word" and _NUMBER.match(text):
            return _Val("numeric", text)
        return _Val("string", text)


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}


def _compare(op: str, a: _Val, b: _Val) -> _Val:
    compare = _COMPARATORS[op]
    if a.kind == "string" or b.kind == "string":  # strcoll
        result = compare(a.as_text(), b.as_text())
    else:
        a.to_number()
        b.to_number()
        result = compare(a.num, b.num)
    return _Val("number", num=int(result))


def _plus(a: _Val, b: _Val) -> _Val:
    if not a.to_number():
        log.warning("non-numeric argument")
        return b if b.to_number() else _Val("number", num=0)
    if not b.to_number():
        return a
    return _Val("number", num=a.num + b.num)


def _minus(a: _Val, b: _Val) -> _Val:
    if not a.to_number():
        log.warning("non-numeric argument")
        return _Val("number", num=-b.num) if b.to_number() else _Val("number", num=0)
    if not b.to_number():
        log.warning("non-numeric argument")
        return a
    return _Val("number", num=a.num - b.num)


def evaluate(expr: str) -> str:
    """The value of ``$[expr]`` (variables already substituted)."""
    try:
        tokens = _tokens(expr)
        if not tokens:
            return ""
        parser = _Parser(tokens)
        value = parser.comparison()
        if parser.peek() is not None:
            raise _SyntaxError(f"unexpected {parser.peek()!r}")
    except _SyntaxError as exc:
        log.warning("ast_yyerror(): syntax error: %s; Input:\n%s", exc, expr)
        return "0"
    return value.as_text()
