"""The control API against a real engine and the PBX simulator, with aiohttp's client."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_system import ROOT, System, system, until

from acd.api.config import ApiConfig, Role
from acd.api.control import ControlApi
from acd.core.center import ContactCenter, agents_for_queues
from acd.core.errors import CoreError
from acd.core.model import AgentState, CallState, CoreConfig, Event
from acd.core.policy import simple_policy
from acd.core.profiles import AgentProfile, CustomerProfile
from acd.core.stats import Statistics
from acd.ivr.load import load_flow
from sim.callers import CallHandle
from sim.config import CallerScript, Outcome, PhoneBehaviour

BILLING = ["", "1"]
TECH = ["", "2"]


async def call(sys_: System, method: str, path: str, body: Any = None,
               raw: bytes | None = None, role: str | None = "admin") -> tuple[int, Any]:
    """One request with ``role``'s token (None: without one)."""
    async with aiohttp.ClientSession(headers=sys_.headers(role)) as s:
        kwargs: dict[str, Any] = {}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with s.request(method, sys_.url + path, **kwargs) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()


async def get(sys_: System, path: str, role: str = "admin") -> Any:
    status, data = await call(sys_, "GET", path, role=role)
    assert status == 200, data
    return data


def by_id(agents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in agents}


async def test_pause_ready_logout_login_round_trip(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(), "1002": PhoneBehaviour()}
    async with system(tmp_path, phones) as s:
        agents = by_id(await get(s, "/agents"))
        assert set(agents) == {"a1001", "a1002"}
        a = agents["a1001"]
        assert a["state"] == "ready" and a["extension"] == "1001" and a["name"] == "Agent 1001"
        assert a["skills"] == {"billing": 5, "general": 5, "tech": 5}
        assert a["call_id"] is None and a["calls_handled"] == 0 and a["vip_qualified"] is False
        assert set(a) >= {"since", "reason", "dialects", "gender", "age_band", "groups",
                          "occupancy"}

        status, a = await call(s, "POST", "/agents/a1001/pause", {"reason": "lunch"})
        assert status == 200 and (a["state"], a["reason"]) == ("paused", "lunch")
        listed = by_id(await get(s, "/agents"))["a1001"]
        assert (listed["state"], listed["reason"]) == ("paused", "lunch")
        assert s.engine.core.agent("a1001").state is AgentState.PAUSED

        status, a = await call(s, "POST", "/agents/a1001/ready")
        assert status == 200 and a["state"] == "ready" and a["reason"] == ""
        status, a = await call(s, "POST", "/agents/a1001/logout")
        assert status == 200 and a["state"] == "logged_out"
        assert by_id(await get(s, "/agents"))["a1001"]["state"] == "logged_out"

        status, a = await call(s, "POST", "/agents/a1001/login", {"ready": False})
        assert status == 200 and a["state"] == "paused"
        status, err = await call(s, "POST", "/agents/a1001/login")
        assert status == 409
        assert err == {"error": "agent a1001: 'login' is not allowed in state 'paused'"}
        status, a = await call(s, "POST", "/agents/a1001/ready")
        assert a["state"] == "ready"
        await call(s, "POST", "/agents/a1001/logout")
        status, a = await call(s, "POST", "/agents/a1001/login", {"ready": True})
        assert status == 200 and a["state"] == "ready"
        assert (await get(s, "/agents/a1001"))["state"] == "ready"
        # a refused request is the client's error (409), not the engine's
        assert s.engine.counters.errors == 0


