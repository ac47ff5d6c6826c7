"""The soak (issue 29): ``hearth e2e --soak DURATION`` runs Hearth under random bursty traffic with idle
gaps for a bounded time and request count, then reports what it came to (:mod:`hearth.e2e.soakreport`).

What it sets up in the run's namespace (:mod:`hearth.e2e.runner`): three stub models in one AcceleratorPool
of two devices (so they swap), all behind one LLMGateway with API keys on, and -- given the real engine
(``--engine-image``/``--gguf``, as the L scenarios) -- llama-server serving a GGUF behind the same endpoint.
The traffic (:mod:`hearth.e2e.soaktraffic`, seeded, seed printed) goes through the endpoint from this
process (aiohttp, a few requests a second at most: the client is never the bottleneck), so models wake,
swap and go to zero again and again.

What it measures, and where from:

- every request's outcome: answered (a stream ending with ``[DONE]``) or lost, with the reason (HTTP status
  and error code, a stream cut short, a timeout, a connection error);
- time to first token, cold when the gateway held the request while its model woke (the stream carried wake
  progress comments) and warm otherwise;
- wakes: a backend Deployment's replicas leaving 0 (the operator's scale write, seen on a watch); swaps:
  the AcceleratorPool's ``status.evictions`` (the operator's own count of the devices it freed for a
  waiting member, as ``hearth_pool_swaps``) at the start and at the end;
- RSS of the LLMGateway's gateway pods and of the operator pods, from the kubelet's stats summary (the
  pods' cgroups, ``memory.rssBytes``), after the warm-up and at the end;
- API writes while idle: each watch event of the objects Hearth owns or writes (the run's LLMServices,
  LLMGateway, Deployments, Pods and Events, the soak's AcceleratorPool, and the Leases of the operator's
  namespace) is one write that changed a resourceVersion; those that fall in idle time (no request in
  flight, none ended within soakreport.SETTLE_SECONDS) are counted per idle minute. Deployments and Pods
  also change by the cluster's own controllers (status), which the per-kind split shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from hearth.e2e import engines, fixtures, shared, soakreport, soaktraffic, wakeprogress
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.kube.resources import ResourceType
from hearth.render import names

GATEWAY = "soak"
MODELS = ("soak-a", "soak-b", "soak-c")
POOL_DEVICES = 2
KEYS = "soak-keys"
#: Tokens each request streams (the stub's 50 ms a token: under half a second once warm).
TOKENS = 8
#: A request's longest life: the models' activationTimeout (3m) and the pool's wait, with room to spare.
REQUEST_SECONDS = 300.0
#: The real engine's share of the traffic, against 1 for each stub model.
ENGINE_WEIGHT = 0.5
#: The operator's pods, as hearth install and the chart label them.
OPERATOR_SELECTOR = "app.kubernetes.io/name=hearth-operator"
NODE = ResourceType("v1", "Node", "nodes", False)
PROGRESS_SECONDS = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The soak's bounds: how long its traffic lasts, how many requests at most, and its RNG's seed."""

    duration: float
    seed: int
    max_requests: int

    @classmethod
    def seeded(cls, duration: float, max_requests: int, seed: int | None = None) -> Plan:
        return cls(duration, random.SystemRandom().randrange(2**31) if seed is None else seed, max_requests)


def _pool(run: Run) -> dict[str, Any]:
    # Bursty traffic over three members swaps often; the soak measures that, not the limit.
    return fixtures.accelerator_pool(
        _pool_name(run), devices=POOL_DEVICES, min_warm="10s", idle_grace="3s", swap_evictions=1000
    )


def _pool_name(run: Run) -> str:
    return f"soak-{run.namespace}"


def _member(run: Run, name: str) -> dict[str, Any]:
    manifest = fixtures.service(name, run.namespace, run.runtime)
    manifest["metadata"]["labels"] = {shared.LABEL: GATEWAY}
    manifest["spec"]["scaling"].pop("drainTimeout")  # the default (2m): a drain ends when idle
    manifest["spec"]["scaling"]["max"] = 1
    manifest["spec"]["pool"] = {"name": _pool_name(run)}
    return manifest


def _engine_model(run: Run) -> dict[str, Any]:
    manifest = engines.service(run, _engine_runtime(run))
    manifest["metadata"]["labels"] = {shared.LABEL: GATEWAY}
    manifest["spec"]["scaling"]["max"] = 1
    return manifest


