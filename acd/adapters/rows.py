"""The rows the record writer carries (call records, explanations, SMS,
calls in progress, agents' states): fitted to their tables before they are
queued, and written to and read from the local spool as JSON.

- :func:`fit_item` makes an item the database cannot refuse (the lengths
  come from the tables in :mod:`acd.adapters.schema`) and says which fields
  it changed, by name only (never the values: they may be a caller's number
  or name);
- :func:`to_json` / :func:`from_json`: one item as a JSON object
  (``{"k": kind, "v": fields}``), ASCII only, read back to the same item;
- :func:`kind` and :func:`ref` name an item in a dead letter or a log line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table

from acd.adapters.schema import (
    INT_MAX,
    INT_MIN,
    LATEST_TS,
    agent_events,
    agent_states,
    call_records,
    calls_live,
    clean_text,
    explanations,
    fit_real,
    fit_text,
    fit_time,
    fit_whole,
    queue_log,
    text_fits,
)
from acd.adapters.sms_store import sms_outbox
from acd.core.model import CallRecord, Candidate, Explanation, Outcome
from acd.reports.queue_log import QueueLogEntry
from acd.sms.policy import PendingSms

__all__ = ["AgentEventRow", "AgentStateRow", "Item", "LiveCallRow", "fit_item", "from_json",
           "kind", "ref", "to_json"]


@dataclass(frozen=True, slots=True)
class LiveCallRow:
    """A call in progress as the next engine process needs it (table
    ``calls_live``): written with the call's decisions, gone with its record."""

    call_id: str
    server: str
    channel: str
    caller: str
    caller_name: str
    state: str  # ivr, waiting, offered, connected
    started_at: float
    queue: str | None
    first_queue: str | None
    queued_at: float | None
    priority: int
    attributes: tuple[tuple[str, str], ...]
    ivr_path: tuple[str, ...]
    offers: int
    offer_id: int
    agent_id: str | None
    answered_at: float | None
    updated_at: float
    #: the file its recording goes to ("" = none)
    recording: str = ""


@dataclass(frozen=True, slots=True)
class AgentStateRow:
    """An agent's last state and pause reason (table ``agent_states``)."""

    agent_id: str
    state: str  # an AgentState value
    reason: str
    since: float


@dataclass(frozen=True, slots=True)
class AgentEventRow:
    """One agent state change (table ``agent_events``, a log: every change
    is a row of its own; ``acd report calls`` replays them)."""

    agent_id: str
    at: float
    old_state: str  # an AgentState value
    new_state: str
    reason: str


Item = (AgentEventRow | CallRecord | Explanation | PendingSms | LiveCallRow | AgentStateRow
        | QueueLogEntry)

#: an item's kind, as dead letters and the spool name it
_KINDS: dict[type, str] = {CallRecord: "record", Explanation: "explanation", PendingSms: "sms",
                           LiveCallRow: "live", AgentStateRow: "agent",
                           AgentEventRow: "agent_event",
                           QueueLogEntry: "queue_log"}

#: the most characters of the IVR path (call_records.ivr_path, calls_live.ivr_path)
PATH_LIMIT = 1024
#: the most characters of a call's attributes as JSON (calls_live.attributes)
ATTRS_LIMIT = 4096


def kind(item: Item) -> str:
    return _KINDS[type(item)]


def ref(item: Item) -> str:
    """The call or agent an item belongs to (as the tables key it)."""
    if isinstance(item, AgentStateRow | AgentEventRow):
        return item.agent_id
    return item.call_id


