"""The gateway of an LLMService: Deployment ``<svc>-gateway``, Service ``<svc>``, and the ServiceAccount +
Role the gateway needs (SPEC §2.3, DESIGN 1-3). What a scaler mode adds (env, ports, a Role rule, the gRPC
scaler Service) comes from :mod:`hearth.render.scalers`.
"""

from __future__ import annotations

from typing import Any

from hearth.api import gatewayenv, quantity, scalermodes
from hearth.api import rbac as rbac_api
from hearth.api import runtime as runtime_api
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.common import durations
from hearth.render import common, engines, names, podsecurity, scalers
from hearth.render.config import OperatorConfig

CONTAINER_NAME = "gateway"
HTTP_PORT = names.GATEWAY_HTTP_PORT
API_KEYS_VOLUME = "api-keys"
API_KEYS_DIR = "/etc/hearth/api-keys"
#: spec.endpoint.authentication: the one key of one Secret, projected into a file of its own directory (no
#: subPath: the kubelet updates only whole Secret volumes, and the gateway re-reads the file).
API_KEY_VOLUME = "api-key"
API_KEY_DIR = "/etc/hearth/api-key"
API_KEY_FILE = "api-key"
#: spec.scaling.externalScaler.tls: the gRPC scaler's server pair and client CA (the whole Secret, so the
#: kubelet's updates reach the files the gateway re-reads).
SCALER_TLS_VOLUME = "scaler-tls"
SCALER_TLS_DIR = "/etc/hearth/scaler-tls"
SERVICE_PORT = 80
MIB = 1024 * 1024
#: Request bodies the gateway may buffer at once (HEARTH_MAX_BUFFERED_BYTES): its one large, client-driven
#: use of memory. The container's memory limit is this plus the process's own (about 60 MiB resident,
#: rounded up for held connections and streamed answers), so a full budget never gets the pod OOM-killed.
BUFFERED_BYTES = int(gatewayenv.MAX_BUFFERED_BYTES.default or 0)
PROCESS_BYTES = 128 * MIB
MEMORY_REQUEST = "128Mi"
MEMORY_LIMIT = f"{(BUFFERED_BYTES + PROCESS_BYTES) // MIB}Mi"
#: The probe fallback's default path (HEARTH_READINESS_PATH), as the backend's default readiness probe.
DEFAULT_READINESS_PATH = runtime_api.DEFAULT_HEALTH_PATH


def readiness_path(runtime: InferenceRuntime) -> str:
    """The path of the runtime's HTTP readiness probe, which the gateway probes without API access: the
    runtime's own, else its engine family's (SGLang's /health_generate)."""
    health = runtime.spec.health
    if health is None or health.readiness is None:
        return engines.readiness_path(runtime)
    path = (health.readiness.root.get("httpGet") or {}).get("path")
    return path if isinstance(path, str) and path else DEFAULT_READINESS_PATH


def _reference_env(service: LLMService, config: OperatorConfig) -> list[dict[str, Any]]:
    """The reference's env, in its order, with its omissions (SPEC §2.3)."""
    name, namespace = service.metadata.name, service.namespace
    env = [
        common.env_entry(
            gatewayenv.BACKEND_URL.env, f"http://{names.backend_service(name)}.{namespace}.svc:80"
        ),
        common.env_entry(gatewayenv.LISTEN.env, f":{HTTP_PORT}"),
    ]
    env.extend(dict(entry) for entry in scalers.of(config.scaler_mode).gateway_env)
    activation = durations.Duration.parse(service.spec.scaling.activation_timeout)
    if activation.nanoseconds > 0:
        env.append(common.env_entry(gatewayenv.ACTIVATION_TIMEOUT.env, str(activation)))
    cold_start = service.spec.endpoint.cold_start
    if cold_start.mode:
        env.append(common.env_entry(gatewayenv.COLDSTART_MODE.env, cold_start.mode))
        heartbeat = durations.Duration.parse(cold_start.heartbeat_interval)
        if heartbeat.nanoseconds > 0:
            env.append(common.env_entry(gatewayenv.HEARTBEAT_INTERVAL.env, str(heartbeat)))
    return env


