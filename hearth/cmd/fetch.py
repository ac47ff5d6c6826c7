"""``hearth fetch``: download a model source into the cache the engines read (the prewarm Job's container)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import click

from hearth.cmd import params
from hearth.common import logs
from hearth.fetch import sources

#: A download may take hours; only a silent connection is given up on.
READ_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 30.0


@click.command("fetch", short_help="Download a model source into the Hugging Face cache (prewarm).")
@click.argument("uri")
@click.option(
    "--revision",
    default="main",
    show_default=True,
    help="Branch, tag or commit of a hub repository.",
)
@click.option(
    "--if-missing",
    is_flag=True,
    help="Do nothing, without asking the hub, when the cache already has URI whole (a single-file "
    "engine's init step: its pods start even when the hub is unreachable).",
)
@params.logging_options
def command(*, uri: str, revision: str, if_missing: bool, **options: Any) -> None:
    """Download URI into the cache the engines read, as the prewarm Job does from the hearth image (no
    Python in the engine image).

    \b
    hf://<org>/<repo>         every file of the repository, into $HF_HOME/hub (huggingface_hub's layout:
                              models--<org>--<repo>/{blobs,snapshots/<commit>,refs/<revision>})
    hf://<org>/<repo>/<file>  that one file (e.g. a GGUF), also linked at
                              $HF_HOME/hearth-files/<org>/<repo>/<file>, the path the engine is given

    HF_ENDPOINT (default https://huggingface.co), HF_TOKEN, HF_HOME and HF_HUB_CACHE are read as
    huggingface_hub reads them. Files already in the cache are not downloaded again. The last line printed
    is the snapshot folder."""
    logs.configure(level=options["log_level"], fmt=options["log_format"])
    try:
        source, reference = sources.parse(uri)
        found = source.cached(reference, dict(os.environ), revision) if if_missing else None
        if found is not None:
            click.echo(f"hearth fetch: {uri} is in the cache already", err=True)
        fetched = found if found is not None else asyncio.run(_fetch(source, reference, revision))
    except sources.FetchError as error:
        click.echo(f"hearth fetch: {error}", err=True)
        sys.exit(1)
    if fetched.file is not None:
        click.echo(f"file {fetched.file}")
    # Last, alone on its line: what the prewarm Job's log ends with (the e2e reads the commit off it).
    click.echo(str(fetched.folder))


async def _fetch(source: sources.Source, reference: str, revision: str) -> sources.Fetched:
    timeout = aiohttp.ClientTimeout(
        total=None, connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS
    )
    async with aiohttp.ClientSession(timeout=timeout, trust_env=True) as session:
        return await source.fetch(reference, dict(os.environ), session, revision)
