"""The engine database's shared tables and how times are stored in them.

Every store (:mod:`acd.adapters.storage` for call records and
explanations, :mod:`acd.adapters.sms_store` for the SMS outbox,
:mod:`acd.adapters.profiles_store` for customers and agents,
:mod:`acd.adapters.qa_store` for quality review samples and scores) defines its
tables on the one :data:`metadata`, so one ``create_all`` makes them all
(the quality review's tables are defined here, so they are made whatever
was imported before).
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

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

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
    Column("recording", String(512)),  # the recording's file on the PBX; NULL: none
    # when it was queued and answered (NULL: never; rows of older versions: unknown)
    Column("queued_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    # how a call that ended in the IVR ended (IvrEnded.reason); NULL: queued, or unknown
    Column("ivr_end", String(128)),
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
    Column("recording", String(512)),  # a connected call's recording (kept across a restart)
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

#: every agent state change, in order (``acd report calls`` replays them for
#: occupancy, utilisation and wrap-up; docs/reports.md)
agent_events = Table(
    "agent_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("old_state", String(16), nullable=False),  # an AgentState value
    Column("new_state", String(16), nullable=False),
    Column("reason", String(128), nullable=False, default=""),
    # each agent's last change before a report's start (acd report calls)
    Index("ix_agent_events_agent_id_at", "agent_id", "at"),
)

#: Asterisk's realtime queue_log (its columns and lengths as Asterisk's own
#: schema, contrib/ast-db-manage queue_log; the data split in data1..data5),
#: written when ``queue_log: table: true`` (docs/reports.md#queue_log); ``time`` UTC
queue_log = Table(
    "queue_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("callid", String(80), nullable=False, default=""),
    Column("queuename", String(256), nullable=False, default=""),
    Column("agent", String(80), nullable=False, default=""),
    Column("event", String(32), nullable=False, default=""),
    Column("data1", String(100), nullable=False, default=""),
    Column("data2", String(100), nullable=False, default=""),
    Column("data3", String(100), nullable=False, default=""),
    Column("data4", String(100), nullable=False, default=""),
    Column("data5", String(100), nullable=False, default=""),
)


#: rows the database refused (one each: ``kind`` record, explanation, sms,
#: live, agent, agent_event; ``ref`` its call or agent id; ``reason`` the database's
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

# Quality review (docs/quality.md; read and written by acd.adapters.qa_store).
# Here, beside the others, so that every ``Database.create()`` makes them.
#: one row per kept draw of ``acd qa sample``, with the options that drew it
#: (``rate`` an exact fraction like ``1/20``, or ``per_agent``; ``reviewers``
#: comma separated, in the order given: the assignment depends on it)
qa_draws = Table(
    "qa_draws",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("week", String(8), nullable=False, index=True),
    Column("drawn_at", DateTime(timezone=True), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("rate", String(32)),
    Column("per_agent", Integer),
    Column("min_one", Boolean, nullable=False, default=False),
    Column("tz", String(64), nullable=False, default=""),
    Column("reviewers", Text, nullable=False, default=""),
    Column("again", Boolean, nullable=False, default=False),
    Column("population", Integer, nullable=False, default=0),
)

#: one row per drawn call (``call_id`` is the key: a call is drawn once, ever);
#: ``draw_id`` its row in ``qa_draws`` (NULL: drawn before the draws were kept)
qa_samples = Table(
    "qa_samples",
    metadata,
    Column("call_id", String(64), primary_key=True),
    Column("week", String(8), nullable=False, index=True),  # 2026-W48
    Column("agent_id", String(64), nullable=False, index=True),
    Column("queue", String(64), nullable=False, default=""),
    Column("reviewer", String(64), nullable=False, index=True),
    Column("drawn_at", DateTime(timezone=True), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("status", String(16), nullable=False, default="assigned"),
    Column("draw_id", Integer, index=True),
)

#: every score given (a call scored again keeps its history)
qa_scores = Table(
    "qa_scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), nullable=False, index=True),
    Column("form", String(64), nullable=False),
    Column("form_version", String(32), nullable=False),
    Column("reviewer", String(64), nullable=False, index=True),
    Column("scored_at", DateTime(timezone=True), nullable=False, index=True),
    Column("score", Float, nullable=False),
    Column("fatal", Boolean, nullable=False, default=False),
    Column("passed", Boolean),  # None: the form has no pass mark
    Column("answers", Text, nullable=False),  # JSON {item: {answer, ratio, passed}}
    Column("comment", Text, nullable=False, default=""),
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


def add_missing_columns(conn: Any) -> list[str]:
    """Bring an existing database's tables up to :data:`metadata`:
    ``create_all`` makes missing tables but never adds a column a newer
    version defines (``call_records.queued_at``, ...), so each one missing
    is added here with ``ALTER TABLE ... ADD COLUMN`` (``conn``: a sync
    SQLAlchemy connection, in the transaction of ``create_all``).  A
    column that must have a value and has no constant default cannot be
    added to a table with rows: ``RuntimeError`` naming it.  Returns
    ``table.column`` of each column added."""
    from sqlalchemy import inspect, literal
    from sqlalchemy.exc import SQLAlchemyError

    insp = inspect(conn)
    present = set(insp.get_table_names())
    added: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for column in table.c:
            if column.name in have:
                continue
            ddl = column.type.compile(dialect=conn.dialect)
            if not column.nullable:
                default = column.default.arg if column.default is not None else None  # type: ignore[attr-defined]
                if default is None or callable(default):
                    raise RuntimeError(
                        f"table {table.name} has no column {column.name}, which this version "
                        "needs and cannot add to existing rows: recreate the table or add the "
                        "column by hand (docs/operations.md, \"Interval reports and live "
                        "statistics\")")
                value = literal(default).compile(dialect=conn.dialect,
                                                 compile_kwargs={"literal_binds": True})
                ddl += f" NOT NULL DEFAULT {value}"
            name = conn.dialect.identifier_preparer.quote(column.name)
            table_name = conn.dialect.identifier_preparer.format_table(table)
            try:
                with conn.begin_nested():  # a failure leaves the transaction usable
                    conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {name} {ddl}")
            except SQLAlchemyError as exc:
                # another process upgrading at the same time added it first: done
                if column.name in {c["name"] for c in inspect(conn).get_columns(table.name)}:
                    continue
                raise RuntimeError(f"cannot add the column {table.name}.{column.name}: "
                                   f"{getattr(exc, 'orig', None) or exc}") from None
            added.append(f"{table.name}.{column.name}")
    return added


def add_missing_indexes(conn: Any) -> list[str]:
    """Make the indexes of :data:`metadata` that existing tables lack
    (``create_all`` makes a table's indexes only with the table), as
    ``CREATE INDEX`` with a check first; one another process made at the
    same time counts as made.  A failure: ``RuntimeError`` naming the
    index.  Returns ``table.index`` of each index made."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    insp = inspect(conn)
    present = set(insp.get_table_names())
    made: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {i["name"] for i in insp.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name is None or index.name in have:
                continue
            try:
                with conn.begin_nested():
                    index.create(conn, checkfirst=True)
            except SQLAlchemyError as exc:
                if index.name in {i["name"] for i in inspect(conn).get_indexes(table.name)}:
                    continue
                raise RuntimeError(f"cannot make the index {index.name} on {table.name}: "
                                   f"{getattr(exc, 'orig', None) or exc}") from None
            made.append(f"{table.name}.{index.name}")
    return made
