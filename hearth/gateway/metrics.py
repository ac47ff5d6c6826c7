"""The gateway's Prometheus metrics: exactly the seven of SPEC §3.7 (names, labels, buckets), in a private
registry, plus Hearth's own (prefixed the same way) for disconnects and wakes.

A dedicated gateway (one route) exports them as SPEC §3.7 says, without a model label. A shared gateway
(many routes) adds the label ``model`` to every per-model series: the LLMService name a request was routed
to, ``""`` for answers given before a route was known (401, 400, 404). Each route reads and writes its
series through a :class:`RouteMetrics`, which creates its labelled children only when first used, so an
idle model costs no series and no memory here. The gauges (pending, demand, held) are read from the routes
when scraped, never written per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import core as prometheus_core

ACTIVATION_BUCKETS = (0.01, 0.1, 1, 5, 15, 30, 60, 120, 300)
#: The wake's scale request is one GET and one PUT to the API server: milliseconds, budget 100 ms.
WAKE_PATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
#: The operator's wake phase histogram shares the name: its last phase is only visible from here.
WAKE_PHASE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1200)

MODEL_LABEL = "model"

#: One route's gauges at scrape time: its model name, pending, effective demand and held requests.
GaugeSample = tuple[str, float, float, float]

_GAUGES = (
    ("hearth_gateway_pending", "Admitted requests waiting or in flight."),
    ("hearth_gateway_demand", "Effective demand: pending, or 1 during the activation lease or grace."),
    ("hearth_gateway_held", "Requests held right now because the backend is cold."),
)


class _RouteGauges:
    """A collector of the per-route gauges, read from the routes when scraped (no child per model)."""

    def __init__(self, *, per_model: bool) -> None:
        self._per_model = per_model
        self.samples: Callable[[], Iterable[GaugeSample]] = lambda: ()

    def describe(self) -> Iterator[prometheus_core.Metric]:
        labels = [MODEL_LABEL] if self._per_model else None
        for name, documentation in _GAUGES:
            yield prometheus_core.GaugeMetricFamily(name, documentation, labels=labels)

    def collect(self) -> Iterator[prometheus_core.Metric]:
        labels = [MODEL_LABEL] if self._per_model else None
        families = [
            prometheus_core.GaugeMetricFamily(name, documentation, labels=labels)
            for name, documentation in _GAUGES
        ]
        for model, *values in self.samples():
            for family, value in zip(families, values, strict=True):
                if self._per_model:
                    family.add_metric([model], value)
                else:
                    family.add_metric([], value)
        yield from families


class GatewayMetrics:
    def __init__(self, *, per_model: bool = False) -> None:
        registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.per_model = per_model
        model = [MODEL_LABEL] if per_model else []
        self.gauges = _RouteGauges(per_model=per_model)
        registry.register(self.gauges)
        self.requests = prometheus_client.Counter(
            "hearth_gateway_requests",
            "Responses by status code as seen by the client.",
            [*model, "code"],
            registry=registry,
        )
        self.rejections = prometheus_client.Counter(
            "hearth_gateway_rejections", "Rejected requests by reason.", [*model, "reason"], registry=registry
        )
        self.activation_wait = prometheus_client.Histogram(
            "hearth_gateway_activation_wait_seconds",
            "Time from admission until the request was forwarded.",
            model,
            buckets=ACTIVATION_BUCKETS,
            registry=registry,
        )
        self.scaler_streams = prometheus_client.Gauge(
            "hearth_gateway_scaler_streams", "Connected KEDA StreamIsActive streams.", registry=registry
        )
        self.activation_events = prometheus_client.Counter(
            "hearth_gateway_activation_events",
            "Inactive-to-active transitions of effective demand.",
            model,
            registry=registry,
        )
        self.client_disconnects = prometheus_client.Counter(
            "hearth_gateway_client_disconnects",
            "Clients that left before their answer was complete.",
            registry=registry,
        )
        self.wakes = prometheus_client.Counter(
            "hearth_gateway_wake_requests",
            "0->1 scale requests sent to the backend Deployment (builtin mode).",
            [*model, "result"],
            registry=registry,
        )
        self.wake_patch = prometheus_client.Histogram(
            "hearth_gateway_wake_patch_seconds",
            "Time from a cold request's admission until its 0->1 scale was accepted (builtin mode).",
            model,
            buckets=WAKE_PATCH_BUCKETS,
            registry=registry,
        )
        self.wake_phase = prometheus_client.Histogram(
            "hearth_wake_phase_seconds",
            "Wake phases seen by this gateway: first_byte, from the readiness source reporting a ready "
            "backend while requests were held until the first answer from it began.",
            [*model, "phase"],
            buckets=WAKE_PHASE_BUCKETS,
            registry=registry,
        )
        self.fallback_answers = prometheus_client.Counter(
            "hearth_gateway_fallback_answers",
            "Requests answered by spec.endpoint.fallback instead of the model, by reason (cold, "
            "hold_timeout, queue_full, no_capacity, wake_failed) and result (ok, error: the fallback "
            "answered an error or could not be reached).",
            [*model, "reason", "result"],
            registry=registry,
        )
        #: Answers given before a route was known (unauthorized, bad requests, unknown models).
        self.unrouted = RouteMetrics(self, "")
        if not per_model:
            self.wake_phase.labels(phase="first_byte")  # at 0 from the start: the first wake shows in rate()

    def route(self, model: str) -> RouteMetrics:
        return RouteMetrics(self, model)

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


class RouteMetrics:
    """One route's view of the metrics: its labelled children, made on first use."""

    __slots__ = (
        "_activation_events",
        "_activation_wait",
        "_fallbacks",
        "_family",
        "_first_byte",
        "_labels",
        "_rejections",
        "_requests",
        "_wake_patch",
        "_wakes",
    )

    def __init__(self, family: GatewayMetrics, model: str) -> None:
        self._family = family
        self._labels: tuple[str, ...] = (model,) if family.per_model else ()
        self._requests: dict[int, Any] = {}
        self._rejections: dict[str, Any] = {}
        self._wakes: dict[str, Any] = {}
        self._activation_wait: Any = None
        self._activation_events: Any = None
        self._wake_patch: Any = None
        self._first_byte: Any = None
        self._fallbacks: dict[tuple[str, str], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        labels = self._labels + values
        return metric.labels(*labels) if labels else metric

    def request(self, code: int) -> None:
        """One answer, by the status the client saw."""
        child = self._requests.get(code)
        if child is None:
            child = self._requests[code] = self._child(self._family.requests, str(code))
        child.inc()

    def reject(self, reason: str) -> None:
        child = self._rejections.get(reason)
        if child is None:
            child = self._rejections[reason] = self._child(self._family.rejections, reason)
        child.inc()

    def activation_waited(self, seconds: float) -> None:
        if self._activation_wait is None:
            self._activation_wait = self._child(self._family.activation_wait)
        self._activation_wait.observe(seconds)

    def activated(self) -> None:
        """Effective demand went from 0 to active."""
        if self._activation_events is None:
            self._activation_events = self._child(self._family.activation_events)
        self._activation_events.inc()

    def wake(self, result: str) -> None:
        """A 0->1 scale request's result (builtin mode)."""
        child = self._wakes.get(result)
        if child is None:
            child = self._wakes[result] = self._child(self._family.wakes, result)
        child.inc()

    def wake_patched(self, seconds: float) -> None:
        if self._wake_patch is None:
            self._wake_patch = self._child(self._family.wake_patch)
        self._wake_patch.observe(seconds)

    def first_byte(self, seconds: float) -> None:
        """The wake's last phase: ready -> the backend's first answer to a held request began."""
        if self._first_byte is None:
            self._first_byte = self._child(self._family.wake_phase, "first_byte")
        self._first_byte.observe(seconds)

    def fallback(self, reason: str, result: str) -> None:
        """A request answered by the fallback (issue 31)."""
        child = self._fallbacks.get((reason, result))
        if child is None:
            child = self._fallbacks[reason, result] = self._child(
                self._family.fallback_answers, reason, result
            )
        child.inc()

    def forget(self) -> None:
        """The route is gone: remove its labelled series (a shared gateway's model was deleted)."""
        if not self._labels:
            return
        family = self._family
        for metric in (
            family.requests,
            family.rejections,
            family.activation_wait,
            family.activation_events,
            family.wakes,
            family.wake_patch,
            family.wake_phase,
            family.fallback_answers,
        ):
            model = self._labels[0]
            for labels in list(metric._metrics):  # the library keeps children keyed by label values
                if labels and labels[0] == model:
                    metric.remove(*labels)
