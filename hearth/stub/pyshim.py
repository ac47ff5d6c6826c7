"""``python3`` in the CPU stub image: runs the one statement a prewarm Job runs, and nothing else.

The prewarm Job (SPEC §5.4) runs ``python3 -c "from huggingface_hub import snapshot_download;
snapshot_download(\\"<repo>\\")"`` in the runtime's image. The stub image has no Python, so its
``python3`` is the hearth binary under that name (``hearth/__main__.py`` dispatches on it). The script is
parsed as Python (``ast``) and must be exactly that import and call, with an optional ``revision=``; the
download is real (:mod:`hearth.stub.snapshot`, from ``HF_ENDPOINT``, into the cache ``HF_HOME`` names).
Anything else exits 2 with a message saying what this ``python3`` is.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence

from hearth.common import hfcache
from hearth.stub import snapshot

USAGE = (
    "this python3 is the Hearth stub image's stand-in: it runs only "
    "python3 -c 'from huggingface_hub import snapshot_download; snapshot_download(\"org/name\")'"
)


class UnsupportedScriptError(Exception):
    """The script is not the one statement this stand-in runs."""


@dataclasses.dataclass(frozen=True, slots=True)
class Download:
    repo_id: str
    revision: str = "main"


def parse(script: str) -> Download:
    """The download *script* asks for."""
    try:
        tree = ast.parse(script)
    except SyntaxError as error:
        raise UnsupportedScriptError(f"not valid Python: {error.msg}") from None
    if len(tree.body) != 2:
        raise UnsupportedScriptError("expected an import and one call")
    imported, statement = tree.body
    if not (
        isinstance(imported, ast.ImportFrom)
        and imported.module == "huggingface_hub"
        and [(alias.name, alias.asname) for alias in imported.names] == [("snapshot_download", None)]
    ):
        raise UnsupportedScriptError("expected `from huggingface_hub import snapshot_download` first")
    call = statement.value if isinstance(statement, ast.Expr) else None
    if not (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "snapshot_download"
    ):
        raise UnsupportedScriptError("expected a call of snapshot_download(...)")
    arguments = {keyword.arg: keyword.value for keyword in call.keywords}
    if len(call.args) == 1 and "repo_id" not in arguments:
        arguments["repo_id"] = call.args[0]
    elif call.args:
        raise UnsupportedScriptError("snapshot_download takes one positional argument, the repo id")
    values: dict[str, str] = {}
    for name, node in arguments.items():
        if name not in ("repo_id", "revision"):
            raise UnsupportedScriptError(f"snapshot_download({name}=...) is not supported here")
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            raise UnsupportedScriptError(f"{name} must be a string literal")
        values[name] = node.value
    if "repo_id" not in values:
        raise UnsupportedScriptError("snapshot_download needs a repo id")
    return Download(repo_id=values["repo_id"], revision=values.get("revision", "main"))


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """Run ``python3 ARGV``; the exit code."""
    env = os.environ if environ is None else environ
    if len(argv) != 2 or argv[0] != "-c":
        print(f"python3: {USAGE}", file=sys.stderr)
        return 2
    try:
        wanted = parse(argv[1])
    except UnsupportedScriptError as error:
        print(f"python3: {error}; {USAGE}", file=sys.stderr)
        return 2
    endpoint = env.get("HF_ENDPOINT") or snapshot.DEFAULT_ENDPOINT
    cache = hfcache.cache_dir(env)
    try:
        folder = snapshot.snapshot_download(
            wanted.repo_id,
            cache=cache,
            endpoint=endpoint,
            revision=wanted.revision,
            token=env.get("HF_TOKEN") or None,
        )
    except (snapshot.DownloadError, OSError) as error:
        print(f"snapshot_download({wanted.repo_id!r}) from {endpoint} failed: {error}", file=sys.stderr)
        return 1
    print(folder)
    return 0
