"""``acd report calls`` (issue 15, "Done when" #1): a simulated stretch of a
day played by the PBX simulator against the real engine (SQLite), then the
report's CSV checked figure by figure against values computed here, by
hand, from the rows the engine stored; and the engine's live statistics of
that day agree with the report.  The engine writes that day's queue_log
(file and realtime table), read back with the reader written from
Asterisk's documented format; its counts agree with the report's.

The hand computation below reads the database with ``sqlite3`` and does its
own arithmetic (docs/reports.md gives the definitions); it never calls
:mod:`acd.core.stats`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import itertools
import math
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import acd.loadsim.live as live_mod
from acd.cli import main
from acd.loadsim.live import run_live_sync
from acd.loadsim.scenario import parse_scenario
from acd.reports.calls import columns_for, report_rows
from acd.reports.queue_log_read import Entry, parse_row, parse_text
from acd.runtime.queue_log_wiring import QueueLogConfig
from acd.runtime.settings import StatsConfig

UTC = dt.UTC
IV = 900.0  # 15-minute intervals
SHORT = 5.0  # short abandons: below 5 s
SL = {"vip": (10.0, 0.9), "standard": (20.0, 0.8)}

ROUTING = """\
classes:
  vip:      {sl_target: 0.9, sl_seconds: 10}
  standard: {sl_target: 0.8, sl_seconds: 20}
default_class: standard
class_rules:
  - when: {vip_level: {min: 1}}
    class: vip
queues:
  billing:
    skill: billing
    escalate:
      - {after: 40, overflow: tech}
    ring_timeout_s: 8
  tech:
    skill: tech
    ring_timeout_s: 8
"""

FLOW = """\
flow: report-day
version: "1"
start: menu
nodes:
  menu:
    type: menu
    prompt: acd/basic-menu
    timeout: 5
    retries: 0
    on_fail: billing
    options: {"1": billing, "2": tech, "3": balance, "8": operator}
  billing: {type: queue, queue: billing, announce_every: 0}
  tech: {type: queue, queue: tech, announce_every: 0}
  balance: {type: hangup, prompt: acd/goodbye}
  operator: {type: transfer, number: "10086"}
"""

SCENARIO = """\
name: report-day
start: "09:50"
day: 2026-11-23
interval_minutes: 15
arrivals: {calls_per_hour: 150}
calls: 64
callers: {pool: 5000, vip: {share: 0.3, levels: {1: 1.0}}}
ivr:
  flow: flow.yaml
  keys: {menu: {"1": 0.45, "2": 0.3, "3": 0.13, "8": 0.12}}
handle: {dist: exponential, mean: 100}
patience: {dist: exponential, mean: 45}
wrap_up_s: 12
ring_no_answer: 0.12
rona_pause_s: 25
agents:
  counts: {billing: 2, tech: 2}
