"""Helpers shared by the test suite and the benchmark: running ``hearth`` processes, reading SSE streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FROZEN_BINARY = REPO / "dist" / "hearth"
PYTHON_HEARTH = (sys.executable, "-m", "hearth")

_LISTENING = re.compile(r"msg=listening .*urls=(http://[^,\s]+)")


class HearthProcess:
    """A ``hearth <args>`` subprocess (the one way tests and bench run one): its stderr is collected line by
    line by a thread (optionally appended to *log_path* too), so the process never blocks on a full pipe,
    and the first URL it logs ``listening`` on is noted. Usable from sync tests and, through the ``*_async``
    methods, from async ones."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        executable: Sequence[str] = PYTHON_HEARTH,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.log: list[str] = []
        self.url: str | None = None
        self._listening = threading.Event()
        self._new_line = threading.Condition()
        self._ended = False
        self._log_file = log_path.open("a", encoding="utf-8") if log_path is not None else None
        self.process = subprocess.Popen(
            [*executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, name=f"hearth-{self.process.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            with self._new_line:
                self.log.append(line)
                self._new_line.notify_all()
            if self._log_file is not None:
                self._log_file.write(line)
                self._log_file.flush()
            if self.url is None and (match := _LISTENING.search(line)):
                self.url = match.group(1)
                self._listening.set()
        self._listening.set()  # the process closed its stderr: it will never listen now
        with self._new_line:
            self._ended = True
            self._new_line.notify_all()
        if self._log_file is not None:
            self._log_file.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def wait_listening(self, within_s: float = 30) -> str:
        """The URL of the first ``listening`` log line; fails with the process's log if none comes."""
        self._listening.wait(within_s)
        if self.url is None:
            self.kill()
            raise AssertionError(
                f"hearth {' '.join(self.args)} did not start listening; its log:\n{self.text()}"
            )
        return self.url

    def wait_for_line(self, fragment: str, within_s: float = 30) -> str:
        """The first log line containing *fragment*, once the process has written it."""

        def found() -> str | None:
            return next((line for line in self.log if fragment in line), None)

        with self._new_line:
            self._new_line.wait_for(lambda: found() is not None or self._ended, within_s)
        line = found()
        if line is None:
            raise AssertionError(f"hearth {' '.join(self.args)} never logged {fragment!r}:\n{self.text()}")
        return line

    async def wait_for_line_async(self, fragment: str, within_s: float = 30) -> str:
        return await asyncio.to_thread(self.wait_for_line, fragment, within_s)

    def text(self, last_chars: int = 20000) -> str:
        return "".join(self.log)[-last_chars:]

    def send_signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()

    def wait(self, within_s: float = 30) -> int:
        """The exit code, once the process has exited and its log is read to the end."""
        code = self.process.wait(within_s)
        self._reader.join(within_s)
        return code

    def stop(self, sig: signal.Signals = signal.SIGTERM, within_s: float = 15) -> int:
        """SIGTERM (or *sig*) first: a PyInstaller onefile bootloader forwards it to its Python child,
        whereas SIGKILL would orphan the child (and leave our stderr pipe open)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.wait(within_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait()

    async def wait_async(self, within_s: float = 30) -> int:
        return await asyncio.to_thread(self.wait, within_s)

    async def stop_async(self) -> int:
        return await asyncio.to_thread(self.stop)


@contextlib.asynccontextmanager
async def running_hearth(
    args: Sequence[str],
    *,
    executable: Sequence[str] = PYTHON_HEARTH,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> AsyncIterator[HearthProcess]:
    """Start ``hearth <args>`` (which must log a ``listening`` line) and stop it afterwards."""
    running = HearthProcess(args, executable=executable, env=env, log_path=log_path)
    try:
        await asyncio.to_thread(running.wait_listening)
        yield running
    finally:
        await running.stop_async()


def split_sse(body: bytes) -> list[bytes]:
    """Split a complete SSE body into its events, asserting every event ends with a blank line."""
    assert body.endswith(b"\n\n"), f"stream does not end with a blank line: {body[-40:]!r}"
    return [event + b"\n\n" for event in body[:-2].split(b"\n\n")]
