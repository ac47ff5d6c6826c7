"""Structured logging for every Hearth process.

One line per event, either logfmt-style text for people or JSON for log pipelines, with the event's fields
passed as ``extra={"fields": {...}}`` rather than interpolated into the message, so they stay queryable.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal

from hearth.common import timestamps

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra`` argument that attaches structured fields to one log record."""
    return {"fields": values}


class _Formatter(logging.Formatter):
    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._format = fmt

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        extra: Mapping[str, Any] = getattr(record, "fields", {})
        entry: dict[str, Any] = {
            "ts": timestamps.format_millis(timestamp),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **extra,
        }
        if record.exc_info:
            # One record per exception; never a traceback per client disconnect (callers count those).
            entry["error"] = self.formatException(record.exc_info)
        if self._format == "json":
            return json.dumps(entry, default=str, separators=(",", ":"))
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in entry.items())


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


def configure(*, level: str = "info", fmt: LogFormat = "text") -> None:
    """Route the root logger to stderr with Hearth's formatter (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is one unstructured line per request; the components count requests in metrics.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
