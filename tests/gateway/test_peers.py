"""External-push with several gateway replicas (issue 27): a replica's external scaler answers KEDA with the
demand summed over its peers, each followed over ``/hearth/queues?watch=true``: a peer's flip reaches KEDA's
stream at once, a peer that leaves, breaks its stream, falls silent or shuts down stops counting, and one
that joins starts counting. Real gateways (``server.build``) on loopback sockets and a real gRPC client;
real loop time (gRPC's core runs outside the event loop), so the peers' TTL is set short."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from aiohttp import web

from hearth.common import durations, netaddr
from hearth.gateway import server
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.scaler import external_scaler, peers
from hearth.gateway.wake.readiness import ManualReadiness
from tests.gateway.conftest import Running, local_settings, running_app, running_gateway
from tests.gateway.test_external_scaler import PB

TTL = 0.5


def ref() -> Any:
    return PB["ScaledObjectRef"](name="qwen", namespace="ml", scalerMetadata={"targetValue": "1"})


async def _until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


class Scaler:
    """KEDA's side of one replica's external scaler, with that replica's peers."""

    def __init__(self, channel: grpc.aio.Channel, known: peers.Peers) -> None:
        self.peers = known
        self.stream_is_active = channel.unary_stream(
            "/externalscaler.ExternalScaler/StreamIsActive",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=PB["IsActiveResponse"].FromString,
        )
        self._get_metrics = channel.unary_unary(
            "/externalscaler.ExternalScaler/GetMetrics",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=PB["GetMetricsResponse"].FromString,
        )

    async def pending(self) -> float:
        request = PB["GetMetricsRequest"](scaledObjectRef=ref(), metricName="pending")
        (value,) = (await self._get_metrics(request)).metricValues
        return float(value.metricValueFloat)


