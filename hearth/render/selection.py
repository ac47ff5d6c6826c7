"""Choosing the InferenceRuntime of an LLMService (SPEC §2.2): a pinned name wins; otherwise vendors in
the user's order of preference, the highest priority within a vendor, and a tie is an error."""

from __future__ import annotations

from collections.abc import Iterable

from hearth.api.llmservice import RuntimeSpec
from hearth.api.runtime import InferenceRuntime
from hearth.render.errors import Reason, ReconcileError


def select(spec: RuntimeSpec | None, runtimes: Iterable[InferenceRuntime]) -> InferenceRuntime:
    """The runtime to use, or :class:`ReconcileError` with reason ``RuntimeResolution``."""
    available = list(runtimes)
    if spec is not None and spec.name:
        for runtime in available:
            if runtime.metadata.name == spec.name:
                return runtime
        raise ReconcileError(Reason.RUNTIME_RESOLUTION, f'get InferenceRuntime "{spec.name}": not found')
    vendors = list(spec.selector.vendor or []) if spec is not None and spec.selector is not None else []
    if not vendors:
        raise ReconcileError(
            Reason.RUNTIME_RESOLUTION,
            "no runtime selected: set spec.runtime.name or spec.runtime.selector.vendor",
        )
    for vendor in vendors:
        candidates = [runtime for runtime in available if runtime.spec.vendor == vendor]
        if not candidates:
            continue
        best = max(runtime.spec.priority for runtime in candidates)
        winners = sorted(runtime.metadata.name for runtime in candidates if runtime.spec.priority == best)
        if len(winners) > 1:
            raise ReconcileError(
                Reason.RUNTIME_RESOLUTION,
                f'ambiguous InferenceRuntime for vendor "{vendor}": '
                f"{', '.join(winners)} share priority {best}; set spec.runtime.name",
            )
        return next(runtime for runtime in candidates if runtime.metadata.name == winners[0])
    raise ReconcileError(
        Reason.RUNTIME_RESOLUTION, f"no InferenceRuntime matches vendors [{', '.join(vendors)}]"
    )
