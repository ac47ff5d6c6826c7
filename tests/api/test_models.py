"""The pydantic models: every SPEC §1 field round-trips; defaults and refusals match the CRD."""

from __future__ import annotations

from typing import Any

import pytest

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from tests.api.manifests import (
    DEFAULTED_SPEC_PARTS,
    FULL_LLMSERVICE,
    FULL_RUNTIME,
    MINIMAL_LLMSERVICE,
    V04_LLMSERVICE,
    with_changes,
)


def test_every_llmservice_field_round_trips() -> None:
    service = LLMService.model_validate(FULL_LLMSERVICE)
    assert service.spec.to_wire() == FULL_LLMSERVICE["spec"]
    assert service.spec.scaling.scale_down_stabilization == "2m30s"
    assert service.spec.endpoint.cold_start.mode == "reject"


def test_the_v04_endpoint_fields_round_trip() -> None:
    service = LLMService.model_validate(V04_LLMSERVICE)
    written = V04_LLMSERVICE["spec"]["endpoint"]
    assert {key: service.spec.endpoint.to_wire()[key] for key in written} == written
    endpoint = service.spec.endpoint
    assert endpoint.max_queue == 8
    assert endpoint.authentication is not None
    assert (endpoint.authentication.secret_ref.name, endpoint.authentication.secret_ref.key) == (
        "qwen-client-key",
        "api-key",
    )
    assert endpoint.resources is not None
    assert endpoint.resources.requirements() == V04_LLMSERVICE["spec"]["endpoint"]["resources"]


def test_the_v04_endpoint_fields_are_unset_by_default() -> None:
    endpoint = LLMService.model_validate(MINIMAL_LLMSERVICE).spec.endpoint
    assert (endpoint.max_queue, endpoint.resources, endpoint.authentication) == (None, None, None)


def test_every_runtime_field_round_trips() -> None:
    runtime = InferenceRuntime.model_validate(FULL_RUNTIME)
    assert runtime.spec.to_wire() == FULL_RUNTIME["spec"]
    assert runtime.spec.accelerator.scheduler is not None
    assert runtime.spec.accelerator.scheduler.queue == "llm"


def test_omitted_parents_still_get_their_fields_defaults() -> None:
    spec = LLMService.model_validate(MINIMAL_LLMSERVICE).spec.to_wire()
    for key, value in DEFAULTED_SPEC_PARTS.items():
        assert spec[key] == value, key


def test_partial_parents_get_the_missing_defaults() -> None:
    document = with_changes(MINIMAL_LLMSERVICE, "spec.scaling", {"max": 4})
    scaling = LLMService.model_validate(document).spec.scaling
    assert (scaling.min, scaling.max, scaling.target, scaling.drain_timeout) == (0, 4, 10, "2m")


def test_runtime_defaults() -> None:
    document = with_changes(FULL_RUNTIME, "spec.container.port", None)
    document = with_changes(document, "spec.family", None)
    document = with_changes(document, "spec.priority", None)
    spec = InferenceRuntime.model_validate(document).spec
    assert (spec.family, spec.priority) == ("vllm", 0)
    assert (spec.container.port.name, spec.container.port.container_port) == ("http", 8000)