async def test_logout_of_an_agent_on_a_call_waits_for_the_call(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=1.5)}
    async with system(tmp_path, phones) as s:
        h = await s.pbx.place_call(CallerScript(keys=BILLING, key_delay_s=0.02))
        agent = s.engine.core.agent("a1001")
        await until(lambda: agent.state is AgentState.ON_CALL, what="the agent on the call")
        status, shown = await call(s, "POST", "/agents/a1001/logout")
        assert status == 200
        assert shown["state"] == "on_call" and shown["call_id"] == h.uniqueid
        assert shown["logout_after_call"] is True
        # leaving after the call: a pause after it is refused, saying why
        status, err = await call(s, "POST", "/agents/a1001/pause")
        assert status == 409 and "logs out when its call ends" in err["error"]
        assert agent.pause_after_call is None
        res = await asyncio.wait_for(h.done, 10)
        assert res.outcome is Outcome.TALKED  # the call was not cut
        await until(lambda: agent.state is AgentState.LOGGED_OUT, what="logged out after the call")
        shown = await get(s, "/agents/a1001")
        assert shown["calls_handled"] == 1 and shown["logout_after_call"] is False
        assert s.engine.counters.errors == 0


async def test_pause_during_a_call_is_taken_after_the_call(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=1.0)}
    async with system(tmp_path, phones) as s:
        h = await s.pbx.place_call(CallerScript(keys=BILLING, key_delay_s=0.02))
        agent = s.engine.core.agent("a1001")
        await until(lambda: agent.state is AgentState.ON_CALL, what="the agent on the call")
        status, shown = await call(s, "POST", "/agents/a1001/pause", {"reason": "lunch"})
        assert status == 202 and shown["state"] == "on_call"
        assert shown["pause_after_call"] == "lunch"
        assert shown["message"] == "agent a1001 is on_call: paused (lunch) after the current call"
        # a ready takes it back, a second pause asks again
        status, shown = await call(s, "POST", "/agents/a1001/ready")
        assert status == 200 and shown["pause_after_call"] is None
        status, shown = await call(s, "POST", "/agents/a1001/pause", {"reason": "lunch"})
        assert status == 202
        res = await asyncio.wait_for(h.done, 10)
        assert res.outcome is Outcome.TALKED  # the call was not cut
        await until(lambda: agent.state is AgentState.PAUSED, what="paused after the call")
        shown = await get(s, "/agents/a1001")
        assert (shown["reason"], shown["pause_after_call"]) == ("lunch", None)
        assert s.engine.counters.errors == 0


async def test_login_during_the_call_takes_back_the_logout(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=1.0)}
    async with system(tmp_path, phones) as s:
        h = await s.pbx.place_call(CallerScript(keys=BILLING, key_delay_s=0.02))
        agent = s.engine.core.agent("a1001")
        await until(lambda: agent.state is AgentState.ON_CALL, what="the agent on the call")
        status, shown = await call(s, "POST", "/agents/a1001/logout")
        assert status == 200 and shown["logout_after_call"] is True
        status, shown = await call(s, "POST", "/agents/a1001/login")
        assert status == 200 and shown["state"] == "on_call"
        assert shown["logout_after_call"] is False
        await asyncio.wait_for(h.done, 10)
        await until(lambda: agent.state is AgentState.READY, what="ready after wrap-up")
        assert s.engine.counters.errors == 0


