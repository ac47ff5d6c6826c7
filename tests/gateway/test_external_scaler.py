"""KEDA's ExternalScaler contract (SPEC §3.6) over real gRPC, with a client built on the official protobuf
runtime from the SPEC's field table, so the gateway's own wire codec is checked against the real thing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from hearth.common import netaddr
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model.demand import Demand
from hearth.gateway.scaler import external_scaler, protowire
from hearth.gateway.wake.readiness import ManualReadiness

F = descriptor_pb2.FieldDescriptorProto

# Real loop time here: gRPC's core delivers from threads outside the event loop, which a fake clock would
# outrun. So nothing below waits for a time constant (the ready grace is 0; the grace itself is tested on
# fake time in test_gateway.py); the only waits are for gRPC delivering messages.


def _messages() -> dict[str, Any]:
    """KEDA's externalscaler messages, field for field as SPEC §3.6 lists them."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="externalscaler.proto", package="externalscaler", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> descriptor_pb2.DescriptorProto:
        described = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = described.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = type_name
        return described

    ref = message(
        "ScaledObjectRef",
        ("name", 1, F.TYPE_STRING, None, False),
        ("namespace", 2, F.TYPE_STRING, None, False),
        ("scalerMetadata", 3, F.TYPE_MESSAGE, ".externalscaler.ScaledObjectRef.ScalerMetadataEntry", True),
    )
    entry = ref.nested_type.add(name="ScalerMetadataEntry")
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.options.map_entry = True
    message("IsActiveResponse", ("result", 1, F.TYPE_BOOL, None, False))
    message(
        "MetricSpec",
        ("metricName", 1, F.TYPE_STRING, None, False),
        ("targetSize", 2, F.TYPE_INT64, None, False),
        ("targetSizeFloat", 3, F.TYPE_DOUBLE, None, False),
    )
    message("GetMetricSpecResponse", ("metricSpecs", 1, F.TYPE_MESSAGE, ".externalscaler.MetricSpec", True))
    message(
        "GetMetricsRequest",
        ("scaledObjectRef", 1, F.TYPE_MESSAGE, ".externalscaler.ScaledObjectRef", False),
        ("metricName", 2, F.TYPE_STRING, None, False),
    )
    message(
        "MetricValue",
        ("metricName", 1, F.TYPE_STRING, None, False),
        ("metricValue", 2, F.TYPE_INT64, None, False),
        ("metricValueFloat", 3, F.TYPE_DOUBLE, None, False),
    )
    message("GetMetricsResponse", ("metricValues", 1, F.TYPE_MESSAGE, ".externalscaler.MetricValue", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    names = [
        "ScaledObjectRef",
        "IsActiveResponse",
        "GetMetricSpecResponse",
        "GetMetricsRequest",
        "GetMetricsResponse",
    ]
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"externalscaler.{name}"))
        for name in names
    }


PB = _messages()


def test_codec_matches_the_protobuf_runtime() -> None:
    reference = PB["ScaledObjectRef"](
        name="qwen", namespace="ml", scalerMetadata={"targetValue": "4", "metricName": "pending"}
    )
    decoded = protowire.ScaledObjectRef.decode(reference.SerializeToString())
    assert decoded == protowire.ScaledObjectRef("qwen", "ml", {"targetValue": "4", "metricName": "pending"})
    assert PB["ScaledObjectRef"].FromString(decoded.encode()) == reference
    request = PB["GetMetricsRequest"](scaledObjectRef=reference, metricName="pending")
    assert protowire.GetMetricsRequest.decode(request.SerializeToString()).metric_name == "pending"
    assert PB["IsActiveResponse"].FromString(protowire.is_active_response(True)).result is True
    assert protowire.is_active_response(False) == PB["IsActiveResponse"](result=False).SerializeToString()
    spec = PB["GetMetricSpecResponse"].FromString(protowire.metric_spec_response("pending", 2.5))
    assert [(s.metricName, s.targetSize, s.targetSizeFloat) for s in spec.metricSpecs] == [
        ("pending", 0, 2.5)
    ]
    values = PB["GetMetricsResponse"].FromString(protowire.metrics_response("pending", 7.0))
    assert [(v.metricName, v.metricValue, v.metricValueFloat) for v in values.metricValues] == [
        ("pending", 0, 7.0)
    ]


class Scaler:
    def __init__(
        self, channel: grpc.aio.Channel, demand: Demand, readiness: ManualReadiness, metrics: GatewayMetrics
    ) -> None:
        self.demand, self.readiness, self.metrics = demand, readiness, metrics
        self.served: external_scaler.ExternalScaler | None = None

        def call(method: str, request: str, response: str, stream: bool = False) -> Any:
            factory = channel.unary_stream if stream else channel.unary_unary
            return factory(
                f"/externalscaler.ExternalScaler/{method}",
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=PB[response].FromString,
            )

        self.is_active = call("IsActive", "ScaledObjectRef", "IsActiveResponse")
        self.stream_is_active = call("StreamIsActive", "ScaledObjectRef", "IsActiveResponse", stream=True)
        self.get_metric_spec = call("GetMetricSpec", "ScaledObjectRef", "GetMetricSpecResponse")
        self.get_metrics = call("GetMetrics", "GetMetricsRequest", "GetMetricsResponse")
        # KEDA 2.21's proto adds it; Hearth does not serve it (see the test below).
        self.stream_metric_spec = call(
            "StreamMetricSpec", "ScaledObjectRef", "GetMetricSpecResponse", stream=True
        )


