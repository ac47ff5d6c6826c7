"""A small asynchronous REST client on aiohttp: get, list, watch, server-side apply, create, delete, status
updates. Objects are plain dicts (manifests), validated by the layers above.

Every call is a plain REST request with a JSON body, so no generated client is involved; where the API
server is and how to authenticate comes from :mod:`hearth.kube.kubeconfig`."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

import hearth
from hearth.kube import kubeconfig as _kubeconfig
from hearth.kube import resources
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.resources import ResourceType

log = logging.getLogger(__name__)

FIELD_MANAGER = "hearth-operator"
APPLY_PATCH = "application/apply-patch+yaml"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
USER_AGENT = f"hearth/{hearth.__version__}"
#: Connections kept open to the API server at most (as kubernetes_asyncio's default pool).
POOL_SIZE = 100
#: A watch event is one line, read whole: the buffer must hold the largest object (as kubernetes_asyncio).
READ_BUFFER = 2**21


class KubeClient:
    """One connection pool to one API server; counts writes so callers can prove idleness."""

    def __init__(self, connection: _kubeconfig.Connection) -> None:
        self._connection = connection
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=connection.ssl),
            # HTTPS_PROXY and NO_PROXY apply, as they do for kubectl.
            trust_env=True,
            read_bufsize=READ_BUFFER,
        )
        self.writes = 0

    @classmethod
    async def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        """In-cluster credentials when running in a pod (and no kubeconfig is given), else the kubeconfig."""
        if kubeconfig is None and _in_cluster():
            return cls(_kubeconfig.in_cluster())
        return cls(await _kubeconfig.from_kubeconfig(kubeconfig, context))

    async def close(self) -> None:
        await self._session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        limits: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
        counted: bool = True,
    ) -> aiohttp.ClientResponse:
        if method != "GET" and counted:
            self.writes += 1
        connection = self._connection
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": USER_AGENT}
        authorization = await connection.authorization()
        if authorization:
            headers["Authorization"] = authorization
        url = connection.host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        options: dict[str, Any] = {}
        if connection.server_hostname:
            options["server_hostname"] = connection.server_hostname
        if connection.proxy:
            options["proxy"] = connection.proxy
            options["proxy_headers"] = connection.proxy_headers
        try:
            response = await self._session.request(
                method,
                url,
                headers=headers,
                data=json.dumps(body) if body is not None else None,
                timeout=limits,
                **options,
            )
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            raise ApiUnreachableError(f"{method} {path}: {error}") from error
        if response.status >= 300:
            raise await _api_error(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, path, **kwargs)
        async with response:
            result: dict[str, Any] = await response.json(content_type=None)
        return result

    async def get(
        self, rt: ResourceType, name: str, namespace: str | None = None, *, subresource: str | None = None
    ) -> dict[str, Any] | None:
        """The object (or its subresource), or ``None`` if it does not exist."""
        try:
            return await self._json("GET", rt.path(namespace=namespace, name=name, subresource=subresource))
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def pod_log(self, name: str, namespace: str, *, container: str | None = None) -> str:
        """What the pod's (first, or *container*) container has written so far."""
        query = [("container", container)] if container else []
        path = resources.POD.path(namespace=namespace, name=name, subresource="log")
        response = await self._request("GET", path, query=query)
        async with response:
            return await response.text()

    async def list(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (paginated under the hood) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            page = await self._json("GET", rt.path(namespace=namespace), query=query)
            for item in page.get("items", []):
                item.setdefault("apiVersion", rt.api_version)
                item.setdefault("kind", rt.kind)
            items.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items, str(page.get("metadata", {}).get("resourceVersion", ""))

    async def watch(
        self,
        rt: ResourceType,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` events until the server closes the watch. A 410 raises ApiError(gone)."""
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        limits = aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_connect=10)
        response = await self._request("GET", rt.path(namespace=namespace), query=query, limits=limits)
        async with response:
            while True:
                line = await response.content.readline()
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise ApiError(
                        status=int(status.get("code", 500)),
                        reason=str(status.get("reason", "")),
                        message=str(status.get("message", "")),
                    )
                yield str(event["type"]), event["object"]

    async def apply(self, manifest: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply, forcing ownership of the fields in *manifest*."""
        rt = resources.of(manifest)
        metadata = manifest["metadata"]
        path = rt.path(namespace=metadata.get("namespace"), name=metadata["name"])
        query = [("fieldManager", field_manager), ("force", "true")]
        return await self._json("PATCH", path, query=query, body=manifest, content_type=APPLY_PATCH)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; ``None`` if it already exists (create-once objects are never updated)."""
        rt = resources.of(manifest)
        try:
            return await self._json(
                "POST", rt.path(namespace=manifest["metadata"].get("namespace")), body=manifest
            )
        except ApiError as error:
            if error.already_exists:
                return None
            raise

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        grace_period: int | None = None,
    ) -> bool:
        """Delete (background propagation); with *uid*, only that exact object. *grace_period* 0 removes a
        pod object at once (its kubelet still stops the containers within its 2 s minimum grace). False if
        it was gone."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            await self._json("DELETE", rt.path(namespace=namespace, name=name), body=body)
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    async def update_status(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT the status subresource (optimistic concurrency on resourceVersion)."""
        metadata = obj["metadata"]
        path = rt.path(namespace=metadata.get("namespace"), name=metadata["name"], subresource="status")
        return await self._json("PUT", path, body=obj)

    async def patch_status(
        self, rt: ResourceType, name: str, namespace: str | None, status: dict[str, Any]
    ) -> None:
        """Merge-patch some status fields (no resourceVersion: other writers' fields are left alone)."""
        path = rt.path(namespace=namespace, name=name, subresource="status")
        await self._json("PATCH", path, body={"status": status}, content_type="application/merge-patch+json")

    async def post(
        self, rt: ResourceType, manifest: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        return await self._json("POST", rt.path(namespace=namespace), body=manifest)

    async def service_account_token(self, namespace: str, account: str, *, seconds: int = 600) -> str:
        """A short-lived token of a ServiceAccount (the TokenRequest API, as `kubectl create token`)."""
        path = resources.SERVICE_ACCOUNT.path(namespace=namespace, name=account, subresource="token")
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        answer = await self._json("POST", path, body=body, counted=False)
        return str(answer.get("status", {}).get("token") or "")

    async def review(self, rt: ResourceType, manifest: dict[str, Any]) -> dict[str, Any]:
        """POST a review (TokenReview, SubjectAccessReview): the server answers in the returned status and
        stores nothing, so it is not counted as a write."""
        return await self._json("POST", rt.path(), body=manifest, counted=False)

    async def put(
        self, rt: ResourceType, manifest: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """Replace (optimistic concurrency: the manifest's resourceVersion must still be current)."""
        metadata = manifest["metadata"]
        path = rt.path(namespace=metadata.get("namespace"), name=metadata["name"], subresource=subresource)
        return await self._json("PUT", path, body=manifest)

    async def group_version_exists(self, api_version: str) -> bool:
        """Whether the API server serves *api_version* (discovery; allowed for every authenticated user)."""
        try:
            await self._json("GET", f"/apis/{api_version}")
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True


async def _api_error(response: aiohttp.ClientResponse) -> ApiError:
    async with response:
        text = await response.text()
    try:
        status = json.loads(text)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    return ApiError(
        status=response.status,
        reason=str(status.get("reason") or response.reason or ""),
        message=str(status.get("message") or text[:500]),
        details=status.get("details") if isinstance(status.get("details"), dict) else None,
    )


def _in_cluster() -> bool:
    return _kubeconfig.in_cluster_available()
