"""The LLMGateway CRD and ``LLMService.status.gateway`` on a real kube-apiserver: a complete manifest kept
as written, refusals naming the field, printer columns and ``kubectl explain`` text (issue 24)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hearth.api.llmgateway import LLMGateway
from hearth.common import bundle
from tests.api.manifests import with_changes
from tests.cluster.controlplane import ControlPlane

FULL_GATEWAY: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMGateway",
    "metadata": {"name": "shared", "namespace": "default"},
    "spec": {
        "selector": {
            "matchLabels": {"team": "search"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
                {"key": "retired", "operator": "DoesNotExist"},
            ],
        },
        "replicas": 2,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "auth": {
            "keys": [
                {"secretName": "all-models"},
                {"secretName": "chat-only", "models": ["qwen3-8b"]},
            ]
        },
    },
}


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(crds, "llmservices.serving.hearth.dev", "llmgateways.serving.hearth.dev")
    return control_plane


def _apply(cluster: ControlPlane, document: dict[str, Any], *, dry_run: bool = True) -> tuple[int, str]:
    args = ["apply", "-o", "json", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    result = cluster.kubectl(*args, stdin=yaml.safe_dump(document), check=False)
    return result.returncode, result.stdout if result.returncode == 0 else result.stderr


def test_the_models_round_trip_a_complete_gateway() -> None:
    assert LLMGateway.model_validate(FULL_GATEWAY).spec.to_wire() == FULL_GATEWAY["spec"]


def test_every_gateway_field_is_accepted_and_preserved(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, FULL_GATEWAY)
    assert code == 0, output
    assert json.loads(output)["spec"] == FULL_GATEWAY["spec"]


def test_an_empty_selector_is_a_valid_gateway(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, {**FULL_GATEWAY, "spec": {"selector": {}}})
    assert code == 0, output
    assert json.loads(output)["spec"] == {"selector": {}}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.selector", None, ["spec.selector", "Required value"]),
        ("spec.replicas", 0, ["spec.replicas", "greater than or equal to 1"]),
        (
            "spec.selector.matchExpressions",
            [{"key": "tier", "operator": "In"}],
            ["spec.selector.matchExpressions[0].values", "non-empty for In and NotIn"],
        ),
        (
            "spec.selector.matchExpressions",
            [{"key": "tier", "operator": "Exists", "values": ["x"]}],
            ["spec.selector.matchExpressions[0].values", "absent for Exists"],
        ),
        (
            "spec.selector.matchExpressions",
            [{"key": "tier", "operator": "Like", "values": ["x"]}],
            ["spec.selector.matchExpressions[0].operator", "Unsupported value"],
        ),
        ("spec.auth.keys", [{"secretName": "Keys_v2"}], ["spec.auth.keys[0].secretName", "should match"]),
        ("spec.auth.keys", [{"models": ["a"]}], ["spec.auth.keys[0].secretName", "Required value"]),
        (
            "spec.auth.keys",
            [{"secretName": "k"}, {"secretName": "k", "models": ["a"]}],
            ["spec.auth.keys[1]", "Duplicate value"],
        ),
        ("spec.resources.limits", {"memory": "1GB"}, ["spec.resources.limits.memory"]),
        ("metadata.name", "Shared", ["metadata.name"]),
        ("metadata.name", "a" * 56, ["metadata.name", "at most 55 characters"]),
    ],
)
def test_bad_gateways_are_refused_naming_the_field(
    cluster: ControlPlane, path: str, value: Any, expected: list[str]
) -> None:
    code, output = _apply(cluster, with_changes(FULL_GATEWAY, path, value))
    assert code != 0, f"the server accepted {path}={value!r}"
    for fragment in expected:
        assert fragment in output, output


def test_kubectl_get_llmgateways_shows_models_ready_and_address(cluster: ControlPlane) -> None:
    document = with_changes(FULL_GATEWAY, "metadata.name", "columns")
    code, output = _apply(cluster, document, dry_run=False)
    assert code == 0, output
    status = {
        "status": {
            "models": ["a", "b"],
            "modelCount": 2,
            "readyReplicas": 1,
            "endpointURL": "http://columns.default.svc/v1",
        }
    }
    cluster.kubectl(
        "patch", "llmgateway", "columns", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    header, row = cluster.kubectl("get", "llmgw", "columns").stdout.splitlines()
    assert header.split() == ["NAME", "MODELS", "READY", "ADDRESS", "AGE"]
    assert row.split()[:4] == ["columns", "2", "1", "http://columns.default.svc/v1"]
    assert "llmgateway.serving.hearth.dev/columns" in cluster.kubectl("get", "hearth").stdout


def test_kubectl_explain_describes_the_gateway(cluster: ControlPlane) -> None:
    spec = cluster.kubectl("explain", "llmgateway.spec").stdout
    for field in ("auth", "replicas", "resources", "selector"):
        assert f"  {field}\t" in spec, field
    assert "no cross-namespace selection" in " ".join(spec.split())
    served_by = cluster.kubectl("explain", "llmservice.status.gateway").stdout
    assert "The LLMGateway serving this model" in " ".join(served_by.split())
