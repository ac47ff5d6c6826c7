"""HTTP pieces of the gateway: the upstream request target, hop-by-hop filtering, forwarding headers and
stream detection."""

from __future__ import annotations

import json

import yarl
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
#: Not forwarded although end-to-end: the gateway already answered ``Expect: 100-continue`` and read the
#: body, so a backend that never sends 100 must not make the forwarded request wait for one.
NOT_FORWARDED = frozenset({"expect"})


def upstream_target(request: web.BaseRequest) -> str | None:
    """The path and query to send upstream, raw as received; None for a target that has no path.

    An absolute-form target (``GET http://x/p HTTP/1.1``, RFC 9112 §3.2.2) is accepted as a proxy must and
    forwarded as its path and query only: the backend is always the gateway's own, never the named host.
    Authority and asterisk forms (``CONNECT x:443``, ``OPTIONS *``) have no path to forward.
    """
    raw = request.raw_path
    if raw.startswith("/"):
        return raw
    if raw[:8].lower().startswith(("http://", "https://")):
        try:
            url = yarl.URL(raw, encoded=True)
        except ValueError:
            return None
        # yarl gives an absolute URL without a path the path "/".
        return url.raw_path_qs if url.absolute and url.raw_path.startswith("/") else None
    return None


def _strip(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    # A copy, then the few names removed: the multidict's own (C) copy and lookups, not one Python-level
    # comparison per header (this runs twice for every proxied request).
    stripped = CIMultiDict(headers)
    for name in HOP_BY_HOP:
        if name in stripped:
            del stripped[name]
    if "Connection" in headers:
        for value in headers.getall("Connection"):
            for token in value.split(","):
                stripped.popall(token.strip(), None)
    return stripped


def upstream_headers(request: web.BaseRequest, *, drop_authorization: bool = False) -> CIMultiDict[str]:
    """The client's headers for the backend: hop-by-hop removed, Host kept, X-Forwarded-* added; the
    Authorization header too when it carried the gateway's own API key (the backend has no use for it)."""
    headers = _strip(request.headers)
    for name in NOT_FORWARDED:
        headers.popall(name, None)
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


#: Strings vLLM's request models (pydantic, lax mode) read as ``stream: true``; compared lower-cased.
_TRUE_STRINGS = frozenset({"1", "on", "t", "true", "y", "yes"})


def _engine_reads_true(value: object) -> bool:
    """Whether vLLM would stream: it validates ``stream`` as a lax pydantic bool, so ``"yes"``, ``1`` or
    ``"true"`` stream too (the reference held those silently, without heartbeats, then streamed them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    return isinstance(value, str) and value.lower() in _TRUE_STRINGS


def wants_stream(method: str, body: bytes | bytearray, *, strict: bool = False) -> bool:
    """SPEC §3.3 step 6: a JSON object body whose ``stream`` the engine reads as true (GET, empty, oversized
    or unparsable bodies never stream); *strict*: the engine streams on JSON ``true`` only (llama-server,
    TGI: :class:`hearth.api.engines.StreamRule`). Bounded: JSON nested deeper than the parser goes is not a
    stream."""
    if method == "GET" or not body or len(body) > STREAM_PEEK_LIMIT:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(document, dict):
        return False
    value = document.get("stream")
    return value is True if strict else _engine_reads_true(value)
