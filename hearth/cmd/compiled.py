"""Which modules the frozen binary carries compiled to C by mypyc, and whether this process runs them so.

The gateway's request path runs for every proxied request, and its Python-level work is most of the
gateway's CPU on the warm path (bench/gateway.py). mypyc compiles these same strictly typed sources to C
extension modules, which take about 12 % less CPU per proxied request (median of paired bench runs).
Only the frozen binary is compiled (scripts/compile.py, run by scripts/build-binary.sh): the source tree,
and so a developer's edits, run as plain Python, and scripts/test.sh runs the gateway's tests a second
time against the compiled modules.

A module belongs here when it is on the per-request path and mypyc builds it without changing what it
does (the gateway's tests pass against both); everything else stays interpreted.
"""

from __future__ import annotations

import importlib
import importlib.machinery
from pathlib import Path

MODULES = (
    "hearth.gateway.errors",
    "hearth.gateway.forward.balancer",
    "hearth.gateway.forward.httpparts",
    "hearth.gateway.forward.proxy",
    "hearth.gateway.forward.upstream",
    "hearth.gateway.forward.upstream_client",
    "hearth.gateway.front.app",
    "hearth.gateway.front.request_body",
    "hearth.gateway.front.routing",
    "hearth.gateway.metrics",
    "hearth.gateway.model.demand",
    "hearth.gateway.model.release",
    "hearth.gateway.model.route",
)


def loaded() -> dict[str, bool]:
    """For each module of :data:`MODULES`, whether this process loaded it compiled (an extension module)."""
    return {
        name: isinstance(importlib.import_module(name).__loader__, importlib.machinery.ExtensionFileLoader)
        for name in MODULES
    }


def extension_file(root: Path, name: str) -> Path | None:
    """The extension module mypyc built for the module *name* in *root* (the folder holding the compiled
    copy of the package), or None."""
    *package, module = name.split(".")
    found = sorted(root.joinpath(*package).glob(f"{module}.cpython-*.so"))
    return found[0] if found else None
