"""``AcceleratorPool``: a budget of accelerator devices shared by many LLMServices, and how their members
take turns (issue 16): when a member needs devices and none are free, the operator swaps an idle member
out so the cold one can start.

Cluster-scoped, as InferenceRuntime is: devices belong to nodes, which no namespace owns, and models of
several teams (namespaces) compete for the same GPUs, so one pool must be able to arbitrate between them.
An LLMService joins a pool by name (``spec.pool``, :class:`PoolMembership`); its standing in the pool is
``status.pool`` (:class:`MemberStatus`).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from hearth.api import base
from hearth.api.base import ApiModel, GoDuration, Int32, Int64
from hearth.api.meta import ObjectMeta
from hearth.common import durations

KIND = "AcceleratorPool"
PLURAL = "acceleratorpools"
#: An extended resource name as the device plugins advertise it (domain-prefixed), e.g. nvidia.com/gpu.
RESOURCE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
#: A pool's name: a DNS subdomain (it is a cluster-scoped object).
POOL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_PRIORITY = 1000
MAX_POOL_DURATION = durations.HOUR * 24

#: What a member is doing in its pool (``status.pool.state``).
MemberState = Literal["Holding", "Waiting", "Evicted", "Idle", "Refused"]
HOLDING: MemberState = "Holding"
WAITING: MemberState = "Waiting"
EVICTED: MemberState = "Evicted"
IDLE: MemberState = "Idle"
REFUSED: MemberState = "Refused"


def _duration_rule(field: str, *, positive: bool) -> dict[str, Any]:
    low = ">" if positive else ">="
    bound = "longer than 0s" if positive else "at least 0s"
    return {
        "rule": f"!has(self.{field}) || (duration(self.{field}) {low} duration('0s') && "
        f"duration(self.{field}) <= duration('24h'))",
        "message": f"{field} must be {bound} and at most 24h",
        "fieldPath": f".{field}",
        "reason": "FieldValueInvalid",
    }


def _check_duration(value: str, *, field: str, positive: bool) -> None:
    nanoseconds = durations.parse_nanoseconds(value)
    if nanoseconds < (1 if positive else 0) or nanoseconds > MAX_POOL_DURATION:
        bound = "longer than 0s" if positive else "at least 0s"
        raise ValueError(f"{field} must be {bound} and at most 24h, got {value}")


class SwapLimit(ApiModel):
    """How often the pool may evict: the bound that keeps alternating traffic from swapping on every
    request."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [_duration_rule("window", positive=True)]}
    )

    evictions: Int32 = pydantic.Field(default=4, ge=1, le=1000)
    """Most evictions in any window; past it a member that needs devices waits until one is freed by an
    ordinary scale-down (or until the oldest eviction leaves the window)."""
    window: GoDuration = "10m"
    """The sliding window evictions are counted over; longer than 0s, at most 24h."""

    @pydantic.model_validator(mode="after")
    def _check_window(self) -> SwapLimit:
        _check_duration(self.window, field="window", positive=True)
        return self


