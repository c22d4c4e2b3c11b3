"""The web wallboard (acd/api/wallboard.py): its snapshot, its event stream,
its cookie, against a core driven event by event (``Scene``) and against a
real engine on the PBX simulator."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_system import ROOT, System, system, until

from acd.api import qa_pages
from acd.api.auth import QA, WALLBOARD, WALLBOARD_COOKIE, BrowserCookie, sign_in_page
from acd.api.config import ApiConfig, Role
from acd.api.control import ControlApi
from acd.core.center import ContactCenter
from acd.core.errors import CoreError
from acd.core.model import (
    Action,
    AgentLogin,
    AgentPause,
    AgentReady,
    AgentState,
    CallerGone,
    CallQueued,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    Event,
    OfferAnswered,
    StartTimer,
    TimerFired,
)
from acd.core.policy import (
    ClassRule,
    CustomerClass,
    Policy,
    Preferences,
    QueuePolicy,
    Requirements,
    When,
)
from acd.core.policy import Test as AttrTest
from acd.core.profiles import AgentProfile
from acd.core.stats import ServiceLevel, Statistics
from acd.ivr.load import load_flow
from sim.config import CallerScript, PhoneBehaviour

#: 2026-03-02 09:47:10 local time, in a 15-minute interval that began at 09:45
T0 = time.mktime((2026, 3, 2, 9, 47, 10, 0, 0, -1))
BILLING = ["", "1"]


# ------------------------------------------------------------------ scene


class Flows:
    def __init__(self) -> None:
        self.current = load_flow(ROOT / "ivr_flows" / "basic.yaml")
        self.loads = 1

    def reload(self) -> Any:
        raise AssertionError("not asked")


class Scene:
    """An engine as the API sees it (``ControlledEngine``), with a real core
    and real statistics, driven by hand: ``at(t)`` moves the clock, each
    event goes through the core, its actions to the statistics and the
    decision listeners, as the engine does; offers ring, answers and
    timers are events the test gives."""

    def __init__(self, policy: Policy, agents: Sequence[AgentProfile], now: float = T0) -> None:
        self.core = ContactCenter(CoreConfig(policy=policy, agents=tuple(agents), wrap_up_s=30.0,
                                             rona_pause_s=None))
        self.statistics = Statistics({c.name: ServiceLevel(c.sl_threshold_s, c.sl_target)
                                      for c in policy.classes.values()})
        self.now = now
        self.clock = lambda: self.now
        self.flows = Flows()
        self.profiles = None
        self.sms_store = None
        self.sms_app_url = None
        self.pbx_connected = True
        self.listeners: list[Any] = []
        self.offers: dict[str, int] = {}  # call id -> the offer ringing
        self.timers: dict[str, tuple[str, str]] = {}  # agent or call id -> its timer's key

    def record_counts(self) -> dict[str, int]:
        return {"written": 0, "pending": 0}

    def at(self, t: float) -> Scene:
        self.now = T0 + t
        return self

    def submit(self, event: Event) -> CoreError | None:
        try:
            actions = self.core.handle(event, self.now)
        except CoreError as exc:
            return exc
        self._did(event, actions)
        return None

    def _did(self, event: Event, actions: Sequence[Action]) -> None:
        for action in actions:
            self.statistics.on_action(action, self.now)
            if isinstance(action, ConnectCall):
                self.offers[action.call_id] = action.offer_id
            elif isinstance(action, StartTimer):
                self.timers[action.key[1]] = action.key
        for listener in self.listeners:
            listener(event, actions, self.now, time.monotonic_ns())

    def go(self, *events: Event) -> None:
        for event in events:
            refusal = self.submit(event)
            assert refusal is None, refusal

    # the steps of a call
    def call(self, call_id: str, caller: str, queue: str, **attrs: str) -> None:
        self.go(CallStarted(call_id, caller), CallQueued(call_id, queue,
                                                          attributes=tuple(attrs.items())))

    def answer(self, call_id: str) -> None:
        self.go(OfferAnswered(call_id, self.offers[call_id]))

    def hang_up(self, call_id: str) -> None:
        self.go(ConversationEnded(call_id))

    def wrapped_up(self) -> None:
        """Fire the agents' wrap-up timers."""
        for subject in [k for k in self.timers if self.timers[k][0] == "wrap_up"]:
            self.go(TimerFired(self.timers.pop(subject)))


