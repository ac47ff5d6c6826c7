"""Golden YAML of the rendered children, one file per thing that varies, and the whole runtime x cache
strategy x scaler mode cross product pinned by what each axis may (and may not) change.

A baseline (vllm-nvidia, NodeLocalPVC, metrics-api) and one golden per other value of each axis, that axis
alone changed: every bundled runtime, every cache strategy, every scaler mode. The cross-product test then
shows that every combination is exactly what those goldens compose to: the scaler mode shapes only the
gateway's objects and the ScaledObject, the runtime and strategy only the backend's, and the strategy only
the cache's parts of them (the cache volume, its mount and env, the PVC, the prewarm Job's presence).
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.api import gatewayenv, loading, scalermodes
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.api.scalermodes import ScalerMode
from hearth.common import bundle
from hearth.render import cache, plan
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError
from tests.render.test_plan import loads_a_file, on_cpu

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HEARTH_UPDATE_GOLDEN") == "1"
RUNTIMES: list[InferenceRuntime] = [
    runtime
    for name in bundle.names("runtimes")
    for runtime in loading.load_all(bundle.read_text("runtimes", name), source=name)
    if isinstance(runtime, InferenceRuntime)
]
RUNTIME_NAMES = sorted(runtime.metadata.name for runtime in RUNTIMES)
STRATEGIES = ("NodeLocalPVC", "HostPath", "None")
BASE_RUNTIME, BASE_STRATEGY, BASE_MODE = "vllm-nvidia", "NodeLocalPVC", ScalerMode.METRICS_API
Combination = tuple[str, str, ScalerMode]

GOLDEN_COMBINATIONS: list[Combination] = list(
    dict.fromkeys(
        [
            *((runtime, BASE_STRATEGY, BASE_MODE) for runtime in RUNTIME_NAMES),
            *((BASE_RUNTIME, strategy, BASE_MODE) for strategy in STRATEGIES),
            *((BASE_RUNTIME, BASE_STRATEGY, mode) for mode in scalermodes.RESOLVED),
        ]
    )
)

#: The golden each scaler mode's gateway side is compared with.
BASE_GOLDEN: dict[ScalerMode, Combination] = {
    mode: (BASE_RUNTIME, BASE_STRATEGY, mode) for mode in scalermodes.RESOLVED
}


_loads_a_file = loads_a_file


#: A file-loading engine needs the prewarm Job to fetch its file into a cache: strategy None is refused
#: (test_a_file_engine_without_a_cache_is_refused).
ALL_COMBINATIONS: list[Combination] = [
    (runtime, strategy, mode)
    for runtime in RUNTIME_NAMES
    for strategy in STRATEGIES
    for mode in scalermodes.RESOLVED
    if not (strategy == "None" and _loads_a_file(runtime))
]

#: Steps whose objects belong to the gateway and the scaler; every other step belongs to the backend.
GATEWAY_STEPS = {
    Reason.APPLY_GATEWAY_RBAC.value,
    Reason.APPLY_GATEWAY.value,
    Reason.APPLY_GATEWAY_SERVICE.value,
    Reason.APPLY_GATEWAY_DISRUPTION_BUDGET.value,
    Reason.APPLY_GATEWAY_SCALER_SERVICE.value,
    Reason.APPLY_SCALED_OBJECT.value,
}
CACHE_ENV_NAMES = {name for name, _ in cache.CACHE_ENV}
GGUF_URI = "hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf"


def _service(runtime: str, strategy: str) -> LLMService:
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml", "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": {
            "model": {"source": {"uri": GGUF_URI if _loads_a_file(runtime) else "hf://Qwen/Qwen3-8B"}},
            "runtime": {"name": runtime, "argsOverride": ["--max-model-len=8192"]},
            # A CPU runtime's accelerators are its CPU limit, which the request may not exceed.
            "resources": {"accelerators": 4 if on_cpu(runtime) else 2, "cpu": "4", "memory": "32Gi"},
            "scaling": {"min": 0, "max": 3, "target": 4},
            "cache": {"strategy": strategy, "prewarm": True, "size": "80Gi"},
            "imagePullSecrets": [{"name": "registry"}],
        },
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


@functools.cache
def _documents(runtime: str, strategy: str, mode: ScalerMode) -> tuple[dict[str, Any], ...]:
    config = OperatorConfig(
        gateway_image="hearth.dev/hearth:test", gateway_args=("gateway",), scaler_mode=mode
    )
    built = plan.build(_service(runtime, strategy), RUNTIMES, config)
    return tuple(
        {"step": step.reason.value, "mode": step.mode.value, **step.manifest} for step in built.steps
    )


def _documents_copy(combination: Combination) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_documents(*combination)))


def _golden_path(combination: Combination) -> Path:
    runtime, strategy, mode = combination
    return GOLDEN / f"{runtime}.{strategy}.{mode}.yaml"


@pytest.mark.parametrize("combination", GOLDEN_COMBINATIONS, ids=lambda c: ".".join(map(str, c)))
def test_golden(combination: Combination) -> None:
    rendered = yaml.safe_dump_all(_documents_copy(combination), sort_keys=False)
    golden = _golden_path(combination)
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file {golden.name}: run with HEARTH_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{golden.name} differs: review, then HEARTH_UPDATE_GOLDEN=1"


def test_no_golden_file_is_left_unchecked() -> None:
    assert sorted(path.name for path in GOLDEN.iterdir()) == sorted(
        _golden_path(combination).name for combination in GOLDEN_COMBINATIONS
    )


def _golden(combination: Combination) -> list[dict[str, Any]]:
    """A golden file's documents (what the cross product is compared with, so it follows the files)."""
    return copy.deepcopy(list(_golden_documents(combination)))


