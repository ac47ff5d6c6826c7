"""HTTP pieces of the gateway: hop-by-hop filtering, forwarding headers, stream detection, and the
OpenAI-shaped error bodies (DESIGN improvement 4)."""

from __future__ import annotations

import json

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
STREAM_PEEK_LIMIT = 8 * 1024 * 1024


def _strip(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    named = {
        token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")
    }
    excluded = HOP_BY_HOP | named if named else HOP_BY_HOP  # once per message, not once per header
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in excluded)


def upstream_headers(request: web.Request, *, drop_authorization: bool = False) -> CIMultiDict[str]:
    """The client's headers for the backend: hop-by-hop removed, Host kept, X-Forwarded-* added; the
    Authorization header too when it carried the gateway's own API key (the backend has no use for it)."""
    headers = _strip(request.headers)
    if drop_authorization:
        headers.popall("Authorization", None)
    peer = request.remote or ""
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    if request.host:
        headers.setdefault("X-Forwarded-Host", request.host)
    return headers


def downstream_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return _strip(headers)


def wants_stream(method: str, body: bytes) -> bool:
    """SPEC §3.3 step 6: a JSON body with ``"stream": true`` (GET, empty or oversized bodies never stream)."""
    if method == "GET" or not body or len(body) > STREAM_PEEK_LIMIT:
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("stream") is True


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
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}}) + "\n"
    headers = {"X-Content-Type-Options": "nosniff", **(extra_headers or {})}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)
