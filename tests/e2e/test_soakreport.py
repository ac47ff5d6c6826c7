"""The soak's report from made-up measurements: counts, reasons, percentiles, idle time and the verdict."""

from __future__ import annotations

import itertools
import json

import pytest

from hearth.e2e import soakreport, soaktraffic
from hearth.e2e.soakreport import IdleWrites, Memory, Outcome, SoakReport

MIB = 1024 * 1024


def _report(
    outcomes: list[Outcome], *, gateway_end: int = 100 * MIB, writes: IdleWrites | None = None
) -> SoakReport:
    return SoakReport(
        seed=7,
        duration_seconds=120.0,
        models=("a", "b"),
        outcomes=tuple(outcomes),
        wakes=3,
        swaps=1,
        memory=(
            Memory("gateway", 100 * MIB, gateway_end, ("gw-1",), ("gw-1",)),
            Memory("operator", 80 * MIB, 82 * MIB, ("op-1",), ("op-1",)),
        ),
        idle_writes=writes or IdleWrites(60.0, {"Lease": 12}),
    )


def _answered(sent: float, first: float, *, cold: bool = False) -> Outcome:
    return Outcome("a", sent, sent + first + 0.4, cold, first)


def test_a_clean_soak_passes() -> None:
    report = _report([_answered(0, 6.0, cold=True), _answered(1, 0.1), _answered(2, 0.2)])
    assert (report.sent, report.answered, report.lost) == (3, 3, 0)
    assert report.failures() == []
    assert "verdict: PASS" in report.text()
    document = report.to_json()
    assert document["passed"] is True
    assert document["first_token_seconds"]["cold"] == {"count": 1, "p50": 6.0, "p99": 6.0}
    json.dumps(document)  # serializable as it is


def test_a_lost_request_fails_the_soak_with_its_reason() -> None:
    """The fault made on purpose: one request of the two-minute run was refused, one timed out."""
    outcomes = [
        _answered(0, 0.1),
        Outcome("b", 30, 30.2, False, None, "HTTP 503 no_capacity"),
        Outcome("a", 40, 340, False, None, "timeout after 300s"),
        Outcome("b", 50, 50.1, False, None, "HTTP 503 no_capacity"),
    ]
    report = _report(outcomes)
    assert report.lost == 3
    assert report.reasons() == {"HTTP 503 no_capacity": 2, "timeout after 300s": 1}
    assert report.failures() == ["3 of 4 requests lost"]
    text = report.text()
    assert "lost: 2 x HTTP 503 no_capacity" in text
    assert "verdict: FAIL: 3 of 4 requests lost" in text
    assert report.to_json()["passed"] is False


def test_rss_growth_beyond_ten_percent_fails() -> None:
    report = _report([_answered(0, 0.1)], gateway_end=111 * MIB)
    assert report.failures() == ["gateway RSS grew +11.0% (limit +10%)"]
    assert _report([_answered(0, 0.1)], gateway_end=109 * MIB).failures() == []


def test_a_restarted_component_is_named() -> None:
    memory = Memory("operator", 10 * MIB, 10 * MIB, ("op-1",), ("op-2",))
    assert memory.restarted
    assert "pods changed: op-2" in memory.describe()


def test_warm_and_cold_latencies_are_apart() -> None:
    warm = [_answered(i, 0.01 * (i + 1)) for i in range(100)]
    cold = [_answered(200 + i, 5.0 + i, cold=True) for i in range(4)]
    report = _report(warm + cold)
    assert report.latency(cold=False) == soakreport.Latency(100, 0.50, 0.99)
    assert report.latency(cold=True) == soakreport.Latency(4, 6.0, 8.0)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, None), ([3.0], 0.99, 3.0), ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0), ([1.0, 2.0], 0.99, 2.0)],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float | None) -> None:
    assert soakreport.percentile(values, fraction) == expected


def test_idle_time_is_outside_requests_and_their_settling() -> None:
    outcomes = [
        Outcome("a", 10, 12, False, 0.1),
        Outcome("a", 11, 20, False, 0.1),
        Outcome("b", 100, 101, False, 1),
    ]
    busy = soakreport.busy_intervals(outcomes, settle=30)
    assert busy == [(10, 50), (100, 131)]
    idle = soakreport.idle_intervals(busy, 0, 200)
    assert idle == [(0, 10), (50, 100), (131, 200)]
    writes = IdleWrites.of([(5, "Lease"), (30, "Deployment"), (60, "Lease"), (140, "LLMService")], idle)
    assert writes.by_kind == {"LLMService": 1, "Lease": 2}
    assert writes.idle_seconds == 129
    assert writes.per_minute == pytest.approx(3 / (129 / 60))


def test_no_idle_time_is_said_so() -> None:
    writes = IdleWrites.of([(1, "Lease")], [])
    assert writes.per_minute is None
    assert "no idle time" in writes.describe()


def test_minute_line_counts_in_flight_as_sent() -> None:
    line = soakreport.minute_line(
        120, [_answered(0, 0.1), Outcome("a", 1, 2, False, None, "x")], in_flight=2, wakes=4, swaps=1
    )
    assert line == "soak  2.0 min: 4 sent, 1 answered, 1 lost, 2 in flight; wakes 4, swaps 1"


def test_traffic_is_seeded_bounded_and_has_gaps() -> None:
    models = ("a", "b", "c")
    first = soaktraffic.schedule(42, 600, models, max_requests=10_000)
    assert first == soaktraffic.schedule(42, 600, models, max_requests=10_000)
    assert first != soaktraffic.schedule(43, 600, models, max_requests=10_000)
    assert all(0 < planned.at < 600 for planned in first)
    assert {planned.model for planned in first} == set(models)
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(first)]
    assert max(gaps) > 30  # idle gaps long enough for models to go to zero
    assert len(soaktraffic.schedule(42, 600, models, max_requests=5)) == 5


def test_weights_steer_the_traffic() -> None:
    planned = soaktraffic.schedule(1, 3600, ("a", "b"), max_requests=10_000, weights=[1.0, 0.0])
    assert {request.model for request in planned} == {"a"}


def test_lost_requests_are_counted_by_model() -> None:
    report = _report(
        [Outcome("b", 1, 2, False, None, "x"), Outcome("a", 1, 2, False, None, "y"), _answered(0, 1)]
    )
    assert report.lost_by_model() == {"a": 1, "b": 1}
    assert "lost by model: a 1, b 1" in report.text()


def test_a_cut_stream_says_how_it_ended() -> None:
    from hearth.e2e import soak

    assert soak.cut_short([]) == "the stream ended without [DONE] (cut before any token)"
    assert (
        soak.cut_short([b'data: {"choices": []}'])
        == "the stream ended without [DONE] (cut after 1 data events)"
    )
    error = b'data: {"error": {"code": "backend_unavailable", "message": "m"}}'
    assert (
        soak.cut_short([b'data: {"choices": []}', error]) == "the stream ended with error backend_unavailable"
    )
