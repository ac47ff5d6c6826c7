"""Computing an LLMService's status from what was observed (pure): the SPEC phase and Ready condition,
Hearth's extra conditions, and whether anything changed enough to write."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from hearth.api import engines, meta, scalermodes
from hearth.api.llmservice import Scaling
from hearth.api.wakereasons import Condition, Health
from hearth.common import durations, timestamps
from hearth.render import names
from hearth.render.errors import Reason, ReconcileError

READY = str(Condition.READY)
RUNTIME_RESOLVED = str(Condition.RUNTIME_RESOLVED)
MODEL_RESOLVED = str(Condition.MODEL_RESOLVED)
SCALING = str(Condition.SCALING)
PERMISSIONS = str(Condition.PERMISSIONS)
DEGRADED = str(Condition.DEGRADED)
AUTOSCALING_READY = str(Condition.AUTOSCALING_READY)
#: Degraded's reason when it is False, by phase (Degraded True is handled apart).
_HEALTH = {"Ready": Health.HEALTHY, "ScaledToZero": Health.INACTIVE}

_RUNTIME_REASONS = {Reason.RUNTIME_RESOLUTION, Reason.UNSUPPORTED_VENDOR}


def ever_scaled(deployment: dict[str, Any] | None) -> bool:
    """Whether the backend Deployment's spec changed since it was created. Scaling it (to zero and back:
    KEDA, the built-in autoscaler or a gateway's wake, all through the scale subresource) bumps its
    ``metadata.generation``; a Deployment still at generation 1 has only ever had its defaulted replica,
    so leaving the creation-time ScaledToZero phase (SPEC §2.7) is its first rollout, not a wake. (A
    template change before the first pod existed also bumps it, and would count: a window of a second.)"""
    generation = (deployment or {}).get("metadata", {}).get("generation")
    return generation is None or int(generation) > 1


def track_activation(
    result: dict[str, Any],
    *,
    previous: str | None,
    phase: str,
    at: datetime.datetime,
    scaled: bool = True,
) -> None:
    """DESIGN 6: ``lastActivationTime`` when the backend leaves zero, and ``lastColdStartDuration`` when it
    becomes ready after that (both observed here, from the backend Deployment's status). They live in the
    status itself, so an operator restart in the middle of a cold start still measures it. *scaled* is
    :func:`ever_scaled` of the backend: without it, no wake happened (issue 19)."""
    if previous == "ScaledToZero" and not scaled:
        return
    if previous == "ScaledToZero" and phase == "Loading":
        result["lastActivationTime"] = timestamps.format_millis(at)
        result.pop("lastColdStartDuration", None)  # absent while this cold start is being measured
    elif previous == "ScaledToZero" and phase == "Ready":
        # Ready before Loading was ever seen: no honest duration, so the previous one stays.
        result["lastActivationTime"] = timestamps.format_millis(at)
    elif previous == "Loading" and phase == "Ready" and "lastColdStartDuration" not in result:
        # (A pod replaced while serving also goes Loading -> Ready; that one is not a cold start.)
        started = timestamps.parse(result.get("lastActivationTime"))
        if started is not None:
            nanos = int((at - started).total_seconds() * 1000) * durations.MILLISECOND
            result["lastColdStartDuration"] = durations.format_nanoseconds(max(nanos, 0))


def show_wake_failure(result: dict[str, Any], *, at: datetime.datetime) -> float | None:
    """While ``wakeFailure`` refuses cold requests (until its retryAt): phase Degraded and Ready False with
    the failure's reason and message, in place. Returns the seconds until it stops refusing (the status
    must be written again then), or None."""
    failure = result.get("wakeFailure") or {}
    retry_at = timestamps.parse(failure.get("retryAt"))
    if retry_at is None or at >= retry_at:
        return None
    result["phase"] = "Degraded"
    generation = int(result.get("observedGeneration") or 0)
    reason, message = str(failure.get("reason")), str(failure.get("message"))
    ready = _condition(READY, False, reason, message, generation)
    degraded = _condition(DEGRADED, True, reason, message, generation)
    result["conditions"] = _replace(result.get("conditions") or [], [ready, degraded])
    return (retry_at - at).total_seconds()


def _replace(current: list[dict[str, Any]], changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*current* with the conditions of *changed* types replaced in place (the others kept), transition
    times as :func:`merge_conditions` keeps them."""
    updated = {condition["type"]: condition for condition in merge_conditions(current, changed)}
    kept = [updated.pop(condition.get("type"), condition) for condition in current]
    return kept + list(updated.values())


