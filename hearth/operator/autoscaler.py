"""The built-in autoscaler (leader only): every interval, while the scaler mode in force is one the operator
scales (builtin), sum for each LLMService the demand of all its ready gateway pods (``GET /hearth/queue``),
decide with :mod:`hearth.operator.scaling`, and set the backend Deployment's scale. Gateways wake 0→1
themselves; this does 1→N and N→0."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from hearth.api import scalermodes
from hearth.api.llmservice import LLMService
from hearth.common import durations, logs
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.events import EventRecorder
from hearth.kube.informer import Informer
from hearth.operator import scaling
from hearth.operator.controller import Controller
from hearth.render import gateway, names
from hearth.render.errors import ReconcileError

log = logging.getLogger(__name__)

QUEUE_TIMEOUT = aiohttp.ClientTimeout(total=1.5)
PARALLEL_SERVICES = 32
Key = tuple[str, str]


class Autoscaler:
    def __init__(
        self, client: KubeClient, controller: Controller, *, recorder: EventRecorder, interval: float = 2.0
    ) -> None:
        self._client = client
        self._controller = controller
        self._recorder = recorder
        self._interval = interval
        self._histories: dict[Key, scaling.History] = {}
        self.gateway_pods = Informer(
            client, resources.POD, handler=lambda *_: None, label_selector=names.LABEL_GATEWAY
        )

    async def run(self) -> None:
        limit = asyncio.Semaphore(PARALLEL_SERVICES)
        async with aiohttp.ClientSession(timeout=QUEUE_TIMEOUT) as http:
            while True:
                started = time.monotonic()
                mode = self._controller.scaler_mode()
                if scalermodes.traits(mode).scales is scalermodes.Driver.OPERATOR:
                    services = self._controller.services.items()
                    await asyncio.gather(*(self._guarded(limit, http, service) for service in services))
                await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def _guarded(
        self, limit: asyncio.Semaphore, http: aiohttp.ClientSession, service: dict[str, Any]
    ) -> None:
        async with limit:
            try:
                parsed = self._controller.parse(service)
            except ReconcileError:
                return  # reconcile reports it (Degraded); without a valid spec there is nothing to aim for
            try:
                await self._scale(http, service, parsed)
            except (ApiError, ApiUnreachableError) as error:
                log.warning(
                    "autoscaling failed",
                    extra=logs.fields(llmservice=service["metadata"]["name"], error=str(error)),
                )
            except Exception:
                # One LLMService's failure must never stop autoscaling for the others (or for good).
                log.exception(
                    "autoscaling crashed", extra=logs.fields(llmservice=service["metadata"]["name"])
                )

    def _gateways(self, name: str, namespace: str) -> list[str]:
        """Base URLs of the ready gateway pods of one LLMService."""
        urls = []
        for pod in self.gateway_pods.items():
            metadata, status = pod.get("metadata", {}), pod.get("status", {})
            if (
                metadata.get("namespace") != namespace
                or metadata.get("labels", {}).get(names.LABEL_GATEWAY) != name
            ):
                continue
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if not ready or not status.get("podIP") or metadata.get("deletionTimestamp"):
                continue
            urls.append(f"http://{status['podIP']}:{_http_port(pod)}")
        return urls

    async def _demand(self, http: aiohttp.ClientSession, urls: list[str]) -> int | None:
        """Summed demand, or None when no gateway answered (never scale on missing data)."""

        async def one(url: str) -> int | None:
            try:
                async with http.get(f"{url}/hearth/queue") as response:
                    return int((await response.json(content_type=None))["pending"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                return None

        answers = [
            answer for answer in await asyncio.gather(*(one(url) for url in urls)) if answer is not None
        ]
        return sum(answers) if answers else None

    async def _scale(self, http: aiohttp.ClientSession, obj: dict[str, Any], service: LLMService) -> None:
        name, namespace = service.metadata.name, service.namespace
        deployment = self._controller.children[resources.DEPLOYMENT].get(names.backend(name), namespace)
        urls = self._gateways(name, namespace)
        if deployment is None or not urls:
            return
        demand = await self._demand(http, urls)
        if demand is None:
            return
        spec = service.spec.scaling
        now = time.monotonic()
        history = self._histories.setdefault((namespace, name), scaling.History(started=now))
        current = int(deployment.get("spec", {}).get("replicas") or 0)
        decision = scaling.decide(
            history=history,
            now=now,
            demand=demand,
            current=current,
            target=spec.target,
            minimum=spec.min,
            maximum=spec.max,
            stabilization=durations.parse_nanoseconds(spec.scale_down_stabilization) / durations.SECOND,
        )
        if decision is None or decision.replicas == current:
            await self._record_wanted(service, current)
            return
        scale = await self._client.get(
            resources.DEPLOYMENT, names.backend(name), namespace, subresource="scale"
        )
        if scale is None:
            return
        scale["spec"]["replicas"] = decision.replicas
        await self._client.put(resources.DEPLOYMENT, scale, subresource="scale")
        direction = "ScaledUp" if decision.replicas > current else "ScaledDown"
        log.info(
            "scaled backend",
            extra=logs.fields(
                llmservice=f"{namespace}/{name}",
                replicas=f"{current}->{decision.replicas}",
                demand=demand,
                reason=decision.reason,
            ),
        )
        await self._client.patch_status(
            resources.LLMSERVICE,
            name,
            namespace,
            {
                "desiredReplicas": decision.replicas,
                "lastScaleTime": _timestamp(),
                "lastScaleReason": decision.reason,
            },
        )
        await self._recorder.record(
            obj,
            kind="Normal",
            reason=direction,
            message=f"{current} -> {decision.replicas}: {decision.reason}",
        )

    async def _record_wanted(self, service: LLMService, replicas: int) -> None:
        """Keep ``status.desiredReplicas`` true when the scale moved without a decision of ours (a
        gateway's wake from zero, or a manual scale); written only when it differs."""
        if service.status.desired_replicas == replicas:
            return
        await self._client.patch_status(
            resources.LLMSERVICE, service.metadata.name, service.namespace, {"desiredReplicas": replicas}
        )


def _http_port(pod: dict[str, Any]) -> int:
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return int(port["containerPort"])
    return gateway.HTTP_PORT


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
