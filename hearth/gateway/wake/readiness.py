"""Knowing when the backend can serve, without polling per request.

One source per gateway process; every held request awaits the same event, so readiness wakes them all
at once, and the warm path is a single attribute read. Two sources:
- :class:`EndpointSliceReadiness` watches the backend Service's EndpointSlices (ready pod IPs, so requests
  go straight to pods);
- :class:`ProbeReadiness`, the fallback without API access, probes ``<backend><path>`` in one shared loop,
  where the path is the runtime's readiness probe path (``/health`` by default; llama.cpp-style engines
  may have none there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from hearth.common import logs, throttle
from hearth.kube import endpointslices, resources
from hearth.kube.client import KubeClient
from hearth.kube.informer import Informer

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.5
PROBE_TIMEOUT = 2.0
PROBE_LOG_INTERVAL = 30.0


def probe_session() -> aiohttp.ClientSession:
    """The probe loop's own client: a probe is a bare GET, without the Accept-Encoding and User-Agent
    aiohttp would add, and keeps no cookies; its connection is kept between probes."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(keepalive_timeout=30),
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class ReadinessSource(Protocol):
    """Where the gateway learns which backends can serve."""

    #: Whether :meth:`endpoints` are the backend pods' own addresses (not a Service URL that hides them):
    #: only then can the gateway tell the operator it no longer routes to a given pod.
    addresses_pods: bool

    @property
    def ready(self) -> bool: ...

    def endpoints(self) -> list[str]:
        """Base URLs of ready backends (pods, or the backend Service URL)."""
        ...

    async def wait_ready(self, within: float | None) -> bool:
        """Wait until ready (True) or *within* seconds pass (False)."""
        ...

    def suspect(self) -> None:
        """A request could not connect: the source should re-check soon."""
        ...

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call *callback* with the new readiness on every flip."""
        ...


class _Flag:
    """A readiness flag with waiters and change callbacks (shared by every source)."""

    addresses_pods = True

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._callbacks: list[Callable[[bool], None]] = []

    @property
    def ready(self) -> bool:
        return self._event.is_set()

    def set(self, ready: bool) -> None:
        if ready == self._event.is_set():
            return
        if ready:
            self._event.set()
        else:
            self._event.clear()
        for callback in self._callbacks:
            callback(ready)

    async def wait_ready(self, within: float | None) -> bool:
        if self._event.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), within)
        return self._event.is_set()

    def on_change(self, callback: Callable[[bool], None]) -> None:
        self._callbacks.append(callback)


class ManualReadiness(_Flag):
    """Readiness set by hand: the in-memory fake for tests, and the base of the others."""

    def __init__(self, endpoints: list[str] | None = None) -> None:
        super().__init__()
        self._endpoints = list(endpoints or [])

    def endpoints(self) -> list[str]:
        return list(self._endpoints) if self.ready else []

    def set_endpoints(self, endpoints: list[str]) -> None:
        self._endpoints = list(endpoints)
        self.set(bool(endpoints))

    def suspect(self) -> None:
        return None


class ProbeReadiness(_Flag):
    """One shared loop probing ``<backend_url><path>`` (any 2xx means ready), every 500 ms. Its one endpoint
    is the backend Service's URL, behind which any pod may answer.

    A probe answered with another status is logged (once per interval, with the count): an engine that
    answers 404 on the path would otherwise keep every request waiting its whole activation timeout, in
    silence.
    """

    addresses_pods = False

    def __init__(
        self, backend_url: str, session: aiohttp.ClientSession | None = None, *, path: str = "/health"
    ) -> None:
        """*session*: the caller's, left open; without one, :meth:`run` makes its own and closes it."""
        super().__init__()
        self._url = backend_url
        self._path = path
        self._given = session
        self._recheck = asyncio.Event()
        self._refusals = throttle.Throttle(interval=PROBE_LOG_INTERVAL)

    def endpoints(self) -> list[str]:
        return [self._url] if self.ready else []

    def suspect(self) -> None:
        self._recheck.set()

    async def run(self) -> None:
        session = self._given if self._given is not None else probe_session()
        try:
            while True:
                self.set(await self._probe(session))
                self._recheck.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._recheck.wait(), PROBE_INTERVAL)
        finally:
            if session is not self._given:
                await session.close()

    async def _probe(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(
                f"{self._url}{self._path}", timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            ) as response:
                if 200 <= response.status < 300:
                    return True
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            return False  # not listening yet: the normal state of a cold backend, not worth a line
        count = self._refusals.hit()
        if count is not None:
            log.warning(
                "the backend answers its readiness probe path with a non-2xx status; it is not ready "
                "(set the runtime's readiness probe path if the engine serves its health elsewhere)",
                extra=logs.fields(
                    url=f"{self._url}{self._path}",
                    status=status,
                    since_last=count,
                    total=self._refusals.total,
                ),
            )
        return False


class EndpointSliceReadiness(_Flag):
    """Ready endpoints of the backend Service, from a watch on its EndpointSlices."""

    def __init__(self, client: KubeClient, *, namespace: str, service: str, port_name: str = "http") -> None:
        super().__init__()
        self._port_name = port_name
        self._service = service
        self._endpoints: list[str] = []
        self.informer = Informer(
            client,
            resources.ENDPOINT_SLICE,
            namespace=namespace,
            label_selector=endpointslices.selector(service),
            handler=self._on_slice,
            resync_seconds=300,
        )

    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    def suspect(self) -> None:
        return None  # the watch reports removals itself

    async def run(self) -> None:
        await self.informer.run()

    def _on_slice(self, _kind: str, _obj: dict[str, Any]) -> None:
        endpoints: list[str] = []
        for item in self.informer.items():
            endpoints.extend(slice_endpoints(item, port_name=self._port_name))
        endpoints.sort()
        if endpoints != self._endpoints:
            log.info(
                "backend endpoints changed", extra=logs.fields(service=self._service, ready=len(endpoints))
            )
        self._endpoints = endpoints
        self.set(bool(endpoints))


def slice_endpoints(item: dict[str, Any], *, port_name: str) -> list[str]:
    """Base URLs of the ready endpoints of one EndpointSlice, on its port *port_name* (or its only,
    unnamed one)."""
    port = next(
        (p.get("port") for p in item.get("ports") or [] if p.get("name", "") in (port_name, "")),
        None,
    )
    if port is None:
        return []
    endpoints: list[str] = []
    for endpoint in item.get("endpoints") or []:
        if not endpointslices.is_ready(endpoint):
            continue
        for address in endpoint.get("addresses") or []:
            host = f"[{address}]" if ":" in address else address
            endpoints.append(f"http://{host}:{port}")
    return endpoints
