"""Carry out IVR steps over FastAGI.

The sans-I/O :class:`~acd.ivr.interpreter.FlowRun` says what to do; this
module turns each step into AGI commands and the replies into the run's
next input:

====================  ======================================================
PlayPrompt            ``STREAM FILE`` per sound file (a key stops the rest)
SayValue              ``SAY DIGITS|NUMBER|ALPHA``, ``SAY DATETIME`` (date,
                      time) in the flow's time zone; money as
                      ``SAY NUMBER`` + unit + cents
CollectDigit          ``GET DATA <p1&p2> <timeout ms> 1``
CollectDigits         ``GET DATA <prompts> <timeout ms> <max digits>``
SetLanguage           ``SET VARIABLE CHANNEL(language) <lang>``
LookupData            the profile store or an HTTP GET (JSON), under a timeout
RecordFile            ``RECORD FILE <file> wav "#" <ms> BEEP [s=<silence>]``
====================  ======================================================

A hangup in the middle of any of them raises
:class:`~acd.adapters.fastagi.AgiHangupError` out of :func:`run_flow`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation

from acd.adapters.fastagi import AgiSession
from acd.ivr.hours import zone
from acd.ivr.interpreter import (
    ALL_KEYS,
    Ack,
    CollectDigit,
    CollectDigits,
    Digits,
    FlowRun,
    Key,
    LookupData,
    LookupReply,
    PlayPrompt,
    RecordFile,
    Reply,
    SayValue,
    SetLanguage,
    Step,
    Terminal,
)
from acd.logs import Limited, brief, private
from acd.protocols import agi
from acd.runtime.http_lookup import HttpLookupError, shown_url

log = logging.getLogger(__name__)

ProfileLookup = Callable[[], Awaitable[Mapping[str, str] | None]]
HttpLookup = Callable[[str, float], Awaitable[Mapping[str, object] | None]]
Clock = Callable[[], dt.datetime]

#: played by GET DATA when the caller is already typing (Asterisk core sounds)
SILENCE = "silence/1"
DATE_FORMATS = {"date": "ABdY", "time": "IMp", "datetime": "ABdY 'digits/at' IMp"}


async def run_flow(session: AgiSession, run: FlowRun, *, clock: Clock,
                   profile: ProfileLookup, http: HttpLookup,
                   before_step: Callable[[], None] | None = None) -> Terminal:
    """Walk ``run`` to its end over ``session``; returns the terminal step."""
    step: Step = run.start(clock())
    while not run.done:
        if before_step is not None:
            before_step()
        reply = await _carry_out(session, run, step, profile, http)
        step = run.resume(reply, clock())
    assert run.end is not None
    return run.end


async def alive(session: AgiSession) -> None:
    """After a -1 reply: a hang-up, or only a failure (a missing file)?  A hang-up
    is announced by an unsolicited HANGUP line that the next command meets, so
    ask a NOOP now (raises AgiHangupError) while the flow is still at the node
    where it happened."""
    await session.command(agi.noop())


async def play(session: AgiSession, prompts: tuple[str, ...], escape: str = "") -> str | None:
    """Play files in a row; the key that stopped them, if any."""
    for name in prompts:
        res = await session.stream_file(name, escape)
        if res.result < 0:
            await alive(session)
            log.warning("sound file %r did not play (missing on the Asterisk server?)", name)
            continue
        if escape and res.digit:
            return res.digit
    return None


async def _carry_out(session: AgiSession, run: FlowRun, step: Step,
                     profile: ProfileLookup, http: HttpLookup) -> Reply:
    match step:
        case PlayPrompt():
            return Key(await play(session, step.prompts, step.escape_digits))
        case SayValue():
            digit = await play(session, step.prompts, step.escape_digits)
            if digit is None:
                digit = await say(session, step, run.flow.timezone, run.now)
            return Key(digit)
        case CollectDigit():
            # GET DATA plays one file (only Playback/Read split on '&'): the
            # prompts before the last play with every key as escape digit
            first = await play(session, step.prompts[:-1], ALL_KEYS)
            if first is not None:
                return Key(first)
            res = await session.get_data(step.prompts[-1], int(step.timeout_s * 1000), 1)
            if res.failed:
                await alive(session)
            value = res.value if not res.failed else ""
            return Key(value[:1] or None)
        case CollectDigits():
            typed = step.typed
            first = await play(session, step.prompts[:-1], ALL_KEYS) if not typed else None
            prompt = step.prompts[-1]
            if first is not None or typed:
                typed += first or ""
                prompt = SILENCE  # the caller is typing: no more prompt
            if first == "#":
                return Digits(typed[:-1] if typed.endswith("#") else typed)
            left = step.max_digits - len(step.typed) - (1 if first else 0)
            if left <= 0:
                return Digits(first or "")
            res = await session.get_data(prompt, int(step.timeout_s * 1000), left)
            if res.failed:
                await alive(session)
            value = (first or "") + ("" if res.failed else res.value)
            return Digits(value, timed_out=res.timeout and not value)
        case SetLanguage():
            await session.set_variable("CHANNEL(language)", step.language)
            return Ack()
        case LookupData():
            return LookupReply(await _lookup(step, profile, http))
        case RecordFile():
            await play(session, step.prompts)
            res = await session.command(agi.record_file(
                step.file, "wav", "#", step.max_s * 1000, step.beep, step.silence_s))
            if res.failed:
                await alive(session)
            # "(randomerror)": a key during the beep, or no beep file: nothing recorded
            return Ack(ok=not res.failed and res.data != "randomerror")
    raise AssertionError(f"not an IVR step: {step!r}")  # pragma: no cover


async def _lookup(step: LookupData, profile: ProfileLookup,
                  http: HttpLookup) -> Mapping[str, object] | None:
    try:
        if step.source == "profile":
            return await asyncio.wait_for(profile(), step.timeout_s)
        assert step.url is not None
        return await asyncio.wait_for(http(step.url, step.timeout_s), step.timeout_s)
    except TimeoutError:
        lookup_log.warning(log, f"lookup-timeout:{_lookup_kind(step)}",
                           "lookup %s timed out after %ss",
                           shown_url(step.url) if step.url else "profile", step.timeout_s)
    except HttpLookupError as exc:  # the URL once (its text has it too)
        lookup_log.warning(log, f"lookup-failed:{_lookup_kind(step)}", "lookup %s failed: %s",
                           shown_url(exc.url), exc.problem)
    except Exception as exc:  # noqa: BLE001 - any lookup failure takes on_error
        lookup_log.warning(log, f"lookup-failed:{_lookup_kind(step)}", "lookup %s failed: %s",
                           shown_url(step.url) if step.url else "profile", brief(exc))
    return None


#: lookup failures: one line a minute per kind (:func:`_lookup_kind`), with a count
lookup_log = Limited(60.0)


def _lookup_kind(step: LookupData) -> str:
    """What a failing lookup is rate-limited by: ``profile``, or the HTTP
    lookup's scheme, host and port (its path and query carry callers' data)."""
    if step.source == "profile" or not step.url:
        return "profile"
    try:
        parts = urllib.parse.urlsplit(step.url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port}"
    except ValueError:
        return "malformed"


def _epoch(kind: str, value: str, tz: str, now: dt.datetime) -> int | None:
    """'2026-11-23', '14:30', '2026-11-23 14:30' or epoch seconds -> epoch
    seconds; a time of day is taken on ``now``'s date (the run's clock)."""
    value = value.strip()
    if value.isdigit() and len(value) > 6:
        return int(value)
    try:
        if kind == "time":
            t = dt.time.fromisoformat(value)
            today = now.astimezone(zone(tz)).date()
            when = dt.datetime.combine(today, t, zone(tz))
        elif kind == "date":
            when = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(12), zone(tz))
        else:
            when = dt.datetime.fromisoformat(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=zone(tz))
    except ValueError:
        return None
    return int(when.timestamp())


async def say(session: AgiSession, step: SayValue, tz: str,
              now: dt.datetime) -> str | None:
    """SAY the value; the key that interrupted it, if any."""
    value, esc = step.value.strip(), step.escape_digits
    line: bytes | None = None
    if step.kind == "digits":
        digits = "".join(c for c in value if c.isdigit())
        line = agi.say_digits(digits, esc) if digits else None
    elif step.kind == "number":
        try:
            line = agi.say_number(int(Decimal(value)), esc)
        except (InvalidOperation, ValueError):
            line = None
    elif step.kind == "alpha":
        word = "".join(c for c in value if c.isalnum())
        line = agi.say_alpha(word, esc) if word else None
    elif step.kind == "money":
        return await _say_money(session, step, value)
    else:
        epoch = _epoch(step.kind, value, tz, now)
        line = None if epoch is None else agi.say_datetime(epoch, esc,
                                                           DATE_FORMATS[step.kind], tz)
    if line is None:
        log.warning("cannot say %s as %s; skipped", private(value), step.kind)
        return None
    res = await session.command(line)
    if res.failed:
        await alive(session)
    return res.digit if esc else None


async def _say_money(session: AgiSession, step: SayValue, value: str) -> str | None:
    try:
        amount = Decimal(value).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        log.warning("cannot say %s as money; skipped", private(value))
        return None
    esc = step.escape_digits
    units, cents = divmod(int(abs(amount) * 100), 100)
    for line, sound in ((agi.say_number(units, esc), step.money_unit),
                        (agi.say_number(cents, esc) if cents else None, step.money_cents)):
        if line is None:
            continue
        res = await session.command(line)
        if esc and res.digit:
            return res.digit
        digit = await play(session, (sound,), esc)
        if digit:
            return digit
    return None
