"""``hearth drainer``: the backend pod's drain sidecar (rendered by the operator; see hearth.api.drain)."""

from __future__ import annotations

import click

from hearth.api import drain
from hearth.cmd import params
from hearth.common import durations, eventloop, logs, netaddr, serve
from hearth.drainer import app
from hearth.drainer.settings import DrainerSettings


@click.command(
    "drainer", short_help="Run a backend pod's drain sidecar: end the drain when the engine is idle."
)
@click.option(
    "--listen",
    type=params.LISTEN_ADDRESS,
    default=f":{drain.DEFAULT_PORT}",
    show_default=True,
    envvar=drain.LISTEN_ENV,
    show_envvar=True,
    help="Listen address in Go form; the engine container's preStop GETs /drain here.",
)
@click.option(
    "--metrics-url",
    required=True,
    envvar=drain.METRICS_URL_ENV,
    show_envvar=True,
    help="The engine's Prometheus endpoint, e.g. http://127.0.0.1:8000/metrics.",
)
@click.option(
    "--running-metric",
    required=True,
    envvar=drain.RUNNING_ENV,
    show_envvar=True,
    help="Series of requests running, e.g. vllm:num_requests_running.",
)
@click.option(
    "--waiting-metric",
    required=True,
    envvar=drain.WAITING_ENV,
    show_envvar=True,
    help="Series of requests waiting, e.g. vllm:num_requests_waiting.",
)
@click.option(
    "--timeout",
    type=params.GO_DURATION,
    default=drain.DEFAULT_TIMEOUT,
    show_default=True,
    envvar=drain.TIMEOUT_ENV,
    show_envvar=True,
    help="The longest a drain lasts (the LLMService's drainTimeout).",
)
@click.option(
    "--endpoint-delay",
    type=params.GO_DURATION,
    default=drain.DEFAULT_ENDPOINT_DELAY,
    show_default=True,
    envvar=drain.ENDPOINT_DELAY_ENV,
    show_envvar=True,
    help="Wait before the first look at the engine, for the endpoint removal to reach every gateway.",
)
@click.option(
    "--poll-interval",
    type=params.GO_DURATION,
    default=drain.DEFAULT_POLL_INTERVAL,
    show_default=True,
    envvar=drain.POLL_INTERVAL_ENV,
    show_envvar=True,
    help="How often the engine's metrics are read while requests are in flight.",
)
@params.logging_options
def command(
    *,
    listen: netaddr.ListenAddress,
    metrics_url: str,
    running_metric: str,
    waiting_metric: str,
    timeout: durations.Duration,
    endpoint_delay: durations.Duration,
    poll_interval: durations.Duration,
    log_level: str,
    log_format: logs.LogFormat,
) -> None:
    """Run a backend pod's drain sidecar. GET /drain answers once the engine reports nothing running and
    nothing waiting (after the endpoint delay), once its metrics port refuses connections (nothing can be in
    flight), or at the timeout, whichever comes first; a slow or failing scrape keeps the drain waiting.
    """
    logs.configure(level=log_level, fmt=log_format)
    try:
        settings = DrainerSettings(
            listen=listen,
            metrics_url=metrics_url,
            running_metric=running_metric,
            waiting_metric=waiting_metric,
            timeout=timeout,
            endpoint_delay=endpoint_delay,
            poll_interval=poll_interval,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        eventloop.run(app.run(settings))
    except serve.ListenError as error:
        raise click.UsageError(f"--listen / {drain.LISTEN_ENV}: {error}") from None
