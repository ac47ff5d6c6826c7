"""Fixtures shared across the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import controlplane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[controlplane.ControlPlane]:
    """A real etcd + kube-apiserver + kube-controller-manager, shared by the whole session."""
    try:
        with controlplane.running(controller_manager=True) as plane:
            yield plane
    except controlplane.ControlPlaneError as error:
        pytest.fail(f"could not start the test control plane: {error}")
