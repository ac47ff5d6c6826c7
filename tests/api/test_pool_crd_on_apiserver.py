"""The AcceleratorPool CRD and ``LLMService.spec.pool`` on a real kube-apiserver: defaults, refusals naming
the field, printer columns and ``kubectl explain`` text (issue 16)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hearth.common import bundle
from tests.api.manifests import MINIMAL_LLMSERVICE, with_changes
from tests.cluster.controlplane import ControlPlane

POOL: dict[str, Any] = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "AcceleratorPool",
    "metadata": {"name": "gpus"},
    "spec": {"resourceName": "nvidia.com/gpu", "devices": 2},
}


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(crds, "llmservices.serving.hearth.dev", "acceleratorpools.serving.hearth.dev")
    return control_plane


def _apply(cluster: ControlPlane, document: dict[str, Any], *, dry_run: bool = True) -> tuple[int, str]:
    args = ["apply", "-o", "json", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    result = cluster.kubectl(*args, stdin=yaml.safe_dump(document), check=False)
    return result.returncode, result.stdout if result.returncode == 0 else result.stderr


def test_a_pool_gets_its_defaults_and_is_cluster_scoped(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, POOL)
    assert code == 0, output
    stored = json.loads(output)
    assert "namespace" not in stored["metadata"]
    assert stored["spec"] == {
        "resourceName": "nvidia.com/gpu",
        "devices": 2,
        "minWarm": "2m",
        "idleGrace": "30s",
        "swapLimit": {"evictions": 4, "window": "10m"},
    }


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.devices", 0, ["spec.devices", "greater than or equal to 1"]),
        ("spec.resourceName", "gpu", ["spec.resourceName", "should match"]),
        ("spec.minWarm", "-1s", ["spec.minWarm", "minWarm must be at least 0s and at most 24h"]),
        ("spec.idleGrace", "25h", ["spec.idleGrace", "idleGrace must be at least 0s and at most 24h"]),
        ("spec.swapLimit.window", "0s", ["spec.swapLimit.window", "window must be longer than 0s"]),
        ("spec.swapLimit.evictions", 0, ["spec.swapLimit.evictions", "greater than or equal to 1"]),
    ],
)
def test_bad_pools_are_refused_naming_the_field(
    cluster: ControlPlane, path: str, value: Any, expected: list[str]
) -> None:
    code, output = _apply(cluster, with_changes(POOL, path, value))
    assert code != 0, f"the server accepted {path}={value!r}"
    for fragment in expected:
        assert fragment in output


def test_a_membership_gets_its_defaults(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, with_changes(MINIMAL_LLMSERVICE, "spec.pool", {"name": "gpus"}))
    assert code == 0, output
    assert json.loads(output)["spec"]["pool"] == {"name": "gpus", "priority": 0, "pinned": False}


@pytest.mark.parametrize(
    ("membership", "expected"),
    [
        ({"name": "GPUs"}, ["spec.pool.name", "should match"]),
        ({"name": "gpus", "priority": 1001}, ["spec.pool.priority", "less than or equal to 1000"]),
        ({"priority": 3}, ["spec.pool.name", "Required value"]),
    ],
)
def test_bad_memberships_are_refused_naming_the_field(
    cluster: ControlPlane, membership: dict[str, Any], expected: list[str]
) -> None:
    code, output = _apply(cluster, with_changes(MINIMAL_LLMSERVICE, "spec.pool", membership))
    assert code != 0, f"the server accepted spec.pool={membership!r}"
    for fragment in expected:
        assert fragment in output


def test_kubectl_get_acceleratorpools_shows_use_and_waiters(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, with_changes(POOL, "metadata.name", "columns"), dry_run=False)
    assert code == 0, output
    status = {
        "status": {
            "devicesInUse": 2,
            "waitingCount": 1,
            "recentEvictions": 3,
            "lastEviction": "default/a for default/c at 2026-12-01T12:00:00Z",
            "holders": [{"service": "default/a", "devices": 2, "priority": 0, "pinned": False}],
            "waiting": [{"service": "default/c", "devices": 1, "reason": "swap limit"}],
        }
    }
    cluster.kubectl(
        "patch",
        "acceleratorpool",
        "columns",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    header, row = cluster.kubectl("get", "acceleratorpools", "columns").stdout.splitlines()
    assert header.split() == ["NAME", "RESOURCE", "DEVICES", "IN-USE", "WAITING", "EVICTIONS", "AGE"]
    assert row.split()[:6] == ["columns", "nvidia.com/gpu", "2", "2", "1", "3"]
    wide = cluster.kubectl("get", "accpool", "columns", "-o", "wide").stdout.splitlines()[0].split()
    assert wide[-4:] == ["MIN-WARM", "IDLE-GRACE", "LAST-EVICTION", "AGE"]
    stored = json.loads(cluster.kubectl("get", "accpool", "columns", "-o", "json").stdout)["status"]
    assert stored["waiting"] == status["status"]["waiting"], "the status keeps who waits and why"
    assert "acceleratorpool.serving.hearth.dev/columns" in cluster.kubectl("get", "hearth").stdout


def test_kubectl_explain_describes_the_pool(cluster: ControlPlane) -> None:
    spec = cluster.kubectl("explain", "acceleratorpool.spec").stdout
    for field in ("devices", "idleGrace", "minWarm", "resourceName", "swapLimit"):
        assert f"  {field}\t" in spec, field
    assert "keeps its devices at least this long" in spec
    membership = cluster.kubectl("explain", "llmservice.spec.pool").stdout
    assert "Never evicted" in membership
    member = cluster.kubectl("explain", "llmservice.status.pool.state").stdout
    assert "Waiting (needs devices the pool cannot give yet)" in member
