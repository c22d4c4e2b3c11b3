"""Run a flow without a phone: the prompts it would play, the keys it
takes, the path and where the call ends (``acd flow run``)."""

from __future__ import annotations

from dataclasses import dataclass

from acd.ivr.flow import Flow
from acd.ivr.interpreter import (
    CollectDigit,
    EndCall,
    EnterQueue,
    FlowRun,
    Key,
    PlayPrompt,
    Step,
)


@dataclass(frozen=True, slots=True)
class DryStep:
    kind: str  # play | ask | key | queue | hangup
    text: str


@dataclass(frozen=True, slots=True)
class DryRun:
    steps: tuple[DryStep, ...]
    path: tuple[str, ...]
    end: Step
    keys_left: tuple[str, ...]


def dry_run(flow: Flow, keys: list[str]) -> DryRun:
    """Answer each prompt that listens for keys with the next entry of
    ``keys`` ("" = press nothing: the prompt plays out or times out)."""
    run = FlowRun(flow)
    feed = list(keys)
    out: list[DryStep] = []
    step = run.start()
    while True:
        match step:
            case PlayPrompt():
                if step.escape_digits:
                    out.append(DryStep("play", f"{step.prompt} (a key interrupts)"))
                    digit = _take(feed, step.escape_digits)
                    if digit:
                        out.append(DryStep("key", digit))
                else:
                    out.append(DryStep("play", step.prompt))
                    digit = None
                step = run.resume(Key(digit))
            case CollectDigit():
                out.append(DryStep("ask", f"{step.prompt} (waits {step.timeout_s:g} s for a key)"))
                digit = _take(feed, "0123456789*#")
                out.append(DryStep("key", digit or "(no key: timeout)"))
                step = run.resume(Key(digit))
            case EnterQueue():
                out.append(DryStep("queue", f"queue {step.queue} (priority {step.priority})"))
                return DryRun(tuple(out), step.path, step, tuple(feed))
            case EndCall():
                if step.prompt:
                    out.append(DryStep("play", step.prompt))
                out.append(DryStep("hangup", f"hang up ({step.reason})"))
                return DryRun(tuple(out), step.path, step, tuple(feed))


def _take(feed: list[str], allowed: str) -> str | None:
    if not feed:
        return None
    entry = feed.pop(0)
    digit = entry[:1]
    return digit if digit and digit in allowed else None
