"""The demand of a gateway's peer replicas, for KEDA's external-push scaler (issue 27).

KEDA holds one gRPC connection to the scaler Service, and kube-proxy pins it to one gateway pod: with
several replicas, KEDA would see only that pod's demand. So each replica serves the *sum* over every
replica of its gateway: its own demand plus what its peers report. The builtin autoscaler sums the same
numbers from the operator (every ready pod's ``/hearth/queue``); here the gateways sum among themselves, so
external-push keeps its push (a flip on any replica reaches KEDA's stream at once) and needs nothing new
in the operator.

How a replica learns its peers' demand:

* **Membership** comes from the EndpointSlices of the gateway's own Service (the Role already lets it
  watch EndpointSlices): every address listed, ready or not, terminating or not, so a draining replica's
  requests in flight still count. An address that leaves the slices is forgotten at once.
* **Demand** comes from each peer over one long-lived HTTP stream (``GET /hearth/queues?watch=true``,
  newline-delimited JSON): the peer's demand per model on every flip of its demand (no wait) and at least
  every :data:`INTERVAL` seconds. The path is one every gateway version answers itself: a gateway from
  before the stream (met during a rolling upgrade) answers its one-shot ``/hearth/queues``, which is
  never taken for a stream, where any other path would be proxied to the backend as a request and wake
  it. Pulled, never pushed: nothing is accepted from an address the API server does
  not list, so no token is needed, and a frame carries what ``/hearth/queue`` already shows anyone.
* **Expiry**: a peer whose stream breaks (a killed pod's socket is reset) or that sends nothing for
  :data:`TTL` seconds (a vanished node) is dropped at once; its demand no longer counts.
* **Withdrawal**: a peer shutting down ends its stream with ``{"withdraw": true}`` once its last request
  in flight has finished.
* A stream carries the full state in every frame, in order on one connection, and a new connection starts
  with the full state: no sequence numbers are needed to drop stale reports. A replica recognises itself
  among the addresses by the process identity each frame carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import aiohttp

from hearth.common import logs
from hearth.gateway.model import demand as demand_module
from hearth.kube import endpointslices, resources
from hearth.kube.client import KubeClient
from hearth.kube.informer import Informer

log = logging.getLogger(__name__)

PATH = "/hearth/queues"
#: The query that turns ``/hearth/queues``'s one answer into the stream.
WATCH = {"watch": "true"}
#: The longest a peer's frames are apart while its demand does not flip.
INTERVAL = 1.0
#: A peer silent this long is dropped (several intervals: a busy event loop may be late once).
TTL = 4.0
#: Retry delays after a failed or ended stream: first, and at most (doubling in between).
RETRY_FIRST = 0.25
RETRY_MOST = 5.0
#: Failed attempts in a row after which a peer that never answers is logged as a warning (about 4 s).
WARN_AFTER_FAILURES = 5


def new_identity() -> str:
    """This process's identity in frames (random: pods share names across restarts, processes do not)."""
    return secrets.token_hex(8)


def frame(identity: str, models: dict[str, int], *, withdraw: bool = False) -> bytes:
    """One line of the peer stream."""
    document: dict[str, Any] = {"id": identity, "models": models}
    if withdraw:
        document["withdraw"] = True
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


