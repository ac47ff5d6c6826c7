"""When a waking backend is expected to be ready: the interface the gateway asks, and what it derives.

An :class:`EtaSource` knows how long this service's recent wakes took (p50 and p90). The gateway turns that
into an :class:`Eta` for one moment of one wake (seconds left, overdue past p90) and into honest
``Retry-After`` values. :class:`NullEta` knows nothing (no wake history yet): every caller then falls back
to the fixed values of SPEC §3.3.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import statistics
from typing import Protocol

#: SPEC §3.3's Retry-After of a cold 503 when nothing better is known.
DEFAULT_RETRY_AFTER = 10


@dataclasses.dataclass(frozen=True, slots=True)
class WakeTimes:
    """How long this service's recent wakes took, from the first cold request to a ready backend."""

    p50_s: float
    p90_s: float


class EtaSource(Protocol):
    def wake_times(self) -> WakeTimes | None:
        """The recent wake times, or None when there are none to go by."""
        ...


class NullEta:
    """No wake history: no ETA anywhere."""

    def wake_times(self) -> WakeTimes | None:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Eta:
    #: Seconds until the backend is expected ready (0 once the median wake time has passed).
    eta_s: float
    #: The wake has taken longer than nine in ten recent ones.
    overdue: bool


def estimate(source: EtaSource, *, elapsed_s: float, lead_s: float = 0.0) -> Eta | None:
    """The ETA of a wake that began *elapsed_s* ago, or None without wake times. *lead_s* is how long the
    scaler usually takes to start the wake after the first cold request: the recorded wake times run from
    the backend leaving zero, while a client waits from its request."""
    times = source.wake_times()
    if times is None:
        return None
    return Eta(eta_s=max(0.0, lead_s + times.p50_s - elapsed_s), overdue=elapsed_s > lead_s + times.p90_s)


class ScalerLead:
    """How long the scaler took, in recent wakes seen by this gateway, from the first cold request until the
    backend left zero (the wake's phase left ``requested``): about nothing when the gateway itself scales
    0->1, a KEDA polling interval or so otherwise. The median of the last few; 0 before the first."""

    KEPT = 5

    def __init__(self) -> None:
        self._recent: collections.deque[float] = collections.deque(maxlen=self.KEPT)

    def record(self, seconds: float) -> None:
        self._recent.append(max(0.0, seconds))

    def seconds(self) -> float:
        return statistics.median(self._recent) if self._recent else 0.0


def retry_after(eta: Eta | None) -> int:
    """Whole seconds a refused client should wait: the time left when one is known (at least 1), the
    fixed default otherwise (no ETA, or a wake already overdue or past its median)."""
    if eta is None or eta.overdue or eta.eta_s <= 0:
        return DEFAULT_RETRY_AFTER
    return max(1, math.ceil(eta.eta_s))
