"""Reading a held stream's progress comments as a client would (README, "Progress comments: a stable
contract, version 1"): the sequence of phases it was told, and how far the first ETA was from the wait it
predicted. Written against the documented contract only, as any client must be."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hearth.api import wakephases

PREFIX = b": hearth "
#: The phases in the order a wake passes them (hearth.api.wakephases.RANK); one may be skipped (the status
#: moved on between two looks).
ORDER = {str(phase): rank for phase, rank in wakephases.RANK.items()}


def comments(events: list[bytes]) -> list[dict[str, Any]]:
    """The progress comments among a stream's events (each event without its blank line)."""
    found = []
    for event in events:
        if event.startswith(PREFIX):
            document = json.loads(event[len(PREFIX) :])
            if isinstance(document, dict) and document.get("v") == 1:
                found.append(document)
    return found


@dataclasses.dataclass(frozen=True)
class Told:
    #: (phase, elapsed seconds when first told), one entry per change.
    phases: list[tuple[str, float]]
    #: The first ETA's prediction of the whole wait (elapsed + eta), None without one.
    predicted_s: float | None
    #: When the ready comment came (the wait the client really had), None if it never came.
    waited_s: float | None

    @property
    def in_order(self) -> bool:
        ranks = [ORDER.get(phase, -1) for phase, _ in self.phases]
        return -1 not in ranks and ranks == sorted(ranks)

    @property
    def eta_error_s(self) -> float | None:
        """How much longer (positive) or shorter the wait was than the first ETA said."""
        if self.predicted_s is None or self.waited_s is None:
            return None
        return self.waited_s - self.predicted_s

    def describe(self) -> str:
        sequence = " -> ".join(f"{phase} {elapsed:.1f}s" for phase, elapsed in self.phases)
        error = self.eta_error_s
        if error is None or self.predicted_s is None:
            return f"phases told: {sequence}"
        return f"phases told: {sequence}; ETA said {self.predicted_s:.0f}s, off by {error:+.1f}s"


def told(events: list[bytes]) -> Told:
    phases: list[tuple[str, float]] = []
    predicted: float | None = None
    waited: float | None = None
    for document in comments(events):
        phase, elapsed = str(document.get("phase")), float(document.get("elapsed_s", 0.0))
        if not phases or phases[-1][0] != phase:
            phases.append((phase, elapsed))
        if predicted is None and "eta_s" in document:
            predicted = elapsed + float(document["eta_s"])
        if phase == "ready":
            waited = elapsed
    return Told(phases=phases, predicted_s=predicted, waited_s=waited)
