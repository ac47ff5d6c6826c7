"""The alerts reference, from the Prometheus rules file the chart ships: ``monitoring/hearth-alerts.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hearth.docs import markdown as md

RULES = "monitoring/hearth-alerts.yaml"


def page(root: Path) -> str:
    document: dict[str, Any] = yaml.safe_load((root / RULES).read_text(encoding="utf-8"))
    parts = [
        f"The Prometheus rules in `{RULES}` (the Helm chart's `monitoring.prometheusRule` wraps them in a "
        "PrometheusRule). Their unit tests: `promtool test rules monitoring/hearth-alerts.test.yaml`."
    ]
    for group in document["groups"]:
        parts.append(f"## Group `{group['name']}`")
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            annotations = rule.get("annotations", {})
            labels = rule.get("labels", {})
            facts = [f"severity `{labels.get('severity', 'none')}`"]
            if "for" in rule:
                facts.append(f"for `{rule['for']}`")
            parts.append(
                f"### {rule['alert']}\n\n"
                f"{md.text(annotations.get('summary', ''))} ({', '.join(facts)})\n\n"
                f"{md.text(annotations.get('description', ''))}\n\n"
                f"```promql\n{rule['expr'].strip()}\n```\n"
            )
    return md.page("Alerts", RULES, *parts)
