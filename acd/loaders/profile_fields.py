"""One field of a customer or agent profile: the columns, their sizes, and
the parsers that read one value.

Each ``parse_*`` takes the text of one value (already stripped) and returns
the typed value, or raises :class:`FieldError` saying what is wrong in plain
words, written to follow the field's name (the reader puts ``vip_level`` in
front of ``'gold' is not a whole number 0-9``).  The CSV and YAML readers and the checks on profiles
made in code all use these, so a value is judged the same way wherever it
comes from.  Pure: no files, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from acd.core.numbers import DEFAULT_COUNTRY, clean, normalize
from acd.core.profiles import (
    AGE_BANDS,
    CALLER_ATTRIBUTES,
    LAST_AGENT,
    LEVEL_MAX,
    LEVEL_MIN,
    CustomerProfile,
)

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


class FieldError(ValueError):
    """A value is wrong; the message follows the field's name ("vip_level" +
    " 'gold' is not a whole number 0-9")."""


# ------------------------------------------------------------ value checks
# "" means "not given" and yields the default, except where a value is
# required.

_PHONE = re.compile(r"\+?[0-9]+")
_KEY = re.compile(r"[\w-]+")  # \w is Unicode: 粤语 is a plain name too
_TRUE = ("true", "yes", "1", "y", "on")
_FALSE = ("false", "no", "0", "n", "off")
_GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M"}


#: Unicode's control characters (category Cc): C0, DEL and C1
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _check_text(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"is {len(value)} characters long (at most {limit})"
    if _control(value):
        return "contains a line break or another control character"
    return None


def check_number(raw: str) -> str:
    """``raw`` without spaces, dashes or parentheses, if it can be a phone number."""
    s = clean(raw)
    if not (_PHONE.fullmatch(s) and NUMBER_MIN <= len(s) <= NUMBER_MAX):
        raise FieldError(f"{raw!r} is not a phone number (digits with an optional leading +, "
                         f"{NUMBER_MIN}-{NUMBER_MAX} characters)")
    return s


def parse_number(raw: str, country: str = DEFAULT_COUNTRY) -> str:
    """A customer's number in its one form: ``138 0013 8000`` -> ``+8613800138000``
    (``country``: the configured country code, for national forms)."""
    return normalize(check_number(raw), country)


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


def parse_levels(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, int]:
    """(name, level) pairs as a name -> level 1-10 mapping (names lower-cased
    if ``lower``); the CSV text goes through :func:`split_levels`, a YAML
    mapping gives its pairs directly."""
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


def split_levels(raw: str) -> Iterator[tuple[str, str]]:
    """``billing:5;vip:3`` as (name, level) pairs, both stripped (either may be "")."""
    for part in raw.split(";"):
        part = part.strip()
        if part:
            name, _, level = part.partition(":")
            yield name.strip(), level.strip()


def parse_skills(raw: str) -> dict[str, int]:
    """``billing:5;vip:3``: skill names keep their case (they match queues)."""
    return parse_levels(split_levels(raw), lower=False)


def parse_dialects(raw: str) -> dict[str, int]:
    """``minnan:8;mandarin:10``: dialect names are lower-cased."""
    return parse_levels(split_levels(raw), lower=True)


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


def caller_attributes(values: Mapping[str, str], number: str) -> dict[str, str]:
    """The caller attributes (a flow's ``caller.*``) that the engine's caller
    lookup gives for a customer stored with these column ``values`` (text,
    as in a customers CSV) under ``number``: each value read by its column's
    parser, as an import reads it, then written as the database's profile
    is (:meth:`CustomerProfile.attributes`: ``vip_level`` ``"3"``, defaults
    filled in, empty ones left out), with ``last_agent`` if given.  So a
    flow's test profile has the shape of a real one.  :class:`FieldError`
    names the column: an unknown one (``vip``), or a wrong value."""
    parsed: dict[str, Any] = {}
    last_agent = ""
    for key, raw in values.items():
        if key == "number":
            raise FieldError("number is the caller's own number: give it as the caller")
        if key == LAST_AGENT:
            try:
                last_agent = parse_agent_id(raw.strip())
            except FieldError as exc:
                raise FieldError(f"{key} {exc}") from None
            continue
        parser = CUSTOMER_PARSERS.get(key)
        if parser is None:
            raise FieldError(f"{key!r} is not a profile attribute (the caller lookup gives: "
                             f"{', '.join(sorted(CALLER_ATTRIBUTES - {'number'}))})")
        try:
            parsed[key] = parser(raw.strip())
        except FieldError as exc:
            raise FieldError(f"{key} {exc}") from None
    attrs = CustomerProfile(number=number, **parsed).attributes()
    if last_agent:
        attrs[LAST_AGENT] = last_agent
    return attrs
