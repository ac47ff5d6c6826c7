"""The chart on a real kube-apiserver (its own, so no other test's CRDs are in the way): a first install
brings the CRDs and runtimes, an upgrade adopts the runtimes, an uninstall leaves only the CRDs and the
LLMServices in them, and CRDs applied before by kubectl are taken over as documented."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hearth.common import bundle
from tests.chart import helm
from tests.cluster import controlplane

#: No node runs the operator here; with 0 replicas `--wait` still waits for the CRDs to be established.
NO_OPERATOR = ("--wait", "--timeout=120s", "--set=operator.replicas=0")
RUNTIMES = sorted(
    yaml.safe_load(bundle.read_text("runtimes", name))["metadata"]["name"]
    for name in bundle.names("runtimes")
)
CRDS = sorted(name.removesuffix(".yaml") for name in bundle.names("crds"))
LLMSERVICE = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMService",
    "metadata": {"name": "survivor", "namespace": "default"},
    "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}}, "runtime": {"name": "vllm-stub"}},
}


@pytest.fixture(scope="module")
def plane() -> Iterator[controlplane.ControlPlane]:
    try:
        with controlplane.running(controller_manager=True) as running:
            yield running
    except controlplane.ControlPlaneError as error:
        pytest.fail(f"could not start the test control plane: {error}")


@pytest.fixture
def cluster(plane: controlplane.ControlPlane) -> Iterator[controlplane.ControlPlane]:
    """The control plane, left without Hearth (each test has its own Helm home: a cold discovery cache)."""
    yield plane
    plane.kubectl("delete", "crd", *CRDS, "--ignore-not-found", "--wait=true", timeout=120)


@pytest.fixture
def namespace(plane: controlplane.ControlPlane) -> Iterator[str]:
    name = f"hearth-chart-{uuid.uuid4().hex[:6]}"
    yield name
    plane.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


def _helm(plane: controlplane.ControlPlane, major: str, home: Path, *args: str, check: bool = True) -> str:
    result = helm.run(helm.binary(major), *args, f"--kubeconfig={plane.kubeconfig}", home=home, check=check)
    return result.stdout + result.stderr


def _names(plane: controlplane.ControlPlane, kind: str, *scope: str) -> list[str]:
    listed = json.loads(plane.kubectl("get", kind, *scope, "-o", "json").stdout)
    return sorted(item["metadata"]["name"] for item in listed["items"])


def _release_objects(plane: controlplane.ControlPlane) -> list[str]:
    """Everything labelled as part of a Helm release of this chart, CRDs aside."""
    kinds = "deployments,services,serviceaccounts,roles,rolebindings"
    found = _names(plane, kinds, "-A", "-l", "app.kubernetes.io/instance=hearth")
    found += _names(plane, "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance=hearth")
    if "inferenceruntimes.serving.hearth.dev" in _names(plane, "crd"):
        found += _names(plane, "inferenceruntimes")
    return found


@pytest.mark.parametrize("major", ["4", "3"])
def test_install_upgrade_uninstall_keeps_only_the_crds(
    major: str, cluster: controlplane.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    chart = str(helm.CHART)
    _helm(
        cluster,
        major,
        home,
        "install",
        "hearth",
        chart,
        "-n",
        namespace,
        "--create-namespace",
        "--set=metrics.enabled=true",
        *NO_OPERATOR,
    )
    # A first install creates the runtimes after their CRD is established (the post-install hook; README).
    assert _names(cluster, "inferenceruntimes") == RUNTIMES
    assert _names(cluster, "deployments", "-n", namespace) == ["hearth-operator"]
    _helm(
        cluster,
        major,
        home,
        "upgrade",
        "hearth",
        chart,
        "-n",
        namespace,
        "--reuse-values",
        "--set=gateway.replicas=2",
    )
    manifest = _helm(cluster, major, home, "get", "manifest", "hearth", "-n", namespace)
    adopted = [
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] == "InferenceRuntime"
    ]
    assert sorted(adopted) == RUNTIMES, "the upgrade makes the runtimes ordinary release objects"
    deployment = json.loads(
        cluster.kubectl("get", "deployment", "hearth-operator", "-n", namespace, "-o", "json").stdout
    )
    assert "--gateway-replicas=2" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "hearth-operator-metrics" in _names(cluster, "services", "-n", namespace), "values kept"
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(LLMSERVICE))

    output = _helm(cluster, major, home, "uninstall", "hearth", "-n", namespace)

    assert "kept due to the resource policy" in output
    assert _names(cluster, "crd") == CRDS
    assert _release_objects(cluster) == []
    assert _names(cluster, "llmservices", "-n", "default") == ["survivor"]


def test_a_reinstall_adopts_the_kept_crds(
    cluster: controlplane.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    chart = str(helm.CHART)
    _helm(cluster, "4", home, "install", "hearth", chart, "-n", namespace, "--create-namespace", *NO_OPERATOR)
    _helm(cluster, "4", home, "uninstall", "hearth", "-n", namespace)
    # The runtimes of a release uninstalled before any upgrade were hooks: Helm leaves them (README).
    assert _names(cluster, "inferenceruntimes") == RUNTIMES
    _helm(cluster, "4", home, "install", "hearth", chart, "-n", namespace, *NO_OPERATOR)
    manifest = _helm(cluster, "4", home, "get", "manifest", "hearth", "-n", namespace)
    kinds = [doc["kind"] for doc in yaml.safe_load_all(manifest) if doc]
    assert kinds.count("CustomResourceDefinition") == 4
    assert kinds.count("InferenceRuntime") == len(RUNTIMES), "API served: ordinary objects at once"
    _helm(cluster, "4", home, "uninstall", "hearth", "-n", namespace)
    assert _release_objects(cluster) == []


def test_crds_applied_by_kubectl_are_taken_over_with_force_conflicts(
    cluster: controlplane.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """SPEC §7.1: Helm 4 applies with server-side apply, which conflicts with fields another manager
    (here kubectl's client-side apply) set to other values; the README's recipe takes them over."""
    home = tmp_path / "home"
    chart = str(helm.CHART)
    old = yaml.safe_load(bundle.read_text("crds", "inferenceruntimes.serving.hearth.dev.yaml"))
    schema = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["description"] = "an older release's description"
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(old))
    args = ["install", "hearth", chart, "-n", namespace, "--create-namespace", *NO_OPERATOR]

    refused = _helm(cluster, "4", home, *args, check=False)
    assert "invalid ownership metadata" in refused
    conflict = _helm(cluster, "4", home, *args, "--take-ownership", check=False)
    assert 'conflict with "kubectl-client-side-apply"' in conflict
    _helm(cluster, "4", home, "uninstall", "hearth", "-n", namespace)
    _helm(cluster, "4", home, *args, "--take-ownership", "--force-conflicts")

    live = json.loads(
        cluster.kubectl("get", "crd", "inferenceruntimes.serving.hearth.dev", "-o", "json").stdout
    )
    description = live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"]
    assert description != "an older release's description"
    _helm(cluster, "4", home, "uninstall", "hearth", "-n", namespace)
