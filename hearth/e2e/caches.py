"""The weight-cache scenarios (SPEC §5): an LLMService per cache strategy with prewarm on. Its prewarm Job
downloads the model from the stand-in hub (``hearth stub-hub`` in the run's namespace) into the cache and
succeeds; then a request wakes the backend, which must start from the files the Job wrote (the stub's log
names the snapshot it found and read)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from hearth.e2e import fixtures
from hearth.e2e.runner import (
    HOST_CACHE_PREPARE,
    HOST_CACHE_SERVICE,
    Run,
    ScenarioFailedError,
)
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import names

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
#: What the stub logs when the model is in the Hugging Face cache (hearth/cmd/stub.py).
LOADED_FROM_CACHE = "model loaded from the Hugging Face cache"
JOB_POD_LABEL = "batch.kubernetes.io/job-name"


async def node_local_pvc_prewarmed(run: Run) -> str:
    classes, _ = await run.client.list(resources.STORAGE_CLASS)
    default = [
        sc["metadata"]["name"]
        for sc in classes
        if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"
    ]
    if not default:
        run.skip("the cluster has no default StorageClass, so a NodeLocalPVC cache's claim would never bind")
    detail = await _prewarmed_start(run, "pvc-cache", "NodeLocalPVC")
    claim = await run.client.get(resources.CLAIM, names.cache_claim("pvc-cache"), run.namespace) or {}
    phase = claim.get("status", {}).get("phase")
    if phase != "Bound":
        raise ScenarioFailedError(f"the cache claim is {phase}, not Bound")
    return f"claim {names.cache_claim('pvc-cache')} Bound (StorageClass {default[0]}); {detail}"


async def host_path_prewarmed(run: Run) -> str:
    if not run.options.pod_security_restricted:
        return await _host_path_prewarmed(run)
    # A hostPath volume meets no Pod Security level short of privileged (the documented exception): the
    # run's namespace admits any pod for this scenario only, and enforces restricted again after it.
    await run.client.apply(fixtures.namespace(run.namespace, enforce_restricted=True, relaxed=True))
    try:
        # The API server's Pod Security admission reads namespace labels from its cache: the new level is in
        # force a moment after the write (at once on an idle test bed, not under CI's load).
        await run.wait("the namespace's privileged level in force", lambda: admitted_host_cache_pod(run))
        detail = await _host_path_prewarmed(run)
    finally:
        await run.client.apply(fixtures.namespace(run.namespace, enforce_restricted=True))
    return f"{detail} (the namespace enforced privileged for this scenario only: host paths)"


async def admitted_host_cache_pod(run: Run) -> bool:
    """Create the HostPath preparing pod; False while Pod Security admission still refuses it."""
    try:
        await run.prepare_host_cache()
    except ApiError as error:
        if error.status == 403 and "violates PodSecurity" in error.message:
            return False
        raise
    return True


async def _host_path_prewarmed(run: Run) -> str:
    await run.wait("the HostPath cache directory prepared", lambda: _pod_done(run, HOST_CACHE_PREPARE))
    cleanup = "host-cache-cleanup"
    try:
        detail = await _prewarmed_start(run, HOST_CACHE_SERVICE, "HostPath")
    finally:
        await run.client.apply(
            fixtures.host_cache_pod(
                cleanup, run.namespace, image=run.options.stub_image, script=f"rm -rf /host/{run.host_cache}"
            )
        )
        await run.wait("the HostPath cache directory removed", lambda: _pod_done(run, cleanup), within=60)
    return f"{fixtures.HOST_CACHE_ROOT}/{run.host_cache}: {detail}"


async def _pod_done(run: Run, name: str) -> bool:
    pod = await run.client.get(resources.POD, name, run.namespace) or {}
    phase = pod.get("status", {}).get("phase")
    if phase == "Failed":
        raise ScenarioFailedError(f"pod {name} failed: {await run.client.pod_log(name, run.namespace)}")
    return bool(phase == "Succeeded")


async def _prewarmed_start(run: Run, name: str, strategy: str) -> str:
    await run.wait("the stand-in hub ready", lambda: _ready(run, fixtures.HUB))
    await run.client.apply(fixtures.cached_service(name, run.namespace, run.runtime, strategy=strategy))
    started = time.monotonic()
    try:
        job = names.prewarm_job(name)
        await run.wait(f"Job {job} to succeed", lambda: job_succeeded(run, job))
        warmed = time.monotonic() - started
        downloaded = (await job_log(run, job)).strip().splitlines()
        snapshot = downloaded[-1] if downloaded else ""
        commit = snapshot.rsplit("/", 1)[-1]
        if f"/hub/models--{fixtures.MODEL_REPO.replace('/', '--')}/snapshots/" not in snapshot:
            raise ScenarioFailedError(f"the prewarm Job printed no snapshot folder: {downloaded[-3:]}")
        # The backend Deployment starts at 1 replica and does not wait for the Job (SPEC §5.4), so a pod
        # may have started before the cache was warm: replace it, since a backend starting now is the subject.
        early = await backend_pods(run, name)
        cold = 0
        for pod in early:
            with contextlib.suppress(ApiError):  # not started yet: no log
                log = await run.client.pod_log(
                    pod["metadata"]["name"], run.namespace, container=serving_container(pod)
                )
                cold += "model not in the Hugging Face cache" in log
            await run.client.delete(resources.POD, pod["metadata"]["name"], run.namespace)
        url = await run.gateway_url(name)
        woke = time.monotonic()
        events, _ = await run.stream(url, tokens=1)
        if events[-1] != b"data: [DONE]":
            raise ScenarioFailedError("the first request after the prewarm was not answered")
        answered = time.monotonic() - woke
        # The replaced pod may have answered while its EndpointSlice entry went: wait for the new one.
        await run.wait("a ready backend pod started after the prewarm", lambda: _backend_ready(run, name))
        line = await _cache_line(run, name)
        if f"snapshot={commit}" not in line:
            raise ScenarioFailedError(f"the backend did not start from snapshot {commit}: {line}")
    finally:
        await run.client.delete(resources.LLMSERVICE, name, run.namespace)
    replaced = (
        f"; replaced {len(early)} backend pod(s) started with the LLMService ({cold} had logged the model "
        f"not in the cache)"
        if early
        else ""
    )
    return (
        f"prewarm Job succeeded {warmed:.1f}s after apply ({snapshot}){replaced}; a request answered in "
        f"{answered:.1f}s; the serving backend logged: {line.split(' msg=', 1)[-1]}"
    )


async def _backend_ready(run: Run, name: str) -> bool:
    """Some backend pod is Ready, and every one not going away is."""
    pods = await backend_pods(run, name)
    return bool(pods) and all(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions") or []
        )
        for pod in pods
    )


async def _ready(run: Run, deployment: str) -> bool:
    return (await run.replicas(deployment))[1] > 0


async def job_succeeded(run: Run, job: str) -> bool:
    found = await run.client.get(resources.JOB, job, run.namespace) or {}
    status = found.get("status", {})
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            raise ScenarioFailedError(
                f"Job {job} failed: {condition.get('message')}: {await job_log(run, job)}"
            )
    return int(status.get("succeeded") or 0) >= 1


async def job_log(run: Run, job: str) -> str:
    pods, _ = await run.client.list(
        resources.POD, namespace=run.namespace, label_selector=f"{JOB_POD_LABEL}={job}"
    )
    logs = [await run.client.pod_log(pod["metadata"]["name"], run.namespace) for pod in pods]
    return "\n".join(logs)


async def backend_pods(run: Run, name: str) -> list[dict[str, Any]]:
    """The backend pods of *name* that are not going away (the prewarm pod carries the same labels)."""
    pods, _ = await run.client.list(
        resources.POD,
        namespace=run.namespace,
        label_selector=f"{names.LABEL_NAME}={name},{names.LABEL_LLMSERVICE}={name},!{JOB_POD_LABEL}",
    )
    return [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]


async def _cache_line(run: Run, name: str) -> str:
    """The serving backend pods' log line about the model cache (the stub writes it before it serves);
    every one must have started from the cache."""
    lines: list[str] = []
    pods = await backend_pods(run, name)
    for pod in pods:
        log = await run.client.pod_log(
            pod["metadata"]["name"], run.namespace, container=serving_container(pod)
        )
        lines += [line for line in log.splitlines() if "Hugging Face cache" in line or "model cache" in line]
    loaded = [line for line in lines if LOADED_FROM_CACHE in line]
    if not pods or len(loaded) != len(pods):
        raise ScenarioFailedError(
            f"{len(loaded)} of {len(pods)} backend pod(s) logged {LOADED_FROM_CACHE!r}: "
            f"{lines or 'no cache line'}"
        )
    return loaded[0]


def serving_container(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["name"])
