"""Reading customer and agent profiles from CSV and YAML text.

Pure: the functions here are given the text (or the bytes) of a file and
return profiles, never touching the file system or a database.  Nothing
stops at the first bad row: every problem is collected as an :class:`Issue`
naming the file, the line, the field and what is wrong, in plain words::

    customers.csv:14: vip_level 'gold' is not a whole number 0-9

and every good row is returned alongside.  Only a file that cannot be read
as a whole (empty, not UTF-8, a header with unknown or missing columns, not
valid YAML) raises :class:`ProfileFileError`.

Line numbers: CSV lines are physical lines of the file, the header being
line 1 (a quoted value spanning lines counts every line); YAML lines come
from ``yaml.compose`` node marks (the line of the offending value, or of the
item for problems of the item as a whole).

Each returned :class:`Row` records which fields the file gave (the CSV
header's columns, a YAML item's keys), so that an import can update only
those fields of a profile already stored.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import PurePath
from typing import Any, Generic, TypeVar

import yaml

from acd.core.profiles import AGE_BANDS, LEVEL_MAX, LEVEL_MIN, AgentProfile, CustomerProfile

# Column sizes: the database columns are this wide (PostgreSQL refuses longer
# text where SQLite would silently keep it), so they are checked here.
NUMBER_MAX = 20
NUMBER_MIN = 3
NAME_MAX = 128  # a person's name
KEY_MAX = 32  # dialect, language, skill names
SEGMENT_MAX = 64
TOKEN_MAX = 64  # one tag or group
LIST_MAX = 1024  # tags, languages, groups joined with ';'
LEVELS_MAX = 2048  # skills or dialects as JSON text
AGENT_ID_MAX = 64
EXTENSION_MIN, EXTENSION_MAX = 2, 15
VIP_MIN, VIP_MAX = 0, 9
AGE_MIN, AGE_MAX = 0, 120

CUSTOMER_COLUMNS = ("number", "name", "vip_level", "dialect", "language", "segment", "tags",
                    "gender", "age", "preferred_gender", "preferred_age_band")
AGENT_COLUMNS = ("agent_id", "extension", "name", "skills", "dialects", "languages", "gender",
                 "age_band", "groups", "vip_qualified")
CUSTOMER_REQUIRED = ("number",)
AGENT_REQUIRED = ("agent_id", "extension")

P = TypeVar("P", CustomerProfile, AgentProfile)


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a file: where, which field, what (a full sentence)."""

    file: str
    line: int
    field: str  # the column or field; "" when it is about the whole row or file
    problem: str  # plain words, e.g. "vip_level 'gold' is not a whole number 0-9"
    warning: bool = False  # warnings do not reject the row

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {'warning: ' if self.warning else ''}{self.problem}"


@dataclass(frozen=True, slots=True)
class Row(Generic[P]):
    """A good row: the profile, its line, and the fields the file gave for it."""

    profile: P
    line: int
    fields: frozenset[str]


@dataclass(slots=True)
class ParseResult(Generic[P]):
    """Good rows (a later duplicate replaces an earlier one) and the problems."""

    file: str
    rows: list[Row[P]] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    rejected: int = 0  # rows with at least one error; none of their data is kept

    @property
    def profiles(self) -> list[P]:
        return [r.profile for r in self.rows]

    @property
    def issues(self) -> list[Issue]:
        """Errors and warnings in file order."""
        return sorted(self.errors + self.warnings, key=lambda i: i.line)


