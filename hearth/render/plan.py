"""The whole desired state of one LLMService as an ordered plan of steps, computed before anything is
applied: a bad manifest fails here (with its SPEC reason) instead of half-way through applying."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from typing import Any

from hearth.api import modeluri
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.render import backend, cache, engines, gateway, names, scaledobject, scalers, selection, vendors
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError


class Mode(enum.Enum):
    """How a step reaches the cluster."""

    #: Server-side apply with field manager hearth-operator, forcing ownership.
    APPLY = "apply"
    #: Create if missing, never update (the cache PVC and the prewarm Job).
    CREATE = "create"
    #: Delete if it exists and this LLMService controls it (leftovers of another scaler mode).
    DELETE = "delete"


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One child object and what to do with it; *reason* names the step if it fails."""

    reason: Reason
    mode: Mode
    manifest: dict[str, Any]
    #: Skip the step without error when the cluster lacks this CRD (the ScaledObject without KEDA).
    requires_crd: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    runtime: InferenceRuntime
    steps: tuple[Step, ...]


SCALED_OBJECT_CRD = "scaledobjects.keda.sh"


def _reference(service: LLMService, api_version: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": service.namespace},
    }


def _network_policy_step(
    service: LLMService,
    runtime: InferenceRuntime,
    config: OperatorConfig,
    gateways: Sequence[str],
    deployment: dict[str, Any],
) -> Step:
    if config.network_policies:
        policy = backend.network_policy(
            service,
            runtime,
            gateways=gateways,
            drain_port=backend.drain_port(deployment["spec"]["template"]["spec"]),
        )
        return Step(Reason.APPLY_NETWORK_POLICY, Mode.APPLY, policy)
    name = names.backend_network_policy(service.metadata.name)
    leftover = _reference(service, "networking.k8s.io/v1", "NetworkPolicy", name)
    return Step(Reason.APPLY_NETWORK_POLICY, Mode.DELETE, leftover)


def _dedicated_gateway_steps(
    service: LLMService, runtime: InferenceRuntime, config: OperatorConfig
) -> list[Step]:
    name = service.metadata.name
    steps = [
        *(Step(Reason.APPLY_GATEWAY_RBAC, Mode.APPLY, item) for item in gateway.rbac(service, config)),
        Step(
            Reason.APPLY_GATEWAY,
            Mode.APPLY,
            gateway.deployment(
                service,
                config,
                readiness=gateway.readiness_path(runtime),
                stream_rule=str(engines.of(runtime).stream_rule),
                upstream_after_stream=engines.of(runtime).upstream_after_stream,
            ),
        ),
        Step(Reason.APPLY_GATEWAY_SERVICE, Mode.APPLY, gateway.service_manifest(service)),
    ]
    if config.effective_gateway_replicas > 1:
        budget = gateway.disruption_budget(service)
        steps.append(Step(Reason.APPLY_GATEWAY_DISRUPTION_BUDGET, Mode.APPLY, budget))
    else:
        budget_name = names.gateway_disruption_budget(name)
        budget = _reference(service, "policy/v1", "PodDisruptionBudget", budget_name)
        steps.append(Step(Reason.APPLY_GATEWAY_DISRUPTION_BUDGET, Mode.DELETE, budget))
    builders = scalers.of(config.scaler_mode)
    if builders.scaler_service is not None:
        steps.append(Step(Reason.APPLY_GATEWAY_SCALER_SERVICE, Mode.APPLY, builders.scaler_service(service)))
    else:
        scaler = _reference(service, "v1", "Service", names.scaler_service(name))
        steps.append(Step(Reason.APPLY_GATEWAY_SCALER_SERVICE, Mode.DELETE, scaler))
    return steps