async def test_unknown_subjects_and_bad_requests(tmp_path: Path) -> None:
    async with system(tmp_path, {"1001": PhoneBehaviour()}) as s:
        for method, path in (("GET", "/agents/zz"), ("POST", "/agents/zz/login"),
                             ("POST", "/agents/zz/logout"), ("POST", "/agents/zz/ready"),
                             ("POST", "/agents/zz/pause"), ("POST", "/agents/zz/profile")):
            status, err = await call(s, method, path)
            assert (status, err) == (404, {"error": "unknown agent 'zz'"}), path
        status, err = await call(s, "GET", "/queues/nope")
        assert status == 404 and err["error"].startswith("unknown queue 'nope'")
        status, err = await call(s, "GET", "/nothing/here")
        assert status == 404 and "no such endpoint" in err["error"]
        status, err = await call(s, "DELETE", "/agents")
        assert status == 405 and "error" in err

        status, err = await call(s, "POST", "/agents/a1001/pause", raw=b"{not json")
        assert status == 400 and err["error"].startswith("body: not valid JSON")
        status, err = await call(s, "POST", "/agents/a1001/pause", body=["lunch"])
        assert (status, err) == (400, {"error": "body: must be a JSON object"})
        status, err = await call(s, "POST", "/agents/a1001/pause", body={"reason": 5})
        assert (status, err) == (400, {"error": "reason: must be a string, not 5"})
        status, err = await call(s, "POST", "/agents/a1001/pause", body={"why": "x"})
        assert status == 400 and err["error"].startswith("why: unknown field")
        status, err = await call(s, "POST", "/agents/a1001/login", body={"ready": "yes"})
        assert (status, err) == (400, {"error": 'ready: must be true or false, not "yes"'})
        status, err = await call(s, "GET", "/stats?interval=maybe")
        assert status == 400 and err["error"].startswith("interval:")

        for body, field in (({"skills": {"tech": 11}}, "skills.tech"),
                            ({"skills": {"nosuch": 5}}, "skills"),
                            ({"skills": "tech"}, "skills"),
                            ({"drop_skills": ["nosuch"]}, "drop_skills"),
                            ({"dialects": {"bad name": 5}}, "dialects"),
                            ({"gender": "X"}, "gender"),
                            ({"age_band": "20-30"}, "age_band"),
                            ({"vip_qualified": 1}, "vip_qualified"),
                            ({"extension": "x1"}, "extension"),
                            ({"groups": "a"}, "groups"),
                            ({"colour": "red"}, "colour")):
            status, err = await call(s, "POST", "/agents/a1001/profile", body)
            assert status == 400 and err["error"].startswith(f"{field}:"), (body, err)
        status, err = await call(s, "POST", "/agents/a1001/profile", {})
        assert status == 400 and err["error"].startswith("nothing to change")
        assert s.engine.counters.errors == 0
        assert (await get(s, "/health"))["agents"] == 1  # still serving


async def test_profile_change_takes_effect_in_routing(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.2)}
    async with system(tmp_path, phones, skills={"1001": {"billing": 5}}) as s:
        h = await s.pbx.place_call(CallerScript(keys=TECH, patience_s=30, key_delay_s=0.02))
        await until(lambda: s.engine.core.waiting("tech") == [h.uniqueid],
                    what="the call waiting in tech")
        await asyncio.sleep(0.3)
        assert s.engine.core.waiting("tech") == [h.uniqueid]  # nobody has the skill
        tech = next(q for q in await get(s, "/queues") if q["name"] == "tech")
        assert (tech["waiting"], tech["staffed"], tech["ready"]) == (1, 0, 0)

        status, a = await call(s, "POST", "/agents/a1001/profile",
                               {"skills": {"tech": 7}, "dialects": {"Minnan": 8},
                                "gender": "female", "age_band": "25-34", "groups": ["night"],
                                "vip_qualified": True, "name": "王芳"})
        assert status == 200, a
        assert a["skills"] == {"billing": 5, "tech": 7} and a["dialects"] == {"minnan": 8}
        assert (a["gender"], a["age_band"], a["groups"], a["vip_qualified"], a["name"]) == \
            ("F", "25-34", ["night"], True, "王芳")
        res = await asyncio.wait_for(h.done, 10)
        assert res.outcome is Outcome.TALKED and res.agent == "1001"
        stored = await s.engine.profiles.get_agent("a1001")
        assert stored is not None and dict(stored.skills) == {"billing": 5, "tech": 7}
        assert stored.vip_qualified and stored.name == "王芳"

        status, a = await call(s, "POST", "/agents/a1001/profile",
                               {"drop_skills": ["billing"], "drop_dialects": ["minnan"]})
        assert status == 200 and a["skills"] == {"tech": 7} and a["dialects"] == {}
        assert dict(s.engine.core.agent("a1001").profile.skills) == {"tech": 7}
        assert s.engine.core.staffed("billing") == 0 and s.engine.core.staffed("tech") == 1


