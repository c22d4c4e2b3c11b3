"""IVR flow loading, static checks, expressions, hours and the sans-I/O interpreter."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from acd.ivr.checks import check_flow
from acd.ivr.expr import ExprError, env_from, parse_expr, parse_template
from acd.ivr.hours import HoursError, parse_days, parse_ranges
from acd.ivr.interpreter import (
    Ack,
    CollectDigit,
    CollectDigits,
    Digits,
    EndCall,
    EnterQueue,
    FlowRun,
    FlowStateError,
    Key,
    LookupData,
    LookupReply,
    PlayPrompt,
    RecordFile,
    SayValue,
    SetLanguage,
    TransferCall,
    VoicemailCall,
)
from acd.ivr.load import load_flow
from acd.ivr.parse import FlowError, parse_flow

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "flows" / "bad"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# file -> (line, column, words the message must contain)
EXPECTED = {
    "announce_too_often.yaml": (7, 21, "node 'q': announce_every must be 0"),
    "bad_condition_syntax.yaml": (7, 24, "node 'b': case 1: if: not a valid condition"),
    "bad_option_key.yaml": (8, 7, "node 'a': option key '12' is not one of 0-9, * or #"),
    "bad_timeout.yaml": (7, 14, "node 'a': timeout must be a number from 0.5 to 60"),
    "bad_yaml.yaml": (5, 1, "not valid YAML: expected ',' or '}'"),
    "branch_without_else.yaml": (4, 3, "dead end: branch 'b' has no 'else'"),
    "condition_calls_code.yaml": (7, 13, "node 'b': case 1: if: unknown function"),
    "dangling_next.yaml": (7, 11, "node 'a' goes to 'nowhere', which is not defined"),
    "duplicate_node.yaml": (6, 3, "nodes: key 'a' appears twice"),
    "empty.yaml": (1, 1, "the file is empty"),
    "goto_loop.yaml": (4, 3, "loop"),
    "hours_bad_day.yaml": (8, 7, "'monday-friday' is not a day range like mon-fri"),
    "hours_crosses_midnight.yaml": (8, 16, "'22:00-08:00': the end is not after the start"),
    "hours_unknown_timezone.yaml": (6, 15, "unknown time zone 'Asia/Shangai'"),
    "http_lookup_without_url.yaml": (6, 13, "node 'l': an http lookup needs a 'url'"),
    "input_bad_pattern.yaml": (9, 14, "pattern is not a valid regular expression"),
    "input_min_over_max.yaml": (9, 17, "min_digits 8 is more than max_digits 4"),
    "input_without_on_fail.yaml": (4, 3, "dead end: input 'i' has no on_fail"),
    "language_not_declared.yaml": (7, 15, "language 'yue' is not in the flow's languages"),
    "language_node_not_a_code.yaml": (7, 15, "language '/etc' is not a language code"),
    "language_path_traversal.yaml": (2, 17, "languages: '../../tmp/x' is not a language code"),
    "loop_without_exit.yaml": (4, 3, "loop with no exit: from a, b the call can never reach"),
    "menu_without_on_fail.yaml": (4, 3, "dead end: menu 'm' has no on_fail"),
    "missing_start.yaml": (2, 8, "start node 'zz' is not defined"),
    "not_mapping.yaml": (1, 1, "the flow file must be a mapping of keys to values"),
    "not_utf8.yaml": (6, 1, "not UTF-8 text (byte 0xff"),
    "prompt_with_space.yaml": (6, 13, "'welcome message' is not a sound file name"),
    "queue_without_name.yaml": (5, 5, "node 'a': queue needs a 'queue' field"),
    "reserved_variable.yaml": (7, 15, "'caller' is a reserved name"),
    "return_outside_subflow.yaml": (4, 3, "node 'r': return outside a sub-flow"),
    "say_unknown_kind.yaml": (6, 10, "say 'colour' is not one of: digits, number, date"),
    "silent_loop.yaml": (5, 3, "loop that never waits for the caller: b -> s would spin"),
    "subflow_includes_itself.yaml": (6, 11, "includes itself"),
    "subflow_missing.yaml": (6, 11, "sub-flow 'no_such_subflow.yaml': sub-flow file not found"),
    "template_lone_brace.yaml": (6, 14, "number: a lone '{'"),
    "undefined_variable.yaml": (7, 12, "variable 'balanse' is never set"),
    "unknown_field.yaml": (6, 5, "node 'a': hangup has no field 'colour'"),
    "unknown_namespace_field.yaml": (7, 13, "'now.month': now has hour, minute"),
    "unknown_queue.yaml": (6, 12, "node 'a': unknown queue 'nosuch'"),
    "unknown_type.yaml": (5, 11, "unknown type 'dance'"),
}


def test_every_bad_file_is_covered() -> None:
    assert {p.name for p in BAD.glob("*.yaml")} == set(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_flow_names_file_line_and_problem(name: str) -> None:
    line, col, words = EXPECTED[name]
    with pytest.raises(FlowError) as info:
        load_flow(BAD / name, known_queues={"billing"})
    err = info.value
    assert err.file.endswith(name)
    assert (err.line, err.column) == (line, col), str(err)
    assert words in str(err)
    assert str(err).startswith(f"{err.file}:{line}:{col}: ")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_bad_flow_is_refused_by_the_engine_configuration(name: str, tmp_path: Path) -> None:
    """`acd serve` loads the flow through the configuration: a clean error, never a crash."""
    from acd.runtime.settings import parse_config

    with pytest.raises(FlowError):
        parse_config({"queues": [{"name": "billing"}], "flow": str(BAD / name)}, "acd.yaml",
                     tmp_path)


@pytest.mark.parametrize("lang", ["/etc", "../../tmp/x", "zh/../..", "..", "zh.", "ZH x",
                                  "a" * 40])
def test_a_flow_language_must_be_a_language_code_it_names_a_sounds_folder(lang: str) -> None:
    with pytest.raises(FlowError) as info:
        parse_flow(f'flow: x\nlanguages: [zh, "{lang}"]\nstart: h\nnodes:\n'
                   "  h: {type: hangup}\n", "f.yaml")
    assert str(info.value).startswith("f.yaml:2:17: ")
    assert "is not a language code" in str(info.value)


@pytest.mark.parametrize("lang", ["zh", "yue", "nan", "en_US", "pt_BR", "zh_CN", "en-GB"])
def test_asterisk_language_codes_are_taken(lang: str) -> None:
    flow = parse_flow(f"flow: x\nlanguages: [{lang}]\nstart: h\nnodes:\n"
                      "  h: {type: hangup}\n", "f.yaml")
    assert flow.languages == (lang,)


def test_missing_flow_file() -> None:
    with pytest.raises(FlowError, match="flow file not found"):
        load_flow(ROOT / "no-such-flow.yaml")


def test_sample_flows_load_and_pass_every_check() -> None:
    queues = {"billing", "tech", "general", "vip"}
    basic = load_flow(ROOT / "ivr_flows" / "basic.yaml", known_queues=queues)
    assert basic.queues == {"billing", "tech", "general"}
    hotline = load_flow(ROOT / "ivr_flows" / "hotline.yaml", known_queues=queues)
    assert hotline.queues == queues
    assert hotline.languages == ("zh", "yue", "nan", "en")
    assert [p for p in check_flow(hotline, queues)] == []
    # the sub-flow is inlined under its node's name and returns to `next`
    assert "lost_sim/ask_password" in hotline.nodes
    assert str(ROOT / "ivr_flows" / "sub" / "verify_password.yaml") in \
        [str(Path(f).resolve()) for f in hotline.files]


# ------------------------------------------------------------------ warnings


def test_warnings_do_not_refuse_a_flow() -> None:
    flow = parse_flow("""
