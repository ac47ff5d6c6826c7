"""The backend: the serving Deployment ``<svc>`` and its Service ``<svc>-backend`` (SPEC §2.3, §2.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hearth.api import drain as drain_api
from hearth.api import engines as engines_api
from hearth.api import quantity
from hearth.api import runtime as runtime_api
from hearth.api.core import Probe
from hearth.api.llmservice import LLMService
from hearth.api.modeluri import PVC_MOUNT_PATH, ResolvedModel
from hearth.api.runtime import InferenceRuntime
from hearth.common import durations
from hearth.render import cache as cache_render
from hearth.render import common, engines, gotemplate, names, podsecurity
from hearth.render.cache import CACHE_MOUNT_PATH, CACHE_VOLUME, HF_HOME, CachePlan
from hearth.render.errors import Reason, ReconcileError
from hearth.render.vendors import VendorAdapter

CONTAINER_NAME = "serving"
#: The init container that puts a single-file engine's model in the cache before the engine starts.
FETCH_CONTAINER_NAME = "hearth-fetch"
SHM_VOLUME = "dshm"
MODEL_STORE_VOLUME = "model-store"
DRAIN_GRACE_MARGIN_SECONDS = 10
#: The drain sidecar is one small Python process: it reads a metrics page a few times a second at most.
DRAINER_RESOURCES = {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}}
DRAINER_TMP_VOLUME = "hearth-drainer-tmp"
BACKEND_SERVICE_PORT = 80
#: An accelerator.resourceName that is the CPU itself (a CPU-only runtime, e.g. llamacpp-cpu).
CPU_RESOURCE = "cpu"


def deployment(
    service: LLMService,
    runtime: InferenceRuntime,
    model: ResolvedModel,
    cache: CachePlan,
    vendor: VendorAdapter,
    *,
    drainer_image: str | None,
) -> dict[str, Any]:
    """The backend Deployment. ``spec.replicas`` is never set: the autoscaler (KEDA/HPA or Hearth's own)
    owns it, and the API server defaults it to 1 on create. *drainer_image* runs the drain sidecar and a
    single-file engine's model fetch (the hearth image, as the gateway's; None: no sidecar can run, an
    UntilIdle drain sleeps)."""
    name = service.metadata.name
    _check_accelerator(service, runtime)
    pod = _pod_spec(service, runtime, model, cache, vendor)
    pod = _with_model_fetch(pod, runtime, model, cache, hearth_image=drainer_image)
    pod = _with_drain(pod, service, runtime, drainer_image=drainer_image)
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
    service: LLMService,
    runtime: InferenceRuntime,
    *,
    gateways: Sequence[str] = (),
    drain_port: int | None = None,
) -> dict[str, Any]:
    """``<svc>-backend`` NetworkPolicy: the backend pods take connections on the runtime port only from
    this LLMService's gateway pods (or those of the LLMGateways routing it, *gateways*), and from
    namespaces labelled ``metrics: enabled`` (scrapers of the runtime's /metrics); on the drain sidecar's
    port (*drain_port*, when the pods have the sidecar: :func:`drain_port`) only from Hearth's operator
    pods, in whatever namespace it was installed (they tell an idle drain its endpoint removal has
    settled). Everything else, other tenants' pods included, is refused by an enforcing CNI."""
    name = service.metadata.name
    selector = names.backend_selector(name)
    port = [{"port": runtime.spec.container.port.name, "protocol": "TCP"}]
    if gateways:
        peers = [{"podSelector": {"matchLabels": names.shared_gateway_selector(each)}} for each in gateways]
    else:
        peers = [{"podSelector": {"matchLabels": names.gateway_selector(name)}}]
    ingress: list[dict[str, Any]] = [
        {"from": peers, "ports": port},
        {
            "from": [{"namespaceSelector": {"matchLabels": dict(names.METRICS_NAMESPACE_LABEL)}}],
            "ports": port,
        },
    ]
    if drain_port is not None:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": dict(names.OPERATOR_POD_SELECTOR)},
                    }
                ],
                # By number: the port is the sidecar's, an init container's, and NetworkPolicy
                # implementations may resolve a named port only among the pod's containers
                # (kube-network-policies v0.8.0 does: with "drain" the operator's word was dropped).
                "ports": [{"port": drain_port, "protocol": "TCP"}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(service, names.backend_network_policy(name), selector),
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def drain_port(pod: dict[str, Any]) -> int | None:
    """The drain sidecar's port in a backend pod's spec, rendered or running (None: it has no sidecar)."""
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        if container["name"] != drain_api.CONTAINER_NAME:
            continue
        for port in container.get("ports") or []:
            if port.get("name") == drain_api.PORT_NAME:
                return int(port["containerPort"])
    return None


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


def render_templates(
    service: LLMService, runtime: InferenceRuntime, model: ResolvedModel, cache: CachePlan
) -> tuple[list[str], list[dict[str, Any]]]:
    """The serving container's args (the runtime's, else its family's, then argsOverride) and the runtime's
    env, Go templates rendered."""
    context = gotemplate.service_context(
        model_path=engines.model_path(
            service,
            runtime,
            model,
            hf_home=HF_HOME if cache.volume is not None else None,
            model_cache=cache_render.MODEL_CACHE,
        ),
        service_name=service.metadata.name,
        service_namespace=service.namespace,
    )
    arguments = [
        *engines.args(runtime),
        *((service.spec.runtime and service.spec.runtime.args_override) or []),
    ]
    try:
        args = [gotemplate.render(argument, context) for argument in arguments]
        drain_seconds = durations.Duration.parse(service.spec.scaling.drain_timeout).whole_seconds
        args += engines.shutdown_args(runtime, args, seconds=drain_seconds)
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
    count = max(spec.accelerators, 1)
    resource = runtime.spec.accelerator.resource_name
    if resource == CPU_RESOURCE and spec.cpu is not None and quantity.parse(str(spec.cpu)) > count:
        # A CPU runtime's "accelerator" is the CPU: the count is the limit, which the request may not exceed.
        raise ReconcileError(
            Reason.RENDER,
            f"resources.cpu ({spec.cpu}) exceeds resources.accelerators ({count}), the CPU limit of runtime "
            f'"{runtime.metadata.name}" (accelerator.resourceName cpu): raise accelerators or lower cpu',
        )
    limits[resource] = str(count)
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
    args, env = render_templates(service, runtime, model, cache)
    env.extend(common.env_entry(key, value) for key, value in engines.source_env(runtime, model))
    env.extend(common.env_entry(key, value) for key, value in cache.env)
    if cache.shared:
        # A read-only cache the prewarm filled: the engine loads from it without asking the hub.
        env.append(common.env_entry("HF_HUB_OFFLINE", "1"))
    port_name = container_spec.port.name
    health = runtime.spec.health
    # The family's paths (SGLang's /health_generate; llama-server's /health answers 503 while it loads).
    readiness = {"httpGet": {"path": engines.readiness_path(runtime), "port": port_name}}
    startup = {"httpGet": {"path": engines.startup_path(runtime), "port": port_name}}
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
        "readinessProbe": _probe(health.readiness if health else None, readiness),
        "livenessProbe": _probe(health.liveness if health else None, None),
        "startupProbe": _probe(
            health.startup if health else None,
            {
                **startup,
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
        # A shared cache has one writer, the prewarm Job: the replicas only read it.
        mounts.append(
            {
                "name": CACHE_VOLUME,
                "mountPath": CACHE_MOUNT_PATH,
                **({"readOnly": True} if cache.shared else {}),
            }
        )
    container["volumeMounts"] = mounts

    pod: dict[str, Any] = {
        # The engine never calls the Kubernetes API (nor does the drain sidecar): no token in the pod.
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": volumes,
        **common.placement(service, runtime),
    }
    podsecurity.restrict(pod, runtime.spec.container.run_as_user)
    lifecycle = runtime.spec.lifecycle
    if lifecycle and lifecycle.termination_grace_period_seconds is not None:
        pod["terminationGracePeriodSeconds"] = lifecycle.termination_grace_period_seconds
    return pod


def _with_model_fetch(
    pod: dict[str, Any],
    runtime: InferenceRuntime,
    model: ResolvedModel,
    cache: CachePlan,
    *,
    hearth_image: str | None,
) -> dict[str, Any]:
    """A single-file engine (llama-server), and any engine given a plain-file model (oci://, s3://), is
    given a path in the cache and exits when it is not there, and the Deployment starts at one replica
    without waiting for the prewarm Job (SPEC §5.4): so its
    pods first run ``hearth fetch --if-missing`` (an init container), which returns at once, without asking
    the hub, when the cache has the file, and else fetches it, beside a Job doing the same (each file is
    written under a temporary name and renamed). The engine then never starts without its model."""
    if not model.scheme.fetched or hearth_image is None or cache.volume is None:
        return pod
    if cache.shared:
        step = cache_render.FetchStep.WAIT
    elif engines.of(runtime).model_format is engines_api.ModelFormat.FILE or model.scheme.local_only:
        step = cache_render.FetchStep.IF_MISSING
    else:
        return pod
    (container,) = pod["containers"]
    fetch = cache_render.fetch_container(
        FETCH_CONTAINER_NAME,
        model,
        hearth_image=hearth_image,
        runtime_env=container.get("env") or [],
        run_as_user=runtime.spec.container.run_as_user,
        step=step,
    )
    volumes = [*pod["volumes"], *cache_render.fetch_volumes(model, step)]
    return {**pod, "initContainers": [*pod.get("initContainers", []), fetch], "volumes": volumes}


def _with_drain(
    pod: dict[str, Any], service: LLMService, runtime: InferenceRuntime, *, drainer_image: str | None
) -> dict[str, Any]:
    """The preStop drain (SPEC §2.4, README "Draining a backend"), when the runtime asks for one and
    drainTimeout is above zero. Either way the pod leaves the Service endpoints at once, the engine keeps
    serving the streams it has until its preStop returns, and the grace period covers the whole drain.

    - Sleep: the kubelet's own ``sleep`` action (GA in Kubernetes 1.34, KEP-3960) of drainTimeout whole
      seconds: the reference's ``sleep`` without needing a shell in the engine image.
    - UntilIdle: an ``httpGet`` of the drain sidecar's ``/drain``, which answers once the engine is idle
      (:mod:`hearth.api.drain`). Without ``metrics.running`` nothing tells in-flight work apart, so the drain
      sleeps as with Sleep; so does one when no drainer image is known (:attr:`OperatorConfig.drainer_image`).
    """
    lifecycle = runtime.spec.lifecycle
    timeout = durations.Duration.parse(service.spec.scaling.drain_timeout)
    seconds = timeout.whole_seconds
    # lifecycle.engineDrain: after the preStop, the engine finishes what still runs for up to drainTimeout
    # on its own (its flag, rendered with the args), and the grace period must cover that too.
    engine_seconds = seconds if lifecycle and lifecycle.engine_drain else 0
    if not (lifecycle and lifecycle.pre_stop_drain and seconds > 0):
        if engine_seconds > 0:
            pod["terminationGracePeriodSeconds"] = max(
                pod.get("terminationGracePeriodSeconds") or 0, engine_seconds + DRAIN_GRACE_MARGIN_SECONDS
            )
        return pod
    (container,) = pod["containers"]
    metrics = engines.metrics(runtime)
    if (
        lifecycle.drain_mode == runtime_api.DRAIN_SLEEP
        or metrics is None
        or not metrics.running
        or drainer_image is None
    ):
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": seconds}}}
    else:
        engine_ports = {port["containerPort"] for port in container["ports"]}
        metrics_port = _metrics_port(runtime, metrics.port)
        port = drain_api.DEFAULT_PORT
        while port in engine_ports or port == metrics_port:
            port += 1
        container["lifecycle"] = {"preStop": {"httpGet": {"path": drain_api.DRAIN_PATH, "port": port}}}
        path = metrics.path if metrics.path.startswith("/") else "/" + metrics.path
        drainer = _drainer_container(
            drainer_image,
            port=port,
            metrics_url=f"http://127.0.0.1:{metrics_port}{path}",
            running=metrics.running,
            waiting=metrics.queue_depth,
            timeout=str(timeout),
        )
        # Listed first, as the kubelet starts it: before the model fetch and the engine.
        others = {key: value for key, value in pod.items() if key != "initContainers"}
        pod = {"initContainers": [drainer, *pod.get("initContainers", [])], **others}
        # First: the reference's volumes keep their order (SPEC §2.4), the cache's last.
        pod["volumes"].insert(0, {"name": DRAINER_TMP_VOLUME, "emptyDir": {}})
        # The single-file hearth binary's bootloader, as PID 1 of its container, loses a SIGTERM that comes
        # while it unpacks (the first ~0.5-1 s; PID 1 ignores signals it has no handler for), and the pod then
        # waits its whole grace period: the pool scales a new member's first pod to 0 that soon. With one
        # process namespace the pod's pause process is PID 1, and an early SIGTERM simply ends the sidecar.
        pod["shareProcessNamespace"] = True
    pod["terminationGracePeriodSeconds"] = max(
        pod.get("terminationGracePeriodSeconds") or 0, seconds + engine_seconds + DRAIN_GRACE_MARGIN_SECONDS
    )
    return pod


def _metrics_port(runtime: InferenceRuntime, port: str) -> int:
    """The metrics port as a number: the drain sidecar reaches it over loopback, where names mean nothing."""
    serving = runtime.spec.container.port
    if port == serving.name:
        return serving.container_port
    if port.isdigit() and 1 <= int(port) <= 65535:
        return int(port)
    raise ReconcileError(
        Reason.RENDER,
        f'InferenceRuntime "{runtime.metadata.name}": metrics.port "{port}" is neither the serving port\'s '
        f'name ("{serving.name}") nor a port number; fix it, or set lifecycle.drainMode: Sleep',
    )


def _drainer_container(
    image: str, *, port: int, metrics_url: str, running: str, waiting: str, timeout: str
) -> dict[str, Any]:
    """The drain sidecar: a native sidecar (an init container with restartPolicy Always), so it starts
    before the engine and stops only after the engine's container has exited: it is there for the whole
    preStop (Kubernetes sidecar containers, GA in 1.33)."""
    return {
        "name": drain_api.CONTAINER_NAME,
        "image": image,
        "restartPolicy": "Always",
        "args": ["drainer"],
        "env": [
            common.env_entry(drain_api.LISTEN_ENV, f":{port}"),
            common.env_entry(drain_api.METRICS_URL_ENV, metrics_url),
            common.env_entry(drain_api.RUNNING_ENV, running),
            common.env_entry(drain_api.WAITING_ENV, waiting),
            common.env_entry(drain_api.TIMEOUT_ENV, timeout),
        ],
        "ports": [{"name": drain_api.PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "resources": DRAINER_RESOURCES,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # A writable /tmp on a read-only root filesystem (the single-file hearth binary unpacks there).
        "volumeMounts": [{"name": DRAINER_TMP_VOLUME, "mountPath": "/tmp"}],
    }