async def _delivered(condition: Callable[[], bool]) -> None:
    """Wait until gRPC's core, whose threads run outside the event loop, has delivered what *condition*
    checks: each pass yields to the loop, which polls its sockets."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "gRPC did not deliver within 10 s"
        await asyncio.sleep(0)


class OneRoute:
    """A dedicated gateway's table, as far as the scaler reads it: one route, whatever the model."""

    by_model = False

    def __init__(self, demand: Demand) -> None:
        self.demand = demand

    def get(self, model: str) -> OneRoute:
        return self


def ref(**metadata: str) -> Any:
    return PB["ScaledObjectRef"](name="qwen", namespace="ml", scalerMetadata={"targetValue": "4", **metadata})


@pytest.fixture
async def scaler() -> AsyncIterator[Scaler]:
    readiness = ManualReadiness()
    metrics = GatewayMetrics()
    demand = Demand(readiness=readiness, metrics=metrics.route(""), activation_timeout=30, ready_grace=0)
    served = external_scaler.ExternalScaler(routes=OneRoute(demand), metrics=metrics)  # type: ignore[arg-type]
    server, port = await external_scaler.start(served, netaddr.ListenAddress("127.0.0.1", 0))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        connected = Scaler(channel, demand, readiness, metrics)
        connected.served = served
        yield connected
    await server.stop(grace=None)
    await demand.close()


async def test_is_active_and_metrics_follow_demand(scaler: Scaler) -> None:
    assert (await scaler.is_active(ref())).result is False
    scaler.demand.cold_request()
    assert (await scaler.is_active(ref())).result is True
    scaler.demand.admitted()
    scaler.demand.admitted()
    values = await scaler.get_metrics(PB["GetMetricsRequest"](scaledObjectRef=ref(), metricName="pending"))
    assert [(v.metricName, v.metricValueFloat, v.metricValue) for v in values.metricValues] == [
        ("pending", 2.0, 0)
    ]
    spec = await scaler.get_metric_spec(ref(targetValue="2.5"))
    assert [(s.metricName, s.targetSizeFloat, s.targetSize) for s in spec.metricSpecs] == [
        ("pending", 2.5, 0)
    ]


async def test_stream_sends_the_current_state_first_and_every_flip_once(scaler: Scaler) -> None:
    call = scaler.stream_is_active(ref())
    assert (await call.read()).result is False, "the current state comes first"
    assert scaler.metrics.registry.get_sample_value("hearth_gateway_scaler_streams") == 1
    scaler.demand.admitted()
    scaler.demand.admitted()  # still active: no duplicate message
    assert (await asyncio.wait_for(call.read(), 2)).result is True
    scaler.demand.finished()
    scaler.demand.finished()
    assert (await asyncio.wait_for(call.read(), 2)).result is False
    reconnect = scaler.stream_is_active(ref())
    assert (await reconnect.read()).result is False
    scaler.demand.cold_request()
    assert (await asyncio.wait_for(call.read(), 2)).result is True
    assert (await asyncio.wait_for(reconnect.read(), 2)).result is True
    scaler.readiness.set_endpoints(["http://127.0.0.1:1"])
    assert (await asyncio.wait_for(call.read(), 2)).result is False, (
        "after readiness (and its grace, here 0), inactive"
    )
    call.cancel()
    reconnect.cancel()
    await _delivered(lambda: scaler.metrics.registry.get_sample_value("hearth_gateway_scaler_streams") == 0)
    assert scaler.metrics.registry.get_sample_value("hearth_gateway_scaler_streams") == 0


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"targetValue": ""}, "targetValue"),
        ({"targetValue": "0"}, "greater than 0"),
        ({"targetValue": "many"}, "must be a number"),
        ({"metricName": "latency"}, 'metricName "latency" is not supported'),
    ],
)
async def test_bad_metadata_is_invalid_argument(
    scaler: Scaler, metadata: dict[str, str], message: str
) -> None:
    for call in (scaler.is_active, scaler.get_metric_spec):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(ref(**metadata))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert message in (caught.value.details() or "")


async def test_get_metrics_needs_a_ref_and_the_pending_metric(scaler: Scaler) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scaler.get_metrics(PB["GetMetricsRequest"](metricName="pending"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await scaler.get_metrics(PB["GetMetricsRequest"](scaledObjectRef=ref(), metricName="other"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_metric_spec_is_unimplemented_so_keda_keeps_the_rendered_target(scaler: Scaler) -> None:
    """KEDA 2.21 asks for StreamMetricSpec once per scaler and, on UNIMPLEMENTED, stops asking and keeps
    GetMetricSpec's answer. The target is the ScaledObject's own targetValue, which only the operator
    changes (a new generation, for which KEDA rebuilds its scalers): there is nothing to push."""
    call = scaler.stream_metric_spec(ref())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    spec = await scaler.get_metric_spec(ref())
    assert [(s.metricName, s.targetSizeFloat) for s in spec.metricSpecs] == [("pending", 4.0)]


async def test_a_draining_gateway_ends_keda_streams_cleanly(scaler: Scaler) -> None:
    """KEDA reconnects 2 s after a stream that ended with OK (and resets its backoff), but backs off up to a
    minute after errors: a draining replica ends its streams, so KEDA's next one reaches a live replica."""
    call = scaler.stream_is_active(ref())
    assert (await call.read()).result is False
    assert scaler.served is not None
    scaler.served.end_streams()
    assert await asyncio.wait_for(call.read(), 2) is grpc.aio.EOF
    assert await call.code() is grpc.StatusCode.OK
    late = scaler.stream_is_active(ref())
    assert (await late.read()).result is False, "a stream opened while draining gets the state, then ends"
    assert await asyncio.wait_for(late.read(), 2) is grpc.aio.EOF
    await _delivered(lambda: scaler.metrics.registry.get_sample_value("hearth_gateway_scaler_streams") == 0)
