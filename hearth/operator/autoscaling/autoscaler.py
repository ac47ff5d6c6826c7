"""The built-in autoscaler (leader only): every interval, while the scaler mode in force is one the operator
scales (builtin), sum for each LLMService the demand of all its ready gateway pods (``GET /hearth/queue``),
decide with :mod:`hearth.operator.autoscaling.scaling`, and set the backend Deployment's scale. Gateways wake
0→1 themselves; this does 1→N and N→0. AcceleratorPool members are the exception: their gateways do not wake
them, and :mod:`hearth.operator.pools.keeper` caps every decision of theirs (including 0→1) to what the pool
allows, evicting idle members to make room."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp

from hearth.api import scalermodes
from hearth.api.llmservice import LLMService
from hearth.common import durations, logs, timestamps
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.events import EventRecorder
from hearth.kube.informer import Informer
from hearth.operator.autoscaling import coldwatch, scaling, settle, windows
from hearth.operator.pools import keeper as pools_module
from hearth.operator.reconcile import status as status_module
from hearth.operator.reconcile.controller import Controller
from hearth.render import gateway, names
from hearth.render.errors import ReconcileError

log = logging.getLogger(__name__)

QUEUE_TIMEOUT = aiohttp.ClientTimeout(total=1.5)
PARALLEL_SERVICES = 32
Key = tuple[str, str]
T = TypeVar("T")


class Autoscaler:
    def __init__(
        self,
        client: KubeClient,
        controller: Controller,
        *,
        recorder: EventRecorder,
        interval: float = 2.0,
        pools: pools_module.PoolKeeper | None = None,
    ) -> None:
        self._client = client
        self._controller = controller
        self._recorder = recorder
        self._interval = interval
        self._histories: dict[Key, scaling.History] = {}
        self.gateway_pods = Informer(
            client, resources.POD, handler=lambda *_: None, label_selector=names.LABEL_GATEWAY
        )
        #: Pods of LLMGateways (issue 24): each answers for every model it routes (``/hearth/queues``).
        self.shared_gateway_pods = Informer(
            client, resources.POD, handler=lambda *_: None, label_selector=names.LABEL_LLMGATEWAY
        )
        #: AcceleratorPool members are scaled only as their pool allows (issue 16).
        self.pools = pools
        #: Passes run at once when a gateway admits a cold request the operator must wake (issue 32).
        self.cold = coldwatch.ColdWatch()
        #: Evicted members' endpoint-removal confirmations under way (issue 32).
        self._settling: set[asyncio.Task[settle.Outcome]] = set()
        self._http: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        limit = asyncio.Semaphore(PARALLEL_SERVICES)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=QUEUE_TIMEOUT) as http:
            self._http = http
            try:
                while True:
                    started = loop.time()
                    self.cold.kick.clear()  # a kick from now on means another pass
                    mode = self._controller.scaler_mode()
                    if scalermodes.traits(mode).scales is scalermodes.Driver.OPERATOR:
                        await self.scale_once(limit, http)
                        self.cold.watch(self._cold_urls(), http)
                    else:
                        self.cold.watch((), http)
                    await self.cold.pause(started=started, interval=self._interval)
            finally:
                self._http = None
                await self.cold.close()
                for task in list(self._settling):
                    task.cancel()

    def _cold_urls(self) -> set[str]:
        """The gateway pods to long-poll: those routing a model the operator wakes from zero itself (a pool
        member; any model when gateways may not call the API)."""
        every = not self._controller.config().gateway_service_account
        shared = self._shared_urls()
        urls: set[str] = set()
        for obj in self._controller.services.items():
            spec = obj.get("spec") or {}
            if not every and not spec.get("pool"):
                continue
            metadata = obj.get("metadata") or {}
            name, namespace = str(metadata.get("name")), str(metadata.get("namespace"))
            urls.update(self._gateways(name, namespace))
            try:
                service = self._controller.parse(obj)
            except ReconcileError:
                continue
            for llmgateway in self._controller.serving_gateways(service):
                urls.update(shared.get((namespace, llmgateway), ()))
        return urls

    def _settle(self, service: LLMService, http: aiohttp.ClientSession) -> None:
        """An evicted member's pods may skip their drain's endpoint delay once every gateway pod that may
        route it confirms it no longer does (:mod:`hearth.operator.autoscaling.settle`); in the background, so
        the pass goes on."""
        name, namespace = service.metadata.name, service.namespace
        gateways = _live_urls(
            self.gateway_pods.items(), label=names.LABEL_GATEWAY, value=name, namespace=namespace
        )
        for llmgateway in self._controller.serving_gateways(service):
            gateways += _live_urls(
                self.shared_gateway_pods.items(),
                label=names.LABEL_LLMGATEWAY,
                value=llmgateway,
                namespace=namespace,
            )
        task = asyncio.create_task(
            settle.after_eviction(
                http,
                victim=f"{namespace}/{name}",
                model=name,
                gateways=gateways,
                pods=lambda: self._controller.telemetry.backend_pods(name, namespace),
            ),
            name=f"settle {namespace}/{name}",
        )
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def on_backend_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """A pool member's backend pod went away: its devices are free, so a member waiting for them may
        start now rather than at the next pass."""
        if kind != "DELETED":
            return
        metadata = pod.get("metadata") or {}
        name = (metadata.get("labels") or {}).get(names.LABEL_LLMSERVICE)
        obj = self._controller.services.get(str(name), str(metadata.get("namespace"))) if name else None
        if obj is not None and (obj.get("spec") or {}).get("pool"):
            self.cold.wake("pool member's pod gone", pod=str(metadata.get("name")))

    async def scale_once(self, limit: asyncio.Semaphore, http: aiohttp.ClientSession) -> None:
        """One pass: observe every LLMService, let the pools arbitrate their members, then scale."""
        services = self._controller.services.items()
        # Each shared gateway pod is asked once per pass, for all its models at once.
        shared = await self._shared_queues(http)
        observed = await asyncio.gather(
            *(self._guarded(limit, self._observe(http, obj, shared), obj) for obj in services)
        )
        observations = [observation for observation in observed if observation is not None]
        targets: dict[str, pools_module.Target] = {}
        if self.pools is not None and observations:
            try:
                targets = await self.pools.arbitrate(
                    observations, recheck=functools.partial(self._recheck, http)
                )
            except (ApiError, ApiUnreachableError) as error:
                log.warning("pool arbitration failed", extra=logs.fields(error=str(error)))
                return
        evictions: list[Coroutine[Any, Any, None]] = []
        others: list[Coroutine[Any, Any, None]] = []
        for observation in observations:
            target = targets.get(observation.key)
            if target is None and observation.service.spec.pool is not None:
                # No keeper: a member is never scaled up unchecked.
                target = pools_module.Target(min(observation.wanted, observation.current), "no pool keeper")
            if target is None and observation.demand is None and observation.decision is None:
                continue  # never scale on missing data (a warm window's floor is not data)
            work = self._guarded(limit, self._apply(observation, target), observation.obj)
            (evictions if target is not None and target.eviction else others).append(work)
        # Evictions first, so a victim's drain starts as early as possible; then the other scales (a
        # requester whose devices are free); the pools' statuses and Events, which only describe these, last.
        await asyncio.gather(*evictions)
        await asyncio.gather(*others)
        if self.pools is not None:
            await self.pools.report()

    async def _guarded(
        self, limit: asyncio.Semaphore, work: Coroutine[Any, Any, T], obj: dict[str, Any]
    ) -> T | None:
        name = obj["metadata"]["name"]
        async with limit:
            try:
                return await work
            except ReconcileError:
                # Reconcile reports it (Degraded); without a valid spec there is nothing to aim for.
                return None
            except (ApiError, ApiUnreachableError) as error:
                log.warning("autoscaling failed", extra=logs.fields(llmservice=name, error=str(error)))
            except Exception:
                # One LLMService's failure must never stop autoscaling for the others (or for good).
                log.exception("autoscaling crashed", extra=logs.fields(llmservice=name))
            return None

    def _gateways(self, name: str, namespace: str) -> list[str]:
        """Base URLs of the ready gateway pods of one LLMService."""
        return _ready_urls(
            self.gateway_pods.items(), label=names.LABEL_GATEWAY, value=name, namespace=namespace
        )

    def _shared_urls(self) -> dict[Key, list[str]]:
        """Base URLs of the ready pods of every LLMGateway, by (namespace, LLMGateway)."""
        urls: dict[Key, list[str]] = {}
        for pod in self.shared_gateway_pods.items():
            url = _ready_url(pod)
            if url is not None:
                metadata = pod.get("metadata", {})
                key = (
                    str(metadata.get("namespace")),
                    str(metadata.get("labels", {}).get(names.LABEL_LLMGATEWAY)),
                )
                urls.setdefault(key, []).append(url)
        return urls

    async def _shared_queues(
        self, http: aiohttp.ClientSession, only: set[Key] | None = None
    ) -> dict[Key, list[dict[str, int]]]:
        """What every ready pod of each LLMGateway (or of those in *only*) says about each of its models;
        a pod that does not answer is left out."""

        async def one(url: str) -> dict[str, int] | None:
            try:
                async with http.get(f"{url}/hearth/queues") as response:
                    models = (await response.json(content_type=None))["models"]
                    return {str(model): int(pending) for model, pending in models.items()}
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, AttributeError):
                return None

        wanted = [
            (key, url)
            for key, urls in self._shared_urls().items()
            if only is None or key in only
            for url in urls
        ]
        answers = await asyncio.gather(*(one(url) for _, url in wanted))
        result: dict[Key, list[dict[str, int]]] = {}
        for (key, _), answer in zip(wanted, answers, strict=True):
            if answer is not None:
                result.setdefault(key, []).append(answer)
        return result

    async def _service_demand(
        self,
        http: aiohttp.ClientSession,
        service: LLMService,
        shared: dict[Key, list[dict[str, int]]],
        dedicated: list[str],
    ) -> int | None:
        """A service's demand: its own gateway pods' plus, per pod of each LLMGateway routing it, that
        pod's count for it; None when nobody answered for it (never scale on missing data). A shared pod
        that answers without the model (it has not picked the route up yet) says nothing about it."""
        name, namespace = service.metadata.name, service.namespace
        counts = [
            answer[name]
            for gateway in self._controller.serving_gateways(service)
            for answer in shared.get((namespace, gateway), [])
            if name in answer
        ]
        own = await self._demand(http, dedicated) if dedicated else None
        if own is None and not counts:
            return None
        return (own or 0) + sum(counts)

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

    async def _recheck(
        self, http: aiohttp.ClientSession, observation: pools_module.Observation
    ) -> int | None:
        """A victim's demand read again right before its eviction: nothing may have arrived meanwhile."""
        service = observation.service
        urls = self._gateways(service.metadata.name, service.namespace)
        serving = {(service.namespace, gateway) for gateway in self._controller.serving_gateways(service)}
        shared = await self._shared_queues(http, only=serving) if serving else {}
        return await self._service_demand(http, service, shared, urls)

    async def _observe(
        self, http: aiohttp.ClientSession, obj: dict[str, Any], shared: dict[Key, list[dict[str, int]]]
    ) -> pools_module.Observation | None:
        service = self._controller.parse(obj)
        name, namespace = service.metadata.name, service.namespace
        deployment = self._controller.children[resources.DEPLOYMENT].get(names.backend(name), namespace)
        if deployment is None:
            return None
        member = service.spec.pool is not None
        urls = self._gateways(name, namespace)
        demand = await self._service_demand(http, service, shared, urls)
        current = int(deployment.get("spec", {}).get("replicas") or 0)
        spec = service.spec.scaling
        window = windows.active(
            spec.schedules,
            now=self._controller.telemetry.clock(),
            lead=windows.lead_seconds(service.status),
        )
        minimum, floor_reason = _floor(spec.min, spec.max, window)
        # A window needs no demand: a model whose gateway is not up (or not answering) is still woken for
        # it; without one, never scale on missing data.
        opening = window is not None and current < minimum
        if demand is None and not urls and not member and not opening:
            return None
        decision = None
        if demand is not None or opening:
            now = time.monotonic()
            history = self._histories.setdefault((namespace, name), scaling.History(started=now))
            decision = scaling.decide(
                history=history,
                now=now,
                demand=demand or 0,
                current=current,
                target=spec.target,
                minimum=minimum,
                maximum=spec.max,
                stabilization=durations.parse_nanoseconds(spec.scale_down_stabilization) / durations.SECOND,
                floor_reason=floor_reason,
            )
        # A pool member's devices stay held while its pods drain (the pool counts them).
        pods = _live_pods(self._controller.telemetry.backend_pods(name, namespace)) if member else current
        return pools_module.Observation(
            obj=obj,
            service=service,
            current=current,
            demand=demand,
            decision=decision,
            pods=pods,
            fresh=not status_module.ever_scaled(deployment),
            window=window,
        )

    async def _apply(self, observation: pools_module.Observation, target: pools_module.Target | None) -> None:
        service, current = observation.service, observation.current
        name, namespace = service.metadata.name, service.namespace
        decision = observation.decision
        if target is None:
            target = pools_module.Target(
                decision.replicas if decision is not None else current,
                decision.reason if decision is not None else "unchanged",
            )
        if target.replicas == current:
            await self._record_wanted(service, current)
            return
        scale = await self._client.get(
            resources.DEPLOYMENT, names.backend(name), namespace, subresource="scale"
        )
        if scale is None:
            return
        scale["spec"]["replicas"] = target.replicas
        await self._client.put(resources.DEPLOYMENT, scale, subresource="scale")
        if target.eviction and self._http is not None:
            self._settle(service, self._http)
        direction = "ScaledUp" if target.replicas > current else "ScaledDown"
        log.info(
            "scaled backend",
            extra=logs.fields(
                llmservice=f"{namespace}/{name}",
                replicas=f"{current}->{target.replicas}",
                demand=observation.demand,
                reason=target.reason,
            ),
        )
        await self._client.patch_status(
            resources.LLMSERVICE,
            name,
            namespace,
            {
                "desiredReplicas": target.replicas,
                "lastScaleTime": timestamps.format_seconds(),
                "lastScaleReason": target.reason,
            },
        )
        await self._recorder.record(
            observation.obj,
            kind="Normal",
            reason=direction,
            message=f"{current} -> {target.replicas}: {target.reason}",
        )

    async def _record_wanted(self, service: LLMService, replicas: int) -> None:
        """Keep ``status.desiredReplicas`` true when the scale moved without a decision of ours (a
        gateway's wake from zero, or a manual scale); written only when it differs."""
        if service.status.desired_replicas == replicas:
            return
        await self._client.patch_status(
            resources.LLMSERVICE, service.metadata.name, service.namespace, {"desiredReplicas": replicas}
        )


