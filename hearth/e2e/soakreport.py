"""The soak's arithmetic (``hearth e2e --soak``, :mod:`hearth.e2e.soak`): what each request came to, the
statistics of the report (lost requests by reason, time to first token warm and cold, memory growth, API
writes per idle minute) and its verdict. Pure: the soak measures, this module only counts, so the tests
feed it made-up measurements."""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

#: The soak's memory goal: each component's RSS at the end within this fraction of its RSS after warm-up.
RSS_GROWTH_LIMIT = 0.10
#: How long after a request ends the system still counts as busy (the scale-down and drain it causes are
#: its own writes, not idle ones): the models' stabilization window, the pool's grace and the drain.
SETTLE_SECONDS = 45.0


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One request of the soak, as its client saw it."""

    model: str
    #: Seconds since the soak started when it was sent, and when it ended (answered or not).
    sent: float
    ended: float
    #: Held while its model woke: the gateway told it wake progress (a cold request), else warm.
    cold: bool
    #: Seconds from sending to the first token; None when no token came.
    first_token: float | None
    #: Why it was not answered (e.g. "HTTP 503 no_capacity", "timeout after 300s"); None when answered.
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.error is None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (the smallest value at least *fraction* of the values do not exceed);
    None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50: float | None
    p99: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        return cls(len(values), percentile(values, 0.50), percentile(values, 0.99))

    def describe(self) -> str:
        if not self.count:
            return "none"
        return f"p50 {self.p50:.2f}s, p99 {self.p99:.2f}s (n={self.count})"


@dataclasses.dataclass(frozen=True, slots=True)
class Memory:
    """A component's resident memory at the start (after warm-up) and at the end, summed over its pods."""

    component: str
    start_bytes: int
    end_bytes: int
    #: Its pods at each end: a different set means a restart, and the comparison is of different processes.
    start_pods: tuple[str, ...] = ()
    end_pods: tuple[str, ...] = ()

    @property
    def growth(self) -> float:
        """The end's RSS over the start's, minus one (0.05: 5 % more)."""
        return self.end_bytes / self.start_bytes - 1 if self.start_bytes else math.inf

    @property
    def restarted(self) -> bool:
        return self.start_pods != self.end_pods

    def describe(self) -> str:
        mib = 1024 * 1024
        line = (
            f"{self.component}: {self.start_bytes / mib:.1f} MiB -> {self.end_bytes / mib:.1f} MiB "
            f"({self.growth:+.1%}; {len(self.end_pods)} pod(s))"
        )
        return line + (" [pods changed: " + ", ".join(self.end_pods) + "]" if self.restarted else "")


def busy_intervals(
    outcomes: Iterable[Outcome], *, settle: float = SETTLE_SECONDS
) -> list[tuple[float, float]]:
    """The merged spans during which a request was in flight or had ended less than *settle* ago."""
    spans = sorted((outcome.sent, outcome.ended + settle) for outcome in outcomes)
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def idle_intervals(
    busy: Sequence[tuple[float, float]], start: float, end: float
) -> list[tuple[float, float]]:
    """The parts of [start, end] outside every busy span (*busy* merged and sorted)."""
    idle = []
    cursor = start
    for busy_start, busy_end in busy:
        if busy_start > cursor:
            idle.append((cursor, min(busy_start, end)))
        cursor = max(cursor, busy_end)
        if cursor >= end:
            break
    if cursor < end:
        idle.append((cursor, end))
    return [(a, b) for a, b in idle if b > a]


@dataclasses.dataclass(frozen=True, slots=True)
class IdleWrites:
    """API writes (one per watched change of an object's resourceVersion) made while the soak was idle."""

    idle_seconds: float
    by_kind: dict[str, int]

    @classmethod
    def of(cls, writes: Iterable[tuple[float, str]], idle: Sequence[tuple[float, float]]) -> IdleWrites:
        """*writes*: (seconds since the start, kind) of every write seen; *idle*: the idle spans."""
        counted: collections.Counter[str] = collections.Counter()
        for at, kind in writes:
            if any(start <= at < end for start, end in idle):
                counted[kind] += 1
        return cls(sum(end - start for start, end in idle), dict(sorted(counted.items())))

    @property
    def per_minute(self) -> float | None:
        return sum(self.by_kind.values()) / (self.idle_seconds / 60) if self.idle_seconds else None

    def describe(self) -> str:
        if not self.idle_seconds:
            return "no idle time (every gap was shorter than the settling time)"
        kinds = ", ".join(f"{kind} {count}" for kind, count in self.by_kind.items()) or "none"
        return (
            f"{self.per_minute:.1f}/min over {self.idle_seconds / 60:.1f} idle min "
            f"({sum(self.by_kind.values())} writes: {kinds})"
        )


