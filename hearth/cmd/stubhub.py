"""``hearth stub-hub``: serve a stand-in for the Hugging Face hub's download API (tests; no internet)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from hearth.cmd import params
from hearth.common import logs, netaddr, serve
from hearth.stub import hfcache, hub


@click.command("stub-hub", short_help="Serve a stand-in Hugging Face hub with tiny generated models.")
@click.option(
    "--listen",
    type=params.LISTEN_ADDRESS,
    default=":8080",
    show_default=True,
    envvar="STUB_HUB_LISTEN_ADDR",
    show_envvar=True,
    help="Listen address in Go form.",
)
@click.option(
    "--repo",
    "repos",
    type=params.TEXT,
    multiple=True,
    required=True,
    help="A repository id (org/name) to serve a generated tiny model under (repeatable).",
)
@params.logging_options
def command(*, listen: netaddr.ListenAddress, repos: tuple[str, ...], **options: Any) -> None:
    """Serve what huggingface_hub's snapshot_download reads (model info, tree, resolve) for each --repo: a
    generated tiny model (config.json and an LFS model.safetensors), so a prewarm Job can download for
    real from inside a cluster with no internet. Point HF_ENDPOINT at it."""
    logs.configure(level=options["log_level"], fmt=options["log_format"])
    for repo in repos:
        if not hfcache.is_repo_id(repo):
            raise click.BadParameter(f"{repo!r} is not a repository id (org/name)", param_hint="--repo")
    try:
        asyncio.run(serve.serve(hub.make_app(repos), address=listen, shutdown_timeout=5.0, name="stub-hub"))
    except serve.ListenError as error:
        raise click.UsageError(f"--listen / STUB_HUB_LISTEN_ADDR: {error}") from None
