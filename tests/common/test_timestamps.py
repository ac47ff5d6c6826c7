"""RFC 3339 timestamps as Kubernetes writes and reads them (hearth.common.timestamps)."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from hearth.common import timestamps

UTC = datetime.UTC
MOMENT = datetime.datetime(2024, 5, 1, 12, 3, 4, 987654, tzinfo=UTC)


def test_formats_whole_seconds_as_kubernetes_time() -> None:
    assert timestamps.format_seconds(MOMENT) == "2024-05-01T12:03:04Z"


def test_formats_milliseconds_truncated_not_rounded() -> None:
    assert timestamps.format_millis(MOMENT) == "2024-05-01T12:03:04.987Z"
    assert timestamps.format_millis(MOMENT.replace(microsecond=999_999)) == "2024-05-01T12:03:04.999Z"
    assert timestamps.format_millis(MOMENT.replace(microsecond=0)) == "2024-05-01T12:03:04.000Z"


def test_formats_microseconds_as_kubernetes_microtime() -> None:
    assert timestamps.format_micros(MOMENT) == "2024-05-01T12:03:04.987654Z"
    assert timestamps.format_micros(MOMENT.replace(microsecond=5)) == "2024-05-01T12:03:04.000005Z"


def test_formats_any_zone_as_utc() -> None:
    tokyo = MOMENT.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    assert timestamps.format_seconds(tokyo) == "2024-05-01T12:03:04Z"
    assert timestamps.format_millis(tokyo) == "2024-05-01T12:03:04.987Z"
    assert timestamps.format_micros(tokyo) == "2024-05-01T12:03:04.987654Z"


def test_refuses_to_format_a_naive_time() -> None:
    with pytest.raises(timestamps.TimestampError, match="no time zone"):
        timestamps.format_seconds(datetime.datetime(2024, 5, 1, 12, 3, 4))


def test_formats_now_when_given_no_time() -> None:
    before = datetime.datetime.now(tz=UTC).replace(microsecond=0)
    written = timestamps.parse_strict(timestamps.format_seconds())
    after = datetime.datetime.now(tz=UTC)
    assert before <= written <= after
    assert timestamps.format_millis().endswith("Z")
    assert timestamps.format_micros().endswith("Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:03:04Z", MOMENT.replace(microsecond=0)),
        ("2024-05-01T12:03:04z", MOMENT.replace(microsecond=0)),
        ("2024-05-01T12:03:04.987Z", MOMENT.replace(microsecond=987_000)),
        ("2024-05-01T12:03:04.987654Z", MOMENT),
        # Go writes up to nine digits (Prometheus, RFC3339Nano); past microseconds they are dropped.
        ("2024-05-01T12:03:04.987654321Z", MOMENT),
        ("2024-05-01T12:03:04.9+00:00", MOMENT.replace(microsecond=900_000)),
        ("2024-05-01T14:03:04.987654+02:00", MOMENT),
        ("2024-05-01T07:33:04-04:30", MOMENT.replace(microsecond=0)),
    ],
)
def test_parses_fractions_and_zones(text: str, expected: datetime.datetime) -> None:
    assert timestamps.parse_strict(text) == expected
    assert timestamps.parse(text) == expected


@pytest.mark.parametrize("moment", [MOMENT, MOMENT.replace(microsecond=0)])
def test_reads_back_what_it_writes(moment: datetime.datetime) -> None:
    assert timestamps.parse(timestamps.format_seconds(moment)) == moment.replace(microsecond=0)
    assert timestamps.parse(timestamps.format_millis(moment)) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )
    assert timestamps.parse(timestamps.format_micros(moment)) == moment


GARBAGE = [
    "yesterday",
    "2024-13-01T00:00:00Z",
    "2024-05-01T25:00:00Z",
    "2024-05-01T12:03:04ZZ",
    "2024-05-01T12:03:04+",
    "Z",
    "z",
    # No zone: RFC 3339 needs one, and a naive time cannot be compared with aware ones.
    "2024-05-01T12:03:04",
    "2024-05-01",
]


@pytest.mark.parametrize("text", GARBAGE)
def test_unreadable_text_is_none_when_lenient(text: str) -> None:
    assert timestamps.parse(text) is None


@pytest.mark.parametrize("text", GARBAGE)
def test_unreadable_text_is_an_error_naming_it_when_strict(text: str) -> None:
    with pytest.raises(timestamps.TimestampError, match="RFC 3339") as raised:
        timestamps.parse_strict(text)
    assert repr(text) in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("value", [None, ""])
def test_absent_text_is_none(value: str | None) -> None:
    assert timestamps.parse(value) is None


def test_a_value_that_is_not_a_string_is_unreadable() -> None:
    # Objects read off the API are untyped dicts: a number where a timestamp belongs must not crash.
    assert timestamps.parse(1714564984) is None  # type: ignore[arg-type]
    with pytest.raises(timestamps.TimestampError, match="not a string"):
        timestamps.parse_strict(1714564984)  # type: ignore[arg-type]


def test_imports_only_the_standard_library() -> None:
    # The gateway imports this module; its start-up is budgeted (tests/gateway/test_import_weight.py).
    script = (
        "import sys\nbefore = set(sys.modules)\nimport hearth.common.timestamps\n"
        "added = {m.partition('.')[0] for m in set(sys.modules) - before}\n"
        "print(' '.join(sorted(added - set(sys.stdlib_module_names))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["hearth"]
