"""A list+watch cache of one resource type: relists on start, on 410 Gone, after errors and every resync
period, and calls a handler for every change. Reads come from memory; only list and watch touch the API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from hearth.common import logs
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.resources import ResourceType

log = logging.getLogger(__name__)

#: Called with ("ADDED" | "MODIFIED" | "DELETED", object) for every change, and for every object on resync.
Handler = Callable[[str, dict[str, Any]], None]
#: Applied to every object before it is cached and handed on: keeps what the cache's reader needs.
Transform = Callable[[dict[str, Any]], dict[str, Any]]
Key = tuple[str, str]


def key_of(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata", {})
    return (str(metadata.get("namespace") or ""), str(metadata.get("name")))


class Informer:
    def __init__(
        self,
        client: KubeClient,
        rt: ResourceType,
        *,
        handler: Handler,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_seconds: float = 600.0,
        watch_seconds: int = 300,
        transform: Transform | None = None,
    ) -> None:
        self._client = client
        self.rt = rt
        self._handler = handler
        self._selector = label_selector
        self._fields = field_selector
        self._namespace = namespace
        self._resync = resync_seconds
        self._watch_seconds = watch_seconds
        self._transform = transform
        self._store: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self._store.get((namespace or "", name))

    def items(self) -> list[dict[str, Any]]:
        return list(self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    async def run(self) -> None:
        """Keep the cache in sync until cancelled."""
        failures = 0
        while True:
            try:
                version = await self._relist()
                failures = 0
                deadline = time.monotonic() + self._resync
                while time.monotonic() < deadline:
                    version = await self._watch(
                        version, min(self._watch_seconds, int(deadline - time.monotonic()) + 1)
                    )
            except ApiError as error:
                if error.gone:
                    log.debug("watch expired; relisting", extra=logs.fields(kind=self.rt.kind))
                    continue
                failures += 1
                log.warning(
                    "list/watch failed",
                    extra=logs.fields(kind=self.rt.kind, status=error.status, error=error.message),
                )
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
            except (ApiUnreachableError, aiohttp.ClientError, TimeoutError, ValueError) as error:
                failures += 1
                log.warning("list/watch failed", extra=logs.fields(kind=self.rt.kind, error=str(error)))
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def _relist(self) -> str:
        items, version = await self._client.list(
            self.rt, namespace=self._namespace, label_selector=self._selector, field_selector=self._fields
        )
        if self._transform is not None:
            items = [self._transform(item) for item in items]
        fresh = {key_of(item): item for item in items}
        previous, self._store = self._store, fresh
        for key, obj in previous.items():
            if key not in fresh:
                self._handler("DELETED", obj)
        for key, obj in fresh.items():
            # A resync re-delivers every object, so level-based handlers converge even after a missed event.
            self._handler("ADDED" if key not in previous else "MODIFIED", obj)
        self.synced.set()
        return version

    async def _watch(self, version: str, seconds: int) -> str:
        async for kind, received in self._client.watch(
            self.rt,
            resource_version=version,
            namespace=self._namespace,
            label_selector=self._selector,
            field_selector=self._fields,
            timeout_seconds=max(1, seconds),
        ):
            version = str(received.get("metadata", {}).get("resourceVersion", version))
            if kind == "BOOKMARK":
                continue
            received.setdefault("apiVersion", self.rt.api_version)
            received.setdefault("kind", self.rt.kind)
            obj = received if self._transform is None else self._transform(received)
            if kind == "DELETED":
                self._store.pop(key_of(obj), None)
            else:
                self._store[key_of(obj)] = obj
            self._handler(kind, obj)
        return version
