"""Everything `hearth install` creates, as manifests (pure: no I/O beyond reading bundled data)."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

import hearth
from hearth.api import rbac, scalermodes
from hearth.common import bundle

NAME = "hearth-operator"
LABELS = {"app.kubernetes.io/part-of": "hearth", "app.kubernetes.io/managed-by": "hearth-install"}
METRICS_READER = "hearth-metrics-reader"
#: The reference's metrics port (its Kustomize config serves HTTPS metrics on :8443).
DEFAULT_METRICS_PORT = 8443
OPERATOR_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "operator"}
DEFAULT_IMAGE = f"ghcr.io/hearth-project/hearth:{hearth.__version__}"


@dataclasses.dataclass(frozen=True, slots=True)
class InstallConfig:
    namespace: str = "hearth-system"
    image: str = DEFAULT_IMAGE
    #: Gateway image; the same single image by default (it runs `hearth gateway`).
    gateway_image: str | None = None
    image_pull_policy: str = "IfNotPresent"
    scaler_mode: scalermodes.ScalerMode = scalermodes.ScalerMode.AUTO
    gateway_replicas: int = 1
    replicas: int = 1
    network_policies: bool = False
    #: Serve the operator's /metrics over HTTPS (--metrics-secure) on this port, with a Service; 0: off.
    metrics_port: int = 0
    runtimes: bool = True
    log_format: str = "json"


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


def operator_args(config: InstallConfig) -> list[str]:
    return [
        "operator",
        "--leader-elect",
        "--health-probe-bind-address=:8081",
        f"--scaler-mode={config.scaler_mode}",
        f"--gateway-image={config.gateway_image or config.image}",
        f"--gateway-replicas={config.gateway_replicas}",
        f"--log-format={config.log_format}",
        *(["--network-policies"] if config.network_policies else []),
        *([f"--metrics-bind-address=:{config.metrics_port}"] if config.metrics_port else []),
    ]


def deployment(config: InstallConfig) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": 8081}, "periodSeconds": 20, "initialDelaySeconds": 15}
    readiness = {"httpGet": {"path": "/readyz", "port": 8081}, "periodSeconds": 10, "initialDelaySeconds": 5}
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
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
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
