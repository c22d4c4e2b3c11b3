"""Quality scoring forms: YAML files with positioned errors (docs/quality.md).

A form::

    name: hotline            # a key: letters, digits, - and _
    version: 3               # a text or a number; kept with every score
    title: Hotline call review
    pass_mark: 80            # optional: the score (0-100) a call needs to pass
    sections:
      - id: opening
        title: Opening 开场
        items:
          - id: greeting
            text: Greets with the standard opening 使用标准开场白
            kind: yes_no     # yes_no (default) or scale
            weight: 2        # > 0, default 1
          - id: empathy
            text: Shows empathy 表达同理心
            kind: scale
            max: 5           # answers 0..max
            pass_at: 3       # optional: a scale answer passes from here (default: half of max, up)
            na: true         # N/A allowed (default false)
          - id: verify
            text: Verifies the caller's identity before account details 核实身份
            fatal: true      # failed (no, or 0 on a scale): the whole score is 0

Item ids are unique across the form (answers name them).  Every problem is a
:class:`FormError` with ``file:line:col``, read through the project's bounded,
positioned YAML reader (:mod:`acd.loaders.yamlpos`).  Pure: the caller reads
the file (:func:`load_form` does it with :func:`~acd.loaders.yamlpos.read_text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from acd.loaders.yamlpos import Reader, YamlError, read_text

__all__ = ["EXAMPLE_FORM", "FORM_FILE", "Form", "FormError", "Item", "Section", "load_answers",
           "load_form", "parse_answers", "parse_form"]

#: the form looked for beside acd.yaml when ``qa.form`` is not set
FORM_FILE = "qa_form.yaml"
#: the example form shipped in the package (a copy of examples/qa_form.yaml):
#: the one used when acd.yaml names none and there is no qa_form.yaml beside it
EXAMPLE_FORM = Path(__file__).with_name("example_form.yaml")

#: names of forms, sections and items
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
#: a scale's largest ``max``
SCALE_MAX = 10
#: items in a form at most
MAX_ITEMS = 200
TEXT_MAX = 500

Kind = Literal["yes_no", "scale"]


class FormError(YamlError):
    """A scoring form is wrong: ``file:line:col: problem``."""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str
    section: str
    kind: Kind = "yes_no"
    weight: float = 1.0
    #: a scale's largest answer (1 for yes/no: yes is 1, no is 0)
    max: int = 1
    #: the answer an item passes from (yes/no: 1)
    pass_at: int = 1
    fatal: bool = False
    #: N/A allowed
    na: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Form:
    name: str
    version: str
    title: str
    sections: tuple[Section, ...]
    pass_mark: float | None = None
    file: str = "<form>"

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(i for s in self.sections for i in s.items)

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)


def _key(r: Reader, node: yaml.Node, what: str) -> str:
    value = r.string(node, what)
    if not KEY.fullmatch(value):
        raise r.err(node, f"{what} {value!r} must be a name: a letter, then letters, digits, "
                          "- or _ (at most 64)")
    return value


def _text(r: Reader, node: yaml.Node, what: str) -> str:
    value = r.string(node, what)
    if len(value) > TEXT_MAX:
        raise r.err(node, f"{what} is longer than {TEXT_MAX} characters")
    return value


ITEM_KEYS = {"id", "text", "kind", "weight", "max", "pass_at", "fatal", "na"}


def _item(r: Reader, node: yaml.Node, section: str, seen: dict[str, yaml.Node]) -> Item:
    f = r.mapping(node, f"section {section!r}: an item")
    r.known(f, f"section {section!r}: an item", ITEM_KEYS, {"id", "text"}, node)
    item_id = _key(r, f["id"][1], "item id")
    what = f"item {item_id!r}"
    if item_id in seen:
        first = seen[item_id].start_mark
        raise r.err(f["id"][1], f"{what} appears twice (first at line {first.line + 1})")
    seen[item_id] = f["id"][1]
    kind: Kind = "yes_no"
    if "kind" in f:
        k = r.string(f["kind"][1], f"{what}: kind")
        if k not in ("yes_no", "scale"):
            raise r.err(f["kind"][1], f"{what}: kind must be yes_no or scale, not {k!r}")
        kind = "scale" if k == "scale" else "yes_no"
    top = 1
    if kind == "scale":
        if "max" not in f:
            raise r.err(node, f"{what}: a scale needs a 'max' (its answers are 0..max)")
        top = r.integer(f["max"][1], f"{what}: max", 1, SCALE_MAX)
    elif "max" in f:
        raise r.err(f["max"][0], f"{what}: 'max' is for kind: scale (a yes_no item is yes or no)")
    pass_at = 1 if kind == "yes_no" else (top + 1) // 2
    if "pass_at" in f:
        if kind != "scale":
            raise r.err(f["pass_at"][0], f"{what}: 'pass_at' is for kind: scale")
        pass_at = r.integer(f["pass_at"][1], f"{what}: pass_at", 1, top)
    return Item(
        id=item_id, text=_text(r, f["text"][1], f"{what}: text"), section=section, kind=kind,
        weight=r.number(f["weight"][1], f"{what}: weight", 0.001, 1000) if "weight" in f else 1.0,
        max=top, pass_at=pass_at,
        fatal=r.boolean(f["fatal"][1], f"{what}: fatal") if "fatal" in f else False,
        na=r.boolean(f["na"][1], f"{what}: na") if "na" in f else False)


def parse_form(text: str, file: str = "<form>") -> Form:
    """The form in ``text``; :class:`FormError` names ``file:line:col``."""
    r = Reader(file, FormError)
    root = r.compose(text)
    top = r.mapping(root, "the form")
    r.known(top, "the form", {"name", "version", "title", "pass_mark", "sections"},
            {"name", "version", "sections"}, root)
    name = _key(r, top["name"][1], "name")
    vnode = top["version"][1]
    version = r.string(vnode, "version")
    if len(version) > 32:
        raise r.err(vnode, "version is longer than 32 characters")
    title = _text(r, top["title"][1], "title") if "title" in top else name
    pass_mark = r.number(top["pass_mark"][1], "pass_mark", 0, 100) if "pass_mark" in top \
        else None
    snodes = r.sequence(top["sections"][1], "sections")
    if not snodes:
        raise r.err(top["sections"][1], "sections is empty: a form needs at least one item")
    sections: list[Section] = []
    seen_sections: set[str] = set()
    seen_items: dict[str, yaml.Node] = {}
    for snode in snodes:
        sf = r.mapping(snode, "a section")
        r.known(sf, "a section", {"id", "title", "items"}, {"id", "items"}, snode)
        sid = _key(r, sf["id"][1], "section id")
        if sid in seen_sections:
            raise r.err(sf["id"][1], f"section {sid!r} appears twice")
        seen_sections.add(sid)
        inodes = r.sequence(sf["items"][1], f"section {sid!r}: items")
        if not inodes:
            raise r.err(sf["items"][1], f"section {sid!r} has no items")
        items = tuple(_item(r, n, sid, seen_items) for n in inodes)
        if len(seen_items) > MAX_ITEMS:
            raise r.err(sf["items"][1], f"the form has more than {MAX_ITEMS} items")
        title_s = _text(r, sf["title"][1], f"section {sid!r}: title") if "title" in sf else sid
        sections.append(Section(sid, title_s, items))
    return Form(name, version, title, tuple(sections), pass_mark, file)


def load_form(path: str | Path) -> Form:
    """Read and parse a form file (:class:`FormError` names the file, and the
    place in it)."""
    text, file = read_text(path, FormError, "scoring form")
    return parse_form(text, file)


def parse_answers(text: str, file: str = "<answers>") -> dict[str, str]:
    """A reviewer's answers file: a mapping of item id to answer (``yes``,
    ``no``, ``na``, a number), each kept as the text written."""
    r = Reader(file, FormError)
    root = r.compose(text)
    out: dict[str, str] = {}
    for key, (_, vnode) in r.mapping(root, "the answers").items():
        if not isinstance(vnode, yaml.ScalarNode) or vnode.value == "":
            raise r.err(vnode, f"item {key!r}: the answer must be a text or a number "
                               "(yes, no, na, 0..max)")
        out[key] = str(vnode.value)
    return out


def load_answers(path: str | Path) -> dict[str, str]:
    text, file = read_text(path, FormError, "answers file")
    return parse_answers(text, file)
