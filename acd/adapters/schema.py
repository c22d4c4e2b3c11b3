"""The engine database's shared tables and how times are stored in them.

Every store (:mod:`acd.adapters.storage` for call records and
explanations, :mod:`acd.adapters.sms_store` for the SMS outbox,
:mod:`acd.adapters.profiles_store` for customers and agents) defines its
tables on the one :data:`metadata`, so one ``create_all`` makes them all.
The call-record tables live here because more than one store reads them
(the SMS report joins the callers); the stores import this module and
not each other.

Times are written as aware UTC datetimes (:func:`utc`); SQLite hands them
back naive (:func:`aware` puts the UTC back).

Every value written goes through a column's fit first (:func:`fit_text`,
:func:`fit_key`, :func:`fit_real`, :func:`fit_whole`, :func:`fit_row`), so
the database never refuses a row the engine made: text is cut to its
column's length (taken from the table, not kept twice), NUL (PostgreSQL
refuses it in text) and lone surrogates (no encoding takes them) become
U+FFFD, numbers that are not finite become NULL (or 0 where the column
needs a value), whole numbers are kept within PostgreSQL's ``integer``.
A key (a call id, an agent id, a token) too long for its column keeps its
head and ends in a hash of the whole (:func:`fit_key`), so two long keys
stay two keys and every table cuts a key the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, overload

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

call_records = Table(
    "call_records",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("caller", String(64), nullable=False, index=True),  # repeat callers, last agent
    Column("caller_name", String(128), nullable=False, default=""),
    Column("server", String(64), nullable=False, default=""),
    Column("started_at", DateTime(timezone=True), nullable=False, index=True),
    Column("ended_at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False, index=True),
    Column("ivr_path", String(1024), nullable=False, default=""),
    Column("queue", String(64)),
    Column("wait_s", Float),
    Column("agent_id", String(64)),
    Column("talk_s", Float),
    Column("offers", Integer, nullable=False, default=0),
    Column("customer_class", String(64), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=0),
    Column("first_queue", String(64)),
)

explanations = Table(
    "explanations",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("offer_id", Integer, primary_key=True),
    Column("agent_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("customer_class", String(64), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=0),
    Column("waited_s", Float, nullable=False),
    Column("stage", String(1024), nullable=False, default="[]"),
    Column("reason", String(256), nullable=False, default=""),
    Column("candidates", String(8192), nullable=False, default="[]"),
)


#: calls in progress, one row per call the engine has accepted and not yet
#: recorded: what a later engine process (a restart, a standby taking over)
#: needs to pick the call up and write its one record.  Written with the
#: call's decisions (same writer as the records); deleted in the transaction
#: that writes the call's record.
calls_live = Table(
    "calls_live",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("server", String(64), nullable=False, default=""),
    Column("channel", String(128), nullable=False, default=""),
    Column("caller", String(64), nullable=False, default=""),
    Column("caller_name", String(128), nullable=False, default=""),
    Column("state", String(16), nullable=False),  # ivr, waiting, offered, connected
    Column("started_at", Float, nullable=False),  # epoch seconds, as the core keeps them
    Column("queue", String(64)),
    Column("first_queue", String(64)),
    Column("queued_at", Float),
    Column("priority", Integer, nullable=False, default=0),
    Column("attributes", String(4096), nullable=False, default="{}"),  # JSON object
    Column("ivr_path", String(1024), nullable=False, default=""),
    Column("offers", Integer, nullable=False, default=0),
    Column("offer_id", Integer, nullable=False, default=0),
    Column("agent_id", String(64)),
    Column("answered_at", Float),
    Column("updated_at", Float, nullable=False),
)

#: each agent's last login state and pause (kept across restarts and takeovers)
agent_states = Table(
    "agent_states",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # an AgentState value
    Column("reason", String(128), nullable=False, default=""),
    Column("since", Float, nullable=False),
)


#: rows the database refused (one each: ``kind`` record, explanation, sms,
#: live, agent; ``ref`` its call or agent id; ``reason`` the database's
#: words; ``item`` the row as JSON, ASCII only, as the spool writes it), each
#: written in a transaction of its own, so that the rest are written
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("ref", String(64), nullable=False, default="", index=True),
    Column("reason", String(512), nullable=False, default=""),
    Column("item", Text, nullable=False),
)

#: the latest time a column takes (9999-12-31 23:59:59 UTC)
LATEST_TS = 253402300799.0


def utc(ts: float) -> dt.datetime:
    """A clock reading (seconds since the epoch) as an aware UTC datetime;
    one that is not a finite number in years 1970-9999 is clamped there (NaN:
    the epoch), so that no row is refused for its time."""
    return dt.datetime.fromtimestamp(fit_time(ts), tz=dt.UTC)


# ------------------------------------------------------------------ fitting

#: what no database takes in text: NUL (PostgreSQL) and lone surrogates
_REFUSED_TEXT = re.compile("[\x00\ud800-\udfff]")
#: columns that are keys (joined or looked up by their value): cut with a hash
KEY_COLUMNS = frozenset({"call_id", "agent_id", "token", "message_id", "ref"})
#: PostgreSQL ``integer``
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def _length(column: Column[Any]) -> int | None:
    return getattr(column.type, "length", None)


def text_fits(value: object, limit: int | None) -> bool:
    """``value`` is text a column of ``limit`` characters takes as it is."""
    return type(value) is str and (limit is None or len(value) <= limit) \
        and _REFUSED_TEXT.search(value) is None


def clean_text(value: object) -> str:
    """``value`` as text any database takes: NUL and lone surrogates become
    U+FFFD (one character each, so lengths do not change)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if _REFUSED_TEXT.search(text) is None:
        return text
    return _REFUSED_TEXT.sub("\ufffd", text)


