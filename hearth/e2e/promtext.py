"""Read a Prometheus text page into flat samples, so a scenario can compare a gateway's counters before
and after it acts."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: ``name{label="value",...}`` (labels sorted) → value; a sample without labels is just its name.
Samples = dict[str, float]


def key(name: str, **labels: str) -> str:
    if not labels:
        return name
    inner = ",".join(f'{label}="{value}"' for label, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def parse(text: str) -> Samples:
    return {
        key(sample.name, **sample.labels): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much one sample grew (a sample missing before counts as 0)."""
    sample = key(name, **labels)
    return after.get(sample, 0.0) - before.get(sample, 0.0)


def total_delta(before: dict[str, Samples], after: dict[str, Samples], name: str, **labels: str) -> float:
    """Growth of one sample summed over several pods (by pod name; a pod new since *before* counts from 0)."""
    return sum(delta(before.get(pod, {}), samples, name, **labels) for pod, samples in after.items())