def _floor(minimum: int, maximum: int, window: windows.Active | None) -> tuple[int, str | None]:
    """The fewest replicas now: scaling.min, raised by a warm window (never above scaling.max), and why."""
    if window is None or window.min_replicas <= minimum:
        return minimum, None
    floor = min(window.min_replicas, maximum)
    if window.state == "Warming":
        why = (
            f"warm window {window.window.name} opens at {window.opens_at.isoformat(timespec='minutes')}: "
            f"waking {window.lead_seconds:.0f}s ahead to keep {floor} warm"
        )
    else:
        why = f"warm window {window.window.name} keeps {floor} warm until its end"
    return floor, why


def _ready_urls(pods: list[dict[str, Any]], *, label: str, value: str, namespace: str) -> list[str]:
    """Base URLs of the ready, not terminating pods labelled *label*=*value* in *namespace*."""
    urls = []
    for pod in pods:
        metadata = pod.get("metadata", {})
        if metadata.get("namespace") != namespace or metadata.get("labels", {}).get(label) != value:
            continue
        url = _ready_url(pod)
        if url is not None:
            urls.append(url)
    return urls


def _live_urls(pods: list[dict[str, Any]], *, label: str, value: str, namespace: str) -> list[str]:
    """Base URLs of every running pod labelled *label*=*value* in *namespace*, ready or not, terminating
    or not (a draining gateway still forwards the requests it admitted)."""
    urls = []
    for pod in pods:
        metadata, status = pod.get("metadata", {}), pod.get("status", {})
        if metadata.get("namespace") != namespace or metadata.get("labels", {}).get(label) != value:
            continue
        if status.get("phase") == "Running" and status.get("podIP"):
            urls.append(f"http://{status['podIP']}:{_http_port(pod)}")
    return urls


def _ready_url(pod: dict[str, Any]) -> str | None:
    """The base URL of a ready, not terminating gateway pod; None for any other."""
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    if not ready or not status.get("podIP") or metadata.get("deletionTimestamp"):
        return None
    return f"http://{status['podIP']}:{_http_port(pod)}"


def _live_pods(pods: list[dict[str, Any]]) -> int:
    return sum(pod.get("status", {}).get("phase") not in ("Succeeded", "Failed") for pod in pods)


def _http_port(pod: dict[str, Any]) -> int:
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return int(port["containerPort"])
    return gateway.HTTP_PORT
