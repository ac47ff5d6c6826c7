"""Everything `hearth install` creates, as manifests (pure: no I/O beyond reading bundled data)."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

import hearth
from hearth.api import operatorsettings, rbac, scalermodes
from hearth.common import bundle
from hearth.render import names

NAME = "hearth-operator"
LABELS = {"app.kubernetes.io/part-of": "hearth", "app.kubernetes.io/managed-by": "hearth-install"}
METRICS_READER = "hearth-metrics-reader"
#: The reference's metrics port (its Kustomize config serves HTTPS metrics on :8443).
DEFAULT_METRICS_PORT = 8443
OPERATOR_LABELS = {"app.kubernetes.io/name": NAME, **names.OPERATOR_COMPONENT_LABEL}
DEFAULT_IMAGE = f"ghcr.io/hearth-project/hearth:{hearth.__version__}"


#: How the operator logs where install deploys it (one JSON object per line, for log collectors).
LOG_FORMAT = "json"


@dataclasses.dataclass(frozen=True, slots=True)
class InstallConfig:
    """What ``hearth install`` deploys. The settings it passes through to the operator are named by their
    fields in :mod:`hearth.api.operatorsettings` (a test keeps them so) and default as the operator does."""

    namespace: str = "hearth-system"
    image: str = DEFAULT_IMAGE
    #: Gateway image; the same single image by default (it runs `hearth gateway`).
    gateway_image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    scaler: scalermodes.ScalerMode = operatorsettings.SCALER.default
    gateway_replicas: int = operatorsettings.GATEWAY_REPLICAS.default
    replicas: int = 1
    network_policies: bool = operatorsettings.NETWORK_POLICIES.default
    #: Serve the operator's /metrics over HTTPS (--metrics-secure) on this port, with a Service; 0: off.
    metrics_port: int = 0
    runtimes: bool = True
    log_format: str = LOG_FORMAT


def cluster_role_rules() -> list[dict[str, Any]]:
    """What the operator needs cluster-wide, and nothing more: the table of :mod:`hearth.api.rbac`. It also
    holds every permission it grants in a gateway Role (EndpointSlices, its backend's Deployment and scale),
    as Kubernetes requires to create that Role."""
    return rbac.granted(namespaced=False)


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {**LABELS, **(labels or {})}}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(bundle.read_text("crds", name)) for name in bundle.names("crds")]


def runtimes() -> list[dict[str, Any]]:
    documents = [yaml.safe_load(bundle.read_text("runtimes", name)) for name in bundle.names("runtimes")]
    for document in documents:
        document["metadata"].setdefault("labels", {}).update(LABELS)
    return documents


def _passed(setting: operatorsettings.Setting[object], value: object, *, always: bool) -> list[str]:
    """The operator's argument setting *setting* to *value*. A switch the user chooses is passed when on
    (off is the operator's default); one with a fixed value (*always*) is passed on or off."""
    if setting.kind is operatorsettings.Kind.SWITCH:
        on = value in (True, "true")
        if not always:
            return [setting.flag] if on else []
        return [setting.flag if on else setting.off_flag or ""]
    text = value if isinstance(value, str) else operatorsettings.format_value(value, kind=setting.kind)
    return [f"{setting.flag}={text}"]


def operator_args(config: InstallConfig) -> list[str]:
    """The operator's arguments: the table's deployed settings in its order, then logging and metrics."""
    args = ["operator"]
    for setting, deployed in operatorsettings.deployed():
        if deployed.install_flag is None:
            value: object = deployed.fixed
        elif setting is operatorsettings.GATEWAY_IMAGE:
            value = config.gateway_image or config.image  # one image runs every role
        else:
            value = getattr(config, setting.field)
        args += _passed(setting, value, always=deployed.fixed is not None)
    args.append(f"--log-format={config.log_format}")
    if config.metrics_port:
        args.append(f"{operatorsettings.METRICS_ADDRESS.flag}=:{config.metrics_port}")
    return args


def deployment(config: InstallConfig) -> dict[str, Any]:
    port = operatorsettings.HEALTH_PORT
    probe = {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 20, "initialDelaySeconds": 15}
    readiness = {"httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 10, "initialDelaySeconds": 5}
    container = {
        "name": "operator",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "args": operator_args(config),
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "health", "containerPort": port, "protocol": "TCP"},
            *(
                [{"name": "metrics", "containerPort": config.metrics_port, "protocol": "TCP"}]
                if config.metrics_port
                else []
            ),
        ],
        "livenessProbe": probe,
        "readinessProbe": readiness,
        "resources": {
            "requests": {"cpu": "50m", "memory": "160Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The single-file binary unpacks into /tmp at start: a writable, bounded scratch volume.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, config.namespace, OPERATOR_LABELS),
        "spec": {
            "replicas": config.replicas,
            "selector": {"matchLabels": OPERATOR_LABELS},
            "template": {
                "metadata": {"labels": {**LABELS, **OPERATOR_LABELS}},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def objects(config: InstallConfig) -> list[dict[str, Any]]:
    """Every object, in the order they must be applied."""
    namespace = config.namespace
    rbac_subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]
    return [
        *crds(),
        *(runtimes() if config.runtimes else []),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(NAME),
            "rules": cluster_role_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(NAME),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": rbac_subject,
        },
        {
            # Bind it to whatever scrapes the operator's metrics (e.g. Prometheus's ServiceAccount).
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(METRICS_READER),
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(f"{NAME}-leader-election", namespace),
            "rules": rbac.granted(namespaced=True),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"{NAME}-leader-election", namespace),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": f"{NAME}-leader-election",
            },
            "subjects": rbac_subject,
        },
        *([metrics_service(config)] if config.metrics_port else []),
        deployment(config),
    ]


def metrics_service(config: InstallConfig) -> dict[str, Any]:
    """``hearth-operator-metrics``: where Prometheus scrapes the operator (HTTPS; it needs a token of an
    account bound to the hearth-metrics-reader ClusterRole)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{NAME}-metrics", config.namespace, OPERATOR_LABELS),
        "spec": {
            "selector": OPERATOR_LABELS,
            "ports": [
                {"name": "https", "port": config.metrics_port, "targetPort": "metrics", "protocol": "TCP"}
            ],
        },
    }