class ProfileFileError(ValueError):
    """The file cannot be read as a whole; nothing in it was taken."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        super().__init__(f"{file}:{line}: {problem}" if line else f"{file}: {problem}")
        self.issue = Issue(file, line, "", problem)


class FieldError(ValueError):
    """A value is wrong; the message follows the field's name ("vip_level" +
    " 'gold' is not a whole number 0-9")."""


# ------------------------------------------------------------ value checks
# Each parse_* takes the text of one value (already stripped), returns the
# typed value, and raises FieldError.  "" means "not given" and yields the
# default, except where a value is required.

_PHONE = re.compile(r"\+?[0-9]+")
_KEY = re.compile(r"[\w-]+")  # \w is Unicode: 粤语 is a plain name too
_TRUE = ("true", "yes", "1", "y", "on")
_FALSE = ("false", "no", "0", "n", "off")
_GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M"}


def _control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _check_text(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"is {len(value)} characters long (at most {limit})"
    if _control(value):
        return "contains a line break or another control character"
    return None


def parse_number(raw: str) -> str:
    if not (_PHONE.fullmatch(raw) and NUMBER_MIN <= len(raw) <= NUMBER_MAX):
        raise FieldError(f"{raw!r} is not a phone number (digits with an optional leading +, "
                         f"{NUMBER_MIN}-{NUMBER_MAX} characters)")
    return raw


def _whole(raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = hi + 1
    if not (raw.lstrip("+-").isdigit() and lo <= value <= hi):
        raise FieldError(f"{raw!r} is not a whole number {lo}-{hi}")
    return value


def parse_vip_level(raw: str) -> int:
    return _whole(raw, VIP_MIN, VIP_MAX) if raw else 0


def parse_age(raw: str) -> int | None:
    return _whole(raw, AGE_MIN, AGE_MAX) if raw else None


def parse_level(raw: str) -> int:
    """A skill level or dialect proficiency, 1-10."""
    return _whole(raw, LEVEL_MIN, LEVEL_MAX)


def parse_gender(raw: str) -> str:
    if not raw:
        return ""
    try:
        return _GENDERS[raw.lower()]
    except KeyError:
        raise FieldError(f"{raw!r} is not F or M (female or male also accepted)") from None


def parse_age_band(raw: str) -> str:
    if raw and raw not in AGE_BANDS:
        raise FieldError(f"{raw!r} is not one of {', '.join(AGE_BANDS)}")
    return raw


def parse_key(raw: str) -> str:
    """A plain name (dialect, language, skill): letters, digits, - or _."""
    if raw and not (_KEY.fullmatch(raw) and len(raw) <= KEY_MAX):
        raise FieldError(f"{raw!r} is not a plain name (letters, digits, - or _, "
                         f"up to {KEY_MAX} characters)")
    return raw


def parse_lower_key(raw: str) -> str:
    return parse_key(raw).lower()


def _text_parser(limit: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        problem = _check_text(raw, limit)
        if problem:
            raise FieldError(problem)
        return raw
    return parse


parse_name = _text_parser(NAME_MAX)
parse_segment = _text_parser(SEGMENT_MAX)


def parse_agent_id(raw: str) -> str:
    if len(raw) > AGENT_ID_MAX or any(ch.isspace() or ch == ";" for ch in raw) \
            or _control(raw):
        raise FieldError(f"{raw!r} is not an agent id (no spaces or ';', "
                         f"up to {AGENT_ID_MAX} characters)")
    return raw


def parse_extension(raw: str) -> str:
    if not (raw.isascii() and raw.isdigit() and EXTENSION_MIN <= len(raw) <= EXTENSION_MAX):
        raise FieldError(f"{raw!r} is not an extension ({EXTENSION_MIN}-{EXTENSION_MAX} digits; "
                         "the dialplan pattern _X. needs at least 2)")
    return raw


def parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE or not raw:
        return False
    raise FieldError(f"{raw!r} is not true or false (yes/no and 1/0 also accepted)")


def _tokens(items: Iterable[str], lower: bool) -> frozenset[str]:
    out: set[str] = set()
    for item in items:
        t = item.strip()
        if not t:
            continue
        if "," in t:
            raise FieldError(f"entry {t!r} contains a comma; separate entries with ';'")
        problem = _check_text(t, TOKEN_MAX)
        if problem:
            raise FieldError(f"entry {t[:20]!r}… {problem}" if len(t) > 20
                             else f"entry {t!r} {problem}")
        out.add(t.lower() if lower else t)
    if len(";".join(out)) > LIST_MAX:
        raise FieldError(f"has {len(out)} entries, too long together (at most {LIST_MAX} "
                         "characters)")
    return frozenset(out)


def parse_list(raw: str) -> frozenset[str]:
    """``a;b;c``: tags and groups (case kept)."""
    return _tokens(raw.split(";"), lower=False)


def parse_key_list(raw: str) -> frozenset[str]:
    """``zh;en``: languages (plain names, lower-cased)."""
    out = _tokens(raw.split(";"), lower=True)
    for t in sorted(out):
        try:
            parse_key(t)
        except FieldError as exc:
            raise FieldError(f"entry {exc}") from None
    return out


def _levels(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, level in pairs:
        if not name:
            raise FieldError(f"entry ':{level}' has no name")
        try:
            key = parse_key(name)
        except FieldError as exc:
            raise FieldError(f"entry {exc}") from None
        key = key.lower() if lower else key
        if key in out:
            raise FieldError(f"entry {key!r} appears twice")
        if not level:
            raise FieldError(f"entry {name!r} has no level; write NAME:LEVEL, e.g. {name}:5")
        try:
            out[key] = parse_level(level)
        except FieldError:
            raise FieldError(f"entry '{name}:{level}': level {level!r} is not a whole number "
                             f"{LEVEL_MIN}-{LEVEL_MAX}") from None
    if len(json.dumps(out, ensure_ascii=False)) > LEVELS_MAX:
        raise FieldError(f"has {len(out)} entries, too long together")
    return out


def _split_levels(raw: str) -> Iterator[tuple[str, str]]:
    for part in raw.split(";"):
        part = part.strip()
        if part:
            name, _, level = part.partition(":")
            yield name.strip(), level.strip()


def parse_skills(raw: str) -> dict[str, int]:
    """``billing:5;vip:3``: skill names keep their case (they match queues)."""
    return _levels(_split_levels(raw), lower=False)


def parse_dialects(raw: str) -> dict[str, int]:
    """``minnan:8;mandarin:10``: dialect names are lower-cased."""
    return _levels(_split_levels(raw), lower=True)


CUSTOMER_PARSERS: dict[str, Callable[[str], Any]] = {
    "number": parse_number, "name": parse_name, "vip_level": parse_vip_level,
    "dialect": parse_lower_key, "language": parse_lower_key, "segment": parse_segment,
    "tags": parse_list, "gender": parse_gender, "age": parse_age,
    "preferred_gender": parse_gender, "preferred_age_band": parse_age_band,
}
AGENT_PARSERS: dict[str, Callable[[str], Any]] = {
    "agent_id": parse_agent_id, "extension": parse_extension, "name": parse_name,
    "skills": parse_skills, "dialects": parse_dialects, "languages": parse_key_list,
    "gender": parse_gender, "age_band": parse_age_band, "groups": parse_list,
    "vip_qualified": parse_bool,
}


# ---------------------------------------------------- checks on profiles
# For profiles made in code (the store checks them before writing).


def _serial(value: object) -> str:
    """A profile field as text, the way the parsers read it."""
    if isinstance(value, frozenset | set):
        return ";".join(sorted(value))
    if isinstance(value, Mapping):
        return ";".join(f"{k}:{v}" for k, v in sorted(value.items()))
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_Spec = tuple[tuple[str, object, Callable[[str], Any], bool], ...]


def _spec(cls: type[CustomerProfile] | type[AgentProfile],
          parsers: Mapping[str, Callable[[str], Any]], required: tuple[str, ...]) -> _Spec:
    out = []
    for f in fields(cls):
        default: object = f.default
        if f.default_factory is not MISSING:
            default = f.default_factory()
        out.append((f.name, default, parsers[f.name], f.name in required))
    return tuple(out)


def _problems(profile: CustomerProfile | AgentProfile, spec: _Spec) -> list[str]:
    out: list[str] = []
    for name, default, parse, required in spec:
        value = getattr(profile, name)
        if value == default and not required:
            continue  # the usual case, and always fine
        text = _serial(value)
        if required and not text:
            out.append(f"{name} is missing")
            continue
        try:
            parsed = parse(text)
        except FieldError as exc:
            out.append(f"{name} {exc}")
            continue
        if isinstance(value, str) and text != text.strip():
            out.append(f"{name} {value!r} has spaces around it")
        elif isinstance(value, Mapping):
            if parsed != dict(value):
                out.append(f"{name} {dict(value)!r} should be written {parsed!r}")
        elif isinstance(value, frozenset):
            if parsed != value:
                out.append(f"{name} {sorted(value)!r} should be written {sorted(parsed)!r}")
        elif parsed != value or type(parsed) is not type(value):
            out.append(f"{name} {value!r} should be written {parsed!r}")
    return out


def customer_problems(profile: CustomerProfile) -> list[str]:
    """What is wrong with a customer profile, in the parsers' words ([] if fine)."""
    return _problems(profile, _CUSTOMER_SPEC)


