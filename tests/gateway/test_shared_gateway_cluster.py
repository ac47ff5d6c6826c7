"""A shared gateway (one LLMGateway, many LLMServices) on a real kube-apiserver, with only the Role the
operator renders for it: routes follow the watched objects, requests are routed by their body's model,
keys are limited to models, and nothing wakes a model but a request for it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from hearth.api import loading, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.common import bundle, durations, netaddr
from hearth.gateway import server
from hearth.gateway.front import shared
from hearth.gateway.settings import GatewaySettings
from hearth.gateway.wake import readiness
from hearth.kube.client import KubeClient
from hearth.render import sharedgateway
from hearth.render.config import OperatorConfig
from tests.cluster.controlplane import ControlPlane
from tests.gateway.conftest import running_stub

GATEWAY = "front"
#: The address the test's EndpointSlices give a ready backend pod. The API server refuses loopback
#: addresses in EndpointSlices, so the gateway under test reads this one as 127.0.0.1, where the stub runs.
POD_IP = "10.88.0.5"
ALL_KEY = "sk-all-models"
QWEN_KEY = "sk-qwen-only"
CHAT = "/v1/chat/completions"


def _service(namespace: str, name: str, *, shared_label: bool = True, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"tier": "shared"} if shared_label else {"tier": "private"},
        },
        "spec": {
            "model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}},
            "runtime": {"name": "vllm"},
            **spec,
        },
    }


def _gateway(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMGateway",
        "metadata": {"name": GATEWAY, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"tier": "shared"}},
            "auth": {
                "keys": [
                    {"secretName": "all-models"},
                    {"secretName": "qwen-only", "models": ["qwen"]},
                ]
            },
        },
    }


def _backend(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "serving", "image": "hearth.dev/vllm-stub:e2e"}]},
            },
        },
    }


def _slice(namespace: str, model: str, url: str | None) -> dict[str, Any]:
    """The backend Service's EndpointSlice as the EndpointSlice controller would write it: ready at *url*
    (a stub on loopback), or with no endpoint."""
    port = int(url.rsplit(":", 1)[1]) if url else 8000
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{model}-backend-x",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": f"{model}-backend",
                "serving.hearth.dev/llmservice": model,
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [POD_IP], "conditions": {"ready": True}}] if url else [],
    }


def _apply(plane: ControlPlane, manifest: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


async def _until(condition: Callable[[], bool], *, within: float = 10, what: str) -> None:
    """Wait for the real API server's watch to deliver (real time: an external process)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


