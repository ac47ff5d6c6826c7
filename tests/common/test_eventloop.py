"""The processes' event loop: uvloop when installed, asyncio's own otherwise (same behaviour, more CPU)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from hearth.common import eventloop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_runs_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.name() == "uvloop"
    assert eventloop.run(_loop_module()) == "uvloop"


def test_falls_back_to_the_asyncio_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what a platform without its wheel sees: ImportError
    assert eventloop.name() == "asyncio"
    assert eventloop.run(_loop_module()) == "asyncio"