QUEUES = {"账务查询": "billing", "技术支持": "tech", "VIP 专线": "vip", "general": "general"}
NAMES = ["王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰", "吴倩",
         "Alice Chen", "徐明", "孙丽", "郑强"]


def policy() -> Policy:
    vip = When((AttrTest("vip_level", values=frozenset({"gold", "platinum"})),))
    return Policy(
        queues={q: QueuePolicy(q, Requirements(skill=s), Preferences(idle=1.0),
                               ring_timeout_s=20.0) for q, s in QUEUES.items()},
        classes={"standard": CustomerClass("standard", 20.0, 0.8),
                 "vip": CustomerClass("vip", 10.0, 0.9)},
        class_rules=(ClassRule(vip, "vip"),))


def agents() -> list[AgentProfile]:
    skills = [{"billing": 5, "general": 3}, {"billing": 5}, {"tech": 5, "general": 3},
              {"tech": 5}, {"vip": 5, "billing": 4}, {"vip": 5, "tech": 4},
              {"billing": 3, "tech": 3, "general": 5}, {"general": 5}, {"billing": 5},
              {"tech": 5}, {"general": 4, "billing": 2}, {"vip": 5}, {"general": 5},
              {"billing": 5, "tech": 5}]
    return [AgentProfile(f"a{i + 1:02d}", str(1001 + i), name=NAMES[i], skills=skills[i])
            for i in range(len(NAMES))]


def busy_scene() -> Scene:
    """A morning: answered and abandoned calls, VIP callers kept waiting past
    their 10 s (an alert), and now agents in every state and calls waiting."""
    s = Scene(policy(), agents())
    s.at(-1800)
    for a in agents()[:-1]:  # the last one stays logged out
        s.go(AgentLogin(a.agent_id, ready=True))
    n = 0

    def answered(queue: str, wait: float, talk: float, **attrs: str) -> None:
        nonlocal n
        n += 1
        cid = f"h{n}"
        start = s.now
        # nobody free for ``wait`` seconds: the agents of the queue's skill are paused
        skill = QUEUES[queue]
        held = [a.agent_id for a in s.core.agents() if a.state.value == "ready"
                and skill in a.profile.skills]
        for aid in held:
            s.go(AgentPause(aid, "培训"))
        s.call(cid, f"1390000{n:04d}", queue, **attrs)
        s.now = start + wait
        for aid in held:
            s.go(AgentReady(aid))
        s.answer(cid)
        s.now += talk
        s.hang_up(cid)
        s.wrapped_up()
        s.now += 5

    for i in range(6):
        answered("账务查询", 4 + i, 60)
    for i in range(4):
        answered("技术支持", 8 + 6 * i, 90)
    for i in range(3):
        answered("VIP 专线", 6 + 8 * i, 120, vip_level="gold")
    answered("general", 3, 40)
    # two callers hang up waiting: agents of the queue paused, then back
    s.go(AgentPause("a08", "会议"), AgentPause("a11", "会议"), AgentPause("a01", "会议"),
         AgentPause("a07", "会议"))
    s.call("ab1", "13700001111", "general")
    s.now += 25
    s.go(CallerGone("ab1"))
    s.call("ab2", "13700002222", "general")
    s.now += 40
    s.go(CallerGone("ab2"))
    for aid in ("a08", "a11", "a01", "a07"):
        s.go(AgentReady(aid))

    # now (09:46-09:47): agents on calls, ringing, wrapping up, paused; calls waiting
    s.at(-90)
    s.go(AgentPause("a02", "午餐"), AgentPause("a10", "培训"), AgentPause("a11", "会议"))
    s.at(-60)
    for cid, number, queue, attrs in (("c1", "13812345678", "账务查询", {}),
                                      ("c2", "13912345678", "技术支持", {}),
                                      ("c3", "13612345678", "VIP 专线", {"vip_level": "platinum"}),
                                      ("c4", "13512345678", "general", {})):
        s.call(cid, number, queue, **attrs)
        s.answer(cid)
    s.at(-45)
    s.hang_up("c4")  # its agent wraps up
    s.at(-40)
    s.call("c5", "15012345678", "账务查询")  # rings an agent
    s.at(-35)
    # the others take a short break: the next calls wait
    for a in list(s.core.agents()):
        if a.state is AgentState.READY and a.agent_id not in ("a08", "a13"):
            s.go(AgentPause(a.agent_id, "小休"))
    s.at(-25)
    for cid, number in (("w1", "18610002345"), ("w2", "18620003456"), ("w3", "18630004567")):
        s.call(cid, number, "账务查询")
    s.at(-12)
    s.call("w4", "18700001234", "VIP 专线", vip_level="gold")
    s.call("w5", "18800001234", "技术支持")
    s.at(0)
    return s