def _engine_runtime(run: Run) -> str:
    return f"{run.runtime}-soak-llamacpp"


def _gateway(run: Run) -> dict[str, Any]:
    return shared.gateway(run, GATEWAY, endpoint=GATEWAY, keys=[{"secretName": KEYS}])


def reason(error: BaseException) -> str:
    """A lost request's reason, in few enough words to count alike ones together."""
    if isinstance(error, TimeoutError):
        return f"timeout after {REQUEST_SECONDS:.0f}s"
    if isinstance(error, ScenarioFailedError):  # Run.stream: "status 503: {...}"
        text = str(error)
        if text.startswith("status "):
            status, _, body = text[len("status ") :].partition(": ")
            try:
                code = json.loads(body).get("error", {}).get("code")
            except (ValueError, AttributeError):
                code = None
            return f"HTTP {status}" + (f" {code}" if code else "")
        return text
    return f"connection: {type(error).__name__}: {error}"[:160]


def cut_short(events: list[bytes]) -> str:
    """Why a stream that ended without ``[DONE]`` was lost: the error event it ended with (its code), or
    how far it got (no token, or cut after tokens)."""
    tokens = sum(event.startswith(b"data: {") for event in events)
    if events and events[-1].startswith(b"data: {"):
        with contextlib.suppress(ValueError, AttributeError):
            error = json.loads(events[-1][len(b"data: ") :]).get("error")
            if error:
                code = error.get("code") or error.get("type") if isinstance(error, dict) else error
                return f"the stream ended with error {code}"
    where = f"cut after {tokens} data events" if tokens else "cut before any token"
    return f"the stream ended without [DONE] ({where})"


class Traffic:
    """Sends the planned requests through the endpoint and keeps each one's outcome."""

    def __init__(self, run: Run, url: str, key: str, started: float) -> None:
        self.run, self.url, self.key, self.started = run, url, key, started
        self.outcomes: list[soakreport.Outcome] = []
        self.in_flight = 0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def send(self, model: str) -> soakreport.Outcome:
        self.in_flight += 1
        sent = self.now()
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                events, first = await self.run.stream(self.url, TOKENS, model=model, key=self.key)
            cold = bool(wakeprogress.comments(events))
            error = None
            if not events or events[-1] != b"data: [DONE]":
                error = cut_short(events)
            elif first is None:
                error = "no token before [DONE]"
            outcome = soakreport.Outcome(model, sent, self.now(), cold, first, error)
        except (TimeoutError, ScenarioFailedError, aiohttp.ClientError, OSError, ValueError) as failure:
            outcome = soakreport.Outcome(model, sent, self.now(), False, None, reason(failure))
        finally:
            self.in_flight -= 1
        self.outcomes.append(outcome)
        return outcome

    async def play(self, planned: list[soaktraffic.Planned]) -> None:
        """Send each planned request at its time (seconds after self.started) and wait for them all."""
        tasks = []
        for request in planned:
            delay = request.at - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.send(request.model)))
        await asyncio.gather(*tasks)


class Writes:
    """Watches the objects Hearth owns or writes: every event is one write (a new resourceVersion). Also
    counts wakes: a watched backend Deployment's replicas leaving 0."""

    def __init__(self, run: Run, started: float, backends: tuple[str, ...], operator_namespace: str) -> None:
        self.run, self.started, self.backends = run, started, backends
        self.seen: list[tuple[float, str]] = []
        self.wakes = 0
        self.replicas: dict[str, int] = {}
        self.gaps = 0  # watches that had to relist (a 410): writes in between were not seen
        pool = f"metadata.name={_pool_name(run)}"
        self.watched: list[tuple[ResourceType, str | None, str | None]] = [
            (resources.LLMSERVICE, run.namespace, None),
            (resources.LLMGATEWAY, run.namespace, None),
            (resources.DEPLOYMENT, run.namespace, None),
            (resources.POD, run.namespace, None),
            (resources.EVENT, run.namespace, None),
            (resources.ACCELERATOR_POOL, None, pool),
            (resources.LEASE, operator_namespace, None),
        ]

    def _deployment(self, obj: dict[str, Any]) -> None:
        name = str(obj.get("metadata", {}).get("name"))
        if name not in self.backends:
            return
        replicas = int(obj.get("spec", {}).get("replicas") or 0)
        if self.replicas.get(name) == 0 and replicas > 0:
            self.wakes += 1
        self.replicas[name] = replicas

    async def _watch(self, rt: ResourceType, namespace: str | None, field: str | None) -> None:
        while True:
            items, version = await self.run.client.list(rt, namespace=namespace, field_selector=field)
            if rt is resources.DEPLOYMENT:
                for item in items:
                    self._deployment(item)
            try:
                while True:
                    async for kind, obj in self.run.client.watch(
                        rt, resource_version=version, namespace=namespace, field_selector=field
                    ):
                        version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                        if kind == "BOOKMARK":
                            continue
                        self.seen.append((time.monotonic() - self.started, rt.kind))
                        if rt is resources.DEPLOYMENT:
                            self._deployment(obj)
            except ApiError as error:
                if error.status != 410:
                    raise
                self.gaps += 1

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._watch(*watched)) for watched in self.watched]


