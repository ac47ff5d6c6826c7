"""Who gets an AcceleratorPool's devices (pure: explicit time, no I/O): one pass of the built-in autoscaler
turns every member's wanted replicas into the replicas it may have now, the evictions that make room,
and the waits with their reasons (issue 16).

The rules, in the order they apply:

- A member holds ``accelerators`` devices per replica it is scaled to, and keeps holding them while a
  backend pod of it is still draining (devices are busy until the pod is gone).
- Members wanting more replicas are served urgent first (demand seen: a request waits for it), then by
  priority (highest first), then by how long they have waited, then by name.
- Free devices are granted at once. An already-warm member only ever grows into free devices; only a
  member at zero with demand may evict (evictions are for cold starts, not for 1→N).
- When devices that are draining will cover a need, the member waits for them instead of evicting more;
  the free devices it counts on are not given to anyone served after it.
- A victim must hold devices, have reported no demand (nothing waiting or in flight) for ``idle_grace``,
  have been warm for at least ``min_warm``, not be pinned, and have a priority at most the requester's.
  Victims are taken least recently used first until the need is covered (a 2-device member may free
  room for two 1-device ones and the other way round).
- At most ``swap_evictions`` evictions within any ``swap_window``; past it, members wait.

A victim is released by :class:`Release` (scale to zero today). A later "sleep instead of evict" tier
(vLLM sleep mode, useful only when members share devices) would add a value there, its own eligibility
beside :func:`why_not_evictable`, and its executor in :mod:`hearth.operator.pools.keeper`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Sequence


class Release(enum.StrEnum):
    """How a victim gives its devices back."""

    #: Scale the backend to zero: its pods drain (preStop) and go, and the devices with them.
    SCALE_TO_ZERO = "ScaleToZero"


@dataclasses.dataclass(frozen=True, slots=True)
class Rules:
    """A pool's spec, in seconds."""

    devices: int
    min_warm: float
    idle_grace: float
    swap_evictions: int
    swap_window: float


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One member as observed in this pass. Times are the caller's clock (monotonic seconds)."""

    key: str
    accelerators: int
    priority: int = 0
    pinned: bool = False
    #: The backend's replicas now (its scale).
    replicas: int = 0
    #: Backend pods not yet gone, terminating ones included.
    pods: int = 0
    #: Replicas the autoscaler's decision wants (``replicas`` when it decided nothing).
    wanted: int = 0
    #: Summed demand of its gateways; None when none answered this pass (never evict on missing data).
    demand: int | None = 0
    #: When it last got devices (None: it holds none).
    warm_since: float | None = None
    #: When its demand was last seen above zero (None: never, as far as this operator knows).
    last_used: float | None = None
    #: When it started waiting for devices (None: it is not waiting).
    waiting_since: float | None = None

    @property
    def held(self) -> int:
        """Devices it occupies: its replicas, or its pods while more of them are still draining."""
        return max(self.replicas, self.pods) * self.accelerators

    @property
    def draining(self) -> int:
        """Devices held only by pods that are going away."""
        return self.held - self.replicas * self.accelerators

    @property
    def urgent(self) -> bool:
        return (self.demand or 0) > 0


@dataclasses.dataclass(frozen=True, slots=True)
class Eviction:
    victim: str
    requester: str
    #: Devices the victim frees.
    devices: int
    #: Why this one: how long it has been idle.
    reason: str
    release: Release = Release.SCALE_TO_ZERO


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    key: str
    #: Devices it needs and has not been given.
    devices: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    #: The replicas each member may have now (its decision, capped by the pool; 0 for victims).
    replicas: dict[str, int]
    evictions: tuple[Eviction, ...]
    waits: tuple[Wait, ...]
    #: Devices held at the start of the pass.
    in_use: int


def recent(evictions_at: Iterable[float], *, now: float, window: float) -> list[float]:
    """The eviction times still inside the swap window."""
    return sorted(at for at in evictions_at if now - at < window)


def why_not_evictable(victim: Member, *, requester: Member, rules: Rules, now: float) -> str | None:
    """None when *victim* may be evicted for *requester* now, else why not (for the waiter's reason)."""
    idle = None if victim.last_used is None else now - victim.last_used
    warm = None if victim.warm_since is None else now - victim.warm_since
    checks = (
        (victim.pinned, "pinned"),
        (victim.priority > requester.priority, f"priority {victim.priority} > {requester.priority}"),
        (victim.demand is None, "demand unknown (no gateway answered)"),
        ((victim.demand or 0) > 0, f"{victim.demand} request(s) waiting or in flight"),
        (
            idle is not None and idle < rules.idle_grace,
            f"used {_seconds(idle or 0)} ago (idle grace {_seconds(rules.idle_grace)})",
        ),
        (
            warm is not None and warm < rules.min_warm,
            f"warm for {_seconds(warm or 0)} (min warm {_seconds(rules.min_warm)})",
        ),
    )
    return next((why for failed, why in checks if failed), None)


def plan(*, rules: Rules, members: Sequence[Member], now: float, evictions_at: Iterable[float]) -> Plan:
    """One pass: what each member may have, whom to evict for whom, and who waits and why."""
    state = _Pass(rules=rules, members=members, now=now, evictions_at=evictions_at)
    for requester in sorted((m for m in members if m.wanted > m.replicas), key=lambda m: _order(m, now)):
        state.serve(requester)
    return Plan(
        replicas=state.replicas,
        evictions=tuple(state.evictions),
        waits=tuple(state.waits),
        in_use=state.in_use,
    )


