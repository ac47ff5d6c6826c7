"""Wakes that cannot succeed (pure): what the backend's pods and Deployment say is wrong, and the
``status.wakeFailure`` record kept from one observation to the next.

A failure is recorded the moment it shows (the kubelet's ErrImagePull comes seconds after the pod is
bound; a crash shows as CrashLoopBackOff right after the first exit), so held clients learn it within
seconds instead of at their activation timeout. Recorded, it stands until ``retryAt`` (30 s, doubling per
failed wake in a row, up to 5 min): gateways refuse cold requests with its reason until then, and the next
request after it wakes the backend again. A backend pod turning Ready clears it; a new pod template (a fixed
image, new arguments) ends its refusals at once and leaves the old template's pods out of every diagnosis
(``staleBefore``: a rolling update keeps the failing pod until its successor is ready).

Some failures the kubelet writes into the pod's status only late: a container that cannot be created
(an image it cannot pull, a missing Secret) fails the pod worker's sync, and the waiting reason appears at
the next sync after the worker's error back-off, 10-15 s later (``backOffPeriod`` 10 s with jitter 0.5,
kubernetes v1.34 ``pkg/kubelet/pod_workers.go``). Its Warning Event is recorded the moment it fails
(``pkg/kubelet/images/image_manager.go``, ``kuberuntime_container.go``), so a pod's Warning Events count
as well, while the container they name has not started.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from hearth.api.wakefailure import WakeFailure
from hearth.api.wakereasons import Reason
from hearth.common import timestamps
from hearth.operator.telemetry import wakes
from hearth.render.backend import FETCH_CONTAINER_NAME

#: How ``hearth fetch`` starts the line saying why it failed (the last line the kubelet keeps as the
#: container's termination message: its terminationMessagePolicy is FallbackToLogsOnError).
FETCH_ERROR_PREFIX = "hearth fetch: "

#: The kubelet's waiting reasons (containerStatuses[].state.waiting.reason) that no wait will cure.
WAITING_REASONS: dict[str, Reason] = {
    "ErrImagePull": Reason.IMAGE_PULL_FAILED,
    "ImagePullBackOff": Reason.IMAGE_PULL_FAILED,
    "InvalidImageName": Reason.IMAGE_PULL_FAILED,
    "ErrImageNeverPull": Reason.IMAGE_PULL_FAILED,
    "CrashLoopBackOff": Reason.CRASH_LOOP_BACK_OFF,
    "CreateContainerConfigError": Reason.CONTAINER_CONFIG_ERROR,
    "CreateContainerError": Reason.CONTAINER_CONFIG_ERROR,
    "RunContainerError": Reason.CONTAINER_CONFIG_ERROR,
}
#: Image Events the kubelet records by reason (kubernetes v1.34 ``pkg/kubelet/events/event.go``); "Failed" is
#: read by its message (:func:`event_failure`).
EVENT_REASONS: dict[str, Reason] = {
    "ErrImageNeverPull": Reason.IMAGE_PULL_FAILED,
    "InspectFailed": Reason.IMAGE_PULL_FAILED,
}
#: The kubelet's "Failed" Events: an image pull ("Failed to pull image ...") or a container it could not
#: create or start ("Error: <what>"); the latter names the waiting reason for the image ones.
PULL_FAILED_PREFIX = "Failed to pull image"
CONTAINER_ERROR_PREFIX = "Error: "
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ErrImageNeverPull", "ImagePullBackOff", "InvalidImageName", "ErrImageInspect"}
)
#: How long a pod may stay unschedulable before the wake counts as failed. A cluster autoscaler adding a
#: node takes a minute or two; a pool member waits for its devices before its pod exists at all.
SCHEDULING_PATIENCE_S = 120.0
FIRST_RETRY_S = 30.0
LAST_RETRY_S = 300.0
#: A reason's message is the kubelet's or the controller's, clipped to what a status and an error carry.
MESSAGE_CHARS = 300


@dataclasses.dataclass(frozen=True, slots=True)
class Detected:
    """A failure seen in one observation."""

    reason: Reason
    message: str
    pod: str | None = None


def event_failure(event: dict[str, Any]) -> Reason | None:
    """The failure a Warning Event about a pod names, if it is one no wait will cure."""
    reason, message = str(event.get("reason") or ""), str(event.get("message") or "")
    if reason in EVENT_REASONS:
        return EVENT_REASONS[reason]
    if reason != "Failed":
        return None
    if message.startswith(PULL_FAILED_PREFIX):
        return Reason.IMAGE_PULL_FAILED
    if message.startswith(CONTAINER_ERROR_PREFIX):
        what = message.removeprefix(CONTAINER_ERROR_PREFIX)
        return Reason.IMAGE_PULL_FAILED if what in IMAGE_ERRORS else Reason.CONTAINER_CONFIG_ERROR
    return None


def diagnose(
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    at: datetime.datetime,
    stale_before: datetime.datetime | None = None,
    warnings: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> Detected | None:
    """What keeps the backend from coming up, from its live pods (not those terminating, nor those created
    before *stale_before*: an older template's), their Warning Events (*warnings*, by pod UID) and its
    Deployment; None when nothing does (yet)."""
    for pod in wakes.current(pods):
        if stale_before is not None and _older(pod, stale_before):
            continue
        found = _pod_failure(pod, at=at)
        if found is None and warnings:
            found = _warned_failure(pod, warnings.get(pod.get("metadata", {}).get("uid") or "") or ())
        if found is not None:
            return found
    for condition in (deployment or {}).get("status", {}).get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            message = condition.get("message") or "the Deployment made no progress within its deadline"
            return Detected(Reason.PROGRESS_DEADLINE_EXCEEDED, _clip(message))
    return None


def _older(pod: dict[str, Any], moment: datetime.datetime) -> bool:
    """Whether *pod* was created before *moment*. Creation times have whole seconds: a pod of the second
    *moment* falls in counts as newer (an old template's failing pod is always older than that)."""
    created = timestamps.parse(pod.get("metadata", {}).get("creationTimestamp"))
    return created is not None and created < moment.replace(microsecond=0)


def _fetch_failure(name: str | None, status: dict[str, Any]) -> Detected | None:
    """The model fetch init step exited non-zero: its own words (a wrong digest, refused credentials, a
    missing object, a full volume) rather than the CrashLoopBackOff its restarts turn into."""
    for container in status.get("initContainerStatuses") or []:
        if container.get("name") != FETCH_CONTAINER_NAME:
            continue
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            terminated = state.get("terminated") or {}
            if not terminated or not terminated.get("exitCode"):
                continue
            lines = [
                line.strip() for line in str(terminated.get("message") or "").splitlines() if line.strip()
            ]
            said = next((line for line in reversed(lines) if line.startswith(FETCH_ERROR_PREFIX)), None)
            cause = (
                said.removeprefix(FETCH_ERROR_PREFIX) if said else f"exit code {terminated.get('exitCode')}"
            )
            return Detected(
                Reason.MODEL_FETCH_FAILED, _clip(f"pod {name}: model fetch failed: {cause}"), name
            )
    return None


def _pod_failure(pod: dict[str, Any], *, at: datetime.datetime) -> Detected | None:
    name = pod.get("metadata", {}).get("name")
    status = pod.get("status", {})
    fetch = _fetch_failure(name, status)
    if fetch is not None:
        return fetch
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        state, last = container.get("state") or {}, container.get("lastState") or {}
        if any((each.get("terminated") or {}).get("reason") == "OOMKilled" for each in (state, last)):
            message = f"container {container.get('name')} was killed for exceeding its memory limit"
            return Detected(Reason.OOM_KILLED, f"pod {name}: {message}", name)
        waiting = state.get("waiting") or {}
        reason = WAITING_REASONS.get(waiting.get("reason") or "")
        if reason is not None:
            said = waiting.get("message") or waiting.get("reason")
            return Detected(reason, _clip(f"pod {name}: {waiting.get('reason')}: {said}"), name)
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            since = timestamps.parse(condition.get("lastTransitionTime"))
            if since is not None and (at - since).total_seconds() >= SCHEDULING_PATIENCE_S:
                message = f"pod {name} unschedulable for {int((at - since).total_seconds())}s: "
                return Detected(
                    Reason.SCHEDULING_DELAYED, _clip(message + str(condition.get("message"))), name
                )
    return None


def _warned_failure(pod: dict[str, Any], events: Sequence[dict[str, Any]]) -> Detected | None:
    """A failure a Warning Event names for a container of *pod* that has not started since."""
    status = pod.get("status", {})
    started = {
        container.get("name")
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        if set(container.get("state") or {}) & {"running", "terminated"}
    }
    name = pod.get("metadata", {}).get("name")
    for event in events:
        reason = event_failure(event)
        container = _container_of(str((event.get("involvedObject") or {}).get("fieldPath") or ""))
        if reason is None or container is None or container in started:
            continue
        said = f"pod {name}: container {container}: {event.get('reason')}: {event.get('message')}"
        return Detected(reason, _clip(said), name)
    return None


def _container_of(field_path: str) -> str | None:
    """The container an Event's ``involvedObject.fieldPath`` names (``spec.containers{engine}``)."""
    for prefix in ("spec.containers{", "spec.initContainers{"):
        if field_path.startswith(prefix) and field_path.endswith("}"):
            return field_path[len(prefix) : -1]
    return None


def template_digest(deployment: dict[str, Any] | None) -> str | None:
    """A short digest of the Deployment's pod template: a different one is a new attempt."""
    template = (deployment or {}).get("spec", {}).get("template")
    if template is None:
        return None
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def advance(
    recorded: WakeFailure | None,
    detected: Detected | None,
    *,
    ready: bool,
    template: str | None,
    at: datetime.datetime,
) -> WakeFailure | None:
    """The ``status.wakeFailure`` after one observation at *at* (*detected* already leaves out the pods
    :func:`superseded` marks stale)."""
    if ready:
        return None
    if detected is None:
        return recorded
    if recorded is not None:
        retry_at = timestamps.parse(recorded.retry_at)
        if retry_at is not None and at < retry_at:
            return recorded  # the same failed wake, still within its wait
    attempts = recorded.attempts + 1 if recorded is not None else 1
    stale_before = recorded.stale_before if recorded is not None else None
    delay = min(FIRST_RETRY_S * 2 ** (attempts - 1), LAST_RETRY_S)
    return WakeFailure(
        reason=str(detected.reason),
        message=detected.message,
        since=timestamps.format_millis(at),
        retry_at=timestamps.format_millis(at + datetime.timedelta(seconds=delay)),
        attempts=attempts,
        pod=detected.pod,
        template=template,
        stale_before=stale_before,
    )


def superseded(
    recorded: WakeFailure | None, *, template: str | None, at: datetime.datetime
) -> WakeFailure | None:
    """*recorded*, after the pod template became *template*: a failure of another template refuses nothing
    from *at* on, its count starts again, and the pods created before *at* are the old template's."""
    if recorded is None or template is None or recorded.template in (None, template):
        return recorded
    return recorded.model_copy(
        update={
            "template": template,
            "retry_at": timestamps.format_millis(at),
            "attempts": 0,
            "stale_before": timestamps.format_millis(at),
        }
    )


def active(recorded: WakeFailure | None, *, at: datetime.datetime) -> bool:
    """Whether *recorded* still refuses cold requests at *at*."""
    if recorded is None:
        return False
    retry_at = timestamps.parse(recorded.retry_at)
    return retry_at is not None and at < retry_at


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."
