"""Reading YAML with positions: every error names file, line and column.

PyYAML's node graph (``yaml.compose``) keeps each value's place in the file.
:class:`Reader` checks types and ranges on nodes and raises :class:`YamlError`
with that place (the flow, routing, scenario and SMS files); or
:meth:`Reader.plain` turns the nodes into plain values, as ``yaml.safe_load``
gives them, with a :class:`Places` that finds each value's place by its path
(``acd.yaml``, checked as values).  Nothing from a file is ever evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: (line, column), both from 1
Place = tuple[int, int]


class YamlError(Exception):
    """A YAML file is wrong; the message says where and what."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.problem = message


class Reader:
    """Typed access to composed YAML nodes, raising positioned errors."""

    def __init__(self, file: str, error: type[YamlError] = YamlError) -> None:
        self.file = file
        self.error = error

    def err(self, node: yaml.Node, message: str) -> YamlError:
        m = node.start_mark
        return self.error(self.file, m.line + 1, m.column + 1, message)

    def compose(self, text: str) -> yaml.Node:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise self.error(self.file, line, col, f"not valid YAML: {exc.problem or exc}") \
                from None
        except yaml.YAMLError as exc:
            raise self.error(self.file, 1, 1, f"not valid YAML: {exc}") from None
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


def _unconstructible(root: yaml.Node) -> yaml.Node | None:
    """The first scalar under ``root`` that the safe constructor refuses."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            loader = yaml.SafeLoader("")
            try:
                loader.construct_object(node)
            except (ValueError, TypeError, AttributeError, OverflowError):
                return node
            finally:
                loader.dispose()
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in reversed(node.value) for v in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
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
              what: str = "file") -> tuple[str, str]:
    """(text, file name) or a positioned error for a missing/unreadable file."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except FileNotFoundError:
        raise error(str(p), 0, 0, f"{what} not found") from None
    except UnicodeDecodeError as exc:
        raise error(str(p), 1, 1, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(str(p), 0, 0, f"cannot read the {what}: {exc.strerror}") from None
