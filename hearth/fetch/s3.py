"""Fetch an ``s3://<bucket>/<key or prefix>`` model from AWS S3 or an S3-compatible store (MinIO, Ceph RGW,
versitygw) into the plain-file model cache (:mod:`hearth.fetch.store`).

Requests, signed with SigV4 (:mod:`hearth.fetch.sigv4`) when ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` are set (``AWS_SESSION_TOKEN`` too), anonymous otherwise:

- ``GET /<bucket>?list-type=2&prefix=<key>`` (ListObjectsV2, following ``NextContinuationToken``): the object
  named by the key itself, else every object under ``<key>/``;
- ``GET /<bucket>/<object>``: each object, checked against its listed size and, for an object uploaded in
  one part, its ETag (the MD5 of its contents).

The endpoint, region and addressing come from the URI (:class:`hearth.api.modeluri.S3Location`). An
error answer's S3 ``Code`` (``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``NoSuchBucket``,
``AccessDenied``) is named in the error.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import posixpath
import re
from collections.abc import AsyncIterator, Callable, Mapping
from xml.etree import ElementTree

import aiohttp
from yarl import URL

from hearth.api import modeluri
from hearth.api.modeluri import S3Location
from hearth.common import logs, sigv4
from hearth.fetch import store

log = logging.getLogger(__name__)

MAX_PAGES = 1000
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_MD5 = re.compile(r"[0-9a-f]{32}")
_HINTS = {
    "InvalidAccessKeyId": "the access key in the source's Secret is not known to the store",
    # versitygw's word for the same (with a 404).
    "XAdminUserNotFound": "the access key in the source's Secret is not known to the store",
    "SignatureDoesNotMatch": "the secret key in the source's Secret is wrong",
    "AccessDenied": "the source's credentials may not read it",
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "the object does not exist",
    "AuthorizationHeaderMalformed": "the region does not match the store's (set ?region=)",
}


class S3Error(Exception):
    """The store refused or was unreachable; the message names the cause."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Object:
    key: str
    size: int
    etag: str


def credentials(env: Mapping[str, str]) -> sigv4.Credentials | None:
    """The access keys from *env* (the source's Secret), None for anonymous requests."""
    access, secret = env.get("AWS_ACCESS_KEY_ID") or "", env.get("AWS_SECRET_ACCESS_KEY") or ""
    if not access and not secret:
        return None
    if not access or not secret:
        missing = "AWS_ACCESS_KEY_ID" if not access else "AWS_SECRET_ACCESS_KEY"
        raise S3Error(f"{missing} is empty: the source's Secret needs both access keys")
    return sigv4.Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)


def cached(model: modeluri.ResolvedModel, env: Mapping[str, str]) -> store.Model | None:
    return store.ready(store.folder_of(model, env))


