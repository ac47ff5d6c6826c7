"""What an EndpointSlice says about a Service's backends: the one rule for which endpoints take traffic,
shared by the gateway's readiness watch and the e2e checks that wait for the same thing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The label that ties an EndpointSlice to its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def selector(service: str) -> str:
    """The label selector of *service*'s EndpointSlices."""
    return f"{SERVICE_NAME_LABEL}={service}"


def is_ready(endpoint: Mapping[str, Any]) -> bool:
    """Whether an endpoint of a slice takes traffic: "ready" is unset or true for serving pods, and
    terminating pods report ready=false."""
    return (endpoint.get("conditions") or {}).get("ready") is not False
