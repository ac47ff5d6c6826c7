"""What the operator may do, checked once at startup (one SelfSubjectAccessReview per verb and resource,
cluster-wide), and what it does without each permission.

Someone swapping only the image into the reference's chart runs with the reference's ClusterRole, which
lacks what Hearth adds (gateway ServiceAccounts and Roles, PodDisruptionBudgets, NetworkPolicies, Events,
the built-in autoscaler's pods and scale). Each missing rule is logged with the RBAC rule to add; where it
is safe the operator carries on without the feature (see :data:`EFFECTS` and the README), and only a
missing *required* permission keeps it unready (``/readyz`` names the rules).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Iterable

from hearth.common import logs
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.kube.resources import ResourceType

log = logging.getLogger(__name__)

ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ = ("get", "list", "watch")
SELF_SUBJECT_ACCESS_REVIEW = ResourceType(
    "authorization.k8s.io/v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False
)


class Feature(enum.StrEnum):
    """What a group of permissions enables."""

    CORE = "core"
    GATEWAY_RBAC = "gateway-rbac"
    DISRUPTION_BUDGETS = "disruption-budgets"
    NETWORK_POLICIES = "network-policies"
    AUTOSCALER = "autoscaler"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    KEDA = "keda"
    ACCELERATOR_POOLS = "accelerator-pools"
    LLM_GATEWAYS = "llm-gateways"
    METRICS_AUTH = "metrics-auth"
    LEADER_ELECTION = "leader-election"


#: What happens without each feature (logged with every missing rule, and in the README).
EFFECTS: dict[Feature, str] = {
    Feature.CORE: "required: LLMServices cannot be reconciled, so the operator stays unready",
    Feature.GATEWAY_RBAC: "gateways run with the namespace's default ServiceAccount and probe their "
    "backend's GET /health (as the reference's gateways do) instead of watching EndpointSlices; in builtin "
    "mode a cold request is woken by the operator's autoscaler on its next pass, not by the gateway at once",
    Feature.DISRUPTION_BUDGETS: "gateways with more than one replica get no PodDisruptionBudget "
    "(a node drain may evict them together); the LLMService says so in its Permissions condition",
    Feature.NETWORK_POLICIES: "--network-policies renders no NetworkPolicy (the backend stays reachable from "
    "every pod); the LLMService says so in its Permissions condition",
    Feature.AUTOSCALER: "the built-in autoscaler is off: in builtin mode nothing scales backends "
    "(their Scaling condition is False); KEDA modes are unaffected",
    Feature.TELEMETRY: "wake phases and accelerator accounting are not recorded (status.lastWake, "
    "status.accounting and the hearth_wake_* / hearth_accelerator_* series stay as they are)",
    Feature.EVENTS: "no Kubernetes Events are recorded; status conditions still carry every reason",
    Feature.KEDA: "ScaledObjects cannot be managed: with KEDA installed, reconcile fails (ApplyScaledObject)",
    Feature.ACCELERATOR_POOLS: "AcceleratorPools cannot be read: their members are never scaled up (their "
    "status.pool says Refused and names the rules); other LLMServices are unaffected",
    Feature.LLM_GATEWAYS: "LLMGateways cannot be read: none is served, and every LLMService keeps a gateway "
    "of its own",
    Feature.METRICS_AUTH: "--metrics-secure cannot check callers, so every /metrics request is refused",
    Feature.LEADER_ELECTION: "required with --leader-elect: the Lease cannot be taken, so no replica leads",
}

#: Features without which the operator must not report ready.
REQUIRED = frozenset({Feature.CORE, Feature.LEADER_ELECTION})


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """Verbs on one resource (``deployments/scale`` names a subresource); *namespace* None: cluster-wide."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    namespace: str | None = None

    def __str__(self) -> str:
        group = self.group or "core"
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{group}/{self.resource} {','.join(self.verbs)}{where}"

    def rbac(self) -> str:
        """The rule to add, as it is written in a ClusterRole (or a Role, for a namespace)."""
        verbs = ", ".join(self.verbs)
        return f'{{apiGroups: ["{self.group}"], resources: ["{self.resource}"], verbs: [{verbs}]}}'


def _rule(group: str, resource: str, verbs: Iterable[str], namespace: str | None = None) -> Rule:
    return Rule(group, resource, tuple(verbs), namespace)


