"""A shared gateway's front and table over real sockets, its table fed by hand with the objects its watches
would deliver (the watches themselves run against a real API server in test_shared_gateway_cluster.py)."""

from __future__ import annotations

import asyncio
import calendar
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hearth.api import scalermodes
from hearth.common import durations, netaddr
from hearth.gateway import background as background_module
from hearth.gateway import server
from hearth.gateway.forward import proxy
from hearth.gateway.front import auth, routing, shared
from hearth.gateway.front.app import Gateway
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.settings import GatewaySettings
from tests.gateway.conftest import running_stub

NAMESPACE = "ml"
#: creationTimestamp of the services below, as /v1/models shows it (``created``, Unix seconds).
CREATED = calendar.timegm((2026, 12, 1, 10, 0, 0))


def _service(name: str, **endpoint: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"tier": "shared"},
            "creationTimestamp": "2026-12-01T10:00:00Z",
        },
        "spec": {
            "model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}},
            "runtime": {"name": "vllm"},
            "endpoint": endpoint,
        },
    }


def _slice(model: str, url: str | None) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1]) if url else 8000
    return {
        "metadata": {
            "name": f"{model}-backend-x",
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": f"{model}-backend",
                "serving.hearth.dev/llmservice": model,
            },
        },
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}] if url else [],
    }


GATEWAY = {
    "apiVersion": "serving.hearth.dev/v1alpha1",
    "kind": "LLMGateway",
    "metadata": {"name": "front", "namespace": NAMESPACE},
    "spec": {"selector": {"matchLabels": {"tier": "shared"}}},
}


class Fed:
    def __init__(self, url: str, table: shared.SharedTable, http: aiohttp.ClientSession) -> None:
        self.url, self.table, self.http = url, table, http

    async def chat(self, model: str, **extra: Any) -> aiohttp.ClientResponse:
        return await self.http.post(f"{self.url}/v1/chat/completions", json={"model": model, **extra})


@asynccontextmanager
async def fed_gateway(
    *, keys: Path | None = None, client: Any = None, **overrides: Any
) -> AsyncIterator[Fed]:
    """A shared gateway's front and table as server.build wires them, its table fed by hand."""
    settings = GatewaySettings(
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        drain_delay=durations.Duration(0),
        namespace=NAMESPACE,
        llmgateway="front",
        **{"scaler_mode": scalermodes.ScalerMode.METRICS_API, **overrides},
    )
    metrics = GatewayMetrics(per_model=True)
    pool = proxy.new_upstream()
    api_keys = auth.KeyRing.shared(keys) if keys is not None else None
    table = shared.SharedTable(
        client,  # never started: fed by hand
        settings=settings,
        metrics=metrics,
        upstream_pool=pool,
        api_keys=api_keys,
    )
    for informer in (table.gateway_informer, table.service_informer, table.slice_informer):
        informer.synced.set()
    front = Gateway(settings=settings, table=table, metrics=metrics, api_keys=api_keys)
    assembly = server.Assembly(
        settings=settings,
        gateway=front,
        metrics=metrics,
        scaler_port=None,
        background=background_module.Background(),
    )
    try:
        async with assembly.serving() as url, aiohttp.ClientSession() as http:
            yield Fed(url, table, http)
    finally:
        for route in list(table.routes()):
            await route.close()
        await pool.close()


def _feed(table: shared.SharedTable, *objects: dict[str, Any]) -> None:
    for obj in objects:
        kind = obj.get("kind")
        if kind == "LLMGateway":
            table._on_gateway("ADDED", obj)
        elif kind == "LLMService":
            table.service_informer._store[(NAMESPACE, obj["metadata"]["name"])] = obj
            table._on_service("ADDED", obj)
        else:
            table._on_slice("ADDED", obj)


async def test_routes_appear_only_once_the_gateway_and_its_selector_are_known() -> None:
    async with fed_gateway() as fed:
        _feed(fed.table, _service("qwen"))
        assert list(fed.table.routes()) == [], "no selector known yet: nothing is routed"
        _feed(fed.table, GATEWAY)
        assert [route.model for route in fed.table.routes()] == ["qwen"]
        other = _service("private")
        other["metadata"]["labels"] = {"tier": "private"}
        _feed(fed.table, other)
        assert [route.model for route in fed.table.routes()] == ["qwen"]


async def test_per_model_settings_come_from_the_object() -> None:
    async with fed_gateway() as fed:
        _feed(fed.table, GATEWAY, _service("qwen", coldStart={"mode": "reject"}), _service("llama"))
        response = await fed.chat("qwen", messages=[])
        assert response.status == 503, "qwen rejects while cold (its spec.endpoint.coldStart.mode)"
        assert response.headers["Retry-After"]
        llama = fed.table.get("llama")
        assert llama is not None
        assert llama.settings.cold_start_mode == "keepalive"
        assert llama.settings.activation_timeout_s == 300.0


