"""A model's fallback (``spec.endpoint.fallback``, issue 31): another endpoint that answers a request while
the model is cold or full. :class:`Fallback` forwards one request there and says who answered.

The route (:mod:`hearth.gateway.model.route`) decides *when* (its cold, hold and queue concerns); this module
only *how*: the request's ``model`` is replaced by the fallback's, the client's own ``Authorization`` is never
sent on (an external endpoint gets its own key, a Hearth one its own auth), and the answer carries
``X-Hearth-Served-By`` (the fallback's model) and ``X-Hearth-Fallback`` (why). A streamed answer starts with
a progress comment naming them; an error from the fallback reaches the client OpenAI-shaped, its own error
object when it sent one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from hearth.common import durations, logs
from hearth.gateway import errors
from hearth.gateway.wake import progress

if TYPE_CHECKING:  # only a shared gateway builds routes from LLMService objects (pydantic stays unloaded)
    from hearth.api.llmservice import LLMService
    from hearth.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SERVED_BY_HEADER = "X-Hearth-Served-By"
REASON_HEADER = "X-Hearth-Fallback"
#: The fallback is another HTTP service: connecting must be quick (it is meant to be warm), answering may
#: take as long as a model takes.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=600.0)
#: Request headers passed on to the fallback (hop-by-hop ones and credentials are not).
PASSED_HEADERS = ("Content-Type", "Accept", "User-Agent", "OpenAI-Organization", "OpenAI-Project")
#: How much of a fallback's non-JSON error body is quoted back.
QUOTED_BYTES = 512

IMMEDIATELY = "Immediately"
AFTER_HOLD = "AfterHold"
NEVER = "Never"


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackSettings:
    """Where one model's fallback is and when it is used."""

    #: Base URL including its version path (``http://small.ml.svc/v1``, ``https://api.example.com/v1``).
    base_url: str
    #: The model asked for there.
    model: str
    while_cold: str = IMMEDIATELY
    hold_s: float = 30.0
    when_full: bool = True
    api_key: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_gateway(cls, settings: GatewaySettings) -> FallbackSettings | None:
        """A dedicated gateway's fallback, from its environment (the operator renders it)."""
        if settings.fallback_base_url is None:
            return None
        return cls(
            base_url=settings.fallback_base_url,
            model=settings.fallback_model or "model",
            while_cold=settings.fallback_while_cold,
            hold_s=settings.fallback_hold.seconds,
            when_full=settings.fallback_when_full == "true",
            api_key=settings.fallback_api_key,
        )

    @classmethod
    def from_service(cls, service: LLMService) -> FallbackSettings | None:
        """A shared gateway's fallback of *service*. An external URL that needs a key from a Secret is
        left out: a shared gateway does not read Secrets (the operator's Fallback condition says so)."""
        spec = service.spec.endpoint.fallback
        if spec is None or spec.api_key_secret is not None:
            return None
        return cls(
            base_url=spec.base_url(service.namespace),
            model=spec.target_model(),
            while_cold=spec.while_cold,
            hold_s=durations.Duration.parse(spec.hold_for).seconds,
            when_full=spec.when_full,
        )


def _rewritten(body: bytes | bytearray, model: str) -> bytes:
    """The body with ``model`` replaced; anything that is not a JSON object is sent as it came."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return bytes(body)
    if not isinstance(document, dict):
        return bytes(body)
    document["model"] = model
    return json.dumps(document, separators=(",", ":")).encode()


def _target(base: str, path: str, query: str) -> str:
    # /v1/chat/completions -> <base>/chat/completions: the base carries its own version path.
    rest = path[3:] if path.startswith("/v1/") else path
    return f"{base}{rest}" + (f"?{query}" if query else "")


def _error_body(status: int, text: bytes, served_by: str) -> tuple[int, bytes]:
    """The client's error: the fallback's own OpenAI error object, else one saying what it answered."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        return status, text
    quoted = text[:QUOTED_BYTES].decode("utf-8", "replace").strip()
    message = f"the fallback {served_by} answered {status}" + (f": {quoted}" if quoted else "")
    document = {"error": {"message": message, "type": "fallback_error", "code": "fallback_error"}}
    return 502, json.dumps(document).encode()


class Fallback:
    """Forwards requests to one model's fallback over a session of its own."""

    def __init__(self, settings: FallbackSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, reason: str) -> dict[str, str]:
        return {SERVED_BY_HEADER: self.settings.model, REASON_HEADER: reason}

    def _comment(self, reason: str, elapsed_s: float) -> bytes:
        document = {
            "v": progress.VERSION,
            "phase": "fallback",
            "served_by": self.settings.model,
            "reason": reason,
            "elapsed_s": round(elapsed_s, 1),
        }
        return progress.PREFIX + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"

    async def answer(
        self,
        request: web.BaseRequest,
        body: bytes | bytearray,
        *,
        reason: str,
        elapsed_s: float = 0.0,
        committed: web.StreamResponse | None = None,
    ) -> tuple[web.StreamResponse, bool]:
        """Forward the request to the fallback and answer the client from it: (the response, whether the
        fallback answered 2xx). With *committed* (a held stream already sent), only the body is appended:
        a progress comment naming the fallback, then its events, or an error event."""
        settings = self.settings
        headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        url = _target(settings.base_url, request.path, request.query_string)
        try:
            async with self._client().request(
                request.method, url, data=_rewritten(body, settings.model), headers=headers
            ) as upstream:
                return await self._relay(request, upstream, reason, elapsed_s, committed)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning(
                "fallback unreachable",
                extra=logs.fields(
                    fallback=settings.model, reason=reason, error=str(error) or type(error).__name__
                ),
            )
            refusal = errors.Refusal(
                502,
                "fallback_unreachable",
                f"the model is not ready and its fallback {settings.model} could not be reached",
                kind="fallback_error",
            )
            if committed is not None:
                await committed.write(refusal.event())
                await committed.write_eof()
                return committed, False
            unreachable = refusal.response()
            unreachable.headers.update(self.headers(reason))
            return unreachable, False

    async def _relay(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        reason: str,
        elapsed_s: float,
        committed: web.StreamResponse | None,
    ) -> tuple[web.StreamResponse, bool]:
        ok = 200 <= upstream.status < 300
        served_by = self.settings.model
        streamed = upstream.content_type == "text/event-stream"
        if not ok:
            status, text = _error_body(upstream.status, await upstream.read(), served_by)
            if committed is not None:
                await committed.write(b"data: " + text.strip() + b"\n\n")
                await committed.write_eof()
                return committed, False
            refused = web.Response(status=status, body=text, content_type="application/json")
            refused.headers.update(self.headers(reason))
            return refused, False
        if committed is None and not streamed:
            whole = web.Response(
                status=upstream.status, body=await upstream.read(), content_type=upstream.content_type
            )
            whole.headers.update(self.headers(reason))
            return whole, True
        response: web.StreamResponse | None = committed
        if response is None:
            response = web.StreamResponse(
                status=upstream.status,
                headers={
                    "Content-Type": upstream.headers.get("Content-Type", "text/event-stream"),
                    "Cache-Control": "no-cache",
                    **self.headers(reason),
                },
            )
            await response.prepare(request)
        if streamed:
            await response.write(self._comment(reason, elapsed_s))
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response, True
