"""What the end-to-end run creates: a stub runtime (and one that can never schedule) and its LLMServices."""

from __future__ import annotations

from typing import Any

API = "serving.hearth.dev/v1alpha1"
FAKE_RESOURCE = "hearth.dev/fake-accelerator"
STARTUP_DELAY_SECONDS = 5
STABILIZATION_SECONDS = 15


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
                ],
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
        },
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
