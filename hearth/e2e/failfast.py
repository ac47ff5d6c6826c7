"""Wakes that cannot succeed (issue 32), end to end: a held stream learns why within seconds, cold requests
are refused with the reason while the wake would fail again, and once the manifest is fixed the next
request is answered.

F1 uses an image that is not on the node with ``imagePullPolicy: Never`` (so no pull ever leaves the
machine); F2 an engine that exits as it starts (the stub's ``STUB_CRASH_ON_START``). Each gets its own
InferenceRuntime, fixed afterwards by patching it as an admin would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hearth.api import wakefailure
from hearth.e2e import fixtures
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.render import names

#: The issue's budget: from the request to the held client's error naming the reason.
FAILURE_BUDGET_SECONDS = 15.0
MISSING_IMAGE = "hearth.dev/missing:e2e"


def _broken_runtime(run: Run, name: str, **container: Any) -> dict[str, Any]:
    manifest = fixtures.runtime(name, image=run.options.stub_image)
    manifest["spec"]["container"].update(container)
    return manifest


async def missing_image_fails_fast(run: Run) -> str:
    """F1: the image cannot be pulled."""
    runtime = f"{run.runtime}-missing-image"
    await run.client.apply(_broken_runtime(run, runtime, image=MISSING_IMAGE, imagePullPolicy="Never"))

    async def fix() -> None:
        await run.client.apply(fixtures.runtime(runtime, image=run.options.stub_image))

    return await _fails_fast_then_recovers(
        run, "failfast-image", runtime, wakefailure.Reason.IMAGE_PULL_FAILED, fix=fix
    )


async def crash_loop_fails_fast(run: Run) -> str:
    """F2: the engine exits as it starts."""
    runtime = f"{run.runtime}-crashing"
    crashing = _broken_runtime(run, runtime)
    crashing["spec"]["container"]["env"].append({"name": "STUB_CRASH_ON_START", "value": "true"})
    await run.client.apply(crashing)

    async def fix() -> None:
        await run.client.apply(fixtures.runtime(runtime, image=run.options.stub_image))

    return await _fails_fast_then_recovers(
        run, "failfast-crash", runtime, wakefailure.Reason.CRASH_LOOP_BACK_OFF, fix=fix
    )


async def _fails_fast_then_recovers(
    run: Run, name: str, runtime: str, reason: wakefailure.Reason, *, fix: Callable[[], Awaitable[None]]
) -> str:
    try:
        await run.client.apply(fixtures.service(name, run.namespace, runtime))
        if (await run.traits(name)).needs_keda:
            run.not_promised("covered in builtin mode; the KEDA modes fail held requests the same way")
        url = await run.gateway_url(name)
        await run.wait(f"{name} at zero", lambda: _at_zero(run, name))

        # A new LLMService's Deployment starts at one replica before it is scaled to zero, so its first pod
        # may already have failed: then a cold request is refused at once, else it is held until the
        # failure shows. Either way: 503 naming the reason, and when to retry.
        started = time.monotonic()
        status, headers, body = await _post(run, url, name)
        first_after = time.monotonic() - started
        refused_by = headers.get(wakefailure.REFUSAL_HEADER)
        if status != 503 or refused_by != reason.code or "Retry-After" not in headers:
            raise ScenarioFailedError(f"a cold request got {status} {refused_by} {body[:200]}")
        retry_after = int(headers["Retry-After"])
        # Past the retry time the next request wakes the backend again, is held, and learns the failure of
        # this new wake within the budget.
        await asyncio.sleep(retry_after + 1)
        timeline = _Timeline(run, name)
        watching = asyncio.create_task(timeline.follow())
        try:
            events, _ = await run.stream(url, 4, model=name)
        finally:
            watching.cancel()
        failed_after = time.monotonic() - timeline.started
        told = _failure_told(events)
        if told.get("code") != reason.code:
            raise ScenarioFailedError(f"the held stream ended with {told}, not {reason.code}")
        if failed_after > FAILURE_BUDGET_SECONDS:
            raise ScenarioFailedError(
                f"the held stream learned {reason.code} after {failed_after:.1f}s "
                f"(budget {FAILURE_BUDGET_SECONDS:.0f}s; {timeline})"
            )
        conditions = await _conditions(run, name)
        ready, degraded = conditions.get("Ready", {}), conditions.get("Degraded", {})
        if ready.get("reason") != str(reason):
            raise ScenarioFailedError(f"Ready condition {ready}, not reason {reason}")
        # The reference v0.4's Degraded condition says the same, from the same vocabulary.
        if (degraded.get("status"), degraded.get("reason")) != ("True", str(reason)):
            raise ScenarioFailedError(f"Degraded condition {degraded}, not True with reason {reason}")
        await run.wait(f"a {reason} Event", lambda: _event(run, name, str(reason)), within=30)
        status, headers, body = await _post(run, url, name)
        if status != 503 or headers.get(wakefailure.REFUSAL_HEADER) != reason.code:
            raise ScenarioFailedError(f"after the failure a cold request got {status} {body[:200]}")

        await fix()
        recovered = time.monotonic()
        # The fixed template ends the refusals; the next request wakes the backend and is answered.
        await run.wait(f"{name} no longer refusing", lambda: _not_refusing(run, name), within=60)
        events, first_token = await run.stream(url, 4, model=name)
        if first_token is None or any(event.startswith(b"event: error") for event in events):
            raise ScenarioFailedError(f"after the fix the stream was not answered: {events[-2:]}")
        return (
            f"first cold request: 503 {refused_by} after {first_after:.1f}s, Retry-After {retry_after}; "
            f"then a held stream told {reason.code} after {failed_after:.1f}s ({timeline}; with phase "
            f"failed), Ready and Degraded reason {reason}, Event recorded, cold requests refused; fixed, "
            f"answered "
            f"{time.monotonic() - recovered:.1f}s later"
        )
    finally:
        await run.client.delete(resources.LLMSERVICE, name, run.namespace)
        await run.client.delete(resources.INFERENCE_RUNTIME, runtime)


class _Timeline:
    """When each step of a failing wake showed, seen from outside (polled every 0.2 s, so each is late by up
    to that): which step ate the budget when the held stream learns the failure late."""

    POLL_S = 0.2

    def __init__(self, run: Run, name: str) -> None:
        self.run, self.name = run, name
        self.started = time.monotonic()
        self.seen: dict[str, float] = {}

    async def follow(self) -> None:
        known_pods = {pod["metadata"]["name"] for pod in await self._pods()}
        service = await self.run.client.get(resources.LLMSERVICE, self.name, self.run.namespace)
        known_since = _failure_since(service)
        while True:
            for pod in await self._pods():
                if pod["metadata"]["name"] in known_pods:
                    continue
                self._note("pod created")
                status = pod.get("status", {})
                if any(
                    c.get("type") == "PodScheduled" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                ):
                    self._note("scheduled")
                for container in status.get("initContainerStatuses") or []:
                    if (container.get("state") or {}).get("running"):
                        self._note("sidecar running")
                for container in status.get("containerStatuses") or []:
                    state = container.get("state") or {}
                    waiting = (state.get("waiting") or {}).get("reason")
                    if waiting and waiting != "ContainerCreating":
                        self._note(f"kubelet said {waiting}")
                    if state.get("running") or state.get("terminated"):
                        self._note("engine started")
            service = await self.run.client.get(resources.LLMSERVICE, self.name, self.run.namespace)
            if _failure_since(service) not in (None, known_since):
                self._note("status.wakeFailure written")
            await asyncio.sleep(self.POLL_S)

    async def _pods(self) -> list[dict[str, Any]]:
        pods, _ = await self.run.client.list(
            resources.POD,
            namespace=self.run.namespace,
            label_selector=f"{names.LABEL_LLMSERVICE}={self.name},!{names.LABEL_GATEWAY}",
        )
        return pods

    def _note(self, step: str) -> None:
        self.seen.setdefault(step, time.monotonic() - self.started)

    def __str__(self) -> str:
        steps = sorted(self.seen.items(), key=lambda item: item[1])
        return ", ".join(f"{step} {at:.1f}s" for step, at in steps) or "no step seen"


def _failure_since(service: dict[str, Any] | None) -> str | None:
    return ((service or {}).get("status", {}).get("wakeFailure") or {}).get("since")


def _failure_told(events: list[bytes]) -> dict[str, Any]:
    """The error the held stream ended with, after checking its last progress comment said failed."""
    comments = [event for event in events if event.startswith(b": hearth ")]
    if not comments or json.loads(comments[-1][len(b": hearth ") :]).get("phase") != "failed":
        raise ScenarioFailedError(f"no progress comment with phase failed: {comments[-2:]}")
    if not events or not events[-1].startswith(b"event: error\ndata: "):
        raise ScenarioFailedError(f"the held stream did not end with an error event: {events[-2:]}")
    document = json.loads(events[-1].split(b"data: ", 1)[1])
    return dict(document.get("error") or {})


async def _at_zero(run: Run, name: str) -> bool:
    return (await run.replicas(name)) == (0, 0)


async def _conditions(run: Run, name: str) -> dict[str, dict[str, Any]]:
    """The LLMService's conditions by type, from one read."""
    service = await run.client.get(resources.LLMSERVICE, name, run.namespace)
    conditions = (service or {}).get("status", {}).get("conditions") or []
    return {str(condition.get("type")): dict(condition) for condition in conditions}


async def _not_refusing(run: Run, name: str) -> bool:
    """No failure, or one a new pod template superseded (attempts 0: kept until a pod is Ready)."""
    service = await run.client.get(resources.LLMSERVICE, name, run.namespace)
    failure = (service or {}).get("status", {}).get("wakeFailure")
    return failure is None or failure.get("attempts") == 0


async def _event(run: Run, name: str, reason: str) -> bool:
    events, _ = await run.client.list(
        resources.EVENT,
        namespace=run.namespace,
        field_selector=f"involvedObject.name={name},reason={reason}",
    )
    return bool(events)


async def _post(run: Run, url: str, model: str) -> tuple[int, dict[str, str], str]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with run.http.post(f"{url}/v1/chat/completions", json=body) as response:
        return response.status, dict(response.headers), await response.text()


SCENARIOS = [
    ("F1 an image that cannot be pulled fails held requests fast", missing_image_fails_fast),
    ("F2 a crash-looping engine fails held requests fast", crash_loop_fails_fast),
]