class AcceleratorPoolSpec(ApiModel):
    """The devices a pool's members share, and the rules of taking turns."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _duration_rule("minWarm", positive=False),
                _duration_rule("idleGrace", positive=False),
            ]
        }
    )

    resource_name: str = pydantic.Field(min_length=1, max_length=253, pattern=RESOURCE_NAME_PATTERN)
    """The extended resource the members' runtimes request, e.g. nvidia.com/gpu or huawei.com/Ascend910. A
    member whose runtime requests another resource is refused (status.pool.state Refused)."""
    devices: Int32 = pydantic.Field(ge=1)
    """How many devices of that resource the members may hold together. A member holds
    spec.resources.accelerators devices per backend replica, counted from the moment its replica is
    wanted until its last backend pod is gone (a draining pod still occupies its devices)."""
    min_warm: GoDuration = "2m"
    """A member that just woke keeps its devices at least this long, whatever else waits (it paid for a
    cold start)."""
    idle_grace: GoDuration = "30s"
    """A member is evictable only after its gateways have reported no demand (nothing waiting, nothing in
    flight) for this long."""
    swap_limit: SwapLimit = base.nested(SwapLimit)
    """The most evictions per window."""

    @pydantic.model_validator(mode="after")
    def _check_durations(self) -> AcceleratorPoolSpec:
        _check_duration(self.min_warm, field="minWarm", positive=False)
        _check_duration(self.idle_grace, field="idleGrace", positive=False)
        return self


class PoolHolder(ApiModel):
    """A member holding devices."""

    service: str
    """The LLMService, as namespace/name."""
    devices: Int32
    """Devices it holds (replicas, and pods still draining, times its accelerators)."""
    priority: Int32 = 0
    """Its spec.pool.priority."""
    pinned: bool = False
    """Its spec.pool.pinned: never evicted."""
    since: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When it last started holding devices."""


class PoolWaiter(ApiModel):
    """A member that needs devices the pool cannot give yet."""

    service: str
    """The LLMService, as namespace/name."""
    devices: Int32
    """Devices it needs."""
    reason: str
    """Why it waits (no evictable member, the swap limit, a victim still draining)."""
    since: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When it started waiting."""


class AcceleratorPoolStatus(ApiModel):
    """Who holds the pool's devices, who waits for them, and the evictions made."""

    model_config = pydantic.ConfigDict(extra="ignore")

    devices_in_use: Int32 | None = None
    """Devices its members hold now."""
    holders: list[PoolHolder] | None = None
    """Members holding devices, most recently used first."""
    waiting: list[PoolWaiter] | None = None
    """Members waiting for devices, in the order they will be served."""
    waiting_count: Int32 | None = None
    """How many members wait (a printer column)."""
    evictions: Int64 | None = None
    """Evictions this pool has made since the operator leader started."""
    recent_evictions: Int32 | None = None
    """Evictions within the current swap-limit window."""
    last_eviction: str | None = None
    """The last eviction: the victim, for whom, and when."""
    observed_generation: Int64 | None = None
    """The metadata.generation this status describes."""


class AcceleratorPool(pydantic.BaseModel):
    """A budget of accelerator devices shared by LLMServices, which swap idle members out for cold ones."""

    model_config = pydantic.ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["serving.hearth.dev/v1alpha1"] = pydantic.Field(
        default="serving.hearth.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["AcceleratorPool"] = "AcceleratorPool"
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)
    spec: AcceleratorPoolSpec
    status: AcceleratorPoolStatus = pydantic.Field(default_factory=AcceleratorPoolStatus)


class PoolMembership(ApiModel):
    """Membership of an AcceleratorPool (builtin scaler mode only: in the KEDA modes KEDA owns replicas,
    so a member is refused there)."""

    name: str = pydantic.Field(min_length=1, max_length=253, pattern=POOL_NAME_PATTERN)
    """The AcceleratorPool's name (cluster-scoped)."""
    priority: Int32 = pydantic.Field(default=0, ge=0, le=MAX_PRIORITY)
    """0 to 1000. A member may evict only members of lower or equal priority; when several wait, the
    highest priority is served first."""
    pinned: bool = False
    """Never evicted: once warm it keeps its devices until its own scale-down."""


class MemberStatus(ApiModel):
    """An LLMService's standing in its AcceleratorPool."""

    name: str
    """The pool."""
    state: MemberState
    """Holding (has devices), Waiting (needs devices the pool cannot give yet), Evicted (scaled to zero
    to make room for another member), Idle (at zero, needs nothing) or Refused (cannot be a member: see
    reason)."""
    reason: str | None = None
    """Why, in words."""
    devices: Int32 | None = None
    """Devices held (Holding) or needed (Waiting)."""
    since: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When the state last changed."""
