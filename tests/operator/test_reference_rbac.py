"""The operator with only the reference chart's ClusterRole (SPEC §7.1), on a real API server: it names
every missing permission with the rule to add, becomes ready, and reconciles each LLMService with the
documented degradations (issue 19). Without a required permission it stays unready and says which."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.install import manifests
from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_operator_cluster import runtime_yaml, service_yaml, status_of

ALL = ["create", "delete", "get", "list", "patch", "update", "watch"]
#: The reference chart's manager ClusterRole, rule for rule (SPEC §7.1).
REFERENCE_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["persistentvolumeclaims", "services"], "verbs": ALL},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ALL},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ALL},
    {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ALL},
    {
        "apiGroups": ["serving.hearth.dev"],
        "resources": ["inferenceruntimes", "llmservices"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["serving.hearth.dev"],
        "resources": ["llmservices/status"],
        "verbs": ["get", "patch", "update"],
    },
]
#: What Hearth adds beyond it, as the operator must name it.
MISSING = [
    "core/serviceaccounts",
    "rbac.authorization.k8s.io/roles",
    "rbac.authorization.k8s.io/rolebindings",
    "discovery.k8s.io/endpointslices",
    "apps/deployments/scale",
    "policy/poddisruptionbudgets",
    "networking.k8s.io/networkpolicies",
    "core/pods",
    "core/events",
]


def _bind(plane: ControlPlane, name: str, rules: list[dict[str, Any]], tmp_path: Path) -> Path:
    """A ServiceAccount bound to a ClusterRole with *rules*, and a kubeconfig holding its token."""
    documents = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "default"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}],
        },
    ]
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    token = plane.kubectl("create", "token", name, "-n", "default").stdout.strip()
    kubeconfig = yaml.safe_load(plane.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


@pytest.fixture
def namespace(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", name)
    yield name
    hearth_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _operator(
    plane: ControlPlane, tmp_path: Path, kubeconfig: Path, *extra: str, wait: bool = True
) -> OperatorProcess:
    # The later --kubeconfig wins over the admin one OperatorProcess passes first.
    return OperatorProcess(plane, tmp_path / "operator.log", f"--kubeconfig={kubeconfig}", *extra, wait=wait)


def test_with_only_the_reference_cluster_role_it_names_what_is_missing_and_reconciles_degraded(
    hearth_cluster: ControlPlane, tmp_path: Path, namespace: str
) -> None:
    kubeconfig = _bind(hearth_cluster, f"ref-{namespace}", REFERENCE_RULES, tmp_path)
    runtime = f"rt-{namespace}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    operator = _operator(hearth_cluster, tmp_path, kubeconfig, "--gateway-replicas=2")
    try:
        log = operator.log_path.read_text()
        for permission in MISSING:
            line = next((line for line in log.splitlines() if f"{permission} " in line), None)
            assert line is not None, f"{permission} not named:\n{log}"
            assert "missing permission" in line
            assert "add_rule" in line
        assert "serving.hearth.dev/llmservices" not in log, "what the reference grants is not reported"
        hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("qwen", namespace, runtime))
        gateway = wait_for(
            lambda: get_json(hearth_cluster, "deployment", "qwen-gateway", "-n", namespace),
            what="the gateway",
        )
        for kind, name in (
            ("deployment", "qwen"),
            ("service", "qwen-backend"),
            ("service", "qwen"),
            ("persistentvolumeclaim", "qwen-cache"),
        ):
            assert wait_for(lambda k=kind, n=name: get_json(hearth_cluster, k, n, "-n", namespace), what=name)
        pod = gateway["spec"]["template"]["spec"]
        assert "serviceAccountName" not in pod, "the namespace's default ServiceAccount, as the reference"
        env = {entry["name"]: entry.get("value") for entry in pod["containers"][0]["env"]}
        assert env["HEARTH_READINESS"] == "probe"
        assert "HEARTH_BACKEND_DEPLOYMENT" not in env, "the default ServiceAccount cannot scale it"
        for kind in ("serviceaccount", "role", "rolebinding", "poddisruptionbudget"):
            assert get_json(hearth_cluster, kind, "qwen-gateway", "-n", namespace) is None
        status = wait_for(
            lambda: (s := status_of(hearth_cluster, namespace, "qwen")).get("phase") == "Loading" and s,
            what="Loading",
        )
        conditions = {condition["type"]: condition for condition in status["conditions"]}
        permissions = conditions["Permissions"]
        assert (permissions["status"], permissions["reason"]) == ("False", "MissingPermission")
        assert "default ServiceAccount" in permissions["message"]
        assert "skipped PodDisruptionBudget qwen-gateway" in permissions["message"]
        assert 'resources: ["poddisruptionbudgets"]' in permissions["message"]
        scaling = conditions["Scaling"]
        assert (scaling["status"], scaling["reason"]) == ("False", "MissingPermission"), "no KEDA: builtin"
        assert 'resources: ["pods"]' in scaling["message"]
        assert conditions["Ready"]["reason"] == "Deploying"
        assert operator.readyz() == (200, "ok")
    finally:
        operator.stop()
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)


def test_without_a_required_permission_it_stays_unready_and_says_which(
    hearth_cluster: ControlPlane, tmp_path: Path, namespace: str
) -> None:
    rules = [rule for rule in REFERENCE_RULES if rule["resources"] != ["llmservices/status"]]
    kubeconfig = _bind(hearth_cluster, f"nostatus-{namespace}", rules, tmp_path)
    operator = _operator(hearth_cluster, tmp_path, kubeconfig, wait=False)
    try:
        answer = wait_for(lambda: (r := operator.readyz()) and r[0] == 503 and r, what="an unready answer")
        assert (
            "missing required permissions: serving.hearth.dev/llmservices/status get,patch,update"
            in answer[1]
        )
        assert 'resources: ["llmservices/status"]' in answer[1]
        assert "serving.hearth.dev/llmservices/status" in operator.log_path.read_text()
    finally:
        operator.stop()


def test_with_the_reference_chart_rbac_and_keda_it_scales_and_leads_as_the_reference(
    hearth_cluster: ControlPlane, tmp_path: Path, namespace: str
) -> None:
    """The reference's own setup: its ClusterRole, its leader-election Role, and KEDA installed."""
    account = f"ref-keda-{namespace}"
    kubeconfig = _bind(hearth_cluster, account, REFERENCE_RULES, tmp_path)
    election = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "leader-election", "namespace": namespace},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ALL},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ALL},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "leader-election", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leader-election"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
    }
    hearth_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([election, binding]))
    crd = (Path(__file__).parent / "keda-crd.yaml").read_text()
    runtime = f"rt-{namespace}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    operator = None
    try:
        hearth_cluster.kubectl("apply", "-f", "-", stdin=crd)
        hearth_cluster.kubectl(
            "wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=30s"
        )
        operator = _operator(
            hearth_cluster,
            tmp_path,
            kubeconfig,
            "--leader-elect",
            f"--leader-election-namespace={namespace}",
        )
        log = operator.log_path.read_text()
        assert "coordination.k8s.io/leases" not in log, "the reference's leader-election Role is enough"
        wait_for(lambda: operator.metrics().get("hearth_operator_leader") == 1, what="leadership")
        hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("keda", namespace, runtime))
        scaled = wait_for(
            lambda: get_json(hearth_cluster, "scaledobject", "keda", "-n", namespace),
            timeout=40,
            what="the ScaledObject",
        )
        assert scaled["spec"]["triggers"][0]["type"] == "metrics-api"
        status = wait_for(
            lambda: (
                (s := status_of(hearth_cluster, namespace, "keda"))
                and any(c["type"] == "Scaling" and c["reason"] == "KEDA" for c in s.get("conditions", []))
                and s
            ),
            what="Scaling by KEDA",
        )
        conditions = {condition["type"]: condition for condition in status["conditions"]}
        assert conditions["Scaling"]["status"] == "True", "KEDA modes need none of the missing rules"
        assert "default ServiceAccount" in conditions["Permissions"]["message"]
    finally:
        if operator is not None:
            operator.stop()
        hearth_cluster.kubectl("delete", "-f", "-", stdin=crd, check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)