@contextlib.asynccontextmanager
async def scaler_of(replica: Running, *, ttl: float = TTL) -> AsyncIterator[Scaler]:
    """The external scaler of *replica*, summing the peers it is given (``peers.set_members``)."""
    known = peers.Peers(identity=replica.gateway.identity, ttl=ttl)
    scaler = external_scaler.ExternalScaler(
        routes=replica.gateway.table, metrics=GatewayMetrics(), peers=known
    )
    server, port = await external_scaler.start(scaler, netaddr.ListenAddress("127.0.0.1", 0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Scaler(channel, known)
    finally:
        await known.close()
        await server.stop(grace=None)


async def test_a_replica_answers_for_every_replica_and_flips_with_any() -> None:
    async with (
        running_gateway(model_name="qwen") as first,
        running_gateway(model_name="qwen") as second,
        scaler_of(first) as scaler,
    ):
        # Its own address among the members, as the EndpointSlices list it: recognised, not counted.
        scaler.peers.set_members([first.url, second.url])
        await _until(lambda: scaler.peers.connected() == [second.url])
        stream = scaler.stream_is_active(ref())
        assert (await stream.read()).result is False
        second.route.demand.admitted()  # a request reaches the replica KEDA is not connected to
        assert (await asyncio.wait_for(stream.read(), 2)).result is True, "a peer's flip reaches KEDA"
        first.route.demand.admitted()
        second.route.demand.admitted()
        await _until(lambda: scaler.peers.total("qwen") == 2)
        assert await scaler.pending() == 3, "own 1 + the peer's 2"
        second.route.demand.finished()
        second.route.demand.finished()
        await _until(lambda: scaler.peers.total("qwen") == 0)
        assert await scaler.pending() == 1
        first.route.demand.finished()
        assert (await asyncio.wait_for(stream.read(), 2)).result is False
        stream.cancel()


async def test_a_joining_replica_counts_and_a_leaving_one_stops_counting() -> None:
    async with (
        running_gateway(model_name="qwen") as first,
        running_gateway(model_name="qwen") as second,
        running_gateway(model_name="qwen") as third,
        scaler_of(first) as scaler,
    ):
        scaler.peers.set_members([first.url, second.url])
        await _until(lambda: scaler.peers.connected() == [second.url])
        third.route.demand.admitted()
        assert await scaler.pending() == 0, "not a member yet"
        scaler.peers.set_members([first.url, second.url, third.url])  # scaled out: a new endpoint
        await _until(lambda: scaler.peers.total("qwen") == 1)
        stream = scaler.stream_is_active(ref())
        assert (await stream.read()).result is True
        scaler.peers.set_members([first.url, second.url])  # its endpoint left the slices
        assert scaler.peers.total("qwen") == 0, "forgotten at once"
        assert (await asyncio.wait_for(stream.read(), 2)).result is False
        stream.cancel()
        third.route.demand.finished()


async def test_a_replica_shutting_down_counts_until_its_last_request_then_withdraws() -> None:
    async with (
        running_gateway(model_name="qwen") as first,
        running_gateway(model_name="qwen") as second,
        scaler_of(first) as scaler,
    ):
        scaler.peers.set_members([first.url, second.url])
        second.route.demand.admitted()  # a request in flight on the replica that stops
        await _until(lambda: scaler.peers.total("qwen") == 1)
        second.gateway.draining = True
        second.gateway.close_holds()  # what the drain does after its delay
        await asyncio.sleep(peers.INTERVAL + 0.2)
        assert scaler.peers.total("qwen") == 1, "in flight: still demand"
        second.route.demand.finished()
        await _until(lambda: second.url not in scaler.peers.connected())
        assert await scaler.pending() == 0


@contextlib.asynccontextmanager
async def fake_peer(frames: list[bytes], *, then: str) -> AsyncIterator[str]:
    """A peer that sends *frames*, then hangs silent (``then="hang"``) or resets its connection
    (``then="reset"``, a killed process)."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for each in frames:
            await response.write(each)
        if then == "reset":
            assert request.transport is not None
            request.transport.abort()
            return response
        await asyncio.sleep(3600)
        return response

    app = web.Application()
    app.router.add_get(peers.PATH, stream)
    async with running_app(app) as url:
        yield url


@pytest.mark.parametrize("then", ["hang", "reset"])
async def test_a_peer_that_falls_silent_or_dies_stops_counting(then: str) -> None:
    """A vanished node sends nothing (dropped after the TTL); a killed pod's socket is reset (at once)."""
    frame = peers.frame("other", {"chat": 3, "embed": 1})
    async with (
        running_gateway(model_name="chat") as first,
        fake_peer([frame], then=then) as url,
        scaler_of(first) as scaler,
    ):
        changes: list[int] = []
        scaler.peers.on_change(lambda: changes.append(scaler.peers.total("chat")))
        scaler.peers.set_members([url])
        # Per model: a shared gateway's peers report each model they route.
        await _until(lambda: 3 in changes)
        started = time.monotonic()
        await _until(lambda: changes[-1] == 0)
        gone = time.monotonic() - started
        assert scaler.peers.total("embed") == 0
        if then == "hang":
            assert TTL * 0.8 <= gone < TTL + 1.0, f"dropped after {gone:.2f}s, TTL {TTL}s"
        else:
            assert gone < TTL * 0.8, f"a reset stream is dropped at once, not after {gone:.2f}s"


@pytest.mark.parametrize("answer", ["error", "one-shot"])
async def test_a_peer_that_does_not_stream_never_counts(answer: str) -> None:
    """An error, or a gateway from before the stream (met during a rolling upgrade), which answers its
    one-shot /hearth/queues: never taken for a stream (and never a request to its backend)."""

    async def queues(_request: web.Request) -> web.Response:
        if answer == "error":
            return web.Response(status=404)
        return web.json_response({"models": {"chat": 2}})

    app = web.Application()
    app.router.add_get(peers.PATH, queues)
    known = peers.Peers(identity="me", ttl=TTL)
    changes: list[int] = []
    known.on_change(lambda: changes.append(known.total("chat")))
    async with running_app(app) as url:
        known.set_members([url])
        await asyncio.sleep(0.6)  # a few retries
        assert known.connected() == []
        assert changes == []
    await known.close()


def test_members_are_every_endpoint_of_the_gateway_service_whatever_its_conditions() -> None:
    """A starting or draining replica is a member: its stream says whether it has demand."""
    item = {
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
            {
                "addresses": ["10.0.0.2"],
                "conditions": {"ready": False, "serving": False, "terminating": True},
            },
            {"addresses": ["fd00::3"], "conditions": {"ready": False}},
        ],
    }
    assert peers.member_urls(item) == [
        "http://10.0.0.1:8080",
        "http://10.0.0.2:8080",
        "http://[fd00::3]:8080",
    ]
    assert (
        peers.member_urls({"ports": [{"name": "grpc", "port": 9090}], "endpoints": item["endpoints"]}) == []
    )


async def test_a_shared_gateway_with_thousands_of_models_fits_in_one_line() -> None:
    models = {f"model-{index:05d}": 1 for index in range(10000)}  # ~240 KB, past aiohttp's 64 KiB read buffer
    known = peers.Peers(identity="me", ttl=TTL)
    async with fake_peer([peers.frame("other", models)], then="hang") as url:
        known.set_members([url])
        await _until(lambda: known.total("model-09999") == 1)
    await known.close()


async def test_the_drain_ends_keda_streams_before_the_gateway_stops() -> None:
    settings = local_settings(
        scaler_listen=netaddr.ListenAddress("127.0.0.1", 0), drain_delay=durations.Duration.parse("2s")
    )
    async with server.build(settings, readiness=ManualReadiness()) as assembly:
        stop = asyncio.Event()
        serving = asyncio.create_task(assembly.serve(stop=stop))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{assembly.scaler_port}") as channel:
            call = Scaler(channel, peers.Peers(identity="x")).stream_is_active(ref())
            assert (await call.read()).result is False
            stop.set()  # SIGTERM
            started = time.monotonic()
            assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
            assert time.monotonic() - started < 1.0, "at the start of the drain, not after its delay"
        await serving