def agent_problems(profile: AgentProfile) -> list[str]:
    """What is wrong with an agent profile, in the parsers' words ([] if fine)."""
    return _problems(profile, _AGENT_SPEC)


_CUSTOMER_SPEC = _spec(CustomerProfile, CUSTOMER_PARSERS, CUSTOMER_REQUIRED)
_AGENT_SPEC = _spec(AgentProfile, AGENT_PARSERS, AGENT_REQUIRED)


# --------------------------------------------------------------- decoding


def decode(data: bytes, file: str) -> str:
    """UTF-8 (a BOM is dropped), or ProfileFileError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProfileFileError(file, line, f"is not UTF-8 text (byte {exc.start + 1}); "
                               "save it as UTF-8 (e.g. Excel's \"CSV UTF-8\")") from None


# -------------------------------------------------------------------- CSV


@dataclass(slots=True)
class _Collector(Generic[P]):
    result: ParseResult[P]
    key: Callable[[P], str]
    key_field: str
    seen: dict[str, Row[P]] = field(default_factory=dict)

    def error(self, line: int, fld: str, problem: str) -> None:
        self.result.errors.append(Issue(self.result.file, line, fld, problem))

    def keep(self, row: Row[P]) -> None:
        k = self.key(row.profile)
        earlier = self.seen.get(k)
        if earlier is not None:
            self.result.warnings.append(Issue(
                self.result.file, row.line, self.key_field,
                f"{self.key_field} {k!r} also on line {earlier.line}; this later row wins",
                warning=True))
            del self.seen[k]  # the row moves to its later place
        self.seen[k] = row

    def finish(self) -> ParseResult[P]:
        self.result.rows = list(self.seen.values())
        return self.result


def _csv(text: str, file: str, columns: tuple[str, ...], required: tuple[str, ...],
         parsers: Mapping[str, Callable[[str], Any]], make: Callable[[dict[str, Any]], P],
         key: Callable[[P], str]) -> ParseResult[P]:
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    records = _records(reader)
    try:
        header_line, _, header_raw = next(records)
    except StopIteration:
        raise ProfileFileError(file, 1, "the file is empty; the first line must be the header "
                               f"({','.join(columns)})") from None
    header = [h.strip().lower() for h in header_raw]
    _check_header(file, header_line, header, columns, required)
    given = frozenset(header)
    out = _Collector[P](ParseResult(file), key, required[0])
    for line, end, cells in records:
        if line < 0:  # the csv module refused the line
            out.error(-line, "", cells[0])
            out.result.rejected += 1
            continue
        if len(cells) != len(header):
            why = f"has {len(cells)} values but the header has {len(header)} columns"
            if end > line:
                why += f" (the row runs on to line {end}: is a \" quote not closed?)"
            out.error(line, "", why)
            out.result.rejected += 1
            continue
        values: dict[str, Any] = {}
        bad = False
        for col, cell in zip(header, cells, strict=True):
            raw = cell.strip()
            if not raw and col in required:
                out.error(line, col, f"{col} is missing")
                bad = True
                continue
            try:
                values[col] = parsers[col](raw)
            except FieldError as exc:
                why = f"{col} {exc}"
                if "\n" in raw or "\r" in raw:
                    why += f" (the row runs on to line {end}: is a \" quote not closed?)"
                out.error(line, col, why)
                bad = True
        if bad:
            out.result.rejected += 1
            continue
        try:
            profile = make(values)
        except ValueError as exc:  # the profile's own checks (none expected)
            out.error(line, "", str(exc))
            out.result.rejected += 1
            continue
        out.keep(Row(profile, line, given))
    return out.finish()


def _records(reader: Any) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of each non-blank record; the first
    line negated, with [problem], when the csv module refuses a line."""
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield -start, reader.line_num, [f"cannot be read as CSV: {exc}"]
            continue
        if any(c.strip() for c in cells):
            yield start, reader.line_num, cells


