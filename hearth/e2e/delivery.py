"""Model delivery for private clusters (issue 26), end to end against real servers on the test bed: the CNCF
distribution registry (htpasswd credentials) and versitygw (SigV4 access keys), both started by
``testing/delivery/serve.sh`` on the cluster bridge address so pods reach them. Each scenario generates its
own small model (a few files, random per run), pushes it (``oras push``; signed S3 PUTs), and serves it:

M1 from ``oci://…@sha256:…`` with a dockerconfigjson Secret; M2 from ``s3://…`` with an access-key Secret;
M3 a SharedPVC model with two replicas from one download (the prewarm Job writes, the replicas wait for the
readiness marker and read it read-only); M4 a wrong digest and M5 wrong S3 credentials each end as the
``ModelFetchFailed`` condition and Event naming the problem.

They need ``hearth e2e --delivery FILE`` (``HEARTH_E2E_DELIVERY``; ``scripts/e2e.sh`` starts the servers and
sets it, see testing/delivery/README.md); without it they are skipped, and fail under ``--no-skip``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import os
import secrets
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from hearth.api import wakefailure
from hearth.common import sigv4
from hearth.e2e import caches, fixtures
from hearth.e2e.runner import DeliveryServers, Run, ScenarioFailedError
from hearth.kube import resources
from hearth.render import names

#: What the stub logs once it has read a local model path (hearth/cmd/stub.py).
LOADED_LOCAL = "model loaded from a local path"
BUCKET = "hearth-e2e"
REGION = "us-east-1"


async def _servers(run: Run) -> DeliveryServers:
    # Passed in every mode on the test bed (session 10): the fetch path is the same whoever scales.
    await run.only_in_builtin("model delivery")
    servers = run.options.delivery
    if servers is None:
        run.skip(
            "no delivery servers given (--delivery FILE: testing/delivery/serve.sh starts them and writes it)"
        )
    return servers


def _model_files() -> dict[str, bytes]:
    """A tiny model, different every run (so nothing cached from an earlier run can pass for it)."""
    salt = secrets.token_hex(8)
    return {
        "config.json": json.dumps({"architectures": ["E2EModel"], "salt": salt}).encode(),
        "tokenizer.json": json.dumps({"vocab": ["a", "b", salt]}).encode(),
        "model.safetensors": hashlib.sha256(salt.encode()).digest() * 512,
    }


async def _oras_push(run: Run, servers: DeliveryServers, repository: str, files: dict[str, bytes]) -> str:
    """``oras push`` of *files* as an artifact; its manifest digest."""
    with tempfile.TemporaryDirectory(prefix="hearth-e2e-model-") as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        command = [
            servers.oras,
            "push",
            "--plain-http",
            "--username",
            servers.registry_user,
            "--password-stdin",
            "--format",
            "go-template={{.digest}}",
            f"{servers.registry}/{repository}:{run.namespace}",
            *files,
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=folder,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # No docker config of the machine's: the credentials are the ones given.
            env={**os.environ, "HOME": folder, "DOCKER_CONFIG": folder},
        )
        out, err = await process.communicate(servers.registry_password.encode())
    if process.returncode != 0:
        raise ScenarioFailedError(f"oras push failed ({process.returncode}): {err.decode()[-500:]}")
    digest = out.decode().strip().splitlines()[-1] if out.strip() else ""
    if not digest.startswith("sha256:"):
        raise ScenarioFailedError(f"oras push printed no digest: {out.decode()[-300:]}")
    return digest


async def _s3_put(run: Run, servers: DeliveryServers, path: str, data: bytes = b"") -> int:
    """A SigV4-signed PUT (``/<bucket>`` makes the bucket); the status."""
    url = urllib.parse.urlsplit(servers.s3_endpoint)
    encoded = sigv4.encode_path(path)
    headers = sigv4.sign(
        method="PUT",
        host=url.netloc,
        path=encoded,
        query={},
        region=REGION,
        credentials=sigv4.Credentials(servers.s3_access_key, servers.s3_secret_key),
        now=datetime.datetime.now(datetime.UTC),
        payload_sha256=hashlib.sha256(data).hexdigest(),
    )
    async with run.http.put(f"{servers.s3_endpoint}{encoded}", data=data, headers=headers) as response:
        return response.status


async def _s3_upload(run: Run, servers: DeliveryServers, prefix: str, files: dict[str, bytes]) -> None:
    status = await _s3_put(run, servers, f"/{BUCKET}")
    if status not in (200, 409):  # 409: BucketAlreadyOwnedByYou, from an earlier run
        raise ScenarioFailedError(f"creating bucket {BUCKET}: {status}")
    for name, data in files.items():
        status = await _s3_put(run, servers, f"/{BUCKET}/{prefix}/{name}", data)
        if status != 200:
            raise ScenarioFailedError(f"PUT {BUCKET}/{prefix}/{name}: {status}")


def _docker_secret(run: Run, name: str, servers: DeliveryServers, *, password: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{servers.registry_user}:{password}".encode()).decode()
    config = json.dumps({"auths": {servers.registry: {"auth": auth}}})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": run.namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config},
    }


def _keys_secret(run: Run, name: str, servers: DeliveryServers, *, secret_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": run.namespace},
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": servers.s3_access_key, "AWS_SECRET_ACCESS_KEY": secret_key},
    }


def _service(
    run: Run, name: str, uri: str, secret: str, *, strategy: str = "NodeLocalPVC", replicas: int = 0
) -> dict[str, Any]:
    manifest = fixtures.cached_service(name, run.namespace, run.runtime, strategy=strategy)
    manifest["spec"]["model"]["source"] = {"uri": uri, "secretRef": {"name": secret}}
    if replicas:
        manifest["spec"]["scaling"].update({"min": replicas, "max": replicas})
    return manifest


def _oci_uri(servers: DeliveryServers, repository: str, digest: str) -> str:
    return f"oci://{servers.registry}/{repository}@{digest}?plainHTTP=true"


def _s3_uri(servers: DeliveryServers, prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}?endpoint={servers.s3_endpoint}&region={REGION}"


async def oci_model_served(run: Run) -> str:
    """M1: pushed with oras, served from its digest with registry credentials."""
    servers = await _servers(run)
    files = _model_files()
    repository = f"e2e/{run.namespace}"
    digest = await _oras_push(run, servers, repository, files)
    await run.client.apply(_docker_secret(run, "registry-pull", servers, password=servers.registry_password))
    uri = _oci_uri(servers, repository, digest)
    detail = await _served(run, "oci-model", _service(run, "oci-model", uri, "registry-pull"), files)
    return f"{uri}: {detail}"


async def s3_model_served(run: Run) -> str:
    """M2: PUT object by object, served from its prefix with access keys."""
    servers = await _servers(run)
    files = _model_files()
    prefix = f"{run.namespace}/tiny"
    await _s3_upload(run, servers, prefix, files)
    await run.client.apply(_keys_secret(run, "s3-keys", servers, secret_key=servers.s3_secret_key))
    uri = _s3_uri(servers, prefix)
    detail = await _served(run, "s3-model", _service(run, "s3-model", uri, "s3-keys"), files)
    return f"{uri}: {detail}"


async def shared_claim_serves_two_replicas(run: Run) -> str:
    """M3: one RWX claim, one download (the prewarm Job), two replicas reading it read-only."""
    servers = await _servers(run)
    files = _model_files()
    prefix = f"{run.namespace}/shared"
    await _s3_upload(run, servers, prefix, files)
    await run.client.apply(_keys_secret(run, "s3-keys-shared", servers, secret_key=servers.s3_secret_key))
    name = "shared-model"
    manifest = _service(
        run, name, _s3_uri(servers, prefix), "s3-keys-shared", strategy="SharedPVC", replicas=2
    )
    try:
        detail = await _served(run, name, manifest, files, replicas=2)
        claim = await run.client.get(resources.CLAIM, names.cache_claim(name), run.namespace) or {}
        modes = claim.get("status", {}).get("accessModes") or []
        if claim.get("status", {}).get("phase") != "Bound" or "ReadWriteMany" not in modes:
            raise ScenarioFailedError(f"the shared claim is {claim.get('status')}, not Bound ReadWriteMany")
        job = await run.client.get(resources.JOB, names.prewarm_job(name), run.namespace) or {}
        if int(job.get("status", {}).get("succeeded") or 0) != 1:
            raise ScenarioFailedError(f"the prewarm Job's status is {job.get('status')}")
        pods = await caches.backend_pods(run, name)
        for pod in pods:
            (init,) = [c for c in pod["spec"].get("initContainers") or [] if "fetch" in c.get("args", [])]
            cache_mount = [
                m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["mountPath"] == "/cache"
            ]
            if "--wait" not in init["args"] or not all(m.get("readOnly") for m in cache_mount):
                raise ScenarioFailedError(f"pod {pod['metadata']['name']} is not a read-only waiting reader")
    finally:
        await run.client.delete(resources.LLMSERVICE, name, run.namespace)
    claim_name = names.cache_claim(name)
    return f"claim {claim_name} Bound ReadWriteMany, one Job download, 2 read-only replicas: {detail}"


async def wrong_digest_is_named(run: Run) -> str:
    """M4: a digest the registry does not have."""
    servers = await _servers(run)
    await run.client.apply(_docker_secret(run, "registry-pull", servers, password=servers.registry_password))
    digest = "sha256:" + hashlib.sha256(f"not pushed {run.namespace}".encode()).hexdigest()
    uri = _oci_uri(servers, f"e2e/{run.namespace}", digest)
    return await _fails_naming(run, "oci-wrong-digest", uri, "registry-pull", ("MANIFEST_UNKNOWN", "digest"))


async def wrong_s3_credentials_are_named(run: Run) -> str:
    """M5: a secret key the store does not accept."""
    servers = await _servers(run)
    files = _model_files()
    prefix = f"{run.namespace}/denied"
    await _s3_upload(run, servers, prefix, files)
    await run.client.apply(_keys_secret(run, "s3-wrong-keys", servers, secret_key="not-the-secret-key"))
    uri = _s3_uri(servers, prefix)
    return await _fails_naming(run, "s3-wrong-keys", uri, "s3-wrong-keys", ("SignatureDoesNotMatch",))


async def _served(
    run: Run, name: str, manifest: dict[str, Any], files: dict[str, bytes], *, replicas: int = 1
) -> str:
    """Apply *manifest*; the prewarm Job fetches the model, a request is answered, and every backend pod's
    engine read the fetched files."""
    started = time.monotonic()
    await run.client.apply(manifest)
    try:
        job = names.prewarm_job(name)
        await run.wait(f"Job {job} to succeed", lambda: caches.job_succeeded(run, job))
        warmed = time.monotonic() - started
        folder = (await caches.job_log(run, job)).strip().splitlines()[-1:]
        url = await run.gateway_url(name)
        events, _ = await run.stream(url, tokens=1, model=name)
        if events[-1] != b"data: [DONE]":
            raise ScenarioFailedError(f"the first request was not answered: {events[-2:]}")
        answered = time.monotonic() - started

        async def all_ready() -> bool:
            pods = await caches.backend_pods(run, name)
            ready = [
                pod
                for pod in pods
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in pod.get("status", {}).get("conditions") or []
                )
            ]
            return len(ready) >= replicas

        await run.wait(f"{replicas} ready backend pod(s)", all_ready)
        read = await _loaded_lines(run, name, files)
    finally:
        if replicas == 1:
            await run.client.delete(resources.LLMSERVICE, name, run.namespace)
    return (
        f"prewarm Job succeeded {warmed:.1f}s after apply (folder {folder[0] if folder else '?'}); answered "
        f"{answered:.1f}s after apply; {read}"
    )


async def _loaded_lines(run: Run, name: str, files: dict[str, bytes]) -> str:
    pods = await caches.backend_pods(run, name)
    size = sum(len(data) for data in files.values())
    said: list[str] = []
    for pod in pods:
        log = await run.client.pod_log(
            pod["metadata"]["name"], run.namespace, container=caches.serving_container(pod)
        )
        lines = [line for line in log.splitlines() if LOADED_LOCAL in line]
        # The marker file is read too: the model's files plus it.
        if not lines or f"files={len(files) + 1}" not in lines[-1] or "/cache/models/" not in lines[-1]:
            raise ScenarioFailedError(
                f"pod {pod['metadata']['name']} did not read the fetched model ({len(files)} files, {size} "
                f"bytes): {lines or log.splitlines()[-3:]}"
            )
        said.append(lines[-1].split(" msg=", 1)[-1])
    return f"{len(pods)} pod(s) read it: {said[0] if said else ''}"


async def _fails_naming(run: Run, name: str, uri: str, secret: str, words: tuple[str, ...]) -> str:
    """Apply a service whose model cannot be fetched: its condition and Event name the cause."""
    manifest = _service(run, name, uri, secret)
    manifest["spec"]["scaling"]["min"] = 1  # a pod keeps trying: the failure shows without a request
    await run.client.apply(manifest)
    reason = str(wakefailure.Reason.MODEL_FETCH_FAILED)
    started = time.monotonic()
    try:

        async def degraded() -> dict[str, Any] | None:
            service = await run.client.get(resources.LLMSERVICE, name, run.namespace) or {}
            for condition in service.get("status", {}).get("conditions") or []:
                if condition.get("type") == "Degraded" and condition.get("reason") == reason:
                    return dict(condition)
            return None

        condition = await run.wait(f"Degraded {reason}", degraded)
        took = time.monotonic() - started
        message = str(condition.get("message") or "")
        if not all(word in message for word in words):
            raise ScenarioFailedError(f"the condition does not name {words}: {message}")
        events, _ = await run.client.list(
            resources.EVENT,
            namespace=run.namespace,
            field_selector=f"involvedObject.name={name},reason={reason}",
        )
        if not events:
            raise ScenarioFailedError(f"no {reason} Event about {name}")
    finally:
        await run.client.delete(resources.LLMSERVICE, name, run.namespace)
    return f"Degraded {reason} {took:.1f}s after apply, Event recorded: {message}"


SCENARIOS = [
    ("M1 delivery: oci:// by digest with registry credentials: prewarm, served", oci_model_served),
    ("M2 delivery: s3:// with access keys: prewarm, served", s3_model_served),
    ("M3 delivery: SharedPVC: two replicas from one download", shared_claim_serves_two_replicas),
    ("M4 delivery: a wrong digest: ModelFetchFailed naming it", wrong_digest_is_named),
    ("M5 delivery: wrong S3 credentials: ModelFetchFailed naming them", wrong_s3_credentials_are_named),
]
