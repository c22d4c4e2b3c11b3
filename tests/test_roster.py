"""Rosters (acd.planning.roster) and their CSV files (acd.loaders.roster_csv):
availability per interval, validation, the round trip through the Roster CSV,
and the roster a period's agent state records show."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from acd.core.center import ContactCenter, agents_for_queues
from acd.core.model import (
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentReady,
    AgentStateChanged,
    CallerGone,
    CallQueued,
    CallStarted,
    ConnectCall,
    ConversationEnded,
    CoreConfig,
    OfferAnswered,
    OfferFailed,
    TimerFired,
)
from acd.core.policy import simple_policy
from acd.loaders.localtime import parse_local
from acd.loaders.roster_csv import (
    RosterFileError,
    load_roster,
    parse_roster,
    parse_states,
    write_roster,
)
from acd.loaders.textfile import TextFileError
from acd.planning.roster import (
    Activity,
    Roster,
    RosterError,
    Shift,
    StateRow,
    is_rona_reason,
    roster_from_states,
)

D = dt.datetime


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2026-11-{text}")


# ------------------------------------------------------------------ Roster


def test_scheduled_averages_agents_over_each_interval() -> None:
    r = Roster((
        Shift("a1", t("02 08:00"), t("02 10:00"), (("billing", 5),),
              (Activity(t("02 08:30"), t("02 08:45"), "break"),)),
        Shift("a2", t("02 08:10"), t("02 09:00"), (("tech", 3),)),
    ))
    got = r.scheduled(t("02 08:00"), t("02 10:00"), 1800)
    assert [s for s, _ in got] == [t("02 08:00"), t("02 08:30"), t("02 09:00"),
                                   t("02 09:30")]
    # 08:00: a1 whole, a2 20 of 30 minutes; 08:30: a1 half (a 15-minute break), a2 whole
    assert [v for _, v in got] == pytest.approx([1 + 20 / 30, 0.5 + 1, 1, 1])
    assert [v for _, v in r.scheduled(t("02 08:00"), t("02 10:00"), 1800, "tech")] == \
        pytest.approx([20 / 30, 1, 0, 0])
    # a shift without skills counts for a skill only through agent_skills
    bare = Roster((Shift("a3", t("02 08:00"), t("02 09:00")),))
    assert [v for _, v in bare.scheduled(t("02 08:00"), t("02 09:00"), 3600, "tech")] == [0.0]
    assert [v for _, v in bare.scheduled(t("02 08:00"), t("02 09:00"), 3600, "tech",
                                         {"a3": ["tech"]})] == [1.0]
    assert r.agents() == ("a1", "a2") and r.span() == (t("02 08:00"), t("02 10:00"))
    assert Roster(()).span() is None


def test_a_shift_across_midnight_counts_on_both_days() -> None:
    r = Roster((Shift("n1", t("02 22:00"), t("03 06:00"),
                      activities=(Activity(t("03 01:00"), t("03 01:30"), "lunch"),)),))
    got = dict(r.scheduled(t("02 21:00"), t("03 07:00"), 3600))
    assert got[t("02 21:00")] == 0 and got[t("02 23:00")] == 1
    assert got[t("03 01:00")] == pytest.approx(0.5) and got[t("03 05:00")] == 1
    assert got[t("03 06:00")] == 0
    assert r.shifts[0].available_s == 7.5 * 3600


def test_roster_validation_names_the_lines() -> None:
    with pytest.raises(RosterError, match="not after the start") as e:
        Shift("a1", t("02 10:00"), t("02 09:00"), line=4)
    assert (e.value.line, e.value.column) == (4, "end")
    with pytest.raises(RosterError, match="lies outside a1's shift"):
        Shift("a1", t("02 08:00"), t("02 09:00"),
              activities=(Activity(t("02 08:50"), t("02 09:10"), "break", 7),))
    with pytest.raises(RosterError, match=r"lunch .* overlaps break .*\(line 5\)") as e:
        Shift("a1", t("02 08:00"), t("02 12:00"), activities=(
            Activity(t("02 10:00"), t("02 10:30"), "break", 5),
            Activity(t("02 10:15"), t("02 10:45"), "lunch", 6)))
    assert e.value.line == 6
    with pytest.raises(RosterError, match=r"overlaps the shift .* on line 2") as e:
        Roster((Shift("a1", t("02 08:00"), t("02 16:00"), line=2),
                Shift("a1", t("02 15:00"), t("02 20:00"), line=9)))
    assert e.value.line == 9
    # another agent at the same time, and the same agent back to back: fine
    Roster((Shift("a1", t("02 08:00"), t("02 16:00")), Shift("a2", t("02 08:00"), t("02 16:00")),
            Shift("a1", t("02 16:00"), t("02 20:00"))))
    with pytest.raises(RosterError, match="names a shift"):
        Activity(t("02 08:00"), t("02 09:00"), "shift")
    with pytest.raises(RosterError, match="time zone"):
        Shift("a1", t("02 08:00").replace(tzinfo=dt.UTC), t("02 09:00"))


# ------------------------------------------------------------------ Roster CSV


ROSTER = """agent,start,end,activity,skills
a1,2026-11-02 22:00,2026-11-03 06:00,shift,billing=5;tech=3
a1,2026-11-03 01:00,2026-11-03 01:30,break,
a1,2026-11-03 03:10,2026-11-03 03:25,not_ready:coaching,
# a comment
a2,2026-11-03T08:00:30,2026-11-03 16:00,,tech:4
a2,2026-11-03 12:00,2026-11-03 12:45,lunch,
"""


def test_the_roster_csv_reads_and_writes_back_the_same() -> None:
    r = parse_roster(ROSTER, "r.csv")
    assert [(s.agent, s.start, s.end, s.skills, len(s.activities)) for s in r.shifts] == [
        ("a1", t("02 22:00"), t("03 06:00"), (("billing", 5), ("tech", 3)), 2),
        ("a2", D(2026, 11, 3, 8, 0, 30), t("03 16:00"), (("tech", 4),), 1)]
    assert [a.kind for a in r.shifts[0].activities] == ["break", "not_ready:coaching"]
    assert r.shifts[1].line == 6 and r.shifts[1].activities[0].line == 7
    assert parse_roster(write_roster(r), "again.csv") == r
    # odd names, seconds, microseconds, no skills: still the same
    odd = Roster((Shift('agent, "x"', D(2026, 1, 1, 23, 59, 59, 5), D(2026, 1, 2, 0, 30),
                        activities=(Activity(D(2026, 1, 2, 0, 0), D(2026, 1, 2, 0, 1),
                                             "brief, urgent"),)),))
    assert parse_roster(write_roster(odd)) == odd


def test_times_with_an_offset_are_converted_to_the_zone_given() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    assert parse_local("2026-11-02T21:58:12Z", paris) == D(2026, 11, 2, 22, 58, 12)
    assert parse_local("2026-07-02 21:58+00:00", paris) == D(2026, 7, 2, 23, 58)
    assert parse_local("2026-07-02 21:58", paris) == D(2026, 7, 2, 21, 58)  # naive: as is
    for bad in ("2026-11-02", "02/11/2026 10:00", "2026-11-02 25:00", "tomorrow"):
        with pytest.raises(ValueError):
            parse_local(bad)


def test_local_times_in_the_forms_exports_write() -> None:
    from datetime import UTC, timedelta, timezone

    plus8 = timezone(timedelta(hours=8))
    # milliseconds, the T form, offsets with and without minutes or colon
    assert parse_local("2026-11-02T08:00:05.123", plus8) == D(2026, 11, 2, 8, 0, 5, 123000)
    for text in ("2026-11-02T00:30+00", "2026-11-02 00:30+0000", "2026-11-02 01:30:00+01:00",
                 "2026-11-02T00:30:00.000Z"):
        assert parse_local(text, plus8) == D(2026, 11, 2, 8, 30), text
    assert parse_local("2026-11-02 08:30", UTC) == D(2026, 11, 2, 8, 30)
    for bad, why in (("2026-11-02", "has no time of day"),
                     ("2026-11-02 08", "is not a date and time"),
                     ("20261102T0800", "is not a date and time"),
                     ("2026-02-30 08:00", "day is out of range"),
                     ("2026-11-02 08:00+1", "is not a date and time")):
        with pytest.raises(ValueError, match=why):
            parse_local(bad, plus8)


@pytest.mark.parametrize(("text", "expected"), [
    ("agent,start,end\na1,2026-11-02 8:00,2026-11-02 16:00\n",
     "r.csv:2: start: '2026-11-02 8:00' is not a date and time"),
    ("agent,start,end\na1,2026-11-02 18:00,2026-11-02 16:00\n",
     "r.csv:2: end: 2026-11-02 16:00 is not after the start 2026-11-02 18:00"),
    ("agent,start,end\na1,2026-11-02 08:00,2026-11-02 16:00\n"
     "a1,2026-11-02 15:00,2026-11-02 20:00\n",
     "r.csv:3: start: a1's shift 2026-11-02 15:00 - 2026-11-02 20:00 overlaps the shift "
     "2026-11-02 08:00 - 2026-11-02 16:00 on line 2"),
    ("agent,start,end,activity\na1,2026-11-02 08:00,2026-11-02 16:00,shift\n"
     "a1,2026-11-02 17:00,2026-11-02 17:15,break\n",
     "r.csv:3: start: break 2026-11-02 17:00 - 2026-11-02 17:15 lies in no shift of a1 (its "
     "shifts: 2026-11-02 08:00 - 2026-11-02 16:00 line 2)"),
    ("agent,start,end,activity\na1,2026-11-02 08:00,2026-11-02 16:00,shift\n"
     "a1,2026-11-02 10:00,2026-11-02 10:30,break\na1,2026-11-02 10:20,2026-11-02 10:40,meeting\n",
     "r.csv:4: start: meeting 2026-11-02 10:20 - 2026-11-02 10:40 overlaps break "
     "2026-11-02 10:00 - 2026-11-02 10:30 (line 3)"),
    ("agent,start,end,activity,skills\na1,2026-11-02 08:00,2026-11-02 16:00,shift,billing\n",
     "r.csv:2: skills: entry 'billing' has no level"),
    ("agent,start,end,activity,skills\na1,2026-11-02 08:00,2026-11-02 16:00,shift,\n"
     "a1,2026-11-02 10:00,2026-11-02 10:30,break,tech=3\n",
     "r.csv:3: skills: only on shift rows"),
    ("agent,start,finish\n", "r.csv:1: header: unknown column(s) 'finish'; missing column(s) "
                             "end"),
    ("agent,start,ned,activity\n", "r.csv:1: header: unknown column(s) 'ned' (did you mean "
                                   "'end'?); missing column(s) end"),
    ("agent,start,end,team\n", "r.csv:1: header: unknown column(s) 'team'"),
    ("agent,start,end\n,2026-11-02 08:00,2026-11-02 16:00\n", "r.csv:2: agent: empty"),
    ("agent,start,end\na1,2026-11-02 08:00,2026-11-02 16:00,x\n",
     "r.csv:2: 4 fields, the header has 3"),
    ("", "r.csv: the roster is empty"),
])
def test_a_wrong_roster_csv_is_refused_naming_file_line_and_column(text: str,
                                                                   expected: str) -> None:
    with pytest.raises(RosterFileError) as e:
        parse_roster(text, "r.csv")
    assert str(e.value).startswith(expected), str(e.value)


def test_load_roster_reads_a_file_and_refuses_a_missing_one(tmp_path: Path) -> None:
    p = tmp_path / "roster.csv"
    p.write_text(ROSTER, encoding="utf-8")
    assert load_roster(p) == parse_roster(ROSTER)
    with pytest.raises(TextFileError, match="roster not found"):
        load_roster(tmp_path / "nope.csv")


# ------------------------------------------------------------------ state records


STATES = """agent,at,state,reason
a1,2026-11-02 21:58:12,login,
a1,2026-11-02 22:30:00,reserved,
a1,2026-11-02 22:30:05,talk,
a1,2026-11-02 22:35:00,ACW,
a1,2026-11-02 22:36:00,ready,
a1,2026-11-03 01:00:40,paused,break
a1,2026-11-03 01:16:00,aux,coaching
a1,2026-11-03 01:30:00,ready,
a1,2026-11-03 02:00:00,paused,offer NOANSWER
a1,2026-11-03 02:00:30,available,
a1,2026-11-03 06:02:00,logout,
a2,2026-11-03 08:00:00,Not Ready,
a2,2026-11-03 08:05:00,ready,
a2,2026-11-03 12:00:00,pause,lunch
"""


def test_state_records_become_shifts_and_activities() -> None:
    rows = parse_states(STATES, "s.csv")
    assert [r.state for r in rows[:5]] == ["ready", "reserved", "on_call", "wrap_up", "ready"]
    assert rows[11].state == "paused" and rows[11].line == 13
    roster, notes = roster_from_states(rows, skills={"a2": [("tech", 3)]})
    a1, a2 = roster.shifts
    assert (a1.agent, a1.start, a1.end) == ("a1", D(2026, 11, 2, 21, 58, 12), t("03 06:02"))
    # the break, then coaching (a pause of another reason ends the first); the
    # ring-no-answer pause stays available time
    assert [(a.kind, a.start, a.end) for a in a1.activities] == [
        ("break", D(2026, 11, 3, 1, 0, 40), t("03 01:16")),
        ("coaching", t("03 01:16"), t("03 01:30"))]
    # a2 is still logged in at the end: closed at the last record (its own lunch: no length)
    assert (a2.start, a2.end, a2.skills) == (t("03 08:00"), t("03 12:00"), (("tech", 3),))
    assert [(a.kind, a.start, a.end) for a in a2.activities] == [
        ("not_ready", t("03 08:00"), t("03 08:05"))]
    assert notes.counts == {"rona_pause": 1, "no_reason": 1, "open_at_end": 1,
                            "zero_length_pause": 1}
    assert notes.examples["rona_pause"] == ["a1 at 2026-11-03 02:00 (line 10)"]
    lines = notes.lines()
    assert any(s.startswith("1 shifts still open at the end") and "a2 from 2026-11-03 08:00, "
               "closed at 2026-11-03 12:00" in s for s in lines), lines
    # with `until`, the open shift runs to it (and its lunch too)
    roster2, _ = roster_from_states(rows, until=t("03 16:00"))
    assert roster2.shifts[1].end == t("03 16:00")
    assert roster2.shifts[1].activities[-1] == Activity(t("03 12:00"), t("03 16:00"), "lunch")


def test_out_of_order_and_lone_logouts_are_noted() -> None:
    rows = [StateRow("a1", t("02 09:00"), "logged_out", line=2),  # no login before
            StateRow("a1", t("02 10:00"), "ready", line=3),
            StateRow("a1", t("02 18:00"), "logged_out", line=4),
            StateRow("a1", t("02 12:00"), "paused", "lunch", line=5),  # out of order
            StateRow("a1", t("02 12:30"), "ready", line=6),
            StateRow("a1", t("02 19:00"), "logged_out", line=7)]  # a second logout
    roster, notes = roster_from_states(rows)
    (s,) = roster.shifts
    assert (s.start, s.end) == (t("02 10:00"), t("02 18:00"))
    assert s.activities == (Activity(t("02 12:00"), t("02 12:30"), "lunch"),)
    assert notes.counts == {"out_of_order": 1, "logout_without_login": 2}
    assert notes.examples["out_of_order"] == ["a1 at 2026-11-02 12:00 (line 5)"]
    assert notes.examples["logout_without_login"] == [
        "a1 at 2026-11-02 09:00 (line 2)", "a1 at 2026-11-02 19:00 (line 7)"]


def test_since_starts_the_shifts_of_agents_already_logged_in() -> None:
    rows = [StateRow("a1", t("01 22:00"), "ready"), StateRow("a1", t("02 07:00"), "paused",
                                                               "training"),
            StateRow("a1", t("02 09:00"), "ready"), StateRow("a1", t("02 12:00"), "logged_out"),
            StateRow("a2", t("01 20:00"), "ready"), StateRow("a2", t("01 23:00"), "logged_out"),
            StateRow("a3", t("02 13:00"), "ready")]
    roster, notes = roster_from_states(rows, since=t("02 08:00"), until=t("02 12:30"))
    assert [(s.agent, s.start, s.end, [a.kind for a in s.activities]) for s in roster.shifts] \
        == [("a1", t("02 08:00"), t("02 12:00"), ["training"])]
    assert notes.counts == {"open_at_start": 1, "after_until": 1}


def test_unknown_states_and_bad_times_name_the_line() -> None:
    with pytest.raises(RosterFileError, match=r"^s.csv:3: state: 'lunching' is not an agent "
                                              r"state \(logged_out, ready"):
        parse_states("agent,at,state\na1,2026-11-02 08:00,ready\na1,2026-11-02 09:00,lunching\n",
                     "s.csv")
    with pytest.raises(RosterFileError, match=r"^s.csv:2: at: '2026-11-02 8h' is not a date"):
        parse_states("agent,at,state\na1,2026-11-02 8h,ready\n", "s.csv")
    with pytest.raises(RosterFileError, match=r"^s.csv:1: header: unknown column\(s\) .time.; "
                                              r"missing column\(s\) at"):
        parse_states("agent,time,state\n", "s.csv")
    with pytest.raises(RosterError, match="not an agent state"):
        StateRow("a1", t("02 08:00"), "lunch")


def test_our_engines_agent_states_import_as_they_happened() -> None:
    """The state changes the core emits (what the engine writes to
    agent_events): a login not ready at once, a ring-no-answer pause, a break,
    a lunch asked for during a call, a logout."""
    cfg = CoreConfig(policy=simple_policy({"billing": 20.0}), rona_pause_s=30.0,
                     agents=agents_for_queues({"a0": ("1000", ("billing",))}))
    cc = ContactCenter(cfg)
    base = t("02 08:00")
    changes: list[AgentStateChanged] = []

    def at(s: float, ev: object) -> list[object]:
        out: list[object] = list(cc.handle(ev, s))  # type: ignore[arg-type]
        changes.extend(a for a in out if isinstance(a, AgentStateChanged))
        return out

    at(0.0, AgentLogin("a0", ready=False))  # logged in, not ready for 60 s
    at(60.0, AgentReady("a0"))
    at(100.0, CallStarted("c1", "13800000001"))
    [offer] = [a for a in at(100.0, CallQueued("c1", "billing", ())) if isinstance(
        a, ConnectCall)]
    at(120.0, OfferFailed("c1", offer.offer_id, "NOANSWER"))  # paused by the ACD
    at(130.0, CallerGone("c1"))
    at(150.0, AgentReady("a0"))
    at(1000.0, AgentPause("a0", "break"))
    at(1900.0, AgentReady("a0"))
    # a lunch asked for during a call: it starts when the call's wrap-up ends
    at(2000.0, CallStarted("c2", "13800000002"))
    [offer] = [a for a in at(2000.0, CallQueued("c2", "billing", ())) if isinstance(
        a, ConnectCall)]
    at(2005.0, OfferAnswered("c2", offer.offer_id))
    at(2100.0, AgentPause("a0", "lunch"))
    at(2200.0, ConversationEnded("c2", "caller"))
    at(2205.0, TimerFired(("wrap_up", "a0")))
    at(3000.0, AgentReady("a0"))
    at(3600.0, AgentLogout("a0"))
    rows = [StateRow(c.agent_id, base + dt.timedelta(seconds=c.at), c.new.value, c.reason)
            for c in changes]
    assert is_rona_reason(next(r.reason for r in rows if r.reason.startswith("offer")))
    roster, notes = roster_from_states(rows)
    (s,) = roster.shifts
    assert (s.start, s.end) == (base, base + dt.timedelta(hours=1))
    assert [(a.kind, (a.start - base).total_seconds(), (a.end - base).total_seconds())
            for a in s.activities] == [("not_ready", 0.0, 60.0), ("break", 1000.0, 1900.0),
                                       ("lunch", 2205.0, 3000.0)]
    assert notes.counts == {"no_reason": 1, "rona_pause": 1}
