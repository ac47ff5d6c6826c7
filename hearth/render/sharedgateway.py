"""The objects of an LLMGateway (issue 24): Deployment and ServiceAccount/Role/RoleBinding
``<gw>-gateway``, Service ``<gw>``, and per scaler mode the gRPC Service ``<gw>-scaler``, plus a
PodDisruptionBudget with more than one replica. Pure, like the rest of :mod:`hearth.render`: the LLMServices
of the gateway's namespace are an input, and which of them it routes is decided here with
:func:`hearth.api.labelselector.matches` (the gateway process decides the same way).

The pieces a dedicated gateway has too (container, pod, Deployment spec, Services, RBAC objects) come
from :mod:`hearth.render.gateway`; what a scaler mode adds comes from :mod:`hearth.render.scalers`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from hearth.api import gatewayenv, labelselector, scalermodes
from hearth.api import rbac as rbac_api
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.render import common, gateway, names, plan, scalers
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError

API_KEY_SETS_DIR = "/etc/hearth/api-key-sets"
API_KEY_SET_VOLUME = "api-key-set-{index}"


@dataclasses.dataclass(frozen=True, slots=True)
class SharedPlan:
    """What an LLMGateway becomes: the LLMServices it routes (sorted names) and its children."""

    routed: tuple[str, ...]
    replicas: int
    steps: tuple[plan.Step, ...]


def routes(gateway_obj: LLMGateway, service: LLMService) -> bool:
    """Whether *gateway_obj* routes *service*: same namespace, and its labels match the selector."""
    return service.namespace == gateway_obj.namespace and labelselector.matches(
        gateway_obj.spec.selector, service.metadata.labels
    )


def conflict(gateway_obj: LLMGateway, service_names: Iterable[str]) -> str | None:
    """Why *gateway_obj* cannot be served, when an LLMService of its namespace (named in *service_names*)
    has its name: both would own Service ``<name>``."""
    name = gateway_obj.metadata.name
    if name in set(service_names):
        return (
            f"an LLMService named {name} exists in namespace {gateway_obj.namespace}: both would own "
            f"Service {names.shared_gateway_service(name)} (rename the LLMGateway)"
        )
    return None


def serving(service: LLMService, gateways: Iterable[LLMGateway], service_names: Iterable[str]) -> list[str]:
    """The LLMGateways that route *service*, sorted by name (the first one serves its Service ``<name>``);
    one refused for a name conflict routes nothing."""
    taken = set(service_names)
    return sorted(
        candidate.metadata.name
        for candidate in gateways
        if routes(candidate, service) and conflict(candidate, taken) is None
    )


def replicas(gateway_obj: LLMGateway, config: OperatorConfig) -> int:
    """spec.replicas, or the operator's gateway replicas setting when unset."""
    wanted = gateway_obj.spec.replicas
    return wanted if wanted is not None else config.effective_gateway_replicas


def _check(gateway_obj: LLMGateway, services: Sequence[LLMService], config: OperatorConfig) -> None:
    problem = conflict(gateway_obj, (service.metadata.name for service in services))
    if problem is not None:
        raise ReconcileError(Reason.RENDER, problem)
    if not config.gateway_service_account:
        raise ReconcileError(
            Reason.APPLY_GATEWAY_RBAC,
            "a shared gateway reads its LLMServices from the API, but the operator may not create its "
            "ServiceAccount and Role",
        )
    traits = scalermodes.traits(config.scaler_mode)
    count = replicas(gateway_obj, config)
    if traits.max_gateway_replicas is not None and count > traits.max_gateway_replicas:
        raise ReconcileError(
            Reason.RENDER,
            f"spec.replicas: {count} replicas cannot run with --scaler-mode={config.scaler_mode}: "
            f"{traits.max_gateway_replicas_why} (at most {traits.max_gateway_replicas})",
        )


