"""The import graph of acd/ and sim/: no circles, folders in layers, and the
PBX simulator apart.

Every import statement counts, wherever it stands: inside a function, under
``if TYPE_CHECKING:``, relative or absolute.  A back reference that is only
there for a type is still a circle for the reader; it is replaced by a small
``typing.Protocol`` in the lower module (``sim.channels.CallerHook``,
``sim.agi_client.AgiHost`` ...).

The folders are layers (``LAYERS``, bottom to top, as drawn in
docs/ARCHITECTURE.md): a module imports from its own folder and the folders
below it, never from one above.

``sim/`` is the fake Asterisk: of ``acd`` it may use only the codecs
(``acd.protocols``), never the engine (``acd.runtime``) or anything else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("acd", "sim")
#: what sim/ may import from acd
SIM_MAY_USE = ("acd.protocols",)
#: the folders (and lone modules) of acd/ and sim/, bottom to top: the
#: sans-I/O codecs and core at the bottom, then the planning formulas, the
#: file loaders, the IVR language, the SMS rules and the prompt pack; the I/O side (adapters,
#: drawings, the control API, the engine); the PBX simulator (which uses only
#: the codecs), the load simulator that drives the engine against it, the
#: build's report of which router runs, and the command line at the top.
LAYERS = (
    "acd/__init__.py",
    "acd/logs",
    "acd/protocols",
    "acd/core",
    "acd/planning",
    "acd/reports",
    "acd/loaders",
    "acd/qa",
    "acd/ivr",
    "acd/sms",
    "acd/prompts",
    "acd/adapters",
    "acd/plot",
    "acd/api",
    "acd/runtime",
    "sim",
    "acd/loadsim",
    "acd/compiled.py",
    "acd/cli",
)


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


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every name the file imports (``from a import b``:
    ``a`` and ``a.b``), in the order they stand."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return sorted(found)


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name the file imports (``from a import b``: ``a`` and ``a.b``)."""
    return {name for _, name in imports(module, path)}


def known_module(modules: Mapping[str, Path], name: str) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of ``modules``."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports (the longest known prefix
    of each imported name; itself excluded)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {known_module(modules, name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def layer_of(root: Path, path: Path, layers: Sequence[str]) -> str | None:
    """The entry of ``layers`` that holds the file (the longest that is its
    path or a folder above it), or None."""
    rel = path.relative_to(root).as_posix()
    held = [layer for layer in layers if rel == layer or rel.startswith(layer + "/")]
    return max(held, key=len) if held else None


def upward_imports(root: Path, modules: Mapping[str, Path],
                   layers: Sequence[str]) -> list[str]:
    """Each import from a layer above the importer's own, as ``file:line:
    folder imports from a higher folder``; and each module in no layer."""
    rank = {layer: i for i, layer in enumerate(layers)}
    wrong: list[str] = []
    for module, path in modules.items():
        own = layer_of(root, path, layers)
        rel = path.relative_to(root).as_posix()
        if own is None:
            wrong.append(f"{rel}: in no layer (add its folder to LAYERS)")
            continue
        upward: dict[tuple[int, str], str] = {}  # (line, their layer) -> module
        for line, name in imports(module, path):
            target = known_module(modules, name)
            if target is None or target == module:
                continue
            theirs = layer_of(root, modules[target], layers)
            if theirs is not None and rank[theirs] > rank[own]:
                # ``from a import b`` names both a and a.b: keep the longer
                upward[line, theirs] = max(upward.get((line, theirs), ""), target, key=len)
        wrong.extend(f"{rel}:{line}: {own} imports from {theirs} ({target}), which is above it"
                     for (line, theirs), target in sorted(upward.items()))
    return wrong


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


def test_folders_import_only_from_the_folders_below_them() -> None:
    wrong = upward_imports(ROOT, module_files(ROOT, PACKAGES), LAYERS)
    assert wrong == [], ("imports against the layers (bottom to top: "
                         + ", ".join(LAYERS) + "):\n" + "\n".join(wrong))


def test_every_layer_is_there_once() -> None:
    assert sorted(set(LAYERS)) == sorted(LAYERS)
    assert [layer for layer in LAYERS if not (ROOT / layer).exists()] == []


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


def test_an_import_from_a_higher_folder_is_named_with_its_line(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    for sub in ("low", "mid", "top"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("import os\n\ndef f() -> None:\n"
                                      "    from pkg.mid import b\n")
    (pkg / "mid" / "b.py").write_text("from ..low import a\nfrom . import c\n")
    (pkg / "mid" / "c.py").write_text("")
    (pkg / "top" / "d.py").write_text("from pkg.mid.b import x\nimport pkg.low\n")
    (pkg / "loose.py").write_text("")
    modules = module_files(tmp_path, ["pkg"])
    layers = ("pkg/__init__.py", "pkg/low", "pkg/mid", "pkg/top")
    assert upward_imports(tmp_path, modules, layers) == [
        "pkg/loose.py: in no layer (add its folder to LAYERS)",
        "pkg/low/a.py:4: pkg/low imports from pkg/mid (pkg.mid.b), which is above it",
    ]
    assert upward_imports(tmp_path, modules, (*layers, "pkg/loose.py")) == [
        "pkg/low/a.py:4: pkg/low imports from pkg/mid (pkg.mid.b), which is above it"]
    # the order is what counts: turned over, every downward import is upward
    assert upward_imports(tmp_path, modules, ("pkg/__init__.py", "pkg/loose.py", "pkg/top",
                                              "pkg/mid", "pkg/low")) == [
        "pkg/mid/b.py:1: pkg/mid imports from pkg/low (pkg.low.a), which is above it",
        "pkg/top/d.py:1: pkg/top imports from pkg/mid (pkg.mid.b), which is above it",
        "pkg/top/d.py:2: pkg/top imports from pkg/low (pkg.low), which is above it",
    ]
