"""Vendor adapters: what each accelerator vendor adds to the shared vLLM pod (SPEC §2.5).

A small registry keyed by ``InferenceRuntime.spec.vendor``; adding a chip means adding an entry here.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class HostMount:
    """A read-only host path mounted at the same path in the serving container."""

    name: str
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class VendorAdapter:
    """Vendor-specific additions to the backend pod."""

    vendor: str
    host_mounts: tuple[HostMount, ...] = ()

    def volumes(self) -> list[dict[str, Any]]:
        return [{"name": mount.name, "hostPath": {"path": mount.path}} for mount in self.host_mounts]

    def volume_mounts(self) -> list[dict[str, Any]]:
        return [{"name": mount.name, "mountPath": mount.path, "readOnly": True} for mount in self.host_mounts]


_REGISTRY: dict[str, VendorAdapter] = {
    # The NVIDIA device plugin and container runtime inject drivers; nothing to add.
    "nvidia": VendorAdapter("nvidia"),
    # Ascend images expect the host driver, npu-smi, dcmi and install info at their host paths.
    "ascend": VendorAdapter(
        "ascend",
        host_mounts=(
            HostMount("ascend-driver", "/usr/local/Ascend/driver"),
            HostMount("npu-smi", "/usr/local/bin/npu-smi"),
            HostMount("dcmi", "/usr/local/dcmi"),
            HostMount("ascend-install-info", "/etc/ascend_install.info"),
        ),
    ),
    # Any other device plugin: the extended resource request is all it needs.
    "generic": VendorAdapter("generic"),
}


def adapter(vendor: str) -> VendorAdapter | None:
    """The adapter of *vendor*, or ``None`` when none is registered (reason UnsupportedVendor)."""
    return _REGISTRY.get(vendor)
