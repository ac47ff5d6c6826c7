"""The built-in autoscaler's decisions, with explicit (fake) time."""

from __future__ import annotations

import pytest

from hearth.operator.autoscaling.scaling import History, decide, recommend


@pytest.mark.parametrize(
    ("demand", "target", "minimum", "maximum", "replicas"),
    [
        (0, 10, 0, 3, 0),
        (1, 10, 0, 3, 1),
        (10, 10, 0, 3, 1),
        (11, 10, 0, 3, 2),
        (100, 10, 0, 3, 3),
        (0, 10, 1, 3, 1),
        (3, 1, 0, 2, 2),
    ],
)
def test_recommendation_is_ceil_demand_over_target_clamped(
    demand: int, target: int, minimum: int, maximum: int, replicas: int
) -> None:
    assert recommend(demand=demand, target=target, minimum=minimum, maximum=maximum) == replicas


def _run(history: History, steps: list[tuple[float, int, int]], window: float = 60) -> list[int | None]:
    results = []
    for now, demand, current in steps:
        decision = decide(
            history=history,
            now=now,
            demand=demand,
            current=current,
            target=1,
            minimum=0,
            maximum=4,
            stabilization=window,
        )
        results.append(None if decision is None else decision.replicas)
    return results


def test_scales_up_at_once_and_down_only_after_a_full_window_of_lower_demand() -> None:
    history = History(started=0)
    assert _run(history, [(70, 3, 1)]) == [3], "up at once"
    assert _run(history, [(80, 1, 3), (100, 1, 3), (131, 1, 3), (139, 1, 3)]) == [None] * 4, (
        "the 3 stands until the look at 80 s saw less, so it is in force until 140 s"
    )
    assert _run(history, [(140, 1, 3)]) == [1], "down a full window after lower demand was first seen"
    assert _run(history, [(150, 0, 1), (209, 0, 1)]) == [None, None]
    assert _run(history, [(210, 0, 1)]) == [0], "zero only after demand was seen at 0 for the whole window"


def test_a_scale_down_never_comes_sooner_than_a_window_after_lower_demand_was_first_seen() -> None:
    history = History(started=0)
    # Looks every 2 s; demand 2 until 99, then 0 (first seen at 101). The window is 15 s.
    steps = [(float(now), 2 if now < 100 else 0, 2) for now in range(1, 130, 2)]
    results = _run(history, steps, window=15)
    first_down = next(now for (now, _, _), result in zip(steps, results, strict=True) if result is not None)
    assert first_down >= 101 + 15


def test_a_new_leader_never_scales_down_before_observing_a_full_window() -> None:
    history = History(started=1000)  # e.g. the operator just restarted, under low demand
    assert _run(history, [(1001, 0, 2), (1030, 0, 2), (1059, 0, 2)]) == [None, None, None]
    assert _run(history, [(1061, 0, 2)]) == [0]


def test_a_spike_inside_the_window_holds_replicas() -> None:
    history = History(started=0)
    steps = [(0, 0, 2), (30, 2, 2), (61, 0, 2), (120, 0, 2), (121, 0, 2)]
    assert _run(history, steps) == [None, None, None, None, 0], (
        "the spike seen at 30 s stands until the look at 61 s, so it holds 2 until 121 s"
    )


def test_zero_stabilization_scales_down_immediately() -> None:
    history = History(started=0)
    assert _run(history, [(1, 0, 3)], window=0) == [0]
