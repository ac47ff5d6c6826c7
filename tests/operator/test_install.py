"""``hearth install`` / ``uninstall`` on a real kube-apiserver, and the installed RBAC being exactly enough:
the operator runs with a real token of the installed ServiceAccount and reconciles an LLMService."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hearth.install import manifests
from tests.cluster.controlplane import ControlPlane, free_port
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_metrics_secure import get_metrics, service_account_token
from tests.operator.test_operator_cluster import runtime_yaml, service_yaml

StartOperator = Callable[..., OperatorProcess]
NAMESPACE = "hearth-install-test"


def hearth(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hearth",
            *args,
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={NAMESPACE}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dry_run_prints_valid_objects(control_plane: ControlPlane) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hearth", "install", "--dry-run", "--image", "hearth.dev/hearth:t"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    documents = list(yaml.safe_load_all(result.stdout))
    kinds = [document["kind"] for document in documents]
    assert kinds[:2] == ["CustomResourceDefinition", "CustomResourceDefinition"], "CRDs first"
    assert kinds[-1] == "Deployment"
    deployment = documents[-1]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "hearth.dev/hearth:t"
    assert "--gateway-image=hearth.dev/hearth:t" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert not any(arg.startswith("--metrics-bind-address") for arg in container["args"]), "metrics off"


def test_metrics_port_serves_secure_metrics_behind_a_service() -> None:
    objects = manifests.objects(manifests.InstallConfig(metrics_port=8443))
    service = next(obj for obj in objects if obj["metadata"]["name"] == "hearth-operator-metrics")
    deployment = objects[-1]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-bind-address=:8443" in container["args"]
    assert "--no-metrics-secure" not in container["args"], "HTTPS with token checks, as the reference"
    assert {"name": "metrics", "containerPort": 8443, "protocol": "TCP"} in container["ports"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("https", 8443, "metrics")


def can_i(plane: ControlPlane, account: str, verb: str, resource: str) -> str:
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    return plane.kubectl(
        "auth", "can-i", verb, resource, *extra, "-A", f"--as={account}", check=False
    ).stdout.strip()


def test_install_is_idempotent_rbac_is_enough_and_uninstall_keeps_crds(
    control_plane: ControlPlane, start_operator: StartOperator, tmp_path: Path
) -> None:
    first = hearth(control_plane, "install", "--image=hearth.dev/hearth:test")
    assert first.returncode == 0, first.stderr
    assert "CustomResourceDefinition llmservices.serving.hearth.dev is established" in first.stdout
    again = hearth(control_plane, "install", "--image=hearth.dev/hearth:test")
    assert again.returncode == 0, again.stderr
    assert get_json(control_plane, "deployment", "hearth-operator", "-n", NAMESPACE) is not None
    assert get_json(control_plane, "inferenceruntime", "vllm-stub") is not None

    account = f"system:serviceaccount:{NAMESPACE}:hearth-operator"
    for verb, resource in [
        ("watch", "llmservices.serving.hearth.dev"),
        ("patch", "llmservices.serving.hearth.dev/status"),
        ("create", "deployments.apps"),
        ("update", "deployments.apps/scale"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("list", "pods"),
        ("create", "events"),
        ("create", "poddisruptionbudgets.policy"),
        ("create", "networkpolicies.networking.k8s.io"),
        ("create", "tokenreviews.authentication.k8s.io"),
        ("create", "subjectaccessreviews.authorization.k8s.io"),
    ]:
        assert can_i(control_plane, account, verb, resource) == "yes", f"{verb} {resource}"
    for verb, resource in [
        ("get", "secrets"),
        ("list", "nodes"),
        ("delete", "namespaces"),
        ("create", "clusterroles"),
    ]:
        assert can_i(control_plane, account, verb, resource) == "no", f"{verb} {resource}"

    # The real proof: the operator, with only the installed ServiceAccount's token, reconciles everything.
    token = control_plane.kubectl("create", "token", "hearth-operator", "-n", NAMESPACE).stdout.strip()
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    limited = tmp_path / "operator.kubeconfig"
    limited.write_text(yaml.safe_dump(kubeconfig))
    namespace = f"inst-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    metrics_port = free_port()
    start_operator(
        f"--kubeconfig={limited}",
        f"--leader-election-namespace={NAMESPACE}",
        "--leader-elect",
        "--scaler-mode=builtin",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        "--metrics-secure",
    )
    # Secure metrics with only the installed permissions: the reviews work, and the installed reader role
    # is what lets a scraper in.
    control_plane.kubectl(
        "create",
        "clusterrolebinding",
        "install-test-scraper",
        f"--clusterrole={manifests.METRICS_READER}",
        "--serviceaccount=default:install-scraper",
        check=False,
    )
    scraper = service_account_token(control_plane, "install-scraper")
    status, body = get_metrics(metrics_port, scraper)
    assert status == 200, body
    control_plane.kubectl("apply", "-f", "-", stdin=service_yaml("rbac", namespace, runtime))
    wait_for(
        lambda: (
            (get_json(control_plane, "llmservice", "rbac", "-n", namespace) or {})
            .get("status", {})
            .get("phase")
            == "Loading"
        ),
        timeout=60,
        what="a reconcile with only the installed permissions",
    )
    assert get_json(control_plane, "role", "rbac-gateway", "-n", namespace) is not None

    removed = hearth(control_plane, "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert "kept the CRDs" in removed.stdout
    assert get_json(control_plane, "crd", "llmservices.serving.hearth.dev") is not None
    assert get_json(control_plane, "clusterrole", "hearth-operator") is None
    assert get_json(control_plane, "inferenceruntime", "vllm-stub") is None
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    control_plane.kubectl("delete", "inferenceruntime", runtime, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    # external-push with several gateways is no longer refused (issue 27): a bad count still is, before any
    # cluster is asked.
    [(["--gateway-replicas=0"], "x>=1"), (["--scaler-mode=keda"], "is not one of")],
)
def test_install_refuses_bad_flags(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hearth", "install", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
