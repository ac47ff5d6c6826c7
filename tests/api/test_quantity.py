from decimal import Decimal

import pytest

from hearth.api import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        (8, Decimal(8)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("16Gi", Decimal(16 * 2**30)),
        ("50Gi", Decimal(50 * 2**30)),
        ("50G", Decimal(50 * 10**9)),
        ("128974848", Decimal(128974848)),
        ("129e6", Decimal(129 * 10**6)),
        ("1E3", Decimal(1000)),
        ("100n", Decimal("0.0000001")),
        ("+2Ki", Decimal(2048)),
        ("-1k", Decimal(-1000)),
        (".5Mi", Decimal(2**19)),
    ],
)
def test_parses_quantities_exactly(text: int | str, value: Decimal) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "16GB", "1.2.3", "5 Gi", "1e", "0x10"])
def test_refuses_non_quantities(text: str) -> None:
    with pytest.raises(quantity.QuantityError, match="is not a Kubernetes quantity"):
        quantity.parse(text)


def test_bytes_round_up() -> None:
    assert quantity.bytes_of("1500m") == 2
    assert quantity.bytes_of("1Ki") == 1024
