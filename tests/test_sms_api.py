"""The SMS endpoints of the control API (admin role) and the SMS link's public
listener, on an engine with SMS on (log transport)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from api_system import system

from acd.runtime.settings import SmsConfig
from acd.runtime.sms_sender import SenderConfig
from acd.sms.policy import parse_sms_policy
from sim.config import CallerScript, Outcome, PhoneBehaviour

POLICY = parse_sms_policy("""
link: "https://m.example.cn/s/{token}"
app_url: "https://m.example.cn/app"
templates: {sorry: {zh: "App自助办理：{link}"}}
rules: [{name: abandoned, when: {outcome: abandoned}, template: sorry}]
""", "sms.yaml")


async def test_click_app_login_opt_out_and_outbox(tmp_path: Path) -> None:
    sms = SmsConfig(POLICY, "log", sender=SenderConfig(poll_s=0.05))
    phones = {"1001": PhoneBehaviour(answers=False)}
    async with system(tmp_path, phones, login_agents=False, sms=sms, public=True) as s, \
            aiohttp.ClientSession(headers=s.headers("admin")) as http, \
            aiohttp.ClientSession() as public:
        h = await s.pbx.place_call(CallerScript(number="13712345678", keys=["", "1"],
                                                patience_s=0.3, key_delay_s=0.02))
        res = await asyncio.wait_for(h.done, 10)
        assert res.outcome is Outcome.ABANDONED_HOLD
        deadline = time.monotonic() + 10
        row = None
        while time.monotonic() < deadline:
            row = await s.engine.sms_store.get(res.uniqueid)
            if row is not None and row.state == "delivered":
                break
            await asyncio.sleep(0.05)
        assert row is not None and row.state == "delivered" and row.token in row.text
        # the link and click tracking: on the public listener, without credentials
        async with public.get(f"{s.public_url}/s/{row.token}?to=https://evil.example",
                              allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "https://m.example.cn/app"
        async with public.post(f"{s.public_url}/sms/click/{row.token}") as r:
            assert r.status == 200 and await r.json() == {"ok": True}
        async with public.post(f"{s.public_url}/sms/click/nope") as r:
            assert r.status == 404
        # ... and not on the control listener, even with the admin token
        async with http.get(f"{s.url}/s/{row.token}", allow_redirects=False) as r:
            assert r.status == 404
        async with http.post(f"{s.url}/sms/app-login", json={"number": "+86 137 1234 5678"}) as r:
            assert r.status == 200 and (await r.json())["number"] == "+8613712345678"
        async with http.post(f"{s.url}/sms/app-login", json={}) as r:
            assert r.status == 400 and "number" in (await r.json())["error"]
        async with http.post(f"{s.url}/sms/optout", json={"number": "13712345678"}) as r:
            assert (await r.json())["changed"] is True
        assert [o["number"] for o in await s.engine.sms_store.opted_out()] == ["+8613712345678"]
        async with http.post(f"{s.url}/sms/optout",
                             json={"number": "13712345678", "remove": True}) as r:
            assert (await r.json())["changed"] is True
        async with http.get(f"{s.url}/sms/outbox") as r:
            rows = await r.json()
        assert [(x["call_id"], x["state"], x["rule"]) for x in rows] == [
            (res.uniqueid, "delivered", "abandoned")]
        for bad in ("abc", "0", "-5"):
            async with http.get(f"{s.url}/sms/outbox", params={"limit": bad}) as r:
                assert r.status == 400
                assert (await r.json())["error"] == \
                    f"limit: must be a whole number 1-10000, not {bad!r}"
        async with http.get(f"{s.url}/sms/outbox", params={"limit": "1"}) as r:
            assert len(await r.json()) == 1  # nothing was lost by the refusals
        report = await s.engine.sms_store.report()
    assert [(r.rule, r.sent, r.delivered, r.diverted) for r in report] == [
        ("abandoned", 1, 1, 1)]


async def test_sms_endpoints_without_sms_configured(tmp_path: Path) -> None:
    async with system(tmp_path, {"1001": PhoneBehaviour()}) as s, \
            aiohttp.ClientSession(headers=s.headers("admin")) as http:
        async with http.get(f"{s.url}/sms/outbox") as r:
            assert r.status == 404 and "SMS diversion is off" in (await r.json())["error"]
