"""What the operator may do, checked once at startup (one SelfSubjectAccessReview per verb and resource,
cluster-wide), and what it does without each permission.

Someone swapping only the image into the reference's chart runs with the reference's ClusterRole, which
lacks what Hearth adds (gateway ServiceAccounts and Roles, PodDisruptionBudgets, NetworkPolicies, Events,
the built-in autoscaler's pods and scale). Each missing rule is logged with the RBAC rule to add; where it
is safe the operator carries on without the feature (see :data:`hearth.api.rbac.EFFECTS` and the README),
and only a missing *required* permission keeps it unready (``/readyz`` names the rules). The rules
themselves are the table in :mod:`hearth.api.rbac`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from hearth.api import rbac
from hearth.common import logs
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.resources import ResourceType

log = logging.getLogger(__name__)

SELF_SUBJECT_ACCESS_REVIEW = ResourceType(
    "authorization.k8s.io/v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False
)

#: Child resource types and the feature that lets the operator manage them.
_CHILD_FEATURES = {
    resources.SERVICE_ACCOUNT: rbac.Feature.GATEWAY_RBAC,
    resources.ROLE: rbac.Feature.GATEWAY_RBAC,
    resources.ROLE_BINDING: rbac.Feature.GATEWAY_RBAC,
    resources.POD_DISRUPTION_BUDGET: rbac.Feature.DISRUPTION_BUDGETS,
    resources.NETWORK_POLICY: rbac.Feature.NETWORK_POLICIES,
    resources.SCALED_OBJECT: rbac.Feature.KEDA,
}


@dataclasses.dataclass(frozen=True)
class Permissions:
    """The outcome of the startup check: rules denied, and the features they disable."""

    #: Missing rules, each with only its denied verbs, and the features needing it.
    missing: tuple[tuple[rbac.Rule, tuple[rbac.Feature, ...]], ...] = ()

    @classmethod
    def all_granted(cls) -> Permissions:
        return cls()

    @property
    def disabled(self) -> frozenset[rbac.Feature]:
        return frozenset(feature for _, features in self.missing for feature in features)

    def has(self, feature: rbac.Feature) -> bool:
        return feature not in self.disabled

    def allows(self, rt: ResourceType) -> bool:
        """Whether the operator may watch and write children of type *rt*."""
        return self.has(_CHILD_FEATURES.get(rt, rbac.Feature.CORE))

    def rules_for(self, feature: rbac.Feature) -> list[rbac.Rule]:
        return [rule for rule, features in self.missing if feature in features]

    @property
    def required_missing(self) -> list[rbac.Rule]:
        return [rule for rule, features in self.missing if rbac.REQUIRED.intersection(features)]

    def explain(self, rt: ResourceType) -> str:
        """Why a child of type *rt* was skipped, naming the rules to add."""
        feature = _CHILD_FEATURES.get(rt, rbac.Feature.CORE)
        rules = "; ".join(rule.rbac() for rule in self.rules_for(feature))
        return f"the operator may not manage {rt.plural}.{rt.api_version.split('/')[0]} (add: {rules})"


async def _allowed(client: KubeClient, rule: rbac.Rule, verb: str) -> bool:
    group, _, subresource = rule.resource.partition("/")
    attributes = {"group": rule.group, "resource": group, "verb": verb}
    if subresource:
        attributes["subresource"] = subresource
    if rule.namespace:
        attributes["namespace"] = rule.namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    answer = await client.review(SELF_SUBJECT_ACCESS_REVIEW, review)
    return bool(answer.get("status", {}).get("allowed"))


async def check(client: KubeClient, wanted: dict[rbac.Feature, tuple[rbac.Rule, ...]]) -> Permissions:
    """Ask the API server about every rule in *wanted* (in parallel); logs one line per missing rule."""
    rules: dict[rbac.Rule, list[rbac.Feature]] = {}
    for feature, feature_rules in wanted.items():
        for rule in feature_rules:
            rules.setdefault(rule, []).append(feature)
    checks = [(rule, verb) for rule in rules for verb in rule.verbs]
    try:
        answers = await asyncio.gather(*(_allowed(client, rule, verb) for rule, verb in checks))
    except (ApiError, ApiUnreachableError) as error:
        # Cannot ask (an old or unusual API server): assume everything and let requests fail loudly.
        log.warning("could not check the operator's permissions", extra=logs.fields(error=str(error)))
        return Permissions.all_granted()
    denied: dict[rbac.Rule, list[str]] = {}
    for (rule, verb), allowed in zip(checks, answers, strict=True):
        if not allowed:
            denied.setdefault(rule, []).append(verb)
    missing = []
    for rule, verbs in denied.items():
        features = tuple(rules[rule])
        narrowed = dataclasses.replace(rule, verbs=tuple(verbs))
        missing.append((narrowed, features))
        log.warning(
            "missing permission",
            extra=logs.fields(
                permission=str(narrowed),
                needed_for=",".join(features),
                effect=" / ".join(rbac.EFFECTS[feature] for feature in features),
                add_rule=narrowed.rbac(),
                scope="Role" if rule.namespace else "ClusterRole",
            ),
        )
    result = Permissions(missing=tuple(missing))
    if not missing:
        log.info("permissions checked: every rule granted", extra=logs.fields(rules=len(rules)))
    return result
