"""The gateway's settings, declared once: each one's field, environment variable (SPEC §3.1 names), flag,
kind, default and help, and how its text is read.

The operator renders these variables (``hearth.render.gateway``), the gateway parses them
(``hearth.gateway.settings``) and ``hearth gateway`` turns each into a flag with its variable and help
(``hearth.cmd.gateway``): all three read this table, so a setting is added here and nowhere else.

Unlike the reference, a value that does not parse is an error, never a silent default. The reference's one
documented leniency is kept: for the settings marked ``zero_means_default``, a value <= 0 means the default.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from hearth.api import scalermodes
from hearth.common import durations, netaddr


class SettingError(ValueError):
    """A value a setting cannot take; the message says why (the caller names the flag and variable)."""


class Kind(enum.Enum):
    """How a setting's text is read."""

    URL = "url"  #: http:// or https:// URL, trailing slashes dropped
    ADDRESS = "address"  #: a Go-style listen address, ``[host]:port``
    COUNT = "count"  #: a whole number
    DURATION = "duration"  #: a Go duration (``300ms``, ``5m``)
    CHOICE = "choice"  #: one of ``choices``
    TEXT = "text"  #: any text (a name or a path)
    URL_PATH = "url-path"  #: an HTTP path starting with ``/``, no blanks


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One gateway setting."""

    #: The field of ``GatewaySettings`` it fills (and, with dashes, its flag).
    field: str
    env: str
    kind: Kind
    help: str
    #: As a user writes it; None: unset unless given (optional settings).
    default: str | None = None
    required: bool = False
    #: Required unless the setting of this field is given (a dedicated gateway's backend, say).
    required_unless: str | None = None
    choices: tuple[str, ...] = ()
    #: SPEC §3.1: the reference uses the default for a value <= 0; so does Hearth, and ``--help`` says so.
    zero_means_default: bool = False
    #: The least value accepted (a count, or a duration in nanoseconds), unless ``zero_means_default``.
    minimum: int | None = None

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    def parse(self, text: str) -> object:
        """The typed value of *text* (surrounding blanks ignored; blank means unset: the default, None
        when there is none), or :class:`SettingError`."""
        text = text.strip()
        if not text:
            return self.default_value()
        return _READERS[self.kind](self, text)

    def default_value(self) -> object:
        """The typed default (None for an optional setting without one)."""
        return None if self.default is None else self.parse(self.default)

    def _address(self, text: str) -> netaddr.ListenAddress:
        try:
            return netaddr.ListenAddress.parse(text)
        except netaddr.AddressError as error:
            raise SettingError(str(error)) from None

    def _choice(self, text: str) -> str:
        if text not in self.choices:
            raise SettingError(f'"{text}" is not one of {", ".join(self.choices)}')
        return text

    def _text(self, text: str) -> str:
        return text

    def _count(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SettingError(f'"{text}" is not a whole number') from None
        if self.zero_means_default and value <= 0:
            return self._count(self.default or "")
        if self.minimum is not None and value < self.minimum:
            raise SettingError(f"{value} is less than {self.minimum}")
        return value

    def _duration(self, text: str) -> durations.Duration:
        try:
            value = durations.Duration.parse(text)
        except durations.DurationError as error:
            raise SettingError(str(error)) from None
        if self.zero_means_default and value.nanoseconds <= 0:
            return self._duration(self.default or "")
        if self.minimum is not None and value.nanoseconds < self.minimum:
            raise SettingError(f"{value} is less than {durations.format_nanoseconds(self.minimum)}")
        return value

    def describe(self) -> str:
        """The help text with what ``--help`` must say: choices, default, leniency."""
        parts = [self.help]
        if self.choices:
            parts.append(f"One of: {', '.join(self.choices)}.")
        if self.required:
            parts.append("Required.")
        elif self.required_unless:
            parts.append(f"Required unless --{self.required_unless.replace('_', '-')} is given.")
        elif self.default is not None:
            parts.append(f"Default: {self.default}.")
        if self.zero_means_default:
            parts.append("A value <= 0 means the default (as in the reference).")
        return " ".join(parts)

    def _url_path(self, text: str) -> str:
        if not text.startswith("/") or any(character.isspace() for character in text):
            raise SettingError(f'"{text}" must be a URL path starting with / (e.g. /health)')
        return text

    def _url(self, text: str) -> str:
        url = text.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise SettingError(f'"{text}" must start with http:// or https://')
        return url


_READERS: dict[Kind, Callable[[Setting, str], object]] = {
    Kind.URL: Setting._url,
    Kind.ADDRESS: Setting._address,
    Kind.COUNT: Setting._count,
    Kind.DURATION: Setting._duration,
    Kind.CHOICE: Setting._choice,
    Kind.TEXT: Setting._text,
    Kind.URL_PATH: Setting._url_path,
}


BACKEND_URL = Setting(
    "backend_url",
    "HEARTH_BACKEND_URL",
    Kind.URL,
    "Backend Service URL requests are proxied to, e.g. http://qwen-backend.ml.svc:80.",
    required_unless="llmgateway",
)
LISTEN = Setting("listen", "HEARTH_LISTEN_ADDR", Kind.ADDRESS, "HTTP listen address.", default=":8080")
SCALER_LISTEN = Setting(
    "scaler_listen",
    "HEARTH_SCALER_LISTEN_ADDR",
    Kind.ADDRESS,
    "Listen address of KEDA's gRPC external scaler (external-push); unset: no gRPC server.",
)
SCALER_TLS_DIR = Setting(
    "scaler_tls_dir",
    "HEARTH_SCALER_TLS_DIR",
    Kind.TEXT,
    "Directory with tls.crt, tls.key and ca.crt (a mounted Secret): the external scaler serves mutual TLS, "
    "requiring a client certificate signed by ca.crt; unset: plaintext.",
)
PEERS_SERVICE = Setting(
    "peers_service",
    "HEARTH_PEERS_SERVICE",
    Kind.TEXT,
    "The Service whose EndpointSlices list every replica of this gateway: the external scaler answers KEDA "
    "with the demand summed over them (needs --namespace and API access); unset: this replica's own.",
)
MAX_QUEUE = Setting(
    "max_queue",
    "HEARTH_MAX_QUEUE",
    Kind.COUNT,
    "Admitted requests, waiting plus in flight; more get 429.",
    default="100",
    zero_means_default=True,
)
ACTIVATION_TIMEOUT = Setting(
    "activation_timeout",
    "HEARTH_ACTIVATION_TIMEOUT",
    Kind.DURATION,
    "How long a cold request is held, and keeps demand up, while the backend wakes.",
    default="5m",
    zero_means_default=True,
)
COLDSTART_MODE = Setting(
    "cold_start_mode",
    "HEARTH_COLDSTART_MODE",
    Kind.CHOICE,
    "Hold cold requests (with SSE heartbeats for streams) or answer them 503 at once.",
    default="keepalive",
    choices=("keepalive", "reject"),
)
HEARTBEAT_INTERVAL = Setting(
    "heartbeat_interval",
    "HEARTH_HEARTBEAT_INTERVAL",
    Kind.DURATION,
    "SSE heartbeat interval of held streams.",
    default="10s",
    zero_means_default=True,
)
PROGRESS_INTERVAL = Setting(
    "progress_interval",
    "HEARTH_PROGRESS_INTERVAL",
    Kind.DURATION,
    "Interval of the progress comments (`: hearth {...}`) of held streams, also sent at commit; 0: none.",
    default="5s",
    minimum=0,
)
NAMESPACE = Setting(
    "namespace",
    "HEARTH_NAMESPACE",
    Kind.TEXT,
    "Namespace of the backend (where readiness is watched and what is woken).",
)
BACKEND_SERVICE = Setting(
    "backend_service",
    "HEARTH_BACKEND_SERVICE",
    Kind.TEXT,
    "Backend Service whose EndpointSlices say which backends are ready.",
)
BACKEND_DEPLOYMENT = Setting(
    "backend_deployment",
    "HEARTH_BACKEND_DEPLOYMENT",
    Kind.TEXT,
    "Backend Deployment the gateway scales 0->1 in builtin mode.",
)
LLMSERVICE = Setting(
    "llmservice",
    "HEARTH_LLMSERVICE",
    Kind.TEXT,
    "LLMService whose status (one watched object) gives held clients the wake's phase and ETA.",
)
SCALER_MODE = Setting(
    "scaler_mode",
    "HEARTH_SCALER_MODE",
    Kind.CHOICE,
    "Who scales the backend; in builtin mode the gateway wakes it 0->1 itself.",
    default=str(scalermodes.ScalerMode.METRICS_API),
    # The modes a gateway runs in: the operator resolves auto before it writes this variable.
    choices=tuple(str(mode) for mode in scalermodes.RESOLVED),
)
READINESS = Setting(
    "readiness",
    "HEARTH_READINESS",
    Kind.CHOICE,
    "Where backend readiness comes from: the backend Service's EndpointSlices, GET <backend>/health, or "
    "auto (EndpointSlices when the API is reachable).",
    default="auto",
    choices=("auto", "endpointslices", "probe"),
)
MODEL_NAME = Setting(
    "model_name",
    "HEARTH_MODEL_NAME",
    Kind.TEXT,
    "Model listed by GET /v1/models while the backend is cold.",
)
MAX_BODY_BYTES = Setting(
    "max_body_bytes",
    "HEARTH_MAX_BODY_BYTES",
    Kind.COUNT,
    "Largest request body in bytes; larger ones get 413.",
    default=str(64 * 1024 * 1024),
    minimum=1,
)
MAX_BUFFERED_BYTES = Setting(
    "max_buffered_bytes",
    "HEARTH_MAX_BUFFERED_BYTES",
    Kind.COUNT,
    "All request bodies buffered at once, in bytes; a body that does not fit gets 429 (the rendered "
    "memory limit is sized from this).",
    default=str(256 * 1024 * 1024),
    minimum=1,
)
BODY_TIMEOUT = Setting(
    "body_timeout",
    "HEARTH_BODY_TIMEOUT",
    Kind.DURATION,
    "A request's whole body must arrive within this long (it is read before the request counts as "
    "demand); later: 408.",
    default="60s",
    minimum=1,
)
READINESS_PATH = Setting(
    "readiness_path",
    "HEARTH_READINESS_PATH",
    Kind.URL_PATH,
    "Path the probe fallback GETs on the backend: the runtime's readiness probe path.",
    default="/health",
)
STREAM_RULE = Setting(
    "stream_rule",
    "HEARTH_STREAM_RULE",
    Kind.CHOICE,
    'How the engine reads a request\'s "stream" field, so a cold request the engine will stream is held '
    'as a stream: lax (a pydantic bool: "yes", 1, "true"... stream, as vLLM, SGLang, trtllm-serve) or '
    "strict (JSON true only, as llama-server, TGI); the operator sets it from the runtime's engine family.",
    default="lax",
    choices=("lax", "strict"),
)
UPSTREAM_AFTER_STREAM = Setting(
    "upstream_after_stream",
    "HEARTH_UPSTREAM_AFTER_STREAM",
    Kind.CHOICE,
    "What the gateway does with a backend connection after a streamed answer: reuse it, or close it for an "
    "engine that closes it itself without saying so (llama-server), so no request goes out on a connection "
    "being closed; the operator sets it from the runtime's engine family.",
    default="reuse",
    choices=("reuse", "close"),
)
SHUTDOWN_TIMEOUT = Setting(
    "shutdown_timeout",
    "HEARTH_SHUTDOWN_TIMEOUT",
    Kind.DURATION,
    "After SIGTERM, how long streams in flight may take to finish.",
    default="25s",
    minimum=0,
)
DRAIN_DELAY = Setting(
    "drain_delay",
    "HEARTH_DRAIN_DELAY",
    Kind.DURATION,
    "After SIGTERM, how long to keep serving (readiness failing) while endpoints update; 0: none.",
    default="5s",
    minimum=0,
)
LISTEN_BACKLOG = Setting(
    "listen_backlog",
    "HEARTH_LISTEN_BACKLOG",
    Kind.COUNT,
    "Listen backlog: connections the kernel queues before the gateway accepts them, so a burst of clients "
    "arriving at a cold model is accepted at once instead of retrying SYNs for seconds. Capped by the "
    "kernel's net.core.somaxconn (/proc/sys/net/core/somaxconn; the gateway logs when it is).",
    default="4096",
    minimum=1,
)
RELEASE_WAVE = Setting(
    "release_wave",
    "HEARTH_RELEASE_WAVE",
    Kind.COUNT,
    "Once a backend is ready, held requests go to it first in, first out, at most this many per ready "
    "endpoint whose answer has not begun (each one that begins lets the next in): the first held request "
    "does not wait for the last, and the engine is not sent more than it runs at once (vLLM's default "
    "max_num_seqs is 256; a non-streaming answer begins only when it is complete).",
    default="256",
    minimum=1,
)
API_KEYS_DIR = Setting(
    "api_keys_dir",
    "HEARTH_API_KEYS_DIR",
    Kind.TEXT,
    "Directory whose files are the accepted API keys (a mounted Secret); unset: no authentication.",
)
API_KEY_FILE = Setting(
    "api_key_file",
    "HEARTH_API_KEY_FILE",
    Kind.TEXT,
    "File holding the one accepted API key (one key of a mounted Secret, spec.endpoint.authentication); "
    "re-read when it changes; while it is missing or empty every request gets 503 "
    "authentication_unavailable. Not together with --api-keys-dir.",
)
LLMGATEWAY = Setting(
    "llmgateway",
    "HEARTH_LLMGATEWAY",
    Kind.TEXT,
    "Run as the shared gateway of this LLMGateway (in HEARTH_NAMESPACE): route by the request's model to "
    "every LLMService it selects, read from the API; unset: the dedicated gateway of one backend.",
)
API_KEY_SETS_DIR = Setting(
    "api_key_sets_dir",
    "HEARTH_API_KEY_SETS_DIR",
    Kind.TEXT,
    "A shared gateway's API keys: one directory per Secret its LLMGateway lists (spec.auth.keys), each "
    "file one key; which models each Secret's keys may use is read from the LLMGateway.",
)

FALLBACK_BASE_URL = Setting(
    "fallback_base_url",
    "HEARTH_FALLBACK_BASE_URL",
    Kind.URL,
    "Base URL (with its /v1) of spec.endpoint.fallback: another LLMService's endpoint or an external "
    "OpenAI-compatible API that answers while the model is cold or full; unset: no fallback.",
)
FALLBACK_MODEL = Setting(
    "fallback_model",
    "HEARTH_FALLBACK_MODEL",
    Kind.TEXT,
    "Model name sent to the fallback (replaces the request's model).",
)
FALLBACK_WHILE_COLD = Setting(
    "fallback_while_cold",
    "HEARTH_FALLBACK_WHILE_COLD",
    Kind.CHOICE,
    "When a cold model's requests go to the fallback: at once (the wake still starts), after holding "
    "--fallback-hold, or never (only when full).",
    default="Immediately",
    choices=("Immediately", "AfterHold", "Never"),
)
FALLBACK_HOLD = Setting(
    "fallback_hold",
    "HEARTH_FALLBACK_HOLD",
    Kind.DURATION,
    "With AfterHold: how long a cold request is held before the fallback answers it.",
    default="30s",
    minimum=0,
)
FALLBACK_WHEN_FULL = Setting(
    "fallback_when_full",
    "HEARTH_FALLBACK_WHEN_FULL",
    Kind.CHOICE,
    "Also answer from the fallback when the model's queue is full or its AcceleratorPool has no room.",
    default="true",
    choices=("true", "false"),
)
FALLBACK_API_KEY = Setting(
    "fallback_api_key",
    "HEARTH_FALLBACK_API_KEY",
    Kind.TEXT,
    "Bearer key sent to the fallback (an external URL's, from a Secret); never logged. Prefer the "
    "variable to the flag, which other processes can read.",
)

#: Every setting, in the order ``--help`` lists them.
SETTINGS: tuple[Setting, ...] = (
    BACKEND_URL,
    LISTEN,
    SCALER_LISTEN,
    SCALER_TLS_DIR,
    PEERS_SERVICE,
    MAX_QUEUE,
    ACTIVATION_TIMEOUT,
    COLDSTART_MODE,
    HEARTBEAT_INTERVAL,
    PROGRESS_INTERVAL,
    NAMESPACE,
    BACKEND_SERVICE,
    BACKEND_DEPLOYMENT,
    LLMSERVICE,
    SCALER_MODE,
    READINESS,
    READINESS_PATH,
    STREAM_RULE,
    UPSTREAM_AFTER_STREAM,
    MODEL_NAME,
    MAX_BODY_BYTES,
    MAX_BUFFERED_BYTES,
    BODY_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    DRAIN_DELAY,
    LISTEN_BACKLOG,
    RELEASE_WAVE,
    API_KEYS_DIR,
    API_KEY_FILE,
    LLMGATEWAY,
    API_KEY_SETS_DIR,
    FALLBACK_BASE_URL,
    FALLBACK_MODEL,
    FALLBACK_WHILE_COLD,
    FALLBACK_HOLD,
    FALLBACK_WHEN_FULL,
    FALLBACK_API_KEY,
)
