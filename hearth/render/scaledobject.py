"""The KEDA ScaledObject ``<svc>`` of the scaler modes KEDA drives (SPEC §2.3); each mode's trigger is built
in :mod:`hearth.render.scalers`.

Two departures from the reference, both found by running it under real KEDA (issue 12):

* metrics-api reads **every** ready gateway pod and sums their demand. KEDA keeps one kept-alive
  connection per URL and kube-proxy balances per connection, so the reference's Service URL reads one
  gateway pod for good. With ``aggregateFromKubeServiceEndpoints`` KEDA lists the EndpointSlices labelled
  with the URL's Service name (first host label) in its namespace (second label), keeps the ready
  endpoints and, for each address, the slice port equal to the URL's port: the pod port, so the URL
  names 8080, not the Service's 80 (KEDA 2.21 pkg/scalers/metrics_api_scaler.go:326-393). Needs KEDA
  >= 2.20 (2.18 added the field; before 2.20 it matched every EndpointSlice of the namespace).
* ``scaleDownStabilization`` means what it means in builtin mode: no scale-down sooner than a full window
  after demand fell. KEDA scales N -> 0 at the first poll after ``lastActiveTime + cooldownPeriod``, where
  lastActiveTime is the last poll that still saw demand, stored in whole seconds
  (pkg/scaling/executor/scale_scaledobjects.go:84-88, 222-223; metav1.Time is RFC 3339): up to one
  polling interval and one second before demand fell. The HPA (1 <-> N) scales down to the highest
  recommendation it *recorded* within the window, one per sync (kube-controller-manager's
  ``--horizontal-pod-autoscaler-sync-period``, 15 s by default; pkg/controller/podautoscaler/
  horizontal.go:1134-1177): the last high one is up to a sync period older than the drop. So each
  clock gets its own loop period plus a second on top of the window (a window of 0 stays 0).
"""

from __future__ import annotations

from typing import Any

from hearth.api.llmservice import LLMService
from hearth.common import durations
from hearth.render import common, names
from hearth.render.errors import Reason, ReconcileError

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
POLLING_INTERVAL_SECONDS = 5
MAX_STABILIZATION_SECONDS = 3600
#: kube-controller-manager's default --horizontal-pod-autoscaler-sync-period (Hearth cannot read the flag).
HPA_SYNC_PERIOD_SECONDS = 15
#: The most the HPA API (and KEDA's CRD) accept for behavior.scaleDown.stabilizationWindowSeconds.
MAX_HPA_WINDOW_SECONDS = 3600
#: Slack for KEDA's whole-second lastActiveTime and for the time each loop takes to read demand.
SLACK_SECONDS = 1


def stabilization_seconds(service: LLMService) -> int:
    """``scaleDownStabilization`` in whole seconds, 0-3600 (reason ScaledObject otherwise)."""
    text = service.spec.scaling.scale_down_stabilization
    nanos = durations.parse_nanoseconds(text)
    if nanos < 0:
        raise ReconcileError(Reason.SCALED_OBJECT, f"scaleDownStabilization {text} must not be negative")
    if nanos % durations.SECOND:
        raise ReconcileError(
            Reason.SCALED_OBJECT, f"scaleDownStabilization {text} must be a whole number of seconds"
        )
    seconds = nanos // durations.SECOND
    if seconds > MAX_STABILIZATION_SECONDS:
        raise ReconcileError(Reason.SCALED_OBJECT, f"scaleDownStabilization {text} must be at most 1h")
    return seconds


def cooldown_seconds(stabilization: int) -> int:
    """KEDA's cooldownPeriod: N -> 0 no sooner than *stabilization* seconds after demand ended."""
    return stabilization + POLLING_INTERVAL_SECONDS + SLACK_SECONDS if stabilization else 0


def hpa_window_seconds(stabilization: int) -> int:
    """The HPA's scale-down window: N -> M no sooner than *stabilization* seconds after demand fell
    (assuming the default sync period; a window above 3584 s is capped at the HPA's limit of 1 h)."""
    if not stabilization:
        return 0
    return min(stabilization + HPA_SYNC_PERIOD_SECONDS + SLACK_SECONDS, MAX_HPA_WINDOW_SECONDS)


def check_metric(service: LLMService) -> None:
    if service.spec.scaling.metric not in ("", "queueDepth"):
        raise ReconcileError(
            Reason.SCALED_OBJECT,
            f"scaling.metric {service.spec.scaling.metric} is not supported yet (use queueDepth)",
        )


def manifest(service: LLMService, *, trigger: dict[str, Any]) -> dict[str, Any]:
    """The ScaledObject driving the backend with *trigger* (the scaler mode's, from :mod:`scalers`)."""
    check_metric(service)
    stabilization = stabilization_seconds(service)
    name = service.metadata.name
    scaling = service.spec.scaling
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": common.metadata(service, names.scaled_object(name), names.backend_selector(name)),
        "spec": {
            "scaleTargetRef": {"name": names.backend(name)},
            "minReplicaCount": scaling.min,
            "maxReplicaCount": scaling.max,
            "pollingInterval": POLLING_INTERVAL_SECONDS,
            "cooldownPeriod": cooldown_seconds(stabilization),
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": hpa_window_seconds(stabilization)}
                    }
                }
            },
            "triggers": [trigger, *cron_triggers(service)],
        },
    }


def cron_triggers(service: LLMService) -> list[dict[str, Any]]:
    """KEDA's cron scaler for each warm window (issue 31): KEDA keeps ``desiredReplicas`` from ``start`` to
    ``end`` and, as with every trigger, takes the highest wanted by any trigger; after ``end`` the demand
    trigger and the cooldownPeriod bring it back to zero. KEDA wakes at the window's start, not ahead of it
    by the model's wake time as the builtin autoscaler does: its cron expressions cannot be shifted by a
    measured number of seconds in general, so write ``start`` earlier by a wake time to be ready at the
    hour (docs/warm-windows.md)."""
    return [
        {
            "type": "cron",
            "name": f"warm-window-{window.name}",
            "metadata": {
                "timezone": window.timezone,
                "start": window.start,
                "end": window.end,
                "desiredReplicas": str(window.min_replicas),
            },
        }
        for window in service.spec.scaling.schedules or ()
    ]
