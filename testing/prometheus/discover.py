"""Service discovery for the test bed's Prometheus: Debian's prometheus is built without kubernetes_sd,
so this loop reads the cluster's own Services and EndpointSlices (kubectl, admin kubeconfig) every few
seconds and writes Prometheus file_sd target files, selecting and labelling exactly as
monitoring/servicemonitor-*.yaml tell a prometheus-operator to:

- llmservices.json: Services labelled app.kubernetes.io/managed-by=hearth with a
  serving.hearth.dev/llmservice label, port ``http``; labels namespace, llmservice, pod, job (the Service).
- operator.json: Service hearth-operator-metrics in hearth-system, port ``https``; labels pod, job.

Standard library only. Runs until killed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
LLMSERVICE = "serving.hearth.dev/llmservice"
SERVICE_NAME = "kubernetes.io/service-name"


def targets(
    services: list[dict[str, Any]], slices: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_key = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}
    models: list[dict[str, Any]] = []
    operators: list[dict[str, Any]] = []
    for endpoint_slice in slices:
        metadata = endpoint_slice["metadata"]
        namespace = metadata["namespace"]
        name = (metadata.get("labels") or {}).get(SERVICE_NAME, "")
        service = by_key.get((namespace, name))
        if service is None:
            continue
        labels = service["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY) == "hearth" and LLMSERVICE in labels:
            port_name, extra, into = (
                "http",
                {"namespace": namespace, "llmservice": labels[LLMSERVICE]},
                models,
            )
        elif namespace == "hearth-system" and name == "hearth-operator-metrics":
            port_name, extra, into = "https", {}, operators
        else:
            continue
        port = next(
            (p.get("port") for p in endpoint_slice.get("ports") or [] if p.get("name") == port_name), None
        )
        if port is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            pod = (endpoint.get("targetRef") or {}).get("name", "")
            for address in endpoint.get("addresses") or []:
                into.append({"targets": [f"{address}:{port}"], "labels": {**extra, "pod": pod, "job": name}})
    return models, operators


def write(path: Path, groups: list[dict[str, Any]]) -> None:
    text = json.dumps(sorted(groups, key=lambda g: g["targets"][0]), indent=1)
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)  # Prometheus watches the file: it must never see half of it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", nargs="+", required=True, help="kubectl command (with --kubeconfig)")
    parser.add_argument("--out", type=Path, required=True, help="directory of the target files")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("llmservices.json", "operator.json"):
        if not (args.out / name).exists():
            write(args.out / name, [])
    while True:
        result = subprocess.run(
            [*args.kubectl, "get", "services,endpointslices", "-A", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            items = json.loads(result.stdout)["items"]
            services = [item for item in items if item["kind"] == "Service"]
            slices = [item for item in items if item["kind"] == "EndpointSlice"]
            models, operators = targets(services, slices)
            write(args.out / "llmservices.json", models)
            write(args.out / "operator.json", operators)
        else:
            print(f"discover: kubectl failed: {result.stderr.strip()[:300]}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
