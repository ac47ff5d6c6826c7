"""Every rendered manifest is a valid Kubernetes object: a server-side dry run on a real kube-apiserver."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hearth.api import scalermodes
from hearth.api.scalermodes import ScalerMode
from hearth.render.config import OperatorConfig
from tests.cluster.controlplane import ControlPlane
from tests.render.test_plan import RUNTIMES, _base_spec, _render, _service, loads_a_file

KEDA_KINDS = {"ScaledObject"}


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    control_plane.kubectl("create", "namespace", "render-check", check=False)
    return "render-check"


@pytest.mark.parametrize("runtime", sorted(runtime.metadata.name for runtime in RUNTIMES))
@pytest.mark.parametrize(
    "config",
    [
        *(OperatorConfig(scaler_mode=mode) for mode in scalermodes.RESOLVED),
        OperatorConfig(scaler_mode=ScalerMode.BUILTIN, gateway_replicas=2, network_policies=True),
        # With the hearth image as the gateway's, the backend drains UntilIdle through the native sidecar
        # (with the reference's gateway image above, it renders the kubelet's sleep action).
        OperatorConfig(scaler_mode=ScalerMode.BUILTIN, gateway_image="hearth.dev/hearth:test"),
    ],
    ids=lambda config: (
        f"{config.scaler_mode}-{config.gateway_replicas}gw-np{int(config.network_policies)}"
        f"{'-drainer' if config.drainer_image else ''}"
    ),
)
def test_rendered_objects_pass_server_validation(
    control_plane: ControlPlane, namespace: str, runtime: str, config: OperatorConfig
) -> None:
    if loads_a_file(runtime) and config.hearth_image is None:
        # Only `hearth fetch` (the hearth image) fetches the one file such an engine loads.
        config = dataclasses.replace(config, gateway_image="hearth.dev/hearth:test")
    service = _service(_base_spec(runtime, "HostPath"), namespace=namespace)
    service = service.model_copy(update={"metadata": service.metadata.model_copy(update={"uid": None})})
    documents = [doc for doc in yaml.safe_load_all(_render(service, config)) if doc]
    for document in documents:
        document.pop("step")
        mode_name = document.pop("mode")
        if mode_name == "delete" or document["kind"] in KEDA_KINDS:
            continue
        result = control_plane.kubectl(
            "create", "--dry-run=server", "-o", "name", "-f", "-", stdin=yaml.safe_dump(document), check=False
        )
        assert result.returncode == 0, f"{document['kind']} {document['metadata']['name']}: {result.stderr}"
