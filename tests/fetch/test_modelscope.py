"""``hearth fetch modelscope://`` against a loopback stand-in for ModelScope's HTTP file API (modelscope.cn
is not reachable here): the files land in ModelScope's cache layout, whole or not at all, checked against
their sha256."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import test_utils, web

from hearth.api import modeluri
from hearth.fetch import sources

REPO = "ZhipuAI/tiny"
FILES = {"config.json": b'{"hidden_size": 8}\n', "weights/model.safetensors": b"\x00" * 4096}
DOWNLOADS = web.AppKey("downloads", dict[str, int])
CORRUPT = web.AppKey("corrupt", set[str])


def _app() -> web.Application:
    app = web.Application()
    app[DOWNLOADS] = {}
    app[CORRUPT] = set()

    async def files(request: web.Request) -> web.Response:
        if request.match_info["repo"] != REPO:
            return web.json_response({"Code": 10010205001, "Message": "model not found"}, status=404)
        assert request.query["Recursive"] == "true"
        listed = [
            {
                "Path": path,
                "Name": path.rsplit("/", 1)[-1],
                "Type": "blob",
                "Size": len(data),
                "Sha256": hashlib.sha256(data).hexdigest(),
                "Revision": request.query["Revision"],
            }
            for path, data in FILES.items()
        ]
        listed.append({"Path": "weights", "Name": "weights", "Type": "tree", "Size": 0})
        return web.json_response({"Code": 200, "Data": {"Files": listed}})

    async def file(request: web.Request) -> web.Response:
        path = request.query["FilePath"]
        request.app[DOWNLOADS][path] = request.app[DOWNLOADS].get(path, 0) + 1
        data = FILES[path]
        if path in request.app[CORRUPT]:
            data = b"\x01" * len(data)
        return web.Response(body=data)

    app.router.add_get("/api/v1/models/{repo:.+}/repo/files", files)
    app.router.add_get("/api/v1/models/{repo:.+}/repo", file)
    return app


@pytest.fixture
async def hub() -> AsyncIterator[tuple[str, web.Application]]:
    app = _app()
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), app
    finally:
        await server.close()


async def _fetch(uri: str, endpoint: str, home: Path) -> sources.Fetched:
    source, model = sources.parse(uri)
    env = {"MODELSCOPE_DOMAIN": endpoint, "MODELSCOPE_CACHE": str(home)}
    async with aiohttp.ClientSession() as session:
        return await source.fetch(model, env, session, None)


async def test_a_repository_lands_in_modelscopes_cache_layout(
    hub: tuple[str, web.Application], tmp_path: Path
) -> None:
    endpoint, app = hub
    fetched = await _fetch(f"modelscope://{REPO}", endpoint, tmp_path)
    assert fetched.folder == tmp_path / "models" / REPO
    for path, data in FILES.items():
        assert (fetched.folder / path).read_bytes() == data
    assert (fetched.folder / modeluri.READY_MARKER).is_file()
    again = await _fetch(f"modelscope://{REPO}", endpoint, tmp_path)
    assert again.folder == fetched.folder
    assert app[DOWNLOADS] == dict.fromkeys(FILES, 1), "a warm cache downloads nothing"


async def test_a_corrupt_file_leaves_no_model(hub: tuple[str, web.Application], tmp_path: Path) -> None:
    endpoint, app = hub
    app[CORRUPT].add("weights/model.safetensors")
    with pytest.raises(sources.FetchError, match="do not match the digest sha256"):
        await _fetch(f"modelscope://{REPO}", endpoint, tmp_path)
    assert not (tmp_path / "models" / REPO).exists()


async def test_a_missing_repository_is_named(hub: tuple[str, web.Application], tmp_path: Path) -> None:
    endpoint, _ = hub
    with pytest.raises(sources.FetchError, match="404"):
        await _fetch("modelscope://ZhipuAI/absent", endpoint, tmp_path)
