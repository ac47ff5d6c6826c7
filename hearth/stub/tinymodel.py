"""A tiny model repository, generated from its id, for the stand-in hub to serve (nothing real to fetch).

Two files, as a real repository has: ``config.json`` (a plain git file) and ``model.safetensors`` (an LFS
file, a valid safetensors archive of one small tensor). Everything is derived from the repo id, so every
replica of the stand-in hub serves the same commit and bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct

#: Files stored through LFS on the real hub (their ETag is the content's sha256).
_LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")


@dataclasses.dataclass(frozen=True, slots=True)
class RepoFile:
    path: str
    data: bytes

    @property
    def lfs(self) -> bool:
        return self.path.endswith(_LFS_SUFFIXES)

    @property
    def etag(self) -> str:
        """The hub's ETag: sha256 for LFS files, the git blob sha1 for the rest."""
        if self.lfs:
            return hashlib.sha256(self.data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data, usedforsecurity=False).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Repo:
    repo_id: str
    files: tuple[RepoFile, ...]

    @property
    def commit(self) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        for item in self.files:
            digest.update(f"{item.path}\0{item.etag}\n".encode())
        return digest.hexdigest()

    def file(self, path: str) -> RepoFile | None:
        return next((item for item in self.files if item.path == path), None)


def _safetensors(values: int) -> bytes:
    header = json.dumps(
        {"weight": {"dtype": "F32", "shape": [values], "data_offsets": [0, 4 * values]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(header)) + header + struct.pack(f"<{values}f", *range(values))


def generate(repo_id: str) -> Repo:
    config = json.dumps(
        {"architectures": ["HearthTinyModel"], "model_type": "hearth-tiny", "name_or_path": repo_id},
        indent=2,
        sort_keys=True,
    ).encode()
    return Repo(
        repo_id=repo_id,
        files=(RepoFile("config.json", config + b"\n"), RepoFile("model.safetensors", _safetensors(16))),
    )
