"""The seven scenarios of issue 6, in order; written against the gateway's public behaviour so the KEDA
scaler modes can reuse them unchanged."""

from __future__ import annotations

import asyncio
import time

from hearth.e2e import fixtures
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources


async def idle_reaches_zero(run: Run) -> str:
    await run.wait("backend at 0 replicas", lambda: _at(run, "cold", 0))
    return "idle backend scaled to 0 replicas"


async def cold_stream_wakes(run: Run) -> str:
    url = await run.gateway_url("cold")
    started = time.monotonic()
    events, first_token = await run.stream(url, tokens=8)
    heartbeats = sum(event == b": heartbeat" for event in events)
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError(f"the stream did not end with [DONE] (last event {events[-1][:60]!r})")
    if heartbeats == 0:
        raise ScenarioFailedError("no heartbeat while the backend woke")
    if (await run.replicas("cold"))[0] < 1:
        raise ScenarioFailedError("backend not scaled up")
    assert first_token is not None
    overhead = first_token - fixtures.STARTUP_DELAY_SECONDS
    return (
        f"{heartbeats} heartbeats, first token after {first_token:.1f}s "
        f"(stub startup {fixtures.STARTUP_DELAY_SECONDS}s, so Hearth + Kubernetes added {overhead:.1f}s); "
        f"total {time.monotonic() - started:.1f}s"
    )


async def load_scales_to_two(run: Run) -> str:
    url = await run.gateway_url("cold")
    streams = [asyncio.create_task(run.stream(url, tokens=400)) for _ in range(4)]
    try:
        await run.wait("2 ready backend replicas", lambda: _ready(run, "cold", 2), within=120)
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return "4 concurrent long streams with target 1 and max 2 -> 2 ready replicas"


async def back_to_zero(run: Run) -> str:
    started = time.monotonic()
    await run.wait("backend back at 0", lambda: _at(run, "cold", 0), within=180)
    return f"back to 0 replicas {time.monotonic() - started:.0f}s after the load ended (stabilization 15s)"


async def stream_survives_pod_deletion(run: Run) -> str:
    url = await run.gateway_url("cold")
    stream = asyncio.create_task(run.stream(url, tokens=120))  # ~6 s of tokens
    await run.wait("a ready backend", lambda: _ready(run, "cold", 1))
    await asyncio.sleep(2)
    pods, _ = await run.client.list(
        resources.POD, namespace=run.namespace, label_selector="serving.hearth.dev/llmservice=cold"
    )
    for pod in pods:
        await run.client.delete(resources.POD, pod["metadata"]["name"], run.namespace)
    events, _ = await stream
    if events[-1] != b"data: [DONE]":
        raise ScenarioFailedError("the stream was cut when its backend pod was deleted")
    tokens = sum(event.startswith(b"data: {") for event in events)
    return f"deleted {len(pods)} backend pod(s) mid-stream; all {tokens} tokens and [DONE] arrived (drain)"


async def reject_mode_answers_at_once(run: Run) -> str:
    url = await run.gateway_url("rejecting")
    started = time.monotonic()
    async with run.http.post(f"{url}/v1/chat/completions", json={"messages": []}) as response:
        elapsed = time.monotonic() - started
        if response.status != 503 or "Retry-After" not in response.headers:
            raise ScenarioFailedError(f"expected 503 with Retry-After, got {response.status}")
        retry = response.headers["Retry-After"]
    return f"503 with Retry-After {retry} in {elapsed * 1000:.0f} ms (the backend can never schedule)"


async def deletion_removes_everything(run: Run) -> str:
    for name in ("cold", "rejecting"):
        await run.client.delete(resources.LLMSERVICE, name, run.namespace)

    async def gone() -> bool:
        for rt in (resources.DEPLOYMENT, resources.SERVICE, resources.SERVICE_ACCOUNT, resources.ROLE):
            items, _ = await run.client.list(
                rt, namespace=run.namespace, label_selector="app.kubernetes.io/managed-by=hearth"
            )
            if items:
                return False
        return True

    await run.wait("every child garbage-collected", gone, within=120)
    return "every Deployment, Service, ServiceAccount and Role of both LLMServices is gone"


async def _at(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[0] == replicas


async def _ready(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[1] >= replicas


SCENARIOS = [
    ("1 idle backend reaches 0", idle_reaches_zero),
    ("2 cold stream: heartbeats, tokens, [DONE]", cold_stream_wakes),
    ("3 concurrent streams scale 1 -> 2", load_scales_to_two),
    ("4 back to 0 after the load", back_to_zero),
    ("5 stream survives backend pod deletion", stream_survives_pod_deletion),
    ("6 reject mode: 503 + Retry-After at once", reject_mode_answers_at_once),
    ("7 deleting LLMServices removes everything", deletion_removes_everything),
]
