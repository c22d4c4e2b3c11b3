"""Carry out IVR steps over FastAGI.

The sans-I/O :class:`~acd.ivr.interpreter.FlowRun` says what to do; this
module turns each step into AGI commands and the replies into the run's
next input:

====================  ======================================================
PlayPrompt            ``STREAM FILE`` per sound file (a key stops the rest)
SayValue              in a composed language (zh, yue, nan: the
                      ``say_composed`` setting) ``STREAM FILE`` per prompt
                      of :mod:`acd.ivr.saying` (acd/num/..., acd/yuan, ...);
                      else ``SAY DIGITS|NUMBER|ALPHA``, ``SAY DATETIME``
                      (date, time) in the flow's time zone, money as
                      ``SAY NUMBER`` + unit + cents
CollectDigit          ``GET DATA <p1&p2> <timeout ms> 1``
CollectDigits         ``GET DATA <prompts> <timeout ms> <max digits>``
SetLanguage           ``SET VARIABLE CHANNEL(language) <lang>``
LookupData            the profile store or an HTTP GET (JSON), under a timeout
RecordFile            ``RECORD FILE <file> wav "#" <ms> BEEP [s=<silence>]``
====================  ======================================================

A hangup in the middle of any of them raises
:class:`~acd.adapters.fastagi.AgiHangupError` out of :func:`run_flow`.
A ``-1`` that is no hang-up (a sound file missing on the Asterisk server:
GET DATA then answers at once, as if the caller typed nothing) is logged
with the prompt's name and the call, once a minute per prompt
(:data:`play_log`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Collection, Mapping
from decimal import Decimal, InvalidOperation

from acd.adapters.fastagi import AgiSession
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
from acd.ivr.prompt_names import BEEP, MINUS, SILENCE
from acd.ivr.saying import COMPOSED_LANGUAGES, SayError, compose, composes, local_time
from acd.logs import Limited, brief, private
from acd.protocols import agi
from acd.runtime.http_lookup import HttpLookupError, shown_url

log = logging.getLogger(__name__)

ProfileLookup = Callable[[], Awaitable[Mapping[str, str] | None]]
HttpLookup = Callable[[str, float], Awaitable[Mapping[str, object] | None]]
Clock = Callable[[], dt.datetime]

DATE_FORMATS = {"date": "ABdY", "time": "IMp", "datetime": "ABdY 'digits/at' IMp"}


async def run_flow(session: AgiSession, run: FlowRun, *, clock: Clock,
                   profile: ProfileLookup, http: HttpLookup,
                   before_step: Callable[[], Awaitable[None]] | None = None,
                   composed: Collection[str] = COMPOSED_LANGUAGES) -> Terminal:
    """Walk ``run`` to its end over ``session``; returns the terminal step.
    ``composed``: the languages whose values are said from the pack's own
    prompts (:mod:`acd.ivr.saying`) rather than by Asterisk's SAY commands.
    ``before_step`` is called after each step's commands, before the flow
    goes on: what arrived meanwhile (the caller's profile, looked up while
    the welcome played) is in the run before the nodes after that step
    (a branch on ``caller.vip_level``) are decided.  The channel's language
    is set to the flow's default first when it differs."""
    step: Step = run.start(clock())
    if session.request.language != run.language:
        # the flow speaks its own default language until a language node
        # changes it: a channel still in the trunk's (Asterisk's default is
        # en) would look its prompts up in sounds/en/ first
        await session.set_variable("CHANNEL(language)", run.language)
    while not run.done:
        reply = await _carry_out(session, run, step, profile, http, composed)
        if before_step is not None:
            await before_step()
        step = run.resume(reply, clock())
    assert run.end is not None
    return run.end


async def alive(session: AgiSession) -> None:
    """After a -1 reply: a hang-up, or only a failure (a missing file)?  A hang-up
    is announced by an unsolicited HANGUP line that the next command meets, so
    ask a NOOP now (raises AgiHangupError) while the flow is still at the node
    where it happened."""
    await session.command(agi.noop())


#: what did not play (a sound file missing on the Asterisk server, a SAY in
#: a language it has no digits for): one line a minute per prompt, with a count
play_log = Limited(60.0)


def call_of(session: AgiSession) -> str:
    """The call a session serves, for a log line (its channel's uniqueid
    until the handler has taken it)."""
    return session.owner or session.request.uniqueid


def not_played(session: AgiSession, command: str, name: str, what: str) -> None:
    """Log that ``command`` ``name`` answered -1 and the channel is still
    there (:func:`alive` returned): the file is missing, not the caller."""
    play_log.warning(log, f"{command} {name}", "call %s: %s %s did not play: %s",
                     call_of(session), command, name, what)


#: Asterisk looks a file up in sounds/<language>/, then sounds/, then sounds/en/
#: (main/file.c fileexists_core)
MISSING = ("no such sound file on the Asterisk server (in sounds/<the channel's "
           "language>/, sounds/ or sounds/en/)")


