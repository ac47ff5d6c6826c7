"""``hearth drainer``: the backend pod's drain sidecar, which ends a drain as soon as the engine is idle."""
