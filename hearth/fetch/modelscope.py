"""Fetch a ModelScope repository into ModelScope's cache layout (``$MODELSCOPE_CACHE/models/<org>/<name>/``,
plain files, as ``modelscope.snapshot_download`` lays it out), so the prewarm needs no Python in the engine
image.

ModelScope's HTTP file API, as the ``modelscope`` library calls it (``modelscope.hub.api.HubApi``):

- ``GET <endpoint>/api/v1/models/<org>/<name>/repo/files?Revision=<rev>&Recursive=true``: ``{"Code": 200,
  "Data": {"Files": [{"Path", "Type": "blob"|"tree", "Size", "Sha256"}]}}``;
- ``GET <endpoint>/api/v1/models/<org>/<name>/repo?Revision=<rev>&FilePath=<path>``: the file.

The endpoint is ``https://$MODELSCOPE_DOMAIN`` (default www.modelscope.cn; a domain given with its
``http://`` scheme is taken as it is, for a mirror inside the cluster). The repository lands whole or not at
all (:mod:`hearth.fetch.store`: staged, checked against each file's sha256, promoted).
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from hearth.common import logs
from hearth.fetch import store

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = "www.modelscope.cn"
DEFAULT_REVISION = "master"


class ModelScopeError(Exception):
    """The hub could not be reached, or answered something unusable."""


def endpoint(env: Mapping[str, str]) -> str:
    domain = (env.get("MODELSCOPE_DOMAIN") or DEFAULT_DOMAIN).rstrip("/")
    return domain if domain.startswith(("http://", "https://")) else f"https://{domain}"


def cache_root(env: Mapping[str, str]) -> Path:
    """``MODELSCOPE_CACHE`` as the modelscope library reads it (default ``~/.cache/modelscope``)."""
    if env.get("MODELSCOPE_CACHE"):
        return Path(env["MODELSCOPE_CACHE"])
    return Path(env.get("HOME") or "/") / ".cache" / "modelscope"


def target(repo: str, env: Mapping[str, str]) -> Path:
    return cache_root(env) / "models" / repo


def cached(repo: str, env: Mapping[str, str]) -> store.Model | None:
    return store.ready(target(repo, env))


async def fetch(
    repo: str, *, env: Mapping[str, str], session: aiohttp.ClientSession, revision: str | None = None
) -> store.Model:
    folder = target(repo, env)
    found = store.ready(folder)
    if found is not None:
        return found
    base = endpoint(env)
    rev = revision or DEFAULT_REVISION
    listing = URL(f"{base}/api/v1/models/{repo}/repo/files").with_query(Revision=rev, Recursive="true")
    answer = await _json(session, listing)
    files = _files(repo, answer)
    items = [
        store.File(
            name=path,
            size=length,
            sha256=sha256,
            md5=None,
            download=functools.partial(
                _stream,
                session,
                URL(f"{base}/api/v1/models/{repo}/repo").with_query(Revision=rev, FilePath=path),
            ),
        )
        for path, length, sha256 in files
    ]
    try:
        result = await store.fill(folder, items, source=f"modelscope://{repo}@{rev}")
    except store.StoreError as error:
        raise ModelScopeError(f"modelscope://{repo}: {error}") from None
    log.info("fetched", extra=logs.fields(repo=repo, revision=rev, files=result.files, bytes=result.size))
    return result


def _files(repo: str, answer: Any) -> list[tuple[str, int, str | None]]:
    try:
        if answer.get("Code") not in (200, None):
            raise ModelScopeError(
                f"modelscope://{repo}: the hub answered {answer.get('Code')}: {answer.get('Message')}"
            )
        entries = answer["Data"]["Files"]
        files = [
            (str(entry["Path"]), int(entry.get("Size") or 0), str(entry.get("Sha256") or "") or None)
            for entry in entries
            if entry.get("Type", "blob") == "blob"
        ]
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ModelScopeError(f"modelscope://{repo}: the hub's file list is not one: {error!r}") from None
    for path, _, _ in files:
        if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
            raise ModelScopeError(f"modelscope://{repo}: the hub listed an unsafe file name {path!r}")
    if not files:
        raise ModelScopeError(f"modelscope://{repo}: the repository has no files")
    return files


async def _json(session: aiohttp.ClientSession, url: URL) -> Any:
    try:
        async with session.get(url, headers={"User-Agent": "hearth-fetch"}) as response:
            if response.status >= 400:
                raise ModelScopeError(f"GET {url}: {response.status} {response.reason or ''}".rstrip())
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise ModelScopeError(f"GET {url}: {error!r}") from None


async def _stream(session: aiohttp.ClientSession, url: URL) -> AsyncIterator[bytes]:
    try:
        async with session.get(url, headers={"User-Agent": "hearth-fetch"}) as response:
            if response.status >= 400:
                raise ModelScopeError(f"GET {url}: {response.status} {response.reason or ''}".rstrip())
            async for chunk in response.content.iter_chunked(store.CHUNK_BYTES):
                yield chunk
    except (aiohttp.ClientError, TimeoutError) as error:
        raise ModelScopeError(f"GET {urllib.parse.unquote(str(url))}: {error!r}") from None