async def _operator_pods(run: Run) -> list[dict[str, Any]]:
    pods, _ = await run.client.list(resources.POD, label_selector=OPERATOR_SELECTOR)
    return [pod for pod in pods if pod.get("status", {}).get("phase") == "Running"]


async def _gateway_pods(run: Run) -> list[dict[str, Any]]:
    pods, _ = await run.client.list(
        resources.POD, namespace=run.namespace, label_selector=f"{names.LABEL_LLMGATEWAY}={GATEWAY}"
    )
    return [pod for pod in pods if pod.get("status", {}).get("phase") == "Running"]


async def rss(run: Run, pods: list[dict[str, Any]]) -> tuple[int, tuple[str, ...]]:
    """The summed resident memory of *pods* (their cgroups' rssBytes, from the kubelet's stats summary of
    each node they run on), and their names."""
    wanted = {(pod["metadata"]["namespace"], pod["metadata"]["name"]) for pod in pods}
    total = 0
    for node in {str(pod.get("spec", {}).get("nodeName")) for pod in pods}:
        summary = await run.client.get(NODE, node, subresource="proxy/stats/summary") or {}
        for entry in summary.get("pods") or []:
            ref = entry.get("podRef", {})
            if (ref.get("namespace"), ref.get("name")) not in wanted:
                continue
            memory = entry.get("memory") or {}
            if "rssBytes" in memory:
                total += int(memory["rssBytes"])
            else:  # an older kubelet: the containers' own
                total += sum(int((c.get("memory") or {}).get("rssBytes") or 0) for c in entry["containers"])
    return total, tuple(sorted(name for _, name in wanted))


async def _swaps(run: Run) -> int:
    pool = await run.client.get(resources.ACCELERATOR_POOL, _pool_name(run))
    return int(((pool or {}).get("status") or {}).get("evictions") or 0)


async def _set_up(run: Run) -> tuple[tuple[str, ...], str, str]:
    """The pool, its members, the engine model if given, the keys and the endpoint: (models, URL, key)."""
    await run.gateway_url("cold")  # the scaler mode is read from a rendered gateway
    if not (await run.traits("cold")).pools:
        run.not_promised("the soak's AcceleratorPool runs in builtin mode only (the KEDA modes refuse pools)")
    key = f"{run.api_key}-soak"
    await run.client.apply(fixtures.api_keys(KEYS, run.namespace, key))
    await run.client.apply(_pool(run))
    models: tuple[str, ...] = MODELS
    for name in MODELS:
        await run.client.apply(_member(run, name))
    if run.options.engine_image and run.options.gguf:
        await run.client.apply(engines.runtime(_engine_runtime(run), image=run.options.engine_image))
        await run.client.apply(_engine_model(run))
        models = (*MODELS, engines.SERVICE)
    await run.client.apply(_gateway(run))
    url = await run.gateway_url(GATEWAY)
    await run.wait(f"{', '.join(models)} listed", lambda: _listed(run, url, key, models))
    return models, url, key


async def _listed(run: Run, url: str, key: str, models: tuple[str, ...]) -> bool:
    with contextlib.suppress(aiohttp.ClientError, ValueError):
        async with run.http.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}) as response:
            document = await response.json(content_type=None)
            return response.status == 200 and sorted(e["id"] for e in document["data"]) == sorted(models)
    return False


async def _tear_down(run: Run) -> None:
    """What the namespace's deletion does not take: the cluster-scoped pool and engine runtime."""
    with contextlib.suppress(ApiError):
        await run.client.delete(resources.LLMGATEWAY, GATEWAY, run.namespace)
    for name in (*MODELS, engines.SERVICE):
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, name, run.namespace)
    with contextlib.suppress(ApiError):
        await run.client.delete(resources.ACCELERATOR_POOL, _pool_name(run))
    with contextlib.suppress(ApiError):
        await run.client.delete(resources.INFERENCE_RUNTIME, _engine_runtime(run))


