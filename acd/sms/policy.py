"""SMS diversion rules: which ended call gets which text, and when.

Pure: :meth:`SmsPolicy.decide` takes the facts of an ended call and the
current time and returns what to queue (or nothing).  The per-number cap and
the opt-out list need the database; the outbox applies them in the same
transaction that stores the call's record (:mod:`acd.adapters.sms_store`).

The file (``sms:`` in acd.yaml names it)::

    sender: "10086"
    mobile_pattern: "1[3-9][0-9]{9}"      # the national number; others are suppressed
    cap: {per_number: 1, hours: 24}
    quiet_hours: {from: "21:00", to: "08:00", timezone: Asia/Shanghai}
    link: "https://m.example.cn/s/{token}"
    default_language: zh
    templates:
      app_link:
        zh: "{caller_name}您好，常见问题可在App自助办理：{link} 回复TD退订"
        en: "Most questions are answered in our app: {link} Reply STOP to opt out"
    rules:
      - name: abandoned
        when: {outcome: abandoned, min_wait_s: 30}
        template: app_link
      - name: left_ivr
        when: {outcome: ivr, last_node: [goodbye, sms_goodbye]}
        template: app_link
      - name: billing_served
        when: {outcome: answered, intent: [billing]}
        template: bill_in_app

A rule's ``last_node`` names nodes of the engine's flow: a name that is
not one is an error (a typo would make the rule never fire).  One SMS file
may serve several flows: ``flows: [ivr_flows/hotline.yaml,
ivr_flows/basic.yaml]`` (relative to the SMS file) lists them, and a
``last_node`` name must then be a node of the engine's flow or of one of
those; names of the other flows simply never match.

An IVR ``sms`` node marks a template by name: such a call gets that template
(rule ``ivr:<template>``) whatever the rules say.  At most one SMS per call:
the IVR's mark first, else the first rule that matches.

Numbers: the SMS is keyed by the caller's one number
(:func:`acd.core.numbers.normalize`, for the configured ``country_code``),
so the cap and the opt-out list treat ``13800138000``, ``+8613800138000``
and ``008613800138000`` as one number.  ``mobile_pattern`` is matched
against the number as the gateway takes it (:func:`acd.core.numbers.dialled`:
the national form for the configured country).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.core.numbers import DEFAULT_COUNTRY, dialled, is_number, normalize
from acd.ivr.expr import ExprError, Template, parse_template
from acd.ivr.hours import HoursError, zone
from acd.ivr.load import load_flow
from acd.ivr.parse import FlowError
from acd.loaders.yamlpos import Reader, YamlError, read_text

OUTCOMES = ("answered", "abandoned", "ivr", "fallback")
TEMPLATE_NAMES = {"caller_name", "caller", "queue", "link", "token", "agent"}


class SmsPolicyError(YamlError):
    pass


@dataclass(frozen=True, slots=True)
class When:
    outcome: str | None = None
    min_wait_s: float | None = None
    last_node: frozenset[str] | None = None
    intent: frozenset[str] | None = None
    queue: frozenset[str] | None = None

    def matches(self, call: CallFacts) -> bool:
        if self.outcome is not None and call.outcome != self.outcome:
            return False
        if self.min_wait_s is not None and (call.wait_s or 0.0) < self.min_wait_s:
            return False
        if self.last_node is not None and (not call.ivr_path
                                           or call.ivr_path[-1] not in self.last_node):
            return False
        if self.intent is not None and call.intent not in self.intent:
            return False
        return not (self.queue is not None and call.queue not in self.queue)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: When
    template: str


@dataclass(frozen=True, slots=True)
class QuietHours:
    start_min: int  # minutes after midnight
    end_min: int
    timezone: str

    def release(self, now: dt.datetime) -> dt.datetime | None:
        """None when ``now`` is outside the quiet hours, else when they end."""
        local = now.astimezone(zone(self.timezone))
        m = local.hour * 60 + local.minute
        inside = (self.start_min <= m or m < self.end_min) if self.start_min > self.end_min \
            else self.start_min <= m < self.end_min
        if not inside:
            return None
        end = local.replace(hour=self.end_min // 60, minute=self.end_min % 60, second=0,
                            microsecond=0)
        if end <= local:
            end += dt.timedelta(days=1)
        return end.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the rules look at, from the call's record and its IVR run."""

    call_id: str
    caller: str
    caller_name: str
    outcome: str
    ended_at: float
    wait_s: float | None = None
    ivr_path: tuple[str, ...] = ()
    queue: str | None = None
    agent_id: str | None = None
    intent: str | None = None
    language: str | None = None
    marks: tuple[str, ...] = ()  # templates marked by IVR sms nodes


