"""The drain sidecar's contract between the operator (which renders it) and ``hearth drainer`` (which runs
it): its container name, port, environment variables and their defaults, declared once here.

A backend pod whose runtime drains ``UntilIdle`` carries a native sidecar (an init container with
``restartPolicy: Always``) running the hearth image as ``hearth drainer``. The engine container's preStop is
an ``httpGet`` of the sidecar's ``/drain``, which the kubelet holds open until it is answered or the grace
period ends; the sidecar answers once the engine's own metrics say nothing is running or waiting.
"""

from __future__ import annotations

CONTAINER_NAME = "hearth-drainer"
#: The sidecar's port. A pod shares one network namespace, so it must differ from every engine port; the
#: renderer takes the next free number when a runtime uses this one.
DEFAULT_PORT = 8091
DRAIN_PATH = "/drain"
#: ``POST``: every gateway has stopped routing to this pod (the operator says so after a pool eviction, issue
#: 32), so the drain need not wait out its endpoint delay.
SETTLED_PATH = "/drain/settled"
#: The name of the sidecar's port, by which the operator finds it in a pod's spec.
PORT_NAME = "drain"

# Environment variables of ``hearth drainer`` (each is also a flag; see ``hearth drainer --help``).
LISTEN_ENV = "HEARTH_DRAINER_LISTEN_ADDR"
METRICS_URL_ENV = "HEARTH_DRAINER_METRICS_URL"
RUNNING_ENV = "HEARTH_DRAINER_RUNNING_METRIC"
WAITING_ENV = "HEARTH_DRAINER_WAITING_METRIC"
TIMEOUT_ENV = "HEARTH_DRAINER_TIMEOUT"
ENDPOINT_DELAY_ENV = "HEARTH_DRAINER_ENDPOINT_DELAY"
POLL_INTERVAL_ENV = "HEARTH_DRAINER_POLL_INTERVAL"

#: How long a drain waits before its first look at the engine: the time for the pod's endpoint removal to
#: reach every gateway (EndpointSlice watch events arrive well within it on a healthy cluster), so a request
#: routed just before the removal is already counted by the engine when the drain first reads it.
DEFAULT_ENDPOINT_DELAY = "1s"
#: How often the engine's metrics are read while something is in flight: a drain ends at most this long
#: after the last request does.
DEFAULT_POLL_INTERVAL = "250ms"
#: The cap when the variable is missing (the LLMService's drainTimeout is always rendered).
DEFAULT_TIMEOUT = "2m"
