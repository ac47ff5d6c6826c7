"""What the rendered gateway container is told about its backend's readiness path and its memory bounds
(issue 17, B6 and B8)."""

from __future__ import annotations

from typing import Any

from hearth.api import loading, quantity
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.gateway import settings as gateway_settings
from hearth.render import plan
from hearth.render.config import OperatorConfig
from tests.api.manifests import FULL_RUNTIME, with_changes

CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test")


def _objects(health: Any) -> tuple[LLMService, InferenceRuntime]:
    runtime = loading.parse_object(with_changes(FULL_RUNTIME, "spec.health", health), source="test")
    assert isinstance(runtime, InferenceRuntime)
    service = loading.parse_object(
        {
            "apiVersion": "serving.hearth.dev/v1alpha1",
            "kind": "LLMService",
            "metadata": {"name": "qwen", "namespace": "ml"},
            "spec": {
                "model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}},
                "runtime": {"name": runtime.metadata.name},
            },
        },
        source="test",
    )
    assert isinstance(service, LLMService)
    return service, runtime


def _gateway_container(health: Any) -> dict[str, Any]:
    service, runtime = _objects(health)
    for step in plan.build(service, [runtime], CONFIG).steps:
        manifest = step.manifest
        if manifest["kind"] == "Deployment" and manifest["metadata"]["name"] == "qwen-gateway":
            container: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
            return container
    raise AssertionError("no gateway Deployment rendered")


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry.get("value", "") for entry in container["env"]}


def test_the_gateway_probes_the_runtime_readiness_path_without_api_access() -> None:
    probe = {"httpGet": {"path": "/v1/models", "port": "http"}}
    container = _gateway_container({"readiness": probe})
    assert _env(container)["HEARTH_READINESS_PATH"] == "/v1/models"


def test_the_default_readiness_path_is_left_to_the_gateway_default() -> None:
    container = _gateway_container(None)
    assert "HEARTH_READINESS_PATH" not in _env(container)
    assert gateway_settings.GatewaySettings(backend_url="http://b").readiness_path == "/health"


def test_the_gateway_memory_limit_holds_its_whole_body_budget() -> None:
    container = _gateway_container(None)
    budget = int(_env(container)["HEARTH_MAX_BUFFERED_BYTES"])
    limit = quantity.bytes_of(container["resources"]["limits"]["memory"])
    request = quantity.bytes_of(container["resources"]["requests"]["memory"])
    assert budget <= gateway_settings.GatewaySettings(backend_url="http://b").max_buffered_bytes
    assert limit >= budget + 64 * 1024 * 1024, "the budget plus the process itself fit under the limit"
    assert request <= limit
