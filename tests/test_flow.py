"""IVR flow loading, checks and the sans-I/O interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.ivr.flow import FlowError, load_flow, parse_flow
from acd.ivr.interpreter import CollectDigit, EndCall, EnterQueue, FlowRun, Key, PlayPrompt

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "flows" / "bad"

# file -> (line, words the message must contain)
EXPECTED = {
    "dangling_next.yaml": (4, "'nowhere', which is not defined"),
    "unknown_type.yaml": (5, "unknown type 'dance'"),
    "bad_yaml.yaml": (5, "not valid YAML"),
    "missing_start.yaml": (2, "start node 'zz' is not defined"),
    "bad_option_key.yaml": (8, "option key '12'"),
    "bad_timeout.yaml": (7, "timeout must be a number"),
    "goto_loop.yaml": (4, "goto loop"),
    "queue_without_name.yaml": (5, "queue needs a 'queue' field"),
    "unknown_field.yaml": (6, "has no field 'colour'"),
    "empty.yaml": (1, "the file is empty"),
    "duplicate_node.yaml": (6, "key 'a' appears twice"),
    "not_mapping.yaml": (1, "must be a mapping"),
    "unknown_queue.yaml": (4, "unknown queue 'nosuch'"),
    "not_utf8.yaml": (1, "not UTF-8"),
}


def test_every_bad_file_is_covered() -> None:
    assert {p.name for p in BAD.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_flow_names_file_line_and_problem(name: str) -> None:
    line, words = EXPECTED[name]
    with pytest.raises(FlowError) as info:
        load_flow(BAD / name, known_queues={"billing"})
    err = info.value
    assert err.file.endswith(name)
    assert err.line == line, str(err)
    assert words in str(err)
    assert str(err).startswith(f"{err.file}:{line}:")


def test_missing_flow_file() -> None:
    with pytest.raises(FlowError, match="flow file not found"):
        load_flow(ROOT / "no-such-flow.yaml")


def test_sample_hotline_loads() -> None:
    flow = load_flow(ROOT / "ivr_flows" / "basic.yaml", known_queues={"billing", "tech",
                                                                       "general"})
    assert flow.start == "welcome"
    assert flow.queues == {"billing", "tech", "general"}


def run(flow_text: str, keys: list[str | None]) -> tuple[list[object], FlowRun]:
    fr = FlowRun(parse_flow(flow_text))
    steps: list[object] = [fr.start()]
    feed = iter(keys)
    while isinstance(steps[-1], PlayPrompt | CollectDigit):
        steps.append(fr.resume(Key(next(feed, None))))
    return steps, fr


MENU = """
flow: t
start: hi
nodes:
  hi: {type: play, prompt: hello, next: menu, barge_in: true}
  menu:
    type: menu
    prompt: choose
    retries: 1
    invalid_prompt: invalid
    options: {"1": q1, "9": bye}
  q1: {type: queue, queue: billing, priority: 3}
  bye: {type: hangup, prompt: goodbye}
"""


def test_menu_choice_reaches_queue_with_path() -> None:
    steps, _ = run(MENU, [None, "1"])
    assert steps[0] == PlayPrompt("hello", "0123456789*#")
    assert steps[1] == CollectDigit("choose", 5.0)
    assert steps[-1] == EnterQueue("billing", 3, ("hi", "menu", "q1"))


def test_invalid_key_retries_then_fails_closed() -> None:
    steps, _ = run(MENU, [None, "5", None, "7"])
    assert steps[2] == PlayPrompt("invalid")
    assert steps[3] == CollectDigit("choose", 5.0)
    assert isinstance(steps[-1], EndCall) and steps[-1].reason == "menu-failed"


def test_hangup_node_ends_with_prompt() -> None:
    steps, _ = run(MENU, [None, "9"])
    assert steps[-1] == EndCall(("hi", "menu", "bye"), "goodbye", "flow")


def test_a_key_during_a_barge_in_prompt_answers_the_next_menu() -> None:
    steps, _ = run(MENU, ["1"])
    assert steps[0] == PlayPrompt("hello", "0123456789*#")
    assert steps[1] == EnterQueue("billing", 3, ("hi", "menu", "q1"))
    # an invalid type-ahead key counts as a try, like a key pressed in the menu
    steps, _ = run(MENU, ["5", None, "9"])
    assert steps[1] == PlayPrompt("invalid")


def test_dry_run_lists_prompts_keys_and_end() -> None:
    from acd.ivr.dryrun import dry_run

    result = dry_run(parse_flow(MENU), ["", "7", "9"])
    kinds = [s.kind for s in result.steps]
    assert kinds == ["play", "ask", "key", "play", "ask", "key", "play", "hangup"]
    assert result.path == ("hi", "menu", "bye")
    assert isinstance(result.end, EndCall) and result.keys_left == ()
