"""A shared gateway's table of routes: one per LLMService its LLMGateway selects, fed by three watches.

- Its own LLMGateway (one object, by name): the label selector, and which models each API-key Secret's keys
  may use. A change applies at once: routes come and go, allowlists change, without a restart.
- Every LLMService of the namespace: a selected one gets a route whose per-model behaviour is read from the
  object (:meth:`route.RouteSettings.from_service`), and whose wake phase and ETA come from its status; a
  deleted or deselected one loses its route (held requests are told, new ones get 404).
- One watch on the namespace's EndpointSlices of LLMService backends: each route's ready pods (requests go
  straight to them, as a dedicated gateway's do).

Only what the routes need is kept of each watched object (:func:`_trim_service`, :func:`_trim_slice`), so an
idle model costs little memory. Until the first lists are in, the table is not ready (``/healthz`` fails, so
no request reaches a gateway that does not know its routes yet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

import pydantic
from aiohttp import web

from hearth.api import labelselector, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import EngineStatus, LLMService
from hearth.common import logs, timestamps
from hearth.gateway import background
from hearth.gateway.forward import upstream_client
from hearth.gateway.front import auth, routing
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model.demand import ColdCalls
from hearth.gateway.model.route import MODEL_REMOVED, Route, RouteSettings
from hearth.gateway.settings import GatewaySettings
from hearth.gateway.wake import readiness, wakestatus
from hearth.gateway.wake.waker import Waker
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.informer import Informer
from hearth.render import names

log = logging.getLogger(__name__)

#: The label the EndpointSlice controller copies from every LLMService-owned Service onto its slices.
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: The status fields a route reads (phase and ETA for held clients); the rest is dropped on arrival.
_STATUS_KEPT = ("phase", "currentWake", "wakeHistory", "pool", "engine")


def _trim_service(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "labels", "creationTimestamp", "resourceVersion")
            if key in metadata
        },
        "spec": obj.get("spec") or {},
        "status": {key: status[key] for key in _STATUS_KEPT if key in status},
    }


def _engine_of(status: dict[str, Any]) -> EngineStatus | None:
    """status.engine, read leniently as the rest of the status is: one the gateway cannot read leaves the
    route with the defaults (lax stream rule, connections reused) rather than unrouted."""
    try:
        return EngineStatus.model_validate(status["engine"]) if "engine" in status else None
    except pydantic.ValidationError:
        return None


def _trim_slice(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "resourceVersion": metadata.get("resourceVersion"),
            "labels": {
                key: labels[key] for key in (_SERVICE_NAME_LABEL, names.LABEL_LLMSERVICE) if key in labels
            },
        },
        "ports": obj.get("ports"),
        "endpoints": [
            {"addresses": endpoint.get("addresses"), "conditions": endpoint.get("conditions")}
            for endpoint in obj.get("endpoints") or []
        ],
    }


def _created(metadata: dict[str, Any]) -> int:
    """The object's creationTimestamp as a Unix time (``created`` of /v1/models), now when unreadable."""
    created = timestamps.parse(metadata.get("creationTimestamp"))
    return int(created.timestamp()) if created is not None else int(time.time())


