"""Running the stub as a process: serve until SIGTERM, letting streams in flight finish."""

from __future__ import annotations

import asyncio
import logging

from hearth.common import logs, serve
from hearth.stub import app as stub_app
from hearth.stub.settings import StubSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: What the stub exits with when told to crash (any non-zero status makes the kubelet restart it).
CRASH_STATUS = 1


def run(settings: StubSettings) -> None:
    if settings.crash_on_start:
        log.error("crashing at start, as told (STUB_CRASH_ON_START)")
        raise SystemExit(CRASH_STATUS)
    # Filled, not merely reserved: zeroed memory would be mapped lazily and never count against a limit.
    ballast = b"\x01" * (settings.allocate_mib * MIB)
    if ballast:
        log.info("holding memory, as told (STUB_ALLOCATE_MIB)", extra=logs.fields(mib=settings.allocate_mib))
    asyncio.run(
        serve.serve(
            stub_app.make_app(settings),
            address=settings.listen,
            shutdown_timeout=settings.shutdown_timeout.seconds,
            name="stub",
        )
    )
