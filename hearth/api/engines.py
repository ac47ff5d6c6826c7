"""The engine families: what each serving engine is given and how it is read (issue 25).

One table keyed by ``InferenceRuntime.spec.family``, read by the API (the accepted families and their
``kubectl explain`` text), the renderer (:mod:`hearth.render.engines`: default args, probes, metrics, the
env a source needs, the model path), the gateway (the readiness path and the stream rule reach it through
its env), the dashboards and the docs. A runtime's own ``container.args``, ``container.env``, ``health``
probes and ``metrics`` always win over its family's defaults here.

Every fact below comes from the engine's own documentation, cited beside it. Adding a family means adding an
entry here, a bundled runtime and its golden under ``tests/render/golden``, and a row in ``docs/engines.md``
(the walk-through there says how).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping


class Family(enum.StrEnum):
    """``InferenceRuntime.spec.family``."""

    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMACPP = "llamacpp"
    TRTLLM = "trtllm"
    TGI = "tgi"


class ModelFormat(enum.StrEnum):
    """What the engine is given as its model."""

    #: A hub repository id or a directory of files (config, tokenizer, safetensors); the engine resolves a
    #: repo id through the Hugging Face cache itself.
    REPO = "repo"
    #: One local file (a GGUF): the engine cannot read a hub repository, so a hub source must name the file
    #: (``hf://org/repo/file.gguf``) and be fetched into the cache first (the prewarm Job).
    FILE = "file"


class StreamRule(enum.StrEnum):
    """How the engine reads the request body's ``stream`` field (the gateway must agree, SPEC §3.3 step 6)."""

    #: A lax pydantic bool: ``true``, ``1``, ``"yes"``, ``"on"``, ``"t"``, ``"y"``, ``"1"`` and ``"true"``
    #: stream (vLLM, SGLang, trtllm-serve validate requests with pydantic models).
    LAX = "lax"
    #: Only JSON ``true`` streams (a JSON library reading a bool).
    STRICT = "strict"


class Proof(enum.StrEnum):
    """How far Hearth has been shown to work with a family (the README's engine table)."""

    #: Served end to end by ``hearth e2e`` against the real engine.
    E2E = "e2e with the real engine"
    #: Served end to end by ``hearth e2e`` against ``hearth stub``, the CPU fake that speaks its API.
    STUB = "e2e against the CPU stub"
    #: Rendered (golden tests) only.
    RENDERED = "rendered only"


#: Where the serving port goes in :attr:`Engine.args` (the runtime's ``container.port.containerPort``).
PORT = "{port}"
MODEL_PATH = "{{ .Model.Path }}"
SERVED_NAME = "{{ .Service.Name }}"


