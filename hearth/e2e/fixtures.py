"""What the end-to-end run creates: a stub runtime (and one that can never schedule) and its LLMServices."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from hearth.render import podsecurity

API = "serving.hearth.dev/v1alpha1"
FAKE_RESOURCE = "hearth.dev/fake-accelerator"
STARTUP_DELAY_SECONDS = 5
STABILIZATION_SECONDS = 15
#: The label that makes the API server refuse every pod of a namespace short of the restricted Pod Security
#: Standard (hearth e2e --pod-security-restricted).
ENFORCE_RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def restricted(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """*pod_spec* meeting the restricted Pod Security Standard as the stub image's user (which it runs as
    anyway): the e2e's own pods pass a namespace that enforces it."""
    for container in pod_spec["containers"]:
        container["securityContext"] = podsecurity.container_context()
    return {**pod_spec, "securityContext": podsecurity.pod_context()}


#: The same namespace relaxed for one scenario: host paths (a HostPath cache) meet no other level.
ENFORCE_PRIVILEGED = {**ENFORCE_RESTRICTED, "pod-security.kubernetes.io/enforce": "privileged"}


def namespace(name: str, *, enforce_restricted: bool = False, relaxed: bool = False) -> dict[str, Any]:
    """The run's namespace; with *enforce_restricted*, one whose pods must meet ``restricted``; *relaxed*
    (with it): one that admits any pod, for the scenario that needs a host path."""
    metadata: dict[str, Any] = {"name": name}
    if enforce_restricted:
        metadata["labels"] = dict(ENFORCE_PRIVILEGED if relaxed else ENFORCE_RESTRICTED)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def runtime(name: str, *, image: str, resource: str = FAKE_RESOURCE) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceRuntime",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "hearth-e2e"}},
        "spec": {
            "vendor": "generic",
            "container": {
                "image": image,
                "args": ["{{ .Model.Path }}", "--served-model-name={{ .Service.Name }}", "--port=8000"],
                "env": [
                    {"name": "STUB_STARTUP_DELAY", "value": f"{STARTUP_DELAY_SECONDS}s"},
                    {"name": "STUB_TOKEN_DELAY", "value": "50ms"},
                    {"name": "STUB_TOKEN_COUNT", "value": "8"},
                    {"name": "STUB_READY_GATES_SERVING", "value": "true"},
                    # The hub the prewarm Job's `hearth fetch` (hearth image) downloads from: it takes the
                    # runtime's HF_* env, as the engine would use it.
                    {"name": "HF_ENDPOINT", "value": f"http://{HUB}"},
                ],
                # As the bundled vllm-stub: the stub image's own user, so its pods meet restricted.
                "runAsUser": podsecurity.NONROOT_UID,
            },
            "accelerator": {"resourceName": resource},
            "health": {
                "readiness": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
                "startup": {
                    "httpGet": {"path": "/health", "port": "http"},
                    "periodSeconds": 1,
                    "failureThreshold": 120,
                },
            },
            "lifecycle": {"preStopDrain": True},
            # The stub's vLLM gauges: the drain sidecar ends a drain when both read 0 (drainMode UntilIdle).
            "metrics": {"queueDepth": "vllm:num_requests_waiting", "running": "vllm:num_requests_running"},
        },
    }


def accelerator_pool(
    name: str, *, devices: int, min_warm: str, idle_grace: str, swap_evictions: int | None = None
) -> dict[str, Any]:
    """An AcceleratorPool of *devices* fake accelerators (with a swap limit of *swap_evictions* per 10m)."""
    spec: dict[str, Any] = {
        "resourceName": FAKE_RESOURCE,
        "devices": devices,
        "minWarm": min_warm,
        "idleGrace": idle_grace,
    }
    if swap_evictions is not None:
        spec["swapLimit"] = {"evictions": swap_evictions, "window": "10m"}
    return {
        "apiVersion": API,
        "kind": "AcceleratorPool",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "hearth-e2e"}},
        "spec": spec,
    }


