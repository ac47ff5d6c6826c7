"""API keys (DESIGN improvement 5): the accepted keys are the files of a directory, a Secret mounted by the
kubelet, one key per file. The directory is re-read when it changes, so keys rotate without a restart:
add a key to the Secret, move clients to it, remove the old one. The reference v0.4's form is one key in one
file (one key of a Secret, :class:`ApiKeyFile`), re-read the same way; while it cannot be read the endpoint
is unavailable (503) rather than closed (401).

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


class ApiKeyFile:
    """One accepted key in one file: one key of a Secret, mounted by the kubelet (the reference v0.4's
    ``spec.endpoint.authentication.secretRef``). Re-read when the file changes, as :class:`ApiKeys`.

    Unlike a directory of keys, a missing, unreadable, oversized or empty file makes the endpoint
    *unavailable* (503), not closed (401): the Secret or its key is absent, which is the operator's
    problem to fix, not the client's key to change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._digest: bytes | None = None
        self._signature: tuple[int, int, int] | None = None
        self._loaded = False
        self.reload()

    @property
    def count(self) -> int:
        return 0 if self._digest is None else 1

    @property
    def available(self) -> bool:
        return self._digest is not None

    def accepts(self, presented: str) -> bool:
        if self._digest is None:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)

    def reload(self) -> bool:
        """Re-read the key if the file changed (or appeared, or went); True if it did."""
        signature = self._scan()
        if self._loaded and signature == self._signature:
            return False
        key = b""
        if signature is not None:
            with contextlib.suppress(OSError):
                key = self._path.read_bytes().strip()
        digest = hashlib.sha256(key).digest() if key else None
        first = not self._loaded
        self._loaded = True
        self._signature = signature
        self._digest = digest
        log.log(
            logging.INFO if digest else logging.WARNING,
            "API key loaded" if first else "API key reloaded",
            extra=logs.fields(
                file=str(self._path),
                keys=self.count,
                note="" if digest else "no key: every request is answered 503 authentication_unavailable",
            ),
        )
        return True

    def _scan(self) -> tuple[int, int, int] | None:
        """Inode, size and modification time of the key file (following the kubelet's ``..data``
        symlink), or None when there is no usable file."""
        try:
            stat = self._path.stat()
        except OSError:
            return None
        if not self._path.is_file() or stat.st_size > MAX_KEY_BYTES:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (the OpenAI SDK's form), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Limited:
    """Access to some models only (a key set's allowlist)."""

    __slots__ = ("models",)

    def __init__(self, models: frozenset[str]) -> None:
        self.models = models

    def allows(self, model: str) -> bool:
        return model in self.models


class Unlimited:
    """Access to every model."""

    __slots__ = ()

    def allows(self, model: str) -> bool:
        return True


UNLIMITED = Unlimited()
Access = Limited | Unlimited


class KeySet:
    """One mounted Secret's keys, and the models they may use (None: every model)."""

    def __init__(self, name: str, keys: ApiKeys | ApiKeyFile, models: frozenset[str] | None = None) -> None:
        self.name = name
        self.keys = keys
        self.models = models


class KeyRing:
    """The keys a gateway accepts: one or more key sets, each optionally limited to some models.

    A dedicated gateway has one set, every key for its one model. A shared gateway has one set per Secret its
    LLMGateway lists (``spec.auth.keys``), mounted under one directory, ``<directory>/<secretName>``; which
    models each set may use is read from the LLMGateway object (:meth:`configure`), so an allowlist changes
    without a restart, and a Secret's keys rotate as a dedicated gateway's do.
    """

    def __init__(self, sets: list[KeySet], *, directory: Path | None = None) -> None:
        self._sets = sets
        self._directory = directory
        #: The one-key files among the sets (checked on every request: kept apart, not searched for).
        self._files = [key_set.keys for key_set in sets if isinstance(key_set.keys, ApiKeyFile)]

    @classmethod
    def single(cls, directory: Path) -> KeyRing:
        return cls([KeySet(directory.name, ApiKeys(directory))])

    @classmethod
    def single_file(cls, path: Path) -> KeyRing:
        """One key in one file: while it cannot be read the ring is not :attr:`available`."""
        return cls([KeySet(path.name, ApiKeyFile(path))])

    @property
    def available(self) -> bool:
        """False while a one-key file cannot be read: requests then get 503, not 401."""
        return all(key_file.available for key_file in self._files)

    @classmethod
    def shared(cls, directory: Path) -> KeyRing:
        """Key sets under *directory*, none accepted until :meth:`configure` names them."""
        return cls([], directory=directory)

    @property
    def count(self) -> int:
        return sum(key_set.keys.count for key_set in self._sets)

    def configure(self, allowlists: dict[str, frozenset[str] | None]) -> None:
        """The key sets to accept: Secret name -> the models its keys may use (None: every model). A
        Secret listed but not mounted (yet) has no keys; a mounted one no longer listed is dropped."""
        assert self._directory is not None, "only a shared gateway's key ring is configured"
        kept = {key_set.name: key_set for key_set in self._sets}
        sets: list[KeySet] = []
        for name, models in sorted(allowlists.items()):
            previous = kept.get(name)
            keys = previous.keys if previous is not None else ApiKeys(self._directory / name)
            sets.append(KeySet(name, keys, models))
        self._sets = sets

    def access(self, presented: str) -> Access | None:
        """What a presented key may use, or None when no set accepts it. Every set is checked (in constant
        time each), so the time taken does not tell which set, if any, holds the key."""
        allowed: set[str] = set()
        unlimited = False
        accepted = False
        for key_set in self._sets:
            if key_set.keys.accepts(presented):
                accepted = True
                if key_set.models is None:
                    unlimited = True
                else:
                    allowed |= key_set.models
        if not accepted:
            return None
        return UNLIMITED if unlimited else Limited(frozenset(allowed))

    def accepts(self, presented: str) -> bool:
        return self.access(presented) is not None

    def reload(self) -> bool:
        changed = False
        for key_set in self._sets:
            changed |= key_set.keys.reload()
        return changed

    async def watch(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload()
