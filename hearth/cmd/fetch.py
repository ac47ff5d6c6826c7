"""``hearth fetch``: download a model source into the cache the engines read (the prewarm Job's container)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import click

from hearth.api import modeluri
from hearth.cmd import params
from hearth.common import logs
from hearth.fetch import notes, sources

#: A download may take hours; only a silent connection is given up on.
READ_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 30.0
#: How often ``--wait`` looks for the readiness marker (a cheap stat on the shared volume).
WAIT_POLL_SECONDS = 2.0


@click.command("fetch", short_help="Download a model source into the Hugging Face cache (prewarm).")
@click.argument("uri")
@click.option(
    "--revision",
    default=None,
    help="Branch, tag or commit of a hub repository (default: the hub's, main or master).",
)
@click.option(
    "--if-missing",
    is_flag=True,
    help="Do nothing, without asking the hub, when the cache already has URI whole (a single-file "
    "engine's init step: its pods start even when the hub is unreachable).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Download nothing: wait until the cache has URI whole (a SharedPVC reader's init step, its cache "
    "mounted read-only), or exit 1 with the error a failed fetch of URI left in the cache.",
)
@params.logging_options
def command(*, uri: str, revision: str | None, if_missing: bool, wait: bool, **options: Any) -> None:
    """Download URI into the cache the engines read, as the prewarm Job does from the hearth image (no
    Python in the engine image).

    \b
    hf://<org>/<repo>         every file of the repository, into $HF_HOME/hub (huggingface_hub's layout:
                              models--<org>--<repo>/{blobs,snapshots/<commit>,refs/<revision>})
    hf://<org>/<repo>/<file>  that one file (e.g. a GGUF), also linked at
                              $HF_HOME/hearth-files/<org>/<repo>/<file>, the path the engine is given

    modelscope://<org>/<repo> every file, into $MODELSCOPE_CACHE/models/<org>/<repo>
    oci://<registry>/<repository>@sha256:<hex>[/<file>]
                              the files of an artifact pushed with `oras push` (digest-pinned; add
                              ?plainHTTP=true for a registry without TLS), into
                              $HEARTH_MODEL_CACHE/oci/<registry>/<repository>/sha256-<hex>
    s3://<bucket>/<key or prefix>[?endpoint=URL&region=R&use_path_style=true]
                              the object, or every object under the prefix, into
                              $HEARTH_MODEL_CACHE/s3/<endpoint host>/<bucket>/<prefix>

    HF_ENDPOINT (default https://huggingface.co), HF_TOKEN, HF_HOME and HF_HUB_CACHE are read as
    huggingface_hub reads them; MODELSCOPE_DOMAIN and MODELSCOPE_CACHE as modelscope does; DOCKER_CONFIG
    (config.json's auths) for a registry; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
    for S3 (SigV4). Files already in the cache are not downloaded again; a plain-file model appears whole or
    not at all (staged, verified, then renamed), and a re-run after a crash keeps the files already verified.
    The last line printed is the folder the engine is given."""
    logs.configure(level=options["log_level"], fmt=options["log_format"])
    env = dict(os.environ)
    try:
        source, model = sources.parse(uri)
        if wait:
            fetched = asyncio.run(_wait(source, model, revision, env))
        else:
            found = source.cached(model, env, revision) if if_missing else None
            if found is not None:
                click.echo(f"hearth fetch: {uri} is in the cache already", err=True)
            fetched = found if found is not None else asyncio.run(_fetch(source, model, revision))
    except sources.FetchError as error:
        if not wait:
            notes.write(env, uri, str(error))
        # The last line, and the one the operator reads from the pod's status (ModelFetchFailed).
        click.echo(f"hearth fetch: {error}", err=True)
        sys.exit(1)
    if not wait:
        notes.clear(env, uri)
    if fetched.file is not None:
        click.echo(f"file {fetched.file}")
    # Last, alone on its line: what the prewarm Job's log ends with (the e2e reads the commit off it).
    click.echo(str(fetched.folder))


async def _wait(
    source: sources.Source, model: modeluri.ResolvedModel, revision: str | None, env: dict[str, str]
) -> sources.Fetched:
    said = False
    while True:
        found = source.cached(model, env, revision)
        if found is not None:
            return found
        failed = notes.read(env, model.uri)
        if failed is not None:
            raise sources.FetchError(f"the prewarm's fetch failed: {failed}")
        if not said:
            click.echo(
                f"hearth fetch: waiting for {model.uri} in the cache (the prewarm Job writes it)", err=True
            )
            said = True
        await asyncio.sleep(WAIT_POLL_SECONDS)


async def _fetch(
    source: sources.Source, model: modeluri.ResolvedModel, revision: str | None
) -> sources.Fetched:
    timeout = aiohttp.ClientTimeout(
        total=None, connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS
    )
    async with aiohttp.ClientSession(timeout=timeout, trust_env=True) as session:
        return await source.fetch(model, dict(os.environ), session, revision)
