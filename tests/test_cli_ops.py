"""`acd agents live ...` (and the old `acd agent ...`), `acd queue show` and
`acd explain` against a running engine.

CliRunner runs synchronous code, so the engine and the PBX simulator run in
a background thread with their own event loop; the tests reach into that
loop with ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from api_system import System, system, until
from helpers import acd, free_port

from acd.cli import common as cli_common
from acd.cli import control as cli_ops
from acd.core.model import AgentState
from sim.config import CallerScript, CallResult, PhoneBehaviour

T = TypeVar("T")


class Running:
    """An engine + simulator living in a background thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="engine", daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.sys: System | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> System:
        phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2),
                  "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
        return await self._stack.enter_async_context(system(self.tmp_path, phones))

    def start(self) -> None:
        self.thread.start()
        self.sys = self.run(self._start())

    def stop(self) -> None:
        try:
            self.run(self._stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def s(self) -> System:
        assert self.sys is not None
        return self.sys

    def state(self, agent_id: str) -> AgentState:
        async def read() -> AgentState:
            return self.s.engine.core.agent(agent_id).state
        return self.run(read())

    def finished_call(self, keys: list[str]) -> CallResult:
        """Place a call, wait for it to end and for its rows to be written."""
        async def go() -> CallResult:
            engine = self.s.engine
            before = engine.counters.calls_finished
            h = await self.s.pbx.place_call(CallerScript(keys=keys, key_delay_s=0.02))
            res = await asyncio.wait_for(h.done, 15)
            await until(lambda: engine.counters.calls_finished > before, what="the call record")
            await engine.writer.drain()
            return res
        return self.run(go())


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.chdir(tmp_path)  # no acd.yaml here
    r = Running(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_agent_show_all_and_one(running: Running) -> None:
    api = running.s.url
    res = acd("agents", "live", "show", "--api", api)
    assert res.exit_code == 0, res.output
    assert "agents (2)" in res.output
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln.startswith("a100")}
    assert set(lines) == {"a1001", "a1002"}
    assert "ready" in lines["a1001"] and "Agent 1001" in lines["a1001"]
    assert "billing:5 general:5 tech:5" in lines["a1001"]

    res = acd("agents", "live", "show", "a1002", "--api", api)
    assert res.exit_code == 0, res.output
    assert "agent a1002" in res.output and "1002" in res.output
    assert "calls handled" in res.output and "occupancy" in res.output

    res = acd("agents", "live", "show", "zz", "--api", api)
    assert res.exit_code == 1
    assert "unknown agent 'zz'" in res.output


def test_agent_pause_ready_logout_login(running: Running) -> None:
    api = running.s.url
    res = acd("agents", "live", "pause", "a1001", "--reason", "lunch", "--api", api)
    assert res.exit_code == 0, res.output
    assert "agent a1001 (Agent 1001): paused (lunch)" in res.output
    assert running.state("a1001") is AgentState.PAUSED
    res = acd("agents", "live", "show", "--api", api)
    row = next(ln for ln in res.output.splitlines() if ln.startswith("a1001"))
    assert "paused" in row and "lunch" in row

    assert acd("agents", "live", "ready", "a1001", "--api", api).exit_code == 0
    assert running.state("a1001") is AgentState.READY
    assert acd("agents", "live", "logout", "a1001", "--api", api).exit_code == 0
    assert running.state("a1001") is AgentState.LOGGED_OUT
    res = acd("agents", "live", "login", "a1001", "--paused", "--api", api)
    assert res.exit_code == 0 and ": paused" in res.output
    res = acd("agents", "live", "login", "a1001", "--api", api)
    assert res.exit_code == 1
    assert "agent a1001: 'login' is not allowed in state 'paused'" in res.output
    assert acd("agents", "live", "ready", "a1001", "--api", api).exit_code == 0
    assert running.state("a1001") is AgentState.READY


def test_the_old_agent_group_still_works_with_a_notice(running: Running) -> None:
    api = running.s.url
    res = acd("agent", "pause", "a1002", "--reason", "break", "--api", api)
    assert res.exit_code == 0, res.output
    first, *rest = res.output.splitlines()
    assert first == "note: `acd agent` is deprecated; use `acd agents live pause`"
    assert "agent a1002 (Agent 1002): paused (break)" in rest
    assert running.state("a1002") is AgentState.PAUSED
    res = acd("agent", "ready", "a1002", "--api", api)
    assert res.exit_code == 0 and "use `acd agents live ready`" in res.output
    assert running.state("a1002") is AgentState.READY
    listed = [ln.split()[0] for ln in acd("--help").output.splitlines() if ln.startswith("  ")]
    assert "agents" in listed and "agent" not in listed  # the old name is hidden


def test_agent_set_changes_the_live_profile(running: Running) -> None:
    api = running.s.url
    res = acd("agents", "live", "set", "a1002", "--skill", "billing=9", "--drop-skill", "tech",
              "--dialect", "minnan=8", "--gender", "f", "--age-band", "25-34", "--group",
              "night", "--vip", "--api", api)
    assert res.exit_code == 0, res.output
    assert "updated (live and stored)" in res.output
    assert "billing:9 general:5" in res.output and "minnan:8" in res.output

    async def profile() -> Any:
        return running.s.engine.core.agent("a1002").profile
    p = running.run(profile())
    assert dict(p.skills) == {"billing": 9, "general": 5} and p.vip_qualified
    assert (p.gender, p.age_band, p.groups) == ("F", "25-34", frozenset({"night"}))

    res = acd("agents", "live", "set", "a1002", "--drop-skill", "tech", "--api", api)
    assert res.exit_code == 1 and "has no skill 'tech'" in res.output
    res = acd("agents", "live", "set", "a1002", "--skill", "billing=11", "--api", api)
    assert res.exit_code == 2 and "not a whole number 1-10" in res.output
    res = acd("agents", "live", "set", "a1002", "--api", api)
    assert res.exit_code == 2 and "nothing to change" in res.output


def test_queue_show_all_one_and_watch(running: Running,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    api = running.s.url
    for aid in ("a1001", "a1002"):
        assert acd("agents", "live", "pause", aid, "--api", api).exit_code == 0

    async def place() -> str:
        engine = running.s.engine
        h = await running.s.pbx.place_call(CallerScript(keys=["", "1"], patience_s=60,
                                                        key_delay_s=0.02))
        await until(lambda: engine.core.waiting("billing") == [h.uniqueid], what="waiting")
        return h.uniqueid
    call_id = running.run(place())

    res = acd("queue", "show", "--api", api)
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln.split() for ln in res.output.splitlines() if ln.strip()}
    assert rows["queue"][:3] == ["queue", "waiting", "longest"]
    assert rows["billing"][1] == "1"  # waiting
    assert rows["tech"][1] == "0" and rows["tech"][2] == "-"
    assert rows["billing"][-4:-2] == ["-", "80%/20s"]  # SL (none today), its target

    res = acd("queue", "show", "billing", "--api", api)
    assert res.exit_code == 0, res.output
    assert "waiting in billing (1)" in res.output and call_id in res.output
    row = next(ln for ln in res.output.splitlines() if call_id in ln)
    assert row.split()[:3] == ["1", call_id, "13800138000"]  # position, call, caller

    res = acd("queue", "show", "nope", "--api", api)
    assert res.exit_code == 1 and "unknown queue 'nope'" in res.output

    # --watch redraws until Ctrl-C; here the second sleep is the Ctrl-C
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(cli_ops, "sleep", sleep)
    res = acd("queue", "show", "billing", "--watch", "--every", "0.5", "--api", api)
    assert res.exit_code == 0, res.output
    assert sleeps == [0.5, 0.5]
    assert "waiting in billing" in res.output and "Ctrl-C to stop" in res.output

    assert acd("agents", "live", "ready", "a1001", "--api", api).exit_code == 0


def test_explain_a_finished_call(running: Running) -> None:
    res = running.finished_call(["", "2"])
    assert res.agent in ("1001", "1002")
    out = acd("explain", res.uniqueid, "--db", running.s.db_url)
    assert out.exit_code == 0, out.output
    text = out.output
    assert f"call {res.uniqueid}" in text
    assert f"answered by a{res.agent} in tech" in text
    assert "offer 1" in text and f"→ a{res.agent}" in text
    assert "queue tech, class standard, priority 0, waited" in text
    assert "escalation steps applied: none" in text
    assert "reason: best score among ready agents" in text
    chosen = next(ln for ln in text.splitlines() if "✓" in ln)
    assert f"a{res.agent}" in chosen
    assert "idle" in text  # the score term of the simple policy

    out = acd("explain", "no-such-call", "--db", running.s.db_url)
    assert out.exit_code == 1 and "no call 'no-such-call'" in out.output


def test_unreachable_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for args in (("agents", "live", "show"), ("agents", "live", "pause", "a1"), ("queue", "show"),
                 ("queue", "show", "--watch")):
        res = acd(*args, "--api", url)
        assert res.exit_code == 4, (args, res.output)
        assert f"cannot reach the engine at {url}: is `acd serve` running with api.port set?" \
            in " ".join(res.output.split()), res.output
    res = acd("agents", "live", "show", "--api", f"127.0.0.1:{port}")  # the scheme may be left out
    assert res.exit_code == 4 and f"cannot reach the engine at {url}:" in res.output
    res = acd("agents", "live", "show", "--api", "ftp://example.org")
    assert res.exit_code == 4 and "cannot reach the engine at ftp://example.org" in res.output
    # without --api: api_port of ./acd.yaml
    (tmp_path / "acd.yaml").write_text(f"api_port: {port}\n", encoding="utf-8")
    res = acd("agents", "live", "show")
    assert res.exit_code == 4 and f"127.0.0.1:{port}" in res.output


def test_default_api_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_common.default_api() == "http://127.0.0.1:8088"
    (tmp_path / "acd.yaml").write_text("api_port: 9100\napi_host: 0.0.0.0\n", encoding="utf-8")
    assert cli_common.default_api() == "http://127.0.0.1:9100"
    (tmp_path / "acd.yaml").write_text("api_port: 9100\napi_host: ::1\n", encoding="utf-8")
    assert cli_common.default_api() == "http://[::1]:9100"
    (tmp_path / "acd.yaml").write_text("api: {port: 9200, host: 0.0.0.0}\n", encoding="utf-8")
    assert cli_common.default_api() == "http://127.0.0.1:9200"
    (tmp_path / "acd.yaml").write_text("api: {port: 9200, host: acd.example.org, tls: {cert: c}}\n",
                                       encoding="utf-8")
    assert cli_common.default_api() == "https://acd.example.org:9200"
    assert cli_common.default_token_file() == Path("acd-api.tokens")
    (tmp_path / "acd.yaml").write_text("api: {token_file: /etc/acd/t}\n", encoding="utf-8")
    assert cli_common.default_token_file() == Path("/etc/acd/t")


def test_the_commands_send_the_token_and_say_why_they_are_refused(
        running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = running.s.url
    tokens = tmp_path / "acd-api.tokens"  # the engine made it here, beside where acd.yaml goes
    assert tokens.stat().st_mode & 0o777 == 0o600
    # the admin token of ./acd-api.tokens: every command works, the flow reload too
    res = acd("flow", "reload", "--api", api)
    assert res.exit_code == 0 and "reloaded" in res.output, res.output
    # a wrong token: exit 5, naming where the token came from
    res = acd("agents", "live", "show", "--api", api, "--token", "not-the-right-token-at-all")
    out = " ".join(res.output.split())
    assert res.exit_code == 5, res.output
    assert "error: the engine refused the token from --token: wrong token" in out
    assert "$ACD_API_TOKEN" not in out and "token file" not in out  # no hint to stack
    # the wallboards' read token: it may look, not log an agent out
    monkeypatch.setenv("ACD_API_TOKEN", running.s.token("read"))
    assert acd("agents", "live", "show", "--api", api).exit_code == 0
    res = acd("agents", "live", "logout", "a1001", "--api", api)
    assert res.exit_code == 5 and "error: not allowed: POST /agents/{id}/logout needs the " \
        "agent role (these credentials have read); the token came from $ACD_API_TOKEN" \
        in " ".join(res.output.split()), res.output
    assert "refused" not in res.output and "forbidden" not in res.output
    assert running.state("a1001") is AgentState.READY
    res = acd("flow", "reload", "--api", api)
    assert res.exit_code == 5 and "needs the admin role" in " ".join(res.output.split())
    monkeypatch.delenv("ACD_API_TOKEN")
    # a token file others may read: refused before anything is sent
    tokens.chmod(0o644)
    res = acd("agents", "live", "show", "--api", api)
    assert res.exit_code == 5 and f"chmod 600 {tokens.name}" in res.output, res.output
    tokens.chmod(0o600)
    # no token file here: 401, and the message says where it was looked for
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = acd("queue", "show", "--api", api)
    out = " ".join(res.output.split())
    assert res.exit_code == 5, res.output
    assert "the engine refused the request, sent without a token: no credentials" in out
    assert "no token: acd-api.tokens does not exist" in out
    # $ACD_API_TOKEN_FILE, or api.token_file of ./acd.yaml, finds it
    monkeypatch.setenv("ACD_API_TOKEN_FILE", str(tokens))
    assert acd("queue", "show", "--api", api).exit_code == 0
    monkeypatch.delenv("ACD_API_TOKEN_FILE")
    (elsewhere / "acd.yaml").write_text(f"api: {{token_file: {tokens}}}\n", encoding="utf-8")
    assert acd("queue", "show", "--api", api).exit_code == 0


def test_a_pause_during_a_call_is_shown_as_after_the_call(capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    # the API's answer to a pause while on a call (tests/test_http_api.py), as printed
    cli_ops._changed({"id": "a1003", "name": "", "state": "on_call", "reason": "",
                      "call_id": "1718000001.9", "logout_after_call": False,
                      "pause_after_call": "lunch"})
    assert capsys.readouterr().out.strip() == \
        "agent a1003: on_call, call 1718000001.9, paused after the current call (lunch)"
