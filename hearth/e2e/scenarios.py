"""The end-to-end scenarios, in order (each starts from the state the previous one left). They are written
against public behaviour (replicas, Leases, the gateway's metrics) so the KEDA scaler modes can reuse them;
the parts only builtin mode promises (the gateway's own wake) are checked only there."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hearth.api import scalermodes
from hearth.common import timestamps
from hearth.e2e import (
    caches,
    delivery,
    drain,
    engines,
    failfast,
    faults,
    fixtures,
    pools,
    promtext,
    scalertls,
    shared,
    wakeprogress,
    warm,
)
from hearth.e2e.runner import GatewayPod, Run, ScenarioFailedError
from hearth.kube import endpointslices, resources
from hearth.kube.errors import ApiError
from hearth.render import names

#: The issue 7 budget for admission → scale accepted. Reported, not asserted: timing is for benchmarks.
WAKE_PATCH_BUDGET_MS = 100
#: Long enough (50 ms a token) to outlast any scenario that holds load; streams are cancelled at the end.
STEADY_TOKENS = 2400
#: Steady traffic for the gateway-restart scenarios: 4 clients, one short request each every 0.1 s at most.
TRAFFIC_WORKERS = 4
TRAFFIC_PERIOD = 0.1
#: DESIGN's floor for requests answered when a gateway replica is killed while two run.
KILL_SUCCESS_RATIO = 0.9
#: What `hearth install --metrics-port` creates (names kept here: e2e may not import the installer).
METRICS_SERVICE = "hearth-operator-metrics"
METRICS_READER = "hearth-metrics-reader"
#: What `kubectl rollout restart` sets; any new value in the pod template rolls the pods.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


async def idle_reaches_zero(run: Run) -> str:
    """An idle backend reaches 0, and the LLMService's Scaling condition names the scaler mode the operator
    rendered into its gateways (with KEDA installed, ``--scaler-mode auto`` means metrics-api)."""
    await run.wait("backend at 0 replicas", lambda: _at(run, "cold", 0))
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
    async with _load(run, [url] * 4):
        await run.wait("2 ready backend replicas", lambda: _ready(run, "cold", 2), within=120)
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
    pods = await _two_gateways(run)
    traits = await run.traits("cold")
    woken = []
    for pod in pods[:2]:
        # At 0 by the Deployment's spec is not cold yet: for a moment the pod leaving is still a ready
        # endpoint, and a gateway would forward to it (nothing held, nothing told).
        await run.wait("backend at 0 replicas", lambda: _at(run, "cold", 0))
        await run.wait("no ready backend endpoint", lambda: _no_ready_endpoint(run, "cold"))
        # And this gateway pod has seen it: its watch may lag the API server's answer above (under load,
        # by enough for the stream to reach the leaving pod, which still serves while it drains).
        await run.wait(
            f"gateway pod {pod.name} routes cold nowhere",
            functools.partial(_routes_nowhere, run, pod, "cold"),
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
    await run.wait("backend at 0 replicas", lambda: _at(run, "cold", 0))
    generation = await _generation(run, "cold")
    before = await run.gateway_metrics("cold")
    async with _load(run, [pod.url for pod in pods[:2]]):
        await run.wait("2 ready backend replicas", lambda: _ready(run, "cold", 2), within=120)
    after = await run.gateway_metrics("cold")
    scaled = promtext.total_delta(before, after, "hearth_gateway_wake_requests_total", result="scaled")
    conflicts = promtext.total_delta(before, after, "hearth_gateway_wake_requests_total", result="conflict")
    if scaled > 1:
        raise ScenarioFailedError(f"{scaled:g} gateways each scaled the backend up from 0")
    writes = await _generation(run, "cold") - generation
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


async def _two_gateways(run: Run) -> list[GatewayPod]:
    """The ready gateway pods, when the scenario needs two; a mode limited to one gateway promises one."""
    traits = await run.traits("cold")
    if traits.max_gateway_replicas is not None and traits.max_gateway_replicas < 2:
        run.not_promised(f"{traits.mode} runs one gateway replica: {traits.max_gateway_replicas_why}")
    pods = await run.gateway_pods("cold")
    if len(pods) < 2:
        run.skip(f"needs 2 gateway replicas, found {len(pods)} (hearth install --gateway-replicas 2)")
    return pods


async def operator_failover_keeps_replicas(run: Run) -> str:
    """Delete the leading operator pod under steady load: the backend's scale is not touched while the
    Lease moves, nor for a stabilization window after; then the new leader alone scales 2 -> 0."""
    lease = await _leader_lease(run)
    if lease is None:
        run.skip(f"no Lease {names.LEADER_ELECTION_ID}: the operator does not run with --leader-elect")
    lease_namespace = lease["metadata"]["namespace"]
    old_identity = str(lease.get("spec", {}).get("holderIdentity") or "")
    old_pod = old_identity.split("_", maxsplit=1)[0]
    if not old_pod or await run.client.get(resources.POD, old_pod, lease_namespace) is None:
        run.skip(f"the leader {old_identity!r} is not a pod in namespace {lease_namespace}")
    pods = await run.gateway_pods("cold")
    urls = [pod.url for pod in pods[:2]] if len(pods) >= 2 else [await run.gateway_url("cold")] * 2
    async with _load(run, urls):
        await run.wait("2 ready backend replicas", lambda: _ready(run, "cold", 2), within=120)
        generation = await _generation(run, "cold")
        deleted = time.monotonic()
        await run.client.delete(resources.POD, old_pod, lease_namespace)
        new_identity = await _new_leader(run, lease_namespace, old_identity, generation)
        takeover = time.monotonic() - deleted
        window_end = time.monotonic() + fixtures.STABILIZATION_SECONDS + 5
        while time.monotonic() < window_end:
            await _expect_unchanged(run, generation)
            await asyncio.sleep(0.5)
    await run.wait("the new leader to scale the backend to 0", lambda: _at(run, "cold", 0), within=180)
    return (
        f"deleted leader pod {old_pod}; {new_identity.split('_')[0]} took the Lease in {takeover:.1f}s; "
        f"2 replicas, scale untouched for {fixtures.STABILIZATION_SECONDS + 5}s more under load; after the "
        f"load the new leader scaled to 0"
    )


async def stream_survives_pod_deletion(run: Run) -> str:
    url = await run.gateway_url("cold")
    stream = asyncio.create_task(run.stream(url, tokens=120))  # ~6 s of tokens
    try:
        await run.wait("a ready backend", lambda: _ready(run, "cold", 1))
        await asyncio.sleep(2)
        pods, _ = await run.client.list(
            resources.POD, namespace=run.namespace, label_selector="serving.hearth.dev/llmservice=cold"
        )
        for pod in pods:
            await run.client.delete(resources.POD, pod["metadata"]["name"], run.namespace)
        events, _ = await stream
    finally:
        # A failed step above must not leave the stream running into the next scenario.
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError("the stream was cut when its backend pod was deleted")
    tokens = sum(event.startswith(b"data: {") for event in events)
    return f"deleted {len(pods)} backend pod(s) mid-stream; all {tokens} tokens and [DONE] arrived (drain)"


async def gateway_restart_loses_nothing(run: Run) -> str:
    """A rolling restart of the gateway under steady traffic: the old replicas fail readiness, keep
    answering through their drain delay while kube-proxy moves traffic away, finish what they hold, and
    not one request fails."""
    url = await run.gateway_url("cold")
    await _warm(run, url)
    async with _traffic(url) as traffic:
        await asyncio.sleep(2)
        await run.client.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": names.gateway("cold"), "namespace": run.namespace},
                "spec": {
                    "template": {"metadata": {"annotations": {RESTARTED_AT: timestamps.format_seconds()}}}
                },
            },
            field_manager="hearth-e2e",
        )
        replicas = await run.wait("the gateway rollout to finish", lambda: _rolled_out(run), within=180)
        await asyncio.sleep(2)
    if traffic.failed:
        raise ScenarioFailedError(f"{traffic.describe()} through a rolling restart of the gateway")
    return f"{traffic.describe()} while all {replicas} gateway replicas were replaced one by one"


async def gateway_kill_keeps_serving(run: Run) -> str:
    """One of two gateway replicas is deleted with grace period 0 under steady traffic: its pod object is
    gone at once, and the kubelet kills the container after its 2 s minimum (SIGTERM, then SIGKILL, in the
    middle of the gateway's 5 s drain), cutting what it still holds. DESIGN asks that at least 90% of the
    requests still succeed."""
    pods = await _two_gateways(run)
    url = await run.gateway_url("cold")
    await _warm(run, url)
    victim = pods[0].name
    async with _traffic(url) as traffic:
        await asyncio.sleep(2)
        await run.client.delete(resources.POD, victim, run.namespace, grace_period=0)
        await run.wait(
            f"{len(pods)} ready gateway pods again",
            lambda: _replaced(run, victim, len(pods)),
            within=120,
        )
        await asyncio.sleep(2)
    if traffic.answered < KILL_SUCCESS_RATIO * traffic.sent:
        raise ScenarioFailedError(
            f"{traffic.describe()} around the kill of {victim}: below {KILL_SUCCESS_RATIO:.0%}"
        )
    needed = f"at least {KILL_SUCCESS_RATIO:.0%} needed"
    return f"killed gateway pod {victim} under traffic: {traffic.describe()} ({needed})"


async def operator_metrics_are_guarded(run: Run) -> str:
    """The operator's /metrics (hearth install --metrics-port) answer over HTTPS, refuse a caller without a
    token, and serve one whose ServiceAccount is bound to the hearth-metrics-reader ClusterRole."""
    services, _ = await run.client.list(resources.SERVICE, field_selector=f"metadata.name={METRICS_SERVICE}")
    if not services:
        run.skip(f"no Service {METRICS_SERVICE}: install with --metrics-port 8443 to serve operator metrics")
    service = services[0]
    namespace = service["metadata"]["namespace"]
    port = int(service["spec"]["ports"][0]["port"])
    url = await run.service_url(METRICS_SERVICE, namespace, port, scheme="https") + "/metrics"
    binding = f"{run.namespace}-scraper"
    try:
        token = await _metrics_reader_token(run, binding)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the operator's own self-signed pair
        async with run.http.get(url, ssl=insecure) as anonymous:
            if anonymous.status != 401:
                raise ScenarioFailedError(f"without a token: expected 401, got {anonymous.status}")
        reader = {"Authorization": f"Bearer {token}"}
        status, body = 0, ""
        for _ in range(10):  # RBAC caches may take a moment to see the new binding
            async with run.http.get(url, ssl=insecure, headers=reader) as response:
                status, body = response.status, await response.text()
            if status == 200:
                break
            await asyncio.sleep(1)
        if status != 200 or "hearth_operator_leader" not in body:
            raise ScenarioFailedError(f"with a reader's token: {status} {body[:120]!r}")
    finally:
        await run.client.delete(resources.CLUSTER_ROLE_BINDING, binding)
    leading = promtext.parse(body).get("hearth_operator_leader", float("nan"))
    return (
        f"https://{METRICS_SERVICE}.{namespace}:{port}/metrics: 401 without a token, 200 with a "
        f"hearth-metrics-reader token (the pod behind it reports hearth_operator_leader {leading:g})"
    )


async def _metrics_reader_token(run: Run, binding: str) -> str:
    """A token of a new ServiceAccount bound (by *binding*) to the hearth-metrics-reader ClusterRole."""
    account = "e2e-scraper"
    metadata = {"name": account, "namespace": run.namespace}
    await run.client.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata})
    role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": METRICS_READER}
    await run.client.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding, "labels": {"app.kubernetes.io/part-of": "hearth-e2e"}},
            "roleRef": role,
            "subjects": [{"kind": "ServiceAccount", **metadata}],
        }
    )
    return await run.client.service_account_token(run.namespace, account)


async def auth_then_reject_mode(run: Run) -> str:
    """The "rejecting" LLMService has API keys: without one, 401 and its backend stays at 0 (nothing
    unauthenticated may wake an accelerator); with one, reject mode's 503 and Retry-After at once."""
    url = await run.gateway_url("rejecting")
    await run.wait("the rejecting backend at 0", lambda: _at(run, "rejecting", 0))
    chat = f"{url}/v1/chat/completions"
    for headers in ({}, {"Authorization": "Bearer sk-not-the-key"}):
        async with run.http.post(chat, json={"messages": []}, headers=headers) as response:
            if response.status != 401:
                raise ScenarioFailedError(f"without a valid key: expected 401, got {response.status}")
    # Longer than the gateway's wake (milliseconds) and one autoscaler interval (2 s) together.
    await asyncio.sleep(4)
    if (await run.replicas("rejecting"))[0] != 0:
        raise ScenarioFailedError("an unauthenticated request woke the backend")
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {run.api_key}"}
    async with run.http.post(chat, json={"messages": []}, headers=headers) as response:
        elapsed = time.monotonic() - started
        if response.status != 503 or "Retry-After" not in response.headers:
            raise ScenarioFailedError(f"with the key: expected 503 with Retry-After, got {response.status}")
        retry = response.headers["Retry-After"]
    return (
        f"no key or a wrong key: 401, backend left at 0; with the key: 503 with Retry-After {retry} in "
        f"{elapsed * 1000:.0f} ms (the backend can never schedule)"
    )


async def deletion_removes_everything(run: Run) -> str:
    # Every LLMService the run made (the other scenario modules' too), since their children are all counted.
    services, _ = await run.client.list(resources.LLMSERVICE, namespace=run.namespace)
    for service in services:
        await run.client.delete(resources.LLMSERVICE, service["metadata"]["name"], run.namespace)

    async def gone() -> bool:
        kinds = (
            resources.DEPLOYMENT,
            resources.SERVICE,
            resources.SERVICE_ACCOUNT,
            resources.ROLE,
            resources.POD_DISRUPTION_BUDGET,
            resources.NETWORK_POLICY,
        )
        for rt in kinds:
            items, _ = await run.client.list(
                rt, namespace=run.namespace, label_selector="app.kubernetes.io/managed-by=hearth"
            )
            if items:
                return False
        return True

    await run.wait("every child garbage-collected", gone, within=120)
    return (
        f"{len(services)} LLMService(s) deleted: every Deployment, Service, ServiceAccount, Role, "
        "PodDisruptionBudget and NetworkPolicy is gone"
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


@contextlib.asynccontextmanager
async def _load(run: Run, urls: list[str]) -> AsyncIterator[None]:
    """One long stream to each URL for the duration of the block; a stream that ends early is a failure
    (the load it stood for would have dropped)."""
    streams = [asyncio.create_task(run.stream(url, tokens=STEADY_TOKENS)) for url in urls]
    try:
        yield
        for stream in streams:
            if stream.done():
                raise ScenarioFailedError(f"a load stream ended early: {stream.exception() or 'completed'}")
    finally:
        run.load_ended_at = time.monotonic()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)


@dataclasses.dataclass
class _Traffic:
    answered: int = 0
    failed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    @property
    def sent(self) -> int:
        return self.answered + sum(self.failed.values())

    def describe(self) -> str:
        text = f"{self.answered} of {self.sent} requests answered"
        if self.failed:
            reasons = ", ".join(f"{reason}: {count}" for reason, count in self.failed.most_common())
            text += f" ({reasons})"
        return text


@contextlib.asynccontextmanager
async def _traffic(url: str) -> AsyncIterator[_Traffic]:
    """Steady short requests for the duration of the block: TRAFFIC_WORKERS clients, each starting one
    every TRAFFIC_PERIOD seconds (or when the last answered, if later) on a fresh connection, so kube-proxy
    picks a gateway pod for each. Requests still running when the block ends are awaited and counted."""
    traffic = _Traffic()
    stop = asyncio.Event()
    body = {"model": "e2e", "messages": [{"role": "user", "content": "hi"}]}
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=3)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    async with session.post(f"{url}/v1/chat/completions?tokens=2", json=body) as response:
                        await response.read()
                        if response.status == 200:
                            traffic.answered += 1
                        else:
                            traffic.failed[f"status {response.status}"] += 1
                except (aiohttp.ClientError, TimeoutError) as error:
                    traffic.failed[type(error).__name__] += 1
                await asyncio.sleep(max(0.0, started + TRAFFIC_PERIOD - time.monotonic()))

        clients = [asyncio.create_task(client()) for _ in range(TRAFFIC_WORKERS)]
        try:
            yield traffic
        finally:
            stop.set()
            await asyncio.gather(*clients)


