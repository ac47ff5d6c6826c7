"""Victim choice of an AcceleratorPool (pure, explicit time): every rule of
:mod:`hearth.operator.pools.policy`."""

from __future__ import annotations

import dataclasses
import itertools

from hearth.operator.pools import policy

NOW = 10_000.0
RULES = policy.Rules(devices=2, min_warm=120, idle_grace=30, swap_evictions=4, swap_window=600)


def warm(key: str, **changes: object) -> policy.Member:
    """A member holding one device, idle for 10 minutes and warm for an hour."""
    member = policy.Member(
        key=key,
        accelerators=1,
        replicas=1,
        pods=1,
        wanted=1,
        demand=0,
        warm_since=NOW - 3600,
        last_used=NOW - 600,
    )
    return dataclasses.replace(member, **changes)  # type: ignore[arg-type]


def cold(key: str, **changes: object) -> policy.Member:
    """A member at zero whose gateway holds one request."""
    member = policy.Member(key=key, accelerators=1, replicas=0, pods=0, wanted=1, demand=1)
    return dataclasses.replace(member, **changes)  # type: ignore[arg-type]


def run(
    *members: policy.Member, rules: policy.Rules = RULES, evictions_at: tuple[float, ...] = ()
) -> policy.Plan:
    return policy.plan(rules=rules, members=members, now=NOW, evictions_at=evictions_at)


def victims(result: policy.Plan) -> list[str]:
    return [eviction.victim for eviction in result.evictions]


def reason(result: policy.Plan, key: str) -> str:
    return next(wait.reason for wait in result.waits if wait.key == key)


def test_a_free_device_is_granted_without_evicting() -> None:
    result = run(warm("a"), cold("c"))
    assert result.replicas["c"] == 1
    assert result.evictions == ()
    assert result.waits == ()


def test_the_least_recently_used_idle_member_is_evicted_for_a_cold_one() -> None:
    result = run(warm("a", last_used=NOW - 100), warm("b", last_used=NOW - 500), cold("c"))
    assert victims(result) == ["b"]
    assert result.replicas == {"a": 1, "b": 0, "c": 0}
    assert result.evictions[0].requester == "c"
    assert "evicting b" in reason(result, "c")


def test_a_never_used_member_goes_before_any_used_one() -> None:
    result = run(warm("a", last_used=NOW - 100), warm("b", last_used=None), cold("c"))
    assert victims(result) == ["b"]


def test_a_member_with_requests_in_flight_is_never_evicted() -> None:
    result = run(warm("a", demand=2, last_used=NOW - 900), warm("b", demand=1), cold("c"))
    assert victims(result) == []
    assert result.replicas["c"] == 0
    assert "a: 2 request(s) waiting or in flight" in reason(result, "c")


def test_a_member_whose_demand_is_unknown_is_never_evicted() -> None:
    result = run(warm("a", demand=None), warm("b", demand=None), cold("c"))
    assert victims(result) == []
    assert "demand unknown" in reason(result, "c")


def test_a_pinned_member_is_never_evicted() -> None:
    result = run(warm("a", pinned=True, last_used=NOW - 9000), warm("b", last_used=NOW - 100), cold("c"))
    assert victims(result) == ["b"]
    only_pinned = run(warm("a", pinned=True), warm("b", pinned=True), cold("c"))
    assert victims(only_pinned) == []
    assert "pinned" in reason(only_pinned, "c")


def test_only_members_of_lower_or_equal_priority_are_evicted() -> None:
    result = run(warm("a", priority=5, last_used=NOW - 9000), warm("b", priority=3), cold("c", priority=3))
    assert victims(result) == ["b"]
    higher = run(warm("a", priority=5), warm("b", priority=4), cold("c", priority=3))
    assert victims(higher) == []
    assert "priority 5 > 3" in reason(higher, "c")


def test_a_member_keeps_its_devices_for_the_minimum_warm_time() -> None:
    just_woke = NOW - RULES.min_warm + 1
    result = run(
        warm("a", warm_since=just_woke, last_used=NOW - 600), warm("b", warm_since=just_woke), cold("c")
    )
    assert victims(result) == []
    assert "min warm 120s" in reason(result, "c")
    later = run(warm("a", warm_since=NOW - RULES.min_warm), warm("b", warm_since=just_woke), cold("c"))
    assert victims(later) == ["a"]


def test_a_member_is_evictable_only_after_the_idle_grace() -> None:
    result = run(warm("a", last_used=NOW - 29), warm("b", last_used=NOW - 10), cold("c"))
    assert victims(result) == []
    assert "idle grace 30s" in reason(result, "c")
    assert victims(run(warm("a", last_used=NOW - 30), warm("b", last_used=NOW - 10), cold("c"))) == ["a"]


