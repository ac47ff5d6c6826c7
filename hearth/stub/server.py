"""Running the stub as a process: serve until SIGTERM, letting streams in flight finish."""

from __future__ import annotations

import asyncio

from hearth.common import serve
from hearth.stub import app as stub_app
from hearth.stub.settings import StubSettings


def run(settings: StubSettings) -> None:
    asyncio.run(
        serve.serve(
            stub_app.make_app(settings),
            address=settings.listen,
            shutdown_timeout=settings.shutdown_timeout.seconds,
            name="stub",
        )
    )