def test_with_its_own_cluster_role_a_new_service_needs_no_retry(
    hearth_cluster: ControlPlane, tmp_path: Path, namespace: str
) -> None:
    """Creating a RoleBinding is checked against the Role it grants (RBAC's escalation check), so the Role
    must exist first: applied side by side, the binding was refused with "not found" and the whole
    reconcile retried (the log line every new LLMService left on the test bed)."""
    kubeconfig = _bind(hearth_cluster, f"own-{namespace}", manifests.cluster_role_rules(), tmp_path)
    runtime = f"rt-{namespace}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    operator = _operator(hearth_cluster, tmp_path, kubeconfig)
    try:
        for name in ("one", "two", "three"):
            hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml(name, namespace, runtime))
        for name in ("one", "two", "three"):
            wait_for(
                lambda n=name: get_json(hearth_cluster, "rolebinding", f"{n}-gateway", "-n", namespace),
                what=f"{name}'s RoleBinding",
            )
            wait_for(lambda n=name: status_of(hearth_cluster, namespace, n).get("phase"), what="a status")
        log = operator.log_path.read_text().splitlines()
        # (Other tests' namespaces may still be going away, their services retrying.)
        retries = [line for line in log if "retrying" in line and f"llmservice={namespace}/" in line]
        assert retries == []
    finally:
        operator.stop()