def fit_key(value: object, limit: int) -> str:
    """A key cut to ``limit`` characters: its head, ``~`` and 16 hex digits
    of a BLAKE2b hash of the whole, so keys that differ stay different."""
    text = clean_text(value)
    if len(text) <= limit:
        return text
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
    return text[: max(0, limit - 17)] + "~" + digest


def fit_text(value: object, column: Column[Any]) -> str:
    """Text for ``column``: clean, and cut to its length (a key with
    :func:`fit_key`, other text ending in ``…``)."""
    text = clean_text(value)
    limit = _length(column)
    if limit is None or len(text) <= limit:
        return text
    if column.primary_key or column.unique or column.name in KEY_COLUMNS:
        return fit_key(text, limit)
    return text[: limit - 1] + "…"


def fit_real(value: object, nullable: bool = True) -> float | None:
    """A finite float; anything else (NaN, an infinity, not a number) is
    None, or 0.0 where the column needs a value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            f = float(value)
        except OverflowError:  # an int past float's range
            f = math.inf
        if math.isfinite(f):
            return f
    return None if nullable else 0.0


def fit_whole(value: object, nullable: bool = False) -> int | None:
    """A whole number within PostgreSQL's ``integer`` (clamped), or None/0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return min(max(value, INT_MIN), INT_MAX)
    if isinstance(value, float) and math.isfinite(value):
        return min(max(int(value), INT_MIN), INT_MAX)
    return None if nullable else 0


def fit_time(ts: object) -> float:
    """Seconds since the epoch within 1970..9999 (not a finite number: 0)."""
    f = fit_real(ts, nullable=False)
    assert f is not None
    return min(max(f, 0.0), LATEST_TS)


def fit_json(value: list[Any] | dict[str, Any], limit: int) -> str:
    """``value`` as JSON of at most ``limit`` characters: the longest head
    (list items, or mapping entries, in order) that fits, so the text is
    always JSON that reads back."""
    def dump(v: Any) -> str:
        return clean_text(json.dumps(v, ensure_ascii=False, default=str))

    text = dump(value)
    if len(text) <= limit:
        return text
    items = list(value.items()) if isinstance(value, dict) else list(value)

    def part(n: int) -> Any:
        return dict(items[:n]) if isinstance(value, dict) else items[:n]

    lo, hi = 0, len(items)  # part(lo) fits (the empty one does), part(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(dump(part(mid))) <= limit:
            lo = mid
        else:
            hi = mid
    return dump(part(lo))


def fit_row(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` fitted to ``table``'s columns (the keys it has; others are
    left as they are): the last line of defence, silent; the record writer
    fits its items first and says what it changed."""
    out = dict(row)
    for name, value in row.items():
        column = table.c.get(name)
        if column is None:
            continue
        kind = column.type
        if isinstance(kind, String):  # Text too
            if value is None and column.nullable:
                continue
            out[name] = fit_text(value, column)
        elif isinstance(kind, Float):
            out[name] = fit_real(value, bool(column.nullable))
        elif isinstance(kind, Integer):
            if value is None and column.nullable:
                continue
            out[name] = fit_whole(value, bool(column.nullable))
        elif isinstance(kind, DateTime):
            if isinstance(value, dt.datetime) or (value is None and column.nullable):
                continue
            out[name] = utc(value)
    return out


@overload
def aware(ts: dt.datetime) -> dt.datetime: ...
@overload
def aware(ts: None) -> None: ...
def aware(ts: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)
