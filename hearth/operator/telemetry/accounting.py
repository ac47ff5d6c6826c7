"""Accelerator accounting (pure): accelerator-seconds allocated to an LLMService's backend (split into
waking and serving) and saved by scaling to zero, integrated between observations.

Between two observations that change nothing the rates are constant, so the totals in status move only
when a rate changes (a pod bound or gone, a wake starting or ending, the backend reaching or leaving zero):
an idle cluster makes no status writes, and the live value is always totals + (now - since) * rates.

Definitions (README "Accelerator accounting"):
- allocated: for each bound backend pod (spec.nodeName set) that has not finished, the accelerators its
  containers ask for (extended resources: device-plugin names such as nvidia.com/gpu), from the first
  observation of it bound until it is gone; split into *waking* (while a wake is in progress) and
  *serving* (the rest).
- saved: while the backend is at zero (Deployment scaled to 0 and no pod left), the accelerators one
  replica asks for (from the pod template): what the same service with min 1 would have held.
- drain: from the first observation of the Deployment at 0 with pods left until the last pod is gone (the
  preStop drain plus the kubelet's stop); saved time starts only at its end. A drain cut short by a wake
  (the Deployment scaled up again before the pods were gone) is not a drain that ended.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from hearth.api import telemetry
from hearth.common import timestamps
from hearth.operator.telemetry import wakes

_NOT_ACCELERATORS = ("hugepages-",)


def accelerator_names(container: dict[str, Any]) -> dict[str, int]:
    """Extended resources (accelerators) one container asks for, by resource name."""
    resources = container.get("resources") or {}
    wanted: dict[str, int] = {}
    for section in ("limits", "requests"):
        for name, value in (resources.get(section) or {}).items():
            if "/" not in name or name.startswith(_NOT_ACCELERATORS) or name.startswith("kubernetes.io/"):
                continue
            try:
                count = int(str(value))
            except ValueError:
                continue  # device-plugin resources are whole numbers; anything else is not one
            wanted[name] = max(wanted.get(name, 0), count)
    return wanted


def pod_accelerators(pod_spec: dict[str, Any]) -> dict[str, int]:
    """What a pod holds: its containers' sum (init containers run before and release theirs)."""
    total: dict[str, int] = {}
    for container in pod_spec.get("containers") or []:
        for name, count in accelerator_names(container).items():
            total[name] = total.get(name, 0) + count
    for container in pod_spec.get("initContainers") or []:
        for name, count in accelerator_names(container).items():
            total[name] = max(total.get(name, 0), count)
    return total


@dataclasses.dataclass(frozen=True)
class Rates:
    at_zero: bool
    idle: bool
    waking: bool
    held: dict[str, int]
    per_replica: dict[str, int]
    #: The Deployment is at zero and backend pods are left (draining, or not yet told to stop).
    draining: bool = False
    #: A warm window is in force: what is held now is held by schedule (issue 31).
    scheduled: bool = False


def rates_of(
    *, deployment: dict[str, Any], pods: list[dict[str, Any]], waking: bool, scheduled: bool = False
) -> Rates:
    held: dict[str, int] = {}
    for pod in wakes.live(pods):
        if wakes.bound(pod):
            for name, count in pod_accelerators(pod.get("spec", {})).items():
                held[name] = held.get(name, 0) + count
    template = deployment.get("spec", {}).get("template", {}).get("spec", {})
    at_zero = wakes.at_zero(deployment, pods)
    replicas = deployment.get("spec", {}).get("replicas")
    return Rates(
        at_zero=at_zero,
        idle=wakes.idle(deployment, pods),
        waking=waking,
        held=held,
        per_replica=pod_accelerators(template),
        draining=replicas is not None and int(replicas) == 0 and not at_zero,
        scheduled=scheduled,
    )


