"""The shipped monitoring: alert rules (promtool check + unit tests), the Grafana dashboard (structure, and
every panel query parsed by promtool), and the ServiceMonitors (SPEC §8's discovery labels)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hearth.operator.telemetry import wiring

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "hearth-alerts.yaml"
DASHBOARD = ROOT / "dashboards" / "hearth-overview.json"
#: What Grafana substitutes at query time, with values a test Prometheus accepts.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$model": ".*",
    # The engine-series variables, as Grafana's regex format writes two selected values.
    "${waiting_metric:regex}": "(vllm:num_requests_waiting|llamacpp:requests_deferred)",
    "${running_metric:regex}": "(vllm:num_requests_running|llamacpp:requests_processing)",
    "${kv_metric:regex}": "(vllm:kv_cache_usage_perc|sglang:token_usage)",
    "${ttft_metric:regex}": "(vllm:time_to_first_token_seconds|sglang:time_to_first_token_seconds)",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run scripts/system-deps.sh (Debian package prometheus)")
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False)


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def substituted(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    return expr


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_alerts_fire_on_their_situation_and_not_on_near_misses() -> None:
    result = run_promtool("test", "rules", "hearth-alerts.test.yaml", cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_tells_the_operator_what_to_do() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"]]
    assert len(alerts) == 10
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert len(alert["annotations"]["description"]) > 120, f"{alert['alert']}: say what to do"


def test_dashboard_has_the_reference_panels_variables_and_hearths_own(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "hearth-overview"
    assert dashboard["schemaVersion"] == 39
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"namespace", "model"} <= set(variables)
    titles = {panel["title"] for panel in dashboard["panels"]}
    reference = {
        "Gateway pending (queue depth)",
        "Request rate by status code",
        "Rejections by reason (429 / 503)",
        "Cold-start wait (p95, seconds)",
        "Engine requests (waiting / running)",
        "Engine KV-cache usage (%)",
        "Engine time-to-first-token (p95, seconds)",
    }
    assert reference <= titles
    queries = " ".join(expr for _, expr in dashboard_queries())
    for series in (
        "hearth_wake_phase_seconds",
        "hearth_wake_recent_p90_seconds",
        "hearth_accelerator_seconds_total",
        "hearth_accelerator_seconds_saved_total",
        "hearth_backend_drain_seconds_bucket",
        "hearth_backend_drain_seconds_saved_total",
        "hearth_llmservice_ready_replicas",
        "hearth_gateway_demand",
        "hearth_operator_leader",
        "hearth_operator_queue_depth",
        "hearth_operator_api_writes_total",
    ):
        assert series in queries, f"no panel shows {series}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_engine_panels_select_the_series_each_runtime_declares() -> None:
    """No engine's names are written in the dashboard: its variables list what the operator exports per
    LLMService (hearth_llmservice_engine_metric, by role), so every family's series are shown."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert "vllm:" not in DASHBOARD.read_text()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    for name, role in (
        ("waiting_metric", "waiting"),
        ("running_metric", "running"),
        ("kv_metric", "kv_usage"),
        ("ttft_metric", "ttft"),
    ):
        assert (
            f'{wiring.ENGINE_METRIC_INFO}{{namespace=~"$namespace",llmservice=~"$model",role="{role}"}}'
            in (variables[name]["definition"])
        )
        assert any(f"${{{name}:regex}}" in expr for _, expr in dashboard_queries()), name


def test_every_model_panel_follows_the_namespace_and_model_variables() -> None:
    for title, expr in dashboard_queries():
        if "hearth_operator" in expr or expr.startswith(('sum(up{job="hearth-operator', "sum by (job) (up")):
            continue  # the operator's own series belong to no model
        assert 'namespace=~"$namespace"' in expr, title
        assert 'llmservice=~"$model"' in expr, title


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # promtool parses expressions offline only inside rules: one recording rule per panel query.
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substituted(expr)}
        for index, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"\$\w", path.read_text()), "a Grafana variable left unsubstituted"


