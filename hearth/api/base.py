"""What every API model shares: camelCase wire names, field docs from attribute docstrings, and the
annotated scalar types (Go durations, quantities, int32) with the schema markers the CRD needs."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import alias_generators

from hearth.api import quantity
from hearth.common import durations


class ApiModel(pydantic.BaseModel):
    """Base of every spec/status object: camelCase on the wire, snake_case in Python, typos refused."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it is written to the API server (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# Go duration strings are kept as strings on the wire and validated by pattern, so the API server refuses
# "5x" with a message naming the field instead of the controller failing later.
DURATION_MAX_LENGTH = 64


def _check_duration(value: str) -> str:
    durations.parse_nanoseconds(value)  # raises DurationError (a ValueError) naming the value
    return value


GoDuration = Annotated[
    str,
    pydantic.AfterValidator(_check_duration),
    pydantic.Field(max_length=DURATION_MAX_LENGTH),
    pydantic.WithJsonSchema(
        {"type": "string", "pattern": durations.PATTERN, "maxLength": DURATION_MAX_LENGTH}, mode="validation"
    ),
]


def _check_quantity(value: int | str) -> int | str:
    quantity.parse(value)  # raises QuantityError (a ValueError) naming the value
    return value


Quantity = Annotated[
    int | str,
    pydantic.AfterValidator(_check_quantity),
    pydantic.WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": quantity.PATTERN,
            "x-kubernetes-int-or-string": True,
        },
        mode="validation",
    ),
]

IntOrString = Annotated[
    int | str,
    pydantic.WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
        mode="validation",
    ),
]

# Go's int32/int64 fields carry their format into the CRD (the API server checks the range); bounds that mean
# something (minimum 0, port ranges) are declared on the fields themselves.
Int32 = Annotated[int, pydantic.Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, pydantic.Field(json_schema_extra={"format": "int64"})]


def nested(model: type[pydantic.BaseModel]) -> Any:
    """A sub-object that defaults to ``{}`` both here and in the CRD, so its fields' defaults always apply.

    The reference CRD leaves such parents without a default, so omitting e.g. ``scaling`` silently skips
    every default inside it (stabilization 0, no drain); defaulting the parent fixes that.
    """
    return pydantic.Field(default_factory=model, json_schema_extra={"default": {}})
