"""spec.endpoint.fallback as the operator judges it (issue 31): usable, missing, itself, a loop; an external
one says prompts leave the cluster; a refused one is not rendered into the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.operator.reconcile import fallbacks
from hearth.render import gateway
from hearth.render.config import OperatorConfig


def service(name: str, fallback: dict[str, Any] | None = None) -> LLMService:
    document: dict[str, Any] = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}}, "runtime": {"name": "vllm-nvidia"}},
    }
    if fallback is not None:
        document["spec"]["endpoint"] = {"fallback": fallback}
    parsed = loading.parse_object(document, source="test")
    assert isinstance(parsed, LLMService)
    return parsed


def judge(subject: LLMService, *others: LLMService) -> fallbacks.Verdict | None:
    by_name = {other.metadata.name: other for other in others}
    return fallbacks.judge(subject, lookup=fallbacks.lookup_in(by_name.get))


def test_no_fallback_no_condition() -> None:
    assert judge(service("big")) is None


def test_a_service_fallback_that_exists_is_usable() -> None:
    verdict = judge(service("big", {"service": "small"}), service("small"))
    assert verdict is not None
    assert verdict.usable
    assert verdict.reason == fallbacks.REASON_SERVICE
    assert "answered by LLMService small" in verdict.message
    assert "while this model is cold or when it has no room" in verdict.message


@pytest.mark.parametrize(
    ("subject", "others", "reason", "fragment"),
    [
        (service("big", {"service": "small"}), (), fallbacks.REASON_MISSING, "small does not exist"),
        (service("big", {"service": "big"}), (), fallbacks.REASON_SELF, "this LLMService itself"),
        (
            service("a", {"service": "b"}),
            (service("b", {"service": "a"}),),
            fallbacks.REASON_LOOP,
            "a loop: a -> b -> a",
        ),
        (
            service("a", {"service": "b"}),
            (service("b", {"service": "c"}), service("c", {"service": "b"})),
            fallbacks.REASON_LOOP,
            "a loop: a -> b -> c -> b",
        ),
    ],
)
def test_refused_fallbacks_name_why(
    subject: LLMService, others: tuple[LLMService, ...], reason: str, fragment: str
) -> None:
    verdict = judge(subject, *others)
    assert verdict is not None
    assert not verdict.usable
    assert verdict.reason == reason
    assert fragment in verdict.message


def test_a_chain_that_ends_is_no_loop() -> None:
    verdict = judge(service("a", {"service": "b"}), service("b", {"service": "c"}), service("c"))
    assert verdict is not None
    assert verdict.usable


def test_an_external_fallback_says_prompts_leave_the_cluster() -> None:
    external = {
        "url": "https://api.example.com/v1",
        "model": "gpt-small",
        "apiKeySecret": {"name": "fallback-key"},
        "whileCold": "AfterHold",
        "holdFor": "10s",
        "whenFull": False,
    }
    verdict = judge(service("big", external))
    assert verdict is not None
    assert verdict.usable
    assert verdict.reason == fallbacks.REASON_EXTERNAL
    assert "sent to api.example.com as model gpt-small" in verdict.message
    assert "prompts leave the cluster" in verdict.message
    assert "after waiting 10s" in verdict.message


def _env(subject: LLMService) -> dict[str, Any]:
    deployment = gateway.deployment(subject, OperatorConfig())
    entries = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in entries}


def test_the_gateway_gets_the_fallback_and_its_key_from_the_secret() -> None:
    env = _env(
        service("big", {"url": "https://api.example.com/v1/", "model": "m", "apiKeySecret": {"name": "k"}})
    )
    assert env["HEARTH_FALLBACK_BASE_URL"] == "https://api.example.com/v1"
    assert env["HEARTH_FALLBACK_MODEL"] == "m"
    assert env["HEARTH_FALLBACK_WHILE_COLD"] == "Immediately"
    assert env["HEARTH_FALLBACK_HOLD"] == "30s"
    assert env["HEARTH_FALLBACK_WHEN_FULL"] == "true"
    assert env["HEARTH_FALLBACK_API_KEY"] == {
        "secretKeyRef": {"name": "k", "key": "apiKey", "optional": True}
    }
    internal = _env(service("big", {"service": "small"}))
    assert internal["HEARTH_FALLBACK_BASE_URL"] == "http://small.ml.svc/v1"
    assert internal["HEARTH_FALLBACK_MODEL"] == "small"
    assert "HEARTH_FALLBACK_API_KEY" not in internal


def test_a_refused_fallback_is_not_rendered() -> None:
    refused = fallbacks.without_fallback(service("big", {"service": "small"}))
    assert not any(name.startswith("HEARTH_FALLBACK") for name in _env(refused))
    assert not any(name.startswith("HEARTH_FALLBACK") for name in _env(service("big")))