def _check_header(file: str, line: int, header: list[str], columns: tuple[str, ...],
                  required: tuple[str, ...]) -> None:
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        raise ProfileFileError(file, line, f"the header is one column {header[0]!r}: columns "
                               "must be separated by commas")
    for i, h in enumerate(header):
        if not h:
            raise ProfileFileError(file, line, f"column {i + 1} of the header has no name")
        if h in header[:i]:
            raise ProfileFileError(file, line, f"column {h!r} appears twice in the header")
    unknown = [h for h in header if h not in columns]
    if unknown:
        raise ProfileFileError(file, line, f"unknown column{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(repr(u) for u in unknown)} "
                               f"(known: {', '.join(columns)})")
    for r in required:
        if r not in header:
            raise ProfileFileError(file, line, f"the header has no {r!r} column "
                                   f"(it is required)")


def _customer(values: dict[str, Any]) -> CustomerProfile:
    return CustomerProfile(**values)


def _agent(values: dict[str, Any]) -> AgentProfile:
    return AgentProfile(**values)


def parse_customers_csv(text: str, file: str = "customers.csv") -> ParseResult[CustomerProfile]:
    """Customers from CSV text (header in any order; ``number`` required)."""
    return _csv(text, file, CUSTOMER_COLUMNS, CUSTOMER_REQUIRED, CUSTOMER_PARSERS,
                _customer, lambda c: c.number)


