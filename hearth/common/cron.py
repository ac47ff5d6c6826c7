"""Five-field ("Linux format") cron expressions in an IANA time zone (pure: explicit time, no clock).

``minute hour day-of-month month day-of-week``, each field ``*``, a number, a range ``a-b``, a step
``*/n`` or ``a-b/n``, or a comma list of those; months and weekdays also by their English three-letter
names (``jan``, ``mon``), weekday 0 and 7 both Sunday. As in Vixie cron (and KEDA's cron scaler, which
reads the same syntax), when both day-of-month and day-of-week are restricted a day matches either.

Occurrences are wall-clock times in the zone: a time that does not exist (skipped by a daylight-saving
jump forward) maps to the instant ``zoneinfo`` gives it (fold 0, i.e. the offset before the jump), and a
time that happens twice (the jump back) counts once, at its first instance.
"""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo
from collections.abc import Iterator

#: How far :func:`Cron.previous` and :func:`Cron.next` look: a year (and a day) covers every expression
#: that matches at all in a non-leap year; ``0 0 29 2 *`` may go unseen for up to three years.
HORIZON_DAYS = 367

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CronError(ValueError):
    """An expression or time zone that cannot be used; the message names the part at fault."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: The value names start at (months from 1, weekdays from 0).
    names_from: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    # 7 is accepted as Sunday and folded onto 0 below.
    _Field("day-of-week", 0, 7, _WEEKDAYS, 0),
)


def _value(text: str, field: _Field) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.names.index(lowered) + field.names_from
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number" + (" or a name" if field.names else ""))
    value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field.name}: empty list item in {text!r}")
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            low, high = field.low, field.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, field), _value(last, field)
            if low > high:
                raise CronError(f"{field.name}: range {span!r} runs backwards")
        else:
            low = _value(span, field)
            # "5/15" means from 5 to the end in steps of 15, as in Vixie cron.
            high = field.high if step_text else low
        values.update(range(low, high + 1, step))
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class Cron:
    """A parsed expression; :meth:`parse` builds it."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    #: 0 = Sunday.
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"{text!r} has {len(parts)} fields; want 5: minute hour day-of-month month day-of-week"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
        )
        return cls(
            text=text,
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=days,
            months=months,
            weekdays=weekdays,
            days_restricted=not parts[2].startswith("*"),
            weekdays_restricted=not parts[4].startswith("*"),
        )

    def matches_day(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _on(self, day: datetime.date, zone: datetime.tzinfo) -> Iterator[datetime.datetime]:
        """The day's occurrences in ascending order, as aware datetimes in *zone*."""
        if not self.matches_day(day):
            return
        for hour in self.hours:
            for minute in self.minutes:
                yield datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)

    def next(self, after: datetime.datetime, zone: datetime.tzinfo) -> datetime.datetime | None:
        """The first occurrence strictly after *after* (aware), or None within :data:`HORIZON_DAYS`."""
        local = after.astimezone(zone)
        day = local.date()
        for _ in range(HORIZON_DAYS):
            for at in self._on(day, zone):
                if at > after:
                    return at
            day += datetime.timedelta(days=1)
        return None

    def previous(self, at_or_before: datetime.datetime, zone: datetime.tzinfo) -> datetime.datetime | None:
        """The last occurrence at or before *at_or_before* (aware), or None within :data:`HORIZON_DAYS`."""
        local = at_or_before.astimezone(zone)
        day = local.date()
        for _ in range(HORIZON_DAYS):
            for at in reversed(list(self._on(day, zone))):
                if at <= at_or_before:
                    return at
            day -= datetime.timedelta(days=1)
        return None


def zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name (``Europe/Berlin``, ``UTC``)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise CronError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)") from error
