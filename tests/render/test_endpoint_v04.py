"""What the reference v0.4's endpoint fields render to (issue 27): spec.endpoint.maxQueue and .resources on
the dedicated gateway (and not on a shared one, whose pods are the LLMGateway's), and
spec.endpoint.authentication.secretRef as one Secret key projected into the gateway's own file."""

from __future__ import annotations

from typing import Any

from hearth.api import gatewayenv, loading, quantity
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.render import gateway, plan, sharedgateway
from hearth.render.config import OperatorConfig
from tests.api.manifests import FULL_RUNTIME, MINIMAL_LLMSERVICE, V04_LLMSERVICE, with_changes

CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test")
RUNTIME = loading.parse_object(with_changes(FULL_RUNTIME, "metadata.name", "vllm-nvidia"), source="test")


def _service(document: dict[str, Any]) -> LLMService:
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def _gateway_pod(document: dict[str, Any]) -> dict[str, Any]:
    service = _service(document)
    assert isinstance(RUNTIME, InferenceRuntime)
    wanted = f"{service.metadata.name}-gateway"
    for step in plan.build(service, [RUNTIME], CONFIG).steps:
        manifest = step.manifest
        if manifest["kind"] == "Deployment" and manifest["metadata"]["name"] == wanted:
            pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
            return pod
    raise AssertionError("no gateway Deployment rendered")


def _env(pod: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry.get("value", "") for entry in pod["containers"][0]["env"]}


def test_max_queue_reaches_the_dedicated_gateway_and_is_left_out_when_unset() -> None:
    assert _env(_gateway_pod(V04_LLMSERVICE))[gatewayenv.MAX_QUEUE.env] == "8"
    # Unset: nothing rendered, so existing gateways' pod templates (and pods) are left as they were.
    assert gatewayenv.MAX_QUEUE.env not in _env(_gateway_pod(MINIMAL_LLMSERVICE))


def test_endpoint_resources_replace_the_defaults_as_a_whole() -> None:
    pod = _gateway_pod(V04_LLMSERVICE)
    assert pod["containers"][0]["resources"] == V04_LLMSERVICE["spec"]["endpoint"]["resources"]
    assert _gateway_pod(MINIMAL_LLMSERVICE)["containers"][0]["resources"] == gateway.default_resources()
    only_limit = with_changes(MINIMAL_LLMSERVICE, "spec.endpoint", {"resources": {"limits": {"cpu": "2"}}})
    # As the reference: Kubernetes then requests what is limited; Hearth adds nothing.
    assert _gateway_pod(only_limit)["containers"][0]["resources"] == {"limits": {"cpu": "2"}}


def test_a_smaller_memory_limit_shrinks_the_body_budget_to_fit() -> None:
    budget = int(_env(_gateway_pod(V04_LLMSERVICE))[gatewayenv.MAX_BUFFERED_BYTES.env])
    assert budget == gateway.BUFFERED_BYTES, "512Mi holds the whole default budget and the process"
    small = with_changes(MINIMAL_LLMSERVICE, "spec.endpoint", {"resources": {"limits": {"memory": "192Mi"}}})
    budget = int(_env(_gateway_pod(small))[gatewayenv.MAX_BUFFERED_BYTES.env])
    limit = quantity.bytes_of("192Mi")
    assert budget == limit - gateway.PROCESS_BYTES
    tiny = with_changes(MINIMAL_LLMSERVICE, "spec.endpoint", {"resources": {"limits": {"memory": "64Mi"}}})
    assert int(_env(_gateway_pod(tiny))[gatewayenv.MAX_BUFFERED_BYTES.env]) == gateway.MIB


def test_authentication_projects_the_one_key_into_its_own_file() -> None:
    pod = _gateway_pod(V04_LLMSERVICE)
    (volume,) = [each for each in pod["volumes"] if each["name"] == gateway.API_KEY_VOLUME]
    assert volume["secret"] == {
        "secretName": "qwen-client-key",
        "items": [{"key": "api-key", "path": gateway.API_KEY_FILE}],
        "optional": True,
    }
    container = pod["containers"][0]
    mounts = [each for each in container["volumeMounts"] if each["name"] == gateway.API_KEY_VOLUME]
    assert mounts == [{"name": gateway.API_KEY_VOLUME, "mountPath": gateway.API_KEY_DIR, "readOnly": True}]
    assert "subPath" not in mounts[0], "a subPath mount is never updated: the key could not rotate"
    env = _env(pod)
    assert env[gatewayenv.API_KEY_FILE.env] == f"{gateway.API_KEY_DIR}/{gateway.API_KEY_FILE}"
    assert gatewayenv.API_KEYS_DIR.env not in env


def test_a_shared_gateway_takes_the_llmgateways_resources_not_a_routed_services() -> None:
    shared = LLMGateway.model_validate(
        {
            "metadata": {"name": "edge", "namespace": "default"},
            "spec": {"selector": {}, "resources": {"limits": {"memory": "256Mi"}}},
        }
    )
    manifest = sharedgateway.deployment(shared, CONFIG)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"memory": "256Mi"}}
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env[gatewayenv.MAX_BUFFERED_BYTES.env] == str(quantity.bytes_of("256Mi") - gateway.PROCESS_BYTES)
    # The per-model bound is read by the gateway from each LLMService (its route), never rendered here.
    assert gatewayenv.MAX_QUEUE.env not in env
