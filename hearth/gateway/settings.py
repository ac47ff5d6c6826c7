"""The gateway's settings, from the environment the operator renders (SPEC §3.1) plus Hearth's own.

Unlike the reference (which silently falls back to defaults), a value that does not parse stops the
process with a message naming the variable; values <= 0 still mean "use the default", as in the reference.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from hearth.common import durations, netaddr

# The operator writes HEARTH_SCALER_MODE from this same enum; only builtin makes the gateway write to the API.
from hearth.render.config import ScalerMode


class SettingsError(ValueError):
    """An environment variable with a value the gateway cannot use."""


class ColdStartMode(enum.StrEnum):
    KEEPALIVE = "keepalive"
    REJECT = "reject"


DEFAULT_ACTIVATION_TIMEOUT = durations.Duration(5 * durations.MINUTE)
DEFAULT_HEARTBEAT = durations.Duration(10 * durations.SECOND)
DEFAULT_MAX_QUEUE = 100
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: All request bodies buffered at once (issue 17 B6); the rendered memory limit is sized from it.
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = durations.Duration(60 * durations.SECOND)
DEFAULT_READINESS_PATH = "/health"
DEFAULT_LISTEN = netaddr.ListenAddress(host=None, port=8080)
DEFAULT_SHUTDOWN_TIMEOUT = durations.Duration(25 * durations.SECOND)
DEFAULT_DRAIN_DELAY = durations.Duration(5 * durations.SECOND)


@dataclasses.dataclass(frozen=True, slots=True)
class GatewaySettings:
    backend_url: str
    listen: netaddr.ListenAddress = DEFAULT_LISTEN
    scaler_listen: netaddr.ListenAddress | None = None
    max_queue: int = DEFAULT_MAX_QUEUE
    activation_timeout: durations.Duration = DEFAULT_ACTIVATION_TIMEOUT
    cold_start_mode: ColdStartMode = ColdStartMode.KEEPALIVE
    heartbeat_interval: durations.Duration = DEFAULT_HEARTBEAT
    #: Where to watch backend readiness (EndpointSlices of this Service) and which Deployment to wake.
    namespace: str | None = None
    backend_service: str | None = None
    backend_deployment: str | None = None
    scaler_mode: ScalerMode = ScalerMode.METRICS_API
    #: Answer for GET /v1/models while the backend is cold (until the backend has answered once).
    model_name: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    #: A request's whole body must arrive within this long (it is read before the request is admitted).
    body_timeout: durations.Duration = DEFAULT_BODY_TIMEOUT
    #: The path the probe fallback GETs on the backend: the runtime's readiness probe path.
    readiness_path: str = DEFAULT_READINESS_PATH
    #: After SIGTERM, how long streams in flight may take to finish.
    shutdown_timeout: durations.Duration = DEFAULT_SHUTDOWN_TIMEOUT
    #: After SIGTERM, how long to keep admitting (readiness already failing) while Kubernetes removes this
    #: pod from the Service endpoints, so no client is refused.
    drain_delay: durations.Duration = DEFAULT_DRAIN_DELAY
    #: endpointslices (watch the API), probe (GET <backend>/health), or auto (slices when possible).
    readiness: str = "auto"
    #: A directory whose files are the accepted API keys (a mounted Secret); None: no authentication.
    api_keys_dir: str | None = None

    @property
    def uses_api(self) -> bool:
        return bool(self.namespace and self.backend_service)


def _duration(env: Mapping[str, str], name: str, default: durations.Duration) -> durations.Duration:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = durations.Duration.parse(text)
    except durations.DurationError as error:
        raise SettingsError(f"{name}: {error}") from None
    return value if value.nanoseconds > 0 else default


def _address(env: Mapping[str, str], name: str, default: str | None) -> netaddr.ListenAddress | None:
    text = env.get(name, "").strip() or default
    if not text:
        return None
    try:
        return netaddr.ListenAddress.parse(text)
    except netaddr.AddressError as error:
        raise SettingsError(f"{name}: {error}") from None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f'{name}: "{text}" is not an integer') from None
    return value if value > 0 else default


def _path(env: Mapping[str, str], name: str, default: str) -> str:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise SettingsError(f'{name}: "{text}" must be a URL path starting with / (e.g. /health)')
    return text


def _drain_delay(env: Mapping[str, str]) -> durations.Duration:
    # 0 is meaningful here (no delay), unlike the reference's durations where <= 0 means the default.
    text = env.get("HEARTH_DRAIN_DELAY", "").strip()
    if not text:
        return DEFAULT_DRAIN_DELAY
    try:
        return max(durations.Duration.parse(text), durations.Duration(0))
    except durations.DurationError as error:
        raise SettingsError(f"HEARTH_DRAIN_DELAY: {error}") from None


def from_environment(env: Mapping[str, str]) -> GatewaySettings:
    backend = env.get("HEARTH_BACKEND_URL", "").strip().rstrip("/")
    if not backend:
        raise SettingsError("HEARTH_BACKEND_URL is required (e.g. http://qwen-backend.ml.svc:80)")
    if not backend.startswith(("http://", "https://")):
        raise SettingsError(f'HEARTH_BACKEND_URL: "{backend}" must start with http:// or https://')
    mode_text = env.get("HEARTH_SCALER_MODE", "").strip() or ScalerMode.METRICS_API.value
    try:
        scaler_mode = ScalerMode(mode_text)
    except ValueError:
        choices = ", ".join(mode.value for mode in ScalerMode)
        raise SettingsError(f'HEARTH_SCALER_MODE: "{mode_text}" is not one of {choices}') from None
    readiness = env.get("HEARTH_READINESS", "").strip() or "auto"
    if readiness not in ("auto", "endpointslices", "probe"):
        raise SettingsError(f'HEARTH_READINESS: "{readiness}" is not one of auto, endpointslices, probe')
    listen = _address(env, "HEARTH_LISTEN_ADDR", ":8080")
    assert listen is not None
    return GatewaySettings(
        backend_url=backend,
        listen=listen,
        scaler_listen=_address(env, "HEARTH_SCALER_LISTEN_ADDR", None),
        max_queue=_positive_int(env, "HEARTH_MAX_QUEUE", DEFAULT_MAX_QUEUE),
        activation_timeout=_duration(env, "HEARTH_ACTIVATION_TIMEOUT", DEFAULT_ACTIVATION_TIMEOUT),
        # Exactly "reject" selects reject mode; anything else is keepalive (SPEC §3.1).
        cold_start_mode=ColdStartMode.REJECT
        if env.get("HEARTH_COLDSTART_MODE") == "reject"
        else ColdStartMode.KEEPALIVE,
        heartbeat_interval=_duration(env, "HEARTH_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT),
        namespace=env.get("HEARTH_NAMESPACE") or None,
        backend_service=env.get("HEARTH_BACKEND_SERVICE") or None,
        backend_deployment=env.get("HEARTH_BACKEND_DEPLOYMENT") or None,
        scaler_mode=scaler_mode,
        model_name=env.get("HEARTH_MODEL_NAME") or None,
        max_body_bytes=_positive_int(env, "HEARTH_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        max_buffered_bytes=_positive_int(env, "HEARTH_MAX_BUFFERED_BYTES", DEFAULT_MAX_BUFFERED_BYTES),
        body_timeout=_duration(env, "HEARTH_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT),
        readiness_path=_path(env, "HEARTH_READINESS_PATH", DEFAULT_READINESS_PATH),
        shutdown_timeout=_duration(env, "HEARTH_SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT),
        drain_delay=_drain_delay(env),
        readiness=readiness,
        api_keys_dir=env.get("HEARTH_API_KEYS_DIR", "").strip() or None,
    )
