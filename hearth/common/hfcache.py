"""The Hugging Face hub cache on disk, as huggingface_hub lays it out and vLLM reads it.

``<cache>/models--<org>--<name>/`` holds ``blobs/<etag>`` (the file contents, named by the hub's ETag: the
sha256 for LFS files, the git blob sha1 otherwise), ``snapshots/<commit>/<file>`` (relative symlinks to the
blobs) and ``refs/<branch>`` (the commit a branch pointed at when it was downloaded). ``hearth fetch`` and
the stub image's ``snapshot_download`` write it; the stub's start-up report reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def cache_dir(environ: Mapping[str, str]) -> Path:
    """Where huggingface_hub keeps its cache: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else XDG's."""
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"])
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]) / "hub"
    xdg = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or "/") / ".cache")
    return Path(xdg) / "huggingface" / "hub"


def is_repo_id(model: str) -> bool:
    """Whether *model* names a hub repository (``org/name``) rather than a local path."""
    parts = model.split("/")
    return len(parts) == 2 and all(part and part not in (".", "..") for part in parts)


def repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def is_commit(revision: str) -> bool:
    return _COMMIT.fullmatch(revision) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """A complete snapshot found in the cache, every file read back."""

    commit: str
    path: Path
    files: int
    size: int


class CacheError(Exception):
    """The cache holds the repository, but not in a usable state (a dangling link, a corrupt blob)."""


def find(cache: Path, repo_id: str, revision: str = "main") -> Snapshot | None:
    """The snapshot of *repo_id* at *revision*, reading every file (as loading a model would), or ``None``
    when the cache does not have it."""
    folder = repo_folder(cache, repo_id)
    if is_commit(revision):
        commit = revision
    else:
        ref = folder / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    files = size = 0
    for path in sorted(snapshot.rglob("*")):
        if path.is_dir():
            continue
        if not path.exists():
            raise CacheError(f"{path} is a dangling link (its blob is missing)")
        data = path.read_bytes()
        blob = Path(os.path.realpath(path)).name
        if _SHA256.fullmatch(blob) and hashlib.sha256(data).hexdigest() != blob:
            raise CacheError(f"{path}: the contents do not match the sha256 its blob is named by")
        files += 1
        size += len(data)
    if files == 0:
        return None
    return Snapshot(commit=commit, path=snapshot, files=files, size=size)