def _discovery_env(service: LLMService, config: OperatorConfig) -> list[dict[str, Any]]:
    """What Hearth's gateway adds: where to watch backend readiness and which Deployment to wake."""
    name = service.metadata.name
    env = [
        {"name": gatewayenv.NAMESPACE.env, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        common.env_entry(gatewayenv.BACKEND_SERVICE.env, names.backend_service(name)),
        common.env_entry(gatewayenv.BACKEND_DEPLOYMENT.env, names.backend(name)),
        common.env_entry(gatewayenv.LLMSERVICE.env, name),
        common.env_entry(gatewayenv.SCALER_MODE.env, str(config.scaler_mode)),
        # Profiles serve the model under the LLMService's name (--served-model-name={{ .Service.Name }}).
        common.env_entry(gatewayenv.MODEL_NAME.env, name),
    ]
    if not config.gateway_service_account:
        # The default ServiceAccount may read nothing: probe readiness and leave waking to the operator.
        unreadable = {gatewayenv.BACKEND_DEPLOYMENT.env, gatewayenv.LLMSERVICE.env}
        env = [entry for entry in env if entry["name"] not in unreadable]
        env.append(common.env_entry(gatewayenv.READINESS.env, "probe"))
    elif service.spec.pool is not None:
        # No Deployment to wake: a pool member is woken by the operator once its pool has room.
        env = [entry for entry in env if entry["name"] != gatewayenv.BACKEND_DEPLOYMENT.env]
    if config.gateway_service_account and scalermodes.traits(config.scaler_mode).gateway_sums_peers:
        # Its replicas find each other through their own Service's EndpointSlices (which the Role reads).
        env.append(common.env_entry(gatewayenv.PEERS_SERVICE.env, names.gateway_service(name)))
    return env


def fallback_env(service: LLMService) -> list[dict[str, Any]]:
    """``spec.endpoint.fallback`` for the gateway (issue 31); the key of an external one from its Secret
    (optional: a missing Secret sends no key, and the fallback's 401 reaches the client)."""
    spec = service.spec.endpoint.fallback
    if spec is None:
        return []
    env = [
        common.env_entry(gatewayenv.FALLBACK_BASE_URL.env, spec.base_url(service.namespace)),
        common.env_entry(gatewayenv.FALLBACK_MODEL.env, spec.target_model()),
        common.env_entry(gatewayenv.FALLBACK_WHILE_COLD.env, spec.while_cold),
        common.env_entry(gatewayenv.FALLBACK_HOLD.env, spec.hold_for),
        common.env_entry(gatewayenv.FALLBACK_WHEN_FULL.env, "true" if spec.when_full else "false"),
    ]
    secret = spec.api_key_secret
    if secret is not None:
        env.append(
            {
                "name": gatewayenv.FALLBACK_API_KEY.env,
                "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key, "optional": True}},
            }
        )
    return env


def default_resources() -> dict[str, Any]:
    """The gateway container's requests and limits, sized from the bodies it may buffer."""
    return {"requests": {"cpu": "50m", "memory": MEMORY_REQUEST}, "limits": {"memory": MEMORY_LIMIT}}


def buffered_bytes(resources: dict[str, Any]) -> int:
    """HEARTH_MAX_BUFFERED_BYTES for a container with *resources*: the default budget, or less under a
    smaller memory limit (the limit less the process's own, at least 1 MiB), so that buffered bodies
    never get the pod OOM-killed."""
    limit = (resources.get("limits") or {}).get("memory")
    if limit is None:
        return BUFFERED_BYTES
    return max(MIB, min(BUFFERED_BYTES, quantity.bytes_of(limit) - PROCESS_BYTES))


def resources_of(service: LLMService) -> dict[str, Any]:
    """spec.endpoint.resources as they are, or the defaults when unset (as an LLMGateway's)."""
    wanted = service.spec.endpoint.resources
    return wanted.requirements() if wanted is not None else default_resources()


def container(
    config: OperatorConfig, *, env: list[dict[str, Any]], resources: dict[str, Any]
) -> dict[str, Any]:
    """The gateway container every gateway (dedicated or shared) runs: its ports (plus what the scaler mode
    adds), /healthz probes, a locked-down security context and a writable /tmp; *env* is its own."""
    ports = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    ports.extend(dict(port) for port in scalers.of(config.scaler_mode).gateway_ports)
    probe = {"httpGet": {"path": "/healthz", "port": HTTP_PORT}}
    result: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": config.gateway_image,
        "env": env,
        "ports": ports,
        "readinessProbe": probe,
        "livenessProbe": probe,
        "resources": resources,
        "securityContext": podsecurity.container_context(read_only_root=True),
        # A writable /tmp on a read-only root filesystem (the single-file hearth binary unpacks there).
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return result


def pod(*, account: str | None, gateway_container: dict[str, Any]) -> dict[str, Any]:
    """The gateway pod spec around *gateway_container*, run as *account* (None: the default one, with no
    token mounted: such a gateway probes its backend and never calls the API). Restricted (podsecurity)."""
    return {
        **({"serviceAccountName": account} if account else {"automountServiceAccountToken": False}),
        "securityContext": podsecurity.pod_context(),
        "containers": [gateway_container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def deployment_spec(*, replicas: int, selector: dict[str, str], pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A gateway Deployment's spec; with more than one replica, spread and rolled out without a gap."""
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "template": {"metadata": {"labels": selector}, "spec": pod_spec},
    }
    if replicas > 1:
        # High availability: spread the replicas over nodes (best effort: one node still schedules them
        # all), and roll out by adding a new replica before removing an old one, so capacity never drops.
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ]
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    return spec


def deployment(
    service: LLMService,
    config: OperatorConfig,
    *,
    readiness: str = DEFAULT_READINESS_PATH,
    stream_rule: str = "lax",
    upstream_after_stream: str = "reuse",
) -> dict[str, Any]:
    """*readiness* is the backend's readiness probe path (see :func:`readiness_path`), *stream_rule* how its
    engine reads ``stream`` and *upstream_after_stream* whether its connection outlives a streamed answer
    (:func:`hearth.render.engines.of`)."""
    name = service.metadata.name
    selector = names.gateway_selector(name)
    env = _reference_env(service, config) + _discovery_env(service, config)
    resources = resources_of(service)
    gateway_container = container(config, env=env, resources=resources)
    env.append(common.env_entry(gatewayenv.MAX_BUFFERED_BYTES.env, str(buffered_bytes(resources))))
    max_queue = service.spec.endpoint.max_queue
    if max_queue is not None:
        env.append(common.env_entry(gatewayenv.MAX_QUEUE.env, str(max_queue)))
    if readiness != DEFAULT_READINESS_PATH:
        env.append(common.env_entry(gatewayenv.READINESS_PATH.env, readiness))
    if stream_rule != gatewayenv.STREAM_RULE.default:
        env.append(common.env_entry(gatewayenv.STREAM_RULE.env, stream_rule))
    if upstream_after_stream != gatewayenv.UPSTREAM_AFTER_STREAM.default:
        env.append(common.env_entry(gatewayenv.UPSTREAM_AFTER_STREAM.env, upstream_after_stream))
    if config.gateway_args:
        gateway_container["args"] = list(config.gateway_args)
    account = names.gateway(name) if config.gateway_service_account else None
    pod_spec = pod(account=account, gateway_container=gateway_container)
    secret = service.spec.endpoint.auth.secret_name
    if secret:
        # Optional, so a missing Secret still starts the gateway, which then refuses every request (401)
        # and says why, instead of a pod stuck in ContainerCreating with no endpoint at all.
        pod_spec["volumes"].append(
            {"name": API_KEYS_VOLUME, "secret": {"secretName": secret, "optional": True}}
        )
        mount = {"name": API_KEYS_VOLUME, "mountPath": API_KEYS_DIR, "readOnly": True}
        gateway_container["volumeMounts"].append(mount)
        env.append(common.env_entry(gatewayenv.API_KEYS_DIR.env, API_KEYS_DIR))
    authentication = service.spec.endpoint.authentication
    if authentication is not None:
        reference = authentication.secret_ref
        # Optional too: a missing Secret (or key) starts the gateway, which answers 503
        # authentication_unavailable until the kubelet brings the key, instead of a pod that never starts.
        item = {"key": reference.key, "path": API_KEY_FILE}
        volume = {"secretName": reference.name, "items": [item], "optional": True}
        pod_spec["volumes"].append({"name": API_KEY_VOLUME, "secret": volume})
        mount = {"name": API_KEY_VOLUME, "mountPath": API_KEY_DIR, "readOnly": True}
        gateway_container["volumeMounts"].append(mount)
        env.append(common.env_entry(gatewayenv.API_KEY_FILE.env, f"{API_KEY_DIR}/{API_KEY_FILE}"))
    tls = scalers.scaler_tls(service, config.scaler_mode)
    if tls is not None:
        # Not optional: without its certificate the scaler must not serve (plaintext would silently undo
        # the mTLS asked for), so the pod waits for the Secret (kubectl describe says which).
        volume = {"secretName": tls.server_secret_name, "optional": False}
        pod_spec["volumes"].append({"name": SCALER_TLS_VOLUME, "secret": volume})
        mount = {"name": SCALER_TLS_VOLUME, "mountPath": SCALER_TLS_DIR, "readOnly": True}
        gateway_container["volumeMounts"].append(mount)
        env.append(common.env_entry(gatewayenv.SCALER_TLS_DIR.env, SCALER_TLS_DIR))
    env.extend(fallback_env(service))
    if service.spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = common.pull_secrets(service)
    spec = deployment_spec(replicas=config.effective_gateway_replicas, selector=selector, pod_spec=pod_spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(service, names.gateway(name), selector),
        "spec": spec,
    }


def disruption_budget_manifest(owner: common.Owner, *, name: str, selector: dict[str, str]) -> dict[str, Any]:
    """A gateway PodDisruptionBudget: a node drain or other voluntary eviction takes at most one gateway
    replica at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(owner, name, selector),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }


def http_service(
    owner: common.Owner, *, name: str, labels: dict[str, str], selector: dict[str, str]
) -> dict[str, Any]:
    """A gateway's client Service: port ``http`` 80 → the gateway pods' 8080."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(owner, name, labels),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}],
        },
    }


