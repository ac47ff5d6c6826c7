"""Fetch an ``oci://<registry>/<repository>@sha256:<hex>`` model: an OCI artifact whose layers are files
(as ``oras push`` makes them: one layer per file, its path in the ``org.opencontainers.image.title``
annotation), into the plain-file model cache (:mod:`hearth.fetch.store`).

The OCI distribution spec's pull API (https://github.com/opencontainers/distribution-spec/blob/main/spec.md):

- ``GET /v2/<repository>/manifests/<digest>``: the manifest, whose sha256 must be the digest asked for (the
  pin is checked, not trusted);
- ``GET /v2/<repository>/blobs/<digest>`` for each layer (a registry may redirect to its storage): the
  file, checked against its size and sha256.

Credentials come from ``$DOCKER_CONFIG/config.json`` (the source's ``kubernetes.io/dockerconfigjson``
Secret, mounted there): its ``auths`` entry for the registry. A ``401`` names the scheme the registry wants
(the Docker registry token protocol, https://distribution.github.io/distribution/spec/auth/token/): with
``Basic`` the credentials are sent as they are; with ``Bearer`` a token is asked of the realm, with the
credentials when there are any, and sent with the request again.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from hearth.api import modeluri
from hearth.common import logs
from hearth.fetch import store

log = logging.getLogger(__name__)

TITLE = "org.opencontainers.image.title"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_SHA256 = re.compile(r"^sha256:([0-9a-f]{64})$")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class OciError(Exception):
    """The registry refused or was unreachable, or the artifact is not a model; the message names why."""


def cached(model: modeluri.ResolvedModel, env: Mapping[str, str]) -> store.Model | None:
    return store.ready(store.folder_of(model, env))


def docker_credentials(env: Mapping[str, str], registry: str) -> tuple[str, str] | None:
    """The user and password ``$DOCKER_CONFIG/config.json`` holds for *registry* (None: none)."""
    folder = env.get("DOCKER_CONFIG") or str(Path(env.get("HOME") or "/") / ".docker")
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise OciError(f"{path}: not a docker config.json: {error}") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        host = URL(key).host_port_subcomponent if "://" in key else key.split("/")[0]
        if host != registry or not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return str(entry["username"]), str(entry["password"])
        try:
            user, _, password = base64.b64decode(str(entry.get("auth") or "")).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OciError(f"{path}: the auth of {key} is not base64 of user:password") from None
        if user:
            return user, password
    return None


async def fetch(
    model: modeluri.ResolvedModel, env: Mapping[str, str], session: aiohttp.ClientSession
) -> store.Model:
    oci = model.oci
    assert oci is not None
    target = store.folder_of(model, env)
    found = store.ready(target)
    if found is not None:
        return found
    registry = _Registry(session, oci, docker_credentials(env, oci.registry))
    manifest = await registry.manifest()
    layers = _files(model.uri, manifest)
    if model.file is not None and model.file not in {name for name, _, _ in layers}:
        raise OciError(f"{model.uri}: the artifact has no file {model.file!r} (it has {len(layers)} files)")
    files = [
        store.File(
            name=name,
            size=length,
            sha256=digest.removeprefix("sha256:"),
            md5=None,
            download=functools.partial(registry.blob, digest),
        )
        for name, digest, length in layers
    ]
    try:
        result = await store.fill(target, files, source=model.uri)
    except store.StoreError as error:
        raise OciError(f"{model.uri}: {error}") from None
    log.info("fetched", extra=logs.fields(uri=model.uri, files=result.files, bytes=result.size))
    return result


def _files(uri: str, manifest: dict[str, Any]) -> list[tuple[str, str, int]]:
    """``(path, digest, size)`` of every layer, each a file named by its title annotation."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        kind = manifest.get("mediaType") or "a manifest without layers"
        raise OciError(f"{uri}: not a model artifact ({kind}; push files with `oras push`)")
    files: list[tuple[str, str, int]] = []
    for layer in layers:
        annotations = layer.get("annotations") or {}
        name = str(annotations.get(TITLE) or "")
        digest, size = str(layer.get("digest") or ""), layer.get("size")
        if not name:
            raise OciError(f"{uri}: layer {digest} has no {TITLE} annotation (not a file pushed by oras)")
        if annotations.get("io.deis.oras.content.unpack"):
            raise OciError(f"{uri}: layer {name!r} is a packed folder: push its files, not the folder")
        if not _clean(name):
            raise OciError(f"{uri}: layer title {name!r} is not a clean relative path")
        if not _SHA256.match(digest) or not isinstance(size, int) or size < 0:
            raise OciError(f"{uri}: layer {name!r} has no sha256 digest and size")
        files.append((name, digest, size))
    return files