class Peers:
    """The latest demand of every peer replica, by model; :meth:`on_change` hears every change."""

    def __init__(self, *, identity: str, ttl: float = TTL) -> None:
        self.identity = identity
        self._session: aiohttp.ClientSession | None = None
        self._ttl = ttl
        self._followers: dict[str, asyncio.Task[None]] = {}
        #: Base URL of a peer -> its latest demand by model (only peers whose stream is up).
        self._demand: dict[str, dict[str, int]] = {}
        #: Addresses that turned out to be this process.
        self._self: set[str] = set()
        self._listeners: list[Callable[[], None]] = []

    def total(self, model: str) -> int:
        """The demand for *model* summed over the peers (this replica's own not included)."""
        return sum(models.get(model, 0) for models in self._demand.values())

    def connected(self) -> list[str]:
        """Base URLs of the peers whose demand currently counts."""
        return sorted(self._demand)

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call *listener* whenever any peer's demand changes or a peer comes or goes; returns the
        unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_members(self, urls: list[str]) -> None:
        """The peers are now *urls* (this process's own address among them, unknowingly at first)."""
        wanted = set(urls)
        for url in [url for url in self._followers if url not in wanted]:
            self._followers.pop(url).cancel()
            self._drop(url, why="left the gateway's Service")
        self._self &= wanted
        for url in sorted(wanted - set(self._followers) - self._self):
            self._followers[url] = asyncio.get_running_loop().create_task(self._follow(url))

    async def close(self) -> None:
        followers = list(self._followers.values())
        self._followers.clear()
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def _follow(self, url: str) -> None:
        delay = RETRY_FIRST
        failures = 0
        while True:
            try:
                ended = await self._read(url)
                if ended == "self":
                    self._self.add(url)
                    self._followers.pop(url, None)
                    return
                if ended == "reported":
                    delay, failures = RETRY_FIRST, 0  # it was up: a restart, say; reconnect soon
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as error:
                failures += 1
                # A replica starting fails a few times; one that never answers (a NetworkPolicy, say)
                # leaves KEDA blind to its demand, which an operator must hear about, once.
                level = logging.WARNING if failures == WARN_AFTER_FAILURES else logging.DEBUG
                log.log(
                    level,
                    "cannot follow a peer gateway's demand; it does not count until it answers",
                    extra=logs.fields(peer=url, error=str(error) or type(error).__name__, failures=failures),
                )
            finally:
                self._drop(url, why="its stream ended")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    async def _read(self, url: str) -> str:
        """Follow one stream of *url* until it ends: "self" when *url* is this process, "withdrew" when the
        peer is shutting down, "reported" when it ended after reporting demand, else "ended"."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._ttl, sock_read=self._ttl)
        ended = "ended"
        async with self._client().get(f"{url}{PATH}", params=WATCH, timeout=timeout) as response:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            while True:
                line = await response.content.readuntil(b"\n")
                if not line.endswith(b"\n"):
                    return ended  # the peer closed the stream
                document = json.loads(line)
                if document.get("id") == self.identity:
                    return "self"
                if document.get("withdraw"):
                    self._drop(url, why="it withdrew (shutting down)")
                    return "withdrew"
                models = {str(model): int(count) for model, count in dict(document["models"]).items()}
                ended = "reported"
                joined = url not in self._demand
                if joined or self._demand[url] != models:
                    self._demand[url] = models
                    if joined:
                        log.info("peer gateway joined", extra=logs.fields(peer=url))
                    self._changed()

    def _drop(self, url: str, *, why: str) -> None:
        if self._demand.pop(url, None) is not None:
            log.info("peer gateway dropped", extra=logs.fields(peer=url, why=why))
            self._changed()

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


class SliceMembers:
    """Feeds :class:`Peers` from a watch on the EndpointSlices of the gateway's own Service."""

    def __init__(self, client: KubeClient, peers: Peers, *, namespace: str, service: str) -> None:
        self._peers = peers
        self.informer = Informer(
            client,
            resources.ENDPOINT_SLICE,
            namespace=namespace,
            label_selector=endpointslices.selector(service),
            handler=self._on_slice,
            resync_seconds=300,
        )

    async def run(self) -> None:
        try:
            await self.informer.run()
        finally:
            await self._peers.close()

    def _on_slice(self, _kind: str, _obj: dict[str, Any]) -> None:
        urls: list[str] = []
        for item in self.informer.items():
            urls.extend(member_urls(item))
        self._peers.set_members(sorted(set(urls)))


def member_urls(item: dict[str, Any], *, port_name: str = "http") -> list[str]:
    """Base URLs of every endpoint of one EndpointSlice, whatever its conditions (a pod starting or
    draining is a member: its stream says whether it has demand), on its port *port_name*."""
    port = next(
        (p.get("port") for p in item.get("ports") or [] if p.get("name", "") in (port_name, "")), None
    )
    if port is None:
        return []
    urls = []
    for endpoint in item.get("endpoints") or []:
        for address in endpoint.get("addresses") or []:
            host = f"[{address}]" if ":" in address else address
            urls.append(f"http://{host}:{port}")
    return urls


class Demanded(Protocol):
    """What the stream reads of a route: its model and its demand."""

    @property
    def model(self) -> str: ...

    @property
    def demand(self) -> demand_module.Demand: ...


async def serve_stream(
    *,
    identity: str,
    routes: Callable[[], Iterable[Demanded]],
    finished: Callable[[], bool],
    write: Callable[[bytes], Awaitable[Any]],
    interval: float = INTERVAL,
) -> None:
    """Write this replica's side of a peer stream: the demand of its *routes* (a shared gateway's come and
    go) on every flip of any of them and every *interval*, until *finished* (shutting down with nothing
    in flight), then the withdrawal."""
    wake = asyncio.Event()
    subscribed: dict[int, tuple[demand_module.Demand, Callable[[], None]]] = {}

    def follow(current: list[Demanded]) -> None:
        demands = {id(each.demand): each.demand for each in current}
        for key in [key for key in subscribed if key not in demands]:
            subscribed.pop(key)[1]()
        for key, demand in demands.items():
            if key not in subscribed:
                subscribed[key] = (demand, demand.subscribe(lambda _active: wake.set()))

    try:
        while not finished():
            wake.clear()
            current = list(routes())
            follow(current)
            await write(frame(identity, {each.model: each.demand.value() for each in current}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)
        await write(frame(identity, {}, withdraw=True))
    finally:
        for _, unsubscribe in subscribed.values():
            unsubscribe()
