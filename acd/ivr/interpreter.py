"""Sans-I/O IVR interpreter.

A :class:`FlowRun` is a small state machine: ``start()`` returns the first
step; each prompt or input step is answered with ``resume(reply)`` which
returns the next one, until a terminal step (:class:`EnterQueue` or
:class:`EndCall`).  The FastAGI adapter turns steps into AGI commands; the
dry-run tool and the virtual simulator answer them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd.ivr.flow import Flow, Goto, Hangup, Menu, Play, QueueNode

#: Guard against a flow that loops forever without the caller doing anything.
MAX_STEPS = 500


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play a prompt; ``escape_digits`` may interrupt it."""

    prompt: str
    escape_digits: str = ""


@dataclass(frozen=True, slots=True)
class CollectDigit:
    """Play ``prompt`` and wait up to ``timeout_s`` for one key."""

    prompt: str
    timeout_s: float


@dataclass(frozen=True, slots=True)
class EnterQueue:
    queue: str
    priority: int
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndCall:
    path: tuple[str, ...]
    prompt: str | None = None
    reason: str = "flow"


Step = PlayPrompt | CollectDigit | EnterQueue | EndCall


@dataclass(frozen=True, slots=True)
class Key:
    """The reply to a step: the key pressed, or None (no key / timeout)."""

    digit: str | None


class FlowStateError(Exception):
    pass


class FlowRun:
    """One caller's walk through one flow version."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.path: list[str] = []
        self._node = flow.start
        self._tries = 0
        self._pending: str | None = None  # what the last step was waiting for
        self._after_prompt: str | None = None
        self._steps = 0
        self._typeahead: str | None = None
        self.done = False

    def start(self) -> Step:
        return self._enter(self.flow.start)

    def resume(self, reply: Key) -> Step:
        if self.done or self._pending is None:
            raise FlowStateError("the flow is not waiting for a reply")
        pending, self._pending = self._pending, None
        body = self.flow.nodes[self._node].body
        if pending == "play":
            assert isinstance(body, Play)
            # a key that interrupted a prompt is kept for the next menu
            # (type-ahead: "press 1 during the greeting" chooses option 1)
            self._typeahead = reply.digit
            return self._enter(body.next)
        if pending == "retry":
            return self._ask()
        assert pending == "menu"
        return self._menu_answer(reply.digit)

    def _menu_answer(self, digit: str | None) -> Step:
        body = self.flow.nodes[self._node].body
        assert isinstance(body, Menu)
        if digit is not None and digit in body.options:
            return self._enter(body.options[digit])
        self._tries += 1
        if self._tries > body.retries:
            if body.on_fail is not None:
                return self._enter(body.on_fail)
            return self._end(None, reason="menu-failed")
        prompt = body.timeout_prompt if digit is None else body.invalid_prompt
        if prompt:
            self._pending = "retry"
            return PlayPrompt(prompt)
        return self._ask()

    # ------------------------------------------------------------ internals

    def _enter(self, name: str) -> Step:
        self._steps += 1
        if self._steps > MAX_STEPS:
            return self._end(None, reason="step-limit")
        self._node = name
        self._tries = 0
        self.path.append(name)
        body = self.flow.nodes[name].body
        match body:
            case Play():
                self._typeahead = None  # type-ahead only carries into the next menu
                self._pending = "play"
                return PlayPrompt(body.prompt, "0123456789*#" if body.barge_in else "")
            case Menu():
                return self._ask()
            case QueueNode():
                self.done = True
                return EnterQueue(body.queue, body.priority, tuple(self.path))
            case Hangup():
                return self._end(body.prompt)
            case Goto():
                return self._enter(body.target)
        raise FlowStateError(f"unknown node body {body!r}")  # pragma: no cover

    def _ask(self) -> Step:
        body = self.flow.nodes[self._node].body
        assert isinstance(body, Menu)
        if self._typeahead is not None:
            digit, self._typeahead = self._typeahead, None
            return self._menu_answer(digit)
        self._pending = "menu"
        return CollectDigit(body.prompt, body.timeout_s)

    def _end(self, prompt: str | None, reason: str = "flow") -> Step:
        self.done = True
        return EndCall(tuple(self.path), prompt, reason)
