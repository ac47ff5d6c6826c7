"""The plain-file model store: a full volume is named, and nothing half-written is left or promoted."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearth.api import modeluri
from hearth.fetch import store


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _file(name: str, data: bytes) -> store.File:
    return store.File(name=name, size=len(data), sha256=None, md5=None, download=lambda: _chunks(data))


async def test_a_full_volume_is_named_and_leaves_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        store.StoreError, match=r"writing a\.bin .*No space left on device \(the volume is full\)"
    ):
        await store.fill(tmp_path / "model", [_file("a.bin", b"abc")], source="s3://b/model")
    assert not (tmp_path / "model").exists()
    assert not _files(tmp_path), "no half-written file is left"


async def test_a_filled_model_is_promoted_whole_with_its_marker(tmp_path: Path) -> None:
    model = await store.fill(
        tmp_path / "model", [_file("a.bin", b"abc"), _file("sub/b.bin", b"de")], source="s3://b/model"
    )
    assert (model.files, model.size) == (2, 5)
    assert (tmp_path / "model" / "sub" / "b.bin").read_bytes() == b"de"
    assert store.ready(tmp_path / "model") == model
    assert (tmp_path / "model" / modeluri.READY_MARKER).is_file()
    assert _names(tmp_path) == ["model"]


async def test_a_size_that_does_not_match_is_refused(tmp_path: Path) -> None:
    short = store.File(name="a.bin", size=10, sha256=None, md5=None, download=lambda: _chunks(b"abc"))
    with pytest.raises(store.StoreError, match="3 bytes arrived, 10 were announced"):
        await store.fill(tmp_path / "model", [short], source="s3://b/model")
    assert store.ready(tmp_path / "model") is None
