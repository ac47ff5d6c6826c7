"""Deciding whether a child needs applying, so a steady state costs zero API writes.

A child is applied when the hash of its desired manifest (kept in an annotation) changed, or when the
live object no longer contains what we asked for (someone edited or removed a field we own).
"""

from __future__ import annotations

import copy
import decimal
import hashlib
import json
from typing import Any

from hearth.api import quantity

HASH_ANNOTATION = "serving.hearth.dev/applied-hash"


def stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of *manifest* carrying the hash of its own content."""
    stamped = copy.deepcopy(manifest)
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    stamped["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    return stamped


def in_sync(stamped: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return False
    wanted_hash = stamped["metadata"]["annotations"][HASH_ANNOTATION]
    if (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION) != wanted_hash:
        return False
    return contains(live, stamped)


def contains(live: Any, wanted: Any) -> bool:
    """Whether every field of *wanted* is present in *live* with an equal value (server defaults allowed)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            key in live and contains(live[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(contains, live, wanted))
    return _scalar_equal(live, wanted)


def _scalar_equal(live: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(live, bool):
        return live is wanted  # Python's True == 1 must not hide a type change
    if live == wanted:
        return True
    # The API server canonicalises quantities ("0.5" CPU reads back as "500m").
    if isinstance(wanted, str | int) and isinstance(live, str | int):
        try:
            return quantity.parse(wanted) == quantity.parse(live)
        except (ValueError, decimal.InvalidOperation):
            return False
    return False
