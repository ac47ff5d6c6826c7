"""``hearth version``: what this build is and what it carries."""

from __future__ import annotations

import json
import platform
import sys

import click

import hearth
from hearth.cmd import compiled
from hearth.common import bundle


def build_info() -> dict[str, object]:
    """Facts a bug report needs: version, interpreter, frozen or not, C speedups (aiohttp's parser, the
    gateway modules compiled by mypyc), bundled data."""
    from aiohttp import http_parser  # imported here: only this command needs to inspect it

    c_parser = http_parser.HttpRequestParser.__module__ == "aiohttp._http_parser"
    return {
        "version": hearth.__version__,
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "frozen": bool(getattr(sys, "frozen", False)),
        "aiohttp_c_parser": c_parser,
        "compiled_modules": sorted(name for name, is_compiled in compiled.loaded().items() if is_compiled),
        "self_signed_tls": _can_self_sign(),
        "bundled": {kind: bundle.names(kind) for kind in bundle.KINDS},
    }


def _can_self_sign() -> bool:
    """Whether --metrics-secure can make its own certificate (the frozen binary must carry cryptography's
    native parts for that)."""
    try:
        from hearth.common import tls

        tls.self_signed_pair(["hearth"])
    except Exception:  # any failure to load the native library means no
        return False
    return True


@click.command("version", short_help="Print the version (and build details with -o json).")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: just the version; json: version, interpreter, frozen, C speedups and bundled data.",
)
def command(output: str) -> None:
    """Print the Hearth version; with -o json, the build details too."""
    if output == "json":
        click.echo(json.dumps(build_info(), indent=2))
    else:
        click.echo(f"hearth {hearth.__version__}")
