"""The LLMService controller: informers feed a work queue; workers reconcile one service at a time.

Reconcile is level-based and idempotent: select the runtime, render the plan (no I/O), bring each child
to its desired state (skipping children already in sync, so a steady state makes no API writes), then
write status only if it changed and record an Event on every phase change or new failure reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pydantic

from hearth.api import engines, meta, rbac, scalermodes
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.common import durations, logs
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.events import EventRecorder
from hearth.kube.informer import Informer
from hearth.kube.resources import ResourceType
from hearth.operator.access import permissions
from hearth.operator.autoscaling import windows
from hearth.operator.metrics import OperatorMetrics
from hearth.operator.reconcile import drift, fallbacks, status
from hearth.operator.reconcile.workqueue import WorkQueue
from hearth.operator.settings import OperatorSettings
from hearth.operator.telemetry import wiring
from hearth.render import cache as cache_render
from hearth.render import engines as render_engines
from hearth.render import plan, selection, sharedgateway
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError

log = logging.getLogger(__name__)

Key = tuple[str, str]
MANAGED = "app.kubernetes.io/managed-by=hearth"
CHILD_TYPES = (
    resources.DEPLOYMENT,
    resources.SERVICE,
    resources.SERVICE_ACCOUNT,
    resources.ROLE,
    resources.ROLE_BINDING,
    resources.CLAIM,
    resources.JOB,
    resources.POD_DISRUPTION_BUDGET,
    resources.NETWORK_POLICY,
)
KEDA_API = "keda.sh/v1alpha1"
KEDA_CHECK_SECONDS = 10.0


class Controller:
    def __init__(
        self,
        client: KubeClient,
        settings: OperatorSettings,
        *,
        metrics: OperatorMetrics,
        recorder: EventRecorder,
        allowed: permissions.Permissions | None = None,
    ) -> None:
        self._client = client
        #: What the startup check found the operator may do; children it may not manage are skipped.
        self.permissions = allowed or permissions.Permissions.all_granted()
        self._settings = settings
        self._metrics = metrics
        self._recorder = recorder
        self.queue: WorkQueue[Key] = WorkQueue()
        resync = settings.resync_seconds
        self.services = Informer(
            client, resources.LLMSERVICE, handler=self._on_service, resync_seconds=resync
        )
        self.runtimes = Informer(
            client, resources.INFERENCE_RUNTIME, handler=self._on_runtime, resync_seconds=resync
        )
        #: LLMGateways (issue 24), reconciled by :mod:`hearth.operator.reconcile.llmgateways` from their own
        #: queue.
        self.gateways = Informer(
            client, resources.LLMGATEWAY, handler=self._on_gateway, resync_seconds=resync
        )
        self.gateway_queue: WorkQueue[Key] = WorkQueue()
        self._parsed_gateways: dict[Key, tuple[str, LLMGateway | None]] = {}
        self.children: dict[ResourceType, Informer] = {
            rt: Informer(client, rt, handler=self._on_child, label_selector=MANAGED, resync_seconds=resync)
            for rt in CHILD_TYPES
            if self.permissions.allows(rt)
        }
        self.keda_installed = False
        self.leading = False  # set by the process once it holds the lease (or runs without election)
        self.telemetry = wiring.Telemetry(
            client,
            registry=metrics.registry,
            enqueue=self.queue.add,
            services=self.services.items,
            leading=lambda: self.leading,
            runtimes=lambda: {runtime.metadata.name: runtime for runtime in self._runtimes()},
        )
        self._parsed_runtimes: dict[str, tuple[str, InferenceRuntime | None]] = {}
        self._parsed_services: dict[Key, tuple[str, LLMService | ReconcileError]] = {}
        metrics.queue_depth.set_function(lambda: len(self.queue))

    # ---- event handlers: map every change to the LLMService keys it affects --------------------------
    def _on_service(self, kind: str, obj: dict[str, Any]) -> None:
        key = (meta.namespace_of(obj), obj["metadata"]["name"])
        if kind == "DELETED":
            self._parsed_services.pop(key, None)
        self.queue.add(key)
        # A new, relabelled or deleted service may join or leave the routes of its namespace's gateways.
        for gateway in self.gateways.items():
            if meta.namespace_of(gateway) == key[0]:
                self.gateway_queue.add((key[0], gateway["metadata"]["name"]))

    def _on_gateway(self, kind: str, obj: dict[str, Any]) -> None:
        key = (meta.namespace_of(obj), obj["metadata"]["name"])
        if kind == "DELETED":
            self._parsed_gateways.pop(key, None)
        self.gateway_queue.add(key)
        # Its selector decides which services of the namespace keep a gateway of their own.
        for service in self.services.items():
            if meta.namespace_of(service) == key[0]:
                self.queue.add((key[0], service["metadata"]["name"]))

    def _on_runtime(self, _kind: str, obj: dict[str, Any]) -> None:
        name, vendor = obj["metadata"]["name"], obj.get("spec", {}).get("vendor")
        for service in self.services.items():
            spec = service.get("spec", {}).get("runtime") or {}
            vendors = (spec.get("selector") or {}).get("vendor") or []
            resolved = service.get("status", {}).get("resolvedRuntime")
            if spec.get("name") == name or vendor in vendors or resolved == name:
                self._on_service("MODIFIED", service)

    def _on_child(self, _kind: str, obj: dict[str, Any]) -> None:
        for owner in obj.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("controller") and owner.get("kind") == "LLMService":
                self.queue.add((meta.namespace_of(obj), owner["name"]))
            elif owner.get("controller") and owner.get("kind") == "LLMGateway":
                self.gateway_queue.add((meta.namespace_of(obj), owner["name"]))

    # ---- running -----------------------------------------------------------------------------------
    def informers(self) -> list[Informer]:
        # Without the right to read pods that informer would only log 403s and never sync (issue 19).
        pods = [self.telemetry.pods] if self.permissions.has(rbac.Feature.TELEMETRY) else []
        if pods and self.permissions.has(rbac.Feature.POD_EVENTS):
            pods.append(self.telemetry.pod_warnings)
        # Without the right to read LLMGateways there are none to honour, and services keep their own
        # gateways (as before issue 24) instead of the operator staying unready.
        gateways = [self.gateways] if self.permissions.has(rbac.Feature.LLM_GATEWAYS) else []
        return [self.services, self.runtimes, *gateways, *self.children.values(), *pods]

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers())

    async def watch_keda(self, tasks: asyncio.TaskGroup) -> None:
        """Notice KEDA being installed or removed, without a restart, by asking discovery periodically;
        the ScaledObject informer started on the first sighting runs in *tasks* (the operator's)."""
        scaled_objects: asyncio.Task[None] | None = None
        while True:
            try:
                installed = await self._client.group_version_exists(KEDA_API)
            except (ApiError, ApiUnreachableError) as error:
                log.warning("could not check for KEDA", extra=logs.fields(error=str(error)))
                installed = self.keda_installed
            if installed != self.keda_installed:
                self.keda_installed = installed
                self._metrics.keda.set(1 if installed else 0)
                log.info(
                    "KEDA " + ("detected" if installed else "not installed"), extra=logs.fields(api=KEDA_API)
                )
                if installed and scaled_objects is None and self.permissions.allows(resources.SCALED_OBJECT):
                    informer = Informer(
                        self._client, resources.SCALED_OBJECT, handler=self._on_child, label_selector=MANAGED
                    )
                    self.children[resources.SCALED_OBJECT] = informer
                    scaled_objects = tasks.create_task(informer.run(), name="ScaledObject informer")
                for service in self.services.items():
                    self._on_service("MODIFIED", service)
            await asyncio.sleep(KEDA_CHECK_SECONDS)

    async def worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.perf_counter()
            try:
                await self.reconcile(key)
            except ReconcileError as error:
                delay = self.queue.retry(key)
                self._metrics.reconciles.labels(result="error").inc()
                self._metrics.errors.labels(reason=str(error.reason)).inc()
                log.info(
                    "reconcile failed; retrying",
                    extra=logs.fields(
                        llmservice=f"{key[0]}/{key[1]}",
                        reason=str(error.reason),
                        error=error.message,
                        retry_in_s=round(delay, 2),
                    ),
                )
            except (ApiError, ApiUnreachableError) as error:
                delay = self.queue.retry(key)
                self._metrics.reconciles.labels(result="error").inc()
                log.info(
                    "reconcile hit an API error; retrying",
                    extra=logs.fields(llmservice=f"{key[0]}/{key[1]}", error=str(error), retry_in_s=delay),
                )
            except Exception:
                delay = self.queue.retry(key)
                self._metrics.reconciles.labels(result="error").inc()
                log.exception(
                    "reconcile crashed; retrying", extra=logs.fields(llmservice=f"{key[0]}/{key[1]}")
                )
            else:
                self.queue.forget(key)
                self._metrics.reconciles.labels(result="success").inc()
            finally:
                self._metrics.duration.observe(time.perf_counter() - started)
                self.queue.done(key)

    # ---- reconcile ----------------------------------------------------------------------------------
    def scaler_mode(self) -> scalermodes.ScalerMode:
        """The mode in force now (``auto`` follows KEDA being installed or removed)."""
        return self._settings.scaler.resolve(keda_installed=self.keda_installed)

    def parse(self, obj: dict[str, Any]) -> LLMService:
        """The typed LLMService of a cached object, parsed once per resourceVersion (the autoscaler reads
        every service every interval); :class:`ReconcileError` (reason Render) when it does not parse."""
        key, version = (
            (meta.namespace_of(obj), obj["metadata"]["name"]),
            obj["metadata"].get("resourceVersion"),
        )
        cached = self._parsed_services.get(key)
        if cached is None or not version or cached[0] != version:
            try:
                parsed: LLMService | ReconcileError = _parse_service(obj)
            except ReconcileError as error:
                parsed = error
            cached = (version or "", parsed)
            if version:
                self._parsed_services[key] = cached
        if isinstance(cached[1], ReconcileError):
            raise ReconcileError(cached[1].reason, cached[1].message)  # a fresh one: no traceback pile-up
        return cached[1]

    def parsed_gateways(self, namespace: str) -> list[LLMGateway]:
        """The valid LLMGateways of *namespace*, each parsed once per resourceVersion (an invalid one
        selects nothing: its own reconcile says why)."""
        parsed = []
        for obj in self.gateways.items():
            if meta.namespace_of(obj) != namespace:
                continue
            key = (namespace, obj["metadata"]["name"])
            version = obj["metadata"].get("resourceVersion", "")
            cached = self._parsed_gateways.get(key)
            if cached is None or cached[0] != version:
                try:
                    cached = (version, LLMGateway.model_validate(obj))
                except pydantic.ValidationError:
                    cached = (version, None)
                self._parsed_gateways[key] = cached
            if cached[1] is not None:
                parsed.append(cached[1])
        return parsed

    def service_names(self, namespace: str) -> list[str]:
        return [
            obj["metadata"]["name"] for obj in self.services.items() if meta.namespace_of(obj) == namespace
        ]

    def serving_gateways(self, service: LLMService) -> list[str]:
        """The LLMGateways routing *service*, sorted by name (the first serves its Service ``<name>``)."""
        namespace = service.namespace
        return sharedgateway.serving(service, self.parsed_gateways(namespace), self.service_names(namespace))

    def config(self) -> OperatorConfig:
        """What rendering needs, as the operator runs now (the mode follows KEDA under ``auto``)."""
        return OperatorConfig(
            gateway_image=self._settings.gateway_image,
            gateway_replicas=self._settings.gateway_replicas,
            network_policies=self._settings.network_policies,
            scaler_mode=self.scaler_mode(),
            gateway_service_account=self.permissions.has(rbac.Feature.GATEWAY_RBAC),
        )

    def _runtimes(self) -> list[InferenceRuntime]:
        parsed = []
        for obj in self.runtimes.items():
            name, version = obj["metadata"]["name"], obj["metadata"].get("resourceVersion", "")
            cached = self._parsed_runtimes.get(name)
            if cached is None or cached[0] != version:
                try:
                    cached = (version, InferenceRuntime.model_validate(obj))
                except pydantic.ValidationError as error:
                    log.warning(
                        "ignoring an invalid InferenceRuntime", extra=logs.fields(name=name, error=str(error))
                    )
                    cached = (version, None)
                self._parsed_runtimes[name] = cached
            if cached[1] is not None:
                parsed.append(cached[1])
        return parsed

    def accelerator_of(self, service: LLMService) -> str | None:
        """The accelerator resource *service*'s runtime requests now (None: it resolves to no runtime)."""
        try:
            return selection.select(service.spec.runtime, self._runtimes()).spec.accelerator.resource_name
        except ReconcileError:
            return None

    async def reconcile(self, key: Key) -> None:
        namespace, name = key
        obj = self.services.get(name, namespace)
        if obj is None:
            self.telemetry.forget(name, namespace)
            return  # deleted: its children are garbage-collected through their owner references
        config = self.config()
        mode = config.scaler_mode
        skipped: list[str] = []
        runtime: str | None = None
        engine: engines.Engine | None = None
        drain = 0.0
        deployment: dict[str, Any] | None = None
        error: ReconcileError | None = None
        service: LLMService | None = None
        gateways: list[str] = []
        verdict: fallbacks.Verdict | None = None
        try:
            service = self.parse(obj)
            verdict = fallbacks.judge(service, lookup=self._fallback_lookup(service.namespace))
            runtimes = self._runtimes()
            # Selected first so that a later failure (model, render, apply) still names the runtime.
            selected = selection.select(service.spec.runtime, runtimes)
            runtime = selected.metadata.name
            engine = render_engines.of(selected)
            drain = _drain_seconds(service, selected)
            gateways = self.serving_gateways(service)
            rendered = service if verdict is None or verdict.usable else fallbacks.without_fallback(service)
            built = plan.build(rendered, runtimes, config, gateways=gateways)
            steps = []
            for step in built.steps:
                if not self.permissions.allows(resources.of(step.manifest)):
                    _note_skipped(skipped, step, self.permissions)
                    continue
                steps.append(step)
            # A failure is still reported as the first failing step in SPEC order.
            results = await self.execute_all(steps, obj)
            for step, result in zip(steps, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                if step.reason is Reason.APPLY_DEPLOYMENT:
                    deployment = result
            if service.spec.cache.strategy == "SharedPVC":
                await self._check_shared_claim(service, steps, results)
        except ReconcileError as failure:
            error = failure
        await self._write_status(
            obj,
            service=service,
            runtime=runtime,
            deployment=deployment,
            mode=mode,
            error=error,
            skipped=skipped,
            gateway=gateways[0] if gateways else None,
            drain_timeout=drain,
            fallback=verdict,
            engine=engine,
        )
        if error is not None:
            raise error

    async def _check_shared_claim(
        self,
        service: LLMService,
        steps: list[plan.Step],
        results: list[dict[str, Any] | BaseException | None],
    ) -> None:
        """A SharedPVC that cannot be shared between nodes is refused naming why (reason Cache), rather
        than left to replicas stuck Pending on another node."""
        claim = next(
            (
                result
                for step, result in zip(steps, results, strict=True)
                if step.reason is Reason.APPLY_CACHE_PVC and isinstance(result, dict)
            ),
            None,
        )
        named = service.spec.cache.claim_name
        if named is not None and self.permissions.allows(resources.CLAIM):
            try:
                claim = await self._client.get(resources.CLAIM, named, service.namespace)
            except ApiError as failure:
                raise ReconcileError(Reason.CACHE, f"get claim {named}: {failure.message}") from None
        failures: list[str] = []
        pending = claim is not None and (claim.get("status") or {}).get("phase") == "Pending"
        if pending and claim is not None and self.permissions.allows(resources.EVENT):
            selector = (
                "involvedObject.kind=PersistentVolumeClaim,type=Warning,"
                f"involvedObject.name={claim['metadata']['name']}"
            )
            try:
                events, _ = await self._client.list(
                    resources.EVENT, namespace=service.namespace, field_selector=selector
                )
            except ApiError:
                events = []  # the claim's own state is still checked
            failures = [
                str(event.get("message") or "")
                for event in sorted(events, key=lambda event: str(event.get("lastTimestamp") or ""))
                if event.get("reason") == "ProvisioningFailed"
            ]
        cache_render.check_shared_claim(service, claim, provisioning_failures=failures)

    def _fallback_lookup(self, namespace: str) -> fallbacks.Lookup:
        def parsed(name: str) -> LLMService | None:
            obj = self.services.get(name, namespace)
            if obj is None:
                return None
            try:
                return self.parse(obj)
            except ReconcileError:
                return None  # its own reconcile reports it; as a fallback it has no onward fallback

        return fallbacks.lookup_in(parsed)

    async def execute_all(
        self, steps: list[plan.Step], owner: dict[str, Any]
    ) -> list[dict[str, Any] | BaseException | None]:
        """Every step's result (or error), in *steps*' order. The children are independent for the API
        server (a reference to a sibling not created yet is accepted), so they are brought to their state at
        once: a new LLMService has every child one round trip after its event, not one per child (tools
        `kubectl wait` on them right after the apply). Except RoleBindings, one round trip later: RBAC's
        escalation check reads the Role a binding grants, and refuses the binding while that Role does not
        exist yet."""
        results: list[dict[str, Any] | BaseException | None] = [None] * len(steps)
        is_binding = [step.manifest.get("kind") == "RoleBinding" for step in steps]
        bindings = [index for index, binding in enumerate(is_binding) if binding]
        rest = [index for index, binding in enumerate(is_binding) if not binding]
        for wave in (rest, bindings):
            done = await asyncio.gather(
                *(self.execute(steps[i], owner) for i in wave), return_exceptions=True
            )
            for index, result in zip(wave, done, strict=True):
                results[index] = result
        return results

    async def execute(self, step: plan.Step, owner: dict[str, Any]) -> dict[str, Any] | None:
        manifest = step.manifest
        rt = resources.of(manifest)
        name, namespace = manifest["metadata"]["name"], manifest["metadata"].get("namespace")
        if step.requires_crd and not self.keda_installed:
            return None  # SPEC §2.6: no KEDA, no ScaledObject; not an error
        cache = self.children.get(rt)
        live = (
            cache.get(name, namespace) if cache is not None else await self._client.get(rt, name, namespace)
        )
        try:
            if step.mode is plan.Mode.APPLY:
                stamped = drift.stamp(manifest)
                if drift.in_sync(stamped, live):
                    return live
                return await self._client.apply(stamped)
            if step.mode is plan.Mode.CREATE:
                return live or await self._client.create(manifest)
            if live is not None and _controlled_by(live, owner):
                await self._client.delete(rt, name, namespace, uid=live["metadata"].get("uid"))
            return None
        except ApiError as failure:
            verb = {plan.Mode.APPLY: "apply", plan.Mode.CREATE: "create", plan.Mode.DELETE: "delete"}[
                step.mode
            ]
            raise ReconcileError(
                step.reason, f"{verb} {rt.kind} {namespace}/{name}: {failure.message}"
            ) from None

    async def _write_status(
        self,
        obj: dict[str, Any],
        *,
        service: LLMService | None,
        runtime: str | None,
        deployment: dict[str, Any] | None,
        mode: scalermodes.ScalerMode,
        error: ReconcileError | None,
        skipped: list[str] | None = None,
        gateway: str | None = None,
        drain_timeout: float = 0.0,
        fallback: fallbacks.Verdict | None = None,
        engine: engines.Engine | None = None,
    ) -> None:
        current = obj.get("status") or {}
        at = self.telemetry.clock()
        wanted = status.desired(
            current=current,
            service=obj,
            scaling=service.spec.scaling if service is not None else None,
            runtime=runtime,
            deployment=deployment,
            scaler_mode=mode,
            keda_installed=self.keda_installed,
            error=error,
            permission_notes=self._permission_notes(skipped or []),
            scaling_blocked=self._scaling_blocked(mode),
            at=at,
            gateway=gateway,
            engine=engine,
        )
        outcome = None
        # spec.endpoint.fallback (issue 31): a condition of its own, present only with a fallback.
        kept = [c for c in wanted.get("conditions") or [] if c.get("type") != fallbacks.CONDITION]
        if fallback is not None:
            generation = int(obj["metadata"].get("generation") or 0)
            kept.append(fallbacks.condition(fallback, generation=generation))
        if kept or wanted.get("conditions"):
            wanted["conditions"] = status.merge_conditions(current.get("conditions") or [], kept)
        # Warm windows (issue 31): shown in status, counted apart in the accounting, and looked at again at
        # the next boundary (a window's early wake or its end) even if nothing else changes by then.
        window, boundary = windows.show(
            wanted, schedules=service.spec.scaling.schedules if service is not None else None, at=at
        )
        if boundary is not None:
            self.queue.add_after((meta.namespace_of(obj), obj["metadata"]["name"]), boundary + 0.5)
        if error is None and self.permissions.has(rbac.Feature.TELEMETRY):
            metadata = obj["metadata"]
            outcome = self.telemetry.update(
                wanted,
                name=metadata["name"],
                namespace=meta.namespace_of(obj),
                deployment=deployment,
                at=at,
                drain_timeout=drain_timeout,
                scheduled=window is not None,
            )
            refusing_for = status.show_wake_failure(wanted, at=at)
            if refusing_for is not None:
                # Phase and Ready go back to what the backend shows once the failure stops refusing.
                self.queue.add_after((meta.namespace_of(obj), metadata["name"]), refusing_for + 0.5)
        if not status.differs(current, wanted):
            return
        updated = {**obj, "status": wanted}
        try:
            await self._client.update_status(resources.LLMSERVICE, updated)
        except ApiError as failure:
            if failure.conflict or failure.not_found:
                return  # a newer version (or a deletion) is on its way through the watch and requeues us
            raise
        if outcome is not None:
            self.telemetry.record(outcome)
        await self._record_transition(obj, current, wanted, error)

    def _permission_notes(self, skipped: list[str]) -> list[str]:
        notes = []
        if not self.permissions.has(rbac.Feature.GATEWAY_RBAC):
            rules = "; ".join(r.rbac() for r in self.permissions.rules_for(rbac.Feature.GATEWAY_RBAC))
            notes.append(
                "gateway runs with the default ServiceAccount and probes GET /health: the operator may not "
                f"create its ServiceAccount and Role (add: {rules})"
            )
        return notes + skipped

    def _scaling_blocked(self, mode: scalermodes.ScalerMode) -> str | None:
        if scalermodes.traits(mode).scales is not scalermodes.Driver.OPERATOR or self.permissions.has(
            rbac.Feature.AUTOSCALER
        ):
            return None
        rules = "; ".join(r.rbac() for r in self.permissions.rules_for(rbac.Feature.AUTOSCALER))
        return (
            "the built-in autoscaler is off: the operator may not read pods or scale Deployments "
            f"(add: {rules})"
        )

    async def _record_transition(
        self,
        obj: dict[str, Any],
        current: dict[str, Any],
        wanted: dict[str, Any],
        error: ReconcileError | None,
    ) -> None:
        old_phase, new_phase = current.get("phase"), wanted.get("phase")
        failure = wanted.get("wakeFailure") or {}
        if failure and failure.get("since") != (current.get("wakeFailure") or {}).get("since"):
            # A wake that cannot succeed: the Event names the reason (the Ready condition says it too).
            await self._recorder.record(
                obj, kind="Warning", reason=str(failure.get("reason")), message=str(failure.get("message"))
            )
        elif error is not None:
            old_reason = _ready_reason(current)
            if old_phase != "Degraded" or old_reason != str(error.reason):
                await self._recorder.record(
                    obj, kind="Warning", reason=str(error.reason), message=error.message
                )
        elif old_phase != new_phase:
            await self._recorder.record(
                obj, kind="Normal", reason=str(new_phase), message=_ready_message(wanted) or str(new_phase)
            )
        # A fallback configured, changed or refused is an Event (an external one sends prompts elsewhere).
        old_fallback = _condition(current, fallbacks.CONDITION)
        new_fallback = _condition(wanted, fallbacks.CONDITION)
        if new_fallback and new_fallback.get("message") != old_fallback.get("message"):
            await self._recorder.record(
                obj,
                kind="Normal" if new_fallback.get("status") == "True" else "Warning",
                reason=str(new_fallback.get("reason")),
                message=str(new_fallback.get("message")),
            )
        # Which scaler drives the backend (and a change of it, e.g. when KEDA appears) is an Event too.
        old_scaling, new_scaling = _condition(current, status.SCALING), _condition(wanted, status.SCALING)
        # Only without a failure: a failing reconcile's Scaling condition says nothing about the mode in
        # force, and the failure has its own Warning above.
        changed = new_scaling.get("message") != old_scaling.get("message")
        if error is None and new_scaling.get("message") and changed:
            await self._recorder.record(
                obj,
                kind="Normal" if new_scaling.get("status") == "True" else "Warning",
                reason="ScalerMode",
                message=str(new_scaling["message"]),
            )


def _parse_service(obj: dict[str, Any]) -> LLMService:
    try:
        return LLMService.model_validate(obj)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, issue['loc']))}: {issue['msg']}" for issue in error.errors()
        )
        raise ReconcileError(Reason.RENDER, f"invalid LLMService: {problems}") from None


