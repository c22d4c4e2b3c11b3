"""What reaches the log and the terminal (issue 13, item 6): callers'
numbers and names masked at every level unless ``logging:
show_caller_data``; a repeated failure logged once with a count; values
from outside printed with their control characters escaped."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from helpers import SECRET, acd, db_url, engine_on_pbx
from sqlalchemy import text

from acd.adapters.ami import AmiConfig
from acd.adapters.events_mqtt import LinkConfig, MqttEventLink, Outgoing
from acd.adapters.lookup import Context, LookupBatcher
from acd.adapters.profiles_store import ProfileStore
from acd.adapters.storage import Database
from acd.core.center import agents_for_queues
from acd.core.model import CallRecord, Candidate, CoreConfig, Explanation, Outcome
from acd.core.policy import simple_policy
from acd.core.profiles import CustomerProfile
from acd.ivr.load import load_flow
from acd.logs import show_private
from acd.runtime.settings import ConfigError, EngineConfig, SmsConfig, load_config
from acd.runtime.sms_sender import SenderConfig
from acd.sms.policy import PendingSms, parse_sms_policy
from sim.config import CallerScript, PhoneBehaviour
from sim.config import Outcome as SimOutcome

ROOT = Path(__file__).resolve().parent.parent
FLOW = load_flow(ROOT / "ivr_flows" / "basic.yaml")
NUMBER, NAME = "13912345678", "Zhang Sanfeng"
#: a caller's name that would clear the screen, retitle the terminal and
#: turn the rest red, were it printed as it is
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b[31mEvil\u202eeman\x9b0m"


@pytest.fixture(autouse=True)
def _masked() -> Iterator[None]:
    show_private(False)
    yield
    show_private(False)


def _engine_lines(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the engine's loggers wrote, tracebacks included."""
    handler = logging.StreamHandler()
    return "\n".join(handler.format(r) for r in caplog.records if r.name.startswith("acd"))


#: an SMS after every call, through the log transport (which logs it)
SMS = parse_sms_policy("templates: {a: {zh: 'sorry we missed you', en: 'sorry we missed you'}}\n"
                       "rules: [{name: r, when: {}, template: a}]\nmobile_pattern: '.*'\n")


async def _one_answered_call(tmp_path: Path) -> dict[str, object]:
    """A call from NUMBER, NAME: the IVR, a queue, an agent, an SMS after."""
    policy = simple_policy({q: 5.0 for q in sorted(FLOW.queues)})
    agents = agents_for_queues({"a1001": ("1001", tuple(policy.queues))})
    cfg = EngineConfig(
        core=CoreConfig(policy=policy, agents=agents, wrap_up_s=0.05, rona_pause_s=None),
        flow=FLOW, ami=AmiConfig(username="acd", secret=SECRET), database_url=db_url(tmp_path),
        sms=SmsConfig(SMS, "log", sender=SenderConfig(poll_s=0.05)))
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with engine_on_pbx(cfg, phones=phones) as (pbx, engine):
        handle = await pbx.place_call(CallerScript(number=NUMBER, name=NAME, keys=["", "1"],
                                                   key_delay_s=0.02))
        result = await asyncio.wait_for(handle.done, 15)
        deadline = time.monotonic() + 10
        while engine.counters.calls_finished < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await engine.writer.drain()
        recs = {r["call_id"]: r for r in await engine.db.calls()}
        assert engine.sms is not None
        while engine.sms.stats.sent < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert engine.sms.stats.sent == 1
    assert result.outcome is SimOutcome.TALKED
    return recs[result.uniqueid]


