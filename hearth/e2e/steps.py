"""Steps the scenario modules of ``hearth e2e`` share: the backend's replicas and scale generation, steady
load, and the two gateway replicas a scenario needs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from hearth.e2e.runner import GatewayPod, Run, ScenarioFailedError
from hearth.kube import resources
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