flow: t
start: m
nodes:
  m:
    type: menu
    prompt: p
    options: {"1": s, "2": q}
    on_fail: q
  s:
    type: set
    vars: {x: "1"}
    next: q
  q:
    type: queue
    queue: billing
    attributes: {x: "{x}"}
  orphan: {type: hangup}
""", "t.yaml")
    problems = check_flow(flow)
    assert [p.severity for p in problems] == ["warning"] * 3
    text = "\n".join(map(str, problems))
    assert "t.yaml:5:3: warning: menu 'm' repeats its prompt" in text
    assert "variable 'x' may be unset here" in text
    assert "node 'orphan' is unreachable" in text


def test_missing_sound_files_are_errors_when_a_sounds_folder_is_given(tmp_path: Path) -> None:
    flow = parse_flow("""
flow: t
languages: [zh, en]
start: p
nodes:
  p: {type: play, prompt: [acd/welcome, {zh: acd/zh-only, en: acd/en-only}], next: h}
  h: {type: hangup, prompt: acd/bye}
""", "t.yaml")
    for name in ("zh/acd/welcome.wav", "en/acd/welcome.gsm", "zh/acd/zh-only.wav",
                 "acd/bye.ulaw"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    problems = check_flow(flow, sounds=tmp_path)
    assert [p.message.split(" not found")[0] for p in problems] == \
        ["node 'p': sound file 'acd/en-only'"]
    assert "for language(s) en" in problems[0].message
    assert problems[0].line == 6
    assert check_flow(flow, sounds=tmp_path / "nope")[0].message.startswith("sounds folder")


# --------------------------------------------------------------- expressions


def env(**variables: object) -> object:
    return env_from(variables, {"vip": "2", "number": "13800138000"},  # type: ignore[arg-type]
                    {"hour": 9, "weekday": "mon"}, "c1")


@pytest.mark.parametrize("source,expected", [
    ("caller.vip >= 2", True),
    ("caller.vip > 2", False),
    ("caller.vip == 2 and now.weekday == 'mon'", True),
    ("caller.missing == none", True),
    ("caller.missing >= 1", False),  # cannot compare: false, not an error
    ("x in ('a', 'b')", True),
    ("x not in ['a']", False),
    ("len(caller.number) == 11 and startswith(caller.number, '138')", True),
    ("matches(caller.number, '1[3-9][0-9]{9}')", True),
    ("not (now.hour < 8 or now.hour >= 22)", True),
    ("int(n) + 1 == 4", True),
    ("n * 2 == 6", True),
    ("lower('ABC') == 'abc'", True),
    ("-n < 0", True),
])
def test_conditions(source: str, expected: bool) -> None:
    assert parse_expr(source).test(env(x="a", n="3")) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("source,words", [
    ("__import__('os')", "unknown function"),
    ("caller.__class__", "may not start with '_'"),
    ("(lambda: 1)()", "unknown function"),
    ("x[0]", "subscript is not allowed"),
    ("x if y else z", "ifexp is not allowed"),
    ("a is none", "use == and !="),
    ("a in b", "'in' needs a list"),
    ("open.x", "only caller., now. and call. names have a dot"),
    ("len(a, b)", "len() takes 1 value(s)"),
    ("", "empty"),
    ("a ==", "not a valid condition"),
])
def test_conditions_that_are_refused(source: str, words: str) -> None:
    with pytest.raises(ExprError, match=words.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        parse_expr(source)


def test_templates() -> None:
    t = parse_template("http://crm/x?n={caller.number}&v={ vip }&b={{lit}}")
    assert t.variables() == {"vip"}
    assert t.render(env(vip=True)) == "http://crm/x?n=13800138000&v=true&b={lit}"  # type: ignore[arg-type]
    for bad in ("{", "}", "{a b}", "{now.year}", "{}"):
        with pytest.raises(ExprError):
            parse_template(bad)


# --------------------------------------------------------------------- hours


def test_hours_parsing() -> None:
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_days("sat,sun") == [5, 6]
    assert parse_days("fri-mon") == [4, 5, 6, 0]
    assert parse_ranges("08:00-12:00, 13:00-18:00") == ((480, 720), (780, 1080))
    assert parse_ranges("22:00-24:00") == ((1320, 1440),)
    assert parse_ranges("closed") == ()
    for bad in ("8-12", "25:00-26:00", "12:00-08:00", "09:60-10:00"):
        with pytest.raises(HoursError):
            parse_ranges(bad)


HOURS = """
flow: t
start: o
nodes:
  o:
    type: hours
    timezone: Asia/Shanghai
    open:
      mon-fri: "08:00-12:00, 13:00-20:00"
      sat: "10:00-14:00"
    holidays: ["2026-10-01"]
    special: {"2026-12-31": "08:00-10:00"}
    when_open: yes_
    when_closed: no_
  yes_: {type: queue, queue: q}
  no_: {type: hangup}