BIG_QUEUES = {"账务查询": "billing", "技术支持": "tech", "VIP 专线": "vip", "general": "general",
              "投诉处理": "complaints", "国际业务": "intl", "Sales / 销售热线": "sales",
              "售后服务与退换货": "returns"}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["芳", "娜", "伟", "洋", "静", "磊", "敏", "勇", "杰", "倩", "明", "丽", "强", "欣怡",
         "子涵", "浩然"]


def big_scene(n_agents: int = 60, waiting_per_queue: int = 10) -> Scene:
    """A large centre at its busiest: 8 queues, ``n_agents`` agents in every
    state (a few logged out), ``waiting_per_queue`` calls waiting in each
    queue (the wallboard's layout test: it must fit the screen)."""
    skills = list(BIG_QUEUES.values())
    profiles = []
    for i in range(n_agents):
        name = (SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)] if i % 7 != 3
                else f"Agent Number {i + 1:02d} Long-Name")
        profiles.append(AgentProfile(f"b{i + 1:02d}", str(2001 + i), name=name,
                                     skills={skills[i % 8]: 5, skills[(i + 3) % 8]: 3}))
    pol = Policy(
        queues={q: QueuePolicy(q, Requirements(skill=s), Preferences(idle=1.0),
                               ring_timeout_s=20.0) for q, s in BIG_QUEUES.items()},
        classes={"standard": CustomerClass("standard", 20.0, 0.8)})
    s = Scene(pol, profiles)
    s.at(-600)
    for a in profiles[:-3]:  # three stay logged out
        s.go(AgentLogin(a.agent_id, ready=True))
    s.at(-300)
    n = 0
    for q in BIG_QUEUES:  # a call answered and still talking in each queue
        n += 1
        s.call(f"t{n}", f"1390000{n:04d}", q)
        s.answer(f"t{n}")
    s.at(-200)
    for i, a in enumerate(list(s.core.agents())):
        if a.state is AgentState.READY and i % 4 == 1:
            s.go(AgentPause(a.agent_id, ("午餐", "培训", "会议")[i % 3]))
    s.at(-120)
    for a in list(s.core.agents()):  # the rest take a break: the next calls wait
        if a.state is AgentState.READY and int(a.agent_id[1:]) % 5 != 0:
            s.go(AgentPause(a.agent_id, "小休"))
    for a in list(s.core.agents()):
        if a.state is AgentState.READY:
            s.go(AgentPause(a.agent_id, "小休"))
    for k in range(waiting_per_queue):
        s.at(-100 + k * 9)
        for q in BIG_QUEUES:
            n += 1
            s.call(f"w{n}", f"1860000{n:04d}", q)
    s.at(-5)
    s.hang_up("t1")  # its agent wraps up
    s.hang_up("t2")
    for aid in ("b11", "b22", "b33"):  # back from a break: offered a call (ringing)
        if s.core.agent(aid).state is AgentState.PAUSED:
            s.go(AgentReady(aid))
    for k in range(3):  # and one more call each in the first queues
        n += 1
        s.call(f"w{n}", f"1860000{n:04d}", list(BIG_QUEUES)[k])
    s.at(0)
    return s


@asynccontextmanager
async def client(engine: Any, tmp_path: Path, **wallboard: Any
                 ) -> AsyncIterator[tuple[TestClient[Any, Any], ControlApi]]:
    api = ControlApi(engine, ApiConfig(token_file=tmp_path / "acd-api.tokens"))
    for key, value in wallboard.items():
        setattr(api.wallboard, key, value)
    async with TestClient(TestServer(api.app())) as c:
        yield c, api


