"""``status.wakeFailure``: the record of a wake that cannot succeed (the vocabulary is
:mod:`hearth.api.wakereasons`)."""

from __future__ import annotations

import pydantic

from hearth.api.base import ApiModel, Int32
from hearth.api.telemetry import DateTime
from hearth.api.wakereasons import REFUSAL_HEADER, Reason

__all__ = ["REFUSAL_HEADER", "Reason", "WakeFailure"]


class WakeFailure(ApiModel):
    """The backend could not come up: why, since when, and when the next request may try again."""

    reason: str
    """ImagePullFailed, OOMKilled, CrashLoopBackOff, ContainerConfigError, SchedulingDelayed or
    ProgressDeadlineExceeded."""
    message: str
    """What the pod, Job or Deployment said (e.g. the kubelet's message naming the image)."""
    since: DateTime
    """When this failure was detected."""
    retry_at: DateTime
    """Until then gateways answer cold requests 503 with the reason and a Retry-After; after it, the next
    request wakes the backend again. A changed pod template (a fixed image) clears the failure at once."""
    attempts: Int32 = pydantic.Field(default=1, ge=0)
    """Failed wakes in a row: each doubles the wait before the next try (30s up to 5m). 0: the pod template
    changed since (staleBefore), so the failure no longer refuses anything and the next wake starts afresh."""
    pod: str | None = None
    """The backend pod that showed the failure (none for Job or Deployment reasons)."""
    template: str | None = None
    """Digest of the backend pod template that failed: a new template clears the failure."""
    stale_before: DateTime | None = None
    """When the pod template last changed after a failure: pods created before it run the old template (a
    rolling update keeps the failing pod until its successor is ready) and say nothing about this one."""
