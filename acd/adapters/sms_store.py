"""The SMS outbox, opt-outs and diversion events, in the engine's database.

An SMS is written in the same transaction as its call's record
(:meth:`acd.adapters.storage.Database.write_batch` calls :func:`insert_pending`),
so a call that is recorded has its SMS queued, and one that is not, has not.
``call_id`` is unique: one SMS per call, even if a record is written twice.
The cap per number and the opt-out list are applied there, in the
transaction, so they hold across restarts and engines.

Numbers: every number column holds the one form of the number
(:func:`acd.core.numbers.normalize`: ``+8613800138000``); the policy
normalises the SMS's number, the store normalises what it is given (opt-outs,
replies, app logins).  Reads also match the other forms that read as the
same number in the configured country, as an older version stored them or
as call records hold the caller id (:func:`acd.core.numbers.variants`:
``13800138000``, ``013800138000`` ...), so an opt-out written before still
holds, the cap counts all forms as one number, and the report counts a
call-back from ``013800138000``.  The transports get the number as it is
dialled in the configured country (``OutboxRow.to``: national, or ``00``
and the digits for a foreign number); the SMPP transport rewrites it for
its ``dest_ton``.

States: ``queued`` (waiting: quiet hours, or the gateway is down) ->
``sent`` (the gateway accepted it) -> ``delivered`` (its receipt came back);
or ``failed`` (refused for good, or too old), or ``suppressed`` (with the
reason: ``opted-out``, ``cap``, ``not-mobile``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from acd.adapters.schema import aware, call_records, fit_row, metadata, utc
from acd.core.numbers import DEFAULT_COUNTRY, dialled, normalize, variants
from acd.sms.policy import PendingSms

QUEUED, SENT, DELIVERED, FAILED, SUPPRESSED = "queued", "sent", "delivered", "failed", "suppressed"
COUNTED = (QUEUED, SENT, DELIVERED)  # what the cap counts

sms_outbox = Table(
    "sms_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), nullable=False, unique=True),
    Column("number", String(64), nullable=False, index=True),
    Column("rule", String(64), nullable=False),
    Column("template", String(64), nullable=False),
    Column("language", String(16), nullable=False),
    Column("text", String(2000), nullable=False),
    Column("token", String(32), nullable=False, unique=True),
    Column("state", String(16), nullable=False, index=True),
    Column("reason", String(256), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("send_after", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("message_id", String(128), index=True),
    Column("transport", String(16), nullable=False, default=""),
)

sms_optout = Table(
    "sms_optout",
    metadata,
    Column("number", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False, default=""),  # cli | reply | api
)

sms_events = Table(
    "sms_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # click | app_login
    Column("number", String(64), nullable=False, index=True),
    Column("token", String(32), index=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
)


async def insert_pending(conn: AsyncConnection, pending: Sequence[PendingSms]) -> None:
    """Queue (or suppress, with the reason: opted out, over its policy's cap)
    each SMS, inside the caller's transaction."""
    o = sms_outbox.c
    for p in pending:
        reason = p.suppressed
        forms = variants(p.number, p.country)  # the policy gives the one form
        if reason is None:
            opted = (await conn.execute(
                select(sms_optout.c.number).where(sms_optout.c.number.in_(forms)))).first()
            if opted is not None:
                reason = "opted-out"
        if reason is None:
            since = utc(p.created_at - p.cap_hours * 3600)
            n = (await conn.execute(select(func.count()).select_from(sms_outbox).where(
                o.number.in_(forms), o.state.in_(COUNTED), o.created_at > since))).scalar_one()
            if n >= p.cap_per_number:
                reason = f"cap: {n} in {p.cap_hours:g} h"
        # every value fitted to its column (lengths, NUL, encodings): never refused for it
        await conn.execute(sms_outbox.insert().values(**fit_row(sms_outbox, {
            "call_id": p.call_id, "number": p.number, "rule": p.rule, "template": p.template,
            "language": p.language, "text": p.text, "token": p.token,
            "state": SUPPRESSED if reason else QUEUED, "reason": reason or "",
            "created_at": utc(p.created_at), "send_after": utc(p.send_after),
            "next_attempt_at": utc(p.send_after), "attempts": 0})))


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    call_id: str
    number: str
    text: str
    attempts: int
    created_at: dt.datetime
    state: str
    reason: str
    rule: str
    message_id: str | None
    token: str
    to: str  # the number as the gateway takes it (acd.core.numbers.dialled)


def _row(r: Row[Any], country: str) -> OutboxRow:
    m = r._mapping
    created = aware(m["created_at"])
    assert created is not None
    return OutboxRow(m["id"], m["call_id"], m["number"], m["text"], m["attempts"],
                     created, m["state"], m["reason"], m["rule"], m["message_id"], m["token"],
                     dialled(m["number"], country))


class EngineOwner(Protocol):
    """What the store needs of :class:`acd.adapters.storage.Database` (which
    imports this module to queue SMS in the call record's transaction)."""

    @property
    def engine(self) -> AsyncEngine: ...

    #: called once a transaction that queued SMS has committed
    on_sms_written: Callable[[], None] | None


class SmsStore:
    def __init__(self, db: EngineOwner, country: str = DEFAULT_COUNTRY) -> None:
        self.db = db
        #: the configured country calling code (acd.yaml ``country_code``)
        self.country = country

    def identity(self, number: str) -> str:
        """``number`` in its one form, as the SMS tables key it."""
        return normalize(number, self.country)

    async def due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        o = sms_outbox.c
        q = select(sms_outbox).where(o.state == QUEUED, o.next_attempt_at <= utc(now)) \
            .order_by(o.id).limit(limit)
        async with self.db.engine.connect() as conn:
            return [_row(r, self.country) for r in (await conn.execute(q)).all()]

    async def next_due(self) -> float | None:
        """When the earliest queued SMS falls due (a timestamp); None when
        none is queued."""
        o = sms_outbox.c
        q = select(func.min(o.next_attempt_at)).where(o.state == QUEUED)
        async with self.db.engine.connect() as conn:
            at = (await conn.execute(q)).scalar()
        return None if at is None else aware(at).timestamp()

    async def _update(self, sms_id: int, only_if: str, **values: Any) -> bool:
        o = sms_outbox.c
        async with self.db.engine.begin() as conn:
            res = await conn.execute(update(sms_outbox).where(
                o.id == sms_id, o.state == only_if).values(**fit_row(sms_outbox, values)))
            return bool(res.rowcount)

    async def mark_sent(self, sms_id: int, message_id: str, transport: str, now: float,
                        attempts: int) -> bool:
        return await self._update(sms_id, QUEUED, state=SENT, message_id=message_id[:128],
                                  transport=transport[:16], sent_at=utc(now),
                                  attempts=attempts, reason="")

    async def mark_retry(self, sms_id: int, error: str, next_at: float, attempts: int) -> None:
        await self._update(sms_id, QUEUED, attempts=attempts, next_attempt_at=utc(next_at),
                           reason=error[:256])

    async def mark_failed(self, sms_id: int, reason: str, attempts: int) -> None:
        await self._update(sms_id, QUEUED, state=FAILED, reason=reason[:256],
                           attempts=attempts)

    async def mark_receipt(self, message_id: str, delivered: bool, status: str,
                           now: float) -> bool:
        o = sms_outbox.c
        values: dict[str, Any] = ({"state": DELIVERED, "delivered_at": utc(now)} if delivered
                                  else {"state": FAILED, "reason": f"receipt: {status}"[:256]})
        async with self.db.engine.begin() as conn:
            res = await conn.execute(update(sms_outbox).where(
                o.message_id == message_id, o.state == SENT).values(
                    **fit_row(sms_outbox, values)))
            return bool(res.rowcount)

    async def get(self, call_id: str) -> OutboxRow | None:
        async with self.db.engine.connect() as conn:
            r = (await conn.execute(select(sms_outbox).where(
                sms_outbox.c.call_id == call_id))).first()
        return _row(r, self.country) if r is not None else None

    async def rows(self, state: str | None = None, limit: int = 100) -> list[OutboxRow]:
        q = select(sms_outbox).order_by(sms_outbox.c.id.desc()).limit(limit)
        if state is not None:
            q = q.where(sms_outbox.c.state == state)
        async with self.db.engine.connect() as conn:
            return [_row(r, self.country) for r in (await conn.execute(q)).all()]

    # ------------------------------------------------------------ opt-outs

    async def opt_out(self, number: str, source: str, now: float) -> bool:
        """Add ``number`` (any form) to the opt-out list; also suppress what is
        still queued for it.  False if it was already there."""
        forms = variants(self.identity(number), self.country)
        async with self.db.engine.begin() as conn:
            there = (await conn.execute(select(sms_optout.c.number).where(
                sms_optout.c.number.in_(forms)))).first()
            if there is None:
                await conn.execute(sms_optout.insert().values(number=forms[0], at=utc(now),
                                                              source=source[:32]))
            await conn.execute(update(sms_outbox).where(
                sms_outbox.c.number.in_(forms), sms_outbox.c.state == QUEUED)
                .values(state=SUPPRESSED, reason="opted-out"))
            return there is None

    async def opt_in(self, number: str) -> bool:
        """Take ``number`` (any form) off the opt-out list; False if it was not on it."""
        forms = variants(self.identity(number), self.country)
        async with self.db.engine.begin() as conn:
            res = await conn.execute(delete(sms_optout).where(sms_optout.c.number.in_(forms)))
            return bool(res.rowcount)

    async def opted_out(self) -> list[dict[str, Any]]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(sms_optout).order_by(sms_optout.c.at))).all()
        return [dict(r._mapping) for r in rows]

    # -------------------------------------------------------------- events

    async def click(self, token: str, now: float) -> str | None:
        """The SMS link with ``token`` was opened; the number, or None if unknown."""
        async with self.db.engine.begin() as conn:
            number = (await conn.execute(select(sms_outbox.c.number).where(
                sms_outbox.c.token == token))).scalar_one_or_none()
            if number is None:
                return None
            await conn.execute(sms_events.insert().values(kind="click", number=number,
                                                          token=token, at=utc(now)))
            return str(number)

    async def app_login(self, number: str, now: float) -> None:
        """The app saw a login from ``number`` (any form): diversion."""
        number = self.identity(number)
        async with self.db.engine.begin() as conn:
            await conn.execute(sms_events.insert().values(kind="app_login", number=number,
                                                          token=None, at=utc(now)))

    # -------------------------------------------------------------- report

    async def report(self, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     tz: str = "UTC", window_days: float = 7.0) -> list[ReportRow]:
        """Per rule and day (in ``tz``): counts and rates; see docs/sms.md.

        The windows are computed here rather than in SQL: date arithmetic is
        not portable between SQLite and PostgreSQL.
        """
        import bisect

        from acd.ivr.hours import zone

        o = sms_outbox.c
        q = select(o.rule, o.number, o.token, o.created_at, o.sent_at, o.state, o.reason)
        if since is not None:
            q = q.where(o.created_at >= since)
        if until is not None:
            q = q.where(o.created_at < until)
        # calls and events are matched by the one number, in any stored form
        # (call records hold the caller id as the network gave it)
        ident = self.identity
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
            forms = sorted({f for r in rows
                            for f in variants(ident(r.number), self.country)})
            calls: dict[str, list[float]] = defaultdict(list)
            events: dict[str, list[tuple[float, str, str | None]]] = defaultdict(list)
            for i in range(0, len(forms), 500):
                chunk = forms[i:i + 500]
                cq = select(call_records.c.caller, call_records.c.started_at).where(
                    call_records.c.caller.in_(chunk))
                for caller, started in (await conn.execute(cq)).all():
                    t = aware(started)
                    assert t is not None
                    calls[ident(caller)].append(t.timestamp())
                eq = select(sms_events.c.number, sms_events.c.at, sms_events.c.kind,
                            sms_events.c.token).where(sms_events.c.number.in_(chunk))
                for number, at, kind, token in (await conn.execute(eq)).all():
                    t = aware(at)
                    assert t is not None
                    events[ident(number)].append((t.timestamp(), kind, token))
        for lst in calls.values():
            lst.sort()

        def called_back(number: str, t0: float, hours: float) -> bool:
            lst = calls.get(number, [])
            i = bisect.bisect_right(lst, t0)
            return i < len(lst) and lst[i] <= t0 + hours * 3600

        def diverted(number: str, token: str, t0: float) -> bool:
            end = t0 + window_days * 86400
            return any(t0 <= t <= end and (kind == "app_login" or tok == token)
                       for t, kind, tok in events.get(number, ()))

        tzinfo = zone(tz)
        acc: dict[tuple[str, str], ReportRow] = {}
        for rule, stored, token, created, sent, state, reason in rows:
            number = ident(stored)
            created_at = aware(created)
            assert created_at is not None
            day = created_at.astimezone(tzinfo).date().isoformat()
            r = acc.setdefault((rule, day), ReportRow(rule, day))
            r.candidates += 1
            if state == SUPPRESSED:
                r.suppressed += 1
                continue
            if state == QUEUED:
                r.queued += 1
                continue
            if state == FAILED and not _was_sent(reason):
                r.failed += 1
                continue
            t0 = (aware(sent) or created_at).timestamp()
            r.sent += 1
            r.delivered += state == DELIVERED
            r.failed += state == FAILED
            div = diverted(number, token, t0)
            back7 = called_back(number, t0, 24 * 7)
            r.diverted += div
            r.returned_24h += called_back(number, t0, 24)
            r.returned_7d += back7
            r.retained += div and not back7
        return sorted(acc.values(), key=lambda x: (x.day, x.rule))


def _was_sent(reason: str) -> bool:
    """A failed SMS counts as sent when the gateway took it (a failed receipt)."""
    return reason.startswith("receipt:")


@dataclass(slots=True)
class ReportRow:
    rule: str
    day: str
    candidates: int = 0  # SMS the rules wanted to send
    suppressed: int = 0
    queued: int = 0
    sent: int = 0  # accepted by the gateway
    delivered: int = 0
    failed: int = 0
    diverted: int = 0  # link opened or app login within the window
    returned_24h: int = 0  # called again within 24 h
    returned_7d: int = 0
    retained: int = 0  # diverted and did not call again within 7 days

    def rate(self, n: int) -> float | None:
        return n / self.sent if self.sent else None

    def add(self, other: ReportRow) -> None:
        for f in ("candidates", "suppressed", "queued", "sent", "delivered", "failed",
                  "diverted", "returned_24h", "returned_7d", "retained"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
