"""What the control API answers: JSON views of agents, queues, waiting
calls, statistics and the flow, read from the engine's core read side and
its :class:`~acd.core.stats.Statistics` (nothing here changes anything)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from acd.api.protocol import AgentView, CallView, ControlledEngine, FlowSource
from acd.core.model import AgentState, CallState
from acd.core.stats import IntervalStats, ServiceLevel
from acd.logs import mask

#: call attributes shown with a waiting call (routing-relevant ones only)
SHOWN_ATTRIBUTES = ("dialect", "vip_level", "language", "preferred_gender",
                    "preferred_age_band", "segment")
AGENT_TIME_FIELDS = ("ready_s", "reserved_s", "on_call_s", "wrap_up_s", "paused_s",
                     "logged_in_s", "busy_s", "available_s")


class Views:
    """The read side of the control API over one engine."""

    def __init__(self, engine: ControlledEngine) -> None:
        self.engine = engine

    # -------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        core = self.engine.core
        agents = list(core.agents())
        return {
            "ami": self.engine.pbx_connected,
            "calls": sum(1 for _ in core.calls()),
            "agents": len(agents),
            "logged_in": sum(1 for a in agents if a.state is not AgentState.LOGGED_OUT),
            "ready": sum(1 for a in agents if a.state is AgentState.READY),
            "records": dict(self.engine.record_counts()),
        }

    # -------------------------------------------------------------- agents

    def occupancies(self, now: float) -> dict[str, float | None]:
        """Occupancy of every agent in one pass over the statistics
        (``Statistics.occupancy`` per agent would scan everything per agent)."""
        busy: dict[str, float] = {}
        available: dict[str, float] = {}
        for row in self.engine.statistics.agent_intervals(now=now):
            if row.agent_id is None:
                continue
            busy[row.agent_id] = busy.get(row.agent_id, 0.0) + row.busy_s
            available[row.agent_id] = available.get(row.agent_id, 0.0) + row.available_s
        return {a: (busy[a] / available[a] if available[a] else None) for a in available}

    @staticmethod
    def agent_json(agent: AgentView, now: float, occupancy: float | None) -> dict[str, Any]:
        p = agent.profile
        return {
            "id": p.agent_id, "extension": p.extension, "name": p.name,
            "state": agent.state.value, "since": agent.since,
            "in_state_s": now - agent.since if agent.since > 0 else None,
            "reason": agent.reason, "call_id": agent.call_id,
            "skills": dict(sorted(p.skills.items())),
            "dialects": dict(sorted(p.dialects.items())),
            "languages": sorted(p.languages), "gender": p.gender, "age_band": p.age_band,
            "groups": sorted(p.groups), "vip_qualified": p.vip_qualified,
            "calls_handled": agent.calls_handled, "occupancy": occupancy,
            "logout_after_call": agent.logout_after_call,
            "pause_after_call": agent.pause_after_call,
        }

    def agent(self, agent: AgentView) -> dict[str, Any]:
        now = self.engine.clock()
        occ = self.engine.statistics.occupancy(agent.agent_id, now=now)
        return self.agent_json(agent, now, occ)

    def agents(self) -> list[dict[str, Any]]:
        now = self.engine.clock()
        occ = self.occupancies(now)
        agents = sorted(self.engine.core.agents(), key=lambda a: a.agent_id)
        return [self.agent_json(a, now, occ.get(a.agent_id)) for a in agents]

    # -------------------------------------------------------------- queues

    def _today(self, now: float) -> dict[str, IntervalStats]:
        """Per queue: today's call figures (the statistics' own totals since
        the local midnight of their zone, so the same formulas as
        ``acd report calls``: short abandons apart, docs/reports.md)."""
        st = self.engine.statistics
        since = st.day_start(now)
        return {q: st.totals(q, since=since) for q in self.engine.core.queue_names()}

    def _service_level(self, t: IntervalStats) -> ServiceLevel | None:
        """The target of the classes counted (the default class's when none);
        None when they do not share one."""
        if t.target is not None and t.threshold_s is not None:
            return ServiceLevel(t.threshold_s, t.target)
        if t.offered == 0:
            return self.engine.statistics.service_level_for(self.engine.core.policy.default_class)
        return None

    def _queue_json(self, name: str, now: float, today: dict[str, IntervalStats],
                    staffing: dict[str, tuple[int, int]]) -> dict[str, Any]:
        core = self.engine.core
        qp = core.queue_policy(name)
        waiting = core.waiting(name)
        calls = [c for c in (core.call(cid) for cid in waiting) if c is not None]
        longest = max((now - c.queued_at for c in calls if c.queued_at is not None),
                      default=None)
        ringing = sum(1 for c in core.calls()
                      if c.queue == name and c.state is CallState.OFFERED)
        t = today[name]
        sl = self._service_level(t)
        service_level = t.service_level
        return {
            "name": name, "skill": qp.require.skill,
            "waiting": len(waiting), "longest_wait_s": longest, "ringing": ringing,
            "staffed": staffing[name][0], "ready": staffing[name][1],
            "offered": t.offered, "answered": t.answered, "abandoned": t.abandoned,
            "short_abandoned": t.short_abandoned,
            "service_level": service_level,
            "asa_s": t.asa_s,
            "abandon_rate": t.abandon_rate,
            "sl_threshold_s": sl.threshold_s if sl is not None else None,
            "sl_target": sl.target if sl is not None else None,
            "sl_met": service_level >= sl.target
            if sl is not None and service_level is not None else None,
        }

    def queues(self) -> list[dict[str, Any]]:
        now = self.engine.clock()
        today, staffing = self._today(now), self.engine.core.queue_staffing()
        return [self._queue_json(q, now, today, staffing)
                for q in self.engine.core.queue_names()]

    def _call_json(self, call: CallView, now: float, masked: bool) -> dict[str, Any]:
        where = self.engine.core.position(call.call_id, now)
        return {
            "call_id": call.call_id, "caller": mask(call.caller) if masked else call.caller,
            "position": where[0] if where is not None else None,
            "expected_wait_s": where[1] if where is not None else None,
            "customer_class": call.customer_class, "priority": call.priority,
            "waited_s": now - call.queued_at if call.queued_at is not None else None,
            "escalation_steps": call.stage.steps_done if call.stage is not None else 0,
            "attributes": {k: call.attrs[k] for k in SHOWN_ATTRIBUTES if call.attrs.get(k)},
        }

    def queue(self, name: str, masked: bool = False) -> dict[str, Any]:
        """One queue (a name the core knows), with its waiting calls in
        service order and the calls ringing an agent; ``masked``: callers'
        numbers with their middle hidden (``138****5678``, for wallboards)."""
        now = self.engine.clock()
        core = self.engine.core
        out = self._queue_json(name, now, self._today(now), self.engine.core.queue_staffing())
        calls = [c for c in (core.call(cid) for cid in core.waiting(name)) if c is not None]
        out["calls"] = [self._call_json(c, now, masked) for c in calls]
        out["offered_calls"] = [
            {"call_id": c.call_id, "caller": mask(c.caller) if masked else c.caller,
             "agent_id": c.agent_id,
             "waited_s": now - c.queued_at if c.queued_at is not None else None}
            for c in core.calls() if c.queue == name and c.state is CallState.OFFERED]
        return out

    # --------------------------------------------------------------- stats

    def stats(self, per_interval: bool) -> dict[str, Any]:
        now = self.engine.clock()
        st = self.engine.statistics
        if per_interval:
            return {"interval_s": st.interval_s, "queues": st.to_rows("queues"),
                    "agents": st.to_rows("agents", now=now), "ivr": st.to_rows("ivr")}
        agent_rows: dict[str, list[float]] = {}
        fields = AGENT_TIME_FIELDS
        for row in st.agent_intervals(now=now):
            if row.agent_id is None:
                continue
            acc = agent_rows.setdefault(row.agent_id, [0.0] * len(fields))
            for i, f in enumerate(fields):
                acc[i] += getattr(row, f)
        agents = []
        for agent_id, values in sorted(agent_rows.items()):
            item: dict[str, Any] = {"agent_id": agent_id, **dict(zip(fields, values, strict=True))}
            item["occupancy"] = item["busy_s"] / item["available_s"] if item["available_s"] \
                else None
            agents.append(item)
        return {
            "interval_s": st.interval_s,
            "total": asdict(st.totals()),
            "queues": [asdict(st.totals(q)) for q in self.engine.core.queue_names()],
            "agents": agents,
            "ivr_only": st.ivr_only_total(),
        }

    # --------------------------------------------------------------- flows

    @staticmethod
    def flow(flows: FlowSource) -> dict[str, Any]:
        fl = flows.current
        return {"name": fl.name, "version": fl.version, "file": fl.file,
                "files": list(fl.files), "nodes": len(fl.nodes), "queues": sorted(fl.queues),
                "loads": flows.loads}
