"""``hearth fetch`` against the stand-in hub on a real loopback socket: the Hugging Face cache layout the
engines read (and the stub reads back), one GGUF file linked at its stable path, HF_TOKEN, a warm cache,
and clear refusals."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest
from aiohttp import test_utils, web

from hearth.api import modeluri
from hearth.common import hfcache
from hearth.fetch import huggingface, sources
from hearth.stub import hub, tinymodel

REPO = "hearth/e2e-model"
GGUF_REPO = "hearth/tiny-gguf"
GGUF = tinymodel.RepoFile("tiny-q8_0.gguf", b"GGUF" + bytes(range(256)) * 8)
README = tinymodel.RepoFile("README.md", b"# a tiny GGUF\n")
TOKEN = "hf_secret"


async def _serve(app: web.Application) -> AsyncIterator[tuple[str, web.Application]]:
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


@pytest.fixture
async def hub_server() -> AsyncIterator[tuple[str, web.Application]]:
    async for served in _serve(hub.make_app((REPO,), files={GGUF_REPO: [README, GGUF]})):
        yield served


def _env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), **extra}


async def _fetch(uri: str, env: Mapping[str, str], revision: str | None = None) -> sources.Fetched:
    source, model = sources.parse(uri)
    async with aiohttp.ClientSession() as session:
        return await source.fetch(model, env, session, revision)


async def test_a_repository_lands_in_the_cache_layout_the_engines_read(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    fetched = await _fetch(f"hf://{REPO}", _env(endpoint, tmp_path))
    _check_layout(fetched, tmp_path)


def _check_layout(fetched: sources.Fetched, home: Path) -> None:
    repo = tinymodel.generate(REPO)
    base = home / "hub" / "models--hearth--e2e-model"
    assert fetched.folder == base / "snapshots" / repo.commit
    assert (fetched.revision, fetched.files, fetched.file) == (repo.commit, 2, None)
    assert (base / "refs" / "main").read_text() == repo.commit
    for item in repo.files:
        link = fetched.folder / item.path
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link)), "links must survive the cache being mounted elsewhere"
        assert Path(os.path.realpath(link)) == (base / "blobs" / item.etag).resolve()
    # What the stub (and huggingface_hub) reads back: every file, LFS blobs matching their sha256.
    found = hfcache.find(home / "hub", REPO)
    assert found is not None
    assert (found.commit, found.files) == (repo.commit, 2)
    assert not list(home.rglob("*.incomplete"))


async def test_one_gguf_file_is_fetched_alone_and_linked_where_the_engine_is_pointed(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, app = hub_server
    fetched = await _fetch(f"hf://{GGUF_REPO}/{GGUF.path}", _env(endpoint, tmp_path))
    assert fetched.files == 1
    assert app[hub.DOWNLOADS_KEY] == {f"{GGUF_REPO}/{GGUF.path}": 1}, "the README is not fetched"
    _check_gguf_link(fetched, tmp_path)


def _check_gguf_link(fetched: sources.Fetched, home: Path) -> None:
    # The path the renderer gives llama-server, known before the commit is.
    rendered = modeluri.fetched_file(str(home), GGUF_REPO, GGUF.path)
    assert fetched.file == Path(rendered)
    assert Path(rendered).read_bytes() == GGUF.data
    assert not os.path.isabs(os.readlink(rendered))
    assert Path(os.path.realpath(rendered)).name == hashlib.sha256(GGUF.data).hexdigest()


async def test_a_warm_cache_downloads_nothing(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, app = hub_server
    first = await _fetch(f"hf://{REPO}", _env(endpoint, tmp_path))
    downloads = dict(app[hub.DOWNLOADS_KEY])
    again = await _fetch(f"hf://{REPO}", _env(endpoint, tmp_path))
    assert again.folder == first.folder
    assert app[hub.DOWNLOADS_KEY] == downloads == {f"{REPO}/config.json": 1, f"{REPO}/model.safetensors": 1}


async def test_hf_token_is_sent_to_a_private_hub(tmp_path: Path) -> None:
    async for endpoint, _ in _serve(hub.make_app((REPO,), token=TOKEN)):
        with pytest.raises(sources.FetchError, match=r"401.*set HF_TOKEN"):
            await _fetch(f"hf://{REPO}", _env(endpoint, tmp_path))
        fetched = await _fetch(f"hf://{REPO}", _env(endpoint, tmp_path, HF_TOKEN=TOKEN))
        assert fetched.files == 2


async def test_a_corrupt_lfs_file_is_refused_and_leaves_nothing(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, app = hub_server
    good = app[hub.REPOS_KEY][GGUF_REPO]
    # The hub names the blob by one sha256 and sends other bytes.
    app[hub.REPOS_KEY][GGUF_REPO] = _Lying(good)
    with pytest.raises(sources.FetchError, match="do not match their sha256"):
        await _fetch(f"hf://{GGUF_REPO}/{GGUF.path}", _env(endpoint, tmp_path))
    _check_no_file(tmp_path)


def _check_no_file(home: Path) -> None:
    assert not [path for path in home.rglob("*") if path.is_file()]


class _Lying(tinymodel.Repo):
    def __init__(self, repo: tinymodel.Repo) -> None:
        super().__init__(repo_id=repo.repo_id, files=repo.files)

    def file(self, path: str) -> tinymodel.RepoFile | None:
        item = super().file(path)
        return None if item is None else _Tampered(item.path, item.data)


class _Tampered(tinymodel.RepoFile):
    @property
    def etag(self) -> str:
        return hashlib.sha256(b"other bytes").hexdigest()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://bucket/model", 'scheme "gs://" is not supported'),
        ("pvc://claim/model", "knows the schemes hf://, huggingface://, modelscope://, oci://, s3://"),
        ("hf://", 'nothing after "hf://"'),
        ("hf://just-a-name", "does not start with a repository id"),
        ("hf://org/repo/../escape.gguf", "must be a clean path"),
    ],
)
async def test_bad_sources_are_refused_naming_what_is_accepted(uri: str, message: str) -> None:
    with pytest.raises(sources.FetchError, match=message):
        await _fetch(uri, {})


async def test_a_missing_file_or_repository_names_it(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, _ = hub_server
    with pytest.raises(sources.FetchError, match=r"has no file 'nope\.gguf'"):
        await _fetch(f"hf://{GGUF_REPO}/nope.gguf", _env(endpoint, tmp_path))
    with pytest.raises(sources.FetchError, match="404 RepoNotFound"):
        await _fetch("hf://hearth/absent", _env(endpoint, tmp_path))


def test_every_fetched_hub_has_a_scheme() -> None:
    assert set(sources.SOURCES) == modeluri.FETCHED_HUBS


def test_the_hf_home_default_follows_huggingface_hub() -> None:
    assert huggingface.home({"HOME": "/home/u"}) == Path("/home/u/.cache/huggingface")
    assert huggingface.home({"HF_HOME": "/cache/hf"}) == Path("/cache/hf")


async def test_the_command_prints_the_snapshot_folder_last(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    """The prewarm Job's log ends with the snapshot folder (e2e scenarios 12/13 read the commit off it)."""
    endpoint, _ = hub_server
    env = {**os.environ, **_env(endpoint, tmp_path)}
    command = [sys.executable, "-m", "hearth", "fetch", f"hf://{GGUF_REPO}/{GGUF.path}"]
    process = await _run(command, env)
    assert process.returncode == 0, process.stderr
    lines = process.stdout.strip().splitlines()
    commit = tinymodel.Repo(GGUF_REPO, (README, GGUF)).commit
    assert lines[-1] == str(tmp_path / "hub" / "models--hearth--tiny-gguf" / "snapshots" / commit)
    assert lines[-2] == f"file {modeluri.fetched_file(str(tmp_path), GGUF_REPO, GGUF.path)}"
    refused = await _run([*command[:-1], "oci://registry/model"], env)
    assert refused.returncode == 1
    assert "names no digest" in refused.stderr


