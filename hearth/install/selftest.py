"""Proof that an installed operator reconciles (``hearth selftest``, the Helm chart's test hook).

It applies a throwaway InferenceRuntime and an LLMService pinned to it, waits until the operator has made
the LLMService's gateway Deployment and that gateway is ready, then deletes both and waits until the
gateway is gone again. Nothing of it can reach an accelerator: the runtime asks for a device resource no
node has, and its priority is the lowest possible, so it never wins another LLMService's selection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.render import names

FIELD_MANAGER = "hearth-selftest"
API = "serving.hearth.dev/v1alpha1"
#: No node advertises it, so the backend pod (if the Deployment starts at one replica) stays Pending.
UNSCHEDULABLE = "hearth.dev/selftest-unschedulable"
LOWEST_PRIORITY = -(2**31)
LABELS = {"app.kubernetes.io/part-of": "hearth", "app.kubernetes.io/component": "selftest"}
Report = Callable[[str], None]


class SelftestError(RuntimeError):
    """The operator did not do what an installed operator must do, in time."""


def runtime(name: str, *, image: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceRuntime",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "vendor": "generic",
            "priority": LOWEST_PRIORITY,
            "container": {"image": image, "args": ["stub", "--port=8000"]},
            "accelerator": {"resourceName": UNSCHEDULABLE},
        },
    }


def service(name: str, *, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
        "spec": {
            "model": {"source": {"uri": "hf://hearth/selftest"}},
            "runtime": {"name": name},
            # No cache claim to provision, and nothing to scale up.
            "cache": {"strategy": "None"},
            "scaling": {"min": 0, "max": 1},
        },
    }


async def run(
    client: KubeClient, *, namespace: str, name: str, image: str, within: float, report: Report
) -> None:
    """Raise :class:`SelftestError` unless the gateway appears, gets ready, and goes with its LLMService."""
    gateway = names.gateway(name)
    try:
        await client.apply(runtime(name, image=image), field_manager=FIELD_MANAGER)
        await client.apply(service(name, namespace=namespace), field_manager=FIELD_MANAGER)
        report(f"applied InferenceRuntime {name} and LLMService {namespace}/{name}")
        started = time.monotonic()
        await _wait(
            f"the operator to create Deployment {namespace}/{gateway}",
            lambda: _exists(client, gateway, namespace),
            within,
        )
        report(f"the operator created Deployment {namespace}/{gateway} in {time.monotonic() - started:.1f}s")
        await _wait(
            f"gateway {namespace}/{gateway} to be ready", lambda: _ready(client, gateway, namespace), within
        )
        report(f"gateway {namespace}/{gateway} is ready after {time.monotonic() - started:.1f}s")
    finally:
        await client.delete(resources.LLMSERVICE, name, namespace)
        await client.delete(resources.INFERENCE_RUNTIME, name)
    await _wait(
        f"Deployment {namespace}/{gateway} to go with its LLMService",
        lambda: _gone(client, gateway, namespace),
        within,
    )
    report(f"deleted LLMService {namespace}/{name}: its gateway is gone")


async def _wait(what: str, check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SelftestError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(1)


async def _exists(client: KubeClient, name: str, namespace: str) -> bool:
    return await client.get(resources.DEPLOYMENT, name, namespace) is not None


async def _ready(client: KubeClient, name: str, namespace: str) -> bool:
    deployment = await client.get(resources.DEPLOYMENT, name, namespace)
    return int((deployment or {}).get("status", {}).get("readyReplicas") or 0) > 0


async def _gone(client: KubeClient, name: str, namespace: str) -> bool:
    return not await _exists(client, name, namespace)