def bearer(api: ControlApi, role: str = "read") -> dict[str, str]:
    assert api.tokens is not None
    return {"Authorization": f"Bearer {api.tokens.by_role[Role[role.upper()]]}"}


async def next_snapshot(resp: aiohttp.ClientResponse, timeout: float = 5.0) -> dict[str, Any]:
    """The next ``snapshot`` event of an SSE stream (comments skipped)."""
    async with asyncio.timeout(timeout):
        event: str | None = None
        while True:
            line = (await resp.content.readline()).decode("utf-8")
            assert line, "the stream ended"
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "snapshot":
                return json.loads(line[6:])


# ---------------------------------------------------------------- snapshot


async def test_snapshot_of_a_busy_morning(tmp_path: Path) -> None:
    s = busy_scene()
    async with client(s, tmp_path) as (c, api):
        resp = await c.get("/wallboard/state", headers=bearer(api))
        assert resp.status == 200 and resp.content_type == "application/json"
        raw = await resp.read()
        snap = json.loads(raw)
    assert "账务查询".encode() in raw  # UTF-8 on the wire, not \\u escapes
    assert snap["now"] == T0
    assert snap["interval"] == {"start": T0 - 130, "end": T0 - 130 + 900, "length_s": 900.0}
    q = {x["name"]: x for x in snap["queues"]}
    assert list(q) == ["账务查询", "技术支持", "VIP 专线", "general"]
    billing = q["账务查询"]
    assert billing["waiting"] == 3 and billing["ringing"] == 1
    assert billing["oldest_queued_at"] == T0 - 25 and billing["longest_wait_s"] == 25
    assert [c["caller"] for c in billing["calls"]] == ["186****2345", "186****3456",
                                                      "186****4567"]  # masked, in order
    # the morning's billing calls: 6 answered, waits 4-9 s, all within 20 s
    assert billing["today"]["offered"] == 6 and billing["today"]["answered"] == 6
    assert billing["today"]["service_level"] == 1.0 and billing["today"]["sl_met"] is True
    assert billing["sl_target"] == 0.8 and billing["sl_threshold_s"] == 20.0
    assert billing["interval"]["offered"] == 0 and billing["interval"]["service_level"] is None
    # tech waited 8, 14, 20, 26 s: 3 of 4 within 20 s
    assert q["技术支持"]["today"]["service_level"] == 0.75
    assert q["技术支持"]["today"]["sl_met"] is False
    vip = q["VIP 专线"]
    assert vip["waiting"] == 1 and vip["calls"][0]["customer_class"] == "vip"
    # VIP: waits 6, 14, 22 s against 10 s: 1 of 3
    assert vip["today"]["service_level"] == pytest.approx(1 / 3)
    assert vip["sl_threshold_s"] == 10.0
    general = q["general"]
    assert (general["today"]["offered"], general["today"]["answered"],
            general["today"]["abandoned"]) == (4, 2, 2)
    # c4 (answered at once, ended 45 s ago) is this interval's only call
    assert general["interval"]["offered"] == 1 and general["interval"]["service_level"] == 1.0
    assert general["interval"]["sl_met"] is True
    by = {a["id"]: a for a in snap["agents"]}
    assert by["a01"]["name"] == "王芳"
    states = {a["state"] for a in snap["agents"]}
    assert states == {"ready", "reserved", "on_call", "wrap_up", "paused", "logged_out"}
    paused = [a for a in snap["agents"] if a["state"] == "paused"]
    assert {a["reason"] for a in paused} == {"午餐", "培训", "会议", "小休"}
    on_call = [a for a in snap["agents"] if a["state"] == "on_call"]
    assert {a["call"]["caller"] for a in on_call} == {"138****5678", "139****5678",
                                                      "136****5678"}
    assert all(a["in_state_s"] == T0 - a["since"] for a in snap["agents"] if a["since"])
    assert by["a09"]["in_state_s"] == 60 and by["a14"]["since"] is None
    assert snap["totals"]["waiting"] == 5
    assert snap["totals"]["agents"] == {"ready": 1, "reserved": 1, "on_call": 3, "wrap_up": 1,
                                        "paused": 7, "logged_out": 1}
    # queue agents by state: billing's skill holders
    assert sum(billing["agents"].values()) == billing["logged_in"] == 6
    assert billing["logged_out"] == 1
    assert billing["agents"] == {"ready": 0, "reserved": 1, "on_call": 1, "wrap_up": 0,
                                 "paused": 4}
    # alerts today: standard (11 of 14 within 20 s) and vip (1 of 3 within 10 s)
    alerts = {(a["customer_class"], a["period"]) for a in snap["alerts"]}
    assert alerts == {("standard", "today"), ("vip", "today")}
    classes = {c["name"]: c for c in snap["classes"]}
    assert classes["vip"]["today"]["within_sl"] == 1 and classes["vip"]["sl_target"] == 0.9
    std = classes["standard"]["today"]
    assert (std["offered"], std["within_sl"]) == (14, 11)  # 78.6 % < 80 %