async def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )


async def test_if_missing_asks_no_hub_when_the_cache_has_the_file(
    hub_server: tuple[str, web.Application], tmp_path: Path
) -> None:
    """A single-file engine's init step: the pod starts from a warm cache with the hub unreachable, and a
    cold cache still fetches."""
    endpoint, app = hub_server
    uri = f"hf://{GGUF_REPO}/{GGUF.path}"
    command = [sys.executable, "-m", "hearth", "fetch", "--if-missing", uri]
    cold = await _run(command, {**os.environ, **_env(endpoint, tmp_path)})
    assert cold.returncode == 0, cold.stderr
    assert app[hub.DOWNLOADS_KEY] == {f"{GGUF_REPO}/{GGUF.path}": 1}
    unreachable = "http://127.0.0.1:9"  # the discard port: nothing listens
    warm = await _run(command, {**os.environ, **_env(unreachable, tmp_path)})
    assert warm.returncode == 0, warm.stderr
    assert "in the cache already" in warm.stderr
    assert warm.stdout.splitlines()[-2:] == cold.stdout.splitlines()[-2:]
    # Without --if-missing the hub is asked (for the commit), and its absence is an error.
    asked = await _run([*command[:-2], uri], {**os.environ, **_env(unreachable, tmp_path)})
    assert asked.returncode == 1


def test_a_repository_is_cached_once_its_ref_is_written(tmp_path: Path) -> None:
    """An interrupted fetch of a repository writes no ref: its snapshot is never taken for whole."""
    env = _env("http://127.0.0.1:9", tmp_path)
    commit = tinymodel.generate(REPO).commit
    folder = tmp_path / "hub" / "models--hearth--e2e-model"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / "config.json").write_text("{}")
    assert huggingface.cached(REPO, env=env) is None
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    found = huggingface.cached(REPO, env=env)
    assert found is not None
    assert (found.commit, found.files) == (commit, 1)
