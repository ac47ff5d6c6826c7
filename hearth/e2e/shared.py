"""The shared endpoint scenarios of ``hearth e2e`` (issue 24): one LLMGateway in front of three models.

S1 runs in every scaler mode: the models are listed cold (nothing woke), all three are streamed at once
through the one URL (each held with progress, woken and answered), a key limited to one model sees one
model and gets 404 for the others, and a deleted LLMService loses its route within seconds. S2 (builtin
mode, where pools run) puts the shared endpoint in front of an AcceleratorPool of two devices whose three
members are streamed at once: two wake, the third waits for capacity, told so, and is served once an idle
member is swapped out.

With ``HEARTH_E2E_OPENAI_CLIENT`` set to a command that runs ``testing/e2e/openai_client.py`` with a Python
that has the ``openai`` package (scripts/e2e.sh sets it to the project's), the listing and one stream also
go through the real openai client; the frozen binary carries neither the SDK nor that script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import time
from typing import Any

from hearth.e2e import fixtures, wakeprogress
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError

GATEWAY = "shared"
POOL_GATEWAY = "shared-pool"
MODELS = ("shared-a", "shared-b", "shared-c")
POOL_MODELS = ("pooled-a", "pooled-b", "pooled-c")
LABEL = "e2e.hearth.dev/endpoint"
ALL_KEYS = "shared-all-keys"
ONE_KEYS = "shared-one-keys"
#: How long a deleted LLMService's route may outlive it ("within seconds").
ROUTE_REMOVAL_SECONDS = 10.0
OPENAI_CLIENT_ENV = "HEARTH_E2E_OPENAI_CLIENT"


def gateway(run: Run, name: str, *, endpoint: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": fixtures.API,
        "kind": "LLMGateway",
        "metadata": {"name": name, "namespace": run.namespace},
        "spec": {"selector": {"matchLabels": {LABEL: endpoint}}, "auth": {"keys": keys}},
    }


def _model(run: Run, name: str, *, endpoint: str) -> dict[str, Any]:
    manifest = fixtures.service(name, run.namespace, run.runtime)
    manifest["metadata"]["labels"] = {LABEL: endpoint}
    manifest["spec"]["scaling"].pop("drainTimeout")  # the default (2m): drains end when idle
    manifest["spec"]["scaling"]["max"] = 1
    return manifest


async def _keys(run: Run) -> tuple[str, str]:
    """Two key Secrets: one for every model, one limited to the first (random per run; never printed)."""
    every, one = f"{run.api_key}-all", f"{run.api_key}-one"
    await run.client.apply(fixtures.api_keys(ALL_KEYS, run.namespace, every))
    await run.client.apply(fixtures.api_keys(ONE_KEYS, run.namespace, one))
    return every, one


async def _get(run: Run, url: str, key: str) -> tuple[int, Any]:
    async with run.http.get(url, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, await response.json(content_type=None)


async def _post(run: Run, url: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with run.http.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        return response.status, await response.json(content_type=None)


async def _listed(run: Run, url: str, key: str) -> dict[str, str]:
    """model -> state, as ``/v1/models`` lists them to *key*."""
    status, document = await _get(run, f"{url}/v1/models", key)
    if status != 200:
        raise ScenarioFailedError(f"GET /v1/models: {status} {document}")
    return {entry["id"]: entry.get("hearth", {}).get("state", "?") for entry in document["data"]}


async def _stream(run: Run, url: str, key: str, model: str) -> tuple[list[bytes], float]:
    """A streaming chat completion for *model*: its SSE events and how long it took."""
    started = time.monotonic()
    events, _ = await run.stream(url, tokens=8, model=model, key=key)
    if not events or events[-1] != b"data: [DONE]":
        last = events[-1][:80] if events else b""
        raise ScenarioFailedError(f"{model}: the stream did not end with [DONE] (last event {last!r})")
    return events, time.monotonic() - started


async def _all_cold(run: Run, url: str, key: str) -> bool:
    return set((await _listed(run, url, key)).values()) == {"cold"}


async def _backends_at_zero(run: Run, models: tuple[str, ...]) -> bool:
    return all([(await run.replicas(name))[0] == 0 for name in models])


async def _openai(run: Run, url: str, key: str, model: str) -> str | None:
    """The real openai client's listing and stream (a subprocess), or None without a command to run it."""
    command = shlex.split(os.environ.get(OPENAI_CLIENT_ENV, ""))
    if not command:
        return None
    process = await asyncio.create_subprocess_exec(
        *command,
        f"{url}/v1",
        model,
        env={**os.environ, "OPENAI_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), run.options.timeout)
    if process.returncode != 0:
        raise ScenarioFailedError(f"the openai client failed: {err.decode()[-300:]}")
    report = json.loads(out)
    return f"openai client: listed {report['models']}, streamed {report['chunks']} chunks from {model}"


async def three_models_one_endpoint(run: Run) -> str:
    try:
        return await _three_models_one_endpoint(run)
    finally:
        # What S1 made goes with it, so the last scenario finds only the run's own LLMServices' children.
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMGATEWAY, GATEWAY, run.namespace)
        for name in MODELS:
            with contextlib.suppress(ApiError):
                await run.client.delete(resources.LLMSERVICE, name, run.namespace)


async def _three_models_one_endpoint(run: Run) -> str:
    every, one = await _keys(run)
    for name in MODELS:
        await run.client.apply(_model(run, name, endpoint=GATEWAY))
    keys: list[dict[str, Any]] = [{"secretName": ALL_KEYS}, {"secretName": ONE_KEYS, "models": [MODELS[0]]}]
    await run.client.apply(gateway(run, GATEWAY, endpoint=GATEWAY, keys=keys))
    url = await run.gateway_url(GATEWAY)
    await run.wait("the three models listed", lambda: _all_listed(run, url, every))
    # A new backend Deployment starts with the API server's default replica; idle, it goes to zero after
    # the stabilization window. Then listing must wake nothing: still at zero a few autoscaler passes later.
    await run.wait("the three idle backends at 0", lambda: _backends_at_zero(run, MODELS))
    # Their last pods may still be draining, and the gateway learns each endpoint's end from its watch a
    # moment later: every model listed cold within seconds, then still at zero after the listings.
    await run.wait("every model listed cold", lambda: _all_cold(run, url, every), within=30)
    await asyncio.sleep(4)
    if not await _backends_at_zero(run, MODELS):
        raise ScenarioFailedError("listing the models woke a backend")
    # A key limited to one model: one model listed; the others answered as unknown models.
    limited = await _listed(run, url, one)
    if list(limited) != [MODELS[0]]:
        raise ScenarioFailedError(f"the limited key was listed {sorted(limited)}, expected [{MODELS[0]}]")
    status, answer = await _post(run, url, one, {"model": MODELS[1], "messages": []})
    if status != 404 or answer.get("error", {}).get("code") != "model_not_found":
        raise ScenarioFailedError(f"the limited key asking for {MODELS[1]}: {status} {answer}")
    # All three streamed at once through the one URL: each held, told the wake's phases, answered.
    results = await asyncio.gather(*(_stream(run, url, every, model) for model in MODELS))
    told = []
    for model, (events, seconds) in zip(MODELS, results, strict=True):
        progress = wakeprogress.told(events)
        phases = [phase for phase, _ in progress.phases]
        if "ready" not in phases or not progress.in_order:
            raise ScenarioFailedError(
                f"{model}: the held stream was not told its wake ({progress.describe()})"
            )
        told.append(f"{model} {seconds:.1f}s ({' -> '.join(phases)})")
    states = await _listed(run, url, every)
    if set(states.values()) != {"ready"}:
        raise ScenarioFailedError(f"after the streams, expected every model ready, listed {states}")
    openai_line = await _openai(run, url, every, MODELS[0])
    # Deleting an LLMService removes its route within seconds.
    await run.client.delete(resources.LLMSERVICE, MODELS[2], run.namespace)
    deleted = time.monotonic()
    await run.wait(
        f"the route of {MODELS[2]} removed",
        lambda: _not_listed(run, url, every, MODELS[2]),
        within=ROUTE_REMOVAL_SECONDS,
    )
    removal = time.monotonic() - deleted
    status, answer = await _post(run, url, every, {"model": MODELS[2], "messages": []})
    if status != 404:
        raise ScenarioFailedError(f"a request for the deleted {MODELS[2]}: {status} {answer}")
    routed = await run.wait(
        "the LLMGateway's status.models without the deleted model",
        lambda: _status_models(run, MODELS[:2]),
        within=30,
    )
    return "; ".join(
        part
        for part in (
            f"listed {sorted(states)} cold, nothing woke; limited key: 1 model, 404 for the others",
            "held and streamed at once: " + ", ".join(told),
            openai_line,
            f"{MODELS[2]} deleted: route gone after {removal:.1f}s, then 404",
            f"LLMGateway status.models {routed}",
        )
        if part
    )


async def _status_models(run: Run, expected: tuple[str, ...]) -> list[str] | None:
    gateway = await run.client.get(resources.LLMGATEWAY, GATEWAY, run.namespace)
    models = ((gateway or {}).get("status") or {}).get("models") or []
    return list(models) if sorted(models) == sorted(expected) else None


async def _all_listed(run: Run, url: str, key: str) -> bool:
    status, document = await _get(run, f"{url}/v1/models", key)
    return status == 200 and sorted(entry["id"] for entry in document["data"]) == sorted(MODELS)


async def _not_listed(run: Run, url: str, key: str, model: str) -> bool:
    return model not in await _listed(run, url, key)


async def shared_endpoint_before_a_pool(run: Run) -> str:
    await run.gateway_url("cold")  # the mode is read from a rendered gateway
    if not (await run.traits("cold")).pools:
        run.not_promised("AcceleratorPools run in builtin mode only (the KEDA modes refuse them)")
    every, _ = await _keys(run)
    pool_name = f"shared-{run.namespace}"
    await run.client.apply(fixtures.accelerator_pool(pool_name, devices=2, min_warm="10s", idle_grace="3s"))
    try:
        for name in POOL_MODELS:
            manifest = _model(run, name, endpoint=POOL_GATEWAY)
            manifest["spec"]["scaling"]["scaleDownStabilization"] = "30m"
            manifest["spec"]["pool"] = {"name": pool_name}
            await run.client.apply(manifest)
        await run.client.apply(
            gateway(run, POOL_GATEWAY, endpoint=POOL_GATEWAY, keys=[{"secretName": ALL_KEYS}])
        )
        url = await run.gateway_url(POOL_GATEWAY)
        await run.wait(
            "the pooled models listed",
            lambda: _listed_exactly(run, url, every, POOL_MODELS),
        )
        # New members start at zero (the pool grants devices on demand only).
        await run.wait("the pooled backends at 0", lambda: _backends_at_zero(run, POOL_MODELS))
        results = await asyncio.gather(*(_stream(run, url, every, model) for model in POOL_MODELS))
        lines = []
        waited = 0
        for model, (events, seconds) in zip(POOL_MODELS, results, strict=True):
            phases = [phase for phase, _ in wakeprogress.told(events).phases]
            waited += "waiting_for_capacity" in phases
            lines.append(f"{model} {seconds:.1f}s ({' -> '.join(phases)})")
        if waited == 0:
            raise ScenarioFailedError(
                "three members on two devices, yet no stream was told it waited for capacity"
            )
        status = await run.client.get(resources.ACCELERATOR_POOL, pool_name)
        # status.evictions counts since the operator leader started: the pool is new, so these are its own.
        evictions = ((status or {}).get("status") or {}).get("evictions")
        return f"3 pooled models on 2 devices through one URL: {', '.join(lines)}; evictions {evictions}"
    finally:
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMGATEWAY, POOL_GATEWAY, run.namespace)
        for name in POOL_MODELS:
            with contextlib.suppress(ApiError):
                await run.client.delete(resources.LLMSERVICE, name, run.namespace)
        await run.wait("the pooled backends gone", lambda: _gone(run, POOL_MODELS))
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.ACCELERATOR_POOL, pool_name)


async def _listed_exactly(run: Run, url: str, key: str, models: tuple[str, ...]) -> bool:
    status, document = await _get(run, f"{url}/v1/models", key)
    return status == 200 and sorted(entry["id"] for entry in document["data"]) == sorted(models)


async def _gone(run: Run, models: tuple[str, ...]) -> bool:
    return all([(await run.replicas(name))[0] == -1 for name in models])


SCENARIOS = [
    ("S1 shared endpoint: three models, one URL", three_models_one_endpoint),
    ("S2 shared endpoint before a pool", shared_endpoint_before_a_pool),
]
