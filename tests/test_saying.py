"""Numbers, money, dates and times composed from the pack's prompts
(acd.ivr.saying): the Chinese grammar by a table, written in characters
so a reader can check it, and properties over ranges (every number
0..100000 composes, reads back to itself, never 零零, no 零 at the end)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal

import pytest

from acd.ivr import prompt_names as p
from acd.ivr.saying import (
    COMPOSED_LANGUAGES,
    SayError,
    compose,
    composes,
    integer,
    local_time,
    money,
    time_of_day,
)

#: prompt name -> what its recording says (Mandarin)
CHARS = {p.NUM_DIGITS[i]: "零一二三四五六七八九"[i] for i in range(10)}
CHARS.update({p.NUM_10: "十", p.NUM_100: "百", p.NUM_1000: "千", p.NUM_10000: "万",
              p.NUM_100000000: "亿", p.NUM_LIANG: "两", p.NUM_MINUS: "负",
              p.NUM_POINT: "点", p.YUAN: "元", p.JIAO: "角", p.FEN: "分",
              p.DATE_YEAR: "年", p.DATE_MONTH: "月", p.DATE_DAY: "日", p.TIME_HOUR: "点",
              p.TIME_MINUTE: "分", p.TIME_AM: "上午", p.TIME_PM: "下午"})
CHARS.update({name: " 星期" + "一二三四五六日"[i] for i, name in enumerate(p.WEEKDAYS)})
SMALL = {p.NUM_10: 10, p.NUM_100: 100, p.NUM_1000: 1000}
BIG = {p.NUM_10000: 10**4, p.NUM_100000000: 10**8}
DIGIT = {name: i for i, name in enumerate(p.NUM_DIGITS)} | {p.NUM_LIANG: 2}
SHANGHAI = "Asia/Shanghai"


def text(prompts: tuple[str, ...] | list[str]) -> str:
    return "".join(CHARS[name] for name in prompts)


def read_back(prompts: tuple[str, ...] | list[str]) -> int:
    """An independent reader of Chinese numerals: the value the prompts say."""
    total = section = digit = 0
    for name in prompts:
        if name in DIGIT:
            digit = DIGIT[name]
        elif name in SMALL:
            section += (digit or 1) * SMALL[name]
            digit = 0
        else:  # 万 / 亿 multiply what is below them so far
            unit = BIG[name]
            low = total % unit
            total += (low + section + digit) * unit - low
            section = digit = 0
    return total + section + digit


@pytest.mark.parametrize(("value", "said"), [
    ("0", "零"), ("1", "一"), ("2", "二"), ("10", "十"), ("12", "十二"), ("15", "十五"),
    ("20", "二十"), ("22", "二十二"), ("99", "九十九"), ("100", "一百"), ("101", "一百零一"),
    ("110", "一百一十"), ("200", "两百"), ("220", "两百二十"), ("1005", "一千零五"),
    ("1010", "一千零一十"), ("1200", "一千两百"), ("2000", "两千"), ("2222", "两千两百二十二"),
    ("10000", "一万"), ("10010", "一万零一十"), ("10100", "一万零一百"), ("11000", "一万一千"),
    ("20000", "两万"), ("22000", "两万两千"), ("100000", "十万"), ("120000", "十二万"),
    ("1000001", "一百万零一"), ("100000000", "一亿"), ("100000001", "一亿零一"),
    ("110000000", "一亿一千万"), ("100010000", "一亿零一万"), ("200000000", "两亿"),
    ("1000000000", "十亿"), ("1000000000000", "一万亿"),
    ("-7", "负七"), ("-3.05", "负三点零五"), ("0.5", "零点五"), ("3.50", "三点五零"),
    ("-0", "零"), (" 42 ", "四十二"), ("1E+5", "十万"),
])
def test_number_grammar(value: str, said: str) -> None:
    assert text(compose("number", value, "zh")) == said


@pytest.mark.parametrize(("value", "said"), [
    ("0", "零元"), ("0.00", "零元"), ("0.05", "五分"), ("0.5", "五角"), ("2", "两元"),
    ("12.50", "十二元五角"), ("10.05", "十元五分"), ("2.22", "两元两角两分"),
    ("-1.2", "负一元两角"), ("3.999", "四元"), ("0.004", "零元"), ("0.005", "一分"),
    ("1000000.01", "一百万元一分"), ("20000", "两万元"),
])
def test_money(value: str, said: str) -> None:
    assert text(compose("money", value, "yue")) == said


def test_money_with_other_cents_sound_says_the_cents_as_one_number() -> None:
    said = compose("money", "12.50", "zh", money_unit="acd/dollar", money_cents="acd/cent")
    assert said == (p.NUM_10, p.NUM_DIGITS[2], "acd/dollar", p.NUM_DIGITS[5], p.NUM_10,
                    "acd/cent")
    assert money(Decimal("3"), "acd/dollar", "acd/cent") == (p.NUM_DIGITS[3], "acd/dollar")


@pytest.mark.parametrize(("kind", "value", "said"), [
    ("date", "2026-11-23", "二零二六年十一月二十三日 星期一"),
    ("date", "2006-02-02", "二零零六年二月二日 星期四"),
    ("date", "2026-10-01", "二零二六年十月一日 星期四"),
    ("time", "00:00", "上午十二点"), ("time", "02:05", "上午两点零五分"),
    ("time", "10:20", "上午十点二十分"), ("time", "12:00", "下午十二点"),
    ("time", "14:30", "下午两点三十分"), ("time", "23:59", "下午十一点五十九分"),
    ("datetime", "2026-11-23 14:30", "二零二六年十一月二十三日 星期一下午两点三十分"),
    # epoch seconds, said in the flow's time zone: 2026-11-23 02:00 UTC is 10:00 there
    ("datetime", "1795399200", "二零二六年十一月二十三日 星期一上午十点"),
    ("time", "1795399200", "上午十点"),
])
def test_dates_and_times(kind: str, value: str, said: str) -> None:
    assert text(compose(kind, value, "nan", tz=SHANGHAI)) == said


def test_a_time_of_day_is_taken_on_the_runs_date() -> None:
    now = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)  # 24 Nov 01:00 in Shanghai
    when = local_time("time", "09:15", SHANGHAI, now)
    assert when is not None and when.date() == dt.date(2026, 11, 24)
    assert (when.hour, when.minute) == (9, 15)


def test_digits_one_by_one() -> None:
    assert text(compose("digits", "138-0013", "zh")) == "一三八零零一三"


@pytest.mark.parametrize(("kind", "value"), [
    ("number", "abc"), ("number", "NaN"), ("number", "Infinity"), ("number", ""),
    ("number", "1e17"), ("number", "0.12345678901"), ("number", "1E-999999999"),
    ("money", "twelve"), ("money", "1e20"), ("digits", "none"),
    ("date", "2026-13-01"), ("date", "tomorrow"), ("time", "25:00"),
    ("datetime", "99999999999999999999"),
])
def test_values_that_cannot_be_said(kind: str, value: str) -> None:
    with pytest.raises(SayError):
        compose(kind, value, "zh", tz=SHANGHAI)


def test_unknown_kind_language_or_zone() -> None:
    with pytest.raises(ValueError, match="not composed"):
        compose("alpha", "abc", "zh")
    with pytest.raises(ValueError, match="no number grammar for language 'en'"):
        compose("number", "1", "en")
    with pytest.raises(SayError):
        compose("date", "2026-11-23", "zh", tz="Mars/Olympus")
    with pytest.raises(SayError):
        time_of_day(24, 0)
    with pytest.raises(SayError):
        integer(-1)


def test_which_languages_and_kinds_are_composed() -> None:
    assert COMPOSED_LANGUAGES == ("zh", "yue", "nan")
    assert composes("money", "yue") and composes("date", "nan") and composes("digits", "zh")
    assert not composes("number", "en")
    assert not composes("alpha", "zh")  # letters: Asterisk's SAY ALPHA
    assert not composes("number", "en", languages=("en",))  # no grammar for English
    assert composes("number", "yue", languages=("yue",))
    assert not composes("number", "zh", languages=())


def test_the_languages_share_one_grammar() -> None:
    for value in ("0", "10010", "2.5"):
        assert compose("number", value, "zh") == compose("number", value, "yue") \
            == compose("number", value, "nan")


# ------------------------------------------------------------- properties


def test_every_number_up_to_100000_composes_and_reads_back() -> None:
    zero = p.NUM_DIGITS[0]
    for n in range(100001):
        said = integer(n)
        assert read_back(said) == n, (n, text(said))
        assert all(a != zero or b != zero for a, b in itertools.pairwise(said)), \
            (n, text(said))  # never 零零
        assert n == 0 or said[-1] != zero, (n, text(said))  # no 零 at the end
        assert n == 0 or said[0] != zero
        # 十 at the start, never 一十 there; 两 only before 百/千/万/亿
        assert said[:2] != [p.NUM_DIGITS[1], p.NUM_10], (n, text(said))
        for a, b in zip(said, [*said[1:], ""], strict=True):
            if a == p.NUM_LIANG:
                assert b in (p.NUM_100, p.NUM_1000, p.NUM_10000, p.NUM_100000000), n


def test_large_numbers_read_back() -> None:
    rng = random.Random(14)
    samples = [10**k for k in range(17)] + [10**k + 1 for k in range(17)] + \
        [rng.randrange(10**16) for _ in range(20000)]
    for n in samples:
        if n > 10**16 - 1:
            continue
        said = integer(n)
        assert read_back(said) == n, (n, text(said))
        assert "零零" not in text(said) and (n == 0 or not text(said).endswith("零"))


def test_money_reads_back_over_a_range() -> None:
    for cents in range(0, 100001, 7):
        said = money(Decimal(cents) / 100)
        assert said, cents
        yuan = read_back([x for x in said[:said.index(p.YUAN)]]) if p.YUAN in said else 0
        jiao = read_back(said[said.index(p.JIAO) - 1:said.index(p.JIAO)]) \
            if p.JIAO in said else 0
        fen = read_back(said[said.index(p.FEN) - 1:said.index(p.FEN)]) if p.FEN in said else 0
        assert yuan * 100 + jiao * 10 + fen == cents, (cents, text(said))


def test_every_time_of_day_composes() -> None:
    for hour in range(24):
        for minute in range(60):
            said = time_of_day(hour, minute)
            assert said[0] == (p.TIME_AM if hour < 12 else p.TIME_PM)
            h = read_back(said[1:said.index(p.TIME_HOUR)])
            assert h == (hour % 12 or 12)
            if minute:
                assert said[-1] == p.TIME_MINUTE
                assert read_back(said[said.index(p.TIME_HOUR) + 1:-1]) == minute
            else:
                assert said[-1] == p.TIME_HOUR
