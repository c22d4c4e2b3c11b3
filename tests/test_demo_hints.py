"""What `acd demo` tells a new user: the hotline out of its opening hours
(one line at the start, ``--at``/``--open`` to run as if open, where unknown
numbers really go), the sample flow found from another folder, and the
reports' hint to the demo's database."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from acd.adapters.storage import Summary
from acd.ivr.load import load_flow
from acd.loadsim import demo
from acd.loadsim.demo import DemoOptions, DemoResult
from cli import main

ROOT = Path(__file__).resolve().parent.parent
HOTLINE = ROOT / "ivr_flows" / "hotline.yaml"
BASIC = ROOT / "ivr_flows" / "basic.yaml"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))  # no daylight saving
#: a time of day (in Shanghai) the hotline is closed at, whatever the day
CLOSED = "03:00"


def at(text: str) -> dt.datetime:
    """A time in Shanghai (``2026-12-02 04:40``), aware."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# ------------------------------------------------------------ opening hours


def test_the_hotline_out_of_hours_is_said_in_one_line() -> None:
    flow = load_flow(HOTLINE)
    line = demo.closed_notice(flow, at("2026-12-02 04:40"))
    assert line is not None and "\n" not in line
    assert line.startswith("hotline: closed at the demo's start (Wed 04:40 Asia/Shanghai; "
                           "hours node 'hours': open 08:00-22:00 daily)")
    assert "callers hear closed_welcome (acd/closed-self-service), then self-service and " \
           "voicemail, no agent" in line
    assert "--open" in line and "--at HH:MM, in Asia/Shanghai" in line
    assert demo.closed_notice(flow, at("2026-12-02 10:00")) is None
    # a holiday and a day of special hours are named
    holiday = demo.closed_notice(flow, at("2027-02-06 10:00"))
    assert holiday is not None and "2027-02-06: closed (a holiday)" in holiday
    eve = demo.closed_notice(flow, at("2026-12-31 19:00"))
    assert eve is not None and "2026-12-31: 08:00-18:00" in eve
    # a flow without hours: nothing to say
    assert demo.closed_notice(load_flow(BASIC), at("2026-12-02 04:40")) is None


def test_unknown_numbers_go_to_an_agent_when_open_and_to_voicemail_when_closed() -> None:
    flow = load_flow(HOTLINE)
    assert demo.unknown_numbers_go(flow, at("2026-12-02 10:00")) == "to an agent"
    assert demo.unknown_numbers_go(flow, at("2026-12-02 04:40")) == "to voicemail"
    assert demo.unknown_numbers_go(load_flow(BASIC), at("2026-12-02 10:00")) is None