"""


@pytest.mark.parametrize("when,open_", [
    ("2026-11-23T08:00:00+08:00", True),   # Monday, opening minute
    ("2026-11-23T07:59:00+08:00", False),
    ("2026-11-23T12:30:00+08:00", False),  # lunch break
    ("2026-11-23T19:59:00+08:00", True),
    ("2026-11-23T20:00:00+08:00", False),
    ("2026-11-28T11:00:00+08:00", True),   # Saturday
    ("2026-11-29T11:00:00+08:00", False),  # Sunday: not listed, closed
    ("2026-10-01T09:00:00+08:00", False),  # holiday (a Thursday)
    ("2026-12-31T09:30:00+08:00", True),   # special day
    ("2026-12-31T10:30:00+08:00", False),
    ("2026-11-23T00:30:00+00:00", True),   # UTC 00:30 is 08:30 in Shanghai
])
def test_hours_node_in_its_time_zone(when: str, open_: bool) -> None:
    run = FlowRun(parse_flow(HOURS), now=dt.datetime.fromisoformat(when))
    step = run.start()
    assert isinstance(step, EnterQueue if open_ else EndCall)


# --------------------------------------------------------------- interpreter

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
    on_invalid: bye
    on_timeout: q1
  q1: {type: queue, queue: billing, priority: 3}
  bye: {type: hangup, prompt: goodbye}
"""


