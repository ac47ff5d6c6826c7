"""Running an aiohttp application as a long-lived server that drains gracefully on SIGTERM.

Kubernetes sends SIGTERM and waits ``terminationGracePeriodSeconds``; a server that exits at once cuts every
open stream. Here SIGTERM (or SIGINT) stops the listener first, so new connections are refused, then waits
up to ``shutdown_timeout`` for requests in flight to finish before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http_exceptions, web

from hearth.common import logs, netaddr

log = logging.getLogger(__name__)

#: Called once the listener is bound, with the base URLs it answers on (port 0 resolved).
StartedHook = Callable[[list[str]], Awaitable[None] | None]


async def serve(
    app: web.Application,
    *,
    address: netaddr.ListenAddress,
    shutdown_timeout: float,
    name: str,
    stop: asyncio.Event | None = None,
    on_started: StartedHook | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
    **server_options: Any,
) -> None:
    """Serve *app* on *address* until SIGTERM/SIGINT (or *stop* is set), then drain and return.

    *before_shutdown* runs after the signal while the listener is still open (e.g. to fail readiness and
    keep serving until the endpoint is gone); *server_options* go to aiohttp's request handler (limits).
    """
    runner = web.AppRunner(
        app, shutdown_timeout=shutdown_timeout, handle_signals=False, access_log=None, **server_options
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host=address.host, port=address.port, reuse_address=True)
        await site.start()
        urls = [_url(bound) for bound in runner.addresses]
        log.info("listening", extra=logs.fields(component=name, urls=",".join(urls)))
        if on_started is not None:
            result = on_started(urls)
            if result is not None:
                await result
        stop_event = stop or asyncio.Event()
        signal_received = _install_signal_handlers(stop_event)
        await stop_event.wait()
        log.info(
            "shutting down: refusing new connections, draining requests in flight",
            extra=logs.fields(
                component=name, signal=signal_received.get("name", "none"), timeout_s=shutdown_timeout
            ),
        )
        if before_shutdown is not None:
            await before_shutdown()
    finally:
        await runner.cleanup()
        log.info("stopped", extra=logs.fields(component=name))


class _MalformedRequestFilter(logging.Filter):
    """aiohttp logs every unparsable request with a traceback at ERROR; a client (or attacker) sending
    garbage would flood the log. Keep one line per interval, with the count of what was refused."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self._interval = interval
        self._last = 0.0
        self.refused = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, http_exceptions.HttpProcessingError):
            return True
        self.refused += 1
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        self._last = now
        record.msg, record.args, record.exc_info, record.exc_text = (
            "refused malformed requests",
            (),
            None,
            None,
        )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.fields = {"total": self.refused, "last_error": str(error).splitlines()[0][:200]}
        return True


MALFORMED_REQUESTS = _MalformedRequestFilter()
logging.getLogger("aiohttp.server").addFilter(MALFORMED_REQUESTS)


def _install_signal_handlers(stop: asyncio.Event) -> dict[str, str]:
    received: dict[str, str] = {}
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        received["name"] = signum.name
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return received


def _url(bound: object) -> str:
    # AppRunner.addresses yields (host, port) for IPv4 and (host, port, flow, scope) for IPv6.
    if isinstance(bound, tuple) and len(bound) >= 2:
        host, port = str(bound[0]), int(bound[1])
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"
    return str(bound)
