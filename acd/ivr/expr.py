"""Conditions and text templates in flows: parsed once, checked, evaluated safely.

A condition is a small Python-like expression::

    caller.vip_level >= 2 and dialect in ("cantonese", "minnan")
    not matches(account, "[0-9]{8}") or now.hour < 8

It is parsed with :mod:`ast` and only a whitelist of node types is accepted
(comparisons, ``and``/``or``/``not``, ``+ - *``, literals, names, dotted
names and the functions in :data:`FUNCTIONS`), so nothing from a file is ever
executed as code.  The same tree gives the static checks the names a
condition reads (undefined variables) before any call.

Names:

* ``foo`` - a flow variable (``variables:``, ``set``, ``input``, ``lookup``,
  ``record``); ``language`` and ``dialect`` always exist;
* ``caller.number``, ``caller.name``, ``caller.<attribute>`` - the caller and
  their profile, the customers table's columns (``caller.vip_level``,
  ``caller.dialect``, ``caller.segment`` ...; ``caller.last_agent``; an
  attribute the profile lacks is ``none``;
  :data:`acd.core.profiles.CALLER_ATTRIBUTES`);
* ``now.hour``, ``now.minute``, ``now.weekday`` (``mon`` .. ``sun``),
  ``now.date`` (``2026-11-23``), ``now.time`` (``08:30``), in the flow's
  time zone;
* ``call.id``.

Values are text, numbers, ``true``/``false`` or ``none``.  Text that looks
like a number compares as a number with a number (``caller.vip_level >= 2`` works
when the profile says ``"2"``); a comparison that cannot be made is false.

A template is text with ``{name}`` holes (``"{caller.number}"``,
``"https://crm/balance?msisdn={caller.number}"``); ``{{`` and ``}}`` are
literal braces.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = str | int | float | bool | None

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: namespaces that are not flow variables
NAMESPACES = ("caller", "now", "call")
NOW_FIELDS = ("hour", "minute", "weekday", "date", "time")
CALL_FIELDS = ("id",)


class ExprError(ValueError):
    """A condition or template is wrong; ``column`` is 1-based within the text."""

    def __init__(self, message: str, column: int = 1) -> None:
        super().__init__(message)
        self.column = column


def _num(v: Value) -> float | None:
    """A finite number, or None ("inf" and "nan" from caller data are not numbers)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        n = float(v)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def _matches(text: Value, pattern: Value) -> bool:
    if text is None or not isinstance(pattern, str):
        return False
    try:
        return re.fullmatch(pattern, str(text)) is not None
    except re.error:
        return False


def _len(v: Value) -> int:
    return 0 if v is None else len(str(v))


def to_int(v: Value) -> int | None:
    """``int()`` of the flow language: a whole number, or None for non-numbers."""
    n = _num(v)
    return None if n is None else int(n)


FUNCTIONS: dict[str, tuple[int, Callable[..., Value]]] = {
    "len": (1, _len),
    "int": (1, to_int),
    "matches": (2, _matches),
    "lower": (1, lambda v: None if v is None else str(v).lower()),
    "startswith": (2, lambda v, p: v is not None and str(v).startswith(str(p))),
}

_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def _compare(op: ast.cmpop, a: Value, b: Value) -> bool:
    if isinstance(op, ast.In | ast.NotIn):
        items: tuple[Value, ...] = b if isinstance(b, tuple) else ()
        hit = any(_equal(a, x) for x in items)
        return hit if isinstance(op, ast.In) else not hit
    if isinstance(op, ast.Eq):
        return _equal(a, b)
    if isinstance(op, ast.NotEq):
        return not _equal(a, b)
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return _CMP[type(op)](na, nb)
    if isinstance(a, str) and isinstance(b, str):
        return _CMP[type(op)](a, b)
    return False


def _equal(a: Value, b: Value) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None and not (isinstance(a, str) and isinstance(b, str)):
        return na == nb
    return str(a) == str(b)


def _truthy(v: Value | tuple[Value, ...]) -> bool:
    if isinstance(v, str):
        return v != ""
    return bool(v)


@dataclass(frozen=True, slots=True)
class Expr:
    """A checked condition (or value expression)."""

    source: str
    tree: ast.expr
    names: frozenset[str]  # dotted names read: "foo", "caller.vip_level", "now.hour"

    def evaluate(self, env: Callable[[str], Value]) -> Value:
        return _eval(self.tree, env)  # type: ignore[return-value]

    def test(self, env: Callable[[str], Value]) -> bool:
        return _truthy(_eval(self.tree, env))

    def variables(self) -> frozenset[str]:
        """The flow variables read (namespaced names left out)."""
        return frozenset(n for n in self.names if "." not in n)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


_CONSTS = {"true": True, "false": False, "none": None, "True": True, "False": False,
           "None": None}