def parse_agents_csv(text: str, file: str = "agents.csv") -> ParseResult[AgentProfile]:
    """Agents from CSV text (``agent_id`` and ``extension`` required)."""
    return _csv(text, file, AGENT_COLUMNS, AGENT_REQUIRED, AGENT_PARSERS,
                _agent, lambda a: a.agent_id)


# ------------------------------------------------------------------- YAML

_NULL = "tag:yaml.org,2002:null"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _scalar(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise FieldError(f"must be a single value, not {_kind(node)}")
    return "" if node.tag == _NULL else str(node.value).strip()


def _yaml_list(node: yaml.Node, name: str) -> str:
    """A list of names (or one text, ';'-separated) as 'a;b' for the CSV parser."""
    if isinstance(node, yaml.SequenceNode):
        items = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode):
                raise FieldError(f"entries must be single names, not {_kind(item)}")
            if ";" in str(item.value):
                raise FieldError(f"entry {item.value!r} contains ';'")
            items.append(str(item.value).strip())
        return ";".join(items)
    if isinstance(node, yaml.MappingNode):
        raise FieldError("must be a list of names, not a mapping")
    return _scalar(node)


def _yaml_levels(node: yaml.Node, name: str, lower: bool) -> dict[str, int]:
    if isinstance(node, yaml.MappingNode):
        pairs = []
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode) or not isinstance(v, yaml.ScalarNode):
                raise FieldError(f"must map names to levels, e.g. {{{name[:-1]}: 5}}")
            pairs.append((str(k.value).strip(), "" if v.tag == _NULL else str(v.value).strip()))
        return _levels(pairs, lower)
    if isinstance(node, yaml.SequenceNode):
        raise FieldError("must be a mapping of names to levels, e.g. {billing: 5}, not a list")
    return _levels(_split_levels(_scalar(node)), lower)


