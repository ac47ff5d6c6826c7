"""The stand-in hub and Hearth's snapshot_download together, on a real loopback socket: the files land in
the Hugging Face cache layout, are read back as a model load reads them, and are not fetched twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import test_utils

from hearth.cmd import stub as stub_command
from hearth.common import hfcache
from hearth.stub import hub, snapshot, tinymodel

REPO = "hearth/e2e-model"


@pytest.fixture
async def hub_server() -> AsyncIterator[tuple[str, aiohttp.web.Application]]:
    app = hub.make_app((REPO,))
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


async def _download(endpoint: str, cache: Path, repo: str = REPO, revision: str = "main") -> Path:
    # snapshot_download is synchronous (it runs as the prewarm Job's whole process): off the loop.
    return await asyncio.to_thread(
        snapshot.snapshot_download, repo, cache=cache, endpoint=endpoint, revision=revision
    )


async def test_a_download_lays_out_blobs_snapshot_links_and_the_ref(
    hub_server: tuple[str, aiohttp.web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    repo = tinymodel.generate(REPO)
    folder = await _download(endpoint, tmp_path)
    base = tmp_path / "models--hearth--e2e-model"
    assert folder == base / "snapshots" / repo.commit
    assert (base / "refs" / "main").read_text() == repo.commit
    _check_links(folder, base, repo)


def _check_links(folder: Path, base: Path, repo: tinymodel.Repo) -> None:
    for item in repo.files:
        link = folder / item.path
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link)), "links must survive the cache being mounted elsewhere"
        assert Path(os.path.realpath(link)) == (base / "blobs" / item.etag).resolve()
        assert link.read_bytes() == item.data
    lfs = repo.file("model.safetensors")
    assert lfs is not None
    assert lfs.etag == hashlib.sha256(lfs.data).hexdigest()
    assert not list(base.rglob("*.incomplete"))


def _blob(link: Path) -> Path:
    return Path(os.path.realpath(link))


async def test_a_warm_cache_is_not_downloaded_again(
    hub_server: tuple[str, aiohttp.web.Application], tmp_path: Path
) -> None:
    endpoint, app = hub_server
    await _download(endpoint, tmp_path)
    first = dict(app[hub.DOWNLOADS_KEY])
    await _download(endpoint, tmp_path)
    assert first == {f"{REPO}/config.json": 1, f"{REPO}/model.safetensors": 1}
    assert app[hub.DOWNLOADS_KEY] == first


async def test_the_cache_reads_back_as_the_snapshot_the_hub_named(
    hub_server: tuple[str, aiohttp.web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    assert hfcache.find(tmp_path, REPO) is None
    await _download(endpoint, tmp_path)
    found = hfcache.find(tmp_path, REPO)
    repo = tinymodel.generate(REPO)
    assert found is not None
    assert (found.commit, found.files) == (repo.commit, 2)
    assert found.size == sum(len(item.data) for item in repo.files)
    assert hfcache.find(tmp_path, REPO, revision=repo.commit) == found


async def test_a_corrupt_blob_is_reported_not_loaded(
    hub_server: tuple[str, aiohttp.web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    folder = await _download(endpoint, tmp_path)
    _blob(folder / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(hfcache.CacheError, match="sha256"):
        hfcache.find(tmp_path, REPO)
    _blob(folder / "config.json").unlink()
    with pytest.raises(hfcache.CacheError, match="dangling"):
        hfcache.find(tmp_path, REPO)


async def test_the_hub_answers_like_the_real_one(hub_server: tuple[str, aiohttp.web.Application]) -> None:
    endpoint, _ = hub_server
    repo = tinymodel.generate(REPO)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{endpoint}/api/models/{REPO}/revision/main") as response:
            info = await response.json()
        assert info["sha"] == repo.commit
        assert [sibling["rfilename"] for sibling in info["siblings"]] == ["config.json", "model.safetensors"]
        async with http.get(f"{endpoint}/api/models/{REPO}/tree/{repo.commit}") as response:
            tree = await response.json()
        assert {entry["path"]: entry.get("lfs", {}).get("oid") for entry in tree} == {
            "config.json": None,
            "model.safetensors": repo.files[1].etag,
        }
        async with http.head(f"{endpoint}/{REPO}/resolve/main/model.safetensors") as response:
            assert response.status == 200
            assert response.headers["X-Repo-Commit"] == repo.commit
            assert response.headers["X-Linked-Etag"] == f'"{repo.files[1].etag}"'
            assert response.headers["X-Linked-Size"] == str(len(repo.files[1].data))
        for path, code in (
            ("/api/models/other/model/revision/main", "RepoNotFound"),
            (f"/api/models/{REPO}/revision/v9", "RevisionNotFound"),
            (f"/{REPO}/resolve/main/missing.json", "EntryNotFound"),
        ):
            async with http.get(endpoint + path) as response:
                assert (response.status, response.headers["X-Error-Code"]) == (404, code)


def test_the_tiny_model_is_a_valid_safetensors_archive() -> None:
    data = tinymodel.generate(REPO).files[1].data
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    start, end = header["weight"]["data_offsets"]
    assert length % 8 == 0
    assert end - start == len(data) - 8 - length == 4 * header["weight"]["shape"][0]


async def test_download_errors_name_the_problem(
    hub_server: tuple[str, aiohttp.web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    with pytest.raises(snapshot.DownloadError, match="404 RepoNotFound"):
        await _download(endpoint, tmp_path, repo="nobody/nothing")
    with pytest.raises(snapshot.DownloadError, match="not a repository id"):
        await _download(endpoint, tmp_path, repo="../escape")
    # A port nothing listens on: the server above is closed again at once.
    closed = test_utils.TestServer(hub.make_app(()), host="127.0.0.1")
    await closed.start_server()
    url = str(closed.make_url("")).rstrip("/")
    await closed.close()
    with pytest.raises(snapshot.DownloadError, match=r"GET http://127\.0\.0\.1"):
        await _download(url, tmp_path)


def test_the_cache_dir_follows_huggingface_hubs_variables() -> None:
    assert hfcache.cache_dir({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}) == Path("/a")
    assert hfcache.cache_dir({"HF_HOME": "/cache/hf"}) == Path("/cache/hf/hub")
    assert hfcache.cache_dir({"HOME": "/home/u"}) == Path("/home/u/.cache/huggingface/hub")


async def test_the_stub_reports_whether_it_starts_from_the_cache(
    hub_server: tuple[str, aiohttp.web.Application],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint, _ = hub_server
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with caplog.at_level(logging.INFO, logger=stub_command.log.name):
        stub_command.report_cache(REPO)
    assert [record.getMessage() for record in _stub_records(caplog)] == [
        "model not in the Hugging Face cache"
    ]
    await _download(endpoint, tmp_path / "hub")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=stub_command.log.name):
        stub_command.report_cache(REPO)
    (record,) = _stub_records(caplog)
    assert record.getMessage() == "model loaded from the Hugging Face cache"
    assert record.fields["snapshot"] == tinymodel.generate(REPO).commit  # type: ignore[attr-defined]


def _stub_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == stub_command.log.name]


def test_the_stub_reads_a_local_model_path_as_an_engine_would(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """oci:// and s3:// models are served from the folder hearth fetch wrote (the e2e reads this line)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "sub" / "model.gguf").write_bytes(b"GGUF" * 4)
    with caplog.at_level(logging.INFO, logger=stub_command.log.name):
        stub_command.report_cache(str(tmp_path))
        stub_command.report_cache(str(tmp_path / "sub" / "model.gguf"))
        stub_command.report_cache(str(tmp_path / "absent"))
    folder, file, absent = _stub_records(caplog)
    assert folder.getMessage() == stub_command.LOADED_LOCAL
    assert (folder.fields["files"], folder.fields["bytes"]) == (2, 18)  # type: ignore[attr-defined]
    assert file.fields["files"] == 1  # type: ignore[attr-defined]
    assert absent.getMessage() == "model path has no files"
