"""What a runtime's engine family adds to its backend, keyed by ``spec.family`` (issue 25): the args, probes
and metrics a runtime leaves out, the env a model source needs, and the model path the engine is given.

:mod:`hearth.api.engines` says what each engine is; this module applies it to one runtime, the runtime's
own ``container.args``, ``health`` probes and ``metrics`` winning over the family's.
"""

from __future__ import annotations

import posixpath

from hearth.api import engines, modeluri
from hearth.api import runtime as runtime_api
from hearth.api.llmservice import LLMService
from hearth.api.modeluri import ResolvedModel
from hearth.api.runtime import InferenceRuntime
from hearth.render.errors import Reason, ReconcileError


def of(runtime: InferenceRuntime) -> engines.Engine:
    """The family entry of *runtime* (the API admits only known families)."""
    return engines.engine(runtime.spec.family)


def args(runtime: InferenceRuntime) -> list[str]:
    """The runtime's args, or its family's defaults when it has none (templates not yet rendered)."""
    if runtime.spec.container.args is not None:
        return list(runtime.spec.container.args)
    return of(runtime).default_args(port=runtime.spec.container.port.container_port)


def readiness_path(runtime: InferenceRuntime) -> str:
    """The GET path of the default readiness probe."""
    return of(runtime).readiness_path


def startup_path(runtime: InferenceRuntime) -> str:
    """The GET path of the default startup probe."""
    return of(runtime).startup_path


def metrics(runtime: InferenceRuntime) -> runtime_api.Metrics | None:
    """The runtime's declared metrics, or its family's names (None: the engine exports nothing by name).
    Declared, the dashboard-only roles it leaves out (KV-cache usage, time to first token) are the family's;
    ``running`` is not filled in: the drain waits on it, and only the runtime can vouch that its engine
    exports it."""
    names = of(runtime).metrics
    declared = runtime.spec.metrics
    if declared is not None:
        return declared.model_copy(
            update={
                "kv_cache_util": declared.kv_cache_util or names.kv_usage,
                "ttft": declared.ttft or names.ttft,
            }
        )
    if names.waiting is None:
        return None
    return runtime_api.Metrics(
        path=names.path,
        queue_depth=names.waiting,
        running=names.running,
        kv_cache_util=names.kv_usage,
        ttft=names.ttft,
    )


def source_env(runtime: InferenceRuntime, model: ResolvedModel) -> tuple[tuple[str, str], ...]:
    """The env the engine needs for the model's hub (``VLLM_USE_MODELSCOPE=true`` for vLLM on ModelScope)."""
    return of(runtime).env_for(model.hub)


def model_path(
    service: LLMService,
    runtime: InferenceRuntime,
    model: ResolvedModel,
    *,
    hf_home: str | None,
    model_cache: str | None = None,
) -> str:
    """What ``{{ .Model.Path }}`` renders to. An engine that loads repositories gets the source's reference;
    one that loads a single file gets the local file: in the claim, or where ``hearth fetch`` links it in the
    cache (*hf_home*: the cache's HF_HOME, None without a cache), which needs the prewarm Job. A plain-file
    model (oci://, s3://) is read only from ``hearth fetch``'s folder under *model_cache*."""
    entry = of(runtime)
    if model.folder is not None:
        return _fetched_folder(service, entry, model, model_cache=model_cache if hf_home else None)
    if entry.model_format is engines.ModelFormat.REPO or model.claim is not None:
        return model.path
    family = f"family {entry.family} ({entry.title}) loads one model file"
    if model.repo is None or model.file is None:
        raise ReconcileError(
            Reason.MODEL_RESOLUTION,
            f'model.source.uri "{model.uri}": {family}: name it after the repository, e.g. '
            f'"hf://<org>/<repo>/<file>.gguf", or use pvc://<claim>/<file>',
        )
    if model.hub != "huggingface":
        raise ReconcileError(
            Reason.MODEL_RESOLUTION,
            f'model.source.uri "{model.uri}": {family}, which only hf:// sources are fetched as yet',
        )
    if hf_home is None or not service.spec.cache.prewarm:
        raise ReconcileError(
            Reason.RENDER,
            f"{family}, which the prewarm Job fetches into the model cache: set spec.cache.prewarm: true and "
            f"a spec.cache.strategy other than None (strategy {service.spec.cache.strategy}, prewarm "
            f"{'true' if service.spec.cache.prewarm else 'false'})",
        )
    return modeluri.fetched_file(hf_home, model.repo, model.file)


def shutdown_args(runtime: InferenceRuntime, args: list[str], *, seconds: int) -> list[str]:
    """What ``lifecycle.engineDrain`` adds to the engine's *args* (rendered): its family's shutdown flag set
    to *seconds*, unless the args pass it already (the runtime's own value wins); nothing when the runtime
    does not opt in or there is no drain (*seconds* 0). A family without a flag is refused, naming the
    field."""
    lifecycle = runtime.spec.lifecycle
    if lifecycle is None or not lifecycle.engine_drain or seconds <= 0:
        return []
    entry = of(runtime)
    flag = entry.shutdown_flag
    if flag is None:
        raise ReconcileError(
            Reason.RENDER,
            f'InferenceRuntime "{runtime.metadata.name}": lifecycle.engineDrain: family {entry.family} '
            f"({entry.title}) has no shutdown flag Hearth knows ({entry.drain}); unset it",
        )
    if any(argument == flag or argument.startswith(flag + "=") for argument in args):
        return []
    return [f"{flag}={seconds}"]


def _fetched_folder(
    service: LLMService, entry: engines.Engine, model: ResolvedModel, *, model_cache: str | None
) -> str:
    scheme = f"{model.scheme.schemes[0]}://"
    if model_cache is None or not service.spec.cache.prewarm:
        raise ReconcileError(
            Reason.RENDER,
            f"{scheme} models are served from the model cache, which the prewarm Job fills: set "
            f"spec.cache.prewarm: true and a spec.cache.strategy other than None (strategy "
            f"{service.spec.cache.strategy}, prewarm {'true' if service.spec.cache.prewarm else 'false'})",
        )
    assert model.folder is not None
    folder = posixpath.join(model_cache, model.folder)
    if entry.model_format is engines.ModelFormat.REPO:
        return folder
    if model.file is None:
        raise ReconcileError(
            Reason.MODEL_RESOLUTION,
            f'model.source.uri "{model.uri}": family {entry.family} ({entry.title}) loads one model '
            f"file: name it in the URI, {model.scheme.form}",
        )
    return posixpath.join(folder, model.file)
