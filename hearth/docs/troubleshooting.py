"""The troubleshooting page, keyed by what ``kubectl describe`` shows: the Ready condition's reason, the
wake-failure reasons (the vocabulary of :mod:`hearth.api.wakereasons`) and the Events the operator records.

The reasons come from their enums, so a new reason appears here at once; what to do about each is written
below, beside the reason it belongs to (a test fails when a reason or an Event has no advice).
"""

from __future__ import annotations

import typing

from hearth.api import llmservice, wakephases, wakereasons
from hearth.docs import markdown as md
from hearth.operator.telemetry import wakefailures
from hearth.render.errors import Reason as ReconcileReason

#: What to do when a wake fails with the reason (the kubelet's or the Deployment's own words are in
#: status.wakeFailure.message).
WAKE_ADVICE: dict[wakereasons.Reason, str] = {
    wakereasons.Reason.IMAGE_PULL_FAILED: "Check the InferenceRuntime's `container.image` and the pull "
    "secrets (`imagePullSecrets`); on air-gapped nodes preload the image and set `imagePullPolicy: Never`.",
    wakereasons.Reason.OOM_KILLED: "The engine needs more memory than its limit: raise the LLMService's "
    "`resources` memory, or serve a smaller model or context.",
    wakereasons.Reason.CRASH_LOOP_BACK_OFF: "`kubectl logs --previous` on the backend pod: usually wrong "
    "runtime `args`, a model the engine cannot load, or a missing token for a gated model.",
    wakereasons.Reason.CONTAINER_CONFIG_ERROR: "A Secret or ConfigMap the container references is missing, "
    "or the command cannot run: `kubectl describe pod` names it.",
    wakereasons.Reason.MODEL_FETCH_FAILED: "The pod's `hearth fetch` could not get the model; the message "
    "is its error: a wrong digest (`oras resolve` gives the right one), credentials the registry or store "
    "refuses (the Secret in `model.source.secretRef`), a missing object, or a full cache volume. Fix the "
    "source or the Secret; the next pod fetches again.",
    wakereasons.Reason.SCHEDULING_DELAYED: "No node can take the pod: free accelerators, a node with the "
    "runtime's `accelerator.resourceName`, tolerations and nodeSelector, or quota "
    "(`kubectl describe pod` shows the scheduler's message).",
    wakereasons.Reason.PROGRESS_DEADLINE_EXCEEDED: "The Deployment made no progress within its deadline: "
    "`kubectl describe deployment <name>-backend` and the pods' Events.",
}

#: What to do when reconcile fails with the reason (phase Degraded, Ready False).
RECONCILE_ADVICE: dict[ReconcileReason, str] = {
    ReconcileReason.RUNTIME_RESOLUTION: "No InferenceRuntime matched: the named one does not exist, no "
    "runtime has the selector's vendor, or several share the top priority. `kubectl get infrt`; set "
    "`spec.runtime.name` to choose one.",
    ReconcileReason.UNSUPPORTED_VENDOR: "The selected runtime's `vendor` has no backend adapter; use "
    "`nvidia`, `ascend` or `generic`.",
    ReconcileReason.MODEL_RESOLUTION: "`spec.model.source.uri` cannot be served: use `hf://`, "
    "`huggingface://`, `modelscope://`, `pvc://<claim>[/path]`, `oci://<registry>/<repo>@sha256:<hex>` (a "
    "digest, not a tag) or `s3://<bucket>/<prefix>`; `source.secretRef` only for oci and s3 (`catalogRef` "
    "is not implemented); the message names the problem.",
    ReconcileReason.RENDER: "The objects cannot be built from this LLMService and runtime: an unknown "
    "template field in runtime `args`/`env`, an unsupported cache strategy, `spec.pool` under a KEDA "
    "scaler mode, a `metrics.port` that is neither the serving port's name nor a number. The message "
    "names the field.",
    ReconcileReason.APPLY_DEPLOYMENT: "The API server refused the backend Deployment: RBAC, an admission "
    "webhook or quota. The message is the API server's.",
    ReconcileReason.APPLY_BACKEND_SERVICE: "The API server refused the backend Service (RBAC, admission).",
    ReconcileReason.APPLY_NETWORK_POLICY: "The API server refused the backend NetworkPolicy "
    "(`--network-policies`).",
    ReconcileReason.APPLY_GATEWAY: "The API server refused the gateway Deployment (RBAC, admission, quota).",
    ReconcileReason.APPLY_GATEWAY_SERVICE: "The API server refused the gateway Service `<name>`; another "
    "object may own it (an LLMGateway of the same name).",
    ReconcileReason.APPLY_GATEWAY_SCALER_SERVICE: "The API server refused the `<name>-scaler` Service "
    "(external-push mode).",
    ReconcileReason.APPLY_GATEWAY_DISRUPTION_BUDGET: "The API server refused the gateway's "
    "PodDisruptionBudget (`--gateway-replicas` > 1).",
    ReconcileReason.CACHE: "The cache settings cannot be served (`spec.cache`): for SharedPVC, a "
    "`claimName` that is missing or not ReadWriteMany, or a StorageClass that cannot provision "
    "ReadWriteMany (the message quotes its ProvisioningFailed Event).",
    ReconcileReason.APPLY_CACHE_PVC: "The API server refused the cache PersistentVolumeClaim: storage "
    "class, quota, or a claim of that name that differs.",
    ReconcileReason.PREWARM: "The prewarm Job cannot be built (`spec.cache.prewarm`).",
    ReconcileReason.APPLY_PREWARM_JOB: "The API server refused the prewarm Job (RBAC, quota).",
    ReconcileReason.SCALED_OBJECT: "The KEDA ScaledObject cannot be built: `scaleDownStabilization` must "
    "be whole seconds between 0s and 1h.",
    ReconcileReason.APPLY_SCALED_OBJECT: "The API server refused the ScaledObject: is KEDA installed, and "
    "may the operator write `keda.sh` ScaledObjects?",
    ReconcileReason.APPLY_GATEWAY_RBAC: "The gateway's ServiceAccount, Role or RoleBinding was refused: the "
    "operator may only grant what it holds itself (see Running with less RBAC).",
}

