"""What a new user met with the supervisor tools (issue 15): a driver that
is not installed, a mistyped SQLite database, tables cut when piped, a
--config that cannot be read, the service-level figure of
``acd report calls --png``."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from acd.cli import main
from acd.cli.common import READ_ONLY_COMMANDS, run_db

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MISSING_DRIVER = "the postgresql driver is missing: pip install 'acd[postgres]'"

OLD_CALL_RECORDS = """CREATE TABLE call_records (
    call_id VARCHAR(64) PRIMARY KEY, caller VARCHAR(64) NOT NULL,
    caller_name VARCHAR(128) NOT NULL, server VARCHAR(64) NOT NULL,
    started_at DATETIME NOT NULL, ended_at DATETIME NOT NULL, outcome VARCHAR(16) NOT NULL,
    ivr_path VARCHAR(1024) NOT NULL, queue VARCHAR(64), wait_s FLOAT, agent_id VARCHAR(64),
    talk_s FLOAT, offers INTEGER NOT NULL, customer_class VARCHAR(64) NOT NULL,
    priority INTEGER NOT NULL, first_queue VARCHAR(64))"""


def _records(db: Path, calls: list[tuple[str, str, str, float]]) -> str:
    """A database of call records (queue, 'HH:MM' on 2026-11-23, outcome,
    wait): its URL."""
    con = sqlite3.connect(db)
    con.execute(OLD_CALL_RECORDS)
    for i, (queue, at, outcome, wait) in enumerate(calls):
        answered = outcome == "answered"
        con.execute("INSERT INTO call_records VALUES (?, '1380', '', 'pbx1', ?, ?, ?, "
                    "'menu', ?, ?, ?, ?, 1, 'standard', 0, NULL)",
                    (f"call-with-a-long-id-{i:04d}", f"2026-11-23 {at}:00",
                     f"2026-11-23 {at}:59", outcome, queue, wait,
                     "agent-with-a-long-name" if answered else None,
                     30.0 if answered else None))
    con.commit()
    con.close()
    return f"sqlite+aiosqlite:///{db}"


PERIOD = ["--since", "2026-11-23", "--until", "2026-11-24", "--tz", "UTC"]


# ------------------------------------------------------------- 1: no driver


@pytest.mark.parametrize("args", [
    ["report", "calls", *PERIOD], ["report", "sms", "--tz", "UTC"], ["qa", "report"],
    ["qa", "sample", "--week", "2026-W48", "--rate", "5%", "--reviewers", "r1"], ["agents", "list"],
])
def test_a_missing_postgresql_driver_is_named_with_its_extra(
        monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    for name in [m for m in sys.modules if m == "asyncpg" or m.startswith("asyncpg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg: ModuleNotFoundError
    result = CliRunner().invoke(main, [*args, "--db", PG])
    assert result.exit_code == 2, (result.output, result.exception)
    assert MISSING_DRIVER in result.output
    assert "Traceback" not in result.output and "ModuleNotFoundError" not in result.output


def test_acd_serve_names_the_missing_driver_too(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    import yaml

    root = Path(__file__).resolve().parent.parent
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(yaml.safe_dump({
        "flow": str(root / "ivr_flows" / "basic.yaml"),
        "routing": str(root / "routing.example.yaml"), "database": PG}))
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    result = CliRunner().invoke(main, ["serve", "--config", str(cfg)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert MISSING_DRIVER in result.output


# ------------------------------------------------- 2: a mistyped SQLite file


@pytest.mark.parametrize("args", [
    ["report", "calls", *PERIOD], ["report", "sms", "--tz", "UTC"], ["qa", "report"],
    ["qa", "list"], ["explain", "c1"], ["customers", "show", "13800138000"],
    ["agents", "list"], ["sms", "outbox"], ["sms", "optout", "list"],
])
def test_read_only_commands_refuse_a_sqlite_file_that_does_not_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*args, "--db", "sqlite+aiosqlite:///nope.db"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert (f"error: no database at {tmp_path / 'nope.db'} (acd serve creates it; check --db "
            "or database: in acd.yaml)") in result.output
    assert not (tmp_path / "nope.db").exists()


def test_commands_that_write_still_create_the_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    result = CliRunner().invoke(main, ["sms", "optout", "add", "13800138000", "--db", url])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new.db").is_file()
    # and the reading ones read it, once it exists
    result = CliRunner().invoke(main, ["sms", "optout", "list", "--db", url])
    assert result.exit_code == 0 and "13800138000" in result.output


def test_the_read_only_commands_named_exist() -> None:
    """A renamed command would silently create files again."""
    for path in READ_ONLY_COMMANDS:
        cmd: Any = main
        for name in path:
            cmd = cmd.commands[name]
        assert cmd.callback is not None, path


def test_run_db_outside_a_command_keeps_creating(tmp_path: Path) -> None:
    async def work(db: Any) -> int:
        return 7

    assert run_db(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", work) == 7
    assert (tmp_path / "a.db").is_file()
    with pytest.raises(SystemExit) as stop:
        run_db(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", work, read_only=True)
    assert stop.value.code == 2 and not (tmp_path / "b.db").exists()


# --------------------------------------------------- 3: tables when piped


def test_tables_are_not_cut_when_piped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    url = _records(tmp_path / "r.db", [("a-queue-with-a-long-name", "10:00", "answered", 5.0)])
    result = CliRunner().invoke(main, ["report", "calls", *PERIOD, "--interval", "day",
                                       "--db", url])
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for word in ("interval", "group", "offered", "answered", "abandoned", "short_abandoned",
                 "transferred", "service_level", "longest_wait_s", "a-queue-with-a-long-name"):
        assert word in result.output, word
    assert max(len(line) for line in result.output.splitlines()) > 80
    # $COLUMNS still says the width
    monkeypatch.setenv("COLUMNS", "80")
    narrow = CliRunner().invoke(main, ["report", "calls", *PERIOD, "--interval", "day",
                                       "--db", url])
    assert max(len(line) for line in narrow.output.splitlines()) <= 80


# ------------------------------------------------ 8: --config unreadable


def test_a_config_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "calls", "--config",
                                       str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'nope.yaml'}: cannot read the configuration: file not found" \
        in result.output


# ------------------------------------------------------ 6: the PNG by queue


def test_png_by_queue_one_colour_per_queue_in_both_panels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    calls = [(q, f"{h:02d}:{m:02d}", "answered" if (h + m + len(q)) % 4 else "abandoned",
              float(5 + (h * m) % 40))
             for q in ("billing", "tech", "general") for h in (9, 10, 11) for m in (5, 20, 35)]
    url = _records(tmp_path / "r.db", calls)
    saved: list[matplotlib.figure.Figure] = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig: matplotlib.figure.Figure, *a: Any, **kw: Any) -> None:
        saved.append(fig)
        real(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    for extra, png in (([], "queues.png"), (["--interval", "day"], "one.png")):
        result = CliRunner().invoke(main, ["report", "calls", *PERIOD, "--by", "queue",
                                           "--png", str(tmp_path / png), *extra, "--db", url])
        assert result.exit_code == 0, result.output
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    many, one = saved
    for fig in (many, one):
        ax1, ax2 = fig.axes
        legends = [ax.get_legend() for ax in (ax1, ax2)]
        assert all(leg is not None for leg in legends)
        texts = [[t.get_text() for t in leg.get_texts()] for leg in legends]
        for q in ("billing", "tech", "general"):
            assert f"{q} offered" in texts[0] and f"{q} SL" in texts[1]
        colour: dict[str, Any] = {}
        for leg in legends:
            for handle, text in zip(leg.legend_handles, leg.get_texts(), strict=True):
                q = text.get_text().split()[0]
                if q in ("billing", "tech", "general"):
                    c = handle.get_facecolor() if fig is one else handle.get_color()
                    c = tuple(c[:3]) if not isinstance(c, str) else c
                    assert colour.setdefault(q, c) == c, (q, text.get_text())
        assert len(set(colour.values())) == 3
    # several intervals: lines with markers, and the target
    ax1, ax2 = many.axes
    sl = [ln for ln in ax2.get_lines() if ln.get_label().endswith(" SL")]
    assert len(sl) == 3 and all(len(ln.get_xdata()) == 9 for ln in sl)
    assert all(ln.get_marker() == "o" and ln.get_linestyle() == "-" for ln in sl)
    assert any(ln.get_label().startswith("target 80%") for ln in ax2.get_lines())
    # one interval: bars, not dots
    assert len(one.axes[1].patches) == 3 and len(one.axes[0].patches) == 6
