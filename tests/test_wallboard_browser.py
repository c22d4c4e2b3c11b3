"""The wallboard in a real browser: headless Chromium (Debian's) driven by
Selenium through /usr/bin/chromedriver (never a downloaded one).

Skipped, saying why, without Chromium, its driver or Selenium.  Selenium
blocks: every browser step runs in a thread (``asyncio.to_thread``) so that
the engine keeps running on the event loop meanwhile.

``ACD_DOCS_IMG=1`` also writes the busy-morning screenshot to
docs/img/wallboard.png (the one docs/wallboard.md shows).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from api_system import ROOT, system, until
from test_wallboard import Scene, big_scene, busy_scene

from acd.api.config import ApiConfig
from acd.api.control import ControlApi
from acd.api.wallboard import Wallboard
from acd.core.model import Action, AgentPause, AgentReady, CallQueued, ConnectCall, Event
from sim.config import CallerScript, PhoneBehaviour

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PNG = b"\x89PNG\r\n\x1a\n"

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None

pytestmark = [
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed (dev extra)"),
    pytest.mark.skipif(not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)),
                       reason=f"no Chromium at {CHROMIUM} (apt install chromium)"),
    pytest.mark.skipif(not (CHROMEDRIVER.exists() and os.access(CHROMEDRIVER, os.X_OK)),
                       reason=f"no chromedriver at {CHROMEDRIVER} "
                              "(apt install chromium-driver)"),
    pytest.mark.slow,
]


@contextmanager
def chromium(width: int = 1920, height: int = 1080) -> Iterator[Any]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={width},{height}",
                "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    except WebDriverException as exc:
        pytest.skip(f"Chromium would not start under chromedriver: {exc.msg}")
    try:
        driver.set_page_load_timeout(20)
        # the page's own size (the window's includes what a window has around it)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


@asynccontextmanager
async def browser(width: int = 1920, height: int = 1080) -> AsyncIterator[Any]:
    cm = chromium(width, height)
    driver = await asyncio.to_thread(cm.__enter__)
    try:
        yield driver
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


async def open_wallboard(driver: Any, url: str, read_token: str) -> None:
    """Open /wallboard?token=... (the cookie, then the clean URL) and wait
    for the first snapshot."""
    def get() -> tuple[str, dict[str, Any]]:
        driver.get(f"{url}/wallboard?token={read_token}")
        return driver.current_url, {c["name"]: c for c in driver.get_cookies()}
    where, cookies = await asyncio.to_thread(get)
    assert where == f"{url}/wallboard"  # the token left the address bar
    assert cookies["acd_wallboard"]["httpOnly"] is True
    assert cookies["acd_wallboard"]["sameSite"] == "Strict"
    await poll(driver, lambda d: d.find_element(By.ID, "status").get_attribute("data-state")
               == "live", "the wallboard live")


async def poll(driver: Any, pred: Callable[[Any], bool], what: str,
               timeout: float = 10.0) -> float:
    """Ask the page until ``pred`` holds; the monotonic time it was seen."""
    def loop() -> float:
        deadline = time.monotonic() + timeout
        while True:
            if pred(driver):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)
    return await asyncio.to_thread(loop)


def text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def call_rows(driver: Any, call_id: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f'li[data-call-id="{call_id}"]'))


async def test_a_waiting_call_appears_and_leaves_within_2_s(tmp_path: Path) -> None:
    phones = {"1001": PhoneBehaviour(answer_after_s=0.05, talk_s=0.5)}
    async with system(tmp_path, phones) as s, browser() as driver:
        # the engine's decisions, timestamped as they are made
        decided: dict[tuple[str, str], float] = {}

        def listener(event: Event, actions: Sequence[Action], now: float,
                     started_ns: int) -> None:
            if isinstance(event, CallQueued):
                decided.setdefault(("queued", event.call_id), time.monotonic())
            for action in actions:
                if isinstance(action, ConnectCall):
                    decided.setdefault(("offered", action.call_id), time.monotonic())

        s.engine.listeners.append(listener)
        agent = s.engine.core.agent("a1001")
        assert s.engine.submit(AgentPause("a1001", "培训")) is None
        await open_wallboard(driver, s.url, s.token("read"))
        tile = await asyncio.to_thread(text, driver, '[data-agent="a1001"]')
        assert "培训" in tile and "Agent 1001" in tile

        h = await s.pbx.place_call(CallerScript(number="13812345678", keys=["", "1"],
                                                key_delay_s=0.02, patience_s=30))
        await until(lambda: ("queued", h.uniqueid) in decided, what="the call queued")
        seen = await poll(driver, lambda d: call_rows(d, h.uniqueid) == 1, "the waiting call")
        appeared = seen - decided["queued", h.uniqueid]
        row = await asyncio.to_thread(text, driver, f'li[data-call-id="{h.uniqueid}"]')
        source = await asyncio.to_thread(lambda: driver.page_source)
        assert "138****5678" in row and "13812345678" not in source
        assert await asyncio.to_thread(text, driver, '[data-queue="billing"] .waiting') == "1"
        await asyncio.to_thread(driver.save_screenshot, str(tmp_path / "waiting.png"))

        assert s.engine.submit(AgentReady("a1001")) is None
        await until(lambda: ("offered", h.uniqueid) in decided, what="the call offered")
        gone = await poll(driver, lambda d: call_rows(d, h.uniqueid) == 0, "the call gone")
        left = gone - decided["offered", h.uniqueid]
        await asyncio.to_thread(driver.save_screenshot, str(tmp_path / "offered.png"))
        await asyncio.wait_for(h.done, 10)
        await until(lambda: agent.calls_handled == 1, what="the call handled")
        s.engine.listeners.remove(listener)
    assert appeared < 2.0, f"the waiting call showed {appeared:.2f} s after the decision"
    assert left < 2.0, f"the waiting call left the board {left:.2f} s after the decision"
    for name in ("waiting.png", "offered.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    print(f"wallboard latency: appeared {appeared * 1000:.0f} ms, left {left * 1000:.0f} ms "
          "after the engine's decision")


#: what the page measures of itself: the board against the screen
LAYOUT = """
    const r = (sel) => [...document.querySelectorAll(sel)];
    const vw = window.innerWidth, vh = window.innerHeight;
    const drawn = (e) => e.offsetParent !== null;  // not display: none (hidden)
    const outside = (sel) => r(sel).filter(drawn).map((e) => e.getBoundingClientRect())
      .filter((b) => b.bottom > vh + 0.5 || b.right > vw + 0.5 || b.top < -0.5 || b.left < -0.5)
      .length;
    const px = (sel) => Math.min(...r(sel).map((e) => parseFloat(getComputedStyle(e).fontSize)));
    return {
      queues: r('[data-queue] h3').map(e => [e.textContent, e.lang]),
      alerts: r('.alert').map(e => e.textContent),
      agents: r('[data-agent] .name').map(e => e.textContent),
      font: getComputedStyle(document.querySelector('h3')).fontFamily,
      width: document.documentElement.scrollWidth,
      height: document.documentElement.scrollHeight,
      viewport: vw, viewport_h: vh,
      outside: {queues: outside('.queue'), calls: outside('.calls li'),
                agents: outside('.agent'), panel: outside('.agents-panel')},
      // an agent tile or a call row cut by its box's edge
      clipped: r('.agent').filter(drawn).filter((e) => e.getBoundingClientRect().bottom
                 > document.getElementById('agents').getBoundingClientRect().bottom + 0.5).length
               + r('.calls').map((l) => [...l.children].filter((e) => e.getBoundingClientRect()
                 .bottom > l.getBoundingClientRect().bottom + 0.5).length)
                 .reduce((a, b) => a + b, 0),
      tiles: r('.agent').filter(drawn).length,
      rows: r('.calls').map((l) => l.querySelectorAll('li[data-call-id]').length),
      more: r('.calls .more').map((e) => e.textContent),
      note: document.getElementById('agents-note').textContent,
      px: {waiting: px('.waiting'), agent: px('.agent .name'), call: px('.calls li'),
           queue: px('.queue h3')},
      status: document.getElementById('status').dataset.state,
    };"""


async def _busy_board(tmp_path: Path, width: int, height: int,
                      scene: Scene | None = None) -> tuple[bytes, dict[str, Any]]:
    s = scene if scene is not None else busy_scene()
    api = ControlApi(s, ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens"))
    await api.start()
    try:
        assert api.tokens is not None
        read = next(t for r, t in api.tokens.by_role.items() if r.label == "read")
        async with browser(width, height) as driver:
            await open_wallboard(driver, f"http://127.0.0.1:{api.port}", read)
            await asyncio.to_thread(time.sleep, 0.3)  # fonts settle
            shot = await asyncio.to_thread(driver.get_screenshot_as_png)
            page = await asyncio.to_thread(driver.execute_script, LAYOUT)
    finally:
        await api.stop()
    return shot, page


def no_favicon_asked(caplog: pytest.LogCaptureFixture) -> None:
    """The pages name their icon (``data:``): a browser asks no /favicon.ico
    (which the API refuses, with a warning per visit)."""
    asked = [r.getMessage() for r in caplog.records if "favicon" in r.getMessage()]
    assert not asked, asked


def fits(page: dict[str, Any]) -> None:
    """The board is the screen: no scrolling either way, nothing drawn past
    its edges or cut by its box, the key figures still large."""
    assert page["height"] <= page["viewport_h"], page
    assert page["width"] <= page["viewport"], page
    assert page["outside"] == {"queues": 0, "calls": 0, "agents": 0, "panel": 0}, page
    assert page["clipped"] == 0, page
    assert page["px"]["waiting"] >= 28, page["px"]  # legible across a room
    assert page["px"]["agent"] >= 10.5 and page["px"]["call"] >= 9, page["px"]


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768), (1280, 720)])
async def test_a_big_centre_fits_the_screen(tmp_path: Path, size: tuple[int, int],
                                            caplog: pytest.LogCaptureFixture) -> None:
    """8 queues, 57 agents logged in, 9-11 calls waiting per queue: the whole
    board on the screen, every agent drawn, each queue's waiting calls as
    listed + "+N more" adding up to its count."""
    scene = big_scene()
    snap = Wallboard(scene).snapshot()
    shot, page = await _busy_board(tmp_path, *size, scene=scene)
    (tmp_path / f"wallboard-{size[0]}.png").write_bytes(shot)
    fits(page)
    assert len(page["queues"]) == 8
    assert page["tiles"] == 57 and "not shown" not in page["note"]
    for q, rows, more in zip(snap["queues"], page["rows"], page["more"], strict=True):
        assert rows >= 1 and more == f"+{q['waiting'] - rows} more", (q["name"], rows, more)
    no_favicon_asked(caplog)


async def test_more_agents_than_fit_are_counted_not_cut(tmp_path: Path) -> None:
    """200 agents on a 1280x720 screen: the smallest tiles, the ones that
    still do not fit left out and counted in the heading; nothing cut."""
    _shot, page = await _busy_board(tmp_path, 1280, 720, scene=big_scene(200))
    fits(page)
    shown = page["tiles"]
    assert 60 < shown < 197 and f"(+{197 - shown} not shown)" in page["note"], page["note"]


async def test_busy_morning_renders_chinese_and_alerts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shot, page = await _busy_board(tmp_path, 1920, 1080)
    (tmp_path / "wallboard.png").write_bytes(shot)
    assert shot.startswith(PNG)
    assert page["queues"] == [["账务查询", "zh-CN"], ["技术支持", "zh-CN"],
                              ["VIP 专线", "zh-CN"], ["general", "zh-CN"]]
    assert any("vip" in a and "today" in a for a in page["alerts"])
    assert any("standard" in a for a in page["alerts"])
    assert "王芳" in page["agents"] and "郑强" not in page["agents"]  # logged out: counted
    assert "Noto Sans CJK SC" in page["font"]
    fits(page)
    assert page["rows"] == [3, 1, 1, 0] and page["more"] == []  # room for all of them
    no_favicon_asked(caplog)
    if os.environ.get("ACD_DOCS_IMG") == "1":
        out = ROOT / "docs" / "img" / "wallboard.png"
        out.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "wallboard.png", out)


async def test_laptop_width_has_no_sideways_scroll(tmp_path: Path) -> None:
    shot, page = await _busy_board(tmp_path, 1366, 768)
    (tmp_path / "wallboard-laptop.png").write_bytes(shot)
    fits(page)
    assert len(page["queues"]) == 4


async def test_once_draws_the_page_snapshot_without_a_stream(tmp_path: Path) -> None:
    """``?once=1``: the snapshot the page carries, no live stream, so that a
    screenshot tool waiting for the page to go idle
    (``chromium --headless --screenshot --virtual-time-budget``) ends."""
    api = ControlApi(busy_scene(), ApiConfig(port=0, token_file=tmp_path / "acd-api.tokens"))
    streams = 0
    events = api.wallboard.events

    async def counted(request: Any) -> Any:
        nonlocal streams
        streams += 1
        return await events(request)

    api.wallboard.events = counted  # type: ignore[method-assign]
    await api.start()
    try:
        assert api.tokens is not None
        read = next(t for r, t in api.tokens.by_role.items() if r.label == "read")
        url = f"http://127.0.0.1:{api.port}"
        async with browser(1366, 768) as driver:
            def visit() -> None:
                driver.get(f"{url}/wallboard?token={read}&once=1")
            await asyncio.to_thread(visit)
            # drawn before any stream could have brought a snapshot
            assert await asyncio.to_thread(text, driver, '[data-queue="账务查询"] .waiting') == "3"
            await asyncio.to_thread(time.sleep, 1.0)
            state = await asyncio.to_thread(
                lambda: driver.find_element(By.ID, "status").get_attribute("data-state"))
            assert state == "once"
            page = await asyncio.to_thread(driver.execute_script, LAYOUT)
            fits(page)
        assert streams == 0
        # the command line of a kiosk screenshot (docs/wallboard.md): it ends
        png = tmp_path / "kiosk.png"
        proc = await asyncio.create_subprocess_exec(
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1280,720", f"--screenshot={png}", "--virtual-time-budget=5000",
            f"{url}/wallboard?token={read}&once=1",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            async with asyncio.timeout(60):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert png.read_bytes().startswith(PNG)
        assert streams == 0
    finally:
        await api.stop()