def _monitors() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted((ROOT / "monitoring").glob("*monitor*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def test_service_monitors_follow_the_discovery_labels_of_spec_8() -> None:
    monitors = {doc["metadata"]["name"]: doc for doc in _monitors()}
    services = monitors["hearth-llmservices"]
    assert services["kind"] == "ServiceMonitor"
    selector = services["spec"]["selector"]
    assert selector["matchLabels"] == {"app.kubernetes.io/managed-by": "hearth"}
    assert selector["matchExpressions"] == [{"key": "serving.hearth.dev/llmservice", "operator": "Exists"}]
    (endpoint,) = services["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert {
        "sourceLabels": ["__meta_kubernetes_service_label_serving_hearth_dev_llmservice"],
        "targetLabel": "llmservice",
    } in endpoint["relabelings"]
    operator = monitors["hearth-operator"]
    (endpoint,) = operator["spec"]["endpoints"]
    assert endpoint["port"] == "https"
    assert endpoint["scheme"] == "https"
    assert endpoint["honorLabels"] is True, "the operator's namespace/llmservice labels are the models'"


def _discover() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("discover", ROOT / "testing" / "prometheus" / "discover.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _service(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"namespace": namespace, "name": name, "labels": labels}}


def _slice(
    namespace: str, service: str, port: tuple[str, int], *addresses: tuple[str, str]
) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {"namespace": namespace, "labels": {"kubernetes.io/service-name": service}},
        "ports": [{"name": port[0], "port": port[1]}],
        "endpoints": [{"addresses": [ip], "targetRef": {"name": pod}} for ip, pod in addresses],
    }


def test_test_bed_discovery_selects_like_the_service_monitors() -> None:
    model = {"app.kubernetes.io/managed-by": "hearth", "serving.hearth.dev/llmservice": "qwen"}
    services = [
        _service("ml", "qwen", model),
        _service("ml", "qwen-backend", model),
        _service("ml", "other", {"app.kubernetes.io/managed-by": "hearth"}),
        _service("hearth-system", "hearth-operator-metrics", {"app.kubernetes.io/name": "hearth"}),
    ]
    slices = [
        _slice(
            "ml", "qwen", ("http", 8080), ("10.88.0.5", "qwen-gateway-a"), ("10.88.0.6", "qwen-gateway-b")
        ),
        _slice("ml", "qwen-backend", ("http", 8000), ("10.88.0.7", "qwen-x")),
        _slice("ml", "other", ("http", 80), ("10.88.0.8", "other-x")),
        _slice("hearth-system", "hearth-operator-metrics", ("https", 8443), ("10.88.0.9", "op-a")),
    ]
    models, operators = _discover().targets(services, slices)
    assert {(g["targets"][0], g["labels"]["job"], g["labels"]["pod"]) for g in models} == {
        ("10.88.0.5:8080", "qwen", "qwen-gateway-a"),
        ("10.88.0.6:8080", "qwen", "qwen-gateway-b"),
        ("10.88.0.7:8000", "qwen-backend", "qwen-x"),
    }
    assert all(g["labels"]["namespace"] == "ml" and g["labels"]["llmservice"] == "qwen" for g in models)
    assert operators == [
        {"targets": ["10.88.0.9:8443"], "labels": {"pod": "op-a", "job": "hearth-operator-metrics"}}
    ]


def _selects(monitor: dict[str, Any], service: dict[str, Any]) -> bool:
    """Whether a ServiceMonitor's selector picks *service* and names one of its ports (prometheus-operator's
    matching: every matchLabels pair present, every Exists key present)."""
    selector = monitor["spec"]["selector"]
    labels = service["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        assert expression["operator"] == "Exists", "only Exists is modelled here"
        if expression["key"] not in labels:
            return False
    ports = {port.get("name") for port in service["spec"]["ports"]}
    return all(endpoint["port"] in ports for endpoint in monitor["spec"]["endpoints"])


def test_the_service_monitors_select_the_services_hearth_creates() -> None:
    from hearth.install import manifests
    from hearth.render import plan
    from hearth.render.config import OperatorConfig
    from tests.render.test_plan import RUNTIMES, _base_spec, _service

    monitors = {doc["metadata"]["name"]: doc for doc in _monitors()}
    installed = manifests.objects(manifests.InstallConfig(metrics_port=8443))
    services = [doc for doc in installed if doc["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services if _selects(monitors["hearth-operator"], s)] == [
        "hearth-operator-metrics"
    ]
    rendered = plan.build(_service(_base_spec("vllm-stub", "None")), RUNTIMES, OperatorConfig())
    model_services = [step.manifest for step in rendered.steps if step.manifest.get("kind") == "Service"]
    picked = {s["metadata"]["name"] for s in model_services if _selects(monitors["hearth-llmservices"], s)}
    assert picked == {"qwen", "qwen-backend"}, "the gateway's and the backend's Services"
