"""spec.scaling.externalScaler.tls (issue 27, the reference v0.4's field): in external-push mode the gateway
mounts the server Secret and serves mutual TLS, and the ScaledObject's trigger names the KEDA
authentication object; the other modes render nothing of it, and a model of a shared gateway is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.api import gatewayenv, loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.api.scalermodes import ScalerMode
from hearth.render import gateway, plan, scalers
from hearth.render.config import OperatorConfig
from hearth.render.errors import ReconcileError
from tests.api.manifests import FULL_RUNTIME, MINIMAL_LLMSERVICE, with_changes
from tests.cluster.controlplane import ControlPlane

GOLDEN = Path(__file__).parent / "golden-tls"
UPDATE = os.environ.get("HEARTH_UPDATE_GOLDEN") == "1"
RUNTIME = loading.parse_object(with_changes(FULL_RUNTIME, "metadata.name", "vllm-nvidia"), source="test")
TLS = {
    "serverSecretName": "qwen-scaler-tls",
    "authenticationRef": {"name": "keda-scaler-client", "kind": "ClusterTriggerAuthentication"},
}
#: The steps whose objects the field changes.
KINDS = ("Deployment", "ScaledObject", "Service")


def _service(tls: dict[str, Any] | None = TLS) -> LLMService:
    document = with_changes(MINIMAL_LLMSERVICE, "spec.scaling", {"min": 0, "max": 2, "target": 1})
    if tls is not None:
        document = with_changes(document, "spec.scaling.externalScaler", {"tls": tls})
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def _objects(service: LLMService, mode: ScalerMode) -> list[dict[str, Any]]:
    assert isinstance(RUNTIME, InferenceRuntime)
    config = OperatorConfig(gateway_image="hearth.dev/hearth:test", scaler_mode=mode)
    return [step.manifest for step in plan.build(service, [RUNTIME], config).steps]


def _gateway_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-gateway")
    ]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_external_push_with_tls_matches_its_golden() -> None:
    objects = [
        o
        for o in _objects(_service(), ScalerMode.EXTERNAL_PUSH)
        if o["kind"] in KINDS and (o["kind"] != "Deployment" or o["metadata"]["name"].endswith("-gateway"))
    ]
    rendered = yaml.safe_dump_all(objects, sort_keys=False)
    golden = GOLDEN / "external-push-tls.yaml"
    if UPDATE:
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{golden.name} differs: review, then HEARTH_UPDATE_GOLDEN=1"


def test_tls_mounts_the_server_secret_and_names_the_authentication() -> None:
    objects = _objects(_service(), ScalerMode.EXTERNAL_PUSH)
    pod = _gateway_pod(objects)
    volume = next(v for v in pod["volumes"] if v["name"] == gateway.SCALER_TLS_VOLUME)
    assert volume["secret"] == {"secretName": "qwen-scaler-tls", "optional": False}
    container = pod["containers"][0]
    assert {"name": gateway.SCALER_TLS_VOLUME, "mountPath": gateway.SCALER_TLS_DIR, "readOnly": True} in (
        container["volumeMounts"]
    )
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env[gatewayenv.SCALER_TLS_DIR.env] == gateway.SCALER_TLS_DIR
    (scaled,) = [o for o in objects if o["kind"] == "ScaledObject"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "external-push"
    assert trigger["authenticationRef"] == {
        "name": "keda-scaler-client",
        "kind": "ClusterTriggerAuthentication",
    }
    # The name KEDA checks the server certificate against.
    assert trigger["metadata"]["scalerAddress"] == "minimal-scaler.default.svc:9090"


def test_the_kind_defaults_to_a_namespaced_trigger_authentication() -> None:
    service = _service({"serverSecretName": "s", "authenticationRef": {"name": "a"}})
    (scaled,) = [o for o in _objects(service, ScalerMode.EXTERNAL_PUSH) if o["kind"] == "ScaledObject"]
    assert scaled["spec"]["triggers"][0]["authenticationRef"] == {
        "name": "a",
        "kind": "TriggerAuthentication",
    }


@pytest.mark.parametrize("mode", [ScalerMode.METRICS_API, ScalerMode.BUILTIN])
def test_modes_without_the_grpc_scaler_render_nothing_of_it(mode: ScalerMode) -> None:
    assert _objects(_service(), mode) == _objects(_service(None), mode)


def test_without_the_field_external_push_is_unchanged_plaintext() -> None:
    objects = _objects(_service(None), ScalerMode.EXTERNAL_PUSH)
    pod = _gateway_pod(objects)
    assert all(v["name"] != gateway.SCALER_TLS_VOLUME for v in pod["volumes"])
    (scaled,) = [o for o in objects if o["kind"] == "ScaledObject"]
    assert "authenticationRef" not in scaled["spec"]["triggers"][0]


def test_a_model_of_a_shared_gateway_cannot_ask_for_tls() -> None:
    builders = scalers.of(ScalerMode.EXTERNAL_PUSH)
    assert builders.shared_trigger is not None
    with pytest.raises(ReconcileError, match=r"spec.scaling.externalScaler.tls: .*LLMGateway shared"):
        builders.shared_trigger(_service(), "shared")
    assert builders.shared_trigger(_service(None), "shared")["metadata"]["model"] == "minimal"


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"authenticationRef": {"name": "a"}}, "serverSecretName"),
        ({"serverSecretName": "s"}, "authenticationRef"),
        ({"serverSecretName": "s", "authenticationRef": {"name": "a", "kind": "Secret"}}, "kind"),
        ({"serverSecretName": "Not_A_Name", "authenticationRef": {"name": "a"}}, "serverSecretName"),
    ],
)
def test_bad_tls_settings_are_refused_naming_the_field(tls: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _service(tls)


def test_the_tls_gateway_passes_server_validation_and_restricted(control_plane: ControlPlane) -> None:
    """The gateway Deployment with the scaler's Secret volume, two replicas, on a real kube-apiserver, in a
    namespace that enforces the restricted Pod Security Standard (a Secret volume is allowed there)."""
    namespace = "scaler-tls-check"
    control_plane.kubectl("create", "namespace", namespace, check=False)
    control_plane.kubectl(
        "label", "--overwrite", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    assert isinstance(RUNTIME, InferenceRuntime)
    config = OperatorConfig(
        gateway_image="hearth.dev/hearth:test", scaler_mode=ScalerMode.EXTERNAL_PUSH, gateway_replicas=2
    )
    service = _service()
    service = service.model_copy(
        update={"metadata": service.metadata.model_copy(update={"namespace": namespace})}
    )
    for step in plan.build(service, [RUNTIME], config).steps:
        manifest = step.manifest
        if manifest["kind"] == "ServiceAccount":
            control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
        if manifest["kind"] != "Deployment" or not manifest["metadata"]["name"].endswith("-gateway"):
            continue
        assert manifest["spec"]["replicas"] == 2
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tls-gateway", "namespace": namespace},
            "spec": manifest["spec"]["template"]["spec"],
        }
        for document in (manifest, pod):
            result = control_plane.kubectl(
                "create",
                "--dry-run=server",
                "-o",
                "name",
                "-f",
                "-",
                stdin=yaml.safe_dump(document),
                check=False,
            )
            assert result.returncode == 0, result.stderr