@dataclasses.dataclass(frozen=True, slots=True)
class EngineMetrics:
    """The engine's Prometheus series Hearth reads (drain, dashboards), and how to turn them on."""

    #: Requests waiting for a slot (``InferenceRuntime.spec.metrics.queueDepth``).
    waiting: str | None
    #: Requests being served (``metrics.running``); with ``waiting`` it tells an idle engine (the drain).
    running: str | None
    #: KV-cache use as a ratio 0..1 (``metrics.kvCacheUtil``); None: the engine exports none.
    kv_usage: str | None = None
    #: Time-to-first-token histogram (``metrics.ttft``).
    ttft: str | None = None
    path: str = "/metrics"
    #: Args that turn the metrics on (in the default args already; a runtime with its own args adds them).
    enable_args: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Engine:
    """One engine family."""

    family: Family
    #: The engine's name as people say it.
    title: str
    #: The upstream image the default args are written for (its entrypoint matters: see ``args``).
    image: str
    #: The engine's serving documentation (the facts below come from it and the pages cited beside them).
    docs: str
    #: Default container args when the runtime gives none: model path, served model name, host, port (as
    #: :data:`PORT`) and the metrics flag, for ``image``'s entrypoint. Go templates as in ``container.args``.
    args: tuple[str, ...]
    #: The engine's own default port and bind address, which the default args override (recorded because
    #: a localhost default is why ``--host`` must be passed: the kubelet's probes come from the node).
    native_port: int
    native_host: str
    #: GET path of the readiness probe: answers 200 only once the model is loaded and can serve.
    readiness_path: str
    #: GET path of the startup probe (the same unless the engine has a cheaper one).
    startup_path: str
    metrics: EngineMetrics
    #: What it loads.
    model_format: ModelFormat
    #: Env the engine needs per model hub (``huggingface``, ``modelscope``) on the serving container.
    source_env: Mapping[str, tuple[tuple[str, str], ...]]
    stream_rule: StreamRule
    #: How long the engine's HTTP server keeps an idle connection open (None: it does not close idle ones).
    #: The gateway reuses an idle upstream connection for less than every family's
    #: (hearth.gateway.forward.proxy UPSTREAM_IDLE_SECONDS; a test keeps it so), so a request never goes out
    #: on one being closed.
    keep_alive_seconds: float | None
    #: The engine closes its connection after a streamed (chunked) answer without saying so
    #: (``Connection: close``): the gateway must not send the next request on it.
    closes_after_stream: bool
    #: How the engine itself drains on SIGTERM, said in the docs (Hearth's preStop drain works for every
    #: family; this is what the engine adds).
    drain: str
    proof: Proof
    #: The flag, taking whole seconds, with which the engine finishes its running requests on SIGTERM
    #: before it exits (None: it has none, or drains without being asked). Rendered only when a runtime
    #: opts in (``lifecycle.engineDrain``): the flag exists only in some versions of the engine, and an
    #: engine given a flag it does not know refuses to start.
    shutdown_flag: str | None = None
    #: Why the family is render-only, when it is.
    note: str = ""

    def default_args(self, *, port: int) -> list[str]:
        """The args a runtime without ``container.args`` renders (templates still to render)."""
        return [argument.replace(PORT, str(port)) for argument in self.args]

    @property
    def upstream_after_stream(self) -> str:
        """What a gateway does with its connection after a streamed answer (HEARTH_UPSTREAM_AFTER_STREAM,
        ``status.engine.upstreamAfterStream``): ``close`` for an engine that closes it unannounced."""
        return "close" if self.closes_after_stream else "reuse"

    def env_for(self, hub: str) -> tuple[tuple[str, str], ...]:
        """The env a source on *hub* needs on the serving container."""
        return self.source_env.get(hub, ())


