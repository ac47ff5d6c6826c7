"""KEDA's ExternalScaler gRPC service for external-push mode (SPEC §3.6): IsActive, StreamIsActive (the
current state first, then every flip once), GetMetricSpec and GetMetrics, plaintext, on the scaler port.

A dedicated gateway answers with its one route's demand. A shared gateway answers for the model its
ScaledObject names in the trigger's metadata (``model: <LLMService name>``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hearth.common import logs, netaddr
from hearth.gateway import protowire, routing
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics

if TYPE_CHECKING:
    # Imported where the scaler starts (HEARTH_SCALER_LISTEN_ADDR set): gRPC's runtime holds about 8 MiB
    # that a gateway in any other mode would carry for nothing.
    import grpc

log = logging.getLogger(__name__)

SERVICE = "externalscaler.ExternalScaler"
METRIC_NAME = "pending"


class InvalidScalerMetadataError(ValueError):
    """Metadata KEDA sent that this scaler cannot serve."""


def _target(ref: protowire.ScaledObjectRef | None) -> float:
    if ref is None:
        raise InvalidScalerMetadataError("scaledObjectRef is required")
    metric = ref.scaler_metadata.get("metricName") or METRIC_NAME
    if metric != METRIC_NAME:
        raise InvalidScalerMetadataError(f'metricName "{metric}" is not supported (only "{METRIC_NAME}")')
    text = ref.scaler_metadata.get("targetValue", "")
    try:
        target = float(text)
    except ValueError:
        raise InvalidScalerMetadataError(f'targetValue "{text}" must be a number greater than 0') from None
    if not target > 0:
        raise InvalidScalerMetadataError(f'targetValue "{text}" must be a number greater than 0')
    return target


class ExternalScaler:
    def __init__(self, *, routes: routing.Table, metrics: GatewayMetrics) -> None:
        self._routes = routes
        self._metrics = metrics

    def _demand_of(self, ref: protowire.ScaledObjectRef) -> Demand:
        model = ref.scaler_metadata.get("model", "")
        if not model and self._routes.by_model:
            raise InvalidScalerMetadataError(
                "this gateway serves several models: the trigger's metadata must name one (model: <name>)"
            )
        route = self._routes.get(model)
        if route is None:
            raise InvalidScalerMetadataError(f'model "{model}" is not routed by this gateway')
        return route.demand

    async def _check(
        self, ref: protowire.ScaledObjectRef | None, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[float, Demand]:
        try:
            target = _target(ref)
            assert ref is not None
            return target, self._demand_of(ref)
        except InvalidScalerMetadataError as error:
            import grpc  # loaded by start() already

            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise  # abort raises; this keeps type checkers informed

    async def is_active(
        self, ref: protowire.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        _, demand = await self._check(ref, context)
        return protowire.is_active_response(demand.value() > 0)

    async def stream_is_active(
        self, ref: protowire.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        _, demand = await self._check(ref, context)
        # One slot: a newer flip replaces an unconsumed older one, so a slow reader gets the latest state.
        latest: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)

        def publish(active: bool) -> None:
            if latest.full():
                latest.get_nowait()
            latest.put_nowait(active)

        unsubscribe = demand.subscribe(publish)
        self._metrics.scaler_streams.inc()
        try:
            current = demand.value() > 0
            yield protowire.is_active_response(current)
            while True:
                active = await latest.get()
                if active != current:
                    current = active
                    yield protowire.is_active_response(active)
        finally:
            unsubscribe()
            self._metrics.scaler_streams.dec()

    async def get_metric_spec(
        self, ref: protowire.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        target, _ = await self._check(ref, context)
        return protowire.metric_spec_response(METRIC_NAME, target)

    async def get_metrics(
        self, request: protowire.GetMetricsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        _, demand = await self._check(request.scaled_object_ref, context)
        if (request.metric_name or METRIC_NAME) != METRIC_NAME:
            import grpc  # loaded by start() already

            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f'metricName "{request.metric_name}" is not "{METRIC_NAME}"'
            )
        return protowire.metrics_response(METRIC_NAME, float(demand.value()))

    def handler(self) -> grpc.GenericRpcHandler:
        import grpc

        identity = bytes
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "IsActive": grpc.unary_unary_rpc_method_handler(
                    self.is_active,
                    request_deserializer=protowire.ScaledObjectRef.decode,
                    response_serializer=identity,
                ),
                "StreamIsActive": grpc.unary_stream_rpc_method_handler(
                    self.stream_is_active,
                    request_deserializer=protowire.ScaledObjectRef.decode,
                    response_serializer=identity,
                ),
                "GetMetricSpec": grpc.unary_unary_rpc_method_handler(
                    self.get_metric_spec,
                    request_deserializer=protowire.ScaledObjectRef.decode,
                    response_serializer=identity,
                ),
                "GetMetrics": grpc.unary_unary_rpc_method_handler(
                    self.get_metrics,
                    request_deserializer=protowire.GetMetricsRequest.decode,
                    response_serializer=identity,
                ),
            },
        )


async def start(scaler: ExternalScaler, address: netaddr.ListenAddress) -> tuple[grpc.aio.Server, int]:
    """Start the plaintext gRPC server; returns it and the bound port."""
    import grpc

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((scaler.handler(),))
    host = address.host or "[::]"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = server.add_insecure_port(f"{host}:{address.port}")
    await server.start()
    log.info("KEDA external scaler listening", extra=logs.fields(address=f"{host}:{port}"))
    return server, port
