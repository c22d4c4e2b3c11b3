"""Scheduling: shifts and breaks that cover the requirements per interval.

:func:`solve` turns requirements (agents needed per interval and queue, as
:class:`acd.planning.requirements.Requirement` rows or anything with
``start``, ``queue`` and ``required``) and :class:`ScheduleRules` (agent
types with their skills, counts and weekly limits; shift lengths and start
times; break rules; weights) into a :class:`Schedule`: a
:class:`~acd.planning.roster.Roster` of named shifts with their breaks, and
the coverage per interval and queue.

How (an integer model, solved by HiGHS through scipy's ``milp`` or by
OR-Tools CP-SAT, both imported lazily; then the names):

1. **Counts.**  Time is cut into *slots* (the greatest common divisor of the
   interval, the start step, the shift lengths and the break lengths and
   windows: 15 minutes with the default rules).  The days are solved in turn
   (a rolling horizon: a day's shifts with the earlier days' fixed).  Per
   agent type, shift length and slot, a variable counts the shifts started
   so far, and per break of that length another the breaks started so far
   (both non-decreasing, :class:`_Cumul`); the k-th shift takes the k-th of
   each of its breaks, kept inside its window by two constraints per slot
   (breaks started by t <= shifts whose window opened by t, >= shifts whose
   window closed by t).  The break windows of a shift never overlap
   (:func:`break_windows`).  Agents on duty per slot and type = shifts on -
   breaks on; a multi-skilled type's agents are split between its queues
   per slot (each agent serves one queue at a time).  Every slot of an
   interval must have the interval's required agents per queue, less the
   under-staffing, which costs a large weight; the paid hours and
   (optionally) the agents beyond the total requirement cost too.  Per type:
   shifts on at once and shifts starting per calendar day at most the
   type's count, shifts per 7 days at most count x max_shifts.
2. **Names.**  The shifts of each type are given to its agents (``type1``,
   ``type2`` ... or the named ids): at most one shift starting per calendar
   day, ``min_rest`` between shifts, at most ``max_shifts`` in any 7 days.
   A greedy pass (earliest shift first, to the agent with the fewest shifts)
   usually places them all; if it does not, a CP-SAT model places as many
   as it can.  A shift no agent can take is left out and counted
   (:attr:`Schedule.unassigned`), never lost silently; the coverage is that
   of the named roster.

The coverage (:func:`coverage`) is computed from the roster: per slot the
agents on duty and not on a break, assigned to queues by a max-flow (as
many required places filled as possible; the surplus spread over the
agents' queues); per interval the mean over its slots (``scheduled``) and
the lowest slot (``scheduled_min``).  An interval is *covered* when its
lowest slot has the required agents.

Pure computation: the rules file is read in :mod:`acd.loaders.schedule_rules`
and the command is :mod:`acd.cli.schedule` (docs/planning.md, "Scheduling").
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from acd.planning.intervals import spread
from acd.planning.roster import Activity, Roster, Shift

__all__ = [
    "DEFAULT_BREAKS", "AgentType", "BreakRule", "CoverageRow", "Need", "Schedule",
    "ScheduleError", "ScheduleRules", "Weights", "break_windows", "coverage", "solve",
]

MINUTE = dt.timedelta(minutes=1)
DAY_MIN = 24 * 60
WEEK_DAYS = 7
INTERVALS_MIN = (15, 30, 60)
#: each day's model gets at least this long (seconds), whatever the time limit
MIN_DAY_S = 2.0


class ScheduleError(ValueError):
    """The requirements or rules cannot be scheduled (the message says why)."""


class RequirementLike(Protocol):
    @property
    def start(self) -> dt.datetime: ...
    @property
    def queue(self) -> str: ...
    @property
    def required(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Need:
    """The least a requirement row needs to be: agents required on ``queue``
    in the interval starting at ``start``."""

    start: dt.datetime
    queue: str
    required: int
    line: int = 0


@dataclass(frozen=True, slots=True)
class BreakRule:
    """A break every shift it applies to takes, in one piece.

    Fixed window (``window``: minutes from the shift start; the break lies
    inside it), for shifts of at least ``min_shift_min``: e.g. a lunch.  Or
    periodic (``per_min``): one break per full ``per_min`` of shift, spread
    over the shift less ``margin_min`` at each end and outside the fixed
    windows."""

    kind: str
    minutes: int
    min_shift_min: int = 0
    window: tuple[int, int] | None = None
    per_min: int | None = None
    margin_min: int = 60
    line: int = 0


#: a shift of 6 h or more: a 30-minute lunch between 3 h and 5 h after its
#: start; every shift: a 15-minute break per full 4 h
DEFAULT_BREAKS = (
    BreakRule("lunch", 30, min_shift_min=360, window=(180, 300)),
    BreakRule("break", 15, per_min=240, margin_min=60),
)


@dataclass(frozen=True, slots=True)
class AgentType:
    """Agents alike: ``skills`` (queue -> level) they may serve, how many
    (``ids`` named, else ``name1`` ... ``name<count>``), at most
    ``max_shifts`` shifts in any 7 days, ``min_rest_min`` between the end of
    a shift and the start of the next."""

    name: str
    skills: tuple[tuple[str, int], ...]
    count: int
    max_shifts: int = 5
    min_rest_min: int = 11 * 60
    ids: tuple[str, ...] = ()
    line: int = 0

    def agent_ids(self) -> tuple[str, ...]:
        return self.ids or tuple(f"{self.name}{k}" for k in range(1, self.count + 1))

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(q for q, _ in self.skills)


@dataclass(frozen=True, slots=True)
class Weights:
    """Costs per agent-hour: under-staffing (an agent missing for an hour),
    paid time, agents beyond the total requirement."""

    under: int = 1000
    paid: int = 10
    over: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleRules:
    agents: tuple[AgentType, ...]
    lengths_min: tuple[int, ...] = (480, 360, 240)
    start_step_min: int = 30
    #: allowed start times of day (minutes after midnight, both ends
    #: included; an end before the start runs across midnight); () = any
    start_windows: tuple[tuple[int, int], ...] = ()
    breaks: tuple[BreakRule, ...] = DEFAULT_BREAKS
    weights: Weights = field(default_factory=Weights)
    interval_min: int | None = None  # None: from the requirements


@dataclass(frozen=True, slots=True)
class CoverageRow:
    start: dt.datetime
    queue: str
    required: int
    scheduled: float  # mean over the interval's slots of the agents assigned to the queue
    scheduled_min: float  # the interval's lowest slot
    over: float  # scheduled - required, when positive
    under: float  # mean over the slots of the required agents missing

    @property
    def covered(self) -> bool:
        return self.scheduled_min + 1e-9 >= self.required


@dataclass(frozen=True, slots=True)
class Schedule:
    roster: Roster
    coverage: tuple[CoverageRow, ...]
    status: str  # OPTIMAL | FEASIBLE
    objective: float
    bound: float
    solve_s: float
    interval_min: int
    slot_min: int
    #: (type, start, end) of shifts step 2 could give no agent (left out)
    unassigned: tuple[tuple[str, dt.datetime, dt.datetime], ...] = ()
    naming: str = "greedy"  # greedy | cp-sat
    variables: int = 0
    notes: tuple[str, ...] = ()

    @property
    def gap(self) -> float:
        """Relative gap between the solution and the solver's bound (0: proven optimal)."""
        if self.objective == 0:
            return 0.0
        return abs(self.objective - self.bound) / abs(self.objective)

    @property
    def paid_hours(self) -> float:
        return sum((s.end - s.start).total_seconds() for s in self.roster.shifts) / 3600.0

    @property
    def productive_hours(self) -> float:
        return sum(s.available_s for s in self.roster.shifts) / 3600.0

    @property
    def under_interval_agents(self) -> float:
        """Sum over intervals and queues of the required agents missing."""
        return sum(r.under for r in self.coverage)

    @property
    def uncovered(self) -> tuple[CoverageRow, ...]:
        return tuple(r for r in self.coverage if not r.covered)