async def _warm(run: Run, url: str) -> None:
    """One request answered, so the backend is up before traffic is measured (a cold start is not the
    subject of the gateway scenarios)."""
    events, _ = await run.stream(url, tokens=1)
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError("the warm-up request was not answered")


async def _gateway_pods(run: Run) -> list[dict[str, Any]]:
    pods, _ = await run.client.list(
        resources.POD, namespace=run.namespace, label_selector=f"{names.LABEL_GATEWAY}=cold"
    )
    return pods


async def _rolled_out(run: Run) -> int:
    """The gateway's replica count once every pod runs the newest template and no old pod is left (not
    even one still draining); 0 before."""
    deployment = await run.client.get(resources.DEPLOYMENT, names.gateway("cold"), run.namespace) or {}
    metadata, spec, status = (deployment.get(key, {}) for key in ("metadata", "spec", "status"))
    wanted = int(spec.get("replicas") or 1)
    done = (
        int(status.get("observedGeneration") or 0) >= int(metadata.get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and len(await _gateway_pods(run)) == wanted
    )
    return wanted if done else 0


async def _replaced(run: Run, victim: str, wanted: int) -> bool:
    """The killed pod is gone and its replacement is ready."""
    if any(pod["metadata"]["name"] == victim for pod in await _gateway_pods(run)):
        return False
    return len(await run.gateway_pods("cold")) >= wanted


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


async def _generation(run: Run, name: str) -> int:
    """The backend Deployment's generation: it grows with every change of its scale."""
    deployment = await run.client.get(resources.DEPLOYMENT, names.backend(name), run.namespace)
    return int((deployment or {}).get("metadata", {}).get("generation") or 0)


async def _expect_unchanged(run: Run, generation: int) -> None:
    now = await _generation(run, "cold")
    if now != generation:
        replicas = (await run.replicas("cold"))[0]
        raise ScenarioFailedError(
            f"the backend's scale changed during the failover (now {replicas} replicas)"
        )


async def _leader_lease(run: Run) -> dict[str, Any] | None:
    leases, _ = await run.client.list(
        resources.LEASE, field_selector=f"metadata.name={names.LEADER_ELECTION_ID}"
    )
    return leases[0] if leases else None


async def _new_leader(run: Run, namespace: str, old_identity: str, generation: int) -> str:
    """Wait for another holder of the Lease, checking meanwhile that nothing touched the backend's scale."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await _expect_unchanged(run, generation)
        lease = await run.client.get(resources.LEASE, names.LEADER_ELECTION_ID, namespace)
        holder = str((lease or {}).get("spec", {}).get("holderIdentity") or "")
        if holder and holder != old_identity:
            return holder
        await asyncio.sleep(0.5)
    raise ScenarioFailedError("no new operator took the leader Lease within 120s")


async def _at(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[0] == replicas


async def _routes_nowhere(run: Run, pod: GatewayPod, model: str) -> bool:
    """Whether *pod* routes *model* to no endpoint now (its own view: ``/hearth/queues?routing=1``)."""
    async with run.http.get(f"{pod.url}/hearth/queues", params={"routing": "1"}) as response:
        document = await response.json(content_type=None)
    routing = (document.get("routing") or {}).get(model)
    if routing is None:
        raise ScenarioFailedError(f"gateway pod {pod.name} does not say where it routes {model}: {document}")
    return int(routing.get("endpoints", 1)) == 0


async def _no_ready_endpoint(run: Run, name: str) -> bool:
    """Whether the backend Service's EndpointSlices (what the gateways watch) list no ready endpoint."""
    slices, _ = await run.client.list(
        resources.ENDPOINT_SLICE,
        namespace=run.namespace,
        label_selector=endpointslices.selector(names.backend_service(name)),
    )
    return not any(
        endpointslices.is_ready(endpoint)
        for endpoint_slice in slices
        for endpoint in endpoint_slice.get("endpoints") or []
    )


async def _ready(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[1] >= replicas


SCENARIOS = [
    ("1 idle backend reaches 0", idle_reaches_zero),
    ("2 cold stream: heartbeats, tokens, [DONE]", cold_stream_wakes),
    ("3 load over the gateways scales 1 -> 2", load_scales_to_two),
    ("4 back to 0, not before the window", back_to_zero),
    ("5 two gateways: either wakes, demand summed", gateways_wake_once_and_sum_demand),
    ("6 operator leader deleted under load", operator_failover_keeps_replicas),
    ("7 stream survives backend pod deletion", stream_survives_pod_deletion),
    ("8 gateway rolling restart loses nothing", gateway_restart_loses_nothing),
    ("9 a killed gateway replica: >= 90% served", gateway_kill_keeps_serving),
    ("10 auth, then reject mode's 503 at once", auth_then_reject_mode),
    ("11 operator metrics: HTTPS + token checks", operator_metrics_are_guarded),
    ("12 NodeLocalPVC cache: prewarm Job, warm start", caches.node_local_pvc_prewarmed),
    ("13 HostPath cache: prewarm Job, warm start", caches.host_path_prewarmed),
    *drain.SCENARIOS,
    *shared.SCENARIOS,
    *pools.SCENARIOS,
    *failfast.SCENARIOS,
    *engines.SCENARIOS,
    *warm.SCENARIOS,
    *scalertls.SCENARIOS,
    *delivery.SCENARIOS,
    *faults.SCENARIOS,
    ("14 deleting LLMServices removes everything", deletion_removes_everything),
]
