"""acd.logs: masking callers' numbers and names, escaping control
characters, rate-limiting repeated lines, the single-line log formatter."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator

import pytest

from acd.core.model import CallQueued, CallRecord, CallStarted, Outcome
from acd.core.profiles import AgentProfile
from acd.logs import (
    Limited,
    SafeFormatter,
    brief,
    mask,
    printable,
    private,
    redacted,
    scrubbed,
    show_private,
    showing_private,
)


@pytest.fixture(autouse=True)
def _masked() -> Iterator[None]:
    show_private(False)
    yield
    show_private(False)


# -------------------------------------------------------------------- mask


@pytest.mark.parametrize(("text", "masked"), [
    ("13812345678", "138****5678"),  # a Chinese mobile
    ("+8613812345678", "+86*******5678"),
    ("+86 138 1234 5678", "+86**********5678"),
    ("5551234567", "55****4567"),  # 10 digits
    ("55512345", "****2345"),  # 8 digits: no head kept
    ("5551234", "5****34"),  # 7 digits: a third or more still hidden
])
def test_a_number_keeps_a_little_of_its_head_and_tail(text: str, masked: str) -> None:
    assert mask(text) == masked
    hidden = masked.count("*")
    assert hidden >= 4 and hidden * 3 >= len(text)


@pytest.mark.parametrize(("text", "masked"), [
    ("张三丰", "张**"),
    ("Alice Smith", "A********"),  # long names: at most 8 stars, the length is not told
    ("Al", "A*"),
    ("A", "*"),
    ("1001", "1***"),  # too short for a number: masked like a name
])
def test_a_name_keeps_its_first_character(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_empty_stays_empty() -> None:
    assert mask("") == ""
    assert str(private("")) == "" and str(private(None)) == ""


def test_mask_never_lets_a_control_character_through() -> None:
    assert "\x1b" not in mask("\x1b[31m13812345678")
    assert "\n" not in mask("ab\ncd\nef")


def test_private_masks_when_formatted_unless_shown() -> None:
    p = private("13812345678")
    assert f"{p}" == "138****5678" and repr(p) == "'138****5678'"
    assert "from %s" % p == "from 138****5678"  # noqa: UP031 - as logging formats it
    show_private()
    assert showing_private()
    assert str(p) == "13812345678"
    assert str(private("\x1b[2J13812345678")) == "\\x1b[2J13812345678"  # still printable


def test_redacted_masks_the_private_fields_of_a_record() -> None:
    ev = CallStarted("c1", "13812345678", "张三丰", "PJSIP/trunk-1", "pbx1")
    text = str(redacted(ev))
    assert text == ("CallStarted(call_id='c1', caller='138****5678', caller_name='张**', "
                    "channel='PJSIP/trunk-1', server='pbx1')")
    rec = CallRecord("c9", "13812345678", "Li Lei", 1.0, 2.0, Outcome.ANSWERED, ("menu",),
                     "billing", 1.0, 0.5, "a1", 1.5, 0.5, 1, "pbx1")
    text = str(redacted(rec))
    assert "13812345678" not in text and "Li Lei" not in text
    assert "call_id='c9'" in text and "outcome=Outcome.ANSWERED" in text
    assert "ivr_path=('menu',)" in text
    queued = str(redacted(CallQueued("c1", "billing", attributes=(("account", "998877"),))))
    assert "998877" not in queued and "'account'" in queued
    agent = str(redacted(AgentProfile("a1", "1001", "Wang Fang", skills={"billing": 5})))
    assert "Wang Fang" not in agent and "'billing': 5" in agent
    show_private()
    assert "13812345678" in str(redacted(rec)) and "998877" in str(redacted(
        CallQueued("c1", "billing", attributes=(("account", "998877"),))))


def test_redacted_hides_a_private_field_of_any_shape() -> None:
    @dataclasses.dataclass
    class Batch:
        to: tuple[str, ...]
        number: int
        count: int

    text = str(redacted(Batch(("13812345678", "13987654321"), 13812345678, 2)))
    assert text == "Batch(to='*', number='138****5678', count=2)"


def test_redacted_shows_only_the_type_of_what_it_does_not_know() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(13812345678)"

    assert str(redacted(Opaque())) == "Opaque(...)"


def test_scrubbed_masks_a_number_quoted_in_a_message() -> None:
    s = scrubbed("+16502530000 is a foreign number; 16502530000 too",
                 "+16502530000", "16502530000")
    assert "6502530000" not in str(s)
    assert str(s).startswith("+16*****0000 is a foreign number")
    show_private()
    assert str(s) == "+16502530000 is a foreign number; 16502530000 too"


def test_brief_is_the_type_and_the_first_line() -> None:
    exc = RuntimeError("(sqlite3.OperationalError) database is locked\n"
                       "[SQL: INSERT INTO calls ...]\n[parameters: ('13812345678',)]")
    assert brief(exc) == "RuntimeError: (sqlite3.OperationalError) database is locked"
    assert brief(TimeoutError()) == "TimeoutError"
    assert brief(ValueError("x" * 500)).endswith("x...") and len(brief(ValueError("x" * 500))) < 230
    assert "\x1b" not in brief(ValueError("\x1b[31mred"))


# --------------------------------------------------------------- printable


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ESC / CSI
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: retitle the terminal, BEL-ended
    ("\x1b]8;;http://x\x1b\\link", "\\x1b]8;;http://x\\x1b\\link"),  # OSC 8 hyperlink
    ("\x9b2J", "\\x9b2J"),  # C1 CSI: one byte
    ("\x85next", "\\x85next"),  # C1 NEL
    ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
    ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
    ("a\u200fb", "a\\u200fb"),  # right-to-left mark
    ("bad\udcff", "bad\\udcff"),  # a lone surrogate: undecodable byte
    ("nul\x00del\x7f", "nul\\x00del\\x7f"),
    ("张三 O'Brien", "张三 O'Brien"),  # nothing else is touched
])
def test_printable_escapes_what_could_drive_a_terminal(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_keeps_line_breaks_unless_asked() -> None:
    assert printable("a\nb\tc") == "a\nb\tc"
    assert printable("a\nb\tc", newlines=False) == "a\\nb\\tc"
    assert printable("over\rwrite") == "over\\x0dwrite"  # a carriage return rewrites a line
    assert printable("a\u2028b", newlines=False) == "a\\u2028b"


# ----------------------------------------------------------------- Limited


def _records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_limited_lets_the_first_through_and_counts_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.limited")
    lim = Limited(60)
    with caplog.at_level(logging.WARNING, "test.limited"):
        assert lim.warning(log, "down", "link down (%s)", "refused", now=0.0)
        for i in range(1, 100):
            assert not lim.warning(log, "down", "link down (%s)", "refused", now=float(i) / 10)
        assert lim.held("down") == 99
        assert lim.warning(log, "down", "link down (%s)", "refused", now=60.0)
        assert not lim.warning(log, "down", "link down (%s)", "refused", now=61.0)
    assert _records(caplog) == [
        "link down (refused)",
        "link down (refused) (and 99 more like it in the last 60 s)",
    ]
    assert lim.total["down"] == 102 and lim.held() == 1


def test_limited_keeps_kinds_apart(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.limited")
    lim = Limited(60)
    with caplog.at_level(logging.WARNING, "test.limited"):
        lim.warning(log, "a", "kind a", now=0.0)
        lim.error(log, "b", "kind b", now=1.0)
        lim.warning(log, "a", "kind a", now=2.0)
    assert _records(caplog) == ["kind a", "kind b"]
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]


def test_limited_flush_reports_the_last_held_line_with_its_count(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.limited")
    lim = Limited(60)
    with caplog.at_level(logging.WARNING, "test.limited"):
        lim.error(log, "db", "outbox read failed: %s", "locked", now=0.0)
        lim.error(log, "db", "outbox read failed: %s", "locked", now=1.0)
        lim.error(log, "db", "outbox read failed: %s", "gone", now=2.0)
        lim.flush()
        lim.flush()  # nothing more
    assert _records(caplog) == [
        "outbox read failed: locked",
        "outbox read failed: gone (and 1 more like it, held back)",
    ]
    assert caplog.records[-1].levelno == logging.ERROR


def test_limited_forgets_quiet_kinds_beyond_its_bound() -> None:
    log = logging.getLogger("test.limited")
    log.disabled = True
    try:
        lim = Limited(60, max_keys=100)
        for i in range(10_000):
            lim.warning(log, f"peer-{i}", "x", now=float(i))
        assert len(lim.total) <= 100
    finally:
        log.disabled = False


# ----------------------------------------------------------- the formatter


def _formatted(*args: object, exc: BaseException | None = None, msg: str = "%s") -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("test.safe")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error(msg, *args, exc_info=exc)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    return out.getvalue()


def test_every_log_record_is_one_printable_line() -> None:
    text = _formatted("evil\n2024-01-01 ERROR forged line\x1b]0;title\x07\u202e")
    assert text.count("\n") == 1  # the record's own end only
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "evil\\n2024-01-01 ERROR forged line\\x1b]0;title\\x07\\u202e" in text


def test_a_traceback_keeps_its_lines_but_not_a_database_errors_parameters() -> None:
    try:
        try:
            raise ValueError("(psycopg.DataError) bad value\n[SQL: INSERT ...]\n"
                             "[parameters: ('13812345678', '张三丰')]")
        except ValueError as inner:
            raise RuntimeError("write failed\x1b[2J") from inner
    except RuntimeError as exc:
        text = _formatted("write", exc=exc, msg="%s failed")
    assert text.startswith("ERROR test.safe: write failed\nTraceback (most recent call last):")
    assert "ValueError: (psycopg.DataError) bad value [...]" in text
    assert "13812345678" not in text and "张三丰" not in text
    assert "RuntimeError: write failed\\x1b[2J" in text and "\x1b" not in text
    show_private()
    try:
        raise ValueError("bad\n[parameters: ('13812345678',)]")
    except ValueError as exc:
        assert "13812345678" in _formatted("x", exc=exc)


def test_a_limited_line_names_its_callers_file_and_line(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.limited")
    with caplog.at_level(logging.WARNING, "test.limited"):
        Limited(60).warning(log, "k", "here")
        Limited(60).log(log, logging.ERROR, "k", "there")
    assert [r.filename for r in caplog.records] == ["test_logs.py", "test_logs.py"]
