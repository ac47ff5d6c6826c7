"""Applying and removing what `hearth install` manages, with progress a person can follow."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from hearth.install import manifests
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError

FIELD_MANAGER = "hearth-install"
Report = Callable[[str], None]


class InstallError(RuntimeError):
    """Something the cluster refused or that did not become ready in time."""


def _describe(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj['kind']} {where}{metadata['name']}"


async def install(
    client: KubeClient, config: manifests.InstallConfig, *, report: Report, wait_seconds: float | None
) -> None:
    """Server-side apply every object (idempotent); CRDs must be Established before anything uses them."""
    objects = manifests.objects(config)
    crds = [obj for obj in objects if obj["kind"] == "CustomResourceDefinition"]
    for obj in crds:
        await _apply(client, obj, report)
    for obj in crds:
        await _wait_established(client, obj["metadata"]["name"], report)
    for obj in objects[len(crds) :]:
        await _apply(client, obj, report)
    if wait_seconds is not None:
        await _wait_available(client, config.namespace, wait_seconds, report)


async def _apply(client: KubeClient, obj: dict[str, Any], report: Report) -> None:
    try:
        await client.apply(obj, field_manager=FIELD_MANAGER)
    except ApiError as error:
        raise InstallError(f"applying {_describe(obj)}: {error.message}") from None
    report(f"applied {_describe(obj)}")


async def _wait_established(client: KubeClient, name: str, report: Report, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        crd = await client.get(resources.CRD, name)
        conditions = (crd or {}).get("status", {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            report(f"CustomResourceDefinition {name} is established")
            return
        await asyncio.sleep(0.5)
    raise InstallError(f"CustomResourceDefinition {name} was not established within {within:.0f}s")


async def _wait_available(client: KubeClient, namespace: str, within: float, report: Report) -> None:
    report(f"waiting up to {within:.0f}s for the operator to become ready")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        deployment = await client.get(resources.DEPLOYMENT, manifests.NAME, namespace)
        if int((deployment or {}).get("status", {}).get("readyReplicas") or 0) > 0:
            report(f"Deployment {namespace}/{manifests.NAME} is ready")
            return
        await asyncio.sleep(1)
    raise InstallError(
        f"the operator was not ready within {within:.0f}s: "
        f"kubectl -n {namespace} describe deployment {manifests.NAME}"
    )


async def uninstall(
    client: KubeClient, config: manifests.InstallConfig, *, report: Report, remove_crds: bool
) -> None:
    """Delete what install made, the operator first; CRDs (and with them every LLMService) only if asked."""
    # Every optional object too (the metrics Service), whatever flags the install was run with.
    port = config.metrics_port or manifests.DEFAULT_METRICS_PORT
    everything = dataclasses.replace(config, metrics_port=port)
    for obj in reversed(manifests.objects(everything)):
        if obj["kind"] == "CustomResourceDefinition" and not remove_crds:
            continue
        rt = resources.of(obj)
        metadata = obj["metadata"]
        try:
            deleted = await client.delete(rt, metadata["name"], metadata.get("namespace"))
        except ApiError as error:
            if error.status == 404:  # e.g. a runtime whose CRD is already gone
                continue
            raise InstallError(f"deleting {_describe(obj)}: {error.message}") from None
        report(f"{'deleted' if deleted else 'already gone:'} {_describe(obj)}")
    if not remove_crds:
        report("kept the CRDs and every LLMService (pass --crds to remove them too)")
