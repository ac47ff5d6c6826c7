"""An LLMGateway's objects (golden YAML per scaler mode, one with keys and replicas), which LLMServices it
routes, its refusals, and what changes in the plan of an LLMService it routes (issue 24). A service no
LLMGateway routes renders exactly as before: test_golden.py's files are unchanged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.api import gatewayenv, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.api.scalermodes import ScalerMode
from hearth.render import names, plan, sharedgateway
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError
from tests.render.test_plan import RUNTIMES, _service

GOLDEN = Path(__file__).parent / "golden-shared"
UPDATE = os.environ.get("HEARTH_UPDATE_GOLDEN") == "1"
UID = "5d1c0a2e-3f4b-4c6d-8e9f-0a1b2c3d4e5f"
SPEC: dict[str, Any] = {
    "model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}},
    "runtime": {"name": "vllm-nvidia"},
    "scaling": {"min": 0, "max": 3, "target": 4},
    "cache": {"strategy": "None"},
}


def _config(mode: ScalerMode = ScalerMode.METRICS_API, **changes: Any) -> OperatorConfig:
    return OperatorConfig(gateway_image="hearth.dev/hearth:test", scaler_mode=mode, **changes)


def _gateway(spec: dict[str, Any] | None = None, name: str = "shared", namespace: str = "ml") -> LLMGateway:
    return LLMGateway.model_validate(
        {
            "apiVersion": "serving.hearth.dev/v1alpha1",
            "kind": "LLMGateway",
            "metadata": {"name": name, "namespace": namespace, "uid": UID},
            "spec": spec if spec is not None else {"selector": {"matchLabels": {"team": "search"}}},
        }
    )


def _labelled(name: str, labels: dict[str, str], *, pool: bool = False, namespace: str = "ml") -> LLMService:
    spec = {**SPEC, **({"pool": {"name": "gpus"}} if pool else {})}
    service = _service(spec, name=name, namespace=namespace)
    return service.model_copy(update={"metadata": service.metadata.model_copy(update={"labels": labels})})


SERVICES = [
    _labelled("chat", {"team": "search"}),
    _labelled("embed", {"team": "search"}),
    _labelled("other", {"team": "ads"}),
    _labelled("pooled", {"team": "search"}, pool=True),
    _labelled("elsewhere", {"team": "search"}, namespace="prod"),
]

GOLDEN_CASES: dict[str, tuple[dict[str, Any] | None, ScalerMode]] = {
    "metrics-api": (None, ScalerMode.METRICS_API),
    "builtin": (None, ScalerMode.BUILTIN),
    "external-push": (None, ScalerMode.EXTERNAL_PUSH),
    "keys-and-replicas": (
        {
            "selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["search"]}]},
            "replicas": 3,
            "resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"memory": "400Mi"}},
            "auth": {"keys": [{"secretName": "all"}, {"secretName": "chat.keys", "models": ["chat"]}]},
        },
        ScalerMode.BUILTIN,
    ),
}


def _documents(built: sharedgateway.SharedPlan | plan.Plan) -> list[dict[str, Any]]:
    return [{"step": step.reason.value, "mode": step.mode.value, **step.manifest} for step in built.steps]


def _check_golden(name: str, documents: list[dict[str, Any]]) -> None:
    rendered = yaml.safe_dump_all(documents, sort_keys=False)
    golden = GOLDEN / f"{name}.yaml"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file {golden.name}: run with HEARTH_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{golden.name} differs: review, then HEARTH_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_llmgateway(case: str) -> None:
    spec, mode = GOLDEN_CASES[case]
    _check_golden(
        f"llmgateway.{case}", _documents(sharedgateway.build(_gateway(spec), SERVICES, _config(mode)))
    )


@pytest.mark.parametrize("mode", scalermodes.RESOLVED, ids=str)
def test_golden_routed_llmservice(mode: ScalerMode) -> None:
    built = plan.build(SERVICES[0], RUNTIMES, _config(mode), gateways=["shared", "zeta"])
    _check_golden(f"routed-llmservice.{mode}", _documents(built))


def test_no_golden_file_is_left_unchecked() -> None:
    expected = {f"llmgateway.{case}.yaml" for case in GOLDEN_CASES}
    expected |= {f"routed-llmservice.{mode}.yaml" for mode in scalermodes.RESOLVED}
    assert {path.name for path in GOLDEN.iterdir()} == expected


def test_a_gateway_routes_the_matching_services_of_its_namespace_only() -> None:
    assert sharedgateway.build(_gateway(), SERVICES, _config()).routed == ("chat", "embed", "pooled")
    everything = sharedgateway.build(_gateway({"selector": {}}), SERVICES, _config())
    assert everything.routed == ("chat", "embed", "other", "pooled")


def test_the_first_routing_gateway_by_name_serves_a_service() -> None:
    gateways = [
        _gateway(name="zeta"),
        _gateway(name="alpha"),
        _gateway({"selector": {"matchLabels": {"x": "y"}}}),
    ]
    assert sharedgateway.serving(SERVICES[0], gateways, ["chat"]) == ["alpha", "zeta"]
    assert sharedgateway.serving(SERVICES[2], gateways, ["other"]) == []


def test_a_gateway_named_like_a_service_is_refused_and_serves_nothing() -> None:
    clash = _gateway(name="chat")
    with pytest.raises(ReconcileError, match="an LLMService named chat exists") as refused:
        sharedgateway.build(clash, SERVICES, _config())
    assert refused.value.reason is Reason.RENDER
    assert sharedgateway.serving(SERVICES[1], [clash], ["chat", "embed"]) == []


def test_external_push_runs_several_shared_gateway_replicas_that_sum_their_peers() -> None:
    built = sharedgateway.build(
        _gateway({"selector": {}, "replicas": 2}), SERVICES, _config(ScalerMode.EXTERNAL_PUSH)
    )
    (deployment,) = (step.manifest for step in built.steps if step.manifest["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    env = {
        entry["name"]: entry.get("value")
        for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # The replicas find each other through the EndpointSlices of the LLMGateway's own Service.
    assert env[gatewayenv.PEERS_SERVICE.env] == names.shared_gateway_service(
        deployment["metadata"]["labels"][names.LABEL_LLMGATEWAY]
    )


def test_without_gateway_rbac_a_shared_gateway_is_refused() -> None:
    with pytest.raises(ReconcileError) as refused:
        sharedgateway.build(_gateway(), SERVICES, _config(gateway_service_account=False))
    assert refused.value.reason is Reason.APPLY_GATEWAY_RBAC


def _role(built: sharedgateway.SharedPlan) -> dict[str, Any]:
    (role,) = (step.manifest for step in built.steps if step.manifest["kind"] == "Role")
    return role


def test_builtin_gateways_may_wake_exactly_the_routed_backends_that_are_not_pool_members() -> None:
    rules = _role(sharedgateway.build(_gateway(), SERVICES, _config(ScalerMode.BUILTIN)))["rules"]
    (wake,) = (rule for rule in rules if rule["resources"] == ["deployments/scale"])
    assert wake["resourceNames"] == ["chat", "embed"]
    nothing = _gateway({"selector": {"matchLabels": {"team": "none"}}})
    rules = _role(sharedgateway.build(nothing, SERVICES, _config(ScalerMode.BUILTIN)))["rules"]
    assert all(rule["resources"] != ["deployments/scale"] for rule in rules), "no names would mean all"


def test_a_routed_service_keeps_only_its_service_which_leads_to_the_first_gateway() -> None:
    built = plan.build(SERVICES[0], RUNTIMES, _config(), gateways=["shared", "zeta"])
    by_kind = {(step.manifest["kind"], step.manifest["metadata"]["name"]): step for step in built.steps}
    for kind, name in [
        ("Deployment", "chat-gateway"),
        ("ServiceAccount", "chat-gateway"),
        ("Role", "chat-gateway"),
        ("RoleBinding", "chat-gateway"),
        ("PodDisruptionBudget", "chat-gateway"),
        ("Service", "chat-scaler"),
    ]:
        assert by_kind[(kind, name)].mode is plan.Mode.DELETE, (kind, name)
    endpoint = by_kind[("Service", "chat")]
    assert endpoint.mode is plan.Mode.APPLY
    assert endpoint.manifest["spec"]["selector"] == names.shared_gateway_selector("shared")
    assert by_kind[("Deployment", "chat")].mode is plan.Mode.APPLY, "the backend is unchanged"


def test_a_routed_services_triggers_ask_the_shared_gateway_about_its_model() -> None:
    def trigger(mode: ScalerMode) -> dict[str, Any]:
        built = plan.build(SERVICES[0], RUNTIMES, _config(mode), gateways=["shared"])
        (scaled,) = (step.manifest for step in built.steps if step.manifest["kind"] == "ScaledObject")
        return dict(scaled["spec"]["triggers"][0]["metadata"])

    assert trigger(ScalerMode.METRICS_API)["url"] == "http://shared.ml.svc:8080/hearth/queue/chat"
    pushed = trigger(ScalerMode.EXTERNAL_PUSH)
    assert pushed["scalerAddress"] == "shared-scaler.ml.svc:9090"
    assert pushed["model"] == "chat"


def test_a_routed_backend_admits_the_routing_gateways_pods() -> None:
    built = plan.build(SERVICES[0], RUNTIMES, _config(network_policies=True), gateways=["a", "b"])
    (policy,) = (step.manifest for step in built.steps if step.manifest["kind"] == "NetworkPolicy")
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers == [{"podSelector": {"matchLabels": names.shared_gateway_selector(g)}} for g in ("a", "b")]
