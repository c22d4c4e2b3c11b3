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
"""

from __future__ import annotations

import datetime as dt
from typing import overload

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table

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


def utc(ts: float) -> dt.datetime:
    """A clock reading (seconds since the epoch) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@overload
def aware(ts: dt.datetime) -> dt.datetime: ...
@overload
def aware(ts: None) -> None: ...
def aware(ts: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)