def needs(*, leader_election_namespace: str | None, metrics_auth: bool) -> dict[Feature, tuple[Rule, ...]]:
    """Every rule the operator uses, by feature. The gateway Role's rules are there too: Kubernetes lets
    the operator grant only permissions it holds itself."""
    wanted = {
        Feature.CORE: (
            _rule("serving.hearth.dev", "llmservices", READ),
            _rule("serving.hearth.dev", "inferenceruntimes", READ),
            _rule("serving.hearth.dev", "llmservices/status", ("get", "patch", "update")),
            _rule("apps", "deployments", ALL_VERBS),
            _rule("", "services", ALL_VERBS),
            _rule("", "persistentvolumeclaims", ALL_VERBS),
            _rule("batch", "jobs", ALL_VERBS),
        ),
        Feature.GATEWAY_RBAC: (
            _rule("", "serviceaccounts", ALL_VERBS),
            _rule("rbac.authorization.k8s.io", "roles", ALL_VERBS),
            _rule("rbac.authorization.k8s.io", "rolebindings", ALL_VERBS),
            _rule("discovery.k8s.io", "endpointslices", READ),
            _rule("apps", "deployments/scale", ("get", "patch", "update")),
        ),
        Feature.DISRUPTION_BUDGETS: (_rule("policy", "poddisruptionbudgets", ALL_VERBS),),
        Feature.NETWORK_POLICIES: (_rule("networking.k8s.io", "networkpolicies", ALL_VERBS),),
        Feature.AUTOSCALER: (
            _rule("", "pods", READ),
            _rule("apps", "deployments/scale", ("get", "patch", "update")),
        ),
        # The backend pods' phases are what wake telemetry and accounting are made of.
        Feature.TELEMETRY: (_rule("", "pods", READ),),
        Feature.EVENTS: (_rule("", "events", ("create", "patch")),),
        Feature.KEDA: (_rule("keda.sh", "scaledobjects", ALL_VERBS),),
        Feature.ACCELERATOR_POOLS: (
            _rule("serving.hearth.dev", "acceleratorpools", READ),
            _rule("serving.hearth.dev", "acceleratorpools/status", ("get", "patch", "update")),
        ),
        Feature.LLM_GATEWAYS: (
            _rule("serving.hearth.dev", "llmgateways", READ),
            _rule("serving.hearth.dev", "llmgateways/status", ("get", "patch", "update")),
        ),
    }
    if metrics_auth:
        wanted[Feature.METRICS_AUTH] = (
            _rule("authentication.k8s.io", "tokenreviews", ("create",)),
            _rule("authorization.k8s.io", "subjectaccessreviews", ("create",)),
        )
    if leader_election_namespace is not None:
        wanted[Feature.LEADER_ELECTION] = (
            _rule("coordination.k8s.io", "leases", ("get", "create", "update"), leader_election_namespace),
        )
    return wanted


#: Child resource types and the feature that lets the operator manage them.
_CHILD_FEATURES = {
    resources.SERVICE_ACCOUNT: Feature.GATEWAY_RBAC,
    resources.ROLE: Feature.GATEWAY_RBAC,
    resources.ROLE_BINDING: Feature.GATEWAY_RBAC,
    resources.POD_DISRUPTION_BUDGET: Feature.DISRUPTION_BUDGETS,
    resources.NETWORK_POLICY: Feature.NETWORK_POLICIES,
    resources.SCALED_OBJECT: Feature.KEDA,
}


@dataclasses.dataclass(frozen=True)
class Permissions:
    """The outcome of the startup check: rules denied, and the features they disable."""

    #: Missing rules, each with only its denied verbs, and the features needing it.
    missing: tuple[tuple[Rule, tuple[Feature, ...]], ...] = ()

    @classmethod
    def all_granted(cls) -> Permissions:
        return cls()

    @property
    def disabled(self) -> frozenset[Feature]:
        return frozenset(feature for _, features in self.missing for feature in features)

    def has(self, feature: Feature) -> bool:
        return feature not in self.disabled

    def allows(self, rt: ResourceType) -> bool:
        """Whether the operator may watch and write children of type *rt*."""
        return self.has(_CHILD_FEATURES.get(rt, Feature.CORE))

    def rules_for(self, feature: Feature) -> list[Rule]:
        return [rule for rule, features in self.missing if feature in features]

    @property
    def required_missing(self) -> list[Rule]:
        return [rule for rule, features in self.missing if REQUIRED.intersection(features)]

    def explain(self, rt: ResourceType) -> str:
        """Why a child of type *rt* was skipped, naming the rules to add."""
        feature = _CHILD_FEATURES.get(rt, Feature.CORE)
        rules = "; ".join(rule.rbac() for rule in self.rules_for(feature))
        return f"the operator may not manage {rt.plural}.{rt.api_version.split('/')[0]} (add: {rules})"


async def _allowed(client: KubeClient, rule: Rule, verb: str) -> bool:
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


async def check(client: KubeClient, wanted: dict[Feature, tuple[Rule, ...]]) -> Permissions:
    """Ask the API server about every rule in *wanted* (in parallel); logs one line per missing rule."""
    rules: dict[Rule, list[Feature]] = {}
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
    denied: dict[Rule, list[str]] = {}
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
                effect=" / ".join(EFFECTS[feature] for feature in features),
                add_rule=narrowed.rbac(),
                scope="Role" if rule.namespace else "ClusterRole",
            ),
        )
    result = Permissions(missing=tuple(missing))
    if not missing:
        log.info("permissions checked: every rule granted", extra=logs.fields(rules=len(rules)))
    return result
