"""What a gateway process loads: only what its mode uses. Every pod start pays for its imports, in memory
for as long as it runs (bench/gateway.py prints the idle RSS); these libraries are each many MiB."""

from __future__ import annotations

import subprocess
import sys

#: Loaded only where used: the Kubernetes client library (the fallback for exotic kubeconfigs), gRPC (the
#: KEDA external scaler), PyYAML (reading a kubeconfig), pydantic (reading LLMService and LLMGateway objects:
#: a shared gateway, or a dedicated one's status watch).
HEAVY = ("kubernetes_asyncio", "grpc", "yaml", "pydantic")


def _loaded_after(statements: str) -> list[str]:
    script = f"{statements}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.split()


def test_the_gateway_command_imports_none_of_the_heavy_libraries() -> None:
    assert _loaded_after("import hearth.cmd.gateway") == []


def test_the_scaler_and_the_kube_client_import_theirs_only_once_used() -> None:
    statements = (
        "from hearth.gateway.scaler import external_scaler\n"
        "from hearth.gateway.wake import wakestatus\n"
        "import hearth.kube.client"
    )
    assert _loaded_after(statements) == []