#: Events the operator records besides the reasons above (their reason -> type, object, meaning).
EVENTS: dict[str, tuple[str, str, str]] = {
    "ScalerMode": ("Normal", "LLMService", "The scaler mode in force changed (e.g. KEDA was installed)."),
    "ScaledUp": (
        "Normal",
        "LLMService",
        "Builtin mode: the autoscaler raised the replicas (the reason says why: demand, or a pool grant).",
    ),
    "ScaledDown": (
        "Normal",
        "LLMService",
        "Builtin mode: the autoscaler lowered the replicas after "
        "`scaleDownStabilization`, or a pool evicted it.",
    ),
    "PoolEvicted": (
        "Normal",
        "LLMService",
        "Scaled to zero by its AcceleratorPool to free devices for "
        "another member; its next request brings it back.",
    ),
    "PoolSwap": ("Normal", "LLMService", "An idle member was evicted to make room for this one."),
    "Swap": ("Normal", "AcceleratorPool", "The pool evicted one member for another."),
    "Routes": ("Normal", "LLMGateway", "The models the shared endpoint routes changed."),
    "ServiceFallback": ("Normal", "LLMService", "Its `endpoint.fallback`, another LLMService, is in use."),
    "ExternalFallback": (
        "Normal",
        "LLMService",
        "Its `endpoint.fallback` is an external URL: prompts of the requests it takes leave the cluster.",
    ),
    "FallbackMissing": ("Warning", "LLMService", "Its fallback LLMService does not exist in the namespace."),
    "FallbackSelf": ("Warning", "LLMService", "Its fallback names itself."),
    "FallbackLoop": ("Warning", "LLMService", "Its fallbacks lead back to it (`a -> b -> a`)."),
}


def _from_kubelet() -> dict[wakereasons.Reason, list[str]]:
    seen: dict[wakereasons.Reason, list[str]] = {}
    for kubelet, reason in wakefailures.WAITING_REASONS.items():
        seen.setdefault(reason, []).append(kubelet)
    return seen


def _wake_failures() -> str:
    comments = md.attribute_comments(wakereasons.Reason)
    kubelet = _from_kubelet()
    extra = {
        wakereasons.Reason.OOM_KILLED: "a container (last) terminated `OOMKilled`",
        wakereasons.Reason.MODEL_FETCH_FAILED: "the `hearth-fetch` init container exited non-zero",
        wakereasons.Reason.SCHEDULING_DELAYED: (
            f"a pod unschedulable for {wakefailures.SCHEDULING_PATIENCE_S:g} s"
        ),
        wakereasons.Reason.PROGRESS_DEADLINE_EXCEEDED: "the Deployment's `Progressing` condition",
    }
    rows = []
    for reason in wakereasons.Reason:
        seen = extra.get(reason) or "a container waiting in " + ", ".join(
            f"`{k}`" for k in kubelet.get(reason, [])
        )
        rows.append(
            [
                md.code(reason.value),
                md.code(reason.code),
                seen,
                md.text(comments.get(reason.name, "")),
                WAKE_ADVICE.get(reason, ""),
            ]
        )
    return md.table(["reason", "client error `code`", "seen as", "meaning", "what to do"], rows)


