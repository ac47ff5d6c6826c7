"""Running a process's main coroutine on uvloop when it is installed, on asyncio's own loop otherwise.

uvloop (libuv, in C) is a drop-in event loop that cuts the per-request CPU of the gateway's proxy path
(bench/gateway.py measures both); without it (a platform it has no wheel for) everything works the same,
only slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None (asyncio's default loop) when uvloop is absent."""
    try:
        import uvloop  # optional: imported only where a process starts its loop
    except ImportError:
        return None
    return uvloop.new_event_loop


def name() -> str:
    """Which loop :func:`run` uses: ``uvloop`` or ``asyncio``."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
