"""Label selectors (meta/v1 LabelSelector) as the API embeds them, and the one function that decides whether a
set of labels matches one (:func:`matches`).

The operator (which LLMServices an LLMGateway routes) and the shared gateway process (its route table)
both decide membership with :func:`matches`, so the two can never disagree about which models a gateway
serves. The semantics are Kubernetes' own (``k8s.io/apimachinery/pkg/labels``): every matchLabels pair
and every expression must hold; ``{}`` matches everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from hearth.api.base import ApiModel

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
#: A label key: an optional DNS-subdomain prefix and a name of at most 63 characters (upstream's limit).
MAX_KEY_LENGTH = 317
MAX_VALUE_LENGTH = 63


class LabelSelectorRequirement(ApiModel):
    """One expression of a label selector: a key, an operator and (for In and NotIn) values."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.operator in ['In', 'NotIn']) == "
                    "(has(self.values) && size(self.values) > 0)",
                    "message": "values must be non-empty for In and NotIn, and absent for Exists and "
                    "DoesNotExist",
                    "fieldPath": ".values",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    key: str = pydantic.Field(min_length=1, max_length=MAX_KEY_LENGTH)
    """The label key the expression applies to."""
    operator: Operator
    """In (the label's value is one of values), NotIn (the label is absent or its value is none of values),
    Exists (the label is present, whatever its value) or DoesNotExist (the label is absent)."""
    values: list[str] | None = None
    """The values In and NotIn compare with; must be non-empty for them and absent for Exists and
    DoesNotExist."""

    @pydantic.model_validator(mode="after")
    def _check_values(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "values must be non-empty for In and NotIn, and absent for Exists and DoesNotExist"
            )
        return self


class LabelSelector(ApiModel):
    """A label query over objects (meta/v1 LabelSelector): every matchLabels pair and every
    matchExpressions entry must hold (a logical AND); an empty selector ({}) matches every object."""

    match_labels: dict[str, str] | None = None
    """Labels an object must carry with exactly these values."""
    match_expressions: list[LabelSelectorRequirement] | None = None
    """Expressions an object's labels must all satisfy."""


def _requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "Exists":
        return present
    if requirement.operator == "DoesNotExist":
        return not present
    values = requirement.values or []
    if requirement.operator == "In":
        return present and labels[requirement.key] in values
    # NotIn: an object without the label is not in any set of values (upstream's rule).
    return not present or labels[requirement.key] not in values


def parse(selector: LabelSelector | Mapping[str, Any]) -> LabelSelector:
    """A typed selector from a typed one or from its wire form (a watched object's ``spec.selector``);
    ``pydantic.ValidationError`` (a ValueError) names what is wrong."""
    if isinstance(selector, LabelSelector):
        return selector
    return LabelSelector.model_validate(dict(selector))


def matches(selector: LabelSelector | Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """Whether an object with *labels* is selected by *selector* (typed, or its wire form)."""
    typed = parse(selector)
    labels = labels or {}
    for key, value in (typed.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    return all(_requirement_holds(requirement, labels) for requirement in typed.match_expressions or [])
