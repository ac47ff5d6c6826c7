"""API keys (DESIGN improvement 5): the accepted keys are the files of a directory, a Secret mounted by the
kubelet, one key per file. The directory is re-read when it changes, so keys rotate without a restart:
add a key to the Secret, move clients to it, remove the old one.

Only SHA-256 digests are kept, and a presented key is compared with every digest in constant time, so
neither timing nor a memory dump reveals a key. Keys never reach a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from pathlib import Path

from hearth.common import logs

log = logging.getLogger(__name__)

#: How often the directory is checked for a change (the kubelet itself syncs Secrets about once a minute).
RELOAD_SECONDS = 5.0
#: A key file larger than this is not a key (and is not read into memory).
MAX_KEY_BYTES = 4096


class ApiKeys:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._digests: tuple[bytes, ...] = ()
        self._signature: tuple[tuple[str, int, int, int], ...] | None = None
        self.reload()

    @property
    def count(self) -> int:
        return len(self._digests)

    def accepts(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        # No early exit: the time taken does not depend on which key (if any) matched.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def reload(self) -> bool:
        """Re-read the keys if the directory changed; True if it did."""
        signature = self._scan()
        if signature == self._signature:
            return False
        digests: list[bytes] = []
        for name, *_ in signature:
            with contextlib.suppress(OSError):
                key = (self._directory / name).read_bytes().strip()
                if key:
                    digests.append(hashlib.sha256(key).digest())
        first = self._signature is None
        self._signature = signature
        self._digests = tuple(digests)
        log.log(
            logging.INFO if digests else logging.WARNING,
            "API keys loaded" if first else "API keys reloaded",
            extra=logs.fields(
                directory=str(self._directory),
                keys=len(digests),
                note="" if digests else "no key: every request is refused with 401",
            ),
        )
        return True

    def _scan(self) -> tuple[tuple[str, int, int, int], ...]:
        """Name, inode, size and modification time of each key file. The kubelet swaps a Secret volume's
        contents atomically (a `..data` symlink to a new directory), so a changed key is a new file."""
        entries = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self._directory):
                if entry.name.startswith("."):
                    continue  # the kubelet's ..data and timestamped directories
                with contextlib.suppress(OSError):
                    stat = entry.stat()  # follows the symlink to the current data
                    if entry.is_file() and stat.st_size <= MAX_KEY_BYTES:
                        entries.append((entry.name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(entries))

    async def watch(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload()


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (the OpenAI SDK's form), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
