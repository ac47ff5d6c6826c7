"""The downloads ``hearth fetch`` makes, keyed by the source names of :data:`hearth.api.modeluri.SOURCES`
(which parses every URI, once): one entry per fetched source, so a new scheme is its entry in
:mod:`hearth.api.modeluri`, a module here with its fetch and cache check, and an entry in :data:`SOURCES`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from hearth.api import modeluri
from hearth.fetch import huggingface, modelscope, oci, s3, store


@dataclasses.dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch left in the cache."""

    #: The folder the engine is given (a hub snapshot ``.../snapshots/<commit>``, a plain-file model's
    #: folder); the fetch's last log line.
    folder: Path
    #: The version fetched (a commit, a digest; empty when the source has none).
    revision: str
    files: int
    size: int
    #: The stable path of the one file the source names (None: the source names a repo).
    file: Path | None = None


class FetchError(Exception):
    """The source could not be fetched (unreachable, refused, not found, corrupt); the message says why."""


#: ``fetch(model, env, session, revision)``: *env* is the process environment (endpoint, credentials, cache
#: locations); *revision* a hub branch, tag or commit (None: the hub's default).
Fetch = Callable[
    [modeluri.ResolvedModel, Mapping[str, str], aiohttp.ClientSession, str | None], Awaitable[Fetched]
]
#: ``cached(model, env, revision)``: what an earlier fetch left whole in the cache, read without the network.
Cached = Callable[[modeluri.ResolvedModel, Mapping[str, str], str | None], "Fetched | None"]


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    fetch: Fetch
    cached: Cached


async def _huggingface(
    model: modeluri.ResolvedModel,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    revision: str | None,
) -> Fetched:
    try:
        result = await huggingface.fetch(model.path, env=env, session=session, revision=revision or "main")
    except huggingface.HubError as error:
        raise FetchError(str(error)) from None
    return Fetched(
        folder=result.snapshot, revision=result.commit, files=result.files, size=result.size, file=result.link
    )


def _huggingface_cached(
    model: modeluri.ResolvedModel, env: Mapping[str, str], revision: str | None
) -> Fetched | None:
    try:
        found = huggingface.cached(model.path, env=env, revision=revision or "main")
    except huggingface.HubError as error:
        raise FetchError(str(error)) from None
    if found is None:
        return None
    return Fetched(
        folder=found.snapshot, revision=found.commit, files=found.files, size=found.size, file=found.link
    )


def _repo(model: modeluri.ResolvedModel) -> str:
    if model.repo is None or model.file is not None:
        raise FetchError(f'"{model.uri}": name a repository, modelscope://<org>/<repo>')
    return model.repo


async def _modelscope(
    model: modeluri.ResolvedModel,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    revision: str | None,
) -> Fetched:
    try:
        result = await modelscope.fetch(_repo(model), env=env, session=session, revision=revision)
    except (modelscope.ModelScopeError, store.StoreError) as error:
        raise FetchError(str(error)) from None
    return _plain(result, revision or modelscope.DEFAULT_REVISION, None)


def _modelscope_cached(
    model: modeluri.ResolvedModel, env: Mapping[str, str], revision: str | None
) -> Fetched | None:
    found = modelscope.cached(_repo(model), env)
    return None if found is None else _plain(found, revision or modelscope.DEFAULT_REVISION, None)


def _plain(result: store.Model, revision: str, file: str | None) -> Fetched:
    return Fetched(
        folder=result.folder,
        revision=revision,
        files=result.files,
        size=result.size,
        file=None if file is None else result.folder / file,
    )


async def _oci(
    model: modeluri.ResolvedModel,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    revision: str | None,
) -> Fetched:
    del revision  # the digest pins it
    assert model.oci is not None
    try:
        result = await oci.fetch(model, env, session)
    except (oci.OciError, store.StoreError) as error:
        raise FetchError(str(error)) from None
    return _plain(result, model.oci.digest, model.file)


def _oci_cached(
    model: modeluri.ResolvedModel, env: Mapping[str, str], revision: str | None
) -> Fetched | None:
    assert model.oci is not None
    found = oci.cached(model, env)
    return None if found is None else _plain(found, model.oci.digest, model.file)


async def _s3(
    model: modeluri.ResolvedModel,
    env: Mapping[str, str],
    session: aiohttp.ClientSession,
    revision: str | None,
) -> Fetched:
    del revision
    try:
        result = await s3.fetch(model, env, session)
    except (s3.S3Error, store.StoreError) as error:
        raise FetchError(str(error)) from None
    return _plain(result, "", _s3_file(result, model))


def _s3_cached(model: modeluri.ResolvedModel, env: Mapping[str, str], revision: str | None) -> Fetched | None:
    found = s3.cached(model, env)
    return None if found is None else _plain(found, "", _s3_file(found, model))


def _s3_file(result: store.Model, model: modeluri.ResolvedModel) -> str | None:
    # A key naming one object: that object, fetched into the folder under its base name.
    return model.file if model.file and (result.folder / model.file).is_file() else None


#: Every source ``hearth fetch`` downloads, by its name in :data:`hearth.api.modeluri.SOURCES`.
SOURCES: dict[str, Source] = {
    "huggingface": Source(fetch=_huggingface, cached=_huggingface_cached),
    "modelscope": Source(fetch=_modelscope, cached=_modelscope_cached),
    "oci": Source(fetch=_oci, cached=_oci_cached),
    "s3": Source(fetch=_s3, cached=_s3_cached),
}


def parse(uri: str) -> tuple[Source, modeluri.ResolvedModel]:
    """The source of *uri* and the URI resolved (by the API's registry); FetchError names what is accepted."""
    try:
        model = modeluri.resolve_uri(uri)
    except modeluri.ModelResolutionError as error:
        raise FetchError(str(error)) from None
    source = SOURCES.get(model.hub)
    if source is None:
        known = ", ".join(f"{name}://" for name, entry in modeluri.SCHEMES.items() if entry.hub in SOURCES)
        raise FetchError(f'"{uri}": hearth fetch knows the schemes {known} ({model.hub} is not downloaded)')
    return source, model