async def test_queues_show_waiting_calls_and_positions(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1),
              "1002": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    async with system(tmp_path, phones) as s:
        for aid in ("a1001", "a1002"):
            status, _ = await call(s, "POST", f"/agents/{aid}/pause", {"reason": "meeting"})
            assert status == 200
        await s.engine.profiles.upsert_customers([
            CustomerProfile("13900000001", vip_level=2, dialect="minnan")])
        handles: list[CallHandle] = []
        for i in range(3):
            handles.append(await s.pbx.place_call(CallerScript(
                number=f"1390000000{i + 1}", keys=BILLING, patience_s=60, key_delay_s=0.02)))
            n = i + 1
            await until(lambda: len(s.engine.core.waiting("billing")) == n,  # noqa: B023
                        what=f"{n} waiting")
        await asyncio.sleep(0.2)

        queues = {q["name"]: q for q in await get(s, "/queues")}
        assert set(queues) == {"billing", "general", "tech"}
        b = queues["billing"]
        assert (b["waiting"], b["staffed"], b["ready"], b["ringing"]) == (3, 0, 0, 0)
        assert b["skill"] == "billing" and b["longest_wait_s"] >= 0.2
        assert (b["sl_threshold_s"], b["sl_target"]) == (20.0, 0.8)
        assert (b["offered"], b["answered"], b["service_level"], b["asa_s"]) == (0, 0, None, None)
        assert queues["tech"]["waiting"] == 0 and queues["tech"]["longest_wait_s"] is None

        detail = await get(s, "/queues/billing")
        calls = detail["calls"]
        assert [c["call_id"] for c in calls] == [h.uniqueid for h in handles]
        assert [c["position"] for c in calls] == [1, 2, 3]
        assert calls[0]["waited_s"] > calls[1]["waited_s"] > calls[2]["waited_s"] > 0
        # every agent paused: no wait is promised (tests/test_ewt.py)
        assert [c["expected_wait_s"] for c in calls] == [None, None, None]
        assert calls[0]["attributes"] == {"dialect": "minnan", "vip_level": "2"}
        assert calls[1]["attributes"] == {}
        assert calls[0]["customer_class"] == "standard" and calls[0]["priority"] == 0
        assert detail["longest_wait_s"] == pytest.approx(calls[0]["waited_s"], abs=0.5)

        # agents back: every caller is served, and today's figures count them
        for aid in ("a1001", "a1002"):
            await call(s, "POST", f"/agents/{aid}/ready")
        results = await asyncio.wait_for(asyncio.gather(*(h.done for h in handles)), 15)
        assert all(r.outcome is Outcome.TALKED for r in results)
        await until(lambda: s.engine.counters.calls_finished == 3, what="3 records")
        b = next(q for q in await get(s, "/queues") if q["name"] == "billing")
        assert (b["waiting"], b["offered"], b["answered"], b["abandoned"]) == (0, 3, 3, 0)
        assert b["asa_s"] > 0 and b["abandon_rate"] == 0.0 and b["service_level"] == 1.0
        assert b["sl_met"] is True


async def test_stats_and_health(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.1)}
    async with system(tmp_path, phones) as s:
        health = await get(s, "/health")
        records = health.pop("records")
        assert health == {"ami": True, "calls": 0, "agents": 1, "logged_in": 1, "ready": 1}
        assert records["lost"] == 0 and records["spooled"] == 0 and records["pending"] >= 0
        h = await s.pbx.place_call(CallerScript(keys=BILLING, key_delay_s=0.02))
        await until(lambda: any(c.state is CallState.CONNECTED for c in s.engine.core.calls()),
                    what="the call connected")
        assert (await get(s, "/health"))["calls"] == 1
        await asyncio.wait_for(h.done, 10)
        await until(lambda: s.engine.counters.calls_finished == 1, what="the record")
        await s.engine.writer.drain()
        records = (await get(s, "/health"))["records"]
        assert records["written"] >= 1 and records["pending"] == 0 and records["lost"] == 0

        totals = await get(s, "/stats")
        assert totals["interval_s"] == 900.0
        assert totals["total"]["offered"] == 1 and totals["total"]["answered"] == 1
        billing = next(q for q in totals["queues"] if q["queue"] == "billing")
        assert billing["answered"] == 1
        (agent,) = totals["agents"]
        assert agent["agent_id"] == "a1001" and agent["on_call_s"] > 0
        assert 0 < agent["occupancy"] <= 1

        rows = await get(s, "/stats?interval=true")
        assert [r["queue"] for r in rows["queues"]] == ["billing"]
        assert rows["queues"][0]["offered"] == 1
        assert {r["agent_id"] for r in rows["agents"]} == {"a1001"}
        assert rows["ivr"] == []
        assert (await get(s, "/agents/a1001"))["occupancy"] == pytest.approx(
            agent["occupancy"], rel=0.5)


