"""What each scaler mode adds to an LLMService's objects, keyed by mode (SPEC §2.3, DESIGN 2): the KEDA
trigger of its ScaledObject, the gateway's gRPC scaler Service, env and port, and the Role rule that lets the
gateway wake its backend.

:mod:`hearth.api.scalermodes` says what a mode needs; this module builds it. A new mode adds a traits entry
there and a :class:`Builders` entry here (a test keeps the two in agreement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hearth.api import gatewayenv, scalermodes
from hearth.api.llmservice import LLMService
from hearth.render import common, names
from hearth.render.errors import Reason, ReconcileError

#: The gateway's plaintext gRPC ExternalScaler port (external-push).
GRPC_PORT = 9090

Manifest = dict[str, Any]


def _no_rules(_service: LLMService) -> list[Manifest]:
    return []


@dataclasses.dataclass(frozen=True, slots=True)
class Builders:
    """The objects and object parts one scaler mode renders."""

    #: The trigger of the KEDA ScaledObject ``<svc>``; None: no ScaledObject (a leftover one is deleted).
    trigger: Callable[[LLMService], Manifest] | None = None
    #: The Service ``<svc>-scaler`` KEDA dials; None: none (a leftover one is deleted).
    scaler_service: Callable[[LLMService], Manifest] | None = None
    #: Env entries of the gateway container, right after HEARTH_LISTEN_ADDR (the reference's order).
    gateway_env: tuple[Manifest, ...] = ()
    #: Container ports of the gateway, after ``http``.
    gateway_ports: tuple[Manifest, ...] = ()
    #: Rules added to the gateway's Role.
    gateway_rules: Callable[[LLMService], list[Manifest]] = _no_rules


def _metrics_api_trigger(service: LLMService) -> Manifest:
    """KEDA polls ``/hearth/queue`` on every ready gateway pod and sums their demand (issue 12: one
    kept-alive connection to the Service would read one pod for good; see :mod:`scaledobject`). The URL
    names the pod port, which KEDA matches against the EndpointSlice ports."""
    name = service.metadata.name
    host = f"{names.gateway_service(name)}.{service.namespace}.svc:{names.GATEWAY_HTTP_PORT}"
    return {
        "type": "metrics-api",
        "metadata": {
            "url": f"http://{host}/hearth/queue",
            "valueLocation": "pending",
            "targetValue": str(service.spec.scaling.target),
            "activationTargetValue": "0",
            "aggregateFromKubeServiceEndpoints": "true",
            "aggregationType": "sum",
        },
    }


def _external_push_trigger(service: LLMService) -> Manifest:
    """KEDA holds a StreamIsActive stream to the gateway, which pushes the moment demand appears."""
    name = service.metadata.name
    return {
        "type": "external-push",
        "metadata": {
            "scalerAddress": f"{names.scaler_service(name)}.{service.namespace}.svc:{GRPC_PORT}",
            "metricName": "pending",
            "targetValue": str(service.spec.scaling.target),
        },
    }


def _scaler_service(service: LLMService) -> Manifest:
    """``<svc>-scaler``: KEDA's plaintext gRPC ExternalScaler endpoint."""
    name = service.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(service, names.scaler_service(name), names.gateway_service_labels(name)),
        "spec": {
            "type": "ClusterIP",
            "selector": names.gateway_selector(name),
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"}],
        },
    }


def check_pool(service: LLMService, mode: scalermodes.ScalerMode) -> None:
    """Refuse ``spec.pool`` in a mode where the operator does not own the replicas (Render)."""
    traits = scalermodes.traits(mode)
    if service.spec.pool is None or traits.pools:
        return
    allowed = " or ".join(str(other) for other in scalermodes.RESOLVED if scalermodes.traits(other).pools)
    raise ReconcileError(
        Reason.RENDER,
        f"spec.pool: AcceleratorPool {service.spec.pool.name} cannot be used with --scaler-mode={mode}: "
        f"{traits.pools_why} (run the operator with --scaler-mode={allowed}, or remove spec.pool)",
    )


def _wake_rule(service: LLMService) -> list[Manifest]:
    """The gateway patches its own backend's scale 0→1 (and nothing else's); a pool member's does not."""
    if service.spec.pool is not None:
        return []
    return [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": [names.backend(service.metadata.name)],
            "verbs": ["get", "patch", "update"],
        }
    ]


_BUILDERS: dict[scalermodes.ScalerMode, Builders] = {
    scalermodes.ScalerMode.METRICS_API: Builders(trigger=_metrics_api_trigger),
    scalermodes.ScalerMode.EXTERNAL_PUSH: Builders(
        trigger=_external_push_trigger,
        scaler_service=_scaler_service,
        gateway_env=(common.env_entry(gatewayenv.SCALER_LISTEN.env, f":{GRPC_PORT}"),),
        gateway_ports=({"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},),
    ),
    scalermodes.ScalerMode.BUILTIN: Builders(gateway_rules=_wake_rule),
}


def of(mode: scalermodes.ScalerMode) -> Builders:
    """The builders of a resolved mode."""
    scalermodes.traits(mode)  # refuses auto with a clear message
    return _BUILDERS[mode]
