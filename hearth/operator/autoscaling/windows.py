"""Scheduled warm windows (pure: explicit wall-clock time, no I/O; issue 31): which window of
``spec.scaling.schedules`` is in force at a moment, how early its wake must start, and when that answer next
changes (the operator requeues the LLMService then, so status, accounting and the autoscaler's floor move
at the boundary, not at the next unrelated event).

A window is *open* from an occurrence of its ``start`` until the next occurrence of its ``end``; it is
*warming* from ``lead`` seconds before a start, where ``lead`` is the model's measured wake time (the p90 of
``status.wakeHistory``, else the last wake) with a margin, so that its replicas are ready at the start.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import pydantic

from hearth.api import schedule, telemetry
from hearth.api.llmservice import LLMServiceStatus
from hearth.common import cron, timestamps

#: Lead when the model has never woken under this operator: vLLM cold starts take 30-300 s.
DEFAULT_LEAD_SECONDS = 180.0
#: A wake varies from one to the next; p90 x 1.25 covers the slow ones without holding devices much longer.
LEAD_FACTOR = 1.25
#: Added to every lead: the autoscaler's interval, the scale reaching the scheduler, and the first
#: readiness probe's period.
LEAD_MARGIN_SECONDS = 15.0


@dataclasses.dataclass(frozen=True, slots=True)
class Active:
    """The window in force at a moment."""

    window: schedule.WarmWindow
    state: schedule.WindowState
    opens_at: datetime.datetime
    closes_at: datetime.datetime | None
    lead_seconds: float

    @property
    def min_replicas(self) -> int:
        return self.window.min_replicas

    def to_status(self) -> schedule.WarmWindowStatus:
        return schedule.WarmWindowStatus(
            name=self.window.name,
            state=self.state,
            opens_at=timestamps.format_seconds(self.opens_at),
            closes_at=timestamps.format_seconds(self.closes_at) if self.closes_at is not None else None,
            min_replicas=self.window.min_replicas,
            lead_seconds=round(self.lead_seconds, 1),
        )


def lead_seconds(status: LLMServiceStatus) -> float:
    """How long before a window's start its wake begins, from the model's own wakes."""
    measured = _measured(status.wake_history, status.last_wake)
    if measured is None:
        return DEFAULT_LEAD_SECONDS + LEAD_MARGIN_SECONDS
    return measured * LEAD_FACTOR + LEAD_MARGIN_SECONDS


def _measured(history: telemetry.WakeHistory | None, last: telemetry.Wake | None) -> float | None:
    if history is not None and history.p90_seconds is not None:
        return history.p90_seconds
    if last is not None and last.total_seconds is not None:
        return last.total_seconds
    return None


def _one(window: schedule.WarmWindow, *, now: datetime.datetime, lead: float) -> Active | None:
    zone = cron.zone(window.timezone)
    start, end = cron.Cron.parse(window.start), cron.Cron.parse(window.end)
    last_start = start.previous(now, zone)
    if last_start is not None:
        last_end = end.previous(now, zone)
        # An end at the very minute of a start closes the earlier occurrence, not this one.
        if last_end is None or last_end < last_start:
            return Active(window, schedule.OPEN, last_start, end.next(now, zone), lead)
    next_start = start.next(now, zone)
    if next_start is not None and (next_start - now).total_seconds() <= lead:
        return Active(window, schedule.WARMING, next_start, end.next(next_start, zone), lead)
    return None


def active(
    windows: Sequence[schedule.WarmWindow] | None, *, now: datetime.datetime, lead: float
) -> Active | None:
    """The window in force at *now* (aware): of overlapping ones, the most replicas, then an open one before
    a warming one, then the earliest start, then the name."""
    found = [hit for window in windows or () if (hit := _one(window, now=now, lead=lead)) is not None]
    if not found:
        return None
    return min(
        found,
        key=lambda hit: (-hit.min_replicas, hit.state != schedule.OPEN, hit.opens_at, hit.window.name),
    )


def next_change(
    windows: Sequence[schedule.WarmWindow] | None, *, now: datetime.datetime, lead: float
) -> datetime.datetime | None:
    """The next moment after *now* at which :func:`active` may answer differently: a window's warming
    begins (its start minus *lead*) or a window closes."""
    moments: list[datetime.datetime] = []
    for window in windows or ():
        zone = cron.zone(window.timezone)
        start, end = cron.Cron.parse(window.start), cron.Cron.parse(window.end)
        closes = end.next(now, zone)
        if closes is not None:
            moments.append(closes)
        upcoming = start.next(now, zone)
        # The start within the lead is already warming; the one after it begins warming later.
        while upcoming is not None and upcoming - datetime.timedelta(seconds=lead) <= now:
            upcoming = start.next(upcoming, zone)
        if upcoming is not None:
            moments.append(upcoming - datetime.timedelta(seconds=lead))
    return min(moments) if moments else None


def show(
    result: dict[str, Any], *, schedules: Sequence[schedule.WarmWindow] | None, at: datetime.datetime
) -> tuple[Active | None, float | None]:
    """Write ``warmWindow`` into the status *result* (in place; removed outside every window), from the
    wake history *result* already holds. Returns the window in force and the seconds until the answer may
    change (the LLMService is reconciled again then), or None without windows."""
    if not schedules:
        result.pop("warmWindow", None)
        return None, None
    try:
        status = LLMServiceStatus.model_validate(
            {key: result[key] for key in ("wakeHistory", "lastWake") if key in result}
        )
    except pydantic.ValidationError:
        status = LLMServiceStatus()
    lead = lead_seconds(status)
    window = active(schedules, now=at, lead=lead)
    if window is None:
        result.pop("warmWindow", None)
    else:
        result["warmWindow"] = window.to_status().to_wire()
    change = next_change(schedules, now=at, lead=lead)
    return window, (change - at).total_seconds() if change is not None else None
