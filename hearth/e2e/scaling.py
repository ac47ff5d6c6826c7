"""The scaling scenarios of ``hearth e2e`` (1-5): an idle backend reaches 0, a cold stream is held and told
the wake, load over the gateways scales 1 -> 2, the backend returns to 0 no sooner than the stabilization
window, and two gateway replicas each wake it alone and sum their demand. Written against public behaviour
(replicas, the gateways' metrics) so every scaler mode runs them; what only builtin mode promises (the
gateway's own wake) is checked only there."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hearth.api import scalermodes
from hearth.e2e import fixtures, promtext, steps, wakeprogress
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import names

#: The issue 7 budget for admission → scale accepted. Reported, not asserted: timing is for benchmarks.
WAKE_PATCH_BUDGET_MS = 100


async def idle_reaches_zero(run: Run) -> str:
    """An idle backend reaches 0, and the LLMService's Scaling condition names the scaler mode the operator
    rendered into its gateways (with KEDA installed, ``--scaler-mode auto`` means metrics-api)."""
    await run.wait("backend at 0 replicas", lambda: steps.at(run, "cold", 0))
    traits = await run.traits("cold")
    mode = traits.mode
    scaling = await run.wait("the Scaling condition", lambda: _condition(run, "cold", "Scaling"))
    reason, message = scaling.get("reason"), str(scaling.get("message"))
    if (reason, message) != (traits.scaling_reason, traits.scaling_message):
        raise ScenarioFailedError(
            f"the gateways run in {mode} mode, but the Scaling condition says {reason}: {message}"
        )
    return f"idle backend scaled to 0 replicas; scaler mode {mode} (Scaling {reason}: {message})"


async def _condition(run: Run, name: str, kind: str) -> dict[str, Any] | None:
    service = await run.client.get(resources.LLMSERVICE, name, run.namespace)
    for condition in (service or {}).get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


async def cold_stream_wakes(run: Run) -> str:
    """A cold request is held with heartbeats and answered, with the wake's timeline in every mode: request
    sent -> the backend's scale set to 1 (by the gateway, or by KEDA) -> a ready pod -> the first token. In
    builtin mode the gateway's own metrics add how long after admission its 0->1 scale was accepted."""
    url = await run.gateway_url("cold")
    before = await run.gateway_metrics("cold")
    async with _scale_timeline(run, "cold") as seen:
        started = time.monotonic()
        events, first_token = await run.stream(url, tokens=8)
        # The Deployment's status may trail the EndpointSlice the gateway forwarded on by a moment.
        for _ in range(50):
            if "ready" in seen:
                break
            await asyncio.sleep(0.1)
    heartbeats = sum(event == b": heartbeat" for event in events)
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError(f"the stream did not end with [DONE] (last event {events[-1][:60]!r})")
    if heartbeats == 0:
        raise ScenarioFailedError("no heartbeat while the backend woke")
    progress = wakeprogress.told(events)
    _check_progress(progress)
    if (await run.replicas("cold"))[0] < 1:
        raise ScenarioFailedError("backend not scaled up")
    assert first_token is not None
    after = await run.gateway_metrics("cold")
    forwarded = _mean(before, after, "hearth_gateway_activation_wait_seconds")
    timeline = (
        f"wake: request -> scale requested {_since(seen, 'scaled', started)} -> pod ready "
        f"{_since(seen, 'ready', started)} -> first token {first_token:.2f}s"
    )
    if forwarded is not None:
        timeline += f"; forwarded to the ready backend {forwarded:.1f}s after admission"
    if (await run.traits("cold")).wakes is scalermodes.Driver.GATEWAY:
        wakes = promtext.total_delta(before, after, "hearth_gateway_wake_patch_seconds_count")
        if wakes != 1:
            raise ScenarioFailedError(f"expected the gateways to scale the backend 0->1 once, saw {wakes:g}")
        patch_ms = promtext.total_delta(before, after, "hearth_gateway_wake_patch_seconds_sum") * 1000
        within = "within" if patch_ms <= WAKE_PATCH_BUDGET_MS else "OVER"
        timeline += (
            f"; gateway's scale 0->1 accepted {patch_ms:.0f}ms after admission ({within} the "
            f"{WAKE_PATCH_BUDGET_MS}ms budget)"
        )
    overhead = first_token - fixtures.STARTUP_DELAY_SECONDS
    recorded = await run.wait("status.lastColdStartDuration", lambda: _cold_start_recorded(run), within=30)
    return (
        f"{heartbeats} heartbeats; {progress.describe()}; {timeline} (stub load "
        f"{fixtures.STARTUP_DELAY_SECONDS}s, so Hearth + "
        f"Kubernetes added {overhead:.1f}s); status.lastColdStartDuration {recorded}; "
        f"total {time.monotonic() - started:.1f}s"
    )


