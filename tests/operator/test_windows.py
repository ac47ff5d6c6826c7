"""Warm windows (issue 31), with explicit time: which window is in force, how early its wake starts (the
model's measured wake time), when the answer changes next, and the builtin autoscaler's floor from it."""

from __future__ import annotations

import datetime

import pydantic
import pytest

from hearth.api import schedule, telemetry
from hearth.api.llmservice import LLMServiceStatus, Scaling
from hearth.operator.autoscaling import autoscaler, scaling, windows

UTC = datetime.UTC


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime.datetime:
    # December 2026: the 7th is a Monday.
    return datetime.datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


OFFICE = schedule.WarmWindow(
    name="office", start="0 9 * * 1-5", end="0 18 * * 1-5", timezone="Europe/Berlin", min_replicas=1
)
LUNCH = schedule.WarmWindow(name="lunch", start="0 12 * * *", end="0 14 * * *", min_replicas=3)


def test_open_inside_the_window_and_closed_outside() -> None:
    inside = windows.active([OFFICE], now=utc(7, 10), lead=60)  # 11:00 Berlin
    assert inside is not None
    assert inside.state == schedule.OPEN
    assert inside.opens_at.astimezone(UTC) == utc(7, 8)
    assert inside.closes_at is not None
    assert inside.closes_at.astimezone(UTC) == utc(7, 17)
    assert windows.active([OFFICE], now=utc(7, 17, 0, 1), lead=60) is None  # 18:00:01 Berlin
    assert windows.active([OFFICE], now=utc(5, 10), lead=60) is None  # Saturday


def test_the_wake_starts_ahead_of_the_window_by_the_lead() -> None:
    assert windows.active([OFFICE], now=utc(7, 7, 58), lead=60) is None  # two minutes ahead
    warming = windows.active([OFFICE], now=utc(7, 7, 59, 30), lead=60)
    assert warming is not None
    assert warming.state == schedule.WARMING
    assert warming.opens_at.astimezone(UTC) == utc(7, 8)


def test_the_lead_is_the_measured_wake_time_with_a_margin() -> None:
    never = LLMServiceStatus()
    assert windows.lead_seconds(never) == windows.DEFAULT_LEAD_SECONDS + windows.LEAD_MARGIN_SECONDS
    last = LLMServiceStatus(last_wake=telemetry.Wake(started_at="2026-12-07T08:00:00.000Z", total_seconds=40))
    assert windows.lead_seconds(last) == 40 * windows.LEAD_FACTOR + windows.LEAD_MARGIN_SECONDS
    history = LLMServiceStatus(
        last_wake=last.last_wake,
        wake_history=telemetry.WakeHistory(recent_seconds=[40, 80], count=2, p50_seconds=40, p90_seconds=80),
    )
    assert windows.lead_seconds(history) == 80 * windows.LEAD_FACTOR + windows.LEAD_MARGIN_SECONDS


def test_overlapping_windows_keep_the_most_replicas() -> None:
    both = windows.active([OFFICE, LUNCH], now=utc(7, 12, 30), lead=60)
    assert both is not None
    assert both.window.name == "lunch"
    assert both.min_replicas == 3


def test_next_change_is_the_next_early_wake_or_end() -> None:
    # Sunday evening: the next thing is Monday's early wake, lead seconds before 09:00 Berlin.
    assert windows.next_change([OFFICE], now=utc(6, 20), lead=120) == utc(7, 7, 58)
    # Warming already: the next change is the window's end, not this start again.
    change = windows.next_change([OFFICE], now=utc(7, 7, 59), lead=120)
    assert change is not None
    assert change.astimezone(UTC) == utc(7, 17)


def test_status_shows_the_window_and_clears_it_after() -> None:
    result: dict[str, object] = {"lastWake": {"startedAt": "2026-12-07T08:00:00.000Z", "totalSeconds": 20}}
    window, seconds = windows.show(result, schedules=[OFFICE], at=utc(7, 10))
    assert window is not None
    assert result["warmWindow"] == {
        "name": "office",
        "state": "Open",
        "opensAt": "2026-12-07T08:00:00Z",
        "closesAt": "2026-12-07T17:00:00Z",
        "minReplicas": 1,
        "leadSeconds": 40.0,
    }
    assert seconds == 7 * 3600
    window, _ = windows.show(result, schedules=[OFFICE], at=utc(7, 18))
    assert window is None
    assert "warmWindow" not in result
    assert windows.show(result, schedules=None, at=utc(7, 10)) == (None, None)


def test_the_autoscaler_keeps_the_floor_inside_a_window_and_goes_to_zero_after_by_the_idle_rule() -> None:
    history = scaling.History(started=0.0)
    inside = windows.active([OFFICE], now=utc(7, 7, 59), lead=120)
    minimum, why = autoscaler._floor(0, 2, inside)
    assert minimum == 1
    assert why is not None
    assert "warm window office opens at" in why

    def decide(now: float, current: int, minimum: int, why: str | None) -> scaling.Decision | None:
        return scaling.decide(
            history=history,
            now=now,
            demand=0,
            current=current,
            target=10,
            minimum=minimum,
            maximum=2,
            stabilization=300,
            floor_reason=why,
        )

    woken = decide(0.0, 0, minimum, why)
    assert woken == scaling.Decision(1, why)
    # No demand at all inside the window: it stays warm.
    assert decide(3600.0, 1, minimum, why) is None
    # The window closed: scaling.min is 0 again, and zero comes a full stabilization window later.
    assert autoscaler._floor(0, 2, None) == (0, None)
    assert decide(3602.0, 1, 0, None) is None
    assert decide(3700.0, 1, 0, None) is None
    gone = decide(3903.0, 1, 0, None)
    assert gone is not None
    assert gone.replicas == 0


def test_a_window_never_raises_the_floor_above_max_nor_below_min() -> None:
    busy = windows.active([LUNCH], now=utc(7, 12, 30), lead=60)
    assert autoscaler._floor(0, 2, busy)[0] == 2
    assert autoscaler._floor(3, 4, busy) == (3, None)


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ({"name": "w", "start": "0 25 * * *", "end": "0 18 * * *"}, "hour: 25 is outside 0-23"),
        ({"name": "w", "start": "0 9 * * *", "end": "0 18 * * *", "timezone": "Mars/Base"}, "IANA"),
        ({"name": "w", "start": "0 9 * * *", "end": " 0 9 * * * "}, "start and end must differ"),
    ],
)
def test_windows_the_api_server_cannot_check_are_refused_by_the_model(
    window: dict[str, object], fragment: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=fragment):
        Scaling.model_validate({"max": 2, "schedules": [window]})


def test_scaling_refuses_a_window_above_max_and_a_name_used_twice() -> None:
    window = {"name": "w", "start": "0 9 * * *", "end": "0 18 * * *"}
    with pytest.raises(pydantic.ValidationError, match=r"schedules\[0\].minReplicas \(3\) must not exceed"):
        Scaling.model_validate({"max": 2, "schedules": [{**window, "minReplicas": 3}]})
    with pytest.raises(pydantic.ValidationError, match=r"schedules\[1\].name w is used twice"):
        Scaling.model_validate({"max": 2, "schedules": [window, window]})
