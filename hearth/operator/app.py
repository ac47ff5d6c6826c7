"""Running the operator process: caches, health and metrics endpoints, leader election, workers, and a
clean shutdown on SIGTERM (release the lease so a standby takes over at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from hearth.api import rbac
from hearth.common import logs, netaddr, tls
from hearth.kube.client import KubeClient
from hearth.kube.events import EventRecorder
from hearth.kube.leader import LeaderElector
from hearth.operator.access import metricsauth, permissions
from hearth.operator.autoscaling.autoscaler import Autoscaler
from hearth.operator.metrics import OperatorMetrics
from hearth.operator.pools.keeper import PoolKeeper
from hearth.operator.reconcile.controller import Controller
from hearth.operator.reconcile.llmgateways import GatewayReconciler
from hearth.operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def _health_app(controller: Controller, metrics: OperatorMetrics, *, serve_metrics: bool) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        required = controller.permissions.required_missing
        if required:
            names = "; ".join(f"{rule} (add: {rule.rbac()})" for rule in required)
            return web.Response(status=503, text=f"missing required permissions: {names}")
        if controller.synced:
            return web.Response(text="ok")
        return web.Response(status=503, text="caches not synced yet")

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if serve_metrics:
        app.router.add_get("/metrics", metrics_page)
    return app


async def _serve(
    app: web.Application, address: netaddr.ListenAddress, *, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner, host=address.host, port=address.port, reuse_address=True, ssl_context=ssl_context
    )
    await site.start()
    return runner


class _Endpoints:
    """The health and metrics servers, and the metrics certificate when they are served over HTTPS."""

    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self._certificate: tls.ServingCertificate | None = None

    async def start(
        self,
        settings: OperatorSettings,
        controller: Controller,
        metrics: OperatorMetrics,
        client: KubeClient,
        *,
        tasks: asyncio.TaskGroup,
    ) -> None:
        same = settings.metrics_address is not None and settings.metrics_address == settings.health_address
        if settings.health_address is not None:
            health = _health_app(controller, metrics, serve_metrics=same)
            self._runners.append(await _serve(health, settings.health_address))
        if settings.metrics_address is None or same:
            return
        metrics_app = _health_app(controller, metrics, serve_metrics=True)
        context = None
        if settings.metrics_secure:
            self._certificate = _serving_certificate(settings)
            context = self._certificate.context
            metrics_app.middlewares.append(metricsauth.MetricsAuthorizer(client).middleware())
            if not self._certificate.self_signed:
                tasks.create_task(self._certificate.watch(), name="metrics certificate reloader")
        self._runners.append(await _serve(metrics_app, settings.metrics_address, ssl_context=context))
        certificate = self._certificate
        log.info(
            "metrics served",
            extra=logs.fields(
                address=str(settings.metrics_address),
                scheme="https" if certificate else "http",
                certificate=("self-signed" if certificate.self_signed else str(certificate.cert_file))
                if certificate
                else "",
            ),
        )

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._certificate is not None:
            self._certificate.close()


def _serving_certificate(settings: OperatorSettings) -> tls.ServingCertificate:
    if settings.metrics_cert_dir:
        return tls.ServingCertificate.from_directory(
            Path(settings.metrics_cert_dir),
            cert_name=settings.metrics_cert_name,
            key_name=settings.metrics_key_name,
        )
    return tls.ServingCertificate.generate(hostnames=[socket.gethostname()])


class _ShutdownError(Exception):
    """Raised inside the operator's task group to end it: the group then cancels and awaits every task."""


async def run(settings: OperatorSettings, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or *stop*); returns the process exit status (1 if leadership was lost or
    a background task failed).

    Every background task of the process belongs to one TaskGroup: shutdown cancels and awaits them all,
    and a task that dies of an unexpected error stops the operator with that error logged, rather than
    leaving it running without, say, one of its caches (the pod restarts, like a controller-runtime
    manager whose runnable failed)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    client = await KubeClient.connect(kubeconfig=settings.kubeconfig, context=settings.context)
    metrics = OperatorMetrics()
    metrics.count_api_writes(lambda: client.writes)
    recorder, controller = await _controller(client, settings, metrics)
    endpoints = _Endpoints()
    elector = (
        LeaderElector(client, name=settings.leader_election_id, namespace=settings.leader_election_namespace)
        if settings.leader_elect
        else None
    )
    exit_code = 0
    try:
        async with asyncio.TaskGroup() as tasks:
            exit_code = await _operate(
                settings,
                tasks=tasks,
                client=client,
                controller=controller,
                metrics=metrics,
                recorder=recorder,
                endpoints=endpoints,
                elector=elector,
                stop=stop,
            )
            raise _ShutdownError
    except* _ShutdownError:
        pass
    except* Exception as failed:
        log.error("a background task of the operator failed; stopping", exc_info=failed)
        exit_code = 1
    finally:
        # Only now, with every worker stopped, may a standby take the lease over.
        if elector is not None and elector.leading.is_set():
            await elector.release()
        await endpoints.stop()
        await client.close()
    return exit_code


