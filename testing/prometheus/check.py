"""Check the dashboard and the alert rules against a real Prometheus that scraped a test-bed run.

Every dashboard panel query is evaluated over the run (a range query, as Grafana does) with Grafana's
variables substituted; it must parse and return at least one real (non-NaN) value. Every alert
expression must parse (an instant query), and every series it refers to must exist in the run. Then it
prints one completed wake broken into phases and the accelerator accounting of the run, and checks the
accounting against the time each model spent at zero (within a few scrape intervals).

Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

# PromQL words that look like metric names but are not.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}  # fmt: skip


class CheckError(Exception):
    pass


def api(url: str, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=60) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise CheckError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def substitute(expr: str, *, range_seconds: int, variables: dict[str, list[str]] | None = None) -> str:
    """*expr* as Grafana sends it with "All" selected: the built-ins, the namespace and model filters, and
    each query variable's values (*variables*, from :func:`query_variables`) as a regex alternation."""
    values = {
        "$__rate_interval": "1m",
        "$__range": f"{range_seconds}s",
        "$__interval": "15s",
        "$namespace": ".*",
        "$model": ".*",
    }
    for name, found in (variables or {}).items():
        if f"${name}" in values:
            continue  # the namespace and model filters stay "All"
        # Regex-escaped as Grafana's :regex format does, then each backslash doubled: the alternation goes
        # into a PromQL double-quoted string, where a lone backslash must start a known escape.
        alternation = "(" + "|".join(re.escape(value) for value in found) + ")"
        alternation = alternation.replace("\\", "\\\\")
        values[f"${{{name}:regex}}"] = alternation
        values[f"${{{name}}}"] = alternation
        values[f"${name}"] = alternation
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    return expr


def query_variables(url: str, dashboard: dict[str, Any], *, start: float, end: float) -> dict[str, list[str]]:
    """The values of the dashboard's ``label_values(selector, label)`` variables over the run, as Grafana's
    variable query reads them (the label values API, the selector's filters set to "All")."""
    found: dict[str, list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text.strip())
        if match is None:
            continue
        selector = substitute(match.group(1), range_seconds=max(60, math.ceil(end - start)))
        path = f"/api/v1/label/{match.group(2)}/values"
        values = api(url, path, **{"match[]": selector}, start=str(start), end=str(end))
        found[variable["name"]] = sorted(values)
    return found