# ---------------------------------------------------------------- the grid


def _minutes(d: dt.timedelta) -> float:
    return d.total_seconds() / 60.0


@dataclass(slots=True)
class _Grid:
    t0: dt.datetime
    interval: int  # minutes
    slot: int  # minutes
    n_slots: int
    queues: tuple[str, ...]
    #: queue -> required per slot
    req: dict[str, list[int]]

    @property
    def base(self) -> int:
        """Minutes from the first day's midnight to slot 0."""
        midnight = dt.datetime.combine(self.t0.date(), dt.time())
        return int(_minutes(self.t0 - midnight))

    def at(self, k: int) -> dt.datetime:
        return self.t0 + k * self.slot * MINUTE

    @property
    def per_interval(self) -> int:
        return self.interval // self.slot


def _interval_of(reqs: Sequence[RequirementLike], given: int | None) -> int:
    if given is not None:
        if given not in INTERVALS_MIN:
            raise ScheduleError(f"the interval must be 15, 30 or 60 minutes, not {given}")
        return given
    starts = sorted({r.start for r in reqs})
    gaps = [_minutes(b - a) for a, b in itertools.pairwise(starts)]
    step = min(gaps, default=60.0)
    for m in INTERVALS_MIN:
        if step <= m and all(g % m == 0 for g in gaps):
            return m
    for m in reversed(INTERVALS_MIN):
        if all(g % m == 0 for g in gaps):
            return m
    raise ScheduleError("the requirements' interval starts are not on a 15, 30 or 60-minute "
                        "grid")


def _grid(reqs: Sequence[RequirementLike], rules: ScheduleRules) -> _Grid:
    if not reqs:
        raise ScheduleError("no requirements to schedule")
    interval = _interval_of(reqs, rules.interval_min)
    parts = [interval, rules.start_step_min, *rules.lengths_min]
    for b in rules.breaks:
        parts += [b.minutes, b.margin_min, *(b.window or ()), *((b.per_min,) if b.per_min
                                                                 else ())]
    slot = 0
    for p in parts:
        slot = math.gcd(slot, int(p))
    slot = max(slot, 1)
    t0 = min(r.start for r in reqs)
    for r in reqs:
        if r.start.tzinfo is not None:
            raise ScheduleError(f"{r.start} has a time zone: times are naive local times")
        if (r.start.minute * 60 + r.start.second) % (interval * 60) or r.start.microsecond:
            raise ScheduleError(f"interval start {r.start} is not on the {interval}-minute grid")
        if r.required < 0:
            raise ScheduleError(f"{r.queue} at {r.start}: required {r.required} is negative")
    end = max(r.start for r in reqs) + interval * MINUTE
    n_slots = int(_minutes(end - t0)) // slot
    queues = tuple(sorted({r.queue for r in reqs}))
    req = {q: [0] * n_slots for q in queues}
    seen: dict[tuple[dt.datetime, str], int] = {}
    per = interval // slot
    for r in reqs:
        key = (r.start, r.queue)
        if key in seen:
            raise ScheduleError(f"{r.queue} at {r.start} appears twice")
        seen[key] = r.required
        k0 = int(_minutes(r.start - t0)) // slot
        for k in range(k0, k0 + per):
            req[r.queue][k] = int(r.required)
    return _Grid(t0, interval, slot, n_slots, queues, req)


