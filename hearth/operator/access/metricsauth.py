"""``--metrics-secure``: who may read the operator's /metrics, decided by the API server as the reference
does. The bearer token is checked with a TokenReview, and the user it names with a SubjectAccessReview
for ``get`` on the non-resource URL ``/metrics`` (grant it with the ``hearth-metrics-reader``
ClusterRole). Verdicts are cached briefly per token, so a Prometheus scrape costs no API calls most of
the time; tokens are kept only as digests."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hearth.common import logs
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError

log = logging.getLogger(__name__)

CACHE_SECONDS = 10.0
CACHE_ENTRIES = 1024
PROTECTED_PATH = "/metrics"


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    status: int  # 200 allowed, 401 no or bad token, 403 not allowed
    message: str


class MetricsAuthorizer:
    def __init__(
        self,
        client: KubeClient,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Verdict]] = {}

    async def check(self, authorization: str | None) -> Verdict:
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Verdict(401, "Unauthorized: send a ServiceAccount token as Authorization: Bearer <token>")
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict = await self._review(token)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, verdict)
        return verdict

    async def _review(self, token: str) -> Verdict:
        review = await self._client.review(
            resources.TOKEN_REVIEW,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status: dict[str, Any] = review.get("status") or {}
        if not status.get("authenticated"):
            return Verdict(401, "Unauthorized: the token was not accepted by the API server")
        user: dict[str, Any] = status.get("user") or {}
        spec: dict[str, Any] = {
            "user": user.get("username", ""),
            "groups": user.get("groups") or [],
            "nonResourceAttributes": {"path": PROTECTED_PATH, "verb": "get"},
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access = await self._client.review(
            resources.SUBJECT_ACCESS_REVIEW,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        if (access.get("status") or {}).get("allowed"):
            return Verdict(200, "allowed")
        return Verdict(403, f'Forbidden: user "{spec["user"]}" may not get {PROTECTED_PATH}')

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def authorize(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path != PROTECTED_PATH:
                return await handler(request)
            try:
                verdict = await self.check(request.headers.get("Authorization"))
            except (ApiError, ApiUnreachableError) as error:
                log.warning("could not review a metrics token", extra=logs.fields(error=str(error)))
                return web.Response(status=503, text="could not check the token with the API server\n")
            if verdict.status != 200:
                return web.Response(status=verdict.status, text=verdict.message + "\n")
            return await handler(request)

        return authorize
