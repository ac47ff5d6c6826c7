"""The Helm chart renders exactly what `hearth install` applies (object by object, for equivalent settings),
lints clean with Helm 4 and Helm 3, and refuses bad values naming the key. (Its copied files are checked by
tests/install/test_generate.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

import hearth
from hearth.api.llmgateway import LLMGateway
from hearth.cmd import install
from hearth.common import bundle
from tests.chart import helm

HELMS = ["4", "3"]

# (hearth install flags, equivalent chart values, namespace)
PARITY_CASES = {
    "defaults": ([], [], "hearth-system"),
    "images and pull policy": (
        [
            "--image",
            "reg.example/team/hearth:1.2.3",
            "--gateway-image",
            "reg.example/team/gateway:1.2.3",
            "--image-pull-policy",
            "Always",
        ],
        [
            "image.registry=reg.example/team",
            "image.operator=hearth",
            "image.gateway=gateway",
            "image.tag=1.2.3",
            "image.pullPolicy=Always",
        ],
        "hearth-system",
    ),
    "HA builtin, other namespace": (
        ["--scaler-mode", "builtin", "--gateway-replicas", "3", "--replicas", "2", "-n", "ml-platform"],
        ["gateway.scalerMode=builtin", "gateway.replicas=3", "operator.replicas=2"],
        "ml-platform",
    ),
    "network policies and secure metrics": (
        ["--network-policies", "--metrics-port", "9443"],
        ["networkPolicies.enabled=true", "metrics.enabled=true", "metrics.port=9443"],
        "hearth-system",
    ),
    "external-push without runtimes": (
        ["--scaler-mode", "external-push", "--no-runtimes"],
        ["gateway.scalerMode=external-push", "runtimes.install=false"],
        "hearth-system",
    ),
    "metrics-api, e2e settings": (
        [
            "--scaler-mode",
            "metrics-api",
            "--image",
            "hearth.dev/hearth:0.1.0",
            "--replicas",
            "2",
            "--gateway-replicas",
            "2",
            "--network-policies",
            "--metrics-port",
            "8443",
        ],
        [
            "gateway.scalerMode=metrics-api",
            "image.registry=hearth.dev",
            "operator.replicas=2",
            "gateway.replicas=2",
            "networkPolicies.enabled=true",
            "metrics.enabled=true",
        ],
        "hearth-system",
    ),
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "helm-home"


@pytest.mark.parametrize("major", HELMS)
@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_chart_renders_what_hearth_install_applies(case: str, major: str, home: Path) -> None:
    flags, values, namespace = PARITY_CASES[case]
    installed = helm.by_identity(helm.hearth_install(*flags))
    rendered = helm.by_identity(
        [
            obj
            for obj in helm.template(helm.binary(major), home=home, values=values, namespace=namespace)
            if not helm.is_test_hook(obj)
        ]
    )
    # Helm installs into a namespace it is given (--create-namespace); it does not own it.
    assert [key for key in installed if key not in rendered] == [("Namespace", "", namespace)]
    del installed[("Namespace", "", namespace)]
    assert sorted(rendered) == sorted(installed)
    for key, obj in installed.items():
        assert rendered[key] == obj, f"{key} differs from hearth install {' '.join(flags)}"


def test_parity_comparison_sees_a_difference(home: Path) -> None:
    """The normalization must not hide real differences: another replica count is one."""
    installed = helm.by_identity(helm.hearth_install("--gateway-replicas", "2"))
    rendered = helm.by_identity(helm.template(helm.binary("4"), home=home))
    key = ("Deployment", "hearth-system", "hearth-operator")
    assert rendered[key] != installed[key]


def test_other_release_names_prefix_every_object(home: Path) -> None:
    objects = helm.template(helm.binary("4"), home=home, release="prod")
    names = {obj["metadata"]["name"] for obj in objects if obj["kind"] != "CustomResourceDefinition"}
    runtimes = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "InferenceRuntime"}
    assert {name for name in names - runtimes if not name.startswith("prod-hearth-")} == set()
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "prod-hearth-operator"
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "prod"


MONITORING_ON = [
    "metrics.enabled=true",
    "monitoring.serviceMonitors.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.grafanaDashboard.enabled=true",
]


@pytest.mark.parametrize("major", HELMS)
@pytest.mark.parametrize("values", [[], MONITORING_ON], ids=["defaults", "monitoring"])
def test_lint_is_clean(major: str, values: list[str], home: Path) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    result = helm.run(helm.binary(major), "lint", "--strict", str(helm.CHART), *sets, home=home)
    problems = [line for line in result.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))]
    assert problems == []
    assert "0 chart(s) failed" in result.stdout


def test_monitoring_objects_are_absent_by_default(home: Path) -> None:
    kinds = {obj["kind"] for obj in helm.template(helm.binary("4"), home=home)}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"}


def test_monitoring_objects_carry_the_tested_files(home: Path) -> None:
    root = helm.CHART.parents[1]
    objects = helm.template(
        helm.binary("4"),
        home=home,
        values=[*MONITORING_ON, "monitoring.prometheusRule.labels.release=kps"],
        namespace="ops",
    )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    (rule,) = by_kind["PrometheusRule"]
    alerts = yaml.safe_load((root / "monitoring" / "hearth-alerts.yaml").read_text())
    assert rule["spec"] == {"groups": alerts["groups"]}, "the very rules promtool tests"
    assert rule["metadata"]["labels"]["release"] == "kps"
    (dashboard,) = by_kind["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["hearth-overview.json"])
    assert shipped == json.loads((root / "dashboards" / "hearth-overview.json").read_text())
    monitors = {obj["metadata"]["name"]: obj for obj in by_kind["ServiceMonitor"]}
    assert all(obj["metadata"]["namespace"] == "ops" for obj in monitors.values())
    models = monitors["hearth-llmservices"]["spec"]
    assert models["namespaceSelector"] == {"any": True}
    source = yaml.safe_load((root / "monitoring" / "servicemonitor-llmservices.yaml").read_text())
    assert models["endpoints"] == source["spec"]["endpoints"]
    # The operator's monitor selects the chart's own metrics Service (its labels, its port).
    (service,) = [obj for obj in by_kind["Service"] if obj["metadata"]["name"].endswith("-metrics")]
    operator = monitors["hearth-operator"]["spec"]
    selector = operator["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert {port["name"] for port in service["spec"]["ports"]} >= {e["port"] for e in operator["endpoints"]}


def test_the_operator_monitor_needs_the_metrics_service(home: Path) -> None:
    objects = helm.template(helm.binary("4"), home=home, values=["monitoring.serviceMonitors.enabled=true"])
    assert [obj["metadata"]["name"] for obj in objects if obj["kind"] == "ServiceMonitor"] == [
        "hearth-llmservices"
    ]


@pytest.mark.parametrize("major", HELMS)
@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("gateway.replica=2", "additional properties 'replica' not allowed"),
        ("operater.replicas=2", "additional properties 'operater' not allowed"),
        ("gateway.replicas=two", "/gateway/replicas"),
        ("metrics.enabled=yes", "/metrics/enabled"),
        ("gateway.scalerMode=push", "/gateway/scalerMode"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("monitoring.serviceMonitor.enabled=true", "additional properties 'serviceMonitor' not allowed"),
        ("monitoring.prometheusRule.enabled=on", "/monitoring/prometheusRule/enabled"),
    ],
)
def test_bad_values_are_refused_naming_the_key(major: str, value: str, named: str, home: Path) -> None:
    for command in (["lint", str(helm.CHART)], ["template", "hearth", str(helm.CHART)]):
        result = helm.run(helm.binary(major), *command, "--set", value, home=home, check=False)
        assert result.returncode != 0
        assert named in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["operator.replicas=2", "operator.leaderElect=false"], "requires operator.leaderElect=true"),
    ],
)
def test_guards_fail_the_render(values: list[str], message: str, home: Path) -> None:
    args = ["template", "hearth", str(helm.CHART)] + [f"--set={value}" for value in values]
    result = helm.run(helm.binary("4"), *args, home=home, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_template_guard_holds_without_the_schema(home: Path) -> None:
    args = [
        "template",
        "hearth",
        str(helm.CHART),
        "--skip-schema-validation",
        "--set=gateway.scalerMode=push",
    ]
    result = helm.run(helm.binary("4"), *args, home=home, check=False)
    assert result.returncode != 0
    assert "gateway.scalerMode must be one of auto, metrics-api, external-push, builtin" in result.stderr


def test_a_reference_values_file_still_renders(tmp_path: Path, home: Path) -> None:
    """Every key of the reference chart's values.yaml (SPEC §7.1) is accepted and means the same."""
    reference = {
        "image": {
            "registry": "reg.example",
            "operator": "hearth",
            "gateway": "hearth-gateway",
            "tag": "0.3.0",
            "pullPolicy": "IfNotPresent",
        },
        "operator": {
            "replicas": 1,
            "leaderElect": False,
            "resources": {
                "limits": {"cpu": "500m", "memory": "256Mi"},
                "requests": {"cpu": "10m", "memory": "128Mi"},
            },
        },
        "gateway": {"replicas": 1, "scalerMode": "metrics-api"},
        "serviceAccount": {"create": True, "name": ""},
        "nameOverride": "",
    }
    values = tmp_path / "reference.yaml"
    values.write_text(yaml.safe_dump(reference))
    result = helm.run(helm.binary("4"), "template", "hearth", str(helm.CHART), "-f", str(values), home=home)
    objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg.example/hearth:0.3.0"
    assert "--gateway-image=reg.example/hearth-gateway:0.3.0" in container["args"]
    assert "--scaler-mode=metrics-api" in container["args"]
    assert "--no-leader-elect" in container["args"]
    assert container["resources"] == reference["operator"]["resources"]
    assert not [
        obj for obj in objects if obj["kind"] in ("Role", "RoleBinding") and not helm.is_test_hook(obj)
    ]