class _Pass:
    """The devices left to give while one pass serves its requesters in order."""

    def __init__(
        self, *, rules: Rules, members: Sequence[Member], now: float, evictions_at: Iterable[float]
    ) -> None:
        self.rules, self.members, self.now = rules, members, now
        self.in_use = sum(member.held for member in members)
        #: Free now (negative when the pool is over-committed, e.g. after it shrank).
        self.available = rules.devices - self.in_use
        #: Held only by draining pods: free once they are gone, and not yet counted on by anyone.
        self.coming = sum(member.draining for member in members)
        self.swaps = recent(evictions_at, now=now, window=rules.swap_window)
        self.budget = rules.swap_evictions - len(self.swaps)
        self.replicas = {member.key: member.wanted for member in members if member.wanted <= member.replicas}
        self.evictions: list[Eviction] = []
        self.waits: list[Wait] = []
        self.taken: set[str] = set()

    def wait(self, requester: Member, devices: int, reason: str) -> None:
        self.waits.append(Wait(requester.key, devices, reason))

    def serve(self, requester: Member) -> None:
        per_replica = requester.accelerators
        if per_replica > self.rules.devices:
            self.replicas[requester.key] = requester.replicas
            self.wait(
                requester,
                per_replica,
                f"needs {per_replica} devices per replica; the pool has {self.rules.devices}",
            )
            return
        if requester.replicas > 0 or self.available >= per_replica or not requester.urgent:
            self.grow(requester)
        else:
            self.make_room(requester)

    def grow(self, requester: Member) -> None:
        """Free devices only: a warm member's 1->N, a cold one that fits, or a scaling.min floor."""
        per_replica = requester.accelerators
        granted = min(requester.wanted - requester.replicas, max(self.available, 0) // per_replica)
        self.replicas[requester.key] = requester.replicas + granted
        self.available -= granted * per_replica
        short = requester.wanted - requester.replicas - granted
        if short > 0:
            why = (
                "more replicas only from free devices (a warm member never evicts)"
                if requester.replicas > 0 or granted > 0
                else "scaling.min is kept only while the pool has free devices"
            )
            self.wait(requester, short * per_replica, f"no free device: {why}")

    def make_room(self, requester: Member) -> None:
        """A cold member with demand, short of devices: wait for a drain, or evict."""
        per_replica = requester.accelerators
        self.replicas[requester.key] = 0
        shortfall = per_replica - max(self.available, 0)
        # What is free now is this requester's from here on: nobody served later may take it.
        self.available = min(self.available, 0)
        if shortfall <= self.coming:
            self.coming -= shortfall
            draining = ", ".join(m.key for m in self.members if m.draining > 0)
            self.wait(requester, per_replica, f"waiting for {draining} to drain")
            return
        shortfall -= self.coming
        self.coming = 0
        chosen, refused = self.victims(requester, shortfall)
        if chosen is None:
            held = "; ".join(refused) or "nothing else holds devices"
            self.wait(requester, per_replica, f"no evictable member ({held})")
            return
        if len(chosen) > self.budget:
            self.wait(requester, per_replica, _swap_limited(self.swaps, rules=self.rules, now=self.now))
            return
        self.budget -= len(chosen)
        self.coming += sum(victim.replicas * victim.accelerators for victim in chosen) - shortfall
        for victim in chosen:
            self.taken.add(victim.key)
            self.replicas[victim.key] = 0
            idle = (
                "never used" if victim.last_used is None else f"idle {_seconds(self.now - victim.last_used)}"
            )
            self.evictions.append(
                Eviction(
                    victim.key,
                    requester.key,
                    victim.replicas * victim.accelerators,
                    f"least recently used evictable member ({idle})",
                )
            )
        victims = ", ".join(victim.key for victim in chosen)
        self.wait(requester, per_replica, f"evicting {victims}; starts once drained")

    def victims(self, requester: Member, shortfall: int) -> tuple[list[Member] | None, list[str]]:
        """Evictable members, least recently used first, until *shortfall* devices are covered (None when
        they cannot be), and why the others passed over are not evictable."""
        candidates = sorted(
            (
                m
                for m in self.members
                if m.key != requester.key and m.key not in self.taken and m.replicas > 0
            ),
            key=lambda m: (m.last_used if m.last_used is not None else -math.inf, m.key),
        )
        chosen: list[Member] = []
        refused: list[str] = []
        freed = 0
        for candidate in candidates:
            if freed >= shortfall:
                break
            why = why_not_evictable(candidate, requester=requester, rules=self.rules, now=self.now)
            if why is not None:
                refused.append(f"{candidate.key}: {why}")
                continue
            chosen.append(candidate)
            freed += candidate.replicas * candidate.accelerators
        return (chosen if freed >= shortfall else None), refused


def _order(member: Member, now: float) -> tuple[bool, int, float, str]:
    waited = member.waiting_since if member.waiting_since is not None else now
    return (not member.urgent, -member.priority, waited, member.key)


def _swap_limited(swaps: list[float], *, rules: Rules, now: float) -> str:
    window = _seconds(rules.swap_window)
    message = f"swap limit: {len(swaps)} eviction(s) in the last {window} (limit {rules.swap_evictions})"
    if swaps:
        message += f"; the next is allowed in {_seconds(swaps[0] + rules.swap_window - now)}"
    return message


def _seconds(value: float) -> str:
    return f"{max(value, 0):.0f}s"