class SharedTable:
    """The routes of a shared gateway (a :class:`routing.Table`)."""

    by_model = True

    def __init__(
        self,
        client: KubeClient,
        *,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        upstream_pool: upstream_client.Pool,
        api_keys: auth.KeyRing | None,
    ) -> None:
        assert settings.llmgateway is not None
        assert settings.namespace is not None
        self._client = client
        self._settings = settings
        self._name = settings.llmgateway
        self._namespace = settings.namespace
        self._metrics = metrics
        self._upstream = upstream_pool
        self._api_keys = api_keys
        self._wakes = scalermodes.traits(settings.scaler_mode).gateway_patches_scale
        self._selector: labelselector.LabelSelector | None = None
        #: model -> (route, when its LLMService was created)
        self._routes: dict[str, tuple[Route, int]] = {}
        #: One sequence for every route: the operator long-polls the pod once, for all its models.
        self.cold_calls = ColdCalls()
        #: backend Service -> EndpointSlice name -> ready base URLs
        self._slices: dict[str, dict[str, list[str]]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.gateway_informer = Informer(
            client,
            resources.LLMGATEWAY,
            namespace=self._namespace,
            field_selector=f"metadata.name={self._name}",
            handler=self._on_gateway,
            resync_seconds=600,
        )
        self.service_informer = Informer(
            client,
            resources.LLMSERVICE,
            namespace=self._namespace,
            handler=self._on_service,
            resync_seconds=600,
            transform=_trim_service,
        )
        self.slice_informer = Informer(
            client,
            resources.ENDPOINT_SLICE,
            namespace=self._namespace,
            label_selector=names.LABEL_LLMSERVICE,
            handler=self._on_slice,
            resync_seconds=300,
            transform=_trim_slice,
        )

    def start(self, loops: background.Background) -> None:
        loops.start(self.gateway_informer.run(), what=f"LLMGateway {self._name} watch")
        loops.start(self.service_informer.run(), what="LLMService watch")
        loops.start(self.slice_informer.run(), what="EndpointSlice watch")

    # ---- the routing.Table interface -------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the routes are known: every watch has listed once."""
        return all(
            informer.synced.is_set()
            for informer in (self.gateway_informer, self.service_informer, self.slice_informer)
        )

    def get(self, model: str) -> Route | None:
        found = self._routes.get(model)
        return found[0] if found is not None else None

    def routes(self) -> Iterable[Route]:
        return [route for route, _ in self._routes.values()]

    def listing(self, request: web.BaseRequest, access: routing.Access) -> web.Response | None:
        return routing.listing_answer(request, self._routes, access)

    def select(
        self, request: web.BaseRequest, payload: bytearray, access: routing.Access
    ) -> Route | web.Response:
        return routing.select_by_model(payload, self._routes, access)

    # ---- the watches ------------------------------------------------------------------------------
    def _on_gateway(self, kind: str, obj: dict[str, Any]) -> None:
        previous = self._selector
        if kind == "DELETED":
            self._selector = None
            self._configure_keys({})
        else:
            try:
                gateway = LLMGateway.model_validate(obj)
            except pydantic.ValidationError as error:
                log.warning(
                    "cannot read the LLMGateway; routing nothing",
                    extra=logs.fields(llmgateway=self._name, error=str(error).splitlines()[0]),
                )
                self._selector = None
                self._configure_keys({})
            else:
                self._selector = gateway.spec.selector
                keys = gateway.spec.auth.keys if gateway.spec.auth is not None else None
                self._configure_keys(
                    {
                        key_set.secret_name: frozenset(key_set.models) if key_set.models is not None else None
                        for key_set in keys or []
                    }
                )
        if self._selector == previous:
            return  # the operator's status writes (or new allowlists) leave the routes as they are
        # A new selector may add or remove any route: every service is looked at again.
        for service in self.service_informer.items():
            self._on_service("MODIFIED", service)

    def _configure_keys(self, allowlists: dict[str, frozenset[str] | None]) -> None:
        if self._api_keys is not None:
            self._api_keys.configure(allowlists)
        elif allowlists:
            log.warning(
                "the LLMGateway lists API keys but this gateway has no key directory (its Deployment is "
                "not rolled out yet?): requests are not authenticated until it is",
                extra=logs.fields(llmgateway=self._name),
            )

    def _selected(self, obj: dict[str, Any]) -> bool:
        if self._selector is None:
            return False
        return labelselector.matches(self._selector, (obj.get("metadata") or {}).get("labels") or {})

    def _on_service(self, kind: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        name = str(metadata.get("name"))
        if kind == "DELETED" or not self._selected(obj):
            self._remove(name)
            return
        try:
            # The spec makes the route; the status is read by the route's feed alone (which tells held
            # clients nothing, rather than dropping the route, when it cannot read one).
            service = LLMService.model_validate({key: value for key, value in obj.items() if key != "status"})
        except pydantic.ValidationError as error:
            log.warning(
                "cannot read a selected LLMService; it is not routed",
                extra=logs.fields(llmservice=name, error=str(error).splitlines()[0]),
            )
            self._remove(name)
            return
        settings = RouteSettings.from_service(
            service, self._settings, wakes=self._wakes, engine=_engine_of(obj.get("status") or {})
        )
        found = self._routes.get(name)
        if found is not None:
            route = found[0]
            dropped = route.update(settings, waker=self._waker(route, settings))
            if dropped is not None:
                self._close_soon(dropped.close())
        else:
            route = self._add(settings, created=_created(metadata))
        assert isinstance(route.phases, wakestatus.StatusFeed)
        route.phases.update(obj.get("status") or {})

    def _add(self, settings: RouteSettings, *, created: int) -> Route:
        model = settings.model
        ready = readiness.ManualReadiness()
        ready.set_endpoints(self._endpoints_of(names.backend_service(model)))
        feed = wakestatus.StatusFeed(model)
        route = Route(
            settings=settings,
            readiness=ready,
            metrics=self._metrics.route(model),
            upstream_pool=self._upstream,
            drop_authorization=self._api_keys is not None,
            eta=feed,
            phases=feed,
            cold_calls=self.cold_calls,
        )
        route.waker = self._waker(route, settings)
        self._routes[model] = (route, created)
        log.info("route added", extra=logs.fields(model=model, routes=len(self._routes)))
        return route

    def _waker(self, route: Route, settings: RouteSettings) -> Waker | None:
        if not settings.wakes_backend:
            return None
        if route.waker is not None:
            return route.waker
        return Waker(
            self._client,
            namespace=self._namespace,
            deployment=names.backend(settings.model),
            metrics=route.metrics,
        )

    def _remove(self, model: str) -> None:
        found = self._routes.pop(model, None)
        if found is None:
            return
        route = found[0]
        route.close_holds(MODEL_REMOVED)
        route.metrics.forget()
        self._close_soon(route.close())
        log.info("route removed", extra=logs.fields(model=model, routes=len(self._routes)))

    def _close_soon(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run *closing* in the background (watch callbacks cannot wait), kept until it ends."""
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _on_slice(self, kind: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        labels = metadata.get("labels") or {}
        model = labels.get(names.LABEL_LLMSERVICE)
        service = labels.get(_SERVICE_NAME_LABEL)
        # Only a backend Service's slices (an LLMService's gateway Service carries the same label).
        if not model or service != names.backend_service(model):
            return
        slices = self._slices.setdefault(service, {})
        if kind == "DELETED":
            slices.pop(str(metadata.get("name")), None)
        else:
            slices[str(metadata.get("name"))] = readiness.slice_endpoints(obj, port_name="http")
        if not slices:
            del self._slices[service]
        found = self._routes.get(model)
        if found is not None:
            ready = found[0].readiness
            assert isinstance(ready, readiness.ManualReadiness)
            ready.set_endpoints(self._endpoints_of(service))

    def _endpoints_of(self, service: str) -> list[str]:
        return sorted(url for urls in self._slices.get(service, {}).values() for url in urls)
