"""When a backend pod's drain ends (pure: no I/O, no clock; the caller passes the time in).

A drain starts when the kubelet calls the sidecar's ``/drain`` (the engine container's preStop). It waits
``endpoint_delay`` first, so requests a gateway routed before it saw the pod's endpoint go are counted by
the engine, then reads the engine's metrics every ``poll_interval`` and ends on the first of:

- **idle**: the engine says nothing is running and nothing is waiting (the sum of every sample of both
  series is 0);
- **engine gone**: the metrics port refuses connections. Nothing listens there, so nothing can be in flight
  (the engine has exited or never bound); waiting on would only hold the accelerator;
- **timeout**: ``timeout`` (the LLMService's drainTimeout) has passed since the drain started, whatever the
  engine says: the reference's bound, kept.

Anything else is *unknown* and the drain keeps waiting: a scrape that is slow or fails otherwise (the engine
may be busy serving exactly the streams the drain protects), an HTTP error, a body without both series, or
a value that is not a number.
"""

from __future__ import annotations

import dataclasses
import enum
import math


class Outcome(enum.StrEnum):
    IDLE = "idle"
    ENGINE_GONE = "engine-gone"
    TIMEOUT = "timeout"


class Reading(enum.Enum):
    """What one look at the engine found, besides a count."""

    #: The metrics port refused the connection.
    REFUSED = "refused"
    #: The scrape did not say (slow, failed, HTTP error, series missing, not a number).
    UNKNOWN = "unknown"


#: A reading: requests running + waiting, or what stood in for a count.
Scrape = float | Reading


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """The drain's three durations, in seconds."""

    timeout: float
    endpoint_delay: float
    poll_interval: float

    def __post_init__(self) -> None:
        if self.timeout < 0 or self.endpoint_delay < 0:
            raise ValueError("the drain timeout and endpoint delay cannot be negative")
        if self.poll_interval <= 0:
            raise ValueError("the poll interval must be positive")


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    """Look again after this many seconds."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    outcome: Outcome


Step = Wait | Done


def first_step(timing: Timing) -> Step:
    """Before any reading: wait out the endpoint delay (a zero drainTimeout ends at once)."""
    if timing.timeout <= 0:
        return Done(Outcome.TIMEOUT)
    return Wait(min(timing.endpoint_delay, timing.timeout))


def next_step(timing: Timing, *, elapsed: float, scrape: Scrape) -> Step:
    """After a reading taken *elapsed* seconds into the drain: end it, or say how long to wait."""
    if scrape is Reading.REFUSED:
        return Done(Outcome.ENGINE_GONE)
    if not isinstance(scrape, Reading) and scrape <= 0:
        return Done(Outcome.IDLE)
    left = timing.timeout - elapsed
    if left <= 0:
        return Done(Outcome.TIMEOUT)
    return Wait(min(timing.poll_interval, left))


def scrape_budget(timing: Timing, *, elapsed: float) -> float:
    """How long one scrape may take: never past the drain's end, never longer than a few polls (so a hung
    engine is asked again rather than waited on once)."""
    return max(0.0, min(timing.timeout - elapsed, 4 * timing.poll_interval))


def in_flight(exposition: str, *, running: str, waiting: str) -> Scrape:
    """Requests running + waiting according to a Prometheus text exposition: the sum of every sample of
    each series (an engine may label them per model or per engine core). UNKNOWN when either series is
    absent or a value is not a finite number."""
    totals = {running: 0.0, waiting: 0.0}
    seen: set[str] = set()
    for raw in exposition.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, value = _sample(line)
        if name not in totals:
            continue
        try:
            number = float(value)
        except ValueError:
            return Reading.UNKNOWN
        if not math.isfinite(number):
            return Reading.UNKNOWN
        totals[name] += number
        seen.add(name)
    if len(seen) < len(totals):
        return Reading.UNKNOWN
    return sum(totals.values())


def _sample(line: str) -> tuple[str, str]:
    """A sample line's metric name and value text (labels skipped, quoted braces and spaces included)."""
    brace = line.find("{")
    space = line.find(" ")
    if brace == -1 or (space != -1 and space < brace):
        name, _, rest = line.partition(" ")
        return name, rest.split()[0] if rest.split() else ""
    name = line[:brace]
    index, quoted = brace + 1, False
    while index < len(line):
        char = line[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            break
        index += 1
    after = line[index + 1 :].split()
    return name, after[0] if after else ""
