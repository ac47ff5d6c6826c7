"""What can go wrong between the gateway and a backend, and how each failure reaches the client.

Before the backend's answer has begun, every failure is an OpenAI-shaped 502 or 504 (or, inside a stream the
gateway already committed, the same error as an SSE event); failures where nothing reached the backend may
be retried on another ready endpoint. Once an answer is flowing, a cut must reach the client as a cut:
the downstream connection is closed without completing the body, never ended cleanly. Each kind of failure
is logged once per interval with a count, never one traceback per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import aiohttp
from aiohttp import web

from hearth.common import logs, throttle
from hearth.gateway.forward import upstream_client

log = logging.getLogger(__name__)

#: Everything a backend exchange can raise that is the backend's (or the network's) fault.
ERRORS = (upstream_client.UpstreamClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    status: int
    code: str
    message: str
    #: Nothing reached the backend, so the request may go to another ready endpoint.
    retryable: bool = False
    kind: str = "bad_gateway"


UNREACHABLE = Failure(502, "backend_unreachable", "could not reach the backend", retryable=True)
CONNECT_TIMEOUT = Failure(
    504, "backend_timeout", "timed out connecting to the backend", retryable=True, kind="gateway_timeout"
)
TIMEOUT = Failure(504, "backend_timeout", "the backend did not answer in time", kind="gateway_timeout")
FAILED = Failure(502, "backend_failed", "the backend closed the connection without a valid answer")
TRUNCATED = Failure(502, "backend_truncated", "the backend's answer was cut short")


class UpstreamError(Exception):
    """The backend failed before its answer began (raised with the classified failure)."""

    def __init__(self, failure: Failure, cause: BaseException) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.cause = cause


def classify(error: BaseException) -> Failure:
    """The failure a backend error stands for, raised before any of its answer arrived."""
    # Order matters: the connect errors are subclasses of the broader ones.
    if isinstance(error, upstream_client.ConnectTimeoutError):
        return CONNECT_TIMEOUT
    if isinstance(error, upstream_client.ConnectFailedError):
        return UNREACHABLE
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return CONNECT_TIMEOUT
    if isinstance(error, aiohttp.ClientConnectorError):
        return UNREACHABLE
    if isinstance(error, asyncio.TimeoutError):
        return TIMEOUT
    return FAILED


def describe(error: BaseException) -> str:
    """One short line: the exception's kind and its first line (aiohttp puts details on later lines)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]


class Reporter:
    """Logs upstream failures rate-limited, one throttle per failure code."""

    def __init__(self, *, interval: float = 10.0) -> None:
        self._interval = interval
        self._throttles: dict[str, throttle.Throttle] = {}

    def report(self, failure: Failure, *, error: BaseException, endpoint: str) -> None:
        limiter = self._throttles.get(failure.code)
        if limiter is None:
            limiter = self._throttles[failure.code] = throttle.Throttle(interval=self._interval)
        count = limiter.hit()
        if count is None:
            return
        log.warning(
            failure.message,
            extra=logs.fields(
                code=failure.code,
                endpoint=endpoint,
                error=describe(error),
                since_last=count,
                total=limiter.total,
            ),
        )


def abort(request: web.BaseRequest) -> None:
    """End the client's connection now, leaving the body incomplete (no final chunk, short of its
    Content-Length), so the client sees the cut as the error it is. What was written is still flushed."""
    request.protocol.force_close()
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.close()