def _check_progress(progress: wakeprogress.Told) -> None:
    """A held stream was told the wake's phases, in order, from its LLMService's status, ending ready."""
    told = [phase for phase, _ in progress.phases]
    if not told:
        raise ScenarioFailedError("no progress comment in the held stream")
    if "unknown" in told:
        raise ScenarioFailedError(
            f"the gateway could not read its LLMService's status: {progress.describe()}"
        )
    if not progress.in_order or told[-1] != "ready":
        raise ScenarioFailedError(f"phases out of order or not ending ready: {progress.describe()}")
    if "loading" not in told:
        raise ScenarioFailedError(f"the stub's {fixtures.STARTUP_DELAY_SECONDS}s load was not told: {told}")


async def _cold_start_recorded(run: Run) -> str | None:
    service = await run.client.get(resources.LLMSERVICE, "cold", run.namespace)
    duration = (service or {}).get("status", {}).get("lastColdStartDuration")
    return str(duration) if duration else None


async def load_scales_to_two(run: Run) -> str:
    """Requests through the Service spread over every gateway replica; 4 long streams scale 1 -> 2."""
    url = await run.gateway_url("cold")
    split = await _spread(run, url, requests=20)
    async with steps.load(run, [url] * 4):
        await run.wait("2 ready backend replicas", lambda: steps.ready(run, "cold", 2), within=120)
    return f"20 requests through the Service split {split}; 4 concurrent long streams -> 2 ready replicas"


async def back_to_zero(run: Run) -> str:
    """N -> 0, and never a scale-down sooner than the stabilization window after the load stopped."""
    ended = run.load_ended_at or time.monotonic()
    start = (await run.replicas("cold"))[0]
    first_down: float | None = None
    deadline = time.monotonic() + 180
    while True:
        replicas = (await run.replicas("cold"))[0]
        if first_down is None and 0 <= replicas < start:
            first_down = time.monotonic() - ended
        if replicas == 0:
            break
        if time.monotonic() > deadline:
            raise ScenarioFailedError(f"still at {replicas} replicas 180s after the load ended")
        await asyncio.sleep(0.5)
    assert first_down is not None
    window = fixtures.STABILIZATION_SECONDS
    if first_down < window:
        raise ScenarioFailedError(
            f"scaled down {first_down:.1f}s after the load ended, inside the {window}s stabilization window"
        )
    return (
        f"first scale-down {first_down:.1f}s after the load ended (window {window}s), 0 replicas after "
        f"{time.monotonic() - ended:.1f}s (the gateways' activation grace keeps demand at 1 first)"
    )


async def gateways_wake_once_and_sum_demand(run: Run) -> str:
    """Each of two gateway replicas alone wakes the backend from 0 (a cold stream on one pod, back to 0,
    then on the other: an autoscaler that reads one replica only would miss one). Then cold requests on
    both at once: their summed demand (1 + 1, target 1) scales to 2 where either alone would ask for 1,
    and in builtin mode the gateways scale 0->1 once between them, not once each."""
    pods = await steps.two_gateways(run)
    traits = await run.traits("cold")
    woken = []
    for pod in pods[:2]:
        # At 0 by the Deployment's spec is not cold yet: for a moment the pod leaving is still a ready
        # endpoint, and a gateway would forward to it (nothing held, nothing told).
        await run.wait("backend at 0 replicas", lambda: steps.at(run, "cold", 0))
        await run.wait("no ready backend endpoint", lambda: steps.no_ready_endpoint(run, "cold"))
        # And this gateway pod has seen it: its watch may lag the API server's answer above (under load,
        # by enough for the stream to reach the leaving pod, which still serves while it drains).
        await run.wait(
            f"gateway pod {pod.name} routes cold nowhere",
            functools.partial(steps.routes_nowhere, run, pod, "cold"),
        )
        started = time.monotonic()
        events, _ = await run.stream(pod.url, tokens=1)
        if events[-1] != b"data: [DONE]":
            raise ScenarioFailedError(f"a cold stream on gateway pod {pod.name} was not answered")
        # Scenario 2's wake is in the history now: this one is told an ETA (reported, not asserted).
        progress = wakeprogress.told(events)
        _check_progress(progress)
        if progress.predicted_s is None:
            raise ScenarioFailedError(f"no ETA after an earlier wake: {progress.describe()}")
        woken.append(f"{pod.name} in {time.monotonic() - started:.1f}s ({progress.describe()})")
    await run.wait("backend at 0 replicas", lambda: steps.at(run, "cold", 0))
    generation = await steps.generation(run, "cold")
    before = await run.gateway_metrics("cold")
    async with steps.load(run, [pod.url for pod in pods[:2]]):
        await run.wait("2 ready backend replicas", lambda: steps.ready(run, "cold", 2), within=120)
    after = await run.gateway_metrics("cold")
    scaled = promtext.total_delta(before, after, "hearth_gateway_wake_requests_total", result="scaled")
    conflicts = promtext.total_delta(before, after, "hearth_gateway_wake_requests_total", result="conflict")
    if scaled > 1:
        raise ScenarioFailedError(f"{scaled:g} gateways each scaled the backend up from 0")
    writes = await steps.generation(run, "cold") - generation
    if writes > 2:
        raise ScenarioFailedError(f"{writes} scale changes for 0 -> 1 -> 2 (a storm)")
    budget = await run.client.get(
        resources.POD_DISRUPTION_BUDGET, names.gateway_disruption_budget("cold"), run.namespace
    )
    if budget is None:
        raise ScenarioFailedError("no PodDisruptionBudget for the replicated gateway")
    waker = (
        f"{scaled:g} gateway 0->1 scale ({conflicts:g} lost the race)"
        if traits.wakes is scalermodes.Driver.GATEWAY
        else f"woken by {traits.wakes}"
    )
    return (
        f"a cold stream on each gateway pod alone woke the backend ({', '.join(woken)}); one on both at "
        f"once: {waker}, {writes} scale changes in all; summed demand 2 -> 2 ready replicas; gateway "
        f"PodDisruptionBudget maxUnavailable {budget['spec'].get('maxUnavailable')}"
    )


