"""Fetch a Hugging Face hub repository (or one file of it) into the hub cache, as huggingface_hub lays it out
(:mod:`hearth.common.hfcache`), so an engine given the repo id with ``HF_HOME`` set finds it there.

The hub's HTTP API, as huggingface_hub uses it (https://huggingface.co/docs/huggingface_hub/guides/manage-cache
for the layout; ``huggingface_hub.file_download`` for the calls):

- ``GET <endpoint>/api/models/<repo>/revision/<revision>``: the commit (``sha``) and the file names
  (``siblings``);
- ``HEAD <endpoint>/<repo>/resolve/<commit>/<file>`` without following redirects: the file's ETag
  (``X-Linked-Etag`` for LFS files, which the hub redirects to its storage, else ``ETag``), the blob's name;
- ``GET`` of the same URL, following redirects: the bytes, checked against the ETag when it is a sha256.

``HF_ENDPOINT`` (default https://huggingface.co) and ``HF_TOKEN`` (sent as a Bearer token to the endpoint)
are read as huggingface_hub reads them. Files already in the snapshot, and blobs already in the cache, are not
fetched again; a file is written under a temporary name and renamed, so an interrupted fetch leaves nothing an
engine could mistake for a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from hearth.api import modeluri
from hearth.common import hfcache, logs

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK_BYTES = 1024 * 1024
MAX_METADATA_REDIRECTS = 5
_SHA256 = re.compile(r"[0-9a-f]{64}")


class HubError(Exception):
    """The hub could not be reached, or answered something unusable."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    snapshot: Path
    commit: str
    files: int
    size: int
    #: ``$HF_HOME/hearth-files/<repo>/<file>`` linked to the snapshot's file, when the source names one.
    link: Path | None


def split(reference: str) -> tuple[str, str | None]:
    """``org/repo[/file]`` into the repo id and the file (None for the whole repository)."""
    org, _, rest = reference.partition("/")
    name, _, file = rest.partition("/")
    repo = f"{org}/{name}"
    if not hfcache.is_repo_id(repo):
        raise HubError(f'"{reference}" does not start with a repository id (<org>/<repo>)')
    if file and not _safe(file):
        raise HubError(f'"{file}" is not a clean path inside the repository')
    return repo, file or None


def home(env: Mapping[str, str]) -> Path:
    """``HF_HOME`` as huggingface_hub reads it (where ``hearth-files`` links are made)."""
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"])
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or "/") / ".cache")
    return Path(xdg) / "huggingface"


def cached(reference: str, *, env: Mapping[str, str], revision: str = "main") -> Result | None:
    """What an earlier fetch of *reference* at *revision* left in the cache *env* names, read without the
    hub (None: not there, or not known to be whole): the file's link for one file (made once the file is
    whole), else the snapshot ``refs/<revision>`` names (written after every file of the snapshot; a fetch
    of a commit writes no ref, so its snapshot is never known whole)."""
    repo, file = split(reference)
    folder = hfcache.repo_folder(hfcache.cache_dir(env), repo)
    if file is not None:
        link = Path(modeluri.fetched_file(str(home(env)), repo, file))
        if not link.exists():  # follows the link: a dangling one is no file
            return None
        # One hop: the link names the snapshot's file (itself a link to the blob).
        snapshot = Path(os.path.normpath(link.parent / os.readlink(link))).parent
        return Result(snapshot=snapshot, commit=snapshot.name, files=1, size=link.stat().st_size, link=link)
    ref = folder / "refs" / revision
    if not ref.is_file():
        return None
    commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit
    if not hfcache.is_commit(commit) or not snapshot.is_dir():
        return None
    present = [path for path in snapshot.iterdir() if path.exists()]
    return Result(
        snapshot=snapshot,
        commit=commit,
        files=len(present),
        size=sum(path.stat().st_size for path in present if path.is_file()),
        link=None,
    )


