"""What the operator does without some RBAC (issue 19), without a cluster: which children it skips, how
it names the rule to add, and how a gateway renders when it may not have its own ServiceAccount."""

from __future__ import annotations

import dataclasses

from hearth.api import rbac
from hearth.api.scalermodes import ScalerMode
from hearth.install import manifests
from hearth.kube import resources
from hearth.operator.access import permissions
from hearth.render import gateway, plan
from hearth.render.config import OperatorConfig
from tests.render.test_plan import RUNTIMES, _base_spec, _service

Feature = rbac.Feature


def _missing(*features: Feature) -> permissions.Permissions:
    wanted = rbac.needs(leader_election_namespace=None, metrics_auth=False)
    return permissions.Permissions(
        missing=tuple((rule, (feature,)) for feature in features for rule in wanted[feature])
    )


def test_the_rule_to_add_is_written_as_in_a_cluster_role() -> None:
    rule = rbac.Rule("policy", "poddisruptionbudgets", ("create", "get"))
    assert rule.rbac() == '{apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: [create, get]}'
    assert str(rbac.Rule("", "pods", ("list",), "ops")) == "core/pods list in namespace ops"


def test_children_of_a_disabled_feature_are_not_managed_and_the_reason_names_the_rule() -> None:
    allowed = _missing(Feature.DISRUPTION_BUDGETS, Feature.GATEWAY_RBAC)
    assert not allowed.allows(resources.POD_DISRUPTION_BUDGET)
    assert not allowed.allows(resources.ROLE_BINDING)
    assert allowed.allows(resources.DEPLOYMENT)
    assert allowed.allows(resources.NETWORK_POLICY)
    assert allowed.required_missing == []
    assert 'resources: ["poddisruptionbudgets"]' in allowed.explain(resources.POD_DISRUPTION_BUDGET)


def test_core_and_leader_election_are_required_the_rest_degrade() -> None:
    assert _missing(Feature.CORE).required_missing
    assert not _missing(Feature.EVENTS, Feature.AUTOSCALER, Feature.NETWORK_POLICIES).required_missing
    assert set(rbac.EFFECTS) == set(Feature), "every feature documents its degradation"


def test_a_gateway_without_its_own_service_account_probes_health_and_leaves_waking_to_the_operator() -> None:
    service = _service(_base_spec("vllm-nvidia", "None"))
    config = OperatorConfig(scaler_mode=ScalerMode.BUILTIN, gateway_service_account=False)
    assert gateway.rbac(service, config) == []
    pod = gateway.deployment(service, config)["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    env = {entry["name"]: entry.get("value") for entry in pod["containers"][0]["env"]}
    assert env["HEARTH_READINESS"] == "probe"
    assert "HEARTH_BACKEND_DEPLOYMENT" not in env
    kinds = {step.manifest["kind"] for step in plan.build(service, RUNTIMES, config).steps}
    assert not kinds & {"ServiceAccount", "Role", "RoleBinding"}
    full = dataclasses.replace(config, gateway_service_account=True)
    assert (
        gateway.deployment(service, full)["spec"]["template"]["spec"]["serviceAccountName"] == "qwen-gateway"
    )


def test_hearth_install_grants_every_cluster_wide_rule_the_operator_checks() -> None:
    granted = {
        (group, resource, verb)
        for rule in manifests.cluster_role_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    wanted = rbac.needs(leader_election_namespace=None, metrics_auth=True)
    missing = [
        f"{rule} {verb}"
        for rules in wanted.values()
        for rule in rules
        for verb in rule.verbs
        if (rule.group, rule.resource, verb) not in granted
    ]
    assert missing == [], "hearth install must never start a degraded operator"
