"""The backend: the serving Deployment ``<svc>`` and its Service ``<svc>-backend`` (SPEC §2.3, §2.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hearth.api import runtime as runtime_api
from hearth.api.core import Probe
from hearth.api.llmservice import LLMService
from hearth.api.modeluri import PVC_MOUNT_PATH, ResolvedModel
from hearth.api.runtime import InferenceRuntime
from hearth.common import durations
from hearth.render import common, gotemplate, names
from hearth.render.cache import CACHE_MOUNT_PATH, CACHE_VOLUME, CachePlan
from hearth.render.errors import Reason, ReconcileError
from hearth.render.vendors import VendorAdapter

CONTAINER_NAME = "serving"
SHM_VOLUME = "dshm"
MODEL_STORE_VOLUME = "model-store"
DRAIN_GRACE_MARGIN_SECONDS = 10
BACKEND_SERVICE_PORT = 80


def deployment(
    service: LLMService,
    runtime: InferenceRuntime,
    model: ResolvedModel,
    cache: CachePlan,
    vendor: VendorAdapter,
) -> dict[str, Any]:
    """The backend Deployment. ``spec.replicas`` is never set: the autoscaler (KEDA/HPA or Hearth's own)
    owns it, and the API server defaults it to 1 on create."""
    name = service.metadata.name
    _check_accelerator(service, runtime)
    pod = _pod_spec(service, runtime, model, cache, vendor)
    template_metadata = common.template_metadata(
        names.backend_pod_labels(name, runtime.metadata.name), runtime
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(
            service, names.backend(name), names.backend_pod_labels(name, runtime.metadata.name)
        ),
        "spec": {
            "selector": {"matchLabels": names.backend_selector(name)},
            "template": {"metadata": template_metadata, "spec": pod},
        },
    }


def service_manifest(service: LLMService, runtime: InferenceRuntime) -> dict[str, Any]:
    """``<svc>-backend``: port ``http`` 80 → the runtime's port *name*, selecting the backend pods."""
    name = service.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(service, names.backend_service(name), names.backend_selector(name)),
        "spec": {
            "selector": names.backend_selector(name),
            "ports": [
                {
                    "name": "http",
                    "port": BACKEND_SERVICE_PORT,
                    "targetPort": runtime.spec.container.port.name,
                    "protocol": "TCP",
                }
            ],
        },
    }


def network_policy(
    service: LLMService, runtime: InferenceRuntime, *, gateways: Sequence[str] = ()
) -> dict[str, Any]:
    """``<svc>-backend`` NetworkPolicy: the backend pods take connections on the runtime port only from
    this LLMService's gateway pods (or those of the LLMGateways routing it, *gateways*), and from
    namespaces labelled ``metrics: enabled`` (scrapers of the runtime's /metrics). Everything else, other
    tenants' pods included, is refused by an enforcing CNI."""
    name = service.metadata.name
    selector = names.backend_selector(name)
    port = [{"port": runtime.spec.container.port.name, "protocol": "TCP"}]
    if gateways:
        peers = [{"podSelector": {"matchLabels": names.shared_gateway_selector(each)}} for each in gateways]
    else:
        peers = [{"podSelector": {"matchLabels": names.gateway_selector(name)}}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(service, names.backend_network_policy(name), selector),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": port},
                {
                    "from": [{"namespaceSelector": {"matchLabels": dict(names.METRICS_NAMESPACE_LABEL)}}],
                    "ports": port,
                },
            ],
        },
    }


def _check_accelerator(service: LLMService, runtime: InferenceRuntime) -> None:
    accelerator = runtime.spec.accelerator
    if not accelerator.resource_name:
        raise ReconcileError(
            Reason.RENDER, f'InferenceRuntime "{runtime.metadata.name}" has no accelerator.resourceName'
        )
    if service.spec.resources.fraction is not None:
        raise ReconcileError(Reason.RENDER, "resources.fraction is not supported: request whole accelerators")
    scheduler = accelerator.scheduler
    if scheduler and scheduler.queue and scheduler.name != "volcano":
        raise ReconcileError(Reason.RENDER, "accelerator.scheduler.queue requires scheduler name volcano")