def _check(node: ast.expr, names: set[str]) -> None:
    col = getattr(node, "col_offset", 0) + 1
    match node:
        case ast.BoolOp():
            for v in node.values:
                _check(v, names)
        case ast.UnaryOp(op=ast.Not() | ast.USub()):
            _check(node.operand, names)
        case ast.BinOp(op=ast.Add() | ast.Sub() | ast.Mult()):
            _check(node.left, names)
            _check(node.right, names)
        case ast.Compare():
            _check(node.left, names)
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.Is | ast.IsNot):
                    raise ExprError("use == and != instead of 'is'", col)
                if isinstance(op, ast.In | ast.NotIn) and not isinstance(right, ast.Tuple
                                                                         | ast.List):
                    raise ExprError("'in' needs a list such as (\"a\", \"b\")",
                                    right.col_offset + 1)
                _check(right, names)
        case ast.Constant(value=v) if isinstance(v, str | int | float | bool) or v is None:
            pass
        case ast.Tuple() | ast.List():
            for e in node.elts:
                _check(e, names)
        case ast.Name() if node.id in _CONSTS:
            pass
        case ast.Name() | ast.Attribute():
            name = _dotted(node)
            if name is None:
                raise ExprError("only names like foo or caller.vip_level can be read", col)
            check_name(name, col)
            names.add(name)
        case ast.Call():
            fname = node.func.id if isinstance(node.func, ast.Name) else None
            if fname not in FUNCTIONS:
                raise ExprError(f"unknown function (known: {', '.join(FUNCTIONS)})", col)
            arity = FUNCTIONS[fname][0]
            if node.keywords or len(node.args) != arity:
                raise ExprError(f"{fname}() takes {arity} value(s)", col)
            for a in node.args:
                _check(a, names)
        case _:
            raise ExprError(f"{type(node).__name__.lower()} is not allowed in a condition "
                            "(use comparisons, and/or/not, + - *, names and quoted text)",
                            col)


def check_name(name: str, col: int = 1) -> None:
    """Raise ExprError for a namespaced name that cannot exist."""
    parts = name.split(".")
    if any(p.startswith("_") for p in parts):
        raise ExprError(f"{name!r}: names may not start with '_'", col)
    if parts[0] in NAMESPACES:
        if len(parts) != 2:
            raise ExprError(f"{name!r}: use {parts[0]}.<field>", col)
        if parts[0] == "now" and parts[1] not in NOW_FIELDS:
            raise ExprError(f"{name!r}: now has {', '.join(NOW_FIELDS)}", col)
        if parts[0] == "call" and parts[1] not in CALL_FIELDS:
            raise ExprError(f"{name!r}: call has {', '.join(CALL_FIELDS)}", col)
    elif len(parts) != 1:
        raise ExprError(f"{name!r}: only caller., now. and call. names have a dot", col)


#: the longest condition read from a flow, and its deepest nesting (its checks
#: and its evaluation recurse, in the engine too)
MAX_EXPR_CHARS, MAX_EXPR_DEPTH = 1000, 50


def parse_expr(source: str) -> Expr:
    text = source.strip()
    if not text:
        raise ExprError("the condition is empty")
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"the condition is {len(text):,} characters long (at most "
                        f"{MAX_EXPR_CHARS:,}): split it with set or branch nodes")
    try:
        tree = ast.parse(text, mode="eval").body
        if _depth(tree) > MAX_EXPR_DEPTH:
            raise RecursionError
        names: set[str] = set()
        _check(tree, names)
    except SyntaxError as exc:
        raise ExprError(f"not a valid condition: {exc.msg}", exc.offset or 1) from None
    except (RecursionError, MemoryError):  # the parser's own stack: "- - - ... 1"
        raise ExprError(f"the condition nests more than {MAX_EXPR_DEPTH} levels deep") \
            from None
    return Expr(text, tree, frozenset(names))


