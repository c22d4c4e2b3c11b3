"""Sans-I/O IVR interpreter.

A :class:`FlowRun` walks one caller through one flow version.  ``start()``
returns the first step; each step that needs the outside world (a prompt, a
key, digits, a lookup, a recording) is answered with ``resume(reply)``,
which returns the next one, until a terminal step (:class:`EnterQueue`,
:class:`EndCall`, :class:`TransferCall`, :class:`VoicemailCall`).  Nothing
here reads the clock or does I/O: the time is handed in (``now=``) with
``start`` and ``resume``.  The FastAGI adapter (``acd.runtime.ivr_agi``)
turns steps into AGI commands; the dry run, ``acd flow test`` and the
virtual simulator answer them directly.

Both dispatches are tables: entering a node looks its type up in
:data:`NODE_HANDLERS` (one handler per node type), a reply looks the
pending step's kind up in :data:`REPLY_HANDLERS`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acd.ivr.expr import Value, env_from, to_int
from acd.ivr.hours import local_fields
from acd.ivr.nodes import (
    Branch,
    Flow,
    Goto,
    Hangup,
    HoursNode,
    Input,
    Language,
    Lookup,
    Menu,
    NodeBody,
    Play,
    Prompt,
    QueueNode,
    Record,
    Return,
    Say,
    SetVars,
    Sms,
    SubFlow,
    Transfer,
    Voicemail,
)
from acd.ivr.prompt_names import FEN, YUAN

#: Guard against a flow that loops forever without the caller doing anything.
MAX_STEPS = 500
ALL_KEYS = "0123456789*#"

# ------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play sound files in a row; a key in ``escape_digits`` stops them.  Reply: Key."""

    prompts: tuple[str, ...]
    escape_digits: str = ""

    @property
    def prompt(self) -> str:
        return "&".join(self.prompts)


@dataclass(frozen=True, slots=True)
class SayValue:
    """Say a value (``kind`` one of digits number date time datetime money alpha).
    Reply: Key."""

    kind: str
    value: str
    escape_digits: str = ""
    prompts: tuple[str, ...] = ()  # played first
    money_unit: str = YUAN
    money_cents: str = FEN


@dataclass(frozen=True, slots=True)
class CollectDigit:
    """A menu: play ``prompts`` and wait up to ``timeout_s`` for one key.  Reply: Key."""

    prompts: tuple[str, ...]
    timeout_s: float

    @property
    def prompt(self) -> str:
        return "&".join(self.prompts)


@dataclass(frozen=True, slots=True)
class CollectDigits:
    """An input: play ``prompts`` and collect up to ``max_digits`` (``#`` ends
    early; ``timeout_s`` per digit).  Reply: Digits."""

    prompts: tuple[str, ...]
    max_digits: int
    timeout_s: float
    #: digits the caller already typed during a barge-in prompt
    typed: str = ""


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """Set the channel's language (sound files, SAY).  Reply: Ack."""

    language: str
    dialect: str | None = None


@dataclass(frozen=True, slots=True)
class LookupData:
    """Fetch data: ``source`` profile (the caller's) or http (``url``, JSON).
    Reply: LookupReply."""

    source: str
    url: str | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class RecordFile:
    """Record the caller into ``file``.  Reply: Ack."""

    file: str
    prompts: tuple[str, ...]
    max_s: int
    beep: bool
    silence_s: int | None


@dataclass(frozen=True, slots=True)
class EnterQueue:
    queue: str
    priority: int
    path: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...] = ()
    moh: str | None = None
    announce_every_s: float | None = None
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndCall:
    path: tuple[str, ...]
    prompts: tuple[str, ...] = ()
    reason: str = "flow"

    @property
    def prompt(self) -> str | None:
        return "&".join(self.prompts) or None


@dataclass(frozen=True, slots=True)
class TransferCall:
    number: str
    path: tuple[str, ...]
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VoicemailCall:
    mailbox: str
    path: tuple[str, ...]
    prompts: tuple[str, ...] = ()


Step = (PlayPrompt | SayValue | CollectDigit | CollectDigits | SetLanguage | LookupData
        | RecordFile | EnterQueue | EndCall | TransferCall | VoicemailCall)
Terminal = EnterQueue | EndCall | TransferCall | VoicemailCall

# ----------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Key:
    """The reply to a prompt or menu: the key pressed, or None."""

    digit: str | None


@dataclass(frozen=True, slots=True)
class Digits:
    """The reply to CollectDigits: what was typed ("" = nothing)."""

    value: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    """The reply to a step that only had to be carried out."""

    ok: bool = True


