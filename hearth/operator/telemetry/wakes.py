"""Wake telemetry (pure): a wake from zero, phase by phase, from what the backend Deployment and its pods
show at each observation, and the history of recent wakes.

A wake starts when the backend Deployment leaves zero replicas *after the operator has seen it idle*:
scaled to 0 with no pod serving (pods still draining may linger; they serve nobody new). So a new
LLMService, whose Deployment starts at one replica before the autoscaler takes it down, is not a wake, and
neither is a pod replaced while serving. Each boundary is the first moment any new backend pod of the wake
(not one terminating from before) reached it: bound to a node, containers running, Ready. A boundary is
stamped with the observation time (milliseconds, right after the watch event), unless the pod's own
timestamp (whole seconds) is clearly older, which means the operator learned it late (e.g. it restarted
during the wake).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any

from hearth.api import telemetry, wakephases
from hearth.common import timestamps

#: A pod timestamp older than the observation by more than this was missed, not just seen (they are
#: truncated to whole seconds, so anything closer is the same moment).
STALE_SECONDS = 2.0

#: The phases a wake is timed by, as metric labels and status field prefixes.
PHASES = tuple(str(phase) for phase in wakephases.TIMED)


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def live(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods that exist and have not finished (a Succeeded/Failed pod holds nothing)."""
    return [pod for pod in pods if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")]


def is_ready(pod: dict[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    return _condition(pod, "Ready").get("status") == "True"


def bound(pod: dict[str, Any]) -> bool:
    return bool(pod.get("spec", {}).get("nodeName"))


def _scaled_to_zero(deployment: dict[str, Any] | None) -> bool:
    replicas = (deployment or {}).get("spec", {}).get("replicas")
    return deployment is not None and replicas is not None and int(replicas) == 0


def at_zero(deployment: dict[str, Any] | None, pods: list[dict[str, Any]]) -> bool:
    """The backend is at zero: its Deployment asks for no replica and no backend pod is left."""
    return _scaled_to_zero(deployment) and not live(pods)


def current(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live pods that are not terminating: the ones a wake waits for."""
    return [pod for pod in live(pods) if not pod.get("metadata", {}).get("deletionTimestamp")]


def idle(deployment: dict[str, Any] | None, pods: list[dict[str, Any]]) -> bool:
    """Scaled to zero with no pod serving: a request arriving now waits for a wake."""
    return _scaled_to_zero(deployment) and not current(pods)


@dataclasses.dataclass(frozen=True)
class _PodMoments:
    created: datetime.datetime | None
    bound: datetime.datetime | None
    started: datetime.datetime | None
    ready: datetime.datetime | None
    unschedulable: bool


def _moments(pod: dict[str, Any]) -> _PodMoments:
    scheduled = _condition(pod, "PodScheduled")
    is_bound = bound(pod) or scheduled.get("status") == "True"
    statuses = pod.get("status", {}).get("containerStatuses") or []
    started = [timestamps.parse(s.get("state", {}).get("running", {}).get("startedAt")) for s in statuses]
    all_started = bool(statuses) and all(moment is not None for moment in started)
    ready = _condition(pod, "Ready")
    is_ready = ready.get("status") == "True"
    return _PodMoments(
        created=timestamps.parse(pod.get("metadata", {}).get("creationTimestamp")),
        bound=(timestamps.parse(scheduled.get("lastTransitionTime")) or _EPOCH) if is_bound else None,
        started=max(m for m in started if m is not None) if all_started else None,
        ready=(timestamps.parse(ready.get("lastTransitionTime")) or _EPOCH) if is_ready else None,
        unschedulable=scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable",
    )


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _stamp(
    *, reported: list[datetime.datetime], at: datetime.datetime, floor: datetime.datetime | None
) -> datetime.datetime:
    """The moment a boundary was reached: *at*, or the earliest reported time if that was clearly missed."""
    moment = at
    earliest = min(reported) if reported else None
    if earliest is not None and earliest != _EPOCH and (at - earliest).total_seconds() > STALE_SECONDS:
        moment = earliest
    if floor is not None and moment < floor:
        moment = floor
    return moment


@dataclasses.dataclass(frozen=True)
class Step:
    """The result of one observation: the wake still in progress, and the one that just completed."""

    current: telemetry.Wake | None
    completed: telemetry.Wake | None = None
    aborted: bool = False
    started: bool = False


def observe(
    wake: telemetry.Wake | None,
    *,
    was_idle: bool,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    at: datetime.datetime,
) -> Step:
    """Advance the wake state by one observation at *at*."""
    pods = current(pods)
    scaled_down = _scaled_to_zero(deployment)
    started = False
    if wake is None:
        if not (was_idle and deployment is not None and not scaled_down):
            return Step(current=None)
        created = [m.created for m in map(_moments, pods) if m.created is not None]
        started_at = _stamp(reported=created, at=at, floor=None)
        wake = telemetry.Wake(started_at=timestamps.format_millis(started_at))
        started = True
    elif scaled_down:
        return Step(current=None, aborted=True)  # back to zero before any pod was ready (e.g. timeout)
    moments = [_moments(pod) for pod in pods]
    fields: dict[str, Any] = {}
    floor = timestamps.parse(wake.started_at)
    for name, reported in (
        ("bound_at", [m.bound for m in moments if m.bound is not None]),
        ("containers_started_at", [m.started for m in moments if m.started is not None]),
        ("ready_at", [m.ready for m in moments if m.ready is not None]),
    ):
        existing = timestamps.parse(getattr(wake, name))
        if existing is not None:
            floor = existing
            continue
        if not reported:
            break  # later boundaries cannot have been reached before this one
        floor = _stamp(reported=reported, at=at, floor=floor)
        fields[name] = timestamps.format_millis(floor)
    if any(m.unschedulable for m in moments) and not wake.unschedulable:
        fields["unschedulable"] = True
    ready_pods = [pod for pod, m in zip(pods, moments, strict=True) if m.ready is not None]
    if ready_pods and wake.pod is None:
        fields["pod"] = ready_pods[0].get("metadata", {}).get("name")
    if fields:
        wake = wake.model_copy(update=fields)
    if wake.ready_at is None:
        return Step(current=wake, started=started)
    return Step(current=None, completed=_with_durations(wake), started=started)


def _seconds(start: str | None, end: str | None) -> float | None:
    first, last = timestamps.parse(start), timestamps.parse(end)
    if first is None or last is None:
        return None
    return round(max((last - first).total_seconds(), 0.0), 3)


def _with_durations(wake: telemetry.Wake) -> telemetry.Wake:
    return wake.model_copy(
        update={
            "scheduling_seconds": _seconds(wake.started_at, wake.bound_at),
            "creating_seconds": _seconds(wake.bound_at, wake.containers_started_at),
            "loading_seconds": _seconds(wake.containers_started_at, wake.ready_at),
            "total_seconds": _seconds(wake.started_at, wake.ready_at),
        }
    )


def phase_seconds(wake: telemetry.Wake) -> dict[str, float]:
    """The completed wake's phases that were observed, by metric label."""
    values = {
        "scheduling": wake.scheduling_seconds,
        "creating": wake.creating_seconds,
        "loading": wake.loading_seconds,
    }
    return {phase: value for phase, value in values.items() if value is not None}


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (an observed value, never an interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def remember(history: telemetry.WakeHistory | None, wake: telemetry.Wake) -> telemetry.WakeHistory:
    """The history with *wake* (completed) added, oldest entries dropped."""
    history = history or telemetry.WakeHistory()
    if wake.total_seconds is None:
        return history
    recent = [*history.recent_seconds, wake.total_seconds][-telemetry.HISTORY_LENGTH :]
    return telemetry.WakeHistory(
        recent_seconds=recent,
        count=history.count + 1,
        p50_seconds=quantile(recent, 0.5),
        p90_seconds=quantile(recent, 0.9),
    )