async def _controller(
    client: KubeClient, settings: OperatorSettings, metrics: OperatorMetrics
) -> tuple[EventRecorder, Controller]:
    """The controller, told what the startup permission check found (issue 19)."""
    wanted = rbac.needs(
        leader_election_namespace=settings.leader_election_namespace if settings.leader_elect else None,
        metrics_auth=settings.metrics_secure and settings.metrics_address is not None,
    )
    allowed = await permissions.check(client, wanted)
    recorder = EventRecorder(client, enabled=allowed.has(rbac.Feature.EVENTS))
    return recorder, Controller(client, settings, metrics=metrics, recorder=recorder, allowed=allowed)


async def _operate(
    settings: OperatorSettings,
    *,
    tasks: asyncio.TaskGroup,
    client: KubeClient,
    controller: Controller,
    metrics: OperatorMetrics,
    recorder: EventRecorder,
    endpoints: _Endpoints,
    elector: LeaderElector | None,
    stop: asyncio.Event,
) -> int:
    """Start the endpoints and every background task in *tasks*, then wait for *stop* (exit status 0) or
    a lost lease (1)."""
    try:
        await endpoints.start(settings, controller, metrics, client, tasks=tasks)
    except tls.CertificateError as error:
        log.error("cannot serve metrics over HTTPS", extra=logs.fields(error=str(error)))
        return 1
    pooling_allowed = controller.permissions.has(rbac.Feature.ACCELERATOR_POOLS)
    missing = "; ".join(
        rule.rbac() for rule in controller.permissions.rules_for(rbac.Feature.ACCELERATOR_POOLS)
    )
    keeper = PoolKeeper(
        client,
        recorder=recorder,
        metrics=metrics,
        resource_of=controller.accelerator_of,
        enabled=pooling_allowed,
        why_disabled=f"the operator may not read AcceleratorPools (add: {missing})",
    )
    autoscaler = Autoscaler(
        client, controller, recorder=recorder, interval=settings.autoscale_interval.seconds, pools=keeper
    )
    controller.telemetry.pod_listeners.append(autoscaler.on_backend_pod)
    for informer in controller.informers():
        tasks.create_task(informer.run(), name=f"{informer.rt.kind} informer")
    # Without the autoscaler's permissions its pod informer would only log 403s (issue 19).
    autoscaling = controller.permissions.has(rbac.Feature.AUTOSCALER)
    if autoscaling:
        tasks.create_task(autoscaler.gateway_pods.run(), name="gateway pod informer")
        tasks.create_task(autoscaler.shared_gateway_pods.run(), name="shared gateway pod informer")
    if autoscaling and pooling_allowed:
        tasks.create_task(keeper.informer.run(), name="AcceleratorPool informer")
    tasks.create_task(controller.watch_keda(tasks), name="KEDA discovery")
    log.info(
        "operator started",
        extra=logs.fields(
            scaler_mode=str(settings.scaler),
            leader_elect=settings.leader_elect,
            gateway_image=settings.gateway_image,
        ),
    )
    if elector is not None:
        if not await _unless_stopped(elector.acquire(), stop=stop):
            return 0
        tasks.create_task(elector.hold(), name="lease renewal")
    metrics.leader.set(1)
    controller.leading = True
    # Reconciling before every cache is filled would act on a partial view (e.g. call a runtime missing).
    if not await _unless_stopped(_all_synced(controller), stop=stop):
        return 0
    for index in range(settings.concurrent_reconciles):
        tasks.create_task(controller.worker(), name=f"reconcile worker {index}")
    if controller.permissions.has(rbac.Feature.LLM_GATEWAYS):
        gateways = GatewayReconciler(client, controller, recorder=recorder)
        tasks.create_task(gateways.worker(), name="LLMGateway reconcile worker")
    if autoscaling:
        tasks.create_task(autoscaler.run(), name="autoscaler")
    lost = elector.lost if elector is not None else asyncio.Event()
    await _unless_stopped(lost.wait(), stop=stop)
    log.info("operator stopping")
    return 1 if lost.is_set() else 0  # lost the lease: exit so the pod restarts as a follower


async def _all_synced(controller: Controller) -> None:
    await asyncio.gather(*(informer.synced.wait() for informer in controller.informers()))


async def _unless_stopped(work: Coroutine[Any, Any, object], *, stop: asyncio.Event) -> bool:
    """Await *work* unless *stop* is set first (then *work* is cancelled); True if *work* finished."""
    async with asyncio.TaskGroup() as race:
        finished = race.create_task(work)
        stopped = race.create_task(stop.wait())
        await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        stopped.cancel()
    return not stop.is_set()
