"""The JSON Schema of flow files, made from the loader's own table of node
types (:data:`acd.ivr.fields.NODE_TYPES`) so the two cannot drift apart.

Editors use it for completion and hover help (``acd flow schema -o
ivr_flows/flow.schema.json``; VS Code with the YAML extension picks it up
from the ``# yaml-language-server: $schema=`` line at the top of a flow).
The schema checks shapes only; the loader and the checks say the rest.
"""

from __future__ import annotations

from typing import Any

from acd.ivr.fields import COMMON_FIELDS, NODE_TYPES, TOP_FIELDS, FieldSpec

SCHEMA_ID = "https://github.com/acd-engine/acd/ivr_flows/flow.schema.json"

_STRING = {"type": "string", "minLength": 1}


def _field(spec: FieldSpec) -> dict[str, Any]:
    k = spec.kind
    out: dict[str, Any]
    if k in ("ref", "text", "name", "template", "regex"):
        out = dict(_STRING)
        if k == "name":
            out["pattern"] = "^[A-Za-z_][A-Za-z0-9_]*$"
    elif k == "label":
        out = {"type": ["string", "number"]}
    elif k == "prompt":
        out = {"$ref": "#/$defs/prompt"}
    elif k == "int":
        out = {"type": "integer", "minimum": int(spec.lo), "maximum": int(spec.hi)}
    elif k == "num":
        out = {"type": "number", "minimum": spec.lo, "maximum": spec.hi}
    elif k == "bool":
        out = {"type": "boolean"}
    elif k == "choice":
        out = {"enum": list(spec.choices)}
    elif k == "options":
        out = {"type": "object", "minProperties": 1,
               "propertyNames": {"pattern": "^[0-9*#]$"},
               "additionalProperties": _STRING}
    elif k == "cases":
        out = {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["if", "goto"], "additionalProperties": False,
            "properties": {"if": {**_STRING,
                                  "description": "a condition, e.g. caller.vip_level >= 2"},
                           "goto": {**_STRING, "description": "the node when it holds"}}}}
    elif k == "vars":
        out = {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
               "additionalProperties": {"type": ["string", "number", "boolean"]}}
    elif k == "attrs":
        out = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
    elif k == "save":
        out = {"type": "object", "additionalProperties": _STRING}
    elif k in ("week", "special"):
        out = {"type": "object", "additionalProperties": _STRING}
    elif k == "dates":
        out = {"type": "array", "items": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}}
    elif k == "priority":
        out = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, _STRING]}
    elif k == "list":
        out = {"anyOf": [_STRING, {"type": "array", "items": _STRING, "minItems": 1}]}
    elif k == "money":
        out = {"type": "object", "additionalProperties": False,
               "properties": {"unit": _STRING, "cents": _STRING}}
    elif k == "nodes":
        out = {"type": "object", "minProperties": 1,
               "additionalProperties": {"$ref": "#/$defs/node"}}
    else:  # pragma: no cover - a new kind must be added here
        raise ValueError(f"no schema for field kind {k!r}")
    if spec.doc:
        out["description"] = spec.doc
    return out


def flow_schema() -> dict[str, Any]:
    variants: list[dict[str, Any]] = []
    for kind, (doc, fields) in NODE_TYPES.items():
        props: dict[str, Any] = {"type": {"const": kind, "description": doc},
                                 "note": _field(COMMON_FIELDS["note"])}
        props.update({name: _field(spec) for name, spec in fields.items()})
        variants.append({
            "title": kind, "description": doc, "type": "object",
            "required": ["type", *(n for n, s in fields.items() if s.required)],
            "properties": props, "additionalProperties": False,
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
        })
    node = {
        "type": "object", "required": ["type"],
        "properties": {"type": {"enum": list(NODE_TYPES)}},
        "allOf": [{"if": v.pop("if"), "then": v} for v in variants],
    }
    prompt_item = {"anyOf": [
        {**_STRING, "description": "a sound file name without extension"},
        {"type": "object", "minProperties": 1, "additionalProperties": _STRING,
         "description": "language -> sound file"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ACD IVR flow",
        "description": "An IVR flow for the acd engine (docs/ivr-flows.md).",
        "type": "object",
        "required": [n for n, s in TOP_FIELDS.items() if s.required],
        "additionalProperties": False,
        "properties": {n: _field(s) for n, s in TOP_FIELDS.items()},
        "$defs": {
            "node": node,
            "prompt": {"anyOf": [*prompt_item["anyOf"],
                                 {"type": "array", "minItems": 1, "items": prompt_item}]},
        },
    }
