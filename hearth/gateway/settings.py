"""The gateway's settings object, filled from the values of the settings declared in
:mod:`hearth.api.gatewayenv` (SPEC §3.1 plus Hearth's own); defaults come from that declaration too."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from hearth.api import gatewayenv
from hearth.api.scalermodes import ScalerMode  # the operator writes HEARTH_SCALER_MODE from this same enum
from hearth.common import durations, netaddr


class SettingsError(ValueError):
    """Settings the gateway cannot run with (the message names the flag and the variable)."""


class ColdStartMode(enum.StrEnum):
    KEEPALIVE = "keepalive"
    REJECT = "reject"


#: Choice settings whose value becomes an enum member.
_ENUMS: dict[str, type[enum.StrEnum]] = {"cold_start_mode": ColdStartMode, "scaler_mode": ScalerMode}


def _typed(setting: gatewayenv.Setting, value: object) -> Any:
    enum_type = _ENUMS.get(setting.field)
    return enum_type(str(value)) if enum_type is not None and value is not None else value


#: The declared defaults, typed (optional settings without one: None).
_DEFAULTS: dict[str, Any] = {
    setting.field: _typed(setting, setting.default_value()) for setting in gatewayenv.SETTINGS
}


@dataclasses.dataclass(frozen=True, slots=True)
class GatewaySettings:
    #: Where a dedicated gateway proxies (its backend Service); None for a shared gateway.
    backend_url: str | None = None
    listen: netaddr.ListenAddress = _DEFAULTS["listen"]
    scaler_listen: netaddr.ListenAddress | None = None
    #: The external scaler's mutual TLS files (tls.crt, tls.key, ca.crt); None: plaintext.
    scaler_tls_dir: str | None = None
    #: The gateway's own Service, whose EndpointSlices list its peer replicas (external-push sums their
    #: demand for KEDA); None: this replica answers with its own demand.
    peers_service: str | None = None
    max_queue: int = _DEFAULTS["max_queue"]
    activation_timeout: durations.Duration = _DEFAULTS["activation_timeout"]
    cold_start_mode: ColdStartMode = _DEFAULTS["cold_start_mode"]
    heartbeat_interval: durations.Duration = _DEFAULTS["heartbeat_interval"]
    #: Progress comments of held streams (at commit, then every interval); 0: none.
    progress_interval: durations.Duration = _DEFAULTS["progress_interval"]
    #: Where to watch backend readiness (EndpointSlices of this Service) and which Deployment to wake.
    namespace: str | None = None
    backend_service: str | None = None
    backend_deployment: str | None = None
    #: The LLMService this gateway fronts: its status says the wake's phase and recent wake times.
    llmservice: str | None = None
    scaler_mode: ScalerMode = _DEFAULTS["scaler_mode"]
    #: Answer for GET /v1/models while the backend is cold (until the backend has answered once).
    model_name: str | None = None
    max_body_bytes: int = _DEFAULTS["max_body_bytes"]
    max_buffered_bytes: int = _DEFAULTS["max_buffered_bytes"]
    #: A request's whole body must arrive within this long (it is read before the request is admitted).
    body_timeout: durations.Duration = _DEFAULTS["body_timeout"]
    #: The path the probe fallback GETs on the backend: the runtime's readiness probe path.
    readiness_path: str = _DEFAULTS["readiness_path"]
    #: How the engine reads "stream": lax (a pydantic bool, vLLM's) or strict (JSON true only).
    stream_rule: str = _DEFAULTS["stream_rule"]
    upstream_after_stream: str = _DEFAULTS["upstream_after_stream"]
    #: After SIGTERM, how long streams in flight may take to finish.
    shutdown_timeout: durations.Duration = _DEFAULTS["shutdown_timeout"]
    #: After SIGTERM, how long to keep admitting (readiness already failing) while Kubernetes removes this
    #: pod from the Service endpoints, so no client is refused.
    drain_delay: durations.Duration = _DEFAULTS["drain_delay"]
    #: endpointslices (watch the API), probe (GET <backend>/health), or auto (slices when possible).
    readiness: str = _DEFAULTS["readiness"]
    #: The listen backlog asked for (the kernel caps it at net.core.somaxconn).
    listen_backlog: int = _DEFAULTS["listen_backlog"]
    #: Held requests released at once per ready endpoint (:mod:`hearth.gateway.model.release`).
    release_wave: int = _DEFAULTS["release_wave"]
    #: A directory whose files are the accepted API keys (a mounted Secret); None: no authentication.
    api_keys_dir: str | None = None
    #: The file of the one accepted API key (one key of a mounted Secret); None: see api_keys_dir.
    api_key_file: str | None = None
    #: A shared gateway: the LLMGateway whose selected LLMServices it routes to (None: dedicated).
    llmgateway: str | None = None
    #: A shared gateway's key sets: one directory per Secret its LLMGateway lists.
    api_key_sets_dir: str | None = None
    #: spec.endpoint.fallback (issue 31; :mod:`hearth.gateway.model.fallback`): None: no fallback.
    fallback_base_url: str | None = None
    fallback_model: str | None = None
    fallback_while_cold: str = _DEFAULTS["fallback_while_cold"]
    fallback_hold: durations.Duration = _DEFAULTS["fallback_hold"]
    fallback_when_full: str = _DEFAULTS["fallback_when_full"]
    #: Never logged (the settings object has no repr of it: see the field's repr=False).
    fallback_api_key: str | None = dataclasses.field(default=None, repr=False)

    @property
    def uses_api(self) -> bool:
        return bool(self.namespace and self.backend_service)


def from_values(values: Mapping[str, object]) -> GatewaySettings:
    """Settings from the values of :data:`gatewayenv.SETTINGS` already parsed, keyed by field; a value that
    is None or absent takes the declared default."""
    fields: dict[str, Any] = {}
    for setting in gatewayenv.SETTINGS:
        value = values.get(setting.field)
        if value is None:
            unless = setting.required_unless
            if setting.required or (unless is not None and values.get(unless) is None):
                raise SettingsError(f"{setting.env} is required (flag {setting.flag}): {setting.help}")
            continue
        fields[setting.field] = _typed(setting, value)
    if fields.get("llmgateway") is not None and fields.get("namespace") is None:
        raise SettingsError(
            f"{gatewayenv.NAMESPACE.env} is required with {gatewayenv.LLMGATEWAY.env} (flag "
            f"{gatewayenv.NAMESPACE.flag}): the namespace of the LLMGateway and of the LLMServices it selects"
        )
    key_sources = [name for name in ("api_keys_dir", "api_key_file", "api_key_sets_dir") if fields.get(name)]
    if len(key_sources) > 1:
        flags = " and ".join(f"--{name.replace('_', '-')}" for name in key_sources)
        raise SettingsError(f"{flags}: API keys come from one place; set one of them")
    return GatewaySettings(**fields)
