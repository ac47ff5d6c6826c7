"""Which route serves a request: the gateway's table of routes, keyed by model.

A dedicated gateway's table (:class:`SingleRoute`) has one route and sends every request to it, whatever its
body says, exactly as SPEC §3 describes. A shared gateway's table
(:class:`hearth.gateway.front.shared.SharedTable`) routes by the ``model`` of the JSON body
(:func:`model_of`), lists its models on ``GET /v1/models`` without waking any, and answers a model it does not
route, or one the caller's key may not use, with the same 404.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, Protocol

from aiohttp import web

from hearth.gateway import errors
from hearth.gateway.model.demand import ColdCalls
from hearth.gateway.model.route import Route

#: The longest model name a request may carry (LLMService names have at most 55 characters; a served name
#: of an engine seldom more than a hundred).
MAX_MODEL_NAME = 256
MODELS_PATH = "/v1/models"
_MODEL_KEY = b'"model"'


class Access(Protocol):
    """What a caller may use: every model, or some."""

    def allows(self, model: str) -> bool: ...


class Table(Protocol):
    """The routes of one gateway process."""

    #: Whether requests are routed by their body's model (a shared gateway).
    by_model: bool
    #: Cold requests of its routes that the gateway does not wake itself (``/hearth/queues?since=``).
    cold_calls: ColdCalls

    @property
    def ready(self) -> bool:
        """Whether the routes are known (a shared gateway's watches have listed once)."""
        ...

    def get(self, model: str) -> Route | None: ...

    def routes(self) -> Iterable[Route]: ...

    def listing(self, request: web.BaseRequest, access: Access) -> web.Response | None:
        """A local answer to a model listing (``GET /v1/models[/id]``), or None to forward the request."""
        ...

    def select(self, request: web.BaseRequest, payload: bytearray, access: Access) -> Route | web.Response:
        """The route of a request whose body has been read, or the refusal to answer with."""
        ...


class RefusedModelError(ValueError):
    """The body names no usable model (the message says what is wrong)."""


def model_of(payload: bytearray | bytes) -> str:
    """The ``model`` of a JSON request body, or :class:`RefusedModelError` naming the problem."""
    if not payload.strip():
        raise RefusedModelError(
            "the request has no body; this endpoint serves several models and routes by the JSON body's "
            '"model"'
        )
    # One "model" key at most (and no \\u escape that could spell another): plain decoding cannot miss
    # a duplicate. Otherwise the slower decoding that sees every key runs.
    plain = payload.count(_MODEL_KEY) <= 1 and b"\\u" not in payload
    try:
        document = json.loads(payload) if plain else json.loads(payload, object_pairs_hook=_no_second_model)
    except RefusedModelError:
        raise
    except (ValueError, RecursionError) as error:
        raise RefusedModelError(f"the request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise RefusedModelError(
            f'the request body must be a JSON object with a "model", not a JSON {type(document).__name__}'
        )
    model = document.get("model")
    if model is None:
        raise RefusedModelError('the request body has no "model": name the model to use')
    if not isinstance(model, str):
        raise RefusedModelError(f'"model" must be a string, not a JSON {_json_type(model)}')
    if not model:
        raise RefusedModelError('"model" is empty: name the model to use')
    if len(model) > MAX_MODEL_NAME:
        raise RefusedModelError(
            f'"model" is {len(model)} characters long; model names have at most {MAX_MODEL_NAME}'
        )
    return model


def _no_second_model(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if sum(1 for key, _ in pairs if key == "model") > 1:
        raise RefusedModelError('the request body names "model" more than once; name it once')
    return dict(pairs)


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def model_document(route: Route, *, created: int, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """One entry of ``/v1/models``: OpenAI's model object plus ``hearth``, the route's state unless
    *state* is given (the openai SDKs keep unknown fields, so a UI may show whether a model is cold)."""
    return {
        "id": route.model,
        "object": "model",
        "created": created,
        "owned_by": "hearth",
        "hearth": route.state() if state is None else state,
    }


def json_answer(document: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(document), content_type="application/json")


class SingleRoute:
    """A dedicated gateway's table: one route for every request."""

    by_model = False
    ready = True

    def __init__(self, route: Route) -> None:
        self.route = route
        self.cold_calls = route.cold_calls

    def get(self, model: str) -> Route | None:
        return self.route

    def routes(self) -> Iterable[Route]:
        return (self.route,)

    def listing(self, request: web.BaseRequest, access: Access) -> web.Response | None:
        if self.route.readiness.ready or request.method != "GET" or request.path != MODELS_PATH:
            return None  # a ready backend lists its own models
        # Listing models must not wake an accelerator (DESIGN 4): answered here, not counted as demand.
        entry = model_document(self.route, created=int(time.time()), state={"state": "cold"})
        return json_answer({"object": "list", "data": [entry]})

    def select(self, request: web.BaseRequest, payload: bytearray, access: Access) -> Route | web.Response:
        return self.route


def listing_answer(
    request: web.BaseRequest, routes: dict[str, tuple[Route, int]], access: Access
) -> web.Response | None:
    """A shared gateway's answer to ``GET /v1/models`` and ``GET /v1/models/{id}`` from its *routes*
    (model -> route and when its LLMService was created); None for any other request."""
    path = request.path
    if path == MODELS_PATH or path == MODELS_PATH + "/":
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed(path)
        data = [
            model_document(route, created=created)
            for model, (route, created) in sorted(routes.items())
            if access.allows(model)
        ]
        return json_answer({"object": "list", "data": data})
    if not path.startswith(MODELS_PATH + "/"):
        return None
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(path)
    model = path[len(MODELS_PATH) + 1 :]
    found = routes.get(model)
    if found is None or not access.allows(model):
        return errors.model_not_found(model)
    route, created = found
    return json_answer(model_document(route, created=created))


def _method_not_allowed(path: str) -> web.Response:
    return errors.error_response(
        405,
        f"{path} only answers GET",
        kind="invalid_request_error",
        code="method_not_allowed",
        extra_headers={"Allow": "GET, HEAD"},
    )


def select_by_model(
    payload: bytearray, routes: dict[str, tuple[Route, int]], access: Access
) -> Route | web.Response:
    """The route named by the body's model, a 400 naming what is wrong with the body, or the 404 of a
    model that is not routed here or that the caller may not use (the same answer: a key never learns
    which models exist beyond its own)."""
    try:
        model = model_of(payload)
    except RefusedModelError as error:
        return errors.invalid_request(str(error), code="invalid_model")
    found = routes.get(model)
    if found is None or not access.allows(model):
        return errors.model_not_found(model)
    return found[0]
