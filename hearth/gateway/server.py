"""Running the gateway process: pick the readiness source and scaler, serve, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from pathlib import Path

import aiohttp
import prometheus_client

from hearth.common import logs, serve
from hearth.gateway import auth, external_scaler
from hearth.gateway.app import Gateway, make_app
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.readiness import EndpointSliceReadiness, ProbeReadiness
from hearth.gateway.settings import GatewaySettings
from hearth.gateway.waker import Waker
from hearth.kube.client import KubeClient
from hearth.render.config import ScalerMode

log = logging.getLogger(__name__)

# Explicit request limits (DESIGN 3): a request line or header field longer than this is refused (400/431).
MAX_LINE_SIZE = 16 * 1024
MAX_FIELD_SIZE = 16 * 1024
KEEPALIVE_SECONDS = 75.0
#: As the reference's ReadHeaderTimeout: a request's head must arrive within this long.
HEADER_DEADLINE_SECONDS = 10.0


async def _kube_client(settings: GatewaySettings) -> KubeClient | None:
    needs_api = settings.scaler_mode is ScalerMode.BUILTIN or settings.readiness != "probe"
    if not needs_api or not settings.uses_api:
        return None
    try:
        return await KubeClient.connect()
    except Exception as error:  # no in-cluster credentials and no kubeconfig: the probe fallback applies
        if settings.readiness == "endpointslices":
            raise
        log.warning(
            "no Kubernetes API access; probing the backend's readiness path instead",
            extra=logs.fields(error=str(error), path=settings.readiness_path),
        )
        return None


def _raise_open_file_limit() -> None:
    """Every held request is an open socket: lift the soft descriptor limit to the hard one (as Go does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(settings: GatewaySettings) -> None:
    _raise_open_file_limit()
    # SPEC §3.7: exactly the listed series, without the _created samples (the library leaves this untyped).
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = GatewayMetrics()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30), auto_decompress=False
    )
    client = await _kube_client(settings)
    tasks: list[asyncio.Task[None]] = []
    readiness: EndpointSliceReadiness | ProbeReadiness
    if client is not None and settings.readiness != "probe":
        assert settings.namespace is not None
        assert settings.backend_service is not None
        readiness = EndpointSliceReadiness(
            client, namespace=settings.namespace, service=settings.backend_service
        )
    else:
        readiness = ProbeReadiness(settings.backend_url, session, path=settings.readiness_path)
    tasks.append(asyncio.create_task(readiness.run()))
    waker = None
    if settings.scaler_mode is ScalerMode.BUILTIN and client is not None and settings.backend_deployment:
        assert settings.namespace
        waker = Waker(
            client, namespace=settings.namespace, deployment=settings.backend_deployment, metrics=metrics
        )
    demand = Demand(
        readiness=readiness, metrics=metrics, activation_timeout=settings.activation_timeout.seconds
    )
    scaler_server = None
    if settings.scaler_listen is not None:
        scaler = external_scaler.ExternalScaler(demand=demand, metrics=metrics)
        scaler_server, _ = await external_scaler.start(scaler, settings.scaler_listen)
    api_keys = None
    if settings.api_keys_dir is not None:
        api_keys = auth.ApiKeys(Path(settings.api_keys_dir))
        tasks.append(asyncio.create_task(api_keys.watch()))
    gateway = Gateway(
        settings=settings,
        readiness=readiness,
        demand=demand,
        metrics=metrics,
        session=session,
        waker=waker,
        api_keys=api_keys,
    )
    log.info(
        "gateway configured",
        extra=logs.fields(
            backend=settings.backend_url,
            readiness=type(readiness).__name__,
            scaler=str(settings.scaler_mode),
            cold_start=str(settings.cold_start_mode),
            max_queue=settings.max_queue,
            api_keys="on" if api_keys is not None else "off",
        ),
    )

    async def drain() -> None:
        gateway.draining = True  # /healthz fails, so Kubernetes takes this pod out of the Service
        await asyncio.sleep(settings.drain_delay.seconds)
        gateway.close_holds()  # requests in flight finish; requests still held cold get a 503 to retry

    try:
        await serve.serve(
            make_app(gateway),
            address=settings.listen,
            shutdown_timeout=settings.shutdown_timeout.seconds,
            name="gateway",
            before_shutdown=drain,
            handler_cancellation=True,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            keepalive_timeout=KEEPALIVE_SECONDS,
            header_deadline=HEADER_DEADLINE_SECONDS,
        )
    finally:
        if scaler_server is not None:
            await scaler_server.stop(grace=1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await demand.close()
        await session.close()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
