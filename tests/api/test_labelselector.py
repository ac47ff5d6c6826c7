"""Label selectors: Kubernetes' matching rules (every pair and every expression must hold, {} matches
everything, NotIn matches an absent label), from the typed model and from the wire form alike."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from hearth.api import labelselector

LABELS = {"team": "search", "tier": "gold", "size": "8b"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"team": "search"}}, True),
        ({"matchLabels": {"team": "search", "tier": "silver"}}, False),
        ({"matchLabels": {"absent": "x"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["silver"]}]}, False),
        ({"matchExpressions": [{"key": "absent", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["silver"]}]}, True),
        ({"matchExpressions": [{"key": "absent", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "size", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "absent", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "absent", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "size", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"team": "search"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["gold"]},
                    {"key": "size", "operator": "DoesNotExist"},
                ],
            },
            False,
        ),
    ],
)
def test_a_selector_matches_as_kubernetes_does(selector: dict[str, Any], expected: bool) -> None:
    assert labelselector.matches(selector, LABELS) is expected
    typed = labelselector.LabelSelector.model_validate(selector)
    assert labelselector.matches(typed, LABELS) is expected


def test_an_object_without_labels_is_matched_only_by_selectors_that_need_none() -> None:
    assert labelselector.matches({}, None)
    assert labelselector.matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {})
    assert not labelselector.matches({"matchLabels": {"a": "b"}}, None)


@pytest.mark.parametrize(
    "requirement",
    [
        {"key": "a", "operator": "In"},
        {"key": "a", "operator": "NotIn", "values": []},
        {"key": "a", "operator": "Exists", "values": ["x"]},
        {"key": "a", "operator": "Matches", "values": ["x"]},
    ],
)
def test_malformed_expressions_are_refused(requirement: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        labelselector.matches({"matchExpressions": [requirement]}, LABELS)


def test_the_wire_form_round_trips() -> None:
    wire = {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "Exists"}]}
    assert labelselector.parse(wire).to_wire() == wire
