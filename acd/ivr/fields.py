"""The flow language's table of node types and their fields.

:data:`NODE_TYPES` is the one table of node types: for each, a line of help
and its fields (:class:`FieldSpec`: the kind of value, whether it is
required, its bounds or choices, a line of help); :data:`COMMON_FIELDS` are
the fields of every node, :data:`TOP_FIELDS` the top-level keys of a flow
file.  The parser (:mod:`acd.ivr.parse_node`) checks field names and bounds
against it, and :mod:`acd.ivr.schema` writes the JSON Schema for editors
from it, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd.ivr.nodes import LOOKUP_SOURCES, SAY_KINDS


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What one field of a node (or of the flow file) holds."""

    kind: str  # ref prompt text template expr int num bool options cases vars attrs ...
    required: bool = False
    doc: str = ""
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()


def _f(kind: str, doc: str, required: bool = False, lo: float = 0, hi: float = 0,
       choices: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(kind, required, doc, lo, hi, choices)


_PROMPT_OPT = _f("prompt", "sound file(s) played first")

#: node type -> (what it does, field name -> its spec)
NODE_TYPES: dict[str, tuple[str, dict[str, FieldSpec]]] = {
    "play": ("Play sound files; with barge_in a key interrupts and is kept for the next menu.", {
        "prompt": _f("prompt", "sound file name(s), or one per language", True),
        "next": _f("ref", "the node after it", True),
        "barge_in": _f("bool", "a key interrupts the prompt (type-ahead into the next menu)"),
    }),
    "say": ("Say a value in the call's language.", {
        "say": _f("choice", "how to say it", True, choices=SAY_KINDS),
        "value": _f("template", "the value, e.g. '{balance}' (a date as 2026-11-23, a time "
                    "as 14:30, money as 12.50)", True),
        "next": _f("ref", "the node after it", True),
        "prompt": _PROMPT_OPT,
        "barge_in": _f("bool", "a key interrupts"),
    }),
    "menu": ("Play a prompt and take one key.", {
        "prompt": _f("prompt", "the menu prompt", True),
        "options": _f("options", "key (0-9, *, #) -> node", True),
        "timeout": _f("num", "seconds to wait for a key after the prompt", lo=0.5, hi=60),
        "retries": _f("int", "tries after the first before giving up", lo=0, hi=10),
        "invalid_prompt": _f("prompt", "played after a wrong key"),
        "timeout_prompt": _f("prompt", "played after no key"),
        "on_invalid": _f("ref", "when the retries are used up and the last key was wrong"),
        "on_timeout": _f("ref", "when the retries are used up and the last try had no key"),
        "on_fail": _f("ref", "when the retries are used up (either way)"),
    }),
    "input": ("Collect digits into a variable.", {
        "prompt": _f("prompt", "the prompt", True),
        "variable": _f("name", "the variable that gets the digits", True),
        "max_digits": _f("int", "at most this many digits", True, lo=1, hi=64),
        "min_digits": _f("int", "at least this many digits", lo=1, hi=64),
        "next": _f("ref", "the node after a valid entry", True),
        "timeout": _f("num", "seconds to wait for each digit", lo=0.5, hi=60),
        "terminator": _f("choice", "the key that ends the entry early", choices=("#",)),
        "pattern": _f("regex", "a regular expression the whole entry must match"),
        "retries": _f("int", "tries after the first before giving up", lo=0, hi=10),
        "invalid_prompt": _f("prompt", "played after an entry that does not fit"),
        "timeout_prompt": _f("prompt", "played after no entry"),
        "on_fail": _f("ref", "when the retries are used up"),
    }),
    "set": ("Set variables (text templates).", {
        "vars": _f("vars", "variable -> value (a template such as '{caller.vip_level}')",
                   True),
        "next": _f("ref", "the node after it", True),
    }),
    "branch": ("Go to the first case whose condition holds.", {
        "cases": _f("cases", "a list of {if: condition, goto: node}", True),
        "else": _f("ref", "when no case holds"),
    }),
    "lookup": ("Look data up: the caller's profile, or an HTTP service (JSON).", {
        "source": _f("choice", "profile or http", True, choices=LOOKUP_SOURCES),
        "url": _f("template", "for http: the address, e.g. "
                  "'http://crm/balance?msisdn={caller.number}'"),
        "timeout": _f("num", "seconds before giving up", lo=0.1, hi=30),
        "save": _f("save", "variable -> field of the answer (dotted path, e.g. data.left_mb)"),
        "next": _f("ref", "the node after a successful lookup", True),
        "on_error": _f("ref", "when the lookup fails, times out or finds nothing"),
    }),
    "hours": ("Branch on opening hours and holidays in a time zone.", {
        "timezone": _f("text", "an IANA time zone, e.g. Asia/Shanghai", True),
        "open": _f("week", "days -> time ranges, e.g. mon-fri: '08:00-22:00'", True),
        "holidays": _f("dates", "dates closed all day (2026-10-01)"),
        "special": _f("special", "date -> time ranges that day, instead of the week's"),
        "when_open": _f("ref", "the node when open", True),
        "when_closed": _f("ref", "the node when closed", True),
    }),
    "language": ("Set the language (prompts, SAY) and dialect (routing) of the call.", {
        "language": _f("text", "a language code from the flow's languages", True),
        "dialect": _f("text", "the caller's dialect for routing (e.g. cantonese)"),
        "next": _f("ref", "the node after it", True),
    }),
    "queue": ("Hand the call to the ACD.", {
        "queue": _f("text", "the queue", True),
        "priority": _f("priority", "0-100, or a condition-style expression such as "
                       "'caller.vip_level * 10'"),
        "attributes": _f("attrs", "routing attributes (name -> template)"),
        "moh": _f("text", "the music-on-hold class"),
        "announce_every": _f("num", "seconds between position announcements (0 = never)",
                             lo=0, hi=3600),
        "prompt": _PROMPT_OPT,
    }),
    "transfer": ("Transfer the call to an outside number.", {
        "number": _f("template", "the number to dial", True),
        "prompt": _PROMPT_OPT,
    }),
    "voicemail": ("Leave the caller in a voicemail box.", {
        "mailbox": _f("template", "mailbox@context", True),
        "prompt": _PROMPT_OPT,
    }),
    "record": ("Record the caller (a message, a complaint) into a file.", {
        "variable": _f("name", "the variable that gets the file name", True),
        "next": _f("ref", "the node after it", True),
        "prompt": _PROMPT_OPT,
        "max_seconds": _f("int", "longest recording", lo=1, hi=600),
        "beep": _f("bool", "beep before recording (default true)"),
        "silence": _f("int", "stop after this many seconds of silence", lo=1, hi=60),
        "file": _f("template", "file name without extension (default recordings/{call.id})"),
    }),
    "sms": ("Mark an SMS to send after the call ends (see docs/sms.md).", {
        "template": _f("text", "the SMS template", True),
        "next": _f("ref", "the node after it", True),
    }),
    "hangup": ("End the call.", {
        "prompt": _f("prompt", "played before hanging up"),
    }),
    "goto": ("Go to another node.", {
        "target": _f("ref", "the node", True),
    }),
    "subflow": ("Run another flow file, then go on at next (its return nodes come back).", {
        "flow": _f("text", "the flow file, relative to this one", True),
        "next": _f("ref", "where the sub-flow's return nodes go", True),
    }),
    "return": ("Leave a sub-flow (back to the subflow node's next).", {}),
}
#: the fields every node has
COMMON_FIELDS = {"type": _f("choice", "the node type", True, choices=tuple(NODE_TYPES)),
                 "note": _f("text", "a note for designers (shown in the graph)")}
#: the top-level keys of a flow file
TOP_FIELDS: dict[str, FieldSpec] = {
    "flow": _f("text", "the flow's name", True),
    "start": _f("ref", "the first node", True),
    "nodes": _f("nodes", "node name -> node", True),
    "version": _f("label", "a version label"),
    "description": _f("text", "what the flow is for"),
    "languages": _f("list", "the languages prompts exist in; the first is the default"),
    "timezone": _f("text", "time zone of now.* in conditions (default UTC)"),
    "variables": _f("vars", "variables and their starting values"),
    "money": _f("money", "sound files for saying money: {unit: acd/yuan, cents: acd/fen}"),
}