def drive(flow_text: str, replies: list[object], **kw: object) -> tuple[list[object], FlowRun]:
    fr = FlowRun(parse_flow(flow_text), **kw)  # type: ignore[arg-type]
    steps: list[object] = [fr.start()]
    feed = iter(replies)
    while not fr.done:
        steps.append(fr.resume(next(feed)))  # type: ignore[arg-type]
    return steps, fr


def test_menu_choice_reaches_queue_with_path() -> None:
    steps, _ = drive(MENU, [Key(None), Key("1")])
    assert steps[0] == PlayPrompt(("hello",), "0123456789*#")
    assert steps[1] == CollectDigit(("choose",), 5.0)
    assert steps[-1] == EnterQueue("billing", 3, ("hi", "menu", "q1"))


def test_menu_failure_branches_by_the_last_try() -> None:
    steps, _ = drive(MENU, [Key(None), Key("5"), Key(None), Key("7")])
    assert steps[2] == PlayPrompt(("invalid",))
    assert steps[3] == CollectDigit(("choose",), 5.0)
    assert steps[-1] == EndCall(("hi", "menu", "bye"), ("goodbye",), "flow")
    # the last try timed out: on_timeout
    steps, _ = drive(MENU, [Key(None), Key("5"), Key(None), Key(None)])
    assert isinstance(steps[-1], EnterQueue)


def test_a_key_during_a_barge_in_prompt_answers_the_next_menu() -> None:
    steps, fr = drive(MENU, [Key("1")])
    assert steps[1] == EnterQueue("billing", 3, ("hi", "menu", "q1"))
    assert fr.keys == ["1"]
    # an invalid type-ahead key counts as a try, like a key pressed in the menu
    steps, _ = drive(MENU, [Key("5"), Ack(), Key("9")])
    assert steps[1] == PlayPrompt(("invalid",))


def test_resume_when_not_waiting_raises() -> None:
    fr = FlowRun(parse_flow(MENU))
    with pytest.raises(FlowStateError):
        fr.resume(Key("1"))
    fr.start()
    fr.resume(Key("1"))
    with pytest.raises(FlowStateError):
        fr.resume(Key("1"))
    with pytest.raises(FlowStateError):
        fr.start()


