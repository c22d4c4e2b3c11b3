"""Reading YAML with positions: every error names file, line and column.

PyYAML's node graph keeps each value's place in the file.  :class:`Reader`
checks types and ranges on nodes and raises :class:`YamlError` with that
place (the flow, routing, scenario and SMS files); or :meth:`Reader.plain`
turns the nodes into plain values, as ``yaml.safe_load`` gives them, with a
:class:`Places` that finds each value's place by its path (``acd.yaml``,
checked as values).  Nothing from a file is ever evaluated.

Every YAML file is read by :func:`read_text` and composed by :func:`compose`,
which are safe against files written to hurt: a file is at most
:data:`~acd.loaders.textfile.YAML_MAX_BYTES` of UTF-8
(:mod:`acd.loaders.textfile`); values nest at most :data:`MAX_DEPTH` deep;
a document holds at most :data:`MAX_VALUES` values; aliases (``*name``)
repeat at most :data:`MAX_ALIAS_VALUES` values in all (a "billion laughs"
bomb is refused at its first alias over the bound) and never the value they
stand in; no text holds a NUL or a lone surrogate (``"\\0"``,
``"\\ud800"``).  Each refusal names the line and column where it happens.
libyaml parses when PyYAML has it (five times faster); the nodes are
composed here, without recursion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.resolver import Resolver

from acd.loaders.textfile import YAML_MAX_BYTES, TextFileError, clip, read_text_file

#: libyaml's parser, if PyYAML was built with it (else the pure one parses)
_CParser: Any
try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _CParser = None

#: (line, column), both from 1
Place = tuple[int, int]

#: values nest at most this deep (mappings and lists in each other)
MAX_DEPTH = 64
#: aliases repeat at most this many values in all (each value under an
#: anchor counts once per alias to it)
MAX_ALIAS_VALUES = 100_000
#: a document holds at most this many values (texts, numbers, lists, mappings):
#: the work of reading a file is bounded by this, not only by its size
MAX_VALUES = 100_000
#: a syntax error found by libyaml in a file this small is told in PyYAML's words
_RETELL_BYTES = 64 * 1024

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_IMPLICIT: dict[Any, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
_WILDCARD = _IMPLICIT.get(None, [])
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_E = TypeVar("_E", bound="YamlError")


class YamlError(Exception):
    """A YAML file is wrong; the message says where and what (line 0: the
    file as a whole, ``file: problem``).  ``unreadable``: the file could not
    be read or parsed at all (missing, not UTF-8, not YAML, over a bound),
    as opposed to a readable file with a wrong value (exit 2, not 1)."""

    unreadable: bool = False

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        message = clip(message)  # a value quoted from the file may be megabytes long
        super().__init__(f"{file}:{line}:{column}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.problem = message


class YamlLimitError(yaml.MarkedYAMLError):
    """A document refused for what it would cost (nesting, aliases) or hold
    (NUL, lone surrogates), not for its syntax."""


def _limit(mark: Any, problem: str) -> YamlLimitError:
    return YamlLimitError(None, None, problem, mark)


def _scalar_tag(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag PyYAML's resolver gives a scalar without an explicit one."""
    if implicit[0]:
        for tag, regexp in _IMPLICIT.get(value[0] if value else "", []) + _WILDCARD:
            if regexp.match(value):
                return tag
    return _STR