async def test_alert_this_interval_only(tmp_path: Path) -> None:
    """A class can meet its target today and miss it in this interval."""
    s = Scene(policy(), agents())
    s.at(-3600)
    for a in agents():
        s.go(AgentLogin(a.agent_id, ready=True))
    for i in range(8):  # 8 answered at once an hour ago
        s.call(f"x{i}", "13800000000", "general")
        s.answer(f"x{i}")
        s.now += 1
        s.hang_up(f"x{i}")
        s.wrapped_up()
    s.at(-100)
    s.go(*(AgentPause(f"a{i:02d}", "") for i in (1, 3, 7, 8, 11)))
    s.call("late", "13800000001", "general")
    s.now += 30
    s.go(CallerGone("late"))
    s.at(0)
    async with client(s, tmp_path) as (c, api):
        snap = await (await c.get("/wallboard/state", headers=bearer(api))).json()
    std = next(c for c in snap["classes"] if c["name"] == "standard")
    assert std["today"]["service_level"] == pytest.approx(8 / 9)
    assert std["interval"]["service_level"] == 0.0
    assert [(a["customer_class"], a["period"]) for a in snap["alerts"]] == \
        [("standard", "interval")]


async def test_page_and_assets(tmp_path: Path) -> None:
    async with client(busy_scene(), tmp_path) as (c, api):
        resp = await c.get("/wallboard", headers=bearer(api))
        assert resp.status == 200 and resp.charset == "utf-8"
        html = await resp.text()
        assert "/wallboard/static/wallboard.js" in html and '<meta charset="utf-8">' in html
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        for name, kind in (("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")):
            resp = await c.get(f"/wallboard/static/{name}", headers=bearer(api))
            assert resp.status == 200 and resp.content_type == kind, name
        css = await (await c.get("/wallboard/static/wallboard.css", headers=bearer(api))).text()
        assert '"Noto Sans CJK SC"' in css
        assert "overflow: hidden" in css
        for bad in ("wallboard.html", "..%2Fauth.py", "x.js"):
            resp = await c.get(f"/wallboard/static/{bad}", headers=bearer(api))
            assert resp.status == 404, bad


