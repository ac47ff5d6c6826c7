"""A real engine end to end (issue 25): llama.cpp's llama-server, built from source by the test bed
(testing/llamacpp/build.sh) into a shell-less image, serving a tiny random-weight GGUF
(testing/llamacpp/make_gguf.py) that the stand-in hub serves and the prewarm Job's ``hearth fetch`` puts in
the cache. The InferenceRuntime names only ``family: llamacpp`` and its image: args, probes, metrics and
drain come from the engine registry, as a user's would.

L1 wakes it from zero (phases told, then the real openai client: stream, non-stream, completions); L2 sends
a prompt over the engine's context, whose own error must reach the client unchanged; L3 drives it 1 -> 2
under load and back to 0. The engine does not care who scales it, so builtin mode proves it; the KEDA
modes' scaling is proven by the stub scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import time
from typing import Any

from hearth.e2e import caches, fixtures, shared, wakeprogress
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import names, podsecurity

SERVICE = "llama"
#: The llama-server error for a prompt longer than a slot's context (tools/server/server.cpp,
#: ERROR_TYPE_EXCEED_CONTEXT_SIZE: "exceed_context_size_error", HTTP 400).
OVER_CONTEXT_TYPE = "exceed_context_size_error"
#: A prompt of byte tokens longer than any context llama-server gives the tiny model (512 trained, 4096
#: by default across its slots).
OVER_CONTEXT_PROMPT = "x " * 5000
#: Load for 1 -> 2: clients streaming back to back (the tiny model answers in milliseconds, so only
#: continuous traffic keeps more than one request in flight). llama-server's slots share one KV cache of
#: the model's 512-token context, so 4 streams of a ~54-token prompt and 64 tokens fit in it together.
LOAD_CLIENTS = 4
LOAD_TOKENS = 64


def runtime(name: str, *, image: str) -> dict[str, Any]:
    """llama-server as a user declares it: the family and the image; the registry supplies the rest."""
    return {
        "apiVersion": fixtures.API,
        "kind": "InferenceRuntime",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "hearth-e2e"}},
        "spec": {
            "family": "llamacpp",
            "vendor": "generic",
            "container": {
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                # The hub the model comes from: a mirror, as an air-gapped user names theirs (the prewarm
                # Job and the pods' hearth fetch read the runtime's HF_* env).
                "env": [{"name": "HF_ENDPOINT", "value": f"http://{fixtures.HUB}"}],
                # The image's own user (testing/llamacpp/build-image.sh packs it to run as 65532), so its
                # backend and prewarm pods meet the restricted Pod Security Standard.
                "runAsUser": podsecurity.NONROOT_UID,
            },
            # One fake device per replica, so 1 -> 2 is the accelerator accounting's too.
            "accelerator": {"resourceName": fixtures.FAKE_RESOURCE},
            "lifecycle": {"preStopDrain": True},
        },
    }


def service(run: Run, runtime_name: str) -> dict[str, Any]:
    manifest = fixtures.service(SERVICE, run.namespace, runtime_name)
    manifest["spec"]["model"]["source"]["uri"] = fixtures.GGUF_URI
    manifest["spec"]["cache"] = {"strategy": "NodeLocalPVC", "prewarm": True, "size": "64Mi"}
    return manifest


def _runtime_name(run: Run) -> str:
    return f"{run.runtime}-llamacpp"


async def _preconditions(run: Run) -> None:
    await run.only_in_builtin("the engine")
    if not run.options.engine_image or not run.options.gguf:
        run.skip("no llama-server image or GGUF given (--engine-image, --gguf; scripts/e2e.sh builds both)")


async def real_engine_wakes(run: Run) -> str:
    """L1: prewarm from the stand-in hub, a cold stream told its phases, then the real openai client."""
    await _preconditions(run)
    assert run.options.engine_image is not None  # _preconditions
    await run.client.apply(runtime(_runtime_name(run), image=run.options.engine_image))
    await run.client.apply(service(run, _runtime_name(run)))
    started = time.monotonic()
    job = names.prewarm_job(SERVICE)
    await run.wait(f"Job {job} to succeed", lambda: caches.job_succeeded(run, job))
    warmed = time.monotonic() - started
    await run.wait(f"{SERVICE} at zero", lambda: _at(run, 0))
    url = await run.gateway_url(SERVICE)

    woke = time.monotonic()
    events, first_token = await run.stream(url, 8, model=SERVICE)
    if events[-1] != b"data: [DONE]" or first_token is None:
        raise ScenarioFailedError(f"the cold stream was not answered: {events[-2:]}")
    told = wakeprogress.told(events)
    if not told.in_order or not told.phases or told.phases[-1][0] != "ready":
        raise ScenarioFailedError(f"the held stream was told phases out of order: {told.describe()}")
    client = await _openai(run, url)
    return (
        f"GGUF prewarmed by hearth fetch in {warmed:.1f}s; cold stream: first token after "
        f"{first_token:.1f}s, {time.monotonic() - woke:.1f}s in all ({told.describe()}); {client}"
    )


async def engine_error_passes_through(run: Run) -> str:
    """L2: the engine's own 400 for a prompt over its context reaches the client as the engine wrote it."""
    await _preconditions(run)
    url = await run.gateway_url(SERVICE)
    body = {"model": SERVICE, "messages": [{"role": "user", "content": OVER_CONTEXT_PROMPT}]}
    async with run.http.post(f"{url}/v1/chat/completions", json=body) as response:
        status, text = response.status, await response.text()
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        raise ScenarioFailedError(f"{status}: not the engine's error document: {text[:300]}") from None
    if status != 400 or error.get("type") != OVER_CONTEXT_TYPE:
        raise ScenarioFailedError(f"{status} {text[:300]}, not llama-server's 400 {OVER_CONTEXT_TYPE}")
    return f"400 {error.get('type')}: {str(error.get('message'))[:160]}"