_TABLE: dict[Family, Engine] = {
    Family.VLLM: Engine(
        family=Family.VLLM,
        title="vLLM",
        # The vllm/vllm-openai image's entrypoint is `vllm serve`, so the args start with the model.
        # https://docs.vllm.ai/en/stable/deployment/docker.html
        image="docker.io/vllm/vllm-openai",
        docs="https://docs.vllm.ai/en/stable/cli/serve.html",
        # `vllm serve <model> --served-model-name --port`; --host defaults to all interfaces.
        args=(MODEL_PATH, f"--served-model-name={SERVED_NAME}", f"--port={PORT}"),
        native_port=8000,
        native_host="0.0.0.0",
        # /health answers 200 once the engine serves (the OpenAI-compatible server's docs).
        # https://docs.vllm.ai/en/stable/serving/openai_compatible_server.html
        readiness_path="/health",
        startup_path="/health",
        # Always on at /metrics. https://docs.vllm.ai/en/stable/usage/metrics.html
        metrics=EngineMetrics(
            waiting="vllm:num_requests_waiting",
            running="vllm:num_requests_running",
            kv_usage="vllm:kv_cache_usage_perc",
            ttft="vllm:time_to_first_token_seconds",
        ),
        model_format=ModelFormat.REPO,
        # VLLM_USE_MODELSCOPE makes vLLM resolve the repo id on ModelScope (SPEC §5.1).
        # https://docs.vllm.ai/en/stable/configuration/env_vars.html
        source_env={"modelscope": (("VLLM_USE_MODELSCOPE", "true"),)},
        stream_rule=StreamRule.LAX,
        # uvicorn, started with VLLM_HTTP_TIMEOUT_KEEP_ALIVE (default 5 s).
        # https://docs.vllm.ai/en/stable/configuration/env_vars.html
        keep_alive_seconds=5.0,
        closes_after_stream=False,
        drain=(
            "finishes running requests on SIGTERM for --shutdown-timeout seconds where the version has the "
            "flag (a runtime opts in with lifecycle.engineDrain); older versions stop at once"
        ),
        proof=Proof.STUB,
        # The online server's shutdown semantics (RFC https://github.com/vllm-project/vllm/issues/24885):
        # on SIGTERM stop accepting requests, let running ones finish for at most the configured time,
        # then exit; llm-d's graceful-shutdown guide pairs it with the pod's grace period
        # (https://llm-d.ai/docs/dev/operations/lifecycle/graceful-shutdown). Not in every version.
        shutdown_flag="--shutdown-timeout",
    ),
    Family.SGLANG: Engine(
        family=Family.SGLANG,
        title="SGLang",
        # The lmsysorg/sglang image has no server entrypoint: the args start the launcher.
        # https://docs.sglang.ai/get_started/install.html (Method 3: docker)
        image="docker.io/lmsysorg/sglang",
        docs="https://docs.sglang.ai/advanced_features/server_arguments.html",
        # --host defaults to 127.0.0.1 and --port to 30000 (server arguments page).
        args=(
            "python3",
            "-m",
            "sglang.launch_server",
            f"--model-path={MODEL_PATH}",
            f"--served-model-name={SERVED_NAME}",
            "--host=0.0.0.0",
            f"--port={PORT}",
            "--enable-metrics",
        ),
        native_port=30000,
        native_host="127.0.0.1",
        # /health answers as soon as the HTTP server is up; /health_generate runs one decode step, so it
        # answers 200 only once the model serves.
        # https://docs.sglang.ai/basic_usage/native_api.html
        readiness_path="/health_generate",
        startup_path="/health_generate",
        # Off unless --enable-metrics. https://docs.sglang.ai/references/production_metrics.html
        metrics=EngineMetrics(
            waiting="sglang:num_queue_reqs",
            running="sglang:num_running_reqs",
            kv_usage="sglang:token_usage",
            ttft="sglang:time_to_first_token_seconds",
            enable_args=("--enable-metrics",),
        ),
        model_format=ModelFormat.REPO,
        # SGLANG_USE_MODELSCOPE resolves the model path on ModelScope.
        # https://docs.sglang.ai/references/environment_variables.html
        source_env={"modelscope": (("SGLANG_USE_MODELSCOPE", "true"),)},
        stream_rule=StreamRule.LAX,
        # uvicorn with timeout_keep_alive=5 (sglang/srt/entrypoints/http_server.py).
        keep_alive_seconds=5.0,
        closes_after_stream=False,
        drain="no documented graceful drain: Hearth's preStop drain keeps the pod until it is idle",
        proof=Proof.RENDERED,
    ),
    Family.LLAMACPP: Engine(
        family=Family.LLAMACPP,
        title="llama.cpp (llama-server)",
        # The ghcr.io/ggml-org/llama.cpp:server images' entrypoint is llama-server, so the args are its
        # options. https://github.com/ggml-org/llama.cpp/blob/master/docs/docker.md
        image="ghcr.io/ggml-org/llama.cpp:server",
        docs="https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
        # -m/--model FNAME is one GGUF file; -a/--alias the name /v1/models reports; --host defaults to
        # 127.0.0.1 and --port to 8080; --metrics enables /metrics (README, "Usage"). Separate tokens: the
        # option parser takes the value as the next argument.
        args=(
            "--model",
            MODEL_PATH,
            "--alias",
            SERVED_NAME,
            "--host",
            "0.0.0.0",
            "--port",
            PORT,
            "--metrics",
        ),
        native_port=8080,
        native_host="127.0.0.1",
        # GET /health: 503 {"error": {"message": "Loading model"}} while loading, 200 once ready (README,
        # "GET /health").
        readiness_path="/health",
        startup_path="/health",
        # README, "GET /metrics": requests_processing and requests_deferred gauges; current versions export
        # no KV-cache ratio (llamacpp:kv_cache_usage_ratio is gone).
        metrics=EngineMetrics(
            waiting="llamacpp:requests_deferred",
            running="llamacpp:requests_processing",
            enable_args=("--metrics",),
        ),
        model_format=ModelFormat.FILE,
        source_env={},
        # The server reads "stream" from the request JSON as a bool (tools/server/utils.hpp json_value).
        stream_rule=StreamRule.STRICT,
        # cpp-httplib's default keep-alive timeout, CPPHTTPLIB_KEEPALIVE_TIMEOUT_SECOND = 5.
        keep_alive_seconds=5.0,
        # Measured with llama-server of llama-cpp-python 0.3.36's sources (cpp-httplib): a streamed answer
        # ends with the connection closed, no Connection: close said; a plain one keeps it open.
        closes_after_stream=True,
        drain="stops at once on SIGTERM: Hearth's preStop drain keeps the pod until it is idle",
        proof=Proof.E2E,
    ),
    Family.TRTLLM: Engine(
        family=Family.TRTLLM,
        title="TensorRT-LLM (trtllm-serve)",
        # The NGC release image runs what it is given, so the args start with trtllm-serve.
        # https://nvidia.github.io/TensorRT-LLM/installation/containers.html
        image="nvcr.io/nvidia/tensorrt-llm/release",
        docs="https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve/trtllm-serve.html",
        # `trtllm-serve <model> --host --port`: --host defaults to localhost, --port to 8000. It has no
        # served-name option: /v1/models reports the model argument.
        args=("trtllm-serve", MODEL_PATH, "--host=0.0.0.0", f"--port={PORT}"),
        native_port=8000,
        native_host="localhost",
        # /health (trtllm-serve page, "About").
        readiness_path="/health",
        startup_path="/health",
        # /metrics is a JSON list of iteration statistics, not Prometheus text: nothing to read by name.
        metrics=EngineMetrics(waiting=None, running=None),
        model_format=ModelFormat.REPO,
        source_env={},
        stream_rule=StreamRule.LAX,
        # uvicorn's default --timeout-keep-alive, 5 s (https://www.uvicorn.org/settings/#timeouts).
        keep_alive_seconds=5.0,
        closes_after_stream=False,
        drain="no documented graceful drain: Hearth's preStop drain sleeps drainTimeout (no metrics to read)",
        proof=Proof.RENDERED,
    ),
    Family.TGI: Engine(
        family=Family.TGI,
        title="Text Generation Inference",
        # The ghcr.io/huggingface/text-generation-inference image's entrypoint is text-generation-launcher.
        # https://huggingface.co/docs/text-generation-inference/quicktour
        image="ghcr.io/huggingface/text-generation-inference",
        docs="https://huggingface.co/docs/text-generation-inference/reference/launcher",
        # --model-id, --hostname (default 0.0.0.0), --port (default 3000; the image sets 80).
        args=(f"--model-id={MODEL_PATH}", "--hostname=0.0.0.0", f"--port={PORT}"),
        native_port=3000,
        native_host="0.0.0.0",
        readiness_path="/health",
        startup_path="/health",
        # Always on. https://huggingface.co/docs/text-generation-inference/reference/metrics
        metrics=EngineMetrics(waiting="tgi_queue_size", running="tgi_batch_current_size"),
        model_format=ModelFormat.REPO,
        source_env={},
        # The router deserialises requests with serde: a JSON bool only.
        stream_rule=StreamRule.STRICT,
        # The router's axum/hyper server closes no idle connection by default.
        keep_alive_seconds=None,
        closes_after_stream=False,
        drain="the router finishes in-flight requests on SIGTERM",
        proof=Proof.RENDERED,
        note="upstream is in maintenance mode (https://github.com/huggingface/text-generation-inference)",
    ),
}

#: Every family, in table order.
FAMILIES: tuple[Family, ...] = tuple(_TABLE)
#: The family of a runtime that names none (the CRD default, as the reference).
DEFAULT_FAMILY = Family.VLLM


def engine(family: Family | str) -> Engine:
    """The entry of *family*; ValueError names the accepted families."""
    try:
        return _TABLE[Family(family)]
    except ValueError:
        raise ValueError(f'family "{family}" is not one of {", ".join(FAMILIES)}') from None


def describe() -> str:
    """The ``kubectl explain`` text of ``spec.family``."""
    lines = [
        f"{entry.family}: {entry.title}"
        + (f" ({entry.model_format} format: one GGUF file)" if entry.model_format is ModelFormat.FILE else "")
        + (f"; render-only, {entry.note}" if entry.note else "")
        for entry in _TABLE.values()
    ]
    return (
        "Engine family: the defaults a runtime gets for what it leaves out (args for model path, served "
        "name, host and port; readiness and startup probe paths; metric names; the env a source needs). "
        + "; ".join(lines)
        + "."
    )