async def test_one_models_burst_does_not_take_another_models_queue() -> None:
    async with running_stub() as stub, fed_gateway(max_queue=2) as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _service("llama"), _slice("llama", stub))
        held = [asyncio.ensure_future(fed.chat("qwen", messages=[])) for _ in range(2)]
        qwen = fed.table.get("qwen")
        assert qwen is not None
        while qwen.held < 2:  # noqa: ASYNC110 - the route's own counter, in this loop
            await asyncio.sleep(0.01)
        third = await fed.chat("qwen", messages=[])
        assert (third.status, (await third.json())["error"]["code"]) == (429, "queue_full")
        warm = await fed.chat("llama", messages=[{"role": "user", "content": "hi"}])
        assert warm.status == 200, "llama's requests have their own bound"
        _feed(fed.table, _slice("qwen", stub))
        assert [response.status for response in await asyncio.gather(*held)] == [200, 200]


async def test_a_models_max_queue_bounds_its_own_route_and_changes_without_a_restart() -> None:
    async with running_stub() as stub, fed_gateway(max_queue=50) as fed:
        _feed(fed.table, GATEWAY, _service("qwen", maxQueue=1), _service("llama"), _slice("llama", stub))
        qwen, llama = fed.table.get("qwen"), fed.table.get("llama")
        assert qwen is not None
        assert llama is not None
        assert (qwen.settings.max_queue, llama.settings.max_queue) == (1, 50), "unset: the gateway's bound"
        held = asyncio.ensure_future(fed.chat("qwen", messages=[]))
        while qwen.held < 1:  # noqa: ASYNC110 - the route's own counter, in this loop
            await asyncio.sleep(0.01)
        second = await fed.chat("qwen", messages=[])
        assert (second.status, (await second.json())["error"]["code"]) == (429, "queue_full")
        # spec.endpoint.maxQueue raised: the route takes it for the next request, no restart.
        fed.table._on_service("MODIFIED", _service("qwen", maxQueue=2))
        assert qwen.settings.max_queue == 2
        another = asyncio.ensure_future(fed.chat("qwen", messages=[]))
        while qwen.held < 2:  # noqa: ASYNC110 - the route's own counter, in this loop
            await asyncio.sleep(0.01)
        _feed(fed.table, _slice("qwen", stub))
        assert [response.status for response in await asyncio.gather(held, another)] == [200, 200]


async def test_listing_and_demand_per_model() -> None:
    async with running_stub() as stub, fed_gateway() as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _service("llama"), _slice("llama", stub))
        async with fed.http.get(f"{fed.url}/v1/models") as response:
            listed = await response.json()
        assert [(m["id"], m["hearth"]["state"], m["created"]) for m in listed["data"]] == [
            ("llama", "ready", CREATED),
            ("qwen", "cold", CREATED),
        ]
        async with fed.http.post(f"{fed.url}/hearth/warm/qwen") as response:
            assert response.status == 202
            assert (await response.json())["state"] == "cold"
        async with fed.http.get(f"{fed.url}/hearth/queue/qwen") as response:
            assert json.loads(await response.text()) == {"pending": 1}, "a warm lease is demand"
        async with fed.http.get(f"{fed.url}/hearth/queues") as response:
            # The gateway wakes nothing itself here: the lease's wake is announced to the operator's poll.
            assert (await response.json()) == {"calls": 1, "models": {"qwen": 1, "llama": 0}}
        async with fed.http.get(f"{fed.url}/v1/models/qwen") as response:
            assert (await response.json())["hearth"]["state"] == "waking"
        async with fed.http.post(f"{fed.url}/hearth/warm") as response:
            assert response.status == 400, "a shared gateway needs the model named"
        async with fed.http.get(f"{fed.url}/hearth/queue/nothing") as response:
            assert response.status == 404


async def test_a_key_set_sees_only_its_models(tmp_path: Path) -> None:
    for secret, key in (("everything", "sk-all"), ("one", "sk-one")):
        (tmp_path / secret).mkdir()
        (tmp_path / secret / "key").write_text(key)
    gateway = json.loads(json.dumps(GATEWAY))
    gateway["spec"]["auth"] = {
        "keys": [{"secretName": "everything"}, {"secretName": "one", "models": ["qwen"]}]
    }
    async with fed_gateway(keys=tmp_path) as fed:
        _feed(fed.table, gateway, _service("qwen"), _service("llama"))

        async def listed(key: str) -> tuple[int, list[str]]:
            headers = {"Authorization": f"Bearer {key}"}
            async with fed.http.get(f"{fed.url}/v1/models", headers=headers) as response:
                if response.status != 200:
                    return response.status, []
                return 200, [entry["id"] for entry in (await response.json())["data"]]

        assert await listed("sk-all") == (200, ["llama", "qwen"])
        assert await listed("sk-one") == (200, ["qwen"])
        assert await listed("sk-none") == (401, [])
        headers = {"Authorization": "Bearer sk-one"}
        async with fed.http.post(f"{fed.url}/hearth/warm/llama", headers=headers) as response:
            assert response.status == 404
        llama = fed.table.get("llama")
        assert llama is not None
        assert llama.demand.value() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no body"),
        (b"{", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b"{}", 'no "model"'),
        (b'{"model": null}', 'no "model"'),
        (b'{"model": ["a"]}', "not a JSON array"),
        (b'{"model": true}', "not a JSON boolean"),
        (b'{"model": ""}', "empty"),
        (b'{"model": "a", "model": "b"}', "more than once"),
        (b'{"model": "a", "\\u006dodel": "b"}', "more than once"),
        (b'{"model": "' + b"x" * 300 + b'"}', "300 characters"),
    ],
)
def test_model_of_names_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(routing.RefusedModelError, match=message):
        routing.model_of(body)