@dataclass(frozen=True, slots=True)
class LookupReply:
    """The data found, or None when the lookup failed, timed out or found nothing."""

    data: Mapping[str, object] | None


Reply = Key | Digits | Ack | LookupReply


class FlowStateError(Exception):
    pass


@dataclass(slots=True)
class _Pending:
    kind: str  # play | say | menu | retry | input | language | lookup | record
    node: str


def _field(data: Mapping[str, object], path: str) -> object:
    cur: object = data
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(path)
    return cur


def _value(v: object) -> Value:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


class FlowRun:
    """One caller's walk through one flow version."""

    def __init__(self, flow: Flow, caller: Mapping[str, str] | None = None,
                 now: dt.datetime | None = None, call_id: str = "") -> None:
        self.flow = flow
        self.call_id = call_id
        self.caller: dict[str, str] = dict(caller or {})
        self.now = now or dt.datetime(2000, 1, 1, 12, 0, tzinfo=dt.UTC)
        self.variables: dict[str, Value] = dict(flow.variables)
        self.variables.setdefault("language", flow.default_language)
        self.variables.setdefault("dialect", None)
        self.path: list[str] = []
        self.sms: list[str] = []  # SMS templates marked by sms nodes, in order
        self.keys: list[str] = []  # every key and entry the caller gave
        self._node = flow.start
        self._tries = 0
        self._pending: _Pending | None = None
        self._steps = 0
        self._typeahead: str | None = None
        self._typed = ""
        self._language_chosen = False  # a language node was passed
        self.done = False
        self.end: Terminal | None = None

    # -------------------------------------------------------------- public

    @property
    def language(self) -> str:
        v = self.variables.get("language")
        return str(v) if v else self.flow.default_language

    @property
    def node(self) -> str:
        """The node the caller is at."""
        return self._node

    def add_caller_info(self, attrs: Mapping[str, str]) -> None:
        """Profile attributes that arrived after the start (``caller.*``)."""
        for k, v in attrs.items():
            self.caller.setdefault(k, v)

    def start(self, now: dt.datetime | None = None) -> Step:
        if self._steps:
            raise FlowStateError("the flow has already started")
        if now is not None:
            self.now = now
        return self._enter(self.flow.start)

    def resume(self, reply: Reply, now: dt.datetime | None = None) -> Step:
        if self.done or self._pending is None:
            raise FlowStateError("the flow is not waiting for a reply")
        if now is not None:
            self.now = now
        pending, self._pending = self._pending, None
        return REPLY_HANDLERS[pending.kind](self, self.flow.nodes[pending.node].body, reply)

    # ---------------------------------------------------------- internals

    def _env(self) -> Callable[[str], Value]:
        return env_from(self.variables, self.caller, local_fields(self.now, self.flow.timezone),
                        self.call_id)

    def _prompts(self, prompt: Prompt | None) -> tuple[str, ...]:
        if prompt is None:
            return ()
        return prompt.resolve(self.language, self.flow.default_language)

    def _menu_answer(self, digit: str | None) -> Step:
        body = self.flow.nodes[self._node].body
        assert isinstance(body, Menu)
        if digit is not None and digit in body.options:
            return self._enter(body.options[digit])
        return self._retry(body, timed_out=digit is None)

    def _retry(self, body: Menu | Input, timed_out: bool) -> Step:
        self._tries += 1
        if self._tries > body.retries:
            target = body.on_fail
            if isinstance(body, Menu):
                target = (body.on_timeout if timed_out else body.on_invalid) or body.on_fail
            if target is not None:
                return self._enter(target)
            return self._end((), reason="menu-failed" if isinstance(body, Menu)
                             else "input-failed")
        prompt = body.timeout_prompt if timed_out else body.invalid_prompt
        if prompt is not None:
            self._pending = _Pending("retry", self._node)
            return PlayPrompt(self._prompts(prompt))
        return self._ask()

    def _input_answer(self, body: Input, value: str) -> Step:
        value = value.rstrip("#")
        if value:
            self.keys.append(value)
        if not value:
            return self._retry(body, timed_out=True)
        ok = body.min_digits <= len(value) <= body.max_digits and all(
            c in "0123456789*" for c in value)
        if ok and body.pattern is not None:
            ok = re.fullmatch(body.pattern, value) is not None
        if not ok:
            return self._retry(body, timed_out=False)
        self.variables[body.variable] = value
        return self._enter(body.next)

    def _lookup_answer(self, body: Lookup, data: Mapping[str, object] | None) -> Step:
        if not data:
            return self._lookup_failed(body)
        saved: dict[str, Value] = {}
        try:
            for var, path in body.save.items():
                saved[var] = _value(_field(data, path))
        except KeyError:
            return self._lookup_failed(body)
        self.variables.update(saved)
        if body.source == "profile":
            self.add_caller_info({k: str(v) for k, v in data.items()
                                  if isinstance(v, str | int | float)})
        return self._enter(body.next)

    def _lookup_failed(self, body: Lookup) -> Step:
        if body.on_error is not None:
            return self._enter(body.on_error)
        return self._end((), reason="lookup-failed")

    def _enter(self, name: str) -> Step:
        self._steps += 1
        if self._steps > MAX_STEPS:
            return self._end((), reason="step-limit")
        self._node = name
        self._tries = 0
        self.path.append(name)
        body = self.flow.nodes[name].body
        handler = NODE_HANDLERS.get(type(body))
        if handler is None:  # pragma: no cover - the table covers NodeBody
            raise FlowStateError(f"unknown node body {body!r}")
        return handler(self, body, name)

    # ------------------------------------ entering a node, one per node type

    def _enter_play(self, body: Play, name: str) -> Step:
        self._typeahead = None  # type-ahead only carries into the next menu
        self._pending = _Pending("play", name)
        return PlayPrompt(self._prompts(body.prompt), ALL_KEYS if body.barge_in else "")

    def _enter_say(self, body: Say, name: str) -> Step:
        self._typeahead = None
        self._pending = _Pending("say", name)
        env = self._env()
        return SayValue(body.say, body.value.render(env),
                        ALL_KEYS if body.barge_in else "", self._prompts(body.prompt),
                        self.flow.money_unit, self.flow.money_cents)

    def _enter_ask(self, body: Menu | Input, name: str) -> Step:
        return self._ask()

    def _enter_set(self, body: SetVars, name: str) -> Step:
        env = self._env()
        new = {k: t.render(env) for k, t in body.values.items()}
        self.variables.update(new)
        return self._enter(body.next)

    def _enter_branch(self, body: Branch, name: str) -> Step:
        env = self._env()
        for case in body.cases:
            if case.condition.test(env):
                return self._enter(case.target)
        if body.otherwise is not None:
            return self._enter(body.otherwise)
        return self._end((), reason="no-branch")

    def _enter_lookup(self, body: Lookup, name: str) -> Step:
        self._pending = _Pending("lookup", name)
        url = body.url.render_url(self._env()) if body.url else None
        return LookupData(body.source, url, body.timeout_s)

    def _enter_hours(self, body: HoursNode, name: str) -> Step:
        return self._enter(body.when_open if body.hours.is_open(self.now) else body.when_closed)

    def _enter_language(self, body: Language, name: str) -> Step:
        self._language_chosen = True
        self.variables["language"] = body.language
        if body.dialect is not None:
            self.variables["dialect"] = body.dialect
        self._pending = _Pending("language", name)
        return SetLanguage(body.language, body.dialect)

    def _enter_sms(self, body: Sms, name: str) -> Step:
        self.sms.append(body.template)
        return self._enter(body.next)

    def _enter_record(self, body: Record, name: str) -> Step:
        self._typeahead = None
        self._pending = _Pending("record", name)
        env = self._env()
        return RecordFile(body.file.render(env), self._prompts(body.prompt),
                          body.max_s, body.beep, body.silence_s)

    def _enter_queue(self, body: QueueNode, name: str) -> Step:
        return self._finish(self._queue(body))

    def _enter_transfer(self, body: Transfer, name: str) -> Step:
        return self._finish(TransferCall(
            body.number.render(self._env()), tuple(self.path), self._prompts(body.prompt)))

    def _enter_voicemail(self, body: Voicemail, name: str) -> Step:
        return self._finish(VoicemailCall(
            body.mailbox.render(self._env()), tuple(self.path), self._prompts(body.prompt)))

    def _enter_hangup(self, body: Hangup, name: str) -> Step:
        return self._end(self._prompts(body.prompt))

    def _enter_goto(self, body: Goto | Return, name: str) -> Step:
        return self._enter(body.target)

    def _enter_subflow(self, body: SubFlow, name: str) -> Step:
        return self._enter(body.entry)

    # ------------------------------ a reply to a pending step, one per kind

    def _reply_prompt(self, node: NodeBody, reply: Reply) -> Step:
        assert isinstance(node, Play | Say)
        digit = reply.digit if isinstance(reply, Key) else None
        # a key that interrupted a prompt is kept for the next menu or input
        # (type-ahead: "press 1 during the greeting" chooses option 1)
        self._typeahead = digit
        if digit:
            self.keys.append(digit)
        return self._enter(node.next)

    def _reply_retry(self, node: NodeBody, reply: Reply) -> Step:
        return self._ask()

    def _reply_menu(self, node: NodeBody, reply: Reply) -> Step:
        digit = reply.digit if isinstance(reply, Key) else None
        if digit:
            self.keys.append(digit)
        return self._menu_answer(digit)

    def _reply_input(self, node: NodeBody, reply: Reply) -> Step:
        assert isinstance(node, Input)
        value = self._typed + (reply.value if isinstance(reply, Digits) else "")
        return self._input_answer(node, value)

    def _reply_language(self, node: NodeBody, reply: Reply) -> Step:
        assert isinstance(node, Language)
        return self._enter(node.next)

    def _reply_lookup(self, node: NodeBody, reply: Reply) -> Step:
        assert isinstance(node, Lookup)
        data = reply.data if isinstance(reply, LookupReply) else None
        return self._lookup_answer(node, data)

    def _reply_record(self, node: NodeBody, reply: Reply) -> Step:
        assert isinstance(node, Record)
        ok = reply.ok if isinstance(reply, Ack) else True
        self.variables[node.variable] = node.file.render(self._env()) if ok else None
        return self._enter(node.next)

    # ------------------------------------------------------------- helpers

    def _queue(self, body: QueueNode) -> EnterQueue:
        env = self._env()
        priority = body.priority
        if body.priority_expr is not None:
            priority = max(0, min(100, to_int(body.priority_expr.evaluate(env)) or 0))
        attrs: dict[str, str] = {}
        # the language is a routing attribute only once the caller chose it
        if self._language_chosen:
            attrs["language"] = self.language
        dialect = self.variables.get("dialect")
        if dialect:
            attrs["dialect"] = str(dialect)
        for k, t in body.attributes.items():
            attrs[k] = t.render(env)
        return EnterQueue(body.queue, priority, tuple(self.path), tuple(attrs.items()),
                          body.moh, body.announce_every_s, self._prompts(body.prompt))

    def _ask(self) -> Step:
        body = self.flow.nodes[self._node].body
        if isinstance(body, Menu):
            if self._typeahead is not None:
                digit, self._typeahead = self._typeahead, None
                return self._menu_answer(digit)
            self._pending = _Pending("menu", self._node)
            return CollectDigit(self._prompts(body.prompt), body.timeout_s)
        assert isinstance(body, Input)
        typed, self._typeahead = self._typeahead or "", None
        self._typed = typed
        self._pending = _Pending("input", self._node)
        return CollectDigits(self._prompts(body.prompt), body.max_digits, body.timeout_s,
                             typed)

    def _finish(self, step: Terminal) -> Step:
        self.done = True
        self.end = step
        return step

    def _end(self, prompts: tuple[str, ...], reason: str = "flow") -> Step:
        return self._finish(EndCall(tuple(self.path), prompts, reason))


