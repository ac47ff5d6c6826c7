import re

import pytest

from hearth.common.netaddr import AddressError, ListenAddress


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        (":8080", None, 8080),
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("localhost:0", "localhost", 0),
        ("[::1]:9090", "::1", 9090),
        ("[::]:80", "::", 80),
    ],
)
def test_parses_go_listen_addresses(text: str, host: str | None, port: int) -> None:
    address = ListenAddress.parse(text)
    assert (address.host, address.port) == (host, port)
    assert str(address) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "expected [host]:port"),
        (":http", "port must be a number"),
        (":70000", "port must be a number"),
        ("::1:80", "brackets"),
        ("[::1:80", "unterminated"),
        ("", "expected [host]:port"),
    ],
)
def test_rejects_bad_addresses_naming_them(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=re.escape(message)) as caught:
        ListenAddress.parse(text)
    assert f'"{text}"' in str(caught.value)


def test_overrides_parts() -> None:
    address = ListenAddress.parse(":8000").with_port(9000).with_host("127.0.0.1")
    assert str(address) == "127.0.0.1:9000"
    assert ListenAddress.parse("127.0.0.1:1").with_host("").host is None
