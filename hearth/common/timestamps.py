"""RFC 3339 timestamps as Kubernetes writes and reads them: the one place Hearth formats or parses one.

Kubernetes writes ``metav1.Time`` in whole seconds (``2006-01-02T15:04:05Z``: creationTimestamp, condition
transitions, Event first/last timestamps) and ``metav1.MicroTime`` with six fractional digits (Lease
acquire/renew times). Hearth's own wake and cold-start fields carry milliseconds, because a cold start is
measured in seconds and whole seconds would be too coarse. Every string written here is UTC with a ``Z``.

Reading is lenient about what RFC 3339 allows (fractional seconds of any length, ``Z``/``z`` or a numeric
offset), so a timestamp written by another client still reads; but it needs a zone, because a naive time
cannot be compared with the aware ones everything else here uses.

Standard library only: the gateway imports this, and its start-up time and memory are budgeted.
"""

from __future__ import annotations

import datetime


class TimestampError(ValueError):
    """A string that is not an RFC 3339 timestamp."""


def _utc(moment: datetime.datetime | None) -> datetime.datetime:
    if moment is None:
        return datetime.datetime.now(tz=datetime.UTC)
    if moment.tzinfo is None:
        # astimezone() would silently read a naive time as the machine's local time.
        raise TimestampError(f"{moment!r} has no time zone")
    return moment.astimezone(datetime.UTC)


def format_seconds(moment: datetime.datetime | None = None) -> str:
    """``metav1.Time``: whole seconds, e.g. ``2024-05-01T12:00:00Z``; now when *moment* is None."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_millis(moment: datetime.datetime | None = None) -> str:
    """Milliseconds, e.g. ``2024-05-01T12:00:00.250Z`` (truncated, never rounded up into the next second)."""
    moment = _utc(moment)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{moment.microsecond // 1000:03d}Z"


def format_micros(moment: datetime.datetime | None = None) -> str:
    """``metav1.MicroTime``: microseconds, e.g. ``2024-05-01T12:00:00.250000Z`` (Leases)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_strict(text: str) -> datetime.datetime:
    """An aware datetime, or :class:`TimestampError` naming *text*."""
    if not isinstance(text, str):
        raise TimestampError(f"{text!r} is not an RFC 3339 timestamp (not a string)")
    # fromisoformat takes an upper-case Z since Python 3.11, but not the lower-case one RFC 3339 allows.
    normalised = text[:-1] + "Z" if text.endswith("z") else text
    try:
        moment = datetime.datetime.fromisoformat(normalised)
    except ValueError:
        raise TimestampError(f"{text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise TimestampError(f"{text!r} has no time zone (RFC 3339 needs Z or an offset)")
    return moment


def parse(text: str | None) -> datetime.datetime | None:
    """An aware datetime, or None when *text* is empty or unreadable (for fields read off objects, where a
    missing or odd value means "not known" rather than an error)."""
    if not text:
        return None
    try:
        return parse_strict(text)
    except TimestampError:
        return None
