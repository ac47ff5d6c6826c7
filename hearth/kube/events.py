"""Kubernetes Events about Hearth objects (``kubectl describe`` shows them)."""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

from hearth.api import meta
from hearth.common import logs, timestamps
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError

log = logging.getLogger(__name__)

COMPONENT = "hearth-operator"


class EventRecorder:
    def __init__(self, client: KubeClient, *, instance: str | None = None, enabled: bool = True) -> None:
        self._client = client
        self._instance = instance or os.environ.get("POD_NAME") or os.uname().nodename
        #: False when the operator may not create Events (said once at startup, not at every event).
        self.enabled = enabled

    async def record(
        self, obj: dict[str, Any], *, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """Best effort: an event that cannot be written is logged, never fails the caller."""
        if not self.enabled:
            return
        metadata = obj["metadata"]
        namespace = meta.namespace_of(obj)
        now = timestamps.format_seconds()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata["name"],
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.post(resources.EVENT, event, namespace=namespace)
        except (ApiError, ApiUnreachableError) as error:
            log.warning("could not record event", extra=logs.fields(reason=reason, error=str(error)))