def _problem(kind: str, document: dict[str, Any]) -> str:
    with pytest.raises(loading.LoadError) as caught:
        loading.parse_object(document, source="test.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.scaling.min", -1, "spec.scaling.min: Input should be greater than or equal to 0"),
        ("spec.scaling.max", 0, "spec.scaling.max: Input should be greater than or equal to 1"),
        ("spec.scaling.target", 0, "spec.scaling.target"),
        ("spec.resources.accelerators", 0, "spec.resources.accelerators"),
        ("spec.scaling.metric", "latency", "spec.scaling.metric"),
        ("spec.scaling.activationTimeout", "5x", 'unknown unit "x"'),
        ("spec.scaling.drainTimeout", "2", "missing unit"),
        ("spec.scaling.scaleDownStabilization", "2h", "scaleDownStabilization must be between 0s and 1h"),
        ("spec.scaling.scaleDownStabilization", "-1s", "scaleDownStabilization must be between 0s and 1h"),
        ("spec.scaling.max", 0, "max"),
        ("spec.endpoint.coldStart.mode", "sometimes", "spec.endpoint.coldStart.mode"),
        ("spec.endpoint.coldStart.heartbeatInterval", "5x", "spec.endpoint.coldStart.heartbeatInterval"),
        ("spec.cache.strategy", "Tmpfs", "spec.cache.strategy"),
        ("spec.endpoint.auth.secretName", "Keys_v2", "spec.endpoint.auth.secretName"),
        ("spec.cache.size", "lots", "is not a Kubernetes quantity"),
        ("spec.resources.memory", "32GB", "is not a Kubernetes quantity"),
        ("spec.model", None, "spec.model: Field required"),
        ("spec.model.source.uri", "", "spec.model.source.uri"),
        ("spec.runtime", None, "set runtime.name or runtime.selector.vendor"),
        ("spec.scaling.maxReplicas", 3, "spec.scaling.maxReplicas: Extra inputs are not permitted"),
        ("spec.endpoint.maxQueue", 0, "spec.endpoint.maxQueue: Input should be greater than or equal to 1"),
        ("spec.endpoint.resources.limits.memory", "lots", "is not a Kubernetes quantity"),
        ("spec.endpoint.resources.limits.gpu", 1, "spec.endpoint.resources.limits.gpu"),
        ("spec.endpoint.authentication", {}, "spec.endpoint.authentication.secretRef: Field required"),
        (
            "spec.endpoint.authentication.secretRef",
            {"name": "keys", "key": "a/b"},
            "spec.endpoint.authentication.secretRef.key",
        ),
        (
            "spec.endpoint",
            {"auth": {"secretName": "keys"}, "authentication": {"secretRef": {"name": "k", "key": "a"}}},
            "set endpoint.authentication.secretRef or endpoint.auth.secretName, not both",
        ),
    ],
)
def test_bad_llmservice_fields_are_refused_by_name(path: str, value: Any, message: str) -> None:
    assert message in _problem("LLMService", with_changes(MINIMAL_LLMSERVICE, path, value))


def test_min_above_max_is_refused() -> None:
    document = with_changes(MINIMAL_LLMSERVICE, "spec.scaling", {"min": 3, "max": 2})
    assert "min must not exceed max (min=3, max=2)" in _problem("LLMService", document)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.vendor", "moorethreads", "spec.vendor"),
        ("spec.vendor", None, "spec.vendor: Field required"),
        ("spec.family", "sglang", "spec.family"),
        ("spec.container.image", "", "spec.container.image"),
        ("spec.container.port.containerPort", 70000, "spec.container.port.containerPort"),
        ("spec.accelerator.resourceName", None, "spec.accelerator.resourceName: Field required"),
        ("spec.accelerator.scheduler", {"queue": "llm"}, "queue requires scheduler name volcano"),
        ("spec.lifecycle.terminationGracePeriodSeconds", 0, "terminationGracePeriodSeconds"),
        ("spec.metrics", {"path": "/metrics"}, "spec.metrics.queueDepth: Field required"),
        ("spec.container.port.name", "HTTP", "container.port.name must be an IANA service name"),
        ("spec.container.port.name", "8000", "container.port.name must be an IANA service name"),
        ("spec.container.port.name", "a--b", "container.port.name must be an IANA service name"),
        ("spec.container.port.name", "serving-api-port", "spec.container.port.name"),
    ],
)
def test_bad_runtime_fields_are_refused_by_name(path: str, value: Any, message: str) -> None:
    assert message in _problem("InferenceRuntime", with_changes(FULL_RUNTIME, path, value))


def test_load_all_names_the_document_and_kind() -> None:
    text = "kind: Deployment\nmetadata: {name: x}\n"
    with pytest.raises(
        loading.LoadError, match=r"test.yaml \(document 1\): kind 'Deployment' is not a Hearth kind"
    ):
        loading.load_all(text, source="test.yaml")
    with pytest.raises(loading.LoadError, match="not valid YAML"):
        loading.load_all("a: [", source="test.yaml")