def _shared_gateway_steps(service: LLMService, serving: str) -> list[Step]:
    """A service an LLMGateway routes has no gateway pods of its own (leftovers are deleted); its Service
    ``<name>`` stays, leading to the pods of *serving* (the first selecting LLMGateway), so its old URL
    keeps working: clients already send its name as the model."""
    name = service.metadata.name
    account = names.gateway(name)
    leftovers = [
        (Reason.APPLY_GATEWAY_RBAC, "v1", "ServiceAccount", account),
        (Reason.APPLY_GATEWAY_RBAC, "rbac.authorization.k8s.io/v1", "Role", account),
        (Reason.APPLY_GATEWAY_RBAC, "rbac.authorization.k8s.io/v1", "RoleBinding", account),
        (Reason.APPLY_GATEWAY, "apps/v1", "Deployment", names.gateway(name)),
    ]
    steps = [Step(reason, Mode.DELETE, _reference(service, v, k, n)) for reason, v, k, n in leftovers]
    endpoint = gateway.http_service(
        service,
        name=names.gateway_service(name),
        labels=names.gateway_service_labels(name),
        selector=names.shared_gateway_selector(serving),
    )
    steps.append(Step(Reason.APPLY_GATEWAY_SERVICE, Mode.APPLY, endpoint))
    budget = _reference(service, "policy/v1", "PodDisruptionBudget", names.gateway_disruption_budget(name))
    steps.append(Step(Reason.APPLY_GATEWAY_DISRUPTION_BUDGET, Mode.DELETE, budget))
    scaler = _reference(service, "v1", "Service", names.scaler_service(name))
    steps.append(Step(Reason.APPLY_GATEWAY_SCALER_SERVICE, Mode.DELETE, scaler))
    return steps


def build(
    service: LLMService,
    runtimes: Iterable[InferenceRuntime],
    config: OperatorConfig,
    *,
    gateways: Sequence[str] = (),
) -> Plan:
    """Every child of *service* in SPEC order; raises :class:`ReconcileError` naming the failing step.
    *gateways* are the LLMGateways that route it, sorted by name (:func:`sharedgateway.serving`): none,
    and it has its own gateway; some, and the first one serves it."""
    runtime = selection.select(service.spec.runtime, runtimes)
    vendor = vendors.adapter(runtime.spec.vendor)
    if vendor is None:
        raise ReconcileError(
            Reason.UNSUPPORTED_VENDOR, f'no backend adapter for vendor "{runtime.spec.vendor}"'
        )
    scalers.check_pool(service, config.scaler_mode)
    try:
        model = modeluri.resolve(service.spec.model)
    except modeluri.ModelResolutionError as error:
        raise ReconcileError(Reason.MODEL_RESOLUTION, str(error)) from None
    cache_plan = cache.plan(service)
    name = service.metadata.name
    serving = gateways[0] if gateways else None
    deployment = backend.deployment(
        service, runtime, model, cache_plan, vendor, drainer_image=config.drainer_image
    )
    steps = [
        Step(Reason.APPLY_DEPLOYMENT, Mode.APPLY, deployment),
        Step(Reason.APPLY_BACKEND_SERVICE, Mode.APPLY, backend.service_manifest(service, runtime)),
        _network_policy_step(service, runtime, config, gateways, deployment),
        *(
            _dedicated_gateway_steps(service, runtime, config)
            if serving is None
            else _shared_gateway_steps(service, serving)
        ),
    ]
    builders = scalers.of(config.scaler_mode)
    if cache_plan.claim is not None:
        steps.append(Step(Reason.APPLY_CACHE_PVC, Mode.CREATE, cache_plan.claim))
    _, runtime_env = backend.render_templates(service, runtime, model, cache_plan)
    job = cache.prewarm_job(
        service, runtime, model, cache_plan, hearth_image=config.hearth_image, runtime_env=runtime_env
    )
    if job is not None:
        steps.append(Step(Reason.APPLY_PREWARM_JOB, Mode.CREATE, job))
    if builders.trigger is None:
        # The metric and stabilization still drive the built-in autoscaler, so they are checked all the same.
        scaledobject.check_metric(service)
        scaledobject.stabilization_seconds(service)
        leftover = _reference(service, scaledobject.API_VERSION, scaledobject.KIND, names.scaled_object(name))
        steps.append(Step(Reason.APPLY_SCALED_OBJECT, Mode.DELETE, leftover, requires_crd=SCALED_OBJECT_CRD))
    else:
        if serving is None:
            trigger = builders.trigger(service)
        else:
            assert builders.shared_trigger is not None, "a KEDA mode triggers on shared gateways too"
            trigger = builders.shared_trigger(service, serving)
        steps.append(
            Step(
                Reason.APPLY_SCALED_OBJECT,
                Mode.APPLY,
                scaledobject.manifest(service, trigger=trigger),
                requires_crd=SCALED_OBJECT_CRD,
            )
        )
    return Plan(runtime=runtime, steps=tuple(steps))
