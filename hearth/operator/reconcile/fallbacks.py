"""``spec.endpoint.fallback`` in the operator (pure; issue 31): whether the fallback an LLMService names can
be used, as its ``Fallback`` condition, and the Event that says prompts may leave the cluster.

The gateway sends requests to the fallback; the operator only judges the reference: an LLMService that does
not exist (yet), the service itself (the API server refuses that already), or a chain of fallbacks that
leads back to it (A -> B -> A: a request could bounce between two cold models). A refused fallback is not
rendered into the gateway, so requests are held or refused as coldStart says until it is fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib import parse

from hearth.api import fallback as fallback_api
from hearth.api.llmservice import LLMService

CONDITION = "Fallback"
#: The reasons of the condition (CamelCase, as Kubernetes condition reasons are).
REASON_SERVICE = "ServiceFallback"
REASON_EXTERNAL = "ExternalFallback"
REASON_MISSING = "FallbackMissing"
REASON_SELF = "FallbackSelf"
REASON_LOOP = "FallbackLoop"
#: Chains longer than this are not followed (and are not a loop through this service as far as we know).
MAX_CHAIN = 32

#: The fallback of another LLMService of the namespace by name: None when it does not exist, else its
#: ``spec.endpoint.fallback`` (itself None when it has none).
Lookup = Callable[[str], "tuple[bool, fallback_api.Fallback | None]"]


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    usable: bool
    reason: str
    message: str


def judge(service: LLMService, *, lookup: Lookup) -> Verdict | None:
    """The Fallback condition of *service* (None: it has no fallback)."""
    spec = service.spec.endpoint.fallback
    if spec is None:
        return None
    name = service.metadata.name
    if spec.url is not None:
        host = parse.urlsplit(spec.url).netloc or spec.url
        return Verdict(
            True,
            REASON_EXTERNAL,
            f"requests it takes ({_when(spec)}) are sent to {host} as model {spec.target_model()}: their "
            "prompts leave the cluster",
        )
    target = spec.service or ""
    if target == name:
        return Verdict(False, REASON_SELF, f"fallback service {target} is this LLMService itself")
    exists, onward = lookup(target)
    if not exists:
        return Verdict(
            False, REASON_MISSING, f"fallback LLMService {target} does not exist in this namespace"
        )
    chain = [name, target]
    while onward is not None and onward.service is not None and len(chain) <= MAX_CHAIN:
        if onward.service in chain:
            loop = " -> ".join([*chain, onward.service])
            return Verdict(False, REASON_LOOP, f"fallbacks form a loop: {loop}")
        chain.append(onward.service)
        exists, onward = lookup(onward.service)
        if not exists:
            break
    return Verdict(
        True, REASON_SERVICE, f"requests it takes ({_when(spec)}) are answered by LLMService {target}"
    )


def _when(spec: fallback_api.Fallback) -> str:
    parts = {
        fallback_api.IMMEDIATELY: ["while this model is cold"],
        fallback_api.AFTER_HOLD: [f"after waiting {spec.hold_for} for this model"],
        fallback_api.NEVER: [],
    }[spec.while_cold]
    if spec.when_full:
        parts.append("when it has no room")
    return " or ".join(parts) or "never"


def lookup_in(services: Callable[[str], LLMService | None]) -> Lookup:
    """A :data:`Lookup` over *services* (the namespace's LLMServices by name, parsed)."""

    def lookup(name: str) -> tuple[bool, fallback_api.Fallback | None]:
        found = services(name)
        return (False, None) if found is None else (True, found.spec.endpoint.fallback)

    return lookup


def without_fallback(service: LLMService) -> LLMService:
    """*service* as rendered while its fallback is refused: the gateway gets none."""
    endpoint = service.spec.endpoint.model_copy(update={"fallback": None})
    return service.model_copy(update={"spec": service.spec.model_copy(update={"endpoint": endpoint})})


def condition(verdict: Verdict, *, generation: int) -> dict[str, object]:
    return {
        "type": CONDITION,
        "status": "True" if verdict.usable else "False",
        "reason": verdict.reason,
        "message": verdict.message,
        "observedGeneration": generation,
    }
