"""Wake telemetry and accelerator accounting, wired into the operator: a cache of backend pods (whose
changes requeue their LLMService), the status fields kept up to date on each reconcile, and the Prometheus
series computed from those statuses (so they continue across an operator restart)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import prometheus_client
import pydantic
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hearth.api import llmservice, meta, telemetry, wakefailure
from hearth.api.runtime import InferenceRuntime
from hearth.common import logs, timestamps
from hearth.kube import informer, resources
from hearth.kube.client import KubeClient
from hearth.kube.informer import Informer
from hearth.operator.telemetry import accounting, wakefailures, wakes
from hearth.render import engines, names

log = logging.getLogger(__name__)

#: Backend pods only: gateway pods carry the llmservice label too, and the gateway label besides.
BACKEND_PODS = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_LLMSERVICE},!{names.LABEL_GATEWAY}"
#: Warning Events about pods: how a container that cannot be created (an image that cannot be pulled) shows
#: at once; its pod's status says so only 10-15 s later (see :mod:`hearth.operator.telemetry.wakefailures`).
POD_WARNINGS = "involvedObject.kind=Pod,type=Warning"
WAKE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1200)
#: Every LLMService phase, each a series of hearth_llmservice_phase.
PHASES: tuple[str, ...] = typing.get_args(llmservice.Phase)
#: Drains that end at idle take the kubelet's stop time plus about a second; a Sleep drain, drainTimeout.
DRAIN_BUCKETS = (0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 180, 300, 600)
SERVICE_LABELS = ("namespace", "llmservice")
#: The engine series each LLMService's runtime declares (the dashboard's engine panels select by it).
ENGINE_METRIC_INFO = "hearth_llmservice_engine_metric"
#: The most an accelerator-second total can fall back between a scrape and the status write that follows
#: (seconds of write latency x devices, plus rounding); a bigger drop is a real reset (_StatusCollector).
RACE_DRIFT_SECONDS = 60.0

Key = tuple[str, str]


def _parsed(model: type[pydantic.BaseModel], value: Any) -> Any:
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except pydantic.ValidationError:
        return None  # a hand-edited or older shape: start afresh rather than fail the reconcile


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A wake that ended in one observation, to be counted once its status is written."""

    namespace: str
    name: str
    completed: telemetry.Wake | None
    aborted: bool
    #: A wake failure recorded in this observation (a new one, not one already in the status).
    failed: wakefailure.WakeFailure | None = None
    #: A drain that ended: its seconds, and what drainTimeout would have held beyond them.
    drained: float | None = None
    drain_saved: float = 0.0


