"""The built-in autoscaler's decision (pure): replicas from demand, HPA-style.

desired = clamp(ceil(demand / target), min, max). Scaling up happens at once. Scaling down uses the highest
recommendation in force during the last ``stabilization`` seconds (each recommendation stands until the next
look), and only once that window is fully observed, so replicas reach 0 only after demand has been seen at
0 for the whole window, and a restarted or newly elected operator (with no history yet) never scales down
on its first look.
"""

from __future__ import annotations

import collections
import dataclasses
import math


@dataclasses.dataclass
class History:
    """Recent recommendations of one LLMService (kept in memory by the leader)."""

    started: float
    samples: collections.deque[tuple[float, int]] = dataclasses.field(default_factory=collections.deque)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    reason: str


def recommend(*, demand: int, target: int, minimum: int, maximum: int) -> int:
    wanted = math.ceil(demand / max(target, 1)) if demand > 0 else 0
    return max(minimum, min(maximum, wanted))


def decide(
    *,
    history: History,
    now: float,
    demand: int,
    current: int,
    target: int,
    minimum: int,
    maximum: int,
    stabilization: float,
    floor_reason: str | None = None,
) -> Decision | None:
    """A scale to apply now, or None to leave *current* as it is. *floor_reason* says why *minimum* is
    what it is when something other than ``scaling.min`` raised it (a warm window)."""
    wanted = recommend(demand=demand, target=target, minimum=minimum, maximum=maximum)
    history.samples.append((now, wanted))
    # A sample stands until the next one replaces it: demand between two looks is unknown, so lower demand
    # counts only from when it was first seen, and a scale-down never comes sooner than a full window after.
    while len(history.samples) > 1 and history.samples[1][0] <= now - stabilization:
        history.samples.popleft()
    if wanted > current:
        if recommend(demand=demand, target=target, minimum=0, maximum=maximum) < wanted:
            # The floor (scaling.min, or a warm window's), not demand, asks for these replicas: say which.
            return Decision(wanted, floor_reason or f"below the minimum of {minimum}")
        return Decision(wanted, f"demand {demand} needs {wanted} replicas (target {target} per replica)")
    if now - history.started < stabilization:
        return None  # the window is not fully observed yet: never scale down on partial history
    highest = max(replicas for _, replicas in history.samples)
    if highest < current:
        if highest == 0:
            return Decision(0, f"no demand for {stabilization:g}s: scaling to zero")
        return Decision(highest, f"demand needed at most {highest} replicas for {stabilization:g}s")
    return None
