"""The KEDA ScaledObject ``<svc>`` for the metrics-api and external-push scaler modes (SPEC §2.3)."""

from __future__ import annotations

from typing import Any

from hearth.api.llmservice import LLMService
from hearth.common import durations
from hearth.render import common, gateway, names
from hearth.render.config import ScalerMode
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


def manifest(service: LLMService, mode: ScalerMode) -> dict[str, Any]:
    check_metric(service)
    cooldown = stabilization_seconds(service)
    name, namespace = service.metadata.name, service.metadata.namespace or "default"
    scaling = service.spec.scaling
    target = str(scaling.target if scaling.target > 0 else 10)
    if mode is ScalerMode.EXTERNAL_PUSH:
        trigger = {
            "type": "external-push",
            "metadata": {
                "scalerAddress": f"{names.scaler_service(name)}.{namespace}.svc:{gateway.GRPC_PORT}",
                "metricName": "pending",
                "targetValue": target,
            },
        }
    else:
        trigger = {
            "type": "metrics-api",
            "metadata": {
                "url": f"http://{names.gateway_service(name)}.{namespace}.svc/hearth/queue",
                "valueLocation": "pending",
                "targetValue": target,
                "activationTargetValue": "0",
            },
        }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": common.metadata(service, names.scaled_object(name), names.backend_selector(name)),
        "spec": {
            "scaleTargetRef": {"name": names.backend(name)},
            "minReplicaCount": scaling.min,
            "maxReplicaCount": scaling.max if scaling.max > 0 else 1,
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
