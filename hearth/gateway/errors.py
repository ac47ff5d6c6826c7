"""The error bodies the gateway answers with (DESIGN improvement 4): OpenAI-shaped JSON for a response not
yet committed, and the equivalent SSE event for a stream that already is.

The event keeps the reference's event name ``error``; its data is ``{"error": {...}}``, which the openai
SDKs raise as ``APIError`` (with ``code``) instead of failing to decode it.
"""

from __future__ import annotations

import json

from aiohttp import web


def _document(message: str, *, kind: str, code: str) -> dict[str, dict[str, str]]:
    return {"error": {"message": message, "type": kind, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    kind: str,
    code: str,
    retry_after: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> web.Response:
    """``{"error": {"message", "type", "code"}}``, as OpenAI clients parse it."""
    body = json.dumps(_document(message, kind=kind, code=code)) + "\n"
    headers = {"X-Content-Type-Options": "nosniff", **(extra_headers or {})}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def stream_error_event(message: str, *, kind: str, code: str) -> bytes:
    """One SSE event carrying the error, for a 200 event stream committed before the failure."""
    data = json.dumps(_document(message, kind=kind, code=code), separators=(",", ":"))
    return f"event: error\ndata: {data}\n\n".encode()
