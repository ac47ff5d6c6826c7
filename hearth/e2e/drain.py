"""The drain scenarios of ``hearth e2e`` (issue 32): with the default drainTimeout (2m), an idle backend's
pod is gone within the kubelet's own stop time + 2 s of its Deployment reaching 0, and a stream in flight
when the backend is scaled to 0 still completes whole before its pod goes. The mechanism (the drain sidecar
answering the engine's preStop) is the same in every scaler mode, so both run in each.

The kubelet's own stop time is measured here too, on a bare pod of the same stub image without a preStop:
delete -> gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from hearth.e2e import fixtures
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import names

#: What the issue allows beyond the kubelet's own stop time, from Deployment at 0 to the pod gone.
BUDGET_SECONDS = 2.0
#: How often the scenarios look at Deployments and pods while timing (the API server is local).
POLL_SECONDS = 0.1
#: The issue's stream: 120 tokens, 50 ms apart in the stub runtime (about 6 s).
STREAM_TOKENS = 120
IDLE_SERVICE = "drain-idle"
STREAM_SERVICE = "drain-stream"
BARE_POD = "drain-kubelet-stop"
#: How long the bare pod stays Ready before it is deleted, when its stop is to be compared with a pod that
#: has been up a while (the pool swap's victim). The kubelet acts on a deletion at its pod worker's next
#: sync, which waits for a pod-cache refresh newer than the last sync (the PLEG relists every 1 s): a pod
#: deleted right after it turned Ready took 2.0 s on the test bed, one Ready for 3 s 1.0 s (three of each).
BARE_POD_SETTLE_SECONDS = 3.0
DEFAULT_DRAIN_TIMEOUT = "2m"
#: The stub runtime's serving port (fixtures.runtime).
ENGINE_PORT = 8000


def service(run: Run, name: str) -> dict[str, Any]:
    """An LLMService with the default drainTimeout (the key left out, as a user would)."""
    manifest = fixtures.service(name, run.namespace, run.runtime)
    manifest["spec"]["scaling"].pop("drainTimeout")
    manifest["spec"]["scaling"]["max"] = 1
    return manifest


async def _backend_pods(run: Run, name: str) -> list[dict[str, Any]]:
    pods, _ = await run.client.list(
        resources.POD,
        namespace=run.namespace,
        label_selector=f"{names.LABEL_LLMSERVICE}={name},!{names.LABEL_GATEWAY}",
    )
    return pods


async def _poll(what: str, check: Any, *, within: float) -> float:
    """Poll *check* every POLL_SECONDS until true; the monotonic time it first was."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    raise ScenarioFailedError(f"timed out after {within:.0f}s waiting for {what}")


async def kubelet_stop_seconds(run: Run, *, settle: float = 0.0) -> float:
    """Delete -> gone for a bare pod of the stub image without a preStop: the kubelet's own stop time on
    this node (stopping an idle stub, tearing the sandbox down, the API's final delete). Deleted as soon as
    it is Ready (*settle* 0, D1 and D2's reference, as CI has run them), it includes one extra wait for the
    kubelet's PLEG relist; after *settle* seconds (:data:`BARE_POD_SETTLE_SECONDS`) it does not."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": BARE_POD, "namespace": run.namespace},
        "spec": fixtures.restricted(
            {
                "containers": [
                    {
                        "name": "stub",
                        "image": run.options.stub_image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--port=8000"],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 1},
                    }
                ]
            }
        ),
    }
    await run.client.apply(pod)

    async def ready() -> bool:
        current = await run.client.get(resources.POD, BARE_POD, run.namespace)
        conditions = (current or {}).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    await run.wait("the bare stub pod ready", ready)
    await asyncio.sleep(settle)
    deleted = time.monotonic()
    await run.client.delete(resources.POD, BARE_POD, run.namespace)

    async def gone() -> bool:
        return await run.client.get(resources.POD, BARE_POD, run.namespace) is None

    return await _poll("the bare stub pod gone", gone, within=60) - deleted


async def _engine_answers(run: Run, url: str) -> bool:
    """Whether the engine answers /health at its pod IP: it does until its container gets SIGTERM (the stub
    then stops listening), i.e. while the preStop drain holds."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with run.http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=3)) as response:
            return response.status == 200
    return False


async def _wake(run: Run, name: str) -> str:
    url = await run.gateway_url(name)
    events, _ = await run.stream(url, tokens=4)
    if not events or events[-1] != b"data: [DONE]":
        raise ScenarioFailedError(f"{name}: the waking request was not answered")
    return url


