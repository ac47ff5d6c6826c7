"""The soak's traffic (``hearth e2e --soak``): bursts of requests to one, two or three models at a time,
with idle gaps between them, drawn from a seeded RNG so a run can be repeated. Short gaps keep models warm
(warm requests), long ones let them go to zero (the next burst wakes them); a burst on a model whose pool is
full swaps one out, and a burst on the three pooled models makes one wait for a swap
(bursts on one or two alone swapped nothing in a 5-minute run). Pure: the soak sends what this plans."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

#: A burst lasts this long (seconds), at this many requests a second (Poisson arrivals).
BURST_SECONDS = (5.0, 30.0)
BURST_RATE = (0.5, 3.0)
#: The idle gap after a burst (seconds): the models' stabilization window is 15 s, the pool's minWarm
#: 10 s, so gaps under ~20 s keep a model up and longer ones let it go to zero.
GAP_SECONDS = (5.0, 100.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Planned:
    #: Seconds after the traffic's start.
    at: float
    model: str


def schedule(
    seed: int,
    duration: float,
    models: Sequence[str],
    *,
    max_requests: int,
    weights: Sequence[float] | None = None,
) -> list[Planned]:
    """The requests of *duration* seconds of bursty traffic over *models* (each burst to one, two or three
    of them, drawn by *weights*), at most *max_requests*."""
    rng = random.Random(seed)
    planned: list[Planned] = []
    now = 0.0
    while now < duration and len(planned) < max_requests:
        targets = set(rng.choices(models, weights=weights, k=rng.choice((1, 2, 3))))
        ordered = sorted(targets)
        end = min(duration, now + rng.uniform(*BURST_SECONDS))
        rate = rng.uniform(*BURST_RATE)
        while len(planned) < max_requests:
            now += rng.expovariate(rate)
            if now >= end:
                break
            planned.append(Planned(round(now, 3), rng.choice(ordered)))
        now = end + rng.uniform(*GAP_SECONDS)
    return planned
