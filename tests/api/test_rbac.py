"""The operator's RBAC table (hearth.api.rbac): what one process checks, and what an install grants."""

from __future__ import annotations

from typing import Any

from hearth.api import rbac
from hearth.api.rbac import Feature, Rule


def test_a_process_checks_metrics_auth_and_leader_election_only_when_it_uses_them() -> None:
    plain = rbac.needs(leader_election_namespace=None, metrics_auth=False)
    assert set(plain) == set(Feature) - {Feature.METRICS_AUTH, Feature.LEADER_ELECTION}
    full = rbac.needs(leader_election_namespace="hearth-system", metrics_auth=True)
    assert set(full) == set(Feature)
    assert {rule.namespace for rule in full[Feature.LEADER_ELECTION]} == {"hearth-system"}
    assert all(
        rule.namespace is None for feature in full if feature not in rbac.NAMESPACED for rule in full[feature]
    )


def test_an_install_grants_every_rule_of_the_table_once_in_the_right_role() -> None:
    def pairs(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (group, resource, verb)
            for rule in rules
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    cluster, namespaced = rbac.granted(namespaced=False), rbac.granted(namespaced=True)
    for feature, rules in rbac.TABLE.items():
        granted = pairs(namespaced if feature in rbac.NAMESPACED else cluster)
        for rule in rules:
            assert {(rule.group, rule.resource, verb) for verb in rule.verbs} <= granted, f"{feature}: {rule}"
    assert namespaced == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert not any(resource == "leases" for rule in cluster for resource in rule["resources"])


def test_policy_rules_merge_verbs_and_group_resources_in_first_seen_order() -> None:
    rules = [
        Rule("", "pods", ("get", "list")),
        Rule("apps", "deployments", ("get",)),
        Rule("", "pods", ("list", "watch")),  # the same resource from another feature
        Rule("", "services", ("get", "list", "watch")),
        Rule("apps", "deployments/scale", ("get",)),
    ]
    assert rbac.policy_rules(rules) == [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get"]},
    ]


def test_the_operator_holds_every_rule_it_grants_a_gateway() -> None:
    held = {
        (rule.group, rule.resource, verb)
        for feature, rules in rbac.TABLE.items()
        if feature not in rbac.NAMESPACED
        for rule in rules
        for verb in rule.verbs
    }
    for rule in rbac.GATEWAY_RULES:
        assert {(rule.group, rule.resource, verb) for verb in rule.verbs} <= held, str(rule)


def test_a_gateway_role_rule_names_its_objects_only_when_given() -> None:
    assert rbac.role_rule(rbac.GATEWAY_WAKE, names=["qwen-backend"]) == {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "resourceNames": ["qwen-backend"],
        "verbs": ["get", "patch", "update"],
    }
    assert "resourceNames" not in rbac.role_rule(rbac.GATEWAY_READINESS)