routing: routing.yaml
"""


# ------------------------------------------------------------------ reading back


def _t(v: str | None) -> float | None:
    if v is None:
        return None
    d = dt.datetime.fromisoformat(v)
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def read_db(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        recs = [dict(r) for r in con.execute("SELECT * FROM call_records")]
        evs = [dict(r) for r in con.execute("SELECT * FROM agent_events ORDER BY id")]
    finally:
        con.close()
    for r in recs:
        for k in ("started_at", "ended_at", "queued_at", "answered_at"):
            r[k] = _t(r[k])
    for e in evs:
        e["at"] = _t(e["at"])
    return recs, evs


def label(k: int) -> str:
    return dt.datetime.fromtimestamp(k * IV, UTC).isoformat(timespec="minutes")


# ------------------------------------------------------------------ by hand


def wraps_of(recs: list[dict[str, Any]], evs: list[dict[str, Any]]) -> dict[str, float]:
    """call id -> the wrap-up after it: from the agent's change to wrap_up at
    the call's end to the agent's next change (none yet: not counted)."""
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in evs:
        by_agent[e["agent_id"]].append(e)
    out: dict[str, float] = {}
    for r in recs:
        if r["outcome"] != "answered":
            continue
        seq = by_agent[r["agent_id"]]
        for i, e in enumerate(seq):
            if e["new_state"] == "wrap_up" and abs(e["at"] - r["ended_at"]) < 1e-5:
                out[r["call_id"]] = seq[i + 1]["at"] - e["at"] if i + 1 < len(seq) else 0.0
                break
        else:
            raise AssertionError(f"no wrap-up found after call {r['call_id']}")
    return out


def call_figures(calls: list[dict[str, Any]], wraps: dict[str, float]) -> dict[str, Any]:
    offered = len(calls)
    answered = [c for c in calls if c["outcome"] == "answered"]
    abandoned = [c for c in calls if c["outcome"] == "abandoned"]
    short = [c for c in abandoned if c["wait_s"] < SHORT]
    long_ab = len(abandoned) - len(short)
    other = offered - len(answered) - len(abandoned)
    within = sum(1 for c in answered if c["wait_s"] <= SL[c["customer_class"]][0])
    sl_offered = offered - len(short)
    classes = {c["customer_class"] for c in calls}
    thr, target = SL[classes.pop()] if len(classes) == 1 else (None, None)
    talk = sum(c["talk_s"] for c in answered)
    wrap = sum(wraps[c["call_id"]] for c in answered)
    wait_ans = sum(c["wait_s"] for c in answered)
    sl = within / sl_offered if sl_offered else None
    return {
        "offered": offered, "answered": len(answered), "abandoned": long_ab,
        "short_abandoned": len(short), "other": other,
        "transferred": sum(1 for c in calls if c["first_queue"] not in (None, c["queue"])),
        "sl_offered": sl_offered, "answered_within_sl": within, "threshold_s": thr,
        "target": target, "service_level": sl,
        "sl_met": None if sl is None or target is None else sl >= target,
        "sl_answered_only": within / len(answered) if answered else None,
        "asa_s": wait_ans / len(answered) if answered else None,
        "abandon_rate": long_ab / sl_offered if sl_offered else None,
        "aht_s": (talk + wrap) / len(answered) if answered else None,
        "mean_talk_s": talk / len(answered) if answered else None,
        "longest_wait_s": max(c["wait_s"] for c in calls) if calls else None,
        "answered_wait_sum_s": wait_ans, "talk_sum_s": talk, "wrap_sum_s": wrap,
    }


def expected_calls(recs: list[dict[str, Any]], wraps: dict[str, float], by: str
                   ) -> dict[tuple[str, str], dict[str, Any]]:
    queued = [r for r in recs if r["queue"] is not None]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in queued:
        g = "all" if by == "total" else r["queue"] if by == "queue" else r["customer_class"]
        k = math.floor(r["queued_at"] / IV)
        groups[(label(k), g)].append(r)
        groups[("all", g)].append(r)
    return {key: call_figures(calls, wraps) for key, calls in groups.items()}


_STATE_COLS = {"ready": "ready_s", "reserved": "reserved_s", "on_call": "on_call_s",
               "wrap_up": "wrap_up_s", "paused": "paused_s"}


def expected_agents(recs: list[dict[str, Any]], evs: list[dict[str, Any]],
                    wraps: dict[str, float], end: float) -> dict[tuple[str, str], dict[str, Any]]:
    acc: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(k: str, agent: str, col: str, v: float) -> None:
        for key in ((k, agent), ("all", agent), ("all", "all")):
            acc[key][col] += v

    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in evs:
        by_agent[e["agent_id"]].append(e)
    for agent, seq in by_agent.items():
        for i, e in enumerate(seq):
            state = e["new_state"]
            a = e["at"]
            b = seq[i + 1]["at"] if i + 1 < len(seq) else end
            if state == "logged_out":
                continue
            while a < b:  # split at the 15-minute boundaries
                k = math.floor(a / IV)
                seg = min(b, (k + 1) * IV)
                add(label(k), agent, _STATE_COLS[state], seg - a)
                a = seg
    for r in recs:
        if r["outcome"] == "answered":
            k = label(math.floor(r["queued_at"] / IV))
            add(k, r["agent_id"], "answered", 1)
            add(k, r["agent_id"], "talk_s", r["talk_s"])
            add(k, r["agent_id"], "wrap_s", wraps[r["call_id"]])
    out = {}
    for key, t in acc.items():
        busy = t["reserved_s"] + t["on_call_s"] + t["wrap_up_s"]
        avail = t["ready_s"] + busy
        logged = avail + t["paused_s"]
        n = int(t["answered"])
        out[key] = {
            "answered": n, "talk_s": t["talk_s"], "wrap_s": t["wrap_s"],
            "aht_s": (t["talk_s"] + t["wrap_s"]) / n if n else None,
            "logged_in_s": logged, "paused_s": t["paused_s"], "ready_s": t["ready_s"],
            "reserved_s": t["reserved_s"], "on_call_s": t["on_call_s"],
            "wrap_up_s": t["wrap_up_s"], "busy_s": busy, "available_s": avail,
            "occupancy": busy / avail if avail else None,
            "utilisation": busy / logged if logged else None,
        }
    return out


def expected_ivr(recs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for r in recs:
        if r["queue"] is not None:
            continue
        node = r["ivr_path"].split(">")[-1] if r["ivr_path"] else ""
        reason = r["ivr_end"] or ""
        reason = "transfer" if reason.startswith("transfer:") else reason
        for k in (label(math.floor(r["started_at"] / IV)), "all"):
            a = acc[(k, node, reason)]
            a[0] += 1
            a[1] += reason == "transfer"
            a[2] += r["ended_at"] - r["started_at"]
    return {key: {"calls": int(a[0]), "transferred": int(a[1]), "ivr_sum_s": a[2],
                  "mean_ivr_s": a[2] / a[0]} for key, a in acc.items()}


# ------------------------------------------------------------------ comparing


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def same(got: str, want: Any, what: str) -> None:
    if want is None:
        assert got == "", f"{what}: {got!r}, expected empty"
    elif isinstance(want, bool):
        assert got == ("true" if want else "false"), f"{what}: {got!r} != {want}"
    elif isinstance(want, int | str):
        assert got == str(want), f"{what}: {got!r} != {want}"
    else:
        assert float(got) == pytest.approx(want, abs=2e-3, rel=1e-6), f"{what}: {got} != {want}"


def check(rows: list[dict[str, str]], expected: dict[Any, dict[str, Any]],
          key_cols: tuple[str, ...]) -> None:
    got = {tuple(r[c] for c in key_cols): r for r in rows}
    assert set(got) == set(expected), (sorted(set(got) ^ set(expected)))
    for key, want in expected.items():
        for col, v in want.items():
            same(got[key][col], v, f"{key} {col}")


# ------------------------------------------------------------------ the queue_log


_ENDS = ("COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT")


@dataclasses.dataclass
class QueueLogDay:
    """What the queue_log lines alone say (counted here, not by the report)."""

    events: Counter[tuple[str, str]]  # (queue, event) -> lines
    overflow_out: Counter[str]  # queue -> EXITWITHTIMEOUT followed by an ENTERQUEUE
    overflow_in: Counter[str]  # queue -> ENTERQUEUE after an EXITWITHTIMEOUT
    connects: Counter[str]  # agent id -> CONNECT
    calltime: dict[str, int]  # call id -> COMPLETE* talk time (whole seconds)
    agent_of: dict[str, str]  # call id -> the agent of its COMPLETE*


def read_queue_log(entries: list[Entry]) -> QueueLogDay:
    by_call: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.callid not in ("NONE", "MANAGER"):
            by_call[e.callid].append(e)
    day = QueueLogDay(Counter((e.queue, e.event) for e in entries), Counter(), Counter(),
                      Counter(), {}, {})
    for cid, lines in by_call.items():
        evs = [e.event for e in lines]
        assert evs[0] == "ENTERQUEUE" and evs[-1] in _ENDS, (cid, evs)
        assert sum(ev in _ENDS for ev in evs) == evs.count("ENTERQUEUE"), (cid, evs)
        for prev, e in itertools.pairwise(lines):
            if e.event == "ENTERQUEUE":
                assert prev.event == "EXITWITHTIMEOUT", (cid, evs)
                day.overflow_out[prev.queue] += 1
                day.overflow_in[e.queue] += 1
        for e in lines:
            assert e.agent.startswith("Agent/") or e.agent == "NONE", e
            if e.event == "CONNECT":
                day.connects[e.agent.removeprefix("Agent/")] += 1
            elif e.event in ("COMPLETECALLER", "COMPLETEAGENT"):
                t = e["calltime_s"]
                assert isinstance(t, int)
                day.calltime[cid] = t
                day.agent_of[cid] = e.agent.removeprefix("Agent/")
    return day


def read_queue_log_table(db: Path) -> list[Entry]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM queue_log ORDER BY id")]
    finally:
        con.close()
    for r in rows:
        r["time"] = _t(r["time"])
    return [parse_row(r, i, "queue_log table") for i, r in enumerate(rows, 1)]


def check_queue_log(entries: list[Entry], recs: list[dict[str, Any]],
                    queue_rows: list[dict[str, str]], agent_rows: list[dict[str, str]]
                    ) -> None:
    """The report's whole-period figures per queue and per agent against the
    queue_log's counts.  The report counts a call once, in the queue it ended
    in; the queue_log has an ENTERQUEUE per queue entered (an overflow leaves
    the first with EXITWITHTIMEOUT): offered = ENTERQUEUE less the overflows
    out.  Short abandons are apart in the report, one ABANDON in the log."""
    ql = read_queue_log(entries)
    ev = ql.events
    queues = {r["group"]: r for r in queue_rows if r["interval"] == "all"}
    assert set(queues) == {q for q, _ in ev if q != "NONE"}
    for q, row in queues.items():
        out = ql.overflow_out[q]
        assert int(row["offered"]) == ev[(q, "ENTERQUEUE")] - out, q
        assert int(row["transferred"]) == ql.overflow_in[q], q
        assert int(row["answered"]) == ev[(q, "CONNECT")] == (
            ev[(q, "COMPLETECALLER")] + ev[(q, "COMPLETEAGENT")]), q
        assert int(row["abandoned"]) + int(row["short_abandoned"]) == ev[(q, "ABANDON")], q
        assert int(row["other"]) == ev[(q, "EXITWITHTIMEOUT")] - out, q
    agents = {r["agent"]: r for r in agent_rows if r["interval"] == "all"}
    assert set(ql.connects) <= set(agents) - {"all"}
    for a, row in agents.items():
        n = sum(ql.connects.values()) if a == "all" else ql.connects[a]
        assert int(row["answered"]) == n, a
        talk = sum(t for cid, t in ql.calltime.items() if a in ("all", ql.agent_of[cid]))
        # whole epoch seconds apart: each call's within a second of the record's
        assert abs(float(row["talk_s"]) - talk) < max(n, 1), (a, row["talk_s"], talk)
    # each answered record: its agent and talk time in the log (to the second)
    answered = {r["call_id"]: r for r in recs if r["outcome"] == "answered"}
    assert set(ql.calltime) == set(answered)
    for cid, r in answered.items():
        assert ql.agent_of[cid] == r["agent_id"], cid
        assert abs(ql.calltime[cid] - r["talk_s"]) < 1.0 + 1e-6, (cid, ql.calltime[cid], r)
    log_talk = sum(ql.calltime.values())
    rec_talk = sum(r["talk_s"] for r in answered.values())
    assert abs(log_talk - rec_talk) < len(answered)
    assert sum(ql.overflow_out.values()) == sum(1 for r in recs if r["first_queue"]) > 0


# ------------------------------------------------------------------ the day


@pytest.mark.slow
def test_report_calls_of_a_simulated_day_match_hand_counts_and_live_stats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "routing.yaml").write_text(ROUTING, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    sc = parse_scenario(SCENARIO, str(tmp_path / "day.yaml"), tmp_path)
    engines: list[Any] = []
    ql_path = tmp_path / "queue_log"
    original = live_mod.live_engine  # type: ignore[attr-defined]

    def keep(config: Any, *args: Any) -> Any:
        # the engine's live statistics count short abandons as the report will
        # and align on UTC, as the report run below with --tz UTC; the engine
        # writes the day's queue_log, to a file and the realtime table
        config = dataclasses.replace(config, statistics=StatsConfig(short_abandon_s=SHORT,
                                                                    tz="UTC"),
                                     queue_log=QueueLogConfig(file=ql_path, table=True))
        engine = original(config, *args)
        engines.append(engine)
        return engine

    monkeypatch.setattr(live_mod, "live_engine", keep)
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    res = run_live_sync(sc, seed=3, speed=150, db_dir=db_dir, drain_timeout_s=30)
    assert res.unfinished == 0 and res.engine_errors == 0
    (engine,) = engines
    db = db_dir / "live.db"
    recs, evs = read_db(db)
    assert len(recs) == res.placed == 64
    # the report's end: the interval boundary after the day's last row (the
    # report widens --until to a whole interval; agents still logged in count
    # up to it, in the report, the hand count and the live figures alike)
    end = math.ceil((max([r["ended_at"] for r in recs] + [e["at"] for e in evs]) + 1.0) / IV) * IV

    # the day has what the report must count (else the test proves little)
    queued = [r for r in recs if r["queue"] is not None]
    outcomes: dict[str, int] = defaultdict(int)
    for r in recs:
        outcomes[r["outcome"]] += 1
    assert outcomes["answered"] >= 10 and outcomes["ivr"] >= 3
    assert any(r["outcome"] == "abandoned" and r["wait_s"] < SHORT for r in recs), \
        "no short abandon"
    assert any(r["outcome"] == "abandoned" and r["wait_s"] >= SHORT for r in recs)
    assert any(r["first_queue"] for r in queued), "no overflow"
    assert any((r["ivr_end"] or "").startswith("transfer:") for r in recs), "no IVR transfer"
    assert {r["customer_class"] for r in queued} == {"vip", "standard"}
    assert len({math.floor(r["queued_at"] / IV) for r in queued}) >= 2
    assert any(r["answered_at"] is not None
               and math.floor(r["queued_at"] / IV) != math.floor(r["ended_at"] / IV)
               for r in queued), "no call across an interval boundary"
    assert any(e["new_state"] == "paused" and e["old_state"] == "reserved" for e in evs)
    assert all(r["queued_at"] is not None for r in queued)

    config = tmp_path / "acd.yaml"
    config.write_text(f"database: sqlite+aiosqlite:///{db}\nflow: flow.yaml\n"
                      "routing: routing.yaml\nstatistics: {short_abandon_s: 5}\n",
                      encoding="utf-8")
    until = dt.datetime.fromtimestamp(end, UTC).isoformat()
    wraps = wraps_of(recs, evs)
    assert sum(wraps.values()) > 0

    def run(by: str) -> list[dict[str, str]]:
        result = CliRunner().invoke(main, [
            "report", "calls", "--config", str(config), "--since", "2026-11-23",
            "--until", until, "--tz", "UTC", "--interval", "15m", "--by", by, "--csv", "-"])
        assert result.exit_code == 0, result.output
        rows = parse_csv(result.stdout)
        assert tuple(rows[0]) == columns_for(by)  # type: ignore[arg-type]
        return rows

    # every figure against the hand count
    by_rows: dict[str, list[dict[str, str]]] = {}
    for by in ("total", "queue", "class"):
        rows = by_rows[by] = run(by)
        check(rows, expected_calls(recs, wraps, by), ("interval", "group"))
    agent_rows = run("agent")
    check(agent_rows, expected_agents(recs, evs, wraps, end), ("interval", "agent"))

    # the queue_log of that day, read as Asterisk's format says, counts the same
    entries = parse_text(ql_path.read_text(encoding="utf-8"), str(ql_path))
    assert engine.queue_log.file.errors == 0 and engine.queue_log.file.lost == 0
    table = read_queue_log_table(db)
    assert [(e.callid, e.queue, e.agent, e.event, e.data) for e in table] == \
        [(e.callid, e.queue, e.agent, e.event, e.data) for e in entries]
    assert all(abs(a.time - b.time) <= 1 for a, b in zip(table, entries, strict=True))
    check_queue_log(entries, recs, by_rows["queue"], agent_rows)
    ivr_rows = run("ivr")
    check(ivr_rows, expected_ivr(recs), ("interval", "node", "reason"))
    assert {r["reason"] for r in ivr_rows} >= {"transfer"}

    # the live statistics of the same day say the same
    for by in ("total", "queue", "class", "agent", "ivr"):
        live = report_rows(engine.statistics, by, UTC, now=end)  # type: ignore[arg-type]
        cols = columns_for(by)  # type: ignore[arg-type]
        rows = run(by)
        assert len(live) == len(rows), by
        for lr, r in zip(live, rows, strict=True):
            for c in cols:
                same(r[c], lr[c], f"live {by} {lr.get('interval')} {c}")


# ------------------------------------------------------------------ the parts


OLD_CALL_RECORDS = """CREATE TABLE call_records (
    call_id VARCHAR(64) PRIMARY KEY, caller VARCHAR(64) NOT NULL,
    caller_name VARCHAR(128) NOT NULL, server VARCHAR(64) NOT NULL,
    started_at DATETIME NOT NULL, ended_at DATETIME NOT NULL, outcome VARCHAR(16) NOT NULL,
    ivr_path VARCHAR(1024) NOT NULL, queue VARCHAR(64), wait_s FLOAT, agent_id VARCHAR(64),
    talk_s FLOAT, offers INTEGER NOT NULL, customer_class VARCHAR(64) NOT NULL,
    priority INTEGER NOT NULL, first_queue VARCHAR(64))"""


def test_an_older_database_gets_the_new_columns_and_its_rows_still_count(
        tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute(OLD_CALL_RECORDS)
    con.execute("INSERT INTO call_records VALUES ('c1', '1380', '', 'pbx1', "
                "'2026-11-23 10:01:00.000000', '2026-11-23 10:03:00.000000', 'answered', "
                "'menu>billing', 'billing', 12.0, 'a1', 100.0, 1, '', 0, NULL)")
    con.commit()
    con.close()
    result = CliRunner().invoke(main, [
        "report", "calls", "--db", f"sqlite+aiosqlite:///{db}", "--since", "2026-11-23",
        "--until", "2026-11-24", "--tz", "UTC", "--by", "queue", "--csv", "-"])
    assert result.exit_code == 0, result.output
    rows = parse_csv(result.stdout)
    # no queued_at: the call counts in the interval it started in
    assert [(r["interval"], r["group"], r["offered"], r["asa_s"]) for r in rows] == [
        ("2026-11-23T10:00+00:00", "billing", "1", "12"), ("all", "billing", "1", "12")]
    con = sqlite3.connect(db)
    cols = {r[1] for r in con.execute("PRAGMA table_info(call_records)")}
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert {"queued_at", "answered_at", "ivr_end"} <= cols
    assert "agent_events" in tables


def test_agent_event_rows_are_fitted_and_round_trip_the_spool() -> None:
    from acd.adapters.rows import AgentEventRow, fit_item, from_json, kind, ref, to_json

    row = AgentEventRow("a1", 1_790_000_000.25, "ready", "paused", "lunch")
    assert (kind(row), ref(row)) == ("agent_event", "a1")
    assert fit_item(row) == (row, [])
    assert from_json(to_json(row)) == row
    long = AgentEventRow("a1", 1.0, "ready", "paused", "x" * 500)
    fitted, changed = fit_item(long)
    assert changed == ["reason"] and isinstance(fitted, AgentEventRow)
    assert len(fitted.reason) == 128


async def test_the_record_writer_logs_agent_events_once(tmp_path: Path) -> None:
    from acd.adapters.rows import AgentEventRow
    from acd.adapters.storage import Database

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}")
    await db.create()
    try:
        rows = [AgentEventRow("a1", 1000.0 + i, "ready", "on_call", "") for i in range(3)]
        await db.write_items(rows)
        # read back from a spool after a crash: the rows written already are stale
        assert await db.stale([*rows, AgentEventRow("a1", 2000.0, "on_call", "wrap_up", "")]) \
            == {0, 1, 2}
    finally:
        await db.dispose()


@pytest.mark.parametrize(("args", "words"), [
    (["--interval", "7m"], "'7m' is not an interval"),
    (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    (["--since", "yesterday"], "is not a day like 2026-11-23"),
    (["--since", "2026-11-24", "--until", "2026-11-23"], "the period is empty"),
    (["--short-abandon", "-1"], "must be within 0..3600"),
    (["--by", "team"], "'team' is not one of"),
])
def test_bad_options_say_what_is_wrong(tmp_path: Path, args: list[str], words: str) -> None:
    result = CliRunner().invoke(main, ["report", "calls", "--db",
                                       f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", *args])
    assert result.exit_code == 2
    assert words in result.output


def test_table_and_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute(OLD_CALL_RECORDS)
    for i, (outcome, wait) in enumerate((("answered", 5.0), ("abandoned", 40.0))):
        con.execute("INSERT INTO call_records VALUES (?, '1380', '', 'pbx1', ?, ?, ?, "
                    "'menu', 'billing', ?, ?, ?, 1, 'standard', 0, NULL)",
                    (f"c{i}", f"2026-11-23 10:0{i}:00", f"2026-11-23 10:0{i + 2}:00", outcome,
                     wait, "a1" if outcome == "answered" else None,
                     60.0 if outcome == "answered" else None))
    con.commit()
    con.close()
    base = ["report", "calls", "--db", f"sqlite+aiosqlite:///{db}", "--since", "2026-11-23",
            "--until", "2026-11-24", "--tz", "UTC"]
    for by in ("queue", "agent", "ivr"):
        png = tmp_path / f"{by}.png"
        result = CliRunner().invoke(main, [*base, "--by", by, "--png", str(png)])
        assert result.exit_code == 0, result.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = CliRunner().invoke(main, [*base, "--interval", "day"])
    assert result.exit_code == 0, result.output
    assert "Calls by queue, day intervals, 2026-11-23 00:00 - 2026-11-25 00:00" in result.output
    rows = parse_csv(CliRunner().invoke(main, [*base, "--interval", "day", "--csv", "-"]).output)
    # SL: 1 of 2 within 20 s (the default class's service level: no configuration)
    assert [(r["interval"], r["service_level"], r["target"]) for r in rows] == [
        ("2026-11-23T00:00+00:00", "0.5", "0.8"), ("all", "0.5", "0.8")]


@pytest.mark.parametrize(("block", "words"), [
    ("{tz: Mars/Olympus}", "statistics.tz: unknown time zone 'Mars/Olympus'"),
    ("{interval_s: 420}", "statistics.interval_s: 420 does not divide a day"),
    ("{short_abandon_s: -2}", "statistics.short_abandon_s"),
    ("{short_abandons: 5}", "unknown key"),
])
def test_statistics_settings_are_checked(tmp_path: Path, block: str, words: str) -> None:
    from acd.runtime.settings import ConfigError, load_config

    (tmp_path / "routing.yaml").write_text(ROUTING, encoding="utf-8")
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    cfg = tmp_path / "acd.yaml"
    cfg.write_text(f"flow: flow.yaml\nrouting: routing.yaml\nstatistics: {block}\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert words in str(err.value) and "acd.yaml:3:" in str(err.value)
    cfg.write_text("flow: flow.yaml\nrouting: routing.yaml\n"
                   "statistics: {short_abandon_s: 5, tz: Asia/Shanghai, interval_s: 1800}\n",
                   encoding="utf-8")
    assert load_config(cfg).statistics == StatsConfig(5.0, "Asia/Shanghai", 1800.0)


# -------------------------------------------- reading: order, seeds, bad rows


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _call(call_id: str, queued: str, outcome: str = "answered") -> Any:
    from acd.core.model import CallRecord, Outcome

    t = _utc(queued)
    answered = outcome == "answered"
    return CallRecord(
        call_id=call_id, caller="13800000000", caller_name="", started_at=t - 5,
        ended_at=t + 60, outcome=Outcome(outcome), ivr_path=("menu",), queue="billing",
        queued_at=t, wait_s=5.0 if answered else 60.0, agent_id="a1" if answered else None,
        answered_at=t + 5 if answered else None, talk_s=55.0 if answered else None,
        offers=1, server="pbx1", customer_class="standard")


def _database(path: Path, items: list[Any]) -> str:
    """A database of this version at ``path`` holding ``items``; its URL."""
    import asyncio

    from acd.adapters.storage import Database

    url = f"sqlite+aiosqlite:///{path}"

    async def make() -> None:
        db = Database(url)
        await db.create()
        try:
            await db.write_items(items)
        finally:
            await db.dispose()

    asyncio.run(make())
    return url


def _report(url: str, *args: str) -> Any:
    result = CliRunner().invoke(main, ["report", "calls", "--db", url, "--tz", "UTC",
                                       "--csv", "-", *args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def test_partial_intervals_are_widened_to_whole_ones_and_said_so(tmp_path: Path) -> None:
    # Monday 23, Wednesday 25 and Friday 27 November 2026
    url = _database(tmp_path / "w.db", [_call("mon", "2026-11-23 10:00"),
                                        _call("wed", "2026-11-25 10:00"),
                                        _call("fri", "2026-11-27 10:00")])
    # --since a Wednesday: the week row is labelled Monday, and counts from Monday
    res = _report(url, "--interval", "week", "--by", "total", "--since", "2026-11-25",
                  "--until", "2026-11-25 12:00")
    rows = parse_csv(res.stdout)
    assert [(r["interval"], r["start"], r["end"], r["offered"]) for r in rows] == [
        ("2026-11-23T00:00+00:00", "2026-11-23T00:00+00:00", "2026-11-30T00:00+00:00", "3"),
        ("all", "2026-11-23T00:00+00:00", "2026-11-30T00:00+00:00", "3")]
    assert ("note: the period is widened to whole week intervals: 2026-11-23 00:00 - "
            "2026-11-30 00:00 (--since rounded down, --until rounded up)") in res.stderr
    # whole intervals already: as asked, nothing said
    res = _report(url, "--interval", "day", "--by", "total", "--since", "2026-11-25",
                  "--until", "2026-11-25")
    assert [(r["interval"], r["offered"]) for r in parse_csv(res.stdout)] == [
        ("2026-11-25T00:00+00:00", "1"), ("all", "1")]
    assert "widened" not in res.stderr
    # 15 minutes: 10:07 down to 10:00, 10:20 up to 10:30
    res = _report(url, "--interval", "15m", "--by", "total", "--since", "2026-11-27 10:07",
                  "--until", "2026-11-27 10:20")
    assert [r["interval"] for r in parse_csv(res.stdout)] == ["2026-11-27T10:00+00:00", "all"]
    assert "2026-11-27 10:00 - 2026-11-27 10:30" in res.stderr


def test_rows_this_version_cannot_read_are_counted_and_named_once(tmp_path: Path) -> None:
    from acd.adapters.rows import AgentEventRow

    calls = [_call(f"c{i}", f"2026-11-23 10:0{i}") for i in range(8)]
    url = _database(tmp_path / "bad.db", [
        *calls, AgentEventRow("a1", _utc("2026-11-23 10:00"), "logged_out", "ready", ""),
        AgentEventRow("a1", _utc("2026-11-23 10:01"), "ready", "on_break", ""),
        AgentEventRow("a1", _utc("2026-11-23 10:02"), "on_break", "ready", "")])
    con = sqlite3.connect(tmp_path / "bad.db")
    con.execute("UPDATE call_records SET outcome = 'callback_later' WHERE call_id != 'c0'")
    con.commit()
    ids = [r[0] for r in con.execute("SELECT id FROM agent_events ORDER BY id")]
    con.close()
    res = _report(url, "--by", "agent", "--since", "2026-11-23 10:00",
                  "--until", "2026-11-23 10:15")
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: skipped 7 call records with an outcome this version does not know (call "
        "ids c1, c2, c3, c4, c5, ...) and 2 agent events with a state this version does not "
        f"know (agent_events ids {ids[1]}, {ids[2]}): they count nowhere in this report"]
    # the rest still counts: c0, and a1 ready from 10:00 (the unknown changes skipped)
    (a1,) = [r for r in parse_csv(res.stdout) if r["interval"] == "all" and r["agent"] == "a1"]
    assert (a1["answered"], a1["ready_s"]) == ("1", "900")


def test_agent_events_replay_in_time_order_and_seed_from_the_last_in_time(
        tmp_path: Path) -> None:
    from acd.adapters.rows import AgentEventRow

    ev = AgentEventRow
    url = _database(tmp_path / "ev.db", [
        # a1: written out of time order (ids 1, 2 for 10:05, 10:00)
        ev("a1", _utc("2026-11-23 10:05"), "ready", "paused", "lunch"),
        ev("a1", _utc("2026-11-23 10:00"), "logged_out", "ready", ""),
        # a2, before the report: by id the last is the pause, by time the ready
        ev("a2", _utc("2026-11-23 09:30"), "paused", "ready", ""),
        ev("a2", _utc("2026-11-23 09:00"), "ready", "paused", ""),
        # a3: its last change is older than the lookback: its state is unknown
        ev("a3", _utc("2026-10-01 09:00"), "logged_out", "ready", "")])
    res = _report(url, "--by", "agent", "--since", "2026-11-23 10:00",
                  "--until", "2026-11-23 10:15")
    got = {r["agent"]: (r["ready_s"], r["paused_s"]) for r in parse_csv(res.stdout)
           if r["interval"] == "all"}
    assert got == {"a1": ("300", "600"), "a2": ("900", "0"), "all": ("1200", "600")}


def test_an_existing_database_gets_the_new_index(tmp_path: Path) -> None:
    url = _database(tmp_path / "ix.db", [])
    con = sqlite3.connect(tmp_path / "ix.db")
    con.execute("DROP INDEX ix_agent_events_agent_id_at")
    con.commit()
    con.close()
    _database(tmp_path / "ix.db", [])  # the next start
    con = sqlite3.connect(tmp_path / "ix.db")
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = "
                      "'ix_agent_events_agent_id_at'").fetchone()
    con.close()
    assert sql is not None and "agent_id, at" in sql[0]
    assert url


async def test_two_processes_upgrading_at_once_both_start() -> None:
    """PostgreSQL: a second process adds the same missing column while the
    first one's ALTER TABLE is not committed yet; it waits for the lock, gets
    'column already exists', sees the column and carries on."""
    import asyncio
    import uuid

    from conftest import PG_URL
    from sqlalchemy import event, text
    from sqlalchemy.exc import SQLAlchemyError

    from acd.adapters.schema import add_missing_columns
    from acd.adapters.storage import Database

    schema = f"acd_test_{uuid.uuid4().hex[:12]}"

    def database() -> Database:
        d = Database(PG_URL)

        @event.listens_for(d.engine.sync_engine, "connect")
        def _search_path(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f'SET search_path TO "{schema}"')
            cur.close()
        return d

    first, second, watch = database(), database(), database()
    try:
        try:
            async with watch.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except (OSError, SQLAlchemyError) as exc:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
        await first.create()
        async with first.engine.begin() as conn:  # as an older version made it
            await conn.execute(text("ALTER TABLE call_records DROP COLUMN ivr_end"))
        async with first.engine.begin() as conn:
            assert await conn.run_sync(add_missing_columns) == ["call_records.ivr_end"]
            other = asyncio.create_task(second.create())  # blocks on our lock
            async with asyncio.timeout(10):
                while True:
                    async with watch.engine.connect() as w:
                        waiting = (await w.execute(text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE 'ALTER TABLE%ivr_end%'"))).scalar()
                    if waiting:
                        break
                    assert not other.done(), other
                    await asyncio.sleep(0.02)
        await asyncio.wait_for(other, 10)  # committed: the second carries on
        async with second.engine.connect() as conn:
            cols = (await conn.execute(text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                f"'{schema}' AND table_name = 'call_records' AND column_name = 'ivr_end'"
            ))).scalar()
        assert cols == 1
    finally:
        for d in (first, second):
            await d.dispose()
        try:
            async with watch.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await watch.dispose()