@functools.cache
def _golden_documents(combination: Combination) -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load_all(_golden_path(combination).read_text()))


def _side(documents: list[dict[str, Any]], *, gateway: bool) -> list[dict[str, Any]]:
    return [document for document in documents if (document["step"] in GATEWAY_STEPS) is gateway]


#: The gateway env its runtime's engine family shapes: the readiness path (SGLang's /health_generate) and
#: the stream rule (llama-server's strict one).
ENGINE_GATEWAY_ENV = {
    gatewayenv.READINESS_PATH.env,
    gatewayenv.STREAM_RULE.env,
    gatewayenv.UPSTREAM_AFTER_STREAM.env,
}


def _readiness_env(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Take the gateway's engine env out of *documents* (in place) and return it: the one part of the
    gateway side its runtime's engine family shapes."""
    taken: list[dict[str, Any]] = []
    for document in documents:
        if document["step"] != Reason.APPLY_GATEWAY.value:
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            env = container.get("env", [])
            taken += [entry for entry in env if entry["name"] in ENGINE_GATEWAY_ENV]
            container["env"] = [entry for entry in env if entry["name"] not in ENGINE_GATEWAY_ENV]
    return taken


def _take_cache(items: list[dict[str, Any]], names: set[str], *, first: bool = False) -> list[dict[str, Any]]:
    """Remove and return the cache entries of *items*, which must all sit at its end (its start with
    *first*), where render puts them; an entry with a cache name anywhere else fails."""
    taken: list[dict[str, Any]] = []
    index = 0 if first else -1
    while items and items[index]["name"] in names:
        taken.append(items.pop(index))
    assert not [item for item in items if item["name"] in names], "cache entries must be grouped"
    return taken if first else taken[::-1]


def _split_cache(pod: dict[str, Any], *, env_first: bool = False) -> dict[str, Any]:
    """Take the cache's parts out of a pod spec (in place) and return them."""
    (container,) = pod["containers"]
    parts = {
        "volumes": _take_cache(pod["volumes"], {cache.CACHE_VOLUME}),
        "mounts": _take_cache(container["volumeMounts"], {cache.CACHE_VOLUME}),
        "env": _take_cache(container.get("env", []), CACHE_ENV_NAMES, first=env_first),
    }
    if container.get("env") == []:
        del container["env"]
    return parts


def _backend_without_cache(documents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The backend's documents with every cache part taken out, and those parts."""
    kept, parts = [], {}
    for document in _side(copy.deepcopy(documents), gateway=False):
        if document["step"] == Reason.APPLY_CACHE_PVC.value:
            parts["claim"] = document
            continue
        if document["step"] == Reason.APPLY_DEPLOYMENT.value:
            parts["backend"] = _split_cache(document["spec"]["template"]["spec"])
        if document["step"] == Reason.APPLY_PREWARM_JOB.value:
            parts["prewarm"] = _split_cache(document["spec"]["template"]["spec"], env_first=True)
            continue  # its presence is the strategy's; its cache-free rest is compared on its own
        kept.append(document)
    return kept, parts


def _prewarm_without_cache(documents: list[dict[str, Any]]) -> dict[str, Any] | None:
    for document in copy.deepcopy(documents):
        if document["step"] == Reason.APPLY_PREWARM_JOB.value:
            _split_cache(document["spec"]["template"]["spec"], env_first=True)
            return dict(document)
    return None


@pytest.mark.parametrize("combination", ALL_COMBINATIONS, ids=lambda c: ".".join(map(str, c)))
def test_every_combination_is_what_the_goldens_compose_to(combination: Combination) -> None:
    runtime, strategy, mode = combination
    rendered = _documents_copy(combination)
    # The scaler mode alone shapes the gateway side: the same as the mode's golden for any runtime/cache,
    # but for the readiness path of the runtime's golden.
    gateway_side, mode_side = _side(rendered, gateway=True), _side(_golden(BASE_GOLDEN[mode]), gateway=True)
    assert _readiness_env(gateway_side) == _readiness_env(
        _side(_golden((runtime, BASE_STRATEGY, BASE_MODE)), gateway=True)
    )
    _readiness_env(mode_side)
    assert gateway_side == mode_side
    # ... and never the backend side, which is the (runtime, strategy) render of the baseline mode.
    assert _side(rendered, gateway=False) == _side(
        _documents_copy((runtime, strategy, BASE_MODE)), gateway=False
    )
    # The strategy changes only the cache's parts: without them the backend is the runtime's golden.
    runtime_golden = _golden((runtime, BASE_STRATEGY, BASE_MODE))
    without, parts = _backend_without_cache(rendered)
    golden_without, _ = _backend_without_cache(runtime_golden)
    assert without == golden_without
    assert _prewarm_without_cache(rendered) in (None, _prewarm_without_cache(runtime_golden))
    # ... and those parts are the strategy's golden's, whatever the runtime.
    _, strategy_parts = _backend_without_cache(_golden((BASE_RUNTIME, strategy, BASE_MODE)))
    assert parts == strategy_parts
    # The steps come in one order: the mode's, less the cache objects the strategy does not create.
    steps = [document["step"] for document in rendered]
    expected = [document["step"] for document in _golden((BASE_RUNTIME, strategy, BASE_MODE))]
    assert [step for step in steps if step not in GATEWAY_STEPS] == [
        step for step in expected if step not in GATEWAY_STEPS
    ]
    assert steps == [
        document["step"]
        for document in _golden((BASE_RUNTIME, BASE_STRATEGY, mode))
        if document["step"] in GATEWAY_STEPS or document["step"] in steps
    ]


def test_a_file_engine_without_a_cache_is_refused() -> None:
    for runtime in RUNTIME_NAMES:
        if not _loads_a_file(runtime):
            continue
        config = OperatorConfig(gateway_image="hearth.dev/hearth:test")
        with pytest.raises(ReconcileError, match=r"spec\.cache\.prewarm: true") as raised:
            plan.build(_service(runtime, "None"), RUNTIMES, config)
        assert raised.value.reason is Reason.RENDER