def series_names(expr: str) -> set[str]:
    """The metric names an expression reads (labels, ranges, grouping clauses and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def has_value(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(value)) for series in result for _, value in series.get("values", []))


def check_panels(url: str, dashboard: dict[str, Any], *, start: float, end: float) -> tuple[int, list[str]]:
    range_seconds = max(60, math.ceil(end - start))
    step = str(max(5, range_seconds // 400))
    count, failures = 0, []
    variables = query_variables(url, dashboard, start=start, end=end)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            count += 1
            expr = substitute(target["expr"], range_seconds=range_seconds, variables=variables)
            try:
                result = api(
                    url, "/api/v1/query_range", query=expr, start=str(start), end=str(end), step=step
                )
            except CheckError as error:
                failures.append(f"panel {panel['title']!r} [{target['refId']}]: {error}\n    {expr}")
                continue
            if not has_value(result["result"]):
                failures.append(f"panel {panel['title']!r} [{target['refId']}]: no data\n    {expr}")
    return count, failures


def check_alerts(url: str, rules: dict[str, Any], *, start: float, end: float) -> tuple[int, list[str]]:
    count, failures = 0, []
    for group in rules["groups"]:
        for rule in group["rules"]:
            count += 1
            name = rule.get("alert") or rule.get("record")
            try:
                api(url, "/api/v1/query", query=rule["expr"], time=str(end))
            except CheckError as error:
                failures.append(f"alert {name}: {error}")
                continue
            for series in sorted(series_names(rule["expr"])):
                found = api(
                    url, "/api/v1/series", **{"match[]": series, "start": str(start), "end": str(end)}
                )
                if not found:
                    failures.append(f"alert {name}: needs {series}, which the run never produced")
    return count, failures


def instant(url: str, expr: str, at: float) -> list[dict[str, Any]]:
    return list(api(url, "/api/v1/query", query=expr, time=str(at))["result"])


def _first_moment(url: str, expr: str, *, start: float, end: float) -> tuple[dict[str, str], float] | None:
    """The labels and the first time *expr* was >= 1 over the run (None if never)."""
    result = api(url, "/api/v1/query_range", query=expr, start=str(start), end=str(end), step="1")["result"]
    firsts = [
        (series["metric"], float(moment))
        for series in result
        for moment, value in series["values"][:1]
        if float(value) >= 1
    ]
    return min(firsts, key=lambda item: item[1]) if firsts else None


def report_wake(url: str, *, start: float, end: float) -> None:
    """The run's first completed wake, phase by phase: the histograms' sums when their count first was 1."""
    first = _first_moment(
        url, "max by (namespace, llmservice) (hearth_wake_seconds_count) >= 1", start=start, end=end
    )
    if first is None:
        print("wake: no completed wake in the run")
        return
    service, moment = first
    labels = f'namespace="{service["namespace"]}",llmservice="{service["llmservice"]}"'
    phases = instant(
        url,
        f'max by (phase) (hearth_wake_phase_seconds_sum{{{labels},job="hearth-operator-metrics"}})',
        moment,
    )
    parts = {p["metric"].get("phase", "?"): float(p["value"][1]) for p in phases}
    total = instant(url, f"max(hearth_wake_seconds_sum{{{labels}}})", moment)
    gateway = _first_moment(
        url,
        f'max(hearth_wake_phase_seconds_count{{{labels},phase="first_byte"}}) >= 1',
        start=moment - 60,
        end=end,
    )
    if gateway is not None:
        byte = instant(url, f'max(hearth_wake_phase_seconds_sum{{{labels},phase="first_byte"}})', gateway[1])
        if byte:
            parts["first_byte"] = float(byte[0]["value"][1])
    order = ["scheduling", "creating", "loading", "first_byte"]
    shown = ", ".join(f"{phase} {parts[phase]:.3f}s" for phase in order if phase in parts)
    whole = float(total[0]["value"][1]) if total else float("nan")
    print(
        f"wake of {service['namespace']}/{service['llmservice']} (first of the run): {shown}; "
        f"left zero -> Ready {whole:.3f}s"
    )


def _key(sample: dict[str, Any], *labels: str) -> tuple[str, ...]:
    return tuple(sample["metric"].get(label, "") for label in labels)


def report_accounting(url: str, *, range_seconds: int, end: float, scrape: float) -> list[str]:
    """Print each model's accelerator-seconds, and check saved = time at zero with nothing held x
    accelerators per replica, where that time is counted independently of the totals, from scrapes."""
    window = f"{range_seconds}s"
    by = "namespace, llmservice, resource"
    resource = ("namespace", "llmservice", "resource")
    held = "hearth_accelerator_seconds_total"
    rows: dict[tuple[str, ...], dict[str, float]] = {}
    for sample in instant(url, f"max by ({by}, state) (max_over_time({held}[{window}]))", end):
        rows.setdefault(_key(sample, *resource), {})[sample["metric"]["state"]] = float(sample["value"][1])
    saved = "hearth_accelerator_seconds_saved_total"
    for sample in instant(url, f"max by ({by}) (max_over_time({saved}[{window}]))", end):
        rows.setdefault(_key(sample, *resource), {})["saved"] = float(sample["value"][1])
    per_replica = {
        _key(sample, *resource): float(sample["value"][1])
        for sample in instant(url, f"max by ({by}) (max_over_time((rate({saved}[1m]) > 0)[{window}:]))", end)
    }
    # Time at zero, counted independently of the totals: scrapes of phase ScaledToZero, and of those the
    # ones where no accelerator was held any more. The difference is the drain: a scaled-down pod keeps its
    # accelerators through its preStop drain, and saved counts only once the last pod is gone (README).
    # max by: two operator processes may both export for a moment while the leadership changes.
    step = max(1, round(scrape))
    # At zero: phase ScaledToZero, or Degraded while a wake failure is shown (until its retryAt) with no
    # replica ready and no wake in progress (the backend was scaled back to zero meanwhile).
    service = "namespace, llmservice"
    at_zero = (
        f'(max by ({service}) (hearth_llmservice_phase{{phase="ScaledToZero"}}) == 1 or ('
        f'max by ({service}) (hearth_llmservice_phase{{phase="Degraded"}}) == 1 '
        f"and on ({service}) max by ({service}) (hearth_llmservice_ready_replicas) == 0 "
        f"and on ({service}) max by ({service}) (hearth_wake_in_progress_seconds) == 0))"
    )
    nothing_held = "max by (namespace, llmservice) (hearth_accelerators_held) == 0"
    zero, emptied = (
        {
            _key(sample, "namespace", "llmservice"): float(sample["value"][1]) * step
            for sample in instant(url, f"count_over_time(({expr})[{window}:{step}s])", end)
        }
        for expr in (at_zero, f"{at_zero} and on (namespace, llmservice) {nothing_held}")
    )
    # Counters must never go back within a series (a series is one operator pod): Prometheus reads a drop
    # as a reset and rate() would count the whole total again, which also misleads per_replica above.
    failures = [
        f"{name} of {sample['metric'].get('namespace')}/{sample['metric'].get('llmservice')} went back "
        f"{float(sample['value'][1]):.0f} time(s) on pod {sample['metric'].get('pod')}"
        for name in (held, saved)
        for sample in instant(url, f"resets({name}[{window}]) > 0", end)
    ]
    print(
        "accounting (accelerator-seconds over the run; at zero = scrapes of phase ScaledToZero, emptied = "
        "those with no accelerator held, i.e. no pod left draining):"
    )
    header = ("model", "resource", "waking", "serving", "saved", "at zero", "emptied", "per replica")
    print("  {:<32} {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}".format(*header))
    for key, row in sorted(rows.items()):
        namespace, service, name = key
        seconds_at_zero = zero.get((namespace, service), 0.0)
        seconds_emptied = emptied.get((namespace, service), 0.0)
        count = round(per_replica.get(key, 0.0))
        waking, serving, kept = row.get("waking", 0.0), row.get("serving", 0.0), row.get("saved", 0.0)
        print(
            f"  {namespace + '/' + service:<32} {name:<28} {waking:>9.1f} {serving:>9.1f} {kept:>9.1f} "
            f"{seconds_at_zero:>8.0f}s {seconds_emptied:>8.0f}s {count:>11}"
        )
        # Each state is sampled once per step, so the edges are uncertain by a step or two each: allow a
        # few steps and 5 %.
        allowed = count * (3 * step + 0.05 * seconds_emptied)
        if count and abs(kept - seconds_emptied * count) > allowed:
            failures.append(
                f"accounting of {namespace}/{service}: saved {kept:.1f} accelerator-s, but "
                f"{seconds_emptied:.0f} s at zero with nothing held x {count} per replica = "
                f"{seconds_emptied * count:.0f}"
            )
    return failures


def wait_for_fresh_scrapes(url: str, *, after: float, timeout: float = 60.0) -> None:
    """Wait until every active target was scraped after *after*, so the run's last moments are in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = api(url, "/api/v1/targets", state="active")["activeTargets"]
        scraped = [target.get("lastScrape", "") for target in targets]
        if all(_unix(moment) > after for moment in scraped):
            return
        time.sleep(1)
    print("check: some targets were not scraped again within 60 s; checking what is there", file=sys.stderr)


