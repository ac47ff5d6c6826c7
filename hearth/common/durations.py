"""Go ``time.Duration`` parsing and formatting.

Hearth's manifests, flags and environment variables carry durations in Go syntax (``500ms``, ``1h2m3.5s``)
because the reference implementation is written in Go and its manifests must work unchanged. The operator
also writes durations back into gateway env vars using Go's own formatting (``5m0s``), so formatting must
match ``Duration.String()`` byte for byte.
"""

from __future__ import annotations

import dataclasses
import re

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_VALID_UNITS = "valid units: ns, us, \u00b5s, ms, s, m, h"

# Go durations are int64 nanoseconds; anything beyond is an overflow error there, so it is here too.
_MAX_NANOS = 2**63 - 1

#: A regular expression accepting exactly what :func:`parse` accepts (used as a CRD ``pattern``).
# The micro signs are literal characters: the API server checks CRD patterns with Go's RE2 (no \u escape).
PATTERN = "^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$"
_PATTERN_RE = re.compile(PATTERN)


class DurationError(ValueError):
    """A string that is not a valid Go duration."""


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class Duration:
    """A Go-compatible duration: a whole number of nanoseconds."""

    nanoseconds: int

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(parse_nanoseconds(text))

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        return cls(round(seconds * SECOND))

    @property
    def seconds(self) -> float:
        return self.nanoseconds / SECOND

    @property
    def whole_seconds(self) -> int:
        """Seconds truncated toward zero, as Go's ``int(d.Seconds())`` does."""
        whole = abs(self.nanoseconds) // SECOND
        return whole if self.nanoseconds >= 0 else -whole

    def __str__(self) -> str:
        return format_nanoseconds(self.nanoseconds)

    def __bool__(self) -> bool:
        return self.nanoseconds != 0


def is_valid(text: str) -> bool:
    """Whether *text* parses as a Go duration (syntax and int64 range)."""
    try:
        parse_nanoseconds(text)
    except DurationError:
        return False
    return True


def parse_nanoseconds(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds, with Go's error cases.

    Accepts an optional sign followed by one or more ``<decimal><unit>`` terms; a bare ``0`` is the only
    unitless value Go allows.
    """
    if not isinstance(text, str):
        raise DurationError(f"invalid Go duration {text!r}: not a string")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if rest == "":
        raise DurationError(f'invalid Go duration "{text}": empty (e.g. 500ms, 10s, 5m0s, 1h30m)')
    total = 0
    while rest:
        match = re.match(r"([0-9]*)(\.([0-9]*))?", rest)
        assert match is not None  # the pattern can match the empty string
        whole, dot, fraction = match.group(1), match.group(2), match.group(3) or ""
        if not whole and not fraction:
            raise DurationError(f'invalid Go duration "{text}": expected a number before each unit')
        rest = rest[match.end() :]
        unit_match = re.match(r"[^0-9.]*", rest)
        assert unit_match is not None
        unit = unit_match.group(0)
        rest = rest[unit_match.end() :]
        if not unit:
            raise DurationError(f'invalid Go duration "{text}": missing unit (e.g. 10s or 500ms)')
        if unit not in _UNITS:
            raise DurationError(f'invalid Go duration "{text}": unknown unit "{unit}" ({_VALID_UNITS})')
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if dot and fraction:
            value += _fraction_nanoseconds(fraction, scale)
        total += value
        if total > _MAX_NANOS + (1 if negative else 0):
            raise DurationError(f'invalid Go duration "{text}": out of range (more than about 292 years)')
    return -total if negative else total


def _fraction_nanoseconds(fraction: str, scale: int) -> int:
    """Nanoseconds of ``0.<fraction>`` units, computed as Go does (digits past int64 precision dropped, then
    one float64 multiplication), so edge cases such as ``0.3333333333333333333h`` give Go's exact answer."""
    digits = 0
    divisor = 1.0
    for char in fraction:
        if digits > (2**63 - 1) // 10:
            break
        digits = digits * 10 + int(char)
        divisor *= 10
    return int(float(digits) * (float(scale) / divisor))


def format_nanoseconds(nanos: int) -> str:
    """Format like Go's ``Duration.String()``: ``0s``, ``1.5µs``, ``500ms``, ``5m0s``, ``1h2m3.5s``."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    magnitude = abs(nanos)
    if magnitude < SECOND:
        if magnitude < MICROSECOND:
            return f"{sign}{magnitude}ns"
        if magnitude < MILLISECOND:
            return f"{sign}{_decimal(magnitude, MICROSECOND)}\u00b5s"
        return f"{sign}{_decimal(magnitude, MILLISECOND)}ms"
    hours, remainder = divmod(magnitude, HOUR)
    minutes, remainder = divmod(remainder, MINUTE)
    text = f"{_decimal(remainder, SECOND)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    """``value / unit`` in decimal, with trailing fractional zeros (and a bare point) removed."""
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


def matches_pattern(text: str) -> bool:
    """Whether *text* matches :data:`PATTERN` (syntax only, no range check)."""
    return _PATTERN_RE.match(text) is not None
