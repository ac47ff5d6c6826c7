"""Access to the data bundled in :mod:`hearth.bundled` through ``importlib.resources``."""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

_PACKAGE = "hearth.bundled"
KINDS = ("crds", "runtimes")


def _folder(kind: str) -> Traversable:
    if kind not in KINDS:
        raise ValueError(f"unknown bundled data kind {kind!r}; expected one of {', '.join(KINDS)}")
    return importlib.resources.files(_PACKAGE).joinpath(kind)


def names(kind: str) -> list[str]:
    """The YAML files of one kind, sorted by name (empty when none are bundled)."""
    folder = _folder(kind)
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def read_text(kind: str, name: str) -> str:
    """One bundled YAML file's text."""
    if name not in names(kind):
        raise FileNotFoundError(f"no bundled {kind} file named {name!r}")
    return _folder(kind).joinpath(name).read_text(encoding="utf-8")


def source_folder(kind: str) -> Path:
    """The folder of one kind in a source checkout (for generators that write bundled files)."""
    _folder(kind)  # validates the kind
    return Path(__file__).resolve().parent.parent / "bundled" / kind


def checkout_mirror(kind: str) -> Path:
    """The top-level folder of one kind in a source checkout (``crds/``, ``runtimes/``).

    kubectl cannot apply a symlinked directory (``kubectl apply -f crds`` fails with "is a directory"), so the
    checkout keeps real copies of the bundled files for users; a test keeps them identical to the bundle.
    """
    _folder(kind)  # validates the kind
    return Path(__file__).resolve().parent.parent.parent / kind
