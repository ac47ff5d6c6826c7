"""What each scaler mode adds to an LLMService's objects, keyed by mode (SPEC §2.3, DESIGN 2): the KEDA
trigger of its ScaledObject, the gateway's gRPC scaler Service, env and port, and the Role rule that lets the
gateway wake its backend.

:mod:`hearth.api.scalermodes` says what a mode needs; this module builds it. A new mode adds a traits entry
there and a :class:`Builders` entry here (a test keeps the two in agreement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from hearth.api import gatewayenv, rbac, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import ExternalScalerTLS, LLMService
from hearth.render import common, names
from hearth.render.errors import Reason, ReconcileError

#: The gateway's gRPC ExternalScaler port (external-push): plaintext, or mutual TLS with
#: ``spec.scaling.externalScaler.tls``.
GRPC_PORT = 9090

Manifest = dict[str, Any]


def _no_rules(_service: LLMService) -> list[Manifest]:
    return []


def _no_shared_rules(_routed: Sequence[LLMService]) -> list[Manifest]:
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
    #: The trigger of a service served by an LLMGateway (named by the second argument): demand of that
    #: one model at the shared gateway. None exactly when ``trigger`` is None.
    shared_trigger: Callable[[LLMService, str], Manifest] | None = None
    #: The Service ``<gateway>-scaler`` of an LLMGateway; None: none (a leftover one is deleted).
    shared_scaler_service: Callable[[LLMGateway], Manifest] | None = None
    #: Rules added to an LLMGateway's Role, given the LLMServices it routes.
    shared_gateway_rules: Callable[[Sequence[LLMService]], list[Manifest]] = _no_shared_rules


def _metrics_api(service: LLMService, *, gateway_service: str, path: str) -> Manifest:
    """KEDA polls *path* on every ready gateway pod behind Service *gateway_service* and sums their demand
    (issue 12: one kept-alive connection to the Service would read one pod for good; see
    :mod:`scaledobject`). The URL names the pod port, which KEDA matches against the EndpointSlice
    ports."""
    host = f"{gateway_service}.{service.namespace}.svc:{names.GATEWAY_HTTP_PORT}"
    return {
        "type": "metrics-api",
        "metadata": {
            "url": f"http://{host}{path}",
            "valueLocation": "pending",
            "targetValue": str(service.spec.scaling.target),
            "activationTargetValue": "0",
            "aggregateFromKubeServiceEndpoints": "true",
            "aggregationType": "sum",
        },
    }


def _metrics_api_trigger(service: LLMService) -> Manifest:
    name = service.metadata.name
    return _metrics_api(service, gateway_service=names.gateway_service(name), path="/hearth/queue")


def _shared_metrics_api_trigger(service: LLMService, gateway_name: str) -> Manifest:
    """The model's own queue at the shared gateway (``/hearth/queue/<model>``), summed over its pods."""
    path = f"/hearth/queue/{service.metadata.name}"
    return _metrics_api(service, gateway_service=names.shared_gateway_service(gateway_name), path=path)


def _external_push(service: LLMService, *, scaler_service: str) -> Manifest:
    """KEDA holds a StreamIsActive stream to the gateway, which pushes the moment demand appears."""
    return {
        "type": "external-push",
        "metadata": {
            "scalerAddress": f"{scaler_service}.{service.namespace}.svc:{GRPC_PORT}",
            "metricName": "pending",
            "targetValue": str(service.spec.scaling.target),
        },
    }


def _external_push_trigger(service: LLMService) -> Manifest:
    """With ``externalScaler.tls``, KEDA dials with the TriggerAuthentication's caCert, tlsClientCert and
    tlsClientKey: any of them makes it use TLS (KEDA 2.21 pkg/scalers/external_scaler.go:413-427, whose
    tls.Config checks the server's name against scalerAddress's host)."""
    trigger = _external_push(service, scaler_service=names.scaler_service(service.metadata.name))
    tls = scaler_tls(service, scalermodes.ScalerMode.EXTERNAL_PUSH)
    if tls is not None:
        reference = tls.authentication_ref
        trigger["authenticationRef"] = {"name": reference.name, "kind": reference.kind}
    return trigger