async def test_page_carries_its_first_snapshot_and_icon(tmp_path: Path) -> None:
    """The page holds the snapshot of now (drawn before the stream's first)
    as a JSON block no data can close, and names its icon (``data:``), so
    that a browser asks no /favicon.ico."""
    s = busy_scene()
    s.go(AgentPause("a08", "</script><script>alert(1)</script><!--"))
    async with client(s, tmp_path) as (c, api):
        resp = await c.get("/wallboard", headers=bearer(api))
        page = await resp.text()
        state = await (await c.get("/wallboard/state", headers=bearer(api))).json()
    assert resp.headers["Cache-Control"] == "no-store"
    assert '<link rel="icon" href="data:,">' in page
    assert "img-src 'self' data:" in resp.headers["Content-Security-Policy"]
    start = page.index('<script type="application/json" id="snapshot">')
    block = page[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert "<" not in block and page.count("</script>") == 2  # the script's own, this one's
    snap = json.loads(block)
    assert snap == state  # the same clock: the same snapshot
    assert next(a for a in snap["agents"] if a["id"] == "a08")["reason"].startswith("</script>")


async def test_every_html_page_names_its_icon_and_sign_in_looks_like_its_pages(
        tmp_path: Path) -> None:
    """The wallboard, its sign-in page, the quality pages and theirs carry
    ``<link rel="icon" href="data:,">`` (their policies allow ``data:``
    images): no browser asks /favicon.ico, which the API refuses with a
    warning.  A sign-in page has the look of the pages it opens: the
    wallboard's dark one, the quality pages' light one."""
    icon = '<link rel="icon" href="data:,">'
    async with client(busy_scene(), tmp_path) as (c, _api):
        resp = await c.get("/wallboard", headers={"Accept": "text/html"})
        assert resp.status == 401
        wall_sign_in = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
    assert icon in wall_sign_in and "img-src data:" in csp
    qa_sign_in = sign_in_page(QA, "/qa", "wrong token")
    assert icon in qa_sign_in
    dark, light = "background:#0b0f14", "background:#fff"
    assert dark in wall_sign_in and light not in wall_sign_in
    assert light in qa_sign_in and dark not in qa_sign_in
    for page in (qa_pages._html("<p>x</p>", "quality review"),
                 qa_pages._error_page(404, "no such call")):
        assert page.text is not None and icon in page.text
        assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]


# -------------------------------------------------------------- the cookie