def api_keys(name: str, namespace: str, key: str) -> dict[str, Any]:
    """A Secret holding one API key, as a user would create it for ``endpoint.auth.secretName``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"e2e": key},
    }


def service(
    name: str,
    namespace: str,
    runtime_name: str,
    *,
    mode: str = "keepalive",
    auth_secret: str | None = None,
) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"coldStart": {"mode": mode, "heartbeatInterval": "2s"}}
    if auth_secret:
        endpoint["auth"] = {"secretName": auth_secret}
    return {
        "apiVersion": API,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"source": {"uri": "hf://hearth/e2e-model"}},
            "runtime": {"name": runtime_name},
            "scaling": {
                "min": 0,
                "max": 2,
                "target": 1,
                "scaleDownStabilization": f"{STABILIZATION_SECONDS}s",
                "drainTimeout": "30s",
                "activationTimeout": "3m",
            },
            "cache": {"strategy": "None"},
            "endpoint": endpoint,
        },
    }


#: The repository the LLMServices' model names, which the stand-in hub serves.
MODEL_REPO = "hearth/e2e-model"
#: The stand-in hub's name: the stub image's HF_ENDPOINT is http://hearth-hub (its own namespace's Service).
HUB = "hearth-hub"
HUB_PORT = 8080
#: Where the HostPath cache strategy keeps caches on the node (SPEC §5.2).
HOST_CACHE_ROOT = "/var/lib/hearth/cache"


#: The real engine's model (hearth.e2e.engines): a GGUF the stand-in hub serves as one file of GGUF_REPO,
#: carried to it in a ConfigMap (far under its 1 MiB limit: testing/llamacpp/make_gguf.py writes ~200 KB).
GGUF_REPO = "hearth/e2e-gguf"
GGUF_FILE = "model.gguf"
GGUF_URI = f"hf://{GGUF_REPO}/{GGUF_FILE}"
GGUF_CONFIG_MAP = "hearth-hub-gguf"
GGUF_MOUNT = "/models"


def gguf_config_map(namespace: str, path: str) -> dict[str, Any]:
    """The GGUF at *path* for the stand-in hub to serve (``stub-hub --file``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": GGUF_CONFIG_MAP, "namespace": namespace},
        "binaryData": {GGUF_FILE: base64.b64encode(Path(path).read_bytes()).decode()},
    }


def hub(namespace: str, *, image: str, gguf: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A Deployment and Service of ``hearth stub-hub`` serving MODEL_REPO: the hub of the prewarm Jobs;
    with the *gguf* ConfigMap, GGUF_REPO too."""
    labels = {"app.kubernetes.io/name": HUB, "app.kubernetes.io/part-of": "hearth-e2e"}
    command = ["/usr/local/bin/hearth", "stub-hub", f"--listen=:{HUB_PORT}", f"--repo={MODEL_REPO}"]
    container: dict[str, Any] = {
        "name": "hub",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"name": "http", "containerPort": HUB_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    pod: dict[str, Any] = {"containers": [container]}
    if gguf is not None:
        command.append(f"--file={GGUF_REPO}={GGUF_MOUNT}/{GGUF_FILE}")
        container["volumeMounts"] = [{"name": "gguf", "mountPath": GGUF_MOUNT, "readOnly": True}]
        pod["volumes"] = [{"name": "gguf", "configMap": {"name": gguf["metadata"]["name"]}}]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": HUB, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": restricted(pod)},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": HUB, "namespace": namespace, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]


def cached_service(name: str, namespace: str, runtime_name: str, *, strategy: str) -> dict[str, Any]:
    """An LLMService whose weights go to a *strategy* cache, prewarmed by a Job."""
    manifest = service(name, namespace, runtime_name)
    manifest["spec"]["model"]["source"]["uri"] = f"hf://{MODEL_REPO}"
    manifest["spec"]["scaling"]["max"] = 1
    manifest["spec"]["cache"] = {"strategy": strategy, "prewarm": True, "size": "64Mi"}
    return manifest


def host_cache_pod(name: str, namespace: str, *, image: str, script: str) -> dict[str, Any]:
    """A one-shot root pod working in the node's HostPath cache root (mounted at /host) with *script*.

    The kubelet creates a HostPath cache directory as root 0755, and fsGroup does not apply to hostPath
    volumes, so a cache written by a non-root image (the stub runs as 65532) must be prepared by the
    cluster's admin first; this pod is that step."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "hearth-e2e"},
        },
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "containers": [
                {
                    "name": "prepare",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", script],
                    "volumeMounts": [{"name": "cache-root", "mountPath": "/host"}],
                }
            ],
            "volumes": [
                {"name": "cache-root", "hostPath": {"path": HOST_CACHE_ROOT, "type": "DirectoryOrCreate"}}
            ],
        },
    }
