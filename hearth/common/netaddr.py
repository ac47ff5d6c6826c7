"""Listen addresses in Go's ``host:port`` form (``:8080``, ``127.0.0.1:8000``, ``[::1]:9090``).

The reference components are configured with Go listen strings (``HEARTH_LISTEN_ADDR=:8080``); an empty host
means every interface, as it does for Go's ``net.Listen``.
"""

from __future__ import annotations

import dataclasses


class AddressError(ValueError):
    """A listen address that is not ``[host]:port``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where a server binds. ``host`` is ``None`` for every interface."""

    host: str | None
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        host, separator, port_text = text.rpartition(":")
        if not separator:
            raise AddressError(f'invalid listen address "{text}": expected [host]:port, e.g. ":8000"')
        if host.startswith("["):
            if not host.endswith("]"):
                raise AddressError(f'invalid listen address "{text}": unterminated IPv6 bracket')
            host = host[1:-1]
        elif ":" in host:
            raise AddressError(
                f'invalid listen address "{text}": put an IPv6 host in brackets, e.g. "[::1]:8000"'
            )
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise AddressError(f'invalid listen address "{text}": port must be a number from 0 to 65535')
        return cls(host=host or None, port=int(port_text))

    def __str__(self) -> str:
        if self.host is None:
            return f":{self.port}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    def with_port(self, port: int) -> ListenAddress:
        return dataclasses.replace(self, port=port)

    def with_host(self, host: str | None) -> ListenAddress:
        return dataclasses.replace(self, host=host or None)