def _clean(path: str) -> bool:
    parts = path.split("/")
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in parts)


class _Registry:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        oci: modeluri.OciReference,
        login: tuple[str, str] | None,
    ) -> None:
        self._session = session
        self._oci = oci
        self._login = login
        self._base = URL(f"{'http' if oci.plain_http else 'https'}://{oci.registry}")
        self._authorization: str | None = None

    def _url(self, kind: str, digest: str) -> URL:
        return self._base.with_path(f"/v2/{self._oci.repository}/{kind}/{digest}")

    async def manifest(self) -> dict[str, Any]:
        url = self._url("manifests", self._oci.digest)
        body = b""
        async for chunk in self._get(url, accept=", ".join(MANIFEST_TYPES)):
            body += chunk
            if len(body) > MAX_MANIFEST_BYTES:
                raise OciError(f"GET {url}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != self._oci.digest:
            raise OciError(
                f"GET {url}: the registry's manifest has digest {got}, not the pinned {self._oci.digest} "
                "(a wrong digest)"
            )
        try:
            manifest = json.loads(body)
        except ValueError as error:
            raise OciError(f"GET {url}: the manifest is not JSON: {error}") from None
        if not isinstance(manifest, dict):
            raise OciError(f"GET {url}: the manifest is not a JSON object")
        return manifest

    def blob(self, digest: str) -> AsyncIterator[bytes]:
        return self._get(self._url("blobs", digest), accept="*/*")

    async def _get(self, url: URL, *, accept: str) -> AsyncIterator[bytes]:
        origin = url.origin()
        for attempt in range(MAX_REDIRECTS + 2):
            headers = {"Accept": accept, "User-Agent": "hearth-fetch"}
            # The registry's credentials go to the registry only, never to the storage it redirects to.
            if self._authorization and url.origin() == origin:
                headers["Authorization"] = self._authorization
            try:
                async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                    if response.status == 401 and url.origin() == origin and attempt == 0:
                        await self._authenticate(url, response.headers.get("WWW-Authenticate") or "")
                        continue
                    location = response.headers.get("Location")
                    if 300 <= response.status < 400 and location:
                        url = url.join(URL(location))
                        continue
                    if response.status >= 400:
                        raise OciError(await _refusal(url, response, login=self._login is not None))
                    async for chunk in response.content.iter_chunked(store.CHUNK_BYTES):
                        yield chunk
                    return
            except (aiohttp.ClientError, TimeoutError) as error:
                raise OciError(f"GET {url}: {error!r}") from None
        raise OciError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    async def _authenticate(self, url: URL, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            if self._login is None:
                raise OciError(
                    f"GET {url}: 401: the registry wants credentials (name a dockerconfigjson Secret in "
                    "model.source.secretRef)"
                )
            user, password = self._login
            self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            return
        if scheme != "bearer":
            raise OciError(
                f"GET {url}: 401 with an authentication scheme hearth does not speak: {challenge!r}"
            )
        fields = dict(_CHALLENGE.findall(params))
        realm = fields.pop("realm", "")
        if not realm:
            raise OciError(f"GET {url}: 401 with a Bearer challenge that names no realm")
        fields.setdefault("scope", f"repository:{self._oci.repository}:pull")
        auth = aiohttp.BasicAuth(*self._login) if self._login else None
        token_url = URL(realm).update_query(fields)
        try:
            async with self._session.get(token_url, auth=auth) as response:
                if response.status >= 400:
                    raise OciError(
                        f"GET {token_url}: {response.status}: the registry's token service refused the "
                        f"{'credentials' if auth else 'anonymous request'} (wrong credentials?)"
                    )
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise OciError(f"GET {token_url}: {error!r}") from None
        token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise OciError(f"GET {token_url}: the token service sent no token")
        self._authorization = f"Bearer {token}"


async def _refusal(url: URL, response: aiohttp.ClientResponse, *, login: bool) -> str:
    """The cause first (an error is clipped where it is shown: a pod's status, a condition), then the URL."""
    code = ""
    try:
        errors = (await response.json(content_type=None)).get("errors") or []
        code = "; ".join(f"{error.get('code')}: {error.get('message')}" for error in errors)
    except (ValueError, AttributeError, aiohttp.ClientError):
        pass
    words = f"{response.status} {code}".rstrip()
    if response.status == 401:
        words += (
            " (wrong credentials in the source's Secret)" if login else " (the registry wants credentials)"
        )
    elif response.status == 404:
        words += " (no such repository or digest in the registry)"
    return f"{words}: GET {url}"