EVERY = """
flow: every
languages: [zh, en]
timezone: Asia/Shanghai
variables: {tries: "0"}
start: lang
nodes:
  lang: {type: language, language: en, dialect: cantonese, next: greet}
  greet:
    type: play
    prompt: [acd/hello, {zh: acd/zh-hi, en: acd/en-hi}]
    next: acct
  acct:
    type: input
    prompt: acd/enter-account
    variable: account
    min_digits: 4
    max_digits: 8
    pattern: "1[0-9]+"
    retries: 1
    invalid_prompt: acd/bad-account
    next: fetch
    on_fail: fail
  fetch:
    type: lookup
    source: http
    url: "http://crm/acct/{account}?n={caller.number}"
    timeout: 1.5
    save: {balance: balance, left: data.left_mb}
    next: say
    on_error: fail
  say:
    type: say
    say: money
    value: "{balance}"
    prompt: acd/your-balance
    barge_in: true
    next: mark
  mark: {type: sms, template: balance_link, next: set}
  set:
    type: set
    vars: {tier: "{caller.tier}-{left}"}
    next: route
  route:
    type: branch
    cases:
      - if: tier == "gold-20"
        goto: rec
      - if: caller.vip >= 1
        goto: vm
    else: xfer
  rec:
    type: record
    prompt: acd/after-beep
    variable: message
    max_seconds: 30
    silence: 3
    next: q
  q:
    type: queue
    queue: billing
    priority: "caller.vip * 10 + 5"
    attributes: {account: "{account}", tier: "{tier}"}
    moh: jazz
    announce_every: 30
  vm: {type: voicemail, mailbox: "{account}@hotline"}
  xfer: {type: transfer, number: "955{left}", prompt: acd/transferring}
  fail: {type: hangup, prompt: acd/sorry}
"""


def test_every_node_type_in_one_walk() -> None:
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    fr = FlowRun(parse_flow(EVERY), {"number": "13800138000", "tier": "gold", "vip": "1"},
                 now=now, call_id="c9")
    assert fr.start() == SetLanguage("en", "cantonese")
    assert fr.resume(Ack()) == PlayPrompt(("acd/hello", "acd/en-hi"))
    assert fr.resume(Key(None)) == CollectDigits(("acd/enter-account",), 8, 5.0)
    # too short: invalid prompt, then the input again
    assert fr.resume(Digits("12#")) == PlayPrompt(("acd/bad-account",))
    assert fr.resume(Key(None)) == CollectDigits(("acd/enter-account",), 8, 5.0)
    assert fr.resume(Digits("123456")) == LookupData(
        "http", "http://crm/acct/123456?n=13800138000", 1.5)
    step = fr.resume(LookupReply({"balance": "12.50", "data": {"left_mb": 20}}))
    assert step == SayValue("money", "12.50", "0123456789*#", ("acd/your-balance",))
    step = fr.resume(Key(None))
    assert step == RecordFile("recordings/c9", ("acd/after-beep",), 30, True, 3)
    step = fr.resume(Ack())
    assert step == EnterQueue("billing", 15, fr.end.path if fr.end else (),  # type: ignore[union-attr]
                              (("language", "en"), ("dialect", "cantonese"),
                               ("account", "123456"), ("tier", "gold-20")), "jazz", 30.0)
    assert fr.variables["message"] == "recordings/c9"
    assert fr.sms == ["balance_link"]
    assert fr.path[-3:] == ["route", "rec", "q"]


def test_branch_voicemail_and_transfer_ends() -> None:
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    replies = [Ack(), Key(None), Digits("1234"), LookupReply({"balance": 1, "data":
                                                               {"left_mb": 7}}), Key(None)]
    steps, _ = drive(EVERY, replies, caller={"vip": "2"}, now=now)
    assert steps[-1] == VoicemailCall("1234@hotline", steps[-1].path)  # type: ignore[attr-defined]
    steps, _ = drive(EVERY, replies, caller={}, now=now)
    assert isinstance(steps[-1], TransferCall)
    assert steps[-1].number == "9557" and steps[-1].prompts == ("acd/transferring",)