def _agent_field(name: str, node: yaml.Node) -> Any:
    if name == "skills":
        return _yaml_levels(node, name, lower=False)
    if name == "dialects":
        return _yaml_levels(node, name, lower=True)
    if name in ("languages", "groups"):
        return AGENT_PARSERS[name](_yaml_list(node, name))
    return AGENT_PARSERS[name](_scalar(node))


def parse_agents_yaml(text: str, file: str = "agents.yaml") -> ParseResult[AgentProfile]:
    """Agents from YAML: a list of mappings, or ``{agents: [...]}``."""
    text = text.removeprefix("\ufeff")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProfileFileError(file, mark.line + 1 if mark else 1,
                               f"is not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ProfileFileError(file, 1, f"is not valid YAML: {exc}") from None
    if root is None:
        raise ProfileFileError(file, 1, "the file is empty; it must be a list of agents")
    if isinstance(root, yaml.MappingNode):
        keys = {str(k.value): v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(keys) != {"agents"} or len(root.value) != 1:
            raise ProfileFileError(file, _line(root), "the top level must be a list of agents "
                                   "or a mapping with just the key 'agents'")
        root = keys["agents"]
    if not isinstance(root, yaml.SequenceNode):
        raise ProfileFileError(file, _line(root), "the agents must be a list "
                               "(each item starting with '- ')")
    out = _Collector[AgentProfile](ParseResult(file), lambda a: a.agent_id, "agent_id")
    for item in root.value:
        line = _line(item)
        if not isinstance(item, yaml.MappingNode):
            what = repr(item.value) if isinstance(item, yaml.ScalarNode) else _kind(item)
            out.error(line, "", f"the item is {what}, not a mapping of fields "
                      "(agent_id: ..., extension: ...)")
            out.result.rejected += 1
            continue
        values: dict[str, Any] = {}
        given: set[str] = set()
        bad = False
        for knode, vnode in item.value:
            name = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "?"
            if name not in AGENT_COLUMNS:
                out.error(_line(knode), name, f"unknown field {name!r} "
                          f"(known: {', '.join(AGENT_COLUMNS)})")
                bad = True
                continue
            if name in given:
                out.error(_line(knode), name, f"{name} appears twice in this agent")
                bad = True
                continue
            given.add(name)
            try:
                value = _agent_field(name, vnode)
            except FieldError as exc:
                out.error(_line(vnode), name, f"{name} {exc}")
                bad = True
                continue
            if name in AGENT_REQUIRED and value == "":
                out.error(_line(vnode), name, f"{name} is missing")
                bad = True
                continue
            values[name] = value
        for r in AGENT_REQUIRED:
            if r not in given:
                out.error(line, r, f"{r} is missing")
                bad = True
        if bad:
            out.result.rejected += 1
            continue
        try:
            profile = AgentProfile(**values)
        except ValueError as exc:
            out.error(line, "", str(exc))
            out.result.rejected += 1
            continue
        out.keep(Row(profile, line, frozenset(given)))
    return out.finish()


def parse_agents(text: str, file: str) -> ParseResult[AgentProfile]:
    """CSV or YAML, told by the file name's extension."""
    suffix = PurePath(file).suffix.lower()
    if suffix == ".csv":
        return parse_agents_csv(text, file)
    if suffix in (".yaml", ".yml"):
        return parse_agents_yaml(text, file)
    raise ProfileFileError(file, 0, "cannot tell the format: the name must end in .csv, "
                           ".yaml or .yml")