async def soak(run: Run, plan: Plan, say: Callable[[str], None]) -> soakreport.SoakReport:
    """Set up, warm up (each model answered once), play the traffic, report."""
    try:
        return await _soak(run, plan, say)
    finally:
        await _tear_down(run)


async def _soak(run: Run, plan: Plan, say: Callable[[str], None]) -> soakreport.SoakReport:
    models, url, key = await _set_up(run)
    weights = [1.0] * len(MODELS) + [ENGINE_WEIGHT] * (len(models) - len(MODELS))
    planned = soaktraffic.schedule(
        plan.seed, plan.duration, models, max_requests=plan.max_requests, weights=weights
    )
    unbounded = soaktraffic.schedule(plan.seed, plan.duration, models, max_requests=10**6, weights=weights)
    say(
        f"soak: seed {plan.seed}, {plan.duration / 60:.1f} min, {len(planned)} requests planned over "
        f"{', '.join(models)} (pool of {POOL_DEVICES} devices), endpoint {url} with API keys"
    )
    # The warm-up: each model woken and answered once (the pool swaps to serve the third), so the
    # components have served every path before their RSS is taken as the start.
    warm_up = Traffic(run, url, key, time.monotonic())
    for model in models:
        outcome = await warm_up.send(model)
        if not outcome.answered:
            raise ScenarioFailedError(f"warm-up: {model} was not answered: {outcome.error}")
    say(f"soak: warm-up answered {len(models)} models in {warm_up.now():.0f}s")
    operator_pods = await _operator_pods(run)
    if not operator_pods:
        raise ScenarioFailedError(f"no running operator pod ({OPERATOR_SELECTOR})")
    operator_namespace = str(operator_pods[0]["metadata"]["namespace"])
    gateway_start = await rss(run, await _gateway_pods(run))
    operator_start = await rss(run, operator_pods)
    swaps_start = await _swaps(run)

    started = time.monotonic()
    traffic = Traffic(run, url, key, started)
    writes = Writes(run, started, tuple(names.backend(model) for model in models), operator_namespace)
    watches = writes.start()

    async def progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            swaps = await _swaps(run) - swaps_start
            gateway_now, _ = await rss(run, await _gateway_pods(run))
            operator_now, _ = await rss(run, await _operator_pods(run))
            say(
                soakreport.minute_line(
                    traffic.now(), traffic.outcomes, traffic.in_flight, writes.wakes, swaps
                )
                + f"; RSS gateway {gateway_now / 2**20:.1f} MiB, operator {operator_now / 2**20:.1f} MiB"
            )

    reporter = asyncio.create_task(progress())
    try:
        await traffic.play(planned)
        # The last request may end before the planned duration: the tail is idle time too.
        await asyncio.sleep(max(0.0, plan.duration - traffic.now()))
        ended = traffic.now()
        gateway_end = await rss(run, await _gateway_pods(run))
        operator_end = await rss(run, await _operator_pods(run))
        swaps = await _swaps(run) - swaps_start
    finally:
        for task in (reporter, *watches):
            task.cancel()
        await asyncio.gather(reporter, *watches, return_exceptions=True)
    for task in watches:
        if not task.cancelled() and task.exception() is not None:
            say(f"soak: a watch ended early: {task.exception()}")
    if writes.gaps:
        say(f"soak: {writes.gaps} watch(es) relisted after 410 Gone: writes in between were not counted")
    idle = soakreport.idle_intervals(soakreport.busy_intervals(traffic.outcomes), 0.0, ended)
    return soakreport.SoakReport(
        seed=plan.seed,
        duration_seconds=ended,
        models=models,
        outcomes=tuple(traffic.outcomes),
        wakes=writes.wakes,
        swaps=swaps,
        memory=(
            soakreport.Memory("gateway", gateway_start[0], gateway_end[0], gateway_start[1], gateway_end[1]),
            soakreport.Memory(
                "operator", operator_start[0], operator_end[0], operator_start[1], operator_end[1]
            ),
        ),
        idle_writes=soakreport.IdleWrites.of(writes.seen, idle),
        unsent=len(unbounded) - len(planned),
    )
