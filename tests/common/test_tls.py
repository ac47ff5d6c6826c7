"""The serving certificate's watcher, on fake time: it picks up a rotated pair within one interval, and a
half-written pair neither replaces the loaded one nor stops the watching."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hearth.common import tls


def _write_pair(directory: Path, hostname: str) -> None:
    cert, key = tls.self_signed_pair([hostname])
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [record.getMessage() for record in caplog.records if record.name == tls.__name__]
    caplog.clear()
    return messages


@pytest.mark.looptime
async def test_the_watcher_reloads_a_rotated_pair_once_per_interval_and_outlives_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=tls.__name__)
    _write_pair(tmp_path, "first.example")
    certificate = tls.ServingCertificate.from_directory(tmp_path, cert_name="tls.crt", key_name="tls.key")
    watcher = asyncio.create_task(certificate.watch(interval=60))
    try:
        _write_pair(tmp_path, "second.example")
        await asyncio.sleep(59)
        assert _messages(caplog) == [], "not before the interval is up"
        await asyncio.sleep(2)
        assert _messages(caplog) == ["serving certificate reloaded"]

        (tmp_path / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf")
        await asyncio.sleep(60)
        assert _messages(caplog) == ["serving certificate not reloaded"]
        assert not watcher.done(), "a broken pair must not stop the watcher"

        _write_pair(tmp_path, "third.example")
        await asyncio.sleep(60)
        assert _messages(caplog) == ["serving certificate reloaded"]
        await asyncio.sleep(600)
        assert _messages(caplog) == [], "an unchanged pair is not reloaded again"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