def _depth(tree: ast.AST) -> int:
    """How deep the tree nests (without recursion)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _eval(node: ast.expr, env: Callable[[str], Value]) -> Value | tuple[Value, ...]:
    match node:
        case ast.BoolOp(op=ast.And()):
            return all(_truthy(_eval(v, env)) for v in node.values)
        case ast.BoolOp():
            return any(_truthy(_eval(v, env)) for v in node.values)
        case ast.UnaryOp(op=ast.Not()):
            return not _truthy(_eval(node.operand, env))
        case ast.UnaryOp():
            n = _num(_eval(node.operand, env))  # type: ignore[arg-type]
            return None if n is None else -n
        case ast.BinOp():
            a = _eval(node.left, env)
            b = _eval(node.right, env)
            na, nb = _num(a), _num(b)  # type: ignore[arg-type]
            if isinstance(node.op, ast.Add) and (na is None or nb is None):
                return f"{'' if a is None else a}{'' if b is None else b}"
            if na is None or nb is None:
                return None
            r = na + nb if isinstance(node.op, ast.Add) else \
                na - nb if isinstance(node.op, ast.Sub) else na * nb
            return int(r) if r == int(r) else r
        case ast.Compare():
            left = _eval(node.left, env)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = _eval(right_node, env)
                if not _compare(op, left, right):  # type: ignore[arg-type]
                    return False
                left = right
            return True
        case ast.Constant():
            v = node.value
            return v if v is None or isinstance(v, str | int | float | bool) else str(v)
        case ast.Tuple() | ast.List():
            return tuple(_eval(e, env) for e in node.elts)  # type: ignore[misc]
        case ast.Name() if node.id in _CONSTS:
            return _CONSTS[node.id]
        case ast.Call():
            assert isinstance(node.func, ast.Name)
            fn = FUNCTIONS[node.func.id][1]
            return fn(*(_eval(a, env) for a in node.args))
        case _:
            name = _dotted(node)
            return None if name is None else env(name)


# ------------------------------------------------------------------ templates

_HOLE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[tuple[bool, str], ...]  # (is_name, text)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t for is_name, t in self.parts if is_name)

    def variables(self) -> frozenset[str]:
        return frozenset(n for n in self.names if "." not in n)

    def render(self, env: Callable[[str], Value]) -> str:
        out: list[str] = []
        for is_name, text in self.parts:
            if is_name:
                v = env(text)
                out.append("" if v is None else _fmt(v))
            else:
                out.append(text)
        return "".join(out)

    def render_url(self, env: Callable[[str], Value]) -> str:
        """As :meth:`render`, each value percent-encoded for where it lands
        in the URL, so that what a caller sends (their caller id, digits
        they typed) stays one value: in the query (once the URL so far holds
        a ``?``) every character that could end or add a parameter
        (``& = + # ?``, spaces, anything not ASCII) is encoded, so a caller
        id ``1&admin=1`` stays one value and ``+8613800138000`` arrives as
        ``%2B8613800138000``; in the path ``/`` too, and a value of ``.``
        or ``..`` has its dots encoded (no path of the caller's making).
        A variable that opens the template is a base URL: only spaces and
        non-ASCII are encoded in it."""
        out: list[str] = []
        for i, (is_name, text) in enumerate(self.parts):
            if not is_name:
                out.append(text)
                continue
            v = env(text)
            value = "" if v is None else _fmt(v)
            if i == 0:
                out.append(urllib.parse.quote(value, safe=_URL_SAFE))
            elif "?" in "".join(out):
                out.append(urllib.parse.quote(value, safe=_VALUE_SAFE))
            elif value in (".", ".."):
                out.append(value.replace(".", "%2E"))
            else:
                out.append(urllib.parse.quote(value, safe=_VALUE_SAFE))
        return "".join(out)

    @property
    def constant(self) -> bool:
        return not any(is_name for is_name, _ in self.parts)


#: kept as they are in a value put into a URL's path or query: RFC 3986's
#: unreserved characters and the sub-delimiters that end no segment or
#: parameter
_VALUE_SAFE = "-._~!$'()*,;:@"
#: kept in a base URL (a variable opening the template): every reserved character
_URL_SAFE = _VALUE_SAFE + "/?#[]&=+%"


def _fmt(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)


def parse_template(source: str) -> Template:
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _HOLE.finditer(source):
        if m.start() > pos:
            parts.append((False, source[pos:m.start()]))
        tok = m.group(0)
        if tok in ("{{", "}}"):
            parts.append((False, tok[0]))
        elif tok in ("{", "}"):
            raise ExprError(f"a lone {tok!r}: write {tok * 2} for a brace, or {{name}}",
                            m.start() + 1)
        else:
            name = (m.group(1) or "").strip()
            if not name or not all(NAME_RE.match(p) for p in name.split(".")):
                raise ExprError(f"{{{m.group(1)}}} is not a name like {{account}} or "
                                "{caller.number}", m.start() + 1)
            check_name(name, m.start() + 1)
            parts.append((True, name))
        pos = m.end()
    if pos < len(source):
        parts.append((False, source[pos:]))
    return Template(source, tuple(parts))


def env_from(variables: Mapping[str, Value], caller: Mapping[str, str],
             now: Mapping[str, Value], call_id: str = "") -> Callable[[str], Value]:
    """The name lookup used by conditions and templates."""

    def env(name: str) -> Value:
        if "." not in name:
            return variables.get(name)
        ns, _, field = name.partition(".")
        if ns == "caller":
            return caller.get(field)
        if ns == "now":
            return now.get(field)
        if ns == "call" and field == "id":
            return call_id
        return None

    return env
