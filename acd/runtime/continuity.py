"""What a call needs to outlive the engine process, kept where the next
process can read it (docs/continuity.md):

- in the database: one ``calls_live`` row per call in progress
  (:class:`~acd.adapters.storage.LiveCallRow`), written with the call's
  decisions through the record writer and deleted in the transaction that
  writes its record; agents' states in ``agent_states``;
- on the caller's channel: ``ACD_CALL_ID`` (set as the call starts) and
  ``ACD_QUEUED`` (the queue, priority and attributes the IVR asked for, and
  when; set before the call is queued), so a call whose row had not reached
  the database yet is still found (manager.conf ``channelvars`` shows them
  in ``CoreShowChannels``); and ``ACD_CALL_SECRET``, the call's secret,
  which every FastAGI script of the call after the first must present
  (:func:`secret_matches`), read back the same way by a later process (it
  is never written to the database).

This module turns the core's calls into those rows and variables and back
into :class:`~acd.core.model.CallRestored` events; it does no I/O.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from acd.adapters.storage import AgentStateRow, LiveCallRow
from acd.core.center import Call
from acd.core.model import (
    Action,
    AgentState,
    AgentStateChanged,
    CallRestored,
    CallState,
    ConnectCall,
    Event,
    FallbackCall,
    TimerFired,
)

#: the channel variables the engine sets on a caller (manager.conf
#: ``channelvars`` lists them, so CoreShowChannel events carry them)
CALL_ID_VAR = "ACD_CALL_ID"
QUEUED_VAR = "ACD_QUEUED"
OFFER_VAR = "ACD_OFFER"
#: the call's secret, set on the channel as the call starts: the dialplan
#: passes ``${ACD_CALL_SECRET}`` to every later script of the call (requeue,
#: resume, fallback), which is refused without it
SECRET_VAR = "ACD_CALL_SECRET"
#: the pause reason of an agent whose phone was busy with a call not ours
PHONE_BUSY = "phone-in-use"
#: res_agi reads a command line of at most 2048 bytes: keep SET VARIABLE under it
_VAR_MAX = 1500


def new_secret() -> str:
    """A call's secret: 128 random bits as 22 URL-safe characters (no
    comma, quote or space: it goes through the dialplan as an argument)."""
    return secrets.token_urlsafe(16)


def secret_matches(presented: str, secret: str) -> bool:
    """Does ``presented`` (from a FastAGI request) equal the call's
    ``secret``?  In constant time: how long it takes says nothing of how
    much of it was right."""
    return hmac.compare_digest(presented.encode("utf-8", "replace"),
                               secret.encode("utf-8", "replace"))


def touched(event: Event, actions: Sequence[Action]) -> Iterator[str]:
    """The calls one decision may have changed: the event's call, the calls
    it offered or sent to a fallback, an escalation timer's call."""
    call_id = getattr(event, "call_id", None)
    if isinstance(call_id, str):
        yield call_id
    elif isinstance(event, TimerFired) and event.key[0] in ("escalate", "max_wait"):
        yield event.key[1]
    for action in actions:
        if isinstance(action, ConnectCall | FallbackCall):
            yield action.call_id


def live_row(call: Call, now: float) -> LiveCallRow | None:
    """The row of a call the core holds (None once it has ended)."""
    state = call.state
    if state is CallState.ENDED:
        return None
    return LiveCallRow(
        call_id=call.call_id, server=call.server, channel=call.channel, caller=call.caller,
        caller_name=call.caller_name, state=state.value, started_at=call.started_at,
        queue=call.queue, first_queue=call.first_queue, queued_at=call.queued_at,
        priority=call.priority, attributes=tuple(
            (k, v) for k, v in call.attrs.items() if k != "number"),
        ivr_path=call.ivr_path, offers=call.offers, offer_id=call.offer_id,
        agent_id=call.agent_id, answered_at=call.answered_at, updated_at=now,
        # connected: its recording; ringing: the file its offer set on the
        # channel (the dialplan records into it if that offer is answered)
        recording=call.offer_recording if state is CallState.OFFERED else call.recording)


def agent_row(change: AgentStateChanged) -> AgentStateRow:
    return AgentStateRow(change.agent_id, change.new.value, change.reason, change.at)


