"""After a pool eviction: confirm that no gateway routes to the victim any more, then tell its drain sidecars
so they need not wait out their endpoint delay (issue 32).

A backend pod's drain waits ``endpoint delay`` (1 s) before it first reads the engine, so that a request a
gateway routed before it saw the pod's endpoint go is counted by the engine by then. After a pool eviction
the operator can do better than a delay: it asks every gateway pod that may route the victim
(``GET /hearth/queues?routing=1``: its dedicated gateway's and those of every LLMGateway routing it,
terminating ones included, since a draining gateway still forwards) until each one routes the victim nowhere
and has no request outstanding at it, and then POSTs ``/drain/settled`` to each victim pod's sidecar. Once
that holds, nothing can reach the pod that the engine has not counted: every request a gateway sent it has
been answered, and no gateway will send another. The drain then reads the engine at once, and still ends
only when the engine says it is idle.

Anything short of that proof leaves the drain as it was (the endpoint delay applies): a gateway pod that
does not answer, or answers without the counts (a gateway older than this), or routes through the backend
Service rather than to pods (probe readiness), or the confirmation not coming within :data:`WITHIN_SECONDS`.
A sidecar that cannot be reached (a NetworkPolicy that admits only gateways to the backend pods) is the
same: the word is an optimisation, never a condition of the drain.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from hearth.api import drain as drain_api
from hearth.common import logs
from hearth.render import backend

log = logging.getLogger(__name__)

#: How often the gateways are asked while the endpoint removal propagates.
POLL_SECONDS = 0.05
#: How long the confirmation may take; past it the drains keep their endpoint delay.
WITHIN_SECONDS = 5.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
#: How long the operator's pod cache may lag behind the gateways in showing the victim's pods terminating.
PODS_WITHIN_SECONDS = 1.0


class Outcome(enum.StrEnum):
    SETTLED = "settled"
    UNANSWERED = "a gateway pod did not say where it routes"
    THROUGH_SERVICE = "a gateway routes through the backend Service"
    TIMED_OUT = "a gateway still routed to it or had requests outstanding"


async def confirm(
    http: aiohttp.ClientSession,
    *,
    model: str,
    gateways: Sequence[str],
    within: float = WITHIN_SECONDS,
    poll: float = POLL_SECONDS,
) -> Outcome:
    """Ask every gateway in *gateways* (base URLs) until none routes *model* anywhere nor has anything
    outstanding at it, or *within* seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        views = await asyncio.gather(*(_routing(http, url, model) for url in gateways))
        if any(view is None for view in views):
            return Outcome.UNANSWERED
        if not all(view.get("addressesPods", False) for view in views if view):
            return Outcome.THROUGH_SERVICE
        if all(not view or (view.get("endpoints") == 0 and view.get("outstanding") == 0) for view in views):
            return Outcome.SETTLED
        if loop.time() + poll > deadline:
            return Outcome.TIMED_OUT
        await asyncio.sleep(poll)


async def _routing(http: aiohttp.ClientSession, url: str, model: str) -> dict[str, Any] | None:
    """One gateway pod's routing of *model*: {} when it does not route the model at all, None when it did
    not say (no answer, or an answer without the counts)."""
    try:
        async with http.get(f"{url}/hearth/queues?routing=1", timeout=REQUEST_TIMEOUT) as response:
            document = await response.json(content_type=None)
        routing = document["routing"]
        view = routing.get(model, {})
        return view if isinstance(view, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, AttributeError):
        return None


async def tell(http: aiohttp.ClientSession, drainers: Sequence[str]) -> int:
    """POST the word to each drain sidecar (base URLs); how many took it."""

    async def one(url: str) -> bool:
        try:
            async with http.post(f"{url}{drain_api.SETTLED_PATH}", timeout=REQUEST_TIMEOUT) as response:
                return response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    return sum(await asyncio.gather(*(one(url) for url in drainers)))


async def _leaving(
    pods: Callable[[], Sequence[dict[str, Any]]], *, within: float = PODS_WITHIN_SECONDS
) -> list[dict[str, Any]]:
    """The victim's terminating pods, once the operator's own pod cache shows every one terminating (the
    gateways can learn of it first), or as they are after *within* seconds (a pod created since stays
    out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        current = list(pods())
        leaving = [pod for pod in current if (pod.get("metadata") or {}).get("deletionTimestamp")]
        if len(leaving) == len(current) or loop.time() + POLL_SECONDS > deadline:
            return leaving
        await asyncio.sleep(POLL_SECONDS)


def drainer_urls(pods: Sequence[dict[str, Any]]) -> list[str]:
    """The drain sidecar's base URL of each pod that has one and an address."""
    urls = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        port = backend.drain_port(pod.get("spec") or {})
        if ip and port is not None:
            urls.append(f"http://{_host(str(ip))}:{port}")
    return urls


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


async def after_eviction(
    http: aiohttp.ClientSession,
    *,
    victim: str,
    model: str,
    gateways: Sequence[str],
    pods: Callable[[], Sequence[dict[str, Any]]],
) -> Outcome:
    """The whole step for one evicted member (*victim*, namespace/name, for the logs): confirm, then tell
    the sidecars of its pods that are terminating then (never a pod created since: a member woken again
    must drain its new pods in full)."""
    outcome = await confirm(http, model=model, gateways=gateways)
    told = 0
    if outcome is Outcome.SETTLED:
        told = await tell(http, drainer_urls(await _leaving(pods)))
    log.info(
        "evicted member's endpoint removal",
        extra=logs.fields(victim=victim, outcome=outcome.name.lower(), why=str(outcome), drainers_told=told),
    )
    return outcome