async def real_engine_scales_out_and_back(run: Run) -> str:
    """L3: continuous streams over the gateway scale the engine 1 -> 2; after them it returns to 0. The
    last of the three: the LLMService and its runtime go with it, whatever happened before."""
    try:
        await _preconditions(run)
        return await _scale_out_and_back(run)
    finally:
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, SERVICE, run.namespace)
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.INFERENCE_RUNTIME, _runtime_name(run))


async def _scale_out_and_back(run: Run) -> str:
    url = await run.gateway_url(SERVICE)
    answered = 0
    stop = asyncio.Event()

    async def client() -> None:
        nonlocal answered
        body = {
            "model": SERVICE,
            "stream": True,
            "max_tokens": LOAD_TOKENS,
            # llama-server's own option (tools/server/README.md): generate max_tokens whatever is sampled.
            "ignore_eos": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        while not stop.is_set():
            async with run.http.post(f"{url}/v1/chat/completions", json=body) as response:
                text = await response.text()
            if response.status != 200 or not text.rstrip().endswith("data: [DONE]"):
                raise ScenarioFailedError(f"a load request got {response.status}: {text[-200:]}")
            answered += 1

    started = time.monotonic()
    clients = [asyncio.create_task(client()) for _ in range(LOAD_CLIENTS)]
    try:
        waiting = asyncio.create_task(run.wait("2 ready llama-server replicas", lambda: _ready(run, 2)))
        done, _ = await asyncio.wait([waiting, *clients], return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            next(iter(done)).result()  # a client failed: raise its error
        waiting.result()
        scaled = time.monotonic() - started
    finally:
        stop.set()
        for task in clients:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ScenarioFailedError):
            await asyncio.gather(*clients)
    ended = time.monotonic()
    await run.wait(f"{SERVICE} back at zero", lambda: _at(run, 0))
    return (
        f"{LOAD_CLIENTS} clients streaming back to back: 2 ready replicas after {scaled:.1f}s "
        f"({answered} streams of {LOAD_TOKENS} tokens answered); back at 0 {time.monotonic() - ended:.1f}s "
        "after the load"
    )


async def _openai(run: Run, url: str) -> str:
    """The real openai client: stream, non-stream and completions (a subprocess of the project's Python)."""
    command = shlex.split(os.environ.get(shared.OPENAI_CLIENT_ENV, ""))
    if not command:
        run.skip(f"{shared.OPENAI_CLIENT_ENV} is not set: the real openai client cannot run")
    process = await asyncio.create_subprocess_exec(
        *command,
        f"{url}/v1",
        SERVICE,
        "--all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), run.options.timeout)
    if process.returncode != 0:
        raise ScenarioFailedError(f"the openai client failed: {err.decode()[-300:]}")
    report = json.loads(out)
    return (
        f"openai client: listed {report['models']}, streamed {report['chunks']} chunks, non-stream "
        f"{report['chat_tokens']} completion tokens, completions {report['completion_tokens']} tokens"
    )


async def _at(run: Run, replicas: int) -> bool:
    return (await run.replicas(SERVICE)) == (replicas, replicas)


async def _ready(run: Run, replicas: int) -> bool:
    return (await run.replicas(SERVICE))[1] >= replicas


SCENARIOS = [
    ("L1 llama-server: prewarmed GGUF, cold wake, openai client", real_engine_wakes),
    ("L2 llama-server: the engine's own 400 passes through", engine_error_passes_through),
    ("L3 llama-server: load scales 1 -> 2, then back to 0", real_engine_scales_out_and_back),
]
