"""Kubernetes resource quantities (``500m``, ``16Gi``, ``1e3``) as exact decimals, for comparisons and
defaults the operator computes (a quantity is still written back exactly as the user wrote it)."""

from __future__ import annotations

import decimal
import re

#: Kubernetes resource.Quantity syntax: an integer or decimal with a binary (Ki…Ei), decimal (n…E) or
#: exponent suffix. Also the CRD ``pattern`` of quantity fields.
PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SPLIT = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_QUANTITY = re.compile(PATTERN)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse(value: int | str) -> decimal.Decimal:
    """The exact value of a quantity: ``parse("16Gi") == 2**34``, ``parse("500m") == Decimal("0.5")``."""
    if isinstance(value, int):
        return decimal.Decimal(value)
    if not _QUANTITY.match(value):
        raise QuantityError(f'"{value}" is not a Kubernetes quantity (e.g. 500m, 8, 16Gi, 50G, 1e3)')
    match = _SPLIT.match(value)
    assert match is not None  # the full pattern matched
    number, suffix = decimal.Decimal(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))  # e/E exponent


def bytes_of(value: int | str) -> int:
    """A size in whole bytes (rounded up, as Kubernetes rounds byte quantities)."""
    return int(parse(value).to_integral_value(rounding=decimal.ROUND_CEILING))
