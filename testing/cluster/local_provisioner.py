#!/usr/bin/env python3
"""A dynamic volume provisioner for the one-node test bed, run by cluster.sh as a host process.

The node is this machine, so no helper pod is needed: for every Pending claim of a StorageClass whose
provisioner is ``hearth.dev/local-path`` (once the scheduler picked the node, for WaitForFirstConsumer)
it makes a directory under ``--root`` and creates a ``local`` PersistentVolume bound to that claim, with
node affinity to the node. A Released volume of ours with reclaim policy Delete loses its directory and is
deleted. It polls (``kubectl get -o json``) every ``--interval`` seconds: simple, and cheap at this size.

Standard library only (the host's Debian python3); talks to the API server through the version-matched
kubectl with its own kubeconfig (RBAC: cluster.sh binds ``system:hearth-local-provisioner``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROVISIONER = "hearth.dev/local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
HOSTNAME_LABEL = "kubernetes.io/hostname"

log = logging.getLogger("local-provisioner")


class Kube:
    def __init__(self, kubectl: str, kubeconfig: str) -> None:
        self._base = [kubectl, f"--kubeconfig={kubeconfig}", "--request-timeout=20s"]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._base, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )

    def items(self, *args: str) -> list[dict[str, Any]]:
        result = self.run("get", *args, "-o", "json")
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        return list(json.loads(result.stdout).get("items", []))


def _volume_name(claim: dict[str, Any]) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def wanted(claim: dict[str, Any], classes: dict[str, dict[str, Any]], node: str) -> bool:
    """Whether *claim* is ours to provision now."""
    spec, metadata = claim.get("spec", {}), claim["metadata"]
    if claim.get("status", {}).get("phase") != "Pending" or spec.get("volumeName"):
        return False
    storage_class = classes.get(spec.get("storageClassName") or "")
    if storage_class is None:
        return False
    if storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
        return (metadata.get("annotations") or {}).get(SELECTED_NODE) == node
    return True


def volume(claim: dict[str, Any], storage_class: dict[str, Any], *, path: Path, node: str) -> dict[str, Any]:
    metadata, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": _volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": spec["storageClassName"],
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": metadata["namespace"],
                "name": metadata["name"],
                "uid": metadata["uid"],
            },
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }


def provision(
    kube: Kube, claim: dict[str, Any], storage_class: dict[str, Any], *, root: Path, node: str
) -> None:
    path = root / _volume_name(claim)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # pods run as any user (the hearth images run as non-root)
    manifest = volume(claim, storage_class, path=path, node=node)
    result = kube.run("create", "-f", "-", stdin=json.dumps(manifest))
    where = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
    if result.returncode == 0:
        log.info("provisioned %s for claim %s at %s", manifest["metadata"]["name"], where, path)
    elif "AlreadyExists" not in result.stderr:
        log.warning("could not create the volume for claim %s: %s", where, result.stderr.strip())


def reclaim(kube: Kube, pv: dict[str, Any], *, root: Path) -> None:
    name = pv["metadata"]["name"]
    path = Path(pv.get("spec", {}).get("local", {}).get("path") or "")
    if path.parent != root:
        log.warning("not deleting %s: its path %s is outside %s", name, path, root)
        return
    shutil.rmtree(path, ignore_errors=True)
    result = kube.run("delete", "pv", name, "--wait=false")
    if result.returncode == 0:
        log.info("deleted released volume %s and %s", name, path)


def once(kube: Kube, *, root: Path, node: str) -> None:
    classes = {
        sc["metadata"]["name"]: sc
        for sc in kube.items("storageclasses")
        if sc.get("provisioner") == PROVISIONER
    }
    if not classes:
        return
    for claim in kube.items("persistentvolumeclaims", "--all-namespaces"):
        if wanted(claim, classes, node):
            provision(kube, claim, classes[claim["spec"]["storageClassName"]], root=root, node=node)
    for pv in kube.items("persistentvolumes"):
        ours = (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
        spec = pv.get("spec", {})
        if (
            ours
            and pv.get("status", {}).get("phase") == "Released"
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            reclaim(kube, pv, root=root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", required=True, help="the node's name (kubernetes.io/hostname)")
    parser.add_argument("--root", type=Path, required=True, help="where volume directories are made")
    parser.add_argument("--interval", type=float, default=1.0)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options.root.mkdir(parents=True, exist_ok=True)
    kube = Kube(options.kubectl, options.kubeconfig)
    log.info("provisioning %s volumes on node %s under %s", PROVISIONER, options.node, options.root)
    while True:
        try:
            once(kube, root=options.root.resolve(), node=options.node)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
            log.warning("pass failed: %s", error)
        time.sleep(options.interval)


if __name__ == "__main__":
    sys.exit(main())
