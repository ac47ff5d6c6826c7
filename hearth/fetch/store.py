"""The plain-file model cache (``oci://``, ``s3://``): a model is a folder of files that becomes visible only
whole. Files are downloaded into a staging folder beside it (each under a temporary name, renamed once its
size and digest check out), the readiness marker is written last, and the staging folder is renamed to the
model's folder (one ``rename(2)``, atomic on a POSIX file system, an NFS or CephFS RWX volume included).

A fetch killed half-way leaves the staging folder: the next run keeps its whole files (checked again
against their digest) and downloads the rest, so it resumes file by file. Two writers at once (a prewarm Job
and a pod's init step) each download into the staging folder under their own temporary names; the first
rename wins and the other finds the model in place.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

from hearth.api import modeluri

CHUNK_BYTES = 1024 * 1024
STAGING_SUFFIX = ".staging"


class StoreError(Exception):
    """The model could not be written (a full volume, a file that does not check out)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Model:
    folder: Path
    files: int
    size: int


@dataclasses.dataclass(frozen=True, slots=True)
class File:
    """One file of a model: where it goes in the folder, how to check it, and how to download it."""

    name: str
    size: int
    sha256: str | None
    #: An S3 ETag of an object uploaded in one part.
    md5: str | None
    download: Callable[[], AsyncIterator[bytes]]

    def check(self, path: Path) -> bool:
        """Whether *path* (of the right size) holds this file's bytes, by the digest known."""
        if self.sha256 is not None:
            return sha256_of(path) == self.sha256
        return self.md5 is None or md5_of(path) == self.md5


async def fill(target: Path, files: Sequence[File], *, source: str) -> Model:
    """Make *target* hold *files*, whole or not at all: the files an earlier run left whole in the staging
    folder are kept (checked again), the others downloaded, then the folder is promoted. A writer that loses
    to another (which may remove its half-written file when it promotes) finds the other's model."""
    staging = Staging(target)
    try:
        staging.open()
        size = 0
        for item in files:
            if staging.whole(item.name, size=item.size, check=item.check):
                size += item.size
                continue
            size += await staging.write(
                item.name, item.download(), size=item.size, sha256=item.sha256, md5=item.md5
            )
        return staging.promote(files=len(files), size=size, source=source, keep={item.name for item in files})
    except StoreError:
        won = ready(target)
        if won is None:
            raise
        # What this writer left (its staging folder, made again after the other's promote) is nobody's.
        shutil.rmtree(staging.path, ignore_errors=True)
        return won


def folder_of(model: modeluri.ResolvedModel, env: Mapping[str, str]) -> Path:
    """Where a plain-file model (``oci://``, ``s3://``) lives in the model cache."""
    assert model.folder is not None
    return Path(modeluri.model_cache(env)) / model.folder


def ready(target: Path) -> Model | None:
    """The model in *target* if its readiness marker is there (written last, before the promote)."""
    marker = target / modeluri.READY_MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
        return Model(folder=target, files=int(info["files"]), size=int(info["size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Staging:
    """The staging folder of one model's fetch."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(target.name + STAGING_SUFFIX)
        self._writer = uuid.uuid4().hex[:12]

    def open(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create {self.path}: {error.strerror}") from None

    def whole(self, name: str, *, size: int, check: Callable[[Path], bool]) -> bool:
        """Whether an earlier run left *name* whole in the staging folder (else it is removed)."""
        path = self.path / name
        if not path.is_file():
            return False
        if path.stat().st_size == size and check(path):
            return True
        path.unlink(missing_ok=True)
        return False

    async def write(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        *,
        size: int | None,
        sha256: str | None,
        md5: str | None,
    ) -> int:
        """Write *chunks* as *name* (a temporary name, then renamed), checking size and digests."""
        path = self.path / name
        partial = path.with_name(f"{path.name}.incomplete-{self._writer}")
        sha, md = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        written = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
                    sha.update(chunk)
                    md.update(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise StoreError(f"writing {name} into {self.path}: {error.strerror}{_full(error)}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        problem = None
        if size is not None and written != size:
            problem = f"{written} bytes arrived, {size} were announced"
        elif sha256 is not None and sha.hexdigest() != sha256:
            problem = f"its contents do not match the digest sha256:{sha256} (got sha256:{sha.hexdigest()})"
        elif md5 is not None and md.hexdigest() != md5:
            problem = f"its contents do not match the ETag {md5} (got {md.hexdigest()})"
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise StoreError(f"{name}: {problem}")
        try:
            partial.replace(path)
        except OSError as error:  # another writer promoted the folder meanwhile
            partial.unlink(missing_ok=True)
            raise StoreError(f"renaming {name} into {self.path}: {error.strerror}") from None
        return written

    def promote(self, *, files: int, size: int, source: str, keep: set[str]) -> Model:
        """Drop what is not the model's (a dead writer's half-written files), write the readiness marker and
        rename the staging folder to the model's; a writer that lost the race to another finds the other's
        model in place."""
        marker = {"source": source, "files": files, "size": size}
        try:
            for path in sorted(self.path.rglob("*"), reverse=True):
                name = path.relative_to(self.path).as_posix()
                if path.is_dir():
                    if not any(item.startswith(name + "/") for item in keep):
                        shutil.rmtree(path, ignore_errors=True)
                elif name not in keep:
                    path.unlink(missing_ok=True)
            (self.path / modeluri.READY_MARKER).write_text(json.dumps(marker) + "\n")
            os.replace(self.path, self.target)
        except OSError as error:
            won = ready(self.target)
            if won is not None:
                shutil.rmtree(self.path, ignore_errors=True)
                return won
            raise StoreError(
                f"promoting {self.path} to {self.target}: {error.strerror}{_full(error)}"
            ) from None
        return Model(folder=self.target, files=files, size=size)


def _full(error: OSError) -> str:
    return " (the volume is full)" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as source:
        while block := source.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
