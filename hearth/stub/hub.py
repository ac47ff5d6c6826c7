"""A stand-in for the Hugging Face hub's download API, serving generated tiny models (tests, no internet).

The endpoints huggingface_hub's ``snapshot_download`` uses: ``/api/models/<repo>/revision/<rev>`` (the
commit and file list), ``/api/models/<repo>/tree/<rev>`` (the listing newer clients read) and
``/<repo>/resolve/<rev>/<file>`` (GET or HEAD: the bytes, with ``X-Repo-Commit`` and the ETag the cache
names blobs by; ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, as the hub sends them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from hearth.common import logs
from hearth.stub import tinymodel

log = logging.getLogger(__name__)

REPOS_KEY = web.AppKey("repos", dict)
DOWNLOADS_KEY = web.AppKey("downloads", dict)


def make_app(
    repo_ids: tuple[str, ...],
    *,
    files: Mapping[str, Sequence[tinymodel.RepoFile]] | None = None,
    token: str | None = None,
) -> web.Application:
    """Serve a generated tiny model under each of *repo_ids*, and a repository of the given *files* under each
    key of *files* (e.g. one GGUF). With *token*, every request but /healthz must carry it as a Bearer token
    (a private repository: 401 otherwise, as the hub answers)."""
    app = web.Application(middlewares=[_authorize(token)] if token else [])
    app[REPOS_KEY] = {repo_id: tinymodel.generate(repo_id) for repo_id in repo_ids}
    for repo_id, repo_files in (files or {}).items():
        app[REPOS_KEY][repo_id] = tinymodel.Repo(repo_id=repo_id, files=tuple(repo_files))
    app[DOWNLOADS_KEY] = {}
    app.router.add_get("/api/models/{org}/{name}/revision/{revision}", revision_info)
    app.router.add_get("/api/models/{org}/{name}/tree/{revision}", tree)
    app.router.add_get("/{org}/{name}/resolve/{revision}/{path:.+}", resolve)  # and HEAD
    app.router.add_get("/healthz", healthz)
    return app


def _authorize(token: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/healthz" and request.headers.get("Authorization") != f"Bearer {token}":
            return _error(401, "RepoNotFound", "Invalid username or password.")
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"X-Error-Code": code})


def _lookup(request: web.Request) -> tinymodel.Repo | web.Response:
    repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
    repo: tinymodel.Repo | None = request.app[REPOS_KEY].get(repo_id)
    if repo is None:
        return _error(404, "RepoNotFound", f"Repository {repo_id} not found")
    if request.match_info["revision"] not in ("main", repo.commit):
        return _error(404, "RevisionNotFound", f"Invalid rev id: {request.match_info['revision']}")
    return repo


async def revision_info(request: web.Request) -> web.Response:
    repo = _lookup(request)
    if isinstance(repo, web.Response):
        return repo
    return web.json_response(
        {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.commit,
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": item.path} for item in repo.files],
        }
    )


async def tree(request: web.Request) -> web.Response:
    repo = _lookup(request)
    if isinstance(repo, web.Response):
        return repo
    entries = []
    for item in repo.files:
        entry: dict[str, object] = {"type": "file", "path": item.path, "size": len(item.data)}
        if item.lfs:
            git_oid = tinymodel.RepoFile(item.path, b"lfs pointer of " + item.etag.encode()).etag
            entry["oid"] = git_oid
            entry["lfs"] = {"oid": item.etag, "size": len(item.data), "pointerSize": 134}
        else:
            entry["oid"] = item.etag
        entries.append(entry)
    return web.json_response(entries)


async def resolve(request: web.Request) -> web.Response:
    repo = _lookup(request)
    if isinstance(repo, web.Response):
        return repo
    item = repo.file(request.match_info["path"])
    if item is None:
        return _error(404, "EntryNotFound", f"{request.match_info['path']} does not exist on main")
    headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{item.etag}"', "Accept-Ranges": "none"}
    if item.lfs:
        headers["X-Linked-Etag"] = f'"{item.etag}"'
        headers["X-Linked-Size"] = str(len(item.data))
    if request.method == "HEAD":
        # aiohttp sends no body for HEAD; Content-Length still says what a GET would send.
        return web.Response(headers={**headers, "Content-Length": str(len(item.data))})
    downloads = request.app[DOWNLOADS_KEY]
    key = f"{repo.repo_id}/{item.path}"
    downloads[key] = downloads.get(key, 0) + 1
    log.info("served a file", extra=logs.fields(repo=repo.repo_id, file=item.path, bytes=len(item.data)))
    return web.Response(body=item.data, headers=headers, content_type="application/octet-stream")
