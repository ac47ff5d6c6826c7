import pytest

from hearth.common import durations
from hearth.common.durations import HOUR, MICROSECOND, MILLISECOND, MINUTE, SECOND, Duration, DurationError

# (text, nanoseconds) pairs Go's time.ParseDuration accepts.
VALID = [
    ("0", 0),
    ("+0", 0),
    ("-0", 0),
    ("0s", 0),
    ("5s", 5 * SECOND),
    ("30s", 30 * SECOND),
    ("1478s", 1478 * SECOND),
    ("-5s", -5 * SECOND),
    ("+5s", 5 * SECOND),
    ("5.0s", 5 * SECOND),
    ("5.6s", 5 * SECOND + 600 * MILLISECOND),
    ("5.s", 5 * SECOND),
    (".5s", 500 * MILLISECOND),
    ("1.004s", SECOND + 4 * MILLISECOND),
    ("10ns", 10),
    ("11us", 11 * MICROSECOND),
    ("12\u00b5s", 12 * MICROSECOND),
    ("12\u03bcs", 12 * MICROSECOND),
    ("13ms", 13 * MILLISECOND),
    ("14s", 14 * SECOND),
    ("15m", 15 * MINUTE),
    ("16h", 16 * HOUR),
    ("3h30m", 3 * HOUR + 30 * MINUTE),
    ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
    ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MILLISECOND)),
    ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5 * MICROSECOND + 6),
    ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
    ("52763797000ns", 52763797000),
    ("0.3333333333333333333h", 20 * MINUTE),
    ("9223372036854775807ns", 2**63 - 1),
    ("-9223372036854775808ns", -(2**63)),
]

INVALID = [
    ("", "empty"),
    ("3", "missing unit"),
    ("-", "empty"),
    ("s", "expected a number"),
    (".", "expected a number"),
    ("-.", "expected a number"),
    (".s", "expected a number"),
    ("+.s", "expected a number"),
    ("5x", 'unknown unit "x"'),
    ("1d", 'unknown unit "d"'),
    ("5 s", 'unknown unit " s"'),
    ("3000000h", "out of range"),
    ("9223372036854775808ns", "out of range"),
]


@pytest.mark.parametrize(("text", "nanos"), VALID)
def test_parses_what_go_parses(text: str, nanos: int) -> None:
    assert durations.parse_nanoseconds(text) == nanos
    assert durations.is_valid(text)
    assert durations.matches_pattern(text), "the CRD pattern must accept every valid duration"


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_rejects_what_go_rejects_with_a_message_naming_the_input(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        durations.parse_nanoseconds(text)
    assert message in str(caught.value)
    assert f'"{text}"' in str(caught.value)
    assert not durations.is_valid(text)


@pytest.mark.parametrize("text", [text for text, message in INVALID if "out of range" not in message])
def test_pattern_rejects_syntax_errors(text: str) -> None:
    assert not durations.matches_pattern(text)


# (nanoseconds, Go's Duration.String()) pairs.
FORMATTED = [
    (0, "0s"),
    (1, "1ns"),
    (1100, "1.1\u00b5s"),
    (2200 * MICROSECOND, "2.2ms"),
    (500 * MILLISECOND, "500ms"),
    (3300 * MILLISECOND, "3.3s"),
    (10 * SECOND, "10s"),
    (90 * SECOND, "1m30s"),
    (5 * MINUTE, "5m0s"),
    (2 * MINUTE, "2m0s"),
    (HOUR, "1h0m0s"),
    (4 * MINUTE + 5 * SECOND, "4m5s"),
    (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"),
    (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"),
    (8 * MINUTE + 1, "8m0.000000001s"),
    (-(5 * MINUTE), "-5m0s"),
    (-1, "-1ns"),
    (2**63 - 1, "2562047h47m16.854775807s"),
    (-(2**63), "-2562047h47m16.854775808s"),
]


@pytest.mark.parametrize(("nanos", "text"), FORMATTED)
def test_formats_like_go(nanos: int, text: str) -> None:
    assert durations.format_nanoseconds(nanos) == text
    assert durations.parse_nanoseconds(text) == nanos, "formatting must round-trip"


def test_duration_value_object() -> None:
    five_minutes = Duration.parse("5m")
    assert str(five_minutes) == "5m0s"
    assert five_minutes.seconds == 300.0
    assert five_minutes.whole_seconds == 300
    assert Duration.parse("-2.9s").whole_seconds == -2, "truncates toward zero like Go"
    assert Duration.from_seconds(0.25) == Duration.parse("250ms")
    assert not Duration(0)
    assert Duration.parse("1s") < Duration.parse("1m")
