"""``hearth fetch`` of ``oci://`` and ``s3://`` models from real servers on 127.0.0.1 (issue 26): the CNCF
distribution registry (htpasswd credentials, as a dockerconfigjson Secret gives them) with a model pushed by
the ORAS CLI, and versitygw (SigV4-checked access keys) with a model PUT object by object. The model is
generated here: a few small files, never committed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from hearth.api import modeluri
from hearth.fetch import sources, store
from tests.fetch import servers

FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}\n',
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "model.gguf": b"GGUF" + bytes(range(256)) * 64,
}


@pytest.fixture(scope="module")
def tools() -> dict[str, Path]:
    return servers.binaries()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def registry(tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.registry(tools["registry"], tmp_path_factory.mktemp("registry"), auth=True) as host:
        yield host


@pytest.fixture(scope="module")
def pushed(tools: dict[str, Path], registry: str, model_folder: Path) -> str:
    """The model pushed with oras: its digest-pinned URI."""
    digest = servers.oras_push(
        tools["oras"], f"{registry}/models/tiny:v1", model_folder, list(FILES), auth=True
    )
    assert digest.startswith("sha256:"), digest
    return f"oci://{registry}/models/tiny@{digest}"


@pytest.fixture(scope="module")
def object_store(tools: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.object_store(tools["versitygw"], tmp_path_factory.mktemp("s3")) as endpoint:
        servers.s3_put(endpoint, "/models")
        for name, data in FILES.items():
            servers.s3_put(endpoint, f"/models/tiny/v1/{name}", data)
        # A sibling whose key starts with the prefix's: not part of the model.
        servers.s3_put(endpoint, "/models/tiny/v1-old/stale.bin", b"stale")
        yield endpoint


def _s3_env(home: Path, access: str = servers.S3_ACCESS, secret: str = servers.S3_SECRET) -> dict[str, str]:
    return {
        modeluri.MODEL_CACHE_ENV: str(home),
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
    }


def _oci_env(home: Path, registry: str, password: str = servers.REGISTRY_PASSWORD) -> dict[str, str]:
    config = servers.docker_config(home.parent / f"{home.name}-docker", registry, password)
    return {modeluri.MODEL_CACHE_ENV: str(home), "DOCKER_CONFIG": str(config)}


async def _fetch(uri: str, env: Mapping[str, str]) -> sources.Fetched:
    source, model = sources.parse(uri)
    async with aiohttp.ClientSession() as session:
        return await source.fetch(model, env, session, None)


def _check_model(fetched: sources.Fetched, home: Path, folder: str) -> None:
    assert fetched.folder == home / folder
    for name, data in FILES.items():
        assert (fetched.folder / name).read_bytes() == data
    assert (fetched.folder / modeluri.READY_MARKER).is_file()
    assert (fetched.files, fetched.size) == (len(FILES), sum(len(data) for data in FILES.values()))
    # Nothing half-written is left beside it.
    assert sorted(path.name for path in fetched.folder.parent.iterdir()) == [fetched.folder.name]


async def test_an_oras_pushed_model_is_fetched_by_digest_with_docker_credentials(
    pushed: str, registry: str, tmp_path: Path
) -> None:
    uri = f"{pushed}/model.gguf?plainHTTP=true"
    fetched = await _fetch(uri, _oci_env(tmp_path / "cache", registry))
    digest = pushed.rpartition("@")[2]
    folder = f"oci/{registry.replace(':', '_')}/models/tiny/{digest.replace(':', '-')}"
    _check_model(fetched, tmp_path / "cache", folder)
    assert fetched.file == fetched.folder / "model.gguf"
    assert fetched.revision == digest


async def test_a_wrong_digest_is_named(pushed: str, registry: str, tmp_path: Path) -> None:
    wrong = "sha256:" + hashlib.sha256(b"another model").hexdigest()
    uri = f"oci://{registry}/models/tiny@{wrong}?plainHTTP=true"
    with pytest.raises(sources.FetchError, match=r"404 MANIFEST_UNKNOWN.*no such repository or digest"):
        await _fetch(uri, _oci_env(tmp_path / "cache", registry))
    assert not (tmp_path / "cache").exists()


async def test_wrong_or_missing_registry_credentials_are_named(
    pushed: str, registry: str, tmp_path: Path
) -> None:
    uri = f"{pushed}?plainHTTP=true"
    with pytest.raises(sources.FetchError, match=r"401.*wrong credentials in the source's Secret"):
        await _fetch(uri, _oci_env(tmp_path / "cache", registry, password="not-it"))
    anonymous = {modeluri.MODEL_CACHE_ENV: str(tmp_path / "cache"), "DOCKER_CONFIG": str(tmp_path / "none")}
    with pytest.raises(sources.FetchError, match="the registry wants credentials"):
        await _fetch(uri, anonymous)


async def test_an_s3_prefix_is_fetched_with_sigv4_access_keys(object_store: str, tmp_path: Path) -> None:
    uri = f"s3://models/tiny/v1?endpoint={object_store}&region=us-east-1"
    fetched = await _fetch(uri, _s3_env(tmp_path / "cache"))
    host = object_store.removeprefix("http://").replace(":", "_")
    _check_model(fetched, tmp_path / "cache", f"s3/{host}/models/tiny/v1")
    assert not (fetched.folder / "stale.bin").exists()


async def test_one_s3_object_is_fetched_alone_for_a_single_file_engine(
    object_store: str, tmp_path: Path
) -> None:
    uri = f"s3://models/tiny/v1/model.gguf?endpoint={object_store}"
    fetched = await _fetch(uri, _s3_env(tmp_path / "cache"))
    assert fetched.file is not None
    assert fetched.file.read_bytes() == FILES["model.gguf"]
    assert fetched.files == 1


@pytest.mark.parametrize(
    ("access", "secret", "message"),
    [
        ("someone-else", servers.S3_SECRET, r"access key in the source's Secret is not known to the store"),
        (
            servers.S3_ACCESS,
            "not-the-secret",
            r"SignatureDoesNotMatch.*secret key in the source's Secret is wrong",
        ),
    ],
)
async def test_wrong_s3_credentials_are_named(
    object_store: str, tmp_path: Path, access: str, secret: str, message: str
) -> None:
    uri = f"s3://models/tiny/v1?endpoint={object_store}"
    with pytest.raises(sources.FetchError, match=message):
        await _fetch(uri, _s3_env(tmp_path / "cache", access, secret))


async def test_a_missing_object_or_bucket_is_named(object_store: str, tmp_path: Path) -> None:
    with pytest.raises(sources.FetchError, match="a missing object"):
        await _fetch(f"s3://models/tiny/v9?endpoint={object_store}", _s3_env(tmp_path / "cache"))
    with pytest.raises(sources.FetchError, match=r"NoSuchBucket.*the bucket does not exist"):
        await _fetch(f"s3://absent/tiny?endpoint={object_store}", _s3_env(tmp_path / "cache"))


async def test_a_crashed_fetch_resumes_keeping_the_whole_files_and_dropping_the_partial_one(
    object_store: str, tmp_path: Path
) -> None:
    uri = f"s3://models/tiny/v1?endpoint={object_store}"
    model = modeluri.resolve_uri(uri)
    assert model.folder is not None
    target = tmp_path / "cache" / model.folder
    staging = target.with_name(target.name + store.STAGING_SUFFIX)
    # What a killed run leaves: one whole file, one half-written under its temporary name, one corrupt.
    (staging / "tokenizer").mkdir(parents=True)
    (staging / "config.json").write_bytes(FILES["config.json"])
    (staging / "model.gguf.incomplete-deadbeef").write_bytes(FILES["model.gguf"][:100])
    (staging / "tokenizer" / "vocab.txt").write_bytes(b"x\ny\nz\n")  # the right size, the wrong bytes
    assert sources.SOURCES["s3"].cached(model, _s3_env(tmp_path / "cache"), None) is None
    fetched = await _fetch(uri, _s3_env(tmp_path / "cache"))
    assert fetched.folder == target
    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    assert not staging.exists()
    assert not list(target.rglob("*.incomplete-*")), "a dead writer's partial file is not promoted"


async def test_two_writers_at_once_leave_one_whole_model(object_store: str, tmp_path: Path) -> None:
    """A prewarm Job and a pod's init step fetching the same model into one shared volume."""
    uri = f"s3://models/tiny/v1?endpoint={object_store}"
    env = _s3_env(tmp_path / "cache")
    first, second = await asyncio.gather(_fetch(uri, env), _fetch(uri, env))
    assert first.folder == second.folder
    for name, data in FILES.items():
        assert (first.folder / name).read_bytes() == data
    assert sorted(path.name for path in first.folder.parent.iterdir()) == [first.folder.name]