def test_the_clock_offset_for_at_and_open() -> None:
    flow = load_flow(HOTLINE)
    now = at("2026-12-02 04:40").timestamp()

    def shifted(**kw: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(now + demo.clock_offset(flow, now, **kw), SHANGHAI)

    assert demo.clock_offset(flow, now) == 0.0
    assert shifted(at="10:00") == at("2026-12-02 10:00")
    assert shifted(at="2026-12-31 9:30") == at("2026-12-31 09:30")
    assert shifted(at="2026-12-31T09:30") == at("2026-12-31 09:30")
    # --open: the next quarter hour at which every hours node is open for an hour
    assert shifted(open_=True) == at("2026-12-02 08:00")
    assert demo.clock_offset(flow, at("2026-12-02 10:00").timestamp(), open_=True) == 0.0
    # open now but closing within the hour: the next morning, not now
    closing = at("2026-12-02 21:58").timestamp()
    assert dt.datetime.fromtimestamp(closing + demo.clock_offset(flow, closing, open_=True),
                                     SHANGHAI) == at("2026-12-03 08:00")
    late = at("2027-02-05 22:30").timestamp()  # then the holiday: closed all day
    assert dt.datetime.fromtimestamp(late + demo.clock_offset(flow, late, open_=True),
                                     SHANGHAI) == at("2027-02-07 08:00")
    for bad, why in (("25:00", "not a time of day"), ("1000", "not a time like 10:00"),
                     ("2026-13-01 10:00", "2026-13-01 is not a date")):
        with pytest.raises(ValueError, match=why):
            demo.clock_offset(flow, now, at=bad)


class FakeRun:
    """``run_demo`` in place of the real one: the options it was given, a
    result as the real one makes it (where unknown numbers go, judged at
    the engine's clock)."""

    def __init__(self) -> None:
        self.opts: DemoOptions | None = None

    async def __call__(self, opts: DemoOptions, console: Any = None) -> DemoResult:
        self.opts = opts
        when = dt.datetime.fromtimestamp(time.time() + opts.clock_offset_s, dt.UTC)
        self_service = {"account": 3, "unknown": 1} if demo.calls_self_service(opts.flow) \
            else None
        return DemoResult(Summary(4, 0, 0, 4, None, None, None), [], 0.1, 0.1, [],
                          self_service, demo.unknown_numbers_go(opts.flow, when))


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    monkeypatch.setattr(demo, "run_demo", fake)
    return fake


def test_the_demo_says_when_the_hotline_is_closed(fake_run: FakeRun, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--at", CLOSED,
                                  "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    clock = next(x for x in lines if x.startswith("clock: as if at "))
    assert clock.split()[5:7] == ["03:00", "Asia/Shanghai"]
    notice = [x for x in lines if x.startswith("out of hours: hotline: closed at the demo's "
                                               "start (")]
    assert len(notice) == 1, r.output
    assert "open 08:00-22:00 daily" in notice[0] and "no agent" in notice[0]
    assert "add --open" in notice[0]
    # not "to an agent": they reach voicemail
    assert "1 unknown numbers (to voicemail)" in r.output
    assert "the flow was out of hours for these calls (see above): add --open" in r.output
    assert fake_run.opts is not None and fake_run.opts.clock_offset_s != 0


def test_the_demo_with_open_says_nothing_of_hours(fake_run: FakeRun, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--open",
                                  "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.exit_code == 0, r.output
    assert "out of hours" not in r.output
    assert "1 unknown numbers (to an agent)" in r.output
    assert fake_run.opts is not None
    when = dt.datetime.fromtimestamp(time.time() + fake_run.opts.clock_offset_s, dt.UTC)
    assert demo.closed_notice(fake_run.opts.flow, when) is None


def test_the_demo_refuses_a_bad_time(fake_run: FakeRun) -> None:
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--at", "25:00"])
    assert r.exit_code == 2
    assert "Invalid value for --at: '25:00' is not a time of day" in r.output
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--at", "10:00", "--open"])
    assert r.exit_code == 2 and "give --at or --open, not both" in r.output
    assert fake_run.opts is None


@pytest.mark.slow  # the closed menus wait for keys: about 20 s
def test_the_closed_hotline_demo_sends_no_one_to_an_agent(tmp_path: Path) -> None:
    """The real demo, as if at 03:00 in Shanghai: nobody answered, and the
    summary does not say the unknown numbers went to an agent."""
    r = CliRunner().invoke(main, ["demo", "--flow", str(HOTLINE), "--calls", "1", "--agents",
                                  "1", "--at", CLOSED,
                                  "--db", f"sqlite+aiosqlite:///{tmp_path}/d.db"])
    assert r.exit_code == 0, r.output
    assert "out of hours: hotline: closed" in r.output
    row = next(x for x in r.output.splitlines() if "│ answered" in x)
    assert int(row.split("│")[2]) == 0
    assert "unknown numbers (to voicemail)" in r.output


# ------------------------------------------------- the flow from elsewhere


def test_the_demo_from_another_folder_uses_the_sample_beside_the_source(
        fake_run: FakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--calls", "4"])
    assert r.exit_code == 0, r.output
    assert f"flow: {BASIC} (no ivr_flows/basic.yaml in this folder)" in r.output
    assert fake_run.opts is not None and Path(fake_run.opts.flow.file) == BASIC


def test_the_demo_in_the_project_folder_uses_its_own_sample(
        fake_run: FakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ivr_flows").mkdir()
    (tmp_path / "ivr_flows" / "basic.yaml").write_text(BASIC.read_text())
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--calls", "4"])
    assert r.exit_code == 0, r.output
    assert "flow: " not in r.output
    assert fake_run.opts is not None
    assert Path(fake_run.opts.flow.file).resolve() == tmp_path / "ivr_flows" / "basic.yaml"


def test_the_demo_without_a_sample_says_what_to_do(
        fake_run: FakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import acd

    monkeypatch.setattr(acd, "__file__", str(tmp_path / "site" / "acd" / "__init__.py"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo"])
    assert r.exit_code == 2
    assert f"no ivr_flows/basic.yaml in {tmp_path}: run acd demo from the project folder, " \
           "or pass --flow PATH" in r.output
    # a --flow given is taken as given: no fallback
    monkeypatch.undo()
    monkeypatch.setattr(demo, "run_demo", fake_run)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--flow", "ivr_flows/basic.yaml"])
    assert r.exit_code == 2 and "ivr_flows/basic.yaml: flow file not found" in r.output
    assert fake_run.opts is None


@pytest.mark.slow  # a real demo run (a few seconds)
def test_the_installed_command_runs_from_an_empty_folder(tmp_path: Path) -> None:
    """``acd`` itself (a new process), from a folder with no ivr_flows/."""
    import subprocess
    import sys

    acd_command = Path(sys.executable).parent / "acd"
    if not acd_command.exists():
        pytest.skip("no acd command beside this Python (not installed)")
    r = subprocess.run([str(acd_command), "demo", "--calls", "2", "--agents", "2",
                        "--db", "sqlite+aiosqlite:///d.db"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"flow: {BASIC} (no ivr_flows/basic.yaml in this folder)" in r.stdout
    assert "2 calls, 2 agents" in r.stdout
    assert (tmp_path / "d.db").exists()


# ------------------------------------------------ the reports' default database


@pytest.mark.parametrize("command", [["report", "calls"], ["qa", "report"]])
def test_the_reports_point_at_the_demos_database(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, command)
    assert r.exit_code == 2
    assert f"no database at {tmp_path / 'acd.db'}" in r.output
    assert "acd demo writes" not in r.output  # no demo file: no hint
    (tmp_path / "acd-demo.db").touch()
    r = CliRunner().invoke(main, command)
    assert r.exit_code == 2
    assert "acd demo writes acd-demo.db: add --db sqlite+aiosqlite:///acd-demo.db" in r.output
    # from another folder: the demo file's whole path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = CliRunner().invoke(main, [*command, "--db", f"sqlite+aiosqlite:///{tmp_path}/acd.db"])
    assert r.exit_code == 2
    assert f"add --db sqlite+aiosqlite:///{tmp_path}/acd-demo.db" in r.output
    # another file name: no hint
    r = CliRunner().invoke(main, [*command, "--db", f"sqlite+aiosqlite:///{tmp_path}/x.db"])
    assert r.exit_code == 2 and "acd demo writes" not in r.output