@contextlib.asynccontextmanager
async def _scale_timeline(run: Run, name: str) -> AsyncIterator[dict[str, float]]:
    """When (monotonic) the Deployment *name* was first asked for a replica ("scaled") and first had one
    ready ("ready"), from a watch opened before the block runs."""
    seen: dict[str, float] = {}

    async def follow(version: str) -> None:
        while True:
            try:
                async for kind, obj in run.client.watch(
                    resources.DEPLOYMENT,
                    resource_version=version,
                    namespace=run.namespace,
                    timeout_seconds=60,
                ):
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if kind == "BOOKMARK" or obj.get("metadata", {}).get("name") != name:
                        continue
                    now = time.monotonic()
                    if int(obj.get("spec", {}).get("replicas") or 0) >= 1:
                        seen.setdefault("scaled", now)
                    if int(obj.get("status", {}).get("readyReplicas") or 0) >= 1:
                        seen.setdefault("ready", now)
            except ApiError:
                version = await _resource_version(run, name)

    watcher = asyncio.create_task(follow(await _resource_version(run, name)))
    try:
        yield seen
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _resource_version(run: Run, name: str) -> str:
    deployment = await run.client.get(resources.DEPLOYMENT, name, run.namespace)
    return str((deployment or {}).get("metadata", {}).get("resourceVersion") or "0")


def _since(seen: dict[str, float], what: str, started: float) -> str:
    return f"{seen[what] - started:.2f}s" if what in seen else "(not seen)"


async def _spread(run: Run, url: str, *, requests: int) -> str:
    """Send short requests on fresh connections (so kube-proxy picks a pod for each); say how they split
    over the gateway pods, and fail if some ready gateway pod got none."""
    before = await run.gateway_metrics("cold")
    body = {"model": "e2e", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(requests):
            async with session.post(f"{url}/v1/chat/completions?tokens=1", json=body) as response:
                if response.status != 200:
                    raise ScenarioFailedError(f"request through the Service: status {response.status}")
                await response.read()
    after = await run.gateway_metrics("cold")
    counts = {
        pod: promtext.delta(before.get(pod, {}), samples, "hearth_gateway_requests_total", code="200")
        for pod, samples in after.items()
    }
    if len(counts) > 1 and min(counts.values()) == 0:
        raise ScenarioFailedError(f"some gateway replica got no request: {counts}")
    return "/".join(f"{count:g}" for count in counts.values()) + f" over {len(counts)} gateway pod(s)"


def _mean(before: dict[str, promtext.Samples], after: dict[str, promtext.Samples], name: str) -> float | None:
    count = promtext.total_delta(before, after, f"{name}_count")
    return promtext.total_delta(before, after, f"{name}_sum") / count if count else None


SCENARIOS = [
    ("1 idle backend reaches 0", idle_reaches_zero),
    ("2 cold stream: heartbeats, tokens, [DONE]", cold_stream_wakes),
    ("3 load over the gateways scales 1 -> 2", load_scales_to_two),
    ("4 back to 0, not before the window", back_to_zero),
    ("5 two gateways: either wakes, demand summed", gateways_wake_once_and_sum_demand),
]
