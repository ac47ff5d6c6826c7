"""The KEDA ScaledObject ``<svc>`` of the scaler modes KEDA drives (SPEC §2.3); each mode's trigger is built
in :mod:`hearth.render.scalers`."""

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


def check_metric(service: LLMService) -> None:
    if service.spec.scaling.metric not in ("", "queueDepth"):
        raise ReconcileError(
            Reason.SCALED_OBJECT,
            f"scaling.metric {service.spec.scaling.metric} is not supported yet (use queueDepth)",
        )


def manifest(service: LLMService, *, trigger: dict[str, Any]) -> dict[str, Any]:
    """The ScaledObject driving the backend with *trigger* (the scaler mode's, from :mod:`scalers`)."""
    check_metric(service)
    cooldown = stabilization_seconds(service)
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
            "cooldownPeriod": cooldown,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": cooldown}}
                }
            },
            "triggers": [trigger],
        },
    }
