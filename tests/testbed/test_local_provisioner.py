"""The test bed's volume provisioner (testing/cluster/local_provisioner.py) against a real API server and
controller-manager: a claim of its StorageClass gets a directory and a bound ``local`` volume; a released
volume loses both. (cluster.sh runs it as a host process; here one pass at a time is driven.)"""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import REPO, ControlPlane
from tests.operator.conftest import wait_for

NODE = "hearth-node"


def _module() -> ModuleType:
    path = REPO / "testing" / "cluster" / "local_provisioner.py"
    spec = importlib.util.spec_from_file_location("local_provisioner", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


provisioner = _module()


@pytest.fixture
def storage_class(control_plane: ControlPlane) -> str:
    name = f"local-{uuid.uuid4().hex[:6]}"
    document = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner.PROVISIONER,
        "reclaimPolicy": "Delete",
        # No scheduler runs here to pick a node, so the claim is provisioned at once.
        "volumeBindingMode": "Immediate",
    }
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
    return name


def _get(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_a_claim_gets_a_bound_local_volume_and_a_released_one_is_cleaned_up(
    control_plane: ControlPlane, storage_class: str, tmp_path: Path
) -> None:
    kube = provisioner.Kube(str(control_plane.bin_dir / "kubectl"), str(control_plane.kubeconfig))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "cache", "namespace": "default"},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    other = {**claim, "metadata": {"name": "other", "namespace": "default"}}
    other["spec"] = {**claim["spec"], "storageClassName": "someone-elses"}
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([claim, other]))
    provisioner.once(kube, root=tmp_path, node=NODE)
    bound = wait_for(
        lambda: (c := _get(control_plane, "pvc", "cache")) and c["status"].get("phase") == "Bound" and c,
        what="the claim to bind",
    )
    volume = _get(control_plane, "pv", bound["spec"]["volumeName"])
    assert volume is not None
    path = Path(volume["spec"]["local"]["path"])
    assert path.parent == tmp_path
    assert path.is_dir()
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [NODE]
    assert volume["spec"]["capacity"]["storage"] == "1Gi"
    other_claim = _get(control_plane, "pvc", "other")
    assert other_claim is not None
    assert other_claim["status"]["phase"] == "Pending", "not its StorageClass"
    provisioner.once(kube, root=tmp_path, node=NODE)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "one claim, one volume, however many passes"

    control_plane.kubectl("delete", "pvc", "cache", "other")
    wait_for(
        lambda: (
            (v := _get(control_plane, "pv", volume["metadata"]["name"]))
            and v["status"]["phase"] == "Released"
        ),
        what="the volume to be released",
    )
    provisioner.once(kube, root=tmp_path, node=NODE)
    assert not path.exists()
    wait_for(lambda: _get(control_plane, "pv", volume["metadata"]["name"]) is None, what="the volume deleted")


def test_wait_for_first_consumer_claims_wait_for_this_node() -> None:
    classes = {"c": {"volumeBindingMode": "WaitForFirstConsumer"}}
    claim: dict[str, Any] = {
        "metadata": {"annotations": {}},
        "spec": {"storageClassName": "c"},
        "status": {"phase": "Pending"},
    }
    assert not provisioner.wanted(claim, classes, NODE), "the scheduler has not picked a node yet"
    claim["metadata"]["annotations"][provisioner.SELECTED_NODE] = NODE
    assert provisioner.wanted(claim, classes, NODE)
    assert not provisioner.wanted(claim, classes, "another-node")