class Telemetry:
    def __init__(
        self,
        client: KubeClient,
        *,
        registry: prometheus_client.CollectorRegistry,
        enqueue: Callable[[Key], None],
        services: Callable[[], list[dict[str, Any]]],
        leading: Callable[[], bool],
        clock: Callable[[], datetime.datetime] | None = None,
        runtimes: Callable[[], Mapping[str, InferenceRuntime]] | None = None,
    ) -> None:
        self._enqueue = enqueue
        self._services = services
        self._runtimes = runtimes or dict
        self._leading = leading
        self.clock = clock or (lambda: datetime.datetime.now(tz=datetime.UTC))
        self.pods = Informer(client, resources.POD, handler=self._on_pod, label_selector=BACKEND_PODS)
        #: Also told of every backend pod change (the autoscaler's pool kick: a member's pod gone).
        self.pod_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.pod_warnings = Informer(
            client,
            resources.EVENT,
            handler=self._on_pod_warning,
            field_selector=POD_WARNINGS,
            transform=_warning_fields,
        )
        #: The Warning Events that name a wake failure, by pod UID then Event key (the cache holds every
        #: Warning about a pod in the cluster; these few are what a diagnosis reads).
        self._failure_warnings: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.phase_seconds = prometheus_client.Histogram(
            "hearth_wake_phase_seconds",
            "Phases of completed wakes from zero: scheduling, creating, loading.",
            [*SERVICE_LABELS, "phase"],
            buckets=WAKE_BUCKETS,
            registry=registry,
        )
        self.wake_seconds = prometheus_client.Histogram(
            "hearth_wake_seconds",
            "Completed wakes from zero: the backend leaving zero until its first pod was Ready.",
            list(SERVICE_LABELS),
            buckets=WAKE_BUCKETS,
            registry=registry,
        )
        self.wakes = prometheus_client.Counter(
            "hearth_wakes",
            "Wakes from zero by result: completed, or aborted (back to zero before any pod was ready).",
            [*SERVICE_LABELS, "result"],
            registry=registry,
        )
        self.failures = prometheus_client.Counter(
            "hearth_wake_failures",
            "Wakes that could not succeed, by reason (ImagePullFailed, CrashLoopBackOff, OOMKilled, ...): "
            "held requests were ended with the reason and cold ones refused until the retry time.",
            [*SERVICE_LABELS, "reason"],
            registry=registry,
        )
        self.drain_seconds = prometheus_client.Histogram(
            "hearth_backend_drain_seconds",
            "Scale-downs to zero: the Deployment at 0 until its last backend pod was gone (the preStop "
            "drain and the kubelet's stop). The accelerators stay held for this long.",
            list(SERVICE_LABELS),
            buckets=DRAIN_BUCKETS,
            registry=registry,
        )
        self.drain_saved = prometheus_client.Counter(
            "hearth_backend_drain_seconds_saved",
            "Per scale-down to zero, drainTimeout minus the drain's seconds (when the runtime drains): "
            "device time a drain that always sleeps drainTimeout would have held on, per replica.",
            list(SERVICE_LABELS),
            registry=registry,
        )
        registry.register(_StatusCollector(self))
        self._known: set[Key] = set()

    def _series_for(self, service: dict[str, str]) -> None:
        """Create the service's wake series at 0 on first sight: a series that first appears with its
        first observation already counted shows no increase to rate() and increase()."""
        key = (service["namespace"], service["llmservice"])
        if key in self._known:
            return
        self._known.add(key)
        self.wake_seconds.labels(**service)
        for phase in wakes.PHASES:
            self.phase_seconds.labels(**service, phase=phase)
        for result in ("completed", "aborted"):
            self.wakes.labels(**service, result=result)
        for reason in wakefailure.Reason:
            self.failures.labels(**service, reason=str(reason))
        self.drain_seconds.labels(**service)
        self.drain_saved.labels(**service)

    def forget(self, name: str, namespace: str) -> None:
        """Drop a deleted LLMService's wake series (its status-derived series vanish with it)."""
        if (namespace, name) not in self._known:
            return
        self._known.discard((namespace, name))
        self.wake_seconds.remove(namespace, name)
        self.drain_seconds.remove(namespace, name)
        self.drain_saved.remove(namespace, name)
        for phase in wakes.PHASES:
            self.phase_seconds.remove(namespace, name, phase)
        for result in ("completed", "aborted"):
            self.wakes.remove(namespace, name, result)
        for reason in wakefailure.Reason:
            self.failures.remove(namespace, name, str(reason))

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        for listener in self.pod_listeners:
            listener(kind, pod)
        metadata = pod.get("metadata", {})
        service = (metadata.get("labels") or {}).get(names.LABEL_LLMSERVICE)
        if service:
            self._enqueue((meta.namespace_of(pod), service))

    def _on_pod_warning(self, kind: str, event: dict[str, Any]) -> None:
        involved = event.get("involvedObject") or {}
        uid, key = str(involved.get("uid") or ""), informer.key_of(event)
        if kind == "DELETED" or wakefailures.event_failure(event) is None:
            kept = self._failure_warnings.get(uid)
            if kept is not None:
                kept.pop(key, None)
                if not kept:
                    del self._failure_warnings[uid]
            return
        self._failure_warnings.setdefault(uid, {})[key] = event
        pod = self.pods.get(str(involved.get("name")), str(involved.get("namespace") or ""))
        if pod is not None and pod.get("metadata", {}).get("uid") == uid:
            self._on_pod(kind, pod)

    def warnings_of(self, pods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """The failure-naming Warning Events of *pods*, by pod UID."""
        found: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            uid = pod.get("metadata", {}).get("uid") or ""
            if uid in self._failure_warnings:
                found[uid] = list(self._failure_warnings[uid].values())
        return found

    def backend_pods(self, name: str, namespace: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.pods.items()
            if pod.get("metadata", {}).get("namespace") == namespace
            and (pod["metadata"].get("labels") or {}).get(names.LABEL_LLMSERVICE) == name
        ]

    def update(
        self,
        result: dict[str, Any],
        *,
        name: str,
        namespace: str,
        deployment: dict[str, Any] | None,
        at: datetime.datetime,
        drain_timeout: float = 0.0,
        scheduled: bool = False,
    ) -> Outcome | None:
        """Bring the wake and accounting fields of the status *result* up to *at* (in place). The returned
        outcome goes to :meth:`record` once that status is written: a write lost to a conflict is redone
        from the old status, and would otherwise count the same wake twice. *drain_timeout* is the
        LLMService's drainTimeout in seconds when its runtime drains (0 when it does not); *scheduled*,
        whether a warm window is in force (its accelerator time is then scheduled, not demand-driven)."""
        if deployment is None:
            return None  # nothing observed (e.g. a failed reconcile): keep what the status says
        pods = self.backend_pods(name, namespace)
        current = _parsed(telemetry.Wake, result.get("currentWake"))
        kept = _parsed(telemetry.Accounting, result.get("accounting"))
        step = wakes.observe(
            current,
            was_idle=kept.idle if kept is not None else False,
            deployment=deployment,
            pods=pods,
            at=at,
        )
        self._series_for({"namespace": namespace, "llmservice": name})
        if step.current is not None:
            result["currentWake"] = step.current.to_wire()
        else:
            result.pop("currentWake", None)
        if step.completed is not None:
            result["lastWake"] = step.completed.to_wire()
            history = wakes.remember(
                _parsed(telemetry.WakeHistory, result.get("wakeHistory")), step.completed
            )
            result["wakeHistory"] = history.to_wire()
        rates = accounting.rates_of(
            deployment=deployment, pods=pods, waking=step.current is not None, scheduled=scheduled
        )
        drained = accounting.drain_ended(kept, rates=rates, at=at)
        result["accounting"] = accounting.advance(kept, rates=rates, at=at).to_wire()
        failed = self._failure(
            result, deployment=deployment, pods=pods, warnings=self.warnings_of(pods), at=at
        )
        if step.completed is None and not step.aborted and drained is None and failed is None:
            return None
        return Outcome(
            namespace=namespace,
            name=name,
            completed=step.completed,
            aborted=step.aborted,
            failed=failed,
            drained=drained,
            drain_saved=max(drain_timeout - drained, 0.0) if drained is not None else 0.0,
        )

    @staticmethod
    def _failure(
        result: dict[str, Any],
        *,
        deployment: dict[str, Any],
        pods: list[dict[str, Any]],
        warnings: dict[str, list[dict[str, Any]]],
        at: datetime.datetime,
    ) -> wakefailure.WakeFailure | None:
        """Bring ``wakeFailure`` up to *at* (in place); the failure if this observation recorded a new one."""
        before = _parsed(wakefailure.WakeFailure, result.get("wakeFailure"))
        template = wakefailures.template_digest(deployment)
        recorded = wakefailures.superseded(before, template=template, at=at)
        stale_before = timestamps.parse(recorded.stale_before) if recorded is not None else None
        ready = any(wakes.is_ready(pod) for pod in wakes.current(pods))
        failure = wakefailures.advance(
            recorded,
            wakefailures.diagnose(deployment, pods, at=at, stale_before=stale_before, warnings=warnings),
            ready=ready,
            template=template,
            at=at,
        )
        if failure is None:
            result.pop("wakeFailure", None)
            return None
        result["wakeFailure"] = failure.to_wire()
        return failure if before is None or failure.since != before.since else None

    def record(self, outcome: Outcome) -> None:
        """Count a wake that ended, now that the status saying so is written."""
        service = {"namespace": outcome.namespace, "llmservice": outcome.name}
        if outcome.failed is not None:
            self.failures.labels(**service, reason=outcome.failed.reason).inc()
            log.warning(
                "wake failed",
                extra=logs.fields(
                    **service,
                    reason=outcome.failed.reason,
                    message=outcome.failed.message,
                    retry_at=outcome.failed.retry_at,
                ),
            )
        if outcome.drained is not None:
            self.drain_seconds.labels(**service).observe(outcome.drained)
            self.drain_saved.labels(**service).inc(outcome.drain_saved)
            log.info(
                "backend drained to zero",
                extra=logs.fields(**service, drain_s=round(outcome.drained, 3), saved_s=outcome.drain_saved),
            )
        if outcome.aborted:
            self.wakes.labels(**service, result="aborted").inc()
            log.info("wake aborted: back to zero before a pod was ready", extra=logs.fields(**service))
        wake = outcome.completed
        if wake is None:
            return
        self.wakes.labels(**service, result="completed").inc()
        for phase, seconds in wakes.phase_seconds(wake).items():
            self.phase_seconds.labels(**service, phase=phase).observe(seconds)
        if wake.total_seconds is not None:
            self.wake_seconds.labels(**service).observe(wake.total_seconds)
        log.info(
            "wake completed",
            extra=logs.fields(
                **service,
                total_s=wake.total_seconds,
                scheduling_s=wake.scheduling_seconds,
                creating_s=wake.creating_seconds,
                loading_s=wake.loading_seconds,
                pod=wake.pod or "",
            ),
        )

    def unschedulable(self, name: str, namespace: str) -> int:
        count = 0
        for pod in wakes.live(self.backend_pods(name, namespace)):
            for condition in pod.get("status", {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                    count += 1
        return count


def _warning_fields(event: dict[str, Any]) -> dict[str, Any]:
    """What a diagnosis reads of an Event: the cache holds every Warning about a pod in the cluster."""
    metadata = event.get("metadata", {})
    involved = event.get("involvedObject") or {}
    return {
        "metadata": {k: metadata[k] for k in ("name", "namespace", "resourceVersion") if k in metadata},
        "involvedObject": {
            k: involved[k] for k in ("name", "namespace", "uid", "fieldPath") if k in involved
        },
        "reason": event.get("reason"),
        "message": event.get("message"),
    }


class _StatusCollector(Collector):
    """Series read from the LLMServices' statuses at scrape time (leader only: a standby's statuses are the
    same objects, and two processes exposing them would double every sum)."""

    def __init__(self, owner: Telemetry) -> None:
        self._owner = owner
        # The accelerator-second counters as last exported, by labels. A reconcile closes the totals at its
        # observation time and writes them a moment later; a scrape in between has brought the old rates
        # a little further (and the totals are rounded to milliseconds), so the written totals can be a
        # hair below what was exported. A counter that goes down is a reset to Prometheus, and rate() would
        # count the whole total again; so such a drop (at most RACE_DRIFT_SECONDS) is exported as the last
        # value. A bigger drop is a real reset (the status's totals cleared by hand) and is passed on as
        # one, rather than freezing the series until the new totals catch up. Series of services gone (or
        # of a process no longer leading) are forgotten, so a new one starts from its own totals.
        self._exported: dict[tuple[str, ...], float] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())  # computed at collect time; nothing to declare up front

    def collect(self) -> Iterator[Metric]:
        owner = self._owner
        allocated = CounterMetricFamily(
            "hearth_accelerator_seconds",
            "Accelerator-seconds held by bound backend pods, by state (waking: during a wake from zero; "
            "serving: the rest). Allocated is their sum.",
            labels=[*SERVICE_LABELS, "resource", "state"],
        )
        saved = CounterMetricFamily(
            "hearth_accelerator_seconds_saved",
            "Accelerator-seconds not held because the backend was at zero (time at zero x per replica).",
            labels=[*SERVICE_LABELS, "resource"],
        )
        scheduled = CounterMetricFamily(
            "hearth_accelerator_seconds_scheduled",
            "Of the allocated accelerator-seconds, those held while a warm window was in force "
            "(spec.scaling.schedules); the rest were demand-driven.",
            labels=[*SERVICE_LABELS, "resource"],
        )
        held = GaugeMetricFamily(
            "hearth_accelerators_held",
            "Accelerators held right now by bound backend pods.",
            labels=[*SERVICE_LABELS, "resource"],
        )
        phase = GaugeMetricFamily(
            "hearth_llmservice_phase",
            "1 for the LLMService's current phase.",
            labels=[*SERVICE_LABELS, "phase"],
        )
        replicas = GaugeMetricFamily(
            "hearth_llmservice_ready_replicas", "Ready backend replicas.", labels=list(SERVICE_LABELS)
        )
        waking = GaugeMetricFamily(
            "hearth_wake_in_progress_seconds",
            "Age of the wake in progress (0 when the backend is not waking).",
            labels=list(SERVICE_LABELS),
        )
        p50 = GaugeMetricFamily(
            "hearth_wake_recent_p50_seconds", "Median of recent wakes.", labels=list(SERVICE_LABELS)
        )
        p90 = GaugeMetricFamily(
            "hearth_wake_recent_p90_seconds", "90th percentile of recent wakes.", labels=list(SERVICE_LABELS)
        )
        unschedulable = GaugeMetricFamily(
            "hearth_backend_unschedulable_pods",
            "Backend pods the scheduler could not place (no capacity for their accelerators).",
            labels=list(SERVICE_LABELS),
        )
        engine_metric = GaugeMetricFamily(
            ENGINE_METRIC_INFO,
            "1 per engine series the LLMService's runtime declares (its metrics, else its engine family's), "
            "by role: waiting, running, kv_usage, ttft. Dashboards select the engine's series by these "
            "names.",
            labels=[*SERVICE_LABELS, "runtime", "family", "role", "metric"],
        )
        exported: dict[tuple[str, ...], float] = {}

        def never_back(family: CounterMetricFamily, labels: list[str], value: float) -> None:
            key = (family.name, *labels)
            last = self._exported.get(key, value)
            exported[key] = last if value < last <= value + RACE_DRIFT_SECONDS else value
            family.add_metric(labels, exported[key])

        if owner._leading():
            now = owner.clock()
            for service in owner._services():
                metadata = service.get("metadata", {})
                key = [meta.namespace_of(service), str(metadata.get("name"))]
                status = service.get("status") or {}
                for name in PHASES:
                    phase.add_metric([*key, name], 1.0 if status.get("phase") == name else 0.0)
                replicas.add_metric(key, float(status.get("replicas") or 0))
                runtime = owner._runtimes().get(str(status.get("resolvedRuntime") or ""))
                for role, series in _engine_series(runtime):
                    assert runtime is not None
                    labels = [*key, runtime.metadata.name, runtime.spec.family, role, series]
                    engine_metric.add_metric(labels, 1.0)
                unschedulable.add_metric(key, float(owner.unschedulable(key[1], key[0])))
                current = _parsed(telemetry.Wake, status.get("currentWake"))
                started = timestamps.parse(current.started_at) if current is not None else None
                waking.add_metric(key, max((now - started).total_seconds(), 0.0) if started else 0.0)
                history = _parsed(telemetry.WakeHistory, status.get("wakeHistory"))
                if history is not None and history.p90_seconds is not None:
                    p50.add_metric(key, history.p50_seconds or 0.0)
                    p90.add_metric(key, history.p90_seconds)
                kept = _parsed(telemetry.Accounting, status.get("accounting"))
                if kept is None:
                    continue
                for usage in accounting.totals_at(kept, now):
                    labels = [*key, usage.resource_name]
                    never_back(allocated, [*labels, "waking"], usage.waking_seconds)
                    never_back(allocated, [*labels, "serving"], usage.serving_seconds)
                    never_back(saved, labels, usage.saved_seconds)
                    never_back(scheduled, labels, usage.scheduled_seconds)
                    held.add_metric(labels, float(usage.held))
        self._exported = exported
        yield from (
            allocated,
            saved,
            scheduled,
            held,
            phase,
            replicas,
            waking,
            p50,
            p90,
            unschedulable,
            engine_metric,
        )


def _engine_series(runtime: InferenceRuntime | None) -> list[tuple[str, str]]:
    """(role, series name) of the engine series *runtime* declares, or its family's."""
    declared = engines.metrics(runtime) if runtime is not None else None
    if declared is None:
        return []
    roles = (
        ("waiting", declared.queue_depth),
        ("running", declared.running),
        ("kv_usage", declared.kv_cache_util),
        ("ttft", declared.ttft),
    )
    return [(role, series) for role, series in roles if series]
