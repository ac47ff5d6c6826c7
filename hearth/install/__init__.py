"""Installing Hearth into a cluster: CRDs, bundled runtimes, least-privilege RBAC and the operator."""
