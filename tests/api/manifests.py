"""Manifests used across the API tests: one LLMService using every SPEC §1.1 field, and one
InferenceRuntime using every SPEC §1.2 field, as a reference-Hearth user would write them."""

from __future__ import annotations

import copy
from typing import Any

FULL_LLMSERVICE: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMService",
    "metadata": {"name": "qwen3-8b", "namespace": "default"},
    "spec": {
        "model": {
            "catalogRef": "qwen3-8b",
            "source": {"uri": "hf://Qwen/Qwen3-8B", "secretRef": {"name": "hf-token"}},
        },
        "runtime": {
            "name": "vllm-nvidia",
            "selector": {"vendor": ["ascend", "nvidia"]},
            "argsOverride": ["--max-model-len=8192", "--served-model-name={{ .Service.Name }}"],
        },
        "resources": {
            "accelerators": 2,
            "fraction": {"memory": "20Gi", "cores": 30},
            "cpu": "4",
            "memory": "32Gi",
        },
        "scaling": {
            "min": 0,
            "max": 3,
            "metric": "queueDepth",
            "target": 4,
            "activationTimeout": "10m",
            "scaleDownStabilization": "2m30s",
            "drainTimeout": "90s",
            "schedules": [
                {
                    "name": "office-hours",
                    "start": "0 9 * * 1-5",
                    "end": "0 18 * * mon-fri",
                    "timezone": "Europe/Berlin",
                    "minReplicas": 2,
                }
            ],
        },
        "cache": {"strategy": "HostPath", "size": "100Gi", "storageClassName": "local-path", "prewarm": True},
        "endpoint": {
            "openAICompatible": True,
            "coldStart": {"mode": "reject", "heartbeatInterval": "5s"},
            "auth": {"secretName": "qwen-api-keys"},
            "fallback": {
                "url": "https://api.example.com/v1",
                "model": "small-model",
                "apiKeySecret": {"name": "fallback-key", "key": "token"},
                "whileCold": "AfterHold",
                "holdFor": "20s",
                "whenFull": False,
            },
        },
        "imagePullSecrets": [{"name": "registry"}],
    },
}

FULL_RUNTIME: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "InferenceRuntime",
    "metadata": {"name": "vllm-a10"},
    "spec": {
        "family": "vllm",
        "vendor": "nvidia",
        "priority": 100,
        "container": {
            "image": "vllm/vllm-openai:v0.25.1",
            "args": ["{{ .Model.Path }}", "--served-model-name={{.Service.Name}}"],
            "env": [
                {"name": "NS", "value": "{{ .Service.Namespace }}"},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token", "optional": True}},
                },
            ],
            "port": {"name": "http", "containerPort": 8000},
        },
        "accelerator": {
            "resourceName": "nvidia.com/gpu",
            "sharing": {"supported": False},
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A10"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "scheduler": {"name": "volcano", "queue": "llm"},
        },
        "health": {
            "readiness": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
            "liveness": {"tcpSocket": {"port": 8000}, "failureThreshold": 3},
            "startup": {
                "httpGet": {"path": "/health", "port": 8000},
                "periodSeconds": 10,
                "failureThreshold": 60,
            },
        },
        "lifecycle": {"terminationGracePeriodSeconds": 30, "preStopDrain": True, "drainMode": "UntilIdle"},
        "metrics": {
            "path": "/metrics",
            "port": "http",
            "queueDepth": "vllm:num_requests_waiting",
            "kvCacheUtil": "vllm:kv_cache_usage_perc",
            "running": "vllm:num_requests_running",
            "ttft": "vllm:time_to_first_token_seconds",
        },
    },
}

#: The endpoint fields the reference added in v0.4 (Noctaya's docs, with our group): a per-model queue
#: bound, the gateway's compute and one Bearer key from one Secret key.
V04_LLMSERVICE: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMService",
    "metadata": {"name": "qwen-v04", "namespace": "default"},
    "spec": {
        "model": {"source": {"uri": "hf://Qwen/Qwen3-0.6B"}},
        "runtime": {"name": "vllm-nvidia"},
        "endpoint": {
            "maxQueue": 8,
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            },
            "authentication": {"secretRef": {"name": "qwen-client-key", "key": "api-key"}},
        },
    },
}

MINIMAL_LLMSERVICE: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMService",
    "metadata": {"name": "minimal", "namespace": "default"},
    "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-0.6B"}}, "runtime": {"name": "vllm-nvidia"}},
}

#: The defaults SPEC §1.1 lists (with parents defaulted, DESIGN improvement 7).
DEFAULTED_SPEC_PARTS: dict[str, Any] = {
    "resources": {"accelerators": 1},
    "scaling": {
        "min": 0,
        "max": 1,
        "metric": "queueDepth",
        "target": 10,
        "activationTimeout": "5m",
        "scaleDownStabilization": "5m",
        "drainTimeout": "2m",
    },
    "cache": {"strategy": "NodeLocalPVC"},
    "endpoint": {
        "openAICompatible": True,
        "coldStart": {"mode": "keepalive", "heartbeatInterval": "10s"},
        "auth": {},
    },
}


def with_changes(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of *document* with the dotted *path* set to *value* (``None`` deletes it)."""
    result = copy.deepcopy(document)
    *parents, leaf = path.split(".")
    node = result
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return result
