"""Running the operator process: caches, health and metrics endpoints, leader election, workers, and a
clean shutdown on SIGTERM (release the lease so a standby takes over at once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from hearth.common import logs, netaddr
from hearth.kube.client import KubeClient
from hearth.kube.events import EventRecorder
from hearth.kube.leader import LeaderElector
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


async def _serve(app: web.Application, address: netaddr.ListenAddress) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host=address.host, port=address.port, reuse_address=True).start()
    return runner


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
    runners: list[web.AppRunner] = []
    tasks: list[asyncio.Task[None]] = []
    elector: LeaderElector | None = None
    exit_code = 0
    try:
        same = settings.metrics_address is not None and settings.metrics_address == settings.health_address
        if settings.health_address is not None:
            runners.append(
                await _serve(_health_app(controller, metrics, serve_metrics=same), settings.health_address)
            )
        if settings.metrics_address is not None and not same:
            runners.append(
                await _serve(_health_app(controller, metrics, serve_metrics=True), settings.metrics_address)
            )
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
        for runner in runners:
            await runner.cleanup()
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