@dataclass(frozen=True, slots=True)
class PendingSms:
    """An SMS the policy wants to send; the outbox applies cap and opt-out."""

    call_id: str
    number: str
    rule: str
    template: str
    language: str
    text: str
    token: str
    created_at: float
    send_after: float  # = created_at unless deferred by quiet hours
    suppressed: str | None = None  # reason, when the policy already knows
    #: the policy's cap, applied by the outbox: at most this many per number...
    cap_per_number: int = 1
    #: ... within this many hours
    cap_hours: float = 24.0
    #: the country ``number`` was normalised for (the outbox reads older rows'
    #: forms of it: :func:`acd.core.numbers.variants`)
    country: str = DEFAULT_COUNTRY


@dataclass(frozen=True, slots=True)
class SmsPolicy:
    rules: tuple[Rule, ...]
    templates: Mapping[str, Mapping[str, str]]  # name -> language -> text
    sender: str = ""
    mobile_pattern: str = r"1[3-9][0-9]{9}"
    cap_per_number: int = 1
    cap_hours: float = 24.0
    quiet: QuietHours | None = None
    link: str = ""
    default_language: str = "zh"
    file: str = ""
    #: where the SMS link sends the caller after counting the click (GET /s/<token>)
    app_url: str = "/"
    #: the configured country calling code (acd.yaml ``country_code``), for numbers
    country: str = DEFAULT_COUNTRY
    _mobile: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_mobile", re.compile(self.mobile_pattern))

    def is_mobile(self, number: str) -> bool:
        """``number`` is a phone number (:func:`acd.core.numbers.is_number`: a
        withheld ``anonymous`` is not, whatever the pattern) and ``mobile_pattern``
        matches it as the gateway takes it (national for the configured
        country: ``+8613800138000`` -> ``13800138000``)."""
        return (is_number(number)
                and self._mobile.fullmatch(dialled(number, self.country)) is not None)

    def choose(self, call: CallFacts) -> tuple[str, str] | None:
        """(rule, template) for this call, or None."""
        for mark in call.marks:
            if mark in self.templates:
                return f"ivr:{mark}", mark
        for rule in self.rules:
            if rule.when.matches(call):
                return rule.name, rule.template
        return None

    def decide(self, call: CallFacts, token: str | None = None) -> PendingSms | None:
        chosen = self.choose(call)
        if chosen is None:
            return None
        rule, template = chosen
        texts = self.templates[template]
        language: str = call.language if call.language is not None and call.language in texts \
            else (self.default_language if self.default_language in texts
                  else next(iter(texts)))
        token = token or secrets.token_urlsafe(8)
        link = self.link.replace("{token}", token)
        values = {"caller_name": call.caller_name, "caller": call.caller,
                  "queue": call.queue or "", "link": link, "token": token,
                  "agent": call.agent_id or ""}
        text = _template(texts[language]).render(lambda n: values.get(n))
        now = dt.datetime.fromtimestamp(call.ended_at, dt.UTC)
        release = self.quiet.release(now) if self.quiet is not None else None
        suppressed = None if self.is_mobile(call.caller) else "not-mobile"
        send_after = release.timestamp() if release else call.ended_at
        return PendingSms(call.call_id, normalize(call.caller, self.country), rule, template,
                          language, text, token, call.ended_at, send_after, suppressed,
                          self.cap_per_number, self.cap_hours, self.country)


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> Template:
    """A template's text, parsed once (the loader has checked it)."""
    return parse_template(text)


# ------------------------------------------------------------------ loading