def _note_skipped(skipped: list[str], step: plan.Step, allowed: permissions.Permissions) -> None:
    """A child the operator may not manage: leftovers to delete are simply left; a wanted one is noted."""
    if step.mode is plan.Mode.DELETE:
        return
    rt = resources.of(step.manifest)
    skipped.append(f"skipped {rt.kind} {step.manifest['metadata']['name']}: {allowed.explain(rt)}")


def _controlled_by(child: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in child["metadata"].get("ownerReferences") or []
    )


def _ready_condition(status_obj: dict[str, Any]) -> dict[str, Any]:
    return _condition(status_obj, status.READY)


def _condition(status_obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in status_obj.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _ready_reason(status_obj: dict[str, Any]) -> str | None:
    return _ready_condition(status_obj).get("reason")


def _ready_message(status_obj: dict[str, Any]) -> str | None:
    return _ready_condition(status_obj).get("message")


def _drain_seconds(service: LLMService, runtime: InferenceRuntime) -> float:
    """The drainTimeout a scale-down may hold its devices for: 0 when the runtime does not drain."""
    lifecycle = runtime.spec.lifecycle
    if lifecycle is None or not lifecycle.pre_stop_drain:
        return 0.0
    return max(durations.Duration.parse(service.spec.scaling.drain_timeout).seconds, 0.0)