async def fetch(
    reference: str, *, env: Mapping[str, str], session: aiohttp.ClientSession, revision: str = "main"
) -> Result:
    """Download *reference* (``org/repo`` or ``org/repo/file``) at *revision* into the cache *env* names."""
    repo, file = split(reference)
    endpoint = (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None
    hub = _Hub(session, endpoint=endpoint, token=token)
    info = await hub.json(f"/api/models/{repo}/revision/{urllib.parse.quote(revision, safe='')}")
    try:
        commit = str(info["sha"])
        names = [str(sibling["rfilename"]) for sibling in info.get("siblings") or []]
    except (KeyError, TypeError, AttributeError) as error:
        raise HubError(f"the hub's answer for {repo}@{revision} is not a model info: {error!r}") from None
    if not hfcache.is_commit(commit):
        raise HubError(f"the hub named commit {commit!r} for {repo}@{revision}")
    for name in names:
        if not _safe(name):
            raise HubError(f"the hub listed an unsafe file name {name!r} in {repo}")
    if file is not None:
        if file not in names:
            raise HubError(f"{repo}@{revision} has no file {file!r} (it has {len(names)} files)")
        names = [file]
    cache = hfcache.cache_dir(env)
    folder = hfcache.repo_folder(cache, repo)
    snapshot = folder / "snapshots" / commit
    size = 0
    for name in names:
        size += await _fetch_file(hub, repo=repo, commit=commit, name=name, folder=folder, snapshot=snapshot)
    if revision != commit:
        _write(folder / "refs" / revision, commit.encode())
    snapshot.mkdir(parents=True, exist_ok=True)
    link = None
    if file is not None:
        link = Path(modeluri.fetched_file(str(home(env)), repo, file))
        _link(link, snapshot / file)
    log.info(
        "fetched",
        extra=logs.fields(repo=repo, revision=revision, commit=commit, files=len(names), bytes=size),
    )
    return Result(snapshot=snapshot, commit=commit, files=len(names), size=size, link=link)


class _Hub:
    def __init__(self, session: aiohttp.ClientSession, *, endpoint: str, token: str | None) -> None:
        self._session = session
        self._endpoint = endpoint
        self._origin = URL(endpoint).origin()
        self._token = token

    def url(self, path: str) -> URL:
        return URL(self._endpoint + path, encoded=False)

    def headers(self, url: URL) -> dict[str, str]:
        # The token goes to the hub only, never to the storage its LFS files redirect to.
        if self._token and url.origin() == self._origin:
            return {"Authorization": f"Bearer {self._token}", "User-Agent": "hearth-fetch"}
        return {"User-Agent": "hearth-fetch"}

    async def json(self, path: str) -> Any:
        url = self.url(path)
        try:
            async with self._session.get(url, headers=self.headers(url)) as response:
                await _check(response, url)
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise HubError(f"GET {url}: {error!r}") from None

    async def etag(self, url: URL) -> str:
        """The blob name of *url*: its ETag from a HEAD that does not follow the storage redirect."""
        for _ in range(MAX_METADATA_REDIRECTS):
            try:
                async with self._session.head(
                    url, headers=self.headers(url), allow_redirects=False
                ) as answer:
                    headers = answer.headers
                    raw = headers.get("X-Linked-Etag") or headers.get("ETag") or ""
                    location = headers.get("Location")
                    if 300 <= answer.status < 400 and not raw and location:
                        url = url.join(URL(location))  # a renamed repository: ask its new name
                        continue
                    if answer.status >= 400:
                        await _check(answer, url)
            except (aiohttp.ClientError, TimeoutError) as error:
                raise HubError(f"HEAD {url}: {error!r}") from None
            etag = raw.removeprefix("W/").strip('"')
            if not etag or "/" in etag or etag in (".", ".."):
                raise HubError(f"HEAD {url}: the hub sent no usable ETag ({raw!r})")
            return etag
        raise HubError(f"HEAD {url}: more than {MAX_METADATA_REDIRECTS} redirects")

    async def download(self, url: URL, target: Path, *, sha256: str | None) -> int:
        """Stream *url* into *target* (through a temporary name), checking its sha256 when given."""
        partial = target.with_name(target.name + ".incomplete")
        digest = hashlib.sha256()
        size = 0
        try:
            async with self._session.get(url, headers=self.headers(url)) as response:
                await _check(response, url)
                with partial.open("wb") as out:
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
        except (aiohttp.ClientError, TimeoutError) as error:
            partial.unlink(missing_ok=True)
            raise HubError(f"GET {url}: {error!r}") from None
        if sha256 is not None and digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise HubError(f"GET {url}: the contents do not match their sha256 {sha256}")
        partial.replace(target)
        return size


async def _check(response: aiohttp.ClientResponse, url: URL) -> None:
    if response.status < 400:
        return
    code = response.headers.get("X-Error-Code") or ""
    hint = " (set HF_TOKEN for a gated or private repository)" if response.status in (401, 403) else ""
    raise HubError(f"{response.method} {url}: {response.status} {code}".rstrip() + hint)


async def _fetch_file(hub: _Hub, *, repo: str, commit: str, name: str, folder: Path, snapshot: Path) -> int:
    """Make ``snapshot/<name>`` a link to its blob, downloading the blob unless the cache has it."""
    link = snapshot / name
    if link.exists():
        return link.stat().st_size  # a warm cache: this snapshot has the file already
    url = hub.url(f"/{repo}/resolve/{commit}/{urllib.parse.quote(name)}")
    etag = await hub.etag(url)
    blob = folder / "blobs" / etag
    if blob.exists():
        size = blob.stat().st_size
    else:
        blob.parent.mkdir(parents=True, exist_ok=True)
        size = await hub.download(url, blob, sha256=etag if _SHA256.fullmatch(etag) else None)
        log.info("downloaded", extra=logs.fields(repo=repo, file=name, bytes=size))
    _link(link, blob)
    return size


def _link(link: Path, target: Path) -> None:
    """*link* → *target*, relative, so the cache can be mounted anywhere."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()  # dangling (its blob was removed), or from another snapshot
    link.symlink_to(os.path.relpath(target, link.parent))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".incomplete")
    partial.write_bytes(data)
    partial.replace(path)


def _safe(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and "." not in parts
