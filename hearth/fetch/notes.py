"""Failure notes: a fetch that fails leaves its error in the cache (``<model cache>/.failed/<key>``), and a
reader waiting on a shared cache (``hearth fetch --wait``) ends with it, so the pod's status, and with it the
LLMService's condition and Event, names why the prewarm failed (the reader cannot see the prewarm Job: its
pod has no API token). A fetch that succeeds removes the note."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path

from hearth.api import modeluri

FOLDER = ".failed"


def path(env: Mapping[str, str], uri: str) -> Path:
    key = hashlib.sha256(uri.encode()).hexdigest()[:32]
    return Path(modeluri.model_cache(env)) / FOLDER / key


def write(env: Mapping[str, str], uri: str, message: str) -> None:
    """Best effort: a read-only or full volume keeps no note (the error is still the fetch's exit)."""
    note = path(env, uri)
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        partial = note.with_name(note.name + ".tmp")
        partial.write_text(message.strip() + "\n")
        partial.replace(note)
    except OSError:
        pass


def clear(env: Mapping[str, str], uri: str) -> None:
    with contextlib.suppress(OSError):
        path(env, uri).unlink(missing_ok=True)


def read(env: Mapping[str, str], uri: str) -> str | None:
    try:
        return path(env, uri).read_text().strip() or None
    except OSError:
        return None
