"""The live run's plan: every caller drawn before the run starts (the same
draws as the virtual run's, :func:`acd.loadsim.draws.draw_calls`), and the
flow the engine runs (the scenario's IVR, or a generated one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from acd.ivr.nodes import Flow
from acd.ivr.parse import parse_flow
from acd.loadsim.draws import draw_calls
from acd.loadsim.model import Scenario, SimError, TraceCall

__all__ = ["MENU_KEYS", "PlannedCall", "live_flow", "plan_calls"]

#: keys of the generated menu (several queues, no IVR in the scenario)
MENU_KEYS = "1234567890*#"


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One caller of the live run, drawn before the run starts."""

    index: int  # 1-based arrival number
    arrival_s: float  # simulated seconds from the start
    number: str
    attributes: tuple[tuple[str, str], ...]
    queue: str | None  # the queue the IVR (or the share draw, or the trace) picks; None: IVR end
    keys: tuple[str, ...]  # CallerScript.keys: one entry per input prompt
    handle_s: float
    patience_s: float | None  # None: never hangs up
    counted: bool  # after the warm-up


def live_flow(sc: Scenario) -> tuple[Flow, dict[str, str]]:
    """The flow the engine runs, and the key that picks each queue (generated
    menu only; empty otherwise)."""
    if sc.ivr is not None:
        return sc.ivr.flow, {}
    names = list(sc.queues) if sc.trace is None else sorted(
        set(sc.queues) | {c.queue for c in sc.trace})
    if not names:
        raise SimError("the scenario has no queue to send calls to")
    if len(names) > len(MENU_KEYS):
        raise SimError(f"live mode without an IVR handles at most {len(MENU_KEYS)} queues "
                       f"(the generated menu has one key per queue); got {len(names)}")
    lines = [f"flow: sim-{sc.name}", 'version: "1"']
    if len(names) == 1:
        lines += ["start: q0", "nodes:",
                  f"  q0: {{type: queue, queue: {_yaml_str(names[0])}, announce_every: 0}}"]
        key_of: dict[str, str] = {}
    else:
        key_of = {q: MENU_KEYS[i] for i, q in enumerate(names)}
        options = ", ".join(f'"{key_of[q]}": q{i}' for i, q in enumerate(names))
        lines += ["start: pick", "nodes:",
                  "  pick: {type: menu, prompt: acd/main-menu, timeout: 30, retries: 2, "
                  f"on_fail: q0, options: {{{options}}}}}"]
        lines += [f"  q{i}: {{type: queue, queue: {_yaml_str(q)}, announce_every: 0}}"
                  for i, q in enumerate(names)]
    return parse_flow("\n".join(lines) + "\n", f"<generated flow for {sc.file}>"), key_of


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_calls(sc: Scenario, seed: int = 0, calls: int | None = None, *,
               trace: Sequence[TraceCall] | None = None, warmup_calls: int = 0,
               key_of: dict[str, str] | None = None) -> list[PlannedCall]:
    """Every caller of the run, in order of arrival: the same draws as
    :func:`acd.loadsim.virtual.run_virtual` (:func:`acd.loadsim.draws.draw_calls`).  ``key_of``:
    queue -> menu key of the generated flow (scenarios without an IVR)."""
    key_of = key_of or {}
    trace = trace if trace is not None else sc.trace
    max_calls = calls if calls is not None else sc.calls
    if max_calls is None and trace is None and sc.day_end_s is None:
        raise SimError("the scenario has a constant rate and no end: give calls or hours")
    out: list[PlannedCall] = []
    for d in draw_calls(sc, seed, max_calls, trace):
        script = d.script if sc.ivr is not None and trace is None else (
            (key_of[d.queue],) if d.queue is not None and d.queue in key_of else ())
        counted = d.index > warmup_calls and d.arrival_s >= sc.warmup_s
        out.append(PlannedCall(d.index, d.arrival_s, d.number, d.attributes, d.queue, script,
                               d.handle_s, d.patience_s, counted))
    return out
