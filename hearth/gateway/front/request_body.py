"""Reading a request's body before it counts as demand: within a deadline, within the size limit, and
within a gateway-wide budget of buffered bytes.

The gateway must buffer a body (it may be held cold, then sent to whichever backend is ready), so bodies
are what a hostile or slow client can use against it: a slow body must not hold an admission slot (it is
read before admission, under a deadline), an oversize one is refused from its Content-Length before a byte
is read, and all bodies together never exceed the budget (the pod's memory limit is sized from it).
"""

from __future__ import annotations

import asyncio

from aiohttp import http_exceptions, web

BUDGET_RETRY_AFTER = 1


class RefusedError(Exception):
    """A body the gateway will not read (the connection is closed after the answer: the body is unread)."""

    # A plain class, not a dataclass: mypyc (the frozen binary compiles this module) cannot build a
    # dataclass that is also an exception.
    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        *,
        kind: str = "invalid_request_error",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(status, message, code)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind
        self.retry_after = retry_after


class Budget:
    """Bytes of request bodies buffered by the whole gateway, taken as they arrive, given back when the
    request ends."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @property
    def available(self) -> int:
        return self.limit - self.in_use

    def take(self, count: int) -> bool:
        if count > self.available:
            return False
        self.in_use += count
        return True

    def give(self, count: int) -> None:
        self.in_use -= count


def too_large(limit: int) -> RefusedError:
    return RefusedError(413, f"the request body is larger than the limit of {limit} bytes", "body_too_large")


def _busy() -> RefusedError:
    return RefusedError(
        429,
        "the gateway is buffering as many request bodies as it can hold; retry shortly",
        "gateway_busy",
        kind="rate_limit_exceeded",
        retry_after=BUDGET_RETRY_AFTER,
    )


async def read(request: web.BaseRequest, *, limit: int, budget: Budget, deadline: float) -> bytearray:
    """The whole body, its bytes taken from *budget* (the caller gives back ``len(body)``); raises
    :class:`RefusedError` for a body that is too large, that the budget cannot hold, or that is late."""
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    if length is not None and length > budget.available:
        raise _busy()
    buffer = bytearray()
    content = request.content
    try:
        if content.is_eof():
            # The whole body came with the head (most API requests): nothing to wait for, so no deadline.
            _take(buffer, content.read_nowait(-1), limit=limit, budget=budget)
        else:
            async with asyncio.timeout(deadline):
                while chunk := await content.readany():
                    _take(buffer, chunk, limit=limit, budget=budget)
    except http_exceptions.HttpProcessingError as error:
        _drop(buffer, budget)
        raise RefusedError(400, f"malformed request body: {error.message}", "invalid_body") from None
    except TimeoutError:
        _drop(buffer, budget)
        raise RefusedError(
            408, f"the request body did not arrive within {deadline:g}s", "body_timeout"
        ) from None
    except BaseException:
        # RefusedError, a client that left, or a malformed body: the bytes are freed now, not at the next full
        # garbage collection (a traceback holding this frame would otherwise keep them).
        _drop(buffer, budget)
        raise
    return buffer


def _take(buffer: bytearray, chunk: bytes, *, limit: int, budget: Budget) -> None:
    if len(buffer) + len(chunk) > limit:
        raise too_large(limit)
    if not budget.take(len(chunk)):
        raise _busy()
    buffer += chunk


def _drop(buffer: bytearray, budget: Budget) -> None:
    budget.give(len(buffer))
    buffer.clear()
