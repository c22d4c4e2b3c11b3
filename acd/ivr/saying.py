"""Numbers, money, dates and times said from the pack's own prompts.

Asterisk's ``SAY NUMBER`` / ``SAY DATETIME`` know no Cantonese or Minnan
(it says them in English: "defaulting to English"), and its Mandarin needs
``digits/`` recordings no stock package ships.  For the languages in
:data:`COMPOSED_LANGUAGES` the engine composes what to say itself from the
prompts named in :mod:`acd.ivr.prompt_names` (``acd/num/0`` .. ``acd/num/9``,
``acd/num/10`` 十, ``100`` 百, ``1000`` 千, ``10000`` 万, ``100000000`` 亿,
``liang`` 两, ``minus`` 负, ``point`` 点; ``acd/yuan`` 元, ``acd/jiao`` 角,
``acd/fen`` 分; ``acd/date/...``, ``acd/time/...``) and plays them one by
one; the channel's language picks each file's recording.

Chinese number grammar, as speakers say it:

* 十 at the very start (10 十, 15 十五, 100000 十万), 一十 elsewhere
  (110 一百一十, 10010 一万零一十);
* one 零 for any run of zeros between two spoken digits (101 一百零一,
  1005 一千零五, 100000001 一亿零一), none at the end (1000 一千);
* 两 for a 2 before 百 千 万 亿 (200 两百, 2000 两千, 1200 一千两百,
  20000 两万) and for a count of 2 before a measure word (两元, 两角, 两分,
  两点); 二 otherwise (2 二, 12 十二, 20 二十, 22 二十二, 二月, 二日);
* negatives 负..., decimals ...点 and the digits one by one (3.05 三点零五).

Money: N元 M角 K分, parts that are zero left out (10.05 十元五分), 0 零元.
Dates: the year digit by digit (二零二六年), month, day (十一月二十三日),
then the weekday (星期一).  Times: 上午/下午, the hour on a 12-hour clock,
点, and the minutes with a 零 below ten (上午十点零五分; 下午三点 on the hour).

Pure: no I/O, no clock (``now`` is handed in for a bare time of day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from acd.ivr.hours import HoursError, zone
from acd.ivr.prompt_names import (
    DATE_DAY,
    DATE_MONTH,
    DATE_YEAR,
    FEN,
    JIAO,
    NUM_10,
    NUM_100,
    NUM_1000,
    NUM_10000,
    NUM_100000000,
    NUM_DIGITS,
    NUM_LIANG,
    NUM_MINUS,
    NUM_POINT,
    TIME_AM,
    TIME_HOUR,
    TIME_MINUTE,
    TIME_PM,
    WEEKDAYS,
    YUAN,
)

#: languages whose values the engine composes by default (Mandarin,
#: Cantonese, Minnan); any other language is said by Asterisk's SAY commands
COMPOSED_LANGUAGES: tuple[str, ...] = ("zh", "yue", "nan")
#: the ``say`` kinds composed here (``alpha``, letters, stays with SAY ALPHA)
COMPOSED_KINDS = frozenset({"digits", "number", "money", "date", "time", "datetime"})
#: languages whose grammar this module knows (what a setting may list)
GRAMMAR_LANGUAGES = frozenset({"zh", "yue", "nan"})
#: the largest integer part said (9999 万亿): beyond it a value is refused
MAX_INTEGER = 10**16 - 1
#: the most decimals said after 点
MAX_DECIMALS = 10

ZERO = NUM_DIGITS[0]
_UNITS = ((10**8, NUM_100000000), (10**4, NUM_10000))
_GROUP = ((1000, NUM_1000), (100, NUM_100), (10, NUM_10), (1, ""))


class SayError(ValueError):
    """The value cannot be said as that kind (not a number, a date, ...)."""


def composes(kind: str, language: str,
             languages: Collection[str] = COMPOSED_LANGUAGES) -> bool:
    """Does the engine compose ``kind`` in ``language`` (else Asterisk says
    it)?  Only a language listed in ``languages`` whose grammar is known."""
    return kind in COMPOSED_KINDS and language in languages and language in GRAMMAR_LANGUAGES


def compose(kind: str, value: str, language: str, *, tz: str = "UTC",
            now: dt.datetime | None = None, money_unit: str = YUAN,
            money_cents: str = FEN) -> tuple[str, ...]:
    """The prompts that say ``value`` as ``kind`` in ``language``.

    ``tz`` and ``now``: a date or time given as epoch seconds is said in
    ``tz``; a bare time of day is taken on ``now``'s date.  ``money_unit``
    and ``money_cents``: the flow's ``money:`` sounds; with the default
    分 the cents are said as 角 and 分, with another sound as one number.
    Raises :class:`SayError` for a value that is not a ``kind``, ValueError
    for a kind or language this module does not compose."""
    if language not in GRAMMAR_LANGUAGES:
        raise ValueError(f"no number grammar for language {language!r} "
                         f"(known: {', '.join(sorted(GRAMMAR_LANGUAGES))})")
    text = value.strip()
    if kind == "digits":
        digits = [int(c) for c in text if c in "0123456789"]
        if not digits:
            raise SayError(f"no digits in {value!r}")
        return tuple(NUM_DIGITS[d] for d in digits)
    if kind == "number":
        return number(_decimal(text, kind))
    if kind == "money":
        return money(_decimal(text, kind), money_unit, money_cents)
    if kind in ("date", "time", "datetime"):
        when = local_time(kind, text, tz, now or dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        if when is None:
            raise SayError(f"{value!r} is not a {kind}")
        if kind == "date":
            return date(when.date())
        if kind == "time":
            return time_of_day(when.hour, when.minute)
        return (*date(when.date()), *time_of_day(when.hour, when.minute))
    raise ValueError(f"say kind {kind!r} is not composed (composed: "
                     f"{', '.join(sorted(COMPOSED_KINDS))})")


# ------------------------------------------------------------------ numbers


def _decimal(text: str, kind: str) -> Decimal:
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise SayError(f"{text!r} is not a number") from None
    if not d.is_finite():
        raise SayError(f"{text!r} is not a finite number")
    if abs(d) > MAX_INTEGER:
        raise SayError(f"{text!r} is too large to say as {kind}")
    return d


def number(value: Decimal | int) -> tuple[str, ...]:
    """An integer or a decimal: 负, the integer part, 点 and the decimals
    one by one (as written: 3.50 三点五零)."""
    d = Decimal(value)
    if not d.is_finite() or abs(d) > MAX_INTEGER:
        raise SayError(f"{value} cannot be said")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        raise SayError(f"{value} has more than {MAX_DECIMALS} decimals")
    decimals = [int(c) for c in f"{abs(d):f}".partition(".")[2]]
    whole = int(abs(d))
    out: list[str] = [NUM_MINUS] if d < 0 else []
    out += integer(whole)
    if decimals:
        out.append(NUM_POINT)
        out += [NUM_DIGITS[x] for x in decimals]
    return tuple(out)


def integer(n: int, *, measure: bool = False) -> list[str]:
    """A whole number >= 0.  ``measure``: a count before a measure word
    (元, 点): a lone 2 is 两."""
    if n < 0:
        raise SayError(f"{n} is negative")
    if n > MAX_INTEGER:
        raise SayError(f"{n} is too large to say")
    if n == 0:
        return [ZERO]
    if measure and n == 2:
        return [NUM_LIANG]
    return _integer(n, first=True)


def _integer(n: int, first: bool) -> list[str]:
    """1 <= n: by 亿 and 万, each part below 10000 said by :func:`_group`;
    ``first``: n starts the number (十, not 一十)."""
    for size, unit in _UNITS:
        if n >= size:
            high, low = divmod(n, size)
            out = [NUM_LIANG] if high == 2 else _integer(high, first)
            out.append(unit)
            if low:
                if low < size // 10:  # a zero right after the unit
                    out.append(ZERO)
                out += _integer(low, first=False)
            return out
    return _group(n, first)


def _group(n: int, first: bool) -> list[str]:
    """1 <= n <= 9999."""
    out: list[str] = []
    zero = False  # zeros seen since the last spoken digit
    for size, unit in _GROUP:
        d = n // size % 10
        if d == 0:
            zero = zero or bool(out)
            continue
        if zero:
            out.append(ZERO)
            zero = False
        if size == 10 and d == 1 and first and not out:
            out.append(NUM_10)  # 十, not 一十, at the start
            continue
        out.append(NUM_LIANG if d == 2 and size >= 100 else NUM_DIGITS[d])
        if unit:
            out.append(unit)
    return out


# -------------------------------------------------------------------- money


def money(amount: Decimal, unit: str = YUAN, cents: str = FEN) -> tuple[str, ...]:
    """N元 M角 K分 (rounded to the cent), zero parts left out; 0 is 零元.
    With ``cents`` other than 分: N<unit> and the cents as one number."""
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    total = int(abs(amount) * 100)
    whole, part = divmod(total, 100)
    out: list[str] = [NUM_MINUS] if total and amount < 0 else []
    if whole or not part:
        out += [*integer(whole, measure=True), unit]
    if cents != FEN:
        if part:
            out += [*integer(part, measure=True), cents]
        return tuple(out)
    jiao, fen = divmod(part, 10)
    if jiao:
        out += [*integer(jiao, measure=True), JIAO]
    if fen:
        out += [*integer(fen, measure=True), FEN]
    return tuple(out)


# ------------------------------------------------------------ dates and times


def date(day: dt.date) -> tuple[str, ...]:
    """二零二六年十一月二十三日 星期一."""
    return (*(NUM_DIGITS[int(c)] for c in str(day.year)), DATE_YEAR,
            *integer(day.month), DATE_MONTH, *integer(day.day), DATE_DAY,
            WEEKDAYS[day.isoweekday() - 1])


def time_of_day(hour: int, minute: int) -> tuple[str, ...]:
    """上午/下午, the hour 1-12, 点, then the minutes (零五分 below ten; none
    on the hour)."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise SayError(f"{hour}:{minute:02d} is not a time of day")
    h12 = hour % 12 or 12
    out = [TIME_AM if hour < 12 else TIME_PM, *integer(h12, measure=True), TIME_HOUR]
    if minute:
        out += [ZERO, NUM_DIGITS[minute]] if minute < 10 else integer(minute)
        out.append(TIME_MINUTE)
    return tuple(out)


def local_time(kind: str, value: str, tz: str, now: dt.datetime) -> dt.datetime | None:
    """``2026-11-23`` (noon that day), ``14:30`` (on ``now``'s date),
    ``2026-11-23 14:30`` or epoch seconds (more than six digits) -> an
    aware datetime in ``tz``; None when ``value`` is none of these (or
    ``tz`` is unknown)."""
    value = value.strip()
    try:
        where = zone(tz)
        if value.isdigit() and len(value) > 6:
            return dt.datetime.fromtimestamp(int(value), where)
        if kind == "time":
            t = dt.time.fromisoformat(value)
            return dt.datetime.combine(now.astimezone(where).date(), t, where)
        if kind == "date":
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(12), where)
        when = dt.datetime.fromisoformat(value)
        return when.replace(tzinfo=where) if when.tzinfo is None else when.astimezone(where)
    except (ValueError, OverflowError, OSError, HoursError):
        return None
