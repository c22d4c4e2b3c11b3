"""Reading a control API request: the JSON body and query flags, checked
field by field (:class:`ApiError` 400 naming the field), and the agent
profile a ``/profile`` body asks for.

A body is at most :data:`MAX_BODY_BYTES` (413 beyond: the application's
``client_max_size`` is the same), nested at most :data:`MAX_DEPTH` deep and
at most :data:`MAX_ITEMS` values (400 beyond), checked before it is parsed.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from acd.core.profiles import AGE_BANDS, LEVEL_MAX, LEVEL_MIN, AgentProfile
from acd.loaders.profile_fields import (
    FieldError,
    parse_extension,
    parse_gender,
    parse_key,
    parse_key_list,
    parse_list,
    parse_lower_key,
    parse_name,
)

#: a pause reason is shown on wallboards: keep it short
REASON_MAX = 64
PROFILE_FIELDS = ("skills", "drop_skills", "dialects", "drop_dialects", "languages", "gender",
                  "age_band", "groups", "vip_qualified", "extension", "name")


#: the largest request body (the bodies here are a few hundred bytes)
MAX_BODY_BYTES = 64 * 1024
#: the deepest nesting of arrays and objects in a body
MAX_DEPTH = 8
#: the most values (array elements and object members) in a body
MAX_ITEMS = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Answered as ``{"error": message}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def too_large() -> ApiError:
    return ApiError(413, f"body: too large (at most {MAX_BODY_BYTES} bytes)")


#: a JSON string (an unclosed one runs to the end)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_BRACKET = re.compile(r"[][{}]")


def check_shape(text: str) -> None:
    """400 when the JSON ``text`` nests deeper than :data:`MAX_DEPTH` or
    holds more than :data:`MAX_ITEMS` values; before parsing (a deep
    document would exhaust the parser's recursion), in time linear in the
    text (strings emptied by one regular expression, then at most
    ``2 * MAX_ITEMS + 2`` brackets looked at one by one)."""
    bare = _STRING.sub('""', text)  # brackets and commas in strings do not count
    depth = 0
    for m in itertools.islice(_BRACKET.finditer(bare), 2 * MAX_ITEMS + 2):
        if m.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ApiError(400, f"body: nested deeper than {MAX_DEPTH} levels")
        else:
            depth -= 1
    if bare.count(",") + bare.count("[") + bare.count("{") > MAX_ITEMS:
        raise ApiError(400, f"body: more than {MAX_ITEMS} values")


async def read_body(request: web.Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object of the body ({} when there is none); unknown keys are
    refused; size, depth and count limits first (413, 400)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large()
    try:
        raw = await request.read() if request.can_read_body else b""
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body: not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return {}
    check_shape(text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body: must be a JSON object")
    known = tuple(allowed)
    for key in data:
        if key not in known:
            raise ApiError(400, f"{key}: unknown field (fields: {', '.join(known) or 'none'})")
    return data


def bad(name: str, problem: str) -> ApiError:
    return ApiError(400, f"{name}: {problem}")


def string(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise bad(name, f"must be a string, not {json.dumps(value)}")
    return value.strip()


def boolean(data: dict[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise bad(name, f"must be true or false, not {json.dumps(value)}")
    return value


def parsed(name: str, parse: Callable[[str], Any], raw: str) -> Any:
    try:
        return parse(raw)
    except FieldError as exc:
        raise bad(name, str(exc)) from None


def levels(data: dict[str, Any], name: str, lower: bool) -> dict[str, int]:
    value = data[name]
    if not isinstance(value, dict):
        raise bad(name, 'must be an object {"name": level}')
    out: dict[str, int] = {}
    for key, level in value.items():
        k = parsed(name, parse_lower_key if lower else parse_key, str(key).strip())
        if not k:
            raise bad(name, "a name cannot be empty")
        if isinstance(level, bool) or not isinstance(level, int) \
                or not LEVEL_MIN <= level <= LEVEL_MAX:
            raise bad(f"{name}.{k}", f"level {json.dumps(level)} is not a whole number "
                      f"{LEVEL_MIN}-{LEVEL_MAX}")
        out[k] = level
    return out


def names(data: dict[str, Any], name: str) -> list[str]:
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(name, "must be a list of strings")
    return [v.strip() for v in value]


def flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise bad(name, f"{raw!r} is not true or false")


def changed_profile(old: AgentProfile, body: dict[str, Any],
                    known_skills: set[str]) -> AgentProfile:
    """The profile ``old`` with the changes of a /profile body (400 naming
    the field); ``known_skills``: the skills some queue uses."""
    skills = dict(old.skills)
    if "drop_skills" in body:
        for name in names(body, "drop_skills"):
            if name not in skills:
                raise bad("drop_skills", f"agent {old.agent_id} has no skill {name!r} "
                          f"(skills: {', '.join(sorted(skills)) or 'none'})")
            del skills[name]
    if "skills" in body:
        add = levels(body, "skills", lower=False)
        dropped = set(add) & set(body.get("drop_skills") or ())
        if dropped:
            raise bad("skills", f"skill {sorted(dropped)[0]!r} is both set and dropped")
        for name in add:
            if name not in known_skills:
                raise bad("skills", f"no queue uses skill {name!r} "
                          f"(skills: {', '.join(sorted(known_skills))})")
        skills.update(add)
    dialects = dict(old.dialects)
    if "drop_dialects" in body:
        for name in names(body, "drop_dialects"):
            if name.lower() not in dialects:
                raise bad("drop_dialects", f"agent {old.agent_id} has no dialect {name!r} "
                          f"(dialects: {', '.join(sorted(dialects)) or 'none'})")
            del dialects[name.lower()]
    if "dialects" in body:
        dialects.update(levels(body, "dialects", lower=True))
    languages = old.languages
    if "languages" in body:
        languages = parsed("languages", parse_key_list, ";".join(names(body, "languages")))
    groups = old.groups
    if "groups" in body:
        group_names = names(body, "groups")
        if any(";" in n for n in group_names):
            raise bad("groups", "a group name cannot contain ';'")
        groups = parsed("groups", parse_list, ";".join(group_names))
    gender = parsed("gender", parse_gender, string(body, "gender")) \
        if "gender" in body else old.gender
    age_band = old.age_band
    if "age_band" in body:
        age_band = string(body, "age_band")
        if age_band and age_band not in AGE_BANDS:
            raise bad("age_band", f"{age_band!r} is not one of {', '.join(AGE_BANDS)}")
    extension = parsed("extension", parse_extension, string(body, "extension")) \
        if "extension" in body else old.extension
    name = parsed("name", parse_name, string(body, "name")) if "name" in body else old.name
    vip = boolean(body, "vip_qualified") if "vip_qualified" in body else old.vip_qualified
    try:
        return AgentProfile(agent_id=old.agent_id, extension=extension, name=name,
                            skills=skills, dialects=dialects, languages=languages,
                            gender=gender, age_band=age_band, groups=groups,
                            vip_qualified=vip)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
