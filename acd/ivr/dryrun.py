"""Run a flow without a phone: the prompts it would play, the keys it takes,
the path and where the call ends (``acd flow run``, ``acd flow test``).

The caller's keys are a list with one entry per prompt that listens: a
single key for a menu or a barge-in prompt, digits for an input (``"1234#"``),
``""`` to press nothing (the prompt plays out or times out).  Lookups are
answered from ``lookups`` (node name -> data, or None for a failure); a
profile lookup with no entry there answers with the caller's profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.ivr.expr import Value
from acd.ivr.interpreter import (
    ALL_KEYS,
    Ack,
    CollectDigit,
    CollectDigits,
    Digits,
    EndCall,
    EnterQueue,
    FlowRun,
    Key,
    LookupData,
    LookupReply,
    PlayPrompt,
    RecordFile,
    SayValue,
    SetLanguage,
    Terminal,
    TransferCall,
    VoicemailCall,
)
from acd.ivr.nodes import Flow


@dataclass(frozen=True, slots=True)
class DryStep:
    kind: str  # play say ask input key language lookup record queue transfer voicemail hangup
    text: str
    node: str = ""


@dataclass(frozen=True, slots=True)
class DryRun:
    steps: tuple[DryStep, ...]
    path: tuple[str, ...]
    end: Terminal
    keys_left: tuple[str, ...]
    variables: Mapping[str, Value] = field(default_factory=dict)
    sms: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()  # every sound file played, in order

    @property
    def end_node(self) -> str:
        return self.path[-1] if self.path else ""


def dry_run(flow: Flow, keys: list[str], number: str = "",
            profile: Mapping[str, str] | None = None, now: dt.datetime | None = None,
            lookups: Mapping[str, Mapping[str, object] | None] | None = None,
            call_id: str = "dry-run") -> DryRun:
    """``profile``: the caller's profile attributes (``caller.*``); None = no profile."""
    caller = {"number": number, **(profile or {})}
    run = FlowRun(flow, caller, now, call_id)
    feed = list(keys)
    out: list[DryStep] = []
    played: list[str] = []
    lookups = lookups or {}
    step = run.start()
    while True:
        node = run.node
        match step:
            case PlayPrompt():
                played.extend(step.prompts)
                text = " + ".join(step.prompts)
                if step.escape_digits:
                    out.append(DryStep("play", f"{text} (a key interrupts)", node))
                    digit = _take(feed, step.escape_digits)
                    if digit:
                        out.append(DryStep("key", digit, node))
                else:
                    out.append(DryStep("play", text, node))
                    digit = None
                step = run.resume(Key(digit))
            case SayValue():
                played.extend(step.prompts)
                before = " + ".join(step.prompts)
                out.append(DryStep("say", (f"{before} then " if before else "")
                                   + f"say {step.kind} {step.value!r}", node))
                digit = _take(feed, step.escape_digits) if step.escape_digits else None
                if digit:
                    out.append(DryStep("key", digit, node))
                step = run.resume(Key(digit))
            case CollectDigit():
                played.extend(step.prompts)
                out.append(DryStep("ask", f"{' + '.join(step.prompts)} (waits "
                                          f"{step.timeout_s:g} s for a key)", node))
                digit = _take(feed, ALL_KEYS)
                out.append(DryStep("key", digit or "(no key: timeout)", node))
                step = run.resume(Key(digit))
            case CollectDigits():
                played.extend(step.prompts)
                out.append(DryStep("input", f"{' + '.join(step.prompts)} (up to "
                                            f"{step.max_digits} digits, # ends)", node))
                entry = feed.pop(0) if feed else ""
                entry = "".join(c for c in entry if c in ALL_KEYS)
                if "#" in entry:
                    entry = entry[:entry.index("#") + 1]
                entry = entry[:step.max_digits + 1] if entry.endswith("#") \
                    else entry[:step.max_digits]
                out.append(DryStep("key", (step.typed + entry) or "(nothing: timeout)", node))
                step = run.resume(Digits(entry, timed_out=not entry))
            case SetLanguage():
                out.append(DryStep("language", step.language + (
                    f" ({step.dialect})" if step.dialect else ""), node))
                step = run.resume(Ack())
            case LookupData():
                if node in lookups:
                    data = lookups[node]
                elif step.source == "profile":
                    data = dict(profile) if profile else None
                else:
                    data = None
                what = step.url or "the caller's profile"
                out.append(DryStep("lookup", f"{what} -> "
                                   + ("failed" if data is None else "found"), node))
                step = run.resume(LookupReply(data))
            case RecordFile():
                played.extend(step.prompts)
                out.append(DryStep("record", f"record {step.file} (up to {step.max_s} s)",
                                   node))
                step = run.resume(Ack())
            case EnterQueue():
                played.extend(step.prompts)
                attrs = ", ".join(f"{k}={v}" for k, v in step.attributes)
                out.append(DryStep("queue", f"queue {step.queue} (priority {step.priority}"
                                   + (f"; {attrs}" if attrs else "") + ")", node))
                break
            case TransferCall():
                played.extend(step.prompts)
                out.append(DryStep("transfer", f"transfer to {step.number}", node))
                break
            case VoicemailCall():
                played.extend(step.prompts)
                out.append(DryStep("voicemail", f"voicemail {step.mailbox}", node))
                break
            case EndCall():
                played.extend(step.prompts)
                if step.prompts:
                    out.append(DryStep("play", " + ".join(step.prompts), node))
                out.append(DryStep("hangup", f"hang up ({step.reason})", node))
                break
    assert run.end is not None
    return DryRun(tuple(out), tuple(run.path), run.end, tuple(feed), dict(run.variables),
                  tuple(run.sms), tuple(played))


def _take(feed: list[str], allowed: str) -> str | None:
    if not feed:
        return None
    entry = feed.pop(0)
    digit = entry[:1]
    return digit if digit and digit in allowed else None
