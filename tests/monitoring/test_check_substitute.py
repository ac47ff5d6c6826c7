"""testing/prometheus/check.py's variable substitution: what Grafana sends with "All" selected. The e2e's
Prometheus check evaluates every panel with it, so a wrong substitution fails every panel on the test bed."""

from __future__ import annotations

import importlib.util
import re

from tests.helpers import REPO

_SPEC = importlib.util.spec_from_file_location("check", REPO / "testing" / "prometheus" / "check.py")
assert _SPEC is not None
assert _SPEC.loader is not None
check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check)


def test_query_variables_become_an_escaped_alternation_and_the_filters_stay_all() -> None:
    variables = {
        "namespace": ["hearth-e2e-1"],
        "model": ["cold"],
        "waiting_metric": ["vllm:num_requests_waiting", "odd-name.x"],
    }
    expr = 'sum({__name__=~"${waiting_metric:regex}",namespace=~"$namespace",llmservice=~"$model"})'
    substituted = check.substitute(expr, range_seconds=60, variables=variables)
    assert substituted == (
        'sum({__name__=~"(vllm:num_requests_waiting|odd\\\\-name\\\\.x)",namespace=~".*",llmservice=~".*"})'
    )
    # The PromQL string's content, unescaped once, is the regex Grafana would send.
    regex = re.search(r'__name__=~"([^"]*)"', substituted)
    assert regex is not None
    assert re.fullmatch(regex.group(1).replace("\\\\", "\\"), "odd-name.x")
