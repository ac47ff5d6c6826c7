"""The end-to-end scenarios, in order (each starts from the state the previous one left): the one list
``hearth e2e`` runs. Each area's scenarios live in their own module (scaling, resilience, access, caches,
drain, shared, pools, failfast, engines, warm, scalertls, delivery, netpol, faults, deletion); a new area
adds its ``*module.SCENARIOS`` here, where its place in the order is decided."""

from __future__ import annotations

from hearth.e2e import (
    access,
    caches,
    deletion,
    delivery,
    drain,
    engines,
    failfast,
    faults,
    netpol,
    pools,
    resilience,
    scalertls,
    scaling,
    shared,
    warm,
)

SCENARIOS = [
    *scaling.SCENARIOS,  # 1-5
    *resilience.SCENARIOS,  # 6-9
    *access.SCENARIOS,  # 10-11
    ("12 NodeLocalPVC cache: prewarm Job, warm start", caches.node_local_pvc_prewarmed),
    ("13 HostPath cache: prewarm Job, warm start", caches.host_path_prewarmed),
    *drain.SCENARIOS,
    *shared.SCENARIOS,
    *pools.SCENARIOS,
    *failfast.SCENARIOS,
    *engines.SCENARIOS,
    *warm.SCENARIOS,
    *scalertls.SCENARIOS,
    *delivery.SCENARIOS,
    *netpol.SCENARIOS,
    *faults.SCENARIOS,
    *deletion.SCENARIOS,  # 14
]
