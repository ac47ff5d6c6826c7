"""Status objects for wake telemetry and accelerator accounting (part of ``LLMService.status``).

Times are RFC 3339 strings with milliseconds; durations are plain seconds (numbers), because readers (the
ETA of a held request, dashboards, ``kubectl -o jsonpath``) do arithmetic on them.
"""

from __future__ import annotations

from typing import Annotated

import pydantic

from hearth.api.base import ApiModel, Int32

#: Recent wake totals kept for the p50/p90 (enough for a stable p90, small enough for a status).
HISTORY_LENGTH = 20

DateTime = Annotated[str, pydantic.Field(json_schema_extra={"format": "date-time"})]


class Wake(ApiModel):
    """One cold start, from the backend leaving zero replicas until its first pod was ready."""

    started_at: DateTime
    """When the operator saw the backend Deployment leave zero replicas."""
    bound_at: DateTime | None = None
    """When the first backend pod was bound to a node (it held its accelerators from then)."""
    containers_started_at: DateTime | None = None
    """When that pod's containers were running (image pulled, container created)."""
    ready_at: DateTime | None = None
    """When that pod became Ready (the engine had loaded the model); absent while the wake goes on."""
    pod: str | None = None
    """The backend pod that became ready first."""
    unschedulable: bool | None = None
    """Whether the scheduler reported the pod unschedulable during the wait for a node."""
    scheduling_seconds: float | None = None
    """startedAt to boundAt: waiting for the pod to be created and scheduled (capacity, quota)."""
    creating_seconds: float | None = None
    """boundAt to containersStartedAt: pulling the image and creating the containers."""
    loading_seconds: float | None = None
    """containersStartedAt to readyAt: the engine loading the model until its readiness probe passed."""
    total_seconds: float | None = None
    """startedAt to readyAt."""


class WakeHistory(ApiModel):
    """Totals of the most recent completed wakes, newest last, with their quantiles (an ETA for callers)."""

    recent_seconds: list[float] = pydantic.Field(default_factory=list, max_length=HISTORY_LENGTH)
    """totalSeconds of the last wakes (at most 20)."""
    count: int = 0
    """Completed wakes observed since the LLMService was created."""
    p50_seconds: float | None = None
    """Median of recentSeconds."""
    p90_seconds: float | None = None
    """90th percentile of recentSeconds (nearest rank)."""


class AcceleratorUsage(ApiModel):
    """Accelerator-seconds of one device-plugin resource (e.g. nvidia.com/gpu)."""

    resource_name: str
    """The extended resource requested by the backend pods."""
    per_replica: Int32 = 0
    """Accelerators one backend replica asks for (from the Deployment's pod template)."""
    held: Int32 = 0
    """Accelerators held by bound backend pods since accounting.since."""
    waking_seconds: float = 0.0
    """Accelerator-seconds held while a wake was in progress (until accounting.since)."""
    serving_seconds: float = 0.0
    """Accelerator-seconds held outside wakes (until accounting.since). Allocated = waking + serving."""
    saved_seconds: float = 0.0
    """Time at zero replicas times perReplica (until accounting.since): what min 1 would have held."""
    scheduled_seconds: float = 0.0
    """Of wakingSeconds + servingSeconds, those held while a warm window was in force (status.warmWindow,
    its early wake included): kept warm by schedule; the rest was driven by demand (until
    accounting.since)."""


class Accounting(ApiModel):
    """Running totals of accelerator time. Between two changes the rates are constant, so the totals are
    written only when something changes (no writes while idle); live values are the totals plus
    (now - since) times the rates recorded here."""

    since: DateTime
    """The moment the totals run until, and from which the current rates apply."""
    at_zero: bool = False
    """Whether the backend was at zero replicas (spec and pods) since then."""
    idle: bool = False
    """Whether the Deployment was at zero with no pod serving (draining pods aside): the next scale-up
    is a wake."""
    waking: bool = False
    """Whether a wake was in progress since then."""
    scheduled: bool = False
    """Whether a warm window was in force since then (spec.scaling.schedules)."""
    draining_since: DateTime | None = None
    """When the Deployment was first seen at zero with backend pods left: their drain runs from then until
    the last pod is gone (at_zero), and only then does saved time start."""
    resources: list[AcceleratorUsage] = pydantic.Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["resourceName"]},
    )
    """One entry per accelerator resource name."""
    saved_accelerator_hours: float = 0.0
    """savedSeconds of every resource, in hours (rounded to 0.01): the kubectl -o wide column."""
    allocated_accelerator_hours: float = 0.0
    """wakingSeconds + servingSeconds of every resource, in hours (rounded to 0.01)."""
    scheduled_accelerator_hours: float = 0.0
    """scheduledSeconds of every resource, in hours (rounded to 0.01): the part of the allocated hours
    warm windows account for."""