def test_a_two_device_member_evicts_as_many_members_as_it_needs() -> None:
    result = run(warm("a", last_used=NOW - 100), warm("b", last_used=NOW - 200), cold("big", accelerators=2))
    assert sorted(victims(result)) == ["a", "b"]
    assert sum(eviction.devices for eviction in result.evictions) == 2


def test_a_two_device_victim_makes_room_for_a_one_device_member() -> None:
    big = warm("big", accelerators=2)
    result = run(big, cold("c"))
    assert victims(result) == ["big"]


def test_a_member_needing_more_devices_than_the_pool_has_waits_without_evicting() -> None:
    result = run(warm("a"), cold("huge", accelerators=3))
    assert victims(result) == []
    assert "the pool has 2" in reason(result, "huge")


def test_a_draining_victim_is_waited_for_instead_of_evicting_another() -> None:
    # b was evicted last pass: at 0 replicas, its pod still draining.
    result = run(warm("a"), warm("b", replicas=0, wanted=0, warm_since=None), cold("c"))
    assert victims(result) == []
    assert result.replicas["c"] == 0
    assert reason(result, "c") == "waiting for b to drain"
    gone = run(warm("a"), warm("b", replicas=0, pods=0, wanted=0, warm_since=None), cold("c"))
    assert gone.replicas["c"] == 1


def test_the_swap_limit_stops_evictions_within_its_window() -> None:
    earlier = (NOW - 500, NOW - 400, NOW - 300, NOW - 200)
    result = run(warm("a"), warm("b"), cold("c"), evictions_at=earlier)
    assert victims(result) == []
    assert "swap limit: 4 eviction(s) in the last 600s" in reason(result, "c")
    assert "next is allowed in 100s" in reason(result, "c")
    older = (NOW - 600, NOW - 400, NOW - 300, NOW - 200)
    assert victims(run(warm("a"), warm("b"), cold("c"), evictions_at=older)) == ["a"]


def test_alternating_traffic_does_not_evict_on_every_request() -> None:
    """Two models on one device, requests alternating every 10 s for ten minutes: the newly woken one is
    protected by the minimum warm time, so swaps happen at most once per min_warm (and within the limit)."""
    rules = policy.Rules(devices=1, min_warm=60, idle_grace=0, swap_evictions=4, swap_window=600)
    state = {"a": warm("a", warm_since=0.0, last_used=0.0), "b": cold("b", demand=0, wanted=0)}
    evictions_at: list[float] = []
    requests = 0
    for step in range(60):
        now = step * 10.0
        wanted = "a" if step % 2 == 0 else "b"
        requests += 1
        members = []
        for key, member in state.items():
            demand = 1 if key == wanted else 0
            wants = max(member.replicas, 1 if demand else 0)
            members.append(dataclasses.replace(member, demand=demand, wanted=wants, pods=member.replicas))
        result = policy.plan(rules=rules, members=members, now=now, evictions_at=evictions_at)
        evictions_at.extend(now for _ in result.evictions)
        for member in members:
            replicas = result.replicas[member.key]
            warm_since = member.warm_since if member.replicas > 0 else (now if replicas > 0 else None)
            used = now if member.demand else member.last_used
            state[member.key] = dataclasses.replace(
                member, replicas=replicas, warm_since=warm_since if replicas else None, last_used=used
            )
    assert evictions_at, "the traffic does swap"
    assert len(evictions_at) <= rules.swap_evictions < requests / 10
    gaps = [later - earlier for earlier, later in itertools.pairwise(evictions_at)]
    assert all(gap >= rules.min_warm for gap in gaps), gaps


def test_urgent_members_are_served_before_warm_floor_ones_and_by_priority() -> None:
    result = run(
        warm("a"),
        cold("floor", demand=0, priority=9),
        cold("low", priority=1),
        cold("high", priority=7),
    )
    assert result.replicas["high"] == 1
    assert result.replicas["low"] == 0
    assert result.replicas["floor"] == 0
    assert victims(result) == ["a"]
    assert result.evictions[0].requester == "low"
    assert "scaling.min" in reason(result, "floor")


def test_the_longest_waiting_member_is_served_first_among_equals() -> None:
    result = run(warm("a"), cold("late", waiting_since=NOW - 5), cold("early", waiting_since=NOW - 50))
    assert result.replicas["early"] == 1
    assert result.evictions[0].requester == "late"


def test_a_warm_member_grows_only_into_free_devices() -> None:
    result = run(warm("a", wanted=3, demand=5), warm("b"))
    assert result.replicas["a"] == 1
    assert victims(result) == []
    assert "a warm member never evicts" in reason(result, "a")
    roomy = dataclasses.replace(RULES, devices=4)
    assert run(warm("a", wanted=3, demand=5), warm("b"), rules=roomy).replicas["a"] == 3


def test_scale_downs_are_kept_as_decided() -> None:
    result = run(warm("a", replicas=2, pods=2, wanted=1), cold("c", demand=0, wanted=0))
    assert result.replicas == {"a": 1, "c": 0}
    assert result.in_use == 2
