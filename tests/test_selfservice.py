"""The example self-service back end (acd/loadsim/selfservice.py,
examples/selfservice.py): its accounts file, its answers, the sample
hotline's lookups against it through the engine's real HTTP lookup, the
hotline run by the engine against the PBX simulator with it, and the demo."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers import SECRET, call_record, db_url, engine_on_pbx, free_port, pbx_for_engine

from acd.adapters.ami import AmiConfig
from acd.core.center import agents_for_queues
from acd.core.model import CoreConfig
from acd.core.policy import simple_policy
from acd.ivr.interpreter import (
    Ack,
    CollectDigit,
    CollectDigits,
    Digits,
    FlowRun,
    Key,
    LookupData,
    LookupReply,
    PlayPrompt,
    Reply,
    SayValue,
    SetLanguage,
    Step,
)
from acd.ivr.load import load_flow
from acd.loadsim.demo import CALLER_MIXES, calls_self_service
from acd.loadsim.selfservice import (
    DEFAULT_ORIGIN,
    AccountsError,
    SelfService,
    answer,
    demo_accounts,
    parse_accounts,
    read_accounts,
)
from acd.runtime.engine import Engine
from acd.runtime.http_lookup import HttpLookup
from acd.runtime.settings import EngineConfig
from sim.config import CallerScript, CallResult, Outcome, PhoneBehaviour
from sim.pbx import SimPBX

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = ROOT / "examples" / "accounts.csv"
HOTLINE = ROOT / "ivr_flows" / "hotline.yaml"
#: Monday 23 November 2026, 10:00 in Shanghai: the hotline is open
MONDAY_10 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
#: in examples/accounts.csv: 56.80 yuan, 20480 MB left
KNOWN = "13800138000"
UNKNOWN = "13000000000"


@pytest.fixture(scope="module")
def backend() -> Iterator[SelfService]:
    """The back end on a free port with the example accounts."""
    with SelfService(read_accounts(ACCOUNTS), port=0) as service:
        yield service


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# ------------------------------------------------------------ the accounts file


def test_the_example_accounts_key_every_number_form_as_one() -> None:
    accounts = read_accounts(ACCOUNTS)
    assert len(accounts) == 12
    assert accounts["+8613800138000"].json() == {
        "msisdn": "+8613800138000", "balance": "56.80", "currency": "CNY",
        "plan": "5G 智享 128 元", "data": {"left_mb": 20480}}
    # written +86... in the file, asked for nationally, and the other way round
    for asked in ("15005923456", "+8615005923456", "8615005923456", "008615005923456",
                  "+85291234567", KNOWN, "+86" + KNOWN, "%2B86" + KNOWN):
        reply = answer(accounts, "GET", f"/account?msisdn={asked}")
        assert reply.status == 200, asked


@pytest.mark.parametrize(("text", "problem"), [
    ("", "accounts.csv:1:1: the file is empty; the first line must be the header: "
         "number,balance,plan,data_left_mb"),
    ("number,balance,plan\n", "accounts.csv:1:1: the header has no 'data_left_mb' column"),
    ("number,plan,data_left_mb,password\n", "the header has no 'balance' column"),
    ("number,balance,plan,data_mb,data_left_mb\n",
     "accounts.csv:1:21: 'data_mb' is not a column of accounts"),
    ("number,balance,plan,data_left_mb\n13800138000,12.345,p,1\n",
     "accounts.csv:2:13: balance '12.345' is not an amount in yuan with at most two decimals"),
    ("number,balance,plan,data_left_mb\nnobody,1,p,1\n",
     "accounts.csv:2:1: number 'nobody' is not a phone number"),
    ("number,balance,plan,data_left_mb\n13800138000,1,p,2G\n",
     "accounts.csv:2:17: data_left_mb '2G' is not a whole number of megabytes"),
    ("number,balance,plan,data_left_mb\n13800138000,1,,1\n",
     "accounts.csv:2:15: plan is missing"),
    ("number,balance,plan,data_left_mb,password\n13800138000,1,p,1,1234\n",
     "accounts.csv:2:19: password is not 6 digits"),
    ("number,balance,plan,data_left_mb\n13800138000,1,p\n",
     "accounts.csv:2:1: 3 values, but the header has 4 columns"),
    ("number,balance,plan,data_left_mb\n13800138000,1,p,1\n+8613800138000,2,q,2\n",
     "accounts.csv:3:1: number +8613800138000 is already on line 2"),
])
def test_a_bad_accounts_file_is_refused_naming_line_and_column(text: str, problem: str) -> None:
    with pytest.raises(AccountsError) as err:
        parse_accounts(text)
    assert problem in str(err.value)


def test_every_problem_is_listed() -> None:
    text = "number,balance,plan,data_left_mb\nx,1,p,1\n13800138000,y,p,1\n"
    with pytest.raises(AccountsError) as err:
        parse_accounts(text)
    assert [line.split(": ")[0] for line in str(err.value).splitlines()] == [
        "accounts.csv:2:1", "accounts.csv:3:13"]


# ------------------------------------------------------------------ answers


def test_verify_checks_the_service_password_and_locks_after_five_wrong() -> None:
    accounts = read_accounts(ACCOUNTS)
    service = SelfService(accounts)  # not started: its answers and counts only
    verify = f"/verify?msisdn={KNOWN}&password="
    assert answer(accounts, "GET", verify + "123456").body == {"result": "yes"}
    assert answer(accounts, "GET", verify + "654321").body == {"result": "no"}
    # an account without a password: no password is right
    assert answer(accounts, "GET", "/verify?msisdn=13911112222&password=").body == \
        {"result": "no"}
    assert answer(accounts, "GET", f"/verify?msisdn={UNKNOWN}&password=123456").status == 404
    assert answer(accounts, "GET", f"/verify?msisdn={KNOWN}").status == 400
    assert [service.answer("GET", verify + "000000").kind for _ in range(5)] == ["refused"] * 5
    locked = service.answer("GET", verify + "123456")  # the right one, too late
    assert (locked.kind, locked.body) == ("locked", {"result": "no", "locked": True})
    other = SelfService(accounts)
    assert [other.answer("GET", f"/verify?msisdn=+86{KNOWN}&password={pw}").kind
            for pw in ("000000",) * 4 + ("123456",) + ("000000",) * 4 + ("123456",)] == \
        ["refused"] * 4 + ["verified"] + ["refused"] * 4 + ["verified"]  # a right one resets


def test_the_back_end_answers_the_flows_request_shape(backend: SelfService) -> None:
    """What hotline.yaml asks (GET /account?msisdn={caller.number}) and what
    its `save:` reads (balance, plan, data.left_mb)."""
    status, body = get(f"{backend.origin}/account?msisdn=+86{KNOWN}")  # '+' as the engine sends it
    assert status == 200
    assert (body["balance"], body["plan"], body["data"]["left_mb"]) == ("56.80", "5G 智享 128 元",
                                                                        20480)
    assert get(f"{backend.origin}/account?msisdn={UNKNOWN}") == (
        404, {"error": "no account for this number"})
    for bad in ("/account", "/account?msisdn=", "/account?msisdn=anonymous",
                f"/account?msisdn={KNOWN}&msisdn={KNOWN}"):
        status, body = get(backend.origin + bad)
        assert status == 400 and body["error"], bad
    assert get(f"{backend.origin}/health") == (200, {"ok": True, "accounts": 12})
    status, body = get(f"{backend.origin}/accounts?msisdn={KNOWN}")
    assert status == 404 and "no such path" in body["error"]
    req = urllib.request.Request(f"{backend.origin}/account?msisdn={KNOWN}", method="POST",
                                 data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    with err.value as resp:
        assert resp.code == 405 and resp.headers["Allow"] == "GET, HEAD"
        assert json.loads(resp.read())["error"] == "POST is not allowed: GET only"


def test_a_malformed_request_gets_a_json_error(backend: SelfService) -> None:
    with socket.create_connection(("127.0.0.1", backend.port), timeout=5) as sock:
        sock.sendall(b'GET /account?msisdn=1 "x" HTTP/1.1\r\n\r\n')
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"].startswith("Bad request syntax")  # a '"' in it: still JSON


def test_each_request_is_logged_with_the_number_masked(backend: SelfService,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="acd.loadsim.selfservice"):
        get(f"{backend.origin}/account?msisdn={KNOWN}")
    lines = [r.getMessage() for r in caplog.records if r.name == "acd.loadsim.selfservice"]
    assert len(lines) == 1
    assert lines[0].startswith("GET /account 200 138****8000 ")
    assert KNOWN not in lines[0]


# ------------------------------------- the hotline's lookups through the engine's


async def walk(flow_run: FlowRun, keys: list[str], http: HttpLookup) -> list[Step]:
    """Walk the hotline as the engine does, the lookups over real HTTP:
    ``keys`` one per prompt that listens.  The steps taken."""
    feed = list(keys)
    steps: list[Step] = []
    step = flow_run.start(MONDAY_10)
    while not flow_run.done:
        steps.append(step)
        match step:
            case LookupData():
                assert step.url is not None
                reply: Reply = LookupReply(
                    await http.get(step.url, step.timeout_s))
            case SetLanguage():
                reply = Ack()
            case PlayPrompt() | SayValue() if not step.escape_digits:
                reply = Key(None)
            case PlayPrompt() | SayValue() | CollectDigit():
                reply = Key(feed.pop(0) or None if feed else None)
            case CollectDigits():  # GET DATA: what was typed, without the '#'
                typed = feed.pop(0) if feed else ""
                reply = Digits(typed.removesuffix("#"), timed_out=not typed)
            case _:
                raise AssertionError(f"the hotline does not ask for {step!r}")
        step = flow_run.resume(reply, MONDAY_10)
    return steps


async def test_the_hotline_balance_and_data_lookups_get_what_the_flow_saves(
        backend: SelfService) -> None:
    flow = load_flow(HOTLINE)
    http = HttpLookup({DEFAULT_ORIGIN: backend.origin})
    try:
        balance = FlowRun(flow, {"number": KNOWN})
        steps = await walk(balance, ["", "1", "1"], http)  # Mandarin, balance
        data = FlowRun(flow, {"number": "+86" + KNOWN})  # the caller id in E.164
        await walk(data, ["", "1", "2"], http)  # Mandarin, data left
        unknown = FlowRun(flow, {"number": UNKNOWN})
        await walk(unknown, ["", "1", "1"], http)
        lost_sim = FlowRun(flow, {"number": KNOWN})
        await walk(lost_sim, ["", "1", "5", "123456#"], http)
        wrong = FlowRun(flow, {"number": KNOWN})
        await walk(wrong, ["", "1", "5", "654321#"], http)
    finally:
        await http.close()
    lookups = [s for s in steps if isinstance(s, LookupData)]
    assert [s.url for s in lookups] == [f"{DEFAULT_ORIGIN}/account?msisdn={KNOWN}"]
    assert (balance.variables["balance"], balance.variables["plan"]) == ("56.80",
                                                                         "5G 智享 128 元")
    said = next(s for s in steps if isinstance(s, SayValue))
    assert (said.kind, said.value) == ("money", "56.80")
    assert balance.path[balance.path.index("balance_lookup") + 1] == "say_balance"
    assert data.variables["data_left_mb"] == 20480
    assert data.path[data.path.index("data_lookup") + 1] == "say_data"
    # an unknown number: a 404, the flow's on_error
    assert unknown.path[unknown.path.index("balance_lookup") + 1] == "self_service_down"
    assert "balance" not in unknown.variables
    # the lost-SIM sub-flow's password check
    assert lost_sim.variables["verified"] == "yes" and lost_sim.path[-1] == "lost_sim_queue"
    assert wrong.variables["verified"] == "no" and wrong.path[-1] == "agent"


def test_the_demo_knows_which_flows_call_the_back_end() -> None:
    assert calls_self_service(load_flow(HOTLINE))
    assert not calls_self_service(load_flow(ROOT / "ivr_flows" / "basic.yaml"))
    numbers = [f"138{i:08d}" for i in range(200)]
    accounts = demo_accounts(numbers, seed=1)
    assert 150 < len(accounts) < 200  # most callers have an account, some do not
    assert set(accounts) <= {"+86" + n for n in numbers}
    assert demo_accounts(numbers, seed=1) == accounts
    assert all(keys for _, keys in CALLER_MIXES["hotline"])


def test_http_lookup_origins_route_one_origin_only() -> None:
    http = HttpLookup({"http://127.0.0.1:8099": "http://127.0.0.1:41234"})
    assert http.routed("http://127.0.0.1:8099/account?msisdn=+8613800138000") == \
        "http://127.0.0.1:41234/account?msisdn=+8613800138000"
    assert http.routed("HTTP://127.0.0.1:8099/a") == "http://127.0.0.1:41234/a"
    for other in ("http://127.0.0.1:8098/a", "https://127.0.0.1:8099/a", "http://crm/a",
                  "http://[::1/a"):
        assert http.routed(other) == other
    assert HttpLookup({"http://crm": "http://127.0.0.1:1"}).routed("http://crm:80/x") == \
        "http://127.0.0.1:1/x"


# ------------------------------------------ the engine, the simulator, the back end


@asynccontextmanager
async def hotline(backend: SelfService, tmp_path: Path) -> AsyncIterator[tuple[SimPBX, Engine]]:
    """The engine serving the sample hotline at 10:00 on a Monday, its lookups
    to the back end, one agent (phone 1001) in every queue; the simulator's
    time at a tenth (a 4 s menu timeout takes 0.4 s)."""
    flow = load_flow(HOTLINE)
    queues = sorted(flow.queues)
    cfg = EngineConfig(
        core=CoreConfig(policy=simple_policy(dict.fromkeys(queues, 5.0)),
                        agents=agents_for_queues({"a1001": ("1001", tuple(queues))}),
                        wrap_up_s=0.05, rona_pause_s=None),
        flow=flow, ami=AmiConfig(username="acd", secret=SECRET), database_url=db_url(tmp_path),
        known_queues=frozenset(queues))
    start = time.time()

    async def no_profile(number: str) -> dict[str, str]:
        return {}

    async with engine_on_pbx(
            cfg, pbx=pbx_for_engine(time_scale=0.1, say_word_s=0.5),
            phones={"1001": PhoneBehaviour(answer_after_s=0.5, talk_s=1.0)},
            clock=lambda: MONDAY_10.timestamp() + (time.time() - start), lookup=no_profile,
            http=HttpLookup({DEFAULT_ORIGIN: backend.origin})) as (pbx, engine):
        yield pbx, engine


async def call(pbx: SimPBX, number: str, keys: list[str]) -> CallResult:
    h = await pbx.place_call(CallerScript(number=number, keys=keys, patience_s=30,
                                          key_delay_s=0.1))
    return await asyncio.wait_for(h.done, 20)



def after(commands: list[str], first: str, n: int) -> list[str]:
    """The ``n`` AGI commands after ``first``."""
    i = commands.index(first)
    return commands[i + 1:i + 1 + n]


async def test_a_caller_asks_for_the_balance_and_the_data_and_hears_them(
        backend: SelfService, tmp_path: Path) -> None:
    async with hotline(backend, tmp_path) as (pbx, engine):
        balance = await call(pbx, KNOWN, ["", "9", "1"])  # English, balance
        data = await call(pbx, "+86" + KNOWN, ["", "9", "2"])  # English, data left
        mandarin = await call(pbx, KNOWN, ["", "1", "1"])  # Mandarin, balance
        rec = await call_record(engine, balance.uniqueid)
    assert balance.outcome is Outcome.ENGINE_HANGUP
    assert after(balance.agi_commands, 'STREAM FILE acd/your-balance-is ""', 4) == [
        'SAY NUMBER 56 ""', 'STREAM FILE acd/yuan ""', 'SAY NUMBER 80 ""',
        'STREAM FILE acd/fen ""']
    assert rec["ivr_path"].split(">") == [
        "hours", "welcome", "vip_check", "language_menu", "lang_english", "main_menu",
        "balance_lookup", "say_balance", "balance_sms", "anything_else", "goodbye"]
    assert after(data.agi_commands, 'STREAM FILE acd/data-left-is ""', 2) == [
        'SAY NUMBER 20480 ""', 'STREAM FILE acd/megabytes ""']
    # in Mandarin the amount is said too, however it is composed
    said = mandarin.agi_commands[mandarin.agi_commands.index(
        'STREAM FILE acd/your-balance-is ""'):]
    assert 'STREAM FILE acd/yuan ""' in said
    assert backend.counts().get("account", 0) >= 3


async def test_an_unknown_number_hears_the_service_is_down_and_gets_an_agent(
        backend: SelfService, tmp_path: Path) -> None:
    async with hotline(backend, tmp_path) as (pbx, engine):
        res = await call(pbx, UNKNOWN, ["", "9", "1"])
        rec = await call_record(engine, res.uniqueid)
        lost = await call(pbx, KNOWN, ["", "1", "5", "123456#"])  # lost SIM, right password
        lost_rec = await call_record(engine, lost.uniqueid)
    assert res.outcome is Outcome.TALKED and res.agent == "1001"
    assert 'STREAM FILE acd/service-unavailable ""' in res.agi_commands
    assert not any(c.startswith("SAY NUMBER") for c in res.agi_commands)
    path = rec["ivr_path"].split(">")
    assert path[path.index("balance_lookup"):] == [
        "balance_lookup", "self_service_down", "agent_or_closed", "agent"]
    assert (rec["queue"], rec["outcome"]) == ("general", "answered")
    # the service password checked by the back end: the urgent lost-SIM queue
    assert "lost_sim/check_password>lost_sim/done>lost_sim_check>lost_sim_queue" in \
        lost_rec["ivr_path"]
    assert (lost_rec["queue"], lost_rec["priority"]) == ("general", 50)


# ---------------------------------------------------------------- the command


def test_the_command_serves_the_example_accounts() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "selfservice.py"),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("self-service back end: 12 accounts from ")
        assert f"GET http://127.0.0.1:{port}/account?msisdn=NUMBER" in first
        status, body = get(f"http://127.0.0.1:{port}/account?msisdn={KNOWN}")
        assert (status, body["balance"]) == (200, "56.80")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "GET /account 200 138****8000" in err and KNOWN not in err


def test_the_command_refuses_a_bad_file_and_a_taken_port(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("number,balance,plan,data_left_mb\n13800138000,lots,p,1\n")
    script = str(ROOT / "examples" / "selfservice.py")
    r = subprocess.run([sys.executable, script, "--accounts", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert f"{bad}:2:13: balance 'lots' is not an amount" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = subprocess.run([sys.executable, script, "--port", str(taken.getsockname()[1])],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 5 and "cannot listen on 127.0.0.1:" in r.stderr


@pytest.mark.slow  # the hotline's menus wait for keys
def test_the_demo_with_the_hotline_serves_the_callers_from_the_back_end(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli import main

    # --open: as if the hotline's agents were at work (08:00-22:00 Asia/Shanghai),
    # whatever the time the test runs at
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--calls", "12", "--agents",
                                  "4", "--open", "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.exit_code == 0, r.output
    assert "out of hours" not in r.output
    line = next(x for x in r.output.splitlines() if x.startswith("self-service lookups"))
    answered = int(line.split(": ")[1].split()[0])
    assert answered > 0, line
    assert "unknown numbers (to an agent)" in line
    row = next(x for x in r.output.splitlines() if "│ answered" in x)
    calls_answered = int(row.split("│")[2])
    assert calls_answered > 0, r.output
