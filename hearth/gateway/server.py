"""The gateway process's one composition root: :func:`build` wires settings into the running parts (readiness
source, demand, scaler, API keys, HTTP application with the production limits); :func:`run` serves them
until SIGTERM. Tests and the benchmark use the same :func:`build`, so they run what production runs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import prometheus_client

from hearth.api import gatewayenv, scalermodes
from hearth.common import logs, serve
from hearth.gateway import background as background_module
from hearth.gateway import gcpacing
from hearth.gateway.forward import proxy, upstream_client
from hearth.gateway.front import app, auth, routing
from hearth.gateway.front.app import Gateway
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model.route import Route, RouteSettings
from hearth.gateway.scaler import external_scaler, peers
from hearth.gateway.settings import GatewaySettings, SettingsError
from hearth.gateway.wake import eta as eta_module
from hearth.gateway.wake import progress, wakestatus
from hearth.gateway.wake.readiness import EndpointSliceReadiness, ProbeReadiness, ReadinessSource
from hearth.gateway.wake.waker import Waker
from hearth.kube.client import KubeClient

log = logging.getLogger(__name__)

# Explicit request limits (DESIGN 3): a request line or header field longer than this is refused (431).
MAX_LINE_SIZE = 16 * 1024
MAX_FIELD_SIZE = 16 * 1024
KEEPALIVE_SECONDS = 75.0
#: As the reference's ReadHeaderTimeout: a request's head must arrive within this long (else 408).
HEADER_DEADLINE_SECONDS = 10.0


async def _kube_client(settings: GatewaySettings) -> KubeClient | None:
    if settings.llmgateway is not None:
        # A shared gateway learns its routes from the API: there is no fallback to run without it.
        try:
            return await KubeClient.connect()
        except Exception as error:
            raise SettingsError(
                f"{gatewayenv.LLMGATEWAY.env}: a shared gateway needs the Kubernetes API (in-cluster "
                f"credentials or a kubeconfig): {error}"
            ) from None
    needs_api = (
        scalermodes.traits(settings.scaler_mode).gateway_patches_scale
        or settings.readiness != "probe"
        or settings.peers_service is not None
    )
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


def _readiness(
    settings: GatewaySettings, client: KubeClient | None
) -> tuple[ReadinessSource, Coroutine[Any, Any, None]]:
    """The readiness source the settings select, and its loop (to run in the background)."""
    if client is not None and settings.readiness != "probe":
        assert settings.namespace is not None
        assert settings.backend_service is not None
        watched = EndpointSliceReadiness(
            client, namespace=settings.namespace, service=settings.backend_service
        )
        return watched, watched.run()
    assert settings.backend_url is not None, "a dedicated gateway's settings name its backend"
    probed = ProbeReadiness(settings.backend_url, path=settings.readiness_path)
    return probed, probed.run()


def _raise_open_file_limit() -> None:
    """Every held request is an open socket: lift the soft descriptor limit to the hard one (as Go does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclasses.dataclass
class Assembly:
    """The gateway's parts, wired and started (background tasks running), not yet serving HTTP."""

    settings: GatewaySettings
    gateway: Gateway
    metrics: GatewayMetrics
    #: The bound port of the KEDA external scaler, when HEARTH_SCALER_LISTEN_ADDR is set.
    scaler_port: int | None
    background: background_module.Background
    #: The KEDA external scaler, when HEARTH_SCALER_LISTEN_ADDR is set.
    scaler: external_scaler.ExternalScaler | None = None

    async def serve(
        self, *, stop: asyncio.Event | None = None, on_started: serve.StartedHook | None = None
    ) -> None:
        """Serve HTTP with the production limits until SIGTERM/SIGINT (or *stop*), then drain. A background
        loop that ends meanwhile stops it too, and then this raises
        :class:`background.BackgroundFailedError`."""
        gateway, settings = self.gateway, self.settings
        stop = stop if stop is not None else asyncio.Event()

        async def stop_on_failure() -> None:
            await self.background.failed.wait()
            stop.set()

        async def drain() -> None:
            gateway.draining = True  # /healthz fails, so Kubernetes takes this pod out of the Service
            if self.scaler is not None:
                self.scaler.end_streams()  # KEDA reconnects, through the Service, to another replica
            await asyncio.sleep(settings.drain_delay.seconds)
            gateway.close_holds()  # requests in flight finish; requests still held cold get a 503 to retry

        watcher = asyncio.create_task(stop_on_failure())
        try:
            await serve.serve(
                app.make_handler(gateway),
                address=settings.listen,
                shutdown_timeout=settings.shutdown_timeout.seconds,
                name="gateway",
                stop=stop,
                on_started=on_started,
                before_shutdown=drain,
                handler_cancellation=True,
                max_line_size=MAX_LINE_SIZE,
                max_field_size=MAX_FIELD_SIZE,
                keepalive_timeout=KEEPALIVE_SECONDS,
                header_deadline=HEADER_DEADLINE_SECONDS,
                backlog=settings.listen_backlog,
            )
        finally:
            watcher.cancel()
        if self.background.failure is not None:
            raise background_module.BackgroundFailedError(self.background.failure)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Serve in the background for the block (tests, bench); yields the base URL it answers on."""
        stop = asyncio.Event()
        started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_started(urls: list[str]) -> None:
            started.set_result(urls[0])

        server = asyncio.create_task(self.serve(stop=stop, on_started=on_started))
        either: set[asyncio.Future[Any]] = {started, server}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            await server  # it failed before listening: raise its error
        try:
            yield started.result()
        finally:
            stop.set()
            await server


@contextlib.asynccontextmanager
async def build(
    settings: GatewaySettings,
    *,
    readiness: ReadinessSource | None = None,
    eta: eta_module.EtaSource | None = None,
    phases: progress.PhaseSource | None = None,
    client: KubeClient | None = None,
) -> AsyncIterator[Assembly]:
    """Wire and start the gateway's parts from *settings*; stop and release them when the block ends.

    A dedicated gateway (no HEARTH_LLMGATEWAY) has one route: *readiness* replaces the source the settings
    select (tests drive readiness by hand), *eta* the wake times and *phases* the wake's phase (in
    production both come from a watch on the gateway's own LLMService when it may read it, else none). A
    shared gateway's routes come from watches (:mod:`hearth.gateway.front.shared`); *client* replaces the API
    client it connects (tests and the bench pass theirs). Everything else, limits included, is what the
    process runs.
    """
    # SPEC §3.7: exactly the listed series, without the _created samples (the library leaves this untyped).
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    shared_mode = settings.llmgateway is not None
    metrics = GatewayMetrics(per_model=shared_mode)
    upstream_pool = proxy.new_upstream()
    owns_client = client is None
    loops = background_module.Background()
    table: routing.Table | None = None
    scaler_server = None
    try:
        if client is None:
            client = await _kube_client(settings)
        api_keys = _api_keys(settings, loops)
        if shared_mode:
            # Only a shared gateway reads LLMGateway and LLMService objects: pydantic and the API models
            # (about 10 MiB resident) are not imported by a dedicated one.
            from hearth.gateway.front import shared

            if client is None:
                raise SettingsError(
                    f"{gatewayenv.LLMGATEWAY.env}: a shared gateway needs access to the Kubernetes API "
                    "(in-cluster credentials or a kubeconfig)"
                )
            table = shared.SharedTable(
                client,
                settings=settings,
                metrics=metrics,
                upstream_pool=upstream_pool,
                api_keys=api_keys,
            )
            table.start(loops)
        else:
            table = _single_route(
                settings,
                client,
                loops,
                metrics=metrics,
                upstream_pool=upstream_pool,
                readiness=readiness,
                eta=eta,
                phases=phases,
                drop_authorization=api_keys is not None,
            )
        identity = peers.new_identity()
        scaler_port = None
        scaler = None
        if settings.scaler_listen is not None:
            scaler = external_scaler.ExternalScaler(
                routes=table, metrics=metrics, peers=_peers(settings, client, loops, identity=identity)
            )
            tls_dir = Path(settings.scaler_tls_dir) if settings.scaler_tls_dir else None
            scaler_server, scaler_port = await external_scaler.start(
                scaler, settings.scaler_listen, tls_dir=tls_dir
            )
        gateway = Gateway(
            settings=settings, table=table, metrics=metrics, api_keys=api_keys, identity=identity
        )
        log.info(
            "gateway configured",
            extra=logs.fields(
                backend=settings.backend_url,
                llmgateway=settings.llmgateway,
                scaler=str(settings.scaler_mode),
                cold_start=str(settings.cold_start_mode),
                max_queue=settings.max_queue,
                api_keys="on" if api_keys is not None else "off",
                # uvloop or asyncio (hearth.common.eventloop): which one runs shows in the bench.
                event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
            ),
        )
        yield Assembly(
            settings=settings,
            gateway=gateway,
            metrics=metrics,
            scaler_port=scaler_port,
            background=loops,
            scaler=scaler,
        )
    finally:
        if scaler_server is not None:
            await scaler_server.stop(grace=1)
        await loops.close()
        if table is not None:
            for each in list(table.routes()):
                await each.close()
        await upstream_pool.close()
        if client is not None and owns_client:
            with contextlib.suppress(Exception):
                await client.close()


def _peers(
    settings: GatewaySettings,
    client: KubeClient | None,
    loops: background_module.Background,
    *,
    identity: str,
) -> peers.Peers | None:
    """The peer replicas whose demand the external scaler adds to this one's (HEARTH_PEERS_SERVICE), or
    None: no Service named, or no API to list its EndpointSlices (then KEDA sees this replica only)."""
    if settings.peers_service is None:
        return None
    if client is None or not settings.namespace:
        log.warning(
            "no Kubernetes API access (or no namespace): the external scaler reports this replica's demand "
            "only, not its peers'",
            extra=logs.fields(peers_service=settings.peers_service),
        )
        return None
    found = peers.Peers(identity=identity)
    members = peers.SliceMembers(client, found, namespace=settings.namespace, service=settings.peers_service)
    loops.start(members.run(), what="peer gateway watch")
    return found


def _api_keys(settings: GatewaySettings, loops: background_module.Background) -> auth.KeyRing | None:
    if settings.api_keys_dir is not None:
        keys = auth.KeyRing.single(Path(settings.api_keys_dir))
    elif settings.api_key_file is not None:
        keys = auth.KeyRing.single_file(Path(settings.api_key_file))
    elif settings.api_key_sets_dir is not None:
        keys = auth.KeyRing.shared(Path(settings.api_key_sets_dir))
    else:
        return None
    loops.start(keys.watch(), what="API key reload")
    return keys


def _single_route(
    settings: GatewaySettings,
    client: KubeClient | None,
    loops: background_module.Background,
    *,
    metrics: GatewayMetrics,
    upstream_pool: upstream_client.Pool,
    readiness: ReadinessSource | None,
    eta: eta_module.EtaSource | None,
    phases: progress.PhaseSource | None,
    drop_authorization: bool,
) -> routing.SingleRoute:
    """A dedicated gateway's table: one route, configured by the environment (SPEC §3.1)."""
    route_settings = RouteSettings.from_gateway(settings)
    route_metrics = metrics.route(route_settings.model)
    if readiness is None:
        readiness, readiness_loop = _readiness(settings, client)
        loops.start(readiness_loop, what="readiness watch")
    if client is not None and settings.namespace and settings.llmservice:
        status = wakestatus.ServiceStatus(client, namespace=settings.namespace, name=settings.llmservice)
        loops.start(status.run(), what="LLMService status watch")
        eta = eta if eta is not None else status
        phases = phases if phases is not None else status
    waker: Waker | None = None
    if (
        scalermodes.traits(settings.scaler_mode).gateway_patches_scale
        and client is not None
        and settings.backend_deployment
    ):
        assert settings.namespace
        waker = Waker(
            client,
            namespace=settings.namespace,
            deployment=settings.backend_deployment,
            metrics=route_metrics,
        )
    log.info(
        "route configured",
        extra=logs.fields(
            model=route_settings.model,
            readiness=type(readiness).__name__,
            wake_status=settings.llmservice if isinstance(phases, wakestatus.ServiceStatus) else "none",
            waker="on" if waker is not None else "off",
            # Where prompts may go besides the backend (never the key).
            fallback=route_settings.fallback.base_url if route_settings.fallback is not None else "none",
        ),
    )
    return routing.SingleRoute(
        Route(
            settings=route_settings,
            readiness=readiness,
            metrics=route_metrics,
            upstream_pool=upstream_pool,
            drop_authorization=drop_authorization,
            fallback_url=settings.backend_url,
            waker=waker,
            eta=eta,
            phases=phases,
        )
    )


async def run(settings: GatewaySettings) -> None:
    """The ``hearth gateway`` process: build, serve until SIGTERM, drain, release."""
    _raise_open_file_limit()
    async with build(settings) as assembly:
        pace_garbage_collection(assembly)
        await assembly.serve()


def pace_garbage_collection(assembly: Assembly) -> None:
    """Once start-up is done: freeze what it built and collect the oldest generation on a timer, not by
    allocation counts (:mod:`hearth.gateway.gcpacing` says why)."""
    gcpacing.tune()
    assembly.background.start(gcpacing.collect_oldest_every(), what="garbage collection pacer")
