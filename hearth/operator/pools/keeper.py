"""AcceleratorPools in the operator (leader only, builtin mode): each autoscaler pass hands the members'
observations here; :mod:`hearth.operator.pools.policy` decides, and this module remembers what the decision
needs across passes (when each member woke, was last used, started waiting; the recent evictions),
re-checks a victim's demand right before evicting it, and writes the outcome: the replicas each member
may have, ``status.pool`` of every member, the pool's status, Events and metrics (issue 16).

The replicas are the answer of :meth:`PoolKeeper.arbitrate`; the statuses and Events that describe them are
only queued there and written by :meth:`PoolKeeper.report`, which the autoscaler calls after it has applied
the scales: a swap's clock runs from the cold request, and the victim's drain (and with it the requester's
start) should not wait behind half a dozen bookkeeping writes (issue 32).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pydantic

from hearth.api import pool as pool_api
from hearth.api.llmservice import LLMService
from hearth.common import durations, logs, timestamps
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.events import EventRecorder
from hearth.kube.informer import Informer
from hearth.operator.autoscaling import scaling, windows
from hearth.operator.metrics import OperatorMetrics
from hearth.operator.pools import policy

log = logging.getLogger(__name__)

#: Evictions remembered per pool: enough for any swap limit's window.
EVICTIONS_KEPT = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """What the autoscaler saw of one LLMService in this pass."""

    obj: dict[str, Any]
    service: LLMService
    #: The backend's replicas (its scale) now.
    current: int
    #: Summed gateway demand; None when no gateway answered.
    demand: int | None
    #: The autoscaler's own decision (None: leave it as it is).
    decision: scaling.Decision | None
    #: Backend pods not yet gone (terminating ones included).
    pods: int
    #: The backend still has only the replica the API server defaulted at its creation (never scaled).
    fresh: bool = False
    #: The warm window in force (issue 31): its replicas are pinned until it closes.
    window: windows.Active | None = None

    @property
    def key(self) -> str:
        return f"{self.service.namespace}/{self.service.metadata.name}"

    @property
    def wanted(self) -> int:
        return self.decision.replicas if self.decision is not None else self.current


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """The replicas a member may have now, and how to say so."""

    replicas: int
    reason: str
    #: A pool eviction (applied before the other scales of the pass; its PoolEvicted Event is the pool's).
    eviction: bool = False


@dataclasses.dataclass
class _Memory:
    warm_since: float | None
    last_used: float | None
    waiting_since: float | None = None
    #: For whom it was last evicted (kept until it needs devices again).
    evicted_for: str | None = None


#: A status write or an Event, queued by an arbitration until :meth:`PoolKeeper.report`.
Write = Callable[[], Awaitable[None]]
#: Re-reads a victim's demand right before it is evicted.
Recheck = Callable[[Observation], Awaitable[int | None]]
#: Resolves a member's InferenceRuntime accelerator resource (None when it resolves to none).
ResourceOf = Callable[[LLMService], str | None]


class PoolKeeper:
    def __init__(
        self,
        client: KubeClient,
        *,
        recorder: EventRecorder,
        metrics: OperatorMetrics,
        resource_of: ResourceOf,
        enabled: bool = True,
        why_disabled: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._recorder = recorder
        self._metrics = metrics
        self._resource_of = resource_of
        #: False without the RBAC to read pools: members are then never scaled up (why_disabled says why).
        self.enabled = enabled
        self._why_disabled = why_disabled
        self._clock = clock
        self.informer = Informer(client, resources.ACCELERATOR_POOL, handler=lambda *_: None)
        self._memory: dict[str, _Memory] = {}
        self._evictions: dict[str, collections.deque[float]] = {}
        self._totals: collections.Counter[str] = collections.Counter()
        self._last_eviction: dict[str, str] = {}
        #: What the last arbitration has to write once its scales are applied.
        self._writes: list[Write] = []

    async def arbitrate(self, observations: Iterable[Observation], *, recheck: Recheck) -> dict[str, Target]:
        """The replicas of every pool member (keyed namespace/name); non-members are not in the answer.
        The statuses and Events saying so are queued for :meth:`report`."""
        now = self._clock()
        self._writes = []  # an arbitration that failed half-way must not leave its writes to the next
        if self.enabled and not self.informer.synced.is_set():
            # Before the pools are loaded every one would look missing: hold members as they are.
            return {
                o.key: _hold_back(o, "AcceleratorPools not loaded yet")
                for o in observations
                if o.service.spec.pool is not None
            }
        groups: dict[str, list[Observation]] = collections.defaultdict(list)
        targets: dict[str, Target] = {}
        for observation in observations:
            membership = observation.service.spec.pool
            if membership is not None:
                groups[membership.name].append(observation)
            elif observation.service.status.pool is not None:
                self._later(self._write_member, observation, None)  # it left its pool
        for name, members in groups.items():
            targets.update(await self._arbitrate_pool(name, members, now=now, recheck=recheck))
        return targets

    async def _arbitrate_pool(
        self, name: str, members: list[Observation], *, now: float, recheck: Recheck
    ) -> dict[str, Target]:
        pool, refusal = self._pool(name)
        targets: dict[str, Target] = {}
        valid: list[Observation] = []
        for member in (_start_at_zero(observation, pool=name) for observation in members):
            why = refusal or self._refusal(member, pool)
            if why is None:
                valid.append(member)
                continue
            targets[member.key] = _hold_back(member, why)
            self._later(self._write_member, member, _member_status(name, pool_api.REFUSED, why, None))
        if pool is None:
            return targets
        if name not in self._totals:
            # The total lives in the pool's status: a new leader (or a restart) counts on from it.
            self._totals[name] = pool.status.evictions or 0
        rules = _rules(pool)
        planned = policy.plan(
            rules=rules,
            members=[self._member(observation, now=now) for observation in valid],
            now=now,
            evictions_at=self._evictions.get(name, ()),
        )
        by_key = {observation.key: observation for observation in valid}
        cancelled = await self._evict(name, planned, by_key, now=now, recheck=recheck)
        waits = {wait.key: wait for wait in planned.waits}
        for observation in valid:
            key = observation.key
            memory = self._memory[key]
            replicas = observation.current if key in cancelled else planned.replicas[key]
            eviction = next((e for e in planned.evictions if e.victim == key and key not in cancelled), None)
            targets[key] = self._target(observation, replicas, eviction, pool=name)
            self._remember(observation, memory, replicas=replicas, waiting=key in waits, now=now, pool=name)
            self._later(
                self._write_member, observation, self._status_of(observation, replicas, waits.get(key), name)
            )
        self._later(functools.partial(self._write_pool, now=now), pool, valid, planned, targets)
        return targets

    async def report(self) -> None:
        """Write what the last arbitration queued (member and pool statuses, Events), in its order."""
        writes, self._writes = self._writes, []
        for write in writes:
            await write()

    def _later(self, write: Callable[..., Awaitable[None]], *args: Any, **kwargs: Any) -> None:
        self._writes.append(functools.partial(write, *args, **kwargs))

    # ---- inputs ------------------------------------------------------------------------------------
    def _pool(self, name: str) -> tuple[pool_api.AcceleratorPool | None, str | None]:
        if not self.enabled:
            return None, self._why_disabled
        obj = self.informer.get(name)
        if obj is None:
            return None, f"AcceleratorPool {name} does not exist"
        try:
            return pool_api.AcceleratorPool.model_validate(obj), None
        except pydantic.ValidationError as error:
            return None, f"AcceleratorPool {name} is invalid: {error.errors()[0]['msg']}"

    def _refusal(self, member: Observation, pool: pool_api.AcceleratorPool | None) -> str | None:
        if pool is None:
            return None
        resource = self._resource_of(member.service)
        if resource is not None and resource != pool.spec.resource_name:
            return (
                f"its runtime requests {resource}, but AcceleratorPool {pool.metadata.name} holds "
                f"{pool.spec.resource_name}"
            )
        return None

    def _member(self, observation: Observation, *, now: float) -> policy.Member:
        membership = observation.service.spec.pool
        assert membership is not None
        # First sight (a new member, or a new leader): assume it just woke and was just used, so nothing
        # is evicted on guesses; the rules apply from what this operator sees itself.
        memory = self._memory.setdefault(
            observation.key,
            _Memory(warm_since=now if observation.current > 0 else None, last_used=now),
        )
        if (observation.demand or 0) > 0:
            memory.last_used = now
        return policy.Member(
            key=observation.key,
            accelerators=observation.service.spec.resources.accelerators,
            priority=membership.priority,
            # A warm window's replicas hold their devices until it closes: nobody's request evicts them.
            pinned=membership.pinned or observation.window is not None,
            replicas=observation.current,
            pods=observation.pods,
            wanted=observation.wanted,
            demand=observation.demand,
            warm_since=memory.warm_since,
            last_used=memory.last_used,
            waiting_since=memory.waiting_since,
        )

    # ---- evictions -----------------------------------------------------------------------------------
    async def _evict(
        self,
        name: str,
        planned: policy.Plan,
        by_key: dict[str, Observation],
        *,
        now: float,
        recheck: Recheck,
    ) -> set[str]:
        """Record each eviction whose victim still has no demand; the keys of the others (left as they
        are this pass: a request arrived between the look and the eviction)."""
        cancelled: set[str] = set()
        for eviction in planned.evictions:
            victim = by_key[eviction.victim]
            if await recheck(victim) != 0:
                cancelled.add(eviction.victim)
                log.info(
                    "eviction cancelled: demand arrived",
                    extra=logs.fields(pool=name, victim=eviction.victim, requester=eviction.requester),
                )
                continue
            self._evictions.setdefault(name, collections.deque(maxlen=EVICTIONS_KEPT)).append(now)
            self._totals[name] += 1
            self._metrics.pool_swaps.labels(pool=name).inc()
            self._memory[eviction.victim].evicted_for = eviction.requester
            at = timestamps.format_seconds()
            self._last_eviction[name] = f"{eviction.victim} for {eviction.requester} at {at}"
            message = (
                f"AcceleratorPool {name}: scaled to 0 to free {eviction.devices} device(s) for "
                f"{eviction.requester} ({eviction.reason})"
            )
            log.info(
                "pool eviction",
                extra=logs.fields(
                    pool=name, victim=eviction.victim, requester=eviction.requester, devices=eviction.devices
                ),
            )
            self._later(
                self._recorder.record, victim.obj, kind="Normal", reason="PoolEvicted", message=message
            )
            requester = by_key[eviction.requester]
            self._later(
                self._recorder.record,
                requester.obj,
                kind="Normal",
                reason="PoolSwap",
                message=f"AcceleratorPool {name}: evicting {eviction.victim} to make room; "
                "starts once it is drained",
            )
            pool_obj = self.informer.get(name)
            if pool_obj is not None:
                self._later(
                    self._recorder.record,
                    pool_obj,
                    kind="Normal",
                    reason="Swap",
                    message=f"evicted {eviction.victim} for {eviction.requester} ({eviction.reason})",
                )
        return cancelled

    # ---- outcome -------------------------------------------------------------------------------------
    def _target(
        self, observation: Observation, replicas: int, eviction: policy.Eviction | None, *, pool: str
    ) -> Target:
        if eviction is not None:
            return Target(
                0,
                f"evicted from AcceleratorPool {pool} for {eviction.requester} ({eviction.reason})",
                eviction=True,
            )
        decision = observation.decision
        reason = decision.reason if decision is not None else "unchanged"
        if replicas != observation.wanted:
            reason = f"{reason}; capped at {replicas} by AcceleratorPool {pool}"
        return Target(replicas, reason)

    def _remember(
        self,
        observation: Observation,
        memory: _Memory,
        *,
        replicas: int,
        waiting: bool,
        now: float,
        pool: str,
    ) -> None:
        if replicas > 0 and observation.current == 0:
            memory.warm_since = now
            memory.evicted_for = None
        elif replicas == 0 and observation.pods == 0:
            memory.warm_since = None
        if waiting and replicas <= observation.current:
            if memory.waiting_since is None:
                memory.waiting_since = now
        elif memory.waiting_since is not None:
            if replicas > observation.current:
                self._metrics.pool_wait.labels(pool=pool).observe(now - memory.waiting_since)
            memory.waiting_since = None

    def _status_of(
        self, observation: Observation, replicas: int, wait: policy.Wait | None, pool: str
    ) -> dict[str, Any]:
        accelerators = observation.service.spec.resources.accelerators
        memory = self._memory[observation.key]
        held = max(replicas, observation.pods) * accelerators
        if replicas > 0:
            extra = f"; {wait.reason}" if wait is not None else ""
            return _member_status(
                pool, pool_api.HOLDING, f"holds {replicas * accelerators} device(s){extra}", held
            )
        if wait is not None:
            return _member_status(pool, pool_api.WAITING, wait.reason, wait.devices)
        if memory.evicted_for is not None:
            draining = " (draining)" if observation.pods > 0 else ""
            reason = (
                f"scaled to zero to make room for {memory.evicted_for}{draining}; a request brings it back"
            )
            return _member_status(pool, pool_api.EVICTED, reason, held)
        return _member_status(pool, pool_api.IDLE, "at zero; a request brings it back", held)

    async def _write_member(self, observation: Observation, wanted: dict[str, Any] | None) -> None:
        current = observation.obj.get("status", {}).get("pool")
        if wanted is not None and current is not None:
            if {k: v for k, v in current.items() if k != "since"} == {
                k: v for k, v in wanted.items() if k != "since"
            }:
                return
            if current.get("state") == wanted.get("state") and current.get("since"):
                wanted = {**wanted, "since": current["since"]}
        if wanted == current:
            return
        service = observation.service
        try:
            await self._client.patch_status(
                resources.LLMSERVICE, service.metadata.name, service.namespace, {"pool": wanted}
            )
        except (ApiError, ApiUnreachableError) as error:
            log.warning(
                "could not write status.pool", extra=logs.fields(llmservice=observation.key, error=str(error))
            )

    async def _write_pool(
        self,
        pool: pool_api.AcceleratorPool,
        members: list[Observation],
        planned: policy.Plan,
        targets: dict[str, Target],
        *,
        now: float,
    ) -> None:
        name = pool.metadata.name
        holders = []
        for observation in sorted(members, key=lambda o: -(self._memory[o.key].last_used or 0)):
            devices = max(targets[observation.key].replicas, observation.pods) * (
                observation.service.spec.resources.accelerators
            )
            if devices == 0:
                continue
            membership = observation.service.spec.pool
            assert membership is not None
            holders.append(
                pool_api.PoolHolder(
                    service=observation.key,
                    devices=devices,
                    priority=membership.priority,
                    pinned=membership.pinned,
                    since=observation.obj.get("status", {}).get("pool", {}).get("since"),
                )
            )
        waiting = [
            pool_api.PoolWaiter(service=wait.key, devices=wait.devices, reason=wait.reason)
            for wait in planned.waits
            if targets[wait.key].replicas == 0
        ]
        in_use = sum(holder.devices for holder in holders)
        self._metrics.pool_in_use.labels(pool=name).set(in_use)
        self._metrics.pool_devices.labels(pool=name).set(pool.spec.devices)
        self._metrics.pool_waiting.labels(pool=name).set(len(waiting))
        window = durations.parse_nanoseconds(pool.spec.swap_limit.window) / durations.SECOND
        status = pool_api.AcceleratorPoolStatus(
            devices_in_use=in_use,
            holders=holders or None,
            waiting=waiting or None,
            waiting_count=len(waiting),
            evictions=self._totals[name],
            recent_evictions=len(policy.recent(self._evictions.get(name, ()), now=now, window=window)),
            last_eviction=self._last_eviction.get(name) or pool.status.last_eviction,
            observed_generation=pool.metadata.generation,
        ).to_wire()
        current = pool.status.to_wire()
        if _without_since(current) == _without_since(status):
            return
        # Whole lists are replaced (merge patch); absent ones are removed.
        body = {key: status.get(key) for key in {*status, *current}}
        try:
            await self._client.patch_status(resources.ACCELERATOR_POOL, name, None, body)
        except (ApiError, ApiUnreachableError) as error:
            log.warning("could not write the pool's status", extra=logs.fields(pool=name, error=str(error)))


def _without_since(status: dict[str, Any]) -> dict[str, Any]:
    holders = [{k: v for k, v in holder.items() if k != "since"} for holder in status.get("holders") or []]
    return {**status, "holders": holders}


def _rules(pool: pool_api.AcceleratorPool) -> policy.Rules:
    spec = pool.spec

    def seconds(text: str) -> float:
        return durations.parse_nanoseconds(text) / durations.SECOND

    return policy.Rules(
        devices=spec.devices,
        min_warm=seconds(spec.min_warm),
        idle_grace=seconds(spec.idle_grace),
        swap_evictions=spec.swap_limit.evictions,
        swap_window=seconds(spec.swap_limit.window),
    )


def _start_at_zero(observation: Observation, *, pool: str) -> Observation:
    """A new member's backend is created with the API server's default replica: it must not hold a device
    nobody asked for, so it goes to zero at once unless a request already waits for it."""
    if not observation.fresh or observation.current == 0 or (observation.demand or 0) > 0:
        return observation
    reason = f"a new member of AcceleratorPool {pool} starts at zero; the pool grants devices on demand"
    return dataclasses.replace(observation, decision=scaling.Decision(0, reason))


def _hold_back(observation: Observation, why: str) -> Target:
    """A member the pool cannot serve: it may scale down, never up (nor keep its creation-time replica)."""
    if observation.fresh and observation.current > 0:
        return Target(0, f"not started: {why}")
    replicas = min(observation.wanted, observation.current)
    reason = observation.decision.reason if observation.decision is not None else "unchanged"
    if replicas != observation.wanted:
        reason = f"{reason}; not scaled up: {why}"
    return Target(replicas, reason)


def _member_status(
    pool: str, state: pool_api.MemberState, reason: str, devices: int | None
) -> dict[str, Any]:
    return pool_api.MemberStatus(
        name=pool, state=state, reason=reason, devices=devices, since=timestamps.format_seconds()
    ).to_wire()
