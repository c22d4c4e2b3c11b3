"""The import graph of acd/ and sim/: no circles, and the PBX simulator apart.

Every import statement counts, wherever it stands: inside a function, under
``if TYPE_CHECKING:``, relative or absolute.  A back reference that is only
there for a type is still a circle for the reader; it is replaced by a small
``typing.Protocol`` in the lower module (``sim.channels.CallerHook``,
``sim.agi_client.AgiHost`` ...).

``sim/`` is the fake Asterisk: of ``acd`` it may use only the codecs
(``acd.protocols``), never the engine (``acd.runtime``) or anything else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("acd", "sim")
#: what sim/ may import from acd
SIM_MAY_USE = ("acd.protocols",)


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the packages."""
    out: dict[str, Path] = {}
    for top in packages:
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name the file imports (``from a import b``: ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports (the longest known prefix
    of each imported name; itself excluded)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {known(name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The groups of modules that import each other (directly or through
    others), each sorted, largest first."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        reach[start] = seen
    groups: list[list[str]] = []
    done: set[str] = set()
    for m in sorted(graph):
        if m in done or m not in reach[m]:
            continue
        group = sorted(n for n in reach[m] if m in reach.get(n, ()))
        done.update(group)
        groups.append(group)
    return sorted(groups, key=lambda g: (-len(g), g))


def test_no_import_circles_in_acd_and_sim() -> None:
    found = circles(import_graph(module_files(ROOT, PACKAGES)))
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(g) for g in found)


def test_sim_uses_only_the_codecs_of_acd() -> None:
    graph = import_graph(module_files(ROOT, PACKAGES))
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.split(".")[0] == "sim"
                   for t in targets if t.split(".")[0] == "acd"
                   and not any(t == ok or t.startswith(ok + ".") for ok in SIM_MAY_USE))
    assert wrong == [], "sim/ imports from the engine:\n" + "\n".join(wrong)


# ------------------------------------------------ the checker itself can fail


def test_circles_are_found_with_their_members() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"},
             "f": {"a"}}
    assert circles(graph) == [["a", "b", "c"], ["e", "e2"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_type_checking_function_and_relative_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high import High\n")
    (pkg / "high.py").write_text("from .low import x\n")
    (pkg / "sub" / "a.py").write_text("def f() -> None:\n    from .. import high\n")
    (pkg / "sub" / "b.py").write_text("from . import a\nimport pkg.low.x\n")
    graph = import_graph(module_files(tmp_path, ["pkg"]))
    assert graph["pkg.high"] == {"pkg.low"}
    assert graph["pkg.low"] == {"pkg.high"}
    assert graph["pkg.sub.a"] == {"pkg", "pkg.high"}
    assert graph["pkg.sub.b"] == {"pkg.sub", "pkg.sub.a", "pkg.low"}
    assert circles(graph) == [["pkg.high", "pkg.low"]]
