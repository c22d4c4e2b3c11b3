"""Reading YAML with positions: every error names file, line and column.

PyYAML's node graph (``yaml.compose``) keeps each value's place in the file;
these helpers check types and ranges on nodes and raise :class:`YamlError`
with that place.  Nothing from a file is ever evaluated.
"""

from __future__ import annotations

from pathlib import Path

import yaml


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