def drain_ended(
    accounting: telemetry.Accounting | None, *, rates: Rates, at: datetime.datetime
) -> float | None:
    """The seconds a drain took, if one ended with this observation (the Deployment at 0 first seen with
    pods left, to the last pod gone); else None."""
    if accounting is None or accounting.draining_since is None or not rates.at_zero:
        return None
    started = timestamps.parse(accounting.draining_since)
    return max((at - started).total_seconds(), 0.0) if started is not None else None


def _recorded(accounting: telemetry.Accounting) -> Rates:
    return Rates(
        at_zero=accounting.at_zero,
        idle=accounting.idle,
        waking=accounting.waking,
        held={usage.resource_name: usage.held for usage in accounting.resources if usage.held},
        per_replica={
            usage.resource_name: usage.per_replica for usage in accounting.resources if usage.per_replica
        },
        draining=accounting.draining_since is not None,
        scheduled=accounting.scheduled,
    )


def _elapsed(accounting: telemetry.Accounting, at: datetime.datetime) -> float:
    since = timestamps.parse(accounting.since)
    return max((at - since).total_seconds(), 0.0) if since is not None else 0.0


def totals_at(accounting: telemetry.Accounting, at: datetime.datetime) -> list[telemetry.AcceleratorUsage]:
    """Each resource's totals brought forward from ``since`` to *at* with the recorded rates."""
    elapsed = _elapsed(accounting, at)
    brought = []
    for usage in accounting.resources:
        held = usage.held * elapsed
        brought.append(
            usage.model_copy(
                update={
                    "waking_seconds": usage.waking_seconds + (held if accounting.waking else 0.0),
                    "serving_seconds": usage.serving_seconds + (0.0 if accounting.waking else held),
                    "saved_seconds": usage.saved_seconds
                    + (usage.per_replica * elapsed if accounting.at_zero else 0.0),
                    "scheduled_seconds": usage.scheduled_seconds + (held if accounting.scheduled else 0.0),
                }
            )
        )
    return brought


def advance(
    accounting: telemetry.Accounting | None, *, rates: Rates, at: datetime.datetime
) -> telemetry.Accounting:
    """The accounting after an observation at *at*: unchanged if the rates are the same, else the totals
    closed at *at* and the new rates recorded from then."""
    if accounting is not None and _recorded(accounting) == rates:
        return accounting
    previous = totals_at(accounting, at) if accounting is not None else []
    by_name = {usage.resource_name: usage for usage in previous}
    for name in sorted({*rates.held, *rates.per_replica} - set(by_name)):
        by_name[name] = telemetry.AcceleratorUsage(resource_name=name)
    resources = [
        by_name[name].model_copy(
            update={"held": rates.held.get(name, 0), "per_replica": rates.per_replica.get(name, 0)}
        )
        for name in sorted(by_name)
    ]
    saved = sum(usage.saved_seconds for usage in resources)
    allocated = sum(usage.waking_seconds + usage.serving_seconds for usage in resources)
    scheduled = sum(usage.scheduled_seconds for usage in resources)
    draining_since = None
    if rates.draining:
        kept = accounting.draining_since if accounting is not None else None
        draining_since = kept or timestamps.format_millis(at)
    return telemetry.Accounting(
        since=timestamps.format_millis(at),
        at_zero=rates.at_zero,
        idle=rates.idle,
        waking=rates.waking,
        scheduled=rates.scheduled,
        draining_since=draining_since,
        resources=[_rounded(usage) for usage in resources],
        saved_accelerator_hours=round(saved / 3600, 2),
        allocated_accelerator_hours=round(allocated / 3600, 2),
        scheduled_accelerator_hours=round(scheduled / 3600, 2),
    )


def _rounded(usage: telemetry.AcceleratorUsage) -> telemetry.AcceleratorUsage:
    # Milliseconds are the precision of the timestamps; more digits would only churn the status.
    return usage.model_copy(
        update={
            "waking_seconds": round(usage.waking_seconds, 3),
            "serving_seconds": round(usage.serving_seconds, 3),
            "saved_seconds": round(usage.saved_seconds, 3),
            "scheduled_seconds": round(usage.scheduled_seconds, 3),
        }
    )