async def test_a_callers_number_and_name_never_reach_the_log_in_clear(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`acd serve -vv`: every decision is logged at DEBUG, with the caller's
    number and name masked; nothing at any level has them in clear."""
    caplog.set_level(logging.DEBUG, logger="acd")
    rec = await _one_answered_call(tmp_path)
    assert (rec["caller"], rec["caller_name"]) == (NUMBER, NAME)  # the call carried them
    text = _engine_lines(caplog)
    assert "CallStarted(" in text  # the decisions were logged ...
    assert "139****5678" in text and "'Z********'" in text  # ... masked
    assert "SMS 1 to 139****5678 (19 characters): s********" in text
    assert NUMBER not in text and NAME not in text
    assert "12345678" not in text  # not even most of it


async def test_show_caller_data_shows_them(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="acd")
    show_private()
    await _one_answered_call(tmp_path)
    text = _engine_lines(caplog)
    assert NUMBER in text and NAME in text
    assert "SMS 1 to 13912345678 (19 characters): sorry we missed you" in text


def _config(tmp_path: Path, logging_yaml: str) -> Path:
    path = tmp_path / "acd.yaml"
    path.write_text(f"flow: {ROOT / 'ivr_flows' / 'basic.yaml'}\n"
                    "queues: [{name: billing}, {name: tech}, {name: general}]\n"
                    f"{logging_yaml}", encoding="utf-8")
    return path


def test_the_setting_is_off_by_default_and_checked(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "")).show_caller_data is False
    assert load_config(ROOT / "acd.example.yaml").show_caller_data is False
    on = load_config(_config(tmp_path, "logging: {show_caller_data: true}\n"))
    assert on.show_caller_data is True
    with pytest.raises(ConfigError, match=r"acd.yaml:3:29: logging.show_caller_data: "
                                          "must be true or false"):
        load_config(_config(tmp_path, "logging: {show_caller_data: maybe}\n"))
    with pytest.raises(ConfigError, match=r"acd.yaml:3:11: logging.show_data: unknown key"):
        load_config(_config(tmp_path, "logging: {show_data: true}\n"))


# ------------------------------------------------------------- terminals


async def _hostile_database(url: str) -> str:
    """A call record whose caller, name, queue and reasons carry escape sequences."""
    db = Database(url)
    await db.create()
    now = time.time()
    rec = CallRecord("1718000000.42", "1391234\x1b[8m5678", HOSTILE, now - 60, now,
                     Outcome.ANSWERED, ("menu\x1b[5m",), "billing", now - 50, 10.0, "a1001",
                     now - 40, 40.0, 1, "pbx1")
    expl = Explanation("1718000000.42", 1, "a1001", now - 45, "billing", "vip\x1b[7m", 0, 10.0,
                       ("widen\x1b]8;;http://evil\x07",), "best score\x1b[1A\x1b[2K",
                       (Candidate("a1001", 0.9, (("skill_level", 0.9),)),))
    sms = PendingSms("1718000000.42", "+8613912345678", "sorry\x1b[41m", "t", "en",
                     HOSTILE, "tok", now - 30, now - 30)
    try:
        await db.write_batch([rec], [expl], [sms])
    finally:
        await db.dispose()
    return rec.call_id


def _safe(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
    assert "\u202e" not in output


async def test_acd_explain_prints_a_hostile_name_escaped(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    call_id = await _hostile_database(url)
    r = await asyncio.to_thread(acd, "explain", call_id, "--db", url)
    assert r.exit_code == 0, r.output
    _safe(r.output)
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31mEvil\\u202eeman\\x9b0m" in r.output
    assert "1391234\\x1b[8m5678" in r.output
    assert "best score\\x1b[1A\\x1b[2K" in r.output and "vip\\x1b[7m" in r.output


async def test_the_sms_commands_print_hostile_values_escaped(tmp_path: Path) -> None:
    url = db_url(tmp_path)
    await _hostile_database(url)
    for args in (("report", "sms", "--db", url), ("sms", "outbox", "--db", url)):
        r = await asyncio.to_thread(acd, *args)
        assert r.exit_code == 0, r.output
        _safe(r.output)
        assert "sorry\\x1b[41m" in r.output, args


async def test_customers_show_prints_a_hostile_name_escaped(tmp_path: Path) -> None:
    """The importer refuses control characters; a row written by another
    program is printed escaped all the same."""
    url = db_url(tmp_path)
    db = Database(url)
    await db.create()
    try:
        await ProfileStore(db).upsert_customers([CustomerProfile("13912345678")])
        async with db.engine.begin() as conn:  # as another program might write it
            await conn.execute(text("UPDATE customers SET name = :n, segment = :s"),
                               {"n": HOSTILE, "s": "pre\x1b[5mpaid"})
    finally:
        await db.dispose()
    r = await asyncio.to_thread(acd, "customers", "show", "13912345678", "--db", url)
    assert r.exit_code == 0, r.output
    _safe(r.output)
    assert "\\x1b[31mEvil" in r.output and "pre\\x1b[5mpaid" in r.output


# ---------------------------------------------------------- rate limits


async def test_an_unreachable_mqtt_broker_is_one_line_and_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def take(n: int) -> list[Outgoing]:
        await asyncio.Event().wait()
        return []

    link = MqttEventLink(LinkConfig(port=port, reconnect_max_s=0.02), take)
    caplog.set_level(logging.WARNING, logger="acd.adapters.events_mqtt")
    task = asyncio.create_task(link.run())
    await asyncio.sleep(1.5)  # 0.5 s, then a retry every 20 ms
    down = [r.getMessage() for r in caplog.records]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    attempts = link.limited.total["down"]
    assert attempts >= 10  # it kept trying ...
    assert len(down) == 1 and f"MQTT link to 127.0.0.1:{port} down" in down[0]  # ... said once
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # and the count at the end
    assert lines[1].endswith(f"(and {attempts - 2:,} more like it, held back)")


async def test_a_failing_caller_lookup_is_one_line_per_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    async def fetch(numbers: Collection[str]) -> dict[str, Context]:
        raise ConnectionError("(psycopg.OperationalError) server closed the connection\n"
                              f"[parameters: ('{NUMBER}',)]")

    lookups = LookupBatcher(fetch, linger_s=0.0)
    caplog.set_level(logging.WARNING, logger="acd.adapters.lookup")
    lookups.start()
    try:
        for i in range(50):
            with pytest.raises(ConnectionError):
                await lookups.get(f"1391234{i:04d}")
    finally:
        await lookups.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert lookups.batches == 50
    assert lines[0] == ("caller lookup of 1 numbers failed: ConnectionError: "
                        "(psycopg.OperationalError) server closed the connection")
    assert lines[1:] == ["caller lookup of 1 numbers failed: ConnectionError: (psycopg."
                         "OperationalError) server closed the connection (and 48 more like "
                         "it, held back)"]
    assert NUMBER not in caplog.text


def test_acd_serve_logs_one_printable_line_per_record_and_quiet_libraries() -> None:
    """`acd serve -vv`: the engine's loggers at DEBUG, each record one line
    with its control characters escaped; the libraries' stay at WARNING (at
    DEBUG they would write SQL parameters and AMI messages as they are)."""
    code = (
        "import logging\n"
        "from acd.cli.serve import _setup_logging\n"
        "_setup_logging(2)\n"
        "logging.getLogger('acd.runtime.x').debug('name %s', 'a\\nforged ERROR\\x1b[2J')\n"
        "logging.getLogger('sqlalchemy.engine.Engine').info('[parameters: (13912345678,)]')\n"
        "logging.getLogger('panoramisk').debug('CallerIDNum: 13912345678')\n"
        "logging.getLogger('sqlalchemy.pool').warning('pool trouble')\n"
        "try:\n"
        "    raise ValueError('first\\nsecond 13912345678')\n"
        "except ValueError:\n"
        "    logging.getLogger('acd.runtime.x').exception('boom')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, check=True)
    lines = r.stderr.splitlines()
    assert lines[0].endswith("DEBUG acd.runtime.x: name a\\nforged ERROR\\x1b[2J")
    assert lines[1].endswith("WARNING sqlalchemy.pool: pool trouble")
    assert lines[2].endswith("ERROR acd.runtime.x: boom")
    assert lines[3] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert lines[-1] == "ValueError: first [...]"
    assert "13912345678" not in r.stderr and "\x1b" not in r.stderr


def test_the_live_views_print_hostile_values_escaped() -> None:
    """`acd queue show` and `acd agents live show` print what the engine
    holds: callers' numbers, agents' names and pause reasons, from outside."""
    from rich.console import Console

    from acd.cli.control import agent_detail, agents_table, waiting_table

    agent = {"id": "a1", "name": HOSTILE, "extension": "1001", "state": "paused",
             "in_state_s": 3.0, "reason": "lunch\x1b[5m", "call_id": None,
             "skills": {"billing": 5}, "dialects": {}, "languages": [], "gender": "",
             "age_band": "", "groups": [], "vip_qualified": False, "calls_handled": 0,
             "occupancy": None}
    queue = {"name": "billing", "calls": [{
        "position": 1, "call_id": "1718000000.42", "caller": "139\x1b[8m12345678",
        "customer_class": "vip\x9b1m", "priority": 0, "waited_s": 3.0,
        "expected_wait_s": None, "attributes": {"dialect": "min\x1b]0;x\x07nan"},
        "escalation_steps": 0}]}
    console = Console(width=300, force_terminal=False, color_system=None, record=True)
    for view in (agents_table([agent]), agent_detail(agent), waiting_table(queue)):
        console.print(view)
    out = console.export_text()
    _safe(out)
    assert "\\x1b[31mEvil" in out and "lunch\\x1b[5m" in out and "139\\x1b[8m12345678" in out
    assert "vip\\x9b1m" in out and "min\\x1b]0;x\\x07nan" in out


def test_flow_run_prints_a_hostile_caller_and_keys_escaped() -> None:
    r = acd("flow", "run", str(ROOT / "ivr_flows" / "basic.yaml"), "--caller",
            "139\x1b]0;x\x07", "--keys", ",7\x1b[2J,3")
    assert r.exit_code == 0, r.output
    _safe(r.output)
    assert "call from 139\\x1b]0;x\\x07 into flow 'basic'" in r.output


# ------------------------------------------ the example self-service back end

#: in examples/accounts.csv: 13800138000's service password
ACCOUNT, PASSWORD = "13800138000", "123456"


def _backend_log(caplog: pytest.LogCaptureFixture, requests: list[bytes]) -> str:
    """The example back end (as `acd demo -vv` runs it: in-process, its
    logger at DEBUG) sent each of ``requests`` on a connection of its own;
    every line it logged, formatted as `acd serve` and the command do."""
    from acd.loadsim.selfservice import SelfService, read_accounts
    from acd.logs import SafeFormatter

    caplog.set_level(logging.DEBUG, logger="acd")
    with SelfService(read_accounts(ROOT / "examples" / "accounts.csv"), port=0) as service:
        for request in requests:
            with socket.create_connection(("127.0.0.1", service.port), timeout=5) as sock:
                sock.sendall(request)
                while sock.recv(4096):  # until the back end closes (Connection: close)
                    pass
    formatter = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records
                     if r.name == "acd.loadsim.selfservice")


#: what a lookup sends (the number percent-encoded), the password escaped
#: too, a request line http.server refuses itself, a number in a path
_REQUESTS = [
    f"GET /verify?msisdn=%2B86{ACCOUNT}&password={PASSWORD} HTTP/1.1\r\n"
    "Connection: close\r\n\r\n".encode(),
    f"GET /verify?msisdn=86{ACCOUNT}&password=%31%32%33%34%35%36 HTTP/1.1\r\n"
    "Connection: close\r\n\r\n".encode(),
    f'GET /verify?msisdn={ACCOUNT}&password={PASSWORD} "x" HTTP/1.1\r\n\r\n'.encode(),
    f"GET /account/%2B86{ACCOUNT} HTTP/1.1\r\nConnection: close\r\n\r\n".encode(),
]


def test_the_self_service_back_end_never_logs_a_password_or_a_number(
        caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG the back end logs each request's method, path, masked query
    and status; never the raw request line (http.server's own lines quote
    it), so neither the password nor the number, escaped or not."""
    text = _backend_log(caplog, _REQUESTS)
    assert "GET /verify?msisdn=+86*******8000&password=*** 200" in text
    assert "GET /verify?msisdn=861******8000&password=*** 200" in text
    assert "GET /account/+86*******8000 404" in text
    assert "- - 400 Bad Request" in text  # the line it could not parse: not quoted
    for secret in (PASSWORD, "%31%32%33", ACCOUNT, "8613800", "38000", "HTTP/1.1"):
        assert secret not in text, (secret, text)


def test_show_caller_data_shows_the_number_but_never_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    show_private()
    text = _backend_log(caplog, _REQUESTS[:2])
    assert f"GET /verify?msisdn=+86{ACCOUNT}&password=*** 200" in text
    assert PASSWORD not in text and "%31%32%33" not in text
