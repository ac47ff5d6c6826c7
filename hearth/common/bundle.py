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


def checkout_folder(kind: str) -> Path:
    """The top-level folder of one kind in a source checkout: ``crds/`` (generated, for ``kubectl apply -f
    crds``) or ``runtimes/`` (the profiles' source). ``python -m hearth.install.generate`` keeps the bundle
    equal to them."""
    _folder(kind)  # validates the kind
    return Path(__file__).resolve().parent.parent.parent / kind
