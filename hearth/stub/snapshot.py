"""``snapshot_download``: fetch every file of a hub repository into the Hugging Face cache (hfcache layout).

Hearth's own, small implementation of what the prewarm Job asks ``huggingface_hub`` for, so the CPU stub
image can run a real prewarm: it asks ``<endpoint>/api/models/<repo>/revision/<rev>`` for the commit and
files, downloads each from ``/<repo>/resolve/<commit>/<file>``, checks LFS files against their sha256,
stores them as ``blobs/<etag>`` and links them into ``snapshots/<commit>/``, then records ``refs/<rev>``.
Blobs already in the cache are not fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hearth.common import hfcache

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_SECONDS = 30
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadError(Exception):
    """The hub could not be reached, or answered something unusable."""


def _get(url: str, *, token: str | None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"User-Agent": "hearth-stub-snapshot/1"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.read(), {key.lower(): value for key, value in response.headers.items()}
    except urllib.error.HTTPError as error:
        code = error.headers.get("X-Error-Code") or ""
        raise DownloadError(f"GET {url}: {error.code} {code}".rstrip()) from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"GET {url}: {getattr(error, 'reason', error)}") from None


def _etag(headers: dict[str, str]) -> str:
    raw = headers.get("x-linked-etag") or headers.get("etag") or ""
    etag = raw.removeprefix("W/").strip('"')
    if not etag or "/" in etag or etag in (".", ".."):
        raise DownloadError(f"the hub sent no usable ETag ({raw!r})")
    return etag


def snapshot_download(
    repo_id: str,
    *,
    cache: Path,
    endpoint: str = DEFAULT_ENDPOINT,
    revision: str = "main",
    token: str | None = None,
) -> Path:
    """Download *repo_id* at *revision* into *cache*; return the snapshot folder."""
    if not hfcache.is_repo_id(repo_id):
        raise DownloadError(f"{repo_id!r} is not a repository id (org/name)")
    base = endpoint.rstrip("/")
    quoted = urllib.parse.quote(revision, safe="")
    body, _ = _get(f"{base}/api/models/{repo_id}/revision/{quoted}", token=token)
    try:
        info: dict[str, Any] = json.loads(body)
        commit = str(info["sha"])
        files = [str(sibling["rfilename"]) for sibling in info.get("siblings") or []]
    except (ValueError, KeyError, TypeError) as error:
        raise DownloadError(
            f"the hub's answer for {repo_id}@{revision} is not a model info: {error}"
        ) from None
    if not hfcache.is_commit(commit):
        raise DownloadError(f"the hub named commit {commit!r} for {repo_id}@{revision}")
    folder = hfcache.repo_folder(cache, repo_id)
    snapshot = folder / "snapshots" / commit
    for name in files:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise DownloadError(f"the hub listed an unsafe file name {name!r}")
        _fetch(
            f"{base}/{repo_id}/resolve/{commit}/{urllib.parse.quote(name)}", folder, snapshot / name, token
        )
    if revision != commit:
        ref = folder / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(ref, commit.encode())
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _fetch(url: str, folder: Path, link: Path, token: str | None) -> None:
    if link.exists():
        return  # already in this snapshot (a warm cache)
    data, headers = _get(url, token=token)
    etag = _etag(headers)
    if _SHA256.fullmatch(etag) and hashlib.sha256(data).hexdigest() != etag:
        raise DownloadError(f"{url}: the contents do not match their sha256 {etag}")
    blob = folder / "blobs" / etag
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(blob, data)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()  # dangling: its blob was removed
    link.symlink_to(os.path.relpath(blob, link.parent))


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".incomplete")
    partial.write_bytes(data)
    partial.replace(path)
