"""Every pod Hearth renders meets the restricted Pod Security Standard where the workload allows it (issue
27), proven by the API server itself: its PodSecurity admission refuses a non-compliant pod in a namespace
labelled ``pod-security.kubernetes.io/enforce: restricted``. Each rendered pod template is created there as a
Pod (server-side dry run; no kubelet needed). The documented exceptions (a runtime that names no non-root
user, host paths) are refused, naming the rule: the check can fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from hearth.api import scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.scalermodes import ScalerMode
from hearth.install import manifests as install_manifests
from hearth.render import plan, sharedgateway
from hearth.render.config import OperatorConfig
from tests.cluster.controlplane import ControlPlane
from tests.render.test_plan import RUNTIMES, _base_spec, _service

NAMESPACE = "pss-restricted"
#: The hearth image as the gateways' (the backend then drains through the hearth drainer sidecar).
HEARTH = OperatorConfig(scaler_mode=ScalerMode.BUILTIN, gateway_image="hearth.dev/hearth:test")
CONFIGS = [*(OperatorConfig(scaler_mode=mode) for mode in scalermodes.RESOLVED), HEARTH]


@pytest.fixture(scope="module")
def restricted(control_plane: ControlPlane) -> str:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    # No controller manager creates the ServiceAccounts that pods name (admission looks them up).
    for account in ("default", "qwen-gateway", "edge-gateway"):
        control_plane.kubectl("create", "serviceaccount", account, "-n", NAMESPACE, check=False)
    return NAMESPACE


def _pods(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod templates of a rendered Deployment or Job."""
    if document["kind"] in ("Deployment", "Job"):
        yield f"{document['kind']} {document['metadata']['name']}", document["spec"]["template"]["spec"]


def _rendered_pods(runtime: str, strategy: str, config: OperatorConfig) -> list[tuple[str, dict[str, Any]]]:
    service = _service(_base_spec(runtime, strategy), namespace=NAMESPACE)
    return [pod for step in plan.build(service, RUNTIMES, config).steps for pod in _pods(step.manifest)]


def _create(control_plane: ControlPlane, name: str, spec: dict[str, Any]) -> tuple[int, str]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }
    result = control_plane.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-", stdin=yaml.safe_dump(pod), check=False
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: f"{config.scaler_mode}-{config.gateway_image}")
def test_gateways_and_a_runtime_with_its_user_render_restricted_pods(
    control_plane: ControlPlane, restricted: str, config: OperatorConfig
) -> None:
    for strategy in ("NodeLocalPVC", "None"):
        pods = _rendered_pods("vllm-stub", strategy, config)
        kinds = {what.split()[0] for what, _ in pods}
        assert kinds == ({"Deployment", "Job"} if strategy == "NodeLocalPVC" else {"Deployment"})
        for what, spec in pods:
            code, error = _create(control_plane, "check", spec)
            assert code == 0, f"{what} ({strategy}, {config.scaler_mode}): {error}"


def test_a_shared_gateway_and_the_operator_render_restricted_pods(
    control_plane: ControlPlane, restricted: str
) -> None:
    shared = LLMGateway.model_validate(
        {
            "metadata": {"name": "edge", "namespace": NAMESPACE},
            "spec": {"selector": {}, "auth": {"keys": [{"secretName": "edge-keys"}]}},
        }
    )
    for config in CONFIGS:
        ((what, spec),) = _pods(sharedgateway.deployment(shared, config))
        code, error = _create(control_plane, "shared", spec)
        assert code == 0, f"{what}: {error}"
    operator = [
        pod
        for document in install_manifests.objects(install_manifests.InstallConfig(namespace=NAMESPACE))
        for pod in _pods(document)
    ]
    assert operator, "the operator Deployment is rendered"
    for what, spec in operator:
        # Its own account is not created here.
        code, error = _create(control_plane, "operator", {**spec, "serviceAccountName": "default"})
        assert code == 0, f"{what}: {error}"


@pytest.mark.parametrize(
    ("runtime", "strategy", "refused"),
    [
        # The official vLLM images run as root: the runtime names no user, so Hearth claims nothing.
        ("vllm-nvidia", "NodeLocalPVC", "runAsNonRoot != true"),
        # Host paths: the Ascend driver mounts and the HostPath cache, the documented exceptions.
        ("vllm-ascend-910b", "NodeLocalPVC", 'restricted volume type "hostPath"'),
        ("vllm-stub", "HostPath", 'restricted volume type "hostPath"'),
    ],
)
def test_the_documented_exceptions_are_refused_naming_the_rule(
    control_plane: ControlPlane, restricted: str, runtime: str, strategy: str, refused: str
) -> None:
    backend = dict(_rendered_pods(runtime, strategy, HEARTH))["Deployment qwen"]
    code, error = _create(control_plane, "backend", backend)
    assert code != 0, "the restricted namespace admitted a pod it should refuse"
    assert "violates PodSecurity" in error
    assert refused in error
    if runtime == "vllm-stub":
        assert "runAsNonRoot" not in error, "a runtime naming its user breaks only the host path rule"
        assert "allowPrivilegeEscalation" not in error