class _Fitter:
    """Fits the fields of one item, noting the names of those it changed."""

    __slots__ = ("changed", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        self.changed: list[str] = []

    def _col(self, name: str) -> Column[Any]:
        return self.table.c[name]

    def text(self, name: str, value: str) -> str:
        out = fit_text(value, self._col(name))
        if out != value:
            self.changed.append(name)
        return out

    def opt_text(self, name: str, value: str | None) -> str | None:
        return None if value is None else self.text(name, value)

    def real(self, name: str, value: float | None) -> float | None:
        out = fit_real(value)
        if out != value:
            self.changed.append(name)
        return out

    def time(self, name: str, value: float) -> float:
        out = fit_time(value)
        if out != value:
            self.changed.append(name)
        return out

    def opt_time(self, name: str, value: float | None) -> float | None:
        return None if value is None else self.time(name, value)

    def whole(self, name: str, value: int) -> int:
        out = fit_whole(value)
        assert out is not None
        if out != value or type(value) is not int:
            self.changed.append(name)
        return out

    def path(self, name: str, value: tuple[str, ...]) -> tuple[str, ...]:
        """IVR node names: clean, as many as fit the column once joined with ``>``."""
        out: list[str] = []
        size = -1
        for step in value:
            step = clean_text(step)
            size += len(step) + 1
            if size > PATH_LIMIT:
                break
            out.append(step)
        result = tuple(out)
        if result != tuple(value):
            self.changed.append(name)
        return result


def _fit_record(r: CallRecord, f: _Fitter) -> CallRecord:
    outcome = r.outcome if isinstance(r.outcome, Outcome) else Outcome(str(r.outcome))
    return CallRecord(
        call_id=f.text("call_id", r.call_id), caller=f.text("caller", r.caller),
        caller_name=f.text("caller_name", r.caller_name),
        started_at=f.time("started_at", r.started_at), ended_at=f.time("ended_at", r.ended_at),
        outcome=outcome, ivr_path=f.path("ivr_path", r.ivr_path),
        queue=f.opt_text("queue", r.queue), queued_at=f.opt_time("queued_at", r.queued_at),
        wait_s=f.real("wait_s", r.wait_s), agent_id=f.opt_text("agent_id", r.agent_id),
        answered_at=f.opt_time("answered_at", r.answered_at), talk_s=f.real("talk_s", r.talk_s),
        offers=f.whole("offers", r.offers), server=f.text("server", r.server),
        customer_class=f.text("customer_class", r.customer_class),
        priority=f.whole("priority", r.priority),
        first_queue=f.opt_text("first_queue", r.first_queue),
        ivr_end=f.text("ivr_end", r.ivr_end),
        recording=f.text("recording", r.recording))


def _fit_explanation(e: Explanation, f: _Fitter) -> Explanation:
    def finite(x: float) -> float:
        return fit_real(x, nullable=False) or 0.0

    candidates = tuple(
        Candidate(clean_text(c.agent_id), finite(c.score),
                  tuple((clean_text(k), finite(v)) for k, v in c.terms))
        for c in e.candidates)
    if candidates != tuple(e.candidates):
        f.changed.append("candidates")
    stage = tuple(clean_text(s) for s in e.stage)
    if stage != tuple(e.stage):
        f.changed.append("stage")
    waited = fit_real(e.waited_s, nullable=False)
    if waited != e.waited_s:
        f.changed.append("waited_s")
    return Explanation(
        call_id=f.text("call_id", e.call_id), offer_id=f.whole("offer_id", e.offer_id),
        agent_id=f.text("agent_id", e.agent_id), at=f.time("at", e.at),
        queue=f.text("queue", e.queue), customer_class=f.text("customer_class", e.customer_class),
        priority=f.whole("priority", e.priority), waited_s=waited or 0.0, stage=stage,
        reason=f.text("reason", e.reason), candidates=candidates)


def _fit_sms(p: PendingSms, f: _Fitter) -> PendingSms:
    suppressed = None if p.suppressed is None else f.text("reason", p.suppressed)
    cap_hours = min(max(fit_real(p.cap_hours, nullable=False) or 0.0, 0.0), 24 * 3650.0)
    cap = fit_whole(p.cap_per_number) or 0
    if cap_hours != p.cap_hours or cap != p.cap_per_number:
        f.changed.append("cap")
    return PendingSms(
        call_id=f.text("call_id", p.call_id), number=f.text("number", p.number),
        rule=f.text("rule", p.rule), template=f.text("template", p.template),
        language=f.text("language", p.language), text=f.text("text", p.text),
        token=f.text("token", p.token), created_at=f.time("created_at", p.created_at),
        send_after=f.time("send_after", p.send_after), suppressed=suppressed,
        cap_per_number=cap, cap_hours=cap_hours, country=clean_text(p.country)[:8])


def _fit_live(r: LiveCallRow, f: _Fitter) -> LiveCallRow:
    pairs: list[tuple[str, str]] = []
    size = 0
    for k, v in r.attributes:  # as many as fit the column (an HTTP lookup may return a lot)
        pair = (clean_text(k), clean_text(v))
        size += len(pair[0]) + len(pair[1]) + 6
        if size > ATTRS_LIMIT:
            break
        pairs.append(pair)
    attributes = tuple(pairs)
    if attributes != tuple(r.attributes):
        f.changed.append("attributes")
    return LiveCallRow(
        call_id=f.text("call_id", r.call_id), server=f.text("server", r.server),
        channel=f.text("channel", r.channel), caller=f.text("caller", r.caller),
        caller_name=f.text("caller_name", r.caller_name), state=f.text("state", r.state),
        started_at=f.time("started_at", r.started_at), queue=f.opt_text("queue", r.queue),
        first_queue=f.opt_text("first_queue", r.first_queue),
        queued_at=f.opt_time("queued_at", r.queued_at), priority=f.whole("priority", r.priority),
        attributes=attributes, ivr_path=f.path("ivr_path", r.ivr_path),
        offers=f.whole("offers", r.offers), offer_id=f.whole("offer_id", r.offer_id),
        agent_id=f.opt_text("agent_id", r.agent_id),
        answered_at=f.opt_time("answered_at", r.answered_at),
        updated_at=f.time("updated_at", r.updated_at),
        recording=f.text("recording", r.recording))


def _fit_agent_event(a: AgentEventRow, f: _Fitter) -> AgentEventRow:
    return AgentEventRow(agent_id=f.text("agent_id", a.agent_id), at=f.time("at", a.at),
                         old_state=f.text("old_state", a.old_state),
                         new_state=f.text("new_state", a.new_state),
                         reason=f.text("reason", a.reason))


def _fit_agent(a: AgentStateRow, f: _Fitter) -> AgentStateRow:
    return AgentStateRow(agent_id=f.text("agent_id", a.agent_id), state=f.text("state", a.state),
                         reason=f.text("reason", a.reason), since=f.time("since", a.since))


def _fit_queue_log(e: QueueLogEntry, f: _Fitter) -> QueueLogEntry:
    cols = e.data_columns()
    data = tuple(f.text(f"data{i}", v) for i, v in enumerate(cols, 1))
    keep = max(1, len(e.data) if len(e.data) <= 5 else 5)
    return QueueLogEntry(
        time=f.time("time", e.time), callid=f.text("callid", e.callid),
        queuename=f.text("queuename", e.queuename), agent=f.text("agent", e.agent),
        event=f.text("event", e.event), data=data[:keep])


# ------------------------------------------------------------ fast check
# Most rows fit as they are: checked field by field first (a few µs), and
# rebuilt only when one does not.

def _t(v: object, limit: int) -> bool:
    return text_fits(v, limit)


def _ot(v: object, limit: int) -> bool:
    return v is None or text_fits(v, limit)


def _tm(v: object, _: int) -> bool:
    return type(v) in (float, int) and 0.0 <= v <= LATEST_TS  # type: ignore[operator]


def _otm(v: object, _: int) -> bool:
    return v is None or _tm(v, 0)


def _r(v: object, _: int) -> bool:
    return v is None or (type(v) in (float, int) and math.isfinite(v))  # type: ignore[arg-type]


def _i(v: object, _: int) -> bool:
    return type(v) is int and INT_MIN <= v <= INT_MAX


def _path(v: object, _: int) -> bool:
    return type(v) is tuple and sum(len(s) + 1 for s in v) <= PATH_LIMIT + 1 \
        and all(text_fits(s, None) for s in v)


def _attrs(v: object, _: int) -> bool:
    return type(v) is tuple and sum(len(k) + len(x) + 6 for k, x in v) <= ATTRS_LIMIT \
        and all(text_fits(k, None) and text_fits(x, None) for k, x in v)


def _spec(table: Table, **fields: Callable[[object, int], bool]
          ) -> tuple[tuple[str, Callable[[object, int], bool], int], ...]:
    return tuple((name, check, getattr(table.c[name].type, "length", None) or 0)
                 if name in table.c else (name, check, 0) for name, check in fields.items())


_FAST: dict[type, tuple[tuple[str, Callable[[object, int], bool], int], ...]] = {
    CallRecord: _spec(
        call_records, call_id=_t, caller=_t, caller_name=_t, server=_t, customer_class=_t,
        queue=_ot, agent_id=_ot, first_queue=_ot, started_at=_tm, ended_at=_tm,
        queued_at=_otm, answered_at=_otm, wait_s=_r, talk_s=_r, offers=_i, priority=_i,
        ivr_path=_path, recording=_t, ivr_end=_t),
    LiveCallRow: _spec(
        calls_live, call_id=_t, server=_t, channel=_t, caller=_t, caller_name=_t, state=_t,
        queue=_ot, first_queue=_ot, agent_id=_ot, started_at=_tm, updated_at=_tm,
        queued_at=_otm, answered_at=_otm, priority=_i, offers=_i, offer_id=_i,
        ivr_path=_path, attributes=_attrs, recording=_t),
    AgentStateRow: _spec(agent_states, agent_id=_t, state=_t, reason=_t, since=_tm),
    AgentEventRow: _spec(agent_events, agent_id=_t, at=_tm, old_state=_t, new_state=_t,
                         reason=_t),
}


def _fits(item: Item) -> bool:
    spec = _FAST.get(type(item))
    if spec is None:
        return False
    if isinstance(item, CallRecord) and not isinstance(item.outcome, Outcome):
        return False
    return all(check(getattr(item, name), limit) for name, check, limit in spec)


#: each row kind: its table and how its fields are fitted to it
_FITS: dict[type, tuple[Table, Callable[[Any, _Fitter], Any]]] = {
    CallRecord: (call_records, _fit_record),
    Explanation: (explanations, _fit_explanation),
    PendingSms: (sms_outbox, _fit_sms),
    LiveCallRow: (calls_live, _fit_live),
    AgentStateRow: (agent_states, _fit_agent),
    AgentEventRow: (agent_events, _fit_agent_event),
    QueueLogEntry: (queue_log, _fit_queue_log),
}


def fit_item(item: Item) -> tuple[Item, list[str]]:
    """``item`` as the database takes it, and the names of the fields that
    had to change (too long, NUL, a lone surrogate, not a finite number ...)."""
    if _fits(item):
        return item, []
    kind = _FITS.get(type(item))
    if kind is None:
        raise TypeError(f"not a row the record writer carries: {type(item).__name__}")
    table, fit = kind
    f = _Fitter(table)
    fitted: Item = fit(item, f)
    return fitted, f.changed


# --------------------------------------------------------------------- JSON


def _fields(item: Item) -> dict[str, Any]:
    if isinstance(item, CallRecord):
        return {"call_id": item.call_id, "caller": item.caller, "caller_name": item.caller_name,
                "started_at": item.started_at, "ended_at": item.ended_at,
                "outcome": item.outcome.value, "ivr_path": list(item.ivr_path),
                "queue": item.queue, "queued_at": item.queued_at, "wait_s": item.wait_s,
                "agent_id": item.agent_id, "answered_at": item.answered_at,
                "talk_s": item.talk_s, "offers": item.offers, "server": item.server,
                "customer_class": item.customer_class, "priority": item.priority,
                "first_queue": item.first_queue, "ivr_end": item.ivr_end,
                "recording": item.recording}
    if isinstance(item, AgentEventRow):
        return {"agent_id": item.agent_id, "at": item.at, "old_state": item.old_state,
                "new_state": item.new_state, "reason": item.reason}
    if isinstance(item, Explanation):
        return {"call_id": item.call_id, "offer_id": item.offer_id, "agent_id": item.agent_id,
                "at": item.at, "queue": item.queue, "customer_class": item.customer_class,
                "priority": item.priority, "waited_s": item.waited_s, "stage": list(item.stage),
                "reason": item.reason,
                "candidates": [[c.agent_id, c.score, [list(t) for t in c.terms]]
                               for c in item.candidates]}
    if isinstance(item, PendingSms):
        return {"call_id": item.call_id, "number": item.number, "rule": item.rule,
                "template": item.template, "language": item.language, "text": item.text,
                "token": item.token, "created_at": item.created_at,
                "send_after": item.send_after, "suppressed": item.suppressed,
                "cap_per_number": item.cap_per_number, "cap_hours": item.cap_hours,
                "country": item.country}
    if isinstance(item, LiveCallRow):
        return {"call_id": item.call_id, "server": item.server, "channel": item.channel,
                "caller": item.caller, "caller_name": item.caller_name, "state": item.state,
                "started_at": item.started_at, "queue": item.queue,
                "first_queue": item.first_queue, "queued_at": item.queued_at,
                "priority": item.priority, "attributes": [list(a) for a in item.attributes],
                "ivr_path": list(item.ivr_path), "offers": item.offers,
                "offer_id": item.offer_id, "agent_id": item.agent_id,
                "answered_at": item.answered_at, "updated_at": item.updated_at,
                "recording": item.recording}
    if isinstance(item, QueueLogEntry):
        return {"time": item.time, "callid": item.callid, "queuename": item.queuename,
                "agent": item.agent, "event": item.event, "data": list(item.data)}
    return {"agent_id": item.agent_id, "state": item.state, "reason": item.reason,
            "since": item.since}


def to_json(item: Item) -> dict[str, Any]:
    """``{"k": kind, "v": fields}``: what :func:`from_json` reads back."""
    return {"k": kind(item), "v": _fields(item)}


def dumps(obj: Any) -> str:
    """One line of JSON, ASCII only (any text survives any file or column)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=True)


def from_json(obj: Any) -> Item:
    """The item :func:`to_json` wrote; ``ValueError`` when ``obj`` is not one."""
    try:
        k, v = obj["k"], obj["v"]
        if k == "record":
            return CallRecord(
                v["call_id"], v["caller"], v["caller_name"], v["started_at"], v["ended_at"],
                Outcome(v["outcome"]), tuple(v["ivr_path"]), v["queue"], v["queued_at"],
                v["wait_s"], v["agent_id"], v["answered_at"], v["talk_s"], v["offers"],
                v["server"], v["customer_class"], v["priority"], v["first_queue"],
                ivr_end=v.get("ivr_end", ""), recording=v.get("recording", ""))
        if k == "agent_event":
            return AgentEventRow(**v)
        if k == "explanation":
            return Explanation(
                v["call_id"], v["offer_id"], v["agent_id"], v["at"], v["queue"],
                v["customer_class"], v["priority"], v["waited_s"], tuple(v["stage"]),
                v["reason"], tuple(Candidate(a, s, tuple((t[0], t[1]) for t in terms))
                                   for a, s, terms in v["candidates"]))
        if k == "sms":
            return PendingSms(**v)
        if k == "live":
            return LiveCallRow(**{**v, "attributes": tuple((a[0], a[1]) for a in v["attributes"]),
                                  "ivr_path": tuple(v["ivr_path"])})
        if k == "agent":
            return AgentStateRow(**v)
        if k == "queue_log":
            return QueueLogEntry(v["time"], v["callid"], v["queuename"], v["agent"], v["event"],
                                 tuple(str(d) for d in v["data"]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a spooled row ({type(exc).__name__})") from None
    raise ValueError(f"not a spooled row (kind {str(k)[:20]!r})")