def _compose_events(events: Any, max_values: int) -> yaml.Node | None:
    """The one document of an event stream as nodes, or None for an empty
    stream; raises yaml.MarkedYAMLError (YamlLimitError for the bounds)."""
    get = events.get_event
    get()  # stream start
    if events.check_event(StreamEndEvent):
        return None
    get()  # document start
    anchors: dict[str, yaml.Node] = {}
    sizes: dict[int, int] = {}  # values under an anchored node, aliases expanded
    repeated = 0  # values repeated by aliases so far
    values = 0  # nodes made so far
    # open collections: [node, values under it so far, anchor, key waiting for its value]
    stack: list[list[Any]] = []
    root: yaml.Node
    while True:
        ev = get()
        cls = ev.__class__
        node: yaml.Node
        if cls is not AliasEvent:
            values += 1
            if values > max_values:
                raise _limit(ev.start_mark, f"the file holds more than {max_values:,} values")
        if cls is ScalarEvent:
            value = ev.value
            if _BAD_TEXT.search(value):
                raise _limit(ev.start_mark, "a NUL or a lone surrogate (\\0, \\ud800) in a text "
                                            "is not allowed")
            tag = ev.tag
            if tag is None or tag == "!":
                tag = _scalar_tag(value, ev.implicit)
            node = yaml.ScalarNode(tag, value, ev.start_mark, ev.end_mark, style=ev.style)
            size = 1
            if ev.anchor is not None:
                _anchor(anchors, ev, node)
                sizes[id(node)] = 1
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise _limit(ev.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            tag = ev.tag
            mapping = cls is MappingStartEvent
            if tag is None or tag == "!":
                tag = _MAP if mapping else _SEQ
            node = (yaml.MappingNode if mapping else yaml.SequenceNode)(
                tag, [], ev.start_mark, None, flow_style=ev.flow_style)
            if ev.anchor is not None:
                _anchor(anchors, ev, node)
            stack.append([node, 1, ev.anchor, None])
            continue
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            node, size, anchor, _ = stack.pop()
            node.end_mark = ev.end_mark
            if anchor is not None:
                sizes[id(node)] = size
        elif cls is AliasEvent:
            if ev.anchor not in anchors:
                raise yaml.composer.ComposerError(None, None, f"found undefined alias "
                                                  f"{ev.anchor!r}", ev.start_mark)
            node = anchors[ev.anchor]
            got = sizes.get(id(node))
            if got is None:
                raise _limit(ev.start_mark, f"alias *{ev.anchor} stands inside the value it "
                                            "names (a loop)")
            size = got
            repeated += size
            if repeated > MAX_ALIAS_VALUES:
                raise _limit(ev.start_mark, f"aliases repeat more than {MAX_ALIAS_VALUES:,} "
                                            "values (an alias bomb?)")
        else:  # pragma: no cover - the parser gives nothing else inside a document
            raise yaml.composer.ComposerError(None, None, f"unexpected {cls.__name__}",
                                              ev.start_mark)
        if not stack:
            root = node
            break
        frame = stack[-1]
        frame[1] += size
        parent = frame[0]
        if isinstance(parent, yaml.MappingNode):
            if frame[3] is None:
                frame[3] = node
            else:
                parent.value.append((frame[3], node))
                frame[3] = None
        else:
            parent.value.append(node)
    get()  # document end
    if not events.check_event(StreamEndEvent):
        ev = get()
        raise yaml.composer.ComposerError(None, None, "a second document (after ---): the "
                                          "file must hold one", ev.start_mark)
    return root


def _anchor(anchors: dict[str, yaml.Node], ev: Any, node: yaml.Node) -> None:
    if ev.anchor in anchors:
        raise yaml.composer.ComposerError(
            f"found duplicate anchor {ev.anchor!r}; first occurrence",
            anchors[ev.anchor].start_mark, "second occurrence", ev.start_mark)
    anchors[ev.anchor] = node


def _parse(text: str, fast: bool, max_values: int) -> yaml.Node | None:
    events = _CParser(text) if fast and _CParser is not None else yaml.SafeLoader(text)
    try:
        return _compose_events(events, max_values)
    finally:
        events.dispose()


def compose(text: str, max_values: int = MAX_VALUES) -> yaml.Node | None:
    """The document in ``text`` as nodes (None: no document), within the
    bounds of this module; raises yaml.MarkedYAMLError (YamlLimitError for a
    bound), with its place."""
    try:
        return _compose(text, max_values)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: placed
        start = text.rfind("\n", 0, exc.position) + 1
        mark = yaml.Mark("<file>", exc.position, text.count("\n", 0, exc.position),
                         exc.position - start, "", 0)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise yaml.MarkedYAMLError(None, None, f"the character U+{char:04X} is not allowed "
                                   "in YAML (control characters are not)", mark) from None


def _compose(text: str, max_values: int) -> yaml.Node | None:
    if _CParser is None:
        return _parse(text, False, max_values)
    try:
        return _parse(text, True, max_values)
    except YamlLimitError:
        raise
    except (yaml.YAMLError, UnicodeError) as exc:
        if len(text) > _RETELL_BYTES:
            if isinstance(exc, UnicodeError):
                return _parse(text, False, max_values)
            if isinstance(exc, yaml.reader.ReaderError):  # libyaml counts bytes: characters
                exc.position = len(text.encode()[:exc.position].decode("utf-8", "ignore"))
            if isinstance(exc, yaml.MarkedYAMLError) and "nesting depth" in str(exc.problem):
                # libyaml scans a deep [[[[... to its own bound (1000) before the first event
                raise _limit(exc.problem_mark, f"nested more than {MAX_DEPTH} levels deep") \
                    from None
            raise
        # the same error in PyYAML's words (and places), which the docs show
        _parse(text, False, max_values)
        raise  # pragma: no cover - PyYAML took what libyaml refused: libyaml's words


def _problem(exc: yaml.YAMLError) -> tuple[int, int, str]:
    """(line, column, problem) of a YAML error."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if isinstance(exc, YamlLimitError):
            return line, column, str(exc.problem)
        return line, column, f"not valid YAML: {exc.problem or exc}"
    return 1, 1, f"not valid YAML: {exc}"


def plain_value(node: yaml.Node) -> Any:
    """A node's value as ``yaml.safe_load`` gives it (raises yaml.YAMLError)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


class Reader:
    """Typed access to composed YAML nodes, raising positioned errors."""

    def __init__(self, file: str, error: type[YamlError] = YamlError) -> None:
        self.file = file
        self.error = error

    def err(self, node: yaml.Node, message: str) -> YamlError:
        m = node.start_mark
        return self.error(self.file, m.line + 1, m.column + 1, message)

    def compose(self, text: str) -> yaml.Node:
        """The document's nodes (:func:`compose`), or a positioned error."""
        try:
            root = compose(text)
        except yaml.YAMLError as exc:
            raise _unreadable(self.error(self.file, *_problem(exc))) from None
        if root is None:
            raise self.error(self.file, 1, 1, "the file is empty")
        return root

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, f"{what} must be a mapping of keys to values")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.err(k, f"{what}: keys must be plain names")
            if k.value in out:
                raise self.err(k, f"{what}: key {k.value!r} appears twice")
            out[str(k.value)] = (k, v)
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, f"{what} must be a list")
        return list(node.value)

    def known(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], what: str,
              allowed: set[str], required: set[str] | None = None,
              where: yaml.Node | None = None) -> None:
        for key, (knode, _) in fields.items():
            if key not in allowed:
                raise self.err(knode, f"{what}: unknown key {key!r} "
                                      f"(known: {', '.join(sorted(allowed))})")
        for key in sorted(required or ()):
            if key not in fields and where is not None:
                raise self.err(where, f"{what} needs a {key!r}")

    def string(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            raise self.err(node, f"{what} must be a non-empty text")
        return str(node.value)

    def strings(self, node: yaml.Node, what: str) -> list[str]:
        """A text or a list of texts."""
        if isinstance(node, yaml.ScalarNode):
            return [self.string(node, what)]
        return [self.string(n, what) for n in self.sequence(node, what)]

    def number(self, node: yaml.Node, what: str, lo: float, hi: float) -> float:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = float(node.value)
            except ValueError:
                pass
            else:
                if lo <= value <= hi:
                    return value
        raise self.err(node, f"{what} must be a number from {lo:g} to {hi:g}")

    def integer(self, node: yaml.Node, what: str, lo: int, hi: int) -> int:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = int(node.value)
            except ValueError:
                pass
            else:
                if lo <= value <= hi:
                    return value
        raise self.err(node, f"{what} must be a whole number from {lo} to {hi}")

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if isinstance(node, yaml.ScalarNode) and node.value in ("true", "false", "yes", "no"):
            return node.value in ("true", "yes")
        raise self.err(node, f"{what} must be true or false")

    def plain(self, root: yaml.Node) -> tuple[Any, Places]:
        """The document's values as ``yaml.safe_load`` gives them (merge keys
        ``<<`` expanded) and the place of each value and key in it; a value
        no safe type can hold is a positioned error."""
        places = Places()
        twice = _key_twice(root)
        if twice is not None:
            raise self.err(twice, f"key {twice.value!r} appears twice in its mapping")
        loader = yaml.SafeLoader("")
        try:
            try:  # expands merge keys (<<) in the nodes
                data = loader.construct_document(root)
            except (ValueError, TypeError, AttributeError, OverflowError):
                # an explicit tag the text does not fit (``!!int abc``): name the node
                node = _unconstructible(root) or root
                line, column = _place(node.start_mark)
                tag = node.tag.replace("tag:yaml.org,2002:", "!!")
                raise self.error(self.file, line, column, f"not valid YAML: {tag} cannot hold "
                                 f"{getattr(node, 'value', '')!r}") from None
            done: set[int] = set()

            def walk(node: yaml.Node, path: str, key: yaml.Node | None) -> None:
                places.add(path, _place(node.start_mark),
                           None if key is None else _place(key.start_mark))
                if id(node) in done:  # an alias: its anchor is walked once
                    return
                done.add(id(node))
                if isinstance(node, yaml.MappingNode):
                    for k, v in node.value:
                        if isinstance(k, yaml.ScalarNode):
                            name = str(loader.construct_object(k))
                            walk(v, f"{path}.{name}" if path else name, k)
                elif isinstance(node, yaml.SequenceNode):
                    for i, item in enumerate(node.value):
                        walk(item, f"{path}[{i}]", None)

            walk(root, "", None)
        except yaml.MarkedYAMLError as exc:
            line, column = _place(exc.problem_mark) if exc.problem_mark else (1, 1)
            raise self.error(self.file, line, column, f"not valid YAML: {exc.problem or exc}") \
                from None
        finally:
            loader.dispose()
        return data, places


def _walk(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every node under ``root`` once (an alias's node is not walked twice),
    keys and values in the order they are written, without recursion."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in reversed(node.value) for v in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))


def _key_twice(root: yaml.Node) -> yaml.Node | None:
    """The first key written twice in one mapping (merge keys ``<<`` aside:
    a key given beside a merge overrides the merged one, as it should)."""
    for node in _walk(root):
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for k, _v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if (k.tag, k.value) in keys:
                        return k
                    keys.add((k.tag, k.value))
    return None


def _unconstructible(root: yaml.Node) -> yaml.Node | None:
    """The first scalar under ``root`` that the safe constructor refuses."""
    for node in _walk(root):
        if isinstance(node, yaml.ScalarNode):
            loader = yaml.SafeLoader("")
            try:
                loader.construct_object(node)
            except (ValueError, TypeError, AttributeError, OverflowError):
                return node
            finally:
                loader.dispose()
    return None


class Places:
    """Where the values of one document stand, by their path as messages
    spell it (``ami.port``, ``agents[2].skills.vip``; ``""`` is the
    document): the place of each value, and of its key if it has one."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[Place, Place | None]] = {"": ((1, 1), None)}

    def add(self, path: str, value: Place, key: Place | None = None) -> None:
        self._at[path] = (value, key)

    def find(self, path: str, *, key: bool = False) -> Place:
        """The place of the value at ``path``, or of its key (``key``); a path
        the document does not have (a missing key; a value inside an alias,
        whose anchor is walked under its own path) is placed at the value of
        its nearest enclosing path."""
        while path and path not in self._at:
            cut = max(path.rfind("."), path.rfind("["))
            path, key = path[:max(cut, 0)], False
        value, key_place = self._at.get(path, ((1, 1), None))
        return key_place if key and key_place is not None else value


def _place(mark: yaml.Mark) -> Place:
    return mark.line + 1, mark.column + 1


def read_text(path: str | Path, error: type[YamlError] = YamlError,
              what: str = "file", limit: int = YAML_MAX_BYTES) -> tuple[str, str]:
    """(text, file name), or ``error`` naming the file (line 0: a missing,
    unreadable or too big file, a folder) or the place of a byte that is
    not UTF-8 (:func:`acd.loaders.textfile.read_text_file`)."""
    p = Path(path)
    try:
        return read_text_file(p, what, limit), str(p)
    except TextFileError as exc:
        raise _unreadable(error(exc.file, exc.line, exc.column, exc.problem)) from None


def _unreadable(exc: _E) -> _E:
    exc.unreadable = True
    return exc


def load_plain(path: str | Path, what: str = "file") -> Any:
    """The values of a YAML file as ``yaml.safe_load`` gives them (None for
    an empty one), read within the bounds of this module; or YamlError."""
    text, file = read_text(path, YamlError, what)
    reader = Reader(file)
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        raise _unreadable(YamlError(file, *_problem(exc))) from None
    if root is None:
        return None
    return reader.plain(root)[0]
