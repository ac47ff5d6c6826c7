"""Leader election on a coordination.k8s.io Lease, so only one operator replica reconciles at a time."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import uuid
from typing import Any

from hearth.common import logs, timestamps
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError

log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


class LeaderElector:
    """Acquire, hold and renew a Lease. ``lost`` is set if a renewal fails for longer than the deadline."""

    def __init__(
        self,
        client: KubeClient,
        *,
        name: str,
        namespace: str,
        identity: str | None = None,
        lease_seconds: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self._client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or f"{os.uname().nodename}_{uuid.uuid4()}"
        self._lease_seconds = lease_seconds
        self._renew_deadline = renew_deadline
        self._retry = retry_period
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()

    async def acquire(self) -> None:
        """Return once this process holds the lease."""
        while True:
            if await self._try_acquire_or_renew():
                break
            await asyncio.sleep(self._retry)
        self.leading.set()
        log.info(
            "became leader", extra=logs.fields(lease=f"{self.namespace}/{self.name}", identity=self.identity)
        )

    async def hold(self) -> None:
        """Renew every retry period; set ``lost`` and return when renewals fail past the deadline."""
        last_renewal = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self._retry)
            if await self._try_acquire_or_renew():
                last_renewal = asyncio.get_running_loop().time()
            elif asyncio.get_running_loop().time() - last_renewal > self._renew_deadline:
                log.error("lost leadership", extra=logs.fields(lease=f"{self.namespace}/{self.name}"))
                self.leading.clear()
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the lease up on clean shutdown so a standby takes over at once."""
        lease = await self._client.get(resources.LEASE, self.name, self.namespace)
        if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = ""
        lease["spec"]["leaseDurationSeconds"] = 1
        try:
            await self._client.put(resources.LEASE, lease)
        except (ApiError, ApiUnreachableError) as error:
            log.warning("could not release the lease", extra=logs.fields(error=str(error)))

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._attempt()
        except ApiError as error:
            if not error.conflict:
                log.warning(
                    "lease update failed", extra=logs.fields(status=error.status, error=error.message)
                )
            return False
        except ApiUnreachableError as error:
            log.warning("lease update failed", extra=logs.fields(error=str(error)))
            return False

    async def _attempt(self) -> bool:
        now = _now()
        lease = await self._client.get(resources.LEASE, self.name, self.namespace)
        if lease is None:
            await self._client.post(
                resources.LEASE, self._lease(now, acquired=now, transitions=0), namespace=self.namespace
            )
            return True
        spec: dict[str, Any] = lease.get("spec", {})
        holder = spec.get("holderIdentity") or ""
        if holder == self.identity:
            spec["renewTime"] = timestamps.format_micros(now)
        else:
            # The API server validates both as MicroTime: an unreadable one is a bug worth failing loudly on.
            renewed_at = spec.get("renewTime") or spec.get("acquireTime")
            renewed = timestamps.parse_strict(renewed_at) if renewed_at else None
            duration = int(spec.get("leaseDurationSeconds") or self._lease_seconds)
            if holder and renewed is not None and renewed + datetime.timedelta(seconds=duration) > now:
                return False
            spec.update(
                {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self._lease_seconds,
                    "acquireTime": timestamps.format_micros(now),
                    "renewTime": timestamps.format_micros(now),
                    "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
                }
            )
        lease["spec"] = spec
        # PUT carries the resourceVersion we read: two candidates racing cannot both win (one gets 409).
        await self._client.put(resources.LEASE, lease)
        return True

    def _lease(
        self, now: datetime.datetime, *, acquired: datetime.datetime, transitions: int
    ) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._lease_seconds,
                "acquireTime": timestamps.format_micros(acquired),
                "renewTime": timestamps.format_micros(now),
                "leaseTransitions": transitions,
            },
        }