def phase_of(deployment: dict[str, Any] | None, *, min_replicas: int) -> tuple[str, str, str]:
    """(phase, Ready reason, Ready message) from the backend Deployment (SPEC §2.7 precedence)."""
    status = (deployment or {}).get("status", {})
    if int(status.get("readyReplicas") or 0) > 0:
        return "Ready", "Available", "serving pods are ready"
    if int(status.get("replicas") or 0) > 0:
        return "Loading", "Deploying", "waiting for serving pods to load the model"
    if min_replicas == 0:
        return "ScaledToZero", "ScaledToZero", "backend is at zero replicas; a request wakes it"
    return "Pending", "Pending", "waiting for the backend Deployment"


def _condition(kind: str, status: bool | None, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "Unknown" if status is None else ("True" if status else "False"),
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def desired(
    *,
    current: dict[str, Any],
    service: dict[str, Any],
    scaling: Scaling | None,
    runtime: str | None,
    deployment: dict[str, Any] | None,
    scaler_mode: scalermodes.ScalerMode | None,
    keda_installed: bool,
    error: ReconcileError | None,
    at: datetime.datetime | None = None,
    permission_notes: Sequence[str] = (),
    scaling_blocked: str | None = None,
    gateway: str | None = None,
    engine: engines.Engine | None = None,
) -> dict[str, Any]:
    """The status to hold; fields not owned here (autoscaler decisions) are kept from *current*. *service*
    is the object as read (its metadata), *scaling* its parsed spec.scaling (None only with an *error*: a
    spec that does not parse). *at* is the moment of observation (now by default). *permission_notes* say
    what was skipped or degraded for lack of RBAC (a Permissions condition, present only then);
    *scaling_blocked* says why nothing can scale (Scaling False, reason MissingPermission); *engine* is the
    chosen runtime's engine family (status.engine)."""
    metadata = service["metadata"]
    generation = int(metadata.get("generation") or 0)
    result = dict(current)
    result["observedGeneration"] = generation
    conditions: list[dict[str, Any]] = []
    if error is not None:
        result["phase"] = "Degraded"
        conditions.append(_condition(READY, False, str(error.reason), error.message, generation))
        degraded = _condition(DEGRADED, True, str(error.reason), error.message, generation)
    else:
        assert scaling is not None, "a reconcile without an error has parsed the spec"
        phase, reason, message = phase_of(deployment, min_replicas=scaling.min)
        at = at or datetime.datetime.now(tz=datetime.UTC)
        track_activation(
            result, previous=current.get("phase"), phase=phase, at=at, scaled=ever_scaled(deployment)
        )
        result["phase"] = phase
        result["resolvedRuntime"] = runtime
        if engine is not None:
            # Shared gateways read these per model (they do not read InferenceRuntimes).
            result["engine"] = {
                "family": str(engine.family),
                "streamRule": str(engine.stream_rule),
                "upstreamAfterStream": engine.upstream_after_stream,
            }
        result["replicas"] = int((deployment or {}).get("status", {}).get("readyReplicas") or 0)
        if gateway is not None:
            result["gateway"] = gateway
            result["endpointURL"] = names.shared_endpoint_url(gateway, meta.namespace_of(service))
        else:
            result.pop("gateway", None)
            result["endpointURL"] = names.endpoint_url(metadata["name"], meta.namespace_of(service))
        conditions.append(_condition(READY, phase == "Ready", reason, message, generation))
        degraded = _health_condition(phase, generation)

    conditions.extend(_resolution_conditions(runtime, error, generation))
    if scaling_blocked is not None and error is None:
        scaling_condition = _condition(SCALING, False, "MissingPermission", scaling_blocked, generation)
    else:
        scaling_condition = _scaling_condition(scaler_mode, keda_installed, generation, error=error)
    conditions.append(scaling_condition)
    conditions.append(degraded)
    # The reference v0.4's name for what Scaling says: one vocabulary, two types.
    conditions.append({**scaling_condition, "type": AUTOSCALING_READY})
    if permission_notes:
        message = "; ".join(permission_notes)
        conditions.append(_condition(PERMISSIONS, False, "MissingPermission", message, generation))
    result["conditions"] = merge_conditions(current.get("conditions") or [], conditions)
    return result


def _health_condition(phase: str, generation: int) -> dict[str, Any]:
    """Degraded False, with why by *phase*; a failed wake turns it True (:func:`show_wake_failure`)."""
    health = _HEALTH.get(phase, Health.PROGRESSING)
    messages = {
        Health.HEALTHY: "no backend failure is observed",
        Health.INACTIVE: "backend is at zero replicas with no failed wake to report",
        Health.PROGRESSING: "the backend is starting; no failure is observed so far",
    }
    return _condition(DEGRADED, False, str(health), messages[health], generation)


def _resolution_conditions(
    runtime: str | None, error: ReconcileError | None, generation: int
) -> list[dict[str, Any]]:
    """RuntimeResolved and ModelResolved. *runtime* is the one selected by this reconcile: None when it
    failed before selection (e.g. the object did not parse), and then nothing is claimed about either."""
    reason = error.reason if error is not None else None
    if error is not None and reason in _RUNTIME_REASONS:
        return [
            _condition(RUNTIME_RESOLVED, False, str(reason), error.message, generation),
            _condition(MODEL_RESOLVED, None, "RuntimeUnresolved", "runtime not resolved yet", generation),
        ]
    unknown = f"not evaluated: reconcile failed first ({reason})"
    if runtime is None:
        runtime_condition = _condition(RUNTIME_RESOLVED, None, "NotEvaluated", unknown, generation)
    else:
        message = f"using InferenceRuntime {runtime}"
        runtime_condition = _condition(RUNTIME_RESOLVED, True, "Resolved", message, generation)
    if error is not None and reason is Reason.MODEL_RESOLUTION:
        model_condition = _condition(MODEL_RESOLVED, False, str(reason), error.message, generation)
    elif runtime is None:
        model_condition = _condition(MODEL_RESOLVED, None, "NotEvaluated", unknown, generation)
    else:
        model_condition = _condition(MODEL_RESOLVED, True, "Resolved", "model source resolved", generation)
    return [runtime_condition, model_condition]


_SCALING_REASONS = {Reason.SCALED_OBJECT, Reason.APPLY_SCALED_OBJECT}


def _scaling_condition(
    mode: scalermodes.ScalerMode | None,
    keda_installed: bool,
    generation: int,
    *,
    error: ReconcileError | None = None,
) -> dict[str, Any]:
    if mode is None:
        return _condition(SCALING, None, "Unknown", "not reconciled yet", generation)
    if error is not None and error.reason in _SCALING_REASONS:
        return _condition(SCALING, False, str(error.reason), error.message, generation)
    traits = scalermodes.traits(mode)
    needs_keda = traits.needs_keda
    if error is not None and not (needs_keda and not keda_installed):
        # The scaling children were not brought up to date, so whether anything scales is not known.
        return _condition(
            SCALING,
            None,
            "ReconcileFailed",
            f"scaling ({mode}) is not set up while reconcile fails ({error.reason})",
            generation,
        )
    if needs_keda and not keda_installed:
        return _condition(
            SCALING,
            False,
            "KEDANotInstalled",
            f"scaler mode {mode} needs KEDA, which is not installed",
            generation,
        )
    return _condition(SCALING, True, traits.scaling_reason, traits.scaling_message, generation)


def merge_conditions(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply *wanted* like meta.SetStatusCondition: lastTransitionTime moves only when status flips."""
    previous = {condition.get("type"): condition for condition in current}
    merged = []
    for condition in wanted:
        old = previous.get(condition["type"])
        if old is not None and old.get("status") == condition["status"] and old.get("lastTransitionTime"):
            transition = old["lastTransitionTime"]
        else:
            transition = timestamps.format_seconds()
        merged.append({**condition, "lastTransitionTime": transition})
    return merged


def differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether writing *wanted* would change anything (None-valued fields count as absent)."""
    return bool(_clean(current) != _clean(wanted))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value