async def idle_scale_down_frees_the_device(run: Run) -> str:
    """Woken once, then idle: the scaler takes the backend to 0 after its window, and with drainTimeout 2m
    the pod is gone within the kubelet's own stop time + 2 s of the Deployment reaching 0."""
    stop = await kubelet_stop_seconds(run)
    await run.client.apply(service(run, IDLE_SERVICE))
    try:
        await _wake(run, IDLE_SERVICE)
        pods = await _backend_pods(run, IDLE_SERVICE)
        if not pods:
            raise ScenarioFailedError("no backend pod after the answer")
        grace = pods[0]["spec"].get("terminationGracePeriodSeconds")

        async def at_zero() -> bool:
            return (await run.replicas(names.backend(IDLE_SERVICE)))[0] == 0

        async def no_pods() -> bool:
            return not await _backend_pods(run, IDLE_SERVICE)

        window = fixtures.STABILIZATION_SECONDS + run.options.timeout
        zero = await _poll("the idle backend scaled to 0", at_zero, within=window)
        gone = await _poll("the idle backend's pod gone", no_pods, within=150)
    finally:
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, IDLE_SERVICE, run.namespace)
    held = gone - zero
    if held > stop + BUDGET_SECONDS:
        raise ScenarioFailedError(
            f"Deployment at 0 -> pod gone took {held:.1f}s with drainTimeout {DEFAULT_DRAIN_TIMEOUT}; the "
            f"budget is the kubelet's own stop time ({stop:.1f}s) + {BUDGET_SECONDS:.0f}s"
        )
    return (
        f"drainTimeout {DEFAULT_DRAIN_TIMEOUT} (grace {grace}s): Deployment at 0 -> pod gone {held:.1f}s; "
        f"the kubelet's own stop time {stop:.1f}s (budget {stop + BUDGET_SECONDS:.1f}s)"
    )


async def stream_survives_scale_down(run: Run) -> str:
    """A 120-token stream in flight when its backend is scaled to 0: every token and [DONE] arrive, and the
    pod goes only after the stream has ended (and soon after it: the drain ends at idle)."""
    stop = await kubelet_stop_seconds(run)
    await run.client.apply(service(run, STREAM_SERVICE))
    try:
        url = await _wake(run, STREAM_SERVICE)
        (pod,) = await _backend_pods(run, STREAM_SERVICE)
        victim = pod["metadata"]["name"]
        engine = f"http://{pod['status'].get('podIP')}:{ENGINE_PORT}"
        reachable = await _engine_answers(run, engine)
        stream = asyncio.create_task(run.stream(url, tokens=STREAM_TOKENS))
        try:
            await asyncio.sleep(1.5)  # tokens are flowing from the victim
            if stream.done():
                raise ScenarioFailedError(
                    f"the stream ended before the scale-down: {stream.result()[0][-1:]}"
                )
            await run.client.apply(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": names.backend(STREAM_SERVICE), "namespace": run.namespace},
                    "spec": {"replicas": 0},
                },
                field_manager="hearth-e2e",
            )
            scaled = time.monotonic()

            async def terminating() -> bool:
                pod = await run.client.get(resources.POD, victim, run.namespace)
                return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

            await _poll("the victim pod terminating", terminating, within=30)
            await asyncio.sleep(1.5)  # well past the endpoint delay: only the engine's own count holds it now
            if reachable and not stream.done() and not await _engine_answers(run, engine):
                raise ScenarioFailedError(
                    "the engine stopped answering while its stream was in flight: the preStop did not hold "
                    "its SIGTERM back (a failed or ended drain)"
                )

            async def victim_gone() -> bool:
                return await run.client.get(resources.POD, victim, run.namespace) is None

            gone_task = asyncio.create_task(_poll("the victim pod gone", victim_gone, within=150))
            events, _ = await stream
            ended = time.monotonic()
            gone = await gone_task
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
    finally:
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, STREAM_SERVICE, run.namespace)
    tokens = sum(event.startswith(b"data: {") for event in events)
    if not events or events[-1] != b"data: [DONE]" or tokens < STREAM_TOKENS:
        raise ScenarioFailedError(f"the stream was cut by the scale-down: {tokens} of {STREAM_TOKENS} tokens")
    if gone < ended:
        raise ScenarioFailedError("the victim pod was gone before its stream ended")
    after = gone - ended
    if after > stop + BUDGET_SECONDS:
        raise ScenarioFailedError(
            f"the victim pod outlived its last stream by {after:.1f}s (kubelet stop {stop:.1f}s + "
            f"{BUDGET_SECONDS:.0f}s allowed): the drain did not end at idle"
        )
    held = "the engine still answered mid-drain" if reachable else "the engine's pod IP is not reachable here"
    return (
        f"scaled to 0 mid-stream: all {tokens} tokens and [DONE] arrived {ended - scaled:.1f}s after the "
        f"scale-down ({held}); the pod was gone {after:.1f}s after the stream ended "
        f"(kubelet stop {stop:.1f}s)"
    )


SCENARIOS = [
    ("D1 idle scale-down frees the device at once", idle_scale_down_frees_the_device),
    ("D2 a stream in flight survives the scale-down", stream_survives_scale_down),
]