def _hhmm(r: Reader, node: Any, what: str) -> int:
    text = r.string(node, what)
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise r.err(node, f"{what}: {text!r} is not a time like 21:00")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_sms_policy(text: str, file: str = "<sms>",
                     known_nodes: Sequence[str] | None = None,
                     country: str = DEFAULT_COUNTRY) -> SmsPolicy:
    r = Reader(file, SmsPolicyError)
    root = r.compose(text)
    top = r.mapping(root, "the SMS file")
    r.known(top, "the SMS file", {"sender", "mobile_pattern", "cap", "quiet_hours", "link",
                                  "default_language", "templates", "rules", "app_url",
                                  "flows"},
            {"templates"}, root)
    nodes = _known_nodes(r, top["flows"][1], file, known_nodes) if "flows" in top \
        else _Nodes(frozenset(known_nodes) if known_nodes is not None else None, ())
    sender = r.string(top["sender"][1], "sender") if "sender" in top else ""
    pattern = r"1[3-9][0-9]{9}"
    if "mobile_pattern" in top:
        pattern = r.string(top["mobile_pattern"][1], "mobile_pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise r.err(top["mobile_pattern"][1], f"mobile_pattern is not a valid regular "
                                                  f"expression: {exc}") from None
    per, hours = 1, 24.0
    if "cap" in top:
        cap = r.mapping(top["cap"][1], "cap")
        r.known(cap, "cap", {"per_number", "hours"})
        if "per_number" in cap:
            per = r.integer(cap["per_number"][1], "cap: per_number", 0, 1000)
        if "hours" in cap:
            hours = r.number(cap["hours"][1], "cap: hours", 0.1, 24 * 365)
    quiet = None
    if "quiet_hours" in top:
        q = r.mapping(top["quiet_hours"][1], "quiet_hours")
        r.known(q, "quiet_hours", {"from", "to", "timezone"}, {"from", "to", "timezone"},
                top["quiet_hours"][1])
        tz = r.string(q["timezone"][1], "quiet_hours: timezone")
        try:
            zone(tz)
        except HoursError as exc:
            raise r.err(q["timezone"][1], f"quiet_hours: {exc}") from None
        start = _hhmm(r, q["from"][1], "quiet_hours: from")
        end = _hhmm(r, q["to"][1], "quiet_hours: to")
        if start == end:
            raise r.err(q["to"][1], "quiet_hours: from and to are the same time")
        quiet = QuietHours(start, end, tz)
    link = r.string(top["link"][1], "link") if "link" in top else ""
    if link and "{token}" not in link:
        raise r.err(top["link"][1], "link must contain {token} (the per-call token that "
                                    "measures diversion)")
    default_language = r.string(top["default_language"][1], "default_language") \
        if "default_language" in top else "zh"

    templates: dict[str, dict[str, str]] = {}
    tnode = top["templates"][1]
    for name, (_, vnode) in r.mapping(tnode, "templates").items():
        by_lang: dict[str, str] = {}
        for lang, (_, text_node) in r.mapping(vnode, f"template {name!r}").items():
            body = r.string(text_node, f"template {name!r} ({lang})")
            try:
                t = parse_template(body)
            except ExprError as exc:
                raise r.err(text_node, f"template {name!r} ({lang}): {exc}") from None
            unknown = sorted(t.names - TEMPLATE_NAMES)
            if unknown:
                raise r.err(text_node, f"template {name!r} ({lang}): unknown name "
                                       f"{{{unknown[0]}}} (names: "
                                       f"{', '.join(sorted(TEMPLATE_NAMES))})")
            if "link" in t.names and not link:
                raise r.err(text_node, f"template {name!r} ({lang}) uses {{link}} but the "
                                       "file sets no link")
            by_lang[lang] = body
        if not by_lang:
            raise r.err(vnode, f"template {name!r} has no text")
        templates[name] = by_lang
    if not templates:
        raise r.err(tnode, "templates is empty")

    rules: list[Rule] = []
    names: set[str] = set()
    if "rules" in top:
        for i, item in enumerate(r.sequence(top["rules"][1], "rules")):
            what = f"rules[{i}]"
            f = r.mapping(item, what)
            r.known(f, what, {"name", "when", "template"}, {"name", "when", "template"}, item)
            name = r.string(f["name"][1], f"{what}: name")
            if name in names or name.startswith("ivr:"):
                raise r.err(f["name"][1], f"{what}: the rule name {name!r} is used twice"
                            if name in names else f"{what}: 'ivr:' names are kept for IVR "
                                                  "sms nodes")
            names.add(name)
            template = r.string(f["template"][1], f"{what}: template")
            if template not in templates:
                raise r.err(f["template"][1], f"{what}: unknown template {template!r} "
                                              f"(templates: {', '.join(templates)})")
            rules.append(Rule(name, _when(r, f["when"][1], f"rule {name!r}: when", nodes),
                              template))
    app_url = "/"
    if "app_url" in top:
        app_url = r.string(top["app_url"][1], "app_url")
        if not app_url.startswith(("https://", "http://", "/")):
            raise r.err(top["app_url"][1], "app_url must be an http(s) address or a path")
    return SmsPolicy(tuple(rules), templates, sender, pattern, per, hours, quiet, link,
                     default_language, file, app_url=app_url, country=country)