def test_model_of_reads_the_model_once_even_when_nested_objects_say_model() -> None:
    body = json.dumps({"model": "qwen", "messages": [{"role": "user", "content": '"model"'}]}).encode()
    assert routing.model_of(body) == "qwen"
    nested = b'{"model": "qwen", "tools": [{"model": "x"}]}'
    assert routing.model_of(nested) == "qwen"


async def test_a_status_it_cannot_read_keeps_the_route_and_tells_no_phase() -> None:
    """As a dedicated gateway does: a status written by a newer operator (unreadable here) costs held clients
    their phase and ETA, never the model's route."""
    async with fed_gateway() as fed:
        unreadable = _service("qwen")
        unreadable["status"] = {"phase": "Hibernating", "currentWake": "not a wake"}
        _feed(fed.table, GATEWAY, unreadable)
        qwen = fed.table.get("qwen")
        assert qwen is not None
        assert qwen.phases.phase() == "unknown"


async def test_the_gateways_own_status_writes_leave_the_routes_alone() -> None:
    async with fed_gateway() as fed:
        _feed(fed.table, GATEWAY, _service("qwen"))
        seen: list[str] = []
        on_service = fed.table._on_service
        fed.table._on_service = lambda kind, obj: seen.append(obj["metadata"]["name"])  # type: ignore[method-assign]
        with_status = {**GATEWAY, "status": {"models": ["qwen"], "modelCount": 1}}
        fed.table._on_gateway("MODIFIED", with_status)
        assert seen == [], "an unchanged selector re-reads no LLMService"
        relabelled = json.loads(json.dumps(GATEWAY))
        relabelled["spec"]["selector"] = {"matchLabels": {"tier": "other"}}
        fed.table._on_gateway("MODIFIED", relabelled)
        assert seen == ["qwen"], "a new selector looks at every LLMService again"
        fed.table._on_service = on_service  # type: ignore[method-assign]


class ScaleNeverAnswers:
    """A Kubernetes client whose scale reads never answer: a wake stays in flight until cancelled."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def get(self, *_: Any, **__: Any) -> dict[str, Any] | None:
        self.asked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return None


async def test_a_model_that_joins_a_pool_cancels_the_wake_its_route_had_in_flight() -> None:
    """The pool keeper starts a member, not its gateway: the route's own scale request must not go on."""
    client = ScaleNeverAnswers()
    async with fed_gateway(client=client, scaler_mode=scalermodes.ScalerMode.BUILTIN) as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _slice("qwen", None))
        held = asyncio.create_task(fed.chat("qwen"))
        await asyncio.wait_for(client.asked.wait(), 10)
        pooled = _service("qwen")
        pooled["spec"]["pool"] = {"name": "gpus"}
        fed.table._on_service("MODIFIED", pooled)
        qwen = fed.table.get("qwen")
        assert qwen is not None
        assert qwen.waker is None
        await asyncio.wait_for(client.cancelled.wait(), 10)
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)


@asynccontextmanager
async def closing_after_streams() -> AsyncIterator[str]:
    """A backend that, like llama-server, closes its connection after a streamed (chunked) answer without
    saying so: a request sent on that connection meets the close."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                streamed = json.loads(body or b"{}").get("stream") is True
                writer.write(chunked if streamed else plain)
                await writer.drain()
                if streamed:
                    await reader.readuntil(b"\r\n\r\n")  # the next request on it meets the close
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server_ = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server_.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server_.close()


async def test_a_models_engine_facts_come_from_its_status() -> None:
    """A shared gateway reads no InferenceRuntime: the operator publishes the engine's facts in
    status.engine, and the route follows them (llama-server: strict stream rule, no reuse after a stream)."""
    llama = _service("llama")
    llama["status"] = {
        "engine": {"family": "llamacpp", "streamRule": "strict", "upstreamAfterStream": "close"}
    }
    async with closing_after_streams() as backend, fed_gateway() as fed:
        _feed(fed.table, GATEWAY, llama, _service("qwen"), _slice("llama", backend))
        route, other = fed.table.get("llama"), fed.table.get("qwen")
        assert route is not None
        assert other is not None
        assert route.settings.strict_stream
        assert not other.settings.strict_stream
        for _ in range(3):
            streamed = await fed.chat("llama", messages=[], stream=True)
            assert (streamed.status, await streamed.read()) == (200, b"abc")
            plain = await fed.chat("llama", messages=[])
            assert plain.status == 200, "the next request went out on the connection the engine closed"