def break_windows(length_min: int, rules: Sequence[BreakRule]
                  ) -> list[tuple[str, int, int, int]]:
    """The breaks a shift of ``length_min`` takes: (kind, minutes, window
    start, window end) in minutes from the shift start; the windows do not
    overlap.  Raises ScheduleError when a rule cannot fit."""
    fixed = [(b.kind, b.minutes, b.window[0], min(b.window[1], length_min))
             for b in rules if b.window is not None and length_min >= b.min_shift_min]
    for kind, minutes, w0, w1 in fixed:
        if w1 - w0 < minutes:
            raise ScheduleError(f"a {length_min // 60}h{length_min % 60:02d} shift cannot take "
                                f"its {minutes}-minute {kind} between {w0} and {w1} minutes "
                                "after its start")
    taken = sorted((w0, w1) for _, _, w0, w1 in fixed)
    for (_, a1), (b0, _) in itertools.pairwise(taken):
        if b0 < a1:
            raise ScheduleError(f"the fixed break windows of a {length_min}-minute shift overlap")
    out = list(fixed)
    for b in rules:
        if b.per_min is None or length_min < b.min_shift_min:
            continue
        k = length_min // b.per_min
        lo, hi = b.margin_min, length_min - b.margin_min
        for i in range(k):
            p0 = lo + (hi - lo) * i // k
            p1 = lo + (hi - lo) * (i + 1) // k
            # the longest piece of [p0, p1] outside the windows taken so far
            pieces = [(p0, p1)]
            for w0, w1 in sorted((w0, w1) for _, _, w0, w1 in out):
                nxt = []
                for a, c in pieces:
                    if w1 <= a or w0 >= c:
                        nxt.append((a, c))
                        continue
                    if w0 > a:
                        nxt.append((a, w0))
                    if w1 < c:
                        nxt.append((w1, c))
                pieces = nxt
            best = max(pieces, key=lambda p: p[1] - p[0], default=None)
            if best is None or best[1] - best[0] < b.minutes:
                raise ScheduleError(f"a {length_min}-minute shift has no room for its "
                                    f"{b.minutes}-minute {b.kind} number {i + 1}")
            out.append((b.kind, b.minutes, best[0], best[1]))
    return sorted(out, key=lambda w: w[2])


def _in_windows(tod: int, windows: Sequence[tuple[int, int]]) -> bool:
    if not windows:
        return True
    for a, b in windows:
        if (a <= tod <= b) if a <= b else (tod >= a or tod <= b):
            return True
    return False