def _names(r: Reader, node: Any, what: str) -> frozenset[str]:
    return frozenset(r.strings(node, what))


@dataclass(frozen=True, slots=True)
class _Nodes:
    """The node names a rule's ``last_node`` may use (None: not checked),
    and the flow files of ``flows:`` they come from besides the engine's."""

    names: frozenset[str] | None
    listed: tuple[str, ...]


def _known_nodes(r: Reader, node: Any, file: str,
                 known_nodes: Sequence[str] | None) -> _Nodes:
    """``flows:`` -- the flow files (relative to the SMS file) the rules are
    written for: one SMS file serves each of them, and a ``last_node`` name
    must be a node of one of them (or of the engine's own flow)."""
    names = set(known_nodes or ())
    listed: list[str] = []
    for i, item in enumerate(r.sequence(node, "flows")):
        text = r.string(item, f"flows[{i}]")
        path = Path(text)
        resolved = path if path.is_absolute() else Path(file).parent / path
        if not path.is_absolute() and not resolved.exists():
            # an error, not a warning: a missing flow's node names would
            # otherwise be reported as typos in last_node (the SMS file
            # copied to /etc/acd/ without its flows, say)
            raise r.err(item, f"flows[{i}]: no flow file {text!r} in {resolved.parent}: a "
                        "path in flows: is relative to this SMS file's folder, not to the "
                        "working directory; copy the flows along, write an absolute path, "
                        "or drop the entry (the flow acd.yaml runs is always checked)")
        try:
            flow = load_flow(resolved)
        except FlowError as exc:
            if exc.line == 0:  # the file as a whole: placed at its entry here
                raise r.err(item, f"flows[{i}]: {exc.problem}: {exc.file}") from None
            err = SmsPolicyError(exc.file, exc.line, exc.column, exc.problem)
            err.unreadable = exc.unreadable
            raise err from None
        names.update(flow.nodes)
        listed.append(path.name)
    if known_nodes is None and not listed:  # `flows: []` and no engine flow: nothing to check
        return _Nodes(None, ())
    return _Nodes(frozenset(names), tuple(listed))


def _when(r: Reader, node: Any, what: str, known: _Nodes) -> When:
    f = r.mapping(node, what)
    r.known(f, what, {"outcome", "min_wait_s", "last_node", "intent", "queue"})
    outcome = None
    if "outcome" in f:
        outcome = r.string(f["outcome"][1], f"{what}: outcome")
        if outcome not in OUTCOMES:
            raise r.err(f["outcome"][1], f"{what}: outcome {outcome!r} is not one of: "
                                         f"{', '.join(OUTCOMES)}")
    last = _names(r, f["last_node"][1], f"{what}: last_node") if "last_node" in f else None
    if last is not None and known.names is not None:
        for n in sorted(last - known.names):
            raise r.err(f["last_node"][1], f"{what}: last_node {n!r} is not a node of the "
                        "flow" + (f" nor of the flows this file lists ({', '.join(known.listed)})"
                                  if known.listed else ""))
    return When(
        outcome=outcome,
        min_wait_s=r.number(f["min_wait_s"][1], f"{what}: min_wait_s", 0, 86400)
        if "min_wait_s" in f else None,
        last_node=last,
        intent=_names(r, f["intent"][1], f"{what}: intent") if "intent" in f else None,
        queue=_names(r, f["queue"][1], f"{what}: queue") if "queue" in f else None,
    )


def load_sms_policy(path: str | Path, known_nodes: Sequence[str] | None = None,
                    country: str = DEFAULT_COUNTRY) -> SmsPolicy:
    text, file = read_text(path, SmsPolicyError, "SMS file")
    return parse_sms_policy(text, file, known_nodes, country)


STOP_WORDS = frozenset({"STOP", "TD", "T", "UNSUBSCRIBE", "退订", "取消", "N"})


def is_opt_out(text: str) -> bool:
    """A caller's reply that means "no more SMS" (STOP, TD, 退订...)."""
    return text.strip().upper().strip(".!。！ ") in STOP_WORDS