async def play(session: AgiSession, prompts: tuple[str, ...], escape: str = "") -> str | None:
    """Play files in a row; the key that stopped them, if any.  A file that
    does not play is logged (:func:`not_played`) and skipped; a hang-up
    raises AgiHangupError."""
    for name in prompts:
        res = await session.stream_file(name, escape)
        if res.result < 0:
            await alive(session)
            not_played(session, "STREAM FILE", name, MISSING)
            continue
        if escape and res.digit:
            return res.digit
    return None


async def get_data(session: AgiSession, prompt: str, timeout_ms: int,
                   max_digits: int) -> tuple[str, bool]:
    """GET DATA: the digits typed ("" for none) and whether it timed out.
    A -1 without a hang-up means its prompt is missing: GET DATA then
    returns at once, before the caller could type; logged
    (:func:`not_played`) and taken as no input (a time-out)."""
    res = await session.get_data(prompt, timeout_ms, max_digits)
    if not res.failed:
        return res.value, res.timeout
    await alive(session)
    not_played(session, "GET DATA", prompt, MISSING + "; it answered at once, so the "
               "caller heard nothing and had no time to answer: taken as no input")
    return "", True


async def _carry_out(session: AgiSession, run: FlowRun, step: Step,
                     profile: ProfileLookup, http: HttpLookup,
                     composed: Collection[str]) -> Reply:
    match step:
        case PlayPrompt():
            return Key(await play(session, step.prompts, step.escape_digits))
        case SayValue():
            digit = await play(session, step.prompts, step.escape_digits)
            if digit is None:
                digit = await say(session, step, run.flow.timezone, run.now,
                                  language=run.language, composed=composed)
            return Key(digit)
        case CollectDigit():
            # GET DATA plays one file (only Playback/Read split on '&'): the
            # prompts before the last play with every key as escape digit
            first = await play(session, step.prompts[:-1], ALL_KEYS)
            if first is not None:
                return Key(first)
            value, _ = await get_data(session, step.prompts[-1], int(step.timeout_s * 1000), 1)
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
            typed_now, timeout = await get_data(session, prompt, int(step.timeout_s * 1000), left)
            value = (first or "") + typed_now
            return Digits(value, timed_out=timeout and not value)
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
                if step.beep and res.data == "randomerror":
                    not_played(session, "RECORD FILE", BEEP, MISSING + "; nothing recorded")
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
    when = local_time(kind, value, tz, now)
    return None if when is None else int(when.timestamp())


def _cannot_say(session: AgiSession, kind: str, value: str) -> None:
    play_log.warning(log, f"cannot say {kind}", "call %s: cannot say %s as %s; skipped",
                     call_of(session), private(value), kind)


async def say(session: AgiSession, step: SayValue, tz: str, now: dt.datetime, *,
              language: str = "en",
              composed: Collection[str] = COMPOSED_LANGUAGES) -> str | None:
    """Say the value in ``language`` (the call's); the key that interrupted
    it, if any.  In a language of ``composed``, from the pack's own prompts
    (:func:`acd.ivr.saying.compose`), one STREAM FILE each; else with
    Asterisk's SAY commands."""
    value, esc = step.value.strip(), step.escape_digits
    if composes(step.kind, language, composed):
        try:
            prompts = compose(step.kind, value, language, tz=tz, now=now,
                              money_unit=step.money_unit, money_cents=step.money_cents)
        except SayError:
            _cannot_say(session, step.kind, value)
            return None
        return await play(session, prompts, esc)
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
        _cannot_say(session, step.kind, value)
        return None
    return await _say_line(session, line, esc)


async def _say_line(session: AgiSession, line: bytes, esc: str) -> str | None:
    """One SAY command; the key that interrupted it.  A -1 that is no
    hang-up: Asterisk lacks the sounds it says with (``digits/``,
    ``letters/``) in the channel's language: logged."""
    res = await session.command(line)
    if res.failed:
        await alive(session)
        command = " ".join(line.decode(errors="replace").split()[:2])
        play_log.warning(log, command, "call %s: %s did not play: Asterisk's own sounds "
                         "for it (digits/, letters/) are missing for the channel's language",
                         call_of(session), command)
        return None
    return res.digit if esc else None


async def say_number(session: AgiSession, n: int, language: str,
                     composed: Collection[str] = COMPOSED_LANGUAGES) -> None:
    """Say a whole number (the hold announcements): composed in a language
    of ``composed``, else ``SAY NUMBER``."""
    if composes("number", language, composed):
        await play(session, compose("number", str(n), language))
    else:
        await _say_line(session, agi.say_number(n), "")


async def _say_money(session: AgiSession, step: SayValue, value: str) -> str | None:
    try:
        amount = Decimal(value).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        _cannot_say(session, "money", value)
        return None
    esc = step.escape_digits
    if amount < 0:  # in arrears: "minus" (Asterisk's own digits/minus), then the amount
        digit = await play(session, (MINUS,), esc)
        if digit:
            return digit
    units, cents = divmod(int(abs(amount) * 100), 100)
    for line, sound in ((agi.say_number(units, esc), step.money_unit),
                        (agi.say_number(cents, esc) if cents else None, step.money_cents)):
        if line is None:
            continue
        digit = await _say_line(session, line, esc)
        if digit:
            return digit
        digit = await play(session, (sound,), esc)
        if digit:
            return digit
    return None