@dataclasses.dataclass(frozen=True)
class SoakReport:
    seed: int
    duration_seconds: float
    models: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    #: Wakes from zero (a backend Deployment scaled from 0) and pool swaps (the AcceleratorPool's count).
    wakes: int
    swaps: int
    memory: tuple[Memory, ...]
    idle_writes: IdleWrites
    #: Requests the schedule had but the soak did not send (the request bound was reached).
    unsent: int = 0

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def answered(self) -> int:
        return sum(outcome.answered for outcome in self.outcomes)

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    def reasons(self) -> dict[str, int]:
        """Every unanswered request's reason, with how many had it."""
        counted = collections.Counter(outcome.error for outcome in self.outcomes if outcome.error is not None)
        return dict(counted.most_common())

    def lost_by_model(self) -> dict[str, int]:
        counted = collections.Counter(outcome.model for outcome in self.outcomes if not outcome.answered)
        return dict(sorted(counted.items()))

    def latency(self, *, cold: bool) -> Latency:
        return Latency.of(
            [
                outcome.first_token
                for outcome in self.outcomes
                if outcome.cold is cold and outcome.answered and outcome.first_token is not None
            ]
        )

    def failures(self) -> list[str]:
        """What broke the soak's goals (empty: it passed)."""
        found = []
        if self.lost:
            found.append(f"{self.lost} of {self.sent} requests lost")
        if not self.sent:
            found.append("no request was sent")
        for memory in self.memory:
            if memory.growth > RSS_GROWTH_LIMIT:
                found.append(
                    f"{memory.component} RSS grew {memory.growth:+.1%} (limit {RSS_GROWTH_LIMIT:+.0%})"
                )
        return found

    def text(self) -> str:
        lines = [
            f"soak report: seed {self.seed}, {self.duration_seconds / 60:.1f} min, "
            f"models {', '.join(self.models)}",
            f"  requests: {self.sent} sent, {self.answered} answered, {self.lost} lost"
            + (f" ({self.unsent} not sent: the request bound)" if self.unsent else ""),
        ]
        lines += [f"    lost: {count} x {reason}" for reason, count in self.reasons().items()]
        if self.lost:
            lines.append(
                "    lost by model: " + ", ".join(f"{m} {n}" for m, n in self.lost_by_model().items())
            )
        lines += [
            f"  wakes from zero: {self.wakes}; pool swaps: {self.swaps}",
            f"  time to first token, warm: {self.latency(cold=False).describe()}",
            f"  time to first token, cold (held while waking): {self.latency(cold=True).describe()}",
        ]
        lines += [f"  RSS {memory.describe()}" for memory in self.memory]
        lines.append(f"  API writes while idle: {self.idle_writes.describe()}")
        failures = self.failures()
        lines.append("  verdict: " + ("FAIL: " + "; ".join(failures) if failures else "PASS"))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        def latency(cold: bool) -> dict[str, Any]:
            return dataclasses.asdict(self.latency(cold=cold))

        return {
            "seed": self.seed,
            "duration_seconds": self.duration_seconds,
            "models": list(self.models),
            "requests": {
                "sent": self.sent,
                "answered": self.answered,
                "lost": self.lost,
                "unsent": self.unsent,
                "lost_by_reason": self.reasons(),
                "lost_by_model": self.lost_by_model(),
            },
            "wakes": self.wakes,
            "swaps": self.swaps,
            "first_token_seconds": {"warm": latency(False), "cold": latency(True)},
            "rss": {
                memory.component: {
                    "start_bytes": memory.start_bytes,
                    "end_bytes": memory.end_bytes,
                    "growth": memory.growth,
                    "start_pods": list(memory.start_pods),
                    "end_pods": list(memory.end_pods),
                }
                for memory in self.memory
            },
            "idle_api_writes": {
                "idle_seconds": self.idle_writes.idle_seconds,
                "per_minute": self.idle_writes.per_minute,
                "by_kind": self.idle_writes.by_kind,
                "counts": "changes of the resourceVersion of the objects Hearth owns or writes (see soak.py)",
            },
            "failures": self.failures(),
            "passed": not self.failures(),
        }


def minute_line(elapsed: float, outcomes: Sequence[Outcome], in_flight: int, wakes: int, swaps: int) -> str:
    """The soak's progress line, printed each minute."""
    answered = sum(outcome.answered for outcome in outcomes)
    return (
        f"soak {elapsed / 60:4.1f} min: {len(outcomes) + in_flight} sent, {answered} answered, "
        f"{len(outcomes) - answered} lost, {in_flight} in flight; wakes {wakes}, swaps {swaps}"
    )