async def fetch(
    model: modeluri.ResolvedModel,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    *,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> store.Model:
    location = model.s3
    assert location is not None
    target = store.folder_of(model, env)
    found = store.ready(target)
    if found is not None:
        return found
    client = _Client(session, location, credentials(env), now)
    objects = await client.list()
    if not objects:
        raise S3Error(
            f"{model.uri}: no object {location.key!r} and none under {location.key + '/'!r} in bucket "
            f"{location.bucket!r} (a missing object)"
        )
    files = [
        store.File(
            name=_relative(location.key, item.key),
            size=item.size,
            sha256=None,
            md5=item.etag if _MD5.fullmatch(item.etag) else None,
            download=functools.partial(client.get, item.key),
        )
        for item in objects
    ]
    try:
        result = await store.fill(target, files, source=model.uri)
    except store.StoreError as error:
        raise S3Error(f"{model.uri}: {error}") from None
    log.info("fetched", extra=logs.fields(uri=model.uri, files=result.files, bytes=result.size))
    return result


def _relative(key: str, item: str) -> str:
    """Where object *item* goes in the model's folder: its path under the prefix, or its base name when the
    key names it."""
    if item == key:
        return posixpath.basename(key)
    return item[len(key) + 1 :]


class _Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        location: S3Location,
        keys: sigv4.Credentials | None,
        now: Callable[[], datetime.datetime],
    ) -> None:
        self._session = session
        self._location = location
        self._keys = keys
        self._now = now
        endpoint = URL(location.endpoint or f"https://s3.{location.region}.amazonaws.com")
        if location.path_style:
            self._base, self._prefix = endpoint, f"/{location.bucket}"
        else:
            self._base, self._prefix = endpoint.with_host(f"{location.bucket}.{endpoint.host}"), ""

    def _request(self, key: str | None, query: Mapping[str, str]) -> tuple[URL, dict[str, str]]:
        path = sigv4.encode_path(f"{self._prefix}/{key}" if key is not None else self._prefix or "/")
        host = self._base.raw_authority
        headers = {"User-Agent": "hearth-fetch"}
        if self._keys is not None:
            headers.update(
                sigv4.sign(
                    method="GET",
                    host=host,
                    path=path,
                    query=query,
                    region=self._location.region,
                    credentials=self._keys,
                    now=self._now(),
                )
            )
        raw = str(self._base.with_path("")).rstrip("/") + path
        if query:
            raw += "?" + sigv4.canonical_query(query)
        # As signed: yarl must not re-encode the path or reorder the query.
        return URL(raw, encoded=True), headers

    async def list(self) -> list[_Object]:
        key = self._location.key
        found: list[_Object] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            query = {"list-type": "2", "prefix": key}
            if token:
                query["continuation-token"] = token
            url, headers = self._request(None, query)
            try:
                async with self._session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status >= 400:
                        raise S3Error(_refusal("list", url, response.status, body))
            except (aiohttp.ClientError, TimeoutError) as error:
                raise S3Error(f"GET {url}: {error!r}") from None
            try:
                root = ElementTree.fromstring(body)
            except ElementTree.ParseError as error:
                raise S3Error(f"GET {url}: the listing is not XML: {error}") from None
            for item in root.iter(f"{_NS}Contents"):
                name = item.findtext(f"{_NS}Key") or ""
                if name != key and not name.startswith(key + "/"):
                    continue  # "<key>-other": a sibling, not under the prefix
                if name.endswith("/"):
                    continue  # a folder marker
                relative = _relative(key, name)
                if not _clean(relative):
                    raise S3Error(f"s3://{self._location.bucket}/{name}: not a clean path under the prefix")
                size = int(item.findtext(f"{_NS}Size") or "0")
                etag = (item.findtext(f"{_NS}ETag") or "").strip('"').lower()
                found.append(_Object(key=name, size=size, etag=etag))
            token = root.findtext(f"{_NS}NextContinuationToken")
            if (root.findtext(f"{_NS}IsTruncated") or "false") != "true" or not token:
                break
        exact = [item for item in found if item.key == key]
        return exact or found

    async def get(self, key: str) -> AsyncIterator[bytes]:
        url, headers = self._request(key, {})
        try:
            async with self._session.get(url, headers=headers) as response:
                if response.status >= 400:
                    raise S3Error(_refusal("get", url, response.status, await response.read()))
                async for chunk in response.content.iter_chunked(store.CHUNK_BYTES):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise S3Error(f"GET {url}: {error!r}") from None


def _refusal(action: str, url: URL, status: int, body: bytes) -> str:
    code = message = ""
    try:
        root = ElementTree.fromstring(body)
        code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    except ElementTree.ParseError:
        pass
    hint = _HINTS.get(code, "")
    # The cause first (an error is clipped where it is shown: a pod's status, a condition), then the URL.
    words = f"{status} {code}".rstrip()
    if hint:
        words += f" ({hint})"
    if message:
        words += f": {message}"
    return f"{words}; {action} GET {url.with_query(None)}"


def _clean(path: str) -> bool:
    return (
        bool(path)
        and not path.startswith("/")
        and posixpath.normpath(path) == path
        and ".." not in path.split("/")
    )