def _unix(moment: str) -> float:
    """Prometheus's RFC 3339 lastScrape (nanoseconds) as Unix time; 0 if never scraped."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", moment)
    if not match or moment.startswith("0001"):
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    whole = datetime.datetime.fromisoformat(match.group(1) + zone).timestamp()
    return whole + float(match.group(2) or 0)


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not match:
        raise SystemExit(f"check: --scrape-interval {text!r} is not like 5s")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * (60 if unit == "m" else 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--since", type=float, required=True, help="Unix time the run began")
    parser.add_argument("--dashboard", type=Path, required=True)
    parser.add_argument("--rules", type=Path, required=True)
    parser.add_argument("--scrape-interval", default="5s")
    args = parser.parse_args()
    import yaml  # only the rules file needs it; PyYAML is in the venv and in Debian's python3-yaml

    wait_for_fresh_scrapes(args.url, after=time.time())
    end = time.time()
    start = args.since
    range_seconds = max(60, math.ceil(end - start))
    dashboard = json.loads(args.dashboard.read_text())
    rules = yaml.safe_load(args.rules.read_text())
    panels, panel_failures = check_panels(args.url, dashboard, start=start, end=end)
    alerts, alert_failures = check_alerts(args.url, rules, start=start, end=end)
    print(f"check: {panels} panel queries evaluated over {range_seconds}s, {len(panel_failures)} failed")
    print(f"check: {alerts} alert expressions evaluated, {len(alert_failures)} failed")
    report_wake(args.url, start=start, end=end)
    accounting_failures = report_accounting(
        args.url, range_seconds=range_seconds, end=end, scrape=parse_duration(args.scrape_interval)
    )
    failures = panel_failures + alert_failures + accounting_failures
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
