"""Operator benchmark (run by hand: `.venv/bin/python -m bench.operator`; not part of the tests).

Creates N LLMServices on a throwaway etcd + kube-apiserver and reports, in one run:
- apply -> every child exists, for one new LLMService on an idle operator (the object created by one POST,
  its children polled on the API server, as `kubectl wait` on them at once would find them), then for all N;
- baseline: how long the API server itself takes to accept the N objects (`kubectl apply`);
- time until every service is reconciled (phase set), and its ratio to the baseline and to the budget;
- API writes per service and per reconcile, and writes during an idle period (the budget is zero);
- the operator's resident memory.
No controller-manager runs, so Deployments report no replicas and services settle at ScaledToZero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from hearth.common import bundle
from hearth.kube import resources
from hearth.operator.reconcile import controller
from tests.cluster import controlplane

BUDGET_SECONDS = 30.0
RUNTIME = """
apiVersion: serving.hearth.dev/v1alpha1
kind: InferenceRuntime
metadata: {name: bench-stub}
spec:
  vendor: generic
  container: {image: hearth.dev/vllm-stub:e2e, args: ["{{ .Model.Path }}"]}
  accelerator: {resourceName: hearth.dev/fake-accelerator}
"""


def _service(index: int) -> str:
    return f"""apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {{name: model-{index:03d}, namespace: bench}}
