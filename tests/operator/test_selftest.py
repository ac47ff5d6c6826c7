"""`hearth selftest` (the chart's `helm test`) on a real kube-apiserver: it notices the operator's
reconciliation, fails clearly when there is none, and leaves nothing behind either way. (Its ready and
cleaned-up path needs a kubelet for the gateway pod: testing/helm/e2e.sh runs it on the test bed.)"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess


@pytest.fixture
def namespace(hearth_cluster: ControlPlane) -> str:
    name = f"selftest-{uuid.uuid4().hex[:6]}"
    hearth_cluster.kubectl("create", "namespace", name)
    return name


def selftest(plane: ControlPlane, namespace: str, *, seconds: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hearth",
            "selftest",
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={namespace}",
            f"--timeout={seconds}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def leftovers(plane: ControlPlane, namespace: str) -> str:
    found = plane.kubectl("get", "llmservices", "-n", namespace, "-o", "name").stdout
    return found + plane.kubectl("get", "inferenceruntime", "hearth-selftest", "--ignore-not-found").stdout


def test_selftest_fails_clearly_without_an_operator(hearth_cluster: ControlPlane, namespace: str) -> None:
    result = selftest(hearth_cluster, namespace, seconds=3)
    assert result.returncode == 1
    gateway = f"{namespace}/hearth-selftest-gateway"
    assert f"timed out after 3s waiting for the operator to create Deployment {gateway}" in result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(hearth_cluster, namespace) == ""


def test_selftest_sees_the_operator_make_the_gateway(
    start_operator: Callable[..., OperatorProcess], hearth_cluster: ControlPlane, namespace: str
) -> None:
    start_operator("--scaler-mode=builtin")
    result = selftest(hearth_cluster, namespace, seconds=5)
    assert f"the operator created Deployment {namespace}/hearth-selftest-gateway" in result.stdout
    # No kubelet runs the gateway pod here, so it is never ready: the test says so, and cleans up.
    assert result.returncode == 1
    assert f"waiting for gateway {namespace}/hearth-selftest-gateway to be ready" in result.stderr
    assert leftovers(hearth_cluster, namespace) == ""