#: node type -> what entering a node of that type does; one entry per type
#: of :data:`acd.ivr.nodes.NodeBody`
NODE_HANDLERS: dict[type[NodeBody], Callable[[FlowRun, Any, str], Step]] = {
    Play: FlowRun._enter_play,
    Say: FlowRun._enter_say,
    Menu: FlowRun._enter_ask,
    Input: FlowRun._enter_ask,
    SetVars: FlowRun._enter_set,
    Branch: FlowRun._enter_branch,
    Lookup: FlowRun._enter_lookup,
    HoursNode: FlowRun._enter_hours,
    Language: FlowRun._enter_language,
    Sms: FlowRun._enter_sms,
    Record: FlowRun._enter_record,
    QueueNode: FlowRun._enter_queue,
    Transfer: FlowRun._enter_transfer,
    Voicemail: FlowRun._enter_voicemail,
    Hangup: FlowRun._enter_hangup,
    Goto: FlowRun._enter_goto,
    SubFlow: FlowRun._enter_subflow,
    Return: FlowRun._enter_goto,
}

#: pending step kind -> what its reply does
REPLY_HANDLERS: dict[str, Callable[[FlowRun, NodeBody, Reply], Step]] = {
    "play": FlowRun._reply_prompt,
    "say": FlowRun._reply_prompt,
    "retry": FlowRun._reply_retry,
    "menu": FlowRun._reply_menu,
    "input": FlowRun._reply_input,
    "language": FlowRun._reply_language,
    "lookup": FlowRun._reply_lookup,
    "record": FlowRun._reply_record,
}