def rbac_objects(
    owner: common.Owner, *, account: str, labels: dict[str, str], rules: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A gateway's ServiceAccount, and a Role with *rules* bound to it (all named *account*)."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": common.metadata(owner, account, labels)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": common.metadata(owner, account, labels),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": common.metadata(owner, account, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": owner.namespace}],
        },
    ]


def disruption_budget(service: LLMService) -> dict[str, Any]:
    """``<svc>-gateway`` PodDisruptionBudget (only with more than one gateway replica): a node drain or
    other voluntary eviction takes at most one gateway replica at a time. With one replica there is none,
    since it would block every drain."""
    name = service.metadata.name
    return disruption_budget_manifest(
        service, name=names.gateway_disruption_budget(name), selector=names.gateway_selector(name)
    )


def service_manifest(service: LLMService) -> dict[str, Any]:
    """``<svc>``: the client endpoint (and the metrics-api scrape URL), port ``http`` 80 → 8080."""
    name = service.metadata.name
    return http_service(
        service,
        name=names.gateway_service(name),
        labels=names.gateway_service_labels(name),
        selector=names.gateway_selector(name),
    )


def rbac(service: LLMService, config: OperatorConfig) -> list[dict[str, Any]]:
    """The gateway's ServiceAccount and the least Role it needs: read EndpointSlices (backend readiness), its
    own backend Deployment and its own LLMService, plus what its scaler mode adds (builtin: patch that
    Deployment's scale)."""
    if not config.gateway_service_account:
        return []
    name = service.metadata.name
    labels = names.gateway_selector(name)
    rules: list[dict[str, Any]] = [
        rbac_api.role_rule(rbac_api.GATEWAY_READINESS),
        rbac_api.role_rule(rbac_api.GATEWAY_BACKEND, names=[names.backend(name)]),
        # Its own LLMService only (a watch with fieldSelector metadata.name is authorized by name): the
        # status says the wake's phase and recent wake times, for the held clients' progress and ETA.
        rbac_api.role_rule(rbac_api.GATEWAY_LLMSERVICES, names=[name]),
    ]
    rules.extend(scalers.of(config.scaler_mode).gateway_rules(service))
    return rbac_objects(service, account=names.gateway(name), labels=labels, rules=rules)
