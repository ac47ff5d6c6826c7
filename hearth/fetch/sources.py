"""The source schemes ``hearth fetch`` downloads, keyed by URI scheme: one entry per scheme, so a new source
(``oci://``, ``s3://``) is a new module with a :class:`Source` and an entry here, its hub named in
:data:`hearth.api.modeluri.FETCHED_HUBS` so the prewarm Job runs ``hearth fetch`` for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp

from hearth.fetch import huggingface


@dataclasses.dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch left in the cache."""

    #: The folder the engine is given (a hub snapshot: ``.../snapshots/<commit>``); the fetch's last log line.
    folder: Path
    #: The version fetched (a commit).
    revision: str
    files: int
    size: int
    #: The stable path of the one file the source names, linked to it (None: the source names a repo).
    file: Path | None = None


class FetchError(Exception):
    """The source could not be fetched (unreachable, refused, not found, corrupt); the message says why."""


#: ``fetch(reference, env, session, revision)``: *reference* is the URI after ``<scheme>://``, *env* the
#: process environment (endpoint, token, cache locations).
Fetch = Callable[[str, Mapping[str, str], aiohttp.ClientSession, str], Awaitable[Fetched]]
#: ``cached(reference, env, revision)``: what an earlier fetch left in the cache, read without the network
#: (None: not there, or not known to be whole).
Cached = Callable[[str, Mapping[str, str], str], "Fetched | None"]


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    #: The hub name of :mod:`hearth.api.modeluri` the scheme resolves to.
    hub: str
    fetch: Fetch
    cached: Cached
    #: What the URI looks like (said when one is refused).
    form: str


async def _huggingface(
    reference: str, env: Mapping[str, str], session: aiohttp.ClientSession, revision: str
) -> Fetched:
    try:
        result = await huggingface.fetch(reference, env=env, session=session, revision=revision)
    except huggingface.HubError as error:
        raise FetchError(str(error)) from None
    return Fetched(
        folder=result.snapshot,
        revision=result.commit,
        files=result.files,
        size=result.size,
        file=result.link,
    )


def _huggingface_cached(reference: str, env: Mapping[str, str], revision: str) -> Fetched | None:
    found = huggingface.cached(reference, env=env, revision=revision)
    if found is None:
        return None
    return Fetched(
        folder=found.snapshot, revision=found.commit, files=found.files, size=found.size, file=found.link
    )


_HUGGINGFACE = Source(
    hub="huggingface",
    fetch=_huggingface,
    cached=_huggingface_cached,
    form="hf://<org>/<repo>[/<file>]",
)

SCHEMES: dict[str, Source] = {"hf": _HUGGINGFACE, "huggingface": _HUGGINGFACE}


def parse(uri: str) -> tuple[Source, str]:
    """The source of *uri* and the reference after its scheme; FetchError names the schemes known."""
    scheme, separator, reference = uri.partition("://")
    source = SCHEMES.get(scheme) if separator else None
    if source is None:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise FetchError(f'"{uri}": hearth fetch knows the schemes {known}')
    if not reference:
        raise FetchError(f'"{uri}" has nothing after "{scheme}://" (use {source.form})')
    return source, reference
