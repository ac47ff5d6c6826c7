"""The error bodies the gateway answers with (DESIGN improvement 4): OpenAI-shaped JSON for a response not
yet committed, and the equivalent SSE event for a stream that already is.

The event keeps the reference's event name ``error``; its data is ``{"error": {...}}``, which the openai
SDKs raise as ``APIError`` (with ``code``) instead of failing to decode it.
"""

from __future__ import annotations

import dataclasses
import json

from aiohttp import web

from hearth.api import wakereasons

#: Why the gateway refused (hearth.api.wakereasons declares it for every reader).
REFUSAL_HEADER = wakereasons.REFUSAL_HEADER


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
    if status in (429, 503):
        headers[REFUSAL_HEADER] = code
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def stream_error_event(message: str, *, kind: str, code: str) -> bytes:
    """One SSE event carrying the error, for a 200 event stream committed before the failure."""
    data = json.dumps(_document(message, kind=kind, code=code), separators=(",", ":"))
    return f"event: error\ndata: {data}\n\n".encode()


class Refusal:
    """An answer the gateway gives instead of the backend's: a JSON error, or the same error as an SSE
    event inside a stream already committed (which the openai SDKs raise as ``APIError`` with the code)."""

    __slots__ = ("code", "kind", "message", "status")

    def __init__(self, status: int, code: str, message: str, kind: str = "service_unavailable") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind

    def event(self) -> bytes:
        return stream_error_event(self.message, kind=self.kind, code=self.code)

    def response(self, *, retry_after: int | None = None) -> web.Response:
        return error_response(
            self.status, self.message, kind=self.kind, code=self.code, retry_after=retry_after
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FailedWake:
    """The model's backend cannot come up (the operator's ``status.wakeFailure``): what held and cold
    requests are told, and in how many seconds a request may wake it again (Retry-After)."""

    refusal: Refusal
    retry_after_s: int


def wake_failed(code: str, message: str) -> Refusal:
    """The refusal naming why the model cannot start; *code* is the reason in snake case."""
    return Refusal(503, code, f"the model cannot start: {message}")


COLD = Refusal(503, "backend_not_ready", "backend not ready: the model is warming up, retry later")
ACTIVATION_TIMEOUT = Refusal(
    503, "activation_timeout", "backend not ready: activation timeout, the model is still warming up"
)
SHUTTING_DOWN = Refusal(503, "gateway_draining", "the gateway is shutting down, retry")


def model_not_found(model: str) -> web.Response:
    """OpenAI's answer for a model that does not exist; also the answer for one the caller's key may not
    use, so a key never learns which models exist beyond its own."""
    shown = model if len(model) <= 100 else model[:100] + "..."
    return error_response(
        404,
        f"The model `{shown}` does not exist or you do not have access to it.",
        kind="invalid_request_error",
        code="model_not_found",
    )


def invalid_request(message: str, *, code: str = "invalid_request") -> web.Response:
    """A 400 naming what is wrong with the request."""
    return error_response(400, message, kind="invalid_request_error", code=code)