def _reconcile() -> str:
    rows = [[md.code(reason.value), RECONCILE_ADVICE.get(reason, "")] for reason in ReconcileReason]
    return md.table(["Ready reason (phase `Degraded`)", "what to check"], rows)


def _events() -> str:
    phases = ", ".join(f"`{phase}`" for phase in typing.get_args(llmservice.Phase))
    rows = [
        [f"{phases}", "Normal", "LLMService", "The phase changed (the Ready condition's message says why)."],
        [
            "the Ready reasons above",
            "Warning",
            "LLMService, LLMGateway",
            "A reconcile failed with that reason.",
        ],
        ["the wake-failure reasons above", "Warning", "LLMService", "A wake cannot succeed."],
    ]
    rows += [[md.code(reason), kind, obj, meaning] for reason, (kind, obj, meaning) in EVENTS.items()]
    return md.table(["Event reason", "type", "on", "meaning"], rows)


def _phases() -> str:
    comments = md.attribute_comments(wakephases.Phase)
    rows = [[md.code(phase.value), md.text(comments.get(phase.name, ""))] for phase in wakephases.Phase]
    return md.table(["phase", "what the wake is doing"], rows)


def page() -> str:
    return md.page(
        "Troubleshooting",
        "hearth.api.wakereasons, hearth.render.errors and hearth.api.wakephases",
        "Start with `kubectl get llmsvc -A -o wide` and `kubectl describe llmsvc <name>`: the phase, the "
        "conditions (`Ready`, `RuntimeResolved`, `ModelResolved`, `Scaling`, `Permissions`) and the Events "
        "name a reason. Find it below.",
        "## A wake that cannot succeed\n\n"
        "When the backend cannot come up, the operator writes `status.wakeFailure` (`reason`, `message` "
        "with the kubelet's words, `since`, `retryAt`, `attempts`, `pod`), sets phase `Degraded` with the "
        "reason on the Ready condition, records a Warning Event and counts "
        "`hearth_wake_failures_total{reason}` (alert `HearthWakeFailing`). Clients get 503 with the reason "
        "as the error `code`, `Retry-After` and `X-Hearth-Refusal: <code>`; held streams end with an "
        "error event. See [Wakes that cannot succeed](concepts/fail-fast.md).\n\n" + _wake_failures(),
        "## Reconcile failures\n\nPhase `Degraded`, Ready `False` with one of these reasons, and a Warning "
        "Event with the message. Reconcile retries with per-service back-off.\n\n" + _reconcile(),
        "## Other conditions\n\n"
        "- `Permissions=False`, reason `MissingPermission`: the operator lacks an RBAC rule and skips the "
        "feature it serves; the message names the rule (see "
        "[Running with less RBAC](how-to/reference-rbac.md)).\n"
        "- `Scaling=False`, reason `MissingPermission`: the built-in autoscaler cannot read pods or scale "
        "Deployments; nothing scales the backend in builtin mode.\n"
        "- `Scaling=Unknown`, reason `ReconcileFailed`: scaling is not set up while reconcile fails; fix "
        "the Ready reason first.\n"
        "- `status.pool.state: Waiting` / `Refused`: see [Accelerator pools](concepts/pools.md); "
        "`status.pool.reason` says why.\n"
        "- `Fallback=False`, reason `FallbackMissing`, `FallbackSelf` or `FallbackLoop`: the "
        "`endpoint.fallback` cannot be used and is not given to the gateway; see "
        "[A fallback while cold](concepts/fallback.md).\n"
        "- `status.warmWindow` present: a warm window keeps the model up (`state: Warming` before its "
        "start); see [Warm windows](concepts/warm-windows.md).\n",
        "## Events\n\n" + _events(),
        "## Wake phases a held client is told\n\nA held stream's progress comments (`: hearth {...}`) "
        "name the phase; so does `GET /v1/models` while the model is cold.\n\n" + _phases(),
    )