async def test_the_command_runs_both_schemes_and_if_missing_needs_no_server(
    pushed: str, registry: str, object_store: str, tmp_path: Path
) -> None:
    env = {**os.environ, **_oci_env(tmp_path / "cache", registry), **_s3_env(tmp_path / "cache")}
    for uri in (f"{pushed}?plainHTTP=true", f"s3://models/tiny/v1?endpoint={object_store}"):
        done = await _hearth_fetch([uri], env)
        assert done.returncode == 0, done.stderr
        folder = Path(done.stdout.strip().splitlines()[-1])
        assert (folder / modeluri.READY_MARKER).is_file()
        # The backend's init step: the cache has it, the server is not asked.
        unreachable = uri.replace(registry, "127.0.0.1:9").replace(object_store, "http://127.0.0.1:9")
        offline = await _hearth_fetch(["--if-missing", uri], env)
        assert offline.returncode == 0, offline.stderr
        assert "in the cache already" in offline.stderr
        failed = await _hearth_fetch([unreachable], env)
        assert failed.returncode == 1


async def _hearth_fetch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hearth", "fetch", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )


async def test_a_shared_cache_reader_waits_for_the_writer_and_ends_with_its_error(
    object_store: str, tmp_path: Path
) -> None:
    """SharedPVC: the replicas' init step (``--wait``) downloads nothing; it ends when the prewarm's model is
    whole, or with the error a failed prewarm left in the cache."""
    uri = f"s3://models/tiny/v1?endpoint={object_store}"
    env = {**os.environ, **_s3_env(tmp_path / "cache")}
    bad = {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    waiting = asyncio.create_task(_hearth_fetch(["--wait", uri], env))
    await asyncio.sleep(1.0)
    assert not waiting.done(), "nothing in the cache yet: it waits"
    failed = await _hearth_fetch([uri], bad)
    assert failed.returncode == 1
    ended = await asyncio.wait_for(waiting, 30)
    assert ended.returncode == 1
    assert ended.stderr.strip().splitlines()[-1].startswith("hearth fetch: the prewarm's fetch failed: ")
    assert "SignatureDoesNotMatch" in ended.stderr
    # The writer succeeds (the note goes), and the next reader starts at once.
    assert (await _hearth_fetch([uri], env)).returncode == 0
    ready = await asyncio.wait_for(_hearth_fetch(["--wait", uri], env), 30)
    assert ready.returncode == 0, ready.stderr
    assert (Path(ready.stdout.strip().splitlines()[-1]) / modeluri.READY_MARKER).is_file()