def _env(gateway_obj: LLMGateway, config: OperatorConfig, *, buffered_bytes: int) -> list[dict[str, Any]]:
    env = [common.env_entry(gatewayenv.LISTEN.env, f":{gateway.HTTP_PORT}")]
    env.extend(dict(entry) for entry in scalers.of(config.scaler_mode).gateway_env)
    env.extend(
        [
            {
                "name": gatewayenv.NAMESPACE.env,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            common.env_entry(gatewayenv.LLMGATEWAY.env, gateway_obj.metadata.name),
            common.env_entry(gatewayenv.SCALER_MODE.env, str(config.scaler_mode)),
            common.env_entry(gatewayenv.MAX_BUFFERED_BYTES.env, str(buffered_bytes)),
        ]
    )
    if scalermodes.traits(config.scaler_mode).gateway_sums_peers:
        # Its replicas find each other through their own Service's EndpointSlices (which the Role reads).
        name = names.shared_gateway_service(gateway_obj.metadata.name)
        env.append(common.env_entry(gatewayenv.PEERS_SERVICE.env, name))
    return env


def deployment(gateway_obj: LLMGateway, config: OperatorConfig) -> dict[str, Any]:
    """``<gw>-gateway``: the shared gateway's pods (no backend env: it routes what its LLMGateway selects)."""
    name = gateway_obj.metadata.name
    selector = names.shared_gateway_selector(name)
    wanted = gateway_obj.spec.resources
    resources = wanted.to_wire() if wanted is not None else gateway.default_resources()
    env = _env(gateway_obj, config, buffered_bytes=gateway.buffered_bytes(resources))
    container = gateway.container(config, env=env, resources=resources)
    if config.gateway_args:
        container["args"] = list(config.gateway_args)
    pod_spec = gateway.pod(account=names.shared_gateway(name), gateway_container=container)
    keys = gateway_obj.spec.auth.keys if gateway_obj.spec.auth is not None else None
    if keys:
        env.append(common.env_entry(gatewayenv.API_KEY_SETS_DIR.env, API_KEY_SETS_DIR))
        # Volume names are indexed (a Secret's name may be longer than a volume name, or have dots);
        # the mount path carries the Secret's name, which is how the gateway knows each set's models.
        for index, key_set in enumerate(keys):
            volume = API_KEY_SET_VOLUME.format(index=index)
            # Optional, as a dedicated gateway's: a missing Secret accepts no key instead of a stuck pod.
            secret = {"secretName": key_set.secret_name, "optional": True}
            pod_spec["volumes"].append({"name": volume, "secret": secret})
            mount = {
                "name": volume,
                "mountPath": f"{API_KEY_SETS_DIR}/{key_set.secret_name}",
                "readOnly": True,
            }
            container["volumeMounts"].append(mount)
    spec = gateway.deployment_spec(
        replicas=replicas(gateway_obj, config), selector=selector, pod_spec=pod_spec
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(gateway_obj, names.shared_gateway(name), selector),
        "spec": spec,
    }


def service_manifest(gateway_obj: LLMGateway) -> dict[str, Any]:
    """``<gw>``: the shared endpoint (and the metrics-api scrape URL), port ``http`` 80 → 8080."""
    name = gateway_obj.metadata.name
    selector = names.shared_gateway_selector(name)
    return gateway.http_service(
        gateway_obj, name=names.shared_gateway_service(name), labels=dict(selector), selector=selector
    )


def rbac(
    gateway_obj: LLMGateway, routed: Sequence[LLMService], config: OperatorConfig
) -> list[dict[str, Any]]:
    """The shared gateway's ServiceAccount and least Role: read the namespace's LLMServices (its routes)
    and EndpointSlices (their readiness), its own LLMGateway, plus what its scaler mode adds (builtin:
    wake the routed backends)."""
    name = gateway_obj.metadata.name
    rules: list[dict[str, Any]] = [
        rbac_api.role_rule(rbac_api.GATEWAY_LLMSERVICES),
        # Its own LLMGateway only: the selector and each key set's models (read without a restart).
        rbac_api.role_rule(rbac_api.GATEWAY_LLMGATEWAY, names=[name]),
        rbac_api.role_rule(rbac_api.GATEWAY_READINESS),
    ]
    rules.extend(scalers.of(config.scaler_mode).shared_gateway_rules(routed))
    labels = names.shared_gateway_selector(name)
    return gateway.rbac_objects(gateway_obj, account=names.shared_gateway(name), labels=labels, rules=rules)


def disruption_budget(gateway_obj: LLMGateway) -> dict[str, Any]:
    """``<gw>-gateway``: with more than one replica, a drain evicts one shared gateway pod at a time."""
    name = gateway_obj.metadata.name
    return gateway.disruption_budget_manifest(
        gateway_obj, name=names.shared_gateway(name), selector=names.shared_gateway_selector(name)
    )


def _reference(gateway_obj: LLMGateway, api_version: str, kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": gateway_obj.namespace},
    }


def build(gateway_obj: LLMGateway, services: Sequence[LLMService], config: OperatorConfig) -> SharedPlan:
    """Every child of *gateway_obj*, given every LLMService of its namespace (*services*); raises
    :class:`ReconcileError` when it cannot be served (a name conflict, a replica count its mode cannot
    run, no right to create its Role)."""
    _check(gateway_obj, services, config)
    name = gateway_obj.metadata.name
    routed = sorted((service for service in services if routes(gateway_obj, service)), key=_name)
    count = replicas(gateway_obj, config)
    steps = [
        *(
            plan.Step(Reason.APPLY_GATEWAY_RBAC, plan.Mode.APPLY, item)
            for item in rbac(gateway_obj, routed, config)
        ),
        plan.Step(Reason.APPLY_GATEWAY, plan.Mode.APPLY, deployment(gateway_obj, config)),
        plan.Step(Reason.APPLY_GATEWAY_SERVICE, plan.Mode.APPLY, service_manifest(gateway_obj)),
    ]
    if count > 1:
        steps.append(
            plan.Step(Reason.APPLY_GATEWAY_DISRUPTION_BUDGET, plan.Mode.APPLY, disruption_budget(gateway_obj))
        )
    else:
        budget = _reference(gateway_obj, "policy/v1", "PodDisruptionBudget", names.shared_gateway(name))
        steps.append(plan.Step(Reason.APPLY_GATEWAY_DISRUPTION_BUDGET, plan.Mode.DELETE, budget))
    builders = scalers.of(config.scaler_mode)
    if builders.shared_scaler_service is not None:
        scaler = builders.shared_scaler_service(gateway_obj)
        steps.append(plan.Step(Reason.APPLY_GATEWAY_SCALER_SERVICE, plan.Mode.APPLY, scaler))
    else:
        leftover = _reference(gateway_obj, "v1", "Service", names.shared_scaler_service(name))
        steps.append(plan.Step(Reason.APPLY_GATEWAY_SCALER_SERVICE, plan.Mode.DELETE, leftover))
    return SharedPlan(routed=tuple(_name(service) for service in routed), replicas=count, steps=tuple(steps))


def _name(service: LLMService) -> str:
    return service.metadata.name