async def test_cookie_from_the_read_token_opens_the_wallboard_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = busy_scene()
    async with client(s, tmp_path) as (c, api):
        assert api.tokens is not None
        tokens = {r.label: t for r, t in api.tokens.by_role.items()}
        # a wrong token: 401, no cookie
        resp = await c.get("/wallboard?token=" + "x" * 43, allow_redirects=False)
        assert resp.status == 401 and "Set-Cookie" not in resp.headers
        assert WALLBOARD_COOKIE not in {m.key for m in c.session.cookie_jar}
        # a higher role's token: refused too (it does not belong in a URL)
        for role in ("agent", "admin"):
            resp = await c.get(f"/wallboard?token={tokens[role]}", allow_redirects=False)
            assert resp.status == 403 and "Set-Cookie" not in resp.headers, role
        # without anything: 401; a browser at the page is told how to get in
        assert (await c.get("/wallboard/state")).status == 401
        resp = await c.get("/wallboard", headers={"Accept": "text/html,*/*"})
        assert resp.status == 401 and resp.content_type == "text/html"
        assert "/wallboard?token=" in await resp.text()
        # the read token: 303 to the clean URL, an HttpOnly SameSite=Strict cookie
        resp = await c.get(f"/wallboard?token={tokens['read']}&q=1", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/wallboard?q=1"
        header = resp.headers["Set-Cookie"]
        assert header.startswith(f"{WALLBOARD_COOKIE}=")
        for part in ("HttpOnly", "SameSite=Strict", "Path=/wallboard", "Max-Age="):
            assert part in header, part
        assert tokens["read"] not in header
        cookie = resp.cookies[WALLBOARD_COOKIE].value
        c.session.cookie_jar.clear()  # each request below says which cookie it has
        jar = {"Cookie": f"{WALLBOARD_COOKIE}={cookie}"}
        # the cookie opens the wallboard's GETs ...
        for path in ("/wallboard", "/wallboard/state", "/wallboard/static/wallboard.js"):
            assert (await c.get(path, headers=jar)).status == 200, path
        # ... and nothing else: other reads, changes, admin paths
        for method, path in (("GET", "/agents"), ("GET", "/queues"), ("GET", "/health"),
                             ("POST", "/agents/a08/pause"), ("POST", "/flow/reload"),
                             ("GET", "/sms/outbox"), ("POST", "/wallboard/state"),
                             ("POST", "/wallboard"), ("GET", "/wallboardx")):
            resp = await c.request(method, path, headers=jar)
            assert resp.status in (401, 405) and resp.status != 200, (method, path)
            if method == "POST" and resp.status == 405:
                continue
            assert resp.status == 401, (method, path)
        assert s.core.agent("a08").state is AgentState.READY
        # a forged or expired cookie: 401
        forged = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
        for bad in (forged, "99999999999." + cookie.split(".")[1], "", "1.2"):
            resp = await c.get("/wallboard/state",
                               headers={"Cookie": f"{WALLBOARD_COOKIE}={bad}"})
            assert resp.status == 401, bad
        old = BrowserCookie(api.tokens, WALLBOARD, clock=lambda: time.time() - 31 * 86400).make()
        resp = await c.get("/wallboard/state", headers={"Cookie": f"{WALLBOARD_COOKIE}={old}"})
        assert resp.status == 401
        # the cookie with a bearer token of another role: the token decides
        resp = await c.get("/agents", headers={**jar, **bearer(api, "admin")})
        assert resp.status == 200
    # no token in the log, whichever was given in the URL
    assert caplog.records and not any(t in r.getMessage() for r in caplog.records
                                      for t in tokens.values())


async def test_cookie_does_not_allow_posts_on_a_wallboard_path(tmp_path: Path) -> None:
    """A POST with the cookie is refused before any route (401, not 405)."""
    s = busy_scene()
    async with client(s, tmp_path) as (c, api):
        cookie = api.guard.wallboard.make() if api.guard is not None else ""
        jar = {"Cookie": f"{WALLBOARD_COOKIE}={cookie}"}
        assert (await c.get("/wallboard/state", headers=jar)).status == 200
        resp = await c.post("/wallboard/state", headers=jar)
        assert resp.status == 401
        resp = await c.post("/agents/a08/pause", headers=jar, json={"reason": "x"})
        assert resp.status == 401
    assert s.core.agent("a08").state is AgentState.READY


# ------------------------------------------------------------- the stream


async def test_stream_sends_a_snapshot_on_connect_and_after_each_change(
        tmp_path: Path) -> None:
    s = busy_scene()
    async with client(s, tmp_path, min_gap_s=0.05) as (c, api):
        resp = await c.get("/wallboard/events", headers=bearer(api))
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        first = await next_snapshot(resp)
        assert first["totals"]["waiting"] == 5
        assert s.listeners == [api.wallboard.on_decision]  # listening while a stream is open
        s.call("new", "13300001234", "general")  # nobody free in general? then it rings
        snap = await next_snapshot(resp)
        general = next(q for q in snap["queues"] if q["name"] == "general")
        assert general["waiting"] + general["ringing"] >= 1
        resp.close()
        await until(lambda: not api.wallboard.streams, what="the stream closed")
        assert s.listeners == []  # no stream: no listener


async def test_changes_are_coalesced(tmp_path: Path) -> None:
    s = busy_scene()
    async with client(s, tmp_path, min_gap_s=0.2) as (c, api):
        wb = api.wallboard
        resp = await c.get("/wallboard/events", headers=bearer(api))
        await next_snapshot(resp)
        # a burst of 41 decisions: one snapshot, of the state after the last
        before, changes = wb.snapshots, wb.changes
        for i in range(20):
            s.go(AgentPause("a08", f"r{i}"), AgentReady("a08"))
        s.go(AgentPause("a08", "午餐"))
        snap = await next_snapshot(resp)
        assert wb.changes - changes == 41 and wb.snapshots - before == 1
        a08 = next(a for a in snap["agents"] if a["id"] == "a08")
        assert (a08["state"], a08["reason"]) == ("paused", "午餐")
        # a change every 10 ms: at most one snapshot per min_gap_s
        before, t0 = wb.snapshots, time.monotonic()
        for i in range(60):
            s.go(AgentReady("a08") if i % 2 == 0 else AgentPause("a08", "x"))
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - t0
        built = wb.snapshots - before
        assert 1 <= built <= elapsed / wb.min_gap_s + 1, (built, elapsed)
        resp.close()


async def test_heartbeat_and_stream_cap(tmp_path: Path) -> None:
    async with client(busy_scene(), tmp_path, heartbeat_s=0.2, max_streams=2) as (c, api):
        a = await c.get("/wallboard/events", headers=bearer(api))
        b = await c.get("/wallboard/events", headers=bearer(api))
        await next_snapshot(a)
        third = await c.get("/wallboard/events", headers=bearer(api))
        assert third.status == 503
        assert "too many wallboard streams" in (await third.json())["error"]
        async with asyncio.timeout(3):
            while (await a.content.readline()) != b": heartbeat\n":
                pass
        a.close()
        b.close()


async def test_slow_client_holds_one_snapshot_and_is_dropped(tmp_path: Path) -> None:
    """A client that never reads: the server keeps only the latest snapshot
    for it, and drops it when a write cannot finish in write_timeout_s."""
    s = busy_scene()
    # a big board (long names) fills the socket buffers quickly
    async with client(s, tmp_path, min_gap_s=0.01, write_timeout_s=1.0) as (c, api):
        assert api.tokens is not None
        host, port = c.server.host, c.server.port
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        read = next(t for r, t in api.tokens.by_role.items() if r.label == "read")
        sock.sendall(f"GET /wallboard/events HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {read}\r\n\r\n".encode())
        try:
            await until(lambda: len(api.wallboard.streams) == 1, what="the stream open")
            stream = next(iter(api.wallboard.streams))
            for i in range(200):  # snapshots of 90 KB: more than the socket buffers hold
                if s.core.agent("a08").state is AgentState.PAUSED:
                    s.go(AgentReady("a08"))
                s.go(AgentPause("a08", f"{i}" + "原因" * 15000))
                await asyncio.sleep(0.01)
            assert api.wallboard.snapshots > 20
            assert stream.skipped > 0  # snapshots replaced, not queued
            assert stream.sent + stream.skipped <= api.wallboard.snapshots + 1
            await until(lambda: not api.wallboard.streams, timeout=5, what="the slow one dropped")
            assert api.wallboard.dropped == 1
        finally:
            sock.close()


async def test_stop_ends_open_streams(tmp_path: Path) -> None:
    s = busy_scene()
    api = ControlApi(s, ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens"))
    await api.start()
    try:
        async with aiohttp.ClientSession(headers=bearer(api)) as session:
            resp = await session.get(f"http://127.0.0.1:{api.port}/wallboard/events")
            await next_snapshot(resp)
            await api.stop()
            assert s.listeners == [] and not api.wallboard.streams
            async with asyncio.timeout(5):  # the stream ended: the rest reads to its end
                while await resp.content.readline():
                    pass
            resp.close()
    finally:
        await api.stop()


# --------------------------------------------------- against a real engine


async def test_real_engine_stream_sees_a_queued_call(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.5)}
    async with system(tmp_path, phones) as s:
        s.api.wallboard.min_gap_s = 0.05
        await _paused(s, "a1001")
        async with aiohttp.ClientSession(headers=s.headers("read")) as session:
            resp = await session.get(s.url + "/wallboard/events")
            assert resp.status == 200
            snap = await next_snapshot(resp)
            assert snap["totals"]["waiting"] == 0
            agent = next(a for a in snap["agents"] if a["id"] == "a1001")
            assert agent["state"] == "paused" and agent["reason"] == "测试"
            h = await s.pbx.place_call(CallerScript(number="13812345678", keys=BILLING,
                                                    key_delay_s=0.02, patience_s=20))
            snap = await _until_snapshot(resp, lambda x: x["totals"]["waiting"] == 1)
            billing = next(q for q in snap["queues"] if q["name"] == "billing")
            assert billing["calls"][0]["caller"] == "138****5678"
            assert billing["calls"][0]["call_id"] == h.uniqueid
            async with session.post(s.url + "/agents/a1001/ready",
                                    headers=s.headers("agent")) as r:
                assert r.status == 200
            snap = await _until_snapshot(resp, lambda x: x["totals"]["waiting"] == 0)
            await asyncio.wait_for(h.done, 10)
            snap = await _until_snapshot(
                resp, lambda x: next(q for q in x["queues"] if q["name"] == "billing")
                ["today"]["answered"] == 1)
            resp.close()
        assert s.engine.counters.errors == 0


async def _paused(s: System, agent_id: str) -> None:
    async with aiohttp.ClientSession(headers=s.headers("agent")) as session:
        async with session.post(f"{s.url}/agents/{agent_id}/pause",
                                json={"reason": "测试"}) as r:
            assert r.status == 200


async def _until_snapshot(resp: aiohttp.ClientResponse, pred: Any,
                          timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            snap = await next_snapshot(resp, timeout)
            if pred(snap):
                return snap
