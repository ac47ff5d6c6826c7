"""Steps the scenario modules of ``hearth e2e`` share: the backend's replicas and scale generation, steady
load, and the two gateway replicas a scenario needs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator

from hearth.e2e.runner import GatewayPod, Run, ScenarioFailedError
from hearth.kube import endpointslices, resources
from hearth.render import names

#: Long enough (50 ms a token) to outlast any scenario that holds load; streams are cancelled at the end.
STEADY_TOKENS = 2400


async def at(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[0] == replicas


async def ready(run: Run, name: str, replicas: int) -> bool:
    return (await run.replicas(name))[1] >= replicas


async def generation(run: Run, name: str) -> int:
    """The backend Deployment's generation: it grows with every change of its scale."""
    deployment = await run.client.get(resources.DEPLOYMENT, names.backend(name), run.namespace)
    return int((deployment or {}).get("metadata", {}).get("generation") or 0)


@contextlib.asynccontextmanager
async def load(run: Run, urls: list[str]) -> AsyncIterator[None]:
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


async def two_gateways(run: Run) -> list[GatewayPod]:
    """The ready gateway pods, when the scenario needs two; a mode limited to one gateway promises one."""
    traits = await run.traits("cold")
    if traits.max_gateway_replicas is not None and traits.max_gateway_replicas < 2:
        run.not_promised(f"{traits.mode} runs one gateway replica: {traits.max_gateway_replicas_why}")
    pods = await run.gateway_pods("cold")
    if len(pods) < 2:
        run.skip(f"needs 2 gateway replicas, found {len(pods)} (hearth install --gateway-replicas 2)")
    return pods


async def routes_nowhere(run: Run, pod: GatewayPod, model: str) -> bool:
    """Whether *pod* routes *model* to no endpoint now (its own view: ``/hearth/queues?routing=1``)."""
    async with run.http.get(f"{pod.url}/hearth/queues", params={"routing": "1"}) as response:
        document = await response.json(content_type=None)
    routing = (document.get("routing") or {}).get(model)
    if routing is None:
        raise ScenarioFailedError(f"gateway pod {pod.name} does not say where it routes {model}: {document}")
    return int(routing.get("endpoints", 1)) == 0


async def no_ready_endpoint(run: Run, name: str) -> bool:
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


async def cold_everywhere(run: Run, name: str) -> None:
    """Wait until *name* is cold as every gateway pod sees it: at 0 replicas, no ready endpoint, and each
    gateway pod routing it nowhere. At 0 by the Deployment's spec is not cold yet: for a moment the pod
    leaving is still a ready endpoint, and a gateway's watch may lag the API server (under load, by enough
    for a request to reach the leaving pod, which still serves while it drains)."""
    await run.wait(f"{name} at 0 replicas", lambda: at(run, name, 0))
    await run.wait(f"no ready endpoint of {name}", lambda: no_ready_endpoint(run, name))
    for pod in await run.gateway_pods(name):
        await run.wait(
            f"gateway pod {pod.name} routes {name} nowhere", functools.partial(routes_nowhere, run, pod, name)
        )
