"""The operator's RBAC: every rule it uses, by the feature it enables. This table is the one place a rule is
added; everything else is derived from it:

- the operator checks each rule at startup and carries on without the optional features
  (:mod:`hearth.operator.access.permissions`);
- ``hearth install`` grants exactly these rules (:mod:`hearth.install.manifests`): a ClusterRole, and a
  Role in the operator's namespace for the leader-election Lease;
- the Helm chart grants the same, from a block of ``templates/rbac.yaml`` that
  ``python -m hearth.install.generate`` writes (a test fails while it differs).

It sits below the roles because both the operator and the installer read it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any

ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ = ("get", "list", "watch")
#: What writing an object's status takes.
STATUS = ("get", "patch", "update")


class Feature(enum.StrEnum):
    """What a group of permissions enables."""

    CORE = "core"
    GATEWAY_RBAC = "gateway-rbac"
    DISRUPTION_BUDGETS = "disruption-budgets"
    NETWORK_POLICIES = "network-policies"
    AUTOSCALER = "autoscaler"
    TELEMETRY = "telemetry"
    EVENTS = "events"
    POD_EVENTS = "pod-events"
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
    Feature.POD_EVENTS: "a backend container that cannot be created (an image that cannot be pulled, a "
    "missing Secret) is noticed from its pod's status, which the kubelet updates 10-15 s after its Event, "
    "so held requests learn the failure that much later",
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
#: Features granted only in the operator's own namespace (a Role), not cluster-wide.
NAMESPACED = frozenset({Feature.LEADER_ELECTION})


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


def _rule(group: str, resource: str, verbs: Iterable[str]) -> Rule:
    return Rule(group, resource, tuple(verbs))


#: Every rule the operator uses, by feature. The gateway Role's rules are here too: Kubernetes lets the
#: operator grant only permissions it holds itself. A :data:`NAMESPACED` feature's rules apply in the
#: operator's namespace (see :func:`needs`).
TABLE: dict[Feature, tuple[Rule, ...]] = {
    Feature.CORE: (
        _rule("serving.hearth.dev", "llmservices", READ),
        _rule("serving.hearth.dev", "inferenceruntimes", READ),
        _rule("serving.hearth.dev", "llmservices/status", STATUS),
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
        _rule("apps", "deployments/scale", STATUS),
    ),
    Feature.DISRUPTION_BUDGETS: (_rule("policy", "poddisruptionbudgets", ALL_VERBS),),
    Feature.NETWORK_POLICIES: (_rule("networking.k8s.io", "networkpolicies", ALL_VERBS),),
    # The built-in autoscaler reads gateway pods (readiness and IP) to collect their demand.
    Feature.AUTOSCALER: (
        _rule("", "pods", READ),
        _rule("apps", "deployments/scale", STATUS),
    ),
    # The backend pods' phases are what wake telemetry and accounting are made of.
    Feature.TELEMETRY: (_rule("", "pods", READ),),
    Feature.EVENTS: (_rule("", "events", ("create", "patch")),),
    # The kubelet's Warning Events about backend pods name a container it cannot create at once.
    Feature.POD_EVENTS: (_rule("", "events", READ),),
    Feature.KEDA: (_rule("keda.sh", "scaledobjects", ALL_VERBS),),
    # AcceleratorPools (issue 16): read the budgets, write who holds and who waits.
    Feature.ACCELERATOR_POOLS: (
        _rule("serving.hearth.dev", "acceleratorpools", READ),
        _rule("serving.hearth.dev", "acceleratorpools/status", STATUS),
    ),
    # LLMGateways (issue 24): shared endpoints; their gateways' Roles read LLMServices and their own
    # LLMGateway, which the operator therefore holds too.
    Feature.LLM_GATEWAYS: (
        _rule("serving.hearth.dev", "llmgateways", READ),
        _rule("serving.hearth.dev", "llmgateways/status", STATUS),
    ),
    # --metrics-secure: ask the API server who a metrics caller is, and whether they may read /metrics.
    Feature.METRICS_AUTH: (
        _rule("authentication.k8s.io", "tokenreviews", ("create",)),
        _rule("authorization.k8s.io", "subjectaccessreviews", ("create",)),
    ),
    Feature.LEADER_ELECTION: (_rule("coordination.k8s.io", "leases", ("get", "create", "update")),),
}


#: What a gateway's Role grants, each rule limited by the renderer to the objects it names (``resourceNames``)
#: where a gateway needs only its own. Each is also held by the operator through :data:`TABLE`, since
#: Kubernetes lets the operator grant only what it holds (a test checks it).
#: Backend readiness: the EndpointSlices of the backend Services (a list and watch cannot be named).
GATEWAY_READINESS = _rule("discovery.k8s.io", "endpointslices", READ)
#: A dedicated gateway's own backend Deployment, by name.
GATEWAY_BACKEND = _rule("apps", "deployments", ("get",))
#: A dedicated gateway's own LLMService (by name: the wake's phase and ETA), or a shared gateway's routes.
GATEWAY_LLMSERVICES = _rule("serving.hearth.dev", "llmservices", READ)
#: A shared gateway's own LLMGateway, by name: its selector and each key set's models.
GATEWAY_LLMGATEWAY = _rule("serving.hearth.dev", "llmgateways", READ)
#: Builtin mode: wake its backends 0->1 through their scale subresource, by name.
GATEWAY_WAKE = _rule("apps", "deployments/scale", STATUS)
GATEWAY_RULES = (GATEWAY_READINESS, GATEWAY_BACKEND, GATEWAY_LLMSERVICES, GATEWAY_LLMGATEWAY, GATEWAY_WAKE)


def role_rule(rule: Rule, *, names: Iterable[str] = ()) -> dict[str, Any]:
    """*rule* as one PolicyRule of a Role, limited to the objects *names* when there are any."""
    limited = list(names)
    return {
        "apiGroups": [rule.group],
        "resources": [rule.resource],
        **({"resourceNames": limited} if limited else {}),
        "verbs": list(rule.verbs),
    }


def needs(*, leader_election_namespace: str | None, metrics_auth: bool) -> dict[Feature, tuple[Rule, ...]]:
    """The rules one operator process uses, by feature: metrics auth only with ``--metrics-secure``, and
    leader election only with ``--leader-elect`` (in *leader_election_namespace*)."""
    wanted: dict[Feature, tuple[Rule, ...]] = {
        feature: rules
        for feature, rules in TABLE.items()
        if feature not in (Feature.METRICS_AUTH, Feature.LEADER_ELECTION)
    }
    if metrics_auth:
        wanted[Feature.METRICS_AUTH] = TABLE[Feature.METRICS_AUTH]
    if leader_election_namespace is not None:
        wanted[Feature.LEADER_ELECTION] = tuple(
            dataclasses.replace(rule, namespace=leader_election_namespace)
            for rule in TABLE[Feature.LEADER_ELECTION]
        )
    return wanted


def granted(*, namespaced: bool) -> list[dict[str, Any]]:
    """What an installation grants the operator, as a (Cluster)Role's ``rules``: every rule of the table,
    cluster-wide or (*namespaced*) in the operator's own namespace."""
    return policy_rules(
        rule for feature, rules in TABLE.items() if (feature in NAMESPACED) is namespaced for rule in rules
    )


def policy_rules(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """*rules* as RBAC PolicyRules, compactly: a resource's verbs merged across the features that use it,
    then resources of one API group with the same verbs in one rule (in the order they first appear)."""
    verbs: dict[tuple[str, str], list[str]] = {}
    for rule in rules:
        merged = verbs.setdefault((rule.group, rule.resource), [])
        merged.extend(verb for verb in rule.verbs if verb not in merged)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), resource_verbs in verbs.items():
        grouped.setdefault((group, tuple(resource_verbs)), []).append(resource)
    return [
        {"apiGroups": [group], "resources": resources, "verbs": list(group_verbs)}
        for (group, group_verbs), resources in grouped.items()
    ]
