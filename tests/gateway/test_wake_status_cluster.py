"""The gateway's watch on its own LLMService on a real kube-apiserver, with only the Role the operator renders
for it: the wake's phase and the ETA's wake times follow what the operator writes into the status."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.common import bundle
from hearth.gateway.wake import wakestatus
from hearth.gateway.wake.progress import Phase
from hearth.kube.client import KubeClient
from hearth.render import gateway as gateway_render
from hearth.render.config import OperatorConfig
from tests.cluster.controlplane import ControlPlane

NAME = "qwen"


def _service(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}}, "runtime": {"name": "vllm"}},
    }


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(crds, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
    name = f"ws-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    for manifest in (_service(name), {**_service(name), "metadata": {"name": "other", "namespace": name}}):
        control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    return name


@pytest.fixture
async def gateway_client(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> AsyncIterator[KubeClient]:
    """A client holding the token of the gateway's ServiceAccount, bound to the Role Hearth renders."""
    service = loading.parse_object(_service(namespace), source="test")
    assert isinstance(service, LLMService)
    for manifest in gateway_render.rbac(service, OperatorConfig()):
        control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    account = f"{NAME}-gateway"
    token = control_plane.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    limited = tmp_path / "gateway.kubeconfig"
    limited.write_text(yaml.safe_dump(kubeconfig))
    client = await KubeClient.connect(kubeconfig=str(limited))
    yield client
    await client.close()


def _patch_status(plane: ControlPlane, namespace: str, status: dict[str, object]) -> None:
    plane.kubectl(
        "patch",
        "llmservice",
        NAME,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


async def _until(check: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(15):
        while not check():  # noqa: ASYNC110 - the state comes from a real apiserver's watch
            await asyncio.sleep(0.05)
    assert check(), what


async def test_the_gateway_follows_its_own_wake_with_only_its_rendered_role(
    control_plane: ControlPlane, namespace: str, gateway_client: KubeClient
) -> None:
    account = f"--as=system:serviceaccount:{namespace}:{NAME}-gateway"
    for target, allowed in ((NAME, "yes"), ("other", "no")):
        answer = control_plane.kubectl(
            "auth", "can-i", "watch", f"llmservices/{target}", "-n", namespace, account, check=False
        ).stdout.strip()
        assert answer == allowed, f"the gateway may watch llmservices/{target}: {answer}, expected {allowed}"

    status = wakestatus.ServiceStatus(gateway_client, namespace=namespace, name=NAME)
    phases: list[Phase] = []
    status.on_change(phases.append)
    task = asyncio.create_task(status.run())
    try:
        await asyncio.wait_for(status.informer.synced.wait(), 15)
        assert status.phase() is Phase.REQUESTED, "listed by name: no wake under way yet"
        assert status.wake_times() is None, "no wake history: no ETA"

        wake: dict[str, object] = {"startedAt": "2026-12-01T10:00:00.000Z"}
        for boundary, expected in (
            ({}, Phase.SCHEDULING),
            ({"unschedulable": True}, Phase.WAITING_FOR_CAPACITY),
            ({"boundAt": "2026-12-01T10:00:09.000Z"}, Phase.CREATING),
            ({"containersStartedAt": "2026-12-01T10:00:11.000Z"}, Phase.LOADING),
        ):
            wake.update(boundary)
            _patch_status(control_plane, namespace, {"currentWake": wake})
            await _until(lambda expected=expected: status.phase() is expected, f"phase {expected}")

        history = {"recentSeconds": [30.0, 50.0], "count": 2, "p50Seconds": 30.0, "p90Seconds": 50.0}
        _patch_status(control_plane, namespace, {"currentWake": None, "wakeHistory": history})
        await _until(lambda: status.wake_times() is not None, "the wake history")
        times = status.wake_times()
        assert times is not None
        assert (times.p50_s, times.p90_s) == (30.0, 50.0)
        assert phases == [
            Phase.REQUESTED,
            Phase.SCHEDULING,
            Phase.WAITING_FOR_CAPACITY,
            Phase.CREATING,
            Phase.LOADING,
            Phase.REQUESTED,
        ], "every change is told once, in order"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
