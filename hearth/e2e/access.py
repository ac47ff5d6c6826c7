"""The access scenarios of ``hearth e2e`` (10-11): API keys gate a model's endpoint before anything can wake
it, and the operator's /metrics need a reader's token."""

from __future__ import annotations

import asyncio
import ssl
import time

from hearth.e2e import promtext, steps
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources

#: What `hearth install --metrics-port` creates (names kept here: e2e may not import the installer).
METRICS_SERVICE = "hearth-operator-metrics"
METRICS_READER = "hearth-metrics-reader"


async def auth_then_reject_mode(run: Run) -> str:
    """The "rejecting" LLMService has API keys: without one, 401 and its backend stays at 0 (nothing
    unauthenticated may wake an accelerator); with one, reject mode's 503 and Retry-After at once."""
    url = await run.gateway_url("rejecting")
    await run.wait("the rejecting backend at 0", lambda: steps.at(run, "rejecting", 0))
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


SCENARIOS = [
    ("10 auth, then reject mode's 503 at once", auth_then_reject_mode),
    ("11 operator metrics: HTTPS + token checks", operator_metrics_are_guarded),
]