def test_crds_keep_policy_and_switches(home: Path) -> None:
    helm4 = helm.binary("4")
    crds = [obj for obj in helm.template(helm4, home=home) if obj["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 4  # LLMService, InferenceRuntime, AcceleratorPool, LLMGateway
    assert all(crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"} for crd in crds)
    loose = [
        obj
        for obj in helm.template(helm4, home=home, values=["crds.keep=false"])
        if obj["kind"] == "CustomResourceDefinition"
    ]
    assert all("annotations" not in crd["metadata"] for crd in loose)
    kinds = {obj["kind"] for obj in helm.template(helm4, home=home, values=["crds.install=false"])}
    assert "CustomResourceDefinition" not in kinds


def test_runtimes_are_a_post_install_hook_until_the_api_is_served(home: Path) -> None:
    helm4 = helm.binary("4")
    bundled = len(bundle.names("runtimes"))
    first = [obj for obj in helm.template(helm4, home=home) if obj["kind"] == "InferenceRuntime"]
    assert len(first) == bundled
    for runtime in first:
        assert runtime["metadata"]["annotations"] == {
            "helm.sh/hook": "post-install",
            "meta.helm.sh/release-name": "hearth",
            "meta.helm.sh/release-namespace": "hearth-system",
        }
    args = [
        "template",
        "hearth",
        str(helm.CHART),
        "-n",
        "hearth-system",
        "--api-versions",
        "serving.hearth.dev/v1alpha1/InferenceRuntime",
    ]
    served = [
        obj
        for obj in yaml.safe_load_all(helm.run(helm4, *args, home=home).stdout)
        if obj and obj["kind"] == "InferenceRuntime"
    ]
    assert len(served) == bundled
    assert all("annotations" not in runtime["metadata"] for runtime in served)


def test_llm_gateways_are_rendered_from_values(home: Path) -> None:
    helm4 = helm.binary("4")
    assert not [obj for obj in helm.template(helm4, home=home) if obj["kind"] == "LLMGateway"]
    values = [
        "llmGateways[0].name=models",
        "llmGateways[0].namespace=ml",
        "llmGateways[0].selector.matchLabels.shared=yes",
        "llmGateways[0].replicas=2",
        "llmGateways[0].auth.keys[0].secretName=team-keys",
        "llmGateways[0].auth.keys[1].secretName=chat-keys",
        "llmGateways[0].auth.keys[1].models[0]=qwen3-8b",
        "llmGateways[1].name=search",
        "llmGateways[1].selector.matchLabels.team=search",
    ]
    rendered = [obj for obj in helm.template(helm4, home=home, values=values) if obj["kind"] == "LLMGateway"]
    models, search = (LLMGateway.model_validate(obj) for obj in rendered)
    assert (models.metadata.name, models.metadata.namespace) == ("models", "ml")
    assert models.spec.to_wire() == {
        "selector": {"matchLabels": {"shared": "yes"}},
        "replicas": 2,
        "auth": {"keys": [{"secretName": "team-keys"}, {"secretName": "chat-keys", "models": ["qwen3-8b"]}]},
    }
    assert search.metadata.namespace == "hearth-system", "the release's namespace by default"
    assert search.spec.to_wire() == {"selector": {"matchLabels": {"team": "search"}}}
    # Not served yet (a first install brings the CRD): a post-install hook, adopted by the next upgrade.
    assert rendered[0]["metadata"]["annotations"]["helm.sh/hook"] == "post-install"


def test_the_helm_test_runs_hearth_selftest_with_the_hearth_image(home: Path) -> None:
    hooks = [
        obj
        for obj in helm.template(helm.binary("4"), home=home, values=["image.tag=9.9"])
        if helm.is_test_hook(obj)
    ]
    pod = next(obj for obj in hooks if obj["kind"] == "Pod")
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/hearth-project/hearth:9.9"
    assert container["args"][0] == "selftest"
    assert {obj["kind"] for obj in hooks} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Pod",
    }


def test_chart_version_follows_hearth() -> None:
    chart = yaml.safe_load((helm.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == chart["appVersion"] == hearth.__version__


def _choices(command: click.Command, name: str) -> list[str]:
    option = next(param for param in command.params if param.name == name)
    assert isinstance(option.type, click.Choice)
    return [str(choice) for choice in option.type.choices]


def test_chart_offers_the_choices_of_hearth_install() -> None:
    schema: dict[str, Any] = json.loads((helm.CHART / "values.schema.json").read_text())
    properties = schema["properties"]
    assert properties["gateway"]["properties"]["scalerMode"]["enum"] == _choices(
        install.install_command, "scaler_mode"
    )
    assert properties["image"]["properties"]["pullPolicy"]["enum"] == _choices(
        install.install_command, "image_pull_policy"
    )
    helpers = (helm.CHART / "templates" / "_helpers.tpl").read_text()
    listed = " ".join(f'"{mode}"' for mode in _choices(install.install_command, "scaler_mode"))
    assert f"$modes := list {listed}" in helpers


def test_external_push_renders_with_several_gateway_replicas(home: Path) -> None:
    """Its replicas sum their peers' demand for KEDA (issue 27): the chart no longer refuses them."""
    args = ["template", "hearth", str(helm.CHART), "--set=gateway.scalerMode=external-push"]
    result = helm.run(helm.binary("4"), *args, "--set=gateway.replicas=2", home=home, check=False)
    assert result.returncode == 0, result.stderr
    assert "--gateway-replicas=2" in result.stdout
