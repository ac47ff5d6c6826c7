"""``hearth gateway``: the per-LLMService data plane, configured by the environment the operator renders."""

from __future__ import annotations

import asyncio
import os

import click

from hearth.cmd import params
from hearth.common import logs, serve
from hearth.gateway import server
from hearth.gateway import settings as gateway_settings


@click.command("gateway", short_help="Run the scale-to-zero OpenAI-compatible gateway of one LLMService.")
@params.logging_options
def command(*, log_level: str, log_format: logs.LogFormat) -> None:
    """Run the OpenAI-compatible gateway of one LLMService: admit, hold or reject cold requests while the
    backend wakes, raise demand, stream answers back, drain on SIGTERM.

    \b
    Configured by environment (the operator sets these):
      HEARTH_BACKEND_URL          backend Service URL (required), e.g. http://qwen-backend.ml.svc:80
      HEARTH_LISTEN_ADDR          listen address (default :8080)
      HEARTH_MAX_QUEUE            admitted requests, waiting plus in flight (default 100)
      HEARTH_ACTIVATION_TIMEOUT   how long a cold request is held / keeps demand (default 5m)
      HEARTH_COLDSTART_MODE       keepalive (default) or reject
      HEARTH_HEARTBEAT_INTERVAL   SSE heartbeat interval for held streams (default 10s)
      HEARTH_NAMESPACE, HEARTH_BACKEND_SERVICE, HEARTH_BACKEND_DEPLOYMENT
                                  where to watch readiness (EndpointSlices) and what to wake
      HEARTH_SCALER_MODE          metrics-api (default), external-push or builtin (the gateway wakes 0->1)
      HEARTH_READINESS            auto (default), endpointslices or probe (GET <backend><path>)
      HEARTH_READINESS_PATH       the probe's path: the runtime's readiness probe path (default /health)
      HEARTH_MODEL_NAME           model listed by GET /v1/models while the backend is cold
      HEARTH_SHUTDOWN_TIMEOUT     after SIGTERM, time for streams in flight (default 25s)
      HEARTH_DRAIN_DELAY          after SIGTERM, keep serving while endpoints update (default 5s)
      HEARTH_MAX_BODY_BYTES       largest request body (default 64 MiB)
      HEARTH_MAX_BUFFERED_BYTES   all request bodies buffered at once (default 256 MiB)
      HEARTH_BODY_TIMEOUT         a request's body must arrive within this long (default 60s)
    """
    logs.configure(level=log_level, fmt=log_format)
    try:
        settings = gateway_settings.from_environment(os.environ)
    except gateway_settings.SettingsError as error:
        raise click.UsageError(str(error)) from None
    try:
        asyncio.run(server.run(settings))
    except serve.ListenError as error:
        raise click.UsageError(f"HEARTH_LISTEN_ADDR: {error}") from None
