"""Helpers shared by the test suite: starting hearth processes and reading SSE streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FROZEN_BINARY = REPO / "dist" / "hearth"
PYTHON_HEARTH = (sys.executable, "-m", "hearth")

_LISTENING = re.compile(r"msg=listening .*urls=(http://[^,\s]+)")


class HearthProcess:
    """A running ``hearth`` subprocess and the first URL it reported listening on."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log
        self._drain = asyncio.ensure_future(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace"))

    async def stop(self) -> None:
        """SIGTERM first: a PyInstaller onefile bootloader forwards it to its Python child, whereas SIGKILL
        would orphan the child (and leave our stderr pipe open)."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await self.wait(within_s=15)
                return
            except TimeoutError:
                self.process.kill()
        await self.wait()

    async def wait(self, within_s: float = 30) -> int:
        code = await asyncio.wait_for(self.process.wait(), within_s)
        await self._drain
        return code


@contextlib.asynccontextmanager
async def running_hearth(
    args: Sequence[str], *, executable: Sequence[str] = PYTHON_HEARTH, env: dict[str, str] | None = None
) -> AsyncIterator[HearthProcess]:
    """Start ``hearth <args>`` (which must log a ``listening`` line) and stop it afterwards."""
    process = await asyncio.create_subprocess_exec(
        *executable,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    log: list[str] = []
    assert process.stderr is not None
    try:
        url = await asyncio.wait_for(_await_listening(process.stderr, log), 30)
    except BaseException:
        process.kill()
        await process.wait()
        raise AssertionError("hearth did not start listening; its log:\n" + "".join(log)) from None
    running = HearthProcess(process, url, log)
    try:
        yield running
    finally:
        await running.stop()


async def _await_listening(stream: asyncio.StreamReader, log: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise EOFError("process exited before listening")
        log.append(line)
        match = _LISTENING.search(line)
        if match:
            return match.group(1)


def split_sse(body: bytes) -> list[bytes]:
    """Split a complete SSE body into its events, asserting every event ends with a blank line."""
    assert body.endswith(b"\n\n"), f"stream does not end with a blank line: {body[-40:]!r}"
    return [event + b"\n\n" for event in body[:-2].split(b"\n\n")]
