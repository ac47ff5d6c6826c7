"""Built-in mode's wake-up: the moment a cold request is admitted, set the backend Deployment's scale to 1
if it is at 0. One request in flight at a time, and a PUT with the resourceVersion just read, so many cold
requests and several gateway replicas cause one scale-up and never undo a larger scale set meanwhile."""

from __future__ import annotations

import asyncio
import logging

from hearth.common import clock as clock_module
from hearth.common import logs
from hearth.gateway.metrics import RouteMetrics
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError

log = logging.getLogger(__name__)

#: After confirming replicas >= 1, skip further checks for this long (the backend is on its way).
CONFIRMED_SECONDS = 2.0


class Waker:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        deployment: str,
        metrics: RouteMetrics,
        clock: clock_module.Clock | None = None,
    ) -> None:
        self._client = client
        #: When a confirmation expires (tests move it instead of outwaiting CONFIRMED_SECONDS).
        self._clock = clock or clock_module.SystemClock()
        self._namespace = namespace
        self._deployment = deployment
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._confirmed_until = 0.0

    def wake(self, admitted_at: float) -> None:
        """Fire and forget: ensure the backend is scaled to at least 1."""
        if (
            self._task is not None and not self._task.done()
        ) or self._clock.monotonic() < self._confirmed_until:
            return
        self._task = asyncio.get_running_loop().create_task(self._ensure_one(admitted_at))

    async def idle(self) -> None:
        """Return once no scale request is in flight."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Cancel a scale request still in flight (at shutdown, before the API client closes)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _ensure_one(self, admitted_at: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            scale = await self._client.get(
                resources.DEPLOYMENT, self._deployment, self._namespace, subresource="scale"
            )
            if scale is None:
                log.warning("backend Deployment not found", extra=logs.fields(deployment=self._deployment))
                self._metrics.wake("missing")
                return
            if int(scale.get("spec", {}).get("replicas") or 0) >= 1:
                self._confirmed_until = self._clock.monotonic() + CONFIRMED_SECONDS
                return
            scale["spec"]["replicas"] = 1
            await self._client.put(resources.DEPLOYMENT, scale, subresource="scale")
            patched = loop.time() - admitted_at
            self._confirmed_until = self._clock.monotonic() + CONFIRMED_SECONDS
            self._metrics.wake("scaled")
            self._metrics.wake_patched(patched)
            log.info(
                "woke the backend: scale 0 -> 1",
                extra=logs.fields(deployment=self._deployment, admitted_to_patch_ms=round(patched * 1000, 1)),
            )
        except ApiError as error:
            if error.conflict:
                self._metrics.wake("conflict")  # someone else scaled it first
                return
            self._metrics.wake("error")
            log.warning(
                "could not wake the backend", extra=logs.fields(status=error.status, error=error.message)
            )
        except ApiUnreachableError as error:
            self._metrics.wake("error")
            log.warning("could not wake the backend", extra=logs.fields(error=str(error)))
