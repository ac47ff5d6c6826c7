"""The gateway's Kubernetes side on a real kube-apiserver: EndpointSlice readiness and the 0->1 waker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from hearth.common.clock import ManualClock
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.scaler import peers
from hearth.gateway.wake import waker as waker_module
from hearth.gateway.wake.readiness import EndpointSliceReadiness
from hearth.gateway.wake.waker import Waker
from hearth.kube import resources
from hearth.kube.client import KubeClient
from tests.cluster.controlplane import ControlPlane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture
async def client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    kube = await KubeClient.connect(kubeconfig=str(control_plane.kubeconfig))
    yield kube
    await kube.close()


def _slice(name: str, service: str, addresses: list[tuple[str, bool]], port: int) -> str:
    return json.dumps(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in addresses],
        }
    )


async def test_endpointslice_readiness_follows_ready_endpoints(
    control_plane: ControlPlane, client: KubeClient, namespace: str
) -> None:
    readiness = EndpointSliceReadiness(client, namespace=namespace, service="qwen-backend")
    flips: list[bool] = []
    readiness.on_change(flips.append)
    changes: asyncio.Queue[bool] = asyncio.Queue()
    readiness.on_change(changes.put_nowait)
    task = asyncio.create_task(readiness.run())
    try:
        await asyncio.wait_for(readiness.informer.synced.wait(), 10)
        assert not readiness.ready
        waiter = asyncio.create_task(readiness.wait_ready(10))
        control_plane.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=_slice("qwen-backend-a", "qwen-backend", [("10.88.0.5", True), ("10.88.0.6", False)], 8000),
        )
        assert await waiter, "a waiter wakes when an endpoint becomes ready"
        assert readiness.endpoints() == ["http://10.88.0.5:8000"], (
            "not-ready (terminating) endpoints are skipped"
        )
        control_plane.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=_slice("other-a", "other-backend", [("10.88.0.9", True)], 8000),
        )
        control_plane.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=_slice("qwen-backend-a", "qwen-backend", [("10.88.0.6", False)], 8000),
        )
        # The watch of the real API server reports the change (the other Service's slice changes nothing).
        assert await asyncio.wait_for(changes.get(), 10) is True
        assert await asyncio.wait_for(changes.get(), 10) is False
        assert not readiness.ready
        assert readiness.endpoints() == []
        assert flips == [True, False]
    finally:
        task.cancel()


async def test_waker_scales_zero_to_one_once_for_many_cold_requests(
    control_plane: ControlPlane, client: KubeClient, namespace: str
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "qwen", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "qwen"}},
            "template": {
                "metadata": {"labels": {"app": "qwen"}},
                "spec": {"containers": [{"name": "serving", "image": "hearth.dev/vllm-stub:e2e"}]},
            },
        },
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    metrics = GatewayMetrics()
    clock = ManualClock()
    waker = Waker(client, namespace=namespace, deployment="qwen", metrics=metrics.route("qwen"), clock=clock)
    loop = asyncio.get_running_loop()
    for _ in range(200):
        waker.wake(loop.time())
    await waker.idle()
    for _ in range(50):
        waker.wake(loop.time())  # confirmed at >= 1 just now: no new request
    await waker.idle()
    scale = await client.get(resources.DEPLOYMENT, "qwen", namespace, subresource="scale")
    assert scale is not None
    assert scale["spec"]["replicas"] == 1
    text = metrics.exposition().decode()
    assert 'hearth_gateway_wake_requests_total{result="scaled"} 1.0' in text
    assert "hearth_gateway_wake_patch_seconds_count 1.0" in text
    # A larger scale set meanwhile (by the autoscaler) is never undone.
    control_plane.kubectl("scale", "deployment", "qwen", "-n", namespace, "--replicas=3")
    clock.advance(waker_module.CONFIRMED_SECONDS + 0.1)  # the confirmation expires: the next wake checks
    waker.wake(loop.time())
    await waker.idle()
    scale = await client.get(resources.DEPLOYMENT, "qwen", namespace, subresource="scale")
    assert scale is not None
    assert scale["spec"]["replicas"] == 3


class _Members(peers.Peers):
    """Records the members the watch reports instead of following them."""

    def __init__(self) -> None:
        super().__init__(identity="me")
        self.reported: asyncio.Queue[list[str]] = asyncio.Queue()

    def set_members(self, urls: list[str]) -> None:
        self.reported.put_nowait(urls)


async def test_peer_replicas_are_every_endpoint_of_the_gateway_service(
    control_plane: ControlPlane, client: KubeClient, namespace: str
) -> None:
    """external-push's peers (issue 27): every endpoint of the gateway's own Service, ready or not (a
    replica starting or draining still reports its demand), from a watch on a real API server."""
    members = _Members()
    watch = peers.SliceMembers(client, members, namespace=namespace, service="qwen")
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.informer.synced.wait(), 10)
        slices = [
            ("qwen-a", "qwen", [("10.88.0.5", True), ("10.88.0.6", False)]),
            ("backend-a", "qwen-backend", [("10.88.0.7", True)]),  # another Service: not a peer
        ]
        for name, service, addresses in slices:
            control_plane.kubectl(
                "apply", "-n", namespace, "-f", "-", stdin=_slice(name, service, addresses, 8080)
            )
        while (urls := await asyncio.wait_for(members.reported.get(), 10)) != [
            "http://10.88.0.5:8080",
            "http://10.88.0.6:8080",
        ]:
            assert "http://10.88.0.7:8080" not in urls
        control_plane.kubectl("delete", "endpointslice", "qwen-a", "-n", namespace)
        while await asyncio.wait_for(members.reported.get(), 10):
            pass  # until the deletion reports no member at all
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
