"""The LLMGateway reconciler (issue 24): render a shared gateway's children from the LLMServices of its
namespace, bring them to their state, and keep its status (routed models, ready pods, address, Ready)
and Events. Level-based like the LLMService controller, whose informers and child caches it shares: its
keys come from the controller's ``gateway_queue`` (an LLMGateway, an LLMService of its namespace or one of
its children changed).
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic

from hearth.api import meta
from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.common import logs, timestamps
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.events import EventRecorder
from hearth.operator.reconcile import status as status_module
from hearth.operator.reconcile.controller import Controller, Key
from hearth.render import names, plan, sharedgateway
from hearth.render.errors import Reason, ReconcileError

log = logging.getLogger(__name__)

READY = status_module.READY


def desired_status(
    *,
    current: dict[str, Any],
    gateway: dict[str, Any],
    routed: list[str],
    deployment: dict[str, Any] | None,
    error: ReconcileError | None,
) -> dict[str, Any]:
    """The LLMGateway's status (pure): routed models, ready pods, address and the Ready condition; the
    condition's transition time is kept while its status stays the same."""
    metadata = gateway["metadata"]
    generation = int(metadata.get("generation") or 0)
    name, namespace = metadata["name"], meta.namespace_of(gateway)
    ready = int((deployment or {}).get("status", {}).get("readyReplicas") or 0)
    if error is not None:
        condition = (False, str(error.reason), error.message)
    elif ready > 0:
        condition = (True, "Available", f"{ready} gateway pod(s) ready, routing {len(routed)} model(s)")
    else:
        condition = (False, "Deploying", "waiting for gateway pods")
    ok, reason, message = condition
    previous: dict[str, Any] = next(
        (c for c in current.get("conditions") or [] if c.get("type") == READY), {}
    )
    wanted_status = "True" if ok else "False"
    changed = previous.get("status") != wanted_status
    return {
        "observedGeneration": generation,
        "models": routed,
        "modelCount": len(routed),
        "readyReplicas": ready,
        "endpointURL": names.shared_endpoint_url(name, namespace),
        "conditions": [
            {
                "type": READY,
                "status": wanted_status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": timestamps.format_seconds()
                if changed
                else previous.get("lastTransitionTime") or timestamps.format_seconds(),
            }
        ],
    }


class GatewayReconciler:
    def __init__(self, client: KubeClient, controller: Controller, *, recorder: EventRecorder) -> None:
        self._client = client
        self._controller = controller
        self._recorder = recorder

    async def worker(self) -> None:
        queue = self._controller.gateway_queue
        while True:
            key = await queue.get()
            try:
                await self.reconcile(key)
            except (ReconcileError, ApiError, ApiUnreachableError) as error:
                delay = queue.retry(key)
                log.info(
                    "LLMGateway reconcile failed; retrying",
                    extra=logs.fields(llmgateway=f"{key[0]}/{key[1]}", error=str(error), retry_in_s=delay),
                )
            except Exception:
                delay = queue.retry(key)
                log.exception(
                    "LLMGateway reconcile crashed", extra=logs.fields(llmgateway=f"{key[0]}/{key[1]}")
                )
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    def _services(self, namespace: str) -> list[LLMService]:
        """The namespace's LLMServices that parse (one that does not is Degraded on its own, unrouted)."""
        parsed = []
        for obj in self._controller.services.items():
            if meta.namespace_of(obj) != namespace:
                continue
            try:
                parsed.append(self._controller.parse(obj))
            except ReconcileError:
                continue
        return parsed

    async def reconcile(self, key: Key) -> None:
        namespace, name = key
        obj = self._controller.gateways.get(name, namespace)
        if obj is None:
            return  # deleted: its children are garbage-collected through their owner references
        routed: list[str] = []
        deployment: dict[str, Any] | None = None
        error: ReconcileError | None = None
        try:
            try:
                gateway = LLMGateway.model_validate(obj)
            except pydantic.ValidationError as invalid:
                problems = "; ".join(
                    f"{'.'.join(map(str, issue['loc']))}: {issue['msg']}" for issue in invalid.errors()
                )
                raise ReconcileError(Reason.RENDER, f"invalid LLMGateway: {problems}") from None
            services = self._services(namespace)
            # Name conflicts count unparsable services too: they still own their Service <name>.
            names_taken = self._controller.service_names(namespace)
            problem = sharedgateway.conflict(gateway, names_taken)
            if problem is not None:
                raise ReconcileError(Reason.RENDER, problem)
            built = sharedgateway.build(gateway, services, self._controller.config())
            routed = list(built.routed)
            steps = [
                step
                for step in built.steps
                if self._controller.permissions.allows(resources.of(step.manifest))
            ]
            results = await self._controller.execute_all(steps, obj)
            for step, result in zip(steps, results, strict=True):
                if isinstance(result, BaseException):
                    raise result
                if step.reason is Reason.APPLY_GATEWAY and step.mode is plan.Mode.APPLY:
                    deployment = result
        except ReconcileError as failure:
            error = failure
        await self._write_status(obj, routed=routed, deployment=deployment, error=error)
        if error is not None:
            raise error

    async def _write_status(
        self,
        obj: dict[str, Any],
        *,
        routed: list[str],
        deployment: dict[str, Any] | None,
        error: ReconcileError | None,
    ) -> None:
        current = obj.get("status") or {}
        wanted = desired_status(
            current=current, gateway=obj, routed=routed, deployment=deployment, error=error
        )
        if not status_module.differs(current, wanted):
            return
        try:
            await self._client.update_status(resources.LLMGATEWAY, {**obj, "status": wanted})
        except ApiError as failure:
            if failure.conflict or failure.not_found:
                return  # a newer version (or a deletion) comes through the watch and requeues it
            raise
        await self._record(obj, current, wanted, error)

    async def _record(
        self,
        obj: dict[str, Any],
        current: dict[str, Any],
        wanted: dict[str, Any],
        error: ReconcileError | None,
    ) -> None:
        old: dict[str, Any] = next((c for c in current.get("conditions") or [] if c.get("type") == READY), {})
        new = wanted["conditions"][0]
        if error is not None:
            if old.get("reason") != new["reason"] or old.get("message") != new["message"]:
                await self._recorder.record(obj, kind="Warning", reason=new["reason"], message=new["message"])
        elif old.get("status") != new["status"]:
            await self._recorder.record(obj, kind="Normal", reason=new["reason"], message=new["message"])
        if current.get("models") != wanted["models"]:
            models = ", ".join(wanted["models"]) or "none"
            await self._recorder.record(obj, kind="Normal", reason="Routes", message=f"routing {models}")