async def test_a_failing_handler_does_not_kill_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with system(tmp_path, {"1001": PhoneBehaviour()}) as s:
        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("kaput")
        monkeypatch.setattr(s.engine.statistics, "totals", boom)  # /queues' today
        status, err = await call(s, "GET", "/queues")
        assert status == 500 and err == {"error": "internal error: RuntimeError"}
        assert (await get(s, "/health"))["ami"] is True
        assert len(await get(s, "/agents")) == 1


async def test_port_start_and_stop(tmp_path: Path) -> None:
    async with system(tmp_path, {"1001": PhoneBehaviour()}) as s:
        assert s.api.port is not None and s.api.port > 0
        other = ControlApi(s.engine, ApiConfig(port=0, token_file=tmp_path / "other.tokens"))
        assert other.port is None
        await other.stop()  # not started: nothing to do
        await other.start()  # the default host: 127.0.0.1
        try:
            assert other.port is not None and other.port not in (0, s.api.port)
            assert other.public_port is None  # not asked for
            assert other.tokens is not None and s.api.tokens is not None
            token = other.tokens.by_role[Role.READ]
            assert token != s.api.tokens.by_role[Role.READ]  # a token file of its own
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{other.port}/health",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 200
                async with session.get(f"http://127.0.0.1:{other.port}/health") as resp:
                    assert resp.status == 401
            with pytest.raises(RuntimeError, match="already started"):
                await other.start()
        finally:
            await other.stop()
        assert other.port is None
        off = ControlApi(s.engine, ApiConfig(token_file=tmp_path / "off.tokens"))
        off.prepare()
        await off.start()  # no port, no public port: nothing to start, no token file made
        assert off.port is None and not (tmp_path / "off.tokens").exists()


class FakeFlows:
    def __init__(self) -> None:
        self.current = load_flow(ROOT / "ivr_flows" / "basic.yaml")
        self.loads = 1

    def reload(self) -> Any:
        raise AssertionError("not asked")


class FakeProfiles:
    """The profile store as the API's protocol asks: ``upsert_agents`` only."""

    def __init__(self) -> None:
        self.stored: list[AgentProfile] = []

    async def upsert_agents(self, profiles: Iterable[AgentProfile]) -> tuple[int, int]:
        new = list(profiles)
        self.stored += new
        return 0, len(new)


@dataclass(frozen=True)
class FakeOutboxRow:
    id: int
    call_id: str
    number: str
    rule: str
    state: str
    reason: str
    attempts: int
    created_at: dt.datetime
    text: str


class FakeSms:
    """The SMS store as the API's protocol asks (no database)."""

    def __init__(self) -> None:
        self.opted_out: set[str] = set()
        self.outbox = [FakeOutboxRow(7, "c7", "+8613800138000", "abandoned", "sent", "", 1,
                                     dt.datetime(2025, 6, 23, 2, 0, tzinfo=dt.UTC), "稍后回电")]

    def identity(self, number: str) -> str:
        return "+86" + number[-11:]

    async def click(self, token: str, now: float) -> str | None:
        return None

    async def app_login(self, number: str, now: float) -> None:
        return None

    async def opt_out(self, number: str, source: str, now: float) -> bool:
        there = number in self.opted_out
        self.opted_out.add(number)
        return not there

    async def opt_in(self, number: str) -> bool:
        there = number in self.opted_out
        self.opted_out.discard(number)
        return there

    async def rows(self, state: str | None = None, limit: int = 100) -> list[FakeOutboxRow]:
        return [r for r in self.outbox if state is None or r.state == state][:limit]