def restored(row: LiveCallRow, *, state: str | None = None, agent_id: str | None = None,
             offer_id: int | None = None, answered_at: float | None = None,
             channel: str | None = None) -> CallRestored:
    """The core event that puts a row's call back; ``state`` overrides the
    row's (the PBX says where the caller really is): ``ivr``, ``waiting``,
    ``offered`` (to ``agent_id``) or ``connected``."""
    state = state or row.state
    queue = row.queue if state != "ivr" else None
    if queue is None and state != "ivr":
        state = "ivr"  # no queue known: it starts its flow again
    with_agent = state in ("offered", "connected")
    agent = (agent_id or row.agent_id) if with_agent else None
    answered = (answered_at if answered_at is not None else row.answered_at) \
        if state == "connected" else None
    return CallRestored(
        row.call_id, row.caller, row.caller_name, channel or row.channel, row.server,
        row.started_at, queue=queue, first_queue=row.first_queue, queued_at=row.queued_at,
        priority=row.priority, attributes=row.attributes, ivr_path=row.ivr_path,
        offers=row.offers, offer_id=offer_id if offer_id is not None else row.offer_id,
        agent_id=agent, answered_at=answered,
        recording=row.recording if state in ("offered", "connected") else "")


# ------------------------------------------------------- channel variables


def queued_var(queue: str, priority: int, attributes: Mapping[str, str], queued_at: float,
               started_at: float, ivr_path: Sequence[str]) -> str:
    """``ACD_QUEUED``: what the IVR asked for and when, URL-encoded.
    Attributes that would make it too long for one AGI line are left out
    (the database row has them)."""
    head = [("q", queue), ("p", str(priority)), ("at", f"{queued_at:.3f}"),
            ("s", f"{started_at:.3f}"), ("path", ">".join(ivr_path)[:256])]
    text = urlencode(head)
    for k, v in attributes.items():
        part = "&" + urlencode([("a." + k, v)])
        if len(text) + len(part) > _VAR_MAX:
            break
        text += part
    return text


@dataclass(frozen=True, slots=True)
class Queued:
    """``ACD_QUEUED`` read back."""

    queue: str
    priority: int
    queued_at: float
    started_at: float
    ivr_path: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]


def parse_queued(text: str | None) -> Queued | None:
    """``ACD_QUEUED`` as set by :func:`queued_var`; None when absent or not ours."""
    if not text:
        return None
    fields: dict[str, str] = {}
    attrs: list[tuple[str, str]] = []
    for k, v in parse_qsl(text, keep_blank_values=True):
        if k.startswith("a."):
            attrs.append((k[2:], v))
        else:
            fields[k] = v
    try:
        return Queued(queue=fields["q"], priority=int(fields.get("p", "0")),
                      queued_at=float(fields["at"]), started_at=float(fields.get("s", "0")),
                      ivr_path=tuple(p for p in fields.get("path", "").split(">") if p),
                      attributes=tuple(attrs))
    except (KeyError, ValueError):
        return None


def row_from_channel(call_id: str, queued: Queued, *, caller: str, caller_name: str,
                     channel: str, server: str, now: float) -> LiveCallRow:
    """A waiting call known only from its channel (its row never reached the
    database): the IVR's queue request, to be routed again (``reroute``)."""
    return LiveCallRow(
        call_id=call_id, server=server, channel=channel, caller=caller,
        caller_name=caller_name, state="waiting", started_at=queued.started_at or now,
        queue=queued.queue, first_queue=None, queued_at=queued.queued_at,
        priority=queued.priority, attributes=queued.attributes, ivr_path=queued.ivr_path,
        offers=0, offer_id=0, agent_id=None, answered_at=None, updated_at=now)


def ivr_row_from_channel(call_id: str, *, caller: str, caller_name: str, channel: str,
                         server: str, started_at: float, now: float) -> LiveCallRow:
    """A call still in the IVR known only from its channel's ``ACD_CALL_ID``
    (its row never reached the database): its flow starts again."""
    return LiveCallRow(
        call_id=call_id, server=server, channel=channel, caller=caller,
        caller_name=caller_name, state="ivr", started_at=started_at, queue=None,
        first_queue=None, queued_at=None, priority=0, attributes=(), ivr_path=(),
        offers=0, offer_id=0, agent_id=None, answered_at=None, updated_at=now)


def login_events(rows: Sequence[AgentStateRow]) -> Iterator[tuple[str, str, str]]:
    """(agent id, what, reason) to put each agent back: ``login`` (ready),
    ``pause`` (logged in, paused with the reason) or ``out``.  A pause for
    ring-no-answer is not kept (its timer died with the process), nor one
    for a busy phone (the start-up looks at the phone again): ready."""
    for row in rows:
        try:
            state = AgentState(row.state)
        except ValueError:
            continue
        if state is AgentState.LOGGED_OUT:
            yield row.agent_id, "out", ""
        elif state is AgentState.PAUSED and not row.reason.startswith("offer ") \
                and row.reason != PHONE_BUSY:
            yield row.agent_id, "pause", row.reason
        else:
            yield row.agent_id, "login", ""