def _replicas(plane: ControlPlane, namespace: str, name: str) -> int:
    out = plane.kubectl("get", "deployment", name, "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    return int(out.stdout.strip() or 0)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> str:
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(
        crds,
        "llmservices.serving.hearth.dev",
        "llmgateways.serving.hearth.dev",
        "inferenceruntimes.serving.hearth.dev",
    )
    name = f"sg-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    for model in ("qwen", "llama"):
        _apply(control_plane, _service(name, model))
        _apply(control_plane, _backend(name, model))
    _apply(control_plane, _service(name, "private", shared_label=False))
    _apply(control_plane, _backend(name, "private"))
    _apply(control_plane, _gateway(name))
    return name


@pytest.fixture
def key_sets(tmp_path: Path) -> Path:
    """The two key Secrets as the kubelet mounts them, one folder per Secret."""
    root = tmp_path / "api-key-sets"
    for secret, key in (("all-models", ALL_KEY), ("qwen-only", QWEN_KEY)):
        (root / secret).mkdir(parents=True)
        (root / secret / "key").write_text(key)
    return root


@pytest.fixture
async def gateway_client(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> AsyncIterator[KubeClient]:
    """A client holding the token of the shared gateway's ServiceAccount, bound to the Role Hearth renders."""
    gateway_obj = LLMGateway.model_validate(_gateway(namespace))
    routed = []
    for model in ("qwen", "llama"):
        service = loading.parse_object(_service(namespace, model), source="test")
        assert isinstance(service, LLMService)
        routed.append(service)
    config = OperatorConfig(scaler_mode=scalermodes.ScalerMode.BUILTIN)
    for manifest in sharedgateway.rbac(gateway_obj, routed, config):
        _apply(control_plane, manifest)
    token = control_plane.kubectl("create", "token", f"{GATEWAY}-gateway", "-n", namespace).stdout.strip()
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": token}
    limited = tmp_path / "gateway.kubeconfig"
    limited.write_text(yaml.safe_dump(kubeconfig))
    client = await KubeClient.connect(kubeconfig=str(limited))
    yield client
    await client.close()


class Shared:
    def __init__(self, url: str, assembly: server.Assembly, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.assembly = assembly
        self.http = http

    @property
    def table(self) -> shared.SharedTable:
        table = self.assembly.gateway.table
        assert isinstance(table, shared.SharedTable)
        return table

    def models(self) -> list[str]:
        return sorted(route.model for route in self.table.routes())

    async def get(self, path: str, key: str = ALL_KEY) -> tuple[int, Any]:
        async with self.http.get(self.url + path, headers={"Authorization": f"Bearer {key}"}) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, body: bytes | dict[str, Any], key: str = ALL_KEY) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with self.http.post(self.url + CHAT, data=data, headers=headers) as response:
            return response.status, await response.json(content_type=None)


@asynccontextmanager
async def running_shared(client: KubeClient, namespace: str, key_sets: Path) -> AsyncIterator[Shared]:
    settings = GatewaySettings(
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        drain_delay=durations.Duration(0),
        namespace=namespace,
        llmgateway=GATEWAY,
        api_key_sets_dir=str(key_sets),
        scaler_mode=scalermodes.ScalerMode.BUILTIN,
        progress_interval=durations.Duration.parse("200ms"),
    )
    async with (
        server.build(settings, client=client) as assembly,
        assembly.serving() as url,
        aiohttp.ClientSession() as http,
    ):
        running = Shared(url, assembly, http)
        await _until(lambda: running.table.ready, what="the shared gateway's watches listed")
        await _until(lambda: running.models() == ["llama", "qwen"], what="the two selected models routed")
        yield running


@pytest.fixture
async def front(
    gateway_client: KubeClient, namespace: str, key_sets: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Shared]:
    read = readiness.slice_endpoints

    def on_loopback(item: dict[str, Any], *, port_name: str) -> list[str]:
        return [url.replace(POD_IP, "127.0.0.1") for url in read(item, port_name=port_name)]

    monkeypatch.setattr(readiness, "slice_endpoints", on_loopback)
    async with running_shared(gateway_client, namespace, key_sets) as running:
        yield running


async def test_lists_the_selected_models_cold_and_wakes_none(
    control_plane: ControlPlane, namespace: str, front: Shared
) -> None:
    async with front.http.get(front.url + "/healthz") as health:
        assert health.status == 200
    client = openai.AsyncOpenAI(base_url=front.url + "/v1", api_key=ALL_KEY, max_retries=0)
    listed = await client.models.list()
    assert [model.id for model in listed.data] == ["llama", "qwen"], "the unselected service is not listed"
    assert all(model.model_extra == {"hearth": {"state": "cold"}} for model in listed.data)
    status, one = await front.get("/v1/models/qwen")
    assert (status, one["id"], one["hearth"]["state"]) == (200, "qwen", "cold")
    status, _ = await front.get("/v1/models/private")
    assert status == 404
    await asyncio.sleep(0.5)
    assert [_replicas(control_plane, namespace, name) for name in ("qwen", "llama", "private")] == [0, 0, 0]
    assert all(route.demand.value() == 0 for route in front.table.routes())


async def test_a_key_limited_to_one_model_sees_only_it(front: Shared) -> None:
    status, listed = await front.get("/v1/models", key=QWEN_KEY)
    assert (status, [model["id"] for model in listed["data"]]) == (200, ["qwen"])
    for refused in (
        await front.get("/v1/models/llama", key=QWEN_KEY),
        await front.post({"model": "llama", "messages": []}, key=QWEN_KEY),
        await front.post({"model": "no-such-model", "messages": []}, key=QWEN_KEY),
    ):
        # The same answer as for a model that does not exist: the key learns nothing of the others.
        assert refused[0] == 404
        assert refused[1]["error"]["code"] == "model_not_found"
    llama = front.table.get("llama")
    assert llama is not None
    assert llama.demand.value() == 0, "a refused request raised no demand"
    status, body = await front.get("/v1/models", key="sk-wrong")
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")


async def test_bad_bodies_get_a_400_naming_the_problem_and_wake_nothing(
    control_plane: ControlPlane, namespace: str, front: Shared
) -> None:
    cases = {
        b"": "no body",
        b"{not json": "not valid JSON",
        b'["qwen"]': "JSON object",
        b'{"messages": []}': 'no "model"',
        b'{"model": 7}': "must be a string",
        b'{"model": "qwen", "model": "llama"}': "more than once",
        b'{"model": "qwen", "mod\\u0065l": "llama"}': "more than once",
        json.dumps({"model": "q" * 10_000_000}).encode(): "at most 256",
    }
    for body, expected in cases.items():
        status, answer = await front.post(body)
        assert status == 400, body[:40]
        assert expected in answer["error"]["message"], answer
        assert answer["error"]["code"] == "invalid_model"
    await asyncio.sleep(0.3)
    assert [_replicas(control_plane, namespace, name) for name in ("qwen", "llama")] == [0, 0]


async def test_a_cold_model_is_held_woken_and_streamed_while_the_other_stays_cold(
    control_plane: ControlPlane, namespace: str, front: Shared
) -> None:
    async with running_stub() as stub:
        body = {"model": "qwen", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"Authorization": f"Bearer {QWEN_KEY}"}
        async with front.http.post(front.url + CHAT, json=body, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Hearth-Cold-Start"] == "true"
            first = await response.content.readuntil(b"\n\n")
            assert first.startswith(b": hearth "), "held with a progress comment"
            # Builtin mode: the gateway scaled the model's own backend 0 -> 1, and only that one.
            await _until(lambda: _replicas(control_plane, namespace, "qwen") == 1, what="qwen woken")
            assert _replicas(control_plane, namespace, "llama") == 0
            _, listed = await front.get("/v1/models")
            states = {model["id"]: model["hearth"]["state"] for model in listed["data"]}
            assert states == {"qwen": "waking", "llama": "cold"}
            _apply(control_plane, _slice(namespace, "qwen", stub))
            rest = await response.read()
        assert b"data: [DONE]" in rest
        assert b'"phase":"ready"' in rest
        _status, listed = await front.get("/v1/models")
        states = {model["id"]: model["hearth"]["state"] for model in listed["data"]}
        assert states == {"qwen": "ready", "llama": "cold"}
        # A warm request through the real openai client, and the per-model demand the autoscaler reads.
        client = openai.AsyncOpenAI(base_url=front.url + "/v1", api_key=ALL_KEY, max_retries=0)
        answer = await client.chat.completions.create(
            model="qwen", messages=[{"role": "user", "content": "x"}]
        )
        assert answer.choices[0].message.content
        async with front.http.get(front.url + "/hearth/queues") as queues:
            assert set((await queues.json())["models"]) == {"qwen", "llama"}
        async with front.http.get(front.url + "/hearth/queue/llama") as queue:
            assert (await queue.json(content_type=None)) == {"pending": 0}
        metrics = front.assembly.metrics.exposition().decode()
        assert 'hearth_gateway_requests_total{code="200",model="qwen"}' in metrics


async def test_routes_follow_labels_and_deletion_within_seconds(
    control_plane: ControlPlane, namespace: str, front: Shared
) -> None:
    control_plane.kubectl("label", "llmservice", "private", "-n", namespace, "tier=shared", "--overwrite")
    await _until(lambda: "private" in front.models(), what="a relabelled service gets a route")
    control_plane.kubectl("delete", "llmservice", "llama", "-n", namespace, "--wait=false")
    await _until(lambda: "llama" not in front.models(), what="a deleted service loses its route")
    status, answer = await front.post({"model": "llama", "messages": []})
    assert (status, answer["error"]["code"]) == (404, "model_not_found")
    status, listed = await front.get("/v1/models")
    assert [model["id"] for model in listed["data"]] == ["private", "qwen"]
    # Narrowing a key's allowlist applies without a restart.
    gateway = _gateway(namespace)
    gateway["spec"]["auth"]["keys"][1]["models"] = ["private"]
    _apply(control_plane, gateway)

    async def listed_for_qwen_key() -> list[str]:
        _, document = await front.get("/v1/models", key=QWEN_KEY)
        return [model["id"] for model in document["data"]]

    deadline = time.monotonic() + 10
    while await listed_for_qwen_key() != ["private"]:
        assert time.monotonic() < deadline, "the new allowlist applied"
        await asyncio.sleep(0.05)


async def test_held_requests_of_a_deleted_model_are_told_it_was_removed(
    control_plane: ControlPlane, namespace: str, front: Shared
) -> None:
    body = {"model": "llama", "messages": [], "stream": True}
    async with front.http.post(
        front.url + CHAT, json=body, headers={"Authorization": f"Bearer {ALL_KEY}"}
    ) as response:
        assert response.status == 200
        await response.content.readuntil(b"\n\n")
        control_plane.kubectl("delete", "llmservice", "llama", "-n", namespace, "--wait=false")
        rest = await asyncio.wait_for(response.read(), 10)
    assert b"event: error" in rest
    assert b"model_not_found" in rest
