"""``hearth stub``: run the CPU fake of a vLLM server."""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

import click

from hearth.cmd import params
from hearth.common import durations, hfcache, logs, netaddr, serve
from hearth.stub import server, vllm_args
from hearth.stub.settings import DEFAULT_MODEL, StubSettings

log = logging.getLogger(__name__)


@click.command(
    "stub",
    context_settings={"ignore_unknown_options": True},
    short_help="Run a CPU fake of a vLLM OpenAI-compatible server.",
)
@click.option(
    "--listen",
    type=params.LISTEN_ADDRESS,
    default=":8000",
    show_default=True,
    envvar="STUB_LISTEN_ADDR",
    show_envvar=True,
    help="Listen address in Go form; vLLM's --host/--port, when given, override its parts.",
)
@click.option(
    "--startup-delay",
    type=params.GO_DURATION,
    default="0s",
    show_default=True,
    envvar="STUB_STARTUP_DELAY",
    show_envvar=True,
    help="/health answers 503 until this long after start, like a model loading.",
)
@click.option(
    "--token-count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="STUB_TOKEN_COUNT",
    show_envvar=True,
    help="Tokens per answer when the request has no ?tokens=N.",
)
@click.option(
    "--token-delay",
    type=params.GO_DURATION,
    default="50ms",
    show_default=True,
    envvar="STUB_TOKEN_DELAY",
    show_envvar=True,
    help="Pause after each streamed token.",
)
@click.option(
    "--ready-gates-serving/--no-ready-gates-serving",
    default=False,
    show_default=True,
    envvar="STUB_READY_GATES_SERVING",
    show_envvar=True,
    help="Answer completions with 503 until the startup delay has passed.",
)
@click.option(
    "--shutdown-timeout",
    type=params.GO_DURATION,
    default="30s",
    show_default=True,
    envvar="STUB_SHUTDOWN_TIMEOUT",
    show_envvar=True,
    help="On SIGTERM, how long requests in flight may take to finish.",
)
@click.option(
    "--crash-on-start/--no-crash-on-start",
    default=False,
    show_default=True,
    envvar="STUB_CRASH_ON_START",
    show_envvar=True,
    help="Exit with status 1 at start, as an engine that cannot load its model (a crash loop in a pod).",
)
@click.option(
    "--allocate-mib",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    envvar="STUB_ALLOCATE_MIB",
    show_envvar=True,
    help="MiB of memory to fill and hold from start, as model weights would (over a memory limit: OOM).",
)
@params.logging_options
@click.argument("vllm_argv", nargs=-1, type=click.UNPROCESSED, metavar="[VLLM ARGS]...")
def command(vllm_argv: tuple[str, ...], **options: Any) -> None:
    """Run a CPU fake of a vLLM OpenAI-compatible server, for tests and demos.

    It serves /health, /v1/chat/completions, /v1/completions (streamed or whole), /v1/models, /metrics
    (vllm:num_requests_waiting, vllm:num_requests_running, vllm:kv_cache_usage_perc) and /control
    (POST {"waiting":n,"running":n,"kv_cache":n} overrides the gauges; DELETE restores live values).
    A request may ask for N tokens with ?tokens=N.

    VLLM ARGS are the arguments a vLLM InferenceRuntime passes, so the stub can stand in for vLLM:
    [vllm serve] [MODEL] [--model M] [--served-model-name NAME...] [--host H] [--port P]. Other vLLM
    flags are accepted and ignored.
    """
    logs.configure(level=options["log_level"], fmt=options["log_format"])
    try:
        parsed = vllm_args.parse(vllm_argv)
        settings = build_settings(vllm=parsed, **options)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if parsed.ignored:
        log.info(
            "ignoring vLLM options the stub does not model",
            extra=logs.fields(options=" ".join(parsed.ignored)),
        )
    report_cache(settings.model)
    try:
        server.run(settings)
    except serve.ListenError as error:
        raise click.UsageError(f"--port / STUB_LISTEN_ADDR: {error}") from None


def build_settings(
    *,
    vllm: vllm_args.VllmArgs,
    listen: netaddr.ListenAddress,
    startup_delay: durations.Duration,
    token_count: int,
    token_delay: durations.Duration,
    ready_gates_serving: bool,
    shutdown_timeout: durations.Duration,
    crash_on_start: bool = False,
    allocate_mib: int = 0,
    **_: Any,
) -> StubSettings:
    """Merge flags, environment and vLLM arguments into one validated settings object."""
    if vllm.host is not None:
        listen = listen.with_host(vllm.host)
    if vllm.port is not None:
        listen = listen.with_port(vllm.port)
    model = vllm.model or DEFAULT_MODEL
    return StubSettings(
        listen=listen,
        startup_delay=startup_delay,
        token_count=token_count,
        token_delay=token_delay,
        ready_gates_serving=ready_gates_serving,
        model=model,
        served_model_names=vllm.served_model_names or (model,),
        shutdown_timeout=shutdown_timeout,
        crash_on_start=crash_on_start,
        allocate_mib=allocate_mib,
    )


def report_cache(model: str) -> None:
    """Say whether the model is in the Hugging Face cache (a prewarmed one, say), reading it as a model load
    would: vLLM would start from those files instead of downloading them. A local path (a claim's, or the
    folder hearth fetch wrote an oci:// or s3:// model to) is read as the engine would read it."""
    if model.startswith("/"):
        _report_local(pathlib.Path(model))
        return
    if not hfcache.is_repo_id(model):
        return
    cache = hfcache.cache_dir(os.environ)
    try:
        found = hfcache.find(cache, model)
    except (hfcache.CacheError, OSError) as error:
        log.warning(
            "model cache unusable", extra=logs.fields(model=model, cache=str(cache), error=str(error))
        )
        return
    if found is None:
        log.info("model not in the Hugging Face cache", extra=logs.fields(model=model, cache=str(cache)))
        return
    log.info(
        "model loaded from the Hugging Face cache",
        extra=logs.fields(
            model=model, snapshot=found.commit, files=found.files, bytes=found.size, path=str(found.path)
        ),
    )


#: What the stub logs when its model path is a local folder or file it read (the e2e checks it).
LOADED_LOCAL = "model loaded from a local path"


def _report_local(path: pathlib.Path) -> None:
    """Read every file of *path* (a folder, or one file), as an engine loading the model would."""
    try:
        files = [path] if path.is_file() else sorted(item for item in path.rglob("*") if item.is_file())
        size = sum(len(item.read_bytes()) for item in files)
    except OSError as error:
        log.warning("model path unreadable", extra=logs.fields(path=str(path), error=str(error)))
        return
    if not files:
        log.warning("model path has no files", extra=logs.fields(path=str(path)))
        return
    log.info(LOADED_LOCAL, extra=logs.fields(path=str(path), files=len(files), bytes=size))
