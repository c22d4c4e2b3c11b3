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