def _render_templates(
    service: LLMService, runtime: InferenceRuntime, model: ResolvedModel
) -> tuple[list[str], list[dict[str, Any]]]:
    context = gotemplate.service_context(
        model_path=model.path,
        service_name=service.metadata.name,
        service_namespace=service.namespace,
    )
    arguments = [
        *(runtime.spec.container.args or []),
        *((service.spec.runtime and service.spec.runtime.args_override) or []),
    ]
    try:
        args = [gotemplate.render(argument, context) for argument in arguments]
        env = [
            common.env_var(entry, gotemplate.render(entry.value, context) if entry.value else entry.value)
            for entry in runtime.spec.container.env or []
        ]
    except gotemplate.TemplateError as error:
        raise ReconcileError(Reason.RENDER, str(error)) from None
    return args, env


def _resources(service: LLMService, runtime: InferenceRuntime) -> dict[str, Any]:
    spec = service.spec.resources
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if spec.cpu is not None:
        requests["cpu"] = str(spec.cpu)
    if spec.memory is not None:
        requests["memory"] = str(spec.memory)
        limits["memory"] = str(spec.memory)
    # The extended resource goes into limits only; Kubernetes mirrors it into requests.
    limits[runtime.spec.accelerator.resource_name] = str(max(spec.accelerators, 1))
    resources: dict[str, Any] = {"limits": limits}
    if requests:
        resources["requests"] = requests
    return resources


def _probe(probe: Probe | None, default: dict[str, Any] | None) -> dict[str, Any] | None:
    return probe.to_wire() if probe is not None else default


def _pod_spec(
    service: LLMService,
    runtime: InferenceRuntime,
    model: ResolvedModel,
    cache: CachePlan,
    vendor: VendorAdapter,
) -> dict[str, Any]:
    container_spec = runtime.spec.container
    args, env = _render_templates(service, runtime, model)
    env.extend(common.env_entry(key, value) for key, value in model.env)
    env.extend(common.env_entry(key, value) for key, value in cache.env)
    port_name = container_spec.port.name
    health = runtime.spec.health
    http_health = {"httpGet": {"path": runtime_api.DEFAULT_HEALTH_PATH, "port": port_name}}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": container_spec.image,
        "ports": [
            {"name": port_name, "containerPort": container_spec.port.container_port, "protocol": "TCP"}
        ],
        "resources": _resources(service, runtime),
    }
    if container_spec.image_pull_policy is not None:
        container["imagePullPolicy"] = container_spec.image_pull_policy
    if args:
        container["args"] = args
    if env:
        container["env"] = env
    probes = {
        "readinessProbe": _probe(health.readiness if health else None, http_health),
        "livenessProbe": _probe(health.liveness if health else None, None),
        "startupProbe": _probe(
            health.startup if health else None,
            {
                **http_health,
                "periodSeconds": runtime_api.DEFAULT_STARTUP_PERIOD_SECONDS,
                "failureThreshold": runtime_api.DEFAULT_STARTUP_FAILURE_THRESHOLD,
            },
        ),
    }
    container.update({key: value for key, value in probes.items() if value is not None})

    volumes: list[dict[str, Any]] = [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if model.claim is not None:
        volumes.append(
            {
                "name": MODEL_STORE_VOLUME,
                "persistentVolumeClaim": {"claimName": model.claim, "readOnly": True},
            }
        )
        mounts.append({"name": MODEL_STORE_VOLUME, "mountPath": PVC_MOUNT_PATH, "readOnly": True})
    volumes.extend(vendor.volumes())
    mounts.extend(vendor.volume_mounts())
    if cache.volume is not None:
        volumes.append(cache.volume)
        mounts.append({"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH})
    container["volumeMounts"] = mounts

    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        **common.placement(service, runtime),
    }
    lifecycle = runtime.spec.lifecycle
    grace = lifecycle.termination_grace_period_seconds if lifecycle else None
    drain = durations.Duration.parse(service.spec.scaling.drain_timeout).whole_seconds
    if lifecycle and lifecycle.pre_stop_drain and drain > 0:
        # The pod leaves the Service endpoints at once; the sleep keeps the engine serving open streams.
        container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", f"sleep {drain}"]}}}
        grace = max(grace or 0, drain + DRAIN_GRACE_MARGIN_SECONDS)
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    return pod
