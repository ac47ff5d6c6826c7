"""The three vLLM gauges the stub exposes, live or overridden through ``/control``, and vLLM's
time-to-first-token histogram (live only; shown once a first token was sent, so a fresh stub's exposition
is exactly the reference's)."""

from __future__ import annotations

import dataclasses
import decimal
import json
import math

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_CACHE = "vllm:kv_cache_usage_perc"
TTFT = "vllm:time_to_first_token_seconds"
CONTENT_TYPE = "text/plain; version=0.0.4"
#: vLLM's own buckets for this histogram (the stub answers fast, the low ones are the useful ones).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class ControlError(ValueError):
    """A ``/control`` body that is not ``{"waiting": n, "running": n, "kv_cache": n}``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Override:
    waiting: float
    running: float
    kv_cache: float

    @classmethod
    def from_body(cls, body: bytes) -> Override:
        """Decode a ``/control`` body; missing fields become 0, as in the reference stub."""
        try:
            data = json.loads(body)
        except ValueError as error:
            raise ControlError(f"invalid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ControlError("expected a JSON object with waiting, running and kv_cache")
        values: dict[str, float] = {}
        for key in ("waiting", "running", "kv_cache"):
            value = data.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError(f"{key} must be a number, got {json.dumps(value)}")
            values[key] = float(value)
        return cls(**values)


class Gauges:
    """Live request counts, replaced wholesale by an override until it is cleared."""

    def __init__(self) -> None:
        self.running = 0
        self.override: Override | None = None
        self._ttft_counts = [0] * len(TTFT_BUCKETS)
        self._ttft_count = 0
        self._ttft_sum = 0.0

    def first_token(self, seconds: float) -> None:
        """Record one request's time to its first token."""
        for index, bound in enumerate(TTFT_BUCKETS):
            if seconds <= bound:
                self._ttft_counts[index] += 1
        self._ttft_count += 1
        self._ttft_sum += seconds

    def exposition(self) -> str:
        if self.override is not None:
            waiting, running, kv_cache = self.override.waiting, self.override.running, self.override.kv_cache
        else:
            # The stub admits every request at once, so nothing ever waits and no KV cache is used.
            waiting, running, kv_cache = 0.0, float(self.running), 0.0
        lines = []
        for name, value in ((WAITING, waiting), (RUNNING, running), (KV_CACHE, kv_cache)):
            lines.append(f"# TYPE {name} gauge\n{name} {format_go_g(value)}\n")
        if self._ttft_count:
            lines.append(f"# TYPE {TTFT} histogram\n")
            for bound, count in zip(TTFT_BUCKETS, self._ttft_counts, strict=True):
                lines.append(f'{TTFT}_bucket{{le="{format_go_g(bound)}"}} {count}\n')
            lines.append(f'{TTFT}_bucket{{le="+Inf"}} {self._ttft_count}\n')
            lines.append(f"{TTFT}_sum {format_go_g(self._ttft_sum)}\n{TTFT}_count {self._ttft_count}\n")
        return "".join(lines)


def format_go_g(value: float) -> str:
    """Format like Go's ``%g`` (shortest round-trip digits; exponent form below 1e-4 or from 1e6 on)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return f"{sign}0"
    parts = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in parts.digits)
    assert isinstance(parts.exponent, int)
    point = len(digits) + parts.exponent  # position of the decimal point within digits
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        fixed = f"0.{'0' * -point}{digits}"
    elif point >= len(digits):
        fixed = digits + "0" * (point - len(digits))
    else:
        fixed = f"{digits[:point]}.{digits[point:]}"
    return sign + fixed
