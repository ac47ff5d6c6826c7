"""Running the operator process: caches, health and metrics endpoints, leader election, workers, and a
clean shutdown on SIGTERM (release the lease so a standby takes over at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from hearth.common import logs, netaddr, tls
from hearth.kube.client import KubeClient
from hearth.kube.events import EventRecorder
from hearth.kube.leader import LeaderElector
from hearth.operator import metricsauth
from hearth.operator.autoscaler import Autoscaler
from hearth.operator.controller import Controller
from hearth.operator.metrics import OperatorMetrics
from hearth.operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def _health_app(controller: Controller, metrics: OperatorMetrics, *, serve_metrics: bool) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
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
        self._reloader: asyncio.Task[None] | None = None

    async def start(
        self, settings: OperatorSettings, controller: Controller, metrics: OperatorMetrics, client: KubeClient
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
                self._reloader = asyncio.create_task(self._certificate.watch())
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
        if self._reloader is not None:
            self._reloader.cancel()
            await asyncio.gather(self._reloader, return_exceptions=True)
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


async def run(settings: OperatorSettings, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or *stop*); returns the process exit status (1 if leadership was lost)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    client = await KubeClient.connect(kubeconfig=settings.kubeconfig, context=settings.context)
    metrics = OperatorMetrics()
    metrics.count_api_writes(lambda: client.writes)
    recorder = EventRecorder(client)
    controller = Controller(client, settings, metrics=metrics, recorder=recorder)
    endpoints = _Endpoints()
    tasks: list[asyncio.Task[None]] = []
    elector: LeaderElector | None = None
    exit_code = 0
    try:
        try:
            await endpoints.start(settings, controller, metrics, client)
        except tls.CertificateError as error:
            log.error("cannot serve metrics over HTTPS", extra=logs.fields(error=str(error)))
            return 1
        autoscaler = Autoscaler(client, controller, recorder=recorder, interval=settings.autoscale_interval)
        tasks = [asyncio.create_task(informer.run()) for informer in controller.informers()]
        tasks.append(asyncio.create_task(autoscaler.gateway_pods.run()))
        tasks.append(asyncio.create_task(controller.watch_keda()))
        log.info(
            "operator started",
            extra=logs.fields(
                scaler_mode=str(settings.scaler),
                leader_elect=settings.leader_elect,
                gateway_image=settings.gateway_image,
            ),
        )
        if settings.leader_elect:
            elector = LeaderElector(
                client, name=settings.leader_election_id, namespace=settings.leader_election_namespace
            )
            acquired = asyncio.create_task(elector.acquire())
            await _first(acquired, stop)
            if stop.is_set():
                return 0
            tasks.append(asyncio.create_task(elector.hold()))
        metrics.leader.set(1)
        controller.leading = True
        # Reconciling before every cache is filled would act on a partial view (e.g. call a runtime missing).
        synced = asyncio.create_task(_all_synced(controller))
        await _first(synced, stop)
        if stop.is_set():
            return 0
        tasks.extend(asyncio.create_task(controller.worker()) for _ in range(settings.concurrent_reconciles))
        tasks.append(asyncio.create_task(autoscaler.run()))
        lost = elector.lost if elector is not None else asyncio.Event()
        await _first(asyncio.create_task(stop.wait()), lost)
        if lost.is_set():
            exit_code = 1  # like controller-runtime: exit so the pod restarts as a follower
        log.info("operator stopping")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if elector is not None and elector.leading.is_set():
            await elector.release()
        await endpoints.stop()
        await client.close()
    return exit_code


async def _all_synced(controller: Controller) -> None:
    await asyncio.gather(*(informer.synced.wait() for informer in controller.informers()))


async def _first(task: asyncio.Task[Any], event: asyncio.Event) -> None:
    """Wait until *task* finishes or *event* is set; cancel the task if the event came first."""
    waiter = asyncio.create_task(event.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, waiter):
        if pending not in done:
            pending.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)
