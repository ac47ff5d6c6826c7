"""The gateway's Prometheus metrics: exactly the seven of SPEC §3.7 (names, labels, buckets), in a private
registry, plus Hearth's own (prefixed the same way) for disconnects and wakes."""

from __future__ import annotations

import prometheus_client

ACTIVATION_BUCKETS = (0.01, 0.1, 1, 5, 15, 30, 60, 120, 300)
#: The wake's scale request is one GET and one PUT to the API server: milliseconds, budget 100 ms.
WAKE_PATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
#: The operator's wake phase histogram shares the name: its last phase is only visible from here.
WAKE_PHASE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1200)


class GatewayMetrics:
    def __init__(self) -> None:
        registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.pending = prometheus_client.Gauge(
            "hearth_gateway_pending", "Admitted requests waiting or in flight.", registry=registry
        )
        self.demand = prometheus_client.Gauge(
            "hearth_gateway_demand",
            "Effective demand: pending, or 1 during the activation lease or grace.",
            registry=registry,
        )
        self.requests = prometheus_client.Counter(
            "hearth_gateway_requests",
            "Responses by status code as seen by the client.",
            ["code"],
            registry=registry,
        )
        self.rejections = prometheus_client.Counter(
            "hearth_gateway_rejections", "Rejected requests by reason.", ["reason"], registry=registry
        )
        self.activation_wait = prometheus_client.Histogram(
            "hearth_gateway_activation_wait_seconds",
            "Time from admission until the request was forwarded.",
            buckets=ACTIVATION_BUCKETS,
            registry=registry,
        )
        self.scaler_streams = prometheus_client.Gauge(
            "hearth_gateway_scaler_streams", "Connected KEDA StreamIsActive streams.", registry=registry
        )
        self.activation_events = prometheus_client.Counter(
            "hearth_gateway_activation_events",
            "Inactive-to-active transitions of effective demand.",
            registry=registry,
        )
        self.held = prometheus_client.Gauge(
            "hearth_gateway_held", "Requests held right now because the backend is cold.", registry=registry
        )
        self.client_disconnects = prometheus_client.Counter(
            "hearth_gateway_client_disconnects",
            "Clients that left before their answer was complete.",
            registry=registry,
        )
        self.wakes = prometheus_client.Counter(
            "hearth_gateway_wake_requests",
            "0->1 scale requests sent to the backend Deployment (builtin mode).",
            ["result"],
            registry=registry,
        )
        self.wake_patch = prometheus_client.Histogram(
            "hearth_gateway_wake_patch_seconds",
            "Time from a cold request's admission until its 0->1 scale was accepted (builtin mode).",
            buckets=WAKE_PATCH_BUCKETS,
            registry=registry,
        )

        self.wake_phase = prometheus_client.Histogram(
            "hearth_wake_phase_seconds",
            "Wake phases seen by this gateway: first_byte, from the readiness source reporting a ready "
            "backend while requests were held until the first answer from it began.",
            ["phase"],
            buckets=WAKE_PHASE_BUCKETS,
            registry=registry,
        )
        self.wake_phase.labels(phase="first_byte")  # at 0 from the start, so the first wake shows in rate()

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
