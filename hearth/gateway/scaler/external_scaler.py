"""KEDA's ExternalScaler gRPC service for external-push mode (SPEC §3.6): IsActive, StreamIsActive (the
current state first, then every flip once), GetMetricSpec and GetMetrics, on the scaler port.

A dedicated gateway answers with its one route's demand. A shared gateway answers for the model its
ScaledObject names in the trigger's metadata (``model: <LLMService name>``). With peers
(:mod:`hearth.gateway.scaler.peers`), every answer is the demand summed over all replicas of the gateway: KEDA
reaches one replica and must see them all. With TLS settings (``spec.scaling.externalScaler.tls``) the
server requires a client certificate signed by the configured CA (mutual TLS), and re-reads its files when
the kubelet updates the mounted Secret."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hearth.common import logs, netaddr
from hearth.gateway.front import routing
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model import route
from hearth.gateway.scaler import peers as peers_module
from hearth.gateway.scaler import protowire

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
    def __init__(
        self, *, routes: routing.Table, metrics: GatewayMetrics, peers: peers_module.Peers | None = None
    ) -> None:
        self._routes = routes
        self._metrics = metrics
        self._peers = peers
        #: Set when the gateway drains: its streams end cleanly (see :meth:`end_streams`).
        self._ending = False
        self._enders: set[Callable[[], None]] = set()

    def end_streams(self) -> None:
        """End every StreamIsActive stream with status OK, now and for any opened later. KEDA 2.21
        reconnects 2 s after a stream that ended (io.EOF) and resets its backoff, where a stream cut by the
        process's exit is an error that doubles it, up to a minute (pkg/scalers/external_scaler.go:242-275).
        Called when the gateway starts draining: the Service has dropped this replica, so KEDA's next
        stream reaches another one, which answers with the sum of all replicas (this one's included, until
        it withdraws)."""
        self._ending = True
        for end in list(self._enders):
            end()

    def _value(self, found: route.Route) -> int:
        """The model's demand on this replica plus, with peers, on every other replica."""
        own = found.demand.value()
        return own if self._peers is None else own + self._peers.total(found.model)

    def _route_of(self, ref: protowire.ScaledObjectRef) -> route.Route:
        model = ref.scaler_metadata.get("model", "")
        if not model and self._routes.by_model:
            raise InvalidScalerMetadataError(
                "this gateway serves several models: the trigger's metadata must name one (model: <name>)"
            )
        found = self._routes.get(model)
        if found is None:
            raise InvalidScalerMetadataError(f'model "{model}" is not routed by this gateway')
        return found

    async def _check(
        self, ref: protowire.ScaledObjectRef | None, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[float, route.Route]:
        try:
            target = _target(ref)
            assert ref is not None
            return target, self._route_of(ref)
        except InvalidScalerMetadataError as error:
            import grpc  # loaded by start() already

            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise  # abort raises; this keeps type checkers informed

    async def is_active(
        self, ref: protowire.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        _, found = await self._check(ref, context)
        return protowire.is_active_response(self._value(found) > 0)

    async def stream_is_active(
        self, ref: protowire.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        _, found = await self._check(ref, context)
        # One slot: a newer flip replaces an unconsumed older one, so a slow reader gets the latest state;
        # None ends the stream.
        latest: asyncio.Queue[bool | None] = asyncio.Queue(maxsize=1)

        def put(item: bool | None) -> None:
            if latest.full():
                latest.get_nowait()
            latest.put_nowait(item)

        def publish(_flipped: bool | None = None) -> None:
            # The sum decides, whoever changed (this replica's demand flipped, or a peer's report).
            if not self._ending:
                put(self._value(found) > 0)

        def end() -> None:
            put(None)

        def forget() -> None:
            self._enders.discard(end)

        self._enders.add(end)
        unsubscribes: list[Callable[[], None]] = [found.demand.subscribe(publish), forget]
        if self._peers is not None:
            unsubscribes.append(self._peers.on_change(publish))
        self._metrics.scaler_streams.inc()
        try:
            current = self._value(found) > 0
            yield protowire.is_active_response(current)
            while not self._ending:
                active = await latest.get()
                if active is None:
                    break
                if active != current:
                    current = active
                    yield protowire.is_active_response(active)
        finally:
            for unsubscribe in unsubscribes:
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
        _, found = await self._check(request.scaled_object_ref, context)
        if (request.metric_name or METRIC_NAME) != METRIC_NAME:
            import grpc  # loaded by start() already

            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f'metricName "{request.metric_name}" is not "{METRIC_NAME}"'
            )
        return protowire.metrics_response(METRIC_NAME, float(self._value(found)))

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


#: The files of HEARTH_SCALER_TLS_DIR (a mounted kubernetes.io/tls Secret with the client CA beside).
TLS_KEY, TLS_CERT, TLS_CLIENT_CA = "tls.key", "tls.crt", "ca.crt"


class TLSFilesError(ValueError):
    """The scaler's TLS files cannot be read (the message names them)."""


def server_credentials(directory: Path) -> grpc.ServerCredentials:
    """mTLS credentials from *directory*: the server's key and certificate, and the CA a client's
    certificate must be signed by (required: KEDA's TriggerAuthentication gives ``tlsClientCert`` and
    ``tlsClientKey``). gRPC asks before each handshake whether they changed; they are re-read when a
    file's modification time moved (the kubelet swaps a Secret volume's files atomically), so a rotated
    certificate is served without a restart."""
    import grpc

    paths = tuple(directory / name for name in (TLS_KEY, TLS_CERT, TLS_CLIENT_CA))

    def stamp() -> tuple[int, ...]:
        return tuple(path.stat().st_mtime_ns for path in paths)

    def load() -> grpc.ServerCertificateConfiguration:
        key, cert, client_ca = (path.read_bytes() for path in paths)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)

    try:
        loaded = [stamp()]
        initial = load()
    except OSError as error:
        listed = ", ".join(str(path) for path in paths)
        raise TLSFilesError(f"the external scaler's TLS files {listed} cannot be read: {error}") from None

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            now = stamp()
            if now == loaded[0]:
                return None
            fresh = load()
        except OSError:
            return None  # mid-update: keep serving the last pair, the next handshake asks again
        loaded[0] = now
        log.info("KEDA external scaler certificate reloaded", extra=logs.fields(directory=str(directory)))
        return fresh

    # grpc's stubs say the fetcher returns a configuration; its docs (and C core) take None for "unchanged".
    return grpc.dynamic_ssl_server_credentials(
        initial,
        fetch,  # type: ignore[arg-type]
        require_client_authentication=True,
    )


async def start(
    scaler: ExternalScaler, address: netaddr.ListenAddress, *, tls_dir: Path | None = None
) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server, plaintext or (with *tls_dir*) mutual TLS; returns it and the bound port."""
    import grpc

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((scaler.handler(),))
    host = address.host or "[::]"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if tls_dir is None:
        port = server.add_insecure_port(f"{host}:{address.port}")
    else:
        port = server.add_secure_port(f"{host}:{address.port}", server_credentials(tls_dir))
    await server.start()
    log.info(
        "KEDA external scaler listening",
        extra=logs.fields(address=f"{host}:{port}", tls="mutual" if tls_dir is not None else "off"),
    )
    return server, port
