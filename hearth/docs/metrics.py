"""The metrics reference: every series of the operator's and the gateway's Prometheus registries, read from
the registries the processes build (names, types, labels, buckets, help)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client.metrics import MetricWrapperBase

from hearth.docs import markdown as md
from hearth.gateway.metrics import GatewayMetrics
from hearth.operator.metrics import OperatorMetrics
from hearth.operator.telemetry import wiring

_SUFFIX = {"counter": "_total"}


@dataclasses.dataclass(frozen=True, slots=True)
class Metric:
    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


def _from_registry(registry: prometheus_client.CollectorRegistry) -> Iterator[Metric]:
    # prometheus_client has no public "what is registered": its collectors map is the registry's own list.
    for collector in list(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            kind = str(collector._type)
            name = collector._name + _SUFFIX.get(kind, "")
            buckets = tuple(
                float(bound) for bound in getattr(collector, "_upper_bounds", ()) if bound != float("inf")
            )
            yield Metric(name, kind, tuple(collector._labelnames), collector._documentation, buckets)
            continue
        # A custom collector: what it describes, or (computed at scrape time) what it yields when empty.
        families: Iterable[Any] = list(collector.describe()) if hasattr(collector, "describe") else []
        if not families:
            families = list(collector.collect())
        for family in families:
            name = family.name + _SUFFIX.get(family.type, "")
            yield Metric(name, family.type, tuple(getattr(family, "_labelnames", ())), family.documentation)


def operator_metrics() -> list[Metric]:
    """The operator's registry as ``hearth operator`` builds it: its own series, the count of API writes
    and the wake telemetry (whose status series are computed at scrape time, by the leader)."""
    metrics = OperatorMetrics()
    metrics.count_api_writes(lambda: 0.0)
    wiring.Telemetry(
        None,  # type: ignore[arg-type]  # never started: only its series are read
        registry=metrics.registry,
        enqueue=lambda _key: None,
        services=list,
        leading=lambda: False,
    )
    return sorted(_from_registry(metrics.registry), key=lambda metric: metric.name)


def gateway_metrics(*, per_model: bool) -> list[Metric]:
    return sorted(
        _from_registry(GatewayMetrics(per_model=per_model).registry), key=lambda metric: metric.name
    )


def _table(metrics: list[Metric]) -> str:
    rows = [
        [
            md.code(metric.name),
            metric.type,
            ", ".join(md.code(label) for label in metric.labels),
            md.text(metric.help)
            + (f" Buckets: {', '.join(f'{b:g}' for b in metric.buckets)}." if metric.buckets else ""),
        ]
        for metric in metrics
    ]
    return md.table(["series", "type", "labels", "meaning"], rows)


def page() -> str:
    dedicated = gateway_metrics(per_model=False)
    shared = {metric.name: metric for metric in gateway_metrics(per_model=True)}
    labelled = [metric.name for metric in dedicated if shared[metric.name].labels != metric.labels]
    return md.page(
        "Metrics",
        "the Prometheus registries of hearth.operator and hearth.gateway",
        "Every series Hearth exports, read from the registries the processes build. Counters are listed "
        "with the `_total` their samples carry; histograms add `_bucket`, `_sum` and `_count`.",
        "## Operator\n\n`hearth operator --metrics-bind-address` serves these. The per-LLMService series "
        "(labels `namespace`, `llmservice`) are served by the leader only, so sums never double; scrape "
        "the operator with `honor_labels` so they keep their own `namespace`.\n\n"
        + _table(operator_metrics()),
        "## Gateway\n\nEvery gateway serves `/metrics` on its HTTP port. A dedicated gateway (one "
        "LLMService) exports these as listed. A shared gateway (an LLMGateway) adds the label `model` (the "
        'LLMService a request was routed to; `""` before a route was known) to '
        + ", ".join(md.code(name) for name in labelled)
        + ".\n\n"
        + _table(dedicated),
    )
