"""Computing an LLMService's status from what was observed (pure): the SPEC phase and Ready condition,
Hearth's extra conditions, and whether anything changed enough to write."""

from __future__ import annotations

import datetime
from typing import Any

from hearth.api import meta, scalermodes
from hearth.api.llmservice import Scaling
from hearth.common import durations
from hearth.render import names
from hearth.render.errors import Reason, ReconcileError

READY = "Ready"
RUNTIME_RESOLVED = "RuntimeResolved"
MODEL_RESOLVED = "ModelResolved"
SCALING = "Scaling"

_RUNTIME_REASONS = {Reason.RUNTIME_RESOLUTION, Reason.UNSUPPORTED_VENDOR}


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _precise(moment: datetime.datetime) -> str:
    """RFC 3339 with milliseconds: a cold start is measured in seconds, so whole seconds are too coarse."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def track_activation(
    result: dict[str, Any], *, previous: str | None, phase: str, at: datetime.datetime
) -> None:
    """DESIGN 6: ``lastActivationTime`` when the backend leaves zero, and ``lastColdStartDuration`` when it
    becomes ready after that (both observed here, from the backend Deployment's status). They live in the
    status itself, so an operator restart in the middle of a cold start still measures it."""
    if previous == "ScaledToZero" and phase == "Loading":
        result["lastActivationTime"] = _precise(at)
        result.pop("lastColdStartDuration", None)  # absent while this cold start is being measured
    elif previous == "ScaledToZero" and phase == "Ready":
        # Ready before Loading was ever seen: no honest duration, so the previous one stays.
        result["lastActivationTime"] = _precise(at)
    elif previous == "Loading" and phase == "Ready" and "lastColdStartDuration" not in result:
        # (A pod replaced while serving also goes Loading -> Ready; that one is not a cold start.)
        started = _parse(result.get("lastActivationTime"))
        if started is not None:
            nanos = int((at - started).total_seconds() * 1000) * durations.MILLISECOND
            result["lastColdStartDuration"] = durations.format_nanoseconds(max(nanos, 0))


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
) -> dict[str, Any]:
    """The status to hold; fields not owned here (autoscaler decisions) are kept from *current*. *service*
    is the object as read (its metadata), *scaling* its parsed spec.scaling (None only with an *error*: a
    spec that does not parse). *at* is the moment of observation (now by default)."""
    metadata = service["metadata"]
    generation = int(metadata.get("generation") or 0)
    result = dict(current)
    result["observedGeneration"] = generation
    conditions: list[dict[str, Any]] = []
    if error is not None:
        result["phase"] = "Degraded"
        conditions.append(_condition(READY, False, str(error.reason), error.message, generation))
    else:
        assert scaling is not None, "a reconcile without an error has parsed the spec"
        phase, reason, message = phase_of(deployment, min_replicas=scaling.min)
        at = at or datetime.datetime.now(tz=datetime.UTC)
        track_activation(result, previous=current.get("phase"), phase=phase, at=at)
        result["phase"] = phase
        result["resolvedRuntime"] = runtime
        result["replicas"] = int((deployment or {}).get("status", {}).get("readyReplicas") or 0)
        result["endpointURL"] = names.endpoint_url(metadata["name"], meta.namespace_of(service))
        conditions.append(_condition(READY, phase == "Ready", reason, message, generation))

    runtime_failed = error is not None and error.reason in _RUNTIME_REASONS
    if runtime_failed:
        assert error is not None
        conditions.append(_condition(RUNTIME_RESOLVED, False, str(error.reason), error.message, generation))
        conditions.append(
            _condition(MODEL_RESOLVED, None, "RuntimeUnresolved", "runtime not resolved yet", generation)
        )
    else:
        chosen = runtime or result.get("resolvedRuntime") or ""
        conditions.append(
            _condition(RUNTIME_RESOLVED, True, "Resolved", f"using InferenceRuntime {chosen}", generation)
        )
        if error is not None and error.reason is Reason.MODEL_RESOLUTION:
            conditions.append(_condition(MODEL_RESOLVED, False, str(error.reason), error.message, generation))
        else:
            conditions.append(
                _condition(MODEL_RESOLVED, True, "Resolved", "model source resolved", generation)
            )
    conditions.append(_scaling_condition(scaler_mode, keda_installed, generation))
    result["conditions"] = merge_conditions(current.get("conditions") or [], conditions)
    return result


def _scaling_condition(
    mode: scalermodes.ScalerMode | None, keda_installed: bool, generation: int
) -> dict[str, Any]:
    if mode is None:
        return _condition(SCALING, None, "Unknown", "not reconciled yet", generation)
    traits = scalermodes.traits(mode)
    if traits.needs_keda and not keda_installed:
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
            transition = now()
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
