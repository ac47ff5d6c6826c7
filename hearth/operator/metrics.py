"""The operator's Prometheus metrics, in a private registry (no process-wide globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import prometheus_client
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hearth.render import errors

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: A wait for a pool's devices spans a victim's drain (drainTimeout, 2m by default) and can last minutes.
POOL_WAIT_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600, 1800)


class _CounterFromFunction(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self._name, self._documentation, self._read = name, documentation, read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.reconciles = prometheus_client.Counter(
            "hearth_operator_reconcile", "Reconciles by result.", ["result"], registry=self.registry
        )
        self.errors = prometheus_client.Counter(
            "hearth_operator_reconcile_errors",
            "Failed reconciles by SPEC reason.",
            ["reason"],
            registry=self.registry,
        )
        # Every reason and result from the start, at 0: alerts and panels on them have a series to read
        # before the first failure (a counter with labels otherwise shows nothing until used).
        for reason in errors.Reason:
            self.errors.labels(reason=str(reason))
        for result in ("success", "error"):
            self.reconciles.labels(result=result)
        self.duration = prometheus_client.Histogram(
            "hearth_operator_reconcile_duration_seconds",
            "Time to reconcile one LLMService.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = prometheus_client.Gauge(
            "hearth_operator_queue_depth", "LLMServices waiting to be reconciled.", registry=self.registry
        )
        self.leader = prometheus_client.Gauge(
            "hearth_operator_leader", "1 while this process holds the leader lease.", registry=self.registry
        )
        self.keda = prometheus_client.Gauge(
            "hearth_operator_keda_installed",
            "1 when KEDA's ScaledObject API is served.",
            registry=self.registry,
        )

        # AcceleratorPools (issue 16), by pool name.
        self.pool_swaps = prometheus_client.Counter(
            "hearth_pool_swaps",
            "Evictions an AcceleratorPool made to free devices for a waiting member.",
            ["pool"],
            registry=self.registry,
        )
        self.pool_wait = prometheus_client.Histogram(
            "hearth_pool_wait_seconds",
            "How long a member needing devices waited for its AcceleratorPool to grant them.",
            ["pool"],
            buckets=POOL_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.pool_in_use = prometheus_client.Gauge(
            "hearth_pool_devices_in_use",
            "Devices an AcceleratorPool's members hold (draining pods included).",
            ["pool"],
            registry=self.registry,
        )
        self.pool_devices = prometheus_client.Gauge(
            "hearth_pool_devices",
            "Devices an AcceleratorPool may hand out (spec.devices).",
            ["pool"],
            registry=self.registry,
        )
        self.pool_waiting = prometheus_client.Gauge(
            "hearth_pool_waiting_members",
            "Members of an AcceleratorPool waiting for devices.",
            ["pool"],
            registry=self.registry,
        )

    def count_api_writes(self, read: Callable[[], float]) -> None:
        self.registry.register(
            _CounterFromFunction("hearth_operator_api_writes", "Write requests sent to the API server.", read)
        )

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
