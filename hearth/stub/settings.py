"""The stub's settings: one typed object built from flags, ``STUB_*`` variables and vLLM arguments."""

from __future__ import annotations

import dataclasses

from hearth.common import durations, netaddr

DEFAULT_MODEL = "hearth-stub"
_DEFAULT_LISTEN = netaddr.ListenAddress(host=None, port=8000)
_NO_DELAY = durations.Duration(0)
_DEFAULT_TOKEN_DELAY = durations.Duration(50 * durations.MILLISECOND)
_DEFAULT_SHUTDOWN_TIMEOUT = durations.Duration(30 * durations.SECOND)


@dataclasses.dataclass(frozen=True, slots=True)
class StubSettings:
    """Everything that shapes the stub's behaviour, validated before the server starts."""

    #: Where to listen (``STUB_LISTEN_ADDR``, default ``:8000``; vLLM's ``--host``/``--port`` override it).
    listen: netaddr.ListenAddress = _DEFAULT_LISTEN
    #: ``/health`` answers 503 until this long after start (``STUB_STARTUP_DELAY``), like a model loading.
    startup_delay: durations.Duration = _NO_DELAY
    #: Tokens per answer unless the request asks ``?tokens=N`` (``STUB_TOKEN_COUNT``).
    token_count: int = 1
    #: Pause after each streamed token (``STUB_TOKEN_DELAY``).
    token_delay: durations.Duration = _DEFAULT_TOKEN_DELAY
    #: Refuse completions with 503 before the startup delay (``STUB_READY_GATES_SERVING``); the reference
    #: stub serves them at once.
    ready_gates_serving: bool = False
    #: The model path (vLLM's positional model or ``--model``), shown as ``root`` in ``/v1/models``.
    model: str = DEFAULT_MODEL
    #: Names clients use (vLLM's ``--served-model-name``); the model path when none are given.
    served_model_names: tuple[str, ...] = (DEFAULT_MODEL,)
    #: How long SIGTERM waits for requests in flight before the process exits.
    shutdown_timeout: durations.Duration = _DEFAULT_SHUTDOWN_TIMEOUT
    #: Exit with status 1 at start (``STUB_CRASH_ON_START``), as an engine that cannot load its model does:
    #: the e2e's crash-looping backend.
    crash_on_start: bool = False
    #: MiB to allocate and hold from start (``STUB_ALLOCATE_MIB``), as a model's weights would: above the
    #: container's memory limit the kernel kills it (the e2e's OOM-killed backend).
    allocate_mib: int = 0

    def __post_init__(self) -> None:
        if self.token_count < 1:
            raise ValueError("token_count must be at least 1")
        if self.allocate_mib < 0:
            raise ValueError("allocate_mib must not be negative")
        if not self.served_model_names:
            raise ValueError("at least one served model name is required")
