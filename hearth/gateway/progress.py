"""The progress comment of a held stream: a stable, versioned contract clients may parse (README).

``: hearth {"v":1,"phase":"unknown","elapsed_s":41.2,"eta_s":37,"overdue":true}`` followed by a blank
line. It is an SSE *comment*: every SSE client (the openai SDKs included) ignores it, where an ``event:``,
``id:``, ``retry:`` or data-only keepalive would be handed to the application. Version 1 has these keys:

- ``v``: the contract version (1); a client should ignore keys it does not know.
- ``phase``: what the wake is doing; ``unknown`` until the gateway learns the phase.
- ``elapsed_s``: seconds this request has been held, one decimal.
- ``eta_s``: seconds until the backend is expected ready, whole; only when recent wakes give an ETA.
- ``overdue``: present (true) only when the wake has taken longer than nine in ten recent ones.
"""

from __future__ import annotations

import json
import math

from hearth.gateway import eta as eta_module

VERSION = 1
PREFIX = b": hearth "
UNKNOWN = "unknown"


def comment(*, elapsed_s: float, eta: eta_module.Eta | None, phase: str = UNKNOWN) -> bytes:
    """One progress comment, ready to write into the stream."""
    document: dict[str, object] = {"v": VERSION, "phase": phase, "elapsed_s": round(elapsed_s, 1)}
    if eta is not None:
        document["eta_s"] = math.ceil(eta.eta_s)
        if eta.overdue:
            document["overdue"] = True
    return PREFIX + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"
