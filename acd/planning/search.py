"""The agent-count search shared by the Erlang calculator and the simulator.

Both ask the same question of a test that fails below some count and holds
from it on (an added agent never lowers the service level nor raises
abandonment): what is the smallest count that passes?  The Erlang
calculator (:func:`acd.planning.erlang.agents_needed`) asks it of a formula
from a proven lower bound; the simulator's staffing search
(:func:`acd.loadsim.staffing.search_agents`) of a simulation run from the
Erlang estimate, where every count tried costs a run, so the order of the
counts tried is part of the contract.

Pure: no I/O; the test is a callable.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["smallest_count"]


def smallest_count(meets: Callable[[int], bool], start: int, *, floor: int = 1,
                   limit: int) -> int | None:
    """The smallest count ``n``, ``floor <= n <= limit``, with ``meets(n)``;
    None when ``limit`` does not meet either.

    ``meets`` must be monotone (False below the answer, True from it on);
    ``floor <= start <= limit``.  From ``start`` the search gallops: if it
    meets, down by 1, 2, 4 … (never below ``floor``) until a count fails;
    if not, up to ``start + 1``, ``+ 3``, ``+ 7`` … (the last step cut at
    ``limit``) until a count meets.  It then bisects between the last
    failing and the first meeting count.  Each count is asked at most once,
    and the answer ``n`` comes with ``n - 1`` asked and failing, unless
    ``n`` is ``floor``.
    """
    if not floor <= start <= limit:
        raise ValueError(f"start {start} is not within [{floor}, {limit}]")
    if meets(start):
        hi, step = start, 1  # hi meets; find a failing lo below it
        while hi > floor:
            cand = max(floor, hi - step)
            if not meets(cand):
                return _bisect(cand, hi, meets)
            hi = cand
            step *= 2
        return hi
    lo, step = start, 1  # lo fails; find a meeting hi above it
    while lo < limit:
        cand = min(limit, lo + step)
        if meets(cand):
            return _bisect(lo, cand, meets)
        lo = cand
        step *= 2
    return None


def _bisect(lo: int, hi: int, meets: Callable[[int], bool]) -> int:
    """``lo`` fails, ``hi`` meets: the smallest meeting count between them."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi
