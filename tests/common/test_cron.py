"""Five-field cron expressions in IANA zones: parsing errors name the field, occurrences follow the zone's
wall clock across daylight-saving changes, and day-of-month/day-of-week combine as in Vixie cron."""

from __future__ import annotations

import datetime

import pytest

from hearth.common import cron

BERLIN = cron.zone("Europe/Berlin")
UTC = datetime.UTC


def utc(*parts: int) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=UTC)


def test_next_and_previous_on_weekdays_in_a_zone() -> None:
    weekdays_nine = cron.Cron.parse("0 9 * * 1-5")
    saturday_noon = utc(2026, 12, 5, 11, 0)  # Saturday
    nxt = weekdays_nine.next(saturday_noon, BERLIN)
    assert nxt is not None
    assert nxt.astimezone(UTC) == utc(2026, 12, 7, 8, 0)  # Monday 09:00 CET
    previous = weekdays_nine.previous(saturday_noon, BERLIN)
    assert previous is not None
    assert previous.astimezone(UTC) == utc(2026, 12, 4, 8, 0)  # Friday
    # An occurrence exactly now is the previous one, not the next.
    assert weekdays_nine.previous(nxt, BERLIN) == nxt
    assert weekdays_nine.next(nxt, BERLIN) != nxt


def test_wall_clock_follows_daylight_saving() -> None:
    nine = cron.Cron.parse("0 9 * * *")
    summer = nine.next(utc(2026, 7, 1, 0, 0), BERLIN)
    winter = nine.next(utc(2026, 12, 1, 0, 0), BERLIN)
    assert summer is not None
    assert winter is not None
    assert summer.astimezone(UTC).hour == 7  # CEST, UTC+2
    assert winter.astimezone(UTC).hour == 8  # CET, UTC+1


def test_names_steps_lists_and_sunday_as_seven() -> None:
    expression = cron.Cron.parse("*/15 8-10,17 * jan-mar sun")
    assert expression.minutes == (0, 15, 30, 45)
    assert expression.hours == (8, 9, 10, 17)
    assert expression.months == frozenset({1, 2, 3})
    assert cron.Cron.parse("0 0 * * 7").weekdays == frozenset({0})


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    first_or_monday = cron.Cron.parse("0 0 1 * mon")
    assert first_or_monday.matches_day(datetime.date(2026, 12, 1))  # a Tuesday, the 1st
    assert first_or_monday.matches_day(datetime.date(2026, 12, 7))  # a Monday
    assert not first_or_monday.matches_day(datetime.date(2026, 12, 8))
    first_only = cron.Cron.parse("0 0 1 * *")
    assert not first_only.matches_day(datetime.date(2026, 12, 7))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0 9 * *", "has 4 fields"),
        ("60 9 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 9 0 * *", "day-of-month: 0 is outside 1-31"),
        ("0 9 * foo *", "month: 'foo' is not a number or a name"),
        ("0 9 * * 1-8", "day-of-week: 8 is outside 0-7"),
        ("0 18-9 * * *", "hour: range '18-9' runs backwards"),
        ("*/0 9 * * *", "minute: step '0' must be a positive number"),
        ("0 9,,10 * * *", "hour: empty list item"),
    ],
)
def test_bad_expressions_are_refused_naming_the_field(text: str, fragment: str) -> None:
    with pytest.raises(cron.CronError, match=fragment):
        cron.Cron.parse(text)


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(cron.CronError, match="not an IANA time zone"):
        cron.zone("Mars/Olympus_Mons")


def test_an_expression_that_never_matches_within_the_horizon_has_no_occurrence() -> None:
    never = cron.Cron.parse("0 0 31 2 *")  # February 31st
    assert never.next(utc(2026, 1, 1), UTC) is None
    assert never.previous(utc(2026, 1, 1), UTC) is None