def scaler_tls(service: LLMService, mode: scalermodes.ScalerMode) -> ExternalScalerTLS | None:
    """``spec.scaling.externalScaler.tls`` when the mode serves the gRPC scaler (other modes ignore it)."""
    if not scalermodes.traits(mode).gateway_serves_grpc:
        return None
    external = service.spec.scaling.external_scaler
    return external.tls if external is not None else None


def _shared_external_push_trigger(service: LLMService, gateway_name: str) -> Manifest:
    """The shared gateway's scaler, asked about one model (scalerMetadata ``model``)."""
    if scaler_tls(service, scalermodes.ScalerMode.EXTERNAL_PUSH) is not None:
        # The server certificate would be the LLMGateway's, shared by every model it routes: not yet.
        raise ReconcileError(
            Reason.RENDER,
            f"spec.scaling.externalScaler.tls: this model is served by LLMGateway {gateway_name}, whose "
            "external scaler is plaintext (mutual TLS is for dedicated gateways); remove the field",
        )
    trigger = _external_push(service, scaler_service=names.shared_scaler_service(gateway_name))
    trigger["metadata"]["model"] = service.metadata.name
    return trigger


def _grpc_service(
    owner: common.Owner, *, name: str, labels: dict[str, str], selector: dict[str, str]
) -> Manifest:
    """KEDA's gRPC ExternalScaler endpoint in front of gateway pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(owner, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"}],
        },
    }


def _scaler_service(service: LLMService) -> Manifest:
    """``<svc>-scaler``."""
    name = service.metadata.name
    return _grpc_service(
        service,
        name=names.scaler_service(name),
        labels=names.gateway_service_labels(name),
        selector=names.gateway_selector(name),
    )


def _shared_scaler_service(gateway: LLMGateway) -> Manifest:
    """``<gateway>-scaler``."""
    name = gateway.metadata.name
    selector = names.shared_gateway_selector(name)
    return _grpc_service(
        gateway, name=names.shared_scaler_service(name), labels=dict(selector), selector=selector
    )


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
    return [rbac.role_rule(rbac.GATEWAY_WAKE, names=[names.backend(service.metadata.name)])]


def _shared_wake_rule(routed: Sequence[LLMService]) -> list[Manifest]:
    """A shared gateway wakes the backends of the models it routes, pool members excepted; no rule when
    there are none (a rule without resourceNames would grant every Deployment's scale)."""
    backends = sorted(names.backend(service.metadata.name) for service in routed if service.spec.pool is None)
    if not backends:
        return []
    return [rbac.role_rule(rbac.GATEWAY_WAKE, names=backends)]


_BUILDERS: dict[scalermodes.ScalerMode, Builders] = {
    scalermodes.ScalerMode.METRICS_API: Builders(
        trigger=_metrics_api_trigger, shared_trigger=_shared_metrics_api_trigger
    ),
    scalermodes.ScalerMode.EXTERNAL_PUSH: Builders(
        trigger=_external_push_trigger,
        scaler_service=_scaler_service,
        gateway_env=(common.env_entry(gatewayenv.SCALER_LISTEN.env, f":{GRPC_PORT}"),),
        gateway_ports=({"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},),
        shared_trigger=_shared_external_push_trigger,
        shared_scaler_service=_shared_scaler_service,
    ),
    scalermodes.ScalerMode.BUILTIN: Builders(
        gateway_rules=_wake_rule, shared_gateway_rules=_shared_wake_rule
    ),
}


def of(mode: scalermodes.ScalerMode) -> Builders:
    """The builders of a resolved mode."""
    scalermodes.traits(mode)  # refuses auto with a clear message
    return _BUILDERS[mode]