def test_lookup_failure_and_missing_field_take_on_error() -> None:
    for data in (None, {}, {"balance": 1}):  # no data/left_mb: a missing field
        steps, _ = drive(EVERY, [Ack(), Key(None), Digits("1234"), LookupReply(data)])
        assert steps[-1] == EndCall(steps[-1].path, ("acd/sorry",), "flow")  # type: ignore[attr-defined]


def test_input_type_ahead_counts_the_digits_typed_during_the_prompt() -> None:
    text = EVERY.replace("    next: acct\n  acct:", "    barge_in: true\n    next: acct\n  acct:")
    fr = FlowRun(parse_flow(text))
    fr.start()
    fr.resume(Ack())
    step = fr.resume(Key("1"))  # "1" pressed during the greeting
    assert step == CollectDigits(("acd/enter-account",), 8, 5.0, typed="1")
    assert isinstance(fr.resume(Digits("2345")), LookupData)
    assert fr.variables["account"] == "12345"


def test_a_flow_that_spins_is_stopped() -> None:
    # a loop through a prompt is allowed, but a caller who never stops looping is cut off
    fr = FlowRun(parse_flow("""
flow: t
start: a
nodes:
  a: {type: play, prompt: p, next: b}
  b: {type: goto, target: a}
"""))
    step = fr.start()
    while isinstance(step, PlayPrompt):
        step = fr.resume(Key(None))
    assert isinstance(step, EndCall) and step.reason == "step-limit"


# ---------------------------------------------------------- dry run, schema


def test_dry_run_lists_prompts_keys_and_end() -> None:
    from acd.ivr.dryrun import dry_run

    result = dry_run(parse_flow(MENU), ["", "7", "9"])
    kinds = [s.kind for s in result.steps]
    assert kinds == ["play", "ask", "key", "play", "ask", "key", "play", "hangup"]
    assert result.path == ("hi", "menu", "bye")
    assert isinstance(result.end, EndCall) and result.keys_left == ()
    assert result.prompts == ("hello", "choose", "invalid", "choose", "goodbye")


def test_schema_file_is_current_and_accepts_the_sample_flows() -> None:
    import jsonschema
    import yaml

    from acd.ivr.schema import flow_schema

    schema = flow_schema()
    on_disk = json.loads((ROOT / "ivr_flows" / "flow.schema.json").read_text())
    assert on_disk == schema, "run: acd flow schema -o ivr_flows/flow.schema.json"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for f in ("hotline.yaml", "basic.yaml", "sub/verify_password.yaml"):
        data = yaml.safe_load((ROOT / "ivr_flows" / f).read_text())
        assert list(validator.iter_errors(data)) == [], f
    data = yaml.safe_load((BAD / "unknown_field.yaml").read_text())
    assert list(validator.iter_errors(data))
    data = yaml.safe_load((BAD / "unknown_type.yaml").read_text())
    assert list(validator.iter_errors(data))


@pytest.mark.parametrize("vip", ["inf", "-inf", "nan", "1e999", "x"])
def test_non_finite_caller_data_is_not_a_number(vip: str) -> None:
    # "inf"/"nan" from a profile or a lookup used to crash the walk
    # (OverflowError / ValueError); they count as no number, like "x" (0 in sums)
    flow = parse_flow("""\
flow: f
start: q
nodes:
  q: {type: queue, queue: billing, priority: "caller.vip * 10 + 5"}
""")
    step = FlowRun(flow, {"number": "138", "vip": vip}).start()
    assert isinstance(step, EnterQueue) and step.priority == 5
    as_number = env(x=vip)
    assert parse_expr("int(x)").evaluate(as_number) is None  # type: ignore[arg-type]
    assert parse_expr("x > 3").evaluate(as_number) is False  # type: ignore[arg-type]
    good = FlowRun(flow, {"number": "138", "vip": "2"}).start()
    assert isinstance(good, EnterQueue) and good.priority == 25