def _starts(grid: _Grid, rules: ScheduleRules, at: AgentType, length_min: int) -> list[int]:
    """The start slots a shift of this type and length may have: on the start
    step, in the start windows, inside the horizon, serving some requirement,
    and not only requirements a shorter shift from the same start serves."""
    slot = grid.slot
    ln = length_min // slot
    needed = [0] * (grid.n_slots + 1)  # prefix count of slots with a requirement
    for k in range(grid.n_slots):
        needed[k + 1] = needed[k] + (1 if any(grid.req[q][k] > 0 for q in at.queues
                                              if q in grid.req) else 0)
    shorter = [m // slot for m in rules.lengths_min if m < length_min]
    out = []
    for s in range(0, grid.n_slots - ln + 1):
        abs_min = grid.base + s * slot
        if abs_min % rules.start_step_min or not _in_windows(abs_min % DAY_MIN,
                                                               rules.start_windows):
            continue
        if needed[s + ln] == needed[s]:
            continue  # serves no requirement
        if any(needed[s + sh] == needed[s + ln] for sh in shorter):
            continue  # a shorter shift from the same start serves the same slots, for less
        out.append(s)
    return out


# ---------------------------------------------------------------- HiGHS


class _Expr:
    """A linear expression (the little of CP-SAT's modelling API the model uses)."""

    __slots__ = ("coef", "const")

    def __init__(self, coef: dict[int, float] | None = None, const: float = 0.0) -> None:
        self.coef = coef or {}
        self.const = const

    @staticmethod
    def of(x: Any) -> _Expr:
        return x if isinstance(x, _Expr) else _Expr({}, float(x))

    def __add__(self, other: Any) -> _Expr:
        o = _Expr.of(other)
        coef = dict(self.coef)
        for k, v in o.coef.items():
            coef[k] = coef.get(k, 0.0) + v
        return _Expr(coef, self.const + o.const)

    __radd__ = __add__

    def __neg__(self) -> _Expr:
        return _Expr({k: -v for k, v in self.coef.items()}, -self.const)

    def __sub__(self, other: Any) -> _Expr:
        return self + (-_Expr.of(other))

    def __rsub__(self, other: Any) -> _Expr:
        return _Expr.of(other) + (-self)

    def __mul__(self, k: float) -> _Expr:
        return _Expr({i: v * k for i, v in self.coef.items()}, self.const * k)

    __rmul__ = __mul__

    def __le__(self, other: Any) -> Any:
        return (self - other, -math.inf, 0.0)

    def __ge__(self, other: Any) -> Any:
        return (self - other, 0.0, math.inf)

    def __eq__(self, other: Any) -> Any:
        return (self - other, 0.0, 0.0)

    __hash__ = object.__hash__


class _HighsModel:
    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.rows: list[tuple[_Expr, float, float]] = []
        self.objective = _Expr()

    def NewIntVar(self, lo: int, hi: int, name: str) -> _Expr:
        self.lb.append(lo)
        self.ub.append(hi)
        return _Expr({len(self.lb) - 1: 1.0})

    def Add(self, row: tuple[_Expr, float, float] | bool) -> None:
        if isinstance(row, bool):  # constants compared: true, or the model is wrong
            if not row:
                raise ScheduleError("internal: a constant constraint that does not hold")
            return
        expr, lo, hi = row
        if expr.coef:
            self.rows.append(row)
        elif not lo - 1e-9 <= expr.const <= hi + 1e-9:
            raise ScheduleError("internal: a constant constraint that does not hold")

    def AddHint(self, var: _Expr, value: int) -> None:
        pass

    def Minimize(self, expr: Any) -> None:
        self.objective = _Expr.of(expr)


class _HighsParams:
    max_time_in_seconds = 30.0
    random_seed = 0
    num_workers = 1


class _HighsSolver:
    def __init__(self) -> None:
        self.parameters = _HighsParams()
        self.x: Any = None
        self.obj = math.nan
        self.bound = math.nan
        self.status = "UNKNOWN"

    def Solve(self, model: _HighsModel) -> str:
        import numpy as np
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_matrix

        n = len(model.lb)
        c = np.zeros(n)
        for i, v in model.objective.coef.items():
            c[i] = v
        ri, ci, vals, lo, hi = [], [], [], [], []
        for r, (expr, a, b) in enumerate(model.rows):
            for i, v in expr.coef.items():
                ri.append(r)
                ci.append(i)
                vals.append(v)
            lo.append(a - expr.const)
            hi.append(b - expr.const)
        cons = [LinearConstraint(coo_matrix((vals, (ri, ci)), shape=(len(model.rows), n)),
                                 np.array(lo), np.array(hi))] if model.rows else []
        res = milp(c, constraints=cons, integrality=np.ones(n),
                   bounds=Bounds(np.array(model.lb, float), np.array(model.ub, float)),
                   options={"time_limit": float(self.parameters.max_time_in_seconds),
                            "mip_rel_gap": 1e-4})
        if res.x is None:
            self.status = "INFEASIBLE" if res.status == 2 else "UNKNOWN"
            return self.status
        self.x = np.round(res.x)
        self.obj = float(c @ self.x) + model.objective.const
        bound = getattr(res, "mip_dual_bound", None)
        self.bound = float(bound) + model.objective.const if bound is not None else self.obj
        self.status = "OPTIMAL" if res.status == 0 else "FEASIBLE"
        return self.status

    def Value(self, var: Any) -> int:
        e = _Expr.of(var)
        return round(float(sum(self.x[i] * v for i, v in e.coef.items())) + e.const)

    def ObjectiveValue(self) -> float:
        return self.obj

    def BestObjectiveBound(self) -> float:
        return self.bound

    def StatusName(self, status: str) -> str:
        return status


class _Highs:
    """Stands for ``ortools.sat.python.cp_model``: the same model solved by
    HiGHS (scipy.optimize.milp)."""

    OPTIMAL = "OPTIMAL"
    FEASIBLE = "FEASIBLE"
    CpModel = _HighsModel
    CpSolver = _HighsSolver


def _cp_model(backend: str = "cp-sat") -> Any:
    if backend == "highs":
        try:
            import scipy.optimize  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ScheduleError("scheduling with HiGHS needs scipy: pip install "
                                "'acd[planning]'") from exc
        return _Highs
    if backend != "cp-sat":
        raise ScheduleError(f"unknown solver {backend!r} (cp-sat or highs)")
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ScheduleError("scheduling needs OR-Tools: pip install 'acd[planning]'") from exc
    return cp_model


class _Cumul:
    """A non-decreasing count through each slot (shifts started, breaks
    started), one CP-SAT variable per slot where it may grow."""

    def __init__(self, model: Any, n: int, grows: Iterable[int], ub: int, name: str) -> None:
        self.vals: list[Any] = [0]
        self.vars: list[tuple[int, Any]] = []
        prev: Any = 0
        grow = set(grows)
        for t in range(n):
            if t in grow:
                v = model.NewIntVar(0, ub, f"{name}_{t}")
                model.AddHint(v, 0)  # nothing placed: a solution to start from
                if not isinstance(prev, int):
                    model.Add(v >= prev)
                self.vars.append((t, v))
                prev = v
            self.vals.append(prev)
        self.n = n

    def through(self, t: int) -> Any:
        """The count through slot ``t`` (0 before the first slot)."""
        if t < 0:
            return 0
        return self.vals[min(t, self.n - 1) + 1]

    def between(self, a: int, b: int) -> Any:
        """The count started in slots a .. b - 1."""
        return self.through(b - 1) - self.through(a - 1)

    @property
    def total(self) -> Any:
        return self.vals[-1]

    def counts(self, value: Any) -> list[tuple[int, int]]:
        """(slot, number started there) from a solution."""
        out, prev = [], 0
        for t, v in self.vars:
            x = value(v)
            if x > prev:
                out.append((t, x - prev))
            prev = x
        return out


@dataclass(slots=True)
class _Block:
    """What one day's model gives: its shifts and how well it was solved."""

    shifts: list[tuple[int, int, int, list[tuple[str, int, int]]]]
    status: str
    objective: float
    bound: float
    variables: int


def solve(requirements: Iterable[RequirementLike], rules: ScheduleRules, *,
          time_limit_s: float = 30.0, workers: int = 0, seed: int = 0,
          backend: str = "highs") -> Schedule:
    """Schedule shifts and breaks that cover ``requirements`` (see the module
    text).  The days are solved in turn (a rolling horizon): the shifts
    starting on a day are chosen with those of the days before fixed, for the
    requirements from that day's start to the end of its latest shift;
    ``time_limit_s`` is shared among the days.  ``workers``: CP-SAT search
    workers (0: 8, or one per core if more)."""
    reqs = list(requirements)
    if not rules.agents:
        raise ScheduleError("no agents to schedule")
    if not rules.lengths_min:
        raise ScheduleError("no shift lengths")
    grid = _grid(reqs, rules)
    served = {q for a in rules.agents for q in a.queues}
    notes: list[str] = []
    unserved = [q for q in grid.queues if q not in served and any(grid.req[q])]
    if unserved:
        notes.append(f"no agent type has the skill of queue(s) {', '.join(unserved)}: "
                     "their requirements stay uncovered")
    plans = {m: break_windows(m, rules.breaks) for m in rules.lengths_min}
    n, slot = grid.n_slots, grid.slot
    days = (grid.base + n * slot + DAY_MIN - 1) // DAY_MIN
    starts = {(ti, m): _starts(grid, rules, at, m) for ti, at in enumerate(rules.agents)
              for m in rules.lengths_min}
    fixed_duty = [[0] * n for _ in rules.agents]
    fixed_on = [[0] * n for _ in rules.agents]
    used = [0] * len(rules.agents)  # shifts placed so far per type (for max_shifts)
    plan_shifts: list[tuple[int, int, int, list[tuple[str, int, int]]]] = []
    statuses: list[str] = []
    objective = bound = 0.0
    n_vars = 0
    t_start = time.perf_counter()
    for d in range(days):
        a0 = max(0, (d * DAY_MIN - grid.base) // slot)
        a1 = min(n, ((d + 1) * DAY_MIN - grid.base) // slot)
        day_starts = {key: [s for s in v if a0 <= s < a1] for key, v in starts.items()}
        if not any(day_starts.values()):
            continue
        left = time_limit_s - (time.perf_counter() - t_start)
        share = max(left / (days - d), MIN_DAY_S)
        caps = [min(at.count, at.count * at.max_shifts * max(1, -(-days // WEEK_DAYS))
                    - used[ti]) for ti, at in enumerate(rules.agents)]
        # the slots its shifts can reach (later ones: the next days' models)
        reach = max(s + m // slot for (_, m), v in day_starts.items() for s in v)
        block = _solve_block(grid, rules, plans, day_starts, (a0, min(n, reach)),
                             fixed_duty, fixed_on, caps, share, workers, seed, backend)
        statuses.append(block.status)
        objective += block.objective
        bound += block.bound
        n_vars += block.variables
        for p in block.shifts:
            ti, s, ln, acts = p
            plan_shifts.append(p)
            used[ti] += 1
            for k in range(s, s + ln):
                fixed_duty[ti][k] += 1
                fixed_on[ti][k] += 1
            for _, b0, bl in acts:
                for k in range(b0, b0 + bl):
                    fixed_duty[ti][k] -= 1
    elapsed = time.perf_counter() - t_start
    status = "OPTIMAL" if statuses and all(s == "OPTIMAL" for s in statuses) else "FEASIBLE"
    roster, unassigned, naming = _name(grid, rules, plan_shifts, seed)
    if unassigned:
        notes.append(f"{len(unassigned)} shift(s) could be given to no agent (rest, shifts "
                     "per week, one shift a day) and are left out")
    cov = coverage(roster, reqs, interval_min=grid.interval, slot_min=grid.slot,
                   agent_skills={a: t.queues for t in rules.agents for a in t.agent_ids()})
    return Schedule(roster=roster, coverage=tuple(cov), status=status,
                    objective=objective, bound=bound, solve_s=elapsed,
                    interval_min=grid.interval, slot_min=grid.slot,
                    unassigned=tuple(unassigned), naming=naming, variables=n_vars,
                    notes=tuple(notes))


def _solve_block(grid: _Grid, rules: ScheduleRules,
                 plans: Mapping[int, list[tuple[str, int, int, int]]],
                 day_starts: Mapping[tuple[int, int], list[int]], span: tuple[int, int],
                 fixed_duty: list[list[int]], fixed_on: list[list[int]], caps: list[int],
                 time_limit_s: float, workers: int, seed: int, backend: str) -> _Block:
    """One day's model: its shifts' starts ``day_starts``, the requirements
    of the slots in ``span``, the shifts already placed (``fixed_*``: agents
    on duty / on shift per type and slot)."""
    cp_model = _cp_model(backend)
    model = cp_model.CpModel()
    n, slot = grid.n_slots, grid.slot
    lo, hi = span
    built: list[list[tuple[int, _Cumul, list[tuple[str, int, int, int, _Cumul]]]]] = []
    duty_expr: list[dict[int, Any]] = []
    paid: list[Any] = []
    for ti, at in enumerate(rules.agents):
        ub = max(0, caps[ti])
        mine: list[tuple[int, _Cumul, list[tuple[str, int, int, int, _Cumul]]]] = []
        for length_min in rules.lengths_min:
            ln = length_min // slot
            st = day_starts.get((ti, length_min), [])
            if not st or ub == 0:
                continue
            cx = _Cumul(model, n, st, ub, f"x{ti}_{length_min}")
            paid.append(cx.total * length_min)
            brs = []
            for bi, (kind, m, w0, w1) in enumerate(plans[length_min]):
                a, b, bl = w0 // slot, (w1 - m) // slot, m // slot
                grows = {s + o for s in st for o in range(a, b + 1)}
                cw = _Cumul(model, n, grows, ub, f"w{ti}_{length_min}_{bi}")
                # first come, first served: the k-th shift takes the k-th break, which
                # then lies in its window (breaks started by t <= shifts whose window
                # opened by t; >= shifts whose window closed by t)
                for t in sorted(grows | {s + b for s in st}):
                    model.Add(cw.through(t) <= cx.through(t - a))
                    model.Add(cw.through(t) >= cx.through(t - b))
                model.Add(cw.total == cx.total)
                brs.append((kind, bl, a, b, cw))
            mine.append((ln, cx, brs))
        built.append(mine)
        duty: dict[int, Any] = {}
        for k in range(lo, hi):
            on = [cx.between(k - ln + 1, k + 1) for ln, cx, _ in mine]
            off = [cw.between(k - bl + 1, k + 1) for _, _, brs in mine for _, bl, _, _, cw in brs]
            if mine:
                model.Add(sum(on) + fixed_on[ti][k] <= at.count)
            duty[k] = sum(on) - sum(off) + fixed_duty[ti][k]
        duty_expr.append(duty)
        if mine:
            model.Add(sum(cx.total for _, cx, _ in mine) <= ub)
    n_vars = sum(len(cx.vars) + sum(len(br[4].vars) for br in brs)
                 for mine in built for _, cx, brs in mine)
    cover: dict[str, dict[int, list[Any]]] = {q: defaultdict(list) for q in grid.queues}
    for ti, at in enumerate(rules.agents):
        qs = [q for q in at.queues if q in cover]
        for k in range(lo, hi):
            expr = duty_expr[ti][k]
            if len(qs) == 1:
                cover[qs[0]][k].append(expr)
            elif len(qs) > 1:
                zs = []
                for q in qs:
                    if grid.req[q][k] <= 0:
                        continue
                    z = model.NewIntVar(0, at.count, f"z{ti}_{q}_{k}")
                    model.AddHint(z, 0)
                    n_vars += 1
                    zs.append(z)
                    cover[q][k].append(z)
                if zs:
                    model.Add(sum(zs) <= expr)
    w = rules.weights
    obj: list[Any] = [p * w.paid for p in paid]
    for q in grid.queues:
        for k in range(lo, hi):
            need = grid.req[q][k]
            if need <= 0:
                continue
            u = model.NewIntVar(0, need, f"u{q}_{k}")
            model.AddHint(u, need)
            n_vars += 1
            model.Add(sum(cover[q][k]) + u >= need)
            obj.append(u * (w.under * slot))
    if w.over:
        for k in range(lo, hi):
            total_req = sum(grid.req[q][k] for q in grid.queues)
            o = model.NewIntVar(0, sum(a.count for a in rules.agents), f"o{k}")
            model.AddHint(o, sum(a.count for a in rules.agents))
            n_vars += 1
            model.Add(o >= sum(duty_expr[ti][k] for ti in range(len(rules.agents)))
                      - total_req)
            obj.append(o * (w.over * slot))
    model.Minimize(sum(obj))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(max(0.1, time_limit_s))
    solver.parameters.random_seed = seed
    # CP-SAT's portfolio: with fewer than 8 workers it finds good solutions late
    solver.parameters.num_workers = workers or max(8, os.cpu_count() or 1)
    status = solver.Solve(model)
    name = solver.StatusName(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise ScheduleError(f"the solver found no schedule ({name}) for the day from "
                            f"{grid.at(lo)} within {time_limit_s:.1f} s (give it more time: "
                            "--time-limit)")
    # the k-th shift of a (type, length) takes the k-th of each of its breaks
    shifts: list[tuple[int, int, int, list[tuple[str, int, int]]]] = []
    for ti, mine in enumerate(built):
        for ln, cx, brs in mine:
            st = [t for t, c in cx.counts(solver.Value) for _ in range(c)]
            breaks = [[t for t, c in cw.counts(solver.Value) for _ in range(c)]
                      for _, _, _, _, cw in brs]
            for j, s in enumerate(st):
                acts = []
                for (kind, bl, a, b, _), bstarts in zip(brs, breaks, strict=True):
                    bt = bstarts[j]
                    if not s + a <= bt <= s + b:  # pragma: no cover - the model forbids it
                        raise AssertionError(f"break at slot {bt} outside its window")
                    acts.append((kind, bt, bl))
                shifts.append((ti, s, ln, acts))
    return _Block(shifts, name, solver.ObjectiveValue() / 60.0,
                  solver.BestObjectiveBound() / 60.0, n_vars)


# ---------------------------------------------------------------- naming


def _name(grid: _Grid, rules: ScheduleRules,
          plan: list[tuple[int, int, int, list[tuple[str, int, int]]]], seed: int
          ) -> tuple[Roster, list[tuple[str, dt.datetime, dt.datetime]], str]:
    """Give the planned shifts to named agents (step 2)."""
    slot = grid.slot
    base = grid.base
    shifts: list[Shift] = []
    unassigned: list[tuple[str, dt.datetime, dt.datetime]] = []
    naming = "greedy"
    for ti, at in enumerate(rules.agents):
        mine = sorted((p for p in plan if p[0] == ti), key=lambda p: (p[1], p[2]))
        if not mine:
            continue
        ids = at.agent_ids()
        rest = at.min_rest_min // slot if at.min_rest_min % slot == 0 else \
            -(-at.min_rest_min // slot)
        day_of = [(base + p[1] * slot) // DAY_MIN for p in mine]
        owner = _greedy(mine, day_of, len(ids), rest, at.max_shifts)
        if owner is None:
            naming = "cp-sat"
            owner = _cp_name(mine, day_of, len(ids), rest, at.max_shifts, seed)
        for p, o in zip(mine, owner, strict=True):
            start = grid.at(p[1])
            end = grid.at(p[1] + p[2])
            if o < 0:
                unassigned.append((at.name, start, end))
                continue
            acts = tuple(Activity(grid.at(b0), grid.at(b0 + bl), kind) for kind, b0, bl in p[3])
            shifts.append(Shift(ids[o], start, end, skills=at.skills, activities=acts))
    return Roster(tuple(shifts)), unassigned, naming


def _greedy(mine: list[tuple[int, int, int, list[Any]]], day_of: list[int], n_agents: int,
            rest: int, max_shifts: int) -> list[int] | None:
    """Earliest shift first, to the free agent with the fewest shifts; None
    when a shift finds no agent."""
    free_at = [-(10 ** 9)] * n_agents  # slot from which the agent may start again
    days: list[list[int]] = [[] for _ in range(n_agents)]
    owner: list[int] = []
    for p, d in zip(mine, day_of, strict=True):
        best = -1
        for a in range(n_agents):
            if free_at[a] > p[1] or (days[a] and days[a][-1] == d):
                continue
            if sum(1 for dd in days[a] if dd > d - WEEK_DAYS) >= max_shifts:
                continue
            if best < 0 or (len(days[a]), free_at[a]) < (len(days[best]), free_at[best]):
                best = a
        if best < 0:
            return None
        owner.append(best)
        free_at[best] = p[1] + p[2] + rest
        days[best].append(d)
    return owner


def _cp_name(mine: list[tuple[int, int, int, list[Any]]], day_of: list[int], n_agents: int,
             rest: int, max_shifts: int, seed: int) -> list[int]:
    """As many shifts as possible to agents (CP-SAT); -1 for a shift left out."""
    cp_model = _cp_model()
    model = cp_model.CpModel()
    m = len(mine)
    b = [[model.NewBoolVar(f"b{a}_{j}") for j in range(m)] for a in range(n_agents)]
    for j in range(m):
        model.AddAtMostOne(b[a][j] for a in range(n_agents))
    points = sorted({p[1] for p in mine})
    days = sorted(set(day_of))
    for a in range(n_agents):
        for t in points:  # shifts whose [start, end + rest) holds t: pairwise in conflict
            group = [j for j, p in enumerate(mine) if p[1] <= t < p[1] + p[2] + rest]
            if len(group) > 1:
                model.AddAtMostOne(b[a][j] for j in group)
        for d in days:
            same = [j for j in range(m) if day_of[j] == d]
            if len(same) > 1:
                model.AddAtMostOne(b[a][j] for j in same)
            week = [b[a][j] for j in range(m) if d <= day_of[j] < d + WEEK_DAYS]
            if len(week) > max_shifts:
                model.Add(sum(week) <= max_shifts)
    for a in range(n_agents - 1):  # agents alike: the first ones work at least as much
        model.Add(sum(b[a]) >= sum(b[a + 1]))
    model.Maximize(sum(b[a][j] * mine[j][2] for a in range(n_agents) for j in range(m)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 20.0
    solver.parameters.random_seed = seed
    status = solver.Solve(model)
    owner = [-1] * m
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for a in range(n_agents):
            for j in range(m):
                if solver.Value(b[a][j]):
                    owner[j] = a
    return owner


# ---------------------------------------------------------------- coverage


def _max_flow(supply: Mapping[frozenset[str], float], demand: Mapping[str, float]
              ) -> dict[tuple[frozenset[str], str], float]:
    """Agents (groups of the same skills, ``supply`` of each) to queues
    (``demand``): as much demand met as possible (Edmonds-Karp)."""
    groups = [g for g, s in supply.items() if s > 1e-12]
    queues = [q for q, d in demand.items() if d > 1e-12]
    flow: dict[tuple[frozenset[str], str], float] = defaultdict(float)
    left_g = {g: supply[g] for g in groups}
    left_q = {q: demand[q] for q in queues}
    while True:
        # BFS in the residual graph: source -> group -> queue (forward: skill;
        # back: flow > 0) -> ... -> queue with demand left -> sink
        prev: dict[Any, Any] = {}
        dq: deque[Any] = deque()
        for g in groups:
            if left_g[g] > 1e-12:
                prev[("g", g)] = None
                dq.append(("g", g))
        end = None
        while dq and end is None:
            node = dq.popleft()
            if node[0] == "g":
                for q in queues:
                    if q in node[1] and ("q", q) not in prev:
                        prev[("q", q)] = node
                        if left_q[q] > 1e-12:
                            end = ("q", q)
                            break
                        dq.append(("q", q))
            else:
                q = node[1]
                for g in groups:
                    if flow[(g, q)] > 1e-12 and ("g", g) not in prev:
                        prev[("g", g)] = node
                        dq.append(("g", g))
        if end is None:
            break
        path: list[Any] = [end]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        amount = min(left_g[path[0][1]], left_q[end[1]])
        for a, c in itertools.pairwise(path):
            if a[0] == "q":  # a backward step: at most the flow it cancels
                amount = min(amount, flow[(c[1], a[1])])
        if amount <= 1e-12:
            break
        for a, c in itertools.pairwise(path):
            if a[0] == "g":
                flow[(a[1], c[1])] += amount
            else:
                flow[(c[1], a[1])] -= amount
        left_g[path[0][1]] -= amount
        left_q[end[1]] -= amount
    return flow


def coverage(roster: Roster, requirements: Iterable[RequirementLike], *, interval_min: int,
             slot_min: int | None = None,
             agent_skills: Mapping[str, Iterable[str]] | None = None) -> list[CoverageRow]:
    """Per requirement row (interval, queue): the agents of ``roster`` on
    duty and not in an activity, assigned to the queues (a multi-skilled
    agent serves one queue at a time: a max-flow per slot fills as many
    required places as possible, the surplus is spread evenly over each
    agent's queues).  ``slot_min``: the time step (default: the interval;
    an agent's part-time in a slot counts pro rata).  ``agent_skills``:
    the skills of agents whose shifts have none."""
    reqs = sorted(requirements, key=lambda r: (r.start, r.queue))
    if not reqs:
        return []
    slot = slot_min or interval_min
    if interval_min % slot:
        raise ScheduleError(f"the slot ({slot} min) does not divide the interval "
                            f"({interval_min} min)")
    t0 = reqs[0].start
    end = max(r.start for r in reqs) + interval_min * MINUTE
    n = int(_minutes(end - t0)) // slot
    queues = sorted({r.queue for r in reqs})
    need: dict[str, list[float]] = {q: [0.0] * n for q in queues}
    per = interval_min // slot
    for r in reqs:
        k0 = int(_minutes(r.start - t0)) // slot
        for k in range(k0, min(n, k0 + per)):
            need[r.queue][k] = float(r.required)
    # agents per slot per skill set (fractions of the slot)
    supply: list[dict[frozenset[str], float]] = [defaultdict(float) for _ in range(n)]

    def add(group: frozenset[str], a: dt.datetime, b: dt.datetime, sign: float) -> None:
        for k, overlap in spread(a, min(b, end), t0, slot * 60, n):
            if overlap > 0:
                supply[k][group] += sign * overlap / (slot * 60.0)

    qset = set(queues)
    for s in roster.shifts:
        skills = [q for q, _ in s.skills] if s.skills else list(
            (agent_skills or {}).get(s.agent, ()))
        group = frozenset(q for q in skills if q in qset)
        if not group:
            continue
        add(group, s.start, s.end, 1.0)
        for act in s.activities:
            add(group, act.start, act.end, -1.0)
    assigned: dict[str, list[float]] = {q: [0.0] * n for q in queues}
    for k in range(n):
        sup = {g: max(0.0, v) for g, v in supply[k].items()}
        if not sup:
            continue
        flow = _max_flow(sup, {q: need[q][k] for q in queues})
        used: dict[frozenset[str], float] = defaultdict(float)
        for (g, q), f in flow.items():
            if f > 1e-12:
                assigned[q][k] += f
                used[g] += f
        for g, v in sup.items():
            extra = v - used[g]
            if extra > 1e-12:
                for q in sorted(g):
                    assigned[q][k] += extra / len(g)
    rows: list[CoverageRow] = []
    for r in reqs:
        k0 = int(_minutes(r.start - t0)) // slot
        ks = range(k0, min(n, k0 + per))
        vals = [assigned[r.queue][k] for k in ks]
        mean = sum(vals) / len(vals)
        under = sum(max(0.0, r.required - v) for v in vals) / len(vals)
        rows.append(CoverageRow(r.start, r.queue, int(r.required), round(mean, 6),
                                round(min(vals), 6), round(max(0.0, mean - r.required), 6),
                                round(under, 6)))
    return rows
