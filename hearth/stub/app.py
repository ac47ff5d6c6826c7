"""The stub's HTTP application: vLLM's OpenAI-compatible surface, answered on the CPU.

Every path accepts any method, as in the reference stub. Completions are answered even before the
startup delay unless ``ready_gates_serving`` is set; ``/health`` is the only thing the delay gates by default.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from hearth.common import clock as clock_module
from hearth.common import logs
from hearth.stub import completions, gauges
from hearth.stub.settings import StubSettings

log = logging.getLogger(__name__)

SETTINGS_KEY = web.AppKey("settings", StubSettings)
GAUGES_KEY = web.AppKey("gauges", gauges.Gauges)
CLOCK_KEY = web.AppKey("clock", clock_module.Clock)
STARTED_KEY = web.AppKey("started_at", float)

# A completion request body larger than this is refused; prompts of real models stay far below it.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: The most tokens one answer may have (``?tokens=N``): past it a request could make the stub build an
#: answer of any size, or stream for ever.
MAX_TOKENS = 100_000


def make_app(settings: StubSettings, *, clock: clock_module.Clock | None = None) -> web.Application:
    """Build the stub application; the startup delay counts from this call."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    real_clock = clock or clock_module.SystemClock()
    app[SETTINGS_KEY] = settings
    app[GAUGES_KEY] = gauges.Gauges()
    app[CLOCK_KEY] = real_clock
    app[STARTED_KEY] = real_clock.monotonic()
    app.router.add_route("*", "/health", health)
    app.router.add_route("*", "/v1/chat/completions", chat_completions)
    app.router.add_route("*", "/v1/completions", text_completions)
    app.router.add_route("*", "/v1/models", models)
    app.router.add_route("*", "/metrics", metrics)
    app.router.add_route("*", "/control", control)
    return app


def is_ready(app: web.Application) -> bool:
    elapsed = app[CLOCK_KEY].monotonic() - app[STARTED_KEY]
    return elapsed >= app[SETTINGS_KEY].startup_delay.seconds


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200 if is_ready(request.app) else 503)


async def models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    body = completions.models_list(
        served_model_names=settings.served_model_names,
        root=settings.model,
        created=int(request.app[CLOCK_KEY].wall()),
    )
    return web.Response(body=body, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    text = request.app[GAUGES_KEY].exposition()
    return web.Response(body=text.encode(), headers={"Content-Type": gauges.CONTENT_TYPE})


async def control(request: web.Request) -> web.Response:
    """``/control``: override all three gauges; ``DELETE`` returns them to live values."""
    state = request.app[GAUGES_KEY]
    if request.method == "DELETE":
        state.override = None
        return web.Response(status=200)
    try:
        state.override = gauges.Override.from_body(await request.read())
    except gauges.ControlError as error:
        return web.Response(status=400, text=f"{error}\n")
    return web.Response(status=200)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, completions.Kind.CHAT)


async def text_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, completions.Kind.TEXT)


class _TooManyTokensError(Exception):
    """``?tokens=N`` past :data:`MAX_TOKENS`."""


def _requested_tokens(request: web.Request, default: int) -> int:
    text = request.query.get("tokens", "").strip()
    if len(text) > len(str(MAX_TOKENS)) + 1 and text.isdigit():
        raise _TooManyTokensError  # never converted: int() of thousands of digits is itself an error
    try:
        from_query = int(text)
    except ValueError:
        from_query = 0
    if from_query > MAX_TOKENS:
        raise _TooManyTokensError
    return from_query if from_query > 0 else default


async def _complete(request: web.Request, kind: completions.Kind) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    if settings.ready_gates_serving and not is_ready(request.app):
        body = completions.error_body(
            message="the model is still loading", error_type="ServiceUnavailableError", code=503
        )
        return web.Response(status=503, body=body, content_type="application/json")
    arrived = request.app[CLOCK_KEY].monotonic()
    parsed = completions.Request.from_body(await request.read())
    try:
        requested_tokens = _requested_tokens(request, settings.token_count)
    except _TooManyTokensError:
        body = completions.error_body(
            message=f"tokens must be at most {MAX_TOKENS}", error_type="BadRequestError", code=400
        )
        return web.Response(status=400, body=body, content_type="application/json")
    answer = completions.plan(
        kind=kind,
        request=parsed,
        requested_tokens=requested_tokens,
        served_model=settings.served_model_names[0],
        created=int(request.app[CLOCK_KEY].wall()),
    )
    state = request.app[GAUGES_KEY]
    state.running += 1
    try:
        if not parsed.stream:
            state.first_token(request.app[CLOCK_KEY].monotonic() - arrived)
            return web.Response(body=completions.whole_response(answer), content_type="application/json")
        return await _stream(request, answer, include_usage=parsed.include_usage, arrived=arrived)
    finally:
        state.running -= 1


async def _stream(
    request: web.Request, answer: completions.Plan, *, include_usage: bool, arrived: float
) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    delay = request.app[SETTINGS_KEY].token_delay.seconds
    try:
        for index in range(answer.tokens):
            await response.write(completions.stream_event(answer, index))
            if index == 0:
                request.app[GAUGES_KEY].first_token(request.app[CLOCK_KEY].monotonic() - arrived)
            # As in the reference stub, the delay follows every token, the last one included.
            await asyncio.sleep(delay)
        if include_usage:
            await response.write(completions.usage_event(answer))
        await response.write(completions.DONE_EVENT)
        await response.write_eof()
    except ConnectionResetError:
        # The client went away mid-stream: nothing to answer, and not worth a traceback.
        log.debug("client disconnected mid-stream", extra=logs.fields(path=request.path))
    return response
