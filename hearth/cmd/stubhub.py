"""``hearth stub-hub``: serve a stand-in for the Hugging Face hub's download API (tests; no internet)."""

from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any

import click

from hearth.cmd import params
from hearth.common import hfcache, logs, netaddr, serve
from hearth.stub import hub, tinymodel


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
    help="A repository id (org/name) to serve a generated tiny model under (repeatable).",
)
@click.option(
    "--file",
    "files",
    type=params.TEXT,
    multiple=True,
    help="ORG/NAME=PATH: serve the local file PATH as the one file of repository ORG/NAME, under its own "
    "name (repeatable; e.g. a GGUF for llama.cpp).",
)
@params.logging_options
def command(
    *, listen: netaddr.ListenAddress, repos: tuple[str, ...], files: tuple[str, ...], **options: Any
) -> None:
    """Serve what huggingface_hub's snapshot_download reads (model info, tree, resolve) for each --repo: a
    generated tiny model (config.json and an LFS model.safetensors), so a prewarm Job can download for
    real from inside a cluster with no internet. Point HF_ENDPOINT at it. With STUB_HUB_TOKEN set, every
    request must carry it as a Bearer token (a private repository: HF_TOKEN)."""
    logs.configure(level=options["log_level"], fmt=options["log_format"])
    for repo in repos:
        if not hfcache.is_repo_id(repo):
            raise click.BadParameter(f"{repo!r} is not a repository id (org/name)", param_hint="--repo")
    served: dict[str, list[tinymodel.RepoFile]] = {}
    for entry in files:
        repo, separator, path = entry.partition("=")
        if not separator or not hfcache.is_repo_id(repo) or not path:
            raise click.BadParameter(f"{entry!r} is not ORG/NAME=PATH", param_hint="--file")
        try:
            data = pathlib.Path(path).read_bytes()
        except OSError as error:
            raise click.BadParameter(f"{path}: {error.strerror}", param_hint="--file") from None
        served.setdefault(repo, []).append(tinymodel.RepoFile(pathlib.Path(path).name, data))
    if not repos and not served:
        raise click.UsageError("give at least one --repo or --file")
    app = hub.make_app(repos, files=served, token=os.environ.get("STUB_HUB_TOKEN") or None)
    try:
        asyncio.run(serve.serve(app, address=listen, shutdown_timeout=5.0, name="stub-hub"))
    except serve.ListenError as error:
        raise click.UsageError(f"--listen / STUB_HUB_LISTEN_ADDR: {error}") from None