class FakeEngine:
    """Only what the API's protocol asks: a core, statistics, a clock, the
    stores as their few methods, submit."""

    def __init__(self, sms: FakeSms | None = None) -> None:
        self.core = ContactCenter(CoreConfig(
            policy=simple_policy({"billing": 20.0}),
            agents=agents_for_queues({"a0": ("1000", ("billing",))})))
        self.statistics = Statistics()
        self.clock = lambda: 1_000.0
        self.flows = FakeFlows()
        self.profiles = FakeProfiles()
        self.sms_store = sms
        self.sms_app_url = None
        self.pbx_connected = False
        self.submitted: list[object] = []

    def record_counts(self) -> dict[str, int]:
        return {"written": 3, "pending": 0}

    def submit(self, event: Event) -> CoreError | None:
        self.submitted.append(event)
        try:
            self.core.handle(event, self.clock())
        except CoreError as exc:
            return exc
        return None


def admin_client(engine: FakeEngine, tmp_path: Path) -> TestClient[Any, Any]:
    api = ControlApi(engine, ApiConfig(token_file=tmp_path / "acd-api.tokens"))
    app = api.app()
    assert api.tokens is not None
    return TestClient(TestServer(app), headers={
        "Authorization": f"Bearer {api.tokens.by_role[Role.ADMIN]}"})


async def test_the_api_needs_only_its_protocol_of_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    async with admin_client(engine, tmp_path) as client:
        resp = await client.post("/agents/a0/login", json={"ready": False})
        assert resp.status == 200 and (await resp.json())["state"] == "paused"
        resp = await client.post("/agents/a0/login")
        assert resp.status == 409  # the core's refusal, returned by submit
        assert await resp.json() == {"error": "agent a0: 'login' is not allowed in state 'paused'"}
        resp = await client.get("/health")
        assert await resp.json() == {"ami": False, "calls": 0, "agents": 1, "logged_in": 1,
                                     "ready": 0, "records": {"written": 3, "pending": 0}}
        resp = await client.get("/sms/outbox")
        assert resp.status == 404
    assert [type(e).__name__ for e in engine.submitted] == ["AgentLogin", "AgentLogin"]
    assert engine.core.agent("a0").state is AgentState.PAUSED


async def test_the_api_needs_only_the_few_methods_of_the_stores(tmp_path: Path) -> None:
    engine = FakeEngine(FakeSms())
    async with admin_client(engine, tmp_path) as client:
        resp = await client.post("/agents/a0/profile", json={"skills": {"billing": 8}})
        assert resp.status == 200 and (await resp.json())["skills"] == {"billing": 8}
        assert [dict(p.skills) for p in engine.profiles.stored] == [{"billing": 8}]
        assert dict(engine.core.agent("a0").profile.skills) == {"billing": 8}  # then live
        resp = await client.get("/sms/outbox?state=sent")
        assert await resp.json() == [{
            "id": 7, "call_id": "c7", "number": "+8613800138000", "rule": "abandoned",
            "state": "sent", "reason": "", "attempts": 1,
            "created_at": "2025-06-23T02:00:00+00:00", "text": "稍后回电"}]
        resp = await client.post("/sms/optout", json={"number": "13800138000"})
        assert await resp.json() == {"ok": True, "number": "+8613800138000", "changed": True}
        resp = await client.post("/sms/click/nope")
        assert resp.status == 404  # not on the control listener (the public one has it)


def test_the_api_does_not_import_the_engine() -> None:
    from test_import_graph import imported_names, module_files

    api = {m: p for m, p in module_files(ROOT, ("acd",)).items() if m.startswith("acd.api")}
    assert "acd.api.control" in api and "acd.api.protocol" in api
    for module, path in api.items():
        assert not [n for n in imported_names(module, path) if n.startswith("acd.runtime")], \
            module
