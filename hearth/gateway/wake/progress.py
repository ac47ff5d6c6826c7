"""The progress comment of a held stream: a stable, versioned contract clients may parse (README).

``: hearth {"v":1,"phase":"unknown","elapsed_s":41.2,"eta_s":37,"overdue":true}`` followed by a blank
line. It is an SSE *comment*: every SSE client (the openai SDKs included) ignores it, where an ``event:``,
``id:``, ``retry:`` or data-only keepalive would be handed to the application. Version 1 has these keys:

- ``v``: the contract version (1); a client should ignore keys it does not know.
- ``phase``: what the wake is doing (:class:`Phase`); ``unknown`` when the gateway cannot read its
  LLMService (no API access: the probe fallback).
- ``elapsed_s``: seconds this request has been held, one decimal.
- ``eta_s``: seconds until the backend is expected ready, whole; only when recent wakes give an ETA.
- ``overdue``: present (true) only when the wake has taken longer than nine in ten recent ones.

A comment goes out at commit, at every phase change, every progress interval, and a last one with phase
``ready`` just before the backend's answer follows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Protocol

from hearth.api import wakephases
from hearth.gateway import errors
from hearth.gateway.wake import eta as eta_module

VERSION = 1
PREFIX = b": hearth "


#: The phase vocabulary is the API's (one declaration for the operator, the gateway and the e2e).
Phase = wakephases.Phase
STARTED = wakephases.STARTED


class PhaseSource(Protocol):
    def phase(self) -> Phase:
        """What the wake under way is doing now."""
        ...

    def failure(self) -> errors.FailedWake | None:
        """Why the backend cannot come up, while that refuses cold requests (None otherwise)."""
        ...

    def on_change(self, callback: Callable[[Phase], None]) -> None:
        """Call *callback* with the new phase whenever it changes."""
        ...


class NoPhase:
    """No status to read (the probe fallback): the phase stays unknown."""

    def phase(self) -> Phase:
        return Phase.UNKNOWN

    def failure(self) -> errors.FailedWake | None:
        return None

    def on_change(self, callback: Callable[[Phase], None]) -> None:
        return None


def comment(*, elapsed_s: float, eta: eta_module.Eta | None, phase: Phase = Phase.UNKNOWN) -> bytes:
    """One progress comment, ready to write into the stream."""
    document: dict[str, object] = {"v": VERSION, "phase": str(phase), "elapsed_s": round(elapsed_s, 1)}
    if eta is not None:
        document["eta_s"] = math.ceil(eta.eta_s)
        if eta.overdue:
            document["overdue"] = True
    return PREFIX + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"