spec:
  model: {{source: {{uri: hf://org/model-{index:03d}}}}}
  runtime: {{name: bench-stub}}
"""


class Api:
    """Plain HTTPS to the throwaway API server (no kubectl start-up time in what is measured)."""

    def __init__(self, plane: controlplane.ControlPlane) -> None:
        config = yaml.safe_load(plane.kubeconfig.read_text())
        self.server = config["clusters"][0]["cluster"]["server"]
        self.token = config["users"][0]["user"]["token"]
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        request = urllib.request.Request(
            self.server + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
            result: dict[str, object] = json.loads(response.read())
            return result

    def children(self, namespace: str) -> set[tuple[str, str, str]]:
        """(kind, name, owner) of every child Hearth manages in *namespace*."""
        found = set()
        for rt in controller.CHILD_TYPES:
            listing = self.call("GET", rt.path(namespace=namespace) + "?labelSelector=" + controller.MANAGED)
            for item in listing.get("items", []):  # type: ignore[union-attr]
                metadata = item["metadata"]
                owners = [ref["name"] for ref in metadata.get("ownerReferences", []) if ref.get("controller")]
                found.add((rt.kind, metadata["name"], owners[0] if owners else ""))
        return found


def _watch_children(api: Api, namespace: str, seen: dict[tuple[str, str], float]) -> None:
    """Note when each child in *namespace* is first added, from one watch per child type (threads): a
    poll would only see it at the next round of nine lists."""

    def watch(rt: resources.ResourceType) -> None:
        path = rt.path(namespace=namespace) + "?watch=true&labelSelector=" + controller.MANAGED
        request = urllib.request.Request(api.server + path, headers={"Authorization": f"Bearer {api.token}"})
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(request, context=api.tls, timeout=30) as stream,
        ):
            for line in stream:
                event = json.loads(line)
                if event.get("type") == "ADDED":
                    seen.setdefault((rt.kind, event["object"]["metadata"]["name"]), time.monotonic())

    for rt in controller.CHILD_TYPES:
        threading.Thread(target=watch, args=(rt,), daemon=True).start()


def _children_exist(api: Api, *, namespace: str, owners: set[str], settle_s: float = 3.0) -> float:
    """Poll until the children of *owners* stop changing for *settle_s*: when the last of them was first
    seen, in monotonic time."""
    first_seen: dict[tuple[str, str, str], float] = {}
    last_change = time.monotonic()
    while time.monotonic() - last_change < settle_s:
        now = time.monotonic()
        for child in api.children(namespace):
            if child[2] in owners and child not in first_seen:
                first_seen[child] = now
                last_change = now
    return max(first_seen.values()) if first_seen else float("nan")


def _one_service(plane: controlplane.ControlPlane, api: Api) -> tuple[float, float]:
    """One new LLMService on an idle operator: seconds from its POST's answer until every child exists,
    and the POST's own time."""
    plane.kubectl("create", "namespace", "bench-one")
    one = yaml.safe_load(_service(0).replace("namespace: bench", "namespace: bench-one"))
    seen: dict[tuple[str, str], float] = {}
    _watch_children(api, "bench-one", seen)
    time.sleep(1)  # the watches are established
    created = time.monotonic()
    api.call("POST", resources.LLMSERVICE.path(namespace="bench-one"), one)
    posted = time.monotonic()
    settled = _children_exist(api, namespace="bench-one", owners={"model-000"})
    if not seen or len(seen) < len(api.children("bench-one")):
        return settled - posted, posted - created  # a watch failed: the poll's figure
    return max(seen.values()) - posted, posted - created


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    values = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _phases(plane: controlplane.ControlPlane) -> list[str]:
    listing = json.loads(plane.kubectl("get", "llmservices", "-n", "bench", "-o", "json", timeout=120).stdout)
    return [item.get("status", {}).get("phase", "") for item in listing["items"]]


def _wait_ready(port: int) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)


def _wait_quiet(port: int) -> None:
    """Let the echo reconciles (our own child and status writes come back as watch events) finish."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        first = _metrics(port)["hearth_operator_api_writes_total"]
        time.sleep(2)
        if _metrics(port)["hearth_operator_api_writes_total"] == first:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    options = parser.parse_args()
    count = options.services
    with controlplane.running() as plane:
        crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
        plane.apply_crds(crds, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
        plane.kubectl("apply", "-f", "-", stdin=RUNTIME)
        plane.kubectl("create", "namespace", "bench")
        port = controlplane.free_port()
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hearth",
                "operator",
                f"--kubeconfig={plane.kubeconfig}",
                f"--health-probe-bind-address=127.0.0.1:{port}",
                f"--metrics-bind-address=127.0.0.1:{port}",
                "--no-metrics-secure",
                "--log-level=warning",
            ],
            stderr=(plane.root / "operator.log").open("wb"),
        )
        try:
            _wait_ready(port)
            api = Api(plane)
            one_children, post_s = _one_service(plane, api)
            _wait_quiet(port)
            idle_rss = _rss_mib(operator.pid)
            writes_before = _metrics(port)["hearth_operator_api_writes_total"]
            manifests = "---\n".join(_service(i) for i in range(count))
            started = time.monotonic()
            plane.kubectl("apply", "-f", "-", stdin=manifests, timeout=300)
            baseline = time.monotonic() - started
            all_children = (
                _children_exist(api, namespace="bench", owners={f"model-{i:03d}" for i in range(count)})
                - started
            )
            while True:
                phases = _phases(plane)
                if len(phases) == count and all(phase in ("Ready", "ScaledToZero") for phase in phases):
                    break
                time.sleep(0.5)
            converged = time.monotonic() - started
            settle = time.monotonic()
            # Let the echo reconciles (our own child and status writes come back as watch events) finish.
            while True:
                first = _metrics(port)["hearth_operator_api_writes_total"]
                time.sleep(2)
                if (
                    _metrics(port)["hearth_operator_api_writes_total"] == first
                    or time.monotonic() - settle > 60
                ):
                    break
            metrics = _metrics(port)
            writes = metrics["hearth_operator_api_writes_total"] - writes_before
            reconciles = metrics.get('hearth_operator_reconcile_total{result="success"}', 0) + metrics.get(
                'hearth_operator_reconcile_total{result="error"}', 0
            )
            busy_rss = _rss_mib(operator.pid)
            idle_start = metrics["hearth_operator_api_writes_total"]
            time.sleep(options.idle_seconds)
            idle_writes = _metrics(port)["hearth_operator_api_writes_total"] - idle_start
        finally:
            operator.terminate()
            operator.wait(timeout=30)
    rows = [
        (
            "one new LLMService: POST -> every child exists",
            f"{one_children * 1000:.0f} ms",
            f"POST itself {post_s * 1000:.0f} ms (budget <= 100 ms)",
        ),
        ("LLMServices", f"{count}", ""),
        ("apply of all -> every child of all exists", f"{all_children:.2f} s", ""),
        ("baseline: kubectl apply of all of them", f"{baseline:.2f} s", ""),
        (
            "all reconciled (Ready or ScaledToZero)",
            f"{converged:.2f} s",
            f"{converged / baseline:.2f}x baseline, "
            f"{converged / BUDGET_SECONDS:.2f}x budget ({BUDGET_SECONDS:.0f} s)",
        ),
        ("API writes per service", f"{writes / count:.2f}", f"{writes:.0f} writes"),
        ("API writes per reconcile", f"{writes / max(reconciles, 1):.2f}", f"{reconciles:.0f} reconciles"),
        (f"API writes while idle ({options.idle_seconds:.0f} s)", f"{idle_writes:.0f}", "budget 0"),
        ("operator RSS idle / after", f"{idle_rss:.0f} / {busy_rss:.0f} MiB", ""),
    ]
    width = max(len(row[0]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    return 0 if converged <= BUDGET_SECONDS and idle_writes == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
